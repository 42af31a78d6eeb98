/* NumPy .npy files (robusta/interop.h).
 *
 * Layout: the magic "\x93NUMPY", a major and a minor version byte, the
 * header length (little-endian u16 for version 1.0, u32 for 2.0 and 3.0),
 * the header, then the array's bytes. The header is a Python dict literal
 * such as
 *
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 *
 * padded with spaces and ending in '\n'. We parse that literal ourselves
 * (no evaluation), accepting what NumPy writes and what its reader accepts:
 * either quote style, any whitespace, a trailing comma, 1-tuples "(5,)",
 * Python 2 long suffixes "3L". The keys must be exactly descr,
 * fortran_order and shape, as NumPy's own reader requires.
 *
 * The writer produces byte for byte what np.save (NumPy 1.24) writes for
 * the same array: version 1.0, keys sorted, 21 digits of growth room after
 * the dict, spaces up to a 64-byte boundary and a final '\n'. Data is copied
 * as it is in memory, so a little-endian host is assumed, as elsewhere in
 * robusta. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/interop.h>
#include <robusta/status.h>

#include "sys/internal.h"

#if SIZE_MAX > 0xFFFFFFFFu
#define LOAD_LIMIT ((size_t)64 << 30)
#else
#define LOAD_LIMIT SIZE_MAX
#endif

#define MAGIC "\x93NUMPY"
#define MAGIC_LEN 6
#define ARRAY_ALIGN 64
#define GROWTH_AXIS_MAX_DIGITS 21

typedef struct npy_kind {
    const char *descr;
    rb_dtype dtype;
} npy_kind;

static const npy_kind accepted[] = {
    {"<f4", RB_DTYPE_F32}, {"|u1", RB_DTYPE_U8}, {"<u1", RB_DTYPE_U8}, {"<i4", RB_DTYPE_I32}, {"<i8", RB_DTYPE_I64},
};

static const char *descr_of(rb_dtype dtype)
{
    switch (dtype) {
    case RB_DTYPE_F32: return "<f4";
    case RB_DTYPE_U8: return "|u1";
    case RB_DTYPE_I32: return "<i4";
    case RB_DTYPE_I64: return "<i8";
    case RB_DTYPE_BF16: break;
    }
    return NULL;
}

void rb_npy_destroy(rb_npy *array)
{
    if (array == NULL)
        return;
    free(array->data);
    free(array);
}

/* Python's repr of a shape tuple: "()", "(5,)", "(2, 3)". */
static void format_tuple(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, "%s)", ndim == 1 ? "," : "");
}

/* ------------------------------------------------------------ header parse */

typedef struct hparse {
    const char *what;
    const unsigned char *s; /* the header */
    size_t n, pos;
    size_t base; /* file offset of s[0], for messages */
} hparse;

static void hp_ws(hparse *p)
{
    while (p->pos < p->n && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
                             p->s[p->pos] == '\r' || p->s[p->pos] == '\f' || p->s[p->pos] == '\v'))
        p->pos++;
}

static rb_status hp_expected(hparse *p, const char *expected)
{
    if (p->pos >= p->n)
        return rb_error_set(RB_ERR_CORRUPT, "%s: malformed header: it ends where %s was expected", p->what, expected);
    return rb_error_set(RB_ERR_CORRUPT, "%s: malformed header at byte %zu: expected %s", p->what, p->base + p->pos,
                        expected);
}

