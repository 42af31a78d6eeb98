/* The robusta command: help, versions, exit codes, errors on one line, and
 * the plugins listing in text and JSON. Runs the built binary. */
#include "config.h"

#include <json-c/json.h>

#include <robusta/robusta.h>

#include "testutil.h"

/* Commands (their behaviour is tested in check_model and others; bench's here). */
static const char *const available[] = {"plugins", "import", "export", "infer", "inspect",
                                        "train",   "eval",   "attack", "bench"};
#define AVAILABLE_COUNT (sizeof available / sizeof available[0])

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
    RUN(&r, NULL, "bench", "--help");
    ck_assert_int_eq(r.code, 0);
    ck_assert(strncmp(r.out, "usage: robusta bench --arch NAME", strlen("usage: robusta bench --arch NAME")) == 0);
    ck_assert_ptr_nonnull(strstr(r.out, "--only all|train|infer|attack"));
    ck_assert_ptr_null(strstr(r.out, "not available yet"));
    /* help comes first wherever it stands */
    RUN(&r, NULL, "help", "bench");
    ck_assert_int_eq(r.code, 0);
    ck_assert(strncmp(r.out, "usage: robusta bench ", strlen("usage: robusta bench ")) == 0);
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

static double number(json_object *o, const char *key)
{
    return json_object_get_double(field(o, key));
}

/* robusta bench on a model small enough for the test: every figure present,
 * positive and consistent with the others. */
