/* The detect task plugin (plugins/task/detect.c), loaded through the
 * registry: its parameters and refusals, its head's torchvision tensor
 * names and initialization on a small ResNet-18, its COCO metrics on a
 * hand-worked case, and a short training run on synthetic boxes whose loss
 * goes down and whose evaluation reports the COCO AP of its predictions.
 * FCOS's pieces are checked one by one in tests/check_fcos.c (fcos_decode
 * is compiled in here too, to decode by hand); tests/torch-detect-parity.sh
 * compares the head with torchvision's. */
#include "config.h"

#include <check.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/coco.h>
#include <robusta/robusta.h>

#include "fcos.h"
#include "fcosutil.h"
#include "testutil.h"

/* ------------------------------------------------------------ the plugin */

static rb_registry *reg;
static const rb_plugin *detect;

static void plugin_setup(void)
{
    ck_assert_int_eq(rb_registry_create(&reg), RB_OK);
    ck_assert_int_eq(rb_registry_load_path(reg, getenv("RB_PLUGIN_PATH")), RB_OK);
    ck_assert_msg(rb_registry_find(reg, RB_PLUGIN_TASK, "detect", &detect) == RB_OK, "%s", rb_last_error());
}

static void plugin_teardown(void)
{
    rb_registry_destroy(reg);
    reg = NULL;
    detect = NULL;
}

/* Task parameters from "name=value" pairs, ended by NULL. */
static rb_params *task_params(const char *const *pairs)
{
    rb_params *p;
    ck_assert_int_eq(rb_params_create(&p, detect->params), RB_OK);
    for (size_t i = 0; pairs != NULL && pairs[i] != NULL; i++) {
        char name[64];
        const char *eq = strchr(pairs[i], '=');
        ck_assert_ptr_nonnull(eq);
        snprintf(name, sizeof name, "%.*s", (int)(eq - pairs[i]), pairs[i]);
        ck_assert_msg(rb_params_set(p, name, eq + 1) == RB_OK, "%s", rb_last_error());
    }
    return p;
}

/* ResNet-18 at width 1/4 (layer1..4: 16, 32, 64, 128 channels), `stem`
 * imagenet (layer2 at stride 8, layer3 at 16) or cifar (2 and 4), on
 * size x size RGB images, with the detect head of `pairs`. */
static rb_status detect_model(const char *stem, const char *const *pairs, int64_t size, int64_t classes, rb_model **m)
{
    const rb_plugin *arch;
    const char *preset;
    rb_params *p, *tp = task_params(pairs);
    rb_model_input in = rb_model_input_imagenet(size, size);
    rb_status s;
    ck_assert_int_eq(rb_arch_resolve(reg, "resnet18", &arch, &preset), RB_OK);
    ck_assert_int_eq(rb_params_create(&p, arch->params), RB_OK);
    ck_assert_int_eq(rb_params_set(p, RB_PARAM_PRESET, preset), RB_OK);
    ck_assert_int_eq(rb_params_set(p, "stem", stem), RB_OK);
    ck_assert_int_eq(rb_params_set(p, "width", "0.25"), RB_OK);
    s = rb_model_create_with_head(m, arch, p, detect, tp, &in, classes);
    rb_params_destroy(p);
    rb_params_destroy(tp);
    return s;
}

START_TEST(the_plugin_describes_itself)
{
    rb_params *p = task_params(NULL);
    const char *text;
    int64_t v;
    double f;
    ck_assert_int_eq(detect->ops.task->dataset_kind, RB_DATASET_DETECTION);
    ck_assert_str_eq(detect->ops.task->primary_metric, "ap");
    ck_assert_int_eq(rb_params_source(p, "channels"), RB_PARAM_UNSET); /* the stride-8 stage's width */
    ck_assert(rb_params_get_int(p, "convs", &v) == RB_OK && v == 4);      /* torchvision's */
    ck_assert(rb_params_get_string(p, "norm", &text) == RB_OK && strcmp(text, "group") == 0);
    ck_assert(rb_params_get_int(p, "groups", &v) == RB_OK && v == 32);
    ck_assert(rb_params_get_float(p, "score-threshold", &f) == RB_OK && f == FCOS_SCORE_THRESHOLD);
    ck_assert(rb_params_get_float(p, "nms", &f) == RB_OK && f == FCOS_NMS_THRESHOLD);
    rb_params_destroy(p);
}
END_TEST

typedef struct expected_tensor {
    char name[96];
    int ndim;
    int64_t shape[4];
} expected_tensor;

static void expect_tensor(expected_tensor *want, size_t *n, const char *name, int ndim, int64_t a, int64_t b,
                          int64_t c, int64_t d)
{
    snprintf(want[*n].name, sizeof want[*n].name, "%s", name);
    want[*n].ndim = ndim;
    want[*n].shape[0] = a;
    want[*n].shape[1] = b;
    want[*n].shape[2] = c;
    want[*n].shape[3] = d;
    ++*n;
}

/* A tower's tensors, torchvision's FCOSHead names: conv.{3i} 3x3 with bias,
 * conv.{3i+1} the norm (batch-norm: per level, with running statistics). */
static void expect_tower(expected_tensor *want, size_t *n, const char *prefix, int convs, int64_t c, bool batch)
{
    char name[96];
    const char *kinds[] = {".weight", ".bias", ".running_mean", ".running_var"};
    for (int i = 0; i < convs; i++) {
        snprintf(name, sizeof name, "%s.conv.%d.weight", prefix, 3 * i);
        expect_tensor(want, n, name, 4, c, c, 3, 3);
        snprintf(name, sizeof name, "%s.conv.%d.bias", prefix, 3 * i);
        expect_tensor(want, n, name, 1, c, 0, 0, 0);
        for (int k = 0; k < (batch ? 4 : 2); k++) {
            snprintf(name, sizeof name, "%s.conv.%d%s", prefix, 3 * i + 1, kinds[k]);
            expect_tensor(want, n, name, 1, c, 0, 0, 0);
        }
    }
}

