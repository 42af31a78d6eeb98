/* Splits in memory (robusta/data.h): creation, selection of classes and of
 * examples per class, the output geometry (bilinear resize, channel
 * replication) and the making of one example with its augmentation. */
#include "config.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/data.h>
#include <robusta/rng.h>

#include "data/data_internal.h"
#include "data/image_store.h"
#include "sys/internal.h"

/* Bounds that keep every size computation far from overflow. */
#define MAX_SIDE 65536
#define MAX_CLASSES 100000

/* ------------------------------------------------------------ names */

const char *rb_data_source_str(rb_data_source kind)
{
    switch (kind) {
    case RB_DATASET_NONE: return "memory";
    case RB_DATASET_MNIST: return "mnist";
    case RB_DATASET_FASHION_MNIST: return "fashion-mnist";
    case RB_DATASET_CIFAR10: return "cifar10";
    case RB_DATASET_CIFAR100: return "cifar100";
    case RB_DATASET_NPY: return "npy";
    case RB_DATASET_FEATURES: return "features";
    case RB_DATASET_VOC_SEG: return "voc-seg";
    case RB_DATASET_FOLDER: return "folder";
    case RB_DATASET_LIST: return "list";
    case RB_DATASET_COCO: return "coco";
    }
    return "unknown";
}

const char *rb_split_which_str(rb_split_which which)
{
    switch (which) {
    case RB_SPLIT_TRAIN: return "train";
    case RB_SPLIT_TEST: return "test";
    }
    return "unknown";
}

/* ------------------------------------------------------------ life cycle */

static void free_examples(rb_split *split)
{
    if (split->example_names != NULL)
        for (int64_t i = 0; i < split->count; i++)
            free(split->example_names[i]);
    free(split->example_names);
    free(split->source_sizes);
    free(split->source_ids);
    split->example_names = NULL;
    split->source_sizes = NULL;
    split->source_ids = NULL;
}

void rb_split_destroy(rb_split *split)
{
    if (split == NULL)
        return;
    if (split->class_names != NULL)
        for (int64_t c = 0; c < split->classes; c++)
            free(split->class_names[c]);
    free(split->class_names);
    free(split->class_source_ids);
    free(split->name);
    free(split->images);
    free(split->labels);
    free(split->source_index);
    rb_resize_axis_free(&split->rows);
    rb_resize_axis_free(&split->cols);
    rb_split_free_targets(split);
    free_examples(split);
    rb_image_store_release(split->store);
    free(split->store_index);
    free(split);
}

size_t rb_split_stored_bytes(const rb_split *split)
{
    return (size_t)split->channels * (size_t)split->height * (size_t)split->width *
           rb_dtype_size(split->dtype);
}

