/* Image folders (folder:DIR, src/data/folder.c) and image lists
 * (list:DIR,TRAIN,TEST, src/data/image_list.c, whose parser is compiled
 * in) through the public API: torchvision ImageFolder's classes and file
 * order, train's classes for the test split, pixels as stored, resizing to
 * one size, names and source sizes; the list parser on exact cases; and
 * every bad folder, list and line refused with one line naming it. */
#include "config.h"

#include <stdint.h>
#include <sys/stat.h>

#include <robusta/data.h>

#include "data/image_list.h"
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

static void mkdirs(const char *rel)
{
    char path[1024], *p;
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    for (p = path + strlen(dir) + 1; *p != '\0'; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    mkdir(path, 0755);
}

/* An RGB image whose pixel (y, x) channel c is a function of its `tag`, so
 * that every file's pixels can be told apart. */
static unsigned char value(int tag, int y, int x, int c)
{
    return (unsigned char)(tag * 31 + y * 7 + x * 3 + c * 50);
}

static void write_png(const char *rel, int tag, int h, int w)
{
    unsigned char *rows = malloc((size_t)h * (size_t)w * 3);
    char path[1024];
    test_bytes b;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                rows[(y * w + x) * 3 + c] = value(tag, y, x, c);
    b = test_png(w, h, 8, PNG_COLOR_TYPE_RGB, rows, NULL, 0, NULL, 0, NULL, 0);
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    test_write_bytes(path, b.data, b.size);
    free(b.data);
    free(rows);
}

static void write_jpeg(const char *rel, int h, int w)
{
    unsigned char *px = malloc((size_t)h * (size_t)w * 3);
    char path[1024];
    test_bytes b;
    memset(px, 128, (size_t)h * (size_t)w * 3);
    b = test_jpeg(px, w, h, 3, 95);
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    test_write_bytes(path, b.data, b.size);
    free(b.data);
    free(px);
}

static void put_text(const char *rel, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    test_write_bytes(path, text, strlen(text));
}

static rb_status open_split(rb_split **s, const char *root, rb_split_which which, int size)
{
    char spec[1024];
    rb_split_options o = {.size = size};
    snprintf(spec, sizeof spec, "folder:%s/%s", dir, root);
    return rb_split_open(s, spec, which, &o);
}

/* ImageFolder's order: classes sorted; in a class, os.walk's folders
 * sorted by path as strings, so "sub" < "sub b" < "sub-x" < "sub/deeper"
 * (space and '-' sort before '/'), files sorted in each; .txt skipped,
 * extensions in any case. The test split numbers its classes as train
 * does, although it has no "dog". */
START_TEST(classes_order_labels_and_names_are_imagefolders)
{
    static const char *const train_names[] = {"cat/a.jpg",        "cat/b.png",        "cat/sub/c.png",
                                              "cat/sub b/d.png",  "cat/sub-x/E.PNG",  "cat/sub/deeper/f.png",
                                              "dog/g.jpeg",       "zebra/h.png"};
    static const int64_t train_labels[] = {0, 0, 0, 0, 0, 0, 1, 2};
    rb_split *s = NULL;
    mkdirs("f1/train/cat/sub/deeper");
    mkdirs("f1/train/cat/sub b");
    mkdirs("f1/train/cat/sub-x");
    mkdirs("f1/train/dog");
    mkdirs("f1/train/zebra");
    mkdirs("f1/val/cat");
    mkdirs("f1/val/zebra");
    write_png("f1/train/cat/b.png", 1, 6, 5);
    write_jpeg("f1/train/cat/a.jpg", 6, 5);
    write_png("f1/train/cat/sub/c.png", 2, 6, 5);
    write_png("f1/train/cat/sub b/d.png", 3, 6, 5);
    write_png("f1/train/cat/sub-x/E.PNG", 4, 6, 5);
    write_png("f1/train/cat/sub/deeper/f.png", 5, 6, 5);
    put_text("f1/train/cat/notes.txt", "not an image");
    write_jpeg("f1/train/dog/g.jpeg", 6, 5);
    write_png("f1/train/zebra/h.png", 6, 6, 5);
    write_png("f1/val/zebra/z.png", 7, 6, 5);
    write_png("f1/val/cat/y.png", 8, 6, 5);

    ck_assert_msg(open_split(&s, "f1", RB_SPLIT_TRAIN, 0) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_count(s), 8);
    ck_assert_int_eq(rb_split_classes(s), 3);
    ck_assert_str_eq(rb_split_class_name(s, 0), "cat");
    ck_assert_str_eq(rb_split_class_name(s, 2), "zebra");
    ck_assert_int_eq(rb_split_kind(s), RB_DATASET_FOLDER);
    ck_assert_str_eq(rb_data_source_str(RB_DATASET_FOLDER), "folder");
    for (int i = 0; i < 8; i++) {
        ck_assert_str_eq(rb_split_example_name(s, i), train_names[i]);
        ck_assert_int_eq(rb_split_labels(s)[i], train_labels[i]);
    }
    {
        /* stored as planes, exactly the file's pixels: b.png is tag 1 */
        int C, H, W;
        const uint8_t *px = (const uint8_t *)rb_split_images(s) + 1 * 3 * 6 * 5;
        int64_t h, w;
        rb_split_stored_shape(s, &C, &H, &W);
        ck_assert(C == 3 && H == 6 && W == 5);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 6; y++)
                for (int x = 0; x < 5; x++)
                    ck_assert_uint_eq(px[(c * 6 + y) * 5 + x], value(1, y, x, c));
        rb_split_example_source_size(s, 1, &h, &w);
        ck_assert(h == 6 && w == 5);
    }
    rb_split_destroy(s);

    ck_assert_msg(open_split(&s, "f1", RB_SPLIT_TEST, 0) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_count(s), 2);
    ck_assert_int_eq(rb_split_classes(s), 3);
    ck_assert_str_eq(rb_split_example_name(s, 0), "cat/y.png");
    ck_assert_int_eq(rb_split_labels(s)[0], 0);
    ck_assert_str_eq(rb_split_example_name(s, 1), "zebra/z.png");
    ck_assert_int_eq(rb_split_labels(s)[1], 2); /* not 1: dog keeps its number */
    rb_split_destroy(s);
}
END_TEST

