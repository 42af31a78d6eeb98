/* Detection end to end (issue 19): scenes made here by rb_scenes_make from
 * synthetic items (32 x 32, one object each, three classes), a tiny source
 * classifier trained on them, then `robusta transfer --task detect` in
 * fixed-feature and full-network mode (metrics.json, what moves and what
 * stays, bit-identical resume), `robusta infer --data` writing COCO results
 * (original image and category ids, boxes in each image's own pixels, also
 * on a hand-made folder of 64 x 48 images the model sees at 32 x 32), those
 * results scored by `robusta coco-eval` against the annotation file giving
 * the AP the transfer measured, a grid whose target detects, and the
 * refusals: detection on data without boxes, infer into a folder. */
#include "config.h"

#include <math.h>
#include <stdint.h>

#include <json-c/json.h>

#include <robusta/coco.h>
#include <robusta/grid.h>
#include <robusta/robusta.h>

#include "data/image.h"
#include "testdata.h"
#include "testutil.h"

#define RUN(r, ...) run_robusta(r, NULL, (const char *const[]){__VA_ARGS__, NULL})

enum {
    K = 3,        /* object classes (the items' 2, 0 and 3) */
    S = 32,       /* scene side and the models' input side */
    N_TRAIN = 16, /* training scenes */
    N_VAL = 6,    /* validation scenes */
    ITEM = 10     /* the items' side */
};

static run_result r;
static char dir[256], scenes[PATH_MAX], scenes_spec[PATH_MAX + 16], source_model[PATH_MAX];

static void in_dir(char *out, const char *a, const char *b)
{
    if (b != NULL)
        snprintf(out, PATH_MAX, "%s/%s/%s", dir, a, b);
    else
        snprintf(out, PATH_MAX, "%s/%s", dir, a);
}

/* ------------------------------------------------------------ the scenes */

/* n items of ITEM x ITEM as DIR/xname, DIR/yname: labels cycling 0..3,
 * each class one shape (a horizontal bar, a checkerboard the scenes leave
 * for the background, a square, a vertical bar). */
static void write_items(const char *xname, const char *yname, int64_t n)
{
    uint8_t *x = calloc((size_t)n * ITEM * ITEM, 1), *y = malloc((size_t)n);
    char xp[PATH_MAX + 32], yp[PATH_MAX + 32];
    ck_assert(x != NULL && y != NULL);
    for (int64_t i = 0; i < n; i++) {
        uint8_t *px = x + i * ITEM * ITEM;
        y[i] = (uint8_t)(i % 4);
        for (int row = 0; row < ITEM; row++)
            for (int c = 0; c < ITEM; c++) {
                bool on = false;
                switch (y[i]) {
                case 0: on = row >= 3 && row <= 6; break;
                case 1: on = ((row / 2) + (c / 2)) % 2 != 0; break;
                case 2: on = row >= 2 && row <= 7 && c >= 2 && c <= 7; break;
                default: on = c >= 3 && c <= 6; break;
                }
                px[row * ITEM + c] = on ? 255 : 0;
            }
    }
    snprintf(xp, sizeof xp, "%s/%s", dir, xname);
    snprintf(yp, sizeof yp, "%s/%s", dir, yname);
    ck_assert_int_eq(rb_npy_save(xp, RB_DTYPE_U8, 3, (const int64_t[]){n, ITEM, ITEM}, x), RB_OK);
    ck_assert_int_eq(rb_npy_save(yp, RB_DTYPE_U8, 1, (const int64_t[]){n}, y), RB_OK);
    free(x);
    free(y);
}

static void make_scenes(void)
{
    char items[4 * PATH_MAX];
    rb_scenes_options o;
    write_items("x.npy", "y.npy", 16);
    write_items("tx.npy", "ty.npy", 8);
    snprintf(items, sizeof items, "npy:%s/x.npy,%s/y.npy;%s/tx.npy,%s/ty.npy", dir, dir, dir, dir);
    in_dir(scenes, "scenes", NULL);
    snprintf(scenes_spec, sizeof scenes_spec, "coco:%s", scenes);
    rb_scenes_defaults(&o);
    o.from = items;
    o.classes = "2,0,3";
    o.out = scenes;
    o.train_images = N_TRAIN;
    o.val_images = N_VAL;
    o.size = S;
    o.min_objects = o.max_objects = 1;
    o.seed = 7;
    ck_assert_msg(rb_scenes_make(&o, NULL, NULL) == RB_OK, "make-scenes: %s", rb_last_error());
}

/* ------------------------------------------------------------ the runs */

/* One source model, one fixed transfer (100 epochs: the head alone on
 * cached features of both stages it reads) and one full one (6 epochs) for the
 * whole suite; the resume tests stop each halfway. */
