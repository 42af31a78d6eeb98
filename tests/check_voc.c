/* voc-seg:DIR (src/data/voc.c): a tiny Pascal VOC folder made here (PNG and
 * JPEG images of two sizes, palette and grayscale masks, with and without
 * classes.txt) read back pixel by pixel, mask by mask, with labels, ids and
 * source sizes; the resize at open time against hand-worked values and
 * against the split's own resize; selection carrying ids; the id and class
 * lists (src/data/voc_lists.c, compiled in); and every bad input of issue
 * 18 refused with one line naming the file. */
#include "config.h"

#include <math.h>
#include <stdint.h>

#include <robusta/data.h>
#include <robusta/status.h>

#include "data/image.h"
#include "data/voc.h"
#include "testimage.h"
#include "testutil.h"

static char dir[512];

static void setup(void)
{
    make_temp_dir(dir, sizeof dir);
}

static void teardown(void)
{
    remove_temp_dir(dir);
}

/* ------------------------------------------------------------ the folder */

enum { S = 4 }; /* side of images a, b, d; c is 2×2 */

/* Image a, channel-major: hand-picked so that 2×2 block means land on
 * .25 and .75 (rounding both ways) and never on .5. */
static const uint8_t a_planes[3][S][S] = {
    {{10, 20, 100, 100}, {30, 41, 100, 103}, {0, 0, 255, 255}, {0, 1, 255, 254}},
    {{245, 235, 155, 155}, {225, 214, 155, 152}, {255, 255, 0, 0}, {255, 254, 0, 1}},
    {{0, 6, 12, 18}, {60, 66, 72, 78}, {120, 126, 132, 138}, {180, 186, 192, 198}}};
/* Its mask (palette indices): 0 ×6, 1 ×4, 2 ×4, 255 ×2: label 1 (the tie
 * of 1 and 2 goes to the smaller). */
static const uint8_t a_mask[S][S] = {{0, 1, 1, 2}, {0, 1, 1, 2}, {0, 0, 2, 255}, {0, 0, 2, 255}};
/* b's mask (grayscale): 0 ×8, 1 ×6, 2 ×2: label 1. */
static const uint8_t b_mask[S][S] = {{0, 0, 1, 1}, {0, 0, 1, 1}, {0, 0, 1, 1}, {0, 0, 2, 2}};
/* Image c, 2×2, and its mask: only background and ignore: label 0. */
static const uint8_t c_planes[3][2][2] = {{{0, 100}, {200, 60}}, {{10, 20}, {30, 40}}, {{250, 0}, {10, 252}}};
static const uint8_t c_mask[2][2] = {{0, 255}, {255, 0}};

static uint8_t b_pixel(int c, int y, int x)
{
    return (uint8_t)(y * 40 + x * 10 + c * 50);
}

static uint8_t d_pixel(int c, int y, int x)
{
    return (uint8_t)(100 + 6 * x + 4 * y + 20 * c);
}

static void sub_path(char *out, size_t size, const char *root, const char *rel)
{
    int n = snprintf(out, size, "%s/%s", root, rel);
    ck_assert(n > 0 && (size_t)n < size);
}

static void write_rel(const char *root, const char *rel, const char *text)
{
    char path[PATH_MAX];
    sub_path(path, sizeof path, root, rel);
    write_text(path, text);
}

/* Planes (3 × h × w) to an interleaved RGB PNG at root/rel. */
static void write_rgb_png(const char *root, const char *rel, const uint8_t *planes, int h, int w)
{
    char path[PATH_MAX];
    uint8_t px[3 * 16];
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < h * w; k++)
            px[3 * k + c] = planes[c * h * w + k];
    sub_path(path, sizeof path, root, rel);
    ck_assert_int_eq(rb_image_write_png(path, px, h, w, 3, NULL, 0), RB_OK);
}

static void write_mask(const char *root, const char *rel, const uint8_t *mask, int h, int w, bool palette)
{
    uint8_t pal[256][3];
    char path[PATH_MAX];
    for (int k = 0; k < 256; k++) {
        pal[k][0] = (uint8_t)(k * 64);
        pal[k][1] = (uint8_t)(k * 128);
        pal[k][2] = (uint8_t)k;
    }
    sub_path(path, sizeof path, root, rel);
    ck_assert_int_eq(rb_image_write_png(path, mask, h, w, 1, palette ? (const uint8_t(*)[3])pal : NULL,
                                        palette ? 256 : 0),
                     RB_OK);
}

