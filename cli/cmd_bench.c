/* robusta bench: how fast a model trains, infers and is attacked on this
 * machine, with the same engine settings the other commands use. The
 * images are synthetic (the speed of a step does not depend on them); the
 * model is built by its arch plugin and initialized as for training. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "sys/json.h"

static const rb_param_spec bench_options[] = {
    {"arch", RB_PARAM_STRING, NULL, NULL, RB_PARAM_REQUIRED,
     "architecture plugin or preset (resnet18, resnet50, wide_resnet50_2 ...); its options follow"},
    {"image-size", RB_PARAM_INT, "224", "[1, 8192]", 0, "height and width of the input images"},
    {"channels", RB_PARAM_INT, "3", "[1, 16]", 0, "input channels (16: RB_MODEL_MAX_CHANNELS)"},
    {"batch-size", RB_PARAM_INT, "32", "[1, 65536]", 0, "images per step"},
    {"threads", RB_PARAM_INT, "0", "[0, 4096]", 0, "compute threads (0: every core of this NUMA node)"},
    CLI_ARITHMETIC_OPTIONS,
    {"repeats", RB_PARAM_INT, "5", "[1, 1000]", 0, "timed runs of each measurement, after one warm-up (the median is reported)"},
    {"only", RB_PARAM_CHOICE, "all", "all|train|infer|attack", 0,
     "measure one thing (attack needs --attack)"},
    {"attack", RB_PARAM_STRING, NULL, NULL, 0, "also time this attack plugin (pgd-linf ...); its options follow"},
    {"steps", RB_PARAM_INT, "10", "[1, 1000000]", 0, "attack iterations per run (step-based attacks)"},
    {"json", RB_PARAM_BOOL, "false", NULL, 0, "print JSON"},
    {NULL}};

static const char *const bench_attack_shared[] = {RB_PARAM_STEPS, NULL};
static const cli_plugin_option bench_plugin_options[] = {
    {"arch", RB_PLUGIN_ARCH, NULL}, {"attack", RB_PLUGIN_ATTACK, bench_attack_shared}, {NULL, 0, NULL}};

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return v[n / 2];
}

/* One measurement's figures. */
typedef struct timing {
    bool done;
    double seconds;         /* median per step (training, inference, attack step) or per run */
    double parts[3];        /* training: forward, backward, SGD medians */
    double arena_mib;
    int64_t forwards, backwards; /* attack: engine passes of one run */
    bool per_step;          /* attack: seconds is per step (step-based) or per run (whole-run) */
} timing;

typedef struct bench {
    const rb_params *o;
    rb_model *model;
    int64_t batch;
    int repeats;
    rb_engine_options engine;
    float *images;
    int64_t *labels;
    char threads_text[160];
} bench;

/* A measurement's result: the median of b->repeats times in v, and the
 * engine's arena and thread placement. */
static void record(bench *b, timing *t, const rb_engine *e, double *v)
{
    t->done = true;
    t->seconds = median_of(v, b->repeats);
    t->arena_mib = (double)rb_engine_arena_bytes(e) / (1 << 20);
    snprintf(b->threads_text, sizeof b->threads_text, "%s", rb_engine_threads(e));
}

