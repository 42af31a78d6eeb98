/* .npy: files exactly as NumPy writes them (version 1.0, 2.0 and 3.0
 * headers, embedded byte for byte), writers that produce the same bytes as
 * np.save, round trips of every dtype and shape, every malformed or refused
 * header with its exact message, truncation at every length, random damage,
 * and writers that fail without touching what is on disk. */
#include "config.h"

#include <dirent.h>
#include <stdint.h>

#include <robusta/interop.h>
#include <robusta/status.h>

#include "testutil.h"

#define WHAT "x.npy"

/* Made with NumPy 1.24: np.save(f, a) or np.lib.format.write_array(f, a, version=...). */
#define NP_F32_2x3 \
    "\x93""NUMPY\x01""\x00""v\x00""{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }                                                          \n\x00""\x00""\x00""\x00""\x00""\x00""\x80""?\x00""\x00""\x00""@\x00""\x00""@@\x00""\x00""\x80""@\x00""\x00""\xa0""@" /* 152 bytes */
#define NP_U8_5 \
    "\x93""NUMPY\x01""\x00""v\x00""{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }                                                            \n\x00""\x01""\x7f""\x80""\xff""" /* 133 bytes */
#define NP_I64_SCALAR \
    "\x93""NUMPY\x01""\x00""v\x00""{'descr': '<i8', 'fortran_order': False, 'shape': (), }                                                              \n\xf9""\xff""\xff""\xff""\xff""\xff""\xff""\xff""" /* 136 bytes */
#define NP_I32_0x4 \
    "\x93""NUMPY\x01""\x00""v\x00""{'descr': '<i4', 'fortran_order': False, 'shape': (0, 4), }                                                          \n" /* 128 bytes */
#define NP_F32_V2 \
    "\x93""NUMPY\x02""\x00""t\x00""\x00""\x00""{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }                                                        \n\x00""\x00""\x00""\x00""\x00""\x00""\x80""?\x00""\x00""\x00""@\x00""\x00""@@\x00""\x00""\x80""@\x00""\x00""\xa0""@" /* 152 bytes */
#define NP_I32_V3 \
    "\x93""NUMPY\x03""\x00""t\x00""\x00""\x00""{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }                                                          \n\x00""\x00""\x00""\x00""\x01""\x00""\x00""\x00""\x02""\x00""\x00""\x00""" /* 140 bytes */
#define NP_U8_8D \
    "\x93""NUMPY\x01""\x00""v\x00""{'descr': '|u1', 'fortran_order': False, 'shape': (1, 2, 1, 2, 1, 2, 1, 2), }                                        \n\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""\x00""" /* 144 bytes */
#define NP_F8 \
    "\x93""NUMPY\x01""\x00""v\x00""{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }                                                          \n" /* 128 bytes */
#define NP_BE \
    "\x93""NUMPY\x01""\x00""v\x00""{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }                                                          \n" /* 128 bytes */
#define NP_FORTRAN \
    "\x93""NUMPY\x01""\x00""v\x00""{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }                                                           \n" /* 128 bytes */
#define NP_OBJECT \
    "\x93""NUMPY\x01""\x00""v\x00""{'descr': '|O', 'fortran_order': False, 'shape': (2,), }                                                             \n" /* 128 bytes */
#define NP_STRUCT \
    "\x93""NUMPY\x01""\x00""v\x00""{'descr': [('x', '<f4'), ('y', '<i4')], 'fortran_order': False, 'shape': (2,), }                                     \n" /* 128 bytes */
#define NP_BOOL \
    "\x93""NUMPY\x01""\x00""v\x00""{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }                                                            \n" /* 128 bytes */

#define BYTES(lit) (const unsigned char *)(lit), sizeof(lit) - 1

static char dir[PATH_MAX];

/* Something other than NULL, to see that a failed parse clears *out. */
static char dummy;
#define not_null ((rb_npy *)(void *)&dummy)

static void setup(void)
{
    make_temp_dir(dir, sizeof dir);
}

static void teardown(void)
{
    remove_temp_dir(dir);
}

static void assert_one_line(void)
{
    ck_assert_ptr_null(strchr(rb_last_error(), '\n'));
    ck_assert_uint_gt(strlen(rb_last_error()), 0);
}

