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
 * One macro per kind defines the descriptor and its ops table together, from
 * designated initializers of that kind's table, so a callback of another
 * kind's table does not compile:
 *
 *     #include <robusta/plugin.h>
 *
 *     static const rb_param_spec params[] = {
 *         {RB_PARAM_EPS, RB_PARAM_FLOAT, "8/255", "[0, 1]", 0, "Linf radius"},
 *         {NULL}
 *     };
 *     static rb_status my_step(void *self, const rb_params *p, rb_attack_batch *b) {...}
 *     static rb_status my_project(void *self, const rb_params *p, rb_attack_batch *b) {...}
 *     RB_ATTACK_PLUGIN("my-attack", "1.0", "what it does", params,
 *                      .step = my_step, .project = my_project);
 *
 * (examples/plugin/ holds two complete attacks, FGSM and MI-FGSM.) Build it
 * out of tree with
 *     cc -shared -fPIC $(pkg-config --cflags robusta) my_attack.c -o my_attack.so
 * and point RB_PLUGIN_PATH at its folder. Folders and files must not be
 * writable by group or others: robusta runs code from them.
 *
 * Compatibility (plugin ABI 3; ABI 3 added the attack oracle's struct_size,
 * logit_loss_and_grad and classes):
 *  - the descriptor starts with the ABI version and its own size; a plugin
 *    is loaded only when both equal this robusta's, so a plugin built for
 *    another ABI is refused with a line saying to rebuild it;
 *  - every ops table starts with the kind it was made for, which must be
 *    the descriptor's kind, and the descriptor records the table's size
 *    (ops_size). A table shorter than this robusta's is accepted: the
 *    callbacks it lacks read as NULL, which every optional callback
 *    allows. New optional callbacks are therefore only ever appended to a
 *    table, and do not change RB_PLUGIN_ABI_VERSION; a table longer than
 *    this robusta's (a plugin built for a newer one) is refused;
 *  - anything else that changes a layout changes RB_PLUGIN_ABI_VERSION.
 * The loader hands callers a copy of the descriptor whose table has this
 * robusta's full size, so host code reads any callback without checks.
 */
#ifndef ROBUSTA_PLUGIN_H
#define ROBUSTA_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <robusta/graph.h>
#include <robusta/params.h>
#include <robusta/rng.h>
#include <robusta/status.h>
#include <robusta/targets.h>
#include <robusta/tensor.h>
#include <robusta/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RB_PLUGIN_ABI_VERSION 3u
/* The symbol every plugin exports; the loader looks it up with dlsym. */
#define RB_PLUGIN_SYMBOL "rb_plugin_descriptor"

typedef enum rb_plugin_kind {
    RB_PLUGIN_ARCH = 1,   /* builds a backbone (ResNet ...) */
    RB_PLUGIN_ATTACK = 2, /* a threat model (PGD L2, PGD Linf, APGD ...) */
    RB_PLUGIN_TASK = 3    /* a target task: head, loss, decoding and metrics */
} rb_plugin_kind;

/* Parameter names the runtime itself reads from a plugin's parameters,
 * when the plugin declares them:
 *  - RB_PARAM_EPS (attacks): the radius; adversarial training ramps it
 *    (eps warm-up) and records it;
 *  - RB_PARAM_NUM_CLASSES (archs): the classifier's size; 0 asks for the
 *    backbone alone, under a task's head;
 *  - RB_PARAM_PRESET (archs): a choice whose words are architecture names
 *    users may type ("resnet50"), resolved by rb_arch_resolve;
 *  - RB_PARAM_STEPS (attacks): the plugin's own iteration count. The
 *    command line's --steps sets it when the plugin declares it, and the
 *    runtime's PGD loop (rb_attack_options.steps) otherwise. */
