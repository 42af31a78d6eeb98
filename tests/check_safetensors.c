/* safetensors: round trips of every writable dtype, a hand-built file as
 * PyTorch writes them, every malformed header the format's validator
 * refuses (with its exact message), truncation at every length, random
 * damage, and writers that fail without touching what is on disk. */
#include "config.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>

#include <robusta/interop.h>
#include <robusta/status.h>

#include "testutil.h"

#define WHAT "model.safetensors"

static char dir[PATH_MAX];

static void setup(void)
{
    make_temp_dir(dir, sizeof dir);
}

static void teardown(void)
{
    remove_temp_dir(dir);
}

/* A file image: 8-byte length of `header` (used as given, no padding), the
 * header, then `data_len` bytes (copied from `data`, or a ramp). */
static unsigned char *make_st(const char *header, const void *data, size_t data_len, size_t *size)
{
    size_t n = strlen(header);
    unsigned char *b = malloc(8 + n + data_len + 1);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, n);
    for (size_t i = 0; i < data_len; i++)
        b[8 + n + i] = data ? ((const unsigned char *)data)[i] : (unsigned char)i;
    *size = 8 + n + data_len;
    return b;
}

/* Something other than NULL, to see that a failed parse clears *out. */
static char dummy;
#define not_null ((rb_safetensors *)(void *)&dummy)

static void assert_one_line(void)
{
    ck_assert_ptr_null(strchr(rb_last_error(), '\n'));
    ck_assert_uint_gt(strlen(rb_last_error()), 0);
}

/* ---------------------------------------------------------------- writing */

START_TEST(round_trip_every_writable_dtype)
{
    const float f32[6] = {1.5f, -2.0f, 0.0f, 3.25f, 1e-30f, -INFINITY};
    const uint16_t bf16[4] = {0x3f80, 0xc000, 0x0000, 0x7f80}; /* 1, -2, 0, inf */
    const uint8_t u8[6] = {0, 1, 2, 127, 128, 255};
    const int32_t i32[1] = {-123456};
    const int64_t i64[3] = {INT64_MIN, 0, INT64_MAX};
    const int64_t s_f32[2] = {2, 3}, s_bf16[1] = {4}, s_u8[3] = {3, 1, 2}, s_i64[1] = {3}, s_empty[3] = {2, 0, 5};
    const rb_safetensors_entry entries[] = {
        {"layer1.0.conv1.weight", RB_DTYPE_F32, 2, s_f32, f32},
        {"bf", RB_DTYPE_BF16, 1, s_bf16, bf16},
        {"bytes", RB_DTYPE_U8, 3, s_u8, u8},
        {"scalar", RB_DTYPE_I32, 0, NULL, i32},
        {"empty", RB_DTYPE_F32, 3, s_empty, NULL},
        {"counts", RB_DTYPE_I64, 1, s_i64, i64},
    };
    const char *const keys[] = {"format", "note"}, *const values[] = {"pt", "quote \" backslash \\ newline \n é"};
    char path[PATH_MAX + 32];
    rb_safetensors *st;
    rb_safetensors_tensor t;
    unsigned char *raw;
    size_t size;
    uint64_t n = 0;
    float conv[6];
    char msg[PATH_MAX + 128];

    snprintf(path, sizeof path, "%s/all.safetensors", dir);
    ck_assert_int_eq(rb_safetensors_save(path, entries, 6, keys, values, 2), RB_OK);

    /* the header is padded with spaces so the data starts 8-byte aligned */
    raw = read_whole_file(path, &size);
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | raw[i];
    ck_assert_uint_eq(n % 8, 0);
    ck_assert_uint_eq(size, 8 + n + 24 + 8 + 6 + 4 + 0 + 24);
    ck_assert_int_eq(raw[8], '{');
    ck_assert(raw[8 + n - 1] == '}' || raw[8 + n - 1] == ' ');
    free(raw);

    ck_assert_int_eq(rb_safetensors_load(&st, path), RB_OK);
    ck_assert_uint_eq(rb_safetensors_count(st), 6);
    ck_assert_str_eq(rb_safetensors_metadata(st, "format"), "pt");
    ck_assert_str_eq(rb_safetensors_metadata(st, "note"), values[1]);
    ck_assert_ptr_null(rb_safetensors_metadata(st, "missing"));

    /* file order is the order given (ascending offsets) */
    for (size_t i = 0; i < 6; i++) {
        ck_assert_int_eq(rb_safetensors_get(st, i, &t), RB_OK);
        ck_assert_str_eq(t.name, entries[i].name);
        ck_assert_int_eq(t.ndim, entries[i].ndim);
        for (int d = 0; d < t.ndim; d++)
            ck_assert_int_eq(t.shape[d], entries[i].shape[d]);
        if (t.nbytes)
            ck_assert_int_eq(memcmp(t.data, entries[i].data, t.nbytes), 0);
    }
    ck_assert_int_eq(rb_safetensors_get(st, 6, &t), RB_ERR_INVALID_ARGUMENT);

    ck_assert_int_eq(rb_safetensors_find(st, "layer1.0.conv1.weight", &t), RB_OK);
    ck_assert_str_eq(t.dtype, "F32");
    ck_assert_uint_eq(t.element_size, 4);
    ck_assert_int_eq(t.numel, 6);
    ck_assert_uint_eq(t.nbytes, 24);
    ck_assert_int_eq(rb_safetensors_to_f32(&t, conv), RB_OK);
    ck_assert_int_eq(memcmp(conv, f32, sizeof f32), 0);

    ck_assert_int_eq(rb_safetensors_find(st, "bf", &t), RB_OK);
    ck_assert_str_eq(t.dtype, "BF16");
    ck_assert_int_eq(rb_safetensors_to_f32(&t, conv), RB_OK);
    ck_assert(conv[0] == 1.0f && conv[1] == -2.0f && conv[2] == 0.0f && isinf(conv[3]) && conv[3] > 0);

    ck_assert_int_eq(rb_safetensors_find(st, "bytes", &t), RB_OK);
    ck_assert_str_eq(t.dtype, "U8");
    ck_assert_int_eq(rb_safetensors_find(st, "scalar", &t), RB_OK);
    ck_assert_str_eq(t.dtype, "I32");
    ck_assert_int_eq(t.ndim, 0);
    ck_assert_int_eq(t.numel, 1);
    ck_assert_uint_eq(t.nbytes, 4);
    ck_assert_int_eq(rb_safetensors_find(st, "empty", &t), RB_OK);
    ck_assert_int_eq(t.numel, 0);
    ck_assert_uint_eq(t.nbytes, 0);
    ck_assert_int_eq(rb_safetensors_to_f32(&t, NULL), RB_OK);
    ck_assert_int_eq(rb_safetensors_find(st, "counts", &t), RB_OK);
    ck_assert_str_eq(t.dtype, "I64");
    ck_assert_int_eq(rb_safetensors_to_f32(&t, conv), RB_ERR_UNSUPPORTED);
    ck_assert_str_eq(rb_last_error(), "tensor 'counts' is I64; only F32, F64, F16 and BF16 tensors convert to float32");

    ck_assert_int_eq(rb_safetensors_find(st, "layer1.0.conv1.wieght", &t), RB_ERR_NOT_FOUND);
    snprintf(msg, sizeof msg, "%s: no tensor 'layer1.0.conv1.wieght' (did you mean 'layer1.0.conv1.weight'?)", path);
    ck_assert_str_eq(rb_last_error(), msg);
    ck_assert_int_eq(rb_safetensors_find(st, "fc.weight", &t), RB_ERR_NOT_FOUND);
    snprintf(msg, sizeof msg, "%s: no tensor 'fc.weight' among its 6 tensors", path);
    ck_assert_str_eq(rb_last_error(), msg);
    rb_safetensors_destroy(st);
    rb_safetensors_destroy(NULL);
}
END_TEST

