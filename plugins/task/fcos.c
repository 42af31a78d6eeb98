/* FCOS's points, target assignment and loss (fcos.h), as torchvision's
 * FCOS.compute_loss and FCOSHead.compute_loss compute them.
 *
 * The assignment is made in float32, as torch makes it, so that the same
 * points are foreground; the loss and its gradient are summed in double.
 *
 * Why one host op and not rb_graph_sigmoid_focal_loss on a host op's
 * one-hot targets, as the focal op is meant to be used: FCOS divides all
 * three terms by the batch's foreground points, and a task's loss is one
 * node. The model lists that node alone among the engine's outputs (the
 * engine computes only what its outputs need), and no op may take a loss
 * as input, so a focal node and a box-loss node cannot both count towards
 * the objective. The focal term is therefore computed here, on the same
 * formula as src/nn/ops/focal.c (torchvision.ops.sigmoid_focal_loss);
 * once models can sum several loss nodes it should become that op. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fcos.h"

rb_status fcos_stride(int64_t height, int64_t width, int64_t grid_height, int64_t grid_width, const char *who,
                      int64_t *stride)
{
    int64_t s = grid_height > 0 ? height / grid_height : 0;
    *stride = 0;
    if (grid_height < 1 || grid_width < 1 || s < 1 || s * grid_height != height || s * grid_width != width ||
        s > FCOS_MAX_STRIDE || (s & (s - 1)) != 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s: the %" PRId64 "x%" PRId64 " image does not divide into the first level's %" PRId64
                            "x%" PRId64 " points by one power of two up to %d; with a ResNet's stride-8 stage, use "
                            "image sizes that are multiples of 16",
                            who, width, height, grid_width, grid_height, FCOS_MAX_STRIDE);
    *stride = s;
    return RB_OK;
}

rb_status fcos_levels(const int64_t (*shapes)[3], size_t count, int64_t stride, const char *who, int64_t *classes,
                      fcos_level levels[FCOS_LEVELS])
{
    static const char *const what[FCOS_PER_LEVEL] = {"class logits", "box regression", "centerness"};
    if (count != FCOS_OUTPUTS || shapes == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: %zu raw outputs; FCOS has %d (class logits, box regression "
                                                     "and centerness on each of %d levels)",
                            who, count, FCOS_OUTPUTS, FCOS_LEVELS);
    *classes = shapes[0][0];
    for (int l = 0; l < FCOS_LEVELS; l++) {
        const int64_t *cls = shapes[l * FCOS_PER_LEVEL];
        const int64_t want[FCOS_PER_LEVEL] = {*classes, 4, 1};
        if (cls[0] < 1 || cls[1] < 1 || cls[2] < 1)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: level %d: the class logits output is %" PRId64 "x%" PRId64 "x%" PRId64
                                "; it needs at least one class and one point",
                                who, l, cls[0], cls[1], cls[2]);
        for (int k = 0; k < FCOS_PER_LEVEL; k++) {
            const int64_t *s = shapes[l * FCOS_PER_LEVEL + k];
            if (s[0] != want[k] || s[1] != cls[1] || s[2] != cls[2])
                return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                    "%s: level %d: the %s output is %" PRId64 "x%" PRId64 "x%" PRId64
                                    "; it must be %" PRId64 "x%" PRId64 "x%" PRId64
                                    " (%" PRId64 " channel(s) at the size of the level's class logits)",
                                    who, l, what[k], s[0], s[1], s[2], want[k], cls[1], cls[2], want[k]);
        }
        if (l > 0 && (cls[1] << l != levels[0].height || cls[2] << l != levels[0].width))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: level %d has %" PRId64 "x%" PRId64 " points; it must have level 0's %" PRId64
                                "x%" PRId64 " divided by %d",
                                who, l, cls[2], cls[1], levels[0].width, levels[0].height, 1 << l);
        levels[l].height = cls[1];
        levels[l].width = cls[2];
        levels[l].stride = (float)(stride << l);
        levels[l].lower = l == 0 ? 0.0f : 4.0f * levels[l].stride;
        levels[l].upper = l == FCOS_LEVELS - 1 ? INFINITY : 8.0f * levels[l].stride;
    }
    return RB_OK;
}

int64_t fcos_match(const fcos_level *level, float x, float y, const rb_box *boxes, int64_t n)
{
    const float radius = FCOS_CENTER_SAMPLING_RADIUS * level->stride;
    int64_t best = -1;
    float best_key = 0.0f;
    for (int64_t m = 0; m < n; m++) {
        const rb_box *b = &boxes[m];
        /* one operation per statement: float32 as torch rounds, no fused
         * multiply-add */
        float cx = (b->x1 + b->x2) / 2.0f, cy = (b->y1 + b->y2) / 2.0f;
        float l = x - b->x1, t = y - b->y1, r = b->x2 - x, d = b->y2 - y;
        float far = fmaxf(fmaxf(l, t), fmaxf(r, d));
        float w = b->x2 - b->x1, h = b->y2 - b->y1, area, key;
        if (!(fmaxf(fabsf(x - cx), fabsf(y - cy)) < radius) || !(fminf(fminf(l, t), fminf(r, d)) > 0.0f) ||
            !(far > level->lower && far < level->upper))
            continue;
        area = w * h;
        key = 1e8f - area;
        if (key > best_key) { /* strictly: a tie keeps the earlier box */
            best_key = key;
            best = m;
        }
    }
    return best_key < 1e-5f ? -1 : best;
}