/* Images of several sizes are resized to the size asked for (a flat
 * colour stays itself through Pillow's normalized weights), keeping their
 * size in the file; without a size they are refused in one line. */
START_TEST(images_of_several_sizes_need_and_get_one_size)
{
    rb_split *s = NULL;
    mkdirs("f2/train/a");
    mkdirs("f2/test/a");
    write_jpeg("f2/train/a/big.jpg", 40, 30);
    write_jpeg("f2/train/a/small.jpg", 5, 9);
    write_jpeg("f2/test/a/t.jpg", 8, 8);
    ck_assert_int_eq(open_split(&s, "f2", RB_SPLIT_TRAIN, 0), RB_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "small.jpg is 9×5 pixels but"));
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "--image-size"));
    ck_assert_msg(open_split(&s, "f2", RB_SPLIT_TRAIN, 12) == RB_OK, "%s", rb_last_error());
    {
        int C, H, W;
        int64_t h, w;
        const uint8_t *px = rb_split_images(s);
        rb_split_stored_shape(s, &C, &H, &W);
        ck_assert(C == 3 && H == 12 && W == 12);
        for (int k = 0; k < 2 * 3 * 12 * 12; k++)
            ck_assert_uint_eq(px[k], 128);
        rb_split_example_source_size(s, 0, &h, &w);
        ck_assert(h == 40 && w == 30);
    }
    rb_split_destroy(s);
}
END_TEST

static void refused(const char *root, rb_split_which which, rb_status want, const char *part1, const char *part2)
{
    rb_split *s = NULL;
    rb_status got = open_split(&s, root, which, 8);
    ck_assert_msg(got == want, "%s: status %d (%s)", root, (int)got, rb_last_error());
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(rb_last_error(), part1) != NULL, "%s: '%s' lacks '%s'", root, rb_last_error(), part1);
    ck_assert_msg(part2 == NULL || strstr(rb_last_error(), part2) != NULL, "%s: '%s' lacks '%s'", root,
                  rb_last_error(), part2);
    ck_assert_ptr_null(strchr(rb_last_error(), '\n'));
}

