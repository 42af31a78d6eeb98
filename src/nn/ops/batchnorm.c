/* Batch-norm as PyTorch's BatchNorm2d (eps 1e-5, momentum 0.1, the
 * unbiased running variance): builder, oneDNN plans with batch or running
 * statistics, a following ReLU fused in (fuse_norm_relu), the data-only
 * backward of attacks, statistics over a job's ranks (--sync-bn), and the
 * double-precision reference. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <robusta/dist.h>

#include "nn/op.h"

rb_status rb_graph_batchnorm(rb_graph *g, const char *name, rb_node *in, rb_node **out)
{
    rb_node *n;
    int64_t shape[1];
    rb_status s = graph_check_node(g, RB_OP_BATCHNORM, name, &in, 1);
    if (s != RB_OK)
        return s;
    if (name == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "batchnorm: a batch-norm needs a name for its parameters");
    s = graph_add_node(g, RB_OP_BATCHNORM, name, &in, 1, in->c, in->h, in->w, &n);
    if (s != RB_OK)
        return s;
    shape[0] = in->c;
    s = graph_add_param(g, n, RB_SLOT_WEIGHT, "weight", 1, shape, true);
    if (s == RB_OK)
        s = graph_add_param(g, n, RB_SLOT_BIAS, "bias", 1, shape, true);
    if (s == RB_OK)
        s = graph_add_param(g, n, RB_SLOT_RUNNING_MEAN, "running_mean", 1, shape, false);
    if (s == RB_OK)
        s = graph_add_param(g, n, RB_SLOT_RUNNING_VAR, "running_var", 1, shape, false);
    if (s != RB_OK) {
        graph_drop_last_node(g);
        return s;
    }
    for (int64_t c = 0; c < in->c; c++) {
        g->params[n->param[RB_SLOT_WEIGHT]].value[c] = 1.0f;
        g->params[n->param[RB_SLOT_RUNNING_VAR]].value[c] = 1.0f;
    }
    *out = n;
    return RB_OK;
}

/* weight and running_var 1; bias and running_mean 0 */
static void init_param(rb_graph *g, rb_node *n, rb_param_tensor *p, rb_rng *rng)
{
    float v = (p == rb_node_param(g, n, RB_SLOT_WEIGHT) || p == rb_node_param(g, n, RB_SLOT_RUNNING_VAR)) ? 1.0f : 0.0f;
    (void)rng;
    for (int64_t k = 0; k < p->numel; k++)
        p->value[k] = v;
}

/* ------------------------------------------------------------ engine */


/* The ReLU that batch-norm `en` can run fused (oneDNN's fuse_norm_relu):
 * its only consumer, when the ReLU would run in place anyway (see
 * relu_in_place) and intermediates are not kept; NULL otherwise. */
static enode *fusable_relu(rb_engine *e, const enode *en)
{
    if (e->keep_intermediates || en->consumers != 1)
        return NULL;
    if (eng_is_published(e, en->node))
        return NULL;
    for (size_t j = en->node->index + 1; j < e->n; j++)
        if (e->nodes[j].node->n_in > 0 && e->nodes[j].node->in[0] == en->node)
            return e->nodes[j].node->op == RB_OP_RELU ? &e->nodes[j] : NULL;
    return NULL;
}

