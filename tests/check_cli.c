/* The robusta command: help, versions, exit codes, errors on one line, and
 * the plugins listing in text and JSON. Runs the built binary. */
#include "config.h"

#include <json-c/json.h>

#include <robusta/robusta.h>

#include "testutil.h"

static const char *const planned[] = {"bench"};
/* Commands that work (their behaviour is tested in check_model and others). */
static const char *const available[] = {"plugins", "import", "export", "infer", "inspect", "train", "eval", "attack"};
#define AVAILABLE_COUNT (sizeof available / sizeof available[0])
#define PLANNED_COUNT (sizeof planned / sizeof planned[0])

#define RUN(r, env, ...) run_robusta(r, env, (const char *const[]){__VA_ARGS__, NULL})

static run_result r;

START_TEST(version_names_robusta_and_its_libraries)
{
    RUN(&r, NULL, "--version");
    ck_assert_int_eq(r.code, 0);
    ck_assert_msg(strncmp(r.out, "robusta " RB_VERSION_STRING "\n", strlen("robusta " RB_VERSION_STRING "\n")) == 0, "%s", r.out);
    ck_assert_ptr_nonnull(strstr(r.out, "plugin ABI 1"));
    ck_assert_ptr_nonnull(strstr(r.out, "oneDNN"));
    ck_assert_str_eq(r.err, "");
}
END_TEST

START_TEST(help_lists_every_command)
{
    RUN(&r, NULL, "--help");
    ck_assert_int_eq(r.code, 0);
    for (size_t i = 0; i < AVAILABLE_COUNT; i++) {
        char line[64];
        snprintf(line, sizeof line, "\n  %-10s ", available[i]);
        ck_assert_msg(strstr(r.out, line) != NULL, "--help does not list %s", available[i]);
        RUN(&r, NULL, available[i], "--help");
        ck_assert_int_eq(r.code, 0);
        snprintf(line, sizeof line, "usage: robusta %s ", available[i]);
        ck_assert_msg(strncmp(r.out, line, strlen(line)) == 0, "%s", r.out);
        ck_assert_ptr_null(strstr(r.out, "not available yet"));
        ck_assert_ptr_null(strstr(r.out, "options of arch plugin"));
        RUN(&r, NULL, "--help");
    }
    for (size_t i = 0; i < PLANNED_COUNT; i++) {
        char line[64];
        snprintf(line, sizeof line, "\n  %-10s ", planned[i]);
        ck_assert_msg(strstr(r.out, line) != NULL, "--help does not list %s", planned[i]);
    }
    ck_assert_ptr_nonnull(strstr(r.out, "exit status: 0 success, 1 failure, 2 bad command line, 3 not available yet"));
    RUN(&r, NULL, "help");
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "usage: robusta"));
}
END_TEST

START_TEST(help_with_a_plugin_lists_its_options)
{
    RUN(&r, NULL, "import", "--arch", "resnet50", "--help");
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "usage: robusta import "));
    ck_assert_ptr_nonnull(strstr(r.out, "\noptions of arch plugin resnet (--arch):\n"));
    ck_assert_ptr_nonnull(strstr(r.out, "  --width-per-group int"));
    /* An unknown plugin still gets the command's help. */
    RUN(&r, NULL, "import", "--arch", "resnet51", "--help");
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "usage: robusta import "));
    ck_assert_ptr_null(strstr(r.out, "options of arch plugin"));
}
END_TEST

START_TEST(no_command_is_a_usage_error)
{
    RUN(&r, NULL, "-v");
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.out, "");
    ck_assert_ptr_nonnull(strstr(r.err, "usage: robusta"));
}
END_TEST

