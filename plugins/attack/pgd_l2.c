/* pgd-l2: projected gradient descent in an L2 ball (Madry et al., 2018).
 *
 * The step, projection and random start follow the reference robustness
 * library (Engstrom et al.) exactly, so published L2 epsilons mean the same
 * thing here (RB_ATTACK_L2_ROBUSTNESS in robusta/plugin.h):
 *   step:     x <- x + a * g / (||g||_2 + 1e-10)        per example
 *   project:  d <- x - x0; if ||d||_2 > eps: d <- d * eps / (||d||_2 + 1e-7)
 *             (torch.renorm); x <- clamp(x0 + d, 0, 1)
 *   start:    x <- clamp(x0 + eps * z / (||z||_2 + 1e-10), 0, 1), z ~ N(0, I)
 * A targeted attack steps against the gradient. Norms are accumulated in
 * double. */
#include <stddef.h>

#include <robusta/plugin.h>

#define WHO "pgd-l2"

static const rb_param_spec pgd_l2_params[] = {
    {RB_PARAM_EPS, RB_PARAM_FLOAT, "0.5", "[0, inf)", 0, "radius of the L2 ball, in [0,1] pixel units"},
    {"step-size", RB_PARAM_FLOAT, "0.1", "(0, inf)", 0, "L2 length of each ascent step"},
    {NULL}};

/* The batch as arrays, and the parameter `name`. */
static rb_status prepare(const rb_params *params, const rb_attack_batch *b, bool need_grad, const char *name,
                         rb_attack_view *v, double *value)
{
    rb_status s = rb_attack_batch_view(b, WHO, need_grad, v);
    return s != RB_OK ? s : rb_params_get_float(params, name, value);
}

static rb_status pgd_l2_random_start(void *self, const rb_params *params, rb_attack_batch *b)
{
    rb_attack_view v;
    double eps;
    rb_status s = prepare(params, b, false, RB_PARAM_EPS, &v, &eps);
    (void)self;
    return s != RB_OK ? s : rb_attack_sample_l2_sphere(&v, b, eps, RB_ATTACK_L2_ROBUSTNESS);
}

static rb_status pgd_l2_step(void *self, const rb_params *params, rb_attack_batch *b)
{
    rb_attack_view v;
    double alpha;
    rb_status s = prepare(params, b, true, "step-size", &v, &alpha);
    (void)self;
    return s != RB_OK ? s : rb_attack_step_l2(&v, b->targeted ? -alpha : alpha, RB_ATTACK_L2_ROBUSTNESS);
}

static rb_status pgd_l2_project(void *self, const rb_params *params, rb_attack_batch *b)
{
    rb_attack_view v;
    double eps;
    rb_status s = prepare(params, b, false, RB_PARAM_EPS, &v, &eps);
    (void)self;
    return s != RB_OK ? s : rb_attack_project_l2(&v, eps, RB_ATTACK_L2_ROBUSTNESS);
}

RB_ATTACK_PLUGIN("pgd-l2", "1.0",
                 "projected gradient descent in an L2 ball (Madry et al. 2018)", pgd_l2_params,
                 .random_start = pgd_l2_random_start, .step = pgd_l2_step, .project = pgd_l2_project);
