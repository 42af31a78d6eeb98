/* Targets beyond labels (robusta/targets.h, the "targets" part of
 * robusta/data.h): every refusal of rb_targets_check with its exact line;
 * splits that carry masks and boxes through copies, subsets and resizing;
 * masks and boxes moved by flip, crop and resize on hand-computed 4×4
 * cases, each transform alone and combined; and a loader whose batches
 * carry exactly the targets rb_split_example_targets gives, whatever its
 * thread count. */
#include "config.h"

#include <math.h>
#include <stdint.h>

#include <robusta/data.h>
#include <robusta/engine.h>
#include <robusta/graph.h>
#include <robusta/status.h>
#include <robusta/targets.h>

#include "testutil.h"

static void expect_error(rb_status got, rb_status want, const char *message)
{
    ck_assert_msg(got == want, "status %s, wanted %s (%s)", rb_status_str(got), rb_status_str(want),
                  rb_last_error());
    ck_assert_str_eq(rb_last_error(), message);
    ck_assert_ptr_null(strchr(rb_last_error(), '\n'));
}

/* ------------------------------------------------------------ rb_targets_check */

/* Two 2×3 (height × width) images, classes 3: labels, masks with an
 * ignored pixel, image 0 with two boxes (one the whole image, one of zero
 * width, which is allowed), image 1 with none. */
typedef struct good {
    int64_t labels[2];
    int32_t masks[12];
    rb_box boxes[2];
    int64_t offsets[3];
    rb_targets t;
} good;

static void make_good(good *g)
{
    static const int32_t masks[12] = {0, 1, 2, 255, 0, 0, 2, 2, 2, 1, 1, 255};
    memset(g, 0, sizeof *g);
    g->labels[0] = 2;
    g->labels[1] = 0;
    memcpy(g->masks, masks, sizeof masks);
    g->boxes[0] = (rb_box){0.0f, 0.0f, 3.0f, 2.0f, 1};
    g->boxes[1] = (rb_box){1.5f, 0.5f, 1.5f, 1.0f, 2};
    g->offsets[0] = 0;
    g->offsets[1] = 2;
    g->offsets[2] = 2;
    g->t.count = 2;
    g->t.labels = g->labels;
    g->t.masks = g->masks;
    g->t.mask_height = 2;
    g->t.mask_width = 3;
    g->t.boxes = g->boxes;
    g->t.box_offsets = g->offsets;
}

START_TEST(check_accepts_good_targets)
{
    good g;
    make_good(&g);
    ck_assert_msg(rb_targets_check(&g.t, 3, 2, 3, "batch 3") == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_targets_check(NULL, 3, 2, 3, "batch 3"), RB_OK);
    /* Members left NULL are not checked: labels alone, boxes alone. */
    g.t.masks = NULL;
    g.t.mask_height = g.t.mask_width = 7;
    ck_assert_int_eq(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_OK);
    g.t.boxes = NULL;
    g.t.box_offsets = NULL;
    ck_assert_int_eq(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_OK);
    /* Empty box lists need no box array. */
    make_good(&g);
    g.offsets[1] = g.offsets[2] = 0;
    g.t.boxes = NULL;
    ck_assert_int_eq(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_OK);
}
END_TEST

START_TEST(check_refuses_labels_and_masks_with_one_line)
{
    good g;
    make_good(&g);
    g.labels[1] = 3;
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: label 3 of image 1 is outside [0, 3)");
    g.labels[1] = -1;
    expect_error(rb_targets_check(&g.t, 3, 2, 3, NULL), RB_ERR_INVALID_ARGUMENT,
                 "targets: label -1 of image 1 is outside [0, 3)");

    make_good(&g);
    g.masks[6 + 1 * 3 + 2] = 3; /* image 1, y 1, x 2 */
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: mask of image 1 has class 3 at pixel (x 2, y 1), outside [0, 3) and not the ignore "
                 "label 255");
    g.masks[6 + 1 * 3 + 2] = 254;
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: mask of image 1 has class 254 at pixel (x 2, y 1), outside [0, 3) and not the ignore "
                 "label 255");
    g.masks[6 + 1 * 3 + 2] = 255;
    g.masks[1] = -1;
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: mask of image 0 has class -1 at pixel (x 1, y 0), outside [0, 3) and not the ignore "
                 "label 255");
    g.masks[1] = 1;
    ck_assert_int_eq(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_OK);
    /* A class that is 255 is still a class when there are more than 255. */
    ck_assert_int_eq(rb_targets_check(&g.t, 300, 2, 3, "batch 3"), RB_OK);

    /* The same twelve values as 3×2 masks of 2×3 images. */
    g.t.mask_height = 3;
    g.t.mask_width = 2;
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: masks are 2x3 but the images are 3x2; a mask has one value per pixel");

    make_good(&g);
    g.t.count = -1;
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: the targets are for -1 images; the count must be >= 0");
}
END_TEST

START_TEST(check_refuses_box_offsets_with_one_line)
{
    good g;
    rb_box five[5];
    int64_t bad[3] = {0, 5, 1};

    make_good(&g);
    g.offsets[0] = 1;
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: the first box offset is 1; it must be 0");
    make_good(&g);
    g.offsets[2] = 1;
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: box offsets decrease at image 1 (2 then 1)");
    make_good(&g);
    g.t.box_offsets = NULL;
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: boxes without box offsets");
    make_good(&g);
    g.t.boxes = NULL;
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: image 0 has boxes but the box array is NULL");

    /* Offsets are checked before any box is read through them: image 0
     * claims five boxes, of which only the first is real (the array may
     * end there); the broken offsets must be what is reported, not the
     * garbage box behind them. */
    memset(five, 0, sizeof five);
    five[1] = (rb_box){2.0f, 0.0f, 1.0f, 1.0f, 0};
    make_good(&g);
    g.t.boxes = five;
    g.t.box_offsets = bad;
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: box offsets decrease at image 1 (5 then 1)");
}
END_TEST

