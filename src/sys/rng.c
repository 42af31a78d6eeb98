/* Philox4x32-10 counter-based generator (Salmon et al., SC'11), robusta/rng.h. */
#include "config.h"

#include <math.h>

#include <robusta/rng.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void rb_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void rb_rng_init(rb_rng *rng, uint64_t seed, uint32_t stream, uint64_t substream)
{
    rng->key[0] = (uint32_t)seed;
    rng->key[1] = (uint32_t)(seed >> 32);
    rng->counter[0] = 0;
    rng->counter[1] = (uint32_t)substream;
    rng->counter[2] = (uint32_t)(substream >> 32);
    rng->counter[3] = stream;
    rng->used = 4; /* nothing generated yet */
}

uint32_t rb_rng_u32(rb_rng *rng)
{
    if (rng->used >= 4) {
        rb_philox4x32(rng->counter, rng->key, rng->block);
        rng->counter[0]++;
        rng->used = 0;
    }
    return rng->block[rng->used++];
}

float rb_rng_uniform(rb_rng *rng)
{
    /* The top 24 bits fill a float mantissa exactly: values k / 2^24. */
    return (float)(rb_rng_u32(rng) >> 8) * (1.0f / 16777216.0f);
}

uint64_t rb_rng_below(rb_rng *rng, uint64_t n)
{
    /* one word scaled (multiply-shift) below 2^32, two words beyond */
    if (n <= UINT64_C(0xffffffff))
        return ((uint64_t)rb_rng_u32(rng) * n) >> 32;
    {
        uint64_t hi = rb_rng_u32(rng), lo = rb_rng_u32(rng);
        return (hi << 32 | lo) % n;
    }
}

float rb_rng_normal(rb_rng *rng)
{
    /* Box-Muller; u1 in (0, 1] keeps the log finite. */
    double u1 = ((double)(rb_rng_u32(rng) >> 8) + 1.0) / 16777216.0;
    double u2 = (double)(rb_rng_u32(rng) >> 8) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}
