/* Grid reports (robusta/grid.h): results.csv round trip and refusals, the
 * markdown table and the summary as exact text for hand-computed results,
 * and the SVG plot's structure. */
#include "config.h"

#include <math.h>
#include <stdbool.h>
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

/* The headers of files written before rows named their metric, before
 * robust target accuracy, and today's. */
#define OLD_HEADER                                                                                         \
    "arch,eps,source_eps,source_seed,source_test_acc,source_robust_acc,target,mode,transfer_seed,target_acc," \
    "seconds\n"
#define METRIC_HEADER                                                                                      \
    "arch,eps,source_eps,source_seed,source_test_acc,source_robust_acc,target,mode,transfer_seed,target_acc," \
    "seconds,metric\n"
#define HEADER                                                                                             \
    "arch,eps,source_eps,source_seed,source_test_acc,source_robust_acc,target,mode,transfer_seed,target_acc," \
    "seconds,metric,target_robust_acc,robust_attack\n"

static rb_grid_result row(const char *arch, const char *eps_text, double eps, uint64_t source_seed,
                          double source_acc, double robust_acc, const char *target, const char *mode,
                          uint64_t transfer_seed, double acc)
{
    rb_grid_result r;
    memset(&r, 0, sizeof r);
    snprintf(r.arch, sizeof r.arch, "%s", arch);
    snprintf(r.eps_text, sizeof r.eps_text, "%s", eps_text);
    r.source_eps = eps;
    r.source_seed = source_seed;
    r.source_test_acc = source_acc;
    r.source_robust_acc = robust_acc;
    snprintf(r.target, sizeof r.target, "%s", target);
    snprintf(r.mode, sizeof r.mode, "%s", mode);
    r.transfer_seed = transfer_seed;
    r.target_acc = acc;
    r.seconds = 1.5;
    return r;
}

/* A small grid, by hand (percent):
 *   fixed t1 eps 0:   70, 72, 74  -> mean 72, sd sqrt((4+0+4)/2) = 2
 *   fixed t1 eps 0.5: 80, 81, 82  -> 81 ± 1 (best of fixed t1: bold)
 *   full  t1 eps 0:   90, 91, 92  -> 91 ± 1 (best of full t1: bold)
 *   full  t1 eps 0.5: 89, 90, 91  -> 90 ± 1
 *   fixed t2 eps 0:   55 (one run); eps 0.5: 60 (one run, bold)
 * Source models: eps 0 seeds 0 and 1 have clean accuracy 90 and 92 (91 ±
 * sqrt(2) = 1.4); eps 0.5 seed 0 has 80 (seed 1 unknown) and robust 40.
 * The t1 runs split by source seed: seed 0 has two transfer seeds, seed 1
 * one. fixed eps 0: source means 71 and 74, s = 3/sqrt(2) = 2.1; within
 * seed 0, t = sqrt(((70-71)^2 + (72-71)^2) / 1) = 1.4. The other t1 cells
 * (80, 81 | 82; 90, 91 | 92; 89, 90 | 91) have s = 1.5/sqrt(2) = 1.1 and
 * t = sqrt(0.5) = 0.7. */
