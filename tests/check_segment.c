/* The segment task plugin (plugins/task/segment.c), loaded through the
 * registry: its heads' shapes and torchvision tensor names on a small
 * ResNet-18, its metrics on confusion matrices worked by hand, decode's
 * ties, the refusals (bad parameters, ground truth outside the classes, an
 * evaluation with no counted pixel), and an evaluation of a whole model
 * against metrics computed here from the engine's outputs.
 * tests/torch-segment-parity.sh compares the heads' numbers with
 * torchvision's. */
#include "config.h"

#include <check.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/robusta.h>

#include "testutil.h"

static rb_registry *reg;
static const rb_plugin *seg;

static void setup(void)
{
    ck_assert_int_eq(rb_registry_create(&reg), RB_OK);
    ck_assert_int_eq(rb_registry_load_path(reg, getenv("RB_PLUGIN_PATH")), RB_OK);
    ck_assert_msg(rb_registry_find(reg, RB_PLUGIN_TASK, "segment", &seg) == RB_OK, "%s", rb_last_error());
}

static void teardown(void)
{
    rb_registry_destroy(reg);
    reg = NULL;
    seg = NULL;
}

/* Task parameters from "name=value" pairs, ended by NULL. */
static rb_params *task_params(const char *const *pairs)
{
    rb_params *p;
    ck_assert_int_eq(rb_params_create(&p, seg->params), RB_OK);
    for (size_t i = 0; pairs != NULL && pairs[i] != NULL; i++) {
        char name[64];
        const char *eq = strchr(pairs[i], '=');
        ck_assert_ptr_nonnull(eq);
        snprintf(name, sizeof name, "%.*s", (int)(eq - pairs[i]), pairs[i]);
        ck_assert_msg(rb_params_set(p, name, eq + 1) == RB_OK, "%s", rb_last_error());
    }
    return p;
}

/* ResNet-18, cifar stem, width 1/8 (channels 8, 16, 32, 64 in layer1..4;
 * strides 1, 2, 4, 8 of the input), `size` x `size` RGB images, with the
 * segment head of `pairs` for `classes` classes. */
static rb_status seg_model(const char *const *pairs, int64_t size, int64_t classes, rb_model **m)
{
    const rb_plugin *arch;
    const char *preset;
    rb_params *p, *tp = task_params(pairs);
    rb_model_input in = rb_model_input_imagenet(size, size);
    rb_status s;
    ck_assert_int_eq(rb_arch_resolve(reg, "resnet18", &arch, &preset), RB_OK);
    ck_assert_int_eq(rb_params_create(&p, arch->params), RB_OK);
    ck_assert_int_eq(rb_params_set(p, RB_PARAM_PRESET, preset), RB_OK);
    ck_assert_int_eq(rb_params_set(p, "stem", "cifar"), RB_OK);
    ck_assert_int_eq(rb_params_set(p, "width", "0.125"), RB_OK);
    s = rb_model_create_with_head(m, arch, p, seg, tp, &in, classes);
    rb_params_destroy(p);
    rb_params_destroy(tp);
    return s;
}

