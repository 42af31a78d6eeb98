/* The run folder of train and transfer, through the built robusta: logs
 * kept across resumes whatever a kill left (short, long, missing, garbage),
 * stale temporary files removed, one writer per folder, a checkpoint of
 * another run refused, a folder without its first checkpoint, and SIGTERM /
 * SIGHUP stopping as politely as SIGINT (a second signal at once). */
#include "config.h"

#include <signal.h>
#include <sys/file.h>
#include <time.h>

#include <json-c/json.h>

#include <robusta/robusta.h>

#include "testutil.h"
#include "trainutil.h"

/* The epochs of a run's log.csv rows, in order (returns their count). */
static int csv_epochs(const char *run, int *epochs, int max)
{
    char path[PATH_MAX], line[4096];
    FILE *f;
    int n = 0;
    in_dir(path, run, "log.csv");
    f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s is missing", path);
    ck_assert(fgets(line, sizeof line, f) != NULL);
    ck_assert_msg(strncmp(line, "epoch,lr,", 9) == 0, "header: %s", line);
    while (fgets(line, sizeof line, f) != NULL && n < max)
        epochs[n++] = atoi(line);
    fclose(f);
    return n;
}

/* The same for log.jsonl's "epoch" members. */
static int jsonl_epochs(const char *run, int *epochs, int max)
{
    char path[PATH_MAX], line[4096];
    FILE *f;
    int n = 0;
    in_dir(path, run, "log.jsonl");
    f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s is missing", path);
    while (fgets(line, sizeof line, f) != NULL && n < max) {
        json_object *j = json_tokener_parse(line), *e;
        ck_assert_msg(j != NULL && json_object_object_get_ex(j, "epoch", &e), "row %s", line);
        epochs[n++] = (int)json_object_get_int64(e);
        json_object_put(j);
    }
    fclose(f);
    return n;
}

/* Both logs hold exactly these epochs. */
static void logs_hold(const char *run, const int *want, int count)
{
    int got[64], n;
    n = csv_epochs(run, got, 64);
    ck_assert_msg(n == count, "%s/log.csv has %d rows, expected %d", run, n, count);
    for (int i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "%s/log.csv row %d is epoch %d, expected %d", run, i + 1, got[i], want[i]);
    n = jsonl_epochs(run, got, 64);
    ck_assert_msg(n == count, "%s/log.jsonl has %d rows, expected %d", run, n, count);
    for (int i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "%s/log.jsonl row %d is epoch %d, expected %d", run, i + 1, got[i],
                      want[i]);
}

/* Removes the last line of a file. */
static void drop_last_line(const char *path)
{
    size_t size;
    unsigned char *text = read_whole_file(path, &size);
    ck_assert(size >= 2 && text[size - 1] == '\n');
    size--;
    while (size > 0 && text[size - 1] != '\n')
        size--;
    ck_assert_int_eq(truncate(path, (off_t)size), 0);
    free(text);
}

/* last.rbt's training epoch. */
static int checkpoint_epoch(const char *run)
{
    char path[PATH_MAX];
    rb_checkpoint *ck;
    json_object *meta, *tr, *ep;
    int epoch;
    in_dir(path, run, "last.rbt");
    ck_assert_int_eq(rb_checkpoint_load(&ck, path, RB_CHECKPOINT_INDEX_ONLY), RB_OK);
    meta = json_tokener_parse(rb_checkpoint_metadata(ck));
    ck_assert(json_object_object_get_ex(meta, "training", &tr) && json_object_object_get_ex(tr, "epoch", &ep));
    epoch = (int)json_object_get_int64(ep);
    json_object_put(meta);
    rb_checkpoint_destroy(ck);
    return epoch;
}

