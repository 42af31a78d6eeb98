/* Element-wise product of two nodes of one shape. Its gradients are the
 * output's times the other input, by the forward's binary primitive;
 * backward reads both inputs' values. */
#include "config.h"

#include "nn/op.h"

rb_status rb_graph_mul(rb_graph *g, rb_node *a, rb_node *b, rb_node **out)
{
    rb_node *in[2] = {a, b};
    rb_status s = graph_check_node(g, RB_OP_MUL, NULL, in, 2);
    if (s != RB_OK)
        return s;
    if (a->c != b->c || a->h != b->h || a->w != b->w)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "mul: '%s' is %lldx%lldx%lld but '%s' is %lldx%lldx%lld; they must match", a->name,
                            (long long)a->c, (long long)a->h, (long long)a->w, b->name, (long long)b->c,
                            (long long)b->h, (long long)b->w);
    return graph_add_node(g, RB_OP_MUL, NULL, in, 2, a->c, a->h, a->w, out);
}

/* ------------------------------------------------------------ engine */

/* Both inputs are read in one layout (oneDNN's binary runs its reference
 * code when they differ): the first's, unless it is plain and the
 * second's is not; the other is reordered. */
static rb_status plan(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    const dnnl_memory_desc_t *a = &eng_producer(e, en, 0)->value.md;
    const dnnl_memory_desc_t *b = &eng_producer(e, en, 1)->value.md;
    const dnnl_memory_desc_t *want = a;
    dnnl_memory_desc_t plain;
    dnnl_binary_desc_t d;
    dnnl_primitive_desc_t pd;
    rb_status s;
    eng_md_node_plain(e, n, &plain);
    if (eng_same_md(a, &plain) && !eng_same_md(b, &plain))
        want = b;
    s = eng_plan_input(e, en, 0, want);
    if (s == RB_OK)
        s = eng_plan_input(e, en, 1, want);
    if (s != RB_OK)
        return s;
    DNNL_TRY(dnnl_binary_desc_init(&d, dnnl_binary_mul, want, want, want), "mul", n);
    DNNL_TRY(dnnl_primitive_desc_create(&pd, &d, e->attr, e->eng, NULL), "mul", n);
    eng_note_impl(en, pd);
    s = eng_make_primitive(e, &en->fwd[0], pd, n, "mul");
    dnnl_primitive_desc_destroy(pd);
    if (s == RB_OK)
        s = eng_value_plan(e, en, want);
    if (s == RB_OK)
        s = eng_diff_plan(e, &en->diff, want, n);
    /* d a = dy * b and d b = dy * a, one primitive for both */
    if (s == RB_OK) {
        DNNL_TRY(dnnl_primitive_desc_create(&pd, &d, e->attr, e->eng, NULL), "mul backward", n);
        s = eng_make_primitive(e, &en->bwd_data[0], pd, n, "mul backward");
        dnnl_primitive_desc_destroy(pd);
    }
    for (int k = 0; s == RB_OK && k < 2; k++)
        s = eng_plan_grad_edge(e, en, k, want);
    return s;
}

static rb_status forward(rb_engine *e, enode *en, bool training)
{
    eng_args x = {.n = 0};
    (void)training;
    eng_arg(&x, DNNL_ARG_SRC_0, eng_input_mem(e, en, 0));
    eng_arg(&x, DNNL_ARG_SRC_1, eng_input_mem(e, en, 1));
    eng_arg(&x, DNNL_ARG_DST, en->value.mem);
    return eng_run(e, en->fwd[0], &x, en->node, "forward", RB_PRIM_MUL_FORWARD);
}

static rb_status backward(rb_engine *e, enode *en, bool weight_grads)
{
    rb_status s = RB_OK;
    (void)weight_grads;
    for (int k = 0; s == RB_OK && k < 2; k++) {
        eng_args x = {.n = 0};
        if (!eng_input_needs_grad(e, en, (size_t)k))
            continue;
        eng_arg(&x, DNNL_ARG_SRC_0, en->diff.mem);
        eng_arg(&x, DNNL_ARG_SRC_1, eng_input_mem(e, en, 1 - k));
        eng_arg(&x, DNNL_ARG_DST, eng_grad_target(e, en, k));
        s = eng_run(e, en->bwd_data[0], &x, en->node, "backward", RB_PRIM_MUL_BACKWARD);
        if (s == RB_OK)
            s = eng_deliver(e, en, k);
    }
    return s;
}

/* Backward reads each input (for the other's gradient), from its
 * reordered copy when there is one. */
static bool reads_input(const rb_engine *e, const enode *en, size_t k)
{
    (void)e;
    return !en->in[k].reordered;
}

/* ------------------------------------------------------------ reference */

static rb_status ref_forward(rb_reference *r, const rb_node *n, bool training)
{
    const double *a = ref_value(r, n->in[0]), *b = ref_value(r, n->in[1]);
    double *y = ref_value(r, n);
    (void)training;
    for (int64_t k = 0; k < r->batch * ref_node_size(n); k++)
        y[k] = a[k] * b[k];
    return RB_OK;
}

static rb_status ref_backward(rb_reference *r, const rb_node *n, bool weight_grads)
{
    const double *a = ref_value(r, n->in[0]), *b = ref_value(r, n->in[1]), *dy = ref_grad(r, n);
    double *da = ref_grad(r, n->in[0]), *db = ref_grad(r, n->in[1]);
    (void)weight_grads;
    for (int64_t k = 0; k < r->batch * ref_node_size(n); k++) {
        da[k] += dy[k] * b[k];
        db[k] += dy[k] * a[k];
    }
    return RB_OK;
}

const rb_op_def rb_op_mul = {
    .op = RB_OP_MUL,
    .name = "mul",
    .plan = plan,
    .forward = forward,
    .backward = backward,
    .reads_input = reads_input,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
};
