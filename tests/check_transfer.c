/* robusta transfer and the classify task plugin: fixed-feature and
 * full-network modes, the feature cache, batch-norm statistics, resume,
 * eval on a transferred model, and the refusals. */
#include "config.h"

#include <math.h>

#include <json-c/json.h>

#include <robusta/robusta.h>

#include "testdata.h"
#include "testutil.h"

#define RUN(r, ...) run_robusta(r, NULL, (const char *const[]){__VA_ARGS__, NULL})

static run_result r;
static char dir[256];
static char source_data[2048], target_data[2048], one_class_data[2048];
static char source_model[PATH_MAX];


static void in_dir(char *out, const char *a, const char *b)
{
    if (b != NULL)
        snprintf(out, PATH_MAX, "%s/%s/%s", dir, a, b);
    else
        snprintf(out, PATH_MAX, "%s/%s", dir, a);
}

/* One source model for the whole suite (training it is the slow part). */
static void setup_once(void)
{
    char out[PATH_MAX];
    make_temp_dir(dir, sizeof dir);
    write_bar_images(dir, "sx.npy", "sy.npy", 96, 4, 0, 1);
    write_bar_images(dir, "stx.npy", "sty.npy", 32, 4, 0, 2);
    write_bar_images(dir, "tx.npy", "ty.npy", 48, 3, 4, 3);
    write_bar_images(dir, "ttx.npy", "tty.npy", 30, 3, 4, 4);
    write_bar_images(dir, "ox.npy", "oy.npy", 20, 1, 4, 5);
    snprintf(source_data, sizeof source_data, "npy:%s/sx.npy,%s/sy.npy;%s/stx.npy,%s/sty.npy", dir, dir, dir, dir);
    snprintf(target_data, sizeof target_data, "npy:%s/tx.npy,%s/ty.npy;%s/ttx.npy,%s/tty.npy", dir, dir, dir, dir);
    snprintf(one_class_data, sizeof one_class_data, "npy:%s/ox.npy,%s/oy.npy", dir, dir);
    in_dir(out, "source", NULL);
    RUN(&r, "train", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--data", source_data, "--out", out,
        "--epochs", "2", "--batch-size", "16", "--lr", "0.05", "--threads", "1", "--seed", "3");
    ck_assert_msg(r.code == 0, "source training failed: %s", r.err);
    in_dir(source_model, "source", "model.rbt");
}

static void teardown_once(void)
{
    remove_temp_dir(dir);
}

#define TRANSFER(res, out, ...)                                                                              \
    RUN(res, "transfer", "--source", source_model, "--data", target_data, "--out", out, "--epochs", "4",   \
        "--batch-size", "8", "--threads", "1", "--seed", "5", "--schedule", "constant" __VA_ARGS__)

static rb_checkpoint *load(const char *run, const char *file)
{
    char path[PATH_MAX];
    rb_checkpoint *ck;
    in_dir(path, run, file);
    ck_assert_msg(rb_checkpoint_load(&ck, path, 0) == RB_OK, "%s: %s", path, rb_last_error());
    return ck;
}

/* Largest |a - b| over a tensor present in both, relative to max |a|. */
static double tensor_diff(const rb_checkpoint *a, const rb_checkpoint *b, const char *name)
{
    rb_checkpoint_tensor ta, tb;
    double d = 0, m = 0;
    ck_assert_msg(rb_checkpoint_find(a, name, &ta) == RB_OK, "no %s", name);
    ck_assert_msg(rb_checkpoint_find(b, name, &tb) == RB_OK, "no %s", name);
    ck_assert_int_eq(ta.numel, tb.numel);
    for (int64_t i = 0; i < ta.numel; i++) {
        double x = ((const float *)ta.data)[i], y = ((const float *)tb.data)[i];
        d = fmax(d, fabs(x - y));
        m = fmax(m, fabs(x));
    }
    return m > 0 ? d / m : d;
}

/* Whether every tensor of `a` whose name starts with none of the `except`
 * prefixes is bit-identical in `b`. Returns the first differing name. */
static const char *first_different(const rb_checkpoint *a, const rb_checkpoint *b, const char *except)
{
    for (size_t i = 0; i < rb_checkpoint_count(a); i++) {
        rb_checkpoint_tensor ta, tb;
        rb_checkpoint_get(a, i, &ta);
        if (strncmp(ta.name, except, strlen(except)) == 0 || strncmp(ta.name, "state.", 6) == 0)
            continue;
        if (rb_checkpoint_find(b, ta.name, &tb) != RB_OK || tb.nbytes != ta.nbytes ||
            memcmp(ta.data, tb.data, ta.nbytes) != 0)
            return ta.name;
    }
    return NULL;
}

static json_object *read_json(const char *run, const char *file)
{
    char path[PATH_MAX];
    json_object *j;
    in_dir(path, run, file);
    j = json_object_from_file(path);
    ck_assert_msg(j != NULL, "%s does not parse", path);
    return j;
}

static double member(json_object *o, const char *key)
{
    json_object *v;
    ck_assert_msg(json_object_object_get_ex(o, key, &v), "no member %s", key);
    return json_object_get_double(v);
}