static rb_status time_training(bench *b, timing *t)
{
    rb_engine *e = NULL;
    rb_sgd *sgd = NULL;
    rb_status s;
    double *v = calloc((size_t)b->repeats * 4, sizeof *v);
    if (v == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "bench: out of memory");
    s = rb_engine_create(&e, rb_model_graph(b->model), b->batch, &b->engine);
    if (s == RB_OK)
        s = rb_sgd_create(&sgd, rb_model_graph(b->model), &(rb_sgd_options){.momentum = 0.9, .weight_decay = 5e-4});
    for (int r = 0; s == RB_OK && r <= b->repeats; r++) { /* run 0 warms up */
        double t0 = seconds_now(), t1 = t0, t2 = t0;
        s = rb_engine_forward(e, b->images, b->batch, b->labels, true);
        if (s == RB_OK) {
            t1 = seconds_now();
            s = rb_engine_backward(e, true, false);
        }
        if (s == RB_OK) {
            t2 = seconds_now();
            s = rb_sgd_step(sgd, 0.01);
        }
        if (s == RB_OK && r > 0) {
            double end = seconds_now();
            v[r - 1] = end - t0;
            v[b->repeats + r - 1] = t1 - t0;
            v[2 * b->repeats + r - 1] = t2 - t1;
            v[3 * b->repeats + r - 1] = end - t2;
        }
    }
    if (s == RB_OK) {
        record(b, t, e, v);
        for (int k = 0; k < 3; k++)
            t->parts[k] = median_of(v + (k + 1) * b->repeats, b->repeats);
    }
    rb_sgd_destroy(sgd);
    rb_engine_destroy(e);
    free(v);
    return s;
}

/* Inference as evaluation runs it: forward with running statistics on an
 * engine that computes no weight gradients. */
static rb_status time_inference(bench *b, timing *t)
{
    rb_engine *e = NULL;
    rb_engine_options opt = b->engine;
    rb_status s;
    double *v = calloc((size_t)b->repeats, sizeof *v);
    if (v == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "bench: out of memory");
    opt.data_grads_only = true;
    s = rb_engine_create(&e, rb_model_graph(b->model), b->batch, &opt);
    if (s == RB_OK)
        rb_engine_hold_weights(e, true);
    for (int r = 0; s == RB_OK && r <= b->repeats; r++) {
        double t0 = seconds_now();
        s = rb_engine_forward(e, b->images, b->batch, b->labels, false);
        if (s == RB_OK && r > 0)
            v[r - 1] = seconds_now() - t0;
    }
    if (s == RB_OK)
        record(b, t, e, v);
    rb_engine_destroy(e);
    free(v);
    return s;
}

/* A step-based attack's step: (a run of N steps - a run of 0) / N, which
 * leaves out the clean passes every run makes. A whole-run attack (its own
 * schedule, e.g. apgd-ce's --steps): the time of one run. */
static rb_status time_attack(bench *b, const rb_plugin *plugin, const rb_params *params, timing *t)
{
    const rb_attack_ops *ops = plugin->ops.attack;
    rb_engine *e = NULL;
    rb_attacker *attacker = NULL;
    rb_engine_options opt = b->engine;
    rb_attack_options ao = rb_attack_options_default();
    rb_attack_stats st;
    const rb_model_input *in = rb_model_get_input(b->model);
    size_t pixels = (size_t)b->batch * (size_t)(in->channels * in->height * in->width);
    float *adv = malloc(pixels * sizeof *adv);
    double *v = calloc((size_t)b->repeats, sizeof *v);
    int steps = (int)cli_opt_int(cli_option_owner(b->o, RB_PARAM_STEPS), RB_PARAM_STEPS); /* apgd-ce's own, for one */
    rb_status s = RB_OK;
    if (adv == NULL || v == NULL)
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "bench: out of memory");
    t->per_step = ops->run == NULL;
    ao.steps = steps;
    if (s == RB_OK)
        s = rb_attack_check(plugin, &ao);
    opt.data_grads_only = true;
    if (s == RB_OK)
        s = rb_engine_create(&e, rb_model_graph(b->model), b->batch, &opt);
    if (s == RB_OK)
        s = rb_attacker_create(&attacker, e, b->model);
    for (int r = 0; s == RB_OK && r <= b->repeats; r++) {
        double t0, full;
        ao.steps = r == 0 ? 1 : steps;
        t0 = seconds_now();
        s = rb_attacker_run(attacker, plugin, params, &ao, b->images, b->labels, b->batch, adv, NULL, &st);
        full = seconds_now() - t0;
        if (s != RB_OK || r == 0)
            continue;
        t->forwards = st.forwards;
        t->backwards = st.backwards;
        v[r - 1] = full;
        if (t->per_step) {
            ao.steps = 0;
            t0 = seconds_now();
            s = rb_attacker_run(attacker, plugin, params, &ao, b->images, b->labels, b->batch, adv, NULL, &st);
            v[r - 1] = (full - (seconds_now() - t0)) / steps;
        }
    }
    if (s == RB_OK)
        record(b, t, e, v);
    rb_attacker_destroy(attacker);
    rb_engine_destroy(e);
    free(adv);
    free(v);
    return s;
}

