/* Fixture plugins for the loader tests: one good plugin of each kind and
 * shape, and one plugin per refusal class. Each build defines one
 * FIXTURE_* macro (see Makefile.am). */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <robusta/plugin.h>

/* Each variant uses only some of the pieces below. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunused-const-variable"

static const rb_param_spec fixture_params[] = {
    {"eps", RB_PARAM_FLOAT, "0.25", "[0, inf)", 0, "radius"},
    {"steps", RB_PARAM_INT, "3", "[1, 1000]", 0, "iterations"},
#ifdef FIXTURE_BAD_PARAMS
    {"norm", RB_PARAM_CHOICE, "l3", "l2|linf", 0, "which ball"},
#endif
    {NULL}};

static rb_status fake_attack_call(void *self, const rb_params *p, rb_attack_batch *b)
{
    (void)self;
    (void)p;
    (void)b;
    return RB_OK;
}

static rb_status fake_run(void *self, const rb_params *p, const rb_attack_oracle *o,
                          rb_attack_batch *b)
{
    (void)self;
    (void)p;
    (void)o;
    (void)b;
    return RB_OK;
}

static rb_status fake_build(rb_graph *g, rb_node *in, const rb_params *p, rb_node **logits)
{
    (void)g;
    (void)in;
    (void)p;
    *logits = NULL;
    return RB_OK;
}

static rb_status fake_head(rb_graph *g, const rb_params *p, const rb_task_target *t,
                           rb_node **pred)
{
    (void)g;
    (void)p;
    (void)t;
    *pred = NULL;
    return RB_OK;
}

static rb_status fake_loss(rb_graph *g, const rb_params *p, rb_node *pred, rb_node *target,
                           rb_node **loss)
{
    (void)g;
    (void)p;
    (void)pred;
    (void)target;
    *loss = NULL;
    return RB_OK;
}

static rb_status fake_metrics_create(const rb_params *p, const rb_task_target *t, void **state)
{
    (void)p;
    (void)t;
    *state = NULL;
    return RB_OK;
}

static rb_status fake_accumulate(void *state, const rb_tensor *pred, const rb_tensor *target)
{
    (void)state;
    (void)pred;
    (void)target;
    return RB_OK;
}

static rb_status fake_finalize(void *state, rb_metric *m, size_t capacity, size_t *count)
{
    (void)state;
    (void)m;
    (void)capacity;
    *count = 0;
    return RB_OK;
}

static void fake_destroy(void *state)
{
    (void)state;
}

static const rb_attack_ops step_ops = {
    .random_start = fake_attack_call,
    .step = fake_attack_call,
#ifndef FIXTURE_MISSING_PROJECT
    .project = fake_attack_call,
#endif
};
static const rb_attack_ops run_ops = {.run = fake_run};
static const rb_arch_ops arch_ops = {
#ifndef FIXTURE_MISSING_BUILD
    .build = fake_build,
#endif
};
static const rb_task_ops task_ops = {
    .dataset_kind = RB_DATASET_SEGMENTATION,
    .build_head = fake_head,
    .build_loss = fake_loss,
    .metrics_create = fake_metrics_create,
    .metrics_accumulate = fake_accumulate,
#ifndef FIXTURE_MISSING_METRICS
    .metrics_finalize = fake_finalize,
#endif
    .metrics_destroy = fake_destroy,
};

#if defined(FIXTURE_GOOD_ATTACK) || defined(FIXTURE_DUPLICATE_NAME)
RB_PLUGIN_DEFINE(RB_PLUGIN_ATTACK, "good-attack", "2.1", "a step-based fixture", fixture_params,
                 &step_ops);
#elif defined(FIXTURE_GOOD_RUN_ATTACK)
RB_PLUGIN_DEFINE(RB_PLUGIN_ATTACK, "good-run-attack", "1.0", "a whole-run fixture", NULL,
                 &run_ops);
#elif defined(FIXTURE_GOOD_ARCH) || defined(FIXTURE_MISSING_BUILD)
RB_PLUGIN_DEFINE(RB_PLUGIN_ARCH, "good-arch", "1.0", "an arch fixture", fixture_params,
                 &arch_ops);
#elif defined(FIXTURE_GOOD_TASK) || defined(FIXTURE_MISSING_METRICS)
RB_PLUGIN_DEFINE(RB_PLUGIN_TASK, "good-task", "1.0", "a task fixture", NULL, &task_ops);
#elif defined(FIXTURE_MISSING_PROJECT)
RB_PLUGIN_DEFINE(RB_PLUGIN_ATTACK, "half-attack", "1.0", "lacks project", NULL, &step_ops);
#elif defined(FIXTURE_BAD_PARAMS)
RB_PLUGIN_DEFINE(RB_PLUGIN_ATTACK, "bad-params", "1.0", "bad default", fixture_params, &step_ops);
#elif defined(FIXTURE_BAD_NAME)
RB_PLUGIN_DEFINE(RB_PLUGIN_ATTACK, "Bad Name", "1.0", "bad name", NULL, &step_ops);
#elif defined(FIXTURE_NO_OPS)
RB_PLUGIN_DEFINE(RB_PLUGIN_ATTACK, "no-ops", "1.0", "no ops table", NULL, NULL);
#elif defined(FIXTURE_BAD_ABI) || defined(FIXTURE_BAD_SIZE) || defined(FIXTURE_BAD_KIND) ||     \
    defined(FIXTURE_BAD_OPS_SIZE)
/* Written out by hand: these fields are what the macro would get right. */
RB_PLUGIN_EXPORT extern const rb_plugin rb_plugin_descriptor;
RB_PLUGIN_EXPORT const rb_plugin rb_plugin_descriptor = {
#ifdef FIXTURE_BAD_ABI
    .abi_version = 99,
#else
    .abi_version = RB_PLUGIN_ABI_VERSION,
#endif
#ifdef FIXTURE_BAD_SIZE
    .struct_size = 24,
#else
    .struct_size = sizeof(rb_plugin),
#endif
#ifdef FIXTURE_BAD_KIND
    .kind = (rb_plugin_kind)42,
#else
    .kind = RB_PLUGIN_ATTACK,
#endif
    .name = "hand-made",
    .version = "1.0",
    .summary = "a descriptor written by hand",
    .ops = &step_ops,
#ifdef FIXTURE_BAD_OPS_SIZE
    .ops_size = 16,
#else
    .ops_size = sizeof(rb_attack_ops),
#endif
};
#elif defined(FIXTURE_CTOR_SEGV) || defined(FIXTURE_CTOR_EXIT) || defined(FIXTURE_CTOR_HANG)
/* Valid descriptors behind constructors that never let a loader finish:
 * the scan in a child process must refuse them and survive. */
