/* robusta/engine.h: running a graph fast, on oneDNN.
 *
 * An engine is a graph planned for one batch size: every oneDNN primitive
 * (forward, backward-data, backward-weights, reorders) is created once, and
 * every activation, gradient, workspace and scratchpad lives in one arena
 * allocated once. Steps then allocate nothing. oneDNN chooses the memory
 * formats (blocked layouts for convolutions); the engine keeps them from
 * layer to layer and converts only at the edges: the images in, outputs and
 * gradients out, and parameters (plain fp32 master copies in the graph).
 *
 *     rb_engine *e;
 *     rb_engine_create(&e, graph, 128, NULL);
 *     rb_engine_forward(e, images, 128, labels, true); // training mode
 *     rb_engine_backward(e, true, false);              // weight gradients
 *     rb_sgd_step(sgd, lr);                            // reads them from the graph
 *
 * Attacks run the model in inference mode and ask for the input gradient
 * only: rb_engine_backward(e, false, true) then runs no weight-gradient
 * primitive (rb_engine_primitive_counts shows what ran), and with a frozen
 * backbone (fixed-feature transfer) no gradient flows into the backbone
 * unless the input gradient is asked for.
 *
 * Numerics match the reference (robusta/reference.h) to fp32 accuracy in
 * fp32; bf16 mixed precision (rb_precision) trades that for speed.
 */
#ifndef ROBUSTA_ENGINE_H
#define ROBUSTA_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <robusta/graph.h>
#include <robusta/targets.h>
#include <robusta/tune.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rb_engine rb_engine;

/* The arithmetic of convolutions and of the activations between them.
 *
 * RB_PRECISION_F32: everything in fp32 (the default; matches the reference
 * to fp32 accuracy).
 * RB_PRECISION_BF16: mixed precision, as PyTorch's autocast does it.
 * Convolutions multiply bf16 inputs and weights and accumulate in fp32;
 * activations and their gradients between layers are stored in bf16 (half
 * the memory and memory traffic); batch-norm statistics, scale and shift,
 * the classifier (linear layers), the loss, the input image and its
 * gradient stay fp32. The graph's parameters stay fp32 master copies:
 * weights are rounded to bf16 as they are handed to the convolutions, and
 * weight gradients come back in fp32, so the optimizer and checkpoints do
 * not change. bf16 keeps 8 significant bits (relative rounding error
 * 2^-9): results differ from fp32 at the 1e-2 level, enough for training
 * and attacks, not for bit-exact comparisons. On CPUs without native bf16
 * instructions (avx512_bf16) oneDNN emulates them, slower than fp32; on
 * CPUs without AVX-512 it has no bf16 convolutions at all, and
 * rb_engine_create refuses bf16 (RB_ERR_UNSUPPORTED).
 * RB_PRECISION_AUTO: bf16 for the convolutions where it is measured
 * faster on this CPU, fp32 for the rest (robusta/tune.h); fp32 everywhere
 * unless the engine tunes, and in engines that only compute data
 * gradients (attacks and evaluation keep fp32). */
typedef enum rb_precision {
    RB_PRECISION_F32 = 0,
    RB_PRECISION_BF16 = 1,
    RB_PRECISION_AUTO = 2
} rb_precision;

/* "f32", "bf16" or "auto"; "?" outside the enum. */
RB_API const char *rb_precision_str(rb_precision precision);
/* Parses "f32" / "fp32" / "bf16" / "auto" into *out; RB_ERR_INVALID_ARGUMENT otherwise. */
RB_API rb_status rb_precision_parse(const char *text, rb_precision *out);

