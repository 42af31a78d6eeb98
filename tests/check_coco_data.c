/* coco:... datasets (src/data/coco_data.c): a COCO folder made here (PNG
 * images of 8×6 and 4×4 pixels, an annotation file with crowd regions,
 * boxes past the image edge, unsorted category ids and an image without
 * annotations) read back box by box against values worked out by hand;
 * resizing moving the boxes; the spec forms; the folder make-scenes writes
 * read as coco:DIR; and the bad inputs of issue 19 refused with one line
 * naming the file and the entry. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <robusta/coco.h>
#include <robusta/data.h>
#include <robusta/status.h>

#include "data/image.h"
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

static void path_in(char *out, size_t size, const char *rel)
{
    int n = snprintf(out, size, "%s/%s", dir, rel);
    ck_assert(n > 0 && (size_t)n < size);
}

/* An RGB PNG of h × w whose pixel (y, x) channel c is v(c, y, x). */
static uint8_t pixel(int c, int y, int x)
{
    return (uint8_t)(10 * y + 3 * x + 80 * c);
}

static void write_png(const char *rel, int h, int w)
{
    char path[PATH_MAX];
    uint8_t px[3 * 64];
    ck_assert(h * w <= 64);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                px[3 * (y * w + x) + c] = pixel(c, y, x);
    path_in(path, sizeof path, rel);
    ck_assert_int_eq(rb_image_write_png(path, px, h, w, 3, NULL, 0), RB_OK);
}

static void write_rel(const char *rel, const char *text)
{
    char path[PATH_MAX];
    path_in(path, sizeof path, rel);
    write_text(path, text);
}

static void make_sub(const char *rel)
{
    char path[PATH_MAX];
    path_in(path, sizeof path, rel);
    ck_assert_int_eq(mkdir(path, 0700), 0);
}

/* Three images of 8 wide × 6 high in file order 7 (a.png), 3 (b.png)
 * and 5 (c.png, no annotations); categories listed as ids 9 "shoe"
 * then 2 "bag", so class 0 is bag (id 2) and class 1 shoe (id 9).
 * Annotations, in file order:
 *   id 1, image 7, shoe, [1, 1, 2, 3]        -> (1, 1, 3, 4) class 1
 *   id 2, image 3, bag,  [0, 0, 4, 4]        -> (0, 0, 4, 4) class 0
 *   id 3, image 7, bag,  [6, 4, 5, 5]        -> clipped to (6, 4, 8, 6) class 0
 *   id 4, image 7, shoe, [0, 0, 8, 6] crowd  -> left out
 *   id 5, image 7, shoe, [-2, 2, 1.5, 1]     -> clipped to (0, 2, -0.5 ...):
 *                                               x2 = -0.5 clipped to 0: empty, dropped
 *   id 6, image 3, shoe, [1, 1, 0, 2]        -> zero width: dropped
 *   id 7, image 7, shoe, [2.5, 0.5, 1, 1]    -> (2.5, 0.5, 3.5, 1.5) class 1
 * Image 7 keeps boxes 1, 3, 7 in file order: classes 1, 0, 1, label 1
 * (the most frequent); image 3 keeps box 2: label 0; image 5 none: 0. */