START_TEST(round_trip_odd_names_and_no_tensors)
{
    const float one = 1.0f;
    const rb_safetensors_entry entries[] = {
        {"quote\"back\\slash", RB_DTYPE_F32, 0, NULL, &one},
        {"tab\tnewline\nctl\x01 \xc3\xa9\xe2\x82\xac", RB_DTYPE_F32, 0, NULL, &one},
        {"", RB_DTYPE_F32, 0, NULL, &one},
    };
    char path[PATH_MAX + 32];
    rb_safetensors *st;
    rb_safetensors_tensor t;
    unsigned char *raw;
    size_t size;

    snprintf(path, sizeof path, "%s/names.safetensors", dir);
    ck_assert_int_eq(rb_safetensors_save(path, entries, 3, NULL, NULL, 0), RB_OK);
    ck_assert_int_eq(rb_safetensors_load(&st, path), RB_OK);
    ck_assert_uint_eq(rb_safetensors_count(st), 3);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(rb_safetensors_find(st, entries[i].name, &t), RB_OK);
        ck_assert_str_eq(t.name, entries[i].name);
    }
    rb_safetensors_destroy(st);

    /* no tensors: "{}" padded to 8 bytes, an empty buffer */
    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    ck_assert_int_eq(rb_safetensors_save(path, NULL, 0, NULL, NULL, 0), RB_OK);
    raw = read_whole_file(path, &size);
    ck_assert_uint_eq(size, 16);
    ck_assert_int_eq(memcmp(raw, "\x08\0\0\0\0\0\0\0{}      ", 16), 0);
    free(raw);
    ck_assert_int_eq(rb_safetensors_load(&st, path), RB_OK);
    ck_assert_uint_eq(rb_safetensors_count(st), 0);
    ck_assert_int_eq(rb_safetensors_find(st, "x", &t), RB_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "none.safetensors: no tensor 'x' among its 0 tensors"));
    rb_safetensors_destroy(st);
}
END_TEST

/* ------------------------------------------------------- PyTorch-made file */