/* Copies every regular file of run folder `from` into a new folder `to`. */
static void copy_run(const char *from, const char *to)
{
    char a[PATH_MAX], b[PATH_MAX];
    DIR *d;
    struct dirent *e;
    in_dir(a, from, NULL);
    in_dir(b, to, NULL);
    ck_assert_int_eq(mkdir(b, 0777), 0);
    d = opendir(a);
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        in_dir(a, from, e->d_name);
        if (stat(a, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        in_dir(b, to, e->d_name);
        copy_file(a, b, 0644);
    }
    closedir(d);
}

START_TEST(logs_keep_every_row_up_to_the_checkpoint)
{
    char out[PATH_MAX], path[PATH_MAX], before[8192];
    size_t size;
    unsigned char *text;
    static const int all5[] = {1, 2, 3, 4, 5}, short7[] = {1, 2, 3, 4, 6, 7}, fresh7[] = {6, 7};

    in_dir(out, "t5", NULL);
    TRAIN(&r, out, "5");
    ck_assert_msg(r.code == 0, "train failed: %s", r.err);
    logs_hold("t5", all5, 5);

    /* The reproducer: both logs one row short of last.rbt. */
    copy_run("t5", "short");
    in_dir(path, "short", "log.csv");
    text = read_whole_file(path, &size);
    drop_last_line(path);
    in_dir(path, "short", "log.jsonl");
    drop_last_line(path);
    in_dir(out, "short", NULL);
    RUN(&r, "train", "--resume", out, "--epochs", "7");
    ck_assert_msg(r.code == 0, "resume failed: %s", r.err);
    logs_hold("short", short7, 6);
    ck_assert_msg(strstr(r.err, "log.csv has no row for epoch 5") != NULL &&
                      strstr(r.err, "log.jsonl has no row for epoch 5") != NULL,
                  "the lost epoch is not named: %s", r.err);
    {
        /* the kept rows are the old rows, byte for byte */
        size_t now_size;
        unsigned char *now;
        char *cut = memchr(text, '\n', size);
        for (int i = 0; i < 4; i++)
            cut = memchr(cut + 1, '\n', size - (size_t)((unsigned char *)cut + 1 - text));
        in_dir(path, "short", "log.csv");
        now = read_whole_file(path, &now_size);
        ck_assert(memcmp(now, text, (size_t)((unsigned char *)cut + 1 - text)) == 0);
        free(now);
    }
    free(text);

    /* Logs ahead of last.rbt (a kill after the logs, before the checkpoint):
     * the extra rows go, with a warning, and the epochs are redone. */
    in_dir(out, "ahead", NULL);
    TRAIN(&r, out, "3");
    ck_assert_msg(r.code == 0, "train failed: %s", r.err);
    in_dir(path, "t5", "log.csv");
    in_dir(before, "ahead", "log.csv");
    copy_file(path, before, 0644);
    in_dir(path, "t5", "log.jsonl");
    in_dir(before, "ahead", "log.jsonl");
    copy_file(path, before, 0644);
    RUN(&r, "train", "--resume", out, "--epochs", "5");
    ck_assert_msg(r.code == 0, "resume failed: %s", r.err);
    ck_assert_msg(strstr(r.err, "log.csv has rows for epochs 4-5, past last.rbt's epoch 3: dropped") != NULL,
                  "%s", r.err);
    logs_hold("ahead", all5, 5);

    /* Missing logs start afresh, with a warning. */
    copy_run("t5", "missing");
    in_dir(path, "missing", "log.csv");
    unlink(path);
    in_dir(path, "missing", "log.jsonl");
    unlink(path);
    in_dir(out, "missing", NULL);
    RUN(&r, "train", "--resume", out, "--epochs", "7");
    ck_assert_msg(r.code == 0, "resume failed: %s", r.err);
    ck_assert_msg(strstr(r.err, "log.csv is missing") != NULL && strstr(r.err, "log.jsonl is missing") != NULL,
                  "%s", r.err);
    logs_hold("missing", fresh7, 2);

    /* Garbage is refused in one line naming the file and line, and left as it was. */
    {
        static const struct {
            const char *file, *text, *where;
        } bad[] = {
            {"log.csv", "hello\n", "log.csv line 1 is not this run's header"},
            {"log.csv",
             "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,images_per_second,adv_train_acc,"
             "robust_test_acc\n",
             "log.csv line 1 is not this run's header"},
            {"log.csv", "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,images_per_second\n1,2\n",
             "log.csv line 2 has another number of columns"},
            {"log.csv",
             "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,images_per_second\n2,1,1,1,1,1,1,1\n"
             "1,1,1,1,1,1,1,1\n",
             "log.csv line 3 repeats an epoch or goes back"},
            {"log.csv", "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,images_per_second\nx,1,1,1,1,1,1,1\n",
             "log.csv line 2 does not begin with an epoch number"},
            {"log.csv", "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,images_per_second", 
             "log.csv line 1 is cut short"},
            {"log.jsonl", "{\"epoch\": 1}\nnot json\n", "log.jsonl line 2 is not one JSON object"},
            {"log.jsonl", "{\"epoch\": 1} {\"epoch\": 2}\n", "log.jsonl line 1 is not one JSON object"},
            {"log.jsonl", "{\"lr\": 1}\n", "log.jsonl line 1 has no \"epoch\" number"},
            {"log.jsonl", "{\"epoch\": 1, \"adv_train_acc\": 0.5}\n", "log.jsonl line 1 is an adversarial run's row"},
        };
        copy_run("t5", "garbage");
        in_dir(out, "garbage", NULL);
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            char good[PATH_MAX], other[PATH_MAX];
            unsigned char *after;
            size_t after_size;
            in_dir(path, "garbage", bad[i].file);
            in_dir(good, "t5", bad[i].file);
            write_text(path, bad[i].text);
            /* the other log is intact */
            in_dir(other, "garbage", strcmp(bad[i].file, "log.csv") == 0 ? "log.jsonl" : "log.csv");
            in_dir(good, "t5", strcmp(bad[i].file, "log.csv") == 0 ? "log.jsonl" : "log.csv");
            copy_file(good, other, 0644);
            RUN(&r, "train", "--resume", out, "--epochs", "7");
            ck_assert_msg(r.code != 0, "%s accepted: %s", bad[i].text, r.err);
            ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, bad[i].where) != NULL && strstr(r.err, "mv ") != NULL,
                          "%s: %s", bad[i].where, r.err);
            after = read_whole_file(path, &after_size);
            ck_assert(after_size == strlen(bad[i].text) && memcmp(after, bad[i].text, after_size) == 0);
            free(after);
        }
        ck_assert_int_eq(checkpoint_epoch("garbage"), 5);
    }
}
END_TEST

