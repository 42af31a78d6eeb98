/* pgd-linf: projected gradient descent in an Linf ball (Madry et al., 2018).
 *
 * As in the reference robustness library:
 *   step:     x <- x + a * sign(g)                (sign(0) = 0)
 *   project:  x <- clamp(x0 + clamp(x - x0, -eps, eps), 0, 1)
 *   start:    x <- clamp(x0 + u, 0, 1), u ~ U[-eps, eps) per pixel
 * A targeted attack steps against the gradient. Epsilons are in [0,1] pixel
 * units; fractions such as 8/255 are accepted. */
#include <stddef.h>

#include <robusta/plugin.h>

static const rb_param_spec pgd_linf_params[] = {
    {"eps", RB_PARAM_FLOAT, "8/255", "[0, 1]", 0, "radius of the Linf ball, in [0,1] pixel units"},
    {"step-size", RB_PARAM_FLOAT, "2/255", "(0, 1]", 0, "Linf size of each ascent step"},
    {NULL}};

static float clamp(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static rb_status pgd_linf_random_start(void *self, const rb_params *params, rb_attack_batch *b)
{
    rb_attack_view v;
    double eps;
    rb_status s = rb_attack_batch_view(b, "pgd-linf", false, &v);
    (void)self;
    if (s == RB_OK)
        s = rb_params_get_float(params, "eps", &eps);
    if (s != RB_OK)
        return s;
    for (int64_t r = 0; r < v.rows; r++) {
        rb_rng rng;
        rb_rng_init(&rng, b->seed, b->stream, (uint64_t)(b->first_example + r));
        for (int64_t i = r * v.cols; i < (r + 1) * v.cols; i++) {
            float u = 2.0f * (rb_rng_uniform(&rng) - 0.5f) * (float)eps;
            v.x[i] = clamp(v.x0[i] + u, 0.0f, 1.0f);
        }
    }
    return RB_OK;
}

static rb_status pgd_linf_step(void *self, const rb_params *params, rb_attack_batch *b)
{
    rb_attack_view v;
    double alpha;
    float a;
    rb_status s = rb_attack_batch_view(b, "pgd-linf", true, &v);
    (void)self;
    if (s == RB_OK)
        s = rb_params_get_float(params, "step-size", &alpha);
    if (s != RB_OK)
        return s;
    a = (float)(b->targeted ? -alpha : alpha);
    for (int64_t i = 0; i < v.rows * v.cols; i++)
        v.x[i] += v.grad[i] > 0 ? a : v.grad[i] < 0 ? -a : 0.0f;
    return RB_OK;
}

static rb_status pgd_linf_project(void *self, const rb_params *params, rb_attack_batch *b)
{
    rb_attack_view v;
    double eps;
    float e;
    rb_status s = rb_attack_batch_view(b, "pgd-linf", false, &v);
    (void)self;
    if (s == RB_OK)
        s = rb_params_get_float(params, "eps", &eps);
    if (s != RB_OK)
        return s;
    e = (float)eps;
    for (int64_t i = 0; i < v.rows * v.cols; i++)
        v.x[i] = clamp(v.x0[i] + clamp(v.x[i] - v.x0[i], -e, e), 0.0f, 1.0f);
    return RB_OK;
}

RB_ATTACK_PLUGIN("pgd-linf", "1.0",
                 "projected gradient descent in an Linf ball (Madry et al. 2018)", pgd_linf_params,
                 .random_start = pgd_linf_random_start, .step = pgd_linf_step, .project = pgd_linf_project);