/* Checks the model's tensors after the backbone's (those not named
 * "layer..", "conv1" or "bn1") against `want`, in order, and the count of
 * trainable values among them. */
static void check_tensors(rb_model *m, const expected_tensor *want, size_t n_want, int64_t trainable)
{
    rb_graph *g = rb_model_graph(m);
    size_t k = 0;
    int64_t counted = 0;
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        ck_assert_int_eq(rb_graph_param(g, i, &p), RB_OK);
        if (strncmp(p.name, "layer", 5) == 0 || strncmp(p.name, "conv1.", 6) == 0 || strncmp(p.name, "bn1.", 4) == 0)
            continue;
        ck_assert_msg(k < n_want, "unexpected tensor %s", p.name);
        ck_assert_str_eq(p.name, want[k].name);
        ck_assert_int_eq(p.ndim, want[k].ndim);
        for (int d = 0; d < p.ndim; d++)
            ck_assert_msg(p.shape[d] == want[k].shape[d], "%s: dimension %d is %lld, want %lld", p.name, d,
                          (long long)p.shape[d], (long long)want[k].shape[d]);
        if (p.trainable)
            counted += p.numel;
        k++;
    }
    ck_assert_uint_eq(k, n_want);
    ck_assert_int_eq(counted, trainable);
}

/* The head on 64 x 64 images (imagenet stem: layer2 8 x 8 x 32, layer3
 * 4 x 4 x 64), 3 classes, default width 32 (layer2's): the laterals, then
 * level 0's towers and predictors, which level 1 applies again (no tensors
 * of its own); the raw outputs at 8 x 8 and 4 x 4. Trainable values:
 * laterals 32 (64 + 1) + 32 (32 + 1) = 3136; per tower 4 x (32 x 32 x 9 +
 * 32 + 2 x 32) = 37248; cls_logits 3 x 32 x 9 + 3 = 867; bbox_reg 4 x 288
 * + 4 = 1156; bbox_ctrness 289: 3136 + 2 x 37248 + 867 + 1156 + 289 =
 * 79944. */
START_TEST(the_head_has_torchvisions_tensors_shared_by_both_levels)
{
    static expected_tensor want[64];
    size_t n = 0;
    rb_model *m;
    rb_node *const *out;
    size_t count;
    int64_t c, h, w;
    const int64_t shapes[FCOS_OUTPUTS][3] = {{3, 8, 8}, {4, 8, 8}, {1, 8, 8}, {3, 4, 4}, {4, 4, 4}, {1, 4, 4}};
    ck_assert_msg(detect_model("imagenet", NULL, 64, 3, &m) == RB_OK, "%s", rb_last_error());
    expect_tensor(want, &n, "fpn.inner_blocks.1.0.weight", 4, 32, 64, 1, 1);
    expect_tensor(want, &n, "fpn.inner_blocks.1.0.bias", 1, 32, 0, 0, 0);
    expect_tensor(want, &n, "fpn.inner_blocks.0.0.weight", 4, 32, 32, 1, 1);
    expect_tensor(want, &n, "fpn.inner_blocks.0.0.bias", 1, 32, 0, 0, 0);
    expect_tower(want, &n, "head.classification_head", 4, 32, false);
    expect_tensor(want, &n, "head.classification_head.cls_logits.weight", 4, 3, 32, 3, 3);
    expect_tensor(want, &n, "head.classification_head.cls_logits.bias", 1, 3, 0, 0, 0);
    expect_tower(want, &n, "head.regression_head", 4, 32, false);
    expect_tensor(want, &n, "head.regression_head.bbox_reg.weight", 4, 4, 32, 3, 3);
    expect_tensor(want, &n, "head.regression_head.bbox_reg.bias", 1, 4, 0, 0, 0);
    expect_tensor(want, &n, "head.regression_head.bbox_ctrness.weight", 4, 1, 32, 3, 3);
    expect_tensor(want, &n, "head.regression_head.bbox_ctrness.bias", 1, 1, 0, 0, 0);
    check_tensors(m, want, n, 79944);
    out = rb_model_outputs(m, &count);
    ck_assert_uint_eq(count, FCOS_OUTPUTS);
    for (size_t i = 0; i < count; i++) {
        rb_node_shape(out[i], &c, &h, &w);
        ck_assert_msg(c == shapes[i][0] && h == shapes[i][1] && w == shapes[i][2], "output %zu is %lldx%lldx%lld", i,
                      (long long)c, (long long)h, (long long)w);
    }
    /* level 1's class logits apply level 0's layer; its box regression is
     * a ReLU after the shared bbox_reg */
    ck_assert_ptr_eq(rb_node_reuses(out[3]), out[0]);
    ck_assert_ptr_eq(rb_node_reuses(out[5]), out[2]);
    ck_assert_int_eq(rb_node_op(out[4]), RB_OP_RELU);
    ck_assert_ptr_eq(rb_node_reuses(rb_node_input(out[4], 0)), rb_node_input(out[1], 0));
    rb_model_destroy(m);
}
END_TEST

/* --norm batch: one batch-norm per level (level 1's ".level1"), the
 * convolutions still shared; --channels 16 and 1 conv. */
