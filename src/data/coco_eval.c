/* Box AP exactly as pycocotools' COCOeval(iouType='bbox') computes it
 * (robusta/coco.h has the rules). The work follows COCOeval's three steps:
 *
 *   evaluate: ground truths and detections grouped by (category, image)
 *     with one sort each, in the order COCOeval's loops visit them;
 *     detections ordered by descending score (ties in file order) and cut
 *     to 100; per group the IoU matrix once, then the greedy matching for
 *     each of the 4 area ranges and 10 IoU thresholds, kept as two bit
 *     masks per detection and range (matched, ignored);
 *   accumulate: per category the kept detections of every image, sorted
 *     again by score (stable), swept once per range, limit and threshold
 *     into precision at the 101 recall thresholds and the final recall;
 *   summarize: means over the entries > -1, summed as numpy sums (pairwise,
 *     in blocks of 8,192), so that the numbers agree to the last bit.
 *
 * Floating point follows pycocotools operation by operation (IoU as
 * maskApi.c's bbIou, precision as tp / (fp + tp + eps), thresholds as
 * numpy's linspace makes them), so no contraction into fused multiply-adds
 * may change a rounding. */
#include "config.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/coco.h>
#include <robusta/log.h>
#include <robusta/status.h>

#include "data/coco_internal.h"

enum { T = 10, R = 101, A = 4, M = 3 };

/* Area ranges all, small, medium, large: [0², 1e5²], [0², 32²], [32², 96²],
 * [96², 1e5²], bounds inclusive. */
static const double area_lo[A] = {0.0, 0.0, 1024.0, 9216.0};
static const double area_hi[A] = {1e10, 1024.0, 9216.0, 1e10};
static const int max_dets[M] = {1, 10, 100};
#define MAX_DET 100

static const char *const stat_names[RB_COCO_STATS] = {"AP",  "AP50", "AP75",  "APs", "APm", "APl",
                                                      "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};

const char *rb_coco_stat_name(int index)
{
    return index >= 0 && index < RB_COCO_STATS ? stat_names[index] : NULL;
}

/* np.linspace(.5, 0.95, 10): i * ((0.95 - 0.5) / 9) + 0.5, the last 0.95
 * (the eighth is 0.8999999999999999). */
static void iou_thresholds(double t[T])
{
    const double step = (0.95 - 0.5) / 9;
    for (int i = 0; i < T - 1; i++) {
        double y = (double)i * step;
        t[i] = y + 0.5;
    }
    t[T - 1] = 0.95;
}

/* np.linspace(.0, 1.00, 101): i * 0.01 (0.5700000000000001 for 57), the
 * last 1.0. */
static void recall_thresholds(double r[R])
{
    for (int i = 0; i < R - 1; i++)
        r[i] = (double)i * 0.01;
    r[R - 1] = 1.0;
}

/* ------------------------------------------------------------ numpy's sum */

/* numpy's pairwise summation of doubles (its add reduction's inner loop):
 * plain below 8, eight interleaved partial sums up to 128, halves (cut at a
 * multiple of 8) above. */
static double pairwise_sum(const double *a, size_t n)
{
    if (n < 8) {
        double s = 0.;
        for (size_t i = 0; i < n; i++)
            s += a[i];
        return s;
    }
    if (n <= 128) {
        double r[8], s;
        size_t i;
        for (int j = 0; j < 8; j++)
            r[j] = a[j];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++)
                r[j] += a[i + j];
        s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            s += a[i];
        return s;
    } else {
        size_t n2 = n / 2;
        n2 -= n2 % 8;
        return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
    }
}

/* np.mean of a contiguous array: the reduction runs over buffers of 8,192
 * elements, each summed pairwise into the running total from 0. */
static double numpy_mean(const double *a, size_t n)
{
    double total = 0.;
    for (size_t at = 0; at < n; at += 8192)
        total += pairwise_sum(a + at, n - at < 8192 ? n - at : 8192);
    return total / (double)n;
}

/* The mean of the entries > -1 of v[0], v[stride], ... (n of them), or -1
 * when there is none: s[s > -1].mean() in summarize. */
static double mean_measured(const double *v, size_t n, size_t stride, double *scratch)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i * stride] > -1)
            scratch[kept++] = v[i * stride];
    return kept ? numpy_mean(scratch, kept) : -1;
}

/* ------------------------------------------------------------ evaluate */

