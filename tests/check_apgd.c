/* The apgd-ce attack plugin, loaded through the registry from RB_PLUGIN_PATH
 * as users load it, run against test oracles: a linear softmax classifier
 * with exact cross-entropy gradients (ball, box, loss ascent, fooling,
 * reproducibility) and scripted one-pixel oracles whose recorded trajectory
 * shows the step-size schedule (checkpoints, halving, restarts, momentum). */
#include "config.h"

#include <math.h>

#include <robusta/robusta.h>

#include "testutil.h"

/* Float32 arithmetic on values near 1: a few ulps (6e-8 each). */
#define TOL 1e-6

static rb_registry *reg;
static rb_params *params;
static const rb_attack_ops *ops;

static void setup(void)
{
    const rb_plugin *p;
    ck_assert_int_eq(rb_registry_create(&reg), RB_OK);
    ck_assert_int_eq(rb_registry_load_default(reg), RB_OK);
    ck_assert_msg(rb_registry_find(reg, RB_PLUGIN_ATTACK, "apgd-ce", &p) == RB_OK, "%s", rb_last_error());
    ops = p->ops.attack;
    ck_assert_int_eq(rb_params_create(&params, p->params), RB_OK);
}

static void teardown(void)
{
    rb_params_destroy(params);
    rb_registry_destroy(reg);
}

static void set(const char *name, const char *value)
{
    ck_assert_msg(rb_params_set(params, name, value) == RB_OK, "%s", rb_last_error());
}

/* A batch of `rows` × `cols` over caller arrays. */
typedef struct batch {
    rb_tensor *x, *x0;
    rb_attack_batch b;
} batch;

static void make_batch(batch *t, int64_t rows, int64_t cols, float *x, const float *x0,
                       const int64_t *labels)
{
    int64_t shape[2] = {rows, cols};
    ck_assert_int_eq(rb_tensor_wrap(&t->x, RB_DTYPE_F32, 2, shape, x), RB_OK);
    ck_assert_int_eq(rb_tensor_wrap(&t->x0, RB_DTYPE_F32, 2, shape, (void *)(uintptr_t)x0), RB_OK);
    memset(&t->b, 0, sizeof t->b);
    t->b.x_adv = t->x;
    t->b.x_clean = t->x0;
    t->b.labels = labels;
    t->b.seed = 1234;
    t->b.stream = RB_RNG_STREAM(RB_RNG_ATTACK, 0);
}

static void free_batch(batch *t)
{
    rb_tensor_destroy(t->x);
    rb_tensor_destroy(t->x0);
}

/* ------------------------------------------------- linear softmax oracle */

enum { DIM = 8, CLASSES = 3, ROWS = 6 };

typedef struct linear {
    float w[CLASSES][DIM], bias[CLASSES];
    int calls;
} linear;

static void linear_logits(const linear *m, const float *x, double *z)
{
    for (int c = 0; c < CLASSES; c++) {
        z[c] = m->bias[c];
        for (int i = 0; i < DIM; i++)
            z[c] += (double)m->w[c][i] * x[i];
    }
}

/* Cross-entropy of one example and, when grad is not NULL, its gradient
 * W^T (softmax - onehot). */
static double linear_ce(const linear *m, const float *x, int64_t y, float *grad)
{
    double z[CLASSES], top, sum = 0, p[CLASSES];
    linear_logits(m, x, z);
    top = z[0];
    for (int c = 1; c < CLASSES; c++)
        top = z[c] > top ? z[c] : top;
    for (int c = 0; c < CLASSES; c++)
        sum += exp(z[c] - top);
    for (int c = 0; c < CLASSES; c++)
        p[c] = exp(z[c] - top) / sum - (c == y);
    if (grad != NULL)
        for (int i = 0; i < DIM; i++) {
            double g = 0;
            for (int c = 0; c < CLASSES; c++)
                g += p[c] * m->w[c][i];
            grad[i] = (float)g;
        }
    return top + log(sum) - z[y];
}

static int linear_predict(const linear *m, const float *x)
{
    double z[CLASSES];
    int best = 0;
    linear_logits(m, x, z);
    for (int c = 1; c < CLASSES; c++)
        best = z[c] > z[best] ? c : best;
    return best;
}

