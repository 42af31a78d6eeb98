/* robusta/autoattack.h: AutoAttack's versions as attack ensembles.
 *
 *     rb_autoattack *aa;
 *     rb_autoattack_create(&aa, registry, "standard", "linf", 8.0 / 255, classes, seed);
 *     size_t n;
 *     const rb_attack_stage *stages = rb_autoattack_stages(aa, &n);
 *     rb_attacker_run_stages(attacker, stages, n, x, y, count, first, x_adv, fooled_by);
 *     rb_autoattack_destroy(aa);
 *
 * Versions (Croce & Hein 2020, the RobustBench protocol), with the
 * reference's settings:
 *   "standard": apgd-ce (100 steps), apgd-t (100 steps, min(9, classes - 1)
 *               targets), fab-t (100 steps, as many targets), square (5,000
 *               queries, p_init 0.8);
 *   "rand":     apgd-ce and apgd-dlr (for randomized defenses; robusta's
 *               models are deterministic in evaluation, so the reference's
 *               20-draw gradient average is one gradient and each runs
 *               once);
 *   "plus":     apgd-ce and apgd-dlr (5 restarts each), fab (untargeted, 5
 *               restarts), square, apgd-t and fab-t (1 restart each).
 * Every stage gets the norm ("linf" or "l2") and eps; the model needs at
 * least 4 classes (the targeted DLR loss). The registry must hold the
 * plugins (they ship with robusta). */
#ifndef ROBUSTA_AUTOATTACK_H
#define ROBUSTA_AUTOATTACK_H

#include <stdint.h>
#include <robusta/attack.h>
#include <robusta/registry.h>
#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rb_autoattack rb_autoattack;

RB_API rb_status rb_autoattack_create(rb_autoattack **out, const rb_registry *registry, const char *version,
                                      const char *norm, double eps, int64_t classes, uint64_t seed);
RB_API void rb_autoattack_destroy(rb_autoattack *autoattack);
/* The stages, in order; valid until rb_autoattack_destroy. */
RB_API const rb_attack_stage *rb_autoattack_stages(const rb_autoattack *autoattack, size_t *count);
/* "standard", "plus" or "rand". */
RB_API const char *rb_autoattack_version(const rb_autoattack *autoattack);

/* The norm ("l2" or "linf") attack plugin `attack` works in: its "norm"
 * parameter where it has one (`norm`, NULL: none), else pgd-l2's and
 * pgd-linf's; NULL when it cannot be told. What AutoAttack runs is compared
 * with it, and a grid's AutoAttack defaults to its source attack's. */
RB_API const char *rb_autoattack_norm_of(const char *attack, const char *norm);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_AUTOATTACK_H */
