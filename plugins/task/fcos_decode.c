/* FCOS's post-processing (fcos.h): scores, top-k per level, boxes, per-class
 * non-maximum suppression, as torchvision's FCOS.postprocess_detections.
 * Fixed-size buffers on the stack (about 140 KiB): decode runs for every
 * training batch that is scored, where nothing is allocated. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fcos.h"

#define DECODE_WHO "detect decode"
#define MAX_CANDIDATES (FCOS_LEVELS * FCOS_TOPK_CANDIDATES)

/* A (point, class) of one level whose score passed the threshold. */
typedef struct candidate {
    float score;
    int32_t level;
    int64_t index; /* point * K + class: torchvision's flattened index */
} candidate;

/* Whether a ranks before b: higher score, then the earlier candidate. */
static bool before(const candidate *a, const candidate *b)
{
    if (a->score != b->score)
        return a->score > b->score;
    if (a->level != b->level)
        return a->level < b->level;
    return a->index < b->index;
}

static int by_rank(const void *a, const void *b)
{
    return before(a, b) ? -1 : before(b, a) ? 1 : 0;
}

/* A heap of the best `cap` candidates seen, the worst at the root. */
static void sift_down(candidate *h, size_t n, size_t i)
{
    for (;;) {
        size_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < n && before(&h[worst], &h[l]))
            worst = l;
        if (r < n && before(&h[worst], &h[r]))
            worst = r;
        if (worst == i)
            return;
        candidate t = h[i];
        h[i] = h[worst];
        h[worst] = t;
        i = worst;
    }
}

static void sift_up(candidate *h, size_t i)
{
    while (i > 0 && before(&h[(i - 1) / 2], &h[i])) {
        candidate t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static float sigmoidf(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

/* The best FCOS_TOPK_CANDIDATES (point, class) pairs of one level of one
 * image scoring above the threshold, into h; returns how many. */
static size_t level_candidates(const float *cls, const float *ctr, int64_t classes, int64_t points, int level,
                               float threshold, candidate *h)
{
    size_t n = 0;
    for (int64_t q = 0; q < points; q++) {
        float centerness = sigmoidf(ctr[q]);
        for (int64_t c = 0; c < classes; c++) {
            candidate x = {sqrtf(sigmoidf(cls[c * points + q]) * centerness), level, q * classes + c};
            if (!(x.score > threshold))
                continue;
            if (n < FCOS_TOPK_CANDIDATES) {
                h[n] = x;
                sift_up(h, n++);
            } else if (before(&x, &h[0])) {
                h[0] = x;
                sift_down(h, n, 0);
            }
        }
    }
    return n;
}

/* A candidate's class and rank, for chaining the candidates of one class. */
typedef struct class_rank {
    int64_t label;
    int32_t rank;
} class_rank;

static int by_class_then_rank(const void *a, const void *b)
{
    const class_rank *x = a, *y = b;
    if (x->label != y->label)
        return x->label < y->label ? -1 : 1;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

static float clampf(float v, float hi)
{
    return v < 0.0f ? 0.0f : v > hi ? hi : v;
}

/* IoU without +1, as torchvision's nms; 0 for two empty boxes. */
static float iou(const rb_box *a, const rb_box *b)
{
    float w = fminf(a->x2, b->x2) - fmaxf(a->x1, b->x1), h = fminf(a->y2, b->y2) - fmaxf(a->y1, b->y1);
    float inter = fmaxf(w, 0.0f) * fmaxf(h, 0.0f);
    float uni = (a->x2 - a->x1) * (a->y2 - a->y1) + (b->x2 - b->x1) * (b->y2 - b->y1) - inter;
    return uni > 0.0f ? inter / uni : 0.0f;
}

rb_status fcos_decode(const fcos_decode_options *o, const float *const *outputs, const int64_t (*shapes)[3],
                      size_t count, int64_t rows, rb_predictions *out)
{
    candidate cand[MAX_CANDIDATES];
    rb_box boxes[MAX_CANDIDATES];
    bool gone[MAX_CANDIDATES];
    class_rank order[MAX_CANDIDATES];
    int32_t next_same[MAX_CANDIDATES]; /* the next candidate of the same class by rank; -1: none */
    fcos_level levels[FCOS_LEVELS];
    int64_t classes;
    const float threshold = (float)o->score_threshold, nms = (float)o->nms_threshold;
    int64_t stride;
    rb_status s;
    if (shapes == NULL || count < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, DECODE_WHO ": no raw outputs");
    if ((s = fcos_stride(o->height, o->width, shapes[0][1], shapes[0][2], DECODE_WHO, &stride)) != RB_OK ||
        (s = fcos_levels(shapes, count, stride, DECODE_WHO, &classes, levels)) != RB_OK)
        return s;
    if (out == NULL || out->boxes == NULL || out->scores == NULL || out->box_counts == NULL || out->max_boxes < 0 ||
        outputs == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, DECODE_WHO ": needs the raw outputs and room for boxes, scores "
                                                                "and their counts");
    for (int64_t i = 0; i < rows; i++) {
        size_t n = 0, kept = 0;
        for (int l = 0; l < FCOS_LEVELS; l++) {
            int64_t hw = levels[l].height * levels[l].width;
            const float *cls = outputs[l * FCOS_PER_LEVEL] + i * classes * hw,
                        *ctr = outputs[l * FCOS_PER_LEVEL + 2] + i * hw;
            n += level_candidates(cls, ctr, classes, hw, l, threshold, cand + n);
        }
        qsort(cand, n, sizeof *cand, by_rank);
        for (size_t k = 0; k < n; k++) {
            const fcos_level *lv = &levels[cand[k].level];
            int64_t hw = lv->height * lv->width, q = cand[k].index / classes;
            const float *reg = outputs[cand[k].level * FCOS_PER_LEVEL + 1] + i * 4 * hw;
            float x = (float)(q % lv->width) * lv->stride, y = (float)(q / lv->width) * lv->stride;
            float s0 = reg[q] * lv->stride, s1 = reg[hw + q] * lv->stride, s2 = reg[2 * hw + q] * lv->stride,
                  s3 = reg[3 * hw + q] * lv->stride;
            boxes[k] = (rb_box){clampf(x - s0, (float)o->width), clampf(y - s1, (float)o->height),
                                clampf(x + s2, (float)o->width), clampf(y + s3, (float)o->height),
                                cand[k].index % classes};
            gone[k] = false;
            order[k] = (class_rank){boxes[k].label, (int32_t)k};
        }
        /* Suppression only compares boxes of one class: each kept box walks
         * its class's chain instead of every candidate after it. */
        qsort(order, n, sizeof *order, by_class_then_rank);
        for (size_t t = 0; t < n; t++)
            next_same[order[t].rank] =
                t + 1 < n && order[t + 1].label == order[t].label ? order[t + 1].rank : -1;
        /* greedy, best first; the boxes kept after the first max_boxes
         * would be cut anyway, and cannot change the ones before */
        for (size_t k = 0; k < n && (int64_t)kept < out->max_boxes; k++) {
            if (gone[k])
                continue;
            out->boxes[i * out->max_boxes + (int64_t)kept] = boxes[k];
            out->scores[i * out->max_boxes + (int64_t)kept] = cand[k].score;
            kept++;
            for (int32_t j = next_same[k]; j >= 0; j = next_same[j])
                if (!gone[j] && iou(&boxes[k], &boxes[j]) > nms)
                    gone[j] = true;
        }
        out->box_counts[i] = (int64_t)kept;
    }
    return RB_OK;
}