static rb_status linear_oracle(void *ctx, const rb_tensor *x, const int64_t *labels, float *losses,
                               rb_tensor *grad)
{
    linear *m = ctx;
    const float *xs = rb_tensor_cdata(x);
    float *g = grad != NULL ? rb_tensor_data(grad) : NULL;
    ck_assert_int_eq(rb_tensor_dim(x, 1), DIM);
    for (int64_t r = 0; r < rb_tensor_dim(x, 0); r++)
        losses[r] = (float)linear_ce(m, xs + r * DIM, labels[r], g != NULL ? g + r * DIM : NULL);
    m->calls++;
    return RB_OK;
}

/* A fixed model and batch: weights in [-1, 1], clean images in (0, 1), labels
 * the clean predictions (every example starts correctly classified). */
static void make_problem(linear *m, float *x0, int64_t *labels)
{
    uint32_t s = 12345;
    memset(m, 0, sizeof *m);
    for (int c = 0; c < CLASSES; c++) {
        for (int i = 0; i < DIM; i++) {
            s = s * 1664525u + 1013904223u;
            m->w[c][i] = (float)((s >> 8) / 16777216.0 * 2 - 1);
        }
        m->bias[c] = 0.1f * (float)c;
    }
    for (int i = 0; i < ROWS * DIM; i++) {
        s = s * 1664525u + 1013904223u;
        x0[i] = (float)(0.1 + 0.8 * ((s >> 8) / 16777216.0));
    }
    for (int r = 0; r < ROWS; r++)
        labels[r] = linear_predict(m, x0 + r * DIM);
}

static void run_linear(linear *m, float *x, const float *x0, const int64_t *labels, int64_t rows,
                       int64_t first)
{
    rb_attack_oracle oracle = {.loss_and_grad = linear_oracle, .ctx = m};
    batch t;
    make_batch(&t, rows, DIM, x, x0, labels);
    t.b.first_example = first;
    ck_assert_msg(ops->run(NULL, params, &oracle, &t.b) == RB_OK, "%s", rb_last_error());
    free_batch(&t);
}

static double row_dist(const float *a, const float *b, int linf)
{
    double d = 0;
    for (int i = 0; i < DIM; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (linf)
            d = e > d ? e : d;
        else
            d += e * e;
    }
    return linf ? d : sqrt(d);
}

static void check_ball_and_ascent(const char *norm, const char *eps_text, double eps,
                                  const char *random_start)
{
    linear m;
    float x0[ROWS * DIM], x[ROWS * DIM], g[DIM], fgsm[DIM];
    int64_t labels[ROWS];
    int linf = strcmp(norm, "linf") == 0, below = 0;
    make_problem(&m, x0, labels);
    set("norm", norm);
    set("eps", eps_text);
    set("steps", "20");
    set("random-start", random_start);
    run_linear(&m, x, x0, labels, ROWS, 0);
    ck_assert_int_eq(m.calls, 21); /* steps + 1 evaluations */
    for (int r = 0; r < ROWS; r++) {
        const float *xr = x + r * DIM, *x0r = x0 + r * DIM;
        double clean = linear_ce(&m, x0r, labels[r], g), adv = linear_ce(&m, xr, labels[r], NULL);
        double gn = 0, one_step;
        for (int i = 0; i < DIM; i++) {
            ck_assert_msg(xr[i] >= 0.0f && xr[i] <= 1.0f, "%s row %d: x[%d] = %.9g", norm, r, i, xr[i]);
            gn += (double)g[i] * g[i];
        }
        ck_assert_msg(row_dist(xr, x0r, linf) <= eps + TOL, "%s row %d: distance %.9g > eps %.9g",
                      norm, r, row_dist(xr, x0r, linf), eps);
        /* One FGSM-like step from the clean image, to the edge of the ball. */
        for (int i = 0; i < DIM; i++) {
            double step = linf ? (g[i] > 0 ? eps : g[i] < 0 ? -eps : 0) : eps * g[i] / sqrt(gn);
            double v = x0r[i] + step;
            fgsm[i] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
        }
        one_step = linear_ce(&m, fgsm, labels[r], NULL);
        if (strcmp(random_start, "false") == 0) {
            /* From the clean image the best point is never worse than the
             * start, and the first iterate is that step. */
            ck_assert_msg(adv >= clean, "%s row %d: loss %.9g < clean %.9g", norm, r, adv, clean);
            ck_assert_msg(adv >= one_step - 1e-5, "%s row %d: loss %.9g < one step %.9g", norm, r,
                          adv, one_step);
        }
        else
            below += adv < clean || adv < one_step - 1e-5;
    }
    ck_assert_msg(below <= 1, "%s: %d of %d examples below the clean or one-step loss", norm, below,
                  ROWS);
}

