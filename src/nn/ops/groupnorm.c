/* Group normalization (torch.nn.GroupNorm): builder, the engine's own loops
 * and the double-precision reference.
 *
 * oneDNN 2.6 has no group-normalization primitive. The engine's loops work
 * in the producer's layout when it is plain or channel-blocked (nChw16c,
 * nChw8c: a convolution's), seen as planes of H x W pixels of B channels
 * (B = 1 for plain), as upsample.c does, so that a tower conv -> groupnorm
 * -> ReLU -> conv runs without reorders; other layouts are reordered to
 * plain first. The output and the gradients have the same layout.
 *
 * Both passes go the same way: per (example, channel block) task, sums over
 * the plane in double (forward: sum x and sum x^2; backward: sum dy and
 * sum dy x); then, in the calling thread, per (example, group) the
 * statistics and per (example, channel) three coefficients; then per task
 * the element-wise pass out = A a + B b + C (forward: y = A x + C;
 * backward: dx = A dy + B x + C). Every sum has a fixed order, whatever
 * the number of threads, so results are bit-identical across thread
 * counts. The weight and bias gradients are summed over examples in order
 * in the calling thread. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/op.h"
#include "tensor/vmath.h"

rb_status rb_graph_groupnorm(rb_graph *g, const char *name, rb_node *in, int64_t groups, rb_node **out)
{
    rb_node *n;
    int64_t shape[1];
    rb_status s = graph_check_node(g, RB_OP_GROUPNORM, name, &in, 1);
    if (s != RB_OK)
        return s;
    if (name == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "groupnorm: a group normalization needs a name for its parameters");
    if (groups < 1 || in->c % groups != 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "groupnorm '%s': %lld groups do not divide the %lld channels of '%s'; give a divisor of "
                            "%lld (32 is torchvision's, for 32k channels)",
                            name, (long long)groups, (long long)in->c, in->name, (long long)in->c);
    s = graph_add_node(g, RB_OP_GROUPNORM, name, &in, 1, in->c, in->h, in->w, &n);
    if (s != RB_OK)
        return s;
    n->attr.groups = groups;
    shape[0] = in->c;
    s = graph_add_param(g, n, RB_SLOT_WEIGHT, "weight", 1, shape, true);
    if (s == RB_OK)
        s = graph_add_param(g, n, RB_SLOT_BIAS, "bias", 1, shape, true);
    if (s != RB_OK) {
        graph_drop_last_node(g);
        return s;
    }
    for (int64_t c = 0; c < in->c; c++)
        g->params[n->param[RB_SLOT_WEIGHT]].value[c] = 1.0f;
    *out = n;
    return RB_OK;
}

/* As PyTorch: weight 1, bias 0. */
static void init_param(rb_graph *g, rb_node *n, rb_param_tensor *p, rb_rng *rng)
{
    float v = p == rb_node_param(g, n, RB_SLOT_WEIGHT) ? 1.0f : 0.0f;
    (void)rng;
    for (int64_t k = 0; k < p->numel; k++)
        p->value[k] = v;
}

/* rb_graph_reuse: any input of like's channels; the output is its shape. */
static rb_status reuse_shape(const rb_node *like, const rb_node *in, int64_t *c, int64_t *h, int64_t *w)
{
    if (in->c != like->c)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "rb_graph_reuse: groupnorm '%s' normalizes %lld channels but '%s' has %lld; its weight "
                            "fits only inputs of %lld channels",
                            like->name, (long long)like->c, in->name, (long long)in->c, (long long)like->c);
    *c = in->c;
    *h = in->h;
    *w = in->w;
    return RB_OK;
}

/* ------------------------------------------------------------ engine */

/* aux[0], doubles: per (example, channel) two sums; per (example, group)
 * the mean and 1 / sqrt(var + eps), kept from forward to backward; per
 * (example, channel) the three coefficients of the element-wise pass. */
static double *sums_of(const rb_engine *e, const enode *en)
{
    return (double *)(void *)(e->arena + en->aux[0].offset);
}

