/* The in-tree attack plugins pgd-l2 and pgd-linf, loaded through the
 * registry from RB_PLUGIN_PATH as users load them: steps, projections and
 * random starts against hand-computed values, and bad batches refused. */
#include "config.h"

#include <math.h>

#include <robusta/robusta.h>

#include "testutil.h"
#include "attackutil.h"

/* Float32 arithmetic on values near 1: a few ulps (6e-8 each). */
#define TOL 1e-6

static rb_registry *reg;

static void setup(void)
{
    reg = test_attack_registry();
}

static void teardown(void)
{
    rb_registry_destroy(reg);
}

typedef test_attack attack;

static attack open_attack(const char *name)
{
    return test_attack_open(reg, name);
}

/* A batch of `rows` × `cols` over caller arrays. */
typedef struct batch {
    rb_tensor *x, *x0, *g;
    rb_attack_batch b;
} batch;

static void make_batch(batch *t, int64_t rows, int64_t cols, float *x, float *x0, float *g)
{
    int64_t shape[2] = {rows, cols};
    ck_assert_int_eq(rb_tensor_wrap(&t->x, RB_DTYPE_F32, 2, shape, x), RB_OK);
    ck_assert_int_eq(rb_tensor_wrap(&t->x0, RB_DTYPE_F32, 2, shape, x0), RB_OK);
    t->g = NULL;
    if (g != NULL)
        ck_assert_int_eq(rb_tensor_wrap(&t->g, RB_DTYPE_F32, 2, shape, g), RB_OK);
    memset(&t->b, 0, sizeof t->b);
    t->b.x_adv = t->x;
    t->b.x_clean = t->x0;
    t->b.grad = t->g;
    t->b.seed = 1234;
    t->b.stream = RB_RNG_STREAM(RB_RNG_ATTACK, 0);
}

static void free_batch(batch *t)
{
    rb_tensor_destroy(t->x);
    rb_tensor_destroy(t->x0);
    rb_tensor_destroy(t->g);
}

static void assert_close(const float *got, const double *want, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - want[i]) <= TOL, "value %d: got %.9g, want %.9g", i, got[i], want[i]);
}

START_TEST(l2_step_moves_along_the_normalized_gradient)
{
    attack a = open_attack("pgd-l2");
    float x[6] = {0.5f, 0.5f, 0.5f, 0.2f, 0.2f, 0.2f}, x0[6] = {0};
    float g[6] = {3, 4, 0, 0, 0, 0}; /* row 0: |g| = 5; row 1: zero gradient */
    batch t;
    make_batch(&t, 2, 3, x, x0, g);
    ck_assert_int_eq(rb_params_set(a.params, "step-size", "0.5"), RB_OK);
    ck_assert_int_eq(a.ops->step(NULL, a.params, &t.b), RB_OK);
    assert_close(x, (const double[]){0.8, 0.9, 0.5, 0.2, 0.2, 0.2}, 6);
    t.b.targeted = 1; /* a targeted step descends: back to the start */
    ck_assert_int_eq(a.ops->step(NULL, a.params, &t.b), RB_OK);
    assert_close(x, (const double[]){0.5, 0.5, 0.5, 0.2, 0.2, 0.2}, 6);
    free_batch(&t);
    rb_params_destroy(a.params);
}
END_TEST

START_TEST(l2_project_renormalizes_then_clamps)
{
    attack a = open_attack("pgd-l2");
    /* row 0: delta (0.3, 0.4, 0), |delta| = 0.5 > eps = 0.25: scaled by 0.25 / (0.5 + 1e-7);
     * row 1: delta (0.1, 0, 0) inside the ball: unchanged;
     * row 2: inside the ball but past 1: clamped. */
    float x0[9] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.9f, 0.9f, 0.9f};
    float x[9] = {0.8f, 0.9f, 0.5f, 0.6f, 0.5f, 0.5f, 1.1f, 0.9f, 0.9f};
    double s = 0.25 / (0.5 + 1e-7);
    batch t;
    make_batch(&t, 3, 3, x, x0, NULL);
    ck_assert_int_eq(rb_params_set(a.params, "eps", "0.25"), RB_OK);
    ck_assert_int_eq(a.ops->project(NULL, a.params, &t.b), RB_OK);
    assert_close(x, (const double[]){0.5 + 0.3 * s, 0.5 + 0.4 * s, 0.5, 0.6, 0.5, 0.5, 1.0, 0.9, 0.9}, 9);
    free_batch(&t);
    rb_params_destroy(a.params);
}
END_TEST

