/* Philox4x32-10 against the Random123 known answers, stream keying and
 * layout, and the distributions of the uniform and normal draws. */
#include "config.h"

#include <math.h>

#include <robusta/robusta.h>

#include "testutil.h"

/* ------------------------------------------------------------ known answers */

/* From kat_vectors in the Random123 distribution (philox4x32, 10 rounds). */
static const struct {
    uint32_t counter[4];
    uint32_t key[2];
    uint32_t out[4];
} kat[] = {
    {{0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u},
     {0x00000000u, 0x00000000u},
     {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
    {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
     {0xffffffffu, 0xffffffffu},
     {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
    {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
     {0xa4093822u, 0x299f31d0u},
     {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
};

START_TEST(philox_known_answers)
{
    /* _i is the loop index Check passes to a loop test. */
    uint32_t out[4] = {0, 0, 0, 0};
    rb_philox4x32(kat[_i].counter, kat[_i].key, out);
    for (int j = 0; j < 4; j++)
        ck_assert_msg(out[j] == kat[_i].out[j], "vector %d word %d: got 0x%08x, expected 0x%08x",
                      _i, j, out[j], kat[_i].out[j]);
}
END_TEST

START_TEST(philox_does_not_modify_inputs)
{
    uint32_t counter[4], key[2], out[4];
    memcpy(counter, kat[2].counter, sizeof counter);
    memcpy(key, kat[2].key, sizeof key);
    rb_philox4x32(counter, key, out);
    ck_assert_mem_eq(counter, kat[2].counter, sizeof counter);
    ck_assert_mem_eq(key, kat[2].key, sizeof key);
}
END_TEST

START_TEST(rng_zero_stream_starts_with_zero_vector)
{
    /* Seed 0, stream 0, substream 0 is counter {0,0,0,0}, key {0,0}. */
    rb_rng r;
    rb_rng_init(&r, 0, 0, 0);
    for (int j = 0; j < 4; j++)
        ck_assert_uint_eq(rb_rng_u32(&r), kat[0].out[j]);
}
END_TEST

/* ------------------------------------------------------------ streams */

START_TEST(init_lays_out_key_and_counter)
{
    rb_rng r;
    memset(&r, 0xa5, sizeof r);
    rb_rng_init(&r, 0x0123456789abcdefull, 0xdeadbeefu, 0x1122334455667788ull);
    ck_assert_uint_eq(r.key[0], 0x89abcdefu);
    ck_assert_uint_eq(r.key[1], 0x01234567u);
    ck_assert_uint_eq(r.counter[0], 0);
    ck_assert_uint_eq(r.counter[1], 0x55667788u);
    ck_assert_uint_eq(r.counter[2], 0x11223344u);
    ck_assert_uint_eq(r.counter[3], 0xdeadbeefu);
}
END_TEST

START_TEST(u32_walks_the_blocks_in_order)
{
    const uint64_t seed = 0x0123456789abcdefull, sub = 0x1122334455667788ull;
    const uint32_t stream = RB_RNG_STREAM(RB_RNG_ATTACK, 7);
    const uint32_t key[2] = {0x89abcdefu, 0x01234567u};
    rb_rng r;

    rb_rng_init(&r, seed, stream, sub);
    for (uint32_t b = 0; b < 64; b++) {
        const uint32_t counter[4] = {b, 0x55667788u, 0x11223344u, stream};
        uint32_t expected[4];
        rb_philox4x32(counter, key, expected);
        for (int j = 0; j < 4; j++) {
            uint32_t got = rb_rng_u32(&r);
            ck_assert_msg(got == expected[j], "block %u word %d: 0x%08x, expected 0x%08x", b, j,
                          got, expected[j]);
            /* counter[0] moves on when a block is generated, once per 4 words. */
            ck_assert_uint_eq(r.counter[0], b + 1);
            ck_assert_uint_eq(r.counter[1], 0x55667788u);
            ck_assert_uint_eq(r.counter[2], 0x11223344u);
            ck_assert_uint_eq(r.counter[3], stream);
        }
    }
}
END_TEST

static void first_words(uint64_t seed, uint32_t stream, uint64_t substream, uint32_t out[8])
{
    rb_rng r;
    rb_rng_init(&r, seed, stream, substream);
    for (int i = 0; i < 8; i++)
        out[i] = rb_rng_u32(&r);
}

START_TEST(streams_are_reproducible)
{
    rb_rng a, b;
    rb_rng_init(&a, 42, RB_RNG_STREAM(RB_RNG_AUGMENT, 3), 1234);
    rb_rng_init(&b, 42, RB_RNG_STREAM(RB_RNG_AUGMENT, 3), 1234);
    for (int i = 0; i < 10000; i++) {
        ck_assert_uint_eq(rb_rng_u32(&a), rb_rng_u32(&b));
        ck_assert_float_eq(rb_rng_uniform(&a), rb_rng_uniform(&b));
        ck_assert_float_eq(rb_rng_normal(&a), rb_rng_normal(&b));
    }
    /* Re-initializing goes back to the start. */
    {
        uint32_t first[8], again[8];
        first_words(42, 9, 10, first);
        rb_rng_init(&a, 42, 9, 10);
        for (int i = 0; i < 100; i++)
            rb_rng_u32(&a);
        rb_rng_init(&a, 42, 9, 10);
        for (int i = 0; i < 8; i++)
            again[i] = rb_rng_u32(&a);
        ck_assert_mem_eq(first, again, sizeof first);
    }
}
END_TEST

START_TEST(streams_are_distinct)
{
    /* Each part of the key changes the output: both halves of the seed, the
     * stream, and both halves of the substream. */
    static const struct {
        uint64_t seed;
        uint32_t stream;
        uint64_t substream;
    } keys[] = {
        {42, 5, 1000},
        {43, 5, 1000},
        {42 | 1ull << 32, 5, 1000},
        {42, 6, 1000},
        {42, RB_RNG_STREAM(RB_RNG_SHUFFLE, 5), 1000},
        {42, 5, 1001},
        {42, 5, 1000 | 1ull << 32},
        {0, 0, 0},
        /* Swapped roles must not collide either. */
        {1000, 5, 42},
        {5, 42, 1000},
    };
    const size_t n = sizeof keys / sizeof keys[0];
    uint32_t words[sizeof keys / sizeof keys[0]][8];
    for (size_t i = 0; i < n; i++)
        first_words(keys[i].seed, keys[i].stream, keys[i].substream, words[i]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(memcmp(words[i], words[j], sizeof words[i]) != 0,
                          "keys %zu and %zu give the same stream", i, j);
    /* Within one stream, consecutive blocks differ too. */
    for (int k = 0; k < 4; k++)
        ck_assert_uint_ne(words[0][k], words[0][k + 4]);
}
END_TEST

START_TEST(stream_macro_packs_purpose)
{
    ck_assert_uint_eq(RB_RNG_STREAM(RB_RNG_INIT, 0), 0x01000000u);
    ck_assert_uint_eq(RB_RNG_STREAM(RB_RNG_AUGMENT, 3), 0x02000003u);
    ck_assert_uint_eq(RB_RNG_STREAM(RB_RNG_SHUFFLE, 0xabcdef), 0x03abcdefu);
    ck_assert_uint_eq(RB_RNG_STREAM(RB_RNG_ATTACK, 7), 0x04000007u);
    ck_assert_uint_eq(RB_RNG_STREAM(RB_RNG_SUBSET, 1), 0x05000001u);
    ck_assert_uint_eq(RB_RNG_STREAM(RB_RNG_USER, 0), 0x80000000u);
    ck_assert_uint_eq(RB_RNG_STREAM(255, 0xffffff), 0xffffffffu);
    /* The number is masked to 24 bits: it never spills into the purpose. */
    ck_assert_uint_eq(RB_RNG_STREAM(RB_RNG_ATTACK, 0x1000000), 0x04000000u);
    ck_assert_uint_eq(RB_RNG_STREAM(RB_RNG_ATTACK, 0xff123456u), 0x04123456u);
    ck_assert_uint_eq(RB_RNG_STREAM(RB_RNG_ATTACK, -1), 0x04ffffffu);
    ck_assert_uint_eq(RB_RNG_STREAM(RB_RNG_INIT, 5) >> 24, RB_RNG_INIT);
    ck_assert_uint_eq(RB_RNG_STREAM(RB_RNG_USER + 1, 5) >> 24, RB_RNG_USER + 1);
    /* A 32-bit value, as the type says. */
    ck_assert_uint_eq(sizeof(RB_RNG_STREAM(RB_RNG_INIT, 0)), sizeof(uint32_t));
    /* Every purpose differs for the same number. */
    ck_assert_uint_ne(RB_RNG_STREAM(RB_RNG_INIT, 9), RB_RNG_STREAM(RB_RNG_AUGMENT, 9));
}
END_TEST

/* ------------------------------------------------------------ distributions */

#define DRAWS 1000000

START_TEST(uniform_is_top_24_bits)
{
    rb_rng a, b;
    rb_rng_init(&a, 7, 8, 9);
    rb_rng_init(&b, 7, 8, 9);
    for (int i = 0; i < 1000; i++) {
        uint32_t w = rb_rng_u32(&b);
        float u = rb_rng_uniform(&a);
        ck_assert_msg(u == (float)(w >> 8) / 16777216.0f, "draw %d: %.9g from word 0x%08x", i,
                      (double)u, w);
    }
}
END_TEST

/* rb_rng_below: one word w gives (w * n) >> 32 for n < 2^32 (so 1 gives
 * 0); from 2^32 on, two words, (hi:lo) mod n. */
START_TEST(below_scales_one_word_or_takes_two)
{
    static const uint64_t ns[] = {1, 2, 3, 7, 1000, 65537, UINT64_C(0xffffffff)};
    rb_rng a, b;
    rb_rng_init(&a, 11, 12, 13);
    rb_rng_init(&b, 11, 12, 13);
    for (int i = 0; i < 700; i++) {
        const uint64_t n = ns[i % 7], w = rb_rng_u32(&b), got = rb_rng_below(&a, n);
        ck_assert_uint_eq(got, (w * n) >> 32);
        ck_assert_uint_lt(got, n);
    }
    for (int i = 0; i < 100; i++) {
        const uint64_t n = UINT64_C(0x100000000) + (uint64_t)i * 977;
        const uint64_t hi = rb_rng_u32(&b), lo = rb_rng_u32(&b);
        ck_assert_uint_eq(rb_rng_below(&a, n), (hi << 32 | lo) % n);
    }
}
END_TEST

START_TEST(uniform_moments)
{
    rb_rng r;
    double sum = 0, sum2 = 0, mean, var;
    float lo = 1, hi = 0;
    long bins[10] = {0};

    rb_rng_init(&r, 2024, RB_RNG_STREAM(RB_RNG_USER, 1), 0);
    for (long i = 0; i < DRAWS; i++) {
        float u = rb_rng_uniform(&r);
        ck_assert_msg(u >= 0.0f && u < 1.0f, "draw %ld is %.9g", i, (double)u);
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
        sum += u;
        sum2 += (double)u * u;
        bins[(int)(u * 10.0f) < 10 ? (int)(u * 10.0f) : 9]++;
    }
    mean = sum / DRAWS;
    var = sum2 / DRAWS - mean * mean;
    /* Standard errors for n = 1e6 uniform draws: the mean has
     * sqrt(1/12/n) = 2.9e-4; the variance has sqrt((1/80 - 1/144)/n) = 7.5e-5.
     * The tolerances are about five standard errors (1.5e-3 and 4e-4): a
     * correct generator is far inside them (and the seed is fixed, so the
     * test is deterministic), a biased one is far outside. */
    ck_assert_msg(fabs(mean - 0.5) < 1.5e-3, "mean %.6f", mean);
    ck_assert_msg(fabs(var - 1.0 / 12.0) < 4e-4, "variance %.6f, expected %.6f", var, 1.0 / 12);
    /* Nearly the whole range is reached. */
    ck_assert_msg(lo < 1e-4f && hi > 1 - 1e-4f, "range [%g, %g]", (double)lo, (double)hi);
    /* Deciles: each holds 1e5 expected, standard deviation sqrt(n p (1-p)) =
     * 300; five of those is 1500. */
    for (int k = 0; k < 10; k++)
        ck_assert_msg(labs(bins[k] - DRAWS / 10) < 1500, "decile %d holds %ld", k, bins[k]);
}
END_TEST

START_TEST(normal_moments)
{
    rb_rng r;
    double sum = 0, sum2 = 0, sum4 = 0, mean, var;
    long beyond = 0;

    rb_rng_init(&r, 2024, RB_RNG_STREAM(RB_RNG_USER, 2), 0);
    for (long i = 0; i < DRAWS; i++) {
        double x = rb_rng_normal(&r);
        ck_assert_msg(isfinite(x), "draw %ld is %g", i, x);
        sum += x;
        sum2 += x * x;
        sum4 += x * x * x * x;
        beyond += fabs(x) > 1.959964;
    }
    mean = sum / DRAWS;
    var = sum2 / DRAWS - mean * mean;
    /* Standard errors for n = 1e6 standard normal draws: the mean has
     * sqrt(1/n) = 1e-3; the variance has sqrt(2/n) = 1.4e-3; the fourth
     * moment (3) has sqrt((105 - 9)/n) = 9.8e-3; the share beyond 1.96 (0.05)
     * has sqrt(0.05 * 0.95 / n) = 2.2e-4. Tolerances are about five standard
     * errors each. */
    ck_assert_msg(fabs(mean) < 5e-3, "mean %.6f", mean);
    ck_assert_msg(fabs(var - 1) < 7e-3, "variance %.6f", var);
    ck_assert_msg(fabs(sum4 / DRAWS - 3) < 5e-2, "fourth moment %.6f", sum4 / DRAWS);
    ck_assert_msg(fabs((double)beyond / DRAWS - 0.05) < 1.1e-3, "%ld beyond 1.96", beyond);
}
END_TEST

START_TEST(normal_consumes_two_words)
{
    rb_rng a, b;
    rb_rng_init(&a, 11, 12, 13);
    rb_rng_init(&b, 11, 12, 13);
    for (int i = 0; i < 5; i++) {
        rb_rng_normal(&a);
        rb_rng_u32(&b);
        rb_rng_u32(&b);
        ck_assert_uint_eq(rb_rng_u32(&a), rb_rng_u32(&b));
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rng");
    TCase *philox = tcase_create("philox");
    TCase *streams = tcase_create("streams");
    TCase *dist = tcase_create("distributions");

    tcase_add_loop_test(philox, philox_known_answers, 0, (int)(sizeof kat / sizeof kat[0]));
    tcase_add_test(philox, philox_does_not_modify_inputs);
    tcase_add_test(philox, rng_zero_stream_starts_with_zero_vector);
    suite_add_tcase(s, philox);

    tcase_add_test(streams, init_lays_out_key_and_counter);
    tcase_add_test(streams, u32_walks_the_blocks_in_order);
    tcase_add_test(streams, streams_are_reproducible);
    tcase_add_test(streams, streams_are_distinct);
    tcase_add_test(streams, stream_macro_packs_purpose);
    suite_add_tcase(s, streams);

    tcase_add_test(dist, uniform_is_top_24_bits);
    tcase_add_test(dist, uniform_moments);
    tcase_add_test(dist, below_scales_one_word_or_takes_two);
    tcase_add_test(dist, normal_moments);
    tcase_add_test(dist, normal_consumes_two_words);
    suite_add_tcase(s, dist);
    return run_suite(s);
}
