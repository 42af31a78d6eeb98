/* apgd-dlr and apgd-t (AutoAttack's DLR losses), loaded through the
 * registry as users load them, run against a linear classifier oracle
 * z = W x + b with exact gradients W^T dz of whatever logit objective the
 * plugin hands it (rb_attack_oracle.logit_loss_and_grad):
 *  - every loss the plugins compute (and apgd-ce's through the same path)
 *    has the gradient its values say, by central differences in double;
 *  - models built so that the loss is an increasing function of one logit
 *    have an analytic optimum, the corner x0 + eps sign(w) of the Linf ball
 *    (or x0 + eps w / ||w|| of the L2 one): the attacks end there;
 *  - apgd-t tries the targets in the order of the clean logits, stops once
 *    an example is fooled and leaves misclassified examples clean;
 *  - random starts are keyed by example (batches split anyhow agree), and
 *    bad settings are refused with one line. */
#include "config.h"

#include <math.h>

#include <robusta/robusta.h>

#include "testutil.h"
#include "attackutil.h"
#include "linearoracle.h"

enum { DIM = 8, MAXK = 6, ROWS = 4 };

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

static void set(attack *a, const char *name, const char *value)
{
    test_attack_set(a, name, value);
}

/* ------------------------------------------------- linear oracle */

typedef test_linear linear; /* tests/linearoracle.h */

/* The loss's gradient against central differences of its value: the
 * logits move by h = 1e-2 (values are O(1), so float rounding of the loss,
 * ~1e-7, over 2h costs 1e-5); the DLR ratios are smooth away from ties of
 * the sorted logits, which these models keep apart by more than h. */
static void check_gradient(linear *m, rb_logit_loss loss, void *loss_ctx, int64_t row, const float *z,
                           const int64_t *label)
{
    float zz[MAXK], dz[MAXK], scratch[MAXK], up, down;
    const double h = 1e-2;
    memset(dz, 0, sizeof dz);
    ck_assert_int_eq(loss(loss_ctx, row, 1, m->classes, z, label, &up, dz), RB_OK);
    for (int64_t c = 0; c < m->classes; c++) {
        double fd, err;
        memcpy(zz, z, (size_t)m->classes * sizeof *zz);
        zz[c] = (float)(z[c] + h);
        memset(scratch, 0, sizeof scratch);
        ck_assert_int_eq(loss(loss_ctx, row, 1, m->classes, zz, label, &up, scratch), RB_OK);
        zz[c] = (float)(z[c] - h);
        memset(scratch, 0, sizeof scratch);
        ck_assert_int_eq(loss(loss_ctx, row, 1, m->classes, zz, label, &down, scratch), RB_OK);
        fd = ((double)up - down) / (((double)z[c] + h) - ((double)z[c] - h));
        err = fabs(fd - dz[c]) / fmax(1.0, fabs(fd)); /* relative to max(1, |gradient|) */
        m->worst = fmax(m->worst, err);
    }
}

/* Runs `a` on rows examples x0 (labels) into x, rows counted from first. */
static rb_status run(attack *a, linear *m, float *x, const float *x0, const int64_t *labels, int64_t rows,
                     int64_t first)
{
    return test_linear_run(a, m, x, x0, labels, rows, first, 77);
}

/* Deterministic weights in [-1, 1] and images in [0.3, 0.7]. */
static double next_uniform(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (*s >> 8) / 16777216.0;
}

static void random_row(uint32_t *s, double *w)
{
    for (int i = 0; i < DIM; i++)
        w[i] = 2 * next_uniform(s) - 1;
}

static void random_images(uint32_t *s, float *x0, int64_t rows)
{
    for (int64_t i = 0; i < rows * DIM; i++)
        x0[i] = (float)(0.3 + 0.4 * next_uniform(s));
}

static int64_t predict(const linear *m, const float *x)
{
    float z[MAXK];
    int64_t best = 0;
    test_linear_logits(m, x, z);
    for (int64_t c = 1; c < m->classes; c++)
        best = z[c] > z[best] ? c : best;
    return best;
}

static double dot_shift(const double *w, const float *x, const float *x0)
{
    double v = 0;
    for (int i = 0; i < DIM; i++)
        v += w[i] * ((double)x[i] - x0[i]);
    return v;
}

/* ------------------------------------------------- the tests */

/* Every loss's gradient (apgd-ce's cross-entropy through the logit path,
 * DLR, targeted DLR with each target) on a random 6-class model whose
 * examples sit where the logits are apart; the attacks run 3 steps so
 * that iterates away from the start are checked too. Worst errors
 * measured: 1.0e-5 (ce), 2.4e-5 (dlr), 2.5e-5 (targeted), the rounding of
 * the float losses over 2h; a wrong term costs O(0.1). */
