/* Upsampling, bilinear (F.interpolate(mode='bilinear',
 * align_corners=False)) and nearest (integer ratios), by a factor or to a
 * size. The engine runs oneDNN's resampling, whose formulas are
 * PyTorch's for these cases: the output pixel's centre maps to
 * (dst + 0.5) * in / out - 0.5 in the input, neighbours outside the image
 * are the edge pixel (PyTorch clamps the coordinate at 0 first: the same
 * weights land on the same pixel), and nearest rounds that coordinate,
 * which for a whole ratio f is floor(dst / f), PyTorch's rule. For other
 * ratios the two nearest rules differ, so they are refused. It keeps the
 * producer's layout: no reorder around it. */
#include "config.h"

#include <math.h>

#include "nn/op.h"

rb_status rb_graph_upsample(rb_graph *g, rb_node *in, const rb_upsample_desc *desc, rb_node **out)
{
    rb_upsample_desc d;
    rb_node *n;
    rb_status s = graph_check_node(g, RB_OP_UPSAMPLE, NULL, &in, 1);
    if (s != RB_OK)
        return s;
    if (desc == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "upsample after '%s': no description", in->name);
    d = *desc;
    if (d.mode != RB_UPSAMPLE_BILINEAR && d.mode != RB_UPSAMPLE_NEAREST)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "upsample after '%s': unknown mode %d; use bilinear or nearest",
                            in->name, (int)d.mode);
    if (d.factor < 0 || (d.factor > 0 && (d.height != 0 || d.width != 0)))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "upsample after '%s': give a factor >= 1 or an output size, not both (factor %lld, "
                            "size %lldx%lld)",
                            in->name, (long long)d.factor, (long long)d.height, (long long)d.width);
    if (d.factor > 0) {
        if (d.factor > (INT64_C(1) << 20) / (in->h > in->w ? in->h : in->w))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "upsample after '%s': factor %lld makes a map over 2^20 pixels wide",
                                in->name, (long long)d.factor);
        d.height = in->h * d.factor;
        d.width = in->w * d.factor;
    }
    if (d.height < in->h || d.width < in->w)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "upsample after '%s': %lldx%lld is smaller than its %lldx%lld input; upsampling only "
                            "enlarges (pool to shrink)",
                            in->name, (long long)d.height, (long long)d.width, (long long)in->h, (long long)in->w);
    if (d.height > (INT64_C(1) << 20) || d.width > (INT64_C(1) << 20))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "upsample after '%s': %lldx%lld is over 2^20 pixels wide",
                            in->name, (long long)d.height, (long long)d.width);
    if (d.mode == RB_UPSAMPLE_NEAREST && (d.height % in->h != 0 || d.width % in->w != 0))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "upsample after '%s': nearest to %lldx%lld from %lldx%lld is not a whole ratio, where "
                            "PyTorch's and oneDNN's nearest rules differ; use bilinear or a multiple of the input",
                            in->name, (long long)d.height, (long long)d.width, (long long)in->h, (long long)in->w);
    s = graph_add_node(g, RB_OP_UPSAMPLE, NULL, &in, 1, in->c, d.height, d.width, &n);
    if (s != RB_OK)
        return s;
    n->attr.upsample = d;
    *out = n;
    return RB_OK;
}

/* ------------------------------------------------------------ engine */

static dnnl_alg_kind_t algorithm(const rb_node *n)
{
    return n->attr.upsample.mode == RB_UPSAMPLE_NEAREST ? dnnl_resampling_nearest : dnnl_resampling_linear;
}

static rb_status plan(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    const dnnl_memory_desc_t *src = &eng_producer(e, en, 0)->value.md;
    dnnl_memory_desc_t dst;
    dnnl_dims_t dims = {e->batch, n->c, n->h, n->w};
    dnnl_resampling_desc_t fd, bd;
    dnnl_primitive_desc_t fpd, bpd;
    rb_status s;
    /* the output in the input's layout: a consumer reorders if it must */
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&dst, 4, dims, src->data_type, dnnl_format_tag_any), "upsample", n);
    DNNL_TRY(dnnl_resampling_forward_desc_init(&fd, dnnl_forward_training, algorithm(n), NULL, src, &dst),
             "upsample forward", n);
    DNNL_TRY(dnnl_primitive_desc_create(&fpd, &fd, e->attr, e->eng, NULL), "upsample forward", n);
    DNNL_TRY(dnnl_resampling_backward_desc_init(&bd, algorithm(n), NULL, src, eng_query(fpd, dnnl_query_dst_md)),
             "upsample backward", n);
    DNNL_TRY(dnnl_primitive_desc_create(&bpd, &bd, e->attr, e->eng, fpd), "upsample backward", n);
    eng_note_impl(en, fpd);
    eng_warn_if_reference(fpd, n, "forward");
    s = eng_value_plan(e, en, eng_query(fpd, dnnl_query_dst_md));
    if (s == RB_OK)
        s = eng_diff_plan(e, &en->diff, eng_query(fpd, dnnl_query_dst_md), n);
    return eng_finish_unary(e, en, fpd, bpd, s);
}

