/* robusta/attack.h: running an attack plugin on a model.
 *
 *     rb_attack_options o = rb_attack_options_default();   // 10 steps, 1 restart
 *     o.seed = 1;
 *     rb_attack_stats st;
 *     rb_attack_run(engine, model, pgd, pgd_params, &o, x, y, n, x_adv, NULL, &st);
 *
 * Who owns which setting:
 *  - the plugin owns the threat model: its own parameters (pgd-l2 and
 *    pgd-linf: eps and step-size) travel in `params`, made from the plugin's
 *    parameter table; the runtime never reads or duplicates them;
 *  - the runtime owns the schedule (rb_attack_options): steps, random start,
 *    restarts, keep-best, targeting and the seed. steps, random_start and
 *    keep_best only apply to step-based plugins; a whole-run plugin
 *    (rb_attack_ops.run) schedules itself and gets the seed, the restart's
 *    RNG stream and an oracle.
 *
 * Semantics (DESIGN.md, "Numerics and semantics to match"):
 *  - the model runs in inference mode (batch-norm with running statistics)
 *    and backward computes the input gradient only, no weight gradients;
 *  - the plugin gets the gradient of each example's own loss (the engine's
 *    gradient of the batch mean times the engine batch);
 *  - a step-based restart is: x_adv = x (or the plugin's random_start), then
 *    `steps` times: forward, backward, plugin step (ascent; descent when
 *    targeted, with the targets as labels), plugin project. The plugin's
 *    calls, in order (create, begin, ..., destroy), their lifetimes and
 *    what a failing callback does are the "Attack contract" of
 *    robusta/plugin.h;
 *  - keep_best: per example, the iterate with the highest loss (lowest when
 *    targeted) among the start, every step and the final one; otherwise the
 *    final iterate;
 *  - restarts: restart r draws its random numbers from
 *    RB_RNG_STREAM(RB_RNG_ATTACK, r), keyed by example index, so results do
 *    not depend on the engine batch. Per example the result is that of the
 *    first restart that fools the model (prediction != label, or == target
 *    when targeted); when none does, the restart with the highest loss
 *    (lowest when targeted). Restart 0 is the single run, so more restarts
 *    never raise robust accuracy. Restarts of a step-based attack without a
 *    random start would repeat the same run and are refused, as are random
 *    starts and restarts for a plugin without random_start;
 *  - targeted: targets are chosen from the clean images, either uniformly
 *    among the other classes (stream RB_RNG_STREAM(RB_RNG_ATTACK,
 *    RB_ATTACK_TARGET_STREAM), keyed by example index) or the least likely
 *    class under the clean logits (ties: the lowest class index that is not
 *    the label).
 * Batches: examples go through the engine in chunks of its planned batch; a
 * short last chunk is padded with zero images, which in inference mode do not
 * affect the real rows, and the padding is dropped. */
#ifndef ROBUSTA_ATTACK_H
#define ROBUSTA_ATTACK_H

#include <stdbool.h>
#include <stdint.h>
#include <robusta/engine.h>
#include <robusta/model.h>
#include <robusta/params.h>
#include <robusta/plugin.h>
#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The restart number whose stream picks random targets (never a real
 * restart: restarts are limited to RB_ATTACK_MAX_RESTARTS). */
#define RB_ATTACK_TARGET_STREAM 0xfffffu
#define RB_ATTACK_MAX_RESTARTS 65536

typedef enum rb_attack_target {
    RB_ATTACK_UNTARGETED = 0,
    RB_ATTACK_TARGET_RANDOM = 1,      /* a uniformly random other class */
    RB_ATTACK_TARGET_LEAST_LIKELY = 2 /* the lowest clean logit */
} rb_attack_target;

typedef struct rb_attack_options {
    int steps;              /* step-based: PGD iterations per restart, >= 0 */
    bool random_start;      /* step-based: start at the plugin's random_start */
    int restarts;           /* >= 1 */
    bool keep_best;         /* step-based: keep the best iterate, not the last */
    rb_attack_target target;
    uint64_t seed;
    int64_t first_example;  /* dataset index of x's first row (keys the RNG) */
    /* Each row's dataset index (count values), for rows that are not
     * consecutive examples; NULL: first_example + row. */
    const int64_t *examples;
} rb_attack_options;

/* 10 steps, no random start, 1 restart, untargeted, seed 0. */
RB_API rb_attack_options rb_attack_options_default(void);