static double *stats_of(const rb_engine *e, const enode *en)
{
    return sums_of(e, en) + 2 * e->batch * en->node->c;
}

static double *coefs_of(const rb_engine *e, const enode *en)
{
    return stats_of(e, en) + 2 * e->batch * en->node->attr.groups;
}

/* Channel blocks per example (a blocked layout pads C to whole blocks). */
static int64_t blocks_of(const enode *en)
{
    return (en->node->c + en->channel_block - 1) / en->channel_block;
}

static rb_status plan(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    dnnl_memory_desc_t used, dst, aux;
    dnnl_dims_t dims = {e->batch, n->c, n->h, n->w};
    dnnl_dims_t adims = {e->batch * (5 * n->c + 2 * n->attr.groups) * (dnnl_dim_t)sizeof(double)};
    rb_status s = eng_plan_blocked_input(e, en, &used);
    int64_t block = en->channel_block;
    snprintf(en->impl, sizeof en->impl, "robusta:groupnorm, %s",
             eng_block_name(block));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&dst, 4, dims, dnnl_f32, eng_block_tag(block)), "groupnorm", n);
    dnnl_memory_desc_init_by_tag(&aux, 1, adims, dnnl_u8, dnnl_a);
    if (s == RB_OK)
        s = eng_value_plan(e, en, &dst);
    if (s == RB_OK)
        s = eng_diff_plan(e, &en->diff, &dst, n);
    if (s == RB_OK)
        s = eng_slot_plan(e, &en->aux[0], &aux, n);
    if (s == RB_OK)
        s = eng_plan_grad_edge(e, en, 0, &used);
    return s;
}

/* One pass of the op over the tensor: base pointers of its operands. */
typedef struct pass {
    const float *a, *b; /* sums: of a and of a b; element-wise: A a + B b + C */
    float *out;         /* element-wise only */
} pass;

/* The sums over one plane of hw pixels of B channels: s1 = sum a,
 * s2 = sum a b, per channel, in double. B is a constant where inlined. */
static inline __attribute__((always_inline)) void plane_sums(const float *a, const float *b, int64_t hw,
                                                             const int64_t B, double *s1, double *s2)
{
    if (B == 1) {
        double t1 = 0, t2 = 0;
#pragma omp simd reduction(+ : t1, t2)
        for (int64_t p = 0; p < hw; p++) {
            t1 += (double)a[p];
            t2 += (double)a[p] * (double)b[p];
        }
        s1[0] = t1;
        s2[0] = t2;
        return;
    }
    {
        double t1[16] = {0}, t2[16] = {0};
        for (int64_t p = 0; p < hw; p++)
#pragma omp simd
            for (int64_t k = 0; k < B; k++) {
                t1[k] += (double)a[p * B + k];
                t2[k] += (double)a[p * B + k] * (double)b[p * B + k];
            }
        for (int64_t k = 0; k < B; k++) {
            s1[k] = t1[k];
            s2[k] = t2[k];
        }
    }
}

/* out = A a + B b + C over one plane, per channel; channels past the last
 * (a blocked layout's padding) get 0. */
static inline __attribute__((always_inline)) void plane_apply(const float *a, const float *b, float *out, int64_t hw,
                                                              const int64_t B, const float *ca, const float *cb,
                                                              const float *cc)
{
    if (B == 1) {
        const float x0 = ca[0], x1 = cb[0], x2 = cc[0];
#pragma omp simd
        for (int64_t p = 0; p < hw; p++)
            out[p] = x0 * a[p] + x1 * b[p] + x2;
        return;
    }
    for (int64_t p = 0; p < hw; p++)
#pragma omp simd
        for (int64_t k = 0; k < B; k++)
            out[p * B + k] = ca[k] * a[p * B + k] + cb[k] * b[p * B + k] + cc[k];
}

