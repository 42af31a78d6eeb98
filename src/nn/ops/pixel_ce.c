/* Per-pixel softmax cross-entropy against masks, with an ignore label:
 * F.cross_entropy(logits, mask, ignore_index=L), the mean over the batch's
 * counted pixels. Plain C on plain logits: one pass computes the softmax
 * (kept for backward) and per-row sums, which are added in a fixed order,
 * so the result does not depend on the thread count. */
#include "config.h"

#include <math.h>
#include <stdio.h>

#include "nn/op.h"
#include "tensor/vmath.h"

rb_status rb_graph_pixel_cross_entropy(rb_graph *g, rb_node *logits, rb_node *masks, int64_t ignore_label,
                                       rb_node **out)
{
    rb_node *in[2] = {logits, masks};
    rb_node *n;
    rb_status s = graph_check_node(g, RB_OP_PIXEL_CE, NULL, in, 2);
    if (s != RB_OK)
        return s;
    if (masks->op != RB_OP_TARGET || masks->attr.target != RB_TARGET_MASKS)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "pixel cross-entropy on '%s': its second input '%s' must be the masks target "
                            "(rb_graph_target(g, RB_TARGET_MASKS, ...))",
                            logits->name, masks->name);
    if (logits->c < 2)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "pixel cross-entropy on '%s': it needs logits of K >= 2 classes per pixel, but '%s' has %lld",
                            logits->name, logits->name, (long long)logits->c);
    if (logits->h != masks->h || logits->w != masks->w)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "pixel cross-entropy on '%s': its logits are %lldx%lld but the masks are %lldx%lld (the "
                            "image's size); upsample the logits to the image first",
                            logits->name, (long long)logits->h, (long long)logits->w, (long long)masks->h,
                            (long long)masks->w);
    s = graph_add_node(g, RB_OP_PIXEL_CE, NULL, in, 2, 1, 1, 1, &n);
    if (s != RB_OK)
        return s;
    n->attr.ignore_label = ignore_label;
    *out = n;
    return RB_OK;
}

static bool passes_grad(const rb_node *n, size_t k)
{
    (void)n;
    return k == 0; /* the masks get none */
}

/* ------------------------------------------------------------ engine */

/* aux[0]: per (example, row) the loss sum and the counted pixels, doubles */
static rb_status plan(rb_engine *e, enode *en)
{
    const rb_node *n = en->node, *logits = n->in[0];
    dnnl_memory_desc_t plain, lmd, rows;
    dnnl_dims_t ldims = {e->batch, 1}, rdims = {e->batch * logits->h * 2 * (int64_t)sizeof(double)};
    rb_status s;
    eng_md_node_plain(e, logits, &plain);
    eng_md_plain(&lmd, 2, ldims);
    dnnl_memory_desc_init_by_tag(&rows, 1, rdims, dnnl_u8, dnnl_a);
    snprintf(en->impl, sizeof en->impl, "robusta:pixel_cross_entropy");
    s = eng_plan_input(e, en, 0, &plain);
    if (s == RB_OK)
        s = eng_value_plan(e, en, &lmd);
    if (s == RB_OK)
        s = eng_diff_plan(e, &en->diff, &lmd, n);
    if (s == RB_OK) /* softmax probabilities, kept for backward */
        s = eng_slot_plan(e, &en->workspace, &plain, n);
    if (s == RB_OK)
        s = eng_slot_plan(e, &en->aux[0], &rows, n);
    if (s == RB_OK)
        s = eng_plan_grad_edge(e, en, 0, &plain);
    return s;
}

static rb_status check_targets(rb_engine *e, enode *en, const rb_targets *t)
{
    const rb_node *n = en->node;
    int64_t k = n->in[0]->c, plane = n->in[0]->h * n->in[0]->w;
    if (t->masks == NULL) /* the masks target node says so first; this is for completeness */
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: '%s' needs masks", n->name);
    for (int64_t i = 0; i < e->batch * plane; i++) {
        int32_t v = t->masks[i];
        if (v != n->attr.ignore_label && (v < 0 || v >= k))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "engine: mask of example %lld has class %d at pixel (x %lld, y %lld), outside [0, "
                                "%lld) and not the ignore label %lld",
                                (long long)(i / plane), (int)v, (long long)(i % plane % n->in[0]->w),
                                (long long)(i % plane / n->in[0]->w), (long long)k, (long long)n->attr.ignore_label);
    }
    return RB_OK;
}

