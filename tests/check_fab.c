/* The fab-t attack plugin, loaded through the registry, against linear
 * classifiers z = W x + b, whose decision boundaries are planes: the
 * minimal perturbation towards a target is the distance from x0 to the
 * plane {z_t = z_y} within the unit box, known in closed form, and FAB
 * must find it to within 1% (the bar), never below it (its result
 * is adversarial); targets come in the order of the clean logits, success
 * needs the perturbation within eps, and bad settings are refused. */
#include "config.h"

#include <math.h>

#include <robusta/robusta.h>

#include "testutil.h"
#include "attackutil.h"
#include "linearoracle.h"

enum { MAXD = 8, K = 3, ROWS = 3 };

static rb_registry *reg;
static test_attack atk;

static void setup(void)
{
    reg = test_attack_registry();
    atk = test_attack_open(reg, "fab-t");
    test_attack_set(&atk, "target-classes", "2"); /* K - 1 */
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

typedef test_linear linear; /* tests/linearoracle.h */

static rb_status run(linear *m, float *x, const float *x0, const int64_t *labels, int64_t rows)
{
    return test_linear_run(&atk, m, x, x0, labels, rows, 0, 1);
}

static double dist(bool linf, const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = fabs((double)a[i] - b[i]);
        s = linf ? fmax(s, v) : s + v * v;
    }
    return linf ? s : sqrt(s);
}

static int predict(const linear *m, const float *x)
{
    float z[K];
    test_linear_logits(m, x, z);
    return z[1] > z[0] ? (z[2] > z[1] ? 2 : 1) : (z[2] > z[0] ? 2 : 0);
}

/* Away from the box: class 0 (the label) is 0, class 1 is v . x + c (the
 * target: second largest), class 2 is -50. The plane z_1 = 0 lies at
 * Linf distance |z_1(x0)| / ||v||_1 and L2 distance |z_1(x0)| / ||v||_2,
 * here 0.05 with images in [0.4, 0.6], so the box never binds. FAB's
 * closest adversarial point must be within 1% above it: its first
 * projection lands on the plane and overshoots by eta, and each backward
 * step (beta) and new projection closes in (measured: 1.0052 times the
 * minimum in both norms, and 1.0046 in L2 where the box binds, below). */
START_TEST(fab_finds_the_minimal_perturbation_of_a_linear_model)
{
    const char *norms[2] = {"linf", "l2"};
    for (int n = 0; n < 2; n++) {
        bool linf = n == 0;
        linear m = {.classes = K, .dim = MAXD};
        uint32_t s = 11;
        float x0[ROWS * MAXD], x[ROWS * MAXD];
        int64_t labels[ROWS] = {0, 0, 0};
        double l1 = 0, l2 = 0;
        for (int i = 0; i < MAXD; i++) {
            s = s * 1664525u + 1013904223u;
            m.w[1][i] = 2.0 * ((s >> 8) / 16777216.0) - 1.0;
            l1 += fabs(m.w[1][i]);
            l2 += m.w[1][i] * m.w[1][i];
        }
        l2 = sqrt(l2);
        m.b[2] = -50;
        for (int i = 0; i < ROWS * MAXD; i++) {
            s = s * 1664525u + 1013904223u;
            x0[i] = (float)(0.4 + 0.2 * ((s >> 8) / 16777216.0));
        }
        /* z_1(x0) = -0.05 ||v|| at the first row's x0; the other rows share it */
        for (int r = 1; r < ROWS; r++)
            memcpy(x0 + r * MAXD, x0, MAXD * sizeof *x0);
        m.b[1] = -0.05 * (linf ? l1 : l2);
        for (int i = 0; i < MAXD; i++)
            m.b[1] -= m.w[1][i] * x0[i];
        set("norm", norms[n]);
        set("eps", "1");
        set("target-classes", "1");
        ck_assert_msg(run(&m, x, x0, labels, ROWS) == RB_OK, "%s", rb_last_error());
        for (int r = 0; r < ROWS; r++) {
            double d = dist(linf, x + r * MAXD, x0 + r * MAXD, MAXD);
            ck_assert_msg(predict(&m, x + r * MAXD) == 1, "%s row %d: not the target", norms[n], r);
            ck_assert_msg(d >= 0.05 * (1 - 1e-5) && d <= 0.05 * 1.01, "%s row %d: distance %.9g, minimal 0.05",
                          norms[n], r, d);
        }
    }
}
END_TEST

