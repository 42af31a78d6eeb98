/* Whole training steps of real models: forward (training mode), backward
 * with weight gradients and an SGD update, the step a trainer runs, for the
 * models built through the arch registry exactly as `robusta train` builds
 * them; and PGD attack steps, the inner loop of adversarial training and
 * robust evaluation. bench/torch_reference.py --steps times the same steps
 * in PyTorch.
 *
 *   resnet18-224      resnet18, imagenet stem, 224x224, batch 32, 1000 classes
 *   resnet50-224      resnet50, imagenet stem, 224x224, batch 32, 1000 classes
 *   resnet18-cifar32  resnet18, cifar stem,    32x32,   batch 128,  10 classes
 *   pgd-resnet18-224  PGD-Linf steps on resnet18-224's model (inference mode)
 *
 * A step is rb_engine_forward(training) + rb_engine_backward(weights) +
 * rb_sgd_step (momentum 0.9, weight decay 5e-4, lr 0.01). Figures are the
 * median of several steps after a warm-up step. FLOPs are what the
 * convolutions and the classifier run (training_step_gflop): two per
 * multiply-accumulate of forward, backward-data and backward-weights,
 * without the first convolution's backward-data, which training never runs.
 * Batch-norm, ReLU, pooling, loss and SGD are not counted.
 *
 * A PGD step is what rb_attack_run repeats: rb_engine_forward (inference:
 * running statistics), rb_engine_backward of the input gradient only (an
 * engine planned data_grads_only, as `robusta attack` plans it), and the
 * pgd-linf plugin's step and projection (eps 4/255, step 1/255, no random
 * start). Each repeat times rb_attacker_run with 10 steps and with 0 steps
 * (the clean and final forwards alone) on the same batch: their difference
 * over 10 is one step, exactly. FLOPs: 2 x 2 x forward MACs x batch
 * (forward and backward-data; the first convolution's backward-data runs
 * here, since the input gradient is the point).
 *
 * Every configuration runs in each arithmetic asked for (--precision f32,
 * f32-direct, bf16, tuned, auto, or all, the default, in that order;
 * robusta/engine.h, robusta/tune.h): f32 is the engine's static rules
 * (Winograd for the 3x3 stride-1 convolutions, direct for the rest),
 * f32-direct runs every convolution direct, as PyTorch does, bf16 is mixed
 * precision (direct), tuned is f32 with the kernels chosen by measurement
 * (--tune cached: the plan cache of RB_PLAN_CACHE or the user's cache
 * folder, measured when missing) and auto the same choosing bf16 where it
 * is faster (--precision auto). The words line gives the engine's planning
 * time (the tuning included, when a plan is measured). GFLOP/s
 * counts direct convolution's FLOPs in all three. PEAK_MIB is the process's peak resident memory while the
 * configuration ran, model and images included (benchutil.h's
 * reset_peak_rss; torch_reference.py measures PyTorch the same way). Each
 * configuration and arithmetic runs in a process of its own (the program
 * runs itself with the hidden --single), as torch_reference.py runs each
 * PyTorch row: otherwise what the earlier ones left (oneDNN's primitive
 * cache, the allocator's free lists) would count in the later ones' peak.
 *
 * Prints, per configuration and arithmetic, a machine-readable line
 *     perf,train_step,CONFIG,mbBATCHihSIZE,MS,IMAGES/S,GFLOP/S,THREADS,REPEATS,ARITHMETIC,PEAK_MIB
 *     perf,pgd_step,CONFIG,mbBATCHihSIZE,MS,STEPS/S,GFLOP/S,THREADS,REPEATS,ARITHMETIC,PEAK_MIB
 * and a line in words. Never fails on time.
 *
 *   bench_train [--quick] [--threads N] [--only CONFIG] [--repeats N]
 *               [--batch N] [--size N] [--precision f32|f32-direct|bf16|tuned|auto|all]
 * (--batch and --size override every configuration's, for short trials;
 * plugins come from RB_PLUGIN_PATH, then the install folder.) */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <robusta/robusta.h>

#include "benchutil.h"

#define MAX_REPEATS 64
#define PGD_STEPS 10

typedef struct arithmetic {
    const char *name;
    rb_engine_options engine; /* precision and conv_algorithm */
} arithmetic;

