/* The progress display: plain lines, terminal redraws, throttling, the
 * duration format, and how log lines clear a bar being redrawn. A fake
 * clock makes every timing exact. */
#include "config.h"

#include <math.h>

#include <robusta/robusta.h>

#include "testutil.h"

/* ------------------------------------------------------------ helpers */

/* The fake clock. Every value the tests use is a binary fraction, so the
 * library's "now - last_draw >= interval" compares are exact. */
static double fake_now;

static double fake_clock(void *user)
{
    (void)user;
    return fake_now;
}

static rb_progress_options fake_options(FILE *stream, int tty)
{
    rb_progress_options o;
    memset(&o, 0, sizeof o);
    o.stream = stream;
    o.tty = tty;
    o.redraw_seconds = 0.5;
    o.line_seconds = 2;
    o.width = 80;
    o.clock = fake_clock;
    o.clock_user = NULL;
    return o;
}

/* Everything written to `f` so far. */
static void stream_text(FILE *f, char *buf, size_t size)
{
    size_t n;
    ck_assert_int_eq(fflush(f), 0);
    rewind(f);
    n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0); /* back to writing at the end */
}

/* What was written to `f` since the last call (by offset `*seen`). */
static const char *new_text(FILE *f, char *buf, size_t size, size_t *seen)
{
    size_t before = *seen;
    stream_text(f, buf, size);
    *seen = strlen(buf);
    ck_assert_uint_ge(*seen, before);
    return buf + before;
}

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

static int count_substr(const char *s, const char *sub)
{
    int n = 0;
    for (const char *p = strstr(s, sub); p != NULL; p = strstr(p + 1, sub))
        n++;
    return n;
}

/* Checks one TTY redraw "\r<line>\033[K" (plus "\n" when final): returns the
 * visible line in `line`. */
static void split_redraw(const char *text, int final, char *line, size_t size)
{
    size_t len = strlen(text);
    const char *tail = final ? "\033[K\n" : "\033[K";
    size_t tail_len = strlen(tail);
    ck_assert_msg(len >= 1 + tail_len, "redraw too short: \"%s\"", text);
    ck_assert_msg(text[0] == '\r', "redraw does not start with \\r: \"%s\"", text);
    ck_assert_msg(strcmp(text + len - tail_len, tail) == 0, "redraw ends wrongly: \"%s\"", text);
    ck_assert_uint_lt(len - 1 - tail_len, size);
    memcpy(line, text + 1, len - 1 - tail_len);
    line[len - 1 - tail_len] = '\0';
    ck_assert_msg(strchr(line, '\r') == NULL && strchr(line, '\n') == NULL &&
                      strchr(line, '\033') == NULL,
                  "one redraw holds control characters: \"%s\"", text);
}

/* The bar cells between '[' and ']' in a TTY line; returns how many there
 * are and counts the '#' among them. */
static int bar_cells(const char *line, int *filled)
{
    const char *left = strchr(line, '['), *right;
    int cells = 0;
    ck_assert_msg(left != NULL, "no bar in \"%s\"", line);
    right = strchr(left, ']');
    ck_assert_msg(right != NULL, "unclosed bar in \"%s\"", line);
    *filled = 0;
    for (const char *c = left + 1; c < right; c++, cells++) {
        ck_assert_msg(*c == '#' || *c == '.', "bar cell '%c' in \"%s\"", *c, line);
        if (*c == '#') {
            /* Filled cells come first. */
            ck_assert_msg(*filled == cells, "'#' after '.' in \"%s\"", line);
            (*filled)++;
        }
    }
    return cells;
}

/* ------------------------------------------------------------ plain lines */

