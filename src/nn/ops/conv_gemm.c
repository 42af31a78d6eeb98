/* Convolution gradients computed by matrix products instead of oneDNN's
 * convolution primitives, where those are slow:
 *  - the gradient with respect to an image of few channels (matmul +
 *    col2im), and
 *  - the weight gradient where oneDNN has only its reference
 *    implementation for the shape (im2col + matmul): on CPUs without
 *    AVX-512 oneDNN 2.6 runs, for instance, the backward-weights of a
 *    convolution reading a 1-channel image on its reference kernel, which
 *    took 287 ms of a 605 ms ResNet-18 step on 28x28 Fashion-MNIST.
 * Both work one image at a time in the engine's shared edge scratch. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/op.h"
#include "nn/ops/conv_internal.h"

/* ------------------------------------------------------------ image gradient */

/* The gradient with respect to the image, for a convolution reading it.
 * oneDNN computes backward-data in blocks of 16 input channels, so with 3
 * (RGB) it does 16/3 of the work at a fraction of its speed: the ResNet
 * stem's backward-data took a seventh of a whole PGD step. It is the
 * transposed convolution, so per image:
 *   rows = the node's gradient in plain order (a reorder; K x P: output
 *          channels x output pixels),
 *   cols = W^T x rows (a matmul with the plain K x (C kh kw) weights read
 *          transposed; (C kh kw) x P), and
 *   the image gradient = the sum of each cols entry into the pixel its
 *          kernel tap read (col2im, along contiguous rows of cols).
 * Used where it pays: a single, ungrouped convolution on an image of fewer
 * than 16 channels; both buffers live in the shared edge scratch. */
