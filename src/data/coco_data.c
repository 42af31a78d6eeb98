/* COCO detection datasets (coco:..., robusta/data.h): an annotation file
 * (instances_*.json, parsed by rb_coco_parse) and the folder its images'
 * file names are relative to. Each image becomes an example with its
 * boxes, as torchvision's detection references read COCO: crowd regions
 * left out, boxes as corners clipped to the image, empty ones dropped;
 * categories numbered 0..K-1 in the order of their ids. The COCO ids of
 * images and categories stay with the split, so predictions can be written
 * back in COCO's results format. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <robusta/coco.h>
#include <robusta/data.h>
#include <robusta/targets.h>

#include "data/coco_data.h"
#include "data/data_internal.h"
#include "data/image.h"
#include "sys/internal.h"

static int compare_i64(const void *a, const void *b)
{
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The position of `id` in the sorted `ids`, or -1. */
static int64_t find_id(const int64_t *ids, size_t n, int64_t id)
{
    const int64_t *hit = bsearch(&id, ids, n, sizeof *ids, compare_i64);
    return hit == NULL ? -1 : (int64_t)(hit - ids);
}

/* Category ids in ascending order: class c is the c-th. */
typedef struct category_map {
    int64_t *ids;     /* sorted */
    size_t count;
    const char **names; /* per class, the category's name (not owned) */
} category_map;

static rb_status map_categories(const rb_coco *coco, const char *what, category_map *out)
{
    memset(out, 0, sizeof *out);
    if (coco->n_categories == 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s lists no categories; a detection dataset needs at least one in \"categories\"", what);
    out->count = coco->n_categories;
    out->ids = malloc(out->count * sizeof *out->ids);
    out->names = calloc(out->count, sizeof *out->names);
    if (out->ids == NULL || out->names == NULL) {
        free(out->ids);
        free(out->names);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the categories of %s", what);
    }
    for (size_t c = 0; c < out->count; c++)
        out->ids[c] = coco->categories[c].id;
    qsort(out->ids, out->count, sizeof *out->ids, compare_i64);
    for (size_t c = 0; c < coco->n_categories; c++) {
        const int64_t k = find_id(out->ids, out->count, coco->categories[c].id);
        out->names[k] = coco->categories[c].name;
    }
    return RB_OK;
}

static void free_categories(category_map *m)
{
    free(m->ids);
    free(m->names);
    memset(m, 0, sizeof *m);
}

/* Per image (in file order), its annotations: order[first[i] .. first[i+1])
 * index coco->annotations, in file order. */
typedef struct image_annotations {
    size_t *first;
    size_t *order;
} image_annotations;

static rb_status group_annotations(const rb_coco *coco, const char *what, image_annotations *out)
{
    const size_t n_img = coco->n_images, n_ann = coco->n_annotations;
    int64_t *sorted_ids = NULL, *position = NULL;
    size_t *fill = NULL;
    rb_status st = RB_OK;

    memset(out, 0, sizeof *out);
    out->first = calloc(n_img + 1, sizeof *out->first);
    out->order = malloc((n_ann ? n_ann : 1) * sizeof *out->order);
    sorted_ids = malloc((n_img ? n_img : 1) * sizeof *sorted_ids);
    position = malloc((n_img ? n_img : 1) * sizeof *position);
    fill = calloc(n_img + 1, sizeof *fill);
    if (out->first == NULL || out->order == NULL || sorted_ids == NULL || position == NULL || fill == NULL) {
        st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory grouping the annotations of %s", what);
        goto done;
    }
    /* image id -> file position, through the ids sorted with their positions */
    for (size_t i = 0; i < n_img; i++)
        sorted_ids[i] = coco->images[i].id;
    qsort(sorted_ids, n_img, sizeof *sorted_ids, compare_i64);
    for (size_t i = 0; i < n_img; i++)
        position[find_id(sorted_ids, n_img, coco->images[i].id)] = (int64_t)i;
    /* counting sort by image, stable in file order */
    for (size_t a = 0; a < n_ann; a++) {
        const int64_t k = find_id(sorted_ids, n_img, coco->annotations[a].image_id);
        if (k < 0) { /* rb_coco_parse refuses these; a struct filled by hand may not */
            st = rb_error_set(RB_ERR_CORRUPT, "%s: annotation %zu (id %" PRId64 ") is on image %" PRId64
                              ", which \"images\" does not list", what, a, coco->annotations[a].id,
                              coco->annotations[a].image_id);
            goto done;
        }
        out->first[position[k] + 1]++;
    }
    for (size_t i = 0; i < n_img; i++)
        out->first[i + 1] += out->first[i];
    for (size_t a = 0; a < n_ann; a++) {
        const size_t i = (size_t)position[find_id(sorted_ids, n_img, coco->annotations[a].image_id)];
        out->order[out->first[i] + fill[i]++] = a;
    }
done:
    free(sorted_ids);
    free(position);
    free(fill);
    if (st != RB_OK) {
        free(out->first);
        free(out->order);
        memset(out, 0, sizeof *out);
    }
    return st;
}

