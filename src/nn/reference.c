/* The double-precision reference executor (robusta/reference.h): plain loops,
 * one op at a time, written for obviousness rather than speed. This file
 * is the driver; each op computes its own nodes (src/nn/ops/, through
 * rb_op_def_of: ref_forward, ref_backward). */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/reference.h>

#include "nn/op.h"
#include "nn/reference_internal.h"

void rb_reference_destroy(rb_reference *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; r->value && i < r->g->n_nodes; i++) {
        free(r->value[i]);
        free(r->grad[i]);
        free(r->saved[i]);
    }
    for (size_t i = 0; r->param_grad && i < r->g->n_params; i++)
        free(r->param_grad[i]);
    free(r->value);
    free(r->grad);
    free(r->saved);
    free(r->param_grad);
    free(r->input_grad);
    free(r->labels);
    free(r);
}

rb_status rb_reference_create(rb_reference **out, rb_graph *g, int64_t batch)
{
    rb_reference *r;
    *out = NULL;
    if (batch < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "reference: batch %lld; need at least 1",
                            (long long)batch);
    if (g->input == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "reference: the graph has no input");
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "reference: out of memory");
    r->g = g;
    r->batch = batch;
    r->value = calloc(g->n_nodes, sizeof *r->value);
    r->grad = calloc(g->n_nodes, sizeof *r->grad);
    r->saved = calloc(g->n_nodes, sizeof *r->saved);
    r->param_grad = calloc(g->n_params + 1, sizeof *r->param_grad);
    r->input_grad = calloc((size_t)(batch * ref_node_size(g->input)), sizeof *r->input_grad);
    r->labels = calloc((size_t)batch, sizeof *r->labels);
    if (!r->value || !r->grad || !r->saved || !r->param_grad || !r->input_grad || !r->labels)
        goto oom;
    for (size_t i = 0; i < g->n_nodes; i++) {
        rb_node *n = g->nodes[i];
        const rb_op_def *def = rb_op_def_of(n->op);
        size_t saved = def->ref_saved != NULL ? def->ref_saved(n, batch) : 0;
        /* +1: nodes of no values per example (targets) still get a buffer */
        r->value[i] = calloc((size_t)(batch * ref_node_size(n)) + 1, sizeof(double));
        r->grad[i] = calloc((size_t)(batch * ref_node_size(n)) + 1, sizeof(double));
        if (saved)
            r->saved[i] = calloc(saved, sizeof(double));
        if (!r->value[i] || !r->grad[i] || (saved && !r->saved[i]))
            goto oom;
        if (rb_node_is_loss(n) && r->loss_node == NULL)
            r->loss_node = n;
    }
    for (size_t i = 0; i < g->n_params; i++)
        if (g->params[i].trainable &&
            !(r->param_grad[i] = calloc((size_t)g->params[i].numel, sizeof(double))))
            goto oom;
    r->loss = NAN;
    *out = r;
    return RB_OK;
oom:
    rb_reference_destroy(r);
    return rb_error_set(RB_ERR_OUT_OF_MEMORY, "reference: out of memory for batch %lld",
                        (long long)batch);
}

double *ref_param_grad(const rb_reference *r, const rb_node *n, int which, bool weight_grads)
{
    long w = n->param[RB_SLOT_WEIGHT], p = n->param[which];
    if (!weight_grads || w < 0 || p < 0 || r->g->params[w].frozen)
        return NULL;
    return r->param_grad[p];
}

rb_status rb_reference_forward_targets(rb_reference *r, const double *images, const rb_targets *targets,
                                       bool training)
{
    rb_graph *g = r->g;
    double total = 0;
    r->have_grads = r->have_param_grads = r->have_input_grad = false;
    r->forward_done = false;
    r->loss = NAN;
    r->training = training;
    r->images = images;
    memset(&r->targets, 0, sizeof r->targets);
    if (targets != NULL)
        r->targets = *targets;
    r->targets.count = r->batch;
    r->targets.labels = NULL;
    if (targets != NULL) { /* as the engine: masks and boxes must be the images' */
        rb_status s = rb_targets_check(&r->targets, INT64_MAX, rb_graph_target_height(g), rb_graph_target_width(g), "reference: the batch");
        if (s != RB_OK)
            return s;
    }
    if (targets != NULL && targets->labels != NULL) {
        memcpy(r->labels, targets->labels, (size_t)r->batch * sizeof *r->labels);
        r->targets.labels = r->labels;
    }
    for (size_t i = 0; i < g->n_nodes; i++) {
        rb_status s = rb_op_def_of(g->nodes[i]->op)->ref_forward(r, g->nodes[i], training);
        if (s != RB_OK)
            return s;
    }
    /* The objective: the sum of the losses, averaged over the batch. */
    for (size_t i = 0; i < g->n_nodes; i++)
        if (rb_node_is_loss(g->nodes[i]))
            for (int64_t b = 0; b < r->batch; b++)
                total += r->value[i][b];
    if (r->loss_node != NULL)
        r->loss = total / (double)r->batch;
    r->forward_done = true;
    return RB_OK;
}

