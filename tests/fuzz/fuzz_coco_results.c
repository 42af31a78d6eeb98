/* libFuzzer harness: COCO results files (rb_coco_parse_detections) against
 * a fixed ground truth (images 1 to 3, categories 1 and 7, four objects, a
 * crowd among them). Input: the results file's bytes, in an allocation of
 * exactly their size. Accepted detections are then evaluated. */
#include "config.h"

#include <math.h>

#include "fuzz.h"

static const char gt_text[] =
    "{\"images\": [{\"id\": 1}, {\"id\": 2}, {\"id\": 3}], \"categories\": [{\"id\": 1}, {\"id\": 7}],"
    " \"annotations\": ["
    "{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 10, 10], \"area\": 100},"
    "{\"id\": 2, \"image_id\": 1, \"category_id\": 7, \"bbox\": [5, 5, 40, 40], \"area\": 1600},"
    "{\"id\": 3, \"image_id\": 2, \"category_id\": 1, \"bbox\": [0, 0, 100, 100], \"area\": 10000, \"iscrowd\": 1},"
    "{\"id\": 4, \"image_id\": 3, \"category_id\": 1, \"bbox\": [20, 20, 96, 96], \"area\": 9216}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rb_coco *gt;
    rb_coco_detection *d = NULL;
    double stats[RB_COCO_STATS];
    size_t n = 0;
    rb_status s;
    fuzz_init();
    if (gt == NULL && rb_coco_parse(gt_text, sizeof gt_text - 1, "gt.json", &gt) != RB_OK) {
        fprintf(stderr, "coco-results: the fixed ground truth does not parse: %s\n", rb_last_error());
        abort();
    }
    s = rb_coco_parse_detections(gt, (const char *)data, size, "detections.json", &d, &n);
    if (s != RB_OK) {
        fuzz_expect_one_line("coco-results", s);
        fuzz_assert(d == NULL && n == 0, "coco-results", "refused results left detections");
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        fuzz_assert(isfinite(d[i].score) && d[i].bbox[2] >= 0 && d[i].bbox[3] >= 0 &&
                        (d[i].image_id >= 1 && d[i].image_id <= 3) && (d[i].category_id == 1 || d[i].category_id == 7),
                    "coco-results", "an accepted detection breaks the rules");
    fuzz_assert(rb_coco_evaluate(gt, d, n, stats, NULL) == RB_OK, "coco-results", "accepted results cannot be evaluated");
    for (int i = 0; i < RB_COCO_STATS; i++)
        fuzz_assert(stats[i] == -1 || (stats[i] >= 0 && stats[i] <= 1), "coco-results", "a summary outside [0, 1]");
    free(d);
    return 0;
}