#define ROWS_D1 14
static void make_d1(rb_grid_result *r)
{
    size_t k = 0;
    r[k++] = row("r18", "0", 0, 0, 0.90, NAN, "t1", "fixed", 0, 0.70);
    r[k++] = row("r18", "0", 0, 0, 0.90, NAN, "t1", "fixed", 1, 0.72);
    r[k++] = row("r18", "0", 0, 1, 0.92, NAN, "t1", "fixed", 0, 0.74);
    r[k++] = row("r18", "0.5", 0.5, 0, 0.80, 0.40, "t1", "fixed", 0, 0.80);
    r[k++] = row("r18", "0.5", 0.5, 0, 0.80, 0.40, "t1", "fixed", 1, 0.81);
    r[k++] = row("r18", "0.5", 0.5, 1, NAN, NAN, "t1", "fixed", 0, 0.82);
    r[k++] = row("r18", "0", 0, 0, 0.90, NAN, "t1", "full", 0, 0.90);
    r[k++] = row("r18", "0", 0, 0, 0.90, NAN, "t1", "full", 1, 0.91);
    r[k++] = row("r18", "0", 0, 1, 0.92, NAN, "t1", "full", 0, 0.92);
    r[k++] = row("r18", "0.5", 0.5, 0, 0.80, 0.40, "t1", "full", 0, 0.89);
    r[k++] = row("r18", "0.5", 0.5, 0, 0.80, 0.40, "t1", "full", 1, 0.90);
    r[k++] = row("r18", "0.5", 0.5, 1, NAN, NAN, "t1", "full", 0, 0.91);
    r[k++] = row("r18", "0", 0, 0, 0.90, NAN, "t2", "fixed", 0, 0.55);
    r[k++] = row("r18", "0.5", 0.5, 0, 0.80, 0.40, "t2", "fixed", 0, 0.60);
    ck_assert_int_eq(k, ROWS_D1);
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

START_TEST(csv_round_trip_keeps_every_field)
{
    rb_grid_result rows[ROWS_D1 + 2], *back = NULL;
    char path[512];
    size_t n = 99;
    make_d1(rows); /* no metric given: accuracy */
    rows[ROWS_D1] = row("wide.x-2", "8/255", 8.0 / 255, UINT64_MAX, NAN, 0.123456789, "c_10", "full", 7, NAN);
    rows[ROWS_D1].seconds = NAN;
    snprintf(rows[ROWS_D1].metric, sizeof rows[ROWS_D1].metric, "accuracy");
    rows[ROWS_D1 + 1] = row("r18", "0", 0, 0, 0.9, NAN, "scenes", "fixed", 0, 0.4375);
    snprintf(rows[ROWS_D1 + 1].metric, sizeof rows[ROWS_D1 + 1].metric, "miou");
    snprintf(path, sizeof path, "%s/results.csv", dir);
    ck_assert_msg(rb_grid_write_csv(path, rows, ROWS_D1 + 2) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(count_dir_entries(dir), 1); /* no temporary file left */
    ck_assert_msg(rb_grid_read_csv(path, &back, &n) == RB_OK, "%s", rb_last_error());
    ck_assert_uint_eq(n, ROWS_D1 + 2);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(back[i].metric, i == ROWS_D1 + 1 ? "miou" : "accuracy");
        ck_assert_str_eq(back[i].arch, rows[i].arch);
        ck_assert_str_eq(back[i].eps_text, rows[i].eps_text);
        ck_assert(back[i].source_eps == rows[i].source_eps); /* bit for bit, 8/255 too */
        ck_assert(back[i].source_seed == rows[i].source_seed);
        ck_assert(same_double(back[i].source_test_acc, rows[i].source_test_acc));
        ck_assert(same_double(back[i].source_robust_acc, rows[i].source_robust_acc));
        ck_assert_str_eq(back[i].target, rows[i].target);
        ck_assert_str_eq(back[i].mode, rows[i].mode);
        ck_assert(back[i].transfer_seed == rows[i].transfer_seed);
        ck_assert(same_double(back[i].target_acc, rows[i].target_acc));
        ck_assert(same_double(back[i].seconds, rows[i].seconds));
    }
    free(back);

    /* the last row as written: NAN is an empty field */
    {
        size_t size;
        char *text = (char *)read_whole_file(path, &size);
        text[size] = '\0';
        ck_assert_msg(starts_with(text, HEADER "r18,0,0,0,0.9,,t1,fixed,0,0.7,1.5,accuracy,,\n"), "%s", text);
        ck_assert_msg(strstr(text, "\nwide.x-2,8/255,0.031372549019607843,18446744073709551615,,0.123456789,c_10,"
                                   "full,7,,,accuracy,,\n") != NULL,
                      "%s", text);
        ck_assert_msg(strstr(text, "\nr18,0,0,0,0.9,,scenes,fixed,0,0.4375,1.5,miou,,\n") != NULL, "%s", text);
        free(text);
    }

    /* no rows: a header alone */
    ck_assert_int_eq(rb_grid_write_csv(path, NULL, 0), RB_OK);
    ck_assert_int_eq(rb_grid_read_csv(path, &back, &n), RB_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(back);
}
END_TEST

START_TEST(csv_refuses_what_it_cannot_write_unquoted)
{
    rb_grid_result r = row("a,b", "0", 0, 0, 0.5, NAN, "t", "fixed", 0, 0.5);
    char path[512];
    snprintf(path, sizeof path, "%s/results.csv", dir);
    ck_assert_int_eq(rb_grid_write_csv(path, &r, 1), RB_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(rb_last_error(), "row 1: arch 'a,b'") != NULL, "%s", rb_last_error());
    ck_assert_msg(strstr(rb_last_error(), "hold no comma, quote or line break") != NULL, "%s", rb_last_error());
    r = row("a", "0", 0, 0, 0.5, NAN, "t\"", "fixed", 0, 0.5);
    ck_assert_int_eq(rb_grid_write_csv(path, &r, 1), RB_ERR_INVALID_ARGUMENT);
    r = row("a", "0", 0, 0, 0.5, NAN, "t", "half", 0, 0.5);
    ck_assert_int_eq(rb_grid_write_csv(path, &r, 1), RB_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(rb_last_error(), "mode 'half' is not fixed or full") != NULL, "%s", rb_last_error());
    /* a metric is refused as labels are */
    r = row("a", "0", 0, 0, 0.5, NAN, "t", "full", 0, 0.5);
    snprintf(r.metric, sizeof r.metric, "mi,ou");
    ck_assert_int_eq(rb_grid_write_csv(path, &r, 1), RB_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(rb_last_error(), "/results.csv: row 1: metric 'mi,ou' must hold no comma, quote or line "
                                          "break") != NULL,
                  "%s", rb_last_error());
    snprintf(r.metric, sizeof r.metric, "m\"iou");
    ck_assert_int_eq(rb_grid_write_csv(path, &r, 1), RB_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strchr(rb_last_error(), '\n') == NULL, "%s", rb_last_error());
    /* ... and one that is not NUL-terminated */
    memset(r.metric, 'x', sizeof r.metric);
    ck_assert_int_eq(rb_grid_write_csv(path, &r, 1), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "grid results row 1: a label is not NUL-terminated");
    ck_assert_int_eq(count_dir_entries(dir), 0); /* nothing written */
}
END_TEST

static void expect_read_error(const char *content, rb_status want_status, const char *want)
{
    char path[512], full[1024];
    rb_grid_result *rows = (rb_grid_result *)1;
    size_t n = 7;
    snprintf(path, sizeof path, "%s/bad.csv", dir);
    write_text(path, content);
    ck_assert_int_eq(rb_grid_read_csv(path, &rows, &n), want_status);
    ck_assert_ptr_null(rows);
    ck_assert_uint_eq(n, 0);
    snprintf(full, sizeof full, "%s%s", path, want);
    ck_assert_msg(strstr(rb_last_error(), full) != NULL, "got '%s', want '%s'", rb_last_error(), full);
    /* the same bytes parsed in memory say the same, under the name given */
    rows = (rb_grid_result *)1;
    n = 7;
    ck_assert_int_eq(rb_grid_parse_csv(content, strlen(content), "text.csv", &rows, &n), want_status);
    ck_assert_ptr_null(rows);
    ck_assert_uint_eq(n, 0);
    snprintf(full, sizeof full, "text.csv%s", want);
    ck_assert_msg(strstr(rb_last_error(), full) == rb_last_error(), "got '%s', want '%s'", rb_last_error(), full);
}


START_TEST(csv_reading_names_the_bad_line)
{
    rb_grid_result *rows = NULL;
    size_t n = 0;
    char path[512];
    expect_read_error("arch,eps\n", RB_ERR_CORRUPT,
                      ":1: expected the header 'arch,eps,source_eps,source_seed,source_test_acc,source_robust_acc,"
                      "target,mode,transfer_seed,target_acc,seconds,metric,target_robust_acc,robust_attack'");
    expect_read_error("", RB_ERR_CORRUPT, " is empty: expected the header");
    expect_read_error(OLD_HEADER "r18,0,0,0,0.9,,t1,fixed,0,0.7\n", RB_ERR_CORRUPT,
                      ":2: expected 11 comma-separated fields, found 10");
    expect_read_error(METRIC_HEADER "r18,0,0,0,0.9,,t1,fixed,0,0.7,1,accuracy\n"
                                    "r18,0,0,0,0.9,,t1,fixed,0,abc,1,accuracy\n",
                      RB_ERR_CORRUPT, ":3: field 'target_acc' is 'abc': expected a number or nothing");
    expect_read_error(METRIC_HEADER "r18,0,0,0,0.9,,t1,semi,0,0.7,1,accuracy\n", RB_ERR_CORRUPT,
                      ":2: field 'mode' is 'semi': expected fixed or full");
    expect_read_error(METRIC_HEADER "r18,0,0,-1,0.9,,t1,full,0,0.7,1,accuracy\n", RB_ERR_CORRUPT,
                      ":2: field 'source_seed' is '-1': expected an unsigned integer");
    expect_read_error(METRIC_HEADER "r18,0,,0,0.9,,t1,full,0,0.7,1,accuracy\n", RB_ERR_CORRUPT,
                      ":2: field 'source_eps' is '': expected a finite number >= 0");
    expect_read_error(METRIC_HEADER ",0,0,0,0.9,,t1,full,0,0.7,1,accuracy\n", RB_ERR_CORRUPT, ":2: field 'arch' is ''");
    /* the metric column: present under the second header, absent under the first */
    expect_read_error(METRIC_HEADER "r18,0,0,0,0.9,,t1,full,0,0.7,1\n", RB_ERR_CORRUPT,
                      ":2: expected 12 comma-separated fields, found 11");
    expect_read_error(OLD_HEADER "r18,0,0,0,0.9,,t1,full,0,0.7,1,miou\n", RB_ERR_CORRUPT,
                      ":2: expected 11 comma-separated fields, found 12");
    expect_read_error(METRIC_HEADER "r18,0,0,0,0.9,,t1,full,0,0.7,1,\n", RB_ERR_CORRUPT,
                      ":2: field 'metric' is '': expected a metric name of 1 to 31 characters, no quote");
    expect_read_error(METRIC_HEADER "r18,0,0,0,0.9,,t1,full,0,0.7,1,m\"iou\n", RB_ERR_CORRUPT,
                      ":2: field 'metric' is 'm\"iou': expected a metric name");
    expect_read_error(METRIC_HEADER "r18,0,0,0,0.9,,t1,full,0,0.7,1,abcdefghijklmnopqrstuvwxyz012345\n", RB_ERR_CORRUPT,
                      ":2: field 'metric' is 'abcdefghijklmnopqrstuvwxyz012345': expected a metric name of 1 to 31");

    /* CRLF, blank lines and a last line without a newline are fine */
    snprintf(path, sizeof path, "%s/ok.csv", dir);
    write_text(path, "arch,eps,source_eps,source_seed,source_test_acc,source_robust_acc,target,mode,transfer_seed,"
                     "target_acc,seconds\r\nr18,0,0,0,0.9,,t1,fixed,0,0.7,1\r\n\r\nr18,0,0,1,,,t1,full,0,0.75,");
    ck_assert_msg(rb_grid_read_csv(path, &rows, &n) == RB_OK, "%s", rb_last_error());
    ck_assert_uint_eq(n, 2);
    ck_assert(rows[1].target_acc == 0.75 && isnan(rows[1].seconds) && isnan(rows[1].source_test_acc));
    /* a file of an earlier version: every row is an accuracy */
    ck_assert_str_eq(rows[0].metric, "accuracy");
    ck_assert_str_eq(rows[1].metric, "accuracy");
    free(rows);
    /* the second version's: each row its own metric (31 characters fit) */
    write_text(path, METRIC_HEADER "r18,0,0,0,0.9,,t1,fixed,0,0.7,1,accuracy\nr18,0,0,0,0.9,,s,fixed,0,0.5,1,miou\n"
                                   "r18,0,0,0,0.9,,u,fixed,0,0.5,1,abcdefghijklmnopqrstuvwxyz01234");
    ck_assert_msg(rb_grid_read_csv(path, &rows, &n) == RB_OK, "%s", rb_last_error());
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(rows[0].metric, "accuracy");
    ck_assert_str_eq(rows[1].metric, "miou");
    ck_assert_str_eq(rows[2].metric, "abcdefghijklmnopqrstuvwxyz01234");
    free(rows);

    snprintf(path, sizeof path, "%s/missing.csv", dir);
    ck_assert_int_eq(rb_grid_read_csv(path, &rows, &n), RB_ERR_NOT_FOUND);
}
END_TEST

START_TEST(markdown_table_is_shaped_like_the_paper)
{
    rb_grid_result rows[ROWS_D1];
    char *md = NULL;
    make_d1(rows);
    ck_assert_msg(rb_grid_markdown(rows, ROWS_D1, &md) == RB_OK, "%s", rb_last_error());
    ck_assert_str_eq(md,
                     "| source model | source acc | source robust acc | t1 | t2 |\n"
                     "|---|---:|---:|---:|---:|\n"
                     "| r18 · fixed-feature · standard (ε=0) | 91.0 ± 1.4 | — | 72.0 ± 2.0 (s 2.1, t 1.4) (n=3) | 55.0 (n=1) |\n"
                     "| r18 · fixed-feature · robust ε=0.5 | 80.0 | 40.0 | **81.0 ± 1.0** (s 1.1, t 0.7) (n=3) | **60.0** (n=1) |\n"
                     "| r18 · full-network · standard (ε=0) | 91.0 ± 1.4 | — | **91.0 ± 1.0** (s 1.1, t 0.7) (n=3) | — |\n"
                     "| r18 · full-network · robust ε=0.5 | 80.0 | 40.0 | 90.0 ± 1.0 (s 1.1, t 0.7) (n=3) | — |\n"
                     "\n"
                     "Target test accuracy (%): mean ± sample standard deviation over the n runs shown in each "
                     "cell (source seeds × transfer seeds); bold: the best mean of each architecture and mode "
                     "for a target. source acc: the source models' clean test accuracy (%), over source seeds. "
                     "source robust acc: their test accuracy under the PGD evaluation attack (%), over source "
                     "seeds. In brackets, where a cell has several source models: s, the standard deviation over "
                     "source seeds of the source models' mean target accuracy (each over its transfer seeds); t, "
                     "the pooled standard deviation over transfer seeds within a source model.\n");
    free(md);

    /* Every cell with the same count: one figure in the note, none in the
     * cells; no robust accuracy: no column; one eps with runs: no bold. */
    {
        rb_grid_result two[2] = {row("a", "0", 0, 0, NAN, NAN, "t", "fixed", 0, 0.5),
                                 row("a", "1/2", 0.5, 0, NAN, NAN, "u", "fixed", 0, 0.25)};
        ck_assert_int_eq(rb_grid_markdown(two, 2, &md), RB_OK);
        ck_assert_msg(starts_with(md, "| source model | source acc | t | u |\n"
                                      "|---|---:|---:|---:|\n"
                                      "| a · fixed-feature · standard (ε=0) | — | 50.0 | — |\n"
                                      "| a · fixed-feature · robust ε=1/2 | — | — | 25.0 |\n"
                                      "\n"
                                      "Target test accuracy (%): mean ± sample standard deviation over n = 1 run "
                                      "per cell"),
                      "%s", md);
        free(md);
    }
    ck_assert_int_eq(rb_grid_markdown(NULL, 0, &md), RB_OK);
    ck_assert_str_eq(md, "_No results yet._\n");
    free(md);
}
END_TEST

START_TEST(summary_says_who_won_and_whether_it_beats_the_spread)
{
    rb_grid_result rows[ROWS_D1];
    char *text = NULL;
    make_d1(rows);
    ck_assert_msg(rb_grid_summary(rows, ROWS_D1, &text) == RB_OK, "%s", rb_last_error());
    /* fixed t1: 81 - 72 = +9 > 1 + 2; full t1: 90 - 91 = -1, |1| <= 1 + 1 */
    ck_assert_str_eq(text, "r18, fixed-feature, t1: robust ε=0.5 beats standard by +9.0 points (81.0 ± 1.0 vs "
                           "72.0 ± 2.0, 3 runs each) — larger than the spread over source seeds (sd 1.1 and 2.1)\n"
                           "r18, fixed-feature, t2: robust ε=0.5 beats standard by +5.0 points (60.0 vs 55.0, 1 "
                           "run each) — single run, no spread\n"
                           "r18, full-network, t1: standard beats the best robust (ε=0.5) by 1.0 points (91.0 ± "
                           "1.0 vs 90.0 ± 1.0, 3 runs each) — within the spread over source seeds (sd 1.1 and 1.1)\n"
                           "r18, full-network, t2: no runs yet\n");
    free(text);

    /* ns: no eps 0; best robust is 0.5 (70 > 55). nr: no eps > 0 (50, 70:
     * 60 ± 14.1). mix: 0.25 (60, 62: 61 ± 1.4) beats 0.5 (55) and beats
     * standard (50, 52, 54: 52 ± 2) by 9 > 1.4 + 2. */
    {
        rb_grid_result r[] = {
            row("w", "0.25", 0.25, 0, NAN, NAN, "ns", "fixed", 0, 0.5),
            row("w", "0.25", 0.25, 1, NAN, NAN, "ns", "fixed", 0, 0.6),
            row("w", "0.5", 0.5, 0, NAN, NAN, "ns", "fixed", 0, 0.7),
            row("w", "0", 0, 0, NAN, NAN, "nr", "fixed", 0, 0.5),
            row("w", "0", 0, 1, NAN, NAN, "nr", "fixed", 0, 0.7),
            row("w", "0", 0, 0, NAN, NAN, "mix", "fixed", 0, 0.50),
            row("w", "0", 0, 0, NAN, NAN, "mix", "fixed", 1, 0.52),
            row("w", "0", 0, 0, NAN, NAN, "mix", "fixed", 2, 0.54),
            row("w", "0.25", 0.25, 0, NAN, NAN, "mix", "fixed", 0, 0.60),
            row("w", "0.25", 0.25, 0, NAN, NAN, "mix", "fixed", 1, 0.62),
            row("w", "0.5", 0.5, 0, NAN, NAN, "mix", "fixed", 0, 0.55),
        };
        ck_assert_int_eq(rb_grid_summary(r, sizeof r / sizeof r[0], &text), RB_OK);
        ck_assert_str_eq(text, "w, fixed-feature, ns: no standard (ε=0) run to compare with; best robust ε=0.5: "
                               "70.0 (1 run)\n"
                               "w, fixed-feature, nr: no robust (ε>0) run to compare with; standard: 60.0 ± 14.1 "
                               "(2 runs)\n"
                               "w, fixed-feature, mix: robust ε=0.25 beats standard by +9.0 points (61.0 ± 1.4 vs "
                               "52.0 ± 2.0, 2 and 3 runs) — larger than the seed spread (one source seed: source "
                               "training's own spread is not measured)\n");
        free(text);
    }
    /* Transfer seeds repeat their source model's result, so the runs look
     * tighter than the source models are. standard: source means 50 and 60
     * (sd 7.07), robust: 62 and 72 (sd 7.07); delta 67 - 55 = 12. Over the
     * six runs of each side the sd is sqrt(6 * 25 / 5) = 5.48 and 12 > 10.95
     * would pass for "larger"; over source seeds 12 < 14.14 is "within". */
    {
        rb_grid_result r[12];
        for (int i = 0; i < 12; i++) {
            int robust = i >= 6, seed = (i / 3) % 2;
            r[i] = row("w", robust ? "1" : "0", robust, (uint64_t)seed, NAN, NAN, "t", "fixed", (uint64_t)(i % 3),
                       (robust ? 0.62 : 0.50) + 0.10 * seed);
        }
        ck_assert_int_eq(rb_grid_summary(r, 12, &text), RB_OK);
        ck_assert_str_eq(text, "w, fixed-feature, t: robust ε=1 beats standard by +12.0 points (67.0 ± 5.5 vs "
                               "55.0 ± 5.5, 6 runs each) — within the spread over source seeds (sd 7.1 and 7.1)\n");
        free(text);
        ck_assert_int_eq(rb_grid_markdown(r, 12, &text), RB_OK);
        ck_assert_msg(strstr(text, "| 55.0 ± 5.5 (s 7.1, t 0.0) |") != NULL, "%s", text);
        free(text);
    }
    ck_assert_int_eq(rb_grid_summary(NULL, 0, &text), RB_OK);
    ck_assert_str_eq(text, "No results yet.\n");
    free(text);
}
END_TEST

static rb_grid_result metric_row(const char *eps_text, double eps, double source_acc, const char *target,
                                 const char *metric, uint64_t transfer_seed, double score)
{
    rb_grid_result r = row("r18", eps_text, eps, 0, source_acc, NAN, target, "fixed", transfer_seed, score);
    snprintf(r.metric, sizeof r.metric, "%s", metric);
    return r;
}

/* Two targets side by side, by hand (percent, one source seed, two transfer
 * seeds each):
 *   cls (accuracy):  eps 0: 70, 72 -> 71.0 ± 1.4;  eps 0.5: 80, 82 -> 81.0 ± 1.4
 *   scenes (miou):   eps 0: 40, 44 -> 42.0 ± 2.8;  eps 0.5: 46, 50 -> 48.0 ± 2.8
 * (sd of two values a, b: |a - b| / sqrt(2)). Verdicts: +10.0 > 1.4 + 1.4
 * and +6.0 > 2.8 + 2.8, both larger than the seed spread. */
#define ROWS_MIX 8
static void make_mix(rb_grid_result *r)
{
    size_t k = 0;
    r[k++] = metric_row("0", 0, 0.9, "cls", "accuracy", 0, 0.70);
    r[k++] = metric_row("0", 0, 0.9, "cls", "", 1, 0.72); /* empty reads as accuracy */
    r[k++] = metric_row("0.5", 0.5, 0.8, "cls", "accuracy", 0, 0.80);
    r[k++] = metric_row("0.5", 0.5, 0.8, "cls", "accuracy", 1, 0.82);
    r[k++] = metric_row("0", 0, 0.9, "scenes", "miou", 0, 0.40);
    r[k++] = metric_row("0", 0, 0.9, "scenes", "miou", 1, 0.44);
    r[k++] = metric_row("0.5", 0.5, 0.8, "scenes", "miou", 0, 0.46);
    r[k++] = metric_row("0.5", 0.5, 0.8, "scenes", "miou", 1, 0.50);
    ck_assert_int_eq(k, ROWS_MIX);
}

START_TEST(a_miou_target_says_so_next_to_an_accuracy_one)
{
    rb_grid_result rows[ROWS_MIX];
    char *text = NULL;
    make_mix(rows);
    ck_assert_msg(rb_grid_markdown(rows, ROWS_MIX, &text) == RB_OK, "%s", rb_last_error());
    ck_assert_str_eq(text, "| source model | source acc | cls | scenes (mIoU) |\n"
                           "|---|---:|---:|---:|\n"
                           "| r18 · fixed-feature · standard (ε=0) | 90.0 | 71.0 ± 1.4 | 42.0 ± 2.8 |\n"
                           "| r18 · fixed-feature · robust ε=0.5 | 80.0 | **81.0 ± 1.4** | **48.0 ± 2.8** |\n"
                           "\n"
                           "Target test score (%), accuracy or the metric its column names: mean ± sample standard "
                           "deviation over n = 2 runs per cell (source seeds × transfer seeds); bold: the best mean "
                           "of each architecture and mode for a target. source acc: the source models' clean test "
                           "accuracy (%), over source seeds.\n");
    free(text);
    ck_assert_msg(rb_grid_summary(rows, ROWS_MIX, &text) == RB_OK, "%s", rb_last_error());
    ck_assert_str_eq(text, "r18, fixed-feature, cls: robust ε=0.5 beats standard by +10.0 points (81.0 ± 1.4 vs "
                           "71.0 ± 1.4, 2 runs each) — larger than the seed spread (one source seed: source "
                           "training's own spread is not measured)\n"
                           "r18, fixed-feature, scenes: robust ε=0.5 beats standard by +6.0 points of mIoU (48.0 ± "
                           "2.8 vs 42.0 ± 2.8, 2 runs each) — larger than the seed spread (one source seed: source "
                           "training's own spread is not measured)\n");
    free(text);

    /* The other verdicts of a named metric: standard winning (50 vs 45),
     * one side alone (61.0 ± 1.4 from 60 and 62), and AP's name. */
    {
        rb_grid_result r[] = {
            metric_row("0", 0, NAN, "seg", "miou", 0, 0.50), metric_row("1", 1, NAN, "seg", "miou", 0, 0.45),
            metric_row("0", 0, NAN, "alone", "miou", 0, 0.60), metric_row("0", 0, NAN, "alone", "miou", 1, 0.62),
            metric_row("1", 1, NAN, "boxes", "ap", 0, 0.25),
        };
        ck_assert_int_eq(rb_grid_summary(r, sizeof r / sizeof r[0], &text), RB_OK);
        ck_assert_str_eq(text, "r18, fixed-feature, seg: standard beats the best robust (ε=1) by 5.0 points of mIoU "
                               "(50.0 vs 45.0, 1 run each) — single run, no spread\n"
                               "r18, fixed-feature, alone: no robust (ε>0) run to compare with; standard: 61.0 ± 1.4 "
                               "mIoU (2 runs)\n"
                               "r18, fixed-feature, boxes: no standard (ε=0) run to compare with; best robust ε=1: "
                               "25.0 AP (1 run)\n");
        free(text);
        ck_assert_int_eq(rb_grid_markdown(r, sizeof r / sizeof r[0], &text), RB_OK);
        ck_assert_msg(starts_with(text, "| source model | source acc | seg (mIoU) | alone (mIoU) | boxes (AP) |\n"),
                      "%s", text);
        free(text);
    }
}
END_TEST

/* Robust target accuracy next to clean (percent, one source seed, two
 * transfer seeds, attack "pgd-l2 steps=10 eps=1"):
 *   t1 fixed eps 0: clean 80, 82 (81.0 ± 1.4), robust 10, 12 (11.0 ± 1.4)
 *   t1 fixed eps 1: clean 78, 80 (79.0 ± 1.4), robust 40, 44 (42.0 ± 2.8)
 *   t1 full  eps 0: clean 90, 92 (91.0 ± 1.4), robust 5, 7 (6.0 ± 1.4)
 *   t1 full  eps 1: clean 89, 91 (90.0 ± 1.4), robust 7, 9 (8.0 ± 1.4)
 *   seg (mIoU, not attacked) fixed: eps 0 50, 52 (51.0 ± 1.4); eps 1 54, 56 (55.0 ± 1.4)
 * Robust verdicts: fixed +31.0 > 2.8 + 1.4 (survived); full +2.0 <= 1.4 +
 * 1.4 (not clearly). */
#define ROBUST_ATTACK "pgd-l2 steps=10 eps=1"
#define ROWS_ROBUST 12
static void make_robust(rb_grid_result *r)
{
    static const double clean[8] = {0.80, 0.82, 0.78, 0.80, 0.90, 0.92, 0.89, 0.91};
    static const double robust[8] = {0.10, 0.12, 0.40, 0.44, 0.05, 0.07, 0.07, 0.09};
    size_t k = 0;
    for (int i = 0; i < 8; i++) {
        int eps = (i / 2) % 2;
        r[k] = row("r18", eps ? "1" : "0", eps, 0, NAN, NAN, "t1", i < 4 ? "fixed" : "full", (uint64_t)(i % 2),
                   clean[i]);
        r[k].target_robust_acc = robust[i];
        snprintf(r[k++].robust_attack, sizeof r[0].robust_attack, ROBUST_ATTACK);
    }
    for (int i = 0; i < 4; i++) {
        r[k] = metric_row(i < 2 ? "0" : "1", i < 2 ? 0 : 1, NAN, "seg", "miou", (uint64_t)(i % 2),
                          0.50 + 0.02 * i);
        k++;
    }
    ck_assert_int_eq(k, ROWS_ROBUST);
}

START_TEST(robust_target_accuracy_gets_its_column_verdict_and_line)
{
    rb_grid_result rows[ROWS_ROBUST], *back = NULL;
    char *text = NULL, path[512];
    size_t n = 0, size;
    make_robust(rows);
    ck_assert_msg(rb_grid_markdown(rows, ROWS_ROBUST, &text) == RB_OK, "%s", rb_last_error());
    ck_assert_str_eq(text, "| source model | source acc | t1 | t1 robust | seg (mIoU) |\n"
                           "|---|---:|---:|---:|---:|\n"
                           "| r18 · fixed-feature · standard (ε=0) | — | **81.0 ± 1.4** | 11.0 ± 1.4 | 51.0 ± 1.4 |\n"
                           "| r18 · fixed-feature · robust ε=1 | — | 79.0 ± 1.4 | **42.0 ± 2.8** | **55.0 ± 1.4** |\n"
                           "| r18 · full-network · standard (ε=0) | — | **91.0 ± 1.4** | 6.0 ± 1.4 | — |\n"
                           "| r18 · full-network · robust ε=1 | — | 90.0 ± 1.4 | **8.0 ± 1.4** | — |\n"
                           "\n"
                           "Target test score (%), accuracy or the metric its column names: mean ± sample standard "
                           "deviation over n = 2 runs per cell (source seeds × transfer seeds); bold: the best mean "
                           "of each architecture and mode for a target. source acc: the source models' clean test "
                           "accuracy (%), over source seeds. t1 robust: the transferred models' accuracy on t1's "
                           "test images attacked by " ROBUST_ATTACK " (%).\n");
    free(text);
    ck_assert_msg(rb_grid_summary(rows, ROWS_ROBUST, &text) == RB_OK, "%s", rb_last_error());
    ck_assert_str_eq(text,
                     "r18, fixed-feature, t1: standard beats the best robust (ε=1) by 2.0 points (81.0 ± 1.4 vs "
                     "79.0 ± 1.4, 2 runs each) — within the seed spread (one source seed: source training's own "
                     "spread is not measured)\n"
                     "r18, fixed-feature, t1 under " ROBUST_ATTACK ": the robust prior's robustness survived: "
                     "robust ε=1 keeps 42.0 ± 2.8 robust accuracy vs standard's 11.0 ± 1.4 (+31.0 points, 2 runs "
                     "each) — larger than the seed spread (one source seed: source training's own spread is not "
                     "measured)\n"
                     "r18, fixed-feature, seg: robust ε=1 beats standard by +4.0 points of mIoU (55.0 ± 1.4 vs "
                     "51.0 ± 1.4, 2 runs each) — larger than the seed spread (one source seed: source training's "
                     "own spread is not measured)\n"
                     "r18, full-network, t1: standard beats the best robust (ε=1) by 1.0 points (91.0 ± 1.4 vs "
                     "90.0 ± 1.4, 2 runs each) — within the seed spread (one source seed: source training's own "
                     "spread is not measured)\n"
                     "r18, full-network, t1 under " ROBUST_ATTACK ": the robust prior's robustness did not clearly "
                     "survive: robust ε=1 keeps 8.0 ± 1.4 robust accuracy vs standard's 6.0 ± 1.4 (+2.0 points, 2 "
                     "runs each) — within the seed spread (one source seed: source training's own spread is not "
                     "measured)\n"
                     "r18, full-network, seg: no runs yet\n");
    free(text);

    /* single runs cannot tell; one side alone */
    {
        rb_grid_result r[3] = {row("r18", "0", 0, 0, NAN, NAN, "t", "fixed", 0, 0.8),
                               row("r18", "1", 1, 0, NAN, NAN, "t", "fixed", 0, 0.7),
                               row("r18", "1", 1, 0, NAN, NAN, "u", "fixed", 0, 0.7)};
        for (int i = 0; i < 3; i++)
            snprintf(r[i].robust_attack, sizeof r[i].robust_attack, "square");
        r[0].target_robust_acc = 0.07;
        r[1].target_robust_acc = 0.05;
        r[2].target_robust_acc = NAN; /* named, not measured: skipped */
        ck_assert_int_eq(rb_grid_summary(r, 2, &text), RB_OK);
        ck_assert_msg(strstr(text, "r18, fixed-feature, t under square: a single run cannot tell whether the "
                                   "robust prior's robustness survived: robust ε=1 keeps 5.0 robust accuracy vs "
                                   "standard's 7.0 (-2.0 points, 1 run each) — single run, no spread\n") != NULL,
                      "%s", text);
        free(text);
        r[0].target_robust_acc = NAN;
        ck_assert_int_eq(rb_grid_summary(r, 3, &text), RB_OK);
        ck_assert_msg(strstr(text, "r18, fixed-feature, t under square: no standard (ε=0) run to compare with; best "
                                   "robust ε=1 keeps 5.0 robust accuracy (1 run)\n") != NULL,
                      "%s", text);
        ck_assert_msg(strstr(text, "u under square") == NULL, "no robust run of u, no line: %s", text);
        free(text);
    }

    /* lower: did not survive (robust 5, 7 -> 6.0 ± 1.4; standard 9, 11 -> 10.0 ± 1.4) */
    {
        static const double acc[4] = {0.09, 0.11, 0.05, 0.07};
        rb_grid_result r[4];
        for (int i = 0; i < 4; i++) {
            r[i] = row("r18", i < 2 ? "0" : "1", i < 2 ? 0 : 1, 0, NAN, NAN, "t", "full", (uint64_t)(i % 2), 0.5);
            r[i].target_robust_acc = acc[i];
            snprintf(r[i].robust_attack, sizeof r[i].robust_attack, "square");
        }
        ck_assert_int_eq(rb_grid_summary(r, 4, &text), RB_OK);
        ck_assert_msg(strstr(text, "r18, full-network, t under square: the robust prior's robustness did not survive: "
                                   "robust ε=1 keeps 6.0 ± 1.4 robust accuracy vs standard's 10.0 ± 1.4 (-4.0 "
                                   "points, 2 runs each) — larger than the seed spread") != NULL,
                      "%s", text);
        free(text);
    }

    /* results.csv keeps both, and the attack */
    snprintf(path, sizeof path, "%s/results.csv", dir);
    ck_assert_msg(rb_grid_write_csv(path, rows, ROWS_ROBUST) == RB_OK, "%s", rb_last_error());
    text = (char *)read_whole_file(path, &size);
    text[size] = '\0';
    ck_assert_msg(starts_with(text, HEADER "r18,0,0,0,,,t1,fixed,0,0.8,1.5,accuracy,0.1," ROBUST_ATTACK "\n"), "%s",
                  text);
    ck_assert_msg(strstr(text, "\nr18,0,0,0,,,seg,fixed,0,0.5,1.5,miou,,\n") != NULL, "%s", text);
    free(text);
    ck_assert_msg(rb_grid_read_csv(path, &back, &n) == RB_OK, "%s", rb_last_error());
    ck_assert_uint_eq(n, ROWS_ROBUST);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(back[i].robust_attack, rows[i].robust_attack);
        ck_assert(same_double(back[i].target_robust_acc, i < 8 ? rows[i].target_robust_acc : NAN));
    }
    free(back);
    /* an attack's text holding a comma cannot go unquoted */
    snprintf(rows[3].robust_attack, sizeof rows[3].robust_attack, "pgd-l2 eps=1,2");
    ck_assert_int_eq(rb_grid_write_csv(path, rows, ROWS_ROBUST), RB_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(rb_last_error(), "row 4: the robust attack's text must hold no comma") != NULL, "%s",
                  rb_last_error());
    expect_read_error(HEADER "r18,0,0,0,,,t1,full,0,0.7,1,accuracy,high,square\n", RB_ERR_CORRUPT,
                      ":2: field 'target_robust_acc' is 'high': expected a number or nothing");
    expect_read_error(HEADER "r18,0,0,0,,,t1,full,0,0.7,1,accuracy,0.5,sq\"uare\n", RB_ERR_CORRUPT,
                      ":2: field 'robust_attack' is 'sq\"uare': expected an attack's text");
    expect_read_error(HEADER "r18,0,0,0,,,t1,full,0,0.7,1,accuracy,0.5\n", RB_ERR_CORRUPT,
                      ":2: expected 14 comma-separated fields, found 13");

    /* one target, two attacks: refused */
    make_robust(rows);
    snprintf(rows[5].robust_attack, sizeof rows[5].robust_attack, "square");
    ck_assert_int_eq(rb_grid_markdown(rows, ROWS_ROBUST, &text), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "grid results: target 't1' mixes robust attacks, '" ROBUST_ATTACK "' in row 1 "
                                      "and 'square' in row 6 (evaluate every run of a target under one attack)");
}
END_TEST

START_TEST(a_target_mixing_metrics_is_refused)
{
    rb_grid_result rows[ROWS_MIX];
    char *text = (char *)1, path[512];
    static const char want[] = "grid results: target 'scenes' mixes metrics, miou in row 5 and ap in row 7 (a "
                               "target reports one metric: give another task's runs a target label of their own)";
    make_mix(rows);
    snprintf(rows[6].metric, sizeof rows[6].metric, "ap");
    snprintf(path, sizeof path, "%s/plot.svg", dir);
    ck_assert_int_eq(rb_grid_markdown(rows, ROWS_MIX, &text), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), want);
    ck_assert_ptr_null(text);
    text = (char *)1;
    ck_assert_int_eq(rb_grid_summary(rows, ROWS_MIX, &text), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), want);
    ck_assert_ptr_null(text);
    ck_assert_int_eq(rb_grid_write_svg(path, "t", rows, ROWS_MIX), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), want);
    ck_assert_int_eq(count_dir_entries(dir), 0); /* no plot, no temporary */
    /* an empty metric and "accuracy" are one metric; so is a NaN row's */
    make_mix(rows);
    rows[1].target_acc = NAN;
    snprintf(rows[0].metric, sizeof rows[0].metric, "%s", "");
    ck_assert_int_eq(rb_grid_summary(rows, ROWS_MIX, &text), RB_OK);
    free(text);
    snprintf(rows[1].metric, sizeof rows[1].metric, "miou"); /* NaN, but still a row of cls */
    ck_assert_int_eq(rb_grid_summary(rows, ROWS_MIX, &text), RB_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(rb_last_error(), "target 'cls' mixes metrics, accuracy in row 1 and miou in row 2") != NULL,
                  "%s", rb_last_error());
}
END_TEST