static rb_status plan(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    enode *producer = &e->nodes[n->in[0]->index];
    const dnnl_memory_desc_t *data = &producer->value.md;
    dnnl_memory_desc_t stat;
    dnnl_dims_t cdims = {n->c};
    rb_status s = RB_OK;
    const float eps = (float)RB_BATCHNORM_EPS;
    const bool sync_planned = e->sync_bn_batch > 0 && !e->data_grads_only;
    eng_md_plain(&stat, 1, cdims);

    /* --sync-bn computes the input gradient in a loop of its own, from the
     * gradient the following ReLU leaves (so that ReLU is not fused in),
     * in the layouts that loop knows */
    en->relu_follows = !sync_planned && fusable_relu(e, en) != NULL;
    if (sync_planned) {
        en->channel_block = data->data_type == dnnl_f32 ? eng_channel_block(e, n->in[0], data) : 0;
        if (en->channel_block == 0)
            return rb_error_set(RB_ERR_UNSUPPORTED,
                                "batch-norm '%s': --sync-bn needs its input in f32 and the nchw, nChw8c or nChw16c "
                                "layout; this one is not (train without --sync-bn, or in f32)", n->name);
        /* its sums and coefficients, 5 C doubles, so that steps allocate nothing */
        dnnl_dims_t scratch_dims = {10 * n->c};
        dnnl_memory_desc_t scratch;
        eng_md_plain(&scratch, 1, scratch_dims);
        if ((s = eng_slot_plan(e, &en->aux[0], &scratch, n)) != RB_OK)
            return s;
    }
    s = eng_value_plan(e, en, data);
    if (s == RB_OK)
        s = eng_diff_plan(e, &en->diff, data, n);
    if (s == RB_OK)
        s = eng_slot_plan(e, &en->mean, &stat, n);
    if (s == RB_OK)
        s = eng_slot_plan(e, &en->variance, &stat, n);
    if (s != RB_OK)
        return s;
#define BN_MEM(field, slot_)                                                                     \
    DNNL_TRY(dnnl_memory_create(&en->field, &stat, e->eng, rb_node_param(e->g, n, slot_)->value), \
             "batch-norm memory", n)
    BN_MEM(scale, RB_SLOT_WEIGHT);
    BN_MEM(shift, RB_SLOT_BIAS);
    BN_MEM(running_mean, RB_SLOT_RUNNING_MEAN);
    BN_MEM(running_var, RB_SLOT_RUNNING_VAR);
#undef BN_MEM
    DNNL_TRY(dnnl_memory_create(&en->diff_scale, &stat, e->eng, rb_node_param(e->g, n, RB_SLOT_WEIGHT)->grad),
             "batch-norm memory", n);
    DNNL_TRY(dnnl_memory_create(&en->diff_shift, &stat, e->eng, rb_node_param(e->g, n, RB_SLOT_BIAS)->grad),
             "batch-norm memory", n);
    /* [0]: batch statistics; [1]: running statistics, still with a
     * training-kind forward so that a backward (attacks) can follow.
     * Backward: the full one (input and scale/shift gradients) for
     * training; data-only, with batch statistics oneDNN's backward-data
     * where it has one (2.6 has none with a scale), with running statistics
     * the inference forward applied to the gradient (see below). Engines
     * that never train plan no full backward unless it is the only way to
     * the input gradient. */
    for (int mode = 0; mode < 2; mode++) {
        unsigned flags = dnnl_use_scale | dnnl_use_shift | (mode ? dnnl_use_global_stats : 0u) |
                         (en->relu_follows ? dnnl_fuse_norm_relu : 0u);
        dnnl_batch_normalization_desc_t fd, bd;
        dnnl_primitive_desc_t fpd, bpd;
        const char *impl = NULL;
        DNNL_TRY(dnnl_batch_normalization_forward_desc_init(&fd, dnnl_forward_training, data, eps, flags),
                 "batch-norm forward", n);
        DNNL_TRY(dnnl_primitive_desc_create(&fpd, &fd, e->attr, e->eng, NULL), "batch-norm forward", n);
        if (mode == 0) {
            dnnl_primitive_desc_query(fpd, dnnl_query_impl_info_str, 0, &impl);
            snprintf(en->impl, sizeof en->impl, "%s", impl ? impl : "?");
        }
        s = eng_make_primitive(e, &en->fwd[mode], fpd, n, "batch-norm forward");
        if (s == RB_OK && mode == 0 && en->relu_follows) {
            /* the fused ReLU's mask, written by either forward, read by backward */
            const dnnl_memory_desc_t *ws = eng_query(fpd, dnnl_query_workspace_md);
            if (ws == NULL || dnnl_memory_desc_get_size(ws) == 0)
                s = eng_dnnl_fail(dnnl_unimplemented, "batch-norm with a fused ReLU (no workspace)", n);
            else
                s = eng_slot_plan(e, &en->workspace, ws, n);
        }
        for (int full = mode; s == RB_OK && full < 2; full++) {
            if (full && e->data_grads_only && (mode == 1 || en->bwd_data[mode] != NULL))
                break;
            if (dnnl_batch_normalization_backward_desc_init(&bd, full ? dnnl_backward : dnnl_backward_data,
                                                            data, data, eps, flags) != dnnl_success ||
                dnnl_primitive_desc_create(&bpd, &bd, e->attr, e->eng, fpd) != dnnl_success) {
                /* Without a data-only backward the full one runs, its
                 * parameter gradients going to a discard buffer. */
                if (!full)
                    continue;
                s = eng_dnnl_fail(dnnl_unimplemented, "batch-norm backward", n);
                break;
            }
            s = eng_make_primitive(e, full ? &en->bwd_full[mode] : &en->bwd_data[mode], bpd, n, "batch-norm backward");
            dnnl_primitive_desc_destroy(bpd);
        }
        if (s == RB_OK && mode == 0 && (en->bwd_data[mode] == NULL || sync_planned) && en->discard_scale.mem == NULL) {
            s = eng_slot_plan(e, &en->discard_scale, &stat, n);
            if (s == RB_OK)
                s = eng_slot_plan(e, &en->discard_shift, &stat, n);
        }
        dnnl_primitive_desc_destroy(fpd);
        if (s != RB_OK)
            return s;
    }
    /* Running statistics make batch-norm affine: its input gradient is
     * diff_dst * gamma / sqrt(running_var + eps) per channel (PyTorch's
     * eval-mode backward), which is the inference forward itself applied to
     * the gradient with a zero mean and shift: fwd[1] on zeros (with a
     * fused ReLU, a copy of it without the ReLU: the ReLU's mask is applied
     * to the gradient first, by the ReLU node). */
    s = eng_slot_plan(e, &en->zeros, &stat, n);
    if (s == RB_OK && en->relu_follows) {
        dnnl_batch_normalization_desc_t fd;
        dnnl_primitive_desc_t fpd;
        DNNL_TRY(dnnl_batch_normalization_forward_desc_init(&fd, dnnl_forward_training, data, eps,
                                                            dnnl_use_scale | dnnl_use_shift | dnnl_use_global_stats),
                 "batch-norm forward", n);
        DNNL_TRY(dnnl_primitive_desc_create(&fpd, &fd, e->attr, e->eng, NULL), "batch-norm forward", n);
        s = eng_make_primitive(e, &en->affine, fpd, n, "batch-norm forward");
        dnnl_primitive_desc_destroy(fpd);
    }
    if (s != RB_OK)
        return s;
    return eng_plan_grad_edge(e, en, 0, data);
}

