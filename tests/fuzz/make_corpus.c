/* Writes the seed corpora of the fuzz harnesses: small valid inputs of
 * every parser, and near-valid ones (truncated, a field off by one) so the
 * search starts past the first checks. Run from the source tree:
 *
 *     make tests/fuzz/make_corpus && tests/fuzz/make_corpus tests/fuzz/corpus
 *
 * It writes the files named below, in the harnesses' input formats (see the
 * top of each fuzz_NAME.c), and leaves other files (regression inputs of
 * past findings) alone. The output is deterministic, so the committed
 * corpus is what this program writes. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include <robusta/robusta.h>

#include "testimage.h"

static const char *root;

_Noreturn static void die(const char *what)
{
    fprintf(stderr, "make_corpus: %s: %s\n", what, rb_last_error() ? rb_last_error() : strerror(errno));
    exit(1);
}

static void put(const char *target, const char *name, const void *bytes, size_t size)
{
    char path[1024];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die(path);
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(bytes, 1, size, f) != size || fclose(f) != 0)
        die(path);
}

/* `prefix` (n bytes) then `bytes`. */
static void put2(const char *target, const char *name, const void *prefix, size_t n, const void *bytes, size_t size)
{
    unsigned char *b = malloc(n + size + 1);
    memcpy(b, prefix, n);
    memcpy(b + n, bytes, size);
    put(target, name, b, n + size);
    free(b);
}

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    long n;
    unsigned char *b;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        die(path);
    b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n)
        die(path);
    fclose(f);
    *size = (size_t)n;
    return b;
}

static char tmp[256];

static unsigned char *tmpfile_bytes(const char *name, size_t *size)
{
    char path[512];
    unsigned char *b;
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    b = slurp(path, size);
    unlink(path);
    return b;
}

static void tmppath(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmp, name);
}

/* ------------------------------------------------------------ checkpoint */

static void checkpoints(void)
{
    rb_checkpoint *c;
    char path[512];
    static const float w[6] = {1.5f, -2.0f, 0.25f, 3.0f, -0.5f, 8.0f};
    static const int64_t labels[3] = {0, 7, 2};
    static const uint16_t half[4] = {0x3f80, 0x4000, 0xbf80, 0x0000};
    static const uint8_t bytes[5] = {1, 2, 3, 4, 5};
    static const int32_t ints[2] = {-1, 65536};
    unsigned char mode[3];
    uint64_t h;
    size_t size;
    unsigned char *file;

    if (rb_checkpoint_create(&c) != RB_OK ||
        rb_checkpoint_set_metadata(c, "{\"arch\": \"resnet\", \"classes\": 10, \"x\": [1, 2.5, null, true, \"\\u00e9\"], "
                                      "\"nested\": {\"a\": {\"b\": []}}}") != RB_OK ||
        rb_checkpoint_add(c, "conv1.weight", RB_DTYPE_F32, 2, (const int64_t[]){2, 3}, w) != RB_OK ||
        rb_checkpoint_add(c, "labels", RB_DTYPE_I64, 1, (const int64_t[]){3}, labels) != RB_OK ||
        rb_checkpoint_add(c, "bf16", RB_DTYPE_BF16, 2, (const int64_t[]){2, 2}, half) != RB_OK ||
        rb_checkpoint_add(c, "u8", RB_DTYPE_U8, 1, (const int64_t[]){5}, bytes) != RB_OK ||
        rb_checkpoint_add(c, "i32", RB_DTYPE_I32, 1, (const int64_t[]){2}, ints) != RB_OK)
        die("checkpoint");
    tmppath(path, sizeof path, "seed.rbt");
    if (rb_checkpoint_save(c, path, 3) != RB_OK)
        die("checkpoint save");
    rb_checkpoint_destroy(c);
    file = tmpfile_bytes("seed.rbt", &size);
    mode[0] = 0;
    put2("checkpoint", "whole.bin", mode, 1, file, size);
    mode[0] = 2;
    put2("checkpoint", "index-only.bin", mode, 1, file, size);
    mode[0] = 0;
    put2("checkpoint", "truncated.bin", mode, 1, file, size - 7);
    /* the header behind a recomputed preamble: 1, length, header, data */
    memcpy(&h, file + 16, 8);
    mode[0] = 1;
    mode[1] = (unsigned char)(h & 0xff);
    mode[2] = (unsigned char)(h >> 8);
    put2("checkpoint", "header.bin", mode, 3, file + 32, size - 32);
    mode[0] = 3;
    put2("checkpoint", "header-index-only.bin", mode, 3, file + 32, size - 32);
    free(file);

    /* no tensors, empty metadata */
    if (rb_checkpoint_create(&c) != RB_OK || rb_checkpoint_set_metadata(c, "{}") != RB_OK)
        die("checkpoint");
    tmppath(path, sizeof path, "empty.rbt");
    if (rb_checkpoint_save(c, path, 1) != RB_OK)
        die("checkpoint save");
    rb_checkpoint_destroy(c);
    file = tmpfile_bytes("empty.rbt", &size);
    mode[0] = 0;
    put2("checkpoint", "empty.bin", mode, 1, file, size);
    free(file);
}