START_TEST(metrics_have_readable_names)
{
    ck_assert_str_eq(rb_grid_metric_label("accuracy"), "accuracy");
    ck_assert_str_eq(rb_grid_metric_label(""), "accuracy");
    ck_assert_str_eq(rb_grid_metric_label(NULL), "accuracy");
    ck_assert_str_eq(rb_grid_metric_label("miou"), "mIoU");
    ck_assert_str_eq(rb_grid_metric_label("ap"), "AP");
    ck_assert_str_eq(rb_grid_metric_label("ap50"), "AP50");
    ck_assert_str_eq(rb_grid_metric_label("ap75"), "AP75");
    ck_assert_str_eq(rb_grid_metric_label("balanced_accuracy"), "balanced accuracy");
    ck_assert_str_eq(rb_grid_metric_label("pixel_accuracy"), "pixel accuracy");
    ck_assert_str_eq(rb_grid_metric_label("dice"), "dice");
    ck_assert_str_eq(rb_grid_metric_label("MIOU"), "MIOU"); /* names are exact */
}
END_TEST

static int count_of(const char *s, const char *what)
{
    int n = 0;
    for (const char *c = strstr(s, what); c != NULL; c = strstr(c + 1, what))
        n++;
    return n;
}

/* Every start tag is closed in order (self-closing ones close themselves);
 * a stray '<' in text would open a tag that never closes. */
