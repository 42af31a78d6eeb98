/* Option namespaces of the robusta command (cli/options.c): a value reaches
 * the parameter its name documents. A command's attack schedule option
 * (--steps ...) that the chosen plugin declares is the plugin's, and the
 * command uses the plugin's value; any other name both declare stays the
 * command's, and --OPTION.NAME always names the plugin's parameter. --help
 * says which is which. The fixture own-steps (tests/plugins/attack/)
 * declares steps and batch-size and refuses, in begin, a run whose loop or
 * batch differs from them, so a run that succeeds shows where each value
 * went. */
#include "config.h"

#include <math.h>

#include <json-c/json.h>

#include <robusta/robusta.h>

#include "testutil.h"
#include "testmodels.h"
#include "testdata.h"

#define RUN(r, env, ...) run_robusta(r, env, (const char *const[]){__VA_ARGS__, NULL})
#define ATTACK(...)                                                                                               \
    RUN(&r, env, "attack", "--ckpt", m, "--input", xp, "--labels", yp, "--output", out, "--threads", "1",          \
        __VA_ARGS__)

#define N 12
#define S 8

static run_result r;
static char dir[256], m[PATH_MAX], xp[PATH_MAX], yp[PATH_MAX], out[PATH_MAX], env[PATH_MAX * 4];

static void setup(void)
{
    rb_registry *reg;
    rb_model *model;
    rb_rng rng;
    static float x[N * 3 * S * S];
    int64_t y[N], xshape[4] = {N, 3, S, S}, n = N;
    make_temp_dir(dir, sizeof dir);
    ck_assert_int_eq(rb_registry_create(&reg), RB_OK);
    ck_assert_int_eq(rb_registry_load_path(reg, test_env("RB_PLUGIN_PATH")), RB_OK);
    model = small_model(reg, S, 3);
    rb_rng_init(&rng, 4, 0, 0);
    for (int i = 0; i < N * 3 * S * S; i++)
        x[i] = rb_rng_uniform(&rng);
    for (int i = 0; i < N; i++)
        y[i] = i % 5;
    snprintf(m, sizeof m, "%s/m.rbt", dir);
    snprintf(xp, sizeof xp, "%s/x.npy", dir);
    snprintf(yp, sizeof yp, "%s/y.npy", dir);
    snprintf(out, sizeof out, "%s/adv.npy", dir);
    ck_assert_int_eq(rb_model_save(model, m), RB_OK);
    ck_assert_int_eq(rb_npy_save(xp, RB_DTYPE_F32, 4, xshape, x), RB_OK);
    ck_assert_int_eq(rb_npy_save(yp, RB_DTYPE_I64, 1, &n, y), RB_OK);
    rb_model_destroy(model);
    rb_registry_destroy(reg);
    snprintf(env, sizeof env, "RB_PLUGIN_PATH=%s:%s", test_env("RB_PLUGIN_PATH"), test_env("RB_TEST_ATTACK_FIXTURES"));
}

static void teardown(void)
{
    remove_temp_dir(dir);
}

static void assert_ok(void)
{
    ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.err);
}

/* One line on stderr, exit `code`, equal to `want`. */
static void assert_refused(int code, const char *want)
{
    ck_assert_msg(r.code == code, "exit %d: %s", r.code, r.err);
    ck_assert_int_eq(count_lines(r.err), 1);
    ck_assert_str_eq(r.err, want);
}