static const arithmetic arithmetics[] = {
    {"f32", {.precision = RB_PRECISION_F32, .conv_algorithm = RB_CONV_WINOGRAD}},
    {"f32-direct", {.precision = RB_PRECISION_F32, .conv_algorithm = RB_CONV_DIRECT}},
    {"bf16", {.precision = RB_PRECISION_BF16}},
    {"tuned", {.precision = RB_PRECISION_F32, .conv_algorithm = RB_CONV_WINOGRAD, .tune = RB_TUNE_CACHED}},
    {"auto", {.precision = RB_PRECISION_AUTO, .conv_algorithm = RB_CONV_WINOGRAD, .tune = RB_TUNE_CACHED}},
};
static const arithmetic *arith; /* the one being run */

/* The engine options for this run: the arithmetic's, with these. */
static rb_engine_options engine_options(int threads, bool data_grads_only)
{
    rb_engine_options o = arith->engine;
    o.threads = threads;
    o.data_grads_only = data_grads_only;
    return o;
}

typedef struct config {
    const char *name;
    const char *preset;
    const char *stem;
    int64_t size, batch, classes;
    bool pgd; /* PGD attack steps instead of training steps */
} config;

static const config configs[] = {
    {"resnet18-224", "resnet18", "imagenet", 224, 32, 1000, false},
    {"resnet50-224", "resnet50", "imagenet", 224, 32, 1000, false},
    {"resnet18-cifar32", "resnet18", "cifar", 32, 128, 10, false},
    {"pgd-resnet18-224", "resnet18", "imagenet", 224, 32, 1000, true},
};

static int fail(const char *what)
{
    fprintf(stderr, "bench_train: %s: %s\n", what, rb_last_error());
    return 1;
}

/* Deterministic images in [0, 1) and labels spread over the classes. */
static void fill(float *images, size_t n, int64_t *labels, int64_t batch, int64_t classes)
{
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        images[i] = (float)(x >> 8) * (1.0f / 16777216.0f);
    }
    for (int64_t i = 0; i < batch; i++)
        labels[i] = (i * 7919) % classes;
}

