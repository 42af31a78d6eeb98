/* COCO box AP (robusta/coco.h): each rule of pycocotools' COCOeval checked
 * on a case small enough to work out by hand, the parsers' refusals, and
 * the coco-eval command.
 *
 * How the hand results are worked out (COCOeval's accumulate): per IoU
 * threshold t, the kept detections of a category in descending score order
 * give cumulative counts tp and fp (ignored detections count in neither,
 * but keep their place); recall rc = tp / npig (npig: ground truths not
 * ignored), precision pr = tp / (tp + fp + eps); pr is made non-increasing
 * from the right; the precision at recall threshold r = k/100 (k = 0..100)
 * is pr[i] for the first i with rc[i] >= r, 0 when there is none. AP is the
 * mean of those 101 values over the 10 thresholds .50, .55, ..., .95 (and
 * over categories), AR the mean of the last rc per threshold.
 *
 * Tolerance. Expected values are the exact rationals of the hand results.
 * The evaluator gets them with at most ~1,000 additions and a few divisions
 * of numbers in [0, 1], each rounding by at most 2^-53 relative, and
 * pr = 1 / (1 + eps) is 1 - 2^-52 where the hand result says 1: the error
 * stays below 1010 * 2.3e-16 < 3e-13. TOL = 1e-12 covers that and is
 * far below the smallest change any broken rule makes in these cases
 * (about 2e-3). -1 ("nothing measured") is compared exactly. */
#include "config.h"

#include <math.h>
#include <stdarg.h>

#include <json-c/json.h>

#include <robusta/robusta.h>

#include "testutil.h"

#define TOL 1e-12

/* ------------------------------------------------------------ cases in memory */

typedef struct fixture {
    rb_coco gt;
    rb_coco_image images[8];
    rb_coco_category cats[8];
    rb_coco_annotation anns[64];
    rb_coco_detection dets[256];
    size_t n_dets;
    double stats[RB_COCO_STATS];
    double cat_ap[8];
} fixture;

static fixture f;

/* Images with ids 1..images, categories with ids 1..cats, nothing else. */
static void setup(int images, int cats)
{
    memset(&f, 0, sizeof f);
    for (int i = 0; i < images; i++)
        f.images[i].id = i + 1;
    for (int k = 0; k < cats; k++)
        f.cats[k].id = k + 1;
    f.gt.images = f.images;
    f.gt.n_images = (size_t)images;
    f.gt.categories = f.cats;
    f.gt.n_categories = (size_t)cats;
    f.gt.annotations = f.anns;
}

/* A ground truth (id: its position + 1) with area w * h; returns it to
 * change area or iscrowd. */
static rb_coco_annotation *gt(int64_t image, int64_t cat, double x, double y, double w, double h)
{
    rb_coco_annotation *a = &f.anns[f.gt.n_annotations];
    *a = (rb_coco_annotation){.id = (int64_t)f.gt.n_annotations + 1, .image_id = image, .category_id = cat,
                              .bbox = {x, y, w, h}, .area = w * h};
    f.gt.n_annotations++;
    return a;
}

static void dt(int64_t image, int64_t cat, double x, double y, double w, double h, double score)
{
    f.dets[f.n_dets++] = (rb_coco_detection){.image_id = image, .category_id = cat, .bbox = {x, y, w, h},
                                             .score = score};
}

static void evaluate(void)
{
    rb_status s = rb_coco_evaluate(&f.gt, f.dets, f.n_dets, f.stats, f.cat_ap);
    ck_assert_msg(s == RB_OK, "rb_coco_evaluate: %s", rb_last_error());
}

#define EXPECT(index, value) expect_stat(index, value, __LINE__)

static void expect_stat(int index, double want, int line)
{
    double got = f.stats[index];
    if (want == -1)
        ck_assert_msg(got == -1, "line %d: %s is %.17g, expected -1", line, rb_coco_stat_name(index), got);
    else
        ck_assert_msg(fabs(got - want) <= TOL, "line %d: %s is %.17g, expected %.17g", line, rb_coco_stat_name(index),
                      got, want);
}

static void expect_value(double got, double want, const char *what)
{
    if (want == -1)
        ck_assert_msg(got == -1, "%s is %.17g, expected -1", what, got);
    else
        ck_assert_msg(fabs(got - want) <= TOL, "%s is %.17g, expected %.17g", what, got, want);
}

/* ------------------------------------------------------------ the rules */

/* Two ground truths, three detections, one image and category.
 *   G1 [0,0,10,10], G2 [20,0,10,10] (areas 100: small).
 *   D1 .9 [0,0,10,10]: IoU 1 with G1.
 *   D2 .8 [50,50,10,10]: overlaps nothing.
 *   D3 .7 [20,0,10,5]: with G2 intersection 50, union 50 + 100 - 50 = 100:
 *      IoU exactly 0.5, so it matches at t = .50 (IoU >= t) and no higher.
 * t = .50: TP FP TP: tp 1 1 2, fp 0 1 1; rc .5 .5 1; pr 1 .5 2/3, made
 *   non-increasing from the right: 1 2/3 2/3. r = 0 .. .50 (51 values):
 *   first rc >= r is i = 0: 1; r = .51 .. 1 (50 values): i = 2: 2/3.
 *   AP50 = (51 + 50 * 2/3) / 101 = 253/303.
 * t >= .55: TP FP FP: rc .5 .5 .5, pr 1 .5 1/3: r <= .5 gives 1, r > .5
 *   is never reached: 0. AP_t = 51/101 (so AP75 = 51/101).
 * AP = (253/3 + 9 * 51) / 1010 = 163/303. Small: everything is small, so
 * APs = AP; medium and large: both ground truths ignored (npig 0): -1.
 * AR1: D1 alone, a TP at every t: 1/2. AR10 = AR100 = (1 + 9 * .5) / 10. */
START_TEST(two_ground_truths_three_detections)
{
    setup(1, 1);
    gt(1, 1, 0, 0, 10, 10);
    gt(1, 1, 20, 0, 10, 10);
    dt(1, 1, 0, 0, 10, 10, .9);
    dt(1, 1, 50, 50, 10, 10, .8);
    dt(1, 1, 20, 0, 10, 5, .7);
    evaluate();
    EXPECT(RB_COCO_AP, 163.0 / 303);
    EXPECT(RB_COCO_AP50, 253.0 / 303);
    EXPECT(RB_COCO_AP75, 51.0 / 101);
    EXPECT(RB_COCO_APS, 163.0 / 303);
    EXPECT(RB_COCO_APM, -1);
    EXPECT(RB_COCO_APL, -1);
    EXPECT(RB_COCO_AR1, 0.5);
    EXPECT(RB_COCO_AR10, 0.55);
    EXPECT(RB_COCO_AR100, 0.55);
    EXPECT(RB_COCO_ARS, 0.55);
    EXPECT(RB_COCO_ARM, -1);
    EXPECT(RB_COCO_ARL, -1);
    expect_value(f.cat_ap[0], 163.0 / 303, "category 1's AP");
}
END_TEST

/* A false positive above the true positive: G [0,0,10,10]; D1 .9 far away,
 * D2 .8 on G. rc 0 1, pr 0 1/2; from the right: 1/2 1/2. r = 0 finds
 * i = 0 (rc 0 >= 0), the others i = 1: every value 1/2, AP = 1/2 (without
 * the right-to-left pass r = 0 would read 0: AP = 50/101 * 1/2).
 * AR1: D1 alone, no TP: 0. AR10 = AR100 = 1. */
