/* FCOS, the detect task's core (plugins/task/fcos.c and fcos_decode.c,
 * compiled in): the assignment of points to boxes, the loss and decoding,
 * on cases worked out by hand, and the loss's gradient by finite
 * differences (rb_host_op_check). tests/check_detect.c checks the plugin
 * built on it; tests/torch-detect-parity.sh compares all three with
 * torchvision's FCOS. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/robusta.h>

#include "fcos.h"
#include "fcosutil.h"
#include "testutil.h"

/* ------------------------------------------------------------ assignment */

/* A 128 x 128 image: level 0 has 16 x 16 points (x, y) = (8j, 8i), level 1
 * 8 x 8 points (16j, 16i). Three boxes:
 *
 *   A (4, 4, 28, 20), class 0: centre (16, 12), area 384.
 *     Level 0 (centre region |dx|, |dy| < 1.5 x 8 = 12; largest edge
 *     distance in (0, 64)): x in {8, 16, 24} (strictly inside (4, 28) and
 *     within 12 of 16), y in {8, 16} (inside (4, 20), within 12 of 12; y = 0
 *     and 24 are 12 away, not less). At (24, 16): l 20, t 12, r 4, b 4, so
 *     max 20 < 64. Six points. Level 1 (range (64, inf)): its distances are
 *     all under 64, none.
 *   B (8, 8, 120, 104), class 1: centre (64, 56), area 10752.
 *     Level 1 (region < 24): x in {48, 64, 80}, y in {48, 64}. The largest
 *     distance must exceed 64: (48, 48) has r = 72, (80, 48) l = 72,
 *     (48, 64) r = 72, (80, 64) l = 72, but (64, 48) and (64, 64) have 56.
 *     Four points. Level 0 (region < 12): x in {56, 64, 72}, y in {48, 56,
 *     64}; x = 56 has r = 64 and x = 72 has l = 64, not under 64 (nor over
 *     64 on level 1: a distance of exactly 64 belongs to no level), so
 *     only x = 64: (64, 48), (64, 56), (64, 64) qualify, and C takes them.
 *   C (56, 40, 72, 72), class 2: centre (64, 56), area 512, inside B.
 *     Level 0: x = 64 alone is strictly inside (56, 72); y in {48, 56, 64};
 *     largest distances 24, 16, 24. Three points, each also B's: the
 *     smaller box wins. Level 1: none (all under 64).
 * A's points are not B's: x = 8 or y = 8 lie on B's edge (a distance of
 * 0), and (16, 16) is 48 from B's centre. */
static const rb_box hand_boxes[3] = {{4, 4, 28, 20, 0}, {8, 8, 120, 104, 1}, {56, 40, 72, 72, 2}};

typedef struct hand_point {
    int level;
    float x, y;
    int64_t box;
} hand_point;

static const hand_point hand_positives[] = {
    {0, 8, 8, 0},   {0, 16, 8, 0},  {0, 24, 8, 0},  {0, 8, 16, 0},  {0, 16, 16, 0}, {0, 24, 16, 0}, {0, 64, 48, 2},
    {0, 64, 56, 2}, {0, 64, 64, 2}, {1, 48, 48, 1}, {1, 80, 48, 1}, {1, 48, 64, 1}, {1, 80, 64, 1}};

START_TEST(points_are_assigned_as_worked_out_by_hand)
{
    int64_t shapes[FCOS_OUTPUTS][3], k;
    fcos_level lv[FCOS_LEVELS];
    size_t found = 0;
    fcos_shapes(3, 128, shapes);
    ck_assert_int_eq(fcos_levels((const int64_t(*)[3])shapes, FCOS_OUTPUTS, 8, "test", &k, lv), RB_OK);
    ck_assert_int_eq(k, 3);
    ck_assert(lv[0].height == 16 && lv[0].width == 16 && lv[0].stride == 8 && lv[0].lower == 0 && lv[0].upper == 64);
    ck_assert(lv[1].height == 8 && lv[1].width == 8 && lv[1].stride == 16 && lv[1].lower == 64 &&
              isinf(lv[1].upper));
    for (int l = 0; l < FCOS_LEVELS; l++)
        for (int64_t i = 0; i < lv[l].height; i++)
            for (int64_t j = 0; j < lv[l].width; j++) {
                float x = (float)j * lv[l].stride, y = (float)i * lv[l].stride;
                int64_t got = fcos_match(&lv[l], x, y, hand_boxes, 3), want = -1;
                for (size_t p = 0; p < sizeof hand_positives / sizeof hand_positives[0]; p++)
                    if (hand_positives[p].level == l && hand_positives[p].x == x && hand_positives[p].y == y)
                        want = hand_positives[p].box;
                ck_assert_msg(got == want, "level %d point (%g, %g): box %lld, want %lld", l, (double)x, (double)y,
                              (long long)got, (long long)want);
                found += got >= 0;
            }
    ck_assert_uint_eq(found, sizeof hand_positives / sizeof hand_positives[0]);
}
END_TEST

