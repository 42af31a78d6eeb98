/* The .rbt checkpoint format (see robusta/checkpoint.h for the layout).
 *
 * Loading is a pure function of the bytes (rb_checkpoint_parse): every
 * length, offset and count read from the file is checked against the bytes
 * that are really there before it is used, so no input can make the reader
 * touch memory outside the buffer, and every refusal is one line naming the
 * file, the tensor and the check.
 *
 * JSON: the header, and metadata given to rb_checkpoint_set_metadata, go
 * through the library's one strict JSON reader (rb_json_parse_object in
 * sys/json.h). */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <robusta/checkpoint.h>
#include <robusta/suggest.h>
#include <robusta/status.h>
#include <robusta/tensor.h>

#include "sys/internal.h"
#include "sys/json.h"

#define PREAMBLE 32
#define ALIGNMENT 64
/* JSON nesting accepted in the header (metadata included). */
#define JSON_MAX_DEPTH 64
/* A zstd block regenerates at most 128 KiB and takes at least 4 bytes (a
 * 3-byte block header and a 1-byte RLE payload), so a frame of L bytes
 * cannot hold more than 32768·L bytes: a bound that refuses absurd content
 * sizes before anything is allocated for them. */
#define ZSTD_MAX_RATIO 32768u
/* Frame_Header_Descriptor bit that says a frame ends with a checksum. */
#define ZSTD_FHD_CHECKSUM 0x04u

typedef struct ck_tensor {
    char *name;
    rb_dtype dtype;
    int ndim;
    int64_t shape[RB_MAX_DIMS];
    int64_t numel;
    size_t nbytes;
    void *data; /* 64-byte aligned; NULL for index-only loads */
    uint64_t offset;
    uint64_t stored_bytes;
    uint32_t crc32;
} ck_tensor;

struct rb_checkpoint {
    char *metadata; /* compact JSON object */
    char *origin;   /* the file it was read from, for messages; NULL if built */
    ck_tensor *tensors;
    size_t count, cap;
};

/* ------------------------------------------------------------ small helpers */

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

/* zlib's crc32 takes 32-bit lengths. */
static uint32_t crc32_of(const void *data, size_t size)
{
    const unsigned char *p = data;
    uLong crc = crc32(0L, Z_NULL, 0);
    while (size > 0) {
        uInt chunk = size > (1u << 30) ? (1u << 30) : (uInt)size;
        crc = crc32(crc, p, chunk);
        p += chunk;
        size -= chunk;
    }
    return (uint32_t)crc;
}

/* 64-byte aligned memory, at least 64 bytes (aligned_alloc wants a size that
 * is a multiple of the alignment). */
static void *alloc_aligned(size_t size)
{
    if (size > SIZE_MAX - (ALIGNMENT - 1))
        return NULL;
    size = (size + ALIGNMENT - 1) & ~(size_t)(ALIGNMENT - 1);
    return aligned_alloc(ALIGNMENT, size ? size : ALIGNMENT);
}

static rb_dtype dtype_from_str(const char *s)
{
    static const rb_dtype all[] = {RB_DTYPE_F32, RB_DTYPE_BF16, RB_DTYPE_U8, RB_DTYPE_I32, RB_DTYPE_I64};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, rb_dtype_str(all[i])) == 0)
            return all[i];
    return (rb_dtype)0;
}

/* numel and byte size of a shape; false when either overflows int64 (or
 * size_t). A shape with a zero dimension is empty, whatever the others. */
static bool shape_size(rb_dtype dtype, int ndim, const int64_t *shape, int64_t *numel, size_t *nbytes)
{
    uint64_t n = 1, limit = (uint64_t)INT64_MAX, esize = rb_dtype_size(dtype);
    if ((uint64_t)SIZE_MAX < limit)
        limit = (uint64_t)SIZE_MAX;
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0) {
            *numel = 0;
            *nbytes = 0;
            return true;
        }
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (n > limit / d)
            return false;
        n *= d;
    }
    if (n > limit / esize)
        return false;
    *numel = (int64_t)n;
    *nbytes = (size_t)(n * esize);
    return true;
}

