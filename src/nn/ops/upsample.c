/* Upsampling, bilinear (F.interpolate(mode='bilinear',
 * align_corners=False)) and nearest (integer ratios), by a factor or to a
 * size, with PyTorch's formulas: the output pixel's centre maps to
 * (dst + 0.5) * in / out - 0.5 in the input, clamped at 0, neighbours
 * outside the image are the edge pixel; nearest, for a whole ratio f,
 * reads floor(dst / f). Other nearest ratios are refused: PyTorch's rule
 * (floor(dst * in / out)) and the centre rule differ there, and dense
 * heads upsample by whole factors. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <omp.h>

#include "nn/op.h"
#include "tensor/vmath.h"

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

/* ------------------------------------------------------------ engine
 *
 * Own loops rather than oneDNN's resampling, whose backward ran at 2-4% of
 * the machine's copy bandwidth (bench/bench_dense). They work in the
 * producer's layout when it is plain or channel-blocked (nChw8c, nChw16c:
 * a convolution's), seen as planes of H x W pixels of B channels each
 * (B = 1 for plain), so that the B channels of a pixel vectorize; other
 * layouts are reordered to plain first. The output has the same layout. */

/* Where output position o of an axis reads: pixels i0 and i1, weight w
 * on i1 (PyTorch's formulas; see `taps` below for the reference's). */
typedef struct tap {
    int32_t i0, i1;
    float w;
} tap;

static void axis_taps(const rb_node *n, int64_t in, int64_t out, tap *t)
{
    for (int64_t o = 0; o < out; o++) {
        if (n->attr.upsample.mode == RB_UPSAMPLE_NEAREST) {
            t[o].i0 = t[o].i1 = (int32_t)(o / (out / in));
            t[o].w = 0;
            continue;
        }
        double src = ((double)o + 0.5) * (double)in / (double)out - 0.5;
        int64_t i0;
        src = src < 0 ? 0 : src;
        i0 = (int64_t)floor(src);
        i0 = i0 > in - 1 ? in - 1 : i0;
        t[o].i0 = (int32_t)i0;
        t[o].i1 = (int32_t)(i0 + 1 < in ? i0 + 1 : in - 1);
        t[o].w = (float)(src - (double)i0);
    }
}

static rb_status plan(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    dnnl_memory_desc_t used, dst, taps, rows;
    dnnl_dims_t dims = {e->batch, n->c, n->h, n->w};
    dnnl_dims_t tdims = {(dnnl_dim_t)((n->h + n->w) * sizeof(tap))};
    rb_status s = eng_plan_blocked_input(e, en, &used);
    int64_t block = en->channel_block;
    snprintf(en->impl, sizeof en->impl, "robusta:%s, %s", n->attr.upsample.mode == RB_UPSAMPLE_NEAREST ? "nearest" : "bilinear",
             eng_block_name(block));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&dst, 4, dims, dnnl_f32, eng_block_tag(block)), "upsample", n);
    dnnl_memory_desc_init_by_tag(&taps, 1, tdims, dnnl_u8, dnnl_a);
    if (s == RB_OK)
        s = eng_value_plan(e, en, &dst);
    if (s == RB_OK)
        s = eng_diff_plan(e, &en->diff, &dst, n);
    if (s == RB_OK)
        s = eng_slot_plan(e, &en->aux[0], &taps, n);
    if (s == RB_OK) { /* a row of W_in pixels per thread (forward_row, backward_plane) */
        dnnl_dims_t rdims = {(dnnl_dim_t)e->threads * n->in[0]->w * block};
        eng_md_plain(&rows, 1, rdims);
        s = eng_slot_plan(e, &en->aux[1], &rows, n);
    }
    if (s == RB_OK)
        s = eng_plan_grad_edge(e, en, 0, &used);
    return s;
}

/* The taps, once the arena exists: rows, then columns. */
static rb_status bind(rb_engine *e, enode *en)
{
    const rb_node *n = en->node, *in = n->in[0];
    tap *t = (tap *)(void *)(e->arena + en->aux[0].offset);
    axis_taps(n, in->h, n->h, t);
    axis_taps(n, in->w, n->w, t + n->h);
    return RB_OK;
}

/* Padded channels count: a blocked layout rounds C up to the block. */
static int64_t planes(const rb_engine *e, const enode *en)
{
    const int64_t block = en->channel_block;
    return e->batch * ((en->node->c + block - 1) / block);
}

/* A thread's row of W_in x B floats in aux[1]. */
static float *thread_row(const rb_engine *e, const enode *en)
{
    const int64_t row = en->node->in[0]->w * en->channel_block;
    return eng_floats(e, en->aux[1].offset) + (int64_t)omp_get_thread_num() * row;
}

/* Bilinear, separably: the two input rows blended into one (W_in pixels,
 * vectorized), then each output pixel from two of its pixels. */
