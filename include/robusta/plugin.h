/* robusta/plugin.h: everything a plugin needs to include.
 *
 * A plugin is a shared object that exports one constant descriptor, named
 * rb_plugin_descriptor, which says what kind of plugin it is (architecture,
 * attack or task), its name, version, a one-line summary, the parameters it
 * takes and a table of callbacks ("ops") for its kind. robusta finds plugins
 * in the folders of RB_PLUGIN_PATH (colon-separated) and then in its install
 * folder (pkg-config --variable=plugindir robusta), opens them with
 * dlopen(RTLD_NOW | RTLD_LOCAL), checks the descriptor and refuses, with one
 * line naming the file and the reason, anything that does not fit.
 *
 * A minimal attack (see examples/plugin/ for a complete one):
 *
 *     #include <robusta/plugin.h>
 *
 *     static const rb_param_spec params[] = {
 *         {"eps", RB_PARAM_FLOAT, "8/255", "[0, 1]", 0, "Linf radius"},
 *         {NULL}
 *     };
 *     static rb_status my_start(void *self, const rb_params *p, rb_attack_batch *b) {...}
 *     static rb_status my_step(void *self, const rb_params *p, rb_attack_batch *b) {...}
 *     static rb_status my_project(void *self, const rb_params *p, rb_attack_batch *b) {...}
 *     static const rb_attack_ops ops = {
 *         .random_start = my_start, .step = my_step, .project = my_project,
 *     };
 *     RB_PLUGIN_DEFINE(RB_PLUGIN_ATTACK, "my-attack", "1.0", "what it does",
 *                      params, &ops);
 *
 * Build it out of tree with
 *     cc -shared -fPIC $(pkg-config --cflags robusta) my_attack.c -o my_attack.so
 * and point RB_PLUGIN_PATH at its folder. Folders and files must not be
 * writable by group or others: robusta runs code from them.
 *
 * Compatibility: the descriptor starts with the ABI version and its own size.
 * A plugin is loaded only when both equal this robusta's; anything that
 * changes the layout of the descriptor or of an ops table changes
 * RB_PLUGIN_ABI_VERSION, so an old plugin is refused with a clear message
 * instead of crashing.
 */
#ifndef ROBUSTA_PLUGIN_H
#define ROBUSTA_PLUGIN_H

#include <stdint.h>
#include <robusta/params.h>
#include <robusta/rng.h>
#include <robusta/status.h>
#include <robusta/tensor.h>
#include <robusta/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RB_PLUGIN_ABI_VERSION 1u
/* The symbol every plugin exports; the loader looks it up with dlsym. */
#define RB_PLUGIN_SYMBOL "rb_plugin_descriptor"

typedef enum rb_plugin_kind {
    RB_PLUGIN_ARCH = 1,   /* builds a backbone (ResNet ...) */
    RB_PLUGIN_ATTACK = 2, /* a threat model (PGD L2, PGD Linf, APGD ...) */
    RB_PLUGIN_TASK = 3    /* a target task head, loss and metrics */
} rb_plugin_kind;

/* The static layer graph and its nodes, built by arch and task plugins. The
 * builder functions come with the engine (robusta/graph.h); plugins only
 * pass these handles along. */
typedef struct rb_graph rb_graph;
typedef struct rb_node rb_node;

/* ------------------------------------------------------------------ arch */

/* Names under which an arch plugin publishes its stage outputs, for task
 * heads to attach to: strides 4, 8, 16 and 32 of the input. */
#define RB_STAGE_STRIDE4 "stage1"
#define RB_STAGE_STRIDE8 "stage2"
#define RB_STAGE_STRIDE16 "stage3"
#define RB_STAGE_STRIDE32 "stage4"
/* The pooled feature vector a linear head consumes. */
#define RB_STAGE_FEATURES "features"

