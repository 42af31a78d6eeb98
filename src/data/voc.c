/* Pascal VOC segmentation folders (voc-seg:DIR, robusta/data.h): ids from
 * ImageSets/Segmentation, images from JPEGImages, masks from
 * SegmentationClass, class names from classes.txt or VOC's own 21. Each
 * example is read and checked by one function (rb_voc_read_example) and
 * then stored into the split at its size, so that decoding can move to
 * worker threads without changing what comes out. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <robusta/data.h>
#include <robusta/targets.h>

#include "data/data_internal.h"
#include "data/voc.h"
#include "sys/internal.h"

/* Pascal VOC 2012's classes, in the order of their ids. */
static const char *const voc_names[21] = {
    "background", "aeroplane", "bicycle", "bird",  "boat",        "bottle", "bus",
    "car",        "cat",       "chair",   "cow",   "diningtable", "dog",    "horse",
    "motorbike",  "person",    "pottedplant", "sheep", "sofa",    "train",  "tvmonitor"};

void rb_voc_example_free(rb_voc_example *example)
{
    if (example == NULL)
        return;
    rb_image_free(&example->image);
    rb_image_free(&example->mask);
    memset(example, 0, sizeof *example);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

static rb_status voc_path(char *out, const char *dir, const char *sub, const char *id, const char *ext)
{
    int n = snprintf(out, RB_VOC_PATH_MAX, "%s/%s/%s%s", dir, sub, id, ext);
    if (n < 0 || n >= RB_VOC_PATH_MAX)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "voc-seg folder %.60s...: path too long", dir);
    return RB_OK;
}

/* The mask's most frequent class other than 0 and 255; the smaller on a
 * tie; 0 when there is none. */
static int64_t dominant_class(const rb_image *mask)
{
    uint64_t count[256] = {0};
    const size_t n = (size_t)mask->height * (size_t)mask->width;
    int64_t best = 0;
    for (size_t k = 0; k < n; k++)
        count[mask->pixels[k]]++;
    for (int c = 1; c < RB_IGNORE_LABEL; c++)
        if (count[c] > count[best] || (best == 0 && count[c] > 0))
            best = c;
    return best;
}

rb_status rb_voc_read_example(const char *dir, const char *id, int64_t classes, const char *origin,
                              const char *classes_from, rb_voc_example *out)
{
    char image_path[RB_VOC_PATH_MAX], mask_path[RB_VOC_PATH_MAX];
    rb_status st;

    memset(out, 0, sizeof *out);
    if ((st = voc_path(image_path, dir, "JPEGImages", id, ".jpg")) != RB_OK)
        return st;
    if (!is_file(image_path)) {
        char png_path[RB_VOC_PATH_MAX];
        if ((st = voc_path(png_path, dir, "JPEGImages", id, ".png")) != RB_OK)
            return st;
        if (!is_file(png_path))
            return rb_error_set(RB_ERR_NOT_FOUND,
                                "%s names image '%s', but neither %s nor %s exists; add the image or remove the "
                                "id from the list",
                                origin, id, image_path, png_path);
        memcpy(image_path, png_path, sizeof image_path);
    }
    if ((st = voc_path(mask_path, dir, "SegmentationClass", id, ".png")) != RB_OK)
        return st;
    if (!is_file(mask_path))
        return rb_error_set(RB_ERR_NOT_FOUND,
                            "%s: no mask for image '%s' (listed in %s): add it, or remove the id from the list",
                            mask_path, id, origin);
    if ((st = rb_image_read(image_path, RB_IMAGE_RGB, &out->image)) != RB_OK)
        return st;
    memcpy(out->image_path, image_path, sizeof out->image_path);
    if ((st = rb_image_read(mask_path, RB_IMAGE_INDICES, &out->mask)) != RB_OK) {
        rb_voc_example_free(out);
        return st;
    }
    if (out->mask.height != out->image.height || out->mask.width != out->image.width) {
        st = rb_error_set(RB_ERR_CORRUPT,
                          "%s is %" PRId64 "×%" PRId64 " pixels but its image %s is %" PRId64 "×%" PRId64
                          "; a mask must have its image's size (width×height)",
                          mask_path, out->mask.width, out->mask.height, image_path, out->image.width,
                          out->image.height);
        rb_voc_example_free(out);
        return st;
    }
    {
        const size_t n = (size_t)out->mask.height * (size_t)out->mask.width;
        for (size_t k = 0; k < n; k++) {
            const int v = out->mask.pixels[k];
            if (v >= classes && v != RB_IGNORE_LABEL) {
                st = rb_error_set(RB_ERR_CORRUPT,
                                  "%s: pixel (row %zu, column %zu) holds class %d, but there are %" PRId64
                                  " classes (0-%" PRId64 ", from %s) and 255 = ignore; fix the mask or name the "
                                  "class in classes.txt",
                                  mask_path, k / (size_t)out->mask.width, k % (size_t)out->mask.width, v, classes,
                                  classes - 1, classes_from);
                rb_voc_example_free(out);
                return st;
            }
        }
    }
    out->label = dominant_class(&out->mask);
    return RB_OK;
}

