/* fgsm: the fast gradient sign method (Goodfellow et al., 2015) as an
 * out-of-tree robusta attack plugin.
 *
 * FGSM is one Linf step of size eps from the clean image:
 *     x_adv = clamp(x + eps * sign(d loss / d x), 0, 1)
 * Written in the step-based shape, robusta's PGD loop runs it with one step
 * (and, with --random-start, it becomes "FGSM with a random start" of Wong
 * et al., 2020, for which a step of 1.25 eps is usual: --step-scale 1.25).
 *
 * Build against an installed robusta and try it:
 *     cc -shared -fPIC $(pkg-config --cflags robusta) fgsm.c -o fgsm.so
 *     RB_PLUGIN_PATH=$PWD robusta plugins fgsm
 */
#include <stddef.h>

#include <robusta/plugin.h>

static const rb_param_spec fgsm_params[] = {
    {RB_PARAM_EPS, RB_PARAM_FLOAT, "8/255", "[0, 1]", 0, "radius of the Linf ball, in [0,1] pixel units"},
    {"step-scale", RB_PARAM_FLOAT, "1", "(0, 10]", 0, "step size as a multiple of eps"},
    {0}}; /* the end: a NULL name */

/* Every callback starts here: the batch as arrays, and eps. */
static rb_status prepare(const rb_params *params, const rb_attack_batch *b, bool need_grad,
                         rb_attack_view *v, double *eps)
{
    rb_status s = rb_attack_batch_view(b, "fgsm", need_grad, v);
    if (s != RB_OK)
        return s;
    return rb_params_get_float(params, RB_PARAM_EPS, eps);
}

/* Uniform in the ball; each example draws from its own stream, so results
 * do not depend on batching (robusta/plugin.h's helpers do the arithmetic). */
static rb_status fgsm_random_start(void *self, const rb_params *params, rb_attack_batch *b)
{
    rb_attack_view v;
    double eps;
    rb_status s = prepare(params, b, false, &v, &eps);
    (void)self;
    return s != RB_OK ? s : rb_attack_sample_linf(&v, b, eps);
}

static rb_status fgsm_step(void *self, const rb_params *params, rb_attack_batch *b)
{
    rb_attack_view v;
    double eps, scale;
    rb_status s = prepare(params, b, true, &v, &eps);
    (void)self;
    if (s == RB_OK)
        s = rb_params_get_float(params, "step-scale", &scale);
    if (s != RB_OK)
        return s;
    /* x <- x + step * sign(grad), against the gradient when targeted */
    return rb_attack_step_sign(&v, b->targeted ? -(eps * scale) : eps * scale);
}

static rb_status fgsm_project(void *self, const rb_params *params, rb_attack_batch *b)
{
    rb_attack_view v;
    double eps;
    rb_status s = prepare(params, b, false, &v, &eps);
    (void)self;
    return s != RB_OK ? s : rb_attack_project_linf(&v, eps);
}

RB_ATTACK_PLUGIN("fgsm", "1.0",
                 "fast gradient sign method: one Linf step of eps (Goodfellow et al. 2015)",
                 fgsm_params,
                 .random_start = fgsm_random_start, .step = fgsm_step, .project = fgsm_project);
