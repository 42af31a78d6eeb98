/* PNG and JPEG files (image.h) through libpng and libjpeg-turbo.
 *
 * Both libraries report errors by calling a handler that must not return.
 * Ours record the library's message and longjmp back into the function
 * that called setjmp, which lives here and returns a status; warnings are
 * recorded or dropped, never printed. The setjmp functions keep every
 * value that must survive the jump in a struct owned by their caller, so
 * no local of theirs is read after a longjmp. */
#include "config.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h> /* before jerror.h, whose message list depends on its version */
#include <jerror.h>
#include <png.h>

#include "data/image.h"
#include "sys/internal.h"

static const unsigned char png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* How much of an image to decode, and where to: the header alone, or the
 * pixels into a caller's buffer of a known size (pixels NULL: a new
 * allocation). */
typedef struct decode_target {
    bool header_only;
    uint8_t *pixels;
    int64_t height, width;
} decode_target;

/* Whether the declared size is the one the caller's buffer holds; else one
 * line. */
static bool fits_target(const decode_target *t, int64_t height, int64_t width, const char *what)
{
    if (t->pixels == NULL || (height == t->height && width == t->width))
        return true;
    rb_error_set(RB_ERR_CORRUPT, "%s is %" PRId64 "×%" PRId64 " pixels, not the %" PRId64 "×%" PRId64
                 " it had when its header was read; did the file change?", what, width, height, t->width, t->height);
    return false;
}

/* How a decode that jumped out ended: the library's message is in the
 * context; or a message is already set (rb_error_set). */
enum { RUN_OK = 0, RUN_LIBRARY = 1, RUN_SET = 2 };

void rb_image_free(rb_image *image)
{
    if (image == NULL)
        return;
    free(image->pixels);
    memset(image, 0, sizeof *image);
}

static bool too_many_pixels(uint64_t height, uint64_t width)
{
    return height == 0 || width == 0 || height > (uint64_t)RB_IMAGE_MAX_PIXELS ||
           width > (uint64_t)RB_IMAGE_MAX_PIXELS / height;
}

/* ------------------------------------------------------------ PNG reading */

typedef struct png_source {
    const unsigned char *bytes;
    size_t size, pos;
    bool truncated;     /* the read callback ran out of bytes */
    char message[256];  /* libpng's error */
    rb_image *image;    /* being filled; pixels owned until success */
    png_bytep *rows;
} png_source;

static void png_on_error(png_structp png, png_const_charp message)
{
    png_source *src = png_get_error_ptr(png);
    snprintf(src->message, sizeof src->message, "%s", message ? message : "unknown libpng error");
    png_longjmp(png, 1);
}

/* Warnings (bad ancillary chunks, which libpng skips) change no pixel. */
static void png_on_warning(png_structp png, png_const_charp message)
{
    (void)png;
    (void)message;
}