START_TEST(precision_is_made_non_increasing_from_the_right)
{
    setup(1, 1);
    gt(1, 1, 0, 0, 10, 10);
    dt(1, 1, 100, 100, 10, 10, .9);
    dt(1, 1, 0, 0, 10, 10, .8);
    evaluate();
    EXPECT(RB_COCO_AP, 0.5);
    EXPECT(RB_COCO_AP50, 0.5);
    EXPECT(RB_COCO_AR1, 0);
    EXPECT(RB_COCO_AR10, 1);
    EXPECT(RB_COCO_AR100, 1);
}
END_TEST

/* Crowd: C [0,0,100,100] iscrowd, G [200,200,10,10].
 *   D1 .9 [0,0,10,10] and D2 .8 [50,50,10,10] lie inside C: the union is
 *   the detection's own area, IoU 100/100 = 1 (an ordinary union would give
 *   100/10000 = .01, no match). Both match C (a crowd is matched any number
 *   of times), so both are ignored. D3 .7 on G: TP.
 * Every t: ignored, ignored, TP: tp 0 0 1, fp 0 0 0, rc 0 0 1, pr 0 0 1,
 * from the right 1 1 1: AP = 1, AR = 1. (Matched once only, D2 would be a
 * FP: pr 0 0 1/2, AP 1/2; with an ordinary union D1 and D2 are FPs: AP
 * 1/3.) C is ignored in every range; G (area 100) is small: APs = 1, APm
 * and APl -1. */
START_TEST(crowd_regions_take_the_detection_area_as_union_and_any_number_of_matches)
{
    rb_coco_annotation *c;
    setup(1, 1);
    c = gt(1, 1, 0, 0, 100, 100);
    c->iscrowd = 1;
    gt(1, 1, 200, 200, 10, 10);
    dt(1, 1, 0, 0, 10, 10, .9);
    dt(1, 1, 50, 50, 10, 10, .8);
    dt(1, 1, 200, 200, 10, 10, .7);
    evaluate();
    EXPECT(RB_COCO_AP, 1);
    EXPECT(RB_COCO_AR100, 1);
    EXPECT(RB_COCO_APS, 1);
    EXPECT(RB_COCO_APM, -1);
    EXPECT(RB_COCO_APL, -1);
}
END_TEST

/* Ignored ground truths are sorted after the others, and a detection that
 * matched a regular one stops at the first ignored one.
 *   C [0,0,20,20] crowd, listed first; G [0,0,10,20] (area 200).
 *   D .9 [0,0,10,10]: IoU with G 100 / (100 + 200 - 100) = .5; with C
 *   100/100 = 1.
 * t = .50: G comes first and matches (.5 >= .5); C is ignored and D holds a
 *   regular match: stop. TP: AP50 = 1.
 * t >= .55: G fails, C matches: D is ignored; nothing else: rc 0, pr 0,
 *   precision 0 everywhere, recall 0.
 * AP = 101 / 1010 = .1, AP75 = 0, AR100 = (1 + 0) / 10 = .1. (In file order
 * C would take D at .50 too: AP50 0.) */
START_TEST(ignored_ground_truths_are_sorted_last)
{
    rb_coco_annotation *c;
    setup(1, 1);
    c = gt(1, 1, 0, 0, 20, 20);
    c->iscrowd = 1;
    gt(1, 1, 0, 0, 10, 20);
    dt(1, 1, 0, 0, 10, 10, .9);
    evaluate();
    EXPECT(RB_COCO_AP50, 1);
    EXPECT(RB_COCO_AP75, 0);
    EXPECT(RB_COCO_AP, 0.1);
    EXPECT(RB_COCO_AR100, 0.1);
}
END_TEST

/* A ground truth ignored for its area (not a crowd) is matched once only.
 *   B [0,0,40,25]: box area 1000, but `area` 2000 (medium); A [200,200,10,10]
 *   area 100 (small). D1 .9 and D2 .8 on B's box (IoU 1, area 1000), D3 .7
 *   on A.
 * small: B ignored, A regular (npig 1). D1 matches B: ignored. D2: B is
 *   taken and not a crowd, A does not overlap: unmatched, and its area 1000
 *   is inside small: a FP. D3: TP. tp 0 0 1, fp 0 1 1, rc 0 0 1,
 *   pr 0 0 1/2 -> 1/2 1/2 1/2: APs = 1/2 (were B matchable again, D2 would
 *   be ignored: APs 1).
 * medium: B regular, A ignored. D1 TP; D2 unmatched, area 1000 < 32²:
 *   ignored; D3 matches A: ignored. APm = 1.
 * all: TP FP TP with rc 1/2 1/2 1 at every t: AP = 253/303 (as in the
 *   first case at .50). ARs = 1, ARm = 1. */
START_TEST(out_of_range_ground_truths_are_matched_once)
{
    rb_coco_annotation *b;
    setup(1, 1);
    b = gt(1, 1, 0, 0, 40, 25);
    b->area = 2000;
    gt(1, 1, 200, 200, 10, 10);
    dt(1, 1, 0, 0, 40, 25, .9);
    dt(1, 1, 0, 0, 40, 25, .8);
    dt(1, 1, 200, 200, 10, 10, .7);
    evaluate();
    EXPECT(RB_COCO_APS, 0.5);
    EXPECT(RB_COCO_APM, 1);
    EXPECT(RB_COCO_APL, -1);
    EXPECT(RB_COCO_AP, 253.0 / 303);
    EXPECT(RB_COCO_ARS, 1);
    EXPECT(RB_COCO_ARM, 1);
}
END_TEST

/* The `area` field, not the box, puts a ground truth in a range:
 * G [0,0,10,10] (box area 100) with area 2000; D .9 on it (IoU 1).
 * small: G ignored, npig 0: APs = ARs = -1. medium: G regular, D matched:
 * a TP whatever its own area (100): APm = ARm = 1. large: -1. all: AP 1.
 * (By the box: APs 1 and APm -1.) */
START_TEST(the_area_field_decides_the_range)
{
    rb_coco_annotation *g;
    setup(1, 1);
    g = gt(1, 1, 0, 0, 10, 10);
    g->area = 2000;
    dt(1, 1, 0, 0, 10, 10, .9);
    evaluate();
    EXPECT(RB_COCO_AP, 1);
    EXPECT(RB_COCO_APS, -1);
    EXPECT(RB_COCO_ARS, -1);
    EXPECT(RB_COCO_APM, 1);
    EXPECT(RB_COCO_ARM, 1);
    EXPECT(RB_COCO_APL, -1);
}
END_TEST

/* Range bounds are inclusive: A [0,0,32,32] area 1024 = 32², B
 * [100,100,96,96] area 9216 = 96²; DA .9 on A, DB .8 on B.
 * small [0, 1024]: A regular, B ignored; DA TP, DB matches B: ignored.
 * medium [1024, 9216]: both regular, both TP. large [9216, 1e10]: B
 * regular, A ignored; DB TP, DA ignored. Each range: AP 1, AR 1 (with
 * exclusive bounds medium would have nothing: -1). */
