/* apgd-ce: Auto-PGD on the cross-entropy loss (Croce & Hein, ICML 2020,
 * "Reliable evaluation of adversarial robustness with an ensemble of diverse
 * parameter-free attacks", Algorithm 1), a whole-run attack.
 *
 * As in the reference implementation (autoattack's APGDAttack, loss "ce"),
 * everything per example:
 *   start:    x0 = x_clean, or a random start: Linf uniform in [-eps, eps)
 *             per pixel, L2 eps * z / (||z||_2 + 1e-12) with z ~ N(0, I);
 *             then clamped to [0, 1]
 *   step size eta = 2 * eps
 *   x1      = P(x0 + eta * s(g0))
 *   z       = P(xk + eta * s(gk))
 *   x(k+1)  = P(xk + alpha * (z - xk) + (1 - alpha) * (xk - x(k-1)))
 *             with s(g) = sign(g) for Linf, g / (||g||_2 + 1e-12) for L2,
 *             P: Linf clamp of x - x_clean to [-eps, eps]; L2
 *             d * min(eps, ||d||) / (||d|| + 1e-12); then clamp to [0, 1].
 *   checkpoints after iteration w_j = ceil(p_j * steps), p_0 = 0,
 *             p_1 = 0.22, p_(j+1) = p_j + max(p_j - p_(j-1) - 0.03, 0.06);
 *             at each, eta is halved and the iterate (and its gradient)
 *             reset to the best point when
 *               (1) the number of steps since the last checkpoint that raised
 *                   the loss over the previous iterate's is <= rho * (w_j -
 *                   w_(j-1)), or
 *               (2) eta was not halved at the last checkpoint and the best
 *                   loss has not risen since.
 * The result is the highest-loss point seen (x0 included). The model is
 * evaluated steps + 1 times, once at x0 and once per iteration, through the
 * oracle's loss_and_grad. A targeted attack maximizes minus the loss towards
 * the given labels. Buffers are allocated per call (run is called once per
 * batch; their size is a few copies of the batch). */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/plugin.h>

#define WHO "apgd-ce"

static const rb_param_spec apgd_params[] = {
    {"norm", RB_PARAM_CHOICE, "linf", "linf|l2", 0, "threat model: Linf or L2 ball"},
    {RB_PARAM_EPS, RB_PARAM_FLOAT, "8/255", "[0, inf)", 0, "radius of the ball, in [0,1] pixel units"},
    {RB_PARAM_STEPS, RB_PARAM_INT, "100", "[1, 100000]", 0, "iterations (the model is evaluated steps + 1 times)"},
    {"rho", RB_PARAM_FLOAT, "0.75", "[0, 1]", 0,
     "halve the step when at most this fraction of steps since the last checkpoint raised the loss"},
    {"alpha", RB_PARAM_FLOAT, "0.75", "(0, 1]", 0, "momentum: weight of the new step against the last move"},
    {"random-start", RB_PARAM_BOOL, "true", NULL, 0, "start from a random point of the ball"},
    {NULL}};

/* Checkpoints. The published fractions are multiples of 0.01, so they are
 * kept in hundredths and w_j = ceil(p_j * steps) is computed exactly. */
typedef struct checkpoints {
    int64_t steps;
    int64_t p_prev, p_cur; /* p_(j-1), p_j in hundredths */
    int64_t w;             /* the current checkpoint, in completed iterations */
} checkpoints;

static void checkpoints_init(checkpoints *c, int64_t steps)
{
    c->steps = steps;
    c->p_prev = 0;
    c->p_cur = 0;
    c->w = 0;
}

/* Advances to the next checkpoint after c->w; fractions that round to the
 * same iteration as the previous one (few steps) are skipped. Returns it,
 * or a value past steps when there is none. */
static int64_t checkpoints_next(checkpoints *c)
{
    for (;;) {
        int64_t grow, w;
        if (c->p_cur == 0)
            grow = 22;
        else {
            grow = c->p_cur - c->p_prev - 3;
            if (grow < 6)
                grow = 6;
        }
        c->p_prev = c->p_cur;
        c->p_cur += grow;
        w = (c->p_cur * c->steps + 99) / 100;
        if (w > c->w) {
            c->w = w;
            return w;
        }
    }
}

/* The per-call state. */
typedef struct apgd_state {
    rb_tensor *grad;
    float *x_prev, *x_best, *g_best, *z;
    float *loss;
    double *eta, *loss_best, *loss_checked, *loss_last;
    int64_t *increases;
    unsigned char *reduced;
} apgd_state;

static void state_free(apgd_state *s)
{
    rb_tensor_destroy(s->grad);
    free(s->x_prev);
    free(s->x_best);
    free(s->g_best);
    free(s->z);
    free(s->loss);
    free(s->eta);
    free(s->loss_best);
    free(s->loss_checked);
    free(s->loss_last);
    free(s->increases);
    free(s->reduced);
}

