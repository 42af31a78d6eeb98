/* The layer graph builder: nodes, shapes, parameters (robusta/graph.h).
 * Every builder checks its inputs completely before changing the graph, so
 * a refused node leaves the graph as it was. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/graph.h>
#include <robusta/params.h>
#include <robusta/rng.h>

#include "nn/graph_internal.h"
#include "sys/internal.h"

const char *rb_op_str(rb_op op)
{
    switch (op) {
    case RB_OP_INPUT: return "input";
    case RB_OP_CONV: return "conv";
    case RB_OP_BATCHNORM: return "batchnorm";
    case RB_OP_RELU: return "relu";
    case RB_OP_MAXPOOL: return "maxpool";
    case RB_OP_AVGPOOL: return "avgpool";
    case RB_OP_GLOBAL_AVGPOOL: return "global_avgpool";
    case RB_OP_ADD: return "add";
    case RB_OP_LINEAR: return "linear";
    case RB_OP_SOFTMAX_CE: return "softmax_cross_entropy";
    }
    return "unknown";
}

rb_status rb_graph_create(rb_graph **out)
{
    *out = calloc(1, sizeof **out);
    if (*out == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "graph: out of memory");
    return RB_OK;
}

void rb_graph_destroy(rb_graph *g)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i]->op == RB_OP_INPUT) {
            free(g->nodes[i]->attr.input.mean);
            free(g->nodes[i]->attr.input.std);
        }
        free(g->nodes[i]);
    }
    for (size_t i = 0; i < g->n_params; i++) {
        free(g->params[i].value);
        free(g->params[i].grad);
    }
    free(g->nodes);
    free(g->params);
    free(g->published);
    free(g);
}

/* Grows an array to hold one more item. */
static bool reserve(void **items, size_t *cap, size_t count, size_t size)
{
    void *bigger;
    size_t want;
    if (count < *cap)
        return true;
    want = *cap ? *cap * 2 : 16;
    bigger = realloc(*items, want * size);
    if (bigger == NULL)
        return false;
    *items = bigger;
    *cap = want;
    return true;
}

static bool owns(const rb_graph *g, const rb_node *n)
{
    return n != NULL && n->index < g->n_nodes && g->nodes[n->index] == n;
}

static bool name_taken(const rb_graph *g, const char *name)
{
    for (size_t i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i]->name, name) == 0)
            return true;
    for (size_t i = 0; i < g->n_published; i++)
        if (strcmp(g->published[i].name, name) == 0)
            return true;
    return false;
}

/* Names are dotted paths of letters, digits, '_' and '-' ("layer1.0.conv1"). */
static bool valid_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= RB_NAME_MAX - 16 || name[0] == '.' || name[n - 1] == '.')
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-' || *c == '.'))
            return false;
    return true;
}

/* Checks a node's name and inputs; `what` names the op in messages. */
static rb_status check_node(const rb_graph *g, rb_op op, const char *name, rb_node *const *in,
                            size_t n_in)
{
    const char *what = rb_op_str(op);
    if (name != NULL) {
        if (!valid_name(name))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s '%s': names are dotted paths of letters, digits, '_' and '-'",
                                what, name);
        if (name_taken(g, name))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s '%s': the graph already has a node of that name",
                                what, name);
    }
    for (size_t i = 0; i < n_in; i++) {
        if (in[i] == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s %s: input %zu is NULL", what,
                                name ? name : "node", i + 1);
        if (!owns(g, in[i]))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s %s: input %zu belongs to another graph",
                                what, name ? name : "node", i + 1);
        if (in[i]->op == RB_OP_SOFTMAX_CE)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s %s: its input '%s' is a loss; nothing may follow a loss", what,
                                name ? name : "node", in[i]->name);
    }
    if (g->input == NULL && op != RB_OP_INPUT)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: add the graph's input first", what);
    return RB_OK;
}