/* A quoted Python string without escapes into buf (cut at size - 1). */
static rb_status hp_string(hparse *p, char *buf, size_t size, const char *expected)
{
    unsigned char quote;
    size_t start, len;
    if (p->pos >= p->n || (p->s[p->pos] != '\'' && p->s[p->pos] != '"'))
        return hp_expected(p, expected);
    quote = p->s[p->pos++];
    start = p->pos;
    while (p->pos < p->n && p->s[p->pos] != quote) {
        if (p->s[p->pos] == '\\' || p->s[p->pos] == '\n' || p->s[p->pos] < 0x20)
            return rb_error_set(RB_ERR_CORRUPT, "%s: malformed header at byte %zu: unexpected character in a string",
                                p->what, p->base + p->pos);
        p->pos++;
    }
    if (p->pos >= p->n)
        return rb_error_set(RB_ERR_CORRUPT, "%s: malformed header: a string is not closed", p->what);
    len = p->pos - start;
    if (len >= size)
        len = size - 1;
    memcpy(buf, p->s + start, len);
    buf[len] = '\0';
    p->pos++;
    return RB_OK;
}

static int hp_word(hparse *p, const char *word)
{
    size_t len = strlen(word);
    if (p->n - p->pos < len || memcmp(p->s + p->pos, word, len) != 0)
        return 0;
    /* not the prefix of a longer identifier */
    if (p->pos + len < p->n) {
        unsigned char c = p->s[p->pos + len];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')
            return 0;
    }
    p->pos += len;
    return 1;
}

static rb_status bad_shape(hparse *p)
{
    return rb_error_set(RB_ERR_CORRUPT,
                        "%s: malformed header at byte %zu: 'shape' must be a tuple of non-negative integers such as "
                        "(2, 3), (5,) or ()",
                        p->what, p->base + p->pos);
}

/* A tuple of non-negative integers. */
static rb_status hp_shape(hparse *p, int *ndim, int64_t *shape)
{
    int n = 0;
    if (p->pos >= p->n || p->s[p->pos] != '(')
        return bad_shape(p);
    p->pos++;
    hp_ws(p);
    for (;;) {
        uint64_t v = 0;
        size_t digits = 0;
        if (p->pos < p->n && p->s[p->pos] == ')') { /* "()" or after a trailing comma */
            p->pos++;
            break;
        }
        if (p->pos < p->n && p->s[p->pos] == '-')
            return rb_error_set(RB_ERR_CORRUPT, "%s: header: dimension %d of 'shape' is negative", p->what, n);
        while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
            unsigned d = (unsigned)(p->s[p->pos] - '0');
            if (v > ((uint64_t)INT64_MAX - d) / 10)
                return rb_error_set(RB_ERR_CORRUPT, "%s: header: dimension %d of 'shape' is too large", p->what, n);
            v = v * 10 + d;
            digits++;
            p->pos++;
        }
        if (digits == 0)
            return bad_shape(p);
        if (p->pos < p->n && (p->s[p->pos] == 'L' || p->s[p->pos] == 'l')) /* Python 2 long */
            p->pos++;
        if (n == RB_MAX_DIMS)
            return rb_error_set(RB_ERR_UNSUPPORTED, "%s: the array has more than the %d dimensions robusta supports",
                                p->what, RB_MAX_DIMS);
        shape[n++] = (int64_t)v;
        hp_ws(p);
        if (p->pos < p->n && p->s[p->pos] == ',') {
            p->pos++;
            hp_ws(p);
            continue;
        }
        if (p->pos < p->n && p->s[p->pos] == ')') {
            if (n == 1) /* "(5)" is an int in Python, not a tuple */
                return bad_shape(p);
            p->pos++;
            break;
        }
        return bad_shape(p);
    }
    *ndim = n;
    return RB_OK;
}

/* The dtype for a descr string, or an error that says what to do. */
static rb_status dtype_of(const char *what, const char *descr, rb_dtype *out)
{
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++)
        if (strcmp(accepted[i].descr, descr) == 0) {
            *out = accepted[i].dtype;
            return RB_OK;
        }
    if (descr[0] == '>')
        return rb_error_set(RB_ERR_UNSUPPORTED,
                            "%s: dtype '%s' is big-endian; save it little-endian (a.astype(a.dtype.newbyteorder('<')))",
                            what, descr);
    if (strcmp(descr, "<f8") == 0 || strcmp(descr, "=f8") == 0)
        return rb_error_set(RB_ERR_UNSUPPORTED,
                            "%s: dtype '%s' (float64) is not supported; save float32 instead (a.astype(np.float32))",
                            what, descr);
    if (strchr(descr, 'O') != NULL)
        return rb_error_set(RB_ERR_UNSUPPORTED, "%s: dtype '%s' holds Python objects; save a numeric array", what,
                            descr);
    return rb_error_set(RB_ERR_UNSUPPORTED,
                        "%s: dtype '%s' is not supported; use float32 '<f4', uint8 '|u1', int32 '<i4' or int64 '<i8'",
                        what, descr);
}