static rb_status state_alloc(apgd_state *s, const rb_tensor *like, int64_t rows, int64_t cols)
{
    size_t n = (size_t)rows, nc = (size_t)(rows * cols), c = (size_t)cols;
    int64_t shape[8];
    int ndim = rb_tensor_ndim(like);
    memset(s, 0, sizeof *s);
    if (ndim > 8)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, WHO ": x_adv has %d dimensions, at most 8 are supported",
                            ndim);
    for (int i = 0; i < ndim; i++)
        shape[i] = rb_tensor_dim(like, i);
    if (rb_tensor_create(&s->grad, RB_DTYPE_F32, ndim, shape) != RB_OK)
        return rb_error_prefix(WHO ": gradient buffer: ");
    s->x_prev = malloc(nc * sizeof *s->x_prev);
    s->x_best = malloc(nc * sizeof *s->x_best);
    s->g_best = malloc(nc * sizeof *s->g_best);
    s->z = malloc(c * sizeof *s->z);
    s->loss = malloc(n * sizeof *s->loss);
    s->eta = malloc(n * sizeof *s->eta);
    s->loss_best = malloc(n * sizeof *s->loss_best);
    s->loss_checked = malloc(n * sizeof *s->loss_checked);
    s->loss_last = malloc(n * sizeof *s->loss_last);
    s->increases = calloc(n, sizeof *s->increases);
    s->reduced = malloc(n);
    if (!s->x_prev || !s->x_best || !s->g_best || !s->z || !s->loss || !s->eta || !s->loss_best ||
        !s->loss_checked || !s->loss_last || !s->increases || !s->reduced) {
        state_free(s);
        memset(s, 0, sizeof *s);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, WHO ": out of memory for a batch of %lld x %lld",
                            (long long)rows, (long long)cols);
    }
    return RB_OK;
}

/* Evaluates the model at x_adv: losses into s->loss, gradient into s->grad. */
static rb_status evaluate(const rb_attack_oracle *oracle, rb_attack_batch *b, apgd_state *s,
                          int64_t rows, int step)
{
    rb_status st = oracle->loss_and_grad(oracle->ctx, b->x_adv, b->labels, s->loss, s->grad);
    if (st != RB_OK)
        return rb_error_prefix(WHO ": evaluating the model at step %d: ", step);
    for (int64_t r = 0; r < rows; r++)
        if (!isfinite(s->loss[r]))
            return rb_error_set(RB_ERR_NUMERIC,
                                WHO ": the loss of example %lld is not finite at step %d",
                                (long long)(b->first_example + r), step);
    return RB_OK;
}

/* One iteration on one row x, whose previous iterate is xp (z: a row of
 * scratch):
 *   z = P(x + eta * s(g)),  x <- P(x + a * (z - x) + (1 - a) * (x - xp))
 * Linf in float32, L2's momentum in double, as the reference computes them. */
static rb_status update_row(float *x, float *xp, float *z, const float *x0, const float *g, int64_t cols, bool linf,
                            double eps, double eta, double a)
{
    rb_attack_view zv = {1, cols, z, x0, g}, xv = {1, cols, x, x0, NULL};
    rb_status st;
    memcpy(z, x, (size_t)cols * sizeof *z);
    if (linf) {
        float af = (float)a;
        if ((st = rb_attack_step_sign(&zv, eta)) != RB_OK || (st = rb_attack_project_linf(&zv, eps)) != RB_OK)
            return st;
        for (int64_t i = 0; i < cols; i++) {
            float m = x[i] - xp[i];
            xp[i] = x[i];
            x[i] = x[i] + af * (z[i] - x[i]) + (1.0f - af) * m;
        }
        return rb_attack_project_linf(&xv, eps);
    }
    if ((st = rb_attack_step_l2(&zv, eta, RB_ATTACK_L2_AUTOATTACK)) != RB_OK ||
        (st = rb_attack_project_l2(&zv, eps, RB_ATTACK_L2_AUTOATTACK)) != RB_OK)
        return st;
    for (int64_t i = 0; i < cols; i++) {
        double m = (double)x[i] - xp[i];
        double y = x[i] + a * ((double)z[i] - x[i]) + (1.0 - a) * m;
        xp[i] = x[i];
        x[i] = (float)y;
    }
    return rb_attack_project_l2(&xv, eps, RB_ATTACK_L2_AUTOATTACK);
}

