/* segment: semantic segmentation heads for transfer learning, the dense
 * target task of the robust-prior question ("do robust backbones segment
 * better?").
 *
 * Two heads, as torchvision's segmentation models build them, on one
 * backbone stage (--stage stride8: RB_STAGE_STRIDE8, layer2's output;
 * stride16: RB_STAGE_STRIDE16, layer3's), followed by bilinear upsampling
 * (align_corners=False) of the class logits to the input size, as
 * torchvision's FCN and DeepLabV3 models do after their head:
 *
 *   --head fcn (FCNHead(in, K)), C = --channels, default in / 4:
 *     classifier.0  conv 3x3, pad 1, no bias, in -> C
 *     classifier.1  batch-norm, then ReLU
 *     classifier.4  conv 1x1 with bias, C -> K
 *
 *   --head aspp (DeepLabHead(in, K)), C = --channels, default 256, R rates:
 *     classifier.0.convs.0.0          conv 1x1, no bias, in -> C; .1 batch-norm; ReLU
 *     classifier.0.convs.i.0 (i=1..R) conv 3x3, dilation = padding = rate i; .1 batch-norm; ReLU
 *     classifier.0.convs.R+1          image pooling: global average pool, .1 conv 1x1 no
 *                                     bias in -> C, .2 batch-norm, ReLU, bilinear upsampling
 *                                     back to the stage's size (index 0 is the pooling)
 *     concat of the R + 2 branches, then
 *     classifier.0.project.0          conv 1x1, no bias, (R + 2) C -> C; .1 batch-norm; ReLU
 *     classifier.1                    conv 3x3, pad 1, no bias, C -> C
 *     classifier.2                    batch-norm, then ReLU
 *     classifier.4                    conv 1x1 with bias, C -> K
 *
 * The tensor names are torchvision's (the head is the model's `classifier`),
 * so a head's weights move between robusta and torchvision name for name.
 * What differs: torchvision has a Dropout(0.1) before FCNHead's last
 * convolution (classifier.3) and a Dropout(0.5) at the end of ASPP's
 * projection; robusta's engine has no dropout op, so both are left out. In
 * evaluation mode dropout is the identity and the two agree (tests/
 * torch-segment-parity.sh); in training they differ by that regularization.
 * DeepLabHead fixes C at 256; --channels allows a smaller head.
 *
 * Loss: per-pixel softmax cross-entropy against the masks, ignoring
 * RB_IGNORE_LABEL (255), averaged over the batch's counted pixels (torch's
 * CrossEntropyLoss(ignore_index=255)). Decode: the arg-max class per pixel
 * (ties to the lowest class).
 *
 * Metrics, from one K x K confusion matrix over everything accumulated
 * (pixels whose ground truth is 255 are skipped; a ground-truth class >= K
 * is an error): "miou", the mean over classes with a non-empty union
 * (TP + FP + FN > 0) of TP / (TP + FP + FN); "pixel_accuracy", TP summed
 * over the counted pixels; "mean_class_accuracy", the mean over classes
 * present in the ground truth of TP / (TP + FN); and "iou.K" for every
 * class K with a non-empty union. An evaluation that counted no pixel is
 * an error, never a NaN. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/graph.h>
#include <robusta/plugin.h>

#define SEGMENT_WHO "segment"
/* Branches of the pyramid are concatenated: one 1x1, one per rate and the
 * pooling, so at most RB_CONCAT_MAX - 2 rates. */
#define SEGMENT_MAX_RATES (RB_CONCAT_MAX - 2)
/* DeepLabHead's width. */
#define SEGMENT_ASPP_CHANNELS 256

static const rb_param_spec segment_params[] = {
    {"head", RB_PARAM_CHOICE, "fcn", "fcn|aspp", 0,
     "fcn: torchvision's FCNHead (3x3 conv, batch-norm, ReLU, 1x1 conv); aspp: DeepLabHead (atrous "
     "pyramid with image pooling)"},
    {"stage", RB_PARAM_CHOICE, "stride8", "stride8|stride16", 0,
     "the backbone stage the head reads: stride8 (stage2, layer2's output) or stride16 (stage3)"},
    {"channels", RB_PARAM_INT, NULL, "[1, 65536]", 0,
     "fcn: inner width (default: the stage's channels / 4); aspp: width of every branch and layer after "
     "them (default 256)"},
    {"rates", RB_PARAM_INT_LIST, "12,24,36", "[1, 4096]", 0,
     "aspp only: dilation (and padding) of each 3x3 branch, 1 to 6 of them"},
    {.name = NULL}};

