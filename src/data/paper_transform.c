/* The paper's image pipeline (paper_transform.h): Pillow's bilinear
 * resampling and torchvision's size, crop and random-crop rules. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/paper_transform.h"
#include "sys/internal.h"

/* Pillow keeps 8-bit resampling sums in 32-bit integers: weights carry 22
 * fractional bits, leaving 8 for the pixel and 2 for headroom. */
#define PRECISION_BITS (32 - 8 - 2)

/* Pillow's triangle filter, support 1. */
static double triangle(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* One axis's taps: output o reads inputs first[o] .. first[o] + count[o] - 1
 * with fixed-point weights k[o * ksize ..]. */
typedef struct taps {
    int64_t *first, *count;
    int32_t *k;
    int64_t ksize;
} taps;

static void taps_free(taps *t)
{
    free(t->first);
    free(t->count);
    free(t->k);
}

/* Pillow's precompute_coeffs for the source interval [in0, in1) of an axis
 * of in_size pixels resampled to out_size, then its 8-bit normalization. */
static rb_status taps_init(taps *t, int64_t in_size, double in0, double in1, int64_t out_size)
{
    const double scale = (in1 - in0) / (double)out_size;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = 1.0 * filterscale, ss = 1.0 / filterscale;
    double *w;
    memset(t, 0, sizeof *t);
    t->ksize = (int64_t)ceil(support) * 2 + 1;
    t->first = malloc((size_t)out_size * sizeof *t->first);
    t->count = malloc((size_t)out_size * sizeof *t->count);
    t->k = calloc((size_t)out_size * (size_t)t->ksize, sizeof *t->k);
    w = malloc((size_t)t->ksize * sizeof *w);
    if (t->first == NULL || t->count == NULL || t->k == NULL || w == NULL) {
        free(w);
        taps_free(t);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for resampling weights");
    }
    for (int64_t o = 0; o < out_size; o++) {
        const double center = in0 + ((double)o + 0.5) * scale;
        double sum = 0;
        /* C's truncation, as Pillow rounds these, then clamped */
        int64_t lo = (int64_t)(center - support + 0.5), hi = (int64_t)(center + support + 0.5), n;
        if (lo < 0)
            lo = 0;
        if (hi > in_size)
            hi = in_size;
        n = hi - lo;
        if (n > t->ksize) /* cannot happen: support is at most ksize / 2 */
            n = t->ksize;
        for (int64_t x = 0; x < n; x++) {
            w[x] = triangle(((double)(x + lo) - center + 0.5) * ss);
            sum += w[x];
        }
        for (int64_t x = 0; x < n; x++) {
            const double v = (sum != 0.0 ? w[x] / sum : w[x]) * (double)(1 << PRECISION_BITS);
            t->k[o * t->ksize + x] = (int32_t)(v < 0 ? v - 0.5 : v + 0.5);
        }
        t->first[o] = lo;
        t->count[o] = n < 0 ? 0 : n;
    }
    free(w);
    return RB_OK;
}

/* Sums fit in 32 bits, as in Pillow's 8-bit path: 255 times weights that
 * add up to about 2^22, plus the rounding half. */
static inline uint8_t clip8(int32_t sum)
{
    const int32_t v = sum >> PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* The horizontal pass: each of `lines` rows of in_w pixels of C
 * interleaved channels resampled to out_w. */
static void resample_rows(const uint8_t *src, int64_t lines, int64_t in_w, int C, const taps *t, int64_t out_w,
                          uint8_t *dst)
{
    const int32_t half = (int32_t)1 << (PRECISION_BITS - 1);
    for (int64_t l = 0; l < lines; l++) {
        const uint8_t *line = src + l * in_w * C;
        uint8_t *out = dst + l * out_w * C;
        for (int64_t o = 0; o < out_w; o++) {
            const int32_t *k = t->k + o * t->ksize;
            const uint8_t *p = line + t->first[o] * C;
            const int64_t n = t->count[o];
            if (C == 3) { /* RGB, the case that matters: three sums at once */
                int32_t s0 = half, s1 = half, s2 = half;
                for (int64_t x = 0; x < n; x++) {
                    s0 += p[3 * x] * k[x];
                    s1 += p[3 * x + 1] * k[x];
                    s2 += p[3 * x + 2] * k[x];
                }
                out[3 * o] = clip8(s0);
                out[3 * o + 1] = clip8(s1);
                out[3 * o + 2] = clip8(s2);
                continue;
            }
            for (int c = 0; c < C; c++) {
                int32_t sum = half;
                for (int64_t x = 0; x < n; x++)
                    sum += p[x * C + c] * k[x];
                out[o * C + c] = clip8(sum);
            }
        }
    }
}

/* acc[j] += row[j] * k for j < n: the vertical pass's inner loop, in
 * blocks of a fixed 16 that compilers vectorize even at -O2. */
#define RB_ACCUMULATE_ROW_BODY                                                                                        \
    {                                                                                                                 \
        int64_t j = 0;                                                                                                \
        for (; j + 16 <= n; j += 16)                                                                                  \
            for (int q = 0; q < 16; q++)                                                                              \
                acc[j + q] += row[j + q] * k;                                                                         \
        for (; j < n; j++)                                                                                            \
            acc[j] += row[j] * k;                                                                                     \
    }

static void accumulate_row(int32_t *restrict acc, const uint8_t *restrict row, int32_t k, int64_t n)
    RB_ACCUMULATE_ROW_BODY

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The same with AVX2's 8-wide 32-bit multiplies, where the CPU has them
 * (chosen at run time: the build targets baseline x86-64). Integer sums:
 * the same result. */
__attribute__((target("avx2"))) static void accumulate_row_avx2(int32_t *restrict acc, const uint8_t *restrict row,
                                                               int32_t k, int64_t n)
    RB_ACCUMULATE_ROW_BODY
#endif

typedef void (*accumulate_fn)(int32_t *restrict, const uint8_t *restrict, int32_t, int64_t);

static accumulate_fn pick_accumulate(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (__builtin_cpu_supports("avx2"))
        return accumulate_row_avx2;
#endif
    return accumulate_row;
}

/* The vertical pass: output row o is the weighted sum of whole input rows
 * of row_len bytes, accumulated along the row in `acc` (row_len sums), so
 * the inner loop runs over contiguous bytes. Integer sums do not depend on
 * their order: the result is Pillow's. */
static void resample_columns(const uint8_t *src, int64_t row_len, const taps *t, int64_t out_h, uint8_t *dst,
                             int32_t *acc)
{
    const int32_t half = (int32_t)1 << (PRECISION_BITS - 1);
    const accumulate_fn accumulate = pick_accumulate();
    for (int64_t o = 0; o < out_h; o++) {
        const int32_t *k = t->k + o * t->ksize;
        uint8_t *out = dst + o * row_len;
        for (int64_t j = 0; j < row_len; j++)
            acc[j] = half;
        for (int64_t x = 0; x < t->count[o]; x++)
            accumulate(acc, src + (t->first[o] + x) * row_len, k[x], row_len);
        for (int64_t j = 0; j < row_len; j++)
            out[j] = clip8(acc[j]);
    }
}

rb_status rb_pil_resize(const uint8_t *src, int64_t in_h, int64_t in_w, int channels, const double box[4],
                        int64_t out_h, int64_t out_w, uint8_t *dst)
{
    const double whole[4] = {0, 0, (double)in_w, (double)in_h};
    const double *b = box != NULL ? box : whole;
    const int64_t C = channels;
    bool horizontal, vertical;
    taps cols, rows;
    uint8_t *mid = NULL;
    int32_t *acc = NULL;
    int64_t first_row, last_row;
    rb_status s;
    if (in_h < 1 || in_w < 1 || out_h < 1 || out_w < 1 || channels < 1 || channels > 4)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "resize of %lldx%lldx%d pixels to %lldx%lld", (long long)in_h,
                            (long long)in_w, channels, (long long)out_h, (long long)out_w);
    if (!(b[0] >= 0 && b[1] >= 0 && b[2] <= (double)in_w && b[3] <= (double)in_h && b[0] < b[2] && b[1] < b[3]))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "resize box (%g, %g, %g, %g) is not inside a %lldx%lld image",
                            b[0], b[1], b[2], b[3], (long long)in_w, (long long)in_h);
    /* Pillow's own shortcut tests, which decide whether a pass rounds */
    horizontal = out_w != in_w || b[0] != 0 || b[2] != (double)out_w;
    vertical = out_h != in_h || b[1] != 0 || b[3] != (double)out_h;
    if ((s = taps_init(&cols, in_w, b[0], b[2], out_w)) != RB_OK)
        return s;
    if ((s = taps_init(&rows, in_h, b[1], b[3], out_h)) != RB_OK) {
        taps_free(&cols);
        return s;
    }
    /* the horizontal pass covers only the rows the vertical one reads */
    first_row = rows.first[0];
    last_row = rows.first[out_h - 1] + rows.count[out_h - 1];
    acc = malloc((size_t)(horizontal ? out_w : in_w) * (size_t)C * sizeof *acc);
    if (horizontal)
        mid = malloc((size_t)(last_row - first_row) * (size_t)out_w * (size_t)C);
    if (acc == NULL || (horizontal && mid == NULL)) {
        free(mid);
        free(acc);
        taps_free(&cols);
        taps_free(&rows);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory resizing a %lldx%lld image", (long long)in_w,
                            (long long)in_h);
    }
    if (horizontal) {
        resample_rows(src + first_row * in_w * C, last_row - first_row, in_w, channels, &cols, out_w, mid);
        for (int64_t o = 0; o < out_h; o++)
            rows.first[o] -= first_row;
    }
    {
        const uint8_t *from = horizontal ? mid : src;
        const int64_t width = horizontal ? out_w : in_w;
        if (vertical)
            resample_columns(from, width * C, &rows, out_h, dst, acc);
        else if (horizontal)
            memcpy(dst, mid, (size_t)out_h * (size_t)out_w * (size_t)C);
        else
            memcpy(dst, src, (size_t)out_h * (size_t)out_w * (size_t)C);
    }
    free(mid);
    free(acc);
    taps_free(&cols);
    taps_free(&rows);
    return RB_OK;
}