/* A .npy image: magic, version major.minor, the header as given (no
 * padding), then data_len bytes of a ramp. */
static unsigned char *make_npy(int major, int minor, const char *header, size_t data_len, size_t *size)
{
    size_t n = strlen(header), prefix = major == 1 ? 10 : 12;
    unsigned char *b = malloc(prefix + n + data_len + 1);
    ck_assert_ptr_nonnull(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = (unsigned char)minor;
    for (size_t i = 8; i < prefix; i++)
        b[i] = (unsigned char)(n >> (8 * (i - 8)));
    memcpy(b + prefix, header, n);
    for (size_t i = 0; i < data_len; i++)
        b[prefix + n + i] = (unsigned char)i;
    *size = prefix + n + data_len;
    return b;
}

static void assert_array(const rb_npy *a, rb_dtype dtype, int ndim, const int64_t *shape)
{
    int64_t numel = 1;
    ck_assert_int_eq(a->dtype, dtype);
    ck_assert_int_eq(a->ndim, ndim);
    for (int i = 0; i < ndim; i++) {
        ck_assert_int_eq(a->shape[i], shape[i]);
        numel *= shape[i];
    }
    ck_assert_int_eq(a->numel, numel);
    ck_assert_uint_eq(a->nbytes, (size_t)numel * rb_dtype_size(dtype));
    ck_assert_ptr_nonnull(a->data);
    ck_assert_uint_eq((uintptr_t)a->data % 64, 0);
}

/* ------------------------------------------------------ NumPy-made files */

START_TEST(files_written_by_numpy_parse)
{
    rb_npy *a;
    const int64_t s23[2] = {2, 3}, s5[1] = {5}, s04[2] = {0, 4}, s3[1] = {3}, s8[8] = {1, 2, 1, 2, 1, 2, 1, 2};
    const float ramp[6] = {0, 1, 2, 3, 4, 5};
    const uint8_t u8[5] = {0, 1, 127, 128, 255};
    const int32_t i32[3] = {0, 1, 2};
    int64_t v;

    ck_assert_int_eq(rb_npy_parse(&a, BYTES(NP_F32_2x3), WHAT), RB_OK);
    assert_array(a, RB_DTYPE_F32, 2, s23);
    ck_assert_int_eq(memcmp(a->data, ramp, sizeof ramp), 0);
    rb_npy_destroy(a);

    ck_assert_int_eq(rb_npy_parse(&a, BYTES(NP_U8_5), WHAT), RB_OK);
    assert_array(a, RB_DTYPE_U8, 1, s5);
    ck_assert_int_eq(memcmp(a->data, u8, sizeof u8), 0);
    rb_npy_destroy(a);

    ck_assert_int_eq(rb_npy_parse(&a, BYTES(NP_I64_SCALAR), WHAT), RB_OK);
    assert_array(a, RB_DTYPE_I64, 0, NULL);
    memcpy(&v, a->data, sizeof v);
    ck_assert_int_eq(v, -7);
    rb_npy_destroy(a);

    ck_assert_int_eq(rb_npy_parse(&a, BYTES(NP_I32_0x4), WHAT), RB_OK);
    assert_array(a, RB_DTYPE_I32, 2, s04);
    rb_npy_destroy(a);

    ck_assert_int_eq(rb_npy_parse(&a, BYTES(NP_F32_V2), WHAT), RB_OK);
    assert_array(a, RB_DTYPE_F32, 2, s23);
    ck_assert_int_eq(memcmp(a->data, ramp, sizeof ramp), 0);
    rb_npy_destroy(a);

    ck_assert_int_eq(rb_npy_parse(&a, BYTES(NP_I32_V3), WHAT), RB_OK);
    assert_array(a, RB_DTYPE_I32, 1, s3);
    ck_assert_int_eq(memcmp(a->data, i32, sizeof i32), 0);
    rb_npy_destroy(a);

    ck_assert_int_eq(rb_npy_parse(&a, BYTES(NP_U8_8D), WHAT), RB_OK);
    assert_array(a, RB_DTYPE_U8, 8, s8);
    rb_npy_destroy(a);
    rb_npy_destroy(NULL);
}
END_TEST

START_TEST(headers_numpy_would_accept_parse)
{
    static const char *const headers[] = {
        "{\"descr\": \"<f4\", \"shape\": (2,3), \"fortran_order\": False}",
        "{'descr':'<f4','fortran_order':False,'shape':(2L, 3L)}\n",
        " { 'shape' : ( 2 , 3 , ) ,\n 'descr' : '<f4' , 'fortran_order' : False , } \t\r\n",
        "{'fortran_order': False, 'shape': (2, 3), 'descr': '<f4', }                                          \n",
    };
    const int64_t s23[2] = {2, 3};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        size_t size;
        unsigned char *b = make_npy(1, 0, headers[i], 24, &size);
        rb_npy *a;
        ck_assert_msg(rb_npy_parse(&a, b, size, WHAT) == RB_OK, "header %zu: %s", i, rb_last_error());
        assert_array(a, RB_DTYPE_F32, 2, s23);
        ck_assert_int_eq(memcmp(a->data, b + size - 24, 24), 0);
        rb_npy_destroy(a);
        free(b);
    }
    {
        /* '<u1' as well as '|u1'; a 2.0 header without padding */
        size_t size;
        unsigned char *b = make_npy(2, 0, "{'descr': '<u1', 'fortran_order': False, 'shape': (3,)}", 3, &size);
        rb_npy *a;
        const int64_t s3[1] = {3};
        ck_assert_int_eq(rb_npy_parse(&a, b, size, NULL), RB_OK);
        assert_array(a, RB_DTYPE_U8, 1, s3);
        rb_npy_destroy(a);
        free(b);
    }
}
END_TEST