START_TEST(plain_lines_at_intervals)
{
    FILE *f = tmpfile();
    rb_progress_options o;
    rb_progress *bar;
    char buf[4096];
    size_t seen = 0;

    ck_assert_ptr_nonnull(f);
    o = fake_options(f, 0);
    fake_now = 100;
    ck_assert_int_eq(rb_progress_create(&bar, "train", 10, "img", &o), RB_OK);
    ck_assert_ptr_nonnull(bar);
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen), ""); /* nothing before an update */

    fake_now = 101; /* 1 s < line_seconds (2 s) */
    rb_progress_update(bar, 2, "loss %.3f", 0.9);
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen), "");
    fake_now = 101.75;
    rb_progress_update(bar, 4, "loss %.3f", 0.7);
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen), "");

    /* 5 units in 2 s: 2.50 img/s, 5 left at that rate is 2 s. */
    fake_now = 102;
    rb_progress_update(bar, 5, "loss %.3f", 0.5);
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen),
                     "train: 5/10 img (50%), 2.50 img/s, ETA 2s, loss 0.500\n");

    /* The interval counts from the last line, not from the start. */
    fake_now = 103;
    rb_progress_update(bar, 7, "loss %.3f", 0.4);
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen), "");
    fake_now = 103.5;
    rb_progress_update(bar, 7, NULL);
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen), "");

    /* 8 units in 4 s: 2.00 img/s, 2 left is 1 s. */
    fake_now = 104;
    rb_progress_update(bar, 8, "loss %.3f", 0.25);
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen),
                     "train: 8/10 img (80%), 2.00 img/s, ETA 1s, loss 0.250\n");

    fake_now = 104.5;
    rb_progress_update(bar, 10, "loss %.3f", 0.2);
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen), "");

    /* finish: one final line with the elapsed time and the mean rate
     * (10 units in 5 s). */
    fake_now = 105;
    rb_progress_finish(bar, "loss %.3f", 0.125);
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen),
                     "train: 10/10 img (100%), 2.00 img/s, took 5s, loss 0.125\n");

    /* Nothing after finish. */
    fake_now = 200;
    rb_progress_update(bar, 10, "loss %.3f", 0.1);
    rb_progress_finish(bar, "again");
    rb_progress_destroy(bar);
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen), "");
    stream_text(f, buf, sizeof buf);
    ck_assert_int_eq(count_lines(buf), 3);
    fclose(f);
}
END_TEST

START_TEST(plain_rate_formats)
{
    /* Rates of 10 and more lose decimals: 150 units in 2 s is 75.0 /s,
     * 1000 units in 2 s is 500 /s. Without a label there is no ": ". */
    FILE *f = tmpfile();
    rb_progress_options o = fake_options(f, 0);
    rb_progress *bar;
    char buf[4096];
    size_t seen = 0;

    ck_assert_ptr_nonnull(f);
    fake_now = 0;
    ck_assert_int_eq(rb_progress_create(&bar, NULL, 2000, NULL, &o), RB_OK);
    fake_now = 2;
    rb_progress_update(bar, 150, NULL);
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen),
                     "150/2000 it (8%), 75.0 it/s, ETA 24s\n");
    fake_now = 4;
    rb_progress_update(bar, 2000, NULL);
    /* All done while still running: nothing left. */
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen),
                     "2000/2000 it (100%), 500 it/s, ETA 0s\n");
    rb_progress_destroy(bar);
    fclose(f);
}
END_TEST

START_TEST(plain_unknown_total)
{
    FILE *f = tmpfile();
    rb_progress_options o = fake_options(f, 0);
    rb_progress *bar;
    char buf[4096];
    size_t seen = 0;

    ck_assert_ptr_nonnull(f);
    fake_now = 10;
    ck_assert_int_eq(rb_progress_create(&bar, "scan", 0, "file", &o), RB_OK);
    fake_now = 12;
    rb_progress_update(bar, 7, "at %s", "b.txt");
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen), "scan: 7 file, 3.50 file/s, at b.txt\n");
    fake_now = 14;
    rb_progress_finish(bar, NULL);
    /* 7 units in 4 s; the status text is kept from the last drawn update. */
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen),
                     "scan: 7 file, 1.75 file/s, took 4s, at b.txt\n");
    rb_progress_destroy(bar);
    fclose(f);
}
END_TEST

