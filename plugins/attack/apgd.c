/* Auto-PGD (Croce & Hein, ICML 2020, "Reliable evaluation of adversarial
 * robustness with an ensemble of diverse parameter-free attacks",
 * Algorithm 1), as the reference implementation (autoattack's APGDAttack)
 * computes it, everything per example:
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
 * The model is evaluated steps + 1 times, once at x0 and once per
 * iteration. Losses (of logits z, per example, in double):
 *   ce:            log sum exp z - z_y
 *   dlr:           -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)
 *   dlr-targeted:  -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)
 * with pi the classes by decreasing logit (ties: the lower class first);
 * their gradients are those of the formulas with pi fixed, as autograd
 * through a sort gives. A runtime-targeted run (descend) maximizes minus
 * the loss towards the given labels. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "apgd.h"
#include "ranked.h"

static rb_status read_settings(const rb_params *params, apgd_loss loss, apgd_settings *out)
{
    const char *norm;
    rb_status st = rb_params_get_string(params, "norm", &norm);
    if (st == RB_OK)
        st = rb_params_get_float(params, RB_PARAM_EPS, &out->eps);
    if (st == RB_OK)
        st = rb_params_get_int(params, RB_PARAM_STEPS, &out->steps);
    if (st == RB_OK)
        st = rb_params_get_float(params, "rho", &out->rho);
    if (st == RB_OK)
        st = rb_params_get_float(params, "alpha", &out->alpha);
    if (st == RB_OK)
        st = rb_params_get_bool(params, "random-start", &out->random_start);
    if (st == RB_OK) {
        out->linf = strcmp(norm, "linf") == 0;
        out->loss = loss;
    }
    return st;
}

rb_status apgd_open_run(const char *who, const rb_params *params, apgd_loss loss, rb_attack_batch *b,
                        rb_attack_view *v, apgd_settings *set)
{
    rb_status st = rb_attack_batch_view(b, who, false, v);
    if (st == RB_OK)
        st = read_settings(params, loss, set);
    if (st == RB_OK && b->labels == NULL)
        st = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the batch has no labels", who);
    return st;
}

int64_t apgd_min_classes(apgd_loss loss)
{
    return loss == APGD_LOSS_DLR_TARGETED ? 4 : loss == APGD_LOSS_DLR ? 3 : 2;
}

/* ------------------------------------------------------------ losses */

/* One example's loss and its gradient (dz, zero on entry) wrt the logits. */
static double example_loss(apgd_loss loss, const float *z, int64_t classes, int64_t y, int64_t t, float *dz)
{
    int64_t top[4];
    double num, den;
    if (loss == APGD_LOSS_CE) {
        double m = -INFINITY, sum = 0;
        for (int64_t i = 0; i < classes; i++)
            m = z[i] > m ? z[i] : m;
        for (int64_t i = 0; i < classes; i++)
            sum += exp((double)z[i] - m);
        for (int64_t i = 0; i < classes; i++)
            dz[i] = (float)(exp((double)z[i] - m) / sum - (i == y ? 1.0 : 0.0));
        return m + log(sum) - z[y];
    }
    top_classes(z, classes, loss == APGD_LOSS_DLR ? 3 : 4, top);
    if (loss == APGD_LOSS_DLR) {
        int64_t other = top[0] == y ? top[1] : top[0];
        num = (double)z[other] - z[y];
        den = (double)z[top[0]] - z[top[2]] + 1e-12;
        /* d(num / den) = dnum / den - num / den^2 dden */
        dz[other] += (float)(1.0 / den);
        dz[y] -= (float)(1.0 / den);
        dz[top[0]] -= (float)(num / (den * den));
        dz[top[2]] += (float)(num / (den * den));
        return num / den;
    }
    num = (double)z[t] - z[y];
    den = (double)z[top[0]] - 0.5 * ((double)z[top[2]] + z[top[3]]) + 1e-12;
    dz[t] += (float)(1.0 / den);
    dz[y] -= (float)(1.0 / den);
    dz[top[0]] -= (float)(num / (den * den));
    dz[top[2]] += (float)(0.5 * num / (den * den));
    dz[top[3]] += (float)(0.5 * num / (den * den));
    return num / den;
}