/* Point (16, 104) of level 0 lies in each of these (strictly inside, within
 * 12 of each centre, largest distance under 64). torch picks the largest
 * 1e8 - area in float32, where floats near 1e8 are 8 apart:
 *   D (2, 90, 26, 114)  area 576: 1e8 - 576 = 99999424, a float;
 *   E (6, 94, 30, 118)  area 576: the same key;
 *   F (6, 94, 28, 120)  area 572: 99999428, halfway between 99999424 and
 *                       99999432, rounds to even: 99999424, a tie with D;
 *   G (6, 94, 26, 122)  area 560: 99999440, a float, larger. */
START_TEST(the_smallest_box_wins_and_float32_ties_go_to_the_first)
{
    const fcos_level lv = {16, 16, 8, 0, 64};
    const rb_box d = {2, 90, 26, 114, 0}, e = {6, 94, 30, 118, 1}, f = {6, 94, 28, 120, 2}, g = {6, 94, 26, 122, 3};
    rb_box two[2];
    two[0] = d, two[1] = e;
    ck_assert_int_eq(fcos_match(&lv, 16, 104, two, 2), 0);
    two[0] = e, two[1] = d;
    ck_assert_int_eq(fcos_match(&lv, 16, 104, two, 2), 0);
    two[0] = d, two[1] = f; /* F is smaller, but its key rounds to D's */
    ck_assert_int_eq(fcos_match(&lv, 16, 104, two, 2), 0);
    two[0] = f, two[1] = d;
    ck_assert_int_eq(fcos_match(&lv, 16, 104, two, 2), 0);
    two[0] = d, two[1] = g; /* G's key is larger: the smaller box wins */
    ck_assert_int_eq(fcos_match(&lv, 16, 104, two, 2), 1);
    ck_assert_int_eq(fcos_match(&lv, 16, 104, &g, 1), 0);
    ck_assert_int_eq(fcos_match(&lv, 16, 104, &g, 0), -1); /* no boxes: background */
}
END_TEST

START_TEST(the_centerness_target_is_the_square_root_of_the_two_ratios)
{
    /* A's point (24, 16): l 20, t 12, r 4, b 4: sqrt(4/20 * 4/12) */
    ck_assert(fabs(fcos_centerness(20, 12, 4, 4) - sqrt(1.0 / 15.0)) < 1e-15);
    ck_assert(fcos_centerness(5, 7, 5, 7) == 1.0); /* the centre */
}
END_TEST

/* ------------------------------------------------------------ the loss */

/* The loss of `batch` images of size x size with boxes, the outputs given
 * by fill(output index, value index), through the host op's callbacks as
 * the engine calls them; writes the per-image values. */
typedef float (*fill_fn)(int output, int64_t index, void *user);

