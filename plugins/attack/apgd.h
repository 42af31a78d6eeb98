/* Auto-PGD (Croce & Hein, ICML 2020, Algorithm 1), shared by the apgd-ce,
 * apgd-dlr and apgd-t plugins (each compiles it in; nothing is exported):
 * the iteration, its step-size schedule and the losses, in apgd.c. */
#ifndef ROBUSTA_PLUGINS_APGD_H
#define ROBUSTA_PLUGINS_APGD_H

#include <stdbool.h>
#include <stdint.h>

#include <robusta/plugin.h>

/* The objective each iteration ascends. */
typedef enum apgd_loss {
    APGD_LOSS_CE,          /* cross-entropy against the labels */
    APGD_LOSS_DLR,         /* -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3) */
    APGD_LOSS_DLR_TARGETED /* -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2) */
} apgd_loss;

/* The parameters every APGD plugin takes (apgd_params_common in its table). */
typedef struct apgd_settings {
    bool linf;         /* Linf ball, else L2 */
    double eps, rho, alpha;
    int64_t steps;
    bool random_start;
    apgd_loss loss;
} apgd_settings;

/* The table entries of apgd_settings (norm, eps, steps, rho, alpha,
 * random-start), for a plugin's parameter table. */
#define APGD_PARAMS_COMMON                                                                                       \
    {"norm", RB_PARAM_CHOICE, "linf", "linf|l2", 0, "threat model: Linf or L2 ball"},                            \
        {RB_PARAM_EPS, RB_PARAM_FLOAT, "8/255", "[0, inf)", 0, "radius of the ball, in [0,1] pixel units"},      \
        {RB_PARAM_STEPS, RB_PARAM_INT, "100", "[1, 100000]", 0,                                                  \
         "iterations (the model is evaluated steps + 1 times)"},                                                 \
        {"rho", RB_PARAM_FLOAT, "0.75", "[0, 1]", 0,                                                              \
         "halve the step when at most this fraction of steps since the last checkpoint raised the loss"},         \
        {"alpha", RB_PARAM_FLOAT, "0.75", "(0, 1]", 0, "momentum: weight of the new step against the last move"}, \
        {"random-start", RB_PARAM_BOOL, "true", NULL, 0, "start from a random point of the ball"}

/* What every APGD plugin's run starts with: the batch as rows (v), the
 * settings for `loss`, and labels present; errors name `who`. */
rb_status apgd_open_run(const char *who, const rb_params *params, apgd_loss loss, rb_attack_batch *b,
                        rb_attack_view *v, apgd_settings *set);

/* The classes a loss needs: DLR reads the third largest logit, the
 * targeted DLR the fourth. */
int64_t apgd_min_classes(apgd_loss loss);

/* One APGD run on `rows` examples held compactly in x (rows × cols; on
 * return the result), centred on x0, against labels (true labels, or the
 * runtime's targets when `descend`), with per-row targets for the targeted
 * DLR (else NULL). Random starts come from the stream `stream`, keyed by
 * the example of batch row row_of[r] (row_of NULL: r; rb_attack_example).
 * fooled[r] (may be NULL) says whether any iterate, the start included,
 * was classified otherwise than labels[r] (as labels[r] when descend);
 * such a row ends at the last such iterate, as the reference's
 * x_best_adv, and every other row at its highest-loss point. Without the
 * oracle's logit_loss_and_grad (CE only) no iterate is scored: fooled is
 * all false and every row ends at its highest-loss point. `who` names the
 * plugin in errors. */
rb_status apgd_run_rows(const char *who, const apgd_settings *s, const rb_attack_oracle *oracle,
                        const rb_attack_batch *b, uint32_t stream, int64_t rows, int64_t cols, const int64_t *row_of,
                        float *x, const float *x0, const int64_t *labels, const int64_t *targets, bool descend,
                        bool *fooled);

#endif
