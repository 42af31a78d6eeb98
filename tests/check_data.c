/* Datasets and the batch loader: IDX (raw and gzip'd), CIFAR-10/100 and
 * .npy files written here and read back byte for byte; every refused input
 * with its exact message; spec strings; class subsets and per-class
 * selection; bilinear resizing against PyTorch's numbers; crop and flip
 * semantics; and a loader whose batches are the same whatever its thread
 * count, that covers every example once per epoch, and that shuts down
 * cleanly at any point. Reads the real Fashion-MNIST when Debian's
 * dataset-fashion-mnist is installed (or RB_TEST_FASHION_MNIST_DIR names a
 * copy), and says SKIP otherwise. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <zlib.h>

#include <robusta/data.h>
#include <robusta/interop.h>
#include <robusta/rng.h>
#include <robusta/status.h>

#include "testutil.h"

static char dir[PATH_MAX];

static void setup(void)
{
    make_temp_dir(dir, sizeof dir);
}

static void teardown(void)
{
    remove_temp_dir(dir);
}

/* ------------------------------------------------------------ helpers */

typedef struct buf {
    unsigned char *data;
    size_t size;
} buf;

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static unsigned char pixel(uint32_t i, uint32_t y, uint32_t x)
{
    return (unsigned char)((i * 37u + y * 11u + x * 3u + 5u) & 255u);
}

/* An IDX image file of n rows×cols images (pixel() values). */
static buf idx_images(uint32_t n, uint32_t rows, uint32_t cols)
{
    buf b;
    b.size = 16 + (size_t)n * rows * cols;
    b.data = malloc(b.size);
    ck_assert_ptr_nonnull(b.data);
    put_be32(b.data, 0x00000803u);
    put_be32(b.data + 4, n);
    put_be32(b.data + 8, rows);
    put_be32(b.data + 12, cols);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t y = 0; y < rows; y++)
            for (uint32_t x = 0; x < cols; x++)
                b.data[16 + ((size_t)i * rows + y) * cols + x] = pixel(i, y, x);
    return b;
}

/* An IDX label file: label of example i is (i * 3) % 10. */
static buf idx_labels(uint32_t n)
{
    buf b;
    b.size = 8 + n;
    b.data = malloc(b.size);
    ck_assert_ptr_nonnull(b.data);
    put_be32(b.data, 0x00000801u);
    put_be32(b.data + 4, n);
    for (uint32_t i = 0; i < n; i++)
        b.data[8 + i] = (unsigned char)((i * 3u) % 10u);
    return b;
}