/* ---------------------------------------------------------------- writing */

static void save_and_compare(rb_dtype dtype, int ndim, const int64_t *shape, const void *data, const unsigned char *expect,
                             size_t expect_size)
{
    char path[PATH_MAX + 32];
    unsigned char *got;
    size_t size;
    snprintf(path, sizeof path, "%s/np.npy", dir);
    ck_assert_int_eq(rb_npy_save(path, dtype, ndim, shape, data), RB_OK);
    got = read_whole_file(path, &size);
    ck_assert_uint_eq(size, expect_size);
    ck_assert_int_eq(memcmp(got, expect, size), 0);
    free(got);
}

START_TEST(save_writes_what_numpy_writes)
{
    const int64_t s23[2] = {2, 3}, s5[1] = {5}, s04[2] = {0, 4}, s8[8] = {1, 2, 1, 2, 1, 2, 1, 2};
    const float ramp[6] = {0, 1, 2, 3, 4, 5};
    const uint8_t u8[5] = {0, 1, 127, 128, 255}, zeros[16] = {0};
    const int64_t minus7 = -7;
    save_and_compare(RB_DTYPE_F32, 2, s23, ramp, BYTES(NP_F32_2x3));
    save_and_compare(RB_DTYPE_U8, 1, s5, u8, BYTES(NP_U8_5));
    save_and_compare(RB_DTYPE_I64, 0, NULL, &minus7, BYTES(NP_I64_SCALAR));
    save_and_compare(RB_DTYPE_I32, 2, s04, NULL, BYTES(NP_I32_0x4));
    save_and_compare(RB_DTYPE_U8, 8, s8, zeros, BYTES(NP_U8_8D));
}
END_TEST

