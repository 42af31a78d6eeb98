/* The train and eval commands, run through the built robusta on a tiny
 * synthetic dataset (two easily told classes of 8x8 images): learning,
 * run-folder outputs, bit-identical resume, the NaN guard, bad options,
 * SIGINT, and eval agreeing with what training logged. */
#include "config.h"

#include <math.h>
#include <signal.h>
#include <time.h>

#include <json-c/json.h>

#include <robusta/robusta.h>

#include "testutil.h"
#include "trainutil.h"

static json_object *read_json(const char *path)
{
    json_object *j = json_object_from_file(path);
    ck_assert_msg(j != NULL, "%s does not parse as JSON", path);
    return j;
}

static double member(json_object *o, const char *key)
{
    json_object *v;
    ck_assert_msg(json_object_object_get_ex(o, key, &v), "no member %s", key);
    return json_object_get_double(v);
}

/* The i-th line (from 0) of log.jsonl in run folder `run`, parsed. */
static json_object *log_row(const char *run, int i)
{
    char path[PATH_MAX], line[4096];
    FILE *f;
    json_object *j = NULL;
    in_dir(path, run, "log.jsonl");
    f = fopen(path, "r");
    ck_assert(f != NULL);
    for (int k = 0; k <= i; k++)
        ck_assert_msg(fgets(line, sizeof line, f) != NULL, "log.jsonl has fewer than %d rows", i + 1);
    fclose(f);
    j = json_tokener_parse(line);
    ck_assert_msg(j != NULL, "log.jsonl row %d does not parse: %s", i, line);
    return j;
}

/* The name of the first tensor whose bytes differ between two checkpoints
 * of the same model (copied into `name`), or NULL when all are equal. */
static const char *first_different_tensor(const char *a, const char *b, char *name, size_t size)
{
    rb_checkpoint *ca, *cb;
    const char *found = NULL;
    ck_assert_int_eq(rb_checkpoint_load(&ca, a, 0), RB_OK);
    ck_assert_int_eq(rb_checkpoint_load(&cb, b, 0), RB_OK);
    ck_assert_uint_eq(rb_checkpoint_count(ca), rb_checkpoint_count(cb));
    for (size_t i = 0; i < rb_checkpoint_count(ca) && found == NULL; i++) {
        rb_checkpoint_tensor ta, tb;
        rb_checkpoint_get(ca, i, &ta);
        rb_checkpoint_get(cb, i, &tb);
        ck_assert_str_eq(ta.name, tb.name);
        ck_assert_uint_eq(ta.nbytes, tb.nbytes);
        if (memcmp(ta.data, tb.data, ta.nbytes) != 0) {
            snprintf(name, size, "%s", ta.name);
            found = name;
        }
    }
    rb_checkpoint_destroy(ca);
    rb_checkpoint_destroy(cb);
    return found;
}

static void same_tensors(const char *a, const char *b)
{
    char name[256];
    const char *differs = first_different_tensor(a, b, name, sizeof name);
    ck_assert_msg(differs == NULL, "tensor %s differs between %s and %s", differs, a, b);
}

/* Two run folders hold the same final model and the same last.rbt
 * (momentum buffers included): what a bit-identical resume promises. */
static void same_runs(const char *run_a, const char *run_b)
{
    char a[PATH_MAX], b[PATH_MAX];
    in_dir(a, run_a, "model.rbt");
    in_dir(b, run_b, "model.rbt");
    same_tensors(a, b);
    in_dir(a, run_a, "last.rbt");
    in_dir(b, run_b, "last.rbt");
    same_tensors(a, b);
}

