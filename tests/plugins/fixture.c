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

static rb_status fake_stages(const rb_params *p, const char **names, size_t capacity, size_t *count)
{
    (void)p;
    (void)capacity;
#ifdef FIXTURE_BAD_STAGE
    names[0] = "stage9";
#else
    names[0] = RB_STAGE_FEATURES;
#endif
    *count = 1;
    return RB_OK;
}

/* A linear head on the features and softmax cross-entropy: enough for a
 * model to be built and scored. */
static rb_status fake_head(rb_graph *g, const rb_params *p, const rb_task_target *t, rb_node **outputs,
                           size_t capacity, size_t *count)
{
    rb_node *x;
    rb_status s = rb_graph_find(g, RB_STAGE_FEATURES, &x);
    (void)p;
    (void)capacity;
    *count = 1;
    return s == RB_OK ? rb_graph_linear(g, "fc", x, t->num_classes, true, &outputs[0]) : s;
}

static rb_status fake_loss(rb_graph *g, const rb_params *p, rb_node *const *outputs, size_t count, rb_node *targets,
                           rb_node **loss)
{
    (void)p;
    (void)count;
    (void)targets;
    return rb_graph_softmax_cross_entropy(g, outputs[0], loss);
}

/* Claims one box more than it has room for (FIXTURE_GREEDY_DECODE), or
 * none. */
static rb_status fake_decode(const rb_params *p, const rb_task_target *t, const float *const *outputs,
                             const int64_t (*shapes)[3], size_t count, int64_t rows, rb_predictions *out)
{
    (void)p;
    (void)t;
    (void)outputs;
    (void)shapes;
    (void)count;
    for (int64_t i = 0; i < rows && out->box_counts != NULL; i++)
#ifdef FIXTURE_GREEDY_DECODE
        out->box_counts[i] = out->max_boxes + 1;
#else
        out->box_counts[i] = 0;
#endif
    return RB_OK;
}

static rb_status fake_metrics_create(const rb_params *p, const rb_task_target *t, void **state)
{
    (void)p;
    (void)t;
    *state = NULL;
    return RB_OK;
}

static rb_status fake_accumulate(void *state, const rb_predictions *pred, const rb_targets *targets)
{
    (void)state;
    (void)pred;
    (void)targets;
    return RB_OK;
}

static rb_status fake_finalize(void *state, rb_metric *m, size_t capacity, size_t *count)
{
    (void)state;
    if (capacity > 0)
        m[0] = (rb_metric){"score", 0.5};
    *count = 1;
    return RB_OK;
}

static void fake_destroy(void *state)
{
    (void)state;
}

#ifdef FIXTURE_MISSING_PROJECT
#define STEP_OPS .random_start = fake_attack_call, .step = fake_attack_call
#else
#define STEP_OPS .random_start = fake_attack_call, .step = fake_attack_call, .project = fake_attack_call
#endif
#ifdef FIXTURE_MISSING_METRICS
#define TASK_FINALIZE
#else
#define TASK_FINALIZE .metrics_finalize = fake_finalize,
#endif
#ifdef FIXTURE_GREEDY_DECODE
#define TASK_DATASET RB_DATASET_DETECTION
#else
#define TASK_DATASET RB_DATASET_SEGMENTATION
#endif
#define TASK_OPS                                                                                                      \
    .dataset_kind = TASK_DATASET, .primary_metric = "score", .stages = fake_stages, .build_head = fake_head,          \
    .build_loss = fake_loss, .decode = fake_decode, .metrics_create = fake_metrics_create,                          \
    .metrics_accumulate = fake_accumulate, TASK_FINALIZE .metrics_destroy = fake_destroy

/* Tables for the descriptors written out by hand below. */
static const rb_attack_ops step_table = {.kind = RB_PLUGIN_ATTACK, STEP_OPS};
static const rb_arch_ops arch_table = {.kind = RB_PLUGIN_ARCH, .build = fake_build};

