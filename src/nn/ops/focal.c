/* Sigmoid focal loss (torchvision.ops.sigmoid_focal_loss, reduction
 * 'sum', divided by a normalizer), in plain C on plain inputs. Per-plane
 * sums are added in a fixed order, so the result does not depend on the
 * thread count. */
#include "config.h"

#include <math.h>
#include <stdio.h>

#include "nn/op.h"
#include "tensor/vmath.h"

rb_status rb_graph_sigmoid_focal_loss(rb_graph *g, rb_node *logits, rb_node *targets, const rb_focal_desc *desc,
                                      rb_node **out)
{
    rb_node *in[2] = {logits, targets};
    rb_node *n;
    rb_status s = graph_check_node(g, RB_OP_FOCAL, NULL, in, 2);
    if (s != RB_OK)
        return s;
    if (desc == NULL || !isfinite(desc->alpha) || desc->alpha > 1 || !(desc->gamma >= 0) || !isfinite(desc->gamma) ||
        !(desc->normalizer >= 0) || !isfinite(desc->normalizer))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "focal loss on '%s': alpha must be in [0, 1] (or negative for none), gamma >= 0 and the "
                            "normalizer >= 0 (0: the positives), all finite",
                            logits->name);
    if (logits->c != targets->c || logits->h != targets->h || logits->w != targets->w)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "focal loss: logits '%s' are %lldx%lldx%lld but targets '%s' are %lldx%lldx%lld; they "
                            "must match",
                            logits->name, (long long)logits->c, (long long)logits->h, (long long)logits->w,
                            targets->name, (long long)targets->c, (long long)targets->h, (long long)targets->w);
    s = graph_add_node(g, RB_OP_FOCAL, NULL, in, 2, 1, 1, 1, &n);
    if (s != RB_OK)
        return s;
    n->attr.focal = *desc;
    *out = n;
    return RB_OK;
}

static bool passes_grad(const rb_node *n, size_t k)
{
    (void)n;
    return k == 0; /* the targets get none */
}

/* The loss of one element and its derivative with respect to x (double). */
static double focal(const rb_focal_desc *d, double x, double t, double *dx)
{
    double p = 1.0 / (1.0 + exp(-x));
    double ce = fmax(x, 0.0) - x * t + log1p(exp(-fabs(x))); /* BCE with logits, stable */
    double p_t = p * t + (1 - p) * (1 - t), m = 1 - p_t;
    double a = d->alpha >= 0 ? d->alpha * t + (1 - d->alpha) * (1 - t) : 1.0;
    double mg = d->gamma == 0 ? 1.0 : pow(m, d->gamma);
    if (dx != NULL) {
        /* d ce/dx = p - t; d m/dx = -(2t - 1) p (1 - p) */
        double dmg = d->gamma == 0 || m <= 0 ? 0.0 : d->gamma * pow(m, d->gamma - 1) * (-(2 * t - 1) * p * (1 - p));
        *dx = a * ((p - t) * mg + ce * dmg);
    }
    return a * ce * mg;
}

/* ------------------------------------------------------------ engine */

/* The same in float for the engine's loops, which vectorize: exp and
 * log1p from tensor/vmath.h, 1 - p_t formed without cancellation as
 * t (1 - p) + (1 - t) p with 1 - p = sigmoid(-x), and m^gamma by
 * multiplication for whole gammas up to 4 (`whole`; -1: powf, which
 * does not vectorize). */
static inline float focal_float(float wa, float wb, float gamma, int whole, float x, float t, bool grad)
{
    const float e = rb_vexpf(-fabsf(x)), inv = 1.0f / (1.0f + e);
    const int positive = rb_vpositive(x); /* no float comparison: see tensor/vmath.h */
    const float p = positive ? inv : e * inv, q = positive ? e * inv : inv; /* sigmoid(x), sigmoid(-x) */
    const float ce = (positive ? x : 0.0f) - x * t + rb_vlog1pf_unit(e);
    const float m = t * q + (1 - t) * p;
    const float a = wa * t + wb * (1 - t); /* alpha_t: wa = alpha, wb = 1 - alpha, or both 1 */
    float mg1 = 1, mg; /* m^(gamma - 1), m^gamma */
    if (whole >= 0) {
        for (int i = 1; i < whole; i++)
            mg1 *= m;
        mg = whole > 0 ? mg1 * m : 1;
    } else {
        mg = powf(m, gamma);
        mg1 = m > 0 ? powf(m, gamma - 1) : 0;
    }
    if (grad) /* as focal(): d ce/dx = p - t, d m/dx = -(2t - 1) p (1 - p) */
        return a * ((p - t) * mg + (whole == 0 ? 0.0f : ce * gamma * mg1 * (-(2 * t - 1) * p * q)));
    return a * ce * mg;
}