START_TEST(a_plugin_that_declares_steps_takes_the_command_line_value)
{
    /* own-steps declares steps (default 4): the loop runs the plugin's value,
     * given or not, and the report says so */
    ATTACK("--attack", "own-steps");
    assert_ok();
    ck_assert_msg(strstr(r.out, "attack own-steps (eps 0.03137254901960784, steps 4, batch-size 0; 4 steps, 1 restart)") !=
                      NULL,
                  "%s", r.out);
    ATTACK("--attack", "own-steps", "--steps", "3");
    assert_ok();
    ck_assert_msg(strstr(r.out, "steps 3, batch-size 0; 3 steps,") != NULL, "%s", r.out);
    /* the plugin's range applies, not the command's [0, 1000000] */
    ATTACK("--attack", "own-steps", "--steps", "0");
    assert_refused(2, "robusta attack: --steps: 0 is outside [1, 1000] (robusta attack --help lists its options)\n");
    /* and the same through the explicit name */
    ATTACK("--attack", "own-steps", "--attack.steps", "2");
    assert_ok();
    ck_assert_msg(strstr(r.out, "steps 2, batch-size 0; 2 steps,") != NULL, "%s", r.out);

    /* apgd-ce, a whole-run attack with its own steps and random-start */
    ATTACK("--attack", "apgd-ce", "--steps", "0");
    assert_refused(2, "robusta attack: --steps: 0 is outside [1, 100000] (robusta attack --help lists its options)\n");
    ATTACK("--attack", "apgd-ce", "--steps", "2", "--no-random-start");
    assert_ok();
    ck_assert_msg(strstr(r.out, "steps 2, rho 0.75, alpha 0.75, random-start false; 2 steps, 1 restart) ") != NULL,
                  "%s", r.out);

    /* square schedules itself by queries: --steps would be ignored, so it
     * is refused, in every command that attacks */
    ATTACK("--attack", "square", "--steps", "5");
    assert_refused(2, "robusta attack: attack plugin square schedules itself and takes no --steps; its own budget: "
                      "--queries\n");
    ATTACK("--attack", "square", "--queries", "3");
    assert_ok();

    /* a plugin that does not declare steps leaves --steps to the command */
    ATTACK("--attack", "pgd-linf", "--steps", "0");
    assert_ok();
    ck_assert_msg(strstr(r.out, "(eps 0.03137254901960784, step-size 0.00784313725490196; 0 steps, 1 restart)") != NULL,
                  "%s", r.out);
}
END_TEST

START_TEST(other_names_stay_the_commands_and_the_plugins_are_qualified)
{
    char want[512];
    /* --batch-size is the command's (not in the attack schedule): the run's
     * batches have 4 rows; own-steps' batch-size stays 0 (any) */
    ATTACK("--attack", "own-steps", "--batch-size", "4");
    assert_ok();
    ck_assert_msg(strstr(r.out, "batch-size 0;") != NULL, "%s", r.out);
    /* --attack.batch-size is the plugin's: 5 is not the command's 4 */
    ATTACK("--attack", "own-steps", "--batch-size", "4", "--attack.batch-size", "5");
    ck_assert_int_eq(r.code, 1);
    snprintf(want, sizeof want,
             "robusta attack: attack plugin %s/own_steps.so (own-steps): begin: the run's batches have 4 rows, but my "
             "batch-size is 5\n",
             test_env("RB_TEST_ATTACK_FIXTURES"));
    ck_assert_str_eq(r.err, want);
    ATTACK("--attack", "own-steps", "--batch-size=4", "--attack.batch-size=4");
    assert_ok();
    ck_assert_msg(strstr(r.out, "batch-size 4;") != NULL, "%s", r.out);
    /* qualified flags and the --no- form */
    ATTACK("--attack", "apgd-ce", "--attack.steps", "1", "--attack.no-random-start");
    assert_ok();
    ck_assert_msg(strstr(r.out, "random-start false;") != NULL, "%s", r.out);

    /* bad qualified names: one line each */
    ATTACK("--attack", "apgd-ce", "--attack.epss", "0.1");
    assert_refused(2, "robusta attack: attack plugin apgd-ce: unknown option --epss; did you mean --eps? (robusta attack "
                      "--help lists its options)\n");
    ATTACK("--attack", "apgd-ce", "--arch.width", "0.5");
    assert_refused(2, "robusta attack: --arch.width names a parameter of a --arch plugin, but none was chosen (robusta "
                      "attack --help lists its options)\n");
    ATTACK("--attack", "apgd-ce", "--attack.steps");
    assert_refused(2, "robusta attack: attack plugin apgd-ce: --steps needs a value (iterations (the model is evaluated "
                      "steps + 1 times)) (robusta attack --help lists its options)\n");
    /* after a lone --, nothing is an option */
    ATTACK("--attack", "apgd-ce", "--", "--attack.steps");
    assert_refused(1, "robusta attack: attack takes no positional arguments (got '--attack.steps')\n");
}
END_TEST