static rb_status forward(rb_engine *e, enode *en, bool training)
{
    (void)training;
    return eng_unary_forward(e, en, RB_PRIM_RESAMPLING_FORWARD);
}

static rb_status backward(rb_engine *e, enode *en, bool weight_grads)
{
    (void)weight_grads;
    if (!eng_input_needs_grad(e, en, 0))
        return RB_OK;
    return eng_unary_backward(e, en, false, RB_PRIM_RESAMPLING_BACKWARD);
}

/* ------------------------------------------------------------ reference */

/* The input pixels and weights output pixel `o` of an axis of `out` reads
 * from one of `in` (PyTorch's formulas, written out). */
static void taps(const rb_node *n, int64_t o, int64_t in, int64_t out, int64_t *i0, int64_t *i1, double *w1)
{
    if (n->attr.upsample.mode == RB_UPSAMPLE_NEAREST) {
        *i0 = *i1 = o / (out / in);
        *w1 = 0;
        return;
    }
    double src = ((double)o + 0.5) * (double)in / (double)out - 0.5;
    if (src < 0)
        src = 0;
    *i0 = (int64_t)floor(src);
    if (*i0 > in - 1)
        *i0 = in - 1;
    *i1 = *i0 + 1 < in ? *i0 + 1 : in - 1;
    *w1 = src - (double)*i0;
}

static rb_status ref_forward(rb_reference *r, const rb_node *n, bool training)
{
    const rb_node *in = n->in[0];
    const double *x = ref_value(r, in);
    double *y = ref_value(r, n);
    (void)training;
    for (int64_t p = 0; p < r->batch * n->c; p++)
        for (int64_t oy = 0; oy < n->h; oy++) {
            int64_t y0, y1, x0, x1;
            double wy, wx;
            taps(n, oy, in->h, n->h, &y0, &y1, &wy);
            for (int64_t ox = 0; ox < n->w; ox++) {
                const double *plane = x + p * in->h * in->w;
                taps(n, ox, in->w, n->w, &x0, &x1, &wx);
                y[(p * n->h + oy) * n->w + ox] =
                    (1 - wy) * ((1 - wx) * plane[y0 * in->w + x0] + wx * plane[y0 * in->w + x1]) +
                    wy * ((1 - wx) * plane[y1 * in->w + x0] + wx * plane[y1 * in->w + x1]);
            }
        }
    return RB_OK;
}

static rb_status ref_backward(rb_reference *r, const rb_node *n, bool weight_grads)
{
    const rb_node *in = n->in[0];
    const double *dy = ref_grad(r, n);
    double *dx = ref_grad(r, in);
    (void)weight_grads;
    for (int64_t p = 0; p < r->batch * n->c; p++)
        for (int64_t oy = 0; oy < n->h; oy++) {
            int64_t y0, y1, x0, x1;
            double wy, wx;
            taps(n, oy, in->h, n->h, &y0, &y1, &wy);
            for (int64_t ox = 0; ox < n->w; ox++) {
                double *plane = dx + p * in->h * in->w, g = dy[(p * n->h + oy) * n->w + ox];
                taps(n, ox, in->w, n->w, &x0, &x1, &wx);
                plane[y0 * in->w + x0] += (1 - wy) * (1 - wx) * g;
                plane[y0 * in->w + x1] += (1 - wy) * wx * g;
                plane[y1 * in->w + x0] += wy * (1 - wx) * g;
                plane[y1 * in->w + x1] += wy * wx * g;
            }
        }
    return RB_OK;
}

const rb_op_def rb_op_upsample = {
    .op = RB_OP_UPSAMPLE,
    .name = "upsample",
    .plan = plan,
    .forward = forward,
    .backward = backward,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
};
