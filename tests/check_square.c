/* The square attack plugin, loaded through the registry, against oracles
 * that give logits only (no gradient exists for it to use):
 *  - a model it cannot fool costs exactly queries + 1 evaluations of every
 *    example, and one it fools at the start costs one;
 *  - Linf results sit on the ball's vertices: every pixel at x0 +- eps or
 *    at the box's edge; L2 results on the sphere when the box is inactive;
 *  - the result's margin is never above the start's, and a fooled example
 *    ends fooled;
 *  - examples draw from their own streams: a split batch gives the same
 *    bits, a seed repeats a run, another moves it;
 *  - bad batches and oracles are refused with one line. */
#include "config.h"

#include <math.h>

#include <robusta/robusta.h>

#include "testutil.h"
#include "attackutil.h"
#include "linearoracle.h"

enum { C = 2, H = 6, W = 7, PER = C * H * W, K = 3, ROWS = 4 };

static rb_registry *reg;
static test_attack atk;

static void setup(void)
{
    reg = test_attack_registry();
    atk = test_attack_open(reg, "square");
}

static void teardown(void)
{
    rb_params_destroy(atk.params);
    rb_registry_destroy(reg);
}

static void set(const char *name, const char *value)
{
    test_attack_set(&atk, name, value);
}

typedef test_linear linear; /* tests/linearoracle.h: counts evaluations */

static double margin_of(const linear *m, const float *x, int64_t y)
{
    float z[K];
    double other = -INFINITY;
    test_linear_logits(m, x, z);
    for (int c = 0; c < K; c++)
        if (c != y)
            other = fmax(other, z[c]);
    return z[y] - other;
}

static rb_status run(linear *m, float *x, const float *x0, const int64_t *labels, int64_t rows, int64_t first,
                     uint64_t seed)
{
    return test_linear_run(&atk, m, x, x0, labels, rows, first, seed);
}

static double next_uniform(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (*s >> 8) / 16777216.0;
}

/* Random weights in [-1, 1]; images in [lo, hi]; labels the predictions. */
static void make_problem(linear *m, float *x0, int64_t *labels, double lo, double hi, uint32_t seed)
{
    uint32_t s = seed;
    *m = (linear){.classes = K, .dim = PER, .image = {C, H, W}, .logits_only = true};
    for (int c = 0; c < K; c++)
        for (int i = 0; i < PER; i++)
            m->w[c][i] = 2 * next_uniform(&s) - 1;
    for (int i = 0; i < ROWS * PER; i++)
        x0[i] = (float)(lo + (hi - lo) * next_uniform(&s));
    for (int r = 0; r < ROWS; r++) {
        float z[K];
        test_linear_logits(m, x0 + r * PER, z);
        labels[r] = z[1] > z[0] ? (z[2] > z[1] ? 2 : 1) : (z[2] > z[0] ? 2 : 0);
    }
}

START_TEST(an_unfoolable_model_costs_queries_plus_one_evaluations)
{
    linear m;
    float x0[ROWS * PER], x[ROWS * PER];
    int64_t labels[ROWS];
    make_problem(&m, x0, labels, 0.2, 0.8, 1);
    m.b[0] = 1000; /* class 0 wins anywhere in the unit box */
    for (int r = 0; r < ROWS; r++)
        labels[r] = 0;
    set("queries", "37");
    ck_assert_int_eq(run(&m, x, x0, labels, ROWS, 0, 1), RB_OK);
    ck_assert_int_eq(m.logit_calls, 38);
    ck_assert_int_eq(m.rows_seen, 38 * ROWS);
    /* fooled at the start (labels that are never predicted): one evaluation */
    for (int r = 0; r < ROWS; r++)
        labels[r] = 1;
    m.logit_calls = 0;
    m.rows_seen = 0;
    ck_assert_int_eq(run(&m, x, x0, labels, ROWS, 0, 1), RB_OK);
    ck_assert_int_eq(m.logit_calls, 1);
    for (int r = 0; r < ROWS; r++)
        ck_assert(margin_of(&m, x + r * PER, 1) <= 0);
}
END_TEST

/* Linf: every pixel of the result is x0 + eps, x0 - eps, or clipped to 0
 * or 1 (the start is a vertex and each candidate moves pixels by 2 eps
 * before clipping back); the margin never ends above the start's. */
START_TEST(linf_results_sit_on_the_vertices_and_lower_the_margin)
{
    linear m;
    float x0[ROWS * PER], x[ROWS * PER], start[ROWS * PER];
    int64_t labels[ROWS];
    make_problem(&m, x0, labels, 0.0, 1.0, 2);
    set("eps", "0.05");
    set("queries", "0"); /* the start alone */
    ck_assert_int_eq(run(&m, start, x0, labels, ROWS, 0, 3), RB_OK);
    set("queries", "200");
    ck_assert_int_eq(run(&m, x, x0, labels, ROWS, 0, 3), RB_OK);
    for (int i = 0; i < ROWS * PER; i++) {
        float d = fabsf(x[i] - x0[i]);
        ck_assert_msg(fabsf(d - 0.05f) <= 1e-6f || x[i] == 0.0f || x[i] == 1.0f, "pixel %d: %.9g from %.9g", i,
                      (double)x[i], (double)x0[i]);
    }
    for (int r = 0; r < ROWS; r++) {
        double before = margin_of(&m, start + r * PER, labels[r]), after = margin_of(&m, x + r * PER, labels[r]);
        ck_assert_msg(after <= before || after <= 0, "row %d: margin %.9g above the start's %.9g", r, after, before);
    }
}
END_TEST

