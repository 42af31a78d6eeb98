/* safetensors files (robusta/interop.h).
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON (an
 * object: tensor name -> {"dtype", "shape", "data_offsets": [begin, end]},
 * plus an optional "__metadata__" string -> string map), then the byte
 * buffer that the offsets index. The parser is a pure function of the bytes
 * and checks everything the format's own validator checks: the header is
 * strict JSON (the library's strict reader, rb_json_parse_object in
 * sys/json.h: json-c alone accepts single quotes, NaN, raw control
 * characters and silently keeps the last of duplicate keys), each entry has
 * exactly the three fields with the right
 * types, every tensor's byte size matches its shape without overflow, and
 * the tensors tile the buffer exactly: no overlap, no hole.
 *
 * Tensor data is little-endian. The writer copies memory as it is, so it
 * (like the rest of robusta) assumes a little-endian host; the float32
 * conversion decodes bytes explicitly and is portable. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <robusta/interop.h>
#include <robusta/suggest.h>
#include <robusta/status.h>

#include "sys/internal.h"
#include "sys/json.h"

/* The largest file rb_safetensors_load reads into memory. */
#if SIZE_MAX > 0xFFFFFFFFu
#define LOAD_LIMIT ((size_t)64 << 30)
#else
#define LOAD_LIMIT SIZE_MAX
#endif

/* Containers the header may nest (it needs 3: header -> entry -> shape). */
#define MAX_JSON_DEPTH 16

/* ------------------------------------------------------------------ dtypes */