START_TEST(check_refuses_boxes_with_one_line)
{
    good g;
    make_good(&g);
    g.boxes[1] = (rb_box){2.0f, 0.0f, 1.0f, 1.0f, 0};
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: box 1 of image 0 is (2, 0, 1, 1): x2 < x1 or y2 < y1; boxes are corners x1, y1, x2, y2");
    g.boxes[1] = (rb_box){0.0f, 1.5f, 1.0f, 0.5f, 0};
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: box 1 of image 0 is (0, 1.5, 1, 0.5): x2 < x1 or y2 < y1; boxes are corners x1, y1, x2, "
                 "y2");
    g.boxes[1] = (rb_box){-0.5f, 0.0f, 1.0f, 1.0f, 0};
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: box 1 of image 0 is (-0.5, 0, 1, 1), outside the 3x2 image; corners lie in [0, 3] x "
                 "[0, 2]");
    g.boxes[1] = (rb_box){0.0f, 0.0f, 3.25f, 1.0f, 0};
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: box 1 of image 0 is (0, 0, 3.25, 1), outside the 3x2 image; corners lie in [0, 3] x "
                 "[0, 2]");
    g.boxes[1] = (rb_box){0.0f, 0.0f, 1.0f, 3.0f, 0};
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: box 1 of image 0 is (0, 0, 1, 3), outside the 3x2 image; corners lie in [0, 3] x [0, 2]");
    g.boxes[1] = (rb_box){0.0f, -1.0f, 1.0f, 1.0f, 0};
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: box 1 of image 0 is (0, -1, 1, 1), outside the 3x2 image; corners lie in [0, 3] x [0, 2]");
    g.boxes[1] = (rb_box){0.0f, 0.0f, NAN, 1.0f, 0};
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: box 1 of image 0 is (0, 0, nan, 1): its corners must be finite");
    g.boxes[1] = (rb_box){-INFINITY, 0.0f, 1.0f, 1.0f, 0};
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: box 1 of image 0 is (-inf, 0, 1, 1): its corners must be finite");
    g.boxes[1] = (rb_box){0.0f, 0.0f, 1.0f, 1.0f, 3};
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: box 1 of image 0 has class 3, outside [0, 3)");
    g.boxes[1] = (rb_box){0.0f, 0.0f, 1.0f, 1.0f, -2};
    expect_error(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_ERR_INVALID_ARGUMENT,
                 "batch 3: box 1 of image 0 has class -2, outside [0, 3)");
    /* The corners themselves are inside. */
    g.boxes[1] = (rb_box){3.0f, 2.0f, 3.0f, 2.0f, 2};
    ck_assert_int_eq(rb_targets_check(&g.t, 3, 2, 3, "batch 3"), RB_OK);
}
END_TEST

/* ------------------------------------------------------------ a small split */

#define SIDE 4
#define CLASSES 17

/* Three 4×4 one-channel images. Example 0's pixels and mask are both
 * 1 + 4y + x, so that a moved pixel names where it came from:
 *      1  2  3  4
 *      5  6  7  8
 *      9 10 11 12
 *     13 14 15 16
 * with boxes A (0,0,1,2) class 1, B (1,1,3,4) class 2, C (2.5,0,4,0.5)
 * class 3, D (0,0,0.5,4) class 4. Example 1: mask all 0, boxes E (2,2,2,3)
 * of zero width and F, the whole image, class 0. Example 2: mask all
 * ignored, no boxes. */
static const rb_box BOXES[6] = {
    {0.0f, 0.0f, 1.0f, 2.0f, 1}, {1.0f, 1.0f, 3.0f, 4.0f, 2}, {2.5f, 0.0f, 4.0f, 0.5f, 3},
    {0.0f, 0.0f, 0.5f, 4.0f, 4}, {2.0f, 2.0f, 2.0f, 3.0f, 0}, {0.0f, 0.0f, 4.0f, 4.0f, 0},
};
static const int64_t OFFSETS[4] = {0, 4, 6, 6};

static rb_split *small_split(void)
{
    unsigned char pixels[3 * SIDE * SIDE];
    int32_t masks[3 * SIDE * SIDE];
    const int64_t labels[3] = {0, 1, 2};
    rb_targets t = {0};
    rb_split *plain = NULL, *s = NULL;

    for (int i = 0; i < SIDE * SIDE; i++) {
        pixels[i] = (unsigned char)(1 + i);
        pixels[16 + i] = (unsigned char)(100 + i);
        pixels[32 + i] = (unsigned char)(200 + i);
        masks[i] = 1 + i;
        masks[16 + i] = 0;
        masks[32 + i] = RB_IGNORE_LABEL;
    }
    ck_assert_int_eq(rb_split_create(&plain, RB_DTYPE_U8, 3, 1, SIDE, SIDE, pixels, labels, CLASSES, NULL, "small"),
                     RB_OK);
    t.count = 3;
    t.masks = masks;
    t.mask_height = t.mask_width = SIDE;
    t.boxes = BOXES;
    t.box_offsets = OFFSETS;
    ck_assert_msg(rb_split_with_targets(&s, plain, &t) == RB_OK, "%s", rb_last_error());
    rb_split_destroy(plain);
    return s;
}

/* A seed whose augmentation draw for (epoch 0, index) is (top, left, flip). */
static uint64_t seed_for(const rb_augment *a, int64_t index, int top, int left, bool flip)
{
    for (uint64_t seed = 0; seed < 100000; seed++) {
        int t, l;
        bool f;
        rb_augment_draw(a, seed, 0, index, &t, &l, &f);
        if (t == top && l == left && f == flip)
            return seed;
    }
    ck_abort_msg("no seed draws (%d, %d, %d)", top, left, (int)flip);
    return 0;
}

static void expect_boxes(const rb_box *got, int64_t n, const rb_box *want, int64_t m)
{
    ck_assert_int_eq(n, m);
    /* Every expected corner is a dyadic number that the transforms reach
     * exactly, so equality is exact. */
    for (int64_t k = 0; k < m; k++)
        ck_assert_msg(got[k].x1 == want[k].x1 && got[k].y1 == want[k].y1 && got[k].x2 == want[k].x2 &&
                          got[k].y2 == want[k].y2 && got[k].label == want[k].label,
                      "box %lld: got (%g, %g, %g, %g) class %lld, wanted (%g, %g, %g, %g) class %lld", (long long)k,
                      got[k].x1, got[k].y1, got[k].x2, got[k].y2, (long long)got[k].label, want[k].x1, want[k].y1,
                      want[k].x2, want[k].y2, (long long)want[k].label);
}

static void expect_mask(const int32_t *got, const int32_t *want, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "mask pixel %d (y %d, x %d): got %d, wanted %d", i, i / (int)sqrt(n),
                      i % (int)sqrt(n), got[i], want[i]);
}

/* Without a resize, a mask pixel and its image pixel come from the same
 * place: the pixel is mask / 255, or 0 where the mask says padding. */
static void expect_pixels_follow_mask(const rb_split *s, const rb_augment *a, uint64_t seed, const int32_t *mask)
{
    float px[SIDE * SIDE];
    ck_assert_int_eq(rb_split_example(s, 0, a, seed, 0, px), RB_OK);
    for (int i = 0; i < SIDE * SIDE; i++)
        ck_assert(px[i] == (mask[i] == RB_IGNORE_LABEL ? 0.0f : (float)mask[i] / 255.0f));
}

/* ------------------------------------------------------------ transforms */

