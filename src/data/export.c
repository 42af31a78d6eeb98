/* Splits written out as image files (rb_split_export, robusta/data.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <robusta/data.h>

#include "data/image.h"
#include "sys/internal.h"

#define EXPORT_PATH_MAX 8192

/* "07-T-shirt_top": the label, zero-padded to the width of the largest so
 * that sorted folder names keep the label order, then the name with every
 * byte but letters, digits, '.', '-' and '_' made '_'. */
static void class_folder(char *out, size_t size, int64_t label, int64_t classes, const char *name)
{
    int digits = 1;
    size_t n;
    for (int64_t k = classes - 1; k >= 10; k /= 10)
        digits++;
    n = (size_t)snprintf(out, size, "%0*" PRId64 "-", digits, label);
    for (const char *p = name; *p != '\0' && n + 1 < size; p++, n++) {
        const char c = *p;
        const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                           c == '-' || c == '_';
        out[n] = plain ? c : '_';
    }
    out[n] = '\0';
}

static rb_status make_folder(const char *path)
{
    if (mkdir(path, 0755) != 0)
        return rb_error_set(errno == EEXIST ? RB_ERR_INVALID_ARGUMENT : RB_ERR_IO,
                            "cannot create %s: %s%s", path, strerror(errno),
                            errno == EEXIST ? "; export into a new folder, so nothing there is mixed or lost" : "");
    return RB_OK;
}

rb_status rb_split_export(const rb_split *split, const char *dir, rb_image_format format, int quality)
{
    const size_t per = split != NULL ? rb_split_example_size(split) : 0;
    const int64_t classes = split != NULL ? rb_split_classes(split) : 0;
    int c, h, w;
    float *x = NULL;
    uint8_t *px = NULL;
    char path[EXPORT_PATH_MAX], folder[512];
    rb_status st;

    if (split == NULL || dir == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_export: split or dir is NULL");
    if (format != RB_IMAGE_PNG && format != RB_IMAGE_JPEG)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_export: format %d is neither PNG nor JPEG", (int)format);
    if (format == RB_IMAGE_JPEG && (quality < 1 || quality > 100))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "JPEG quality %d is out of range [1, 100]", quality);
    rb_split_shape(split, &c, &h, &w);
    if (c != 1 && c != 3)
        return rb_error_set(RB_ERR_UNSUPPORTED, "%s has %d-channel examples; image files hold 1 or 3",
                            rb_split_name(split), c);
    if (rb_split_kind(split) == RB_DATASET_FEATURES)
        return rb_error_set(RB_ERR_UNSUPPORTED, "%s holds features, not images", rb_split_name(split));
    if ((st = make_folder(dir)) != RB_OK)
        return st;
    for (int64_t k = 0; k < classes; k++) {
        class_folder(folder, sizeof folder, k, classes, rb_split_class_name(split, k));
        if ((st = rb_path_join(path, sizeof path, dir, folder)) != RB_OK || (st = make_folder(path)) != RB_OK)
            return st;
    }
    x = malloc(per * sizeof *x);
    px = malloc(per);
    if (x == NULL || px == NULL) {
        free(x);
        free(px);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory exporting %s", rb_split_name(split));
    }
    for (int64_t i = 0; st == RB_OK && i < rb_split_count(split); i++) {
        const int64_t label = rb_split_labels(split)[i];
        char name[600];
        if ((st = rb_split_example(split, i, NULL, 0, 0, x)) != RB_OK)
            break;
        /* planes to interleaved 8-bit: stored 8-bit pixels come back exactly */
        for (int ch = 0; ch < c; ch++)
            for (size_t p = 0; p < (size_t)h * (size_t)w; p++) {
                const float v = x[(size_t)ch * (size_t)h * (size_t)w + p];
                px[p * (size_t)c + (size_t)ch] = (uint8_t)lrintf(255.0f * (v < 0 ? 0 : v > 1 ? 1 : v));
            }
        class_folder(folder, sizeof folder, label, classes, rb_split_class_name(split, label));
        snprintf(name, sizeof name, "%s/%06" PRId64 ".%s", folder, i, format == RB_IMAGE_PNG ? "png" : "jpg");
        if ((st = rb_path_join(path, sizeof path, dir, name)) != RB_OK)
            break;
        st = format == RB_IMAGE_PNG ? rb_image_write_png(path, px, h, w, c, NULL, 0)
                                    : rb_image_write_jpeg(path, px, h, w, c, quality);
    }
    free(x);
    free(px);
    return st;
}
