/* Built by tests/installed-plugin.sh against the installed robusta only:
 * finds the example fgsm plugin through RB_PLUGIN_PATH and checks one FGSM
 * step and projection against hand-computed values. */
#include <math.h>
#include <stdio.h>

#include <robusta/robusta.h>

static int fail(const char *what)
{
    fprintf(stderr, "installed_plugin_run: %s: %s\n", what, rb_last_error());
    return 1;
}

int main(void)
{
    float x0[4] = {0.5f, 0.5f, 0.95f, 0.02f};
    float x[4] = {0.5f, 0.5f, 0.95f, 0.02f};
    float g[4] = {1.0f, -1.0f, 2.0f, 0.0f};
    /* eps 0.1: +, -, + (clamped to 1), no move where the gradient is 0 */
    const float want[4] = {0.6f, 0.4f, 1.0f, 0.02f};
    int64_t shape[2] = {1, 4};
    rb_registry *reg = NULL;
    rb_params *params = NULL;
    rb_tensor *tx = NULL, *tx0 = NULL, *tg = NULL;
    const rb_plugin *fgsm;
    const rb_attack_ops *ops;
    rb_attack_batch batch = {0};
    int code = 0;

    if (rb_registry_create(&reg) != RB_OK || rb_registry_load_default(reg) != RB_OK)
        return fail("registry");
    if (rb_registry_find(reg, RB_PLUGIN_ATTACK, "fgsm", &fgsm) != RB_OK)
        return fail("find fgsm");
    ops = fgsm->ops.attack;
    if (rb_params_create(&params, fgsm->params) != RB_OK || rb_params_set(params, "eps", "0.1") != RB_OK)
        return fail("parameters");
    if (rb_tensor_wrap(&tx, RB_DTYPE_F32, 2, shape, x) != RB_OK ||
        rb_tensor_wrap(&tx0, RB_DTYPE_F32, 2, shape, x0) != RB_OK ||
        rb_tensor_wrap(&tg, RB_DTYPE_F32, 2, shape, g) != RB_OK)
        return fail("tensors");
    batch.x_adv = tx;
    batch.x_clean = tx0;
    batch.grad = tg;
    if (ops->step(NULL, params, &batch) != RB_OK || ops->project(NULL, params, &batch) != RB_OK)
        return fail("fgsm step");
    for (int i = 0; i < 4; i++) {
        if (fabsf(x[i] - want[i]) > 1e-6f) { /* a few float32 ulps */
            fprintf(stderr, "installed_plugin_run: value %d is %.9g, expected %.9g\n", i, x[i], want[i]);
            code = 1;
        }
    }
    rb_tensor_destroy(tx);
    rb_tensor_destroy(tx0);
    rb_tensor_destroy(tg);
    rb_params_destroy(params);
    rb_registry_destroy(reg);
    return code;
}
