/* The train and eval commands: options in, robusta/train.h does the work. */
#include "config.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include <robusta/grid.h>
#include <robusta/train.h>

#include "cli/cli.h"
#include "sys/json.h"

static int usage(const char *command, const char *fmt, ...) RB_PRINTF(2, 3);

static int usage(const char *command, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "robusta %s: ", command);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (robusta %s --help lists its options)\n", command);
    return RB_EXIT_USAGE;
}

/* ------------------------------------------------------------ train */

static const rb_param_spec train_options[] = {
    {"arch", RB_PARAM_STRING, NULL, NULL, 0,
     "architecture: a plugin (resnet) or preset (resnet18); its own options may follow"},
    {"data", RB_PARAM_STRING, NULL, NULL, 0, "dataset spec (fashion-mnist:DIR, cifar10:DIR, npy:X,Y;TX,TY ...)"},
    {"out", RB_PARAM_STRING, NULL, NULL, 0, "run folder: checkpoints, logs and config.json"},
    {"resume", RB_PARAM_STRING, NULL, NULL, 0,
     "continue the run in this folder (only --epochs, --threads and --strict-resume may be given)"},
    {"epochs", RB_PARAM_INT, "10", "[1, 16777215]", 0, "training epochs (in all, when resuming)"},
    {"batch-size", RB_PARAM_INT, "128", "[1, 65536]", 0, "training batch (the last partial batch is dropped)"},
    {"eval-batch-size", RB_PARAM_INT, "256", "[1, 65536]", 0, "evaluation batch"},
    {"lr", RB_PARAM_FLOAT, "0.1", NULL, 0, "base learning rate"},
    {"momentum", RB_PARAM_FLOAT, "0.9", NULL, 0, "SGD momentum (0: none)"},
    {"weight-decay", RB_PARAM_FLOAT, "0.0005", NULL, 0, "L2 weight decay"},
    {"nesterov", RB_PARAM_BOOL, "false", NULL, 0, "Nesterov momentum"},
    {"sync-bn", RB_PARAM_BOOL, "false", NULL, 0,
     "under mpirun: batch-norm statistics over the whole batch, not each rank's share"},
    {"bucket-mib", RB_PARAM_FLOAT, "4", "[0.0625, 1024]", 0,
     "under mpirun: gradient bucket size of the all-reduce, in MiB (the first and last about 1/16 of it)"},
    {"schedule", RB_PARAM_STRING, "cosine", NULL, 0,
     "constant, step:N:G, multistep:A,B:G or cosine, optionally +warmup:W"},
    {"seed", RB_PARAM_INT, "0", "[0, 9223372036854775807]", 0, "weights, order, augmentation, per-class choice"},
    {"threads", RB_PARAM_INT, "0", "[0, 4096]", 0, "compute threads (0: every core of this NUMA node)"},
    CLI_ARITHMETIC_OPTIONS,
    CLI_TUNE_OPTION,
    CLI_STRICT_RESUME_OPTION,
    {"loader-threads", RB_PARAM_INT, "1", "[0, 256]", 0, "batch-making threads (0: on the training thread)"},
    {"classes", RB_PARAM_STRING, NULL, NULL, 0, "classes to keep, relabelled 0..k-1 (\"0-4\", \"3,5\")"},
    {"per-class", RB_PARAM_INT, "0", "[0, 9223372036854775807]", 0, "training examples per class (0: all)"},
    {"image-size", RB_PARAM_INT, "0", "[0, 65536]", 0, "resize images to SxS (0: as stored)"},
    CLI_IMAGE_SET_OPTIONS,
    {"channels", RB_PARAM_INT, "0", "[0, 3]", 0, "3: replicate grayscale to RGB (0: the data's own)"},
    {"force", RB_PARAM_BOOL, "false", NULL, 0, "start over in an --out that already holds a run"},
    {"augment", RB_PARAM_BOOL, "true", NULL, 0, "the dataset's usual augmentation (--no-augment: none)"},
    {"attack", RB_PARAM_STRING, NULL, NULL, 0,
     "adversarial training with this attack plugin (pgd-linf, pgd-l2 ...); its parameters (eps ...) follow"},
    {"steps", RB_PARAM_INT, "10", "[0, 1000000]", 0, "attack iterations per restart"},
    {"restarts", RB_PARAM_INT, "1", "[1, 65536]", 0, "attack restarts"},
    {"random-start", RB_PARAM_BOOL, "false", NULL, 0, "attack from a random point of the ball"},
    {"keep-best", RB_PARAM_BOOL, "false", NULL, 0, "keep each example's highest-loss iterate"},
    {"eps-warmup", RB_PARAM_FLOAT, "0", NULL, 0, "ramp the attack's eps linearly from 0 over this many epochs"},
    {"eval-every", RB_PARAM_INT, "1", "[1, 16777215]", 0,
     "test (and robust test) accuracy every this many epochs and at the last"},
    {NULL}};