/* Ground truths and detections are grouped by (category, image): key =
 * category rank * images + image rank, so that groups come in the order
 * COCOeval's accumulate reads them (per category, images by id). */
typedef struct gt_item {
    uint64_t key;
    size_t ann;
} gt_item;

typedef struct dt_item {
    uint64_t key;
    double score;
    double box[4];
} dt_item;

/* Stable counting sort of n items (each starting with its key) of `size`
 * bytes from `in` to `out` by key % I (images) or key / I (categories);
 * `counts` has room for buckets + 1. */
static void counting_sort(const void *in, void *out, size_t n, size_t size, uint64_t I, bool by_category,
                          size_t buckets, size_t *counts)
{
    memset(counts, 0, (buckets + 1) * sizeof *counts);
    for (size_t i = 0; i < n; i++) {
        uint64_t key;
        memcpy(&key, (const char *)in + i * size, sizeof key);
        counts[(by_category ? key / I : key % I) + 1]++;
    }
    for (size_t b = 0; b < buckets; b++)
        counts[b + 1] += counts[b];
    for (size_t i = 0; i < n; i++) {
        uint64_t key;
        memcpy(&key, (const char *)in + i * size, sizeof key);
        memcpy((char *)out + counts[by_category ? key / I : key % I]++ * size, (const char *)in + i * size, size);
    }
}

/* Each group's detections by descending score, ties in file order
 * (COCOeval's stable argsort of -score): insertion for short groups, merges
 * through `tmp` for long ones. */
static void sort_group_by_score(dt_item *d, size_t n, dt_item *tmp)
{
    if (n <= 32) {
        for (size_t i = 1; i < n; i++) {
            dt_item x = d[i];
            size_t j = i;
            for (; j > 0 && d[j - 1].score < x.score; j--)
                d[j] = d[j - 1];
            d[j] = x;
        }
        return;
    }
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi)
                tmp[o++] = d[j].score > d[i].score ? d[j++] : d[i++];
            while (i < mid)
                tmp[o++] = d[i++];
            while (j < hi)
                tmp[o++] = d[j++];
        }
        memcpy(d, tmp, n * sizeof *d);
    }
}

/* A kept detection (one of the first 100 of its image and category) after
 * matching: per area range, bit t of `matched` when it matched a ground
 * truth at threshold t (pycocotools' dtMatches != 0: see below), of
 * `ignored` when it is ignored there. */
typedef struct kept {
    double score;
    uint32_t rank; /* its place in its image's sorted detections: limit L keeps rank < L */
    uint16_t matched[A], ignored[A];
} kept;

/* Scratch for one (image, category) group, grown as needed. */
typedef struct cell_work {
    double *iou;     /* D x G, ground truths in file order */
    size_t iou_cap;
    size_t *order;   /* ground truths, regular first, each part in file order */
    uint16_t *taken; /* per ground truth, bit t: matched at threshold t */
    unsigned char *ig;
    size_t g_cap;
} cell_work;

static bool grow_work(cell_work *w, size_t d, size_t g)
{
    if (d * g > w->iou_cap) {
        double *p = realloc(w->iou, d * g * sizeof *p);
        if (p == NULL)
            return false;
        w->iou = p;
        w->iou_cap = d * g;
    }
    if (g > w->g_cap) {
        size_t *o = realloc(w->order, g * sizeof *o);
        if (o != NULL)
            w->order = o;
        uint16_t *t = realloc(w->taken, g * sizeof *t);
        if (t != NULL)
            w->taken = t;
        unsigned char *i = realloc(w->ig, g);
        if (i != NULL)
            w->ig = i;
        if (o == NULL || t == NULL || i == NULL)
            return false;
        w->g_cap = g;
    }
    return true;
}

/* maskApi.c's bbIou for one pair: intersection over union of [x, y, w, h]
 * boxes; for a crowd ground truth the union is the detection's area. */
static double box_iou(const double *d, const double *g, bool crowd)
{
    double ga = g[2] * g[3], da = d[2] * d[3], w, h, i, u;
    w = fmin(d[2] + d[0], g[2] + g[0]) - fmax(d[0], g[0]);
    if (w <= 0)
        return 0;
    h = fmin(d[3] + d[1], g[3] + g[1]) - fmax(d[1], g[1]);
    if (h <= 0)
        return 0;
    i = w * h;
    u = crowd ? da : da + ga - i;
    return i / u;
}

