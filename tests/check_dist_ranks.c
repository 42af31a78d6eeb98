/* Data-parallel training with 2 ranks under mpirun (robusta/dist.h),
 * against 1-process runs. Needs a build with ./configure --with-mpi and
 * Open MPI's mpirun: otherwise one SKIP line and exit 77, which make
 * check reports as a skip. */
#include "config.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>

#include <json-c/json.h>

#include <robusta/robusta.h>

#include "testdata.h"
#include "testutil.h"

#define RUN(r, ...) run_robusta(r, NULL, (const char *const[]){__VA_ARGS__, NULL})

static char dir[256], mpirun[PATH_MAX], source_data[2048], target_data[2048], source_model[PATH_MAX];

static bool find_mpirun(void)
{
    const char *candidates[] = {"/usr/bin/mpirun", "/usr/local/bin/mpirun", NULL};
    for (int i = 0; candidates[i] != NULL; i++)
        if (access(candidates[i], X_OK) == 0) {
            snprintf(mpirun, sizeof mpirun, "%s", candidates[i]);
            return true;
        }
    return false;
}

/* mpirun -np N robusta ARGS, with a deadline so that a hang fails. */
static void run_ranks(run_result *r, int ranks, const char *extra_env, const char *const *args)
{
    char np[16];
    const char *argv[64];
    size_t n = 0;
    snprintf(np, sizeof np, "%d", ranks);
    argv[n++] = "--np";
    argv[n++] = np;
    argv[n++] = "--oversubscribe";
    if (geteuid() == 0)
        argv[n++] = "--allow-run-as-root";
    /* the container has no ptrace rights for single-copy shared memory */
    argv[n++] = "--mca";
    argv[n++] = "btl_vader_single_copy_mechanism";
    argv[n++] = "none";
    argv[n++] = test_env("RB_TEST_ROBUSTA");
    for (size_t i = 0; args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    run_program_deadline(r, mpirun, extra_env, 300, argv);
}

#define RANKS(r, n, env, ...) run_ranks(r, n, env, (const char *const[]){__VA_ARGS__, NULL})

static void setup_once(void)
{
    run_result r;
    char out[PATH_MAX];
    make_temp_dir(dir, sizeof dir);
    write_bar_images(dir, "sx.npy", "sy.npy", 64, 4, 0, 1);
    write_bar_images(dir, "tx.npy", "ty.npy", 64, 3, 4, 3);
    write_bar_images(dir, "ttx.npy", "tty.npy", 30, 3, 4, 4);
    snprintf(source_data, sizeof source_data, "npy:%s/sx.npy,%s/sy.npy", dir, dir);
    snprintf(target_data, sizeof target_data, "npy:%s/tx.npy,%s/ty.npy;%s/ttx.npy,%s/tty.npy", dir, dir, dir, dir);
    snprintf(out, sizeof out, "%s/source", dir);
    RUN(&r, "train", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--data", source_data, "--out", out,
        "--epochs", "1", "--batch-size", "16", "--lr", "0.05", "--threads", "1", "--seed", "3");
    ck_assert_msg(r.code == 0, "source training failed: %s", r.err);
    snprintf(source_model, sizeof source_model, "%s/source/model.rbt", dir);
}

static void teardown_once(void)
{
    remove_temp_dir(dir);
}

static rb_checkpoint *load(const char *run)
{
    char path[PATH_MAX];
    rb_checkpoint *ck;
    snprintf(path, sizeof path, "%s/%s/model.rbt", dir, run);
    ck_assert_msg(rb_checkpoint_load(&ck, path, 0) == RB_OK, "%s: %s", path, rb_last_error());
    return ck;
}

/* Largest |a - b| / max |a| over every tensor of two checkpoints; *bit
 * says whether they are the same bit for bit. */
static double model_diff(const rb_checkpoint *a, const rb_checkpoint *b, bool *bit)
{
    double worst = 0;
    *bit = true;
    ck_assert_int_eq(rb_checkpoint_count(a), rb_checkpoint_count(b));
    for (size_t t = 0; t < rb_checkpoint_count(a); t++) {
        rb_checkpoint_tensor ta, tb;
        double d = 0, m = 0;
        rb_checkpoint_get(a, t, &ta);
        ck_assert_msg(rb_checkpoint_find(b, ta.name, &tb) == RB_OK, "no %s", ta.name);
        ck_assert_int_eq(ta.numel, tb.numel);
        if (ta.dtype != RB_DTYPE_F32)
            continue;
        *bit = *bit && memcmp(ta.data, tb.data, (size_t)ta.numel * sizeof(float)) == 0;
        for (int64_t i = 0; i < ta.numel; i++) {
            double x = ((const float *)ta.data)[i], y = ((const float *)tb.data)[i];
            d = fmax(d, fabs(x - y));
            m = fmax(m, fabs(x));
        }
        if (m > 0 && d / m > worst)
            worst = d / m;
    }
    return worst;
}

/* Epoch `epoch`'s train_loss, train_acc, test_loss, test_acc from a run's
 * log.csv (epoch,lr,train_loss,train_acc,test_loss,test_acc,...). */
static void log_row(const char *run, int epoch, double v[4])
{
    char path[PATH_MAX];
    size_t size;
    char *text, *line;
    int got = 0;
    snprintf(path, sizeof path, "%s/%s/log.csv", dir, run);
    text = (char *)read_whole_file(path, &size);
    ck_assert_ptr_nonnull(text);
    for (line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        int e;
        double lr;
        if (sscanf(line, "%d,%lf,%lf,%lf,%lf,%lf", &e, &lr, &v[0], &v[1], &v[2], &v[3]) == 6 && e == epoch)
            got = 1;
        if (got)
            break;
    }
    ck_assert_msg(got, "%s has no epoch %d", path, epoch);
    free(text);
}

#define TRANSFER(res, ranks, env, out, mode, ...)                                                                   \
    RANKS(res, ranks, env, "transfer", "--source", source_model, "--data", target_data, "--out", out, "--mode", mode, \
          "--epochs", "3", "--batch-size", "8", "--threads", "1", "--seed", "5", "--schedule", "constant",          \
          "--feature-cache", "off", "--eval-batch-size", "8" __VA_ARGS__)

/* Fixed-feature transfer with frozen batch-norm: the ranks' shares of a
 * batch give the gradient of the whole batch's mean loss, so 2 ranks train
 * the model 1 process does, up to the order of the sums (24 steps of a
 * linear head: 1e-5 of the largest weight, measured 1e-7). Two 2-rank runs
 * are the same bit for bit, and RB_DIST_CHECK=1 compares the ranks' models
 * after every step (the run fails at the first difference). */
START_TEST(two_ranks_train_the_fixed_feature_head_one_process_trains)
{
    run_result r1, r2, r3;
    char one[PATH_MAX], two[PATH_MAX], again[PATH_MAX];
    rb_checkpoint *a, *b, *c;
    bool bit;
    double d;
    snprintf(one, sizeof one, "%s/one", dir);
    snprintf(two, sizeof two, "%s/two", dir);
    snprintf(again, sizeof again, "%s/again", dir);
    TRANSFER(&r1, 1, NULL, one, "fixed");
    ck_assert_msg(r1.code == 0, "%s", r1.err);
    TRANSFER(&r2, 2, "RB_DIST_CHECK=1", two, "fixed");
    ck_assert_msg(r2.code == 0, "%s", r2.err);
    TRANSFER(&r3, 2, NULL, again, "fixed");
    ck_assert_msg(r3.code == 0, "%s", r3.err);
    a = load("one");
    b = load("two");
    c = load("again");
    d = model_diff(a, b, &bit);
    printf("fixed-feature transfer, 2 ranks vs 1 process: largest relative difference %.3g\n", d);
    ck_assert_msg(d <= 1e-5, "2 ranks vs 1 process: relative difference %g", d);
    d = model_diff(b, c, &bit);
    ck_assert_msg(bit, "two 2-rank runs differ (%g)", d);
    /* What the logs report is the job's, not rank 0's share: the training
     * accuracy counts both ranks' images, and the test split (30 images,
     * batches of 8: rank 0 gets 8+8, rank 1 8+6) is scored as one
     * process scores it. The accuracies are the same counts; the losses are
     * sums in another order over models 1e-7 apart (1e-6 of headroom). */
    for (int epoch = 1; epoch <= 3; epoch++) {
        double v1[4], v2[4];
        log_row("one", epoch, v1);
        log_row("two", epoch, v2);
        ck_assert_msg(v1[1] == v2[1] && v1[3] == v2[3], "epoch %d: accuracies %g %g (1 process), %g %g (2 ranks)",
                      epoch, v1[1], v1[3], v2[1], v2[3]);
        ck_assert_msg(fabs(v1[0] - v2[0]) <= 1e-6 * v1[0] && fabs(v1[2] - v2[2]) <= 1e-6 * v1[2],
                      "epoch %d: losses %.9g %.9g (1 process), %.9g %.9g (2 ranks)", epoch, v1[0], v1[2], v2[0], v2[2]);
    }
    rb_checkpoint_destroy(a);
    rb_checkpoint_destroy(b);
    rb_checkpoint_destroy(c);
}
END_TEST

/* Largest |a - b| over the weights (not the running statistics) of two
 * checkpoints, relative to the largest |weight| of a. */
static double weights_diff(const rb_checkpoint *a, const rb_checkpoint *b)
{
    double d = 0, m = 0;
    for (size_t t = 0; t < rb_checkpoint_count(a); t++) {
        rb_checkpoint_tensor ta, tb;
        rb_checkpoint_get(a, t, &ta);
        if (ta.dtype != RB_DTYPE_F32 || strstr(ta.name, "running_") != NULL)
            continue;
        ck_assert_msg(rb_checkpoint_find(b, ta.name, &tb) == RB_OK, "no %s", ta.name);
        for (int64_t i = 0; i < ta.numel; i++) {
            double x = ((const float *)ta.data)[i], y = ((const float *)tb.data)[i];
            d = fmax(d, fabs(x - y));
            m = fmax(m, fabs(x));
        }
    }
    return d / m;
}

/* --sync-bn: 2 ranks with shares of 7 and 8 images take batch-norm
 * statistics over the batch of 15, so their step is the one 1 process
 * takes. One step at lr 1 without momentum or decay, so the models differ
 * by the gradients' difference. (After 20 small steps this model is
 * chaotic in fp32: 1 process with 2 threads instead of 1 ends up to 2e-2
 * of the largest weight away, so parameters after many steps cannot tell
 * a right step from a wrong one; one step can.) Measured: 2 ranks 1.9e-6
 * of the largest weight from 1 process, 1 process with 2 threads 1.6e-6,
 * 2 ranks without --sync-bn 0.99 (each its own statistics). The test
 * allows 2e-5 or 3x the 2-thread distance. */
#define SCRATCH(out, threads)                                                                                     \
    "train", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--data", scratch_data, "--out", out,     \
        "--epochs", "1", "--batch-size", "15", "--lr", "1", "--momentum", "0", "--weight-decay", "0", "--schedule", \
        "constant", "--threads", threads, "--seed", "0", "-q"

START_TEST(sync_bn_takes_the_one_process_step)
{
    run_result r;
    char one[PATH_MAX], two_threads[PATH_MAX], synced[PATH_MAX], own[PATH_MAX], scratch_data[2 * PATH_MAX];
    rb_checkpoint *a, *b, *c, *d;
    double noise, diff, apart;
    snprintf(one, sizeof one, "%s/sbn-one", dir);
    snprintf(two_threads, sizeof two_threads, "%s/sbn-two-threads", dir);
    snprintf(synced, sizeof synced, "%s/sbn-synced", dir);
    snprintf(own, sizeof own, "%s/sbn-own", dir);
    /* 16 x 16, so that the last stage is 2 x 2, not a 1 x 1 whose
     * batch-norm amplifies its mean's rounding */
    write_bar_images_scaled(dir, "s16x.npy", "s16y.npy", 15, 4, 0, 1, 2);
    snprintf(scratch_data, sizeof scratch_data, "npy:%s/s16x.npy,%s/s16y.npy", dir, dir);
    RUN(&r, SCRATCH(one, "1"));
    ck_assert_msg(r.code == 0, "%s", r.err);
    RUN(&r, SCRATCH(two_threads, "2"));
    ck_assert_msg(r.code == 0, "%s", r.err);
    RANKS(&r, 2, NULL, SCRATCH(synced, "1"), "--sync-bn");
    ck_assert_msg(r.code == 0, "%s", r.err);
    RANKS(&r, 2, NULL, SCRATCH(own, "1"));
    ck_assert_msg(r.code == 0, "%s", r.err);
    a = load("sbn-one");
    b = load("sbn-two-threads");
    c = load("sbn-synced");
    d = load("sbn-own");
    noise = weights_diff(a, b);
    diff = weights_diff(a, c);
    apart = weights_diff(a, d);
    printf("--sync-bn, a step of 2 ranks vs 1 process: %.3g of the largest weight (1 process, 2 threads vs 1: %.3g; "
           "2 ranks without --sync-bn: %.3g)\n", diff, noise, apart);
    fflush(stdout);
    ck_assert_msg(diff <= fmax(2e-5, 3 * noise), "--sync-bn: %g from 1 process (2 threads: %g)", diff, noise);
    ck_assert_msg(apart > 1e-1, "without --sync-bn only %g apart: the test cannot tell the two", apart);
    rb_checkpoint_destroy(a);
    rb_checkpoint_destroy(b);
    rb_checkpoint_destroy(c);
    rb_checkpoint_destroy(d);
}
END_TEST

/* A failure on the ranks' common path (here: the run folder already holds
 * a run) ends the job with the command's exit status and its one line,
 * naming the rank; it does not hang (the deadline would fail it). */
START_TEST(a_failing_rank_ends_the_job_with_its_line)
{
    run_result r;
    char two[PATH_MAX];
    snprintf(two, sizeof two, "%s/busy", dir);
    TRANSFER(&r, 2, NULL, two, "fixed");
    ck_assert_msg(r.code == 0, "%s", r.err);
    TRANSFER(&r, 2, NULL, two, "fixed");
    ck_assert_int_eq(r.code, 1);
    ck_assert_msg(strstr(r.err, "(rank 0 of 2)") != NULL && strstr(r.err, "already holds a run") != NULL, "%s",
                  r.err);
}
END_TEST

/* Adversarial training from scratch: batch-norm takes each rank's share
 * (so the model is not the 1-process one), but the ranks hold one model
 * after every step (RB_DIST_CHECK) and a second job repeats the first bit
 * for bit: the attack's random starts are keyed by example, not by rank. */
START_TEST(two_rank_adversarial_training_holds_one_model_and_repeats_whatever_the_buckets)
{
    run_result r;
    char a_dir[PATH_MAX], b_dir[PATH_MAX];
    rb_checkpoint *a, *b;
    bool bit;
    double d;
    snprintf(a_dir, sizeof a_dir, "%s/adv-a", dir);
    snprintf(b_dir, sizeof b_dir, "%s/adv-b", dir);
    /* the second with 64 KiB buckets instead of 4 MiB: two ranks' sums
     * are exact whatever the buckets, so the runs stay bit-identical */
    for (int k = 0; k < 2; k++) {
        RANKS(&r, 2, "RB_DIST_CHECK=1", "train", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--data",
              source_data, "--out", k == 0 ? a_dir : b_dir, "--epochs", "2", "--batch-size", "16", "--lr", "0.05",
              "--threads", "1", "--seed", "3", "--attack", "pgd-l2", "--eps", "0.5", "--steps", "2", "--bucket-mib",
              k == 0 ? "4" : "0.0625");
        ck_assert_msg(r.code == 0, "%s", r.err);
    }
    {
        char path[PATH_MAX + 16];
        json_object *cfg, *v;
        snprintf(path, sizeof path, "%s/config.json", b_dir);
        cfg = json_object_from_file(path);
        ck_assert_ptr_nonnull(cfg);
        ck_assert(json_object_object_get_ex(cfg, "bucket_mib", &v));
        ck_assert_double_eq(json_object_get_double(v), 0.0625);
        json_object_put(cfg);
    }
    /* rank 0 alone reported, and logged both epochs */
    ck_assert_int_eq(count_lines(r.out), 1);
    ck_assert_ptr_nonnull(strstr(r.out, "trained 2 epochs"));
    a = load("adv-a");
    b = load("adv-b");
    d = model_diff(a, b, &bit);
    ck_assert_msg(bit, "two 2-rank adversarial runs differ (%g)", d);
    rb_checkpoint_destroy(a);
    rb_checkpoint_destroy(b);
}
END_TEST

/* Rank 0 chooses the job's training kernels: the other ranks follow the
 * plan it sends instead of choosing their own. Seen through a cache entry
 * that cannot run (one warning per rank that reads it, and ranks other
 * than 0 speak only for warnings): one warning, rank 0's. --tune=cached is
 * written with "=", as mpirun takes a lone --tune for itself. */
START_TEST(rank_zero_chooses_the_kernels_of_the_job)
{
    run_result r;
    static char env[PATH_MAX + 32];
    char one[PATH_MAX], two[PATH_MAX], path[PATH_MAX + 16], cache[PATH_MAX + 16], machine[300];
    const char *at, *key = NULL;
    int warned = 0;
    json_object *cfg, *plan, *choices;
    FILE *f;
    snprintf(one, sizeof one, "%s/tuned-one", dir);
    snprintf(two, sizeof two, "%s/tuned-two", dir);
    snprintf(cache, sizeof cache, "%s/ranks-plans.json", dir);
    snprintf(env, sizeof env, "RB_PLAN_CACHE=%s", cache);
    /* one process at each rank's share of the batch: the job's keys */
    run_robusta(&r, env, (const char *const[]){"train", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125",
                                               "--data", source_data, "--out", one, "--epochs", "1", "--batch-size",
                                               "8", "--threads", "1", "--tune", "off", NULL});
    ck_assert_msg(r.code == 0, "%s", r.err);
    snprintf(path, sizeof path, "%s/config.json", one);
    ck_assert_ptr_nonnull(cfg = json_object_from_file(path));
    ck_assert_msg(!json_object_object_get_ex(cfg, "plan", NULL), "--tune off recorded a plan");
    json_object_put(cfg);
    run_robusta(&r, env, (const char *const[]){"train", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125",
                                               "--data", source_data, "--out", one, "--epochs", "1", "--batch-size",
                                               "8", "--threads", "1", "--force", NULL});
    ck_assert_msg(r.code == 0, "%s", r.err);
    ck_assert_ptr_nonnull(cfg = json_object_from_file(path));
    ck_assert(json_object_object_get_ex(cfg, "plan", &plan) && json_object_object_get_ex(plan, "choices", &choices));
    {
        json_object_object_foreach(choices, k, v)
        {
            (void)v;
            key = k; /* the last shape */
        }
    }
    ck_assert_ptr_nonnull(key);
    ck_assert_int_eq(rb_tune_machine(1, machine, sizeof machine), RB_OK);
    ck_assert_ptr_nonnull(f = fopen(cache, "w"));
    fprintf(f, "{\"format\": \"robusta-plan-cache\", \"version\": 1, \"machines\": {\"%s\": {\"%s\": \"fast please\"}}}",
            machine, key);
    ck_assert_int_eq(fclose(f), 0);
    json_object_put(cfg);
    RANKS(&r, 2, env, "train", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--data", source_data,
          "--out", two, "--epochs", "1", "--batch-size", "16", "--threads", "1", "--tune=cached");
    ck_assert_msg(r.code == 0, "%s", r.err);
    for (at = r.err; (at = strstr(at, "'fast please' cannot run here; measuring again")) != NULL; at++)
        warned++;
    ck_assert_msg(warned == 1, "%d ranks read the cache:\n%s", warned, r.err);
    snprintf(path, sizeof path, "%s/config.json", two);
    ck_assert_ptr_nonnull(cfg = json_object_from_file(path));
    ck_assert(json_object_object_get_ex(cfg, "plan", &plan) && json_object_object_get_ex(plan, "choices", &choices));
    ck_assert_int_ge(json_object_object_length(choices), 4);
    json_object_put(cfg);
}
END_TEST

/* A run resumed under another number of ranks goes on as if it had never
 * stopped: 2 epochs alone then a third on 2 ranks give the 3-epoch
 * 1-process model (within the sums' order, as above). */
START_TEST(a_run_resumes_under_another_number_of_ranks)
{
    run_result r;
    char once[PATH_MAX], split[PATH_MAX];
    rb_checkpoint *a, *b;
    bool bit;
    double d;
    snprintf(once, sizeof once, "%s/once", dir);
    snprintf(split, sizeof split, "%s/split", dir);
    TRANSFER(&r, 1, NULL, once, "fixed");
    ck_assert_msg(r.code == 0, "%s", r.err);
    RANKS(&r, 1, NULL, "transfer", "--source", source_model, "--data", target_data, "--out", split, "--mode", "fixed",
          "--epochs", "2", "--batch-size", "8", "--threads", "1", "--seed", "5", "--schedule", "constant",
          "--feature-cache", "off");
    ck_assert_msg(r.code == 0, "%s", r.err);
    /* the schedule is constant, so 2 of 3 epochs then 3 is the 3-epoch run */
    RANKS(&r, 2, "RB_DIST_CHECK=1", "transfer", "--resume", split, "--epochs", "3");
    ck_assert_msg(r.code == 0, "%s", r.err);
    a = load("once");
    b = load("split");
    d = model_diff(a, b, &bit);
    ck_assert_msg(d <= 1e-5, "resumed on 2 ranks vs 1 process: relative difference %g", d);
    rb_checkpoint_destroy(a);
    rb_checkpoint_destroy(b);
}
END_TEST

/* Ranks started with different command lines (mpirun's A : B form) stop
 * at once with one line naming the rank and the difference. */
START_TEST(ranks_with_different_options_are_refused_in_one_line)
{
    run_result r;
    const char *argv[32];
    size_t n = 0;
    argv[n++] = "--oversubscribe";
    if (geteuid() == 0)
        argv[n++] = "--allow-run-as-root";
    argv[n++] = "--np";
    argv[n++] = "1";
    argv[n++] = test_env("RB_TEST_ROBUSTA");
    argv[n++] = "plugins";
    argv[n++] = ":";
    argv[n++] = "--np";
    argv[n++] = "1";
    argv[n++] = test_env("RB_TEST_ROBUSTA");
    argv[n++] = "plugins";
    argv[n++] = "--json";
    argv[n] = NULL;
    run_program_deadline(&r, mpirun, NULL, 120, argv);
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(strstr(r.err, "robusta: the command lines differ between ranks: rank 1 has \"plugins --json\" "
                                "where rank 0 has \"plugins\"; every rank must run the same robusta") != NULL,
                  "%s", r.err);
    ck_assert_str_eq(r.out, "");
}
END_TEST

/* Lines in DIR/RUN/log.csv (the header and one per epoch), 0 if none. */
static int log_lines(const char *run)
{
    char path[PATH_MAX];
    size_t size = 0;
    unsigned char *text;
    int n = 0;
    snprintf(path, sizeof path, "%s/%s/log.csv", dir, run);
    if (access(path, R_OK) != 0 || (text = read_whole_file(path, &size)) == NULL)
        return 0;
    for (size_t i = 0; i < size; i++)
        n += text[i] == '\n';
    free(text);
    return n;
}

/* A rank killed mid-epoch (SIGKILL: no message, no cleanup) ends the whole
 * job with a non-zero status instead of leaving the other rank waiting in
 * a sum forever; the last checkpoint stays intact and the run resumes to
 * the end. */
START_TEST(a_killed_rank_ends_the_job_and_the_run_resumes)
{
    char out[PATH_MAX], pids[256], cmd[PATH_MAX + 64];
    int status, code;
    pid_t job, victim = 0;
    FILE *p;
    rb_checkpoint *ck;
    run_result r;
    snprintf(out, sizeof out, "%s/killed", dir);
    job = fork();
    ck_assert(job >= 0);
    if (job == 0) {
        const char *argv[] = {mpirun, "--np", "2", "--oversubscribe", "--allow-run-as-root", "--mca",
                              "btl_vader_single_copy_mechanism", "none", test_env("RB_TEST_ROBUSTA"), "transfer",
                              "--source", source_model, "--data", target_data, "--out", out, "--mode", "full",
                              "--epochs", "400", "--batch-size", "8", "--threads", "1", "--seed", "5", "-q", NULL};
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        alarm(300);
        execv(mpirun, (char *const *)argv);
        _exit(127);
    }
    /* after its second epoch's checkpoint, kill one rank */
    for (int i = 0; i < 1200 && log_lines("killed") < 3; i++)
        usleep(100000);
    ck_assert_msg(log_lines("killed") >= 3, "the job wrote no epoch in 120 s");
    snprintf(cmd, sizeof cmd, "pgrep -n -P %ld", (long)job); /* mpirun's newest child: a rank */
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    if (fgets(pids, sizeof pids, p) != NULL)
        victim = (pid_t)atol(pids);
    pclose(p);
    ck_assert_msg(victim > 0 && victim != job, "no rank to kill");
    ck_assert_int_eq(kill(victim, SIGKILL), 0);
    ck_assert_int_eq(waitpid(job, &status, 0), job);
    code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    printf("a rank killed after %d epochs: mpirun ended with status %d\n", log_lines("killed") - 1, code);
    ck_assert_msg(code != 0 && code != 128 + SIGALRM, "mpirun ended with %d after a rank was killed", code);
    /* last.rbt is whole, and the run goes on from it */
    snprintf(cmd, sizeof cmd, "%s/last.rbt", out);
    ck_assert_msg(rb_checkpoint_load(&ck, cmd, 0) == RB_OK, "%s", rb_last_error());
    rb_checkpoint_destroy(ck);
    RANKS(&r, 2, NULL, "transfer", "--resume", out, "--epochs", "6");
    ck_assert_msg(r.code == 0, "%s", r.err);
    ck_assert_int_eq(log_lines("killed"), 7);
}
END_TEST

/* bench under 2 ranks times the data-parallel step: each rank half of the
 * batch, the gradient summed is the model's (4 bytes per trainable element
 * of the same architecture's checkpoint), figures in range, and rank 0
 * alone prints one JSON document. */
START_TEST(bench_under_two_ranks_reports_the_data_parallel_step)
{
    run_result r;
    json_object *root, *dp, *per, *x, *model;
    rb_checkpoint *ck;
    int64_t elements = 0;
    double last = 2;
    RANKS(&r, 2, NULL, "bench", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--channels", "1",
          "--image-size", "8", "--num-classes", "4", "--batch-size", "9", "--threads", "1", "--repeats", "2",
          "--bucket-mib", "0.0625", "--json");
    ck_assert_msg(r.code == 0, "%s", r.err);
    root = json_tokener_parse(r.out);
    ck_assert_msg(root != NULL, "not one JSON document: %s", r.out);
    ck_assert_int_eq(json_object_get_int(json_object_object_get(root, "ranks")), 2);
    ck_assert_int_eq(json_object_get_int64(json_object_object_get(root, "global_batch_size")), 9);
    ck_assert(json_object_object_get_ex(root, "data_parallel", &dp));
    per = json_object_object_get(dp, "per_rank");
    ck_assert_int_eq((int)json_object_array_length(per), 2);
    /* positions [0, 4) and [4, 9) of the batch, as train splits it */
    ck_assert_int_eq(json_object_get_int64(json_object_object_get(json_object_array_get_idx(per, 0), "batch")), 4);
    ck_assert_int_eq(json_object_get_int64(json_object_object_get(json_object_array_get_idx(per, 1), "batch")), 5);
    /* what is summed: every trainable tensor of this model, nothing else */
    ck_assert_msg(rb_checkpoint_load(&ck, source_model, 0) == RB_OK, "%s", rb_last_error());
    for (size_t t = 0; t < rb_checkpoint_count(ck); t++) {
        rb_checkpoint_tensor ct;
        rb_checkpoint_get(ck, t, &ct);
        if (ct.dtype == RB_DTYPE_F32 && strstr(ct.name, "running_") == NULL)
            elements += ct.numel;
    }
    rb_checkpoint_destroy(ck);
    ck_assert_int_eq(json_object_get_int64(json_object_object_get(dp, "gradient_bytes")), 4 * elements);
    /* 64 KiB buckets (the first 4 KiB) over ~0.3 MB: several */
    ck_assert_int_ge(json_object_get_int64(json_object_object_get(dp, "buckets")), 4);
    ck_assert(json_object_get_double(json_object_object_get(dp, "allreduce_alone_ms")) > 0);
    x = json_object_object_get(dp, "hidden_share");
    ck_assert(json_object_get_double(x) >= 0 && json_object_get_double(x) <= 1);
    ck_assert(json_object_get_double(json_object_object_get(dp, "scaling_efficiency")) > 0);
    /* the model's efficiency falls (or stays) as nodes are added, within (0, 1] */
    model = json_object_object_get(json_object_object_get(dp, "ring_model"), "predicted");
    ck_assert_int_eq((int)json_object_array_length(model), 6);
    for (size_t k = 0; k < 6; k++) {
        double e = json_object_get_double(json_object_object_get(json_object_array_get_idx(model, k), "efficiency"));
        ck_assert_msg(e > 0 && e <= 1 && e <= last, "node count %zu: efficiency %g after %g", k, e, last);
        last = e;
    }
    json_object_put(root);
    /* a batch smaller than the job, and what bench cannot split: refused */
    RANKS(&r, 2, NULL, "bench", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--image-size", "8",
          "--batch-size", "1");
    ck_assert_int_eq(r.code, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "--batch-size 1 is smaller than the 2 ranks"));
    RANKS(&r, 2, NULL, "bench", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--image-size", "8",
          "--only", "infer");
    ck_assert_int_eq(r.code, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "run --only infer as one process"));
}
END_TEST