/* The parameters, read and checked once. */
typedef struct segment_cfg {
    bool aspp;
    const char *stage;   /* RB_STAGE_STRIDE8 or RB_STAGE_STRIDE16 */
    int64_t channels;    /* 0: the head's default */
    const int64_t *rates;
    size_t n_rates;
} segment_cfg;

static rb_status resolve(const rb_params *params, segment_cfg *cfg)
{
    const char *head, *stage;
    rb_status s;
    memset(cfg, 0, sizeof *cfg);
    if ((s = rb_params_get_string(params, "head", &head)) != RB_OK ||
        (s = rb_params_get_string(params, "stage", &stage)) != RB_OK ||
        (s = rb_params_get_int_list(params, "rates", &cfg->rates, &cfg->n_rates)) != RB_OK)
        return rb_error_prefix(SEGMENT_WHO ": ");
    if (rb_params_source(params, "channels") != RB_PARAM_UNSET &&
        (s = rb_params_get_int(params, "channels", &cfg->channels)) != RB_OK)
        return rb_error_prefix(SEGMENT_WHO ": ");
    cfg->aspp = strcmp(head, "aspp") == 0;
    cfg->stage = strcmp(stage, "stride16") == 0 ? RB_STAGE_STRIDE16 : RB_STAGE_STRIDE8;
    if (!cfg->aspp && rb_params_source(params, "rates") == RB_PARAM_GIVEN)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            SEGMENT_WHO ": --rates applies to --head aspp only; drop it or add --head aspp");
    if (cfg->n_rates > SEGMENT_MAX_RATES)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            SEGMENT_WHO ": --rates lists %zu rates; the pyramid takes 1 to %d", cfg->n_rates,
                            SEGMENT_MAX_RATES);
    return RB_OK;
}

static rb_status segment_stages(const rb_params *params, const char **names, size_t capacity, size_t *count)
{
    segment_cfg cfg;
    rb_status s = resolve(params, &cfg);
    (void)capacity; /* the host gives RB_TASK_MAX_STAGES */
    *count = 0;
    if (s != RB_OK)
        return s;
    names[0] = cfg.stage;
    *count = 1;
    return RB_OK;
}

/* NAME: conv (no bias) -> NAME' batch-norm -> ReLU, the unit every layer of
 * both heads but the last is made of; bn_name is the batch-norm's. */
static rb_status conv_bn_relu(rb_graph *g, const char *conv_name, const char *bn_name, rb_node *in,
                              const rb_conv_desc *d, rb_node **out)
{
    rb_node *x;
    rb_status s;
    if ((s = rb_graph_conv(g, conv_name, in, d, &x)) != RB_OK || (s = rb_graph_batchnorm(g, bn_name, x, &x)) != RB_OK)
        return s;
    return rb_graph_relu(g, x, out);
}

static rb_conv_desc conv_desc(int64_t out, int64_t kernel, int64_t padding, int64_t dilation, bool bias)
{
    return (rb_conv_desc){.out_channels = out,
                          .kernel = {kernel, kernel},
                          .padding = {padding, padding},
                          .dilation = {dilation, dilation},
                          .bias = bias};
}

