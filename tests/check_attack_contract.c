/* The attack contract of robusta/plugin.h, seen from a plugin: the order of
 * the runtime's calls (create, begin, per chunk and restart random_start,
 * step and project, destroy), what each call gets (plan, rows, restart,
 * iteration, grad only in step), an error in any callback failing the run
 * with one line naming the plugin's file, and the refusals of options a
 * plugin cannot serve (random starts and restarts without random_start).
 * A tracing plugin runs in-process; the fixtures of tests/plugins/attack/
 * are loaded from files, as users load plugins. */
#include "config.h"

#include <stdarg.h>

#include <robusta/robusta.h>

#include "testutil.h"
#include "testmodels.h"

#define RUN(r, env, ...) run_robusta(r, env, (const char *const[]){__VA_ARGS__, NULL})

#define N 12
#define C 3
#define S 8
#define PER (C * S * S)

static rb_registry *reg;
static rb_model *model;
static char dir[256];
static float x[N * PER], adv[N * PER], adv2[N * PER];
static int64_t y[N];
static run_result r;

static rb_engine *make_engine(int64_t batch);

/* Labels from the model's clean predictions: right for examples 0 and 5
 * only, so the chunks of 5 that start at 0 and 5 each hold a row that no
 * restart fools (the plugins here hardly move), and the chunk at 10 is
 * fooled from the start. */
static void setup(void)
{
    rb_rng rng;
    float logits[N * 5];
    rb_engine *e;
    ck_assert_int_eq(rb_registry_create(&reg), RB_OK);
    ck_assert_int_eq(rb_registry_load_path(reg, test_env("RB_PLUGIN_PATH")), RB_OK);
    ck_assert_int_eq(rb_registry_load_path(reg, test_env("RB_TEST_ATTACK_FIXTURES")), RB_OK);
    model = small_model(reg, S, 3);
    rb_rng_init(&rng, 21, 0, 0);
    for (int i = 0; i < N * PER; i++)
        x[i] = rb_rng_uniform(&rng);
    memset(y, 0, sizeof y);
    e = make_engine(4);
    ck_assert_int_eq(rb_attack_loss_grad(e, model, x, y, N, NULL, NULL, logits), RB_OK);
    rb_engine_destroy(e);
    for (int i = 0; i < N; i++) {
        int64_t best = 0;
        for (int k = 1; k < 5; k++)
            if (logits[i * 5 + k] > logits[i * 5 + best])
                best = k;
        y[i] = i == 0 || i == 5 ? best : (best + 1) % 5;
    }
    make_temp_dir(dir, sizeof dir);
}

static void teardown(void)
{
    rb_model_destroy(model);
    rb_registry_destroy(reg);
    remove_temp_dir(dir);
}

static rb_engine *make_engine(int64_t batch)
{
    rb_engine *e;
    rb_engine_options eo = {.threads = 1};
    ck_assert_int_eq(rb_engine_create(&e, rb_model_graph(model), batch, &eo), RB_OK);
    return e;
}

static const rb_plugin *attack(const char *name)
{
    const rb_plugin *p;
    ck_assert_msg(rb_registry_find(reg, RB_PLUGIN_ATTACK, name, &p) == RB_OK, "%s", rb_last_error());
    return p;
}

/* ------------------------------------------------------------ a tracing plugin */

/* What the tracing plugin saw, as text, and what it checked on the way. */
static char trace[4096];
static size_t trace_len;
static int fail_at_example = -1;  /* step fails at this chunk's first example */
static bool fail_silently;        /* ... without a message */
static void *made;                /* create's self is &made */
static int destroyed;
static char complaint[256];       /* the first broken promise, if any */

static void note(const char *fmt, ...) RB_PRINTF(1, 2);

static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    trace_len += (size_t)vsnprintf(trace + trace_len, sizeof trace - trace_len, fmt, ap);
    va_end(ap);
}

static void complain(const char *what)
{
    if (complaint[0] == '\0')
        snprintf(complaint, sizeof complaint, "%s", what);
}

static rb_status trace_create(const rb_params *p, void **self)
{
    (void)p;
    note("create");
    *self = &made;
    return RB_OK;
}

static void trace_destroy(void *self)
{
    if (self != &made)
        complain("destroy got another self");
    destroyed++;
    note(" destroy");
}