START_TEST(area_bounds_are_inclusive)
{
    setup(1, 1);
    gt(1, 1, 0, 0, 32, 32);
    gt(1, 1, 100, 100, 96, 96);
    dt(1, 1, 0, 0, 32, 32, .9);
    dt(1, 1, 100, 100, 96, 96, .8);
    evaluate();
    for (int i = RB_COCO_AP; i <= RB_COCO_ARL; i++)
        if (i != RB_COCO_AR1)
            EXPECT(i, 1);
    EXPECT(RB_COCO_AR1, 0.5); /* one detection per image: DA */
}
END_TEST

/* An unmatched detection outside the range is ignored there; inside
 * (bounds included) it is a false positive.
 *   A [0,0,10,10] (small). D1 .9 [100,100,50,40] (area 2000, medium),
 *   unmatched; D2 .8 on A.
 *   all: FP TP: AP 1/2 (as in precision_is_made_non_increasing...).
 *   small: D1 ignored (2000 > 1024): TP alone, APs 1. medium: A ignored,
 *   npig 0: -1.
 * Then the same with D1 [100,100,32,32], area exactly 1024: inside small,
 * so a FP there: APs 1/2; all: 1/2; medium still -1. */
START_TEST(unmatched_detections_outside_the_range_are_ignored)
{
    setup(1, 1);
    gt(1, 1, 0, 0, 10, 10);
    dt(1, 1, 100, 100, 50, 40, .9);
    dt(1, 1, 0, 0, 10, 10, .8);
    evaluate();
    EXPECT(RB_COCO_AP, 0.5);
    EXPECT(RB_COCO_APS, 1);
    EXPECT(RB_COCO_APM, -1);

    setup(1, 1);
    gt(1, 1, 0, 0, 10, 10);
    dt(1, 1, 100, 100, 32, 32, .9);
    dt(1, 1, 0, 0, 10, 10, .8);
    evaluate();
    EXPECT(RB_COCO_APS, 0.5);
    EXPECT(RB_COCO_AP, 0.5);
    EXPECT(RB_COCO_APM, -1); /* A (100) is ignored there: no regular ground truth */
}
END_TEST

/* Limits of 1, 10 and 100 detections per image and category.
 *   G0..G10 [20i,0,10,10]; D0 1.0 far away (FP); D1..D11 (.90, .89, ...,
 *   .80) on G0..G10.
 * AR1: D0 alone: 0. AR10: D0..D9: 9 TPs of 11: 9/11. AR100: 11/11.
 * AP: FP then 11 TPs: pr 0 1/2 2/3 ... 11/12, from the right all 11/12,
 * and recall reaches 1: every precision 11/12, AP = 11/12. */
START_TEST(one_ten_and_a_hundred_detections)
{
    setup(1, 1);
    for (int i = 0; i <= 10; i++)
        gt(1, 1, 20 * i, 0, 10, 10);
    dt(1, 1, 500, 500, 10, 10, 1.0);
    for (int i = 0; i <= 10; i++)
        dt(1, 1, 20 * i, 0, 10, 10, .9 - .01 * i);
    evaluate();
    EXPECT(RB_COCO_AR1, 0);
    EXPECT(RB_COCO_AR10, 9.0 / 11);
    EXPECT(RB_COCO_AR100, 1);
    EXPECT(RB_COCO_AP, 11.0 / 12);
}
END_TEST

/* The cut to 100 is per image (and category), after sorting by score.
 *   Image 1: G [0,0,10,10]; 100 FPs (.9, far away), then D .1 on G: the
 *   101st, dropped.
 *   Image 2: G' [0,0,10,10]; 99 FPs (.9), then D' .05 on G': the 100th,
 *   kept.
 * Merged (image 1 then 2, stable): 199 FPs then one TP: tp 1 of npig 2 at
 * the end: AR100 = 1/2; pr there 1/200, made the precision of every
 * earlier point; r <= .5 (51 values) reaches rc .5: AP = 51/101/200.
 * AR10: the first 10 of each image are FPs: 0. */
START_TEST(the_cut_to_100_is_per_image)
{
    setup(2, 1);
    gt(1, 1, 0, 0, 10, 10);
    gt(2, 1, 0, 0, 10, 10);
    for (int i = 0; i < 100; i++)
        dt(1, 1, 1000 + 20 * i, 1000, 10, 10, .9);
    dt(1, 1, 0, 0, 10, 10, .1);
    for (int i = 0; i < 99; i++)
        dt(2, 1, 1000 + 20 * i, 1000, 10, 10, .9);
    dt(2, 1, 0, 0, 10, 10, .05);
    evaluate();
    EXPECT(RB_COCO_AR100, 0.5);
    EXPECT(RB_COCO_AP, 51.0 / 101 / 200);
    EXPECT(RB_COCO_AR10, 0);
}
END_TEST

/* Equal scores keep file order (a stable sort), within an image:
 * category 1: G [0,0,10,10]; Da .5 far away, then Db .5 on G: FP, TP:
 *   AP 1/2 (TP first would give 1).
 * category 2: G2 [0,0,10,10]; Dc .5 [0,0,10,10] (IoU 1), then Dd .5
 *   [0,0,10,9] (IoU 90/100 = .9). Dc first: it takes G2 at every t, Dd is a
 *   FP: TP FP, AP 1. (Dd first: at .95 Dd fails and Dc matches: FP TP, AP at
 *   .95 1/2: AP .95.) */
START_TEST(equal_scores_keep_file_order)
{
    setup(1, 2);
    gt(1, 1, 0, 0, 10, 10);
    gt(1, 2, 0, 0, 10, 10);
    dt(1, 1, 100, 100, 10, 10, .5);
    dt(1, 1, 0, 0, 10, 10, .5);
    dt(1, 2, 0, 0, 10, 10, .5);
    dt(1, 2, 0, 0, 10, 9, .5);
    evaluate();
    expect_value(f.cat_ap[0], 0.5, "category 1's AP");
    expect_value(f.cat_ap[1], 1, "category 2's AP");
}
END_TEST

/* Across images, detections of equal score keep the images' id order (not
 * the file's): images listed as ids 7 then 3. Image 7: G and a TP .5; image
 * 3: a FP .5. Sorted ids put image 3 first: FP, TP: AP 1/2 (file order: 1). */
START_TEST(images_are_merged_in_id_order)
{
    setup(2, 1);
    f.images[0].id = 7;
    f.images[1].id = 3;
    gt(7, 1, 0, 0, 10, 10);
    dt(7, 1, 0, 0, 10, 10, .5);
    dt(3, 1, 0, 0, 10, 10, .5);
    evaluate();
    EXPECT(RB_COCO_AP, 0.5);
    EXPECT(RB_COCO_AR100, 1);
}
END_TEST

/* Equal IoUs go to the later ground truth.
 *   D .9 [0,0,10,10]; G1 [0,0,10,20] (IoU 100/200 = .5), G2 [0,-10,10,20]
 *   (IoU .5 too). D' .8 [0,10,10,10]: IoU .5 with G1, 0 with G2.
 * t = .50: D takes G2 (the later), D' takes G1: TP TP, AP50 1. (Taking G1,
 *   D' would be a FP: rc .5 .5, pr 1 .5: AP50 51/101.)
 * t >= .55: nothing matches: AP_t 0. AP = .1. */