START_TEST(l2_random_start_lands_on_the_sphere_reproducibly)
{
    enum { ROWS = 4, COLS = 50 };
    attack a = open_attack("pgd-l2");
    static float x[ROWS * COLS], again[ROWS * COLS], split[ROWS * COLS], x0[ROWS * COLS];
    batch t, u, half;
    for (int i = 0; i < ROWS * COLS; i++)
        x0[i] = 0.5f;
    /* eps 0.1 keeps every pixel within [0.4, 0.6]: no clamping, |delta| = eps exactly. */
    ck_assert_int_eq(rb_params_set(a.params, "eps", "0.1"), RB_OK);
    make_batch(&t, ROWS, COLS, x, x0, NULL);
    ck_assert_int_eq(a.ops->random_start(NULL, a.params, &t.b), RB_OK);
    for (int r = 0; r < ROWS; r++) {
        double norm = 0;
        for (int i = 0; i < COLS; i++)
            norm += (x[r * COLS + i] - 0.5) * (x[r * COLS + i] - 0.5);
        ck_assert_msg(fabs(sqrt(norm) - 0.1) < 1e-5, "row %d: |delta| = %.9g", r, sqrt(norm));
    }
    ck_assert(memcmp(x, x + COLS, COLS * sizeof *x) != 0); /* rows differ */
    make_batch(&u, ROWS, COLS, again, x0, NULL);
    ck_assert_int_eq(a.ops->random_start(NULL, a.params, &u.b), RB_OK);
    ck_assert(memcmp(x, again, sizeof x) == 0); /* same seed, same start */
    /* Rows 2-3 alone, told they are examples 2-3, start exactly where they did in the batch. */
    make_batch(&half, 2, COLS, split, x0, NULL);
    half.b.first_example = 2;
    ck_assert_int_eq(a.ops->random_start(NULL, a.params, &half.b), RB_OK);
    ck_assert(memcmp(split, x + 2 * COLS, 2 * COLS * sizeof *x) == 0);
    u.b.seed = 99; /* another seed, another start */
    ck_assert_int_eq(a.ops->random_start(NULL, a.params, &u.b), RB_OK);
    ck_assert(memcmp(x, again, sizeof x) != 0);
    free_batch(&t);
    free_batch(&u);
    free_batch(&half);
    rb_params_destroy(a.params);
}
END_TEST

START_TEST(linf_step_uses_the_sign)
{
    attack a = open_attack("pgd-linf");
    float x[3] = {0.5f, 0.5f, 0.5f}, x0[3] = {0}, g[3] = {2, -3, 0};
    batch t;
    make_batch(&t, 1, 3, x, x0, g);
    ck_assert_int_eq(rb_params_set(a.params, "step-size", "0.1"), RB_OK);
    ck_assert_int_eq(a.ops->step(NULL, a.params, &t.b), RB_OK);
    assert_close(x, (const double[]){0.6, 0.4, 0.5}, 3);
    t.b.targeted = 1;
    ck_assert_int_eq(a.ops->step(NULL, a.params, &t.b), RB_OK);
    ck_assert_int_eq(a.ops->step(NULL, a.params, &t.b), RB_OK);
    assert_close(x, (const double[]){0.4, 0.6, 0.5}, 3);
    free_batch(&t);
    rb_params_destroy(a.params);
}
END_TEST