static void png_on_read(png_structp png, png_bytep data, size_t length)
{
    png_source *src = png_get_io_ptr(png);
    if (length > src->size - src->pos) {
        src->truncated = true;
        png_error(png, "the data ends early");
    }
    memcpy(data, src->bytes + src->pos, length);
    src->pos += length;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* A palette longer than PNG allows gets a clearer line than libpng's
 * "PLTE: invalid": the chunks before the image data are walked for it.
 * Anything else malformed is left to libpng. */
static rb_status png_check_palette(const unsigned char *bytes, size_t size, const char *what)
{
    size_t pos = 8;
    while (size - pos >= 12) {
        const uint32_t length = be32(bytes + pos);
        const unsigned char *type = bytes + pos + 4;
        if (memcmp(type, "PLTE", 4) == 0) {
            if (length % 3 != 0)
                return rb_error_set(RB_ERR_CORRUPT,
                                    "%s: corrupt PNG: its palette (PLTE chunk) is %" PRIu32
                                    " bytes, not a whole number of RGB entries",
                                    what, length);
            if (length > 3 * 256)
                return rb_error_set(RB_ERR_CORRUPT,
                                    "%s: corrupt PNG: its palette (PLTE chunk) has %" PRIu32
                                    " entries, more than the 256 PNG allows",
                                    what, length / 3);
            return RB_OK;
        }
        if (memcmp(type, "IDAT", 4) == 0 || length > size - pos - 12)
            return RB_OK;
        pos += 12 + (size_t)length;
    }
    return RB_OK;
}

static const char *png_kind(int color_type, int depth, char *buf, size_t size)
{
    const char *name = color_type == PNG_COLOR_TYPE_GRAY         ? "grayscale"
                       : color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? "gray+alpha"
                       : color_type == PNG_COLOR_TYPE_RGB        ? "RGB"
                       : color_type == PNG_COLOR_TYPE_RGB_ALPHA  ? "RGBA"
                       : color_type == PNG_COLOR_TYPE_PALETTE    ? "palette"
                                                                 : "unknown colour type";
    snprintf(buf, size, "%d-bit %s", depth, name);
    return buf;
}

/* The whole decode between png_read_info and png_read_end. Every value
 * that outlives a jump lives in *src. */
static int png_run(png_structp png, png_infop info, png_source *src, rb_image_mode mode, const char *what,
                   const decode_target *target)
{
    if (setjmp(png_jmpbuf(png)))
        return RUN_LIBRARY;

    png_read_info(png, info);
    {
        png_uint_32 width, height;
        int depth, color_type, interlace;
        const int want = mode == RB_IMAGE_RGB ? 3 : 1;
        rb_image *img = src->image;
        char kind[64];

        png_get_IHDR(png, info, &width, &height, &depth, &color_type, &interlace, NULL, NULL);
        if (too_many_pixels(height, width)) {
            rb_error_set(RB_ERR_CORRUPT,
                         "%s: the PNG declares %" PRIu32 "×%" PRIu32
                         " pixels, more than robusta decodes (2^28); is the file damaged?",
                         what, width, height);
            return RUN_SET;
        }
        if (color_type == PNG_COLOR_TYPE_PALETTE) {
            png_colorp colors = NULL;
            int n = 0;
            if ((png_get_PLTE(png, info, &colors, &n) & PNG_INFO_PLTE) != 0 && n > 0 && n <= 256) {
                for (int k = 0; k < n; k++) {
                    img->palette[k][0] = colors[k].red;
                    img->palette[k][1] = colors[k].green;
                    img->palette[k][2] = colors[k].blue;
                }
                img->palette_size = n;
            }
        }
        if (mode == RB_IMAGE_RGB) {
            if (color_type == PNG_COLOR_TYPE_GRAY && depth == 16) {
                /* Pillow opens it as 32-bit integers ("I") and convert('RGB')
                 * clips them at 255: a torchvision pipeline sees white
                 * wherever the image is brighter than 255/65535 */
                rb_error_set(RB_ERR_CORRUPT,
                             "%s: a 16-bit grayscale PNG, which Pillow's convert('RGB') clips at level 255 (white "
                             "above 255 of 65535), so no pipeline matching torchvision can read it; save it as 8-bit",
                             what);
                return RUN_SET;
            }
            if (color_type == PNG_COLOR_TYPE_PALETTE)
                png_set_palette_to_rgb(png);
            if (color_type == PNG_COLOR_TYPE_GRAY && depth < 8)
                png_set_expand_gray_1_2_4_to_8(png);
            if (depth == 16)
                png_set_strip_16(png);
            if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA)
                png_set_gray_to_rgb(png);
            /* Alpha channels and palette transparency (which the palette
             * expansion turns into alpha): dropped, not composited. */
            png_set_strip_alpha(png);
        } else {
            if (color_type != PNG_COLOR_TYPE_PALETTE && !(color_type == PNG_COLOR_TYPE_GRAY && depth <= 8)) {
                rb_error_set(RB_ERR_CORRUPT,
                             "%s: a mask must hold class ids as 8-bit grayscale or palette indices, but this PNG "
                             "is %s; save the class ids as a grayscale or palette PNG",
                             what, png_kind(color_type, depth, kind, sizeof kind));
                return RUN_SET;
            }
            if (depth < 8)
                png_set_packing(png); /* one byte per pixel, the value unscaled */
        }
        (void)png_set_interlace_handling(png);
        png_read_update_info(png, info);
        if (png_get_channels(png, info) != want || png_get_bit_depth(png, info) != 8 ||
            png_get_rowbytes(png, info) != (size_t)width * (size_t)want) {
            rb_error_set(RB_ERR_CORRUPT, "%s: %s PNG did not convert to %d 8-bit channel%s", what,
                         png_kind(color_type, depth, kind, sizeof kind), want, want == 1 ? "" : "s");
            return RUN_SET;
        }
        img->height = height;
        img->width = width;
        img->channels = want;
        if (target->header_only)
            return RUN_OK;
        if (!fits_target(target, height, width, what))
            return RUN_SET;
        img->pixels = target->pixels != NULL ? target->pixels : malloc((size_t)height * (size_t)width * (size_t)want);
        src->rows = malloc((size_t)height * sizeof *src->rows);
        if (img->pixels == NULL || src->rows == NULL) {
            rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory decoding %s (%" PRIu32 "×%" PRIu32 " pixels)", what,
                         width, height);
            return RUN_SET;
        }
        for (png_uint_32 y = 0; y < height; y++)
            src->rows[y] = img->pixels + (size_t)y * (size_t)width * (size_t)want;
    }
    png_read_image(png, src->rows);
    png_read_end(png, NULL);
    return RUN_OK;
}