START_TEST(batch_norm_heads_have_a_norm_per_level)
{
    static expected_tensor want[64];
    size_t n = 0;
    rb_model *m;
    char name[96];
    const char *kinds[] = {".weight", ".bias", ".running_mean", ".running_var"};
    ck_assert_msg(detect_model("imagenet", (const char *[]){"norm=batch", "channels=16", "convs=1", NULL}, 64, 2, &m) ==
                      RB_OK,
                  "%s", rb_last_error());
    expect_tensor(want, &n, "fpn.inner_blocks.1.0.weight", 4, 16, 64, 1, 1);
    expect_tensor(want, &n, "fpn.inner_blocks.1.0.bias", 1, 16, 0, 0, 0);
    expect_tensor(want, &n, "fpn.inner_blocks.0.0.weight", 4, 16, 32, 1, 1);
    expect_tensor(want, &n, "fpn.inner_blocks.0.0.bias", 1, 16, 0, 0, 0);
    expect_tower(want, &n, "head.classification_head", 1, 16, true);
    expect_tensor(want, &n, "head.classification_head.cls_logits.weight", 4, 2, 16, 3, 3);
    expect_tensor(want, &n, "head.classification_head.cls_logits.bias", 1, 2, 0, 0, 0);
    expect_tower(want, &n, "head.regression_head", 1, 16, true);
    expect_tensor(want, &n, "head.regression_head.bbox_reg.weight", 4, 4, 16, 3, 3);
    expect_tensor(want, &n, "head.regression_head.bbox_reg.bias", 1, 4, 0, 0, 0);
    expect_tensor(want, &n, "head.regression_head.bbox_ctrness.weight", 4, 1, 16, 3, 3);
    expect_tensor(want, &n, "head.regression_head.bbox_ctrness.bias", 1, 1, 0, 0, 0);
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 4; k++) {
            snprintf(name, sizeof name, "head.%s_head.conv.1.level1%s", t == 0 ? "classification" : "regression",
                     kinds[k]);
            expect_tensor(want, &n, name, 1, 16, 0, 0, 0);
        }
    /* laterals 16 x 65 + 16 x 33 = 1568; towers 2 x (16 x 16 x 9 + 16 + 2 x 16
     * x 2 levels) = 2 x 2384; cls 2 x 145 = 290; reg 4 x 145 = 580; ctr 145 */
    check_tensors(m, want, n, 1568 + 2 * 2384 + 290 + 580 + 145);
    rb_model_destroy(m);
}
END_TEST

/* A stand-in backbone publishing stride-8 features and nothing at stride
 * 16. */
static const rb_param_spec only8_params[] = {
    {RB_PARAM_NUM_CLASSES, RB_PARAM_INT, "0", "[0, 0]", 0, "no classifier"}, {.name = NULL}};

static rb_status only8_build(rb_graph *g, rb_node *input, const rb_params *params, rb_node **logits)
{
    rb_pool_desc d = {.kernel = {8, 8}};
    rb_node *x;
    rb_status s;
    (void)params;
    *logits = NULL;
    if ((s = rb_graph_avgpool(g, input, &d, &x)) != RB_OK)
        return s;
    return rb_graph_publish(g, x, RB_STAGE_STRIDE8);
}

static const rb_arch_ops only8_ops = {.kind = RB_PLUGIN_ARCH, .build = only8_build};
static const rb_plugin only8_arch = {.abi_version = RB_PLUGIN_ABI_VERSION,
                                     .struct_size = sizeof(rb_plugin),
                                     .kind = RB_PLUGIN_ARCH,
                                     .name = "only8",
                                     .version = "1.0",
                                     .summary = "stride-8 features only",
                                     .params = only8_params,
                                     .ops = {.arch = &only8_ops},
                                     .ops_size = sizeof(rb_arch_ops)};

START_TEST(bad_parameters_and_backbones_are_refused_with_one_line)
{
    rb_params *p = task_params(NULL);
    rb_model *m = NULL;
    rb_model_input in = rb_model_input_imagenet(32, 32);
    char expected[PATH_MAX + 400];
    const char *who = rb_plugin_path(detect);

    /* by the parameter table, when set */
    expect_error(rb_params_set(p, "conv", "2"), RB_ERR_INVALID_ARGUMENT, "unknown option --conv; did you mean --convs?");
    expect_error(rb_params_set(p, "convs", "17"), RB_ERR_INVALID_ARGUMENT, "--convs: 17 is outside [0, 16]");
    expect_error(rb_params_set(p, "norm", "layer"), RB_ERR_INVALID_ARGUMENT, "--norm: 'layer' is not one of group|batch");
    expect_error(rb_params_set(p, "nms", "1.5"), RB_ERR_INVALID_ARGUMENT, "--nms: 1.5 is outside [0, 1]");
    rb_params_destroy(p);

    /* by the plugin, when the model is built: the host names its file */
    expect_error(detect_model("imagenet", NULL, 64, 0, &m), RB_ERR_INVALID_ARGUMENT,
                 (snprintf(expected, sizeof expected,
                           "task detect (%s): detect: the target has 0 classes; detection needs at least 1", who),
                  expected));
    ck_assert_ptr_null(m);
    expect_error(detect_model("imagenet", (const char *[]){"norm=batch", "groups=8", NULL}, 64, 3, &m),
                 RB_ERR_INVALID_ARGUMENT,
                 (snprintf(expected, sizeof expected,
                           "task detect (%s): detect: --groups applies to --norm group only; drop it or use --norm "
                           "group",
                           who),
                  expected));
    expect_error(detect_model("imagenet", (const char *[]){"channels=48", NULL}, 64, 3, &m), RB_ERR_INVALID_ARGUMENT,
                 (snprintf(expected, sizeof expected,
                           "task detect (%s): detect: group norm splits the head's 48 channels into 32 groups, which "
                           "does not divide them; give --channels a multiple of --groups (--channels given), or fewer "
                           "--groups",
                           who),
                  expected));
    /* 72 x 72: layer2 is 9 x 9, layer3 5 x 5 */
    expect_error(detect_model("imagenet", NULL, 72, 3, &m), RB_ERR_INVALID_ARGUMENT,
                 (snprintf(expected, sizeof expected,
                           "task detect (%s): detect: the stride-8 stage is 9x9 but the stride-16 stage 5x5, not half "
                           "of it, so the top-down merge cannot add them; with a ResNet, use image sizes that are "
                           "multiples of 16 (these are 72x72)",
                           who),
                  expected));
    /* 28 x 28: layer2 4 x 4 and layer3 2 x 2 fit, but 28 / 4 is no whole stride */
    expect_error(detect_model("imagenet", NULL, 28, 3, &m), RB_ERR_INVALID_ARGUMENT,
                 (snprintf(expected, sizeof expected,
                           "task detect (%s): detect: the 28x28 image does not divide into the first level's 4x4 "
                           "points by one power of two up to 64; with a ResNet's stride-8 stage, use image sizes that "
                           "are multiples of 16",
                           who),
                  expected));
    /* a backbone without a stride-16 stage: the host refuses before the head */
    p = task_params(NULL);
    ck_assert_int_eq(rb_model_create_with_head(&m, &only8_arch, NULL, detect, p, &in, 3), RB_ERR_PLUGIN);
    snprintf(expected, sizeof expected,
             "task detect (%s): its head reads stage 'stage3', which arch only8 does not publish (it publishes: "
             "stage2)",
             who);
    ck_assert_str_eq(rb_last_error(), expected);
    ck_assert_ptr_null(m);
    rb_params_destroy(p);
}
END_TEST

