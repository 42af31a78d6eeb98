/* Splits of images read from files (data_internal.h), for the readers of
 * image folders and lists: each file decoded to RGB in turn and stored at
 * the split's one size, so that only one full-size image is held; or,
 * under the paper's transform, kept at their own size in a store and
 * transformed as each example is made. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/suggest.h>

#include "data/data_internal.h"
#include "data/image.h"
#include "data/image_store.h"
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

/* ------------------------------------------------------------ the paper's transform */

static const char *const transform_names[] = {"none", "paper"};

const char *rb_transform_str(rb_transform transform)
{
    return (unsigned)transform < sizeof transform_names / sizeof *transform_names ? transform_names[transform]
                                                                                  : "unknown";
}

rb_status rb_transform_parse(const char *text, rb_transform *out)
{
    const size_t n = sizeof transform_names / sizeof *transform_names;
    const char *near;
    for (size_t k = 0; text != NULL && k < n; k++)
        if (strcmp(text, transform_names[k]) == 0) {
            *out = (rb_transform)k;
            return RB_OK;
        }
    near = text != NULL ? rb_suggest(text, transform_names, n) : NULL;
    return rb_error_set(RB_ERR_INVALID_ARGUMENT, "unknown transform '%s'%s%s%s; transforms: none, paper",
                        text ? text : "(null)", near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
}

int rb_transform_resize_for(int crop)
{
    return (int)((int64_t)crop * 256 * 2 + 224) / (224 * 2);
}

#define PAPER_CROP_DEFAULT 224

rb_status rb_split_from_image_set(rb_split **out, rb_data_source kind, const char *what, const char *base,
                                  const char *const *paths, const int64_t *labels, size_t count, int64_t classes,
                                  const char *const *class_names, const rb_split_options *options)
{
    rb_split *s = NULL;
    rb_status st;
    char key[IMAGE_PATH_MAX + 16];
    const int crop = options != NULL && options->size > 0 ? options->size : PAPER_CROP_DEFAULT;
    *out = NULL;
    if (options == NULL || options->transform != RB_TRANSFORM_PAPER)
        return rb_split_from_image_files(out, kind, what, base, paths, labels, count, classes, class_names,
                                         options != NULL ? options->size : 0);
    if (options->channels != 0 && options->channels != 3)
        return rb_error_set(RB_ERR_UNSUPPORTED, "%s: the paper's transform makes RGB examples; leave channels at 3, "
                            "not %d", what, options->channels);
    if (count == 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s lists no images", what);
    if (crop > 65536)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: crop size %d is out of range [1, 65536]", what, crop);
    /* 1 x 1 placeholders: the pixels live in the store */
    if ((st = rb_split_alloc(&s, kind, what, RB_DTYPE_U8, (int64_t)count, 3, 1, 1, classes)) != RB_OK)
        return st;
    if ((st = rb_split_alloc_examples(s)) == RB_OK)
        st = rb_split_set_names(s, class_names);
    if (st == RB_OK && (s->store_index = malloc(count * sizeof *s->store_index)) == NULL)
        st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for %s", what);
    {
        /* The cache file's name: the image folder however it was named, and
         * what tells its splits apart (their first image and count); the
         * header's identity decides whether the file can be trusted. */
        char *real = realpath(base, NULL);
        snprintf(key, sizeof key, "%s|%s|%zu", real != NULL ? real : base, paths[0], count);
        free(real);
    }
    if (st == RB_OK)
        st = rb_image_store_open(&s->store, what, base, paths, count, options->cache_dir, key);
    for (size_t i = 0; st == RB_OK && i < count; i++) {
        s->labels[i] = labels[i];
        s->store_index[i] = (int64_t)i;
        rb_image_store_size(s->store, (int64_t)i, &s->source_sizes[2 * i], &s->source_sizes[2 * i + 1]);
        if ((s->example_names[i] = strdup(paths[i])) == NULL)
            st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the names of %s", what);
    }
    if (st != RB_OK) {
        rb_split_destroy(s);
        return st;
    }
    s->crop = crop;
    s->resize = rb_transform_resize_for(crop);
    s->out_channels = 3;
    s->out_height = s->out_width = crop;
    *out = s;
    return RB_OK;
}

rb_status rb_split_share_kept(rb_split *s, const rb_split *in, const unsigned char *keep, int size)
{
    if ((s->store_index = malloc((s->count ? (size_t)s->count : 1) * sizeof *s->store_index)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory selecting from %s", in->name);
    for (int64_t i = 0, j = 0; i < in->count; i++)
        if (keep[i])
            s->store_index[j++] = in->store_index[i];
    s->store = rb_image_store_retain(in->store);
    s->crop = size > 0 ? size : in->crop;
    s->resize = rb_transform_resize_for(s->crop);
    s->out_channels = 3;
    s->out_height = s->out_width = s->crop;
    return RB_OK;
}

rb_status rb_split_render_kept(const rb_split *s, int64_t index, const rb_augment *augment, uint64_t seed,
                               int64_t epoch, float *out)
{
    const int64_t S = s->crop;
    const size_t plane = (size_t)S * (size_t)S;
    const bool train = augment != NULL && (augment->crop || augment->flip);
    const uint8_t *pixels;
    int64_t h, w;
    uint8_t *made = malloc(plane * 3);
    rb_status st;
    if (made == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory making an example of %s", s->name);
    st = rb_image_store_get(s->store, s->store_index[index], &pixels, &h, &w);
    if (st == RB_OK && train) {
        rb_rng r;
        rb_rng_init(&r, seed, RB_RNG_STREAM(RB_RNG_AUGMENT, (uint32_t)epoch), (uint64_t)index);
        st = rb_paper_train_transform(pixels, h, w, 3, S, &r, augment->flip, made, NULL, NULL);
    } else if (st == RB_OK) {
        st = rb_paper_test_transform(pixels, h, w, 3, s->resize, S, made);
    }
    if (st == RB_OK) {
        /* v / 255.0f for each byte: the same floats as dividing, without the divisions */
        float level[256];
        for (int v = 0; v < 256; v++)
            level[v] = (float)v / 255.0f;
        for (size_t k = 0; k < plane; k++) {
            out[k] = level[made[3 * k]];
            out[plane + k] = level[made[3 * k + 1]];
            out[2 * plane + k] = level[made[3 * k + 2]];
        }
    }
    free(made);
    return st;
}

void rb_split_cache_state_get(const rb_split *split, rb_split_cache_state *out)
{
    rb_image_store_state st;
    memset(out, 0, sizeof *out);
    out->path = "";
    out->rebuilt_because = "";
    if (split == NULL || split->store == NULL)
        return;
    rb_image_store_state_get(split->store, &st);
    out->kept = true;
    out->path = st.path;
    out->images = st.images;
    out->ready = st.ready;
    out->decoded_here = st.decoded_here;
    out->rebuilt_because = st.rebuilt_because;
}
