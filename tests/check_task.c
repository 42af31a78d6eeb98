/* The task ABI for dense heads: stages checked against the backbone, the
 * scorer's decode and metrics, evaluation of a segmentation task against
 * masks by hand, and the refusals (a stage no backbone publishes, a decode
 * that claims more boxes than its room, attacks on dense tasks, data
 * without the targets a task reads). */
#include "config.h"

#include <check.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/robusta.h>

#include "testutil.h"
#include "testmodels.h"

static rb_registry *reg;

static void setup(void)
{
    ck_assert_int_eq(rb_registry_create(&reg), RB_OK);
    ck_assert_int_eq(rb_registry_load_path(reg, getenv("RB_PLUGIN_PATH")), RB_OK);
}

static void teardown(void)
{
    rb_registry_destroy(reg);
    reg = NULL;
}

/* ------------------------------------------------------------ a tiny arch and a segmentation task */

/* "identity": publishes the normalized image itself as stage1 and its
 * global average as the features; a classifier only when num-classes > 0. */
static const rb_param_spec tiny_params[] = {
    {RB_PARAM_NUM_CLASSES, RB_PARAM_INT, "0", "[0, 1000]", 0, "classes"}, {NULL}};

static rb_status tiny_build(rb_graph *g, rb_node *input, const rb_params *params, rb_node **logits)
{
    int64_t k = 0;
    rb_node *pooled;
    rb_status s = rb_params_get_int(params, RB_PARAM_NUM_CLASSES, &k);
    *logits = NULL;
    if (s != RB_OK || (s = rb_graph_publish(g, input, RB_STAGE_STRIDE4)) != RB_OK ||
        (s = rb_graph_global_avgpool(g, input, &pooled)) != RB_OK ||
        (s = rb_graph_publish(g, pooled, RB_STAGE_FEATURES)) != RB_OK)
        return s;
    return k > 0 ? rb_graph_linear(g, "fc", pooled, k, true, logits) : RB_OK;
}

static const rb_arch_ops tiny_ops = {.kind = RB_PLUGIN_ARCH, .build = tiny_build};
static const rb_plugin tiny_arch = {.abi_version = RB_PLUGIN_ABI_VERSION, .struct_size = sizeof(rb_plugin),
                                    .kind = RB_PLUGIN_ARCH, .name = "tiny", .version = "1.0",
                                    .summary = "the image as its own stage", .params = tiny_params,
                                    .ops = {.arch = &tiny_ops}, .ops_size = sizeof(rb_arch_ops)};

/* "pixels": a 1x1 convolution "seg" on stage1 to K class logits per pixel,
 * per-pixel cross-entropy against the masks, the arg-max class per pixel,
 * and pixel accuracy over the pixels that are not ignored. */
static rb_status pixels_stages(const rb_params *p, const char **names, size_t capacity, size_t *count)
{
    (void)p;
    (void)capacity;
    names[0] = RB_STAGE_STRIDE4;
    *count = 1;
    return RB_OK;
}

static rb_status pixels_head(rb_graph *g, const rb_params *p, const rb_task_target *t, rb_node **outputs,
                             size_t capacity, size_t *count)
{
    rb_node *x;
    rb_conv_desc d = {.out_channels = t->num_classes, .kernel = {1, 1}, .bias = true};
    rb_status s = rb_graph_find(g, RB_STAGE_STRIDE4, &x);
    (void)p;
    (void)capacity;
    *count = 1;
    return s == RB_OK ? rb_graph_conv(g, "seg", x, &d, &outputs[0]) : s;
}

static rb_status pixels_loss(rb_graph *g, const rb_params *p, rb_node *const *outputs, size_t count,
                             rb_node *targets, rb_node **loss)
{
    (void)p;
    (void)count;
    return rb_graph_pixel_cross_entropy(g, outputs[0], targets, RB_IGNORE_LABEL, loss);
}

