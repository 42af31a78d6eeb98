/* Built by tests/installed-plugin.sh against the installed robusta only:
 * finds the example plugins fgsm and mi-fgsm through RB_PLUGIN_PATH and
 *  - checks one FGSM step and projection against hand-computed values;
 *  - checks MI-FGSM's momentum on a hand-computed case: two steps, then a
 *    restart that must forget the momentum;
 *  - runs both through the installed runtime (rb_attack_run) on a small
 *    ResNet from the installed resnet plugin: MI-FGSM with one step and
 *    mu 0 is FGSM bit for bit, and with ten steps it stays in the Linf ball
 *    and in [0, 1];
 *  - writes that model and its images (WORKDIR/m.rbt, x.npy, y.npy) for the
 *    script to attack with the installed robusta command.
 * Usage: installed_plugin_run WORKDIR */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <robusta/robusta.h>

#define N 6
#define S 8
#define PER (3 * S * S)

static int fail(const char *what)
{
    fprintf(stderr, "installed_plugin_run: %s: %s\n", what, rb_last_error());
    return 1;
}

/* |got - want| <= 1e-6 (a few float32 ulps near 1) for n values. */
static int close_to(const char *what, const float *got, const float *want, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(got[i] - want[i]) > 1e-6f) {
            fprintf(stderr, "installed_plugin_run: %s: value %d is %.9g, expected %.9g\n", what, i, got[i], want[i]);
            bad = 1;
        }
    return bad;
}

static const rb_plugin *find(rb_registry *reg, const char *name)
{
    const rb_plugin *p = NULL;
    if (rb_registry_find(reg, RB_PLUGIN_ATTACK, name, &p) != RB_OK)
        fail(name);
    return p;
}

static int fgsm_by_hand(const rb_plugin *fgsm)
{
    float x0[4] = {0.5f, 0.5f, 0.95f, 0.02f};
    float x[4] = {0.5f, 0.5f, 0.95f, 0.02f};
    float g[4] = {1.0f, -1.0f, 2.0f, 0.0f};
    /* eps 0.1: +, -, + (clamped to 1), no move where the gradient is 0 */
    const float want[4] = {0.6f, 0.4f, 1.0f, 0.02f};
    int64_t shape[2] = {1, 4};
    rb_params *params = NULL;
    rb_tensor *tx = NULL, *tx0 = NULL, *tg = NULL;
    rb_attack_batch batch = {0};
    int code;
    if (rb_params_create(&params, fgsm->params) != RB_OK || rb_params_set(params, "eps", "0.1") != RB_OK)
        return fail("fgsm parameters");
    if (rb_tensor_wrap(&tx, RB_DTYPE_F32, 2, shape, x) != RB_OK ||
        rb_tensor_wrap(&tx0, RB_DTYPE_F32, 2, shape, x0) != RB_OK ||
        rb_tensor_wrap(&tg, RB_DTYPE_F32, 2, shape, g) != RB_OK)
        return fail("tensors");
    batch.x_adv = tx;
    batch.x_clean = tx0;
    batch.grad = tg;
    if (fgsm->ops.attack->step(NULL, params, &batch) != RB_OK || fgsm->ops.attack->project(NULL, params, &batch) != RB_OK)
        return fail("fgsm step");
    code = close_to("fgsm", x, want, 4);
    rb_tensor_destroy(tx);
    rb_tensor_destroy(tx0);
    rb_tensor_destroy(tg);
    rb_params_destroy(params);
    return code;
}

/* eps 0.1, mu 1, 2 steps (alpha = eps / 2 = 0.05), one row of 4 values at 0.5:
 *   step 0: grad (1, -1, 2, 0), |grad|_1 = 4: g = (1/4, -1/4, 1/2, 0),
 *           x = (0.55, 0.45, 0.55, 0.5)
 *   step 1: grad (-1, -3, -1/2, 0), |grad|_1 = 9/2:
 *           g = (1/4 - 2/9, -1/4 - 2/3, 1/2 - 1/9, 0) = (+0.03, -0.92, +0.39, 0):
 *           the momentum keeps values 0 and 2 going up where plain FGSM
 *           would step down, x = (0.60, 0.40, 0.60, 0.5)
 *   restart, step 0 from x0: grad (1, 1, -1, 1): g = grad / 4 alone (with
 *           the old g, values 1 and 2 would turn), x = (0.55, 0.55, 0.45, 0.55) */