/* Batch statistics in a training step, unless the node's are frozen. */
static bool batch_statistics(const rb_node *n, bool training)
{
    return training && !n->frozen_statistics;
}

/* --sync-bn (rb_engine_options.sync_bn_batch): whether this pass takes
 * its statistics over the job's whole batch. Not while this rank works
 * alone (rb_dist_set_alone) nor in an engine without weight gradients. */
static bool synchronized(const rb_engine *e)
{
    return e->sync_bn_batch > 0 && rb_dist_size() > 1 && !e->data_grads_only;
}

/* The whole batch's mean and biased variance from each rank's (oneDNN's
 * batch statistics over its share, in the mean and variance slots), by
 * Chan's combination: the mean of the means, then the shares' variances
 * plus their means' spread around it, each summed over the ranks. The
 * slots then hold the job's statistics. */
static rb_status synchronize_statistics(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    const int64_t C = n->c;
    const double share = (double)(e->batch * n->h * n->w), total = (double)(e->sync_bn_batch * n->h * n->w);
    float *mean = eng_floats(e, en->mean.offset), *var = eng_floats(e, en->variance.offset);
    double *sums = eng_doubles(e, en->aux[0].offset), *means = sums + C;
    rb_status s;
    for (int64_t c = 0; c < C; c++)
        means[c] = share * mean[c];
    if ((s = rb_dist_allreduce_sum(means, (size_t)C, RB_DIST_F64)) == RB_OK) {
        for (int64_t c = 0; c < C; c++) {
            double d = mean[c] - means[c] / total;
            sums[c] = share * (var[c] + d * d);
        }
        s = rb_dist_allreduce_sum(sums, (size_t)C, RB_DIST_F64);
    }
    if (s == RB_OK)
        for (int64_t c = 0; c < C; c++) {
            mean[c] = (float)(means[c] / total);
            var[c] = (float)(sums[c] / total);
        }
    return s == RB_OK ? RB_OK : rb_error_prefix("batch-norm '%s' (--sync-bn): ", n->name);
}