START_TEST(round_trip_every_dtype_and_shape)
{
    static const rb_dtype dtypes[] = {RB_DTYPE_F32, RB_DTYPE_U8, RB_DTYPE_I32, RB_DTYPE_I64};
    static const int64_t shapes[][RB_MAX_DIMS] = {{0}, {0}, {7}, {3, 4}, {2, 0, 3}, {1000}, {2, 1, 3, 1, 2, 1, 2, 3},
                                                  {12345678901LL, 0}};
    static const int ndims[] = {0, 1, 1, 2, 3, 1, 8, 2};
    unsigned char data[8000];
    char path[PATH_MAX + 32];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7 + 3);
    snprintf(path, sizeof path, "%s/rt.npy", dir);
    for (size_t d = 0; d < sizeof dtypes / sizeof dtypes[0]; d++)
        for (size_t s = 0; s < sizeof ndims / sizeof ndims[0]; s++) {
            rb_npy *a;
            unsigned char *raw;
            size_t size, header_end;
            ck_assert_int_eq(rb_npy_save(path, dtypes[d], ndims[s], shapes[s], data), RB_OK);
            ck_assert_int_eq(rb_npy_load(&a, path), RB_OK);
            assert_array(a, dtypes[d], ndims[s], shapes[s]);
            ck_assert_int_eq(memcmp(a->data, data, a->nbytes), 0);
            /* version 1.0; the data starts at a multiple of 64, after a '\n' */
            raw = read_whole_file(path, &size);
            ck_assert_int_eq(raw[6], 1);
            ck_assert_int_eq(raw[7], 0);
            header_end = 10 + (size_t)(raw[8] | raw[9] << 8);
            ck_assert_uint_eq(header_end % 64, 0);
            ck_assert_uint_eq(size - header_end, a->nbytes);
            ck_assert_int_eq(raw[header_end - 1], '\n');
            free(raw);
            rb_npy_destroy(a);
        }
    ck_assert_int_eq(count_dir_entries(dir), 1);
}
END_TEST

/* ------------------------------------------------------------- bad input */

typedef struct bad_case {
    const char *header; /* for a version 1.0 file */
    size_t data_len;
    rb_status status;
    const char *message;
} bad_case;

#define H(descr, shape) "{'descr': '" descr "', 'fortran_order': False, 'shape': " shape ", }"

