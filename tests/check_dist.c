/* Data parallelism (robusta/dist.h) in a lone process: the collectives,
 * and the refusal of a job this build cannot run. check_dist_ranks runs
 * 2-rank jobs. */
#include "config.h"

#include <robusta/robusta.h>

#include "testutil.h"

START_TEST(a_lone_process_is_rank_0_of_1_and_collectives_leave_data_alone)
{
    float f[3] = {1.5f, -2, 3};
    double d[2] = {0.25, 7};
    int64_t i[2] = {5, -9};
    rb_dist_request *req = NULL;
    bool done = false;
    ck_assert_int_eq(rb_dist_rank(), 0);
    ck_assert_int_eq(rb_dist_size(), 1);
    ck_assert_int_eq(rb_dist_allreduce_sum(f, 3, RB_DIST_F32), RB_OK);
    ck_assert_int_eq(rb_dist_allreduce_sum(d, 2, RB_DIST_F64), RB_OK);
    ck_assert_int_eq(rb_dist_allreduce_sum(i, 2, RB_DIST_I64), RB_OK);
    ck_assert(f[0] == 1.5f && f[1] == -2 && f[2] == 3 && d[0] == 0.25 && d[1] == 7 && i[0] == 5 && i[1] == -9);
    ck_assert_int_eq(rb_dist_broadcast(f, sizeof f, 0), RB_OK);
    ck_assert_int_eq(rb_dist_broadcast(f, sizeof f, 1), RB_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "rank 1 of a job of 1"));
    ck_assert_int_eq(rb_dist_barrier(), RB_OK);
    ck_assert_int_eq(rb_dist_agree("the options", "anything"), RB_OK);
    {
        size_t bytes[1] = {sizeof f};
        float out[3] = {0};
        ck_assert_int_eq(rb_dist_gather(f, bytes, out), RB_OK);
        ck_assert_mem_eq(out, f, sizeof f);
    }
    ck_assert_int_eq(rb_dist_request_create(&req), RB_OK);
    ck_assert_int_eq(rb_dist_iallreduce_sum(req, f, 3), RB_OK);
    ck_assert_int_eq(rb_dist_test(req, &done), RB_OK);
    ck_assert(done);
    ck_assert_int_eq(rb_dist_wait(req), RB_OK);
    ck_assert_int_eq(rb_dist_iallreduce_sum(req, f, 3), RB_OK); /* reusable */
    ck_assert_int_eq(rb_dist_wait(req), RB_OK);
    ck_assert(f[0] == 1.5f && f[1] == -2 && f[2] == 3);
    rb_dist_request_destroy(req);
    rb_dist_request_destroy(NULL);
}
END_TEST

/* Started by a launcher as one of 2 ranks, a build without MPI would train
 * twice alone: it refuses in one line saying how to build it (exit 3). (In
 * a build with MPI the variables alone do not make a job, with no launcher
 * behind them, so there the test is left out with a SKIP line.) */
START_TEST(a_build_without_mpi_refuses_to_be_one_of_several_ranks)
{
    run_result r;
    run_robusta(&r, "OMPI_COMM_WORLD_SIZE=2", (const char *const[]){"plugins", NULL});
    ck_assert_int_eq(r.code, 3);
    ck_assert_int_eq(count_lines(r.err), 1);
    ck_assert_ptr_nonnull(strstr(r.err, "built without MPI"));
    ck_assert_ptr_nonnull(strstr(r.err, "./configure --with-mpi"));
    ck_assert_ptr_nonnull(strstr(r.err, "libopenmpi-dev"));
    run_robusta(&r, "SLURM_STEP_NUM_TASKS=4", (const char *const[]){"plugins", NULL});
    ck_assert_int_eq(r.code, 3);
    /* one task in a Slurm step is a lone process */
    run_robusta(&r, "SLURM_STEP_NUM_TASKS=1", (const char *const[]){"plugins", NULL});
    ck_assert_int_eq(r.code, 0);
}
END_TEST

static Suite *dist_suite(void)
{
    Suite *s = suite_create("dist");
    TCase *lone = tcase_create("lone");
    tcase_add_test(lone, a_lone_process_is_rank_0_of_1_and_collectives_leave_data_alone);
    if (!rb_dist_available())
        tcase_add_test(lone, a_build_without_mpi_refuses_to_be_one_of_several_ranks);
    else
        printf("SKIP: a_build_without_mpi_refuses_to_be_one_of_several_ranks (this build has MPI)\n");
    suite_add_tcase(s, lone);
    return s;
}

int main(void)
{
    return run_suite(dist_suite());
}