static rb_status trace_begin(void *self, const rb_params *p, const rb_attack_plan *plan)
{
    (void)p;
    if (self != &made)
        complain("begin got another self");
    note(" begin(examples %lld, batch %lld, %lldx%lldx%lld, steps %d, restarts %d, targeted %d, seed %llu, "
         "random start %d)",
         (long long)plan->examples, (long long)plan->batch, (long long)plan->channels, (long long)plan->height,
         (long long)plan->width, plan->steps, plan->restarts, plan->targeted, (unsigned long long)plan->seed,
         plan->random_start);
    return RB_OK;
}

/* Checks made at every per-batch call. */
static void check_batch(const rb_attack_batch *b, void *self, bool want_grad)
{
    if (self != &made)
        complain("a batch call got another self");
    if ((b->grad != NULL) != want_grad)
        complain(want_grad ? "step got no gradient" : "a call other than step got the gradient");
    if (b->stream != RB_RNG_STREAM(RB_RNG_ATTACK, (uint32_t)b->restart))
        complain("the stream is not the restart's");
    if (rb_tensor_dim(b->x_adv, 0) > 5)
        complain("more rows than the plan's batch");
}

static rb_status trace_random_start(void *self, const rb_params *p, rb_attack_batch *b)
{
    rb_attack_view v;
    (void)p;
    check_batch(b, self, false);
    ck_assert_int_eq(rb_attack_batch_view(b, "trace", false, &v), RB_OK);
    if (memcmp(v.x, v.x0, (size_t)(v.rows * v.cols) * sizeof *v.x) != 0)
        complain("random_start did not find x_adv = x_clean");
    note(" [%lld+%lld r%d: start", (long long)b->first_example, (long long)v.rows, b->restart);
    return RB_OK;
}

static rb_status trace_step(void *self, const rb_params *p, rb_attack_batch *b)
{
    (void)p;
    check_batch(b, self, true);
    note(" s%d", b->iteration);
    if (b->first_example == fail_at_example) {
        if (fail_silently)
            return RB_ERR_NUMERIC;
        return rb_error_set(RB_ERR_NUMERIC, "trace: a NaN in example %lld", (long long)b->first_example);
    }
    return RB_OK;
}

static rb_status trace_project(void *self, const rb_params *p, rb_attack_batch *b)
{
    (void)p;
    check_batch(b, self, false);
    note(" p%d%s", b->iteration, b->iteration == 1 ? "]" : "");
    return RB_OK;
}

/* Written out by hand: RB_ATTACK_PLUGIN defines the one descriptor a file
 * may export, and this plugin is not loaded from a file. */
static const rb_attack_ops trace_ops = {.kind = RB_PLUGIN_ATTACK,
                                        .create = trace_create,
                                        .destroy = trace_destroy,
                                        .begin = trace_begin,
                                        .random_start = trace_random_start,
                                        .step = trace_step,
                                        .project = trace_project};
static const rb_plugin trace_plugin = {.abi_version = RB_PLUGIN_ABI_VERSION,
                                       .struct_size = sizeof(rb_plugin),
                                       .kind = RB_PLUGIN_ATTACK,
                                       .name = "trace",
                                       .version = "1.0",
                                       .summary = "records the calls it gets",
                                       .params = NULL,
                                       .ops = {.attack = &trace_ops},
                                       .ops_size = sizeof trace_ops};

static void trace_reset(void)
{
    trace[0] = '\0';
    trace_len = 0;
    fail_at_example = -1;
    fail_silently = false;
    destroyed = 0;
    complaint[0] = '\0';
}

