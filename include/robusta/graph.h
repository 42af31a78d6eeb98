/* robusta/graph.h: the static layer graph that models are built as.
 *
 * Architecture and task plugins describe a network by adding nodes to a
 * graph; engines then plan it for a batch size and run it forward and
 * backward. The graph knows shapes per example (channels × height × width),
 * never the batch size, so one graph serves every batch size.
 *
 *     rb_graph *g;
 *     rb_node *x, *y, *loss;
 *     static const float mean[3] = {0.485f, 0.456f, 0.406f};
 *     static const float std[3] = {0.229f, 0.224f, 0.225f};
 *     rb_graph_create(&g);
 *     rb_graph_input(g, 3, 32, 32, mean, std, &x);            // normalizes
 *     rb_graph_conv(g, "conv1", x,
 *                   &(rb_conv_desc){.out_channels = 16, .kernel = {3, 3},
 *                                   .padding = {1, 1}}, &y);  // conv1.weight
 *     rb_graph_batchnorm(g, "bn1", y, &y);                    // bn1.weight ...
 *     rb_graph_relu(g, y, &y);
 *     rb_graph_global_avgpool(g, y, &y);
 *     rb_graph_linear(g, "fc", y, 10, true, &y);              // fc.weight, fc.bias
 *     rb_graph_softmax_cross_entropy(g, y, &loss);
 *
 * Every node has a name: the prefix of its parameters' names for nodes with
 * parameters ("layer1.0.conv1" gives "layer1.0.conv1.weight", as torchvision
 * names them, so released weights import), a generated one otherwise
 * ("relu_3"). Nodes can also be published under extra names
 * (rb_graph_publish) so that task heads find a backbone's stages.
 *
 * Shapes are checked as nodes are added: a node whose input does not fit
 * fails with a message naming both nodes, and the graph is left unchanged.
 * Nodes only reference nodes that already exist, so a graph cannot contain
 * a cycle.
 *
 * Semantics follow PyTorch: convolution is cross-correlation with symmetric
 * zero padding; batch-norm uses eps 1e-5 and momentum 0.1, normalizes with
 * the biased batch variance in training and keeps the unbiased one in its
 * running variance; average pooling counts the padding (count_include_pad);
 * linear flattens C × H × W in that order (torch.flatten).
 */
#ifndef ROBUSTA_GRAPH_H
#define ROBUSTA_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <robusta/status.h>
#include <robusta/targets.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The static layer graph and its nodes: opaque handles, made and read only
 * through the functions below. Arch and task plugins build them. */
typedef struct rb_graph rb_graph;
typedef struct rb_node rb_node;

typedef enum rb_op {
    RB_OP_INPUT = 1,
    RB_OP_CONV = 2,
    RB_OP_BATCHNORM = 3,
    RB_OP_RELU = 4,
    RB_OP_MAXPOOL = 5,
    RB_OP_AVGPOOL = 6,
    RB_OP_GLOBAL_AVGPOOL = 7,
    RB_OP_ADD = 8,
    RB_OP_LINEAR = 9,
    RB_OP_SOFTMAX_CE = 10, /* softmax cross-entropy against integer labels */
    RB_OP_UPSAMPLE = 11,   /* bilinear or nearest, by a factor or to a size */
    RB_OP_CONCAT = 12,     /* along channels */
    RB_OP_SIGMOID = 13,
    RB_OP_MUL = 14,        /* element-wise product */
    RB_OP_PIXEL_CE = 15,   /* per-pixel softmax cross-entropy against a mask, with an ignore label */
    RB_OP_FOCAL = 16,      /* sigmoid focal loss */
    RB_OP_HOST = 17,       /* C callbacks on plain arrays (rb_host_op) */
    RB_OP_TARGET = 18,     /* the batch's targets (labels, masks, boxes) */
    RB_OP_GROUPNORM = 19   /* group normalization (torch.nn.GroupNorm) */
} rb_op;