/* DeepLab's atrous spatial pyramid pooling (classifier.0), C channels out. */
static rb_status build_aspp(rb_graph *g, rb_node *x, const segment_cfg *cfg, int64_t c, rb_node **out)
{
    rb_node *branches[RB_CONCAT_MAX], *y;
    char conv_name[64], bn_name[64];
    int64_t in_c, h, w;
    size_t n = 0, pool = cfg->n_rates + 1;
    rb_conv_desc d1 = conv_desc(c, 1, 0, 1, false);
    rb_upsample_desc up;
    rb_status s;

    rb_node_shape(x, &in_c, &h, &w);
    if ((s = conv_bn_relu(g, "classifier.0.convs.0.0", "classifier.0.convs.0.1", x, &d1, &branches[n++])) != RB_OK)
        return s;
    for (size_t i = 0; i < cfg->n_rates; i++) {
        rb_conv_desc d3 = conv_desc(c, 3, cfg->rates[i], cfg->rates[i], false);
        snprintf(conv_name, sizeof conv_name, "classifier.0.convs.%zu.0", i + 1);
        snprintf(bn_name, sizeof bn_name, "classifier.0.convs.%zu.1", i + 1);
        if ((s = conv_bn_relu(g, conv_name, bn_name, x, &d3, &branches[n++])) != RB_OK)
            return s;
    }
    /* image pooling: convs.{R+1}.0 is the AdaptiveAvgPool2d, which has no
     * tensors; its conv and batch-norm are .1 and .2 */
    snprintf(conv_name, sizeof conv_name, "classifier.0.convs.%zu.1", pool);
    snprintf(bn_name, sizeof bn_name, "classifier.0.convs.%zu.2", pool);
    up = (rb_upsample_desc){.mode = RB_UPSAMPLE_BILINEAR, .height = h, .width = w};
    if ((s = rb_graph_global_avgpool(g, x, &y)) != RB_OK ||
        (s = conv_bn_relu(g, conv_name, bn_name, y, &d1, &y)) != RB_OK ||
        (s = rb_graph_upsample(g, y, &up, &branches[n++])) != RB_OK)
        return s;
    if ((s = rb_graph_concat(g, branches, n, &y)) != RB_OK)
        return s;
    return conv_bn_relu(g, "classifier.0.project.0", "classifier.0.project.1", y, &d1, out);
}

static rb_status segment_build_head(rb_graph *g, const rb_params *params, const rb_task_target *target,
                                    rb_node **outputs, size_t capacity, size_t *count)
{
    segment_cfg cfg;
    rb_node *x;
    int64_t in_c, h, w, c;
    rb_conv_desc d3, classify;
    rb_upsample_desc up;
    rb_status s;

    (void)capacity; /* at least 1 */
    *count = 0;
    if ((s = resolve(params, &cfg)) != RB_OK)
        return s;
    if (target == NULL || target->num_classes < 2)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            SEGMENT_WHO ": the target has %" PRId64 " class(es); segmentation needs at least 2 "
                                        "(background and one more)",
                            target ? target->num_classes : 0);
    if ((s = rb_graph_find(g, cfg.stage, &x)) != RB_OK)
        return rb_error_set(s, SEGMENT_WHO ": the backbone publishes no '%s' stage to attach the head to (--stage)",
                            cfg.stage);
    rb_node_shape(x, &in_c, &h, &w);
    if (cfg.aspp) {
        c = cfg.channels > 0 ? cfg.channels : SEGMENT_ASPP_CHANNELS;
        d3 = conv_desc(c, 3, 1, 1, false);
        if ((s = build_aspp(g, x, &cfg, c, &x)) != RB_OK ||
            (s = conv_bn_relu(g, "classifier.1", "classifier.2", x, &d3, &x)) != RB_OK)
            return s;
    } else {
        c = cfg.channels > 0 ? cfg.channels : in_c / 4;
        if (c < 1)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                SEGMENT_WHO ": stage '%s' has %" PRId64 " channels, so the default inner width "
                                            "(channels / 4) is 0; give --channels",
                                cfg.stage, in_c);
        d3 = conv_desc(c, 3, 1, 1, false);
        if ((s = conv_bn_relu(g, "classifier.0", "classifier.1", x, &d3, &x)) != RB_OK)
            return s;
    }
    classify = conv_desc(target->num_classes, 1, 0, 1, true);
    up = (rb_upsample_desc){.mode = RB_UPSAMPLE_BILINEAR, .height = target->height, .width = target->width};
    if ((s = rb_graph_conv(g, "classifier.4", x, &classify, &x)) != RB_OK ||
        (s = rb_graph_upsample(g, x, &up, &outputs[0])) != RB_OK)
        return s;
    *count = 1;
    return RB_OK;
}

static rb_status segment_build_loss(rb_graph *g, const rb_params *params, rb_node *const *outputs, size_t count,
                                    rb_node *targets, rb_node **loss)
{
    (void)params;
    (void)count;
    return rb_graph_pixel_cross_entropy(g, outputs[0], targets, RB_IGNORE_LABEL, loss);
}