static rb_status png_decode(const unsigned char *bytes, size_t size, rb_image_mode mode, const char *what,
                            rb_image *out, const decode_target *target)
{
    png_source src;
    png_structp png;
    png_infop info = NULL;
    int run;
    rb_status st;

    if ((st = png_check_palette(bytes, size, what)) != RB_OK)
        return st;
    memset(&src, 0, sizeof src);
    src.bytes = bytes;
    src.size = size;
    src.image = out;
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    if (png != NULL)
        info = png_create_info_struct(png);
    if (png == NULL || info == NULL) {
        png_destroy_read_struct(&png, &info, NULL);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory starting libpng for %s", what);
    }
    png_set_read_fn(png, &src, png_on_read);
    run = png_run(png, info, &src, mode, what, target);
    png_destroy_read_struct(&png, &info, NULL);
    free(src.rows);
    if (run == RUN_OK)
        return RB_OK;
    if (target->pixels != NULL)
        out->pixels = NULL; /* the caller's */
    rb_image_free(out);
    if (run == RUN_SET)
        return rb_last_status() != RB_OK ? rb_last_status() : RB_ERR_CORRUPT;
    if (src.truncated)
        return rb_error_set(RB_ERR_CORRUPT, "%s: truncated PNG: the file ends at byte %zu, inside the image", what,
                            size);
    return rb_error_set(RB_ERR_CORRUPT, "%s: corrupt PNG (libpng: %s)", what, src.message);
}

/* ------------------------------------------------------------ JPEG reading */

typedef struct jpeg_guard {
    struct jpeg_error_mgr mgr; /* first: libjpeg hands back a pointer to it */
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    int code;                  /* libjpeg's message code */
} jpeg_guard;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_guard *g = (jpeg_guard *)(void *)cinfo->err;
    g->code = cinfo->err->msg_code;
    (*cinfo->err->format_message)(cinfo, g->message);
    longjmp(g->jump, 1);
}

/* Level -1 is a warning. Those that mean pixels are missing or wrong
 * (the data ends, entropy codes are corrupt) are errors here: libjpeg
 * would fill the rest of the image with gray and go on. Other warnings
 * (an unknown JFIF revision, stray bytes between markers, a bad ICC
 * marker) leave the pixels alone and are dropped, as are trace messages. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level >= 0)
        return;
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
#if JPEG_LIB_VERSION >= 70 || defined(C_ARITH_CODING_SUPPORTED) || defined(D_ARITH_CODING_SUPPORTED)
    case JWRN_ARITH_BAD_CODE:
#endif
    case JWRN_MUST_RESYNC: jpeg_on_error(cinfo); break;
    default: break;
    }
}

static void jpeg_on_output(j_common_ptr cinfo)
{
    (void)cinfo;
}

/* Creation to last scanline; *img receives the pixels. A zeroed cinfo
 * whose creation failed is still safe to destroy (it has no memory
 * manager yet). */