/* The loops over one plane, forward (the loss summed, and the positives)
 * and backward (the gradient, scaled). Inlined where `whole` is a
 * constant (see by_gamma), so that the loops vectorize. */
static inline __attribute__((always_inline)) void focal_loop(int whole, float wa, float wb, float gamma, const float *x,
                                                             const float *t, int64_t count, double *loss,
                                                             double *positives, float *dx, float scale)
{
    double sum = 0, pos = 0;
    if (whole < 0) { /* powf: no vector loops (clang would say so, as an error under -Werror) */
        for (int64_t i = 0; dx == NULL && i < count; i++) {
            sum += focal_float(wa, wb, gamma, whole, x[i], t[i], false);
            pos += rb_vpositive(0.5f - t[i]) ? 0.0 : 1.0;
        }
        for (int64_t i = 0; dx != NULL && i < count; i++)
            dx[i] = focal_float(wa, wb, gamma, whole, x[i], t[i], true) * scale;
    } else if (dx == NULL) {
#pragma omp simd reduction(+ : sum, pos)
        for (int64_t i = 0; i < count; i++) {
            sum += focal_float(wa, wb, gamma, whole, x[i], t[i], false);
            pos += rb_vpositive(0.5f - t[i]) ? 0.0 : 1.0; /* t > 0.5 */
        }
    } else {
#pragma omp simd
        for (int64_t i = 0; i < count; i++)
            dx[i] = focal_float(wa, wb, gamma, whole, x[i], t[i], true) * scale;
    }
    if (dx == NULL) {
        *loss = sum;
        *positives = pos;
    }
}

RB_VECTOR_CLONES static void by_gamma(const rb_focal_desc *d, const float *x, const float *t, int64_t count, double *loss,
                     double *positives, float *dx, float scale)
{
    const float wa = d->alpha >= 0 ? (float)d->alpha : 1.0f, wb = d->alpha >= 0 ? 1.0f - (float)d->alpha : 1.0f;
    const float gamma = (float)d->gamma;
    switch (d->gamma == floor(d->gamma) && d->gamma <= 4 ? (int)d->gamma : -1) {
    case 0: focal_loop(0, wa, wb, gamma, x, t, count, loss, positives, dx, scale); break;
    case 1: focal_loop(1, wa, wb, gamma, x, t, count, loss, positives, dx, scale); break;
    case 2: focal_loop(2, wa, wb, gamma, x, t, count, loss, positives, dx, scale); break;
    case 3: focal_loop(3, wa, wb, gamma, x, t, count, loss, positives, dx, scale); break;
    case 4: focal_loop(4, wa, wb, gamma, x, t, count, loss, positives, dx, scale); break;
    default: focal_loop(-1, wa, wb, gamma, x, t, count, loss, positives, dx, scale); break;
    }
}

/* aux[0]: per (example, channel) plane the loss sum and positives, doubles */
static rb_status plan(rb_engine *e, enode *en)
{
    const rb_node *n = en->node, *logits = n->in[0];
    dnnl_memory_desc_t plain, lmd, planes;
    dnnl_dims_t ldims = {e->batch, 1}, pdims = {e->batch * logits->c * 2 * (int64_t)sizeof(double)};
    rb_status s;
    eng_md_node_plain(e, logits, &plain);
    eng_md_plain(&lmd, 2, ldims);
    dnnl_memory_desc_init_by_tag(&planes, 1, pdims, dnnl_u8, dnnl_a);
    snprintf(en->impl, sizeof en->impl, "robusta:sigmoid_focal_loss");
    s = eng_plan_input(e, en, 0, &plain);
    if (s == RB_OK)
        s = eng_plan_input(e, en, 1, &plain);
    if (s == RB_OK)
        s = eng_value_plan(e, en, &lmd);
    if (s == RB_OK)
        s = eng_diff_plan(e, &en->diff, &lmd, n);
    if (s == RB_OK)
        s = eng_slot_plan(e, &en->aux[0], &planes, n);
    if (s == RB_OK)
        s = eng_plan_grad_edge(e, en, 0, &plain);
    return s;
}

