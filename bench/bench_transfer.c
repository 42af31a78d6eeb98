/* Fixed-feature transfer with and without the feature cache: the same run
 * (robusta/train.h, "Transfer") timed both ways. With the cache the backbone
 * runs once per image (plus once over the test split) and each epoch trains
 * the head alone; without it every training step runs the frozen backbone.
 * Each is run with the head on the pooled features (the default) and on
 * stage3 (classify --stage stage3: 64 x 7 x 7 values per image cached
 * instead of 128), and the caches in f32 and in bf16.
 *
 * The source is a freshly initialized resnet18 (cifar stem, width 0.25,
 * 5 classes) saved to a temporary folder; the target is 1000 synthetic
 * 28x28 grayscale images of 5 classes (200 test), so no dataset is needed.
 * A run is 10 epochs, batch 64, of `robusta transfer --mode fixed`'s defaults.
 *
 * Prints, per variant (cached, cached-bf16, uncached, and the same with a
 * stage3- prefix), the machine-readable line
 *     perf,transfer_fixed,VARIANT,EPOCHS,SECONDS_TOTAL,SECONDS_PER_EPOCH
 * (median of --repeats runs, total including feature extraction), then the
 * speed-ups. Never fails on time.
 *
 *   bench_transfer [--repeats N] [--threads N] [--epochs N] */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <robusta/robusta.h>

#include "benchutil.h"

#define MAX_REPEATS 16

static int fail(const char *what)
{
    fprintf(stderr, "bench_transfer: %s: %s\n", what, rb_last_error());
    return 1;
}