/* A VOC folder `root` (made here, under the test's folder): train.txt
 * lists a, b, c (with a blank line, spaces and a CR); val.txt a, d (a
 * JPEG); no classes.txt. */
static void make_voc(char *root, size_t size, const char *name)
{
    static const char *const subs[] = {"", "/JPEGImages", "/SegmentationClass", "/ImageSets",
                                       "/ImageSets/Segmentation"};
    char path[PATH_MAX];
    int n = snprintf(root, size, "%s/%s", dir, name);
    ck_assert(n > 0 && (size_t)n < size);
    for (size_t k = 0; k < sizeof subs / sizeof subs[0]; k++) {
        snprintf(path, sizeof path, "%s%s", root, subs[k]);
        ck_assert_int_eq(mkdir(path, 0700), 0);
    }
    write_rgb_png(root, "JPEGImages/a.png", &a_planes[0][0][0], S, S);
    write_mask(root, "SegmentationClass/a.png", &a_mask[0][0], S, S, true);
    {
        uint8_t b[3][S][S];
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++)
                    b[c][y][x] = b_pixel(c, y, x);
        write_rgb_png(root, "JPEGImages/b.png", &b[0][0][0], S, S);
    }
    write_mask(root, "SegmentationClass/b.png", &b_mask[0][0], S, S, false);
    write_rgb_png(root, "JPEGImages/c.png", &c_planes[0][0][0], 2, 2);
    write_mask(root, "SegmentationClass/c.png", &c_mask[0][0], 2, 2, false);
    {
        uint8_t d[S * S * 3], ones[S * S];
        test_bytes jpg;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                for (int c = 0; c < 3; c++)
                    d[3 * (y * S + x) + c] = d_pixel(c, y, x);
        jpg = test_jpeg(d, S, S, 3, 100);
        sub_path(path, sizeof path, root, "JPEGImages/d.jpg");
        test_write_bytes(path, jpg.data, jpg.size);
        free(jpg.data);
        memset(ones, 1, sizeof ones);
        write_mask(root, "SegmentationClass/d.png", ones, S, S, false);
    }
    write_rel(root, "ImageSets/Segmentation/train.txt", "a\n\n  b  \r\nc\n");
    write_rel(root, "ImageSets/Segmentation/val.txt", "a\nd");
}

static rb_split *open_ok(const char *root, rb_split_which which, int size)
{
    char spec[PATH_MAX];
    rb_split_options o = {0};
    rb_split *s = NULL;
    rb_status st;
    snprintf(spec, sizeof spec, "voc-seg:%s", root);
    o.size = size;
    st = rb_split_open(&s, spec, which, &o);
    ck_assert_msg(st == RB_OK, "%s: %s", spec, rb_last_error());
    return s;
}

/* Opening split `which` of `root` at `size` fails with `status` and a
 * one-line message that holds `want` with every "@" replaced by root;
 * nothing is printed. */
static void expect_refused(const char *root, rb_split_which which, int size, rb_status status, const char *want)
{
    char spec[PATH_MAX], expanded[4096], err[1024];
    size_t used = 0;
    rb_split_options o = {0};
    rb_split *s = (rb_split *)1;
    rb_status st;
    test_stderr t;
    for (const char *p = want; *p && used + 1 < sizeof expanded; p++) {
        if (*p == '@')
            used += (size_t)snprintf(expanded + used, sizeof expanded - used, "%s", root);
        else
            expanded[used++] = *p;
    }
    expanded[used] = '\0';
    snprintf(spec, sizeof spec, "voc-seg:%s", root);
    o.size = size;
    t = test_stderr_begin();
    st = rb_split_open(&s, spec, which, &o);
    test_stderr_end(t, err, sizeof err);
    ck_assert_msg(st == status, "status %d, expected %d: %s", (int)st, (int)status, rb_last_error());
    ck_assert_ptr_null(s);
    ck_assert_str_eq(rb_last_error(), expanded);
    ck_assert_msg(err[0] == '\0', "printed '%s'", err);
}

/* Stored pixel (c, y, x) of example i. */
static uint8_t stored(const rb_split *s, int64_t i, int c, int y, int x)
{
    int ch, h, w;
    rb_split_stored_shape(s, &ch, &h, &w);
    return ((const uint8_t *)rb_split_images(s))[(((size_t)i * (size_t)ch + (size_t)c) * (size_t)h + (size_t)y) *
                                                     (size_t)w +
                                                 (size_t)x];
}