static rb_status run_loss(int64_t k, int64_t size, int64_t batch, const rb_targets *t, fill_fn fill, void *user,
                          float *values, float **grads)
{
    int64_t shapes[FCOS_OUTPUTS][3];
    float *inputs[FCOS_OUTPUTS];
    double state[4] = {0};
    rb_host_op op;
    rb_host_io io;
    float og[16];
    rb_status s;
    fcos_shapes(k, size, shapes);
    ck_assert_int_eq(fcos_loss_op(&op, 8), RB_OK);
    ck_assert(op.loss && op.state_bytes <= sizeof state && batch <= 16);
    for (int o = 0; o < FCOS_OUTPUTS; o++) {
        int64_t n = batch * shapes[o][0] * shapes[o][1] * shapes[o][2];
        inputs[o] = malloc((size_t)n * sizeof(float));
        ck_assert_ptr_nonnull(inputs[o]);
        for (int64_t i = 0; i < n; i++)
            inputs[o][i] = fill(o, i, user);
        if (grads != NULL)
            ck_assert_ptr_nonnull(grads[o] = calloc((size_t)n, sizeof(float)));
    }
    for (int64_t b = 0; b < batch; b++)
        og[b] = 1.0f / (float)batch;
    io = (rb_host_io){.batch = batch, .n_inputs = FCOS_OUTPUTS, .inputs = (const float *const *)inputs,
                      .shapes = (const int64_t(*)[3])shapes, .output = values, .targets = t, .training = true,
                      .output_grad = og, .input_grads = grads, .state = state};
    s = op.forward(&io, op.user);
    if (s == RB_OK && grads != NULL)
        s = op.backward(&io, op.user);
    for (int o = 0; o < FCOS_OUTPUTS; o++)
        free(inputs[o]);
    return s;
}

/* Logits 0 everywhere; box regression 1, except, with `user` not NULL, at
 * A's six points of image 0, where it decodes to A itself: (x - 4) / 8,
 * (y - 4) / 8, (28 - x) / 8, (20 - y) / 8, exact in binary. */
static float logits_zero(int output, int64_t index, void *user)
{
    const int64_t hw = 16 * 16, q = index % hw, c = index / hw % 4;
    float x = (float)(q % 16) * 8, y = (float)(q / 16) * 8;
    if (output % FCOS_PER_LEVEL != 1)
        return 0.0f;
    if (user == NULL || output != 1 || index >= 4 * hw || !(x > 4 && x < 28 && y > 4 && y < 20))
        return 1.0f;
    return c == 0 ? (x - 4) / 8 : c == 1 ? (y - 4) / 8 : c == 2 ? (28 - x) / 8 : (20 - y) / 8;
}

/* Two 128 x 128 images, one class: image 0 holds A alone, image 1 nothing.
 * 16 x 16 + 8 x 8 = 320 points per image; image 0 has A's 6 foreground
 * points, so the divisor is 6. With every logit 0, p = 1/2 and BCE = ln 2:
 *   focal, background (t = 0): alpha_t 0.75, (1 - p_t)^2 = 1/4: 0.1875 ln 2;
 *   focal, foreground (t = 1): alpha_t 0.25: 0.0625 ln 2;
 *   GIoU: the decoded box is A: 1 - 384 / (384 + 1e-7), 2.6e-10 per point;
 *   centerness BCE: ln 2 per foreground point.
 * Image 0: (314 x 0.1875 + 6 x 0.0625 + 6) ln 2 = 65.25 ln 2 (+ 1.6e-9);
 * image 1: 320 x 0.1875 ln 2 = 60 ln 2. Each value is its share of the
 * batch's loss times the batch size 2: 65.25 ln 2 / 3 = 21.75 ln 2 and
 * 20 ln 2 (their mean, 125.25 ln 2 / 6, is the batch's loss). */
START_TEST(the_loss_of_a_hand_worked_batch)
{
    static const int64_t offsets[3] = {0, 1, 1};
    rb_targets t = {.count = 2, .boxes = hand_boxes, .box_offsets = offsets};
    float values[2];
    ck_assert_msg(run_loss(1, 128, 2, &t, logits_zero, (void *)1, values, NULL) == RB_OK, "%s", rb_last_error());
    /* float32 values near 15: within a few units in the last place (1e-6) */
    ck_assert_msg(fabs(values[0] - 21.75 * M_LN2) < 4e-6, "image 0: %.9g, want %.9g", values[0], 21.75 * M_LN2);
    ck_assert_msg(fabs(values[1] - 20.0 * M_LN2) < 4e-6, "image 1: %.9g, want %.9g", values[1], 20.0 * M_LN2);
}
END_TEST