START_TEST(eval_train_and_bench_resolve_the_same_way)
{
    json_object *root, *o;
    char data[PATH_MAX * 2], run[PATH_MAX];
    write_bar_images(dir, "bx.npy", "by.npy", 16, 4, 0, 1);
    write_bar_images(dir, "tx.npy", "ty.npy", 8, 4, 0, 2);
    snprintf(data, sizeof data, "npy:%s/bx.npy,%s/by.npy;%s/tx.npy,%s/ty.npy", dir, dir, dir, dir);

    /* eval: the JSON reports the loop's steps, apgd-ce's own */
    RUN(&r, env, "eval", "--ckpt", m, "--data", data, "--json", "--threads", "1", "--attack", "apgd-ce", "--steps", "2");
    assert_ok();
    root = json_tokener_parse(r.out);
    ck_assert_ptr_nonnull(root);
    ck_assert(json_object_object_get_ex(root, "steps", &o));
    ck_assert_int_eq(json_object_get_int(o), 2);
    ck_assert(json_object_object_get_ex(root, "attack_params", &o));
    ck_assert(json_object_object_get_ex(o, "steps", &o));
    ck_assert_str_eq(json_object_get_string(o), "2");
    json_object_put(root);
    /* eval's --seed is in the schedule too; own-steps does not declare it */
    RUN(&r, env, "eval", "--ckpt", m, "--data", data, "--threads", "1", "--attack", "own-steps", "--steps", "1",
        "--batch-size", "8", "--attack.batch-size", "8", "--seed", "3");
    assert_ok();

    /* square takes queries, not steps, in eval and train too */
    RUN(&r, env, "eval", "--ckpt", m, "--data", data, "--threads", "1", "--attack", "square", "--steps", "2");
    assert_refused(2, "robusta eval: attack plugin square schedules itself and takes no --steps; its own budget: "
                      "--queries\n");
    snprintf(run, sizeof run, "%s/refused", dir);
    RUN(&r, env, "-q", "train", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--data", data, "--out",
        run, "--epochs", "1", "--threads", "1", "--attack", "square", "--steps", "2");
    assert_refused(2, "robusta train: attack plugin square schedules itself and takes no --steps; its own budget: "
                      "--queries\n");
    ck_assert_int_ne(access(run, F_OK), 0); /* nothing written */

    /* train: the attack's steps are own-steps' (begin checks it at every
     * batch), --batch-size is training's */
    snprintf(run, sizeof run, "%s/run", dir);
    RUN(&r, env, "-q", "train", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--data", data, "--out",
        run, "--epochs", "1", "--batch-size", "8", "--threads", "1", "--attack", "own-steps", "--steps", "2");
    assert_ok();

    /* bench: --steps reaches apgd-ce's own steps (a run evaluates steps + 1 times) */
    RUN(&r, env, "bench", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--image-size", "8",
        "--batch-size", "2", "--repeats", "1", "--threads", "1", "--only", "attack", "--attack", "apgd-ce", "--steps",
        "3", "--json");
    assert_ok();
    root = json_tokener_parse(r.out);
    ck_assert(json_object_object_get_ex(root, "attack", &o));
    ck_assert(json_object_object_get_ex(o, "backwards_per_run", &o));
    ck_assert_int_eq(json_object_get_int(o), 4);
    json_object_put(root);
}
END_TEST

/* eval --autoattack: the stages in order, each leaving no more robust than
 * the last, the counts adding up; a fixed subset by --n-examples or
 * --indices; and one line for each bad combination. */