rb_status rb_split_alloc(rb_split **out, rb_data_source kind, const char *name, rb_dtype dtype,
                         int64_t count, int channels, int height, int width, int64_t classes)
{
    rb_split *s;
    size_t image_bytes, total;

    *out = NULL;
    if (kind == RB_DATASET_FEATURES) {
        /* A backbone's outputs (split_features.c): f32 or bf16, any channel count. */
        if ((dtype != RB_DTYPE_F32 && dtype != RB_DTYPE_BF16) || channels < 1 || channels > MAX_SIDE ||
            height < 1 || height > MAX_SIDE || width < 1 || width > MAX_SIDE)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: %s features of %d×%d×%d are not supported (f32 or bf16, sides 1 to %d)", name,
                                rb_dtype_str(dtype), channels, height, width, MAX_SIDE);
    } else {
        if (dtype != RB_DTYPE_U8 && dtype != RB_DTYPE_F32)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: images must be u8 or f32, not %s", name,
                                rb_dtype_str(dtype));
        if (channels < 1 || channels > 4 || height < 1 || height > MAX_SIDE || width < 1 || width > MAX_SIDE)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: images of %d×%d×%d are not supported (1 to 4 channels, sides 1 to %d)", name,
                                channels, height, width, MAX_SIDE);
    }
    if (classes < 1 || classes > MAX_CLASSES)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: %" PRId64 " classes; robusta handles 1 to %d", name,
                            classes, MAX_CLASSES);
    image_bytes = (size_t)channels * (size_t)height * (size_t)width * rb_dtype_size(dtype);
    if (count < 0 || (uint64_t)count > SIZE_MAX / 8 / image_bytes)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: %" PRId64 " examples cannot be held in memory", name,
                            count);
    total = (size_t)count * image_bytes;

    s = calloc(1, sizeof *s);
    if (s == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for split %s", name);
    s->kind = kind;
    s->dtype = dtype;
    s->count = count;
    s->channels = s->out_channels = channels;
    s->height = s->out_height = height;
    s->width = s->out_width = width;
    s->target_height = height;
    s->target_width = width;
    s->classes = classes;
    s->name = strdup(name);
    s->images = calloc(total ? total : 1, 1);
    s->labels = calloc(count ? (size_t)count : 1, sizeof *s->labels);
    s->source_index = malloc((count ? (size_t)count : 1) * sizeof *s->source_index);
    s->class_names = calloc((size_t)classes, sizeof *s->class_names);
    if (s->name == NULL || s->images == NULL || s->labels == NULL || s->source_index == NULL ||
        s->class_names == NULL) {
        rb_split_destroy(s);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for %s (%" PRId64 " images, %zu bytes)", name,
                            count, total);
    }
    for (int64_t i = 0; i < count; i++)
        s->source_index[i] = i;
    *out = s;
    return RB_OK;
}

rb_status rb_split_alloc_examples(rb_split *split)
{
    const size_t n = split->count ? (size_t)split->count : 1;
    free_examples(split);
    split->example_names = calloc(n, sizeof *split->example_names);
    split->source_sizes = calloc(2 * n, sizeof *split->source_sizes);
    split->source_ids = malloc(n * sizeof *split->source_ids);
    if (split->example_names == NULL || split->source_sizes == NULL || split->source_ids == NULL) {
        free_examples(split);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the example names of %s", split->name);
    }
    for (size_t i = 0; i < n; i++)
        split->source_ids[i] = -1;
    return RB_OK;
}

/* Copies the names and source sizes of the examples `keep` marks (in
 * order) from `in` to `s` (rb_split_apply). */
static rb_status copy_examples(rb_split *s, const rb_split *in, const unsigned char *keep)
{
    rb_status st;
    if (in->example_names == NULL)
        return RB_OK;
    if ((st = rb_split_alloc_examples(s)) != RB_OK)
        return st;
    for (int64_t i = 0, j = 0; i < in->count; i++) {
        if (!keep[i])
            continue;
        s->source_sizes[2 * j] = in->source_sizes[2 * i];
        s->source_sizes[2 * j + 1] = in->source_sizes[2 * i + 1];
        s->source_ids[j] = in->source_ids[i];
        if (in->example_names[i] != NULL && (s->example_names[j] = strdup(in->example_names[i])) == NULL)
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the example names of %s", in->name);
        j++;
    }
    return RB_OK;
}