static char *to_compact(json_object *o)
{
    return rb_strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* ------------------------------------------------------------ building */

rb_status rb_checkpoint_create(rb_checkpoint **out)
{
    rb_checkpoint *c;
    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_checkpoint_create: out is NULL");
    *out = NULL;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");
    c->metadata = rb_strdup("{}");
    if (c->metadata == NULL) {
        free(c);
        return RB_ERR_OUT_OF_MEMORY;
    }
    *out = c;
    return RB_OK;
}

void rb_checkpoint_destroy(rb_checkpoint *ckpt)
{
    if (ckpt == NULL)
        return;
    for (size_t i = 0; i < ckpt->count; i++) {
        free(ckpt->tensors[i].name);
        free(ckpt->tensors[i].data);
    }
    free(ckpt->tensors);
    free(ckpt->metadata);
    free(ckpt->origin);
    free(ckpt);
}

rb_status rb_checkpoint_set_metadata(rb_checkpoint *ckpt, const char *json)
{
    rb_json_error err;
    json_object *o;
    char *text;
    size_t len;

    if (ckpt == NULL || json == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "checkpoint metadata: %s is NULL",
                            ckpt == NULL ? "the checkpoint" : "the JSON text");
    len = strlen(json);
    if (len > RB_CHECKPOINT_MAX_HEADER)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "checkpoint metadata is %zu bytes, more than the format's header limit of %u",
                            len, RB_CHECKPOINT_MAX_HEADER);
    switch (rb_json_parse_object(json, len, JSON_MAX_DEPTH, &o, &err)) {
    case RB_JSON_OK:
        break;
    case RB_JSON_NOT_OBJECT:
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "checkpoint metadata must be a JSON object, not %s%s",
                            strcmp(err.kind, "array") == 0 ? "an " : strcmp(err.kind, "null") == 0 ? "" : "a ",
                            err.kind);
    case RB_JSON_NO_MEMORY:
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "checkpoint metadata: out of memory");
    default:
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "checkpoint metadata is not valid JSON: %s at byte %zu",
                            err.what, err.at);
    }
    text = to_compact(o);
    json_object_put(o);
    if (text == NULL)
        return RB_ERR_OUT_OF_MEMORY;
    free(ckpt->metadata);
    ckpt->metadata = text;
    return RB_OK;
}

const char *rb_checkpoint_metadata(const rb_checkpoint *ckpt)
{
    return ckpt != NULL ? ckpt->metadata : NULL;
}

static long find_index(const rb_checkpoint *ckpt, const char *name)
{
    for (size_t i = 0; i < ckpt->count; i++)
        if (strcmp(ckpt->tensors[i].name, name) == 0)
            return (long)i;
    return -1;
}

static rb_status grow(rb_checkpoint *ckpt, size_t want)
{
    ck_tensor *t;
    size_t cap;
    if (want <= ckpt->cap)
        return RB_OK;
    cap = ckpt->cap ? ckpt->cap : 16;
    while (cap < want)
        cap *= 2;
    t = realloc(ckpt->tensors, cap * sizeof *t);
    if (t == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "checkpoint: out of memory for %zu tensors", want);
    ckpt->tensors = t;
    ckpt->cap = cap;
    return RB_OK;
}

rb_status rb_checkpoint_add(rb_checkpoint *ckpt, const char *name, rb_dtype dtype, int ndim, const int64_t *shape,
                            const void *data)
{
    ck_tensor t = {0};
    char dims[160];
    rb_status s;

    if (ckpt == NULL || name == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "checkpoint add: %s is NULL",
                            ckpt == NULL ? "the checkpoint" : "the tensor name");
    if (name[0] == '\0')
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "checkpoint add: the tensor name is empty");
    if (!rb_utf8_valid(name))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "checkpoint add: the tensor name '%s' is not valid UTF-8",
                            name);
    if (find_index(ckpt, name) >= 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "checkpoint add: tensor '%s' is already in the checkpoint",
                            name);
    if (rb_dtype_size(dtype) == 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "checkpoint add: tensor '%s': unknown dtype %d", name,
                            (int)dtype);
    if (ndim < 0 || ndim > RB_MAX_DIMS)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "checkpoint add: tensor '%s': %d dimensions; a tensor has 0 to %d", name, ndim,
                            RB_MAX_DIMS);
    if (ndim > 0 && shape == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "checkpoint add: tensor '%s': the shape is NULL", name);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "checkpoint add: tensor '%s': dimension %d is %lld, negative", name, i,
                                (long long)shape[i]);
    if (!shape_size(dtype, ndim, shape, &t.numel, &t.nbytes))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "checkpoint add: tensor '%s': the byte size of shape %s overflows",
                            name, rb_shape_format(ndim, shape, dims, sizeof dims));
    if (data == NULL && t.nbytes > 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "checkpoint add: tensor '%s': data is NULL for %zu bytes", name,
                            t.nbytes);
    if ((s = grow(ckpt, ckpt->count + 1)) != RB_OK)
        return s;
    t.dtype = dtype;
    t.ndim = ndim;
    if (ndim > 0)
        memcpy(t.shape, shape, (size_t)ndim * sizeof *shape);
    t.name = rb_strdup(name);
    t.data = alloc_aligned(t.nbytes);
    if (t.name == NULL || t.data == NULL) {
        free(t.name);
        free(t.data);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "checkpoint add: tensor '%s': cannot allocate %zu bytes", name,
                            t.nbytes);
    }
    if (t.nbytes > 0)
        memcpy(t.data, data, t.nbytes);
    t.crc32 = crc32_of(t.data, t.nbytes);
    ckpt->tensors[ckpt->count++] = t;
    return RB_OK;
}

size_t rb_checkpoint_count(const rb_checkpoint *ckpt)
{
    return ckpt != NULL ? ckpt->count : 0;
}