START_TEST(linf_stays_in_the_ball_and_raises_the_loss)
{
    check_ball_and_ascent("linf", "0.05", 0.05, "false");
    check_ball_and_ascent("linf", "0.05", 0.05, "true");
}
END_TEST

START_TEST(l2_stays_in_the_ball_and_raises_the_loss)
{
    check_ball_and_ascent("l2", "0.2", 0.2, "false");
    check_ball_and_ascent("l2", "0.2", 0.2, "true");
}
END_TEST

START_TEST(the_defaults_are_the_published_ones)
{
    const char *norm;
    double eps, rho, alpha;
    int64_t steps;
    bool random_start;
    ck_assert_int_eq(rb_params_get_string(params, "norm", &norm), RB_OK);
    ck_assert_str_eq(norm, "linf");
    ck_assert_int_eq(rb_params_get_float(params, "eps", &eps), RB_OK);
    ck_assert(eps == 8.0 / 255.0);
    ck_assert_int_eq(rb_params_get_int(params, "steps", &steps), RB_OK);
    ck_assert_int_eq(steps, 100);
    ck_assert_int_eq(rb_params_get_float(params, "rho", &rho), RB_OK);
    ck_assert(rho == 0.75);
    ck_assert_int_eq(rb_params_get_float(params, "alpha", &alpha), RB_OK);
    ck_assert(alpha == 0.75);
    ck_assert_int_eq(rb_params_get_bool(params, "random-start", &random_start), RB_OK);
    ck_assert(random_start);
}
END_TEST

START_TEST(a_large_ball_fools_the_linear_model_everywhere)
{
    static const char *const norms[2] = {"linf", "l2"}, *const eps[2] = {"1", "3"};
    for (int n = 0; n < 2; n++) {
        linear m;
        float x0[ROWS * DIM], x[ROWS * DIM];
        int64_t labels[ROWS];
        make_problem(&m, x0, labels);
        set("norm", norms[n]);
        set("eps", eps[n]);
        set("steps", "30");
        run_linear(&m, x, x0, labels, ROWS, 0);
        for (int r = 0; r < ROWS; r++)
            ck_assert_msg(linear_predict(&m, x + r * DIM) != labels[r], "%s row %d: still class %lld",
                          norms[n], r, (long long)labels[r]);
    }
}
END_TEST

START_TEST(eps_zero_returns_the_input)
{
    static const char *const norms[2] = {"linf", "l2"};
    for (int n = 0; n < 2; n++) {
        linear m;
        float x0[ROWS * DIM], x[ROWS * DIM];
        int64_t labels[ROWS];
        make_problem(&m, x0, labels);
        set("norm", norms[n]);
        set("eps", "0");
        set("steps", "10");
        run_linear(&m, x, x0, labels, ROWS, 0);
        ck_assert_msg(memcmp(x, x0, sizeof x) == 0, "%s: eps 0 moved the input", norms[n]);
    }
}
END_TEST

START_TEST(runs_are_reproducible_and_independent_of_the_batch_split)
{
    static const char *const norms[2] = {"linf", "l2"}, *const eps[2] = {"0.05", "0.2"};
    for (int n = 0; n < 2; n++) {
        linear m;
        float x0[ROWS * DIM], x[ROWS * DIM], again[ROWS * DIM], half[3 * DIM];
        int64_t labels[ROWS];
        rb_attack_oracle oracle = {.loss_and_grad = linear_oracle, .ctx = &m};
        batch t;
        make_problem(&m, x0, labels);
        set("norm", norms[n]);
        set("eps", eps[n]);
        set("steps", "15");
        run_linear(&m, x, x0, labels, ROWS, 0);
        run_linear(&m, again, x0, labels, ROWS, 0);
        ck_assert_msg(memcmp(x, again, sizeof x) == 0, "%s: two runs differ", norms[n]);
        /* Rows 3-5 alone, told they are examples 3-5, end where they did in the batch. */
        run_linear(&m, half, x0 + 3 * DIM, labels + 3, 3, 3);
        ck_assert_msg(memcmp(half, x + 3 * DIM, sizeof half) == 0, "%s: the split changed rows 3-5",
                      norms[n]);
        /* Another seed, another random start, another result. */
        make_batch(&t, ROWS, DIM, again, x0, labels);
        t.b.seed = 99;
        ck_assert_int_eq(ops->run(NULL, params, &oracle, &t.b), RB_OK);
        ck_assert_msg(memcmp(x, again, sizeof x) != 0, "%s: the seed made no difference", norms[n]);
        free_batch(&t);
    }
}
END_TEST