static void check_balanced(const char *s)
{
    char stack[16][32];
    int depth = 0;
    for (const char *c = strchr(s, '<'); c != NULL; c = strchr(c + 1, '<')) {
        const char *end = strchr(c, '>');
        size_t len;
        ck_assert_ptr_nonnull(end);
        if (c[1] == '?')
            continue;
        if (c[1] == '/') {
            len = (size_t)(end - c - 2);
            ck_assert_msg(depth > 0, "closing tag without an open one");
            ck_assert_msg(strlen(stack[depth - 1]) == len && strncmp(stack[depth - 1], c + 2, len) == 0,
                          "</%.*s> closes <%s>", (int)len, c + 2, stack[depth - 1]);
            depth--;
        } else if (end[-1] != '/') {
            len = strcspn(c + 1, " >");
            ck_assert(depth < 16 && len < 32);
            memcpy(stack[depth], c + 1, len);
            stack[depth++][len] = '\0';
        }
    }
    ck_assert_int_eq(depth, 0);
    ck_assert_int_eq(count_of(s, "&"), count_of(s, "&amp;") + count_of(s, "&lt;") + count_of(s, "&gt;") +
                                           count_of(s, "&quot;"));
}

/* Renders `svg` with librsvg (rsvg-convert -w 900, as a user would view
 * it) and checks the picture: a 3-pixel frame of pure background (no text
 * or mark reaches the border: the renderer would cut it) around something
 * drawn. False (with one SKIP line, once) without rsvg-convert. */
