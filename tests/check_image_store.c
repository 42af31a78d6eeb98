/* The paper's transform on image sets (--transform paper): splits whose
 * images stay at their own size in a store (src/data/image_store.c),
 * through the public API. Every example is compared exactly with the
 * transforms of src/data/paper_transform.c (compiled in, themselves
 * checked against Pillow and torchvision by pil-transform-parity.sh)
 * applied to the decoded file; loaders with threads give the same
 * batches; each image is decoded once; the cache file is reused, and a
 * stale one (changed files, another version, damaged bytes) rebuilt; a
 * file that fails to decode fails its batch in one line naming it. */
#include "config.h"

#include <stdint.h>
#include <sys/stat.h>
#include <utime.h>

#include <robusta/data.h>
#include <robusta/rng.h>
#include <robusta/robusta.h>

#include "data/image.h"
#include "data/image_store.h"
#include "data/paper_transform.h"
#include "testimage.h"
#include "testutil.h"

static char dir[512], cache[600];

static void setup(void)
{
    make_temp_dir(dir, sizeof dir);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    mkdir(cache, 0755);
}

static void teardown(void)
{
    char path[1024];
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(path), 0);
}

static void at(char *out, size_t size, const char *rel)
{
    snprintf(out, size, "%s/%s", dir, rel);
}

static void write_image(const char *rel, int tag, int h, int w, bool jpeg)
{
    unsigned char *px = malloc((size_t)h * (size_t)w * 3);
    char path[1024], folder[1024], *slash;
    test_bytes b;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                px[(y * w + x) * 3 + c] = (unsigned char)(tag * 37 + y * y + x * 5 + c * 80 + (x * y) % 13);
    b = jpeg ? test_jpeg(px, w, h, 3, 90) : test_png(w, h, 8, PNG_COLOR_TYPE_RGB, px, NULL, 0, NULL, 0, NULL, 0);
    at(path, sizeof path, rel);
    snprintf(folder, sizeof folder, "%s", path);
    for (slash = folder + strlen(dir) + 1; *slash; slash++)
        if (*slash == '/') {
            *slash = '\0';
            mkdir(folder, 0755);
            *slash = '/';
        }
    test_write_bytes(path, b.data, b.size);
    free(b.data);
    free(px);
}

/* Two classes, train and test, six images of different sizes each (PNG
 * and JPEG), some smaller than the crop. */
static void make_set(void)
{
    static const int sizes[6][2] = {{40, 60}, {75, 50}, {20, 20}, {33, 90}, {64, 64}, {100, 31}};
    for (int s = 0; s < 2; s++)
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < 3; i++) {
                char rel[128];
                const int k = c * 3 + i;
                snprintf(rel, sizeof rel, "set/%s/%s/%d.%s", s ? "test" : "train", c ? "dog" : "cat", i,
                         k % 2 ? "png" : "jpg");
                write_image(rel, s * 10 + k, sizes[k][0], sizes[k][1], k % 2 == 0);
            }
}

static rb_status open_paper(rb_split **s, rb_split_which which, int size, const char *cache_dir)
{
    char spec[1024];
    rb_split_options o = {.size = size, .transform = RB_TRANSFORM_PAPER, .cache_dir = cache_dir};
    snprintf(spec, sizeof spec, "folder:%s/set", dir);
    return rb_split_open(s, spec, which, &o);
}

/* What example `index` must be: the file decoded and transformed here. */
static void expected(const rb_split *s, rb_split_which which, int64_t index, bool train, bool flip, uint64_t seed,
                     int64_t epoch, int size, float *out)
{
    char path[1024];
    rb_image img;
    uint8_t *made = malloc((size_t)size * (size_t)size * 3);
    snprintf(path, sizeof path, "%s/set/%s/%s", dir, which == RB_SPLIT_TEST ? "test" : "train",
             rb_split_example_name(s, index));
    ck_assert_int_eq(rb_image_read(path, RB_IMAGE_RGB, &img), RB_OK);
    if (train) {
        rb_rng r;
        rb_rng_init(&r, seed, RB_RNG_STREAM(RB_RNG_AUGMENT, (uint32_t)epoch), (uint64_t)index);
        ck_assert_int_eq(rb_paper_train_transform(img.pixels, img.height, img.width, 3, size, &r, flip, made, NULL,
                                                  NULL),
                         RB_OK);
    } else {
        ck_assert_int_eq(
            rb_paper_test_transform(img.pixels, img.height, img.width, 3, rb_transform_resize_for(size), size, made),
            RB_OK);
    }
    for (int k = 0; k < size * size; k++)
        for (int c = 0; c < 3; c++)
            out[c * size * size + k] = (float)made[3 * k + c] / 255.0f;
    free(made);
    rb_image_free(&img);
}

