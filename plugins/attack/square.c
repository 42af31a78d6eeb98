/* square: the Square attack (Andriushchenko, Croce, Flammarion and Hein,
 * ECCV 2020), the score-based member of AutoAttack's ensemble: a random
 * search that reads only the model's logits, never a gradient, so that
 * gradient masking does not hide a model's weakness from it. As the
 * reference (autoattack's SquareAttack, loss "margin"), per example:
 *   margin(x) = z_y - max_{i != y} z_i   (targeted: max_{i != t} z_i - z_t)
 *   loss      = margin ("margin"), or -CE(z, y) ("ce"; targeted: CE(z, t))
 *   Linf start: x + eps * s, one random sign per channel and column;
 *   L2 start:   squares of side h / 5 in a 5 x 5 grid, each eta(side) times
 *               a random sign per channel, scaled to norm eps;
 *   then for query q = 0 .. queries - 1, while margin > 0:
 *     p     = p_init / 2^k on the published schedule of q (10, 50, 200,
 *             500, 1000, 2000, 4000, 6000, 8000; with rescale-schedule q
 *             is first scaled to a budget of 10,000)
 *     side  = round(sqrt(p * H * W)) (at least 1; L2: at least 3 and odd),
 *             at most min(H, W)
 *     Linf: a square at a random place gets x_best + 2 eps * (a random
 *           sign per channel), clipped to the ball and [0, 1];
 *     L2:   a square w1 gets the normalized eta(side) times a random sign
 *           plus its old perturbation, rescaled so the whole stays in the
 *           ball, and a second square w2 is zeroed (the budget moves
 *           there), then x = clip(x + eps * d / ||d||, 0, 1);
 *     the candidate replaces x_best when its loss is lower or it fools the
 *     model.
 * eta(side): a centred pyramid of nested rectangles with weights 1/(k+1)^2,
 * positive on the top half and negative on the bottom, of unit L2 norm, and
 * transposed half of the time. The result is x_best: the first fooling
 * point, else the lowest loss. The model is queried queries + 1 times at
 * most per example (the start and each candidate), examples leaving the
 * search once fooled.
 *
 * What differs from the reference: each example draws its square places,
 * signs and transpositions from its own stream (seed, restart, example
 * index), where the reference draws one place and one pyramid per query for
 * the whole batch; so results do not depend on how examples are batched.
 * Images smaller than 5 x 5 get L2 start squares of side 1 (the reference
 * divides by zero there). */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/plugin.h>

#define WHO "square"

static const rb_param_spec square_params[] = {
    {"norm", RB_PARAM_CHOICE, "linf", "linf|l2", 0, "threat model: Linf or L2 ball"},
    {RB_PARAM_EPS, RB_PARAM_FLOAT, "8/255", "[0, inf)", 0, "radius of the ball, in [0,1] pixel units"},
    {"queries", RB_PARAM_INT, "5000", "[0, 100000000]", 0,
     "query budget per example and restart: candidates tried after the start (AutoAttack: 5000)"},
    {"p-init", RB_PARAM_FLOAT, "0.8", "(0, 1]", 0, "fraction of the image the first squares cover"},
    {"loss", RB_PARAM_CHOICE, "margin", "margin|ce", 0,
     "what a candidate must lower: the logit margin, or minus the cross-entropy"},
    {"rescale-schedule", RB_PARAM_BOOL, "false", NULL, 0,
     "stretch the square-size schedule, written for 10,000 queries, to --queries"},
    {NULL}};

typedef struct settings {
    bool linf, ce, rescale;
    double eps, p_init;
    int64_t queries;
} settings;

static rb_status read_settings(const rb_params *params, settings *s)
{
    const char *norm, *loss;
    rb_status st = rb_params_get_string(params, "norm", &norm);
    if (st == RB_OK)
        st = rb_params_get_float(params, RB_PARAM_EPS, &s->eps);
    if (st == RB_OK)
        st = rb_params_get_int(params, "queries", &s->queries);
    if (st == RB_OK)
        st = rb_params_get_float(params, "p-init", &s->p_init);
    if (st == RB_OK)
        st = rb_params_get_string(params, "loss", &loss);
    if (st == RB_OK)
        st = rb_params_get_bool(params, "rescale-schedule", &s->rescale);
    if (st == RB_OK) {
        s->linf = strcmp(norm, "linf") == 0;
        s->ce = strcmp(loss, "ce") == 0;
    }
    return st;
}