START_TEST(the_runtime_calls_in_the_documented_order)
{
    rb_engine *e = make_engine(5);
    rb_attack_options o = rb_attack_options_default();
    rb_attack_stats st;
    trace_reset();
    o.steps = 2;
    o.restarts = 2;
    o.random_start = true;
    o.seed = 8;
    o.first_example = 100;
    /* The plugin never moves x_adv: the chunks at 100 and 105 hold a row the
     * model gets right, and run both restarts; every row of the chunk at
     * 110 is fooled after the first, which ends it. */
    ck_assert_msg(rb_attack_run(e, model, &trace_plugin, NULL, &o, x, y, N, adv, NULL, &st) == RB_OK, "%s",
                  rb_last_error());
    ck_assert_msg(complaint[0] == '\0', "%s", complaint);
    ck_assert_str_eq(trace, "create"
                            " begin(examples 12, batch 5, 3x8x8, steps 2, restarts 2, targeted 0, seed 8, "
                            "random start 1)"
                            " [100+5 r0: start s0 p0 s1 p1] [100+5 r1: start s0 p0 s1 p1]"
                            " [105+5 r0: start s0 p0 s1 p1] [105+5 r1: start s0 p0 s1 p1]"
                            " [110+2 r0: start s0 p0 s1 p1]"
                            " destroy");
    ck_assert_int_eq(destroyed, 1);
    ck_assert_int_eq(st.clean_correct, 2);
    ck_assert_int_eq(st.adv_correct, 2);

    /* A plan's batch is the count when that is smaller; a run of nothing calls nothing. */
    trace_reset();
    o.restarts = 1;
    o.random_start = false;
    o.steps = 1;
    ck_assert_int_eq(rb_attack_run(e, model, &trace_plugin, NULL, &o, x, y, 3, adv, NULL, NULL), RB_OK);
    ck_assert_str_eq(trace, "create"
                            " begin(examples 3, batch 3, 3x8x8, steps 1, restarts 1, targeted 0, seed 8, "
                            "random start 0)"
                            " s0 p0 destroy");
    trace_reset();
    ck_assert_int_eq(rb_attack_run(e, model, &trace_plugin, NULL, &o, x, y, 0, adv, NULL, NULL), RB_OK);
    ck_assert_str_eq(trace, "");
    rb_engine_destroy(e);
}
END_TEST

START_TEST(a_failing_callback_fails_the_run_naming_the_plugin)
{
    rb_engine *e = make_engine(5);
    rb_attack_options o = rb_attack_options_default();
    /* a descriptor the program defines itself comes from no plugin file:
     * messages name the plugin alone (the registry's name them with their file) */
    char want[PATH_MAX + 128];
    ck_assert_ptr_null(rb_plugin_path(&trace_plugin));
    o.steps = 2;

    /* step fails in the second chunk: nothing more is called but destroy */
    trace_reset();
    fail_at_example = 5;
    ck_assert_int_eq(rb_attack_run(e, model, &trace_plugin, NULL, &o, x, y, N, adv, NULL, NULL), RB_ERR_NUMERIC);
    snprintf(want, sizeof want, "attack plugin %s: step: trace: a NaN in example 5", "trace");
    ck_assert_str_eq(rb_last_error(), want);
    ck_assert_str_eq(trace, "create begin(examples 12, batch 5, 3x8x8, steps 2, restarts 1, targeted 0, seed 0, "
                            "random start 0) s0 p0 s1 p1] s0 destroy");
    ck_assert_int_eq(destroyed, 1);

    /* a failure without a message still says which plugin and callback */
    trace_reset();
    fail_at_example = 0;
    fail_silently = true;
    rb_error_set(RB_ERR_IO, "an old message that has nothing to do with it");
    ck_assert_int_eq(rb_attack_run(e, model, &trace_plugin, NULL, &o, x, y, N, adv, NULL, NULL), RB_ERR_NUMERIC);
    snprintf(want, sizeof want, "attack plugin %s: step: returned \"%s\" without saying why", "trace",
             rb_status_str(RB_ERR_NUMERIC));
    ck_assert_str_eq(rb_last_error(), want);
    ck_assert_int_eq(destroyed, 1);
    rb_engine_destroy(e);
}
END_TEST

/* ------------------------------------------------------------ fixtures loaded from files */