/* How convolutions compute.
 *
 * RB_CONV_WINOGRAD (the default): Winograd F(4x4, 3x3) for the
 * convolutions it fits (fp32, 3x3 kernel, stride 1, no dilation, ungrouped,
 * channels oneDNN's kernel accepts), direct everywhere else. It does about
 * a quarter of the multiplications, and on AVX-512 CPUs its forward,
 * backward-data and backward-weights run 1.2-2x faster than direct, which
 * is most of a ResNet's work. Its transforms add rounding: results differ
 * from direct by a few units in the 6th significant digit (about the
 * difference between PyTorch fp32 and float64).
 * RB_CONV_DIRECT: direct convolution everywhere (what PyTorch's CPU
 * convolutions do), for the closest agreement with other frameworks.
 * Under bf16 precision every convolution is direct: oneDNN has no bf16
 * Winograd. rb_engine_impl names the kernel each convolution got. */
typedef enum rb_conv_algorithm {
    RB_CONV_WINOGRAD = 0,
    RB_CONV_DIRECT = 1
} rb_conv_algorithm;

/* Whether this CPU and oneDNN build can run it, asked of oneDNN once per
 * process (a small convolution of the kind). F32 and DIRECT always; BF16
 * and WINOGRAD where oneDNN has the kernels (2.x: AVX-512 CPUs). Where
 * Winograd is missing, RB_CONV_WINOGRAD runs every convolution direct. */
RB_API bool rb_precision_available(rb_precision precision);
RB_API bool rb_conv_algorithm_available(rb_conv_algorithm algorithm);

/* "winograd" or "direct"; "?" outside the enum. */
RB_API const char *rb_conv_algorithm_str(rb_conv_algorithm algorithm);
/* Parses "winograd" / "direct" into *out; RB_ERR_INVALID_ARGUMENT otherwise. */
RB_API rb_status rb_conv_algorithm_parse(const char *text, rb_conv_algorithm *out);

typedef struct rb_engine_options {
    /* Compute threads; 0: one per core of the process's NUMA node (hwloc). */
    int threads;
    /* Leave threads where the OS puts them instead of binding one per core
     * (for programs that manage affinity themselves). */
    bool no_binding;
    /* Give every node's value and output gradient memory of its own, so
     * that all can be read after a step (rb_engine_read, rb_engine_read_grad;
     * for debugging). Off, gradients share memory when their lifetimes in
     * backward do not overlap, values that backward never reads (a
     * batch-norm output feeding a residual add) share it with them, living
     * only until their consumers have run, and a ReLU overwrites its input
     * when nothing else reads it (that input is then not readable): together
     * they cut a training step's memory by more than half. Published nodes
     * and the logits always stay readable. */
    bool keep_intermediates;
    /* For engines that never train (inference, attacks, evaluation): plan
     * no weight-gradient primitives at all, which saves planning time and
     * memory; rb_engine_backward then refuses weight_grads. */
    bool data_grads_only;
    /* See rb_precision (zero, the default, is fp32). */
    rb_precision precision;
    /* See rb_conv_algorithm (zero, the default, is Winograd where it fits). */
    rb_conv_algorithm conv_algorithm;
    /* Bytes of oneDNN scratchpad a Winograd primitive may need (0: 96 MiB);
     * one that needs more runs direct. Winograd's backward-weights keeps a
     * transformed weight gradient per thread: for 512 channels ~80 MiB at
     * one thread and ~36 MiB more per thread, where forward and
     * backward-data need ~45. The engine's scratchpad is sized for the
     * largest primitive, so this bounds it. */
    size_t winograd_scratchpad_limit;
    /* Time each node's forward and backward (rb_engine_node_seconds): two
     * clock reads per node and pass, for profiles and benchmarks. */
    bool profile;
    /* The nodes the caller reads (model outputs, a stage, a loss); NULL or
     * 0: every node. When given, a step runs only these and the nodes they
     * depend on: a head on stage 2 never computes stages 3 and 4 or the
     * source classifier, and a feature extraction stops at its stage.
     * Losses count in the objective only when listed (or behind a listed
     * node); backward needs one. Reading a node outside them is refused. */
    rb_node *const *outputs;
    size_t n_outputs;
    /* Called during a backward that computes weight gradients, on the
     * calling thread, once per node in backward (reverse) order, right
     * after that node's backward ran or was skipped: from then on no
     * later node of the backward writes the gradients of parameters that
     * node owns (a reused parameter's owner is its first user, whose
     * backward comes last). Data-parallel training starts summing those
     * gradients across ranks here, while backward goes on. NULL: none. */
    void (*node_backward_done)(void *user, const rb_node *node);
    void *node_backward_done_user;
    /* Synchronized batch-norm (--sync-bn): in a job of several ranks
     * (robusta/dist.h), the job's batch, of which this engine's batch is
     * this rank's share. Batch statistics are then those of the whole
     * batch (summed over the ranks in forward), and backward gives each
     * rank's share the input gradient the whole batch's mean loss has,
     * divided by the share's weight (batch / sync_bn_batch, as the data-
     * parallel sums expect). Every rank must run the same passes. 0, or a
     * lone process: each engine's own statistics. f32 batch-norm in the
     * nchw, nChw8c or nChw16c layout only. */
    int64_t sync_bn_batch;
    /* Choosing kernels by measurement (robusta/tune.h; zero, the default,
     * is off: the static rules), the plan to follow and fill (NULL: none)
     * and the plan cache's file (NULL: RB_PLAN_CACHE or the user's cache
     * folder). Only engines that train are tuned. */
    rb_tune_mode tune;
    rb_plan *plan;
    const char *plan_cache;
} rb_engine_options;