static inline __attribute__((always_inline)) void forward_row_blocked(const rb_engine *e, enode *en, int64_t row,
                                                                      const int64_t B)
{
    const rb_node *n = en->node, *in = n->in[0];
    const int64_t p = row / n->h, oy = row % n->h, width = in->w * B;
    const tap *ty = (const tap *)(const void *)(e->arena + en->aux[0].offset) + oy, *tx = ty - oy + n->h;
    const float *x = eng_floats(e, eng_input_offset(e, en, 0)) + p * in->h * width;
    const float *r0 = x + ty->i0 * width, *r1 = x + ty->i1 * width;
    float *y = eng_floats(e, en->value.offset) + (p * n->h + oy) * n->w * B, *blend;
    const float wy = ty->w;
    if (n->attr.upsample.mode == RB_UPSAMPLE_NEAREST) {
        if (B == 1) { /* plain: vectorized across the row, by gathers where the CPU has them */
#pragma omp simd
            for (int64_t ox = 0; ox < n->w; ox++)
                y[ox] = r0[tx[ox].i0];
            return;
        }
        for (int64_t ox = 0; ox < n->w; ox++)
#pragma omp simd
            for (int64_t k = 0; k < B; k++)
                y[ox * B + k] = r0[tx[ox].i0 * B + k];
        return;
    }
    blend = thread_row(e, en);
#pragma omp simd
    for (int64_t i = 0; i < width; i++)
        blend[i] = (1 - wy) * r0[i] + wy * r1[i];
    if (B == 1) {
#pragma omp simd
        for (int64_t ox = 0; ox < n->w; ox++)
            y[ox] = (1 - tx[ox].w) * blend[tx[ox].i0] + tx[ox].w * blend[tx[ox].i1];
        return;
    }
    for (int64_t ox = 0; ox < n->w; ox++) {
        const float *a = blend + tx[ox].i0 * B, *b = blend + tx[ox].i1 * B, wx = tx[ox].w;
        float *o = y + ox * B;
#pragma omp simd
        for (int64_t k = 0; k < B; k++)
            o[k] = (1 - wx) * a[k] + wx * b[k];
    }
}

/* Output rows per forward task: at least 16K floats, so that small maps
 * (14 x 14 upsampled to 28 x 28) do not cost a task per row. */
static int64_t rows_per_task(const enode *en)
{
    const int64_t floats = en->node->w * en->channel_block, rows = (16384 + floats - 1) / floats;
    return rows < en->node->h ? rows : en->node->h;
}

/* The kernels with B a constant (1, 8, 16), so that the B-loops unroll and
 * vectorize. */
RB_VECTOR_CLONES static void forward_rows(const rb_engine *e, enode *en, int64_t task, void *ctx)
{
    const int64_t per = rows_per_task(en), chunks = (en->node->h + per - 1) / per;
    const int64_t p = task / chunks, first = task % chunks * per;
    const int64_t last = first + per < en->node->h ? first + per : en->node->h;
    (void)ctx;
    for (int64_t row = p * en->node->h + first; row < p * en->node->h + last; row++)
        switch ((int)en->channel_block) {
        case 16: forward_row_blocked(e, en, row, 16); break;
        case 8: forward_row_blocked(e, en, row, 8); break;
        default: forward_row_blocked(e, en, row, 1); break;
        }
}

static rb_status forward(rb_engine *e, enode *en, bool training)
{
    const int64_t per = rows_per_task(en);
    (void)training;
    eng_parallel_for(e, en, planes(e, en) * ((en->node->h + per - 1) / per), forward_rows, NULL);
    return RB_OK;
}

/* The transpose: each output row's gradient spread along a row of W_in
 * pixels, then onto its two input rows. A plane at a time: the rows of a
 * plane's gradient gather from several output rows. */
static inline __attribute__((always_inline)) void backward_plane_blocked(const rb_engine *e, enode *en, int64_t p,
                                                                         const int64_t B)
{
    const rb_node *n = en->node, *in = n->in[0];
    const int64_t width = in->w * B;
    const tap *ty = (const tap *)(const void *)(e->arena + en->aux[0].offset), *tx = ty + n->h;
    const float *dy = eng_floats(e, en->diff.offset) + p * n->h * n->w * B;
    float *dx = eng_floats(e, eng_grad_offset(e, en, 0)) + p * in->h * width, *spread = thread_row(e, en);
    const bool nearest = n->attr.upsample.mode == RB_UPSAMPLE_NEAREST;
    memset(dx, 0, (size_t)(in->h * width) * sizeof *dx);
    for (int64_t oy = 0; oy < n->h; oy++) {
        const float *g = dy + oy * n->w * B, wy = ty[oy].w;
        float *r0 = dx + ty[oy].i0 * width, *r1 = dx + ty[oy].i1 * width;
        if (nearest) {
            for (int64_t ox = 0; ox < n->w; ox++)
#pragma omp simd
                for (int64_t k = 0; k < B; k++)
                    r0[tx[ox].i0 * B + k] += g[ox * B + k];
            continue;
        }
        memset(spread, 0, (size_t)width * sizeof *spread);
        for (int64_t ox = 0; ox < n->w; ox++) {
            float *a = spread + tx[ox].i0 * B, *b = spread + tx[ox].i1 * B;
            const float wx = tx[ox].w;
            /* one tap, then the other: they coincide at the border */
#pragma omp simd
            for (int64_t k = 0; k < B; k++)
                a[k] += (1 - wx) * g[ox * B + k];
#pragma omp simd
            for (int64_t k = 0; k < B; k++)
                b[k] += wx * g[ox * B + k];
        }
#pragma omp simd
        for (int64_t i = 0; i < width; i++)
            r0[i] += (1 - wy) * spread[i];
#pragma omp simd
        for (int64_t i = 0; i < width; i++)
            r1[i] += wy * spread[i];
    }
}

RB_VECTOR_CLONES static void backward_plane(const rb_engine *e, enode *en, int64_t p, void *ctx)
{
    (void)ctx;
    switch ((int)en->channel_block) {
    case 16: backward_plane_blocked(e, en, p, 16); break;
    case 8: backward_plane_blocked(e, en, p, 8); break;
    default: backward_plane_blocked(e, en, p, 1); break;
    }
}

static rb_status backward(rb_engine *e, enode *en, bool weight_grads)
{
    (void)weight_grads;
    if (!eng_input_needs_grad(e, en, 0))
        return RB_OK;
    eng_parallel_for(e, en, planes(e, en), backward_plane, NULL);
    return eng_deliver(e, en, 0);
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
    .bind = bind,
    .forward = forward,
    .backward = backward,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
};