START_TEST(bench_times_training_inference_and_attacks)
{
    json_object *root, *train, *infer, *attack;
    double train_gflop, infer_gflop, attack_gflop;
    RUN(&r, NULL, "bench", "--arch", "resnet18", "--stem", "cifar", "--width", "0.25", "--num-classes", "10",
        "--image-size", "16", "--batch-size", "4", "--repeats", "2", "--threads", "1", "--attack", "pgd-linf",
        "--eps", "8/255", "--step-size", "2/255", "--steps", "2", "--json");
    ck_assert_msg(r.code == 0, "%s", r.err);
    root = json_tokener_parse(r.out);
    ck_assert_ptr_nonnull(root);
    ck_assert_str_eq(json_object_get_string(field(root, "arch")), "resnet18");
    ck_assert_int_eq(json_object_get_int64(field(root, "image_size")), 16);
    ck_assert_int_eq(json_object_get_int64(field(root, "channels")), 3);
    ck_assert_int_eq(json_object_get_int64(field(root, "classes")), 10);
    ck_assert_int_eq(json_object_get_int64(field(root, "batch_size")), 4);
    ck_assert_int_eq(json_object_get_int64(field(root, "repeats")), 2);
    ck_assert_str_eq(json_object_get_string(field(root, "precision")), "f32");
    ck_assert_str_eq(json_object_get_string(field(root, "conv_algorithm")), "winograd");
    ck_assert_ptr_nonnull(strstr(json_object_get_string(field(root, "threads")), "1 thread"));
    train = field(root, "train");
    infer = field(root, "inference");
    attack = field(root, "attack");
    ck_assert_str_eq(json_object_get_string(field(attack, "name")), "pgd-linf");
    ck_assert_str_eq(json_object_get_string(field(attack, "per")), "step");
    ck_assert_int_eq(json_object_get_int64(field(attack, "backwards_per_run")), 2); /* one per step */
    ck_assert_int_ge(json_object_get_int64(field(attack, "forwards_per_run")), 2);
    /* images/s is the batch over the time; GFLOP is GFLOP/s x time */
    ck_assert(number(train, "ms") > 0 && number(infer, "ms") > 0 && number(attack, "ms") > 0);
    ck_assert_double_eq_tol(number(train, "images_per_second") * number(train, "ms"), 4000.0, 1e-6);
    ck_assert_double_eq_tol(number(infer, "images_per_second") * number(infer, "ms"), 4000.0, 1e-6);
    ck_assert(number(train, "forward_ms") > 0 && number(train, "backward_ms") > 0 && number(train, "sgd_ms") > 0);
    train_gflop = number(train, "gflop_per_second") * number(train, "ms");
    infer_gflop = number(infer, "gflop_per_second") * number(infer, "ms");
    attack_gflop = number(attack, "gflop_per_second") * number(attack, "ms");
    /* a training step: three passes of every layer but the stem's
     * backward-data (a small share of a ResNet-18 at 16x16); an attack step
     * two (forward and backward-data) */
    ck_assert_msg(train_gflop > 2.9 * infer_gflop && train_gflop < 3.0 * infer_gflop, "%g vs %g", train_gflop,
                  infer_gflop);
    ck_assert_double_eq_tol(attack_gflop / infer_gflop, 2.0, 1e-9);
    ck_assert(number(train, "arena_mib") > 0 && number(infer, "arena_mib") > 0 && number(attack, "arena_mib") > 0);
    json_object_put(root);

    /* text: one line per measurement; --only picks one */
    RUN(&r, NULL, "bench", "--arch", "resnet18", "--stem", "cifar", "--width", "0.25", "--image-size", "16",
        "--batch-size", "2", "--repeats", "1", "--threads", "1");
    ck_assert_msg(r.code == 0, "%s", r.err);
    {
        static const char head[] = "resnet18 at 3x16x16, 1000 classes, batch 2, f32, winograd convolutions; 1 thread";
        ck_assert_msg(strncmp(r.out, head, strlen(head)) == 0, "%s", r.out);
    }
    ck_assert_ptr_nonnull(strstr(r.out, "\n  training step "));
    ck_assert_ptr_nonnull(strstr(r.out, "\n  inference "));
    ck_assert_int_eq(count_lines(r.out), 3);
    RUN(&r, NULL, "bench", "--arch", "resnet18", "--stem", "cifar", "--width", "0.25", "--image-size", "16",
        "--batch-size", "2", "--repeats", "1", "--threads", "1", "--only", "infer", "--json");
    ck_assert_msg(r.code == 0, "%s", r.err);
    root = json_tokener_parse(r.out);
    ck_assert(json_object_object_get_ex(root, "inference", NULL));
    ck_assert(!json_object_object_get_ex(root, "train", NULL));
    ck_assert(!json_object_object_get_ex(root, "attack", NULL));
    ck_assert_str_eq(json_object_get_string(field(root, "conv_algorithm")), "winograd");
    json_object_put(root);
    RUN(&r, NULL, "bench", "--arch", "resnet18", "--stem", "cifar", "--width", "0.25", "--image-size", "16",
        "--batch-size", "2", "--repeats", "1", "--threads", "1", "--only", "infer", "--json", "--conv-algorithm",
        "direct");
    ck_assert_msg(r.code == 0, "%s", r.err);
    root = json_tokener_parse(r.out);
    ck_assert_str_eq(json_object_get_string(field(root, "conv_algorithm")), "direct");
    json_object_put(root);

    /* bf16 mixed precision reaches the engine: its activations take half
     * the bytes, so the arena shrinks */
    {
        double arena[2];
        for (int p = 0; p < 2; p++) {
            RUN(&r, NULL, "bench", "--arch", "resnet18", "--stem", "cifar", "--width", "0.25", "--image-size", "16",
                "--batch-size", "8", "--repeats", "1", "--threads", "1", "--only", "train", "--precision",
                p ? "bf16" : "f32", "--json");
            ck_assert_msg(r.code == 0, "%s", r.err);
            root = json_tokener_parse(r.out);
            ck_assert_str_eq(json_object_get_string(field(root, "precision")), p ? "bf16" : "f32");
            /* what ran: bf16 has no Winograd */
            ck_assert_str_eq(json_object_get_string(field(root, "conv_algorithm")), p ? "direct" : "winograd");
            arena[p] = number(field(root, "train"), "arena_mib");
            json_object_put(root);
        }
        ck_assert_msg(arena[1] < 0.8 * arena[0], "arena bf16 %g MiB, f32 %g MiB", arena[1], arena[0]);
    }

    /* a whole-run attack is timed per run; --steps reaches its own steps */
    RUN(&r, NULL, "bench", "--arch", "resnet18", "--stem", "cifar", "--width", "0.25", "--image-size", "16",
        "--batch-size", "2", "--repeats", "1", "--threads", "1", "--only", "attack", "--attack", "apgd-ce",
        "--eps", "8/255", "--steps", "3", "--json");
    ck_assert_msg(r.code == 0, "%s", r.err);
    root = json_tokener_parse(r.out);
    attack = field(root, "attack");
    ck_assert_str_eq(json_object_get_string(field(attack, "per")), "run");
    ck_assert_int_ge(json_object_get_int64(field(attack, "backwards_per_run")), 3);
    ck_assert(!json_object_object_get_ex(attack, "gflop_per_second", NULL));
    json_object_put(root);
}
END_TEST