/* The attack options an attack plugin takes over (--seed is training's). */
static const char *const train_attack_shared[] = {RB_PARAM_STEPS, "restarts", "random-start", "keep-best", NULL};
static const cli_plugin_option arch_option[] = {
    {"arch", RB_PLUGIN_ARCH, NULL}, {"attack", RB_PLUGIN_ATTACK, train_attack_shared}, {NULL, 0, NULL}};

/* The first SIGINT, SIGTERM or SIGHUP asks the run to stop at the next
 * batch; a second one (any of the three) stops the process at once, as the
 * signal's default would. One handler for every command that trains. */
static void on_stop_signal(int sig)
{
    static volatile sig_atomic_t seen;
    if (seen) {
        signal(sig, SIG_DFL);
        raise(sig); /* delivered when this handler returns */
        return;
    }
    seen = 1;
    rb_train_request_stop(sig);
}

void cli_catch_stop_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&sa.sa_mask, sigs[i]); /* one handler at a time */
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old;
        /* an ignored signal stays ignored (nohup, background jobs) */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue;
        sigaction(sigs[i], &sa, NULL);
    }
}

int cli_stop_exit_code(void)
{
    int sig = rb_train_stop_signal();
    return 128 + (sig > 0 ? sig : SIGINT);
}

int cli_finish_train(const cli_command *self, rb_status s, const rb_train_result *res, const char *dir)
{
    if (s == RB_ERR_INTERRUPTED) {
        fprintf(stderr, "robusta %s: %s\n", self->name, rb_last_error());
        return cli_stop_exit_code();
    }
    if (s != RB_OK)
        return cli_fail(self->name, s);
    const char *metric = res->metric[0] != '\0' ? rb_grid_metric_label(res->metric) : "accuracy";
    if (!isnan(res->robust_test_acc))
        printf("trained %lld epochs adversarially into %s: test accuracy %.2f%%, robust test accuracy %.2f%%, "
               "best robust %.2f%% at epoch %lld, %.2fs per epoch\n",
               (long long)res->epochs_done, dir, 100 * res->test_acc, 100 * res->robust_test_acc,
               100 * res->best_test_acc, (long long)res->best_epoch, res->seconds_per_epoch);
    else if (res->best_epoch > 0)
        printf("trained %lld epochs into %s: test %s %.2f%% (loss %.4f), best %.2f%% at epoch %lld, "
               "%.2fs per epoch\n",
               (long long)res->epochs_done, dir, metric, 100 * res->test_acc, res->test_loss,
               100 * res->best_test_acc, (long long)res->best_epoch, res->seconds_per_epoch);
    else
        printf("trained %lld epochs into %s: train %s %.2f%% (loss %.4f), %.2fs per epoch\n",
               (long long)res->epochs_done, dir, metric, 100 * res->train_acc, res->train_loss,
               res->seconds_per_epoch);
    return RB_EXIT_OK;
}

