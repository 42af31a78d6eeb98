/* The paper's image pipeline (src/data/paper_transform.c, compiled in: it
 * is internal to the library) against values worked out here by hand from
 * Pillow's and torchvision's rules; tests/pil-transform-parity.sh compares
 * it with Pillow and torchvision themselves where they are installed. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include <robusta/rng.h>
#include <robusta/status.h>

#include "data/paper_transform.h"
#include "testutil.h"

/* Halving 2x2 to 1x1: Pillow's triangle widened to support 2 weighs both
 * pixels of each axis 1/2 (2^21 in fixed point), each pass rounding half
 * up: rows (10+21+1)/2 = 16 and (30+41+1)/2 = 36, then (16+36+1)/2 = 26.
 * A resize to the same size is a copy; enlarging 1 pixel gives copies. */
START_TEST(pillow_bilinear_by_hand)
{
    const uint8_t square[4] = {10, 21, 30, 41};
    uint8_t out[16], copy[4];
    ck_assert_int_eq(rb_pil_resize(square, 2, 2, 1, NULL, 1, 1, out), RB_OK);
    ck_assert_uint_eq(out[0], 26);
    ck_assert_int_eq(rb_pil_resize(square, 2, 2, 1, NULL, 2, 2, copy), RB_OK);
    ck_assert_mem_eq(copy, square, 4);
    ck_assert_int_eq(rb_pil_resize(square, 1, 1, 1, NULL, 3, 4, out), RB_OK);
    for (int i = 0; i < 12; i++)
        ck_assert_uint_eq(out[i], 10);
    /* 1x2 to 1x3 (enlarging, support 1): centres at 1/3, 1, 5/3 of the
     * source; the first output reads pixel 0 at weight 1 (pixel 1 at
     * distance 1.17 is outside), the middle 1/2 each, the last pixel 1:
     * 10, (10+21)/2 = 15.5 rounded half up to 16, 21 */
    ck_assert_int_eq(rb_pil_resize(square, 1, 2, 1, NULL, 1, 3, out), RB_OK);
    ck_assert_uint_eq(out[0], 10);
    ck_assert_uint_eq(out[1], 16);
    ck_assert_uint_eq(out[2], 21);
    /* shrinking 4 to 1 widens the triangle to support 4 (antialiasing):
     * centre 2, weights 5/8, 7/8, 7/8, 5/8 over 3, so {0, 0, 0, 200}
     * gives 200 * 5/24 = 41.67, in fixed point 42; an unwidened filter
     * would read only the middle two pixels and give 0 */
    {
        const uint8_t line[4] = {0, 0, 0, 200};
        ck_assert_int_eq(rb_pil_resize(line, 1, 4, 1, NULL, 1, 1, out), RB_OK);
        ck_assert_uint_eq(out[0], 42);
    }
    /* channels stay apart */
    {
        const uint8_t rgb[6] = {0, 100, 200, 255, 50, 0};
        ck_assert_int_eq(rb_pil_resize(rgb, 1, 2, 3, NULL, 1, 1, out), RB_OK);
        ck_assert_uint_eq(out[0], 128); /* (0 + 255 + 1) / 2 */
        ck_assert_uint_eq(out[1], 75);
        ck_assert_uint_eq(out[2], 100);
    }
}
END_TEST

START_TEST(bad_sizes_and_boxes_are_refused_in_one_line)
{
    const uint8_t px[4] = {0};
    uint8_t out[4];
    ck_assert_int_eq(rb_pil_resize(px, 0, 2, 1, NULL, 1, 1, out), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_pil_resize(px, 2, 2, 5, NULL, 1, 1, out), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_pil_resize(px, 2, 2, 1, NULL, 1, 0, out), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_pil_resize(px, 2, 2, 1, (const double[4]){0, 0, 3, 2}, 1, 1, out), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "resize box (0, 0, 3, 2) is not inside a 2x2 image");
    ck_assert_int_eq(rb_pil_resize(px, 2, 2, 1, (const double[4]){1, 0, 1, 2}, 1, 1, out), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_tv_resized_crop(px, 2, 2, 1, (rb_crop_box){0, 0, 0, 2}, 2, out), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "crop window of 0x2 pixels");
}
END_TEST

/* torchvision's rules: the shorter side to `size`, the other truncated;
 * CenterCrop's offset rounds half to even (Python's round) and pads with
 * zeros when the crop is larger than the image. */
START_TEST(torchvision_sizes_and_offsets)
{
    int64_t h, w;
    rb_tv_resize_shape(375, 500, 256, &h, &w);
    ck_assert(h == 256 && w == 341); /* 256 * 500 / 375 = 341.33 */
    rb_tv_resize_shape(500, 375, 256, &h, &w);
    ck_assert(h == 341 && w == 256);
    rb_tv_resize_shape(300, 300, 256, &h, &w);
    ck_assert(h == 256 && w == 256);
    rb_tv_resize_shape(10, 999, 256, &h, &w);
    ck_assert(h == 256 && w == 25574); /* 255744 / 10 */
    ck_assert_int_eq(rb_tv_center_offset(256, 224), 16);
    ck_assert_int_eq(rb_tv_center_offset(225, 224), 0); /* round(0.5) = 0 */
    ck_assert_int_eq(rb_tv_center_offset(227, 224), 2); /* round(1.5) = 2 */
    ck_assert_int_eq(rb_tv_center_offset(229, 224), 2); /* round(2.5) = 2 */
    ck_assert_int_eq(rb_tv_center_offset(224, 224), 0);
    ck_assert_int_eq(rb_tv_center_offset(100, 120), -10);
    ck_assert_int_eq(rb_tv_center_offset(101, 120), -9); /* (120 - 101) // 2 */
    {
        const uint8_t px[4] = {1, 2, 3, 4};
        uint8_t out[16];
        rb_crop_u8(px, 2, 2, 1, (rb_crop_box){-1, -1, 4, 4}, out);
        ck_assert_mem_eq(out, ((const uint8_t[16]){0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0}), 16);
    }
}
END_TEST