#define RB_PARAM_EPS "eps"
#define RB_PARAM_NUM_CLASSES "num-classes"
#define RB_PARAM_PRESET "preset"
#define RB_PARAM_STEPS "steps"

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
    rb_plugin_kind kind; /* RB_PLUGIN_ARCH; RB_ARCH_PLUGIN sets it */
    /* Required. Adds the backbone to `g`, reading from `input` (the image
     * after the model's normalization node), publishes the stage outputs
     * under the RB_STAGE_* names, and sets *logits to the source classifier's
     * output (NULL when RB_PARAM_NUM_CLASSES is 0: the backbone alone).
     * Tensor names follow torchvision ("layer1.0.conv1.weight") so released
     * weights import. */
    rb_status (*build)(rb_graph *g, rb_node *input, const rb_params *params, rb_node **logits);
    /* Optional. Multiply-accumulates per image at height × width, without
     * building the graph, for listings and benchmarks. */
    rb_status (*count_macs)(const rb_params *params, int64_t height, int64_t width,
                            int64_t *macs);
} rb_arch_ops;

/* ---------------------------------------------------------------- attack */

/* One batch under attack. Tensors are row-major rows × C × H × W float32
 * in [0, 1], rows <= rb_attack_plan.batch. Random numbers must come from a
 * stream keyed by (seed, stream, example index) so that results do not
 * depend on how examples are split in batches:
 *     rb_rng r; rb_rng_init(&r, b->seed, b->stream, rb_attack_example(b, i));
 * (the rb_attack_sample_* helpers below do exactly that). */
typedef struct rb_attack_batch {
    rb_tensor *x_adv;         /* the adversarial images, updated in place */
    const rb_tensor *x_clean; /* the clean images the ball is centred on */
    const rb_tensor *grad;    /* d loss / d x_adv from the last backward (step only, else NULL) */
    const int64_t *labels;    /* true labels, or targets for targeted attacks */
    int64_t first_example;    /* the run's index of row 0 (rb_attack_options.first_example + ...) */
    uint64_t seed;            /* the run's seed */
    uint32_t stream;          /* RB_RNG_STREAM(RB_RNG_ATTACK, restart) */
    int iteration;            /* 0-based step number within this restart */
    int targeted;             /* 1: descend the loss towards labels instead of ascending */
    int restart;              /* 0-based restart number */
    /* Each row's example index (rows values), where the rows are not
     * consecutive examples (an ensemble attacks what earlier attacks left);
     * NULL: row r is example first_example + r. Read it through
     * rb_attack_example. */
    const int64_t *examples;
} rb_attack_batch;

/* The example index of row `row`: the key of its random numbers. */
static inline int64_t rb_attack_example(const rb_attack_batch *batch, int64_t row)
{
    return batch->examples != NULL ? batch->examples[row] : batch->first_example + row;
}

/* What a run of the attack will look like, given to `begin` before the
 * first batch. */
typedef struct rb_attack_plan {
    int64_t examples;                /* images in the whole run, >= 1 */
    int64_t batch;                   /* the most rows any rb_attack_batch of the run has:
                                        the engine's batch, or `examples` when fewer (the
                                        last chunk may have fewer rows) */
    int64_t channels, height, width; /* of each image: a row holds C × H × W values */
    int steps;                       /* step-based: step/project pairs per restart (the
                                        runtime's loop); 0 for a whole-run plugin */
    int restarts;                    /* restarts per chunk, >= 1 */
    int targeted;                    /* 1: a targeted run */
    uint64_t seed;                   /* the run's seed */
    int random_start;                /* step-based: 1 when every restart starts at random_start */
} rb_attack_plan;

/* An objective of the logits, for rb_attack_oracle.logit_loss_and_grad.
 * The oracle calls it once per chunk of its rows, in order: the chunk is
 * rows first .. first + rows - 1 of the oracle's x, `logits` (rows ×
 * classes, row-major) and `labels` (rows values) are the chunk's, and it
 * writes each example's loss into losses[r] and the gradient of that loss
 * with respect to the example's logits into dlogits (rows × classes, zero
 * on entry). `ctx` is the plugin's (per-row targets, indexed first + r, say).
 * A status other than RB_OK stops the oracle with it. */
typedef rb_status (*rb_logit_loss)(void *ctx, int64_t first, int64_t rows, int64_t classes, const float *logits,
                                   const int64_t *labels, float *losses, float *dlogits);

/* Lets a whole-run attack evaluate the model. The model is in inference
 * mode (each example's result depends on its image alone); no weight
 * gradients are computed. x may have any number of rows. */