START_TEST(ties_go_to_the_later_ground_truth)
{
    setup(1, 1);
    gt(1, 1, 0, 0, 10, 20);
    gt(1, 1, 0, -10, 10, 20);
    dt(1, 1, 0, 0, 10, 10, .9);
    dt(1, 1, 0, 10, 10, 10, .8);
    evaluate();
    EXPECT(RB_COCO_AP50, 1);
    EXPECT(RB_COCO_AP, 0.1);
    EXPECT(RB_COCO_AR100, 0.1); /* (2/2 + 0 * 9) / 10 */
}
END_TEST

/* Thresholds: a match needs IoU >= min(t, 1 - 1e-10) with t from numpy's
 * linspace(.5, .95, 10), whose ninth value is 0.8999999999999999.
 * category 1: D [0,0,10,10] on G: IoU exactly 1, a match at every t,
 *   .95 included: AP 1.
 * category 2: D [0,0,10,9]: IoU 90/100 = .9 (the double nearest .9), above
 *   the ninth threshold: matches 9 of 10: AP .9.
 * category 3: D [0,0,10,7.5]: IoU 75/100 = .75 exactly, the sixth
 *   threshold: matches 6 of 10: AP .6, and AP75 counts it.
 * category 4: D [0,0,10,5]: IoU exactly .5: matches at .50 only: AP .1.
 * category 5: D [0,0,10,8.5]: IoU 85/100 = .85, equal to linspace's eighth
 *   value 0.85 (.5 + 7 * .05 would be 0.8500000000000001): matches 8 of 10:
 *   AP .8.
 * AP75 over the categories: (1 + 1 + 1 + 0 + 1) / 5. */
START_TEST(thresholds_at_exactly_one_and_one_half)
{
    setup(1, 5);
    for (int k = 1; k <= 5; k++)
        gt(1, k, 0, 0, 10, 10);
    dt(1, 1, 0, 0, 10, 10, .9);
    dt(1, 2, 0, 0, 10, 9, .9);
    dt(1, 3, 0, 0, 10, 7.5, .9);
    dt(1, 4, 0, 0, 10, 5, .9);
    dt(1, 5, 0, 0, 10, 8.5, .9);
    evaluate();
    expect_value(f.cat_ap[0], 1, "AP at IoU 1");
    expect_value(f.cat_ap[1], 0.9, "AP at IoU .9");
    expect_value(f.cat_ap[2], 0.6, "AP at IoU .75");
    expect_value(f.cat_ap[3], 0.1, "AP at IoU .5");
    expect_value(f.cat_ap[4], 0.8, "AP at IoU .85");
    EXPECT(RB_COCO_AP75, 0.8);
    EXPECT(RB_COCO_AP50, 1);
    EXPECT(RB_COCO_AP, (1 + 0.9 + 0.6 + 0.1 + 0.8) / 5);
}
END_TEST

/* -1 means nothing was measured, and means skip it.
 * Categories listed as ids 5 and 2: category 5 has G and a TP (AP 1);
 * category 2 has only a detection (no ground truth): its AP is -1 and AP
 * is category 5's alone: 1 (averaging a 0 in would give 1/2). A category
 * whose only ground truth is a crowd counts as having none. */
START_TEST(categories_without_ground_truth_are_minus_one)
{
    rb_coco_annotation *c;
    setup(1, 3);
    f.cats[0].id = 5;
    f.cats[1].id = 2;
    f.cats[2].id = 9;
    gt(1, 5, 0, 0, 10, 10);
    c = gt(1, 9, 0, 0, 10, 10);
    c->iscrowd = 1;
    dt(1, 5, 0, 0, 10, 10, .9);
    dt(1, 2, 0, 0, 10, 10, .9);
    dt(1, 9, 50, 50, 10, 10, .9);
    evaluate();
    expect_value(f.cat_ap[0], 1, "category 5's AP");
    expect_value(f.cat_ap[1], -1, "category 2's AP");
    expect_value(f.cat_ap[2], -1, "category 9's AP (crowd only)");
    EXPECT(RB_COCO_AP, 1);
    EXPECT(RB_COCO_AR100, 1);
}
END_TEST

/* Every summary -1 when nothing can be measured: detections without any
 * ground truth; no images at all; no detections and no ground truth. */
START_TEST(summaries_without_entries_are_minus_one)
{
    setup(2, 2);
    dt(1, 1, 0, 0, 10, 10, .9);
    dt(2, 2, 0, 0, 10, 10, .9);
    evaluate();
    for (int i = 0; i < RB_COCO_STATS; i++)
        EXPECT(i, -1);
    setup(0, 0);
    evaluate();
    for (int i = 0; i < RB_COCO_STATS; i++)
        EXPECT(i, -1);
    /* ground truth but no detections: measured, and 0 */
    setup(1, 1);
    gt(1, 1, 0, 0, 10, 10);
    evaluate();
    EXPECT(RB_COCO_AP, 0);
    EXPECT(RB_COCO_AR100, 0);
    EXPECT(RB_COCO_APM, -1);
}
END_TEST

/* Detections on an image without ground truth are false positives: image 1
 * has G and a TP .5, image 2 nothing but a detection .9 of the same
 * category: FP, TP: AP 1/2. */
START_TEST(detections_on_images_without_ground_truth_are_false_positives)
{
    setup(2, 1);
    gt(1, 1, 0, 0, 10, 10);
    dt(1, 1, 0, 0, 10, 10, .5);
    dt(2, 1, 0, 0, 10, 10, .9);
    evaluate();
    EXPECT(RB_COCO_AP, 0.5);
    EXPECT(RB_COCO_AR100, 1);
}
END_TEST

/* pycocotools records a match as the ground truth's id and reads 0 as none:
 * a detection on an annotation with id 0 is a false positive (and the
 * annotation, matched, takes no other detection). G id 0 with D .9 on it:
 * FP; npig 1: AP 0, AR 0. robusta does the same, and says so in a warning. */
START_TEST(annotation_id_zero_is_never_a_match_as_in_pycocotools)
{
    captured cap = {0};
    rb_coco_annotation *g;
    setup(1, 1);
    g = gt(1, 1, 0, 0, 10, 10);
    g->id = 0;
    dt(1, 1, 0, 0, 10, 10, .9);
    dt(1, 1, 0, 0, 10, 10, .8);
    rb_log_set_sink(capture_sink, &cap);
    evaluate();
    rb_log_set_sink(NULL, NULL);
    EXPECT(RB_COCO_AP, 0);
    EXPECT(RB_COCO_AR100, 0);
    ck_assert_int_eq(cap.count, 1);
    ck_assert_int_eq(cap.level[0], RB_LOG_WARN);
    ck_assert_ptr_nonnull(strstr(cap.message[0], "annotations[0] has id 0"));
    ck_assert_ptr_nonnull(strstr(cap.message[0], "number annotations from 1"));
}
END_TEST