/* training.transfer.feature_cache of a run's model.rbt. */
static bool feature_cache(const char *run)
{
    rb_checkpoint *ck = load(run, "model.rbt");
    json_object *meta = json_tokener_parse(rb_checkpoint_metadata(ck)), *tr, *t, *v;
    bool cached;
    ck_assert(meta != NULL);
    ck_assert(json_object_object_get_ex(meta, "training", &tr) && json_object_object_get_ex(tr, "transfer", &t) &&
              json_object_object_get_ex(t, "feature_cache", &v));
    cached = json_object_get_boolean(v);
    json_object_put(meta);
    rb_checkpoint_destroy(ck);
    return cached;
}

START_TEST(fixed_feature_cached_and_uncached_train_the_same_head_on_a_frozen_backbone)
{
    char a[PATH_MAX], b[PATH_MAX], path[PATH_MAX];
    rb_checkpoint *src, *ca, *cb;
    const char *diff;
    json_object *cfg, *metrics;

    in_dir(a, "cached", NULL);
    in_dir(b, "uncached", NULL);
    TRANSFER(&r, a, , "--lr", "0.05");
    ck_assert_msg(r.code == 0, "cached transfer failed: %s", r.err);
    ck_assert_msg(feature_cache("cached"), "the cache was not used");
    TRANSFER(&r, b, , "--lr", "0.05", "--feature-cache", "off");
    ck_assert_msg(r.code == 0, "uncached transfer failed: %s", r.err);
    ck_assert_msg(!feature_cache("uncached"), "--feature-cache off cached");
    ck_assert_int_eq(rb_checkpoint_load(&src, source_model, 0), RB_OK);
    ca = load("cached", "model.rbt");
    cb = load("uncached", "model.rbt");
    /* The head: same initialization, order and SGD; only the batches the
     * backbone saw differ (feature batch vs training batch), which may change
     * oneDNN's summation order by a rounding step (1e-7 relative) per
     * feature. 16 SGD steps keep that far below 1e-5. */
    ck_assert_msg(tensor_diff(ca, cb, "fc.weight") < 1e-5, "fc.weight differs by %g",
                  tensor_diff(ca, cb, "fc.weight"));
    ck_assert_msg(tensor_diff(ca, cb, "fc.bias") < 1e-5, "fc.bias differs by %g", tensor_diff(ca, cb, "fc.bias"));
    /* The head learned something: it moved away from its initialization. */
    {
        rb_checkpoint *last = load("cached", "last.rbt");
        ck_assert_msg(tensor_diff(ca, last, "fc.weight") == 0, "last.rbt is not the final head");
        rb_checkpoint_destroy(last);
    }
    /* The backbone, batch-norm statistics included, is the source's, bit for bit. */
    diff = first_different(ca, src, "fc.");
    ck_assert_msg(diff == NULL, "fixed-feature changed backbone tensor %s", diff);
    diff = first_different(cb, src, "fc.");
    ck_assert_msg(diff == NULL, "uncached fixed-feature changed backbone tensor %s", diff);
    /* The new head has the target's 3 classes. */
    {
        rb_checkpoint_tensor t;
        ck_assert_int_eq(rb_checkpoint_find(ca, "fc.bias", &t), RB_OK);
        ck_assert_int_eq(t.numel, 3);
    }
    cfg = read_json("cached", "config.json");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(cfg, "command")), "transfer");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(cfg, "mode")), "fixed");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(cfg, "bn_stats")), "frozen");
    json_object_put(cfg);
    /* metrics.json: the task's metrics agree with eval on the final model. */
    metrics = read_json("cached", "metrics.json");
    in_dir(path, "cached", "model.rbt");
    RUN(&r, "eval", "--ckpt", path, "--data", target_data, "--threads", "1", "--json");
    ck_assert_msg(r.code == 0, "eval of a transferred model failed: %s", r.err);
    {
        json_object *ev = json_tokener_parse(r.out);
        ck_assert(ev != NULL);
        ck_assert_msg(fabs(member(ev, "accuracy") - member(metrics, "accuracy")) < 1e-12, "eval %g vs metrics %g",
                      member(ev, "accuracy"), member(metrics, "accuracy"));
        ck_assert_msg(member(metrics, "accuracy") > 0.6, "the head did not learn: accuracy %g",
                      member(metrics, "accuracy"));
        (void)member(metrics, "balanced_accuracy");
        (void)member(metrics, "class_accuracy.2");
        json_object_put(ev);
    }
    json_object_put(metrics);
    rb_checkpoint_destroy(src);
    rb_checkpoint_destroy(ca);
    rb_checkpoint_destroy(cb);
}
END_TEST

/* --precision bf16: the features are extracted in bf16 (the cached head
 * then differs from fp32's), the backbone stays the source's bit for bit,
 * the head still learns, and the run records its precision. */