/* Appends a node with the given inputs and shape; parameters are added after. */
static rb_status add_node(rb_graph *g, rb_op op, const char *name, rb_node *const *in, size_t n_in,
                          int64_t c, int64_t h, int64_t w, rb_node **out)
{
    rb_node *n;
    if (!reserve((void **)&g->nodes, &g->cap_nodes, g->n_nodes, sizeof *g->nodes))
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "graph: out of memory");
    n = calloc(1, sizeof *n);
    if (n == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "graph: out of memory");
    n->index = g->n_nodes;
    n->op = op;
    if (name != NULL)
        snprintf(n->name, sizeof n->name, "%s", name);
    else {
        /* Generated names cannot clash with user names: users may not pick
         * a taken name, and a generated one is skipped while taken. */
        do
            snprintf(n->name, sizeof n->name, "%s_%zu", rb_op_str(op), ++g->op_counter[op]);
        while (name_taken(g, n->name));
    }
    for (size_t i = 0; i < n_in; i++)
        n->in[i] = in[i];
    n->n_in = n_in;
    n->c = c;
    n->h = h;
    n->w = w;
    for (int i = 0; i < RB_NODE_MAX_PARAMS; i++)
        n->param[i] = -1;
    g->nodes[g->n_nodes++] = n;
    *out = n;
    return RB_OK;
}

/* Removes the last node (and its parameters) after a failure part-way. */
static void drop_last_node(rb_graph *g)
{
    rb_node *n = g->nodes[--g->n_nodes];
    while (g->n_params > 0 && g->params[g->n_params - 1].owner == n) {
        g->n_params--;
        free(g->params[g->n_params].value);
        free(g->params[g->n_params].grad);
    }
    free(n);
}

static rb_status add_param(rb_graph *g, rb_node *owner, int slot, const char *suffix, int ndim,
                           const int64_t *shape, bool trainable)
{
    rb_param_tensor *p;
    if (!reserve((void **)&g->params, &g->cap_params, g->n_params, sizeof *g->params))
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "graph: out of memory");
    p = &g->params[g->n_params];
    memset(p, 0, sizeof *p);
    if (snprintf(p->name, sizeof p->name, "%s.%s", owner->name, suffix) >= (int)sizeof p->name)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the name is too long for its parameters",
                            owner->name);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= shape[i];
    }
    p->value = calloc((size_t)p->numel, sizeof *p->value);
    p->grad = trainable ? calloc((size_t)p->numel, sizeof *p->grad) : NULL;
    if (p->value == NULL || (trainable && p->grad == NULL)) {
        free(p->value);
        free(p->grad);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "graph: no memory for %s (%lld values)",
                            p->name, (long long)p->numel);
    }
    p->trainable = trainable;
    p->owner = owner;
    owner->param[slot] = (long)g->n_params;
    g->n_params++;
    return RB_OK;
}

rb_param_tensor *rb_node_param(const rb_graph *g, const rb_node *node, int slot)
{
    long i = node->param[slot];
    return i < 0 ? NULL : &g->params[i];
}

/* ------------------------------------------------------------------ nodes */

rb_status rb_graph_input(rb_graph *g, int64_t channels, int64_t height, int64_t width,
                         const float *mean, const float *std, rb_node **out)
{
    rb_node *n;
    rb_status s;
    if (g->input != NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "input: the graph already has one ('%s')",
                            g->input->name);
    if (channels < 1 || height < 1 || width < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "input: shape %lldx%lldx%lld has an empty dimension",
                            (long long)channels, (long long)height, (long long)width);
    if ((mean == NULL) != (std == NULL))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "input: give both mean and std, or neither");
    for (int64_t c = 0; std != NULL && c < channels; c++)
        if (!(std[c] > 0) || !isfinite(std[c]) || !isfinite(mean[c]))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "input: channel %lld has mean %g and std %g; std must be positive and both finite",
                                (long long)c, mean[c], std[c]);
    s = add_node(g, RB_OP_INPUT, "input", NULL, 0, channels, height, width, &n);
    if (s != RB_OK)
        return s;
    if (mean != NULL) {
        n->attr.input.mean = malloc((size_t)channels * sizeof(float));
        n->attr.input.std = malloc((size_t)channels * sizeof(float));
        if (n->attr.input.mean == NULL || n->attr.input.std == NULL) {
            free(n->attr.input.mean);
            free(n->attr.input.std);
            drop_last_node(g);
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "input: out of memory");
        }
        memcpy(n->attr.input.mean, mean, (size_t)channels * sizeof(float));
        memcpy(n->attr.input.std, std, (size_t)channels * sizeof(float));
    }
    g->input = n;
    *out = n;
    return RB_OK;
}

/* Output length of a sliding window, or 0 when the window does not fit. */
static int64_t window_out(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation)
{
    int64_t span = dilation * (kernel - 1) + 1;
    if (in + 2 * pad < span)
        return 0;
    return (in + 2 * pad - span) / stride + 1;
}

