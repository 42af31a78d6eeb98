/* robusta report (robusta/report.h): a hand-made grid folder and run
 * folder reported into one page whose numbers are checked exactly, parsed
 * strictly (tests/html_strict.py: html5lib strict and an XML parser; SKIP
 * without html5lib) and shot by headless Chromium (SKIP without it), and
 * every kind of bad input: each said in one line, the rest reported. */
#include "config.h"

#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>

#include <robusta/robusta.h>

#include "testutil.h"

static char dir[256];

static void setup(void)
{
    make_temp_dir(dir, sizeof dir);
}

static void teardown(void)
{
    remove_temp_dir(dir);
}

/* The lines the report said it left out. */
typedef struct said {
    int n;
    char line[16][1024];
} said;

static void keep_line(void *user, const char *line)
{
    said *s = user;
    if (s->n < 16)
        snprintf(s->line[s->n], sizeof s->line[0], "%s", line);
    s->n++;
}

static void put(const char *rel, const char *text)
{
    char path[1024], cmd[1200];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
    ck_assert_int_eq(system(cmd), 0);
    write_text(path, text);
}

static const char *const CONFIG =
    "{\"command\": \"train\", \"robusta\": \"0.1.0\", \"data\": \"<script>alert(1)</script>\", "
    "\"machine\": \"Test CPU 9000; oneDNN 9.9.9, avx2 kernels\", \"plugins\": {\"resnet\": \"1.0\"}}\n";

/* One source log: epochs 1-2, the second with test accuracy. */
static const char *const SOURCE_LOG =
    "{\"epoch\": 1, \"lr\": 0.1, \"train_loss\": 2.0, \"train_acc\": 0.5, \"test_loss\": null, \"test_acc\": null, "
    "\"seconds\": 1.5, \"images_per_second\": 10}\n"
    "{\"epoch\": 2, \"lr\": 0.1, \"train_loss\": 1.0, \"train_acc\": 0.75, \"test_loss\": 0.9, \"test_acc\": 0.8, "
    "\"seconds\": 2.5, \"images_per_second\": 10}\n";

/* A grid "g": arch a, eps 0 and 1, seed 0, target t (fixed), two transfer
 * seeds each; the eps-0 transfers score 0.60/0.70 (classes 0.5/0.7 and
 * 0.7/0.7), the eps-1 ones 0.80/0.90. */
