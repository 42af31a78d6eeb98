/* robusta/model.h: a classifier made of an architecture plugin, its
 * parameters and its weights; saved as a .rbt checkpoint.
 *
 * A model is the graph
 *
 *     input (C × H × W in [0, 1], normalized by the model's mean/std)
 *       -> the arch plugin's backbone and classifier -> logits (K)
 *       -> softmax cross-entropy against labels      -> loss
 *
 * or, for transfer learning, the backbone without its classifier and a task
 * plugin's head in its place (rb_model_create_with_head):
 *
 *     input -> backbone -> features (RB_STAGE_FEATURES), or a stage
 *           -> the task's head -> logits (K) -> the task's loss
 *
 * where the head reads whichever backbone outputs its task asks for
 * (classify: the pooled features, or --stage stage3 ...);
 * together with everything needed to build that graph again: the arch
 * plugin's name and every parameter value, the input channels and size, the
 * normalization. Convolutional backbones accept other image sizes than the
 * one a model was saved with: rb_model_load can build the graph for any
 * size.
 *
 *     rb_model *m;
 *     rb_model_load(&m, registry, "resnet18.rbt", 0, 0);  // saved size
 *     rb_engine_create(&e, rb_model_graph(m), 64, NULL);
 *
 * Checkpoint metadata (robusta/checkpoint.h holds the file layout), a JSON
 * object with these members:
 *
 *   "format":       "robusta-model" (required)
 *   "robusta":      version of robusta that wrote it (informative)
 *   "arch":         {"plugin": "resnet", "plugin_version": "1.0",
 *                    "params": {"depth": "50", "width": "1", ...}}
 *                   every parameter given explicitly when the model was
 *                   built, as text that rb_params_set accepts; the others
 *                   take the plugin's defaults (plugin_version says which
 *                   plugin's: a plugin must not change a default without
 *                   changing its version)
 *   "input":        {"channels": 3, "height": 224, "width": 224,
 *                    "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
 *   "num_classes":  K, the logits' size
 *   "task":         only for a model with a task head (transfer):
 *                   {"plugin": "classify", "plugin_version": "1.1",
 *                    "params": {"hidden": "512"}} as for "arch"; the
 *                   backbone is then built with num-classes 0 and the
 *                   task's head on the stage its parameters name
 *                   (classify: RB_STAGE_FEATURES unless "stage" is given)
 *   "classes":      optional: K class names
 *   "training":     optional: training state, owned by the trainer
 *                   (epoch, optimizer, schedule, RNG), with its tensors
 *                   named RB_MODEL_STATE_PREFIX + ...
 *
 * Tensors: every graph parameter and buffer under its torchvision name
 * ("layer1.0.conv1.weight", "bn1.running_mean"), f32, in graph order; then
 * any training-state tensors. A loader refuses a checkpoint that misses a
 * parameter, has one of a different shape, or has a tensor it does not know
 * outside the state prefix, naming the tensor.
 */
#ifndef ROBUSTA_MODEL_H
#define ROBUSTA_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <robusta/checkpoint.h>
#include <robusta/engine.h>
#include <robusta/graph.h>
#include <robusta/params.h>
#include <robusta/plugin.h>
#include <robusta/registry.h>
#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RB_MODEL_FORMAT "robusta-model"
/* Checkpoint tensors under this prefix belong to the trainer, not the model. */
#define RB_MODEL_STATE_PREFIX "state."
#define RB_MODEL_MAX_CHANNELS 16

typedef struct rb_model rb_model;

/* The image a model takes. */
typedef struct rb_model_input {
    int64_t channels, height, width;
    float mean[RB_MODEL_MAX_CHANNELS]; /* per channel, for (x - mean) / std */
    float std[RB_MODEL_MAX_CHANNELS];
} rb_model_input;

/* ImageNet's 3-channel normalization, the torchvision models' default. */
RB_API rb_model_input rb_model_input_imagenet(int64_t height, int64_t width);

/* Resolves an architecture name as users type it: the name of an arch
 * plugin ("resnet"), or a preset one of them offers through a choice
 * parameter named "preset" ("resnet50", "wide_resnet50_2"). *preset is
 * set to the preset name or NULL. Unknown names fail with the closest
 * known one suggested. */