/* ------------------------------------------------------ scripted oracle */

/* One example of one pixel. The loss is a function of the call number (its
 * script); the gradient is +1 at the first call and -1 after, so the
 * trajectory shows every restart at the best point (the start) and the step
 * size used after it. */
enum { MAX_CALLS = 128 };
typedef enum script { RISING, FALLING, RISING_BELOW_START } script;

typedef struct scripted {
    script script;
    int calls;
    float x[MAX_CALLS];
} scripted;

static rb_status scripted_oracle(void *ctx, const rb_tensor *x, const int64_t *labels, float *losses,
                                 rb_tensor *grad)
{
    scripted *s = ctx;
    float *g = rb_tensor_data(grad);
    (void)labels;
    ck_assert_int_lt(s->calls, MAX_CALLS);
    s->x[s->calls] = *(const float *)rb_tensor_cdata(x);
    switch (s->script) {
    case RISING:
        losses[0] = (float)s->calls;
        break;
    case FALLING:
        losses[0] = -(float)s->calls;
        break;
    case RISING_BELOW_START: /* rises at every step, but never back to the start's loss */
        losses[0] = s->calls == 0 ? 1000.0f : (float)s->calls;
        break;
    }
    g[0] = s->calls == 0 ? 1.0f : -1.0f;
    s->calls++;
    return RB_OK;
}

static void run_scripted(scripted *s, script which, float *out)
{
    static const float x0[1] = {0.5f};
    static const int64_t label[1] = {0};
    rb_attack_oracle oracle = {.loss_and_grad = scripted_oracle, .ctx = s};
    batch t;
    memset(s, 0, sizeof *s);
    s->script = which;
    make_batch(&t, 1, 1, out, x0, label);
    ck_assert_msg(ops->run(NULL, params, &oracle, &t.b) == RB_OK, "%s", rb_last_error());
    free_batch(&t);
}

/* The checkpoints of the paper, w_j = ceil(p_j * steps) with p_0 = 0,
 * p_1 = 0.22, p_(j+1) = p_j + max(p_j - p_(j-1) - 0.03, 0.06), written
 * independently of the plugin: fractions in hundredths, repeats dropped. */
static int test_checkpoints(int steps, int *w, int capacity)
{
    int prev = 0, cur = 22, n = 0;
    while (n < capacity) {
        int at = (cur * steps + 99) / 100, next;
        if (at > steps)
            break;
        if (n == 0 || at > w[n - 1])
            w[n++] = at;
        next = cur + (cur - prev - 3 > 6 ? cur - prev - 3 : 6);
        prev = cur;
        cur = next;
    }
    return n;
}

/* The trajectory the scripted oracle should see with alpha = 1 (no
 * momentum), eps 0.1 around 0.5: a step of eta along the gradient's sign,
 * clipped to [0.4, 0.6]; after each restart checkpoint, eta halved and the
 * iterate back at 0.5 with the first gradient (+1). */
static void expected_trajectory(int steps, const int *restarts, int count, double *want)
{
    double x = 0.5, eta = 0.2, g = 1;
    int next = 0;
    want[0] = x;
    for (int n = 1; n <= steps; n++) {
        x += g * eta;
        x = x < 0.4 ? 0.4 : x > 0.6 ? 0.6 : x;
        want[n] = x;
        g = -1;
        if (next < count && restarts[next] == n) {
            next++;
            eta /= 2;
            x = 0.5;
            g = 1;
        }
    }
}