/* ------------------------------------------------------------ safetensors */

/* A hand-made safetensors file: JSON header (padded with spaces to a
 * multiple of 8, as the writers do) and data. */
static void safetensors_raw(const char *name, const char *json, const void *data, size_t n)
{
    size_t hl = strlen(json), padded = (hl + 7) / 8 * 8;
    unsigned char *b = malloc(8 + padded + n + 1);
    uint64_t h = padded;
    memcpy(b, &h, 8);
    memset(b + 8, ' ', padded);
    memcpy(b + 8, json, hl);
    memcpy(b + 8 + padded, data, n);
    put("safetensors", name, b, 8 + padded + n);
    free(b);
}

static void safetensors(void)
{
    char path[512];
    static const float w[4] = {1, 2, 3, 4};
    static const int64_t n[2] = {5, -6};
    static const int64_t shape_w[2] = {2, 2}, shape_n[1] = {2};
    static const char *const keys[1] = {"format"}, *const values[1] = {"pt"};
    rb_safetensors_entry e[2] = {{.name = "fc.weight", .dtype = RB_DTYPE_F32, .ndim = 2, .shape = shape_w, .data = w},
                                 {.name = "bn.num_batches_tracked", .dtype = RB_DTYPE_I64, .ndim = 1, .shape = shape_n,
                                  .data = n}};
    unsigned char data[64];
    size_t size;
    unsigned char *file;
    tmppath(path, sizeof path, "seed.safetensors");
    if (rb_safetensors_save(path, e, 2, keys, values, 1) != RB_OK)
        die("safetensors save");
    file = tmpfile_bytes("seed.safetensors", &size);
    put("safetensors", "written.safetensors", file, size);
    put("safetensors", "truncated.safetensors", file, size - 3);
    free(file);
    for (size_t k = 0; k < sizeof data; k++)
        data[k] = (unsigned char)(k * 29 + 3);
    safetensors_raw("halves.safetensors",
                    "{\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[8,16]},"
                    "\"c\":{\"dtype\":\"F64\",\"shape\":[1,2],\"data_offsets\":[16,32]}}",
                    data, 32);
    safetensors_raw("ints.safetensors",
                    "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"\\u00e9\\n\"},"
                    "\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                    "\"i\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[3,7]},"
                    "\"z\":{\"dtype\":\"I16\",\"shape\":[0,5],\"data_offsets\":[7,7]},"
                    "\"q\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[7,8]}}",
                    data, 8);
    safetensors_raw("empty.safetensors", "{}", data, 0);
    /* the strict reader's later checks: a repeated field, an infinite number */
    safetensors_raw("dup-field.safetensors",
                    "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"dtype\":\"U8\"}}", data, 1);
    safetensors_raw("inf.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1e999],\"data_offsets\":[0,1]}}",
                    data, 1);
}