/* The oracle's logit objective: the loss, and whether each iterate is
 * classified as the run wants (fooled). */
typedef struct objective {
    const char *who;
    apgd_loss loss;
    const int64_t *targets;
    bool descend;
    unsigned char *wrong; /* per row: this iterate fools the model */
} objective;

static rb_status objective_loss(void *ctx, int64_t first, int64_t rows, int64_t classes, const float *logits,
                                const int64_t *labels, float *losses, float *dlogits)
{
    objective *o = ctx;
    if (classes < apgd_min_classes(o->loss))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the %s loss needs at least %lld classes, the model has %lld",
                            o->who, o->loss == APGD_LOSS_DLR ? "DLR" : "targeted DLR",
                            (long long)apgd_min_classes(o->loss), (long long)classes);
    for (int64_t r = 0; r < rows; r++) {
        const float *z = logits + r * classes;
        int64_t pred = top_class(z, classes);
        int64_t t = o->targets ? o->targets[first + r] : 0;
        losses[r] = (float)example_loss(o->loss, z, classes, labels[r], t, dlogits + r * classes);
        o->wrong[first + r] = o->descend ? pred == labels[r] : pred != labels[r];
    }
    return RB_OK;
}

/* ------------------------------------------------------------ checkpoints */

/* The published fractions are multiples of 0.01, so they are kept in
 * hundredths and w_j = ceil(p_j * steps) is computed exactly. */
typedef struct checkpoints {
    int64_t steps;
    int64_t p_prev, p_cur; /* p_(j-1), p_j in hundredths */
    int64_t w;             /* the current checkpoint, in completed iterations */
} checkpoints;

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

/* ------------------------------------------------------------ the run */

typedef struct apgd_state {
    rb_tensor *x, *grad; /* x wraps the caller's rows */
    float *x_prev, *x_best, *g_best, *x_fooled, *z;
    float *loss;
    double *eta, *loss_best, *loss_checked, *loss_last;
    int64_t *increases;
    unsigned char *reduced, *wrong, *fooled;
} apgd_state;

static void state_free(apgd_state *s)
{
    rb_tensor_destroy(s->x);
    rb_tensor_destroy(s->grad);
    free(s->x_prev);
    free(s->x_best);
    free(s->g_best);
    free(s->x_fooled);
    free(s->z);
    free(s->loss);
    free(s->eta);
    free(s->loss_best);
    free(s->loss_checked);
    free(s->loss_last);
    free(s->increases);
    free(s->reduced);
    free(s->wrong);
    free(s->fooled);
}

static rb_status state_alloc(const char *who, apgd_state *s, float *x, int64_t rows, int64_t cols)
{
    size_t n = (size_t)rows, nc = (size_t)(rows * cols), c = (size_t)cols;
    int64_t shape[2] = {rows, cols};
    memset(s, 0, sizeof *s);
    if (rb_tensor_wrap(&s->x, RB_DTYPE_F32, 2, shape, x) != RB_OK ||
        rb_tensor_create(&s->grad, RB_DTYPE_F32, 2, shape) != RB_OK) {
        state_free(s);
        return rb_error_prefix("%s: buffers: ", who);
    }
    s->x_prev = malloc(nc * sizeof *s->x_prev);
    s->x_best = malloc(nc * sizeof *s->x_best);
    s->g_best = malloc(nc * sizeof *s->g_best);
    s->x_fooled = malloc(nc * sizeof *s->x_fooled);
    s->z = malloc(c * sizeof *s->z);
    s->loss = malloc(n * sizeof *s->loss);
    s->eta = malloc(n * sizeof *s->eta);
    s->loss_best = malloc(n * sizeof *s->loss_best);
    s->loss_checked = malloc(n * sizeof *s->loss_checked);
    s->loss_last = malloc(n * sizeof *s->loss_last);
    s->increases = calloc(n, sizeof *s->increases);
    s->reduced = malloc(n);
    s->wrong = calloc(n, 1);
    s->fooled = calloc(n, 1);
    if (!s->x_prev || !s->x_best || !s->g_best || !s->x_fooled || !s->z || !s->loss || !s->eta || !s->loss_best ||
        !s->loss_checked || !s->loss_last || !s->increases || !s->reduced || !s->wrong || !s->fooled) {
        state_free(s);
        memset(s, 0, sizeof *s);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory for a batch of %lld x %lld", who,
                            (long long)rows, (long long)cols);
    }
    return RB_OK;
}

