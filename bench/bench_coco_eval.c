/* COCO box evaluation at COCO val2017's scale: what `robusta coco-eval`
 * does, timed by phase.
 *
 * Generates, deterministically, a ground truth like instances_val2017.json
 * (5,000 images, 80 categories, about 7 objects per image, each with a
 * polygon segmentation of 8 to 40 points as the real file has, so the JSON
 * is about as large) and a results file of 100 detections per image (half
 * near an object, with jitter and sometimes the wrong category, half
 * anywhere), both as JSON text in memory as Python's json.dump writes them;
 * then times rb_coco_parse, rb_coco_parse_detections and rb_coco_evaluate.
 * Prints
 *     perf,coco_eval,PHASE,IMAGES,DETECTIONS,MIB,MS
 * for PHASE parse_gt, parse_dt, evaluate and total (medians of --repeats
 * runs), the process's peak memory, and the 12 numbers of the first run
 * (the same every run: a check that the work was done). Never fails on time.
 *
 *   bench_coco_eval [--quick] [--repeats N] [--images N] [--categories N] [--per-image N] */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/robusta.h>

#include "benchutil.h"

#define MAX_REPEATS 16

/* A growing text buffer. */
typedef struct text {
    char *p;
    size_t n, cap;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    va_list ap;
    int len;
    for (;;) {
        va_start(ap, fmt);
        len = vsnprintf(t->p + t->n, t->cap - t->n, fmt, ap);
        va_end(ap);
        if (len >= 0 && (size_t)len < t->cap - t->n)
            break;
        t->cap = t->cap * 2 + (size_t)len + 1024;
        t->p = realloc(t->p, t->cap);
        if (t->p == NULL) {
            fprintf(stderr, "bench_coco_eval: out of memory\n");
            exit(1);
        }
    }
    t->n += (size_t)len;
}

static uint64_t state = 0x853c49e6748fea9bull;

static double uniform(void) /* [0, 1), splitmix64 */
{
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1p-53;
}

typedef struct object {
    int cat;
    double box[4];
} object;

/* Writes both files' text; objects[] per image (at most 16) for the detections. */
static void generate(int images, int categories, int per_image, text *gt, text *dt)
{
    object *objs = malloc(sizeof *objs * (size_t)images * 16);
    int *count = calloc((size_t)images, sizeof *count);
    int64_t ann_id = 1;
    if (objs == NULL || count == NULL) {
        fprintf(stderr, "bench_coco_eval: out of memory\n");
        exit(1);
    }
    put(gt, "{\"info\": {\"description\": \"bench_coco_eval\"}, \"images\": [");
    for (int i = 0; i < images; i++)
        put(gt, "%s{\"license\": 1, \"file_name\": \"%012d.jpg\", \"height\": 480, \"width\": 640, \"id\": %d}",
            i ? ", " : "", 1000 + 7 * i, 1000 + 7 * i);
    put(gt, "], \"annotations\": [");
    for (int i = 0; i < images; i++) {
        count[i] = 1 + (int)(uniform() * 13); /* 1..13, mean 7 */
        for (int k = 0; k < count[i]; k++) {
            object *o = &objs[i * 16 + k];
            double w = 4 + uniform() * uniform() * 400, h = 4 + uniform() * uniform() * 300;
            int points = 8 + (int)(uniform() * 32);
            o->cat = (int)(uniform() * categories);
            o->box[0] = (double)(int64_t)(uniform() * (640 - w) * 100) / 100;
            o->box[1] = (double)(int64_t)(uniform() * (480 - h) * 100) / 100;
            o->box[2] = (double)(int64_t)(w * 100) / 100;
            o->box[3] = (double)(int64_t)(h * 100) / 100;
            put(gt, "%s{\"segmentation\": [[", ann_id > 1 ? ", " : "");
            for (int p = 0; p < points; p++)
                put(gt, "%s%.2f, %.2f", p ? ", " : "", o->box[0] + uniform() * o->box[2],
                    o->box[1] + uniform() * o->box[3]);
            put(gt, "]], \"area\": %.4f, \"iscrowd\": %d, \"image_id\": %d, \"bbox\": [%.2f, %.2f, %.2f, %.2f], "
                    "\"category_id\": %d, \"id\": %" PRId64 "}",
                o->box[2] * o->box[3] * (0.5 + 0.4 * uniform()), uniform() < 0.01, 1000 + 7 * i, o->box[0],
                o->box[1], o->box[2], o->box[3], o->cat + 1, ann_id);
            ann_id++;
        }
    }
    put(gt, "], \"categories\": [");
    for (int c = 0; c < categories; c++)
        put(gt, "%s{\"supercategory\": \"thing\", \"id\": %d, \"name\": \"class %d\"}", c ? ", " : "", c + 1, c);
    put(gt, "]}");

    put(dt, "[");
    for (int i = 0; i < images; i++)
        for (int d = 0; d < per_image; d++) {
            double b[4];
            int cat;
            if (uniform() < 0.5) {
                const object *o = &objs[i * 16 + (int)(uniform() * count[i])];
                for (int k = 0; k < 4; k++)
                    b[k] = o->box[k] + (uniform() - 0.5) * 0.3 * (k % 2 ? o->box[3] : o->box[2]);
                b[2] = b[2] < 1 ? 1 : b[2];
                b[3] = b[3] < 1 ? 1 : b[3];
                cat = uniform() < 0.8 ? o->cat : (int)(uniform() * categories);
            } else {
                b[2] = 4 + uniform() * 300;
                b[3] = 4 + uniform() * 200;
                b[0] = uniform() * (640 - b[2]);
                b[1] = uniform() * (480 - b[3]);
                cat = (int)(uniform() * categories);
            }
            put(dt, "%s{\"image_id\": %d, \"category_id\": %d, \"bbox\": [%.2f, %.2f, %.2f, %.2f], \"score\": %.3f}",
                i || d ? ", " : "", 1000 + 7 * i, cat + 1, b[0], b[1], b[2], b[3], uniform());
        }
    put(dt, "]");
    free(objs);
    free(count);
}