/* ------------------------------------------------------------ npy */

static unsigned char *npy_bytes(rb_dtype dtype, int ndim, const int64_t *shape, const void *data, size_t *size)
{
    char path[512];
    tmppath(path, sizeof path, "a.npy");
    if (rb_npy_save(path, dtype, ndim, shape, data) != RB_OK)
        die("npy save");
    return tmpfile_bytes("a.npy", size);
}

static void npy_pair(const char *name, rb_dtype dt, int ndim, const int64_t *shape, const void *x, rb_dtype ldt,
                     const void *y)
{
    size_t a, b;
    unsigned char *images = npy_bytes(dt, ndim, shape, x, &a);
    unsigned char *labels = npy_bytes(ldt, 1, shape, y, &b);
    put2("npy", name, images, a, labels, b);
    free(images);
    free(labels);
}

static void npy(void)
{
    static const float x[2 * 3 * 2] = {0, 0.5f, 1, 0.25f, 0.75f, 0.125f, 1, 0, 0.5f, 0.5f, 0.5f, 0.5f};
    unsigned char px[2 * 2 * 2 * 3];
    static const int64_t y64[2] = {1, 0};
    static const int32_t y32[2] = {3, 0};
    static const uint8_t y8[2] = {0, 2};
    size_t size;
    unsigned char *a;
    static const char fortran[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }";
    for (size_t k = 0; k < sizeof px; k++)
        px[k] = (unsigned char)(k * 11);
    a = npy_bytes(RB_DTYPE_F32, 3, (const int64_t[]){2, 3, 2}, x, &size);
    put("npy", "f32-2x3x2.npy", a, size);
    put("npy", "f32-truncated.npy", a, size - 5);
    free(a);
    npy_pair("u8-nhwc+i64.bin", RB_DTYPE_U8, 4, (const int64_t[]){2, 2, 2, 3}, px, RB_DTYPE_I64, y64);
    npy_pair("u8-nchw+i32.bin", RB_DTYPE_U8, 4, (const int64_t[]){2, 3, 2, 2}, px, RB_DTYPE_I32, y32);
    npy_pair("f32-nhw+u8.bin", RB_DTYPE_F32, 3, (const int64_t[]){2, 3, 2}, x, RB_DTYPE_U8, y8);
    {
        /* version 1.0 header padded to 128 bytes by hand, Fortran order */
        unsigned char b[128 + 16];
        size_t hl = sizeof fortran - 1;
        memset(b, ' ', 128);
        memcpy(b, fortran, hl);
        b[8] = 128 - 10;
        b[127] = '\n';
        memcpy(b + 128, x, 16);
        put("npy", "fortran.npy", b, sizeof b);
    }
}

/* ------------------------------------------------------------ IDX */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static unsigned char *gzip_bytes(const unsigned char *bytes, size_t size, size_t *out_size)
{
    z_stream z;
    unsigned char *out = malloc(size + 256);
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        die("deflateInit2");
    z.next_in = (Bytef *)(uintptr_t)bytes;
    z.avail_in = (uInt)size;
    z.next_out = out;
    z.avail_out = (uInt)(size + 256);
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        die("deflate");
    *out_size = z.total_out;
    deflateEnd(&z);
    return out;
}

/* The harness's layout: kind byte, images length (LE u32), images, labels. */
static void idx_input(const char *name, unsigned kind, const unsigned char *images, size_t ni,
                      const unsigned char *labels, size_t nl)
{
    unsigned char *b = malloc(5 + ni + nl);
    b[0] = (unsigned char)kind;
    b[1] = (unsigned char)ni;
    b[2] = (unsigned char)(ni >> 8);
    b[3] = (unsigned char)(ni >> 16);
    b[4] = (unsigned char)(ni >> 24);
    memcpy(b + 5, images, ni);
    memcpy(b + 5 + ni, labels, nl);
    put("idx", name, b, 5 + ni + nl);
    free(b);
}

