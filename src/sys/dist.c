/* The job's processes (robusta/dist.h): MPI when built --with-mpi and
 * started by a launcher, one rank otherwise. The only file that includes
 * mpi.h. */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef RB_HAVE_MPI
#include <mpi.h>
#endif

#include <robusta/dist.h>

/* What rb_dist_rank and rb_dist_size say: the job's, or 0 and 1 while
 * this rank works alone (rb_dist_set_alone); job_* keep the job's. */
static int job_rank = 0, job_size = 1, seen_rank = 0, seen_size = 1;
static bool thread_multiple = false;
#ifdef RB_HAVE_MPI
static bool mpi_started = false;
#endif

/* The size a launcher announces in the environment (Open MPI's mpirun,
 * PMI/PMIx launchers, Slurm's srun), or 1: a process started alone. */
static int launched_size(int *rank)
{
    static const char *const sizes[][2] = {{"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"},
                                           {"PMIX_SIZE", "PMIX_RANK"},
                                           {"PMI_SIZE", "PMI_RANK"},
                                           {"SLURM_STEP_NUM_TASKS", "SLURM_PROCID"}};
    *rank = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const char *v = getenv(sizes[i][0]), *r = getenv(sizes[i][1]);
        long n = v != NULL ? strtol(v, NULL, 10) : 0;
        if (n > 1) {
            *rank = r != NULL ? (int)strtol(r, NULL, 10) : 0;
            return n > INT_MAX ? INT_MAX : (int)n;
        }
    }
    return 1;
}

bool rb_dist_available(void)
{
#ifdef RB_HAVE_MPI
    return true;
#else
    return false;
#endif
}

int rb_dist_rank(void) { return seen_rank; }
int rb_dist_size(void) { return seen_size; }

bool rb_dist_threads_may_call(void) { return thread_multiple && seen_size > 1; }

void rb_dist_set_alone(bool alone)
{
    seen_rank = alone ? 0 : job_rank;
    seen_size = alone ? 1 : job_size;
}

#ifdef RB_HAVE_MPI
static rb_status mpi_fail(int code, const char *what)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error %d", code);
    return rb_error_set(RB_ERR_IO, "rank %d of %d: %s failed: %s", job_rank, job_size, what, text);
}

static MPI_Datatype mpi_type(rb_dist_type t)
{
    return t == RB_DIST_F32 ? MPI_FLOAT : t == RB_DIST_F64 ? MPI_DOUBLE : MPI_INT64_T;
}
#endif

rb_status rb_dist_init(int *argc, char ***argv)
{
    int rank, n = launched_size(&rank);
    if (n == 1)
        return RB_OK;
#ifdef RB_HAVE_MPI
    {
        int provided = 0, code;
        if (mpi_started)
            return RB_OK;
        /* MULTIPLE lets a progress thread move gradient sums while backward
         * computes (robusta/grad_sync.h); FUNNELED is enough otherwise */
        if ((code = MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided)) != MPI_SUCCESS)
            return mpi_fail(code, "MPI_Init_thread");
        mpi_started = true;
        /* errors come back as codes, so each becomes one line naming the rank */
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &job_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &job_size);
        seen_rank = job_rank;
        seen_size = job_size;
        thread_multiple = provided >= MPI_THREAD_MULTIPLE;
        if (provided < MPI_THREAD_FUNNELED)
            return rb_error_set(RB_ERR_UNSUPPORTED,
                                "this MPI library gives no thread support (MPI_THREAD_FUNNELED); robusta's "
                                "compute threads need it: use Debian's Open MPI (libopenmpi-dev)");
        return RB_OK;
    }
#else
    (void)argc;
    (void)argv;
    return rb_error_set(RB_ERR_NOT_AVAILABLE,
                        "started as rank %d of %d processes (mpirun or srun), but this robusta was built without "
                        "MPI: each would train alone; rebuild with ./configure --with-mpi (Debian: apt install "
                        "libopenmpi-dev openmpi-bin)",
                        rank, n);
#endif
}

void rb_dist_finalize(void)
{
#ifdef RB_HAVE_MPI
    if (mpi_started) {
        MPI_Barrier(MPI_COMM_WORLD);
        MPI_Finalize();
        mpi_started = false;
        job_rank = seen_rank = 0;
        job_size = seen_size = 1;
    }
#endif
}

