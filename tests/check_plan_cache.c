/* The plan cache (src/sys/plan_cache.h, compiled in): plans round-trip by
 * machine under the user's cache folder; concurrent writers all keep their
 * plans; a corrupt file is one warning and is replaced, one of another
 * format or version is one warning and is left alone; a folder that cannot
 * be written is one warning and no failure; bad keys are refused. */
#include "config.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <robusta/robusta.h>

#include "sys/plan_cache.h"
#include "testutil.h"

static char dir[256];
static char warnings[4096];
static int n_warnings;

static void collect(rb_log_level level, const char *message, void *user)
{
    (void)user;
    if (level > RB_LOG_WARN)
        return;
    n_warnings++;
    snprintf(warnings + strlen(warnings), sizeof warnings - strlen(warnings), "%s\n", message);
}

static void setup(void)
{
    make_temp_dir(dir, sizeof dir);
    warnings[0] = '\0';
    n_warnings = 0;
    rb_log_set_sink(collect, NULL);
}

static void teardown(void)
{
    rb_log_set_sink(NULL, NULL);
    remove_temp_dir(dir);
}

static char *read_text(const char *path)
{
    size_t size;
    char *text = (char *)read_whole_file(path, &size);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    text[size] = '\0';
    return text;
}

START_TEST(plans_round_trip_by_machine_in_the_user_cache_folder)
{
    rb_plan_cache *c;
    char want[512], *text;
    setenv("XDG_CACHE_HOME", dir, 1);
    unsetenv("RB_PLAN_CACHE");
    ck_assert_int_eq(rb_plan_cache_open(&c, NULL, "AMD EPYC; avx2; 2 threads"), RB_OK);
    snprintf(want, sizeof want, "%s/robusta/plans.json", dir);
    ck_assert_str_eq(rb_plan_cache_path(c), want);
    ck_assert_ptr_null(rb_plan_cache_get(c, "conv a"));
    ck_assert_int_eq(rb_plan_cache_put(c, "conv a", "direct"), RB_OK);
    ck_assert_int_eq(rb_plan_cache_put(c, "conv b", "winograd"), RB_OK);
    ck_assert_int_eq(rb_plan_cache_put(c, "conv a", "bf16 direct"), RB_OK); /* the later choice wins */
    ck_assert_str_eq(rb_plan_cache_get(c, "conv a"), "bf16 direct");
    ck_assert_int_eq(rb_plan_cache_save(c), RB_OK);
    rb_plan_cache_close(c);
    ck_assert_int_eq(n_warnings, 0);
    text = read_text(want);
    ck_assert_msg(strstr(text, "\"format\":\"robusta-plan-cache\"") != NULL ||
                      strstr(text, "\"format\": \"robusta-plan-cache\"") != NULL,
                  "%s", text);
    free(text);
    ck_assert_int_eq(rb_plan_cache_open(&c, NULL, "AMD EPYC; avx2; 2 threads"), RB_OK);
    ck_assert_str_eq(rb_plan_cache_get(c, "conv a"), "bf16 direct");
    ck_assert_str_eq(rb_plan_cache_get(c, "conv b"), "winograd");
    rb_plan_cache_close(c);
    /* another machine's measurements do not hold here */
    ck_assert_int_eq(rb_plan_cache_open(&c, NULL, "AMD EPYC; avx2; 16 threads"), RB_OK);
    ck_assert_ptr_null(rb_plan_cache_get(c, "conv a"));
    rb_plan_cache_close(c);
    /* RB_PLAN_CACHE names another file */
    snprintf(want, sizeof want, "%s/elsewhere/p.json", dir);
    setenv("RB_PLAN_CACHE", want, 1);
    ck_assert_int_eq(rb_plan_cache_open(&c, NULL, "m"), RB_OK);
    ck_assert_str_eq(rb_plan_cache_path(c), want);
    ck_assert_int_eq(rb_plan_cache_put(c, "k", "v"), RB_OK);
    ck_assert_int_eq(rb_plan_cache_save(c), RB_OK);
    rb_plan_cache_close(c);
    unsetenv("RB_PLAN_CACHE");
    ck_assert_int_eq(access(want, R_OK), 0);
    ck_assert_int_eq(n_warnings, 0);
}
END_TEST

/* Eight processes save at once, each its own plan (one of them for another
 * machine): every plan is in the file afterwards. */