/* dx = coef[3c] dy + coef[3c+1] (x - mean[c]) + coef[3c+2] for every
 * element of channel c (the layout of x, dy and dx: nchw, nChw8c or
 * nChw16c, channel_block 1, 8, 16). */
static void write_input_gradient(const rb_engine *e, const enode *en, const float *x, const float *dy, float *dx,
                                 const float *mean, const double *coef)
{
    const rb_node *n = en->node;
    const int64_t B = en->channel_block, hw = n->h * n->w, blocks = (n->c + B - 1) / B;
    for (int64_t t = 0; t < e->batch * blocks; t++) {
        const int64_t c0 = t % blocks * B, lanes = n->c - c0 < B ? n->c - c0 : B;
        const size_t at = (size_t)(t * hw * B);
        for (int64_t k = 0; k < lanes; k++) {
            const double *cf = coef + 3 * (c0 + k);
            const float a = (float)cf[0], b = (float)cf[1], c = (float)cf[2], m = mean[c0 + k];
            for (int64_t p = 0; p < hw; p++) {
                const size_t i = at + (size_t)(p * B + k);
                dx[i] = a * dy[i] + b * (x[i] - m) + c;
            }
        }
    }
}

/* The input gradient the whole batch's mean loss gives this rank's share,
 * in this rank's units (divided by the share's weight w = batch / job
 * batch, as the data-parallel sums expect): g (dy - Gb / (w N) - xhat Gs /
 * (w N)), g = gamma / sqrt(var + eps), N the job's elements per channel,
 * Gb and Gs the sums over the ranks of w times each share's sums of dy and
 * dy xhat (oneDNN's shift and scale gradients of the share). */
static rb_status synchronize_input_gradient(rb_engine *e, enode *en, const float *sum_dy, const float *sum_dy_xhat,
                                            dnnl_memory_t x_mem, dnnl_memory_t dy_mem, dnnl_memory_t dx_mem)
{
    const rb_node *n = en->node;
    const int64_t C = n->c;
    const double w = (double)e->batch / (double)e->sync_bn_batch;
    const double total = (double)(e->sync_bn_batch * n->h * n->w);
    const float *gamma = rb_node_param(e->g, n, RB_SLOT_WEIGHT)->value;
    const float *mean = eng_floats(e, en->mean.offset), *var = eng_floats(e, en->variance.offset);
    double *sums = eng_doubles(e, en->aux[0].offset), *coef = sums + 2 * C;
    void *x = NULL, *dy = NULL, *dx = NULL;
    rb_status s;
    for (int64_t c = 0; c < C; c++) {
        sums[2 * c] = w * sum_dy[c];
        sums[2 * c + 1] = w * sum_dy_xhat[c];
    }
    s = rb_dist_allreduce_sum(sums, 2 * (size_t)C, RB_DIST_F64);
    if (s == RB_OK && (dnnl_memory_get_data_handle(x_mem, &x) != dnnl_success ||
                       dnnl_memory_get_data_handle(dy_mem, &dy) != dnnl_success ||
                       dnnl_memory_get_data_handle(dx_mem, &dx) != dnnl_success))
        s = rb_error_set(RB_ERR_INTERNAL, "batch-norm '%s': no memory behind the gradient", n->name);
    if (s == RB_OK) {
        for (int64_t c = 0; c < C; c++) {
            double invstd = 1.0 / sqrt((double)var[c] + RB_BATCHNORM_EPS), g = gamma[c] * invstd;
            coef[3 * c] = g;
            coef[3 * c + 1] = -g * invstd * sums[2 * c + 1] / (w * total);
            coef[3 * c + 2] = -g * sums[2 * c] / (w * total);
        }
        write_input_gradient(e, en, x, dy, dx, mean, coef);
    }
    return s == RB_OK ? RB_OK : rb_error_prefix("batch-norm '%s' (--sync-bn): ", n->name);
}

