/* The attack helpers of robusta/plugin.h (rb_attack_step_*, rb_attack_project_*,
 * rb_attack_sample_*): exact values on cases worked out by hand (numbers
 * chosen so that float32 holds them exactly), the two L2 rules told apart,
 * random starts keyed by example, the L2 ball's radii checked against their
 * distribution, and bad input refused with one line. */
#include "config.h"

#include <math.h>

#include <robusta/robusta.h>

#include "testutil.h"

static rb_attack_view view(int64_t rows, int64_t cols, float *x, const float *x0, const float *grad)
{
    rb_attack_view v = {rows, cols, x, x0, grad};
    return v;
}

static void assert_exact(const float *got, const float *want, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "value %d: got %.9g, want %.9g", i, (double)got[i], (double)want[i]);
}

START_TEST(sign_step_moves_each_value_by_the_step)
{
    float x[5] = {0.5f, 0.5f, 0.5f, 0.5f, 0.25f};
    const float x0[5] = {0};
    const float g[5] = {1.0f, -2.0f, 0.0f, -0.0f, 1e-30f};
    rb_attack_view v = view(1, 5, x, x0, g);
    ck_assert_int_eq(rb_attack_step_sign(&v, 0.25), RB_OK);
    assert_exact(x, (const float[]){0.75f, 0.25f, 0.5f, 0.5f, 0.5f}, 5);
    /* a negative step descends (targeted): back where it started */
    ck_assert_int_eq(rb_attack_step_sign(&v, -0.25), RB_OK);
    assert_exact(x, (const float[]){0.5f, 0.5f, 0.5f, 0.5f, 0.25f}, 5);
    /* no clamping: a step is not a projection */
    ck_assert_int_eq(rb_attack_step_sign(&v, 0.75), RB_OK);
    assert_exact(x, (const float[]){1.25f, -0.25f, 0.5f, 0.5f, 1.0f}, 5);
}
END_TEST

START_TEST(l2_step_moves_each_row_along_its_normalized_gradient)
{
    /* row 0: g = (3, 4), |g| = 5, step 5: moves by (3, 4) (5/(5 + tiny) rounds to 1
     * in float32); row 1: a zero gradient does not move (0 / tiny, no NaN);
     * row 2: (-6, 8), |g| = 10, step -5 descends by (-3, 4). */
    float x[6] = {0.5f, 0.5f, 0.25f, 0.25f, 0.5f, 0.5f};
    const float x0[6] = {0};
    const float g[6] = {3, 4, 0, 0, -6, 8};
    rb_attack_view v = view(2, 2, x, x0, g), last = view(1, 2, x + 4, x0, g + 4);
    ck_assert_int_eq(rb_attack_step_l2(&v, 5.0, RB_ATTACK_L2_ROBUSTNESS), RB_OK);
    ck_assert_int_eq(rb_attack_step_l2(&last, -5.0, RB_ATTACK_L2_AUTOATTACK), RB_OK);
    assert_exact(x, (const float[]){3.5f, 4.5f, 0.25f, 0.25f, 3.5f, -3.5f}, 6);
}
END_TEST

START_TEST(l2_step_rules_differ_in_the_constant_added_to_the_norm)
{
    /* |g| = 2^-36 (1.46e-11, exact in float32), step 1: the robustness
     * library moves g / (g + 1e-10) = 0.127, AutoAttack g / (g + 1e-12) =
     * 0.936. */
    float a[1] = {0}, b[1] = {0};
    const float x0[1] = {0}, g[1] = {0x1p-36f};
    rb_attack_view va = view(1, 1, a, x0, g), vb = view(1, 1, b, x0, g);
    ck_assert_int_eq(rb_attack_step_l2(&va, 1.0, RB_ATTACK_L2_ROBUSTNESS), RB_OK);
    ck_assert_int_eq(rb_attack_step_l2(&vb, 1.0, RB_ATTACK_L2_AUTOATTACK), RB_OK);
    ck_assert_float_eq(a[0], (float)(1.0 / (0x1p-36 + 1e-10) * 0x1p-36));
    ck_assert_float_eq(b[0], (float)(1.0 / (0x1p-36 + 1e-12) * 0x1p-36));
    ck_assert(fabs(a[0] - 0.12706) < 1e-4 && fabs(b[0] - 0.93577) < 1e-4);
}
END_TEST