/* Task t: example t / blocks, channel block t % blocks. */
RB_VECTOR_CLONES static void sums_task(const rb_engine *e, enode *en, int64_t t, void *ctx)
{
    const pass *ps = ctx;
    const rb_node *n = en->node;
    const int64_t B = en->channel_block, hw = n->h * n->w, blocks = blocks_of(en);
    const int64_t b = t / blocks, c0 = t % blocks * B, lanes = n->c - c0 < B ? n->c - c0 : B;
    const float *a = ps->a + t * hw * B, *x = ps->b + t * hw * B;
    double s1[16], s2[16], *sums = sums_of(e, en) + 2 * (b * n->c + c0);
    switch ((int)B) {
    case 16: plane_sums(a, x, hw, 16, s1, s2); break;
    case 8: plane_sums(a, x, hw, 8, s1, s2); break;
    default: plane_sums(a, x, hw, 1, s1, s2); break;
    }
    for (int64_t k = 0; k < lanes; k++) {
        sums[2 * k] = s1[k];
        sums[2 * k + 1] = s2[k];
    }
}

RB_VECTOR_CLONES static void apply_task(const rb_engine *e, enode *en, int64_t t, void *ctx)
{
    const pass *ps = ctx;
    const rb_node *n = en->node;
    const int64_t B = en->channel_block, hw = n->h * n->w, blocks = blocks_of(en);
    const int64_t b = t / blocks, c0 = t % blocks * B, lanes = n->c - c0 < B ? n->c - c0 : B;
    const double *coefs = coefs_of(e, en) + 3 * (b * n->c + c0);
    float ca[16] = {0}, cb[16] = {0}, cc[16] = {0};
    const float *a = ps->a + t * hw * B, *x = ps->b + t * hw * B;
    float *out = ps->out + t * hw * B;
    for (int64_t k = 0; k < lanes; k++) {
        ca[k] = (float)coefs[3 * k];
        cb[k] = (float)coefs[3 * k + 1];
        cc[k] = (float)coefs[3 * k + 2];
    }
    switch ((int)B) {
    case 16: plane_apply(a, x, out, hw, 16, ca, cb, cc); break;
    case 8: plane_apply(a, x, out, hw, 8, ca, cb, cc); break;
    default: plane_apply(a, x, out, hw, 1, ca, cb, cc); break;
    }
    if (lanes < B) /* padding: exact zeros, whatever the memory held (0 x NaN is not 0) */
        for (int64_t p = 0; p < hw; p++)
            for (int64_t k = lanes; k < B; k++)
                out[p * B + k] = 0.0f;
}

static rb_status forward(rb_engine *e, enode *en, bool training)
{
    const rb_node *n = en->node;
    const int64_t C = n->c, G = n->attr.groups, per = C / G, count = per * n->h * n->w;
    const float *gamma = rb_node_param(e->g, n, RB_SLOT_WEIGHT)->value;
    const float *beta = rb_node_param(e->g, n, RB_SLOT_BIAS)->value;
    const float *x = eng_floats(e, eng_input_offset(e, en, 0));
    const double *sums = sums_of(e, en);
    double *stats = stats_of(e, en), *coefs = coefs_of(e, en);
    pass ps = {.a = x, .b = x, .out = eng_floats(e, en->value.offset)};
    (void)training; /* the same in both modes */
    eng_parallel_for(e, en, e->batch * blocks_of(en), sums_task, &ps);
    for (int64_t b = 0; b < e->batch; b++)
        for (int64_t g = 0; g < G; g++) {
            double s1 = 0, s2 = 0, mean, var, rstd;
            for (int64_t c = g * per; c < (g + 1) * per; c++) {
                s1 += sums[2 * (b * C + c)];
                s2 += sums[2 * (b * C + c) + 1];
            }
            mean = s1 / (double)count;
            var = s2 / (double)count - mean * mean; /* in double: exact enough for float data */
            rstd = 1.0 / sqrt((var > 0 ? var : 0) + RB_GROUPNORM_EPS);
            stats[2 * (b * G + g)] = mean;
            stats[2 * (b * G + g) + 1] = rstd;
            for (int64_t c = g * per; c < (g + 1) * per; c++) { /* y = (gamma rstd) x + (beta - mean gamma rstd) */
                double scale = (double)gamma[c] * rstd;
                coefs[3 * (b * C + c)] = scale;
                coefs[3 * (b * C + c) + 1] = 0;
                coefs[3 * (b * C + c) + 2] = (double)beta[c] - mean * scale;
            }
        }
    eng_parallel_for(e, en, e->batch * blocks_of(en), apply_task, &ps);
    return RB_OK;
}

