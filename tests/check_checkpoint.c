/* The .rbt checkpoint format: round trips of every dtype, the byte layout,
 * truncated and bit-flipped files, hand-made headers that lie (each refused
 * with its exact message), API misuse, and atomic saves that leave the old
 * file alone when they fail. */
#include "config.h"

#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include <robusta/checkpoint.h>
#include <robusta/robusta.h>

#include "testutil.h"

/* ------------------------------------------------------------ helpers */

/* CRC-32 (the zlib / IEEE 802.3 polynomial), bit by bit: an independent
 * check of the library's. */
static uint32_t test_crc32(const void *data, size_t size)
{
    const unsigned char *p = data;
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < size; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return crc ^ 0xffffffffu;
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void wr64(unsigned char *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

/* Deterministic bytes: an LCG, so the data does not compress. */
static void fill_noise(void *data, size_t size, uint32_t seed)
{
    unsigned char *p = data;
    for (size_t i = 0; i < size; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (unsigned char)(seed >> 24);
    }
}

static unsigned char *read_bytes(const char *path, size_t *size)
{
    unsigned char *buf;
    struct stat st;
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
    ck_assert_int_eq(fstat(fileno(f), &st), 0);
    *size = (size_t)st.st_size;
    buf = malloc(*size ? *size : 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, *size, f), *size);
    fclose(f);
    return buf;
}

static void write_bytes(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "create %s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(data, 1, size, f), size);
    ck_assert_int_eq(fclose(f), 0);
}

/* Parses a copy of exactly `size` bytes (so that ASan sees any read past
 * the end); destroys the result. */
static rb_status parse_copy(const unsigned char *bytes, size_t size, const char *what, unsigned flags)
{
    unsigned char *copy = malloc(size ? size : 1);
    static char sentinel;
    rb_checkpoint *c = (void *)&sentinel; /* not NULL: parse must reset it */
    rb_status s;
    ck_assert_ptr_nonnull(copy);
    if (size)
        memcpy(copy, bytes, size);
    s = rb_checkpoint_parse(&c, copy, size, what, flags);
    if (s == RB_OK)
        ck_assert_ptr_nonnull(c);
    else
        ck_assert_ptr_null(c);
    rb_checkpoint_destroy(c);
    free(copy);
    return s;
}

/* Number of entries in `dir` whose name contains ".tmp.". */
static int count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static char dir[PATH_MAX];

static void setup(void)
{
    make_temp_dir(dir, sizeof dir);
}

static void teardown(void)
{
    remove_temp_dir(dir);
}

/* ------------------------------------------------------------ round trip */

typedef struct spec {
    const char *name;
    rb_dtype dtype;
    int ndim;
    int64_t shape[RB_MAX_DIMS];
} spec;

static const spec specs[] = {
    {"conv1.weight", RB_DTYPE_F32, 4, {8, 3, 3, 3}},
    {"layer1.0.bn1.running_mean", RB_DTYPE_BF16, 1, {37}},
    {"images", RB_DTYPE_U8, 3, {2, 5, 7}},
    {"labels", RB_DTYPE_I32, 1, {11}},
    {"steps", RB_DTYPE_I64, 2, {3, 2}},
    {"scalar", RB_DTYPE_F32, 0, {0}},
    {"empty", RB_DTYPE_F32, 2, {0, 5}},
    {"ramp", RB_DTYPE_I32, 1, {100000}}, /* compresses: not a raw block */
    {"eight_dims", RB_DTYPE_U8, 8, {1, 2, 1, 2, 1, 2, 1, 2}},
};
#define NSPECS (sizeof specs / sizeof specs[0])

static size_t spec_bytes(const spec *sp)
{
    size_t n = rb_dtype_size(sp->dtype);
    for (int d = 0; d < sp->ndim; d++)
        n *= (size_t)sp->shape[d];
    return n;
}

static void spec_data(const spec *sp, size_t index, void *out)
{
    size_t n = spec_bytes(sp);
    if (strcmp(sp->name, "ramp") == 0) {
        int32_t v;
        for (size_t i = 0; i < n / 4; i++) {
            v = (int32_t)(i / 16);
            memcpy((char *)out + 4 * i, &v, 4);
        }
    } else
        fill_noise(out, n, (uint32_t)index + 1);
}

static const char *metadata_in =
    "{ \"arch\" : \"resnet18\", \"eps\": 0.5, \"path\": \"runs/a/b\",\n"
    "  \"nested\": {\"list\": [1, 2.5e-3, true, null, \"\\u00e9\\n\"], \"empty\": {}}, \"big\": 18446744073709551615 }";
static const char *metadata_out =
    "{\"arch\":\"resnet18\",\"eps\":0.5,\"path\":\"runs/a/b\",\"nested\":{\"list\":[1,2.5e-3,true,null,"
    "\"\xc3\xa9\\n\"],\"empty\":{}},\"big\":18446744073709551615}";

static rb_checkpoint *make_full(void)
{
    rb_checkpoint *c;
    ck_assert_int_eq(rb_checkpoint_create(&c), RB_OK);
    ck_assert_str_eq(rb_checkpoint_metadata(c), "{}");
    ck_assert_int_eq(rb_checkpoint_set_metadata(c, metadata_in), RB_OK);
    for (size_t i = 0; i < NSPECS; i++) {
        size_t n = spec_bytes(&specs[i]);
        void *data = malloc(n ? n : 1);
        ck_assert_ptr_nonnull(data);
        spec_data(&specs[i], i, data);
        ck_assert_int_eq(rb_checkpoint_add(c, specs[i].name, specs[i].dtype, specs[i].ndim, specs[i].shape,
                                           n ? data : NULL),
                         RB_OK);
        free(data);
    }
    return c;
}

/* Checks a checkpoint against specs; `loaded` adds the file's index. */
static void check_table(const rb_checkpoint *c, bool with_data, bool loaded, uint64_t data_section)
{
    uint64_t pos = 0;
    ck_assert_uint_eq(rb_checkpoint_count(c), NSPECS);
    ck_assert_str_eq(rb_checkpoint_metadata(c), metadata_out);
    for (size_t i = 0; i < NSPECS; i++) {
        rb_checkpoint_tensor t, f;
        size_t n = spec_bytes(&specs[i]);
        unsigned char *want = malloc(n ? n : 1);
        int64_t numel = 1;
        ck_assert_ptr_nonnull(want);
        spec_data(&specs[i], i, want);
        ck_assert_int_eq(rb_checkpoint_get(c, i, &t), RB_OK);
        ck_assert_str_eq(t.name, specs[i].name);
        ck_assert_int_eq(t.dtype, specs[i].dtype);
        ck_assert_int_eq(t.ndim, specs[i].ndim);
        for (int d = 0; d < t.ndim; d++) {
            ck_assert_int_eq(t.shape[d], specs[i].shape[d]);
            numel *= specs[i].shape[d];
        }
        ck_assert_int_eq(t.numel, numel);
        ck_assert_uint_eq(t.nbytes, n);
        ck_assert_uint_eq(t.crc32, test_crc32(want, n));
        if (with_data) {
            ck_assert_ptr_nonnull(t.data);
            ck_assert_uint_eq((uintptr_t)t.data % 64, 0);
            if (n)
                ck_assert_mem_eq(t.data, want, n);
        } else
            ck_assert_ptr_null(t.data);
        if (loaded) {
            ck_assert_uint_eq(t.offset, pos);
            ck_assert_uint_gt(t.stored_bytes, 0);
            pos += t.stored_bytes;
        } else {
            ck_assert_uint_eq(t.offset, 0);
            ck_assert_uint_eq(t.stored_bytes, 0);
        }
        ck_assert_int_eq(rb_checkpoint_find(c, specs[i].name, &f), RB_OK);
        ck_assert_ptr_eq(f.name, t.name);
        ck_assert_ptr_eq(f.data, t.data);
        free(want);
    }
    if (loaded)
        ck_assert_uint_eq(pos, data_section);
}

START_TEST(round_trip_keeps_every_dtype_shape_and_byte)
{
    char path[PATH_MAX + 32];
    rb_checkpoint *c = make_full(), *l, *ix;
    rb_checkpoint_tensor ramp;
    unsigned char *bytes;
    size_t size;
    uint64_t hlen;

    check_table(c, true, false, 0);
    snprintf(path, sizeof path, "%s/model.rbt", dir);
    ck_assert_int_eq(rb_checkpoint_save(c, path, 0), RB_OK);

    /* The preamble, field by field. */
    bytes = read_bytes(path, &size);
    ck_assert_uint_ge(size, 32);
    ck_assert_mem_eq(bytes, "RBTCKPT\0", 8);
    ck_assert_uint_eq(rd32(bytes + 8), RB_CHECKPOINT_VERSION);
    ck_assert_uint_eq(rd32(bytes + 12), 0);
    hlen = rd64(bytes + 16);
    ck_assert_uint_ge(hlen, 2);
    ck_assert_uint_le(hlen, size - 32);
    ck_assert_uint_eq(rd32(bytes + 24), test_crc32(bytes + 32, (size_t)hlen));
    ck_assert_uint_eq(rd32(bytes + 28), 0);
    ck_assert_int_eq(bytes[32], '{');
    ck_assert_int_eq(bytes[32 + hlen - 1], '}');
    /* The data section starts with a zstd frame (magic 0xFD2FB528). */
    ck_assert_uint_eq(rd32(bytes + 32 + hlen), 0xfd2fb528u);

    ck_assert_int_eq(rb_checkpoint_load(&l, path, 0), RB_OK);
    check_table(l, true, true, size - 32 - hlen);
    ck_assert_int_eq(rb_checkpoint_find(l, "ramp", &ramp), RB_OK);
    ck_assert_uint_lt(ramp.stored_bytes, ramp.nbytes / 10);

    /* Index only: the same table, no data. */
    ck_assert_int_eq(rb_checkpoint_load(&ix, path, RB_CHECKPOINT_INDEX_ONLY), RB_OK);
    check_table(ix, false, true, size - 32 - hlen);
    for (size_t i = 0; i < NSPECS; i++) {
        rb_checkpoint_tensor a, b;
        ck_assert_int_eq(rb_checkpoint_get(l, i, &a), RB_OK);
        ck_assert_int_eq(rb_checkpoint_get(ix, i, &b), RB_OK);
        ck_assert_uint_eq(a.offset, b.offset);
        ck_assert_uint_eq(a.stored_bytes, b.stored_bytes);
        ck_assert_uint_eq(a.crc32, b.crc32);
    }

    /* Saving what was loaded gives the same bytes (saving is deterministic). */
    {
        char again[PATH_MAX + 32];
        unsigned char *b2;
        size_t size2;
        snprintf(again, sizeof again, "%s/again.rbt", dir);
        ck_assert_int_eq(rb_checkpoint_save(l, again, 0), RB_OK);
        b2 = read_bytes(again, &size2);
        ck_assert_uint_eq(size2, size);
        ck_assert_mem_eq(b2, bytes, size);
        free(b2);
        /* Another level still loads to the same contents. */
        ck_assert_int_eq(rb_checkpoint_save(l, again, 19), RB_OK);
        rb_checkpoint_destroy(ix);
        ck_assert_int_eq(rb_checkpoint_load(&ix, again, 0), RB_OK);
        b2 = read_bytes(again, &size2);
        check_table(ix, true, true, size2 - 32 - rd64(b2 + 16));
        free(b2);
        ck_assert_int_eq(rb_checkpoint_save(l, again, -5), RB_OK);
    }
    free(bytes);
    rb_checkpoint_destroy(ix);
    rb_checkpoint_destroy(l);
    rb_checkpoint_destroy(c);
}
END_TEST

START_TEST(empty_checkpoint_round_trips)
{
    char path[PATH_MAX + 32];
    rb_checkpoint *c, *l;
    unsigned char *bytes;
    size_t size;
    const char *header = "{\"metadata\":{},\"tensors\":[]}";
    ck_assert_int_eq(rb_checkpoint_create(&c), RB_OK);
    snprintf(path, sizeof path, "%s/empty.rbt", dir);
    ck_assert_int_eq(rb_checkpoint_save(c, path, 3), RB_OK);
    bytes = read_bytes(path, &size);
    ck_assert_uint_eq(size, 32 + strlen(header));
    ck_assert_uint_eq(rd64(bytes + 16), strlen(header));
    ck_assert_mem_eq(bytes + 32, header, strlen(header));
    ck_assert_int_eq(rb_checkpoint_load(&l, path, 0), RB_OK);
    ck_assert_uint_eq(rb_checkpoint_count(l), 0);
    ck_assert_str_eq(rb_checkpoint_metadata(l), "{}");
    free(bytes);
    rb_checkpoint_destroy(l);
    rb_checkpoint_destroy(c);
}
END_TEST

/* ------------------------------------------------------------ damaged files */

/* A small file: three tensors, one of them empty, one incompressible. */
static unsigned char *small_file(char *path, size_t path_size, size_t *size)
{
    rb_checkpoint *c;
    float a[6] = {1, 2, 3, 4, 5, 6};
    unsigned char noise[64];
    int64_t sa[2] = {2, 3}, sn[1] = {64}, se[1] = {0};
    fill_noise(noise, sizeof noise, 7);
    ck_assert_int_eq(rb_checkpoint_create(&c), RB_OK);
    ck_assert_int_eq(rb_checkpoint_set_metadata(c, "{\"arch\":\"tiny\"}"), RB_OK);
    ck_assert_int_eq(rb_checkpoint_add(c, "a", RB_DTYPE_F32, 2, sa, a), RB_OK);
    ck_assert_int_eq(rb_checkpoint_add(c, "noise", RB_DTYPE_U8, 1, sn, noise), RB_OK);
    ck_assert_int_eq(rb_checkpoint_add(c, "e", RB_DTYPE_I64, 1, se, NULL), RB_OK);
    snprintf(path, path_size, "%s/small.rbt", dir);
    ck_assert_int_eq(rb_checkpoint_save(c, path, 0), RB_OK);
    rb_checkpoint_destroy(c);
    return read_bytes(path, size);
}

START_TEST(every_truncation_is_refused_as_corrupt)
{
    char path[PATH_MAX + 32], cut[PATH_MAX + 32];
    size_t size;
    unsigned char *bytes = small_file(path, sizeof path, &size);
    char prefix[PATH_MAX + 40];

    ck_assert_uint_eq(parse_copy(bytes, size, path, 0), RB_OK);
    snprintf(prefix, sizeof prefix, "%s: ", path);
    for (size_t len = 0; len < size; len++) {
        for (unsigned flags = 0; flags <= RB_CHECKPOINT_INDEX_ONLY; flags++) {
            rb_status s = parse_copy(bytes, len, path, flags);
            ck_assert_msg(s == RB_ERR_CORRUPT, "length %zu of %zu: status %d (%s)", len, size, (int)s,
                          rb_last_error());
            ck_assert_msg(starts_with(rb_last_error(), prefix), "length %zu: '%s'", len, rb_last_error());
        }
    }
    /* Through the file system too, at a few lengths, and exact messages. */
    snprintf(cut, sizeof cut, "%s/cut.rbt", dir);
    {
        static const size_t lengths[] = {0, 5, 31, 40};
        char want[PATH_MAX + 200];
        rb_checkpoint *c;
        for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
            write_bytes(cut, bytes, lengths[k]);
            ck_assert_int_eq(rb_checkpoint_load(&c, cut, 0), RB_ERR_CORRUPT);
            ck_assert_ptr_null(c);
        }
        write_bytes(cut, bytes, 0);
        ck_assert_int_eq(rb_checkpoint_load(&c, cut, 0), RB_ERR_CORRUPT);
        snprintf(want, sizeof want, "%s: empty file, not a robusta checkpoint", cut);
        ck_assert_str_eq(rb_last_error(), want);
        write_bytes(cut, bytes, 20);
        ck_assert_int_eq(rb_checkpoint_load(&c, cut, 0), RB_ERR_CORRUPT);
        snprintf(want, sizeof want, "%s: truncated: 20 bytes, less than the 32-byte preamble", cut);
        ck_assert_str_eq(rb_last_error(), want);
        write_bytes(cut, bytes, 40);
        ck_assert_int_eq(rb_checkpoint_load(&c, cut, 0), RB_ERR_CORRUPT);
        snprintf(want, sizeof want, "%s: truncated: the header is %llu bytes but only 8 follow the preamble", cut,
                 (unsigned long long)rd64(bytes + 16));
        ck_assert_str_eq(rb_last_error(), want);
        write_bytes(cut, bytes, size - 1);
        ck_assert_int_eq(rb_checkpoint_load(&c, cut, RB_CHECKPOINT_INDEX_ONLY), RB_ERR_CORRUPT);
        ck_assert_msg(strstr(rb_last_error(), ": tensor 'e': frame at offset ") != NULL, "%s", rb_last_error());
        ck_assert_msg(strstr(rb_last_error(), "ends past the data section") != NULL, "%s", rb_last_error());
    }
    free(bytes);
}
END_TEST