#define FIXED_EPOCHS "100"
#define FIXED_HALF "50"
#define FIXED_LR "0.1"
#define FULL_EPOCHS "6"
#define FULL_HALF "3"
#define FULL_LR "0.01"

/* --task.groups 4: the head is the stride-8 stage's 16 channels wide (width
 * 0.125), which the default 32 groups do not divide; score threshold 0 so
 * that the barely trained head still writes boxes to compare. */
#define TRANSFER(res, out, epochs, mode, ...)                                                                      \
    RUN(res, "transfer", "--source", source_model, "--data", scenes_spec, "--task", "detect", "--task.convs", "1", \
        "--task.groups", "4", "--task.score-threshold", "0", "--out", out, "--epochs", epochs, "--batch-size", "4",  \
        "--eval-batch-size", "4", "--threads", "1", "--seed", "5", "--schedule", "constant", "--mode",            \
        mode __VA_ARGS__)

static void setup_once(void)
{
    char out[PATH_MAX];
    make_temp_dir(dir, sizeof dir);
    make_scenes();
    /* a classifier of each scene's object (voc-seg: of the same folder) */
    {
        char voc[PATH_MAX + 16];
        snprintf(voc, sizeof voc, "voc-seg:%s", scenes);
        in_dir(out, "source", NULL);
        RUN(&r, "train", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--data", voc, "--out", out,
            "--epochs", "1", "--batch-size", "8", "--lr", "0.05", "--threads", "1", "--seed", "3");
        ck_assert_msg(r.code == 0, "source training failed: %s", r.err);
    }
    in_dir(source_model, "source", "model.rbt");
    in_dir(out, "fixed", NULL);
    TRANSFER(&r, out, FIXED_EPOCHS, "fixed", , "--lr", FIXED_LR);
    ck_assert_msg(r.code == 0, "fixed transfer failed: %s", r.err);
    in_dir(out, "full", NULL);
    TRANSFER(&r, out, FULL_EPOCHS, "full", , "--lr", FULL_LR);
    ck_assert_msg(r.code == 0, "full transfer failed: %s", r.err);
}

static void teardown_once(void)
{
    remove_temp_dir(dir);
}

static rb_checkpoint *load(const char *run, const char *file)
{
    char path[PATH_MAX];
    rb_checkpoint *ck;
    in_dir(path, run, file);
    ck_assert_msg(rb_checkpoint_load(&ck, path, 0) == RB_OK, "%s: %s", path, rb_last_error());
    return ck;
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
    ck_assert_msg(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int), "%s is no number",
                  key);
    return json_object_get_double(v);
}

/* The first tensor of `a` not named with prefix `skip` ("" skips none) that
 * `b` lacks or holds with other bytes; NULL when there is none. With
 * `same_count`, b must hold no tensor that a lacks either. */
static const char *first_different(const rb_checkpoint *a, const rb_checkpoint *b, const char *skip, bool same_count)
{
    if (same_count && rb_checkpoint_count(a) != rb_checkpoint_count(b))
        return "(the number of tensors)";
    for (size_t i = 0; i < rb_checkpoint_count(a); i++) {
        rb_checkpoint_tensor ta, tb;
        rb_checkpoint_get(a, i, &ta);
        if (skip[0] != '\0' && strncmp(ta.name, skip, strlen(skip)) == 0)
            continue;
        if (rb_checkpoint_find(b, ta.name, &tb) != RB_OK || tb.nbytes != ta.nbytes ||
            memcmp(ta.data, tb.data, ta.nbytes) != 0)
            return ta.name;
    }
    return NULL;
}

static bool tensor_equal(const rb_checkpoint *a, const rb_checkpoint *b, const char *name)
{
    rb_checkpoint_tensor ta, tb;
    ck_assert_msg(rb_checkpoint_find(a, name, &ta) == RB_OK, "no %s", name);
    ck_assert_msg(rb_checkpoint_find(b, name, &tb) == RB_OK, "no %s", name);
    return ta.nbytes == tb.nbytes && memcmp(ta.data, tb.data, ta.nbytes) == 0;
}

/* metrics.json of a detection run: exactly pycocotools' twelve numbers
 * under detect.c's names; ap, ap50 and ap75 in [0, 1] with ap50 >= ap75
 * (a match at IoU .75 is one at .50); every object of these scenes is at
 * most 0.6 S = 19 pixels a side, area under 32², so nothing is medium or
 * large: -1 there, as pycocotools reports a range without ground truth. */