START_TEST(bf16_fixed_feature_transfer_learns_and_keeps_the_backbone)
{
    char a[PATH_MAX], b[PATH_MAX];
    rb_checkpoint *src, *c16, *c32;
    json_object *cfg, *metrics;
    in_dir(a, "fixed-bf16", NULL);
    in_dir(b, "fixed-f32", NULL);
    if (!rb_precision_available(RB_PRECISION_BF16)) {
        /* a CPU without oneDNN's bf16 convolutions: refused before the run
         * folder exists, in one line */
    TRANSFER(&r, a, , "--lr", "0.05", "--precision", "bf16");
        ck_assert_int_eq(r.code, 2);
        ck_assert_msg(count_lines(r.err) == 1 && strstr(r.err, "no bf16 convolutions") != NULL, "%s", r.err);
        ck_assert_int_eq(access(a, F_OK), -1);
        printf("SKIP: bf16 transfer (this CPU's oneDNN has no bf16 convolutions; the refusal checked)\n");
        return;
    }
    TRANSFER(&r, a, , "--lr", "0.05", "--precision", "bf16");
    ck_assert_msg(r.code == 0, "bf16 transfer failed: %s", r.err);
    TRANSFER(&r, b, , "--lr", "0.05");
    ck_assert_msg(r.code == 0, "f32 transfer failed: %s", r.err);
    ck_assert_int_eq(rb_checkpoint_load(&src, source_model, 0), RB_OK);
    c16 = load("fixed-bf16", "model.rbt");
    c32 = load("fixed-f32", "model.rbt");
    ck_assert_msg(first_different(c16, src, "fc.") == NULL, "bf16 fixed-feature changed the backbone");
    /* bf16 features round at 2^-9: the heads differ, but not by much */
    ck_assert_msg(tensor_diff(c16, c32, "fc.weight") > 0, "the bf16 head equals the f32 one: no bf16 ran");
    ck_assert_msg(tensor_diff(c16, c32, "fc.weight") < 0.1, "the bf16 head is far from the f32 one (%g)",
                  tensor_diff(c16, c32, "fc.weight"));
    cfg = read_json("fixed-bf16", "config.json");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(cfg, "precision")), "bf16");
    json_object_put(cfg);
    metrics = read_json("fixed-bf16", "metrics.json");
    ck_assert_msg(member(metrics, "accuracy") > 0.6, "the bf16 head did not learn: accuracy %g",
                  member(metrics, "accuracy"));
    json_object_put(metrics);
    rb_checkpoint_destroy(src);
    rb_checkpoint_destroy(c16);
    rb_checkpoint_destroy(c32);
}
END_TEST

/* training.transfer.feature_cache_dtype of a run's model.rbt (NULL: null). */
static char *feature_cache_dtype(const char *run)
{
    rb_checkpoint *ck = load(run, "model.rbt");
    json_object *meta = json_tokener_parse(rb_checkpoint_metadata(ck)), *tr, *t, *v;
    char *dtype;
    ck_assert(meta != NULL);
    ck_assert(json_object_object_get_ex(meta, "training", &tr) && json_object_object_get_ex(tr, "transfer", &t) &&
              json_object_object_get_ex(t, "feature_cache_dtype", &v));
    dtype = v != NULL ? strdup(json_object_get_string(v)) : NULL;
    json_object_put(meta);
    rb_checkpoint_destroy(ck);
    return dtype;
}

/* The number of elements of a tensor of a run's model.rbt in dimension 1. */
static int64_t tensor_dim1(const char *run, const char *name)
{
    rb_checkpoint *ck = load(run, "model.rbt");
    rb_checkpoint_tensor t;
    int64_t d;
    ck_assert_msg(rb_checkpoint_find(ck, name, &t) == RB_OK, "no %s in %s", name, run);
    d = t.shape[1];
    rb_checkpoint_destroy(ck);
    return d;
}

/* A head on a stage (classify --stage): the cache holds that stage's
 * C x H x W, and the cached head is the uncached one.
 *
 * Why equal: the detached head (global pool, then fc) runs the same ops in
 * the same order on the same values as the whole model's head, and the
 * loader's shuffling, the initialization and SGD are the same. What could
 * differ are the features: the cache computes them on an inference engine
 * of --eval-batch-size images, the uncached run on the training engine of
 * --batch-size. With both batches 8 the convolutions are the same
 * primitives, so the heads must be bit-identical. With the default
 * evaluation batch (256, capped to the 48 training images) oneDNN may block
 * a convolution differently, moving a feature by a rounding step (2^-24
 * relative); 16 SGD steps on such features stay far below 1e-6 relative.
 * Measured on AMD EPYC (Zen 5), 1 thread: bit-identical both ways. */
