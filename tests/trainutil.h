/* What the suites that train share: a tiny synthetic dataset (two easily
 * told classes of 8x8 images) in a temporary folder, and running the built
 * robusta on it. For one test file each (static state). */
#ifndef RB_TRAINUTIL_H
#define RB_TRAINUTIL_H

#include <stdbool.h>

#include <robusta/robusta.h>

#include "testutil.h"

#define RUN(r, ...) run_robusta(r, NULL, (const char *const[]){__VA_ARGS__, NULL})

static run_result r;
static char dir[256];
static char data[2048];

/* Class 0: dark images with a bright vertical bar; class 1: bright images
 * with a dark horizontal bar; a little noise. */
static inline void make_images(const char *xname, const char *yname, int64_t n, uint64_t seed)
{
    unsigned char *x = malloc((size_t)n * 64);
    uint8_t *y = malloc((size_t)n);
    char xp[PATH_MAX], yp[PATH_MAX];
    rb_rng rng;
    ck_assert(x != NULL && y != NULL);
    rb_rng_init(&rng, seed, 1, 0);
    for (int64_t i = 0; i < n; i++) {
        int cls = (int)(i % 2);
        y[i] = (uint8_t)cls;
        for (int p = 0; p < 64; p++) {
            int row = p / 8, col = p % 8;
            int base = cls == 0 ? (col == 3 ? 220 : 40) : (row == 4 ? 30 : 200);
            x[i * 64 + p] = (unsigned char)(base + (int)(30 * rb_rng_uniform(&rng)) - 15);
        }
    }
    snprintf(xp, sizeof xp, "%s/%s", dir, xname);
    snprintf(yp, sizeof yp, "%s/%s", dir, yname);
    ck_assert_int_eq(rb_npy_save(xp, RB_DTYPE_U8, 3, (const int64_t[]){n, 8, 8}, x), RB_OK);
    ck_assert_int_eq(rb_npy_save(yp, RB_DTYPE_U8, 1, (const int64_t[]){n}, y), RB_OK);
    free(x);
    free(y);
}

static inline void setup(void)
{
    make_temp_dir(dir, sizeof dir);
    make_images("x.npy", "y.npy", 64, 1);
    make_images("tx.npy", "ty.npy", 40, 2);
    snprintf(data, sizeof data, "npy:%s/x.npy,%s/y.npy;%s/tx.npy,%s/ty.npy", dir, dir, dir, dir);
}

static inline void teardown(void)
{
    remove_temp_dir(dir);
}

static inline void in_dir(char *out, const char *a, const char *b)
{
    if (b != NULL)
        snprintf(out, PATH_MAX, "%s/%s/%s", dir, a, b);
    else
        snprintf(out, PATH_MAX, "%s/%s", dir, a);
}

static inline bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

#define TRAIN(res, out, epochs, ...)                                                                     \
    RUN(res, "train", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--data", data, "--out", \
        out, "--epochs", epochs, "--batch-size", "16", "--lr", "0.05", "--schedule", "step:1:0.5", "--threads", "1", \
        "--seed", "7" __VA_ARGS__)

/* Lines of stderr other than warnings (oneDNN's slow-kernel notices for
 * tiny layers are expected): the error itself must be one line. */
static inline int error_lines(const char *err)
{
    int n = 0;
    for (const char *line = err; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > 0 && strncmp(line, "robusta: warning:", 17) != 0)
            n++;
        line += len + (end != NULL);
    }
    return n;
}

#endif /* RB_TRAINUTIL_H */