static void check_metrics(const char *run)
{
    static const char *const keys[] = {"ap",  "ap50", "ap75",  "ap_small", "ap_medium", "ap_large",
                                       "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large"};
    json_object *m = read_json(run, "metrics.json");
    ck_assert_int_eq(json_object_object_length(m), (int)(sizeof keys / sizeof keys[0]));
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const double v = member(m, keys[i]);
        if (strstr(keys[i], "medium") != NULL || strstr(keys[i], "large") != NULL)
            ck_assert_msg(v == -1, "%s: %s is %g, not -1", run, keys[i], v);
        else
            ck_assert_msg(v >= 0 && v <= 1, "%s: %s is %g", run, keys[i], v);
    }
    ck_assert_msg(member(m, "ap50") >= member(m, "ap75"), "%s: ap50 %g < ap75 %g", run, member(m, "ap50"),
                  member(m, "ap75"));
    json_object_put(m);
}

static void check_config(const char *run, const char *mode)
{
    json_object *cfg = read_json(run, "config.json");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(cfg, "task")), "detect");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(cfg, "mode")), mode);
    json_object_put(cfg);
}

START_TEST(fixed_mode_trains_a_detection_head_on_the_frozen_backbone)
{
    rb_checkpoint *src = load("source", "model.rbt"), *ck = load("fixed", "model.rbt");
    rb_checkpoint_tensor t;
    const char *diff;
    check_metrics("fixed");
    check_config("fixed", "fixed");
    /* every source tensor but the classifier, batch-norm statistics
     * included, is in the detector bit for bit */
    diff = first_different(src, ck, "fc.", false);
    ck_assert_msg(diff == NULL, "fixed-feature transfer changed backbone tensor %s", diff);
    ck_assert_int_ne(rb_checkpoint_find(ck, "fc.weight", &t), RB_OK);
    /* the head: K class logits, 4 box numbers, on 16 channels */
    ck_assert_msg(rb_checkpoint_find(ck, "head.classification_head.cls_logits.weight", &t) == RB_OK, "no cls_logits");
    ck_assert(t.ndim == 4 && t.shape[0] == K && t.shape[1] == 16);
    ck_assert_msg(rb_checkpoint_find(ck, "head.regression_head.bbox_reg.weight", &t) == RB_OK, "no bbox_reg");
    ck_assert(t.ndim == 4 && t.shape[0] == 4 && t.shape[1] == 16);
    /* --task.convs 1: one tower conv, none after it */
    ck_assert_int_eq(rb_checkpoint_find(ck, "head.classification_head.conv.0.weight", &t), RB_OK);
    ck_assert_int_ne(rb_checkpoint_find(ck, "head.classification_head.conv.3.weight", &t), RB_OK);
    /* The head learned: at 2 epochs (an untrained head, as good as) AP was
     * 0; measured 0.128 after 100 on AMD EPYC (Zen 5), 1 thread. */
    {
        json_object *m = read_json("fixed", "metrics.json");
        ck_assert_msg(member(m, "ap") > 0.04, "the fixed head did not learn: ap %g", member(m, "ap"));
        json_object_put(m);
    }
    /* the two modes trained heads of their own */
    {
        rb_checkpoint *ck_full = load("full", "model.rbt");
        ck_assert_msg(!tensor_equal(ck, ck_full, "head.classification_head.cls_logits.weight"),
                      "fixed and full heads are the same");
        rb_checkpoint_destroy(ck_full);
    }
    rb_checkpoint_destroy(src);
    rb_checkpoint_destroy(ck);
}
END_TEST

START_TEST(full_mode_fine_tunes_the_backbone)
{
    rb_checkpoint *src = load("source", "model.rbt"), *ck = load("full", "model.rbt");
    check_metrics("full");
    check_config("full", "full");
    ck_assert_msg(!tensor_equal(ck, src, "conv1.weight"), "full-network mode left conv1 alone");
    ck_assert_msg(!tensor_equal(ck, src, "layer1.0.conv1.weight"), "full-network mode left layer1 alone");
    ck_assert_msg(!tensor_equal(ck, src, "layer3.1.bn2.weight"), "full-network mode left layer3's last bn alone");
    ck_assert_msg(!tensor_equal(ck, src, "bn1.running_mean"), "full-network mode kept the bn statistics");
    rb_checkpoint_destroy(src);
    rb_checkpoint_destroy(ck);
}
END_TEST

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

/* Largest |a - b| over a tensor, relative to the largest |a|. */
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

/* The head reads two stages (stride 8 and 16); the cache holds both per
 * example, packed, and the head alone trains on them: the same head as
 * with the backbone run at every step (--feature-cache off). */
