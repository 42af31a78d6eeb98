/* Element-wise sum of two nodes of one shape (residual connections). Its
 * gradient passes unchanged to both inputs; the engine's memory planner
 * writes it straight into an input's gradient where it can
 * (engine_memory.c, share_add_gradients), and a ReLU that follows runs as
 * the add's post-op. */
#include "config.h"

#include "nn/op.h"

rb_status rb_graph_add(rb_graph *g, rb_node *a, rb_node *b, rb_node **out)
{
    rb_node *in[2] = {a, b};
    rb_status s = graph_check_node(g, RB_OP_ADD, NULL, in, 2);
    if (s != RB_OK)
        return s;
    if (a->c != b->c || a->h != b->h || a->w != b->w)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "add: '%s' is %lldx%lldx%lld but '%s' is %lldx%lldx%lld; they must match", a->name,
                            (long long)a->c, (long long)a->h, (long long)a->w, b->name, (long long)b->c,
                            (long long)b->h, (long long)b->w);
    return graph_add_node(g, RB_OP_ADD, NULL, in, 2, a->c, a->h, a->w, out);
}

/* ------------------------------------------------------------ engine */

static rb_status plan(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    const dnnl_memory_desc_t *a = &eng_producer(e, en, 0)->value.md;
    const dnnl_memory_desc_t *b = &eng_producer(e, en, 1)->value.md;
    dnnl_binary_desc_t d;
    dnnl_primitive_desc_t pd;
    rb_status s;
    for (size_t j = n->index + 1; j < e->n && !e->keep_intermediates; j++)
        if (e->nodes[j].node->n_in > 0 && e->nodes[j].node->in[0] == n) {
            en->add_applies_relu = e->nodes[j].node->op == RB_OP_RELU && rb_relu_in_place(e, &e->nodes[j]);
            break;
        }
    DNNL_TRY(dnnl_binary_desc_init(&d, dnnl_binary_add, a, b, a), "add", n);
    DNNL_TRY(dnnl_primitive_desc_create(&pd, &d, en->add_applies_relu ? e->attr_relu : e->attr, e->eng, NULL),
             "add", n);
    eng_note_impl(en, pd);
    s = eng_make_primitive(e, &en->fwd[0], pd, n, "add");
    dnnl_primitive_desc_destroy(pd);
    if (s == RB_OK)
        s = eng_value_plan(e, en, a);
    if (s == RB_OK)
        s = eng_diff_plan(e, &en->diff, a, n);
    /* The gradient passes unchanged to both inputs. */
    if (s == RB_OK)
        s = eng_plan_grad_edge(e, en, 0, a);
    if (s == RB_OK)
        s = eng_plan_grad_edge(e, en, 1, a);
    return s;
}

static rb_status forward(rb_engine *e, enode *en, bool training)
{
    eng_args x = {.n = 0};
    (void)training;
    eng_arg(&x, DNNL_ARG_SRC_0, eng_producer(e, en, 0)->value.mem);
    eng_arg(&x, DNNL_ARG_SRC_1, eng_producer(e, en, 1)->value.mem);
    eng_arg(&x, DNNL_ARG_DST, en->value.mem);
    return eng_run(e, en->fwd[0], &x, en->node, "forward", RB_PRIM_ADD_FORWARD);
}

static rb_status backward(rb_engine *e, enode *en, bool weight_grads)
{
    rb_status s = RB_OK;
    (void)weight_grads;
    for (int k = 0; k < 2 && s == RB_OK; k++) {
        enode *producer = eng_producer(e, en, (size_t)k);
        if (!producer->need_diff || en->in[k].shared) /* shared: already there */
            continue;
        if (en->in[k].direct)
            eng_parallel_copy(e, e->arena + producer->diff.offset, e->arena + en->diff.offset, en->diff.bytes);
        else /* the edge's reorder reads the add's own gradient: no copy into scratch */
            s = eng_reorder(e, en->in[k].to_producer, en->diff.mem, producer->diff.mem, en->node,
                            RB_PRIM_REORDER_GRADIENT);
    }
    return s;
}

/* ------------------------------------------------------------ reference */

static rb_status ref_forward(rb_reference *r, const rb_node *n, bool training)
{
    const double *a = ref_value(r, n->in[0]), *b = ref_value(r, n->in[1]);
    double *y = ref_value(r, n);
    (void)training;
    for (int64_t k = 0; k < r->batch * ref_node_size(n); k++)
        y[k] = a[k] + b[k];
    return RB_OK;
}

static rb_status ref_backward(rb_reference *r, const rb_node *n, bool weight_grads)
{
    const double *dy = ref_grad(r, n);
    double *da = ref_grad(r, n->in[0]), *db = ref_grad(r, n->in[1]);
    (void)weight_grads;
    for (int64_t k = 0; k < r->batch * ref_node_size(n); k++) {
        da[k] += dy[k];
        db[k] += dy[k];
    }
    return RB_OK;
}

const rb_op_def rb_op_add = {
    .op = RB_OP_ADD,
    .name = "add",
    .plan = plan,
    .forward = forward,
    .backward = backward,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
};
