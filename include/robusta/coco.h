/* robusta/coco.h: COCO annotations, detection results, and box AP exactly
 * as pycocotools computes it.
 *
 * Detection numbers compare across papers only when AP is computed by
 * pycocotools' rules; one rule changed (crowd boxes, area ranges, the
 * 101-point interpolation, the per-image cap) gives another metric. This
 * module is that evaluator, usable three ways: the `robusta coco-eval`
 * command on two JSON files, a task plugin's metrics on boxes it
 * accumulated in memory, and tests that work out cases by hand.
 *
 *     rb_coco *gt = NULL;
 *     rb_coco_detection *dt = NULL;
 *     size_t n_dt = 0;
 *     double stats[RB_COCO_STATS];
 *     rb_status s = rb_coco_load(&gt, "instances_val.json");
 *     if (s == RB_OK)
 *         s = rb_coco_load_detections(gt, "detections.json", &dt, &n_dt);
 *     if (s == RB_OK)
 *         s = rb_coco_evaluate(gt, dt, n_dt, stats, NULL);  // stats[0]: AP@[.5:.95]
 *     free(dt);
 *     rb_coco_destroy(gt);
 *
 * The rules (COCOeval with iouType 'bbox' and default parameters:
 * evaluate, accumulate, summarize):
 *   - images are the ground truth's image ids, categories its category ids
 *     (sorted); IoU thresholds 0.50:0.05:0.95, 101 recall thresholds
 *     0:0.01:1, at most 1, 10 or 100 detections per image and category,
 *     area ranges all [0, 1e10], small [0, 32²], medium [32², 96²], large
 *     [96², 1e10], bounds inclusive;
 *   - a ground truth's `area` field (not its box) decides its range, a
 *     detection's w·h its own;
 *   - box IoU on [x, y, w, h] boxes without +1, areas from the boxes; for
 *     a crowd ground truth the union is the detection's area; crowd and
 *     out-of-range ground truths are ignored and sorted after the others;
 *     a crowd may be matched by any number of detections, any other ground
 *     truth (out-of-range ones too) by one per threshold;
 *   - per image and category, detections sorted by descending score with
 *     a stable sort and cut to the max-detections limit; each matched
 *     greedily per IoU threshold t to the unmatched ground truth of best
 *     IoU >= min(t, 1 - 1e-10) (ties to the later ground truth; an ignored
 *     one only when no regular one qualifies); a detection matched to an
 *     ignored ground truth is ignored, as is an unmatched one outside the
 *     area range;
 *   - per category, area range and limit, the detections of all images
 *     (in image-id order) merged and stably sorted again by score;
 *     precision made non-increasing from the right; precision at each
 *     recall threshold from a left binary search in the recalls, 0 past the
 *     last recall reached; -1 for a category without non-ignored ground
 *     truth; each summary number is the mean over the entries > -1 (summed
 *     as numpy sums), or -1 when there is none;
 *   - an annotation with id 0: pycocotools records a match as the ground
 *     truth's id and reads 0 as "no match", so a detection matched to it
 *     counts as a false positive. robusta does the same, so that numbers
 *     agree, and logs a warning: number annotations from 1 (COCO's files
 *     do).
 * Checked against pycocotools 2.0 on random cases to the last bit
 * (tests/coco_parity.py), and rule by rule on cases worked out by hand
 * (tests/check_coco.c).
 */
#ifndef ROBUSTA_COCO_H
#define ROBUSTA_COCO_H

#include <stddef.h>
#include <stdint.h>
#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One image of a COCO annotation file. */
typedef struct rb_coco_image {
    int64_t id;
    char *file_name;       /* as written; NULL when the file has none */
    int64_t width, height; /* 0 when absent */
} rb_coco_image;

typedef struct rb_coco_category {
    int64_t id;
    char *name; /* NULL when absent */
} rb_coco_category;

/* One ground-truth object. bbox is COCO's [x, y, width, height] in pixels. */
typedef struct rb_coco_annotation {
    int64_t id, image_id, category_id;
    double bbox[4];
    double area;  /* the file's `area`; it, not the box, picks the area range */
    int iscrowd;  /* 1: a crowd region, ignored by the evaluation */
} rb_coco_annotation;

/* A COCO annotation file (instances_*.json), or ground truth built in
 * memory: a task's metrics fill these arrays themselves (image ids 0..n-1,
 * category ids 0..K-1, annotation ids from 1, say) and call
 * rb_coco_evaluate. Ids are unique per array; every annotation names an
 * image and a category of the arrays. */
typedef struct rb_coco {
    rb_coco_image *images;
    size_t n_images;
    rb_coco_category *categories;
    size_t n_categories;
    rb_coco_annotation *annotations;
    size_t n_annotations;
} rb_coco;