static rb_status pixels_decode(const rb_params *p, const rb_task_target *t, const float *const *outputs,
                               const int64_t (*shapes)[3], size_t count, int64_t rows, rb_predictions *out)
{
    int64_t k = shapes[0][0], hw = shapes[0][1] * shapes[0][2];
    (void)p;
    (void)t;
    (void)count;
    ck_assert_int_eq(out->mask_height * out->mask_width, hw);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t q = 0; q < hw; q++) {
            int32_t best = 0;
            for (int64_t c = 1; c < k; c++)
                if (outputs[0][(i * k + c) * hw + q] > outputs[0][(i * k + best) * hw + q])
                    best = (int32_t)c;
            out->masks[i * hw + q] = best;
        }
    return RB_OK;
}

typedef struct pixel_counts {
    int64_t right, counted;
} pixel_counts;

static rb_status pixels_create(const rb_params *p, const rb_task_target *t, void **state)
{
    (void)p;
    (void)t;
    *state = calloc(1, sizeof(pixel_counts));
    return *state ? RB_OK : RB_ERR_OUT_OF_MEMORY;
}

static rb_status pixels_accumulate(void *state, const rb_predictions *pred, const rb_targets *truth)
{
    pixel_counts *c = state;
    int64_t hw = pred->mask_height * pred->mask_width;
    ck_assert_int_eq(truth->count, pred->count);
    ck_assert_ptr_nonnull(truth->masks);
    for (int64_t i = 0; i < pred->count * hw; i++)
        if (truth->masks[i] != RB_IGNORE_LABEL) {
            c->counted++;
            c->right += truth->masks[i] == pred->masks[i];
        }
    return RB_OK;
}

static rb_status pixels_finalize(void *state, rb_metric *m, size_t capacity, size_t *count)
{
    const pixel_counts *c = state;
    if (capacity > 0)
        m[0] = (rb_metric){"pixel_accuracy", (double)c->right / (double)c->counted};
    if (capacity > 1)
        m[1] = (rb_metric){"pixels", (double)c->counted};
    *count = 2;
    return RB_OK;
}

static void pixels_destroy(void *state)
{
    free(state);
}

static const rb_task_ops pixels_ops = {
    .kind = RB_PLUGIN_TASK, .dataset_kind = RB_DATASET_SEGMENTATION, .primary_metric = "pixel_accuracy",
    .stages = pixels_stages, .build_head = pixels_head, .build_loss = pixels_loss, .decode = pixels_decode,
    .metrics_create = pixels_create, .metrics_accumulate = pixels_accumulate, .metrics_finalize = pixels_finalize,
    .metrics_destroy = pixels_destroy};
static const rb_plugin pixels_task = {.abi_version = RB_PLUGIN_ABI_VERSION, .struct_size = sizeof(rb_plugin),
                                      .kind = RB_PLUGIN_TASK, .name = "pixels", .version = "1.0",
                                      .summary = "per-pixel classes", .ops = {.task = &pixels_ops},
                                      .ops_size = sizeof(rb_task_ops)};

/* 1 x 2 x 2 images, 2 classes; the head is set so that class 1 wins where
 * the pixel is above 0 (logit0 = -x, logit1 = x; a tie at 0 goes to class 0). */
static rb_model *pixels_model(void)
{
    rb_model_input in = {.channels = 1, .height = 2, .width = 2, .mean = {0}, .std = {1}};
    rb_model *m;
    rb_param_info w, b;
    ck_assert_msg(rb_model_create_with_head(&m, &tiny_arch, NULL, &pixels_task, NULL, &in, 2) == RB_OK, "%s",
                  rb_last_error());
    ck_assert_int_eq(rb_graph_find_param(rb_model_graph(m), "seg.weight", &w), RB_OK);
    ck_assert_int_eq(rb_graph_find_param(rb_model_graph(m), "seg.bias", &b), RB_OK);
    ck_assert_int_eq(w.numel, 2);
    w.value[0] = -1.0f;
    w.value[1] = 1.0f;
    b.value[0] = b.value[1] = 0.0f;
    return m;
}

