/* robusta/targets.h: what a batch asks the model to predict.
 *
 * Classification needs one integer per image; dense tasks need more. A
 * batch's targets are any of:
 *   labels  one class per image (count values in [0, classes));
 *   masks   one class per pixel (count × height × width int32 values in
 *           [0, classes), or RB_IGNORE_LABEL for pixels no loss counts:
 *           boundaries, "void"), as Pascal VOC's SegmentationClass PNGs;
 *   boxes   a list of boxes per image, of any length (0 included), in
 *           pixels of the image as the model sees it: corners x1 <= x2,
 *           y1 <= y2 inside [0, width] × [0, height], each with a class.
 *           All boxes of the batch lie in one array, image after image;
 *           image i's are boxes[box_offsets[i] .. box_offsets[i + 1]).
 *
 * The loader fills the targets a split has (rb_batch.targets); augmentation
 * moves masks and boxes with the pixels. The engine hands them to the graph
 * (rb_graph_target nodes) without copies: losses and host ops read them
 * where they lie.
 */
#ifndef ROBUSTA_TARGETS_H
#define ROBUSTA_TARGETS_H

#include <stdint.h>
#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A mask value that no loss or metric counts (Pascal VOC's boundary). */
#define RB_IGNORE_LABEL 255

/* One box, corners in pixels (not +1: a box from x1 to x2 is x2 - x1 wide). */
typedef struct rb_box {
    float x1, y1, x2, y2;
    int64_t label;
} rb_box;

typedef struct rb_targets {
    int64_t count;              /* images */
    const int64_t *labels;      /* count, or NULL */
    const int32_t *masks;       /* count × mask_height × mask_width, or NULL */
    int64_t mask_height, mask_width;
    const rb_box *boxes;        /* box_offsets[count] boxes, or NULL with box_offsets NULL */
    const int64_t *box_offsets; /* count + 1 non-decreasing offsets from 0, or NULL */
} rb_targets;

/* Checks targets against a model's classes and image size: labels in
 * [0, classes); masks of height × width holding classes or
 * RB_IGNORE_LABEL; box offsets that start at 0 and never decrease; boxes
 * with finite corners, x1 <= x2 and y1 <= y2, inside [0, width] ×
 * [0, height], and labels in [0, classes). RB_ERR_INVALID_ARGUMENT with one
 * line naming `where` ("batch 3", "train.npy"), the image and the value
 * otherwise. NULL members are not checked. */
RB_API rb_status rb_targets_check(const rb_targets *targets, int64_t classes, int64_t height, int64_t width,
                                  const char *where);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_TARGETS_H */
