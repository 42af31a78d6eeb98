/* What the detect task's suites share (tests/check_fcos.c,
 * tests/check_detect.c): a refusal's exact line, FCOS's raw output shapes,
 * and raw outputs set point by point for decode. */
#ifndef RB_TEST_FCOSUTIL_H
#define RB_TEST_FCOSUTIL_H

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/robusta.h>

#include "fcos.h"

/* A refusal: the status and the exact one-line message. */
static inline void expect_error(rb_status got, rb_status want, const char *message)
{
    ck_assert_msg(got == want, "status %s, wanted %s (%s)", rb_status_str(got), rb_status_str(want),
                  rb_last_error());
    ck_assert_str_eq(rb_last_error(), message);
    ck_assert_ptr_null(strchr(rb_last_error(), '\n'));
}

/* The raw outputs' shapes of K classes on an S x S image: levels of
 * S/8 x S/8 and S/16 x S/16 points. */
static inline void fcos_shapes(int64_t k, int64_t size, int64_t shapes[FCOS_OUTPUTS][3])
{
    for (int l = 0; l < FCOS_LEVELS; l++) {
        int64_t g = size / (8 << l);
        const int64_t channels[FCOS_PER_LEVEL] = {k, 4, 1};
        for (int c = 0; c < FCOS_PER_LEVEL; c++) {
            shapes[l * FCOS_PER_LEVEL + c][0] = channels[c];
            shapes[l * FCOS_PER_LEVEL + c][1] = g;
            shapes[l * FCOS_PER_LEVEL + c][2] = g;
        }
    }
}

/* Raw outputs of `rows` images of size x size with K classes, every score
 * far under any threshold (class logits -30), centerness logits 30
 * (sigmoid 1 in float32, so a score is sqrt(sigmoid(class logit))) and
 * regression 0.5. */
typedef struct raw {
    int64_t k, size, rows;
    int64_t shapes[FCOS_OUTPUTS][3];
    float *out[FCOS_OUTPUTS];
} raw;

static inline void raw_init(raw *r, int64_t k, int64_t size, int64_t rows)
{
    r->k = k;
    r->size = size;
    r->rows = rows;
    fcos_shapes(k, size, r->shapes);
    for (int o = 0; o < FCOS_OUTPUTS; o++) {
        int64_t n = rows * r->shapes[o][0] * r->shapes[o][1] * r->shapes[o][2];
        float v = o % FCOS_PER_LEVEL == 0 ? -30.0f : o % FCOS_PER_LEVEL == 1 ? 0.5f : 30.0f;
        ck_assert_ptr_nonnull(r->out[o] = malloc((size_t)n * sizeof(float)));
        for (int64_t i = 0; i < n; i++)
            r->out[o][i] = v;
    }
}

static inline void raw_free(raw *r)
{
    for (int o = 0; o < FCOS_OUTPUTS; o++)
        free(r->out[o]);
}

/* Sets image `row`'s point (i, j) of `level`: class c's logit for `score`
 * (sigmoid = score^2) and the four regression values. */
static inline void raw_point(raw *r, int64_t row, int level, int64_t i, int64_t j, int64_t c, double score, float l, float t,
                      float rr, float b)
{
    int64_t g = r->shapes[level * FCOS_PER_LEVEL][1], hw = g * g, q = i * g + j;
    float *cls = r->out[level * FCOS_PER_LEVEL] + row * r->k * hw, *reg = r->out[level * FCOS_PER_LEVEL + 1] + row * 4 * hw;
    cls[c * hw + q] = (float)log(score * score / (1 - score * score));
    reg[q] = l;
    reg[hw + q] = t;
    reg[2 * hw + q] = rr;
    reg[3 * hw + q] = b;
}

#endif /* RB_TEST_FCOSUTIL_H */