static void make_grid(const char *name)
{
    static const struct {
        const char *eps;
        double acc[2], cls0[2], cls1[2];
    } sources[2] = {{"0", {0.6, 0.7}, {0.5, 0.7}, {0.7, 0.7}}, {"1", {0.8, 0.9}, {0.9, 0.8}, {0.7, 1.0}}};
    rb_grid_result rows[4];
    char rel[512], text[2048], path[512];
    size_t k = 0;
    for (int e = 0; e < 2; e++) {
        snprintf(rel, sizeof rel, "%s/sources/a-eps%s-s0/config.json", name, sources[e].eps);
        put(rel, CONFIG);
        snprintf(rel, sizeof rel, "%s/sources/a-eps%s-s0/log.jsonl", name, sources[e].eps);
        put(rel, SOURCE_LOG);
        snprintf(rel, sizeof rel, "%s/sources/a-eps%s-s0/result.json", name, sources[e].eps);
        snprintf(text, sizeof text, "{\"arch\": \"a\", \"eps\": \"%s\", \"seed\": 0, \"test_acc\": 0.8, "
                 "\"seconds\": 4.0}\n", sources[e].eps);
        put(rel, text);
        for (int ts = 0; ts < 2; ts++) {
            snprintf(rel, sizeof rel, "%s/transfers/a-eps%s-s0/t-fixed-s%d/result.json", name, sources[e].eps, ts);
            snprintf(text, sizeof text,
                     "{\"arch\": \"a\", \"eps\": \"%s\", \"source_seed\": 0, \"target\": \"t\", \"mode\": \"fixed\", "
                     "\"transfer_seed\": %d, \"task\": \"classify\", \"metric\": \"accuracy\", \"target_acc\": %g, "
                     "\"seconds\": 10.0}\n", sources[e].eps, ts, sources[e].acc[ts]);
            put(rel, text);
            snprintf(rel, sizeof rel, "%s/transfers/a-eps%s-s0/t-fixed-s%d/metrics.json", name, sources[e].eps, ts);
            snprintf(text, sizeof text, "{\"accuracy\": %g, \"class_accuracy.0\": %g, \"class_accuracy.1\": %g}\n",
                     sources[e].acc[ts], sources[e].cls0[ts], sources[e].cls1[ts]);
            put(rel, text);
            snprintf(rel, sizeof rel, "%s/transfers/a-eps%s-s0/t-fixed-s%d/log.jsonl", name, sources[e].eps, ts);
            put(rel, SOURCE_LOG);
            memset(&rows[k], 0, sizeof rows[k]);
            snprintf(rows[k].arch, sizeof rows[k].arch, "a");
            snprintf(rows[k].eps_text, sizeof rows[k].eps_text, "%s", sources[e].eps);
            rows[k].source_eps = e;
            rows[k].source_test_acc = 0.8;
            rows[k].source_robust_acc = NAN;
            snprintf(rows[k].target, sizeof rows[k].target, "t");
            snprintf(rows[k].mode, sizeof rows[k].mode, "fixed");
            rows[k].transfer_seed = (uint64_t)ts;
            rows[k].target_acc = sources[e].acc[ts];
            rows[k].seconds = 10;
            rows[k].target_robust_acc = NAN;
            snprintf(rows[k].metric, sizeof rows[k].metric, "accuracy");
            k++;
        }
    }
    snprintf(path, sizeof path, "%s/%s/results.csv", dir, name);
    ck_assert_int_eq(rb_grid_write_csv(path, rows, 4), RB_OK);
    snprintf(rel, sizeof rel, "%s/g.ini", name);
    put(rel, "[grid]\nname = g ; <b>not markup</b>\n");
}

/* A single run "run": a metrics.json with two per-class values, a log
 * with one corrupt line among three, and model.rbt (finished). */
static void make_run(void)
{
    put("run/config.json", CONFIG);
    put("run/metrics.json", "{\"accuracy\": 0.625, \"class_accuracy.0\": 0.5, \"class_accuracy.1\": 0.75}\n");
    put("run/log.jsonl", "{\"epoch\": 1, \"train_loss\": 2.0, \"train_acc\": 0.5, \"seconds\": 1.0}\n"
                         "{\"epoch\": 2, \"train_loss\": 1.5, \"train_a\n"
                         "{\"epoch\": 3, \"train_loss\": 1.0, \"train_acc\": 0.7, \"test_acc\": 0.625, "
                         "\"seconds\": 1.0}\n");
    put("run/model.rbt", "");
}

static char *report_of(const char *const *dirs, size_t n, said *s, rb_status want, rb_report_outcome *out)
{
    char path[512];
    rb_report_options opt = {NULL, keep_line, s};
    size_t size;
    snprintf(path, sizeof path, "%s/report.html", dir);
    unlink(path);
    ck_assert_msg(rb_report_write_html(dirs, n, path, &opt, out) == want, "%s", rb_last_error());
    if (want != RB_OK) {
        ck_assert_int_ne(access(path, F_OK), 0); /* nothing written */
        return NULL;
    }
    return (char *)read_whole_file(path, &size);
}

static int count_of(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = strstr(s, what); p != NULL; p = strstr(p + 1, what))
        n++;
    return n;
}

#define HAS(page, text) ck_assert_msg(strstr(page, text) != NULL, "the page lacks: %s", text)

