/* robusta/rng.h: counter-based random numbers (Philox4x32-10).
 *
 * A counter-based generator computes the n-th number of a stream directly
 * from (key, counter), so every example can own a stream keyed by
 * (seed, stream, example index). Augmentation and attack random starts then
 * come out the same whatever the number of threads or the batch split: the
 * reproducibility robusta promises rests on this.
 *
 *     rb_rng r;
 *     rb_rng_init(&r, seed, RB_RNG_STREAM(RB_RNG_ATTACK, restart), example_index);
 *     float u = rb_rng_uniform(&r);
 */
#ifndef ROBUSTA_RNG_H
#define ROBUSTA_RNG_H

#include <stdint.h>
#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a stream is for, in its top 8 bits, so that two uses never share one. */
enum rb_rng_purpose {
    RB_RNG_INIT = 1,    /* weight initialization */
    RB_RNG_AUGMENT = 2, /* data augmentation; stream carries the epoch */
    RB_RNG_SHUFFLE = 3, /* example order */
    RB_RNG_ATTACK = 4,  /* attack random starts; stream carries the restart */
    RB_RNG_SUBSET = 5,  /* choosing examples per class */
    RB_RNG_USER = 128   /* first value free for plugins */
};
/* A 32-bit stream id from a purpose and a 24-bit number (epoch, restart). */
#define RB_RNG_STREAM(purpose, n) ((uint32_t)(purpose) << 24 | ((uint32_t)(n) & 0xffffffu))

typedef struct rb_rng {
    uint32_t key[2];
    uint32_t counter[4]; /* [0] advances; [1..2] substream; [3] stream */
    uint32_t block[4];   /* the current output block */
    unsigned used;       /* how many words of block are consumed */
} rb_rng;

/* One Philox4x32-10 block: out = philox(counter, key). */
RB_API void rb_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* Positions `rng` at the start of the stream (seed, stream, substream). */
RB_API void rb_rng_init(rb_rng *rng, uint64_t seed, uint32_t stream, uint64_t substream);

RB_API uint32_t rb_rng_u32(rb_rng *rng);
/* Uniform in [0, 1), 24 random bits. */
RB_API float rb_rng_uniform(rb_rng *rng);
/* An integer in [0, n), n >= 1: one word scaled by n (multiply-shift)
 * for n < 2^32, two words modulo n from 2^32 on. */
RB_API uint64_t rb_rng_below(rb_rng *rng, uint64_t n);
/* Standard normal (Box-Muller). */
RB_API float rb_rng_normal(rb_rng *rng);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_RNG_H */