static void describe(const ck_tensor *t, rb_checkpoint_tensor *out)
{
    memset(out, 0, sizeof *out);
    out->name = t->name;
    out->dtype = t->dtype;
    out->ndim = t->ndim;
    memcpy(out->shape, t->shape, sizeof out->shape);
    out->numel = t->numel;
    out->nbytes = t->nbytes;
    out->data = t->data;
    out->offset = t->offset;
    out->stored_bytes = t->stored_bytes;
    out->crc32 = t->crc32;
}

rb_status rb_checkpoint_get(const rb_checkpoint *ckpt, size_t index, rb_checkpoint_tensor *out)
{
    if (ckpt == NULL || out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_checkpoint_get: %s is NULL",
                            ckpt == NULL ? "the checkpoint" : "out");
    if (index >= ckpt->count)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s has %zu tensors; index %zu is out of range",
                            ckpt->origin ? ckpt->origin : "the checkpoint", ckpt->count, index);
    describe(&ckpt->tensors[index], out);
    return RB_OK;
}

void rb_checkpoint_tensor_nonfinite(const rb_checkpoint_tensor *t, rb_nonfinite_count *out)
{
    memset(out, 0, sizeof *out);
    out->first = -1;
    if (t == NULL || t->data == NULL)
        return;
    if (t->dtype == RB_DTYPE_F32) {
        const unsigned char *p = t->data;
        for (int64_t i = 0; i < t->numel; i++) {
            float v;
            memcpy(&v, p + (size_t)i * sizeof v, sizeof v); /* no alignment assumed */
            if (isfinite(v))
                continue;
            if (isnan(v))
                out->nan++;
            else
                out->inf++;
            if (out->first < 0)
                out->first = i;
        }
    } else if (t->dtype == RB_DTYPE_BF16) {
        /* bf16 is the top half of an f32: all-ones exponent is NaN or Inf. */
        const unsigned char *p = t->data;
        for (int64_t i = 0; i < t->numel; i++) {
            unsigned bits = (unsigned)p[2 * i] | (unsigned)p[2 * i + 1] << 8;
            if ((bits & 0x7f80u) != 0x7f80u)
                continue;
            if (bits & 0x007fu)
                out->nan++;
            else
                out->inf++;
            if (out->first < 0)
                out->first = i;
        }
    }
}

rb_status rb_checkpoint_check_finite(const rb_checkpoint *ckpt, const char *what)
{
    if (ckpt == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_checkpoint_check_finite: the checkpoint is NULL");
    if (what == NULL)
        what = ckpt->origin ? ckpt->origin : "the checkpoint";
    for (size_t i = 0; i < ckpt->count; i++) {
        rb_checkpoint_tensor t;
        rb_nonfinite_count c;
        describe(&ckpt->tensors[i], &t);
        rb_checkpoint_tensor_nonfinite(&t, &c);
        if (c.nan + c.inf > 0)
            return rb_error_set(RB_ERR_CORRUPT,
                                "%s: tensor '%s' holds %lld NaN and %lld infinite values (the first at flat index "
                                "%lld): the model diverged or the file was damaged; use an earlier checkpoint",
                                what, t.name, (long long)c.nan, (long long)c.inf, (long long)c.first);
    }
    return RB_OK;
}

rb_status rb_checkpoint_find(const rb_checkpoint *ckpt, const char *name, rb_checkpoint_tensor *out)
{
    const char *where, *near = NULL;
    const char **names;
    long i;
    if (ckpt == NULL || name == NULL || out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_checkpoint_find: %s is NULL",
                            ckpt == NULL ? "the checkpoint" : name == NULL ? "the name" : "out");
    i = find_index(ckpt, name);
    if (i >= 0) {
        describe(&ckpt->tensors[i], out);
        return RB_OK;
    }
    where = ckpt->origin ? ckpt->origin : "the checkpoint";
    names = malloc((ckpt->count ? ckpt->count : 1) * sizeof *names);
    if (names != NULL) {
        for (size_t k = 0; k < ckpt->count; k++)
            names[k] = ckpt->tensors[k].name;
        near = rb_suggest(name, names, ckpt->count);
    }
    if (near != NULL)
        rb_error_set(RB_ERR_NOT_FOUND, "%s has no tensor '%s'; did you mean '%s'?", where, name, near);
    else
        rb_error_set(RB_ERR_NOT_FOUND, "%s has no tensor '%s' (it holds %zu tensors)", where, name, ckpt->count);
    free(names);
    return RB_ERR_NOT_FOUND;
}

/* ------------------------------------------------------------ saving */

typedef struct frame {
    void *bytes;
    size_t size;
} frame;

static rb_status compress_all(const rb_checkpoint *ckpt, const char *path, int level, frame *frames)
{
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    rb_status s = RB_OK;
    if (cctx == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "saving %s: cannot create a zstd context", path);
    for (size_t i = 0; i < ckpt->count && s == RB_OK; i++) {
        const ck_tensor *t = &ckpt->tensors[i];
        size_t bound = ZSTD_compressBound(t->nbytes), r;
        void *shrunk;
        if (ZSTD_isError(bound) || bound == 0) {
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "saving %s: tensor '%s' (%zu bytes) is too large for zstd",
                             path, t->name, t->nbytes);
            break;
        }
        frames[i].bytes = malloc(bound);
        if (frames[i].bytes == NULL) {
            s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "saving %s: tensor '%s': cannot allocate %zu bytes", path,
                             t->name, bound);
            break;
        }
        ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
        r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
        if (!ZSTD_isError(r))
            r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
        if (!ZSTD_isError(r))
            r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
        if (!ZSTD_isError(r))
            r = ZSTD_CCtx_setPledgedSrcSize(cctx, (unsigned long long)t->nbytes);
        if (!ZSTD_isError(r))
            r = ZSTD_compress2(cctx, frames[i].bytes, bound, t->data, t->nbytes);
        if (ZSTD_isError(r)) {
            s = rb_error_set(RB_ERR_INTERNAL, "saving %s: tensor '%s': zstd: %s", path, t->name,
                             ZSTD_getErrorName(r));
            break;
        }
        frames[i].size = r;
        shrunk = realloc(frames[i].bytes, r);
        if (shrunk != NULL)
            frames[i].bytes = shrunk;
    }
    ZSTD_freeCCtx(cctx);
    return s;
}