/* An annotation as a training box, as torchvision's COCO reference makes
 * them: corners x, y, x + w, y + h clipped to the image as its file has it
 * (W × H), then scaled to the stored size; false when the box is
 * a crowd region or has nothing left. */
static bool annotation_box(const rb_coco_annotation *a, int64_t W, int64_t H, int stored_w, int stored_h,
                           int64_t label, rb_box *out)
{
    double x1 = a->bbox[0], y1 = a->bbox[1], x2 = a->bbox[0] + a->bbox[2], y2 = a->bbox[1] + a->bbox[3];
    if (a->iscrowd)
        return false;
    x1 = fmin(fmax(x1, 0.0), (double)W);
    x2 = fmin(fmax(x2, 0.0), (double)W);
    y1 = fmin(fmax(y1, 0.0), (double)H);
    y2 = fmin(fmax(y2, 0.0), (double)H);
    const double sx = (double)stored_w / (double)W, sy = (double)stored_h / (double)H;
    if (!(x2 > x1) || !(y2 > y1))
        return false;
    out->x1 = (float)(x1 * sx);
    out->y1 = (float)(y1 * sy);
    out->x2 = (float)(x2 * sx);
    out->y2 = (float)(y2 * sy);
    /* float rounding must not put a corner past the stored edge */
    out->x2 = fminf(out->x2, (float)stored_w);
    out->y2 = fminf(out->y2, (float)stored_h);
    out->label = label;
    return out->x2 > out->x1 && out->y2 > out->y1;
}

/* The most frequent class among an example's boxes (the smaller on a
 * tie); 0 for an image without boxes. */
static int64_t dominant_label(const rb_box *boxes, int64_t n, int64_t classes, int64_t *counts)
{
    int64_t best = 0;
    if (n == 0)
        return 0;
    memset(counts, 0, (size_t)classes * sizeof *counts);
    for (int64_t b = 0; b < n; b++)
        counts[boxes[b].label]++;
    for (int64_t c = 1; c < classes; c++)
        if (counts[c] > counts[best])
            best = c;
    return best;
}

static rb_status image_path(char *out, size_t size, const char *dir, const rb_coco_image *im, const char *what,
                            size_t index)
{
    int n;
    if (im->file_name == NULL || im->file_name[0] == '\0')
        return rb_error_set(RB_ERR_CORRUPT,
                            "%s: image %zu (id %" PRId64 ") has no \"file_name\"; a dataset needs each image's file",
                            what, index, im->id);
    n = snprintf(out, size, "%s/%s", dir, im->file_name);
    if (n < 0 || (size_t)n >= size)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: image %zu: the path of %.60s... is too long", what, index,
                            im->file_name);
    return RB_OK;
}