static int32_t mask_at(const rb_split *s, int64_t i, int y, int x)
{
    rb_targets t;
    rb_split_stored_targets(s, &t);
    ck_assert_ptr_nonnull(t.masks);
    return t.masks[((size_t)i * (size_t)t.mask_height + (size_t)y) * (size_t)t.mask_width + (size_t)x];
}

static void expect_source_size(const rb_split *s, int64_t i, int64_t h, int64_t w)
{
    int64_t sh = -1, sw = -1;
    rb_split_example_source_size(s, i, &sh, &sw);
    ck_assert_int_eq(sh, h);
    ck_assert_int_eq(sw, w);
}

/* ------------------------------------------------------------ reading */

START_TEST(val_split_as_stored)
{
    char root[PATH_MAX];
    rb_split *s;
    int ch, h, w;
    make_voc(root, sizeof root, "voc");
    s = open_ok(root, RB_SPLIT_TEST, 0);
    ck_assert_int_eq(rb_split_kind(s), RB_DATASET_VOC_SEG);
    ck_assert_str_eq(rb_split_name(s), "voc-seg test");
    ck_assert_int_eq(rb_split_count(s), 2);
    ck_assert_int_eq(rb_split_classes(s), 21);
    ck_assert_str_eq(rb_split_class_name(s, 0), "background");
    ck_assert_str_eq(rb_split_class_name(s, 15), "person");
    ck_assert_str_eq(rb_split_class_name(s, 20), "tvmonitor");
    ck_assert_int_eq(rb_split_dtype(s), RB_DTYPE_U8);
    rb_split_stored_shape(s, &ch, &h, &w);
    ck_assert(ch == 3 && h == S && w == S);
    rb_split_shape(s, &ch, &h, &w);
    ck_assert(ch == 3 && h == S && w == S);
    ck_assert_str_eq(rb_split_example_name(s, 0), "a");
    ck_assert_str_eq(rb_split_example_name(s, 1), "d");
    ck_assert_ptr_null(rb_split_example_name(s, 2));
    ck_assert_ptr_null(rb_split_example_name(s, -1));
    expect_source_size(s, 0, S, S);
    expect_source_size(s, 1, S, S);
    expect_source_size(s, 2, 0, 0);
    ck_assert_int_eq(rb_split_labels(s)[0], 1);
    ck_assert_int_eq(rb_split_labels(s)[1], 1);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                ck_assert_int_eq(stored(s, 0, c, y, x), a_planes[c][y][x]);
                /* d is a JPEG of quality 100, 4:4:4: within 3 levels (see check_image) */
                ck_assert_int_le(abs((int)stored(s, 1, c, y, x) - (int)d_pixel(c, y, x)), 3);
            }
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            ck_assert_int_eq(mask_at(s, 0, y, x), a_mask[y][x]);
            ck_assert_int_eq(mask_at(s, 1, y, x), 1);
        }
    {
        rb_augment aug;
        rb_augment_defaults(RB_DATASET_VOC_SEG, &aug);
        ck_assert(aug.flip && !aug.crop);
    }
    rb_split_destroy(s);
}
END_TEST

START_TEST(images_of_two_sizes_need_a_size)
{
    char root[PATH_MAX];
    make_voc(root, sizeof root, "voc");
    expect_refused(root, RB_SPLIT_TRAIN, 0, RB_ERR_INVALID_ARGUMENT,
                   "@/JPEGImages/c.png is 2×2 pixels but @/JPEGImages/a.png is 4×4: images of different sizes need "
                   "one size for the split; give an image size (--image-size)");
}
END_TEST

