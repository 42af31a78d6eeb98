/* The layer graph's representation, shared by the builder (graph.c), the
 * double-precision reference (reference.c) and the engines. */
#ifndef RB_NN_GRAPH_INTERNAL_H
#define RB_NN_GRAPH_INTERNAL_H

#include <robusta/graph.h>

#define RB_NODE_MAX_INPUTS 8
#define RB_NODE_MAX_PARAMS 4
#define RB_NAME_MAX 128

/* Which parameter slot holds what, per op. */
enum {
    RB_SLOT_WEIGHT = 0,       /* conv, linear, batchnorm, groupnorm */
    RB_SLOT_BIAS = 1,         /* conv, linear (optional), batchnorm, groupnorm */
    RB_SLOT_RUNNING_MEAN = 2, /* batchnorm buffer */
    RB_SLOT_RUNNING_VAR = 3   /* batchnorm buffer */
};

typedef struct rb_param_tensor {
    char name[RB_NAME_MAX];
    int ndim;
    int64_t shape[4];
    int64_t numel;
    float *value;
    float *grad; /* NULL for buffers */
    bool trainable;
    bool frozen;
    rb_node *owner; /* the node that added it: the first of its users */
    /* Nodes applying it: 1, or more after rb_graph_reuse. A gradient of a
     * parameter with several users is zeroed at the start of the engine's
     * backward and each user adds its part (ops read this). */
    int users;
} rb_param_tensor;

struct rb_node {
    size_t index;
    rb_op op;
    char name[RB_NAME_MAX];
    rb_node *in[RB_NODE_MAX_INPUTS];
    size_t n_in;
    int64_t c, h, w; /* per-example output shape */
    /* Batch-norm only: normalize with the running statistics, and leave
     * them as they are, in training steps too (rb_graph_freeze_statistics_through). */
    bool frozen_statistics;
    /* Parameter indices into graph->params, -1 where absent. */
    long param[RB_NODE_MAX_PARAMS];
    /* rb_graph_reuse: the node that owns the parameters this one applies
     * (never itself a reuse); NULL: the node owns its parameters, if any. */
    rb_node *reuses;
    union {
        rb_conv_desc conv; /* defaults filled in */
        rb_pool_desc pool; /* defaults filled in */
        struct {
            int64_t out_features;
            bool bias;
        } linear;
        struct {
            float *mean, *std; /* NULL: no normalization */
        } input;
        rb_upsample_desc upsample;
        rb_focal_desc focal;
        rb_target_kind target;
        int64_t ignore_label;        /* pixel cross-entropy */
        int64_t groups;              /* group normalization */
        struct rb_host_op *host;     /* a copy the node owns */
    } attr;
};

typedef struct rb_published {
    char name[RB_NAME_MAX];
    rb_node *node;
} rb_published;

struct rb_graph {
    rb_node **nodes;
    size_t n_nodes, cap_nodes;
    rb_param_tensor *params;
    size_t n_params, cap_params;
    rb_published *published;
    size_t n_published, cap_published;
    rb_node *input;
    int64_t target_h, target_w; /* the pixels masks and boxes are in; 0: the input's */
    size_t op_counter[RB_OP_COUNT]; /* for generated names */
};

/* The parameter in `slot` of `node`, or NULL. */
rb_param_tensor *rb_node_param(const rb_graph *g, const rb_node *node, int slot);

/* ------------------------------------------------------------ for builders (src/nn/ops/)
 *
 * A builder checks everything first (graph_check_node, then its own
 * shape rules), then adds the node (graph_add_node) and its parameters
 * (graph_add_param); if adding a parameter fails it removes the node
 * (graph_drop_last_node), so a refused node leaves the graph unchanged. */

/* A node's name (NULL: generated) and inputs: in this graph, not NULL, not
 * a loss, and the graph's input added first. */
rb_status graph_check_node(const rb_graph *g, rb_op op, const char *name, rb_node *const *in, size_t n_in);
rb_status graph_add_node(rb_graph *g, rb_op op, const char *name, rb_node *const *in, size_t n_in, int64_t c,
                         int64_t h, int64_t w, rb_node **out);
rb_status graph_add_param(rb_graph *g, rb_node *owner, int slot, const char *suffix, int ndim,
                          const int64_t *shape, bool trainable);
void graph_drop_last_node(rb_graph *g);
/* Output length of a sliding window, or 0 when the window does not fit. */
int64_t graph_window_out(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation);

#endif /* RB_NN_GRAPH_INTERNAL_H */
