/* libFuzzer harness: COCO annotation files (rb_coco_parse). Input: the
 * file's bytes, in an allocation of exactly their size. An accepted file is
 * then evaluated against detections made from its own annotations (each
 * box as a detection, scores falling with the index), so odd ground truths
 * (empty boxes, huge areas, crowds only) go through the evaluator too. */
#include "config.h"

#include <math.h>

#include "fuzz.h"

/* Each summary is -1 or in [0, 1]. */
static void check_stats(const double stats[RB_COCO_STATS])
{
    for (int i = 0; i < RB_COCO_STATS; i++)
        fuzz_assert(stats[i] == -1 || (stats[i] >= 0 && stats[i] <= 1), "coco", "a summary outside [0, 1] and not -1");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rb_coco *c = NULL;
    rb_coco_detection *d;
    double stats[RB_COCO_STATS];
    rb_status s;
    fuzz_init();
    s = rb_coco_parse((const char *)data, size, "instances.json", &c);
    if (s != RB_OK) {
        fuzz_expect_one_line("coco", s);
        fuzz_assert(c == NULL, "coco", "a refused file left a result");
        return 0;
    }
    for (size_t i = 0; i < c->n_annotations; i++) {
        const rb_coco_annotation *a = &c->annotations[i];
        fuzz_assert(a->bbox[2] >= 0 && a->bbox[3] >= 0 && isfinite(a->area) && a->area >= 0, "coco",
                    "an accepted annotation has a negative or non-finite size");
        fuzz_assert(a->iscrowd == 0 || a->iscrowd == 1, "coco", "iscrowd not 0 or 1");
    }
    d = malloc((c->n_annotations ? c->n_annotations : 1) * sizeof *d);
    if (d == NULL)
        abort();
    for (size_t i = 0; i < c->n_annotations; i++)
        d[i] = (rb_coco_detection){.image_id = c->annotations[i].image_id,
                                   .category_id = c->annotations[i].category_id,
                                   .bbox = {c->annotations[i].bbox[0], c->annotations[i].bbox[1],
                                            c->annotations[i].bbox[2], c->annotations[i].bbox[3]},
                                   .score = 1.0 / (double)(i + 1)};
    fuzz_assert(rb_coco_evaluate(c, d, c->n_annotations, stats, NULL) == RB_OK, "coco",
                "a parsed file cannot be evaluated");
    check_stats(stats);
    fuzz_assert(rb_coco_evaluate(c, NULL, 0, stats, NULL) == RB_OK, "coco", "no detections cannot be evaluated");
    check_stats(stats);
    free(d);
    rb_coco_destroy(c);
    return 0;
}