START_TEST(bench_refuses_bad_options)
{
    RUN(&r, NULL, "bench", "--arch", "resnet18", "--only", "attack");
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.err, "robusta bench: --only attack needs --attack NAME (robusta bench --help lists its options)\n");
    RUN(&r, NULL, "bench", "--arch", "resnet18", "--steps", "3");
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.err, "robusta bench: --steps needs --attack (robusta bench --help lists its options)\n");
    RUN(&r, NULL, "bench", "--arch", "resnet18", "extra");
    ck_assert_int_eq(r.code, 2);
    ck_assert_int_eq(count_lines(r.err), 1);
    RUN(&r, NULL, "bench", "--arch", "resnet18", "--batch-size", "0");
    ck_assert_int_eq(r.code, 2);
    ck_assert_int_eq(count_lines(r.err), 1);
    ck_assert_ptr_nonnull(strstr(r.err, "--batch-size"));
    RUN(&r, NULL, "bench", "--arch", "resnet81");
    ck_assert_int_eq(r.code, 2);
    ck_assert_int_eq(count_lines(r.err), 1);
    ck_assert_str_eq(r.err, "robusta bench: unknown architecture 'resnet81'; did you mean 'resnet'?\n");
    RUN(&r, NULL, "bench", "--arch", "resnet18", "--attack", "pgd-l3");
    ck_assert_int_eq(r.code, 2);
    ck_assert_int_eq(count_lines(r.err), 1);
    RUN(&r, NULL, "bench", "--image-size", "16");
    ck_assert_int_eq(r.code, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "--arch"));
}
END_TEST

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

START_TEST(plugins_that_crash_exit_or_hang_do_not_take_commands_down)
{
    char env[3 * PATH_MAX + 32];
    json_object *root, *refused;
    int seen = 0;
    /* The unsafe fixtures first, then the built plugins: a command using
     * pgd-l2 scans them all and must neither die, stop early nor hang. */
    snprintf(env, sizeof env, "RB_PLUGIN_PATH=%s:%s", test_env("RB_TEST_UNSAFE_FIXTURES"),
             test_env("RB_PLUGIN_PATH"));
    setenv("RB_PLUGIN_SCAN_TIMEOUT", "1", 1);
    RUN(&r, env, "plugins", "pgd-l2");
    ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.err);
    ck_assert_msg(strncmp(r.out, "attack  pgd-l2 ", 15) == 0, "%s", r.out);
    ck_assert_ptr_nonnull(strstr(r.out, "ctor_segv.so: its constructor crashed with SIGSEGV\n"));
    ck_assert_ptr_nonnull(strstr(r.out, "ctor_exit.so: it called exit(0) while loading\n"));
    ck_assert_ptr_nonnull(strstr(r.out, "ctor_hang.so: it did not finish loading within 1 s"));
    ck_assert_ptr_nonnull(strstr(r.out, "function_descriptor.so: its rb_plugin_descriptor symbol is a function"));
    RUN(&r, env, "-q", "plugins", "--json");
    ck_assert_int_eq(r.code, 0);
    root = json_tokener_parse(r.out);
    ck_assert_ptr_nonnull(root);
    refused = field(root, "refused");
    for (size_t i = 0; i < json_object_array_length(refused); i++) {
        const char *file = json_object_get_string(field(json_object_array_get_idx(refused, i), "path"));
        seen += strstr(file, "/ctor_") != NULL || strstr(file, "/function_descriptor.so") != NULL;
    }
    ck_assert_int_eq(seen, 4);
    ck_assert_int_eq(json_object_array_length(field(root, "refused")), 4);
    json_object_put(root);
    unsetenv("RB_PLUGIN_SCAN_TIMEOUT");
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
    tcase_add_test(tc, bench_times_training_inference_and_attacks);
    tcase_add_test(tc, bench_refuses_bad_options);
    tcase_add_test(tc, usage_errors_exit_2_with_one_line);
    tcase_add_test(tc, plugins_lists_the_built_plugins);
    tcase_add_test(tc, plugins_json_is_typed_and_complete);
    tcase_add_test(tc, refusals_are_listed_and_logged_one_line_each);
    tcase_add_test(tc, plugins_that_crash_exit_or_hang_do_not_take_commands_down);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
