/* Shared by the COCO parsers (coco.c) and the evaluator (coco_eval.c): the
 * checks of a ground truth and of detections against it, with the same
 * one-line messages whether they came from a file or were built in memory,
 * and id lookups in O(log n), so that a file of 5,000 images and 500,000
 * detections is never searched linearly. */
#ifndef RB_DATA_COCO_INTERNAL_H
#define RB_DATA_COCO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <robusta/coco.h>

/* One id of an array and its index in that array. */
typedef struct rb_coco_id {
    int64_t id;
    size_t index;
} rb_coco_id;

/* A checked ground truth's lookups. */
typedef struct rb_coco_index {
    rb_coco_id *images;      /* n_images, sorted by id: position = the image's rank */
    rb_coco_id *categories;  /* n_categories, sorted by id */
    size_t *ann_image;       /* per annotation, the rank of its image */
    size_t *ann_category;    /* per annotation, the rank of its category */
} rb_coco_index;

/* Checks `gt` and builds its lookups: unique ids in each array, every
 * annotation on a listed image and category, boxes finite with width and
 * height >= 0, area finite and >= 0, iscrowd 0 or 1. Refusals are one line
 * starting with `what` (a file name, or "ground truth") and naming the
 * entry (array, index, id): RB_ERR_INVALID_ARGUMENT. rb_coco_index_free
 * whatever it returns. */
rb_status rb_coco_index_build(const rb_coco *gt, const char *what, rb_coco_index *ix);
void rb_coco_index_free(rb_coco_index *ix);

/* The rank of `id` in a table of rb_coco_index (its position), or SIZE_MAX
 * when it is not there. */
size_t rb_coco_ids_find(const rb_coco_id *ids, size_t n, int64_t id);

/* Checks detection `i` against the ground truth: a listed image and
 * category, a finite box of width and height >= 0, a finite score. On
 * success *image and *category are their ranks; otherwise one line starting
 * with `what` and naming detections[i]: RB_ERR_INVALID_ARGUMENT. */
rb_status rb_coco_check_detection(const rb_coco *gt, const rb_coco_index *ix, const rb_coco_detection *d, size_t i,
                                  const char *what, size_t *image, size_t *category);

#endif /* RB_DATA_COCO_INTERNAL_H */