/* The arg-max class of every pixel; ties go to the lowest class (a later
 * class must be strictly greater to win). Memory-bound: 17-19 ms for 16 x
 * 21 x 224 x 224 logits on one core, however the planes are walked. */
static rb_status segment_decode(const rb_params *params, const rb_task_target *target, const float *const *outputs,
                                const int64_t (*shapes)[3], size_t count, int64_t rows, rb_predictions *out)
{
    int64_t k, hw;
    (void)params;
    (void)target;
    if (count < 1 || outputs == NULL || outputs[0] == NULL || out == NULL || out->masks == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, SEGMENT_WHO ": decode needs the logits and room for masks");
    k = shapes[0][0];
    hw = shapes[0][1] * shapes[0][2];
    if (shapes[0][1] != out->mask_height || shapes[0][2] != out->mask_width)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            SEGMENT_WHO ": the logits are %" PRId64 "x%" PRId64 " but the masks %" PRId64 "x%" PRId64,
                            shapes[0][1], shapes[0][2], out->mask_height, out->mask_width);
    for (int64_t i = 0; i < rows; i++) {
        const float *logits = outputs[0] + i * k * hw;
        int32_t *mask = out->masks + i * hw;
        for (int64_t q = 0; q < hw; q++) {
            int64_t best = 0;
            float top = logits[q];
            for (int64_t c = 1; c < k; c++)
                if (logits[c * hw + q] > top) {
                    top = logits[c * hw + q];
                    best = c;
                }
            mask[q] = (int32_t)best;
        }
    }
    return RB_OK;
}

/* The confusion matrix: confusion[truth * classes + predicted] pixels. */
typedef struct metrics {
    int64_t classes;
    uint64_t *confusion;
    char (*names)[32]; /* "iou.K", owned here so finalize can hand out pointers */
} metrics;

static void segment_metrics_destroy(void *state)
{
    metrics *m = state;
    if (m == NULL)
        return;
    free(m->confusion);
    free(m->names);
    free(m);
}

static rb_status segment_metrics_create(const rb_params *params, const rb_task_target *target, void **state)
{
    metrics *m;
    (void)params;
    *state = NULL;
    if (target == NULL || target->num_classes < 1 || target->num_classes > 4096)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, SEGMENT_WHO ": metrics need 1 to 4096 classes (got %" PRId64 ")",
                            target ? target->num_classes : 0);
    m = calloc(1, sizeof *m);
    if (m == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, SEGMENT_WHO ": out of memory for metrics");
    m->classes = target->num_classes;
    m->confusion = calloc((size_t)(m->classes * m->classes), sizeof *m->confusion);
    m->names = calloc((size_t)m->classes, sizeof *m->names);
    if (m->confusion == NULL || m->names == NULL) {
        segment_metrics_destroy(m);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, SEGMENT_WHO ": out of memory for metrics");
    }
    *state = m;
    return RB_OK;
}

/* Predicted masks against the batch's masks. The batch is checked whole
 * before anything is counted, so a refused batch leaves the matrix as it
 * was. */