/* rb_model_init_params: rb_graph_init_params, then torchvision's FCOS
 * initialization of the head (init_head). On the model of the names test:
 * head convolutions normal(0, 0.01) (the towers' 4 x 9216 values: sample
 * std within 3% of 0.01, four standard errors), biases 0 but the class
 * bias log(0.01 / 0.99); laterals uniform within sqrt(3 / fan_in) and not
 * all in a narrower band; norms weight 1, bias 0; the backbone as
 * rb_graph_init_params leaves it; the same seed, the same values. */
START_TEST(the_head_starts_as_torchvision_initializes_it)
{
    rb_model *m, *plain;
    rb_graph *g;
    rb_param_info p, q;
    double sum = 0, sq = 0;
    int64_t n = 0;
    float widest = 0;
    ck_assert_int_eq(detect_model("imagenet", NULL, 64, 3, &m), RB_OK);
    ck_assert_int_eq(detect_model("imagenet", NULL, 64, 3, &plain), RB_OK);
    ck_assert_msg(rb_model_init_params(m, 9) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_graph_init_params(rb_model_graph(plain), 9), RB_OK);
    g = rb_model_graph(m);
    ck_assert_int_eq(rb_graph_find_param(g, "head.classification_head.cls_logits.bias", &p), RB_OK);
    for (int64_t k = 0; k < p.numel; k++)
        ck_assert_msg(fabs(p.value[k] - log(0.01 / 0.99)) < 1e-6, "class bias %g", (double)p.value[k]);
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        ck_assert_int_eq(rb_graph_param(g, i, &p), RB_OK);
        ck_assert_int_eq(rb_graph_param(rb_model_graph(plain), i, &q), RB_OK);
        if (strncmp(p.name, "head.", 5) == 0 && rb_node_op(p.owner) == RB_OP_CONV && p.ndim == 4) {
            for (int64_t k = 0; k < p.numel; k++, n++) {
                sum += p.value[k];
                sq += (double)p.value[k] * p.value[k];
            }
        } else if (strncmp(p.name, "head.", 5) == 0 && rb_node_op(p.owner) == RB_OP_CONV) {
            if (strcmp(p.name, "head.classification_head.cls_logits.bias") != 0)
                for (int64_t k = 0; k < p.numel; k++)
                    ck_assert_msg(p.value[k] == 0.0f, "%s[%lld] is %g", p.name, (long long)k, (double)p.value[k]);
        } else if (strncmp(p.name, "fpn.", 4) == 0 && p.ndim == 4) {
            float bound = sqrtf(3.0f / (float)p.shape[1]);
            for (int64_t k = 0; k < p.numel; k++) {
                ck_assert_msg(fabsf(p.value[k]) <= bound, "%s[%lld] is %g", p.name, (long long)k, (double)p.value[k]);
                widest = fmaxf(widest, fabsf(p.value[k]) / bound);
            }
        } else if (strncmp(p.name, "fpn.", 4) == 0) {
            for (int64_t k = 0; k < p.numel; k++)
                ck_assert(p.value[k] == 0.0f);
        } else {
            /* norms (weight 1, bias 0) and the backbone: as rb_graph_init_params left them */
            ck_assert_msg(memcmp(p.value, q.value, (size_t)p.numel * sizeof(float)) == 0, "%s changed", p.name);
        }
    }
    ck_assert(widest > 0.9f);
    ck_assert_int_gt(n, 8 * 9216);
    ck_assert_msg(fabs(sqrt(sq / (double)n - (sum / (double)n) * (sum / (double)n)) - 0.01) < 3e-4, "std %g",
                  sqrt(sq / (double)n));
    /* the same seed gives the same values */
    ck_assert_int_eq(rb_model_init_params(plain, 9), RB_OK);
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        ck_assert_int_eq(rb_graph_param(g, i, &p), RB_OK);
        ck_assert_int_eq(rb_graph_param(rb_model_graph(plain), i, &q), RB_OK);
        ck_assert_msg(memcmp(p.value, q.value, (size_t)p.numel * sizeof(float)) == 0, "%s differs", p.name);
    }
    rb_model_destroy(plain);
    rb_model_destroy(m);
}
END_TEST