typedef struct st_dtype {
    const char *name;
    size_t size;
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
    {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},   {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
};
#define ST_DTYPE_COUNT (sizeof st_dtypes / sizeof st_dtypes[0])
#define ST_DTYPE_LIST "F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL F8_E4M3 F8_E5M2"

static const st_dtype *st_dtype_find(const char *name)
{
    for (size_t i = 0; i < ST_DTYPE_COUNT; i++)
        if (strcmp(st_dtypes[i].name, name) == 0)
            return &st_dtypes[i];
    return NULL;
}

/* ------------------------------------------------------------------ result */

typedef struct st_tensor {
    char *name;
    const char *dtype; /* points into st_dtypes */
    size_t element_size;
    int ndim;
    int64_t shape[RB_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end; /* relative to the byte buffer */
} st_tensor;

struct rb_safetensors {
    char *what;           /* names the file in messages */
    unsigned char *owned; /* the file's bytes, for rb_safetensors_load */
    const unsigned char *buffer;
    uint64_t buffer_size;
    size_t count;
    st_tensor *tensors;   /* ascending offsets */
    const char **names;   /* tensors[i].name, for rb_suggest */
    const st_tensor **by_name; /* sorted by name */
    size_t meta_count;
    char **meta_keys;
    char **meta_values;
};

void rb_safetensors_destroy(rb_safetensors *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->count; i++)
        free(st->tensors[i].name);
    for (size_t i = 0; i < st->meta_count; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->tensors);
    free(st->names);
    free(st->by_name);
    free(st->meta_keys);
    free(st->meta_values);
    free(st->owned);
    free(st->what);
    free(st);
}

/* ------------------------------------------------------------------ parser */

static const char *json_kind(json_object *o)
{
    switch (json_object_get_type(o)) {
    case json_type_null: return "null";
    case json_type_boolean: return "boolean";
    case json_type_double: return "number";
    case json_type_int: return "integer";
    case json_type_object: return "object";
    case json_type_array: return "array";
    case json_type_string: return "string";
    }
    return "value";
}

/* A non-negative JSON integer; -1 when `o` is a negative integer, -2 when it
 * is not an integer. */
static int json_uint(json_object *o, uint64_t *out, long long *negative)
{
    int64_t v;
    if (!json_object_is_type(o, json_type_int))
        return -2;
    v = json_object_get_int64(o);
    if (v < 0) {
        *negative = (long long)v;
        return -1;
    }
    *out = json_object_get_uint64(o); /* exact above INT64_MAX too */
    return 0;
}

static int tensor_order(const void *a, const void *b)
{
    const st_tensor *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int name_order(const void *a, const void *b)
{
    const st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Reads one tensor entry into *t (name already set). */
static rb_status parse_entry(const char *what, const char *name, json_object *entry, uint64_t buffer_size,
                             st_tensor *t)
{
    json_object *dtype = NULL, *shape = NULL, *offsets = NULL;
    const st_dtype *dt;
    uint64_t numel = 1, nbytes, begin = 0, end = 0;
    size_t ndim;
    int zero = 0;
    char shape_text[256];

    if (!json_object_is_type(entry, json_type_object))
        return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': entry is a JSON %s, not an object", what, name,
                            json_kind(entry));
    {
        json_object_object_foreach(entry, key, value)
        {
            if (strcmp(key, "dtype") == 0)
                dtype = value;
            else if (strcmp(key, "shape") == 0)
                shape = value;
            else if (strcmp(key, "data_offsets") == 0)
                offsets = value;
            else
                return rb_error_set(RB_ERR_CORRUPT,
                                    "%s: tensor '%s': unexpected field '%s' (an entry has only dtype, shape "
                                    "and data_offsets)",
                                    what, name, key);
        }
    }
    if (dtype == NULL || shape == NULL || offsets == NULL)
        return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': missing field '%s'", what, name,
                            dtype == NULL ? "dtype" : shape == NULL ? "shape" : "data_offsets");

    if (!json_object_is_type(dtype, json_type_string))
        return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': dtype is a JSON %s, not a string", what, name,
                            json_kind(dtype));
    dt = st_dtype_find(json_object_get_string(dtype));
    if (dt == NULL)
        return rb_error_set(RB_ERR_UNSUPPORTED, "%s: tensor '%s': unknown dtype '%s' (known: " ST_DTYPE_LIST ")",
                            what, name, json_object_get_string(dtype));
    t->dtype = dt->name;
    t->element_size = dt->size;

    if (!json_object_is_type(shape, json_type_array))
        return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': shape is a JSON %s, not an array", what, name,
                            json_kind(shape));
    ndim = json_object_array_length(shape);
    if (ndim > RB_MAX_DIMS)
        return rb_error_set(RB_ERR_UNSUPPORTED, "%s: tensor '%s': shape has %zu dimensions, more than the %d robusta supports",
                            what, name, ndim, RB_MAX_DIMS);
    t->ndim = (int)ndim;
    for (size_t i = 0; i < ndim; i++) {
        json_object *d = json_object_array_get_idx(shape, i);
        uint64_t v = 0;
        long long neg = 0;
        int r = json_uint(d, &v, &neg);
        if (r == -2)
            return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': shape[%zu] is a JSON %s, not an integer", what,
                                name, i, json_kind(d));
        if (r == -1)
            return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': shape[%zu] is negative (%lld)", what, name, i,
                                neg);
        if (v > (uint64_t)INT64_MAX)
            return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': shape[%zu] = %llu is too large", what, name, i,
                                (unsigned long long)v);
        t->shape[i] = (int64_t)v;
        zero |= v == 0;
    }
    rb_shape_format(t->ndim, t->shape, shape_text, sizeof shape_text);
    if (zero) {
        numel = 0;
    } else {
        for (size_t i = 0; i < ndim; i++) {
            uint64_t d = (uint64_t)t->shape[i];
            if (numel > (uint64_t)INT64_MAX / d)
                return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': shape %s has more elements than fit in 64 bits",
                                    what, name, shape_text);
            numel *= d;
        }
    }
    t->numel = (int64_t)numel;

    if (!json_object_is_type(offsets, json_type_array) || json_object_array_length(offsets) != 2)
        return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': data_offsets is not an array of two integers [begin, end]",
                            what, name);
    for (size_t i = 0; i < 2; i++) {
        json_object *o = json_object_array_get_idx(offsets, i);
        uint64_t v = 0;
        long long neg = 0;
        int r = json_uint(o, &v, &neg);
        if (r == -2)
            return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': data_offsets[%zu] is a JSON %s, not an integer",
                                what, name, i, json_kind(o));
        if (r == -1)
            return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': data_offsets[%zu] is negative (%lld)", what, name,
                                i, neg);
        if (i == 0)
            begin = v;
        else
            end = v;
    }
    if (end < begin)
        return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", what,
                            name, (unsigned long long)begin, (unsigned long long)end);
    if (end > buffer_size)
        return rb_error_set(RB_ERR_CORRUPT,
                            "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the data (%llu bytes)",
                            what, name, (unsigned long long)begin, (unsigned long long)end,
                            (unsigned long long)buffer_size);
    if (numel > UINT64_MAX / dt->size)
        return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': %s %s has more bytes than fit in 64 bits", what, name,
                            dt->name, shape_text);
    nbytes = numel * dt->size;
    if (end - begin != nbytes)
        return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but %s %s needs %llu",
                            what, name, (unsigned long long)begin, (unsigned long long)end,
                            (unsigned long long)(end - begin), dt->name, shape_text, (unsigned long long)nbytes);
    t->begin = begin;
    t->end = end;
    return RB_OK;
}