rb_status rb_graph_conv(rb_graph *g, const char *name, rb_node *in, const rb_conv_desc *desc,
                        rb_node **out)
{
    rb_conv_desc d;
    rb_node *n;
    int64_t oh, ow, wshape[4];
    rb_status s = check_node(g, RB_OP_CONV, name, &in, 1);
    if (s != RB_OK)
        return s;
    if (name == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "conv: a convolution needs a name for its parameters");
    d = *desc;
    for (int i = 0; i < 2; i++) {
        if (d.stride[i] == 0)
            d.stride[i] = 1;
        if (d.dilation[i] == 0)
            d.dilation[i] = 1;
    }
    if (d.groups == 0)
        d.groups = 1;
    if (d.out_channels < 1 || d.kernel[0] < 1 || d.kernel[1] < 1 || d.stride[0] < 1 ||
        d.stride[1] < 1 || d.dilation[0] < 1 || d.dilation[1] < 1 || d.padding[0] < 0 ||
        d.padding[1] < 0 || d.groups < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "conv '%s': out_channels, kernel, stride, dilation and groups must be "
                            "positive and padding non-negative",
                            name);
    if (in->c % d.groups != 0 || d.out_channels % d.groups != 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "conv '%s': %lld groups do not divide its %lld input channels (from '%s') "
                            "and %lld output channels",
                            name, (long long)d.groups, (long long)in->c, in->name,
                            (long long)d.out_channels);
    oh = window_out(in->h, d.kernel[0], d.stride[0], d.padding[0], d.dilation[0]);
    ow = window_out(in->w, d.kernel[1], d.stride[1], d.padding[1], d.dilation[1]);
    if (oh < 1 || ow < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "conv '%s': a %lldx%lld kernel (dilation %lldx%lld, padding %lldx%lld) does "
                            "not fit the %lldx%lld output of '%s'",
                            name, (long long)d.kernel[0], (long long)d.kernel[1],
                            (long long)d.dilation[0], (long long)d.dilation[1],
                            (long long)d.padding[0], (long long)d.padding[1], (long long)in->h,
                            (long long)in->w, in->name);
    s = add_node(g, RB_OP_CONV, name, &in, 1, d.out_channels, oh, ow, &n);
    if (s != RB_OK)
        return s;
    n->attr.conv = d;
    wshape[0] = d.out_channels;
    wshape[1] = in->c / d.groups;
    wshape[2] = d.kernel[0];
    wshape[3] = d.kernel[1];
    s = add_param(g, n, RB_SLOT_WEIGHT, "weight", 4, wshape, true);
    if (s == RB_OK && d.bias)
        s = add_param(g, n, RB_SLOT_BIAS, "bias", 1, wshape, true);
    if (s != RB_OK) {
        drop_last_node(g);
        return s;
    }
    *out = n;
    return RB_OK;
}

rb_status rb_graph_batchnorm(rb_graph *g, const char *name, rb_node *in, rb_node **out)
{
    rb_node *n;
    int64_t shape[1];
    rb_status s = check_node(g, RB_OP_BATCHNORM, name, &in, 1);
    if (s != RB_OK)
        return s;
    if (name == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "batchnorm: a batch-norm needs a name for its parameters");
    s = add_node(g, RB_OP_BATCHNORM, name, &in, 1, in->c, in->h, in->w, &n);
    if (s != RB_OK)
        return s;
    shape[0] = in->c;
    s = add_param(g, n, RB_SLOT_WEIGHT, "weight", 1, shape, true);
    if (s == RB_OK)
        s = add_param(g, n, RB_SLOT_BIAS, "bias", 1, shape, true);
    if (s == RB_OK)
        s = add_param(g, n, RB_SLOT_RUNNING_MEAN, "running_mean", 1, shape, false);
    if (s == RB_OK)
        s = add_param(g, n, RB_SLOT_RUNNING_VAR, "running_var", 1, shape, false);
    if (s != RB_OK) {
        drop_last_node(g);
        return s;
    }
    for (int64_t c = 0; c < in->c; c++) {
        g->params[n->param[RB_SLOT_WEIGHT]].value[c] = 1.0f;
        g->params[n->param[RB_SLOT_RUNNING_VAR]].value[c] = 1.0f;
    }
    *out = n;
    return RB_OK;
}

rb_status rb_graph_relu(rb_graph *g, rb_node *in, rb_node **out)
{
    rb_status s = check_node(g, RB_OP_RELU, NULL, &in, 1);
    if (s != RB_OK)
        return s;
    return add_node(g, RB_OP_RELU, NULL, &in, 1, in->c, in->h, in->w, out);
}