START_TEST(the_plugin_describes_itself)
{
    rb_params *p = task_params(NULL);
    const int64_t *rates;
    size_t n;
    const char *text;
    ck_assert_int_eq(seg->ops.task->dataset_kind, RB_DATASET_SEGMENTATION);
    ck_assert_str_eq(seg->ops.task->primary_metric, "miou");
    ck_assert_int_eq(rb_params_get_string(p, "head", &text), RB_OK);
    ck_assert_str_eq(text, "fcn");
    ck_assert_int_eq(rb_params_get_string(p, "stage", &text), RB_OK);
    ck_assert_str_eq(text, "stride8");
    ck_assert_int_eq(rb_params_source(p, "channels"), RB_PARAM_UNSET); /* the head's own default */
    ck_assert_int_eq(rb_params_get_int_list(p, "rates", &rates, &n), RB_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert(rates[0] == 12 && rates[1] == 24 && rates[2] == 36); /* DeepLabHead's */
    rb_params_destroy(p);
}
END_TEST

/* ------------------------------------------------------------ heads */

typedef struct expected_tensor {
    const char *name;
    int ndim;
    int64_t shape[4];
} expected_tensor;

/* Checks that the model's tensors under "classifier." are exactly `want`,
 * in order (batch-norms: weight, bias, running_mean, running_var, as
 * torchvision's state dict lists them, less num_batches_tracked), that the
 * trainable ones hold `trainable` values, and that the output is
 * classes x size x size. */
static void check_head(rb_model *m, const expected_tensor *want, size_t n_want, int64_t trainable, int64_t classes,
                       int64_t size)
{
    rb_graph *g = rb_model_graph(m);
    size_t k = 0;
    int64_t counted = 0, c, h, w;
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        ck_assert_int_eq(rb_graph_param(g, i, &p), RB_OK);
        if (strncmp(p.name, "classifier.", 11) != 0)
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
    ck_assert_int_eq(rb_model_num_classes(m), classes);
    rb_node_shape(rb_model_logits(m), &c, &h, &w);
    ck_assert_int_eq(c, classes);
    ck_assert_int_eq(h, size);
    ck_assert_int_eq(w, size);
}

#define BN(prefix, ch)                                                                                              \
    {prefix ".weight", 1, {ch}}, {prefix ".bias", 1, {ch}}, {prefix ".running_mean", 1, {ch}},                       \
        {prefix ".running_var", 1, {ch}}

START_TEST(fcn_heads_on_stride_8_and_16)
{
    rb_model *m;
    /* stage2 has 16 channels: inner width 16 / 4 = 4, as FCNHead(16, 5).
     * Trainable: 4*16*3*3 = 576, batch-norm 4 + 4, 5*4 + 5 = 25: 609
     * (sum of FCNHead(16, 5).parameters() in torchvision 0.14). */
    static const expected_tensor s8[] = {{"classifier.0.weight", 4, {4, 16, 3, 3}}, BN("classifier.1", 4),
                                         {"classifier.4.weight", 4, {5, 4, 1, 1}}, {"classifier.4.bias", 1, {5}}};
    /* stage3 has 32 channels: width 8; 8*32*9 = 2304 + 16 + 5*8 + 5 = 2365 (FCNHead(32, 5)). */
    static const expected_tensor s16[] = {{"classifier.0.weight", 4, {8, 32, 3, 3}}, BN("classifier.1", 8),
                                          {"classifier.4.weight", 4, {5, 8, 1, 1}}, {"classifier.4.bias", 1, {5}}};
    /* --channels 6 on stage2: 6*16*9 = 864 + 12 + 5*6 + 5 = 911 */
    static const expected_tensor c6[] = {{"classifier.0.weight", 4, {6, 16, 3, 3}}, BN("classifier.1", 6),
                                         {"classifier.4.weight", 4, {5, 6, 1, 1}}, {"classifier.4.bias", 1, {5}}};
    rb_node *stage;

    ck_assert_msg(seg_model(NULL, 16, 5, &m) == RB_OK, "%s", rb_last_error());
    check_head(m, s8, sizeof s8 / sizeof s8[0], 609, 5, 16);
    /* the head reads stage2 (8x8 at the cifar stem's stride 2) and nothing else */
    ck_assert_int_eq(rb_model_head_inputs(m, &stage, 1), 1);
    ck_assert_str_eq(rb_model_stage_name(m, stage), RB_STAGE_STRIDE8);
    ck_assert_ptr_eq(rb_model_features(m), stage);
    ck_assert_ptr_eq(rb_node_input(rb_model_loss(m), 0), rb_model_logits(m));
    ck_assert_int_eq(rb_node_op(rb_model_loss(m)), RB_OP_PIXEL_CE);
    ck_assert_int_eq(rb_node_op(rb_model_logits(m)), RB_OP_UPSAMPLE);
    rb_model_destroy(m);

    ck_assert_msg(seg_model((const char *[]){"stage=stride16", NULL}, 16, 5, &m) == RB_OK, "%s", rb_last_error());
    check_head(m, s16, sizeof s16 / sizeof s16[0], 2365, 5, 16);
    ck_assert_int_eq(rb_model_head_inputs(m, &stage, 1), 1);
    ck_assert_str_eq(rb_model_stage_name(m, stage), RB_STAGE_STRIDE16);
    rb_model_destroy(m);

    ck_assert_msg(seg_model((const char *[]){"channels=6", NULL}, 16, 5, &m) == RB_OK, "%s", rb_last_error());
    check_head(m, c6, sizeof c6 / sizeof c6[0], 911, 5, 16);
    rb_model_destroy(m);
}
END_TEST

START_TEST(aspp_heads_on_stride_8_and_16)
{
    rb_model *m;
    rb_node *stage;
    /* --channels 8 --rates 2,4,6 on stage2 (16 channels), 5 classes:
     *   convs.0    8*16 = 128 + bn 16
     *   convs.1-3  3 x (8*16*9 = 1152 + bn 16) = 3504
     *   convs.4    8*16 = 128 + bn 16 (pooling)
     *   project    8*(5*8) = 320 + bn 16
     *   1, 2       8*8*9 = 576 + bn 16
     *   4          5*8 + 5 = 45
     * 144 + 3504 + 144 + 336 + 592 + 45 = 4765, as torchvision's
     * Sequential(ASPP(16, [2, 4, 6], 8), Conv2d(8, 8, 3), BatchNorm2d(8),
     * ReLU(), Conv2d(8, 5, 1)), DeepLabHead's layout at width 8. */
    static const expected_tensor small[] = {
        {"classifier.0.convs.0.0.weight", 4, {8, 16, 1, 1}}, BN("classifier.0.convs.0.1", 8),
        {"classifier.0.convs.1.0.weight", 4, {8, 16, 3, 3}}, BN("classifier.0.convs.1.1", 8),
        {"classifier.0.convs.2.0.weight", 4, {8, 16, 3, 3}}, BN("classifier.0.convs.2.1", 8),
        {"classifier.0.convs.3.0.weight", 4, {8, 16, 3, 3}}, BN("classifier.0.convs.3.1", 8),
        {"classifier.0.convs.4.1.weight", 4, {8, 16, 1, 1}}, BN("classifier.0.convs.4.2", 8),
        {"classifier.0.project.0.weight", 4, {8, 40, 1, 1}}, BN("classifier.0.project.1", 8),
        {"classifier.1.weight", 4, {8, 8, 3, 3}},            BN("classifier.2", 8),
        {"classifier.4.weight", 4, {5, 8, 1, 1}},            {"classifier.4.bias", 1, {5}}};
    /* The defaults (width 256, rates 12, 24, 36) on stage3 (32 channels):
     *   convs.0 256*32 = 8192; convs.1-3 3 x 256*32*9 = 221184; convs.4 8192;
     *   project 256*1280 = 327680; classifier.1 256*256*9 = 589824;
     *   classifier.4 5*256 + 5 = 1285; 7 batch-norms of 2*256 = 3584:
     * 1159941, the parameters of torchvision's DeepLabHead(32, 5). */
    static const expected_tensor full[] = {
        {"classifier.0.convs.0.0.weight", 4, {256, 32, 1, 1}}, BN("classifier.0.convs.0.1", 256),
        {"classifier.0.convs.1.0.weight", 4, {256, 32, 3, 3}}, BN("classifier.0.convs.1.1", 256),
        {"classifier.0.convs.2.0.weight", 4, {256, 32, 3, 3}}, BN("classifier.0.convs.2.1", 256),
        {"classifier.0.convs.3.0.weight", 4, {256, 32, 3, 3}}, BN("classifier.0.convs.3.1", 256),
        {"classifier.0.convs.4.1.weight", 4, {256, 32, 1, 1}}, BN("classifier.0.convs.4.2", 256),
        {"classifier.0.project.0.weight", 4, {256, 1280, 1, 1}}, BN("classifier.0.project.1", 256),
        {"classifier.1.weight", 4, {256, 256, 3, 3}},          BN("classifier.2", 256),
        {"classifier.4.weight", 4, {5, 256, 1, 1}},            {"classifier.4.bias", 1, {5}}};
    /* One rate: the pooling branch is convs.2, the projection reads 3 x 8 */
    static const expected_tensor one[] = {
        {"classifier.0.convs.0.0.weight", 4, {8, 16, 1, 1}}, BN("classifier.0.convs.0.1", 8),
        {"classifier.0.convs.1.0.weight", 4, {8, 16, 3, 3}}, BN("classifier.0.convs.1.1", 8),
        {"classifier.0.convs.2.1.weight", 4, {8, 16, 1, 1}}, BN("classifier.0.convs.2.2", 8),
        {"classifier.0.project.0.weight", 4, {8, 24, 1, 1}}, BN("classifier.0.project.1", 8),
        {"classifier.1.weight", 4, {8, 8, 3, 3}},            BN("classifier.2", 8),
        {"classifier.4.weight", 4, {3, 8, 1, 1}},            {"classifier.4.bias", 1, {3}}};
    rb_graph *g;

    ck_assert_msg(seg_model((const char *[]){"head=aspp", "channels=8", "rates=2,4,6", NULL}, 16, 5, &m) == RB_OK,
                  "%s", rb_last_error());
    check_head(m, small, sizeof small / sizeof small[0], 4765, 5, 16);
    ck_assert_int_eq(rb_model_head_inputs(m, &stage, 1), 1);
    ck_assert_str_eq(rb_model_stage_name(m, stage), RB_STAGE_STRIDE8);
    /* the 3x3 branches are dilated by their rate and padded by it, keeping 8x8 */
    g = rb_model_graph(m);
    {
        rb_node *n;
        int64_t c, h, w;
        ck_assert_int_eq(rb_graph_find(g, "classifier.0.convs.3.0", &n), RB_OK);
        rb_node_shape(n, &c, &h, &w);
        ck_assert(c == 8 && h == 8 && w == 8);
        ck_assert_int_eq(rb_node_forward_macs(n), 8 * 16 * 9 * 8 * 8);
    }
    rb_model_destroy(m);

    ck_assert_msg(seg_model((const char *[]){"head=aspp", "stage=stride16", NULL}, 16, 5, &m) == RB_OK, "%s",
                  rb_last_error());
    check_head(m, full, sizeof full / sizeof full[0], 1159941, 5, 16);
    ck_assert_int_eq(rb_model_head_inputs(m, &stage, 1), 1);
    ck_assert_str_eq(rb_model_stage_name(m, stage), RB_STAGE_STRIDE16);
    rb_model_destroy(m);

    /* one rate: 128 + 16 + 1152 + 16 + 128 + 16 + 192 + 16 + 576 + 16 + 27 = 2283 */
    ck_assert_msg(seg_model((const char *[]){"head=aspp", "channels=8", "rates=3", NULL}, 16, 3, &m) == RB_OK, "%s",
                  rb_last_error());
    check_head(m, one, sizeof one / sizeof one[0],
               2283, 3, 16);
    rb_model_destroy(m);
}
END_TEST

/* ------------------------------------------------------------ refusals */

START_TEST(bad_parameters_are_refused_with_one_line)
{
    rb_params *p = task_params(NULL);
    rb_model *m = NULL;
    char expected[PATH_MAX + 200];

    /* by the parameter table, when set */
    ck_assert_int_eq(rb_params_set(p, "rates", ""), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--rates: empty list");
    ck_assert_int_eq(rb_params_set(p, "rates", "2,0,6"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--rates: element 2 (0) is outside [1, 4096]");
    ck_assert_int_eq(rb_params_set(p, "channels", "0"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--channels: 0 is outside [1, 65536]");
    ck_assert_int_eq(rb_params_set(p, "head", "psp"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--head: 'psp' is not one of fcn|aspp");
    ck_assert_int_eq(rb_params_set(p, "stage", "stride32"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(strchr(rb_last_error(), '\n'));
    ck_assert(strncmp(rb_last_error(), "--stage: 'stride32' is not one of stride8|stride16", 50) == 0);
    ck_assert_int_eq(rb_params_source(p, "channels"), RB_PARAM_UNSET); /* nothing was stored */
    rb_params_destroy(p);

    /* by the plugin, when the model is built: the host names its file */
    ck_assert_int_eq(seg_model((const char *[]){"head=aspp", "rates=1,2,3,4,5,6,7", NULL}, 16, 5, &m),
                     RB_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(m);
    snprintf(expected, sizeof expected, "task segment (%s): segment: --rates lists 7 rates; the pyramid takes 1 to 6",
             rb_plugin_path(seg));
    ck_assert_str_eq(rb_last_error(), expected);
    ck_assert_int_eq(seg_model((const char *[]){"rates=2,4", NULL}, 16, 5, &m), RB_ERR_INVALID_ARGUMENT);
    snprintf(expected, sizeof expected,
             "task segment (%s): segment: --rates applies to --head aspp only; drop it or add --head aspp",
             rb_plugin_path(seg));
    ck_assert_str_eq(rb_last_error(), expected);
    ck_assert_int_eq(seg_model(NULL, 16, 1, &m), RB_ERR_INVALID_ARGUMENT);
    snprintf(expected, sizeof expected,
             "task segment (%s): segment: the target has 1 class(es); segmentation needs at least 2 (background "
             "and one more)",
             rb_plugin_path(seg));
    ck_assert_str_eq(rb_last_error(), expected);
    /* six rates is the most the 8-way concatenation takes */
    ck_assert_msg(seg_model((const char *[]){"head=aspp", "channels=4", "rates=1,2,3,4,5,6", NULL}, 16, 5, &m) ==
                      RB_OK,
                  "%s", rb_last_error());
    rb_model_destroy(m);
}
END_TEST

/* ------------------------------------------------------------ decode */

START_TEST(decode_takes_the_arg_max_and_ties_go_to_the_lowest_class)
{
    /* 2 images of 1 x 4 pixels, 3 classes; logits[c][q] per image:
     *   image 0: q0 all 0.5 -> 0; q1 (0, 2, 2) -> 1; q2 (1, 0, 3) -> 2; q3 (4, -1, 4) -> 0
     *   image 1: q0 (-3, -2, -1) -> 2; q1 (-1, -1, -2) -> 0; q2 (0, 1, 0.5) -> 1; q3 (-0.0, 0.0, -1) -> 0
     * (-0.0 and 0.0 compare equal: a tie) */
    static const float logits[2 * 3 * 4] = {0.5f, 0, 1, 4,   0.5f, 2, 0, -1, 0.5f, 2, 3, 4,
                                            -3,   -1, 0, -0.0f, -2, -1, 1, 0.0f, -1, -2, 0.5f, -1};
    static const int32_t want[8] = {0, 1, 2, 0, 2, 0, 1, 0};
    const float *outs[1] = {logits};
    const int64_t shapes[1][3] = {{3, 1, 4}};
    int32_t masks[8];
    rb_task_target t = {.num_classes = 3, .channels = 3, .height = 1, .width = 4};
    rb_predictions pred = {.count = 2, .masks = masks, .mask_height = 1, .mask_width = 4};
    rb_params *p = task_params(NULL);
    memset(masks, 0x7f, sizeof masks);
    ck_assert_int_eq(seg->ops.task->decode(p, &t, outs, shapes, 1, 2, &pred), RB_OK);
    for (int i = 0; i < 8; i++)
        ck_assert_msg(masks[i] == want[i], "pixel %d: %d, want %d", i, masks[i], want[i]);
    /* masks of another size than the logits */
    pred.mask_width = 2;
    pred.mask_height = 2;
    ck_assert_int_eq(seg->ops.task->decode(p, &t, outs, shapes, 1, 2, &pred), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "segment: the logits are 1x4 but the masks 2x2");
    rb_params_destroy(p);
}
END_TEST

/* ------------------------------------------------------------ metrics */

typedef struct scored {
    size_t count;
    rb_metric m[16];
} scored;

/* A metrics state for `classes`; feeds it batches of `images` 2 x 3 masks
 * (truth, predicted) and finalizes it. */
static void *metrics_for(int64_t classes)
{
    void *state = NULL;
    rb_task_target t = {.num_classes = classes, .channels = 3, .height = 2, .width = 3};
    ck_assert_int_eq(seg->ops.task->metrics_create(NULL, &t, &state), RB_OK);
    return state;
}

static rb_status feed(void *state, const int32_t *truth, const int32_t *predicted, int64_t images, int64_t h,
                      int64_t w)
{
    rb_predictions p = {.count = images, .masks = (int32_t *)predicted, .mask_height = h, .mask_width = w};
    rb_targets t = {.count = images, .masks = truth, .mask_height = h, .mask_width = w};
    return seg->ops.task->metrics_accumulate(state, &p, &t);
}

static scored finalize(void *state)
{
    scored s = {0};
    ck_assert_msg(seg->ops.task->metrics_finalize(state, s.m, 16, &s.count) == RB_OK, "%s", rb_last_error());
    ck_assert_uint_le(s.count, 16);
    return s;
}

static void expect(const scored *s, size_t i, const char *name, double value)
{
    ck_assert_uint_lt(i, s->count);
    ck_assert_str_eq(s->m[i].name, name);
    ck_assert_msg(s->m[i].value == value, "%s: %.17g, want %.17g", name, s->m[i].value, value);
}

/* Two 2 x 3 images, 3 classes, one ignored pixel each (the second's is
 * predicted 0, which must not count):
 *   image 0  truth 0 0 1 / 1 255 2   predicted 0 1 1 / 1 2 0
 *   image 1  truth 2 2 255 / 0 1 1   predicted 2 0 0 / 0 1 2
 * (truth, predicted) pairs of the 10 counted pixels:
 *   (0,0) (0,1) (1,1) (1,1) (2,0)   (2,2) (2,0) (0,0) (1,1) (1,2)
 * confusion (rows truth, columns predicted):
 *        0 1 2 | truth
 *   0    2 1 0 | 3
 *   1    0 3 1 | 4
 *   2    2 0 1 | 3
 *   pred 4 4 2
 * IoU = TP / (truth + pred - TP): 2/(3+4-2) = 2/5, 3/(4+4-3) = 3/5,
 * 1/(3+2-1) = 1/4; mIoU (2/5 + 3/5 + 1/4) / 3 = 0.41667; pixel accuracy
 * (2 + 3 + 1) / 10; mean class accuracy (2/3 + 3/4 + 1/3) / 3 = 0.58333.
 * The expressions below add in the plugin's order (class 0 first), so the
 * doubles agree exactly. */
static const int32_t truth3[12] = {0, 0, 1, 1, 255, 2, 2, 2, 255, 0, 1, 1};
static const int32_t pred3[12] = {0, 1, 1, 1, 2, 0, 2, 0, 0, 0, 1, 2};

static void expect_three_classes(const scored *s)
{
    ck_assert_uint_eq(s->count, 6);
    expect(s, 0, "miou", (2.0 / 5.0 + 3.0 / 5.0 + 1.0 / 4.0) / 3.0);
    expect(s, 1, "pixel_accuracy", 6.0 / 10.0);
    expect(s, 2, "mean_class_accuracy", (2.0 / 3.0 + 3.0 / 4.0 + 1.0 / 3.0) / 3.0);
    expect(s, 3, "iou.0", 2.0 / 5.0);
    expect(s, 4, "iou.1", 3.0 / 5.0);
    expect(s, 5, "iou.2", 1.0 / 4.0);
}

START_TEST(metrics_on_a_hand_worked_confusion_matrix)
{
    void *state = metrics_for(3);
    scored s;
    rb_metric few[2];
    size_t count = 0;
    /* both images at once */
    ck_assert_int_eq(feed(state, truth3, pred3, 2, 2, 3), RB_OK);
    s = finalize(state);
    expect_three_classes(&s);
    /* room for 2: those 2 written, 6 said to exist */
    ck_assert_int_eq(seg->ops.task->metrics_finalize(state, few, 2, &count), RB_OK);
    ck_assert_uint_eq(count, 6);
    ck_assert_str_eq(few[1].name, "pixel_accuracy");
    seg->ops.task->metrics_destroy(state);

    /* image by image: one matrix over everything accumulated, the same */
    state = metrics_for(3);
    ck_assert_int_eq(feed(state, truth3, pred3, 1, 2, 3), RB_OK);
    ck_assert_int_eq(feed(state, truth3 + 6, pred3 + 6, 1, 2, 3), RB_OK);
    s = finalize(state);
    expect_three_classes(&s);
    seg->ops.task->metrics_destroy(state);
}
END_TEST

/* 4 classes, one 2 x 2 image:
 *   truth 0 0 / 1 1   predicted 0 2 / 1 1
 * confusion: (0,0) 1, (0,2) 1, (1,1) 2; class 2 is predicted once but never
 * true, class 3 neither true nor predicted.
 *   IoU0 = 1 / (2 + 1 - 1) = 1/2, IoU1 = 2 / (2 + 2 - 2) = 1,
 *   IoU2 = 0 / (0 + 1 - 0) = 0 (a union of 1: it counts in the mean),
 *   class 3: empty union, left out of mIoU and of the iou.K list.
 * mIoU (1/2 + 1 + 0) / 3 = 1/2; pixel accuracy 3/4; mean class accuracy
 * over the classes present in the truth (0 and 1): (1/2 + 2/2) / 2 = 3/4. */
START_TEST(absent_classes_and_false_positives_count_as_the_definitions_say)
{
    static const int32_t truth[4] = {0, 0, 1, 1}, pred[4] = {0, 2, 1, 1};
    void *state = metrics_for(4);
    scored s;
    ck_assert_int_eq(feed(state, truth, pred, 1, 2, 2), RB_OK);
    s = finalize(state);
    ck_assert_uint_eq(s.count, 6);
    expect(&s, 0, "miou", (1.0 / 2.0 + 1.0 + 0.0) / 3.0);
    expect(&s, 1, "pixel_accuracy", 3.0 / 4.0);
    expect(&s, 2, "mean_class_accuracy", (1.0 / 2.0 + 2.0 / 2.0) / 2.0);
    expect(&s, 3, "iou.0", 0.5);
    expect(&s, 4, "iou.1", 1.0);
    expect(&s, 5, "iou.2", 0.0);
    for (size_t i = 0; i < s.count; i++)
        ck_assert(isfinite(s.m[i].value));
    seg->ops.task->metrics_destroy(state);
}
END_TEST

START_TEST(bad_ground_truth_and_empty_evaluations_are_refused)
{
    static const int32_t bad_truth[12] = {0, 0, 1, 1, 255, 2, 2, 2, 255, 0, 3, 1}; /* 3 >= K at image 1 (1, 1) */
    static const int32_t negative[6] = {0, 0, 1, -1, 255, 2};
    static const int32_t ignored[6] = {255, 255, 255, 255, 255, 255};
    static const int32_t bad_pred[6] = {0, 1, 1, 1, 2, 7};
    void *state = metrics_for(3);
    scored s;
    rb_metric m[4];
    size_t count = 99;

    /* nothing accumulated yet: no pixel counted */
    ck_assert_int_eq(seg->ops.task->metrics_finalize(state, m, 4, &count), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "segment: no pixel was counted (no image accumulated, or every ground-truth "
                                      "pixel is the ignore label 255): give masks with labelled pixels");
    ck_assert_uint_eq(count, 0);
    /* only ignored pixels: the same */
    ck_assert_int_eq(feed(state, ignored, pred3, 1, 2, 3), RB_OK);
    ck_assert_int_eq(seg->ops.task->metrics_finalize(state, m, 4, &count), RB_ERR_INVALID_ARGUMENT);

    ck_assert_int_eq(feed(state, bad_truth, pred3, 2, 2, 3), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "segment: image 1 of the batch, pixel (row 1, column 1): ground-truth class 3 "
                                      "is outside [0, 3) and not the ignore label 255; the masks hold more classes "
                                      "than the model's 3");
    ck_assert_int_eq(feed(state, negative, pred3, 1, 2, 3), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "segment: image 0 of the batch, pixel (row 1, column 0): ground-truth class -1 "
                                      "is outside [0, 3) and not the ignore label 255; the masks hold more classes "
                                      "than the model's 3");
    ck_assert_int_eq(feed(state, truth3, bad_pred, 1, 2, 3), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(),
                     "segment: image 0 of the batch, pixel (row 1, column 2): predicted class 7 is outside [0, 3)");
    ck_assert_int_eq(feed(state, truth3, pred3, 2, 3, 2), RB_OK); /* the same values as 3 x 2: fine */
    {
        rb_predictions p = {.count = 2, .masks = (int32_t *)pred3, .mask_height = 2, .mask_width = 3};
        rb_targets t = {.count = 1, .masks = truth3, .mask_height = 2, .mask_width = 3};
        ck_assert_int_eq(seg->ops.task->metrics_accumulate(state, &p, &t), RB_ERR_INVALID_ARGUMENT);
        ck_assert_str_eq(rb_last_error(), "segment: 2 predicted masks but 1 true ones");
        t.count = 2;
        t.mask_height = 3;
        t.mask_width = 2;
        ck_assert_int_eq(seg->ops.task->metrics_accumulate(state, &p, &t), RB_ERR_INVALID_ARGUMENT);
        ck_assert_str_eq(rb_last_error(), "segment: predicted masks are 2x3 but the true ones 3x2");
        t.masks = NULL;
        ck_assert_int_eq(seg->ops.task->metrics_accumulate(state, &p, &t), RB_ERR_INVALID_ARGUMENT);
    }
    /* the refused batches counted nothing: only the good one is in the matrix */
    s = finalize(state);
    expect_three_classes(&s);
    seg->ops.task->metrics_destroy(state);
}
END_TEST

/* ------------------------------------------------------------ a whole model */

/* rb_evaluate of a small FCN model on 6 images of 16 x 16 with masks,
 * batch 4 (the last batch padded), against the metrics computed here from
 * the engine's outputs: a decode by hand and a confusion matrix. */
START_TEST(an_evaluation_reports_the_metrics_of_its_predictions)
{
    enum { N = 6, B = 4, S = 16, K = 3 };
    static uint8_t px[N * 3 * S * S];
    static float images[N * 3 * S * S], logits[N * K * S * S];
    static int32_t masks[N * S * S];
    int64_t labels[N] = {0}, confusion[K][K] = {{0}}, truth[K] = {0}, predicted[K] = {0}, right = 0, counted = 0;
    rb_model *m;
    rb_split *plain, *split;
    rb_targets t = {.count = N, .masks = masks, .mask_height = S, .mask_width = S};
    rb_eval_result ev;
    rb_engine *e;
    rb_engine_options o = {.data_grads_only = true};
    rb_rng rng;
    double iou = 0, recall = 0;
    int with_union = 0, present = 0, seen[K] = {0};
    rb_param_info bias;

    rb_rng_init(&rng, 11, 0, 0);
    for (size_t i = 0; i < sizeof px; i++) {
        px[i] = (uint8_t)(rb_rng_uniform(&rng) * 255.0f);
        images[i] = (float)px[i] / 255.0f;
    }
    for (int i = 0; i < N * S * S; i++) {
        float u = rb_rng_uniform(&rng);
        masks[i] = u < 0.1f ? RB_IGNORE_LABEL : (int32_t)(u * K) % K;
    }
    ck_assert_msg(seg_model(NULL, S, K, &m) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_graph_init_params(rb_model_graph(m), 5), RB_OK);
    /* biases that make all three classes win somewhere */
    ck_assert_int_eq(rb_graph_find_param(rb_model_graph(m), "classifier.4.bias", &bias), RB_OK);
    bias.value[0] = 0.6f;
    bias.value[1] = 0.0f;
    bias.value[2] = 0.0f;
    ck_assert_int_eq(rb_split_create(&plain, RB_DTYPE_U8, N, 3, S, S, px, labels, K, NULL, "scenes"), RB_OK);
    ck_assert_msg(rb_split_with_targets(&split, plain, &t) == RB_OK, "%s", rb_last_error());
    ck_assert_msg(rb_evaluate(m, split, B, NULL, &ev) == RB_OK, "%s", rb_last_error());

    /* the same model, by hand, in the same batches of 4: images 0-3, then
     * 4-5 and two rows of zeros whose pixels are all ignored */
    ck_assert_int_eq(rb_engine_create(&e, rb_model_graph(m), B, &o), RB_OK);
    for (int first = 0; first < N; first += B) {
        static float batch_images[B * 3 * S * S], batch_logits[B * K * S * S];
        static int32_t batch_masks[B * S * S];
        int rows = N - first < B ? N - first : B;
        rb_targets bt = {.count = B, .masks = batch_masks, .mask_height = S, .mask_width = S};
        memset(batch_images, 0, sizeof batch_images);
        for (int i = 0; i < B * S * S; i++)
            batch_masks[i] = RB_IGNORE_LABEL;
        memcpy(batch_images, images + (size_t)first * 3 * S * S, (size_t)rows * 3 * S * S * sizeof(float));
        memcpy(batch_masks, masks + (size_t)first * S * S, (size_t)rows * S * S * sizeof(int32_t));
        ck_assert_int_eq(rb_engine_forward_targets(e, batch_images, B, &bt, false), RB_OK);
        ck_assert_int_eq(rb_engine_read(e, rb_model_logits(m), batch_logits), RB_OK);
        memcpy(logits + (size_t)first * K * S * S, batch_logits, (size_t)rows * K * S * S * sizeof(float));
    }
    for (int i = 0; i < N; i++)
        for (int q = 0; q < S * S; q++) {
            int best = 0;
            for (int c = 1; c < K; c++)
                if (logits[(i * K + c) * S * S + q] > logits[(i * K + best) * S * S + q])
                    best = c;
            seen[best] = 1;
            if (masks[i * S * S + q] != RB_IGNORE_LABEL)
                confusion[masks[i * S * S + q]][best]++;
        }
    ck_assert_msg(seen[0] && seen[1] && seen[2], "every class should win somewhere for this test to mean much");
    for (int c = 0; c < K; c++)
        for (int j = 0; j < K; j++) {
            truth[c] += confusion[c][j];
            predicted[j] += confusion[c][j];
        }
    for (int c = 0; c < K; c++) {
        counted += truth[c];
        right += confusion[c][c];
        if (truth[c] + predicted[c] - confusion[c][c] > 0) {
            with_union++;
            iou += (double)confusion[c][c] / (double)(truth[c] + predicted[c] - confusion[c][c]);
        }
        if (truth[c] > 0) {
            present++;
            recall += (double)confusion[c][c] / (double)truth[c];
        }
    }
    ck_assert_str_eq(ev.score_name, "miou");
    ck_assert_int_eq(ev.count, N);
    ck_assert(isfinite(ev.mean_loss) && ev.mean_loss > 0);
    /* the same engine plan and the same arithmetic: exactly */
    ck_assert_uint_eq(ev.metric_count, 3 + K);
    ck_assert_str_eq(ev.metrics[0].name, "miou");
    ck_assert_msg(ev.accuracy == iou / with_union, "miou %.17g, want %.17g", ev.accuracy, iou / with_union);
    ck_assert(ev.metrics[0].value == iou / with_union);
    ck_assert_str_eq(ev.metrics[1].name, "pixel_accuracy");
    ck_assert(ev.metrics[1].value == (double)right / (double)counted);
    ck_assert_str_eq(ev.metrics[2].name, "mean_class_accuracy");
    ck_assert(ev.metrics[2].value == recall / present);
    ck_assert_str_eq(ev.metrics[3].name, "iou.0");
    ck_assert_str_eq(ev.metrics[5].name, "iou.2");
    rb_eval_result_free(&ev);
    rb_engine_destroy(e);
    rb_split_destroy(split);
    rb_split_destroy(plain);
    rb_model_destroy(m);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("segment");
    TCase *tc = tcase_create("segment");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, the_plugin_describes_itself);
    tcase_add_test(tc, fcn_heads_on_stride_8_and_16);
    tcase_add_test(tc, aspp_heads_on_stride_8_and_16);
    tcase_add_test(tc, bad_parameters_are_refused_with_one_line);
    tcase_add_test(tc, decode_takes_the_arg_max_and_ties_go_to_the_lowest_class);
    tcase_add_test(tc, metrics_on_a_hand_worked_confusion_matrix);
    tcase_add_test(tc, absent_classes_and_false_positives_count_as_the_definitions_say);
    tcase_add_test(tc, bad_ground_truth_and_empty_evaluations_are_refused);
    tcase_add_test(tc, an_evaluation_reports_the_metrics_of_its_predictions);
    suite_add_tcase(suite, tc);
    return run_suite(suite);
}