/* Stale temporary files of the run's own files go when a run starts,
 * resumes or starts over; anything else stays. */
static const char *const stale[] = {"last.rbt.tmp.aB3xYz", "log.csv.tmp.000000", "log.jsonl.tmp.Q1w2E3",
                                    "best.rbt.tmp.zzzzzz", "config.json.tmp.A1b2C3"};
static const char *const foreign[] = {"notes.txt", "last.rbt.tmp.toolong7", "mine.tmp.abcdef", "log.csv.tmp.ab",
                                      "last.rbt.bak"};

static void litter(const char *run)
{
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++) {
        in_dir(path, run, stale[i]);
        write_text(path, "partial");
    }
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        in_dir(path, run, foreign[i]);
        write_text(path, "mine");
    }
}

static void no_litter(const char *run, const char *when)
{
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++) {
        in_dir(path, run, stale[i]);
        ck_assert_msg(!exists(path), "%s: %s survived", when, stale[i]);
    }
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        in_dir(path, run, foreign[i]);
        ck_assert_msg(exists(path), "%s: %s was removed", when, foreign[i]);
    }
}

START_TEST(stale_temporary_files_are_removed_and_nothing_else)
{
    char out[PATH_MAX];
    in_dir(out, "litter", NULL);
    ck_assert_int_eq(mkdir(out, 0777), 0);
    litter("litter");
    TRAIN(&r, out, "1");
    ck_assert_msg(r.code == 0, "train failed: %s", r.err);
    no_litter("litter", "train");
    litter("litter");
    RUN(&r, "train", "--resume", out, "--epochs", "2");
    ck_assert_msg(r.code == 0, "resume failed: %s", r.err);
    no_litter("litter", "resume");
    litter("litter");
    TRAIN(&r, out, "1", , "--force");
    ck_assert_msg(r.code == 0, "train --force failed: %s", r.err);
    no_litter("litter", "--force");
}
END_TEST