/* The header JSON for frames of the given sizes, compact. */
static rb_status build_header(const rb_checkpoint *ckpt, const char *path, const frame *frames, char **out)
{
    json_object *root = json_object_new_object(), *meta, *list = json_object_new_array();
    uint64_t offset = 0;
    rb_json_error err;
    rb_json_fault r;

    *out = NULL;
    r = rb_json_parse_object(ckpt->metadata, strlen(ckpt->metadata), JSON_MAX_DEPTH, &meta, &err);
    if (root == NULL || list == NULL || r != RB_JSON_OK) {
        json_object_put(root);
        json_object_put(list);
        json_object_put(meta);
        if (r != RB_JSON_OK && r != RB_JSON_NO_MEMORY) /* set_metadata checked it: cannot happen */
            return rb_error_set(RB_ERR_INTERNAL, "saving %s: stored metadata is not a JSON object", path);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "saving %s: out of memory", path);
    }
    json_object_object_add(root, "metadata", meta);
    json_object_object_add(root, "tensors", list);
    for (size_t i = 0; i < ckpt->count; i++) {
        const ck_tensor *t = &ckpt->tensors[i];
        json_object *e = json_object_new_object(), *shape = json_object_new_array();
        if (e == NULL || shape == NULL) {
            json_object_put(e);
            json_object_put(shape);
            json_object_put(root);
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "saving %s: out of memory", path);
        }
        for (int d = 0; d < t->ndim; d++)
            json_object_array_add(shape, json_object_new_int64(t->shape[d]));
        json_object_object_add(e, "name", json_object_new_string(t->name));
        json_object_object_add(e, "dtype", json_object_new_string(rb_dtype_str(t->dtype)));
        json_object_object_add(e, "shape", shape);
        json_object_object_add(e, "offset", json_object_new_int64((int64_t)offset));
        json_object_object_add(e, "length", json_object_new_int64((int64_t)frames[i].size));
        json_object_object_add(e, "crc32", json_object_new_int64((int64_t)t->crc32));
        json_object_array_add(list, e);
        offset += frames[i].size;
    }
    *out = to_compact(root);
    json_object_put(root);
    return *out != NULL ? RB_OK : RB_ERR_OUT_OF_MEMORY;
}

rb_status rb_checkpoint_save(const rb_checkpoint *ckpt, const char *path, int level)
{
    frame *frames;
    char *header = NULL;
    unsigned char pre[PREAMBLE];
    size_t hlen = 0;
    rb_atomic_file af;
    rb_status s;

    if (ckpt == NULL || path == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_checkpoint_save: %s is NULL",
                            ckpt == NULL ? "the checkpoint" : "the path");
    if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "saving %s: zstd level %d is outside %d..%d", path, level,
                            ZSTD_minCLevel(), ZSTD_maxCLevel());
    frames = calloc(ckpt->count ? ckpt->count : 1, sizeof *frames);
    if (frames == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "saving %s: out of memory", path);
    s = compress_all(ckpt, path, level, frames);
    if (s == RB_OK)
        s = build_header(ckpt, path, frames, &header);
    if (s == RB_OK) {
        hlen = strlen(header);
        if (hlen > RB_CHECKPOINT_MAX_HEADER)
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                             "saving %s: the header would be %zu bytes, more than the format's limit of %u "
                             "(too many tensors or too much metadata)",
                             path, hlen, RB_CHECKPOINT_MAX_HEADER);
    }
    if (s == RB_OK) {
        memcpy(pre, RB_CHECKPOINT_MAGIC, 8); /* the 7 letters and their NUL */
        put_u32(pre + 8, RB_CHECKPOINT_VERSION);
        put_u32(pre + 12, 0);
        put_u64(pre + 16, (uint64_t)hlen);
        put_u32(pre + 24, crc32_of(header, hlen));
        put_u32(pre + 28, 0);
        s = rb_atomic_file_open(&af, path);
        if (s == RB_OK) {
            s = rb_atomic_file_write(&af, pre, sizeof pre);
            if (s == RB_OK)
                s = rb_atomic_file_write(&af, header, hlen);
            for (size_t i = 0; i < ckpt->count && s == RB_OK; i++)
                s = rb_atomic_file_write(&af, frames[i].bytes, frames[i].size);
            if (s == RB_OK)
                s = rb_atomic_file_commit(&af);
            else
                rb_atomic_file_abort(&af);
        }
    }
    for (size_t i = 0; i < ckpt->count; i++)
        free(frames[i].bytes);
    free(frames);
    free(header);
    return s;
}

