/* fab-t: the targeted Fast Adaptive Boundary attack (Croce and Hein, ICML
 * 2020, "Minimally distorted adversarial examples with a fast adaptive
 * boundary attack"; autoattack's FABAttack, targeted), the third attack of
 * AutoAttack's standard ensemble. It looks for the smallest perturbation
 * that changes the class, by linearizing the model around the iterate. For
 * each example the model classifies correctly (label y) and each target t in
 * turn (the classes of the 2nd, 3rd ... largest clean logits):
 *   x = x0 (a restart after the first: a random point at half eps)
 *   for each step:
 *     f = z_t - z_y and g = grad_x f at x (one forward and backward);
 *     the decision boundary, linearized: {v : g . v = g . x - f};
 *     d1, d2 = the smallest (Linf or L2) moves from x and from x0 onto it
 *              within the unit box (an exact projection, below);
 *     a = min(max(|d1| / (|d1| + |d2|), 0), alpha-max)
 *     x = clip((x + eta d1)(1 - a) + (x0 + eta d2) a, 0, 1)   (extrapolation)
 *     if x is misclassified (a forward): keep it when it is the closest to x0
 *       so far, then x = x0 + beta (x - x0)                   (backward step)
 * A target succeeds for an example when its closest adversarial point lies
 * within eps of x0; the example then ends there, and later targets skip
 * it. Others stay clean (the result is an adversarial example or nothing).
 * With eps large, the result is the minimal perturbation FAB found, whose
 * norm `robusta attack` reports.
 *
 * Built with FAB_UNTARGETED this is the `fab` plugin, the untargeted FAB of
 * AutoAttack's plus version: one pass, and at each step the boundary of the
 * class nearest under the linearization, |z_j - z_y| / ||grad (z_j - z_y)||
 * (the dual norm: L1 for Linf, L2 for L2), which takes a backward per class.
 *
 * The projection onto {v : w . v = b} within [0, 1]^n: with r = b - w . x,
 * the moves d = clip(mu w, -x, 1 - x) (L2) or d_i = sign(w_i) min(rho,
 * room_i) (Linf, room_i the distance to the box's edge in w_i's direction)
 * reach w . d = r for one mu or rho, found among the breakpoints where
 * coordinates saturate (solve_level); when even saturation cannot reach
 * the plane, the saturated move (the closest approach), as the reference
 * does. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/plugin.h>

#include "ranked.h"

#ifdef FAB_UNTARGETED
#define WHO "fab"
#else
#define WHO "fab-t"
#endif

static const rb_param_spec fab_params[] = {
    {"norm", RB_PARAM_CHOICE, "linf", "linf|l2", 0, "the norm to minimize: Linf or L2"},
    {RB_PARAM_EPS, RB_PARAM_FLOAT, "8/255", "[0, inf)", 0,
     "success needs a perturbation within eps; restarts start at eps / 2"},
#ifdef FAB_UNTARGETED
    {RB_PARAM_STEPS, RB_PARAM_INT, "100", "[1, 100000]", 0, "iterations"},
#else
    {RB_PARAM_STEPS, RB_PARAM_INT, "100", "[1, 100000]", 0, "iterations per target"},
    {"target-classes", RB_PARAM_INT, "9", "[1, 100000]", 0,
     "targets tried per example: the classes of the 2nd to (N+1)-th largest clean logits"},
#endif
    {"alpha-max", RB_PARAM_FLOAT, "0.1", "[0, 1]", 0, "largest weight of the step from the clean image"},
    {"eta", RB_PARAM_FLOAT, "1.05", "[1, 10]", 0, "overshoot of each projection"},
    {"beta", RB_PARAM_FLOAT, "0.9", "(0, 1]", 0, "backward step towards the clean image after a success"},
    {NULL}};

typedef struct settings {
    bool linf;
    double eps, alpha_max, eta, beta;
    int64_t steps, targets;
} settings;

static rb_status read_settings(const rb_params *params, settings *s)
{
    const char *norm;
    rb_status st = rb_params_get_string(params, "norm", &norm);
    if (st == RB_OK)
        st = rb_params_get_float(params, RB_PARAM_EPS, &s->eps);
    if (st == RB_OK)
        st = rb_params_get_int(params, RB_PARAM_STEPS, &s->steps);
#ifdef FAB_UNTARGETED
    s->targets = 1; /* one pass, the nearest boundary at each step */