/* COCOeval.evaluateImg for one (image, category), all four area ranges at
 * 100 detections: `gts` (G annotations, file order) against `dts` (D
 * detections, sorted by score, already cut to 100), results into
 * out[0..D) and the count of regular ground truths per range into npig. */
static void evaluate_cell(const rb_coco *gt, const gt_item *gts, size_t G,
                          const dt_item *dts, size_t D, const double thr[T], cell_work *w, kept *out,
                          size_t npig[A])
{
    const rb_coco_annotation *ann = gt->annotations;
    for (size_t d = 0; d < D; d++)
        for (size_t g = 0; g < G; g++)
            w->iou[d * G + g] = box_iou(dts[d].box, ann[gts[g].ann].bbox, ann[gts[g].ann].iscrowd != 0);
    for (size_t d = 0; d < D; d++) {
        out[d].score = dts[d].score;
        out[d].rank = (uint32_t)d;
        memset(out[d].matched, 0, sizeof out[d].matched);
        memset(out[d].ignored, 0, sizeof out[d].ignored);
    }
    for (int a = 0; a < A; a++) {
        size_t regular = 0, n = 0;
        for (size_t g = 0; g < G; g++) {
            const rb_coco_annotation *x = &ann[gts[g].ann];
            w->ig[g] = x->iscrowd || x->area < area_lo[a] || x->area > area_hi[a];
            w->taken[g] = 0;
            regular += !w->ig[g];
        }
        npig[a] += regular;
        for (size_t g = 0; g < G; g++)
            if (!w->ig[g])
                w->order[n++] = g;
        for (size_t g = 0; g < G; g++)
            if (w->ig[g])
                w->order[n++] = g;
        for (int t = 0; t < T && G > 0; t++) { /* no ground truth: nothing to match */
            const uint16_t bit = (uint16_t)(1u << t);
            for (size_t d = 0; d < D; d++) {
                const double *iou = &w->iou[d * G];
                double best = thr[t] < 1 - 1e-10 ? thr[t] : 1 - 1e-10;
                size_t m = SIZE_MAX;
                for (size_t j = 0; j < G; j++) {
                    size_t g = w->order[j];
                    if ((w->taken[g] & bit) && !ann[gts[g].ann].iscrowd)
                        continue;
                    if (m != SIZE_MAX && !w->ig[m] && w->ig[g])
                        break;
                    if (iou[g] < best)
                        continue;
                    best = iou[g];
                    m = g;
                }
                if (m == SIZE_MAX)
                    continue;
                if (w->ig[m])
                    out[d].ignored[a] |= bit;
                /* pycocotools keeps the ground truth's id as the match and
                 * reads 0 as "unmatched" (coco.h). */
                if (ann[gts[m].ann].id != 0)
                    out[d].matched[a] |= bit;
                w->taken[m] |= bit;
            }
        }
        for (size_t d = 0; d < D; d++) {
            const double *b = dts[d].box;
            double area = b[2] * b[3];
            if (area < area_lo[a] || area > area_hi[a])
                out[d].ignored[a] |= (uint16_t)~out[d].matched[a] & (uint16_t)((1u << T) - 1);
        }
    }
}

/* ------------------------------------------------------------ accumulate */

/* Stable sort of idx[0..n) by descending score (np.argsort(-scores,
 * kind='mergesort')): bottom-up merges that take from the right run only on
 * a strictly higher score. */
static void sort_by_score(const kept *k, size_t *idx, size_t *tmp, size_t n)
{
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi)
                tmp[o++] = k[idx[j]].score > k[idx[i]].score ? idx[j++] : idx[i++];
            while (i < mid)
                tmp[o++] = idx[i++];
            while (j < hi)
                tmp[o++] = idx[j++];
        }
        memcpy(idx, tmp, n * sizeof *idx);
    }
}

/* The results of accumulate that summarize reads: precision at 100
 * detections [area][threshold][recall threshold][category] and recall
 * [area][limit][threshold][category], -1 where nothing was measured. */
typedef struct curves {
    size_t K;
    double *precision;
    double *recall;
} curves;

#define PREC(c, a, t, r, k) ((c)->precision[(((size_t)(a) * T + (size_t)(t)) * R + (size_t)(r)) * (c)->K + (k)])
#define REC(c, a, m, t, k) ((c)->recall[(((size_t)(a) * M + (size_t)(m)) * T + (size_t)(t)) * (c)->K + (k)])

