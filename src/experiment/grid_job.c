/* A grid over the ranks of an mpirun/srun job (grid_internal.h): the
 * ranks deal the grid's units among themselves as they go, each taking the
 * next one no rank has taken, by creating a file named after it in a
 * claims folder of this job (O_EXCL: exactly one creator succeeds, NFS
 * included). A rank that finishes early takes more; a killed job leaves
 * finished runs (result.json) that the next job skips, and a claims folder
 * of its own that the next job, with another name, ignores. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <robusta/dist.h>

#include "experiment/grid_internal.h"
#include "sys/internal.h"

rb_status grid_job_start(grid_job *job, const char *out_dir)
{
    char name[64] = "";
    int64_t blind;
    struct stat st;
    rb_status s;
    memset(job, 0, sizeof *job);
    if (rb_dist_size() == 1)
        return RB_OK;
    job->on = true;
    /* rank 0 names this job's claims folder and makes it */
    if (rb_dist_rank() == 0)
        snprintf(name, sizeof name, ".claims-%ld-%lld", (long)getpid(), (long long)time(NULL));
    if ((s = rb_dist_broadcast(name, sizeof name, 0)) != RB_OK)
        return s;
    snprintf(job->claims, sizeof job->claims, "%s/%s", out_dir, name);
    if (rb_dist_rank() == 0 && mkdir(job->claims, 0777) != 0 && errno != EEXIST)
        s = rb_error_set(RB_ERR_IO, "cannot create the folder %s: %s", job->claims, strerror(errno));
    if (s != RB_OK || (s = rb_dist_barrier()) != RB_OK)
        return s; /* the job ends with this rank's line (rb_dist_abort) */
    /* every rank must see it: the runs of all ranks go into one folder */
    blind = stat(job->claims, &st) != 0;
    if ((s = rb_dist_allreduce_sum(&blind, 1, RB_DIST_I64)) != RB_OK)
        return s;
    if (blind > 0)
        return rb_error_set(RB_ERR_IO,
                            "%lld of the %d ranks cannot see %s, which rank 0 made: a grid over ranks needs "
                            "--out on a file system every rank sees (rank 0 collects every run into the reports)",
                            (long long)blind, rb_dist_size(), out_dir);
    return RB_OK;
}

bool grid_job_claim(grid_job *job, size_t unit, rb_status *s)
{
    char path[4300];
    int fd;
    *s = RB_OK;
    if (!job->on)
        return true;
    snprintf(path, sizeof path, "%s/%zu", job->claims, unit);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (fd >= 0) {
        close(fd);
        job->claimed++;
        return true;
    }
    if (errno != EEXIST)
        *s = rb_error_set(RB_ERR_IO, "cannot claim a grid run in %s: %s", job->claims, strerror(errno));
    return false;
}

rb_status grid_job_end(grid_job *job, size_t units)
{
    char path[4300];
    rb_status s;
    if (!job->on)
        return RB_OK;
    /* every rank's runs are finished before rank 0 reports them */
    if ((s = rb_dist_barrier()) != RB_OK || rb_dist_rank() != 0)
        return s;
    for (size_t u = 0; u < units; u++) {
        snprintf(path, sizeof path, "%s/%zu", job->claims, u);
        unlink(path);
    }
    rmdir(job->claims);
    return RB_OK;
}