START_TEST(fixed_mode_caches_both_stages_and_trains_the_head_as_without_the_cache)
{
    static const char *const tensors[] = {"head.classification_head.cls_logits.weight",
                                          "head.classification_head.conv.0.weight",
                                          "head.regression_head.bbox_reg.weight",
                                          "head.regression_head.bbox_ctrness.bias"};
    char out[PATH_MAX];
    rb_checkpoint *a, *b;
    json_object *ma, *mb;
    ck_assert_msg(feature_cache("fixed"), "the fixed transfer did not cache its features");
    in_dir(out, "fixed-cached", NULL);
    TRANSFER(&r, out, "10", "fixed", , "--lr", FIXED_LR);
    ck_assert_msg(r.code == 0, "cached fixed transfer failed: %s", r.err);
    in_dir(out, "fixed-uncached", NULL);
    TRANSFER(&r, out, "10", "fixed", , "--lr", FIXED_LR, "--feature-cache", "off");
    ck_assert_msg(r.code == 0, "uncached fixed transfer failed: %s", r.err);
    ck_assert_msg(feature_cache("fixed-cached") && !feature_cache("fixed-uncached"), "--feature-cache ignored");
    a = load("fixed-cached", "model.rbt");
    b = load("fixed-uncached", "model.rbt");
    /* Same initialization, batches and SGD. The stages come from batches
     * of the eval batch size, not the training batch's, which on another
     * CPU's kernels may move a sum by a rounding step (1e-7 relative); 40
     * SGD steps keep that far below 1e-5. Measured bit-identical on AMD EPYC
     * (Zen 5), where both batches are 4. */
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++)
        ck_assert_msg(tensor_diff(a, b, tensors[i]) < 1e-5, "%s differs by %g", tensors[i],
                      tensor_diff(a, b, tensors[i]));
    /* and so the same boxes: a rounding step may swap two equal scores,
     * which moves AP by far less than 1e-3 (measured: equal) */
    ma = read_json("fixed-cached", "metrics.json");
    mb = read_json("fixed-uncached", "metrics.json");
    ck_assert_msg(fabs(member(ma, "ap") - member(mb, "ap")) < 1e-3, "AP %g cached vs %g uncached", member(ma, "ap"),
                  member(mb, "ap"));
    json_object_put(ma);
    json_object_put(mb);
    rb_checkpoint_destroy(a);
    rb_checkpoint_destroy(b);
}
END_TEST

/* The runs of setup_once vs the same stopped after one epoch and resumed:
 * every tensor of model.rbt and last.rbt bit for bit, the same metrics.json.
 * The schedule is constant, so the total number of epochs changes nothing. */
static void check_resume(const char *mode)
{
    const bool fixed = strcmp(mode, "fixed") == 0;
    char out[PATH_MAX], straight_path[PATH_MAX], resumed_path[PATH_MAX], name[64];
    static const char *const files[] = {"model.rbt", "last.rbt"};
    snprintf(name, sizeof name, "%s-resumed", mode);
    in_dir(out, name, NULL);
    TRANSFER(&r, out, fixed ? FIXED_HALF : FULL_HALF, mode, , "--lr", fixed ? FIXED_LR : FULL_LR);
    ck_assert_msg(r.code == 0, "stopped %s transfer failed: %s", mode, r.err);
    RUN(&r, "transfer", "--resume", out, "--epochs", fixed ? FIXED_EPOCHS : FULL_EPOCHS);
    ck_assert_msg(r.code == 0, "resuming %s failed: %s", mode, r.err);
    for (size_t f = 0; f < 2; f++) {
        rb_checkpoint *a = load(mode, files[f]), *b = load(name, files[f]);
        const char *diff = first_different(a, b, "", true);
        ck_assert_msg(diff == NULL, "%s mode: resumed %s differs in %s", mode, files[f], diff);
        rb_checkpoint_destroy(a);
        rb_checkpoint_destroy(b);
    }
    in_dir(straight_path, mode, "metrics.json");
    in_dir(resumed_path, name, "metrics.json");
    {
        size_t na, nb;
        unsigned char *a = read_whole_file(straight_path, &na), *b = read_whole_file(resumed_path, &nb);
        ck_assert_msg(na == nb && memcmp(a, b, na) == 0, "%s mode: resumed metrics.json differs", mode);
        free(a);
        free(b);
    }
}

START_TEST(fixed_mode_resumes_bit_identically)
{
    check_resume("fixed");
}
END_TEST

START_TEST(full_mode_resumes_bit_identically)
{
    check_resume("full");
}
END_TEST

/* ------------------------------------------------------------ infer */

typedef struct box {
    int64_t image_id, category_id;
    double bbox[4], score;
} box;

/* The results file `path`: a JSON array of detections, each image_id an
 * image and each category_id a category of the annotation file `ann`, each
 * box inside its image (w x h of the image's entry, one float32 step of
 * slack on the far edges). Returns the boxes in file order (free()), their
 * numbers the float32 values infer wrote. */
