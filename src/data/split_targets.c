/* Targets that splits carry besides labels (robusta/data.h, "targets"):
 * per-example masks and box lists at the stored image size, copied along
 * when a split is subset or resized, and placed for one example exactly as
 * rb_split_render places its pixels (resize, pad-then-crop, flip). */
#include "config.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/data.h>
#include <robusta/targets.h>

#include "data/data_internal.h"
#include "sys/internal.h"

/* ------------------------------------------------------------ life cycle */

bool rb_split_has_targets(const rb_split *s)
{
    return s->masks != NULL || s->box_offsets != NULL;
}

void rb_split_free_targets(rb_split *s)
{
    free(s->masks);
    free(s->boxes);
    free(s->box_offsets);
    free(s->near_rows);
    free(s->near_cols);
    s->masks = NULL;
    s->boxes = NULL;
    s->box_offsets = NULL;
    s->near_rows = s->near_cols = NULL;
    s->max_boxes = 0;
}

/* The split's targets become these arrays (owned from now on), with what
 * follows from them: the most boxes of one example, nearest taps when the
 * masks are resized. Frees the arrays if it fails. */
static rb_status install(rb_split *s, int32_t *masks, rb_box *boxes, int64_t *offsets)
{
    int32_t *rows = NULL, *cols = NULL;
    int64_t most = 0;
    if (masks != NULL && s->resized) {
        rows = rb_resize_nearest_axis(s->height, s->out_height);
        cols = rb_resize_nearest_axis(s->width, s->out_width);
        if (rows == NULL || cols == NULL) {
            free(rows);
            free(cols);
            free(masks);
            free(boxes);
            free(offsets);
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the mask resize tables of %s", s->name);
        }
    }
    for (int64_t i = 0; offsets != NULL && i < s->count; i++)
        if (offsets[i + 1] - offsets[i] > most)
            most = offsets[i + 1] - offsets[i];
    rb_split_free_targets(s);
    s->masks = masks;
    s->boxes = boxes;
    s->box_offsets = offsets;
    s->max_boxes = most;
    s->near_rows = rows;
    s->near_cols = cols;
    return RB_OK;
}

/* Room for `boxes` boxes (at least one, so that NULL means failure). */
static rb_box *box_array(int64_t boxes)
{
    if (boxes < 0 || (uint64_t)boxes > SIZE_MAX / 2 / sizeof(rb_box))
        return NULL;
    return malloc((boxes > 0 ? (size_t)boxes : 1) * sizeof(rb_box));
}

/* Whether `t` may become the targets of `s`; one line if not. A feature
 * split's targets say the size of the images they refer to in
 * mask_height × mask_width. */
static rb_status validate(const rb_split *s, const rb_targets *t)
{
    const bool features = s->kind == RB_DATASET_FEATURES;
    rb_status st;
    if (features && (t->mask_height <= 0 || t->mask_width <= 0 || t->mask_height > INT_MAX / 2 ||
                     t->mask_width > INT_MAX / 2))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s holds features, not images: its targets need the size of the images they refer to "
                            "(mask_height x mask_width)",
                            s->name);
    if (t->count != s->count)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: targets for %" PRId64 " images, but the split has %" PRId64,
                            s->name, t->count, s->count);
    if (t->masks == NULL && t->box_offsets == NULL && t->boxes == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s: the targets hold neither masks nor boxes; labels come with the split", s->name);
    if ((st = rb_targets_check(t, s->classes, features ? t->mask_height : s->height,
                               features ? t->mask_width : s->width, s->name)) != RB_OK)
        return st;
    for (int64_t i = 0; t->labels != NULL && i < s->count; i++)
        if (t->labels[i] != s->labels[i])
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: the targets give image %" PRId64 " label %" PRId64 " but the split has %" PRId64
                                "; pass NULL labels to keep the split's",
                                s->name, i, t->labels[i], s->labels[i]);
    return RB_OK;
}

/* Copies of t's masks and boxes, installed in s. No checks. */
static rb_status copy_in(rb_split *s, const rb_targets *t)
{
    size_t plane;
    int32_t *masks = NULL;
    rb_box *boxes = NULL;
    int64_t *offsets = NULL;

    if (s->kind == RB_DATASET_FEATURES) {
        s->target_height = (int)t->mask_height;
        s->target_width = (int)t->mask_width;
    }
    plane = (size_t)s->target_height * (size_t)s->target_width;
    if (t->masks != NULL) {
        masks = malloc((s->count ? (size_t)s->count : 1) * plane * sizeof *masks);
        if (masks == NULL)
            goto oom;
        memcpy(masks, t->masks, (size_t)s->count * plane * sizeof *masks);
    }
    if (t->box_offsets != NULL) {
        const int64_t total = t->box_offsets[s->count];
        offsets = malloc(((size_t)s->count + 1) * sizeof *offsets);
        boxes = box_array(total);
        if (offsets == NULL || boxes == NULL)
            goto oom;
        memcpy(offsets, t->box_offsets, ((size_t)s->count + 1) * sizeof *offsets);
        if (total > 0)
            memcpy(boxes, t->boxes, (size_t)total * sizeof *boxes);
    }
    return install(s, masks, boxes, offsets);
oom:
    free(masks);
    free(boxes);
    free(offsets);
    return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the masks and boxes of %s", s->name);
}

