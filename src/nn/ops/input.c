/* The graph's input: images in [0, 1], normalized per channel,
 * (x - mean[c]) / std[c]. The engine keeps it plain (batch x C x H x W),
 * its gradient too: rb_engine_input_grad divides it by std. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/op.h"

rb_status rb_graph_input(rb_graph *g, int64_t channels, int64_t height, int64_t width, const float *mean,
                         const float *std, rb_node **out)
{
    rb_node *n;
    rb_status s;
    if (g->input != NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "input: the graph already has one ('%s')", g->input->name);
    if (channels < 1 || height < 1 || width < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "input: shape %lldx%lldx%lld has an empty dimension",
                            (long long)channels, (long long)height, (long long)width);
    if ((mean == NULL) != (std == NULL))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "input: give both mean and std, or neither");
    for (int64_t c = 0; std != NULL && c < channels; c++)
        if (!(std[c] > 0) || !isfinite(std[c]) || !isfinite(mean[c]))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "input: channel %lld has mean %g and std %g; std must be positive and both finite",
                                (long long)c, mean[c], std[c]);
    s = graph_add_node(g, RB_OP_INPUT, "input", NULL, 0, channels, height, width, &n);
    if (s != RB_OK)
        return s;
    if (mean != NULL) {
        n->attr.input.mean = malloc((size_t)channels * sizeof(float));
        n->attr.input.std = malloc((size_t)channels * sizeof(float));
        if (n->attr.input.mean == NULL || n->attr.input.std == NULL) {
            free(n->attr.input.mean);
            free(n->attr.input.std);
            graph_drop_last_node(g);
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "input: out of memory");
        }
        memcpy(n->attr.input.mean, mean, (size_t)channels * sizeof(float));
        memcpy(n->attr.input.std, std, (size_t)channels * sizeof(float));
    }
    g->input = n;
    *out = n;
    return RB_OK;
}

static void free_attr(rb_node *n)
{
    free(n->attr.input.mean);
    free(n->attr.input.std);
}

/* ------------------------------------------------------------ engine */

static rb_status plan(rb_engine *e, enode *en)
{
    dnnl_memory_desc_t md;
    rb_status s;
    eng_md_node_plain(e, en->node, &md);
    s = eng_slot_plan(e, &en->value, &md, en->node);
    if (s == RB_OK)
        s = eng_diff_plan(e, &en->diff, &en->value.md, en->node);
    return s;
}

/* Image plane `plane` (example x channel) of `images`, normalized into `x`. */
static void normalize_plane(const rb_node *n, int64_t plane, const float *images, float *x, int64_t hw)
{
    int64_t c = plane % n->c;
    const float *src = images + plane * hw;
    float *dst = x + plane * hw;
    if (n->attr.input.mean) {
        float m = n->attr.input.mean[c], inv = 1.0f / n->attr.input.std[c];
        for (int64_t p = 0; p < hw; p++)
            dst[p] = (src[p] - m) * inv;
    } else {
        memcpy(dst, src, (size_t)hw * sizeof *dst);
    }
}

/* One image plane per iteration: independent, so any thread count gives
 * the same values. */
static rb_status forward(rb_engine *e, enode *en, bool training)
{
    const rb_node *n = en->node;
    float *x = eng_floats(e, en->value.offset);
    int64_t hw = n->h * n->w;
    (void)training;
    if (e->threads == 1) { /* see eng_parallel_copy */
        for (int64_t plane = 0; plane < e->batch * n->c; plane++)
            normalize_plane(n, plane, e->images, x, hw);
    } else {
#pragma omp parallel for schedule(static) num_threads(e->threads)
        for (int64_t plane = 0; plane < e->batch * n->c; plane++)
            normalize_plane(n, plane, e->images, x, hw);
    }
    return RB_OK;
}

/* ------------------------------------------------------------ reference */

static rb_status ref_forward(rb_reference *r, const rb_node *n, bool training)
{
    int64_t hw = n->h * n->w;
    double *y = ref_value(r, n);
    (void)training;
    for (int64_t b = 0; b < r->batch; b++)
        for (int64_t c = 0; c < n->c; c++)
            for (int64_t p = 0; p < hw; p++) {
                int64_t k = (b * n->c + c) * hw + p;
                y[k] = n->attr.input.mean ? (r->images[k] - n->attr.input.mean[c]) / n->attr.input.std[c]
                                          : r->images[k];
            }
    return RB_OK;
}

static rb_status ref_backward(rb_reference *r, const rb_node *n, bool weight_grads)
{
    int64_t hw = n->h * n->w;
    const double *dy = ref_grad(r, n);
    (void)weight_grads;
    if (!r->have_input_grad)
        return RB_OK;
    for (int64_t b = 0; b < r->batch; b++)
        for (int64_t c = 0; c < n->c; c++)
            for (int64_t p = 0; p < hw; p++) {
                int64_t k = (b * n->c + c) * hw + p;
                r->input_grad[k] = n->attr.input.std ? dy[k] / n->attr.input.std[c] : dy[k];
            }
    return RB_OK;
}

const rb_op_def rb_op_input = {
    .op = RB_OP_INPUT,
    .name = "input",
    .free_attr = free_attr,
    .plan = plan,
    .forward = forward,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
};