static json_object *timing_json(const timing *t, int64_t batch, double gflop)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ms", rb_json_number(t->seconds * 1e3));
    json_object_object_add(o, "images_per_second", rb_json_number((double)batch / t->seconds));
    if (gflop > 0)
        json_object_object_add(o, "gflop_per_second", rb_json_number(gflop / t->seconds));
    json_object_object_add(o, "arena_mib", rb_json_number(t->arena_mib));
    return o;
}

static int run_bench(const cli_command *self, rb_params *o, int argc, char **args)
{
    const rb_plugin *arch = cli_plugin("arch"), *attack = cli_plugin("attack");
    const char *only = cli_opt_string(o, "only");
    bool all = strcmp(only, "all") == 0, json = cli_opt_bool(o, "json");
    int64_t size = cli_opt_int(o, "image-size"), channels = cli_opt_int(o, "channels");
    bench b = {.o = o, .batch = cli_opt_int(o, "batch-size"), .repeats = (int)cli_opt_int(o, "repeats")};
    rb_model_input input = rb_model_input_imagenet(size, size);
    timing train = {0}, infer = {0}, atk = {0};
    double train_gflop, infer_gflop, attack_gflop;
    const char *conv_algorithm;
    size_t pixels;
    rb_status s = RB_OK;

    if (argc > 0) {
        fprintf(stderr, "robusta %s: bench takes no positional arguments (got '%s') (robusta %s --help lists its "
                        "options)\n", self->name, args[0], self->name);
        return RB_EXIT_USAGE;
    }
    if (arch == NULL || cli_plugin_params("arch") == NULL)
        return cli_fail(self->name, rb_error_set(RB_ERR_INTERNAL, "--arch was given but no plugin was chosen"));
    if (strcmp(only, "attack") == 0 && attack == NULL) {
        fprintf(stderr, "robusta %s: --only attack needs --attack NAME (robusta %s --help lists its options)\n",
                self->name, self->name);
        return RB_EXIT_USAGE;
    }
    if (attack == NULL && rb_params_source(o, RB_PARAM_STEPS) == RB_PARAM_GIVEN) {
        fprintf(stderr, "robusta %s: --steps needs --attack (robusta %s --help lists its options)\n", self->name,
                self->name);
        return RB_EXIT_USAGE;
    }
    if (channels != 3) { /* the normalization does not change the speed */
        input.channels = channels;
        for (int64_t c = 0; c < channels; c++) {
            input.mean[c] = 0.5f;
            input.std[c] = 0.25f;
        }
    }
    b.engine.threads = (int)cli_opt_int(o, "threads");
    b.engine.precision = cli_precision(o);
    b.engine.conv_algorithm = cli_conv_algorithm(o);
    s = rb_model_create(&b.model, arch, cli_plugin_params("arch"), &input);
    if (s == RB_OK) {
        /* the engines come one at a time; a training one is the largest.
         * Images: the batch and, for attacks, its adversarial copy. */
        rb_memory_engine one = {b.batch, !(all || strcmp(only, "train") == 0)};
        uint64_t images = (uint64_t)b.batch * (uint64_t)channels * (uint64_t)size * (uint64_t)size * sizeof(float);
        s = rb_model_check_memory(b.model, &b.engine, &one, 1, attack != NULL ? 2 * images : images,
                                  "lower --batch-size or --image-size");
    }
    if (s == RB_OK)
        s = rb_graph_init_params(rb_model_graph(b.model), 1);
    if (s != RB_OK) {
        rb_model_destroy(b.model);
        return cli_fail(self->name, s);
    }
    /* Fixed pseudo-random images in [0, 1) and labels spread over the classes. */
    pixels = (size_t)b.batch * (size_t)(channels * size * size);
    b.images = malloc(pixels * sizeof *b.images);
    b.labels = malloc((size_t)b.batch * sizeof *b.labels);
    if (b.images == NULL || b.labels == NULL) {
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "bench: no memory for %lld images of %lldx%lldx%lld",
                         (long long)b.batch, (long long)channels, (long long)size, (long long)size);
    } else {
        uint32_t x = 12345;
        for (size_t i = 0; i < pixels; i++) {
            x = x * 1664525u + 1013904223u;
            b.images[i] = (float)(x >> 8) * (1.0f / 16777216.0f);
        }
        for (int64_t i = 0; i < b.batch; i++)
            b.labels[i] = (i * 7919) % rb_model_num_classes(b.model);
    }
    if (s == RB_OK && (all || strcmp(only, "train") == 0))
        s = time_training(&b, &train);
    if (s == RB_OK && (all || strcmp(only, "infer") == 0))
        s = time_inference(&b, &infer);
    if (s == RB_OK && attack != NULL && (all || strcmp(only, "attack") == 0))
        s = time_attack(&b, attack, cli_plugin_params("attack"), &atk);
    if (s != RB_OK) {
        free(b.images);
        free(b.labels);
        rb_model_destroy(b.model);
        return cli_fail(self->name, s);
    }

    train_gflop = 2.0 * (double)rb_graph_training_macs(rb_model_graph(b.model)) * (double)b.batch * 1e-9;
    infer_gflop = 2.0 * (double)rb_graph_forward_macs(rb_model_graph(b.model)) * (double)b.batch * 1e-9;
    attack_gflop = 2.0 * infer_gflop; /* forward and backward-data */
    /* what ran: bf16 has no Winograd (robusta/engine.h) */
    conv_algorithm = rb_conv_algorithm_str(b.engine.precision == RB_PRECISION_BF16 ? RB_CONV_DIRECT
                                                                                     : b.engine.conv_algorithm);
    if (json) {
        json_object *root = json_object_new_object();
        json_object_object_add(root, "arch", json_object_new_string(cli_opt_string(o, "arch")));
        json_object_object_add(root, "image_size", json_object_new_int64(size));
        json_object_object_add(root, "channels", json_object_new_int64(channels));
        json_object_object_add(root, "classes", json_object_new_int64(rb_model_num_classes(b.model)));
        json_object_object_add(root, "batch_size", json_object_new_int64(b.batch));
        json_object_object_add(root, "precision", json_object_new_string(rb_precision_str(b.engine.precision)));
        json_object_object_add(root, "conv_algorithm", json_object_new_string(conv_algorithm));
        json_object_object_add(root, "threads", json_object_new_string(b.threads_text));
        json_object_object_add(root, "repeats", json_object_new_int(b.repeats));
        if (train.done) {
            json_object *t = timing_json(&train, b.batch, train_gflop);
            json_object_object_add(t, "forward_ms", rb_json_number(train.parts[0] * 1e3));
            json_object_object_add(t, "backward_ms", rb_json_number(train.parts[1] * 1e3));
            json_object_object_add(t, "sgd_ms", rb_json_number(train.parts[2] * 1e3));
            json_object_object_add(root, "train", t);
        }
        if (infer.done)
            json_object_object_add(root, "inference", timing_json(&infer, b.batch, infer_gflop));
        if (atk.done) {
            json_object *t = timing_json(&atk, b.batch, atk.per_step ? attack_gflop : 0);
            json_object_object_add(t, "name", json_object_new_string(attack->name));
            json_object_object_add(t, "per", json_object_new_string(atk.per_step ? "step" : "run"));
            json_object_object_add(t, "forwards_per_run", json_object_new_int64(atk.forwards));
            json_object_object_add(t, "backwards_per_run", json_object_new_int64(atk.backwards));
            json_object_object_add(root, "attack", t);
        }
        printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(root);
    } else {
        printf("%s at %lldx%lldx%lld, %lld classes, batch %lld, %s, %s convolutions; %s; median of %d after a "
               "warm-up\n",
               cli_opt_string(o, "arch"), (long long)channels, (long long)size, (long long)size,
               (long long)rb_model_num_classes(b.model), (long long)b.batch, rb_precision_str(b.engine.precision),
               conv_algorithm, b.threads_text, b.repeats);
        if (train.done)
            printf("  training step   %9.1f ms  %9.1f images/s  %7.1f GFLOP/s  (forward %.1f, backward %.1f, "
                   "SGD %.1f ms; arena %.0f MiB)\n",
                   train.seconds * 1e3, (double)b.batch / train.seconds, train_gflop / train.seconds,
                   train.parts[0] * 1e3, train.parts[1] * 1e3, train.parts[2] * 1e3, train.arena_mib);
        if (infer.done)
            printf("  inference       %9.1f ms  %9.1f images/s  %7.1f GFLOP/s  (arena %.0f MiB)\n",
                   infer.seconds * 1e3, (double)b.batch / infer.seconds, infer_gflop / infer.seconds,
                   infer.arena_mib);
        if (atk.done && atk.per_step)
            printf("  %-15s %9.1f ms  %9.1f images/s  %7.1f GFLOP/s  (per step; arena %.0f MiB)\n", attack->name,
                   atk.seconds * 1e3, (double)b.batch / atk.seconds, attack_gflop / atk.seconds, atk.arena_mib);
        else if (atk.done)
            printf("  %-15s %9.1f ms  %9.1f images/s  per run of %lld forward and %lld backward passes "
                   "(arena %.0f MiB)\n",
                   attack->name, atk.seconds * 1e3, (double)b.batch / atk.seconds, (long long)atk.forwards,
                   (long long)atk.backwards, atk.arena_mib);
    }
    free(b.images);
    free(b.labels);
    rb_model_destroy(b.model);
    return RB_EXIT_OK;
}