static const bad_case bad_headers[] = {
    {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, RB_ERR_UNSUPPORTED,
     WHAT ": the array is stored in Fortran order; save a C-ordered array (np.ascontiguousarray(a))"},
    {H(">f4", "(2, 3)"), 24, RB_ERR_UNSUPPORTED,
     WHAT ": dtype '>f4' is big-endian; save it little-endian (a.astype(a.dtype.newbyteorder('<')))"},
    {H("<f8", "(2, 3)"), 48, RB_ERR_UNSUPPORTED,
     WHAT ": dtype '<f8' (float64) is not supported; save float32 instead (a.astype(np.float32))"},
    {H("|O", "(2,)"), 16, RB_ERR_UNSUPPORTED, WHAT ": dtype '|O' holds Python objects; save a numeric array"},
    {"{'descr': [('x', '<f4'), ('y', '<i4')], 'fortran_order': False, 'shape': (2,), }", 16, RB_ERR_UNSUPPORTED,
     WHAT ": the array has a structured dtype; save a plain numeric array"},
    {H("|b1", "(2,)"), 2, RB_ERR_UNSUPPORTED,
     WHAT ": dtype '|b1' is not supported; use float32 '<f4', uint8 '|u1', int32 '<i4' or int64 '<i8'"},
    {H("|i1", "(2,)"), 2, RB_ERR_UNSUPPORTED,
     WHAT ": dtype '|i1' is not supported; use float32 '<f4', uint8 '|u1', int32 '<i4' or int64 '<i8'"},
    {H("<f2", "(2,)"), 4, RB_ERR_UNSUPPORTED,
     WHAT ": dtype '<f2' is not supported; use float32 '<f4', uint8 '|u1', int32 '<i4' or int64 '<i8'"},

    {"{'descr': '<f4', 'fortran_order': False, }", 4, RB_ERR_CORRUPT, WHAT ": header has no 'shape' key"},
    {"{'fortran_order': False, 'shape': (1,)}", 4, RB_ERR_CORRUPT, WHAT ": header has no 'descr' key"},
    {"{'descr': '<f4', 'shape': (1,)}", 4, RB_ERR_CORRUPT, WHAT ": header has no 'fortran_order' key"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", 4, RB_ERR_CORRUPT,
     WHAT ": header has an unexpected key 'extra' (a .npy header has only descr, fortran_order and shape)"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'shape': (1,)}", 4, RB_ERR_CORRUPT,
     WHAT ": header has the key 'shape' twice"},
    {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4, RB_ERR_CORRUPT,
     WHAT ": header has the key 'descr' twice"},
    {"{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", 4, RB_ERR_CORRUPT,
     WHAT ": malformed header at byte 44: expected True or False for 'fortran_order'"},
    {"{'descr': '<f4', 'fortran_order': Falsey, 'shape': (1,)}", 4, RB_ERR_CORRUPT,
     WHAT ": malformed header at byte 44: expected True or False for 'fortran_order'"},
    {"{'descr': 4, 'fortran_order': False, 'shape': (1,)}", 4, RB_ERR_CORRUPT,
     WHAT ": malformed header at byte 20: expected a quoted dtype for 'descr'"},
    {"['descr', '<f4']", 4, RB_ERR_CORRUPT, WHAT ": malformed header at byte 10: expected '{'"},
    {"", 4, RB_ERR_CORRUPT, WHAT ": malformed header: it ends where '{' was expected"},
    {"   \n", 4, RB_ERR_CORRUPT, WHAT ": malformed header: it ends where '{' was expected"},
    {"{'descr: '<f4'", 4, RB_ERR_CORRUPT, WHAT ": malformed header at byte 20: expected ':'"},
    {"{'descr': '<f4", 4, RB_ERR_CORRUPT, WHAT ": malformed header: a string is not closed"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", 4, RB_ERR_CORRUPT,
     WHAT ": malformed header: it ends where ',' or '}' was expected"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", 4, RB_ERR_CORRUPT,
     WHAT ": malformed header at byte 66: unexpected text after the dict"},
    {"{'descr': '<f4' 'fortran_order': False, 'shape': (1,)}", 4, RB_ERR_CORRUPT,
     WHAT ": malformed header at byte 26: expected ',' or '}'"},
    {"{descr: '<f4', 'fortran_order': False, 'shape': (1,)}", 4, RB_ERR_CORRUPT,
     WHAT ": malformed header at byte 11: expected a quoted key or '}'"},
    {"{'de\\x73cr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4, RB_ERR_CORRUPT,
     WHAT ": malformed header at byte 14: unexpected character in a string"},

    {H("<f4", "(5)"), 20, RB_ERR_CORRUPT,
     WHAT ": malformed header at byte 62: 'shape' must be a tuple of non-negative integers such as (2, 3), (5,) or ()"},
    {H("<f4", "[2, 3]"), 24, RB_ERR_CORRUPT,
     WHAT ": malformed header at byte 60: 'shape' must be a tuple of non-negative integers such as (2, 3), (5,) or ()"},
    {H("<f4", "(a,)"), 4, RB_ERR_CORRUPT,
     WHAT ": malformed header at byte 61: 'shape' must be a tuple of non-negative integers such as (2, 3), (5,) or ()"},
    {H("<f4", "(2 3)"), 24, RB_ERR_CORRUPT,
     WHAT ": malformed header at byte 63: 'shape' must be a tuple of non-negative integers such as (2, 3), (5,) or ()"},
    {H("<f4", "(,)"), 4, RB_ERR_CORRUPT,
     WHAT ": malformed header at byte 61: 'shape' must be a tuple of non-negative integers such as (2, 3), (5,) or ()"},
    {H("<f4", "(2.5,)"), 4, RB_ERR_CORRUPT,
     WHAT ": malformed header at byte 62: 'shape' must be a tuple of non-negative integers such as (2, 3), (5,) or ()"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3", 24, RB_ERR_CORRUPT,
     WHAT ": malformed header at byte 65: 'shape' must be a tuple of non-negative integers such as (2, 3), (5,) or ()"},
    {H("<f4", "(2, -3)"), 24, RB_ERR_CORRUPT, WHAT ": header: dimension 1 of 'shape' is negative"},
    {H("<f4", "(99999999999999999999,)"), 4, RB_ERR_CORRUPT, WHAT ": header: dimension 0 of 'shape' is too large"},
    {H("|u1", "(1, 1, 1, 1, 1, 1, 1, 1, 1)"), 1, RB_ERR_UNSUPPORTED,
     WHAT ": the array has more than the 8 dimensions robusta supports"},
    {H("<f4", "(4294967296, 4294967296)"), 4, RB_ERR_CORRUPT,
     WHAT ": shape (4294967296, 4294967296) has more elements than fit in 64 bits"},
    {H("<i8", "(4611686018427387904,)"), 4, RB_ERR_CORRUPT,
     WHAT ": i64 (4611686018427387904,) has more bytes than fit in 64 bits"},

    /* the data must be exactly the array */
    {H("<f4", "(2, 3)"), 20, RB_ERR_CORRUPT, WHAT ": the data is 20 bytes but f32 (2, 3) needs 24 (truncated file?)"},
    {H("<i8", "()"), 0, RB_ERR_CORRUPT, WHAT ": the data is 0 bytes but i64 () needs 8 (truncated file?)"},
    {H("<f4", "(2, 3)"), 27, RB_ERR_CORRUPT, WHAT ": 3 unexpected bytes follow the 24 bytes of f32 (2, 3)"},
    {H("|u1", "(0,)"), 1, RB_ERR_CORRUPT, WHAT ": 1 unexpected bytes follow the 0 bytes of u8 (0,)"},
};