static void idx(void)
{
    unsigned char images[16 + 3 * 4 * 5], labels[8 + 3], *gi, *gl;
    size_t gis, gls;
    put_be32(images, 0x00000803u);
    put_be32(images + 4, 3);
    put_be32(images + 8, 4);
    put_be32(images + 12, 5);
    for (size_t k = 16; k < sizeof images; k++)
        images[k] = (unsigned char)(k * 37);
    put_be32(labels, 0x00000801u);
    put_be32(labels + 4, 3);
    labels[8] = 9;
    labels[9] = 0;
    labels[10] = 4;
    idx_input("raw-mnist.bin", 0, images, sizeof images, labels, sizeof labels);
    idx_input("raw-fashion.bin", 1, images, sizeof images, labels, sizeof labels);
    idx_input("short-images.bin", 0, images, sizeof images - 1, labels, sizeof labels);
    gi = gzip_bytes(images, sizeof images, &gis);
    gl = gzip_bytes(labels, sizeof labels, &gls);
    idx_input("gz-images.bin", 1, gi, gis, labels, sizeof labels);
    idx_input("gz-both.bin", 0, gi, gis, gl, gls);
    idx_input("gz-truncated.bin", 0, gi, gis - 4, gl, gls);
    free(gi);
    free(gl);
}

/* ------------------------------------------------------------ CIFAR */

static void cifar(void)
{
    unsigned char b[1 + 2 * (2 + 3072)];
    for (size_t r = 0; r < 2; r++) {
        b[1 + r * 3074] = (unsigned char)(3 + r);
        b[1 + r * 3074 + 1] = (unsigned char)(42 + r);
        for (size_t k = 0; k < 3072; k++)
            b[1 + r * 3074 + 2 + k] = (unsigned char)(k ^ r);
    }
    b[0] = 1 | (1u << 1); /* CIFAR-100, two files of one record each */
    put("cifar", "cifar100-2x1.bin", b, sizeof b);
    b[0] = 1; /* CIFAR-100, one file of two records */
    put("cifar", "cifar100-1x2.bin", b, sizeof b);
    b[0] = 0; /* CIFAR-10, one record */
    b[1] = 7;
    put("cifar", "cifar10-1.bin", b, 1 + 3073);
    b[0] = 1u << 1; /* CIFAR-10, two files, the second a byte short */
    put("cifar", "cifar10-short.bin", b, 1 + 2 * 3073 - 1);
}

/* ------------------------------------------------------------ text */

static void put_text(const char *target, const char *name, const char *text)
{
    put(target, name, text, strlen(text));
}