static rb_status parse_metadata(const char *what, json_object *meta, rb_safetensors *st)
{
    size_t n;
    if (!json_object_is_type(meta, json_type_object))
        return rb_error_set(RB_ERR_CORRUPT, "%s: __metadata__ is a JSON %s, not an object", what, json_kind(meta));
    n = (size_t)json_object_object_length(meta);
    if (n == 0)
        return RB_OK;
    st->meta_keys = calloc(n, sizeof *st->meta_keys);
    st->meta_values = calloc(n, sizeof *st->meta_values);
    if (st->meta_keys == NULL || st->meta_values == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory reading __metadata__", what);
    {
        json_object_object_foreach(meta, key, value)
        {
            if (!json_object_is_type(value, json_type_string))
                return rb_error_set(RB_ERR_CORRUPT, "%s: __metadata__ value for '%s' is a JSON %s, not a string", what,
                                    key, json_kind(value));
            st->meta_keys[st->meta_count] = strdup(key);
            st->meta_values[st->meta_count] = strdup(json_object_get_string(value));
            st->meta_count++;
            if (st->meta_keys[st->meta_count - 1] == NULL || st->meta_values[st->meta_count - 1] == NULL)
                return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory reading __metadata__", what);
        }
    }
    return RB_OK;
}

/* Parses the JSON header text (`len` bytes, NUL-terminated at len). */
static rb_status parse_header(const char *what, const char *text, size_t len, uint64_t buffer_size,
                              rb_safetensors *st)
{
    rb_json_error err;
    json_object *root;
    size_t entries = 0;
    rb_status s = RB_OK;

    /* The header's own bytes: strict JSON, padded with whitespace. */
    switch (rb_json_parse_object(text, len, MAX_JSON_DEPTH, &root, &err)) {
    case RB_JSON_OK:
        break;
    case RB_JSON_NOT_OBJECT:
        return rb_error_set(RB_ERR_CORRUPT, "%s: header is a JSON %s, not an object", what, err.kind);
    case RB_JSON_DUPLICATE:
        if (err.depth == 1 && strcmp(err.key, "__metadata__") == 0)
            return rb_error_set(RB_ERR_CORRUPT, "%s: header has '__metadata__' twice", what);
        if (err.depth == 1)
            return rb_error_set(RB_ERR_CORRUPT, "%s: header names tensor '%s' twice", what, err.key);
        if (err.depth == 2 && strcmp(err.parent, "__metadata__") == 0)
            return rb_error_set(RB_ERR_CORRUPT, "%s: __metadata__ has the key '%s' twice", what, err.key);
        if (err.depth == 2)
            return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s': field '%s' appears twice", what, err.parent,
                                err.key);
        return rb_error_set(RB_ERR_CORRUPT, "%s: header is not valid JSON (%s at header byte %zu)", what, err.what,
                            err.at);
    case RB_JSON_TOO_LONG:
        return rb_error_set(RB_ERR_UNSUPPORTED, "%s: header of %zu bytes is too long", what, len);
    case RB_JSON_NO_MEMORY:
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory parsing the header", what);
    case RB_JSON_INVALID:
    default:
        return rb_error_set(RB_ERR_CORRUPT, "%s: header is not valid JSON (%s at header byte %zu)", what, err.what,
                            err.at);
    }

    {
        size_t n = (size_t)json_object_object_length(root);
        st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
        if (st->tensors == NULL) {
            s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu tensors", what, n);
            goto done;
        }
    }
    {
        json_object_object_foreach(root, key, value)
        {
            st_tensor *t;
            if (strcmp(key, "__metadata__") == 0) {
                if ((s = parse_metadata(what, value, st)) != RB_OK)
                    goto done;
                continue;
            }
            t = &st->tensors[entries];
            t->name = strdup(key);
            if (t->name == NULL) {
                s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory reading the header", what);
                goto done;
            }
            entries++;
            st->count = entries;
            if ((s = parse_entry(what, key, value, buffer_size, t)) != RB_OK)
                goto done;
        }
    }

    /* The tensors must tile the buffer: sorted by offsets, each begins where
     * the previous one ends, and the last ends at the end of the buffer. */
    qsort(st->tensors, st->count, sizeof *st->tensors, tensor_order);
    {
        uint64_t at = 0;
        for (size_t i = 0; i < st->count; i++) {
            const st_tensor *t = &st->tensors[i];
            if (t->begin < at) {
                const st_tensor *p = &st->tensors[i - 1];
                s = rb_error_set(RB_ERR_CORRUPT, "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap", what,
                                 p->name, (unsigned long long)p->begin, (unsigned long long)p->end, t->name,
                                 (unsigned long long)t->begin, (unsigned long long)t->end);
                goto done;
            }
            if (t->begin > at) {
                s = rb_error_set(RB_ERR_CORRUPT, "%s: data bytes [%llu, %llu) belong to no tensor", what,
                                 (unsigned long long)at, (unsigned long long)t->begin);
                goto done;
            }
            at = t->end;
        }
        if (at != buffer_size) {
            s = rb_error_set(RB_ERR_CORRUPT, "%s: data bytes [%llu, %llu) belong to no tensor", what,
                             (unsigned long long)at, (unsigned long long)buffer_size);
            goto done;
        }
    }

done:
    json_object_put(root);
    return s;
}