typedef struct npy_header {
    rb_dtype dtype;
    int fortran;
    int ndim;
    int64_t shape[RB_MAX_DIMS];
} npy_header;

static rb_status parse_dict(hparse *p, npy_header *h)
{
    int have_descr = 0, have_fortran = 0, have_shape = 0;
    char descr[64] = "";
    rb_status s;

    hp_ws(p);
    if (p->pos >= p->n || p->s[p->pos] != '{')
        return hp_expected(p, "'{'");
    p->pos++;
    for (;;) {
        char key[64];
        hp_ws(p);
        if (p->pos < p->n && p->s[p->pos] == '}') {
            p->pos++;
            break;
        }
        if ((s = hp_string(p, key, sizeof key, "a quoted key or '}'")) != RB_OK)
            return s;
        hp_ws(p);
        if (p->pos >= p->n || p->s[p->pos] != ':')
            return hp_expected(p, "':'");
        p->pos++;
        hp_ws(p);
        if (strcmp(key, "descr") == 0) {
            if (have_descr)
                return rb_error_set(RB_ERR_CORRUPT, "%s: header has the key 'descr' twice", p->what);
            have_descr = 1;
            if (p->pos < p->n && p->s[p->pos] == '[')
                return rb_error_set(RB_ERR_UNSUPPORTED,
                                    "%s: the array has a structured dtype; save a plain numeric array", p->what);
            if ((s = hp_string(p, descr, sizeof descr, "a quoted dtype for 'descr'")) != RB_OK)
                return s;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (have_fortran)
                return rb_error_set(RB_ERR_CORRUPT, "%s: header has the key 'fortran_order' twice", p->what);
            have_fortran = 1;
            if (hp_word(p, "True"))
                h->fortran = 1;
            else if (hp_word(p, "False"))
                h->fortran = 0;
            else
                return hp_expected(p, "True or False for 'fortran_order'");
        } else if (strcmp(key, "shape") == 0) {
            if (have_shape)
                return rb_error_set(RB_ERR_CORRUPT, "%s: header has the key 'shape' twice", p->what);
            have_shape = 1;
            if ((s = hp_shape(p, &h->ndim, h->shape)) != RB_OK)
                return s;
        } else {
            return rb_error_set(RB_ERR_CORRUPT,
                                "%s: header has an unexpected key '%s' (a .npy header has only descr, fortran_order "
                                "and shape)",
                                p->what, key);
        }
        hp_ws(p);
        if (p->pos < p->n && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->n && p->s[p->pos] == '}') {
            p->pos++;
            break;
        }
        return hp_expected(p, "',' or '}'");
    }
    hp_ws(p);
    if (p->pos != p->n)
        return rb_error_set(RB_ERR_CORRUPT, "%s: malformed header at byte %zu: unexpected text after the dict", p->what,
                            p->base + p->pos);
    if (!have_descr || !have_fortran || !have_shape)
        return rb_error_set(RB_ERR_CORRUPT, "%s: header has no '%s' key", p->what,
                            !have_descr ? "descr" : !have_fortran ? "fortran_order" : "shape");
    if ((s = dtype_of(p->what, descr, &h->dtype)) != RB_OK)
        return s;
    if (h->fortran)
        return rb_error_set(RB_ERR_UNSUPPORTED,
                            "%s: the array is stored in Fortran order; save a C-ordered array (np.ascontiguousarray(a))",
                            p->what);
    return RB_OK;
}

