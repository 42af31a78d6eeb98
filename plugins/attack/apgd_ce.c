/* apgd-ce: Auto-PGD on the cross-entropy loss (Croce & Hein, ICML 2020), a
 * whole-run attack; the iteration is apgd.c's. A runtime-targeted run
 * descends the loss towards the given labels. */
#include <robusta/plugin.h>

#include "apgd.h"

#define WHO "apgd-ce"

static const rb_param_spec apgd_ce_params[] = {APGD_PARAMS_COMMON, {NULL}};

static rb_status apgd_ce_run(void *self, const rb_params *params, const rb_attack_oracle *oracle,
                             rb_attack_batch *b)
{
    rb_attack_view v;
    apgd_settings set;
    rb_status st = apgd_open_run(WHO, params, APGD_LOSS_CE, b, &v, &set);
    (void)self;
    if (st != RB_OK)
        return st;
    return apgd_run_rows(WHO, &set, oracle, b, b->stream, v.rows, v.cols, NULL, v.x, v.x0, b->labels, NULL,
                         b->targeted != 0, NULL);
}

RB_ATTACK_PLUGIN("apgd-ce", "1.1", "Auto-PGD on the cross-entropy loss, Linf or L2 (Croce & Hein 2020)",
                 apgd_ce_params, .run = apgd_ce_run);