START_TEST(grid_and_run_on_one_page)
{
    char g[300], r[300];
    const char *dirs[2] = {g, r};
    said s = {0};
    rb_report_outcome out;
    char *page;
    make_grid("g");
    make_run();
    snprintf(g, sizeof g, "%s/g", dir);
    snprintf(r, sizeof r, "%s/run", dir);
    page = report_of(dirs, 2, &s, RB_OK, &out);
    ck_assert_uint_eq(out.folders, 2);
    HAS(page, "<title>robusta report: g, run</title>");
    ck_assert_int_eq(out.grids, 1);
    ck_assert_uint_eq(out.runs, 2 + 4 + 1);
    ck_assert_uint_eq(out.finished, 7);
    /* the one thing left out: the run's corrupt log line */
    ck_assert_int_eq(s.n, 1);
    ck_assert_uint_eq(out.skipped, 1);
    ck_assert_msg(strstr(s.line[0], "run/log.jsonl: 1 of 3 lines skipped (line 2: not JSON (") != NULL, "%s",
                  s.line[0]);
    /* the table: eps 0 is 65.0 ± 7.1 over 2 runs, eps 1 85.0 ± 7.1, bold */
    HAS(page, "<tr><td>a \xc2\xb7 fixed-feature \xc2\xb7 standard (\xce\xb5=0)</td><td>80.0</td>"
              "<td>65.0 \xc2\xb1 7.1</td></tr>");
    HAS(page, "<tr><td>a \xc2\xb7 fixed-feature \xc2\xb7 robust \xce\xb5=1</td><td>80.0</td>"
              "<td><strong>85.0 \xc2\xb1 7.1</strong></td></tr>");
    HAS(page, "<li>a, fixed-feature, t: robust \xce\xb5=1 beats standard by +20.0 points");
    /* per class: means of (0.5, 0.7), (0.7, 0.7), (0.9, 0.8), (0.7, 1.0) */
    HAS(page, "<h4>t: per-class accuracy</h4>");
    HAS(page, "<td>a \xc2\xb7 fixed-feature \xc2\xb7 standard (\xce\xb5=0)</td><td>60.0</td><td>70.0</td></tr>");
    HAS(page, "<td>a \xc2\xb7 fixed-feature \xc2\xb7 robust \xce\xb5=1</td><td>85.0</td><td>85.0</td></tr>");
    /* the single run's metrics and per class */
    HAS(page, "<tr><td>accuracy</td><td>0.625</td></tr>");
    HAS(page, "<td>run</td><td>50.0</td><td>75.0</td></tr>");
    /* plots: the grid's, 2 sources' curves, the transfers' curves, the run's curves */
    ck_assert_int_eq(count_of(page, "<svg "), 5);
    HAS(page, "g: target accuracy against source robustness (eps)</text>");
    HAS(page, "t, fixed-feature transfers (mean over seeds)</text>");
    /* times: sources 4.0 s each (result.json), transfers 10 s, the run 2.0 s (its log) */
    HAS(page, "<p>6 runs, 6 finished; 48.0 s in all");
    HAS(page, "<td>run</td><td>finished</td><td>3</td><td>2.0 s</td><td>test accuracy 62.5 (epoch 3)</td>");
    HAS(page, "<td>transfers/a-eps1-s0/t-fixed-s1</td><td>finished</td><td>2</td><td>10.0 s</td>"
              "<td>accuracy 90.0</td>");
    /* provenance and what wrote the page */
    HAS(page, "<li>robusta 0.1.0; Test CPU 9000; oneDNN 9.9.9, avx2 kernels; plugins resnet 1.0 (3 runs)</li>");
    HAS(page, "<p>Written by robusta " RB_VERSION_STRING);
    HAS(page, "<h2 id=\"skipped\">Left out</h2>");
    /* text from files is text */
    HAS(page, "&lt;script&gt;alert(1)&lt;/script&gt;");
    HAS(page, "name = g ; &lt;b&gt;not markup&lt;/b&gt;");
    ck_assert_int_eq(count_of(page, "<script"), 0);
    free(page);
}
END_TEST