START_TEST(unaugmented_targets_are_the_stored_ones)
{
    rb_split *s = small_split();
    int32_t mask[16];
    rb_box boxes[4];
    int64_t n = -1;
    static const rb_box F = {0.0f, 0.0f, 4.0f, 4.0f, 0};

    ck_assert_int_eq(rb_split_max_boxes(s), 4);
    ck_assert_int_eq(rb_split_example_targets(s, 0, NULL, 0, 0, mask, boxes, &n), RB_OK);
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(mask[i], 1 + i);
    expect_boxes(boxes, n, BOXES, 4);
    /* The zero-width box E never comes out; F does. */
    ck_assert_int_eq(rb_split_example_targets(s, 1, NULL, 0, 0, mask, boxes, &n), RB_OK);
    expect_boxes(boxes, n, &F, 1);
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(mask[i], 0);
    ck_assert_int_eq(rb_split_example_targets(s, 2, NULL, 0, 0, mask, boxes, &n), RB_OK);
    ck_assert_int_eq(n, 0);
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(mask[i], RB_IGNORE_LABEL);
    /* Masks alone, boxes alone. */
    ck_assert_int_eq(rb_split_example_targets(s, 0, NULL, 0, 0, NULL, boxes, &n), RB_OK);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(rb_split_example_targets(s, 0, NULL, 0, 0, mask, NULL, NULL), RB_OK);
    rb_split_destroy(s);
}
END_TEST

START_TEST(flip_mirrors_masks_and_boxes)
{
    rb_split *s = small_split();
    rb_augment a = {.flip = true};
    uint64_t seed = seed_for(&a, 0, 0, 0, true);
    int32_t mask[16];
    rb_box boxes[4];
    int64_t n;
    static const int32_t want[16] = {4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13};
    /* x1' = 4 - x2, x2' = 4 - x1. */
    static const rb_box wb[4] = {{3.0f, 0.0f, 4.0f, 2.0f, 1},
                                 {1.0f, 1.0f, 3.0f, 4.0f, 2},
                                 {0.0f, 0.0f, 1.5f, 0.5f, 3},
                                 {3.5f, 0.0f, 4.0f, 4.0f, 4}};

    ck_assert_int_eq(rb_split_example_targets(s, 0, &a, seed, 0, mask, boxes, &n), RB_OK);
    expect_mask(mask, want, 16);
    expect_boxes(boxes, n, wb, 4);
    expect_pixels_follow_mask(s, &a, seed, mask);
    /* A draw without the flip leaves everything in place. */
    seed = seed_for(&a, 0, 0, 0, false);
    ck_assert_int_eq(rb_split_example_targets(s, 0, &a, seed, 0, mask, boxes, &n), RB_OK);
    expect_boxes(boxes, n, BOXES, 4);
    ck_assert_int_eq(mask[1], 2);
    rb_split_destroy(s);
}
END_TEST

START_TEST(crop_shifts_clips_and_drops)
{
    rb_split *s = small_split();
    rb_augment a = {.crop = true, .padding = 1};
    /* Window at (top 0, left 2) of the image padded by 1: output (y, x)
     * reads stored (y - 1, x + 1); boxes move by (-1, +1). */
    uint64_t seed = seed_for(&a, 0, 0, 2, false);
    int32_t mask[16];
    rb_box boxes[4];
    int64_t n;
    static const int32_t want[16] = {255, 255, 255, 255, 2, 3, 4, 255, 6, 7, 8, 255, 10, 11, 12, 255};
    /* A (-1..0 wide) and D (-1..-0.5) leave the window; B's bottom and C
     * stay inside after clipping. */
    static const rb_box wb[2] = {{0.0f, 2.0f, 2.0f, 4.0f, 2}, {1.5f, 1.0f, 3.0f, 1.5f, 3}};

    ck_assert_int_eq(rb_split_example_targets(s, 0, &a, seed, 0, mask, boxes, &n), RB_OK);
    expect_mask(mask, want, 16);
    expect_boxes(boxes, n, wb, 2);
    expect_pixels_follow_mask(s, &a, seed, mask);
    /* The centred window (1, 1) is the identity. */
    seed = seed_for(&a, 0, 1, 1, false);
    ck_assert_int_eq(rb_split_example_targets(s, 0, &a, seed, 0, mask, boxes, &n), RB_OK);
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(mask[i], 1 + i);
    expect_boxes(boxes, n, BOXES, 4);
    rb_split_destroy(s);
}
END_TEST

START_TEST(crop_then_flip_as_the_pixels)
{
    rb_split *s = small_split();
    rb_augment a = {.crop = true, .padding = 1, .flip = true};
    /* Window (top 2, left 0), flipped: output (y, x) reads stored
     * (y + 1, 2 - x); boxes move by (+1, -1), are clipped, then mirrored. */
    uint64_t seed = seed_for(&a, 0, 2, 0, true);
    int32_t mask[16];
    rb_box boxes[4];
    int64_t n;
    static const int32_t want[16] = {7, 6, 5, 255, 11, 10, 9, 255, 15, 14, 13, 255, 255, 255, 255, 255};
    /* A: (1,-1,2,1) -> (1,0,2,1) -> (2,0,3,1); B: (2,0,4,3) -> (0,0,2,3);
     * C: y -1..-0.5 leaves the window; D: (1,-1,1.5,3) -> (2.5,0,3,3). */
    static const rb_box wb[3] = {{2.0f, 0.0f, 3.0f, 1.0f, 1}, {0.0f, 0.0f, 2.0f, 3.0f, 2}, {2.5f, 0.0f, 3.0f, 3.0f, 4}};

    ck_assert_int_eq(rb_split_example_targets(s, 0, &a, seed, 0, mask, boxes, &n), RB_OK);
    expect_mask(mask, want, 16);
    expect_boxes(boxes, n, wb, 3);
    expect_pixels_follow_mask(s, &a, seed, mask);
    rb_split_destroy(s);
}
END_TEST

/* Resizes example 0 to size × size and checks mask and boxes. */
static void expect_resized(int size, const int32_t *want, const rb_box *wb, int64_t nb)
{
    rb_split *s = small_split(), *r = NULL;
    rb_split_options o = {.size = size};
    int32_t mask[64];
    rb_box boxes[4];
    rb_targets stored;
    int64_t n;

    ck_assert_int_eq(rb_split_apply(&r, s, &o), RB_OK);
    ck_assert_int_eq(rb_split_example_targets(r, 0, NULL, 0, 0, mask, boxes, &n), RB_OK);
    expect_mask(mask, want, size * size);
    expect_boxes(boxes, n, wb, nb);
    /* What is stored stays at the stored size. */
    rb_split_stored_targets(r, &stored);
    ck_assert_int_eq(stored.mask_height, SIDE);
    ck_assert_int_eq(stored.mask_width, SIDE);
    ck_assert_int_eq(stored.masks[5], 6);
    rb_split_destroy(r);
    rb_split_destroy(s);
}