START_TEST(training_learns_writes_its_folder_resumes_bit_identically_and_eval_agrees)
{
    char out[PATH_MAX], out2[PATH_MAX], path[PATH_MAX];
    static const char *const files[] = {"model.rbt", "last.rbt", "best.rbt", "log.csv", "log.jsonl", "config.json"};
    static const char *const keys[] = {"epoch",    "lr",      "train_loss", "train_acc",
                                       "test_loss", "test_acc", "seconds",    "images_per_second"};
    json_object *first, *last, *j;
    double test_acc;

    in_dir(out, "full", NULL);
    TRAIN(&r, out, "3");
    ck_assert_msg(r.code == 0, "train failed (%d): %s", r.code, r.err);
    ck_assert_msg(strstr(r.out, "trained 3 epochs") != NULL, "%s", r.out);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        in_dir(path, "full", files[i]);
        ck_assert_msg(exists(path), "%s is missing", path);
    }
    /* log.csv: header and three rows. */
    {
        char text[8192];
        FILE *f;
        size_t n;
        in_dir(path, "full", "log.csv");
        f = fopen(path, "r");
        n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        {
            static const char header[] =
                "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,images_per_second\n";
            ck_assert_msg(strncmp(text, header, sizeof header - 1) == 0, "%s", text);
        }
        ck_assert_int_eq(count_lines(text), 4);
    }
    first = log_row("full", 0);
    last = log_row("full", 2);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        (void)member(last, keys[i]);
    ck_assert(member(last, "epoch") == 3);
    ck_assert_msg(member(last, "train_loss") < member(first, "train_loss"), "loss did not go down: %g -> %g",
                  member(first, "train_loss"), member(last, "train_loss"));
    test_acc = member(last, "test_acc");
    ck_assert_msg(test_acc > 0.75, "test accuracy %g is not above chance", test_acc);
    json_object_put(first);
    /* config.json holds the options. */
    in_dir(path, "full", "config.json");
    j = read_json(path);
    ck_assert(member(j, "epochs") == 3 && member(j, "batch_size") == 16 && member(j, "lr") == 0.05);
    json_object_put(j);

    /* eval on the final model: the accuracy training logged. */
    in_dir(path, "full", "model.rbt");
    RUN(&r, "eval", "--ckpt", path, "--data", data, "--threads", "1", "--json");
    ck_assert_msg(r.code == 0, "eval failed: %s", r.err);
    j = json_tokener_parse(r.out);
    ck_assert_msg(j != NULL, "eval --json does not parse: %s", r.out);
    ck_assert_msg(fabs(member(j, "accuracy") - test_acc) < 1e-9, "eval %g, log %g", member(j, "accuracy"), test_acc);
    ck_assert_msg(fabs(member(j, "mean_loss") - member(last, "test_loss")) < 1e-6 * (1 + member(j, "mean_loss")),
                  "eval loss %g, log %g", member(j, "mean_loss"), member(last, "test_loss"));
    ck_assert(member(j, "count") == 40);
    {
        json_object *pc, *e;
        ck_assert(json_object_object_get_ex(j, "per_class", &pc));
        ck_assert_int_eq((int)json_object_array_length(pc), 2);
        e = json_object_array_get_idx(pc, 1);
        ck_assert(member(e, "count") == 20);
        ck_assert(json_object_object_get_ex(e, "name", &e));
        ck_assert_str_eq(json_object_get_string(e), "class_1");
    }
    json_object_put(j);
    json_object_put(last);
    RUN(&r, "eval", "--ckpt", path, "--data", data, "--threads", "1");
    ck_assert_msg(r.code == 0 && strstr(r.out, "accuracy") != NULL && strstr(r.out, "class_0") != NULL, "%s%s",
                  r.out, r.err);

    /* One epoch, then resume for two more: the same weights, bit for bit. */
    in_dir(out2, "resumed", NULL);
    TRAIN(&r, out2, "1");
    ck_assert_msg(r.code == 0, "train failed: %s", r.err);
    in_dir(path, "resumed", "model.rbt");
    ck_assert(exists(path));
    RUN(&r, "train", "--resume", out2, "--epochs", "3", "--lr", "1");
    ck_assert_int_eq(r.code, 2); /* only --epochs and --threads may change */
    ck_assert_msg(error_lines(r.err) == 1, "%s", r.err);
    RUN(&r, "train", "--resume", out2, "--epochs", "3");
    ck_assert_msg(r.code == 0, "resume failed: %s", r.err);
    same_runs("full", "resumed");
    last = log_row("resumed", 2);
    ck_assert(member(last, "epoch") == 3 && member(last, "test_acc") == test_acc);
    json_object_put(last);
    /* A finished run asked to train again into the same folder is refused. */
    TRAIN(&r, out2, "1");
    ck_assert_int_eq(r.code, 1);
    ck_assert_msg(strstr(r.err, "--resume") != NULL, "%s", r.err);
}
END_TEST

START_TEST(divergence_stops_naming_the_step_and_keeps_the_last_good_checkpoint)
{
    char out[PATH_MAX], path[PATH_MAX];
    in_dir(out, "nan", NULL);
    RUN(&r, "train", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--data", data, "--out", out,
        "--epochs", "2", "--batch-size", "16", "--lr", "1e30", "--threads", "1");
    ck_assert_int_eq(r.code, 1);
    ck_assert_msg(error_lines(r.err) == 1, "%s", r.err);
    ck_assert_msg(strstr(r.err, "diverged at epoch 1 batch") != NULL && strstr(r.err, "gradient") != NULL, "%s",
                  r.err);
    in_dir(path, "nan", "last.rbt");
    ck_assert(exists(path));
    in_dir(path, "nan", "model.rbt");
    ck_assert(!exists(path));
}
END_TEST

START_TEST(bad_options_are_usage_errors_of_one_line)
{
    char out[PATH_MAX];
    in_dir(out, "bad", NULL);
    RUN(&r, "train", "--arch", "resnet18", "--data", "bogus:/nowhere", "--out", out);
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(error_lines(r.err) == 1, "%s", r.err);
    RUN(&r, "train", "--arch", "resnet18", "--data", data, "--out", out, "--epochs", "0");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(error_lines(r.err) == 1, "%s", r.err);
    RUN(&r, "train", "--arch", "resnet18", "--data", data);
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(error_lines(r.err) == 1, "%s", r.err);
    ck_assert_msg(strstr(r.err, "--out") != NULL, "%s", r.err);
    RUN(&r, "train", "--arch", "resnet18", "--data", data, "--out", out, "--schedule", "sawtooth");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(error_lines(r.err) == 1, "%s", r.err);
    RUN(&r, "eval", "--ckpt", out, "--data", data, "--split", "valid");
    ck_assert_int_eq(r.code, 2);
    ck_assert(!exists(out));
    /* Classes the dataset does not have, and a folder that cannot be made. */
    RUN(&r, "train", "--arch", "resnet18", "--data", data, "--out", out, "--classes", "0-7");
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, "0-7") != NULL, "%s", r.err);
    RUN(&r, "train", "--arch", "resnet18", "--data", data, "--out", "/dev/null/run");
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, "/dev/null/run") != NULL, "%s", r.err);
}
END_TEST