static void forward_plane(const rb_engine *e, enode *en, int64_t plane, void *ctx)
{
    const rb_node *l = en->node->in[0];
    const int64_t hw = l->h * l->w;
    const float *x = eng_floats(e, eng_input_offset(e, en, 0)) + plane * hw;
    const float *t = eng_floats(e, eng_input_offset(e, en, 1)) + plane * hw;
    double *sums = eng_doubles(e, en->aux[0].offset);
    (void)ctx;
    by_gamma(&en->node->attr.focal, x, t, hw, &sums[2 * plane], &sums[2 * plane + 1], NULL, 0);
}

static rb_status forward(rb_engine *e, enode *en, bool training)
{
    const rb_node *n = en->node;
    const int64_t planes = e->batch * n->in[0]->c;
    double *sums = eng_doubles(e, en->aux[0].offset), positives = 0;
    float *loss = eng_floats(e, en->value.offset);
    (void)training;
    eng_parallel_for(e, en, planes, forward_plane, NULL);
    for (int64_t p = 0; p < planes; p++)
        positives += sums[2 * p + 1];
    en->op_scalar = n->attr.focal.normalizer > 0 ? n->attr.focal.normalizer : fmax(positives, 1.0);
    for (int64_t b = 0; b < e->batch; b++) {
        double total = 0;
        for (int64_t c = 0; c < n->in[0]->c; c++)
            total += sums[2 * (b * n->in[0]->c + c)];
        loss[b] = (float)(total * (double)e->batch / en->op_scalar);
    }
    return RB_OK;
}

static void backward_plane(const rb_engine *e, enode *en, int64_t plane, void *ctx)
{
    const rb_node *l = en->node->in[0];
    const int64_t hw = l->h * l->w;
    const float *x = eng_floats(e, eng_input_offset(e, en, 0)) + plane * hw;
    const float *t = eng_floats(e, eng_input_offset(e, en, 1)) + plane * hw;
    float *dz = eng_floats(e, eng_grad_offset(e, en, 0)) + plane * hw;
    (void)ctx;
    by_gamma(&en->node->attr.focal, x, t, hw, NULL, NULL, dz, (float)(1.0 / en->op_scalar));
}

static rb_status backward(rb_engine *e, enode *en, bool weight_grads)
{
    (void)weight_grads;
    eng_parallel_for(e, en, e->batch * en->node->in[0]->c, backward_plane, NULL);
    return eng_deliver(e, en, 0);
}

/* Backward recomputes from the logits and the targets. */
static bool reads_input(const rb_engine *e, const enode *en, size_t k)
{
    (void)e;
    return !en->in[k].reordered;
}

/* ------------------------------------------------------------ reference */

static size_t ref_saved(const rb_node *n, int64_t batch)
{
    (void)n;
    (void)batch;
    return 1; /* the normalizer */
}

static rb_status ref_forward(rb_reference *r, const rb_node *n, bool training)
{
    int64_t size = ref_node_size(n->in[0]);
    const double *x = ref_value(r, n->in[0]), *t = ref_value(r, n->in[1]);
    double *loss = ref_value(r, n), positives = 0, norm;
    (void)training;
    for (int64_t i = 0; i < r->batch * size; i++)
        positives += t[i] > 0.5;
    norm = n->attr.focal.normalizer > 0 ? n->attr.focal.normalizer : fmax(positives, 1.0);
    for (int64_t b = 0; b < r->batch; b++) {
        loss[b] = 0;
        for (int64_t i = 0; i < size; i++)
            loss[b] += focal(&n->attr.focal, x[b * size + i], t[b * size + i], NULL);
        loss[b] *= (double)r->batch / norm;
    }
    r->saved[n->index][0] = norm;
    return RB_OK;
}

static rb_status ref_backward(rb_reference *r, const rb_node *n, bool weight_grads)
{
    int64_t size = ref_node_size(n->in[0]);
    const double *x = ref_value(r, n->in[0]), *t = ref_value(r, n->in[1]), *dy = ref_grad(r, n);
    double *dx = ref_grad(r, n->in[0]), norm = r->saved[n->index][0];
    (void)weight_grads;
    for (int64_t b = 0; b < r->batch; b++)
        for (int64_t i = 0; i < size; i++) {
            double d;
            focal(&n->attr.focal, x[b * size + i], t[b * size + i], &d);
            dx[b * size + i] += dy[b] * (double)r->batch * d / norm;
        }
    return RB_OK;
}

const rb_op_def rb_op_focal = {
    .op = RB_OP_FOCAL,
    .name = "sigmoid_focal_loss",
    .loss = true,
    .passes_grad = passes_grad,
    .plan = plan,
    .forward = forward,
    .backward = backward,
    .reads_input = reads_input,
    .ref_saved = ref_saved,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
};