/* The published schedule: p_init halved at each of these query counts. */
static double p_at(const settings *s, int64_t q)
{
    static const int64_t bounds[] = {10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000};
    double p = s->p_init;
    int64_t it = s->rescale ? (int64_t)((double)q / (double)s->queries * 10000.0) : q;
    for (size_t k = 0; k < sizeof bounds / sizeof bounds[0]; k++)
        if (it > bounds[k])
            p /= 2;
    return p;
}

/* Python's round(): halves to even, as nearbyint in the default mode. */
static int64_t side_at(const settings *s, int64_t q, int64_t h, int64_t w)
{
    int64_t side = (int64_t)nearbyint(sqrt(p_at(s, q) * (double)(h * w)));
    if (s->linf) {
        if (side < 1)
            side = 1;
    } else {
        if (side < 3)
            side = 3;
        if (side % 2 == 0)
            side++;
    }
    return side < h && side < w ? side : h < w ? h : w;
}

static float random_sign(rb_rng *r)
{
    return rb_rng_uniform(r) < 0.5f ? -1.0f : 1.0f;
}

/* floor(u * n): a place in [0, n) as the reference draws it (0 when n is 0). */
static int64_t random_place(rb_rng *r, int64_t n)
{
    int64_t v = (int64_t)((double)rb_rng_uniform(r) * (double)n);
    return v < n ? v : (n > 0 ? n - 1 : 0);
}

/* ------------------------------------------------------------ eta */

/* The pyramid of nested rectangles (rows x cols, into out, row stride
 * `stride`), unnormalized: centred at (rows / 2, cols / 2), the k-th
 * rectangle, of side 2k + 1 clipped to the block, adding 1 / (k + 1)^2. */
static void rectangles(double *out, int64_t rows, int64_t cols, int64_t stride)
{
    int64_t r0 = rows / 2, c0 = cols / 2, n = (rows / 2 + 1) > (cols / 2 + 1) ? rows / 2 + 1 : cols / 2 + 1;
    double sum = 0;
    for (int64_t k = 0; k < n; k++, r0--, c0--) {
        int64_t ra = r0 > 0 ? r0 : 0, rb = r0 + 2 * k + 1 < rows ? r0 + 2 * k + 1 : rows;
        int64_t ca = c0 > 0 ? c0 : 0, cb = c0 + 2 * k + 1 < cols ? c0 + 2 * k + 1 : cols;
        for (int64_t i = ra; i < rb; i++)
            for (int64_t j = ca; j < cb; j++)
                out[i * stride + j] += 1.0 / (double)((k + 1) * (k + 1));
    }
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            sum += out[i * stride + j] * out[i * stride + j];
    sum = sqrt(sum);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            out[i * stride + j] /= sum;
}

/* eta(side) into e (side x side): the top side / 2 rows a normalized
 * pyramid, the rest minus one, the whole of unit norm; transposed when
 * `transpose`. */
static void eta(double *e, int64_t side, bool transpose)
{
    int64_t top = side / 2;
    double sum = 0;
    memset(e, 0, (size_t)(side * side) * sizeof *e);
    if (top > 0)
        rectangles(e, top, side, side);
    rectangles(e + top * side, side - top, side, side);
    for (int64_t i = top * side; i < side * side; i++)
        e[i] = -e[i];
    for (int64_t i = 0; i < side * side; i++)
        sum += e[i] * e[i];
    sum = sqrt(sum);
    for (int64_t i = 0; i < side * side; i++)
        e[i] /= sum;
    if (transpose)
        for (int64_t i = 0; i < side; i++)
            for (int64_t j = i + 1; j < side; j++) {
                double t = e[i * side + j];
                e[i * side + j] = e[j * side + i];
                e[j * side + i] = t;
            }
}

/* ------------------------------------------------------------ the run */

typedef struct state {
    settings set;
    int64_t rows, cols, c, h, w, classes;
    const float *x0;
    const int64_t *labels;
    bool targeted;
    float *best, *cand, *delta;
    double *margin, *loss, *e;
    rb_rng *rng;
    int64_t *active;
    rb_tensor *logits;
} state;