static const char instances[] =
    "{\"images\": [{\"id\": 7, \"file_name\": \"a.png\", \"width\": 8, \"height\": 6},\n"
    "  {\"id\": 3, \"file_name\": \"b.png\", \"width\": 8, \"height\": 6},\n"
    "  {\"id\": 5, \"file_name\": \"c.png\", \"width\": 8, \"height\": 6}],\n"
    " \"categories\": [{\"id\": 9, \"name\": \"shoe\"}, {\"id\": 2, \"name\": \"bag\"}],\n"
    " \"annotations\": [\n"
    "  {\"id\": 1, \"image_id\": 7, \"category_id\": 9, \"bbox\": [1, 1, 2, 3], \"area\": 6, \"iscrowd\": 0},\n"
    "  {\"id\": 2, \"image_id\": 3, \"category_id\": 2, \"bbox\": [0, 0, 4, 4], \"area\": 16, \"iscrowd\": 0},\n"
    "  {\"id\": 3, \"image_id\": 7, \"category_id\": 2, \"bbox\": [6, 4, 5, 5], \"area\": 25},\n"
    "  {\"id\": 4, \"image_id\": 7, \"category_id\": 9, \"bbox\": [0, 0, 8, 6], \"area\": 48, \"iscrowd\": 1},\n"
    "  {\"id\": 5, \"image_id\": 7, \"category_id\": 9, \"bbox\": [-2, 2, 1.5, 1], \"area\": 1.5},\n"
    "  {\"id\": 6, \"image_id\": 3, \"category_id\": 9, \"bbox\": [1, 1, 0, 2], \"area\": 0},\n"
    "  {\"id\": 7, \"image_id\": 7, \"category_id\": 9, \"bbox\": [2.5, 0.5, 1, 1], \"area\": 1}]}\n";

static void make_coco(void)
{
    make_sub("img");
    write_png("img/a.png", 6, 8);
    write_png("img/b.png", 6, 8);
    write_png("img/c.png", 6, 8);
    write_png("img/small.png", 4, 4);
    write_rel("train.json", instances);
}

static rb_split *open_spec(const char *spec, int size)
{
    rb_split_options so = {0};
    rb_split *s = NULL;
    so.size = size;
    ck_assert_msg(rb_split_open(&s, spec, RB_SPLIT_TRAIN, &so) == RB_OK, "%s: %s", spec, rb_last_error());
    return s;
}

/* The folder make_coco writes, at `size`. */
static rb_split *open_train(int size)
{
    char spec[3 * PATH_MAX];
    int n = snprintf(spec, sizeof spec, "coco:%s/img,%s/train.json", dir, dir);
    ck_assert(n > 0 && (size_t)n < sizeof spec);
    return open_spec(spec, size);
}

static void expect_box(const rb_targets *t, int64_t index, float x1, float y1, float x2, float y2, int64_t label)
{
    const rb_box *b = &t->boxes[index];
    ck_assert_msg(b->x1 == x1 && b->y1 == y1 && b->x2 == x2 && b->y2 == y2 && b->label == label,
                  "box %lld: (%g, %g, %g, %g) class %lld, expected (%g, %g, %g, %g) class %lld", (long long)index,
                  (double)b->x1, (double)b->y1, (double)b->x2, (double)b->y2, (long long)b->label, (double)x1,
                  (double)y1, (double)x2, (double)y2, (long long)label);
}

START_TEST(boxes_classes_and_ids_as_worked_out)
{
    rb_split *s;
    rb_targets t;
    int c, h, w;
    make_coco();
    s = open_train(0);
    ck_assert_int_eq(rb_split_kind(s), RB_DATASET_COCO);
    ck_assert_int_eq(rb_split_count(s), 3);
    rb_split_shape(s, &c, &h, &w);
    ck_assert(c == 3 && h == 6 && w == 8);
    /* classes by ascending category id */
    ck_assert_int_eq(rb_split_classes(s), 2);
    ck_assert_str_eq(rb_split_class_name(s, 0), "bag");
    ck_assert_str_eq(rb_split_class_name(s, 1), "shoe");
    ck_assert_int_eq(rb_split_class_source_id(s, 0), 2);
    ck_assert_int_eq(rb_split_class_source_id(s, 1), 9);
    ck_assert_int_eq(rb_split_class_source_id(s, 2), -1);
    /* examples in file order, with their ids, names and labels */
    ck_assert_int_eq(rb_split_example_source_id(s, 0), 7);
    ck_assert_int_eq(rb_split_example_source_id(s, 1), 3);
    ck_assert_int_eq(rb_split_example_source_id(s, 2), 5);
    ck_assert_int_eq(rb_split_example_source_id(s, 3), -1);
    ck_assert_str_eq(rb_split_example_name(s, 1), "b.png");
    ck_assert_int_eq(rb_split_labels(s)[0], 1);
    ck_assert_int_eq(rb_split_labels(s)[1], 0);
    ck_assert_int_eq(rb_split_labels(s)[2], 0);
    rb_split_stored_targets(s, &t);
    ck_assert_ptr_null(t.masks);
    ck_assert_ptr_nonnull(t.box_offsets);
    ck_assert_int_eq(t.box_offsets[0], 0);
    ck_assert_int_eq(t.box_offsets[1], 3);
    ck_assert_int_eq(t.box_offsets[2], 4);
    ck_assert_int_eq(t.box_offsets[3], 4);
    expect_box(&t, 0, 1, 1, 3, 4, 1);
    expect_box(&t, 1, 6, 4, 8, 6, 0);
    expect_box(&t, 2, 2.5f, 0.5f, 3.5f, 1.5f, 1);
    expect_box(&t, 3, 0, 0, 4, 4, 0);
    rb_split_destroy(s);
}
END_TEST