/* One detection, as COCO's results format writes it. */
typedef struct rb_coco_detection {
    int64_t image_id, category_id;
    double bbox[4]; /* [x, y, width, height] in pixels */
    double score;
} rb_coco_detection;

/* Parses `size` bytes of a COCO annotation file (an object with `images`,
 * `annotations` and `categories`) into *out (rb_coco_destroy). `what`
 * names the bytes in messages, usually the path. Refused with one line
 * naming `what`, the entry (its index and id) and the fix:
 * not JSON, not an object with those three arrays, a missing or mistyped
 * key (annotations need id, image_id, category_id, bbox [x, y, w, h] and
 * area; iscrowd, 0, 1, false or true, defaults to 0; other keys such as
 * segmentation are not read), a negative width or height (of a box or an
 * image) or area, a non-finite number (NaN and Infinity are not JSON), a
 * duplicate id, an annotation on an image or category the file does not
 * list. Errors are RB_ERR_CORRUPT (the bytes), RB_ERR_INVALID_ARGUMENT (a
 * NULL argument), RB_ERR_OUT_OF_MEMORY. The bytes are read one entry at a
 * time (no tree of the whole file: memory is the result's size), so a
 * fault of syntax or of one entry is reported as it is met, the first in
 * the file; repeated ids and references are checked once all is read. */
RB_API rb_status rb_coco_parse(const char *bytes, size_t size, const char *what, rb_coco **out);
/* rb_coco_parse on the file at `path`. */
RB_API rb_status rb_coco_load(rb_coco **out, const char *path);
RB_API void rb_coco_destroy(rb_coco *coco);

/* Parses a results file (a JSON array of objects with image_id,
 * category_id, bbox and score; other keys are ignored) into *out, an
 * array of *count detections (free()), in file order. Each must name an
 * image and a category of `gt`, have a finite box of non-negative width
 * and height and a finite score; otherwise one line naming `what`, the
 * entry (detections[INDEX] and its image_id) and the fix (RB_ERR_CORRUPT).
 * An empty array is valid (pycocotools cannot load one; its numbers would
 * be 0 wherever there is ground truth). */
RB_API rb_status rb_coco_parse_detections(const rb_coco *gt, const char *bytes, size_t size, const char *what,
                                          rb_coco_detection **out, size_t *count);
/* rb_coco_parse_detections on the file at `path`. */
RB_API rb_status rb_coco_load_detections(const rb_coco *gt, const char *path, rb_coco_detection **out,
                                         size_t *count);

/* The 12 summary numbers, in pycocotools' order. */
enum {
    RB_COCO_AP = 0,  /* IoU .50:.95, all areas, 100 detections */
    RB_COCO_AP50,    /* IoU .50 */
    RB_COCO_AP75,    /* IoU .75 */
    RB_COCO_APS,     /* small */
    RB_COCO_APM,     /* medium */
    RB_COCO_APL,     /* large */
    RB_COCO_AR1,     /* recall, IoU .50:.95, 1 detection per image */
    RB_COCO_AR10,
    RB_COCO_AR100,
    RB_COCO_ARS,     /* recall at 100, small */
    RB_COCO_ARM,
    RB_COCO_ARL,
    RB_COCO_STATS
};

/* "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100",
 * "ARs", "ARm", "ARl" for 0..RB_COCO_STATS-1; NULL otherwise. */
RB_API const char *rb_coco_stat_name(int index);

/* Evaluates `n` detections against `gt` by the rules above and writes the
 * 12 summary numbers (in [0, 1], or -1 where nothing was measured) to
 * `stats`. When `category_ap` is not NULL it receives, per category of gt
 * in gt's order, AP@[.5:.95] over all areas at 100 detections (-1 for a
 * category without ground truth). Refused with RB_ERR_INVALID_ARGUMENT
 * and one line naming the entry: a ground truth that breaks the rules of
 * rb_coco above or the checks of rb_coco_parse (repeated ids, unknown
 * references, negative or non-finite boxes and areas, iscrowd other than
 * 0 or 1), and detections that rb_coco_parse_detections would refuse
 * (unknown image or category, bad box, non-finite score); stats are then
 * all -1. Time O(n log n) in detections and annotations; memory the
 * inputs' size plus 4 x 10 x 101 doubles per category, never a table of
 * images x categories.
 * Deterministic; gt and detections are not modified. */
RB_API rb_status rb_coco_evaluate(const rb_coco *gt, const rb_coco_detection *detections, size_t n,
                                  double stats[RB_COCO_STATS], double *category_ap);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_COCO_H */