/* Plans `graph` for `batch` examples. The graph must not gain nodes while
 * the engine lives; its parameter values may change freely (the optimizer
 * does). Fails naming the node when oneDNN cannot run it.
 *
 * Threads: the process's OpenMP pool, which oneDNN computes on, is sized to
 * the plan of robusta/threads.h and each of its threads bound to its own
 * core (the calling thread is thread 0). The arena is first touched by
 * those threads, in the static chunks OpenMP loops give them, so its pages
 * land on their NUMA node. */
RB_API rb_status rb_engine_create(rb_engine **out, rb_graph *graph, int64_t batch,
                                  const rb_engine_options *options);
RB_API void rb_engine_destroy(rb_engine *engine);

/* An estimate of the arena rb_engine_create would allocate for `graph` at
 * `batch`, from the graph's shapes alone: no oneDNN planning, nothing
 * allocated, microseconds even for huge images. For ResNets the real arena
 * lies within a factor of two of it (0.8 to 1.25 measured), so commands use
 * it to refuse what cannot fit before any work. Saturates at UINT64_MAX. */
RB_API rb_status rb_engine_estimate_bytes(const rb_graph *graph, int64_t batch, const rb_engine_options *options,
                                          uint64_t *bytes);

RB_API int64_t rb_engine_batch(const rb_engine *engine);

/* The machine key of the engine's measurements (rb_tune_machine for its
 * compute threads). */
RB_API const char *rb_engine_machine(const rb_engine *engine);

/* Runs the graph on `count` images (count × C × H × W, row-major f32 in
 * [0, 1]); count must be the planned batch (a larger one is refused).
 * `labels` (batch values in [0, classes)) are needed when the graph has a
 * loss. training: batch-norm uses and updates batch statistics; otherwise
 * running statistics (attacks and evaluation). A short last batch needs an
 * engine planned for its size (planning is cheap next to an epoch). */
RB_API rb_status rb_engine_forward(rb_engine *engine, const float *images, int64_t count,
                                   const int64_t *labels, bool training);

/* The same with any targets (robusta/targets.h): the labels, masks and
 * boxes the graph's losses and host ops read (rb_graph_target). Labels
 * are copied; masks and boxes are read where they lie, so they must stay
 * unchanged until the backward that follows. Each op that reads targets
 * checks them before anything runs. The objective backward starts from is
 * the mean over the batch of the sum of the graph's losses. */
RB_API rb_status rb_engine_forward_targets(rb_engine *engine, const float *images, int64_t count,
                                           const rb_targets *targets, bool training);