START_TEST(an_existing_run_is_kept_unless_forced)
{
    char out[PATH_MAX], model[PATH_MAX];
    struct stat before, after;
    unsigned char *first, *second;
    size_t first_size, second_size;
    in_dir(out, "twice", NULL);
    in_dir(model, "twice", "model.rbt");
    RUN(&r, "train", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--data", data, "--out", out,
        "--epochs", "1", "--batch-size", "16", "--threads", "1");
    ck_assert_msg(r.code == 0, "%s", r.err);
    ck_assert_int_eq(stat(model, &before), 0);
    RUN(&r, "train", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--data", data, "--out", out,
        "--epochs", "1", "--batch-size", "16", "--threads", "1");
    ck_assert_int_eq(r.code, 1);
    ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, "already holds a run") != NULL &&
                      strstr(r.err, "--force") != NULL, "%s", r.err);
    ck_assert_int_eq(stat(model, &after), 0);
    ck_assert(before.st_ino == after.st_ino && before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
    first = read_whole_file(model, &first_size);
    RUN(&r, "train", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--data", data, "--out", out,
        "--epochs", "1", "--batch-size", "16", "--threads", "1", "--seed", "3", "--force");
    ck_assert_msg(r.code == 0, "%s", r.err);
    /* A new model (seed 3): its bytes, not its inode, which the file
     * system may hand out again once --force has removed the old run. */
    second = read_whole_file(model, &second_size);
    ck_assert(first_size != second_size || memcmp(first, second, first_size) != 0);
    free(first);
    free(second);
}
END_TEST