#else
    if (st == RB_OK)
        st = rb_params_get_int(params, "target-classes", &s->targets);
#endif
    if (st == RB_OK)
        st = rb_params_get_float(params, "alpha-max", &s->alpha_max);
    if (st == RB_OK)
        st = rb_params_get_float(params, "eta", &s->eta);
    if (st == RB_OK)
        st = rb_params_get_float(params, "beta", &s->beta);
    if (st == RB_OK)
        s->linf = strcmp(norm, "linf") == 0;
    return st;
}

/* ------------------------------------------------------------ projection */

typedef struct breakpoint {
    double at; /* mu (L2) or rho (Linf) where a coordinate saturates */
    double a;  /* its weight in g: |w_i| (Linf) or w_i^2 (L2) */
} breakpoint;

static void swap_bp(breakpoint *x, breakpoint *y)
{
    breakpoint t = *x;
    *x = *y;
    *y = t;
}

/* The smallest t >= 0 with g(t) = sum a_k min(t, at_k) = r (g rises and is
 * concave); when even g(max at) falls short, max at (every coordinate
 * saturated). Found as quickselect finds a rank, in expected O(m): each
 * pivot splits the candidates in three and g at the pivot says on which
 * side t lies; a sort (O(m log m)) took a quarter of a FAB step on a
 * 224x224 image. Pivots come from a fixed generator, so results repeat.
 * Reorders bp. */
static double solve_level(breakpoint *bp, int64_t m, double r)
{
    double fixed = 0, slope = 0, total = 0, top = 0;
    uint64_t state = 0x9e3779b97f4a7c15u;
    int64_t lo = 0, hi = m;
    for (int64_t k = 0; k < m; k++) {
        total += bp[k].a * bp[k].at;
        top = bp[k].at > top ? bp[k].at : top;
    }
    if (total <= r)
        return top;
    while (lo < hi) {
        double p, below = 0, same = 0, above = 0;
        int64_t lt = lo, i = lo, gt = hi;
        state = state * 6364136223846793005u + 1442695040888963407u;
        p = bp[lo + (int64_t)((state >> 33) % (uint64_t)(hi - lo))].at;
        /* [lo, lt) below p, [lt, i) at p, [gt, hi) above p */
        while (i < gt) {
            if (bp[i].at < p) {
                below += bp[i].a * bp[i].at;
                swap_bp(&bp[lt++], &bp[i++]);
            } else if (bp[i].at > p) {
                above += bp[i].a;
                swap_bp(&bp[i], &bp[--gt]);
            } else {
                same += bp[i].a;
                i++;
            }
        }
        if (fixed + below + p * (slope + same + above) >= r) { /* t <= p: those at p and above move freely */
            slope += same + above;
            hi = lt;
        } else { /* t > p: those at p and below are saturated */
            fixed += below + same * p;
            lo = gt;
        }
    }
    return slope > 0 ? (r - fixed) / slope : top;
}

/* The smallest move d (n values) from x onto {v : w . v = b} within the
 * unit box (see the top); bp: n entries of scratch. Returns its norm. */