static int mi_fgsm_by_hand(const rb_plugin *mi)
{
    const rb_attack_ops *ops = mi->ops.attack;
    float x0[4] = {0.5f, 0.5f, 0.5f, 0.5f}, x[4] = {0.5f, 0.5f, 0.5f, 0.5f}, g[4] = {1, -1, 2, 0};
    const float after0[4] = {0.55f, 0.45f, 0.55f, 0.5f}, after1[4] = {0.60f, 0.40f, 0.60f, 0.5f};
    const float restarted[4] = {0.55f, 0.55f, 0.45f, 0.55f};
    int64_t shape[2] = {1, 4};
    rb_attack_plan plan = {.examples = 1, .batch = 1, .channels = 1, .height = 1, .width = 4, .steps = 2, .restarts = 2};
    rb_params *params = NULL;
    rb_tensor *tx = NULL, *tx0 = NULL, *tg = NULL;
    rb_attack_batch batch = {0};
    void *self = NULL;
    int code = 0;
    if (rb_params_create(&params, mi->params) != RB_OK || rb_params_set(params, "eps", "0.1") != RB_OK)
        return fail("mi-fgsm parameters");
    if (rb_tensor_wrap(&tx, RB_DTYPE_F32, 2, shape, x) != RB_OK ||
        rb_tensor_wrap(&tx0, RB_DTYPE_F32, 2, shape, x0) != RB_OK ||
        rb_tensor_wrap(&tg, RB_DTYPE_F32, 2, shape, g) != RB_OK)
        return fail("tensors");
    batch.x_adv = tx;
    batch.x_clean = tx0;
    if (ops->create(params, &self) != RB_OK || ops->begin(self, params, &plan) != RB_OK)
        return fail("mi-fgsm create and begin");
    for (int it = 0; it < 2; it++) {
        batch.iteration = it;
        batch.grad = tg;
        if (ops->step(self, params, &batch) != RB_OK)
            return fail("mi-fgsm step");
        batch.grad = NULL;
        if (ops->project(self, params, &batch) != RB_OK)
            return fail("mi-fgsm project");
        code |= close_to(it == 0 ? "mi-fgsm step 0" : "mi-fgsm step 1", x, it == 0 ? after0 : after1, 4);
        memcpy(g, (const float[]){-1, -3, -0.5f, 0}, sizeof g);
    }
    memcpy(x, x0, sizeof x);
    memcpy(g, (const float[]){1, 1, -1, 1}, sizeof g);
    batch.restart = 1;
    batch.iteration = 0;
    batch.grad = tg;
    if (ops->step(self, params, &batch) != RB_OK || ops->project(self, params, &batch) != RB_OK)
        return fail("mi-fgsm restart");
    code |= close_to("mi-fgsm after a restart", x, restarted, 4);
    ops->destroy(self);
    rb_tensor_destroy(tx);
    rb_tensor_destroy(tx0);
    rb_tensor_destroy(tg);
    rb_params_destroy(params);
    return code;
}

/* A CIFAR-stem ResNet-18 of width 1/8 and 5 classes with seeded weights. */
static rb_model *small_model(rb_registry *reg)
{
    const rb_plugin *arch;
    const char *preset;
    rb_params *p = NULL;
    rb_model *m = NULL;
    rb_model_input in = rb_model_input_imagenet(S, S);
    if (rb_arch_resolve(reg, "resnet18", &arch, &preset) != RB_OK || rb_params_create(&p, arch->params) != RB_OK ||
        rb_params_set(p, RB_PARAM_PRESET, preset) != RB_OK || rb_params_set(p, "stem", "cifar") != RB_OK ||
        rb_params_set(p, "width", "0.125") != RB_OK || rb_params_set(p, RB_PARAM_NUM_CLASSES, "5") != RB_OK ||
        rb_model_create(&m, arch, p, &in) != RB_OK || rb_graph_init_params(rb_model_graph(m), 3) != RB_OK) {
        fail("a resnet18 from the installed resnet plugin");
        rb_model_destroy(m);
        m = NULL;
    }
    rb_params_destroy(p);
    return m;
}