START_TEST(eval_runs_autoattack_stage_by_stage)
{
    static const char *const names[4] = {"apgd-ce", "apgd-t", "fab-t", "square"};
    json_object *root, *o, *stages;
    char data[PATH_MAX * 2], idx[PATH_MAX];
    int64_t list[2] = {5, 1}, two = 2, bad[1] = {8}, one = 1, correct, left;
    double last = 2;
    write_bar_images(dir, "bx.npy", "by.npy", 16, 4, 0, 1);
    write_bar_images(dir, "tx.npy", "ty.npy", 8, 4, 0, 2);
    snprintf(data, sizeof data, "npy:%s/bx.npy,%s/by.npy;%s/tx.npy,%s/ty.npy", dir, dir, dir, dir);
    RUN(&r, env, "eval", "--ckpt", m, "--data", data, "--json", "--threads", "1", "--autoattack", "standard", "--eps",
        "8/255", "--n-examples", "6");
    assert_ok();
    root = json_tokener_parse(r.out);
    ck_assert_ptr_nonnull(root);
    ck_assert(json_object_object_get_ex(root, "count", &o));
    ck_assert_int_eq(json_object_get_int64(o), 6);
    ck_assert(json_object_object_get_ex(root, "correct", &o));
    left = correct = json_object_get_int64(o);
    ck_assert(json_object_object_get_ex(root, "clean_acc", &o));
    ck_assert(fabs(json_object_get_double(o) - (double)correct / 6) < 1e-12);
    ck_assert(json_object_object_get_ex(root, "stages", &stages));
    ck_assert_int_eq(json_object_array_length(stages), 4);
    for (size_t k = 0; k < 4; k++) {
        json_object *e = json_object_array_get_idx(stages, k), *v;
        double acc;
        ck_assert(json_object_object_get_ex(e, "attack", &v));
        ck_assert_str_eq(json_object_get_string(v), names[k]);
        ck_assert(json_object_object_get_ex(e, "fooled", &v));
        left -= json_object_get_int64(v);
        ck_assert(json_object_object_get_ex(e, "robust_acc", &v));
        acc = json_object_get_double(v);
        ck_assert(fabs(acc - (double)left / 6) < 1e-12);
        ck_assert(acc <= last);
        last = acc;
    }
    ck_assert(json_object_object_get_ex(root, "robust_acc", &o));
    ck_assert(fabs(json_object_get_double(o) - last) < 1e-12);
    ck_assert(json_object_object_get_ex(root, "robust_correct", &o));
    ck_assert_int_eq(json_object_get_int64(o), left);
    json_object_put(root);
    /* the same as text, and --indices: examples 1 and 5 */
    snprintf(idx, sizeof idx, "%s/idx.npy", dir);
    ck_assert_int_eq(rb_npy_save(idx, RB_DTYPE_I64, 1, &two, list), RB_OK);
    RUN(&r, env, "eval", "--ckpt", m, "--data", data, "--threads", "1", "--autoattack", "rand", "--norm", "l2", "--eps",
        "0.5", "--indices", idx);
    assert_ok();
    ck_assert_msg(strstr(r.out, "AutoAttack rand, l2, eps 0.5, stage by stage") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "  after apgd-dlr ") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "/2)") != NULL, "%s", r.out);
    /* --attack reports under the same keys */
    RUN(&r, env, "eval", "--ckpt", m, "--data", data, "--json", "--threads", "1", "--attack", "pgd-linf", "--steps",
        "2");
    assert_ok();
    root = json_tokener_parse(r.out);
    ck_assert(json_object_object_get_ex(root, "clean_acc", &o) && json_object_object_get_ex(root, "robust_acc", &o));
    json_object_put(root);

    RUN(&r, env, "eval", "--ckpt", m, "--data", data, "--autoattack", "standard");
    assert_refused(2, "robusta eval: --autoattack needs --eps, its radius (8/255 is the usual Linf one, 0.5 L2's) "
                      "(robusta eval --help lists its options)\n");
    RUN(&r, env, "eval", "--ckpt", m, "--data", data, "--autoattack", "standard", "--eps", "0.1", "--attack",
        "pgd-linf");
    assert_refused(2, "robusta eval: --autoattack runs AutoAttack's own attacks; drop --attack pgd-linf (robusta eval "
                      "--help lists its options)\n");
    RUN(&r, env, "eval", "--ckpt", m, "--data", data, "--autoattack", "pluss", "--eps", "0.1");
    assert_refused(2, "robusta eval: AutoAttack: unknown version 'pluss' (did you mean plus?); use standard, plus or "
                      "rand\n");
    RUN(&r, env, "eval", "--ckpt", m, "--data", data, "--autoattack", "standard", "--eps", "0.1", "--steps", "3");
    assert_refused(2, "robusta eval: --steps is --attack's schedule; AutoAttack's stages have their own (robusta "
                      "eval --help lists its options)\n");
    RUN(&r, env, "eval", "--ckpt", m, "--data", data, "--eps", "0.1");
    assert_refused(2, "robusta eval: --eps needs --autoattack (or an --attack plugin that takes it) (robusta eval "
                      "--help lists its options)\n");
    RUN(&r, env, "eval", "--ckpt", m, "--data", data, "--attack", "pgd-linf", "--norm", "l2");
    assert_refused(2, "robusta eval: --norm is AutoAttack's here: attack plugin pgd-linf takes no such option "
                      "(robusta eval --help lists its options)\n");
    RUN(&r, env, "eval", "--ckpt", m, "--data", data, "--n-examples", "9");
    ck_assert_int_eq(r.code, 2);
    ck_assert_int_eq(count_lines(r.err), 1);
    ck_assert_msg(strstr(r.err, "robusta eval: --n-examples 9: ") != NULL && strstr(r.err, " has 8 examples\n"),
                  "%s", r.err);
    ck_assert_int_eq(rb_npy_save(idx, RB_DTYPE_I64, 1, &one, bad), RB_OK);
    RUN(&r, env, "eval", "--ckpt", m, "--data", data, "--indices", idx);
    ck_assert_int_ne(r.code, 0);
    ck_assert_int_eq(count_lines(r.err), 1);
    ck_assert_msg(strstr(r.err, "index 8 (entry 1 of the list) is outside [0, 8)") != NULL, "%s", r.err);

    /* a model trained against pgd-l2 at 0.5, evaluated in Linf: allowed, and said */
    snprintf(idx, sizeof idx, "%s/l2run", dir);
    RUN(&r, env, "-q", "train", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--data", data, "--out",
        idx, "--epochs", "1", "--batch-size", "8", "--threads", "1", "--attack", "pgd-l2", "--eps", "0.5",
        "--step-size", "0.25", "--steps", "1");
    assert_ok();
    snprintf(idx + strlen(idx), sizeof idx - strlen(idx), "/model.rbt");
    RUN(&r, env, "eval", "--ckpt", idx, "--data", data, "--threads", "1", "--autoattack", "rand", "--eps", "8/255",
        "--n-examples", "2");
    assert_ok();
    ck_assert_msg(strstr(r.err, "robusta eval: warning: the model was trained against pgd-l2 at l2 eps 0.5; "
                                "AutoAttack runs linf eps 0.0313725, another threat model\n") != NULL,
                  "%s", r.err);
}
END_TEST