static rb_status add_pool(rb_graph *g, rb_op op, rb_node *in, const rb_pool_desc *desc, rb_node **out)
{
    rb_pool_desc d = *desc;
    rb_node *n;
    int64_t oh, ow;
    rb_status s = check_node(g, op, NULL, &in, 1);
    if (s != RB_OK)
        return s;
    for (int i = 0; i < 2; i++)
        if (d.stride[i] == 0)
            d.stride[i] = d.kernel[i];
    if (d.kernel[0] < 1 || d.kernel[1] < 1 || d.stride[0] < 1 || d.stride[1] < 1 ||
        d.padding[0] < 0 || d.padding[1] < 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s after '%s': kernel and stride must be positive, padding non-negative",
                            rb_op_str(op), in->name);
    /* PyTorch's rule: padding at most half the kernel, so that no window
     * sees only padding. */
    if (2 * d.padding[0] > d.kernel[0] || 2 * d.padding[1] > d.kernel[1])
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s after '%s': padding %lldx%lld is more than half the %lldx%lld kernel",
                            rb_op_str(op), in->name, (long long)d.padding[0], (long long)d.padding[1],
                            (long long)d.kernel[0], (long long)d.kernel[1]);
    oh = window_out(in->h, d.kernel[0], d.stride[0], d.padding[0], 1);
    ow = window_out(in->w, d.kernel[1], d.stride[1], d.padding[1], 1);
    if (oh < 1 || ow < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s after '%s': a %lldx%lld window does not fit its %lldx%lld output",
                            rb_op_str(op), in->name, (long long)d.kernel[0], (long long)d.kernel[1],
                            (long long)in->h, (long long)in->w);
    s = add_node(g, op, NULL, &in, 1, in->c, oh, ow, &n);
    if (s != RB_OK)
        return s;
    n->attr.pool = d;
    *out = n;
    return RB_OK;
}

rb_status rb_graph_maxpool(rb_graph *g, rb_node *in, const rb_pool_desc *desc, rb_node **out)
{
    return add_pool(g, RB_OP_MAXPOOL, in, desc, out);
}

rb_status rb_graph_avgpool(rb_graph *g, rb_node *in, const rb_pool_desc *desc, rb_node **out)
{
    return add_pool(g, RB_OP_AVGPOOL, in, desc, out);
}

rb_status rb_graph_global_avgpool(rb_graph *g, rb_node *in, rb_node **out)
{
    rb_status s = check_node(g, RB_OP_GLOBAL_AVGPOOL, NULL, &in, 1);
    if (s != RB_OK)
        return s;
    return add_node(g, RB_OP_GLOBAL_AVGPOOL, NULL, &in, 1, in->c, 1, 1, out);
}

rb_status rb_graph_add(rb_graph *g, rb_node *a, rb_node *b, rb_node **out)
{
    rb_node *in[2] = {a, b};
    rb_status s = check_node(g, RB_OP_ADD, NULL, in, 2);
    if (s != RB_OK)
        return s;
    if (a->c != b->c || a->h != b->h || a->w != b->w)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "add: '%s' is %lldx%lldx%lld but '%s' is %lldx%lldx%lld; they must match",
                            a->name, (long long)a->c, (long long)a->h, (long long)a->w, b->name,
                            (long long)b->c, (long long)b->h, (long long)b->w);
    return add_node(g, RB_OP_ADD, NULL, in, 2, a->c, a->h, a->w, out);
}

rb_status rb_graph_linear(rb_graph *g, const char *name, rb_node *in, int64_t out_features,
                          bool bias, rb_node **out)
{
    rb_node *n;
    int64_t shape[2];
    rb_status s = check_node(g, RB_OP_LINEAR, name, &in, 1);
    if (s != RB_OK)
        return s;
    if (name == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "linear: a linear layer needs a name for its parameters");
    if (out_features < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "linear '%s': %lld output features; need at least 1",
                            name, (long long)out_features);
    s = add_node(g, RB_OP_LINEAR, name, &in, 1, out_features, 1, 1, &n);
    if (s != RB_OK)
        return s;
    n->attr.linear.out_features = out_features;
    n->attr.linear.bias = bias;
    shape[0] = out_features;
    shape[1] = in->c * in->h * in->w;
    s = add_param(g, n, RB_SLOT_WEIGHT, "weight", 2, shape, true);
    if (s == RB_OK && bias)
        s = add_param(g, n, RB_SLOT_BIAS, "bias", 1, shape, true);
    if (s != RB_OK) {
        drop_last_node(g);
        return s;
    }
    *out = n;
    return RB_OK;
}