rb_status rb_reference_forward(rb_reference *r, const double *images, const int64_t *labels, bool training)
{
    rb_targets t = {.count = r->batch, .labels = labels};
    return rb_reference_forward_targets(r, images, &t, training);
}

/* ------------------------------------------------------------ backward */

static rb_status run_backward(rb_reference *r, bool weight_grads, bool input_grad)
{
    rb_graph *g = r->g;
    for (size_t i = 0; i < g->n_params; i++)
        if (r->param_grad[i])
            memset(r->param_grad[i], 0, (size_t)g->params[i].numel * sizeof(double));
    r->have_input_grad = input_grad;
    for (size_t i = g->n_nodes; i-- > 0;) {
        const rb_op_def *def = rb_op_def_of(g->nodes[i]->op);
        rb_status s = def->ref_backward != NULL ? def->ref_backward(r, g->nodes[i], weight_grads) : RB_OK;
        if (s != RB_OK)
            return s;
    }
    r->have_grads = true;
    r->have_param_grads = weight_grads;
    r->have_input_grad = input_grad;
    return RB_OK;
}

static rb_status check_backward(const rb_reference *r)
{
    if (!r->forward_done)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "reference: backward before any forward");
    return RB_OK;
}

static void clear_grads(rb_reference *r)
{
    for (size_t i = 0; i < r->g->n_nodes; i++)
        memset(r->grad[i], 0, (size_t)(r->batch * ref_node_size(r->g->nodes[i])) * sizeof(double));
}

rb_status rb_reference_backward_from(rb_reference *r, const rb_node *node, const double *seed,
                                     bool weight_grads, bool input_grad)
{
    rb_graph *g = r->g;
    rb_status s = check_backward(r);
    if (s != RB_OK)
        return s;
    if (node == NULL || node->index >= g->n_nodes || g->nodes[node->index] != node)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "reference: backward from a node of another graph");
    clear_grads(r);
    memcpy(r->grad[node->index], seed, (size_t)(r->batch * ref_node_size(node)) * sizeof(double));
    return run_backward(r, weight_grads, input_grad);
}

rb_status rb_reference_backward(rb_reference *r, bool weight_grads, bool input_grad)
{
    rb_status s;
    if (r->loss_node == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "reference: the graph has no loss node to start backward from");
    if ((s = check_backward(r)) != RB_OK)
        return s;
    clear_grads(r);
    /* d mean over the batch of the sum of the losses / d loss_i = 1 / N */
    for (size_t i = 0; i < r->g->n_nodes; i++)
        if (rb_node_is_loss(r->g->nodes[i]))
            for (int64_t b = 0; b < r->batch; b++)
                r->grad[i][b] = 1.0 / (double)r->batch;
    return run_backward(r, weight_grads, input_grad);
}

const double *rb_reference_value(const rb_reference *r, const rb_node *node)
{
    return r->forward_done ? r->value[node->index] : NULL;
}

const double *rb_reference_node_grad(const rb_reference *r, const rb_node *node)
{
    return r->have_grads ? r->grad[node->index] : NULL;
}

const double *rb_reference_param_grad(const rb_reference *r, size_t index)
{
    if (!r->have_param_grads || index >= r->g->n_params || r->g->params[index].frozen)
        return NULL;
    return r->param_grad[index];
}

const double *rb_reference_input_grad(const rb_reference *r)
{
    return r->have_input_grad ? r->input_grad : NULL;
}

double rb_reference_loss(const rb_reference *r)
{
    return r->loss;
}