START_TEST(resize_scales_boxes_and_picks_nearest_pixels)
{
    /* Up by 2: output d reads floor((2d + 1) * 4 / 16) = d / 2. */
    static const int32_t up[64] = {
        1,  1,  2,  2,  3,  3,  4,  4,  1,  1,  2,  2,  3,  3,  4,  4,  5,  5,  6,  6,  7,  7,
        8,  8,  5,  5,  6,  6,  7,  7,  8,  8,  9,  9,  10, 10, 11, 11, 12, 12, 9,  9,  10, 10,
        11, 11, 12, 12, 13, 13, 14, 14, 15, 15, 16, 16, 13, 13, 14, 14, 15, 15, 16, 16,
    };
    static const rb_box up_boxes[4] = {{0.0f, 0.0f, 2.0f, 4.0f, 1},
                                       {2.0f, 2.0f, 6.0f, 8.0f, 2},
                                       {5.0f, 0.0f, 8.0f, 1.0f, 3},
                                       {0.0f, 0.0f, 1.0f, 8.0f, 4}};
    /* Down by 2: output d reads floor((2d + 1) * 4 / 4) = 2d + 1, the
     * pixel under the output pixel's centre (PyTorch's 'nearest-exact';
     * its legacy 'nearest' would read 2d, half a pixel off the grid the
     * bilinear pixels use). */
    static const int32_t down[4] = {6, 8, 14, 16};
    static const rb_box down_boxes[4] = {{0.0f, 0.0f, 0.5f, 1.0f, 1},
                                         {0.5f, 0.5f, 1.5f, 2.0f, 2},
                                         {1.25f, 0.0f, 2.0f, 0.25f, 3},
                                         {0.0f, 0.0f, 0.25f, 2.0f, 4}};
    /* 4 to 6: output d reads floor((2d + 1) / 3): 0 1 1 2 3 3. */
    static const int32_t six[36] = {
        1,  2,  2,  3,  4,  4,  5,  6,  6,  7,  8,  8,  5,  6,  6,  7,  8,  8,
        9,  10, 10, 11, 12, 12, 13, 14, 14, 15, 16, 16, 13, 14, 14, 15, 16, 16,
    };
    static const rb_box six_boxes[4] = {{0.0f, 0.0f, 1.5f, 3.0f, 1},
                                        {1.5f, 1.5f, 4.5f, 6.0f, 2},
                                        {3.75f, 0.0f, 6.0f, 0.75f, 3},
                                        {0.0f, 0.0f, 0.75f, 6.0f, 4}};
    expect_resized(8, up, up_boxes, 4);
    expect_resized(2, down, down_boxes, 4);
    expect_resized(6, six, six_boxes, 4);
}
END_TEST

START_TEST(resize_crop_and_flip_combined)
{
    rb_split *s = small_split(), *r = NULL;
    rb_split_options o = {.size = 8};
    rb_augment a = {.crop = true, .padding = 2, .flip = true};
    /* 8×8 (stored pixel (y/2, x/2)), window (top 1, left 3) of the image
     * padded by 2, flipped: output (y, x) reads resized (y - 1, 8 - x). */
    uint64_t seed = seed_for(&a, 0, 1, 3, true);
    int32_t mask[64];
    rb_box boxes[4];
    int64_t n;
    static const int32_t want[64] = {
        255, 255, 255, 255, 255, 255, 255, 255, /**/ 255, 4,  4,  3,  3,  2,  2,  1,
        255, 4,   4,   3,   3,   2,   2,   1,   /**/ 255, 8,  8,  7,  7,  6,  6,  5,
        255, 8,   8,   7,   7,   6,   6,   5,   /**/ 255, 12, 12, 11, 11, 10, 10, 9,
        255, 12,  12,  11,  11,  10,  10,  9,   /**/ 255, 16, 16, 15, 15, 14, 14, 13,
    };
    /* Scaled by 2, moved by (-1, +1), clipped to 8×8, mirrored:
     * A (0,0,2,4) -> (0,1,1,5) -> (7,1,8,5); B (2,2,6,8) -> (1,3,5,8) ->
     * (3,3,7,8); C (5,0,8,1) -> (4,1,7,2) -> (1,1,4,2); D (0,0,1,8) is
     * -1..0 wide: dropped. */
    static const rb_box wb[3] = {{7.0f, 1.0f, 8.0f, 5.0f, 1}, {3.0f, 3.0f, 7.0f, 8.0f, 2}, {1.0f, 1.0f, 4.0f, 2.0f, 3}};

    ck_assert_int_eq(rb_split_apply(&r, s, &o), RB_OK);
    ck_assert_int_eq(rb_split_example_targets(r, 0, &a, seed, 0, mask, boxes, &n), RB_OK);
    expect_mask(mask, want, 64);
    expect_boxes(boxes, n, wb, 3);
    rb_split_destroy(r);
    rb_split_destroy(s);
}
END_TEST

/* Over many draws, without a resize: every mask pixel comes from where its
 * image pixel does, and every box that comes out is valid in the output
 * image. */
START_TEST(targets_follow_pixels_under_any_draw)
{
    rb_split *s = small_split();
    rb_augment a = {.crop = true, .padding = 3, .flip = true};
    int32_t mask[16];
    rb_box boxes[4];
    int64_t n, offsets[2] = {0, 0}, kept = 0;

    for (uint64_t seed = 0; seed < 200; seed++) {
        rb_targets t = {.count = 1, .masks = mask, .mask_height = SIDE, .mask_width = SIDE};
        ck_assert_int_eq(rb_split_example_targets(s, 0, &a, seed, 3, mask, boxes, &n), RB_OK);
        {
            float px[16];
            ck_assert_int_eq(rb_split_example(s, 0, &a, seed, 3, px), RB_OK);
            for (int i = 0; i < 16; i++)
                ck_assert(px[i] == (mask[i] == RB_IGNORE_LABEL ? 0.0f : (float)mask[i] / 255.0f));
        }
        offsets[1] = n;
        t.boxes = boxes;
        t.box_offsets = offsets;
        ck_assert_msg(rb_targets_check(&t, CLASSES, SIDE, SIDE, "draw") == RB_OK, "%s", rb_last_error());
        for (int64_t k = 0; k < n; k++)
            ck_assert(boxes[k].x2 > boxes[k].x1 && boxes[k].y2 > boxes[k].y1);
        kept += n;
    }
    /* Padding 3 of a 4×4 image: some boxes survive, some do not. */
    ck_assert(kept > 0 && kept < 200 * 4);
    rb_split_destroy(s);
}
END_TEST

/* ------------------------------------------------------------ splits */