START_TEST(destroy_null_is_safe)
{
    rb_progress_destroy(NULL);
    rb_progress_update(NULL, 1, "x");
    rb_progress_finish(NULL, "x");
}
END_TEST

START_TEST(destroy_without_finish_finishes)
{
    FILE *f = tmpfile();
    rb_progress_options o = fake_options(f, 0);
    rb_progress *bar;
    char buf[4096];

    ck_assert_ptr_nonnull(f);
    fake_now = 0;
    ck_assert_int_eq(rb_progress_create(&bar, "eval", 4, "batch", &o), RB_OK);
    fake_now = 1; /* too soon for a line */
    rb_progress_update(bar, 3, "acc %d%%", 90);
    stream_text(f, buf, sizeof buf);
    ck_assert_str_eq(buf, "");
    fake_now = 1.5;
    rb_progress_destroy(bar);
    /* 3 units in 1.5 s; the status text of a skipped update is not shown. */
    stream_text(f, buf, sizeof buf);
    ck_assert_str_eq(buf, "eval: 3/4 batch (75%), 2.00 batch/s, took 1s\n");
    fclose(f);
}
END_TEST

/* ------------------------------------------------------------ terminal */

START_TEST(tty_redraws_in_place)
{
    FILE *f = tmpfile();
    rb_progress_options o = fake_options(f, 1);
    rb_progress *bar;
    char buf[8192], line[1024];
    const char *text;
    size_t seen = 0;
    int filled, cells;

    ck_assert_ptr_nonnull(f);
    fake_now = 50;
    ck_assert_int_eq(rb_progress_create(&bar, "train", 10, "img", &o), RB_OK);
    fake_now = 50.25; /* less than redraw_seconds (0.5) */
    rb_progress_update(bar, 1, NULL);
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen), "");

    fake_now = 52;
    rb_progress_update(bar, 5, "loss %.3f", 0.5);
    text = new_text(f, buf, sizeof buf, &seen);
    split_redraw(text, 0, line, sizeof line);
    ck_assert_msg(strncmp(line, "train [", 7) == 0, "line: \"%s\"", line);
    ck_assert_msg(strstr(line, "] 5/10 img (50%), 2.50 img/s, ETA 2s, loss 0.500") != NULL,
                  "line: \"%s\"", line);
    ck_assert_int_le((int)strlen(line), 79);
    cells = bar_cells(line, &filled);
    ck_assert_int_ge(cells, 10);
    ck_assert_int_le(cells, 40);
    ck_assert_int_eq(filled, cells / 2); /* 50% */

    /* Throttled: 0.25 s after the last redraw. */
    fake_now = 52.25;
    rb_progress_update(bar, 6, "loss %.3f", 0.4);
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen), "");
    /* 0.5 s after: redrawn. */
    fake_now = 52.5;
    rb_progress_update(bar, 6, "loss %.3f", 0.4);
    text = new_text(f, buf, sizeof buf, &seen);
    split_redraw(text, 0, line, sizeof line);
    ck_assert_msg(strstr(line, "6/10 img (60%)") != NULL, "line: \"%s\"", line);
    cells = bar_cells(line, &filled);
    ck_assert_int_eq(filled, cells * 6 / 10); /* 60%, rounded down */

    fake_now = 54;
    rb_progress_update(bar, 8, NULL);
    text = new_text(f, buf, sizeof buf, &seen);
    split_redraw(text, 0, line, sizeof line);
    /* The status text stays until replaced. */
    ck_assert_msg(strstr(line, "8/10 img (80%), 2.00 img/s, ETA 1s, loss 0.400") != NULL,
                  "line: \"%s\"", line);

    /* No newline anywhere until finish. */
    stream_text(f, buf, sizeof buf);
    ck_assert_int_eq(count_char(buf, '\n'), 0);
    ck_assert_int_eq(count_substr(buf, "\r"), 3);

    /* Throttled, but finish shows the count. */
    fake_now = 54.25;
    rb_progress_update(bar, 10, NULL);
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen), "");
    fake_now = 55;
    rb_progress_finish(bar, "loss %.3f", 0.125);
    text = new_text(f, buf, sizeof buf, &seen);
    split_redraw(text, 1, line, sizeof line);
    ck_assert_msg(strstr(line, "] 10/10 img (100%), 2.00 img/s, took 5s, loss 0.125") != NULL,
                  "line: \"%s\"", line);
    cells = bar_cells(line, &filled);
    ck_assert_int_eq(filled, cells);

    fake_now = 60;
    rb_progress_update(bar, 10, NULL);
    rb_progress_destroy(bar);
    ck_assert_str_eq(new_text(f, buf, sizeof buf, &seen), "");
    stream_text(f, buf, sizeof buf);
    ck_assert_int_eq(count_char(buf, '\n'), 1);
    ck_assert_int_eq(buf[strlen(buf) - 1], '\n');
    fclose(f);
}
END_TEST