static int run_train(const cli_command *self, rb_params *o, int argc, char **args)
{
    const char *resume = cli_opt_string(o, "resume");
    rb_train_result res;
    rb_train_config c;
    rb_status s;

    if (argc > 0)
        return usage(self->name, "train takes no positional arguments (got '%s')", args[0]);
    rb_train_clear_stop();

    if (resume != NULL) {
        const rb_param_spec *specs = rb_params_specs(o);
        rb_registry *reg;
        for (size_t i = 0; specs[i].name != NULL; i++)
            if (strcmp(specs[i].name, "resume") != 0 && strcmp(specs[i].name, "epochs") != 0 &&
                strcmp(specs[i].name, "threads") != 0 && strcmp(specs[i].name, "strict-resume") != 0 &&
                rb_params_source(o, specs[i].name) == RB_PARAM_GIVEN)
                return usage(self->name, "--%s cannot be given with --resume (the run's config.json holds it)",
                             specs[i].name);
        if ((reg = cli_registry()) == NULL)
            return cli_fail(self->name, rb_last_status());
        cli_catch_stop_signals();
        s = rb_train_resume(reg, resume,
                            rb_params_source(o, "epochs") == RB_PARAM_GIVEN ? cli_opt_int(o, "epochs") : 0,
                            rb_params_source(o, "threads") == RB_PARAM_GIVEN ? (int)cli_opt_int(o, "threads") : -1,
                            cli_opt_bool(o, "strict-resume"), rb_log_get_level() < RB_LOG_INFO, &res);
        return cli_finish_train(self, s, &res, resume);
    }
    if (cli_opt_string(o, "arch") == NULL)
        return usage(self->name, "%s is required (or --resume DIR)", "--arch");
    if (cli_opt_string(o, "data") == NULL)
        return usage(self->name, "%s is required (or --resume DIR)", "--data");
    if (cli_opt_string(o, "out") == NULL)
        return usage(self->name, "%s is required: the run folder to write (or --resume DIR)", "--out");
    c = rb_train_config_default();
    c.arch_name = cli_opt_string(o, "arch");
    c.arch = cli_plugin("arch");
    c.arch_params = cli_plugin_params("arch");
    c.data = cli_opt_string(o, "data");
    c.out_dir = cli_opt_string(o, "out");
    c.training.epochs = cli_opt_int(o, "epochs");
    c.training.batch_size = cli_opt_int(o, "batch-size");
    c.training.eval_batch_size = cli_opt_int(o, "eval-batch-size");
    c.training.lr = cli_opt_float(o, "lr");
    c.training.momentum = cli_opt_float(o, "momentum");
    c.training.weight_decay = cli_opt_float(o, "weight-decay");
    c.training.nesterov = cli_opt_bool(o, "nesterov");
    c.training.sync_bn = cli_opt_bool(o, "sync-bn");
    c.training.bucket_mib = cli_opt_float(o, "bucket-mib");
    c.training.schedule = cli_opt_string(o, "schedule");
    c.seed = (uint64_t)cli_opt_int(o, "seed");
    c.threads = (int)cli_opt_int(o, "threads");
    c.precision = cli_precision(o);
    c.conv_algorithm = cli_conv_algorithm(o);
    c.tune = cli_tune(o);
    c.loader_threads = (int)cli_opt_int(o, "loader-threads");
    c.classes = cli_opt_string(o, "classes");
    c.per_class = cli_opt_int(o, "per-class");
    c.image_size = (int)cli_opt_int(o, "image-size");
    c.channels = (int)cli_opt_int(o, "channels");
    c.augment = cli_opt_bool(o, "augment");
    {
        rb_split_options so = {0};
        if ((s = cli_image_set_options(o, &so)) != RB_OK)
            return usage(self->name, "%s", rb_last_error());
        c.transform = so.transform;
        c.cache_dir = so.cache_dir;
    }
    c.force = cli_opt_bool(o, "force");
    c.quiet = rb_log_get_level() < RB_LOG_INFO;
    if (cli_opt_string(o, "attack") != NULL) {
        c.adversarial.attack_name = cli_opt_string(o, "attack");
        c.adversarial.attack = cli_plugin("attack");
        c.adversarial.attack_params = cli_plugin_params("attack");
        c.adversarial.attack_options = rb_attack_options_default();
        /* the plugin's where it took them over */
        if (cli_attack_options(o, &c.adversarial.attack_options) != RB_OK) {
            fprintf(stderr, "robusta %s: %s\n", self->name, rb_last_error());
            return RB_EXIT_USAGE;
        }
        c.adversarial.attack_options.seed = c.seed;
        if (c.adversarial.attack == NULL)
            return cli_fail(self->name, rb_error_set(RB_ERR_INTERNAL, "--attack was given but no plugin was chosen"));
    } else {
        static const char *const attack_only[] = {"steps", "restarts", "random-start", "keep-best", "eps-warmup"};
        for (size_t i = 0; i < sizeof attack_only / sizeof attack_only[0]; i++)
            if (rb_params_source(o, attack_only[i]) == RB_PARAM_GIVEN)
                return usage(self->name, "--%s needs --attack", attack_only[i]);
    }
    c.adversarial.eps_warmup = cli_opt_float(o, "eps-warmup");
    c.training.eval_every = cli_opt_int(o, "eval-every");
    if (c.arch == NULL || c.arch_params == NULL)
        return cli_fail(self->name, rb_error_set(RB_ERR_INTERNAL, "--arch was given but no plugin was chosen"));
    if ((s = rb_train_config_check(&c)) != RB_OK) {
        fprintf(stderr, "robusta %s: %s\n", self->name, rb_last_error());
        return RB_EXIT_USAGE;
    }
    cli_catch_stop_signals();
    s = rb_train(&c, &res);
    return cli_finish_train(self, s, &res, c.out_dir);
}

const cli_command cli_train_command = {
    .name = "train",
    .summary = "train a model on a dataset (standard training, SGD)",
    .usage = "--arch NAME --data SPEC --out DIR [arch options] [options] | --resume DIR [--epochs E]",
    .description =
        "Trains an architecture plugin's model on a dataset with SGD (torch semantics) and a\n"
        "learning-rate schedule, evaluating on the test split after every epoch. DIR receives\n"
        "config.json (every option), last.rbt (model and training state after each epoch),\n"
        "best.rbt (best test accuracy), model.rbt (final), log.csv and log.jsonl (per epoch:\n"
        "epoch, lr, train_loss, train_acc, test_loss, test_acc, seconds, images_per_second).\n"
        "The model takes the data's channels and size; its normalization is the per-channel\n"
        "mean and std of the training pixels; num-classes defaults to the data's classes.\n"
        "Ctrl-C, SIGTERM or SIGHUP stops at the next batch (exit status 128 + the signal:\n"
        "130, 143, 129; a second signal stops at once) and --resume DIR continues from the\n"
        "last completed epoch, bit-identical to an uninterrupted run with the same --threads.\n"
        "One process at a time writes DIR (a second one is refused, naming the first's PID).\n"
        "A NaN or Inf loss or gradient stops the run naming the step and the parameter.\n"
        "--attack NAME [its options] trains adversarially (Madry et al.): each batch is attacked\n"
        "(--steps, --restarts, --random-start, --keep-best; seeded by --seed) with the model in\n"
        "inference mode and the SGD step taken on the attacked batch. --eps-warmup E ramps eps\n"
        "from 0 over E epochs. The logs add adv_train_acc and robust_test_acc; best.rbt is\n"
        "then the best robust test accuracy. --eval-every N evaluates (and attacks) the test\n"
        "split every N epochs and after the last only.",
    .options = train_options,
    .plugin_options = arch_option,
    .run = run_train,
    .data_parallel = true,
};