/* PGD steps: see the header comment. */
static int run_pgd(const rb_registry *reg, const config *c, rb_model *model, const float *images,
                   const int64_t *labels, int threads, int repeats)
{
    rb_engine *engine = NULL;
    rb_attacker *attacker = NULL;
    rb_params *params = NULL;
    const rb_plugin *pgd;
    rb_attack_options o = rb_attack_options_default();
    rb_attack_stats st;
    size_t pixels = (size_t)c->batch * 3 * (size_t)c->size * (size_t)c->size;
    float *adv = malloc(pixels * sizeof(float));
    double times[MAX_REPEATS], flop;
    uint64_t counts[RB_PRIM_KIND_COUNT];
    int rc = 1;

    if (adv == NULL) {
        fprintf(stderr, "bench_train: %s: out of memory\n", c->name);
        return 1;
    }
    if (rb_registry_find(reg, RB_PLUGIN_ATTACK, "pgd-linf", &pgd) != RB_OK ||
        rb_params_create(&params, pgd->params) != RB_OK || rb_params_set(params, "eps", "4/255") != RB_OK ||
        rb_params_set(params, "step-size", "1/255") != RB_OK ||
        rb_engine_create(&engine, rb_model_graph(model), c->batch,
                         (const rb_engine_options[]){engine_options(threads, true)}) != RB_OK ||
        rb_attacker_create(&attacker, engine, model) != RB_OK) {
        rc = fail(c->name);
        goto done;
    }
    flop = 2.0 * 2.0 * (double)rb_graph_forward_macs(rb_model_graph(model)) * (double)c->batch * 1e-9;
    o.steps = 1; /* warm-up */
    if (rb_attacker_run(attacker, pgd, params, &o, images, labels, c->batch, adv, NULL, &st) != RB_OK) {
        rc = fail(c->name);
        goto done;
    }
    for (int r = 0; r < repeats; r++) {
        double t0, t_steps, t_none;
        o.steps = PGD_STEPS;
        t0 = now();
        if (rb_attacker_run(attacker, pgd, params, &o, images, labels, c->batch, adv, NULL, &st) != RB_OK) {
            rc = fail(c->name);
            goto done;
        }
        t_steps = now() - t0;
        o.steps = 0;
        t0 = now();
        if (rb_attacker_run(attacker, pgd, params, &o, images, labels, c->batch, adv, NULL, &st) != RB_OK) {
            rc = fail(c->name);
            goto done;
        }
        t_none = now() - t0;
        times[r] = (t_steps - t_none) / PGD_STEPS;
    }
    /* What one step executes in a long attack: a run of 2 steps minus one of
     * 1 (the first step also converts the held weights for backward). */
    {
        uint64_t none[RB_PRIM_KIND_COUNT];
        o.steps = 1;
        rb_engine_reset_primitive_counts(engine);
        (void)rb_attacker_run(attacker, pgd, params, &o, images, labels, c->batch, adv, NULL, &st);
        rb_engine_primitive_counts(engine, none);
        o.steps = 2;
        rb_engine_reset_primitive_counts(engine);
        (void)rb_attacker_run(attacker, pgd, params, &o, images, labels, c->batch, adv, NULL, &st);
        rb_engine_primitive_counts(engine, counts);
        for (int k = 0; k < RB_PRIM_KIND_COUNT; k++)
            counts[k] -= none[k];
    }
    {
        double t = median(times, repeats);
        double peak = peak_rss_mib();
        printf("perf,pgd_step,%s,mb%lldih%lld,%.1f,%.2f,%.1f,%d,%d,%s,%.0f\n", c->name, (long long)c->batch,
               (long long)c->size, t * 1e3, 1.0 / t, flop / t, threads, repeats, arith->name, peak);
        printf("%s, %s: %.1f ms per PGD step, %.2f steps/s, %.1f images x steps/s (pgd-linf eps 4/255, step 1/255; "
               "%s stem, %lldx%lld, batch %lld; %.1f GFLOP per step; arena %.0f MiB, peak resident %.0f MiB; %s)\n",
               c->name, arith->name, t * 1e3, 1.0 / t, (double)c->batch / t, c->stem,
               (long long)c->size, (long long)c->size, (long long)c->batch, flop,
               (double)rb_engine_arena_bytes(engine) / (1 << 20), peak, rb_engine_threads(engine));
        printf("# %s: primitives per step:", c->name);
        for (int k = 0; k < RB_PRIM_KIND_COUNT; k++)
            if (counts[k] > 0)
                printf(" %s %llu;", rb_engine_primitive_kind_str((rb_engine_primitive_kind)k),
                       (unsigned long long)counts[k]);
        printf("\n");
        fflush(stdout);
    }
    rc = 0;
done:
    rb_attacker_destroy(attacker);
    rb_engine_destroy(engine);
    rb_params_destroy(params);
    free(adv);
    return rc;
}