START_TEST(tty_bar_starts_empty)
{
    FILE *f = tmpfile();
    rb_progress_options o = fake_options(f, 1);
    rb_progress *bar;
    char buf[4096], line[1024];
    int filled, cells;

    ck_assert_ptr_nonnull(f);
    fake_now = 0;
    ck_assert_int_eq(rb_progress_create(&bar, "x", 100, "img", &o), RB_OK);
    fake_now = 1;
    rb_progress_update(bar, 0, NULL);
    stream_text(f, buf, sizeof buf);
    split_redraw(buf, 0, line, sizeof line);
    /* Nothing done: all cells empty, rate 0, and no ETA. */
    cells = bar_cells(line, &filled);
    ck_assert_int_eq(filled, 0);
    ck_assert_int_eq(cells, 40); /* plenty of room at width 80: the widest bar */
    ck_assert_msg(strstr(line, "0/100 img (0%), 0.00 img/s") != NULL, "line: \"%s\"", line);
    ck_assert_ptr_null(strstr(line, "ETA"));
    rb_progress_destroy(bar);
    fclose(f);
}
END_TEST

START_TEST(tty_lines_fit_the_width)
{
    static const int widths[] = {40, 60, 80, 120};
    char label[200], extra[300];
    memset(label, 'L', 60);
    label[60] = '\0';
    memset(extra, 'e', 150);
    extra[150] = '\0';

    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        for (int variant = 0; variant < 3; variant++) {
            FILE *f = tmpfile();
            rb_progress_options o = fake_options(f, 1);
            rb_progress *bar;
            char buf[16384], line[1024];
            const char *text;
            size_t seen = 0;
            const char *lab = variant == 0 ? "short" : label;
            const char *ext = variant == 2 ? extra : "ok";

            ck_assert_ptr_nonnull(f);
            o.width = widths[w];
            fake_now = 0;
            ck_assert_int_eq(rb_progress_create(&bar, lab, 1000000, "sample", &o), RB_OK);
            for (int step = 1; step <= 4; step++) {
                fake_now = step;
                rb_progress_update(bar, (uint64_t)step * 12345, "%s", ext);
                text = new_text(f, buf, sizeof buf, &seen);
                split_redraw(text, 0, line, sizeof line);
                ck_assert_msg((int)strlen(line) <= widths[w] - 1,
                              "width %d: %zu visible chars: \"%s\"", widths[w], strlen(line),
                              line);
                ck_assert_msg(strncmp(line, lab, strlen(lab) < (size_t)widths[w] - 1
                                                     ? strlen(lab)
                                                     : (size_t)widths[w] - 1) == 0,
                              "line does not start with the label: \"%s\"", line);
            }
            fake_now = 5;
            rb_progress_finish(bar, "%s", ext);
            text = new_text(f, buf, sizeof buf, &seen);
            split_redraw(text, 1, line, sizeof line);
            ck_assert_int_le((int)strlen(line), widths[w] - 1);
            rb_progress_destroy(bar);
            fclose(f);
        }
    }
}
END_TEST