START_TEST(stage_heads_train_the_same_on_cached_and_uncached_features)
{
    char a[PATH_MAX], b[PATH_MAX], path[PATH_MAX];
    rb_checkpoint *src, *ca, *cb;
    json_object *metrics;
    const char *diff;

    in_dir(a, "stage3-cached", NULL);
    in_dir(b, "stage3-uncached", NULL);
    TRANSFER(&r, a, , "-v", "--lr", "0.05", "--stage", "stage3", "--eval-batch-size", "8");
    ck_assert_msg(r.code == 0, "cached stage3 transfer failed: %s", r.err);
    /* 48 + 30 images x 32 x 2 x 2 values x 4 bytes = 39,936 bytes */
    ck_assert_msg(strstr(r.err, "caching stage3 (32 x 2 x 2 values per image, the one stage the head reads) of 48 + "
                                "30 images in f32: 39,936 bytes (0.04 MiB)") != NULL,
                  "no size line: %s", r.err);
    ck_assert_msg(feature_cache("stage3-cached"), "the stage3 cache was not used");
    TRANSFER(&r, b, , "-v", "--lr", "0.05", "--stage", "stage3", "--eval-batch-size", "8", "--feature-cache", "off");
    ck_assert_msg(r.code == 0, "uncached stage3 transfer failed: %s", r.err);
    ck_assert_msg(strstr(r.err, "without a feature cache (--feature-cache off)") != NULL, "%s", r.err);
    ck_assert_msg(strstr(r.err, "caching") == NULL, "--feature-cache off cached: %s", r.err);
    ck_assert_msg(!feature_cache("stage3-uncached"), "--feature-cache off cached");
    ck_assert_int_eq(tensor_dim1("stage3-cached", "fc.weight"), 32); /* the head reads stage3's 32 channels */
    ca = load("stage3-cached", "model.rbt");
    cb = load("stage3-uncached", "model.rbt");
    ck_assert_msg(tensor_diff(ca, cb, "fc.weight") == 0, "fc.weight differs by %g", tensor_diff(ca, cb, "fc.weight"));
    ck_assert_msg(tensor_diff(ca, cb, "fc.bias") == 0, "fc.bias differs by %g", tensor_diff(ca, cb, "fc.bias"));
    ck_assert_int_eq(rb_checkpoint_load(&src, source_model, 0), RB_OK);
    diff = first_different(ca, src, "fc.");
    ck_assert_msg(diff == NULL, "a stage3 head changed backbone tensor %s", diff);
    /* The saved model is whole: eval rebuilds the stage3 head from the task's
     * parameters and agrees with the metrics measured on cached features. */
    metrics = read_json("stage3-cached", "metrics.json");
    in_dir(path, "stage3-cached", "model.rbt");
    RUN(&r, "eval", "--ckpt", path, "--data", target_data, "--threads", "1", "--json");
    ck_assert_msg(r.code == 0, "eval of a stage3 model failed: %s", r.err);
    {
        json_object *ev = json_tokener_parse(r.out);
        ck_assert(ev != NULL);
        ck_assert_msg(fabs(member(ev, "accuracy") - member(metrics, "accuracy")) < 1e-12, "eval %g vs metrics %g",
                      member(ev, "accuracy"), member(metrics, "accuracy"));
        json_object_put(ev);
    }
    json_object_put(metrics);
    rb_checkpoint_destroy(ca);
    rb_checkpoint_destroy(cb);

    /* stage1 (8 x 8 x 8) with the default evaluation batch */
    in_dir(a, "stage1-cached", NULL);
    in_dir(b, "stage1-uncached", NULL);
    TRANSFER(&r, a, , "-v", "--lr", "0.05", "--stage", "stage1");
    ck_assert_msg(r.code == 0, "cached stage1 transfer failed: %s", r.err);
    TRANSFER(&r, b, , "-v", "--lr", "0.05", "--stage", "stage1", "--feature-cache", "off");
    ck_assert_msg(r.code == 0, "uncached stage1 transfer failed: %s", r.err);
    ck_assert_int_eq(tensor_dim1("stage1-cached", "fc.weight"), 8);
    ca = load("stage1-cached", "model.rbt");
    cb = load("stage1-uncached", "model.rbt");
    ck_assert_msg(tensor_diff(ca, cb, "fc.weight") < 1e-6, "fc.weight differs by %g",
                  tensor_diff(ca, cb, "fc.weight"));
    ck_assert_msg(tensor_diff(ca, cb, "fc.bias") < 1e-6, "fc.bias differs by %g", tensor_diff(ca, cb, "fc.bias"));
    rb_checkpoint_destroy(ca);
    rb_checkpoint_destroy(cb);
    rb_checkpoint_destroy(src);
}
END_TEST

/* --feature-cache bf16: half the bytes, and a head within bf16 rounding of
 * the f32 cache's.
 *
 * Tolerance: each cached value is rounded to 8 significant bits, a relative
 * error of at most u = 2^-8. The head's gradient is (softmax - onehot) x
 * features, so each SGD step's update moves by at most about u relative
 * through the features and as much again through the logits they feed;
 * summed over 16 steps with momentum, against weights that are at least as
 * large as the updates, the heads stay within 2u of each other, and 4u =
 * 2^-6 (1.6e-2) leaves room for the steps compounding. Measured on AMD EPYC
 * (Zen 5): 3.4e-4 relative (stage1), 9.8e-4 (pooled features), well inside
 * even u. It must also differ: equal heads would mean no bf16 was stored. */