static int run_config(const rb_registry *reg, const config *c, int threads, int repeats)
{
    const rb_plugin *arch;
    const char *preset;
    rb_params *params = NULL;
    rb_model *model = NULL;
    rb_engine *engine = NULL;
    rb_sgd *sgd = NULL;
    rb_model_input input = rb_model_input_imagenet(c->size, c->size);
    char classes[32];
    double times[MAX_REPEATS], parts[3][MAX_REPEATS], flop; /* parts: forward, backward, SGD */
    size_t pixels = (size_t)c->batch * 3 * (size_t)c->size * (size_t)c->size;
    float *images = malloc(pixels * sizeof(float));
    int64_t *labels = malloc((size_t)c->batch * sizeof(int64_t));
    double plan_seconds = 0;
    int rc = 1;

    reset_peak_rss(); /* this configuration's peak, images and model included */
    snprintf(classes, sizeof classes, "%lld", (long long)c->classes);
    if (images == NULL || labels == NULL) {
        fprintf(stderr, "bench_train: %s: out of memory\n", c->name);
        goto done;
    }
    fill(images, pixels, labels, c->batch, c->classes);
    if (rb_arch_resolve(reg, c->preset, &arch, &preset) != RB_OK) {
        rc = fail(c->name);
        goto done;
    }
    if (rb_params_create(&params, arch->params) != RB_OK ||
        (preset != NULL && rb_params_set(params, "preset", preset) != RB_OK) ||
        rb_params_set(params, "stem", c->stem) != RB_OK || rb_params_set(params, "num-classes", classes) != RB_OK ||
        rb_model_create(&model, arch, params, &input) != RB_OK ||
        rb_graph_init_params(rb_model_graph(model), 1) != RB_OK) {
        rc = fail(c->name);
        goto done;
    }
    if (c->pgd) {
        rc = run_pgd(reg, c, model, images, labels, threads, repeats);
        goto done;
    }
    plan_seconds = now();
    if (rb_engine_create(&engine, rb_model_graph(model), c->batch, (const rb_engine_options[]){engine_options(threads, false)}) != RB_OK ||
        rb_sgd_create(&sgd, rb_model_graph(model), &(rb_sgd_options){.momentum = 0.9, .weight_decay = 5e-4}) !=
            RB_OK) {
        rc = fail(c->name);
        goto done;
    }
    plan_seconds = now() - plan_seconds;
    flop = training_step_gflop(rb_model_graph(model), c->batch);
    for (int r = 0; r < repeats + 1; r++) { /* step 0 is the warm-up */
        double t0 = now(), t1, t2;
        if (rb_engine_forward(engine, images, c->batch, labels, true) != RB_OK ||
            ((t1 = now()), rb_engine_backward(engine, true, false)) != RB_OK ||
            ((t2 = now()), rb_sgd_step(sgd, 0.01)) != RB_OK) {
            rc = fail(c->name);
            goto done;
        }
        if (r > 0) {
            times[r - 1] = now() - t0;
            parts[0][r - 1] = t1 - t0;
            parts[1][r - 1] = t2 - t1;
            parts[2][r - 1] = t0 + times[r - 1] - t2;
        }
    }
    {
        double t = median(times, repeats), peak = peak_rss_mib();
        printf("perf,train_step,%s,mb%lldih%lld,%.1f,%.1f,%.1f,%d,%d,%s,%.0f\n", c->name, (long long)c->batch,
               (long long)c->size, t * 1e3, (double)c->batch / t, flop / t, threads, repeats,
               arith->name, peak);
        printf("%s, %s: %.1f ms per step, %.1f images/s (%s stem, %lldx%lld, batch %lld, %lld classes; "
               "%.1f GFLOP per step; arena %.0f MiB, peak resident %.0f MiB; %s; last loss %.3f)\n",
               c->name, arith->name, t * 1e3, (double)c->batch / t, c->stem, (long long)c->size,
               (long long)c->size, (long long)c->batch, (long long)c->classes, flop,
               (double)rb_engine_arena_bytes(engine) / (1 << 20), peak, rb_engine_threads(engine),
               rb_engine_mean_loss(engine));
        printf("# %s, %s: medians forward %.1f ms, backward %.1f ms, SGD %.1f ms; engine planned in %.2f s\n",
               c->name, arith->name, median(parts[0], repeats) * 1e3, median(parts[1], repeats) * 1e3,
               median(parts[2], repeats) * 1e3, plan_seconds);
        fflush(stdout);
    }
    rc = 0;
done:
    rb_sgd_destroy(sgd);
    rb_engine_destroy(engine);
    rb_model_destroy(model);
    rb_params_destroy(params);
    free(images);
    free(labels);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_train [--quick] [--threads N] [--only CONFIG] [--repeats N] [--batch N] "
                    "[--size N] [--precision f32|f32-direct|bf16|tuned|auto|all]\nconfigurations:");
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
        fprintf(stderr, " %s", configs[i].name);
    fputc('\n', stderr);
    return 2;
}