static double project(bool linf, const float *x, const float *w, double b, int64_t n, float *d, breakpoint *bp)
{
    double r = b, t, norm = 0, sgn;
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        r -= (double)w[i] * x[i];
    sgn = r >= 0 ? 1.0 : -1.0; /* move along sgn * w: then w . d rises towards |r| */
    r = fabs(r);
    /* each coordinate with w_i != 0 moves in the direction sgn * sign(w_i)
     * until the box's edge, room_i away: in Linf by min(t, room_i), in L2 by
     * |w_i| min(mu, room_i / |w_i|) */
    for (int64_t i = 0; i < n; i++) {
        double wi = fabs((double)w[i]), room = sgn * w[i] > 0 ? 1.0 - x[i] : (double)x[i];
        if (wi == 0)
            continue;
        bp[m].at = linf ? room : room / wi;
        bp[m++].a = linf ? wi : wi * wi;
    }
    t = solve_level(bp, m, r);
    for (int64_t i = 0; i < n; i++) {
        double wi = sgn * w[i], room = wi > 0 ? 1.0 - x[i] : (double)x[i], step;
        if (wi == 0) {
            d[i] = 0.0f;
            continue;
        }
        step = linf ? fmin(t, room) : fmin(t, room / fabs(wi)) * fabs(wi);
        d[i] = (float)(wi > 0 ? step : -step);
        norm = linf ? fmax(norm, step) : norm + step * step;
    }
    return linf ? norm : sqrt(norm);
}

/* ------------------------------------------------------------ the run */

static double distance(bool linf, const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = fabs((double)a[i] - b[i]);
        s = linf ? fmax(s, v) : s + v * v;
    }
    return linf ? s : sqrt(s);
}

/* The objective z_t - z_y for the oracle (targets indexed by row). */
static rb_status difference(void *ctx, int64_t first, int64_t rows, int64_t classes, const float *logits,
                            const int64_t *labels, float *losses, float *dlogits)
{
    const int64_t *targets = ctx;
    for (int64_t r = 0; r < rows; r++) {
        int64_t t = targets[first + r];
        losses[r] = logits[r * classes + t] - logits[r * classes + labels[r]];
        dlogits[r * classes + t] += 1.0f;
        dlogits[r * classes + labels[r]] -= 1.0f;
    }
    return RB_OK;
}

typedef struct state {
    settings set;
    int64_t rows, cols, classes;
    rb_tensor *x1, *x0, *grad, *logits;
    float *best, *d1, *d2, *f;
    double *res;
    /* untargeted: one class's gradient and values at a time, and the
     * distance to the nearest boundary so far */
    rb_tensor *grad_j;
    float *f_j;
    double *nearest;
    int64_t *labels, *targets, *row_of, *order;
    bool *done;
    breakpoint *bp;
    ranked_class *rank;
} state;

static void state_free(state *s)
{
    rb_tensor_destroy(s->x1);
    rb_tensor_destroy(s->x0);
    rb_tensor_destroy(s->grad);
    rb_tensor_destroy(s->logits);
    rb_tensor_destroy(s->grad_j);
    free(s->f_j);
    free(s->nearest);
    free(s->best);
    free(s->d1);
    free(s->d2);
    free(s->f);
    free(s->res);
    free(s->labels);
    free(s->targets);
    free(s->row_of);
    free(s->order);
    free(s->done);
    free(s->bp);
    free(s->rank);
}

static rb_status state_alloc(state *s, int64_t rows, int64_t cols, int64_t classes)
{
    int64_t shape[2] = {rows, cols}, lshape[2] = {rows, classes};
    size_t n = (size_t)rows, nc = (size_t)(rows * cols);
    s->rows = rows;
    s->cols = cols;
    s->classes = classes;
    if (rb_tensor_create(&s->x1, RB_DTYPE_F32, 2, shape) != RB_OK ||
        rb_tensor_create(&s->x0, RB_DTYPE_F32, 2, shape) != RB_OK ||
        rb_tensor_create(&s->grad, RB_DTYPE_F32, 2, shape) != RB_OK ||
        rb_tensor_create(&s->logits, RB_DTYPE_F32, 2, lshape) != RB_OK)
        return rb_error_prefix(WHO ": buffers: ");
    s->best = malloc(nc * sizeof *s->best);
    s->d1 = malloc((size_t)cols * sizeof *s->d1);
    s->d2 = malloc((size_t)cols * sizeof *s->d2);
    s->f = malloc(n * sizeof *s->f);
    s->res = malloc(n * sizeof *s->res);
    s->labels = malloc(n * sizeof *s->labels);
    s->targets = malloc(n * sizeof *s->targets);
    s->row_of = malloc(n * sizeof *s->row_of);
    s->order = malloc(n * (size_t)classes * sizeof *s->order);
    s->done = calloc(n, sizeof *s->done);
    s->bp = malloc((size_t)cols * sizeof *s->bp);
    s->rank = malloc((size_t)classes * sizeof *s->rank);
#ifdef FAB_UNTARGETED
    if (rb_tensor_create(&s->grad_j, RB_DTYPE_F32, 2, shape) != RB_OK)
        return rb_error_prefix(WHO ": buffers: ");
    s->f_j = malloc(n * sizeof *s->f_j);
    s->nearest = malloc(n * sizeof *s->nearest);
    if (!s->f_j || !s->nearest)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, WHO ": out of memory for %lld images", (long long)rows);