START_TEST(sigint_stops_at_a_batch_and_leaves_a_resumable_run)
{
    char out[PATH_MAX], path[PATH_MAX], errp[] = "/tmp/robusta-sigint-XXXXXX";
    int err = mkstemp(errp), status;
    pid_t pid;
    in_dir(out, "int", NULL);
    ck_assert(err >= 0);
    unlink(errp);
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        const char *argv[] = {test_env("RB_TEST_ROBUSTA"), "train", "--arch", "resnet18", "--stem", "cifar",
                              "--width", "0.125", "--data", data, "--out", out, "--epochs", "1000",
                              "--batch-size", "16", "--threads", "1", NULL};
        dup2(err, 2);
        signal(SIGINT, SIG_DFL); /* a background make check ignores it, and robusta keeps what is ignored */
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    /* Wait until the first epoch is written, then interrupt. */
    in_dir(path, "int", "log.jsonl");
    for (int i = 0; i < 400; i++) {
        struct stat st;
        if (stat(path, &st) == 0 && st.st_size > 0)
            break;
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    ck_assert_int_eq(kill(pid, SIGINT), 0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    slurp(err, r.err, sizeof r.err);
    close(err);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %d: %s", status, r.err);
    ck_assert_msg(error_lines(r.err) == 1, "%s", r.err);
    ck_assert_msg(strstr(r.err, "--resume") != NULL, "%s", r.err);
    /* It resumes: asking for the epochs done plus one finishes. */
    {
        json_object *meta;
        rb_checkpoint *ck;
        json_object *tr, *ep;
        char epochs[32];
        in_dir(path, "int", "last.rbt");
        ck_assert_int_eq(rb_checkpoint_load(&ck, path, RB_CHECKPOINT_INDEX_ONLY), RB_OK);
        meta = json_tokener_parse(rb_checkpoint_metadata(ck));
        ck_assert(json_object_object_get_ex(meta, "training", &tr) && json_object_object_get_ex(tr, "epoch", &ep));
        snprintf(epochs, sizeof epochs, "%lld", (long long)json_object_get_int64(ep) + 1);
        json_object_put(meta);
        rb_checkpoint_destroy(ck);
        RUN(&r, "train", "--resume", out, "--epochs", epochs);
        ck_assert_msg(r.code == 0, "resume failed: %s", r.err);
        in_dir(path, "int", "model.rbt");
        ck_assert(exists(path));
    }
}
END_TEST


/* eval --attack: eps 0 leaves robust == clean exactly; the JSON has the new
 * members; an unknown attack is a usage error of one line. Adversarial
 * training logs adv_train_acc and robust_test_acc, records its attack and
 * resumes with it. */
START_TEST(adversarial_training_and_robust_eval)
{
    char std_out[PATH_MAX], adv_out[PATH_MAX], path[PATH_MAX];
    json_object *j, *row, *v;
    double std_robust, adv_robust;

    in_dir(std_out, "std", NULL);
    TRAIN(&r, std_out, "2");
    ck_assert_msg(r.code == 0, "train failed: %s", r.err);
    in_dir(path, "std", "model.rbt");

    RUN(&r, "eval", "--ckpt", path, "--data", data, "--threads", "1", "--json", "--attack", "pgd-linf", "--eps", "0",
        "--steps", "3");
    ck_assert_msg(r.code == 0, "eval --attack failed: %s", r.err);
    j = json_tokener_parse(r.out);
    ck_assert_msg(j != NULL, "eval --attack --json does not parse: %s", r.out);
    ck_assert_msg(member(j, "robust_accuracy") == member(j, "accuracy"), "eps 0: robust %g, clean %g",
                  member(j, "robust_accuracy"), member(j, "accuracy"));
    ck_assert(json_object_object_get_ex(j, "robust_per_class", &v));
    ck_assert_int_eq((int)json_object_array_length(v), 2);
    {
        json_object *pc;
        ck_assert(json_object_object_get_ex(j, "per_class", &pc));
        for (int k = 0; k < 2; k++)
            ck_assert(member(json_object_array_get_idx(v, k), "correct") ==
                      member(json_object_array_get_idx(pc, k), "correct"));
    }
    json_object_put(j);

    RUN(&r, "eval", "--ckpt", path, "--data", data, "--threads", "1", "--json", "--attack", "pgd-linf", "--eps",
        "0.3", "--step-size", "0.1", "--steps", "3", "--random-start", "--seed", "7");
    ck_assert_msg(r.code == 0, "eval --attack failed: %s", r.err);
    j = json_tokener_parse(r.out);
    ck_assert_msg(j != NULL, "%s", r.out);
    std_robust = member(j, "robust_accuracy");
    ck_assert(std_robust >= 0 && std_robust <= member(j, "accuracy"));
    json_object_put(j);
    RUN(&r, "eval", "--ckpt", path, "--data", data, "--threads", "1", "--attack", "pgd-linf", "--eps", "0.1");
    ck_assert_msg(r.code == 0 && strstr(r.out, "robust accuracy") != NULL, "%s%s", r.out, r.err);

    RUN(&r, "eval", "--ckpt", path, "--data", data, "--attack", "no-such-attack");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(error_lines(r.err) == 1, "%s", r.err);
    RUN(&r, "eval", "--ckpt", path, "--data", data, "--steps", "3");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(error_lines(r.err) == 1, "%s", r.err);
    RUN(&r, "train", "--arch", "resnet18", "--data", data, "--out", std_out, "--attack", "no-such-attack");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(error_lines(r.err) == 1, "%s", r.err);

    /* Adversarial training: one epoch, resumed for a second. */
    in_dir(adv_out, "adv", NULL);
    TRAIN(&r, adv_out, "1", , "--attack", "pgd-linf", "--eps", "0.3", "--step-size", "0.1", "--steps", "3",
          "--random-start", "--eps-warmup", "1");
    ck_assert_msg(r.code == 0, "adversarial train failed: %s", r.err);
    RUN(&r, "train", "--resume", adv_out, "--epochs", "2");
    ck_assert_msg(r.code == 0, "adversarial resume failed: %s", r.err);
    ck_assert_msg(strstr(r.out, "robust test accuracy") != NULL, "%s", r.out);
    {
        char text[8192];
        FILE *f;
        size_t n;
        in_dir(path, "adv", "log.csv");
        f = fopen(path, "r");
        n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        ck_assert_msg(strncmp(text, "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,images_per_second,"
                                    "adv_train_acc,robust_test_acc\n", 97) == 0, "%s", text);
        ck_assert_int_eq(count_lines(text), 3);
    }
    for (int i = 0; i < 2; i++) {
        row = log_row("adv", i);
        ck_assert(member(row, "adv_train_acc") >= 0 && member(row, "adv_train_acc") <= 1);
        ck_assert(member(row, "robust_test_acc") >= 0 && member(row, "robust_test_acc") <= 1);
        if (i == 1)
            adv_robust = member(row, "robust_test_acc");
        json_object_put(row);
    }
    /* The attack is recorded in config.json and in the checkpoint. */
    in_dir(path, "adv", "config.json");
    j = read_json(path);
    ck_assert(json_object_object_get_ex(j, "attack", &v));
    ck_assert_str_eq(json_object_get_string(v), "pgd-linf");
    ck_assert(json_object_object_get_ex(j, "attack_options", &v) && json_object_object_get_ex(v, "eps", &v));
    ck_assert(member(j, "attack_steps") == 3 && member(j, "eps_warmup") == 1);
    json_object_put(j);
    {
        rb_checkpoint *ck;
        json_object *tr;
        in_dir(path, "adv", "best.rbt");
        ck_assert(exists(path));
        in_dir(path, "adv", "last.rbt");
        ck_assert_int_eq(rb_checkpoint_load(&ck, path, RB_CHECKPOINT_INDEX_ONLY), RB_OK);
        j = json_tokener_parse(rb_checkpoint_metadata(ck));
        rb_checkpoint_destroy(ck);
        ck_assert(json_object_object_get_ex(j, "training", &tr) && json_object_object_get_ex(tr, "attack", &v));
        ck_assert(member(v, "steps") == 3 && member(v, "random_start") == 1);
        ck_assert(json_object_object_get_ex(v, "name", &tr));
        ck_assert_str_eq(json_object_get_string(tr), "pgd-linf");
        json_object_put(j);
    }
    /* The same attack on both models: the robust test accuracy the log
     * reports is eval --attack's (random start seeded by --seed 7). */
    in_dir(path, "adv", "model.rbt");
    RUN(&r, "eval", "--ckpt", path, "--data", data, "--threads", "1", "--json", "--attack", "pgd-linf", "--eps",
        "0.3", "--step-size", "0.1", "--steps", "3", "--random-start", "--seed", "7", "--batch-size", "7");
    ck_assert_msg(r.code == 0, "%s", r.err);
    j = json_tokener_parse(r.out);
    ck_assert_msg(fabs(member(j, "robust_accuracy") - adv_robust) < 1e-9, "eval %g, log %g",
                  member(j, "robust_accuracy"), adv_robust);
    json_object_put(j);
    fprintf(stderr, "robust test accuracy (pgd-linf eps 0.3, 3 steps): standard %g, adversarial %g\n",
            std_robust, adv_robust);
    /* On this data a standard model falls to nearly 0; two epochs of
     * adversarial training keep clearly more. */
    ck_assert_msg(adv_robust >= std_robust, "adversarial %g < standard %g", adv_robust, std_robust);
}
END_TEST

/* Adversarial training resumes bit for bit too: 3 epochs in one go, and 1
 * epoch interrupted then resumed to 3, give the same weights, momentum and
 * batch-norm statistics. The attack has a random start (keyed by seed,
 * epoch and example) and an eps warm-up spanning the interruption, so the
 * resumed run must restore both. */
START_TEST(adversarial_training_resumes_bit_identically)
{
    char full[PATH_MAX], part[PATH_MAX];
    in_dir(full, "adv-full", NULL);
    in_dir(part, "adv-part", NULL);
    TRAIN(&r, full, "3", , "--attack", "pgd-l2", "--eps", "0.5", "--step-size", "0.2", "--steps", "2",
          "--random-start", "--eps-warmup", "2");
    ck_assert_msg(r.code == 0, "adversarial train failed: %s", r.err);
    TRAIN(&r, part, "1", , "--attack", "pgd-l2", "--eps", "0.5", "--step-size", "0.2", "--steps", "2",
          "--random-start", "--eps-warmup", "2");
    ck_assert_msg(r.code == 0, "adversarial train failed: %s", r.err);
    RUN(&r, "train", "--resume", part, "--epochs", "3", "--threads", "1");
    ck_assert_msg(r.code == 0, "adversarial resume failed: %s", r.err);
    same_runs("adv-full", "adv-part");
    {
        json_object *x = log_row("adv-full", 2), *y = log_row("adv-part", 2);
        ck_assert(member(x, "epoch") == 3 && member(y, "epoch") == 3);
        ck_assert(member(x, "train_loss") == member(y, "train_loss"));
        ck_assert(member(x, "adv_train_acc") == member(y, "adv_train_acc"));
        ck_assert(member(x, "robust_test_acc") == member(y, "robust_test_acc"));
        json_object_put(x);
        json_object_put(y);
    }
}
END_TEST

/* --precision bf16: learns, is recorded in config.json and kept on resume
 * (bit-identical to an uninterrupted bf16 run), really changes the
 * arithmetic, and eval in bf16 agrees with eval in fp32 on the same model. */
START_TEST(bf16_training_learns_is_recorded_and_resumes_bit_identically)
{
    char full[PATH_MAX], part[PATH_MAX], f32[PATH_MAX], a[PATH_MAX], b[PATH_MAX], name[256];
    json_object *j, *last;
    double acc32, acc16;
    in_dir(full, "bf16-full", NULL);
    in_dir(part, "bf16-part", NULL);
    in_dir(f32, "f32-part", NULL);
    if (!rb_precision_available(RB_PRECISION_BF16)) {
        /* a CPU without oneDNN's bf16 convolutions: refused before the run
         * folder exists, in one line */
    TRAIN(&r, full, "3", , "--precision", "bf16");
        ck_assert_int_eq(r.code, 2);
        ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, "no bf16 convolutions") != NULL, "%s", r.err);
        ck_assert_int_eq(access(full, F_OK), -1);
        printf("SKIP: bf16 training (this CPU's oneDNN has no bf16 convolutions; the refusal checked)\n");
        return;
    }
    TRAIN(&r, full, "3", , "--precision", "bf16");
    ck_assert_msg(r.code == 0, "bf16 train failed: %s", r.err);
    last = log_row("bf16-full", 2);
    ck_assert_msg(member(last, "test_acc") > 0.75, "bf16 test accuracy %g is not above chance",
                  member(last, "test_acc"));
    json_object_put(last);
    in_dir(a, "bf16-full", "config.json");
    j = read_json(a);
    {
        json_object *v;
        ck_assert(json_object_object_get_ex(j, "precision", &v));
        ck_assert_str_eq(json_object_get_string(v), "bf16");
    }
    json_object_put(j);

    TRAIN(&r, part, "1", , "--precision", "bf16");
    ck_assert_msg(r.code == 0, "bf16 train failed: %s", r.err);
    TRAIN(&r, f32, "1", , "--precision", "f32");
    ck_assert_msg(r.code == 0, "f32 train failed: %s", r.err);
    in_dir(a, "bf16-part", "model.rbt");
    in_dir(b, "f32-part", "model.rbt");
    ck_assert_msg(first_different_tensor(a, b, name, sizeof name) != NULL,
                  "bf16 and f32 runs gave identical weights: --precision did nothing");
    /* the precision is the run's: it cannot change on resume */
    RUN(&r, "train", "--resume", part, "--epochs", "3", "--threads", "1", "--precision", "f32");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, "--precision") != NULL, "%s", r.err);
    RUN(&r, "train", "--resume", part, "--epochs", "3", "--threads", "1");
    ck_assert_msg(r.code == 0, "bf16 resume failed: %s", r.err);
    same_runs("bf16-full", "bf16-part");

    /* eval: the same model in both precisions */
    in_dir(a, "bf16-full", "model.rbt");
    RUN(&r, "eval", "--ckpt", a, "--data", data, "--threads", "1", "--json");
    ck_assert_msg(r.code == 0, "eval failed: %s", r.err);
    j = json_tokener_parse(r.out);
    ck_assert_msg(j != NULL, "%s", r.out);
    acc32 = member(j, "accuracy");
    json_object_put(j);
    RUN(&r, "eval", "--ckpt", a, "--data", data, "--threads", "1", "--json", "--precision", "bf16");
    ck_assert_msg(r.code == 0, "bf16 eval failed: %s", r.err);
    j = json_tokener_parse(r.out);
    ck_assert_msg(j != NULL, "%s", r.out);
    acc16 = member(j, "accuracy");
    json_object_put(j);
    /* 40 test images: bf16 rounding may flip a borderline one or two */
    ck_assert_msg(fabs(acc32 - acc16) <= 2.0 / 40 + 1e-9, "eval accuracy f32 %g, bf16 %g", acc32, acc16);

    RUN(&r, "eval", "--ckpt", a, "--data", data, "--precision", "fp16");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, "fp16") != NULL, "%s", r.err);
}
END_TEST