START_TEST(bad_folders_are_refused_in_one_line)
{
    char path[1024];
    /* no train folder; no test or val folder */
    mkdirs("none/test/a");
    refused("none", RB_SPLIT_TRAIN, RB_ERR_NOT_FOUND, "/none/train", "DIR/train/CLASS");
    mkdirs("notest/train/a");
    write_png("notest/train/a/x.png", 1, 4, 4);
    refused("notest", RB_SPLIT_TEST, RB_ERR_NOT_FOUND, "neither", "/notest/val");
    refused("missing", RB_SPLIT_TRAIN, RB_ERR_NOT_FOUND, "is not a folder", NULL);
    /* no class folders */
    mkdirs("flat/train");
    write_png("flat/train/x.png", 1, 4, 4);
    refused("flat", RB_SPLIT_TRAIN, RB_ERR_INVALID_ARGUMENT, "has no class folders", NULL);
    /* a class folder with no images (a text file does not count) */
    mkdirs("empty/train/a");
    mkdirs("empty/train/b");
    write_png("empty/train/a/x.png", 1, 4, 4);
    put_text("empty/train/b/readme.txt", "hi");
    refused("empty", RB_SPLIT_TRAIN, RB_ERR_INVALID_ARGUMENT, "/empty/train/b holds no PNG or JPEG images", NULL);
    /* an image format ImageFolder reads and robusta does not */
    mkdirs("bmp/train/a");
    write_png("bmp/train/a/x.png", 1, 4, 4);
    put_text("bmp/train/a/y.bmp", "BM....");
    refused("bmp", RB_SPLIT_TRAIN, RB_ERR_UNSUPPORTED, "/bmp/train/a/y.bmp: robusta reads PNG and JPEG", NULL);
    /* a test folder that is no class of train, with a suggestion */
    mkdirs("extra/train/horse");
    mkdirs("extra/test/hose");
    write_png("extra/train/horse/x.png", 1, 4, 4);
    write_png("extra/test/hose/y.png", 1, 4, 4);
    refused("extra", RB_SPLIT_TEST, RB_ERR_INVALID_ARGUMENT, "/extra/test/hose is not a class",
            "did you mean 'horse'?");
    /* not an image, a truncated JPEG and a 0x0 PNG: the decoder's line, naming the file */
    mkdirs("junk/train/a");
    put_text("junk/train/a/x.jpg", "this is not a JPEG");
    refused("junk", RB_SPLIT_TRAIN, RB_ERR_CORRUPT, "/junk/train/a/x.jpg", NULL);
    mkdirs("cut/train/a");
    {
        unsigned char px[16 * 16 * 3];
        test_bytes b;
        memset(px, 90, sizeof px);
        b = test_jpeg(px, 16, 16, 3, 90);
        snprintf(path, sizeof path, "%s/cut/train/a/x.jpg", dir);
        test_write_bytes(path, b.data, b.size / 2);
        free(b.data);
    }
    refused("cut", RB_SPLIT_TRAIN, RB_ERR_CORRUPT, "/cut/train/a/x.jpg", NULL);
    mkdirs("zero/train/a");
    {
        test_bytes b = {0};
        unsigned char ihdr[13];
        static const unsigned char sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
        test_bytes_put(&b, sig, 8);
        test_ihdr(ihdr, 0, 0, 8, PNG_COLOR_TYPE_RGB);
        test_png_chunk(&b, "IHDR", ihdr, 13);
        test_png_chunk(&b, "IEND", NULL, 0);
        snprintf(path, sizeof path, "%s/zero/train/a/x.png", dir);
        test_write_bytes(path, b.data, b.size);
        free(b.data);
    }
    refused("zero", RB_SPLIT_TRAIN, RB_ERR_CORRUPT, "/zero/train/a/x.png", NULL);
    /* the spec itself: a typo'd kind gets a suggestion */
    {
        rb_split *s = NULL;
        ck_assert_int_eq(rb_split_open(&s, "foldr:x", RB_SPLIT_TRAIN, NULL), RB_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_nonnull(strstr(rb_last_error(), "did you mean 'folder'?"));
    }
}
END_TEST

/* The list parser: the label is the last word, the path the rest (spaces
 * inside kept), blanks and CRLF tolerated, each entry with its line. */
START_TEST(list_lines_parse_exactly)
{
    static const char text[] = "a/x.png 0\r\n\n  b c/y.jpg\t 12 \nz.png 3";
    rb_image_list l;
    ck_assert_int_eq(rb_image_list_parse(text, sizeof text - 1, "t.txt", &l), RB_OK);
    ck_assert_uint_eq(l.count, 3);
    ck_assert_str_eq(l.paths[0], "a/x.png");
    ck_assert_str_eq(l.paths[1], "b c/y.jpg");
    ck_assert_str_eq(l.paths[2], "z.png");
    ck_assert(l.labels[0] == 0 && l.labels[1] == 12 && l.labels[2] == 3);
    ck_assert(l.lines[0] == 1 && l.lines[1] == 3 && l.lines[2] == 4);
    rb_image_list_free(&l);
    rb_image_list_free(NULL);
}
END_TEST

/* size SIZE_MAX: the text's length */
static void bad_list(const char *text, size_t size, const char *want)
{
    rb_image_list l;
    if (size == SIZE_MAX)
        size = strlen(text);
    ck_assert_int_eq(rb_image_list_parse(text, size, "t.txt", &l), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), want);
    ck_assert(l.count == 0 && l.paths == NULL);
}