START_TEST(resized_at_open_time_as_worked_by_hand)
{
    char root[PATH_MAX];
    rb_split *s;
    int ch, h, w;
    /* 4×4 -> 2×2: each output is the mean of a 2×2 block (taps 2d and 2d+1,
     * weights 1/2), rounded: 25.25 -> 25, 100.75 -> 101, 0.25 -> 0, 254.75 -> 255 */
    static const uint8_t a2[3][2][2] = {{{25, 101}, {0, 255}}, {{230, 154}, {255, 0}}, {{33, 45}, {153, 165}}};
    /* masks: nearest taps floor((2d + 1) * 4 / 4) = 1, 3 */
    static const int32_t a2_mask[2][2] = {{1, 2}, {0, 255}}, b2_mask[2][2] = {{0, 1}, {0, 2}};
    /* c, 2×2 -> 3×3: taps (0, weight 1), (0 and 1, 1/2 each), (1 only) */
    static const uint8_t c3[3][3][3] = {{{0, 50, 100}, {100, 90, 80}, {200, 130, 60}},
                                        {{10, 15, 20}, {20, 25, 30}, {30, 35, 40}},
                                        {{250, 125, 0}, {130, 128, 126}, {10, 131, 252}}};
    /* nearest taps floor((2d + 1) * 2 / 6) = 0, 1, 1 */
    static const int32_t c3_mask[3][3] = {{0, 255, 255}, {255, 0, 0}, {255, 0, 0}};

    make_voc(root, sizeof root, "voc");
    s = open_ok(root, RB_SPLIT_TRAIN, 2);
    ck_assert_int_eq(rb_split_count(s), 3);
    rb_split_stored_shape(s, &ch, &h, &w);
    ck_assert(ch == 3 && h == 2 && w == 2);
    ck_assert_str_eq(rb_split_example_name(s, 0), "a");
    ck_assert_str_eq(rb_split_example_name(s, 1), "b");
    ck_assert_str_eq(rb_split_example_name(s, 2), "c");
    expect_source_size(s, 0, S, S);
    expect_source_size(s, 1, S, S);
    expect_source_size(s, 2, 2, 2);
    ck_assert_int_eq(rb_split_labels(s)[0], 1);
    ck_assert_int_eq(rb_split_labels(s)[1], 1);
    ck_assert_int_eq(rb_split_labels(s)[2], 0);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 2; x++) {
                ck_assert_int_eq(stored(s, 0, c, y, x), a2[c][y][x]);
                ck_assert_int_eq(stored(s, 2, c, y, x), c_planes[c][y][x]); /* already 2×2 */
            }
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++) {
            ck_assert_int_eq(mask_at(s, 0, y, x), a2_mask[y][x]);
            ck_assert_int_eq(mask_at(s, 1, y, x), b2_mask[y][x]);
            ck_assert_int_eq(mask_at(s, 2, y, x), c_mask[y][x]);
        }
    rb_split_destroy(s);

    s = open_ok(root, RB_SPLIT_TRAIN, 3);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 3; x++)
                ck_assert_int_eq(stored(s, 2, c, y, x), c3[c][y][x]);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++)
            ck_assert_int_eq(mask_at(s, 2, y, x), c3_mask[y][x]);
    /* labels come from the masks as in their files, whatever the size */
    ck_assert_int_eq(rb_split_labels(s)[0], 1);
    ck_assert_int_eq(rb_split_labels(s)[2], 0);
    expect_source_size(s, 2, 2, 2);
    rb_split_destroy(s);
}
END_TEST

START_TEST(open_time_resize_is_the_split_resize)
{
    char root[PATH_MAX];
    rb_split *full, *later, *early;
    rb_split_options o = {0};
    float a[3 * 7 * 7], b[3 * 7 * 7];
    int32_t ma[7 * 7], mb[7 * 7];
    make_voc(root, sizeof root, "voc");
    full = open_ok(root, RB_SPLIT_TEST, 0);
    o.size = 7;
    ck_assert_int_eq(rb_split_apply(&later, full, &o), RB_OK);
    early = open_ok(root, RB_SPLIT_TEST, 7);
    for (int64_t i = 0; i < 2; i++) {
        ck_assert_int_eq(rb_split_example(later, i, NULL, 0, 0, a), RB_OK);
        ck_assert_int_eq(rb_split_example(early, i, NULL, 0, 0, b), RB_OK);
        /* the same taps and arithmetic; the early resize then stores 8 bits,
         * so each value moves by at most half a level (plus float rounding) */
        for (int k = 0; k < 3 * 7 * 7; k++)
            ck_assert_msg(fabsf(a[k] - b[k]) <= 0.5f / 255.0f + 1e-6f, "example %d value %d: %g vs %g", (int)i, k,
                          (double)a[k], (double)b[k]);
        ck_assert_int_eq(rb_split_example_targets(later, i, NULL, 0, 0, ma, NULL, NULL), RB_OK);
        ck_assert_int_eq(rb_split_example_targets(early, i, NULL, 0, 0, mb, NULL, NULL), RB_OK);
        ck_assert_mem_eq(ma, mb, sizeof ma);
        /* the split resized later still knows where its examples came from */
        ck_assert_str_eq(rb_split_example_name(later, i), rb_split_example_name(early, i));
        expect_source_size(later, i, S, S);
    }
    rb_split_destroy(full);
    rb_split_destroy(later);
    rb_split_destroy(early);
}
END_TEST