/* --conv-algorithm: recorded in config.json (winograd by default), really
 * changes the arithmetic, cannot change on resume, and a run written before
 * the option existed (no conv_algorithm in config.json) resumes as direct:
 * bit-identical to an uninterrupted direct run. */
START_TEST(conv_algorithm_is_recorded_and_kept_on_resume)
{
    char full[PATH_MAX], part[PATH_MAX], wino[PATH_MAX], a[PATH_MAX], b[PATH_MAX], name[256];
    json_object *j, *v;
    in_dir(full, "direct-full", NULL);
    in_dir(part, "direct-part", NULL);
    in_dir(wino, "wino-part", NULL);
    TRAIN(&r, full, "2", , "--conv-algorithm", "direct");
    ck_assert_msg(r.code == 0, "direct train failed: %s", r.err);
    TRAIN(&r, part, "1", , "--conv-algorithm", "direct");
    ck_assert_msg(r.code == 0, "direct train failed: %s", r.err);
    TRAIN(&r, wino, "1", );
    ck_assert_msg(r.code == 0, "train failed: %s", r.err);
    in_dir(a, "wino-part", "config.json");
    j = read_json(a);
    ck_assert(json_object_object_get_ex(j, "conv_algorithm", &v));
    ck_assert_str_eq(json_object_get_string(v), "winograd");
    json_object_put(j);
    in_dir(a, "direct-part", "model.rbt");
    in_dir(b, "wino-part", "model.rbt");
    if (rb_conv_algorithm_available(RB_CONV_WINOGRAD))
        ck_assert_msg(first_different_tensor(a, b, name, sizeof name) != NULL,
                      "direct and Winograd runs gave identical weights: --conv-algorithm did nothing");
    else { /* Winograd asked for, direct ran: the same arithmetic */
        ck_assert_msg(first_different_tensor(a, b, name, sizeof name) == NULL,
                      "without Winograd kernels, '%s' still differs from a direct run", name);
        printf("SKIP: Winograd changing the arithmetic (this CPU's oneDNN has no Winograd kernels)\n");
    }

    RUN(&r, "train", "--resume", part, "--epochs", "2", "--threads", "1", "--conv-algorithm", "winograd");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, "--conv-algorithm") != NULL, "%s", r.err);

    /* as written before the option existed */
    in_dir(a, "direct-part", "config.json");
    j = read_json(a);
    ck_assert(json_object_object_get_ex(j, "conv_algorithm", &v));
    ck_assert_str_eq(json_object_get_string(v), "direct");
    json_object_object_del(j, "conv_algorithm");
    ck_assert_int_eq(json_object_to_file_ext(a, j, JSON_C_TO_STRING_PRETTY), 0);
    json_object_put(j);
    RUN(&r, "train", "--resume", part, "--epochs", "2", "--threads", "1");
    ck_assert_msg(r.code == 0, "resume failed: %s", r.err);
    same_runs("direct-full", "direct-part");

    RUN(&r, "eval", "--ckpt", b, "--data", data, "--conv-algorithm", "fft");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, "fft") != NULL, "%s", r.err);
}
END_TEST

