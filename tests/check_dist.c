/* Data parallelism (robusta/dist.h) in a lone process: the collectives,
 * the gradient buckets (robusta/grad_sync.h), and the refusal of a job this build cannot run. check_dist_ranks runs
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

/* A chain of linear layers whose parameter bytes, in backward's order, are
 * fc6 2600 (weight 2560, bias 40), fc5, fc4 and fc3 16640 each, fc2 4352,
 * fc1 320. With a 4 KiB first bucket and 64 KiB buckets: the first closes
 * at fc5.weight (18984 bytes); the tail is the shortest end holding 4 KiB
 * (fc2.weight .. fc1.bias, 4672 bytes), so the middle (33536) goes alone.
 * Filling to the limit alone would leave 38208 bytes for the last bucket,
 * all of it waited on after backward. */
START_TEST(buckets_are_small_at_both_ends_and_a_step_scales_every_gradient)
{
    rb_graph *g = NULL;
    rb_node *x = NULL, *fc[6];
    const int64_t widths[6] = {16, 64, 64, 64, 64, 10};
    rb_grad_sync *sync = NULL;
    rb_grad_sync_stats st;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 4, 1, 1, NULL, NULL, &x), RB_OK);
    for (int k = 0; k < 6; k++) {
        char name[8];
        snprintf(name, sizeof name, "fc%d", k + 1);
        ck_assert_int_eq(rb_graph_linear(g, name, k == 0 ? x : fc[k - 1], widths[k], true, &fc[k]), RB_OK);
    }
    ck_assert_int_eq(rb_grad_sync_create(&sync, g, &(rb_grad_sync_options){.bucket_bytes = 65536,
                                                                             .first_bucket_bytes = 4096}),
                     RB_OK);
    rb_grad_sync_get_stats(sync, &st);
    ck_assert_uint_eq(st.bytes_per_step, 2600 + 3 * 16640 + 4352 + 320);
    ck_assert_uint_eq(st.buckets, 3);
    ck_assert_uint_eq(st.last_bucket_bytes, 4672);

    /* one step in a lone process: every gradient comes back scaled by
     * share / global batch (1/4, exact in binary), whether a test saw its
     * bucket finish during backward or the final wait did */
    size_t n = rb_graph_param_count(g);
    for (size_t i = 0; i < n; i++) {
        rb_param_info p;
        ck_assert_int_eq(rb_graph_param(g, i, &p), RB_OK);
        for (int64_t k = 0; k < p.numel; k++)
            p.grad[k] = (float)(i + 1) + (float)k;
    }
    rb_grad_sync_begin(sync, 1, 4);
    for (int k = 5; k >= 0; k--)
        rb_grad_sync_node_done(sync, fc[k]);
    ck_assert_int_eq(rb_grad_sync_finish(sync), RB_OK);
    for (size_t i = 0; i < n; i++) {
        rb_param_info p;
        ck_assert_int_eq(rb_graph_param(g, i, &p), RB_OK);
        for (int64_t k = 0; k < p.numel; k++)
            ck_assert_float_eq(p.grad[k], ((float)(i + 1) + (float)k) * 0.25f);
    }
    rb_grad_sync_get_stats(sync, &st);
    ck_assert_int_eq(st.steps, 1);
    /* finishing twice is a caller's error, said in one line */
    ck_assert_int_eq(rb_grad_sync_finish(sync), RB_ERR_INTERNAL);
    rb_grad_sync_destroy(sync);
    rb_graph_destroy(g);
}
END_TEST

static Suite *dist_suite(void)
{
    Suite *s = suite_create("dist");
    TCase *lone = tcase_create("lone");
    tcase_add_test(lone, a_lone_process_is_rank_0_of_1_and_collectives_leave_data_alone);
    tcase_add_test(lone, buckets_are_small_at_both_ends_and_a_step_scales_every_gradient);
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