void rb_tv_resize_shape(int64_t h, int64_t w, int64_t size, int64_t *out_h, int64_t *out_w)
{
    const int64_t shorter = w <= h ? w : h, longer = w <= h ? h : w;
    /* Python's int(size * long / short): a correctly rounded quotient, truncated */
    const int64_t other = (int64_t)((double)(size * longer) / (double)shorter);
    *out_w = w <= h ? size : other;
    *out_h = w <= h ? other : size;
}

int64_t rb_tv_center_offset(int64_t n, int64_t crop)
{
    if (crop > n)
        return -((crop - n) / 2);
    /* round((n - crop) / 2.0), ties to even as Python's round */
    return (int64_t)nearbyint((double)(n - crop) / 2.0);
}

void rb_crop_u8(const uint8_t *src, int64_t h, int64_t w, int channels, rb_crop_box box, uint8_t *dst)
{
    const int64_t C = channels;
    for (int64_t y = 0; y < box.height; y++) {
        const int64_t sy = box.top + y;
        uint8_t *row = dst + y * box.width * C;
        if (sy < 0 || sy >= h) {
            memset(row, 0, (size_t)(box.width * C));
            continue;
        }
        for (int64_t x = 0; x < box.width; x++) {
            const int64_t sx = box.left + x;
            if (sx < 0 || sx >= w)
                memset(row + x * C, 0, (size_t)C);
            else
                memcpy(row + x * C, src + (sy * w + sx) * C, (size_t)C);
        }
    }
}