/* One more than the largest rb_op. */
#define RB_OP_COUNT 20

#define RB_BATCHNORM_EPS 1e-5
#define RB_BATCHNORM_MOMENTUM 0.1
#define RB_GROUPNORM_EPS 1e-5

/* Convolution settings. Zero means the default for stride (1), dilation
 * (1) and groups (1); padding is per side. */
typedef struct rb_conv_desc {
    int64_t out_channels;
    int64_t kernel[2];   /* height, width */
    int64_t stride[2];
    int64_t padding[2];
    int64_t dilation[2];
    int64_t groups;
    bool bias;
} rb_conv_desc;

/* Pooling window; zero stride means the kernel size, as in PyTorch. */
typedef struct rb_pool_desc {
    int64_t kernel[2];
    int64_t stride[2];
    int64_t padding[2];
} rb_pool_desc;

RB_API rb_status rb_graph_create(rb_graph **out);
RB_API void rb_graph_destroy(rb_graph *graph);

/* ------------------------------------------------------------------ nodes */

/* The image input, channels × height × width in [0, 1], followed by the
 * model's normalization (x - mean[c]) / std[c]. mean and std may be NULL
 * (no normalization); they are copied. One input per graph. */
RB_API rb_status rb_graph_input(rb_graph *g, int64_t channels, int64_t height, int64_t width,
                                const float *mean, const float *std, rb_node **out);

/* Parameters: NAME.weight (out, in / groups, kh, kw) and NAME.bias (out). */
RB_API rb_status rb_graph_conv(rb_graph *g, const char *name, rb_node *in,
                               const rb_conv_desc *desc, rb_node **out);

/* Parameters: NAME.weight, NAME.bias (channels); buffers NAME.running_mean,
 * NAME.running_var (initially 0 and 1). */
RB_API rb_status rb_graph_batchnorm(rb_graph *g, const char *name, rb_node *in, rb_node **out);

RB_API rb_status rb_graph_relu(rb_graph *g, rb_node *in, rb_node **out);
RB_API rb_status rb_graph_maxpool(rb_graph *g, rb_node *in, const rb_pool_desc *desc,
                                  rb_node **out);
RB_API rb_status rb_graph_avgpool(rb_graph *g, rb_node *in, const rb_pool_desc *desc,
                                  rb_node **out);
/* Mean over height and width: C × H × W to C × 1 × 1. */
RB_API rb_status rb_graph_global_avgpool(rb_graph *g, rb_node *in, rb_node **out);
/* Element-wise sum of two nodes of the same shape (residual connections). */
RB_API rb_status rb_graph_add(rb_graph *g, rb_node *a, rb_node *b, rb_node **out);
/* Parameters: NAME.weight (out_features, C·H·W), NAME.bias (out_features).
 * The output is out_features × 1 × 1. */
RB_API rb_status rb_graph_linear(rb_graph *g, const char *name, rb_node *in, int64_t out_features,
                                 bool bias, rb_node **out);
/* Softmax cross-entropy of logits (K × 1 × 1) against the integer labels
 * given at run time. The node's value is the per-example loss (1 × 1 × 1
 * per example); engines also report the mean, whose gradient backward
 * starts from. */
RB_API rb_status rb_graph_softmax_cross_entropy(rb_graph *g, rb_node *logits, rb_node **out);

/* ------------------------------------------------------------ dense heads
 *
 * Ops that segmentation and detection heads are built from. */

typedef enum rb_upsample_mode {
    /* F.interpolate(mode='bilinear', align_corners=False): the output
     * pixel's centre mapped back, src = (dst + 0.5) * in / out - 0.5,
     * clamped to the image, and the four neighbours weighted linearly. */
    RB_UPSAMPLE_BILINEAR = 0,
    /* F.interpolate(mode='nearest') by an integer ratio: each input pixel
     * repeated factor x factor times. */
    RB_UPSAMPLE_NEAREST = 1
} rb_upsample_mode;