int main(int argc, char **argv)
{
    int quick = 0, threads = 0, repeats = 0, single = 0, rc = 0;
    long long batch = 0, size = 0;
    const char *only = NULL, *precisions = "all";
    rb_registry *reg;
    rb_topology *topo;
    rb_thread_plan *plan;
    char plan_text[160];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--single") == 0)
            single = 1;
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = atoll(argv[++i]);
        else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
            size = atoll(argv[++i]);
        else if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc)
            precisions = argv[++i];
        else
            return usage();
    }
    if (repeats == 0)
        repeats = quick ? 3 : 5;
    if (repeats < 1 || repeats > MAX_REPEATS || threads < 0 || batch < 0 || size < 0) {
        fprintf(stderr, "bench_train: --repeats must be in [1, %d]; --threads, --batch, --size positive\n",
                MAX_REPEATS);
        return 2;
    }
    {
        int known = strcmp(precisions, "all") == 0;
        for (size_t a = 0; a < sizeof arithmetics / sizeof arithmetics[0]; a++)
            known |= strcmp(precisions, arithmetics[a].name) == 0;
        if (!known)
            return usage();
    }
    if (only != NULL) {
        int known = 0;
        for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
            known |= strcmp(configs[i].name, only) == 0;
        if (!known)
            return usage();
    }
    /* The same plan the engine makes, to say how many threads ran. */
    if (rb_topology_create(&topo, NULL) != RB_OK || rb_thread_plan_create(&plan, topo, threads, -1) != RB_OK)
        return fail("threads");
    threads = rb_thread_plan_count(plan);
    rb_thread_plan_describe(plan, plan_text, sizeof plan_text);
    rb_thread_plan_destroy(plan);
    rb_topology_destroy(topo);
    if (rb_log_init_from_env() != RB_OK) /* RB_LOG=debug: the engines' arena breakdown */
        return fail("RB_LOG");
    /* Loaded here in the parent too, so that missing plugins fail once,
     * before any line is printed, instead of once per configuration. */
    if (rb_registry_create(&reg) != RB_OK || rb_registry_load_default(reg) != RB_OK)
        return fail("plugins");

    if (single) { /* one configuration and arithmetic, named by --only and --precision */
        for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
            for (size_t a = 0; a < sizeof arithmetics / sizeof arithmetics[0]; a++)
                if (only != NULL && strcmp(configs[i].name, only) == 0 &&
                    strcmp(precisions, arithmetics[a].name) == 0) {
                    config c = configs[i];
                    if (batch > 0)
                        c.batch = batch;
                    if (size > 0)
                        c.size = size;
                    arith = &arithmetics[a];
                    rc = run_config(reg, &c, threads, repeats);
                    rb_registry_destroy(reg);
                    return rc;
                }
        rb_registry_destroy(reg);
        return usage();
    }
    rb_registry_destroy(reg);

    printf("# robusta %s, %s; one step = forward (training) + backward (weights) + SGD (momentum 0.9, "
           "wd 5e-4); median of %d after 1 warm-up\n",
           rb_version_string(), plan_text, repeats);
    printf("# GFLOP/s = 3 x 2 x forward MACs (convolutions + classifier) x batch / step time\n");
    printf("# perf,train_step,config,shape,ms,images/s,GFLOP/s,threads,repeats,arithmetic,peak_MiB\n");
    printf("# PGD: one step = forward (inference) + backward (input only) + pgd-linf step and projection;"
           " (time of %d steps - time of 0) / %d; GFLOP/s = 2 x 2 x forward MACs x batch / step time\n",
           PGD_STEPS, PGD_STEPS);
    printf("# perf,pgd_step,config,shape,ms,steps/s,GFLOP/s,threads,repeats,arithmetic,peak_MiB\n");
    fflush(stdout);
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        if (only != NULL && strcmp(configs[i].name, only) != 0)
            continue;
        for (size_t a = 0; a < sizeof arithmetics / sizeof arithmetics[0]; a++) {
            char threads_text[16], repeats_text[16], batch_text[24], size_text[24];
            const char *child[16] = {"bench_train", "--single", "--only", configs[i].name, "--precision",
                                     arithmetics[a].name, "--threads", threads_text, "--repeats", repeats_text};
            int n = 10, status;
            pid_t pid;
            if (strcmp(precisions, "all") != 0 && strcmp(precisions, arithmetics[a].name) != 0)
                continue;
            if (!rb_precision_available(arithmetics[a].engine.precision)) {
                printf("skipped %s %s: this CPU's oneDNN has no %s convolutions\n", configs[i].name,
                       arithmetics[a].name, rb_precision_str(arithmetics[a].engine.precision));
                continue;
            }
            snprintf(threads_text, sizeof threads_text, "%d", threads);
            snprintf(repeats_text, sizeof repeats_text, "%d", repeats);
            snprintf(batch_text, sizeof batch_text, "%lld", batch);
            snprintf(size_text, sizeof size_text, "%lld", size);
            if (batch > 0) {
                child[n++] = "--batch";
                child[n++] = batch_text;
            }
            if (size > 0) {
                child[n++] = "--size";
                child[n++] = size_text;
            }
            child[n] = NULL;
            fflush(stdout);
            pid = fork();
            if (pid == 0) {
                execv("/proc/self/exe", (char *const *)child);
                perror("bench_train: /proc/self/exe");
                _exit(127);
            }
            if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "bench_train: %s, %s failed\n", configs[i].name, arithmetics[a].name);
                rc = 1;
            }
        }
    }
    return rc;
}
