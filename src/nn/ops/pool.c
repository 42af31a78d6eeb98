/* Pooling: max (with PyTorch's first-maximum gradient), average counting
 * the padding (count_include_pad), and global average: builders, oneDNN
 * plans, and the double-precision reference. */
#include "config.h"

#include <math.h>

#include "nn/op.h"

static rb_status add_pool(rb_graph *g, rb_op op, rb_node *in, const rb_pool_desc *desc, rb_node **out)
{
    rb_pool_desc d = *desc;
    rb_node *n;
    int64_t oh, ow;
    rb_status s = graph_check_node(g, op, NULL, &in, 1);
    if (s != RB_OK)
        return s;
    for (int i = 0; i < 2; i++)
        if (d.stride[i] == 0)
            d.stride[i] = d.kernel[i];
    if (d.kernel[0] < 1 || d.kernel[1] < 1 || d.stride[0] < 1 || d.stride[1] < 1 ||
        d.padding[0] < 0 || d.padding[1] < 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s after '%s': kernel and stride must be positive, padding non-negative",
                            rb_op_str(op), in->name);
    /* PyTorch's rule: padding at most half the kernel, so that no window
     * sees only padding. */
    if (2 * d.padding[0] > d.kernel[0] || 2 * d.padding[1] > d.kernel[1])
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s after '%s': padding %lldx%lld is more than half the %lldx%lld kernel",
                            rb_op_str(op), in->name, (long long)d.padding[0], (long long)d.padding[1],
                            (long long)d.kernel[0], (long long)d.kernel[1]);
    oh = graph_window_out(in->h, d.kernel[0], d.stride[0], d.padding[0], 1);
    ow = graph_window_out(in->w, d.kernel[1], d.stride[1], d.padding[1], 1);
    if (oh < 1 || ow < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s after '%s': a %lldx%lld window does not fit its %lldx%lld output",
                            rb_op_str(op), in->name, (long long)d.kernel[0], (long long)d.kernel[1],
                            (long long)in->h, (long long)in->w);
    s = graph_add_node(g, op, NULL, &in, 1, in->c, oh, ow, &n);
    if (s != RB_OK)
        return s;
    n->attr.pool = d;
    *out = n;
    return RB_OK;
}

rb_status rb_graph_maxpool(rb_graph *g, rb_node *in, const rb_pool_desc *desc, rb_node **out)
{
    return add_pool(g, RB_OP_MAXPOOL, in, desc, out);
}

rb_status rb_graph_avgpool(rb_graph *g, rb_node *in, const rb_pool_desc *desc, rb_node **out)
{
    return add_pool(g, RB_OP_AVGPOOL, in, desc, out);
}

rb_status rb_graph_global_avgpool(rb_graph *g, rb_node *in, rb_node **out)
{
    rb_status s = graph_check_node(g, RB_OP_GLOBAL_AVGPOOL, NULL, &in, 1);
    if (s != RB_OK)
        return s;
    return graph_add_node(g, RB_OP_GLOBAL_AVGPOOL, NULL, &in, 1, in->c, 1, 1, out);
}

/* ------------------------------------------------------------ engine */