/* ------------------------------------------------------------ eval */

static const rb_param_spec eval_options[] = {
    {"ckpt", RB_PARAM_STRING, NULL, NULL, RB_PARAM_REQUIRED, "the .rbt model"},
    {"data", RB_PARAM_STRING, NULL, NULL, RB_PARAM_REQUIRED, "dataset spec"},
    {"split", RB_PARAM_CHOICE, "test", "test|train", 0, "which split to evaluate"},
    {"classes", RB_PARAM_STRING, NULL, NULL, 0,
     "classes to keep, relabelled 0..k-1 (default: the classes the checkpoint was trained on)"},
    CLI_IMAGE_SET_OPTIONS,
    {"batch-size", RB_PARAM_INT, "256", "[1, 65536]", 0, "images per engine step"},
    {"threads", RB_PARAM_INT, "0", "[0, 4096]", 0, "compute threads (0: every core of this NUMA node)"},
    CLI_ARITHMETIC_OPTIONS,
    {"json", RB_PARAM_BOOL, "false", NULL, 0, "print JSON"},
    {"attack", RB_PARAM_STRING, NULL, NULL, 0,
     "robust accuracy under this attack plugin (pgd-linf, pgd-l2 ...); its parameters (eps ...) follow"},
    {"steps", RB_PARAM_INT, "10", "[0, 1000000]", 0, "attack iterations per restart"},
    {"restarts", RB_PARAM_INT, "1", "[1, 65536]", 0, "attack restarts"},
    {"random-start", RB_PARAM_BOOL, "false", NULL, 0, "attack from a random point of the ball"},
    {"keep-best", RB_PARAM_BOOL, "false", NULL, 0, "keep each example's highest-loss iterate"},
    {"seed", RB_PARAM_INT, "0", "[0, 9223372036854775807]", 0, "seed of the attack's random starts"},
    {"autoattack", RB_PARAM_STRING, NULL, NULL, 0,
     "robust accuracy under AutoAttack's ensemble: standard or rand (needs --eps; --norm)"},
    {"norm", RB_PARAM_CHOICE, "linf", "linf|l2", 0, "AutoAttack's threat model"},
    {RB_PARAM_EPS, RB_PARAM_FLOAT, "8/255", "[0, inf)", 0,
     "AutoAttack's radius in [0,1] pixel units (given with --autoattack)"},
    {"n-examples", RB_PARAM_INT, "0", "[0, 9223372036854775807]", 0,
     "evaluate the first N examples of the split only (0: all)"},
    {"indices", RB_PARAM_STRING, NULL, NULL, 0,
     "evaluate these examples only: an integer .npy of indices into the split (after --classes)"},
    {NULL}};

/* What an --attack plugin may take over from eval: the schedule, and the
 * threat model AutoAttack's options name. */
static const char *const eval_attack_shared[] = {RB_PARAM_STEPS, "random-start", "restarts", "keep-best", "targeted",
                                                 "seed", RB_PARAM_EPS, "norm", NULL};
static const cli_plugin_option eval_plugin_option[] = {{"attack", RB_PLUGIN_ATTACK, eval_attack_shared},
                                                       {NULL, 0, NULL}};

/* [{"label", "name", "count", "correct", "accuracy"}] per class (accuracy
 * null for a class with no examples). */
static json_object *per_class_json(const rb_split *split, int64_t classes, const int64_t *count,
                                   const int64_t *correct)
{
    json_object *list = json_object_new_array();
    for (int64_t k = 0; k < classes; k++) {
        json_object *e = json_object_new_object();
        const char *name = rb_split_class_name(split, k);
        json_object_object_add(e, "label", json_object_new_int64(k));
        json_object_object_add(e, "name", name ? json_object_new_string(name) : NULL);
        json_object_object_add(e, "count", json_object_new_int64(count[k]));
        json_object_object_add(e, "correct", json_object_new_int64(correct[k]));
        json_object_object_add(e, "accuracy",
                               count[k] ? rb_json_number((double)correct[k] / (double)count[k]) : NULL);
        json_object_array_add(list, e);
    }
    return list;
}

/* The metrics a task reported, as {"name": value}. */
static json_object *metrics_json(const rb_eval_metric *m, size_t n)
{
    json_object *o = json_object_new_object();
    for (size_t i = 0; i < n; i++)
        json_object_object_add(o, m[i].name, rb_json_number(m[i].value));
    return o;
}