/* A double uniform on [lo, hi) from 53 random bits. */
static double uniform_between(rb_rng *rng, double lo, double hi)
{
    const uint64_t high = rb_rng_u32(rng), low = rb_rng_u32(rng);
    const uint64_t bits = high << 21 | low >> 11;
    return lo + (hi - lo) * ((double)bits / 9007199254740992.0);
}

rb_crop_box rb_tv_random_resized_crop_box(int64_t h, int64_t w, const double scale[2], const double ratio[2],
                                          rb_rng *rng)
{
    const double area = (double)h * (double)w, log_lo = log(ratio[0]), log_hi = log(ratio[1]);
    const double in_ratio = (double)w / (double)h;
    rb_crop_box b;
    for (int attempt = 0; attempt < 10; attempt++) {
        const double target = area * uniform_between(rng, scale[0], scale[1]);
        const double aspect = exp(uniform_between(rng, log_lo, log_hi));
        const int64_t cw = (int64_t)nearbyint(sqrt(target * aspect)), ch = (int64_t)nearbyint(sqrt(target / aspect));
        if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
            b.height = ch;
            b.width = cw;
            b.top = (int64_t)rb_rng_below(rng, (uint64_t)(h - ch + 1));
            b.left = (int64_t)rb_rng_below(rng, (uint64_t)(w - cw + 1));
            return b;
        }
    }
    if (in_ratio < ratio[0]) {
        b.width = w;
        b.height = (int64_t)nearbyint((double)w / ratio[0]);
    } else if (in_ratio > ratio[1]) {
        b.height = h;
        b.width = (int64_t)nearbyint((double)h * ratio[1]);
    } else {
        b.width = w;
        b.height = h;
    }
    b.top = (h - b.height) / 2;
    b.left = (w - b.width) / 2;
    return b;
}