START_TEST(bf16_feature_cache_halves_the_memory_within_bf16_rounding)
{
    char a[PATH_MAX], b[PATH_MAX];
    rb_checkpoint *c16, *c32;
    json_object *cfg, *metrics;
    char *dtype;
    const double tolerance = 4.0 / 256.0;

    in_dir(a, "stage1-bf16", NULL);
    in_dir(b, "stage1-f32", NULL);
    TRANSFER(&r, a, , "-v", "--lr", "0.05", "--stage", "stage1", "--feature-cache", "bf16");
    ck_assert_msg(r.code == 0, "bf16 cached transfer failed: %s", r.err);
    /* 48 + 30 images x 8 x 8 x 8 values x 2 bytes = 79,872 bytes; f32 twice that */
    ck_assert_msg(strstr(r.err, "caching stage1 (8 x 8 x 8 values per image, the one stage the head reads) of 48 + "
                                "30 images in bf16: 79,872 bytes (0.08 MiB)") != NULL,
                  "no bf16 size line: %s", r.err);
    TRANSFER(&r, b, , "-v", "--lr", "0.05", "--stage", "stage1");
    ck_assert_msg(r.code == 0, "f32 cached transfer failed: %s", r.err);
    ck_assert_msg(strstr(r.err, "of 48 + 30 images in f32: 159,744 bytes (0.15 MiB)") != NULL, "%s", r.err);
    c16 = load("stage1-bf16", "model.rbt");
    c32 = load("stage1-f32", "model.rbt");
    ck_assert_msg(tensor_diff(c16, c32, "fc.weight") > 0, "the bf16 head equals the f32 one: no bf16 was cached");
    ck_assert_msg(tensor_diff(c16, c32, "fc.weight") < tolerance, "fc.weight: bf16 vs f32 %g",
                  tensor_diff(c16, c32, "fc.weight"));
    ck_assert_msg(tensor_diff(c16, c32, "fc.bias") < tolerance, "fc.bias: bf16 vs f32 %g",
                  tensor_diff(c16, c32, "fc.bias"));
    rb_checkpoint_destroy(c16);
    rb_checkpoint_destroy(c32);
    metrics = read_json("stage1-bf16", "metrics.json");
    ck_assert_msg(member(metrics, "accuracy") > 0.6, "the bf16-cached head did not learn: accuracy %g",
                  member(metrics, "accuracy"));
    json_object_put(metrics);
    cfg = read_json("stage1-bf16", "config.json");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(cfg, "feature_cache")), "bf16");
    json_object_put(cfg);
    dtype = feature_cache_dtype("stage1-bf16");
    ck_assert_ptr_nonnull(dtype);
    ck_assert_str_eq(dtype, "bf16");
    free(dtype);
    ck_assert_ptr_null(feature_cache_dtype("stage3-uncached"));

    /* The pooled features in bf16 too. */
    in_dir(a, "pooled-bf16", NULL);
    TRANSFER(&r, a, , "-v", "--lr", "0.05", "--feature-cache", "bf16");
    ck_assert_msg(r.code == 0, "bf16 pooled transfer failed: %s", r.err);
    /* 78 images x 64 features x 2 bytes */
    ck_assert_msg(strstr(r.err, "caching features (64 x 1 x 1 values per image, the one stage the head reads) of 48 + "
                                "30 images in bf16: 9,984 bytes (0.01 MiB)") != NULL,
                  "%s", r.err);
    c16 = load("pooled-bf16", "model.rbt");
    c32 = load("cached", "model.rbt"); /* fixed_feature_cached_and_uncached...: same options in f32 */
    ck_assert_msg(tensor_diff(c16, c32, "fc.weight") > 0 && tensor_diff(c16, c32, "fc.weight") < tolerance,
                  "pooled fc.weight: bf16 vs f32 %g", tensor_diff(c16, c32, "fc.weight"));
    rb_checkpoint_destroy(c16);
    rb_checkpoint_destroy(c32);
}
END_TEST

/* The limit: exactly the cache's size passes, a byte less is refused before
 * anything is extracted, with one line that says what to do (and bf16, half
 * the size, then fits). 159,744 bytes = 0.15234375 MiB exactly. */
START_TEST(a_feature_cache_over_the_limit_is_refused_before_extraction)
{
    char out[PATH_MAX], line[PATH_MAX];
    in_dir(out, "limit-exact", NULL);
    TRANSFER(&r, out, , "-v", "--stage", "stage1", "--epochs", "1", "--feature-cache-limit", "0.15234375");
    ck_assert_msg(r.code == 0, "a cache of exactly the limit was refused: %s", r.err);
    in_dir(out, "limit-over", NULL);
    TRANSFER(&r, out, , "-v", "--stage", "stage1", "--epochs", "1", "--feature-cache-limit", "0.1523");
    ck_assert_int_eq(r.code, 1);
    /* 0.1523 MiB = 159,698.1 bytes: 159,698 */
    snprintf(line, sizeof line,
             "robusta transfer: the feature cache of stage1 (159,744 bytes, 0.15 MiB in f32) exceeds "
             "--feature-cache-limit (159,698 bytes, 0.15 MiB): use --feature-cache bf16 (half the size), "
             "--feature-cache off (no cache), or a smaller stage (--stage)\n");
    ck_assert_msg(strstr(r.err, line) != NULL, "not the refusal expected: %s", r.err);
    ck_assert_msg(strstr(r.err, "159,744 bytes (0.15 MiB)") < strstr(r.err, "exceeds"), "no size line first: %s",
                  r.err);
    ck_assert_msg(access(out, F_OK) != 0 || count_dir_entries(out) == 0, "a refused transfer left files in %s", out);
    in_dir(out, "limit-bf16", NULL);
    TRANSFER(&r, out, , "-v", "--stage", "stage1", "--epochs", "1", "--feature-cache-limit", "0.1523",
             "--feature-cache", "bf16");
    ck_assert_msg(r.code == 0, "the bf16 cache (half) was refused too: %s", r.err);
    in_dir(out, "limit-bf16-over", NULL);
    TRANSFER(&r, out, , "-v", "--stage", "stage1", "--epochs", "1", "--feature-cache-limit", "0.05", "--feature-cache",
             "bf16");
    ck_assert_int_eq(r.code, 1);
    ck_assert_msg(strstr(r.err, "exceeds --feature-cache-limit (52,428 bytes, 0.05 MiB): use --feature-cache off (no "
                                "cache) or a smaller stage (--stage)") != NULL,
                  "%s", r.err);
}
END_TEST