static int jpeg_run(struct jpeg_decompress_struct *cinfo, jpeg_guard *g, const unsigned char *bytes, size_t size,
                    rb_image *img, const char *what, const decode_target *target)
{
    if (setjmp(g->jump))
        return RUN_LIBRARY;

    jpeg_create_decompress(cinfo);
    jpeg_mem_src(cinfo, bytes, (unsigned long)size);
    if (jpeg_read_header(cinfo, TRUE) != JPEG_HEADER_OK) {
        rb_error_set(RB_ERR_CORRUPT, "%s: the JPEG holds coding tables but no image", what);
        return RUN_SET;
    }
    if (cinfo->jpeg_color_space != JCS_GRAYSCALE && cinfo->jpeg_color_space != JCS_YCbCr &&
        cinfo->jpeg_color_space != JCS_RGB) {
        rb_error_set(RB_ERR_CORRUPT, "%s: %s JPEGs are not supported; convert the image to RGB", what,
                     cinfo->jpeg_color_space == JCS_CMYK ? "CMYK"
                     : cinfo->jpeg_color_space == JCS_YCCK ? "YCCK (CMYK)"
                                                            : "this colour space's");
        return RUN_SET;
    }
    if (too_many_pixels(cinfo->image_height, cinfo->image_width)) {
        rb_error_set(RB_ERR_CORRUPT,
                     "%s: the JPEG declares %u×%u pixels, more than robusta decodes (2^28); is the file damaged?",
                     what, (unsigned)cinfo->image_width, (unsigned)cinfo->image_height);
        return RUN_SET;
    }
    if (target->header_only) {
        /* no scaling is asked for, so the output is the declared size */
        img->height = cinfo->image_height;
        img->width = cinfo->image_width;
        img->channels = 3;
        return RUN_OK;
    }
    cinfo->out_color_space = JCS_RGB;
    jpeg_start_decompress(cinfo);
    if (cinfo->output_components != 3) {
        rb_error_set(RB_ERR_CORRUPT, "%s: the JPEG did not convert to RGB", what);
        return RUN_SET;
    }
    img->height = cinfo->output_height;
    img->width = cinfo->output_width;
    img->channels = 3;
    if (!fits_target(target, img->height, img->width, what))
        return RUN_SET;
    img->pixels = target->pixels != NULL ? target->pixels : malloc((size_t)img->height * (size_t)img->width * 3);
    if (img->pixels == NULL) {
        rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory decoding %s (%" PRId64 "×%" PRId64 " pixels)", what,
                     img->width, img->height);
        return RUN_SET;
    }
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = img->pixels + (size_t)cinfo->output_scanline * (size_t)img->width * 3;
        if (jpeg_read_scanlines(cinfo, &row, 1) != 1) {
            rb_error_set(RB_ERR_CORRUPT, "%s: truncated JPEG: no data for row %u", what,
                         (unsigned)cinfo->output_scanline);
            return RUN_SET;
        }
    }
    jpeg_finish_decompress(cinfo);
    return RUN_OK;
}

static rb_status jpeg_decode(const unsigned char *bytes, size_t size, const char *what, rb_image *out,
                             const decode_target *target)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_guard g;
    int run;

    memset(&cinfo, 0, sizeof cinfo);
    memset(&g, 0, sizeof g);
    cinfo.err = jpeg_std_error(&g.mgr);
    g.mgr.error_exit = jpeg_on_error;
    g.mgr.emit_message = jpeg_on_message;
    g.mgr.output_message = jpeg_on_output;
    run = jpeg_run(&cinfo, &g, bytes, size, out, what, target);
    jpeg_destroy_decompress(&cinfo);
    if (run == RUN_OK)
        return RB_OK;
    if (target->pixels != NULL)
        out->pixels = NULL; /* the caller's */
    rb_image_free(out);
    if (run == RUN_SET)
        return rb_last_status() != RB_OK ? rb_last_status() : RB_ERR_CORRUPT;
    if (g.code == JWRN_JPEG_EOF || g.code == JERR_INPUT_EOF)
        return rb_error_set(RB_ERR_CORRUPT, "%s: truncated JPEG: the file ends at byte %zu, inside the image (%s)",
                            what, size, g.message);
    return rb_error_set(RB_ERR_CORRUPT, "%s: corrupt JPEG (libjpeg: %s)", what, g.message);
}