double fcos_centerness(double l, double t, double r, double b)
{
    return sqrt(fmin(l, r) / fmax(l, r) * (fmin(t, b) / fmax(t, b)));
}

/* ------------------------------------------------------------ the loss terms */

/* torchvision.ops.sigmoid_focal_loss of one logit x against t in {0, 1},
 * alpha 0.25 and gamma 2, and its derivative (the formula of
 * src/nn/ops/focal.c's reference). */
static double focal(double x, double t, double *dx)
{
    const double alpha = FCOS_FOCAL_ALPHA;
    double e = exp(-fabs(x));
    double p = x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e), q = x >= 0 ? e / (1.0 + e) : 1.0 / (1.0 + e);
    double ce = fmax(x, 0.0) - x * t + log1p(e);     /* BCE with logits */
    double m = t * q + (1 - t) * p;                  /* 1 - p_t */
    double a = alpha * t + (1 - alpha) * (1 - t);    /* alpha_t */
    /* gamma 2: d ce/dx = p - t, d m/dx = -(2t - 1) p q */
    *dx = a * ((p - t) * m * m + ce * 2.0 * m * (-(2 * t - 1) * p * q));
    return a * ce * m * m;
}

/* Binary cross-entropy with logits of x against t in [0, 1]; *dx = p - t. */
static double bce(double x, double t, double *dx)
{
    double e = exp(-fabs(x));
    *dx = (x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e)) - t;
    return fmax(x, 0.0) - x * t + log1p(e);
}

/* d max(a, b) / d a as torch gives it: 1, 0, or 1/2 on a tie. */
static double max_share(double a, double b)
{
    return a > b ? 1.0 : a == b ? 0.5 : 0.0;
}

/* torchvision.ops.generalized_box_iou_loss (eps 1e-7) of box p = (x1, y1,
 * x2, y2) against g, and its gradient with respect to p's corners. */