rb_status rb_split_set_class_source_ids(rb_split *split, const int64_t *ids)
{
    free(split->class_source_ids);
    split->class_source_ids = NULL;
    if (ids == NULL || split->classes == 0)
        return RB_OK;
    if ((split->class_source_ids = malloc((size_t)split->classes * sizeof *ids)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the class ids of %s", split->name);
    memcpy(split->class_source_ids, ids, (size_t)split->classes * sizeof *ids);
    return RB_OK;
}

rb_status rb_split_set_names(rb_split *split, const char *const *names)
{
    for (int64_t c = 0; c < split->classes; c++) {
        char buf[32];
        const char *n = names != NULL ? names[c] : NULL;
        if (n == NULL) {
            snprintf(buf, sizeof buf, "class_%" PRId64, c);
            n = buf;
        }
        free(split->class_names[c]);
        split->class_names[c] = strdup(n);
        if (split->class_names[c] == NULL)
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the class names of %s", split->name);
    }
    return RB_OK;
}

rb_status rb_split_check_labels(const char *what, const int64_t *labels, int64_t count, int64_t classes)
{
    for (int64_t i = 0; i < count; i++)
        if (labels[i] < 0 || labels[i] >= classes)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: label %" PRId64 " of example %" PRId64 " is out of range [0, %" PRId64 "]",
                                what, labels[i], i, classes - 1);
    return RB_OK;
}

rb_status rb_split_create(rb_split **out, rb_dtype dtype, int64_t count, int channels, int height, int width,
                          const void *images, const int64_t *labels, int64_t classes, const char *const *names,
                          const char *what)
{
    rb_split *s;
    rb_status st;
    size_t image_bytes;

    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_create: out is NULL");
    *out = NULL;
    if (what == NULL)
        what = "images in memory";
    if (count > 0 && (images == NULL || labels == NULL))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: images or labels is NULL", what);
    if ((st = rb_split_alloc(&s, RB_DATASET_NONE, what, dtype, count, channels, height, width, classes)) != RB_OK)
        return st;
    image_bytes = rb_split_stored_bytes(s);
    if ((st = rb_split_check_labels(what, labels, count, classes)) != RB_OK) {
        rb_split_destroy(s);
        return st;
    }
    if (dtype == RB_DTYPE_F32) {
        const float *f = images;
        size_t n = (size_t)count * image_bytes / sizeof(float);
        for (size_t k = 0; k < n; k++) {
            if (!(f[k] >= 0.0f && f[k] <= 1.0f)) {
                size_t per = image_bytes / sizeof(float);
                rb_split_destroy(s);
                return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                    "%s: value %g in example %zu is outside [0, 1]: float images must be "
                                    "scaled to [0, 1]",
                                    what, (double)f[k], k / per);
            }
        }
    }
    if (count > 0) {
        memcpy(s->images, images, (size_t)count * image_bytes);
        memcpy(s->labels, labels, (size_t)count * sizeof *labels);
    }
    if ((st = rb_split_set_names(s, names)) != RB_OK) {
        rb_split_destroy(s);
        return st;
    }
    *out = s;
    return RB_OK;
}

/* ------------------------------------------------------------ accessors */

int64_t rb_split_count(const rb_split *split)
{
    return split ? split->count : 0;
}

int64_t rb_split_classes(const rb_split *split)
{
    return split ? split->classes : 0;
}

const char *rb_split_class_name(const rb_split *split, int64_t label)
{
    if (split == NULL || label < 0 || label >= split->classes)
        return NULL;
    return split->class_names[label];
}

rb_data_source rb_split_kind(const rb_split *split)
{
    return split ? split->kind : RB_DATASET_NONE;
}

const char *rb_split_name(const rb_split *split)
{
    return split ? split->name : "";
}

void rb_split_shape(const rb_split *split, int *channels, int *height, int *width)
{
    if (channels)
        *channels = split->out_channels;
    if (height)
        *height = split->out_height;
    if (width)
        *width = split->out_width;
}

size_t rb_split_example_size(const rb_split *split)
{
    return (size_t)split->out_channels * (size_t)split->out_height * (size_t)split->out_width;
}

rb_dtype rb_split_dtype(const rb_split *split)
{
    return split->dtype;
}

void rb_split_stored_shape(const rb_split *split, int *channels, int *height, int *width)
{
    if (channels)
        *channels = split->channels;
    if (height)
        *height = split->store != NULL ? 0 : split->height; /* each image its own size */
    if (width)
        *width = split->store != NULL ? 0 : split->width;
}

const void *rb_split_images(const rb_split *split)
{
    return split->store != NULL ? NULL : split->images;
}

const int64_t *rb_split_labels(const rb_split *split)
{
    return split->labels;
}

const int64_t *rb_split_source_indices(const rb_split *split)
{
    return split->source_index;
}

const char *rb_split_example_name(const rb_split *split, int64_t index)
{
    if (split == NULL || split->example_names == NULL || index < 0 || index >= split->count)
        return NULL;
    return split->example_names[index];
}