typedef struct rb_attack_oracle {
    /* sizeof(rb_attack_oracle) of the robusta that made it: members are
     * only ever appended, and one past struct_size is absent
     * (RB_ATTACK_ORACLE_HAS). */
    uint32_t struct_size;
    /* The model's loss per example (the graph's cross-entropy) and, when
     * `grad` is not NULL, the gradient of their sum with respect to x. */
    rb_status (*loss_and_grad)(void *ctx, const rb_tensor *x, const int64_t *labels,
                               float *losses, rb_tensor *grad);
    /* Logits (N × classes) for x, to check which examples are fooled. */
    rb_status (*logits)(void *ctx, const rb_tensor *x, rb_tensor *logits);
    void *ctx;
    /* Any objective of the logits (DLR, a margin, a difference of two
     * logits): runs the model on x, calls `loss` on the logits, and
     * backpropagates its dlogits, so that `grad` (when not NULL) is the
     * gradient of the sum of the losses with respect to x. losses (rows
     * values) and logits (rows × classes) receive what the model gave, each
     * when not NULL. Refused for models whose loss is not a classifier's
     * (segmentation, detection). */
    rb_status (*logit_loss_and_grad)(void *ctx, const rb_tensor *x, const int64_t *labels, rb_logit_loss loss,
                                     void *loss_ctx, float *losses, float *logits, rb_tensor *grad);
    /* The model's classes: logits per example. */
    int64_t classes;
} rb_attack_oracle;

/* Whether an oracle has `member` (one added after struct_size began); a
 * callback that is there may still be NULL. */
#define RB_ATTACK_ORACLE_HAS(oracle, member)                                                                     \
    ((oracle) != NULL &&                                                                                         \
     (oracle)->struct_size >= offsetof(rb_attack_oracle, member) + sizeof((oracle)->member))

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
 *  - step-based: step and project, random_start optional; robusta's PGD
 *    loop drives them (iterations, restarts, keep-best, targeted);
 *  - whole-run: run, for attacks whose schedule is not PGD-shaped (APGD,
 *    Square): it gets an oracle and does its own iterations.
 * A plugin that offers neither complete shape is refused when loaded.
 * The contract (calls, lifetimes, what `self` may keep) is written out in
 * the "Attack contract" section below. */
typedef struct rb_attack_ops {
    rb_plugin_kind kind; /* RB_PLUGIN_ATTACK; RB_ATTACK_PLUGIN sets it */
    /* Optional: per-run state (schedules, buffers) made once from the
     * parameters; the pointer is passed back as `self` (NULL without
     * create). */
    rb_status (*create)(const rb_params *params, void **self);
    /* Optional: frees what create made; runs whenever create succeeded. */
    void (*destroy)(void *self);
    /* Optional: the run's shape, before the first batch: size per-row state
     * from plan->batch here, and derive schedules from plan->steps. */
    rb_status (*begin)(void *self, const rb_params *params, const rb_attack_plan *plan);
    /* Optional: moves x_adv (which holds x_clean) to a random point of the
     * ball around x_clean. Without it the runtime refuses random starts and
     * restarts (which need them). */
    rb_status (*random_start)(void *self, const rb_params *params, rb_attack_batch *batch);
    /* One ascent step on x_adv from batch->grad (descent when targeted). */
    rb_status (*step)(void *self, const rb_params *params, rb_attack_batch *batch);
    /* Brings x_adv back into the ball around x_clean and into [0, 1]. */
    rb_status (*project)(void *self, const rb_params *params, rb_attack_batch *batch);
    /* The whole attack, for attacks that are not step-based. */
    rb_status (*run)(void *self, const rb_params *params, const rb_attack_oracle *oracle,
                     rb_attack_batch *batch);
} rb_attack_ops;