/* ------------------------------------------------------------ entry points */

/* rb_image_decode to `target`: with header_only the checks of the header
 * alone (out's size set, no pixels). */
static rb_status image_decode(const void *bytes, size_t size, rb_image_mode mode, const char *what, rb_image *out,
                              const decode_target *target)
{
    const unsigned char *b = bytes;
    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_image_decode: out is NULL");
    memset(out, 0, sizeof *out);
    if (what == NULL)
        what = "image";
    if (bytes == NULL && size > 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_image_decode: %s: bytes is NULL", what);
    if (mode != RB_IMAGE_RGB && mode != RB_IMAGE_INDICES)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_image_decode: %s: mode %d is neither RGB nor indices",
                            what, (int)mode);
    if (size == 0)
        return rb_error_set(RB_ERR_CORRUPT, "%s is empty (0 bytes): not a PNG or JPEG image", what);
    if (size >= sizeof png_signature && memcmp(b, png_signature, sizeof png_signature) == 0)
        return png_decode(b, size, mode, what, out, target);
    if (size < sizeof png_signature && memcmp(b, png_signature, size) == 0)
        return rb_error_set(RB_ERR_CORRUPT, "%s: truncated PNG: the file ends at byte %zu, inside the signature",
                            what, size);
    if (size >= 2 && b[0] == 0xff && b[1] == 0xd8) {
        if (mode == RB_IMAGE_INDICES)
            return rb_error_set(RB_ERR_CORRUPT,
                                "%s: a mask must be a PNG of class ids (8-bit grayscale or palette indices), not a "
                                "JPEG, whose lossy compression changes the ids; save it as PNG",
                                what);
        return jpeg_decode(b, size, what, out, target);
    }
    {
        char head[3 * 4 + 1] = "";
        size_t used = 0;
        for (size_t k = 0; k < size && k < 4; k++)
            used += (size_t)snprintf(head + used, sizeof head - used, "%s%02x", k ? " " : "", b[k]);
        return rb_error_set(RB_ERR_CORRUPT, "%s is neither a PNG nor a JPEG image (its first bytes are %s)", what,
                            head);
    }
}

rb_status rb_image_decode(const void *bytes, size_t size, rb_image_mode mode, const char *what, rb_image *out)
{
    static const decode_target fresh = {0};
    return image_decode(bytes, size, mode, what, out, &fresh);
}

