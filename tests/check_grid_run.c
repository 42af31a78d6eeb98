/* robusta grid and robusta demo, end to end: a small grid on synthetic data
 * runs, reports, skips what is done, survives being killed, splits into
 * shards; bad grids are refused; demo --quick on Fashion-MNIST gives sane
 * outputs (SKIP without the dataset). */
#include "config.h"

#include <math.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include <json-c/json.h>

#include <robusta/robusta.h>

#include "testdata.h"
#include "testutil.h"

#define RUN(r, ...) run_robusta(r, NULL, (const char *const[]){__VA_ARGS__, NULL})
/* With the grid's progress lines ("done before", "training"), which make
 * check's RB_LOG=warn would hide. */
#define RUN_INFO(r, ...) run_robusta(r, "RB_LOG=info", (const char *const[]){__VA_ARGS__, NULL})

static run_result r;
static char dir[256], grid_file[PATH_MAX];


/* A grid of 2 sources (eps 0 and 0.5) x 1 target x 2 modes x 2 seeds. The
 * extra lines go to line 9 ([arch r18]) and line 21 ([target t3]). */
static void write_grid_with(const char *path, const char *extra_arch_line, const char *extra_target_line,
                            const char *eps)
{
    char text[8192];
    snprintf(text, sizeof text,
             "[grid]\nname = tiny\nthreads = 1\n\n"
             "[arch r18]\narch = resnet18\nstem = cifar\nwidth = 0.125\n%s\n"
             "[source]\ndata = npy:%s/sx.npy,%s/sy.npy;%s/stx.npy,%s/sty.npy\nepochs = 1\nbatch-size = 16\n"
             "lr = 0.05\nschedule = constant\neps = %s\nsteps = 1\n\n"
             "[target t3]\ndata = npy:%s/tx.npy,%s/ty.npy;%s/ttx.npy,%s/tty.npy\n%s\n"
             "[transfer]\nseeds = 0, 1\nepochs = 2\nbatch-size = 8\n",
             extra_arch_line, dir, dir, dir, dir, eps, dir, dir, dir, dir, extra_target_line);
    write_text(path, text);
}

static void write_grid(const char *path, const char *extra_arch_line, const char *eps)
{
    write_grid_with(path, extra_arch_line, "", eps);
}

static void setup_once(void)
{
    make_temp_dir(dir, sizeof dir);
    write_bar_images(dir, "sx.npy", "sy.npy", 64, 4, 0, 1);
    write_bar_images(dir, "stx.npy", "sty.npy", 24, 4, 0, 2);
    write_bar_images(dir, "tx.npy", "ty.npy", 36, 3, 4, 3);
    write_bar_images(dir, "ttx.npy", "tty.npy", 18, 3, 4, 4);
    snprintf(grid_file, sizeof grid_file, "%s/tiny.ini", dir);
    write_grid(grid_file, "", "0, 0.5");
}

static void teardown_once(void)
{
    remove_temp_dir(dir);
}

static char *slurp_file(const char *path)
{
    size_t size;
    unsigned char *bytes = read_whole_file(path, &size);
    char *text = malloc(size + 1);
    ck_assert_msg(bytes != NULL, "cannot read %s", path);
    memcpy(text, bytes, size);
    text[size] = '\0';
    free(bytes);
    return text;
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Each data row of results.csv: target_acc in [0, 1]. Returns the rows. */
static int check_csv(const char *path)
{
    rb_grid_result *rows = NULL;
    size_t n = 0;
    ck_assert_msg(rb_grid_read_csv(path, &rows, &n) == RB_OK, "%s: %s", path, rb_last_error());
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(rows[i].target_acc >= 0 && rows[i].target_acc <= 1, "row %zu: accuracy %g", i,
                      rows[i].target_acc);
        ck_assert_msg(rows[i].source_test_acc >= 0 && rows[i].source_test_acc <= 1, "row %zu: source accuracy %g",
                      i, rows[i].source_test_acc);
        ck_assert(strcmp(rows[i].mode, "fixed") == 0 || strcmp(rows[i].mode, "full") == 0);
        ck_assert_str_eq(rows[i].metric, "accuracy");
    }
    free(rows);
    return (int)n;
}

START_TEST(a_grid_runs_reports_and_skips_what_is_done)
{
    char out[512], path[PATH_MAX];
    char *table, *csv_before, *csv_after;
    snprintf(out, sizeof out, "%s/run", dir);
    RUN(&r, "grid", grid_file, "--out", out);
    ck_assert_msg(r.code == 0, "grid failed (%d): %s", r.code, r.err);
    ck_assert_msg(strstr(r.out, "8 of 8 transfer results") != NULL, "%s", r.out);
    snprintf(path, sizeof path, "%s/results.csv", out);
    ck_assert_int_eq(check_csv(path), 8);
    csv_before = slurp_file(path);
    snprintf(path, sizeof path, "%s/table.md", out);
    table = slurp_file(path);
    ck_assert_msg(strstr(table, "r18 · fixed-feature · standard (ε=0)") != NULL, "%s", table);
    ck_assert_msg(strstr(table, "r18 · full-network · robust ε=0.5") != NULL, "%s", table);
    ck_assert_msg(strstr(table, "r18, fixed-feature, t3:") != NULL, "no verdict line: %s", table);
    free(table);
    snprintf(path, sizeof path, "%s/plot.svg", out);
    table = slurp_file(path);
    ck_assert_int_eq(count_of(table, "<polyline"), 2); /* r18 fixed, r18 full */
    free(table);
    snprintf(path, sizeof path, "%s/sources/r18-eps0.5-s0/result.json", out);
    ck_assert_msg(access(path, F_OK) == 0, "%s is missing", path);
    snprintf(path, sizeof path, "%s/transfers/r18-eps0.5-s0/t3-full-s1/metrics.json", out);
    ck_assert_msg(access(path, F_OK) == 0, "%s is missing", path);
    /* Again: nothing trains, the same results. */
    RUN_INFO(&r, "grid", grid_file, "--out", out);
    ck_assert_msg(r.code == 0, "second grid run failed: %s", r.err);
    ck_assert_int_eq(count_of(r.err, "done before"), 10);
    ck_assert_int_eq(count_of(r.err, "training"), 0);
    snprintf(path, sizeof path, "%s/results.csv", out);
    csv_after = slurp_file(path);
    ck_assert_str_eq(csv_before, csv_after);
    free(csv_before);
    free(csv_after);
}
END_TEST