/* Attack contract
 * ---------------
 * What robusta's attack runtime (rb_attacker_run and rb_attack_run in
 * robusta/attack.h, which adversarial training and robust evaluation use
 * too) promises an attack plugin, and what it asks in return.
 *
 * Calls. A run attacks `examples` images with one parameter set and one
 * rb_attack_options. Examples go through the engine in chunks of
 * plan->batch rows, in order; the runtime makes these calls, in this order,
 * from one thread:
 *
 *     create(params, &self)                      once, if given
 *     begin(self, params, plan)                  once, if given
 *     for each chunk (row r is example first_example + r):
 *         for restart = 0 .. plan->restarts - 1:  (ends early once every row
 *                                                  of the chunk is fooled)
 *             x_adv = x_clean; batch->restart = restart, ->iteration = 0,
 *             ->stream = RB_RNG_STREAM(RB_RNG_ATTACK, restart), ->grad = NULL
 *             whole-run:  run(self, params, oracle, batch)
 *             step-based: random_start(self, params, batch)  if plan->random_start
 *                         for iteration = 0 .. plan->steps - 1:
 *                             (forward and backward at x_adv: batch->grad)
 *                             step(self, params, batch)
 *                             project(self, params, batch)
 *                         (a last forward scores x_adv)
 *     destroy(self)                              once, if create succeeded;
 *                                                after a failure too
 *
 * A step-based run so makes at most chunks × restarts × steps step/project
 * pairs. A run of 0 images calls nothing. Between calls the runtime keeps
 * the best iterate (keep-best) and picks each row's result among restarts;
 * the plugin only ever sees the current iterate.
 *
 * When. create, begin and destroy each run once per rb_attacker_run call:
 * once per rb_attack_run, and so once per training batch in adversarial
 * training and once per evaluation batch in robust evaluation, which attack
 * through one rb_attacker. A later robusta may keep `self` across the runs
 * of one rb_attacker with the same parameters, to spare the allocations;
 * begin would then be called again on the same `self`, with the next run's
 * plan, before that run's first batch. Size per-run state in begin, not in
 * create, and a plugin is correct under both.
 *
 * Lifetimes.
 *  - params: one set, unchanged, from create to destroy; its values were
 *    checked against the plugin's table (type, range) when set.
 *  - plan: valid during begin only; copy what you need.
 *  - batch, its tensors, labels and grad: valid during the call only; the
 *    runtime reuses the memory for every chunk and restart. Only x_adv may
 *    be written; never keep a pointer into a batch.
 *  - self: the plugin's own, from create to destroy; the runtime only
 *    passes it back.
 *
 * What self may keep: anything made from params and plan — step sizes,
 * schedules, and per-row buffers of plan->batch rows × plan->channels ×
 * height × width values (a momentum, a best point). Row r of a later batch
 * is another example once a chunk ends, and a restart starts again from
 * x_clean: reset per-row state where a restart starts (batch->iteration 0,
 * or in random_start).
 *
 * Threads. All calls of a run come from the thread that called
 * rb_attacker_run, one at a time. Separate rb_attackers may run in separate
 * threads at once, each with its own `self`, so keep no mutable global
 * state.
 *
 * Errors. A callback that fails returns a status other than RB_OK and says
 * why in one line with rb_error_set. The run stops there: nothing else is
 * called but destroy, and rb_attacker_run returns that status with the
 * message prefixed by the plugin's file (rb_plugin_path) and the callback:
 *     "attack plugin /usr/lib/robusta/mi_fgsm.so (mi-fgsm): begin: ..."
 * The caller's output then holds no complete result. The runtime refuses,
 * before calling anything, options the plugin cannot serve: a random start
 * or restarts (which need one) for a step-based plugin without random_start.
 */

/* Helpers for the common pieces of attacks. Each works in place on
 * view->x (a batch's view, or one of the plugin's own buffers viewed the
 * same way: rows of cols values, x0 the centres of the balls) and refuses
 * with RB_ERR_INVALID_ARGUMENT, naming the helper, a view with negative
 * sizes or a missing array, and an eps or step that is not finite (eps also
 * when negative). Values are float32; norms are accumulated in double. The
 * arithmetic is spelled out, since attacks are compared with reference
 * implementations bit for bit. */

/* The reference whose L2 arithmetic a helper reproduces. They differ in the
 * constant added to a norm before dividing by it and in the projection:
 *   RB_ATTACK_L2_ROBUSTNESS (the robustness library, Engstrom et al.; pgd-l2):
 *     tiny 1e-10; project: d <- d * eps / (||d|| + 1e-7) when ||d|| > eps,
 *     d unchanged otherwise (torch.renorm);
 *   RB_ATTACK_L2_AUTOATTACK (AutoAttack, Croce & Hein; apgd-ce):
 *     tiny 1e-12; project: d <- d * min(eps, ||d||) / (||d|| + 1e-12). */