/* The GIoU term: one 128 x 128 image with A, every logit 0 and every
 * regression value 1, so that A's points (x, y) decode to (x - 8, y - 8,
 * x + 8, y + 8), against A (4, 4, 28, 20) of area 384:
 *   (8, 8):   (0, 0, 16, 16)   I 12 x 12 = 144, U 256 + 384 - 144 = 496, C 28 x 20 = 560
 *   (16, 8):  (8, 0, 24, 16)   I 16 x 12 = 192, U 448, C 24 x 20 = 480
 *   (24, 8):  (16, 0, 32, 16)  I 12 x 12 = 144, U 496, C 28 x 20 = 560
 *   (8, 16):  (0, 8, 16, 24)   I 144, U 496, C 560
 *   (16, 16): (8, 8, 24, 24)   I 192, U 448, C 480
 *   (24, 16): (16, 8, 32, 24)  I 144, U 496, C 560
 * each 1 - I/U + (C - U)/C; the focal and centerness terms as above
 * (65.25 ln 2), all divided by the 6 foreground points (batch 1). */
START_TEST(the_giou_term_on_hand_worked_boxes)
{
    static const int64_t offsets[2] = {0, 1};
    rb_targets t = {.count = 1, .boxes = hand_boxes, .box_offsets = offsets};
    float values[1];
    double giou = 4 * (1 - 144.0 / 496 + (560.0 - 496) / 560) + 2 * (1 - 192.0 / 448 + (480.0 - 448) / 480);
    double want = (65.25 * M_LN2 + giou) / 6;
    ck_assert_msg(run_loss(1, 128, 1, &t, logits_zero, NULL, values, NULL) == RB_OK, "%s", rb_last_error());
    ck_assert_msg(fabs(values[0] - want) < 2e-6, "%.9g, want %.9g", values[0], want);
}
END_TEST

/* The loss's gradient against finite differences, with inputs drawn in
 * [-1, 1] by rb_host_op_check: two 128 x 128 images, three classes, the
 * three boxes of the hand-worked case on image 0 and one on image 1 (its
 * level-1 points included). The loss is smooth except where the
 * regression's boxes cross the targets' edges (max and min switch) or
 * turn empty; a step of 1e-2 crosses such a kink only where a value lies
 * within 1e-2 of one, which for this seed none of the ~8000 values
 * checked does (another seed may land on one: a kink is no error). The
 * float32 losses (about 10, rounded to 1e-6) over a step of 2e-2 leave
 * 1e-4 of noise, so 1e-3 is the bound, as graph.h suggests. */
START_TEST(the_loss_gradient_matches_finite_differences)
{
    static const rb_box boxes[4] = {{4, 4, 28, 20, 0}, {8, 8, 120, 104, 1}, {56, 40, 72, 72, 2}, {20, 30, 100, 110, 1}};
    static const int64_t offsets[3] = {0, 3, 4};
    rb_targets t = {.count = 2, .boxes = boxes, .box_offsets = offsets};
    int64_t shapes[FCOS_OUTPUTS][3];
    rb_host_op op;
    double err = -1;
    fcos_shapes(3, 128, shapes);
    ck_assert_int_eq(fcos_loss_op(&op, 8), RB_OK);
    ck_assert_msg(rb_host_op_check(&op, (const int64_t(*)[3])shapes, FCOS_OUTPUTS, 2, &t, 5, 1e-3, &err) == RB_OK,
                  "%s", rb_last_error());
    ck_assert(err >= 0 && err <= 1e-3);
}
END_TEST

/* What the loss refuses: a batch without boxes, a class outside the
 * logits', outputs that do not fit together. */