START_TEST(every_flipped_byte_is_detected)
{
    char path[PATH_MAX + 32], prefix[PATH_MAX + 40];
    size_t size;
    unsigned char *bytes = small_file(path, sizeof path, &size);
    snprintf(prefix, sizeof prefix, "%s: ", path);
    for (size_t i = 0; i < size; i++) {
        static const unsigned char masks[] = {0x01, 0x80, 0xff};
        for (size_t m = 0; m < sizeof masks; m++) {
            rb_status s;
            bytes[i] ^= masks[m];
            s = parse_copy(bytes, size, path, 0);
            bytes[i] ^= masks[m];
            /* The version field may turn into a newer version. */
            ck_assert_msg(s == RB_ERR_CORRUPT || (s == RB_ERR_UNSUPPORTED && i >= 8 && i < 12),
                          "byte %zu of %zu ^ 0x%02x: status %d (%s)", i, size, masks[m], (int)s, rb_last_error());
            ck_assert_msg(starts_with(rb_last_error(), prefix), "byte %zu: '%s'", i, rb_last_error());
        }
    }
    free(bytes);
}
END_TEST

START_TEST(flips_name_the_header_crc_and_the_tensor)
{
    char path[PATH_MAX + 32], want[PATH_MAX + 200];
    size_t size;
    unsigned char *bytes = small_file(path, sizeof path, &size);
    uint64_t hlen = rd64(bytes + 16);
    uint32_t stored = rd32(bytes + 24);
    rb_checkpoint *ix;

    /* A byte of the header JSON. */
    bytes[32 + hlen / 2] ^= 0x20;
    ck_assert_int_eq(parse_copy(bytes, size, path, 0), RB_ERR_CORRUPT);
    snprintf(want, sizeof want, "%s: header CRC-32 mismatch (stored 0x%08x, computed 0x%08x)", path, stored,
             test_crc32(bytes + 32, (size_t)hlen));
    ck_assert_str_eq(rb_last_error(), want);
    bytes[32 + hlen / 2] ^= 0x20;

    /* The CRC itself. */
    bytes[25] ^= 0x01;
    ck_assert_int_eq(parse_copy(bytes, size, path, RB_CHECKPOINT_INDEX_ONLY), RB_ERR_CORRUPT);
    snprintf(want, sizeof want, "%s: header CRC-32 mismatch (stored 0x%08x, computed 0x%08x)", path,
             stored ^ 0x100u, stored);
    ck_assert_str_eq(rb_last_error(), want);
    bytes[25] ^= 0x01;

    /* In each tensor's frame: the middle and the last byte (zstd's
     * checksum). Index-only loads do not read the data and still succeed. */
    ck_assert_int_eq(rb_checkpoint_parse(&ix, bytes, size, path, RB_CHECKPOINT_INDEX_ONLY), RB_OK);
    for (size_t i = 0; i < rb_checkpoint_count(ix); i++) {
        rb_checkpoint_tensor t;
        size_t at;
        ck_assert_int_eq(rb_checkpoint_get(ix, i, &t), RB_OK);
        at = 32 + (size_t)hlen + (size_t)t.offset + (size_t)t.stored_bytes - 1;
        bytes[at] ^= 0x04;
        ck_assert_int_eq(parse_copy(bytes, size, path, 0), RB_ERR_CORRUPT);
        snprintf(want, sizeof want, "%s: tensor '%s': zstd content checksum mismatch (data corrupt)", path, t.name);
        ck_assert_str_eq(rb_last_error(), want);
        ck_assert_int_eq(parse_copy(bytes, size, path, RB_CHECKPOINT_INDEX_ONLY), RB_OK);
        bytes[at] ^= 0x04;

        at = 32 + (size_t)hlen + (size_t)t.offset + (size_t)t.stored_bytes / 2;
        bytes[at] ^= 0x10;
        ck_assert_int_eq(parse_copy(bytes, size, path, 0), RB_ERR_CORRUPT);
        snprintf(want, sizeof want, "%s: tensor '%s': ", path, t.name);
        ck_assert_msg(starts_with(rb_last_error(), want), "tensor %s: '%s'", t.name, rb_last_error());
        if (strcmp(t.name, "noise") == 0) {
            /* Incompressible: a raw block, so the flip lands in the data. */
            snprintf(want, sizeof want, "%s: tensor 'noise': zstd content checksum mismatch (data corrupt)", path);
            ck_assert_str_eq(rb_last_error(), want);
        }
        bytes[at] ^= 0x10;
    }
    ck_assert_int_eq(parse_copy(bytes, size, path, 0), RB_OK);
    rb_checkpoint_destroy(ix);
    free(bytes);
}
END_TEST

