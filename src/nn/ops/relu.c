/* ReLU, with PyTorch's gradient (passed where the output is positive).
 * The engine runs it in place when nothing else reads its input, fused
 * into the batch-norm before it (fuse_norm_relu) or into the residual add
 * before it (a post-op) where it can. */
#include "config.h"

#include <stdio.h>

#include "nn/op.h"

rb_status rb_graph_relu(rb_graph *g, rb_node *in, rb_node **out)
{
    rb_status s = graph_check_node(g, RB_OP_RELU, NULL, &in, 1);
    if (s != RB_OK)
        return s;
    return graph_add_node(g, RB_OP_RELU, NULL, &in, 1, in->c, in->h, in->w, out);
}

/* ------------------------------------------------------------ engine */

/* A ReLU may overwrite its input when nothing else reads that value, now or
 * in backward: the producer has no other consumer and is not published
 * (ReLU's own backward uses its output, and no producer's backward needs
 * its own output). It saves one activation per conv/batch-norm + ReLU. */
bool rb_relu_in_place(const rb_engine *e, const enode *en)
{
    const rb_node *producer = en->node->in[0];
    if (e->keep_intermediates || e->nodes[producer->index].consumers != 1 || producer->op == RB_OP_INPUT)
        return false;
    return !eng_is_published(e, producer);
}

static rb_status plan(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    enode *producer = eng_producer(e, en, 0);
    const dnnl_memory_desc_t *src = &producer->value.md;
    dnnl_primitive_desc_t fpd, bpd;
    dnnl_eltwise_desc_t fd, bd;
    rb_status s;
    DNNL_TRY(dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd, src,
                                            0.0f, 0.0f),
             "relu forward", n);
    DNNL_TRY(dnnl_primitive_desc_create(&fpd, &fd, e->attr, e->eng, NULL), "relu forward", n);
    DNNL_TRY(dnnl_eltwise_backward_desc_init(&bd, dnnl_eltwise_relu_use_dst_for_bwd, src, src, 0.0f, 0.0f),
             "relu backward", n);
    DNNL_TRY(dnnl_primitive_desc_create(&bpd, &bd, e->attr, e->eng, fpd), "relu backward", n);
    eng_note_impl(en, fpd);
    if (rb_relu_in_place(e, en))
        s = eng_value_alias(e, en, &producer->value);
    else
        s = eng_value_plan(e, en, eng_query(fpd, dnnl_query_dst_md));
    if (s == RB_OK && producer->add_applies_relu) {
        en->relu_in_add = true;
        snprintf(en->impl, sizeof en->impl, "fused into add '%.70s'", producer->node->name);
    }
    if (s == RB_OK && producer->relu_follows) {
        /* fused: the gradient is the batch-norm's memory (placed by eng_plan_pools) */
        en->relu_fused = true;
        snprintf(en->impl, sizeof en->impl, "fused into batch-norm '%.60s'", producer->node->name);
        en->diff.md = producer->diff.md;
        en->diff.bytes = producer->diff.bytes;
        if (dnnl_memory_create(&en->diff.mem, &en->diff.md, e->eng, DNNL_MEMORY_NONE) != dnnl_success)
            s = eng_dnnl_fail(dnnl_out_of_memory, "memory", n);
    } else if (s == RB_OK) {
        s = eng_diff_plan(e, &en->diff, eng_query(fpd, dnnl_query_dst_md), n);
    }
    return eng_finish_unary(e, en, fpd, bpd, s);
}

static rb_status forward(rb_engine *e, enode *en, bool training)
{
    (void)training;
    if (en->relu_fused || en->relu_in_add) /* the batch-norm or add before it applied it */
        return RB_OK;
    return eng_unary_forward(e, en, RB_PRIM_RELU_FORWARD);
}

/* A fused ReLU's mask is applied by batch-norm's training backward; with
 * running statistics, here, in place on the shared gradient. */
static rb_status backward(rb_engine *e, enode *en, bool weight_grads)
{
    (void)weight_grads;
    if (!eng_input_needs_grad(e, en, 0) || (en->relu_fused && e->training))
        return RB_OK;
    return eng_unary_backward(e, en, true, RB_PRIM_RELU_BACKWARD);
}

/* ------------------------------------------------------------ reference */

static rb_status ref_forward(rb_reference *r, const rb_node *n, bool training)
{
    const double *x = ref_value(r, n->in[0]);
    double *y = ref_value(r, n);
    (void)training;
    for (int64_t k = 0; k < r->batch * ref_node_size(n); k++)
        y[k] = x[k] > 0 ? x[k] : 0;
    return RB_OK;
}

static rb_status ref_backward(rb_reference *r, const rb_node *n, bool weight_grads)
{
    const double *y = ref_value(r, n), *dy = ref_grad(r, n);
    double *dx = ref_grad(r, n->in[0]);
    (void)weight_grads;
    for (int64_t k = 0; k < r->batch * ref_node_size(n); k++)
        dx[k] += y[k] > 0 ? dy[k] : 0;
    return RB_OK;
}

const rb_op_def rb_op_relu = {
    .op = RB_OP_RELU,
    .name = "relu",
    .plan = plan,
    .forward = forward,
    .backward = backward,
    .reads_own_value = true,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
};
