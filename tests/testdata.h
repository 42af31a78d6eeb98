/* Test data shared by the transfer and grid suites: 8x8 grayscale .npy
 * images of `classes` classes, where class k has a bright row (even k +
 * offset) or column (odd) at k + offset, with noise, so that small models
 * learn them in a few steps and offsets make related but new tasks. */
#ifndef RB_TESTDATA_H
#define RB_TESTDATA_H

#include <robusta/robusta.h>

#include "testutil.h"

/* write_bar_images with each pixel repeated scale x scale times: images
 * of 8·scale squared, the same bars (for a model whose last stage should
 * not be 1 x 1). */
static inline void write_bar_images_scaled(const char *dir, const char *xname, const char *yname, int64_t n,
                                           int classes, int offset, uint64_t seed, int scale)
{
    const int side = 8 * scale;
    unsigned char *x = malloc((size_t)n * (size_t)(side * side));
    uint8_t *y = malloc((size_t)n);
    char xp[PATH_MAX], yp[PATH_MAX];
    rb_rng rng;
    ck_assert(x != NULL && y != NULL);
    rb_rng_init(&rng, seed, 1, 0);
    for (int64_t i = 0; i < n; i++) {
        int cls = (int)(i % classes), line = (cls + offset) % 8;
        y[i] = (uint8_t)cls;
        for (int p = 0; p < 64; p++) {
            bool on = (cls + offset) % 2 == 0 ? p / 8 == line : p % 8 == line;
            unsigned char v = (unsigned char)((on ? 210 : 50) + (int)(40 * rb_rng_uniform(&rng)) - 20);
            for (int dy = 0; dy < scale; dy++)
                for (int dx = 0; dx < scale; dx++)
                    x[i * side * side + (p / 8 * scale + dy) * side + p % 8 * scale + dx] = v;
        }
    }
    snprintf(xp, sizeof xp, "%s/%s", dir, xname);
    snprintf(yp, sizeof yp, "%s/%s", dir, yname);
    ck_assert_int_eq(rb_npy_save(xp, RB_DTYPE_U8, 3, (const int64_t[]){n, side, side}, x), RB_OK);
    ck_assert_int_eq(rb_npy_save(yp, RB_DTYPE_U8, 1, (const int64_t[]){n}, y), RB_OK);
    free(x);
    free(y);
}

static inline void write_bar_images(const char *dir, const char *xname, const char *yname, int64_t n, int classes,
                                    int offset, uint64_t seed)
{
    write_bar_images_scaled(dir, xname, yname, n, classes, offset, seed, 1);
}

#endif /* RB_TESTDATA_H */