rb_status rb_coco_data_load(rb_split **out, const char *images_dir, const char *annotations, rb_split_which which,
                            int size)
{
    char split_name[RB_DATASET_PATH_MAX + 32], first_image[RB_DATASET_PATH_MAX + 512];
    rb_coco *coco = NULL;
    category_map cats = {0};
    image_annotations groups = {0};
    rb_split *s = NULL;
    rb_box *boxes = NULL;
    int64_t *offsets = NULL, *counts = NULL, n_boxes = 0;
    struct stat info;
    rb_status st;

    *out = NULL;
    if (size < 0 || size > 65536)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "coco:%s: image size %d is out of range [1, 65536] (0 keeps the images' own size)",
                            images_dir, size);
    if (stat(images_dir, &info) != 0)
        return rb_error_set(errno == ENOENT || errno == ENOTDIR ? RB_ERR_NOT_FOUND : RB_ERR_IO,
                            "coco: cannot open the image folder %s: %s", images_dir, strerror(errno));
    if (!S_ISDIR(info.st_mode))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "coco: %s is not a folder; give the folder the images' file names are relative to",
                            images_dir);
    if ((st = rb_coco_load(&coco, annotations)) != RB_OK)
        return st;
    if (coco->n_images == 0) {
        st = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s lists no images; a split needs at least one", annotations);
        goto done;
    }
    if ((st = map_categories(coco, annotations, &cats)) != RB_OK ||
        (st = group_annotations(coco, annotations, &groups)) != RB_OK)
        goto done;
    offsets = calloc(coco->n_images + 1, sizeof *offsets);
    boxes = malloc((coco->n_annotations ? coco->n_annotations : 1) * sizeof *boxes);
    counts = malloc(cats.count * sizeof *counts);
    if (offsets == NULL || boxes == NULL || counts == NULL) {
        st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the boxes of %s", annotations);
        goto done;
    }
    snprintf(split_name, sizeof split_name, "coco:%s %s", annotations, rb_split_which_str(which));

    for (size_t i = 0; i < coco->n_images; i++) {
        const rb_coco_image *im = &coco->images[i];
        char path[RB_DATASET_PATH_MAX + 512];
        rb_image img = {0};
        int64_t H, W;
        if ((st = image_path(path, sizeof path, images_dir, im, annotations, i)) != RB_OK)
            break;
        if ((st = rb_image_read(path, RB_IMAGE_RGB, &img)) != RB_OK) {
            if (st == RB_ERR_NOT_FOUND)
                st = rb_error_set(RB_ERR_NOT_FOUND,
                                  "%s: image %zu (id %" PRId64 ") names %s, which does not exist; add the file or "
                                  "give the folder its file_name is relative to",
                                  annotations, i, im->id, path);
            break;
        }
        /* the annotations' pixels are the file's: sizes must agree */
        if ((im->width > 0 && im->width != img.width) || (im->height > 0 && im->height != img.height)) {
            st = rb_error_set(RB_ERR_CORRUPT,
                              "%s: image %zu (id %" PRId64 ") says %" PRId64 "×%" PRId64 " but %s is %" PRId64
                              "×%" PRId64 " pixels (width×height); fix the entry or the file",
                              annotations, i, im->id, im->width, im->height, path, img.width, img.height);
            rb_image_free(&img);
            break;
        }
        if (s == NULL) {
            H = size > 0 ? size : img.height;
            W = size > 0 ? size : img.width;
            if (H > 65536 || W > 65536)
                st = rb_error_set(RB_ERR_UNSUPPORTED,
                                  "%s is %" PRId64 "×%" PRId64 " pixels, more than 65536 on a side; give an image size "
                                  "(--image-size)",
                                  path, img.width, img.height);
            if (st == RB_OK)
                st = rb_split_alloc(&s, RB_DATASET_COCO, split_name, RB_DTYPE_U8, (int64_t)coco->n_images, 3, (int)H,
                                    (int)W, (int64_t)cats.count);
            if (st == RB_OK)
                st = rb_split_alloc_examples(s);
            if (st == RB_OK)
                st = rb_split_set_names(s, cats.names);
            if (st == RB_OK)
                st = rb_split_set_class_source_ids(s, cats.ids);
            snprintf(first_image, sizeof first_image, "%s", path);
        } else if (size == 0 && (img.height != s->height || img.width != s->width)) {
            st = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                              "%s is %" PRId64 "×%" PRId64 " pixels but %s is %d×%d: images of different sizes need "
                              "one size for the split; give an image size (--image-size)",
                              path, img.width, img.height, first_image, s->width, s->height);
        }
        if (st == RB_OK) {
            const int sh = s->height, sw = s->width;
            const size_t plane = (size_t)sh * (size_t)sw;
            uint8_t *dst = (uint8_t *)s->images + i * 3 * plane;
            if (img.height == sh && img.width == sw) {
                for (size_t k = 0; k < plane; k++) {
                    dst[k] = img.pixels[3 * k];
                    dst[plane + k] = img.pixels[3 * k + 1];
                    dst[2 * plane + k] = img.pixels[3 * k + 2];
                }
            } else {
                st = rb_resize_image_u8(img.pixels, 3, (int)img.height, (int)img.width, sh, sw, dst);
            }
            offsets[i] = n_boxes;
            for (size_t k = groups.first[i]; st == RB_OK && k < groups.first[i + 1]; k++) {
                const rb_coco_annotation *a = &coco->annotations[groups.order[k]];
                const int64_t label = find_id(cats.ids, cats.count, a->category_id);
                if (label < 0) {
                    st = rb_error_set(RB_ERR_CORRUPT,
                                      "%s: annotation %zu (id %" PRId64 ") has category %" PRId64
                                      ", which \"categories\" does not list",
                                      annotations, groups.order[k], a->id, a->category_id);
                    break;
                }
                if (annotation_box(a, img.width, img.height, sw, sh, label, &boxes[n_boxes]))
                    n_boxes++;
            }
            offsets[i + 1] = n_boxes;
            if (st == RB_OK) {
                s->labels[i] = dominant_label(boxes + offsets[i], n_boxes - offsets[i], (int64_t)cats.count, counts);
                s->source_sizes[2 * i] = img.height;
                s->source_sizes[2 * i + 1] = img.width;
                s->source_ids[i] = im->id;
                if ((s->example_names[i] = strdup(im->file_name)) == NULL)
                    st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the names of %s", annotations);
            }
        }
        rb_image_free(&img);
        if (st != RB_OK)
            break;
    }
    if (st == RB_OK) {
        rb_targets t;
        memset(&t, 0, sizeof t);
        t.count = s->count;
        t.boxes = boxes;
        t.box_offsets = offsets;
        st = rb_split_set_targets(s, &t);
    }
done:
    free(boxes);
    free(offsets);
    free(counts);
    free(groups.first);
    free(groups.order);
    free_categories(&cats);
    rb_coco_destroy(coco);
    if (st != RB_OK) {
        rb_split_destroy(s);
        return st;
    }
    *out = s;
    return RB_OK;
}