static box *read_results(const char *path, const char *ann, size_t *count)
{
    json_object *dt = json_object_from_file(path), *gt = json_object_from_file(ann), *images, *cats;
    box *out;
    ck_assert_msg(dt != NULL && json_object_is_type(dt, json_type_array), "%s is no JSON array", path);
    ck_assert_msg(gt != NULL, "%s does not parse", ann);
    ck_assert(json_object_object_get_ex(gt, "images", &images) && json_object_object_get_ex(gt, "categories", &cats));
    *count = json_object_array_length(dt);
    out = calloc(*count + 1, sizeof *out);
    ck_assert_ptr_nonnull(out);
    for (size_t i = 0; i < *count; i++) {
        json_object *d = json_object_array_get_idx(dt, i), *bb;
        double iw = -1, ih = -1;
        bool cat_found = false;
        ck_assert_int_eq(json_object_object_length(d), 4);
        out[i].image_id = json_object_get_int64(json_object_object_get(d, "image_id"));
        out[i].category_id = json_object_get_int64(json_object_object_get(d, "category_id"));
        out[i].score = member(d, "score");
        ck_assert_msg(json_object_object_get_ex(d, "bbox", &bb) && json_object_array_length(bb) == 4, "%s[%zu]: bbox",
                      path, i);
        /* infer writes float32 values with 9 digits: back to those floats */
        for (int k = 0; k < 4; k++)
            out[i].bbox[k] = (float)json_object_get_double(json_object_array_get_idx(bb, (size_t)k));
        for (size_t k = 0; k < json_object_array_length(images); k++) {
            json_object *im = json_object_array_get_idx(images, k);
            if (json_object_get_int64(json_object_object_get(im, "id")) == out[i].image_id) {
                iw = member(im, "width");
                ih = member(im, "height");
            }
        }
        for (size_t k = 0; k < json_object_array_length(cats); k++)
            cat_found |= json_object_get_int64(json_object_object_get(json_object_array_get_idx(cats, k), "id")) ==
                         out[i].category_id;
        ck_assert_msg(iw > 0, "%s[%zu]: image_id %lld is not in %s", path, i, (long long)out[i].image_id, ann);
        ck_assert_msg(cat_found, "%s[%zu]: category_id %lld is not in %s", path, i, (long long)out[i].category_id,
                      ann);
        ck_assert_msg(out[i].score >= 0 && out[i].score <= 1, "%s[%zu]: score %g", path, i, out[i].score);
        ck_assert_msg(out[i].bbox[0] >= 0 && out[i].bbox[1] >= 0 && out[i].bbox[2] >= 0 && out[i].bbox[3] >= 0 &&
                          out[i].bbox[0] + out[i].bbox[2] <= iw * (1 + 1e-6) &&
                          out[i].bbox[1] + out[i].bbox[3] <= ih * (1 + 1e-6),
                      "%s[%zu]: box [%g, %g, %g, %g] is not inside the %g x %g image", path, i, out[i].bbox[0],
                      out[i].bbox[1], out[i].bbox[2], out[i].bbox[3], iw, ih);
    }
    json_object_put(dt);
    json_object_put(gt);
    return out;
}

/* `robusta coco-eval --json` on ann and dt: the value of "AP". */
static double coco_eval_ap(const char *ann, const char *dt)
{
    json_object *j;
    double ap;
    RUN(&r, "coco-eval", "--gt", ann, "--dt", dt, "--json");
    ck_assert_msg(r.code == 0, "coco-eval failed: %s", r.err);
    j = json_tokener_parse(r.out);
    ck_assert_msg(j != NULL, "coco-eval --json printed no JSON: %s", r.out);
    ap = member(j, "AP");
    json_object_put(j);
    return ap;
}

START_TEST(infer_writes_coco_results_that_coco_eval_scores_as_the_transfer_did)
{
    static const char *const runs[] = {"fixed", "full"};
    char ann[PATH_MAX + 64];
    snprintf(ann, sizeof ann, "%s/annotations/instances_val.json", scenes);
    for (int k = 0; k < 2; k++) {
        char ckpt[PATH_MAX], out[PATH_MAX], name[64];
        size_t n;
        box *boxes;
        json_object *m = read_json(runs[k], "metrics.json");
        double ap;
        in_dir(ckpt, runs[k], "model.rbt");
        snprintf(name, sizeof name, "%s-detections.json", runs[k]);
        in_dir(out, name, NULL);
        /* batch 4 as the transfer's --eval-batch-size: the same engine
         * shapes, so the same outputs bit for bit */
        RUN(&r, "infer", "--ckpt", ckpt, "--data", scenes_spec, "--output", out, "--threads", "1", "--batch-size",
            "4");
        ck_assert_msg(r.code == 0, "infer --data failed: %s", r.err);
        {
            char want[PATH_MAX + 64];
            snprintf(want, sizeof want, "predictions of %d images in %s\n", N_VAL, out);
            ck_assert_msg(strstr(r.out, want) != NULL, "%s", r.out);
        }
        boxes = read_results(out, ann, &n);
        /* score threshold 0: the head's best candidates (up to 100 an image) */
        ck_assert_msg(n >= N_VAL, "%s: only %zu boxes for %d images", runs[k], n, N_VAL);
        free(boxes);
        /* The transfer scored the same split with the same boxes (model
         * pixels = image pixels here, the images being S x S) against the
         * same ground truth boxes, so AP@[.5:.95] agrees exactly. The
         * annotation file's areas are mask pixel counts where the task's
         * are box areas, which moves only the by-size numbers (APs, ARs),
         * not AP over all areas. */
        ap = coco_eval_ap(ann, out);
        ck_assert_msg(ap == member(m, "ap"), "%s: coco-eval AP %.17g, metrics.json ap %.17g", runs[k], ap,
                      member(m, "ap"));
        fprintf(stderr, "%s: %zu boxes, AP %.6f (coco-eval and metrics.json)\n", runs[k], n, ap);
        json_object_put(m);
    }
}
END_TEST