void cli_print_eval(const cli_eval_report *r, bool json)
{
    const rb_eval_result *ev = r->result;
    const rb_split *split = r->split;
    /* classification reports right answers per class; other tasks their own metrics */
    const bool classify = ev->score_name == NULL || strcmp(ev->score_name, "accuracy") == 0;
    if (json) {
        json_object *root = json_object_new_object();
        json_object_object_add(root, "checkpoint", json_object_new_string(r->ckpt));
        json_object_object_add(root, "data", json_object_new_string(r->data));
        json_object_object_add(root, "split", json_object_new_string(rb_split_which_str(r->which)));
        json_object_object_add(root, "classes", r->classes ? json_object_new_string(r->classes) : NULL);
        json_object_object_add(root, "count", json_object_new_int64(ev->count));
        json_object_object_add(root, "metric", json_object_new_string(ev->score_name ? ev->score_name : "accuracy"));
        json_object_object_add(root, "score", rb_json_number(ev->accuracy));
        if (classify) {
            json_object_object_add(root, "correct", json_object_new_int64(ev->correct));
            json_object_object_add(root, "accuracy", rb_json_number(ev->accuracy));
            json_object_object_add(root, "clean_acc", rb_json_number(ev->accuracy));
        }
        json_object_object_add(root, "mean_loss", rb_json_number(ev->mean_loss));
        json_object_object_add(root, "metrics", metrics_json(ev->metrics, ev->metric_count));
        if (ev->robust && r->autoattack != NULL) {
            json_object *stages = json_object_new_array();
            int64_t left = ev->correct;
            json_object_object_add(root, "attack", json_object_new_string("autoattack"));
            json_object_object_add(root, "autoattack", json_object_new_string(r->autoattack));
            json_object_object_add(root, "norm", json_object_new_string(r->norm));
            json_object_object_add(root, "eps", rb_json_number(r->eps));
            for (size_t k = 0; k < ev->stage_count; k++) {
                json_object *e = json_object_new_object();
                left -= ev->stage_fooled[k];
                json_object_object_add(e, "attack", json_object_new_string(r->stages[k].plugin->name));
                json_object_object_add(e, "fooled", json_object_new_int64(ev->stage_fooled[k]));
                json_object_object_add(e, "robust_acc",
                                       rb_json_number(ev->count ? (double)left / (double)ev->count : 0));
                json_object_array_add(stages, e);
            }
            json_object_object_add(root, "stages", stages);
        }
        if (ev->robust) {
            json_object *params = json_object_new_object();
            const rb_params *ap = r->attack_params;
            const rb_param_spec *specs = ap ? rb_params_specs(ap) : NULL;
            const rb_attack_options *ao = r->attack_options;
            char buf[256];
            for (size_t i = 0; specs != NULL && specs[i].name != NULL; i++)
                if (rb_params_format(ap, specs[i].name, buf, sizeof buf) == RB_OK)
                    json_object_object_add(params, specs[i].name, json_object_new_string(buf));
            if (r->autoattack == NULL) {
                json_object_object_add(root, "attack", json_object_new_string(r->attack));
                json_object_object_add(root, "attack_params", params);
                json_object_object_add(root, "steps", json_object_new_int(ao->steps));
                json_object_object_add(root, "restarts", json_object_new_int(ao->restarts));
                json_object_object_add(root, "random_start", json_object_new_boolean(ao->random_start));
                json_object_object_add(root, "keep_best", json_object_new_boolean(ao->keep_best));
            } else
                json_object_put(params);
            json_object_object_add(root, "robust_score", rb_json_number(ev->robust_accuracy));
            if (classify) {
                json_object_object_add(root, "robust_correct", json_object_new_int64(ev->robust_correct));
                json_object_object_add(root, "robust_accuracy", rb_json_number(ev->robust_accuracy));
                json_object_object_add(root, "robust_acc", rb_json_number(ev->robust_accuracy));
                json_object_object_add(root, "robust_per_class",
                                       per_class_json(split, ev->classes, ev->class_count, ev->class_robust_correct));
            }
            json_object_object_add(root, "robust_metrics", metrics_json(ev->robust_metrics, ev->robust_metric_count));
        }
        if (classify)
            json_object_object_add(root, "per_class",
                                   per_class_json(split, ev->classes, ev->class_count, ev->class_correct));
        printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(root);
        return;
    }
    if (!classify) {
        printf("%s on %s: %s %.4f, mean loss %.6f (%lld images)\n", r->ckpt, rb_split_name(split), ev->score_name,
               ev->accuracy, ev->mean_loss, (long long)ev->count);
        if (ev->robust)
            printf("%s under %s: %.4f\n", ev->score_name, r->attack, ev->robust_accuracy);
        for (size_t i = 0; i < ev->metric_count; i++) {
            const rb_eval_metric *m = &ev->metrics[i];
            const char *dot = strrchr(m->name, '.');
            const char *name = NULL;
            char *end = NULL;
            long long k = dot != NULL ? strtoll(dot + 1, &end, 10) : -1;
            if (end != NULL && *end == '\0' && k >= 0 && k < ev->classes)
                name = rb_split_class_name(split, k); /* "iou.3": class 3's name */
            const rb_eval_metric *attacked = NULL; /* the same metric on attacked images, by name */
            for (size_t j = 0; ev->robust && j < ev->robust_metric_count; j++)
                if (strcmp(ev->robust_metrics[j].name, m->name) == 0)
                    attacked = &ev->robust_metrics[j];
            if (attacked != NULL)
                printf("  %-24s %.4f  %-20s robust %.4f\n", m->name, m->value, name ? name : "", attacked->value);
            else
                printf("  %-24s %.4f  %s\n", m->name, m->value, name ? name : "");
        }
        return;
    }
    printf("%s on %s: accuracy %.2f%% (%lld/%lld), mean loss %.6f\n", r->ckpt, rb_split_name(split),
           100 * ev->accuracy, (long long)ev->correct, (long long)ev->count, ev->mean_loss);
    if (ev->robust && r->autoattack != NULL) {
        int64_t left = ev->correct;
        printf("AutoAttack %s, %s, eps %.6g, stage by stage (each attacks what the earlier left):\n", r->autoattack,
               r->norm, r->eps);
        for (size_t k = 0; k < ev->stage_count; k++) {
            left -= ev->stage_fooled[k];
            printf("  after %-10s robust %6.2f%% (%lld/%lld; fooled %lld)\n", r->stages[k].plugin->name,
                   ev->count ? 100.0 * (double)left / (double)ev->count : 0.0, (long long)left, (long long)ev->count,
                   (long long)ev->stage_fooled[k]);
        }
    }
    if (ev->robust)
        printf("robust accuracy under %s: %.2f%% (%lld/%lld)\n", r->attack,
               100 * ev->robust_accuracy, (long long)ev->robust_correct, (long long)ev->count);
    for (int64_t k = 0; k < ev->classes; k++) {
        const char *name = rb_split_class_name(split, k);
        if (ev->class_count[k] == 0)
            printf("  %3lld %-20s      -  (0 examples)\n", (long long)k, name ? name : "");
        else if (ev->robust)
            printf("  %3lld %-20s %6.2f%% (%lld/%lld)  robust %6.2f%% (%lld/%lld)\n", (long long)k,
                   name ? name : "", 100.0 * (double)ev->class_correct[k] / (double)ev->class_count[k],
                   (long long)ev->class_correct[k], (long long)ev->class_count[k],
                   100.0 * (double)ev->class_robust_correct[k] / (double)ev->class_count[k],
                   (long long)ev->class_robust_correct[k], (long long)ev->class_count[k]);
        else
            printf("  %3lld %-20s %6.2f%% (%lld/%lld)\n", (long long)k, name ? name : "",
                   100.0 * (double)ev->class_correct[k] / (double)ev->class_count[k],
                   (long long)ev->class_correct[k], (long long)ev->class_count[k]);
    }
}

