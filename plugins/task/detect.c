/* detect: object detection heads for transfer learning, the detection
 * target task of the robust-prior question (Salman et al. 2020 transfer
 * robust ImageNet backbones to VOC and COCO detection).
 *
 * An anchor-free head in the style of torchvision's FCOS (FCOSHead,
 * fcos.h) on the backbone's stride-8 and stride-16 stages (RB_STAGE_STRIDE8,
 * layer2's output; RB_STAGE_STRIDE16, layer3's; their actual strides are
 * the image's size over their grids', 2 and 4 under a CIFAR stem), joined
 * by a light top-down merge, C = --channels wide (default: the stride-8
 * stage's channels, at most 256):
 *
 *   fpn.inner_blocks.1.0   conv 1x1 with bias, stride-16 stage -> C: P16
 *   fpn.inner_blocks.0.0   conv 1x1 with bias, stride-8 stage -> C, plus P16
 *                          upsampled 2x (nearest): P8
 * then on P8 and on P16, the same layers (shared, as torchvision shares them
 * across levels):
 *   head.classification_head.conv.{3i}     conv 3x3 with bias, C -> C   (i < --convs)
 *   head.classification_head.conv.{3i+1}   GroupNorm(--groups (32), C), then ReLU
 *   head.classification_head.cls_logits    conv 3x3 with bias, C -> K
 *   head.regression_head.conv.{3i}, .{3i+1} the same tower
 *   head.regression_head.bbox_reg          conv 3x3 with bias, C -> 4, then ReLU
 *   head.regression_head.bbox_ctrness      conv 3x3 with bias, C -> 1
 * The raw outputs, in fcos.h's order: class logits, box regression and
 * centerness of P8, then of P16. The names are torchvision's FCOS's (its
 * FPN's lateral convolutions are backbone.fpn.inner_blocks), so the head's
 * tensors move to and from torchvision's FCOSHead name for name.
 *
 * What differs from torchvision's fcos_resnet50_fpn: two levels (P3 and P4
 * of its five), and its FPN's 3x3 output convolutions (layer_blocks) and
 * extra levels (P6, P7) are left out: the head reads the merged laterals
 * directly. --norm batch (torchvision's FCOSHead takes no other norm, but
 * its heads do) shares the convolutions and gives each level a batch-norm
 * of its own, level 1's named as level 0's with ".level1" after it
 * (head.classification_head.conv.1.level1.weight ...): batch statistics
 * belong to one input.
 *
 * Initialization (init_head): torchvision's, normal(0, 0.01) weights and
 * a class bias for probability 0.01 (detect_init_head below).
 *
 * Loss: torchvision's FCOS loss (fcos.h): sigmoid focal loss on the
 * classes, GIoU on the boxes and binary cross-entropy on the centerness,
 * with its centre sampling and scale ranges, each summed and divided by the
 * batch's foreground points. Decode: torchvision's post-processing, with
 * --score-threshold and --nms.
 *
 * Metrics: box AP exactly as pycocotools computes it (robusta/coco.h), on
 * every image accumulated, ground truth in the model's pixels (area w x h,
 * none crowd): "ap" (IoU .50:.95), "ap50", "ap75", "ap_small", "ap_medium",
 * "ap_large", "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large",
 * in pycocotools' order; -1 where nothing was measured, as pycocotools
 * reports it (no ground truth of that size). The size ranges follow these
 * box areas, not a COCO file's mask areas in its own pixels, so they may
 * differ from coco-eval's on the original annotations. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/coco.h>
#include <robusta/graph.h>
#include <robusta/plugin.h>

#include "fcos.h"

#define DETECT_WHO "detect"
/* The default width's cap: torchvision's FPN width. */
#define DETECT_MAX_DEFAULT_CHANNELS 256

static const rb_param_spec detect_params[] = {
    {"channels", RB_PARAM_INT, NULL, "[1, 65536]", 0,
     "width of the merged pyramid and of the head (default: the stride-8 stage's channels, at most 256)"},
    {"convs", RB_PARAM_INT, "4", "[0, 16]", 0, "3x3 conv, norm and ReLU layers in each tower (torchvision: 4)"},
    {"norm", RB_PARAM_CHOICE, "group", "group|batch", 0,
     "the towers' normalization: group (torchvision's GroupNorm, shared by both levels) or batch (one batch-norm "
     "per level)"},
    {"groups", RB_PARAM_INT, "32", "[1, 65536]", 0, "--norm group: the groups, which must divide --channels"},
    {"score-threshold", RB_PARAM_FLOAT, "0.2", "[0, 1]", 0,
     "decode keeps boxes scoring above this (score: sqrt(class probability x centerness))"},
    {"nms", RB_PARAM_FLOAT, "0.6", "[0, 1]", 0,
     "decode drops a box overlapping a better one of its class by more than this IoU"},
    {.name = NULL}};