START_TEST(examples_are_the_paper_transforms_of_the_files)
{
    const int S = 24;
    rb_split *s = NULL;
    float *got = malloc(3 * S * S * sizeof *got), *want = malloc(3 * S * S * sizeof *want);
    int c, h, w;
    const rb_augment flip = {.flip = true}, noflip = {.crop = true};
    make_set();
    ck_assert_msg(open_paper(&s, RB_SPLIT_TRAIN, S, NULL) == RB_OK, "%s", rb_last_error());
    rb_split_shape(s, &c, &h, &w);
    ck_assert_int_eq(c, 3);
    ck_assert_int_eq(h, S);
    ck_assert_int_eq(w, S);
    rb_split_stored_shape(s, &c, &h, &w);
    ck_assert_int_eq(h, 0);
    ck_assert_int_eq(w, 0);
    ck_assert_ptr_null(rb_split_images(s));
    ck_assert_int_eq(rb_split_count(s), 6);
    {
        int64_t ih, iw;
        rb_split_example_source_size(s, 1, &ih, &iw); /* cat/1.png, the second size */
        ck_assert_str_eq(rb_split_example_name(s, 1), "cat/1.png");
        ck_assert_int_eq(ih, 75);
        ck_assert_int_eq(iw, 50);
    }
    ck_assert_int_eq(rb_transform_resize_for(224), 256);
    ck_assert_int_eq(rb_transform_resize_for(S), 27); /* round(24 * 256 / 224) = round(27.43) */
    for (int64_t i = 0; i < rb_split_count(s); i++)
        for (int64_t epoch = 0; epoch < 3; epoch++) {
            ck_assert_int_eq(rb_split_example(s, i, NULL, 5, epoch, got), RB_OK);
            expected(s, RB_SPLIT_TRAIN, i, false, false, 5, epoch, S, want);
            ck_assert_mem_eq(got, want, 3 * S * S * sizeof *got);
            ck_assert_int_eq(rb_split_example(s, i, &flip, 5, epoch, got), RB_OK);
            expected(s, RB_SPLIT_TRAIN, i, true, true, 5, epoch, S, want);
            ck_assert_mem_eq(got, want, 3 * S * S * sizeof *got);
            ck_assert_int_eq(rb_split_example(s, i, &noflip, 5, epoch, got), RB_OK);
            expected(s, RB_SPLIT_TRAIN, i, true, false, 5, epoch, S, want);
            ck_assert_mem_eq(got, want, 3 * S * S * sizeof *got);
        }
    /* the draws are keyed by (seed, epoch, example): another epoch, another crop */
    {
        float *other = malloc(3 * S * S * sizeof *other);
        ck_assert_int_eq(rb_split_example(s, 4, &flip, 5, 0, got), RB_OK);
        ck_assert_int_eq(rb_split_example(s, 4, &flip, 5, 1, other), RB_OK);
        ck_assert(memcmp(got, other, 3 * S * S * sizeof *got) != 0);
        free(other);
    }
    rb_split_destroy(s);
    free(got);
    free(want);
}
END_TEST

/* Batches from loaders of 0 and 3 threads over two epochs are the
 * examples rb_split_example makes; each image is decoded once (the second
 * epoch decodes nothing). Selection shares the store. */