/* ------------------------------------------------------------ metrics */

/* Two classes, two images fed in two batches:
 *   image 0: true A (0, 0, 10, 10) class 0 and B (10, 10, 30, 30) class 1;
 *            found (10, 10, 30, 20) class 1, score 0.8: IoU with B
 *            200 / 400 = 0.5 exactly, a match at threshold 0.5 only;
 *   image 1: nothing true; found (0, 0, 10, 10) class 0, score 0.9: A's
 *            place, but on another image: a false positive.
 * Class 0: one true box never found, AP 0 at every threshold; class 1: AP
 * 1 at 0.5 and 0 at the nine others, 0.1. AP = 0.05, AP50 = 0.5, AP75 = 0;
 * every area is under 32^2 (100, 400): small as all, no medium or large
 * (-1); recall: class 0 0, class 1 0.1 (1 of 10 thresholds): 0.05 for
 * AR1, AR10, AR100 and small. Were image 1 counted as image 0 (ids
 * restarting per batch), class 0 would have AP 1; were corners passed as
 * [x, y, w, h], B's IoU would be 600 / 900 and AP 0.2. */
START_TEST(metrics_are_coco_ap_on_a_hand_worked_case)
{
    static const rb_box truth[2] = {{0, 0, 10, 10, 0}, {10, 10, 30, 30, 1}};
    static const int64_t offsets0[2] = {0, 2}, offsets1[2] = {0, 0};
    rb_box found0[RB_TASK_MAX_DETECTIONS] = {{10, 10, 30, 20, 1}}, found1[RB_TASK_MAX_DETECTIONS] = {{0, 0, 10, 10, 0}};
    float scores0[RB_TASK_MAX_DETECTIONS] = {0.8f}, scores1[RB_TASK_MAX_DETECTIONS] = {0.9f};
    int64_t count0 = 1, count1 = 1;
    rb_predictions p0 = {.count = 1, .boxes = found0, .scores = scores0, .box_counts = &count0,
                         .max_boxes = RB_TASK_MAX_DETECTIONS},
                   p1 = {.count = 1, .boxes = found1, .scores = scores1, .box_counts = &count1,
                         .max_boxes = RB_TASK_MAX_DETECTIONS};
    rb_targets t0 = {.count = 1, .boxes = truth, .box_offsets = offsets0}, t1 = {.count = 1, .box_offsets = offsets1};
    const double want[RB_COCO_STATS] = {0.05, 0.5, 0, 0.05, -1, -1, 0.05, 0.05, 0.05, 0.05, -1, -1};
    const char *names[RB_COCO_STATS] = {"ap",  "ap50", "ap75",  "ap_small", "ap_medium", "ap_large",
                                        "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large"};
    rb_task_target target = {.num_classes = 2, .channels = 3, .height = 64, .width = 64};
    const rb_task_ops *ops = detect->ops.task;
    rb_metric out[RB_COCO_STATS];
    size_t n;
    void *state;
    ck_assert_int_eq(ops->metrics_create(NULL, &target, &state), RB_OK);
    ck_assert_msg(ops->metrics_accumulate(state, &p0, &t0) == RB_OK, "%s", rb_last_error());
    ck_assert_msg(ops->metrics_accumulate(state, &p1, &t1) == RB_OK, "%s", rb_last_error());
    ck_assert_msg(ops->metrics_finalize(state, out, RB_COCO_STATS, &n) == RB_OK, "%s", rb_last_error());
    ck_assert_uint_eq(n, RB_COCO_STATS);
    for (int i = 0; i < RB_COCO_STATS; i++) {
        ck_assert_str_eq(out[i].name, names[i]);
        ck_assert_msg(fabs(out[i].value - want[i]) < 1e-12, "%s: %.17g, want %g", names[i], out[i].value, want[i]);
    }
    /* less room: the first ones, and the count of all */
    ck_assert_int_eq(ops->metrics_finalize(state, out, 2, &n), RB_OK);
    ck_assert_uint_eq(n, RB_COCO_STATS);
    ck_assert(strcmp(out[1].name, "ap50") == 0 && fabs(out[1].value - want[1]) < 1e-12);
    ops->metrics_destroy(state);
}
END_TEST