START_TEST(one_writer_per_folder)
{
    char out[PATH_MAX], path[PATH_MAX], want[64];
    int fd;
    in_dir(out, "locked", NULL);
    TRAIN(&r, out, "1");
    ck_assert_msg(r.code == 0, "train failed: %s", r.err);
    /* Another process (this one) holds the folder. */
    in_dir(path, "locked", ".lock");
    ck_assert_msg(!exists(path), "the finished run left its lock file %s", path);
    fd = open(path, O_RDWR | O_CREAT, 0644);
    ck_assert(fd >= 0);
    ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
    snprintf(want, sizeof want, "%ld robusta train\n", (long)getpid());
    ck_assert_int_eq(ftruncate(fd, 0), 0);
    ck_assert_int_eq(pwrite(fd, want, strlen(want), 0), (ssize_t)strlen(want));
    snprintf(want, sizeof want, "in use by process %ld (robusta train)", (long)getpid());
    RUN(&r, "train", "--resume", out, "--epochs", "2");
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, want) != NULL && strstr(r.err, out) != NULL, "%s", r.err);
    TRAIN(&r, out, "1", , "--force");
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, want) != NULL, "%s", r.err);
    ck_assert_int_eq(checkpoint_epoch("locked"), 1);
    close(fd);
    RUN(&r, "train", "--resume", out, "--epochs", "2");
    ck_assert_msg(r.code == 0, "resume after the lock went failed: %s", r.err);
    ck_assert_int_eq(checkpoint_epoch("locked"), 2);
    ck_assert_msg(!exists(path), "the resumed run left its lock file %s", path);
}
END_TEST

/* The run_id of a folder's config.json (copied into id). */
static void config_run_id(const char *run, char *id, size_t size)
{
    char path[PATH_MAX];
    json_object *j, *v;
    in_dir(path, run, "config.json");
    j = json_object_from_file(path);
    ck_assert(j != NULL);
    ck_assert_msg(json_object_object_get_ex(j, "run_id", &v), "%s has no run_id", path);
    snprintf(id, size, "%s", json_object_get_string(v));
    ck_assert_uint_eq(strlen(id), 32);
    json_object_put(j);
}

/* The run id in a checkpoint's "training" metadata ("" when none). */
static void checkpoint_run_id(const char *path, char *id, size_t size)
{
    rb_checkpoint *ck;
    json_object *meta, *tr, *v;
    ck_assert_int_eq(rb_checkpoint_load(&ck, path, RB_CHECKPOINT_INDEX_ONLY), RB_OK);
    meta = json_tokener_parse(rb_checkpoint_metadata(ck));
    ck_assert(json_object_object_get_ex(meta, "training", &tr));
    snprintf(id, size, "%s", json_object_object_get_ex(tr, "run_id", &v) ? json_object_get_string(v) : "");
    json_object_put(meta);
    rb_checkpoint_destroy(ck);
}

/* Rewrites a run folder as robusta wrote it before run ids. */
static void forget_run_id(const char *run)
{
    char path[PATH_MAX];
    rb_checkpoint *ck;
    json_object *meta, *tr, *cfg;
    in_dir(path, run, "last.rbt");
    ck_assert_int_eq(rb_checkpoint_load(&ck, path, 0), RB_OK);
    meta = json_tokener_parse(rb_checkpoint_metadata(ck));
    ck_assert(json_object_object_get_ex(meta, "training", &tr));
    json_object_object_del(tr, "run_id");
    ck_assert_int_eq(rb_checkpoint_set_metadata(ck, json_object_to_json_string(meta)), RB_OK);
    ck_assert_int_eq(rb_checkpoint_save(ck, path, 0), RB_OK);
    json_object_put(meta);
    rb_checkpoint_destroy(ck);
    in_dir(path, run, "config.json");
    cfg = json_object_from_file(path);
    ck_assert(cfg != NULL);
    json_object_object_del(cfg, "run_id");
    ck_assert_int_eq(json_object_to_file(path, cfg), 0);
    json_object_put(cfg);
}