rb_status rb_npy_parse(rb_npy **out, const void *bytes, size_t size, const char *what)
{
    const unsigned char *b = bytes;
    size_t prefix, hlen, data_size;
    uint64_t numel = 1, nbytes;
    unsigned major, minor;
    npy_header h = {0};
    hparse p;
    rb_npy *a;
    char shape_text[256];
    int zero = 0;
    rb_status s;

    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_npy_parse: out is NULL");
    *out = NULL;
    if (what == NULL)
        what = ".npy data";
    if (bytes == NULL && size > 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: bytes is NULL", what);

    if (memcmp(b ? b : (const unsigned char *)"", MAGIC, size < MAGIC_LEN ? size : MAGIC_LEN) != 0)
        return rb_error_set(RB_ERR_CORRUPT, "%s: not a .npy file (it does not start with \\x93NUMPY)", what);
    if (size < MAGIC_LEN + 2)
        return rb_error_set(RB_ERR_CORRUPT, "%s: file ends after %zu bytes, inside the .npy preamble", what, size);
    major = b[6];
    minor = b[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0)
        return rb_error_set(RB_ERR_UNSUPPORTED, "%s: .npy version %u.%u is not supported (only 1.0, 2.0 and 3.0)", what,
                            major, minor);
    prefix = major == 1 ? 10 : 12;
    if (size < prefix)
        return rb_error_set(RB_ERR_CORRUPT, "%s: file ends after %zu bytes, inside the .npy preamble", what, size);
    hlen = major == 1 ? (size_t)(b[8] | b[9] << 8)
                      : (size_t)((uint32_t)b[8] | (uint32_t)b[9] << 8 | (uint32_t)b[10] << 16 | (uint32_t)b[11] << 24);
    if (hlen > size - prefix)
        return rb_error_set(RB_ERR_CORRUPT, "%s: the %zu-byte header runs past the end of the file (%zu bytes)", what,
                            hlen, size);

    p.what = what;
    p.s = b + prefix;
    p.n = hlen;
    p.pos = 0;
    p.base = prefix;
    if ((s = parse_dict(&p, &h)) != RB_OK)
        return s;

    format_tuple(shape_text, sizeof shape_text, h.ndim, h.shape);
    for (int i = 0; i < h.ndim; i++)
        zero |= h.shape[i] == 0;
    if (zero) {
        numel = 0;
    } else {
        for (int i = 0; i < h.ndim; i++) {
            if (numel > (uint64_t)INT64_MAX / (uint64_t)h.shape[i])
                return rb_error_set(RB_ERR_CORRUPT, "%s: shape %s has more elements than fit in 64 bits", what,
                                    shape_text);
            numel *= (uint64_t)h.shape[i];
        }
    }
    data_size = size - prefix - hlen;
    if (numel > UINT64_MAX / rb_dtype_size(h.dtype))
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s %s has more bytes than fit in 64 bits", what,
                            rb_dtype_str(h.dtype), shape_text);
    nbytes = numel * rb_dtype_size(h.dtype);
    if (nbytes > (uint64_t)data_size)
        return rb_error_set(RB_ERR_CORRUPT, "%s: the data is %zu bytes but %s %s needs %llu (truncated file?)", what,
                            data_size, rb_dtype_str(h.dtype), shape_text, (unsigned long long)nbytes);
    if (nbytes < (uint64_t)data_size)
        return rb_error_set(RB_ERR_CORRUPT, "%s: %llu unexpected bytes follow the %llu bytes of %s %s", what,
                            (unsigned long long)(data_size - nbytes), (unsigned long long)nbytes,
                            rb_dtype_str(h.dtype), shape_text);

    a = calloc(1, sizeof *a);
    if (a == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    /* aligned_alloc wants a multiple of the alignment */
    a->data = aligned_alloc(64, nbytes ? (nbytes + 63) / 64 * 64 : 64);
    if (a->data == NULL) {
        free(a);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory for %llu bytes of data", what,
                            (unsigned long long)nbytes);
    }
    if (nbytes)
        memcpy(a->data, b + prefix + hlen, (size_t)nbytes);
    a->dtype = h.dtype;
    a->ndim = h.ndim;
    for (int i = 0; i < h.ndim; i++)
        a->shape[i] = h.shape[i];
    a->numel = (int64_t)numel;
    a->nbytes = (size_t)nbytes;
    *out = a;
    return RB_OK;
}