/* The parameters, read once. */
typedef struct detect_cfg {
    int64_t channels; /* 0: the default */
    int64_t convs;
    bool batch_norm;
    int64_t groups;
    double score_threshold, nms;
} detect_cfg;

static rb_status resolve(const rb_params *params, detect_cfg *cfg)
{
    const char *norm;
    memset(cfg, 0, sizeof *cfg);
    if (rb_params_get_int(params, "convs", &cfg->convs) != RB_OK ||
        rb_params_get_string(params, "norm", &norm) != RB_OK ||
        rb_params_get_int(params, "groups", &cfg->groups) != RB_OK ||
        rb_params_get_float(params, "score-threshold", &cfg->score_threshold) != RB_OK ||
        rb_params_get_float(params, "nms", &cfg->nms) != RB_OK ||
        (rb_params_source(params, "channels") != RB_PARAM_UNSET &&
         rb_params_get_int(params, "channels", &cfg->channels) != RB_OK))
        return rb_error_prefix(DETECT_WHO ": ");
    cfg->batch_norm = strcmp(norm, "batch") == 0;
    if (cfg->batch_norm && rb_params_source(params, "groups") == RB_PARAM_GIVEN)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            DETECT_WHO ": --groups applies to --norm group only; drop it or use --norm group");
    return RB_OK;
}

static rb_status detect_stages(const rb_params *params, const char **names, size_t capacity, size_t *count)
{
    (void)params;
    (void)capacity; /* the host gives RB_TASK_MAX_STAGES */
    names[0] = RB_STAGE_STRIDE8;
    names[1] = RB_STAGE_STRIDE16;
    *count = 2;
    return RB_OK;
}

static rb_conv_desc conv_desc(int64_t out, int64_t kernel)
{
    return (rb_conv_desc){.out_channels = out, .kernel = {kernel, kernel}, .padding = {kernel / 2, kernel / 2},
                          .bias = true};
}

/* The head's layers are made on level 0 and applied again to level 1 with
 * the same parameters: `first` is the layer on level 0, NULL while it is
 * being made. */
static rb_status head_conv(rb_graph *g, const char *name, rb_node **first, rb_node *in, const rb_conv_desc *d,
                           rb_node **out)
{
    rb_status s;
    if (*first != NULL)
        return rb_graph_reuse(g, *first, in, out);
    if ((s = rb_graph_conv(g, name, in, d, out)) == RB_OK)
        *first = *out;
    return s;
}

/* A tower's norm, then ReLU: group norm shared as the convolutions are;
 * batch-norm, whose statistics belong to one input, once per level (level
 * 1's named as level 0's with ".level1" after it). */
static rb_status head_norm_relu(rb_graph *g, const detect_cfg *cfg, const char *name, int level, rb_node **first,
                                rb_node *in, rb_node **out)
{
    char full[128];
    rb_node *x;
    rb_status s;
    if (cfg->batch_norm) {
        if (level == 0)
            snprintf(full, sizeof full, "%s", name);
        else
            snprintf(full, sizeof full, "%s.level%d", name, level);
        s = rb_graph_batchnorm(g, full, in, &x);
    } else if (*first != NULL) {
        s = rb_graph_reuse(g, *first, in, &x);
    } else if ((s = rb_graph_groupnorm(g, name, in, cfg->groups, &x)) == RB_OK) {
        *first = x;
    }
    if (s != RB_OK)
        return s;
    return rb_graph_relu(g, x, out);
}

/* The layers of one tower on level 0, to apply to level 1. */
#define DETECT_MAX_CONVS 16
typedef struct tower_layers {
    rb_node *conv[DETECT_MAX_CONVS], *norm[DETECT_MAX_CONVS];
} tower_layers;

/* A tower (prefix "head.classification_head" or "head.regression_head")
 * of cfg->convs conv-norm-ReLU layers on level `level`'s features. */