START_TEST(a_killed_grid_loses_no_finished_result)
{
    char out[512], first[PATH_MAX], robusta[PATH_MAX];
    char *before, *after;
    pid_t pid;
    int status;
    snprintf(out, sizeof out, "%s/killed", dir);
    snprintf(first, sizeof first, "%s/transfers/r18-eps0-s0/t3-fixed-s0/result.json", out);
    snprintf(robusta, sizeof robusta, "%s", test_env("RB_TEST_ROBUSTA"));
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(robusta, robusta, "grid", grid_file, "--out", out, (char *)NULL);
        _exit(127);
    }
    /* Kill it hard once the first transfer has finished (within 5 minutes). */
    for (int i = 0; i < 3000 && access(first, F_OK) != 0; i++) {
        struct timespec ts = {0, 100000000};
        ck_assert_msg(waitpid(pid, &status, WNOHANG) == 0, "the grid ended before it could be killed");
        nanosleep(&ts, NULL);
    }
    ck_assert_msg(access(first, F_OK) == 0, "no transfer finished");
    kill(pid, SIGKILL);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    before = slurp_file(first);
    RUN_INFO(&r, "grid", grid_file, "--out", out);
    ck_assert_msg(r.code == 0, "the restarted grid failed: %s", r.err);
    ck_assert_msg(strstr(r.err, "t3 fixed seed 0: done before") != NULL, "%s", r.err);
    after = slurp_file(first);
    ck_assert_str_eq(before, after);
    ck_assert_msg(strstr(r.out, "8 of 8 transfer results") != NULL, "%s", r.out);
    free(before);
    free(after);
}
END_TEST

START_TEST(shards_split_the_sources_and_report_merges_them)
{
    char out[512], path[PATH_MAX];
    snprintf(out, sizeof out, "%s/sharded", dir);
    RUN(&r, "grid", grid_file, "--out", out, "--shard", "1/2");
    ck_assert_msg(r.code == 0, "shard 1/2 failed: %s", r.err);
    ck_assert_msg(strstr(r.out, "4 of 8 transfer results") != NULL, "%s", r.out);
    snprintf(path, sizeof path, "%s/sources/r18-eps0-s0", out);
    ck_assert_msg(access(path, F_OK) != 0, "shard 1/2 trained source 0");
    snprintf(path, sizeof path, "%s/sources/r18-eps0.5-s0/result.json", out);
    ck_assert_msg(access(path, F_OK) == 0, "shard 1/2 did not train source 1");
    RUN(&r, "grid", grid_file, "--out", out, "--shard", "0/2");
    ck_assert_msg(r.code == 0, "shard 0/2 failed: %s", r.err);
    ck_assert_msg(strstr(r.out, "8 of 8 transfer results") != NULL, "%s", r.out);
    RUN_INFO(&r, "grid", grid_file, "--out", out, "--report");
    ck_assert_msg(r.code == 0 && strstr(r.out, "8 of 8") != NULL, "%s %s", r.out, r.err);
    ck_assert_int_eq(count_of(r.err, "training"), 0);
    RUN(&r, "grid", grid_file, "--out", out, "--shard", "2/2");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(strstr(r.err, "--shard '2/2' must be i/n with 0 <= i < n") != NULL, "%s", r.err);
}
END_TEST

