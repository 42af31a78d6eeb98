/* The logistic sigmoid, 1 / (1 + exp(-x)); its gradient y (1 - y) is
 * computed from the output, as PyTorch does. */
#include "config.h"

#include <math.h>

#include "nn/op.h"

rb_status rb_graph_sigmoid(rb_graph *g, rb_node *in, rb_node **out)
{
    rb_status s = graph_check_node(g, RB_OP_SIGMOID, NULL, &in, 1);
    if (s != RB_OK)
        return s;
    return graph_add_node(g, RB_OP_SIGMOID, NULL, &in, 1, in->c, in->h, in->w, out);
}

/* ------------------------------------------------------------ engine */

static rb_status plan(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    const dnnl_memory_desc_t *src = &eng_producer(e, en, 0)->value.md;
    dnnl_primitive_desc_t fpd, bpd;
    dnnl_eltwise_desc_t fd, bd;
    rb_status s;
    DNNL_TRY(dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training, dnnl_eltwise_logistic_use_dst_for_bwd, src,
                                            0.0f, 0.0f),
             "sigmoid forward", n);
    DNNL_TRY(dnnl_primitive_desc_create(&fpd, &fd, e->attr, e->eng, NULL), "sigmoid forward", n);
    DNNL_TRY(dnnl_eltwise_backward_desc_init(&bd, dnnl_eltwise_logistic_use_dst_for_bwd, src, src, 0.0f, 0.0f),
             "sigmoid backward", n);
    DNNL_TRY(dnnl_primitive_desc_create(&bpd, &bd, e->attr, e->eng, fpd), "sigmoid backward", n);
    eng_note_impl(en, fpd);
    s = eng_value_plan(e, en, eng_query(fpd, dnnl_query_dst_md));
    if (s == RB_OK)
        s = eng_diff_plan(e, &en->diff, eng_query(fpd, dnnl_query_dst_md), n);
    return eng_finish_unary(e, en, fpd, bpd, s);
}

static rb_status forward(rb_engine *e, enode *en, bool training)
{
    (void)training;
    return eng_unary_forward(e, en, RB_PRIM_SIGMOID_FORWARD);
}

static rb_status backward(rb_engine *e, enode *en, bool weight_grads)
{
    (void)weight_grads;
    if (!eng_input_needs_grad(e, en, 0))
        return RB_OK;
    return eng_unary_backward(e, en, true, RB_PRIM_SIGMOID_BACKWARD);
}

/* ------------------------------------------------------------ reference */

static rb_status ref_forward(rb_reference *r, const rb_node *n, bool training)
{
    const double *x = ref_value(r, n->in[0]);
    double *y = ref_value(r, n);
    (void)training;
    for (int64_t k = 0; k < r->batch * ref_node_size(n); k++)
        y[k] = 1.0 / (1.0 + exp(-x[k]));
    return RB_OK;
}

static rb_status ref_backward(rb_reference *r, const rb_node *n, bool weight_grads)
{
    const double *y = ref_value(r, n), *dy = ref_grad(r, n);
    double *dx = ref_grad(r, n->in[0]);
    (void)weight_grads;
    for (int64_t k = 0; k < r->batch * ref_node_size(n); k++)
        dx[k] += dy[k] * y[k] * (1.0 - y[k]);
    return RB_OK;
}

const rb_op_def rb_op_sigmoid = {
    .op = RB_OP_SIGMOID,
    .name = "sigmoid",
    .plan = plan,
    .forward = forward,
    .backward = backward,
    .reads_own_value = true,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
};