/* Example `index` of `s` (stored size s->height × s->width) from `ex`:
 * pixels as planes, resized when the sizes differ; the mask into `masks`;
 * label, id and source size. */
static rb_status store_example(rb_split *s, int32_t *masks, int64_t index, const char *id, const rb_voc_example *ex)
{
    const int H = s->height, W = s->width;
    const size_t plane = (size_t)H * (size_t)W;
    uint8_t *dst = (uint8_t *)s->images + (size_t)index * 3 * plane;
    int32_t *mask = masks + (size_t)index * plane;
    rb_status st;

    if (ex->image.height == H && ex->image.width == W) {
        for (size_t k = 0; k < plane; k++) {
            dst[k] = ex->image.pixels[3 * k];
            dst[plane + k] = ex->image.pixels[3 * k + 1];
            dst[2 * plane + k] = ex->image.pixels[3 * k + 2];
            mask[k] = ex->mask.pixels[k];
        }
    } else {
        if ((st = rb_resize_image_u8(ex->image.pixels, 3, (int)ex->image.height, (int)ex->image.width, H, W,
                                     dst)) != RB_OK)
            return st;
        if ((st = rb_resize_mask_u8(ex->mask.pixels, (int)ex->mask.height, (int)ex->mask.width, H, W, mask)) !=
            RB_OK)
            return st;
    }
    s->labels[index] = ex->label;
    s->source_sizes[2 * index] = ex->image.height;
    s->source_sizes[2 * index + 1] = ex->image.width;
    if ((s->example_names[index] = strdup(id)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the ids of %s", s->name);
    return RB_OK;
}

/* The class names: DIR/classes.txt when it exists, else VOC's 21. */
static rb_status load_classes(const char *dir, rb_voc_list *names, char *from, size_t from_size)
{
    char path[RB_VOC_PATH_MAX];
    unsigned char *bytes = NULL;
    size_t size = 0;
    rb_status st;
    int n = snprintf(path, sizeof path, "%s/classes.txt", dir);

    memset(names, 0, sizeof *names);
    if (n < 0 || (size_t)n >= sizeof path)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "voc-seg folder %.60s...: path too long", dir);
    st = rb_file_read_all(path, RB_VOC_LIST_LIMIT, &bytes, &size);
    if (st == RB_ERR_NOT_FOUND) {
        snprintf(from, from_size, "the 21 Pascal VOC classes, as %s/classes.txt is absent", dir);
        return RB_OK;
    }
    if (st == RB_OK)
        st = rb_voc_parse_list(bytes, size, RB_VOC_CLASSES, path, names);
    free(bytes);
    snprintf(from, from_size, "%s", path);
    return st;
}

rb_status rb_voc_load(rb_split **out, const char *dir, rb_split_which which, int size)
{
    const char *list_name = which == RB_SPLIT_TRAIN ? "train.txt" : "val.txt";
    char list_path[RB_VOC_PATH_MAX], from[RB_VOC_PATH_MAX + 64], first_image[RB_VOC_PATH_MAX];
    char what[RB_VOC_PATH_MAX + 32];
    rb_voc_list names = {0}, ids = {0};
    unsigned char *bytes = NULL;
    size_t bytes_size = 0;
    rb_split *s = NULL;
    int32_t *masks = NULL;
    int64_t classes;
    rb_status st;
    struct stat info;
    int n;

    *out = NULL;
    if (size < 0 || size > 65536)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "voc-seg:%s: image size %d is out of range [1, 65536] (0 keeps "
                            "the images' own size)", dir, size);
    if (stat(dir, &info) != 0)
        return rb_error_set(errno == ENOENT || errno == ENOTDIR ? RB_ERR_NOT_FOUND : RB_ERR_IO,
                            "voc-seg:%s: cannot open the folder %s: %s", dir, dir, strerror(errno));
    if (!S_ISDIR(info.st_mode))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "voc-seg:%s: %s is not a folder; give the VOC folder (the one "
                            "holding JPEGImages/)", dir, dir);
    n = snprintf(list_path, sizeof list_path, "%s/ImageSets/Segmentation/%s", dir, list_name);
    if (n < 0 || (size_t)n >= sizeof list_path)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "voc-seg folder %.60s...: path too long", dir);
    snprintf(what, sizeof what, "voc-seg:%s %s", dir, rb_split_which_str(which));

    if ((st = load_classes(dir, &names, from, sizeof from)) != RB_OK)
        return st;
    classes = names.count > 0 ? names.count : 21;
    st = rb_file_read_all(list_path, RB_VOC_LIST_LIMIT, &bytes, &bytes_size);
    if (st == RB_ERR_NOT_FOUND)
        st = rb_error_set(RB_ERR_NOT_FOUND,
                          "cannot open %s: no such file (voc-seg:DIR reads ImageSets/Segmentation/train.txt and "
                          "val.txt)",
                          list_path);
    if (st == RB_OK)
        st = rb_voc_parse_list(bytes, bytes_size, RB_VOC_IDS, list_path, &ids);
    free(bytes);

    for (int64_t i = 0; st == RB_OK && i < ids.count; i++) {
        char origin[RB_VOC_PATH_MAX + 32];
        rb_voc_example ex;
        snprintf(origin, sizeof origin, "%s line %" PRId64, list_path, ids.lines[i]);
        if ((st = rb_voc_read_example(dir, ids.items[i], classes, origin, from, &ex)) != RB_OK)
            break;
        if (s == NULL) {
            /* The first example sets the stored size. */
            const int64_t H = size > 0 ? size : ex.image.height, W = size > 0 ? size : ex.image.width;
            const size_t plane = (size_t)H * (size_t)W;
            if (H > 65536 || W > 65536)
                st = rb_error_set(RB_ERR_UNSUPPORTED,
                                  "%s is %" PRId64 "×%" PRId64
                                  " pixels, more than 65536 on a side; give an image size (--image-size)",
                                  ex.image_path, W, H);
            if (st == RB_OK)
                st = rb_split_alloc(&s, RB_DATASET_VOC_SEG, what, RB_DTYPE_U8, ids.count, 3, (int)H, (int)W,
                                    classes);
            if (st == RB_OK)
                st = rb_split_alloc_examples(s);
            if (st == RB_OK && (masks = malloc((size_t)ids.count * plane * sizeof *masks)) == NULL)
                st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the masks of %s (%" PRId64 " of %" PRId64
                                  "×%" PRId64 ")", what, ids.count, W, H);
            if (st == RB_OK)
                st = rb_split_set_names(s, names.count > 0 ? (const char *const *)names.items : voc_names);
            memcpy(first_image, ex.image_path, sizeof first_image);
        } else if (size == 0 && (ex.image.height != s->height || ex.image.width != s->width)) {
            st = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                              "%s is %" PRId64 "×%" PRId64 " pixels but %s is %d×%d: images of different sizes "
                              "need one size for the split; give an image size (--image-size)",
                              ex.image_path, ex.image.width, ex.image.height, first_image, s->width, s->height);
        }
        if (st == RB_OK)
            st = store_example(s, masks, i, ids.items[i], &ex);
        rb_voc_example_free(&ex);
    }
    rb_voc_list_free(&names);
    rb_voc_list_free(&ids);
    if (st == RB_OK)
        st = rb_split_adopt_masks(s, masks);
    else
        free(masks);
    if (st != RB_OK) {
        rb_split_destroy(s);
        return st;
    }
    *out = s;
    return RB_OK;
}