/* With xhat = (x - mean) rstd and dxhat = gamma dy, per example and group
 * of count values:
 *   dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),
 *   d gamma = sum dy xhat, d beta = sum dy,
 * from the per-channel sums S1 = sum dy and S2 = sum dy x:
 *   sum dxhat = sum_c gamma S1, sum dxhat xhat = rstd sum_c gamma (S2 - mean S1),
 * so dx = (rstd gamma) dy + (-rstd^2 m2) x + (rstd^2 m2 mean - rstd m1),
 * m1 and m2 the two means. */
static rb_status backward(rb_engine *e, enode *en, bool weight_grads)
{
    const rb_node *n = en->node;
    const int64_t C = n->c, G = n->attr.groups, per = C / G, count = per * n->h * n->w;
    rb_param_tensor *w = rb_node_param(e->g, n, RB_SLOT_WEIGHT), *bias = rb_node_param(e->g, n, RB_SLOT_BIAS);
    const bool want_w = weight_grads && w->trainable && !w->frozen, need_in = eng_input_needs_grad(e, en, 0);
    const float *gamma = w->value;
    const double *sums = sums_of(e, en), *stats = stats_of(e, en);
    double *coefs = coefs_of(e, en);
    pass ps = {.a = eng_floats(e, en->diff.offset), .b = eng_floats(e, eng_input_offset(e, en, 0))};
    eng_parallel_for(e, en, e->batch * blocks_of(en), sums_task, &ps);
    if (want_w) /* over examples in order; added where other nodes apply them too (rb_graph_reuse) */
        for (int64_t c = 0; c < C; c++) {
            double dg = 0, db = 0;
            for (int64_t b = 0; b < e->batch; b++) {
                const double *st = &stats[2 * (b * G + c / per)], s1 = sums[2 * (b * C + c)];
                dg += st[1] * (sums[2 * (b * C + c) + 1] - st[0] * s1);
                db += s1;
            }
            w->grad[c] = (float)(w->users > 1 ? (double)w->grad[c] + dg : dg);
            bias->grad[c] = (float)(bias->users > 1 ? (double)bias->grad[c] + db : db);
        }
    if (!need_in)
        return RB_OK;
    for (int64_t b = 0; b < e->batch; b++)
        for (int64_t g = 0; g < G; g++) {
            const double mean = stats[2 * (b * G + g)], rstd = stats[2 * (b * G + g) + 1];
            double sd = 0, sdx = 0, m1, m2;
            for (int64_t c = g * per; c < (g + 1) * per; c++) {
                const double s1 = sums[2 * (b * C + c)], s2 = sums[2 * (b * C + c) + 1];
                sd += (double)gamma[c] * s1;
                sdx += (double)gamma[c] * (s2 - mean * s1);
            }
            m1 = sd / (double)count;
            m2 = sdx * rstd / (double)count;
            for (int64_t c = g * per; c < (g + 1) * per; c++) {
                coefs[3 * (b * C + c)] = rstd * (double)gamma[c];
                coefs[3 * (b * C + c) + 1] = -rstd * rstd * m2;
                coefs[3 * (b * C + c) + 2] = rstd * rstd * m2 * mean - rstd * m1;
            }
        }
    ps.out = eng_floats(e, eng_grad_offset(e, en, 0));
    eng_parallel_for(e, en, e->batch * blocks_of(en), apply_task, &ps);
    return eng_deliver(e, en, 0);
}