int64_t rb_split_example_source_id(const rb_split *split, int64_t index)
{
    if (split == NULL || index < 0 || index >= split->count)
        return -1;
    return split->source_ids != NULL ? split->source_ids[index] : -1;
}

int64_t rb_split_class_source_id(const rb_split *split, int64_t label)
{
    if (split == NULL || label < 0 || label >= split->classes)
        return -1;
    return split->class_source_ids != NULL ? split->class_source_ids[label] : label;
}

void rb_split_example_source_size(const rb_split *split, int64_t index, int64_t *height, int64_t *width)
{
    int64_t h = 0, w = 0;
    if (split != NULL && index >= 0 && index < split->count) {
        h = split->height;
        w = split->width;
        if (split->source_sizes != NULL && split->source_sizes[2 * index] > 0) {
            h = split->source_sizes[2 * index];
            w = split->source_sizes[2 * index + 1];
        }
    }
    if (height)
        *height = h;
    if (width)
        *width = w;
}

/* ------------------------------------------------------------ class lists */

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A non-negative decimal at *p; advances *p. */
static bool parse_number(const char **p, int64_t *value)
{
    const char *q = *p;
    int64_t v = 0;
    if (*q < '0' || *q > '9')
        return false;
    while (*q >= '0' && *q <= '9') {
        if (v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (*q - '0');
        q++;
    }
    *p = q;
    *value = v;
    return true;
}

/* Parses a class list against a split of `classes` classes into `list`
 * (original labels in the order given); *count of them. `list` holds
 * `classes` entries: more would repeat one. */
static rb_status parse_class_list(const char *text, const rb_split *split, int64_t *list, int64_t *count)
{
    const int64_t classes = split->classes;
    const char *p = text;
    unsigned char *seen = calloc((size_t)classes, 1);
    int64_t n = 0;
    rb_status st = RB_OK;

    if (seen == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory parsing class list '%s'", text);
    for (;;) {
        const char *item = skip_space(p);
        const char *end;
        int64_t a, b;
        p = item;
        if (!parse_number(&p, &a)) {
            size_t len = strcspn(item, ",");
            if (len == 0)
                st = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                  "class list '%s' has an empty item: write numbers and ranges like 0-4,7", text);
            else
                st = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                  "class list '%s': '%.*s' is not a class number or a range like 0-4", text,
                                  (int)len, item);
            goto done;
        }
        b = a;
        p = skip_space(p);
        if (*p == '-') {
            p = skip_space(p + 1);
            if (!parse_number(&p, &b)) {
                size_t len = strcspn(item, ",");
                st = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                  "class list '%s': '%.*s' is not a class number or a range like 0-4", text,
                                  (int)len, item);
                goto done;
            }
            p = skip_space(p);
        }
        end = p;
        if (*end != ',' && *end != '\0') {
            size_t len = strcspn(item, ",");
            st = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                              "class list '%s': '%.*s' is not a class number or a range like 0-4", text, (int)len,
                              item);
            goto done;
        }
        if (b < a) {
            st = rb_error_set(RB_ERR_INVALID_ARGUMENT, "class list '%s': range %" PRId64 "-%" PRId64
                              " runs backwards; write %" PRId64 "-%" PRId64,
                              text, a, b, b, a);
            goto done;
        }
        if (b >= classes) {
            st = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                              "class list '%s': class %" PRId64 " is out of range: %s has %" PRId64
                              " classes (0-%" PRId64 ")",
                              text, b, split->name, classes, classes - 1);
            goto done;
        }
        for (int64_t c = a; c <= b; c++) {
            if (seen[c]) {
                st = rb_error_set(RB_ERR_INVALID_ARGUMENT, "class list '%s' names class %" PRId64 " twice", text,
                                  c);
                goto done;
            }
            seen[c] = 1;
            list[n++] = c;
        }
        if (*end == '\0')
            break;
        p = end + 1;
    }
done:
    free(seen);
    *count = n;
    return st;
}

/* ------------------------------------------------------------ geometry */

