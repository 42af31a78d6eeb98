/* Making image files for the tests with libpng and libjpeg directly (not
 * through robusta's codec, which they test): PNGs of every colour type and
 * depth, JPEGs of a chosen quality with 4:4:4 sampling, hand-made PNG
 * chunks with their CRC, and a stderr catcher that proves a decode printed
 * nothing. Free of Check, so that the fuzz corpus writer uses it too: a
 * failure here prints what failed and aborts. */
#ifndef RB_TESTIMAGE_H
#define RB_TESTIMAGE_H

#include <errno.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

/* Aborts, saying what failed, unless `ok`. */
#define TEST_IMAGE_CHECK(ok)                                                                                   \
    do {                                                                                                       \
        if (!(ok)) {                                                                                           \
            fprintf(stderr, "%s:%d: %s failed\n", __FILE__, __LINE__, #ok);                                     \
            abort();                                                                                           \
        }                                                                                                      \
    } while (0)

typedef struct test_bytes {
    unsigned char *data;
    size_t size, cap;
} test_bytes;

static inline void test_bytes_put(test_bytes *b, const void *data, size_t n)
{
    if (b->size + n > b->cap) {
        b->cap = (b->size + n) * 2 + 64;
        b->data = realloc(b->data, b->cap);
        TEST_IMAGE_CHECK(b->data != NULL);
    }
    memcpy(b->data + b->size, data, n);
    b->size += n;
}

static inline void test_png_write_cb(png_structp png, png_bytep data, size_t n)
{
    test_bytes_put(png_get_io_ptr(png), data, n);
}

static inline void test_png_flush_cb(png_structp png)
{
    (void)png;
}

/* A PNG of width × height, `depth` bits, colour type `color_type`, from
 * `rows` packed as libpng wants them (row after row, each
 * png rowbytes long); a palette of `palette_size` colours and `trns_size`
 * transparency entries (palette) or one transparent colour (gray/RGB:
 * `trns_color`) when not 0; Adam7-interlaced when `interlace`. */
static inline test_bytes test_png(int width, int height, int depth, int color_type, const unsigned char *rows,
                                  const unsigned char (*palette)[3], int palette_size, const unsigned char *trns,
                                  int trns_size, const png_color_16 *trns_color, int interlace)
{
    test_bytes b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    size_t rowbytes;
    TEST_IMAGE_CHECK(png != NULL && info != NULL);
    TEST_IMAGE_CHECK(setjmp(png_jmpbuf(png)) == 0);
    png_set_write_fn(png, &b, test_png_write_cb, test_png_flush_cb);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (palette_size > 0) {
        png_color colors[256];
        for (int k = 0; k < palette_size; k++) {
            colors[k].red = palette[k][0];
            colors[k].green = palette[k][1];
            colors[k].blue = palette[k][2];
        }
        png_set_PLTE(png, info, colors, palette_size);
    }
    if (trns_size > 0 || trns_color != NULL)
        png_set_tRNS(png, info, trns, trns_size, trns_color);
    png_write_info(png, info);
    rowbytes = png_get_rowbytes(png, info);
    {
        int passes = png_set_interlace_handling(png);
        for (int p = 0; p < passes; p++)
            for (int y = 0; y < height; y++)
                png_write_row(png, rows + (size_t)y * rowbytes);
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return b;
}

/* A baseline JPEG of `pixels` (height × width × components, 1 gray or 3
 * RGB) at `quality`, every component sampled at full resolution (4:4:4). */
static inline test_bytes test_jpeg(const unsigned char *pixels, int width, int height, int components, int quality)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    unsigned char *out = NULL;
    unsigned long size = 0;
    test_bytes b = {0};
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, &size);
    c.image_width = (JDIMENSION)width;
    c.image_height = (JDIMENSION)height;
    c.input_components = components;
    c.in_color_space = components == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    for (int k = 0; k < c.num_components; k++)
        c.comp_info[k].h_samp_factor = c.comp_info[k].v_samp_factor = 1;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)c.next_scanline * (size_t)width * (size_t)components);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    test_bytes_put(&b, out, size);
    free(out);
    return b;
}

static inline void test_put_be32(test_bytes *b, uint32_t v)
{
    unsigned char p[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                          (unsigned char)v};
    test_bytes_put(b, p, 4);
}

/* Appends one PNG chunk: length, type, data and the CRC of type + data. */
static inline void test_png_chunk(test_bytes *b, const char *type, const unsigned char *data, uint32_t n)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    test_put_be32(b, n);
    test_bytes_put(b, type, 4);
    if (n > 0)
        test_bytes_put(b, data, n);
    crc = crc32(crc, (const Bytef *)type, 4);
    if (n > 0)
        crc = crc32(crc, data, n);
    test_put_be32(b, (uint32_t)crc);
}

/* The bytes of an IHDR chunk's data. */
static inline void test_ihdr(unsigned char out[13], uint32_t width, uint32_t height, int depth, int color_type)
{
    out[0] = (unsigned char)(width >> 24);
    out[1] = (unsigned char)(width >> 16);
    out[2] = (unsigned char)(width >> 8);
    out[3] = (unsigned char)width;
    out[4] = (unsigned char)(height >> 24);
    out[5] = (unsigned char)(height >> 16);
    out[6] = (unsigned char)(height >> 8);
    out[7] = (unsigned char)height;
    out[8] = (unsigned char)depth;
    out[9] = (unsigned char)color_type;
    out[10] = out[11] = out[12] = 0;
}

static inline void test_write_bytes(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        fprintf(stderr, "create %s: %s\n", path, strerror(errno));
    TEST_IMAGE_CHECK(f != NULL);
    TEST_IMAGE_CHECK(size == 0 || fwrite(data, 1, size, f) == size);
    TEST_IMAGE_CHECK(fclose(f) == 0);
}

/* Sends fd 2 to a temporary file until test_stderr_end, which returns what
 * was written there (at most size - 1 bytes). */
typedef struct test_stderr {
    int saved, fd;
} test_stderr;

static inline test_stderr test_stderr_begin(void)
{
    char path[] = "/tmp/robusta-stderr-XXXXXX";
    test_stderr t;
    fflush(stderr);
    t.fd = mkstemp(path);
    TEST_IMAGE_CHECK(t.fd >= 0);
    unlink(path);
    t.saved = dup(2);
    TEST_IMAGE_CHECK(t.saved >= 0);
    TEST_IMAGE_CHECK(dup2(t.fd, 2) == 2);
    return t;
}

static inline void test_stderr_end(test_stderr t, char *out, size_t size)
{
    size_t used = 0;
    ssize_t n;
    fflush(stderr);
    TEST_IMAGE_CHECK(dup2(t.saved, 2) == 2);
    close(t.saved);
    lseek(t.fd, 0, SEEK_SET);
    while (used + 1 < size && (n = read(t.fd, out + used, size - 1 - used)) > 0)
        used += (size_t)n;
    out[used] = '\0';
    close(t.fd);
}

#endif /* RB_TESTIMAGE_H */