static rb_status forward(rb_engine *e, enode *en, bool step_trains)
{
    const rb_node *n = en->node;
    eng_args x = {.n = 0};
    bool training = batch_statistics(n, step_trains);
    rb_status s;
int mode = training ? 0 : 1;
eng_arg(&x, DNNL_ARG_SRC, eng_input_mem(e, en, 0));
eng_arg(&x, DNNL_ARG_DST, en->value.mem);
eng_arg(&x, DNNL_ARG_SCALE, en->scale);
eng_arg(&x, DNNL_ARG_SHIFT, en->shift);
eng_arg(&x, DNNL_ARG_MEAN, training ? en->mean.mem : en->running_mean);
eng_arg(&x, DNNL_ARG_VARIANCE, training ? en->variance.mem : en->running_var);
if (en->relu_follows)
    eng_arg(&x, DNNL_ARG_WORKSPACE, en->workspace.mem);
s = eng_run(e, en->fwd[mode], &x, n, "forward", RB_PRIM_BATCHNORM_FORWARD);
if (s == RB_OK && training && synchronized(e)) {
    /* this share's statistics made the job's, then normalize with them */
    x.n = 0;
    eng_arg(&x, DNNL_ARG_SRC, eng_input_mem(e, en, 0));
    eng_arg(&x, DNNL_ARG_DST, en->value.mem);
    eng_arg(&x, DNNL_ARG_SCALE, en->scale);
    eng_arg(&x, DNNL_ARG_SHIFT, en->shift);
    eng_arg(&x, DNNL_ARG_MEAN, en->mean.mem);
    eng_arg(&x, DNNL_ARG_VARIANCE, en->variance.mem);
    if (en->relu_follows)
        eng_arg(&x, DNNL_ARG_WORKSPACE, en->workspace.mem);
    if ((s = synchronize_statistics(e, en)) == RB_OK)
        s = eng_run(e, en->fwd[1], &x, n, "forward", RB_PRIM_BATCHNORM_FORWARD);
}
if (s == RB_OK && training) {
    /* Running statistics as PyTorch keeps them: momentum 0.1, and
     * the unbiased variance (oneDNN reports the biased one). */
    float *rm = rb_node_param(e->g, n, RB_SLOT_RUNNING_MEAN)->value;
    float *rv = rb_node_param(e->g, n, RB_SLOT_RUNNING_VAR)->value;
    const float *bm = eng_floats(e, en->mean.offset);
    const float *bv = eng_floats(e, en->variance.offset);
    double count = (double)((synchronized(e) ? e->sync_bn_batch : e->batch) * n->h * n->w);
    double unbias = count > 1 ? count / (count - 1) : 1.0;
    for (int64_t c = 0; c < n->c; c++) {
        rm[c] = (float)((1 - RB_BATCHNORM_MOMENTUM) * rm[c] + RB_BATCHNORM_MOMENTUM * bm[c]);
        rv[c] = (float)((1 - RB_BATCHNORM_MOMENTUM) * rv[c] + RB_BATCHNORM_MOMENTUM * bv[c] * unbias);
    }
}
return s;
}