/* One kept detection of a category in score order, for one area range:
 * bit t of tp (fp) when it is a true (false) positive at threshold t,
 * neither when it is ignored there. */
typedef struct outcome {
    uint16_t tp, fp;
    uint32_t rank;
} outcome;

/* COCOeval.accumulate for one category: its kept detections k[0..n) in
 * image order, npig non-ignored ground truths per area range.
 *
 * Ignored detections are skipped: in COCOeval they repeat the recall and
 * precision of the entry before them (0 and 0 before the first counted
 * one), which changes neither the first entry reaching a recall threshold
 * (a repeat is never first, except at recall 0, where both reads give the
 * largest precision) nor any precision made non-increasing from the right;
 * and with no counted entry every precision is 0, as with none at all. */
static void accumulate_category(curves *c, size_t cat, const kept *k, size_t n, const size_t npig[A],
                                const double rthr[R], size_t *idx, size_t *tmp, outcome *seq, double *rc,
                                double *pr)
{
    const uint16_t all = (uint16_t)((1u << T) - 1);
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    sort_by_score(k, idx, tmp, n);
    for (int a = 0; a < A; a++) {
        size_t nd = 0;
        if (npig[a] == 0)
            continue; /* stays -1 */
        for (size_t i = 0; i < n; i++) {
            const kept *x = &k[idx[i]];
            uint16_t counted = (uint16_t)(~x->ignored[a] & all);
            if (counted)
                seq[nd++] = (outcome){.tp = (uint16_t)(x->matched[a] & counted),
                                      .fp = (uint16_t)(~x->matched[a] & counted), .rank = x->rank};
        }
        for (int m = 0; m < M; m++) {
            const uint32_t limit = (uint32_t)max_dets[m];
            for (int t = 0; t < T; t++) {
                const uint16_t bit = (uint16_t)(1u << t);
                double tp = 0, fp = 0;
                size_t used = 0;
                if (max_dets[m] != MAX_DET) { /* only the recall is summarized */
                    for (size_t i = 0; i < nd; i++)
                        if (seq[i].rank < limit && (seq[i].tp & bit))
                            tp += 1;
                    REC(c, a, m, t, cat) = tp / (double)npig[a];
                    continue;
                }
                for (size_t i = 0; i < nd; i++) {
                    if (seq[i].tp & bit)
                        tp += 1;
                    else if (seq[i].fp & bit)
                        fp += 1;
                    else
                        continue;
                    rc[used] = tp / (double)npig[a];
                    pr[used] = tp / (fp + tp + DBL_EPSILON);
                    used++;
                }
                REC(c, a, m, t, cat) = used ? rc[used - 1] : 0;
                for (size_t i = used; i-- > 1;)
                    if (pr[i] > pr[i - 1])
                        pr[i - 1] = pr[i];
                for (size_t r = 0, i = 0; r < R; r++) {
                    while (i < used && rc[i] < rthr[r])
                        i++;
                    PREC(c, a, t, r, cat) = i < used ? pr[i] : 0;
                }
            }
        }
    }
}

/* ------------------------------------------------------------ the whole */

typedef struct eval_state {
    rb_coco_index ix;
    gt_item *gts;
    dt_item *dts;
    kept *kept;
    size_t *cat_first; /* K + 1: each category's kept detections */
    unsigned char *has_cell;
    size_t *npig;      /* K x A */
    cell_work work;
    curves c;
    size_t *idx, *tmp;
    outcome *seq;
    double *rc, *pr, *scratch;
} eval_state;

static void eval_free(eval_state *e)
{
    rb_coco_index_free(&e->ix);
    free(e->gts);
    free(e->dts);
    free(e->kept);
    free(e->cat_first);
    free(e->has_cell);
    free(e->npig);
    free(e->work.iou);
    free(e->work.order);
    free(e->work.taken);
    free(e->work.ig);
    free(e->c.precision);
    free(e->c.recall);
    free(e->idx);
    free(e->tmp);
    free(e->seq);
    free(e->rc);
    free(e->pr);
    free(e->scratch);
}

#define EVAL_WHAT "rb_coco_evaluate"

