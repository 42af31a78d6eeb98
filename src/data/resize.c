/* Resizing (data_internal.h): the one home of the bilinear taps that
 * splits resize their pixels with, of the nearest taps that move masks with
 * them, and of the resizing of whole decoded images that readers of files
 * of many sizes (voc.c) do once, at open time, by the same rules. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "sys/internal.h"

void rb_resize_axis_free(rb_resize_axis *a)
{
    free(a->i0);
    free(a->i1);
    free(a->w0);
    free(a->w1);
    memset(a, 0, sizeof *a);
}

/* PyTorch's upsample_bilinear2d, align_corners=False, no scale factor:
 * source = (dst + 0.5) * in/out - 0.5, clamped at 0; taps i0 and i0+1
 * (i0 at the last row repeats), weights 1-l and l. */
rb_status rb_resize_axis_init(rb_resize_axis *a, int in, int out)
{
    const float scale = (float)in / (float)out;
    a->i0 = malloc((size_t)out * sizeof *a->i0);
    a->i1 = malloc((size_t)out * sizeof *a->i1);
    a->w0 = malloc((size_t)out * sizeof *a->w0);
    a->w1 = malloc((size_t)out * sizeof *a->w1);
    if (a->i0 == NULL || a->i1 == NULL || a->w0 == NULL || a->w1 == NULL) {
        rb_resize_axis_free(a);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for resize tables");
    }
    for (int d = 0; d < out; d++) {
        float src = scale * ((float)d + 0.5f) - 0.5f;
        int i0;
        float l1;
        if (src < 0.0f)
            src = 0.0f;
        i0 = (int)src;
        if (i0 > in - 1)
            i0 = in - 1;
        l1 = src - (float)i0;
        if (l1 < 0.0f)
            l1 = 0.0f;
        if (l1 > 1.0f)
            l1 = 1.0f;
        a->i0[d] = i0;
        a->i1[d] = i0 + (i0 < in - 1 ? 1 : 0);
        a->w1[d] = l1;
        a->w0[d] = 1.0f - l1;
    }
    return RB_OK;
}

/* Nearest taps at pixel centres: output d reads floor((d + 0.5) * in / out),
 * computed in integers so that no rounding moves a tap. Always < in. */
int32_t *rb_resize_nearest_axis(int in, int out)
{
    int32_t *t = malloc((size_t)out * sizeof *t);
    if (t == NULL)
        return NULL;
    for (int d = 0; d < out; d++)
        t[d] = (int32_t)(((2 * (int64_t)d + 1) * in) / (2 * (int64_t)out));
    return t;
}

rb_status rb_resize_image_u8(const uint8_t *src, int channels, int in_h, int in_w, int out_h, int out_w,
                             uint8_t *dst)
{
    rb_resize_axis rows = {0}, cols = {0};
    const size_t step = (size_t)channels;
    rb_status st;

    if ((st = rb_resize_axis_init(&rows, in_h, out_h)) != RB_OK)
        return st;
    if ((st = rb_resize_axis_init(&cols, in_w, out_w)) != RB_OK) {
        rb_resize_axis_free(&rows);
        return st;
    }
    for (int c = 0; c < channels; c++) {
        uint8_t *plane = dst + (size_t)c * (size_t)out_h * (size_t)out_w;
        for (int y = 0; y < out_h; y++) {
            const uint8_t *r0 = src + (size_t)rows.i0[y] * (size_t)in_w * step + (size_t)c;
            const uint8_t *r1 = src + (size_t)rows.i1[y] * (size_t)in_w * step + (size_t)c;
            for (int x = 0; x < out_w; x++) {
                const size_t c0 = (size_t)cols.i0[x] * step, c1 = (size_t)cols.i1[x] * step;
                const float v = rb_resize_mix((float)r0[c0] / 255.0f, (float)r0[c1] / 255.0f,
                                              (float)r1[c0] / 255.0f, (float)r1[c1] / 255.0f, cols.w0[x],
                                              cols.w1[x], rows.w0[y], rows.w1[y]);
                const long q = lrintf(v * 255.0f);
                plane[(size_t)y * (size_t)out_w + (size_t)x] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
            }
        }
    }
    rb_resize_axis_free(&rows);
    rb_resize_axis_free(&cols);
    return RB_OK;
}

rb_status rb_resize_mask_u8(const uint8_t *src, int in_h, int in_w, int out_h, int out_w, int32_t *dst)
{
    int32_t *rows = rb_resize_nearest_axis(in_h, out_h);
    int32_t *cols = rb_resize_nearest_axis(in_w, out_w);
    if (rows == NULL || cols == NULL) {
        free(rows);
        free(cols);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for mask resize tables");
    }
    for (int y = 0; y < out_h; y++) {
        const uint8_t *row = src + (size_t)rows[y] * (size_t)in_w;
        for (int x = 0; x < out_w; x++)
            dst[(size_t)y * (size_t)out_w + (size_t)x] = row[cols[x]];
    }
    free(rows);
    free(cols);
    return RB_OK;
}