/* One row of one example: softmax over K per pixel, the loss summed over
 * the counted pixels. Pixels go in blocks along the row, so that each pass
 * over the classes reads and writes contiguous floats and vectorizes, with
 * one exponential per logit (kept, then scaled). */
#define PIXEL_BLOCK 64
RB_VECTOR_CLONES static void forward_row(const rb_engine *e, enode *en, int64_t row, void *ctx)
{
    const rb_node *n = en->node, *l = n->in[0];
    const int64_t b = row / l->h, y = row % l->h, k = l->c, hw = l->h * l->w;
    const float *z = eng_floats(e, eng_input_offset(e, en, 0)) + b * k * hw + y * l->w;
    float *prob = eng_floats(e, en->workspace.offset) + b * k * hw + y * l->w;
    double *sums = (double *)(void *)(e->arena + en->aux[0].offset);
    const int32_t *mask = e->targets.masks + b * hw + y * l->w;
    double loss = 0, counted = 0;
    (void)ctx;
    for (int64_t x0 = 0; x0 < l->w; x0 += PIXEL_BLOCK) {
        const int64_t len = l->w - x0 < PIXEL_BLOCK ? l->w - x0 : PIXEL_BLOCK;
        float top[PIXEL_BLOCK], sum[PIXEL_BLOCK];
        for (int64_t j = 0; j < len; j++) {
            top[j] = z[x0 + j];
            sum[j] = 0;
        }
        for (int64_t c = 1; c < k; c++)
#pragma omp simd
            for (int64_t j = 0; j < len; j++)
                top[j] = rb_vpositive(top[j] - z[c * hw + x0 + j]) ? top[j] : z[c * hw + x0 + j];
        for (int64_t c = 0; c < k; c++)
#pragma omp simd
            for (int64_t j = 0; j < len; j++) {
                const float v = rb_vexpf(z[c * hw + x0 + j] - top[j]);
                prob[c * hw + x0 + j] = v;
                sum[j] += v;
            }
        for (int64_t j = 0; j < len; j++) {
            const int32_t m = mask[x0 + j];
            if (m != n->attr.ignore_label) {
                loss += (double)top[j] + log((double)sum[j]) - (double)z[m * hw + x0 + j];
                counted += 1;
            }
            sum[j] = 1.0f / sum[j];
        }
        for (int64_t c = 0; c < k; c++)
#pragma omp simd
            for (int64_t j = 0; j < len; j++)
                prob[c * hw + x0 + j] *= sum[j];
    }
    sums[2 * row] = loss;
    sums[2 * row + 1] = counted;
}

static rb_status forward(rb_engine *e, enode *en, bool training)
{
    const rb_node *n = en->node;
    float *loss = eng_floats(e, en->value.offset);
    double *sums = (double *)(void *)(e->arena + en->aux[0].offset), counted = 0;
    const int64_t rows = e->batch * n->in[0]->h;
    (void)training;
    eng_parallel_for(e, en, rows, forward_row, NULL);
    for (int64_t row = 0; row < rows; row++)
        counted += sums[2 * row + 1];
    en->op_scalar = counted;
    for (int64_t b = 0; b < e->batch; b++) {
        double total = 0;
        for (int64_t y = 0; y < n->in[0]->h; y++)
            total += sums[2 * (b * n->in[0]->h + y)];
        /* the example's share of the batch mean, times the batch size */
        loss[b] = counted > 0 ? (float)(total * (double)e->batch / counted) : 0.0f;
    }
    return RB_OK;
}

/* d mean / d z = (softmax - onehot) / counted pixels; 0 where ignored */
RB_VECTOR_CLONES static void backward_row(const rb_engine *e, enode *en, int64_t row, void *ctx)
{
    const rb_node *l = en->node->in[0];
    const float *prob = eng_floats(e, en->workspace.offset);
    float *dz = eng_floats(e, eng_grad_offset(e, en, 0));
    const int64_t hw = l->h * l->w, k = l->c, b = row / l->h, y = row % l->h;
    const float scale = en->op_scalar > 0 ? (float)(1.0 / en->op_scalar) : 0.0f;
    const int64_t ignore = en->node->attr.ignore_label;
    const int32_t *mask = e->targets.masks + b * hw + y * l->w;
    (void)ctx;
    for (int64_t c = 0; c < k; c++) {
        const float *pp = prob + (b * k + c) * hw + y * l->w;
        float *dp = dz + (b * k + c) * hw + y * l->w;
        for (int64_t x = 0; x < l->w; x++)
            dp[x] = mask[x] == ignore ? 0.0f : (pp[x] - (mask[x] == c ? 1.0f : 0.0f)) * scale;
    }
}