rb_status conv_plan_image_grad_gemm(rb_engine *e, enode *en, const dnnl_memory_desc_t *dst)
{
    const rb_node *n = en->node, *in = n->in[0];
    const rb_conv_desc *d = &n->attr.conv;
    int64_t pixels = n->h * n->w, taps = in->c * d->kernel[0] * d->kernel[1];
    dnnl_memory_desc_t image, rows, cols, weights;
    dnnl_dims_t image_dims = {1, n->c, n->h, n->w}, rows_dims = {n->c, pixels}, cols_dims = {taps, pixels};
    dnnl_dims_t weight_dims = {taps, n->c};
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd;
    size_t dt_bytes = dst->data_type == dnnl_bf16 ? 2 : 4;
    rb_status s;
    if (n->op != RB_OP_CONV || in->op != RB_OP_INPUT || e->nodes[in->index].consumers != 1 || d->groups != 1 ||
        in->c >= 16 || dst->format_kind != dnnl_blocked ||
        (size_t)dst->format_desc.blocking.strides[0] * dt_bytes * (size_t)e->batch != dnnl_memory_desc_get_size(dst))
        return RB_OK; /* oneDNN's backward-data (images must be contiguous, batch outermost) */
    image = *dst; /* one image of the gradient, in the node's layout */
    image.dims[0] = image.padded_dims[0] = 1;
    en->gemm_image_bytes = (size_t)dst->format_desc.blocking.strides[0] * dt_bytes;
    dnnl_memory_desc_init_by_tag(&rows, 4, image_dims, dnnl_f32, dnnl_abcd); /* K x P */
    DNNL_TRY(dnnl_memory_create(&en->gemm_diff_image, &image, e->eng, DNNL_MEMORY_NONE), "memory", n);
    s = eng_make_reorder(e, &en->gemm_rows_in, &image, &rows, false, n);
    if (s != RB_OK)
        return s;
    eng_md_plain(&rows, 2, rows_dims);
    eng_md_plain(&cols, 2, cols_dims);
    /* W^T: the graph's K x (C kh kw) weights, as they are, read transposed */
    dnnl_memory_desc_init_by_tag(&weights, 2, weight_dims, dnnl_f32, dnnl_ba);
    DNNL_TRY(dnnl_matmul_desc_init(&md, &weights, &rows, NULL, &cols), "image gradient matmul", n);
    DNNL_TRY(dnnl_primitive_desc_create(&pd, &md, e->attr, e->eng, NULL), "image gradient matmul", n);
    eng_warn_if_reference(pd, n, "image gradient matmul");
    s = eng_make_primitive(e, &en->gemm_matmul, pd, n, "image gradient matmul");
    dnnl_primitive_desc_destroy(pd);
    if (s != RB_OK)
        return s;
    DNNL_TRY(dnnl_memory_create(&en->gemm_weights, &weights, e->eng, rb_node_param(e->g, n, RB_SLOT_WEIGHT)->value),
             "memory", n);
    en->gemm_rows_bytes = ((size_t)pixels * (size_t)n->c * sizeof(float) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    eng_need_scratch(e, en->gemm_rows_bytes + (size_t)pixels * (size_t)taps * sizeof(float));
    DNNL_TRY(dnnl_memory_create(&en->gemm_rows, &rows, e->eng, DNNL_MEMORY_NONE), "memory", n);
    DNNL_TRY(dnnl_memory_create(&en->gemm_cols, &cols, e->eng, DNNL_MEMORY_NONE), "memory", n);
    en->image_grad_gemm = true;
    en->in[0].direct = true; /* written straight into the image's plain gradient */
    {
        size_t len = strlen(en->impl);
        snprintf(en->impl + len, sizeof en->impl - len, ", image gradient by matmul + col2im");
    }
    return RB_OK;
}

/* col2im: row `row` (channel c, image row ih) of one image's gradient,
 * summed from cols ((C kh kw) x P, see plan_image_grad_gemm): every kernel
 * tap of every output pixel that read a pixel of this row. Rows are
 * independent, so threads split them without races. */
static void col2im_row(const rb_node *n, const float *cols, float *image, int64_t row)
{
    const rb_node *in = n->in[0];
    const rb_conv_desc *d = &n->attr.conv;
    const int64_t c = row / in->h, ih = row % in->h, kh_n = d->kernel[0], kw_n = d->kernel[1];
    const int64_t sw = d->stride[1], pixels = n->h * n->w;
    float *out = image + row * in->w;
    memset(out, 0, (size_t)in->w * sizeof *out);
    for (int64_t kh = 0; kh < kh_n; kh++) {
        int64_t t = ih + d->padding[0] - kh * d->dilation[0], oh;
        if (t < 0 || t % d->stride[0] != 0 || (oh = t / d->stride[0]) >= n->h)
            continue;
        for (int64_t kw = 0; kw < kw_n; kw++) {
            /* output pixel ow read image column ow * sw + shift */
            const int64_t shift = kw * d->dilation[1] - d->padding[1];
            const int64_t lo = shift >= 0 ? 0 : (-shift + sw - 1) / sw;
            const int64_t hi_raw = in->w - 1 - shift < 0 ? 0 : (in->w - 1 - shift) / sw + 1;
            const int64_t hi = hi_raw < n->w ? hi_raw : n->w;
            const float *tap;
            float *dst;
            if (hi <= lo) /* this tap reads only padding on this row */
                continue;
            tap = cols + ((c * kh_n + kh) * kw_n + kw) * pixels + oh * n->w + lo;
            dst = out + lo * sw + shift;
            if (sw == 1) { /* contiguous: vectorized */
                for (int64_t j = 0; j < hi - lo; j++)
                    dst[j] += tap[j];
            } else {
                for (int64_t j = 0; j < hi - lo; j++)
                    dst[j * sw] += tap[j];
            }
        }
    }
}

/* The image's gradient of a convolution planned by conv_plan_image_grad_gemm,
 * one image at a time (the buffers hold one). Counted as one
 * backward-data. */
rb_status conv_image_grad_by_gemm(rb_engine *e, enode *en)
{
    const rb_node *n = en->node, *in = n->in[0];
    float *image_grad = eng_floats(e, e->nodes[in->index].diff.offset);
    const float *cols = eng_floats(e, e->scratch.offset + en->gemm_rows_bytes);
    const int64_t rows = in->c * in->h, plane = rows * in->w;
    e->counts[RB_PRIM_CONV_BACKWARD_DATA]++;
    for (int64_t b = 0; b < e->batch; b++) {
        eng_args x = {.n = 0};
        float *out = image_grad + b * plane;
        if (dnnl_memory_set_data_handle(en->gemm_diff_image, e->arena + en->diff.offset + (size_t)b * en->gemm_image_bytes) !=
            dnnl_success)
            return eng_dnnl_fail(dnnl_runtime_error, "image gradient", n);
        eng_arg(&x, DNNL_ARG_FROM, en->gemm_diff_image);
        eng_arg(&x, DNNL_ARG_TO, en->gemm_rows);
        eng_arg(&x, DNNL_ARG_SCRATCHPAD, e->scratchpad.mem);
        DNNL_TRY(dnnl_primitive_execute(en->gemm_rows_in, e->stream, x.n, x.a), "image gradient", n);
        x.n = 0;
        eng_arg(&x, DNNL_ARG_SRC, en->gemm_weights);
        eng_arg(&x, DNNL_ARG_WEIGHTS, en->gemm_rows);
        eng_arg(&x, DNNL_ARG_DST, en->gemm_cols);
        eng_arg(&x, DNNL_ARG_SCRATCHPAD, e->scratchpad.mem);
        DNNL_TRY(dnnl_primitive_execute(en->gemm_matmul, e->stream, x.n, x.a), "image gradient", n);
        if (e->threads == 1) { /* see parallel_copy */
            for (int64_t r = 0; r < rows; r++)
                col2im_row(n, cols, out, r);
        } else {
#pragma omp parallel for schedule(static) num_threads(e->threads)
            for (int64_t r = 0; r < rows; r++)
                col2im_row(n, cols, out, r);
        }
    }
    return RB_OK;
}


/* ------------------------------------------------------------ weight gradient */

/* Whether oneDNN's backward-weights is its reference implementation, or the
 * matmul path is forced (RB_ENGINE_WEIGHT_GRAD_GEMM=1, for tests on CPUs
 * where oneDNN has a fast kernel for every shape). */
bool conv_weight_grad_rule_gemm(const_dnnl_primitive_desc_t bwd_w_pd)
{
    const char *impl = NULL, *force = getenv("RB_ENGINE_WEIGHT_GRAD_GEMM");
    if (force != NULL && strcmp(force, "1") == 0)
        return true;
    dnnl_primitive_desc_query(bwd_w_pd, dnnl_query_impl_info_str, 0, &impl);
    return impl != NULL && strncmp(impl, "ref", 3) == 0;
}

/* One image of a batch laid out `md` (blocked, images outermost and
 * contiguous): its descriptor, and the bytes from one image to the next.
 * False when the layout does not keep images apart. */
static bool one_image_md(const dnnl_memory_desc_t *md, int64_t batch, dnnl_memory_desc_t *image, size_t *bytes)
{
    size_t dt_bytes = md->data_type == dnnl_bf16 ? 2 : 4;
    if (md->format_kind != dnnl_blocked ||
        (size_t)md->format_desc.blocking.strides[0] * dt_bytes * (size_t)batch != dnnl_memory_desc_get_size(md))
        return false;
    *image = *md;
    image->dims[0] = image->padded_dims[0] = 1;
    *bytes = (size_t)md->format_desc.blocking.strides[0] * dt_bytes;
    return true;
}

static size_t aligned(size_t bytes)
{
    return (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

bool conv_wgemm_fits(const rb_engine *e, const rb_node *n, const dnnl_memory_desc_t *src,
                     const dnnl_memory_desc_t *dy)
{
    dnnl_memory_desc_t image;
    size_t bytes;
    return n->op == RB_OP_CONV && n->attr.conv.groups == 1 && one_image_md(src, e->batch, &image, &bytes) &&
           one_image_md(dy, e->batch, &image, &bytes);
}

rb_status conv_wgemm_init(rb_engine *e, const rb_node *n, const dnnl_memory_desc_t *src,
                          const dnnl_memory_desc_t *dy, struct conv_wgemm *w)
{
    const rb_node *in = n->in[0];
    const rb_conv_desc *d = &n->attr.conv;
    int64_t pixels = n->h * n->w, taps = in->c * d->kernel[0] * d->kernel[1];
    dnnl_memory_desc_t x_image, dy_image, x_plain, dy_plain;
    dnnl_dims_t x_dims = {1, in->c, in->h, in->w}, dy_dims = {1, n->c, n->h, n->w};
    rb_status s;
    if (!one_image_md(src, e->batch, &x_image, &w->x_image_bytes) ||
        !one_image_md(dy, e->batch, &dy_image, &w->dy_image_bytes))
        return rb_error_set(RB_ERR_INTERNAL, "conv '%s': the weight gradient by matmul needs images kept apart",
                            n->name);
    dnnl_memory_desc_init_by_tag(&x_plain, 4, x_dims, dnnl_f32, dnnl_abcd);
    dnnl_memory_desc_init_by_tag(&dy_plain, 4, dy_dims, dnnl_f32, dnnl_abcd);
    DNNL_TRY(dnnl_memory_create(&w->x_image, &x_image, e->eng, DNNL_MEMORY_NONE), "memory", n);
    DNNL_TRY(dnnl_memory_create(&w->dy_image, &dy_image, e->eng, DNNL_MEMORY_NONE), "memory", n);
    DNNL_TRY(dnnl_memory_create(&w->x_plain, &x_plain, e->eng, DNNL_MEMORY_NONE), "memory", n);
    DNNL_TRY(dnnl_memory_create(&w->dy_plain, &dy_plain, e->eng, DNNL_MEMORY_NONE), "memory", n);
    if ((s = eng_make_reorder(e, &w->x_in, &x_image, &x_plain, false, n)) != RB_OK ||
        (s = eng_make_reorder(e, &w->dy_in, &dy_image, &dy_plain, false, n)) != RB_OK)
        return s;
    w->x_bytes = aligned((size_t)(in->c * in->h * in->w) * sizeof(float));
    w->dy_bytes = aligned((size_t)(n->c * pixels) * sizeof(float));
    w->cols_bytes = (size_t)(taps * pixels) * sizeof(float);
    return RB_OK;
}

void conv_wgemm_free(struct conv_wgemm *w)
{
    dnnl_primitive_t prims[] = {w->x_in, w->dy_in};
    dnnl_memory_t mems[] = {w->x_image, w->dy_image, w->x_plain, w->dy_plain};
    for (size_t k = 0; k < 2; k++)
        if (prims[k])
            dnnl_primitive_destroy(prims[k]);
    for (size_t k = 0; k < 4; k++)
        if (mems[k])
            dnnl_memory_destroy(mems[k]);
    memset(w, 0, sizeof *w);
}

/* The weight gradient of a convolution as a sum over images of
 *   dW (K x C kh kw) += rows (K x P: the node's gradient, plain) x cols^T,
 * cols ((C kh kw) x P) being the image's patches (im2col), and the bias
 * gradient the sum of rows over P. Planned where the choice says so, or
 * by the static rule where oneDNN's backward-weights would be its
 * reference (conv_weight_grad_rule_gemm), for ungrouped convolutions with
 * images kept apart in both layouts; returns with en->weight_grad_gemm
 * false otherwise, and the caller keeps oneDNN's. The scratch holds one
 * image's plain input, its plain gradient and its patches. */
rb_status conv_plan_weight_grad_gemm(rb_engine *e, enode *en, const_dnnl_primitive_desc_t bwd_w_pd,
                                     const dnnl_memory_desc_t *src)
{
    const rb_node *n = en->node;
    rb_status s;
    bool wanted = en->choice.weight_grad == CONV_WGRAD_GEMM ||
                  (en->choice.weight_grad == CONV_WGRAD_RULE && conv_weight_grad_rule_gemm(bwd_w_pd));
    if (!wanted || !conv_wgemm_fits(e, n, src, &en->diff.md))
        return RB_OK;
    if ((s = conv_wgemm_init(e, n, src, &en->diff.md, &en->wgemm)) != RB_OK)
        return s;
    eng_need_scratch(e, en->wgemm.x_bytes + en->wgemm.dy_bytes + en->wgemm.cols_bytes);
    en->weight_grad_gemm = true;
    {
        size_t len = strlen(en->impl);
        snprintf(en->impl + len, sizeof en->impl - len, ", weight gradient by im2col + matmul");
    }
    return RB_OK;
}

/* im2col: row `row` (tap t = (c kh + i) kw + j, output row oh) of one
 * image's patches: cols[t][oh][ow] = x[c][oh s + i dil - pad][ow s + j dil
 * - pad], zero where that falls in the padding. Rows are independent. */
static void im2col_row(const rb_node *n, const float *image, float *cols, int64_t row)
{
    const rb_node *in = n->in[0];
    const rb_conv_desc *d = &n->attr.conv;
    const int64_t oh = row % n->h, t = row / n->h, kh_n = d->kernel[0], kw_n = d->kernel[1];
    const int64_t c = t / (kh_n * kw_n), i = t / kw_n % kh_n, j = t % kw_n, sw = d->stride[1];
    const int64_t ih = oh * d->stride[0] + i * d->dilation[0] - d->padding[0];
    const int64_t shift = j * d->dilation[1] - d->padding[1];
    float *out = cols + t * n->h * n->w + oh * n->w;
    const float *src = image + (c * in->h + ih) * in->w;
    if (ih < 0 || ih >= in->h) {
        memset(out, 0, (size_t)n->w * sizeof *out);
        return;
    }
    for (int64_t ow = 0; ow < n->w; ow++) {
        int64_t iw = ow * sw + shift;
        out[ow] = iw >= 0 && iw < in->w ? src[iw] : 0.0f;
    }
}

rb_status conv_wgemm_run(rb_engine *e, const rb_node *n, const struct conv_wgemm *w, const void *x_base,
                         const void *dy_base, unsigned char *scratch, dnnl_memory_t scratchpad, float *dw, float *db,
                         bool accumulate)
{
    const rb_node *in = n->in[0];
    const rb_conv_desc *d = &n->attr.conv;
    const int64_t pixels = n->h * n->w, taps = in->c * d->kernel[0] * d->kernel[1], k_out = n->c;
    const int64_t col_rows = taps * n->h;
    const float *image = (const float *)(void *)scratch;
    const float *rows = (const float *)(void *)(scratch + w->x_bytes);
    float *cols = (float *)(void *)(scratch + w->x_bytes + w->dy_bytes);
    if (dnnl_memory_set_data_handle(w->x_plain, scratch) != dnnl_success ||
        dnnl_memory_set_data_handle(w->dy_plain, scratch + w->x_bytes) != dnnl_success)
        return eng_dnnl_fail(dnnl_runtime_error, "weight gradient", n);
    for (int64_t i = 0; i < e->batch; i++) {
        float beta = i == 0 && !accumulate ? 0.0f : 1.0f;
        eng_args a = {.n = 0};
        if (dnnl_memory_set_data_handle(w->x_image, (unsigned char *)x_base + (size_t)i * w->x_image_bytes) !=
                dnnl_success ||
            dnnl_memory_set_data_handle(w->dy_image, (unsigned char *)dy_base + (size_t)i * w->dy_image_bytes) !=
                dnnl_success)
            return eng_dnnl_fail(dnnl_runtime_error, "weight gradient", n);
        eng_arg(&a, DNNL_ARG_FROM, w->x_image);
        eng_arg(&a, DNNL_ARG_TO, w->x_plain);
        eng_arg(&a, DNNL_ARG_SCRATCHPAD, scratchpad);
        DNNL_TRY(dnnl_primitive_execute(w->x_in, e->stream, a.n, a.a), "weight gradient", n);
        a.n = 0;
        eng_arg(&a, DNNL_ARG_FROM, w->dy_image);
        eng_arg(&a, DNNL_ARG_TO, w->dy_plain);
        eng_arg(&a, DNNL_ARG_SCRATCHPAD, scratchpad);
        DNNL_TRY(dnnl_primitive_execute(w->dy_in, e->stream, a.n, a.a), "weight gradient", n);
        if (e->threads == 1) { /* see parallel_copy */
            for (int64_t r = 0; r < col_rows; r++)
                im2col_row(n, image, cols, r);
        } else {
#pragma omp parallel for schedule(static) num_threads(e->threads)
            for (int64_t r = 0; r < col_rows; r++)
                im2col_row(n, image, cols, r);
        }
        /* row-major: dW (K x taps) = beta dW + rows (K x P) x cols^T (P x taps) */
        if (dnnl_sgemm('N', 'T', k_out, taps, pixels, 1.0f, rows, pixels, cols, pixels, beta, dw, taps) !=
            dnnl_success)
            return eng_dnnl_fail(dnnl_runtime_error, "weight gradient matmul", n);
        if (db != NULL)
            for (int64_t k = 0; k < k_out; k++) {
                float sum = 0.0f;
                for (int64_t p = 0; p < pixels; p++)
                    sum += rows[k * pixels + p];
                db[k] = beta != 0.0f ? db[k] + sum : sum;
            }
    }
    return RB_OK;
}

/* The weight (and bias) gradient of a convolution planned by
 * conv_plan_weight_grad_gemm, into the graph's plain gradients: written,
 * or added where the parameters are shared (rb_graph_reuse zeroes them
 * first). Counted as one backward-weights. */
rb_status conv_weight_grad_by_gemm(rb_engine *e, enode *en, dnnl_memory_t x)
{
    const rb_node *n = en->node;
    rb_param_tensor *w = rb_node_param(e->g, n, RB_SLOT_WEIGHT), *b = rb_node_param(e->g, n, RB_SLOT_BIAS);
    void *x_base = NULL, *dy_base = NULL;
    if (dnnl_memory_get_data_handle(x, &x_base) != dnnl_success || x_base == NULL ||
        dnnl_memory_get_data_handle(en->diff.mem, &dy_base) != dnnl_success || dy_base == NULL)
        return eng_dnnl_fail(dnnl_runtime_error, "weight gradient", n);
    e->counts[RB_PRIM_CONV_BACKWARD_WEIGHTS]++;
    return conv_wgemm_run(e, n, &en->wgemm, x_base, dy_base, e->arena + e->scratch.offset, e->scratchpad.mem, w->grad,
                          b != NULL ? b->grad : NULL, en->grads_add);
}

/* ------------------------------------------------------------ binding */

/* The image gradient's buffers live in the shared edge scratch (the
 * weight gradient's are pointed there as it runs). */
rb_status conv_gemm_bind(rb_engine *e, enode *en)
{
    unsigned char *scratch = e->arena + e->scratch.offset;
    if (en->image_grad_gemm &&
        (dnnl_memory_set_data_handle(en->gemm_rows, scratch) != dnnl_success ||
         dnnl_memory_set_data_handle(en->gemm_cols, scratch + en->gemm_rows_bytes) != dnnl_success))
        return rb_error_set(RB_ERR_INTERNAL, "engine: cannot bind arena memory");
    return RB_OK;
}