typedef enum rb_attack_l2_rule {
    RB_ATTACK_L2_ROBUSTNESS = 1,
    RB_ATTACK_L2_AUTOATTACK = 2
} rb_attack_l2_rule;

/* Sign step: x <- x + a * sign(grad), a = (float)alpha, sign(0) = 0, per
 * value. A negative alpha descends (targeted attacks). Needs view->grad. */
RB_API rb_status rb_attack_step_sign(const rb_attack_view *view, double alpha);

/* L2-normalized step, per row: x <- x + (float)(s * grad) with
 * s = alpha / (||grad||_2 + tiny) in double (tiny from `rule`). A negative
 * alpha descends. Needs view->grad. */
RB_API rb_status rb_attack_step_l2(const rb_attack_view *view, double alpha, rb_attack_l2_rule rule);

/* Linf projection onto the ball of radius eps around x0 and [0, 1], per
 * value in float32: x <- clamp(x0 + clamp(x - x0, -e, e), 0, 1), e = (float)eps. */
RB_API rb_status rb_attack_project_linf(const rb_attack_view *view, double eps);

/* L2 projection onto the ball of radius eps around x0 and [0, 1], per row:
 * d = x - x0 and ||d||_2 in double, s from `rule` (above),
 * x <- clamp(x0 + (float)(s * d), 0, 1). The clamp may shrink d further,
 * never grow it. */
RB_API rb_status rb_attack_project_l2(const rb_attack_view *view, double eps, rb_attack_l2_rule rule);

/* Random starts, row r drawing from rb_rng_init(seed, stream,
 * first_example + r) of `batch` (the view holds the batch's rows), values
 * in row order, and clamped to [0, 1] at the end.
 *
 * Uniform in the Linf ball: x <- clamp(x0 + u, 0, 1),
 * u = 2 * (rb_rng_uniform - 0.5f) * (float)eps in float32, one draw per value. */
RB_API rb_status rb_attack_sample_linf(const rb_attack_view *view, const rb_attack_batch *batch, double eps);

/* On the L2 sphere of radius eps, as both references start: z ~ N(0, I)
 * (cols rb_rng_normal draws), x <- clamp(x0 + (float)(eps / (||z||_2 + tiny) * z), 0, 1),
 * tiny from `rule`. */
RB_API rb_status rb_attack_sample_l2_sphere(const rb_attack_view *view, const rb_attack_batch *batch,
                                            double eps, rb_attack_l2_rule rule);

/* Uniform in the volume of the L2 ball of radius eps: z ~ N(0, I) (cols
 * rb_rng_normal draws), then u = rb_rng_uniform, and
 * x <- clamp(x0 + (float)(eps * u^(1/cols) / ||z||_2 * z), 0, 1)
 * (a radius r has P(r <= t * eps) = t^cols). */
RB_API rb_status rb_attack_sample_l2_ball(const rb_attack_view *view, const rb_attack_batch *batch, double eps);

/* ------------------------------------------------------------------ task */

/* The kind of dataset a task needs, and so the targets its loss and
 * metrics read and the predictions its decode writes. */
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

/* Most raw outputs a head may have, and most stages it may read. */
#define RB_TASK_MAX_OUTPUTS 16
#define RB_TASK_MAX_STAGES 8
/* Room, per image, for the boxes a detection decode returns (COCO's
 * evaluation counts at most 100 detections per image). */
#define RB_TASK_MAX_DETECTIONS 100

/* What a task predicts for a batch, as decode writes it. The host
 * allocates the members of the task's dataset kind and sets their sizes;
 * the others are NULL:
 *   classification  labels: count classes;
 *   segmentation    masks: count × mask_height × mask_width classes (the
 *                   model's input size);
 *   detection       boxes and scores: room for max_boxes per image, image
 *                   i's at boxes + i * max_boxes; box_counts[i] says how
 *                   many decode wrote (at most max_boxes), best first. */
typedef struct rb_predictions {
    int64_t count;
    int64_t *labels;
    int32_t *masks;
    int64_t mask_height, mask_width;
    rb_box *boxes;
    float *scores;
    int64_t *box_counts;
    int64_t max_boxes;
} rb_predictions;