START_TEST(linf_projection_clips_then_clamps)
{
    /* eps 1/8: +1/4 -> +1/8; -1/2 -> -1/8; +1/16 stays; 0.95 + 0.125 -> 1;
     * 0.0625 - 0.125 -> 0 */
    const float x0[5] = {0.5f, 0.5f, 0.25f, 0.95f, 0.0625f};
    float x[5] = {0.75f, 0.0f, 0.3125f, 1.5f, -1.0f};
    rb_attack_view v = view(1, 5, x, x0, NULL);
    ck_assert_int_eq(rb_attack_project_linf(&v, 0.125), RB_OK);
    assert_exact(x, (const float[]){0.625f, 0.375f, 0.3125f, 1.0f, 0.0f}, 5);
    ck_assert_int_eq(rb_attack_project_linf(&v, 0.0), RB_OK);
    assert_exact(x, x0, 5);
}
END_TEST

START_TEST(l2_projection_follows_each_rule)
{
    /* Rows of d = x - x0 = (3/16, 4/16): |d| = 5/16. */
    const float x0[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    const float start[4] = {0.6875f, 0.75f, 0.6875f, 0.75f};
    float x[4];
    rb_attack_view v = view(2, 2, x, x0, NULL);

    /* Inside the ball (eps 1/2): the robustness rule leaves d alone; AutoAttack
     * scales by (5/16) / (5/16 + 1e-12), 1 - 3.2e-12, which float32 cannot see. */
    memcpy(x, start, sizeof x);
    ck_assert_int_eq(rb_attack_project_l2(&v, 0.5, RB_ATTACK_L2_ROBUSTNESS), RB_OK);
    assert_exact(x, start, 4);
    ck_assert_int_eq(rb_attack_project_l2(&v, 0.5, RB_ATTACK_L2_AUTOATTACK), RB_OK);
    assert_exact(x, start, 4);

    /* Outside (eps 1/16): d * (1/16) / (5/16 + 1e-7) by torch.renorm, which
     * is d / 5 = (0.0375, 0.05) to within 3.2e-7 relative (values of x
     * within 1e-7); AutoAttack's d * (1/16) / (5/16 + 1e-12) likewise. */
    memcpy(x, start, sizeof x);
    ck_assert_int_eq(rb_attack_project_l2(&v, 0.0625, RB_ATTACK_L2_ROBUSTNESS), RB_OK);
    assert_exact(x, (const float[]){0.5f + (float)(0.1875 * (0.0625 / (0.3125 + 1e-7))),
                                    0.5f + (float)(0.25 * (0.0625 / (0.3125 + 1e-7))),
                                    0.5f + (float)(0.1875 * (0.0625 / (0.3125 + 1e-7))),
                                    0.5f + (float)(0.25 * (0.0625 / (0.3125 + 1e-7)))},
                 4);
    ck_assert(fabs(x[0] - 0.5375) < 1e-7 && fabs(x[1] - 0.55) < 1e-7);
    memcpy(x, start, sizeof x);
    ck_assert_int_eq(rb_attack_project_l2(&v, 0.0625, RB_ATTACK_L2_AUTOATTACK), RB_OK);
    ck_assert(fabs(x[0] - 0.5375) < 1e-7 && fabs(x[1] - 0.55) < 1e-7);

    /* The rules differ where d is tiny: |d| = 2^-30 inside eps = 2^-31 */
    {
        const float c[1] = {0.0f};
        float a[1] = {0x1p-30f}, b[1] = {0x1p-30f};
        rb_attack_view va = view(1, 1, a, c, NULL), vb = view(1, 1, b, c, NULL);
        ck_assert_int_eq(rb_attack_project_l2(&va, 0x1p-31, RB_ATTACK_L2_ROBUSTNESS), RB_OK);
        ck_assert_int_eq(rb_attack_project_l2(&vb, 0x1p-31, RB_ATTACK_L2_AUTOATTACK), RB_OK);
        /* renorm: 2^-31 / (2^-30 + 1e-7) * 2^-30; AutoAttack: 2^-31 / (2^-30 + 1e-12) * 2^-30 */
        ck_assert_float_eq(a[0], (float)(0x1p-31 / (0x1p-30 + 1e-7) * 0x1p-30));
        ck_assert_float_eq(b[0], (float)(0x1p-31 / (0x1p-30 + 1e-12) * 0x1p-30));
        ck_assert(a[0] < 1e-11f && b[0] > 4e-10f); /* renorm's 1e-7 swamps a norm of 1e-9 */
    }

    /* Clamped to [0, 1] after the ball: x0 0.9, d (0.25, 0) with eps 1 stays
     * in the ball and is cut at 1. */
    {
        const float c[2] = {0.9f, 0.9f};
        float y[2] = {1.15f, 0.9f};
        rb_attack_view vy = view(1, 2, y, c, NULL);
        ck_assert_int_eq(rb_attack_project_l2(&vy, 1.0, RB_ATTACK_L2_ROBUSTNESS), RB_OK);
        assert_exact(y, (const float[]){1.0f, 0.9f}, 2);
    }
}
END_TEST

/* A batch that only carries the random-number key. */
static rb_attack_batch key(int64_t first_example)
{
    rb_attack_batch b;
    memset(&b, 0, sizeof b);
    b.seed = 77;
    b.stream = RB_RNG_STREAM(RB_RNG_ATTACK, 2);
    b.first_example = first_example;
    return b;
}

START_TEST(linf_sampling_draws_each_row_from_its_example)
{
    enum { ROWS = 3, COLS = 40 };
    float x[ROWS * COLS], one[COLS], x0[ROWS * COLS];
    rb_attack_batch b = key(10), later = key(12);
    rb_attack_view v = view(ROWS, COLS, x, x0, NULL), tail = view(1, COLS, one, x0 + 2 * COLS, NULL);
    for (int i = 0; i < ROWS * COLS; i++)
        x0[i] = i % 3 == 0 ? 0.0f : 0.5f; /* some on the border of [0, 1] */
    ck_assert_int_eq(rb_attack_sample_linf(&v, &b, 0.25), RB_OK);
    for (int r = 0; r < ROWS; r++) {
        rb_rng rng;
        rb_rng_init(&rng, 77, RB_RNG_STREAM(RB_RNG_ATTACK, 2), (uint64_t)(10 + r));
        for (int i = r * COLS; i < (r + 1) * COLS; i++) {
            float u = 2.0f * (rb_rng_uniform(&rng) - 0.5f) * 0.25f;
            float want = x0[i] + u < 0 ? 0.0f : x0[i] + u;
            ck_assert_msg(x[i] == want, "value %d: %.9g, want %.9g", i, (double)x[i], (double)want);
            ck_assert(x[i] >= 0.0f && fabsf(x[i] - x0[i]) <= 0.25f);
        }
    }
    /* row 2 alone, as example 12, starts where it did in the batch */
    ck_assert_int_eq(rb_attack_sample_linf(&tail, &later, 0.25), RB_OK);
    ck_assert_int_eq(memcmp(one, x + 2 * COLS, sizeof one), 0);
    ck_assert(memcmp(x, x + COLS, COLS * sizeof *x) != 0);
}
END_TEST

START_TEST(l2_sphere_sampling_lands_at_eps)
{
    enum { ROWS = 4, COLS = 30 };
    float x[ROWS * COLS], y[ROWS * COLS], x0[ROWS * COLS];
    rb_attack_batch b = key(0);
    rb_attack_view v = view(ROWS, COLS, x, x0, NULL), w = view(ROWS, COLS, y, x0, NULL);
    for (int i = 0; i < ROWS * COLS; i++)
        x0[i] = 0.5f;
    /* eps 0.1 keeps every value inside [0.4, 0.6]: no clamping. Each value is
     * rounded once to float32 (half a spacing, 3e-8 at 0.5): |d| is eps to
     * within sqrt(30) * 3e-8 < 1e-6. */
    ck_assert_int_eq(rb_attack_sample_l2_sphere(&v, &b, 0.1, RB_ATTACK_L2_ROBUSTNESS), RB_OK);
    ck_assert_int_eq(rb_attack_sample_l2_sphere(&w, &b, 0.1, RB_ATTACK_L2_AUTOATTACK), RB_OK);
    for (int r = 0; r < ROWS; r++) {
        rb_rng rng;
        float z[COLS];
        double n = 0, d = 0;
        rb_rng_init(&rng, 77, RB_RNG_STREAM(RB_RNG_ATTACK, 2), (uint64_t)r);
        for (int i = 0; i < COLS; i++) {
            z[i] = rb_rng_normal(&rng);
            n += (double)z[i] * z[i];
        }
        n = sqrt(n);
        for (int i = 0; i < COLS; i++) {
            ck_assert_float_eq(x[r * COLS + i], 0.5f + (float)(0.1 / (n + 1e-10) * z[i]));
            ck_assert_float_eq(y[r * COLS + i], 0.5f + (float)(0.1 / (n + 1e-12) * z[i]));
            d += ((double)x[r * COLS + i] - 0.5) * ((double)x[r * COLS + i] - 0.5);
        }
        ck_assert_msg(fabs(sqrt(d) - 0.1) < 1e-6, "row %d: |d| = %.9g", r, sqrt(d));
    }
}
END_TEST

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

START_TEST(l2_ball_sampling_is_uniform_in_volume)
{
    /* In the 3-d ball of radius eps, uniform in volume, the radius r has
     * P(r <= t eps) = t^3, so (r / eps)^3 is uniform on [0, 1], and each
     * coordinate of d / eps has mean 0 and variance 1 / (3 + 2) = 0.2.
     * 20000 samples (one row each, as examples 0..19999):
     *  - Kolmogorov-Smirnov distance of (r / eps)^3 from U(0, 1): under
     *    uniformity it exceeds 1.95 / sqrt(n) = 0.0138 with probability
     *    0.001; a sampler on the sphere (every r = eps) or uniform in the
     *    radius gives 1 and 0.30. Float32 rounding moves (r / eps)^3 by
     *    about 1e-6, nothing at this scale.
     *  - coordinate means: standard error sqrt(0.2 / 20000) = 0.0032; 5 of
     *    them, 0.0158.
     * The draws are seeded, so the test is deterministic; the bounds say it
     * would pass for almost every seed. */
    enum { N = 20000, COLS = 3 };
    static float x[N * COLS], x0[N * COLS];
    static double cubes[N];
    double mean[COLS] = {0}, ks = 0, eps = 0.4;
    rb_attack_batch b = key(0);
    rb_attack_view v = view(N, COLS, x, x0, NULL);
    for (int i = 0; i < N * COLS; i++)
        x0[i] = 0.5f; /* eps 0.4: the ball lies inside [0.1, 0.9]^3, no clamping */
    ck_assert_int_eq(rb_attack_sample_l2_ball(&v, &b, eps), RB_OK);
    for (int r = 0; r < N; r++) {
        double s = 0;
        for (int i = 0; i < COLS; i++) {
            double d = ((double)x[r * COLS + i] - 0.5) / eps;
            s += d * d;
            mean[i] += d / N;
        }
        ck_assert_msg(sqrt(s) <= 1 + 1e-6, "row %d: radius %.9g eps", r, sqrt(s));
        cubes[r] = s * sqrt(s);
    }
    qsort(cubes, N, sizeof *cubes, compare_doubles);
    for (int r = 0; r < N; r++) {
        double above = (double)(r + 1) / N - cubes[r], below = cubes[r] - (double)r / N;
        ks = fmax(ks, fmax(above, below));
    }
    ck_assert_msg(ks < 1.95 / sqrt((double)N), "KS distance %.5f", ks);
    for (int i = 0; i < COLS; i++)
        ck_assert_msg(fabs(mean[i]) < 5 * sqrt(0.2 / N), "coordinate %d: mean %.5f", i, mean[i]);
    /* Reproducible and keyed by example: rows 5..6 alone start where they did. */
    {
        float y[2 * COLS];
        rb_attack_batch later = key(5);
        rb_attack_view w = view(2, COLS, y, x0, NULL);
        ck_assert_int_eq(rb_attack_sample_l2_ball(&w, &later, eps), RB_OK);
        ck_assert_int_eq(memcmp(y, x + 5 * COLS, sizeof y), 0);
    }
}
END_TEST

START_TEST(bad_input_is_refused_with_one_line)
{
    float x[2] = {0.5f, 0.5f};
    const float x0[2] = {0.5f, 0.5f};
    rb_attack_batch b = key(0);
    rb_attack_view v = view(1, 2, x, x0, NULL), neg = view(-1, 2, x, x0, NULL);
    rb_attack_view no_x = view(1, 2, NULL, x0, NULL), empty = view(0, 2, NULL, NULL, NULL);

    ck_assert_int_eq(rb_attack_project_linf(NULL, 0.1), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "rb_attack_project_linf: the view is NULL");
    ck_assert_int_eq(rb_attack_project_l2(&neg, 0.1, RB_ATTACK_L2_ROBUSTNESS), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "rb_attack_project_l2: the view has -1 rows of 2 values (both must be >= 0)");
    ck_assert_int_eq(rb_attack_sample_linf(&no_x, &b, 0.1), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "rb_attack_sample_linf: the view has no x array");
    ck_assert_int_eq(rb_attack_step_sign(&v, 0.1), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(),
                     "rb_attack_step_sign: the view has no grad array (ask rb_attack_batch_view for the gradient)");
    ck_assert_int_eq(rb_attack_step_l2(&v, 0.1, RB_ATTACK_L2_AUTOATTACK), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_attack_project_linf(&v, -0.1), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "rb_attack_project_linf: eps is -0.1; it must be finite and >= 0");
    ck_assert_int_eq(rb_attack_project_l2(&v, NAN, RB_ATTACK_L2_AUTOATTACK), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "rb_attack_project_l2: eps is nan; it must be finite and >= 0");
    ck_assert_int_eq(rb_attack_sample_l2_ball(&v, &b, INFINITY), RB_ERR_INVALID_ARGUMENT);
    {
        const float g[2] = {1, 1};
        rb_attack_view vg = view(1, 2, x, x0, g);
        ck_assert_int_eq(rb_attack_step_sign(&vg, NAN), RB_ERR_INVALID_ARGUMENT);
        ck_assert_str_eq(rb_last_error(), "rb_attack_step_sign: the step is nan; it must be finite");
        ck_assert_int_eq(rb_attack_step_l2(&vg, 0.1, (rb_attack_l2_rule)7), RB_ERR_INVALID_ARGUMENT);
        ck_assert_str_eq(rb_last_error(),
                         "rb_attack_step_l2: unknown L2 rule 7 (RB_ATTACK_L2_ROBUSTNESS or RB_ATTACK_L2_AUTOATTACK)");
    }
    ck_assert_int_eq(rb_attack_sample_l2_sphere(&v, NULL, 0.1, RB_ATTACK_L2_ROBUSTNESS), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(),
                     "rb_attack_sample_l2_sphere: the batch (its seed, stream and first example) is NULL");
    b.first_example = -3;
    ck_assert_int_eq(rb_attack_sample_linf(&v, &b, 0.1), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "rb_attack_sample_linf: the batch's first example is -3 (it must be >= 0)");
    /* nothing was written by a refused call */
    assert_exact(x, x0, 2);
    /* an empty view needs no arrays */
    ck_assert_int_eq(rb_attack_project_linf(&empty, 0.1), RB_OK);
    ck_assert_int_eq(rb_attack_step_sign(&empty, 0.1), RB_OK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("attack helpers");
    TCase *tc = tcase_create("helpers");
    tcase_add_test(tc, sign_step_moves_each_value_by_the_step);
    tcase_add_test(tc, l2_step_moves_each_row_along_its_normalized_gradient);
    tcase_add_test(tc, l2_step_rules_differ_in_the_constant_added_to_the_norm);
    tcase_add_test(tc, linf_projection_clips_then_clamps);
    tcase_add_test(tc, l2_projection_follows_each_rule);
    tcase_add_test(tc, linf_sampling_draws_each_row_from_its_example);
    tcase_add_test(tc, l2_sphere_sampling_lands_at_eps);
    tcase_add_test(tc, l2_ball_sampling_is_uniform_in_volume);
    tcase_add_test(tc, bad_input_is_refused_with_one_line);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
