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
#include <robusta/plugin.h>
#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* rb_graph and rb_node are declared in robusta/plugin.h. */

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
    RB_OP_SOFTMAX_CE = 10 /* softmax cross-entropy against integer labels */
} rb_op;

#define RB_BATCHNORM_EPS 1e-5
#define RB_BATCHNORM_MOMENTUM 0.1

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

/* ------------------------------------------------------------ parameters */

typedef struct rb_param_info {
    const char *name;      /* "layer1.0.conv1.weight" */
    int ndim;
    const int64_t *shape;
    int64_t numel;
    float *value;          /* fp32 master copy */
    float *grad;           /* filled by backward; NULL for buffers */
    bool trainable;        /* false for buffers (batch-norm running statistics) */
    bool frozen;           /* no gradient is computed for it; the optimizer skips it */
    rb_node *owner;
} rb_param_info;

RB_API size_t rb_graph_param_count(const rb_graph *g);
RB_API rb_status rb_graph_param(const rb_graph *g, size_t index, rb_param_info *out);
RB_API rb_status rb_graph_find_param(const rb_graph *g, const char *name, rb_param_info *out);
/* Number of trainable values (torchvision's parameter count). */
RB_API int64_t rb_graph_trainable_count(const rb_graph *g);

/* Freezes (or thaws) every parameter of every node up to and including
 * `last` in node order: the backbone, for fixed-feature transfer. NULL
 * freezes nothing and thaws everything. */
RB_API rb_status rb_graph_freeze_through(rb_graph *g, rb_node *last);

/* Initializes parameters as torchvision does: convolutions Kaiming-normal
 * (fan_out, ReLU gain), batch-norm weight 1 and bias 0, linear and biases
 * uniform in ±1/sqrt(fan_in); running statistics reset to 0 and 1. Random
 * numbers come from stream RB_RNG_INIT of `seed`, one substream per
 * parameter, so the result does not depend on the thread count. */
RB_API rb_status rb_graph_init_params(rb_graph *g, uint64_t seed);

/* Multiply-accumulates per example of the forward pass: of its
 * convolutions and linear layers, the only ones counted. */
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