/* Whether the command's own --NAME was given (not a plugin's). */
static bool own_given(const rb_params *o, const char *name)
{
    return cli_option_owner(o, name) == o && rb_params_source(o, name) == RB_PARAM_GIVEN;
}

/* "8/255" or "0.5" as params write them, or a number. */
static double json_eps(json_object *v)
{
    const char *t = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
    const char *slash = t ? strchr(t, '/') : NULL;
    if (t == NULL)
        return json_object_get_double(v);
    return slash != NULL ? strtod(t, NULL) / strtod(slash + 1, NULL) : strtod(t, NULL);
}

/* AutoAttack against a model adversarially trained for another threat
 * model is allowed (transfer of robustness is a question), but said. */
static void warn_threat_model(const char *command, json_object *meta, const char *norm, double eps)
{
    json_object *tr, *atk, *name, *params, *v;
    const char *trained_norm = NULL, *attack;
    double trained_eps = -1;
    if (meta == NULL || !json_object_object_get_ex(meta, "training", &tr) ||
        !json_object_object_get_ex(tr, "attack", &atk) || !json_object_object_get_ex(atk, "name", &name))
        return;
    attack = json_object_get_string(name);
    trained_norm = rb_autoattack_norm_of(attack, NULL);
    if (json_object_object_get_ex(atk, "params", &params)) {
        if (json_object_object_get_ex(params, "norm", &v))
            trained_norm = rb_autoattack_norm_of(attack, json_object_get_string(v));
        if (json_object_object_get_ex(params, RB_PARAM_EPS, &v))
            trained_eps = json_eps(v);
    }
    if (trained_norm == NULL || trained_eps < 0)
        return;
    if (strcmp(trained_norm, norm) != 0 || fabs(trained_eps - eps) > 1e-9 * fmax(1.0, eps))
        fprintf(stderr,
                "robusta %s: warning: the model was trained against %s at %s eps %.6g; AutoAttack runs %s eps %.6g, "
                "another threat model\n",
                command, attack, trained_norm, trained_eps, norm, eps);
}