rb_status rb_safetensors_parse(rb_safetensors **out, const void *bytes, size_t size, const char *what)
{
    const unsigned char *b = bytes;
    rb_safetensors *st;
    uint64_t n = 0;
    char *text;
    rb_status s;

    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_safetensors_parse: out is NULL");
    *out = NULL;
    if (what == NULL)
        what = "safetensors data";
    if (bytes == NULL && size > 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: bytes is NULL", what);
    if (size < 8)
        return rb_error_set(RB_ERR_CORRUPT,
                            "%s: %zu bytes is too short for a safetensors file (it starts with an 8-byte header length)",
                            what, size);
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | b[i];
    if (n > RB_SAFETENSORS_MAX_HEADER)
        return rb_error_set(RB_ERR_CORRUPT,
                            "%s: header length %llu is more than the format's limit of %u bytes (not a safetensors file?)",
                            what, (unsigned long long)n, RB_SAFETENSORS_MAX_HEADER);
    if (n > size - 8)
        return rb_error_set(RB_ERR_CORRUPT, "%s: header length %llu runs past the end of the file (%zu bytes)", what,
                            (unsigned long long)n, size);

    st = calloc(1, sizeof *st);
    text = malloc((size_t)n + 1);
    if (st == NULL || text == NULL) {
        free(st);
        free(text);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory for a %llu-byte header", what,
                            (unsigned long long)n);
    }
    memcpy(text, b + 8, (size_t)n);
    text[n] = '\0';
    st->buffer = b + 8 + n;
    st->buffer_size = (uint64_t)(size - 8 - (size_t)n);
    s = parse_header(what, text, (size_t)n, st->buffer_size, st);
    free(text);
    if (s != RB_OK) {
        rb_safetensors_destroy(st);
        return s;
    }

    st->names = malloc((st->count ? st->count : 1) * sizeof *st->names);
    st->by_name = malloc((st->count ? st->count : 1) * sizeof *st->by_name);
    st->what = strdup(what);
    if (st->names == NULL || st->by_name == NULL || st->what == NULL) {
        rb_safetensors_destroy(st);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory indexing %zu tensors", what, st->count);
    }
    for (size_t i = 0; i < st->count; i++) {
        st->names[i] = st->tensors[i].name;
        st->by_name[i] = &st->tensors[i];
    }
    qsort(st->by_name, st->count, sizeof *st->by_name, name_order);
    *out = st;
    return RB_OK;
}

