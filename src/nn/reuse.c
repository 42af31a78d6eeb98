/* Shared parameters (robusta/graph.h, rb_graph_reuse): a layer applied
 * again to another input. The new node copies the op and attributes of the
 * layer and points at its parameters; the op says whether its nodes can be
 * applied again and what shape they give (rb_op_def.reuse_shape). Who adds
 * up the gradients: the reference adds every node's part into one buffer
 * per parameter anyway; the engine zeroes a shared parameter's gradient
 * before backward and its ops add (rb_param_tensor.users). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <robusta/graph.h>

#include "nn/graph_internal.h"
#include "nn/op.h"
#include "sys/internal.h"

rb_node *rb_node_reuses(const rb_node *node)
{
    return node != NULL ? node->reuses : NULL;
}

/* "OWNER.reuseK" for the first K not taken, or NULL (a generated name)
 * when that would be too long for a node name. */
static const char *reuse_name(const rb_graph *g, const rb_node *owner, char *buf, size_t size)
{
    for (int k = 1; k < 1000000; k++) {
        bool taken = false;
        if (snprintf(buf, size, "%s.reuse%d", owner->name, k) >= (int)size || strlen(buf) >= RB_NAME_MAX - 16)
            return NULL;
        for (size_t i = 0; !taken && i < g->n_nodes; i++)
            taken = strcmp(g->nodes[i]->name, buf) == 0;
        for (size_t i = 0; !taken && i < g->n_published; i++)
            taken = strcmp(g->published[i].name, buf) == 0;
        if (!taken)
            return buf;
    }
    return NULL;
}

rb_status rb_graph_reuse(rb_graph *g, rb_node *like, rb_node *in, rb_node **out)
{
    const rb_op_def *def;
    rb_node *owner, *n;
    char name[RB_NAME_MAX];
    int64_t c, h, w;
    rb_status s;
    if (g == NULL || out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_graph_reuse: no graph or no place for the new node");
    if (like == NULL || like->index >= g->n_nodes || g->nodes[like->index] != like)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "rb_graph_reuse: the layer to apply again is %s; give a node of this graph",
                            like == NULL ? "NULL" : "not in this graph");
    owner = like->reuses != NULL ? like->reuses : like;
    def = rb_op_def_of(owner->op);
    if (owner->op == RB_OP_BATCHNORM)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "rb_graph_reuse: '%s' is a batch-norm, whose running statistics cannot be shared between "
                            "inputs; use rb_graph_groupnorm, or a batch-norm of its own per input",
                            owner->name);
    if (def == NULL || def->reuse_shape == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "rb_graph_reuse: '%s' is a %s; only conv, linear and groupnorm layers can be applied "
                            "again (for an op without parameters, add another node of it)",
                            owner->name, rb_op_str(owner->op));
    s = graph_check_node(g, owner->op, NULL, &in, 1);
    if (s != RB_OK)
        return s;
    s = def->reuse_shape(owner, in, &c, &h, &w);
    if (s != RB_OK)
        return s;
    s = graph_add_node(g, owner->op, reuse_name(g, owner, name, sizeof name), &in, 1, c, h, w, &n);
    if (s != RB_OK)
        return s;
    n->attr = owner->attr;
    n->reuses = owner;
    for (int k = 0; k < RB_NODE_MAX_PARAMS; k++) {
        n->param[k] = owner->param[k];
        if (n->param[k] >= 0)
            g->params[n->param[k]].users++;
    }
    *out = n;
    return RB_OK;
}