START_TEST(concurrent_writers_keep_every_plan)
{
    char path[512], key[32], choice[32];
    rb_plan_cache *c;
    pid_t pids[8];
    snprintf(path, sizeof path, "%s/plans.json", dir);
    for (int i = 0; i < 8; i++) {
        pids[i] = fork();
        ck_assert(pids[i] >= 0);
        if (pids[i] == 0) {
            rb_plan_cache *mine;
            snprintf(key, sizeof key, "op %d", i);
            snprintf(choice, sizeof choice, "choice %d", i);
            if (rb_plan_cache_open(&mine, path, i == 7 ? "other" : "m") != RB_OK ||
                rb_plan_cache_put(mine, key, choice) != RB_OK || rb_plan_cache_save(mine) != RB_OK)
                _exit(1);
            rb_plan_cache_close(mine);
            _exit(n_warnings == 0 ? 0 : 2);
        }
    }
    for (int i = 0; i < 8; i++) {
        int status;
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed (%d)", i, status);
    }
    ck_assert_int_eq(rb_plan_cache_open(&c, path, "m"), RB_OK);
    for (int i = 0; i < 7; i++) {
        snprintf(key, sizeof key, "op %d", i);
        snprintf(choice, sizeof choice, "choice %d", i);
        ck_assert_msg(rb_plan_cache_get(c, key) != NULL, "%s lost", key);
        ck_assert_str_eq(rb_plan_cache_get(c, key), choice);
    }
    ck_assert_ptr_null(rb_plan_cache_get(c, "op 7"));
    rb_plan_cache_close(c);
    ck_assert_int_eq(rb_plan_cache_open(&c, path, "other"), RB_OK);
    ck_assert_str_eq(rb_plan_cache_get(c, "op 7"), "choice 7");
    rb_plan_cache_close(c);
    ck_assert_int_eq(n_warnings, 0);
}
END_TEST

START_TEST(a_corrupt_cache_is_one_warning_and_is_replaced)
{
    char path[512], *text;
    rb_plan_cache *c;
    snprintf(path, sizeof path, "%s/plans.json", dir);
    write_text(path, "{\"format\": \"robusta-plan-cache\", \"version\": 1, \"machines\": {\"m\": {\"k\": 3}}}");
    ck_assert_int_eq(rb_plan_cache_open(&c, path, "m"), RB_OK);
    ck_assert_int_eq(n_warnings, 1);
    ck_assert_msg(strstr(warnings, "/plans.json: machine 'm', plan 'k': a key and its choice are strings of 1 to "
                                   "255 printable ASCII characters; not used; it is replaced when plans are saved\n") !=
                      NULL,
                  "%s", warnings);
    ck_assert_ptr_null(rb_plan_cache_get(c, "k"));
    ck_assert_int_eq(rb_plan_cache_put(c, "k", "direct"), RB_OK);
    ck_assert_int_eq(rb_plan_cache_save(c), RB_OK);
    rb_plan_cache_close(c);
    ck_assert_int_eq(n_warnings, 1);
    ck_assert_int_eq(rb_plan_cache_open(&c, path, "m"), RB_OK);
    ck_assert_str_eq(rb_plan_cache_get(c, "k"), "direct");
    rb_plan_cache_close(c);
    ck_assert_int_eq(n_warnings, 1);
    /* truncated JSON, and bytes that are not JSON at all */
    write_text(path, "{\"format\": \"robusta-plan-cache\", \"vers");
    ck_assert_int_eq(rb_plan_cache_open(&c, path, "m"), RB_OK);
    rb_plan_cache_close(c);
    ck_assert_int_eq(n_warnings, 2);
    ck_assert_msg(strstr(warnings, "/plans.json: not valid JSON: ") != NULL, "%s", warnings);
    write_text(path, "[1, 2]");
    ck_assert_int_eq(rb_plan_cache_open(&c, path, "m"), RB_OK);
    rb_plan_cache_close(c);
    ck_assert_msg(strstr(warnings, "/plans.json: not a plan cache (the file is a JSON array, not an object); not "
                                   "used") != NULL,
                  "%s", warnings);
    (void)text;
}
END_TEST

START_TEST(another_format_or_version_is_left_alone)
{
    static const char *const files[][2] = {
        {"{\"format\": \"robusta-plan-cache\", \"version\": 2, \"machines\": {}}",
         "/plans.json: plan cache version 2; this robusta reads version 1; not used, and left as it is"},
        {"{\"format\": \"something-else\", \"plans\": []}",
         "/plans.json: not a robusta plan cache (its \"format\" is not \"robusta-plan-cache\"); not used, and left "
         "as it is"},
    };
    char path[512], *after;
    rb_plan_cache *c;
    snprintf(path, sizeof path, "%s/plans.json", dir);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        warnings[0] = '\0';
        n_warnings = 0;
        write_text(path, files[i][0]);
        ck_assert_int_eq(rb_plan_cache_open(&c, path, "m"), RB_OK);
        ck_assert_int_eq(rb_plan_cache_put(c, "k", "direct"), RB_OK);
        ck_assert_str_eq(rb_plan_cache_get(c, "k"), "direct"); /* used in this run all the same */
        ck_assert_int_eq(rb_plan_cache_save(c), RB_OK);
        rb_plan_cache_close(c);
        ck_assert_int_eq(n_warnings, 1);
        ck_assert_msg(strstr(warnings, files[i][1]) != NULL, "%s", warnings);
        after = read_text(path);
        ck_assert_str_eq(after, files[i][0]);
        free(after);
    }
}
END_TEST