/* L2 on images in [0.4, 0.6] with eps 0.1: the box never clips, so the
 * result is on the sphere (float rounding: 1e-6). */
START_TEST(l2_results_sit_on_the_sphere)
{
    linear m;
    float x0[ROWS * PER], x[ROWS * PER];
    int64_t labels[ROWS];
    make_problem(&m, x0, labels, 0.4, 0.6, 4);
    set("norm", "l2");
    set("eps", "0.1");
    set("queries", "150");
    ck_assert_int_eq(run(&m, x, x0, labels, ROWS, 0, 5), RB_OK);
    for (int r = 0; r < ROWS; r++) {
        double n = 0;
        for (int i = 0; i < PER; i++)
            n += ((double)x[r * PER + i] - x0[r * PER + i]) * ((double)x[r * PER + i] - x0[r * PER + i]);
        ck_assert_msg(fabs(sqrt(n) - 0.1) <= 1e-6, "row %d: norm %.9g", r, sqrt(n));
    }
}
END_TEST

START_TEST(examples_draw_from_their_own_streams)
{
    const char *norms[2] = {"linf", "l2"};
    linear m;
    float x0[ROWS * PER], x[ROWS * PER], y[ROWS * PER];
    int64_t labels[ROWS];
    make_problem(&m, x0, labels, 0.1, 0.9, 6);
    set("queries", "60");
    for (int n = 0; n < 2; n++) {
        set("norm", norms[n]);
        set("eps", n ? "0.5" : "0.03");
        ck_assert_int_eq(run(&m, x, x0, labels, ROWS, 0, 9), RB_OK);
        ck_assert_int_eq(run(&m, y, x0, labels, 1, 0, 9), RB_OK);
        ck_assert_int_eq(run(&m, y + PER, x0 + PER, labels + 1, 3, 1, 9), RB_OK);
        ck_assert_msg(memcmp(x, y, sizeof x) == 0, "%s: the split changed the result", norms[n]);
        ck_assert_int_eq(run(&m, y, x0, labels, ROWS, 0, 10), RB_OK);
        ck_assert_msg(memcmp(x, y, sizeof x) != 0, "%s: another seed gave the same result", norms[n]);
    }
}
END_TEST

START_TEST(bad_batches_and_oracles_are_refused)
{
    linear m;
    float x0[ROWS * PER], x[ROWS * PER];
    int64_t labels[ROWS], shape2[2] = {ROWS, PER};
    /* no struct_size: an ABI-2 runtime's */
    rb_attack_oracle old = {.logits = test_linear_oracle_logits, .ctx = &m};
    rb_tensor *tx, *tx0;
    rb_attack_batch b;
    make_problem(&m, x0, labels, 0.1, 0.9, 7);
    memcpy(x, x0, sizeof x);
    ck_assert_int_eq(rb_tensor_wrap(&tx, RB_DTYPE_F32, 2, shape2, x), RB_OK);
    ck_assert_int_eq(rb_tensor_wrap(&tx0, RB_DTYPE_F32, 2, shape2, x0), RB_OK);
    memset(&b, 0, sizeof b);
    b.x_adv = tx;
    b.x_clean = tx0;
    b.labels = labels;
    ck_assert_int_eq(atk.ops->run(NULL, atk.params, &old, &b), RB_ERR_UNSUPPORTED);
    ck_assert_str_eq(rb_last_error(), "square: needs the oracle's logits and classes (plugin ABI 3)");
    {
        rb_attack_oracle o = test_linear_oracle(&m);
        ck_assert_int_eq(atk.ops->run(NULL, atk.params, &o, &b), RB_ERR_INVALID_ARGUMENT);
        ck_assert_str_eq(rb_last_error(), "square: needs images, N x C x H x W (x_adv is 2-d)");
        b.labels = NULL;
        ck_assert_int_eq(atk.ops->run(NULL, atk.params, &o, &b), RB_ERR_INVALID_ARGUMENT);
        ck_assert_str_eq(rb_last_error(), "square: the batch has no labels");
    }
    ck_assert_int_eq(memcmp(x, x0, sizeof x), 0);
    ck_assert_int_eq(m.logit_calls, 0);
    rb_tensor_destroy(tx);
    rb_tensor_destroy(tx0);
    ck_assert_int_eq(rb_params_set(atk.params, "queries", "-1"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_params_set(atk.params, "p-init", "0"), RB_ERR_INVALID_ARGUMENT);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("square");
    TCase *tc = tcase_create("square");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, an_unfoolable_model_costs_queries_plus_one_evaluations);
    tcase_add_test(tc, linf_results_sit_on_the_vertices_and_lower_the_margin);
    tcase_add_test(tc, l2_results_sit_on_the_sphere);
    tcase_add_test(tc, examples_draw_from_their_own_streams);
    tcase_add_test(tc, bad_batches_and_oracles_are_refused);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
