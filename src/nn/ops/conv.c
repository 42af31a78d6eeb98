/* Convolutions and linear layers (a linear layer is the convolution whose
 * kernel is the size of its input): builders, oneDNN plans (Winograd or
 * direct, fp32 or bf16; gradients by matrix products where oneDNN's are
 * slow: conv_gemm.c), forward, backward of weights and data, and the
 * double-precision reference. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/op.h"
#include "nn/ops/conv_internal.h"

/* ------------------------------------------------------------ builders */

rb_status rb_graph_conv(rb_graph *g, const char *name, rb_node *in, const rb_conv_desc *desc,
                        rb_node **out)
{
    rb_conv_desc d;
    rb_node *n;
    int64_t oh, ow, wshape[4];
    rb_status s = graph_check_node(g, RB_OP_CONV, name, &in, 1);
    if (s != RB_OK)
        return s;
    if (name == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "conv: a convolution needs a name for its parameters");
    d = *desc;
    for (int i = 0; i < 2; i++) {
        if (d.stride[i] == 0)
            d.stride[i] = 1;
        if (d.dilation[i] == 0)
            d.dilation[i] = 1;
    }
    if (d.groups == 0)
        d.groups = 1;
    if (d.out_channels < 1 || d.kernel[0] < 1 || d.kernel[1] < 1 || d.stride[0] < 1 ||
        d.stride[1] < 1 || d.dilation[0] < 1 || d.dilation[1] < 1 || d.padding[0] < 0 ||
        d.padding[1] < 0 || d.groups < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "conv '%s': out_channels, kernel, stride, dilation and groups must be "
                            "positive and padding non-negative",
                            name);
    if (in->c % d.groups != 0 || d.out_channels % d.groups != 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "conv '%s': %lld groups do not divide its %lld input channels (from '%s') "
                            "and %lld output channels",
                            name, (long long)d.groups, (long long)in->c, in->name,
                            (long long)d.out_channels);
    oh = graph_window_out(in->h, d.kernel[0], d.stride[0], d.padding[0], d.dilation[0]);
    ow = graph_window_out(in->w, d.kernel[1], d.stride[1], d.padding[1], d.dilation[1]);
    if (oh < 1 || ow < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "conv '%s': a %lldx%lld kernel (dilation %lldx%lld, padding %lldx%lld) does "
                            "not fit the %lldx%lld output of '%s'",
                            name, (long long)d.kernel[0], (long long)d.kernel[1],
                            (long long)d.dilation[0], (long long)d.dilation[1],
                            (long long)d.padding[0], (long long)d.padding[1], (long long)in->h,
                            (long long)in->w, in->name);
    s = graph_add_node(g, RB_OP_CONV, name, &in, 1, d.out_channels, oh, ow, &n);
    if (s != RB_OK)
        return s;
    n->attr.conv = d;
    wshape[0] = d.out_channels;
    wshape[1] = in->c / d.groups;
    wshape[2] = d.kernel[0];
    wshape[3] = d.kernel[1];
    s = graph_add_param(g, n, RB_SLOT_WEIGHT, "weight", 4, wshape, true);
    if (s == RB_OK && d.bias)
        s = graph_add_param(g, n, RB_SLOT_BIAS, "bias", 1, wshape, true);
    if (s != RB_OK) {
        graph_drop_last_node(g);
        return s;
    }
    *out = n;
    return RB_OK;
}

rb_status rb_graph_linear(rb_graph *g, const char *name, rb_node *in, int64_t out_features,
                          bool bias, rb_node **out)
{
    rb_node *n;
    int64_t shape[2];
    rb_status s = graph_check_node(g, RB_OP_LINEAR, name, &in, 1);
    if (s != RB_OK)
        return s;
    if (name == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "linear: a linear layer needs a name for its parameters");
    if (out_features < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "linear '%s': %lld output features; need at least 1",
                            name, (long long)out_features);
    s = graph_add_node(g, RB_OP_LINEAR, name, &in, 1, out_features, 1, 1, &n);
    if (s != RB_OK)
        return s;
    n->attr.linear.out_features = out_features;
    n->attr.linear.bias = bias;
    shape[0] = out_features;
    shape[1] = in->c * in->h * in->w;
    s = graph_add_param(g, n, RB_SLOT_WEIGHT, "weight", 2, shape, true);
    if (s == RB_OK && bias)
        s = graph_add_param(g, n, RB_SLOT_BIAS, "bias", 1, shape, true);
    if (s != RB_OK) {
        graph_drop_last_node(g);
        return s;
    }
    *out = n;
    return RB_OK;
}