/* Holding the weights. Each step normally converts every convolution's
 * fp32 master weights into the primitive's own layout (and precision),
 * since the optimizer changes them between steps. Work that runs many
 * passes over a fixed model (an attack's iterations) holds them instead:
 * while held, the conversion happens once, at the first pass that needs it,
 * and is reused; changes to parameter values made while held are NOT seen
 * until the hold is released (rb_engine_hold_weights(engine, false)).
 * Returns the previous setting, so that a caller can restore it; holding
 * already-held weights keeps their conversions. rb_attacker_run holds them
 * for its duration. (An engine planned for training keeps backward-data's
 * copy of the weights in memory shared between layers, so it converts that
 * copy every pass even when held; data_grads_only engines keep it.) */
RB_API bool rb_engine_hold_weights(rb_engine *engine, bool hold);

/* Backward from the mean loss. weight_grads: writes the gradients of
 * trainable, unfrozen parameters into the graph (overwriting); input_grad:
 * keeps the gradient with respect to the images for rb_engine_input_grad. */
RB_API rb_status rb_engine_backward(rb_engine *engine, bool weight_grads, bool input_grad);

/* Backward from another objective of the logits than the graph's loss:
 * `logit_grad` (batch × classes, row-major) is the gradient of that
 * objective with respect to the logits of the last forward, which backward
 * propagates in place of the loss's own gradient (no division by the
 * batch: row r's gradient reaches example r's image as given). For attacks
 * on other losses (DLR, margins, logit differences), so no weight
 * gradients. The graph's one loss must be a softmax cross-entropy on the
 * logits (a classifier); others are refused. */
RB_API rb_status rb_engine_backward_logits(rb_engine *engine, const float *logit_grad, bool input_grad);

/* A node's last forward value, batch × C × H × W row-major, into `out`.
 * The input of an in-place ReLU holds the ReLU's output, and a value that
 * backward never reads is refused (it only lives through the forward),
 * unless the node is published or the engine keeps intermediates (see
 * rb_engine_options). */
RB_API rb_status rb_engine_read(const rb_engine *engine, const rb_node *node, float *out);
/* The gradient of the mean loss with respect to a node's output from the
 * last backward (batch × C × H × W row-major), for nodes that backward
 * needed (on the path to a trained parameter or to the input). Needs an
 * engine created with keep_intermediates, except for the input node. */
RB_API rb_status rb_engine_read_grad(const rb_engine *engine, const rb_node *node, float *out);
/* The gradient with respect to the images from the last backward. */
RB_API rb_status rb_engine_input_grad(const rb_engine *engine, float *out);
/* Per-example losses (batch values) and their mean, from the last forward. */
RB_API const float *rb_engine_losses(const rb_engine *engine);
RB_API double rb_engine_mean_loss(const rb_engine *engine);

/* Bytes of the arena: fixed at creation; steps never grow it. */
RB_API size_t rb_engine_arena_bytes(const rb_engine *engine);
/* The thread plan in words ("2 threads on cores 0-1 (NUMA node 0)"). */
RB_API const char *rb_engine_threads(const rb_engine *engine);
/* The oneDNN implementation chosen for a node's forward ("brgconv:avx512_core"). */
RB_API const char *rb_engine_impl(const rb_engine *engine, const rb_node *node);

/* With rb_engine_options.profile: the wall-clock seconds node `node`'s
 * forward and backward took (its input reorders included), summed over
 * the passes since creation or rb_engine_reset_profile. Either pointer may
 * be NULL. RB_ERR_INVALID_ARGUMENT for an engine made without profile or a
 * node of another graph. */
RB_API rb_status rb_engine_node_seconds(const rb_engine *engine, const rb_node *node, double *forward,
                                        double *backward);
RB_API void rb_engine_reset_profile(rb_engine *engine);