static rb_status set_geometry(rb_split *s, int height, int width, int channels)
{
    rb_status st;
    s->out_channels = channels;
    s->out_height = height;
    s->out_width = width;
    s->resized = height != s->height || width != s->width;
    rb_resize_axis_free(&s->rows);
    rb_resize_axis_free(&s->cols);
    if (!s->resized)
        return RB_OK;
    if ((st = rb_resize_axis_init(&s->rows, s->height, height)) != RB_OK)
        return st;
    return rb_resize_axis_init(&s->cols, s->width, width);
}

static inline float stored_pixel(const rb_split *s, const void *image, size_t offset)
{
    if (s->dtype == RB_DTYPE_U8)
        return (float)((const unsigned char *)image)[offset] / 255.0f;
    return ((const float *)image)[offset];
}

/* The value of stored pixel `offset` of channel plane 0 as the output
 * channel sees it: itself, or, when three channels become one, its luma
 * as Pillow's convert('L') computes it for 8-bit images (ITU-R 601-2:
 * (19595 R + 38470 G + 7471 B + 2^15) >> 16, so the same grey levels as a
 * Pillow pipeline) and 0.299 R + 0.587 G + 0.114 B for float images. */
static inline float source_pixel(const rb_split *s, const void *image, size_t plane, size_t offset)
{
    if (s->out_channels != 1 || s->channels != 3)
        return stored_pixel(s, image, offset);
    if (s->dtype == RB_DTYPE_U8) {
        const unsigned char *p = (const unsigned char *)image + offset;
        return (float)((19595u * p[0] + 38470u * p[plane] + 7471u * p[2 * plane] + 0x8000u) >> 16) / 255.0f;
    }
    return 0.299f * stored_pixel(s, image, offset) + 0.587f * stored_pixel(s, image, offset + plane) +
           0.114f * stored_pixel(s, image, offset + 2 * plane);
}

void rb_split_render(const rb_split *s, int64_t index, int padding, int top, int left, bool flip, float *out)
{
    const int C = s->out_channels, H = s->out_height, W = s->out_width;
    const size_t plane = (size_t)s->height * (size_t)s->width;
    const void *image = (const unsigned char *)s->images + (size_t)index * rb_split_stored_bytes(s);

    if (s->kind == RB_DATASET_FEATURES) { /* a model's outputs: as stored, never augmented */
        rb_split_render_features(s, index, out);
        return;
    }

    for (int c = 0; c < C; c++) {
        const size_t base = (size_t)(s->channels == 1 ? 0 : c) * plane;
        for (int y = 0; y < H; y++) {
            float *row = out + ((size_t)c * (size_t)H + (size_t)y) * (size_t)W;
            const int sy = y + top - padding;
            if (sy < 0 || sy >= H) {
                memset(row, 0, (size_t)W * sizeof *row);
                continue;
            }
            for (int x = 0; x < W; x++) {
                const int sx = (flip ? W - 1 - x : x) + left - padding;
                float v;
                if (sx < 0 || sx >= W) {
                    row[x] = 0.0f;
                    continue;
                }
                if (!s->resized) {
                    v = source_pixel(s, image, plane, base + (size_t)sy * (size_t)s->width + (size_t)sx);
                } else {
                    const size_t r0 = base + (size_t)s->rows.i0[sy] * (size_t)s->width;
                    const size_t r1 = base + (size_t)s->rows.i1[sy] * (size_t)s->width;
                    const size_t c0 = (size_t)s->cols.i0[sx], c1 = (size_t)s->cols.i1[sx];
                    v = rb_resize_mix(source_pixel(s, image, plane, r0 + c0), source_pixel(s, image, plane, r0 + c1),
                                      source_pixel(s, image, plane, r1 + c0), source_pixel(s, image, plane, r1 + c1),
                                      s->cols.w0[sx], s->cols.w1[sx], s->rows.w0[sy], s->rows.w1[sy]);
                }
                row[x] = v;
            }
        }
    }
}

/* ------------------------------------------------------------ selection */