/* kaiming_normal_(mode="fan_out", nonlinearity="relu") for the weight:
 * std = sqrt(2 / fan_out), fan_out = out_channels * kh * kw; the bias as
 * PyTorch's default, uniform in +-1/sqrt(fan_in). */
static void conv_init_param(rb_graph *g, rb_node *n, rb_param_tensor *p, rb_rng *rng)
{
    const rb_param_tensor *w = rb_node_param(g, n, RB_SLOT_WEIGHT);
    if (p == w) {
        double fan_out = (double)(p->shape[0] * p->shape[2] * p->shape[3]);
        double sd = sqrt(2.0 / fan_out);
        for (int64_t k = 0; k < p->numel; k++)
            p->value[k] = (float)(sd * rb_rng_normal(rng));
    } else {
        double bound = 1.0 / sqrt((double)(w->numel / w->shape[0]));
        for (int64_t k = 0; k < p->numel; k++)
            p->value[k] = (float)(bound * (2.0 * rb_rng_uniform(rng) - 1.0));
    }
}

/* rb_graph_reuse: the same kernel on `in`, which must have like's input
 * channels; the output's height and width follow from the input's. */
static rb_status conv_reuse_shape(const rb_node *like, const rb_node *in, int64_t *c, int64_t *h, int64_t *w)
{
    const rb_conv_desc *d = &like->attr.conv;
    if (in->c != like->in[0]->c)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "rb_graph_reuse: conv '%s' reads %lld channels but '%s' has %lld; its weight fits only "
                            "inputs of %lld channels",
                            like->name, (long long)like->in[0]->c, in->name, (long long)in->c,
                            (long long)like->in[0]->c);
    *c = like->c;
    *h = graph_window_out(in->h, d->kernel[0], d->stride[0], d->padding[0], d->dilation[0]);
    *w = graph_window_out(in->w, d->kernel[1], d->stride[1], d->padding[1], d->dilation[1]);
    if (*h < 1 || *w < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "rb_graph_reuse: the %lldx%lld kernel of conv '%s' (dilation %lldx%lld, padding "
                            "%lldx%lld) does not fit the %lldx%lld output of '%s'",
                            (long long)d->kernel[0], (long long)d->kernel[1], like->name, (long long)d->dilation[0],
                            (long long)d->dilation[1], (long long)d->padding[0], (long long)d->padding[1],
                            (long long)in->h, (long long)in->w, in->name);
    return RB_OK;
}

/* rb_graph_reuse: a linear layer's weight spans C x H x W of its input, so
 * another input must have all three of like's input. */
static rb_status linear_reuse_shape(const rb_node *like, const rb_node *in, int64_t *c, int64_t *h, int64_t *w)
{
    const rb_node *was = like->in[0];
    if (in->c != was->c || in->h != was->h || in->w != was->w)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "rb_graph_reuse: linear '%s' reads %lldx%lldx%lld values but '%s' is %lldx%lldx%lld; its "
                            "weight fits only inputs of that shape (pool to it first)",
                            like->name, (long long)was->c, (long long)was->h, (long long)was->w, in->name,
                            (long long)in->c, (long long)in->h, (long long)in->w);
    *c = like->c;
    *h = *w = 1;
    return RB_OK;
}

static int64_t conv_macs(const rb_node *n)
{
    return n->c * n->h * n->w * (n->in[0]->c / n->attr.conv.groups) * n->attr.conv.kernel[0] *
           n->attr.conv.kernel[1];
}

static int64_t linear_macs(const rb_node *n)
{
    return n->c * n->in[0]->c * n->in[0]->h * n->in[0]->w;
}

/* ------------------------------------------------------------ engine */

/* Whether to ask oneDNN for a Winograd convolution: the shapes its
 * F(4x4, 3x3) kernels are written for. oneDNN may still refuse one (channel
 * counts it does not block); each of forward, backward-data and
 * backward-weights then falls back to direct on its own. */
bool conv_winograd_fits(const rb_node *n, dnnl_data_type_t dt)
{
    const rb_conv_desc *d = &n->attr.conv;
    return n->op == RB_OP_CONV && dt == dnnl_f32 && d->kernel[0] == 3 && d->kernel[1] == 3 && d->stride[0] == 1 &&
           d->stride[1] == 1 && d->dilation[0] == 1 && d->dilation[1] == 1 && d->groups == 1;
}

