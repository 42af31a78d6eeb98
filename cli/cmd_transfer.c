/* The transfer command: a source model's backbone with a task head, trained
 * on a target dataset in fixed-feature or full-network mode (robusta/train.h,
 * "Transfer"). Defaults follow Salman et al. (2020): SGD with momentum 0.9,
 * batch 64, weight decay 5e-4, lr 0.01 (fixed-feature) or 0.001
 * (full-network), lr x 0.1 at each third of the epochs. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <robusta/train.h>

#include "cli/cli.h"

static const rb_param_spec transfer_options[] = {
    {"source", RB_PARAM_STRING, NULL, NULL, 0, "the source model (.rbt) whose backbone transfers"},
    {"task", RB_PARAM_STRING, "classify", NULL, 0, "task plugin whose head replaces the classifier; its options follow"},
    {"mode", RB_PARAM_CHOICE, "fixed", "fixed|full", 0,
     "fixed: train the head on the frozen backbone; full: fine-tune every layer"},
    {"bn-stats", RB_PARAM_CHOICE, "frozen", "frozen|update", 0,
     "fixed mode: the backbone's batch-norm statistics stay (frozen) or keep updating as the paper's code did"},
    {"feature-cache", RB_PARAM_CHOICE, "f32", "f32|bf16|off", 0,
     "fixed mode, frozen statistics, no augmentation: compute what the head reads once and keep it in f32, or bf16 "
     "(half the memory); off: run the backbone every step"},
    {"feature-cache-limit", RB_PARAM_FLOAT, "0", "[0, 1e12]", 0,
     "MiB the feature cache may take; a larger one is refused before it is computed (0: the machine's memory)"},
    {"data", RB_PARAM_STRING, NULL, NULL, 0, "target dataset spec (fashion-mnist:DIR, cifar10:DIR, npy:...)"},
    {"out", RB_PARAM_STRING, NULL, NULL, 0, "run folder: checkpoints, logs, config.json, metrics.json"},
    {"resume", RB_PARAM_STRING, NULL, NULL, 0, "continue the transfer in this folder"},
    {"epochs", RB_PARAM_INT, "30", "[1, 16777215]", 0, "training epochs (in all, when resuming)"},
    {"batch-size", RB_PARAM_INT, "64", "[1, 65536]", 0, "training batch (the last partial batch is dropped)"},
    {"eval-batch-size", RB_PARAM_INT, "256", "[1, 65536]", 0, "evaluation and feature batch"},
    {"lr", RB_PARAM_FLOAT, NULL, "[0, inf)", 0, "base learning rate (default 0.01 fixed, 0.001 full)"},
    {"momentum", RB_PARAM_FLOAT, "0.9", NULL, 0, "SGD momentum (0: none)"},
    {"weight-decay", RB_PARAM_FLOAT, "0.0005", NULL, 0, "L2 weight decay"},
    {"nesterov", RB_PARAM_BOOL, "false", NULL, 0, "Nesterov momentum"},
    {"sync-bn", RB_PARAM_BOOL, "false", NULL, 0,
     "under mpirun: batch-norm statistics over the whole batch, not each rank's share (full mode)"},
    {"bucket-mib", RB_PARAM_FLOAT, "4", "[0.0625, 1024]", 0,
     "under mpirun: gradient bucket size of the all-reduce, in MiB (the first and last about 1/16 of it)"},
    {"schedule", RB_PARAM_STRING, NULL, NULL, 0,
     "constant, step:N:G, multistep:A,B:G or cosine, +warmup:W (default step:E/3:0.1)"},
    {"seed", RB_PARAM_INT, "0", "[0, 9223372036854775807]", 0, "head weights, order, augmentation, per-class choice"},
    {"threads", RB_PARAM_INT, "0", "[0, 4096]", 0, "compute threads (0: every core of this NUMA node)"},
    CLI_ARITHMETIC_OPTIONS,
    CLI_TUNE_OPTION,
    CLI_STRICT_RESUME_OPTION,
    {"loader-threads", RB_PARAM_INT, "1", "[0, 256]", 0, "batch-making threads (0: on the training thread)"},
    {"classes", RB_PARAM_STRING, NULL, NULL, 0, "target classes to keep, relabelled 0..k-1 (\"5-9\")"},
    {"per-class", RB_PARAM_INT, "0", "[0, 9223372036854775807]", 0, "training examples per class (0: all)"},
    {"image-size", RB_PARAM_INT, "0", "[0, 65536]", 0, "resize target images to SxS (0: as stored)"},
    CLI_IMAGE_SET_OPTIONS,
    {"channels", RB_PARAM_INT, "0", "[0, 3]", 0, "channels to convert to (0: the source model's)"},
    {"augment", RB_PARAM_BOOL, "false", NULL, 0, "the target dataset's usual augmentation"},
    {"eval-every", RB_PARAM_INT, "1", "[1, 16777215]", 0, "test accuracy every this many epochs and at the last"},
    {"force", RB_PARAM_BOOL, "false", NULL, 0, "start over in an --out that already holds a run"},
    {NULL}};

static const cli_plugin_option task_option[] = {{"task", RB_PLUGIN_TASK, NULL}, {NULL, 0, NULL}};

static int usage(const cli_command *self, const char *what)
{
    fprintf(stderr, "robusta %s: %s (robusta %s --help lists its options)\n", self->name, what, self->name);
    return RB_EXIT_USAGE;
}

static int run_transfer(const cli_command *self, rb_params *o, int argc, char **args)
{
    const char *resume = NULL, *mode = "fixed", *bn = "frozen";
    rb_registry *reg;
    rb_train_result res;
    rb_train_config c;
    int64_t i64 = 0;
    rb_status s;

    if (argc > 0) {
        fprintf(stderr, "robusta %s: takes no positional arguments (got '%s')\n", self->name, args[0]);
        return RB_EXIT_USAGE;
    }
    if ((reg = cli_registry()) == NULL)
        return cli_fail(self->name, rb_last_status());
    rb_train_clear_stop();
    if (rb_params_source(o, "resume") == RB_PARAM_GIVEN) {
        const rb_param_spec *specs = rb_params_specs(o);
        rb_params_get_string(o, "resume", &resume);
        for (size_t i = 0; specs[i].name != NULL; i++)
            if (strcmp(specs[i].name, "resume") != 0 && strcmp(specs[i].name, "epochs") != 0 &&
                strcmp(specs[i].name, "threads") != 0 && strcmp(specs[i].name, "strict-resume") != 0 &&
                rb_params_source(o, specs[i].name) == RB_PARAM_GIVEN) {
                fprintf(stderr, "robusta %s: --%s cannot be given with --resume (the run's config.json holds it)\n",
                        self->name, specs[i].name);
                return RB_EXIT_USAGE;
            }
        cli_catch_stop_signals();
        if (rb_params_source(o, "epochs") == RB_PARAM_GIVEN)
            rb_params_get_int(o, "epochs", &i64);
        {
            int64_t threads = -1;
            if (rb_params_source(o, "threads") == RB_PARAM_GIVEN)
                rb_params_get_int(o, "threads", &threads);
            s = rb_train_resume(reg, resume, i64, (int)threads, cli_opt_bool(o, "strict-resume"),
                                rb_log_get_level() < RB_LOG_INFO, &res);
        }
        return cli_finish_train(self, s, &res, resume);
    }
    c = rb_train_config_default();
    if (rb_params_source(o, "source") != RB_PARAM_GIVEN)
        return usage(self, "--source is required: the source model to transfer (or --resume DIR)");
    if (rb_params_source(o, "data") != RB_PARAM_GIVEN)
        return usage(self, "--data is required: the target dataset (or --resume DIR)");
    if (rb_params_source(o, "out") != RB_PARAM_GIVEN)
        return usage(self, "--out is required: the run folder to write (or --resume DIR)");
    rb_params_get_string(o, "source", &c.transfer.source);
    rb_params_get_string(o, "data", &c.data);
    rb_params_get_string(o, "out", &c.out_dir);
    rb_params_get_string(o, "task", &c.transfer.task_name);
    rb_params_get_string(o, "mode", &mode);
    rb_params_get_string(o, "bn-stats", &bn);
    c.transfer.registry = reg;
    c.transfer.task = cli_plugin("task");
    c.transfer.task_params = cli_plugin_params("task");
    if (c.transfer.task == NULL) /* the default --task: find it like a given one */
        if ((s = rb_registry_find(reg, RB_PLUGIN_TASK, c.transfer.task_name, &c.transfer.task)) != RB_OK)
            return cli_fail(self->name, s);
    c.transfer.fixed_features = strcmp(mode, "fixed") == 0;
    c.transfer.bn_update = strcmp(bn, "update") == 0;
    {
        const char *cache = "f32";
        double mib = 0;
        rb_params_get_string(o, "feature-cache", &cache);
        if ((s = rb_feature_cache_parse(cache, &c.transfer.feature_cache)) != RB_OK)
            return usage(self, rb_last_error());
        rb_params_get_float(o, "feature-cache-limit", &mib);
        c.transfer.feature_cache_limit = (uint64_t)(mib * (1 << 20));
        if (mib > 0 && c.transfer.feature_cache_limit == 0)
            return usage(self, "--feature-cache-limit is below one byte (it counts MiB; 0: the machine's memory)");
    }
    if (!c.transfer.fixed_features &&
        (rb_params_source(o, "bn-stats") == RB_PARAM_GIVEN || rb_params_source(o, "feature-cache") == RB_PARAM_GIVEN ||
         rb_params_source(o, "feature-cache-limit") == RB_PARAM_GIVEN))
        return usage(self, "--bn-stats, --feature-cache and --feature-cache-limit apply to --mode fixed only");
    rb_params_get_int(o, "epochs", &c.training.epochs);
    rb_params_get_int(o, "batch-size", &c.training.batch_size);
    rb_params_get_int(o, "eval-batch-size", &c.training.eval_batch_size);
    c.training.lr = c.transfer.fixed_features ? 0.01 : 0.001;
    if (rb_params_source(o, "lr") == RB_PARAM_GIVEN)
        rb_params_get_float(o, "lr", &c.training.lr);
    rb_params_get_float(o, "momentum", &c.training.momentum);
    rb_params_get_float(o, "weight-decay", &c.training.weight_decay);
    rb_params_get_bool(o, "nesterov", &c.training.nesterov);
    rb_params_get_bool(o, "sync-bn", &c.training.sync_bn);
    rb_params_get_float(o, "bucket-mib", &c.training.bucket_mib);
    if (rb_params_source(o, "schedule") == RB_PARAM_GIVEN)
        rb_params_get_string(o, "schedule", &c.training.schedule);
    rb_params_get_int(o, "seed", &i64);
    c.seed = (uint64_t)i64;
    rb_params_get_int(o, "threads", &i64);
    c.threads = (int)i64;
    c.precision = cli_precision(o);
    c.conv_algorithm = cli_conv_algorithm(o);
    c.tune = cli_tune(o);
    rb_params_get_int(o, "loader-threads", &i64);
    c.loader_threads = (int)i64;
    if (rb_params_source(o, "classes") == RB_PARAM_GIVEN)
        rb_params_get_string(o, "classes", &c.classes);
    rb_params_get_int(o, "per-class", &c.per_class);
    rb_params_get_int(o, "image-size", &i64);
    c.image_size = (int)i64;
    rb_params_get_int(o, "channels", &i64);
    c.channels = (int)i64;
    rb_params_get_bool(o, "augment", &c.augment);
    {
        rb_split_options so = {0};
        if ((s = cli_image_set_options(o, &so)) != RB_OK) {
            fprintf(stderr, "robusta %s: %s\n", self->name, rb_last_error());
            return RB_EXIT_USAGE;
        }
        c.transform = so.transform;
        c.cache_dir = so.cache_dir;
        /* the paper trains on RandomResizedCrop and flips */
        if (c.transform == RB_TRANSFORM_PAPER && rb_params_source(o, "augment") != RB_PARAM_GIVEN)
            c.augment = true;
    }
    rb_params_get_int(o, "eval-every", &c.training.eval_every);
    rb_params_get_bool(o, "force", &c.force);
    c.quiet = rb_log_get_level() < RB_LOG_INFO;
    if ((s = rb_train_config_check(&c)) != RB_OK) {
        fprintf(stderr, "robusta %s: %s\n", self->name, rb_last_error());
        return RB_EXIT_USAGE;
    }
    cli_catch_stop_signals();
    s = rb_train(&c, &res);
    return cli_finish_train(self, s, &res, c.out_dir);
}