static rb_status out_of_memory(size_t n)
{
    return rb_error_set(RB_ERR_OUT_OF_MEMORY, EVAL_WHAT ": out of memory for %zu detections", n);
}

/* Groups, matches and keeps; fills e->kept, cat_first, has_cell, npig. */
static rb_status evaluate_all(eval_state *e, const rb_coco *gt, size_t n)
{
    const size_t I = gt->n_images, K = gt->n_categories, NG = gt->n_annotations;
    double thr[T];
    size_t ig = 0, id = 0, nk = 0;
    gt_item *gtmp = malloc((NG ? NG : 1) * sizeof *gtmp);
    dt_item *dtmp = malloc((n ? n : 1) * sizeof *dtmp);
    size_t *counts = malloc(((I > K ? I : K) + 1) * sizeof *counts);

    if (gtmp == NULL || dtmp == NULL || counts == NULL) {
        free(gtmp);
        free(dtmp);
        free(counts);
        return out_of_memory(n);
    }
    iou_thresholds(thr);
    for (size_t i = 0; i < NG; i++)
        e->gts[i] = (gt_item){.key = (uint64_t)e->ix.ann_category[i] * I + e->ix.ann_image[i], .ann = i};
    /* by image, then by category, each pass stable: groups in key order,
     * file order within */
    counting_sort(e->gts, gtmp, NG, sizeof *gtmp, I, false, I, counts);
    counting_sort(gtmp, e->gts, NG, sizeof *gtmp, I, true, K, counts);
    counting_sort(e->dts, dtmp, n, sizeof *dtmp, I, false, I, counts);
    counting_sort(dtmp, e->dts, n, sizeof *dtmp, I, true, K, counts);
    free(gtmp);
    free(counts);
    while (ig < NG || id < n) {
        uint64_t key = ig < NG && (id >= n || e->gts[ig].key <= e->dts[id].key) ? e->gts[ig].key : e->dts[id].key;
        size_t G = 0, D = 0, all, cat = (size_t)(key / I);
        while (ig + G < NG && e->gts[ig + G].key == key)
            G++;
        while (id + D < n && e->dts[id + D].key == key)
            D++;
        all = D;
        sort_group_by_score(e->dts + id, D, dtmp);
        if (D > MAX_DET)
            D = MAX_DET;
        if (!grow_work(&e->work, D, G)) {
            free(dtmp);
            return out_of_memory(n);
        }
        e->has_cell[cat] = 1;
        e->cat_first[cat + 1] += D;
        evaluate_cell(gt, e->gts + ig, G, e->dts + id, D, thr, &e->work, e->kept + nk, e->npig + cat * A);
        nk += D;
        ig += G;
        id += all;
    }
    free(dtmp);
    for (size_t k = 0; k < K; k++)
        e->cat_first[k + 1] += e->cat_first[k];
    return RB_OK;
}