/* One named result of a task ("accuracy", "ap50", "miou"). Names are
 * static strings owned by the plugin, or strings in its metrics state
 * that live until metrics_destroy. */
typedef struct rb_metric {
    const char *name;
    double value;
} rb_metric;

/* A task: how its head attaches, what it optimizes, how raw outputs become
 * predictions and how predictions are scored. The host calls, per model:
 * stages (to check the backbone publishes them), build_head, build_loss,
 * and init_head when it initializes a new model's parameters; per
 * evaluation: metrics_create, then per batch decode and
 * metrics_accumulate, then metrics_finalize and metrics_destroy. Training
 * scores its batches the same way. Nothing here may keep pointers to a
 * batch's tensors, targets or predictions past the call. */
typedef struct rb_task_ops {
    rb_plugin_kind kind; /* RB_PLUGIN_TASK; RB_TASK_PLUGIN sets it */
    rb_dataset_kind dataset_kind;
    /* The metric that ranks models ("accuracy", "miou", "ap"): the best
     * checkpoint is the one where it is highest. One of finalize's names. */
    const char *primary_metric;
    /* Required. The backbone stages (RB_STAGE_* names, static strings)
     * the head reads with these parameters: at most `capacity` written to
     * `names`, *count set to how many. A stage the architecture does not
     * publish is refused before build_head runs. */
    rb_status (*stages)(const rb_params *params, const char **names, size_t capacity, size_t *count);
    /* Required. Adds the head to `g` on those stages (rb_graph_find) and
     * writes its raw outputs, in the order decode reads them: at most
     * `capacity` (RB_TASK_MAX_OUTPUTS) nodes, *count set to how many. */
    rb_status (*build_head)(rb_graph *g, const rb_params *params, const rb_task_target *target,
                            rb_node **outputs, size_t capacity, size_t *count);
    /* Required. Adds the loss of the outputs against `targets`, the graph's
     * target node of the task's dataset kind (rb_graph_target: labels,
     * masks or boxes), and sets *loss to a per-example loss node (several
     * losses: their sum). */
    rb_status (*build_loss)(rb_graph *g, const rb_params *params, rb_node *const *outputs, size_t count,
                            rb_node *targets, rb_node **loss);
    /* Required. Turns the raw outputs of `rows` images (outputs[k] holds
     * rows × the k-th output node's C × H × W, plain row-major f32) into
     * predictions (see rb_predictions): the arg-max class, the per-pixel
     * class map, or scored boxes after non-maximum suppression. */
    rb_status (*decode)(const rb_params *params, const rb_task_target *target, const float *const *outputs,
                        const int64_t (*shapes)[3], size_t count, int64_t rows, rb_predictions *out);
    /* Required. Metrics: made once per evaluation, fed every batch's
     * predictions and targets (rb_targets: labels, masks or boxes), read at
     * the end. finalize writes at most `capacity` metrics and sets *count
     * to how many it has (which may be more than capacity). */
    rb_status (*metrics_create)(const rb_params *params, const rb_task_target *target, void **state);
    rb_status (*metrics_accumulate)(void *state, const rb_predictions *predictions, const rb_targets *targets);
    rb_status (*metrics_finalize)(void *state, rb_metric *metrics, size_t capacity, size_t *count);
    void (*metrics_destroy)(void *state);
    /* Optional (NULL: the defaults stand). Initializes the head's tensors
     * that its reference initializes otherwise than rb_graph_init_params
     * (torchvision's default per layer type): a detection head's
     * normal(0, 0.01) weights and prior-probability bias. The host calls
     * it right after rb_graph_init_params(g, seed) on the graph that
     * build_head and build_loss made with these parameters
     * (rb_model_init_params); it finds its tensors by name
     * (rb_graph_find_param) and draws from streams of `seed` purposed
     * RB_RNG_USER and up, so that the result depends on the seed alone. */
    rb_status (*init_head)(rb_graph *g, const rb_params *params, uint64_t seed);
} rb_task_ops;

/* ------------------------------------------------------------ descriptor */