/* ------------------------------------------------------------ lying headers */

/* Real zstd frames, taken from a saved file: tensor a (f32 [2] = {1, 2})
 * and tensor b (u8 [3] = {7, 8, 9}). */
static unsigned char fa[256], fb[256];
static size_t la, lb;
static uint32_t ca, cb;

static void load_frames(void)
{
    char path[PATH_MAX + 32];
    rb_checkpoint *c;
    rb_checkpoint_tensor t;
    float a[2] = {1, 2};
    unsigned char b[3] = {7, 8, 9};
    int64_t sa[1] = {2}, sb[1] = {3};
    unsigned char *bytes;
    size_t size, data;

    ck_assert_int_eq(rb_checkpoint_create(&c), RB_OK);
    ck_assert_int_eq(rb_checkpoint_add(c, "a", RB_DTYPE_F32, 1, sa, a), RB_OK);
    ck_assert_int_eq(rb_checkpoint_add(c, "b", RB_DTYPE_U8, 1, sb, b), RB_OK);
    snprintf(path, sizeof path, "%s/frames.rbt", dir);
    ck_assert_int_eq(rb_checkpoint_save(c, path, 0), RB_OK);
    rb_checkpoint_destroy(c);
    bytes = read_bytes(path, &size);
    data = 32 + (size_t)rd64(bytes + 16);
    ck_assert_int_eq(rb_checkpoint_load(&c, path, RB_CHECKPOINT_INDEX_ONLY), RB_OK);
    ck_assert_int_eq(rb_checkpoint_get(c, 0, &t), RB_OK);
    la = (size_t)t.stored_bytes;
    ca = t.crc32;
    ck_assert_uint_le(la, sizeof fa);
    memcpy(fa, bytes + data + t.offset, la);
    ck_assert_int_eq(rb_checkpoint_get(c, 1, &t), RB_OK);
    lb = (size_t)t.stored_bytes;
    cb = t.crc32;
    ck_assert_uint_le(lb, sizeof fb);
    memcpy(fb, bytes + data + t.offset, lb);
    ck_assert_uint_eq(ca, test_crc32(a, sizeof a));
    ck_assert_uint_eq(cb, test_crc32(b, sizeof b));
    rb_checkpoint_destroy(c);
    free(bytes);
}

/* A file: preamble (version 1, no flags, the right CRC), `json`, then the
 * data: frame a, `gap` bytes of zeros, frame b (each when `with_*`). */
static unsigned char *craft(const char *json, bool with_a, size_t gap, bool with_b, size_t *size)
{
    size_t h = strlen(json), n = 32 + h + (with_a ? la : 0) + gap + (with_b ? lb : 0), at;
    unsigned char *p = calloc(1, n);
    ck_assert_ptr_nonnull(p);
    memcpy(p, "RBTCKPT\0", 8);
    wr32(p + 8, 1);
    wr64(p + 16, h);
    wr32(p + 24, test_crc32(json, h));
    memcpy(p + 32, json, h);
    at = 32 + h;
    if (with_a) {
        memcpy(p + at, fa, la);
        at += la;
    }
    at += gap;
    if (with_b)
        memcpy(p + at, fb, lb);
    *size = n;
    return p;
}

/* Parses a crafted file and checks the status and the exact message. */
static void expect_parse(const unsigned char *bytes, size_t size, unsigned flags, rb_status status, const char *msg)
{
    rb_status s = parse_copy(bytes, size, "crafted.rbt", flags);
    ck_assert_msg(s == status, "status %d, expected %d: %s", (int)s, (int)status, rb_last_error());
    if (msg != NULL)
        ck_assert_str_eq(rb_last_error(), msg);
}

static void expect_json(const char *json, bool with_a, size_t gap, bool with_b, rb_status status, const char *msg)
{
    size_t size;
    unsigned char *bytes = craft(json, with_a, gap, with_b, &size);
    expect_parse(bytes, size, 0, status, msg);
    free(bytes);
}