static void grid(void)
{
    put_text("grid", "full.ini",
             "[grid]\nname = fuzz\nthreads = 2\n"
             "[arch r18]\narch = resnet18\nstem = cifar\nwidth = 0.25\n"
             "[source]\ndata = fashion-mnist\nclasses = 0-4\nper-class = 100\nepochs = 2\n"
             "attack = pgd-l2\neps = 0, 0.25, 8/255\nsteps = 3\nseeds = 1,2\n"
             "[target t]\ndata = cifar10\nclasses = 5-9\n"
             "[transfer]\nmodes = fixed, full\nseeds = 0\nepochs = 3\nlr-fixed = 0.05\n");
    put_text("grid", "two-archs.ini",
             "; comment\n# another\n[grid]\nname = two\n\n"
             "[arch a]\narch = resnet18\n[arch b]\narch = resnet50\nwidth = 0.5\n"
             "[source]\ndata = npy:/x.npy,/y.npy;/tx.npy,/ty.npy\nattack = pgd-linf\neps = 0, 2/255, 8/255\n"
             "[target t1]\ndata = mnist:/data\n[target t2]\ndata = cifar100:/c\n"
             "[transfer]\nmodes = fixed\n");
    put_text("grid", "unterminated.ini", "[grid]\nname = x\n[source\ndata = fashion-mnist");
    put_text("grid", "target-tasks.ini",
             "[grid]\nname = tasks\n[arch a]\narch = resnet18\n"
             "[source]\ndata = fashion-mnist\neps = 0, 0.5\n"
             "[target cls]\ndata = fashion-mnist\nclasses = 5-9\nhidden = 64, 32\nstage = stage3\n"
             "[target scenes]\ndata = voc-seg:scenes\ntask = segment\nhead = fcn\nstage = stride8\n"
             "[transfer]\ntask = classify\nmodes = fixed\n");
    put_text("grid", "eval-attack.ini",
             "[grid]\nname = robust\n[arch a]\narch = resnet18\n"
             "[source]\ndata = fashion-mnist\neps = 0, 8/255\nattack = pgd-linf\n"
             "[target cls]\ndata = fashion-mnist\nclasses = 5-9\n"
             "[transfer]\neval-attack = autoattack plus norm=linf eps=4/255 seed=3\neval-attack-per-class = 10\n");
}

static void spec(void)
{
    static const char *const texts[][2] = {
        {"dataset-default", "fashion-mnist"},
        {"dataset-dir", "cifar10:/data/cifar-10-batches-bin"},
        {"dataset-npy", "npy:/data/x.npy,/data/y.npy;/data/tx.npy,/data/ty.npy"},
        {"dataset-typo", "cifr100:/d"},
        {"schedule-cosine", "cosine+warmup:5"},
        {"schedule-step", "step:30:0.1"},
        {"schedule-multistep", "multistep:30,60,90:0.1+warmup:1"},
        {"eps-fraction", "8/255"},
        {"eps-exp", " 1e-1 "},
        {"list-floats", "0.485, 0.456,0.406"},
        {"list-ints", "30,60,90"},
        {"bool", "yes"},
        {"names", "bf16"},
        {"argv", "--eps\n8/255\n--steps=3\n--no-random-start\n--norm\nlinf\nmodel.rbt\n--\n--rho"},
        {"argv-lists", "--mean=0.5,0.4,0.3\n--milestones\n10,20\n--restarts\n2\n--out\nx"},
        {"argv-typo", "--epss\n1\n--rhoo=0.5"},
    };
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++)
        put_text("spec", texts[k][0], texts[k][1]);
}

/* An image harness input: the mode byte (1: mask indices, 0: RGB), then the file. */
static void put_image(const char *name, unsigned mode, const test_bytes *b, size_t size)
{
    const unsigned char m = (unsigned char)mode;
    put2("image", name, &m, 1, b->data, size);
}

static void image(void)
{
    enum { H = 6, W = 10 };
    static const unsigned char pal[4][3] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    static const unsigned char trns[2] = {0, 128};
    unsigned char px[H * W * 4], idx[H * W];
    test_bytes b;
    for (int k = 0; k < H * W * 4; k++)
        px[k] = (unsigned char)(k * 7);
    for (int k = 0; k < H * W; k++)
        idx[k] = (unsigned char)((k * 13) % 4);
    b = test_png(W, H, 8, PNG_COLOR_TYPE_GRAY, idx, NULL, 0, NULL, 0, NULL, 0);
    put_image("gray-mask.bin", 1, &b, b.size);
    put_image("gray-rgb.bin", 0, &b, b.size);
    put_image("gray-truncated.bin", 1, &b, b.size - 20);
    free(b.data);
    b = test_png(W, H, 8, PNG_COLOR_TYPE_PALETTE, idx, pal, 4, trns, 2, NULL, 0);
    put_image("palette-mask.bin", 1, &b, b.size);
    put_image("palette-rgb.bin", 0, &b, b.size);
    free(b.data);
    b = test_png(W, H, 8, PNG_COLOR_TYPE_RGB, px, NULL, 0, NULL, 0, NULL, 1);
    put_image("rgb-adam7.bin", 0, &b, b.size);
    put_image("rgb-as-mask.bin", 1, &b, b.size);
    free(b.data);
    b = test_png(W, H, 16, PNG_COLOR_TYPE_GRAY_ALPHA, px, NULL, 0, NULL, 0, NULL, 0);
    put_image("ga16.bin", 0, &b, b.size);
    free(b.data);
    b = test_jpeg(px, W, H, 3, 90);
    put_image("jpeg.bin", 0, &b, b.size);
    put_image("jpeg-truncated.bin", 0, &b, b.size / 2);
    free(b.data);
    b = test_jpeg(idx, W, H, 1, 75);
    put_image("jpeg-gray.bin", 0, &b, b.size);
    free(b.data);
}