typedef struct rb_upsample_desc {
    rb_upsample_mode mode;
    /* > 0: the output is factor times the input's height and width; 0:
     * the output is height x width (at least the input's size; for
     * nearest, a whole multiple of it). */
    int64_t factor;
    int64_t height, width;
} rb_upsample_desc;

/* Upsampling: C x H x W to C x H' x W' (see rb_upsample_desc). Shrinking
 * is refused: pool instead. */
RB_API rb_status rb_graph_upsample(rb_graph *g, rb_node *in, const rb_upsample_desc *desc, rb_node **out);
/* Concatenation along channels (torch.cat(dim=1)) of 1 to RB_CONCAT_MAX
 * nodes of one height and width. */
#define RB_CONCAT_MAX 8
RB_API rb_status rb_graph_concat(rb_graph *g, rb_node *const *inputs, size_t count, rb_node **out);
/* 1 / (1 + exp(-x)), element-wise. */
RB_API rb_status rb_graph_sigmoid(rb_graph *g, rb_node *in, rb_node **out);
/* Element-wise product of two nodes of the same shape (gates, attention). */
RB_API rb_status rb_graph_mul(rb_graph *g, rb_node *a, rb_node *b, rb_node **out);

/* Group normalization, as torch.nn.GroupNorm(groups, C) (eps
 * RB_GROUPNORM_EPS): per example, the C channels are split into `groups`
 * groups of C / groups consecutive channels, each normalized by the mean
 * and the biased variance of its (C / groups) x H x W values, then scaled
 * and shifted per channel. The same in training and inference (no running
 * statistics), so a head normalized this way can be applied to several
 * inputs (rb_graph_reuse). groups must divide C; groups = 1 normalizes
 * over C x H x W, groups = C each channel on its own. Parameters:
 * NAME.weight (C, initially 1) and NAME.bias (C, initially 0). */
RB_API rb_status rb_graph_groupnorm(rb_graph *g, const char *name, rb_node *in, int64_t groups, rb_node **out);

/* ------------------------------------------------------------ shared parameters
 *
 * A layer applied to more than one input with the same parameters, as
 * detection heads apply one tower to every pyramid level (torchvision's
 * FCOSHead, RetinaNetHead):
 *
 *     rb_graph_conv(g, "head.tower.0", p3, &desc, &t3);   // head.tower.0.weight
 *     rb_graph_reuse(g, t3, p4, &t4);                     // the same weight, on p4
 *
 * The new node has the op and attributes of `like` and applies its
 * parameters: no new entries in the parameter list, so a checkpoint holds
 * them once and an optimizer step moves them once, by the sum of the
 * gradients of every node applying them (as PyTorch accumulates a module
 * called twice). Each application is a node of its own: it has its own
 * output shape, its own multiply-accumulates (rb_node_forward_macs counts
 * every application) and its own place in the graph.
 *
 * Freezing: a parameter is frozen when the node that owns it (the first
 * one, `like` itself, rb_param_info.owner) is frozen by
 * rb_graph_freeze_through; applications after the frozen part then use the
 * frozen values and compute no gradient for them. */

/* Node `like` applied again to `in`: a new node (named "LIKE.reuseK",
 * K = 1, 2 ...) with like's op and attributes and like's parameters.
 * `like` may itself be a reuse; the parameters stay those of the first.
 * Allowed for convolutions (`in` must have like's input channels; height
 * and width may differ, as long as the kernel fits), linear layers (`in`
 * must have like's input's channels, height and width, since the weight
 * spans all three) and group normalization (like's channels). Batch-norm
 * is refused: its running statistics and batch statistics belong to one
 * input, and cannot be shared between inputs of different distributions;
 * use group normalization, or a batch-norm per input. Nodes without
 * parameters are refused too: add another node of the op instead. */