/* Strict parsing and a screenshot of the page above. */
static bool have(const char *program)
{
    return access(program, X_OK) == 0;
}

START_TEST(the_page_parses_strictly_and_renders)
{
    char g[300], r[300], page_path[512], script[1024], png_path[512], url[600], shot[600];
    const char *dirs[2] = {g, r};
    said s = {0};
    run_result rr;
    char *page;
    make_grid("g");
    make_run();
    snprintf(g, sizeof g, "%s/g", dir);
    snprintf(r, sizeof r, "%s/run", dir);
    page = report_of(dirs, 2, &s, RB_OK, NULL);
    free(page);
    snprintf(page_path, sizeof page_path, "%s/report.html", dir);

    if (!have("/usr/bin/python3")) {
        printf("SKIP: strict HTML parsing (python3 is not installed)\n");
    } else {
        snprintf(script, sizeof script, "%s/tests/html_strict.py", test_env("RB_TEST_SRCDIR"));
        run_program_deadline(&rr, "/usr/bin/python3", NULL, 120, (const char *const[]){script, page_path, NULL});
        if (rr.code == 77)
            printf("%s", rr.out);
        else
            ck_assert_msg(rr.code == 0, "%s%s", rr.out, rr.err);
    }

    if (!have("/usr/bin/chromium")) {
        printf("SKIP: the headless browser's screenshot (chromium is not installed: Debian's chromium)\n");
        return;
    }
    {
        png_image img;
        unsigned char *px;
        size_t ink = 0, colored = 0;
        snprintf(png_path, sizeof png_path, "%s/shot.png", dir);
        snprintf(url, sizeof url, "file://%s", page_path);
        snprintf(shot, sizeof shot, "--screenshot=%s", png_path);
        /* its own profile folder, so that a user's browser is not touched */
        {
            char profile[600];
            snprintf(profile, sizeof profile, "--user-data-dir=%s/profile", dir);
            run_program_deadline(&rr, "/usr/bin/chromium", NULL, 120,
                                 (const char *const[]){"--headless", "--no-sandbox", "--disable-gpu",
                                                       "--hide-scrollbars", "--window-size=1280,2400", profile, shot,
                                                       url, NULL});
        }
        ck_assert_msg(rr.code == 0, "chromium: %s", rr.err);
        memset(&img, 0, sizeof img);
        img.version = PNG_IMAGE_VERSION;
        ck_assert_msg(png_image_begin_read_from_file(&img, png_path), "%s", img.message);
        img.format = PNG_FORMAT_RGB;
        px = malloc(PNG_IMAGE_SIZE(img));
        ck_assert_ptr_nonnull(px);
        ck_assert_msg(png_image_finish_read(&img, NULL, px, 0, NULL), "%s", img.message);
        ck_assert_uint_eq(img.width, 1280);
        for (size_t i = 0; i < (size_t)img.width * img.height; i++) {
            const unsigned char *p = px + 3 * i;
            int lo = p[0] < p[1] ? (p[0] < p[2] ? p[0] : p[2]) : (p[1] < p[2] ? p[1] : p[2]);
            int hi = p[0] > p[1] ? (p[0] > p[2] ? p[0] : p[2]) : (p[1] > p[2] ? p[1] : p[2]);
            ink += hi < 200;          /* text and lines */
            colored += hi - lo > 80;  /* the plots' colored lines and markers */
        }
        /* a blank or unstyled-error page has neither: measured ~40,000 dark and ~3,000 colored pixels */
        ck_assert_msg(ink > 5000, "only %zu dark pixels: the page looks blank", ink);
        ck_assert_msg(colored > 300, "only %zu colored pixels: no plot was drawn", colored);
        free(px);
    }
}
END_TEST