/* The primitive descriptor of an initialized Winograd operation descriptor,
 * or NULL when oneDNN has no kernel for it or its scratchpad is over the
 * limit (the caller then plans direct). */
static dnnl_primitive_desc_t winograd_pd(const rb_engine *e, const_dnnl_op_desc_t desc,
                                         const_dnnl_primitive_desc_t hint)
{
    dnnl_primitive_desc_t pd;
    if (dnnl_primitive_desc_create(&pd, desc, e->attr, e->eng, hint) != dnnl_success)
        return NULL;
    if (dnnl_memory_desc_get_size(eng_query(pd, dnnl_query_scratchpad_md)) > e->winograd_scratchpad_limit) {
        dnnl_primitive_desc_destroy(pd);
        return NULL;
    }
    return pd;
}

/* Appends ", WHAT IMPL" to a node's kernel description when a backward
 * runs a different kind of kernel than its forward (Winograd or direct). */
static void note_backward_impl(enode *en, const_dnnl_primitive_desc_t pd, const char *what)
{
    const char *impl = NULL;
    size_t len = strlen(en->impl);
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    if (impl != NULL && (strstr(impl, "wino") != NULL) != (strstr(en->impl, "wino") != NULL))
        snprintf(en->impl + len, sizeof en->impl - len, ", %s %s", what, impl);
}

/* Convolutions, and linear layers as the convolution they are: a kernel
 * the size of the input, giving K x 1 x 1 (torch.flatten's C, H, W order is
 * exactly the (K, C, H, W) weight layout). oneDNN's convolutions draw all
 * their buffers from the scratchpad, where its gemm-based inner product
 * allocates on every call. */
void conv_shape_init(const rb_engine *e, const rb_node *n, dnnl_data_type_t dt, conv_shape *cs)
{
    const rb_node *in = n->in[0];
    const rb_conv_desc *d;
    dnnl_dims_t src_dims = {e->batch, in->c, in->h, in->w}, dst_dims = {e->batch, n->c, n->h, n->w};
    dnnl_dims_t bias_dims = {n->c};
    memset(cs, 0, sizeof *cs);
    cs->linear_as_conv = (rb_conv_desc){.out_channels = n->c, .kernel = {in->h, in->w}, .stride = {1, 1},
                                        .dilation = {1, 1}, .groups = 1};
    d = cs->d = n->op == RB_OP_LINEAR ? &cs->linear_as_conv : &n->attr.conv;
    cs->dt = dt;
    cs->has_bias = rb_node_param(e->g, n, RB_SLOT_BIAS) != NULL;
    for (int i = 0; i < 2; i++) {
        int64_t o = i == 0 ? n->h : n->w, size = i == 0 ? in->h : in->w;
        cs->strides[i] = d->stride[i];
        cs->dil[i] = d->dilation[i] - 1;
        cs->pad[i] = d->padding[i];
        /* oneDNN's padding_r makes the output size exact: (o - 1) s + span - i - p */
        cs->pad_r[i] = (o - 1) * d->stride[i] + d->dilation[i] * (d->kernel[i] - 1) + 1 - size - d->padding[i];
    }
    eng_md_any(&cs->src, 4, src_dims, dt);
    eng_md_any(&cs->dst, 4, dst_dims, dt);
    if (n->op == RB_OP_LINEAR) /* plain logits: the loss and the user read them directly */
        dnnl_memory_desc_init_by_tag(&cs->dst, 4, dst_dims, dnnl_f32, dnnl_nchw);
    if (d->groups == 1) {
        dnnl_dims_t wd = {n->c, in->c, d->kernel[0], d->kernel[1]};
        eng_md_any(&cs->wei, 4, wd, dt);
        eng_md_plain(&cs->user_w, 4, wd);
    } else {
        dnnl_dims_t wd = {d->groups, n->c / d->groups, in->c / d->groups, d->kernel[0], d->kernel[1]};
        eng_md_any(&cs->wei, 5, wd, dt);
        eng_md_plain(&cs->user_w, 5, wd);
    }
    eng_md_plain(&cs->bias, 1, bias_dims);
}

