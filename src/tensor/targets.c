/* Checking a batch's targets (robusta/targets.h). */
#include "config.h"

#include <math.h>

#include <robusta/targets.h>

#include "sys/internal.h"

static rb_status check_boxes(const rb_targets *t, int64_t classes, int64_t height, int64_t width, const char *where)
{
    if (t->box_offsets == NULL)
        return t->boxes == NULL ? RB_OK
                                : rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: boxes without box offsets", where);
    if (t->box_offsets[0] != 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the first box offset is %lld; it must be 0", where,
                            (long long)t->box_offsets[0]);
    /* Every offset before any box is read through them. */
    for (int64_t i = 0; i < t->count; i++) {
        if (t->box_offsets[i + 1] < t->box_offsets[i])
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: box offsets decrease at image %lld (%lld then %lld)", where, (long long)i,
                                (long long)t->box_offsets[i], (long long)t->box_offsets[i + 1]);
        if (t->box_offsets[i + 1] > t->box_offsets[i] && t->boxes == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: image %lld has boxes but the box array is NULL",
                                where, (long long)i);
    }
    for (int64_t i = 0; i < t->count; i++) {
        for (int64_t k = t->box_offsets[i]; k < t->box_offsets[i + 1]; k++) {
            const rb_box *b = &t->boxes[k];
            if (!isfinite(b->x1) || !isfinite(b->y1) || !isfinite(b->x2) || !isfinite(b->y2))
                return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                    "%s: box %lld of image %lld is (%g, %g, %g, %g): its corners must be finite",
                                    where, (long long)(k - t->box_offsets[i]), (long long)i, b->x1, b->y1, b->x2,
                                    b->y2);
            if (b->x2 < b->x1 || b->y2 < b->y1)
                return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                    "%s: box %lld of image %lld is (%g, %g, %g, %g): x2 < x1 or y2 < y1; boxes are "
                                    "corners x1, y1, x2, y2",
                                    where, (long long)(k - t->box_offsets[i]), (long long)i, b->x1, b->y1, b->x2,
                                    b->y2);
            if (b->x1 < 0 || b->y1 < 0 || b->x2 > (float)width || b->y2 > (float)height)
                return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                    "%s: box %lld of image %lld is (%g, %g, %g, %g), outside the %lldx%lld image; "
                                    "corners lie in [0, %lld] x [0, %lld]",
                                    where, (long long)(k - t->box_offsets[i]), (long long)i, b->x1, b->y1, b->x2,
                                    b->y2, (long long)width, (long long)height, (long long)width, (long long)height);
            if (b->label < 0 || b->label >= classes)
                return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                    "%s: box %lld of image %lld has class %lld, outside [0, %lld)", where,
                                    (long long)(k - t->box_offsets[i]), (long long)i, (long long)b->label,
                                    (long long)classes);
        }
    }
    return RB_OK;
}

rb_status rb_targets_check(const rb_targets *t, int64_t classes, int64_t height, int64_t width, const char *where)
{
    if (t == NULL)
        return RB_OK;
    if (where == NULL)
        where = "targets";
    if (t->count < 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the targets are for %lld images; the count must be >= 0",
                            where, (long long)t->count);
    for (int64_t i = 0; t->labels != NULL && i < t->count; i++)
        if (t->labels[i] < 0 || t->labels[i] >= classes)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: label %lld of image %lld is outside [0, %lld)", where,
                                (long long)t->labels[i], (long long)i, (long long)classes);
    if (t->masks != NULL) {
        int64_t plane = t->mask_height * t->mask_width;
        if (t->mask_height != height || t->mask_width != width)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: masks are %lldx%lld but the images are %lldx%lld; a mask has one value per "
                                "pixel",
                                where, (long long)t->mask_width, (long long)t->mask_height, (long long)width,
                                (long long)height);
        for (int64_t i = 0; i < t->count * plane; i++) {
            int32_t v = t->masks[i];
            if (v != RB_IGNORE_LABEL && (v < 0 || v >= classes))
                return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                    "%s: mask of image %lld has class %d at pixel (x %lld, y %lld), outside [0, "
                                    "%lld) and not the ignore label %d",
                                    where, (long long)(i / plane), (int)v, (long long)(i % plane % t->mask_width),
                                    (long long)(i % plane / t->mask_width), (long long)classes, RB_IGNORE_LABEL);
        }
    }
    return check_boxes(t, classes, height, width, where);
}