typedef struct rb_attack_stats {
    int64_t count;
    int64_t clean_correct;  /* clean prediction == label */
    int64_t adv_correct;    /* adversarial prediction == label (robust accuracy) */
    int64_t target_reached; /* targeted: adversarial prediction == target */
    double max_l2;          /* largest ||x_adv - x||_2 over examples */
    double max_linf;        /* largest ||x_adv - x||_inf over examples */
    int64_t forwards;       /* engine forward passes run (batches) */
    int64_t backwards;      /* engine data-only backward passes run */
} rb_attack_stats;

/* Attacks `count` images x (count × C × H × W, f32 in [0, 1], C, H, W those
 * of the model's input) with true labels in [0, classes), writing the
 * adversarial images into x_adv (same shape; may not alias x). `engine` must
 * run `model`'s graph (with its loss), at any planned batch. `params` are the
 * plugin's parameters (NULL: its defaults). targets_out (count values, may be
 * NULL) receives the targets of a targeted attack, else the labels. stats may
 * be NULL. */
/* An attacker holds the staging buffers for one (engine, model) pair, so
 * that attacking batch after batch (adversarial training) allocates
 * nothing per batch in the runtime (plugins' own create, begin and destroy
 * still run per rb_attacker_run call). rb_attack_run is create + run +
 * destroy. */
typedef struct rb_attacker rb_attacker;
RB_API rb_status rb_attacker_create(rb_attacker **out, rb_engine *engine, const rb_model *model);
RB_API void rb_attacker_destroy(rb_attacker *attacker);
/* rb_attack_run with the attacker's engine, model and buffers. */
RB_API rb_status rb_attacker_run(rb_attacker *attacker, const rb_plugin *plugin, const rb_params *params,
                                 const rb_attack_options *options, const float *x, const int64_t *labels,
                                 int64_t count, float *x_adv, int64_t *targets_out, rb_attack_stats *stats);

RB_API rb_status rb_attack_run(rb_engine *engine, const rb_model *model, const rb_plugin *plugin,
                               const rb_params *params, const rb_attack_options *options,
                               const float *x, const int64_t *labels, int64_t count, float *x_adv,
                               int64_t *targets_out, rb_attack_stats *stats);

/* Ensembles (AutoAttack's protocol): attacks run in a fixed order, each on
 * the examples that every earlier one left correctly classified; an
 * example is robust only if it survives them all. */
typedef struct rb_attack_stage {
    const rb_plugin *plugin;
    const rb_params *params;   /* NULL: the plugin's defaults */
    rb_attack_options options; /* untargeted; first_example and examples are the run's */
} rb_attack_stage;

/* fooled_by values other than a stage's index. */
#define RB_ATTACK_SURVIVED (-1)    /* no stage fooled it */
#define RB_ATTACK_CLEAN_WRONG (-2) /* misclassified before any attack: not attacked */

/* Runs `stages` in order on x (count images with their labels; row i is
 * example first_example + i, which keys every stage's random numbers, so
 * results do not depend on batching). x_adv receives each example's result
 * from the stage that fooled it (the model's prediction on it differs from
 * its label), else x. fooled_by (count values, may be NULL) receives that
 * stage's index, RB_ATTACK_SURVIVED or RB_ATTACK_CLEAN_WRONG. A failing
 * stage's error is prefixed "stage K (NAME): ". */
RB_API rb_status rb_attacker_run_stages(rb_attacker *attacker, const rb_attack_stage *stages, size_t stage_count,
                                        const float *x, const int64_t *labels, int64_t count, int64_t first_example,
                                        float *x_adv, int *fooled_by);

/* Checks that `plugin` is a complete attack and `options` fit it (what
 * rb_attack_run checks first), so a program can refuse bad settings before
 * loading a model. */
RB_API rb_status rb_attack_check(const rb_plugin *plugin, const rb_attack_options *options);

/* Refuses a step count given to a plugin that schedules itself
 * (rb_attack_ops.run) without a "steps" parameter of its own: the steps
 * would be ignored. RB_ERR_INVALID_ARGUMENT with "attack plugin square
 * schedules itself and takes no PREFIXsteps; its own budget:
 * PREFIXqueries" (its integer parameters, each written with `prefix`: "--"
 * on a command line, "" in a file); RB_OK for any other plugin. */
RB_API rb_status rb_attack_check_steps(const rb_plugin *plugin, const char *prefix);

/* Per-example losses (count values, may be NULL) and, when grad is not NULL,
 * the gradient of each example's own loss with respect to its image (count ×
 * C × H × W), for any count: the engine runs in inference mode in chunks of
 * its batch with data-only backward. logits (count × classes) may be NULL.
 * This is what a whole-run plugin's oracle computes. */
RB_API rb_status rb_attack_loss_grad(rb_engine *engine, const rb_model *model, const float *x,
                                     const int64_t *labels, int64_t count, float *losses,
                                     float *grad, float *logits);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_ATTACK_H */