START_TEST(bad_headers_are_refused_with_one_clear_line)
{
    int failures = 0;
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
        const bad_case *c = &bad_headers[i];
        size_t size;
        unsigned char *b = make_npy(1, 0, c->header, c->data_len, &size);
        rb_npy *a = not_null;
        rb_status s = rb_npy_parse(&a, b, size, WHAT);
        if (s != c->status || strcmp(rb_last_error(), c->message) != 0) {
            fprintf(stderr, "case %zu: %s\n  got      %d %s\n  expected %d %s\n", i, c->header, (int)s, rb_last_error(),
                    (int)c->status, c->message);
            failures++;
        }
        ck_assert_ptr_null(a);
        assert_one_line();
        free(b);
    }
    ck_assert_int_eq(failures, 0);
}
END_TEST

START_TEST(refused_numpy_files)
{
    rb_npy *a;
    ck_assert_int_eq(rb_npy_parse(&a, BYTES(NP_F8), WHAT), RB_ERR_UNSUPPORTED);
    ck_assert_str_eq(rb_last_error(), WHAT ": dtype '<f8' (float64) is not supported; save float32 instead (a.astype(np.float32))");
    ck_assert_int_eq(rb_npy_parse(&a, BYTES(NP_BE), WHAT), RB_ERR_UNSUPPORTED);
    ck_assert_int_eq(rb_npy_parse(&a, BYTES(NP_FORTRAN), WHAT), RB_ERR_UNSUPPORTED);
    ck_assert_str_eq(rb_last_error(), WHAT ": the array is stored in Fortran order; save a C-ordered array (np.ascontiguousarray(a))");
    ck_assert_int_eq(rb_npy_parse(&a, BYTES(NP_OBJECT), WHAT), RB_ERR_UNSUPPORTED);
    ck_assert_int_eq(rb_npy_parse(&a, BYTES(NP_STRUCT), WHAT), RB_ERR_UNSUPPORTED);
    ck_assert_int_eq(rb_npy_parse(&a, BYTES(NP_BOOL), WHAT), RB_ERR_UNSUPPORTED);
}
END_TEST