/* The examples options->indices lets through, as a mask over `in`. */
static rb_status allowed_examples(const rb_split *in, const rb_split_options *o, unsigned char **out)
{
    int64_t *entry_of = NULL;
    unsigned char *mask;
    *out = NULL;
    if (o->index_count < 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: %" PRId64 " indices", in->name, o->index_count);
    mask = calloc(in->count ? (size_t)in->count : 1, 1);
    entry_of = malloc((in->count ? (size_t)in->count : 1) * sizeof *entry_of);
    if (mask == NULL || entry_of == NULL) {
        free(mask);
        free(entry_of);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory selecting from %s", in->name);
    }
    for (int64_t e = 0; e < o->index_count; e++) {
        int64_t i = o->indices[e];
        if (i < 0 || i >= in->count) {
            free(mask);
            free(entry_of);
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: index %" PRId64 " (entry %" PRId64 " of the list) is outside [0, %" PRId64
                                "), the split's examples",
                                in->name, i, e + 1, in->count);
        }
        if (mask[i]) {
            int64_t first = entry_of[i] + 1;
            free(mask);
            free(entry_of);
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: index %" PRId64 " is listed twice (entries %" PRId64 " and %" PRId64 ")",
                                in->name, i, first, e + 1);
        }
        mask[i] = 1;
        entry_of[i] = e;
    }
    free(entry_of);
    *out = mask;
    return RB_OK;
}