START_TEST(bad_grids_are_refused_naming_file_and_line)
{
    char bad[512], out[512];
    snprintf(bad, sizeof bad, "%s/bad.ini", dir);
    snprintf(out, sizeof out, "%s/bad-run", dir);
    write_grid(bad, "depht = 18\n", "0");
    RUN(&r, "grid", bad, "--out", out);
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(strstr(r.err, "bad.ini:9: [arch r18]: unknown key 'depht' (not an option of arch plugin resnet; "
                                "did you mean 'depth'?)") != NULL,
                  "%s", r.err);
    ck_assert_int_eq(count_lines(r.err), 1);
    ck_assert_msg(access(out, F_OK) != 0 || count_dir_entries(out) <= 2, "a refused grid trained");
    /* A target's task and its options are checked before anything trains. */
    {
        static const char *const cases[][2] = {
            {"hiden = 4\n", "bad.ini:21: [target t3]: unknown key 'hiden' (not a [target] key nor an option of task "
                            "plugin classify; did you mean 'hidden'?)"},
            {"per-clas = 4\n", "bad.ini:21: [target t3]: unknown key 'per-clas' (not a [target] key nor an option "
                               "of task plugin classify; did you mean 'per-class'?)"},
            {"colour = blue\n", "bad.ini:21: [target t3]: unknown key 'colour' (not a [target] key nor an option of "
                                "task plugin classify; `robusta plugins` lists them)"},
            {"stage = stride8\n",
             "bad.ini:21: [target t3]: --stage: 'stride8' is not one of features|stage1|stage2|stage3|stage4"},
            {"task = clasify\n", "bad.ini:21: [target t3]: unknown task plugin 'clasify'; did you mean 'classify'?"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            write_grid_with(bad, "", cases[i][0], "0");
            RUN(&r, "grid", bad, "--out", out);
            ck_assert_msg(r.code != 0, "'%s' accepted", cases[i][0]);
            ck_assert_msg(strstr(r.err, cases[i][1]) != NULL, "'%s': %s", cases[i][0], r.err);
            ck_assert_msg(count_lines(r.err) == 1, "'%s': %s", cases[i][0], r.err);
            ck_assert_msg(access(out, F_OK) != 0 || count_dir_entries(out) <= 2, "a refused grid trained");
        }
    }
    write_grid(bad, "", "0, 0.2x");
    RUN(&r, "grid", bad, "--out", out);
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(strstr(r.err, "eps list: '0.2x' is not a number") != NULL, "%s", r.err);
    write_grid(bad, "", "0");
    {
        /* an unknown key outside [arch]: parser's message, with the line */
        char text[8192];
        FILE *f = fopen(bad, "a");
        ck_assert(f != NULL);
        fputs("colour = blue\n", f);
        fclose(f);
        (void)text;
    }
    RUN(&r, "grid", bad, "--out", out);
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(strstr(r.err, "unknown key 'colour' in [transfer]") != NULL, "%s", r.err);
    RUN(&r, "grid", "/nonexistent/grid.ini");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(strstr(r.err, "/nonexistent/grid.ini") != NULL, "%s", r.err);
}
END_TEST

/* A grid's steps and random start mean what their keys say whichever attack
 * runs: the runtime loop's, and the plugin's own when it declares them. The
 * fixture own-steps (tests/plugins/attack/) refuses, in begin, a run whose
 * loop does not run its own steps, so a grid that trains (steps = 2) and
 * evaluates (eval-attack-steps = 3) with it shows both got there. It has no
 * random start: the grid's default random-start = true is refused with a
 * line that says what to write. */
#define STEPS_GRID                                                                                                   \
    "[grid]\nname = steps\nthreads = 1\n\n"                                                                          \
    "[arch r18]\narch = resnet18\nstem = cifar\nwidth = 0.125\n\n"                                                   \
    "[source]\ndata = npy:%s/sx.npy,%s/sy.npy;%s/stx.npy,%s/sty.npy\nepochs = 1\nbatch-size = 16\n"                  \
    "lr = 0.05\nschedule = constant\neps = 0.03\nattack = own-steps\nsteps = 2\n"                                    \
    "eval-attack-steps = 3\n%s\n"                                                                                    \
    "[target t3]\ndata = npy:%s/tx.npy,%s/ty.npy;%s/ttx.npy,%s/tty.npy\n\n"                                          \
    "[transfer]\nmodes = fixed\nepochs = 1\nbatch-size = 8\n"

START_TEST(a_grid_gives_its_steps_to_an_attack_that_declares_them)
{
    char text[8192], ini[PATH_MAX], out[PATH_MAX], result_path[PATH_MAX + 64], env[PATH_MAX * 4];
    snprintf(env, sizeof env, "RB_PLUGIN_PATH=%s:%s", test_env("RB_PLUGIN_PATH"), test_env("RB_TEST_ATTACK_FIXTURES"));
    snprintf(ini, sizeof ini, "%s/steps.ini", dir);
    snprintf(out, sizeof out, "%s/steps-run", dir);
    snprintf(text, sizeof text, STEPS_GRID, dir, dir, dir, dir, "", dir, dir, dir, dir);
    write_text(ini, text);
    run_robusta(&r, env, (const char *const[]){"grid", ini, "--out", out, NULL});
    ck_assert_int_eq(r.code, 1);
    ck_assert_msg(strstr(r.err, "steps.ini: [source] attack own-steps: own-steps has no random start: set random-start "
                                "= false in [source]") != NULL,
                  "%s", r.err);
    ck_assert_int_eq(count_lines(r.err), 1);
    snprintf(text, sizeof text, STEPS_GRID, dir, dir, dir, dir, "random-start = false", dir, dir, dir, dir);
    write_text(ini, text);
    run_robusta(&r, env, (const char *const[]){"grid", ini, "--out", out, NULL});
    /* The source trained and was attacked with own-steps (whose begin would
     * have failed the run otherwise): its result holds a robust accuracy.
     * The transfers that follow are not this test's subject. */
    snprintf(result_path, sizeof result_path, "%s/sources/r18-eps0.03-s0/result.json", out);
    ck_assert_msg(access(result_path, F_OK) == 0, "no %s: %s", result_path, r.err);
    {
        char *result = slurp_file(result_path);
        ck_assert_msg(strstr(result, "\"robust_acc\":null") == NULL && strstr(result, "\"robust_acc\"") != NULL,
                      "%s", result);
        ck_assert_msg(strstr(result, "\"robust_examples\":24") != NULL, "all 24 test images attacked: %s", result);
        free(result);
    }
    /* eval-attack-per-class = 2: the same source (same seed) attacked on 2
     * test images of each of its 4 classes, its clean accuracy still over
     * all 24: the same test_acc, a robust accuracy in eighths */
    snprintf(text, sizeof text, STEPS_GRID, dir, dir, dir, dir, "random-start = false\neval-attack-per-class = 2",
             dir, dir, dir, dir);
    write_text(ini, text);
    snprintf(out, sizeof out, "%s/steps-subset", dir);
    run_robusta(&r, env, (const char *const[]){"grid", ini, "--out", out, NULL});
    {
        char subset_path[PATH_MAX + 64];
        json_object *all, *subset;
        double robust;
        snprintf(subset_path, sizeof subset_path, "%s/sources/r18-eps0.03-s0/result.json", out);
        all = json_object_from_file(result_path);
        subset = json_object_from_file(subset_path);
        ck_assert_msg(all != NULL && subset != NULL, "no %s: %s", subset_path, r.err);
        ck_assert_int_eq(json_object_get_int64(json_object_object_get(subset, "robust_examples")), 8);
        ck_assert(json_object_get_double(json_object_object_get(subset, "test_acc")) ==
                  json_object_get_double(json_object_object_get(all, "test_acc")));
        robust = json_object_get_double(json_object_object_get(subset, "robust_acc")) * 8;
        ck_assert_msg(robust >= 0 && robust <= 8 && fabs(robust - round(robust)) < 1e-9, "robust acc %g / 8", robust);
        json_object_put(all);
        json_object_put(subset);
    }
}
END_TEST

/* The tiny grid with `lines` appended to its [transfer] section (the last
 * one, from line 27 on), on eps 0 and 0.5, fixed-feature mode only. */
static void write_transfer_grid(const char *path, const char *lines)
{
    FILE *f;
    write_grid(path, "", "0, 0.5");
    f = fopen(path, "a");
    ck_assert(f != NULL);
    fprintf(f, "modes = fixed\n%s", lines);
    fclose(f);
}

static double json_number_at(const char *path, const char *key)
{
    json_object *j = json_object_from_file(path), *v;
    double x = NAN;
    ck_assert_msg(j != NULL, "cannot read %s", path);
    if (json_object_object_get_ex(j, key, &v) && !json_object_is_type(v, json_type_null))
        x = json_object_get_double(v);
    json_object_put(j);
    return x;
}

/* [transfer] eval-attack: each transferred classifier is also evaluated
 * under it (here PGD-Linf, 2 steps, at the largest source eps, on 2 test
 * images of each of t3's 3 classes), results.csv, table.md and the summary
 * carry its robust accuracy; a grid that gains the key later evaluates what
 * had finished without training it again, and one whose attack changed
 * evaluates again; bad settings are refused with one line. */
START_TEST(eval_attack_adds_robust_target_accuracy)
{
    char ini[PATH_MAX], out[PATH_MAX], path[PATH_MAX + 128], *text, *csv_before;
    rb_grid_result *rows = NULL;
    size_t n = 0;
    snprintf(ini, sizeof ini, "%s/robust.ini", dir);
    snprintf(out, sizeof out, "%s/robust-run", dir);
    write_transfer_grid(ini, "");
    RUN(&r, "grid", ini, "--out", out);
    ck_assert_msg(r.code == 0, "grid failed (%d): %s", r.code, r.err);
    snprintf(path, sizeof path, "%s/results.csv", out);
    ck_assert_int_eq(check_csv(path), 4);
    ck_assert_msg(rb_grid_read_csv(path, &rows, &n) == RB_OK, "%s", rb_last_error());
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(rows[i].robust_attack[0] == '\0' && isnan(rows[i].target_robust_acc), "row %zu", i);
    free(rows);

    /* the key added: every finished transfer evaluated, nothing trained */
    write_transfer_grid(ini, "eval-attack = pgd-linf steps=2\neval-attack-per-class = 2\n");
    RUN_INFO(&r, "grid", ini, "--out", out);
    ck_assert_msg(r.code == 0, "grid failed (%d): %s", r.code, r.err);
    ck_assert_int_eq(count_of(r.err, "training"), 0);
    ck_assert_int_eq(count_of(r.err, "under pgd-linf steps=2 eps=0.5 ("), 4);
    ck_assert_msg(rb_grid_read_csv(path, &rows, &n) == RB_OK, "%s", rb_last_error());
    ck_assert_uint_eq(n, 4);
    for (size_t i = 0; i < n; i++) {
        /* 6 images attacked: a robust accuracy in sixths */
        double sixths = rows[i].target_robust_acc * 6;
        ck_assert_str_eq(rows[i].robust_attack, "pgd-linf steps=2 eps=0.5");
        ck_assert_msg(sixths >= 0 && sixths <= 6 && fabs(sixths - round(sixths)) < 1e-9, "row %zu: %g / 6", i,
                      sixths);
    }
    free(rows);
    snprintf(path, sizeof path, "%s/transfers/r18-eps0.5-s0/t3-fixed-s0/result.json", out);
    ck_assert(json_number_at(path, "robust_examples") == 6);
    ck_assert(!isnan(json_number_at(path, "robust_acc")));
    snprintf(path, sizeof path, "%s/table.md", out);
    text = slurp_file(path);
    ck_assert_msg(strstr(text, "| source model | source acc | t3 | t3 robust |\n") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "t3 robust: the transferred models' accuracy on t3's test images attacked by "
                               "pgd-linf steps=2 eps=0.5 (%)") != NULL,
                  "%s", text);
    ck_assert_msg(strstr(text, "r18, fixed-feature, t3 under pgd-linf steps=2 eps=0.5: ") != NULL, "%s", text);
    free(text);
    snprintf(path, sizeof path, "%s/plot.svg", out);
    text = slurp_file(path);
    ck_assert_int_eq(count_of(text, "<polyline"), 2); /* r18 fixed, and its robust accuracy */
    free(text);

    /* again: nothing to do, the same results */
    snprintf(path, sizeof path, "%s/results.csv", out);
    csv_before = slurp_file(path);
    RUN_INFO(&r, "grid", ini, "--out", out);
    ck_assert_msg(r.code == 0, "grid failed (%d): %s", r.code, r.err);
    ck_assert_int_eq(count_of(r.err, "under pgd-linf"), 0);
    text = slurp_file(path);
    ck_assert_str_eq(text, csv_before);
    free(text);
    free(csv_before);

    /* another attack: evaluated again under it */
    write_transfer_grid(ini, "eval-attack = pgd-linf steps=3 eps=1/255\neval-attack-per-class = 2\n");
    RUN_INFO(&r, "grid", ini, "--out", out);
    ck_assert_msg(r.code == 0, "grid failed (%d): %s", r.code, r.err);
    ck_assert_int_eq(count_of(r.err, "under pgd-linf steps=3 eps=1/255 ("), 4);
    ck_assert_msg(rb_grid_read_csv(path, &rows, &n) == RB_OK && n == 4, "%s", rb_last_error());
    ck_assert_str_eq(rows[0].robust_attack, "pgd-linf steps=3 eps=1/255");
    free(rows);

    /* what cannot run is refused in one line, before anything runs */
    {
        static const char *const cases[][2] = {
            {"eval-attack = pgd-linf stpes=3\n",
             "robust.ini:27: [transfer] eval-attack: unknown option 'stpes' (not an option of attack plugin "
             "pgd-linf; did you mean steps?)"},
            {"eval-attack = pgd-linf eps=2\n", "robust.ini:27: [transfer] eval-attack: "},
            {"eval-attack = square steps=20\n",
             "robust.ini:27: [transfer] eval-attack: attack plugin square schedules itself and takes no steps; its "
             "own budget: queries"},
            {"eval-attack = pgd-linff\n",
             "robust.ini:27: [transfer] eval-attack: unknown attack plugin 'pgd-linff'; did you mean 'pgd-linf'?"},
            {"eval-attack = autoattack norm=l3\n",
             "robust.ini:27: [transfer] eval-attack: norm=l3: AutoAttack's norm is l2 or linf"},
            {"eval-attack = autoattack norm=l2 restarts=2\n",
             "robust.ini:27: [transfer] eval-attack: AutoAttack takes norm, eps and seed, not 'restarts'"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            char lines[256];
            snprintf(lines, sizeof lines, "%s", cases[i][0]);
            write_transfer_grid(ini, lines);
            RUN(&r, "grid", ini, "--out", out);
            ck_assert_msg(r.code != 0, "'%s' accepted", cases[i][0]);
            ck_assert_msg(strstr(r.err, cases[i][1]) != NULL, "'%s': %s", cases[i][0], r.err);
            ck_assert_msg(count_lines(r.err) == 1, "'%s': %s", cases[i][0], r.err);
        }
    }
    /* AutoAttack on t3's 3 classes: one line when the first transfer is
     * evaluated, its result left as it was */
    snprintf(path, sizeof path, "%s/transfers/r18-eps0-s0/t3-fixed-s0/result.json", out);
    csv_before = slurp_file(path);
    write_transfer_grid(ini, "eval-attack = autoattack\n");
    RUN(&r, "grid", ini, "--out", out);
    ck_assert_int_eq(r.code, 1);
    ck_assert_msg(strstr(r.err, "eval-attack autoattack norm=l2 eps=0.5: AutoAttack needs a classifier of at least 4 "
                                "classes") != NULL,
                  "%s", r.err);
    ck_assert_int_eq(count_lines(r.err), 1);
    text = slurp_file(path);
    ck_assert_str_eq(text, csv_before);
    free(text);
    free(csv_before);
}
END_TEST

/* Targets with a task each: "deep" trains classify with options (stage3,
 * one hidden layer of 6), "scored" the scored-classify fixture
 * (tests/plugins/task/), classify ranked by a constant fixture_score of
 * 0.375, which no accuracy over 18 test images takes: its rows, result.json
 * and reports must carry that metric and that value. */
#define TASKS_GRID                                                                                                   \
    "[grid]\nname = tasks\nthreads = 1\n\n"                                                                           \
    "[arch r18]\narch = resnet18\nstem = cifar\nwidth = 0.125\n\n"                                                   \
    "[source]\ndata = npy:%s/sx.npy,%s/sy.npy;%s/stx.npy,%s/sty.npy\nepochs = 1\nbatch-size = 16\n"                  \
    "lr = 0.05\nschedule = constant\neps = 0\n\n"                                                                     \
    "[target deep]\ndata = npy:%s/tx.npy,%s/ty.npy;%s/ttx.npy,%s/tty.npy\nstage = stage3\nhidden = 6\n\n"             \
    "[target scored]\ndata = npy:%s/tx.npy,%s/ty.npy;%s/ttx.npy,%s/tty.npy\ntask = %s\n\n"                            \
    "[target balanced]\ndata = npy:%s/tx.npy,%s/ty.npy;%s/ttx.npy,%s/tty.npy\nmetric = balanced_accuracy\n\n"         \
    "[transfer]\nmodes = fixed\nepochs = 2\nbatch-size = 8\n"

START_TEST(targets_train_their_own_task_and_report_its_metric)
{
    char text[8192], ini[PATH_MAX], out[PATH_MAX], path[PATH_MAX + 512], env[PATH_MAX * 4];
    char *file;
    rb_grid_result *rows = NULL;
    size_t n = 0;
    rb_checkpoint *ckpt = NULL;
    rb_checkpoint_tensor tensor;
    double balanced;
    snprintf(env, sizeof env, "RB_PLUGIN_PATH=%s:%s", test_env("RB_PLUGIN_PATH"), test_env("RB_TEST_TASK_FIXTURES"));
    snprintf(ini, sizeof ini, "%s/tasks.ini", dir);
    snprintf(out, sizeof out, "%s/tasks-run", dir);
    snprintf(text, sizeof text, TASKS_GRID, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir,
             "scored-classify", dir, dir, dir, dir);
    write_text(ini, text);
    run_robusta(&r, env, (const char *const[]){"grid", ini, "--out", out, NULL});
    ck_assert_msg(r.code == 0, "grid failed (%d): %s", r.code, r.err);
    ck_assert_msg(strstr(r.out, "3 of 3 transfer results") != NULL, "%s", r.out);

    /* deep: the options reached the plugin (the head reads stage3, 32 channels
     * at width 0.125, through a hidden layer of 6) and config.json */
    snprintf(path, sizeof path, "%s/transfers/r18-eps0-s0/deep-fixed-s0/model.rbt", out);
    ck_assert_msg(rb_checkpoint_load(&ckpt, path, 0) == RB_OK, "%s", rb_last_error());
    ck_assert_msg(rb_checkpoint_find(ckpt, "fc.0.weight", &tensor) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(tensor.ndim, 2);
    ck_assert_int_eq(tensor.shape[0], 6);
    ck_assert_int_eq(tensor.shape[1], 32);
    ck_assert_msg(rb_checkpoint_find(ckpt, "fc.2.weight", &tensor) == RB_OK, "%s", rb_last_error());
    ck_assert(tensor.shape[0] == 3 && tensor.shape[1] == 6);
    rb_checkpoint_destroy(ckpt);
    snprintf(path, sizeof path, "%s/transfers/r18-eps0-s0/deep-fixed-s0/config.json", out);
    file = slurp_file(path);
    ck_assert_msg(strstr(file, "\"task\":\"classify\"") != NULL, "%s", file);
    ck_assert_msg(strstr(file, "\"task_options\":{\n    \"hidden\":\"6\",\n    \"stage\":\"stage3\"\n  }") != NULL, "%s",
                  file);
    free(file);

    /* scored: its task, its metric and that metric's value */
    snprintf(path, sizeof path, "%s/transfers/r18-eps0-s0/scored-fixed-s0/result.json", out);
    file = slurp_file(path);
    ck_assert_msg(strstr(file, "\"task\":\"scored-classify\"") != NULL, "%s", file);
    ck_assert_msg(strstr(file, "\"metric\":\"fixture_score\"") != NULL, "%s", file);
    ck_assert_msg(strstr(file, "\"target_acc\":0.375") != NULL, "%s", file);
    free(file);
    snprintf(path, sizeof path, "%s/results.csv", out);
    ck_assert_msg(rb_grid_read_csv(path, &rows, &n) == RB_OK, "%s", rb_last_error());
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(rows[0].target, "deep");
    ck_assert_str_eq(rows[0].metric, "accuracy");
    /* an accuracy over 18 images, as the deep target's is */
    ck_assert_msg(fabs(rows[0].target_acc * 18 - round(rows[0].target_acc * 18)) < 1e-6, "%g", rows[0].target_acc);
    ck_assert_str_eq(rows[1].target, "scored");
    ck_assert_str_eq(rows[1].metric, "fixture_score");
    ck_assert(rows[1].target_acc == 0.375);
    /* balanced: its own metric, the value classify wrote to its metrics.json */
    ck_assert_str_eq(rows[2].target, "balanced");
    ck_assert_str_eq(rows[2].metric, "balanced_accuracy");
    balanced = rows[2].target_acc;
    snprintf(path, sizeof path, "%s/transfers/r18-eps0-s0/balanced-fixed-s0/metrics.json", out);
    {
        json_object *m = json_object_from_file(path), *v;
        ck_assert_ptr_nonnull(m);
        ck_assert(json_object_object_get_ex(m, "balanced_accuracy", &v));
        /* results.csv writes 10 significant digits */
        ck_assert_msg(fabs(json_object_get_double(v) - rows[2].target_acc) < 1e-9, "%.17g %.17g",
                      json_object_get_double(v), rows[2].target_acc);
        json_object_put(m);
    }
    free(rows);
    snprintf(path, sizeof path, "%s/table.md", out);
    file = slurp_file(path);
    ck_assert_msg(strstr(file, "| source model | source acc | deep | scored (fixture_score) | balanced (balanced "
                               "accuracy) |\n") != NULL,
                  "%s", file);
    {
        /* the balanced column shows the balanced accuracy results.csv holds */
        char cells[64];
        snprintf(cells, sizeof cells, " | 37.5 | %.1f |\n", 100 * balanced);
        ck_assert_msg(strstr(file, cells) != NULL, "%s in %s", cells, file);
    }
    ck_assert_msg(strstr(file, "r18, fixed-feature, scored: no robust (ε>0) run to compare with; standard: 37.5 "
                               "fixture_score (1 run)\n") != NULL,
                  "%s", file);
    free(file);
    snprintf(path, sizeof path, "%s/plot.svg", out);
    file = slurp_file(path);
    ck_assert_msg(strstr(file, ">tasks: target accuracy, fixture_score and balanced accuracy against source "
                               "robustness (eps)<") != NULL,
                  "the plot's title");
    ck_assert_int_eq(count_of(file, ">target fixture_score (%)</text>"), 1);
    ck_assert_int_eq(count_of(file, ">target accuracy (%)</text>"), 1);
    ck_assert_int_eq(count_of(file, ">target balanced accuracy (%)</text>"), 1);
    free(file);

    /* A result.json of before metrics had names reads as an accuracy. */
    snprintf(path, sizeof path, "%s/transfers/r18-eps0-s0/deep-fixed-s0/result.json", out);
    file = slurp_file(path);
    {
        static const char key[] = "\"metric\":\"accuracy\",";
        char *at = strstr(file, key);
        ck_assert_msg(at != NULL, "%s", file);
        memmove(at, at + strlen(key), strlen(at + strlen(key)) + 1);
        write_text(path, file);
    }
    free(file);
    RUN_INFO(&r, "grid", ini, "--out", out, "--report");
    ck_assert_int_ne(r.code, 0); /* without the fixture's folder: its task is unknown, before anything */
    ck_assert_msg(strstr(r.err, "tasks.ini:25: [target scored]: unknown task plugin 'scored-classify'") != NULL, "%s",
                  r.err);
    run_robusta(&r, env, (const char *const[]){"grid", ini, "--out", out, "--report", NULL});
    ck_assert_msg(r.code == 0 && strstr(r.out, "3 of 3 transfer results") != NULL, "%s %s", r.out, r.err);

    /* The target's task changed after its run: the result is in another
     * metric, so the grid refuses it rather than report it as the new one's. */
    snprintf(text, sizeof text, TASKS_GRID, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir, "classify", dir, dir,
             dir, dir);
    write_text(ini, text);
    run_robusta(&r, env, (const char *const[]){"grid", ini, "--out", out, NULL});
    ck_assert_int_ne(r.code, 0);
    snprintf(path, sizeof path,
             "%s/transfers/r18-eps0-s0/scored-fixed-s0/result.json holds a result in 'fixture_score', but [target "
             "scored] now reports 'accuracy' (task classify): move that run folder away to redo it, or give the "
             "target another label",
             out);
    ck_assert_msg(strstr(r.err, path) != NULL, "%s", r.err);
    ck_assert_int_eq(count_lines(r.err), 1);
    run_robusta(&r, env, (const char *const[]){"grid", ini, "--out", out, "--report", NULL});
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(strstr(r.err, path) != NULL, "--report: %s", r.err);
    /* So is a stopped run of the old task (last.rbt, no result.json): it
     * would resume with the task it began with. */
    snprintf(path, sizeof path, "%s/transfers/r18-eps0-s0/scored-fixed-s0/last.rbt", out);
    ck_assert_msg(access(path, F_OK) == 0, "%s is missing", path);
    snprintf(path, sizeof path, "%s/transfers/r18-eps0-s0/scored-fixed-s0/result.json", out);
    ck_assert_int_eq(remove(path), 0);
    run_robusta(&r, env, (const char *const[]){"grid", ini, "--out", out, NULL});
    ck_assert_int_ne(r.code, 0);
    snprintf(path, sizeof path,
             "%s/transfers/r18-eps0-s0/scored-fixed-s0: the stopped run trains task scored-classify, but [target "
             "scored] now has task classify: move that run folder away to redo it, or give the target another label",
             out);
    ck_assert_msg(strstr(r.err, path) != NULL, "%s", r.err);
    ck_assert_int_eq(count_lines(r.err), 1);
}
END_TEST

START_TEST(demo_quick_gives_sane_outputs)
{
    char out[512], path[PATH_MAX];
    char *table, *svg;
    const char *fm = getenv("RB_FASHION_MNIST");
    rb_grid_result *rows = NULL;
    size_t n = 0;
    if (fm == NULL)
        fm = "/usr/share/datasets/fashion-mnist";
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", fm);
    if (access(path, R_OK) != 0) {
        snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", fm);
        if (access(path, R_OK) != 0) {
            printf("SKIP: demo --quick: no Fashion-MNIST in %s (install dataset-fashion-mnist)\n", fm);
            return;
        }
    }
    snprintf(out, sizeof out, "%s/demo", dir);
    RUN_INFO(&r, "demo", "--quick", "--out", out, "--data", fm);
    ck_assert_msg(r.code == 0, "demo --quick failed (%d): %s", r.code, r.err);
    ck_assert_msg(strstr(r.out, "12 of 12 transfer results") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "made 64 + 32 segmentation scenes") != NULL, "%s", r.out);
    {
        /* the page of it all, named last (check_report_html checks what pages hold) */
        char said[700];
        char *page;
        snprintf(said, sizeof said, "training curves and each run's configuration: %s/report.html\n", out);
        ck_assert_msg(strstr(r.out, said) != NULL, "%s", r.out);
        snprintf(path, sizeof path, "%s/report.html", out);
        page = slurp_file(path);
        ck_assert_msg(strstr(page, "<h1>robusta demo: do adversarially robust source models transfer better?</h1>")
                      != NULL && strstr(page, "<table class=\"results\">") != NULL &&
                      strstr(page, "<h4>fm5-9: per-class accuracy</h4>") != NULL &&
                      strstr(page, "<h4>scenes: per-class IoU</h4>") != NULL, "%.2000s", page);
        ck_assert_msg(strstr(page, "<h2 id=\"skipped\">") == NULL, "the demo's report left something out");
        free(page);
    }
    ck_assert_msg(strstr(r.out, "| source model |") != NULL, "no table printed: %s", r.out);
    ck_assert_msg(strstr(r.out, "beats") != NULL || strstr(r.out, "ties") != NULL, "no verdict: %s", r.out);
    /* robustness after transfer: a verdict per mode for the classifier (one run each: it cannot tell) */
    ck_assert_int_eq(count_of(r.out, "fm5-9 under pgd-l2 steps=5 eps=1.0: a single run cannot tell whether the "
                                     "robust prior's robustness survived"),
                     2);
    /* said once, with the progress lines: the dense targets are not attacked */
    ck_assert_int_eq(count_of(r.err, "grid demo-quick: eval-attack pgd-l2 steps=5 eps=1.0: targets scenes (segment), "
                                     "boxes (detect) predict masks or boxes, which no attack has a classification "
                                     "loss for: they report clean scores only\n"),
                     1);
    {
        /* the machine its figures repeat on, as rb_machine_info says it */
        char machine[512], line[600];
        ck_assert_int_eq(rb_machine_info(machine, sizeof machine), RB_OK);
        snprintf(line, sizeof line, "here: %s\n", machine);
        ck_assert_msg(strstr(r.out, line) != NULL, "no '%s' in: %s", line, r.out);
    }
    snprintf(path, sizeof path, "%s/results.csv", out);
    ck_assert_msg(rb_grid_read_csv(path, &rows, &n) == RB_OK, "%s", rb_last_error());
    ck_assert_uint_eq(n, 12);
    {
        size_t segmentation = 0, detection = 0;
        for (size_t i = 0; i < n; i++) {
            /* five target classes: chance is 20%; accuracies must be real ones */
            ck_assert_msg(rows[i].target_acc >= 0 && rows[i].target_acc <= 1, "accuracy %g", rows[i].target_acc);
            if (rows[i].source_eps == 0)
                ck_assert_msg(rows[i].source_test_acc > 0.4, "the standard source is at %g on 5 classes (chance 0.2)",
                              rows[i].source_test_acc);
            if (strcmp(rows[i].target, "scenes") == 0) {
                /* "background everywhere" scores the background's IoU (about
                 * 0.88 of the pixels) over 6 classes, about 0.15: a head
                 * that learned nothing; measured 0.23-0.31 */
                ck_assert_str_eq(rows[i].metric, "miou");
                ck_assert_msg(rows[i].target_acc > 0.17, "scenes mIoU %g: the head learned nothing",
                              rows[i].target_acc);
                segmentation++;
            } else if (strcmp(rows[i].target, "boxes") == 0) {
                /* boxes scored at random have an AP near 0 (a few of the
                 * 0.05-threshold boxes hit by chance); measured 0.9-3.0% */
                ck_assert_str_eq(rows[i].metric, "ap");
                ck_assert_msg(rows[i].target_acc > 0.003, "boxes AP %g: the head learned nothing",
                              rows[i].target_acc);
                detection++;
            } else {
                /* 100 images attacked: a robust accuracy in hundredths */
                double hundredths = rows[i].target_robust_acc * 100;
                ck_assert_str_eq(rows[i].metric, "accuracy");
                ck_assert_str_eq(rows[i].robust_attack, "pgd-l2 steps=5 eps=1.0");
                ck_assert_msg(hundredths >= 0 && hundredths <= 100 && fabs(hundredths - round(hundredths)) < 1e-6,
                              "robust accuracy %g", rows[i].target_robust_acc);
            }
            if (strcmp(rows[i].target, "fm5-9") != 0)
                ck_assert_msg(rows[i].robust_attack[0] == '\0', "%s: a dense target attacked", rows[i].target);
        }
        ck_assert_uint_eq(segmentation, 4);
        ck_assert_uint_eq(detection, 4);
    }
    free(rows);
    /* the scenes are made once: a rerun finds them and every result */
    RUN(&r, "demo", "--quick", "--out", out, "--data", fm);
    ck_assert_msg(r.code == 0, "demo --quick rerun failed (%d): %s", r.code, r.err);
    ck_assert_msg(strstr(r.out, "segmentation scenes") == NULL && strstr(r.out, "12 of 12 transfer results") != NULL,
                  "%s", r.out);
    snprintf(path, sizeof path, "%s/table.md", out);
    table = slurp_file(path);
    ck_assert_msg(strstr(table, "robust ε=1.0") != NULL && strstr(table, "standard (ε=0)") != NULL, "%s", table);
    ck_assert_msg(strstr(table, "| fm5-9 | fm5-9 robust | scenes (mIoU) | boxes (AP) |") != NULL, "%s", table);
    free(table);
    snprintf(path, sizeof path, "%s/plot.svg", out);
    svg = slurp_file(path);
    ck_assert_msg(strncmp(svg, "<?xml", 5) == 0 || strncmp(svg, "<svg", 4) == 0, "not an SVG file");
    /* a line per mode for each of the three targets, and fm5-9's robust accuracy per mode */
    ck_assert_int_eq(count_of(svg, "<polyline"), 8);
    free(svg);
    snprintf(path, sizeof path, "%s/demo-quick.ini", out);
    ck_assert_msg(access(path, R_OK) == 0, "the demo's grid file was not written");
    RUN(&r, "demo", "--print-grid");
    ck_assert_int_eq(r.code, 0);
    ck_assert_msg(strstr(r.out, "[transfer]") != NULL && strstr(r.out, "eps = 0, 0.5, 1.0") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "[target scenes]\ndata = voc-seg:scenes\ntask = segment\n") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "[target boxes]\ndata = coco:scenes\ntask = detect\n") != NULL, "%s", r.out);
    /* two source seeds, so the full demo's verdicts weigh source training's spread */
    ck_assert_msg(strstr(r.out, "eval-attack-steps = 10\n") != NULL && strstr(r.out, "\nseeds = 0, 1\neval") != NULL,
                  "%s", r.out);
    ck_assert_msg(strstr(r.out, "\neval-attack = pgd-l2 steps=10\neval-attack-per-class = 50\n") != NULL, "%s", r.out);
}
END_TEST

static Suite *grid_run_suite(void)
{
    Suite *s = suite_create("grid_run");
    TCase *tc = tcase_create("grid_run");
    tcase_add_unchecked_fixture(tc, setup_once, teardown_once);
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, bad_grids_are_refused_naming_file_and_line);
    tcase_add_test(tc, a_grid_runs_reports_and_skips_what_is_done);
    tcase_add_test(tc, a_killed_grid_loses_no_finished_result);
    tcase_add_test(tc, shards_split_the_sources_and_report_merges_them);
    tcase_add_test(tc, a_grid_gives_its_steps_to_an_attack_that_declares_them);
    tcase_add_test(tc, eval_attack_adds_robust_target_accuracy);
    tcase_add_test(tc, targets_train_their_own_task_and_report_its_metric);
    tcase_add_test(tc, demo_quick_gives_sane_outputs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(grid_run_suite());
}