/* What metrics refuse, one line each; a refused batch adds nothing. */
START_TEST(metrics_refuse_bad_batches_and_empty_evaluations)
{
    static const rb_box truth[1] = {{0, 0, 10, 10, 2}};
    static const int64_t offsets[2] = {0, 1}, none[2] = {0, 0};
    rb_box found[RB_TASK_MAX_DETECTIONS] = {{0, 0, 10, 10, 0}};
    float scores[RB_TASK_MAX_DETECTIONS] = {0.5f};
    int64_t count = 1;
    rb_predictions p = {.count = 1, .boxes = found, .scores = scores, .box_counts = &count,
                        .max_boxes = RB_TASK_MAX_DETECTIONS};
    rb_targets bad = {.count = 1, .boxes = truth, .box_offsets = offsets}, no_boxes = {.count = 1},
               two = {.count = 2, .box_offsets = (const int64_t[]){0, 0, 0}}, good = {.count = 1, .box_offsets = none};
    rb_task_target target = {.num_classes = 2, .channels = 3, .height = 64, .width = 64};
    const rb_task_ops *ops = detect->ops.task;
    rb_metric out[RB_COCO_STATS];
    size_t n;
    void *state;
    ck_assert_int_eq(ops->metrics_create(NULL, &target, &state), RB_OK);
    expect_error(ops->metrics_finalize(state, out, RB_COCO_STATS, &n), RB_ERR_INVALID_ARGUMENT,
                 "detect: no image was accumulated, so there is no AP");
    expect_error(ops->metrics_accumulate(state, &p, &no_boxes), RB_ERR_INVALID_ARGUMENT,
                 "detect: the batch carries no true boxes; detection is scored against box targets");
    expect_error(ops->metrics_accumulate(state, &p, &two), RB_ERR_INVALID_ARGUMENT,
                 "detect: 1 images of predictions but 2 of true boxes");
    expect_error(ops->metrics_accumulate(state, &p, &bad), RB_ERR_INVALID_ARGUMENT,
                 "detect: image 0 of the batch, true box 0: (0, 0, 10, 10) class 2 is not a box of the 2 classes with "
                 "finite corners");
    found[0].label = 2;
    expect_error(ops->metrics_accumulate(state, &p, &good), RB_ERR_INVALID_ARGUMENT,
                 "detect: image 0 of the batch, predicted box 0: (0, 0, 10, 10) class 2 score 0.5 is not a box of the "
                 "2 classes with finite corners and score");
    found[0].label = 0;
    count = 101;
    expect_error(ops->metrics_accumulate(state, &p, &good), RB_ERR_INVALID_ARGUMENT,
                 "detect: image 0 of the batch has 101 predicted boxes; 0 to 100");
    /* nothing was added: still no image */
    expect_error(ops->metrics_finalize(state, out, RB_COCO_STATS, &n), RB_ERR_INVALID_ARGUMENT,
                 "detect: no image was accumulated, so there is no AP");
    ops->metrics_destroy(state);
    target.num_classes = 0;
    expect_error(ops->metrics_create(NULL, &target, &state), RB_ERR_INVALID_ARGUMENT,
                 "detect: metrics need at least 1 class (got 0)");
}
END_TEST

/* decode through the plugin reads its parameters: --score-threshold 0.1
 * lets a box of score 0.15 in, which the default 0.2 keeps out. */
START_TEST(the_plugin_decodes_with_its_parameters)
{
    raw r;
    rb_box boxes[RB_TASK_MAX_DETECTIONS];
    float scores[RB_TASK_MAX_DETECTIONS];
    int64_t counts[1];
    rb_predictions p = {.count = 1, .boxes = boxes, .scores = scores, .box_counts = counts,
                        .max_boxes = RB_TASK_MAX_DETECTIONS};
    rb_task_target target = {.num_classes = 2, .channels = 3, .height = 64, .width = 64};
    rb_params *defaults = task_params(NULL), *low = task_params((const char *[]){"score-threshold=0.1", NULL});
    raw_init(&r, 2, 64, 1);
    raw_point(&r, 0, 0, 6, 6, 1, 0.15, 1, 1, 1, 1);
    ck_assert_int_eq(detect->ops.task->decode(defaults, &target, (const float *const *)r.out,
                                              (const int64_t(*)[3])r.shapes, FCOS_OUTPUTS, 1, &p),
                     RB_OK);
    ck_assert_int_eq(counts[0], 0);
    ck_assert_int_eq(detect->ops.task->decode(low, &target, (const float *const *)r.out, (const int64_t(*)[3])r.shapes,
                                              FCOS_OUTPUTS, 1, &p),
                     RB_OK);
    ck_assert_int_eq(counts[0], 1);
    ck_assert(boxes[0].x1 == 40 && boxes[0].y1 == 40 && boxes[0].x2 == 56 && boxes[0].y2 == 56 && boxes[0].label == 1);
    /* an image the levels do not divide */
    target.height = target.width = 60;
    expect_error(detect->ops.task->decode(defaults, &target, (const float *const *)r.out,
                                          (const int64_t(*)[3])r.shapes, FCOS_OUTPUTS, 1, &p),
                 RB_ERR_INVALID_ARGUMENT,
                 "detect decode: the 60x60 image does not divide into the first level's 8x8 points by one power of "
                 "two up to 64; with a ResNet's stride-8 stage, use image sizes that are multiples of 16");
    raw_free(&r);
    rb_params_destroy(defaults);
    rb_params_destroy(low);
}
END_TEST

/* ------------------------------------------------------------ training and evaluation */

enum { SCENES = 16, SCENE = 32, SCENE_BOXES = 2 * SCENES };

/* Scenes of 32 x 32: mid-grey with a little noise, and two squares of 6
 * to 16 pixels each, class 0 bright and class 1 dark, at drawn places
 * (they may overlap; the later one is drawn over). */
typedef struct scenes {
    uint8_t pixels[SCENES * 3 * SCENE * SCENE];
    float images[SCENES * 3 * SCENE * SCENE];
    rb_box boxes[SCENE_BOXES];
    int64_t offsets[SCENES + 1], labels[SCENES];
} scenes;