static rb_status apgd_run(void *self, const rb_params *params, const rb_attack_oracle *oracle,
                          rb_attack_batch *b)
{
    rb_attack_view v;
    apgd_state s;
    checkpoints cp;
    const char *norm;
    double eps, rho, alpha, sign;
    int64_t steps, rows, cols, next_check, last_check = 0;
    bool random_start, linf;
    const float *g;
    rb_status st = rb_attack_batch_view(b, WHO, false, &v);
    (void)self;
    if (st == RB_OK)
        st = rb_params_get_string(params, "norm", &norm);
    if (st == RB_OK)
        st = rb_params_get_float(params, RB_PARAM_EPS, &eps);
    if (st == RB_OK)
        st = rb_params_get_int(params, RB_PARAM_STEPS, &steps);
    if (st == RB_OK)
        st = rb_params_get_float(params, "rho", &rho);
    if (st == RB_OK)
        st = rb_params_get_float(params, "alpha", &alpha);
    if (st == RB_OK)
        st = rb_params_get_bool(params, "random-start", &random_start);
    if (st != RB_OK)
        return st;
    if (oracle == NULL || oracle->loss_and_grad == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, WHO ": the oracle has no loss_and_grad");
    if (b->labels == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, WHO ": the batch has no labels");
    linf = strcmp(norm, "linf") == 0;
    sign = b->targeted ? -1.0 : 1.0;
    rows = v.rows;
    cols = v.cols;
    if (rows == 0 || cols == 0)
        return RB_OK;
    st = state_alloc(&s, b->x_adv, rows, cols);
    if (st != RB_OK)
        return st;
    g = rb_tensor_cdata(s.grad);

    /* The starting point (x_adv holds x_clean). */
    if (!random_start)
        memcpy(v.x, v.x0, (size_t)(rows * cols) * sizeof *v.x);
    else if (linf)
        st = rb_attack_sample_linf(&v, b, eps);
    else
        st = rb_attack_sample_l2_sphere(&v, b, eps, RB_ATTACK_L2_AUTOATTACK);
    if (st != RB_OK)
        goto done;
    st = evaluate(oracle, b, &s, rows, 0);
    if (st != RB_OK)
        goto done;
    memcpy(s.x_prev, v.x, (size_t)(rows * cols) * sizeof *v.x);
    memcpy(s.x_best, v.x, (size_t)(rows * cols) * sizeof *v.x);
    memcpy(s.g_best, g, (size_t)(rows * cols) * sizeof *g);
    for (int64_t r = 0; r < rows; r++) {
        double f = sign * s.loss[r];
        s.eta[r] = 2.0 * eps;
        s.loss_best[r] = s.loss_checked[r] = s.loss_last[r] = f;
        s.reduced[r] = 1; /* as the reference: condition 2 cannot hold at the first checkpoint */
    }

    checkpoints_init(&cp, steps);
    next_check = checkpoints_next(&cp);
    for (int64_t it = 0; it < steps; it++) {
        for (int64_t r = 0; r < rows && st == RB_OK; r++)
            st = update_row(v.x + r * cols, s.x_prev + r * cols, s.z, v.x0 + r * cols, g + r * cols, cols, linf,
                            eps, sign * s.eta[r], it > 0 ? alpha : 1.0);
        if (st != RB_OK)
            goto done;
        st = evaluate(oracle, b, &s, rows, (int)(it + 1));
        if (st != RB_OK)
            goto done;
        for (int64_t r = 0; r < rows; r++) {
            double f = sign * s.loss[r];
            if (f > s.loss_last[r])
                s.increases[r]++;
            s.loss_last[r] = f;
            if (f > s.loss_best[r]) {
                s.loss_best[r] = f;
                memcpy(s.x_best + r * cols, v.x + r * cols, (size_t)cols * sizeof *v.x);
                memcpy(s.g_best + r * cols, g + r * cols, (size_t)cols * sizeof *g);
            }
        }
        if (it + 1 != next_check)
            continue;
        for (int64_t r = 0; r < rows; r++) {
            bool oscillating = (double)s.increases[r] <= rho * (double)(next_check - last_check);
            bool stalled = !s.reduced[r] && s.loss_checked[r] >= s.loss_best[r];
            bool reduce = oscillating || stalled;
            s.reduced[r] = reduce;
            s.loss_checked[r] = s.loss_best[r];
            s.increases[r] = 0;
            if (reduce) {
                s.eta[r] /= 2.0;
                memcpy(v.x + r * cols, s.x_best + r * cols, (size_t)cols * sizeof *v.x);
                memcpy((float *)rb_tensor_data(s.grad) + r * cols, s.g_best + r * cols,
                       (size_t)cols * sizeof *g);
            }
        }
        last_check = next_check;
        next_check = checkpoints_next(&cp);
    }
    memcpy(v.x, s.x_best, (size_t)(rows * cols) * sizeof *v.x);
done:
    state_free(&s);
    return st;
}

RB_ATTACK_PLUGIN("apgd-ce", "1.0",
                 "Auto-PGD on the cross-entropy loss, Linf or L2 (Croce & Hein 2020)", apgd_params,
                 .run = apgd_run);