START_TEST(tty_unknown_total)
{
    FILE *f = tmpfile();
    rb_progress_options o = fake_options(f, 1);
    rb_progress *bar;
    char buf[4096], line[1024];
    size_t seen = 0;

    ck_assert_ptr_nonnull(f);
    fake_now = 0;
    ck_assert_int_eq(rb_progress_create(&bar, "scan", 0, "file", &o), RB_OK);
    fake_now = 2;
    rb_progress_update(bar, 7, NULL);
    split_redraw(new_text(f, buf, sizeof buf, &seen), 0, line, sizeof line);
    /* No total: no bar, no percentage, no ETA. */
    ck_assert_str_eq(line, "scan 7 file, 3.50 file/s");
    fake_now = 4;
    rb_progress_finish(bar, NULL);
    split_redraw(new_text(f, buf, sizeof buf, &seen), 1, line, sizeof line);
    ck_assert_str_eq(line, "scan 7 file, 1.75 file/s, took 4s");
    rb_progress_destroy(bar);
    fclose(f);
}
END_TEST

/* ------------------------------------------------------------ durations */

START_TEST(format_duration)
{
    static const struct {
        double seconds;
        const char *text;
    } cases[] = {
        {0, "0s"},         {0.4, "0s"},         {1, "1s"},          {42, "42s"},
        {59.9, "59s"},     {60, "1m00s"},       {61, "1m01s"},      {187, "3m07s"},
        {3599.9, "59m59s"}, {3600, "1h00m"},    {3725, "1h02m"},    {7500, "2h05m"},
        {-1, "?"},         {-0.001, "?"},       {NAN, "?"},         {INFINITY, "?"},
        {-INFINITY, "?"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        memset(buf, 'z', sizeof buf);
        ck_assert_ptr_eq(rb_format_duration(cases[i].seconds, buf, sizeof buf), buf);
        ck_assert_msg(strcmp(buf, cases[i].text) == 0, "%g s gave \"%s\", expected \"%s\"",
                      cases[i].seconds, buf, cases[i].text);
    }
}
END_TEST

START_TEST(format_duration_truncates_to_buffer)
{
    char buf[4];
    ck_assert_str_eq(rb_format_duration(3725, buf, sizeof buf), "1h0");
}
END_TEST

/* ------------------------------------------------------------ log lines */

START_TEST(log_line_clears_active_bar)
{
    char path[] = "/tmp/robusta-progress-XXXXXX";
    int fd = mkstemp(path), saved;
    rb_progress_options o;
    rb_progress *bar;
    char out[8192];
    const char *clear, *msg, *second;

    ck_assert_int_ge(fd, 0);
    unlink(path);
    fflush(stderr);
    saved = dup(2);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(fd, 2), 2);

    rb_log_set_sink(NULL, NULL);
    rb_log_set_level(RB_LOG_INFO);
    o = fake_options(stderr, 1);
    fake_now = 0;
    ck_assert_int_eq(rb_progress_create(&bar, "train", 10, "img", &o), RB_OK);
    fake_now = 1;
    rb_progress_update(bar, 5, NULL);
    rb_log(RB_LOG_WARN, "nan loss");
    /* The bar is redrawn at the next update, without waiting out the
     * redraw interval (0.25 s < 0.5 s). */
    fake_now = 1.25;
    rb_progress_update(bar, 6, NULL);
    fake_now = 2;
    rb_progress_finish(bar, NULL);
    /* The bar has ended its line: nothing to clear now. */
    rb_log(RB_LOG_WARN, "after");
    rb_progress_destroy(bar);

    fflush(stderr);
    ck_assert_int_eq(dup2(saved, 2), 2);
    close(saved);
    slurp(fd, out, sizeof out);
    close(fd);

    msg = strstr(out, "robusta: warning: nan loss\n");
    ck_assert_msg(msg != NULL, "output: \"%s\"", out);
    clear = strstr(out, "\r\033[K");
    /* The first redraw ("\r...\033[K") then a clear, right before the log line. */
    ck_assert_msg(msg - out >= 4 && strncmp(msg - 4, "\r\033[K", 4) == 0,
                  "no clear before the log line: \"%s\"", out);
    ck_assert_msg(strncmp(out, "\rtrain [", 8) == 0, "output: \"%s\"", out);
    ck_assert_ptr_nonnull(clear);
    /* After the log line: a redraw with 6/10, then the final line. */
    ck_assert_msg(strncmp(msg + strlen("robusta: warning: nan loss\n"), "\rtrain [", 8) == 0,
                  "no redraw after the log line: \"%s\"", out);
    /* 6 units in 1.25 s: the redraw at 1.25, not just the final line. */
    ck_assert_msg(strstr(msg, "] 6/10 img (60%), 4.80 img/s, ETA 0s\033[K\rtrain [") != NULL,
                  "no early redraw after the log line: \"%s\"", out);
    second = strstr(out, "robusta: warning: after\n");
    ck_assert_ptr_nonnull(second);
    ck_assert_msg(second[-1] == '\n' && second[-2] == 'K',
                  "the finished bar should end with \\033[K\\n before the next log line: \"%s\"",
                  out);
    ck_assert_int_eq(count_substr(out, "\r\033[K"), 1);
    ck_assert_str_eq(second + strlen("robusta: warning: after\n"), "");
}
END_TEST

