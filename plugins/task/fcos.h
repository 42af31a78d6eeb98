/* FCOS (Tian et al., "FCOS: Fully Convolutional One-Stage Object
 * Detection") as torchvision 0.14 computes it (models/detection/fcos.py),
 * on two pyramid levels, strides 8 and 16: the points, their assignment to
 * ground-truth boxes, the training loss (a host op) and the decoding of the
 * head's raw outputs into scored boxes. The detect task plugin
 * (plugins/task/detect.c) is built on it; tests/check_detect.c and
 * tests/detect_parity.c compile it in to check it piece by piece.
 *
 * The head's raw outputs, in this order (FCOS_OUTPUTS nodes), level by
 * level, each plain row-major per image:
 *     level 0 (stride 8):  class logits K x H0 x W0, box regression 4 x H0 x W0,
 *                          centerness 1 x H0 x W0
 *     level 1 (stride 16): the same at H1 x W1
 * The box regression is torchvision's, after its ReLU: the distances from
 * the point to the box's left, top, right and bottom edges divided by the
 * level's anchor size (BoxLinearCoder(normalize_by_size=True)).
 *
 * Points. Level 0's stride s0 is the image's size over its grid, a whole
 * power of two (8 for a ResNet's stride-8 stage on an image whose size is
 * a multiple of 16, 2 under its CIFAR stem); level l's is s = s0 2^l.
 * Each position has one anchor of size s, as torchvision's
 * AnchorGenerator makes FCOS's (sizes equal to the strides, aspect ratio
 * 1): the anchor at row i, column j is the box (j s - s/2, i s - s/2,
 * j s + s/2, i s + s/2), so its point (its centre) is (j s, i s), the
 * corner of the cell, not its middle. torchvision takes the stride as the
 * image size divided by the grid size, rounded down: the same here, where
 * the division must be exact.
  */
#ifndef RB_PLUGINS_TASK_FCOS_H
#define RB_PLUGINS_TASK_FCOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <robusta/plugin.h>

#define FCOS_LEVELS 2
/* Raw outputs per level: class logits, box regression, centerness. */
#define FCOS_PER_LEVEL 3
#define FCOS_OUTPUTS (FCOS_LEVELS * FCOS_PER_LEVEL)
/* torchvision's FCOS defaults. */
#define FCOS_CENTER_SAMPLING_RADIUS 1.5f
#define FCOS_FOCAL_ALPHA 0.25
#define FCOS_FOCAL_GAMMA 2.0
#define FCOS_GIOU_EPS 1e-7
#define FCOS_PRIOR_PROBABILITY 0.01
#define FCOS_TOPK_CANDIDATES 1000
#define FCOS_SCORE_THRESHOLD 0.2
#define FCOS_NMS_THRESHOLD 0.6

/* One level's points and the sizes of box it is responsible for. */
typedef struct fcos_level {
    int64_t height, width; /* the grid */
    float stride;          /* 8, 16: the step between points, and the anchor's size */
    /* A point may take a box whose largest distance from the point to an
     * edge d (of l, t, r, b) has lower < d < upper: 4 and 8 anchor sizes,
     * except 0 on the first level and infinity on the last. */
    float lower, upper;
} fcos_level;

/* The largest stride fcos_stride accepts. */
#define FCOS_MAX_STRIDE 64

/* Level 0's stride on a height x width image whose level 0 has
 * grid_height x grid_width points: the image's size over the grid's, which
 * must be whole, the same both ways and a power of two up to
 * FCOS_MAX_STRIDE. `who` starts the message of a refusal, which says what
 * image sizes would do. */
rb_status fcos_stride(int64_t height, int64_t width, int64_t grid_height, int64_t grid_width, const char *who,
                      int64_t *stride);

/* The levels' geometry from the raw outputs' shapes (FCOS_OUTPUTS of them,
 * in the order above) and level 0's stride, checking that they fit
 * together: K >= 1 classes on both levels, 4 regression and 1 centerness
 * channels of the class logits' size, level l's grid level 0's over 2^l.
 * `who` starts the message of a refusal. */
rb_status fcos_levels(const int64_t (*shapes)[3], size_t count, int64_t stride, const char *who, int64_t *classes,
                      fcos_level levels[FCOS_LEVELS]);

/* The box of boxes[0 .. n) that point (x, y) of `level` is assigned to, or
 * -1 (background), as torchvision's FCOS.compute_loss matches, in float32:
 * a box qualifies when the point lies strictly inside it (all four
 * distances l = x - x1, t = y - y1, r = x2 - x, b = y2 - y are > 0), within
 * the centre region (max(|x - cx|, |y - cy|) < 1.5 anchor sizes, cx and cy
 * the box's centre) and the level's range (lower < max(l, t, r, b) <
 * upper). Of those the smallest wins: the largest 1e8 - area, in float32
 * (so areas closer than float32's spacing near 1e8, 8, tie), ties to the
 * first box, as torch.max picks. */
int64_t fcos_match(const fcos_level *level, float x, float y, const rb_box *boxes, int64_t n);

/* The centerness target of a point at distances l, t, r, b from a box's
 * edges: sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)). */
double fcos_centerness(double l, double t, double r, double b);

/* The FCOS loss as a host op (robusta/graph.h), on the FCOS_OUTPUTS raw
 * outputs and the batch's boxes (rb_host_io.targets), per image:
 *   classification: sigmoid focal loss (alpha 0.25, gamma 2) of every
 *     class logit against the one-hot class of the point's box (all zero
 *     for background points);
 *   box regression: for foreground points, the generalized-IoU loss
 *     (eps 1e-7) of the decoded box (x - l s, y - t s, x + r s, y + b s)
 *     against the point's box;
 *   centerness: for foreground points, binary cross-entropy with logits
 *     against fcos_centerness of the point's box;
 * the three summed and divided by max(1, the batch's foreground points), as
 * torchvision divides each; each image's value is its share of that sum
 * times the batch size, so that the engine's mean over the batch is the
 * batch's loss. An image without boxes adds only its focal loss on
 * background. Refused: a batch without box targets, a box whose class is
 * outside the logits' K. `stride` is level 0's (fcos_stride); the op's
 * `user` points to a constant that stands for it. */
rb_status fcos_loss_op(rb_host_op *op, int64_t stride);

/* What decode keeps. */
typedef struct fcos_decode_options {
    double score_threshold; /* keep scores > this (torchvision 0.2) */
    double nms_threshold;   /* suppress IoU > this within a class (0.6) */
    int64_t height, width;  /* the image: its stride (fcos_stride), and the boxes are clipped to it */
} fcos_decode_options;

/* torchvision's FCOS.postprocess_detections on `rows` images' raw outputs
 * (outputs[k]: rows x shapes[k], plain): per level, score =
 * sqrt(sigmoid(class logit) sigmoid(centerness)) of every (point, class),
 * those > score_threshold, the best FCOS_TOPK_CANDIDATES of them, decoded
 * and clipped to [0, width] x [0, height]; then both levels together,
 * greedy non-maximum suppression per class (IoU > nms_threshold, IoU
 * without +1, a pair of empty boxes 0), and the best out->max_boxes kept,
 * best first. Ties in score go to the earlier candidate: level 0 before
 * level 1, then point by point in row-major order, then class by class
 * (torchvision leaves them to its sort). Writes out->boxes, scores and
 * box_counts. */
rb_status fcos_decode(const fcos_decode_options *options, const float *const *outputs, const int64_t (*shapes)[3],
                      size_t count, int64_t rows, rb_predictions *out);

#endif /* RB_PLUGINS_TASK_FCOS_H */