RB_API rb_status rb_graph_reuse(rb_graph *g, rb_node *like, rb_node *in, rb_node **out);

/* What a target node carries (robusta/targets.h). */
typedef enum rb_target_kind {
    RB_TARGET_LABELS = 1, /* one class per image; the node is 1 x 1 x 1 */
    RB_TARGET_MASKS = 2,  /* one class per pixel; the node is 1 x H x W, the input's size */
    RB_TARGET_BOXES = 3   /* box lists; the node is 1 x 1 x 1 and only host ops read it */
} rb_target_kind;

/* A node standing for the batch's targets of one kind, given at run time
 * (rb_engine_forward_targets). Losses and host ops read them where they
 * lie; they have no value to read and no gradient. */
RB_API rb_status rb_graph_target(rb_graph *g, rb_target_kind kind, rb_node **out);
/* The size of the images the batch's masks and boxes are in: the input's,
 * unless set (a head on cached features, whose masks keep the image's
 * pixels). Set it before any target node is made. */
RB_API rb_status rb_graph_set_target_size(rb_graph *g, int64_t height, int64_t width);
RB_API int64_t rb_graph_target_height(const rb_graph *g);
RB_API int64_t rb_graph_target_width(const rb_graph *g);

/* Per-pixel softmax cross-entropy of logits (K x H x W, K >= 2) against a
 * masks target node of the same H x W, as F.cross_entropy(logits, mask,
 * ignore_index=ignore_label): the mean over the batch's pixels whose label
 * is not ignore_label (RB_IGNORE_LABEL, 255, is Pascal VOC's). Each
 * example's value is its share of that mean times the batch size, so that
 * the engine's objective (the mean over examples) is exactly the mean over
 * pixels. A batch where every pixel is ignored has loss 0 and gradient 0
 * (PyTorch gives NaN). Labels outside [0, K) other than ignore_label are
 * refused when the batch is run. */
RB_API rb_status rb_graph_pixel_cross_entropy(rb_graph *g, rb_node *logits, rb_node *masks,
                                              int64_t ignore_label, rb_node **out);

/* Sigmoid focal loss (Lin et al., RetinaNet; torchvision.ops.
 * sigmoid_focal_loss with reduction 'sum'), divided by a normalizer:
 *   p = sigmoid(x), ce = BCE-with-logits(x, t),
 *   p_t = p t + (1 - p)(1 - t), alpha_t = alpha t + (1 - alpha)(1 - t),
 *   loss = sum of alpha_t ce (1 - p_t)^gamma / normalizer. */
typedef struct rb_focal_desc {
    double alpha;      /* in [0, 1]; negative: no alpha weighting */
    double gamma;      /* >= 0 */
    /* > 0: a fixed normalizer; 0: the batch's number of positive targets
     * (targets > 0.5, at least 1), as RetinaNet divides by its foreground
     * anchors. */
    double normalizer;
} rb_focal_desc;

/* torchvision's defaults: alpha 0.25, gamma 2, normalized by the positives. */
#define RB_FOCAL_DEFAULTS ((rb_focal_desc){.alpha = 0.25, .gamma = 2.0, .normalizer = 0.0})

/* The focal loss of `logits` against `targets` (a node of the same shape
 * holding values in [0, 1], often a host op's assignment), which gets no
 * gradient. Each example's value is its share of the batch's loss times the
 * batch size (see rb_graph_pixel_cross_entropy). */
RB_API rb_status rb_graph_sigmoid_focal_loss(rb_graph *g, rb_node *logits, rb_node *targets,
                                             const rb_focal_desc *desc, rb_node **out);