START_TEST(bad_list_lines_are_refused_with_their_line)
{
    bad_list("", SIZE_MAX, "t.txt lists no images: expected lines \"path label\"");
    bad_list("\n \n", SIZE_MAX, "t.txt lists no images: expected lines \"path label\"");
    bad_list("a.png 1\nb.png\n", SIZE_MAX, "t.txt line 2: expected \"path label\", found one word");
    bad_list("a.png x1\n", SIZE_MAX, "t.txt line 1: the label 'x1' is not a number (labels are 0, 1, 2 ...)");
    bad_list("a.png -1\n", SIZE_MAX, "t.txt line 1: the label '-1' is not a number (labels are 0, 1, 2 ...)");
    bad_list("a.png 1000000\n", SIZE_MAX,
             "t.txt line 1: label 1000000 is over the 1000000 classes a list may have");
    bad_list("/etc/a.png 1\n", SIZE_MAX,
             "t.txt line 1: the path is absolute; paths are relative to the list's folder");
    bad_list("a/../../b.png 1\n", SIZE_MAX, "t.txt line 1: the path leaves the list's folder ('..')");
    bad_list(".. 1\n", SIZE_MAX, "t.txt line 1: the path leaves the list's folder ('..')");
    bad_list("a\001b.png 1\n", SIZE_MAX, "t.txt line 1: the path holds a control character");
    bad_list("a.png 1\n\0", 9, "t.txt holds a NUL byte: not a text list of \"path label\" lines");
    {
        rb_image_list l;
        /* "..x" and "x.." are names, not the parent */
        ck_assert_int_eq(rb_image_list_parse("..x/y.. 2", 9, "t.txt", &l), RB_OK);
        rb_image_list_free(&l);
    }
}
END_TEST

/* A list dataset: the train list numbers the classes (0 .. its largest
 * label) for both splits; images in list order under their paths. */