START_TEST(a_checkpoint_of_another_run_is_refused)
{
    char a[PATH_MAX], b[PATH_MAX], path[PATH_MAX], other[PATH_MAX], ida[40], idb[40], id[40];
    in_dir(a, "runa", NULL);
    in_dir(b, "runb", NULL);
    TRAIN(&r, a, "1");
    ck_assert_msg(r.code == 0, "train failed: %s", r.err);
    TRAIN(&r, b, "2", , "--batch-size", "8");
    ck_assert_msg(r.code == 0, "train failed: %s", r.err);
    config_run_id("runa", ida, sizeof ida);
    config_run_id("runb", idb, sizeof idb);
    ck_assert_str_ne(ida, idb);
    /* every checkpoint carries its run's id */
    for (int i = 0; i < 3; i++) {
        in_dir(path, "runa", (const char *[]){"last.rbt", "best.rbt", "model.rbt"}[i]);
        checkpoint_run_id(path, id, sizeof id);
        ck_assert_str_eq(id, ida);
    }
    /* b's last.rbt copied into a: refused, naming both runs; a's files stay */
    in_dir(path, "runa", "last.rbt");
    in_dir(other, "runb", "last.rbt");
    copy_file(other, path, 0644);
    RUN(&r, "train", "--resume", a, "--epochs", "3");
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, "belongs to run") != NULL && strstr(r.err, ida) != NULL &&
                      strstr(r.err, idb) != NULL && strstr(r.err, "copied from another run") != NULL,
                  "%s", r.err);
    ck_assert_int_eq(checkpoint_epoch("runa"), 2);
    /* A folder from before run ids resumes, and gets one. */
    forget_run_id("runb");
    RUN(&r, "train", "--resume", b, "--epochs", "3");
    ck_assert_msg(r.code == 0, "an old run folder does not resume: %s", r.err);
    config_run_id("runb", idb, sizeof idb);
    in_dir(path, "runb", "last.rbt");
    checkpoint_run_id(path, id, sizeof id);
    ck_assert_str_eq(id, idb);
}
END_TEST

START_TEST(resume_without_a_first_checkpoint_says_how_to_start_over)
{
    char out[PATH_MAX], path[PATH_MAX];
    in_dir(out, "setup", NULL);
    TRAIN(&r, out, "1");
    ck_assert_msg(r.code == 0, "train failed: %s", r.err);
    /* what a kill during setup leaves: config.json, no last.rbt */
    for (int i = 0; i < 5; i++) {
        in_dir(path, "setup", (const char *[]){"last.rbt", "best.rbt", "model.rbt", "log.csv", "log.jsonl"}[i]);
        ck_assert_int_eq(unlink(path), 0);
    }
    RUN(&r, "train", "--resume", out);
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, "no last.rbt") != NULL &&
                      strstr(r.err, "before its first checkpoint") != NULL && strstr(r.err, "--force") != NULL,
                  "%s", r.err);
    TRAIN(&r, out, "1", , "--force");
    ck_assert_msg(r.code == 0, "starting over failed: %s", r.err);
}
END_TEST

/* Starts `robusta train` for many epochs into run folder `run` and waits
 * until its first epoch is logged; stderr goes to *err. The schedule is
 * constant, so that resuming with fewer epochs continues it bit for bit. */