START_TEST(losses_have_the_gradients_their_values_say)
{
    const char *names[3] = {"apgd-ce", "apgd-dlr", "apgd-t"};
    linear m = {.classes = 6, .dim = DIM, .inspect = check_gradient};
    uint32_t s = 99;
    float x0[ROWS * DIM], x[ROWS * DIM];
    int64_t labels[ROWS];
    for (int c = 0; c < 6; c++) {
        random_row(&s, m.w[c]);
        m.b[c] = 0.7 * c;
    }
    random_images(&s, x0, ROWS);
    for (int r = 0; r < ROWS; r++)
        labels[r] = predict(&m, x0 + r * DIM);
    for (int k = 0; k < 3; k++) {
        attack a = open_attack(names[k]);
        set(&a, "steps", "3");
        set(&a, "eps", "0.05");
        if (k == 2)
            set(&a, "target-classes", "5");
        m.worst = 0;
        m.calls = 0;
        ck_assert_msg(run(&a, &m, x, x0, labels, ROWS, 0) == RB_OK, "%s: %s", names[k], rb_last_error());
        ck_assert_int_ge(m.calls, 4);
        ck_assert_msg(m.worst < 1e-3, "%s: gradient off its central difference by %.3g", names[k], m.worst);
        rb_params_destroy(a.params);
    }
}
END_TEST

/* A model where the attack's loss is an increasing function of one logit
 * z_v = w . x + b_v that stays below the label's (0) over the whole ball,
 * so nothing is fooled and the result is the loss's maximum: class 0
 * (the label) is 0, class 1 is z_v, the rest are -50:
 *   dlr:           -(0 - z_v) / (0 - (-50))              = z_v / 50
 *   dlr-targeted:  -(0 - z_v) / (0 - (-50 - 50) / 2)     = z_v / 50
 * (apgd-t's first target is class 1, the second largest clean logit). The
 * maximum of w . (x - x0) over the Linf ball in the unit box is the corner
 * x0 + eps sign(w) (images in [0.3, 0.7], eps 0.1: the box is inactive);
 * over the L2 ball x0 + eps w / ||w||. Linf lands there exactly (every
 * step moves by 2 eps and is clipped back); L2 within float rounding,
 * from a random start too. */
static void optimum_case(const char *name, const char *norm, bool random_start)
{
    linear m = {.classes = name[5] == 't' ? 4 : 3, .dim = DIM};
    uint32_t s = 7;
    float x0[ROWS * DIM], x[ROWS * DIM];
    int64_t labels[ROWS] = {0, 0, 0, 0};
    attack a = open_attack(name);
    double l1 = 0, l2 = 0;
    bool linf = strcmp(norm, "linf") == 0;
    random_row(&s, m.w[1]);
    for (int i = 0; i < DIM; i++) {
        l1 += fabs(m.w[1][i]);
        l2 += m.w[1][i] * m.w[1][i];
    }
    l2 = sqrt(l2);
    m.b[1] = -(l1 + 1.0); /* below 0 anywhere in the unit box */
    for (int64_t c = 2; c < m.classes; c++)
        m.b[c] = -50;
    random_images(&s, x0, ROWS);
    set(&a, "norm", norm);
    set(&a, "eps", "0.1");
    set(&a, "steps", "10");
    set(&a, "random-start", random_start ? "true" : "false");
    if (name[5] == 't')
        set(&a, "target-classes", "1");
    ck_assert_msg(run(&a, &m, x, x0, labels, ROWS, 0) == RB_OK, "%s: %s", name, rb_last_error());
    for (int r = 0; r < ROWS; r++) {
        const float *xr = x + r * DIM, *x0r = x0 + r * DIM;
        ck_assert_int_eq(predict(&m, xr), 0);
        if (linf)
            for (int i = 0; i < DIM; i++) {
                float corner = (float)x0r[i] + (m.w[1][i] > 0 ? 0.1f : -0.1f);
                ck_assert_msg(fabsf(xr[i] - corner) <= 1e-6f, "%s %s row %d: x[%d] = %.9g, corner %.9g", name, norm,
                              r, i, xr[i], corner);
            }
        else /* w . d <= eps ||w||; measured within 8.2e-7 of it (float rounding of x) */
            ck_assert_msg(dot_shift(m.w[1], xr, x0r) >= 0.1 * l2 * (1 - 1e-5), "%s l2 row %d: %.9g of %.9g", name, r,
                          dot_shift(m.w[1], xr, x0r), 0.1 * l2);
    }
    rb_params_destroy(a.params);
}