static void state_free(state *s)
{
    free(s->best);
    free(s->cand);
    free(s->delta);
    free(s->margin);
    free(s->loss);
    free(s->e);
    free(s->rng);
    free(s->active);
    rb_tensor_destroy(s->logits);
}

/* Margin and loss of one example's logits (see the top). */
static void score(const state *s, const float *z, int64_t y, double *margin, double *loss)
{
    double other = -INFINITY, top = -INFINITY, sum = 0;
    for (int64_t i = 0; i < s->classes; i++) {
        if (i != y && z[i] > other)
            other = z[i];
        top = z[i] > top ? z[i] : top;
    }
    *margin = s->targeted ? other - z[y] : z[y] - other;
    if (!s->set.ce) {
        *loss = *margin;
        return;
    }
    for (int64_t i = 0; i < s->classes; i++)
        sum += exp((double)z[i] - top);
    *loss = top + log(sum) - z[y]; /* the cross-entropy */
    if (!s->targeted)
        *loss = -*loss;
}

/* Scores the first n rows of s->cand (examples s->active[k]), keeping each
 * that lowers the loss or fools the model. */
static rb_status query(state *s, const rb_attack_oracle *oracle, int64_t n, bool first)
{
    int64_t shape[2] = {n, s->cols}, lshape[2] = {n, s->classes};
    rb_tensor *cand = NULL, *logits = NULL;
    rb_status st;
    if ((st = rb_tensor_wrap(&cand, RB_DTYPE_F32, 2, shape, s->cand)) != RB_OK ||
        (st = rb_tensor_wrap(&logits, RB_DTYPE_F32, 2, lshape, rb_tensor_data(s->logits))) != RB_OK) {
        rb_tensor_destroy(cand);
        return rb_error_prefix(WHO ": ");
    }
    st = oracle->logits(oracle->ctx, cand, logits);
    rb_tensor_destroy(cand);
    rb_tensor_destroy(logits);
    if (st != RB_OK)
        return rb_error_prefix(WHO ": querying the model: ");
    for (int64_t k = 0; k < n; k++) {
        int64_t r = s->active[k];
        double margin, loss;
        score(s, (const float *)rb_tensor_cdata(s->logits) + k * s->classes, s->labels[r], &margin, &loss);
        if (!isfinite(loss))
            return rb_error_set(RB_ERR_NUMERIC, WHO ": the model's logits are not finite for row %lld", (long long)r);
        if (first || loss < s->loss[r] || margin <= 0) {
            if (first || loss < s->loss[r])
                s->loss[r] = loss;
            s->margin[r] = margin;
            memcpy(s->best + r * s->cols, s->cand + k * s->cols, (size_t)s->cols * sizeof *s->best);
        }
    }
    return RB_OK;
}

static float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* The Linf start of row r into cand row k: x + eps * (a sign per channel
 * and column), in [0, 1]. */
static void linf_start(state *s, int64_t r, float *cand)
{
    const float *x = s->x0 + r * s->cols;
    float eps = (float)s->set.eps;
    for (int64_t c = 0; c < s->c; c++)
        for (int64_t j = 0; j < s->w; j++) {
            float d = eps * random_sign(&s->rng[r]);
            for (int64_t i = 0; i < s->h; i++) {
                int64_t at = (c * s->h + i) * s->w + j;
                cand[at] = clampf(x[at] + d, 0.0f, 1.0f);
            }
        }
}

/* x + eps * delta / ||delta||, in [0, 1]. */
static void l2_apply(const state *s, const float *x, const float *delta, float *out)
{
    double n = 0;
    for (int64_t i = 0; i < s->cols; i++)
        n += (double)delta[i] * delta[i];
    n = s->set.eps / (sqrt(n) + 1e-12);
    for (int64_t i = 0; i < s->cols; i++)
        out[i] = clampf((float)(x[i] + delta[i] * n), 0.0f, 1.0f);
}

/* The L2 start: a 5 x 5 grid of squares of side h / 5 (at least 1), each
 * eta(side) with a random sign per channel. */