START_TEST(hand_built_file_as_pytorch_writes_it)
{
    /* Keys in the JSON are not in offset order, the header is not padded (so
     * the data is unaligned), there is whitespace, and metadata as
     * safetensors.torch.save_file writes it. */
    const char *header =
        "{\"fc.weight\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]},\n"
        " \"__metadata__\": {\"format\": \"pt\"},\n"
        " \"bn.num_batches_tracked\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [36, 44]},\n"
        " \"fc.bias\": {\"dtype\": \"F16\", \"shape\": [4], \"data_offsets\": [16, 24]},\n"
        " \"fc.double\": {\"dtype\": \"F64\", \"shape\": [1, 1], \"data_offsets\": [24, 32]},\n"
        " \"fc.bf\": {\"dtype\": \"BF16\", \"shape\": [2], \"data_offsets\": [32, 36]}}   ";
    unsigned char data[44];
    const float w[4] = {0.5f, -1.0f, 2.0f, 1e-3f};
    const uint16_t h16[4] = {0x3c00, 0xc000, 0x0001, 0x7c00}; /* 1, -2, 2^-24, inf */
    const double dbl = 1e300;
    const uint16_t b16[2] = {0x4049, 0xbf80}; /* 3.140625, -1 */
    const int64_t tracked = 12345;
    const char *expect_order[] = {"fc.weight", "fc.bias", "fc.double", "fc.bf", "bn.num_batches_tracked"};
    rb_safetensors *st;
    rb_safetensors_tensor t;
    unsigned char *b;
    size_t size;
    float out[4];

    memcpy(data, w, 16);
    memcpy(data + 16, h16, 8);
    memcpy(data + 24, &dbl, 8);
    memcpy(data + 32, b16, 4);
    memcpy(data + 36, &tracked, 8);
    b = make_st(header, data, sizeof data, &size);
    ck_assert_uint_ne((8 + strlen(header)) % 4, 0); /* unaligned data on purpose */
    ck_assert_int_eq(rb_safetensors_parse(&st, b, size, WHAT), RB_OK);
    ck_assert_uint_eq(rb_safetensors_count(st), 5);
    for (size_t i = 0; i < 5; i++) {
        ck_assert_int_eq(rb_safetensors_get(st, i, &t), RB_OK);
        ck_assert_str_eq(t.name, expect_order[i]);
    }
    ck_assert_str_eq(rb_safetensors_metadata(st, "format"), "pt");

    ck_assert_int_eq(rb_safetensors_find(st, "fc.weight", &t), RB_OK);
    ck_assert_ptr_eq(t.data, b + 8 + strlen(header));
    ck_assert_int_eq(rb_safetensors_to_f32(&t, out), RB_OK);
    ck_assert_int_eq(memcmp(out, w, sizeof w), 0);

    ck_assert_int_eq(rb_safetensors_find(st, "fc.bias", &t), RB_OK);
    ck_assert_int_eq(t.shape[0], 4);
    ck_assert_int_eq(rb_safetensors_to_f32(&t, out), RB_OK);
    ck_assert(out[0] == 1.0f && out[1] == -2.0f && out[2] == 0x1p-24f && isinf(out[3]));

    ck_assert_int_eq(rb_safetensors_find(st, "fc.double", &t), RB_OK);
    ck_assert_int_eq(rb_safetensors_to_f32(&t, out), RB_OK);
    ck_assert(isinf(out[0]) && out[0] > 0); /* 1e300 does not fit a float */

    ck_assert_int_eq(rb_safetensors_find(st, "fc.bf", &t), RB_OK);
    ck_assert_int_eq(rb_safetensors_to_f32(&t, out), RB_OK);
    ck_assert(out[0] == 3.140625f && out[1] == -1.0f);

    ck_assert_int_eq(rb_safetensors_find(st, "bn.num_batches_tracked", &t), RB_OK);
    ck_assert_int_eq(t.ndim, 0);
    ck_assert_int_eq(t.numel, 1);
    {
        int64_t v;
        memcpy(&v, t.data, 8);
        ck_assert_int_eq(v, 12345);
    }
    rb_safetensors_destroy(st);
    free(b);
}
END_TEST

START_TEST(escaped_names_are_decoded)
{
    const char *header = "{\"\\ud83d\\ude00\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                         "\"caf\\u00e9 \\\"q\\\" \\\\ \\/\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[1,2]}}";
    rb_safetensors *st;
    rb_safetensors_tensor t;
    size_t size;
    unsigned char *b = make_st(header, NULL, 2, &size);
    ck_assert_int_eq(rb_safetensors_parse(&st, b, size, WHAT), RB_OK);
    ck_assert_int_eq(rb_safetensors_find(st, "\xf0\x9f\x98\x80", &t), RB_OK);
    ck_assert_str_eq(t.dtype, "U8");
    ck_assert_int_eq(rb_safetensors_find(st, "caf\xc3\xa9 \"q\" \\ /", &t), RB_OK);
    ck_assert_str_eq(t.dtype, "BOOL");
    ck_assert_uint_eq(t.element_size, 1);
    rb_safetensors_destroy(st);
    free(b);
}
END_TEST

