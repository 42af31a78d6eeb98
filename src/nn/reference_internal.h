/* The double-precision reference's representation, shared by its driver
 * (reference.c) and the ops (src/nn/ops/), which compute their own nodes. */
#ifndef RB_NN_REFERENCE_INTERNAL_H
#define RB_NN_REFERENCE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <robusta/reference.h>
#include <robusta/targets.h>

#include "nn/graph_internal.h"

struct rb_reference {
    rb_graph *g;
    int64_t batch;
    double **value;      /* per node: batch × c × h × w */
    double **grad;       /* per node */
    double **param_grad; /* per parameter (trainable ones) */
    double **saved;      /* per node: op state (batch-norm: mean, invstd; losses: probabilities ...) */
    double *input_grad;  /* batch × image */
    const double *images; /* the last forward's */
    bool have_grads, have_param_grads, have_input_grad;
    double loss;
    rb_node *loss_node;  /* the first loss */
    int64_t *labels;     /* the last forward's labels (loss backward needs them) */
    rb_targets targets;  /* the last forward's targets; labels point at `labels` */
    bool forward_done;   /* a forward has run since creation */
    bool training;       /* the last forward's mode (batch-norm backward depends on it) */
};

static inline int64_t ref_node_size(const rb_node *n)
{
    return n->c * n->h * n->w;
}

/* A node's value and gradient, batch × its shape. */
static inline double *ref_value(const rb_reference *r, const rb_node *n)
{
    return r->value[n->index];
}

static inline double *ref_grad(const rb_reference *r, const rb_node *n)
{
    return r->grad[n->index];
}

/* A parameter's fp32 value, or NULL. */
static inline const float *ref_param(const rb_reference *r, const rb_node *n, int which)
{
    const rb_param_tensor *p = rb_node_param(r->g, n, which);
    return p ? p->value : NULL;
}

/* Where to add a parameter's gradient: NULL unless weight gradients are
 * asked for and the node's weight is trainable and not frozen. */
double *ref_param_grad(const rb_reference *r, const rb_node *n, int which, bool weight_grads);

#endif /* RB_NN_REFERENCE_INTERNAL_H */