/* Where the box binds (hand-worked): two pixels, x0 = (0.95, 0.5), and the
 * target's logit x_1 + x_2 - 1.6, which must rise by 0.15 to pass the
 * label's 0. Without the box the smallest moves are (0.075, 0.075) in both
 * norms, but x_1 can rise by 0.05 only:
 *   Linf: x_1 + 0.05, x_2 + rho with 0.05 + rho = 0.15: rho = 0.1, so the
 *         minimal Linf perturbation is 0.1 (not 0.075);
 *   L2:   x_1 + 0.05, x_2 + 0.1: sqrt(0.05^2 + 0.1^2) = 0.111803 (not
 *         0.106066).
 * FAB's projections are box-aware, so it lands within 1% of these. */
START_TEST(fab_respects_the_box_in_its_projections)
{
    const char *norms[2] = {"linf", "l2"};
    const double minimal[2] = {0.1, 0.11180339887498948};
    linear m = {.classes = K, .dim = 2};
    float x0[2] = {0.95f, 0.5f}, x[2];
    int64_t labels[1] = {0};
    m.w[1][0] = m.w[1][1] = 1;
    m.b[1] = -1.6;
    m.b[2] = -50;
    set("eps", "1");
    set("target-classes", "1");
    for (int n = 0; n < 2; n++) {
        double d;
        set("norm", norms[n]);
        ck_assert_msg(run(&m, x, x0, labels, 1) == RB_OK, "%s", rb_last_error());
        d = dist(n == 0, x, x0, 2);
        ck_assert(x[0] <= 1.0f && x[1] <= 1.0f);
        ck_assert_int_eq(predict(&m, x), 1);
        ck_assert_msg(d >= minimal[n] * (1 - 1e-5) && d <= minimal[n] * 1.01, "%s: distance %.9g, minimal %.9g",
                      norms[n], d, minimal[n]);
    }
}
END_TEST

/* Success needs the perturbation within eps, and targets come in the
 * order of the clean logits. Two pixels at x0 = (0.95, 0.5); class 0 (the
 * label) is 0, class 1 a constant -0.4 (second largest, the first target:
 * its gradient is zero and FAB never moves), class 2 is x_1 + x_2 - 1.9
 * (-0.45 at x0, the second target), which passes 0 once x_1 + x_2 rises by
 * 0.45: in Linf x_1 by its 0.05 of room and x_2 by 0.4, so the minimal
 * perturbation is 0.4. One target, or eps 0.2, leave the example clean;
 * two targets and eps 1 give class 2. */
START_TEST(success_needs_eps_and_targets_come_in_order)
{
    linear m = {.classes = K, .dim = 2};
    float x0[2] = {0.95f, 0.5f}, x[2];
    int64_t labels[1] = {0};
    set("norm", "linf");
    m.b[1] = -0.4;
    m.w[2][0] = m.w[2][1] = 1;
    m.b[2] = -1.9;
    set("eps", "0.2");
    set("target-classes", "2");
    ck_assert_int_eq(run(&m, x, x0, labels, 1), RB_OK);
    ck_assert_int_eq(memcmp(x, x0, sizeof x), 0);
    set("eps", "1");
    set("target-classes", "1");
    ck_assert_int_eq(run(&m, x, x0, labels, 1), RB_OK);
    ck_assert_int_eq(memcmp(x, x0, sizeof x), 0);
    set("target-classes", "2");
    ck_assert_int_eq(run(&m, x, x0, labels, 1), RB_OK);
    ck_assert_int_eq(predict(&m, x), 2);
    ck_assert_msg(dist(true, x, x0, 2) >= 0.4 * (1 - 1e-5) && dist(true, x, x0, 2) <= 0.4 * 1.01, "distance %.9g",
                  dist(true, x, x0, 2));
}
END_TEST

