/* Target nodes: the batch's labels, masks or boxes (robusta/targets.h),
 * given at run time. The engine keeps no copy: losses and host ops read
 * the batch's targets where they lie. This op checks that the batch has
 * what the graph reads; each reader checks the values it relies on. */
#include "config.h"

#include <stdio.h>

#include "nn/op.h"

static const char *kind_name(rb_target_kind kind)
{
    switch (kind) {
    case RB_TARGET_LABELS: return "labels";
    case RB_TARGET_MASKS: return "masks";
    case RB_TARGET_BOXES: return "boxes";
    }
    return "?";
}

rb_status rb_graph_target(rb_graph *g, rb_target_kind kind, rb_node **out)
{
    char name[32];
    rb_node *n;
    rb_status s;
    if (kind != RB_TARGET_LABELS && kind != RB_TARGET_MASKS && kind != RB_TARGET_BOXES)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "target: unknown kind %d; use labels, masks or boxes", (int)kind);
    snprintf(name, sizeof name, "targets.%s", kind_name(kind));
    for (size_t i = 0; i < g->n_nodes; i++) /* one node per kind serves every reader */
        if (g->nodes[i]->op == RB_OP_TARGET && g->nodes[i]->attr.target == kind) {
            *out = g->nodes[i];
            return RB_OK;
        }
    s = graph_check_node(g, RB_OP_TARGET, name, NULL, 0);
    if (s != RB_OK)
        return s;
    s = graph_add_node(g, RB_OP_TARGET, name, NULL, 0, 1, kind == RB_TARGET_MASKS ? rb_graph_target_height(g) : 1,
                       kind == RB_TARGET_MASKS ? rb_graph_target_width(g) : 1, &n);
    if (s != RB_OK)
        return s;
    n->attr.target = kind;
    *out = n;
    return RB_OK;
}

/* ------------------------------------------------------------ engine */

static rb_status plan(rb_engine *e, enode *en)
{
    (void)e;
    snprintf(en->impl, sizeof en->impl, "robusta:targets (no copy)");
    return RB_OK;
}

static rb_status check_targets(rb_engine *e, enode *en, const rb_targets *t)
{
    const rb_node *n = en->node;
    (void)e;
    switch (n->attr.target) {
    case RB_TARGET_LABELS:
        if (t->labels == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: the graph reads labels ('%s') but none were given",
                                n->name);
        return RB_OK;
    case RB_TARGET_MASKS:
        if (t->masks == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "engine: the graph reads masks ('%s') but the batch has none; a segmentation task "
                                "needs a dataset with masks",
                                n->name);
        return RB_OK;
    case RB_TARGET_BOXES:
        if (t->box_offsets == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "engine: the graph reads boxes ('%s') but the batch has none; a detection task "
                                "needs a dataset with boxes",
                                n->name);
        return RB_OK;
    }
    return RB_OK;
}

static rb_status forward(rb_engine *e, enode *en, bool training)
{
    (void)e;
    (void)en;
    (void)training;
    return RB_OK;
}

/* ------------------------------------------------------------ reference */

/* Labels and masks as numbers, so that they can be read like any value. */
static rb_status ref_forward(rb_reference *r, const rb_node *n, bool training)
{
    double *y = ref_value(r, n);
    (void)training;
    if (n->attr.target == RB_TARGET_LABELS && r->targets.labels != NULL)
        for (int64_t b = 0; b < r->batch; b++)
            y[b] = (double)r->targets.labels[b];
    if (n->attr.target == RB_TARGET_MASKS && r->targets.masks != NULL) {
        for (int64_t i = 0; i < r->batch * n->h * n->w; i++)
            y[i] = (double)r->targets.masks[i];
    }
    return RB_OK;
}

const rb_op_def rb_op_target = {
    .op = RB_OP_TARGET,
    .name = "target",
    .plan = plan,
    .check_targets = check_targets,
    .forward = forward,
    .ref_forward = ref_forward,
};