/* A COCO folder (DIR/JPEGImages, DIR/annotations/instances_{train,val}.json)
 * of the first three validation scenes at h x w: pixel (y, x) is the
 * scene's (row(y), x * S / w), where row pairs the scene's rows (2j and
 * 2j + 1 both read 2j) and, for h = 48, repeats each pair's row three
 * times. At 64 x 48 the bilinear resize to S x S then reads only equal
 * taps (columns 2x and 2x + 1; rows 3j + 0/1 and 3j + 1/2, weights 3/4
 * and 1/4), so the model sees the 32 x 32 folder's pixels exactly.
 * Image ids 101.., category ids 11..13 (not the scenes' 1..3): the results
 * must carry these. */
static void make_hand_folder(const char *name, int h, int w)
{
    char root[PATH_MAX], path[PATH_MAX + 64], json[2048];
    size_t len = 0;
    in_dir(root, name, NULL);
    ck_assert_int_eq(mkdir(root, 0700), 0);
    snprintf(path, sizeof path, "%s/JPEGImages", root);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/annotations", root);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    len += (size_t)snprintf(json + len, sizeof json - len, "{\"images\": [");
    for (int i = 0; i < 3; i++) {
        char id[32], src_path[PATH_MAX + 64];
        rb_image src;
        uint8_t *px = malloc((size_t)h * (size_t)w * 3);
        ck_assert_ptr_nonnull(px);
        /* the val scenes' names, as voc-seg lists them */
        snprintf(src_path, sizeof src_path, "%s/ImageSets/Segmentation/val.txt", scenes);
        {
            FILE *f = fopen(src_path, "r");
            ck_assert_ptr_nonnull(f);
            for (int k = 0; k <= i; k++)
                ck_assert_int_eq(fscanf(f, "%31s", id), 1);
            fclose(f);
        }
        snprintf(src_path, sizeof src_path, "%s/JPEGImages/%s.png", scenes, id);
        ck_assert_msg(rb_image_read(src_path, RB_IMAGE_RGB, &src) == RB_OK, "%s", rb_last_error());
        ck_assert(src.height == S && src.width == S);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                const int sy = 2 * ((y * (S / 2)) / h), sx = x * S / w;
                memcpy(px + 3 * (y * w + x), src.pixels + 3 * (sy * S + sx), 3);
            }
        rb_image_free(&src);
        snprintf(path, sizeof path, "%s/JPEGImages/h%d.png", root, i);
        ck_assert_msg(rb_image_write_png(path, px, h, w, 3, NULL, 0) == RB_OK, "%s", rb_last_error());
        free(px);
        len += (size_t)snprintf(json + len, sizeof json - len,
                                "%s{\"id\": %d, \"file_name\": \"h%d.png\", \"width\": %d, \"height\": %d}",
                                i ? ", " : "", 101 + i, i, w, h);
    }
    len += (size_t)snprintf(json + len, sizeof json - len,
                            "], \"categories\": [{\"id\": 11, \"name\": \"a\"}, {\"id\": 12, \"name\": \"b\"}, "
                            "{\"id\": 13, \"name\": \"c\"}], \"annotations\": [");
    for (int i = 0; i < 3; i++)
        len += (size_t)snprintf(json + len, sizeof json - len,
                                "%s{\"id\": %d, \"image_id\": %d, \"category_id\": %d, \"bbox\": [2, 2, %d, %d], "
                                "\"area\": %d, \"iscrowd\": 0}",
                                i ? ", " : "", i + 1, 101 + i, 11 + i, w / 2, h / 2, (w / 2) * (h / 2));
    len += (size_t)snprintf(json + len, sizeof json - len, "]}\n");
    ck_assert(len < sizeof json);
    snprintf(path, sizeof path, "%s/annotations/instances_val.json", root);
    write_text(path, json);
    snprintf(path, sizeof path, "%s/annotations/instances_train.json", root);
    write_text(path, json);
}