#if defined(FIXTURE_GOOD_ATTACK) || defined(FIXTURE_DUPLICATE_NAME)
RB_ATTACK_PLUGIN("good-attack", "2.1", "a step-based fixture", fixture_params, STEP_OPS);
#elif defined(FIXTURE_GOOD_RUN_ATTACK)
RB_ATTACK_PLUGIN("good-run-attack", "1.0", "a whole-run fixture", NULL, .run = fake_run);
#elif defined(FIXTURE_GOOD_ARCH) || defined(FIXTURE_MISSING_BUILD)
#ifdef FIXTURE_MISSING_BUILD
RB_ARCH_PLUGIN("good-arch", "1.0", "an arch fixture", fixture_params, .count_macs = NULL);
#else
RB_ARCH_PLUGIN("good-arch", "1.0", "an arch fixture", fixture_params, .build = fake_build);
#endif
#elif defined(FIXTURE_GOOD_TASK) || defined(FIXTURE_MISSING_METRICS)
RB_TASK_PLUGIN("good-task", "1.0", "a task fixture", NULL, TASK_OPS);
#elif defined(FIXTURE_BAD_STAGE)
RB_TASK_PLUGIN("bad-stage", "1.0", "reads a stage no backbone publishes", NULL, TASK_OPS);
#elif defined(FIXTURE_GREEDY_DECODE)
RB_TASK_PLUGIN("greedy-decode", "1.0", "claims more boxes than it has room for", NULL, TASK_OPS);
#elif defined(FIXTURE_MISSING_PROJECT)
RB_ATTACK_PLUGIN("half-attack", "1.0", "lacks project", NULL, STEP_OPS);
#elif defined(FIXTURE_BAD_PARAMS)
RB_ATTACK_PLUGIN("bad-params", "1.0", "bad default", fixture_params, STEP_OPS);
#elif defined(FIXTURE_BAD_NAME)
RB_ATTACK_PLUGIN("Bad Name", "1.0", "bad name", NULL, STEP_OPS);
#elif defined(FIXTURE_BAD_ABI) || defined(FIXTURE_OLD_ABI) || defined(FIXTURE_BAD_SIZE) ||              \
    defined(FIXTURE_BAD_KIND) || defined(FIXTURE_BAD_OPS_SIZE) || defined(FIXTURE_LONG_OPS) ||               \
    defined(FIXTURE_SHORT_OPS) || defined(FIXTURE_WRONG_TABLE) || defined(FIXTURE_NO_OPS)
/* Written out by hand: these fields are what the macro would get right. */
RB_PLUGIN_EXPORT extern const rb_plugin rb_plugin_descriptor;
RB_PLUGIN_EXPORT const rb_plugin rb_plugin_descriptor = {
#if defined(FIXTURE_BAD_ABI)
    .abi_version = 99,
#elif defined(FIXTURE_OLD_ABI)
    .abi_version = 1, /* what every plugin built before ABI 2 says */
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
#if defined(FIXTURE_NO_OPS)
    .ops = {.header = NULL},
#elif defined(FIXTURE_WRONG_TABLE)
    /* ABI 1's mistake: an attack descriptor pointing to an arch table */
    .ops = {.arch = &arch_table},
#else
    .ops = {.attack = &step_table},
#endif
#if defined(FIXTURE_BAD_OPS_SIZE)
    .ops_size = 16, /* shorter than the required callbacks */
#elif defined(FIXTURE_LONG_OPS)
    .ops_size = sizeof(rb_attack_ops) + sizeof(void *), /* from a newer robusta */
#elif defined(FIXTURE_SHORT_OPS)
    /* from an older robusta whose table ended at project: run reads NULL */
    .ops_size = offsetof(rb_attack_ops, project) + sizeof(void *),
#elif defined(FIXTURE_WRONG_TABLE)
    .ops_size = sizeof(rb_arch_ops),
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
RB_ATTACK_PLUGIN("ctor-segv", "1.0", "crashes on load", NULL, STEP_OPS);
#elif defined(FIXTURE_CTOR_EXIT)
RB_ATTACK_PLUGIN("ctor-exit", "1.0", "exits on load", NULL, STEP_OPS);
#else
RB_ATTACK_PLUGIN("ctor-hang", "1.0", "hangs on load", NULL, STEP_OPS);
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
RB_ATTACK_PLUGIN("marker-attack", "1.0", "marks its loading", NULL, STEP_OPS);
#elif defined(FIXTURE_NO_DESCRIPTOR)
/* A valid shared object that is not a robusta plugin. */
int fixture_not_a_plugin(void);
int fixture_not_a_plugin(void)
{
    return (int)sizeof(step_table) + (int)sizeof(arch_table);
}
#else
#error "define one FIXTURE_* macro"
#endif
