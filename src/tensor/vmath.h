/* Float exp and log1p written so that loops over arrays vectorize (no
 * calls, no branches, no tables): the softmax and focal losses spend most
 * of their time in libm's scalar expf otherwise. Put them in loops marked
 * `#pragma omp simd`, and avoid float comparisons in selects there: they
 * may trap, and -ftrapping-math (the default) then keeps the loop from
 * vectorizing (rb_vpositive, or compare bits).
 *
 * Accuracy (tests/check_ops measures it against double precision):
 * rb_vexpf within 2 ulp for |x| <= 87.35 (measured 1.7); below -87.35 it returns
 * exp(-87.35) ~ 1.1e-38 instead of smaller values (which vanish next to
 * the terms a softmax or a log1p adds them to), above 87.35 exp(87.35);
 * NaN stays NaN. rb_vlog1pf_unit within 4 ulp for e in [0, 1] (measured
 * 2.9: s = e / (2 + e) rounds twice). libm's expf and log1pf are within
 * 1; a softmax or a loss summed over many terms does not see the
 * difference. */
#ifndef RB_TENSOR_VMATH_H
#define RB_TENSOR_VMATH_H

#include <math.h>
#include <stdint.h>

/* On a function whose loops vectorize: compiled for AVX-512, AVX2 and the
 * baseline, the best chosen when the library loads (GCC and clang's
 * target_clones, an ifunc). The library itself is built for the baseline
 * x86-64, where vectors hold 4 floats. */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define RB_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef RB_VECTOR_CLONES
#define RB_VECTOR_CLONES
#endif

static inline float rb_vexpf(float x)
{
    /* x = n ln 2 + r, |r| <= ln 2 / 2; e^r by its Taylor series to r^7
     * (truncation < 2e-9 relative); 2^n from the exponent bits. */
    const float round = 12582912.0f;   /* 1.5 x 2^23: adding it rounds to an integer */
    const int32_t limit = 0x42aeb333;  /* 87.35f, as bits */
    union {
        int32_t bits;
        float value;
    } u = {.value = x}, finite, scale; /* a union, not memcpy: the vectorizer sees through it */
    const int32_t magnitude = u.bits & INT32_MAX;
    float n, r, p;
    /* |x| clamped to 87.35 (NaN kept) on the bits: float comparisons may
     * trap, and -ftrapping-math then keeps selects from vectorizing */
    u.bits = magnitude > limit && magnitude <= 0x7f800000 ? (u.bits & INT32_MIN) | limit : u.bits;
    x = u.value;
    /* n from a NaN would make the int conversion below undefined: 0 then
     * (r, and so the result, stay NaN) */
    finite.bits = magnitude > 0x7f800000 ? 0 : u.bits;
    n = (finite.value * 1.44269504f + round) - round;
    r = x - n * 0.693145752f; /* ln 2 in two parts: the first exact in n x it */
    r = r - n * 1.42860677e-06f;
    p = 1.0f + r * (1.0f + r * (0.5f + r * (1.66666672e-01f +
                     r * (4.16666679e-02f + r * (8.33333377e-03f + r * (1.38888892e-03f + r * 1.98412701e-04f))))));
    scale.bits = ((int32_t)n + 127) << 23;
    return p * scale.value;
}

/* Whether x's sign bit is clear (x >= 0, or +NaN), without a float
 * comparison (see rb_vexpf). */
static inline int rb_vpositive(float x)
{
    union {
        int32_t bits;
        float value;
    } u = {.value = x};
    return u.bits >= 0;
}

/* log(1 + e) for e in [0, 1]: with s = e / (2 + e) in [0, 1/3],
 * log(1 + e) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), to s^15
 * (truncation < 2e-9 relative). */
static inline float rb_vlog1pf_unit(float e)
{
    const float s = e / (2.0f + e), z = s * s, twice = 2.0f * s;
    /* the leading term alone, then the rest (under z/3 < 1/27 of it) */
    return twice + twice * z *
                       (0.333333343f + z * (0.2f + z * (0.142857149f + z * (0.111111112f +
                        z * (9.09090936e-02f + z * (7.69230798e-02f + z * 6.66666701e-02f))))));
}

#endif /* RB_TENSOR_VMATH_H */