RB_API rb_status rb_arch_resolve(const rb_registry *registry, const char *name, const rb_plugin **plugin,
                                 const char **preset);

/* Builds the model's graph from `arch` with `params` (a set created from
 * arch->params; it is copied). Parameters are left zero: initialize them
 * (rb_graph_init_params) or load them. */
RB_API rb_status rb_model_create(rb_model **out, const rb_plugin *arch, const rb_params *params,
                                 const rb_model_input *input);

/* A backbone with a task head in place of the arch's classifier, for K =
 * num_classes target classes: the arch is built with num-classes 0 (an arch
 * without that parameter is refused), then the task plugin's build_head on
 * its published stages (RB_STAGE_*) and build_loss. task NULL is
 * rb_model_create.
 * Every node up to rb_model_backbone_end belongs to the backbone (freeze it
 * with rb_graph_freeze_through for fixed-feature transfer). */
RB_API rb_status rb_model_create_with_head(rb_model **out, const rb_plugin *arch, const rb_params *params,
                                           const rb_plugin *task, const rb_params *task_params,
                                           const rb_model_input *input, int64_t num_classes);

/* Initializes a new model's parameters: rb_graph_init_params(graph, seed)
 * (torchvision's defaults per layer type), then its task's init_head, if
 * it has one, for the head's own (robusta/plugin.h). What train and
 * transfer do before training a model from its initial values. */
RB_API rb_status rb_model_init_params(rb_model *model, uint64_t seed);

/* The head of a model with a task head, alone, reading as its input what
 * the head reads of the backbone (rb_model_head_inputs), without
 * normalization. One node: the pooled features (RB_STAGE_FEATURES,
 * C × 1 × 1) as a 1 × C × 1 "image", a stage as its C × H × W. Several
 * (a detection head on two stages): one 1 × 1 × N row per example, N the
 * sum of their C·H·W, holding each node's values in turn in
 * rb_model_head_inputs' order, which a host op per node takes apart again.
 * Each node is published under the stage name(s) the backbone gives it
 * (rb_model_stage_name), so the task builds the same head on it. Its
 * parameters have the same names and shapes as the head's in `full` but
 * their own values (copy them with rb_model_copy_params both ways). Used to
 * train a head on features computed once; it cannot be saved on its own.
 * A head that reads a node published under no stage name is refused
 * (RB_ERR_UNSUPPORTED, one line). */
RB_API rb_status rb_model_head_create(rb_model **out, const rb_model *full);

/* Which tensors of a model with a task head rb_model_copy_params copies. */
typedef enum rb_model_part {
    RB_MODEL_ALL = 0,      /* every parameter and buffer */
    RB_MODEL_BACKBONE = 1, /* those of the nodes up to rb_model_backbone_end */
    RB_MODEL_HEAD = 2      /* the others: the task's head */
} rb_model_part;

/* Copies into `dst` the values of its parameters and buffers of `part` from
 * the same-named tensors of `src` (a transfer model's backbone from its
 * source model, a head to or from rb_model_head_create's model). A tensor
 * that `src` lacks or holds in another shape is an error naming it.
 * *copied (may be NULL) counts the tensors copied. */
RB_API rb_status rb_model_copy_params(rb_model *dst, const rb_model *src, rb_model_part part, size_t *copied);
RB_API void rb_model_destroy(rb_model *model);

RB_API rb_graph *rb_model_graph(const rb_model *model);
/* The first raw output: the logits of a classifier (the arch's own or a
 * classification head's), a dense head's first output otherwise. */
RB_API rb_node *rb_model_logits(const rb_model *model);
/* Every raw output, in the order the task's decode reads them (the
 * arch's own classifier: its logits alone); *count set to how many. */
RB_API rb_node *const *rb_model_outputs(const rb_model *model, size_t *count);
/* Most nodes rb_model_engine_outputs writes: the outputs and the loss. */
#define RB_MODEL_ENGINE_OUTPUTS (RB_TASK_MAX_OUTPUTS + 1)
/* What an engine for this model computes (rb_engine_options.outputs):
 * its raw outputs and its loss, into `nodes` (room for
 * RB_MODEL_ENGINE_OUTPUTS); returns how many. Backbone layers no output
 * needs (stages above the one a head reads, the source classifier a head
 * replaced) are then never run. */