void rb_dist_abort(int code)
{
    fflush(stdout);
    fflush(stderr);
#ifdef RB_HAVE_MPI
    if (mpi_started && job_size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}

rb_status rb_dist_allreduce_sum(void *data, size_t count, rb_dist_type type)
{
    if (seen_size == 1 || count == 0)
        return RB_OK;
#ifdef RB_HAVE_MPI
    {
        /* in pieces an int can count */
        size_t elem = type == RB_DIST_F32 ? 4 : 8, done = 0;
        while (done < count) {
            size_t part = count - done < (size_t)INT_MAX ? count - done : (size_t)INT_MAX;
            int code = MPI_Allreduce(MPI_IN_PLACE, (char *)data + done * elem, (int)part, mpi_type(type), MPI_SUM,
                                     MPI_COMM_WORLD);
            if (code != MPI_SUCCESS)
                return mpi_fail(code, "an all-reduce");
            done += part;
        }
    }
#else
    (void)data;
    (void)type;
#endif
    return RB_OK;
}

rb_status rb_dist_broadcast(void *data, size_t bytes, int root)
{
    if (root < 0 || root >= seen_size)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "broadcast from rank %d of a job of %d", root, seen_size);
    if (seen_size == 1 || bytes == 0)
        return RB_OK;
#ifdef RB_HAVE_MPI
    for (size_t done = 0; done < bytes;) {
        size_t part = bytes - done < (size_t)INT_MAX ? bytes - done : (size_t)INT_MAX;
        int code = MPI_Bcast((char *)data + done, (int)part, MPI_BYTE, root, MPI_COMM_WORLD);
        if (code != MPI_SUCCESS)
            return mpi_fail(code, "a broadcast");
        done += part;
    }
#else
    (void)data;
#endif
    return RB_OK;
}

rb_status rb_dist_barrier(void)
{
#ifdef RB_HAVE_MPI
    if (seen_size > 1) {
        /* a rank that waits sleeps between polls: MPI_Barrier would spin a
         * core that a rank still computing on this node may need */
        MPI_Request request;
        int code = MPI_Ibarrier(MPI_COMM_WORLD, &request), done = 0;
        while (code == MPI_SUCCESS && (code = MPI_Test(&request, &done, MPI_STATUS_IGNORE)) == MPI_SUCCESS && !done)
            nanosleep(&(struct timespec){0, 200000}, NULL);
        if (code != MPI_SUCCESS)
            return mpi_fail(code, "a barrier");
    }
#endif
    return RB_OK;
}

#ifdef RB_HAVE_MPI
/* Up to `size` bytes of `text` around offset `at`, for a message. */
static const char *excerpt(char *buf, size_t size, const char *text, size_t at)
{
    size_t len = strlen(text), from = at > 24 ? at - 24 : 0;
    snprintf(buf, size, "%s%.*s%s", from > 0 ? "..." : "", (int)(size - 8), text + from,
             len - from > size - 8 ? "..." : "");
    return buf;
}

#endif

rb_status rb_dist_agree(const char *what, const char *text)
{
    if (seen_size == 1)
        return RB_OK;
#ifdef RB_HAVE_MPI
    {
        /* rank 0's text to everyone; each compares; the lowest differing
         * rank's text back to everyone for the message */
        int64_t len = (int64_t)strlen(text), first = INT_MAX, mine, other_len;
        char *root_text = NULL, *other = NULL, a[72], b[72];
        size_t at = 0;
        rb_status s;
        if ((s = rb_dist_broadcast(&len, sizeof len, 0)) != RB_OK)
            return s;
        root_text = malloc((size_t)len + 1);
        if (root_text == NULL)
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory comparing %s between ranks", what);
        if (seen_rank == 0)
            memcpy(root_text, text, (size_t)len + 1);
        if ((s = rb_dist_broadcast(root_text, (size_t)len + 1, 0)) != RB_OK) {
            free(root_text);
            return s;
        }
        mine = strcmp(root_text, text) != 0 ? seen_rank : INT_MAX;
        first = mine;
        {
            int code = MPI_Allreduce(&mine, &first, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD);
            if (code != MPI_SUCCESS) {
                free(root_text);
                return mpi_fail(code, "an all-reduce");
            }
        }
        if (first == INT_MAX) {
            free(root_text);
            return RB_OK;
        }
        other_len = (int64_t)strlen(text);
        if ((s = rb_dist_broadcast(&other_len, sizeof other_len, (int)first)) != RB_OK ||
            (other = malloc((size_t)other_len + 1)) == NULL) {
            free(root_text);
            return s != RB_OK ? s : rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory comparing %s", what);
        }
        if (seen_rank == (int)first)
            memcpy(other, text, (size_t)other_len + 1);
        if ((s = rb_dist_broadcast(other, (size_t)other_len + 1, (int)first)) == RB_OK) {
            while (other[at] != '\0' && other[at] == root_text[at])
                at++;
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: rank %d has \"%s\" where rank 0 has \"%s\"", what,
                             (int)first, excerpt(a, sizeof a, other, at), excerpt(b, sizeof b, root_text, at));
        }
        free(other);
        free(root_text);
        return s;
    }