rb_status conv_forward_pd(const rb_engine *e, const rb_node *n, const conv_shape *cs, rb_conv_algorithm algorithm,
                          dnnl_primitive_desc_t *out)
{
    dnnl_convolution_desc_t cd;
    const dnnl_memory_desc_t *bias = cs->has_bias ? &cs->bias : NULL;
    *out = NULL;
    if (algorithm == RB_CONV_WINOGRAD && conv_winograd_fits(n, cs->dt) &&
        dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_winograd, &cs->src,
                                                   &cs->wei, bias, &cs->dst, cs->strides, cs->dil, cs->pad,
                                                   cs->pad_r) == dnnl_success)
        *out = winograd_pd(e, &cd, NULL);
    if (*out != NULL)
        return RB_OK;
    DNNL_TRY(dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct, &cs->src,
                                                        &cs->wei, bias, &cs->dst, cs->strides, cs->dil, cs->pad,
                                                        cs->pad_r),
             "convolution forward", n);
    DNNL_TRY(dnnl_primitive_desc_create(out, &cd, e->attr, e->eng, NULL), "convolution forward", n);
    return RB_OK;
}

/* diff_src "any": for a plain 3-channel image oneDNN 2.6 has only a
 * reference backward-data in the forward's layout, about a thousand times
 * slower; the gradient edge reorders whatever it picks. */
rb_status conv_backward_data_pd(const rb_engine *e, const rb_node *n, const conv_shape *cs,
                                rb_conv_algorithm algorithm, const dnnl_memory_desc_t *diff_dst,
                                const_dnnl_primitive_desc_t fwd_pd, dnnl_primitive_desc_t *out)
{
    dnnl_convolution_desc_t bd;
    *out = NULL;
    if (algorithm == RB_CONV_WINOGRAD && conv_winograd_fits(n, cs->dt) &&
        dnnl_dilated_convolution_backward_data_desc_init(&bd, dnnl_convolution_winograd, &cs->src, &cs->wei, diff_dst,
                                                         cs->strides, cs->dil, cs->pad, cs->pad_r) == dnnl_success)
        *out = winograd_pd(e, &bd, fwd_pd);
    if (*out != NULL)
        return RB_OK;
    DNNL_TRY(dnnl_dilated_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &cs->src, &cs->wei,
                                                              diff_dst, cs->strides, cs->dil, cs->pad, cs->pad_r),
             "convolution backward data", n);
    DNNL_TRY(dnnl_primitive_desc_create(out, &bd, e->attr, e->eng, fwd_pd), "convolution backward data", n);
    return RB_OK;
}

/* fp32 gradients for the fp32 master weights, whatever the precision. */
rb_status conv_backward_weights_pd(const rb_engine *e, const rb_node *n, const conv_shape *cs,
                                   rb_conv_algorithm algorithm, const dnnl_memory_desc_t *src,
                                   const dnnl_memory_desc_t *diff_dst, const_dnnl_primitive_desc_t fwd_pd,
                                   dnnl_primitive_desc_t *out)
{
    dnnl_convolution_desc_t bd;
    dnnl_memory_desc_t dwei = cs->wei;
    const dnnl_memory_desc_t *bias = cs->has_bias ? &cs->bias : NULL;
    dwei.data_type = dnnl_f32;
    *out = NULL;
    if (algorithm == RB_CONV_WINOGRAD && conv_winograd_fits(n, cs->dt) &&
        dnnl_dilated_convolution_backward_weights_desc_init(&bd, dnnl_convolution_winograd, src, &dwei, bias,
                                                            diff_dst, cs->strides, cs->dil, cs->pad,
                                                            cs->pad_r) == dnnl_success)
        *out = winograd_pd(e, &bd, fwd_pd);
    if (*out != NULL)
        return RB_OK;
    DNNL_TRY(dnnl_dilated_convolution_backward_weights_desc_init(&bd, dnnl_convolution_direct, src, &dwei, bias,
                                                                 diff_dst, cs->strides, cs->dil, cs->pad, cs->pad_r),
             "convolution backward weights", n);
    DNNL_TRY(dnnl_primitive_desc_create(out, &bd, e->attr, e->eng, fwd_pd), "convolution backward weights", n);
    return RB_OK;
}