START_TEST(classes_txt_names_the_classes)
{
    char root[PATH_MAX];
    rb_split *s;
    make_voc(root, sizeof root, "voc");
    write_rel(root, "classes.txt", "\xef\xbb\xbf" "background\r\n  cat \ndog\n\n\n");
    s = open_ok(root, RB_SPLIT_TRAIN, 2);
    ck_assert_int_eq(rb_split_classes(s), 3);
    ck_assert_str_eq(rb_split_class_name(s, 0), "background");
    ck_assert_str_eq(rb_split_class_name(s, 1), "cat");
    ck_assert_str_eq(rb_split_class_name(s, 2), "dog");
    ck_assert_ptr_null(rb_split_class_name(s, 3));
    rb_split_destroy(s);

    /* two names: the masks' class 2 is out of range */
    write_rel(root, "classes.txt", "background\ncat\n");
    expect_refused(root, RB_SPLIT_TRAIN, 2, RB_ERR_CORRUPT,
                   "@/SegmentationClass/a.png: pixel (row 0, column 3) holds class 2, but there are 2 classes (0-1, "
                   "from @/classes.txt) and 255 = ignore; fix the mask or name the class in classes.txt");
}
END_TEST

START_TEST(selection_carries_ids_and_sizes)
{
    char root[PATH_MAX];
    rb_split *s, *sub;
    rb_split_options o = {0};
    static const char *const ids[3] = {"a", "b", "c"};
    static const int64_t sides[3] = {S, S, 2};
    make_voc(root, sizeof root, "voc");
    s = open_ok(root, RB_SPLIT_TRAIN, 2);
    /* labels 1, 1, 0: one per class keeps c and one of a and b */
    o.per_class = 1;
    o.seed = 3;
    ck_assert_int_eq(rb_split_apply(&sub, s, &o), RB_OK);
    ck_assert_int_eq(rb_split_count(sub), 2);
    for (int64_t j = 0; j < 2; j++) {
        const int64_t from = rb_split_source_indices(sub)[j];
        ck_assert_str_eq(rb_split_example_name(sub, j), ids[from]);
        expect_source_size(sub, j, sides[from], sides[from]);
        ck_assert_int_eq(mask_at(sub, j, 0, 1), mask_at(s, from, 0, 1));
    }
    ck_assert_int_eq(rb_split_source_indices(sub)[0] == 2 || rb_split_source_indices(sub)[1] == 2, 1);
    rb_split_destroy(sub);
    /* the identity class list is allowed with masks, and keeps everything */
    o.per_class = 0;
    o.classes = "0-20";
    ck_assert_int_eq(rb_split_apply(&sub, s, &o), RB_OK);
    for (int64_t j = 0; j < 3; j++)
        ck_assert_str_eq(rb_split_example_name(sub, j), ids[j]);
    rb_split_destroy(sub);
    /* and a loader's batches carry the masks */
    {
        rb_loader *loader = NULL;
        rb_loader_options lo = {0};
        rb_batch b;
        lo.batch_size = 3;
        ck_assert_int_eq(rb_loader_create(&loader, s, &lo), RB_OK);
        ck_assert_int_eq(rb_loader_start_epoch(loader, 0), RB_OK);
        ck_assert_int_eq(rb_loader_next(loader, &b), RB_OK);
        ck_assert_int_eq(b.count, 3);
        ck_assert_ptr_nonnull(b.targets.masks);
        ck_assert_int_eq(b.targets.masks[3], 255); /* a's mask at 2×2, (1, 1) */
        rb_loader_destroy(loader);
    }
    rb_split_destroy(s);
}
END_TEST

/* ------------------------------------------------------------ bad input */