static rb_status backward(rb_engine *e, enode *en, bool weight_grads)
{
    const rb_node *n = en->node;
    bool need_in = eng_input_needs_grad(e, en, 0);
    rb_param_tensor *w = rb_node_param(e->g, n, RB_SLOT_WEIGHT);
    bool want_w = weight_grads && w->trainable && !w->frozen;
    eng_args x = {.n = 0};
    rb_status s = RB_OK;
bool training = batch_statistics(n, e->training);
int mode = training ? 0 : 1;
bool full;
if (!need_in && !want_w)
    return RB_OK;
if (!want_w && mode == 1) {
    /* Running statistics, input gradient only: dy * gamma /
     * sqrt(running_var + eps), the inference forward on dy with a
     * zero mean and shift (the arena's zeros are never written). */
    eng_arg(&x, DNNL_ARG_SRC, en->diff.mem);
    eng_arg(&x, DNNL_ARG_DST, eng_grad_target(e, en, 0));
    eng_arg(&x, DNNL_ARG_SCALE, en->scale);
    eng_arg(&x, DNNL_ARG_SHIFT, en->zeros.mem);
    eng_arg(&x, DNNL_ARG_MEAN, en->zeros.mem);
    eng_arg(&x, DNNL_ARG_VARIANCE, en->running_var);
    s = eng_run(e, en->relu_follows ? en->affine : en->fwd[1], &x, n, "backward", RB_PRIM_BATCHNORM_BACKWARD_DATA);
    return s == RB_OK ? eng_deliver(e, en, 0) : s;
}
bool sync = training && synchronized(e);
full = want_w || en->bwd_data[mode] == NULL || sync;
/* oneDNN's batch-norm backward always produces the data gradient;
 * when only parameter gradients are wanted it lands in scratch. */
eng_arg(&x, DNNL_ARG_SRC, eng_input_mem(e, en, 0));
eng_arg(&x, DNNL_ARG_DIFF_DST, en->diff.mem);
eng_arg(&x, DNNL_ARG_SCALE, en->scale);
eng_arg(&x, DNNL_ARG_SHIFT, en->shift); /* oneDNN 2.6 lists it as an input of backward too */
eng_arg(&x, DNNL_ARG_MEAN, training ? en->mean.mem : en->running_mean);
eng_arg(&x, DNNL_ARG_VARIANCE, training ? en->variance.mem : en->running_var);
if (need_in) {
    eng_arg(&x, DNNL_ARG_DIFF_SRC, eng_grad_target(e, en, 0));
} else {
    /* Nobody needs the input's gradient: let it land where it is
     * harmless (the producer's own gradient buffer is unused too). */
    eng_arg(&x, DNNL_ARG_DIFF_SRC, en->in[0].scratch ? en->in[0].scratch : e->nodes[n->in[0]->index].diff.mem);
}
if (en->relu_follows) /* the fused ReLU's mask */
    eng_arg(&x, DNNL_ARG_WORKSPACE, en->workspace.mem);
if (want_w) {
    eng_arg(&x, DNNL_ARG_DIFF_SCALE, en->diff_scale);
    eng_arg(&x, DNNL_ARG_DIFF_SHIFT, en->diff_shift);
} else if (en->bwd_data[mode] == NULL || sync) {
    eng_arg(&x, DNNL_ARG_DIFF_SCALE, en->discard_scale.mem);
    eng_arg(&x, DNNL_ARG_DIFF_SHIFT, en->discard_shift.mem);
}
s = eng_run(e, full ? en->bwd_full[mode] : en->bwd_data[mode], &x, n, "backward",
        full ? RB_PRIM_BATCHNORM_BACKWARD : RB_PRIM_BATCHNORM_BACKWARD_DATA);
if (s == RB_OK && sync && need_in)
    s = synchronize_input_gradient(
        e, en, want_w ? rb_node_param(e->g, n, RB_SLOT_BIAS)->grad : eng_floats(e, en->discard_shift.offset),
        want_w ? w->grad : eng_floats(e, en->discard_scale.offset), eng_input_mem(e, en, 0), en->diff.mem,
        eng_grad_target(e, en, 0));
if (s == RB_OK && need_in)
    s = eng_deliver(e, en, 0);
return s;
}

/* Backward reads the input to recompute the normalized values. */
static bool reads_input(const rb_engine *e, const enode *en, size_t k)
{
    (void)e;
    return !en->in[k].reordered;
}

/* ------------------------------------------------------------ reference */