/* Images with a class-dependent bright row, so the head has something to learn. */
static int write_data(const char *dir, const char *x, const char *y, int64_t n, uint64_t seed)
{
    unsigned char *img = malloc((size_t)n * 28 * 28);
    uint8_t *lab = malloc((size_t)n);
    char px[4200], py[4200];
    rb_rng r;
    rb_status s;
    if (img == NULL || lab == NULL)
        return -1;
    rb_rng_init(&r, seed, 1, 0);
    for (int64_t i = 0; i < n; i++) {
        lab[i] = (uint8_t)(i % 5);
        for (int p = 0; p < 28 * 28; p++)
            img[i * 784 + p] = (unsigned char)((p / 28 == 4 + 4 * (int)lab[i] ? 200 : 40) + 40 * rb_rng_uniform(&r));
    }
    snprintf(px, sizeof px, "%s/%s", dir, x);
    snprintf(py, sizeof py, "%s/%s", dir, y);
    s = rb_npy_save(px, RB_DTYPE_U8, 3, (const int64_t[]){n, 28, 28}, img);
    if (s == RB_OK)
        s = rb_npy_save(py, RB_DTYPE_U8, 1, (const int64_t[]){n}, lab);
    free(img);
    free(lab);
    return s == RB_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
    int repeats = 3, threads = 0;
    int64_t epochs = 10;
    char dir[] = "/tmp/bench-transfer-XXXXXX", source[4200], data[16800], out[4200];
    rb_registry *reg = NULL;
    const rb_plugin *arch, *task;
    const char *preset;
    rb_params *params;
    rb_model *model;
    rb_model_input in = {.channels = 1, .height = 28, .width = 28, .mean = {0.3f}, .std = {0.3f}};
    enum { VARIANTS = 6 };
    static const char *const names[VARIANTS] = {"cached", "cached-bf16", "uncached",
                                                "stage3-cached", "stage3-cached-bf16", "stage3-uncached"};
    static const rb_feature_cache caches[VARIANTS] = {RB_FEATURE_CACHE_F32, RB_FEATURE_CACHE_BF16,
                                                      RB_FEATURE_CACHE_OFF, RB_FEATURE_CACHE_F32,
                                                      RB_FEATURE_CACHE_BF16, RB_FEATURE_CACHE_OFF};
    rb_params *stage3 = NULL;
    double totals[VARIANTS][MAX_REPEATS], per_epoch[VARIANTS][MAX_REPEATS];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--epochs") == 0 && i + 1 < argc)
            epochs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0)
            repeats = 1;
        else {
            fprintf(stderr, "usage: bench_transfer [--repeats N] [--threads N] [--epochs N] [--quick]\n");
            return 2;
        }
    }
    if (repeats < 1 || repeats > MAX_REPEATS || epochs < 1)
        return fprintf(stderr, "bench_transfer: --repeats must lie in [1, %d], --epochs >= 1\n", MAX_REPEATS), 2;
    rb_log_set_level(RB_LOG_WARN);
    if (mkdtemp(dir) == NULL)
        return fail("mkdtemp");
    if (rb_registry_create(&reg) != RB_OK || rb_registry_load_default(reg) != RB_OK)
        return fail("plugins");
    if (rb_arch_resolve(reg, "resnet18", &arch, &preset) != RB_OK ||
        rb_registry_find(reg, RB_PLUGIN_TASK, "classify", &task) != RB_OK)
        return fail("resnet18 and classify plugins");
    if (rb_params_create(&params, arch->params) != RB_OK || rb_params_set(params, "preset", preset) != RB_OK ||
        rb_params_set(params, "stem", "cifar") != RB_OK || rb_params_set(params, "width", "0.25") != RB_OK ||
        rb_params_set(params, "num-classes", "5") != RB_OK)
        return fail("parameters");
    snprintf(source, sizeof source, "%s/source.rbt", dir);
    if (rb_model_create(&model, arch, params, &in) != RB_OK || rb_graph_init_params(rb_model_graph(model), 1) != RB_OK ||
        rb_model_save(model, source) != RB_OK)
        return fail("source model");
    rb_model_destroy(model);
    if (write_data(dir, "x.npy", "y.npy", 1000, 1) != 0 || write_data(dir, "tx.npy", "ty.npy", 200, 2) != 0)
        return fail("data");
    snprintf(data, sizeof data, "npy:%s/x.npy,%s/y.npy;%s/tx.npy,%s/ty.npy", dir, dir, dir, dir);
    if (rb_params_create(&stage3, task->params) != RB_OK || rb_params_set(stage3, "stage", "stage3") != RB_OK)
        return fail("classify --stage stage3");
    for (int variant = 0; variant < VARIANTS; variant++)
        for (int k = 0; k < repeats; k++) {
            rb_train_config c;
            rb_train_result res;
            double t0;
            c = rb_train_config_default();
            snprintf(out, sizeof out, "%s/run-%d-%d", dir, variant, k);
            c.transfer.source = source;
            c.transfer.registry = reg;
            c.transfer.task = task;
            c.transfer.task_params = variant >= 3 ? stage3 : NULL;
            c.transfer.fixed_features = true;
            c.transfer.feature_cache = caches[variant];
            c.data = data;
            c.out_dir = out;
            c.training.epochs = epochs;
            c.training.batch_size = 64;
            c.training.eval_batch_size = 256;
            c.training.lr = 0.01;
            c.training.momentum = 0.9;
            c.training.weight_decay = 5e-4;
            c.threads = threads;
            c.loader_threads = 1;
            c.augment = false; /* else no feature cache */
            c.quiet = true;
            t0 = now();
            if (rb_train(&c, &res) != RB_OK)
                return fail("transfer");
            totals[variant][k] = now() - t0;
            per_epoch[variant][k] = res.seconds_per_epoch;
        }
    for (int variant = 0; variant < VARIANTS; variant++) {
        qsort(totals[variant], (size_t)repeats, sizeof(double), compare_doubles);
        qsort(per_epoch[variant], (size_t)repeats, sizeof(double), compare_doubles);
        printf("perf,transfer_fixed,%s,%lld,%.3f,%.4f\n", names[variant], (long long)epochs,
               totals[variant][repeats / 2], per_epoch[variant][repeats / 2]);
    }
    for (int base = 0; base < VARIANTS; base += 3)
        printf("fixed-feature transfer, resnet18 w0.25, head on %s, 1000 images 28x28, %lld epochs: cached %.2f s "
               "(bf16 %.2f s), uncached %.2f s in all (%.1fx faster); per epoch %.4f s (bf16 %.4f s) vs %.3f s "
               "(%.0fx), median of %d\n",
               base == 0 ? "the pooled features" : "stage3", (long long)epochs, totals[base][repeats / 2],
               totals[base + 1][repeats / 2], totals[base + 2][repeats / 2],
               totals[base + 2][repeats / 2] / totals[base][repeats / 2], per_epoch[base][repeats / 2],
               per_epoch[base + 1][repeats / 2], per_epoch[base + 2][repeats / 2],
               per_epoch[base + 2][repeats / 2] / per_epoch[base][repeats / 2], repeats);
    {
        char cmd[4300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_transfer: could not remove %s\n", dir);
    }
    rb_params_destroy(stage3);
    rb_params_destroy(params);
    rb_registry_destroy(reg);
    return 0;
}