START_TEST(with_targets_copies_and_leaves_its_input)
{
    unsigned char px[2 * 4] = {0};
    int64_t labels[2] = {0, 1};
    int32_t masks[2 * 4] = {0, 1, 1, 0, 255, 1, 1, 1};
    rb_box boxes[1] = {{0.0f, 0.0f, 2.0f, 1.0f, 1}};
    int64_t offsets[3] = {0, 0, 1};
    rb_targets t = {.count = 2, .masks = masks, .mask_height = 2, .mask_width = 2, .boxes = boxes,
                    .box_offsets = offsets};
    rb_split *plain = NULL, *s = NULL;
    rb_targets got;

    ck_assert_int_eq(rb_split_create(&plain, RB_DTYPE_U8, 2, 1, 2, 2, px, labels, 2, NULL, "pair"), RB_OK);
    ck_assert_msg(rb_split_with_targets(&s, plain, &t) == RB_OK, "%s", rb_last_error());
    masks[0] = 1;
    boxes[0].x1 = 1.0f;
    offsets[1] = 1;
    rb_split_stored_targets(s, &got);
    ck_assert_int_eq(got.count, 2);
    ck_assert_ptr_eq(got.labels, rb_split_labels(s));
    ck_assert_int_eq(got.mask_height, 2);
    ck_assert_int_eq(got.mask_width, 2);
    ck_assert_int_eq(got.masks[0], 0);
    ck_assert_int_eq(got.masks[4], 255);
    ck_assert_int_eq(got.box_offsets[1], 0);
    ck_assert_int_eq(got.box_offsets[2], 1);
    ck_assert(got.boxes[0].x1 == 0.0f && got.boxes[0].x2 == 2.0f && got.boxes[0].label == 1);
    ck_assert_int_eq(rb_split_max_boxes(s), 1);
    ck_assert_str_eq(rb_split_name(s), "pair");
    /* The input has none. */
    rb_split_stored_targets(plain, &got);
    ck_assert_ptr_null(got.masks);
    ck_assert_ptr_null(got.boxes);
    ck_assert_ptr_null(got.box_offsets);
    ck_assert_int_eq(rb_split_max_boxes(plain), 0);

    /* Masks alone replace what a split had; labels equal to the split's pass. */
    {
        rb_split *m = NULL;
        rb_targets only = {.count = 2, .labels = labels, .masks = masks, .mask_height = 2, .mask_width = 2};
        ck_assert_int_eq(rb_split_with_targets(&m, s, &only), RB_OK);
        rb_split_stored_targets(m, &got);
        ck_assert_int_eq(got.masks[0], 1);
        ck_assert_ptr_null(got.box_offsets);
        ck_assert_int_eq(rb_split_max_boxes(m), 0);
        rb_split_destroy(m);
    }
    rb_split_destroy(s);
    rb_split_destroy(plain);
}
END_TEST

START_TEST(bad_targets_for_a_split_are_refused_with_one_line)
{
    unsigned char px[2 * 6] = {0};
    int64_t labels[2] = {0, 1}, other[2] = {0, 0};
    int32_t masks[2 * 6] = {0};
    rb_box boxes[1] = {{0.0f, 0.0f, 2.0f, 1.0f, 1}};
    int64_t offsets[3] = {0, 0, 1};
    rb_split *plain = NULL, *s = NULL, *f = NULL;
    rb_targets t;
    const float feats[2] = {0.5f, 1.5f};

    /* Images of 2 rows × 3 columns. */
    ck_assert_int_eq(rb_split_create(&plain, RB_DTYPE_U8, 2, 1, 2, 3, px, labels, 2, NULL, "pair"), RB_OK);
    t = (rb_targets){.count = 2, .masks = masks, .mask_height = 3, .mask_width = 2};
    expect_error(rb_split_with_targets(&s, plain, &t), RB_ERR_INVALID_ARGUMENT,
                 "pair: masks are 2x3 but the images are 3x2; a mask has one value per pixel");
    ck_assert_ptr_null(s);
    masks[7] = 2;
    t.mask_height = 2;
    t.mask_width = 3;
    expect_error(rb_split_with_targets(&s, plain, &t), RB_ERR_INVALID_ARGUMENT,
                 "pair: mask of image 1 has class 2 at pixel (x 1, y 0), outside [0, 2) and not the ignore label "
                 "255");
    masks[7] = 0;

    t = (rb_targets){.count = 2, .boxes = boxes, .box_offsets = offsets};
    boxes[0] = (rb_box){2.0f, 0.0f, 1.0f, 1.0f, 1};
    expect_error(rb_split_with_targets(&s, plain, &t), RB_ERR_INVALID_ARGUMENT,
                 "pair: box 0 of image 1 is (2, 0, 1, 1): x2 < x1 or y2 < y1; boxes are corners x1, y1, x2, y2");
    boxes[0] = (rb_box){1.0f, 0.0f, 3.5f, 1.0f, 1};
    expect_error(rb_split_with_targets(&s, plain, &t), RB_ERR_INVALID_ARGUMENT,
                 "pair: box 0 of image 1 is (1, 0, 3.5, 1), outside the 3x2 image; corners lie in [0, 3] x [0, 2]");
    boxes[0] = (rb_box){1.0f, 0.0f, 3.0f, 1.0f, 2};
    expect_error(rb_split_with_targets(&s, plain, &t), RB_ERR_INVALID_ARGUMENT,
                 "pair: box 0 of image 1 has class 2, outside [0, 2)");
    boxes[0] = (rb_box){1.0f, 0.0f, 3.0f, 1.0f, 1};

    t.count = 3;
    expect_error(rb_split_with_targets(&s, plain, &t), RB_ERR_INVALID_ARGUMENT,
                 "pair: targets for 3 images, but the split has 2");
    t.count = 2;
    t.labels = other;
    expect_error(rb_split_with_targets(&s, plain, &t), RB_ERR_INVALID_ARGUMENT,
                 "pair: the targets give image 1 label 0 but the split has 1; pass NULL labels to keep the split's");
    t = (rb_targets){.count = 2, .labels = labels};
    expect_error(rb_split_with_targets(&s, plain, &t), RB_ERR_INVALID_ARGUMENT,
                 "pair: the targets hold neither masks nor boxes; labels come with the split");
    expect_error(rb_split_with_targets(&s, plain, NULL), RB_ERR_INVALID_ARGUMENT,
                 "rb_split_with_targets: out, in or targets is NULL");
    ck_assert_ptr_null(s);

    ck_assert_int_eq(rb_split_create_features(&f, 2, 1, feats, labels, 2, NULL, "feats"), RB_OK);
    t = (rb_targets){.count = 2, .boxes = boxes, .box_offsets = offsets};
    expect_error(rb_split_with_targets(&s, f, &t), RB_ERR_INVALID_ARGUMENT,
                 "feats holds features, not images: its targets need the size of the images they refer to "
                 "(mask_height x mask_width)");
    ck_assert_int_eq(rb_split_features_take_targets(f, plain), RB_OK); /* no targets: nothing to take */
    {
        rb_split *three = small_split();
        expect_error(rb_split_features_take_targets(f, three), RB_ERR_INVALID_ARGUMENT,
                     "feats: the targets of small (3 examples) cannot be the targets of its 2 features");
        expect_error(rb_split_features_take_targets(three, f), RB_ERR_INVALID_ARGUMENT,
                     "rb_split_features_take_targets: a feature split and an image split are needed");
        rb_split_destroy(three);
    }

    /* Asking a split for what it lacks. */
    {
        int32_t m[6];
        rb_box b[1];
        int64_t n;
        ck_assert_int_eq(rb_split_with_targets(&s, plain, &t), RB_OK);
        expect_error(rb_split_example_targets(s, 0, NULL, 0, 0, m, NULL, NULL), RB_ERR_INVALID_ARGUMENT,
                     "pair has no masks; rb_split_with_targets attaches them");
        expect_error(rb_split_example_targets(plain, 0, NULL, 0, 0, NULL, b, &n), RB_ERR_INVALID_ARGUMENT,
                     "pair has no boxes; rb_split_with_targets attaches them");
        expect_error(rb_split_example_targets(s, 0, NULL, 0, 0, NULL, b, NULL), RB_ERR_INVALID_ARGUMENT,
                     "rb_split_example_targets: boxes and box_count go together (both NULL or neither)");
        expect_error(rb_split_example_targets(s, 2, NULL, 0, 0, NULL, b, &n), RB_ERR_INVALID_ARGUMENT,
                     "pair: example 2 is out of range [0, 2)");
        expect_error(rb_split_example_targets(s, 0, NULL, 0, INT64_C(1) << 24, NULL, b, &n),
                     RB_ERR_INVALID_ARGUMENT, "epoch 16777216 is out of range [0, 16777216)");
    }
    rb_split_destroy(s);
    rb_split_destroy(f);
    rb_split_destroy(plain);
}
END_TEST

