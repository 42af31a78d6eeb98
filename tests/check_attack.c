/* The attack runtime (robusta/attack.h) and `robusta attack`: sanity checks
 * every attack implementation must pass, on a tiny CIFAR-stem ResNet-18
 * (width 1/8, 5 classes, 8 x 8 images) with seeded random weights and
 * batch-norm statistics. The model is not trained and so not robust: its
 * labels are made from its own clean predictions (half of them shifted by
 * one class), which gives a clean accuracy of exactly 50% and lets attacks
 * show their effect. */
#include "config.h"

#include <math.h>

#include <robusta/robusta.h>

#include "testutil.h"
#include "testmodels.h"

#define RUN(r, env, ...) run_robusta(r, env, (const char *const[]){__VA_ARGS__, NULL})

#define N 12
#define C 3
#define S 8
#define PER (C * S * S)
#define K 5

static run_result r;
static rb_registry *reg;
static char dir[256];
static rb_model *model;
static float x[N * PER];
static int64_t y[N];      /* half right, half wrong */
static int64_t y_pred[N]; /* the clean predictions */

static rb_engine *make_engine(int64_t batch)
{
    rb_engine *e;
    rb_engine_options eo = {.threads = 1};
    ck_assert_int_eq(rb_engine_create(&e, rb_model_graph(model), batch, &eo), RB_OK);
    return e;
}

static int64_t argmax(const float *v, int64_t n)
{
    int64_t best = 0;
    for (int64_t j = 1; j < n; j++)
        if (v[j] > v[best])
            best = j;
    return best;
}

static void setup(void)
{
    rb_rng rng;
    float logits[N * K];
    rb_engine *e;
    ck_assert_int_eq(rb_registry_create(&reg), RB_OK);
    ck_assert_int_eq(rb_registry_load_path(reg, test_env("RB_PLUGIN_PATH")), RB_OK);
    make_temp_dir(dir, sizeof dir);
    model = small_model(reg, S, 3);
    rb_rng_init(&rng, 11, 0, 0);
    for (int i = 0; i < N * PER; i++)
        x[i] = rb_rng_uniform(&rng);
    memset(y, 0, sizeof y);
    e = make_engine(4);
    ck_assert_int_eq(rb_attack_loss_grad(e, model, x, y, N, NULL, NULL, logits), RB_OK);
    rb_engine_destroy(e);
    for (int i = 0; i < N; i++) {
        y_pred[i] = argmax(logits + i * K, K);
        y[i] = i % 2 ? (y_pred[i] + 1) % K : y_pred[i];
    }
}

static void teardown(void)
{
    rb_model_destroy(model);
    rb_registry_destroy(reg);
    remove_temp_dir(dir);
}

static const rb_plugin *attack(const char *name)
{
    const rb_plugin *p;
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_ATTACK, name, &p), RB_OK);
    return p;
}

static rb_params *pgd_params(const rb_plugin *p, double eps, double step)
{
    rb_params *params;
    char text[64];
    ck_assert_int_eq(rb_params_create(&params, p->params), RB_OK);
    snprintf(text, sizeof text, "%.17g", eps);
    ck_assert_int_eq(rb_params_set(params, "eps", text), RB_OK);
    snprintf(text, sizeof text, "%.17g", step);
    ck_assert_int_eq(rb_params_set(params, "step-size", text), RB_OK);
    return params;
}

/* Runs `name` with eps/step on all N images through an engine of `batch`. */
static rb_attack_stats run_attack(const char *name, double eps, double step, const rb_attack_options *o,
                                  int64_t batch, float *out, int64_t *targets)
{
    const rb_plugin *p = attack(name);
    rb_params *params = pgd_params(p, eps, step);
    rb_engine *e = make_engine(batch);
    rb_attack_stats st;
    ck_assert_msg(rb_attack_run(e, model, p, params, o, x, y, N, out, targets, &st) == RB_OK, "%s",
                  rb_last_error());
    ck_assert_int_eq(st.count, N);
    ck_assert_int_eq(st.clean_correct, N / 2);
    rb_engine_destroy(e);
    rb_params_destroy(params);
    return st;
}