START_TEST(loaders_decode_each_image_once_and_agree)
{
    const int S = 16;
    rb_split *all = NULL, *s = NULL;
    rb_split_cache_state st;
    float *want = malloc(3 * S * S * sizeof *want);
    make_set();
    ck_assert_msg(open_paper(&all, RB_SPLIT_TEST, S, NULL) == RB_OK, "%s", rb_last_error());
    rb_split_cache_state_get(all, &st);
    ck_assert(st.kept);
    ck_assert_str_eq(st.path, "");
    ck_assert_int_eq(st.images, 6);
    ck_assert_int_eq(st.ready, 0); /* opening reads headers only */
    ck_assert_int_eq(rb_split_apply(&s, all, &(rb_split_options){.classes = "1"}), RB_OK);
    ck_assert_int_eq(rb_split_count(s), 3);
    ck_assert_str_eq(rb_split_example_name(s, 0), "dog/0.png");
    for (int threads = 0; threads <= 3; threads += 3) {
        rb_loader *l = NULL;
        rb_loader_options lo = {.batch_size = 2, .threads = threads, .shuffle = true, .seed = 9};
        lo.augment.flip = true;
        ck_assert_int_eq(rb_loader_create(&l, s, &lo), RB_OK);
        for (int64_t epoch = 0; epoch < 2; epoch++) {
            rb_batch b;
            int64_t seen = 0;
            ck_assert_int_eq(rb_loader_start_epoch(l, epoch), RB_OK);
            while (rb_loader_next(l, &b) == RB_OK && b.count > 0)
                for (int64_t k = 0; k < b.count; k++, seen++) {
                    ck_assert_int_eq(rb_split_example(s, b.indices[k], &lo.augment, 9, epoch, want), RB_OK);
                    ck_assert_mem_eq(b.images + k * 3 * S * S, want, 3 * S * S * sizeof *want);
                    ck_assert_int_eq(b.labels[k], 0);
                }
            ck_assert_int_eq(seen, 3);
            rb_split_cache_state_get(s, &st);
            ck_assert_int_eq(st.ready, 3);        /* the dogs, not the cats */
            ck_assert_int_eq(st.decoded_here, 3); /* once each, whatever the epochs and loaders */
        }
        rb_loader_destroy(l);
    }
    rb_split_destroy(all);
    rb_split_destroy(s);
    free(want);
}
END_TEST

static void decode_all(rb_split *s)
{
    float *x = malloc(rb_split_example_size(s) * sizeof *x);
    for (int64_t i = 0; i < rb_split_count(s); i++)
        ck_assert_msg(rb_split_example(s, i, NULL, 0, 0, x) == RB_OK, "%s", rb_last_error());
    free(x);
}

/* The cache file is made on the first open, filled as images are decoded,
 * reused by the next open (which decodes nothing and gives the same
 * examples), and rebuilt when stale. */
START_TEST(the_cache_file_is_reused_and_a_stale_one_rebuilt)
{
    const int S = 20;
    rb_split *s = NULL;
    rb_split_cache_state st;
    float *first = malloc(6 * 3 * S * S * sizeof *first), *again = malloc(3 * S * S * sizeof *again);
    char path[1024], file[1200];
    make_set();
    ck_assert_msg(open_paper(&s, RB_SPLIT_TRAIN, S, cache) == RB_OK, "%s", rb_last_error());
    rb_split_cache_state_get(s, &st);
    ck_assert_int_eq(strncmp(st.path, cache, strlen(cache)), 0);
    snprintf(file, sizeof file, "%s", st.path);
    ck_assert_str_eq(st.rebuilt_because, "");
    for (int64_t i = 0; i < 6; i++)
        ck_assert_int_eq(rb_split_example(s, i, NULL, 0, 0, first + i * 3 * S * S), RB_OK);
    rb_split_destroy(s);

    /* reused: all decoded, none by this open, the same pixels */
    ck_assert_int_eq(open_paper(&s, RB_SPLIT_TRAIN, S, cache), RB_OK);
    rb_split_cache_state_get(s, &st);
    ck_assert_str_eq(st.path, file);
    ck_assert_int_eq(st.ready, 6);
    for (int64_t i = 0; i < 6; i++) {
        ck_assert_int_eq(rb_split_example(s, i, NULL, 0, 0, again), RB_OK);
        ck_assert_mem_eq(again, first + i * 3 * S * S, 3 * S * S * sizeof *again);
    }
    rb_split_cache_state_get(s, &st);
    ck_assert_int_eq(st.decoded_here, 0);
    rb_split_destroy(s);

    /* the test split has a file of its own */
    ck_assert_int_eq(open_paper(&s, RB_SPLIT_TEST, S, cache), RB_OK);
    rb_split_cache_state_get(s, &st);
    ck_assert_str_ne(st.path, file);
    ck_assert_int_eq(st.ready, 0);
    rb_split_destroy(s);

    /* an image changed (new time): rebuilt, and its new pixels used */
    write_image("set/train/cat/1.png", 77, 75, 50, false);
    at(path, sizeof path, "set/train/cat/1.png");
    ck_assert_int_eq(utime(path, &(struct utimbuf){.actime = 1000000000, .modtime = 1000000000}), 0);
    ck_assert_int_eq(open_paper(&s, RB_SPLIT_TRAIN, S, cache), RB_OK);
    rb_split_cache_state_get(s, &st);
    ck_assert_int_eq(st.ready, 0);
    ck_assert_msg(strstr(st.rebuilt_because, "changed") != NULL, "%s", st.rebuilt_because);
    ck_assert_int_eq(rb_split_example(s, 1, NULL, 0, 0, again), RB_OK);
    ck_assert(memcmp(again, first + 1 * 3 * S * S, 3 * S * S * sizeof *again) != 0);
    decode_all(s);
    rb_split_destroy(s);

    /* another robusta version wrote it: its header's version differs */
    {
        size_t n = 0;
        unsigned char *bytes = read_whole_file(file, &n);
        ck_assert_uint_gt(n, sizeof(rb_image_store_header));
        memcpy(bytes + offsetof(rb_image_store_header, version), "0.0.1-other", 12);
        test_write_bytes(file, bytes, n);
        free(bytes);
        ck_assert_int_eq(open_paper(&s, RB_SPLIT_TRAIN, S, cache), RB_OK);
        rb_split_cache_state_get(s, &st);
        ck_assert_str_eq(st.rebuilt_because, "another robusta version wrote it");
        ck_assert_int_eq(st.ready, 0);
        decode_all(s);
        rb_split_destroy(s);
    }
    /* cut short, or garbage: rebuilt */
    {
        size_t n = 0;
        unsigned char *bytes = read_whole_file(file, &n);
        test_write_bytes(file, bytes, n - 1);
        ck_assert_int_eq(open_paper(&s, RB_SPLIT_TRAIN, S, cache), RB_OK);
        rb_split_cache_state_get(s, &st);
        ck_assert_msg(strstr(st.rebuilt_because, "inconsistent") != NULL, "%s", st.rebuilt_because);
        rb_split_destroy(s);
        test_write_bytes(file, "not a cache", 11);
        ck_assert_int_eq(open_paper(&s, RB_SPLIT_TRAIN, S, cache), RB_OK);
        rb_split_cache_state_get(s, &st);
        ck_assert_str_eq(st.rebuilt_because, "it is shorter than its header (11 bytes)");
        decode_all(s);
        rb_split_destroy(s);
        free(bytes);
    }
    /* no temporary files left behind */
    ck_assert_int_eq(count_dir_entries(cache), 2);
    free(first);
    free(again);
}
END_TEST