rb_status rb_graph_softmax_cross_entropy(rb_graph *g, rb_node *logits, rb_node **out)
{
    rb_status s = check_node(g, RB_OP_SOFTMAX_CE, NULL, &logits, 1);
    if (s != RB_OK)
        return s;
    if (logits->h != 1 || logits->w != 1 || logits->c < 2)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "softmax cross-entropy on '%s': it needs logits of K >= 2 classes "
                            "(K x 1 x 1), but '%s' is %lldx%lldx%lld; add a global pool and a "
                            "linear layer first",
                            logits->name, logits->name, (long long)logits->c, (long long)logits->h,
                            (long long)logits->w);
    return add_node(g, RB_OP_SOFTMAX_CE, NULL, &logits, 1, 1, 1, 1, out);
}

rb_status rb_graph_publish(rb_graph *g, rb_node *node, const char *name)
{
    if (!owns(g, node))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "publish '%s': the node belongs to another graph",
                            name ? name : "(null)");
    if (!valid_name(name))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "publish '%s': names are dotted paths of letters, digits, '_' and '-'",
                            name ? name : "(null)");
    if (name_taken(g, name))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "publish '%s': the name is already taken", name);
    if (!reserve((void **)&g->published, &g->cap_published, g->n_published, sizeof *g->published))
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "graph: out of memory");
    snprintf(g->published[g->n_published].name, RB_NAME_MAX, "%s", name);
    g->published[g->n_published].node = node;
    g->n_published++;
    return RB_OK;
}

rb_status rb_graph_find(const rb_graph *g, const char *name, rb_node **out)
{
    const char **names;
    const char *near = NULL;
    size_t n = 0;

    *out = NULL;
    for (size_t i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i]->name, name) == 0) {
            *out = g->nodes[i];
            return RB_OK;
        }
    for (size_t i = 0; i < g->n_published; i++)
        if (strcmp(g->published[i].name, name) == 0) {
            *out = g->published[i].node;
            return RB_OK;
        }
    names = malloc((g->n_nodes + g->n_published + 1) * sizeof *names);
    if (names != NULL) {
        for (size_t i = 0; i < g->n_nodes; i++)
            names[n++] = g->nodes[i]->name;
        for (size_t i = 0; i < g->n_published; i++)
            names[n++] = g->published[i].name;
        near = rb_suggest(name, names, n);
    }
    if (near != NULL)
        rb_error_set(RB_ERR_NOT_FOUND, "the graph has no node '%s'; did you mean '%s'?", name, near);
    else
        rb_error_set(RB_ERR_NOT_FOUND, "the graph has no node '%s'", name);
    free(names);
    return RB_ERR_NOT_FOUND;
}

/* ------------------------------------------------------------ inspection */

size_t rb_graph_node_count(const rb_graph *g) { return g->n_nodes; }
rb_node *rb_graph_node(const rb_graph *g, size_t i) { return i < g->n_nodes ? g->nodes[i] : NULL; }
rb_op rb_node_op(const rb_node *n) { return n->op; }
const char *rb_node_name(const rb_node *n) { return n->name; }
size_t rb_node_index(const rb_node *n) { return n->index; }
size_t rb_node_input_count(const rb_node *n) { return n->n_in; }
rb_node *rb_node_input(const rb_node *n, size_t i) { return i < n->n_in ? n->in[i] : NULL; }

void rb_node_shape(const rb_node *n, int64_t *c, int64_t *h, int64_t *w)
{
    *c = n->c;
    *h = n->h;
    *w = n->w;
}

/* ------------------------------------------------------------ parameters */

static void fill_info(const rb_param_tensor *p, rb_param_info *out)
{
    out->name = p->name;
    out->ndim = p->ndim;
    out->shape = p->shape;
    out->numel = p->numel;
    out->value = p->value;
    out->grad = p->grad;
    out->trainable = p->trainable;
    out->frozen = p->frozen;
    out->owner = p->owner;
}

size_t rb_graph_param_count(const rb_graph *g) { return g->n_params; }

