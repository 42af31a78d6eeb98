/* mi-fgsm: momentum iterative FGSM (Dong et al., CVPR 2018), built out of tree. Per example: g <- mu * g +
 * grad / ||grad||_1 (g = 0 at a restart's first step), x <- x + alpha * sign(g), back into the Linf ball of eps
 * and [0, 1]; alpha is eps / steps unless step-size is set. */
#include <math.h>
#include <stdlib.h>
#include <robusta/plugin.h>

static const rb_param_spec params[] = {
    {RB_PARAM_EPS, RB_PARAM_FLOAT, "8/255", "[0, 1]", 0, "radius of the Linf ball, in [0,1] pixel units"},
    {"mu", RB_PARAM_FLOAT, "1", "[0, 100]", 0, "decay of the accumulated gradient"},
    {"step-size", RB_PARAM_FLOAT, "0", "[0, 1]", 0, "Linf step; 0: eps / steps"},
    {0}}; /* the end: a NULL name */

typedef struct mi { float *g; double eps, mu, alpha; } mi; /* set by begin; g: a momentum per value of a batch */
static rb_status mi_create(const rb_params *p, void **self)
{
    (void)p;
    return (*self = calloc(1, sizeof(mi))) ? RB_OK : rb_error_set(RB_ERR_OUT_OF_MEMORY, "mi-fgsm: out of memory");
}
static void mi_destroy(void *self) { free(((mi *)self)->g); free(self); }

static rb_status mi_begin(void *self, const rb_params *p, const rb_attack_plan *plan)
{
    mi *m = self;
    if (rb_params_get_float(p, RB_PARAM_EPS, &m->eps) != RB_OK || rb_params_get_float(p, "mu", &m->mu) != RB_OK ||
        rb_params_get_float(p, "step-size", &m->alpha) != RB_OK)
        return rb_last_status();
    m->alpha = m->alpha > 0 ? m->alpha : m->eps / (plan->steps > 0 ? plan->steps : 1); /* 0: eps / steps */
    free(m->g); /* begin may come again, with another plan */
    m->g = calloc((size_t)(plan->batch * plan->channels * plan->height * plan->width), sizeof *m->g);
    return m->g ? RB_OK : rb_error_set(RB_ERR_OUT_OF_MEMORY, "mi-fgsm: no memory for the momentum");
}

static rb_status mi_step(void *self, const rb_params *p, rb_attack_batch *b)
{
    mi *m = self;
    rb_attack_view v = {0};
    rb_status s = rb_attack_batch_view(b, "mi-fgsm", true, &v);
    for (int64_t r = 0, n = v.cols; s == RB_OK && r < v.rows; r++) {
        double l1 = 1e-12; /* a zero gradient adds nothing */
        for (int64_t i = r * n; i < (r + 1) * n; i++)
            l1 += fabs(v.grad[i]);
        for (int64_t i = r * n; i < (r + 1) * n; i++)
            m->g[i] = (float)((b->iteration == 0 ? 0.0 : m->mu * m->g[i]) + v.grad[i] / l1);
    }
    (void)p;
    v.grad = m->g; /* step along sign(g) */
    return s != RB_OK ? s : rb_attack_step_sign(&v, b->targeted ? -m->alpha : m->alpha);
}

static rb_status mi_project(void *self, const rb_params *p, rb_attack_batch *b)
{
    rb_attack_view v;
    rb_status s = rb_attack_batch_view(b, "mi-fgsm", false, &v);
    (void)p;
    return s != RB_OK ? s : rb_attack_project_linf(&v, ((mi *)self)->eps);
}

RB_ATTACK_PLUGIN("mi-fgsm", "1.0", "momentum iterative FGSM in an Linf ball (Dong et al. 2018)", params,
                 .create = mi_create, .destroy = mi_destroy, .begin = mi_begin, .step = mi_step, .project = mi_project);