/* Bad values of the new options: one line each, usage status 2. */
START_TEST(bad_feature_cache_options_are_refused_with_one_line)
{
    static const struct {
        const char *option, *value, *says;
    } cases[] = {
        {"--feature-cache", "f16", "--feature-cache: 'f16' is not one of f32|bf16|off; did you mean bf16?"},
        {"--feature-cache", "on", "--feature-cache: 'on' is not one of f32|bf16|off"},
        {"--feature-cache-limit", "-1", "--feature-cache-limit: -1 is outside [0, 1e12]"},
        {"--feature-cache-limit", "1e-9", "--feature-cache-limit is below one byte"},
        {"--stage", "stage5", "--stage: 'stage5' is not one of features|stage1|stage2|stage3|stage4"},
    };
    char out[PATH_MAX];
    in_dir(out, "bad-cache", NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TRANSFER(&r, out, , cases[i].option, cases[i].value);
        ck_assert_msg(r.code == 2, "%s %s: status %d", cases[i].option, cases[i].value, r.code);
        ck_assert_msg(strstr(r.err, cases[i].says) != NULL, "%s %s: %s", cases[i].option, cases[i].value, r.err);
        ck_assert_msg(count_lines(r.err) == 1, "%s %s: more than one line: %s", cases[i].option, cases[i].value,
                      r.err);
    }
    RUN(&r, "transfer", "--source", source_model, "--data", target_data, "--out", out, "--mode", "full",
        "--feature-cache", "bf16");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(strstr(r.err, "--bn-stats, --feature-cache and --feature-cache-limit apply to --mode fixed only") !=
                      NULL,
                  "%s", r.err);
    ck_assert_msg(access(out, F_OK) != 0, "a refused option made %s", out);
}
END_TEST

/* A run folder of an earlier version ("no_feature_cache", a boolean, in
 * place of "feature_cache") resumes as it ran, with or without the cache; a
 * feature_cache value this version does not know is refused naming the
 * file. */
START_TEST(a_config_with_no_feature_cache_still_resumes)
{
    static const char *const runs[] = {"old-config-off", "old-config-cached"};
    char out[PATH_MAX], cfg_path[PATH_MAX];
    json_object *cfg = NULL;
    for (int k = 0; k < 2; k++) {
        in_dir(out, runs[k], NULL);
        TRANSFER(&r, out, , "--stage", "stage2", "--feature-cache", k == 0 ? "off" : "f32");
        ck_assert_msg(r.code == 0, "transfer failed: %s", r.err);
        in_dir(cfg_path, runs[k], "config.json");
        json_object_put(cfg);
        cfg = read_json(runs[k], "config.json");
        json_object_object_del(cfg, "feature_cache");
        json_object_object_del(cfg, "feature_cache_limit");
        json_object_object_add(cfg, "no_feature_cache", json_object_new_boolean(k == 0));
        ck_assert_int_eq(json_object_to_file(cfg_path, cfg), 0);
        RUN(&r, "-v", "transfer", "--resume", out, "--epochs", "5");
        ck_assert_msg(r.code == 0, "resuming an old config failed: %s", r.err);
        if (k == 0)
            ck_assert_msg(strstr(r.err, "without a feature cache (--feature-cache off)") != NULL, "%s", r.err);
        else
            ck_assert_msg(strstr(r.err, "caching stage2 (16 x 4 x 4 values per image") != NULL, "%s", r.err);
        ck_assert_msg(feature_cache(runs[k]) == (k == 1), "%s: the cache was%s used", runs[k], k == 1 ? " not" : "");
    }
    json_object_object_del(cfg, "no_feature_cache");
    json_object_object_add(cfg, "feature_cache", json_object_new_string("f16"));
    ck_assert_int_eq(json_object_to_file(cfg_path, cfg), 0);
    json_object_put(cfg);
    RUN(&r, "transfer", "--resume", out, "--epochs", "6");
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(strstr(r.err, "config.json: feature_cache 'f16' is not one of f32|bf16|off") != NULL, "%s", r.err);
    ck_assert_int_eq(count_lines(r.err), 1);
}
END_TEST

START_TEST(bn_stats_update_moves_running_statistics_but_not_weights)
{
    char out[PATH_MAX];
    rb_checkpoint *src, *ck;
    in_dir(out, "bnupdate", NULL);
    TRANSFER(&r, out, , "-v", "--bn-stats", "update");
    ck_assert_msg(r.code == 0, "transfer failed: %s", r.err);
    ck_assert_msg(!feature_cache("bnupdate"), "statistics that move cannot be cached");
    ck_assert_msg(strstr(r.err, "without a feature cache (--bn-stats update moves the backbone's statistics)") != NULL,
                  "%s", r.err);
    ck_assert_int_eq(rb_checkpoint_load(&src, source_model, 0), RB_OK);
    ck = load("bnupdate", "model.rbt");
    ck_assert_msg(tensor_diff(ck, src, "bn1.running_mean") > 0, "running mean did not move");
    ck_assert_msg(tensor_diff(ck, src, "layer4.1.bn2.running_var") > 0, "running var did not move");
    ck_assert(tensor_diff(ck, src, "conv1.weight") == 0);
    ck_assert(tensor_diff(ck, src, "bn1.weight") == 0);
    ck_assert(tensor_diff(ck, src, "layer4.1.conv2.weight") == 0);
    rb_checkpoint_destroy(src);
    rb_checkpoint_destroy(ck);
}
END_TEST