START_TEST(apgd_dlr_and_apgd_t_reach_the_analytic_optimum)
{
    const char *names[2] = {"apgd-dlr", "apgd-t"}, *norms[2] = {"linf", "l2"};
    for (int k = 0; k < 2; k++)
        for (int n = 0; n < 2; n++)
            for (int rs = 0; rs < 2; rs++)
                optimum_case(names[k], norms[n], rs == 1);
}
END_TEST

/* Targets in the order of the clean logits. Five classes: the label 0 at
 * 0, class 1 at -1 (second largest, constant: unreachable), class 2 at
 * -2.9 + w . (x - x0) with max_{Linf ball} w . d = eps ||w||_1 = 3 (third
 * largest, reachable only near the corner), classes 3 and 4 at -50.
 * Against target 1 the loss -1 / (0 - (z_2 - 50) / 2) only falls as z_2
 * rises, so the attack drives z_2 down and fools nothing; against target 2
 * the loss z_2 / ((1 + 50) / 2) rises with z_2, to +0.1 > 0 at the corner:
 * fooled, predicted 2. So target-classes 1 leaves every example robust and
 * 2 fools every one. An example the model already misclassifies (row 3,
 * labelled 1) is left clean. */
START_TEST(apgd_t_tries_targets_in_the_order_of_the_clean_logits)
{
    linear m = {.classes = 5, .dim = DIM};
    uint32_t s = 3;
    float x0[ROWS * DIM], x[ROWS * DIM];
    int64_t labels[ROWS] = {0, 0, 0, 1};
    double l1 = 0;
    attack a = open_attack("apgd-t");
    random_row(&s, m.w[2]);
    for (int i = 0; i < DIM; i++)
        l1 += fabs(m.w[2][i]);
    for (int i = 0; i < DIM; i++) /* eps ||w||_1 = 3 at eps 0.1, whose corners stay in the box */
        m.w[2][i] *= 30 / l1;
    m.b[1] = -1;
    m.b[3] = m.b[4] = -50;
    random_images(&s, x0, ROWS);
    m.b[2] = -2.9;
    /* z_2 = w . x + b_2 is -2.9 + w . (x - x0) only relative to each row's
     * x0, so the rows share x0's first row */
    for (int r = 1; r < ROWS; r++)
        memcpy(x0 + r * DIM, x0, DIM * sizeof *x0);
    for (int i = 0; i < DIM; i++)
        m.b[2] -= m.w[2][i] * x0[i];
    set(&a, "eps", "0.1");
    set(&a, "steps", "20");
    set(&a, "target-classes", "1");
    ck_assert_msg(run(&a, &m, x, x0, labels, ROWS, 0) == RB_OK, "%s", rb_last_error());
    for (int r = 0; r < 3; r++)
        ck_assert_msg(predict(&m, x + r * DIM) == 0, "row %d fooled against the unreachable target", r);
    ck_assert_int_eq(memcmp(x + 3 * DIM, x0 + 3 * DIM, DIM * sizeof *x), 0);
    set(&a, "target-classes", "2");
    ck_assert_msg(run(&a, &m, x, x0, labels, ROWS, 0) == RB_OK, "%s", rb_last_error());
    for (int r = 0; r < 3; r++)
        ck_assert_msg(predict(&m, x + r * DIM) == 2, "row %d: predicted %lld, not the second target", r,
                      (long long)predict(&m, x + r * DIM));
    ck_assert_int_eq(memcmp(x + 3 * DIM, x0 + 3 * DIM, DIM * sizeof *x), 0);
    rb_params_destroy(a.params);
}
END_TEST

/* Random starts keyed by example: the rows attacked in one batch or in
 * two (first_example 0 and 2) end bit for bit the same; another seed moves
 * them. */
START_TEST(random_starts_are_keyed_by_example)
{
    const char *names[2] = {"apgd-dlr", "apgd-t"};
    linear m = {.classes = 5, .dim = DIM};
    uint32_t s = 21;
    float x0[ROWS * DIM], x[ROWS * DIM], y[ROWS * DIM];
    int64_t labels[ROWS];
    for (int c = 0; c < 5; c++) {
        random_row(&s, m.w[c]);
        m.b[c] = 0.3 * c;
    }
    random_images(&s, x0, ROWS);
    for (int r = 0; r < ROWS; r++)
        labels[r] = predict(&m, x0 + r * DIM);
    for (int k = 0; k < 2; k++) {
        attack a = open_attack(names[k]);
        set(&a, "steps", "5");
        set(&a, "eps", "0.02");
        if (k == 1)
            set(&a, "target-classes", "3");
        ck_assert_int_eq(run(&a, &m, x, x0, labels, ROWS, 0), RB_OK);
        ck_assert_int_eq(run(&a, &m, y, x0, labels, 2, 0), RB_OK);
        ck_assert_int_eq(run(&a, &m, y + 2 * DIM, x0 + 2 * DIM, labels + 2, 2, 2), RB_OK);
        ck_assert_msg(memcmp(x, y, sizeof x) == 0, "%s: the split changed the result", names[k]);
        rb_params_destroy(a.params);
    }
}
END_TEST