START_TEST(bad_preambles_are_refused)
{
    rb_npy *a = not_null;
    unsigned char *b;
    size_t size;

    ck_assert_int_eq(rb_npy_parse(&a, (const unsigned char *)"\x93NUMPX\x01\x00\x00\x00", 10, WHAT), RB_ERR_CORRUPT);
    ck_assert_ptr_null(a);
    ck_assert_str_eq(rb_last_error(), WHAT ": not a .npy file (it does not start with \\x93NUMPY)");
    ck_assert_int_eq(rb_npy_parse(&a, (const unsigned char *)"PK\x03\x04", 4, WHAT), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), WHAT ": not a .npy file (it does not start with \\x93NUMPY)");
    ck_assert_int_eq(rb_npy_parse(&a, (const unsigned char *)"", 0, WHAT), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), WHAT ": file ends after 0 bytes, inside the .npy preamble");
    ck_assert_int_eq(rb_npy_parse(&a, NULL, 0, NULL), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), ".npy data: file ends after 0 bytes, inside the .npy preamble");

    b = make_npy(4, 0, H("<f4", "(1,)"), 4, &size);
    ck_assert_int_eq(rb_npy_parse(&a, b, size, WHAT), RB_ERR_UNSUPPORTED);
    ck_assert_str_eq(rb_last_error(), WHAT ": .npy version 4.0 is not supported (only 1.0, 2.0 and 3.0)");
    free(b);
    b = make_npy(1, 1, H("<f4", "(1,)"), 4, &size);
    ck_assert_int_eq(rb_npy_parse(&a, b, size, WHAT), RB_ERR_UNSUPPORTED);
    ck_assert_str_eq(rb_last_error(), WHAT ": .npy version 1.1 is not supported (only 1.0, 2.0 and 3.0)");
    free(b);
    b = make_npy(0, 0, H("<f4", "(1,)"), 4, &size);
    ck_assert_int_eq(rb_npy_parse(&a, b, size, WHAT), RB_ERR_UNSUPPORTED);
    ck_assert_str_eq(rb_last_error(), WHAT ": .npy version 0.0 is not supported (only 1.0, 2.0 and 3.0)");
    free(b);

    /* the preamble itself is cut */
    ck_assert_int_eq(rb_npy_parse(&a, NP_F32_2x3, 9, WHAT), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), WHAT ": file ends after 9 bytes, inside the .npy preamble");
    ck_assert_int_eq(rb_npy_parse(&a, NP_F32_V2, 11, WHAT), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), WHAT ": file ends after 11 bytes, inside the .npy preamble");

    /* the header length runs past the end */
    ck_assert_int_eq(rb_npy_parse(&a, NP_F32_2x3, 100, WHAT), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), WHAT ": the 118-byte header runs past the end of the file (100 bytes)");
    ck_assert_int_eq(rb_npy_parse(&a, (const unsigned char *)"\x93NUMPY\x02\x00\xff\xff\xff\xff{}", 14, WHAT),
                     RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), WHAT ": the 4294967295-byte header runs past the end of the file (14 bytes)");

    /* truncated data, trailing data in a NumPy file */
    ck_assert_int_eq(rb_npy_parse(&a, NP_F32_2x3, sizeof NP_F32_2x3 - 5, WHAT), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), WHAT ": the data is 20 bytes but f32 (2, 3) needs 24 (truncated file?)");
    {
        unsigned char longer[sizeof NP_F32_2x3 + 7] = NP_F32_2x3;
        ck_assert_int_eq(rb_npy_parse(&a, longer, sizeof longer, WHAT), RB_ERR_CORRUPT);
        ck_assert_str_eq(rb_last_error(), WHAT ": 8 unexpected bytes follow the 24 bytes of f32 (2, 3)");
    }
    ck_assert_ptr_null(a);
}
END_TEST

START_TEST(truncation_at_every_length_fails_cleanly)
{
    static const unsigned char full[] = NP_F32_V2;
    for (size_t len = 0; len + 1 < sizeof full; len++) {
        unsigned char *cut = malloc(len ? len : 1);
        rb_npy *a = not_null;
        memcpy(cut, full, len);
        ck_assert_msg(rb_npy_parse(&a, cut, len, WHAT) == RB_ERR_CORRUPT, "length %zu: %s", len, rb_last_error());
        ck_assert_ptr_null(a);
        assert_one_line();
        free(cut);
    }
}
END_TEST

START_TEST(random_damage_never_crashes)
{
    static const unsigned char full[] = NP_F32_2x3;
    const size_t size = sizeof full - 1;
    uint64_t state = 0x243f6a8885a308d3u;
    for (int iter = 0; iter < 20000; iter++) {
        unsigned char *b = malloc(size);
        rb_npy *a;
        int flips = 1 + iter % 4;
        memcpy(b, full, size);
        for (int k = 0; k < flips; k++) {
            state = state * 6364136223846793005u + 1442695040888963407u;
            /* mostly in the header, where the parsing is */
            b[(state >> 33) % (iter % 2 ? 128 : size)] = (unsigned char)(state >> 17);
        }
        if (rb_npy_parse(&a, b, size, WHAT) == RB_OK) {
            ck_assert_uint_eq(a->nbytes, (size_t)a->numel * rb_dtype_size(a->dtype));
            rb_npy_destroy(a);
        } else {
            assert_one_line();
        }
        free(b);
    }
}
END_TEST

