/* apgd-dlr: Auto-PGD on the difference-of-logits-ratio loss (Croce & Hein,
 * ICML 2020, section 4), untargeted: -(z_y - max_{i != y} z_i) / (z_pi1 -
 * z_pi3), invariant to shifts and scalings of the logits, so that a model
 * whose cross-entropy saturates still gives a gradient. The iteration is
 * apgd.c's. Needs 3 classes or more. */
#include <robusta/plugin.h>

#include "apgd.h"

#define WHO "apgd-dlr"

static const rb_param_spec apgd_dlr_params[] = {APGD_PARAMS_COMMON, {NULL}};

static rb_status apgd_dlr_run(void *self, const rb_params *params, const rb_attack_oracle *oracle,
                              rb_attack_batch *b)
{
    rb_attack_view v;
    apgd_settings set;
    rb_status st = apgd_open_run(WHO, params, APGD_LOSS_DLR, b, &v, &set);
    (void)self;
    if (st != RB_OK)
        return st;
    if (b->targeted)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            WHO ": the DLR loss is untargeted; apgd-t is its targeted form (it picks its own targets)");
    return apgd_run_rows(WHO, &set, oracle, b, b->stream, v.rows, v.cols, NULL, v.x, v.x0, b->labels, NULL, false,
                         NULL);
}

RB_ATTACK_PLUGIN("apgd-dlr", "1.0", "Auto-PGD on the DLR loss, untargeted, Linf or L2 (Croce & Hein 2020)",
                 apgd_dlr_params, .run = apgd_dlr_run);