rb_status rb_split_set_targets(rb_split *s, const rb_targets *t)
{
    rb_status st = validate(s, t);
    return st != RB_OK ? st : copy_in(s, t);
}

rb_status rb_split_adopt_masks(rb_split *s, int32_t *masks)
{
    rb_targets t;
    rb_status st;
    memset(&t, 0, sizeof t);
    t.count = s->count;
    t.masks = masks;
    t.mask_height = s->height;
    t.mask_width = s->width;
    if ((st = validate(s, &t)) != RB_OK) {
        free(masks);
        return st;
    }
    return install(s, masks, NULL, NULL);
}

rb_status rb_split_with_targets(rb_split **out, const rb_split *in, const rb_targets *targets)
{
    rb_split *s = NULL;
    rb_status st;
    if (out == NULL || in == NULL || targets == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_with_targets: out, in or targets is NULL");
    *out = NULL;
    if ((st = validate(in, targets)) != RB_OK)
        return st;
    if ((st = rb_split_apply(&s, in, NULL)) != RB_OK)
        return st;
    if ((st = copy_in(s, targets)) != RB_OK) {
        rb_split_destroy(s);
        return st;
    }
    *out = s;
    return RB_OK;
}

rb_status rb_split_copy_targets(rb_split *s, const rb_split *in, const unsigned char *keep)
{
    const size_t plane = (size_t)in->target_height * (size_t)in->target_width;
    int32_t *masks = NULL;
    rb_box *boxes = NULL;
    int64_t *offsets = NULL;

    if (!rb_split_has_targets(in))
        return RB_OK;
    if (in->masks != NULL) {
        masks = malloc((s->count ? (size_t)s->count : 1) * plane * sizeof *masks);
        if (masks == NULL)
            goto oom;
        for (int64_t i = 0, j = 0; i < in->count; i++)
            if (keep[i])
                memcpy(masks + (size_t)j++ * plane, in->masks + (size_t)i * plane, plane * sizeof *masks);
    }
    if (in->box_offsets != NULL) {
        int64_t total = 0;
        offsets = malloc(((size_t)s->count + 1) * sizeof *offsets);
        if (offsets == NULL)
            goto oom;
        offsets[0] = 0;
        for (int64_t i = 0, j = 0; i < in->count; i++)
            if (keep[i]) {
                total += in->box_offsets[i + 1] - in->box_offsets[i];
                offsets[++j] = total;
            }
        if ((boxes = box_array(total)) == NULL)
            goto oom;
        for (int64_t i = 0, j = 0; i < in->count; i++)
            if (keep[i]) {
                const int64_t n = in->box_offsets[i + 1] - in->box_offsets[i];
                if (n > 0)
                    memcpy(boxes + offsets[j], in->boxes + in->box_offsets[i], (size_t)n * sizeof *boxes);
                j++;
            }
    }
    return install(s, masks, boxes, offsets);
oom:
    free(masks);
    free(boxes);
    free(offsets);
    return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the masks and boxes of %s", in->name);
}

/* ------------------------------------------------------------ accessors */

void rb_split_stored_targets(const rb_split *split, rb_targets *out)
{
    memset(out, 0, sizeof *out);
    if (split == NULL)
        return;
    out->count = split->count;
    out->labels = split->labels;
    out->masks = split->masks;
    if (split->masks != NULL || split->kind == RB_DATASET_FEATURES) {
        out->mask_height = split->target_height;
        out->mask_width = split->target_width;
    }
    out->boxes = split->box_offsets != NULL ? split->boxes : NULL;
    out->box_offsets = split->box_offsets;
}

void rb_split_mask_shape(const rb_split *split, int *height, int *width)
{
    const bool features = split->kind == RB_DATASET_FEATURES;
    *height = features ? split->target_height : split->out_height;
    *width = features ? split->target_width : split->out_width;
}

int64_t rb_split_max_boxes(const rb_split *split)
{
    return split != NULL ? split->max_boxes : 0;
}

/* ------------------------------------------------------------ placement */

/* Mirrors rb_split_render: output (y, x) reads resized pixel
 * (y + top - padding, x' + left - padding), x' = W - 1 - x when flipped;
 * resized pixels outside the image are the padding. */
static void render_mask(const rb_split *s, int64_t index, int padding, int top, int left, bool flip, int32_t *out)
{
    const int32_t *mask = s->masks + (size_t)index * (size_t)s->target_height * (size_t)s->target_width;
    int H, W;
    rb_split_mask_shape(s, &H, &W);

    for (int y = 0; y < H; y++) {
        int32_t *row = out + (size_t)y * (size_t)W;
        const int sy = y + top - padding;
        const int32_t *src;
        if (sy < 0 || sy >= H) {
            for (int x = 0; x < W; x++)
                row[x] = RB_IGNORE_LABEL;
            continue;
        }
        src = mask + (size_t)(s->resized ? s->near_rows[sy] : sy) * (size_t)s->target_width;
        for (int x = 0; x < W; x++) {
            const int sx = (flip ? W - 1 - x : x) + left - padding;
            if (sx < 0 || sx >= W)
                row[x] = RB_IGNORE_LABEL;
            else
                row[x] = src[s->resized ? s->near_cols[sx] : sx];
        }
    }
}

/* The same moves in continuous coordinates: a stored corner u becomes
 * u * out / in after resizing, u + padding - left in the crop window, and
 * W - u once flipped; corners are clipped to the window, and a box with
 * nothing left inside it is dropped. */
static int64_t render_boxes(const rb_split *s, int64_t index, int padding, int top, int left, bool flip,
                            rb_box *out)
{
    int H, W;
    rb_split_mask_shape(s, &H, &W);
    const double fx = (double)W / (double)s->target_width, fy = (double)H / (double)s->target_height;
    const double dx = (double)(padding - left), dy = (double)(padding - top);
    int64_t n = 0;

    for (int64_t k = s->box_offsets[index]; k < s->box_offsets[index + 1]; k++) {
        const rb_box *b = &s->boxes[k];
        double x1 = (double)b->x1 * fx + dx, x2 = (double)b->x2 * fx + dx;
        double y1 = (double)b->y1 * fy + dy, y2 = (double)b->y2 * fy + dy;
        rb_box r;
        x1 = x1 < 0.0 ? 0.0 : x1;
        y1 = y1 < 0.0 ? 0.0 : y1;
        x2 = x2 > (double)W ? (double)W : x2;
        y2 = y2 > (double)H ? (double)H : y2;
        if (flip) {
            const double t = x1;
            x1 = (double)W - x2;
            x2 = (double)W - t;
        }
        r.x1 = (float)x1;
        r.y1 = (float)y1;
        r.x2 = (float)x2;
        r.y2 = (float)y2;
        r.label = b->label;
        /* Tested in float: two corners that round together leave nothing. */
        if (!(r.x2 > r.x1 && r.y2 > r.y1))
            continue;
        out[n++] = r;
    }
    return n;
}

void rb_split_render_targets(const rb_split *s, int64_t index, int padding, int top, int left, bool flip,
                             int32_t *mask, rb_box *boxes, int64_t *box_count)
{
    if (s->kind == RB_DATASET_FEATURES) /* as stored, as the features come out */
        padding = top = left = 0, flip = false;
    if (mask != NULL && s->masks != NULL)
        render_mask(s, index, padding, top, left, flip, mask);
    if (boxes != NULL && box_count != NULL)
        *box_count = s->box_offsets != NULL ? render_boxes(s, index, padding, top, left, flip, boxes) : 0;
}

rb_status rb_split_example_targets(const rb_split *split, int64_t index, const rb_augment *augment, uint64_t seed,
                                   int64_t epoch, int32_t *mask, rb_box *boxes, int64_t *box_count)
{
    int top, left, padding;
    bool flip;
    rb_status st;
    if (split == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_example_targets: split is NULL");
    if ((boxes == NULL) != (box_count == NULL))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "rb_split_example_targets: boxes and box_count go together (both NULL or neither)");
    if (mask != NULL && split->masks == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s has no masks; rb_split_with_targets attaches them",
                            split->name);
    if (boxes != NULL && split->box_offsets == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s has no boxes; rb_split_with_targets attaches them",
                            split->name);
    if ((st = rb_split_place(split, index, augment, seed, epoch, &padding, &top, &left, &flip)) != RB_OK)
        return st;
    rb_split_render_targets(split, index, padding, top, left, flip, mask, boxes, box_count);
    return RB_OK;
}
