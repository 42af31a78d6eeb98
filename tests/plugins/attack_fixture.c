/* Attack fixtures for the attack contract and option namespaces
 * (tests/check_attack.c, tests/check_cli.c), one per macro, built into
 * tests/plugins/attack/ so that only the tests that want them scan them:
 *   FIXTURE_BEGIN_FAILS      begin-fails: a step-based attack whose begin refuses the run
 *   FIXTURE_NO_RANDOM_START  no-random-start: FGSM-like, step and project only
 *   FIXTURE_OWN_STEPS        own-steps: declares RB_PARAM_STEPS and batch-size (names
 *                            the commands have too); begin refuses a plan whose steps
 *                            are not its own, or whose batch is not its batch-size
 *                            (unless 0), so a run shows which set got which value */
#include <stddef.h>
#include <stdlib.h>

#include <robusta/plugin.h>

static const rb_param_spec fixture_params[] = {
    {RB_PARAM_EPS, RB_PARAM_FLOAT, "8/255", "[0, 1]", 0, "radius of the Linf ball"},
#ifdef FIXTURE_OWN_STEPS
    {RB_PARAM_STEPS, RB_PARAM_INT, "4", "[1, 1000]", 0, "iterations (the runtime loop runs this many)"},
    {"batch-size", RB_PARAM_INT, "0", "[0, 65536]", 0, "the rows a run's batches must have; 0: any"},
#endif
    {NULL}};

static rb_status fixture_create(const rb_params *params, void **self)
{
    (void)params;
    *self = malloc(16); /* something for destroy to free: leak checkers see a missed destroy */
    return *self != NULL ? RB_OK : rb_error_set(RB_ERR_OUT_OF_MEMORY, "fixture: out of memory");
}

static void fixture_destroy(void *self)
{
    free(self);
}

static rb_status fixture_begin(void *self, const rb_params *params, const rb_attack_plan *plan)
{
    (void)self;
#if defined(FIXTURE_BEGIN_FAILS)
    (void)params;
    return rb_error_set(RB_ERR_INVALID_ARGUMENT, "refuses every run (this one: %lld examples in batches of %lld)",
                        (long long)plan->examples, (long long)plan->batch);
#elif defined(FIXTURE_OWN_STEPS)
    int64_t steps, batch;
    rb_status s = rb_params_get_int(params, RB_PARAM_STEPS, &steps);
    if (s == RB_OK)
        s = rb_params_get_int(params, "batch-size", &batch);
    if (s == RB_OK && steps != plan->steps)
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "the runtime loop runs %d steps, but my steps is %lld",
                         plan->steps, (long long)steps);
    if (s == RB_OK && batch != 0 && batch != plan->batch)
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "the run's batches have %lld rows, but my batch-size is %lld",
                         (long long)plan->batch, (long long)batch);
    return s;
#else
    (void)params;
    (void)plan;
    return RB_OK;
#endif
}

static rb_status fixture_step(void *self, const rb_params *params, rb_attack_batch *b)
{
    rb_attack_view v;
    double eps;
    rb_status s = rb_attack_batch_view(b, "fixture", true, &v);
    (void)self;
    if (s == RB_OK)
        s = rb_params_get_float(params, RB_PARAM_EPS, &eps);
    return s != RB_OK ? s : rb_attack_step_sign(&v, b->targeted ? -eps : eps);
}

static rb_status fixture_project(void *self, const rb_params *params, rb_attack_batch *b)
{
    rb_attack_view v;
    double eps;
    rb_status s = rb_attack_batch_view(b, "fixture", false, &v);
    (void)self;
    if (s == RB_OK)
        s = rb_params_get_float(params, RB_PARAM_EPS, &eps);
    return s != RB_OK ? s : rb_attack_project_linf(&v, eps);
}

#if defined(FIXTURE_BEGIN_FAILS)
#define FIXTURE_NAME "begin-fails"
#elif defined(FIXTURE_NO_RANDOM_START)
#define FIXTURE_NAME "no-random-start"
#elif defined(FIXTURE_OWN_STEPS)
#define FIXTURE_NAME "own-steps"
#else
#error "define one FIXTURE_* macro"
#endif

RB_ATTACK_PLUGIN(FIXTURE_NAME, "1.0", "attack fixture", fixture_params, .create = fixture_create,
                 .destroy = fixture_destroy, .begin = fixture_begin, .step = fixture_step,
                 .project = fixture_project);
