/* Concatenation along channels (torch.cat(dim=1)). oneDNN's concat reads
 * each input in its own layout and writes a plain output; backward hands
 * each input its slice of the output's gradient by a reorder from a view
 * of that slice (adding when the input has other consumers). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "nn/op.h"

rb_status rb_graph_concat(rb_graph *g, rb_node *const *inputs, size_t count, rb_node **out)
{
    int64_t channels = 0;
    rb_status s;
    if (inputs == NULL || count < 1 || count > RB_CONCAT_MAX)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "concat: %zu inputs; give 1 to %d", inputs ? count : 0,
                            RB_CONCAT_MAX);
    s = graph_check_node(g, RB_OP_CONCAT, NULL, inputs, count);
    if (s != RB_OK)
        return s;
    for (size_t k = 0; k < count; k++) {
        if (inputs[k]->h != inputs[0]->h || inputs[k]->w != inputs[0]->w)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "concat: '%s' is %lldx%lld but '%s' is %lldx%lld; concatenated maps must have one "
                                "height and width (upsample or pool first)",
                                inputs[k]->name, (long long)inputs[k]->h, (long long)inputs[k]->w, inputs[0]->name,
                                (long long)inputs[0]->h, (long long)inputs[0]->w);
        channels += inputs[k]->c;
    }
    return graph_add_node(g, RB_OP_CONCAT, NULL, inputs, count, channels, inputs[0]->h, inputs[0]->w, out);
}

/* ------------------------------------------------------------ engine */

/* The output's channel block: the inputs' when they share one and every
 * input's channels fill whole blocks (then oneDNN copies block runs, and
 * each input's gradient is a block-aligned slice); else plain. */
static int64_t common_block(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    int64_t block = eng_channel_block(e, n->in[0], &eng_producer(e, en, 0)->value.md);
    for (size_t k = 0; block > 1 && k < n->n_in; k++)
        if (eng_channel_block(e, n->in[k], &eng_producer(e, en, k)->value.md) != block || n->in[k]->c % block != 0)
            block = 1;
    return block > 1 ? block : 1;
}

static rb_status plan(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    dnnl_memory_desc_t srcs[RB_NODE_MAX_INPUTS], dst;
    dnnl_dims_t dims = {e->batch, n->c, n->h, n->w};
    dnnl_data_type_t dt = dnnl_bf16;
    dnnl_primitive_desc_t pd;
    int64_t offset = 0;
    rb_status s;
    for (size_t k = 0; k < n->n_in; k++) {
        srcs[k] = eng_producer(e, en, k)->value.md;
        if (srcs[k].data_type != dnnl_bf16)
            dt = dnnl_f32; /* bf16 only when every input is */
    }
    const int64_t block = dt == dnnl_f32 ? common_block(e, en) : 1;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&dst, 4, dims, dt, eng_block_tag(block)), "concat", n);
    DNNL_TRY(dnnl_concat_primitive_desc_create(&pd, &dst, (int)n->n_in, 1, srcs, e->attr, e->eng), "concat", n);
    eng_note_impl(en, pd);
    {
        size_t len = strlen(en->impl);
        snprintf(en->impl + len, sizeof en->impl - len, ", %s", eng_block_name(block));
    }
    s = eng_make_primitive(e, &en->fwd[0], pd, n, "concat");
    dnnl_primitive_desc_destroy(pd);
    if (s == RB_OK)
        s = eng_value_plan(e, en, &dst);
    if (s == RB_OK)
        s = eng_diff_plan(e, &en->diff, &dst, n);
    /* Backward: input k's gradient is channels [offset, offset + c_k) of
     * the output's, viewed in place and reordered into the producer's. */
    for (size_t k = 0; s == RB_OK && k < n->n_in; k++) {
        edge *ed = &en->in[k];
        dnnl_memory_desc_t slice;
        dnnl_dims_t slice_dims = {e->batch, n->in[k]->c, n->h, n->w}, offsets = {0, offset, 0, 0};
        DNNL_TRY(dnnl_memory_desc_init_submemory(&slice, &dst, slice_dims, offsets), "concat backward", n);
        DNNL_TRY(dnnl_memory_create(&ed->scratch, &slice, e->eng, DNNL_MEMORY_NONE), "memory", n);
        ed->accumulate = eng_grad_accumulates(e, en, (int)k);
        s = eng_make_reorder(e, &ed->to_producer, &slice, &eng_producer(e, en, k)->diff.md, ed->accumulate, n);
        offset += n->in[k]->c;
    }
    return s;
}

/* The slices view the output's gradient (placed by the memory planner). */
static rb_status bind(rb_engine *e, enode *en)
{
    for (size_t k = 0; k < en->node->n_in; k++)
        if (dnnl_memory_set_data_handle(en->in[k].scratch, e->arena + en->diff.offset) != dnnl_success)
            return rb_error_set(RB_ERR_INTERNAL, "engine: cannot bind arena memory");
    return RB_OK;
}

static rb_status forward(rb_engine *e, enode *en, bool training)
{
    eng_args x = {.n = 0};
    (void)training;
    for (size_t k = 0; k < en->node->n_in; k++)
        eng_arg(&x, DNNL_ARG_MULTIPLE_SRC + (int)k, eng_producer(e, en, k)->value.mem);
    eng_arg(&x, DNNL_ARG_DST, en->value.mem);
    return eng_run(e, en->fwd[0], &x, en->node, "forward", RB_PRIM_CONCAT_FORWARD);
}

/* In input order: a repeated input's later slots add (eng_grad_accumulates). */
static rb_status backward(rb_engine *e, enode *en, bool weight_grads)
{
    rb_status s = RB_OK;
    (void)weight_grads;
    for (size_t k = 0; s == RB_OK && k < en->node->n_in; k++)
        if (eng_input_needs_grad(e, en, k))
            s = eng_reorder(e, en->in[k].to_producer, en->in[k].scratch, eng_producer(e, en, k)->diff.mem, en->node,
                            RB_PRIM_REORDER_GRADIENT);
    return s;
}

/* ------------------------------------------------------------ reference */

static rb_status ref_forward(rb_reference *r, const rb_node *n, bool training)
{
    double *y = ref_value(r, n);
    int64_t hw = n->h * n->w, offset = 0;
    (void)training;
    for (size_t k = 0; k < n->n_in; k++) {
        const double *x = ref_value(r, n->in[k]);
        int64_t c = n->in[k]->c;
        for (int64_t b = 0; b < r->batch; b++)
            for (int64_t i = 0; i < c * hw; i++)
                y[(b * n->c + offset) * hw + i] = x[b * c * hw + i];
        offset += c;
    }
    return RB_OK;
}

static rb_status ref_backward(rb_reference *r, const rb_node *n, bool weight_grads)
{
    const double *dy = ref_grad(r, n);
    int64_t hw = n->h * n->w, offset = 0;
    (void)weight_grads;
    for (size_t k = 0; k < n->n_in; k++) {
        double *dx = ref_grad(r, n->in[k]);
        int64_t c = n->in[k]->c;
        for (int64_t b = 0; b < r->batch; b++)
            for (int64_t i = 0; i < c * hw; i++)
                dx[b * c * hw + i] += dy[(b * n->c + offset) * hw + i];
        offset += c;
    }
    return RB_OK;
}

const rb_op_def rb_op_concat = {
    .op = RB_OP_CONCAT,
    .name = "concat",
    .plan = plan,
    .bind = bind,
    .forward = forward,
    .backward = backward,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
};