/* ------------------------------------------------------------ host ops
 *
 * A host op is a node whose forward and backward are C callbacks on plain
 * float arrays: for what is easier to write in C than as a graph, such as
 * a detection loss that assigns boxes to positions and regresses them.
 * Task plugins add them like any node. The engine hands the callbacks
 * their inputs plain (batch x C x H x W, row-major), the batch's targets,
 * and buffers for their output and their inputs' gradients; it refuses,
 * with the op's name, a callback that fails or writes a non-finite value.
 * Check a host op's gradient with rb_host_op_check before use. */

typedef struct rb_host_io {
    int64_t batch;
    size_t n_inputs;
    const float *const *inputs;   /* input k: batch x shapes[k] */
    const int64_t (*shapes)[3];   /* per input: channels, height, width */
    float *output;                /* batch x the op's output shape (1 x 1 x 1 for a loss) */
    const rb_targets *targets;    /* the batch's (never NULL; members may be) */
    bool training;
    /* Backward only: the gradient of the objective with respect to the
     * output (for a loss, 1 / batch per example), and where to write each
     * input's gradient (zeroed before the call; NULL where the input needs
     * none). */
    const float *output_grad;
    float *const *input_grads;
    /* Bytes the op asked for (state_bytes), kept from forward to backward. */
    void *state;
} rb_host_io;

typedef struct rb_host_op {
    const char *name;                 /* for messages: "box regression" */
    /* The output's shape; all 0: the first input's. Ignored for a loss
     * (1 x 1 x 1). */
    int64_t out_channels, out_height, out_width;
    /* The output is a per-example loss, added to the graph's objective
     * (the mean over the batch of the sum of the losses). */
    bool loss;
    size_t state_bytes;               /* per batch, given to both callbacks */
    rb_status (*forward)(const rb_host_io *io, void *user);
    rb_status (*backward)(const rb_host_io *io, void *user);
    void *user;                       /* passed to the callbacks; must outlive the graph */
} rb_host_op;

/* Adds a host op reading 1 to RB_HOST_OP_MAX_INPUTS nodes; `op` is copied
 * (not op->name's string or op->user). */
#define RB_HOST_OP_MAX_INPUTS 8
RB_API rb_status rb_graph_host_op(rb_graph *g, const char *name, const rb_host_op *op, rb_node *const *inputs,
                                  size_t n_inputs, rb_node **out);

/* Checks a host op's backward against central finite differences of its
 * forward, in the way plugin authors test their own: inputs of the given
 * shapes drawn uniformly from [-1, 1] (from `seed`), the objective
 * sum(w * output) for fixed random w (the mean over the batch for a loss),
 * each input element moved by +-h (h = 1e-2 max(1, |x|)) unless there are
 * more than 4096, then 4096 spread evenly. Passes when every element's
 * analytic and numeric derivatives differ by at most tolerance * (1 +
 * |numeric|); *max_error (may be NULL) gets the largest such ratio to
 * (1 + |numeric|). Otherwise RB_ERR_INVALID_ARGUMENT naming the input,
 * element and both values; a failing callback or a non-finite output or
 * gradient is reported too. Float callbacks and h = 1e-2 make about 1e-3
 * a fair tolerance for smooth ops. */
RB_API rb_status rb_host_op_check(const rb_host_op *op, const int64_t (*shapes)[3], size_t n_inputs, int64_t batch,
                                  const rb_targets *targets, uint64_t seed, double tolerance, double *max_error);

/* Publishes `node` under an extra name (RB_STAGE_STRIDE8, "features"). */
RB_API rb_status rb_graph_publish(rb_graph *g, rb_node *node, const char *name);
/* A node by its own or published name; RB_ERR_NOT_FOUND names the closest. */
RB_API rb_status rb_graph_find(const rb_graph *g, const char *name, rb_node **out);

/* ------------------------------------------------------------ inspection */