/* A list harness input: the kind byte (1: classes.txt, 0: ids), then the text. */
static void put_list(const char *name, unsigned kind, const char *text)
{
    const unsigned char k = (unsigned char)kind;
    put2("voc_list", name, &k, 1, text, strlen(text));
}

static void voc_list(void)
{
    put_list("ids.bin", 0, "2007_000032\n2007_000039\n\n  2008_000001 \r\n2008_000002");
    put_list("ids-duplicate.bin", 0, "a\nb\na\n");
    put_list("classes.bin", 1, "\xef\xbb\xbf" "background\naeroplane\npotted plant\nv\xc3\xa9lo\n\n");
    put_list("classes-gap.bin", 1, "background\n\ncat\n");
    put_list("names.bin", 2, "abbey\nairport terminal\nalley\n");
}

/* Image lists: raw bytes. */
static void image_list(void)
{
    static const char *const lists[][2] = {
        {"list.bin", "img/a.png 0\nimg/sub dir/b.jpg 12\r\n\n  c.png\t3 \n"},
        {"one-word.bin", "a.png 1\nb.png\n"},
        {"parent.bin", "..x/y.. 2\na/../b.png 1\n"},
        {"label.bin", "a.png 999999\nb.png 1000000\n"},
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        put("image_list", lists[i][0], lists[i][1], strlen(lists[i][1]));
}

/* An image cache of the paper's transform: a folder of three small images
 * opened with a cache folder and every example made, so the file holds
 * them all; then the file's bytes. */
static void image_cache(void)
{
    static const int sizes[3][2] = {{2, 3}, {4, 1}, {3, 3}};
    char folder[512], path[600], spec[600];
    rb_split *s = NULL;
    rb_split_cache_state st;
    float x[3 * 4 * 4];
    size_t size;
    unsigned char *b;
    tmppath(folder, sizeof folder, "cache-set");
    mkdir(folder, 0755);
    snprintf(path, sizeof path, "%s/a", folder);
    mkdir(path, 0755);
    for (int i = 0; i < 3; i++) {
        unsigned char px[3 * 4 * 4];
        test_bytes t;
        FILE *f;
        for (int k = 0; k < (int)sizeof px; k++)
            px[k] = (unsigned char)(k * 41 + i);
        t = test_png(sizes[i][1], sizes[i][0], 8, PNG_COLOR_TYPE_RGB, px, NULL, 0, NULL, 0, NULL, 0);
        snprintf(path, sizeof path, "%s/a/%d.png", folder, i);
        if ((f = fopen(path, "wb")) == NULL || fwrite(t.data, 1, t.size, f) != t.size || fclose(f) != 0)
            die(path);
        free(t.data);
    }
    snprintf(spec, sizeof spec, "folder:%s", folder);
    if (rb_split_open(&s, spec, RB_SPLIT_TRAIN,
                      &(rb_split_options){.transform = RB_TRANSFORM_PAPER, .size = 4, .cache_dir = tmp}) != RB_OK)
        die(rb_last_error());
    for (int64_t i = 0; i < rb_split_count(s); i++)
        if (rb_split_example(s, i, NULL, 0, 0, x) != RB_OK)
            die(rb_last_error());
    rb_split_cache_state_get(s, &st);
    b = slurp(st.path, &size);
    unlink(st.path);
    rb_split_destroy(s);
    put("image_cache", "cache.bin", b, size);
    free(b);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/a/%d.png", folder, i);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/a", folder);
    rmdir(path);
    rmdir(folder);
}