/* What rb_coco_evaluate refuses in memory, each with the entry named. */
START_TEST(evaluate_refuses_bad_input_naming_the_entry)
{
    static const struct {
        int what; /* 0: unknown image, 1: unknown category, 2: NaN score, 3: negative width, 4: infinite x */
        const char *fragment;
    } bad[] = {
        {0, "rb_coco_evaluate: detections[1] (image_id 9): image_id 9 is not an image of the ground truth"},
        {1, "rb_coco_evaluate: detections[1] (image_id 1): category_id 4 is not a category of the ground truth"},
        {2, "rb_coco_evaluate: detections[1] (image_id 1): score is not finite"},
        {3, "rb_coco_evaluate: detections[1] (image_id 1): bbox width is negative (-1)"},
        {4, "rb_coco_evaluate: detections[1] (image_id 1): bbox[0] is not finite"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setup(1, 1);
        gt(1, 1, 0, 0, 10, 10);
        dt(1, 1, 0, 0, 10, 10, .9);
        dt(1, 1, 0, 0, 10, 10, .8);
        switch (bad[i].what) {
        case 0: f.dets[1].image_id = 9; break;
        case 1: f.dets[1].category_id = 4; break;
        case 2: f.dets[1].score = NAN; break;
        case 3: f.dets[1].bbox[2] = -1; break;
        default: f.dets[1].bbox[0] = INFINITY; break;
        }
        f.stats[0] = 0.5;
        ck_assert_int_eq(rb_coco_evaluate(&f.gt, f.dets, f.n_dets, f.stats, NULL), RB_ERR_INVALID_ARGUMENT);
        ck_assert_msg(strstr(rb_last_error(), bad[i].fragment) != NULL, "%s", rb_last_error());
        ck_assert_ptr_null(strchr(rb_last_error(), '\n'));
        ck_assert(f.stats[0] == -1);
    }
    /* ground truth built wrong */
    setup(2, 1);
    f.images[1].id = 1;
    ck_assert_int_eq(rb_coco_evaluate(&f.gt, NULL, 0, f.stats, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "rb_coco_evaluate: ground truth: images[1] (id 1): id 1 is also images[0]'s: "
                                      "give each image its own id");
    setup(1, 1);
    gt(2, 1, 0, 0, 10, 10);
    ck_assert_int_eq(rb_coco_evaluate(&f.gt, NULL, 0, f.stats, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "rb_coco_evaluate: ground truth: annotations[0] (id 1): image_id 2 is not in "
                                      "\"images\": list the image or drop the annotation");
    ck_assert_int_eq(rb_coco_evaluate(&f.gt, NULL, 1, f.stats, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_coco_evaluate(&f.gt, NULL, 0, NULL, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_coco_evaluate(NULL, NULL, 0, f.stats, NULL), RB_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(stat_names_follow_pycocotools_order)
{
    static const char *const names[] = {"AP", "AP50", "AP75", "APs", "APm", "APl",
                                        "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};
    for (int i = 0; i < RB_COCO_STATS; i++)
        ck_assert_str_eq(rb_coco_stat_name(i), names[i]);
    ck_assert_ptr_null(rb_coco_stat_name(-1));
    ck_assert_ptr_null(rb_coco_stat_name(RB_COCO_STATS));
}
END_TEST

/* ------------------------------------------------------------ the parsers */

static const char good_gt[] =
    "{\"info\": {\"year\": 2017}, \"licenses\": [{\"id\": 1}],\n"
    " \"images\": [{\"id\": 9, \"file_name\": \"a.png\", \"width\": 640, \"height\": 480}, {\"id\": 2}],\n"
    " \"annotations\": [\n"
    "  {\"id\": 1, \"image_id\": 9, \"category_id\": 3, \"bbox\": [1, 2.5, 30, 40], \"area\": 1100.5,\n"
    "   \"segmentation\": [[1, 2, 3, 4, 5, 6]], \"iscrowd\": 0},\n"
    "  {\"id\": 7, \"image_id\": 2, \"category_id\": 3, \"bbox\": [0, 0, 10, 10], \"area\": 80, \"iscrowd\": true,\n"
    "   \"segmentation\": {\"counts\": [0, 5, 95], \"size\": [10, 10]}},\n"
    "  {\"id\": 8, \"image_id\": 2, \"category_id\": 4, \"bbox\": [0, 0, 0, 0], \"area\": 0}],\n"
    " \"categories\": [{\"id\": 4}, {\"id\": 3, \"name\": \"caf\\u00e9\", \"supercategory\": \"x\"}]}";

START_TEST(annotation_files_parse)
{
    rb_coco *c = NULL;
    ck_assert_int_eq(rb_coco_parse(good_gt, sizeof good_gt - 1, "gt.json", &c), RB_OK);
    ck_assert_uint_eq(c->n_images, 2);
    ck_assert_int_eq(c->images[0].id, 9);
    ck_assert_str_eq(c->images[0].file_name, "a.png");
    ck_assert_int_eq(c->images[0].width, 640);
    ck_assert_int_eq(c->images[0].height, 480);
    ck_assert_int_eq(c->images[1].id, 2);
    ck_assert_ptr_null(c->images[1].file_name);
    ck_assert_int_eq(c->images[1].width, 0);
    ck_assert_uint_eq(c->n_categories, 2);
    ck_assert_int_eq(c->categories[0].id, 4);
    ck_assert_ptr_null(c->categories[0].name);
    ck_assert_str_eq(c->categories[1].name, "caf\xc3\xa9");
    ck_assert_uint_eq(c->n_annotations, 3);
    ck_assert_int_eq(c->annotations[0].id, 1);
    ck_assert_int_eq(c->annotations[0].image_id, 9);
    ck_assert_int_eq(c->annotations[0].category_id, 3);
    ck_assert(c->annotations[0].bbox[0] == 1 && c->annotations[0].bbox[1] == 2.5 && c->annotations[0].bbox[2] == 30 &&
              c->annotations[0].bbox[3] == 40);
    ck_assert(c->annotations[0].area == 1100.5);
    ck_assert_int_eq(c->annotations[0].iscrowd, 0);
    ck_assert_int_eq(c->annotations[1].iscrowd, 1); /* true */
    ck_assert_int_eq(c->annotations[2].iscrowd, 0); /* absent */
    rb_coco_destroy(c);
    rb_coco_destroy(NULL);
}
END_TEST

/* Each refusal of an annotation file: `text` is spliced into a small file
 * in place of the annotations (A), images (I) or categories (C) arrays. */
static void expect_gt_refused(const char *images, const char *annotations, const char *categories, const char *message)
{
    char text[2048];
    rb_coco *c = (rb_coco *)1;
    snprintf(text, sizeof text, "{\"images\": %s, \"annotations\": %s, \"categories\": %s}", images, annotations,
             categories);
    ck_assert_msg(rb_coco_parse(text, strlen(text), "gt.json", &c) == RB_ERR_CORRUPT, "accepted: %s", text);
    ck_assert_ptr_null(c);
    ck_assert_msg(strcmp(rb_last_error(), message) == 0, "%s\n  gave: %s\n  want: %s", text, rb_last_error(), message);
}

#define IMG "[{\"id\": 1}]"
#define CAT "[{\"id\": 1}]"
#define ANN(fields) "[{\"id\": 5, \"image_id\": 1, \"category_id\": 1, " fields "}]"

START_TEST(annotation_files_refused_with_one_line)
{
    rb_coco *c = NULL;
    /* missing and mistyped keys */
    expect_gt_refused(IMG, ANN("\"area\": 1"), CAT,
                      "gt.json: annotations[0] (id 5): no \"bbox\": annotations need id, image_id, category_id, "
                      "bbox [x, y, width, height] and area");
    expect_gt_refused(IMG, ANN("\"bbox\": [0, 0, 1, 1]"), CAT,
                      "gt.json: annotations[0] (id 5): no \"area\": annotations need id, image_id, category_id, "
                      "bbox [x, y, width, height] and area");
    expect_gt_refused(IMG, "[{\"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 1, 1], \"area\": 1}]", CAT,
                      "gt.json: annotations[0]: no \"id\": annotations need id, image_id, category_id, bbox [x, y, "
                      "width, height] and area");
    expect_gt_refused(IMG, "[{\"id\": 5, \"image_id\": \"1\", \"category_id\": 1, \"bbox\": [0, 0, 1, 1], \"area\": 1}]",
                      CAT, "gt.json: annotations[0] (id 5): \"image_id\" is a string, not an integer");
    expect_gt_refused(IMG, "[{\"id\": 5.0, \"image_id\": 1}]", CAT,
                      "gt.json: annotations[0]: \"id\" is a number with a fraction or exponent, not an integer");
    expect_gt_refused(IMG, ANN("\"bbox\": [0, 0, 1], \"area\": 1"), CAT,
                      "gt.json: annotations[0] (id 5): \"bbox\" has 3 numbers, not 4 ([x, y, width, height])");
    expect_gt_refused(IMG, ANN("\"bbox\": [0, 0, \"1\", 1], \"area\": 1"), CAT,
                      "gt.json: annotations[0] (id 5): bbox[2] is a string, not a number");
    expect_gt_refused(IMG, ANN("\"bbox\": null, \"area\": 1"), CAT,
                      "gt.json: annotations[0] (id 5): \"bbox\" is null, not [x, y, width, height]");
    expect_gt_refused(IMG, ANN("\"bbox\": [0, 0, 1, 1], \"area\": 1, \"iscrowd\": 2"), CAT,
                      "gt.json: annotations[0] (id 5): \"iscrowd\" is 2: it is 0 (an object) or 1 (a crowd region)");
    expect_gt_refused(IMG, "[7]", CAT, "gt.json: annotations[0]: is an integer, not an object");
    expect_gt_refused("[{\"id\": 1, \"file_name\": 3}]", "[]", CAT,
                      "gt.json: images[0] (id 1): \"file_name\" is an integer, not a string");
    expect_gt_refused("[{\"id\": 1, \"width\": -3}]", "[]", CAT,
                      "gt.json: images[0] (id 1): width is negative (-3): give the image's size in pixels");
    expect_gt_refused(IMG, "[]", "[{\"name\": \"x\"}]",
                      "gt.json: categories[0]: no \"id\": categories need an integer id");
    expect_gt_refused(IMG, "[]", "[{\"id\": 18446744073709551615}]",
                      "gt.json: categories[0]: \"id\" is 18446744073709551615, past the largest id "
                      "(9223372036854775807)");
    /* values */
    expect_gt_refused(IMG, ANN("\"bbox\": [0, 0, -2, 1], \"area\": 1"), CAT,
                      "gt.json: annotations[0] (id 5): bbox width is negative (-2): boxes are [x, y, width, height] "
                      "with width and height >= 0");
    expect_gt_refused(IMG, ANN("\"bbox\": [0, 0, 2, -0.5], \"area\": 1"), CAT,
                      "gt.json: annotations[0] (id 5): bbox height is negative (-0.5): boxes are [x, y, width, "
                      "height] with width and height >= 0");
    expect_gt_refused(IMG, ANN("\"bbox\": [0, 0, 2, 1], \"area\": -1"), CAT,
                      "gt.json: annotations[0] (id 5): area -1 is not a number >= 0: give the object's area in "
                      "pixels");
    /* ids and references */
    expect_gt_refused("[{\"id\": 1}, {\"id\": 4}, {\"id\": 1}]", "[]", CAT,
                      "gt.json: images[2] (id 1): id 1 is also images[0]'s: give each image its own id");
    expect_gt_refused(IMG, "[]", "[{\"id\": 1}, {\"id\": 1}]",
                      "gt.json: categories[1] (id 1): id 1 is also categories[0]'s: give each category its own id");
    expect_gt_refused(IMG,
                      "[{\"id\": 5, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 1, 1], \"area\": 1}, "
                      "{\"id\": 5, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 1, 1], \"area\": 1}]",
                      CAT,
                      "gt.json: annotations[1] (id 5): id 5 is also annotations[0]'s: give each annotation its own "
                      "id");
    expect_gt_refused(IMG,
                      "[{\"id\": 5, \"image_id\": 2, \"category_id\": 1, \"bbox\": [0, 0, 1, 1], \"area\": 1}]", CAT,
                      "gt.json: annotations[0] (id 5): image_id 2 is not in \"images\": list the image or drop the "
                      "annotation");
    expect_gt_refused(IMG,
                      "[{\"id\": 5, \"image_id\": 1, \"category_id\": 90, \"bbox\": [0, 0, 1, 1], \"area\": 1}]",
                      CAT,
                      "gt.json: annotations[0] (id 5): category_id 90 is not in \"categories\": list the category or "
                      "drop the annotation");
    /* not numbers JSON has */
    expect_gt_refused(IMG, ANN("\"bbox\": [0, 0, 1, 1], \"area\": NaN"), CAT,
                      "gt.json is not valid JSON: unexpected character at byte 113 (line 1, column 114, in "
                      "annotations[0]): NaN and Infinity are not JSON numbers; write finite numbers");
    expect_gt_refused(IMG, ANN("\"bbox\": [0, 0, 1e999, 1], \"area\": 1"), CAT,
                      "gt.json is not valid JSON: number out of range at byte 98 (line 1, column 99, in "
                      "annotations[0])");
    /* not COCO */
    expect_gt_refused("{}", "[]", "[]", "gt.json: \"images\" is an object, not an array: not a COCO annotation file");
    {
        static const char *const texts[] = {"[]", "{\"images\": [], \"categories\": []}", "\"x\"", "", "{\"a\": 1,}",
                                            "{\"images\": [], \"images\": [], \"annotations\": [], \"categories\": []}"};
        static const char *const messages[] = {
            "gt.json is a JSON array, not a COCO annotation file (an object with images, annotations and categories; "
            "an array is a results file)",
            "gt.json: no \"annotations\" array: not a COCO annotation file (an object with images, annotations and "
            "categories)",
            "gt.json is a JSON string, not a COCO annotation file (an object with images, annotations and "
            "categories)",
            "gt.json is not valid JSON: unexpected end at byte 0 (line 1, column 1)",
            "gt.json is not valid JSON: expected a string key at byte 8 (line 1, column 9)",
            "gt.json is not valid JSON: duplicate key 'images' in the object at byte 0 (line 1, column 1)"};
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
            ck_assert_int_eq(rb_coco_parse(texts[i], strlen(texts[i]), "gt.json", &c), RB_ERR_CORRUPT);
            ck_assert_msg(strcmp(rb_last_error(), messages[i]) == 0, "%s gave %s", texts[i], rb_last_error());
            ck_assert_ptr_null(c);
        }
    }
    /* on a later line: the place counts lines */
    {
        static const char text[] = "{\"images\": [{\"id\": 1}],\n \"annotations\": [\n  {\"id\": 1, \"image_id\": 1, "
                                   "\"category_id\": 1, \"bbox\": [0, 0, 1, 1], \"area\": 1},\n  {\"id\": 2,, }]}";
        ck_assert_int_eq(rb_coco_parse(text, sizeof text - 1, "gt.json", &c), RB_ERR_CORRUPT);
        ck_assert_str_eq(rb_last_error(), "gt.json is not valid JSON: expected a string key at byte 132 (line 4, "
                                          "column 12, in annotations[1])");
    }
    /* a NUL byte is looked for before anything else, so what precedes it
     * need not be JSON (libFuzzer found the place finder reading past its
     * nesting table on such text) */
    {
        static const char text[] = "]]}\0{\"images\": [";
        ck_assert_int_eq(rb_coco_parse(text, sizeof text - 1, "gt.json", &c), RB_ERR_CORRUPT);
        ck_assert_str_eq(rb_last_error(), "gt.json is not valid JSON: NUL byte at byte 3 (line 1, column 4)");
    }
    ck_assert_int_eq(rb_coco_parse(good_gt, sizeof good_gt - 1, "gt.json", NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_coco_load(&c, "/nonexistent/instances.json"), RB_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "/nonexistent/instances.json"));
}
END_TEST

static rb_coco *small_gt(void)
{
    rb_coco *c = NULL;
    ck_assert_int_eq(rb_coco_parse(good_gt, sizeof good_gt - 1, "gt.json", &c), RB_OK);
    return c;
}

START_TEST(results_files_parse)
{
    static const char text[] = "[{\"image_id\": 9, \"category_id\": 3, \"bbox\": [1, 2, 3.25, 4], \"score\": 0.5, "
                               "\"segmentation\": [], \"id\": 77},\n {\"score\": 1, \"bbox\": [0, 0, 0, 0], "
                               "\"category_id\": 4, \"image_id\": 2}]";
    rb_coco *c = small_gt();
    rb_coco_detection *d = NULL;
    size_t n = 99;
    ck_assert_int_eq(rb_coco_parse_detections(c, text, sizeof text - 1, "dt.json", &d, &n), RB_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(d[0].image_id, 9);
    ck_assert_int_eq(d[0].category_id, 3);
    ck_assert(d[0].bbox[2] == 3.25 && d[0].score == 0.5);
    ck_assert_int_eq(d[1].image_id, 2);
    ck_assert_int_eq(d[1].category_id, 4);
    ck_assert(d[1].score == 1);
    free(d);
    ck_assert_int_eq(rb_coco_parse_detections(c, " [ ] ", 5, "dt.json", &d, &n), RB_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_nonnull(d);
    free(d);
    rb_coco_destroy(c);
}
END_TEST

START_TEST(results_files_refused_with_one_line)
{
    static const struct {
        const char *text, *message;
    } bad[] = {
        {"[{\"image_id\": 9, \"category_id\": 3, \"bbox\": [1, 2, 3, 4], \"score\": 0.5},\n"
         " {\"image_id\": 5, \"category_id\": 3, \"bbox\": [1, 2, 3, 4], \"score\": 0.5}]",
         "dt.json: detections[1] (image_id 5): image_id 5 is not an image of the ground truth: detect on the "
         "annotation file's images"},
        {"[{\"image_id\": 9, \"category_id\": 1, \"bbox\": [1, 2, 3, 4], \"score\": 0.5}]",
         "dt.json: detections[0] (image_id 9): category_id 1 is not a category of the ground truth: use the "
         "annotation file's category ids"},
        {"[{\"image_id\": 9, \"category_id\": 3, \"bbox\": [1, 2, -3, 4], \"score\": 0.5}]",
         "dt.json: detections[0] (image_id 9): bbox width is negative (-3): boxes are [x, y, width, height] with "
         "width and height >= 0"},
        {"[{\"image_id\": 9, \"category_id\": 3, \"bbox\": [1, 2, 3, 4], \"score\": NaN}]",
         "dt.json is not valid JSON: unexpected character at byte 66 (line 1, column 67, in detections[0]): NaN and "
         "Infinity are not JSON numbers; write finite numbers"},
        {"[{\"image_id\": 9, \"category_id\": 3, \"bbox\": [1, 2, 3, 4], \"score\": -Infinity}]",
         "dt.json is not valid JSON: bad number at byte 67 (line 1, column 68, in detections[0]): NaN and Infinity "
         "are not JSON numbers; write finite numbers"},
        {"[{\"image_id\": 9, \"category_id\": 3, \"bbox\": [1, 2, 3, 4]}]",
         "dt.json: detections[0] (image_id 9): no \"score\": detections need image_id, category_id, bbox [x, y, "
         "width, height] and score"},
        {"[{\"image_id\": 9, \"category_id\": 3, \"bbox\": [1, 2, 3, 4], \"score\": \"high\"}]",
         "dt.json: detections[0] (image_id 9): \"score\" is a string, not a number"},
        {"[{\"category_id\": 3, \"bbox\": [1, 2, 3, 4], \"score\": 1}]",
         "dt.json: detections[0]: no \"image_id\": detections need image_id, category_id, bbox [x, y, width, height] "
         "and score"},
        {"[[9, 3, 1, 2, 3, 4, 0.5]]", "dt.json: detections[0]: is an array, not an object"},
        {"{\"images\": [], \"annotations\": [], \"categories\": []}",
         "dt.json is a JSON object, not a COCO results file (an array of objects with image_id, category_id, bbox "
         "and score; an object is an annotation file)"},
        {"{}", "dt.json is a JSON object, not a COCO results file (an array of objects with image_id, category_id, "
               "bbox and score; an object is an annotation file)"},
        {"0.5", "dt.json is a JSON number, not a COCO results file (an array of objects with image_id, category_id, "
                "bbox and score)"},
        {"[{\"image_id\": 9,", "dt.json is not valid JSON: unexpected end at byte 16 (line 1, column 17, in "
                               "detections[0])"},
    };
    rb_coco *c = small_gt();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rb_coco_detection *d = (rb_coco_detection *)1;
        size_t n = 99;
        ck_assert_msg(rb_coco_parse_detections(c, bad[i].text, strlen(bad[i].text), "dt.json", &d, &n) ==
                          RB_ERR_CORRUPT,
                      "accepted: %s", bad[i].text);
        ck_assert_msg(strcmp(rb_last_error(), bad[i].message) == 0, "%s\n  gave: %s\n  want: %s", bad[i].text,
                      rb_last_error(), bad[i].message);
        ck_assert_ptr_null(d);
        ck_assert_uint_eq(n, 0);
    }
    rb_coco_destroy(c);
}
END_TEST

/* ------------------------------------------------------------ the command */

static char dir[PATH_MAX];

static void write_case(const char *gt_text, const char *dt_text, char *gt_path, char *dt_path)
{
    make_temp_dir(dir, sizeof dir);
    snprintf(gt_path, PATH_MAX + 16, "%s/gt.json", dir);
    snprintf(dt_path, PATH_MAX + 16, "%s/dt.json", dir);
    write_text(gt_path, gt_text);
    write_text(dt_path, dt_text);
}

/* The first case of this file as files: two ground truths, three
 * detections, image id 1, category id 1. */
static const char case_gt[] =
    "{\"images\": [{\"id\": 1}], \"categories\": [{\"id\": 1, \"name\": \"box\"}, {\"id\": 2}], \"annotations\": [\n"
    " {\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 10, 10], \"area\": 100},\n"
    " {\"id\": 2, \"image_id\": 1, \"category_id\": 1, \"bbox\": [20, 0, 10, 10], \"area\": 100}]}";
static const char case_dt[] = "[{\"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 10, 10], \"score\": 0.9},\n"
                              " {\"image_id\": 1, \"category_id\": 1, \"bbox\": [50, 50, 10, 10], \"score\": 0.8},\n"
                              " {\"image_id\": 1, \"category_id\": 1, \"bbox\": [20, 0, 10, 5], \"score\": 0.7}]";

/* summarize()'s layout, the numbers of two_ground_truths_three_detections
 * rounded to 3 places: 163/303 = .53795, 253/303 = .83498, 51/101 =
 * .50495. */
START_TEST(command_prints_summarize_layout)
{
    char gt_path[PATH_MAX + 16], dt_path[PATH_MAX + 16];
    run_result r;
    write_case(case_gt, case_dt, gt_path, dt_path);
    run_robusta(&r, NULL, (const char *const[]){"coco-eval", "--gt", gt_path, "--dt", dt_path, NULL});
    ck_assert_msg(r.code == 0, "%s", r.err);
    ck_assert_str_eq(r.err, "");
    ck_assert_str_eq(r.out,
                     " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.538\n"
                     " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.835\n"
                     " Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.505\n"
                     " Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.538\n"
                     " Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000\n"
                     " Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000\n"
                     " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.500\n"
                     " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 0.550\n"
                     " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.550\n"
                     " Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.550\n"
                     " Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000\n"
                     " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000\n");
    remove_temp_dir(dir);
}
END_TEST

START_TEST(command_prints_json)
{
    static const char *const keys[] = {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100",
                                       "ARs", "ARm", "ARl", "categories"};
    static const double values[] = {163.0 / 303, 253.0 / 303, 51.0 / 101, 163.0 / 303, -1, -1,
                                    0.5,         0.55,        0.55,       0.55,        -1, -1};
    char gt_path[PATH_MAX + 16], dt_path[PATH_MAX + 16];
    json_object *o, *cats, *c;
    run_result r;
    size_t i = 0;
    write_case(case_gt, case_dt, gt_path, dt_path);
    run_robusta(&r, NULL, (const char *const[]){"coco-eval", "--gt", gt_path, "--dt", dt_path, "--json", NULL});
    ck_assert_msg(r.code == 0, "%s", r.err);
    o = json_tokener_parse(r.out);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(json_object_object_length(o), 13);
    json_object_object_foreach(o, key, val) {
        ck_assert_str_eq(key, keys[i]); /* in this order */
        if (i < 12)
            ck_assert_msg(values[i] == -1 ? json_object_get_double(val) == -1
                                          : fabs(json_object_get_double(val) - values[i]) <= TOL,
                          "%s = %.17g", key, json_object_get_double(val));
        i++;
    }
    cats = json_object_object_get(o, "categories");
    ck_assert_int_eq(json_object_array_length(cats), 2);
    c = json_object_array_get_idx(cats, 0);
    ck_assert_int_eq(json_object_get_int(json_object_object_get(c, "id")), 1);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(c, "name")), "box");
    ck_assert(fabs(json_object_get_double(json_object_object_get(c, "AP")) - 163.0 / 303) <= TOL);
    c = json_object_array_get_idx(cats, 1);
    ck_assert_int_eq(json_object_get_int(json_object_object_get(c, "id")), 2);
    ck_assert(json_object_is_type(json_object_object_get(c, "name"), json_type_null));
    ck_assert(json_object_get_double(json_object_object_get(c, "AP")) == -1);
    json_object_put(o);
    remove_temp_dir(dir);
}
END_TEST

START_TEST(command_refuses_bad_files_with_one_line)
{
    char gt_path[PATH_MAX + 16], dt_path[PATH_MAX + 16], want[PATH_MAX + 256];
    run_result r;
    write_case(case_gt,
               "[{\"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 10, 10], \"score\": 0.9},\n"
               " {\"image_id\": 4, \"category_id\": 1, \"bbox\": [0, 0, 10, 10], \"score\": 0.9}]",
               gt_path, dt_path);
    run_robusta(&r, NULL, (const char *const[]){"coco-eval", "--gt", gt_path, "--dt", dt_path, NULL});
    ck_assert_int_eq(r.code, 1);
    ck_assert_str_eq(r.out, "");
    snprintf(want, sizeof want, "robusta coco-eval: %s: detections[1] (image_id 4): image_id 4 is not an image of the "
                                "ground truth: detect on the annotation file's images\n", dt_path);
    ck_assert_str_eq(r.err, want);
    /* the two files swapped */
    run_robusta(&r, NULL, (const char *const[]){"coco-eval", "--gt", dt_path, "--dt", gt_path, NULL});
    ck_assert_int_eq(r.code, 1);
    ck_assert_int_eq(count_lines(r.err), 1);
    ck_assert_ptr_nonnull(strstr(r.err, "is a JSON array, not a COCO annotation file"));
    /* a missing file, a missing option */
    run_robusta(&r, NULL, (const char *const[]){"coco-eval", "--gt", gt_path, "--dt", "/nonexistent/dt.json", NULL});
    ck_assert_int_eq(r.code, 1);
    ck_assert_int_eq(count_lines(r.err), 1);
    ck_assert_ptr_nonnull(strstr(r.err, "/nonexistent/dt.json"));
    run_robusta(&r, NULL, (const char *const[]){"coco-eval", "--gt", gt_path, NULL});
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.err, "robusta coco-eval: --dt FILE is needed (robusta coco-eval --help lists the options)\n");
    remove_temp_dir(dir);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("coco");
    TCase *rules = tcase_create("rules");
    tcase_add_test(rules, two_ground_truths_three_detections);
    tcase_add_test(rules, precision_is_made_non_increasing_from_the_right);
    tcase_add_test(rules, crowd_regions_take_the_detection_area_as_union_and_any_number_of_matches);
    tcase_add_test(rules, ignored_ground_truths_are_sorted_last);
    tcase_add_test(rules, out_of_range_ground_truths_are_matched_once);
    tcase_add_test(rules, the_area_field_decides_the_range);
    tcase_add_test(rules, area_bounds_are_inclusive);
    tcase_add_test(rules, unmatched_detections_outside_the_range_are_ignored);
    tcase_add_test(rules, one_ten_and_a_hundred_detections);
    tcase_add_test(rules, the_cut_to_100_is_per_image);
    tcase_add_test(rules, equal_scores_keep_file_order);
    tcase_add_test(rules, images_are_merged_in_id_order);
    tcase_add_test(rules, ties_go_to_the_later_ground_truth);
    tcase_add_test(rules, thresholds_at_exactly_one_and_one_half);
    tcase_add_test(rules, categories_without_ground_truth_are_minus_one);
    tcase_add_test(rules, summaries_without_entries_are_minus_one);
    tcase_add_test(rules, detections_on_images_without_ground_truth_are_false_positives);
    tcase_add_test(rules, annotation_id_zero_is_never_a_match_as_in_pycocotools);
    tcase_add_test(rules, evaluate_refuses_bad_input_naming_the_entry);
    tcase_add_test(rules, stat_names_follow_pycocotools_order);
    suite_add_tcase(suite, rules);
    {
        TCase *files = tcase_create("files");
        tcase_add_test(files, annotation_files_parse);
        tcase_add_test(files, annotation_files_refused_with_one_line);
        tcase_add_test(files, results_files_parse);
        tcase_add_test(files, results_files_refused_with_one_line);
        tcase_add_test(files, command_prints_summarize_layout);
        tcase_add_test(files, command_prints_json);
        tcase_add_test(files, command_refuses_bad_files_with_one_line);
        suite_add_tcase(suite, files);
    }
    return run_suite(suite);
}