START_TEST(every_command_has_help)
{
    RUN(&r, NULL, "plugins", "--help");
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "usage: robusta plugins"));
    ck_assert_ptr_nonnull(strstr(r.out, "--json"));
    ck_assert_ptr_nonnull(strstr(r.out, "--kind any|arch|attack|task"));
    for (size_t i = 0; i < PLANNED_COUNT; i++) {
        char usage[64];
        RUN(&r, NULL, planned[i], "--help");
        ck_assert_int_eq(r.code, 0);
        snprintf(usage, sizeof usage, "usage: robusta %s ", planned[i]);
        ck_assert_msg(strncmp(r.out, usage, strlen(usage)) == 0, "%s --help: %s", planned[i], r.out);
        ck_assert_ptr_nonnull(strstr(r.out, "not available yet"));
        /* help comes first wherever it stands */
        RUN(&r, NULL, "help", planned[i]);
        ck_assert_int_eq(r.code, 0);
        ck_assert(strncmp(r.out, usage, strlen(usage)) == 0);
    }
}
END_TEST

START_TEST(planned_commands_say_they_are_not_available)
{
    for (size_t i = 0; i < PLANNED_COUNT; i++) {
        char prefix[64];
        RUN(&r, NULL, planned[i], "--arch", "resnet18", "whatever");
        ck_assert_msg(r.code == 3, "%s exited %d", planned[i], r.code);
        ck_assert_str_eq(r.out, "");
        snprintf(prefix, sizeof prefix, "robusta %s: not available yet in robusta " RB_VERSION_STRING, planned[i]);
        ck_assert_msg(strncmp(r.err, prefix, strlen(prefix)) == 0, "%s", r.err);
        ck_assert_int_eq(count_lines(r.err), 1);
    }
}
END_TEST

START_TEST(usage_errors_exit_2_with_one_line)
{
    RUN(&r, NULL, "trian");
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.err, "robusta: unknown command 'trian'; did you mean 'train'? (robusta --help lists the commands)\n");
    RUN(&r, NULL, "frobnicate");
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.err, "robusta: unknown command 'frobnicate' (robusta --help lists the commands)\n");
    RUN(&r, NULL, "-x", "plugins");
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.err, "robusta: unknown flag -x (robusta --help lists them)\n");
    RUN(&r, NULL, "plugins", "--jsn");
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.err, "robusta plugins: unknown option --jsn; did you mean --json? (robusta plugins --help lists its options)\n");
    RUN(&r, NULL, "plugins", "--kind", "arhc");
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.err, "robusta plugins: --kind: 'arhc' is not one of any|arch|attack|task; did you mean arch? (robusta plugins --help lists its options)\n");
    RUN(&r, NULL, "plugins", "--kind");
    ck_assert_int_eq(r.code, 2);
    ck_assert_int_eq(count_lines(r.err), 1);
    RUN(&r, NULL, "plugins", "a", "b");
    ck_assert_int_eq(r.code, 2);
    ck_assert_int_eq(count_lines(r.err), 1);
    RUN(&r, "RB_LOG=loud", "plugins");
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.err, "robusta: RB_LOG: log level 'loud' is not one of error, warn, info, debug, trace (or 0-4) (unset RB_LOG or give a level name)\n");
}
END_TEST

START_TEST(plugins_lists_the_built_plugins)
{
    RUN(&r, NULL, "plugins");
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "attack  pgd-l2 1.0: projected gradient descent in an L2 ball"));
    ck_assert_ptr_nonnull(strstr(r.out, "attack  pgd-linf 1.0: "));
    ck_assert_ptr_nonnull(strstr(r.out, "--step-size"));
    ck_assert_ptr_null(strstr(r.out, "refused"));
    RUN(&r, NULL, "plugins", "pgd-linf");
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_null(strstr(r.out, "pgd-l2 "));
    ck_assert_ptr_nonnull(strstr(r.out, "8/255"));
    RUN(&r, NULL, "plugins", "pgd-l3");
    ck_assert_int_eq(r.code, 1);
    ck_assert_str_eq(r.err, "robusta plugins: no plugin named 'pgd-l3'; did you mean 'pgd-l2'?\n");
    RUN(&r, NULL, "plugins", "--kind", "arch");
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "arch    resnet 1.0: "));
    ck_assert_ptr_null(strstr(r.out, "pgd-l2"));
    ck_assert_ptr_null(strstr(r.out, "pgd-l2"));
}
END_TEST