/* A folder that cannot be made (its parent is a file: the test may run as
 * root, whom permissions do not stop): one warning, no failure. */
START_TEST(a_folder_that_cannot_be_written_is_one_warning)
{
    char file[512], path[600];
    rb_plan_cache *c;
    snprintf(file, sizeof file, "%s/a-file", dir);
    write_text(file, "x");
    snprintf(path, sizeof path, "%s/sub/plans.json", file);
    ck_assert_int_eq(rb_plan_cache_open(&c, path, "m"), RB_OK);
    ck_assert_int_eq(n_warnings, 0); /* nothing there to read yet */
    ck_assert_int_eq(rb_plan_cache_put(c, "k", "direct"), RB_OK);
    ck_assert_int_eq(rb_plan_cache_save(c), RB_OK);
    ck_assert_int_eq(n_warnings, 1);
    ck_assert_msg(strstr(warnings, "plan cache: cannot create the folder ") != NULL &&
                      strstr(warnings, ": the plans are measured again next time\n") != NULL,
                  "%s", warnings);
    ck_assert_str_eq(rb_plan_cache_get(c, "k"), "direct");
    rb_plan_cache_close(c);
}
END_TEST

/* Something at the path that cannot be read as a file (a folder): one
 * warning, and nothing replaces it. */
START_TEST(an_unreadable_cache_is_one_warning_and_left_alone)
{
    char path[512];
    rb_plan_cache *c;
    struct stat st;
    snprintf(path, sizeof path, "%s/plans.json", dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    ck_assert_int_eq(rb_plan_cache_open(&c, path, "m"), RB_OK);
    ck_assert_int_eq(rb_plan_cache_put(c, "k", "direct"), RB_OK);
    ck_assert_int_eq(rb_plan_cache_save(c), RB_OK);
    rb_plan_cache_close(c);
    ck_assert_int_eq(n_warnings, 1);
    ck_assert_msg(strstr(warnings, "/plans.json is not a regular file (it is a folder); not used, and left as it is")
                      != NULL,
                  "%s", warnings);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
}
END_TEST

START_TEST(bad_keys_and_machines_are_refused)
{
    char path[512], long_key[300];
    rb_plan_cache *c = (rb_plan_cache *)1;
    snprintf(path, sizeof path, "%s/plans.json", dir);
    ck_assert_int_eq(rb_plan_cache_open(&c, path, ""), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_plan_cache_open(&c, path, "tab\there"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_plan_cache_open(&c, path, "m"), RB_OK);
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    ck_assert_int_eq(rb_plan_cache_put(c, long_key, "v"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(),
                     "plan cache: a key and its choice are strings of 1 to 255 printable ASCII characters");
    long_key[255] = '\0';
    ck_assert_int_eq(rb_plan_cache_put(c, long_key, "v"), RB_OK); /* 255 fit */
    ck_assert_int_eq(rb_plan_cache_put(c, "k", "two\nlines"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_plan_cache_put(c, "", "v"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_plan_cache_put(c, "k", "caf\xc3\xa9"), RB_ERR_INVALID_ARGUMENT);
    rb_plan_cache_close(c);
    /* nothing saved: no file */
    ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

static Suite *plan_cache_suite(void)
{
    Suite *s = suite_create("plan_cache");
    TCase *tc = tcase_create("plan_cache");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, plans_round_trip_by_machine_in_the_user_cache_folder);
    tcase_add_test(tc, concurrent_writers_keep_every_plan);
    tcase_add_test(tc, a_corrupt_cache_is_one_warning_and_is_replaced);
    tcase_add_test(tc, another_format_or_version_is_left_alone);
    tcase_add_test(tc, a_folder_that_cannot_be_written_is_one_warning);
    tcase_add_test(tc, an_unreadable_cache_is_one_warning_and_left_alone);
    tcase_add_test(tc, bad_keys_and_machines_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(plan_cache_suite());
}
