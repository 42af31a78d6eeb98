/* An affine classifier z = W x + b on flat images, served to an attack
 * plugin as its oracle (rb_attack_oracle: logits, and logit_loss_and_grad
 * with the exact input gradient W^T dz of whatever logit objective the
 * plugin hands it): the closed-form models the attack tests check against.
 * A test fills classes, dim, w and b (image, to hand the plugin images of
 * C x H x W rather than flat rows), and may inspect each row's logits
 * before the loss runs (to check the loss's own gradient). */
#ifndef RB_LINEARORACLE_H
#define RB_LINEARORACLE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <check.h>

#include <robusta/robusta.h>

#include "attackutil.h"

enum { TEST_LINEAR_MAX_CLASSES = 8, TEST_LINEAR_MAX_DIM = 96, TEST_LINEAR_MAX_ROWS = 16 };

typedef struct test_linear {
    int64_t classes, dim;
    int64_t image[3];   /* C, H, W of an example (their product is dim); zeros: flat rows */
    bool logits_only;   /* an oracle without logit_loss_and_grad, as a score-based attack needs */
    double w[TEST_LINEAR_MAX_CLASSES][TEST_LINEAR_MAX_DIM], b[TEST_LINEAR_MAX_CLASSES];
    /* called with each row's logits before the loss runs on them; NULL: none */
    void (*inspect)(struct test_linear *m, rb_logit_loss loss, void *loss_ctx, int64_t row, const float *z,
                    const int64_t *label);
    double worst;       /* for inspect: the largest error it saw */
    int calls;          /* logit_loss_and_grad calls */
    int logit_calls;    /* logits calls */
    int64_t rows_seen;  /* rows those were asked for */
} test_linear;

static inline void test_linear_logits(const test_linear *m, const float *x, float *z)
{
    for (int64_t c = 0; c < m->classes; c++) {
        double v = m->b[c];
        for (int64_t i = 0; i < m->dim; i++)
            v += m->w[c][i] * x[i];
        z[c] = (float)v;
    }
}

static inline rb_status test_linear_oracle_logits(void *ctx, const rb_tensor *x, rb_tensor *logits)
{
    test_linear *m = ctx;
    ck_assert_int_eq(rb_tensor_dim(logits, 1), m->classes);
    for (int64_t r = 0; r < rb_tensor_dim(x, 0); r++)
        test_linear_logits(m, (const float *)rb_tensor_cdata(x) + r * m->dim,
                           (float *)rb_tensor_data(logits) + r * m->classes);
    m->logit_calls++;
    m->rows_seen += rb_tensor_dim(x, 0);
    return RB_OK;
}

/* The loss over all rows in one chunk, as the runtime's oracle with a large
 * batch hands it. */
static inline rb_status test_linear_oracle_logit_loss(void *ctx, const rb_tensor *x, const int64_t *labels,
                                                      rb_logit_loss loss, void *loss_ctx, float *losses,
                                                      float *logits, rb_tensor *grad)
{
    test_linear *m = ctx;
    int64_t rows = rb_tensor_dim(x, 0), k = m->classes;
    float z[TEST_LINEAR_MAX_ROWS * TEST_LINEAR_MAX_CLASSES], dz[TEST_LINEAR_MAX_ROWS * TEST_LINEAR_MAX_CLASSES];
    ck_assert_int_le(rows, TEST_LINEAR_MAX_ROWS);
    for (int64_t r = 0; r < rows; r++)
        test_linear_logits(m, (const float *)rb_tensor_cdata(x) + r * m->dim, z + r * k);
    if (m->inspect != NULL)
        for (int64_t r = 0; r < rows; r++)
            m->inspect(m, loss, loss_ctx, r, z + r * k, labels + r);
    memset(dz, 0, sizeof dz);
    if (loss(loss_ctx, 0, rows, k, z, labels, losses, dz) != RB_OK)
        return RB_ERR_INVALID_ARGUMENT;
    if (logits != NULL)
        memcpy(logits, z, (size_t)(rows * k) * sizeof *z);
    for (int64_t r = 0; r < rows && grad != NULL; r++)
        for (int64_t i = 0; i < m->dim; i++) {
            double g = 0;
            for (int64_t c = 0; c < k; c++)
                g += m->w[c][i] * dz[r * k + c];
            ((float *)rb_tensor_data(grad))[r * m->dim + i] = (float)g;
        }
    m->calls++;
    return RB_OK;
}

static inline rb_attack_oracle test_linear_oracle(test_linear *m)
{
    rb_attack_oracle o = {.struct_size = (uint32_t)sizeof o,
                          .logits = test_linear_oracle_logits,
                          .ctx = m,
                          .logit_loss_and_grad = m->logits_only ? NULL : test_linear_oracle_logit_loss,
                          .classes = m->classes};
    return o;
}

/* Runs whole-run attack `a` on `rows` examples x0 (labels) into x; rows are
 * counted from example `first` of the run (its random draws are keyed by
 * example). */
static inline rb_status test_linear_run(const test_attack *a, test_linear *m, float *x, const float *x0,
                                        const int64_t *labels, int64_t rows, int64_t first, uint64_t seed)
{
    rb_attack_oracle o = test_linear_oracle(m);
    rb_tensor *tx, *tx0;
    rb_attack_batch b;
    int64_t shape[4] = {rows, m->dim, 0, 0};
    int rank = 2;
    rb_status s;
    if (m->image[0] > 0) {
        memcpy(shape + 1, m->image, sizeof m->image);
        rank = 4;
    }
    memcpy(x, x0, (size_t)(rows * m->dim) * sizeof *x);
    ck_assert_int_eq(rb_tensor_wrap(&tx, RB_DTYPE_F32, rank, shape, x), RB_OK);
    ck_assert_int_eq(rb_tensor_wrap(&tx0, RB_DTYPE_F32, rank, shape, (void *)(uintptr_t)x0), RB_OK);
    memset(&b, 0, sizeof b);
    b.x_adv = tx;
    b.x_clean = tx0;
    b.labels = labels;
    b.seed = seed;
    b.first_example = first;
    b.stream = RB_RNG_STREAM(RB_RNG_ATTACK, 0);
    s = a->ops->run(NULL, a->params, &o, &b);
    rb_tensor_destroy(tx);
    rb_tensor_destroy(tx0);
    return s;
}

#endif /* RB_LINEARORACLE_H */