static json_object *field(json_object *o, const char *key)
{
    json_object *v = NULL;
    ck_assert_msg(json_object_object_get_ex(o, key, &v), "no key %s", key);
    return v;
}

START_TEST(plugins_json_is_typed_and_complete)
{
    json_object *root, *list, *l2 = NULL, *params, *eps;
    RUN(&r, NULL, "plugins", "--json");
    ck_assert_int_eq(r.code, 0);
    root = json_tokener_parse(r.out);
    ck_assert_msg(root != NULL, "not JSON: %s", r.out);
    ck_assert_str_eq(json_object_get_string(field(root, "robusta")), RB_VERSION_STRING);
    ck_assert_int_eq(json_object_get_int(field(root, "abi")), RB_PLUGIN_ABI_VERSION);
    ck_assert_int_eq(json_object_array_length(field(root, "refused")), 0);
    ck_assert_int_ge(json_object_array_length(field(root, "search_path")), 2);
    list = field(root, "plugins");
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *p = json_object_array_get_idx(list, i);
        if (strcmp(json_object_get_string(field(p, "name")), "pgd-l2") == 0)
            l2 = p;
    }
    ck_assert_ptr_nonnull(l2);
    ck_assert_str_eq(json_object_get_string(field(l2, "kind")), "attack");
    ck_assert_str_eq(json_object_get_string(field(l2, "version")), "1.0");
    ck_assert_str_eq(json_object_get_string(field(l2, "shape")), "step-based");
    params = field(l2, "params");
    ck_assert_int_eq(json_object_array_length(params), 2);
    eps = json_object_array_get_idx(params, 0);
    ck_assert_str_eq(json_object_get_string(field(eps, "name")), "eps");
    ck_assert_str_eq(json_object_get_string(field(eps, "type")), "float");
    ck_assert(json_object_is_type(field(eps, "default"), json_type_double));
    ck_assert_double_eq(json_object_get_double(field(eps, "default")), 0.5);
    ck_assert_str_eq(json_object_get_string(field(eps, "range")), "[0, inf)");
    ck_assert(!json_object_get_boolean(field(eps, "required")));
    json_object_put(root);
}
END_TEST

START_TEST(refusals_are_listed_and_logged_one_line_each)
{
    char env[PATH_MAX + 32];
    json_object *root;
    snprintf(env, sizeof env, "RB_PLUGIN_PATH=%s", test_env("RB_TEST_FIXTURES"));
    RUN(&r, env, "plugins");
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "\nrefused:\n"));
    ck_assert_ptr_nonnull(strstr(r.out, "bad_abi.so: built for plugin ABI 99"));
    /* make check runs with RB_LOG=warn: each refusal is one warning line. */
    ck_assert_int_eq(count_lines(r.err), 12);
    for (const char *line = r.err; *line; line = strchr(line, '\n') + 1)
        ck_assert(strncmp(line, "robusta: warning: plugin ", 25) == 0);
    RUN(&r, env, "-q", "plugins", "--json");
    ck_assert_int_eq(r.code, 0);
    ck_assert_str_eq(r.err, ""); /* -q: warnings are not printed */
    root = json_tokener_parse(r.out);
    ck_assert_ptr_nonnull(root);
    ck_assert_int_eq(json_object_array_length(field(root, "refused")), 12);
    json_object_put(root);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, version_names_robusta_and_its_libraries);
    tcase_add_test(tc, help_lists_every_command);
    tcase_add_test(tc, help_with_a_plugin_lists_its_options);
    tcase_add_test(tc, no_command_is_a_usage_error);
    tcase_add_test(tc, every_command_has_help);
    tcase_add_test(tc, planned_commands_say_they_are_not_available);
    tcase_add_test(tc, usage_errors_exit_2_with_one_line);
    tcase_add_test(tc, plugins_lists_the_built_plugins);
    tcase_add_test(tc, plugins_json_is_typed_and_complete);
    tcase_add_test(tc, refusals_are_listed_and_logged_one_line_each);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