#define N 5
/* Pixels (u8: 0 or 128) and masks of 5 images; 255 is ignored. Predicted:
 * class 1 where the pixel is 128. Right, of the counted pixels:
 *   image 0: pred 1 0 0 1, mask 1 0 0 1     -> 4 of 4
 *   image 1: pred 1 1 1 1, mask 0 1 255 1   -> 2 of 3
 *   image 2: pred 0 0 0 0, mask 1 1 1 1     -> 0 of 4
 *   image 3: pred 0 1 0 1, mask 255 x4      -> 0 of 0
 *   image 4: pred 1 0 1 0, mask 1 0 0 0     -> 3 of 4
 * pixel accuracy 9 / 15. */
static const uint8_t pixels_px[N * 4] = {128, 0, 0, 128, 128, 128, 128, 128, 0, 0, 0, 0,
                                         0, 128, 0, 128, 128, 0, 128, 0};
static const int32_t pixels_masks[N * 4] = {1, 0, 0, 1, 0, 1, 255, 1, 1, 1, 1, 1, 255, 255, 255, 255, 1, 0, 0, 0};

static rb_split *pixels_split(bool with_masks)
{
    static const int64_t labels[N] = {0, 1, 0, 1, 0};
    rb_split *plain, *s;
    rb_targets t = {.count = N, .masks = pixels_masks, .mask_height = 2, .mask_width = 2};
    ck_assert_int_eq(rb_split_create(&plain, RB_DTYPE_U8, N, 1, 2, 2, pixels_px, labels, 2, NULL, "pixels"),
                     RB_OK);
    if (!with_masks)
        return plain;
    ck_assert_msg(rb_split_with_targets(&s, plain, &t) == RB_OK, "%s", rb_last_error());
    rb_split_destroy(plain);
    return s;
}

START_TEST(a_segmentation_task_is_evaluated_against_its_masks)
{
    rb_model *m = pixels_model();
    rb_split *split = pixels_split(true);
    /* batch 2 pads the last batch (its masks ignored), batch 5 does not:
     * the same figures either way */
    for (int64_t batch = 2; batch <= N; batch += 3) {
        rb_eval_result ev;
        ck_assert_msg(rb_evaluate(m, split, batch, NULL, &ev) == RB_OK, "%s", rb_last_error());
        ck_assert_int_eq(ev.count, N);
        ck_assert_str_eq(ev.score_name, "pixel_accuracy");
        ck_assert(ev.accuracy == 9.0 / 15.0);
        ck_assert_uint_eq(ev.metric_count, 2);
        ck_assert_str_eq(ev.metrics[0].name, "pixel_accuracy");
        ck_assert(ev.metrics[0].value == 9.0 / 15.0);
        ck_assert_str_eq(ev.metrics[1].name, "pixels");
        ck_assert(ev.metrics[1].value == 15.0);
        ck_assert(isfinite(ev.mean_loss) && ev.mean_loss > 0);
        ck_assert_int_eq(ev.correct, 0); /* no class_accuracy.K: not a classification */
        rb_eval_result_free(&ev);
    }
    rb_split_destroy(split);
    rb_model_destroy(m);
}
END_TEST

START_TEST(the_scorer_decodes_and_scores_batch_by_batch)
{
    rb_model *m = pixels_model();
    rb_engine *e;
    rb_scorer *sc;
    float images[N * 4];
    double score = -1, pixels = -1;
    const rb_predictions *pred;
    rb_targets t = {.count = N, .masks = pixels_masks, .mask_height = 2, .mask_width = 2};
    for (int i = 0; i < N * 4; i++)
        images[i] = (float)pixels_px[i] / 255.0f;
    ck_assert_int_eq(rb_engine_create(&e, rb_model_graph(m), N, NULL), RB_OK);
    ck_assert_int_eq(rb_scorer_create(&sc, m), RB_OK);
    ck_assert_ptr_eq(rb_scorer_task(sc), &pixels_task);
    ck_assert_int_eq(rb_engine_forward_targets(e, images, N, &t, false), RB_OK);
    /* the first two images, then all five: 6 of 7, then 15 of 22 pixels */
    ck_assert_int_eq(rb_scorer_add(sc, e, 2, &t), RB_OK);
    pred = rb_scorer_predictions(sc);
    ck_assert_int_eq(pred->count, 2);
    ck_assert_int_eq(pred->masks[0], 1);
    ck_assert_int_eq(pred->masks[1], 0);
    ck_assert_int_eq(pred->masks[7], 1);
    ck_assert_int_eq(rb_scorer_finalize(sc, &score), RB_OK);
    ck_assert(score == 6.0 / 7.0);
    ck_assert_int_eq(rb_scorer_add(sc, e, N, &t), RB_OK); /* finalize started afresh */
    ck_assert_int_eq(rb_scorer_finalize(sc, &score), RB_OK);
    ck_assert(score == 9.0 / 15.0);
    ck_assert_int_eq(rb_scorer_find(sc, "pixels", &pixels), RB_OK);
    ck_assert(pixels == 15.0);
    ck_assert_int_eq(rb_scorer_find(sc, "miou", &pixels), RB_ERR_NOT_FOUND);
    ck_assert_str_eq(rb_last_error(), "task pixels reports no metric 'miou'");
    /* more rows than the engine's batch */
    ck_assert_int_eq(rb_scorer_add(sc, e, N + 1, &t), RB_ERR_INVALID_ARGUMENT);
    rb_scorer_destroy(sc);
    rb_engine_destroy(e);
    rb_model_destroy(m);
}
END_TEST