/* Commands that are neither data-parallel nor a grid refuse to run N
 * times over. */
START_TEST(other_commands_refuse_to_run_as_a_job)
{
    run_result r;
    RANKS(&r, 2, NULL, "eval", "--ckpt", source_model, "--data", target_data);
    ck_assert_int_eq(r.code, 3);
    ck_assert_msg(strstr(r.err, "robusta eval does not run as a job of several ranks (2 here)") != NULL, "%s", r.err);
    ck_assert_str_eq(r.out, "");
}
END_TEST

/* results.csv without its seconds column (field 11), which differs from
 * run to run. */
static char *results_without_seconds(const char *out)
{
    char path[PATH_MAX], *text, *kept, *w;
    size_t size;
    int field = 0;
    snprintf(path, sizeof path, "%s/results.csv", out);
    text = (char *)read_whole_file(path, &size);
    ck_assert_msg(text != NULL, "no %s", path);
    kept = w = malloc(size + 1);
    for (size_t i = 0; i < size; i++) {
        if (text[i] == '\n')
            field = 0;
        else if (text[i] == ',')
            field++;
        if (field != 10 || text[i] == '\n')
            *w++ = text[i];
    }
    *w = '\0';
    free(text);
    return kept;
}

/* A grid over 2 ranks: the ranks deal its two source models (and their
 * transfers) between them, each run trains as in one process, and rank 0
 * reports them all: results.csv is the 1-process grid's, but for the
 * seconds. The claims folder is gone afterwards, and a second job finds
 * every run done. */