static pid_t start_long_run(const char *run, int *err)
{
    char out[PATH_MAX], path[PATH_MAX], errp[] = "/tmp/robusta-sig-XXXXXX";
    pid_t pid;
    in_dir(out, run, NULL);
    *err = mkstemp(errp);
    ck_assert(*err >= 0);
    unlink(errp);
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        const char *argv[] = {test_env("RB_TEST_ROBUSTA"), "train", "--arch", "resnet18", "--stem", "cifar",
                              "--width", "0.125", "--data", data, "--out", out, "--epochs", "1000",
                              "--batch-size", "16", "--lr", "0.05", "--schedule", "constant", "--threads", "1",
                              "--seed", "7", NULL};
        dup2(*err, 2);
        /* as from a terminal or a batch system, whatever this process ignores */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    in_dir(path, run, "log.jsonl");
    for (int i = 0; i < 600; i++) {
        struct stat st;
        if (stat(path, &st) == 0 && st.st_size > 0)
            break;
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    return pid;
}

/* SIGTERM and SIGHUP stop like SIGINT: 128 + the signal, one line saying
 * how to resume, last.rbt and the logs at the same epoch; the run resumes to
 * what an uninterrupted run gives. While it runs, the folder is its own. */
START_TEST(sigterm_and_sighup_stop_at_a_batch_and_resume)
{
    static const int sigs[] = {SIGTERM, SIGHUP};
    for (int k = 0; k < 2; k++) {
        char run[32], ref[32], out[PATH_MAX], path[PATH_MAX], epochs[16], want[64], cmp[PATH_MAX];
        int err, status, epoch, rows[64];
        pid_t pid;
        snprintf(run, sizeof run, "sig%d", sigs[k]);
        snprintf(ref, sizeof ref, "ref%d", sigs[k]);
        in_dir(out, run, NULL);
        pid = start_long_run(run, &err);
        /* the running process holds the folder */
        if (k == 0) {
            snprintf(want, sizeof want, "in use by process %ld (robusta train)", (long)pid);
            RUN(&r, "train", "--resume", out, "--epochs", "2");
            ck_assert_int_ne(r.code, 0);
            ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, want) != NULL, "%s", r.err);
        }
        ck_assert_int_eq(kill(pid, sigs[k]), 0);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        slurp(err, r.err, sizeof r.err);
        close(err);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 128 + sigs[k], "signal %d: status %d: %s", sigs[k],
                      status, r.err);
        ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, sigs[k] == SIGTERM ? "SIGTERM" : "SIGHUP") != NULL &&
                          strstr(r.err, "--resume") != NULL,
                      "%s", r.err);
        epoch = checkpoint_epoch(run);
        ck_assert_int_ge(epoch, 1);
        ck_assert_int_eq(csv_epochs(run, rows, 64), epoch);
        ck_assert_int_eq(jsonl_epochs(run, rows, 64), epoch);
        /* resume to epoch + 1, against an uninterrupted run of as many */
        snprintf(epochs, sizeof epochs, "%d", epoch + 1);
        RUN(&r, "train", "--resume", out, "--epochs", epochs);
        ck_assert_msg(r.code == 0, "resume failed: %s", r.err);
        in_dir(cmp, ref, NULL);
        RUN(&r, "train", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--data", data, "--out", cmp,
            "--epochs", epochs, "--batch-size", "16", "--lr", "0.05", "--schedule", "constant", "--threads", "1",
            "--seed", "7");
        ck_assert_msg(r.code == 0, "train failed: %s", r.err);
        {
            char a[PATH_MAX], b[PATH_MAX];
            rb_checkpoint *ca, *cb;
            in_dir(a, run, "model.rbt");
            in_dir(b, ref, "model.rbt");
            ck_assert_int_eq(rb_checkpoint_load(&ca, a, 0), RB_OK);
            ck_assert_int_eq(rb_checkpoint_load(&cb, b, 0), RB_OK);
            ck_assert_uint_eq(rb_checkpoint_count(ca), rb_checkpoint_count(cb));
            for (size_t i = 0; i < rb_checkpoint_count(ca); i++) {
                rb_checkpoint_tensor ta, tb;
                rb_checkpoint_get(ca, i, &ta);
                rb_checkpoint_get(cb, i, &tb);
                ck_assert_str_eq(ta.name, tb.name);
                ck_assert_msg(ta.nbytes == tb.nbytes && memcmp(ta.data, tb.data, ta.nbytes) == 0,
                              "tensor %s differs after resuming from signal %d", ta.name, sigs[k]);
            }
            rb_checkpoint_destroy(ca);
            rb_checkpoint_destroy(cb);
        }
        in_dir(path, run, "log.csv");
        ck_assert_int_eq(csv_epochs(run, rows, 64), epoch + 1);
        for (int i = 0; i <= epoch; i++)
            ck_assert_int_eq(rows[i], i + 1);
    }
}
END_TEST

/* A second signal, of any of the three, ends the process at once, by that
 * signal. SIGSTOP holds the process while both are sent, so that they
 * arrive together whatever the machine's load. */
START_TEST(a_second_signal_stops_at_once)
{
    int err, status;
    pid_t pid = start_long_run("twice", &err);
    ck_assert_int_eq(kill(pid, SIGSTOP), 0);
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    ck_assert_int_eq(kill(pid, SIGHUP), 0);
    ck_assert_int_eq(kill(pid, SIGCONT), 0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    close(err);
    ck_assert_msg(WIFSIGNALED(status) && (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGHUP),
                  "status %d: the second signal did not end the process at once", status);
}
END_TEST

static Suite *run_dir_suite(void)
{
    Suite *s = suite_create("run_dir");
    TCase *tc = tcase_create("run_dir");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, logs_keep_every_row_up_to_the_checkpoint);
    tcase_add_test(tc, stale_temporary_files_are_removed_and_nothing_else);
    tcase_add_test(tc, one_writer_per_folder);
    tcase_add_test(tc, a_checkpoint_of_another_run_is_refused);
    tcase_add_test(tc, resume_without_a_first_checkpoint_says_how_to_start_over);
    tcase_add_test(tc, sigterm_and_sighup_stop_at_a_batch_and_resume);
    tcase_add_test(tc, a_second_signal_stops_at_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(run_dir_suite());
}