/* COCO annotation and results files: raw bytes. */
static const char coco_gt[] =
    "{\"info\": {\"year\": 2017}, \"images\": [{\"id\": 1, \"file_name\": \"a.jpg\", \"width\": 64, \"height\": 48}, "
    "{\"id\": 2}], \"annotations\": [{\"id\": 1, \"image_id\": 1, \"category_id\": 3, \"bbox\": [1, 2.5, 30, 40], "
    "\"area\": 1100.5, \"iscrowd\": 0, \"segmentation\": [[1, 2, 3, 4, 5, 6]]}, {\"id\": 2, \"image_id\": 2, "
    "\"category_id\": 3, \"bbox\": [0, 0, 100, 100], \"area\": 9216, \"iscrowd\": 1, \"segmentation\": "
    "{\"counts\": [0, 5], \"size\": [10, 10]}}], \"categories\": [{\"id\": 3, \"name\": \"caf\\u00e9\"}]}";
static const char coco_dt[] =
    "[{\"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 10, 10], \"score\": 0.9},\n"
    " {\"image_id\": 1, \"category_id\": 1, \"bbox\": [1, 1, 9.5, 10], \"score\": 0.9},\n"
    " {\"image_id\": 2, \"category_id\": 1, \"bbox\": [10, 10, 5, 5], \"score\": 0.5},\n"
    " {\"image_id\": 3, \"category_id\": 7, \"bbox\": [20, 20, 96, 96], \"score\": 1e-3},\n"
    " {\"image_id\": 1, \"category_id\": 7, \"bbox\": [5, 5, 40, 40], \"score\": 0.75}]";

static void coco(void)
{
    put("coco", "instances.json", coco_gt, sizeof coco_gt - 1);
    put("coco", "truncated.json", coco_gt, sizeof coco_gt - 40);
    put("coco", "empty.json", "{\"images\": [], \"annotations\": [], \"categories\": []}", 51);
    put("coco_results", "results.json", coco_dt, sizeof coco_dt - 1);
    put("coco_results", "truncated.json", coco_dt, sizeof coco_dt - 30);
    put("coco_results", "empty.json", "[]", 2);
}

static void plan_cache(void)
{
    put_text("plan_cache", "two-machines.json",
             "{\"format\": \"robusta-plan-cache\", \"version\": 1,\n \"machines\": {\"AMD EPYC; avx2; 2 threads; "
             "oneDNN 2.6.3\": {\"conv 3x3 64->64 56x56 f32\": \"direct\", "
             "\"conv 1x1 64->256 56x56 f32\": \"winograd\"},\n"
             "  \"Intel Xeon; avx512_core_bf16; 2 threads; oneDNN 2.6.3\": {\"conv 3x3 64->64 56x56 bf16\": \"bf16 "
             "direct\"}}}\n");
    put_text("plan_cache", "newer.json",
             "{\"format\": \"robusta-plan-cache\", \"version\": 2, \"machines\": {}}");
    put_text("plan_cache", "bad-choice.json",
             "{\"format\": \"robusta-plan-cache\", \"version\": 1, \"machines\": {\"m\": {\"k\": 3}}}");
    put_text("plan_cache", "duplicate.json",
             "{\"format\": \"robusta-plan-cache\", \"version\": 1, \"machines\": {\"m\": {\"k\": \"a\", "
             "\"k\": \"b\"}}}");
}