static double giou_loss(const double p[4], const double g[4], double dp[4])
{
    const double eps = FCOS_GIOU_EPS;
    double ix1 = fmax(p[0], g[0]), iy1 = fmax(p[1], g[1]), ix2 = fmin(p[2], g[2]), iy2 = fmin(p[3], g[3]);
    double iw = ix2 - ix1, ih = iy2 - iy1;
    bool overlap = iy2 > iy1 && ix2 > ix1;
    double inter = overlap ? iw * ih : 0.0;
    double pw = p[2] - p[0], ph = p[3] - p[1];
    double uni = pw * ph + (g[2] - g[0]) * (g[3] - g[1]) - inter;
    double cw = fmax(p[2], g[2]) - fmin(p[0], g[0]), ch = fmax(p[3], g[3]) - fmin(p[1], g[1]);
    double enclosing = cw * ch;
    double loss = 1.0 - inter / (uni + eps) + (enclosing - uni) / (enclosing + eps);
    /* L = 1 - I / (U + eps) + (C - U) / (C + eps), U = a_p + a_g - I */
    double g_uni = inter / ((uni + eps) * (uni + eps)) - 1.0 / (enclosing + eps);
    double g_inter = -1.0 / (uni + eps) - g_uni;
    double g_enc = (uni + eps) / ((enclosing + eps) * (enclosing + eps));
    /* the intersection's corners: max(p1, g1) and min(p2, g2); the
     * enclosing box's: min(p1, g1) and max(p2, g2) */
    double di_x1 = overlap ? -ih * max_share(p[0], g[0]) : 0.0, di_x2 = overlap ? ih * max_share(-p[2], -g[2]) : 0.0;
    double di_y1 = overlap ? -iw * max_share(p[1], g[1]) : 0.0, di_y2 = overlap ? iw * max_share(-p[3], -g[3]) : 0.0;
    double dc_x1 = -ch * max_share(-p[0], -g[0]), dc_x2 = ch * max_share(p[2], g[2]);
    double dc_y1 = -cw * max_share(-p[1], -g[1]), dc_y2 = cw * max_share(p[3], g[3]);
    dp[0] = g_inter * di_x1 + g_uni * -ph + g_enc * dc_x1;
    dp[1] = g_inter * di_y1 + g_uni * -pw + g_enc * dc_y1;
    dp[2] = g_inter * di_x2 + g_uni * ph + g_enc * dc_x2;
    dp[3] = g_inter * di_y2 + g_uni * pw + g_enc * dc_y2;
    return loss;
}

/* ------------------------------------------------------------ the host op */

#define LOSS_WHO "detect loss"

/* The batch's view: levels, classes, and each image's boxes. */
typedef struct loss_view {
    fcos_level levels[FCOS_LEVELS];
    int64_t classes;
} loss_view;

static rb_status view_of(const rb_host_io *io, const void *user, loss_view *v)
{
    const rb_targets *t = io->targets;
    rb_status s = fcos_levels(io->shapes, io->n_inputs, *(const int64_t *)user, LOSS_WHO, &v->classes, v->levels);
    if (s != RB_OK)
        return s;
    if (t == NULL || t->box_offsets == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            LOSS_WHO ": the batch carries no boxes; detection trains on data with box targets");
    if (t->count < io->batch)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            LOSS_WHO ": the batch has %" PRId64 " images but boxes for %" PRId64, io->batch, t->count);
    for (int64_t i = 0; i < io->batch; i++)
        for (int64_t k = t->box_offsets[i]; k < t->box_offsets[i + 1]; k++)
            if (t->boxes[k].label < 0 || t->boxes[k].label >= v->classes)
                return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                    LOSS_WHO ": box %" PRId64 " of image %" PRId64 " of the batch has class %" PRId64
                                             ", outside the head's %" PRId64 " classes",
                                    k - t->box_offsets[i], i, t->boxes[k].label, v->classes);
    return RB_OK;
}

/* One image's loss sum (the three terms before the division), its
 * foreground points, and, when grads is not NULL, the sum's gradient
 * times `scale` written into the inputs' gradients (those not NULL). */