START_TEST(infer_scales_boxes_to_each_images_own_pixels)
{
    char ckpt[PATH_MAX], spec[PATH_MAX + 16], out_small[PATH_MAX], out_big[PATH_MAX], ann[PATH_MAX + 64];
    box *small, *big;
    size_t n_small, n_big;
    make_hand_folder("hand32", S, S);
    make_hand_folder("hand64x48", 48, 64);
    in_dir(ckpt, "full", "model.rbt");
    in_dir(spec, "hand32", NULL);
    memmove(spec + 5, spec, strlen(spec) + 1);
    memcpy(spec, "coco:", 5);
    in_dir(out_small, "hand32.json", NULL);
    RUN(&r, "infer", "--ckpt", ckpt, "--data", spec, "--output", out_small, "--threads", "1", "--batch-size", "3");
    ck_assert_msg(r.code == 0, "infer on hand32 failed: %s", r.err);
    in_dir(spec, "hand64x48", NULL);
    memmove(spec + 5, spec, strlen(spec) + 1);
    memcpy(spec, "coco:", 5);
    in_dir(out_big, "hand64x48.json", NULL);
    RUN(&r, "infer", "--ckpt", ckpt, "--data", spec, "--output", out_big, "--threads", "1", "--batch-size", "3");
    ck_assert_msg(r.code == 0, "infer on hand64x48 failed: %s", r.err);
    in_dir(ann, "hand32", "annotations/instances_val.json");
    small = read_results(out_small, ann, &n_small);
    in_dir(ann, "hand64x48", "annotations/instances_val.json");
    big = read_results(out_big, ann, &n_big);
    ck_assert_msg(n_small > 0, "no boxes");
    ck_assert_uint_eq(n_small, n_big);
    /* The same model outputs, box for box: x scaled by 2 (exact in binary),
     * y by 1.5 (y1 * 1.5 of a float32 is exact in double, then rounded to
     * float32 as infer rounds it); widths by 2 exactly, heights by 1.5 up
     * to infer's float32 rounding of y2 - y1 before and after scaling (one
     * float32 step, 2^-23 relative, each). */
    for (size_t i = 0; i < n_small; i++) {
        ck_assert_int_eq(small[i].image_id, big[i].image_id);
        ck_assert_int_eq(small[i].category_id, big[i].category_id);
        ck_assert_msg(small[i].score == big[i].score, "box %zu: score %.9g vs %.9g", i, small[i].score, big[i].score);
        ck_assert_msg(big[i].bbox[0] == (double)(float)(2 * small[i].bbox[0]) &&
                          big[i].bbox[2] == (double)(float)(2 * small[i].bbox[2]),
                      "box %zu: x %.9g w %.9g at 64 wide, x %.9g w %.9g at 32", i, big[i].bbox[0], big[i].bbox[2],
                      small[i].bbox[0], small[i].bbox[2]);
        ck_assert_msg(big[i].bbox[1] == (double)(float)(1.5 * small[i].bbox[1]), "box %zu: y %.9g at 48, %.9g at 32",
                      i, big[i].bbox[1], small[i].bbox[1]);
        ck_assert_msg(fabs(big[i].bbox[3] - 1.5 * small[i].bbox[3]) <= 1.5 * small[i].bbox[3] * 2.5e-7,
                      "box %zu: h %.9g at 48, %.9g at 32", i, big[i].bbox[3], small[i].bbox[3]);
    }
    for (size_t i = 0; i < n_small; i++)
        ck_assert_msg(small[i].image_id >= 101 && small[i].image_id <= 103 && small[i].category_id >= 11 &&
                          small[i].category_id <= 13,
                      "box %zu: image %lld category %lld", i, (long long)small[i].image_id,
                      (long long)small[i].category_id);
    free(small);
    free(big);
}
END_TEST

START_TEST(infer_refuses_a_folder_as_output)
{
    char ckpt[PATH_MAX], out[PATH_MAX];
    in_dir(ckpt, "fixed", "model.rbt");
    in_dir(out, "a-folder", NULL);
    ck_assert_int_eq(mkdir(out, 0700), 0);
    RUN(&r, "infer", "--ckpt", ckpt, "--data", scenes_spec, "--output", out, "--threads", "1");
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(strstr(r.err, out) != NULL && strstr(r.err, "is a folder") != NULL &&
                      strstr(r.err, "detections.json") != NULL,
                  "%s", r.err);
    ck_assert_int_eq(count_lines(r.err), 1);
    ck_assert_int_eq(count_dir_entries(out), 0);
}
END_TEST