START_TEST(bad_settings_are_refused_with_one_line)
{
    linear m3 = {.classes = 3, .dim = DIM}, m2 = {.classes = 2, .dim = DIM}, m5 = {.classes = 5, .dim = DIM};
    float x0[ROWS * DIM], x[ROWS * DIM];
    int64_t labels[ROWS] = {0, 0, 0, 0};
    uint32_t s = 5;
    attack t = open_attack("apgd-t"), d = open_attack("apgd-dlr");
    /* an ABI-2 runtime's: no struct_size */
    rb_attack_oracle old = {.logits = test_linear_oracle_logits, .ctx = &m5};
    rb_tensor *tx, *tx0;
    rb_attack_batch b;
    int64_t shape[2] = {ROWS, DIM};
    random_images(&s, x0, ROWS);
    set(&t, "steps", "2");
    set(&d, "steps", "2");
    ck_assert_int_eq(run(&t, &m5, x, x0, labels, ROWS, 0), RB_ERR_INVALID_ARGUMENT); /* 9 targets by default */
    ck_assert_str_eq(rb_last_error(), "apgd-t: 9 target classes asked, but a model of 5 classes has at most 4 other "
                                      "classes; use --target-classes 4 or fewer");
    set(&t, "target-classes", "2");
    ck_assert_int_eq(run(&t, &m3, x, x0, labels, ROWS, 0), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "apgd-t: the targeted DLR loss needs at least 4 classes, the model has 3");
    ck_assert_int_eq(run(&d, &m2, x, x0, labels, ROWS, 0), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "apgd-dlr: the DLR loss needs at least 3 classes, the model has 2");
    /* runtime-targeted runs, and an oracle without the logit objective */
    memcpy(x, x0, sizeof x);
    ck_assert_int_eq(rb_tensor_wrap(&tx, RB_DTYPE_F32, 2, shape, x), RB_OK);
    ck_assert_int_eq(rb_tensor_wrap(&tx0, RB_DTYPE_F32, 2, shape, x0), RB_OK);
    memset(&b, 0, sizeof b);
    b.x_adv = tx;
    b.x_clean = tx0;
    b.labels = labels;
    b.targeted = 1;
    {
        rb_attack_oracle o = test_linear_oracle(&m5);
        ck_assert_int_eq(t.ops->run(NULL, t.params, &o, &b), RB_ERR_INVALID_ARGUMENT);
        ck_assert_str_eq(rb_last_error(), "apgd-t: chooses its own targets (the top clean logits); run it untargeted");
        ck_assert_int_eq(d.ops->run(NULL, d.params, &o, &b), RB_ERR_INVALID_ARGUMENT);
        ck_assert_str_eq(rb_last_error(), "apgd-dlr: the DLR loss is untargeted; apgd-t is its targeted form (it "
                                          "picks its own targets)");
    }
    b.targeted = 0;
    ck_assert_int_eq(d.ops->run(NULL, d.params, &old, &b), RB_ERR_UNSUPPORTED);
    ck_assert_str_eq(rb_last_error(), "apgd-dlr: the DLR loss needs the oracle's logit_loss_and_grad (plugin ABI 3); "
                                      "this runtime's oracle has none");
    ck_assert_int_eq(t.ops->run(NULL, t.params, &old, &b), RB_ERR_UNSUPPORTED);
    ck_assert_int_eq(memcmp(x, x0, sizeof x), 0); /* refusals leave the batch alone */
    rb_tensor_destroy(tx);
    rb_tensor_destroy(tx0);
    rb_params_destroy(t.params);
    rb_params_destroy(d.params);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("apgd_dlr");
    TCase *tc = tcase_create("apgd_dlr");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, losses_have_the_gradients_their_values_say);
    tcase_add_test(tc, apgd_dlr_and_apgd_t_reach_the_analytic_optimum);
    tcase_add_test(tc, apgd_t_tries_targets_in_the_order_of_the_clean_logits);
    tcase_add_test(tc, random_starts_are_keyed_by_example);
    tcase_add_test(tc, bad_settings_are_refused_with_one_line);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