static void bn_forward(rb_reference *r, const rb_node *n, const double *x, double *y, bool training)
{
    const float *gamma = ref_param(r, n, RB_SLOT_WEIGHT), *beta = ref_param(r, n, RB_SLOT_BIAS);
    float *rmean = rb_node_param(r->g, n, RB_SLOT_RUNNING_MEAN)->value;
    float *rvar = rb_node_param(r->g, n, RB_SLOT_RUNNING_VAR)->value;
    double *saved = r->saved[n->index];
    int64_t hw = n->h * n->w, count = r->batch * hw;
    for (int64_t c = 0; c < n->c; c++) {
        double mean, var;
        if (training) {
            double sum = 0, sq = 0;
            for (int64_t b = 0; b < r->batch; b++)
                for (int64_t i = 0; i < hw; i++)
                    sum += x[(b * n->c + c) * hw + i];
            mean = sum / (double)count;
            for (int64_t b = 0; b < r->batch; b++)
                for (int64_t i = 0; i < hw; i++) {
                    double dev = x[(b * n->c + c) * hw + i] - mean;
                    sq += dev * dev;
                }
            var = sq / (double)count; /* biased: what normalizes */
            /* Running statistics keep the unbiased variance, as PyTorch does. */
            rmean[c] = (float)((1 - RB_BATCHNORM_MOMENTUM) * rmean[c] + RB_BATCHNORM_MOMENTUM * mean);
            rvar[c] = (float)((1 - RB_BATCHNORM_MOMENTUM) * rvar[c] +
                              RB_BATCHNORM_MOMENTUM * (count > 1 ? sq / (double)(count - 1) : var));
        } else {
            mean = rmean[c];
            var = rvar[c];
        }
        saved[2 * c] = mean;
        saved[2 * c + 1] = 1.0 / sqrt(var + RB_BATCHNORM_EPS);
        for (int64_t b = 0; b < r->batch; b++)
            for (int64_t i = 0; i < hw; i++) {
                int64_t k = (b * n->c + c) * hw + i;
                y[k] = (x[k] - mean) * saved[2 * c + 1] * gamma[c] + beta[c];
            }
    }
}

static void bn_backward(rb_reference *r, const rb_node *n, const double *x, const double *dy,
                        double *dx, double *dgamma, double *dbeta, bool training)
{
    const float *gamma = ref_param(r, n, RB_SLOT_WEIGHT);
    const double *saved = r->saved[n->index];
    int64_t hw = n->h * n->w, count = r->batch * hw;
    for (int64_t c = 0; c < n->c; c++) {
        double mean = saved[2 * c], invstd = saved[2 * c + 1], sum_dy = 0, sum_dy_xhat = 0;
        for (int64_t b = 0; b < r->batch; b++)
            for (int64_t i = 0; i < hw; i++) {
                int64_t k = (b * n->c + c) * hw + i;
                sum_dy += dy[k];
                sum_dy_xhat += dy[k] * (x[k] - mean) * invstd;
            }
        if (dgamma)
            dgamma[c] += sum_dy_xhat;
        if (dbeta)
            dbeta[c] += sum_dy;
        if (dx == NULL)
            continue;
        for (int64_t b = 0; b < r->batch; b++)
            for (int64_t i = 0; i < hw; i++) {
                int64_t k = (b * n->c + c) * hw + i;
                if (training) {
                    /* The batch statistics depend on x too. */
                    double xhat = (x[k] - mean) * invstd;
                    dx[k] += gamma[c] * invstd *
                             (dy[k] - sum_dy / (double)count - xhat * sum_dy_xhat / (double)count);
                } else {
                    dx[k] += dy[k] * gamma[c] * invstd;
                }
            }
    }
}

static size_t ref_saved(const rb_node *n, int64_t batch)
{
    (void)batch;
    return (size_t)(2 * n->c);
}

static rb_status ref_forward(rb_reference *r, const rb_node *n, bool training)
{
    bn_forward(r, n, ref_value(r, n->in[0]), ref_value(r, n), batch_statistics(n, training));
    return RB_OK;
}

static rb_status ref_backward(rb_reference *r, const rb_node *n, bool weight_grads)
{
    bn_backward(r, n, ref_value(r, n->in[0]), ref_grad(r, n), ref_grad(r, n->in[0]),
                ref_param_grad(r, n, RB_SLOT_WEIGHT, weight_grads), ref_param_grad(r, n, RB_SLOT_BIAS, weight_grads),
                batch_statistics(n, r->training));
    return RB_OK;
}

const rb_op_def rb_op_batchnorm = {
    .op = RB_OP_BATCHNORM,
    .name = "batchnorm",
    .init_param = init_param,
    .plan = plan,
    .forward = forward,
    .backward = backward,
    .reads_input = reads_input,
    .ref_saved = ref_saved,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
};