START_TEST(full_network_fine_tunes_the_backbone_and_resumes_bit_identically)
{
    char out[PATH_MAX], out2[PATH_MAX], path[PATH_MAX];
    rb_checkpoint *src, *ck, *ck2;
    in_dir(out, "full", NULL);
    in_dir(out2, "full-resumed", NULL);
    RUN(&r, "transfer", "--source", source_model, "--data", target_data, "--out", out, "--epochs", "3",
        "--batch-size", "8", "--threads", "1", "--seed", "5", "--mode", "full", "--hidden", "6");
    ck_assert_msg(r.code == 0, "full transfer failed: %s", r.err);
    ck_assert_int_eq(rb_checkpoint_load(&src, source_model, 0), RB_OK);
    ck = load("full", "model.rbt");
    ck_assert_msg(tensor_diff(ck, src, "conv1.weight") > 0, "full-network mode left conv1 alone");
    ck_assert_msg(tensor_diff(ck, src, "layer4.1.bn2.weight") > 0, "full-network mode left the last bn alone");
    {
        rb_checkpoint_tensor t;
        ck_assert_int_eq(rb_checkpoint_find(ck, "fc.0.weight", &t), RB_OK); /* --hidden 6: fc.0, ReLU, fc.2 */
        ck_assert_int_eq(t.shape[0], 6);
        ck_assert_int_eq(rb_checkpoint_find(ck, "fc.2.weight", &t), RB_OK);
        ck_assert_int_eq(t.shape[0], 3);
    }
    /* One epoch, then resume to three: the same weights bit for bit (the
     * default schedule, step:1:0.1 at 3 epochs, depends on the total, so
     * this run names its schedule). */
    RUN(&r, "transfer", "--source", source_model, "--data", target_data, "--out", out2, "--epochs", "1",
        "--batch-size", "8", "--threads", "1", "--seed", "5", "--mode", "full", "--hidden", "6", "--schedule",
        "step:1:0.1");
    ck_assert_msg(r.code == 0, "short transfer failed: %s", r.err);
    RUN(&r, "transfer", "--resume", out2, "--epochs", "3");
    ck_assert_msg(r.code == 0, "resume failed: %s", r.err);
    ck2 = load("full-resumed", "model.rbt");
    {
        const char *diff = first_different(ck, ck2, "\x01");
        ck_assert_msg(diff == NULL, "resumed transfer differs in %s", diff);
    }
    in_dir(path, "full-resumed", "metrics.json");
    ck_assert_msg(access(path, F_OK) == 0, "a resumed transfer wrote no metrics.json");
    rb_checkpoint_destroy(src);
    rb_checkpoint_destroy(ck);
    rb_checkpoint_destroy(ck2);
}
END_TEST

START_TEST(bad_transfers_are_refused_with_one_line)
{
    char out[PATH_MAX], bogus[PATH_MAX], plugins[PATH_MAX * 2];
    in_dir(out, "bad", NULL);
    RUN(&r, "transfer", "--source", source_model, "--data", one_class_data, "--out", out, "--threads", "1",
        "--batch-size", "8");
    ck_assert_int_eq(r.code, 1);
    ck_assert_msg(strstr(r.err, "has 1 class; transfer needs at least 2") != NULL, "%s", r.err);
    RUN(&r, "transfer", "--source", source_model, "--data", target_data, "--out", out, "--mode", "full",
        "--bn-stats", "update");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(strstr(r.err, "apply to --mode fixed only") != NULL, "%s", r.err);
    RUN(&r, "transfer", "--data", target_data, "--out", out);
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(strstr(r.err, "--source is required") != NULL, "%s", r.err);
    RUN(&r, "transfer", "--source", source_model, "--data", target_data, "--out", out, "--task", "segmnet");
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(strstr(r.err, "unknown task plugin 'segmnet'; did you mean 'segment'?") != NULL, "%s", r.err);
    in_dir(bogus, "source", "log.csv");
    RUN(&r, "transfer", "--source", bogus, "--data", target_data, "--out", out);
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(strstr(r.err, "--source") != NULL && strstr(r.err, "log.csv") != NULL, "%s", r.err);
    /* A source whose arch plugin is not installed. */
    {
        const char *path = getenv("RB_PLUGIN_PATH");
        const char *task = path ? strstr(path, "plugins/task") : NULL;
        ck_assert_msg(task != NULL, "RB_PLUGIN_PATH has no plugins/task folder: %s", path ? path : "(unset)");
        /* Only the task plugins' folder: no resnet. */
        {
            const char *start = task;
            while (start > path && start[-1] != ':')
                start--;
            snprintf(plugins, sizeof plugins, "%.*s", (int)strcspn(start, ":"), start);
        }
        {
            char env[PATH_MAX * 2 + 32];
            snprintf(env, sizeof env, "RB_PLUGIN_PATH=%s", plugins);
            run_robusta(&r, env,
                        (const char *const[]){"transfer", "--source", source_model, "--data", target_data, "--out",
                                              out, NULL});
        }
        ck_assert_int_ne(r.code, 0);
        ck_assert_msg(strstr(r.err, "arch plugin 'resnet', which is not installed") != NULL, "%s", r.err);
    }
    ck_assert_msg(access(out, F_OK) != 0 || count_dir_entries(out) == 0, "a refused transfer left files in %s", out);
}
END_TEST