START_TEST(float_conversions_round_correctly)
{
    /* F16 edge cases, F64 rounding at float's limits, NaN kept */
    const uint16_t h16[6] = {0x7bff, 0x0400, 0x03ff, 0x8000, 0xfc00, 0x7e00};
    /* FLT_MAX; just below and at the midpoint to the next binade (inf); tiny; 0.1; NaN */
    const double d[6] = {0x1.fffffep127, 0x1.fffffefffffffp127, 0x1.ffffffp127, -1e-50, 0.1, NAN};
    rb_safetensors_tensor t = {.name = "x", .dtype = "F16", .element_size = 2, .ndim = 1, .shape = {6},
                               .numel = 6, .data = h16, .nbytes = sizeof h16};
    float out[6];
    ck_assert_int_eq(rb_safetensors_to_f32(&t, out), RB_OK);
    ck_assert(out[0] == 65504.0f && out[1] == 0x1p-14f && out[2] == 0x3ffp-24f);
    ck_assert(out[3] == 0.0f && signbit(out[3]) && isinf(out[4]) && out[4] < 0 && isnan(out[5]));

    t = (rb_safetensors_tensor){.name = "y", .dtype = "F64", .element_size = 8, .ndim = 1, .shape = {6},
                                .numel = 6, .data = d, .nbytes = sizeof d};
    ck_assert_int_eq(rb_safetensors_to_f32(&t, out), RB_OK);
    ck_assert(out[0] == 0x1.fffffep127f && out[1] == 0x1.fffffep127f && isinf(out[2]) && out[2] > 0);
    ck_assert(out[3] == 0.0f && signbit(out[3]) && out[4] == 0.1f && isnan(out[5]));
}
END_TEST

/* ------------------------------------------------------------- bad headers */

typedef struct bad_case {
    const char *header;
    size_t data_len;
    rb_status status;
    const char *message;
} bad_case;

#define T(name, body) "\"" name "\":{" body "}"
#define F32_2x3 "\"dtype\":\"F32\",\"shape\":[2,3],"