static int fail(const char *what)
{
    fprintf(stderr, "bench_coco_eval: %s: %s\n", what, rb_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    int images = 5000, categories = 80, per_image = 100, repeats = 3;
    double t_gt[MAX_REPEATS], t_dt[MAX_REPEATS], t_ev[MAX_REPEATS], t_all[MAX_REPEATS], first[RB_COCO_STATS];
    text gt = {0}, dt = {0};
    size_t n_dets = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            repeats = 1;
        else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (strcmp(argv[i], "--images") == 0 && i + 1 < argc)
            images = atoi(argv[++i]);
        else if (strcmp(argv[i], "--categories") == 0 && i + 1 < argc)
            categories = atoi(argv[++i]);
        else if (strcmp(argv[i], "--per-image") == 0 && i + 1 < argc)
            per_image = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_coco_eval [--quick] [--repeats N] [--images N] [--categories N] "
                            "[--per-image N]\n");
            return 2;
        }
    }
    if (repeats < 1 || repeats > MAX_REPEATS || images < 1 || categories < 1 || per_image < 0) {
        fprintf(stderr, "bench_coco_eval: --repeats 1..%d, --images, --categories >= 1, --per-image >= 0\n",
                MAX_REPEATS);
        return 2;
    }
    generate(images, categories, per_image, &gt, &dt);
    reset_peak_rss();
    for (int r = 0; r < repeats; r++) {
        rb_coco *coco = NULL;
        rb_coco_detection *dets = NULL;
        double stats[RB_COCO_STATS], t0 = now(), t1, t2, t3;
        if (rb_coco_parse(gt.p, gt.n, "generated instances.json", &coco) != RB_OK)
            return fail("parse ground truth");
        t1 = now();
        if (rb_coco_parse_detections(coco, dt.p, dt.n, "generated detections.json", &dets, &n_dets) != RB_OK)
            return fail("parse detections");
        t2 = now();
        if (rb_coco_evaluate(coco, dets, n_dets, stats, NULL) != RB_OK)
            return fail("evaluate");
        t3 = now();
        t_gt[r] = t1 - t0;
        t_dt[r] = t2 - t1;
        t_ev[r] = t3 - t2;
        t_all[r] = t3 - t0;
        if (r == 0)
            memcpy(first, stats, sizeof first);
        free(dets);
        rb_coco_destroy(coco);
    }
    printf("perf,coco_eval,parse_gt,%d,%zu,%.1f,%.0f\n", images, n_dets, (double)gt.n / (1 << 20),
           median(t_gt, repeats) * 1e3);
    printf("perf,coco_eval,parse_dt,%d,%zu,%.1f,%.0f\n", images, n_dets, (double)dt.n / (1 << 20),
           median(t_dt, repeats) * 1e3);
    printf("perf,coco_eval,evaluate,%d,%zu,,%.0f\n", images, n_dets, median(t_ev, repeats) * 1e3);
    printf("perf,coco_eval,total,%d,%zu,%.1f,%.0f\n", images, n_dets, (double)(gt.n + dt.n) / (1 << 20),
           median(t_all, repeats) * 1e3);
    printf("coco-eval of %d images (%d categories), %zu detections: %.2f s (median of %d; goal: under 5 s), "
           "peak memory %.0f MiB\n",
           images, categories, n_dets, median(t_all, repeats), repeats, peak_rss_mib());
    printf("numbers:");
    for (int i = 0; i < RB_COCO_STATS; i++)
        printf(" %s %.3f", rb_coco_stat_name(i), first[i]);
    printf("\n");
    free(gt.p);
    free(dt.p);
    return 0;
}