static void check_trajectory(const scripted *s, int steps, const int *restarts, int count,
                             const char *what)
{
    double want[MAX_CALLS];
    ck_assert_int_eq(s->calls, steps + 1);
    expected_trajectory(steps, restarts, count, want);
    for (int n = 0; n <= steps; n++)
        ck_assert_msg(fabs(s->x[n] - want[n]) <= TOL, "%s: call %d at %.9g, want %.9g", what, n,
                      s->x[n], want[n]);
}

START_TEST(checkpoints_follow_the_published_fractions)
{
    static const int published[8] = {22, 41, 57, 70, 80, 87, 93, 99};
    int w[16];
    ck_assert_int_eq(test_checkpoints(100, w, 16), 8);
    ck_assert(memcmp(w, published, sizeof published) == 0);
    ck_assert_int_eq(test_checkpoints(10, w, 16), 7); /* 3 5 6 7 8 9 10: 0.99 repeats 0.93's 10 */
    ck_assert_int_eq(w[0], 3);
    ck_assert_int_eq(w[6], 10);
}
END_TEST

START_TEST(a_falling_loss_halves_the_step_at_every_checkpoint)
{
    static const int steps[3] = {100, 10, 37};
    static const char *const text[3] = {"100", "10", "37"};
    for (int k = 0; k < 3; k++) {
        scripted s;
        float out;
        int w[16], count = test_checkpoints(steps[k], w, 16);
        set("eps", "0.1");
        set("alpha", "1");
        set("random-start", "false");
        set("steps", text[k]);
        run_scripted(&s, FALLING, &out);
        /* No increase at all: condition 1 holds at every checkpoint. */
        check_trajectory(&s, steps[k], w, count, text[k]);
        ck_assert_float_eq(out, 0.5f); /* the start had the highest loss */
    }
}
END_TEST

START_TEST(a_rising_loss_never_halves_the_step)
{
    scripted s;
    float out;
    set("eps", "0.1");
    set("alpha", "1");
    set("random-start", "false");
    set("steps", "100");
    run_scripted(&s, RISING, &out);
    check_trajectory(&s, 100, NULL, 0, "rising");
    ck_assert_float_eq(out, s.x[100]); /* the last point had the highest loss */
}
END_TEST

START_TEST(a_stalled_best_loss_halves_the_step_every_other_checkpoint)
{
    /* The loss rises at every step (condition 1 never holds) but stays
     * below the start's: condition 2 halves at 41, 70, 87 and 99, each
     * after a checkpoint that did not halve (none at the first). */
    static const int restarts[4] = {41, 70, 87, 99};
    scripted s;
    float out;
    set("eps", "0.1");
    set("alpha", "1");
    set("random-start", "false");
    set("steps", "100");
    run_scripted(&s, RISING_BELOW_START, &out);
    check_trajectory(&s, 100, restarts, 4, "stalled");
    ck_assert_float_eq(out, 0.5f);
}
END_TEST

START_TEST(momentum_mixes_the_step_with_the_last_move)
{
    /* eps 0.2 around 0.5, ball [0.3, 0.7], eta 0.4, alpha 0.75:
     * x1 = P(0.5 + 0.4) = 0.7 (no momentum on the first step);
     * x2: z = P(0.7 - 0.4) = 0.3, x2 = 0.7 + 0.75 (0.3 - 0.7) + 0.25 (0.7 - 0.5) = 0.45;
     * x3: z = P(0.45 - 0.4) = 0.3, x3 = P(0.45 - 0.75 * 0.15 - 0.25 * 0.25) = P(0.275) = 0.3.
     * The same in an L2 ball, which in one dimension is the same interval. */
    static const char *const norms[2] = {"linf", "l2"};
    static const double want[4] = {0.5, 0.7, 0.45, 0.3};
    for (int n = 0; n < 2; n++) {
        scripted s;
        float out;
        set("norm", norms[n]);
        set("eps", "0.2");
        set("random-start", "false");
        set("steps", "3");
        run_scripted(&s, RISING, &out);
        ck_assert_int_eq(s.calls, 4);
        for (int i = 0; i < 4; i++)
            ck_assert_msg(fabs(s.x[i] - want[i]) <= TOL, "%s: call %d at %.9g, want %.9g", norms[n],
                          i, s.x[i], want[i]);
    }
}
END_TEST

/* ----------------------------------------------------------------- errors */

