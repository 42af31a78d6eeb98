/* SGD against hand-computed torch.optim.SGD updates (the expected values
 * were worked out in double precision from PyTorch's update rule); frozen
 * parameters and buffers untouched; learning-rate schedules. */
#include "config.h"

#include <math.h>

#include <robusta/robusta.h>

#include "testutil.h"

/* Parameters are fp32: values near 1-2 carry ~1e-7 relative rounding per
 * operation, so 2e-6 bounds a few steps' accumulated error. */
#define TOL 2e-6

static rb_graph *g;
static rb_param_info w, bnw, bnrm;

static void setup(void)
{
    rb_node *x, *y;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 2, 1, 1, NULL, NULL, &x), RB_OK);
    ck_assert_int_eq(rb_graph_batchnorm(g, "bn", x, &y), RB_OK);
    ck_assert_int_eq(rb_graph_linear(g, "fc", y, 1, false, &y), RB_OK);
    ck_assert_int_eq(rb_graph_find_param(g, "fc.weight", &w), RB_OK);
    ck_assert_int_eq(rb_graph_find_param(g, "bn.weight", &bnw), RB_OK);
    ck_assert_int_eq(rb_graph_find_param(g, "bn.running_mean", &bnrm), RB_OK);
    w.value[0] = 1.0f;
    w.value[1] = -2.0f;
    w.grad[0] = 0.5f;
    w.grad[1] = 0.25f;
}

static void teardown(void)
{
    rb_graph_destroy(g);
}

/* Runs `steps` steps with the same gradient and checks the weights. */
static void expect_after(const rb_sgd_options *o, int steps, double w0, double w1)
{
    rb_sgd *sgd;
    ck_assert_int_eq(rb_sgd_create(&sgd, g, o), RB_OK);
    for (int i = 0; i < steps; i++)
        ck_assert_int_eq(rb_sgd_step(sgd, 0.1), RB_OK);
    ck_assert_msg(fabs(w.value[0] - w0) < TOL && fabs(w.value[1] - w1) < TOL,
                  "got (%.9g, %.9g), expected (%.9g, %.9g)", w.value[0], w.value[1], w0, w1);
    ck_assert_int_eq(rb_sgd_steps(sgd), steps);
    rb_sgd_destroy(sgd);
}

START_TEST(plain_sgd_with_weight_decay)
{
    /* d = g + 0.01 p = (0.51, 0.23); p - 0.1 d */
    expect_after(&(rb_sgd_options){.weight_decay = 0.01}, 1, 0.949, -2.023);
}
END_TEST

START_TEST(momentum_two_steps)
{
    expect_after(&(rb_sgd_options){.momentum = 0.9, .weight_decay = 0.01}, 2, 0.8521509999999999, -2.0666770000000003);
}
END_TEST

START_TEST(nesterov_two_steps)
{
    expect_after(&(rb_sgd_options){.momentum = 0.9, .weight_decay = 0.01, .nesterov = true}, 2, 0.76507411, -2.10594697);
}
END_TEST

START_TEST(dampening_three_steps)
{
    expect_after(&(rb_sgd_options){.momentum = 0.9, .dampening = 0.5, .weight_decay = 0.01}, 3, 0.78794963725, -2.09563055575);
}
END_TEST

START_TEST(frozen_parameters_and_buffers_are_untouched)
{
    rb_sgd *sgd;
    rb_node *bn;
    bnw.grad[0] = 1.0f;
    bnrm.value[0] = 0.25f;
    ck_assert_int_eq(rb_graph_find(g, "bn", &bn), RB_OK);
    ck_assert_int_eq(rb_graph_freeze_through(g, bn), RB_OK);
    ck_assert_int_eq(rb_sgd_create(&sgd, g, &(rb_sgd_options){.momentum = 0.9, .weight_decay = 0.1}), RB_OK);
    ck_assert_int_eq(rb_sgd_step(sgd, 0.5), RB_OK);
    ck_assert_float_eq(bnw.value[0], 1.0f);
    ck_assert_float_eq(bnrm.value[0], 0.25f);
    ck_assert_float_ne(w.value[0], 1.0f);
    ck_assert_ptr_null(rb_sgd_momentum_buffer(sgd, 99));
    /* Thawing later starts that parameter's momentum afresh, as PyTorch's
     * per-parameter state does: its first step is plain (buf = d). */
    ck_assert_int_eq(rb_graph_freeze_through(g, NULL), RB_OK);
    ck_assert_int_eq(rb_sgd_step(sgd, 0.5), RB_OK);
    ck_assert_float_eq_tol(bnw.value[0], 1.0f - 0.5f * (1.0f + 0.1f * 1.0f), 1e-6);
    rb_sgd_destroy(sgd);
}
END_TEST

START_TEST(non_finite_gradients_stop_the_step_whole)
{
    rb_sgd *sgd;
    ck_assert_int_eq(rb_sgd_create(&sgd, g, &(rb_sgd_options){.momentum = 0.9}), RB_OK);
    w.grad[1] = NAN;
    ck_assert_int_eq(rb_sgd_step(sgd, 0.1), RB_ERR_NUMERIC);
    ck_assert_str_eq(rb_last_error(), "sgd step 1: gradient of fc.weight[1] is nan; no parameter was changed");
    ck_assert_float_eq(w.value[0], 1.0f);
    ck_assert_float_eq(w.value[1], -2.0f);
    ck_assert_int_eq(rb_sgd_steps(sgd), 0);
    ck_assert_int_eq(rb_sgd_step(sgd, -1), RB_ERR_INVALID_ARGUMENT);
    rb_sgd_destroy(sgd);
    rb_sgd_destroy(NULL);
}
END_TEST