/* {"metadata":{},"tensors":[<a>,<b>]} with a and b as given. */
static void two(char *out, size_t size, unsigned long long off_a, unsigned long long len_a,
                unsigned long long off_b, unsigned long long len_b)
{
    snprintf(out, size,
             "{\"metadata\":{},\"tensors\":["
             "{\"name\":\"a\",\"dtype\":\"f32\",\"shape\":[2],\"offset\":%llu,\"length\":%llu,\"crc32\":%u},"
             "{\"name\":\"b\",\"dtype\":\"u8\",\"shape\":[3],\"offset\":%llu,\"length\":%llu,\"crc32\":%u}]}",
             off_a, len_a, ca, off_b, len_b, cb);
}

/* {"metadata":{},"tensors":[{"name":"a",<fields>}]} with frame a. */
static void one(char *out, size_t size, const char *fields)
{
    snprintf(out, size, "{\"metadata\":{},\"tensors\":[{\"name\":\"a\",%s}]}", fields);
}

static void a_fields(char *out, size_t size, const char *dtype, const char *shape)
{
    snprintf(out, size, "\"dtype\":\"%s\",\"shape\":%s,\"offset\":0,\"length\":%zu,\"crc32\":%u", dtype, shape, la,
             ca);
}

START_TEST(crafted_files_that_are_right_load)
{
    char json[1024];
    size_t size;
    unsigned char *bytes;
    rb_checkpoint *c;
    rb_checkpoint_tensor t;
    load_frames();
    two(json, sizeof json, 0, la, la, lb);
    expect_json(json, true, 0, true, RB_OK, NULL);
    /* Field order is free; whitespace around values is JSON. */
    snprintf(json, sizeof json,
             " { \"tensors\" : [ {\"crc32\":%u,\"length\":%zu,\"offset\":0,\"shape\":[2],\"dtype\":\"f32\","
             "\"name\":\"a\"} ],\n\"metadata\" : {\"k\":[1,{\"x\":null}]} }\n",
             ca, la);
    bytes = craft(json, true, 0, false, &size);
    ck_assert_int_eq(rb_checkpoint_parse(&c, bytes, size, "crafted.rbt", 0), RB_OK);
    ck_assert_str_eq(rb_checkpoint_metadata(c), "{\"k\":[1,{\"x\":null}]}");
    ck_assert_int_eq(rb_checkpoint_find(c, "a", &t), RB_OK);
    ck_assert_float_eq(((const float *)t.data)[1], 2.0f);
    rb_checkpoint_destroy(c);
    free(bytes);
}
END_TEST

START_TEST(lying_frame_places_are_refused)
{
    char json[1024], want[512];
    load_frames();

    two(json, sizeof json, 0, la, la + 100, lb);
    snprintf(want, sizeof want,
             "crafted.rbt: tensor 'b': frame at offset %zu, %zu bytes, ends past the data section (%zu bytes; file "
             "truncated?)",
             la + 100, lb, la + lb);
    expect_json(json, true, 0, true, RB_ERR_CORRUPT, want);

    two(json, sizeof json, 0, la, la, lb + 1);
    snprintf(want, sizeof want,
             "crafted.rbt: tensor 'b': frame at offset %zu, %zu bytes, ends past the data section (%zu bytes; file "
             "truncated?)",
             la, lb + 1, la + lb);
    expect_json(json, true, 0, true, RB_ERR_CORRUPT, want);

    two(json, sizeof json, 0, la, la - 1, lb);
    snprintf(want, sizeof want,
             "crafted.rbt: tensor 'b': frame at offset %zu overlaps the previous frame, which ends at %zu", la - 1, la);
    expect_json(json, true, 0, true, RB_ERR_CORRUPT, want);

    /* Both entries on the same frame. */
    two(json, sizeof json, 0, la, 0, lb);
    snprintf(want, sizeof want, "crafted.rbt: tensor 'b': frame at offset 0 overlaps the previous frame, which ends at %zu",
             la);
    expect_json(json, true, 0, true, RB_ERR_CORRUPT, want);

    two(json, sizeof json, 0, la, la + 3, lb);
    snprintf(want, sizeof want,
             "crafted.rbt: tensor 'b': frame at offset %zu leaves a gap after the previous frame, which ends at %zu",
             la + 3, la);
    expect_json(json, true, 3, true, RB_ERR_CORRUPT, want);

    /* A gap before the first frame (the check comes before the frame is
     * read, so the bytes do not matter). */
    two(json, sizeof json, 2, la, la + 2, lb);
    expect_json(json, true, 2, true, RB_ERR_CORRUPT,
                "crafted.rbt: tensor 'a': frame at offset 2; the first frame must start the data section at 0");

    /* Frame a's length includes a byte of the next frame. */
    two(json, sizeof json, 0, la + 1, la + 1, lb);
    snprintf(want, sizeof want, "crafted.rbt: tensor 'a': the zstd frame is %zu bytes but the index says %zu", la,
             la + 1);
    expect_json(json, true, 1, true, RB_ERR_CORRUPT, want);

    /* ...or stops short of its end. */
    two(json, sizeof json, 0, la - 1, la - 1, lb + 1);
    snprintf(want, sizeof want, "crafted.rbt: tensor 'a': invalid zstd frame: Src size is incorrect");
    expect_json(json, true, 0, true, RB_ERR_CORRUPT, want);

    two(json, sizeof json, 0, 0, 0, lb);
    expect_json(json, false, 0, true, RB_ERR_CORRUPT, "crafted.rbt: tensor 'a': frame length is 0");

    /* Bytes after the last frame. */
    two(json, sizeof json, 0, la, la, lb);
    {
        size_t size;
        unsigned char *bytes = craft(json, true, 0, true, &size), *more = malloc(size + 5);
        ck_assert_ptr_nonnull(more);
        memcpy(more, bytes, size);
        memset(more + size, 0, 5);
        snprintf(want, sizeof want, "crafted.rbt: 5 bytes follow the last frame (the data section is %zu bytes)",
                 la + lb + 5);
        expect_parse(more, size + 5, 0, RB_ERR_CORRUPT, want);
        free(more);
        free(bytes);
    }
    snprintf(want, sizeof want, "crafted.rbt: the index lists no tensors but the data section has %zu bytes", la);
    expect_json("{\"metadata\":{},\"tensors\":[]}", true, 0, false, RB_ERR_CORRUPT, want);
}
END_TEST

START_TEST(lying_frame_contents_are_refused)
{
    char json[1024], fields[512], want[512];
    load_frames();

    /* Frame a holds 8 bytes; f32 [3] needs 12, u8 [8] needs 8 (fine). */
    a_fields(fields, sizeof fields, "f32", "[3]");
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: tensor 'a': the zstd frame holds 8 bytes but shape [3] of f32 needs 12");
    a_fields(fields, sizeof fields, "i64", "[]");
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_OK, NULL);

    /* The right frame, a wrong CRC-32: found after decompression only. */
    snprintf(fields, sizeof fields, "\"dtype\":\"f32\",\"shape\":[2],\"offset\":0,\"length\":%zu,\"crc32\":%u", la,
             ca ^ 1u);
    one(json, sizeof json, fields);
    snprintf(want, sizeof want,
             "crafted.rbt: tensor 'a': CRC-32 mismatch (the index says 0x%08x, the data gives 0x%08x)", ca ^ 1u, ca);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT, want);
    {
        size_t size;
        unsigned char *bytes = craft(json, true, 0, false, &size);
        expect_parse(bytes, size, RB_CHECKPOINT_INDEX_ONLY, RB_OK, NULL);
        free(bytes);
    }

    /* Hand-made frames: the magic, FHD, [window], [content size], a raw
     * last block (3-byte header), [4-byte checksum]. */
    {
        static const unsigned char no_checksum[] = {0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x03, 0x19, 0x00, 0x00, 1, 2, 3};
        static const unsigned char no_size[] = {0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x00, 0x19, 0x00,
                                                0x00, 1,    2,    3,    0,    0,    0,    0};
        /* Claims 1 GiB in 16 bytes: refused before anything is allocated. */
        static const unsigned char bomb[] = {0x28, 0xb5, 0x2f, 0xfd, 0xa4, 0x00, 0x00, 0x00,
                                             0x40, 0x01, 0x00, 0x00, 0,    0,    0,    0};
        static const unsigned char not_zstd[] = {'h', 'e', 'l', 'l', 'o', '!'};
        static const struct {
            const unsigned char *frame;
            size_t size;
            const char *shape;
            const char *msg;
        } cases[] = {
            {no_checksum, sizeof no_checksum, "[3]", "crafted.rbt: tensor 'a': the zstd frame has no content checksum"},
            {no_size, sizeof no_size, "[3]",
             "crafted.rbt: tensor 'a': the zstd frame does not record its content size"},
            {bomb, sizeof bomb, "[1073741824]",
             "crafted.rbt: tensor 'a': a zstd frame of 16 bytes cannot hold 1073741824 bytes"},
            {not_zstd, sizeof not_zstd, "[3]", "crafted.rbt: tensor 'a': no zstd frame at offset 0 (bad magic number)"},
        };
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            size_t h, size;
            unsigned char *bytes;
            snprintf(fields, sizeof fields, "\"dtype\":\"u8\",\"shape\":%s,\"offset\":0,\"length\":%zu,\"crc32\":0",
                     cases[k].shape, cases[k].size);
            one(json, sizeof json, fields);
            bytes = craft(json, false, cases[k].size, false, &size);
            h = strlen(json);
            memcpy(bytes + 32 + h, cases[k].frame, cases[k].size);
            expect_parse(bytes, size, RB_CHECKPOINT_INDEX_ONLY, RB_ERR_CORRUPT, cases[k].msg);
            free(bytes);
        }
    }
}
END_TEST