/* ------------------------------------------------------------ loading */

/* Open-addressing set of tensor indices keyed by name, to find duplicates
 * in one pass. */
typedef struct name_set {
    size_t *slots; /* index + 1; 0 is empty */
    size_t mask;
} name_set;

static size_t name_hash(const char *s)
{
    return (size_t)rb_fnv1a(RB_FNV1A_START, s, strlen(s));
}

static bool name_set_init(name_set *set, size_t count)
{
    size_t cap = 16;
    while (cap < 2 * count)
        cap *= 2;
    set->slots = calloc(cap, sizeof *set->slots);
    set->mask = cap - 1;
    return set->slots != NULL;
}

/* Inserts tensor `index`; returns the earlier index with the same name, or
 * -1. */
static long name_set_insert(name_set *set, const ck_tensor *tensors, size_t index)
{
    size_t h = name_hash(tensors[index].name) & set->mask;
    while (set->slots[h] != 0) {
        size_t other = set->slots[h] - 1;
        if (strcmp(tensors[other].name, tensors[index].name) == 0)
            return (long)other;
        h = (h + 1) & set->mask;
    }
    set->slots[h] = index + 1;
    return -1;
}

static const char *const entry_fields[] = {"name", "dtype", "shape", "offset", "length", "crc32"};

/* Reads a non-negative integer field of a tensor entry, at most `max`. */
static rb_status get_uint_field(json_object *entry, const char *key, uint64_t max, const char *what,
                                const char *label, uint64_t *out)
{
    json_object *v;
    int64_t i;
    if (!json_object_object_get_ex(entry, key, &v))
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: missing field \"%s\"", what, label, key);
    if (!json_object_is_type(v, json_type_int))
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: field \"%s\" is not an integer", what, label, key);
    i = json_object_get_int64(v);
    if (i < 0)
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: field \"%s\" is %lld, negative", what, label, key,
                            (long long)i);
    *out = json_object_get_uint64(v); /* exact: the validator refused what json-c would clamp */
    if (*out > max)
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: field \"%s\" is %llu, more than %llu", what, label, key,
                            (unsigned long long)*out, (unsigned long long)max);
    return RB_OK;
}

/* Fills t (name excepted) from a tensor entry and checks its frame's place
 * and zstd frame header. `pos` is where the frame must start. */
