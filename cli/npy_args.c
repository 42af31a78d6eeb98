/* Reading the .npy arguments that several commands take (images, labels),
 * with the checks and messages they share. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"

/* Images must be f32 N x C x H x W with finite values in [0, 1]. */
rb_status cli_read_images(const char *path, rb_npy **out)
{
    rb_npy *x;
    char shape[128];
    rb_status s = rb_npy_load(&x, path);
    *out = NULL;
    if (s != RB_OK)
        return s;
    if (x->dtype != RB_DTYPE_F32 || x->ndim != 4 || x->numel == 0) {
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: images must be float32 N x C x H x W, not %s %s", path,
                         rb_dtype_str(x->dtype), rb_shape_format(x->ndim, x->shape, shape, sizeof shape));
        rb_npy_destroy(x);
        return s;
    }
    {
        const float *v = x->data;
        for (int64_t i = 0; i < x->numel; i++)
            if (!(v[i] >= 0.0f && v[i] <= 1.0f)) {
                s = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                 "%s: value %g at flat index %lld is outside [0, 1] (images are pixels in [0, 1]; "
                                 "the model normalizes them)",
                                 path, (double)v[i], (long long)i);
                rb_npy_destroy(x);
                return s;
            }
    }
    *out = x;
    return RB_OK;
}

/* Labels: an integer .npy of shape [n], each in [0, classes). */
rb_status cli_read_labels(const char *path, int64_t n, int64_t classes, int64_t **out)
{
    rb_npy *y;
    int64_t *labels;
    rb_status s = rb_npy_load(&y, path);
    *out = NULL;
    if (s != RB_OK)
        return s;
    if (y->ndim != 1 || y->shape[0] != n ||
        (y->dtype != RB_DTYPE_U8 && y->dtype != RB_DTYPE_I32 && y->dtype != RB_DTYPE_I64)) {
        char shape[128];
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: labels must be integers of shape [%lld], not %s %s", path,
                         (long long)n, rb_dtype_str(y->dtype), rb_shape_format(y->ndim, y->shape, shape, sizeof shape));
        rb_npy_destroy(y);
        return s;
    }
    labels = malloc((size_t)(n ? n : 1) * sizeof *labels);
    if (labels == NULL) {
        rb_npy_destroy(y);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory reading %s", path);
    }
    for (int64_t i = 0; i < n; i++) {
        const void *d = y->data;
        int64_t v = y->dtype == RB_DTYPE_U8    ? ((const uint8_t *)d)[i]
                    : y->dtype == RB_DTYPE_I32 ? ((const int32_t *)d)[i]
                                               : ((const int64_t *)d)[i];
        if (v < 0 || v >= classes) {
            free(labels);
            rb_npy_destroy(y);
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: label %lld of example %lld is outside [0, %lld)", path,
                                (long long)v, (long long)i, (long long)classes);
        }
        labels[i] = v;
    }
    rb_npy_destroy(y);
    *out = labels;
    return RB_OK;
}

rb_status cli_read_indices(const char *path, int64_t **out, int64_t *count)
{
    rb_npy *v;
    int64_t *list;
    rb_status s = rb_npy_load(&v, path);
    *out = NULL;
    *count = 0;
    if (s != RB_OK)
        return s;
    if (v->ndim != 1 || v->shape[0] < 1 ||
        (v->dtype != RB_DTYPE_U8 && v->dtype != RB_DTYPE_I32 && v->dtype != RB_DTYPE_I64)) {
        char shape[128];
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: indices must be integers of shape [k], k >= 1, not %s %s", path,
                         rb_dtype_str(v->dtype), rb_shape_format(v->ndim, v->shape, shape, sizeof shape));
        rb_npy_destroy(v);
        return s;
    }
    if ((list = malloc((size_t)v->shape[0] * sizeof *list)) == NULL) {
        rb_npy_destroy(v);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory reading %s", path);
    }
    for (int64_t i = 0; i < v->shape[0]; i++) {
        const void *d = v->data;
        list[i] = v->dtype == RB_DTYPE_U8 ? ((const uint8_t *)d)[i]
                  : v->dtype == RB_DTYPE_I32 ? ((const int32_t *)d)[i]
                                             : ((const int64_t *)d)[i];
    }
    *count = v->shape[0];
    rb_npy_destroy(v);
    *out = list;
    return RB_OK;
}