/* Fixed-feature transfer trains a head on cached features against the
 * masks and boxes of the images they came from: the feature split takes
 * them as the images come out (resized here, 4 to 8: the values of
 * resize_scales_boxes_and_picks_nearest_pixels), keeps the images' size
 * whatever its own (1 x 3 x 2 here), and gives them out unmoved by any
 * augmentation, as its features are. */
START_TEST(feature_splits_take_the_images_targets)
{
    rb_split *s = small_split(), *r = NULL, *f = NULL;
    rb_split_options o = {.size = 8};
    const int64_t labels[3] = {0, 1, 2};
    float values[3 * 6] = {0};
    rb_loader_options lo = {.batch_size = 3, .augment = {.crop = true, .padding = 2, .flip = true}, .seed = 5};
    rb_loader *l = NULL;
    rb_batch b;
    rb_targets stored;
    int32_t mask[64];
    rb_box boxes[4];
    int64_t n;

    ck_assert_int_eq(rb_split_apply(&r, s, &o), RB_OK);
    ck_assert_int_eq(rb_split_create_feature_maps(&f, RB_DTYPE_F32, 3, 1, 3, 2, labels, CLASSES, NULL, "cache"),
                     RB_OK);
    ck_assert_int_eq(rb_split_features_write(f, 0, 3, values), RB_OK);
    ck_assert_msg(rb_split_features_take_targets(f, r) == RB_OK, "%s", rb_last_error());
    rb_split_stored_targets(f, &stored);
    ck_assert_int_eq(stored.mask_height, 8);
    ck_assert_int_eq(stored.mask_width, 8);
    ck_assert_int_eq(rb_split_max_boxes(f), 4);
    for (int64_t i = 0; i < 3; i++) {
        int32_t want[64];
        rb_box want_boxes[4];
        int64_t want_n;
        ck_assert_int_eq(rb_split_example_targets(r, i, NULL, 0, 0, want, want_boxes, &want_n), RB_OK);
        ck_assert_int_eq(rb_split_example_targets(f, i, &lo.augment, 77, 3, mask, boxes, &n), RB_OK);
        expect_mask(mask, want, 64);
        expect_boxes(boxes, n, want_boxes, want_n);
    }
    /* 4 to 8: output d reads stored d / 2 (see resize_scales_...). */
    ck_assert_int_eq(mask[0], RB_IGNORE_LABEL); /* example 2 is all ignore */
    ck_assert_int_eq(rb_split_example_targets(f, 0, NULL, 0, 0, mask, boxes, &n), RB_OK);
    ck_assert_int_eq(mask[0], 1);
    ck_assert_int_eq(mask[8 * 7 + 7], 16);
    ck_assert_int_eq(n, 4);
    ck_assert(boxes[1].x2 == 6.0f && boxes[1].y2 == 8.0f);

    /* The loader, augmenting, hands them out as stored, at 8 x 8. */
    ck_assert_int_eq(rb_loader_create(&l, f, &lo), RB_OK);
    ck_assert_int_eq(rb_loader_start_epoch(l, 1), RB_OK);
    ck_assert_int_eq(rb_loader_next(l, &b), RB_OK);
    ck_assert_int_eq(b.count, 3);
    ck_assert_int_eq(b.height, 3);
    ck_assert_int_eq(b.targets.mask_height, 8);
    ck_assert_int_eq(b.targets.mask_width, 8);
    for (int64_t k = 0; k < 3; k++) {
        ck_assert_int_eq(rb_split_example_targets(r, b.indices[k], NULL, 0, 0, mask, boxes, &n), RB_OK);
        expect_mask(b.targets.masks + 64 * k, mask, 64);
        ck_assert_int_eq(b.targets.box_offsets[k + 1] - b.targets.box_offsets[k], n);
    }
    rb_loader_destroy(l);

    /* A copy (rb_split_apply on features) keeps them at the images' size. */
    {
        rb_split *copy = NULL;
        rb_split_options keep = {.per_class = 1, .seed = 3};
        ck_assert_msg(rb_split_apply(&copy, f, &keep) == RB_OK, "%s", rb_last_error());
        ck_assert_int_eq(rb_split_example_targets(copy, 1, NULL, 0, 0, mask, NULL, NULL), RB_OK);
        for (int i = 0; i < 64; i++)
            ck_assert_int_eq(mask[i], 0); /* example 1's mask is all background */
        rb_split_destroy(copy);
    }
    rb_split_destroy(f);
    rb_split_destroy(r);
    rb_split_destroy(s);
}
END_TEST