START_TEST(bad_masks_are_refused)
{
    char root[PATH_MAX];
    uint8_t bad[S][S];

    /* class 21 with the 21 VOC classes */
    make_voc(root, sizeof root, "v1");
    memcpy(bad, b_mask, sizeof bad);
    bad[2][3] = 21;
    write_mask(root, "SegmentationClass/b.png", &bad[0][0], S, S, false);
    expect_refused(root, RB_SPLIT_TRAIN, 2, RB_ERR_CORRUPT,
                   "@/SegmentationClass/b.png: pixel (row 2, column 3) holds class 21, but there are 21 classes "
                   "(0-20, from the 21 Pascal VOC classes, as @/classes.txt is absent) and 255 = ignore; fix the "
                   "mask or name the class in classes.txt");
    /* 254 is no class either; 255 is ignore, and fine (a's mask has it) */
    bad[2][3] = 254;
    write_mask(root, "SegmentationClass/b.png", &bad[0][0], S, S, true);
    expect_refused(root, RB_SPLIT_TRAIN, 2, RB_ERR_CORRUPT,
                   "@/SegmentationClass/b.png: pixel (row 2, column 3) holds class 254, but there are 21 classes "
                   "(0-20, from the 21 Pascal VOC classes, as @/classes.txt is absent) and 255 = ignore; fix the "
                   "mask or name the class in classes.txt");

    /* a mask of another size */
    make_voc(root, sizeof root, "v2");
    write_mask(root, "SegmentationClass/a.png", &c_mask[0][0], 2, 2, false);
    expect_refused(root, RB_SPLIT_TEST, 0, RB_ERR_CORRUPT,
                   "@/SegmentationClass/a.png is 2×2 pixels but its image @/JPEGImages/a.png is 4×4; a mask must "
                   "have its image's size (width×height)");

    /* a missing mask */
    make_voc(root, sizeof root, "v3");
    {
        char path[PATH_MAX];
        sub_path(path, sizeof path, root, "SegmentationClass/b.png");
        ck_assert_int_eq(unlink(path), 0);
    }
    expect_refused(root, RB_SPLIT_TRAIN, 2, RB_ERR_NOT_FOUND,
                   "@/SegmentationClass/b.png: no mask for image 'b' (listed in "
                   "@/ImageSets/Segmentation/train.txt line 3): add it, or remove the id from the list");

    /* an RGB mask, a JPEG mask, a truncated mask */
    make_voc(root, sizeof root, "v4");
    write_rgb_png(root, "SegmentationClass/a.png", &a_planes[0][0][0], S, S);
    expect_refused(root, RB_SPLIT_TEST, 0, RB_ERR_CORRUPT,
                   "@/SegmentationClass/a.png: a mask must hold class ids as 8-bit grayscale or palette indices, "
                   "but this PNG is 8-bit RGB; save the class ids as a grayscale or palette PNG");
    {
        uint8_t gray[S * S];
        test_bytes jpg;
        char path[PATH_MAX];
        memset(gray, 0, sizeof gray);
        jpg = test_jpeg(gray, S, S, 1, 100);
        sub_path(path, sizeof path, root, "SegmentationClass/a.png");
        test_write_bytes(path, jpg.data, jpg.size);
        free(jpg.data);
        expect_refused(root, RB_SPLIT_TEST, 0, RB_ERR_CORRUPT,
                       "@/SegmentationClass/a.png: a mask must be a PNG of class ids (8-bit grayscale or palette "
                       "indices), not a JPEG, whose lossy compression changes the ids; save it as PNG");
        write_mask(root, "SegmentationClass/a.png", &a_mask[0][0], S, S, true);
        {
            size_t n;
            unsigned char *bytes = read_whole_file(path, &n);
            char want[256];
            test_write_bytes(path, bytes, n - 20);
            free(bytes);
            snprintf(want, sizeof want,
                     "@/SegmentationClass/a.png: truncated PNG: the file ends at byte %zu, inside the image", n - 20);
            expect_refused(root, RB_SPLIT_TEST, 0, RB_ERR_CORRUPT, want);
        }
    }
}
END_TEST

START_TEST(bad_images_are_refused)
{
    char root[PATH_MAX], path[PATH_MAX];

    /* an id naming no image */
    make_voc(root, sizeof root, "v1");
    write_rel(root, "ImageSets/Segmentation/val.txt", "a\nd\nzz\n");
    expect_refused(root, RB_SPLIT_TEST, 0, RB_ERR_NOT_FOUND,
                   "@/ImageSets/Segmentation/val.txt line 3 names image 'zz', but neither @/JPEGImages/zz.jpg nor "
                   "@/JPEGImages/zz.png exists; add the image or remove the id from the list");

    /* a corrupt PNG: the signature, then junk */
    make_voc(root, sizeof root, "v2");
    sub_path(path, sizeof path, root, "JPEGImages/b.png");
    test_write_bytes(path, "\x89PNG\r\n\x1a\nthis is not a chunk at all", 33);
    expect_refused(root, RB_SPLIT_TRAIN, 2, RB_ERR_CORRUPT,
                   "@/JPEGImages/b.png: corrupt PNG (libpng: [20]is[20]: invalid chunk type)");

    /* a truncated JPEG */
    make_voc(root, sizeof root, "v3");
    sub_path(path, sizeof path, root, "JPEGImages/d.jpg");
    {
        size_t n;
        unsigned char *bytes = read_whole_file(path, &n);
        char want[256];
        test_write_bytes(path, bytes, n / 2);
        free(bytes);
        snprintf(want, sizeof want,
                 "@/JPEGImages/d.jpg: truncated JPEG: the file ends at byte %zu, inside the image (Premature end of "
                 "JPEG file)",
                 n / 2);
        expect_refused(root, RB_SPLIT_TEST, 0, RB_ERR_CORRUPT, want);
    }

    /* a zero-byte image */
    make_voc(root, sizeof root, "v4");
    sub_path(path, sizeof path, root, "JPEGImages/a.png");
    test_write_bytes(path, "", 0);
    expect_refused(root, RB_SPLIT_TEST, 0, RB_ERR_CORRUPT,
                   "@/JPEGImages/a.png is empty (0 bytes): not a PNG or JPEG image");
}
END_TEST

