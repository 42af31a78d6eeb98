/* Topology and thread plans: counts and placements on synthetic hwloc
 * topologies, every refusal with its message, and binding on this machine
 * (from new threads, so the test's own thread stays unbound). */
#include "config.h"

#include <pthread.h>
#include <sched.h>

#include <hwloc.h>

#include <robusta/robusta.h>

#include "testutil.h"

/* Two packages of two NUMA nodes of four two-way SMT cores: 16 cores, 32
 * PUs; core c has PUs 2c and 2c+1; node n has cores 4n..4n+3. */
#define TWO_BY_TWO "pack:2 numa:2 core:4 pu:2"

static rb_topology *topo;
static rb_thread_plan *plan;

static void teardown(void)
{
    rb_thread_plan_destroy(plan);
    plan = NULL;
    rb_topology_destroy(topo);
    topo = NULL;
}

static void load(const char *synthetic)
{
    ck_assert_msg(rb_topology_create(&topo, synthetic) == RB_OK, "%s", rb_last_error());
}

static void make_plan(int threads, int home)
{
    ck_assert_msg(rb_thread_plan_create(&plan, topo, threads, home) == RB_OK, "%s",
                  rb_last_error());
}

/* The plan's threads run on exactly cores[0..n) (and the NUMA nodes and
 * packages given, when not NULL). */
static void expect_cores(const int *cores, const int *numas, const int *packages, int n)
{
    ck_assert_int_eq(rb_thread_plan_count(plan), n);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(rb_thread_plan_core(plan, i) == cores[i], "thread %d on core %d, expected %d",
                      i, rb_thread_plan_core(plan, i), cores[i]);
        if (numas != NULL)
            ck_assert_msg(rb_thread_plan_numa(plan, i) == numas[i],
                          "thread %d on NUMA node %d, expected %d", i,
                          rb_thread_plan_numa(plan, i), numas[i]);
        if (packages != NULL)
            ck_assert_msg(rb_thread_plan_package(plan, i) == packages[i],
                          "thread %d on package %d, expected %d", i,
                          rb_thread_plan_package(plan, i), packages[i]);
    }
}

static void expect_description(const char *expected)
{
    char text[256];
    ck_assert_msg(rb_thread_plan_describe(plan, text, sizeof text) == RB_OK, "%s", rb_last_error());
    ck_assert_str_eq(text, expected);
}

/* ------------------------------------------------------------ log capture */

/* ------------------------------------------------------------ topology */

START_TEST(synthetic_counts)
{
    load(TWO_BY_TWO);
    ck_assert_int_eq(rb_topology_core_count(topo), 16);
    ck_assert_int_eq(rb_topology_pu_count(topo), 32);
    ck_assert_int_eq(rb_topology_numa_count(topo), 4);
    for (int n = 0; n < 4; n++)
        ck_assert_int_eq(rb_topology_numa_core_count(topo, n), 4);
    ck_assert_int_eq(rb_topology_numa_core_count(topo, 4), 0);
    ck_assert_int_eq(rb_topology_numa_core_count(topo, -1), 0);
    rb_topology_destroy(topo);
    topo = NULL;

    /* hwloc's full type names work too. */
    load("package:2 numa:2 core:4 pu:2");
    ck_assert_int_eq(rb_topology_core_count(topo), 16);
    ck_assert_int_eq(rb_topology_pu_count(topo), 32);
    ck_assert_int_eq(rb_topology_numa_count(topo), 4);
}
END_TEST