static void results_csv(void)
{
#define RESULTS_HEADER                                                                                     \
    "arch,eps,source_eps,source_seed,source_test_acc,source_robust_acc,target,mode,transfer_seed,target_acc," \
    "seconds,metric,target_robust_acc,robust_attack\n"
    put_text("results_csv", "demo.csv",
             RESULTS_HEADER
             "r18w25,0,0,0,0.788,0.14,fm5-9,fixed,0,0.52,4.1,accuracy,0.02,pgd-l2 steps=5 eps=1.0\n"
             "r18w25,0,0,0,0.788,0.14,fm5-9,full,0,0.61,7.9,accuracy,0.01,pgd-l2 steps=5 eps=1.0\n"
             "r18w25,1.0,1,0,0.70,0.52,fm5-9,fixed,0,0.55,4.0,accuracy,0.31,pgd-l2 steps=5 eps=1.0\n"
             "r18w25,1.0,1,0,0.70,0.52,scenes,fixed,0,0.27,9.5,miou,,\n"
             "r18w25,0,0,0,0.788,0.14,scenes,fixed,0,0.25,9.1,miou,,\n");
    put_text("results_csv", "old.csv",
             "arch,eps,source_eps,source_seed,source_test_acc,source_robust_acc,target,mode,transfer_seed,"
             "target_acc,seconds\n"
             "a,8/255,0.031372549019607843,1,0.9,,t,full,2,0.5,1.5\r\n");
    put_text("results_csv", "mixed.csv",
             RESULTS_HEADER "a,0,0,0,0.9,,t,fixed,0,0.5,1,miou,,\na,1,1,0,0.9,,t,fixed,0,0.5,1,ap,,\n");
    put_text("results_csv", "bad-row.csv", RESULTS_HEADER "a,0,0\n");
#undef RESULTS_HEADER
}

static void report_log(void)
{
    put_text("report_log", "adversarial.jsonl",
             "{\"epoch\": 1, \"lr\": 0.1, \"train_loss\": 1.03, \"train_acc\": 0.33, \"test_loss\": null, "
             "\"test_acc\": null, \"seconds\": 60.9, \"images_per_second\": 81.9, \"adv_train_acc\": 0.56, "
             "\"robust_test_acc\": null}\n"
             "{\"epoch\": 2, \"lr\": 0.07, \"train_loss\": 0.69, \"train_acc\": 0.75, \"test_loss\": 0.5, "
             "\"test_acc\": 0.8, \"seconds\": 71.0, \"images_per_second\": 70.2, \"adv_train_acc\": 0.69, "
             "\"robust_test_acc\": 0.6}\n");
    put_text("report_log", "cut.jsonl", "{\"epoch\": 1, \"train_loss\": 2.0}\n{\"epoch\": 2, \"train_lo");
    put_text("report_log", "faults.jsonl",
             "[1]\n{\"epoch\": 0}\n{\"epoch\": 2, \"train_loss\": \"x\"}\n{\"epoch\": 3, \"epoch\": 4}\n"
             "{\"epoch\": 3, \"test_acc\": 1e999}\n{\"epoch\": 5}\n{\"epoch\": 5}\n\n");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_corpus DIR (tests/fuzz/corpus)\n");
        return 2;
    }
    root = argv[1];
    if (mkdir(root, 0755) != 0 && errno != EEXIST)
        die(root);
    snprintf(tmp, sizeof tmp, "%s/make-corpus-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(tmp) == NULL)
        die("mkdtemp");
    checkpoints();
    safetensors();
    npy();
    idx();
    cifar();
    grid();
    spec();
    image();
    voc_list();
    image_list();
    image_cache();
    coco();
    plan_cache();
    report_log();
    results_csv();
    rmdir(tmp);
    return 0;
}