rb_status rb_split_apply(rb_split **out, const rb_split *in, const rb_split_options *options)
{
    static const rb_split_options none = {0};
    const rb_split_options *o = options ? options : &none;
    int64_t *list = NULL, *map = NULL, *order = NULL, *start = NULL;
    unsigned char *keep = NULL, *allowed = NULL;
    int64_t k = 0, kept = 0;
    int channels;
    rb_split *s = NULL;
    rb_status st = RB_OK;
    size_t image_bytes;

    if (out == NULL || in == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_apply: out or in is NULL");
    *out = NULL;
    if (o->per_class < 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s: examples per class must be >= 0 (0 keeps all), not %" PRId64, in->name,
                            o->per_class);
    if (o->size < 0 || o->size > MAX_SIDE)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: image size %d is out of range [1, %d] (0 keeps %d×%d)",
                            in->name, o->size, MAX_SIDE, in->out_height, in->out_width);
    switch (o->channels) {
    case 0: channels = in->out_channels; break;
    case 1:
        if (in->channels != 1 && in->channels != 3)
            return rb_error_set(RB_ERR_UNSUPPORTED, "%s has %d-channel images; only 1 or 3 can become 1",
                                in->name, in->channels);
        channels = 1;
        break;
    case 3:
        if (in->channels != 1 && in->channels != 3)
            return rb_error_set(RB_ERR_UNSUPPORTED, "%s has %d-channel images; only 1 or 3 can become 3",
                                in->name, in->channels);
        channels = 3;
        break;
    default:
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: channels must be 0 (keep), 1 or 3, not %d", in->name,
                            o->channels);
    }

    list = malloc((size_t)in->classes * sizeof *list);
    map = malloc((size_t)in->classes * sizeof *map);
    start = calloc((size_t)in->classes + 1, sizeof *start);
    order = malloc((in->count ? (size_t)in->count : 1) * sizeof *order);
    keep = calloc(in->count ? (size_t)in->count : 1, 1);
    if (list == NULL || map == NULL || start == NULL || order == NULL || keep == NULL) {
        st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory selecting from %s", in->name);
        goto done;
    }
    if (o->classes != NULL && o->classes[0] != '\0') {
        if ((st = parse_class_list(o->classes, in, list, &k)) != RB_OK)
            goto done;
    } else {
        k = in->classes;
        for (int64_t c = 0; c < k; c++)
            list[c] = c;
    }
    for (int64_t c = 0; c < in->classes; c++)
        map[c] = -1;
    for (int64_t c = 0; c < k; c++)
        map[list[c]] = c;
    if (o->indices != NULL && (st = allowed_examples(in, o, &allowed)) != RB_OK)
        goto done;
    if (in->store != NULL && o->channels != 0 && o->channels != 3) {
        st = rb_error_set(RB_ERR_UNSUPPORTED, "%s: the paper's transform makes RGB examples; leave channels at 3, "
                          "not %d", in->name, o->channels);
        goto done;
    }
    if (rb_split_has_targets(in)) {
        /* Masks and boxes hold class numbers too; relabelling them is a
         * choice (what becomes of a dropped class's pixels?) this does not
         * make for the caller. */
        bool same = k == in->classes;
        for (int64_t c = 0; same && c < k; c++)
            same = list[c] == c;
        if (!same) {
            st = rb_error_set(RB_ERR_UNSUPPORTED,
                              "%s has masks or boxes, whose classes a class list ('%s') would have to relabel; "
                              "keep every class in order, or select examples with per_class",
                              in->name, o->classes);
            goto done;
        }
    }

    /* Examples grouped by new class, file order within each (counting sort). */
    for (int64_t i = 0; i < in->count; i++)
        if (map[in->labels[i]] >= 0 && (allowed == NULL || allowed[i]))
            start[map[in->labels[i]] + 1]++;
    for (int64_t c = 0; c < k; c++)
        start[c + 1] += start[c];
    {
        int64_t *fill = calloc(k ? (size_t)k : 1, sizeof *fill);
        if (fill == NULL) {
            st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory selecting from %s", in->name);
            goto done;
        }
        for (int64_t i = 0; i < in->count; i++) {
            int64_t c = map[in->labels[i]];
            if (c >= 0 && (allowed == NULL || allowed[i]))
                order[start[c] + fill[c]++] = i;
        }
        free(fill);
    }
    for (int64_t c = 0; c < k; c++) {
        int64_t *group = order + start[c], n = start[c + 1] - start[c];
        int64_t take = n;
        if (o->per_class > 0 && n > o->per_class) {
            /* Partial Fisher-Yates; the stream belongs to the original
             * class so the choice does not depend on the list's order. */
            rb_rng r;
            rb_rng_init(&r, o->seed, RB_RNG_STREAM(RB_RNG_SUBSET, list[c]), 0);
            take = o->per_class;
            for (int64_t i = 0; i < take; i++) {
                int64_t j = i + (int64_t)rb_rng_below(&r, (uint64_t)(n - i));
                int64_t t = group[i];
                group[i] = group[j];
                group[j] = t;
            }
        }
        for (int64_t i = 0; i < take; i++)
            keep[group[i]] = 1;
        kept += take;
    }

    if ((st = rb_split_alloc(&s, in->kind, in->name, in->dtype, kept, in->channels, in->height, in->width, k)) !=
        RB_OK)
        goto done;
    image_bytes = rb_split_stored_bytes(in);
    for (int64_t i = 0, j = 0; i < in->count; i++) {
        if (!keep[i])
            continue;
        memcpy((unsigned char *)s->images + (size_t)j * image_bytes,
               (const unsigned char *)in->images + (size_t)i * image_bytes, image_bytes);
        s->labels[j] = map[in->labels[i]];
        s->source_index[j] = in->source_index[i];
        j++;
    }
    for (int64_t c = 0; c < k; c++) {
        s->class_names[c] = strdup(in->class_names[list[c]]);
        if (s->class_names[c] == NULL) {
            st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the class names of %s", in->name);
            goto done;
        }
    }
    if (in->class_source_ids != NULL) {
        if ((s->class_source_ids = malloc((size_t)k * sizeof *s->class_source_ids)) == NULL) {
            st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the class ids of %s", in->name);
            goto done;
        }
        for (int64_t c = 0; c < k; c++)
            s->class_source_ids[c] = in->class_source_ids[list[c]];
    }
    s->target_height = in->target_height;
    s->target_width = in->target_width;
    if (in->store != NULL)
        st = rb_split_share_kept(s, in, keep, o->size);
    else if (o->size > 0)
        st = set_geometry(s, o->size, o->size, channels);
    else
        st = set_geometry(s, in->out_height, in->out_width, channels);
    if (st == RB_OK)
        st = rb_split_copy_targets(s, in, keep);
    if (st == RB_OK)
        st = copy_examples(s, in, keep);