static double norm_l2(const float *a, const float *b)
{
    double s = 0;
    for (int i = 0; i < PER; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(s);
}

static double norm_linf(const float *a, const float *b)
{
    double m = 0;
    for (int i = 0; i < PER; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static float adv[N * PER], adv2[N * PER];

START_TEST(eps_zero_gives_the_clean_images_and_accuracy)
{
    const char *names[] = {"pgd-l2", "pgd-linf"};
    rb_attack_options o = rb_attack_options_default();
    o.random_start = true;
    o.steps = 5;
    o.restarts = 2;
    for (int i = 0; i < 2; i++) {
        rb_attack_stats st = run_attack(names[i], 0.0, 0.01, &o, 4, adv, NULL);
        ck_assert_int_eq(st.adv_correct, st.clean_correct);
        ck_assert_int_eq(memcmp(adv, x, sizeof x), 0);
        ck_assert(st.max_l2 == 0 && st.max_linf == 0);
    }
}
END_TEST

START_TEST(outputs_stay_in_the_ball_and_in_the_unit_box)
{
    struct {
        const char *name;
        double eps, step;
        bool l2;
    } cases[] = {{"pgd-l2", 0.3, 0.1, true}, {"pgd-linf", 4.0 / 255, 1.0 / 255, false},
                 {"pgd-l2", 2.0, 1.0, true}, {"pgd-linf", 0.25, 0.1, false}};
    rb_attack_options o = rb_attack_options_default();
    o.random_start = true;
    o.steps = 6;
    o.seed = 5;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double max = 0;
        rb_attack_stats st;
        o.keep_best = c % 2 == 0;
        st = run_attack(cases[c].name, cases[c].eps, cases[c].step, &o, 4, adv, NULL);
        for (int i = 0; i < N; i++) {
            double n = cases[c].l2 ? norm_l2(adv + i * PER, x + i * PER) : norm_linf(adv + i * PER, x + i * PER);
            ck_assert_msg(n <= cases[c].eps + 1e-6, "%s example %d: norm %.9g > eps %.9g", cases[c].name, i, n,
                          cases[c].eps);
            max = fmax(max, n);
        }
        for (int i = 0; i < N * PER; i++)
            ck_assert(adv[i] >= 0.0f && adv[i] <= 1.0f);
        ck_assert(fabs((cases[c].l2 ? st.max_l2 : st.max_linf) - max) < 1e-9);
        ck_assert(max > 0.5 * cases[c].eps);
        ck_assert_int_le(st.adv_correct, st.clean_correct);
        ck_assert_int_eq(st.forwards, 3 * (o.steps + 2)); /* clean + steps + final, 3 chunks */
        ck_assert_int_eq(st.backwards, 3 * o.steps);
    }
}
END_TEST

START_TEST(accuracy_does_not_increase_with_eps)
{
    const double eps[] = {0, 1.0 / 255, 4.0 / 255, 16.0 / 255, 64.0 / 255};
    const double l2_eps[] = {0, 0.02, 0.05, 0.1, 0.25, 1.0};
    rb_attack_options o = rb_attack_options_default();
    int64_t last = N + 1;
    o.steps = 10;
    for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++) {
        rb_attack_stats st = run_attack("pgd-linf", eps[i], eps[i] / 4 + 1e-6, &o, 4, adv, NULL);
        ck_assert_msg(st.adv_correct <= last, "eps %g: %lld correct, more than %lld at a smaller eps", eps[i],
                      (long long)st.adv_correct, (long long)last);
        last = st.adv_correct;
    }
    ck_assert_int_lt(last, N / 2);
    last = N + 1;
    for (size_t i = 0; i < sizeof l2_eps / sizeof l2_eps[0]; i++) {
        double e = l2_eps[i];
        rb_attack_stats st = run_attack("pgd-l2", e, e / 4 + 1e-6, &o, 4, adv, NULL);
        ck_assert_msg(st.adv_correct <= last, "L2 eps %g: %lld correct, more than %lld", e,
                      (long long)st.adv_correct, (long long)last);
        last = st.adv_correct;
    }
}
END_TEST

START_TEST(an_unbounded_attack_fools_every_example)
{
    rb_attack_options o = rb_attack_options_default();
    rb_attack_stats st;
    o.steps = 40;
    st = run_attack("pgd-linf", 1.0, 0.05, &o, 4, adv, NULL);
    ck_assert_int_eq(st.adv_correct, 0);
    st = run_attack("pgd-l2", 100.0, 1.0, &o, 4, adv, NULL);
    ck_assert_int_eq(st.adv_correct, 0);
}
END_TEST

START_TEST(input_gradients_are_per_example_finite_and_not_zero)
{
    static float g4[N * PER], g1[N * PER];
    float l4[N], l1[N];
    rb_engine *e4 = make_engine(5), *e1 = make_engine(1);
    /* 12 examples through a batch of 5: the last chunk is padded. */
    ck_assert_int_eq(rb_attack_loss_grad(e4, model, x, y, N, l4, g4, NULL), RB_OK);
    ck_assert_int_eq(rb_attack_loss_grad(e1, model, x, y, N, l1, g1, NULL), RB_OK);
    for (int i = 0; i < N; i++) {
        double n = 0, diff = 0;
        for (int k = 0; k < PER; k++) {
            ck_assert(isfinite(g4[i * PER + k]));
            n += (double)g4[i * PER + k] * g4[i * PER + k];
            diff += ((double)g4[i * PER + k] - g1[i * PER + k]) * ((double)g4[i * PER + k] - g1[i * PER + k]);
        }
        ck_assert_msg(n > 1e-12, "example %d has a zero gradient", i);
        /* Each example's gradient is that of its own loss: the same whatever the batch. */
        ck_assert_msg(sqrt(diff) <= 1e-3 * sqrt(n), "example %d: batch 5 and batch 1 gradients differ (%g vs %g)", i,
                      sqrt(diff), sqrt(n));
        ck_assert(fabsf(l4[i] - l1[i]) <= 1e-4f * (1 + fabsf(l1[i])));
    }
    /* Finite differences along the gradient agree with it (example 0, batch 1). */
    {
        static float xp[PER];
        float lp, lm;
        double gn = 0, h = 1e-3;
        for (int k = 0; k < PER; k++)
            gn += (double)g1[k] * g1[k];
        gn = sqrt(gn);
        for (int k = 0; k < PER; k++)
            xp[k] = x[k] + (float)(h * g1[k] / gn);
        ck_assert_int_eq(rb_attack_loss_grad(e1, model, xp, y, 1, &lp, NULL, NULL), RB_OK);
        for (int k = 0; k < PER; k++)
            xp[k] = x[k] - (float)(h * g1[k] / gn);
        ck_assert_int_eq(rb_attack_loss_grad(e1, model, xp, y, 1, &lm, NULL, NULL), RB_OK);
        ck_assert_msg(fabs(((double)lp - lm) / (2 * h) - gn) < 0.05 * gn + 1e-3, "fd %g vs |g| %g",
                      ((double)lp - lm) / (2 * h), gn);
    }
    rb_engine_destroy(e4);
    rb_engine_destroy(e1);
}
END_TEST

START_TEST(runs_are_reproducible_and_keyed_by_seed_and_example)
{
    rb_attack_options o = rb_attack_options_default();
    o.steps = 5;
    /* No random start: deterministic. */
    run_attack("pgd-l2", 0.5, 0.1, &o, 4, adv, NULL);
    run_attack("pgd-l2", 0.5, 0.1, &o, 4, adv2, NULL);
    ck_assert_int_eq(memcmp(adv, adv2, sizeof adv), 0);
    /* Random start: depends on the seed... */
    o.random_start = true;
    o.seed = 1;
    run_attack("pgd-linf", 8.0 / 255, 2.0 / 255, &o, 2, adv, NULL);
    o.seed = 2;
    run_attack("pgd-linf", 8.0 / 255, 2.0 / 255, &o, 2, adv2, NULL);
    ck_assert_int_ne(memcmp(adv, adv2, sizeof adv), 0);
    /* ...but not on the batch size, nor on how the data are split. */
    o.seed = 1;
    run_attack("pgd-linf", 8.0 / 255, 2.0 / 255, &o, 3, adv2, NULL);
    ck_assert_int_eq(memcmp(adv, adv2, sizeof adv), 0);
    o.steps = 0; /* the random start alone, in two halves keyed by first_example */
    run_attack("pgd-l2", 0.5, 0.1, &o, 4, adv, NULL);
    {
        const rb_plugin *p = attack("pgd-l2");
        rb_params *params = pgd_params(p, 0.5, 0.1);
        rb_engine *e = make_engine(6);
        ck_assert_int_eq(rb_attack_run(e, model, p, params, &o, x, y, N / 2, adv2, NULL, NULL), RB_OK);
        o.first_example = N / 2;
        ck_assert_int_eq(
            rb_attack_run(e, model, p, params, &o, x + N / 2 * PER, y + N / 2, N / 2, adv2 + N / 2 * PER, NULL, NULL),
            RB_OK);
        ck_assert_int_eq(memcmp(adv, adv2, sizeof adv), 0);
        /* One attacker reused for both halves (as adversarial training does)
         * gives the same bytes as separate runs. */
        {
            rb_attacker *a;
            memset(adv2, 0, sizeof adv2);
            ck_assert_int_eq(rb_attacker_create(&a, e, model), RB_OK);
            o.first_example = 0;
            ck_assert_int_eq(rb_attacker_run(a, p, params, &o, x, y, N / 2, adv2, NULL, NULL), RB_OK);
            o.first_example = N / 2;
            ck_assert_int_eq(
                rb_attacker_run(a, p, params, &o, x + N / 2 * PER, y + N / 2, N / 2, adv2 + N / 2 * PER, NULL, NULL),
                RB_OK);
            ck_assert_int_eq(memcmp(adv, adv2, sizeof adv), 0);
            rb_attacker_destroy(a);
        }
        rb_engine_destroy(e);
        rb_params_destroy(params);
    }
}
END_TEST

START_TEST(restarts_never_raise_robust_accuracy)
{
    rb_attack_options o = rb_attack_options_default();
    rb_attack_stats one, many;
    o.steps = 3;
    o.random_start = true;
    o.seed = 9;
    one = run_attack("pgd-linf", 1.0 / 255, 0.5 / 255, &o, 4, adv, NULL);
    o.restarts = 5;
    many = run_attack("pgd-linf", 1.0 / 255, 0.5 / 255, &o, 4, adv2, NULL);
    ck_assert_int_le(many.adv_correct, one.adv_correct);
    /* Examples fooled by restart 0 keep restart 0's image. */
    for (int i = 0; i < N; i++)
        ck_assert(norm_linf(adv2 + i * PER, x + i * PER) <= 1.0 / 255 + 1e-6);
    /* The same with keep-best. */
    o.keep_best = true;
    o.restarts = 1;
    one = run_attack("pgd-l2", 0.1, 0.05, &o, 4, adv, NULL);
    o.restarts = 4;
    many = run_attack("pgd-l2", 0.1, 0.05, &o, 4, adv2, NULL);
    ck_assert_int_le(many.adv_correct, one.adv_correct);
    /* Restarts without a random start would repeat the same run. */
    {
        const rb_plugin *p = attack("pgd-l2");
        rb_engine *e = make_engine(4);
        o.random_start = false;
        ck_assert_int_eq(rb_attack_run(e, model, p, NULL, &o, x, y, N, adv, NULL, NULL), RB_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_nonnull(strstr(rb_last_error(), "without a random start"));
        rb_engine_destroy(e);
    }
}
END_TEST

START_TEST(targeted_attacks_reach_their_targets)
{
    rb_attack_options o = rb_attack_options_default();
    int64_t targets[N];
    rb_attack_stats st;
    float logits[N * K];
    rb_engine *e = make_engine(4);
    ck_assert_int_eq(rb_attack_loss_grad(e, model, x, y, N, NULL, NULL, logits), RB_OK);
    rb_engine_destroy(e);
    o.steps = 40;
    o.target = RB_ATTACK_TARGET_LEAST_LIKELY;
    st = run_attack("pgd-linf", 1.0, 0.05, &o, 4, adv, targets);
    for (int i = 0; i < N; i++) {
        ck_assert_int_ne(targets[i], y[i]);
        for (int j = 0; j < K; j++)
            ck_assert(j == y[i] || logits[i * K + j] >= logits[i * K + targets[i]]);
    }
    ck_assert_msg(st.target_reached >= N * 8 / 10, "least likely: %lld of %d", (long long)st.target_reached, N);
    o.target = RB_ATTACK_TARGET_RANDOM;
    o.seed = 4;
    o.keep_best = true;
    st = run_attack("pgd-l2", 100.0, 1.0, &o, 4, adv, targets);
    for (int i = 0; i < N; i++)
        ck_assert(targets[i] != y[i] && targets[i] >= 0 && targets[i] < K);
    ck_assert_msg(st.target_reached >= N * 8 / 10, "random: %lld of %d", (long long)st.target_reached, N);
    {
        int64_t again[N];
        run_attack("pgd-l2", 0.0, 1.0, &o, 3, adv, again); /* targets do not depend on the batch */
        ck_assert_int_eq(memcmp(targets, again, sizeof again), 0);
    }
}
END_TEST

/* A whole-run attack (FGSM through the oracle) must match one PGD-Linf step
 * of size eps: the oracle's per-example gradients are the loop's. */
static rb_status fgsm_run(void *self, const rb_params *p, const rb_attack_oracle *oracle, rb_attack_batch *b)
{
    rb_attack_view v;
    rb_tensor *g;
    int64_t shape[4];
    rb_status s = rb_attack_batch_view(b, "test-fgsm", false, &v);
    (void)self;
    (void)p;
    if (s != RB_OK)
        return s;
    for (int d = 0; d < 4; d++)
        shape[d] = rb_tensor_dim(b->x_clean, d);
    if ((s = rb_tensor_create(&g, RB_DTYPE_F32, 4, shape)) != RB_OK)
        return s;
    s = oracle->loss_and_grad(oracle->ctx, b->x_adv, b->labels, NULL, g);
    if (s == RB_OK) {
        const float *gd = rb_tensor_cdata(g);
        for (int64_t i = 0; i < v.rows * v.cols; i++) {
            float step = gd[i] > 0 ? 8.0f / 255 : gd[i] < 0 ? -8.0f / 255 : 0.0f;
            float t = v.x[i] + (b->targeted ? -step : step);
            v.x[i] = t < 0 ? 0 : t > 1 ? 1 : t;
        }
    }
    rb_tensor_destroy(g);
    return s;
}

RB_ATTACK_PLUGIN("test-fgsm", "1.0", "FGSM through the oracle", NULL, .run = fgsm_run);

START_TEST(whole_run_plugins_get_an_oracle)
{
    rb_attack_options o = rb_attack_options_default();
    rb_engine *e = make_engine(5);
    rb_attack_stats st, pgd;
    ck_assert_int_eq(rb_attack_run(e, model, &rb_plugin_descriptor, NULL, &o, x, y, N, adv, NULL, &st), RB_OK);
    rb_engine_destroy(e);
    o.steps = 1;
    pgd = run_attack("pgd-linf", 8.0 / 255, 8.0 / 255, &o, 5, adv2, NULL);
    for (int i = 0; i < N * PER; i++)
        ck_assert_msg(fabsf(adv[i] - adv2[i]) <= 1e-6f, "index %d: %g vs %g", i, (double)adv[i], (double)adv2[i]);
    ck_assert_int_eq(st.adv_correct, pgd.adv_correct);
    ck_assert_int_eq(st.clean_correct, N / 2);
}
END_TEST

/* The whole-run attacks of AutoAttack's ensemble through the runtime and
 * the engine's oracle (logit objectives backpropagated by the engine):
 * the sanity list pgd-* passes. eps 0 returns the clean images; results
 * stay in the ball and the unit box; the engine's batch (chunks of 4 or
 * one of 12, which changes the oracle's chunking and the rows' offsets)
 * changes nothing; a seed repeats a run and another moves it; restarts
 * never raise robust accuracy, nor do more targets for apgd-t and fab-t
 * (each target attacks only what the earlier ones left); an unbounded ball
 * fools every example. */
static rb_attack_stats run_whole(const char *name, const char *norm, double eps, int steps, int targets,
                                 const rb_attack_options *o, int64_t batch, float *out)
{
    const rb_plugin *p = attack(name);
    rb_params *params;
    rb_engine *e = make_engine(batch);
    rb_attack_stats st;
    char text[64];
    ck_assert_int_eq(rb_params_create(&params, p->params), RB_OK);
    ck_assert_int_eq(rb_params_set(params, "norm", norm), RB_OK);
    snprintf(text, sizeof text, "%.17g", eps);
    ck_assert_int_eq(rb_params_set(params, "eps", text), RB_OK);
    snprintf(text, sizeof text, "%d", steps);
    /* square's budget is queries: 20 per step keeps its share of the time */
    if (strcmp(name, "square") == 0)
        snprintf(text, sizeof text, "%d", 20 * steps);
    ck_assert_int_eq(rb_params_set(params, strcmp(name, "square") == 0 ? "queries" : "steps", text), RB_OK);
    if (targets > 0) {
        snprintf(text, sizeof text, "%d", targets);
        ck_assert_int_eq(rb_params_set(params, "target-classes", text), RB_OK);
    }
    ck_assert_msg(rb_attack_run(e, model, p, params, o, x, y, N, out, NULL, &st) == RB_OK, "%s: %s", name,
                  rb_last_error());
    ck_assert_int_eq(st.clean_correct, N / 2);
    rb_engine_destroy(e);
    rb_params_destroy(params);
    return st;
}

START_TEST(whole_run_attacks_pass_the_sanity_checks)
{
    static const char *const names[6] = {"apgd-ce", "apgd-dlr", "apgd-t", "square", "fab-t", "fab"};
    const char *name = names[_i / 2], *norm = _i % 2 ? "l2" : "linf";
    int targets = _i / 2 == 2 || _i / 2 == 4 ? K - 1 : 0;
    bool l2 = _i % 2 == 1;
    double eps = l2 ? 0.5 : 8.0 / 255;
    rb_attack_options o = rb_attack_options_default();
    rb_attack_stats st, again, one, restarts;
    o.seed = 3;
    st = run_whole(name, norm, 0.0, 4, targets, &o, 4, adv);
    ck_assert_int_eq(memcmp(adv, x, sizeof x), 0);
    ck_assert_int_eq(st.adv_correct, st.clean_correct);
    st = run_whole(name, norm, eps, 5, targets, &o, 4, adv);
    for (int i = 0; i < N; i++) {
        double n = l2 ? norm_l2(adv + i * PER, x + i * PER) : norm_linf(adv + i * PER, x + i * PER);
        ck_assert_msg(n <= eps + 1e-6, "%s %s example %d: norm %.9g > eps %.9g", name, norm, i, n, eps);
    }
    for (int i = 0; i < N * PER; i++)
        ck_assert(adv[i] >= 0.0f && adv[i] <= 1.0f);
    ck_assert_int_le(st.adv_correct, st.clean_correct);
    again = run_whole(name, norm, eps, 5, targets, &o, 12, adv2);
    ck_assert_msg(memcmp(adv, adv2, sizeof adv) == 0, "%s %s: the engine's batch changed the result", name, norm);
    ck_assert_int_eq(again.adv_correct, st.adv_correct);
    o.seed = 4;
    (void)run_whole(name, norm, eps, 5, targets, &o, 4, adv2);
    /* FAB's first restart starts at the clean image: the seed only moves
     * later restarts' starts */
    if (strncmp(name, "fab", 3) != 0)
        ck_assert_msg(memcmp(adv, adv2, sizeof adv) != 0, "%s %s: another seed gave the same run", name, norm);
    o.restarts = 3;
    restarts = run_whole(name, norm, eps, 5, targets, &o, 4, adv2);
    o.restarts = 1;
    one = run_whole(name, norm, eps, 5, targets, &o, 4, adv2);
    ck_assert_int_le(restarts.adv_correct, one.adv_correct);
    if (targets > 0)
        for (int t = 1, last = N + 1; t <= targets; t++) {
            st = run_whole(name, norm, eps, 5, t, &o, 4, adv2);
            ck_assert_msg(st.adv_correct <= last, "apgd-t %s: %d targets leave %lld robust, more than %d", norm, t,
                          (long long)st.adv_correct, last);
            last = (int)st.adv_correct;
        }
    st = run_whole(name, norm, l2 ? 100.0 : 1.0, 20, targets, &o, 4, adv2);
    ck_assert_msg(st.adv_correct == 0, "%s %s: an unbounded ball leaves %lld robust", name, norm,
                  (long long)st.adv_correct);
}
END_TEST

/* AutoAttack's standard version as an ensemble (rb_autoattack_create,
 * rb_attacker_run_stages) on the tiny model at Linf 8/255: misclassified
 * examples are never attacked; the first stage is apgd-ce with the same
 * keys, so it fools exactly what apgd-ce alone fools; every later stage
 * only adds; results sit in the ball; the engine's batch changes nothing;
 * and robust accuracy orders AutoAttack <= APGD-CE <= PGD-20. */
START_TEST(autoattack_runs_its_stages_in_order)
{
    rb_autoattack *aa;
    const rb_attack_stage *stages;
    size_t n;
    int fooled[N], fooled2[N];
    int64_t survived = 0, apgd_fooled = 0;
    rb_engine *e;
    rb_attacker *a;
    rb_attack_options o = rb_attack_options_default();
    rb_attack_stats apgd, pgd;
    rb_params *params;
    const rb_plugin *p = attack("apgd-ce");
    ck_assert_msg(rb_autoattack_create(&aa, reg, "standard", "linf", 8.0 / 255, K, 0) == RB_OK, "%s",
                  rb_last_error());
    stages = rb_autoattack_stages(aa, &n);
    ck_assert_int_eq(n, 4);
    ck_assert_str_eq(stages[0].plugin->name, "apgd-ce");
    ck_assert_str_eq(stages[1].plugin->name, "apgd-t");
    ck_assert_str_eq(stages[2].plugin->name, "fab-t");
    ck_assert_str_eq(stages[3].plugin->name, "square");
    e = make_engine(4);
    ck_assert_int_eq(rb_attacker_create(&a, e, model), RB_OK);
    ck_assert_msg(rb_attacker_run_stages(a, stages, n, x, y, N, 0, adv, fooled) == RB_OK, "%s", rb_last_error());
    rb_attacker_destroy(a);
    rb_engine_destroy(e);
    /* apgd-ce alone, with AutoAttack's settings */
    ck_assert_int_eq(rb_params_create(&params, p->params), RB_OK);
    ck_assert_int_eq(rb_params_set(params, "eps", "8/255"), RB_OK);
    e = make_engine(4);
    ck_assert_int_eq(rb_attack_run(e, model, p, params, &o, x, y, N, adv2, NULL, &apgd), RB_OK);
    rb_engine_destroy(e);
    rb_params_destroy(params);
    for (int i = 0; i < N; i++) {
        ck_assert_msg((fooled[i] == RB_ATTACK_CLEAN_WRONG) == (i % 2 == 1), "example %d: %d", i, fooled[i]);
        ck_assert_int_ge(fooled[i], RB_ATTACK_CLEAN_WRONG);
        ck_assert_int_lt(fooled[i], 4);
        survived += fooled[i] == RB_ATTACK_SURVIVED;
        apgd_fooled += fooled[i] == 0;
        ck_assert_msg(norm_linf(adv + i * PER, x + i * PER) <= 8.0 / 255 + 1e-6, "example %d outside the ball", i);
        if (fooled[i] < 0)
            ck_assert_int_eq(memcmp(adv + i * PER, x + i * PER, PER * sizeof(float)), 0);
    }
    ck_assert_int_eq(apgd_fooled, N / 2 - apgd.adv_correct);
    ck_assert_int_le(survived, apgd.adv_correct);
    /* the same with an engine of 12 */
    e = make_engine(12);
    ck_assert_int_eq(rb_attacker_create(&a, e, model), RB_OK);
    ck_assert_int_eq(rb_attacker_run_stages(a, stages, n, x, y, N, 0, adv2, fooled2), RB_OK);
    rb_attacker_destroy(a);
    rb_engine_destroy(e);
    ck_assert_int_eq(memcmp(fooled, fooled2, sizeof fooled), 0);
    ck_assert_int_eq(memcmp(adv, adv2, sizeof adv), 0);
    o.steps = 20;
    pgd = run_attack("pgd-linf", 8.0 / 255, 2.0 / 255, &o, 4, adv2, NULL);
    ck_assert_int_le(apgd.adv_correct, pgd.adv_correct);
    rb_autoattack_destroy(aa);
}
END_TEST

START_TEST(autoattack_refuses_what_it_cannot_run)
{
    rb_autoattack *aa = NULL;
    ck_assert_int_eq(rb_autoattack_create(&aa, reg, "standrd", "linf", 0.03, K, 0), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "AutoAttack: unknown version 'standrd' (did you mean standard?); use standard, "
                                      "plus or rand");
    ck_assert_int_eq(rb_autoattack_create(&aa, reg, "standard", "l1", 0.03, K, 0), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "AutoAttack: unknown norm 'l1'; use linf or l2");
    ck_assert_int_eq(rb_autoattack_create(&aa, reg, "standard", "l2", 0.5, 3, 0), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "AutoAttack needs a classifier of at least 4 classes (its DLR losses read the "
                                      "3rd and 4th largest logits); this model has 3");
    ck_assert_ptr_null(aa);
    ck_assert_int_eq(rb_autoattack_create(&aa, reg, "rand", "l2", 0.5, K, 0), RB_OK);
    {
        size_t n;
        const rb_attack_stage *stages = rb_autoattack_stages(aa, &n);
        ck_assert_int_eq(n, 2);
        ck_assert_str_eq(stages[1].plugin->name, "apgd-dlr");
        ck_assert_str_eq(rb_autoattack_version(aa), "rand");
    }
    rb_autoattack_destroy(aa);
    /* plus: six stages, the untargeted ones with 5 restarts */
    ck_assert_int_eq(rb_autoattack_create(&aa, reg, "plus", "linf", 0.03, K, 0), RB_OK);
    {
        static const char *const names[6] = {"apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"};
        static const int restarts[6] = {5, 5, 5, 1, 1, 1};
        size_t n;
        const rb_attack_stage *stages = rb_autoattack_stages(aa, &n);
        ck_assert_int_eq(n, 6);
        for (size_t k = 0; k < n; k++) {
            ck_assert_str_eq(stages[k].plugin->name, names[k]);
            ck_assert_int_eq(stages[k].options.restarts, restarts[k]);
        }
    }
    rb_autoattack_destroy(aa);
}
END_TEST

START_TEST(the_command_prints_the_figures_and_refuses_bad_input)
{
    char m[PATH_MAX], xp[PATH_MAX], yp[PATH_MAX], out[PATH_MAX], bad[PATH_MAX], x3[PATH_MAX];
    int64_t xshape[4] = {N, C, S, S}, n = N, bad_y[N];
    rb_npy *back;
    rb_attack_options o = rb_attack_options_default();
    rb_attack_stats st;
    char expect[128];
    snprintf(m, sizeof m, "%s/m.rbt", dir);
    snprintf(xp, sizeof xp, "%s/x.npy", dir);
    snprintf(yp, sizeof yp, "%s/y.npy", dir);
    snprintf(out, sizeof out, "%s/adv.npy", dir);
    snprintf(bad, sizeof bad, "%s/bad.npy", dir);
    snprintf(x3, sizeof x3, "%s/x3.npy", dir);
    ck_assert_int_eq(rb_model_save(model, m), RB_OK);
    ck_assert_int_eq(rb_npy_save(xp, RB_DTYPE_F32, 4, xshape, x), RB_OK);
    ck_assert_int_eq(rb_npy_save(yp, RB_DTYPE_I64, 1, &n, y), RB_OK);

    RUN(&r, NULL, "attack", "--ckpt", m, "--input", xp, "--labels", yp, "--attack", "pgd-linf", "--eps", "4/255",
        "--step-size", "1/255", "--steps", "5", "--output", out, "--batch-size", "5", "--threads", "1");
    ck_assert_msg(r.code == 0, "%s", r.err);
    ck_assert_ptr_nonnull(strstr(r.out, "clean accuracy: 50.00% (6/12)\n"));
    o.steps = 5;
    st = run_attack("pgd-linf", 4.0 / 255, 1.0 / 255, &o, 5, adv, NULL);
    snprintf(expect, sizeof expect, "adversarial accuracy: %.2f%% (%lld/12)\n", 100.0 * (double)st.adv_correct / N,
             (long long)st.adv_correct);
    ck_assert_msg(strstr(r.out, expect) != NULL, "%s", r.out);
    snprintf(expect, sizeof expect, "max perturbation: L2 %.6f, Linf %.6f\n", st.max_l2, st.max_linf);
    ck_assert_msg(strstr(r.out, expect) != NULL, "%s", r.out);
    ck_assert_ptr_nonnull(strstr(r.out, "attack pgd-linf (eps "));
    ck_assert_int_eq(rb_npy_load(&back, out), RB_OK);
    ck_assert_int_eq(back->dtype, RB_DTYPE_F32);
    ck_assert_int_eq(back->ndim, 4);
    ck_assert_int_eq(memcmp(back->shape, xshape, sizeof xshape), 0);
    ck_assert_int_eq(memcmp(back->data, adv, sizeof adv), 0);
    rb_npy_destroy(back);

    /* Targeted, with the targets written out. */
    snprintf(bad, sizeof bad, "%s/t.npy", dir);
    RUN(&r, NULL, "attack", "--ckpt", m, "--input", xp, "--labels", yp, "--attack", "pgd-l2", "--eps", "50",
        "--step-size", "1", "--steps", "30", "--targeted", "least-likely", "--targets", bad, "--output", out,
        "--threads", "1");
    ck_assert_msg(r.code == 0, "%s", r.err);
    ck_assert_ptr_nonnull(strstr(r.out, "target reached: "));
    ck_assert_int_eq(rb_npy_load(&back, bad), RB_OK);
    ck_assert_int_eq(back->dtype, RB_DTYPE_I64);
    rb_npy_destroy(back);

    /* Unknown attack, with a suggestion. */
    RUN(&r, NULL, "attack", "--ckpt", m, "--input", xp, "--labels", yp, "--attack", "pgd-l3", "--output", out);
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(strstr(r.err, "did you mean 'pgd-l2'?") != NULL, "%s", r.err);
    ck_assert_int_eq(count_lines(r.err), 1);
    /* Labels out of range. */
    memcpy(bad_y, y, sizeof bad_y);
    bad_y[3] = K;
    snprintf(bad, sizeof bad, "%s/bad.npy", dir);
    ck_assert_int_eq(rb_npy_save(bad, RB_DTYPE_I64, 1, &n, bad_y), RB_OK);
    RUN(&r, NULL, "attack", "--ckpt", m, "--input", xp, "--labels", bad, "--attack", "pgd-l2", "--output", out);
    ck_assert_int_eq(r.code, 1);
    ck_assert_msg(strstr(r.err, "label 5 of example 3 is outside [0, 5)") != NULL, "%s", r.err);
    ck_assert_int_eq(count_lines(r.err), 1);
    /* Images of the wrong shape. */
    ck_assert_int_eq(rb_npy_save(x3, RB_DTYPE_F32, 3, (const int64_t[]){N, C, S * S}, x), RB_OK);
    RUN(&r, NULL, "attack", "--ckpt", m, "--input", x3, "--labels", yp, "--attack", "pgd-l2", "--output", out);
    ck_assert_int_eq(r.code, 1);
    ck_assert_msg(strstr(r.err, "images must be float32 N x C x H x W") != NULL, "%s", r.err);
    ck_assert_int_eq(count_lines(r.err), 1);
    /* Wrong number of channels. */
    ck_assert_int_eq(rb_npy_save(x3, RB_DTYPE_F32, 4, (const int64_t[]){N, 1, S * 3, S}, x), RB_OK);
    RUN(&r, NULL, "attack", "--ckpt", m, "--input", x3, "--labels", yp, "--attack", "pgd-l2", "--output", out);
    ck_assert_int_eq(r.code, 1);
    ck_assert_msg(strstr(r.err, "has 1 channels but") != NULL, "%s", r.err);
    ck_assert_int_eq(count_lines(r.err), 1);
    /* Restarts without a random start. */
    RUN(&r, NULL, "attack", "--ckpt", m, "--input", xp, "--labels", yp, "--attack", "pgd-l2", "--restarts", "3",
        "--output", out);
    ck_assert_int_eq(r.code, 1);
    ck_assert_int_eq(count_lines(r.err), 1);
    /* Help lists the plugin's own options next to the command's. */
    RUN(&r, NULL, "attack", "--help");
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "--restarts"));
}
END_TEST