START_TEST(log_line_leaves_plain_output_alone)
{
    /* A plain (non-TTY) bar on stderr never gets a clear sequence. */
    char path[] = "/tmp/robusta-progress-XXXXXX";
    int fd = mkstemp(path), saved;
    rb_progress_options o;
    rb_progress *bar;
    char out[8192];

    ck_assert_int_ge(fd, 0);
    unlink(path);
    fflush(stderr);
    saved = dup(2);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(fd, 2), 2);

    rb_log_set_level(RB_LOG_INFO);
    o = fake_options(stderr, 0);
    fake_now = 0;
    ck_assert_int_eq(rb_progress_create(&bar, "train", 10, "img", &o), RB_OK);
    fake_now = 2;
    rb_progress_update(bar, 5, NULL);
    rb_log(RB_LOG_WARN, "nan loss");
    rb_progress_destroy(bar);

    fflush(stderr);
    ck_assert_int_eq(dup2(saved, 2), 2);
    close(saved);
    slurp(fd, out, sizeof out);
    close(fd);
    ck_assert_str_eq(out, "train: 5/10 img (50%), 2.50 img/s, ETA 2s\n"
                          "robusta: warning: nan loss\n"
                          "train: 5/10 img (50%), 2.50 img/s, took 2s\n");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("progress");
    TCase *plain = tcase_create("plain");
    TCase *tty = tcase_create("tty");
    TCase *misc = tcase_create("misc");

    tcase_add_test(plain, plain_lines_at_intervals);
    tcase_add_test(plain, plain_rate_formats);
    tcase_add_test(plain, plain_unknown_total);
    tcase_add_test(plain, destroy_null_is_safe);
    tcase_add_test(plain, destroy_without_finish_finishes);
    suite_add_tcase(s, plain);

    tcase_add_test(tty, tty_redraws_in_place);
    tcase_add_test(tty, tty_bar_starts_empty);
    tcase_add_test(tty, tty_lines_fit_the_width);
    tcase_add_test(tty, tty_unknown_total);
    suite_add_tcase(s, tty);

    tcase_add_test(misc, format_duration);
    tcase_add_test(misc, format_duration_truncates_to_buffer);
    tcase_add_test(misc, log_line_clears_active_bar);
    tcase_add_test(misc, log_line_leaves_plain_output_alone);
    suite_add_tcase(s, misc);
    return run_suite(s);
}