static void l2_start(state *s, int64_t r, float *cand)
{
    int64_t side = s->h / 5 > 0 ? s->h / 5 : 1, from = (s->h - side * 5) / 2;
    memset(s->delta, 0, (size_t)s->cols * sizeof *s->delta);
    for (int64_t gi = 0, vh = from; gi < s->h / side; gi++, vh += side)
        for (int64_t gj = 0, vw = from; gj < s->w / side; gj++, vw += side) {
            eta(s->e, side, rb_rng_uniform(&s->rng[r]) > 0.5f);
            for (int64_t c = 0; c < s->c; c++) {
                float sign = random_sign(&s->rng[r]);
                for (int64_t i = 0; i < side && vh + i < s->h; i++)
                    for (int64_t j = 0; j < side && vw + j < s->w; j++)
                        s->delta[(c * s->h + vh + i) * s->w + vw + j] += (float)(s->e[i * side + j] * sign);
            }
        }
    l2_apply(s, s->x0 + r * s->cols, s->delta, cand);
}

/* A Linf candidate for row r: a square of `side` at a random place moved to
 * +-2 eps per channel from x_best, then clipped to the ball and [0, 1]. */
static void linf_candidate(state *s, int64_t r, int64_t side, float *cand)
{
    const float *x = s->x0 + r * s->cols, *best = s->best + r * s->cols;
    float eps = (float)s->set.eps;
    int64_t vh = random_place(&s->rng[r], s->h - side), vw = random_place(&s->rng[r], s->w - side);
    memcpy(cand, best, (size_t)s->cols * sizeof *cand);
    for (int64_t c = 0; c < s->c; c++) {
        float d = 2.0f * eps * random_sign(&s->rng[r]);
        for (int64_t i = vh; i < vh + side; i++)
            for (int64_t j = vw; j < vw + side; j++) {
                int64_t at = (c * s->h + i) * s->w + j;
                float v = best[at] + d;
                v = v < x[at] - eps ? x[at] - eps : v > x[at] + eps ? x[at] + eps : v;
                cand[at] = clampf(v, 0.0f, 1.0f);
            }
    }
}

static double window_norm(const state *s, const float *d, int64_t c, int64_t vh, int64_t vw, int64_t side)
{
    double n = 0;
    for (int64_t i = vh; i < vh + side; i++)
        for (int64_t j = vw; j < vw + side; j++) {
            double v = d[(c * s->h + i) * s->w + j];
            n += v * v;
        }
    return sqrt(n);
}

/* An L2 candidate for row r (see the top). */
static void l2_candidate(state *s, int64_t r, int64_t side, float *cand)
{
    const float *x = s->x0 + r * s->cols, *best = s->best + r * s->cols;
    int64_t vh = random_place(&s->rng[r], s->h - side), vw = random_place(&s->rng[r], s->w - side);
    int64_t vh2 = random_place(&s->rng[r], s->h - side), vw2 = random_place(&s->rng[r], s->w - side);
    double image = 0, eps2 = s->set.eps * s->set.eps;
    bool transpose;
    for (int64_t i = 0; i < s->cols; i++) {
        s->delta[i] = best[i] - x[i];
        image += (double)s->delta[i] * s->delta[i];
    }
    transpose = rb_rng_uniform(&s->rng[r]) > 0.5f;
    eta(s->e + side * side, side, transpose);
    for (int64_t c = 0; c < s->c; c++) {
        double w1 = window_norm(s, s->delta, c, vh, vw, side), both = 0, n = 0, scale;
        float sign = random_sign(&s->rng[r]);
        /* the norm of the perturbation over the union of both squares */
        for (int64_t i = 0; i < s->h; i++)
            for (int64_t j = 0; j < s->w; j++) {
                bool in1 = i >= vh && i < vh + side && j >= vw && j < vw + side;
                bool in2 = i >= vh2 && i < vh2 + side && j >= vw2 && j < vw2 + side;
                double v = s->delta[(c * s->h + i) * s->w + j];
                if (in1 || in2)
                    both += v * v;
            }
        for (int64_t i = 0; i < side; i++)
            for (int64_t j = 0; j < side; j++) {
                double v = s->e[side * side + i * side + j] * sign +
                           s->delta[(c * s->h + vh + i) * s->w + vw + j] / (1e-12 + w1);
                s->e[i * side + j] = v;
                n += v * v;
            }
        scale = sqrt(fmax(eps2 - image, 0.0) / (double)s->c + both) / (1e-12 + sqrt(n));
        for (int64_t i = 0; i < side; i++)
            for (int64_t j = 0; j < side; j++)
                s->delta[(c * s->h + vh2 + i) * s->w + vw2 + j] = 0.0f;
        for (int64_t i = 0; i < side; i++)
            for (int64_t j = 0; j < side; j++)
                s->delta[(c * s->h + vh + i) * s->w + vw + j] = (float)(s->e[i * side + j] * scale);
    }
    l2_apply(s, x, s->delta, cand);
}