static double image_loss(const rb_host_io *io, const loss_view *v, int64_t image, float *const *grads, double scale,
                         int64_t *foreground)
{
    const rb_targets *t = io->targets;
    const rb_box *boxes = t->boxes + t->box_offsets[image];
    int64_t n = t->box_offsets[image + 1] - t->box_offsets[image], k = v->classes;
    double sum = 0.0;
    *foreground = 0;
    for (int l = 0; l < FCOS_LEVELS; l++) {
        const fcos_level *lv = &v->levels[l];
        int64_t hw = lv->height * lv->width;
        size_t in = (size_t)l * FCOS_PER_LEVEL;
        const float *cls = io->inputs[in] + image * k * hw, *reg = io->inputs[in + 1] + image * 4 * hw,
                    *ctr = io->inputs[in + 2] + image * hw;
        float *dcls = grads && grads[in] ? grads[in] + image * k * hw : NULL;
        float *dreg = grads && grads[in + 1] ? grads[in + 1] + image * 4 * hw : NULL;
        float *dctr = grads && grads[in + 2] ? grads[in + 2] + image * hw : NULL;
        for (int64_t i = 0; i < lv->height; i++)
            for (int64_t j = 0; j < lv->width; j++) {
                int64_t q = i * lv->width + j;
                float x = (float)j * lv->stride, y = (float)i * lv->stride;
                int64_t m = fcos_match(lv, x, y, boxes, n), label = m >= 0 ? boxes[m].label : -1;
                double d;
                for (int64_t c = 0; c < k; c++) {
                    sum += focal(cls[c * hw + q], c == label ? 1.0 : 0.0, &d);
                    if (dcls != NULL)
                        dcls[c * hw + q] = (float)(scale * d);
                }
                if (m < 0)
                    continue;
                ++*foreground;
                {
                    const rb_box *b = &boxes[m];
                    double s = lv->stride, dp[4];
                    double p[4] = {x - reg[q] * s, y - reg[hw + q] * s, x + reg[2 * hw + q] * s,
                                   y + reg[3 * hw + q] * s};
                    double g[4] = {b->x1, b->y1, b->x2, b->y2};
                    double target = fcos_centerness((double)x - b->x1, (double)y - b->y1, b->x2 - (double)x,
                                                    b->y2 - (double)y);
                    sum += giou_loss(p, g, dp);
                    if (dreg != NULL) {
                        dreg[q] = (float)(scale * -s * dp[0]);
                        dreg[hw + q] = (float)(scale * -s * dp[1]);
                        dreg[2 * hw + q] = (float)(scale * s * dp[2]);
                        dreg[3 * hw + q] = (float)(scale * s * dp[3]);
                    }
                    sum += bce(ctr[q], target, &d);
                    if (dctr != NULL)
                        dctr[q] = (float)(scale * d);
                }
            }
    }
    return sum;
}

/* The state kept from forward to backward: the batch's foreground points. */
typedef struct loss_state {
    int64_t foreground;
} loss_state;

static rb_status loss_forward(const rb_host_io *io, void *user)
{
    loss_view v;
    int64_t total = 0, fg;
    rb_status s = view_of(io, user, &v);
    if (s != RB_OK)
        return s;
    for (int64_t i = 0; i < io->batch; i++) {
        io->output[i] = (float)image_loss(io, &v, i, NULL, 0.0, &fg);
        total += fg;
    }
    /* each image's share of the batch's sum / max(1, foreground), times
     * the batch size; the sum above was the image's own */
    for (int64_t i = 0; i < io->batch; i++)
        io->output[i] = (float)((double)io->output[i] * (double)io->batch / (double)(total > 1 ? total : 1));
    ((loss_state *)io->state)->foreground = total;
    return RB_OK;
}

static rb_status loss_backward(const rb_host_io *io, void *user)
{
    loss_view v;
    int64_t total = ((const loss_state *)io->state)->foreground, fg;
    rb_status s = view_of(io, user, &v);
    if (s != RB_OK)
        return s;
    for (int64_t i = 0; i < io->batch; i++)
        image_loss(io, &v, i, io->input_grads,
                   (double)io->output_grad[i] * (double)io->batch / (double)(total > 1 ? total : 1), &fg);
    return RB_OK;
}

/* The strides fcos_loss_op accepts, as `user`: constants that outlive
 * every graph. */
static const int64_t loss_strides[] = {1, 2, 4, 8, 16, 32, 64};

rb_status fcos_loss_op(rb_host_op *op, int64_t stride)
{
    for (size_t i = 0; i < sizeof loss_strides / sizeof loss_strides[0]; i++)
        if (loss_strides[i] == stride) {
            *op = (rb_host_op){.name = LOSS_WHO,
                               .loss = true,
                               .state_bytes = sizeof(loss_state),
                               .forward = loss_forward,
                               .backward = loss_backward,
                               .user = (void *)&loss_strides[i]};
            return RB_OK;
        }
    return rb_error_set(RB_ERR_INVALID_ARGUMENT, LOSS_WHO ": stride %" PRId64 " is not a power of two up to %d", stride,
                        FCOS_MAX_STRIDE);
}