rb_status rb_safetensors_load(rb_safetensors **out, const char *path)
{
    unsigned char *data;
    size_t size;
    rb_status s;
    if (out == NULL || path == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_safetensors_load: out or path is NULL");
    *out = NULL;
    if ((s = rb_file_read_all(path, LOAD_LIMIT, &data, &size)) != RB_OK)
        return s;
    if ((s = rb_safetensors_parse(out, data, size, path)) != RB_OK) {
        free(data);
        return s;
    }
    (*out)->owned = data;
    return RB_OK;
}

/* ------------------------------------------------------------------ access */

size_t rb_safetensors_count(const rb_safetensors *st)
{
    return st ? st->count : 0;
}

static void fill(const rb_safetensors *st, size_t i, rb_safetensors_tensor *out)
{
    const st_tensor *t = &st->tensors[i];
    memset(out, 0, sizeof *out);
    out->name = t->name;
    out->dtype = t->dtype;
    out->element_size = t->element_size;
    out->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++)
        out->shape[d] = t->shape[d];
    out->numel = t->numel;
    out->data = st->buffer + t->begin;
    out->nbytes = (size_t)(t->end - t->begin);
}

rb_status rb_safetensors_get(const rb_safetensors *st, size_t index, rb_safetensors_tensor *out)
{
    if (st == NULL || out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_safetensors_get: st or out is NULL");
    if (index >= st->count)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "tensor index %zu is out of range (the file has %zu tensors)",
                            index, st->count);
    fill(st, index, out);
    return RB_OK;
}

rb_status rb_safetensors_find(const rb_safetensors *st, const char *name, rb_safetensors_tensor *out)
{
    size_t lo = 0, hi;
    const char *near;
    if (st == NULL || name == NULL || out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_safetensors_find: st, name or out is NULL");
    hi = st->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->by_name[mid]->name, name);
        if (c == 0) {
            fill(st, (size_t)(st->by_name[mid] - st->tensors), out);
            return RB_OK;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    near = rb_suggest(name, st->names, st->count);
    if (near != NULL)
        return rb_error_set(RB_ERR_NOT_FOUND, "%s: no tensor '%s' (did you mean '%s'?)", st->what, name, near);
    return rb_error_set(RB_ERR_NOT_FOUND, "%s: no tensor '%s' among its %zu tensors", st->what, name, st->count);
}

const char *rb_safetensors_metadata(const rb_safetensors *st, const char *key)
{
    if (st == NULL || key == NULL)
        return NULL;
    for (size_t i = 0; i < st->meta_count; i++)
        if (strcmp(st->meta_keys[i], key) == 0)
            return st->meta_values[i];
    return NULL;
}

/* -------------------------------------------------------------- conversion */

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
    float f;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13); /* inf, NaN (payload kept) */
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {
        /* subnormal: value = mant * 2^-24, exact in float32 */
        f = (float)mant * 0x1p-24f;
        return sign ? -f : f;
    }
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* double -> float without the undefined behaviour of an out-of-range cast:
 * values beyond float's range round to infinity as IEEE conversion does. */
static float f64_to_f32(double d)
{
    /* FLT_MAX plus half an ulp: from here on, round-to-nearest gives inf. */
    const double limit = 0x1.ffffffp127;
    if (d >= limit)
        return (float)INFINITY;
    if (d <= -limit)
        return -(float)INFINITY;
    return (float)d;
}