START_TEST(the_loss_refuses_bad_targets_and_shapes)
{
    static const rb_box bad[1] = {{4, 4, 28, 20, 3}};
    static const int64_t offsets[3] = {0, 0, 1};
    rb_targets none = {.count = 2}, t = {.count = 2, .boxes = bad, .box_offsets = offsets}, short_t = t;
    int64_t shapes[FCOS_OUTPUTS][3], k;
    fcos_level lv[FCOS_LEVELS];
    float values[2];
    expect_error(run_loss(3, 64, 2, &none, logits_zero, NULL, values, NULL), RB_ERR_INVALID_ARGUMENT,
                 "detect loss: the batch carries no boxes; detection trains on data with box targets");
    expect_error(run_loss(3, 64, 2, &t, logits_zero, NULL, values, NULL), RB_ERR_INVALID_ARGUMENT,
                 "detect loss: box 0 of image 1 of the batch has class 3, outside the head's 3 classes");
    short_t.count = 1;
    expect_error(run_loss(3, 64, 2, &short_t, logits_zero, NULL, values, NULL), RB_ERR_INVALID_ARGUMENT,
                 "detect loss: the batch has 2 images but boxes for 1");
    fcos_shapes(3, 64, shapes);
    shapes[4][0] = 2; /* level 1's regression */
    expect_error(fcos_levels((const int64_t(*)[3])shapes, FCOS_OUTPUTS, 8, "detect loss", &k, lv),
                 RB_ERR_INVALID_ARGUMENT,
                 "detect loss: level 1: the box regression output is 2x4x4; it must be 4x4x4 (4 channel(s) at the "
                 "size of the level's class logits)");
    fcos_shapes(3, 64, shapes);
    shapes[5][2] = 3; /* level 1's centerness */
    expect_error(fcos_levels((const int64_t(*)[3])shapes, FCOS_OUTPUTS, 8, "x", &k, lv), RB_ERR_INVALID_ARGUMENT,
                 "x: level 1: the centerness output is 1x4x3; it must be 1x4x4 (1 channel(s) at the size of the "
                 "level's class logits)");
    expect_error(fcos_levels((const int64_t(*)[3])shapes, 5, 8, "x", &k, lv), RB_ERR_INVALID_ARGUMENT,
                 "x: 5 raw outputs; FCOS has 6 (class logits, box regression and centerness on each of 2 levels)");
}
END_TEST

/* ------------------------------------------------------------ decode */

typedef struct decoded {
    rb_box boxes[2 * RB_TASK_MAX_DETECTIONS];
    float scores[2 * RB_TASK_MAX_DETECTIONS];
    int64_t counts[2];
    rb_predictions p;
} decoded;

static rb_status raw_decode(raw *r, double threshold, double nms, decoded *d)
{
    fcos_decode_options o = {.score_threshold = threshold, .nms_threshold = nms, .height = r->size, .width = r->size};
    memset(d, 0, sizeof *d);
    d->p = (rb_predictions){.count = r->rows, .boxes = d->boxes, .scores = d->scores, .box_counts = d->counts,
                            .max_boxes = RB_TASK_MAX_DETECTIONS};
    ck_assert(r->rows <= 2);
    return fcos_decode(&o, (const float *const *)r->out, (const int64_t(*)[3])r->shapes, FCOS_OUTPUTS, r->rows, &d->p);
}

static void expect_box(const decoded *d, int64_t row, int64_t n, float x1, float y1, float x2, float y2, int64_t label,
                       double score)
{
    const rb_box *b = &d->boxes[row * RB_TASK_MAX_DETECTIONS + n];
    float s = d->scores[row * RB_TASK_MAX_DETECTIONS + n];
    ck_assert_msg(b->x1 == x1 && b->y1 == y1 && b->x2 == x2 && b->y2 == y2 && b->label == label,
                  "image %lld box %lld: (%g, %g, %g, %g) class %lld, want (%g, %g, %g, %g) class %lld", (long long)row,
                  (long long)n, (double)b->x1, (double)b->y1, (double)b->x2, (double)b->y2, (long long)b->label,
                  (double)x1, (double)y1, (double)x2, (double)y2, (long long)label);
    /* the score went through log, sigmoid and sqrt in float32 */
    ck_assert_msg(fabs(s - score) < 1e-6, "image %lld box %lld: score %.9g, want %.9g", (long long)row, (long long)n,
                  (double)s, score);
}

/* A 64 x 64 image, two classes (level 0: 8 x 8 points 8 apart, level 1:
 * 4 x 4 points 16 apart):
 *   a  level 0 (8, 8), class 0, 0.9, regression 1: (0, 0, 16, 16);
 *   b  level 0 (16, 8), class 0, 0.8, regression (1.75, 1, 0.25, 1):
 *      (2, 0, 18, 16), IoU with a 14 x 16 / (256 + 256 - 224) = 0.78 > 0.6:
 *      suppressed;
 *   c  the same point, class 1, 0.7: the same box, another class: kept;
 *   d  level 0 (32, 32), class 0, 0.5: (24, 24, 40, 40), apart: kept;
 *   e  level 0 (48, 48), class 0, 0.15: under the threshold 0.2;
 *   f  level 1 (48, 48), class 1, 0.85, regression (1, 1, 2, 2) x 16:
 *      (32, 32, 80, 80), clipped to (32, 32, 64, 64): kept.
 * Kept, best first: a, f, c, d. With an IoU threshold of 0.8, b stays.
 * Image 1 of the batch has no point over the threshold. */