static rb_status square_run(void *self, const rb_params *params, const rb_attack_oracle *oracle,
                            rb_attack_batch *b)
{
    rb_attack_view v;
    state s;
    rb_status st = rb_attack_batch_view(b, WHO, false, &v);
    int64_t n, lshape[2];
    (void)self;
    memset(&s, 0, sizeof s);
    if (st == RB_OK)
        st = read_settings(params, &s.set);
    if (st != RB_OK)
        return st;
    if (b->labels == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, WHO ": the batch has no labels");
    if (!RB_ATTACK_ORACLE_HAS(oracle, classes) || oracle->logits == NULL || oracle->classes < 2)
        return rb_error_set(RB_ERR_UNSUPPORTED, WHO ": needs the oracle's logits and classes (plugin ABI 3)");
    if (rb_tensor_ndim(b->x_adv) != 4)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, WHO ": needs images, N x C x H x W (x_adv is %d-d)",
                            rb_tensor_ndim(b->x_adv));
    if (v.rows == 0 || v.cols == 0)
        return RB_OK;
    s.rows = v.rows;
    s.cols = v.cols;
    s.c = rb_tensor_dim(b->x_adv, 1);
    s.h = rb_tensor_dim(b->x_adv, 2);
    s.w = rb_tensor_dim(b->x_adv, 3);
    s.classes = oracle->classes;
    s.x0 = v.x0;
    s.labels = b->labels;
    s.targeted = b->targeted != 0;
    lshape[0] = s.rows;
    lshape[1] = s.classes;
    {
        int64_t most = s.h > s.w ? s.h : s.w;
        s.best = malloc((size_t)(s.rows * s.cols) * sizeof *s.best);
        s.cand = malloc((size_t)(s.rows * s.cols) * sizeof *s.cand);
        s.delta = malloc((size_t)s.cols * sizeof *s.delta);
        s.margin = malloc((size_t)s.rows * sizeof *s.margin);
        s.loss = malloc((size_t)s.rows * sizeof *s.loss);
        s.e = malloc((size_t)(2 * most * most) * sizeof *s.e);
        s.rng = malloc((size_t)s.rows * sizeof *s.rng);
        s.active = malloc((size_t)s.rows * sizeof *s.active);
    }
    if (!s.best || !s.cand || !s.delta || !s.margin || !s.loss || !s.e || !s.rng || !s.active ||
        rb_tensor_create(&s.logits, RB_DTYPE_F32, 2, lshape) != RB_OK) {
        state_free(&s);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, WHO ": out of memory for %lld images", (long long)v.rows);
    }
    for (int64_t r = 0; r < s.rows; r++) {
        rb_rng_init(&s.rng[r], b->seed, b->stream, (uint64_t)rb_attack_example(b, r));
        s.active[r] = r;
        if (s.set.linf)
            linf_start(&s, r, s.cand + r * s.cols);
        else
            l2_start(&s, r, s.cand + r * s.cols);
    }
    st = query(&s, oracle, s.rows, true);
    for (int64_t q = 0; st == RB_OK && q < s.set.queries; q++) {
        int64_t side = side_at(&s.set, q, s.h, s.w);
        n = 0;
        for (int64_t r = 0; r < s.rows; r++)
            if (s.margin[r] > 0)
                s.active[n++] = r;
        if (n == 0)
            break;
        for (int64_t k = 0; k < n; k++) {
            if (s.set.linf)
                linf_candidate(&s, s.active[k], side, s.cand + k * s.cols);
            else
                l2_candidate(&s, s.active[k], side, s.cand + k * s.cols);
        }
        st = query(&s, oracle, n, false);
    }
    if (st == RB_OK)
        memcpy(v.x, s.best, (size_t)(s.rows * s.cols) * sizeof *v.x);
    state_free(&s);
    return st;
}

RB_ATTACK_PLUGIN("square", "1.0",
                 "the Square attack: score-based random search, Linf or L2 (Andriushchenko et al. 2020)", square_params,
                 .run = square_run);
