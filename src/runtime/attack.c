/* Helpers for attack plugins (robusta/plugin.h): the batch as arrays, and
 * the common pieces (steps, projections, random starts) with the arithmetic
 * of the reference implementations. The PGD loop that drives step-based
 * attacks comes with the engine (src/experiment/attack.c). */
#include "config.h"

#include <math.h>

#include <robusta/plugin.h>

rb_status rb_attack_batch_view(const rb_attack_batch *b, const char *who, bool need_grad,
                               rb_attack_view *view)
{
    const rb_tensor *tensors[3] = {b->x_adv, b->x_clean, b->grad};
    const char *names[3] = {"x_adv", "x_clean", "grad"};

    for (int i = 0; i < (need_grad ? 3 : 2); i++) {
        const rb_tensor *t = tensors[i];
        if (t == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the batch has no %s tensor", who,
                                names[i]);
        if (rb_tensor_dtype(t) != RB_DTYPE_F32 || rb_tensor_ndim(t) < 1)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: %s must be f32 with a batch dimension (it is %s, %d-d)", who,
                                names[i], rb_dtype_str(rb_tensor_dtype(t)), rb_tensor_ndim(t));
        if (rb_tensor_numel(t) != rb_tensor_numel(b->x_adv) ||
            rb_tensor_dim(t, 0) != rb_tensor_dim(b->x_adv, 0))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: %s has %lld values in %lld rows, x_adv %lld in %lld", who,
                                names[i], (long long)rb_tensor_numel(t),
                                (long long)rb_tensor_dim(t, 0),
                                (long long)rb_tensor_numel(b->x_adv),
                                (long long)rb_tensor_dim(b->x_adv, 0));
    }
    view->rows = rb_tensor_dim(b->x_adv, 0);
    view->cols = view->rows > 0 ? rb_tensor_numel(b->x_adv) / view->rows : 0;
    view->x = rb_tensor_data(b->x_adv);
    view->x0 = rb_tensor_cdata(b->x_clean);
    view->grad = need_grad ? rb_tensor_cdata(b->grad) : NULL;
    return RB_OK;
}

/* ------------------------------------------------------------ the common pieces */

static rb_status check_view(const rb_attack_view *v, const char *who, bool need_grad)
{
    if (v == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the view is NULL", who);
    if (v->rows < 0 || v->cols < 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the view has %lld rows of %lld values (both must be >= 0)",
                            who, (long long)v->rows, (long long)v->cols);
    if (v->rows > 0 && v->cols > 0 && (v->x == NULL || v->x0 == NULL || (need_grad && v->grad == NULL)))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the view has no %s array%s", who,
                            v->x == NULL ? "x" : v->x0 == NULL ? "x0" : "grad",
                            v->x != NULL && v->x0 != NULL ? " (ask rb_attack_batch_view for the gradient)" : "");
    return RB_OK;
}

static rb_status check_number(const char *who, const char *what, double value, bool nonnegative)
{
    if (!isfinite(value) || (nonnegative && value < 0))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: %s is %g; it must be finite%s", who, what, value,
                            nonnegative ? " and >= 0" : "");
    return RB_OK;
}

/* The constant a reference adds to a norm before dividing by it (0 for an
 * unknown rule, which check_rule refuses first). */
static double l2_tiny(rb_attack_l2_rule rule)
{
    return rule == RB_ATTACK_L2_ROBUSTNESS ? 1e-10 : rule == RB_ATTACK_L2_AUTOATTACK ? 1e-12 : 0;
}

static rb_status check_rule(const char *who, rb_attack_l2_rule rule)
{
    if (rule != RB_ATTACK_L2_ROBUSTNESS && rule != RB_ATTACK_L2_AUTOATTACK)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s: unknown L2 rule %d (RB_ATTACK_L2_ROBUSTNESS or RB_ATTACK_L2_AUTOATTACK)", who,
                            (int)rule);
    return RB_OK;
}

static rb_status check_batch(const char *who, const rb_attack_batch *b)
{
    if (b == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the batch (its seed, stream and first example) is NULL",
                            who);
    if (b->first_example < 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the batch's first example is %lld (it must be >= 0)", who,
                            (long long)b->first_example);
    return RB_OK;
}

static double row_norm(const float *v, int64_t n)
{
    double sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)v[i] * v[i];
    return sqrt(sum);
}