#endif
    if (!s->best || !s->d1 || !s->d2 || !s->f || !s->res || !s->labels || !s->targets || !s->row_of || !s->order ||
        !s->done || !s->bp || !s->rank)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, WHO ": out of memory for %lld images", (long long)rows);
    return RB_OK;
}

/* A view of the first n rows of a state tensor, for the oracle. */
static rb_status head_rows(rb_tensor *full, int64_t n, int64_t width, rb_tensor **out)
{
    int64_t shape[2] = {n, width};
    return rb_tensor_wrap(out, RB_DTYPE_F32, 2, shape, rb_tensor_data(full));
}

/* The random start of a restart: x0 + eps / 2 * u / |u| (Linf: u uniform
 * in [-1, 1]; L2: u normal), in the box, from the example's stream. */
static void random_start(const state *s, const rb_attack_batch *b, int64_t k, float *x, const float *x0)
{
    rb_rng r;
    double n = 0;
    rb_rng_init(&r, b->seed, b->stream, (uint64_t)rb_attack_example(b, s->row_of[k]));
    for (int64_t i = 0; i < s->cols; i++) {
        double u = s->set.linf ? 2.0 * rb_rng_uniform(&r) - 1.0 : rb_rng_normal(&r);
        x[i] = (float)u;
        n = s->set.linf ? fmax(n, fabs(u)) : n + u * u;
    }
    n = s->set.linf ? n : sqrt(n);
    for (int64_t i = 0; i < s->cols; i++) {
        double v = x0[i] + 0.5 * s->set.eps * x[i] / (n > 0 ? n : 1.0);
        x[i] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
    }
}

#ifdef FAB_UNTARGETED
/* The nearest linearized boundary of each of the first n rows at x1: of
 * every class j other than the label, z_j - z_y and its gradient (a
 * backward per class), keeping the class with the least |f_j| / ||g_j||
 * (the dual norm: L1 for Linf, L2 for L2) into s->f and s->grad. */
static rb_status nearest_boundary(state *s, const rb_attack_oracle *oracle, rb_tensor *x1, int64_t n)
{
    rb_tensor *gj = NULL;
    float *g = rb_tensor_data(s->grad);
    const float *gjd = rb_tensor_cdata(s->grad_j);
    rb_status st = head_rows(s->grad_j, n, s->cols, &gj);
    for (int64_t k = 0; k < n; k++)
        s->nearest[k] = INFINITY;
    for (int64_t j = 0; st == RB_OK && j < s->classes; j++) {
        for (int64_t k = 0; k < n; k++)
            s->targets[k] = j;
        if ((st = oracle->logit_loss_and_grad(oracle->ctx, x1, s->labels, difference, s->targets, s->f_j, NULL,
                                              gj)) != RB_OK)
            break;
        for (int64_t k = 0; k < n; k++) {
            const float *row = gjd + k * s->cols;
            double norm = 0, dist;
            if (j == s->labels[k])
                continue;
            for (int64_t i = 0; i < s->cols; i++)
                norm += s->set.linf ? fabs((double)row[i]) : (double)row[i] * row[i];
            dist = fabs((double)s->f_j[k]) / (1e-12 + (s->set.linf ? norm : sqrt(norm)));
            if (dist < s->nearest[k]) {
                s->nearest[k] = dist;
                s->f[k] = s->f_j[k];
                memcpy(g + k * s->cols, row, (size_t)s->cols * sizeof *g);
            }
        }
    }
    rb_tensor_destroy(gj);
    return st;
}
#endif