static rb_status plan(rb_engine *e, enode *en)
{
    const rb_node *n = en->node, *in = n->in[0];
    const dnnl_memory_desc_t *src = &eng_producer(e, en, 0)->value.md;
    dnnl_primitive_desc_t fpd, bpd;
    dnnl_pooling_v2_desc_t fd, bd;
    dnnl_memory_desc_t dst;
    dnnl_dims_t dst_dims = {e->batch, n->c, n->h, n->w};
    dnnl_dims_t kernel, strides, pad_l, pad_r, dil = {0, 0};
    dnnl_alg_kind_t alg = n->op == RB_OP_MAXPOOL ? dnnl_pooling_max : dnnl_pooling_avg_include_padding;
    rb_status s;
    if (n->op == RB_OP_GLOBAL_AVGPOOL) {
        kernel[0] = in->h;
        kernel[1] = in->w;
        strides[0] = strides[1] = 1;
        pad_l[0] = pad_l[1] = pad_r[0] = pad_r[1] = 0;
        alg = dnnl_pooling_avg_exclude_padding;
    } else {
        const rb_pool_desc *d = &n->attr.pool;
        for (int i = 0; i < 2; i++) {
            kernel[i] = d->kernel[i];
            strides[i] = d->stride[i];
            pad_l[i] = d->padding[i];
        }
        pad_r[0] = (n->h - 1) * d->stride[0] + d->kernel[0] - in->h - d->padding[0];
        pad_r[1] = (n->w - 1) * d->stride[1] + d->kernel[1] - in->w - d->padding[1];
    }
    eng_md_any(&dst, 4, dst_dims, src->data_type);
    DNNL_TRY(dnnl_pooling_v2_forward_desc_init(&fd, dnnl_forward_training, alg, src, &dst, strides, kernel, dil,
                                               pad_l, pad_r),
             "pooling forward", n);
    DNNL_TRY(dnnl_primitive_desc_create(&fpd, &fd, e->attr, e->eng, NULL), "pooling forward", n);
    DNNL_TRY(dnnl_pooling_v2_backward_desc_init(&bd, alg, src, eng_query(fpd, dnnl_query_dst_md), strides, kernel,
                                                dil, pad_l, pad_r),
             "pooling backward", n);
    DNNL_TRY(dnnl_primitive_desc_create(&bpd, &bd, e->attr, e->eng, fpd), "pooling backward", n);
    eng_note_impl(en, fpd);
    s = eng_value_plan(e, en, eng_query(fpd, dnnl_query_dst_md));
    if (s == RB_OK)
        s = eng_diff_plan(e, &en->diff, eng_query(fpd, dnnl_query_dst_md), n);
    return eng_finish_unary(e, en, fpd, bpd, s);
}

static rb_status forward(rb_engine *e, enode *en, bool training)
{
    (void)training;
    return eng_unary_forward(e, en, RB_PRIM_POOLING_FORWARD);
}

static rb_status backward(rb_engine *e, enode *en, bool weight_grads)
{
    (void)weight_grads;
    if (!eng_input_needs_grad(e, en, 0))
        return RB_OK;
    return eng_unary_backward(e, en, false, RB_PRIM_POOLING_BACKWARD);
}

/* ------------------------------------------------------------ reference */

static void pool_forward(rb_reference *r, const rb_node *n, const double *x, double *y)
{
    const rb_pool_desc *d = &n->attr.pool;
    const rb_node *in = n->in[0];
    double *argmax = r->saved[n->index];
    for (int64_t b = 0; b < r->batch; b++)
        for (int64_t c = 0; c < n->c; c++)
            for (int64_t oy = 0; oy < n->h; oy++)
                for (int64_t ox = 0; ox < n->w; ox++) {
                    double best = -INFINITY, sum = 0;
                    int64_t best_at = -1;
                    for (int64_t ky = 0; ky < d->kernel[0]; ky++)
                        for (int64_t kx = 0; kx < d->kernel[1]; kx++) {
                            int64_t iy = oy * d->stride[0] - d->padding[0] + ky;
                            int64_t ix = ox * d->stride[1] - d->padding[1] + kx;
                            int64_t k = ((b * in->c + c) * in->h + iy) * in->w + ix;
                            if (iy < 0 || iy >= in->h || ix < 0 || ix >= in->w)
                                continue; /* padding: -inf for max, 0 for average */
                            sum += x[k];
                            if (x[k] > best) { /* the first maximum wins, as in PyTorch */
                                best = x[k];
                                best_at = k;
                            }
                        }
                    int64_t o = ((b * n->c + c) * n->h + oy) * n->w + ox;
                    if (n->op == RB_OP_MAXPOOL) {
                        y[o] = best;
                        argmax[o] = (double)best_at;
                    } else {
                        /* count_include_pad: the divisor is the whole window */
                        y[o] = sum / (double)(d->kernel[0] * d->kernel[1]);
                    }
                }
}