static rb_status parse_entry(json_object *e, ck_tensor *t, const char *what, const char *label,
                             const unsigned char *data, uint64_t data_size, uint64_t pos, bool first)
{
    json_object *v;
    const char *dtype;
    char dims[160];
    uint64_t crc;
    size_t fsize;
    unsigned long long content;
    const unsigned char *f;
    rb_status s;

    if (!json_object_object_get_ex(e, "dtype", &v))
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: missing field \"dtype\"", what, label);
    if (!json_object_is_type(v, json_type_string))
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: field \"dtype\" is not a string", what, label);
    dtype = json_object_get_string(v);
    t->dtype = dtype_from_str(dtype);
    if (t->dtype == 0 || strlen(dtype) != (size_t)json_object_get_string_len(v))
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: unknown dtype \"%s\" (expected f32, bf16, u8, i32 or i64)",
                            what, label, dtype);

    if (!json_object_object_get_ex(e, "shape", &v))
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: missing field \"shape\"", what, label);
    if (!json_object_is_type(v, json_type_array))
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: field \"shape\" is not an array", what, label);
    if (json_object_array_length(v) > RB_MAX_DIMS)
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: shape has %zu dimensions, more than %d", what, label,
                            json_object_array_length(v), RB_MAX_DIMS);
    t->ndim = (int)json_object_array_length(v);
    for (int d = 0; d < t->ndim; d++) {
        json_object *dim = json_object_array_get_idx(v, (size_t)d);
        if (!json_object_is_type(dim, json_type_int))
            return rb_error_set(RB_ERR_CORRUPT, "%s: %s: shape[%d] is not an integer", what, label, d);
        t->shape[d] = json_object_get_int64(dim);
        if (t->shape[d] < 0)
            return rb_error_set(RB_ERR_CORRUPT, "%s: %s: shape[%d] is %lld, negative", what, label, d,
                                (long long)t->shape[d]);
        if (t->shape[d] == INT64_MAX && json_object_get_uint64(dim) > (uint64_t)INT64_MAX)
            return rb_error_set(RB_ERR_CORRUPT, "%s: %s: shape[%d] is %llu, more than %lld", what, label, d,
                                (unsigned long long)json_object_get_uint64(dim), (long long)INT64_MAX);
    }
    if (!shape_size(t->dtype, t->ndim, t->shape, &t->numel, &t->nbytes))
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: the byte size of shape %s of %s overflows", what, label,
                            rb_shape_format(t->ndim, t->shape, dims, sizeof dims), rb_dtype_str(t->dtype));

    if ((s = get_uint_field(e, "offset", (uint64_t)INT64_MAX, what, label, &t->offset)) != RB_OK ||
        (s = get_uint_field(e, "length", (uint64_t)INT64_MAX, what, label, &t->stored_bytes)) != RB_OK ||
        (s = get_uint_field(e, "crc32", UINT32_MAX, what, label, &crc)) != RB_OK)
        return s;
    t->crc32 = (uint32_t)crc;

    /* The frame's place: in bounds, then right after the previous one. */
    if (t->stored_bytes == 0)
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: frame length is 0", what, label);
    if (t->offset > data_size || t->stored_bytes > data_size - t->offset)
        return rb_error_set(RB_ERR_CORRUPT,
                            "%s: %s: frame at offset %llu, %llu bytes, ends past the data section (%llu bytes; "
                            "file truncated?)",
                            what, label, (unsigned long long)t->offset, (unsigned long long)t->stored_bytes,
                            (unsigned long long)data_size);
    if (t->offset < pos)
        return rb_error_set(RB_ERR_CORRUPT,
                            "%s: %s: frame at offset %llu overlaps the previous frame, which ends at %llu", what,
                            label, (unsigned long long)t->offset, (unsigned long long)pos);
    if (t->offset > pos) {
        if (first)
            return rb_error_set(RB_ERR_CORRUPT,
                                "%s: %s: frame at offset %llu; the first frame must start the data section at 0",
                                what, label, (unsigned long long)t->offset);
        return rb_error_set(RB_ERR_CORRUPT,
                            "%s: %s: frame at offset %llu leaves a gap after the previous frame, which ends at %llu",
                            what, label, (unsigned long long)t->offset, (unsigned long long)pos);
    }

    /* The zstd frame header: a data frame, with checksum and content size. */
    f = data + t->offset;
    if (t->stored_bytes < 5 || get_u32(f) != ZSTD_MAGICNUMBER)
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: no zstd frame at offset %llu (bad magic number)", what, label,
                            (unsigned long long)t->offset);
    fsize = ZSTD_findFrameCompressedSize(f, (size_t)t->stored_bytes);
    if (ZSTD_isError(fsize))
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: invalid zstd frame: %s", what, label,
                            ZSTD_getErrorName((size_t)fsize));
    if (fsize != t->stored_bytes)
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: the zstd frame is %llu bytes but the index says %llu", what,
                            label, (unsigned long long)fsize, (unsigned long long)t->stored_bytes);
    if (!(f[4] & ZSTD_FHD_CHECKSUM))
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: the zstd frame has no content checksum", what, label);
    content = ZSTD_getFrameContentSize(f, (size_t)t->stored_bytes);
    if (content == ZSTD_CONTENTSIZE_UNKNOWN)
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: the zstd frame does not record its content size", what,
                            label);
    if (content == ZSTD_CONTENTSIZE_ERROR)
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: invalid zstd frame header", what, label);
    if (content != (unsigned long long)t->nbytes)
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: the zstd frame holds %llu bytes but shape %s of %s needs %zu",
                            what, label, content, rb_shape_format(t->ndim, t->shape, dims, sizeof dims),
                            rb_dtype_str(t->dtype), t->nbytes);
    if (t->nbytes / ZSTD_MAX_RATIO > t->stored_bytes)
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s: a zstd frame of %llu bytes cannot hold %zu bytes", what,
                            label, (unsigned long long)t->stored_bytes, t->nbytes);
    return RB_OK;
}

