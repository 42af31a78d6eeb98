/* Leveled logging: level names, the threshold, RB_LOG, sinks and the
 * default standard-error output. */
#include "config.h"

#include <robusta/robusta.h>

#include "testutil.h"

/* ------------------------------------------------------------ capture sink */

/* Runs `emit` with fd 2 sent to a temporary file and returns what was
 * written there in `out`. */
static void capture_stderr(void (*emit)(void), char *out, size_t size)
{
    char path[] = "/tmp/robusta-log-XXXXXX";
    int fd = mkstemp(path), saved;
    ck_assert_msg(fd >= 0, "mkstemp: %s", strerror(errno));
    unlink(path);
    fflush(stderr);
    saved = dup(2);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(fd, 2), 2);
    emit();
    fflush(stderr);
    ck_assert_int_eq(dup2(saved, 2), 2);
    close(saved);
    slurp(fd, out, size);
    close(fd);
}

/* ------------------------------------------------------------ parsing */

START_TEST(parse_level_names_any_case)
{
    static const struct {
        const char *text;
        rb_log_level level;
    } cases[] = {
        {"error", RB_LOG_ERROR}, {"ERROR", RB_LOG_ERROR},     {"Error", RB_LOG_ERROR},
        {"warn", RB_LOG_WARN},   {"WaRn", RB_LOG_WARN},       {"warning", RB_LOG_WARN},
        {"WARNING", RB_LOG_WARN}, {"info", RB_LOG_INFO},      {"INFO", RB_LOG_INFO},
        {"debug", RB_LOG_DEBUG}, {"Debug", RB_LOG_DEBUG},     {"trace", RB_LOG_TRACE},
        {"TRACE", RB_LOG_TRACE}, {"0", RB_LOG_ERROR},         {"1", RB_LOG_WARN},
        {"2", RB_LOG_INFO},      {"3", RB_LOG_DEBUG},         {"4", RB_LOG_TRACE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rb_log_level level = (rb_log_level)99;
        ck_assert_msg(rb_log_parse_level(cases[i].text, &level) == RB_OK, "'%s' rejected: %s",
                      cases[i].text, rb_last_error());
        ck_assert_msg(level == cases[i].level, "'%s' parsed as %d, expected %d", cases[i].text,
                      (int)level, (int)cases[i].level);
    }
}
END_TEST

START_TEST(parse_level_rejects_other_text)
{
    static const char *const bad[] = {"bogus", "5", "-1", "01", "", "warn ", " info", "infos",
                                      "w", "10", "2x", "warnings"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rb_log_level level = RB_LOG_DEBUG;
        char quoted[64];
        rb_error_clear();
        ck_assert_msg(rb_log_parse_level(bad[i], &level) == RB_ERR_INVALID_ARGUMENT,
                      "'%s' accepted", bad[i]);
        ck_assert_int_eq(rb_last_status(), RB_ERR_INVALID_ARGUMENT);
        /* The message names the offending text. */
        snprintf(quoted, sizeof quoted, "'%s'", bad[i]);
        ck_assert_msg(strstr(rb_last_error(), quoted) != NULL, "message for '%s' is \"%s\"",
                      bad[i], rb_last_error());
        ck_assert_int_eq(level, RB_LOG_DEBUG); /* untouched on error */
    }
    rb_error_clear();
    ck_assert_int_eq(rb_log_parse_level(NULL, &(rb_log_level){RB_LOG_INFO}),
                     RB_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(level_names)
{
    ck_assert_str_eq(rb_log_level_str(RB_LOG_ERROR), "error");
    ck_assert_str_eq(rb_log_level_str(RB_LOG_WARN), "warn");
    ck_assert_str_eq(rb_log_level_str(RB_LOG_INFO), "info");
    ck_assert_str_eq(rb_log_level_str(RB_LOG_DEBUG), "debug");
    ck_assert_str_eq(rb_log_level_str(RB_LOG_TRACE), "trace");
    ck_assert_str_eq(rb_log_level_str((rb_log_level)5), "unknown");
    ck_assert_str_eq(rb_log_level_str((rb_log_level)-1), "unknown");
    /* Every name parses back to its level. */
    for (int i = RB_LOG_ERROR; i <= RB_LOG_TRACE; i++) {
        rb_log_level level;
        ck_assert_int_eq(rb_log_parse_level(rb_log_level_str((rb_log_level)i), &level), RB_OK);
        ck_assert_int_eq(level, i);
    }
}
END_TEST

/* ------------------------------------------------------------ the threshold */

START_TEST(set_level_round_trips)
{
    for (int i = RB_LOG_ERROR; i <= RB_LOG_TRACE; i++) {
        rb_log_set_level((rb_log_level)i);
        ck_assert_int_eq(rb_log_get_level(), i);
    }
}
END_TEST

START_TEST(set_level_clamps_above)
{
    rb_log_set_level(RB_LOG_INFO);
    rb_log_set_level((rb_log_level)5);
    ck_assert_int_eq(rb_log_get_level(), RB_LOG_TRACE);
    rb_log_set_level(RB_LOG_INFO);
    rb_log_set_level((rb_log_level)1000);
    ck_assert_int_eq(rb_log_get_level(), RB_LOG_TRACE);
}
END_TEST

START_TEST(set_level_clamps_below)
{
    /* A level below error (as -v/-q arithmetic can produce) means error. */
    rb_log_set_level(RB_LOG_INFO);
    rb_log_set_level((rb_log_level)-1);
    ck_assert_msg(rb_log_get_level() == RB_LOG_ERROR, "level -1 became %d, expected %d (error)",
                  (int)rb_log_get_level(), RB_LOG_ERROR);
    rb_log_set_level(RB_LOG_INFO);
    rb_log_set_level((rb_log_level)-7);
    ck_assert_msg(rb_log_get_level() == RB_LOG_ERROR, "level -7 became %d, expected %d (error)",
                  (int)rb_log_get_level(), RB_LOG_ERROR);
}
END_TEST

START_TEST(default_level_is_info)
{
    /* Each test runs in a fresh process (CK_FORK), so this is the library's
     * initial state. */
    ck_assert_int_eq(rb_log_get_level(), RB_LOG_INFO);
}
END_TEST

START_TEST(sink_receives_messages_passing_threshold)
{
    captured c;
    for (int threshold = RB_LOG_ERROR; threshold <= RB_LOG_TRACE; threshold++) {
        memset(&c, 0, sizeof c);
        rb_log_set_sink(capture_sink, &c);
        rb_log_set_level((rb_log_level)threshold);
        for (int level = RB_LOG_ERROR; level <= RB_LOG_TRACE; level++)
            rb_log((rb_log_level)level, "message %d of %s", level, "five");
        ck_assert_int_eq(c.count, threshold + 1);
        for (int level = 0; level <= threshold; level++) {
            char expected[64];
            snprintf(expected, sizeof expected, "message %d of five", level);
            ck_assert_int_eq(c.level[level], level);
            /* No prefix, no trailing newline. */
            ck_assert_str_eq(c.message[level], expected);
        }
    }
    /* Levels outside the enumeration never reach the sink. */
    memset(&c, 0, sizeof c);
    rb_log_set_level(RB_LOG_TRACE);
    rb_log((rb_log_level)5, "too chatty");
    rb_log((rb_log_level)-1, "negative");
    ck_assert_int_eq(c.count, 0);
    rb_log_set_sink(NULL, NULL);
}
END_TEST

START_TEST(sink_gets_its_user_pointer)
{
    captured a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    rb_log_set_level(RB_LOG_INFO);
    rb_log_set_sink(capture_sink, &a);
    rb_log(RB_LOG_INFO, "to a");
    rb_log_set_sink(capture_sink, &b);
    rb_log(RB_LOG_INFO, "to b");
    rb_log(RB_LOG_ERROR, "to b too");
    ck_assert_int_eq(a.count, 1);
    ck_assert_str_eq(a.message[0], "to a");
    ck_assert_int_eq(b.count, 2);
    ck_assert_str_eq(b.message[0], "to b");
    ck_assert_str_eq(b.message[1], "to b too");
    ck_assert_int_eq(b.level[1], RB_LOG_ERROR);
    rb_log_set_sink(NULL, NULL);
}
END_TEST

START_TEST(newlines_become_spaces)
{
    captured c;
    memset(&c, 0, sizeof c);
    rb_log_set_level(RB_LOG_INFO);
    rb_log_set_sink(capture_sink, &c);
    rb_log(RB_LOG_WARN, "first\nsecond\n%s\n", "third\nfourth");
    ck_assert_int_eq(c.count, 1);
    ck_assert_str_eq(c.message[0], "first second third fourth ");
    rb_log_set_sink(NULL, NULL);
}
END_TEST

/* ------------------------------------------------------------ RB_LOG */

START_TEST(env_by_name)
{
    rb_log_set_level(RB_LOG_INFO);
    ck_assert_int_eq(setenv("RB_LOG", "debug", 1), 0);
    ck_assert_int_eq(rb_log_init_from_env(), RB_OK);
    ck_assert_int_eq(rb_log_get_level(), RB_LOG_DEBUG);
    ck_assert_int_eq(setenv("RB_LOG", "Warning", 1), 0);
    ck_assert_int_eq(rb_log_init_from_env(), RB_OK);
    ck_assert_int_eq(rb_log_get_level(), RB_LOG_WARN);
    unsetenv("RB_LOG");
}
END_TEST

START_TEST(env_by_number)
{
    rb_log_set_level(RB_LOG_INFO);
    ck_assert_int_eq(setenv("RB_LOG", "3", 1), 0);
    ck_assert_int_eq(rb_log_init_from_env(), RB_OK);
    ck_assert_int_eq(rb_log_get_level(), RB_LOG_DEBUG);
    ck_assert_int_eq(setenv("RB_LOG", "0", 1), 0);
    ck_assert_int_eq(rb_log_init_from_env(), RB_OK);
    ck_assert_int_eq(rb_log_get_level(), RB_LOG_ERROR);
    unsetenv("RB_LOG");
}
END_TEST

START_TEST(env_empty_or_unset_leaves_level)
{
    rb_log_set_level(RB_LOG_TRACE);
    ck_assert_int_eq(setenv("RB_LOG", "", 1), 0);
    ck_assert_int_eq(rb_log_init_from_env(), RB_OK);
    ck_assert_int_eq(rb_log_get_level(), RB_LOG_TRACE);
    ck_assert_int_eq(unsetenv("RB_LOG"), 0);
    rb_log_set_level(RB_LOG_ERROR);
    ck_assert_int_eq(rb_log_init_from_env(), RB_OK);
    ck_assert_int_eq(rb_log_get_level(), RB_LOG_ERROR);
}
END_TEST

START_TEST(env_bogus_is_an_error)
{
    rb_log_set_level(RB_LOG_DEBUG);
    ck_assert_int_eq(setenv("RB_LOG", "bogus", 1), 0);
    rb_error_clear();
    ck_assert_int_eq(rb_log_init_from_env(), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_log_get_level(), RB_LOG_DEBUG);
    ck_assert_msg(strstr(rb_last_error(), "RB_LOG") != NULL, "message: %s", rb_last_error());
    ck_assert_msg(strstr(rb_last_error(), "'bogus'") != NULL, "message: %s", rb_last_error());
    ck_assert_int_eq(setenv("RB_LOG", "7", 1), 0);
    ck_assert_int_eq(rb_log_init_from_env(), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_log_get_level(), RB_LOG_DEBUG);
    unsetenv("RB_LOG");
}
END_TEST

/* ------------------------------------------------------------ default sink */

static void emit_warning(void)
{
    rb_log(RB_LOG_WARN, "disk %s", "full");
}

START_TEST(default_sink_writes_to_stderr)
{
    char out[1024];
    rb_log_set_level(RB_LOG_INFO);
    capture_stderr(emit_warning, out, sizeof out);
    ck_assert_str_eq(out, "robusta: warning: disk full\n");
}
END_TEST

static void emit_every_level(void)
{
    rb_log(RB_LOG_ERROR, "e");
    rb_log(RB_LOG_WARN, "w");
    rb_log(RB_LOG_INFO, "i");
    rb_log(RB_LOG_DEBUG, "d");
    rb_log(RB_LOG_TRACE, "t\nu");
}

START_TEST(default_sink_prefixes_and_filters)
{
    char out[1024];
    rb_log_set_level(RB_LOG_TRACE);
    capture_stderr(emit_every_level, out, sizeof out);
    ck_assert_str_eq(out, "robusta: error: e\n"
                          "robusta: warning: w\n"
                          "robusta: i\n"
                          "robusta: debug: d\n"
                          "robusta: trace: t u\n");
    rb_log_set_level(RB_LOG_WARN);
    capture_stderr(emit_every_level, out, sizeof out);
    ck_assert_str_eq(out, "robusta: error: e\nrobusta: warning: w\n");
}
END_TEST

START_TEST(null_sink_restores_default)
{
    captured c;
    char out[1024];
    memset(&c, 0, sizeof c);
    rb_log_set_level(RB_LOG_INFO);
    rb_log_set_sink(capture_sink, &c);
    capture_stderr(emit_warning, out, sizeof out);
    ck_assert_str_eq(out, ""); /* a custom sink replaces stderr */
    ck_assert_int_eq(c.count, 1);
    ck_assert_str_eq(c.message[0], "disk full");
    ck_assert_int_eq(c.level[0], RB_LOG_WARN);
    rb_log_set_sink(NULL, NULL);
    capture_stderr(emit_warning, out, sizeof out);
    ck_assert_str_eq(out, "robusta: warning: disk full\n");
    ck_assert_int_eq(c.count, 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *parse = tcase_create("parse");
    TCase *level = tcase_create("level");
    TCase *env = tcase_create("env");
    TCase *sink = tcase_create("sink");

    tcase_add_test(parse, parse_level_names_any_case);
    tcase_add_test(parse, parse_level_rejects_other_text);
    tcase_add_test(parse, level_names);
    suite_add_tcase(s, parse);

    tcase_add_test(level, default_level_is_info);
    tcase_add_test(level, set_level_round_trips);
    tcase_add_test(level, set_level_clamps_above);
    tcase_add_test(level, set_level_clamps_below);
    tcase_add_test(level, sink_receives_messages_passing_threshold);
    tcase_add_test(level, sink_gets_its_user_pointer);
    tcase_add_test(level, newlines_become_spaces);
    suite_add_tcase(s, level);

    tcase_add_test(env, env_by_name);
    tcase_add_test(env, env_by_number);
    tcase_add_test(env, env_empty_or_unset_leaves_level);
    tcase_add_test(env, env_bogus_is_an_error);
    suite_add_tcase(s, env);

    tcase_add_test(sink, default_sink_writes_to_stderr);
    tcase_add_test(sink, default_sink_prefixes_and_filters);
    tcase_add_test(sink, null_sink_restores_default);
    suite_add_tcase(s, sink);
    return run_suite(s);
}