/* --tune: config.json records the mode and the plan (the machine it was
 * chosen on and one choice per convolution shape), a resumed run follows
 * it bit for bit, a plan chosen on another machine is one warning (or,
 * with --strict-resume, one refusal), a corrupt plan one error naming the
 * file, and --tune cannot change on resume. */
START_TEST(the_tuned_plan_is_recorded_and_followed_on_resume)
{
    char part[PATH_MAX], full[PATH_MAX], cfg[PATH_MAX], machine[300];
    json_object *j, *plan, *v;
    in_dir(part, "tuned-part", NULL);
    in_dir(full, "tuned-full", NULL);
    TRAIN(&r, part, "1", , "--tune", "cached");
    ck_assert_msg(r.code == 0, "train failed: %s", r.err);
    TRAIN(&r, full, "2", );
    ck_assert_msg(r.code == 0, "train failed: %s", r.err);
    in_dir(cfg, "tuned-part", "config.json");
    j = read_json(cfg);
    ck_assert(json_object_object_get_ex(j, "tune", &v));
    ck_assert_str_eq(json_object_get_string(v), "cached");
    ck_assert(json_object_object_get_ex(j, "plan", &plan));
    ck_assert_int_eq(rb_tune_machine(1, machine, sizeof machine), RB_OK);
    ck_assert(json_object_object_get_ex(plan, "machine", &v));
    ck_assert_str_eq(json_object_get_string(v), machine);
    ck_assert(json_object_object_get_ex(plan, "choices", &v));
    ck_assert_int_ge(json_object_object_length(v), 4); /* stem, 3x3 blocks, strided, 1x1 shortcuts */
    {
        json_object_object_foreach(v, key, choice)
        {
            char alg[16], dt[8], wg[16];
            ck_assert_msg(strncmp(key, "conv ", 5) == 0 && strstr(key, " b16 f32 winograd f") != NULL, "%s", key);
            ck_assert_int_eq(sscanf(json_object_get_string(choice), "%15s %7s weight-grad=%15s", alg, dt, wg), 3);
            ck_assert(strcmp(alg, "direct") == 0 || strcmp(alg, "winograd") == 0);
            ck_assert_str_eq(dt, "f32");
            ck_assert(strcmp(wg, "onednn") == 0 || strcmp(wg, "gemm") == 0);
        }
    }
    json_object_put(j);
    RUN(&r, "train", "--resume", part, "--epochs", "2", "--tune", "full");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, "--tune") != NULL, "%s", r.err);
    RUN(&r, "train", "--resume", part, "--epochs", "2");
    ck_assert_msg(r.code == 0, "resume failed: %s", r.err);
    same_runs("tuned-full", "tuned-part");

    /* chosen elsewhere */
    j = read_json(cfg);
    ck_assert(json_object_object_get_ex(j, "plan", &plan));
    json_object_object_add(plan, "machine", json_object_new_string("Another CPU; oneDNN 9.9.9, avx10 kernels; 1 thread"));
    ck_assert_int_eq(json_object_to_file_ext(cfg, j, JSON_C_TO_STRING_PRETTY), 0);
    json_object_put(j);
    RUN(&r, "train", "--resume", part, "--epochs", "3", "--strict-resume");
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, "\"Another CPU; oneDNN 9.9.9, avx10 kernels; 1 thread\"") &&
                      strstr(r.err, "(--strict-resume)") != NULL,
                  "%s", r.err);
    RUN(&r, "train", "--resume", part, "--epochs", "3");
    ck_assert_msg(r.code == 0, "resume failed: %s", r.err);
    ck_assert_msg(strstr(r.err, "warning: --resume ") != NULL &&
                      strstr(r.err, "results will differ from the original run's (--strict-resume refuses)") != NULL,
                  "%s", r.err);

    /* a corrupt plan */
    j = read_json(cfg);
    ck_assert(json_object_object_get_ex(j, "plan", &plan));
    json_object_object_add(plan, "choices", json_object_new_int(5));
    ck_assert_int_eq(json_object_to_file_ext(cfg, j, JSON_C_TO_STRING_PRETTY), 0);
    json_object_put(j);
    RUN(&r, "train", "--resume", part, "--epochs", "4");
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(error_lines(r.err) == 1 && strstr(r.err, "config.json: 'plan' is not {") != NULL, "%s", r.err);
}
END_TEST