static rb_status tower(rb_graph *g, const detect_cfg *cfg, const char *prefix, int64_t c, int level,
                       tower_layers *layers, rb_node *x, rb_node **out)
{
    rb_conv_desc d3 = conv_desc(c, 3);
    char name[96];
    rb_status s;
    for (int64_t i = 0; i < cfg->convs; i++) {
        snprintf(name, sizeof name, "%s.conv.%" PRId64, prefix, 3 * i);
        if ((s = head_conv(g, name, &layers->conv[i], x, &d3, &x)) != RB_OK)
            return s;
        snprintf(name, sizeof name, "%s.conv.%" PRId64, prefix, 3 * i + 1);
        if ((s = head_norm_relu(g, cfg, name, level, &layers->norm[i], x, &x)) != RB_OK)
            return s;
    }
    *out = x;
    return RB_OK;
}

static rb_status detect_build_head(rb_graph *g, const rb_params *params, const rb_task_target *target,
                                   rb_node **outputs, size_t capacity, size_t *count)
{
    detect_cfg cfg;
    rb_node *stage[FCOS_LEVELS], *level[FCOS_LEVELS], *x;
    rb_node *cls_logits = NULL, *bbox_reg = NULL, *bbox_ctrness = NULL;
    tower_layers cls_tower, reg_tower;
    int64_t ch[FCOS_LEVELS], h[FCOS_LEVELS], w[FCOS_LEVELS], c, stride;
    rb_conv_desc lateral, dk, d4 = conv_desc(4, 3), d1 = conv_desc(1, 3);
    rb_upsample_desc up = {.mode = RB_UPSAMPLE_NEAREST, .factor = 2};
    const char *names[FCOS_LEVELS] = {RB_STAGE_STRIDE8, RB_STAGE_STRIDE16};
    rb_status s;

    *count = 0;
    memset(&cls_tower, 0, sizeof cls_tower);
    memset(&reg_tower, 0, sizeof reg_tower);
    if ((s = resolve(params, &cfg)) != RB_OK)
        return s;
    if (capacity < FCOS_OUTPUTS)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, DETECT_WHO ": the head has %d outputs but room for %zu was given",
                            FCOS_OUTPUTS, capacity);
    if (target == NULL || target->num_classes < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            DETECT_WHO ": the target has %" PRId64 " classes; detection needs at least 1",
                            target ? target->num_classes : 0);
    for (int l = 0; l < FCOS_LEVELS; l++) {
        if ((s = rb_graph_find(g, names[l], &stage[l])) != RB_OK)
            return rb_error_set(s, DETECT_WHO ": the backbone publishes no '%s' stage (stride %d) to attach the head to",
                                names[l], 8 << l);
        rb_node_shape(stage[l], &ch[l], &h[l], &w[l]);
    }
    if (h[0] != 2 * h[1] || w[0] != 2 * w[1])
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            DETECT_WHO ": the stride-8 stage is %" PRId64 "x%" PRId64 " but the stride-16 stage %" PRId64
                                       "x%" PRId64 ", not half of it, so the top-down merge cannot add them; with a "
                                       "ResNet, use image sizes that are multiples of 16 (these are %" PRId64 "x%" PRId64
                                       ")",
                            w[0], h[0], w[1], h[1], target->width, target->height);
    if ((s = fcos_stride(target->height, target->width, h[0], w[0], DETECT_WHO, &stride)) != RB_OK)
        return s;
    c = cfg.channels > 0 ? cfg.channels : ch[0] < DETECT_MAX_DEFAULT_CHANNELS ? ch[0] : DETECT_MAX_DEFAULT_CHANNELS;
    if (!cfg.batch_norm && cfg.convs > 0 && c % cfg.groups != 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            DETECT_WHO ": group norm splits the head's %" PRId64 " channels into %" PRId64
                                       " groups, which does not divide them; give --channels a multiple of --groups "
                                       "(%s), or fewer --groups",
                            c, cfg.groups, cfg.channels > 0 ? "--channels given" : "the stride-8 stage's width");
    if (cfg.convs > DETECT_MAX_CONVS)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, DETECT_WHO ": %" PRId64 " convs; at most %d", cfg.convs,
                            DETECT_MAX_CONVS);

    /* the top-down merge */
    lateral = conv_desc(c, 1);
    if ((s = rb_graph_conv(g, "fpn.inner_blocks.1.0", stage[1], &lateral, &level[1])) != RB_OK ||
        (s = rb_graph_conv(g, "fpn.inner_blocks.0.0", stage[0], &lateral, &x)) != RB_OK ||
        (s = rb_graph_upsample(g, level[1], &up, &level[0])) != RB_OK ||
        (s = rb_graph_add(g, x, level[0], &level[0])) != RB_OK)
        return s;

    /* the head on each level, level 1 applying level 0's layers */
    dk = conv_desc(target->num_classes, 3);
    for (int l = 0; l < FCOS_LEVELS; l++) {
        rb_node **out = outputs + l * FCOS_PER_LEVEL;
        if ((s = tower(g, &cfg, "head.classification_head", c, l, &cls_tower, level[l], &x)) != RB_OK ||
            (s = head_conv(g, "head.classification_head.cls_logits", &cls_logits, x, &dk, &out[0])) != RB_OK ||
            (s = tower(g, &cfg, "head.regression_head", c, l, &reg_tower, level[l], &x)) != RB_OK ||
            (s = head_conv(g, "head.regression_head.bbox_reg", &bbox_reg, x, &d4, &out[1])) != RB_OK ||
            (s = rb_graph_relu(g, out[1], &out[1])) != RB_OK ||
            (s = head_conv(g, "head.regression_head.bbox_ctrness", &bbox_ctrness, x, &d1, &out[2])) != RB_OK)
            return s;
    }
    *count = FCOS_OUTPUTS;
    return RB_OK;
}