/* ------------------------------------------------------------ grid */

START_TEST(a_grid_target_detects_and_reports_ap)
{
    char ini[PATH_MAX], out[PATH_MAX], text[3 * PATH_MAX], path[PATH_MAX + 32];
    rb_grid_result *rows = NULL;
    size_t n = 0;
    unsigned char *table;
    size_t size;
    in_dir(ini, "det.ini", NULL);
    in_dir(out, "grid", NULL);
    snprintf(text, sizeof text,
             "[grid]\nname = det\nthreads = 1\n\n"
             "[arch r18]\narch = resnet18\nstem = cifar\nwidth = 0.125\n\n"
             "[source]\ndata = voc-seg:%s\nepochs = 1\nbatch-size = 8\nlr = 0.05\nschedule = constant\neps = 0\n\n"
             "[target boxes]\ndata = coco:%s\ntask = detect\nconvs = 1\ngroups = 4\nscore-threshold = 0\n\n"
             "[transfer]\nmodes = fixed\nepochs = 1\nbatch-size = 4\n",
             scenes, scenes);
    write_text(ini, text);
    RUN(&r, "grid", ini, "--out", out);
    ck_assert_msg(r.code == 0, "grid failed (%d): %s", r.code, r.err);
    ck_assert_msg(strstr(r.out, "1 of 1 transfer results") != NULL, "%s", r.out);
    snprintf(path, sizeof path, "%s/results.csv", out);
    ck_assert_msg(rb_grid_read_csv(path, &rows, &n) == RB_OK, "%s", rb_last_error());
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(rows[0].target, "boxes");
    ck_assert_str_eq(rows[0].metric, "ap");
    ck_assert_msg(rows[0].target_acc >= 0 && rows[0].target_acc <= 1, "ap %g", rows[0].target_acc);
    free(rows);
    snprintf(path, sizeof path, "%s/table.md", out);
    table = read_whole_file(path, &size);
    table[size] = '\0';
    ck_assert_msg(strstr((char *)table, "| boxes (AP) |") != NULL, "%s", table);
    free(table);
}
END_TEST

/* ------------------------------------------------------------ refusals */

START_TEST(detection_on_data_without_boxes_is_refused_with_one_line)
{
    char out[PATH_MAX], npy_spec[PATH_MAX * 4];
    static const char *const modes[] = {"fixed", "full"};
    write_bar_images(dir, "nx.npy", "ny.npy", 12, 2, 0, 8);
    write_bar_images(dir, "ntx.npy", "nty.npy", 6, 2, 0, 9);
    snprintf(npy_spec, sizeof npy_spec, "npy:%s/nx.npy,%s/ny.npy;%s/ntx.npy,%s/nty.npy", dir, dir, dir, dir);
    for (int k = 0; k < 2; k++) {
        in_dir(out, "no-boxes", NULL);
        RUN(&r, "transfer", "--source", source_model, "--data", npy_spec, "--task", "detect", "--out", out, "--mode",
            modes[k], "--epochs", "1", "--threads", "1", "--batch-size", "64");
        ck_assert_int_eq(r.code, 1);
        ck_assert_msg(strstr(r.err, "task detect needs boxes but") != NULL &&
                          strstr(r.err, "has none: give a dataset with boxes") != NULL,
                      "%s mode: %s", modes[k], r.err);
        ck_assert_msg(count_lines(r.err) == 1, "%s mode: %s", modes[k], r.err);
        ck_assert_msg(access(out, F_OK) != 0 || count_dir_entries(out) == 0, "a refused transfer left files in %s",
                      out);
    }
}
END_TEST

static Suite *detect_run_suite(void)
{
    Suite *s = suite_create("detect run");
    TCase *tc = tcase_create("detect run");
    tcase_add_unchecked_fixture(tc, setup_once, teardown_once);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, fixed_mode_trains_a_detection_head_on_the_frozen_backbone);
    tcase_add_test(tc, full_mode_fine_tunes_the_backbone);
    tcase_add_test(tc, fixed_mode_caches_both_stages_and_trains_the_head_as_without_the_cache);
    tcase_add_test(tc, fixed_mode_resumes_bit_identically);
    tcase_add_test(tc, full_mode_resumes_bit_identically);
    tcase_add_test(tc, infer_writes_coco_results_that_coco_eval_scores_as_the_transfer_did);
    tcase_add_test(tc, infer_scales_boxes_to_each_images_own_pixels);
    tcase_add_test(tc, infer_refuses_a_folder_as_output);
    tcase_add_test(tc, a_grid_target_detects_and_reports_ap);
    tcase_add_test(tc, detection_on_data_without_boxes_is_refused_with_one_line);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(detect_run_suite());
}