static void pool_backward(rb_reference *r, const rb_node *n, const double *dy, double *dx)
{
    const rb_pool_desc *d = &n->attr.pool;
    const rb_node *in = n->in[0];
    const double *argmax = r->saved[n->index];
    for (int64_t b = 0; b < r->batch; b++)
        for (int64_t c = 0; c < n->c; c++)
            for (int64_t oy = 0; oy < n->h; oy++)
                for (int64_t ox = 0; ox < n->w; ox++) {
                    int64_t o = ((b * n->c + c) * n->h + oy) * n->w + ox;
                    if (n->op == RB_OP_MAXPOOL) {
                        dx[(int64_t)argmax[o]] += dy[o];
                        continue;
                    }
                    for (int64_t ky = 0; ky < d->kernel[0]; ky++)
                        for (int64_t kx = 0; kx < d->kernel[1]; kx++) {
                            int64_t iy = oy * d->stride[0] - d->padding[0] + ky;
                            int64_t ix = ox * d->stride[1] - d->padding[1] + kx;
                            if (iy < 0 || iy >= in->h || ix < 0 || ix >= in->w)
                                continue;
                            dx[((b * in->c + c) * in->h + iy) * in->w + ix] +=
                                dy[o] / (double)(d->kernel[0] * d->kernel[1]);
                        }
                }
}

static size_t ref_saved(const rb_node *n, int64_t batch)
{
    return n->op == RB_OP_MAXPOOL ? (size_t)(batch * ref_node_size(n)) : 0;
}

static rb_status ref_forward(rb_reference *r, const rb_node *n, bool training)
{
    (void)training;
    pool_forward(r, n, ref_value(r, n->in[0]), ref_value(r, n));
    return RB_OK;
}

static rb_status ref_backward(rb_reference *r, const rb_node *n, bool weight_grads)
{
    (void)weight_grads;
    pool_backward(r, n, ref_grad(r, n), ref_grad(r, n->in[0]));
    return RB_OK;
}

static rb_status ref_global_forward(rb_reference *r, const rb_node *n, bool training)
{
    const double *x = ref_value(r, n->in[0]);
    double *y = ref_value(r, n);
    int64_t hw = n->in[0]->h * n->in[0]->w;
    (void)training;
    for (int64_t k = 0; k < r->batch * n->c; k++) {
        double sum = 0;
        for (int64_t p = 0; p < hw; p++)
            sum += x[k * hw + p];
        y[k] = sum / (double)hw;
    }
    return RB_OK;
}

static rb_status ref_global_backward(rb_reference *r, const rb_node *n, bool weight_grads)
{
    const double *dy = ref_grad(r, n);
    double *dx = ref_grad(r, n->in[0]);
    int64_t hw = n->in[0]->h * n->in[0]->w;
    (void)weight_grads;
    for (int64_t k = 0; k < r->batch * n->c; k++)
        for (int64_t p = 0; p < hw; p++)
            dx[k * hw + p] += dy[k] / (double)hw;
    return RB_OK;
}

const rb_op_def rb_op_maxpool = {
    .op = RB_OP_MAXPOOL,
    .name = "maxpool",
    .plan = plan,
    .forward = forward,
    .backward = backward,
    .ref_saved = ref_saved,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
};

const rb_op_def rb_op_avgpool = {
    .op = RB_OP_AVGPOOL,
    .name = "avgpool",
    .plan = plan,
    .forward = forward,
    .backward = backward,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
};

const rb_op_def rb_op_global_avgpool = {
    .op = RB_OP_GLOBAL_AVGPOOL,
    .name = "global_avgpool",
    .plan = plan,
    .forward = forward,
    .backward = backward,
    .ref_forward = ref_global_forward,
    .ref_backward = ref_global_backward,
};