/* Stored pixels are the file's, planes per channel. */
START_TEST(pixels_are_the_files)
{
    rb_split *s;
    const uint8_t *px;
    make_coco();
    s = open_train(0);
    ck_assert_int_eq(rb_split_dtype(s), RB_DTYPE_U8);
    px = rb_split_images(s);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 8; x++)
                ck_assert_int_eq(px[(c * 6 + y) * 8 + x], pixel(c, y, x));
    rb_split_destroy(s);
}
END_TEST

/* size 4: every image (8×6) scales x by 1/2 and y by 2/3; box 1 (1, 1,
 * 3, 4) becomes (0.5, 2/3, 1.5, 8/3) in float, b's (0, 0, 4, 4) becomes
 * (0, 0, 2, 8/3). Each corner is float(corner × (4 / side)) computed in
 * double. */
START_TEST(resizing_moves_the_boxes)
{
    rb_split *s;
    rb_targets t;
    int64_t sh, sw;
    make_coco();
    s = open_train(4);
    rb_split_stored_targets(s, &t);
    expect_box(&t, 0, 0.5f, (float)(1.0 * (4.0 / 6.0)), 1.5f, (float)(4.0 * (4.0 / 6.0)), 1);
    expect_box(&t, 1, 3, (float)(4.0 * (4.0 / 6.0)), 4, 4, 0);
    expect_box(&t, 3, 0, 0, 2, (float)(4.0 * (4.0 / 6.0)), 0);
    rb_split_example_source_size(s, 0, &sh, &sw);
    ck_assert(sh == 6 && sw == 8);
    rb_split_destroy(s);
}
END_TEST

/* coco:DIR is make-scenes' layout; the test split comes from val. */
START_TEST(the_folder_form_reads_the_scenes_layout)
{
    char root[PATH_MAX];
    rb_split *s = NULL;
    make_sub("scenes");
    make_sub("scenes/JPEGImages");
    make_sub("scenes/annotations");
    write_png("scenes/JPEGImages/a.png", 6, 8);
    write_png("scenes/JPEGImages/c.png", 6, 8);
    write_rel("scenes/annotations/instances_train.json",
              "{\"images\": [{\"id\": 1, \"file_name\": \"a.png\", \"width\": 8, \"height\": 6}],"
              " \"categories\": [{\"id\": 1, \"name\": \"x\"}],"
              " \"annotations\": [{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 2, 2], "
              "\"area\": 4}]}");
    write_rel("scenes/annotations/instances_val.json",
              "{\"images\": [{\"id\": 4, \"file_name\": \"c.png\"}], \"categories\": [{\"id\": 1, \"name\": \"x\"}],"
              " \"annotations\": []}");
    path_in(root, sizeof root, "scenes");
    {
        char spec[PATH_MAX + 8];
        snprintf(spec, sizeof spec, "coco:%s", root);
        s = open_spec(spec, 0);
    }
    ck_assert_int_eq(rb_split_count(s), 1);
    ck_assert_int_eq(rb_split_example_source_id(s, 0), 1);
    rb_split_destroy(s);
    {
        char spec[PATH_MAX + 8];
        snprintf(spec, sizeof spec, "coco:%s", root);
        ck_assert_int_eq(rb_split_open(&s, spec, RB_SPLIT_TEST, NULL), RB_OK);
        ck_assert_int_eq(rb_split_count(s), 1);
        ck_assert_int_eq(rb_split_example_source_id(s, 0), 4);
        rb_split_destroy(s);
    }
}
END_TEST