/* The untargeted fab goes to the nearest boundary of any class. Class 0
 * (the label) is 0; class 1, the second largest logit, is -0.1 at x0 but
 * moves slowly (||v_1||_1 = 0.5: Linf distance 0.2); class 2 is -0.3 at x0
 * but moves fast (||v_2||_1 = 6: distance 0.05), and moving 0.05 towards it
 * shifts class 1 by at most 0.025, so class 2's boundary comes first. fab
 * ends on class 2 within 1% above 0.05; fab-t with one target (class 1)
 * would need 0.2. */
START_TEST(the_untargeted_fab_finds_the_nearest_boundary)
{
    test_attack fab = test_attack_open(reg, "fab");
    linear m = {.classes = K, .dim = MAXD};
    uint32_t s = 29;
    float x0[ROWS * MAXD], x[ROWS * MAXD];
    int64_t labels[ROWS] = {0, 0, 0};
    double l1[3] = {0, 0, 0}, want[3] = {0, 0.5, 6}, at[3] = {0, -0.1, -0.3};
    for (int i = 0; i < ROWS * MAXD; i++) {
        s = s * 1664525u + 1013904223u;
        x0[i] = (float)(0.4 + 0.2 * ((s >> 8) / 16777216.0));
    }
    for (int r = 1; r < ROWS; r++)
        memcpy(x0 + r * MAXD, x0, MAXD * sizeof *x0);
    for (int c = 1; c < 3; c++) {
        for (int i = 0; i < MAXD; i++) {
            s = s * 1664525u + 1013904223u;
            m.w[c][i] = 2.0 * ((s >> 8) / 16777216.0) - 1.0;
            l1[c] += fabs(m.w[c][i]);
        }
        m.b[c] = at[c];
        for (int i = 0; i < MAXD; i++) {
            m.w[c][i] *= want[c] / l1[c];
            m.b[c] -= m.w[c][i] * x0[i];
        }
    }
    test_attack_set(&fab, "eps", "1");
    ck_assert_msg(test_linear_run(&fab, &m, x, x0, labels, ROWS, 0, 0) == RB_OK, "%s", rb_last_error());
    for (int r = 0; r < ROWS; r++) {
        double d = dist(true, x + r * MAXD, x0 + r * MAXD, MAXD);
        ck_assert_msg(predict(&m, x + r * MAXD) == 2, "row %d: predicted %d", r, predict(&m, x + r * MAXD));
        ck_assert_msg(d >= 0.05 * (1 - 1e-5) && d <= 0.05 * 1.01, "row %d: distance %.9g, nearest 0.05", r, d);
    }
    rb_params_destroy(fab.params);
}
END_TEST

START_TEST(bad_settings_are_refused)
{
    linear m = {.classes = K, .dim = 2};
    float x0[2] = {0.5f, 0.5f}, x[2];
    int64_t labels[1] = {0};
    set("target-classes", "3");
    ck_assert_int_eq(run(&m, x, x0, labels, 1), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "fab-t: 3 target classes asked, but a model of 3 classes has at most 2 other "
                                      "classes; use --target-classes 2 or fewer");
    ck_assert_int_eq(memcmp(x, x0, sizeof x), 0);
    ck_assert_int_eq(rb_params_set(atk.params, "beta", "0"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_params_set(atk.params, "eta", "0.5"), RB_ERR_INVALID_ARGUMENT);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fab");
    TCase *tc = tcase_create("fab");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, fab_finds_the_minimal_perturbation_of_a_linear_model);
    tcase_add_test(tc, fab_respects_the_box_in_its_projections);
    tcase_add_test(tc, success_needs_eps_and_targets_come_in_order);
    tcase_add_test(tc, the_untargeted_fab_finds_the_nearest_boundary);
    tcase_add_test(tc, bad_settings_are_refused);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