START_TEST(list_datasets_read_their_images_in_order)
{
    rb_split *s = NULL;
    char spec[1024];
    mkdirs("l1/img/sub");
    write_png("l1/img/a.png", 1, 4, 3);
    write_png("l1/img/sub/b c.png", 2, 4, 3);
    write_png("l1/img/d.png", 3, 4, 3);
    put_text("l1/train.txt", "img/sub/b c.png 2\nimg/a.png 0\n");
    put_text("l1/test.txt", "img/d.png 1\n");
    snprintf(spec, sizeof spec, "list:%s/l1,train.txt,test.txt", dir);
    ck_assert_msg(rb_split_open(&s, spec, RB_SPLIT_TRAIN, NULL) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_count(s), 2);
    ck_assert_int_eq(rb_split_classes(s), 3);
    ck_assert_int_eq(rb_split_kind(s), RB_DATASET_LIST);
    ck_assert_str_eq(rb_split_example_name(s, 0), "img/sub/b c.png");
    ck_assert_int_eq(rb_split_labels(s)[0], 2);
    ck_assert_str_eq(rb_split_class_name(s, 1), "class_1");
    {
        const uint8_t *px = rb_split_images(s); /* b c.png is tag 2, first */
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 3; x++)
                    ck_assert_uint_eq(px[(c * 4 + y) * 3 + x], value(2, y, x, c));
    }
    rb_split_destroy(s);
    ck_assert_msg(rb_split_open(&s, spec, RB_SPLIT_TEST, NULL) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_count(s), 1);
    ck_assert_int_eq(rb_split_classes(s), 3);
    ck_assert_int_eq(rb_split_labels(s)[0], 1);
    rb_split_destroy(s);

    /* a test label the train list does not number; a missing image; no test list */
    put_text("l1/test2.txt", "img/d.png 3\n");
    snprintf(spec, sizeof spec, "list:%s/l1,train.txt,test2.txt", dir);
    ck_assert_int_eq(rb_split_open(&s, spec, RB_SPLIT_TEST, NULL), RB_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "test2.txt line 1: label 3 is out of range"));
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "classes 0-2"));
    put_text("l1/test3.txt", "img/d.png 0\nimg/gone.png 1\n");
    snprintf(spec, sizeof spec, "list:%s/l1,train.txt,test3.txt", dir);
    ck_assert_int_eq(rb_split_open(&s, spec, RB_SPLIT_TEST, NULL), RB_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "test3.txt line 2 names "));
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "img/gone.png, which is not a file"));
    snprintf(spec, sizeof spec, "list:%s/l1,train.txt", dir);
    ck_assert_int_eq(rb_split_open(&s, spec, RB_SPLIT_TEST, NULL), RB_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "has no test list"));
    snprintf(spec, sizeof spec, "list:%s/l1,nothere.txt", dir);
    ck_assert_int_eq(rb_split_open(&s, spec, RB_SPLIT_TRAIN, NULL), RB_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "nothere.txt: no such file"));
    ck_assert_int_eq(rb_split_open(&s, "list:onlydir", RB_SPLIT_TRAIN, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "dataset spec 'list:onlydir': expected list:DIR,TRAIN.txt[,TEST.txt]");
    ck_assert_ptr_null(s);

    /* DIR/classes.txt names the classes and sets their count, for both
     * splits: five names, though the train list's largest label is 2 */
    put_text("l1/classes.txt", "\xef\xbb\xbf" "abbey\nairport terminal\nalley\nbadlands\nbarn\n\n");
    snprintf(spec, sizeof spec, "list:%s/l1,train.txt,test2.txt", dir);
    ck_assert_msg(rb_split_open(&s, spec, RB_SPLIT_TRAIN, NULL) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_classes(s), 5);
    ck_assert_str_eq(rb_split_class_name(s, 1), "airport terminal");
    ck_assert_str_eq(rb_split_class_name(s, 4), "barn");
    rb_split_destroy(s);
    ck_assert_msg(rb_split_open(&s, spec, RB_SPLIT_TEST, NULL) == RB_OK, "%s", rb_last_error()); /* label 3: badlands */
    ck_assert_str_eq(rb_split_class_name(s, rb_split_labels(s)[0]), "badlands");
    rb_split_destroy(s);
    /* a label beyond the names, in either list; a bad classes.txt */
    put_text("l1/classes.txt", "abbey\nairport terminal\n");
    ck_assert_int_eq(rb_split_open(&s, spec, RB_SPLIT_TRAIN, NULL), RB_ERR_CORRUPT);
    ck_assert_msg(strstr(rb_last_error(), "train.txt line 1: label 2 is out of range: ") != NULL, "%s", rb_last_error());
    ck_assert_msg(strstr(rb_last_error(), "classes.txt names classes 0-1") != NULL, "%s", rb_last_error());
    put_text("l1/classes.txt", "abbey\n\nalley\n");
    ck_assert_int_eq(rb_split_open(&s, spec, RB_SPLIT_TRAIN, NULL), RB_ERR_CORRUPT);
    ck_assert_msg(strstr(rb_last_error(), "classes.txt: line 2 is blank, but class names follow it") != NULL, "%s",
                  rb_last_error());
    put_text("l1/classes.txt", "abbey\nalley\nabbey\n");
    ck_assert_int_eq(rb_split_open(&s, spec, RB_SPLIT_TRAIN, NULL), RB_ERR_CORRUPT);
    ck_assert_msg(strstr(rb_last_error(), "abbey") != NULL && strstr(rb_last_error(), "line 3") != NULL, "%s",
                  rb_last_error());
    put_text("l1/classes.txt", "a\nb\nc\n");
    ck_assert_int_eq(rb_split_open(&s, spec, RB_SPLIT_TEST, NULL), RB_ERR_CORRUPT);
    ck_assert_msg(strstr(rb_last_error(), "test2.txt line 1: label 3 is out of range: ") != NULL &&
                      strstr(rb_last_error(), "classes.txt numbers classes 0-2") != NULL,
                  "%s", rb_last_error());
    ck_assert_ptr_null(s);
}
END_TEST