const cli_command cli_transfer_command = {
    .name = "transfer",
    .summary = "transfer a source model to a target task (fixed-feature or full-network)",
    .usage = "--source MODEL.rbt --data SPEC --out DIR [--task classify [task options]] [--mode fixed|full]\n"
             "       [--bn-stats frozen|update] [options] | --resume DIR [--epochs E]",
    .description =
        "Replaces the source model's classifier with the task plugin's head (classify: a new\n"
        "linear layer, --hidden N,M for extra layers) for the target's classes and trains on\n"
        "the target data, as Salman et al. (2020) do. --mode fixed freezes the backbone with its\n"
        "batch-norm in inference mode (--bn-stats update keeps the statistics moving, as their\n"
        "code did) and trains the head; when the backbone is frozen and there is no augmentation\n"
        "what the head reads (the pooled features, or the task's --stage) is computed once and\n"
        "cached, in f32 or bf16 (--feature-cache), its size said first and refused past\n"
        "--feature-cache-limit or the machine's memory. --mode full fine-tunes every layer.\n"
        "Defaults follow the paper: SGD momentum 0.9, batch 64, weight decay 5e-4, lr 0.01\n"
        "(fixed) or 0.001 (full), x0.1 at each third of --epochs. Target images take the\n"
        "source's channels and normalization. DIR receives what `robusta train` writes\n"
        "(config.json, last/best/model.rbt, log.csv, log.jsonl) and metrics.json, the task's\n"
        "metrics on the test split; model.rbt is a whole model for eval, attack and export.",
    .options = transfer_options,
    .plugin_options = task_option,
    .run = run_transfer,
    .data_parallel = true,
};