/* rb_image_store_check on a header made here: each field that does not
 * match what is opened is named. */
START_TEST(cache_headers_are_checked_field_by_field)
{
    unsigned char b[sizeof(rb_image_store_header) + 16 + 64 + 12];
    rb_image_store_header h;
    char why[160];
    const uint64_t pixels = (sizeof h + 16 + 1 + 63) / 64 * 64;
    memset(b, 0, sizeof b);
    memset(&h, 0, sizeof h);
    memcpy(h.magic, RB_IMAGE_STORE_MAGIC, 8);
    h.format = RB_IMAGE_STORE_FORMAT;
    h.order = RB_IMAGE_STORE_ORDER;
    snprintf(h.version, sizeof h.version, "%s", rb_version_string());
    h.identity = 42;
    h.count = 1;
    h.table_offset = sizeof h;
    h.flags_offset = sizeof h + 16;
    h.pixels_offset = pixels;
    h.total = pixels + 12; /* one 2 x 2 image */
    ck_assert_uint_le(h.total, sizeof b);
    memcpy(b, &h, sizeof h);
    {
        const uint32_t hw[2] = {2, 2};
        memcpy(b + sizeof h, hw, 8);
        memcpy(b + sizeof h + 8, &pixels, 8);
    }
    ck_assert(rb_image_store_check(b, h.total, 42, 1, why, sizeof why));
    ck_assert(!rb_image_store_check(b, h.total, 43, 1, why, sizeof why));
    ck_assert_str_eq(why, "it holds other images, or the images changed since it was written");
    ck_assert(!rb_image_store_check(b, h.total - 1, 42, 1, why, sizeof why));
    b[sizeof h + 16] = 2; /* a flag is 0 or 1 */
    ck_assert(!rb_image_store_check(b, h.total, 42, 1, why, sizeof why));
    ck_assert_str_eq(why, "flag 0 is damaged");
    b[sizeof h + 16] = 1;
    b[sizeof h] = 3; /* 3 x 2: past the end */
    ck_assert(!rb_image_store_check(b, h.total, 42, 1, why, sizeof why));
    ck_assert_str_eq(why, "entry 0 of its table is damaged");
    b[sizeof h] = 2;
    b[offsetof(rb_image_store_header, order)] ^= 0xff;
    ck_assert(!rb_image_store_check(b, h.total, 42, 1, why, sizeof why));
    ck_assert_str_eq(why, "it was written on a machine of another byte order");
}
END_TEST