/* ------------------------------------------------------------ what attacks execute */

static uint64_t weight_gradient_primitives(const uint64_t *c)
{
    return c[RB_PRIM_CONV_BACKWARD_WEIGHTS] + c[RB_PRIM_BATCHNORM_BACKWARD] + c[RB_PRIM_REORDER_WEIGHT_GRADIENT];
}

/* Convolutions and linear layers of the model (each runs one convolution
 * primitive per forward and one backward-data per backward). */
static uint64_t conv_layers(void)
{
    const rb_graph *g = rb_model_graph(model);
    uint64_t n = 0;
    for (size_t i = 0; i < rb_graph_node_count(g); i++) {
        rb_op op = rb_node_op(rb_graph_node(g, i));
        n += op == RB_OP_CONV || op == RB_OP_LINEAR;
    }
    return n;
}

/* Attacks run the model in inference mode with data-only backward: on an
 * engine that could train (not planned data_grads_only), pgd-l2 (step-based)
 * and apgd-ce (whole-run) execute convolution backward-data for every
 * gradient and not one weight-gradient primitive (convolution
 * backward-weights, batch-norm backward with scale/shift gradients, weight
 * gradient reorders). A training step on the same engine does execute them,
 * so the check can fail. */
START_TEST(attacks_execute_no_weight_gradient_primitive)
{
    rb_engine *e = make_engine(4);
    uint64_t c[RB_PRIM_KIND_COUNT];
    const uint64_t convs = conv_layers();
    struct {
        const char *name;
        const char *const *settings; /* name, value pairs */
    } cases[] = {
        {"pgd-l2", (const char *const[]){"eps", "0.5", "step-size", "0.1", NULL}},
        {"pgd-linf", (const char *const[]){"eps", "8/255", "step-size", "2/255", NULL}},
        {"apgd-ce", (const char *const[]){"eps", "8/255", "steps", "4", NULL}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const rb_plugin *p = attack(cases[k].name);
        rb_params *params;
        rb_attack_options o = rb_attack_options_default();
        rb_attack_stats st;
        o.steps = 3;
        o.seed = 1;
        ck_assert_int_eq(rb_params_create(&params, p->params), RB_OK);
        for (const char *const *kv = cases[k].settings; *kv != NULL; kv += 2)
            ck_assert_int_eq(rb_params_set(params, kv[0], kv[1]), RB_OK);
        rb_engine_reset_primitive_counts(e);
        ck_assert_msg(rb_attack_run(e, model, p, params, &o, x, y, N, adv, NULL, &st) == RB_OK, "%s",
                      rb_last_error());
        ck_assert_int_eq(rb_engine_primitive_counts(e, c), RB_OK);
        ck_assert_int_gt(st.backwards, 0);
        ck_assert_msg(weight_gradient_primitives(c) == 0,
                      "%s ran %llu convolution backward-weights, %llu batch-norm backward with scale/shift "
                      "gradients and %llu weight-gradient reorders",
                      cases[k].name, (unsigned long long)c[RB_PRIM_CONV_BACKWARD_WEIGHTS],
                      (unsigned long long)c[RB_PRIM_BATCHNORM_BACKWARD],
                      (unsigned long long)c[RB_PRIM_REORDER_WEIGHT_GRADIENT]);
        ck_assert_uint_gt(c[RB_PRIM_CONV_BACKWARD_DATA], 0);
        /* Exactly one backward-data per layer per gradient the attack asked for. */
        ck_assert_uint_eq(c[RB_PRIM_CONV_BACKWARD_DATA], (uint64_t)st.backwards * convs);
        ck_assert_uint_eq(c[RB_PRIM_CONV_FORWARD], (uint64_t)st.forwards * convs);
        ck_assert_uint_gt(c[RB_PRIM_BATCHNORM_BACKWARD_DATA], 0);
        rb_params_destroy(params);
    }
    /* One attacker, batch after batch (adversarial training's path). */
    {
        rb_attacker *a;
        rb_attack_options o = rb_attack_options_default();
        o.steps = 2;
        rb_engine_reset_primitive_counts(e);
        ck_assert_int_eq(rb_attacker_create(&a, e, model), RB_OK);
        ck_assert_int_eq(rb_attacker_run(a, attack("pgd-linf"), NULL, &o, x, y, N / 2, adv, NULL, NULL), RB_OK);
        ck_assert_int_eq(rb_attacker_run(a, attack("pgd-linf"), NULL, &o, x + N / 2 * PER, y + N / 2, N / 2,
                                         adv + N / 2 * PER, NULL, NULL),
                         RB_OK);
        rb_attacker_destroy(a);
        ck_assert_int_eq(rb_engine_primitive_counts(e, c), RB_OK);
        ck_assert_uint_eq(weight_gradient_primitives(c), 0);
        ck_assert_uint_gt(c[RB_PRIM_CONV_BACKWARD_DATA], 0);
    }
    /* The counter side of the check: a training step computes weight and
     * scale/shift gradients. */
    rb_engine_reset_primitive_counts(e);
    ck_assert_int_eq(rb_engine_forward(e, x, 4, y, true), RB_OK);
    ck_assert_int_eq(rb_engine_backward(e, true, false), RB_OK);
    ck_assert_int_eq(rb_engine_primitive_counts(e, c), RB_OK);
    ck_assert_uint_eq(c[RB_PRIM_CONV_BACKWARD_WEIGHTS], convs);
    ck_assert_uint_gt(c[RB_PRIM_BATCHNORM_BACKWARD], 0);
    rb_engine_destroy(e);
}
END_TEST

/* ------------------------------------------------------------ bad input */

/* What the library refuses, each with its one line: an unknown attack
 * (the registry), a negative eps (the plugin's parameter table), negative
 * steps and bad schedules (rb_attack_check), and models of 1 or 0 classes
 * (which cannot even be built: softmax cross-entropy needs 2 classes, so a
 * targeted attack on a 1-class model cannot arise). Zero steps
 * are valid: the start point alone (the clean images without a random
 * start). Labels and images share one count in the API, so they cannot
 * disagree in number; labels out of range are refused. */
START_TEST(the_library_refuses_bad_attack_input)
{
    const rb_plugin *p;
    rb_params *params;
    rb_attack_options o = rb_attack_options_default();
    rb_attack_stats st;
    rb_engine *e = make_engine(4);
    int64_t bad_y[N];

    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_ATTACK, "pgd-l3", &p), RB_ERR_NOT_FOUND);
    ck_assert_str_eq(rb_last_error(), "unknown attack plugin 'pgd-l3'; did you mean 'pgd-l2'?");
    p = attack("pgd-l2");
    ck_assert_int_eq(rb_params_create(&params, p->params), RB_OK);
    ck_assert_int_eq(rb_params_set(params, "eps", "-0.1"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--eps: -0.1 is outside [0, inf)");
    ck_assert_int_eq(rb_params_set(params, "step-size", "0"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--step-size: 0 is outside (0, inf)");
    ck_assert_int_eq(rb_params_set(params, "eps", "nan"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_params_set(params, "eps", "0.5"), RB_OK);

    o.steps = -1;
    ck_assert_int_eq(rb_attack_check(p, &o), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "attack: steps must be >= 0 and restarts in [1, 65536] (got -1 and 1)");
    ck_assert_int_eq(rb_attack_run(e, model, p, params, &o, x, y, N, adv, NULL, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "attack: steps must be >= 0 and restarts in [1, 65536] (got -1 and 1)");
    o.steps = 3;
    o.restarts = 0;
    ck_assert_int_eq(rb_attack_check(p, &o), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "attack: steps must be >= 0 and restarts in [1, 65536] (got 3 and 0)");
    o.restarts = 1;
    o.target = (rb_attack_target)7;
    ck_assert_int_eq(rb_attack_check(p, &o), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "attack: unknown target rule 7");
    o.target = RB_ATTACK_UNTARGETED;
    ck_assert_int_eq(rb_attack_check(NULL, &o), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "attack: '(null)' is not an attack plugin");
    ck_assert_int_eq(rb_attack_check(p, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "attack: options are required");
    /* steps: a step-based plugin's, or a whole-run plugin's own (apgd-ce);
     * refused for one that schedules itself by another budget (square) */
    ck_assert_int_eq(rb_attack_check_steps(p, "--"), RB_OK);
    ck_assert_int_eq(rb_attack_check_steps(attack("apgd-ce"), ""), RB_OK);
    ck_assert_int_eq(rb_attack_check_steps(attack("square"), ""), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "attack plugin square schedules itself and takes no steps; its own budget: "
                                      "queries");
    ck_assert_int_eq(rb_attack_check_steps(attack("square"), "--"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "attack plugin square schedules itself and takes no --steps; its own budget: "
                                      "--queries");

    /* Zero steps, no random start: the clean images, and the clean accuracy. */
    o.steps = 0;
    ck_assert_int_eq(rb_attack_run(e, model, p, params, &o, x, y, N, adv, NULL, &st), RB_OK);
    ck_assert_int_eq(memcmp(adv, x, sizeof x), 0);
    ck_assert_int_eq(st.adv_correct, st.clean_correct);
    ck_assert_int_eq(st.backwards, 0);

    /* Labels out of range; images, labels and output are required. */
    o.steps = 2;
    memcpy(bad_y, y, sizeof bad_y);
    bad_y[7] = -1;
    ck_assert_int_eq(rb_attack_run(e, model, p, params, &o, x, bad_y, N, adv, NULL, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "attack: label -1 of example 7 is outside [0, 5)");
    ck_assert_int_eq(rb_attack_run(e, model, p, params, &o, x, NULL, N, adv, NULL, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "attack: images, labels and the output are required");
    ck_assert_int_eq(rb_attack_run(e, model, p, params, &o, x, y, -1, adv, NULL, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "attack: images, labels and the output are required");
    rb_engine_destroy(e);
    rb_params_destroy(params);

    /* Models of fewer than 2 classes cannot be built, so no attack (nor a
     * targeted one) ever meets one. */
    {
        const rb_plugin *arch;
        const char *preset;
        rb_params *ap;
        rb_model *m;
        rb_model_input in = rb_model_input_imagenet(S, S);
        ck_assert_int_eq(rb_arch_resolve(reg, "resnet18", &arch, &preset), RB_OK);
        ck_assert_int_eq(rb_params_create(&ap, arch->params), RB_OK);
        ck_assert_int_eq(rb_params_set(ap, "preset", preset), RB_OK);
        ck_assert_int_eq(rb_params_set(ap, "stem", "cifar"), RB_OK);
        ck_assert_int_eq(rb_params_set(ap, "width", "0.125"), RB_OK);
        ck_assert_int_eq(rb_params_set(ap, "num-classes", "1"), RB_OK);
        ck_assert_int_ne(rb_model_create(&m, arch, ap, &in), RB_OK);
        ck_assert_str_eq(rb_last_error(), "softmax cross-entropy on 'fc': it needs logits of K >= 2 classes "
                                          "(K x 1 x 1), but 'fc' is 1x1x1; add a global pool and a linear "
                                          "layer first");
        ck_assert_int_eq(rb_params_set(ap, "num-classes", "0"), RB_OK);
        ck_assert_int_ne(rb_model_create(&m, arch, ap, &in), RB_OK);
        ck_assert_str_eq(rb_last_error(), "arch resnet: built no classifier (num_classes 0?)");
        rb_params_destroy(ap);
    }
}
END_TEST

/* What `robusta attack` refuses, each an exact line: an unknown attack and
 * out-of-range options are usage errors (exit 2); images outside [0, 1]
 * (NaN included) and a label count that is not the image count are
 * failures (exit 1), reported before any work. Zero steps are valid (the
 * clean images come back). */
START_TEST(the_command_refuses_bad_attack_input_with_one_exact_line)
{
    char m[PATH_MAX], xp[PATH_MAX], yp[PATH_MAX], out[PATH_MAX], bad[PATH_MAX], expect[PATH_MAX + 256];
    int64_t xshape[4] = {N, C, S, S}, n = N, n_short = N - 1;
    static float xbad[N * PER];
    rb_npy *back;
    snprintf(m, sizeof m, "%s/m.rbt", dir);
    snprintf(xp, sizeof xp, "%s/x.npy", dir);
    snprintf(yp, sizeof yp, "%s/y.npy", dir);
    snprintf(out, sizeof out, "%s/adv.npy", dir);
    snprintf(bad, sizeof bad, "%s/bad.npy", dir);
    ck_assert_int_eq(rb_model_save(model, m), RB_OK);
    ck_assert_int_eq(rb_npy_save(xp, RB_DTYPE_F32, 4, xshape, x), RB_OK);
    ck_assert_int_eq(rb_npy_save(yp, RB_DTYPE_I64, 1, &n, y), RB_OK);

#define ATTACK(...) RUN(&r, NULL, "attack", "--ckpt", m, "--input", xp, "--labels", yp, "--output", out, \
                        "--threads", "1", __VA_ARGS__)
    ATTACK("--attack", "pgd-l3");
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.err, "robusta attack: unknown attack plugin 'pgd-l3'; did you mean 'pgd-l2'?\n");
    ATTACK("--attack", "pgd-l2", "--eps", "-0.1");
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.err, "robusta attack: --eps: -0.1 is outside [0, inf) (robusta attack --help lists its options)\n");
    ATTACK("--attack", "pgd-linf", "--eps", "2");
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.err, "robusta attack: --eps: 2 is outside [0, 1] (robusta attack --help lists its options)\n");
    ATTACK("--attack", "pgd-l2", "--steps", "-1");
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.err,
                     "robusta attack: --steps: -1 is outside [0, 1000000] (robusta attack --help lists its options)\n");
    ATTACK("--attack", "pgd-l2", "--step-size", "0");
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.err,
                     "robusta attack: --step-size: 0 is outside (0, inf) (robusta attack --help lists its options)\n");
    ATTACK("--attack", "pgd-l2", "--targets", bad);
    ck_assert_int_eq(r.code, 1);
    ck_assert_str_eq(r.err, "robusta attack: --targets needs --targeted random|least-likely\n");
    /* Zero steps: the clean images. */
    ATTACK("--attack", "pgd-l2", "--steps", "0");
    ck_assert_msg(r.code == 0, "%s", r.err);
    ck_assert_int_eq(rb_npy_load(&back, out), RB_OK);
    ck_assert_int_eq(memcmp(back->data, x, sizeof x), 0);
    rb_npy_destroy(back);

    /* Images outside [0, 1], and NaN. */
    memcpy(xbad, x, sizeof xbad);
    xbad[5] = 1.5f;
    ck_assert_int_eq(rb_npy_save(bad, RB_DTYPE_F32, 4, xshape, xbad), RB_OK);
    RUN(&r, NULL, "attack", "--ckpt", m, "--input", bad, "--labels", yp, "--output", out, "--attack", "pgd-l2");
    ck_assert_int_eq(r.code, 1);
    snprintf(expect, sizeof expect,
             "robusta attack: %s: value 1.5 at flat index 5 is outside [0, 1] (images are pixels in [0, 1]; the "
             "model normalizes them)\n",
             bad);
    ck_assert_str_eq(r.err, expect);
    xbad[5] = x[5];
    xbad[PER + 2] = -0.25f;
    ck_assert_int_eq(rb_npy_save(bad, RB_DTYPE_F32, 4, xshape, xbad), RB_OK);
    RUN(&r, NULL, "attack", "--ckpt", m, "--input", bad, "--labels", yp, "--output", out, "--attack", "pgd-l2");
    ck_assert_int_eq(r.code, 1);
    snprintf(expect, sizeof expect,
             "robusta attack: %s: value -0.25 at flat index %d is outside [0, 1] (images are pixels in [0, 1]; "
             "the model normalizes them)\n",
             bad, PER + 2);
    ck_assert_str_eq(r.err, expect);
    xbad[PER + 2] = NAN;
    ck_assert_int_eq(rb_npy_save(bad, RB_DTYPE_F32, 4, xshape, xbad), RB_OK);
    RUN(&r, NULL, "attack", "--ckpt", m, "--input", bad, "--labels", yp, "--output", out, "--attack", "pgd-l2");
    ck_assert_int_eq(r.code, 1);
    ck_assert_msg(strstr(r.err, ": value nan at flat index ") != NULL, "%s", r.err);
    ck_assert_int_eq(count_lines(r.err), 1);

    /* Fewer labels than images. */
    ck_assert_int_eq(rb_npy_save(bad, RB_DTYPE_I64, 1, &n_short, y), RB_OK);
    RUN(&r, NULL, "attack", "--ckpt", m, "--input", xp, "--labels", bad, "--output", out, "--attack", "pgd-l2");
    ck_assert_int_eq(r.code, 1);
    snprintf(expect, sizeof expect, "robusta attack: %s: labels must be integers of shape [%d], not i64 [%d]\n", bad,
             N, N - 1);
    ck_assert_str_eq(r.err, expect);
#undef ATTACK
}
END_TEST

/* Images outside [0, 1], NaN included, are refused by the library too (the
 * command refuses them when it reads the file). */
START_TEST(the_library_refuses_images_outside_the_unit_box)
{
    static float bad[N * PER];
    const rb_plugin *p = attack("pgd-l2");
    rb_attack_options o = rb_attack_options_default();
    rb_engine *e = make_engine(4);
    memcpy(bad, x, sizeof bad);
    bad[PER + 7] = 1.5f;
    ck_assert_int_eq(rb_attack_run(e, model, p, NULL, &o, bad, y, N, adv, NULL, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "attack: value 1.5 of example 1 (at 7 in it) is outside [0, 1] (images are "
                                      "pixels in [0, 1]; the model normalizes them)");
    bad[PER + 7] = NAN;
    ck_assert_int_eq(rb_attack_run(e, model, p, NULL, &o, bad, y, N, adv, NULL, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "attack: value nan of example 1 (at 7 in it) is outside [0, 1] (images are "
                                      "pixels in [0, 1]; the model normalizes them)");
    bad[PER + 7] = 1.0f;
    bad[N * PER - 1] = 0.0f;
    ck_assert_int_eq(rb_attack_run(e, model, p, NULL, &o, bad, y, N, adv, NULL, NULL), RB_OK);
    rb_engine_destroy(e);
}
END_TEST

static Suite *attack_suite(void)
{
    Suite *s = suite_create("attack");
    TCase *t = tcase_create("attack");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, eps_zero_gives_the_clean_images_and_accuracy);
    tcase_add_test(t, outputs_stay_in_the_ball_and_in_the_unit_box);
    tcase_add_test(t, accuracy_does_not_increase_with_eps);
    tcase_add_test(t, an_unbounded_attack_fools_every_example);
    tcase_add_test(t, input_gradients_are_per_example_finite_and_not_zero);
    tcase_add_test(t, runs_are_reproducible_and_keyed_by_seed_and_example);
    tcase_add_test(t, restarts_never_raise_robust_accuracy);
    tcase_add_test(t, targeted_attacks_reach_their_targets);
    tcase_add_test(t, whole_run_plugins_get_an_oracle);
    tcase_add_loop_test(t, whole_run_attacks_pass_the_sanity_checks, 0, 12);
    tcase_add_test(t, autoattack_runs_its_stages_in_order);
    tcase_add_test(t, autoattack_refuses_what_it_cannot_run);
    tcase_add_test(t, the_command_prints_the_figures_and_refuses_bad_input);
    tcase_add_test(t, attacks_execute_no_weight_gradient_primitive);
    tcase_add_test(t, the_library_refuses_bad_attack_input);
    tcase_add_test(t, the_library_refuses_images_outside_the_unit_box);
    tcase_add_test(t, the_command_refuses_bad_attack_input_with_one_exact_line);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(attack_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