/* The examples --n-examples or --indices keep, as a new split in *split. */
static rb_status eval_subset(const rb_params *o, rb_split **split, bool *usage_error)
{
    int64_t n = cli_opt_int(o, "n-examples"), count = rb_split_count(*split), k = 0, *list = NULL;
    const char *path = cli_opt_string(o, "indices");
    rb_split *sub = NULL;
    rb_status s;
    if (n == 0 && path == NULL)
        return RB_OK;
    if (path != NULL) {
        if ((s = cli_read_indices(path, &list, &k)) != RB_OK)
            return s;
    } else {
        if (n > count) {
            *usage_error = true;
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "--n-examples %lld: %s has %lld examples", (long long)n,
                                rb_split_name(*split), (long long)count);
        }
        if ((list = malloc((size_t)n * sizeof *list)) == NULL)
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for %lld indices", (long long)n);
        for (k = 0; k < n; k++)
            list[k] = k;
    }
    s = rb_split_apply(&sub, *split, &(rb_split_options){.indices = list, .index_count = k});
    if (s != RB_OK && path != NULL)
        s = rb_error_prefix("--indices %s: ", path);
    free(list);
    if (s == RB_OK) {
        rb_split_destroy(*split);
        *split = sub;
    }
    return s;
}

static int run_eval(const cli_command *self, rb_params *o, int argc, char **args)
{
    const char *ckpt_path = cli_opt_string(o, "ckpt"), *data = cli_opt_string(o, "data");
    const char *classes = cli_opt_string(o, "classes"), *which_name = "test";
    const char *aa_version = cli_opt_string(o, "autoattack");
    const char *norm = cli_opt_string(cli_option_owner(o, "norm"), "norm");
    rb_registry *reg = cli_registry();
    rb_checkpoint *ck = NULL;
    rb_model *model = NULL;
    rb_split *split = NULL;
    rb_autoattack *aa = NULL;
    rb_eval_result ev;
    json_object *meta = NULL;
    rb_split_which which;
    rb_attack_options ao = rb_attack_options_default();
    rb_split_options so = {0};
    bool usage_error = false;
    const rb_plugin *attack = cli_opt_string(o, "attack") != NULL ? cli_plugin("attack") : NULL;
    rb_engine_options eo = {.threads = (int)cli_opt_int(o, "threads"), .precision = cli_precision(o),
                            .conv_algorithm = cli_conv_algorithm(o)};
    double eps = 0;
    rb_status s;

    memset(&ev, 0, sizeof ev);
    rb_params_get_float(cli_option_owner(o, RB_PARAM_EPS), RB_PARAM_EPS, &eps);
    if (argc > 0)
        return usage(self->name, "eval takes no positional arguments (got '%s')", args[0]);
    if (aa_version != NULL && attack != NULL)
        return usage(self->name, "--autoattack runs AutoAttack's own attacks; drop --attack %s", attack->name);
    if (cli_opt_int(o, "n-examples") > 0 && cli_opt_string(o, "indices") != NULL)
        return usage(self->name, "--n-examples and --indices both choose the examples; give one");
    if (attack != NULL) {
        /* the plugin's where it took them over */
        if (cli_attack_options(o, &ao) != RB_OK || rb_attack_check(attack, &ao) != RB_OK) {
            fprintf(stderr, "robusta %s: %s\n", self->name, rb_last_error());
            return RB_EXIT_USAGE;
        }
        if (own_given(o, "norm") || own_given(o, RB_PARAM_EPS))
            return usage(self->name, "--%s is AutoAttack's here: attack plugin %s takes no such option",
                         own_given(o, "norm") ? "norm" : RB_PARAM_EPS, attack->name);
    } else {
        static const char *const attack_only[] = {"steps", "restarts", "random-start", "keep-best", "seed"};
        for (size_t i = 0; i < sizeof attack_only / sizeof attack_only[0]; i++)
            if (rb_params_source(o, attack_only[i]) == RB_PARAM_GIVEN && aa_version == NULL)
                return usage(self->name, "--%s needs --attack", attack_only[i]);
            else if (rb_params_source(o, attack_only[i]) == RB_PARAM_GIVEN && strcmp(attack_only[i], "seed") != 0)
                return usage(self->name, "--%s is --attack's schedule; AutoAttack's stages have their own",
                             attack_only[i]);
        if (aa_version == NULL && (own_given(o, "norm") || own_given(o, RB_PARAM_EPS)))
            return usage(self->name, "--%s needs --autoattack (or an --attack plugin that takes it)",
                         own_given(o, "norm") ? "norm" : RB_PARAM_EPS);
        if (aa_version != NULL && !own_given(o, RB_PARAM_EPS))
            return usage(self->name, "--autoattack needs --eps, its radius (8/255 is the usual Linf one, 0.5 L2's)");
    }
    rb_params_get_string(o, "split", &which_name);
    which = strcmp(which_name, "train") == 0 ? RB_SPLIT_TRAIN : RB_SPLIT_TEST;
    if (reg == NULL)
        return cli_fail(self->name, rb_last_status());
    if ((s = rb_checkpoint_load(&ck, ckpt_path, 0)) != RB_OK ||
        (s = rb_model_from_checkpoint(&model, reg, ck, ckpt_path, 0, 0)) != RB_OK)
        goto done;
    if ((meta = json_tokener_parse(rb_checkpoint_metadata(ck))) != NULL) {
        json_object *tr, *v;
        /* what the run trained with, unless told otherwise */
        if (json_object_object_get_ex(meta, "training", &tr)) {
            if (classes == NULL && json_object_object_get_ex(tr, "classes", &v) &&
                json_object_is_type(v, json_type_string))
                classes = json_object_get_string(v);
            if (json_object_object_get_ex(tr, "transform", &v) && json_object_is_type(v, json_type_string))
                (void)rb_transform_parse(json_object_get_string(v), &so.transform);
        }
    }
    if (aa_version != NULL) {
        if ((s = rb_autoattack_create(&aa, reg, aa_version, norm, eps, rb_model_num_classes(model),
                                      (uint64_t)cli_opt_int(o, "seed"))) != RB_OK) {
            fprintf(stderr, "robusta %s: %s\n", self->name, rb_last_error());
            usage_error = s == RB_ERR_INVALID_ARGUMENT || s == RB_ERR_UNSUPPORTED;
            goto done;
        }
        warn_threat_model(self->name, meta, norm, eps);
    }
    if (cli_image_set_options(o, &so) != RB_OK) {
        fprintf(stderr, "robusta %s: %s\n", self->name, rb_last_error());
        usage_error = true;
        goto done;
    }
    so.classes = classes;
    if ((s = rb_eval_open_split(model, data, which, &so, &split)) != RB_OK)
        goto done;
    if ((s = eval_subset(o, &split, &usage_error)) != RB_OK) {
        if (usage_error)
            fprintf(stderr, "robusta %s: %s\n", self->name, rb_last_error());
        goto done;
    }
    if (aa != NULL) {
        size_t n;
        const rb_attack_stage *stages = rb_autoattack_stages(aa, &n);
        s = rb_evaluate_stages(model, split, cli_opt_int(o, "batch-size"), &eo, stages, n, &ev);
    } else if (attack != NULL)
        s = rb_evaluate_robust(model, split, cli_opt_int(o, "batch-size"), &eo, attack, cli_plugin_params("attack"),
                               &ao, &ev);
    else
        s = rb_evaluate(model, split, cli_opt_int(o, "batch-size"), &eo, &ev);
    if (s != RB_OK)
        goto done;
    cli_print_eval(&(cli_eval_report){.ckpt = ckpt_path, .data = data, .which = which, .classes = classes,
                                      .split = split, .result = &ev,
                                      .attack = attack != NULL ? cli_opt_string(o, "attack")
                                                : aa != NULL   ? "AutoAttack"
                                                               : NULL,
                                      .attack_params = attack != NULL ? cli_plugin_params("attack") : NULL,
                                      .attack_options = &ao, .autoattack = aa ? rb_autoattack_version(aa) : NULL,
                                      .norm = norm, .eps = eps,
                                      .stages = aa ? rb_autoattack_stages(aa, NULL) : NULL},
                   cli_opt_bool(o, "json"));
done:
    json_object_put(meta);
    rb_eval_result_free(&ev);
    rb_split_destroy(split);
    rb_autoattack_destroy(aa);
    rb_model_destroy(model);
    rb_checkpoint_destroy(ck);
    if (usage_error)
        return RB_EXIT_USAGE;
    return s == RB_OK ? RB_EXIT_OK : cli_fail(self->name, s);
}