/* Backward reads the input (for xhat), unless it reads a reordered copy. */
static bool reads_input(const rb_engine *e, const enode *en, size_t k)
{
    (void)e;
    return !en->in[k].reordered;
}

/* ------------------------------------------------------------ reference */

static size_t ref_saved(const rb_node *n, int64_t batch)
{
    return (size_t)(2 * batch * n->attr.groups); /* mean and 1 / std per (example, group) */
}

static rb_status ref_forward(rb_reference *r, const rb_node *n, bool training)
{
    const int64_t G = n->attr.groups, count = n->c / G * n->h * n->w;
    const float *gamma = ref_param(r, n, RB_SLOT_WEIGHT), *beta = ref_param(r, n, RB_SLOT_BIAS);
    const double *x = ref_value(r, n->in[0]);
    double *y = ref_value(r, n), *saved = r->saved[n->index];
    (void)training;
    for (int64_t b = 0; b < r->batch; b++)
        for (int64_t g = 0; g < G; g++) {
            const int64_t at = (b * G + g) * count; /* a group's values are contiguous in C x H x W */
            double mean = 0, var = 0, rstd;
            for (int64_t i = 0; i < count; i++)
                mean += x[at + i];
            mean /= (double)count;
            for (int64_t i = 0; i < count; i++)
                var += (x[at + i] - mean) * (x[at + i] - mean);
            var /= (double)count;
            rstd = 1.0 / sqrt(var + RB_GROUPNORM_EPS);
            for (int64_t i = 0; i < count; i++) {
                int64_t c = g * (n->c / G) + i / (n->h * n->w);
                y[at + i] = gamma[c] * (x[at + i] - mean) * rstd + beta[c];
            }
            saved[2 * (b * G + g)] = mean;
            saved[2 * (b * G + g) + 1] = rstd;
        }
    return RB_OK;
}

static rb_status ref_backward(rb_reference *r, const rb_node *n, bool weight_grads)
{
    const int64_t G = n->attr.groups, count = n->c / G * n->h * n->w;
    const float *gamma = ref_param(r, n, RB_SLOT_WEIGHT);
    const double *x = ref_value(r, n->in[0]), *dy = ref_grad(r, n), *saved = r->saved[n->index];
    double *dx = ref_grad(r, n->in[0]);
    double *dw = ref_param_grad(r, n, RB_SLOT_WEIGHT, weight_grads), *db = ref_param_grad(r, n, RB_SLOT_BIAS, weight_grads);
    for (int64_t b = 0; b < r->batch; b++)
        for (int64_t g = 0; g < G; g++) {
            const int64_t at = (b * G + g) * count;
            const double mean = saved[2 * (b * G + g)], rstd = saved[2 * (b * G + g) + 1];
            double m1 = 0, m2 = 0;
            for (int64_t i = 0; i < count; i++) {
                int64_t c = g * (n->c / G) + i / (n->h * n->w);
                double xhat = (x[at + i] - mean) * rstd, dxhat = gamma[c] * dy[at + i];
                m1 += dxhat;
                m2 += dxhat * xhat;
                if (dw != NULL)
                    dw[c] += dy[at + i] * xhat;
                if (db != NULL)
                    db[c] += dy[at + i];
            }
            m1 /= (double)count;
            m2 /= (double)count;
            for (int64_t i = 0; i < count; i++) {
                int64_t c = g * (n->c / G) + i / (n->h * n->w);
                double xhat = (x[at + i] - mean) * rstd;
                dx[at + i] += rstd * (gamma[c] * dy[at + i] - m1 - xhat * m2);
            }
        }
    return RB_OK;
}

const rb_op_def rb_op_groupnorm = {
    .op = RB_OP_GROUPNORM,
    .name = "groupnorm",
    .init_param = init_param,
    .reuse_shape = reuse_shape,
    .plan = plan,
    .forward = forward,
    .backward = backward,
    .reads_input = reads_input,
    .ref_saved = ref_saved,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
};