/* ---------------------------------------------------------------- writers */

START_TEST(failed_saves_leave_nothing_behind)
{
    const float v[2] = {1, 2};
    const int64_t shape[RB_MAX_DIMS + 1] = {2, 1, 1, 1, 1, 1, 1, 1, 1}, neg[1] = {-2};
    char good[PATH_MAX + 32], sub[PATH_MAX + 32], missing[PATH_MAX + 64], msg[PATH_MAX + 128];
    unsigned char *before, *after;
    size_t before_size, after_size;
    rb_npy *a;

    snprintf(good, sizeof good, "%s/good.npy", dir);
    ck_assert_int_eq(rb_npy_save(good, RB_DTYPE_F32, 1, shape, v), RB_OK);
    before = read_whole_file(good, &before_size);

    snprintf(sub, sizeof sub, "%s/folder", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    ck_assert_int_eq(rb_npy_save(sub, RB_DTYPE_F32, 1, shape, v), RB_ERR_IO);
    assert_one_line();
    ck_assert_ptr_nonnull(strstr(rb_last_error(), sub));
    ck_assert_int_eq(count_dir_entries(sub), 0);
    ck_assert_int_eq(count_dir_entries(dir), 2);
    ck_assert_int_eq(rb_npy_load(&a, sub), RB_ERR_IO);

    snprintf(missing, sizeof missing, "%s/no/such/out.npy", dir);
    ck_assert_int_eq(rb_npy_save(missing, RB_DTYPE_F32, 1, shape, v), RB_ERR_IO);
    assert_one_line();
    ck_assert_int_eq(rb_npy_load(&a, missing), RB_ERR_NOT_FOUND);
    ck_assert_ptr_null(a);
    ck_assert_int_eq(count_dir_entries(dir), 2);

    /* refused arguments, over a good file */
    ck_assert_int_eq(rb_npy_save(good, RB_DTYPE_BF16, 1, shape, v), RB_ERR_UNSUPPORTED);
    snprintf(msg, sizeof msg, "%s: NumPy has no bfloat16; convert the array to float32", good);
    ck_assert_str_eq(rb_last_error(), msg);
    ck_assert_int_eq(rb_npy_save(good, (rb_dtype)42, 1, shape, v), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_npy_save(good, RB_DTYPE_F32, 1, neg, v), RB_ERR_INVALID_ARGUMENT);
    snprintf(msg, sizeof msg, "%s: dimension 0 is negative (-2)", good);
    ck_assert_str_eq(rb_last_error(), msg);
    ck_assert_int_eq(rb_npy_save(good, RB_DTYPE_F32, RB_MAX_DIMS + 1, shape, v), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_npy_save(good, RB_DTYPE_F32, 1, shape, NULL), RB_ERR_INVALID_ARGUMENT);
    snprintf(msg, sizeof msg, "%s: data is NULL", good);
    ck_assert_str_eq(rb_last_error(), msg);
    ck_assert_int_eq(rb_npy_save(NULL, RB_DTYPE_F32, 1, shape, v), RB_ERR_INVALID_ARGUMENT);

    after = read_whole_file(good, &after_size);
    ck_assert_uint_eq(after_size, before_size);
    ck_assert_int_eq(memcmp(before, after, before_size), 0);
    ck_assert_int_eq(count_dir_entries(dir), 2);
    free(before);
    free(after);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("npy");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, files_written_by_numpy_parse);
    tcase_add_test(tc, headers_numpy_would_accept_parse);
    tcase_add_test(tc, save_writes_what_numpy_writes);
    tcase_add_test(tc, round_trip_every_dtype_and_shape);
    tcase_add_test(tc, bad_headers_are_refused_with_one_clear_line);
    tcase_add_test(tc, refused_numpy_files);
    tcase_add_test(tc, bad_preambles_are_refused);
    tcase_add_test(tc, truncation_at_every_length_fails_cleanly);
    tcase_add_test(tc, random_damage_never_crashes);
    tcase_add_test(tc, failed_saves_leave_nothing_behind);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
