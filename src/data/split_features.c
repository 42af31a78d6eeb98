/* Splits of a model's outputs (robusta/data.h, "feature maps"): the cache
 * fixed-feature transfer trains a head on, for any backbone stage, in f32
 * or bf16. Examples come out as stored: no resizing, channel replication or
 * augmentation applies to them. */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/data.h>
#include <robusta/tensor.h>

#include "data/data_internal.h"

rb_status rb_split_create_feature_maps(rb_split **out, rb_dtype dtype, int64_t count, int channels, int height,
                                       int width, const int64_t *labels, int64_t classes, const char *const *names,
                                       const char *what)
{
    rb_split *s;
    rb_status st;
    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_create_feature_maps: out is NULL");
    *out = NULL;
    if (what == NULL)
        what = "features in memory";
    if (count > 0 && labels == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: labels is NULL", what);
    if ((st = rb_split_alloc(&s, RB_DATASET_FEATURES, what, dtype, count, channels, height, width, classes)) != RB_OK)
        return st;
    if ((st = rb_split_check_labels(what, labels, count, classes)) != RB_OK ||
        (st = rb_split_set_names(s, names)) != RB_OK) {
        rb_split_destroy(s);
        return st;
    }
    if (count > 0)
        memcpy(s->labels, labels, (size_t)count * sizeof *labels);
    *out = s;
    return RB_OK;
}

rb_status rb_split_features_write(rb_split *split, int64_t first, int64_t rows, const float *values)
{
    size_t per, n;
    if (split == NULL || split->kind != RB_DATASET_FEATURES)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_features_write: %s is not a split of features",
                            split != NULL ? split->name : "(null)");
    if (first < 0 || rows < 0 || first > split->count || rows > split->count - first)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s: examples %" PRId64 " to %" PRId64 " are outside [0, %" PRId64 ")", split->name,
                            first, first + rows - 1, split->count);
    if (rows > 0 && values == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: no values to write", split->name);
    per = (size_t)split->channels * (size_t)split->height * (size_t)split->width;
    n = (size_t)rows * per;
    for (size_t k = 0; k < n; k++)
        if (!isfinite(values[k]))
            return rb_error_set(RB_ERR_NUMERIC, "%s: value %g in example %" PRId64 " is not finite", split->name,
                                (double)values[k], first + (int64_t)(k / per));
    if (split->dtype == RB_DTYPE_BF16)
        rb_bf16_from_f32(values, (uint16_t *)split->images + (size_t)first * per, n);
    else
        memcpy((float *)split->images + (size_t)first * per, values, n * sizeof *values);
    return RB_OK;
}

rb_status rb_split_create_features(rb_split **out, int64_t count, int dim, const float *values,
                                   const int64_t *labels, int64_t classes, const char *const *names, const char *what)
{
    rb_status st;
    if (out != NULL)
        *out = NULL;
    if (count > 0 && values == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: values is NULL", what != NULL ? what : "features");
    st = rb_split_create_feature_maps(out, RB_DTYPE_F32, count, 1, dim, 1, labels, classes, names, what);
    if (st == RB_OK && (st = rb_split_features_write(*out, 0, count, values)) != RB_OK) {
        rb_split_destroy(*out);
        *out = NULL;
    }
    return st;
}

void rb_split_render_features(const rb_split *split, int64_t index, float *out)
{
    size_t per = (size_t)split->channels * (size_t)split->height * (size_t)split->width;
    if (split->dtype == RB_DTYPE_BF16)
        rb_bf16_to_f32((const uint16_t *)split->images + (size_t)index * per, out, per);
    else
        memcpy(out, (const float *)split->images + (size_t)index * per, per * sizeof *out);
}

rb_status rb_split_features_take_targets(rb_split *features, const rb_split *images)
{
    int height, width;
    size_t plane;
    int64_t n, total = 0;
    int32_t *masks = NULL;
    rb_box *boxes = NULL;
    int64_t *offsets = NULL;
    rb_targets t;
    rb_status st;

    if (features == NULL || images == NULL || features->kind != RB_DATASET_FEATURES)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "rb_split_features_take_targets: a feature split and an image split are needed");
    if (!rb_split_has_targets(images))
        return RB_OK;
    if (images->kind == RB_DATASET_FEATURES || images->count != features->count)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s: the targets of %s (%" PRId64 " examples) cannot be the targets of its %" PRId64
                            " features",
                            features->name, images->name, images->count, features->count);
    n = images->count;
    rb_split_mask_shape(images, &height, &width);
    plane = (size_t)height * (size_t)width;
    if (images->masks != NULL && (masks = malloc((n ? (size_t)n : 1) * plane * sizeof *masks)) == NULL)
        goto oom;
    if (images->box_offsets != NULL) {
        offsets = malloc(((size_t)n + 1) * sizeof *offsets);
        boxes = malloc(((size_t)n * (size_t)images->max_boxes + 1) * sizeof *boxes);
        if (offsets == NULL || boxes == NULL)
            goto oom;
        offsets[0] = 0;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t count = 0;
        rb_split_render_targets(images, i, 0, 0, 0, false, masks ? masks + (size_t)i * plane : NULL,
                                boxes ? boxes + total : NULL, boxes ? &count : NULL);
        total += count;
        if (offsets != NULL)
            offsets[i + 1] = total;
    }
    t = (rb_targets){.count = n, .masks = masks, .mask_height = height, .mask_width = width,
                     .boxes = offsets != NULL ? boxes : NULL, .box_offsets = offsets};
    st = rb_split_set_targets(features, &t);
    free(masks);
    free(boxes);
    free(offsets);
    return st;
oom:
    free(masks);
    free(boxes);
    free(offsets);
    return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the targets of %s", features->name);
}