START_TEST(dense_tasks_refuse_attacks_and_data_without_their_targets)
{
    rb_model *m = pixels_model();
    rb_split *plain = pixels_split(false), *split = pixels_split(true);
    const rb_plugin *pgd;
    rb_eval_result ev;
    ck_assert_int_eq(rb_evaluate(m, plain, 2, NULL, &ev), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "task pixels needs per-pixel masks but pixels has none: give a dataset with masks");
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_ATTACK, "pgd-linf", &pgd), RB_OK);
    ck_assert_int_eq(rb_evaluate_robust(m, split, 2, NULL, pgd, NULL, NULL, &ev), RB_ERR_UNSUPPORTED);
    ck_assert_str_eq(rb_last_error(), "robust evaluation: attacks need a classification task, but task pixels "
                                      "predicts masks; evaluate it without --attack");
    rb_split_destroy(plain);
    rb_split_destroy(split);
    rb_model_destroy(m);
}
END_TEST

/* ------------------------------------------------------------ fixtures */

/* A task fixture plugin (tests/plugins/NAME.so) on the resnet backbone. */
static rb_status fixture_model(const char *name, const char *task_name, rb_model **m, char *path, size_t size)
{
    const rb_plugin *arch, *task;
    const char *preset;
    rb_params *p;
    rb_model_input in = rb_model_input_imagenet(8, 8);
    rb_status s;
    fixture_path(name, path, size);
    ck_assert_msg(rb_registry_load_file(reg, path) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_TASK, task_name, &task), RB_OK);
    ck_assert_int_eq(rb_arch_resolve(reg, "resnet18", &arch, &preset), RB_OK);
    ck_assert_int_eq(rb_params_create(&p, arch->params), RB_OK);
    ck_assert_int_eq(rb_params_set(p, RB_PARAM_PRESET, preset), RB_OK);
    ck_assert_int_eq(rb_params_set(p, "stem", "cifar"), RB_OK);
    ck_assert_int_eq(rb_params_set(p, "width", "0.125"), RB_OK);
    s = rb_model_create_with_head(m, arch, p, task, NULL, &in, 3);
    rb_params_destroy(p);
    return s;
}

START_TEST(a_head_on_a_stage_the_arch_does_not_publish_is_refused)
{
    rb_model *m = NULL;
    char path[PATH_MAX], expected[2 * PATH_MAX];
    ck_assert_int_eq(fixture_model("bad_stage", "bad-stage", &m, path, sizeof path), RB_ERR_PLUGIN);
    ck_assert_ptr_null(m);
    snprintf(expected, sizeof expected,
             "task bad-stage (%s): its head reads stage 'stage9', which arch resnet does not publish (it "
             "publishes: features, stage1, stage2, stage3, stage4)",
             path);
    ck_assert_str_eq(rb_last_error(), expected);
}
END_TEST