START_TEST(no_numa_level_is_one_node)
{
    static const int cores[] = {0, 1, 2, 3}, numas[] = {0, 0, 0, 0}, packages[] = {0, 0, 0, 0};
    load("core:4 pu:1");
    ck_assert_int_eq(rb_topology_core_count(topo), 4);
    ck_assert_int_eq(rb_topology_pu_count(topo), 4);
    ck_assert_int_eq(rb_topology_numa_count(topo), 1);
    ck_assert_int_eq(rb_topology_numa_core_count(topo, 0), 4);
    make_plan(0, -1);
    expect_cores(cores, numas, packages, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(rb_thread_plan_pu(plan, i), i);
    ck_assert_int_eq(rb_thread_plan_numa_span(plan), 1);
    expect_description("4 threads on cores 0-3 (NUMA node 0)");
}
END_TEST

START_TEST(bad_synthetic_strings_are_refused)
{
    static const char *const bad[] = {"bogus:3", "", "core:4", "pack:2 core:x pu:2", "pu:0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char expected[256];
        topo = (rb_topology *)0x1;
        ck_assert_int_eq(rb_topology_create(&topo, bad[i]), RB_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_null(topo);
        snprintf(expected, sizeof expected,
                 "synthetic topology '%s' is not valid hwloc synthetic syntax (levels from the "
                 "machine down to pu, e.g. 'pack:2 numa:2 core:4 pu:2')",
                 bad[i]);
        ck_assert_str_eq(rb_last_error(), expected);
    }
}
END_TEST

START_TEST(null_handles)
{
    rb_topology_destroy(NULL);
    rb_thread_plan_destroy(NULL);
    ck_assert_int_eq(rb_topology_core_count(NULL), 0);
    ck_assert_int_eq(rb_thread_plan_count(NULL), 0);
    ck_assert_int_eq(rb_thread_plan_core(NULL, 0), -1);
    ck_assert_int_eq(rb_thread_plan_numa_span(NULL), 0);
    ck_assert_int_eq(rb_thread_plan_create(&plan, NULL, 0, -1), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "rb_thread_plan_create: topology is NULL");
}
END_TEST

/* ------------------------------------------------------------ plans */

START_TEST(default_plan_is_the_home_nodes_cores)
{
    static const int cores[] = {0, 1, 2, 3}, numas[] = {0, 0, 0, 0}, packages[] = {0, 0, 0, 0};
    load(TWO_BY_TWO);
    make_plan(0, 0);
    expect_cores(cores, numas, packages, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(rb_thread_plan_pu(plan, i), 2 * i); /* each core's first PU */
    ck_assert_int_eq(rb_thread_plan_numa_span(plan), 1);
    expect_description("4 threads on cores 0-3 (NUMA node 0)");
    /* Out of range. */
    ck_assert_int_eq(rb_thread_plan_core(plan, 4), -1);
    ck_assert_int_eq(rb_thread_plan_pu(plan, -1), -1);
    ck_assert_int_eq(rb_thread_plan_numa(plan, 4), -1);
    ck_assert_int_eq(rb_thread_plan_package(plan, 99), -1);
    rb_thread_plan_destroy(plan);
    plan = NULL;

    /* -1: a synthetic topology's first core is core 0, on node 0. */
    make_plan(0, -1);
    expect_cores(cores, numas, packages, 4);
}
END_TEST

START_TEST(home_node_two)
{
    static const int cores[] = {8, 9, 10, 11}, numas[] = {2, 2, 2, 2}, packages[] = {1, 1, 1, 1};
    load(TWO_BY_TWO);
    make_plan(0, 2);
    expect_cores(cores, numas, packages, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(rb_thread_plan_pu(plan, i), 16 + 2 * i);
    expect_description("4 threads on cores 8-11 (NUMA node 2)");
}
END_TEST

START_TEST(more_threads_spill_to_the_same_package)
{
    static const int cores[] = {0, 1, 2, 3, 4, 5}, numas[] = {0, 0, 0, 0, 1, 1},
                     packages[] = {0, 0, 0, 0, 0, 0};
    load(TWO_BY_TWO);
    make_plan(6, 0);
    expect_cores(cores, numas, packages, 6);
    ck_assert_int_eq(rb_thread_plan_pu(plan, 5), 10);
    ck_assert_int_eq(rb_thread_plan_numa_span(plan), 2);
    expect_description("6 threads on cores 0-5 (NUMA nodes 0-1)");
}
END_TEST

START_TEST(then_to_the_other_package)
{
    static const int cores[] = {4, 5, 6, 7, 0, 1, 2, 3, 8, 9},
                     numas[] = {1, 1, 1, 1, 0, 0, 0, 0, 2, 2},
                     packages[] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1};
    load(TWO_BY_TWO);
    make_plan(10, 1);
    expect_cores(cores, numas, packages, 10);
    ck_assert_int_eq(rb_thread_plan_numa_span(plan), 3);
    expect_description("10 threads on cores 0-9 (NUMA nodes 0-2, 2 packages)");
}
END_TEST

START_TEST(nearest_nodes_first)
{
    /* From node 3: its package's node 2, then package 0 from its nearer
     * node 1. */
    static const int cores[] = {12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3},
                     numas[] = {3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0};
    load(TWO_BY_TWO);
    make_plan(16, 3);
    expect_cores(cores, numas, NULL, 16);
    ck_assert_int_eq(rb_thread_plan_numa_span(plan), 4);
    expect_description("16 threads on cores 0-15 (NUMA nodes 0-3, 2 packages)");
    rb_thread_plan_destroy(plan);
    plan = NULL;

    /* Four packages of one node each, from package 2: 1 and 3 are as near;
     * the lower goes first, then 0. */
    rb_topology_destroy(topo);
    topo = NULL;
    load("pack:4 numa:1 core:2 pu:1");
    make_plan(8, 2);
    {
        static const int cores4[] = {4, 5, 2, 3, 6, 7, 0, 1}, numas4[] = {2, 2, 1, 1, 3, 3, 0, 0},
                         packages4[] = {2, 2, 1, 1, 3, 3, 0, 0};
        expect_cores(cores4, numas4, packages4, 8);
    }
    expect_description("8 threads on cores 0-7 (NUMA nodes 0-3, 4 packages)");
}
END_TEST

START_TEST(more_threads_than_cores_use_second_hardware_threads)
{
    captured log = {0};
    load(TWO_BY_TWO);
    rb_log_set_sink(capture_sink, &log);
    make_plan(20, 0);
    rb_log_set_sink(NULL, NULL);
    ck_assert_int_eq(rb_thread_plan_count(plan), 20);
    for (int i = 0; i < 16; i++) {
        ck_assert_int_eq(rb_thread_plan_core(plan, i), i);
        ck_assert_int_eq(rb_thread_plan_pu(plan, i), 2 * i);
    }
    for (int i = 16; i < 20; i++) { /* home node's cores again, second PUs */
        ck_assert_int_eq(rb_thread_plan_core(plan, i), i - 16);
        ck_assert_int_eq(rb_thread_plan_pu(plan, i), 2 * (i - 16) + 1);
        ck_assert_int_eq(rb_thread_plan_numa(plan, i), 0);
    }
    ck_assert_int_eq(log.count, 1);
    ck_assert_int_eq(log.level[0], RB_LOG_WARN);
    ck_assert_str_eq(log.message[0],
                     "--threads 20: more threads than the 16 cores of the synthetic topology; "
                     "4 of them share a core with another thread, which is usually slower for "
                     "dense compute");
    expect_description("20 threads on cores 0-15, 4 of them sharing a core "
                       "(NUMA nodes 0-3, 2 packages)");
    rb_thread_plan_destroy(plan);
    plan = NULL;

    /* Every hardware thread, once each. */
    log.count = 0;
    rb_log_set_sink(capture_sink, &log);
    make_plan(32, 0);
    rb_log_set_sink(NULL, NULL);
    ck_assert_int_eq(log.count, 1);
    for (int i = 0; i < 32; i++)
        ck_assert_int_eq(rb_thread_plan_pu(plan, i), i < 16 ? 2 * i : 2 * (i - 16) + 1);
    rb_thread_plan_destroy(plan);
    plan = NULL;

    /* No warning when every thread has its own core. */
    log.count = 0;
    rb_log_set_sink(capture_sink, &log);
    make_plan(16, 0);
    rb_log_set_sink(NULL, NULL);
    ck_assert_int_eq(log.count, 0);
}
END_TEST

START_TEST(refusals)
{
    load(TWO_BY_TWO);
    plan = (rb_thread_plan *)0x1;
    ck_assert_int_eq(rb_thread_plan_create(&plan, topo, 33, 0), RB_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(plan);
    ck_assert_str_eq(rb_last_error(),
                     "--threads 33: the synthetic topology has 32 hardware threads (16 cores)");
    ck_assert_int_eq(rb_thread_plan_create(&plan, topo, -1, 0), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--threads -1: give a positive count, or 0 for one thread "
                                      "per core of the home NUMA node");
    ck_assert_int_eq(rb_thread_plan_create(&plan, topo, 0, 4), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "NUMA node 4 does not exist: the synthetic topology has 4 "
                                      "NUMA nodes (0-3, or -1 for the node the process starts on)");
    ck_assert_int_eq(rb_thread_plan_create(&plan, topo, 0, -2), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "NUMA node -2 does not exist: the synthetic topology has 4 "
                                      "NUMA nodes (0-3, or -1 for the node the process starts on)");
    ck_assert_ptr_null(plan);
}
END_TEST

START_TEST(synthetic_plans_do_not_bind)
{
    load(TWO_BY_TWO);
    make_plan(0, 0);
    ck_assert_int_eq(rb_thread_plan_bind(plan, 0), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "cannot bind thread 0: its plan is for a synthetic "
                                      "topology, not this machine's");
    ck_assert_int_eq(rb_thread_plan_bind(plan, 4), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "cannot bind thread 4: the plan has 4 threads");
}
END_TEST

START_TEST(describe_into_a_small_buffer)
{
    char text[8];
    load(TWO_BY_TWO);
    make_plan(0, 0);
    ck_assert_int_eq(rb_thread_plan_describe(plan, text, sizeof text), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(text, "4 threa");
    ck_assert_str_eq(rb_last_error(), "thread plan description needs 37 bytes, the buffer has 8");
    ck_assert_int_eq(rb_thread_plan_describe(plan, text, 0), RB_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ------------------------------------------------------------ this machine */

typedef struct bind_job {
    const rb_thread_plan *plan;
    int index;
    rb_status status;
    char error[256];
    int cpus_allowed; /* after binding */
    int allowed_cpu;  /* the one allowed CPU, when there is one */
    int ran_on;       /* sched_getcpu() after binding */
} bind_job;

static void *bind_thread(void *arg)
{
    bind_job *job = arg;
    cpu_set_t set;
    job->status = rb_thread_plan_bind(job->plan, job->index);
    snprintf(job->error, sizeof job->error, "%s", rb_last_error());
    if (job->status != RB_OK)
        return NULL;
    CPU_ZERO(&set);
    if (pthread_getaffinity_np(pthread_self(), sizeof set, &set) != 0)
        return NULL;
    job->cpus_allowed = CPU_COUNT(&set);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set))
            job->allowed_cpu = c;
    sched_yield();
    job->ran_on = sched_getcpu();
    return NULL;
}

/* hwloc's view of this machine, loaded as robusta loads it, to map the
 * plan's logical PU indexes to CPU numbers. */
static hwloc_topology_t load_hwloc(void)
{
    hwloc_topology_t hw;
    ck_assert_int_eq(hwloc_topology_init(&hw), 0);
    ck_assert_int_eq(hwloc_topology_set_flags(hw, HWLOC_TOPOLOGY_FLAG_IS_THISSYSTEM |
                                                       HWLOC_TOPOLOGY_FLAG_RESTRICT_TO_CPUBINDING),
                     0);
    ck_assert_int_eq(hwloc_topology_load(hw), 0);
    return hw;
}

START_TEST(this_machine)
{
    cpu_set_t before, after;
    hwloc_topology_t hw;
    int cores, n;

    CPU_ZERO(&before);
    ck_assert_int_eq(pthread_getaffinity_np(pthread_self(), sizeof before, &before), 0);
    load(NULL);
    cores = rb_topology_core_count(topo);
    ck_assert_int_ge(cores, 1);
    ck_assert_int_ge(rb_topology_pu_count(topo), cores);
    ck_assert_int_le(rb_topology_pu_count(topo), CPU_COUNT(&before));
    ck_assert_int_ge(rb_topology_numa_count(topo), 1);
    make_plan(0, -1);
    n = rb_thread_plan_count(plan);
    ck_assert_int_ge(n, 1);
    ck_assert_int_le(n, cores);
    ck_assert_int_eq(rb_thread_plan_numa_span(plan), 1);

    hw = load_hwloc();
    for (int i = 0; i < n; i++) {
        bind_job job = {plan, i, RB_ERR_INTERNAL, "", 0, -1, -1};
        hwloc_obj_t pu =
            hwloc_get_obj_by_type(hw, HWLOC_OBJ_PU, (unsigned)rb_thread_plan_pu(plan, i));
        pthread_t thread;
        ck_assert_ptr_nonnull(pu);
        ck_assert_int_eq(pthread_create(&thread, NULL, bind_thread, &job), 0);
        ck_assert_int_eq(pthread_join(thread, NULL), 0);
        ck_assert_msg(job.status == RB_OK, "binding thread %d: %s", i, job.error);
        ck_assert_int_eq(job.cpus_allowed, 1);
        ck_assert_int_eq(job.allowed_cpu, (int)pu->os_index);
        ck_assert_int_eq(job.ran_on, (int)pu->os_index);
        /* The first thread is on the home node: the node of the first CPU
         * the process may run on. */
        if (i == 0) {
            int first = -1;
            for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
                if (CPU_ISSET(c, &before))
                    first = c;
            ck_assert_int_ge(first, 0);
            ck_assert_msg(hwloc_bitmap_isset(
                              hwloc_get_obj_by_type(hw, HWLOC_OBJ_NUMANODE,
                                                    (unsigned)rb_thread_plan_numa(plan, 0))->cpuset,
                              (unsigned)first),
                          "thread 0's NUMA node does not hold CPU %d", first);
        }
    }
    hwloc_topology_destroy(hw);

    /* The test's own thread is as it was. */
    CPU_ZERO(&after);
    ck_assert_int_eq(pthread_getaffinity_np(pthread_self(), sizeof after, &after), 0);
    ck_assert(CPU_EQUAL(&before, &after));
}
END_TEST

/* Restricted to one CPU (as taskset or a launcher would), the process sees
 * one core with one hardware thread, and its plan runs there. Runs in a
 * child process so that the restriction does not outlive the test. */
START_TEST(topology_follows_the_process_binding)
{
    cpu_set_t allowed, one;
    int last = -1, status;
    pid_t pid;

    CPU_ZERO(&allowed);
    ck_assert_int_eq(sched_getaffinity(0, sizeof allowed, &allowed), 0);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &allowed))
            last = c;
    ck_assert_int_ge(last, 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        rb_topology *t = NULL;
        rb_thread_plan *p = NULL, *too_many = NULL;
        CPU_ZERO(&one);
        CPU_SET(last, &one);
        if (sched_setaffinity(0, sizeof one, &one) != 0)
            _exit(10);
        if (rb_topology_create(&t, NULL) != RB_OK)
            _exit(11);
        if (rb_topology_core_count(t) != 1 || rb_topology_pu_count(t) != 1)
            _exit(12);
        if (rb_thread_plan_create(&p, t, 0, -1) != RB_OK || rb_thread_plan_count(p) != 1)
            _exit(13);
        if (rb_thread_plan_create(&too_many, t, 2, -1) != RB_ERR_INVALID_ARGUMENT)
            _exit(14);
        if (rb_thread_plan_bind(p, 0) != RB_OK)
            _exit(15);
        if (sched_getaffinity(0, sizeof one, &one) != 0 || CPU_COUNT(&one) != 1 ||
            !CPU_ISSET(last, &one))
            _exit(16);
        rb_thread_plan_destroy(p);
        rb_topology_destroy(t);
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child failed at step %d (see the test's source)",
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("threads");
    TCase *topology = tcase_create("topology");
    TCase *plans = tcase_create("plans");
    TCase *machine = tcase_create("machine");

    tcase_add_checked_fixture(topology, NULL, teardown);
    tcase_add_test(topology, synthetic_counts);
    tcase_add_test(topology, no_numa_level_is_one_node);
    tcase_add_test(topology, bad_synthetic_strings_are_refused);
    tcase_add_test(topology, null_handles);
    suite_add_tcase(s, topology);

    tcase_add_checked_fixture(plans, NULL, teardown);
    tcase_add_test(plans, default_plan_is_the_home_nodes_cores);
    tcase_add_test(plans, home_node_two);
    tcase_add_test(plans, more_threads_spill_to_the_same_package);
    tcase_add_test(plans, then_to_the_other_package);
    tcase_add_test(plans, nearest_nodes_first);
    tcase_add_test(plans, more_threads_than_cores_use_second_hardware_threads);
    tcase_add_test(plans, refusals);
    tcase_add_test(plans, synthetic_plans_do_not_bind);
    tcase_add_test(plans, describe_into_a_small_buffer);
    suite_add_tcase(s, plans);

    tcase_add_checked_fixture(machine, NULL, teardown);
    tcase_add_test(machine, this_machine);
    tcase_add_test(machine, topology_follows_the_process_binding);
    suite_add_tcase(s, machine);

    return run_suite(s);
}