rb_status rb_safetensors_to_f32(const rb_safetensors_tensor *tensor, float *out)
{
    const unsigned char *p;
    size_t n;
    if (tensor == NULL || (out == NULL && tensor->numel > 0))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_safetensors_to_f32: tensor or out is NULL");
    if (tensor->dtype == NULL || tensor->numel < 0 ||
        (tensor->numel > 0 && (tensor->data == NULL || tensor->element_size == 0 ||
                               tensor->nbytes / tensor->element_size < (uint64_t)tensor->numel)))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "tensor '%s': inconsistent description",
                            tensor->name ? tensor->name : "?");
    p = tensor->data;
    n = (size_t)tensor->numel;
    if (strcmp(tensor->dtype, "F32") == 0) {
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                            (uint32_t)p[4 * i + 3] << 24;
            memcpy(&out[i], &bits, sizeof bits);
        }
    } else if (strcmp(tensor->dtype, "F64") == 0) {
        for (size_t i = 0; i < n; i++) {
            uint64_t bits = 0;
            double d;
            for (int k = 7; k >= 0; k--)
                bits = (bits << 8) | p[8 * i + (size_t)k];
            memcpy(&d, &bits, sizeof d);
            out[i] = f64_to_f32(d);
        }
    } else if (strcmp(tensor->dtype, "F16") == 0) {
        for (size_t i = 0; i < n; i++)
            out[i] = f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    } else if (strcmp(tensor->dtype, "BF16") == 0) {
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;
            memcpy(&out[i], &bits, sizeof bits);
        }
    } else {
        return rb_error_set(RB_ERR_UNSUPPORTED,
                            "tensor '%s' is %s; only F32, F64, F16 and BF16 tensors convert to float32",
                            tensor->name ? tensor->name : "?", tensor->dtype);
    }
    return RB_OK;
}

/* ------------------------------------------------------------------ writer */