rb_status rb_image_read_into(const char *path, uint8_t *pixels, int64_t height, int64_t width)
{
    const decode_target into = {.pixels = pixels, .height = height, .width = width};
    unsigned char *bytes = NULL;
    size_t size = 0;
    rb_image img;
    rb_status st;
    if (path == NULL || pixels == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_image_read_into: path or pixels is NULL");
    if ((st = rb_file_read_all(path, RB_IMAGE_FILE_LIMIT, &bytes, &size)) != RB_OK)
        return st;
    st = image_decode(bytes, size, RB_IMAGE_RGB, path, &img, &into);
    free(bytes);
    return st;
}

rb_status rb_image_probe(const void *bytes, size_t size, rb_image_mode mode, const char *what, int64_t *height,
                         int64_t *width)
{
    static const decode_target header_only = {.header_only = true};
    rb_image header;
    rb_status st = image_decode(bytes, size, mode, what, &header, &header_only);
    if (height != NULL)
        *height = st == RB_OK ? header.height : 0;
    if (width != NULL)
        *width = st == RB_OK ? header.width : 0;
    return st;
}

rb_status rb_image_read(const char *path, rb_image_mode mode, rb_image *out)
{
    unsigned char *bytes = NULL;
    size_t size = 0;
    rb_status st;
    if (out == NULL || path == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_image_read: path or out is NULL");
    memset(out, 0, sizeof *out);
    if ((st = rb_file_read_all(path, RB_IMAGE_FILE_LIMIT, &bytes, &size)) != RB_OK)
        return st;
    st = rb_image_decode(bytes, size, mode, path, out);
    free(bytes);
    return st;
}

/* ------------------------------------------------------------ PNG writing */

typedef struct png_sink {
    unsigned char *data;
    size_t size, cap;
    char message[256];
} png_sink;

static void png_on_write(png_structp png, png_bytep data, size_t length)
{
    png_sink *sink = png_get_io_ptr(png);
    if (length > sink->cap - sink->size) {
        size_t cap = sink->cap ? sink->cap : 4096;
        unsigned char *grown;
        while (cap - sink->size < length) {
            if (cap > SIZE_MAX / 2)
                png_error(png, "out of memory");
            cap *= 2;
        }
        grown = realloc(sink->data, cap);
        if (grown == NULL)
            png_error(png, "out of memory");
        sink->data = grown;
        sink->cap = cap;
    }
    memcpy(sink->data + sink->size, data, length);
    sink->size += length;
}

static void png_on_flush(png_structp png)
{
    (void)png;
}

static void png_on_write_error(png_structp png, png_const_charp message)
{
    png_sink *sink = png_get_error_ptr(png);
    snprintf(sink->message, sizeof sink->message, "%s", message ? message : "unknown libpng error");
    png_longjmp(png, 1);
}

static int png_write_run(png_structp png, png_infop info, const uint8_t *pixels, int64_t height, int64_t width,
                         int channels, const uint8_t (*palette)[3], int palette_size)
{
    if (setjmp(png_jmpbuf(png)))
        return RUN_LIBRARY;
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 3 ? PNG_COLOR_TYPE_RGB
                 : palette    ? PNG_COLOR_TYPE_PALETTE
                              : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette != NULL) {
        png_color colors[256];
        for (int k = 0; k < palette_size; k++) {
            colors[k].red = palette[k][0];
            colors[k].green = palette[k][1];
            colors[k].blue = palette[k][2];
        }
        png_set_PLTE(png, info, colors, palette_size);
    }
    png_write_info(png, info);
    for (int64_t y = 0; y < height; y++)
        png_write_row(png, pixels + (size_t)y * (size_t)width * (size_t)channels);
    png_write_end(png, info);
    return RUN_OK;
}

rb_status rb_image_write_png(const char *path, const uint8_t *pixels, int64_t height, int64_t width, int channels,
                             const uint8_t (*palette)[3], int palette_size)
{
    png_sink sink;
    png_structp png;
    png_infop info = NULL;
    int run;
    rb_status st;

    if (path == NULL || pixels == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_image_write_png: path or pixels is NULL");
    if (height < 1 || width < 1 || height > INT32_MAX || width > INT32_MAX ||
        too_many_pixels((uint64_t)height, (uint64_t)width))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "cannot write %s: an image of %" PRId64 "×%" PRId64
                            " pixels (sides 1 to 2^31 - 1, at most 2^28 pixels)",
                            path, width, height);
    if (channels != 1 && channels != 3)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "cannot write %s: %d channels; PNGs here have 1 or 3", path,
                            channels);
    if (palette != NULL) {
        const size_t n = (size_t)height * (size_t)width;
        if (channels != 1 || palette_size < 1 || palette_size > 256)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "cannot write %s: a palette needs 1 channel and 1 to 256 entries (%d channels, %d "
                                "entries)",
                                path, channels, palette_size);
        for (size_t k = 0; k < n; k++)
            if (pixels[k] >= palette_size)
                return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                    "cannot write %s: pixel (row %zu, column %zu) is index %d, but the palette has "
                                    "%d entries",
                                    path, k / (size_t)width, k % (size_t)width, pixels[k], palette_size);
    } else if (palette_size != 0) {
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "cannot write %s: palette_size %d without a palette", path,
                            palette_size);
    }

    memset(&sink, 0, sizeof sink);
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, png_on_write_error, png_on_warning);
    if (png != NULL)
        info = png_create_info_struct(png);
    if (png == NULL || info == NULL) {
        png_destroy_write_struct(&png, &info);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory starting libpng to write %s", path);
    }
    png_set_write_fn(png, &sink, png_on_write, png_on_flush);
    run = png_write_run(png, info, pixels, height, width, channels, palette, palette_size);
    png_destroy_write_struct(&png, &info);
    if (run != RUN_OK) {
        free(sink.data);
        return rb_error_set(strcmp(sink.message, "out of memory") == 0 ? RB_ERR_OUT_OF_MEMORY : RB_ERR_INTERNAL,
                            "cannot encode %s as PNG (libpng: %s)", path, sink.message);
    }
    st = rb_file_write_atomic(path, sink.data, sink.size);
    free(sink.data);
    return st;
}