typedef struct rb_arch_ops {
    /* Required. Adds the backbone to `g`, reading from `input` (the image
     * after the model's normalization node), publishes the stage outputs
     * under the RB_STAGE_* names, and sets *logits to the source classifier's
     * output (NULL when the parameters ask for no classifier). Tensor names
     * follow torchvision ("layer1.0.conv1.weight") so released weights
     * import. */
    rb_status (*build)(rb_graph *g, rb_node *input, const rb_params *params, rb_node **logits);
    /* Optional. Multiply-accumulates per image at height × width, without
     * building the graph, for listings and benchmarks. */
    rb_status (*count_macs)(const rb_params *params, int64_t height, int64_t width,
                            int64_t *macs);
} rb_arch_ops;

/* ---------------------------------------------------------------- attack */

/* One batch under attack. Tensors are row-major N×C×H×W float32 in [0, 1].
 * Random numbers must come from a stream keyed by (seed, stream, first_example
 * + row) so that results do not depend on how examples are split in batches:
 *     rb_rng r; rb_rng_init(&r, b->seed, b->stream, b->first_example + i); */
typedef struct rb_attack_batch {
    rb_tensor *x_adv;         /* the adversarial images, updated in place */
    const rb_tensor *x_clean; /* the clean images the ball is centred on */
    const rb_tensor *grad;    /* d loss / d x_adv from the last backward (step only) */
    const int64_t *labels;    /* true labels, or targets for targeted attacks */
    int64_t first_example;    /* dataset index of row 0 */
    uint64_t seed;            /* the run's seed */
    uint32_t stream;          /* RB_RNG_STREAM(RB_RNG_ATTACK, restart) */
    int iteration;            /* 0-based step number within this restart */
    int targeted;             /* 1: descend the loss towards labels instead of ascending */
} rb_attack_batch;

/* Lets a whole-run attack evaluate the model: per-example losses and, when
 * `grad` is not NULL, the gradient of their sum with respect to x. The model
 * is in inference mode; no weight gradients are computed. */
typedef struct rb_attack_oracle {
    rb_status (*loss_and_grad)(void *ctx, const rb_tensor *x, const int64_t *labels,
                               float *losses, rb_tensor *grad);
    /* Logits (N × classes) for x, to check which examples are fooled. */
    rb_status (*logits)(void *ctx, const rb_tensor *x, rb_tensor *logits);
    void *ctx;
} rb_attack_oracle;

/* The batch as plain arrays: `rows` examples of `cols` values each. */
typedef struct rb_attack_view {
    int64_t rows, cols;
    float *x;          /* x_adv's data */
    const float *x0;   /* x_clean's data */
    const float *grad; /* grad's data, NULL unless asked for */
} rb_attack_view;

/* Checks that the batch's tensors are f32, have a batch dimension and agree
 * in shape (grad too when need_grad), and fills `view`. Errors name `who`
 * (the plugin) and the tensor. Every step-based callback starts with it. */
RB_API rb_status rb_attack_batch_view(const rb_attack_batch *batch, const char *who,
                                      bool need_grad, rb_attack_view *view);

/* A threat model offers one of two shapes:
 *  - step-based: random_start, step and project, all three; robusta's PGD
 *    loop drives them (iterations, restarts, keep-best, targeted);
 *  - whole-run: run, for attacks whose schedule is not PGD-shaped (APGD,
 *    Square): it gets an oracle and does its own iterations.
 * A plugin that offers neither complete shape is refused. */
typedef struct rb_attack_ops {
    /* Optional: per-run state (schedules, buffers) made once from the
     * parameters; the pointer is passed back as `self`. */
    rb_status (*create)(const rb_params *params, void **self);
    void (*destroy)(void *self);
    /* Moves x_adv to a random point of the ball around x_clean. */
    rb_status (*random_start)(void *self, const rb_params *params, rb_attack_batch *batch);
    /* One ascent step on x_adv from batch->grad (descent when targeted). */
    rb_status (*step)(void *self, const rb_params *params, rb_attack_batch *batch);
    /* Brings x_adv back into the ball around x_clean and into [0, 1]. */
    rb_status (*project)(void *self, const rb_params *params, rb_attack_batch *batch);
    /* The whole attack, for attacks that are not step-based. */
    rb_status (*run)(void *self, const rb_params *params, const rb_attack_oracle *oracle,
                     rb_attack_batch *batch);
} rb_attack_ops;

/* ------------------------------------------------------------------ task */