static rb_status detect_build_loss(rb_graph *g, const rb_params *params, rb_node *const *outputs, size_t count,
                                   rb_node *targets, rb_node **loss)
{
    rb_host_op op;
    int64_t c, h, w, stride;
    rb_status s;
    (void)params;
    (void)targets; /* the host op reads the batch's boxes itself */
    if (count != FCOS_OUTPUTS)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, DETECT_WHO ": the loss takes the head's %d outputs, not %zu",
                            FCOS_OUTPUTS, count);
    rb_node_shape(outputs[0], &c, &h, &w);
    if ((s = fcos_stride(rb_graph_target_height(g), rb_graph_target_width(g), h, w, DETECT_WHO, &stride)) != RB_OK ||
        (s = fcos_loss_op(&op, stride)) != RB_OK)
        return s;
    return rb_graph_host_op(g, "head.loss", &op, outputs, count, loss);
}

static rb_status detect_decode(const rb_params *params, const rb_task_target *target, const float *const *outputs,
                               const int64_t (*shapes)[3], size_t count, int64_t rows, rb_predictions *out)
{
    detect_cfg cfg;
    fcos_decode_options o;
    rb_status s = resolve(params, &cfg);
    if (s != RB_OK)
        return s;
    if (target == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, DETECT_WHO ": decode needs the target's image size");
    o = (fcos_decode_options){.score_threshold = cfg.score_threshold, .nms_threshold = cfg.nms,
                              .height = target->height, .width = target->width};
    return fcos_decode(&o, outputs, shapes, count, rows, out);
}

/* torchvision's initialization of FCOS's head and FPN (init_head):
 *   head convolutions (towers, cls_logits, bbox_reg, bbox_ctrness): weights
 *     normal(0, 0.01), biases 0, but cls_logits' bias -log((1 - 0.01) /
 *     0.01), so that every class starts at probability 0.01;
 *   the lateral convolutions: kaiming_uniform_(a=1), uniform in
 *     +-sqrt(3 / fan_in), biases 0;
 *   norms: weight 1, bias 0 (rb_graph_init_params's already).
 * Stream RB_RNG_USER + 1 of the seed, one substream per tensor index. */
static rb_status detect_init_head(rb_graph *g, const rb_params *params, uint64_t seed)
{
    const float prior = (float)-log((1 - FCOS_PRIOR_PROBABILITY) / FCOS_PRIOR_PROBABILITY);
    (void)params;
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        bool head, bias;
        rb_rng rng;
        rb_status s = rb_graph_param(g, i, &p);
        if (s != RB_OK)
            return s;
        head = strncmp(p.name, "head.", 5) == 0;
        if ((!head && strncmp(p.name, "fpn.", 4) != 0) || p.owner == NULL || rb_node_op(p.owner) != RB_OP_CONV)
            continue;
        bias = p.ndim == 1;
        rb_rng_init(&rng, seed, RB_RNG_STREAM(RB_RNG_USER + 1, 0), i);
        for (int64_t k = 0; k < p.numel; k++) {
            if (bias)
                p.value[k] = strcmp(p.name, "head.classification_head.cls_logits.bias") == 0 ? prior : 0.0f;
            else if (head)
                p.value[k] = 0.01f * rb_rng_normal(&rng);
            else
                p.value[k] = (2.0f * rb_rng_uniform(&rng) - 1.0f) * sqrtf(3.0f / (float)(p.numel / p.shape[0]));
        }
    }
    return RB_OK;
}