rb_status rb_npy_load(rb_npy **out, const char *path)
{
    unsigned char *data;
    size_t size;
    rb_status s;
    if (out == NULL || path == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_npy_load: out or path is NULL");
    *out = NULL;
    if ((s = rb_file_read_all(path, LOAD_LIMIT, &data, &size)) != RB_OK)
        return s;
    s = rb_npy_parse(out, data, size, path);
    free(data);
    return s;
}

/* ------------------------------------------------------------------ writer */

rb_status rb_npy_save(const char *path, rb_dtype dtype, int ndim, const int64_t *shape, const void *data)
{
    const char *descr = descr_of(dtype);
    char header[512], shape_text[256];
    size_t len, pad, total;
    uint64_t numel = 1, nbytes;
    int zero = 0;
    rb_atomic_file af;
    rb_status s;

    if (path == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_npy_save: path is NULL");
    if (descr == NULL) {
        if (dtype == RB_DTYPE_BF16)
            return rb_error_set(RB_ERR_UNSUPPORTED, "%s: NumPy has no bfloat16; convert the array to float32", path);
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: dtype %d cannot be written", path, (int)dtype);
    }
    if (ndim < 0 || ndim > RB_MAX_DIMS || (ndim > 0 && shape == NULL))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: ndim %d is not in [0, %d] or shape is NULL", path, ndim,
                            RB_MAX_DIMS);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: dimension %d is negative (%lld)", path, i,
                                (long long)shape[i]);
        zero |= shape[i] == 0;
    }
    if (zero) {
        numel = 0;
    } else {
        for (int i = 0; i < ndim; i++) {
            if (numel > UINT64_MAX / 8 / (uint64_t)shape[i])
                return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the array's size overflows", path);
            numel *= (uint64_t)shape[i];
        }
    }
    nbytes = numel * rb_dtype_size(dtype);
    if (nbytes > SIZE_MAX)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the array is too large", path);
    if (nbytes > 0 && data == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: data is NULL", path);

    /* As numpy.lib.format._write_array_header and _wrap_header do. */
    format_tuple(shape_text, sizeof shape_text, ndim, shape);
    len = (size_t)snprintf(header + 10, sizeof header - 10, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                           descr, shape_text);
    if (ndim > 0) {
        char first[32];
        size_t digits = (size_t)snprintf(first, sizeof first, "%lld", (long long)shape[0]);
        for (size_t i = digits; i < GROWTH_AXIS_MAX_DIGITS; i++)
            header[10 + len++] = ' ';
    }
    pad = ARRAY_ALIGN - ((MAGIC_LEN + 2 + 2 + len + 1) % ARRAY_ALIGN);
    total = 10 + len + pad + 1;
    if (total > sizeof header)
        return rb_error_set(RB_ERR_INTERNAL, "%s: .npy header buffer too small", path);
    memset(header + 10 + len, ' ', pad);
    header[total - 1] = '\n';
    memcpy(header, MAGIC, MAGIC_LEN);
    header[6] = 1;
    header[7] = 0;
    header[8] = (char)((total - 10) & 0xff);
    header[9] = (char)((total - 10) >> 8);

    if ((s = rb_atomic_file_open(&af, path)) != RB_OK)
        return s;
    rb_atomic_file_write(&af, header, total);
    rb_atomic_file_write(&af, data, (size_t)nbytes);
    return rb_atomic_file_commit(&af); /* removes the temporary file after a failed write */
}