/* Validates the header JSON and fills the index. */
static rb_status parse_index(rb_checkpoint *c, json_object *root, const char *what, const unsigned char *data,
                             uint64_t data_size)
{
    json_object *meta, *list;
    struct json_object_iterator it, end;
    name_set names = {0};
    size_t count;
    uint64_t pos = 0;
    char label[64];
    rb_status s = RB_OK;

    it = json_object_iter_begin(root);
    end = json_object_iter_end(root);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        const char *key = json_object_iter_peek_name(&it);
        if (strcmp(key, "metadata") != 0 && strcmp(key, "tensors") != 0)
            return rb_error_set(RB_ERR_CORRUPT, "%s: the header has an unknown field \"%s\"", what, key);
    }
    if (!json_object_object_get_ex(root, "metadata", &meta))
        return rb_error_set(RB_ERR_CORRUPT, "%s: the header has no \"metadata\" field", what);
    if (!json_object_object_get_ex(root, "tensors", &list))
        return rb_error_set(RB_ERR_CORRUPT, "%s: the header has no \"tensors\" field", what);
    if (!json_object_is_type(meta, json_type_object))
        return rb_error_set(RB_ERR_CORRUPT, "%s: the header's \"metadata\" is not an object", what);
    if (!json_object_is_type(list, json_type_array))
        return rb_error_set(RB_ERR_CORRUPT, "%s: the header's \"tensors\" is not an array", what);

    free(c->metadata);
    if ((c->metadata = to_compact(meta)) == NULL)
        return RB_ERR_OUT_OF_MEMORY;
    count = json_object_array_length(list);
    if ((s = grow(c, count)) != RB_OK)
        return s;
    if (!name_set_init(&names, count))
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu tensors", what, count);

    for (size_t i = 0; i < count && s == RB_OK; i++) {
        json_object *e = json_object_array_get_idx(list, i), *v;
        ck_tensor *t = &c->tensors[i];
        const char *name;
        long dup;

        snprintf(label, sizeof label, "tensor #%zu", i);
        if (!json_object_is_type(e, json_type_object)) {
            s = rb_error_set(RB_ERR_CORRUPT, "%s: %s: the index entry is not an object", what, label);
            break;
        }
        if (!json_object_object_get_ex(e, "name", &v)) {
            s = rb_error_set(RB_ERR_CORRUPT, "%s: %s: missing field \"name\"", what, label);
            break;
        }
        if (!json_object_is_type(v, json_type_string)) {
            s = rb_error_set(RB_ERR_CORRUPT, "%s: %s: field \"name\" is not a string", what, label);
            break;
        }
        name = json_object_get_string(v);
        if (name[0] == '\0') {
            s = rb_error_set(RB_ERR_CORRUPT, "%s: %s: the name is empty", what, label);
            break;
        }
        memset(t, 0, sizeof *t);
        if ((t->name = rb_strdup(name)) == NULL) {
            s = RB_ERR_OUT_OF_MEMORY;
            break;
        }
        c->count = i + 1; /* so that destroy frees the name */
        dup = name_set_insert(&names, c->tensors, i);
        if (dup >= 0) {
            s = rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s' (#%zu): the name is already used by tensor #%ld",
                             what, name, i, dup);
            break;
        }
        it = json_object_iter_begin(e);
        end = json_object_iter_end(e);
        for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
            const char *key = json_object_iter_peek_name(&it);
            size_t k = 0;
            while (k < sizeof entry_fields / sizeof entry_fields[0] && strcmp(key, entry_fields[k]) != 0)
                k++;
            if (k == sizeof entry_fields / sizeof entry_fields[0]) {
                s = rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': unknown field \"%s\"", what, name, key);
                break;
            }
        }
        if (s != RB_OK)
            break;
        {
            /* Labels name the tensor; the prefix keeps long names whole. */
            size_t len = strlen(name) + 16;
            char *named = malloc(len);
            if (named == NULL) {
                s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
                break;
            }
            snprintf(named, len, "tensor '%s'", name);
            s = parse_entry(e, t, what, named, data, data_size, pos, i == 0);
            free(named);
        }
        pos = t->offset + t->stored_bytes;
    }
    free(names.slots);
    if (s != RB_OK)
        return s;
    if (pos != data_size) {
        if (count == 0)
            return rb_error_set(RB_ERR_CORRUPT, "%s: the index lists no tensors but the data section has %llu bytes",
                                what, (unsigned long long)data_size);
        return rb_error_set(RB_ERR_CORRUPT, "%s: %llu bytes follow the last frame (the data section is %llu bytes)",
                            what, (unsigned long long)(data_size - pos), (unsigned long long)data_size);
    }
    return RB_OK;
}

static rb_status decompress_all(rb_checkpoint *c, const char *what, const unsigned char *data)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    rb_status s = RB_OK;
    if (dctx == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: cannot create a zstd context", what);
    for (size_t i = 0; i < c->count && s == RB_OK; i++) {
        ck_tensor *t = &c->tensors[i];
        size_t r;
        uint32_t crc;
        t->data = alloc_aligned(t->nbytes);
        if (t->data == NULL) {
            s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: tensor '%s': cannot allocate %zu bytes", what, t->name,
                             t->nbytes);
            break;
        }
        r = ZSTD_decompressDCtx(dctx, t->data, t->nbytes, data + t->offset, (size_t)t->stored_bytes);
        if (ZSTD_isError(r)) {
            if (ZSTD_getErrorCode(r) == ZSTD_error_checksum_wrong)
                s = rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': zstd content checksum mismatch (data corrupt)",
                                 what, t->name);
            else
                s = rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': cannot decompress: %s", what, t->name,
                                 ZSTD_getErrorName(r));
            break;
        }
        if (r != t->nbytes) {
            s = rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': decompressed to %zu bytes, expected %zu", what,
                             t->name, r, t->nbytes);
            break;
        }
        crc = crc32_of(t->data, t->nbytes);
        if (crc != t->crc32)
            s = rb_error_set(RB_ERR_CORRUPT,
                             "%s: tensor '%s': CRC-32 mismatch (the index says 0x%08x, the data gives 0x%08x)",
                             what, t->name, (unsigned)t->crc32, (unsigned)crc);
    }
    ZSTD_freeDCtx(dctx);
    return s;
}