START_TEST(help_says_which_options_belong_to_the_plugin)
{
    RUN(&r, env, "attack", "--attack", "apgd-ce", "--help");
    assert_ok();
    ck_assert_msg(strstr(r.out, "(default 10) [0, 1000000] [taken over by apgd-ce: its own --steps below]\n") != NULL,
                  "%s", r.out);
    ck_assert_msg(strstr(r.out, "\noptions of attack plugin apgd-ce (--attack; each also as --attack.NAME):\n") != NULL,
                  "%s", r.out);
    ck_assert_msg(strstr(r.out, "[1, 100000] [takes over robusta attack's --steps]\n") != NULL, "%s", r.out);
    RUN(&r, env, "attack", "--attack", "own-steps", "--help");
    ck_assert_msg(strstr(r.out, "  --attack.batch-size int  the rows a run's batches must have; 0: any (default 0) "
                                "[0, 65536] [--batch-size is robusta attack's own]\n") != NULL,
                  "%s", r.out);
    /* no plugin named: what a plugin may take over, and which installed ones do */
    RUN(&r, env, "attack", "--help");
    ck_assert_msg(strstr(r.out, "  --steps, --random-start, --restarts, --keep-best, --targeted, --seed\n"
                                "Installed plugins that take some over:\n") != NULL,
                  "%s", r.out);
    ck_assert_msg(strstr(r.out, "\n  apgd-ce: --steps, --random-start\n") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "\n  own-steps: --steps\n") != NULL, "%s", r.out);
    RUN(&r, env, "train", "--help");
    ck_assert_msg(strstr(r.out, "\n  --steps, --restarts, --random-start, --keep-best\n") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "--arch.PARAM always sets the plugin's PARAM") != NULL, "%s", r.out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli namespaces");
    TCase *t = tcase_create("namespaces");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 300);
    tcase_add_test(t, a_plugin_that_declares_steps_takes_the_command_line_value);
    tcase_add_test(t, other_names_stay_the_commands_and_the_plugins_are_qualified);
    tcase_add_test(t, eval_train_and_bench_resolve_the_same_way);
    tcase_add_test(t, help_says_which_options_belong_to_the_plugin);
    tcase_add_test(t, eval_runs_autoattack_stage_by_stage);
    suite_add_tcase(s, t);
    return run_suite(s);
}