START_TEST(spec_forms)
{
    rb_dataset_spec *spec = malloc(sizeof *spec);
    ck_assert_ptr_nonnull(spec);
    ck_assert_int_eq(rb_dataset_spec_parse(spec, "coco:imgs,train.json;vimgs,val.json"), RB_OK);
    ck_assert_int_eq(spec->kind, RB_DATASET_COCO);
    ck_assert_str_eq(spec->images[RB_SPLIT_TRAIN], "imgs");
    ck_assert_str_eq(spec->labels[RB_SPLIT_TRAIN], "train.json");
    ck_assert_str_eq(spec->images[RB_SPLIT_TEST], "vimgs");
    ck_assert_str_eq(spec->labels[RB_SPLIT_TEST], "val.json");
    ck_assert_int_eq(rb_dataset_spec_parse(spec, "coco:d"), RB_OK);
    ck_assert_str_eq(spec->images[RB_SPLIT_TEST], "d/JPEGImages");
    ck_assert_str_eq(spec->labels[RB_SPLIT_TRAIN], "d/annotations/instances_train.json");
    ck_assert_str_eq(spec->labels[RB_SPLIT_TEST], "d/annotations/instances_val.json");
    ck_assert_str_eq(rb_data_source_str(RB_DATASET_COCO), "coco");
    /* malformed: one line quoting the spec and the expected form */
    ck_assert_int_eq(rb_dataset_spec_parse(spec, "coco:"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "coco:IMAGES,ANNOTATIONS.json"));
    ck_assert_int_eq(rb_dataset_spec_parse(spec, "coco:a,b,c"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "'coco:a,b,c'"));
    ck_assert_int_eq(rb_dataset_spec_parse(spec, "coco:a;b"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_dataset_spec_parse(spec, "coc:a"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "did you mean 'coco'"));
    free(spec);
}
END_TEST

/* Opens `spec` (train), expects `code` and every fragment in the message. */
static void expect_refusal(const char *spec, rb_status code, const char *frag1, const char *frag2)
{
    rb_split *s = NULL;
    rb_status st = rb_split_open(&s, spec, RB_SPLIT_TRAIN, NULL);
    ck_assert_msg(st == code, "%s: status %d (%s), expected %d", spec, (int)st, rb_last_error(), (int)code);
    ck_assert_ptr_null(s);
    ck_assert_msg(strchr(rb_last_error(), '\n') == NULL, "two lines: %s", rb_last_error());
    ck_assert_msg(strstr(rb_last_error(), frag1) != NULL, "'%s' lacks '%s'", rb_last_error(), frag1);
    if (frag2 != NULL)
        ck_assert_msg(strstr(rb_last_error(), frag2) != NULL, "'%s' lacks '%s'", rb_last_error(), frag2);
}

static void spec_of(char *out, size_t size, const char *images, const char *json)
{
    int n = snprintf(out, size, "coco:%s/%s,%s/%s", dir, images, dir, json);
    ck_assert(n > 0 && (size_t)n < size);
}

START_TEST(bad_inputs_get_one_line)
{
    char spec[3 * PATH_MAX];
    make_coco();
    /* an image the file lists but the folder lacks */
    write_rel("missing.json", "{\"images\": [{\"id\": 1, \"file_name\": \"zz.png\"}], \"categories\": [{\"id\": 1}],"
                              " \"annotations\": []}");
    spec_of(spec, sizeof spec, "img", "missing.json");
    expect_refusal(spec, RB_ERR_NOT_FOUND, "zz.png", "image 0 (id 1)");
    /* a size that disagrees with the file */
    write_rel("size.json", "{\"images\": [{\"id\": 1, \"file_name\": \"a.png\", \"width\": 9, \"height\": 6}],"
                           " \"categories\": [{\"id\": 1}], \"annotations\": []}");
    spec_of(spec, sizeof spec, "img", "size.json");
    expect_refusal(spec, RB_ERR_CORRUPT, "says 9×6", "is 8×6");
    /* images of two sizes without a size */
    write_rel("mixed.json", "{\"images\": [{\"id\": 1, \"file_name\": \"a.png\"}, {\"id\": 2, \"file_name\": "
                            "\"small.png\"}], \"categories\": [{\"id\": 1}], \"annotations\": []}");
    spec_of(spec, sizeof spec, "img", "mixed.json");
    expect_refusal(spec, RB_ERR_INVALID_ARGUMENT, "--image-size", "small.png");
    /* no file name */
    write_rel("noname.json", "{\"images\": [{\"id\": 1}], \"categories\": [{\"id\": 1}], \"annotations\": []}");
    spec_of(spec, sizeof spec, "img", "noname.json");
    expect_refusal(spec, RB_ERR_CORRUPT, "file_name", "noname.json");
    /* no categories, no images */
    write_rel("nocat.json", "{\"images\": [{\"id\": 1, \"file_name\": \"a.png\"}], \"categories\": [],"
                            " \"annotations\": []}");
    spec_of(spec, sizeof spec, "img", "nocat.json");
    expect_refusal(spec, RB_ERR_INVALID_ARGUMENT, "no categories", "nocat.json");
    write_rel("noimg.json", "{\"images\": [], \"categories\": [{\"id\": 1}], \"annotations\": []}");
    spec_of(spec, sizeof spec, "img", "noimg.json");
    expect_refusal(spec, RB_ERR_INVALID_ARGUMENT, "no images", "noimg.json");
    /* the parser's refusals come through: an annotation on an unknown image */
    write_rel("orphan.json", "{\"images\": [{\"id\": 1, \"file_name\": \"a.png\"}], \"categories\": [{\"id\": 1}],"
                             " \"annotations\": [{\"id\": 4, \"image_id\": 2, \"category_id\": 1, \"bbox\": [0, 0, 1, "
                             "1], \"area\": 1}]}");
    spec_of(spec, sizeof spec, "img", "orphan.json");
    expect_refusal(spec, RB_ERR_CORRUPT, "orphan.json", "image");
    /* a corrupt image */
    write_rel("img/bad.png", "\x89PNG\r\n\x1a\n truncated");
    write_rel("bad.json", "{\"images\": [{\"id\": 1, \"file_name\": \"bad.png\"}], \"categories\": [{\"id\": 1}],"
                          " \"annotations\": []}");
    spec_of(spec, sizeof spec, "img", "bad.json");
    expect_refusal(spec, RB_ERR_CORRUPT, "bad.png", NULL);
    /* the image folder is a file */
    spec_of(spec, sizeof spec, "train.json", "train.json");
    expect_refusal(spec, RB_ERR_INVALID_ARGUMENT, "is not a folder", NULL);
    /* a test split the spec does not have */
    {
        rb_split *s = NULL;
        spec_of(spec, sizeof spec, "img", "train.json");
        ck_assert_int_eq(rb_split_open(&s, spec, RB_SPLIT_TEST, NULL), RB_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_nonnull(strstr(rb_last_error(), "has no test split"));
    }
}
END_TEST

/* Selection keeps the images' ids and the classes' ids with them. */
START_TEST(selection_carries_the_ids)
{
    rb_split *s, *sub = NULL;
    rb_split_options so = {0};
    make_coco();
    s = open_train(0);
    so.per_class = 1; /* one image of class 0 (the first: b) and one of class 1 (a), by seed 0 */
    ck_assert_int_eq(rb_split_apply(&sub, s, &so), RB_OK);
    ck_assert_int_eq(rb_split_count(sub), 2);
    for (int64_t i = 0; i < 2; i++) {
        const int64_t src = rb_split_source_indices(sub)[i];
        ck_assert_int_eq(rb_split_example_source_id(sub, i), rb_split_example_source_id(s, src));
    }
    ck_assert_int_eq(rb_split_class_source_id(sub, 1), 9);
    rb_split_destroy(sub);
    rb_split_destroy(s);
}
END_TEST

/* make-scenes' folder read both ways: coco:DIR gives the voc-seg split's
 * images, and each image's boxes are its annotations' [x, y, w, h] as
 * corners (all inside the scene, none crowd), category c as class c - 1. */
START_TEST(scenes_read_as_coco_match_their_annotations)
{
    const char *fm = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
    char root[PATH_MAX], spec[PATH_MAX + 16], json[PATH_MAX + 64];
    rb_scenes_options o;
    rb_split *coco = NULL, *voc = NULL;
    rb_coco *gt = NULL;
    rb_targets t;
    if (access(fm, R_OK) != 0) {
        printf("SKIP: scenes_read_as_coco_match_their_annotations: Fashion-MNIST is not installed (%s)\n", fm);
        return;
    }
    path_in(root, sizeof root, "scenes");
    rb_scenes_defaults(&o);
    o.out = root;
    o.train_images = 6;
    o.val_images = 2;
    o.size = 32;
    o.min_objects = 2;
    o.max_objects = 3;
    ck_assert_msg(rb_scenes_make(&o, NULL, NULL) == RB_OK, "%s", rb_last_error());
    snprintf(spec, sizeof spec, "coco:%s", root);
    ck_assert_msg(rb_split_open(&coco, spec, RB_SPLIT_TRAIN, NULL) == RB_OK, "%s", rb_last_error());
    snprintf(spec, sizeof spec, "voc-seg:%s", root);
    ck_assert_msg(rb_split_open(&voc, spec, RB_SPLIT_TRAIN, NULL) == RB_OK, "%s", rb_last_error());
    snprintf(json, sizeof json, "%s/annotations/instances_train.json", root);
    ck_assert_int_eq(rb_coco_load(&gt, json), RB_OK);

    ck_assert_int_eq(rb_split_count(coco), 6);
    ck_assert_int_eq(rb_split_count(voc), 6);
    ck_assert_int_eq(memcmp(rb_split_images(coco), rb_split_images(voc), 6 * 3 * 32 * 32), 0);
    ck_assert_int_eq(rb_split_classes(coco), 5); /* the voc split adds the background */
    for (int64_t c = 0; c < 5; c++)
        ck_assert_str_eq(rb_split_class_name(coco, c), rb_split_class_name(voc, c + 1));
    rb_split_stored_targets(coco, &t);
    ck_assert_int_eq(t.box_offsets[6], (int64_t)gt->n_annotations);
    for (size_t a = 0; a < gt->n_annotations; a++) {
        const rb_coco_annotation *an = &gt->annotations[a];
        const int64_t i = an->image_id - 1; /* scenes number images from 1, in order */
        ck_assert_int_eq(rb_split_example_source_id(coco, i), an->image_id);
        ck_assert_int_eq(an->iscrowd, 0);
        ck_assert(t.box_offsets[i] <= (int64_t)a && (int64_t)a < t.box_offsets[i + 1]);
        expect_box(&t, (int64_t)a, (float)an->bbox[0], (float)an->bbox[1], (float)(an->bbox[0] + an->bbox[2]),
                   (float)(an->bbox[1] + an->bbox[3]), an->category_id - 1);
    }
    rb_coco_destroy(gt);
    rb_split_destroy(voc);
    rb_split_destroy(coco);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("coco_data");
    TCase *tc = tcase_create("coco");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, boxes_classes_and_ids_as_worked_out);
    tcase_add_test(tc, pixels_are_the_files);
    tcase_add_test(tc, resizing_moves_the_boxes);
    tcase_add_test(tc, the_folder_form_reads_the_scenes_layout);
    tcase_add_test(tc, spec_forms);
    tcase_add_test(tc, bad_inputs_get_one_line);
    tcase_add_test(tc, selection_carries_the_ids);
    tcase_add_test(tc, scenes_read_as_coco_match_their_annotations);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