START_TEST(bad_options_are_refused)
{
    rb_sgd *sgd = (rb_sgd *)0x1;
    ck_assert_int_eq(rb_sgd_create(&sgd, g, &(rb_sgd_options){.momentum = -0.1}), RB_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(sgd);
    ck_assert_int_eq(rb_sgd_create(&sgd, g, &(rb_sgd_options){.nesterov = true}), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "sgd: Nesterov momentum needs momentum > 0 and dampening 0 (got 0 and 0)");
    ck_assert_int_eq(rb_sgd_create(&sgd, g, &(rb_sgd_options){.momentum = 0.9, .weight_decay = NAN}), RB_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(schedules)
{
    rb_schedule s;
    ck_assert_int_eq(rb_schedule_parse("step:30:0.1", 0.1, 90, &s), RB_OK);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 0), 0.1, 1e-15);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 29.99), 0.1, 1e-15);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 30), 0.01, 1e-15);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 65), 0.001, 1e-15);
    ck_assert_int_eq(rb_schedule_parse("multistep:5,8:0.5", 0.2, 10, &s), RB_OK);
    ck_assert_int_eq(s.milestone_count, 2);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 4.9), 0.2, 1e-15);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 5), 0.1, 1e-15);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 9), 0.05, 1e-15);
    ck_assert_int_eq(rb_schedule_parse("cosine", 0.1, 10, &s), RB_OK);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 0), 0.1, 1e-15);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 5), 0.05, 1e-15);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 2.5), 0.05 * (1 + cos(M_PI / 4)), 1e-15);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 10), 0.0, 1e-15);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 12), 0.0, 1e-15); /* stays at the minimum */
    ck_assert_int_eq(rb_schedule_parse("constant+warmup:4", 0.4, 10, &s), RB_OK);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 1), 0.1, 1e-15);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 3), 0.3, 1e-15);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 4), 0.4, 1e-15);
    ck_assert_int_eq(rb_schedule_parse("step:2:0.5+warmup:1", 1.0, 10, &s), RB_OK);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 0.5), 0.5, 1e-15);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 2), 0.5, 1e-15);
}
END_TEST

START_TEST(bad_schedules_are_refused)
{
    rb_schedule s;
    static const char *const bad[] = {"linear", "step:0:0.1", "step:30", "step:30:-1",
                                      "multistep:30,20:0.1", "multistep:30,60", "cosine+warmup:0",
                                      "constant+", "step:1.5:0.1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(rb_schedule_parse(bad[i], 0.1, 10, &s) == RB_ERR_INVALID_ARGUMENT, "%s", bad[i]);
        ck_assert_int_eq(count_lines(rb_last_error()), 1);
        ck_assert_ptr_nonnull(strstr(rb_last_error(), bad[i]));
    }
    ck_assert_int_eq(rb_schedule_parse("linear", 0.1, 10, &s), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--schedule 'linear': unknown schedule (write constant, step:N:GAMMA, multistep:A,B,...:GAMMA or cosine, optionally +warmup:EPOCHS)");
    ck_assert_int_eq(rb_schedule_parse("cosine", 0.1, 0, &s), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_schedule_parse("constant", -1, 10, &s), RB_ERR_INVALID_ARGUMENT);
    /* epochs past int64_t (found by make fuzz: the conversion was undefined,
     * and 1e90 became INT64_MIN, a milestone below 30) */
    ck_assert_int_eq(rb_schedule_parse("multistep:30,60,80,1e90:0.1", 0.1, 10, &s), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--schedule 'multistep:30,60,80,1e90:0.1': milestones must be increasing whole "
                                      "epochs up to 1e9 (write constant, step:N:GAMMA, multistep:A,B,...:GAMMA or "
                                      "cosine, optionally +warmup:EPOCHS)");
    ck_assert_int_eq(rb_schedule_parse("step:1e19:0.1", 0.1, 10, &s), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_schedule_parse("multistep:1000000001:0.1", 0.1, 10, &s), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_schedule_parse("multistep:1000000000:0.1", 0.1, 10, &s), RB_OK);
    ck_assert_int_eq(s.milestones[0], 1000000000);
    /* a gamma whose powers overflow within the run (found by make fuzz:
     * step:5:6.7e61 over 30 epochs reaches 0.1 * 6.7e61^6 = inf), refused;
     * the same gamma over 4 epochs never steps, and gamma 10 stays finite */
    ck_assert_int_eq(rb_schedule_parse("step:5:6.7e61", 0.1, 30, &s), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--schedule 'step:5:6.7e61': gamma raises the learning rate past the largest "
                                      "double within the run (write constant, step:N:GAMMA, "
                                      "multistep:A,B,...:GAMMA or cosine, optionally +warmup:EPOCHS)");
    ck_assert_int_eq(rb_schedule_parse("multistep:1,2,3:1e200", 0.1, 30, &s), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_schedule_parse("step:5:6.7e61", 0.1, 4, &s), RB_OK);
    ck_assert_int_eq(rb_schedule_parse("step:5:10", 0.1, 30, &s), RB_OK);
    ck_assert_double_eq_tol(rb_schedule_lr(&s, 30), 0.1 * 1e6, 1e-3);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, plain_sgd_with_weight_decay);
    tcase_add_test(tc, momentum_two_steps);
    tcase_add_test(tc, nesterov_two_steps);
    tcase_add_test(tc, dampening_three_steps);
    tcase_add_test(tc, frozen_parameters_and_buffers_are_untouched);
    tcase_add_test(tc, non_finite_gradients_stop_the_step_whole);
    tcase_add_test(tc, bad_options_are_refused);
    tcase_add_test(tc, schedules);
    tcase_add_test(tc, bad_schedules_are_refused);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