rb_status rb_tv_resized_crop(const uint8_t *src, int64_t h, int64_t w, int channels, rb_crop_box box, int64_t size,
                             uint8_t *dst)
{
    uint8_t *window = malloc((size_t)box.height * (size_t)box.width * (size_t)channels + 1);
    rb_status s;
    if (box.height < 1 || box.width < 1) {
        free(window);
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "crop window of %lldx%lld pixels", (long long)box.height,
                            (long long)box.width);
    }
    if (window == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for a %lldx%lld crop", (long long)box.height,
                            (long long)box.width);
    rb_crop_u8(src, h, w, channels, box, window);
    s = rb_pil_resize(window, box.height, box.width, channels, NULL, size, size, dst);
    free(window);
    return s;
}

rb_status rb_paper_train_transform(const uint8_t *src, int64_t h, int64_t w, int channels, int64_t size,
                                   rb_rng *rng, bool flip_on, uint8_t *dst, rb_crop_box *box, bool *flipped)
{
    static const double scale[2] = {0.08, 1.0}, ratio[2] = {3.0 / 4.0, 4.0 / 3.0};
    const rb_crop_box b = rb_tv_random_resized_crop_box(h, w, scale, ratio, rng);
    const bool flip = (rb_rng_u32(rng) & 1u) && flip_on;
    const int64_t C = channels;
    rb_status s = rb_tv_resized_crop(src, h, w, channels, b, size, dst);
    if (s != RB_OK)
        return s;
    if (flip)
        for (int64_t y = 0; y < size; y++) {
            uint8_t *row = dst + y * size * C;
            for (int64_t x = 0; x < size / 2; x++)
                for (int64_t c = 0; c < C; c++) {
                    const uint8_t t = row[x * C + c];
                    row[x * C + c] = row[(size - 1 - x) * C + c];
                    row[(size - 1 - x) * C + c] = t;
                }
        }
    if (box != NULL)
        *box = b;
    if (flipped != NULL)
        *flipped = flip;
    return RB_OK;
}

rb_status rb_paper_test_transform(const uint8_t *src, int64_t h, int64_t w, int channels, int64_t resize,
                                  int64_t crop, uint8_t *dst)
{
    int64_t rh, rw;
    uint8_t *mid;
    rb_status s;
    rb_tv_resize_shape(h, w, resize, &rh, &rw);
    mid = malloc((size_t)rh * (size_t)rw * (size_t)channels);
    if (mid == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory resizing a %lldx%lld image", (long long)w,
                            (long long)h);
    if ((s = rb_pil_resize(src, h, w, channels, NULL, rh, rw, mid)) == RB_OK)
        rb_crop_u8(mid, rh, rw, channels,
                   (rb_crop_box){rb_tv_center_offset(rh, crop), rb_tv_center_offset(rw, crop), crop, crop}, dst);
    free(mid);
    return s;
}