done:
    free(list);
    free(map);
    free(start);
    free(order);
    free(keep);
    free(allowed);
    if (st != RB_OK) {
        rb_split_destroy(s);
        return st;
    }
    *out = s;
    return RB_OK;
}

/* ------------------------------------------------------------ augmentation */

void rb_augment_defaults(rb_data_source kind, rb_augment *out)
{
    memset(out, 0, sizeof *out);
    switch (kind) {
    case RB_DATASET_CIFAR10:
    case RB_DATASET_CIFAR100:
        out->crop = true;
        out->padding = 4;
        out->flip = true;
        break;
    case RB_DATASET_MNIST:
    case RB_DATASET_FASHION_MNIST:
        out->crop = true;
        out->padding = 2;
        out->flip = false;
        break;
    case RB_DATASET_VOC_SEG:
    case RB_DATASET_COCO:
    case RB_DATASET_FOLDER:
    case RB_DATASET_LIST:
        out->flip = true;
        break;
    case RB_DATASET_NPY:
    case RB_DATASET_NONE:
    case RB_DATASET_FEATURES:
        break;
    }
}

void rb_augment_draw(const rb_augment *augment, uint64_t seed, int64_t epoch, int64_t index, int *top, int *left,
                     bool *flip)
{
    rb_rng r;
    uint32_t a, b, c;
    /* Always three words, whatever is on, so that switching crop off does
     * not change the flips. */
    rb_rng_init(&r, seed, RB_RNG_STREAM(RB_RNG_AUGMENT, (uint32_t)epoch), (uint64_t)index);
    a = rb_rng_u32(&r);
    b = rb_rng_u32(&r);
    c = rb_rng_u32(&r);
    if (augment != NULL && augment->crop && augment->padding > 0) {
        uint64_t span = 2 * (uint64_t)augment->padding + 1;
        *top = (int)(((uint64_t)a * span) >> 32);
        *left = (int)(((uint64_t)b * span) >> 32);
    } else {
        *top = 0;
        *left = 0;
    }
    *flip = augment != NULL && augment->flip && (c >> 31) != 0;
}

void rb_augment_place(const rb_augment *augment, uint64_t seed, int64_t epoch, int64_t index, int *padding,
                      int *top, int *left, bool *flip)
{
    *padding = *top = *left = 0;
    *flip = false;
    if (augment == NULL || !(augment->crop || augment->flip))
        return;
    rb_augment_draw(augment, seed, epoch, index, top, left, flip);
    if (augment->crop)
        *padding = augment->padding;
}

rb_status rb_split_place(const rb_split *split, int64_t index, const rb_augment *augment, uint64_t seed,
                         int64_t epoch, int *padding, int *top, int *left, bool *flip)
{
    if (index < 0 || index >= split->count)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: example %" PRId64 " is out of range [0, %" PRId64 ")",
                            split->name, index, split->count);
    if (epoch < 0 || epoch >= RB_DATA_EPOCH_LIMIT)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "epoch %" PRId64 " is out of range [0, %" PRId64 ")", epoch,
                            RB_DATA_EPOCH_LIMIT);
    if (augment != NULL && (augment->padding < 0 || augment->padding > MAX_SIDE))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "crop padding %d is out of range [0, %d]", augment->padding,
                            MAX_SIDE);
    rb_augment_place(augment, seed, epoch, index, padding, top, left, flip);
    return RB_OK;
}

rb_status rb_split_example(const rb_split *split, int64_t index, const rb_augment *augment, uint64_t seed,
                           int64_t epoch, float *out)
{
    int top, left, padding;
    bool flip;
    rb_status st;
    if (split == NULL || out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_example: split or out is NULL");
    st = rb_split_place(split, index, augment, seed, epoch, &padding, &top, &left, &flip);
    if (st != RB_OK)
        return st;
    if (split->store != NULL)
        return rb_split_render_kept(split, index, augment, seed, epoch, out);
    rb_split_render(split, index, padding, top, left, flip, out);
    return RB_OK;
}