START_TEST(bad_lists_and_folders_are_refused)
{
    char root[PATH_MAX], path[PATH_MAX];
    make_voc(root, sizeof root, "v1");
    sub_path(path, sizeof path, root, "ImageSets/Segmentation/train.txt");
    ck_assert_int_eq(unlink(path), 0);
    expect_refused(root, RB_SPLIT_TRAIN, 2, RB_ERR_NOT_FOUND,
                   "cannot open @/ImageSets/Segmentation/train.txt: no such file (voc-seg:DIR reads "
                   "ImageSets/Segmentation/train.txt and val.txt)");
    write_rel(root, "ImageSets/Segmentation/train.txt", "a\nb\nc\nb\n");
    expect_refused(root, RB_SPLIT_TRAIN, 2, RB_ERR_CORRUPT,
                   "@/ImageSets/Segmentation/train.txt: line 4 repeats id 'b' of line 2; list each image once");
    write_rel(root, "ImageSets/Segmentation/train.txt", "a\n../b\n");
    expect_refused(root, RB_SPLIT_TRAIN, 2, RB_ERR_CORRUPT,
                   "@/ImageSets/Segmentation/train.txt: line 2 holds a '/': an id names a file in JPEGImages/ and "
                   "SegmentationClass/, without folder or extension");
    write_rel(root, "ImageSets/Segmentation/train.txt", "\n \n");
    expect_refused(root, RB_SPLIT_TRAIN, 2, RB_ERR_CORRUPT,
                   "@/ImageSets/Segmentation/train.txt names no image: write one id per line");

    write_rel(root, "classes.txt", "background\n\ncat\n");
    expect_refused(root, RB_SPLIT_TEST, 0, RB_ERR_CORRUPT,
                   "@/classes.txt: line 2 is blank, but class names follow it: line N names class N - 1, so remove "
                   "the blank line");
    {
        char text[256 * 8 + 1];
        size_t used = 0;
        for (int k = 0; k < 256; k++)
            used += (size_t)snprintf(text + used, sizeof text - used, "c%d\n", k);
        write_rel(root, "classes.txt", text);
        expect_refused(root, RB_SPLIT_TEST, 0, RB_ERR_CORRUPT,
                       "@/classes.txt names more than 255 classes: masks hold 8-bit class ids and 255 means ignore");
    }

    expect_refused("/nonexistent/voc", RB_SPLIT_TRAIN, 0, RB_ERR_NOT_FOUND,
                   "voc-seg:@: cannot open the folder @: No such file or directory");
    sub_path(path, sizeof path, root, "classes.txt");
    expect_refused(path, RB_SPLIT_TRAIN, 0, RB_ERR_INVALID_ARGUMENT,
                   "voc-seg:@: @ is not a folder; give the VOC folder (the one holding JPEGImages/)");
}
END_TEST