START_TEST(lying_preambles_are_refused)
{
    char json[1024], want[512];
    size_t size;
    unsigned char *bytes;
    load_frames();
    two(json, sizeof json, 0, la, la, lb);
    bytes = craft(json, true, 0, true, &size);
    expect_parse(bytes, size, 0, RB_OK, NULL);

    wr32(bytes + 8, 2);
    expect_parse(bytes, size, 0, RB_ERR_UNSUPPORTED,
                 "crafted.rbt: format version 2 is newer than this robusta reads (1); upgrade robusta");
    wr32(bytes + 8, 0);
    expect_parse(bytes, size, 0, RB_ERR_CORRUPT, "crafted.rbt: format version 0 is invalid");
    wr32(bytes + 8, 1);

    wr32(bytes + 12, 1u << 31);
    expect_parse(bytes, size, 0, RB_ERR_CORRUPT, "crafted.rbt: unknown flags 0x80000000 in the preamble");
    wr32(bytes + 12, 0);

    wr32(bytes + 28, 0x100);
    expect_parse(bytes, size, 0, RB_ERR_CORRUPT, "crafted.rbt: reserved preamble field is 0x00000100, not 0");
    wr32(bytes + 28, 0);

    wr64(bytes + 16, 0);
    expect_parse(bytes, size, 0, RB_ERR_CORRUPT, "crafted.rbt: header length 0 is outside 1..67108864");
    wr64(bytes + 16, (uint64_t)RB_CHECKPOINT_MAX_HEADER + 1);
    expect_parse(bytes, size, 0, RB_ERR_CORRUPT, "crafted.rbt: header length 67108865 is outside 1..67108864");
    wr64(bytes + 16, UINT64_MAX);
    expect_parse(bytes, size, 0, RB_ERR_CORRUPT,
                 "crafted.rbt: header length 18446744073709551615 is outside 1..67108864");
    wr64(bytes + 16, size - 31);
    snprintf(want, sizeof want, "crafted.rbt: truncated: the header is %zu bytes but only %zu follow the preamble",
             size - 31, size - 32);
    expect_parse(bytes, size, 0, RB_ERR_CORRUPT, want);
    /* A header length that ends inside the JSON: the CRC no longer matches. */
    wr64(bytes + 16, strlen(json) - 1);
    snprintf(want, sizeof want, "crafted.rbt: header CRC-32 mismatch (stored 0x%08x, computed 0x%08x)",
             test_crc32(json, strlen(json)), test_crc32(json, strlen(json) - 1));
    expect_parse(bytes, size, 0, RB_ERR_CORRUPT, want);
    wr64(bytes + 16, strlen(json));

    memcpy(bytes, "RBTCKPU", 7);
    expect_parse(bytes, size, 0, RB_ERR_CORRUPT, "crafted.rbt: not a robusta checkpoint (bad magic)");
    free(bytes);
    /* Unknown load flags are the caller's mistake. */
    bytes = craft(json, true, 0, true, &size);
    expect_parse(bytes, size, 2, RB_ERR_INVALID_ARGUMENT, "crafted.rbt: unknown load flags 0x2");
    free(bytes);
}
END_TEST

START_TEST(lying_index_entries_are_refused)
{
    char json[1024], fields[512];
    load_frames();

    /* Duplicate names. */
    snprintf(json, sizeof json,
             "{\"metadata\":{},\"tensors\":["
             "{\"name\":\"a\",\"dtype\":\"f32\",\"shape\":[2],\"offset\":0,\"length\":%zu,\"crc32\":%u},"
             "{\"name\":\"a\",\"dtype\":\"u8\",\"shape\":[3],\"offset\":%zu,\"length\":%zu,\"crc32\":%u}]}",
             la, ca, la, lb, cb);
    expect_json(json, true, 0, true, RB_ERR_CORRUPT,
                "crafted.rbt: tensor 'a' (#1): the name is already used by tensor #0");

    a_fields(fields, sizeof fields, "f16", "[2]");
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: tensor 'a': unknown dtype \"f16\" (expected f32, bf16, u8, i32 or i64)");
    /* json-c would cut "f32\u0000" to "f32": the strict reader refuses it */
    a_fields(fields, sizeof fields, "f32\\u0000", "[2]");
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: \\u0000 escape (no name or value may hold a NUL) at "
                "byte 50");

    a_fields(fields, sizeof fields, "f32", "[2,-1]");
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT, "crafted.rbt: tensor 'a': shape[1] is -1, negative");

    a_fields(fields, sizeof fields, "f32", "[1,1,1,1,1,1,1,1,2]");
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT, "crafted.rbt: tensor 'a': shape has 9 dimensions, more than 8");

    a_fields(fields, sizeof fields, "f32", "[1,2.0]");
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT, "crafted.rbt: tensor 'a': shape[1] is not an integer");

    a_fields(fields, sizeof fields, "f32", "[4611686018427387904,2]");
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: tensor 'a': the byte size of shape [4611686018427387904, 2] of f32 overflows");
    a_fields(fields, sizeof fields, "u8", "[9223372036854775807]");
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: tensor 'a': the zstd frame holds 8 bytes but shape [9223372036854775807] of u8 needs "
                "9223372036854775807");
    a_fields(fields, sizeof fields, "u8", "[9223372036854775808]");
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: tensor 'a': shape[0] is 9223372036854775808, more than 9223372036854775807");
    /* An empty shape is empty whatever its other dimensions. */
    a_fields(fields, sizeof fields, "f32", "[0,9223372036854775807,9223372036854775807]");
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: tensor 'a': the zstd frame holds 8 bytes but shape [0, 9223372036854775807, "
                "9223372036854775807] of f32 needs 0");

    /* Integer fields: types, signs, ranges. */
    snprintf(fields, sizeof fields, "\"dtype\":\"f32\",\"shape\":[2],\"offset\":-1,\"length\":%zu,\"crc32\":%u", la, ca);
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT, "crafted.rbt: tensor 'a': field \"offset\" is -1, negative");
    snprintf(fields, sizeof fields, "\"dtype\":\"f32\",\"shape\":[2],\"offset\":\"0\",\"length\":%zu,\"crc32\":%u", la,
             ca);
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT, "crafted.rbt: tensor 'a': field \"offset\" is not an integer");
    snprintf(fields, sizeof fields, "\"dtype\":\"f32\",\"shape\":[2],\"offset\":0,\"length\":%zu.0,\"crc32\":%u", la, ca);
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT, "crafted.rbt: tensor 'a': field \"length\" is not an integer");
    snprintf(fields, sizeof fields,
             "\"dtype\":\"f32\",\"shape\":[2],\"offset\":0,\"length\":18446744073709551615,\"crc32\":%u", ca);
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: tensor 'a': field \"length\" is 18446744073709551615, more than 9223372036854775807");
    snprintf(fields, sizeof fields, "\"dtype\":\"f32\",\"shape\":[2],\"offset\":0,\"length\":%zu,\"crc32\":4294967296", la);
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: tensor 'a': field \"crc32\" is 4294967296, more than 4294967295");
    snprintf(fields, sizeof fields, "\"dtype\":\"f32\",\"shape\":\"[2]\",\"offset\":0,\"length\":%zu,\"crc32\":%u", la,
             ca);
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT, "crafted.rbt: tensor 'a': field \"shape\" is not an array");
    snprintf(fields, sizeof fields, "\"dtype\":3,\"shape\":[2],\"offset\":0,\"length\":%zu,\"crc32\":%u", la, ca);
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT, "crafted.rbt: tensor 'a': field \"dtype\" is not a string");

    /* Missing and extra fields. */
    snprintf(fields, sizeof fields, "\"dtype\":\"f32\",\"shape\":[2],\"offset\":0,\"length\":%zu", la);
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT, "crafted.rbt: tensor 'a': missing field \"crc32\"");
    snprintf(fields, sizeof fields, "\"shape\":[2],\"offset\":0,\"length\":%zu,\"crc32\":%u", la, ca);
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT, "crafted.rbt: tensor 'a': missing field \"dtype\"");
    snprintf(fields, sizeof fields, "\"dtype\":\"f32\",\"offset\":0,\"length\":%zu,\"crc32\":%u", la, ca);
    one(json, sizeof json, fields);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT, "crafted.rbt: tensor 'a': missing field \"shape\"");
    a_fields(fields, sizeof fields, "f32", "[2]");
    {
        char extra[600];
        snprintf(extra, sizeof extra, "%s,\"stride\":[1]", fields);
        one(json, sizeof json, extra);
    }
    expect_json(json, true, 0, false, RB_ERR_CORRUPT, "crafted.rbt: tensor 'a': unknown field \"stride\"");
    snprintf(json, sizeof json,
             "{\"metadata\":{},\"tensors\":[{\"dtype\":\"f32\",\"shape\":[2],\"offset\":0,\"length\":%zu,\"crc32\":%u}]}",
             la, ca);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT, "crafted.rbt: tensor #0: missing field \"name\"");
    snprintf(json, sizeof json,
             "{\"metadata\":{},\"tensors\":[{\"name\":\"\",\"dtype\":\"f32\",\"shape\":[2],\"offset\":0,\"length\":%zu,"
             "\"crc32\":%u}]}",
             la, ca);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT, "crafted.rbt: tensor #0: the name is empty");
    snprintf(json, sizeof json,
             "{\"metadata\":{},\"tensors\":[{\"name\":\"a\\u0000b\",\"dtype\":\"f32\",\"shape\":[2],\"offset\":0,"
             "\"length\":%zu,\"crc32\":%u}]}",
             la, ca);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: \\u0000 escape (no name or value may hold a NUL) at "
                "byte 36");
    snprintf(json, sizeof json,
             "{\"metadata\":{},\"tensors\":[{\"name\":7,\"dtype\":\"f32\",\"shape\":[2],\"offset\":0,\"length\":%zu,"
             "\"crc32\":%u}]}",
             la, ca);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT, "crafted.rbt: tensor #0: field \"name\" is not a string");
    expect_json("{\"metadata\":{},\"tensors\":[[]]}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: tensor #0: the index entry is not an object");
}
END_TEST