START_TEST(nothing_to_report_writes_nothing)
{
    char empty[300], missing[300], file[300], out_path[512];
    const char *dirs[3] = {empty, missing, file};
    said s = {0};
    snprintf(empty, sizeof empty, "%s/empty", dir);
    snprintf(missing, sizeof missing, "%s/missing", dir);
    snprintf(file, sizeof file, "%s/file", dir);
    ck_assert_int_eq(mkdir(empty, 0700), 0);
    put("file", "x");
    report_of(dirs, 3, &s, RB_ERR_NOT_FOUND, NULL);
    ck_assert_str_eq(rb_last_error(), "nothing to report: the folders hold no results");
    ck_assert_int_eq(s.n, 3);
    ck_assert_msg(strstr(s.line[0], "/empty: no results (neither a grid's results.csv") != NULL, "%s", s.line[0]);
    ck_assert_msg(strstr(s.line[1], "/missing: no such folder") != NULL, "%s", s.line[1]);
    ck_assert_msg(strstr(s.line[2], "/file: not a folder") != NULL, "%s", s.line[2]);
    /* an existing page stays as it was */
    snprintf(out_path, sizeof out_path, "%s/old.html", dir);
    write_text(out_path, "old");
    {
        rb_report_options opt = {NULL, keep_line, &s};
        size_t size;
        unsigned char *kept;
        ck_assert_int_eq(rb_report_write_html(dirs, 1, out_path, &opt, NULL), RB_ERR_NOT_FOUND);
        kept = read_whole_file(out_path, &size);
        ck_assert_uint_eq(size, 3);
        ck_assert_int_eq(memcmp(kept, "old", 3), 0);
        free(kept);
    }
    ck_assert_int_eq(rb_report_write_html(dirs, 0, out_path, NULL, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_report_write_html(dirs, 1, NULL, NULL, NULL), RB_ERR_INVALID_ARGUMENT);
}
END_TEST

/* A grid stopped before its first results.csv: runs shown, the missing
 * table and the unfinished runs said. */
START_TEST(half_finished_grid)
{
    char g[300], e[300];
    const char *dirs[2] = {g, e};
    said s = {0};
    rb_report_outcome out;
    char *page;
    put("h/sources/a-eps0-s0/config.json", CONFIG);
    put("h/sources/a-eps0-s0/log.jsonl", SOURCE_LOG);
    put("h/sources/a-eps0-s0/result.json", "{\"test_acc\": 0.8, \"seconds\": 4.0}\n");
    put("h/sources/a-eps1-s0/log.jsonl", SOURCE_LOG); /* training */
    put("h/transfers/a-eps0-s0/t-fixed-s0/config.json", CONFIG);
    put("e/sources/.keep", ""); /* a grid that has not started: nothing to show */
    snprintf(g, sizeof g, "%s/h", dir);
    snprintf(e, sizeof e, "%s/e", dir);
    page = report_of(dirs, 2, &s, RB_OK, &out);
    ck_assert_int_eq(s.n, 3);
    ck_assert_msg(strstr(s.line[0], "/h: no results.csv yet (no source model has finished with its transfers): "
                                    "table, verdicts and plot left out") != NULL, "%s", s.line[0]);
    ck_assert_msg(strstr(s.line[1], "/h: 2 runs unfinished (no result.json: sources/a-eps1-s0, "
                                    "transfers/a-eps0-s0/t-fixed-s0); listed without results") != NULL,
                  "%s", s.line[1]);
    ck_assert_msg(strstr(s.line[2], "/e: a grid's folder with nothing in it yet") != NULL, "%s", s.line[2]);
    ck_assert_uint_eq(out.folders, 1);
    ck_assert_uint_eq(out.grids, 1);
    HAS(page, "<h1>robusta report: h</h1>"); /* the folders shown */
    ck_assert_int_eq(count_of(page, "<section id="), 1);
    ck_assert_uint_eq(out.runs, 3);
    ck_assert_uint_eq(out.finished, 1);
    ck_assert_int_eq(count_of(page, "<table class=\"results\">"), 0);
    ck_assert_int_eq(count_of(page, "<svg "), 2); /* the two sources' curves */
    HAS(page, "<td>sources/a-eps1-s0</td><td>unfinished</td><td>2</td><td>4.0 s</td>");
    free(page);
}
END_TEST

/* Corrupt files: each one line, the rest of the page kept. */
START_TEST(corrupt_files_are_left_out_one_line_each)
{
    char g[300], path[512];
    const char *dirs[1] = {g};
    said s = {0};
    char *page;
    make_grid("c");
    snprintf(path, sizeof path, "%s/c/results.csv", dir);
    write_text(path, "arch,eps\nnot,a,row\n");
    put("c/transfers/a-eps0-s0/t-fixed-s0/metrics.json", "{\"accuracy\": 0.6, \"class_accuracy.0\": }");
    put("c/transfers/a-eps0-s0/t-fixed-s1/log.jsonl", "[1, 2]\n{\"epoch\": 1, \"train_loss\": \"low\"}\n"
                                                     "{\"epoch\": 2, \"train_loss\": 1.0}\n{\"epoch\": 2}\n");
    put("c/sources/a-eps0-s0/config.json", "[]");
    snprintf(g, sizeof g, "%s/c", dir);
    page = report_of(dirs, 1, &s, RB_OK, NULL);
    ck_assert_int_eq(s.n, 4);
    ck_assert_msg(strstr(s.line[0], "/c/results.csv:1:") != NULL &&
                  strstr(s.line[0], "(table, verdicts and plot left out)") != NULL, "%s", s.line[0]);
    ck_assert_msg(strstr(s.line[1], "/c/sources/a-eps0-s0/config.json: a JSON array, not an object; left out") !=
                  NULL, "%s", s.line[1]);
    ck_assert_msg(strstr(s.line[2], "/c/transfers/a-eps0-s0/t-fixed-s0/metrics.json: not JSON (") != NULL &&
                  strstr(s.line[2], "; left out") != NULL, "%s", s.line[2]);
    ck_assert_msg(strstr(s.line[3], "/c/transfers/a-eps0-s0/t-fixed-s1/log.jsonl: 3 of 4 lines skipped (line 1: a "
                                    "JSON array, not an object)") != NULL, "%s", s.line[3]);
    /* kept: per-class scores without the corrupt metrics (eps 0: 0.7 and 0.7 from seed 1 alone) */
    ck_assert_int_eq(count_of(page, "<table class=\"results\">"), 0);
    HAS(page, "<td>a \xc2\xb7 fixed-feature \xc2\xb7 standard (\xce\xb5=0)</td><td>70.0</td><td>70.0</td></tr>");
    /* contents (the folder, provenance, about, left out), provenance (the one readable config), left out */
    ck_assert_int_eq(count_of(page, "<li>"), 4 + 1 + 4);
    free(page);
}
END_TEST

/* results.csv written before the last transfers finished. */
START_TEST(stale_results_csv_is_said)
{
    char g[300], path[512];
    const char *dirs[1] = {g};
    said s = {0};
    rb_grid_result *rows;
    size_t n;
    char *page;
    make_grid("st");
    snprintf(path, sizeof path, "%s/st/results.csv", dir);
    ck_assert_int_eq(rb_grid_read_csv(path, &rows, &n), RB_OK);
    ck_assert_int_eq(rb_grid_write_csv(path, rows, 2), RB_OK); /* eps 0's rows only */
    free(rows);
    /* and a class index past what a table shows */
    put("st/transfers/a-eps1-s0/t-fixed-s1/metrics.json",
        "{\"accuracy\": 0.9, \"class_accuracy.0\": 0.8, \"class_accuracy.1\": 1, \"class_accuracy.5000\": 1}");
    snprintf(g, sizeof g, "%s/st", dir);
    page = report_of(dirs, 1, &s, RB_OK, NULL);
    ck_assert_int_eq(s.n, 2);
    ck_assert_msg(strstr(s.line[0], "/st/results.csv: 2 rows, but 4 transfers have finished: it is older than they "
                                    "are") != NULL, "%s", s.line[0]);
    ck_assert_msg(strstr(s.line[1], "/st, target t: class_accuracy.K up to class 5000; the first 1000 classes shown")
                  != NULL, "%s", s.line[1]);
    ck_assert_int_eq(count_of(page, "<table class=\"results\">"), 1);
    /* classes 0 and 1 only: eps 1's runs are (0.9, 0.7) and (0.8, 1) */
    HAS(page, "<td>a \xc2\xb7 fixed-feature \xc2\xb7 robust \xce\xb5=1</td><td>85.0</td><td>85.0</td></tr>");
    free(page);
}
END_TEST

/* The command: usage, the printed summary, --strict, nothing to report. */
START_TEST(the_command)
{
    char g[300], r[300], out_path[512], out_arg[600], empty[300];
    run_result rr;
    make_grid("g");
    make_run();
    snprintf(g, sizeof g, "%s/g", dir);
    snprintf(r, sizeof r, "%s/run", dir);
    snprintf(empty, sizeof empty, "%s/empty", dir);
    ck_assert_int_eq(mkdir(empty, 0700), 0);
    snprintf(out_path, sizeof out_path, "%s/page.html", dir);
    snprintf(out_arg, sizeof out_arg, "--out=%s", out_path);

    run_robusta_deadline(&rr, NULL, 60, (const char *const[]){"report", NULL});
    ck_assert_int_eq(rr.code, 2);
    ck_assert_str_eq(rr.err, "robusta report: give one or more grid or run folders (robusta report DIR [DIR ...] "
                             "--out report.html)\n");

    run_robusta_deadline(&rr, NULL, 60, (const char *const[]){"report", g, out_arg, NULL});
    ck_assert_msg(rr.code == 0, "%s", rr.err);
    ck_assert_str_eq(rr.err, "");
    ck_assert_msg(strstr(rr.out, ": 1 grid and 0 run folders (6 of 6 runs finished), ") != NULL, "%s", rr.out);

    run_robusta_deadline(&rr, NULL, 60, (const char *const[]){"report", g, r, out_arg, "--strict", NULL});
    ck_assert_int_eq(rr.code, 1);
    ck_assert_int_eq(count_lines(rr.err), 2);
    ck_assert_msg(strstr(rr.err, "robusta report: ") == rr.err && strstr(rr.err, "run/log.jsonl: 1 of 3 lines "
                  "skipped") != NULL, "%s", rr.err);
    ck_assert_msg(strstr(rr.err, "\nrobusta report: 1 thing left out (--strict)\n") != NULL, "%s", rr.err);
    ck_assert_int_eq(access(out_path, F_OK), 0);

    run_robusta_deadline(&rr, NULL, 60, (const char *const[]){"report", empty, out_arg, NULL});
    ck_assert_int_eq(rr.code, 1);
    ck_assert_int_eq(count_lines(rr.err), 2);
    ck_assert_msg(strstr(rr.err, "\nrobusta report: nothing to report: ") != NULL, "%s", rr.err);
}
END_TEST

static Suite *report_html_suite(void)
{
    Suite *s = suite_create("report_html");
    TCase *tc = tcase_create("report");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, grid_and_run_on_one_page);
    tcase_add_test(tc, the_page_parses_strictly_and_renders);
    tcase_add_test(tc, nothing_to_report_writes_nothing);
    tcase_add_test(tc, half_finished_grid);
    tcase_add_test(tc, corrupt_files_are_left_out_one_line_each);
    tcase_add_test(tc, stale_results_csv_is_said);
    tcase_add_test(tc, the_command);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(report_html_suite());
}
