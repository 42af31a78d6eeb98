/* The layer graph's representation, shared by the builder (graph.c), the
 * double-precision reference (reference.c) and the engines. */
#ifndef RB_NN_GRAPH_INTERNAL_H
#define RB_NN_GRAPH_INTERNAL_H

#include <robusta/graph.h>

#define RB_NODE_MAX_INPUTS 2
#define RB_NODE_MAX_PARAMS 4
#define RB_NAME_MAX 128

/* Which parameter slot holds what, per op. */
enum {
    RB_SLOT_WEIGHT = 0,       /* conv, linear, batchnorm */
    RB_SLOT_BIAS = 1,         /* conv, linear (optional), batchnorm */
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
    rb_node *owner;
} rb_param_tensor;

struct rb_node {
    size_t index;
    rb_op op;
    char name[RB_NAME_MAX];
    rb_node *in[RB_NODE_MAX_INPUTS];
    size_t n_in;
    int64_t c, h, w; /* per-example output shape */
    /* Parameter indices into graph->params, -1 where absent. */
    long param[RB_NODE_MAX_PARAMS];
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
    size_t op_counter[16]; /* for generated names */
};

/* The parameter in `slot` of `node`, or NULL. */
rb_param_tensor *rb_node_param(const rb_graph *g, const rb_node *node, int slot);

#endif /* RB_NN_GRAPH_INTERNAL_H */