rb_status rb_graph_param(const rb_graph *g, size_t index, rb_param_info *out)
{
    if (index >= g->n_params)
        return rb_error_set(RB_ERR_NOT_FOUND, "parameter %zu: the graph has %zu", index, g->n_params);
    fill_info(&g->params[index], out);
    return RB_OK;
}

rb_status rb_graph_find_param(const rb_graph *g, const char *name, rb_param_info *out)
{
    const char **names;
    const char *near = NULL;
    for (size_t i = 0; i < g->n_params; i++)
        if (strcmp(g->params[i].name, name) == 0) {
            fill_info(&g->params[i], out);
            return RB_OK;
        }
    names = malloc((g->n_params + 1) * sizeof *names);
    if (names != NULL) {
        for (size_t i = 0; i < g->n_params; i++)
            names[i] = g->params[i].name;
        near = rb_suggest(name, names, g->n_params);
    }
    if (near != NULL)
        rb_error_set(RB_ERR_NOT_FOUND, "the graph has no parameter '%s'; did you mean '%s'?", name, near);
    else
        rb_error_set(RB_ERR_NOT_FOUND, "the graph has no parameter '%s'", name);
    free(names);
    return RB_ERR_NOT_FOUND;
}

int64_t rb_graph_trainable_count(const rb_graph *g)
{
    int64_t total = 0;
    for (size_t i = 0; i < g->n_params; i++)
        if (g->params[i].trainable)
            total += g->params[i].numel;
    return total;
}

rb_status rb_graph_freeze_through(rb_graph *g, rb_node *last)
{
    if (last != NULL && !owns(g, last))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "freeze: the node belongs to another graph");
    for (size_t i = 0; i < g->n_params; i++)
        g->params[i].frozen = last != NULL && g->params[i].owner->index <= last->index;
    return RB_OK;
}

rb_status rb_graph_init_params(rb_graph *g, uint64_t seed)
{
    for (size_t i = 0; i < g->n_params; i++) {
        rb_param_tensor *p = &g->params[i];
        const rb_node *n = p->owner;
        bool is_weight = n->param[RB_SLOT_WEIGHT] == (long)i;
        rb_rng rng;
        rb_rng_init(&rng, seed, RB_RNG_STREAM(RB_RNG_INIT, 0), i);
        if (n->op == RB_OP_BATCHNORM) {
            /* weight and running_var 1; bias and running_mean 0 */
            float v = (is_weight || n->param[RB_SLOT_RUNNING_VAR] == (long)i) ? 1.0f : 0.0f;
            for (int64_t k = 0; k < p->numel; k++)
                p->value[k] = v;
        } else if (n->op == RB_OP_CONV && is_weight) {
            /* kaiming_normal_(mode="fan_out", nonlinearity="relu"):
             * std = sqrt(2 / fan_out), fan_out = out_channels * kh * kw. */
            double fan_out = (double)(p->shape[0] * p->shape[2] * p->shape[3]);
            double sd = sqrt(2.0 / fan_out);
            for (int64_t k = 0; k < p->numel; k++)
                p->value[k] = (float)(sd * rb_rng_normal(&rng));
        } else {
            /* nn.Linear and conv biases: uniform in +-1/sqrt(fan_in). */
            const rb_param_tensor *w = &g->params[n->param[RB_SLOT_WEIGHT]];
            double fan_in = (double)(w->numel / w->shape[0]);
            double bound = 1.0 / sqrt(fan_in);
            for (int64_t k = 0; k < p->numel; k++)
                p->value[k] = (float)(bound * (2.0 * rb_rng_uniform(&rng) - 1.0));
        }
    }
    return RB_OK;
}

int64_t rb_node_forward_macs(const rb_node *n)
{
    if (n->op == RB_OP_CONV)
        return n->c * n->h * n->w * (n->in[0]->c / n->attr.conv.groups) * n->attr.conv.kernel[0] *
               n->attr.conv.kernel[1];
    if (n->op == RB_OP_LINEAR)
        return n->c * n->in[0]->c * n->in[0]->h * n->in[0]->w;
    return 0;
}

int64_t rb_graph_forward_macs(const rb_graph *g)
{
    int64_t macs = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        macs += rb_node_forward_macs(g->nodes[i]);
    return macs;
}

int64_t rb_graph_training_macs(const rb_graph *g)
{
    int64_t macs = 3 * rb_graph_forward_macs(g);
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->n_in > 0 && g->nodes[i]->in[0] == g->input)
            macs -= rb_node_forward_macs(g->nodes[i]);
    return macs;
}