START_TEST(subsets_carry_their_examples_targets)
{
    /* Six 2×2 examples of classes 0,1,0,1,0,1; example i's mask is all
     * i % 2 with pixel 0 set to 255 when i >= 3, and it has i boxes
     * (0, 0, 1 + i/8, 1, i % 2). */
    enum { N = 6 };
    unsigned char px[N * 4] = {0};
    int64_t labels[N];
    int32_t masks[N * 4];
    rb_box boxes[15];
    int64_t offsets[N + 1] = {0};
    rb_targets t = {.count = N, .masks = masks, .mask_height = 2, .mask_width = 2, .boxes = boxes,
                    .box_offsets = offsets};
    rb_split *plain = NULL, *s = NULL, *sub = NULL;
    rb_split_options o = {.per_class = 2, .seed = 7};

    for (int i = 0; i < N; i++) {
        labels[i] = i % 2;
        for (int p = 0; p < 4; p++)
            masks[i * 4 + p] = p == 0 && i >= 3 ? 255 : i % 2;
        offsets[i + 1] = offsets[i] + i;
        for (int64_t k = offsets[i]; k < offsets[i + 1]; k++)
            boxes[k] = (rb_box){0.0f, 0.0f, 1.0f + (float)i / 8.0f, 1.0f, i % 2};
    }
    ck_assert_int_eq(rb_split_create(&plain, RB_DTYPE_U8, N, 1, 2, 2, px, labels, 2, NULL, "six"), RB_OK);
    ck_assert_int_eq(rb_split_with_targets(&s, plain, &t), RB_OK);
    ck_assert_int_eq(rb_split_max_boxes(s), 5);
    ck_assert_msg(rb_split_apply(&sub, s, &o) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_count(sub), 4);
    {
        rb_targets got;
        const int64_t *src = rb_split_source_indices(sub);
        int64_t most = 0;
        rb_split_stored_targets(sub, &got);
        ck_assert_int_eq(got.box_offsets[0], 0);
        for (int64_t j = 0; j < 4; j++) {
            const int64_t i = src[j];
            ck_assert_int_eq(got.box_offsets[j + 1] - got.box_offsets[j], i);
            for (int64_t k = got.box_offsets[j]; k < got.box_offsets[j + 1]; k++)
                ck_assert(got.boxes[k].x2 == 1.0f + (float)i / 8.0f && got.boxes[k].label == i % 2);
            for (int p = 0; p < 4; p++)
                ck_assert_int_eq(got.masks[j * 4 + p], masks[i * 4 + p]);
            most = i > most ? i : most;
        }
        ck_assert_int_eq(rb_split_max_boxes(sub), most);
        ck_assert_msg(rb_targets_check(&got, 2, 2, 2, "subset") == RB_OK, "%s", rb_last_error());
    }
    rb_split_destroy(sub);

    /* Classes kept in order pass; a relabelling list is refused, since
     * masks and boxes hold class numbers too. */
    o = (rb_split_options){.classes = "0-1"};
    ck_assert_int_eq(rb_split_apply(&sub, s, &o), RB_OK);
    rb_split_destroy(sub);
    o.classes = "1";
    expect_error(rb_split_apply(&sub, s, &o), RB_ERR_UNSUPPORTED,
                 "six has masks or boxes, whose classes a class list ('1') would have to relabel; keep every class "
                 "in order, or select examples with per_class");
    ck_assert_ptr_null(sub);
    rb_split_destroy(s);
    rb_split_destroy(plain);
}
END_TEST

/* ------------------------------------------------------------ loader */

/* Runs two epochs of `s` with `threads` workers and checks that every
 * batch carries exactly what rb_split_example_targets gives for its
 * examples, and valid targets. Returns a digest of everything seen. */
static uint64_t run_loader(const rb_split *s, int threads, const rb_augment *a)
{
    rb_loader_options lo = {.batch_size = 2, .shuffle = true, .threads = threads, .seed = 11};
    rb_loader *l = NULL;
    uint64_t digest = 1469598103934665603u;
    int channels, height, width;
    rb_targets stored;
    const int64_t most = rb_split_max_boxes(s);
    int32_t *mask;
    rb_box *boxes = malloc((size_t)(most > 0 ? most : 1) * sizeof *boxes);

    rb_split_shape(s, &channels, &height, &width);
    rb_split_stored_targets(s, &stored);
    mask = malloc((size_t)height * (size_t)width * sizeof *mask);
    ck_assert_ptr_nonnull(mask);
    ck_assert_ptr_nonnull(boxes);
    lo.augment = *a;
    ck_assert_int_eq(rb_loader_create(&l, s, &lo), RB_OK);
    for (int64_t epoch = 0; epoch < 2; epoch++) {
        rb_batch b;
        ck_assert_int_eq(rb_loader_start_epoch(l, epoch), RB_OK);
        while (rb_loader_next(l, &b) == RB_OK && b.count > 0) {
            const size_t plane = (size_t)height * (size_t)width;
            ck_assert_int_eq(b.targets.count, b.count);
            ck_assert_ptr_eq(b.targets.labels, b.labels);
            ck_assert_msg(rb_targets_check(&b.targets, rb_split_classes(s), height, width, "batch") == RB_OK, "%s",
                          rb_last_error());
            if (stored.masks == NULL) {
                ck_assert_ptr_null(b.targets.masks);
            } else {
                ck_assert_ptr_nonnull(b.targets.masks);
                ck_assert_int_eq(b.targets.mask_height, height);
                ck_assert_int_eq(b.targets.mask_width, width);
            }
            if (stored.box_offsets == NULL) {
                ck_assert_ptr_null(b.targets.boxes);
                ck_assert_ptr_null(b.targets.box_offsets);
            } else {
                ck_assert_int_eq(b.targets.box_offsets[0], 0);
            }
            for (int64_t k = 0; k < b.count; k++) {
                int64_t n = 0;
                ck_assert_int_eq(rb_split_example_targets(s, b.indices[k], a, lo.seed, epoch,
                                                          stored.masks ? mask : NULL,
                                                          stored.box_offsets ? boxes : NULL,
                                                          stored.box_offsets ? &n : NULL),
                                 RB_OK);
                if (stored.masks != NULL) {
                    ck_assert_int_eq(memcmp(b.targets.masks + (size_t)k * plane, mask, plane * sizeof *mask), 0);
                    for (size_t p = 0; p < plane; p++)
                        digest = (digest ^ (uint64_t)(uint32_t)mask[p]) * 1099511628211u;
                }
                if (stored.box_offsets != NULL) {
                    const rb_box *got = b.targets.boxes + b.targets.box_offsets[k];
                    ck_assert_int_eq(b.targets.box_offsets[k + 1] - b.targets.box_offsets[k], n);
                    ck_assert_int_eq(memcmp(got, boxes, (size_t)n * sizeof *boxes), 0);
                    digest = (digest ^ (uint64_t)n) * 1099511628211u;
                    for (int64_t j = 0; j < n; j++) {
                        uint32_t bits;
                        memcpy(&bits, &got[j].x1, sizeof bits);
                        digest = (digest ^ bits) * 1099511628211u;
                    }
                }
                digest = (digest ^ (uint64_t)b.indices[k]) * 1099511628211u;
            }
        }
    }
    rb_loader_destroy(l);
    free(mask);
    free(boxes);
    return digest;
}

START_TEST(loader_batches_carry_the_examples_targets)
{
    rb_split *s = small_split(), *r = NULL;
    rb_augment a = {.crop = true, .padding = 2, .flip = true}, none = {0};
    rb_split_options o = {.size = 6};
    uint64_t d0 = run_loader(s, 0, &a);
    ck_assert(run_loader(s, 2, &a) == d0);
    ck_assert(run_loader(s, 3, &a) == d0);
    ck_assert(run_loader(s, 0, &none) != d0);
    ck_assert_int_eq(rb_split_apply(&r, s, &o), RB_OK);
    d0 = run_loader(r, 0, &a);
    ck_assert(run_loader(r, 2, &a) == d0);
    rb_split_destroy(r);
    rb_split_destroy(s);
}
END_TEST