START_TEST(specs_name_the_kind)
{
    rb_dataset_spec *spec = malloc(sizeof *spec);
    ck_assert_int_eq(rb_dataset_spec_parse(spec, "voc-seg:/data/VOC2012"), RB_OK);
    ck_assert_int_eq(spec->kind, RB_DATASET_VOC_SEG);
    ck_assert_str_eq(spec->dir, "/data/VOC2012");
    ck_assert_str_eq(rb_data_source_str(RB_DATASET_VOC_SEG), "voc-seg");
    ck_assert_int_eq(rb_dataset_spec_parse(spec, "voc-seg"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(),
                     "dataset spec 'voc-seg' needs a folder: voc-seg:DIR (only fashion-mnist has a default, "
                     "/usr/share/datasets/fashion-mnist)");
    ck_assert_int_eq(rb_dataset_spec_parse(spec, "voc-sge:/x"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "unknown dataset kind 'voc-sge' in spec 'voc-sge:/x'; did you mean 'voc-seg'? "
                                      "(kinds: mnist, fashion-mnist, cifar10, cifar100, npy, voc-seg, coco, folder, list)");
    free(spec);
}
END_TEST

/* ------------------------------------------------------------ the lists */

static void expect_list_fault(const char *text, rb_voc_list_kind kind, const char *want)
{
    rb_voc_list l;
    ck_assert_int_eq(rb_voc_parse_list(text, strlen(text), kind, "L", &l), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), want);
    ck_assert_int_eq(l.count, 0);
    ck_assert_ptr_null(l.items);
}

START_TEST(lists_parse_exactly)
{
    rb_voc_list l;
    static const char ids[] = "\xef\xbb\xbf  2007_000032\r\n\n\t2007_000039 \n2008_000001";
    ck_assert_int_eq(rb_voc_parse_list(ids, sizeof ids - 1, RB_VOC_IDS, "L", &l), RB_OK);
    ck_assert_int_eq(l.count, 3);
    ck_assert_str_eq(l.items[0], "2007_000032");
    ck_assert_str_eq(l.items[1], "2007_000039");
    ck_assert_str_eq(l.items[2], "2008_000001");
    ck_assert_int_eq(l.lines[0], 1);
    ck_assert_int_eq(l.lines[1], 3);
    ck_assert_int_eq(l.lines[2], 4);
    rb_voc_list_free(&l);
    ck_assert_int_eq(l.count, 0);
    rb_voc_list_free(NULL);
    /* names keep inner spaces and UTF-8 */
    static const char names[] = "background\npotted plant\nv\xc3\xa9lo\n";
    ck_assert_int_eq(rb_voc_parse_list(names, strlen(names), RB_VOC_CLASSES, "L", &l), RB_OK);
    ck_assert_int_eq(l.count, 3);
    ck_assert_str_eq(l.items[1], "potted plant");
    ck_assert_str_eq(l.items[2], "v\xc3\xa9lo");
    rb_voc_list_free(&l);

    expect_list_fault("", RB_VOC_IDS, "L names no image: write one id per line");
    expect_list_fault("\n\n", RB_VOC_CLASSES, "L names no class: write one name per line, background first");
    expect_list_fault("a\nb c\n", RB_VOC_IDS,
                      "L: line 2 holds a space: write one id per line (a list of 'ID FLAG' lines is ImageSets/Main's "
                      "per-class format, not a segmentation list)");
    expect_list_fault("a\n..\n", RB_VOC_IDS, "L: line 2 is '.' or '..', not a file name");
    expect_list_fault("a\x01\n", RB_VOC_IDS, "L: line 1 holds a control character");
    expect_list_fault("a\n\xff\xfe\n", RB_VOC_CLASSES, "L: line 2 is not well-formed UTF-8");
    expect_list_fault("x\ny\nx\ny\n", RB_VOC_CLASSES,
                      "L: line 3 repeats class name 'x' of line 1; list each class once");
    {
        char long_id[RB_VOC_MAX_NAME + 2];
        memset(long_id, 'i', sizeof long_id - 1);
        long_id[sizeof long_id - 1] = '\0';
        expect_list_fault(long_id, RB_VOC_IDS, "L: line 1 is longer than 200 bytes");
    }
    /* a NUL inside a line */
    ck_assert_int_eq(rb_voc_parse_list("ab\0c\n", 5, RB_VOC_IDS, "L", &l), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), "L: line 1 holds a NUL byte (is this a text file?)");
}
END_TEST

static Suite *voc_suite(void)
{
    Suite *s = suite_create("voc");
    TCase *tc = tcase_create("voc");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, val_split_as_stored);
    tcase_add_test(tc, images_of_two_sizes_need_a_size);
    tcase_add_test(tc, resized_at_open_time_as_worked_by_hand);
    tcase_add_test(tc, open_time_resize_is_the_split_resize);
    tcase_add_test(tc, classes_txt_names_the_classes);
    tcase_add_test(tc, selection_carries_ids_and_sizes);
    tcase_add_test(tc, bad_masks_are_refused);
    tcase_add_test(tc, bad_images_are_refused);
    tcase_add_test(tc, bad_lists_and_folders_are_refused);
    tcase_add_test(tc, specs_name_the_kind);
    tcase_add_test(tc, lists_parse_exactly);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    rb_log_set_level(RB_LOG_ERROR);
    return run_suite(voc_suite());
}