static const bad_case bad_headers[] = {
    {"{\"a\": ", 0, RB_ERR_CORRUPT, WHAT ": header is not valid JSON (unexpected end at header byte 6)"},
    {"hello", 0, RB_ERR_CORRUPT, WHAT ": header is not valid JSON (unexpected character at header byte 0)"},
    {"", 0, RB_ERR_CORRUPT, WHAT ": header is not valid JSON (unexpected end at header byte 0)"},
    {"{'a': 1}", 0, RB_ERR_CORRUPT,
     WHAT ": header is not valid JSON (expected a string key at header byte 1)"},
    {"{\"a\":NaN}", 0, RB_ERR_CORRUPT, WHAT ": header is not valid JSON (unexpected character at header byte 5)"},
    {"{\"a\":{},}", 0, RB_ERR_CORRUPT,
     WHAT ": header is not valid JSON (expected a string key at header byte 8)"},
    {"{\"a\tb\":{}}", 0, RB_ERR_CORRUPT,
     WHAT ": header is not valid JSON (control character in a string at header byte 3)"},
    {"{\"a\\u0000b\":{}}", 0, RB_ERR_CORRUPT,
     WHAT ": header is not valid JSON (\\u0000 escape (no name or value may hold a NUL) at header byte 3)"},
    {"{\"\\ud800x\":{}}", 0, RB_ERR_CORRUPT,
     WHAT ": header is not valid JSON (unpaired surrogate in a \\u escape at header byte 2)"},
    {"{\"\\udc00\":{}}", 0, RB_ERR_CORRUPT,
     WHAT ": header is not valid JSON (unpaired surrogate in a \\u escape at header byte 2)"},
    {"{\"a\\u12\":{}}", 0, RB_ERR_CORRUPT, WHAT ": header is not valid JSON (bad \\u escape at header byte 3)"},
    {"{\"a\\x41\":{}}", 0, RB_ERR_CORRUPT, WHAT ": header is not valid JSON (bad escape in a string at header byte 3)"},
    {"{\"a\":01}", 0, RB_ERR_CORRUPT, WHAT ": header is not valid JSON (number with a leading zero at header byte 6)"},
    {"{} x", 0, RB_ERR_CORRUPT, WHAT ": header is not valid JSON (unexpected bytes after the JSON value at header byte 3)"},
    {"{}{}", 0, RB_ERR_CORRUPT, WHAT ": header is not valid JSON (unexpected bytes after the JSON value at header byte 2)"},
    {"{\"\xff\":{}}", 0, RB_ERR_CORRUPT, WHAT ": header is not valid JSON (invalid UTF-8 in a string at header byte 2)"},
    {"[1, 2]", 0, RB_ERR_CORRUPT, WHAT ": header is a JSON array, not an object"},
    {"\"x\"", 0, RB_ERR_CORRUPT, WHAT ": header is a JSON string, not an object"},
    /* 16 containers may nest: the 16th '[' (at byte 20) is the 17th container */
    {"{\"a\":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]}", 0, RB_ERR_CORRUPT,
     WHAT ": header is not valid JSON (nesting too deep at header byte 20)"},

    /* entries */
    {"{\"w\":[1]}", 0, RB_ERR_CORRUPT, WHAT ": tensor 'w': entry is a JSON array, not an object"},
    {"{" T("w", "\"shape\":[2,3],\"data_offsets\":[0,24]") "}", 24, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': missing field 'dtype'"},
    {"{" T("w", "\"dtype\":\"F32\",\"data_offsets\":[0,24]") "}", 24, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': missing field 'shape'"},
    {"{" T("w", F32_2x3 "\"offsets\":[0,24]") "}", 24, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': unexpected field 'offsets' (an entry has only dtype, shape and data_offsets)"},
    {"{" T("w", F32_2x3 "\"data_offsets\":[0,24],\"extra\":1") "}", 24, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': unexpected field 'extra' (an entry has only dtype, shape and data_offsets)"},
    {"{" T("w", "\"dtype\":\"F32\",\"shape\":[2,3]") "}", 24, RB_ERR_CORRUPT, WHAT ": tensor 'w': missing field 'data_offsets'"},
    {"{" T("w", "\"dtype\":4,\"shape\":[2,3],\"data_offsets\":[0,24]") "}", 24, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': dtype is a JSON integer, not a string"},
    {"{" T("w", "\"dtype\":\"F31\",\"shape\":[2,3],\"data_offsets\":[0,24]") "}", 24, RB_ERR_UNSUPPORTED,
     WHAT ": tensor 'w': unknown dtype 'F31' (known: F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL F8_E4M3 "
          "F8_E5M2)"},
    {"{" T("w", "\"dtype\":\"f32\",\"shape\":[2,3],\"data_offsets\":[0,24]") "}", 24, RB_ERR_UNSUPPORTED,
     WHAT ": tensor 'w': unknown dtype 'f32' (known: F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL F8_E4M3 "
          "F8_E5M2)"},
    {"{" T("w", "\"dtype\":\"F32\",\"shape\":\"2x3\",\"data_offsets\":[0,24]") "}", 24, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': shape is a JSON string, not an array"},
    {"{" T("w", "\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,24]") "}", 24, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': shape[1] is negative (-3)"},
    {"{" T("w", "\"dtype\":\"F32\",\"shape\":[2.0,3],\"data_offsets\":[0,24]") "}", 24, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': shape[0] is a JSON number, not an integer"},
    {"{" T("w", "\"dtype\":\"F32\",\"shape\":[2,null],\"data_offsets\":[0,24]") "}", 24, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': shape[1] is a JSON null, not an integer"},
    {"{" T("w", "\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]") "}", 1, RB_ERR_UNSUPPORTED,
     WHAT ": tensor 'w': shape has 9 dimensions, more than the 8 robusta supports"},
    {"{" T("w", "\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,1]") "}", 1, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': shape [4294967296, 4294967296] has more elements than fit in 64 bits"},
    {"{" T("w", "\"dtype\":\"F64\",\"shape\":[4294967296,1073741824],\"data_offsets\":[0,1]") "}", 1, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': F64 [4294967296, 1073741824] has more bytes than fit in 64 bits"},
    {"{" T("w", "\"dtype\":\"U8\",\"shape\":[18446744073709551615],\"data_offsets\":[0,1]") "}", 1, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': shape[0] = 18446744073709551615 is too large"},
    {"{" T("w", F32_2x3 "\"data_offsets\":[0]") "}", 24, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': data_offsets is not an array of two integers [begin, end]"},
    {"{" T("w", F32_2x3 "\"data_offsets\":{\"begin\":0}") "}", 24, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': data_offsets is not an array of two integers [begin, end]"},
    {"{" T("w", F32_2x3 "\"data_offsets\":[0,\"24\"]") "}", 24, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': data_offsets[1] is a JSON string, not an integer"},
    {"{" T("w", F32_2x3 "\"data_offsets\":[-8,16]") "}", 24, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': data_offsets[0] is negative (-8)"},
    {"{" T("w", F32_2x3 "\"data_offsets\":[24,0]") "}", 24, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': data_offsets [24, 0] end before they begin"},
    {"{" T("w", F32_2x3 "\"data_offsets\":[0,32]") "}", 24, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': data_offsets [0, 32] run past the end of the data (24 bytes)"},
    {"{" T("w", F32_2x3 "\"data_offsets\":[0,18446744073709551615]") "}", 24, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': data_offsets [0, 18446744073709551615] run past the end of the data (24 bytes)"},
    {"{" T("fc.weight", "\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[10,20]") "}", 20, RB_ERR_CORRUPT,
     WHAT ": tensor 'fc.weight': data_offsets [10, 20] hold 10 bytes but F32 [3, 2] needs 24"},
    {"{" T("s", "\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,4]") "}", 4, RB_ERR_CORRUPT,
     WHAT ": tensor 's': data_offsets [0, 4] hold 4 bytes but I64 [] needs 8"},

    /* the tensors must tile the buffer */
    {"{" T("a", "\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]") "," T(
         "b", "\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[8,24]") "}",
     24, RB_ERR_CORRUPT, WHAT ": tensors 'a' [0, 16] and 'b' [8, 24] overlap"},
    {"{" T("b", "\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]") "," T(
         "a", "\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]") "}",
     8, RB_ERR_CORRUPT, WHAT ": tensors 'a' [0, 8] and 'b' [0, 8] overlap"},
    {"{" T("a", "\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]") "," T(
         "b", "\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[12,20]") "}",
     20, RB_ERR_CORRUPT, WHAT ": data bytes [8, 12) belong to no tensor"},
    {"{" T("a", "\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[4,12]") "}", 12, RB_ERR_CORRUPT,
     WHAT ": data bytes [0, 4) belong to no tensor"},
    {"{" T("a", "\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]") "}", 9, RB_ERR_CORRUPT,
     WHAT ": data bytes [8, 9) belong to no tensor"},
    {"{}", 3, RB_ERR_CORRUPT, WHAT ": data bytes [0, 3) belong to no tensor"},
    {"{" T("a", "\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[5,5]") "}", 5, RB_ERR_CORRUPT,
     WHAT ": data bytes [0, 5) belong to no tensor"},

    /* duplicate keys, which json-c would silently merge */
    {"{" T("w", "\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]") "," T(
         "w", "\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]") "}",
     2, RB_ERR_CORRUPT, WHAT ": header names tensor 'w' twice"},
    {"{" T("w", "\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]") "," T(
         "\\u0077", "\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]") "}",
     2, RB_ERR_CORRUPT, WHAT ": header names tensor 'w' twice"},
    {"{" T("w", "\"dtype\":\"F32\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]") "}", 1, RB_ERR_CORRUPT,
     WHAT ": tensor 'w': field 'dtype' appears twice"},
    {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, RB_ERR_CORRUPT, WHAT ": __metadata__ has the key 'k' twice"},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, RB_ERR_CORRUPT, WHAT ": header has '__metadata__' twice"},

    /* metadata */
    {"{\"__metadata__\":{\"epochs\":90}}", 0, RB_ERR_CORRUPT,
     WHAT ": __metadata__ value for 'epochs' is a JSON integer, not a string"},
    {"{\"__metadata__\":{\"a\":\"b\",\"c\":null}}", 0, RB_ERR_CORRUPT,
     WHAT ": __metadata__ value for 'c' is a JSON null, not a string"},
    {"{\"__metadata__\":[\"a\"]}", 0, RB_ERR_CORRUPT, WHAT ": __metadata__ is a JSON array, not an object"},
};

START_TEST(bad_headers_are_refused_with_one_clear_line)
{
    int failures = 0;
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
        const bad_case *c = &bad_headers[i];
        size_t size;
        unsigned char *b = make_st(c->header, NULL, c->data_len, &size);
        rb_safetensors *st = not_null;
        rb_status s = rb_safetensors_parse(&st, b, size, WHAT);
        if (s != c->status || strcmp(rb_last_error(), c->message) != 0) {
            fprintf(stderr, "case %zu: %s\n  got      %d %s\n  expected %d %s\n", i, c->header, (int)s,
                    rb_last_error(), (int)c->status, c->message);
            failures++;
        }
        ck_assert_ptr_null(st);
        assert_one_line();
        free(b);
    }
    ck_assert_int_eq(failures, 0);
}
END_TEST

START_TEST(bad_header_lengths_are_refused)
{
    unsigned char b[64] = {0};
    rb_safetensors *st;
    size_t size;
    unsigned char *ok;

    ck_assert_int_eq(rb_safetensors_parse(&st, b, 5, WHAT), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(),
                     WHAT ": 5 bytes is too short for a safetensors file (it starts with an 8-byte header length)");
    ck_assert_int_eq(rb_safetensors_parse(&st, NULL, 0, NULL), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), "safetensors data: 0 bytes is too short for a safetensors file (it starts with an "
                                      "8-byte header length)");

    /* longer than the file */
    b[0] = 100;
    memcpy(b + 8, "{}", 2);
    ck_assert_int_eq(rb_safetensors_parse(&st, b, 10, WHAT), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), WHAT ": header length 100 runs past the end of the file (10 bytes)");

    /* more than the format's limit, whatever the file's size */
    b[0] = 1;
    b[3] = 0x40; /* 0x40000001 */
    ck_assert_int_eq(rb_safetensors_parse(&st, b, sizeof b, WHAT), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), WHAT ": header length 1073741825 is more than the format's limit of 104857600 "
                                      "bytes (not a safetensors file?)");
    memset(b, 0xff, 8);
    ck_assert_int_eq(rb_safetensors_parse(&st, b, sizeof b, WHAT), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), WHAT ": header length 18446744073709551615 is more than the format's limit of "
                                      "104857600 bytes (not a safetensors file?)");

    /* a NUL byte inside the header */
    ok = make_st("{}  ", NULL, 0, &size);
    ok[10] = '\0';
    ck_assert_int_eq(rb_safetensors_parse(&st, ok, size, WHAT), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), WHAT ": header is not valid JSON (NUL byte at header byte 2)");
    free(ok);

    /* exactly 8 bytes with an empty header is not JSON */
    memset(b, 0, 8);
    ck_assert_int_eq(rb_safetensors_parse(&st, b, 8, WHAT), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), WHAT ": header is not valid JSON (unexpected end at header byte 0)");

    /* padding with any JSON whitespace is fine */
    ok = make_st(" \n{ }\t\r\n  ", NULL, 0, &size);
    ck_assert_int_eq(rb_safetensors_parse(&st, ok, size, WHAT), RB_OK);
    rb_safetensors_destroy(st);
    free(ok);
}
END_TEST

START_TEST(missing_files_and_folders)
{
    char path[PATH_MAX + 32];
    rb_safetensors *st;
    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    ck_assert_int_eq(rb_safetensors_load(&st, path), RB_ERR_NOT_FOUND);
    ck_assert_ptr_null(st);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), path));
    ck_assert_int_eq(rb_safetensors_load(&st, dir), RB_ERR_IO);
    assert_one_line();
}
END_TEST

/* A valid file whose last tensor is not empty, so that any cut damages it. */
static unsigned char *valid_file(size_t *size)
{
    const char *header = "{\"__metadata__\":{\"format\":\"pt\"},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"e\":{\"dtype\":\"F16\",\"shape\":[0,3],\"data_offsets\":[8,8]},"
                         "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[8,14]}}  ";
    return make_st(header, NULL, 14, size);
}

START_TEST(truncation_at_every_length_fails_cleanly)
{
    size_t size;
    unsigned char *full = valid_file(&size);
    rb_safetensors *st;
    ck_assert_int_eq(rb_safetensors_parse(&st, full, size, WHAT), RB_OK);
    ck_assert_uint_eq(rb_safetensors_count(st), 3);
    rb_safetensors_destroy(st);
    for (size_t len = 0; len < size; len++) {
        /* a fresh allocation of exactly len bytes, so ASan sees any overread */
        unsigned char *cut = malloc(len ? len : 1);
        memcpy(cut, full, len);
        st = not_null;
        ck_assert_msg(rb_safetensors_parse(&st, cut, len, WHAT) == RB_ERR_CORRUPT, "length %zu: %s", len,
                      rb_last_error());
        ck_assert_ptr_null(st);
        assert_one_line();
        free(cut);
    }
    free(full);
}
END_TEST

START_TEST(random_damage_never_crashes)
{
    size_t size;
    unsigned char *full = valid_file(&size);
    uint64_t state = 0x9e3779b97f4a7c15u;
    for (int iter = 0; iter < 20000; iter++) {
        unsigned char *b = malloc(size);
        rb_safetensors *st;
        int flips = 1 + iter % 4;
        memcpy(b, full, size);
        for (int k = 0; k < flips; k++) {
            state = state * 6364136223846793005u + 1442695040888963407u;
            b[(state >> 33) % size] = (unsigned char)(state >> 17);
        }
        if (rb_safetensors_parse(&st, b, size, WHAT) == RB_OK) {
            rb_safetensors_tensor t;
            float out[16];
            for (size_t i = 0; i < rb_safetensors_count(st); i++) {
                ck_assert_int_eq(rb_safetensors_get(st, i, &t), RB_OK);
                ck_assert(t.nbytes == (size_t)t.numel * t.element_size);
                ck_assert((const unsigned char *)t.data + t.nbytes <= b + size);
                if (t.numel <= 16)
                    (void)rb_safetensors_to_f32(&t, out);
            }
            rb_safetensors_destroy(st);
        } else {
            assert_one_line();
        }
        free(b);
    }
    free(full);
}
END_TEST

/* ---------------------------------------------------------------- writers */

START_TEST(failed_saves_leave_nothing_behind)
{
    const float v[2] = {1, 2};
    const int64_t shape[1] = {2}, bad_shape[1] = {-2};
    rb_safetensors_entry e = {"w", RB_DTYPE_F32, 1, shape, v};
    char good[PATH_MAX + 32], sub[PATH_MAX + 32], missing[PATH_MAX + 64];
    unsigned char *before, *after;
    size_t before_size, after_size;

    snprintf(good, sizeof good, "%s/good.safetensors", dir);
    ck_assert_int_eq(rb_safetensors_save(good, &e, 1, NULL, NULL, 0), RB_OK);
    before = read_whole_file(good, &before_size);

    /* the destination is a folder */
    snprintf(sub, sizeof sub, "%s/folder", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    ck_assert_int_eq(rb_safetensors_save(sub, &e, 1, NULL, NULL, 0), RB_ERR_IO);
    assert_one_line();
    ck_assert_ptr_nonnull(strstr(rb_last_error(), sub));
    ck_assert_int_eq(count_dir_entries(sub), 0);
    ck_assert_int_eq(count_dir_entries(dir), 2);

    /* the folder does not exist */
    snprintf(missing, sizeof missing, "%s/no/such/out.safetensors", dir);
    ck_assert_int_eq(rb_safetensors_save(missing, &e, 1, NULL, NULL, 0), RB_ERR_IO);
    assert_one_line();
    ck_assert_int_eq(count_dir_entries(dir), 2);

    /* bad entries, over a good file: refused before anything is written */
    {
        rb_safetensors_entry two[2] = {e, e};
        rb_safetensors_entry neg = {"w", RB_DTYPE_F32, 1, bad_shape, v};
        rb_safetensors_entry reserved = {"__metadata__", RB_DTYPE_F32, 1, shape, v};
        rb_safetensors_entry nodata = {"w", RB_DTYPE_F32, 1, shape, NULL};
        rb_safetensors_entry baddtype = {"w", (rb_dtype)99, 1, shape, v};
        rb_safetensors_entry badutf8 = {"w\xc3(", RB_DTYPE_F32, 1, shape, v};
        rb_safetensors_entry toomany = {"w", RB_DTYPE_F32, RB_MAX_DIMS + 1, shape, v};
        const char *const k2[] = {"a", "a"}, *const v2[] = {"1", "2"};
        char msg[PATH_MAX + 128];

        ck_assert_int_eq(rb_safetensors_save(good, two, 2, NULL, NULL, 0), RB_ERR_INVALID_ARGUMENT);
        snprintf(msg, sizeof msg, "%s: tensor 'w' is given twice", good);
        ck_assert_str_eq(rb_last_error(), msg);
        ck_assert_int_eq(rb_safetensors_save(good, &neg, 1, NULL, NULL, 0), RB_ERR_INVALID_ARGUMENT);
        snprintf(msg, sizeof msg, "%s: tensor 'w': dimension 0 is negative (-2)", good);
        ck_assert_str_eq(rb_last_error(), msg);
        ck_assert_int_eq(rb_safetensors_save(good, &reserved, 1, NULL, NULL, 0), RB_ERR_INVALID_ARGUMENT);
        snprintf(msg, sizeof msg, "%s: '__metadata__' is reserved and cannot name a tensor", good);
        ck_assert_str_eq(rb_last_error(), msg);
        ck_assert_int_eq(rb_safetensors_save(good, &nodata, 1, NULL, NULL, 0), RB_ERR_INVALID_ARGUMENT);
        snprintf(msg, sizeof msg, "%s: tensor 'w': data is NULL", good);
        ck_assert_str_eq(rb_last_error(), msg);
        ck_assert_int_eq(rb_safetensors_save(good, &baddtype, 1, NULL, NULL, 0), RB_ERR_INVALID_ARGUMENT);
        snprintf(msg, sizeof msg, "%s: tensor 'w': dtype 99 cannot be written", good);
        ck_assert_str_eq(rb_last_error(), msg);
        ck_assert_int_eq(rb_safetensors_save(good, &badutf8, 1, NULL, NULL, 0), RB_ERR_INVALID_ARGUMENT);
        ck_assert_int_eq(rb_safetensors_save(good, &toomany, 1, NULL, NULL, 0), RB_ERR_INVALID_ARGUMENT);
        ck_assert_int_eq(rb_safetensors_save(good, &e, 1, k2, v2, 2), RB_ERR_INVALID_ARGUMENT);
        snprintf(msg, sizeof msg, "%s: metadata key 'a' is given twice", good);
        ck_assert_str_eq(rb_last_error(), msg);
        ck_assert_int_eq(rb_safetensors_save(NULL, &e, 1, NULL, NULL, 0), RB_ERR_INVALID_ARGUMENT);
    }
    after = read_whole_file(good, &after_size);
    ck_assert_uint_eq(after_size, before_size);
    ck_assert_int_eq(memcmp(before, after, before_size), 0);
    ck_assert_int_eq(count_dir_entries(dir), 2);
    free(before);
    free(after);
}
END_TEST

START_TEST(save_replaces_an_existing_file)
{
    const uint8_t a[3] = {1, 2, 3}, b[1] = {9};
    const int64_t s3[1] = {3}, s1[1] = {1};
    rb_safetensors_entry ea = {"a", RB_DTYPE_U8, 1, s3, a}, eb = {"b", RB_DTYPE_U8, 1, s1, b};
    char path[PATH_MAX + 32];
    rb_safetensors *st;
    rb_safetensors_tensor t;
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    ck_assert_int_eq(rb_safetensors_save(path, &ea, 1, NULL, NULL, 0), RB_OK);
    ck_assert_int_eq(rb_safetensors_save(path, &eb, 1, NULL, NULL, 0), RB_OK);
    ck_assert_int_eq(rb_safetensors_load(&st, path), RB_OK);
    ck_assert_uint_eq(rb_safetensors_count(st), 1);
    ck_assert_int_eq(rb_safetensors_find(st, "b", &t), RB_OK);
    ck_assert_int_eq(((const uint8_t *)t.data)[0], 9);
    rb_safetensors_destroy(st);
    ck_assert_int_eq(count_dir_entries(dir), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, round_trip_every_writable_dtype);
    tcase_add_test(tc, round_trip_odd_names_and_no_tensors);
    tcase_add_test(tc, hand_built_file_as_pytorch_writes_it);
    tcase_add_test(tc, escaped_names_are_decoded);
    tcase_add_test(tc, float_conversions_round_correctly);
    tcase_add_test(tc, bad_headers_are_refused_with_one_clear_line);
    tcase_add_test(tc, bad_header_lengths_are_refused);
    tcase_add_test(tc, missing_files_and_folders);
    tcase_add_test(tc, truncation_at_every_length_fails_cleanly);
    tcase_add_test(tc, random_damage_never_crashes);
    tcase_add_test(tc, failed_saves_leave_nothing_behind);
    tcase_add_test(tc, save_replaces_an_existing_file);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