/* A truncated JPEG whose header is whole opens (sizes come from headers)
 * and fails the batch that needs it, naming the file; datasets other than
 * image sets, and one channel, are refused in one line. */
START_TEST(bad_inputs_are_refused_in_one_line)
{
    rb_split *s = NULL;
    rb_loader *l = NULL;
    rb_loader_options lo = {.batch_size = 6, .threads = 2};
    rb_batch b;
    char path[1024];
    make_set();
    at(path, sizeof path, "set/test/dog/1.jpg");
    write_image("set/test/dog/1.jpg", 3, 300, 200, true);
    {
        size_t n = 0;
        unsigned char *bytes = read_whole_file(path, &n);
        test_write_bytes(path, bytes, n / 2);
        free(bytes);
    }
    ck_assert_msg(open_paper(&s, RB_SPLIT_TEST, 16, NULL) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_loader_create(&l, s, &lo), RB_OK);
    ck_assert_int_eq(rb_loader_start_epoch(l, 0), RB_OK);
    ck_assert_int_eq(rb_loader_next(l, &b), RB_ERR_CORRUPT);
    ck_assert_msg(strstr(rb_last_error(), "dog/1.jpg: truncated JPEG") != NULL, "%s", rb_last_error());
    rb_loader_destroy(l);
    rb_split_destroy(s);

    /* not an image: refused as the split opens */
    write_image("set/test/dog/2.png", 3, 10, 10, false);
    at(path, sizeof path, "set/test/dog/2.png");
    test_write_bytes(path, "GIF89a....", 10);
    ck_assert_int_eq(open_paper(&s, RB_SPLIT_TEST, 16, NULL), RB_ERR_CORRUPT);
    ck_assert_msg(strstr(rb_last_error(), "dog/2.png is neither a PNG nor a JPEG") != NULL, "%s", rb_last_error());

    ck_assert_int_eq(rb_split_open(&s, "cifar10:/nonexistent", RB_SPLIT_TRAIN,
                                   &(rb_split_options){.transform = RB_TRANSFORM_PAPER}),
                     RB_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(rb_last_error(), "folder: and list:") != NULL, "%s", rb_last_error());
    {
        char spec[1024];
        snprintf(spec, sizeof spec, "folder:%s/set", dir);
        ck_assert_int_eq(rb_split_open(&s, spec, RB_SPLIT_TRAIN,
                                       &(rb_split_options){.transform = RB_TRANSFORM_PAPER, .channels = 1}),
                         RB_ERR_UNSUPPORTED);
        ck_assert_msg(strstr(rb_last_error(), "RGB") != NULL, "%s", rb_last_error());
        ck_assert_int_eq(rb_split_open(&s, spec, RB_SPLIT_TRAIN,
                                       &(rb_split_options){.transform = RB_TRANSFORM_PAPER, .cache_dir = "/nonexistent"}),
                         RB_ERR_NOT_FOUND);
        ck_assert_msg(strstr(rb_last_error(), "cache folder /nonexistent does not exist") != NULL, "%s",
                      rb_last_error());
    }
    {
        rb_transform t;
        ck_assert_int_eq(rb_transform_parse("paper", &t), RB_OK);
        ck_assert_int_eq(t, RB_TRANSFORM_PAPER);
        ck_assert_int_eq(rb_transform_parse("papr", &t), RB_ERR_INVALID_ARGUMENT);
        ck_assert_str_eq(rb_last_error(), "unknown transform 'papr' (did you mean 'paper'?); transforms: none, paper");
        ck_assert_str_eq(rb_transform_str(RB_TRANSFORM_NONE), "none");
    }
}
END_TEST

static Suite *image_store_suite(void)
{
    Suite *s = suite_create("image_store");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, examples_are_the_paper_transforms_of_the_files);
    tcase_add_test(tc, loaders_decode_each_image_once_and_agree);
    tcase_add_test(tc, the_cache_file_is_reused_and_a_stale_one_rebuilt);
    tcase_add_test(tc, cache_headers_are_checked_field_by_field);
    tcase_add_test(tc, bad_inputs_are_refused_in_one_line);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(image_store_suite());
}