/* ------------------------------------------------------------ metrics */

/* Everything accumulated: the ground truth as COCO annotations (image ids
 * 0, 1, ... in the order seen, category ids the classes, annotation ids
 * from 1) and the detections. */
typedef struct metrics {
    int64_t classes, images;
    rb_coco_annotation *truth;
    size_t n_truth, cap_truth;
    rb_coco_detection *found;
    size_t n_found, cap_found;
} metrics;

static void detect_metrics_destroy(void *state)
{
    metrics *m = state;
    if (m == NULL)
        return;
    free(m->truth);
    free(m->found);
    free(m);
}

static rb_status detect_metrics_create(const rb_params *params, const rb_task_target *target, void **state)
{
    metrics *m;
    (void)params;
    *state = NULL;
    if (target == NULL || target->num_classes < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, DETECT_WHO ": metrics need at least 1 class (got %" PRId64 ")",
                            target ? target->num_classes : 0);
    if ((m = calloc(1, sizeof *m)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, DETECT_WHO ": out of memory for metrics");
    m->classes = target->num_classes;
    *state = m;
    return RB_OK;
}

/* Room for `more` entries of `size` bytes after `n` in *array. */
static bool reserve(void **array, size_t *cap, size_t n, size_t more, size_t size)
{
    size_t want = *cap ? *cap : 256;
    void *p;
    if (n + more <= *cap)
        return true;
    while (want < n + more)
        want *= 2;
    if ((p = realloc(*array, want * size)) == NULL)
        return false;
    *array = p;
    *cap = want;
    return true;
}

static void coco_box(const rb_box *b, double out[4])
{
    out[0] = b->x1;
    out[1] = b->y1;
    out[2] = (double)b->x2 - b->x1;
    out[3] = (double)b->y2 - b->y1;
}

/* A batch's predicted and true boxes. The batch is checked whole first, so
 * that a refused batch adds nothing. */
static rb_status detect_metrics_accumulate(void *state, const rb_predictions *p, const rb_targets *t)
{
    metrics *m = state;
    size_t boxes = 0, found = 0;
    if (m == NULL || p == NULL || t == NULL || p->boxes == NULL || p->scores == NULL || p->box_counts == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, DETECT_WHO ": metrics need a state and predicted boxes");
    if (t->box_offsets == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            DETECT_WHO ": the batch carries no true boxes; detection is scored against box targets");
    if (t->count != p->count)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            DETECT_WHO ": %" PRId64 " images of predictions but %" PRId64 " of true boxes", p->count,
                            t->count);
    for (int64_t i = 0; i < p->count; i++) {
        if (p->box_counts[i] < 0 || p->box_counts[i] > p->max_boxes)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                DETECT_WHO ": image %" PRId64 " of the batch has %" PRId64 " predicted boxes; 0 to %" PRId64,
                                i, p->box_counts[i], p->max_boxes);
        for (int64_t k = 0; k < p->box_counts[i]; k++) {
            const rb_box *b = &p->boxes[i * p->max_boxes + k];
            float score = p->scores[i * p->max_boxes + k];
            if (b->label < 0 || b->label >= m->classes || !(b->x2 >= b->x1) || !(b->y2 >= b->y1) ||
                !isfinite(b->x1) || !isfinite(b->y1) || !isfinite(b->x2) || !isfinite(b->y2) || !isfinite(score))
                return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                    DETECT_WHO ": image %" PRId64 " of the batch, predicted box %" PRId64
                                               ": (%g, %g, %g, %g) class %" PRId64 " score %g is not a box of the %" PRId64
                                               " classes with finite corners and score",
                                    i, k, (double)b->x1, (double)b->y1, (double)b->x2, (double)b->y2, b->label,
                                    (double)score, m->classes);
        }
        found += (size_t)p->box_counts[i];
        for (int64_t k = t->box_offsets[i]; k < t->box_offsets[i + 1]; k++) {
            const rb_box *b = &t->boxes[k];
            if (b->label < 0 || b->label >= m->classes || !(b->x2 >= b->x1) || !(b->y2 >= b->y1) ||
                !isfinite(b->x1) || !isfinite(b->y1) || !isfinite(b->x2) || !isfinite(b->y2))
                return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                    DETECT_WHO ": image %" PRId64 " of the batch, true box %" PRId64
                                               ": (%g, %g, %g, %g) class %" PRId64 " is not a box of the %" PRId64
                                               " classes with finite corners",
                                    i, k - t->box_offsets[i], (double)b->x1, (double)b->y1, (double)b->x2,
                                    (double)b->y2, b->label, m->classes);
        }
        boxes += (size_t)(t->box_offsets[i + 1] - t->box_offsets[i]);
    }
    if (!reserve((void **)&m->truth, &m->cap_truth, m->n_truth, boxes, sizeof *m->truth) ||
        !reserve((void **)&m->found, &m->cap_found, m->n_found, found, sizeof *m->found))
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, DETECT_WHO ": out of memory for the boxes of %" PRId64 " images",
                            m->images + p->count);
    for (int64_t i = 0; i < p->count; i++, m->images++) {
        for (int64_t k = t->box_offsets[i]; k < t->box_offsets[i + 1]; k++) {
            rb_coco_annotation *a = &m->truth[m->n_truth++];
            *a = (rb_coco_annotation){.id = (int64_t)m->n_truth, .image_id = m->images,
                                      .category_id = t->boxes[k].label};
            coco_box(&t->boxes[k], a->bbox);
            a->area = a->bbox[2] * a->bbox[3];
        }
        for (int64_t k = 0; k < p->box_counts[i]; k++) {
            rb_coco_detection *d = &m->found[m->n_found++];
            const rb_box *b = &p->boxes[i * p->max_boxes + k];
            *d = (rb_coco_detection){.image_id = m->images, .category_id = b->label,
                                     .score = p->scores[i * p->max_boxes + k]};
            coco_box(b, d->bbox);
        }
    }
    return RB_OK;
}