/* The kind of dataset a task needs. */
typedef enum rb_dataset_kind {
    RB_DATASET_CLASSIFICATION = 1, /* image, class label */
    RB_DATASET_DETECTION = 2,      /* image, boxes with labels */
    RB_DATASET_SEGMENTATION = 3    /* image, per-pixel class mask */
} rb_dataset_kind;

/* What the target dataset looks like, for sizing a head. */
typedef struct rb_task_target {
    int64_t num_classes;
    int64_t channels, height, width; /* input images */
} rb_task_target;

/* One named result of a task ("accuracy", "ap50", "miou"). Names are
 * static strings owned by the plugin. */
typedef struct rb_metric {
    const char *name;
    double value;
} rb_metric;

typedef struct rb_task_ops {
    rb_dataset_kind dataset_kind;
    /* Required. Adds the head to `g` on the backbone's published stage
     * outputs (found by name) and sets *prediction. */
    rb_status (*build_head)(rb_graph *g, const rb_params *params, const rb_task_target *target,
                            rb_node **prediction);
    /* Required. Adds the loss of `prediction` against `target` (labels,
     * boxes or masks) and sets *per_example_loss (N values). */
    rb_status (*build_loss)(rb_graph *g, const rb_params *params, rb_node *prediction,
                            rb_node *target, rb_node **per_example_loss);
    /* Required. Metrics: made once per evaluation, fed every batch, read at
     * the end. finalize writes at most `capacity` metrics and sets *count. */
    rb_status (*metrics_create)(const rb_params *params, const rb_task_target *target,
                                void **state);
    rb_status (*metrics_accumulate)(void *state, const rb_tensor *prediction,
                                    const rb_tensor *target);
    rb_status (*metrics_finalize)(void *state, rb_metric *metrics, size_t capacity,
                                  size_t *count);
    void (*metrics_destroy)(void *state);
} rb_task_ops;

/* ------------------------------------------------------------ descriptor */

typedef struct rb_plugin {
    uint32_t abi_version;  /* RB_PLUGIN_ABI_VERSION when the plugin was built */
    uint32_t struct_size;  /* sizeof(rb_plugin) when the plugin was built */
    rb_plugin_kind kind;
    const char *name;      /* unique, lower-case letters, digits, '-' and '_' */
    const char *version;   /* the plugin's own version, free form ("1.0") */
    const char *summary;   /* one line for listings */
    const rb_param_spec *params; /* ended by a NULL name; NULL for none */
    const void *ops;       /* rb_arch_ops, rb_attack_ops or rb_task_ops, by kind */
    uint32_t ops_size;     /* sizeof of that ops table when the plugin was built */
} rb_plugin;

#if defined(__GNUC__)
#define RB_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define RB_PLUGIN_EXPORT
#endif

/* Defines the descriptor with the version and size fields filled in. `ops`
 * must point to the ops table of `kind` (its size is taken from the kind). */
#define RB_PLUGIN_DEFINE(kind_, name_, version_, summary_, params_, ops_)                        \
    RB_PLUGIN_EXPORT extern const rb_plugin rb_plugin_descriptor;                               \
    RB_PLUGIN_EXPORT const rb_plugin rb_plugin_descriptor = {                                   \
        .abi_version = RB_PLUGIN_ABI_VERSION,                                                   \
        .struct_size = (uint32_t)sizeof(rb_plugin),                                             \
        .kind = (kind_),                                                                        \
        .name = (name_),                                                                        \
        .version = (version_),                                                                  \
        .summary = (summary_),                                                                  \
        .params = (params_),                                                                    \
        .ops = (ops_),                                                                          \
        .ops_size = (uint32_t)((kind_) == RB_PLUGIN_ARCH     ? sizeof(rb_arch_ops)              \
                               : (kind_) == RB_PLUGIN_ATTACK ? sizeof(rb_attack_ops)            \
                                                             : sizeof(rb_task_ops)),            \
    }

/* "arch", "attack", "task"; "unknown" otherwise. */
RB_API const char *rb_plugin_kind_str(rb_plugin_kind kind);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_PLUGIN_H */