/* A folder of class folders alone (no train/, test/ or val/) is split
 * here: round(n / 5) of each class's n images to test (at least 1 when
 * n >= 2), chosen the same way every time; the splits are disjoint,
 * together hold every image, and keep ImageFolder's order. */
START_TEST(a_folder_without_splits_is_split_by_a_fixed_seed)
{
    static const int per_class[3] = {10, 3, 1};
    rb_split *train = NULL, *test = NULL, *again = NULL;
    char rel[128];
    for (int c = 0; c < 3; c++) {
        snprintf(rel, sizeof rel, "flat2/%c", 'a' + c);
        mkdirs(rel);
        for (int i = 0; i < per_class[c]; i++) {
            snprintf(rel, sizeof rel, "flat2/%c/%02d.png", 'a' + c, i);
            write_png(rel, c * 16 + i, 4, 4);
        }
    }
    ck_assert_msg(open_split(&train, "flat2", RB_SPLIT_TRAIN, 0) == RB_OK, "%s", rb_last_error());
    ck_assert_msg(open_split(&test, "flat2", RB_SPLIT_TEST, 0) == RB_OK, "%s", rb_last_error());
    ck_assert_msg(open_split(&again, "flat2", RB_SPLIT_TEST, 0) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_count(train), 8 + 2 + 1);
    ck_assert_int_eq(rb_split_count(test), 2 + 1);
    ck_assert_int_eq(rb_split_classes(test), 3);
    ck_assert_int_eq(rb_split_count(again), 3);
    for (int64_t i = 0; i < 3; i++)
        ck_assert_str_eq(rb_split_example_name(test, i), rb_split_example_name(again, i));
    {
        int seen[3][10] = {{0}};
        for (int k = 0; k < 2; k++) {
            const rb_split *s = k ? test : train;
            for (int64_t i = 0; i < rb_split_count(s); i++) {
                const char *name = rb_split_example_name(s, i);
                const int c = name[0] - 'a', n = atoi(name + 2);
                ck_assert_int_eq(rb_split_labels(s)[i], c);
                ck_assert_int_eq(seen[c][n]++, 0);
                if (i > 0) /* ImageFolder's order within a split */
                    ck_assert(strcmp(rb_split_example_name(s, i - 1), name) < 0);
            }
        }
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < per_class[c]; i++)
                ck_assert_int_eq(seen[c][i], 1);
    }
    rb_split_destroy(train);
    rb_split_destroy(test);
    rb_split_destroy(again);
}
END_TEST

static Suite *folder_suite(void)
{
    Suite *s = suite_create("folder");
    TCase *tc = tcase_create("folder");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, classes_order_labels_and_names_are_imagefolders);
    tcase_add_test(tc, images_of_several_sizes_need_and_get_one_size);
    tcase_add_test(tc, a_folder_without_splits_is_split_by_a_fixed_seed);
    tcase_add_test(tc, bad_folders_are_refused_in_one_line);
    tcase_add_test(tc, list_lines_parse_exactly);
    tcase_add_test(tc, bad_list_lines_are_refused_with_their_line);
    tcase_add_test(tc, list_datasets_read_their_images_in_order);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(folder_suite());
}