START_TEST(loader_without_targets_leaves_masks_and_boxes_null)
{
    unsigned char px[3 * 4] = {0};
    int64_t labels[3] = {2, 0, 1};
    rb_split *plain = NULL;
    rb_loader *l = NULL;
    rb_loader_options lo = {.batch_size = 2};
    rb_batch b;

    ck_assert_int_eq(rb_split_create(&plain, RB_DTYPE_U8, 3, 1, 2, 2, px, labels, 3, NULL, "plain"), RB_OK);
    ck_assert_int_eq(rb_loader_create(&l, plain, &lo), RB_OK);
    ck_assert_int_eq(rb_loader_start_epoch(l, 0), RB_OK);
    ck_assert_int_eq(rb_loader_next(l, &b), RB_OK);
    ck_assert_int_eq(b.targets.count, 2);
    ck_assert_ptr_eq(b.targets.labels, b.labels);
    ck_assert_int_eq(b.targets.labels[0], 2);
    ck_assert_ptr_null(b.targets.masks);
    ck_assert_int_eq(b.targets.mask_height, 0);
    ck_assert_ptr_null(b.targets.boxes);
    ck_assert_ptr_null(b.targets.box_offsets);
    ck_assert_int_eq(rb_loader_next(l, &b), RB_OK);
    ck_assert_int_eq(b.targets.count, 1);
    ck_assert_int_eq(rb_loader_next(l, &b), RB_OK);
    ck_assert_int_eq(b.count, 0);
    ck_assert_int_eq(b.targets.count, 0);
    rb_loader_destroy(l);
    rb_split_destroy(plain);
}
END_TEST

/* The batch's targets go to the engine as they are: a per-pixel
 * cross-entropy over a 1×1 convolution's logits, fed the loader's masks,
 * gives the mean over non-ignored pixels of logsumexp(logits) - logit[mask]
 * computed here in double from the logits the engine read. */
START_TEST(batch_targets_feed_the_engine)
{
    rb_split *s = small_split();
    rb_graph *g = NULL;
    rb_node *in = NULL, *logits = NULL, *masks = NULL, *loss = NULL;
    rb_conv_desc conv = {.out_channels = CLASSES, .kernel = {1, 1}, .stride = {1, 1}, .dilation = {1, 1},
                         .groups = 1, .bias = true};
    rb_engine *e = NULL;
    rb_loader *l = NULL;
    rb_loader_options lo = {.batch_size = 3, .augment = {.crop = true, .padding = 1, .flip = true}, .seed = 5};
    rb_batch b;
    float out[3 * CLASSES * SIDE * SIDE];
    double sum = 0.0;
    int64_t counted = 0;

    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 1, SIDE, SIDE, NULL, NULL, &in), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "head", in, &conv, &logits), RB_OK);
    ck_assert_int_eq(rb_graph_target(g, RB_TARGET_MASKS, &masks), RB_OK);
    ck_assert_int_eq(rb_graph_pixel_cross_entropy(g, logits, masks, RB_IGNORE_LABEL, &loss), RB_OK);
    ck_assert_int_eq(rb_graph_init_params(g, 3), RB_OK);
    ck_assert_msg(rb_engine_create(&e, g, 3, NULL) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_loader_create(&l, s, &lo), RB_OK);
    ck_assert_int_eq(rb_loader_start_epoch(l, 0), RB_OK);
    ck_assert_int_eq(rb_loader_next(l, &b), RB_OK);
    ck_assert_int_eq(b.count, 3);
    ck_assert_msg(rb_engine_forward_targets(e, b.images, b.count, &b.targets, true) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_engine_read(e, logits, out), RB_OK);
    for (int64_t n = 0; n < 3; n++)
        for (int p = 0; p < SIDE * SIDE; p++) {
            const int32_t m = b.targets.masks[n * SIDE * SIDE + p];
            double most = -INFINITY, z = 0.0;
            if (m == RB_IGNORE_LABEL)
                continue;
            for (int k = 0; k < CLASSES; k++)
                most = fmax(most, out[(n * CLASSES + k) * SIDE * SIDE + p]);
            for (int k = 0; k < CLASSES; k++)
                z += exp(out[(n * CLASSES + k) * SIDE * SIDE + p] - most);
            sum += most + log(z) - out[(n * CLASSES + m) * SIDE * SIDE + p];
            counted++;
        }
    ck_assert(counted > 0);
    /* fp32 logsumexp over 17 classes of logits near 1 against the same in
     * double: a few ulps of values near log(17) ~ 2.8. */
    ck_assert_msg(fabs(rb_engine_mean_loss(e) - sum / (double)counted) < 1e-5, "engine %.9g, here %.9g",
                  rb_engine_mean_loss(e), sum / (double)counted);
    rb_loader_destroy(l);
    rb_engine_destroy(e);
    rb_graph_destroy(g);
    rb_split_destroy(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("targets");
    TCase *check = tcase_create("check");
    TCase *moves = tcase_create("moves");
    TCase *splits = tcase_create("splits");
    TCase *loader = tcase_create("loader");

    tcase_add_test(check, check_accepts_good_targets);
    tcase_add_test(check, check_refuses_labels_and_masks_with_one_line);
    tcase_add_test(check, check_refuses_box_offsets_with_one_line);
    tcase_add_test(check, check_refuses_boxes_with_one_line);
    suite_add_tcase(s, check);
    tcase_add_test(moves, unaugmented_targets_are_the_stored_ones);
    tcase_add_test(moves, flip_mirrors_masks_and_boxes);
    tcase_add_test(moves, crop_shifts_clips_and_drops);
    tcase_add_test(moves, crop_then_flip_as_the_pixels);
    tcase_add_test(moves, resize_scales_boxes_and_picks_nearest_pixels);
    tcase_add_test(moves, resize_crop_and_flip_combined);
    tcase_add_test(moves, targets_follow_pixels_under_any_draw);
    suite_add_tcase(s, moves);
    tcase_add_test(splits, with_targets_copies_and_leaves_its_input);
    tcase_add_test(splits, bad_targets_for_a_split_are_refused_with_one_line);
    tcase_add_test(splits, subsets_carry_their_examples_targets);
    tcase_add_test(splits, feature_splits_take_the_images_targets);
    suite_add_tcase(s, splits);
    tcase_add_test(loader, loader_batches_carry_the_examples_targets);
    tcase_add_test(loader, loader_without_targets_leaves_masks_and_boxes_null);
    tcase_add_test(loader, batch_targets_feed_the_engine);
    suite_add_tcase(s, loader);
    return run_suite(s);
}
