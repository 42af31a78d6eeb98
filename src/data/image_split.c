/* Splits of images read from files (data_internal.h), for the readers of
 * image folders and lists: each file decoded to RGB in turn and stored at
 * the split's one size, so that only one full-size image is held. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "data/image.h"
#include "data/paper_transform.h"
#include "sys/internal.h"

#define IMAGE_PATH_MAX (RB_DATASET_PATH_MAX + 1024)

/* Pixels of `img` into example `index` of `s` as planes, resized to the
 * stored size with Pillow's bilinear resampling when the sizes differ. */
static rb_status store_image(rb_split *s, int64_t index, const rb_image *img, uint8_t *scratch)
{
    const int64_t H = s->height, W = s->width;
    const size_t plane = (size_t)H * (size_t)W;
    uint8_t *dst = (uint8_t *)s->images + (size_t)index * 3 * plane;
    const uint8_t *px = img->pixels;
    if (img->height != H || img->width != W) {
        rb_status st = rb_pil_resize(img->pixels, img->height, img->width, 3, NULL, H, W, scratch);
        if (st != RB_OK)
            return st;
        px = scratch;
    }
    for (size_t k = 0; k < plane; k++) {
        dst[k] = px[3 * k];
        dst[plane + k] = px[3 * k + 1];
        dst[2 * plane + k] = px[3 * k + 2];
    }
    s->source_sizes[2 * index] = img->height;
    s->source_sizes[2 * index + 1] = img->width;
    return RB_OK;
}

rb_status rb_split_from_image_files(rb_split **out, rb_data_source kind, const char *what, const char *base,
                                    const char *const *paths, const int64_t *labels, size_t count, int64_t classes,
                                    const char *const *class_names, int size)
{
    char first_image[IMAGE_PATH_MAX] = "";
    uint8_t *scratch = NULL;
    rb_split *s = NULL;
    rb_status st = RB_OK;
    *out = NULL;
    for (size_t i = 0; i < count; i++) {
        char path[IMAGE_PATH_MAX];
        rb_image img;
        if ((st = rb_path_join(path, sizeof path, base, paths[i])) != RB_OK ||
            (st = rb_image_read(path, RB_IMAGE_RGB, &img)) != RB_OK)
            break;
        if (s == NULL) {
            /* the first image sets the stored size, unless a size is given */
            const int64_t H = size > 0 ? size : img.height, W = size > 0 ? size : img.width;
            if (H > 65536 || W > 65536)
                st = rb_error_set(RB_ERR_UNSUPPORTED,
                                  "%s is %" PRId64 "×%" PRId64
                                  " pixels, more than 65536 on a side; give an image size (--image-size)",
                                  path, img.width, img.height);
            if (st == RB_OK)
                st = rb_split_alloc(&s, kind, what, RB_DTYPE_U8, (int64_t)count, 3, (int)H, (int)W, classes);
            if (st == RB_OK)
                st = rb_split_alloc_examples(s);
            if (st == RB_OK)
                st = rb_split_set_names(s, class_names);
            if (st == RB_OK && (scratch = malloc((size_t)H * (size_t)W * 3)) == NULL)
                st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for %s", what);
            snprintf(first_image, sizeof first_image, "%s", path);
        } else if (size == 0 && (img.height != s->height || img.width != s->width)) {
            st = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                              "%s is %" PRId64 "×%" PRId64 " pixels but %s is %d×%d: images of different sizes "
                              "need one size for the split; give an image size (--image-size)",
                              path, img.width, img.height, first_image, s->width, s->height);
        }
        if (st == RB_OK)
            st = store_image(s, (int64_t)i, &img, scratch);
        rb_image_free(&img);
        if (st != RB_OK)
            break;
        s->labels[i] = labels[i];
        if ((s->example_names[i] = strdup(paths[i])) == NULL) {
            st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the names of %s", what);
            break;
        }
    }
    free(scratch);
    if (st == RB_OK && s == NULL)
        st = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s lists no images", what);
    if (st != RB_OK) {
        rb_split_destroy(s);
        return st;
    }
    *out = s;
    return RB_OK;
}