static bool rendered_within_canvas(const char *svg, const char *what)
{
    static const char *const places[] = {"/usr/bin/rsvg-convert", "/usr/local/bin/rsvg-convert"};
    static bool said;
    const char *program = NULL;
    char png_path[600];
    run_result r;
    png_image img;
    unsigned char *px;
    size_t ink = 0;
    for (size_t i = 0; i < sizeof places / sizeof places[0]; i++)
        if (access(places[i], X_OK) == 0)
            program = places[i];
    if (program == NULL) {
        if (!said)
            printf("SKIP: rendering plots (rsvg-convert is not installed: Debian's librsvg2-bin)\n");
        said = true;
        return false;
    }
    snprintf(png_path, sizeof png_path, "%s/rendered.png", dir);
    /* on white: scaling leaves the last row of the canvas partly transparent */
    run_program_deadline(&r, program, NULL, 60,
                         (const char *const[]){"-w", "900", "-b", "white", "-o", png_path, svg, NULL});
    ck_assert_msg(r.code == 0, "%s: rsvg-convert failed: %s", what, r.err);
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    ck_assert_msg(png_image_begin_read_from_file(&img, png_path), "%s: %s", what, img.message);
    img.format = PNG_FORMAT_RGB;
    px = malloc(PNG_IMAGE_SIZE(img));
    ck_assert_ptr_nonnull(px);
    ck_assert_msg(png_image_finish_read(&img, NULL, px, 0, NULL), "%s: %s", what, img.message);
    ck_assert_uint_eq(img.width, 900);
    for (png_uint_32 y = 0; y < img.height; y++)
        for (png_uint_32 x = 0; x < img.width; x++) {
            const unsigned char *p = px + 3 * ((size_t)y * img.width + x);
            bool white = p[0] == 255 && p[1] == 255 && p[2] == 255;
            bool frame = x < 3 || y < 3 || x >= img.width - 3 || y >= img.height - 3;
            ck_assert_msg(white || !frame, "%s: pixel (%u, %u) of the %ux%u picture is drawn: something runs past "
                          "the canvas", what, (unsigned)x, (unsigned)y, (unsigned)img.width, (unsigned)img.height);
            ink += !white;
        }
    ck_assert_msg(ink > 1000, "%s: only %zu pixels drawn", what, ink);
    free(px);
    unlink(png_path);
    return true;
}