static rb_status failing_oracle(void *ctx, const rb_tensor *x, const int64_t *labels, float *losses,
                                rb_tensor *grad)
{
    (void)ctx, (void)x, (void)labels, (void)losses, (void)grad;
    return rb_error_set(RB_ERR_IO, "the model broke");
}

static rb_status nan_oracle(void *ctx, const rb_tensor *x, const int64_t *labels, float *losses,
                            rb_tensor *grad)
{
    int *calls = ctx;
    (void)x, (void)labels, (void)grad;
    losses[0] = 0.5f;
    losses[1] = ++*calls == 3 ? NAN : 0.5f;
    return RB_OK;
}

START_TEST(bad_parameters_are_refused)
{
    ck_assert_int_eq(rb_params_set(params, "norm", "l1"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--norm: 'l1' is not one of linf|l2; did you mean l2?");
    ck_assert_int_eq(rb_params_set(params, "steps", "0"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--steps: 0 is outside [1, 100000]");
    ck_assert_int_eq(rb_params_set(params, "eps", "-0.1"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--eps: -0.1 is outside [0, inf)");
    ck_assert_int_eq(rb_params_set(params, "rho", "1.5"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--rho: 1.5 is outside [0, 1]");
    ck_assert_int_eq(rb_params_set(params, "alpha", "0"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--alpha: 0 is outside (0, 1]");
}
END_TEST

START_TEST(bad_runs_are_refused)
{
    float x[6] = {0}, x0[6] = {0}, other0[6] = {0};
    int64_t labels[2] = {0, 0}, other[2] = {3, 2};
    int calls = 0;
    rb_attack_oracle none = {0}, failing = {.loss_and_grad = failing_oracle},
                     nan = {.loss_and_grad = nan_oracle, .ctx = &calls};
    rb_tensor *wrong_shape;
    batch t;
    set("steps", "5");
    make_batch(&t, 2, 3, x, x0, labels);
    ck_assert_int_eq(ops->run(NULL, params, NULL, &t.b), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "apgd-ce: the oracle has no loss_and_grad");
    ck_assert_int_eq(ops->run(NULL, params, &none, &t.b), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "apgd-ce: the oracle has no loss_and_grad");
    ck_assert_int_eq(ops->run(NULL, params, &failing, &t.b), RB_ERR_IO);
    ck_assert_str_eq(rb_last_error(), "apgd-ce: evaluating the model at step 0: the model broke");
    t.b.first_example = 40;
    ck_assert_int_eq(ops->run(NULL, params, &nan, &t.b), RB_ERR_NUMERIC);
    ck_assert_str_eq(rb_last_error(), "apgd-ce: the loss of example 41 is not finite at step 2");
    t.b.labels = NULL;
    ck_assert_int_eq(ops->run(NULL, params, &nan, &t.b), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "apgd-ce: the batch has no labels");
    ck_assert_int_eq(rb_tensor_wrap(&wrong_shape, RB_DTYPE_F32, 2, other, other0), RB_OK);
    t.b.x_clean = wrong_shape;
    ck_assert_int_eq(ops->run(NULL, params, &nan, &t.b), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "apgd-ce: x_clean has 6 values in 3 rows, x_adv 6 in 2");
    rb_tensor_destroy(wrong_shape);
    free_batch(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("apgd-ce");
    TCase *tc = tcase_create("apgd");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, the_defaults_are_the_published_ones);
    tcase_add_test(tc, linf_stays_in_the_ball_and_raises_the_loss);
    tcase_add_test(tc, l2_stays_in_the_ball_and_raises_the_loss);
    tcase_add_test(tc, a_large_ball_fools_the_linear_model_everywhere);
    tcase_add_test(tc, eps_zero_returns_the_input);
    tcase_add_test(tc, runs_are_reproducible_and_independent_of_the_batch_split);
    tcase_add_test(tc, checkpoints_follow_the_published_fractions);
    tcase_add_test(tc, a_falling_loss_halves_the_step_at_every_checkpoint);
    tcase_add_test(tc, a_rising_loss_never_halves_the_step);
    tcase_add_test(tc, a_stalled_best_loss_halves_the_step_every_other_checkpoint);
    tcase_add_test(tc, momentum_mixes_the_step_with_the_last_move);
    tcase_add_test(tc, bad_parameters_are_refused);
    tcase_add_test(tc, bad_runs_are_refused);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