/* ------------------------------------------------------------ what ran
 *
 * The engine counts every oneDNN primitive it executes, by kind: one
 * increment per execution, no allocation, no clock. Tests use the counts to
 * prove what a step does (an attack step runs no weight-gradient
 * primitive); profiles use them to see where a step's work goes.
 *
 * Linear layers run as convolutions (a kernel the size of the input), so
 * they count as convolution kinds. The softmax cross-entropy is plain C,
 * not a primitive, and is not counted. The kinds that compute weight or
 * batch-norm scale/shift gradients are RB_PRIM_CONV_BACKWARD_WEIGHTS,
 * RB_PRIM_BATCHNORM_BACKWARD and RB_PRIM_REORDER_WEIGHT_GRADIENT; a
 * backward with weight_grads false after an inference-mode forward (what
 * attacks run) runs none of them. */
typedef enum rb_engine_primitive_kind {
    RB_PRIM_CONV_FORWARD = 0,        /* convolutions and linear layers, forward */
    RB_PRIM_CONV_BACKWARD_DATA,      /* ... gradient with respect to their input */
    RB_PRIM_CONV_BACKWARD_WEIGHTS,   /* ... gradients of weights and bias */
    RB_PRIM_BATCHNORM_FORWARD,       /* batch statistics (training) or running ones */
    /* Batch-norm's input gradient alone, with running statistics (inference
     * mode: attacks): the per-channel product dy * gamma / sqrt(running_var
     * + eps), which is the inference forward applied to dy with a zero mean
     * and shift, and runs as that primitive (oneDNN 2.6 has no data-only
     * batch-norm backward with a scale). */
    RB_PRIM_BATCHNORM_BACKWARD_DATA,
    /* oneDNN's full batch-norm backward: input and scale/shift gradients.
     * Also what a data-only backward runs after a training-mode forward
     * (batch statistics), its parameter gradients discarded: the input
     * gradient needs the same per-channel sums, and oneDNN 2.6 has no
     * data-only variant. */
    RB_PRIM_BATCHNORM_BACKWARD,
    RB_PRIM_RELU_FORWARD,            /* eltwise */
    RB_PRIM_RELU_BACKWARD,
    RB_PRIM_POOLING_FORWARD,         /* max, average and global average pooling */
    RB_PRIM_POOLING_BACKWARD,
    RB_PRIM_ADD_FORWARD,             /* residual adds (binary); their backward is a copy, or nothing */
    RB_PRIM_REORDER_ACTIVATION,      /* a value into the layout its consumer wants (forward) */
    /* A gradient into its producer's layout, adding when the producer has
     * several consumers. */
    RB_PRIM_REORDER_GRADIENT,
    RB_PRIM_REORDER_WEIGHTS,         /* plain master weights into a primitive's layout */
    RB_PRIM_REORDER_WEIGHT_GRADIENT, /* a blocked weight gradient back into the graph's plain one */
    RB_PRIM_REORDER_READOUT,         /* rb_engine_read / rb_engine_read_grad (not part of a step) */
    RB_PRIM_RESAMPLING_FORWARD,      /* upsampling */
    RB_PRIM_RESAMPLING_BACKWARD,
    RB_PRIM_CONCAT_FORWARD,          /* its backward is reorders of slices (reorder gradient) */
    RB_PRIM_SIGMOID_FORWARD,         /* eltwise */
    RB_PRIM_SIGMOID_BACKWARD,
    RB_PRIM_MUL_FORWARD,             /* binary */
    RB_PRIM_MUL_BACKWARD,            /* one binary per input that needs a gradient */
    RB_PRIM_KIND_COUNT
} rb_engine_primitive_kind;

/* The kind's name ("convolution backward data"); "?" outside the enum. */
RB_API const char *rb_engine_primitive_kind_str(rb_engine_primitive_kind kind);
/* Copies the executions counted since creation or the last reset into
 * counts[RB_PRIM_KIND_COUNT], indexed by rb_engine_primitive_kind. */
RB_API rb_status rb_engine_primitive_counts(const rb_engine *engine, uint64_t *counts);
/* Sets every count to zero. */
RB_API void rb_engine_reset_primitive_counts(rb_engine *engine);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_ENGINE_H */