START_TEST(decode_suppresses_overlaps_within_a_class_only)
{
    raw r;
    decoded d;
    raw_init(&r, 2, 64, 2);
    raw_point(&r, 0, 0, 1, 1, 0, 0.9, 1, 1, 1, 1);
    raw_point(&r, 0, 0, 1, 2, 0, 0.8, 1.75f, 1, 0.25f, 1);
    raw_point(&r, 0, 0, 1, 2, 1, 0.7, 1.75f, 1, 0.25f, 1);
    raw_point(&r, 0, 0, 4, 4, 0, 0.5, 1, 1, 1, 1);
    raw_point(&r, 0, 0, 6, 6, 0, 0.15, 1, 1, 1, 1);
    raw_point(&r, 0, 1, 3, 3, 1, 0.85, 1, 1, 2, 2);
    ck_assert_msg(raw_decode(&r, FCOS_SCORE_THRESHOLD, FCOS_NMS_THRESHOLD, &d) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(d.counts[0], 4);
    expect_box(&d, 0, 0, 0, 0, 16, 16, 0, 0.9);
    expect_box(&d, 0, 1, 32, 32, 64, 64, 1, 0.85);
    expect_box(&d, 0, 2, 2, 0, 18, 16, 1, 0.7);
    expect_box(&d, 0, 3, 24, 24, 40, 40, 0, 0.5);
    ck_assert_int_eq(d.counts[1], 0);
    /* a looser suppression keeps b, between f and c */
    ck_assert_int_eq(raw_decode(&r, FCOS_SCORE_THRESHOLD, 0.8, &d), RB_OK);
    ck_assert_int_eq(d.counts[0], 5);
    expect_box(&d, 0, 2, 2, 0, 18, 16, 0, 0.8);
    expect_box(&d, 0, 3, 2, 0, 18, 16, 1, 0.7);
    /* a lower score threshold lets e in, last */
    ck_assert_int_eq(raw_decode(&r, 0.1, FCOS_NMS_THRESHOLD, &d), RB_OK);
    ck_assert_int_eq(d.counts[0], 5);
    expect_box(&d, 0, 4, 40, 40, 56, 56, 0, 0.15);
    raw_free(&r);
}
END_TEST

/* 256 points of level 0 (a 128 x 128 image, one class), each over the
 * threshold with its own score, 0.3 + 0.6 q / 256 at point q = 16 i + j,
 * and a box 1.6 pixels on each side of it (regression 0.2), so none
 * overlap: the best 100 are kept, points 255 down to 156, those of
 * column 0 clipped at the image's edge. */
START_TEST(decode_keeps_the_best_hundred_best_first)
{
    raw r;
    decoded d;
    raw_init(&r, 1, 128, 1);
    for (int64_t q = 0; q < 256; q++)
        raw_point(&r, 0, 0, q / 16, q % 16, 0, 0.3 + 0.6 * (double)q / 256, 0.2f, 0.2f, 0.2f, 0.2f);
    ck_assert_int_eq(raw_decode(&r, FCOS_SCORE_THRESHOLD, FCOS_NMS_THRESHOLD, &d), RB_OK);
    ck_assert_int_eq(d.counts[0], RB_TASK_MAX_DETECTIONS);
    for (int64_t n = 0; n < RB_TASK_MAX_DETECTIONS; n++) {
        int64_t q = 255 - n;
        float x = (float)(q % 16 * 8), y = (float)(q / 16 * 8), e = 0.2f * 8.0f;
        expect_box(&d, 0, n, fmaxf(x - e, 0), fmaxf(y - e, 0), x + e, y + e, 0, 0.3 + 0.6 * (double)q / 256);
    }
    raw_free(&r);
}
END_TEST

/* Equal scores keep the candidates' order: level 0 before level 1, points
 * in row-major order, classes in order. Three classes on a 64 x 64 image,
 * all at 0.6, boxes apart: level 0 point 9 (8, 8) class 2, level 0 point
 * 2 (16, 0) class 1 and class 0 (the same box, other classes), level 1
 * point 0 (0, 0) class 0 (a box of regression 0.1 x 16). */
START_TEST(decode_breaks_ties_by_level_point_and_class)
{
    raw r;
    decoded d;
    raw_init(&r, 3, 64, 1);
    raw_point(&r, 0, 0, 1, 1, 2, 0.6, 0.2f, 0.2f, 0.2f, 0.2f);
    raw_point(&r, 0, 0, 0, 2, 1, 0.6, 0.2f, 0.2f, 0.2f, 0.2f);
    raw_point(&r, 0, 0, 0, 2, 0, 0.6, 0.2f, 0.2f, 0.2f, 0.2f);
    raw_point(&r, 0, 1, 0, 0, 0, 0.6, 0.1f, 0.1f, 0.1f, 0.1f);
    ck_assert_int_eq(raw_decode(&r, FCOS_SCORE_THRESHOLD, FCOS_NMS_THRESHOLD, &d), RB_OK);
    ck_assert_int_eq(d.counts[0], 4);
    /* the corners as decode computes them in float32: x - r s, x + r s */
    expect_box(&d, 0, 0, 16 - 0.2f * 8, 0, 16 + 0.2f * 8, 0.2f * 8, 0, 0.6);
    expect_box(&d, 0, 1, 16 - 0.2f * 8, 0, 16 + 0.2f * 8, 0.2f * 8, 1, 0.6);
    expect_box(&d, 0, 2, 8 - 0.2f * 8, 8 - 0.2f * 8, 8 + 0.2f * 8, 8 + 0.2f * 8, 2, 0.6);
    expect_box(&d, 0, 3, 0, 0, 0.1f * 16, 0.1f * 16, 0, 0.6);
    raw_free(&r);
}
END_TEST

/* The top 1000 per level come before suppression. A 256 x 256 image (level
 * 0: 32 x 32 = 1024 points), two classes; every point regresses to the
 * whole image (x/8, y/8, (256 - x)/8, (256 - y)/8); class 0 scores 0.9
 * less 1e-4 per point, class 1 0.5 everywhere. The best 1000 of level 0
 * are class 0's first 1000 points; suppression keeps the first of them
 * alone. Without the cut, class 1's best would follow, its own class's
 * first. */
START_TEST(decode_takes_the_top_thousand_of_a_level_before_suppression)
{
    raw r;
    decoded d;
    raw_init(&r, 2, 256, 1);
    for (int64_t q = 0; q < 1024; q++) {
        float x = (float)(q % 32 * 8), y = (float)(q / 32 * 8);
        raw_point(&r, 0, 0, q / 32, q % 32, 0, 0.9 - 1e-4 * (double)q, x / 8, y / 8, (256 - x) / 8, (256 - y) / 8);
        raw_point(&r, 0, 0, q / 32, q % 32, 1, 0.5, x / 8, y / 8, (256 - x) / 8, (256 - y) / 8);
    }
    ck_assert_int_eq(raw_decode(&r, FCOS_SCORE_THRESHOLD, FCOS_NMS_THRESHOLD, &d), RB_OK);
    ck_assert_int_eq(d.counts[0], 1);
    expect_box(&d, 0, 0, 0, 0, 256, 256, 0, 0.9);
    raw_free(&r);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("fcos");
    TCase *fcos = tcase_create("fcos");
    tcase_add_test(fcos, points_are_assigned_as_worked_out_by_hand);
    tcase_add_test(fcos, the_smallest_box_wins_and_float32_ties_go_to_the_first);
    tcase_add_test(fcos, the_centerness_target_is_the_square_root_of_the_two_ratios);
    tcase_add_test(fcos, the_loss_of_a_hand_worked_batch);
    tcase_add_test(fcos, the_giou_term_on_hand_worked_boxes);
    tcase_add_test(fcos, the_loss_gradient_matches_finite_differences);
    tcase_add_test(fcos, the_loss_refuses_bad_targets_and_shapes);
    tcase_add_test(fcos, decode_suppresses_overlaps_within_a_class_only);
    tcase_add_test(fcos, decode_keeps_the_best_hundred_best_first);
    tcase_add_test(fcos, decode_breaks_ties_by_level_point_and_class);
    tcase_add_test(fcos, decode_takes_the_top_thousand_of_a_level_before_suppression);
    suite_add_tcase(suite, fcos);
    return run_suite(suite);
}
