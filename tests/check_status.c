/* rb_status, rb_status_str and the thread-local error message. */
#include "config.h"

#include <pthread.h>

#include <robusta/robusta.h>

#include "testutil.h"

START_TEST(every_status_has_a_distinct_name)
{
    for (int i = 0; i < RB_STATUS_COUNT; i++) {
        const char *name = rb_status_str((rb_status)i);
        ck_assert_ptr_nonnull(name);
        ck_assert_str_ne(name, "unknown status");
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(name, rb_status_str((rb_status)j));
    }
    ck_assert_str_eq(rb_status_str(RB_OK), "success");
    ck_assert_str_eq(rb_status_str(RB_ERR_INVALID_ARGUMENT), "invalid argument");
    ck_assert_str_eq(rb_status_str(RB_STATUS_COUNT), "unknown status");
    ck_assert_str_eq(rb_status_str((rb_status)-1), "unknown status");
    ck_assert_int_eq(RB_OK, 0);
}
END_TEST

START_TEST(error_set_returns_status_and_keeps_message)
{
    rb_error_clear();
    ck_assert_str_eq(rb_last_error(), "");
    ck_assert_int_eq(rb_last_status(), RB_OK);
    ck_assert_int_eq(rb_error_set(RB_ERR_IO, "cannot open %s: %s", "a.rbt", "denied"), RB_ERR_IO);
    ck_assert_str_eq(rb_last_error(), "cannot open a.rbt: denied");
    ck_assert_int_eq(rb_last_status(), RB_ERR_IO);
    ck_assert_int_eq(rb_error_prefix("loading %s: ", "model"), RB_ERR_IO);
    ck_assert_str_eq(rb_last_error(), "loading model: cannot open a.rbt: denied");
    rb_error_clear();
    ck_assert_str_eq(rb_last_error(), "");
}
END_TEST

START_TEST(messages_are_one_line_and_bounded)
{
    char big[4096];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rb_error_set(RB_ERR_CORRUPT, "line one\nline two\r\tend");
    ck_assert_str_eq(rb_last_error(), "line one line two  end");
    rb_error_set(RB_ERR_CORRUPT, "%s", big);
    ck_assert_uint_eq(strlen(rb_last_error()), 1023);
}
END_TEST

START_TEST(status_without_detail_reads_as_its_name)
{
    rb_error_set(RB_ERR_OUT_OF_MEMORY, NULL);
    ck_assert_str_eq(rb_last_error(), "out of memory");
}
END_TEST

static void *other_thread(void *arg)
{
    (void)arg;
    /* A fresh thread sees no error from the main thread... */
    if (rb_last_status() != RB_OK || strcmp(rb_last_error(), "") != 0)
        return (void *)1;
    /* ...and its own errors stay its own. */
    rb_error_set(RB_ERR_NUMERIC, "thread error");
    return NULL;
}

START_TEST(errors_are_per_thread)
{
    pthread_t t;
    void *result;
    rb_error_set(RB_ERR_IO, "main error");
    ck_assert_int_eq(pthread_create(&t, NULL, other_thread, NULL), 0);
    ck_assert_int_eq(pthread_join(t, &result), 0);
    ck_assert_ptr_null(result);
    ck_assert_str_eq(rb_last_error(), "main error");
    ck_assert_int_eq(rb_last_status(), RB_ERR_IO);
}
END_TEST

START_TEST(versions_agree)
{
    char info[1024];
    ck_assert_str_eq(rb_version_string(), RB_VERSION_STRING);
    ck_assert_uint_eq(rb_version_number(), RB_VERSION_NUMBER);
    ck_assert_int_eq(rb_build_info(info, sizeof info), RB_OK);
    ck_assert_ptr_nonnull(strstr(info, "oneDNN "));
    ck_assert_ptr_nonnull(strstr(info, "hwloc "));
    ck_assert_ptr_nonnull(strstr(info, "zstd "));
    ck_assert_int_eq(rb_build_info(info, 8), RB_ERR_INVALID_ARGUMENT);
}
END_TEST

/* The line that says which runs a result repeats on: the CPU model as
 * /proc/cpuinfo names it, then oneDNN's version and kernel ISA. */
START_TEST(machine_info_names_cpu_and_kernels)
{
    char info[512], model[256] = "unknown CPU", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "model name", 10) == 0) {
            char *v = strchr(line, ':') + 1;
            v += strspn(v, " \t");
            v[strcspn(v, "\n")] = '\0';
            snprintf(model, sizeof model, "%s", v);
            break;
        }
    if (f != NULL)
        fclose(f);
    ck_assert_int_eq(rb_machine_info(info, sizeof info), RB_OK);
    ck_assert_msg(strncmp(info, model, strlen(model)) == 0 && strncmp(info + strlen(model), "; oneDNN ", 9) == 0,
                  "%s (cpu model %s)", info, model);
    ck_assert_msg(strlen(info) > 8 && strcmp(info + strlen(info) - 8, " kernels") == 0, "%s", info);
    ck_assert_ptr_null(strstr(info, "\n"));
    ck_assert_int_eq(rb_machine_info(info, 8), RB_ERR_INVALID_ARGUMENT);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("status");
    tcase_add_test(tc, every_status_has_a_distinct_name);
    tcase_add_test(tc, error_set_returns_status_and_keeps_message);
    tcase_add_test(tc, messages_are_one_line_and_bounded);
    tcase_add_test(tc, status_without_detail_reads_as_its_name);
    tcase_add_test(tc, errors_are_per_thread);
    tcase_add_test(tc, versions_agree);
    tcase_add_test(tc, machine_info_names_cpu_and_kernels);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