rb_status rb_coco_evaluate(const rb_coco *gt, const rb_coco_detection *detections, size_t n,
                           double stats[RB_COCO_STATS], double *category_ap)
{
    eval_state e = {0};
    size_t I, K, most = 0;
    double rthr[R];
    rb_status s;

    if (stats == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, EVAL_WHAT ": stats is NULL");
    for (int i = 0; i < RB_COCO_STATS; i++)
        stats[i] = -1;
    if (detections == NULL && n > 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, EVAL_WHAT ": %zu detections but the array is NULL", n);
    if ((s = rb_coco_index_build(gt, EVAL_WHAT ": ground truth", &e.ix)) != RB_OK)
        goto done;
    I = gt->n_images;
    K = gt->n_categories;
    if (I > 0 && K > UINT64_MAX / I) {
        s = rb_error_set(RB_ERR_UNSUPPORTED, EVAL_WHAT ": %zu images x %zu categories is too many", I, K);
        goto done;
    }
    for (size_t i = 0; i < gt->n_annotations; i++)
        if (gt->annotations[i].id == 0) {
            rb_log(RB_LOG_WARN, "COCO evaluation: annotations[%zu] has id 0: pycocotools, and so robusta, count a "
                   "detection matched to it as a false positive; number annotations from 1", i);
            break;
        }
    e.gts = malloc((gt->n_annotations ? gt->n_annotations : 1) * sizeof *e.gts);
    e.dts = malloc((n ? n : 1) * sizeof *e.dts);
    e.kept = malloc((n ? n : 1) * sizeof *e.kept);
    e.cat_first = calloc(K + 1, sizeof *e.cat_first);
    e.has_cell = calloc(K ? K : 1, 1);
    e.npig = calloc(K ? K * A : 1, sizeof *e.npig);
    e.c.K = K;
    e.c.precision = malloc((K ? (size_t)A * T * R * K : 1) * sizeof *e.c.precision);
    e.c.recall = malloc((K ? (size_t)A * M * T * K : 1) * sizeof *e.c.recall);
    e.scratch = malloc((K ? (size_t)T * R * K : 1) * sizeof *e.scratch);
    if (!e.gts || !e.dts || !e.kept || !e.cat_first || !e.has_cell || !e.npig || !e.c.precision || !e.c.recall ||
        !e.scratch) {
        s = out_of_memory(n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        size_t image, category;
        if ((s = rb_coco_check_detection(gt, &e.ix, &detections[i], i, EVAL_WHAT, &image, &category)) != RB_OK)
            goto done;
        e.dts[i] = (dt_item){.key = (uint64_t)category * I + image, .score = detections[i].score,
                             .box = {detections[i].bbox[0], detections[i].bbox[1], detections[i].bbox[2],
                                     detections[i].bbox[3]}};
    }
    if ((s = evaluate_all(&e, gt, n)) != RB_OK)
        goto done;

    for (size_t i = 0; i < (size_t)A * T * R * K; i++)
        e.c.precision[i] = -1;
    for (size_t i = 0; i < (size_t)A * M * T * K; i++)
        e.c.recall[i] = -1;
    for (size_t k = 0; k < K; k++)
        if (e.cat_first[k + 1] - e.cat_first[k] > most)
            most = e.cat_first[k + 1] - e.cat_first[k];
    e.idx = malloc((most ? most : 1) * sizeof *e.idx);
    e.tmp = malloc((most ? most : 1) * sizeof *e.tmp);
    e.seq = malloc((most ? most : 1) * sizeof *e.seq);
    e.rc = malloc((most ? most : 1) * sizeof *e.rc);
    e.pr = malloc((most ? most : 1) * sizeof *e.pr);
    if (!e.idx || !e.tmp || !e.seq || !e.rc || !e.pr) {
        s = out_of_memory(n);
        goto done;
    }
    recall_thresholds(rthr);
    for (size_t k = 0; k < K; k++)
        if (e.has_cell[k]) /* a category no image has anything of stays -1 */
            accumulate_category(&e.c, k, e.kept + e.cat_first[k], e.cat_first[k + 1] - e.cat_first[k],
                                e.npig + k * A, rthr, e.idx, e.tmp, e.seq, e.rc, e.pr);

    /* summarize: AP over all thresholds, at .50 (index 0), at .75 (index 5),
     * per area range; AR at 1, 10, 100 detections, per area range. */
    stats[RB_COCO_AP] = mean_measured(&PREC(&e.c, 0, 0, 0, 0), (size_t)T * R * K, 1, e.scratch);
    stats[RB_COCO_AP50] = mean_measured(&PREC(&e.c, 0, 0, 0, 0), (size_t)R * K, 1, e.scratch);
    stats[RB_COCO_AP75] = mean_measured(&PREC(&e.c, 0, 5, 0, 0), (size_t)R * K, 1, e.scratch);
    for (int a = 1; a < A; a++)
        stats[RB_COCO_APS + a - 1] = mean_measured(&PREC(&e.c, a, 0, 0, 0), (size_t)T * R * K, 1, e.scratch);
    for (int m = 0; m < M; m++)
        stats[RB_COCO_AR1 + m] = mean_measured(&REC(&e.c, 0, m, 0, 0), (size_t)T * K, 1, e.scratch);
    for (int a = 1; a < A; a++)
        stats[RB_COCO_ARS + a - 1] = mean_measured(&REC(&e.c, a, M - 1, 0, 0), (size_t)T * K, 1, e.scratch);
    if (category_ap != NULL)
        for (size_t k = 0; k < K; k++)
            category_ap[e.ix.categories[k].index] = mean_measured(&PREC(&e.c, 0, 0, 0, k), (size_t)T * R, K,
                                                                  e.scratch);
    s = RB_OK;
done:
    if (s != RB_OK)
        for (int i = 0; i < RB_COCO_STATS; i++)
            stats[i] = -1;
    eval_free(&e);
    return s;
}