RB_API size_t rb_model_engine_outputs(const rb_model *model, rb_node **nodes);
RB_API rb_node *rb_model_loss(const rb_model *model);
RB_API const rb_model_input *rb_model_get_input(const rb_model *model);
RB_API int64_t rb_model_num_classes(const rb_model *model);
RB_API const rb_plugin *rb_model_arch(const rb_model *model);
/* The arch parameters the model was built with. */
RB_API const rb_params *rb_model_params(const rb_model *model);
/* The task plugin and its parameters; NULL for a model with the arch's own
 * classifier. */
RB_API const rb_plugin *rb_model_task(const rb_model *model);
RB_API const rb_params *rb_model_task_params(const rb_model *model);
/* With a task head: the backbone node the head reads (the pooled features,
 * or the stage its task was told to read), and the backbone's last node;
 * NULL without a task head. rb_model_features is NULL too when the head
 * reads several backbone nodes (see rb_model_head_inputs). */
RB_API rb_node *rb_model_features(const rb_model *model);
RB_API rb_node *rb_model_backbone_end(const rb_model *model);
/* With a task head: how many distinct backbone nodes (index up to
 * rb_model_backbone_end) nodes of the head read, in graph order; the first
 * `capacity` of them are written to `nodes` (NULL with capacity 0 only
 * counts). 0 without a task head. */
RB_API size_t rb_model_head_inputs(const rb_model *model, rb_node **nodes, size_t capacity);
/* The stage name ("features", "stage1" .. "stage4": the RB_STAGE_* names
 * of robusta/plugin.h) under which the model's backbone publishes `node`;
 * NULL when it publishes it under none. For messages and for
 * rb_model_head_create. */
RB_API const char *rb_model_stage_name(const rb_model *model, const rb_node *node);

/* A new checkpoint holding the model's metadata and parameters; the caller
 * may add training state (under RB_MODEL_STATE_PREFIX) before saving. */
RB_API rb_status rb_model_to_checkpoint(const rb_model *model, rb_checkpoint **out);
/* rb_model_to_checkpoint + rb_checkpoint_save, atomically. */
RB_API rb_status rb_model_save(const rb_model *model, const char *path);

/* Rebuilds a model from a checkpoint's metadata and copies its parameters.
 * height/width 0 keep the saved input size; others build the graph for that
 * size (convolutional backbones only). `what` names the checkpoint in
 * messages. */
RB_API rb_status rb_model_from_checkpoint(rb_model **out, const rb_registry *registry,
                                          const rb_checkpoint *ckpt, const char *what, int64_t height,
                                          int64_t width);
/* rb_checkpoint_load (verifying every checksum) + rb_model_from_checkpoint. */
RB_API rb_status rb_model_load(rb_model **out, const rb_registry *registry, const char *path, int64_t height,
                               int64_t width);

/* Copies a checkpoint's parameters into the model's graph (same architecture;
 * every parameter must be present with its shape). */
RB_API rb_status rb_model_load_params(rb_model *model, const rb_checkpoint *ckpt, const char *what);

/* ------------------------------------------------------------ will it fit? */

/* One engine a command will create for a model. */
typedef struct rb_memory_engine {
    int64_t batch;
    bool data_grads_only; /* as rb_engine_options.data_grads_only */
} rb_memory_engine;

/* Bytes of memory this machine lets the process have: physical memory,
 * or the cgroup's memory.max where that is lower. */
RB_API uint64_t rb_machine_memory_bytes(void);

/* Refuses, before anything is allocated or planned, what cannot fit: the
 * arenas of `engines` (rb_engine_estimate_bytes on the model's graph at
 * its input size) plus `data_bytes` (datasets, batch buffers) against
 * rb_machine_memory_bytes(). RB_ERR_OUT_OF_MEMORY with one line (the
 * batch it names is the first engine's): "needs
 * about 362,115 MiB (arena 361,000 MiB at batch 128, 3x4096x4096 images;
 * data 1,115 MiB) but this machine has 23,980 MiB: ADVICE". Takes
 * microseconds whatever the sizes. */
RB_API rb_status rb_model_check_memory(const rb_model *model, const rb_engine_options *options,
                                       const rb_memory_engine *engines, size_t count, uint64_t data_bytes,
                                       const char *advice);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_MODEL_H */