/* rb_train_config_default holds what robusta/train.h documents (the train
 * command's defaults); a run from it writes config.json with the members,
 * in the order, that run folders of earlier versions have (resume reads
 * them by these names). */
START_TEST(the_default_configuration_trains_and_config_json_keeps_its_members)
{
    static const char *const members[] = {
        "command",   "robusta",        "run_id",         "arch",      "arch_options",   "data",       "out",
        "epochs",    "batch_size",     "eval_batch_size", "lr",       "momentum",       "weight_decay", "nesterov",
        "schedule",  "seed",           "threads",        "loader_threads", "precision", "conv_algorithm", "classes",
        "per_class", "image_size",     "channels",       "augment",   "transform",  "eval_every",     "sync_bn",
        "tune",      "plan",           "machine",        "plugins"};
    rb_train_config c = rb_train_config_default();
    rb_registry *reg = NULL;
    const rb_plugin *resnet = NULL;
    rb_params *p = NULL;
    rb_train_result res;
    char out[PATH_MAX], path[PATH_MAX];
    json_object *j, *v;
    size_t i = 0;

    ck_assert_ptr_null(c.arch);
    ck_assert_ptr_null(c.data);
    ck_assert_ptr_null(c.out_dir);
    ck_assert(c.seed == 0 && c.threads == 0 && c.loader_threads == 1 && c.augment && !c.quiet && !c.force);
    ck_assert(c.precision == RB_PRECISION_F32 && c.conv_algorithm == RB_CONV_WINOGRAD && c.tune == RB_TUNE_CACHED);
    ck_assert(c.classes == NULL && c.per_class == 0 && c.image_size == 0 && c.channels == 0);
    ck_assert(c.training.epochs == 10 && c.training.batch_size == 128 && c.training.eval_batch_size == 256);
    ck_assert(c.training.lr == 0.1 && c.training.momentum == 0.9 && c.training.weight_decay == 5e-4);
    ck_assert(!c.training.nesterov && c.training.schedule == NULL && c.training.eval_every == 1);
    ck_assert(!c.training.sync_bn);
    ck_assert(c.adversarial.attack == NULL && c.adversarial.eps_warmup == 0);
    ck_assert(c.adversarial.attack_options.steps == 10 && c.adversarial.attack_options.restarts == 1);
    ck_assert(c.transfer.source == NULL && c.transfer.fixed_features && !c.transfer.bn_update);
    ck_assert(c.transfer.feature_cache == RB_FEATURE_CACHE_F32 && c.transfer.feature_cache_limit == 0);
    /* what a run must be told */
    ck_assert_int_eq(rb_train_config_check(&c), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "training needs an architecture (--arch)");

    ck_assert_int_eq(rb_registry_create(&reg), RB_OK);
    ck_assert_int_eq(rb_registry_load_path(reg, test_env("RB_PLUGIN_PATH")), RB_OK);
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_ARCH, "resnet", &resnet), RB_OK);
    ck_assert_int_eq(rb_params_create(&p, resnet->params), RB_OK);
    ck_assert_int_eq(rb_params_set(p, "depth", "18"), RB_OK);
    ck_assert_int_eq(rb_params_set(p, "stem", "cifar"), RB_OK);
    ck_assert_int_eq(rb_params_set(p, "width", "0.125"), RB_OK);
    in_dir(out, "defaults", NULL);
    c.arch = resnet;
    c.arch_params = p;
    c.data = data;
    c.out_dir = out;
    c.threads = 1;
    c.quiet = true;
    c.training.epochs = 1;
    c.training.batch_size = 16;
    ck_assert_msg(rb_train(&c, &res) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(res.epochs_done, 1);

    in_dir(path, "defaults", "config.json");
    j = read_json(path);
    {
        json_object_object_foreach(j, key, val)
        {
            (void)val;
            ck_assert_msg(i < sizeof members / sizeof members[0], "config.json has an extra member '%s'", key);
            ck_assert_str_eq(key, members[i]);
            i++;
        }
    }
    ck_assert_uint_eq(i, sizeof members / sizeof members[0]);
    ck_assert(member(j, "eval_batch_size") == 256 && member(j, "lr") == 0.1 && member(j, "loader_threads") == 1);
    ck_assert(json_object_object_get_ex(j, "schedule", &v));
    ck_assert_str_eq(json_object_get_string(v), "constant");
    ck_assert(json_object_object_get_ex(j, "arch_options", &v));
    ck_assert_str_eq(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
                     "{\"depth\":\"18\",\"width\":\"0.125\",\"stem\":\"cifar\"}");
    {
        /* where and with what it ran, for robusta report */
        char machine[512], plugins[128];
        ck_assert_int_eq(rb_machine_info(machine, sizeof machine), RB_OK);
        ck_assert(json_object_object_get_ex(j, "machine", &v));
        ck_assert_str_eq(json_object_get_string(v), machine);
        ck_assert(json_object_object_get_ex(j, "plugins", &v));
        snprintf(plugins, sizeof plugins, "{\"resnet\":\"%s\"}", resnet->version);
        ck_assert_str_eq(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), plugins);
    }
    json_object_put(j);
    /* Batch-norm trained in training mode: its running mean moved from 0
     * (the transfer part's fixed_features, true by default, means nothing
     * without a source). */
    {
        rb_checkpoint *ck = NULL;
        rb_checkpoint_tensor bn;
        bool moved = false;
        in_dir(path, "defaults", "model.rbt");
        ck_assert_int_eq(rb_checkpoint_load(&ck, path, 0), RB_OK);
        ck_assert_int_eq(rb_checkpoint_find(ck, "bn1.running_mean", &bn), RB_OK);
        for (int64_t k = 0; k < bn.numel; k++)
            moved |= ((const float *)bn.data)[k] != 0.0f;
        ck_assert_msg(moved, "bn1.running_mean is still 0: batch-norm did not train");
        rb_checkpoint_destroy(ck);
    }
    rb_params_destroy(p);
    rb_registry_destroy(reg);
}
END_TEST

static Suite *train_suite(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, training_learns_writes_its_folder_resumes_bit_identically_and_eval_agrees);
    tcase_add_test(tc, an_existing_run_is_kept_unless_forced);
    tcase_add_test(tc, divergence_stops_naming_the_step_and_keeps_the_last_good_checkpoint);
    tcase_add_test(tc, bad_options_are_usage_errors_of_one_line);
    tcase_add_test(tc, sigint_stops_at_a_batch_and_leaves_a_resumable_run);
    tcase_add_test(tc, adversarial_training_and_robust_eval);
    tcase_add_test(tc, adversarial_training_resumes_bit_identically);
    tcase_add_test(tc, bf16_training_learns_is_recorded_and_resumes_bit_identically);
    tcase_add_test(tc, conv_algorithm_is_recorded_and_kept_on_resume);
    tcase_add_test(tc, the_tuned_plan_is_recorded_and_followed_on_resume);
    tcase_add_test(tc, the_default_configuration_trains_and_config_json_keeps_its_members);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(train_suite());
}
