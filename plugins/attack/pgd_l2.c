/* pgd-l2: projected gradient descent in an L2 ball (Madry et al., 2018).
 *
 * The step, projection and random start follow the reference robustness
 * library (Engstrom et al.) exactly, so published L2 epsilons mean the same
 * thing here:
 *   step:     x <- x + a * g / (||g||_2 + 1e-10)        per example
 *   project:  d <- x - x0; if ||d||_2 > eps: d <- d * eps / (||d||_2 + 1e-7)
 *             (torch.renorm); x <- clamp(x0 + d, 0, 1)
 *   start:    x <- clamp(x0 + eps * z / (||z||_2 + 1e-10), 0, 1), z ~ N(0, I)
 * A targeted attack steps against the gradient. Norms are accumulated in
 * double. */
#include <math.h>
#include <stddef.h>

#include <robusta/plugin.h>

static const rb_param_spec pgd_l2_params[] = {
    {"eps", RB_PARAM_FLOAT, "0.5", "[0, inf)", 0, "radius of the L2 ball, in [0,1] pixel units"},
    {"step-size", RB_PARAM_FLOAT, "0.1", "(0, inf)", 0, "L2 length of each ascent step"},
    {NULL}};

/* Rows and row length of the batch, after checking the tensors agree. */
static double l2_norm(const float *v, int64_t n)
{
    double sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)v[i] * v[i];
    return sqrt(sum);
}

static float clamp01(float v)
{
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

static rb_status pgd_l2_random_start(void *self, const rb_params *params, rb_attack_batch *b)
{
    rb_attack_view v;
    double eps;
    rb_status s = rb_attack_batch_view(b, "pgd-l2", false, &v);
    (void)self;
    if (s == RB_OK)
        s = rb_params_get_float(params, "eps", &eps);
    if (s != RB_OK)
        return s;
    for (int64_t r = 0; r < v.rows; r++) {
        rb_rng rng;
        float *x = v.x + r * v.cols;
        const float *x0 = v.x0 + r * v.cols;
        double scale;
        rb_rng_init(&rng, b->seed, b->stream, (uint64_t)(b->first_example + r));
        for (int64_t i = 0; i < v.cols; i++)
            x[i] = rb_rng_normal(&rng); /* the direction z, kept in x until scaled */
        scale = eps / (l2_norm(x, v.cols) + 1e-10);
        for (int64_t i = 0; i < v.cols; i++)
            x[i] = clamp01(x0[i] + (float)(scale * x[i]));
    }
    return RB_OK;
}

static rb_status pgd_l2_step(void *self, const rb_params *params, rb_attack_batch *b)
{
    rb_attack_view v;
    double alpha;
    rb_status s = rb_attack_batch_view(b, "pgd-l2", true, &v);
    (void)self;
    if (s == RB_OK)
        s = rb_params_get_float(params, "step-size", &alpha);
    if (s != RB_OK)
        return s;
    if (b->targeted)
        alpha = -alpha;
    for (int64_t r = 0; r < v.rows; r++) {
        const float *g = v.grad + r * v.cols;
        float *x = v.x + r * v.cols;
        double scale = alpha / (l2_norm(g, v.cols) + 1e-10);
        for (int64_t i = 0; i < v.cols; i++)
            x[i] += (float)(scale * g[i]);
    }
    return RB_OK;
}

static rb_status pgd_l2_project(void *self, const rb_params *params, rb_attack_batch *b)
{
    rb_attack_view v;
    double eps;
    rb_status s = rb_attack_batch_view(b, "pgd-l2", false, &v);
    (void)self;
    if (s == RB_OK)
        s = rb_params_get_float(params, "eps", &eps);
    if (s != RB_OK)
        return s;
    for (int64_t r = 0; r < v.rows; r++) {
        float *x = v.x + r * v.cols;
        const float *x0 = v.x0 + r * v.cols;
        double sum = 0, norm, scale = 1;
        for (int64_t i = 0; i < v.cols; i++) {
            double d = (double)x[i] - x0[i];
            sum += d * d;
        }
        norm = sqrt(sum);
        if (norm > eps)
            scale = eps / (norm + 1e-7); /* torch.renorm's epsilon */
        for (int64_t i = 0; i < v.cols; i++)
            x[i] = clamp01(x0[i] + (float)(scale * ((double)x[i] - x0[i])));
    }
    return RB_OK;
}

RB_ATTACK_PLUGIN("pgd-l2", "1.0",
                 "projected gradient descent in an L2 ball (Madry et al. 2018)", pgd_l2_params,
                 .random_start = pgd_l2_random_start, .step = pgd_l2_step, .project = pgd_l2_project);