/* The classify plugin's decode and metrics on hand-made logits. */
START_TEST(classify_metrics_count_exactly_and_refuse_bad_labels)
{
    rb_registry *reg;
    const rb_plugin *p;
    const rb_task_ops *ops;
    rb_task_target target = {.num_classes = 3};
    rb_params *params;
    rb_metric m[8];
    size_t n = 0;
    void *state;
    const char *stages[RB_TASK_MAX_STAGES];
    /* rows: argmax 0, 1, 1, 2, 0 (row 4: a tie of 9 and 9 goes to class 0);
     * labels 0, 1, 2, 2, 1 -> right: rows 0, 1, 3 */
    float logits[15] = {3, 1, 0, 0, 2, 1, 0, 5, 4, 1, 1, 2, 9, 9, 0};
    const float *outputs[1] = {logits};
    const int64_t shapes[1][3] = {{3, 1, 1}};
    int64_t decoded[5], labels[5] = {0, 1, 2, 2, 1}, bad[5] = {0, 1, 2, 3, 1};
    rb_predictions pred = {.count = 5, .labels = decoded};
    rb_targets truth = {.count = 5, .labels = labels};
    ck_assert_int_eq(rb_registry_create(&reg), RB_OK);
    ck_assert_int_eq(rb_registry_load_path(reg, getenv("RB_PLUGIN_PATH")), RB_OK);
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_TASK, "classify", &p), RB_OK);
    ops = p->ops.task;
    ck_assert_int_eq(ops->dataset_kind, RB_DATASET_CLASSIFICATION);
    ck_assert_str_eq(ops->primary_metric, "accuracy");
    ck_assert_int_eq(rb_params_create(&params, p->params), RB_OK);
    ck_assert_int_eq(ops->stages(params, stages, RB_TASK_MAX_STAGES, &n), RB_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(stages[0], RB_STAGE_FEATURES);
    ck_assert_int_eq(ops->decode(params, &target, outputs, shapes, 1, 5, &pred), RB_OK);
    ck_assert_int_eq(decoded[0], 0);
    ck_assert_int_eq(decoded[1], 1);
    ck_assert_int_eq(decoded[2], 1);
    ck_assert_int_eq(decoded[3], 2);
    ck_assert_int_eq(decoded[4], 0);
    ck_assert_int_eq(ops->metrics_create(params, &target, &state), RB_OK);
    ck_assert_int_eq(ops->metrics_accumulate(state, &pred, &truth), RB_OK);
    ck_assert_int_eq(ops->metrics_finalize(state, m, 8, &n), RB_OK);
    ck_assert_uint_eq(n, 5);
    ck_assert_str_eq(m[0].name, "accuracy");
    ck_assert(m[0].value == 3.0 / 5.0);
    ck_assert_str_eq(m[1].name, "balanced_accuracy");
    ck_assert(fabs(m[1].value - (1.0 + 0.5 + 0.5) / 3.0) < 1e-15);
    ck_assert_str_eq(m[2].name, "class_accuracy.0");
    ck_assert(m[2].value == 1.0);
    ck_assert_str_eq(m[4].name, "class_accuracy.2");
    ck_assert(m[4].value == 0.5);
    /* capacity 2: the first two, count 2 */
    ck_assert_int_eq(ops->metrics_finalize(state, m, 2, &n), RB_OK);
    ck_assert_uint_eq(n, 2);
    truth.labels = bad;
    ck_assert_int_eq(ops->metrics_accumulate(state, &pred, &truth), RB_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(rb_last_error(), "label 3 of row 3 is outside [0, 3)") != NULL, "%s", rb_last_error());
    truth.count = 4; /* counts that disagree */
    ck_assert_int_eq(ops->metrics_accumulate(state, &pred, &truth), RB_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(rb_last_error(), "5 predictions but 4 labels") != NULL, "%s", rb_last_error());
    ops->metrics_destroy(state);
    /* A one-class target has no head. */
    {
        rb_graph *g;
        rb_node *x, *y[RB_TASK_MAX_OUTPUTS];
        rb_task_target one = {.num_classes = 1};
        ck_assert_int_eq(rb_graph_create(&g), RB_OK);
        ck_assert_int_eq(rb_graph_input(g, 4, 1, 1, NULL, NULL, &x), RB_OK);
        ck_assert_int_eq(rb_graph_publish(g, x, RB_STAGE_FEATURES), RB_OK);
        ck_assert_int_eq(ops->build_head(g, params, &one, y, RB_TASK_MAX_OUTPUTS, &n), RB_ERR_INVALID_ARGUMENT);
        ck_assert_msg(strstr(rb_last_error(), "needs at least 2") != NULL, "%s", rb_last_error());
        rb_graph_destroy(g);
    }
    rb_params_destroy(params);
    rb_registry_destroy(reg);
}
END_TEST

static Suite *transfer_suite(void)
{
    Suite *s = suite_create("transfer");
    TCase *tc = tcase_create("transfer");
    tcase_add_unchecked_fixture(tc, setup_once, teardown_once);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, classify_metrics_count_exactly_and_refuse_bad_labels);
    tcase_add_test(tc, fixed_feature_cached_and_uncached_train_the_same_head_on_a_frozen_backbone);
    tcase_add_test(tc, bn_stats_update_moves_running_statistics_but_not_weights);
    tcase_add_test(tc, bf16_fixed_feature_transfer_learns_and_keeps_the_backbone);
    tcase_add_test(tc, full_network_fine_tunes_the_backbone_and_resumes_bit_identically);
    tcase_add_test(tc, stage_heads_train_the_same_on_cached_and_uncached_features);
    tcase_add_test(tc, bf16_feature_cache_halves_the_memory_within_bf16_rounding);
    tcase_add_test(tc, a_feature_cache_over_the_limit_is_refused_before_extraction);
    tcase_add_test(tc, bad_feature_cache_options_are_refused_with_one_line);
    tcase_add_test(tc, a_config_with_no_feature_cache_still_resumes);
    tcase_add_test(tc, bad_transfers_are_refused_with_one_line);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(transfer_suite());
}