START_TEST(a_grid_over_two_ranks_gives_the_one_process_results)
{
    run_result r;
    char ini[PATH_MAX], one[PATH_MAX], two[PATH_MAX], *a, *b, text[4096];
    write_bar_images(dir, "stx.npy", "sty.npy", 24, 4, 0, 2);
    snprintf(ini, sizeof ini, "%s/g.ini", dir);
    snprintf(text, sizeof text,
             "[grid]\nname = g\nthreads = 1\n\n[arch r18]\narch = resnet18\nstem = cifar\nwidth = 0.125\n\n"
             "[source]\ndata = npy:%s/sx.npy,%s/sy.npy;%s/stx.npy,%s/sty.npy\nepochs = 1\nbatch-size = 16\n"
             "lr = 0.05\nschedule = constant\neps = 0, 0.5\nsteps = 1\n\n"
             "[target t3]\ndata = %s\n\n[transfer]\nmodes = fixed\nepochs = 1\nbatch-size = 8\n",
             dir, dir, dir, dir, target_data);
    write_text(ini, text);
    snprintf(one, sizeof one, "%s/grid-one", dir);
    snprintf(two, sizeof two, "%s/grid-two", dir);
    RUN(&r, "grid", ini, "--out", one, "-q");
    ck_assert_msg(r.code == 0, "%s", r.err);
    RANKS(&r, 2, NULL, "grid", ini, "--out", two, "-q");
    ck_assert_msg(r.code == 0, "%s", r.err);
    a = results_without_seconds(one);
    b = results_without_seconds(two);
    ck_assert_int_eq(count_lines(a), 3); /* header, one transfer per source */
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    /* the job's claims folder is gone */
    {
        DIR *d = opendir(two);
        struct dirent *ent;
        ck_assert_ptr_nonnull(d);
        while ((ent = readdir(d)) != NULL)
            ck_assert_msg(strncmp(ent->d_name, ".claims", 7) != 0, "%s/%s is left", two, ent->d_name);
        closedir(d);
    }
    RANKS(&r, 2, NULL, "grid", ini, "--out", two);
    ck_assert_msg(r.code == 0, "%s", r.err);
    ck_assert_msg(strstr(r.err, "training") == NULL && strstr(r.out, "training") == NULL, "%s%s", r.out, r.err);
}
END_TEST