static int through_the_runtime(rb_registry *reg, const rb_plugin *fgsm, const rb_plugin *mi, const char *dir)
{
    static float x[N * PER], a[N * PER], b[N * PER];
    int64_t y[N], xshape[4] = {N, 3, S, S}, n = N;
    rb_model *m = small_model(reg);
    rb_engine *e = NULL;
    rb_engine_options eo = {.threads = 1};
    rb_attack_options o = rb_attack_options_default();
    rb_attack_stats st;
    rb_params *pf = NULL, *pm = NULL;
    rb_rng rng;
    char path[4096];
    int code = 0;
    if (m == NULL)
        return 1;
    rb_rng_init(&rng, 5, 0, 0);
    for (int i = 0; i < N * PER; i++)
        x[i] = rb_rng_uniform(&rng);
    for (int i = 0; i < N; i++)
        y[i] = i % 5;
    if (rb_engine_create(&e, rb_model_graph(m), 4, &eo) != RB_OK || rb_params_create(&pf, fgsm->params) != RB_OK ||
        rb_params_create(&pm, mi->params) != RB_OK || rb_params_set(pm, "mu", "0") != RB_OK)
        return fail("engine and parameters");
    o.steps = 1;
    if (rb_attack_run(e, m, fgsm, pf, &o, x, y, N, a, NULL, NULL) != RB_OK ||
        rb_attack_run(e, m, mi, pm, &o, x, y, N, b, NULL, NULL) != RB_OK)
        return fail("one step of fgsm and mi-fgsm");
    if (memcmp(a, b, sizeof a) != 0 || memcmp(a, x, sizeof a) == 0) {
        fprintf(stderr, "installed_plugin_run: mi-fgsm with 1 step and mu 0 is not FGSM bit for bit\n");
        code = 1;
    }
    o.steps = 10;
    if (rb_params_set(pm, "mu", "1") != RB_OK || rb_attack_run(e, m, mi, pm, &o, x, y, N, b, NULL, &st) != RB_OK)
        return fail("ten steps of mi-fgsm");
    for (int i = 0; i < N * PER; i++)
        if (!(b[i] >= 0.0f && b[i] <= 1.0f && fabsf(b[i] - x[i]) <= 8.0f / 255 + 1e-6f)) {
            fprintf(stderr, "installed_plugin_run: mi-fgsm value %d is %.9g, from %.9g: out of the ball\n", i, b[i],
                    x[i]);
            code = 1;
            break;
        }
    if (st.max_linf < 0.5 * 8 / 255 || st.adv_correct > st.clean_correct) {
        fprintf(stderr, "installed_plugin_run: mi-fgsm hardly moved (Linf %g) or helped the model\n", st.max_linf);
        code = 1;
    }
    snprintf(path, sizeof path, "%s/m.rbt", dir);
    if (rb_model_save(m, path) != RB_OK)
        code = fail(path);
    snprintf(path, sizeof path, "%s/x.npy", dir);
    if (rb_npy_save(path, RB_DTYPE_F32, 4, xshape, x) != RB_OK)
        code = fail(path);
    snprintf(path, sizeof path, "%s/y.npy", dir);
    if (rb_npy_save(path, RB_DTYPE_I64, 1, &n, y) != RB_OK)
        code = fail(path);
    rb_params_destroy(pf);
    rb_params_destroy(pm);
    rb_engine_destroy(e);
    rb_model_destroy(m);
    return code;
}

int main(int argc, char **argv)
{
    rb_registry *reg = NULL;
    const rb_plugin *fgsm, *mi;
    int code;
    if (argc != 2) {
        fprintf(stderr, "usage: installed_plugin_run WORKDIR\n");
        return 2;
    }
    if (rb_registry_create(&reg) != RB_OK || rb_registry_load_default(reg) != RB_OK)
        return fail("registry");
    if ((fgsm = find(reg, "fgsm")) == NULL || (mi = find(reg, "mi-fgsm")) == NULL)
        return 1;
    code = fgsm_by_hand(fgsm);
    code |= mi_fgsm_by_hand(mi);
    code |= through_the_runtime(reg, fgsm, mi, argv[1]);
    rb_registry_destroy(reg);
    return code;
}