void rb_image_voc_palette(uint8_t palette[256][3])
{
    for (int c = 0; c < 256; c++) {
        int r = 0, g = 0, b = 0, id = c;
        for (int bit = 7; bit >= 0; bit--, id >>= 3) {
            r |= (id & 1) << bit;
            g |= (id >> 1 & 1) << bit;
            b |= (id >> 2 & 1) << bit;
        }
        palette[c][0] = (uint8_t)r;
        palette[c][1] = (uint8_t)g;
        palette[c][2] = (uint8_t)b;
    }
}

/* ------------------------------------------------------------ JPEG writing */

/* Creation to the last scanline into a memory buffer. */
static int jpeg_write_run(struct jpeg_compress_struct *cinfo, jpeg_guard *g, const uint8_t *pixels, int64_t height,
                          int64_t width, int channels, int quality, unsigned char **data, unsigned long *size)
{
    if (setjmp(g->jump))
        return RUN_LIBRARY;
    jpeg_create_compress(cinfo);
    jpeg_mem_dest(cinfo, data, size);
    cinfo->image_width = (JDIMENSION)width;
    cinfo->image_height = (JDIMENSION)height;
    cinfo->input_components = channels;
    cinfo->in_color_space = channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(cinfo);
    jpeg_set_quality(cinfo, quality, TRUE);
    jpeg_start_compress(cinfo, TRUE);
    while (cinfo->next_scanline < cinfo->image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo->next_scanline * (size_t)width * (size_t)channels);
        jpeg_write_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_compress(cinfo);
    return RUN_OK;
}

rb_status rb_image_write_jpeg(const char *path, const uint8_t *pixels, int64_t height, int64_t width, int channels,
                              int quality)
{
    struct jpeg_compress_struct cinfo;
    jpeg_guard g;
    unsigned char *data = NULL;
    unsigned long size = 0;
    int run;
    rb_status st;

    if (path == NULL || pixels == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_image_write_jpeg: path or pixels is NULL");
    if (height < 1 || width < 1 || height > 65500 || width > 65500)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "cannot write %s: an image of %" PRId64 "×%" PRId64 " pixels (JPEG sides are 1 to 65500)",
                            path, width, height);
    if (channels != 1 && channels != 3)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "cannot write %s: %d channels; JPEGs here have 1 or 3", path,
                            channels);
    if (quality < 1 || quality > 100)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "cannot write %s: JPEG quality %d is out of range [1, 100]", path,
                            quality);
    memset(&cinfo, 0, sizeof cinfo);
    memset(&g, 0, sizeof g);
    cinfo.err = jpeg_std_error(&g.mgr);
    g.mgr.error_exit = jpeg_on_error;
    g.mgr.output_message = jpeg_on_output;
    run = jpeg_write_run(&cinfo, &g, pixels, height, width, channels, quality, &data, &size);
    jpeg_destroy_compress(&cinfo);
    if (run != RUN_OK) {
        free(data);
        return rb_error_set(RB_ERR_INTERNAL, "cannot encode %s as JPEG (libjpeg: %s)", path, g.message);
    }
    st = rb_file_write_atomic(path, data, size);
    free(data);
    return st;
}