/* The start every ops table shares: the kind it was made for. */
typedef struct rb_ops_header {
    rb_plugin_kind kind;
} rb_ops_header;

typedef struct rb_plugin {
    uint32_t abi_version;  /* RB_PLUGIN_ABI_VERSION when the plugin was built */
    uint32_t struct_size;  /* sizeof(rb_plugin) when the plugin was built */
    rb_plugin_kind kind;
    const char *name;      /* unique, lower-case letters, digits, '-' and '_' */
    const char *version;   /* the plugin's own version, free form ("1.0") */
    const char *summary;   /* one line for listings */
    const rb_param_spec *params; /* ended by a NULL name; NULL for none */
    /* The ops table of `kind`; read the member of the descriptor's kind. */
    union {
        const rb_ops_header *header;
        const rb_arch_ops *arch;
        const rb_attack_ops *attack;
        const rb_task_ops *task;
    } ops;
    uint32_t ops_size;     /* sizeof the table when the plugin was built */
} rb_plugin;

#if defined(__GNUC__)
#define RB_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define RB_PLUGIN_EXPORT
#endif

/* The descriptor of a plugin of `kind_` whose table is `table_`, of type
 * `type_`: used by the three macros below. */
#define RB_PLUGIN_DESCRIPTOR_(kind_, member_, type_, table_, name_, version_, summary_, params_)      RB_PLUGIN_EXPORT extern const rb_plugin rb_plugin_descriptor;                                   RB_PLUGIN_EXPORT const rb_plugin rb_plugin_descriptor = {                                           .abi_version = RB_PLUGIN_ABI_VERSION,                                                           .struct_size = (uint32_t)sizeof(rb_plugin),                                                     .kind = (kind_),                                                                                .name = (name_),                                                                                .version = (version_),                                                                          .summary = (summary_),                                                                          .params = (params_),                                                                            .ops = {.member_ = &(table_)},                                                                  .ops_size = (uint32_t)sizeof(type_),                                                        }

/* Defines the plugin's descriptor and its ops table, whose callbacks are
 * the designated initializers after the parameters:
 *     RB_ARCH_PLUGIN("resnet", "1.0", "ResNets", params, .build = build);
 * The table's kind and size are filled in; a member of another kind's
 * table is a compile error. */
#define RB_ARCH_PLUGIN(name_, version_, summary_, params_, ...)                                      static const rb_arch_ops rb_plugin_ops_table = {.kind = RB_PLUGIN_ARCH, __VA_ARGS__};           RB_PLUGIN_DESCRIPTOR_(RB_PLUGIN_ARCH, arch, rb_arch_ops, rb_plugin_ops_table, name_,                                 version_, summary_, params_)
#define RB_ATTACK_PLUGIN(name_, version_, summary_, params_, ...)                                    static const rb_attack_ops rb_plugin_ops_table = {.kind = RB_PLUGIN_ATTACK, __VA_ARGS__};       RB_PLUGIN_DESCRIPTOR_(RB_PLUGIN_ATTACK, attack, rb_attack_ops, rb_plugin_ops_table, name_,                           version_, summary_, params_)
#define RB_TASK_PLUGIN(name_, version_, summary_, params_, ...)                                      static const rb_task_ops rb_plugin_ops_table = {.kind = RB_PLUGIN_TASK, __VA_ARGS__};           RB_PLUGIN_DESCRIPTOR_(RB_PLUGIN_TASK, task, rb_task_ops, rb_plugin_ops_table, name_,                                 version_, summary_, params_)

/* ABI 1's macro, which took the kind and the table separately and could
 * not tell when they disagreed. */
#define RB_PLUGIN_DEFINE(...)                                                                        _Static_assert(0, "RB_PLUGIN_DEFINE is gone since plugin ABI 2: use RB_ARCH_PLUGIN, "                                "RB_ATTACK_PLUGIN or RB_TASK_PLUGIN (robusta/plugin.h)")

/* The file a loaded plugin came from (for messages), or NULL for a
 * descriptor that no registry loaded. */
RB_API const char *rb_plugin_path(const rb_plugin *plugin);

/* "arch", "attack", "task"; "unknown" otherwise. */
RB_API const char *rb_plugin_kind_str(rb_plugin_kind kind);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_PLUGIN_H */