static rb_status segment_metrics_accumulate(void *state, const rb_predictions *predictions, const rb_targets *targets)
{
    metrics *m = state;
    int64_t hw, n;
    if (m == NULL || predictions == NULL || targets == NULL || predictions->masks == NULL || targets->masks == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            SEGMENT_WHO ": metrics need a state, predicted masks and ground-truth masks");
    if (targets->count != predictions->count)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            SEGMENT_WHO ": %" PRId64 " predicted masks but %" PRId64 " true ones", predictions->count,
                            targets->count);
    if (targets->mask_height != predictions->mask_height || targets->mask_width != predictions->mask_width)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            SEGMENT_WHO ": predicted masks are %" PRId64 "x%" PRId64 " but the true ones %" PRId64
                                        "x%" PRId64,
                            predictions->mask_height, predictions->mask_width, targets->mask_height,
                            targets->mask_width);
    hw = targets->mask_height * targets->mask_width;
    n = targets->count * hw;
    for (int64_t i = 0; i < n; i++) {
        int32_t y = targets->masks[i], p = predictions->masks[i];
        if (y == RB_IGNORE_LABEL)
            continue;
        if (y < 0 || y >= m->classes)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                SEGMENT_WHO ": image %" PRId64 " of the batch, pixel (row %" PRId64 ", column %" PRId64
                                            "): ground-truth class %" PRId32 " is outside [0, %" PRId64
                                            ") and not the ignore label %d; the masks hold more classes than the "
                                            "model's %" PRId64,
                                i / hw, i % hw / targets->mask_width, i % targets->mask_width, y, m->classes,
                                RB_IGNORE_LABEL, m->classes);
        if (p < 0 || p >= m->classes)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                SEGMENT_WHO ": image %" PRId64 " of the batch, pixel (row %" PRId64 ", column %" PRId64
                                            "): predicted class %" PRId32 " is outside [0, %" PRId64 ")",
                                i / hw, i % hw / targets->mask_width, i % targets->mask_width, p, m->classes);
    }
    for (int64_t i = 0; i < n; i++)
        if (targets->masks[i] != RB_IGNORE_LABEL)
            m->confusion[(int64_t)targets->masks[i] * m->classes + predictions->masks[i]]++;
    return RB_OK;
}

static rb_status segment_metrics_finalize(void *state, rb_metric *out, size_t capacity, size_t *count)
{
    metrics *m = state;
    int64_t k = m->classes;
    uint64_t counted = 0, right = 0;
    double iou_sum = 0, recall_sum = 0;
    int64_t with_union = 0, present = 0;
    size_t n = 0;
    /* per class: TP the diagonal, TP + FN its row (the truth), TP + FP its
     * column (the prediction) */
    for (int64_t c = 0; c < k; c++) {
        uint64_t tp = m->confusion[c * k + c], truth = 0, predicted = 0;
        for (int64_t j = 0; j < k; j++) {
            truth += m->confusion[c * k + j];
            predicted += m->confusion[j * k + c];
        }
        counted += truth;
        right += tp;
        if (truth + predicted - tp > 0) {
            with_union++;
            iou_sum += (double)tp / (double)(truth + predicted - tp);
        }
        if (truth > 0) {
            present++;
            recall_sum += (double)tp / (double)truth;
        }
    }
    *count = 0;
    if (counted == 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            SEGMENT_WHO ": no pixel was counted (no image accumulated, or every ground-truth pixel is "
                                        "the ignore label %d): give masks with labelled pixels",
                            RB_IGNORE_LABEL);
    /* counted > 0: some class has truth > 0, so both means have terms */
    if (n < capacity)
        out[n] = (rb_metric){"miou", iou_sum / (double)with_union};
    n++;
    if (n < capacity)
        out[n] = (rb_metric){"pixel_accuracy", (double)right / (double)counted};
    n++;
    if (n < capacity)
        out[n] = (rb_metric){"mean_class_accuracy", recall_sum / (double)present};
    n++;
    for (int64_t c = 0; c < k; c++) {
        uint64_t tp = m->confusion[c * k + c], truth = 0, predicted = 0;
        for (int64_t j = 0; j < k; j++) {
            truth += m->confusion[c * k + j];
            predicted += m->confusion[j * k + c];
        }
        if (truth + predicted - tp == 0)
            continue;
        snprintf(m->names[c], sizeof m->names[c], "iou.%" PRId64, c);
        if (n < capacity)
            out[n] = (rb_metric){m->names[c], (double)tp / (double)(truth + predicted - tp)};
        n++;
    }
    *count = n;
    return RB_OK;
}

RB_TASK_PLUGIN("segment", "1.0",
               "semantic segmentation: torchvision's FCN or DeepLabV3 head on a stride-8/16 stage, upsampled to the "
               "image; mIoU",
               segment_params, .dataset_kind = RB_DATASET_SEGMENTATION, .primary_metric = "miou",
               .stages = segment_stages, .build_head = segment_build_head, .build_loss = segment_build_loss,
               .decode = segment_decode, .metrics_create = segment_metrics_create,
               .metrics_accumulate = segment_metrics_accumulate, .metrics_finalize = segment_metrics_finalize,
               .metrics_destroy = segment_metrics_destroy);