/* Evaluates the model at s->x: losses into s->loss, gradient into s->grad,
 * and, through a logit objective, which rows it fools (s->wrong), which
 * then update the last fooling iterate. */
static rb_status evaluate(const char *who, const rb_attack_oracle *oracle, objective *obj, const int64_t *labels,
                          const rb_attack_batch *b, const int64_t *row_of, apgd_state *s, int64_t rows, int64_t cols,
                          int step)
{
    rb_status st;
    if (obj != NULL)
        st = oracle->logit_loss_and_grad(oracle->ctx, s->x, labels, objective_loss, obj, s->loss, NULL, s->grad);
    else
        st = oracle->loss_and_grad(oracle->ctx, s->x, labels, s->loss, s->grad);
    if (st != RB_OK)
        return rb_error_prefix("%s: evaluating the model at step %d: ", who, step);
    for (int64_t r = 0; r < rows; r++) {
        if (!isfinite(s->loss[r]))
            return rb_error_set(RB_ERR_NUMERIC, "%s: the loss of example %lld is not finite at step %d", who,
                                (long long)rb_attack_example(b, row_of ? row_of[r] : r), step);
        if (s->wrong[r]) {
            s->fooled[r] = 1;
            memcpy(s->x_fooled + r * cols, (const float *)rb_tensor_cdata(s->x) + r * cols,
                   (size_t)cols * sizeof(float));
        }
    }
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

/* The start: x0, or a random point of the ball keyed by each row's example. */
static rb_status start(const apgd_settings *set, const rb_attack_batch *b, uint32_t stream, int64_t rows,
                       int64_t cols, const int64_t *row_of, float *x, const float *x0)
{
    memcpy(x, x0, (size_t)(rows * cols) * sizeof *x);
    if (!set->random_start)
        return RB_OK;
    for (int64_t r = 0; r < rows; r++) {
        rb_attack_batch one = *b;
        rb_attack_view v = {1, cols, x + r * cols, x0 + r * cols, NULL};
        rb_status st;
        one.first_example = rb_attack_example(b, row_of ? row_of[r] : r);
        one.examples = NULL;
        one.stream = stream;
        st = set->linf ? rb_attack_sample_linf(&v, &one, set->eps)
                       : rb_attack_sample_l2_sphere(&v, &one, set->eps, RB_ATTACK_L2_AUTOATTACK);
        if (st != RB_OK)
            return st;
    }
    return RB_OK;
}

rb_status apgd_run_rows(const char *who, const apgd_settings *set, const rb_attack_oracle *oracle,
                        const rb_attack_batch *b, uint32_t stream, int64_t rows, int64_t cols, const int64_t *row_of,
                        float *x, const float *x0, const int64_t *labels, const int64_t *targets, bool descend,
                        bool *fooled)
{
    apgd_state s;
    checkpoints cp = {set->steps, 0, 0, 0};
    objective obj = {who, set->loss, targets, descend, NULL};
    bool scored = RB_ATTACK_ORACLE_HAS(oracle, logit_loss_and_grad) && oracle->logit_loss_and_grad != NULL;
    double sign = descend ? -1.0 : 1.0;
    int64_t next_check, last_check = 0;
    const float *g;
    rb_status st;
    if (fooled != NULL)
        memset(fooled, 0, (size_t)rows * sizeof *fooled);
    if (rows == 0 || cols == 0)
        return RB_OK;
    if (!scored && set->loss != APGD_LOSS_CE)
        return rb_error_set(RB_ERR_UNSUPPORTED,
                            "%s: the DLR loss needs the oracle's logit_loss_and_grad (plugin ABI 3); this runtime's "
                            "oracle has none",
                            who);
    if (!scored && (oracle == NULL || oracle->loss_and_grad == NULL))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the oracle has no loss_and_grad", who);
    if (RB_ATTACK_ORACLE_HAS(oracle, classes) && oracle->classes > 0 && oracle->classes < apgd_min_classes(set->loss))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the %s loss needs at least %lld classes, the model has %lld",
                            who, set->loss == APGD_LOSS_DLR ? "DLR" : "targeted DLR",
                            (long long)apgd_min_classes(set->loss), (long long)oracle->classes);
    if ((st = state_alloc(who, &s, x, rows, cols)) != RB_OK)
        return st;
    obj.wrong = s.wrong;
    g = rb_tensor_cdata(s.grad);

    if ((st = start(set, b, stream, rows, cols, row_of, x, x0)) != RB_OK ||
        (st = evaluate(who, oracle, scored ? &obj : NULL, labels, b, row_of, &s, rows, cols, 0)) != RB_OK)
        goto done;
    memcpy(s.x_prev, x, (size_t)(rows * cols) * sizeof *x);
    memcpy(s.x_best, x, (size_t)(rows * cols) * sizeof *x);
    memcpy(s.g_best, g, (size_t)(rows * cols) * sizeof *g);
    for (int64_t r = 0; r < rows; r++) {
        double f = sign * s.loss[r];
        s.eta[r] = 2.0 * set->eps;
        s.loss_best[r] = s.loss_checked[r] = s.loss_last[r] = f;
        s.reduced[r] = 1; /* as the reference: condition 2 cannot hold at the first checkpoint */
    }

    next_check = checkpoints_next(&cp);
    for (int64_t it = 0; it < set->steps; it++) {
        for (int64_t r = 0; r < rows && st == RB_OK; r++)
            st = update_row(x + r * cols, s.x_prev + r * cols, s.z, x0 + r * cols, g + r * cols, cols, set->linf,
                            set->eps, sign * s.eta[r], it > 0 ? set->alpha : 1.0);
        if (st != RB_OK ||
            (st = evaluate(who, oracle, scored ? &obj : NULL, labels, b, row_of, &s, rows, cols, (int)(it + 1))) !=
                RB_OK)
            goto done;
        for (int64_t r = 0; r < rows; r++) {
            double f = sign * s.loss[r];
            if (f > s.loss_last[r])
                s.increases[r]++;
            s.loss_last[r] = f;
            if (f > s.loss_best[r]) {
                s.loss_best[r] = f;
                memcpy(s.x_best + r * cols, x + r * cols, (size_t)cols * sizeof *x);
                memcpy(s.g_best + r * cols, g + r * cols, (size_t)cols * sizeof *g);
            }
        }
        if (it + 1 != next_check)
            continue;
        for (int64_t r = 0; r < rows; r++) {
            bool oscillating = (double)s.increases[r] <= set->rho * (double)(next_check - last_check);
            bool stalled = !s.reduced[r] && s.loss_checked[r] >= s.loss_best[r];
            bool reduce = oscillating || stalled;
            s.reduced[r] = reduce;
            s.loss_checked[r] = s.loss_best[r];
            s.increases[r] = 0;
            if (reduce) {
                s.eta[r] /= 2.0;
                memcpy(x + r * cols, s.x_best + r * cols, (size_t)cols * sizeof *x);
                memcpy((float *)rb_tensor_data(s.grad) + r * cols, s.g_best + r * cols, (size_t)cols * sizeof *g);
            }
        }
        last_check = next_check;
        next_check = checkpoints_next(&cp);
    }
    for (int64_t r = 0; r < rows; r++) {
        memcpy(x + r * cols, s.fooled[r] ? s.x_fooled + r * cols : s.x_best + r * cols, (size_t)cols * sizeof *x);
        if (fooled != NULL)
            fooled[r] = s.fooled[r];
    }
done:
    state_free(&s);
    return st;
}