static rb_status plan(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    rb_param_tensor *w = rb_node_param(e->g, n, RB_SLOT_WEIGHT), *b = rb_node_param(e->g, n, RB_SLOT_BIAS);
    conv_shape cs;
    dnnl_primitive_desc_t fwd_pd, bwd_d_pd, bwd_w_pd;
    const char *impl = NULL;
    rb_status s = conv_choose(e, en);
    if (s != RB_OK)
        return s;
    conv_shape_init(e, n, en->choice.dt, &cs);
    if ((s = conv_forward_pd(e, n, &cs, en->choice.algorithm, &fwd_pd)) != RB_OK)
        return s;
    dnnl_primitive_desc_query(fwd_pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(en->impl, sizeof en->impl, "%s", impl ? impl : "?");
    eng_warn_if_reference(fwd_pd, n, "forward");
    s = eng_value_plan(e, en, eng_query(fwd_pd, dnnl_query_dst_md));
    if (s == RB_OK)
        s = eng_diff_plan(e, &en->diff, eng_query(fwd_pd, dnnl_query_dst_md), n);
    if (s == RB_OK)
        s = eng_plan_input(e, en, 0, eng_query(fwd_pd, dnnl_query_src_md));
    if (s == RB_OK)
        s = eng_make_primitive(e, &en->fwd[0], fwd_pd, n, "convolution forward");
    /* weights: the graph's plain copy, reordered to the primitive's layout */
    if (s == RB_OK && dnnl_memory_create(&en->weights_user, &cs.user_w, e->eng, w->value) != dnnl_success)
        s = eng_dnnl_fail(dnnl_out_of_memory, "weights memory", n);
    if (s == RB_OK && b && dnnl_memory_create(&en->bias_user, &cs.bias, e->eng, b->value) != dnnl_success)
        s = eng_dnnl_fail(dnnl_out_of_memory, "bias memory", n);
    if (s == RB_OK) {
        const dnnl_memory_desc_t *wmd = eng_query(fwd_pd, dnnl_query_weights_md);
        en->weights_reordered = !eng_same_md(wmd, &cs.user_w);
        if (en->weights_reordered) {
            s = eng_slot_plan(e, &en->weights, wmd, n);
            if (s == RB_OK)
                s = eng_make_reorder(e, &en->weights_in, &cs.user_w, wmd, false, n);
        }
    }
    if (s != RB_OK) {
        dnnl_primitive_desc_destroy(fwd_pd);
        return s;
    }

    /* backward data: onto an image by matmul + col2im, or oneDNN's */
    s = conv_plan_image_grad_gemm(e, en, &en->value.md);
    if (s == RB_OK && !en->image_grad_gemm) {
        if ((s = conv_backward_data_pd(e, n, &cs, en->choice.algorithm, &en->value.md, fwd_pd, &bwd_d_pd)) !=
            RB_OK) {
            dnnl_primitive_desc_destroy(fwd_pd);
            return s;
        }
        eng_warn_if_reference(bwd_d_pd, n, "backward data");
        note_backward_impl(en, bwd_d_pd, "backward data");
        s = eng_make_primitive(e, &en->bwd_data[0], bwd_d_pd, n, "convolution backward data");
        if (s == RB_OK)
            s = eng_plan_grad_edge(e, en, 0, eng_query(bwd_d_pd, dnnl_query_diff_src_md));
        /* Weights "any" for backward-data too (with the forward's layout
         * oneDNN may only have its reference): a second blocked copy when
         * the layouts differ. */
        if (s == RB_OK) {
            const dnnl_memory_desc_t *bwmd = eng_query(bwd_d_pd, dnnl_query_weights_md);
            const dnnl_memory_desc_t *fwmd = en->weights_reordered ? &en->weights.md : &cs.user_w;
            if (!eng_same_md(bwmd, fwmd)) {
                /* Engines that only compute data gradients (attacks) keep
                 * them, so that held weights are converted once. */
                s = e->data_grads_only ? eng_slot_plan(e, &en->weights_bwd, bwmd, n)
                                       : eng_shared_plan(e, &en->weights_bwd, bwmd, n);
                if (s == RB_OK)
                    s = eng_make_reorder(e, &en->weights_bwd_in, &cs.user_w, bwmd, false, n);
            }
        }
        dnnl_primitive_desc_destroy(bwd_d_pd);
    }
    if (s != RB_OK) {
        dnnl_primitive_desc_destroy(fwd_pd);
        return s;
    }
    /* backward weights (not for engines that only ever compute data gradients) */
    if (!e->data_grads_only) {
        s = conv_backward_weights_pd(e, n, &cs, en->choice.algorithm, eng_query(fwd_pd, dnnl_query_src_md),
                                     &en->value.md, fwd_pd, &bwd_w_pd);
        if (s != RB_OK) {
            dnnl_primitive_desc_destroy(fwd_pd);
            return s;
        }
        s = conv_plan_weight_grad_gemm(e, en, bwd_w_pd, eng_query(fwd_pd, dnnl_query_src_md));
        if (s == RB_OK && !en->weight_grad_gemm) {
            eng_warn_if_reference(bwd_w_pd, n, "backward weights");
            note_backward_impl(en, bwd_w_pd, "backward weights");
            s = eng_make_primitive(e, &en->bwd_weights, bwd_w_pd, n, "convolution backward weights");
        }
        if (s == RB_OK && !en->weight_grad_gemm &&
            dnnl_memory_create(&en->diff_weights_user, &cs.user_w, e->eng, w->grad) != dnnl_success)
            s = eng_dnnl_fail(dnnl_out_of_memory, "weight gradient memory", n);
        if (s == RB_OK && b && dnnl_memory_create(&en->diff_bias_user, &cs.bias, e->eng, b->grad) != dnnl_success)
            s = eng_dnnl_fail(dnnl_out_of_memory, "bias gradient memory", n);
        /* Shared parameters (rb_graph_reuse): oneDNN overwrites its
         * gradients, so this node's go to buffers of their own and are
         * added to the graph's (zeroed by the engine before backward). */
        en->grads_add = w->users > 1;
        if (s == RB_OK && b && en->grads_add)
            s = eng_slot_plan(e, &en->aux[0], &cs.bias, n);
        if (s == RB_OK && !en->weight_grad_gemm) {
            const dnnl_memory_desc_t *dwmd = eng_query(bwd_w_pd, dnnl_query_diff_weights_md);
            en->diff_weights_reordered = en->grads_add || !eng_same_md(dwmd, &cs.user_w);
            if (en->diff_weights_reordered) {
                s = eng_shared_plan(e, &en->diff_weights, dwmd, n);
                if (s == RB_OK)
                    s = eng_make_reorder(e, &en->diff_weights_out, dwmd, &cs.user_w, en->grads_add, n);
            }
        }
        dnnl_primitive_desc_destroy(bwd_w_pd);
    }
    dnnl_primitive_desc_destroy(fwd_pd);
    if (en->tune_source != NULL) {
        size_t len = strlen(en->impl);
        snprintf(en->impl + len, sizeof en->impl - len, ", tuned (%s)", en->tune_source);
    }
    return s;
}

static rb_status forward(rb_engine *e, enode *en, bool training)
{
    const rb_node *n = en->node;
    eng_args x = {.n = 0};
    rb_status s;
    (void)training;
    if (en->weights_reordered && !(e->weights_held && en->weights_ready)) {
        if ((s = eng_reorder(e, en->weights_in, en->weights_user, en->weights.mem, n, RB_PRIM_REORDER_WEIGHTS)) != RB_OK)
            return s;
        en->weights_ready = true;
    }
    eng_arg(&x, DNNL_ARG_SRC, eng_input_mem(e, en, 0));
    eng_arg(&x, DNNL_ARG_WEIGHTS, en->weights_reordered ? en->weights.mem : en->weights_user);
    if (en->bias_user)
        eng_arg(&x, DNNL_ARG_BIAS, en->bias_user);
    eng_arg(&x, DNNL_ARG_DST, en->value.mem);
    return eng_run(e, en->fwd[0], &x, n, "forward", RB_PRIM_CONV_FORWARD);
}

static rb_status backward(rb_engine *e, enode *en, bool weight_grads)
{
    const rb_node *n = en->node;
    bool need_in = eng_input_needs_grad(e, en, 0);
    rb_param_tensor *w = rb_node_param(e->g, n, RB_SLOT_WEIGHT);
    bool want_w = weight_grads && w->trainable && !w->frozen;
    eng_args x = {.n = 0};
    rb_status s = RB_OK;
    if (want_w && en->weight_grad_gemm)
        s = conv_weight_grad_by_gemm(e, en, eng_input_mem(e, en, 0));
    else if (want_w) {
        eng_arg(&x, DNNL_ARG_SRC, eng_input_mem(e, en, 0));
        eng_arg(&x, DNNL_ARG_DIFF_DST, en->diff.mem);
        eng_arg(&x, DNNL_ARG_DIFF_WEIGHTS, en->diff_weights_reordered ? en->diff_weights.mem : en->diff_weights_user);
        if (en->diff_bias_user)
            eng_arg(&x, DNNL_ARG_DIFF_BIAS, en->grads_add ? en->aux[0].mem : en->diff_bias_user);
        s = eng_run(e, en->bwd_weights, &x, n, "backward weights", RB_PRIM_CONV_BACKWARD_WEIGHTS);
        if (s == RB_OK && en->diff_weights_reordered)
            s = eng_reorder(e, en->diff_weights_out, en->diff_weights.mem, en->diff_weights_user, n,
                        RB_PRIM_REORDER_WEIGHT_GRADIENT);
        if (s == RB_OK && en->grads_add && en->diff_bias_user) {
            rb_param_tensor *b = rb_node_param(e->g, n, RB_SLOT_BIAS);
            const float *part = eng_floats(e, en->aux[0].offset);
            for (int64_t k = 0; k < b->numel; k++)
                b->grad[k] += part[k];
        }
    }
    if (s == RB_OK && need_in && en->image_grad_gemm)
        return conv_image_grad_by_gemm(e, en);
    if (s == RB_OK && need_in) {
        dnnl_memory_t weights = en->weights_reordered ? en->weights.mem : en->weights_user;
        if (en->weights_bwd_in != NULL) {
            if (!(e->weights_held && en->weights_bwd_ready)) {
                s = eng_reorder(e, en->weights_bwd_in, en->weights_user, en->weights_bwd.mem, n,
                            RB_PRIM_REORDER_WEIGHTS);
                if (s != RB_OK)
                    return s;
                en->weights_bwd_ready = !en->weights_bwd.shared; /* other nodes overwrite shared bytes */
            }
            weights = en->weights_bwd.mem;
        }
        x.n = 0;
        eng_arg(&x, DNNL_ARG_DIFF_DST, en->diff.mem);
        eng_arg(&x, DNNL_ARG_WEIGHTS, weights);
        eng_arg(&x, DNNL_ARG_DIFF_SRC, eng_grad_target(e, en, 0));
        s = eng_run(e, en->bwd_data[0], &x, n, "backward data", RB_PRIM_CONV_BACKWARD_DATA);
        if (s == RB_OK)
            s = eng_deliver(e, en, 0);
    }
    return s;
}

/* The weight gradient reads the input, unless it reads a reordered copy. */
static bool reads_input(const rb_engine *e, const enode *en, size_t k)
{
    (void)e;
    return !en->in[k].reordered;
}

/* ------------------------------------------------------------ reference */

static void conv_forward(const rb_reference *r, const rb_node *n, const double *x, double *y)
{
    const rb_conv_desc *d = &n->attr.conv;
    const rb_node *in = n->in[0];
    const float *w = ref_param(r, n, RB_SLOT_WEIGHT), *b = ref_param(r, n, RB_SLOT_BIAS);
    int64_t cin_g = in->c / d->groups, cout_g = n->c / d->groups;
    for (int64_t b_ = 0; b_ < r->batch; b_++)
        for (int64_t oc = 0; oc < n->c; oc++) {
            int64_t grp = oc / cout_g;
            for (int64_t oy = 0; oy < n->h; oy++)
                for (int64_t ox = 0; ox < n->w; ox++) {
                    double sum = b ? b[oc] : 0.0;
                    for (int64_t ic = 0; ic < cin_g; ic++)
                        for (int64_t ky = 0; ky < d->kernel[0]; ky++) {
                            int64_t iy = oy * d->stride[0] - d->padding[0] + ky * d->dilation[0];
                            if (iy < 0 || iy >= in->h)
                                continue;
                            for (int64_t kx = 0; kx < d->kernel[1]; kx++) {
                                int64_t ix = ox * d->stride[1] - d->padding[1] + kx * d->dilation[1];
                                if (ix < 0 || ix >= in->w)
                                    continue;
                                sum += (double)w[((oc * cin_g + ic) * d->kernel[0] + ky) * d->kernel[1] + kx] *
                                       x[((b_ * in->c + grp * cin_g + ic) * in->h + iy) * in->w + ix];
                            }
                        }
                    y[((b_ * n->c + oc) * n->h + oy) * n->w + ox] = sum;
                }
        }
}

static void conv_backward(rb_reference *r, const rb_node *n, const double *x, const double *dy,
                          double *dx, double *dw, double *db)
{
    const rb_conv_desc *d = &n->attr.conv;
    const rb_node *in = n->in[0];
    const float *w = ref_param(r, n, RB_SLOT_WEIGHT);
    int64_t cin_g = in->c / d->groups, cout_g = n->c / d->groups;
    for (int64_t b_ = 0; b_ < r->batch; b_++)
        for (int64_t oc = 0; oc < n->c; oc++) {
            int64_t grp = oc / cout_g;
            for (int64_t oy = 0; oy < n->h; oy++)
                for (int64_t ox = 0; ox < n->w; ox++) {
                    double g = dy[((b_ * n->c + oc) * n->h + oy) * n->w + ox];
                    if (db)
                        db[oc] += g;
                    for (int64_t ic = 0; ic < cin_g; ic++)
                        for (int64_t ky = 0; ky < d->kernel[0]; ky++) {
                            int64_t iy = oy * d->stride[0] - d->padding[0] + ky * d->dilation[0];
                            if (iy < 0 || iy >= in->h)
                                continue;
                            for (int64_t kx = 0; kx < d->kernel[1]; kx++) {
                                int64_t ix = ox * d->stride[1] - d->padding[1] + kx * d->dilation[1];
                                int64_t wi = ((oc * cin_g + ic) * d->kernel[0] + ky) * d->kernel[1] + kx;
                                int64_t xi = ((b_ * in->c + grp * cin_g + ic) * in->h + iy) * in->w + ix;
                                if (ix < 0 || ix >= in->w)
                                    continue;
                                if (dw)
                                    dw[wi] += g * x[xi];
                                if (dx)
                                    dx[xi] += g * w[wi];
                            }
                        }
                }
        }
}

static rb_status ref_conv_forward(rb_reference *r, const rb_node *n, bool training)
{
    (void)training;
    conv_forward(r, n, ref_value(r, n->in[0]), ref_value(r, n));
    return RB_OK;
}

static rb_status ref_conv_backward(rb_reference *r, const rb_node *n, bool weight_grads)
{
    conv_backward(r, n, ref_value(r, n->in[0]), ref_grad(r, n), ref_grad(r, n->in[0]),
                  ref_param_grad(r, n, RB_SLOT_WEIGHT, weight_grads), ref_param_grad(r, n, RB_SLOT_BIAS, weight_grads));
    return RB_OK;
}

static rb_status ref_linear_forward(rb_reference *r, const rb_node *n, bool training)
{
    const float *w = ref_param(r, n, RB_SLOT_WEIGHT), *bias = ref_param(r, n, RB_SLOT_BIAS);
    const double *x = ref_value(r, n->in[0]);
    double *y = ref_value(r, n);
    int64_t in_size = ref_node_size(n->in[0]);
    (void)training;
    for (int64_t b = 0; b < r->batch; b++)
        for (int64_t o = 0; o < n->c; o++) {
            double sum = bias ? bias[o] : 0.0;
            for (int64_t k = 0; k < in_size; k++)
                sum += (double)w[o * in_size + k] * x[b * in_size + k];
            y[b * n->c + o] = sum;
        }
    return RB_OK;
}

static rb_status ref_linear_backward(rb_reference *r, const rb_node *n, bool weight_grads)
{
    const float *w = ref_param(r, n, RB_SLOT_WEIGHT);
    const double *x = ref_value(r, n->in[0]), *dy = ref_grad(r, n);
    double *dx = ref_grad(r, n->in[0]);
    double *dw = ref_param_grad(r, n, RB_SLOT_WEIGHT, weight_grads), *db = ref_param_grad(r, n, RB_SLOT_BIAS, weight_grads);
    int64_t in_size = ref_node_size(n->in[0]);
    for (int64_t b = 0; b < r->batch; b++)
        for (int64_t o = 0; o < n->c; o++) {
            double gval = dy[b * n->c + o];
            if (db)
                db[o] += gval;
            for (int64_t k = 0; k < in_size; k++) {
                if (dw)
                    dw[o * in_size + k] += gval * x[b * in_size + k];
                dx[b * in_size + k] += gval * w[o * in_size + k];
            }
        }
    return RB_OK;
}

const rb_op_def rb_op_conv = {
    .op = RB_OP_CONV,
    .name = "conv",
    .init_param = conv_init_param,
    .macs = conv_macs,
    .reuse_shape = conv_reuse_shape,
    .plan = plan,
    .bind = conv_gemm_bind,
    .forward = forward,
    .backward = backward,
    .reads_input = reads_input,
    .ref_forward = ref_conv_forward,
    .ref_backward = ref_conv_backward,
};

const rb_op_def rb_op_linear = {
    .op = RB_OP_LINEAR,
    .name = "linear",
    .macs = linear_macs,
    .reuse_shape = linear_reuse_shape,
    .plan = plan,
    .bind = conv_gemm_bind,
    .forward = forward,
    .backward = backward,
    .reads_input = reads_input,
    .ref_forward = ref_linear_forward,
    .ref_backward = ref_linear_backward,
};