static void make_scenes(scenes *sc, uint64_t seed)
{
    rb_rng rng;
    rb_rng_init(&rng, seed, 0, 0);
    for (size_t i = 0; i < sizeof sc->pixels; i++)
        sc->pixels[i] = (uint8_t)(118 + (int)(20 * rb_rng_uniform(&rng)));
    for (int64_t i = 0; i < SCENES; i++) {
        sc->offsets[i] = 2 * i;
        sc->labels[i] = 0;
        for (int64_t k = 0; k < 2; k++) {
            int64_t side = 6 + (int64_t)(11 * rb_rng_uniform(&rng)), x = (int64_t)((SCENE - side) * rb_rng_uniform(&rng)),
                    y = (int64_t)((SCENE - side) * rb_rng_uniform(&rng));
            sc->boxes[2 * i + k] = (rb_box){(float)x, (float)y, (float)(x + side), (float)(y + side), k};
            for (int64_t c = 0; c < 3; c++)
                for (int64_t r = y; r < y + side; r++)
                    for (int64_t q = x; q < x + side; q++)
                        sc->pixels[((i * 3 + c) * SCENE + r) * SCENE + q] = k == 0 ? 240 : 15;
        }
    }
    sc->offsets[SCENES] = SCENE_BOXES;
    for (size_t i = 0; i < sizeof sc->pixels; i++)
        sc->images[i] = (float)sc->pixels[i] / 255.0f;
}

/* Scenes first .. first + count as a batch's targets (offsets rebased). */
static rb_targets scene_batch(const scenes *sc, int64_t first, int64_t count, int64_t *offsets)
{
    for (int64_t i = 0; i <= count; i++)
        offsets[i] = sc->offsets[first + i] - sc->offsets[first];
    return (rb_targets){.count = count, .boxes = sc->boxes + sc->offsets[first], .box_offsets = offsets};
}

/* 40 epochs of SGD (lr 0.01, momentum 0.9) on the 16 scenes, batches of
 * 8, of ResNet-18 at width 1/4 with the CIFAR stem (levels of 16 x 16 and
 * 8 x 8 points, strides 2 and 4) and a head of 2 convs, from
 * rb_model_init_params with seed 1; *first and *last get the mean loss of
 * the first and last epoch. */
static rb_model *trained_model(const scenes *sc, double *first, double *last)
{
    rb_model *m;
    rb_engine *e;
    rb_sgd *sgd;
    rb_engine_options o = {.threads = 1};
    int64_t offsets[9];
    *first = *last = 0;
    ck_assert_msg(detect_model("cifar", (const char *[]){"convs=2", NULL}, SCENE, 2, &m) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_model_init_params(m, 1), RB_OK);
    ck_assert_int_eq(rb_engine_create(&e, rb_model_graph(m), 8, &o), RB_OK);
    ck_assert_int_eq(rb_sgd_create(&sgd, rb_model_graph(m), &(rb_sgd_options){.momentum = 0.9}), RB_OK);
    for (int epoch = 0; epoch < 40; epoch++)
        for (int64_t b = 0; b < SCENES; b += 8) {
            rb_targets t = scene_batch(sc, b, 8, offsets);
            ck_assert_msg(rb_engine_forward_targets(e, sc->images + b * 3 * SCENE * SCENE, 8, &t, true) == RB_OK, "%s",
                          rb_last_error());
            if (epoch == 0)
                *first += rb_engine_mean_loss(e) / 2;
            if (epoch == 39)
                *last += rb_engine_mean_loss(e) / 2;
            ck_assert_int_eq(rb_engine_backward(e, true, false), RB_OK);
            ck_assert_msg(rb_sgd_step(sgd, 0.01) == RB_OK, "%s", rb_last_error());
        }
    rb_sgd_destroy(sgd);
    rb_engine_destroy(e);
    return m;
}

/* Training lowers the loss to under half its first epoch's (measured on
 * AMD EPYC: 2.80 to 0.81), and an evaluation of the trained model on the
 * same scenes (rb_evaluate, batches of 6: the last one padded) reports
 * the COCO AP of its predictions: the same numbers as rb_coco_evaluate on
 * the boxes decoded here from the engine's outputs, converted to COCO's
 * [x, y, w, h] here, image by image. The model has learnt something: AP50
 * over 0.5 (measured: AP 0.66, AP50 1). */
