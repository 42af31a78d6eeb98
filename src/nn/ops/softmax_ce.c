/* Softmax cross-entropy of logits (K x 1 x 1) against the batch's integer
 * labels: the per-example loss, and the gradient of the batch mean
 * ((softmax - onehot) / N), kept exact in plain C: the loss is a sliver of
 * a step and the logits are plain (a linear layer's). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/op.h"

rb_status rb_graph_softmax_cross_entropy(rb_graph *g, rb_node *logits, rb_node **out)
{
    rb_status s = graph_check_node(g, RB_OP_SOFTMAX_CE, NULL, &logits, 1);
    if (s != RB_OK)
        return s;
    if (logits->h != 1 || logits->w != 1 || logits->c < 2)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "softmax cross-entropy on '%s': it needs logits of K >= 2 classes "
                            "(K x 1 x 1), but '%s' is %lldx%lldx%lld; add a global pool and a "
                            "linear layer first",
                            logits->name, logits->name, (long long)logits->c, (long long)logits->h,
                            (long long)logits->w);
    return graph_add_node(g, RB_OP_SOFTMAX_CE, NULL, &logits, 1, 1, 1, 1, out);
}

/* ------------------------------------------------------------ engine */

static rb_status plan(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    enode *producer = eng_producer(e, en, 0);
    dnnl_memory_desc_t md, lmd;
    dnnl_dims_t ldims = {e->batch, 1};
    rb_status s;
    eng_md_node_plain(e, producer->node, &md);
    if (!eng_same_md(&producer->value.md, &md))
        return rb_error_set(RB_ERR_UNSUPPORTED,
                            "engine: softmax cross-entropy '%s' needs plain logits, as a linear layer "
                            "gives; '%s' is a %s",
                            n->name, producer->node->name, rb_op_str(producer->node->op));
    snprintf(en->impl, sizeof en->impl, "robusta:softmax_ce");
    eng_md_plain(&lmd, 2, ldims);
    s = eng_value_plan(e, en, &lmd);
    if (s == RB_OK)
        s = eng_diff_plan(e, &en->diff, &lmd, n);
    /* softmax probabilities, kept for backward */
    if (s == RB_OK)
        s = eng_slot_plan(e, &en->workspace, &md, n);
    if (s == RB_OK)
        s = eng_plan_grad_edge(e, en, 0, &md);
    return s;
}

static rb_status check_targets(rb_engine *e, enode *en, const rb_targets *t)
{
    int64_t k = en->node->in[0]->c;
    if (t->labels == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: the graph ends in a loss ('%s') but no labels were given",
                            en->node->name);
    for (int64_t b = 0; b < e->batch; b++)
        if (t->labels[b] < 0 || t->labels[b] >= k)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "engine: label %lld of example %lld is outside [0, %lld) for loss '%s'",
                                (long long)t->labels[b], (long long)b, (long long)k, en->node->name);
    return RB_OK;
}

static rb_status forward(rb_engine *e, enode *en, bool training)
{
    int64_t k = en->node->in[0]->c;
    const float *z = eng_floats(e, eng_producer(e, en, 0)->value.offset);
    float *prob = eng_floats(e, en->workspace.offset);
    float *loss = eng_floats(e, en->value.offset);
    (void)training;
    for (int64_t b = 0; b < e->batch; b++) {
        double top = -INFINITY, sum = 0;
        for (int64_t i = 0; i < k; i++)
            top = z[b * k + i] > top ? z[b * k + i] : top;
        for (int64_t i = 0; i < k; i++)
            sum += exp((double)z[b * k + i] - top);
        for (int64_t i = 0; i < k; i++)
            prob[b * k + i] = (float)(exp((double)z[b * k + i] - top) / sum);
        loss[b] = (float)(top + log(sum) - z[b * k + e->labels[b]]);
    }
    return RB_OK;
}

static rb_status backward(rb_engine *e, enode *en, bool weight_grads)
{
    int64_t k = en->node->in[0]->c;
    const float *prob = eng_floats(e, en->workspace.offset);
    float *dz = eng_floats(e, eng_grad_offset(e, en, 0));
    (void)weight_grads;
    if (e->logit_grad != NULL) { /* rb_engine_backward_logits: another objective's gradient */
        memcpy(dz, e->logit_grad, (size_t)(e->batch * k) * sizeof *dz);
        return eng_deliver(e, en, 0);
    }
    /* d mean loss / d z = (softmax - onehot) / N */
    for (int64_t b = 0; b < e->batch; b++)
        for (int64_t c = 0; c < k; c++)
            dz[b * k + c] = (prob[b * k + c] - (c == e->labels[b] ? 1.0f : 0.0f)) / (float)e->batch;
    return eng_deliver(e, en, 0);
}

/* ------------------------------------------------------------ reference */

static size_t ref_saved(const rb_node *n, int64_t batch)
{
    return (size_t)(batch * n->in[0]->c);
}

static rb_status ref_forward(rb_reference *r, const rb_node *n, bool training)
{
    int64_t k = n->in[0]->c;
    const double *z = ref_value(r, n->in[0]);
    const int64_t *labels = r->targets.labels;
    double *prob = r->saved[n->index], *loss = ref_value(r, n);
    (void)training;
    if (labels == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "reference: the graph ends in a loss ('%s') but no labels were given", n->name);
    for (int64_t b = 0; b < r->batch; b++) {
        double top = -INFINITY, sum = 0;
        if (labels[b] < 0 || labels[b] >= k)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "reference: label %lld of example %lld is outside [0, %lld) for loss '%s'",
                                (long long)labels[b], (long long)b, (long long)k, n->name);
        for (int64_t i = 0; i < k; i++)
            top = z[b * k + i] > top ? z[b * k + i] : top;
        for (int64_t i = 0; i < k; i++)
            sum += exp(z[b * k + i] - top);
        for (int64_t i = 0; i < k; i++)
            prob[b * k + i] = exp(z[b * k + i] - top) / sum;
        loss[b] = top + log(sum) - z[b * k + labels[b]];
    }
    return RB_OK;
}

static rb_status ref_backward(rb_reference *r, const rb_node *n, bool weight_grads)
{
    int64_t k = n->in[0]->c;
    const double *prob = r->saved[n->index], *dy = ref_grad(r, n);
    double *dx = ref_grad(r, n->in[0]);
    (void)weight_grads;
    for (int64_t b = 0; b < r->batch; b++)
        for (int64_t c = 0; c < k; c++)
            dx[b * k + c] += dy[b] * (prob[b * k + c] - (c == r->labels[b] ? 1.0 : 0.0));
    return RB_OK;
}

const rb_op_def rb_op_softmax_ce = {
    .op = RB_OP_SOFTMAX_CE,
    .name = "softmax_cross_entropy",
    .loss = true,
    .plan = plan,
    .check_targets = check_targets,
    .forward = forward,
    .backward = backward,
    .ref_saved = ref_saved,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
};
