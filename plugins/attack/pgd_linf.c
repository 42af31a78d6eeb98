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

#define WHO "pgd-linf"

static const rb_param_spec pgd_linf_params[] = {
    {RB_PARAM_EPS, RB_PARAM_FLOAT, "8/255", "[0, 1]", 0, "radius of the Linf ball, in [0,1] pixel units"},
    {"step-size", RB_PARAM_FLOAT, "2/255", "(0, 1]", 0, "Linf size of each ascent step"},
    {NULL}};

/* The batch as arrays, and the parameter `name`. */
static rb_status prepare(const rb_params *params, const rb_attack_batch *b, bool need_grad, const char *name,
                         rb_attack_view *v, double *value)
{
    rb_status s = rb_attack_batch_view(b, WHO, need_grad, v);
    return s != RB_OK ? s : rb_params_get_float(params, name, value);
}

static rb_status pgd_linf_random_start(void *self, const rb_params *params, rb_attack_batch *b)
{
    rb_attack_view v;
    double eps;
    rb_status s = prepare(params, b, false, RB_PARAM_EPS, &v, &eps);
    (void)self;
    return s != RB_OK ? s : rb_attack_sample_linf(&v, b, eps);
}

static rb_status pgd_linf_step(void *self, const rb_params *params, rb_attack_batch *b)
{
    rb_attack_view v;
    double alpha;
    rb_status s = prepare(params, b, true, "step-size", &v, &alpha);
    (void)self;
    return s != RB_OK ? s : rb_attack_step_sign(&v, b->targeted ? -alpha : alpha);
}

static rb_status pgd_linf_project(void *self, const rb_params *params, rb_attack_batch *b)
{
    rb_attack_view v;
    double eps;
    rb_status s = prepare(params, b, false, RB_PARAM_EPS, &v, &eps);
    (void)self;
    return s != RB_OK ? s : rb_attack_project_linf(&v, eps);
}

RB_ATTACK_PLUGIN("pgd-linf", "1.0",
                 "projected gradient descent in an Linf ball (Madry et al. 2018)", pgd_linf_params,
                 .random_start = pgd_linf_random_start, .step = pgd_linf_step, .project = pgd_linf_project);