const cli_command cli_bench_command = {
    .name = "bench",
    .summary = "measure how fast a model trains, infers and is attacked here",
    .usage = "--arch NAME [arch options] [--image-size S] [--batch-size B] [--precision f32|bf16] "
             "[--attack NAME [attack options]] [options]",
    .description =
        "Builds the architecture (its options as for train; num-classes is the arch's default\n"
        "unless given) and times, on synthetic images, what the other commands run per batch:\n"
        "a training step (forward with batch statistics, backward with weight gradients, SGD\n"
        "with momentum), an inference forward (running statistics, as eval), and with --attack\n"
        "an attack step: for step-based attacks (pgd-linf, pgd-l2) the time of --steps steps\n"
        "less a run of none, divided by --steps; for whole-run attacks (apgd-ce) one run.\n"
        "Each figure is the median of --repeats runs after a warm-up. GFLOP/s counts the\n"
        "convolutions and linear layers: 2 per multiply-accumulate of forward, backward-data\n"
        "and backward-weights (training, without the image's backward-data), forward only\n"
        "(inference), forward and backward-data (attack), as direct convolution does them:\n"
        "with Winograd (--conv-algorithm) it is an effective rate, since Winograd needs\n"
        "fewer multiplications. bench/ has the benchmarks that compare with PyTorch.",
    .options = bench_options,
    .plugin_options = bench_plugin_options,
    .run = run_bench,
};