/* One target's run on the first n rows of x0 (examples row_of), each
 * against targets[k]: s->best and s->res receive the closest adversarial
 * point found and its distance (INFINITY: none). */
static rb_status fab_rows(state *s, const rb_attack_oracle *oracle, const rb_attack_batch *b, int64_t n)
{
    rb_tensor *x1 = NULL, *grad = NULL, *logits = NULL;
    float *x = rb_tensor_data(s->x1);
    const float *x0 = rb_tensor_cdata(s->x0), *g = rb_tensor_cdata(s->grad);
    rb_status st;
    if ((st = head_rows(s->x1, n, s->cols, &x1)) != RB_OK || (st = head_rows(s->grad, n, s->cols, &grad)) != RB_OK ||
        (st = head_rows(s->logits, n, s->classes, &logits)) != RB_OK)
        goto done;
    for (int64_t k = 0; k < n; k++) {
        s->res[k] = INFINITY;
        if (b->restart > 0)
            random_start(s, b, k, x + k * s->cols, x0 + k * s->cols);
        else
            memcpy(x + k * s->cols, x0 + k * s->cols, (size_t)s->cols * sizeof *x);
    }
    for (int64_t it = 0; it < s->set.steps; it++) {
#ifdef FAB_UNTARGETED
        st = nearest_boundary(s, oracle, x1, n);
#else
        st = oracle->logit_loss_and_grad(oracle->ctx, x1, s->labels, difference, s->targets, s->f, NULL, grad);
#endif
        if (st != RB_OK) {
            st = rb_error_prefix(WHO ": evaluating the model at step %lld: ", (long long)it);
            goto done;
        }
        for (int64_t k = 0; k < n; k++) {
            float *xk = x + k * s->cols;
            const float *x0k = x0 + k * s->cols, *gk = g + k * s->cols;
            double plane = -(double)s->f[k], a1, a2, alpha;
            if (!isfinite(s->f[k])) {
                st = rb_error_set(RB_ERR_NUMERIC, WHO ": the logits of example %lld are not finite",
                                  (long long)rb_attack_example(b, s->row_of[k]));
                goto done;
            }
            for (int64_t i = 0; i < s->cols; i++)
                plane += (double)gk[i] * xk[i];
            a1 = fmax(project(s->set.linf, xk, gk, plane, s->cols, s->d1, s->bp), 1e-8);
            a2 = fmax(project(s->set.linf, x0k, gk, plane, s->cols, s->d2, s->bp), 1e-8);
            alpha = fmin(fmax(a1 / (a1 + a2), 0.0), s->set.alpha_max);
            for (int64_t i = 0; i < s->cols; i++) {
                double v = ((double)xk[i] + s->set.eta * s->d1[i]) * (1.0 - alpha) +
                           ((double)x0k[i] + s->set.eta * s->d2[i]) * alpha;
                xk[i] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
            }
        }
        if ((st = oracle->logits(oracle->ctx, x1, logits)) != RB_OK) {
            st = rb_error_prefix(WHO ": checking the iterates at step %lld: ", (long long)it);
            goto done;
        }
        for (int64_t k = 0; k < n; k++) {
            float *xk = x + k * s->cols;
            const float *x0k = x0 + k * s->cols;
            double dist;
            const float *z = (const float *)rb_tensor_cdata(s->logits) + k * s->classes;
            if (top_class(z, s->classes) == s->labels[k])
                continue;
            dist = distance(s->set.linf, xk, x0k, s->cols);
            if (dist < s->res[k]) {
                s->res[k] = dist;
                memcpy(s->best + k * s->cols, xk, (size_t)s->cols * sizeof *xk);
            }
            for (int64_t i = 0; i < s->cols; i++)
                xk[i] = (float)((double)x0k[i] + ((double)xk[i] - x0k[i]) * s->set.beta);
        }
    }
done:
    rb_tensor_destroy(x1);
    rb_tensor_destroy(grad);
    rb_tensor_destroy(logits);
    return st;
}