static buf gzip_buf(buf in)
{
    z_stream zs;
    buf out;
    memset(&zs, 0, sizeof zs);
    ck_assert_int_eq(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    out.size = deflateBound(&zs, (uLong)in.size) + 32;
    out.data = malloc(out.size);
    ck_assert_ptr_nonnull(out.data);
    zs.next_in = in.data;
    zs.avail_in = (uInt)in.size;
    zs.next_out = out.data;
    zs.avail_out = (uInt)out.size;
    ck_assert_int_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
    out.size = zs.total_out;
    deflateEnd(&zs);
    return out;
}

static void write_buf(const char *name, buf b)
{
    char path[PATH_MAX + 64];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "create %s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(b.data, 1, b.size, f), b.size);
    fclose(f);
}

static void expect_error(rb_status got, rb_status want, const char *message)
{
    ck_assert_msg(got == want, "status %d (%s), expected %d; message: %s", (int)got, rb_status_str(got), (int)want,
                  rb_last_error());
    ck_assert_str_eq(rb_last_error(), message);
    ck_assert_ptr_null(strchr(rb_last_error(), '\n'));
}

static void check_idx_split(const rb_split *s, uint32_t n, int rows, int cols)
{
    int c, h, w;
    const unsigned char *px = rb_split_images(s);
    ck_assert_int_eq(rb_split_count(s), n);
    ck_assert_int_eq(rb_split_classes(s), 10);
    ck_assert_int_eq(rb_split_dtype(s), RB_DTYPE_U8);
    rb_split_stored_shape(s, &c, &h, &w);
    ck_assert_int_eq(c, 1);
    ck_assert_int_eq(h, rows);
    ck_assert_int_eq(w, cols);
    for (uint32_t i = 0; i < n; i++) {
        ck_assert_int_eq(rb_split_labels(s)[i], (i * 3) % 10);
        ck_assert_int_eq(rb_split_source_indices(s)[i], i);
        for (int y = 0; y < rows; y++)
            for (int x = 0; x < cols; x++)
                ck_assert_uint_eq(px[((size_t)i * (size_t)rows + (size_t)y) * (size_t)cols + (size_t)x],
                                  pixel(i, (uint32_t)y, (uint32_t)x));
    }
}

/* A split from memory: n examples of c×h×w, u8 pixels from pixel(), label
 * i % classes. */
static rb_split *memory_split(int64_t n, int c, int h, int w, int64_t classes)
{
    unsigned char *px = malloc((size_t)(n * c * h * w) + 1);
    int64_t *labels = malloc((size_t)n * sizeof *labels + 1);
    rb_split *s = NULL;
    ck_assert_ptr_nonnull(px);
    ck_assert_ptr_nonnull(labels);
    for (int64_t i = 0; i < n; i++) {
        labels[i] = i % classes;
        for (int k = 0; k < c * h * w; k++)
            px[i * c * h * w + k] = pixel((uint32_t)i, (uint32_t)k, 1);
    }
    ck_assert_int_eq(rb_split_create(&s, RB_DTYPE_U8, n, c, h, w, px, labels, classes, NULL, "mem"), RB_OK);
    free(px);
    free(labels);
    return s;
}

/* ------------------------------------------------------------ IDX */

static buf cifar_file(int n, int f, bool c100);

START_TEST(idx_raw_and_gzip_read_back_exactly)
{
    buf ti = idx_images(7, 3, 4), tl = idx_labels(7), vi = idx_images(5, 3, 4), vl = idx_labels(5);
    buf gvi = gzip_buf(vi), gvl = gzip_buf(vl);
    char spec[PATH_MAX + 32];
    rb_split *train = NULL, *test = NULL;

    write_buf("train-images-idx3-ubyte", ti); /* raw */
    write_buf("train-labels-idx1-ubyte", tl);
    write_buf("t10k-images-idx3-ubyte.gz", gvi); /* gzip'd, found by the .gz name */
    write_buf("t10k-labels-idx1-ubyte.gz", gvl);
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    ck_assert_msg(rb_split_open(&train, spec, RB_SPLIT_TRAIN, NULL) == RB_OK, "%s", rb_last_error());
    ck_assert_msg(rb_split_open(&test, spec, RB_SPLIT_TEST, NULL) == RB_OK, "%s", rb_last_error());
    check_idx_split(train, 7, 3, 4);
    check_idx_split(test, 5, 3, 4);
    ck_assert_int_eq(rb_split_kind(train), RB_DATASET_MNIST);
    ck_assert_str_eq(rb_split_name(train), "mnist train");
    ck_assert_str_eq(rb_split_name(test), "mnist test");
    ck_assert_str_eq(rb_split_class_name(train, 7), "7");
    ck_assert_ptr_null(rb_split_class_name(train, 10));
    ck_assert_ptr_null(rb_split_class_name(train, -1));
    rb_split_destroy(train);
    rb_split_destroy(test);

    /* Fashion-MNIST: same files, garment names. */
    snprintf(spec, sizeof spec, "fashion-mnist:%s", dir);
    ck_assert_msg(rb_split_open(&test, spec, RB_SPLIT_TEST, NULL) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_kind(test), RB_DATASET_FASHION_MNIST);
    ck_assert_str_eq(rb_split_class_name(test, 0), "T-shirt/top");
    ck_assert_str_eq(rb_split_class_name(test, 9), "Ankle boot");
    rb_split_destroy(test);
    free(ti.data);
    free(tl.data);
    free(vi.data);
    free(vl.data);
    free(gvi.data);
    free(gvl.data);
}
END_TEST

START_TEST(idx_gzip_is_found_by_magic_not_name)
{
    buf ti = idx_images(4, 2, 2), tl = idx_labels(4);
    buf gi = gzip_buf(ti);
    rb_split *s = NULL;
    char spec[PATH_MAX + 32];

    /* gzip'd bytes under the raw name */
    write_buf("train-images-idx3-ubyte", gi);
    write_buf("train-labels-idx1-ubyte", tl);
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    ck_assert_msg(rb_split_open(&s, spec, RB_SPLIT_TRAIN, NULL) == RB_OK, "%s", rb_last_error());
    check_idx_split(s, 4, 2, 2);
    rb_split_destroy(s);

    /* and the pure parser, both ways */
    ck_assert_int_eq(rb_split_from_idx(&s, RB_DATASET_MNIST, gi.data, gi.size, "i", tl.data, tl.size, "l"), RB_OK);
    check_idx_split(s, 4, 2, 2);
    rb_split_destroy(s);

    /* two concatenated gzip members read as one stream, as gzip -d does */
    {
        buf head = {ti.data, 10}, tail = {ti.data + 10, ti.size - 10};
        buf g1 = gzip_buf(head), g2 = gzip_buf(tail), cat;
        cat.size = g1.size + g2.size;
        cat.data = malloc(cat.size);
        memcpy(cat.data, g1.data, g1.size);
        memcpy(cat.data + g1.size, g2.data, g2.size);
        ck_assert_msg(rb_split_from_idx(&s, RB_DATASET_MNIST, cat.data, cat.size, "i", tl.data, tl.size, "l") ==
                          RB_OK,
                      "%s", rb_last_error());
        check_idx_split(s, 4, 2, 2);
        rb_split_destroy(s);
        free(g1.data);
        free(g2.data);
        free(cat.data);
    }
    free(ti.data);
    free(tl.data);
    free(gi.data);
}
END_TEST

START_TEST(idx_bad_input_is_refused_with_one_exact_line)
{
    buf im = idx_images(5, 3, 4), lb = idx_labels(5), lb4 = idx_labels(4);
    rb_split *s = (rb_split *)(void *)&s;

    /* wrong magic: labels given as images, and the reverse */
    expect_error(rb_split_from_idx(&s, RB_DATASET_MNIST, lb.data, lb.size, "img", lb.data, lb.size, "lab"),
                 RB_ERR_CORRUPT,
                 "img: bad magic number 0x00000801, expected 0x00000803 (IDX image file of unsigned bytes): "
                 "this is a label file, not an image file");
    ck_assert_ptr_null(s);
    expect_error(rb_split_from_idx(&s, RB_DATASET_MNIST, im.data, im.size, "img", im.data, im.size, "lab"),
                 RB_ERR_CORRUPT,
                 "lab: bad magic number 0x00000803, expected 0x00000801 (IDX label file of unsigned bytes): "
                 "this is an image file, not a label file");
    {
        unsigned char png[16] = {0x89, 'P', 'N', 'G', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        expect_error(rb_split_from_idx(&s, RB_DATASET_MNIST, png, sizeof png, "img", lb.data, lb.size, "lab"),
                     RB_ERR_CORRUPT,
                     "img: bad magic number 0x89504e47, expected 0x00000803 (IDX image file of unsigned bytes): "
                     "not an IDX file");
    }

    /* header cut short */
    expect_error(rb_split_from_idx(&s, RB_DATASET_MNIST, im.data, 10, "img", lb.data, lb.size, "lab"),
                 RB_ERR_CORRUPT, "img: truncated: 10 bytes, shorter than the 16-byte IDX image header");
    /* pixels cut short */
    expect_error(rb_split_from_idx(&s, RB_DATASET_MNIST, im.data, im.size - 1, "img", lb.data, lb.size, "lab"),
                 RB_ERR_CORRUPT,
                 "img: truncated: the header promises 5 images of 3×4, 60 bytes of pixels, but the file is 75 bytes");
    /* labels cut short */
    expect_error(rb_split_from_idx(&s, RB_DATASET_MNIST, im.data, im.size, "img", lb.data, lb.size - 2, "lab"),
                 RB_ERR_CORRUPT, "lab: truncated: the header promises 5 labels, but the file is 11 bytes");
    /* gzip'd pixels cut short */
    {
        buf part = {im.data, im.size - 3};
        buf g = gzip_buf(part);
        expect_error(rb_split_from_idx(&s, RB_DATASET_MNIST, g.data, g.size, "img.gz", lb.data, lb.size, "lab"),
                     RB_ERR_CORRUPT,
                     "img.gz: truncated: the header promises 5 images of 3×4, 60 bytes of pixels, but only 57 "
                     "(after decompression) are there");
        free(g.data);
        /* a gzip stream cut inside: the deflate data ends early */
        g = gzip_buf(im);
        ck_assert_int_ne(rb_split_from_idx(&s, RB_DATASET_MNIST, g.data, g.size - 12, "img.gz", lb.data, lb.size,
                                           "lab"),
                         RB_OK);
        ck_assert_int_eq(rb_last_status(), RB_ERR_CORRUPT);
        ck_assert_ptr_nonnull(strstr(rb_last_error(), "img.gz: "));
        /* only the 8-byte trailer missing */
        expect_error(rb_split_from_idx(&s, RB_DATASET_MNIST, g.data, g.size - 8, "img.gz", lb.data, lb.size, "lab"),
                     RB_ERR_CORRUPT, "img.gz: the gzip stream is cut short (no end-of-stream trailer)");
        /* garbage after the stream */
        {
            unsigned char *more = malloc(g.size + 3);
            memcpy(more, g.data, g.size);
            memcpy(more + g.size, "xyz", 3);
            expect_error(rb_split_from_idx(&s, RB_DATASET_MNIST, more, g.size + 3, "img.gz", lb.data, lb.size,
                                           "lab"),
                         RB_ERR_CORRUPT, "img.gz: 3 bytes of trailing garbage after the gzip data");
            free(more);
        }
        /* corrupt deflate data */
        g.data[g.size / 2] ^= 0xff;
        g.data[g.size / 2 + 1] ^= 0x55;
        ck_assert_int_ne(rb_split_from_idx(&s, RB_DATASET_MNIST, g.data, g.size, "img.gz", lb.data, lb.size, "lab"),
                         RB_OK);
        ck_assert_int_eq(rb_last_status(), RB_ERR_CORRUPT);
        free(g.data);
    }
    /* extra bytes */
    {
        unsigned char *more = malloc(im.size + 3);
        memcpy(more, im.data, im.size);
        memset(more + im.size, 0, 3);
        expect_error(rb_split_from_idx(&s, RB_DATASET_MNIST, more, im.size + 3, "img", lb.data, lb.size, "lab"),
                     RB_ERR_CORRUPT, "img: 3 bytes longer than its header says (5 images of 3×4, 60 bytes of pixels)");
        free(more);
    }
    /* counts disagree */
    expect_error(rb_split_from_idx(&s, RB_DATASET_MNIST, im.data, im.size, "img", lb4.data, lb4.size, "lab"),
                 RB_ERR_CORRUPT, "img holds 5 images but lab holds 4 labels: use the files of one split");
    /* a label out of range */
    lb.data[8 + 2] = 10;
    expect_error(rb_split_from_idx(&s, RB_DATASET_MNIST, im.data, im.size, "img", lb.data, lb.size, "lab"),
                 RB_ERR_CORRUPT, "lab: label 10 of example 2 is out of range [0, 9]");
    /* a header promising a terabyte of gzip'd pixels is refused before any allocation */
    {
        unsigned char huge[16];
        buf h = {huge, 16}, g;
        put_be32(huge, 0x803);
        put_be32(huge + 4, 1000000);
        put_be32(huge + 8, 1000);
        put_be32(huge + 12, 1000);
        g = gzip_buf(h);
        ck_assert_int_eq(rb_split_from_idx(&s, RB_DATASET_MNIST, g.data, g.size, "img", lb.data, lb.size, "lab"),
                         RB_ERR_CORRUPT);
        free(g.data);
    }
    /* zero-sized images */
    put_be32(im.data + 8, 0);
    expect_error(rb_split_from_idx(&s, RB_DATASET_MNIST, im.data, im.size, "img", lb.data, lb.size, "lab"),
                 RB_ERR_CORRUPT, "img: images of 0×4 pixels: each side must be 1 to 65536");
    ck_assert_ptr_null(s);
    free(im.data);
    free(lb.data);
    free(lb4.data);
}
END_TEST

START_TEST(truncation_and_damage_fail_cleanly)
{
    buf im = idx_images(6, 5, 4), lb = idx_labels(6), g = gzip_buf(im), c = cifar_file(2, 0, false);
    rb_split *s = NULL;
    rb_rng r;

    /* every shorter length of raw and gzip'd images, and of labels */
    for (size_t n = 0; n < im.size; n++) {
        ck_assert_int_eq(rb_split_from_idx(&s, RB_DATASET_MNIST, im.data, n, "i", lb.data, lb.size, "l"),
                         RB_ERR_CORRUPT);
        ck_assert_ptr_null(s);
    }
    for (size_t n = 0; n < g.size; n++) {
        ck_assert_int_eq(rb_split_from_idx(&s, RB_DATASET_MNIST, g.data, n, "i", lb.data, lb.size, "l"),
                         RB_ERR_CORRUPT);
        ck_assert_ptr_null(s);
        ck_assert_ptr_null(strchr(rb_last_error(), '\n'));
    }
    for (size_t n = 0; n < lb.size; n++)
        ck_assert_int_eq(rb_split_from_idx(&s, RB_DATASET_MNIST, im.data, im.size, "i", lb.data, n, "l"),
                         RB_ERR_CORRUPT);
    for (size_t n = 0; n < c.size; n++) {
        const void *files[1] = {c.data};
        size_t sizes[1] = {n};
        rb_status st = rb_split_from_cifar(&s, RB_DATASET_CIFAR10, files, sizes, NULL, 1);
        ck_assert_int_eq(st, n == 3073 ? RB_OK : RB_ERR_CORRUPT);
        rb_split_destroy(s);
    }

    /* random damage to the gzip'd file: an error or a split, never a crash */
    rb_rng_init(&r, 1, 0, 0);
    for (int trial = 0; trial < 3000; trial++) {
        unsigned char *d = malloc(g.size);
        int flips = 1 + (int)(rb_rng_u32(&r) % 3);
        rb_status st;
        memcpy(d, g.data, g.size);
        for (int k = 0; k < flips; k++)
            d[rb_rng_u32(&r) % g.size] ^= (unsigned char)(1 + rb_rng_u32(&r) % 255);
        st = rb_split_from_idx(&s, RB_DATASET_MNIST, d, g.size, "i", lb.data, lb.size, "l");
        if (st == RB_OK)
            rb_split_destroy(s);
        else
            ck_assert_ptr_null(s);
        free(d);
    }
    free(im.data);
    free(lb.data);
    free(g.data);
    free(c.data);
}
END_TEST

START_TEST(idx_missing_file_names_the_path)
{
    char spec[PATH_MAX + 32], msg[3 * PATH_MAX];
    rb_split *s = NULL;
    buf im = idx_images(2, 2, 2);

    snprintf(spec, sizeof spec, "mnist:%s/nowhere", dir);
    snprintf(msg, sizeof msg,
             "cannot open %s/nowhere/train-images-idx3-ubyte (nor %s/nowhere/train-images-idx3-ubyte.gz): no such file",
             dir, dir);
    expect_error(rb_split_open(&s, spec, RB_SPLIT_TRAIN, NULL), RB_ERR_NOT_FOUND, msg);

    /* images present, labels missing: names the labels file */
    write_buf("t10k-images-idx3-ubyte", im);
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    snprintf(msg, sizeof msg, "cannot open %s/t10k-labels-idx1-ubyte (nor %s/t10k-labels-idx1-ubyte.gz): no such file",
             dir, dir);
    expect_error(rb_split_open(&s, spec, RB_SPLIT_TEST, NULL), RB_ERR_NOT_FOUND, msg);
    ck_assert_ptr_null(s);
    free(im.data);
}
END_TEST

/* ------------------------------------------------------------ CIFAR */

/* `n` CIFAR records; record r of file f: label (f*7 + r) % classes, fine
 * label likewise for CIFAR-100 (coarse = fine / 5), pixels from pixel(). */
static buf cifar_file(int n, int f, bool c100)
{
    size_t rec = c100 ? 3074 : 3073;
    buf b;
    b.size = rec * (size_t)n;
    b.data = malloc(b.size);
    ck_assert_ptr_nonnull(b.data);
    for (int r = 0; r < n; r++) {
        unsigned char *p = b.data + rec * (size_t)r;
        unsigned label = (unsigned)(f * 7 + r) % (c100 ? 100u : 10u);
        if (c100) {
            *p++ = (unsigned char)(label / 5);
            *p++ = (unsigned char)label;
        } else {
            *p++ = (unsigned char)label;
        }
        for (int k = 0; k < 3072; k++)
            p[k] = pixel((uint32_t)(f * 100 + r), (uint32_t)k, 2);
    }
    return b;
}

static void check_cifar_record(const rb_split *s, int64_t i, int f, int r, bool c100)
{
    const unsigned char *px = (const unsigned char *)rb_split_images(s) + (size_t)i * 3072;
    ck_assert_int_eq(rb_split_labels(s)[i], (f * 7 + r) % (c100 ? 100 : 10));
    ck_assert_int_eq(rb_split_source_indices(s)[i], i);
    for (int k = 0; k < 3072; k++)
        ck_assert_uint_eq(px[k], pixel((uint32_t)(f * 100 + r), (uint32_t)k, 2));
}

START_TEST(cifar10_reads_back_exactly)
{
    char spec[PATH_MAX + 64], sub[PATH_MAX + 32];
    rb_split *train = NULL, *test = NULL;
    int c, h, w;

    /* in the tarball's folder, opened through its parent */
    snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    for (int f = 1; f <= 5; f++) {
        char name[64];
        buf b = cifar_file(f, f, false); /* 1 + 2 + 3 + 4 + 5 = 15 records */
        snprintf(name, sizeof name, "cifar-10-batches-bin/data_batch_%d.bin", f);
        write_buf(name, b);
        free(b.data);
    }
    {
        buf b = cifar_file(3, 0, false);
        write_buf("cifar-10-batches-bin/test_batch.bin", b);
        free(b.data);
    }
    snprintf(spec, sizeof spec, "cifar10:%s", dir);
    ck_assert_msg(rb_split_open(&train, spec, RB_SPLIT_TRAIN, NULL) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_count(train), 15);
    ck_assert_int_eq(rb_split_classes(train), 10);
    rb_split_stored_shape(train, &c, &h, &w);
    ck_assert(c == 3 && h == 32 && w == 32);
    for (int f = 1, i = 0; f <= 5; f++)
        for (int r = 0; r < f; r++, i++)
            check_cifar_record(train, i, f, r, false);
    ck_assert_str_eq(rb_split_class_name(train, 0), "airplane");
    ck_assert_str_eq(rb_split_class_name(train, 9), "truck");
    /* and straight from the folder itself */
    snprintf(spec, sizeof spec, "cifar10:%s", sub);
    ck_assert_msg(rb_split_open(&test, spec, RB_SPLIT_TEST, NULL) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_count(test), 3);
    for (int r = 0; r < 3; r++)
        check_cifar_record(test, r, 0, r, false);
    rb_split_destroy(train);
    rb_split_destroy(test);
}
END_TEST

START_TEST(cifar100_keeps_fine_labels)
{
    char spec[PATH_MAX + 32];
    rb_split *s = NULL;
    buf b = cifar_file(20, 2, true);
    write_buf("train.bin", b);
    snprintf(spec, sizeof spec, "cifar100:%s", dir);
    ck_assert_msg(rb_split_open(&s, spec, RB_SPLIT_TRAIN, NULL) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_count(s), 20);
    ck_assert_int_eq(rb_split_classes(s), 100);
    for (int r = 0; r < 20; r++)
        check_cifar_record(s, r, 2, r, true);
    ck_assert_str_eq(rb_split_class_name(s, 0), "apple");
    ck_assert_str_eq(rb_split_class_name(s, 58), "pickup_truck");
    ck_assert_str_eq(rb_split_class_name(s, 99), "worm");
    rb_split_destroy(s);
    free(b.data);

    /* the test split is missing: named */
    {
        char msg[2 * PATH_MAX];
        snprintf(msg, sizeof msg, "cannot open %s/test.bin: No such file or directory", dir);
        expect_error(rb_split_open(&s, spec, RB_SPLIT_TEST, NULL), RB_ERR_NOT_FOUND, msg);
    }
}
END_TEST

START_TEST(cifar_bad_input_is_refused_with_one_exact_line)
{
    rb_split *s = NULL;
    buf b = cifar_file(3, 0, false), b100 = cifar_file(3, 0, true);
    const void *files[1];
    size_t sizes[1];
    const char *whats[1] = {"batch.bin"};

    files[0] = b.data;
    sizes[0] = b.size - 1;
    expect_error(rb_split_from_cifar(&s, RB_DATASET_CIFAR10, files, sizes, whats, 1), RB_ERR_CORRUPT,
                 "batch.bin: 9218 bytes is not a whole number of 3073-byte CIFAR-10 records (label byte + 3072 "
                 "pixels): truncated, or not a CIFAR-10 binary file");
    sizes[0] = 0;
    expect_error(rb_split_from_cifar(&s, RB_DATASET_CIFAR10, files, sizes, whats, 1), RB_ERR_CORRUPT,
                 "batch.bin is empty: expected CIFAR-10 records of 3073 bytes");
    sizes[0] = b.size;
    b.data[3073] = 12;
    expect_error(rb_split_from_cifar(&s, RB_DATASET_CIFAR10, files, sizes, whats, 1), RB_ERR_CORRUPT,
                 "batch.bin: record 1 has label 12, out of range [0, 9]: not a CIFAR-10 file?");
    /* CIFAR-100 read as CIFAR-10: sizes do not divide */
    files[0] = b100.data;
    sizes[0] = b100.size;
    expect_error(rb_split_from_cifar(&s, RB_DATASET_CIFAR10, files, sizes, whats, 1), RB_ERR_CORRUPT,
                 "batch.bin: 9222 bytes is not a whole number of 3073-byte CIFAR-10 records (label byte + 3072 "
                 "pixels): truncated, or not a CIFAR-10 binary file");
    b100.data[3074 * 2 + 1] = 100;
    expect_error(rb_split_from_cifar(&s, RB_DATASET_CIFAR100, files, sizes, whats, 1), RB_ERR_CORRUPT,
                 "batch.bin: record 2 has fine label 100, out of range [0, 99]: not a CIFAR-100 file?");
    b100.data[0] = 20;
    expect_error(rb_split_from_cifar(&s, RB_DATASET_CIFAR100, files, sizes, whats, 1), RB_ERR_CORRUPT,
                 "batch.bin: record 0 has coarse label 20, out of range [0, 19]: not a CIFAR-100 file?");
    ck_assert_ptr_null(s);
    free(b.data);
    free(b100.data);
}
END_TEST

/* ------------------------------------------------------------ npy */

static void npy_path(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

START_TEST(npy_layouts_and_dtypes_read_back_exactly)
{
    enum { N = 4, H = 4, W = 5 };
    char xi[PATH_MAX + 16], yi[PATH_MAX + 16], xt[PATH_MAX + 16], yt[PATH_MAX + 16];
    char spec[4 * PATH_MAX + 128];
    unsigned char nhwc[N * H * W * 3], gray[N * H * W];
    float nchw[N * 3 * H * W];
    int64_t labels64[N] = {3, 0, 7, 3};
    int32_t labels32[N] = {1, 1, 0, 2};
    uint8_t labels8[N] = {4, 0, 0, 1};
    rb_split *s = NULL;
    int c, h, w;

    for (int i = 0; i < N; i++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                for (int k = 0; k < 3; k++) {
                    nhwc[((i * H + y) * W + x) * 3 + k] = pixel((uint32_t)i, (uint32_t)(y * W + x), (uint32_t)k);
                    nchw[((i * 3 + k) * H + y) * W + x] = (float)((i + y + x + k) % 8) / 8.0f;
                }
                gray[(i * H + y) * W + x] = pixel((uint32_t)i, (uint32_t)y, (uint32_t)x);
            }

    /* u8 N×H×W×3 with int64 labels (train); f32 N×3×H×W with int32 labels (test) */
    npy_path(xi, sizeof xi, "x.npy");
    npy_path(yi, sizeof yi, "y.npy");
    npy_path(xt, sizeof xt, "tx.npy");
    npy_path(yt, sizeof yt, "ty.npy");
    ck_assert_int_eq(rb_npy_save(xi, RB_DTYPE_U8, 4, (int64_t[]){N, H, W, 3}, nhwc), RB_OK);
    ck_assert_int_eq(rb_npy_save(yi, RB_DTYPE_I64, 1, (int64_t[]){N}, labels64), RB_OK);
    ck_assert_int_eq(rb_npy_save(xt, RB_DTYPE_F32, 4, (int64_t[]){N, 3, H, W}, nchw), RB_OK);
    ck_assert_int_eq(rb_npy_save(yt, RB_DTYPE_I32, 1, (int64_t[]){N}, labels32), RB_OK);
    snprintf(spec, sizeof spec, "npy:%s,%s;%s,%s", xi, yi, xt, yt);

    ck_assert_msg(rb_split_open(&s, spec, RB_SPLIT_TRAIN, NULL) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_count(s), N);
    ck_assert_int_eq(rb_split_classes(s), 8);
    ck_assert_int_eq(rb_split_dtype(s), RB_DTYPE_U8);
    ck_assert_str_eq(rb_split_class_name(s, 7), "class_7");
    rb_split_stored_shape(s, &c, &h, &w);
    ck_assert(c == 3 && h == H && w == W);
    for (int i = 0; i < N; i++) {
        const unsigned char *px = (const unsigned char *)rb_split_images(s) + i * 3 * H * W;
        ck_assert_int_eq(rb_split_labels(s)[i], labels64[i]);
        for (int k = 0; k < 3; k++)
            for (int p = 0; p < H * W; p++)
                ck_assert_uint_eq(px[k * H * W + p], nhwc[(i * H * W + p) * 3 + k]);
    }
    rb_split_destroy(s);

    ck_assert_msg(rb_split_open(&s, spec, RB_SPLIT_TEST, NULL) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_dtype(s), RB_DTYPE_F32);
    ck_assert_int_eq(rb_split_classes(s), 3);
    ck_assert_mem_eq(rb_split_images(s), nchw, sizeof nchw);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(rb_split_labels(s)[i], labels32[i]);
    rb_split_destroy(s);

    /* N×H×W with uint8 labels: one channel */
    ck_assert_int_eq(rb_npy_save(xi, RB_DTYPE_U8, 3, (int64_t[]){N, H, W}, gray), RB_OK);
    ck_assert_int_eq(rb_npy_save(yi, RB_DTYPE_U8, 1, (int64_t[]){N}, labels8), RB_OK);
    snprintf(spec, sizeof spec, "npy:%s,%s", xi, yi);
    ck_assert_msg(rb_split_open(&s, spec, RB_SPLIT_TRAIN, NULL) == RB_OK, "%s", rb_last_error());
    rb_split_stored_shape(s, &c, &h, &w);
    ck_assert(c == 1 && h == H && w == W);
    ck_assert_mem_eq(rb_split_images(s), gray, sizeof gray);
    ck_assert_int_eq(rb_split_labels(s)[0], 4);
    rb_split_destroy(s);

    /* no test split in the spec */
    {
        char msg[3 * PATH_MAX];
        snprintf(msg, sizeof msg,
                 "dataset spec npy:%s,%s has no test split: append ;TEST_IMAGES.npy,TEST_LABELS.npy", xi, yi);
        expect_error(rb_split_open(&s, spec, RB_SPLIT_TEST, NULL), RB_ERR_INVALID_ARGUMENT, msg);
    }
}
END_TEST

START_TEST(npy_bad_arrays_are_refused)
{
    float f[2 * 3 * 4 * 3];
    int64_t l[2] = {0, 1};
    rb_npy im = {0}, lb = {0};
    rb_split *s = NULL;

    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        f[i] = 0.5f;
    im.dtype = RB_DTYPE_F32;
    im.ndim = 4;
    im.data = f;
    im.nbytes = sizeof f;
    im.numel = 72;
    lb.dtype = RB_DTYPE_I64;
    lb.ndim = 1;
    lb.shape[0] = 2;
    lb.numel = 2;
    lb.data = l;
    lb.nbytes = sizeof l;

    /* 2×3×4×3: both axis 1 and 3 could be channels */
    memcpy(im.shape, (int64_t[]){2, 3, 4, 3}, 4 * sizeof(int64_t));
    expect_error(rb_split_from_npy(&s, &im, "x.npy", &lb, "y.npy"), RB_ERR_UNSUPPORTED,
                 "x.npy: shape 2×3×4×3 is ambiguous: both axis 1 and axis 3 could hold the channels");
    /* 2×4×3×3 is N×H×W×C: fine */
    memcpy(im.shape, (int64_t[]){2, 4, 3, 3}, 4 * sizeof(int64_t));
    ck_assert_msg(rb_split_from_npy(&s, &im, "x.npy", &lb, "y.npy") == RB_OK, "%s", rb_last_error());
    rb_split_destroy(s);
    /* no channel axis */
    memcpy(im.shape, (int64_t[]){2, 2, 9, 2}, 4 * sizeof(int64_t));
    expect_error(rb_split_from_npy(&s, &im, "x.npy", &lb, "y.npy"), RB_ERR_UNSUPPORTED,
                 "x.npy: shape 2×2×9×2 has no channel axis of 1 or 3 (expected N×H×W×C or N×C×H×W)");
    /* out of [0, 1] */
    memcpy(im.shape, (int64_t[]){2, 4, 3, 3}, 4 * sizeof(int64_t));
    f[40] = 1.5f;
    expect_error(rb_split_from_npy(&s, &im, "x.npy", &lb, "y.npy"), RB_ERR_INVALID_ARGUMENT,
                 "x.npy: value 1.5 in example 1 is outside [0, 1]: float32 images must be scaled to [0, 1]");
    f[40] = NAN;
    ck_assert_int_eq(rb_split_from_npy(&s, &im, "x.npy", &lb, "y.npy"), RB_ERR_INVALID_ARGUMENT);
    f[40] = 0.5f;
    /* labels: count, sign, shape, dtype */
    lb.shape[0] = 1;
    expect_error(rb_split_from_npy(&s, &im, "x.npy", &lb, "y.npy"), RB_ERR_INVALID_ARGUMENT,
                 "x.npy holds 2 images but y.npy holds 1 labels");
    lb.shape[0] = 2;
    l[1] = -1;
    expect_error(rb_split_from_npy(&s, &im, "x.npy", &lb, "y.npy"), RB_ERR_INVALID_ARGUMENT,
                 "y.npy: label -1 of example 1 is out of range [0, 99999]");
    l[1] = 1;
    lb.dtype = RB_DTYPE_F32;
    lb.nbytes = 8;
    expect_error(rb_split_from_npy(&s, &im, "x.npy", &lb, "y.npy"), RB_ERR_UNSUPPORTED,
                 "y.npy: labels of dtype f32; expected integers (uint8, int32, int64)");
    lb.dtype = RB_DTYPE_I64;
    lb.nbytes = sizeof l;
    im.dtype = RB_DTYPE_I32;
    expect_error(rb_split_from_npy(&s, &im, "x.npy", &lb, "y.npy"), RB_ERR_UNSUPPORTED,
                 "x.npy: images of dtype i32; robusta reads uint8 (0..255) or float32 in [0, 1]");
    im.dtype = RB_DTYPE_F32;
    im.ndim = 2;
    expect_error(rb_split_from_npy(&s, &im, "x.npy", &lb, "y.npy"), RB_ERR_UNSUPPORTED,
                 "x.npy: images with 2 dimensions; expected N×H×W, N×H×W×C or N×C×H×W");
    ck_assert_ptr_null(s);

    /* a missing .npy file: rb_npy_load's message names it */
    {
        char spec[2 * PATH_MAX + 32];
        snprintf(spec, sizeof spec, "npy:%s/nope.npy,%s/nope-labels.npy", dir, dir);
        ck_assert_int_eq(rb_split_open(&s, spec, RB_SPLIT_TRAIN, NULL), RB_ERR_NOT_FOUND);
        ck_assert_ptr_nonnull(strstr(rb_last_error(), "nope.npy"));
    }
}
END_TEST

/* ------------------------------------------------------------ specs */

START_TEST(spec_strings_parse)
{
    rb_dataset_spec *sp = malloc(sizeof *sp);
    ck_assert_int_eq(rb_dataset_spec_parse(sp, "fashion-mnist"), RB_OK);
    ck_assert_int_eq(sp->kind, RB_DATASET_FASHION_MNIST);
    ck_assert_str_eq(sp->dir, "/usr/share/datasets/fashion-mnist");
    ck_assert_int_eq(rb_dataset_spec_parse(sp, "fashion-mnist:/data/fm"), RB_OK);
    ck_assert_str_eq(sp->dir, "/data/fm");
    ck_assert_int_eq(rb_dataset_spec_parse(sp, "mnist:/a:b"), RB_OK); /* colons after the first belong to the path */
    ck_assert_int_eq(sp->kind, RB_DATASET_MNIST);
    ck_assert_str_eq(sp->dir, "/a:b");
    ck_assert_int_eq(rb_dataset_spec_parse(sp, "cifar10:c10"), RB_OK);
    ck_assert_int_eq(sp->kind, RB_DATASET_CIFAR10);
    ck_assert_int_eq(rb_dataset_spec_parse(sp, "cifar100:c100"), RB_OK);
    ck_assert_int_eq(sp->kind, RB_DATASET_CIFAR100);
    ck_assert_int_eq(rb_dataset_spec_parse(sp, "npy:a.npy,b.npy"), RB_OK);
    ck_assert_int_eq(sp->kind, RB_DATASET_NPY);
    ck_assert_str_eq(sp->images[RB_SPLIT_TRAIN], "a.npy");
    ck_assert_str_eq(sp->labels[RB_SPLIT_TRAIN], "b.npy");
    ck_assert_str_eq(sp->images[RB_SPLIT_TEST], "");
    ck_assert_int_eq(rb_dataset_spec_parse(sp, "npy:a.npy,b.npy;c.npy,d.npy"), RB_OK);
    ck_assert_str_eq(sp->images[RB_SPLIT_TEST], "c.npy");
    ck_assert_str_eq(sp->labels[RB_SPLIT_TEST], "d.npy");
    ck_assert_str_eq(rb_data_source_str(RB_DATASET_CIFAR100), "cifar100");
    ck_assert_str_eq(rb_split_which_str(RB_SPLIT_TEST), "test");
    free(sp);
}
END_TEST

START_TEST(bad_spec_strings_are_refused_with_one_exact_line)
{
    rb_dataset_spec *sp = malloc(sizeof *sp);
    rb_split *s = NULL;
    expect_error(rb_dataset_spec_parse(sp, "cifar-10:/data"), RB_ERR_INVALID_ARGUMENT,
                 "unknown dataset kind 'cifar-10' in spec 'cifar-10:/data'; did you mean 'cifar10'? (kinds: mnist, "
                 "fashion-mnist, cifar10, cifar100, npy, voc-seg, coco, folder, list)");
    expect_error(rb_dataset_spec_parse(sp, "fashion_mnist"), RB_ERR_INVALID_ARGUMENT,
                 "unknown dataset kind 'fashion_mnist' in spec 'fashion_mnist'; did you mean 'fashion-mnist'? "
                 "(kinds: mnist, fashion-mnist, cifar10, cifar100, npy, voc-seg, coco, folder, list)");
    expect_error(rb_dataset_spec_parse(sp, "imagenet:/x"), RB_ERR_INVALID_ARGUMENT,
                 "unknown dataset kind 'imagenet' in spec 'imagenet:/x' (kinds: mnist, fashion-mnist, cifar10, "
                 "cifar100, npy, voc-seg, coco, folder, list)");
    expect_error(rb_dataset_spec_parse(sp, ""), RB_ERR_INVALID_ARGUMENT,
                 "empty dataset spec: expected one of mnist:DIR, fashion-mnist[:DIR], cifar10:DIR, cifar100:DIR, "
                 "npy:IMAGES.npy,LABELS.npy[;TEST_IMAGES.npy,TEST_LABELS.npy], voc-seg:DIR, "
                 "coco:IMAGES,ANNOTATIONS.json[;TEST_IMAGES,TEST_ANNOTATIONS.json], coco:DIR, folder:DIR, "
                 "list:DIR,TRAIN.txt[,TEST.txt]");
    expect_error(rb_dataset_spec_parse(sp, "mnist"), RB_ERR_INVALID_ARGUMENT,
                 "dataset spec 'mnist' needs a folder: mnist:DIR (only fashion-mnist has a default, "
                 "/usr/share/datasets/fashion-mnist)");
    expect_error(rb_dataset_spec_parse(sp, "cifar10:"), RB_ERR_INVALID_ARGUMENT,
                 "dataset spec 'cifar10:' needs a folder: cifar10:DIR (only fashion-mnist has a default, "
                 "/usr/share/datasets/fashion-mnist)");
    expect_error(rb_dataset_spec_parse(sp, "npy:a.npy"), RB_ERR_INVALID_ARGUMENT,
                 "dataset spec 'npy:a.npy': expected npy:IMAGES.npy,LABELS.npy[;TEST_IMAGES.npy,TEST_LABELS.npy]");
    expect_error(rb_dataset_spec_parse(sp, "npy:a.npy,b.npy;c.npy"), RB_ERR_INVALID_ARGUMENT,
                 "dataset spec 'npy:a.npy,b.npy;c.npy': expected "
                 "npy:IMAGES.npy,LABELS.npy[;TEST_IMAGES.npy,TEST_LABELS.npy]");
    expect_error(rb_dataset_spec_parse(sp, "npy:a.npy,b.npy,c.npy"), RB_ERR_INVALID_ARGUMENT,
                 "dataset spec 'npy:a.npy,b.npy,c.npy': expected "
                 "npy:IMAGES.npy,LABELS.npy[;TEST_IMAGES.npy,TEST_LABELS.npy]");
    expect_error(rb_dataset_spec_parse(sp, "npy:"), RB_ERR_INVALID_ARGUMENT,
                 "dataset spec 'npy:' names no files: expected "
                 "npy:IMAGES.npy,LABELS.npy[;TEST_IMAGES.npy,TEST_LABELS.npy]");
    /* rb_split_open reports the same */
    expect_error(rb_split_open(&s, "cifar-100:/x", RB_SPLIT_TRAIN, NULL), RB_ERR_INVALID_ARGUMENT,
                 "unknown dataset kind 'cifar-100' in spec 'cifar-100:/x'; did you mean 'cifar100'? (kinds: mnist, "
                 "fashion-mnist, cifar10, cifar100, npy, voc-seg, coco, folder, list)");
    ck_assert_ptr_null(s);
    free(sp);
}
END_TEST

/* ------------------------------------------------------------ selection */

START_TEST(class_subset_relabels_in_the_given_order)
{
    rb_split *all = memory_split(30, 1, 2, 2, 10), *s = NULL;
    rb_split_options o = {0};

    o.classes = "5,7,9";
    ck_assert_msg(rb_split_apply(&s, all, &o) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_count(s), 9);
    ck_assert_int_eq(rb_split_classes(s), 3);
    ck_assert_str_eq(rb_split_class_name(s, 0), "class_5");
    ck_assert_str_eq(rb_split_class_name(s, 2), "class_9");
    for (int64_t i = 0; i < 9; i++) {
        int64_t src = rb_split_source_indices(s)[i];
        int64_t old = src % 10;
        ck_assert_int_eq(rb_split_labels(s)[i], old == 5 ? 0 : old == 7 ? 1 : 2);
        /* file order kept */
        if (i > 0)
            ck_assert_int_gt(src, rb_split_source_indices(s)[i - 1]);
        /* pixels follow their example */
        ck_assert_mem_eq((const unsigned char *)rb_split_images(s) + i * 4,
                         (const unsigned char *)rb_split_images(all) + src * 4, 4);
    }
    rb_split_destroy(s);

    o.classes = "9, 0-2";
    ck_assert_int_eq(rb_split_apply(&s, all, &o), RB_OK);
    ck_assert_int_eq(rb_split_classes(s), 4);
    ck_assert_int_eq(rb_split_count(s), 12);
    ck_assert_int_eq(rb_split_labels(s)[0], 1); /* example 0 had class 0 */
    ck_assert_int_eq(rb_split_labels(s)[3], 0); /* example 9 had class 9 */
    ck_assert_str_eq(rb_split_class_name(s, 0), "class_9");
    rb_split_destroy(s);

    o.classes = "0-12";
    expect_error(rb_split_apply(&s, all, &o), RB_ERR_INVALID_ARGUMENT,
                 "class list '0-12': class 12 is out of range: mem has 10 classes (0-9)");
    o.classes = "3,1-4";
    expect_error(rb_split_apply(&s, all, &o), RB_ERR_INVALID_ARGUMENT, "class list '3,1-4' names class 3 twice");
    o.classes = "4-0";
    expect_error(rb_split_apply(&s, all, &o), RB_ERR_INVALID_ARGUMENT,
                 "class list '4-0': range 4-0 runs backwards; write 0-4");
    o.classes = "0,x";
    expect_error(rb_split_apply(&s, all, &o), RB_ERR_INVALID_ARGUMENT,
                 "class list '0,x': 'x' is not a class number or a range like 0-4");
    o.classes = "0,,1";
    expect_error(rb_split_apply(&s, all, &o), RB_ERR_INVALID_ARGUMENT,
                 "class list '0,,1' has an empty item: write numbers and ranges like 0-4,7");
    o.classes = "1-";
    expect_error(rb_split_apply(&s, all, &o), RB_ERR_INVALID_ARGUMENT,
                 "class list '1-': '1-' is not a class number or a range like 0-4");
    ck_assert_ptr_null(s);
    rb_split_destroy(all);
}
END_TEST

/* Fixed subsets by index (RobustBench's evaluation lists): the listed
 * examples in the split's order whatever the list's, before the class
 * list relabels them; bad entries refused naming them. */
START_TEST(index_lists_select_examples_in_split_order)
{
    rb_split *all = memory_split(30, 1, 2, 2, 10), *s = NULL;
    rb_split_options o = {0};
    const int64_t list[4] = {17, 3, 25, 4}, out_of_range[2] = {2, 30}, twice[3] = {5, 8, 5};
    o.indices = list;
    o.index_count = 4;
    ck_assert_msg(rb_split_apply(&s, all, &o) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_count(s), 4);
    ck_assert_int_eq(rb_split_source_indices(s)[0], 3);
    ck_assert_int_eq(rb_split_source_indices(s)[1], 4);
    ck_assert_int_eq(rb_split_source_indices(s)[2], 17);
    ck_assert_int_eq(rb_split_source_indices(s)[3], 25);
    ck_assert_int_eq(rb_split_labels(s)[2], 7);
    ck_assert_mem_eq((const unsigned char *)rb_split_images(s) + 2 * 4,
                     (const unsigned char *)rb_split_images(all) + 17 * 4, 4);
    rb_split_destroy(s);
    o.classes = "7,3"; /* 17 (class 7) and 3 (class 3) remain, relabelled 0 and 1 */
    ck_assert_int_eq(rb_split_apply(&s, all, &o), RB_OK);
    ck_assert_int_eq(rb_split_count(s), 2);
    ck_assert_int_eq(rb_split_labels(s)[0], 1);
    ck_assert_int_eq(rb_split_labels(s)[1], 0);
    rb_split_destroy(s);
    o.classes = NULL;
    o.indices = out_of_range;
    o.index_count = 2;
    expect_error(rb_split_apply(&s, all, &o), RB_ERR_INVALID_ARGUMENT,
                 "mem: index 30 (entry 2 of the list) is outside [0, 30), the split's examples");
    o.indices = twice;
    o.index_count = 3;
    expect_error(rb_split_apply(&s, all, &o), RB_ERR_INVALID_ARGUMENT,
                 "mem: index 5 is listed twice (entries 1 and 3)");
    ck_assert_ptr_null(s);
    rb_split_destroy(all);
}
END_TEST

static void selected(const rb_split *all, uint64_t seed, const char *classes, int64_t k, int64_t **out, int64_t *n)
{
    rb_split *s = NULL;
    rb_split_options o = {0};
    o.per_class = k;
    o.seed = seed;
    o.classes = classes;
    ck_assert_msg(rb_split_apply(&s, all, &o) == RB_OK, "%s", rb_last_error());
    *n = rb_split_count(s);
    *out = malloc((size_t)*n * sizeof **out + 1);
    memcpy(*out, rb_split_source_indices(s), (size_t)*n * sizeof **out);
    rb_split_destroy(s);
}

START_TEST(per_class_selection_is_seeded)
{
    /* 4 classes; class 3 has only 2 examples */
    int64_t labels[50];
    unsigned char px[50];
    rb_split *all = NULL;
    int64_t *a, *b, *c, *d, *e, *f, na, nb, nc, nd, ne, nf;
    int count[4] = {0, 0, 0, 0};

    for (int i = 0; i < 50; i++) {
        labels[i] = i < 2 ? 3 : i % 3;
        px[i] = (unsigned char)i;
    }
    ck_assert_int_eq(rb_split_create(&all, RB_DTYPE_U8, 50, 1, 1, 1, px, labels, 4, NULL, "mem"), RB_OK);
    selected(all, 11, NULL, 5, &a, &na);
    selected(all, 11, NULL, 5, &b, &nb);
    selected(all, 12, NULL, 5, &c, &nc);
    ck_assert_int_eq(na, 5 + 5 + 5 + 2);
    ck_assert_int_eq(nb, na);
    ck_assert_int_eq(nc, na);
    ck_assert_mem_eq(a, b, (size_t)na * sizeof *a); /* same seed, same choice */
    ck_assert_int_ne(memcmp(a, c, (size_t)na * sizeof *a), 0); /* another seed, another */
    for (int64_t i = 0; i < na; i++) {
        count[labels[a[i]]]++;
        if (i > 0)
            ck_assert_int_gt(a[i], a[i - 1]); /* file order */
    }
    ck_assert(count[0] == 5 && count[1] == 5 && count[2] == 5 && count[3] == 2);

    /* a class's choice does not depend on which other classes are kept, nor their order */
    selected(all, 11, "1,2", 5, &d, &nd);
    selected(all, 11, "2,1", 5, &e, &ne);
    ck_assert_int_eq(nd, 10);
    ck_assert_mem_eq(d, e, (size_t)nd * sizeof *d);
    {
        int64_t j = 0;
        for (int64_t i = 0; i < na; i++)
            if (labels[a[i]] == 1 || labels[a[i]] == 2)
                ck_assert_int_eq(a[i], d[j++]);
    }
    /* K larger than every class: everything */
    selected(all, 11, NULL, 1000, &f, &nf);
    ck_assert_int_eq(nf, 50);
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
    free(f);
    {
        rb_split *s = NULL;
        rb_split_options o = {0};
        o.per_class = -1;
        expect_error(rb_split_apply(&s, all, &o), RB_ERR_INVALID_ARGUMENT,
                     "mem: examples per class must be >= 0 (0 keeps all), not -1");
    }
    rb_split_destroy(all);
}
END_TEST

/* ------------------------------------------------------------ geometry */

static rb_split *float_split(int c, int h, int w, const float *values)
{
    rb_split *s = NULL;
    int64_t label = 0;
    ck_assert_int_eq(rb_split_create(&s, RB_DTYPE_F32, 1, c, h, w, values, &label, 1, NULL, "f"), RB_OK);
    return s;
}

static void expect_resized(const float *in, int h, int w, int size_h, int size_w, const float *want, float scale)
{
    rb_split *s = float_split(1, h, w, in), *r = NULL;
    rb_split_options o = {0};
    float out[64];
    int c, oh, ow;
    ck_assert_int_eq(size_h, size_w);
    o.size = size_h;
    ck_assert_int_eq(rb_split_apply(&r, s, &o), RB_OK);
    rb_split_shape(r, &c, &oh, &ow);
    ck_assert(c == 1 && oh == size_h && ow == size_w);
    ck_assert_int_eq(rb_split_example_size(r), (size_t)(size_h * size_w));
    ck_assert_int_eq(rb_split_example(r, 0, NULL, 0, 0, out), RB_OK);
    for (int i = 0; i < size_h * size_w; i++)
        ck_assert_msg(fabsf(out[i] - want[i] * scale) <= 1e-6f, "pixel %d: got %.8f, want %.8f", i, (double)out[i],
                      (double)(want[i] * scale));
    rb_split_destroy(s);
    rb_split_destroy(r);
}

START_TEST(bilinear_resize_matches_pytorch)
{
    /* F.interpolate(x, size=(4, 4), mode='bilinear', align_corners=False)
     * for x = [[0, 1], [2, 3]], scaled by 1/3 to stay in [0, 1]. */
    const float up_in[4] = {0.0f / 3, 1.0f / 3, 2.0f / 3, 3.0f / 3};
    const float up_want[16] = {0, 0.25f, 0.75f, 1, 0.5f, 0.75f, 1.25f, 1.5f,
                               1.5f, 1.75f, 2.25f, 2.5f, 2, 2.25f, 2.75f, 3};
    /* 4×4 arange(16)/15 to 2×2: the mean of each 2×2 block */
    float down_in[16];
    const float down_want[4] = {2.5f, 4.5f, 10.5f, 12.5f};
    for (int i = 0; i < 16; i++)
        down_in[i] = (float)i / 15.0f;
    expect_resized(up_in, 2, 2, 4, 4, up_want, 1.0f / 3);
    expect_resized(down_in, 4, 4, 2, 2, down_want, 1.0f / 15);
    /* same size: unchanged */
    expect_resized(up_in, 2, 2, 2, 2, up_in, 1.0f);

    /* A non-square input: 3×5 to 4×4 upscales the rows and downscales the
     * columns; 3×5 to 2×2 downscales both by odd factors. Values printed by
     * PyTorch 1.13: F.interpolate(torch.arange(15.).view(1,1,3,5)/14,
     * size=(S,S), mode='bilinear', align_corners=False). */
    {
        float in[15];
        const float want4[16] = {0.00892857183f, 0.098214291f, 0.1875f,      0.276785731f,
                                 0.232142866f,   0.321428567f, 0.410714298f, 0.5f,
                                 0.5f,           0.589285731f, 0.678571463f, 0.767857134f,
                                 0.723214269f,   0.8125f,      0.901785731f, 0.991071403f};
        const float want2[4] = {0.142857149f, 0.321428567f, 0.678571403f, 0.857142866f};
        for (int i = 0; i < 15; i++)
            in[i] = (float)i / 14.0f;
        expect_resized(in, 3, 5, 4, 4, want4, 1.0f);
        expect_resized(in, 3, 5, 2, 2, want2, 1.0f);
    }
}
END_TEST

START_TEST(grayscale_is_replicated_to_three_channels)
{
    rb_split *g = memory_split(3, 1, 4, 4, 2), *r = NULL, *c3 = memory_split(1, 3, 2, 2, 1);
    rb_split_options o = {0};
    float out[3 * 8 * 8];
    int c, h, w;
    o.channels = 3;
    o.size = 8;
    ck_assert_int_eq(rb_split_apply(&r, g, &o), RB_OK);
    rb_split_shape(r, &c, &h, &w);
    ck_assert(c == 3 && h == 8 && w == 8);
    ck_assert_int_eq(rb_split_example(r, 1, NULL, 0, 0, out), RB_OK);
    ck_assert_mem_eq(out, out + 64, 64 * sizeof(float));
    ck_assert_mem_eq(out, out + 128, 64 * sizeof(float));
    /* stored pixels are untouched */
    {
        int sc, sh, sw;
        rb_split_stored_shape(r, &sc, &sh, &sw);
        ck_assert(sc == 1 && sh == 4 && sw == 4);
    }
    /* a later apply keeps the geometry unless told otherwise */
    {
        rb_split *again = NULL;
        rb_split_options keep = {0};
        keep.classes = "1";
        ck_assert_int_eq(rb_split_apply(&again, r, &keep), RB_OK);
        rb_split_shape(again, &c, &h, &w);
        ck_assert(c == 3 && h == 8 && w == 8);
        rb_split_destroy(again);
    }
    rb_split_destroy(r);
    r = NULL;
    o.channels = 2;
    expect_error(rb_split_apply(&r, g, &o), RB_ERR_INVALID_ARGUMENT, "mem: channels must be 0 (keep), 1 or 3, not 2");
    ck_assert_ptr_null(r);
    rb_split_destroy(g);
    rb_split_destroy(c3);
}
END_TEST

/* Three channels become one as Pillow's convert('L') makes them: for 8-bit
 * pixels (19595 R + 38470 G + 7471 B + 32768) >> 16, worked by hand below
 * (and equal to Pillow 9.4's output for these pixels), then resized like
 * any one-channel image. */
START_TEST(rgb_becomes_grey_as_pillow_converts_it)
{
    /* two pixels, channel planes R, G, B */
    const unsigned char px[6] = {255, 10, /* R */ 0, 200, /* G */ 0, 30 /* B */};
    const unsigned char five[15] = {5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7};
    const int64_t label = 0;
    rb_split *s = NULL, *grey = NULL, *wide = NULL;
    rb_split_options o = {.channels = 1};
    float out[2];
    int c, h, w;

    ck_assert_int_eq(rb_split_create(&s, RB_DTYPE_U8, 1, 3, 1, 2, px, &label, 1, NULL, "rgb"), RB_OK);
    ck_assert_int_eq(rb_split_apply(&grey, s, &o), RB_OK);
    rb_split_shape(grey, &c, &h, &w);
    ck_assert(c == 1 && h == 1 && w == 2);
    ck_assert_int_eq(rb_split_example(grey, 0, NULL, 0, 0, out), RB_OK);
    /* (19595 * 255 + 32768) >> 16 = 5029493 >> 16 = 76;
     * (19595 * 10 + 38470 * 200 + 7471 * 30 + 32768) >> 16 = 8146848 >> 16 = 124 */
    ck_assert_float_eq(out[0], 76.0f / 255.0f);
    ck_assert_float_eq(out[1], 124.0f / 255.0f);
    rb_split_destroy(grey);
    /* grey then bilinear: a 5-wide row of (5, 6, 7) pixels stays 6 everywhere:
     * (19595 * 5 + 38470 * 6 + 7471 * 7 + 32768) >> 16 = 415892 >> 16 = 6 */
    rb_split_destroy(s);
    ck_assert_int_eq(rb_split_create(&s, RB_DTYPE_U8, 1, 3, 1, 5, five, &label, 1, NULL, "rgb"), RB_OK);
    o.size = 3;
    ck_assert_int_eq(rb_split_apply(&wide, s, &o), RB_OK);
    {
        float grid[9];
        ck_assert_int_eq(rb_split_example(wide, 0, NULL, 0, 0, grid), RB_OK);
        for (int i = 0; i < 9; i++)
            ck_assert_float_eq_tol(grid[i], 6.0f / 255.0f, 1e-7f);
    }
    rb_split_destroy(wide);
    rb_split_destroy(s);
}
END_TEST

START_TEST(u8_pixels_are_divided_by_255)
{
    unsigned char px[4] = {0, 1, 128, 255};
    int64_t label = 0;
    rb_split *s = NULL;
    float out[4];
    ck_assert_int_eq(rb_split_create(&s, RB_DTYPE_U8, 1, 1, 2, 2, px, &label, 1, NULL, NULL), RB_OK);
    ck_assert_int_eq(rb_split_example(s, 0, NULL, 0, 0, out), RB_OK);
    for (int i = 0; i < 4; i++)
        ck_assert(out[i] == (float)px[i] / 255.0f);
    expect_error(rb_split_example(s, 1, NULL, 0, 0, out), RB_ERR_INVALID_ARGUMENT,
                 "images in memory: example 1 is out of range [0, 1)");
    rb_split_destroy(s);
}
END_TEST

/* ------------------------------------------------------------ augmentation */

START_TEST(crop_and_flip_semantics)
{
    /* 2×3×3 image, distinct values; pad 1, crop back to 3×3, maybe flip:
     * out[c][y][x] = padded[c][y + top][(flip ? 2 - x : x) + left] */
    float img[18];
    rb_split *s;
    rb_augment aug = {true, 1, true};
    bool seen[3][3][2];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 18; i++)
        img[i] = (float)(i + 1) / 18.0f;
    s = float_split(2, 3, 3, img);
    for (int64_t index = 0; index < 1; index++)
        for (int64_t epoch = 0; epoch < 300; epoch++) {
            int top, left;
            bool flip;
            float out[18];
            rb_augment_draw(&aug, 5, epoch, index, &top, &left, &flip);
            ck_assert(top >= 0 && top <= 2 && left >= 0 && left <= 2);
            seen[top][left][flip] = true;
            ck_assert_int_eq(rb_split_example(s, index, &aug, 5, epoch, out), RB_OK);
            for (int c = 0; c < 2; c++)
                for (int y = 0; y < 3; y++)
                    for (int x = 0; x < 3; x++) {
                        int py = y + top - 1, px = (flip ? 2 - x : x) + left - 1;
                        float want = py < 0 || py > 2 || px < 0 || px > 2 ? 0.0f : img[c * 9 + py * 3 + px];
                        ck_assert(out[c * 9 + y * 3 + x] == want);
                    }
        }
    /* every window and both flips occur */
    for (int t = 0; t < 3; t++)
        for (int l = 0; l < 3; l++)
            ck_assert(seen[t][l][0] && seen[t][l][1]);

    /* One worked case by hand: window at (0, 2), flipped. Channel 0 padded:
     *   0  0  0  0  0
     *   0  1  2  3  0
     *   0  4  5  6  0     (values ×1/18)
     *   0  7  8  9  0
     *   0  0  0  0  0
     * window rows 0-2, cols 2-4: [0 0 0 / 2 3 0 / 5 6 0]; flipped:
     * [0 0 0 / 0 3 2 / 0 6 5]. */
    {
        int64_t epoch;
        int top = -1, left = -1;
        bool flip = false;
        float out[18];
        const float want[9] = {0, 0, 0, 0, 3, 2, 0, 6, 5};
        for (epoch = 0; epoch < 1000; epoch++) {
            rb_augment_draw(&aug, 5, epoch, 0, &top, &left, &flip);
            if (top == 0 && left == 2 && flip)
                break;
        }
        ck_assert_int_lt(epoch, 1000);
        ck_assert_int_eq(rb_split_example(s, 0, &aug, 5, epoch, out), RB_OK);
        for (int i = 0; i < 9; i++)
            ck_assert(out[i] == want[i] / 18.0f);
    }

    /* Off means off; and the flips do not depend on whether crop is on. */
    {
        rb_augment flip_only = {false, 1, true}, crop_only = {true, 2, false}, none = {false, 0, false};
        for (int64_t i = 0; i < 50; i++) {
            int t1, l1, t2, l2;
            bool f1, f2;
            rb_augment_draw(&aug, 9, 3, i, &t1, &l1, &f1);
            rb_augment_draw(&flip_only, 9, 3, i, &t2, &l2, &f2);
            ck_assert(t2 == 0 && l2 == 0 && f1 == f2);
            rb_augment_draw(&crop_only, 9, 3, i, &t2, &l2, &f2);
            ck_assert(t2 >= 0 && t2 <= 4 && l2 >= 0 && l2 <= 4 && !f2);
            rb_augment_draw(&none, 9, 3, i, &t2, &l2, &f2);
            ck_assert(t2 == 0 && l2 == 0 && !f2);
        }
    }
    rb_split_destroy(s);
}
END_TEST

START_TEST(augment_defaults_per_dataset)
{
    rb_augment a;
    rb_augment_defaults(RB_DATASET_CIFAR10, &a);
    ck_assert(a.crop && a.padding == 4 && a.flip);
    rb_augment_defaults(RB_DATASET_CIFAR100, &a);
    ck_assert(a.crop && a.padding == 4 && a.flip);
    rb_augment_defaults(RB_DATASET_FASHION_MNIST, &a);
    ck_assert(a.crop && a.padding == 2 && !a.flip);
    rb_augment_defaults(RB_DATASET_MNIST, &a);
    ck_assert(a.crop && a.padding == 2 && !a.flip);
    rb_augment_defaults(RB_DATASET_NPY, &a);
    ck_assert(!a.crop && !a.flip);
}
END_TEST

/* ------------------------------------------------------------ loader */

typedef struct epoch_dump {
    int64_t count, batches;
    float *images;
    int64_t *labels, *indices, *sizes;
} epoch_dump;

static void dump_epoch(rb_loader *l, int64_t epoch, size_t example, int64_t n, epoch_dump *d)
{
    rb_batch b;
    memset(d, 0, sizeof *d);
    d->images = malloc((size_t)n * example * sizeof(float) + 1);
    d->labels = malloc((size_t)n * sizeof(int64_t) + 1);
    d->indices = malloc((size_t)n * sizeof(int64_t) + 1);
    d->sizes = malloc((size_t)n * sizeof(int64_t) + 8);
    ck_assert_int_eq(rb_loader_start_epoch(l, epoch), RB_OK);
    for (;;) {
        ck_assert_msg(rb_loader_next(l, &b) == RB_OK, "%s", rb_last_error());
        if (b.count == 0)
            break;
        ck_assert_int_eq(b.first, d->count);
        ck_assert_int_eq(b.number, d->batches);
        ck_assert_uint_eq((uintptr_t)b.images % 64, 0);
        ck_assert_int_le(d->count + b.count, n);
        memcpy(d->images + (size_t)d->count * example, b.images, (size_t)b.count * example * sizeof(float));
        memcpy(d->labels + d->count, b.labels, (size_t)b.count * sizeof(int64_t));
        memcpy(d->indices + d->count, b.indices, (size_t)b.count * sizeof(int64_t));
        d->sizes[d->batches++] = b.count;
        d->count += b.count;
    }
    /* the end repeats */
    ck_assert_int_eq(rb_loader_next(l, &b), RB_OK);
    ck_assert_int_eq(b.count, 0);
}

static void free_dump(epoch_dump *d)
{
    free(d->images);
    free(d->labels);
    free(d->indices);
    free(d->sizes);
}

static void assert_same_dump(const epoch_dump *a, const epoch_dump *b, size_t example)
{
    ck_assert_int_eq(a->count, b->count);
    ck_assert_int_eq(a->batches, b->batches);
    ck_assert_mem_eq(a->sizes, b->sizes, (size_t)a->batches * sizeof(int64_t));
    ck_assert_mem_eq(a->indices, b->indices, (size_t)a->count * sizeof(int64_t));
    ck_assert_mem_eq(a->labels, b->labels, (size_t)a->count * sizeof(int64_t));
    ck_assert_mem_eq(a->images, b->images, (size_t)a->count * example * sizeof(float));
}

START_TEST(loader_is_the_same_whatever_the_thread_count)
{
    rb_split *base = memory_split(103, 1, 6, 5, 7), *s = NULL;
    rb_split_options so = {0};
    rb_loader_options lo = {0};
    const int threads[] = {0, 1, 3};
    epoch_dump ref[2];
    size_t example;

    so.size = 8;
    so.channels = 3;
    ck_assert_int_eq(rb_split_apply(&s, base, &so), RB_OK);
    example = rb_split_example_size(s);
    ck_assert_int_eq(example, 3 * 8 * 8);
    lo.batch_size = 10;
    lo.shuffle = true;
    lo.augment.crop = true;
    lo.augment.padding = 2;
    lo.augment.flip = true;
    lo.seed = 77;
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        rb_loader *l = NULL;
        lo.threads = threads[t];
        ck_assert_msg(rb_loader_create(&l, s, &lo) == RB_OK, "%s", rb_last_error());
        ck_assert_int_eq(rb_loader_batch_count(l), 11);
        for (int e = 0; e < 2; e++) {
            epoch_dump d;
            dump_epoch(l, e, example, 103, &d);
            ck_assert_int_eq(d.count, 103);
            ck_assert_int_eq(d.sizes[10], 3);
            if (t == 0) {
                ref[e] = d;
                /* each example is what rb_split_example makes */
                for (int64_t k = 0; k < d.count; k++) {
                    float one[192];
                    ck_assert_int_eq(rb_split_example(s, d.indices[k], &lo.augment, lo.seed, e, one), RB_OK);
                    ck_assert_mem_eq(one, d.images + (size_t)k * example, sizeof one);
                    ck_assert_int_eq(d.labels[k], rb_split_labels(s)[d.indices[k]]);
                }
            } else {
                assert_same_dump(&ref[e], &d, example);
                free_dump(&d);
            }
        }
        rb_loader_destroy(l);
    }
    free_dump(&ref[0]);
    free_dump(&ref[1]);
    rb_split_destroy(s);
    rb_split_destroy(base);
}
END_TEST

/* Data parallelism: shard r of n of every batch is the slice [c·r/n,
 * c·(r+1)/n) of the batch the whole loader makes, bit for bit, with the
 * same augmentation (keyed by example index, not position). */
START_TEST(loader_shards_are_slices_of_the_whole_batch)
{
    rb_split *base = memory_split(61, 1, 6, 5, 7), *s = NULL;
    rb_split_options so = {0};
    rb_loader_options lo = {0};
    rb_loader *whole = NULL, *part[3] = {NULL, NULL, NULL};
    size_t example;

    so.size = 8;
    so.channels = 3;
    ck_assert_int_eq(rb_split_apply(&s, base, &so), RB_OK);
    example = rb_split_example_size(s);
    lo.batch_size = 10;
    lo.shuffle = true;
    lo.drop_last = true;
    lo.augment.crop = true;
    lo.augment.padding = 2;
    lo.augment.flip = true;
    lo.seed = 5;
    lo.threads = 1;
    ck_assert_int_eq(rb_loader_create(&whole, s, &lo), RB_OK);
    for (int r = 0; r < 3; r++) {
        lo.shard = r;
        lo.shards = 3;
        lo.threads = r; /* 0, 1, 2 workers: the slices do not depend on them */
        ck_assert_msg(rb_loader_create(&part[r], s, &lo) == RB_OK, "%s", rb_last_error());
        ck_assert_int_eq(rb_loader_batch_count(part[r]), 6);
    }
    for (int e = 0; e < 2; e++) {
        ck_assert_int_eq(rb_loader_start_epoch(whole, e), RB_OK);
        for (int r = 0; r < 3; r++)
            ck_assert_int_eq(rb_loader_start_epoch(part[r], e), RB_OK);
        for (int batch = 0;; batch++) {
            rb_batch w, p;
            int64_t at = 0;
            ck_assert_int_eq(rb_loader_next(whole, &w), RB_OK);
            if (w.count == 0) {
                for (int r = 0; r < 3; r++) {
                    ck_assert_int_eq(rb_loader_next(part[r], &p), RB_OK);
                    ck_assert_int_eq(p.count, 0);
                }
                break;
            }
            ck_assert_int_eq(w.count, 10);
            ck_assert_int_eq(w.global_count, 10);
            for (int r = 0; r < 3; r++) {
                /* 10 into 3: [0, 3), [3, 6), [6, 10) */
                const int64_t from = 10 * r / 3, to = 10 * (r + 1) / 3;
                ck_assert_int_eq(rb_loader_next(part[r], &p), RB_OK);
                ck_assert_int_eq(p.count, to - from);
                ck_assert_int_eq(p.global_count, 10);
                ck_assert_int_eq(p.first, w.first + from);
                ck_assert_int_eq(p.number, batch);
                ck_assert_mem_eq(p.indices, w.indices + from, (size_t)p.count * sizeof(int64_t));
                ck_assert_mem_eq(p.labels, w.labels + from, (size_t)p.count * sizeof(int64_t));
                ck_assert_mem_eq(p.images, w.images + (size_t)from * example, (size_t)p.count * example * sizeof(float));
                at += p.count;
            }
            ck_assert_int_eq(at, w.count);
        }
    }
    for (int r = 0; r < 3; r++)
        rb_loader_destroy(part[r]);
    rb_loader_destroy(whole);
    /* refusals: a part out of range, more parts than examples, a partial last batch */
    {
        rb_loader *l = NULL;
        lo.threads = 0;
        lo.shard = 3;
        lo.shards = 3;
        ck_assert_int_eq(rb_loader_create(&l, s, &lo), RB_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_null(l);
        ck_assert_ptr_nonnull(strstr(rb_last_error(), "shard 3 of 3"));
        lo.shard = -1;
        ck_assert_int_eq(rb_loader_create(&l, s, &lo), RB_ERR_INVALID_ARGUMENT);
        lo.shard = 0;
        lo.shards = 11;
        ck_assert_int_eq(rb_loader_create(&l, s, &lo), RB_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_nonnull(strstr(rb_last_error(), "cannot be split into 11 parts"));
        lo.shards = 2;
        lo.drop_last = false;
        ck_assert_int_eq(rb_loader_create(&l, s, &lo), RB_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_nonnull(strstr(rb_last_error(), "drop_last"));
    }
    rb_split_destroy(s);
    rb_split_destroy(base);
}
END_TEST

START_TEST(loader_epochs_cover_every_example_once)
{
    rb_split *s = memory_split(57, 1, 3, 3, 4);
    rb_loader_options lo = {0};
    rb_loader *l = NULL;
    epoch_dump e0, e1, e0b;
    unsigned char seen[57];

    lo.batch_size = 8;
    lo.shuffle = true;
    lo.threads = 2;
    lo.seed = 3;
    ck_assert_int_eq(rb_loader_create(&l, s, &lo), RB_OK);
    dump_epoch(l, 0, 9, 57, &e0);
    dump_epoch(l, 1, 9, 57, &e1);
    dump_epoch(l, 0, 9, 57, &e0b);
    ck_assert_int_eq(e0.count, 57);
    ck_assert_int_eq(e0.batches, 8);
    for (const epoch_dump *d = &e0; d != NULL; d = d == &e0 ? &e1 : NULL) {
        memset(seen, 0, sizeof seen);
        for (int64_t k = 0; k < d->count; k++) {
            ck_assert(d->indices[k] >= 0 && d->indices[k] < 57);
            ck_assert(!seen[d->indices[k]]);
            seen[d->indices[k]] = 1;
        }
    }
    /* the order differs across epochs, repeats for the same epoch */
    ck_assert_int_ne(memcmp(e0.indices, e1.indices, 57 * sizeof(int64_t)), 0);
    assert_same_dump(&e0, &e0b, 9);
    free_dump(&e0);
    free_dump(&e1);
    free_dump(&e0b);
    rb_loader_destroy(l);

    /* no shuffle: split order; drop_last leaves the short batch out */
    lo.shuffle = false;
    lo.drop_last = true;
    lo.threads = 1;
    ck_assert_int_eq(rb_loader_create(&l, s, &lo), RB_OK);
    ck_assert_int_eq(rb_loader_batch_count(l), 7);
    dump_epoch(l, 5, 9, 57, &e0);
    ck_assert_int_eq(e0.count, 56);
    for (int64_t k = 0; k < 56; k++)
        ck_assert_int_eq(e0.indices[k], k);
    free_dump(&e0);
    rb_loader_destroy(l);
    rb_split_destroy(s);
}
END_TEST

START_TEST(loader_misuse_is_refused)
{
    rb_split *s = memory_split(5, 1, 2, 2, 2);
    rb_loader_options lo = {0};
    rb_loader *l = (rb_loader *)(void *)&l;
    rb_batch b;

    expect_error(rb_loader_create(&l, s, &lo), RB_ERR_INVALID_ARGUMENT,
                 "loader: batch size 0 is out of range [1, 16777216]");
    ck_assert_ptr_null(l);
    lo.batch_size = 2;
    lo.threads = -1;
    expect_error(rb_loader_create(&l, s, &lo), RB_ERR_INVALID_ARGUMENT,
                 "loader: -1 threads is out of range [0, 256] (0 makes batches on the caller's thread)");
    lo.threads = 1;
    ck_assert_int_eq(rb_loader_create(&l, s, &lo), RB_OK);
    expect_error(rb_loader_next(l, &b), RB_ERR_INVALID_ARGUMENT,
                 "loader: call rb_loader_start_epoch before rb_loader_next");
    expect_error(rb_loader_start_epoch(l, 1 << 24), RB_ERR_INVALID_ARGUMENT,
                 "loader: epoch 16777216 is out of range [0, 16777216)");
    rb_loader_destroy(l);
    rb_loader_destroy(NULL);
    rb_split_destroy(NULL);
    rb_split_destroy(s);
}
END_TEST

START_TEST(loader_stops_cleanly_anywhere)
{
    rb_split *s = memory_split(200, 3, 16, 16, 10);
    rb_loader_options lo = {0};
    size_t example = 3 * 16 * 16;
    epoch_dump want;

    lo.batch_size = 7;
    lo.shuffle = true;
    lo.augment.crop = true;
    lo.augment.padding = 3;
    lo.augment.flip = true;
    lo.seed = 1;
    lo.threads = 0;
    {
        rb_loader *l = NULL;
        ck_assert_int_eq(rb_loader_create(&l, s, &lo), RB_OK);
        dump_epoch(l, 2, example, 200, &want);
        rb_loader_destroy(l);
    }
    lo.threads = 3;
    lo.prefetch = 3;
    for (int round = 0; round < 20; round++) {
        rb_loader *l = NULL;
        rb_batch b;
        ck_assert_int_eq(rb_loader_create(&l, s, &lo), RB_OK);
        if (round % 4 == 1) {
            rb_loader_destroy(l); /* never started */
            continue;
        }
        ck_assert_int_eq(rb_loader_start_epoch(l, 0), RB_OK);
        for (int k = 0; k < round % 5; k++) {
            ck_assert_int_eq(rb_loader_next(l, &b), RB_OK);
            ck_assert_int_gt(b.count, 0);
        }
        if (round % 2 == 0) {
            /* restart mid-epoch: the new epoch comes out whole and right */
            epoch_dump d;
            dump_epoch(l, 2, example, 200, &d);
            assert_same_dump(&want, &d, example);
            free_dump(&d);
            ck_assert_int_eq(rb_loader_start_epoch(l, 1), RB_OK);
            ck_assert_int_eq(rb_loader_next(l, &b), RB_OK);
        }
        rb_loader_destroy(l); /* workers busy or waiting */
    }
    free_dump(&want);
    rb_split_destroy(s);
}
END_TEST

START_TEST(empty_split_gives_empty_epochs)
{
    rb_split *all = memory_split(4, 1, 2, 2, 5), *s = NULL;
    rb_split_options so = {0};
    rb_loader_options lo = {0};
    rb_loader *l = NULL;
    rb_batch b;
    so.classes = "4"; /* no example has class 4 */
    ck_assert_int_eq(rb_split_apply(&s, all, &so), RB_OK);
    ck_assert_int_eq(rb_split_count(s), 0);
    lo.batch_size = 3;
    lo.threads = 1;
    ck_assert_int_eq(rb_loader_create(&l, s, &lo), RB_OK);
    ck_assert_int_eq(rb_loader_start_epoch(l, 0), RB_OK);
    ck_assert_int_eq(rb_loader_next(l, &b), RB_OK);
    ck_assert_int_eq(b.count, 0);
    rb_loader_destroy(l);
    rb_split_destroy(s);
    rb_split_destroy(all);
}
END_TEST

/* ------------------------------------------------------------ real data */

START_TEST(real_fashion_mnist_when_installed)
{
    const char *env = getenv("RB_TEST_FASHION_MNIST_DIR");
    const char *where = env && env[0] ? env : RB_FASHION_MNIST_DEFAULT_DIR;
    char spec[PATH_MAX + 32], probe[PATH_MAX + 64];
    rb_split *train = NULL, *test = NULL;
    struct stat st;

    snprintf(probe, sizeof probe, "%s/train-images-idx3-ubyte.gz", where);
    if (stat(probe, &st) != 0) {
        snprintf(probe, sizeof probe, "%s/train-images-idx3-ubyte", where);
        if (stat(probe, &st) != 0) {
            printf("SKIP: real Fashion-MNIST test: %s not found (apt-get install dataset-fashion-mnist)\n", where);
            fflush(stdout);
            return;
        }
    }
    snprintf(spec, sizeof spec, "fashion-mnist:%s", where);
    ck_assert_msg(rb_split_open(&train, spec, RB_SPLIT_TRAIN, NULL) == RB_OK, "%s", rb_last_error());
    ck_assert_msg(rb_split_open(&test, spec, RB_SPLIT_TEST, NULL) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_count(train), 60000);
    ck_assert_int_eq(rb_split_count(test), 10000);
    ck_assert_int_eq(rb_split_labels(train)[0], 9);
    ck_assert_str_eq(rb_split_class_name(train, rb_split_labels(train)[0]), "Ankle boot");
    ck_assert_int_eq(rb_split_labels(test)[0], 9);
    {
        int64_t per[10] = {0};
        for (int64_t i = 0; i < 60000; i++)
            per[rb_split_labels(train)[i]]++;
        for (int c = 0; c < 10; c++)
            ck_assert_int_eq(per[c], 6000);
    }
    rb_split_destroy(train);
    rb_split_destroy(test);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("data");
    TCase *readers = tcase_create("readers");
    TCase *select = tcase_create("selection");
    TCase *loader = tcase_create("loader");
    TCase *real = tcase_create("real");

    tcase_add_checked_fixture(readers, setup, teardown);
    tcase_add_test(readers, idx_raw_and_gzip_read_back_exactly);
    tcase_add_test(select, rgb_becomes_grey_as_pillow_converts_it);
    tcase_add_test(readers, idx_gzip_is_found_by_magic_not_name);
    tcase_add_test(readers, idx_bad_input_is_refused_with_one_exact_line);
    tcase_add_test(readers, idx_missing_file_names_the_path);
    tcase_add_test(readers, truncation_and_damage_fail_cleanly);
    tcase_add_test(readers, cifar10_reads_back_exactly);
    tcase_add_test(readers, cifar100_keeps_fine_labels);
    tcase_add_test(readers, cifar_bad_input_is_refused_with_one_exact_line);
    tcase_add_test(readers, npy_layouts_and_dtypes_read_back_exactly);
    tcase_add_test(readers, npy_bad_arrays_are_refused);
    tcase_add_test(readers, spec_strings_parse);
    tcase_add_test(readers, bad_spec_strings_are_refused_with_one_exact_line);
    suite_add_tcase(s, readers);

    tcase_add_test(select, class_subset_relabels_in_the_given_order);
    tcase_add_test(select, per_class_selection_is_seeded);
    tcase_add_test(select, index_lists_select_examples_in_split_order);
    tcase_add_test(select, bilinear_resize_matches_pytorch);
    tcase_add_test(select, grayscale_is_replicated_to_three_channels);
    tcase_add_test(select, u8_pixels_are_divided_by_255);
    tcase_add_test(select, crop_and_flip_semantics);
    tcase_add_test(select, augment_defaults_per_dataset);
    suite_add_tcase(s, select);

    tcase_add_test(loader, loader_is_the_same_whatever_the_thread_count);
    tcase_add_test(loader, loader_shards_are_slices_of_the_whole_batch);
    tcase_add_test(loader, loader_epochs_cover_every_example_once);
    tcase_add_test(loader, loader_misuse_is_refused);
    tcase_add_test(loader, loader_stops_cleanly_anywhere);
    tcase_add_test(loader, empty_split_gives_empty_epochs);
    suite_add_tcase(s, loader);

    tcase_add_test(real, real_fashion_mnist_when_installed);
    tcase_set_timeout(real, 120);
    suite_add_tcase(s, real);
    return run_suite(s);
}