static rb_status backward(rb_engine *e, enode *en, bool weight_grads)
{
    (void)weight_grads;
    eng_parallel_for(e, en, e->batch * en->node->in[0]->h, backward_row, NULL);
    return eng_deliver(e, en, 0);
}

/* The softmax is read from the workspace, not the logits. */
static bool reads_input(const rb_engine *e, const enode *en, size_t k)
{
    (void)e;
    (void)en;
    (void)k;
    return false;
}

/* ------------------------------------------------------------ reference */

static size_t ref_saved(const rb_node *n, int64_t batch)
{
    return (size_t)(batch * ref_node_size(n->in[0]) + 1); /* probabilities, then the counted pixels */
}

static rb_status ref_forward(rb_reference *r, const rb_node *n, bool training)
{
    const rb_node *l = n->in[0];
    int64_t k = l->c, hw = l->h * l->w;
    const double *z = ref_value(r, l);
    double *prob = r->saved[n->index], *loss = ref_value(r, n), counted = 0;
    const int32_t *mask = r->targets.masks;
    (void)training;
    if (mask == NULL || r->targets.mask_height != l->h || r->targets.mask_width != l->w)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "reference: '%s' needs %lldx%lld masks", n->name,
                            (long long)l->w, (long long)l->h);
    for (int64_t b = 0; b < r->batch; b++) {
        loss[b] = 0;
        for (int64_t p = 0; p < hw; p++) {
            int32_t m = mask[b * hw + p];
            double top = -INFINITY, sum = 0;
            for (int64_t c = 0; c < k; c++)
                top = fmax(top, z[(b * k + c) * hw + p]);
            for (int64_t c = 0; c < k; c++)
                sum += exp(z[(b * k + c) * hw + p] - top);
            for (int64_t c = 0; c < k; c++)
                prob[(b * k + c) * hw + p] = exp(z[(b * k + c) * hw + p] - top) / sum;
            if (m == n->attr.ignore_label)
                continue;
            if (m < 0 || m >= k)
                return rb_error_set(RB_ERR_INVALID_ARGUMENT, "reference: mask value %d outside [0, %lld)", (int)m,
                                    (long long)k);
            loss[b] += top + log(sum) - z[(b * k + m) * hw + p];
            counted += 1;
        }
    }
    for (int64_t b = 0; b < r->batch; b++)
        loss[b] = counted > 0 ? loss[b] * (double)r->batch / counted : 0;
    prob[r->batch * k * hw] = counted;
    return RB_OK;
}

static rb_status ref_backward(rb_reference *r, const rb_node *n, bool weight_grads)
{
    const rb_node *l = n->in[0];
    int64_t k = l->c, hw = l->h * l->w;
    const double *prob = r->saved[n->index], *dy = ref_grad(r, n);
    double *dz = ref_grad(r, l), counted = prob[r->batch * k * hw];
    (void)weight_grads;
    if (counted == 0)
        return RB_OK;
    /* d loss_b / d z = batch * (softmax - onehot) / counted, for example b's pixels */
    for (int64_t b = 0; b < r->batch; b++)
        for (int64_t p = 0; p < hw; p++) {
            int32_t m = r->targets.masks[b * hw + p];
            if (m == n->attr.ignore_label)
                continue;
            for (int64_t c = 0; c < k; c++)
                dz[(b * k + c) * hw + p] +=
                    dy[b] * (double)r->batch * (prob[(b * k + c) * hw + p] - (c == m ? 1.0 : 0.0)) / counted;
        }
    return RB_OK;
}

const rb_op_def rb_op_pixel_ce = {
    .op = RB_OP_PIXEL_CE,
    .name = "pixel_cross_entropy",
    .loss = true,
    .passes_grad = passes_grad,
    .plan = plan,
    .check_targets = check_targets,
    .forward = forward,
    .backward = backward,
    .reads_input = reads_input,
    .ref_saved = ref_saved,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
};