static float clamp(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

rb_status rb_attack_step_sign(const rb_attack_view *v, double alpha)
{
    const char *who = "rb_attack_step_sign";
    rb_status s = check_view(v, who, true);
    float a;
    if (s == RB_OK)
        s = check_number(who, "the step", alpha, false);
    if (s != RB_OK)
        return s;
    a = (float)alpha;
    for (int64_t i = 0; i < v->rows * v->cols; i++)
        v->x[i] += v->grad[i] > 0 ? a : v->grad[i] < 0 ? -a : 0.0f;
    return RB_OK;
}

rb_status rb_attack_step_l2(const rb_attack_view *v, double alpha, rb_attack_l2_rule rule)
{
    const char *who = "rb_attack_step_l2";
    rb_status s = check_view(v, who, true);
    if (s == RB_OK)
        s = check_number(who, "the step", alpha, false);
    if (s == RB_OK)
        s = check_rule(who, rule);
    if (s != RB_OK)
        return s;
    for (int64_t r = 0; r < v->rows; r++) {
        const float *g = v->grad + r * v->cols;
        float *x = v->x + r * v->cols;
        double scale = alpha / (row_norm(g, v->cols) + l2_tiny(rule));
        for (int64_t i = 0; i < v->cols; i++)
            x[i] += (float)(scale * g[i]);
    }
    return RB_OK;
}

rb_status rb_attack_project_linf(const rb_attack_view *v, double eps)
{
    const char *who = "rb_attack_project_linf";
    rb_status s = check_view(v, who, false);
    float e;
    if (s == RB_OK)
        s = check_number(who, "eps", eps, true);
    if (s != RB_OK)
        return s;
    e = (float)eps;
    for (int64_t i = 0; i < v->rows * v->cols; i++)
        v->x[i] = clamp(v->x0[i] + clamp(v->x[i] - v->x0[i], -e, e), 0.0f, 1.0f);
    return RB_OK;
}

rb_status rb_attack_project_l2(const rb_attack_view *v, double eps, rb_attack_l2_rule rule)
{
    const char *who = "rb_attack_project_l2";
    rb_status s = check_view(v, who, false);
    if (s == RB_OK)
        s = check_number(who, "eps", eps, true);
    if (s == RB_OK)
        s = check_rule(who, rule);
    if (s != RB_OK)
        return s;
    for (int64_t r = 0; r < v->rows; r++) {
        float *x = v->x + r * v->cols;
        const float *x0 = v->x0 + r * v->cols;
        double sum = 0, norm, scale = 1;
        for (int64_t i = 0; i < v->cols; i++) {
            double d = (double)x[i] - x0[i];
            sum += d * d;
        }
        norm = sqrt(sum);
        if (rule == RB_ATTACK_L2_AUTOATTACK)
            scale = (norm < eps ? norm : eps) / (norm + 1e-12);
        else if (norm > eps)
            scale = eps / (norm + 1e-7); /* torch.renorm's epsilon */
        for (int64_t i = 0; i < v->cols; i++)
            x[i] = clamp(x0[i] + (float)(scale * ((double)x[i] - x0[i])), 0.0f, 1.0f);
    }
    return RB_OK;
}

/* What every random start checks. */
static rb_status check_sample(const char *who, const rb_attack_view *v, const rb_attack_batch *b, double eps)
{
    rb_status s = check_view(v, who, false);
    if (s == RB_OK)
        s = check_batch(who, b);
    if (s == RB_OK)
        s = check_number(who, "eps", eps, true);
    return s;
}

rb_status rb_attack_sample_linf(const rb_attack_view *v, const rb_attack_batch *b, double eps)
{
    rb_status s = check_sample("rb_attack_sample_linf", v, b, eps);
    if (s != RB_OK)
        return s;
    for (int64_t r = 0; r < v->rows; r++) {
        rb_rng rng;
        rb_rng_init(&rng, b->seed, b->stream, (uint64_t)rb_attack_example(b, r));
        for (int64_t i = r * v->cols; i < (r + 1) * v->cols; i++) {
            float u = 2.0f * (rb_rng_uniform(&rng) - 0.5f) * (float)eps;
            v->x[i] = clamp(v->x0[i] + u, 0.0f, 1.0f);
        }
    }
    return RB_OK;
}

/* Row r of x <- clamp(x0 + (float)(scale * z), 0, 1) after drawing z ~ N(0, I)
 * into x; scale from the norm of z and, for the ball, one uniform draw. */
static rb_status sample_l2(const char *who, const rb_attack_view *v, const rb_attack_batch *b, double eps,
                           rb_attack_l2_rule rule, bool volume)
{
    rb_status s = check_sample(who, v, b, eps);
    if (s == RB_OK && !volume)
        s = check_rule(who, rule);
    if (s != RB_OK)
        return s;
    for (int64_t r = 0; r < v->rows; r++) {
        rb_rng rng;
        float *x = v->x + r * v->cols;
        const float *x0 = v->x0 + r * v->cols;
        double scale, norm;
        rb_rng_init(&rng, b->seed, b->stream, (uint64_t)rb_attack_example(b, r));
        for (int64_t i = 0; i < v->cols; i++)
            x[i] = rb_rng_normal(&rng); /* the direction z, kept in x until scaled */
        norm = row_norm(x, v->cols);
        if (volume)
            scale = norm > 0 ? eps * pow((double)rb_rng_uniform(&rng), 1.0 / (double)v->cols) / norm : 0;
        else
            scale = eps / (norm + l2_tiny(rule));
        for (int64_t i = 0; i < v->cols; i++)
            x[i] = clamp(x0[i] + (float)(scale * x[i]), 0.0f, 1.0f);
    }
    return RB_OK;
}

rb_status rb_attack_sample_l2_sphere(const rb_attack_view *v, const rb_attack_batch *b, double eps,
                                     rb_attack_l2_rule rule)
{
    return sample_l2("rb_attack_sample_l2_sphere", v, b, eps, rule, false);
}

rb_status rb_attack_sample_l2_ball(const rb_attack_view *v, const rb_attack_batch *b, double eps)
{
    return sample_l2("rb_attack_sample_l2_ball", v, b, eps, RB_ATTACK_L2_ROBUSTNESS, true);
}