START_TEST(lying_header_documents_are_refused)
{
    char json[1024], want[512];
    load_frames();

    expect_json("{\"tensors\":[]}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header has no \"metadata\" field");
    expect_json("{\"metadata\":{}}", false, 0, false, RB_ERR_CORRUPT, "crafted.rbt: the header has no \"tensors\" field");
    expect_json("{\"metadata\":{},\"tensors\":[],\"version\":2}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header has an unknown field \"version\"");
    expect_json("{\"metadata\":[],\"tensors\":[]}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header's \"metadata\" is not an object");
    expect_json("{\"metadata\":\"{}\",\"tensors\":[]}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header's \"metadata\" is not an object");
    expect_json("{\"metadata\":{},\"tensors\":{}}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header's \"tensors\" is not an array");
    expect_json("[]", false, 0, false, RB_ERR_CORRUPT, "crafted.rbt: the header is a JSON array, not an object");
    expect_json("7", false, 0, false, RB_ERR_CORRUPT, "crafted.rbt: the header is a JSON number, not an object");
    expect_json("null", false, 0, false, RB_ERR_CORRUPT, "crafted.rbt: the header is a JSON null, not an object");
    expect_json(" \"x\" ", false, 0, false, RB_ERR_CORRUPT, "crafted.rbt: the header is a JSON string, not an object");

    /* Strict JSON: what json-c alone would let through. */
    expect_json("{\"metadata\":{},\"metadata\":{},\"tensors\":[]}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: duplicate key 'metadata' in the object at byte 0");
    snprintf(json, sizeof json,
             "{\"metadata\":{},\"tensors\":[{\"name\":\"a\",\"name\":\"b\",\"dtype\":\"f32\",\"shape\":[2],"
             "\"offset\":0,\"length\":%zu,\"crc32\":%u}]}",
             la, ca);
    expect_json(json, true, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: duplicate key 'name' in the object at byte 26");
    expect_json("{\"metadata\":{\"a\":{\"x\":1,\"\\u0078\":2}},\"tensors\":[]}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: duplicate key 'x' in the object at byte 17");
    expect_json("{'metadata':{},'tensors':[]}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: expected a string key at byte 1");
    expect_json("{\"metadata\":{\"x\":NaN},\"tensors\":[]}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: unexpected character at byte 17");
    expect_json("{\"metadata\":{\"x\":1e999},\"tensors\":[]}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: number out of range at byte 17");
    expect_json("{\"metadata\":{\"x\":99999999999999999999},\"tensors\":[]}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: integer out of range at byte 17");
    expect_json("{\"metadata\":{\"x\":-9223372036854775809},\"tensors\":[]}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: integer out of range at byte 17");
    expect_json("{\"metadata\":{\"x\":01},\"tensors\":[]}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: number with a leading zero at byte 18");
    expect_json("{\"metadata\":{},\"tensors\":[],}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: expected a string key at byte 28");
    expect_json("{\"metadata\":{},\"tensors\":[]} x", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: unexpected bytes after the JSON value at byte 29");
    expect_json("{\"metadata\":{},\"tensors\":[]", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: unexpected end at byte 27");
    expect_json("{\"metadata\":{\"x\":\"\xff\"},\"tensors\":[]}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: invalid UTF-8 in a string at byte 18");
    expect_json("{\"metadata\":{\"x\":\"\xed\xa0\x80\"},\"tensors\":[]}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: invalid UTF-8 in a string at byte 18");
    expect_json("{\"metadata\":{\"x\":\"\\ud800\"},\"tensors\":[]}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: unpaired surrogate in a \\u escape at byte 18");
    expect_json("{\"metadata\":{\"x\":\"\\q\"},\"tensors\":[]}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: bad escape in a string at byte 18");
    expect_json("{\"metadata\":{\"x\":\"a\tb\"},\"tensors\":[]}", false, 0, false, RB_ERR_CORRUPT,
                "crafted.rbt: the header is not valid JSON: control character in a string at byte 19");
    /* A NUL byte inside the header. */
    {
        size_t size;
        const char *doc = "{\"metadata\":{},\"tensors\":[]}";
        unsigned char *bytes = craft("{\"metadata\":{},\"tensors\":[]}?", false, 0, false, &size);
        bytes[32 + strlen(doc)] = '\0';
        wr32(bytes + 24, test_crc32(bytes + 32, strlen(doc) + 1));
        expect_parse(bytes, size, 0, RB_ERR_CORRUPT, "crafted.rbt: the header is not valid JSON: NUL byte at byte 28");
        free(bytes);
    }
    /* Nesting: 64 levels are fine, 65 are not. */
    {
        char deep[400];
        size_t n = 0;
        n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"metadata\":");
        for (int i = 0; i < 63; i++)
            deep[n++] = '[';
        for (int i = 0; i < 63; i++)
            deep[n++] = ']';
        snprintf(deep + n, sizeof deep - n, ",\"tensors\":[]}");
        expect_json(deep, false, 0, false, RB_ERR_CORRUPT, "crafted.rbt: the header's \"metadata\" is not an object");
        n = (size_t)snprintf(deep, sizeof deep, "{\"metadata\":");
        for (int i = 0; i < 64; i++)
            deep[n++] = '[';
        for (int i = 0; i < 64; i++)
            deep[n++] = ']';
        snprintf(deep + n, sizeof deep - n, ",\"tensors\":[]}");
        snprintf(want, sizeof want, "crafted.rbt: the header is not valid JSON: nesting too deep at byte %d", 12 + 63);
        expect_json(deep, false, 0, false, RB_ERR_CORRUPT, want);
    }
}
END_TEST

/* ------------------------------------------------------------ API misuse */

START_TEST(misuse_is_refused_and_changes_nothing)
{
    rb_checkpoint *c;
    rb_checkpoint_tensor t;
    float v[4] = {1, 2, 3, 4};
    int64_t s4[1] = {4}, neg[2] = {2, -2}, nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1},
            big[2] = {INT64_MAX, 2}, zero[2] = {3, 0};
    char path[PATH_MAX + 32];

    ck_assert_int_eq(rb_checkpoint_create(&c), RB_OK);
    ck_assert_int_eq(rb_checkpoint_add(c, "layer1.0.conv1.weight", RB_DTYPE_F32, 1, s4, v), RB_OK);
    ck_assert_int_eq(rb_checkpoint_add(c, "layer1.0.conv1.weight", RB_DTYPE_F32, 1, s4, v), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "checkpoint add: tensor 'layer1.0.conv1.weight' is already in the checkpoint");
    ck_assert_int_eq(rb_checkpoint_add(c, "", RB_DTYPE_F32, 1, s4, v), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "checkpoint add: the tensor name is empty");
    ck_assert_int_eq(rb_checkpoint_add(c, NULL, RB_DTYPE_F32, 1, s4, v), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "checkpoint add: the tensor name is NULL");
    ck_assert_int_eq(rb_checkpoint_add(c, "x", RB_DTYPE_F32, 1, s4, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "checkpoint add: tensor 'x': data is NULL for 16 bytes");
    ck_assert_int_eq(rb_checkpoint_add(c, "x", (rb_dtype)42, 1, s4, v), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "checkpoint add: tensor 'x': unknown dtype 42");
    ck_assert_int_eq(rb_checkpoint_add(c, "x", RB_DTYPE_F32, 2, neg, v), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "checkpoint add: tensor 'x': dimension 1 is -2, negative");
    ck_assert_int_eq(rb_checkpoint_add(c, "x", RB_DTYPE_F32, 9, nine, v), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "checkpoint add: tensor 'x': 9 dimensions; a tensor has 0 to 8");
    ck_assert_int_eq(rb_checkpoint_add(c, "x", RB_DTYPE_F32, -1, nine, v), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_checkpoint_add(c, "x", RB_DTYPE_F32, 2, NULL, v), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "checkpoint add: tensor 'x': the shape is NULL");
    ck_assert_int_eq(rb_checkpoint_add(c, "x", RB_DTYPE_U8, 2, big, v), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(),
                     "checkpoint add: tensor 'x': the byte size of shape [9223372036854775807, 2] overflows");
    ck_assert_int_eq(rb_checkpoint_add(c, "bad\xff", RB_DTYPE_F32, 1, s4, v), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "checkpoint add: the tensor name 'bad\xff' is not valid UTF-8");
    ck_assert_uint_eq(rb_checkpoint_count(c), 1);
    /* NULL data is fine for an empty tensor (and for nothing else). */
    ck_assert_int_eq(rb_checkpoint_add(c, "none", RB_DTYPE_I64, 2, zero, NULL), RB_OK);
    ck_assert_int_eq(rb_checkpoint_find(c, "none", &t), RB_OK);
    ck_assert_uint_eq(t.nbytes, 0);
    ck_assert_ptr_nonnull(t.data);

    /* Metadata must be one JSON object. */
    ck_assert_int_eq(rb_checkpoint_set_metadata(c, "{\"a\":1}"), RB_OK);
    ck_assert_int_eq(rb_checkpoint_set_metadata(c, "[1,2]"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "checkpoint metadata must be a JSON object, not an array");
    ck_assert_int_eq(rb_checkpoint_set_metadata(c, "\"{}\""), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "checkpoint metadata must be a JSON object, not a string");
    ck_assert_int_eq(rb_checkpoint_set_metadata(c, " 12 "), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "checkpoint metadata must be a JSON object, not a number");
    ck_assert_int_eq(rb_checkpoint_set_metadata(c, "null"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "checkpoint metadata must be a JSON object, not null");
    ck_assert_int_eq(rb_checkpoint_set_metadata(c, "{\"a\":"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "checkpoint metadata is not valid JSON: unexpected end at byte 5");
    ck_assert_int_eq(rb_checkpoint_set_metadata(c, "{\"a\":1,\"a\":2}"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "checkpoint metadata is not valid JSON: duplicate key 'a' in the object at byte 0");
    ck_assert_int_eq(rb_checkpoint_set_metadata(c, "{} {}"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_checkpoint_set_metadata(c, ""), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_checkpoint_set_metadata(c, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_checkpoint_metadata(c), "{\"a\":1}");

    /* Lookups. */
    ck_assert_int_eq(rb_checkpoint_find(c, "layer1.0.conv1.weigth", &t), RB_ERR_NOT_FOUND);
    ck_assert_str_eq(rb_last_error(),
                     "the checkpoint has no tensor 'layer1.0.conv1.weigth'; did you mean 'layer1.0.conv1.weight'?");
    ck_assert_int_eq(rb_checkpoint_find(c, "fc.bias", &t), RB_ERR_NOT_FOUND);
    ck_assert_str_eq(rb_last_error(), "the checkpoint has no tensor 'fc.bias' (it holds 2 tensors)");
    ck_assert_int_eq(rb_checkpoint_get(c, 2, &t), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "the checkpoint has 2 tensors; index 2 is out of range");

    /* Loaded checkpoints name their file. */
    snprintf(path, sizeof path, "%s/m.rbt", dir);
    ck_assert_int_eq(rb_checkpoint_save(c, path, 100), RB_ERR_INVALID_ARGUMENT);
    ck_assert_msg(starts_with(rb_last_error(), "saving "), "%s", rb_last_error());
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_int_eq(rb_checkpoint_save(c, path, 1), RB_OK);
    rb_checkpoint_destroy(c);
    ck_assert_int_eq(rb_checkpoint_load(&c, path, RB_CHECKPOINT_INDEX_ONLY), RB_OK);
    ck_assert_int_eq(rb_checkpoint_find(c, "layer1.0.conv1.weigth", &t), RB_ERR_NOT_FOUND);
    {
        char want[PATH_MAX + 200];
        snprintf(want, sizeof want, "%s has no tensor 'layer1.0.conv1.weigth'; did you mean 'layer1.0.conv1.weight'?",
                 path);
        ck_assert_str_eq(rb_last_error(), want);
    }
    rb_checkpoint_destroy(c);
    rb_checkpoint_destroy(NULL);

    /* A missing file. */
    snprintf(path, sizeof path, "%s/missing.rbt", dir);
    ck_assert_int_eq(rb_checkpoint_load(&c, path, 0), RB_ERR_NOT_FOUND);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(rb_last_error(), path) != NULL, "%s", rb_last_error());
}
END_TEST

/* ------------------------------------------------------------ atomic saves */

static rb_checkpoint *one_tensor(float value)
{
    rb_checkpoint *c;
    float v[3] = {value, value, value};
    int64_t s[1] = {3};
    ck_assert_int_eq(rb_checkpoint_create(&c), RB_OK);
    ck_assert_int_eq(rb_checkpoint_add(c, "w", RB_DTYPE_F32, 1, s, v), RB_OK);
    return c;
}

static float first_value(const char *path)
{
    rb_checkpoint *c;
    rb_checkpoint_tensor t;
    float v;
    ck_assert_int_eq(rb_checkpoint_load(&c, path, 0), RB_OK);
    ck_assert_int_eq(rb_checkpoint_find(c, "w", &t), RB_OK);
    memcpy(&v, t.data, sizeof v);
    rb_checkpoint_destroy(c);
    return v;
}

START_TEST(saves_replace_whole_files_or_nothing)
{
    char path[PATH_MAX + 32], longp[PATH_MAX + 300], sub[PATH_MAX + 32], nodir[PATH_MAX + 64];
    char want[PATH_MAX + 400], name[251];
    rb_checkpoint *one = one_tensor(1), *two_ = one_tensor(2);
    unsigned char *before, *after;
    size_t nb, na;

    /* Saving over a good file replaces it. */
    snprintf(path, sizeof path, "%s/model.rbt", dir);
    ck_assert_int_eq(rb_checkpoint_save(one, path, 0), RB_OK);
    ck_assert_float_eq(first_value(path), 1);
    ck_assert_int_eq(rb_checkpoint_save(two_, path, 0), RB_OK);
    ck_assert_float_eq(first_value(path), 2);
    ck_assert_int_eq(count_temp_files(dir), 0);

    /* The destination is a folder: rename fails, nothing else changes. */
    before = read_bytes(path, &nb);
    snprintf(sub, sizeof sub, "%s/folder.rbt", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    ck_assert_int_eq(rb_checkpoint_save(one, sub, 0), RB_ERR_IO);
    snprintf(want, sizeof want, "cannot replace %s: Is a directory", sub);
    ck_assert_str_eq(rb_last_error(), want);
    ck_assert_int_eq(count_temp_files(dir), 0);
    after = read_bytes(path, &na);
    ck_assert_uint_eq(na, nb);
    ck_assert_mem_eq(after, before, nb);
    free(after);

    /* The folder does not exist. */
    snprintf(nodir, sizeof nodir, "%s/no/such/folder/model.rbt", dir);
    ck_assert_int_eq(rb_checkpoint_save(one, nodir, 0), RB_ERR_IO);
    ck_assert_msg(strstr(rb_last_error(), nodir) != NULL, "%s", rb_last_error());

    /* An existing good file whose name leaves no room for the temporary
     * file's suffix in the file system's name limit: the save fails before
     * the old file is touched. */
    memset(name, 'm', 250);
    name[250] = '\0';
    snprintf(longp, sizeof longp, "%s/%s", dir, name);
    ck_assert_int_eq(rb_checkpoint_save(two_, path, 0), RB_OK);
    ck_assert_int_eq(rename(path, longp), 0); /* saving there directly fails too */
    free(before);
    before = read_bytes(longp, &nb);
    ck_assert_int_eq(rb_checkpoint_save(one, longp, 0), RB_ERR_IO);
    ck_assert_msg(strstr(rb_last_error(), "cannot create a temporary file next to") != NULL, "%s", rb_last_error());
    after = read_bytes(longp, &na);
    ck_assert_uint_eq(na, nb);
    ck_assert_mem_eq(after, before, nb);
    ck_assert_float_eq(first_value(longp), 2);
    ck_assert_int_eq(count_temp_files(dir), 0);

    /* A bad argument fails before anything is written. */
    ck_assert_int_eq(rb_checkpoint_save(one, longp, 1000), RB_ERR_INVALID_ARGUMENT);
    free(after);
    after = read_bytes(longp, &na);
    ck_assert_mem_eq(after, before, nb);
    free(after);
    free(before);
    rb_checkpoint_destroy(one);
    rb_checkpoint_destroy(two_);
}
END_TEST

/* A FIFO, a folder and a character device are refused at once, never
 * waited on: opening a FIFO for reading used to block until a writer came.
 * alarm() turns a regression into a failure (SIGALRM) instead of a hang. */
START_TEST(special_files_are_refused_without_blocking)
{
    char fifo[PATH_MAX + 16], msg[PATH_MAX + 64];
    const char *paths[3];
    const char *kinds[] = {"a FIFO", "a folder", "a character device"};
    rb_checkpoint *ck = (rb_checkpoint *)1;
    snprintf(fifo, sizeof fifo, "%s/x.rbt", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    paths[0] = fifo;
    paths[1] = dir;
    paths[2] = "/dev/null";
    alarm(10);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(rb_checkpoint_load(&ck, paths[i], 0), RB_ERR_IO);
        ck_assert_ptr_null(ck);
        snprintf(msg, sizeof msg, "%s is not a regular file (it is %s)", paths[i], kinds[i]);
        ck_assert_str_eq(rb_last_error(), msg);
        ck_assert_int_eq(rb_checkpoint_load(&ck, paths[i], RB_CHECKPOINT_INDEX_ONLY), RB_ERR_IO);
    }
    alarm(0);
    unlink(fifo);
}
END_TEST

/* NaN and infinities are counted in f32 and bf16 tensors (checksums pass:
 * they were saved faithfully), other dtypes never, and check_finite names
 * the first such tensor with its counts and first index. */
START_TEST(non_finite_values_are_counted_and_named)
{
    rb_checkpoint *ck, *back;
    rb_checkpoint_tensor t;
    rb_nonfinite_count c;
    char path[PATH_MAX + 16], want[PATH_MAX + 256];
    float f[6] = {1, 2, 3, 4, 5, 6};
    uint16_t b[4] = {0x3f80, 0x7fc0, 0xff80, 0x7f80}; /* 1, NaN, -Inf, +Inf */
    int32_t ints[2] = {0x7fc00000, -1};             /* NaN's bits, as an integer: finite */
    snprintf(path, sizeof path, "%s/n.rbt", dir);
    ck_assert_int_eq(rb_checkpoint_create(&ck), RB_OK);
    ck_assert_int_eq(rb_checkpoint_add(ck, "ok", RB_DTYPE_F32, 1, (const int64_t[]){6}, f), RB_OK);
    ck_assert_int_eq(rb_checkpoint_add(ck, "ints", RB_DTYPE_I32, 1, (const int64_t[]){2}, ints), RB_OK);
    f[4] = NAN;
    f[2] = -INFINITY;
    f[5] = NAN;
    ck_assert_int_eq(rb_checkpoint_add(ck, "bad", RB_DTYPE_F32, 2, (const int64_t[]){2, 3}, f), RB_OK);
    ck_assert_int_eq(rb_checkpoint_add(ck, "half", RB_DTYPE_BF16, 1, (const int64_t[]){4}, b), RB_OK);
    ck_assert_int_eq(rb_checkpoint_save(ck, path, 0), RB_OK);
    rb_checkpoint_destroy(ck);

    ck_assert_int_eq(rb_checkpoint_load(&back, path, 0), RB_OK); /* checksums hold */
    ck_assert_int_eq(rb_checkpoint_find(back, "ok", &t), RB_OK);
    rb_checkpoint_tensor_nonfinite(&t, &c);
    ck_assert(c.nan == 0 && c.inf == 0 && c.first == -1);
    ck_assert_int_eq(rb_checkpoint_find(back, "ints", &t), RB_OK);
    rb_checkpoint_tensor_nonfinite(&t, &c);
    ck_assert(c.nan == 0 && c.inf == 0 && c.first == -1);
    ck_assert_int_eq(rb_checkpoint_find(back, "bad", &t), RB_OK);
    rb_checkpoint_tensor_nonfinite(&t, &c);
    ck_assert_int_eq(c.nan, 2);
    ck_assert_int_eq(c.inf, 1);
    ck_assert_int_eq(c.first, 2);
    ck_assert_int_eq(rb_checkpoint_find(back, "half", &t), RB_OK);
    rb_checkpoint_tensor_nonfinite(&t, &c);
    ck_assert_int_eq(c.nan, 1);
    ck_assert_int_eq(c.inf, 2);
    ck_assert_int_eq(c.first, 1);
    ck_assert_int_eq(rb_checkpoint_check_finite(back, NULL), RB_ERR_CORRUPT);
    snprintf(want, sizeof want,
             "%s: tensor 'bad' holds 2 NaN and 1 infinite values (the first at flat index 2): the model diverged or "
             "the file was damaged; use an earlier checkpoint", path);
    ck_assert_str_eq(rb_last_error(), want);
    rb_checkpoint_destroy(back);
    /* Index-only loads have no data to count. */
    ck_assert_int_eq(rb_checkpoint_load(&back, path, RB_CHECKPOINT_INDEX_ONLY), RB_OK);
    ck_assert_int_eq(rb_checkpoint_check_finite(back, "x"), RB_OK);
    rb_checkpoint_destroy(back);
    /* A finite checkpoint passes. */
    ck_assert_int_eq(rb_checkpoint_create(&ck), RB_OK);
    f[2] = f[4] = f[5] = 0;
    ck_assert_int_eq(rb_checkpoint_add(ck, "ok", RB_DTYPE_F32, 1, (const int64_t[]){6}, f), RB_OK);
    ck_assert_int_eq(rb_checkpoint_check_finite(ck, "x"), RB_OK);
    rb_checkpoint_destroy(ck);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, round_trip_keeps_every_dtype_shape_and_byte);
    tcase_add_test(tc, empty_checkpoint_round_trips);
    tcase_add_test(tc, every_truncation_is_refused_as_corrupt);
    tcase_add_test(tc, every_flipped_byte_is_detected);
    tcase_add_test(tc, flips_name_the_header_crc_and_the_tensor);
    tcase_add_test(tc, crafted_files_that_are_right_load);
    tcase_add_test(tc, lying_frame_places_are_refused);
    tcase_add_test(tc, lying_frame_contents_are_refused);
    tcase_add_test(tc, lying_preambles_are_refused);
    tcase_add_test(tc, lying_index_entries_are_refused);
    tcase_add_test(tc, lying_header_documents_are_refused);
    tcase_add_test(tc, misuse_is_refused_and_changes_nothing);
    tcase_add_test(tc, saves_replace_whole_files_or_nothing);
    tcase_add_test(tc, special_files_are_refused_without_blocking);
    tcase_add_test(tc, non_finite_values_are_counted_and_named);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