/* RandomResizedCrop's windows: the same generator state gives the same
 * window; every window is inside the image with torchvision's area and
 * aspect bounds (up to the rounding of its sides); an image no try can
 * fit (10 x 1000: any area of 8% needs a side over 10 at aspect <= 4/3)
 * gets torchvision's fallback, the tallest window of aspect 4/3 in the
 * middle: height 10, width round(13.3) = 13, left (1000 - 13) // 2. */
START_TEST(random_resized_crop_windows)
{
    static const double scale[2] = {0.08, 1.0}, ratio[2] = {3.0 / 4.0, 4.0 / 3.0};
    double smallest = 1, largest = 0;
    for (uint64_t e = 0; e < 500; e++) {
        rb_rng a, b;
        rb_crop_box x, y;
        rb_rng_init(&a, 7, RB_RNG_STREAM(RB_RNG_AUGMENT, 1), e);
        rb_rng_init(&b, 7, RB_RNG_STREAM(RB_RNG_AUGMENT, 1), e);
        x = rb_tv_random_resized_crop_box(375, 500, scale, ratio, &a);
        y = rb_tv_random_resized_crop_box(375, 500, scale, ratio, &b);
        ck_assert(memcmp(&x, &y, sizeof x) == 0);
        ck_assert(x.top >= 0 && x.left >= 0 && x.height > 0 && x.width > 0);
        ck_assert(x.top + x.height <= 375 && x.left + x.width <= 500);
        ck_assert((x.width - 0.5) / (x.height + 0.5) <= 4.0 / 3.0 && (x.width + 0.5) / (x.height - 0.5) >= 0.75);
        {
            const double share = (double)(x.height * x.width) / (375.0 * 500.0);
            smallest = share < smallest ? share : smallest;
            largest = share > largest ? share : largest;
        }
    }
    /* 500 draws of a uniform share cover most of [0.08, 1] */
    ck_assert_msg(smallest < 0.12 && largest > 0.9, "shares %g to %g", smallest, largest);
    {
        rb_rng r;
        rb_crop_box b;
        rb_rng_init(&r, 3, RB_RNG_STREAM(RB_RNG_AUGMENT, 0), 0);
        b = rb_tv_random_resized_crop_box(10, 1000, scale, ratio, &r);
        ck_assert(b.top == 0 && b.left == 493 && b.height == 10 && b.width == 13);
        b = rb_tv_random_resized_crop_box(1000, 10, scale, ratio, &r);
        ck_assert(b.top == 493 && b.left == 0 && b.height == 13 && b.width == 10);
    }
}
END_TEST

/* The training transform is the resized crop of its window, mirrored when
 * its coin says so, and repeats for the same generator state. */
START_TEST(train_transform_is_its_window_resized_and_maybe_mirrored)
{
    enum { H = 40, W = 60, S = 16 };
    static uint8_t img[H * W * 3], out[S * S * 3], again[S * S * 3], plain[S * S * 3];
    int flips = 0;
    for (int i = 0; i < H * W * 3; i++)
        img[i] = (uint8_t)(i * 7 + i / 13);
    for (uint64_t e = 0; e < 40; e++) {
        rb_rng r;
        rb_crop_box box, box2;
        bool flipped, flipped2;
        rb_rng_init(&r, 1, RB_RNG_STREAM(RB_RNG_AUGMENT, 0), e);
        ck_assert_int_eq(rb_paper_train_transform(img, H, W, 3, S, &r, true, out, &box, &flipped), RB_OK);
        rb_rng_init(&r, 1, RB_RNG_STREAM(RB_RNG_AUGMENT, 0), e);
        ck_assert_int_eq(rb_paper_train_transform(img, H, W, 3, S, &r, true, again, &box2, &flipped2), RB_OK);
        ck_assert_mem_eq(out, again, sizeof out);
        ck_assert_int_eq(rb_tv_resized_crop(img, H, W, 3, box, S, plain), RB_OK);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                for (int c = 0; c < 3; c++)
                    ck_assert_uint_eq(out[(y * S + x) * 3 + c], plain[(y * S + (flipped ? S - 1 - x : x)) * 3 + c]);
        flips += flipped;
    }
    ck_assert_msg(flips > 5 && flips < 35, "%d of 40 mirrored", flips);
}
END_TEST

static Suite *paper_transform_suite(void)
{
    Suite *s = suite_create("paper_transform");
    TCase *tc = tcase_create("transform");
    tcase_add_test(tc, pillow_bilinear_by_hand);
    tcase_add_test(tc, bad_sizes_and_boxes_are_refused_in_one_line);
    tcase_add_test(tc, torchvision_sizes_and_offsets);
    tcase_add_test(tc, random_resized_crop_windows);
    tcase_add_test(tc, train_transform_is_its_window_resized_and_maybe_mirrored);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(paper_transform_suite());
}