START_TEST(an_error_from_begin_names_the_plugin_file)
{
    const rb_plugin *p = attack("begin-fails");
    rb_engine *e = make_engine(5);
    rb_attack_options o = rb_attack_options_default();
    char want[PATH_MAX + 160], m[PATH_MAX], xp[PATH_MAX], yp[PATH_MAX], out[PATH_MAX], env[PATH_MAX * 4];
    int64_t xshape[4] = {N, C, S, S}, n = N;

    ck_assert_int_eq(rb_attack_run(e, model, p, NULL, &o, x, y, N, adv, NULL, NULL), RB_ERR_INVALID_ARGUMENT);
    snprintf(want, sizeof want,
             "attack plugin %s/begin_fails.so (begin-fails): begin: refuses every run (this one: 12 examples in "
             "batches of 5)",
             test_env("RB_TEST_ATTACK_FIXTURES"));
    ck_assert_str_eq(rb_last_error(), want);
    rb_engine_destroy(e);

    /* the command says the same in one line, and writes nothing */
    snprintf(m, sizeof m, "%s/m.rbt", dir);
    snprintf(xp, sizeof xp, "%s/x.npy", dir);
    snprintf(yp, sizeof yp, "%s/y.npy", dir);
    snprintf(out, sizeof out, "%s/adv.npy", dir);
    snprintf(env, sizeof env, "RB_PLUGIN_PATH=%s:%s", test_env("RB_PLUGIN_PATH"), test_env("RB_TEST_ATTACK_FIXTURES"));
    ck_assert_int_eq(rb_model_save(model, m), RB_OK);
    ck_assert_int_eq(rb_npy_save(xp, RB_DTYPE_F32, 4, xshape, x), RB_OK);
    ck_assert_int_eq(rb_npy_save(yp, RB_DTYPE_I64, 1, &n, y), RB_OK);
    RUN(&r, env, "attack", "--ckpt", m, "--input", xp, "--labels", yp, "--attack", "begin-fails", "--output", out,
        "--batch-size", "5", "--threads", "1");
    ck_assert_int_eq(r.code, 1);
    snprintf(want, sizeof want,
             "robusta attack: attack plugin %s/begin_fails.so (begin-fails): begin: refuses every run (this one: 12 "
             "examples in batches of 5)\n",
             test_env("RB_TEST_ATTACK_FIXTURES"));
    ck_assert_str_eq(r.err, want);
    ck_assert_int_ne(access(out, F_OK), 0);
}
END_TEST

START_TEST(random_start_is_optional_and_its_absence_refuses_what_needs_it)
{
    const rb_plugin *p = attack("no-random-start"), *pgd = attack("pgd-linf");
    rb_engine *e = make_engine(5);
    rb_attack_options o = rb_attack_options_default();
    rb_params *pp;
    char want[PATH_MAX + 160], label[PATH_MAX + 64];
    snprintf(label, sizeof label, "%s/no_random_start.so (no-random-start)", test_env("RB_TEST_ATTACK_FIXTURES"));

    /* Without random starts it runs: one step of eps and the projection are
     * pgd-linf's with a step of eps, bit for bit. */
    o.steps = 1;
    ck_assert_msg(rb_attack_run(e, model, p, NULL, &o, x, y, N, adv, NULL, NULL) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_params_create(&pp, pgd->params), RB_OK);
    ck_assert_int_eq(rb_params_set(pp, RB_PARAM_EPS, "8/255"), RB_OK);
    ck_assert_int_eq(rb_params_set(pp, "step-size", "8/255"), RB_OK);
    ck_assert_int_eq(rb_attack_run(e, model, pgd, pp, &o, x, y, N, adv2, NULL, NULL), RB_OK);
    ck_assert_int_eq(memcmp(adv, adv2, sizeof adv), 0);
    ck_assert(memcmp(adv, x, sizeof adv) != 0);
    rb_params_destroy(pp);

    /* A random start, restarts (which need one), or both: refused before anything runs. */
    o.random_start = true;
    ck_assert_int_eq(rb_attack_check(p, &o), RB_ERR_INVALID_ARGUMENT);
    snprintf(want, sizeof want, "attack: plugin %s has no random start: drop --random-start", label);
    ck_assert_str_eq(rb_last_error(), want);
    o.restarts = 3;
    ck_assert_int_eq(rb_attack_run(e, model, p, NULL, &o, x, y, N, adv, NULL, NULL), RB_ERR_INVALID_ARGUMENT);
    snprintf(want, sizeof want,
             "attack: plugin %s has no random start, and restarts need one: drop --random-start and --restarts",
             label);
    ck_assert_str_eq(rb_last_error(), want);
    o.random_start = false;
    ck_assert_int_eq(rb_attack_check(p, &o), RB_ERR_INVALID_ARGUMENT);
    snprintf(want, sizeof want,
             "attack: plugin %s has no random start, and restarts need one: drop --restarts (use 1 restart)", label);
    ck_assert_str_eq(rb_last_error(), want);
    rb_engine_destroy(e);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("attack contract");
    TCase *t = tcase_create("contract");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, the_runtime_calls_in_the_documented_order);
    tcase_add_test(t, a_failing_callback_fails_the_run_naming_the_plugin);
    tcase_add_test(t, an_error_from_begin_names_the_plugin_file);
    tcase_add_test(t, random_start_is_optional_and_its_absence_refuses_what_needs_it);
    suite_add_tcase(s, t);
    return run_suite(s);
}