START_TEST(training_lowers_the_loss_and_evaluation_reports_coco_ap)
{
    static scenes sc;
    static const char *const names[RB_COCO_STATS] = {"ap",  "ap50", "ap75",  "ap_small", "ap_medium", "ap_large",
                                                     "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large"};
    static rb_box found[SCENES * RB_TASK_MAX_DETECTIONS];
    static float scores[SCENES * RB_TASK_MAX_DETECTIONS];
    static rb_coco_detection dets[SCENES * RB_TASK_MAX_DETECTIONS];
    int64_t counts[SCENES];
    rb_coco_image images[SCENES];
    rb_coco_category cats[2] = {{0, NULL}, {1, NULL}};
    rb_coco_annotation truth[SCENE_BOXES];
    rb_coco gt = {images, SCENES, cats, 2, truth, SCENE_BOXES};
    double first, last, stats[RB_COCO_STATS];
    rb_model *m;
    rb_split *plain, *split;
    rb_targets t;
    rb_eval_result ev;
    rb_engine *e;
    rb_engine_options o = {.threads = 1};
    rb_node *const *outputs;
    size_t n_outputs, n = 0;
    float *values[FCOS_OUTPUTS];
    int64_t shapes[FCOS_OUTPUTS][3];

    make_scenes(&sc, 3);
    m = trained_model(&sc, &first, &last);
    ck_assert_msg(isfinite(first) && last < 0.5 * first, "loss %g in the first epoch, %g in the last", first, last);

    t = (rb_targets){.count = SCENES, .boxes = sc.boxes, .box_offsets = sc.offsets};
    ck_assert_int_eq(rb_split_create(&plain, RB_DTYPE_U8, SCENES, 3, SCENE, SCENE, sc.pixels, sc.labels, 2, NULL,
                                     "scenes"),
                     RB_OK);
    ck_assert_msg(rb_split_with_targets(&split, plain, &t) == RB_OK, "%s", rb_last_error());
    ck_assert_msg(rb_evaluate(m, split, 6, &o, &ev) == RB_OK, "%s", rb_last_error());

    /* by hand: the same engine plan (batches of 6, the last with two rows
     * of zeros and no boxes), decoded as the plugin does with its defaults */
    outputs = rb_model_outputs(m, &n_outputs);
    ck_assert_uint_eq(n_outputs, FCOS_OUTPUTS);
    ck_assert_int_eq(rb_engine_create(&e, rb_model_graph(m), 6, &o), RB_OK);
    for (size_t i = 0; i < FCOS_OUTPUTS; i++) {
        rb_node_shape(outputs[i], &shapes[i][0], &shapes[i][1], &shapes[i][2]);
        ck_assert_ptr_nonnull(values[i] = malloc((size_t)(18 * shapes[i][0] * shapes[i][1] * shapes[i][2]) *
                                                 sizeof(float)));
    }
    for (int64_t b = 0; b < SCENES; b += 6) {
        static float batch[6 * 3 * SCENE * SCENE];
        int64_t rows = SCENES - b < 6 ? SCENES - b : 6, offsets[7];
        rb_targets bt = scene_batch(&sc, b, rows, offsets);
        for (int64_t i = rows; i < 6; i++)
            offsets[i + 1] = offsets[rows];
        bt.count = 6;
        memset(batch, 0, sizeof batch);
        memcpy(batch, sc.images + b * 3 * SCENE * SCENE, (size_t)(rows * 3 * SCENE * SCENE) * sizeof(float));
        ck_assert_int_eq(rb_engine_forward_targets(e, batch, 6, &bt, false), RB_OK);
        for (size_t i = 0; i < FCOS_OUTPUTS; i++)
            ck_assert_int_eq(rb_engine_read(e, outputs[i], values[i] + b * shapes[i][0] * shapes[i][1] * shapes[i][2]),
                             RB_OK);
    }
    {
        fcos_decode_options d = {FCOS_SCORE_THRESHOLD, FCOS_NMS_THRESHOLD, SCENE, SCENE};
        rb_predictions p = {.count = SCENES, .boxes = found, .scores = scores, .box_counts = counts,
                            .max_boxes = RB_TASK_MAX_DETECTIONS};
        ck_assert_int_eq(fcos_decode(&d, (const float *const *)values, (const int64_t(*)[3])shapes, FCOS_OUTPUTS, SCENES,
                                     &p),
                         RB_OK);
    }
    for (int64_t i = 0; i < SCENES; i++) {
        images[i] = (rb_coco_image){.id = i};
        for (int64_t k = 0; k < counts[i]; k++) {
            const rb_box *b = &found[i * RB_TASK_MAX_DETECTIONS + k];
            dets[n++] = (rb_coco_detection){i, b->label, {b->x1, b->y1, (double)b->x2 - b->x1, (double)b->y2 - b->y1},
                                            scores[i * RB_TASK_MAX_DETECTIONS + k]};
        }
    }
    for (int64_t k = 0; k < SCENE_BOXES; k++) {
        const rb_box *b = &sc.boxes[k];
        double w = (double)b->x2 - b->x1, h = (double)b->y2 - b->y1;
        truth[k] = (rb_coco_annotation){k + 1, k / 2, b->label, {b->x1, b->y1, w, h}, w * h, 0};
    }
    ck_assert_msg(rb_coco_evaluate(&gt, dets, n, stats, NULL) == RB_OK, "%s", rb_last_error());
    ck_assert_str_eq(ev.score_name, "ap");
    ck_assert_int_eq(ev.count, SCENES);
    ck_assert_uint_eq(ev.metric_count, RB_COCO_STATS);
    for (int i = 0; i < RB_COCO_STATS; i++) {
        ck_assert_str_eq(ev.metrics[i].name, names[i]);
        ck_assert_msg(ev.metrics[i].value == stats[i], "%s: %.17g, by hand %.17g", names[i], ev.metrics[i].value,
                      stats[i]);
    }
    ck_assert(ev.accuracy == stats[RB_COCO_AP]);
    ck_assert_msg(stats[RB_COCO_AP50] > 0.5, "AP50 %g", stats[RB_COCO_AP50]);
    for (size_t i = 0; i < FCOS_OUTPUTS; i++)
        free(values[i]);
    rb_engine_destroy(e);
    rb_eval_result_free(&ev);
    rb_split_destroy(split);
    rb_split_destroy(plain);
    rb_model_destroy(m);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("detect");
    TCase *plugin = tcase_create("plugin");
    tcase_add_checked_fixture(plugin, plugin_setup, plugin_teardown);
    tcase_set_timeout(plugin, 120);
    tcase_add_test(plugin, the_plugin_describes_itself);
    tcase_add_test(plugin, the_head_has_torchvisions_tensors_shared_by_both_levels);
    tcase_add_test(plugin, batch_norm_heads_have_a_norm_per_level);
    tcase_add_test(plugin, bad_parameters_and_backbones_are_refused_with_one_line);
    tcase_add_test(plugin, the_head_starts_as_torchvision_initializes_it);
    tcase_add_test(plugin, metrics_are_coco_ap_on_a_hand_worked_case);
    tcase_add_test(plugin, metrics_refuse_bad_batches_and_empty_evaluations);
    tcase_add_test(plugin, the_plugin_decodes_with_its_parameters);
    tcase_add_test(plugin, training_lowers_the_loss_and_evaluation_reports_coco_ap);
    suite_add_tcase(suite, plugin);
    return run_suite(suite);
}