/* Titles, panel titles and legends longer than the panels give them room:
 * the title shrinks and the canvas widens, a panel title shrinks and then
 * ends in an ellipsis, the legend widens the canvas; each rendered with
 * nothing at the border. */
START_TEST(svg_text_stays_inside_the_canvas)
{
    static const char *const long_title = "a-grid-with-a-long-name: target accuracy against source robustness (eps)";
    static const char *const long_target = "fashion-mnist-five-to-nine-with-a-very-long-label-indeed-yes-ok";
    static const char *const long_arch = "resnet50-wide-two-imagenet-stem-with-a-long-label-for-its-arch";
    rb_grid_result rows[4];
    char path[512];
    size_t size;
    char *svg;
    double width = 0;
    snprintf(path, sizeof path, "%s/plot.svg", dir);
    /* one panel, the title the issue saw cut on both sides */
    for (int k = 0; k < 4; k++)
        rows[k] = row("r18", k % 2 ? "1" : "0", k % 2, 0, 0.9, NAN, "fm5-9", k < 2 ? "fixed" : "full", 0,
                      0.6 + 0.05 * k);
    ck_assert_int_eq(rb_grid_write_svg(path, long_title, rows, 4), RB_OK);
    svg = (char *)read_whole_file(path, &size);
    svg[size] = '\0';
    ck_assert_int_eq(sscanf(strstr(svg, "<svg "), "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%lf\"", &width), 1);
    ck_assert_msg(width > 420, "a one-panel canvas kept its 420 px for a %zu-character title", strlen(long_title));
    ck_assert_ptr_nonnull(strstr(svg, "font-size=\"10\" font-weight=\"bold\">a-grid-with-a-long-name:"));
    free(svg);
    rendered_within_canvas(path, "one panel, long title");

    /* a panel title too long for its panel: shrunk (a label of the longest
     * kind fits at 8 px or more), and where even that is too wide (63
     * W's) cut with an ellipsis */
    for (int k = 0; k < 4; k++)
        snprintf(rows[k].target, sizeof rows[k].target, "%s", long_target);
    ck_assert_int_eq(rb_grid_write_svg(path, "t", rows, 4), RB_OK);
    svg = (char *)read_whole_file(path, &size);
    svg[size] = '\0';
    {
        char want[200];
        double font = 0;
        const char *at;
        snprintf(want, sizeof want, "font-weight=\"bold\">%s</text>", long_target);
        ck_assert_ptr_nonnull(at = strstr(svg, want));
        while (at > svg && strncmp(at, "font-size=\"", 11) != 0)
            at--;
        ck_assert_int_eq(sscanf(at, "font-size=\"%lf\"", &font), 1);
        ck_assert_msg(font >= 8 && font < 13, "panel title at %g px", font);
    }
    free(svg);
    rendered_within_canvas(path, "long panel title");
    for (int k = 0; k < 4; k++) {
        memset(rows[k].target, 'W', sizeof rows[k].target - 1);
        rows[k].target[sizeof rows[k].target - 1] = '\0';
    }
    ck_assert_int_eq(rb_grid_write_svg(path, "t", rows, 4), RB_OK);
    svg = (char *)read_whole_file(path, &size);
    svg[size] = '\0';
    ck_assert_ptr_nonnull(strstr(svg, "font-size=\"8\" font-weight=\"bold\">WWWW"));
    ck_assert_ptr_nonnull(strstr(svg, "W\xe2\x80\xa6</text>"));
    ck_assert_ptr_null(strstr(svg, rows[0].target));
    free(svg);
    rendered_within_canvas(path, "panel title cut with an ellipsis");

    /* long arch labels with robust lines: the legend widens the canvas */
    for (int k = 0; k < 4; k++) {
        snprintf(rows[k].target, sizeof rows[k].target, "t");
        snprintf(rows[k].arch, sizeof rows[k].arch, "%s", long_arch);
        rows[k].target_robust_acc = 0.2 + 0.05 * k;
        snprintf(rows[k].robust_attack, sizeof rows[k].robust_attack, "pgd-l2 steps=10 eps=1.0");
    }
    ck_assert_int_eq(rb_grid_write_svg(path, NULL, rows, 4), RB_OK);
    svg = (char *)read_whole_file(path, &size);
    svg[size] = '\0';
    ck_assert_int_eq(sscanf(strstr(svg, "<svg "), "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%lf\"", &width), 1);
    ck_assert_msg(width > 420, "the legend's %zu-character label did not widen the canvas", strlen(long_arch) + 40);
    free(svg);
    rendered_within_canvas(path, "long legend");

    /* the grids of the other tests: three panels, several metrics, robust lines */
    {
        rb_grid_result mix[ROWS_MIX], rob[ROWS_ROBUST];
        make_mix(mix);
        ck_assert_int_eq(rb_grid_write_svg(path, "demo: target accuracy, mIoU and AP against source robustness (eps)",
                                           mix, ROWS_MIX), RB_OK);
        rendered_within_canvas(path, "metrics");
        make_robust(rob);
        ck_assert_int_eq(rb_grid_write_svg(path, "robust", rob, ROWS_ROBUST), RB_OK);
        rendered_within_canvas(path, "robust lines");
    }
}
END_TEST

