/* What the grid file parser (grid_config.c), the eps parser (grid_eps.c),
 * the runner (grid.c) and its job over ranks (grid_job.c) share. */
#ifndef ROBUSTA_GRID_INTERNAL_H
#define ROBUSTA_GRID_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <robusta/status.h>

/* 1 when s[0, len) is [+-]digits[.digits][e[+-]digits] with at least one
 * mantissa digit: what strtod takes minus nan, inf, hex and spaces. */
int grid_is_decimal(const char *s, size_t len);

/* A grid run by the ranks of a job: off (every unit this process's) in a
 * lone process. */
typedef struct grid_job {
    bool on;
    char claims[4200]; /* this job's claims folder */
    size_t claimed;    /* units this rank took */
} grid_job;

/* Starts a job's grid in out_dir (every rank, together): rank 0 makes the
 * claims folder, and every rank must see it (one line if not). */
rb_status grid_job_start(grid_job *job, const char *out_dir);
/* Whether this rank takes `unit`: the first rank to ask does. */
bool grid_job_claim(grid_job *job, size_t unit, rb_status *s);
/* Waits for every rank's units (every rank, together); rank 0 then
 * removes the claims. */
rb_status grid_job_end(grid_job *job, size_t units);

#endif