__attribute__((constructor)) static void fixture_constructor(void)
{
#if defined(FIXTURE_CTOR_SEGV)
    raise(SIGSEGV);
#elif defined(FIXTURE_CTOR_EXIT)
    exit(0);
#else
    for (;;)
        pause();
#endif
}
#if defined(FIXTURE_CTOR_SEGV)
RB_PLUGIN_DEFINE(RB_PLUGIN_ATTACK, "ctor-segv", "1.0", "crashes on load", NULL, &step_ops);
#elif defined(FIXTURE_CTOR_EXIT)
RB_PLUGIN_DEFINE(RB_PLUGIN_ATTACK, "ctor-exit", "1.0", "exits on load", NULL, &step_ops);
#else
RB_PLUGIN_DEFINE(RB_PLUGIN_ATTACK, "ctor-hang", "1.0", "hangs on load", NULL, &step_ops);
#endif
#elif defined(FIXTURE_FUNCTION_DESCRIPTOR)
/* The descriptor's name on a function: reading it as data is undefined. */
RB_PLUGIN_EXPORT void rb_plugin_descriptor(void);
RB_PLUGIN_EXPORT void rb_plugin_descriptor(void) {}
#elif defined(FIXTURE_MARKER)
/* A good plugin that tells when it is opened in the process whose PID is
 * RB_FIXTURE_MAIN_PID (not in a scan's child): it appends a line to
 * RB_FIXTURE_MARKER. */
__attribute__((constructor)) static void fixture_constructor(void)
{
    const char *pid = getenv("RB_FIXTURE_MAIN_PID"), *marker = getenv("RB_FIXTURE_MARKER");
    FILE *f;
    if (pid == NULL || marker == NULL || atol(pid) != (long)getpid())
        return;
    if ((f = fopen(marker, "a")) != NULL) {
        fputs("loaded\n", f);
        fclose(f);
    }
}
RB_PLUGIN_DEFINE(RB_PLUGIN_ATTACK, "marker-attack", "1.0", "marks its loading", NULL,
                 &step_ops);
#elif defined(FIXTURE_NO_DESCRIPTOR)
/* A valid shared object that is not a robusta plugin. */
int fixture_not_a_plugin(void);
int fixture_not_a_plugin(void)
{
    return (int)sizeof(step_ops) + (int)sizeof(run_ops) + (int)sizeof(arch_ops) +
           (int)sizeof(task_ops);
}
#else
#error "define one FIXTURE_* macro"
#endif