static rb_status fab_run(void *self, const rb_params *params, const rb_attack_oracle *oracle, rb_attack_batch *b)
{
    rb_attack_view v;
    state s;
    rb_status st = rb_attack_batch_view(b, WHO, false, &v);
    (void)self;
    memset(&s, 0, sizeof s);
    if (st == RB_OK)
        st = read_settings(params, &s.set);
    if (st != RB_OK)
        return st;
    if (b->labels == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, WHO ": the batch has no labels");
    if (b->targeted)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, WHO ": %s; run it untargeted",
#ifdef FAB_UNTARGETED
                            "it looks for the nearest boundary, of any class"
#else
                            "chooses its own targets (the top clean logits)"
#endif
        );
    if (!RB_ATTACK_ORACLE_HAS(oracle, classes) || oracle->logit_loss_and_grad == NULL || oracle->logits == NULL)
        return rb_error_set(RB_ERR_UNSUPPORTED, WHO ": needs the oracle's logit_loss_and_grad and classes (ABI 3)");
    if (s.set.targets > oracle->classes - 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            WHO ": %lld target classes asked, but a model of %lld classes has at most %lld other "
                            "classes; use --target-classes %lld or fewer",
                            (long long)s.set.targets, (long long)oracle->classes, (long long)(oracle->classes - 1),
                            (long long)(oracle->classes - 1));
    if (v.rows == 0 || v.cols == 0)
        return RB_OK;
    if ((st = state_alloc(&s, v.rows, v.cols, oracle->classes)) != RB_OK)
        goto done;
    /* Clean logits: which rows to attack, and their targets in order. */
    memcpy(rb_tensor_data(s.x1), v.x0, (size_t)(v.rows * v.cols) * sizeof(float));
    if ((st = oracle->logits(oracle->ctx, s.x1, s.logits)) != RB_OK) {
        st = rb_error_prefix(WHO ": the clean logits: ");
        goto done;
    }
    memcpy(v.x, v.x0, (size_t)(v.rows * v.cols) * sizeof *v.x);
    for (int64_t r = 0; r < v.rows; r++) {
        int64_t *order = s.order + r * s.classes;
        rank_classes((const float *)rb_tensor_cdata(s.logits) + r * s.classes, s.classes, order, s.rank);
        s.done[r] = order[0] != b->labels[r]; /* misclassified already */
    }
    for (int64_t t = 0; t < s.set.targets; t++) {
        int64_t n = 0;
        float *x0 = rb_tensor_data(s.x0);
        for (int64_t r = 0; r < v.rows; r++) {
            if (s.done[r])
                continue;
            memcpy(x0 + n * v.cols, v.x0 + r * v.cols, (size_t)v.cols * sizeof *x0);
            s.labels[n] = b->labels[r];
            s.targets[n] = s.order[r * s.classes + t + 1];
            s.row_of[n++] = r;
        }
        if (n == 0)
            break;
        if ((st = fab_rows(&s, oracle, b, n)) != RB_OK)
            goto done;
        for (int64_t k = 0; k < n; k++)
            if (s.res[k] <= s.set.eps) {
                memcpy(v.x + s.row_of[k] * v.cols, s.best + k * v.cols, (size_t)v.cols * sizeof *v.x);
                s.done[s.row_of[k]] = true;
            }
    }
done:
    state_free(&s);
    return st;
}

#ifdef FAB_UNTARGETED
RB_ATTACK_PLUGIN("fab", "1.0",
                 "FAB: minimal perturbations to the nearest decision boundary, Linf or L2 (Croce & Hein 2020)",
                 fab_params, .run = fab_run);
#else
RB_ATTACK_PLUGIN("fab-t", "1.0",
                 "targeted FAB: minimal perturbations towards the top clean classes, Linf or L2 (Croce & Hein 2020)",
                 fab_params, .run = fab_run);
#endif
