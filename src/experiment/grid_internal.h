/* What the grid file parser (grid_config.c), the eps parser (grid_eps.c),
 * the runner (grid.c) and its job over ranks (grid_job.c) share. */
#ifndef ROBUSTA_GRID_INTERNAL_H
#define ROBUSTA_GRID_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <robusta/attack.h>
#include <robusta/grid.h>
#include <robusta/model.h>
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

/* An attack plugin's parameters for a grid's threat model (grid_robust.c):
 * eps (eps_text; NULL: the plugin's own), step-size = [source]
 * step-size-factor * eps / steps where the plugin has one, its own "steps"
 * (when own_steps) and "random-start" where it declares them, so that a
 * grid's key means what it says whichever attack runs. */
rb_status grid_attack_params(const rb_grid_spec *spec, const rb_plugin *attack, const char *eps_text, double eps,
                             int64_t steps, bool own_steps, bool random_start, rb_params **out);

/* [transfer] eval-attack, resolved and checked before anything trains. */
typedef struct grid_eval_attack {
    bool on;                    /* the grid has one */
    const rb_plugin *plugin;    /* NULL: AutoAttack */
    rb_params *params;          /* the plugin's, complete */
    rb_attack_options options;  /* the plugin's schedule */
    char version[16], norm[8];  /* AutoAttack's */
    double eps;                 /* AutoAttack's */
    uint64_t seed;              /* AutoAttack's */
    char description[128];      /* the text with its defaults: results.csv's robust_attack */
} grid_eval_attack;

/* Resolves spec's eval-attack (ea->on false without one); one line naming
 * the file and line on a mistake. */
rb_status grid_eval_attack_prepare(grid_eval_attack *ea, const rb_grid_spec *spec, const rb_registry *registry);
/* The target metric `metric` of `model` on `split`'s images (per_class > 0:
 * a class-balanced subset of that many per class, drawn with seed 0)
 * attacked by ea, into *robust; *examples: the images attacked. */
rb_status grid_eval_attack_run(const grid_eval_attack *ea, const rb_registry *registry, rb_model *model,
                               const rb_split *split, int64_t per_class, const rb_engine_options *engine,
                               const char *metric, double *robust, int64_t *examples);
void grid_eval_attack_free(grid_eval_attack *ea);

#endif