START_TEST(svg_plot_is_well_formed_and_escaped)
{
    rb_grid_result rows[16];
    char path[512];
    size_t k = 0, size;
    char *svg;
    for (int a = 0; a < 2; a++)
        for (int m = 0; m < 2; m++)
            for (int e = 0; e < 2; e++)
                for (uint64_t seed = 0; seed < 2; seed++)
                    rows[k++] = row(a ? "b" : "a", e ? "0.5" : "0", e ? 0.5 : 0, seed, 0.9, NAN, "t",
                                    m ? "full" : "fixed", 0, 0.6 + 0.1 * e + 0.05 * m + 0.01 * (double)seed + 0.02 * a);
    snprintf(path, sizeof path, "%s/plot.svg", dir);
    ck_assert_msg(rb_grid_write_svg(path, "demo <&> \"q\"", rows, k) == RB_OK, "%s", rb_last_error());
    ck_assert_msg(rb_grid_write_svg(path, "demo <&> \"q\"", rows, k) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(count_dir_entries(dir), 1); /* replaced in place, no temporary left */
    svg = (char *)read_whole_file(path, &size);
    svg[size] = '\0';
    ck_assert(strncmp(svg, "<?xml", 5) == 0);
    ck_assert_ptr_nonnull(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    check_balanced(svg);
    ck_assert_int_eq(count_of(svg, "<polyline"), 4); /* a fixed, a full, b fixed, b full */
    ck_assert_int_eq(count_of(svg, "<circle"), 4 * 2 + 4); /* a marker per eps, and the legend's */
    ck_assert_ptr_nonnull(strstr(svg, "demo &lt;&amp;&gt; &quot;q&quot;"));
    ck_assert_ptr_null(strstr(svg, "<&>"));
    ck_assert_ptr_nonnull(strstr(svg, ">b full</text>"));
    ck_assert_ptr_nonnull(strstr(svg, ">t</text>")); /* the panel title */
    ck_assert_int_eq(count_of(svg, ">target accuracy (%)</text>"), 1); /* the y axis */
    free(svg);

    /* each panel's y axis names its metric */
    {
        rb_grid_result mix[ROWS_MIX];
        make_mix(mix);
        snprintf(mix[4].metric, sizeof mix[4].metric, "a<b"); /* as written, escaped */
        for (size_t i = 5; i < ROWS_MIX; i++)
            snprintf(mix[i].metric, sizeof mix[i].metric, "a<b");
        ck_assert_msg(rb_grid_write_svg(path, NULL, mix, ROWS_MIX) == RB_OK, "%s", rb_last_error());
        svg = (char *)read_whole_file(path, &size);
        svg[size] = '\0';
        check_balanced(svg);
        ck_assert_int_eq(count_of(svg, ">target accuracy (%)</text>"), 1);
        ck_assert_int_eq(count_of(svg, ">target a&lt;b (%)</text>"), 1);
        free(svg);
        make_mix(mix);
        ck_assert_msg(rb_grid_write_svg(path, NULL, mix, ROWS_MIX) == RB_OK, "%s", rb_last_error());
        svg = (char *)read_whole_file(path, &size);
        svg[size] = '\0';
        ck_assert_int_eq(count_of(svg, ">target accuracy (%)</text>"), 1);
        ck_assert_int_eq(count_of(svg, ">target mIoU (%)</text>"), 1);
        ck_assert_int_eq(count_of(svg, ">scenes</text>"), 1); /* its panel */
        ck_assert_int_eq(count_of(svg, "<polyline"), 2);      /* r18 fixed in each panel */
        free(svg);
    }

    /* robust accuracy: a dotted line per arch and mode where measured, hollow markers */
    {
        rb_grid_result rob[ROWS_ROBUST];
        make_robust(rob);
        ck_assert_msg(rb_grid_write_svg(path, NULL, rob, ROWS_ROBUST) == RB_OK, "%s", rb_last_error());
        svg = (char *)read_whole_file(path, &size);
        svg[size] = '\0';
        check_balanced(svg);
        /* t1: fixed, full and their robust lines; seg: fixed (its rows have no robust accuracy) */
        ck_assert_int_eq(count_of(svg, "<polyline"), 5);
        ck_assert_int_eq(count_of(svg, "stroke-dasharray=\"2 3\""), 2 + 2 * 2 + 2); /* lines, error bars, legend */
        ck_assert_int_eq(count_of(svg, "fill=\"white\" stroke="), 2 * 2 + 2);        /* markers, legend */
        ck_assert_ptr_nonnull(strstr(svg, ">r18 full, robust accuracy under eval-attack</text>"));
        free(svg);
    }

    /* no rows: still a valid picture */
    ck_assert_int_eq(rb_grid_write_svg(path, NULL, NULL, 0), RB_OK);
    svg = (char *)read_whole_file(path, &size);
    svg[size] = '\0';
    check_balanced(svg);
    ck_assert_ptr_nonnull(strstr(svg, "no results yet"));
    free(svg);

    ck_assert_int_eq(rb_grid_write_svg("/nonexistent-robusta-dir/plot.svg", "x", rows, k), RB_ERR_IO);
    ck_assert_msg(strstr(rb_last_error(), "/nonexistent-robusta-dir/plot.svg") != NULL, "%s", rb_last_error());
}
END_TEST

static Suite *report_suite(void)
{
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("report");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, csv_round_trip_keeps_every_field);
    tcase_add_test(tc, csv_refuses_what_it_cannot_write_unquoted);
    tcase_add_test(tc, csv_reading_names_the_bad_line);
    tcase_add_test(tc, markdown_table_is_shaped_like_the_paper);
    tcase_add_test(tc, summary_says_who_won_and_whether_it_beats_the_spread);
    tcase_add_test(tc, svg_plot_is_well_formed_and_escaped);
    tcase_add_test(tc, svg_text_stays_inside_the_canvas);
    tcase_add_test(tc, a_miou_target_says_so_next_to_an_accuracy_one);
    tcase_add_test(tc, a_target_mixing_metrics_is_refused);
    tcase_add_test(tc, robust_target_accuracy_gets_its_column_verdict_and_line);
    tcase_add_test(tc, metrics_have_readable_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(report_suite());
}