const cli_command cli_eval_command = {
    .name = "eval",
    .summary = "accuracy, mean loss and per-class accuracy of a checkpoint on a dataset",
    .usage = "--ckpt MODEL.rbt --data SPEC [--split test|train] [--classes LIST] [--json]\n"
             "       [--attack NAME [attack options] [--steps N --restarts R --random-start --keep-best --seed S]]\n"
             "       [--autoattack standard|plus|rand --norm linf|l2 --eps E [--seed S]]\n"
             "       [--n-examples N | --indices FILE.npy]",
    .description =
        "Runs a model in inference mode over a dataset split (the test split by default) and\n"
        "prints its accuracy, mean cross-entropy and per-class accuracy with class names.\n"
        "Images are resized and grayscale replicated to what the model takes; --classes\n"
        "defaults to the classes the checkpoint was trained on. With --attack NAME (and the\n"
        "plugin's options, e.g. --eps 8/255) it also attacks every image (rb_attack_run) and\n"
        "prints robust accuracy, overall and per class (JSON: robust_accuracy, robust_per_class).\n"
        "With --autoattack VERSION (--norm, --eps) it runs AutoAttack's attacks in order, each\n"
        "on what the earlier left correctly classified, and prints robust accuracy after each\n"
        "(JSON: clean_acc, robust_acc, stages). --n-examples N or --indices FILE.npy evaluate\n"
        "a fixed subset of the split.",
    .options = eval_options,
    .plugin_options = eval_plugin_option,
    .run = run_eval,
};