static Suite *dist_ranks_suite(void)
{
    Suite *s = suite_create("dist-ranks");
    TCase *ranks = tcase_create("ranks");
    tcase_add_unchecked_fixture(ranks, setup_once, teardown_once);
    tcase_set_timeout(ranks, 900);
    tcase_add_test(ranks, two_ranks_train_the_fixed_feature_head_one_process_trains);
    tcase_add_test(ranks, sync_bn_takes_the_one_process_step);
    tcase_add_test(ranks, a_failing_rank_ends_the_job_with_its_line);
    tcase_add_test(ranks, a_run_resumes_under_another_number_of_ranks);
    tcase_add_test(ranks, rank_zero_chooses_the_kernels_of_the_job);
    tcase_add_test(ranks, two_rank_adversarial_training_holds_one_model_and_repeats_whatever_the_buckets);
    tcase_add_test(ranks, ranks_with_different_options_are_refused_in_one_line);
    tcase_add_test(ranks, a_killed_rank_ends_the_job_and_the_run_resumes);
    tcase_add_test(ranks, bench_under_two_ranks_reports_the_data_parallel_step);
    tcase_add_test(ranks, other_commands_refuse_to_run_as_a_job);
    tcase_add_test(ranks, a_grid_over_two_ranks_gives_the_one_process_results);
    suite_add_tcase(s, ranks);
    return s;
}

int main(void)
{
    if (!rb_dist_available()) {
        printf("SKIP: 2-rank training needs a build with ./configure --with-mpi (Debian: libopenmpi-dev "
               "openmpi-bin)\n");
        return 77;
    }
    if (!find_mpirun()) {
        printf("SKIP: 2-rank training needs Open MPI's mpirun (Debian: openmpi-bin)\n");
        return 77;
    }
    return run_suite(dist_ranks_suite());
}