static rb_status detect_metrics_finalize(void *state, rb_metric *out, size_t capacity, size_t *count)
{
    static const char *const names[RB_COCO_STATS] = {"ap",  "ap50", "ap75",  "ap_small", "ap_medium", "ap_large",
                                                     "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large"};
    metrics *m = state;
    rb_coco gt = {0};
    double stats[RB_COCO_STATS];
    rb_status s = RB_OK;
    *count = 0;
    if (m->images == 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, DETECT_WHO ": no image was accumulated, so there is no AP");
    gt.images = calloc((size_t)m->images, sizeof *gt.images);
    gt.categories = calloc((size_t)m->classes, sizeof *gt.categories);
    if (gt.images == NULL || gt.categories == NULL)
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, DETECT_WHO ": out of memory for the evaluation");
    for (int64_t i = 0; s == RB_OK && i < m->images; i++)
        gt.images[i].id = i;
    for (int64_t c = 0; s == RB_OK && c < m->classes; c++)
        gt.categories[c].id = c;
    gt.n_images = (size_t)m->images;
    gt.n_categories = (size_t)m->classes;
    gt.annotations = m->truth;
    gt.n_annotations = m->n_truth;
    if (s == RB_OK && (s = rb_coco_evaluate(&gt, m->found, m->n_found, stats, NULL)) != RB_OK)
        rb_error_prefix(DETECT_WHO ": ");
    free(gt.images);
    free(gt.categories);
    if (s != RB_OK)
        return s;
    for (size_t i = 0; i < RB_COCO_STATS && i < capacity; i++)
        out[i] = (rb_metric){names[i], stats[i]};
    *count = RB_COCO_STATS;
    return RB_OK;
}

RB_TASK_PLUGIN("detect", "1.0",
               "object detection: torchvision's FCOS head on the stride-8 and stride-16 stages, merged top-down; COCO "
               "box AP",
               detect_params, .dataset_kind = RB_DATASET_DETECTION, .primary_metric = "ap", .stages = detect_stages,
               .build_head = detect_build_head, .build_loss = detect_build_loss, .decode = detect_decode,
               .metrics_create = detect_metrics_create, .metrics_accumulate = detect_metrics_accumulate,
               .metrics_finalize = detect_metrics_finalize, .metrics_destroy = detect_metrics_destroy,
               .init_head = detect_init_head);