typedef struct strbuf {
    char *data;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *grown;
        while (cap < b->len + n + 1)
            cap *= 2;
        grown = realloc(b->data, cap);
        if (grown == NULL) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sb_str(strbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_fmt_u64(strbuf *b, uint64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    sb_put(b, tmp, (size_t)n);
}

/* A JSON string literal. */
static void sb_json_string(strbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        default:
            if (*p < 0x20) {
                char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
                sb_put(b, esc, 6);
            } else {
                sb_put(b, (const char *)p, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

static const char *writable_dtype(rb_dtype dtype)
{
    switch (dtype) {
    case RB_DTYPE_F32: return "F32";
    case RB_DTYPE_BF16: return "BF16";
    case RB_DTYPE_U8: return "U8";
    case RB_DTYPE_I32: return "I32";
    case RB_DTYPE_I64: return "I64";
    }
    return NULL;
}

static int cstr_cmp(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

/* Fails if two of the `count` strings are equal; `kind` names them. */
static rb_status check_unique(const char *path, const char *const *strings, size_t count, const char *kind)
{
    const char **sorted;
    rb_status s = RB_OK;
    if (count < 2)
        return RB_OK;
    sorted = malloc(count * sizeof *sorted);
    if (sorted == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory checking %zu names", path, count);
    memcpy(sorted, strings, count * sizeof *sorted);
    qsort(sorted, count, sizeof *sorted, cstr_cmp);
    for (size_t i = 1; i < count; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: %s '%s' is given twice", path, kind, sorted[i]);
            break;
        }
    free(sorted);
    return s;
}

rb_status rb_safetensors_save(const char *path, const rb_safetensors_entry *entries, size_t count,
                              const char *const *metadata_keys, const char *const *metadata_values,
                              size_t metadata_count)
{
    strbuf h = {0};
    uint64_t offset = 0;
    uint64_t *sizes = NULL;
    const char **names = NULL;
    rb_atomic_file af;
    rb_status s = RB_OK;

    if (path == NULL || (count > 0 && entries == NULL) ||
        (metadata_count > 0 && (metadata_keys == NULL || metadata_values == NULL)))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_safetensors_save: path, entries or metadata is NULL");

    for (size_t i = 0; i < metadata_count; i++) {
        if (metadata_keys[i] == NULL || metadata_values[i] == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: metadata entry %zu has a NULL key or value", path, i);
        if (!rb_utf8_valid(metadata_keys[i]) || !rb_utf8_valid(metadata_values[i]))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: metadata '%s' is not valid UTF-8", path, metadata_keys[i]);
    }
    if ((s = check_unique(path, metadata_keys, metadata_count, "metadata key")) != RB_OK)
        return s;

    sizes = malloc((count ? count : 1) * sizeof *sizes);
    names = malloc((count ? count : 1) * sizeof *names);
    if (sizes == NULL || names == NULL) {
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu tensors", path, count);
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        const rb_safetensors_entry *e = &entries[i];
        const char *name = e->name;
        uint64_t numel = 1, esize;
        int zero = 0;
        if (name == NULL) {
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: tensor %zu has no name", path, i);
            goto done;
        }
        if (strcmp(name, "__metadata__") == 0) {
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: '__metadata__' is reserved and cannot name a tensor", path);
            goto done;
        }
        if (!rb_utf8_valid(name)) {
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: tensor name '%s' is not valid UTF-8", path, name);
            goto done;
        }
        if (writable_dtype(e->dtype) == NULL) {
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: tensor '%s': dtype %d cannot be written", path, name,
                             (int)e->dtype);
            goto done;
        }
        if (e->ndim < 0 || e->ndim > RB_MAX_DIMS || (e->ndim > 0 && e->shape == NULL)) {
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: tensor '%s': ndim %d is not in [0, %d] or shape is NULL",
                             path, name, e->ndim, RB_MAX_DIMS);
            goto done;
        }
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] < 0) {
                s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: tensor '%s': dimension %d is negative (%lld)", path,
                                 name, d, (long long)e->shape[d]);
                goto done;
            }
            zero |= e->shape[d] == 0;
        }
        esize = rb_dtype_size(e->dtype);
        if (zero) {
            numel = 0;
        } else {
            for (int d = 0; d < e->ndim; d++) {
                if (numel > UINT64_MAX / esize / (uint64_t)e->shape[d]) {
                    s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: tensor '%s': its size overflows", path, name);
                    goto done;
                }
                numel *= (uint64_t)e->shape[d];
            }
        }
        sizes[i] = numel * esize;
        if (sizes[i] > 0 && e->data == NULL) {
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: tensor '%s': data is NULL", path, name);
            goto done;
        }
        if (sizes[i] > SIZE_MAX || offset > UINT64_MAX - sizes[i]) {
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: tensor '%s': the file would be too large", path, name);
            goto done;
        }
        offset += sizes[i];
        names[i] = name;
    }
    if ((s = check_unique(path, names, count, "tensor")) != RB_OK)
        goto done;

    /* The header, keys in the given order. */
    sb_str(&h, "{");
    if (metadata_count > 0) {
        sb_str(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < metadata_count; i++) {
            if (i)
                sb_str(&h, ",");
            sb_json_string(&h, metadata_keys[i]);
            sb_str(&h, ":");
            sb_json_string(&h, metadata_values[i]);
        }
        sb_str(&h, "}");
    }
    offset = 0;
    for (size_t i = 0; i < count; i++) {
        const rb_safetensors_entry *e = &entries[i];
        if (i || metadata_count > 0)
            sb_str(&h, ",");
        sb_json_string(&h, e->name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, writable_dtype(e->dtype));
        sb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            if (d)
                sb_str(&h, ",");
            sb_fmt_u64(&h, (uint64_t)e->shape[d]);
        }
        sb_str(&h, "],\"data_offsets\":[");
        sb_fmt_u64(&h, offset);
        sb_str(&h, ",");
        sb_fmt_u64(&h, offset + sizes[i]);
        sb_str(&h, "]}");
        offset += sizes[i];
    }
    sb_str(&h, "}");
    while (!h.failed && h.len % 8 != 0)
        sb_str(&h, " ");
    if (h.failed) {
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory building the header", path);
        goto done;
    }
    if (h.len > RB_SAFETENSORS_MAX_HEADER) {
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the header would be %zu bytes, more than the format's limit of %u",
                         path, h.len, RB_SAFETENSORS_MAX_HEADER);
        goto done;
    }

    if ((s = rb_atomic_file_open(&af, path)) != RB_OK)
        goto done;
    {
        unsigned char prefix[8];
        uint64_t n = h.len;
        for (int i = 0; i < 8; i++)
            prefix[i] = (unsigned char)(n >> (8 * i));
        rb_atomic_file_write(&af, prefix, sizeof prefix);
        rb_atomic_file_write(&af, h.data, h.len);
        for (size_t i = 0; i < count; i++)
            rb_atomic_file_write(&af, entries[i].data, (size_t)sizes[i]);
    }
    s = rb_atomic_file_commit(&af); /* removes the temporary file after a failed write */

done:
    free(h.data);
    free(sizes);
    free(names);
    return s;
}