#else
    (void)what;
    (void)text;
    return RB_OK;
#endif
}

rb_status rb_dist_gather(const void *data, const size_t *bytes, void *out)
{
    if (seen_size == 1) {
        if (out != NULL && bytes[0] > 0)
            memcpy(out, data, bytes[0]);
        return RB_OK;
    }
#ifdef RB_HAVE_MPI
    {
        int *counts = malloc((size_t)seen_size * sizeof *counts), *offsets = malloc((size_t)seen_size * sizeof *offsets);
        size_t total = 0;
        int code;
        if (counts == NULL || offsets == NULL) {
            free(counts);
            free(offsets);
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory gathering from ranks");
        }
        for (int r = 0; r < seen_size; r++) {
            if (bytes[r] > (size_t)INT_MAX || total + bytes[r] > (size_t)INT_MAX) {
                free(counts);
                free(offsets);
                return rb_error_set(RB_ERR_UNSUPPORTED, "gathering more than 2 GiB from the ranks at once");
            }
            counts[r] = (int)bytes[r];
            offsets[r] = (int)total;
            total += bytes[r];
        }
        code = MPI_Gatherv(data, counts[seen_rank], MPI_BYTE, out, counts, offsets, MPI_BYTE, 0, MPI_COMM_WORLD);
        free(counts);
        free(offsets);
        if (code != MPI_SUCCESS)
            return mpi_fail(code, "a gather");
        return RB_OK;
    }
#else
    return RB_OK;
#endif
}

/* ------------------------------------------------------------ requests */

struct rb_dist_request {
#ifdef RB_HAVE_MPI
    MPI_Request request;
#endif
    bool active;
};

rb_status rb_dist_request_create(rb_dist_request **out)
{
    rb_dist_request *r = calloc(1, sizeof *r);
    *out = NULL;
    if (r == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for an all-reduce request");
#ifdef RB_HAVE_MPI
    r->request = MPI_REQUEST_NULL;
#endif
    *out = r;
    return RB_OK;
}

void rb_dist_request_destroy(rb_dist_request *r)
{
    if (r == NULL)
        return;
    if (r->active)
        (void)rb_dist_wait(r);
    free(r);
}

rb_status rb_dist_iallreduce_sum(rb_dist_request *r, float *data, size_t count)
{
    if (r->active)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "an all-reduce request started again before it was waited for");
    if (seen_size == 1 || count == 0)
        return RB_OK;
#ifdef RB_HAVE_MPI
    {
        int code;
        if (count > (size_t)INT_MAX)
            return rb_error_set(RB_ERR_UNSUPPORTED, "a nonblocking all-reduce of %zu floats (at most %d)", count,
                                INT_MAX);
        code = MPI_Iallreduce(MPI_IN_PLACE, data, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r->request);
        if (code != MPI_SUCCESS)
            return mpi_fail(code, "a nonblocking all-reduce");
        r->active = true;
    }
#else
    (void)data;
#endif
    return RB_OK;
}

rb_status rb_dist_test(rb_dist_request *r, bool *done)
{
    *done = true;
    if (!r->active)
        return RB_OK;
#ifdef RB_HAVE_MPI
    {
        int flag = 0, code = MPI_Test(&r->request, &flag, MPI_STATUS_IGNORE);
        if (code != MPI_SUCCESS) {
            r->active = false;
            return mpi_fail(code, "a nonblocking all-reduce");
        }
        if (flag)
            r->active = false;
        *done = flag != 0;
    }
#endif
    return RB_OK;
}

rb_status rb_dist_wait(rb_dist_request *r)
{
    if (r == NULL || !r->active)
        return RB_OK;
    r->active = false;
#ifdef RB_HAVE_MPI
    {
        int code = MPI_Wait(&r->request, MPI_STATUS_IGNORE);
        if (code != MPI_SUCCESS)
            return mpi_fail(code, "a nonblocking all-reduce");
    }
#endif
    return RB_OK;
}