RB_API size_t rb_graph_node_count(const rb_graph *g);
/* Nodes in the order they were added, which is a topological order. */
RB_API rb_node *rb_graph_node(const rb_graph *g, size_t index);
RB_API rb_op rb_node_op(const rb_node *node);
RB_API const char *rb_node_name(const rb_node *node);
RB_API size_t rb_node_index(const rb_node *node);
/* Per-example output shape. */
RB_API void rb_node_shape(const rb_node *node, int64_t *channels, int64_t *height, int64_t *width);
RB_API size_t rb_node_input_count(const rb_node *node);
RB_API rb_node *rb_node_input(const rb_node *node, size_t index);
/* "conv", "batchnorm", ... */
RB_API const char *rb_op_str(rb_op op);
/* The node whose parameters `node` applies (rb_graph_reuse): the first
 * node of those parameters, their owner; NULL for a node that applies
 * parameters of its own, or has none. */
RB_API rb_node *rb_node_reuses(const rb_node *node);

/* ------------------------------------------------------------ parameters */

typedef struct rb_param_info {
    const char *name;      /* "layer1.0.conv1.weight" */
    int ndim;
    const int64_t *shape;
    int64_t numel;
    float *value;          /* fp32 master copy */
    float *grad;           /* filled by backward (the sum over every node applying it); NULL for buffers */
    bool trainable;        /* false for buffers (batch-norm running statistics) */
    bool frozen;           /* no gradient is computed for it; the optimizer skips it */
    rb_node *owner;        /* the node that added it, the first to apply it (rb_graph_reuse) */
} rb_param_info;

RB_API size_t rb_graph_param_count(const rb_graph *g);
RB_API rb_status rb_graph_param(const rb_graph *g, size_t index, rb_param_info *out);
RB_API rb_status rb_graph_find_param(const rb_graph *g, const char *name, rb_param_info *out);
/* Number of trainable values (torchvision's parameter count). */
RB_API int64_t rb_graph_trainable_count(const rb_graph *g);

/* Freezes (or thaws) every parameter of every node up to and including
 * `last` in node order: the backbone, for fixed-feature transfer. NULL
 * freezes nothing and thaws everything. A parameter applied by several
 * nodes (rb_graph_reuse) goes with its owner, the first of them: frozen
 * when that one is, even where later applications lie after `last`. */
RB_API rb_status rb_graph_freeze_through(rb_graph *g, rb_node *last);

/* Makes every batch-norm node up to and including `last` (in node order)
 * normalize with its running statistics, and leave them unchanged, in
 * training steps as in inference: a frozen backbone in fixed-feature
 * transfer, while batch-norm layers after `last` (a task head's) train
 * with batch statistics. NULL: every batch-norm node follows the step's
 * mode again. Parameters are untouched (see rb_graph_freeze_through). */
RB_API rb_status rb_graph_freeze_statistics_through(rb_graph *g, rb_node *last);

/* Initializes parameters as torchvision does: convolutions Kaiming-normal
 * (fan_out, ReLU gain), batch-norm weight 1 and bias 0, linear and biases
 * uniform in ±1/sqrt(fan_in); running statistics reset to 0 and 1. Random
 * numbers come from stream RB_RNG_INIT of `seed`, one substream per
 * parameter, so the result does not depend on the thread count. */
RB_API rb_status rb_graph_init_params(rb_graph *g, uint64_t seed);

/* Multiply-accumulates per example of the forward pass: of its
 * convolutions and linear layers, the only ones counted, each application
 * of shared parameters (rb_graph_reuse) on its own input. */
RB_API int64_t rb_graph_forward_macs(const rb_graph *g);
/* The same for one node (0 for nodes other than convolutions and linear
 * layers). A training step runs each layer's forward, backward-data and
 * backward-weights, the same count each, except backward-data for layers
 * that read the image: nobody needs the image's gradient there. */
RB_API int64_t rb_node_forward_macs(const rb_node *node);
/* Multiply-accumulates per example of one training step counted that way:
 * 3 x forward, less the backward-data of the layers that read the image. */
RB_API int64_t rb_graph_training_macs(const rb_graph *g);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_GRAPH_H */