START_TEST(linf_project_clips_then_clamps)
{
    attack a = open_attack("pgd-linf");
    float x0[4] = {0.5f, 0.5f, 0.5f, 0.95f}, x[4] = {0.7f, 0.3f, 0.52f, 1.2f};
    batch t;
    make_batch(&t, 1, 4, x, x0, NULL);
    ck_assert_int_eq(rb_params_set(a.params, "eps", "0.1"), RB_OK);
    ck_assert_int_eq(a.ops->project(NULL, a.params, &t.b), RB_OK);
    assert_close(x, (const double[]){0.6, 0.4, 0.52, 1.0}, 4);
    free_batch(&t);
    rb_params_destroy(a.params);
}
END_TEST

START_TEST(linf_random_start_stays_in_the_box)
{
    enum { N = 4000 };
    attack a = open_attack("pgd-linf");
    static float x[N], x0[N];
    double eps, sum = 0, lo = 1, hi = -1;
    batch t;
    for (int i = 0; i < N; i++)
        x0[i] = (i % 3 == 0) ? 0.0f : 0.5f; /* every third pixel sits on the lower bound */
    ck_assert_int_eq(rb_params_get_float(a.params, "eps", &eps), RB_OK);
    ck_assert(eps == 8.0 / 255.0); /* the default, read from "8/255" */
    make_batch(&t, 40, N / 40, x, x0, NULL);
    ck_assert_int_eq(a.ops->random_start(NULL, a.params, &t.b), RB_OK);
    for (int i = 0; i < N; i++) {
        double d = x[i] - x0[i];
        ck_assert(x[i] >= 0.0f && x[i] <= 1.0f);
        ck_assert(fabs(d) <= eps + TOL);
        if (i % 3 != 0) {
            sum += d;
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        else
            ck_assert(d >= 0); /* clamped at 0 */
    }
    /* Uniform on [-eps, eps): ~2667 samples, mean within 4 standard errors
     * (eps / sqrt(3 n) each), and both ends of the box reached. */
    ck_assert(fabs(sum / (N * 2 / 3)) < 4 * eps / sqrt(3.0 * N * 2 / 3));
    ck_assert(lo < -0.9 * eps && hi > 0.9 * eps);
    free_batch(&t);
    rb_params_destroy(a.params);
}
END_TEST

START_TEST(bad_batches_are_refused)
{
    attack a = open_attack("pgd-l2");
    int32_t ints[6] = {0};
    float x[6] = {0}, x0[6] = {0};
    int64_t shape[2] = {2, 3}, other[2] = {3, 2};
    rb_tensor *wrong_type, *wrong_shape;
    batch t;
    make_batch(&t, 2, 3, x, x0, NULL);
    ck_assert_int_eq(a.ops->step(NULL, a.params, &t.b), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "pgd-l2: the batch has no grad tensor");
    ck_assert_int_eq(rb_tensor_wrap(&wrong_type, RB_DTYPE_I32, 2, shape, ints), RB_OK);
    t.b.grad = wrong_type;
    ck_assert_int_eq(a.ops->step(NULL, a.params, &t.b), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "pgd-l2: grad must be f32 with a batch dimension (it is i32, 2-d)");
    ck_assert_int_eq(rb_tensor_wrap(&wrong_shape, RB_DTYPE_F32, 2, other, x0), RB_OK);
    t.b.x_clean = wrong_shape;
    ck_assert_int_eq(a.ops->project(NULL, a.params, &t.b), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "pgd-l2: x_clean has 6 values in 3 rows, x_adv 6 in 2");
    rb_tensor_destroy(wrong_type);
    rb_tensor_destroy(wrong_shape);
    free_batch(&t);
    rb_params_destroy(a.params);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("attack plugins");
    TCase *tc = tcase_create("pgd");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, l2_step_moves_along_the_normalized_gradient);
    tcase_add_test(tc, l2_project_renormalizes_then_clamps);
    tcase_add_test(tc, l2_random_start_lands_on_the_sphere_reproducibly);
    tcase_add_test(tc, linf_step_uses_the_sign);
    tcase_add_test(tc, linf_project_clips_then_clamps);
    tcase_add_test(tc, linf_random_start_stays_in_the_box);
    tcase_add_test(tc, bad_batches_are_refused);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