START_TEST(a_decode_claiming_more_boxes_than_its_room_is_refused)
{
    rb_model *m = NULL;
    rb_split *plain, *split;
    rb_eval_result ev;
    char path[PATH_MAX], expected[2 * PATH_MAX];
    static uint8_t px[2 * 3 * 8 * 8];
    static const int64_t labels[2] = {0, 1}, offsets[3] = {0, 1, 1};
    static const rb_box boxes[1] = {{1, 1, 4, 4, 2}};
    rb_targets t = {.count = 2, .labels = labels, .boxes = boxes, .box_offsets = offsets};
    ck_assert_msg(fixture_model("greedy_decode", "greedy-decode", &m, path, sizeof path) == RB_OK, "%s",
                  rb_last_error());
    ck_assert_int_eq(rb_graph_init_params(rb_model_graph(m), 1), RB_OK);
    ck_assert_int_eq(rb_split_create(&plain, RB_DTYPE_U8, 2, 3, 8, 8, px, labels, 3, NULL, "boxes"), RB_OK);
    ck_assert_msg(rb_split_with_targets(&split, plain, &t) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_evaluate(m, split, 2, NULL, &ev), RB_ERR_PLUGIN);
    snprintf(expected, sizeof expected,
             "task greedy-decode (%s): decode returned 101 boxes for image 0 but was given room for 100 "
             "(RB_TASK_MAX_DETECTIONS): keep the best 100",
             path);
    ck_assert_str_eq(rb_last_error(), expected);
    rb_split_destroy(split);
    rb_split_destroy(plain);
    rb_model_destroy(m);
}
END_TEST

/* A model with its arch's own classifier is scored by classify, whose
 * accuracy is the arg-max's. */
START_TEST(a_models_own_classifier_is_scored_by_classify)
{
    rb_model *m = small_model(reg, 8, 5);
    rb_engine *e;
    rb_scorer *sc;
    float images[4 * 3 * 8 * 8], logits[4 * 5];
    int64_t labels[4] = {0, 1, 2, 3};
    rb_targets t = {.count = 4, .labels = labels};
    rb_rng rng;
    int64_t right = 0;
    double score;
    rb_rng_init(&rng, 3, 0, 0);
    for (size_t i = 0; i < sizeof images / sizeof images[0]; i++)
        images[i] = rb_rng_uniform(&rng);
    ck_assert_int_eq(rb_engine_create(&e, rb_model_graph(m), 4, NULL), RB_OK);
    ck_assert_int_eq(rb_engine_forward(e, images, 4, labels, false), RB_OK);
    ck_assert_int_eq(rb_engine_read(e, rb_model_logits(m), logits), RB_OK);
    /* labels: row 0 right, row 1 wrong, rows 2 and 3 as drawn */
    for (int i = 0; i < 4; i++) {
        int best = 0;
        for (int c = 1; c < 5; c++)
            if (logits[i * 5 + c] > logits[i * 5 + best])
                best = c;
        if (i == 0)
            labels[i] = best;
        else if (i == 1)
            labels[i] = (best + 1) % 5;
        right += best == labels[i];
    }
    ck_assert_int_eq(rb_scorer_create(&sc, m), RB_OK);
    ck_assert_str_eq(rb_scorer_task(sc)->name, "classify");
    ck_assert_int_eq(rb_scorer_add(sc, e, 4, &t), RB_OK);
    ck_assert_int_eq(rb_scorer_finalize(sc, &score), RB_OK);
    ck_assert(score == (double)right / 4.0);
    rb_scorer_destroy(sc);
    rb_engine_destroy(e);
    rb_model_destroy(m);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("task");
    TCase *tc = tcase_create("task");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, a_segmentation_task_is_evaluated_against_its_masks);
    tcase_add_test(tc, the_scorer_decodes_and_scores_batch_by_batch);
    tcase_add_test(tc, dense_tasks_refuse_attacks_and_data_without_their_targets);
    tcase_add_test(tc, a_head_on_a_stage_the_arch_does_not_publish_is_refused);
    tcase_add_test(tc, a_decode_claiming_more_boxes_than_its_room_is_refused);
    tcase_add_test(tc, a_models_own_classifier_is_scored_by_classify);
    suite_add_tcase(suite, tc);
    return run_suite(suite);
}