rb_status rb_checkpoint_parse(rb_checkpoint **out, const void *bytes, size_t size, const char *what,
                              unsigned flags)
{
    const unsigned char *p = bytes;
    uint32_t version, fl, reserved, crc, want;
    uint64_t hlen;
    json_object *root;
    rb_checkpoint *c;
    rb_json_error err;
    rb_status s;

    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_checkpoint_parse: out is NULL");
    *out = NULL;
    if (what == NULL)
        what = "checkpoint";
    if (bytes == NULL && size > 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: NULL bytes of size %zu", what, size);
    if ((flags & ~(unsigned)RB_CHECKPOINT_INDEX_ONLY) != 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: unknown load flags 0x%x", what, flags);

    if (size == 0)
        return rb_error_set(RB_ERR_CORRUPT, "%s: empty file, not a robusta checkpoint", what);
    if (memcmp(p, RB_CHECKPOINT_MAGIC, size < 8 ? size : 8) != 0)
        return rb_error_set(RB_ERR_CORRUPT, "%s: not a robusta checkpoint (bad magic)", what);
    if (size < PREAMBLE)
        return rb_error_set(RB_ERR_CORRUPT, "%s: truncated: %zu bytes, less than the %d-byte preamble", what, size,
                            PREAMBLE);
    version = get_u32(p + 8);
    fl = get_u32(p + 12);
    hlen = get_u64(p + 16);
    crc = get_u32(p + 24);
    reserved = get_u32(p + 28);
    if (version > RB_CHECKPOINT_VERSION)
        return rb_error_set(RB_ERR_UNSUPPORTED,
                            "%s: format version %u is newer than this robusta reads (%u); upgrade robusta", what,
                            (unsigned)version, RB_CHECKPOINT_VERSION);
    if (version != RB_CHECKPOINT_VERSION)
        return rb_error_set(RB_ERR_CORRUPT, "%s: format version %u is invalid", what, (unsigned)version);
    if (fl != 0)
        return rb_error_set(RB_ERR_CORRUPT, "%s: unknown flags 0x%08x in the preamble", what, (unsigned)fl);
    if (reserved != 0)
        return rb_error_set(RB_ERR_CORRUPT, "%s: reserved preamble field is 0x%08x, not 0", what,
                            (unsigned)reserved);
    if (hlen == 0 || hlen > RB_CHECKPOINT_MAX_HEADER)
        return rb_error_set(RB_ERR_CORRUPT, "%s: header length %llu is outside 1..%u", what,
                            (unsigned long long)hlen, RB_CHECKPOINT_MAX_HEADER);
    if (hlen > size - PREAMBLE)
        return rb_error_set(RB_ERR_CORRUPT, "%s: truncated: the header is %llu bytes but only %zu follow the preamble",
                            what, (unsigned long long)hlen, size - PREAMBLE);
    want = crc32_of(p + PREAMBLE, (size_t)hlen);
    if (crc != want)
        return rb_error_set(RB_ERR_CORRUPT, "%s: header CRC-32 mismatch (stored 0x%08x, computed 0x%08x)", what,
                            (unsigned)crc, (unsigned)want);

    switch (rb_json_parse_object((const char *)(p + PREAMBLE), (size_t)hlen, JSON_MAX_DEPTH, &root, &err)) {
    case RB_JSON_OK:
        break;
    case RB_JSON_NOT_OBJECT:
        return rb_error_set(RB_ERR_CORRUPT, "%s: the header is a JSON %s, not an object", what, err.kind);
    case RB_JSON_NO_MEMORY:
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory reading the header", what);
    default:
        return rb_error_set(RB_ERR_CORRUPT, "%s: the header is not valid JSON: %s at byte %zu", what, err.what,
                            err.at);
    }
    if ((s = rb_checkpoint_create(&c)) != RB_OK) {
        json_object_put(root);
        return s;
    }
    c->origin = rb_strdup(what);
    if (c->origin == NULL)
        s = RB_ERR_OUT_OF_MEMORY;
    if (s == RB_OK)
        s = parse_index(c, root, what, p + PREAMBLE + hlen, (uint64_t)(size - PREAMBLE - hlen));
    json_object_put(root);
    if (s == RB_OK && !(flags & RB_CHECKPOINT_INDEX_ONLY))
        s = decompress_all(c, what, p + PREAMBLE + hlen);
    if (s != RB_OK) {
        rb_checkpoint_destroy(c);
        return s;
    }
    *out = c;
    return RB_OK;
}

rb_status rb_checkpoint_load(rb_checkpoint **out, const char *path, unsigned flags)
{
    unsigned char *bytes;
    size_t size;
    rb_status s;
    if (out == NULL || path == NULL) {
        if (out != NULL)
            *out = NULL;
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_checkpoint_load: %s is NULL",
                            out == NULL ? "out" : "the path");
    }
    *out = NULL;
    if ((s = rb_file_read_all(path, SIZE_MAX, &bytes, &size)) != RB_OK)
        return s;
    s = rb_checkpoint_parse(out, bytes, size, path, flags);
    free(bytes);
    return s;
}
