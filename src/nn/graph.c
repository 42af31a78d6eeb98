/* The layer graph builder: nodes, shapes, parameters (robusta/graph.h).
 * Every builder checks its inputs completely before changing the graph, so
 * a refused node leaves the graph as it was. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/graph.h>
#include <robusta/suggest.h>
#include <robusta/rng.h>

#include "nn/graph_internal.h"
#include "nn/op.h"
#include "sys/internal.h"

const char *rb_op_str(rb_op op)
{
    const rb_op_def *def = rb_op_def_of(op);
    return def != NULL ? def->name : "unknown";
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
        if (rb_op_def_of(g->nodes[i]->op)->free_attr != NULL)
            rb_op_def_of(g->nodes[i]->op)->free_attr(g->nodes[i]);
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
rb_status graph_check_node(const rb_graph *g, rb_op op, const char *name, rb_node *const *in,
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
        if (rb_node_is_loss(in[i]))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s %s: its input '%s' is a loss; nothing may follow a loss", what,
                                name ? name : "node", in[i]->name);
    }
    if (g->input == NULL && op != RB_OP_INPUT)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: add the graph's input first", what);
    return RB_OK;
}

/* Appends a node with the given inputs and shape; parameters are added after. */
rb_status graph_add_node(rb_graph *g, rb_op op, const char *name, rb_node *const *in, size_t n_in,
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
void graph_drop_last_node(rb_graph *g)
{
    rb_node *n = g->nodes[--g->n_nodes];
    while (g->n_params > 0 && g->params[g->n_params - 1].owner == n) {
        g->n_params--;
        free(g->params[g->n_params].value);
        free(g->params[g->n_params].grad);
    }
    free(n);
}

rb_status graph_add_param(rb_graph *g, rb_node *owner, int slot, const char *suffix, int ndim,
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
    p->users = 1;
    owner->param[slot] = (long)g->n_params;
    g->n_params++;
    return RB_OK;
}

rb_param_tensor *rb_node_param(const rb_graph *g, const rb_node *node, int slot)
{
    long i = node->param[slot];
    return i < 0 ? NULL : &g->params[i];
}


/* Output length of a sliding window, or 0 when the window does not fit. */
int64_t graph_window_out(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation)
{
    int64_t span = dilation * (kernel - 1) + 1;
    if (in + 2 * pad < span)
        return 0;
    return (in + 2 * pad - span) / stride + 1;
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

rb_status rb_graph_freeze_statistics_through(rb_graph *g, rb_node *last)
{
    if (last != NULL && !owns(g, last))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "freeze: the node belongs to another graph");
    for (size_t i = 0; i < g->n_nodes; i++)
        g->nodes[i]->frozen_statistics = last != NULL && g->nodes[i]->index <= last->index;
    return RB_OK;
}

/* PyTorch's default for linear layers and biases: uniform in
 * +-1/sqrt(fan_in) of the node's weight. */
static void init_uniform_fan_in(rb_graph *g, rb_node *n, rb_param_tensor *p, rb_rng *rng)
{
    const rb_param_tensor *w = &g->params[n->param[RB_SLOT_WEIGHT]];
    double fan_in = (double)(w->numel / w->shape[0]);
    double bound = 1.0 / sqrt(fan_in);
    for (int64_t k = 0; k < p->numel; k++)
        p->value[k] = (float)(bound * (2.0 * rb_rng_uniform(rng) - 1.0));
}

rb_status rb_graph_init_params(rb_graph *g, uint64_t seed)
{
    for (size_t i = 0; i < g->n_params; i++) {
        rb_param_tensor *p = &g->params[i];
        rb_node *n = p->owner;
        const rb_op_def *def = rb_op_def_of(n->op);
        rb_rng rng;
        rb_rng_init(&rng, seed, RB_RNG_STREAM(RB_RNG_INIT, 0), i);
        if (def->init_param != NULL)
            def->init_param(g, n, p, &rng);
        else
            init_uniform_fan_in(g, n, p, &rng);
    }
    return RB_OK;
}

int64_t rb_node_forward_macs(const rb_node *n)
{
    const rb_op_def *def = rb_op_def_of(n->op);
    return def->macs != NULL ? def->macs(n) : 0;
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

rb_status rb_graph_set_target_size(rb_graph *g, int64_t height, int64_t width)
{
    if (g == NULL || height < 1 || width < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_graph_set_target_size: a graph and a size >= 1 are needed");
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op == RB_OP_TARGET)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "rb_graph_set_target_size: the graph already has target nodes of the old size");
    g->target_h = height;
    g->target_w = width;
    return RB_OK;
}

int64_t rb_graph_target_height(const rb_graph *g)
{
    return g->target_h > 0 ? g->target_h : g->input != NULL ? g->input->h : 0;
}

int64_t rb_graph_target_width(const rb_graph *g)
{
    return g->target_w > 0 ? g->target_w : g->input != NULL ? g->input->w : 0;
}
