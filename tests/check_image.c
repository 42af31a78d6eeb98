/* The image codec (src/data/image.c, compiled in: it is internal to the
 * library): PNG round trips of the three kinds robusta writes; every PNG
 * colour type and depth converted to RGB, pixel by pixel against values
 * computed here, and to mask indices where masks may be; JPEG decoding of
 * a JPEG made here with libjpeg; and every bad file (empty, truncated,
 * corrupt, an oversized palette, an absurd declared size, a mask of the
 * wrong kind) refused with one line naming the file, printing nothing on
 * stderr. */
#include "config.h"

#include <stdint.h>

#include <robusta/status.h>

#include "data/image.h"
#include "testimage.h"
#include "testutil.h"

static char dir[512];

static void setup(void)
{
    make_temp_dir(dir, sizeof dir);
}

static void teardown(void)
{
    remove_temp_dir(dir);
}

static void path_in(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

static unsigned char gray_at(int y, int x)
{
    return (unsigned char)((y * 50 + x * 17 + 3) & 255);
}

static void rgb_at(int y, int x, unsigned char out[3])
{
    out[0] = (unsigned char)((y * 31 + x * 7) & 255);
    out[1] = (unsigned char)((255 - y * 13 + x * 29) & 255);
    out[2] = (unsigned char)((y * x * 5 + 11) & 255);
}

/* Decodes the file at `path` in `mode`, requiring success. */
static rb_image read_ok(const char *path, rb_image_mode mode)
{
    rb_image img;
    rb_status s = rb_image_read(path, mode, &img);
    ck_assert_msg(s == RB_OK, "%s: %s", path, rb_last_error());
    return img;
}

/* Writes `b` to NAME in the temp folder, frees it, and returns the path. */
static void put_file(const char *name, test_bytes *b, char *path, size_t size)
{
    path_in(path, size, name);
    test_write_bytes(path, b->data, b->size);
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------ round trips */

START_TEST(gray_png_round_trip)
{
    enum { H = 5, W = 7 };
    uint8_t px[H * W];
    char path[PATH_MAX];
    rb_image img;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            px[y * W + x] = gray_at(y, x);
    path_in(path, sizeof path, "gray.png");
    ck_assert_int_eq(rb_image_write_png(path, px, H, W, 1, NULL, 0), RB_OK);
    ck_assert_int_eq(count_dir_entries(dir), 1); /* no temporary file left behind */

    img = read_ok(path, RB_IMAGE_INDICES);
    ck_assert_int_eq(img.height, H);
    ck_assert_int_eq(img.width, W);
    ck_assert_int_eq(img.channels, 1);
    ck_assert_int_eq(img.palette_size, 0);
    ck_assert_mem_eq(img.pixels, px, sizeof px);
    rb_image_free(&img);
    ck_assert_ptr_null(img.pixels);

    img = read_ok(path, RB_IMAGE_RGB);
    ck_assert_int_eq(img.channels, 3);
    for (int k = 0; k < H * W; k++)
        for (int c = 0; c < 3; c++)
            ck_assert_int_eq(img.pixels[3 * k + c], px[k]);
    rb_image_free(&img);
}
END_TEST

START_TEST(palette_png_round_trip)
{
    enum { H = 4, W = 9, N = 6 };
    static const uint8_t pal[N][3] = {{0, 0, 0}, {128, 0, 0}, {0, 128, 0}, {10, 20, 30}, {255, 255, 255}, {1, 2, 3}};
    uint8_t px[H * W];
    char path[PATH_MAX];
    rb_image img;
    for (int k = 0; k < H * W; k++)
        px[k] = (uint8_t)((k * 7) % N);
    path_in(path, sizeof path, "palette.png");
    ck_assert_int_eq(rb_image_write_png(path, px, H, W, 1, pal, N), RB_OK);

    img = read_ok(path, RB_IMAGE_INDICES);
    ck_assert_int_eq(img.channels, 1);
    ck_assert_int_eq(img.palette_size, N);
    ck_assert_mem_eq(img.palette, pal, sizeof pal);
    ck_assert_mem_eq(img.pixels, px, sizeof px);
    rb_image_free(&img);

    img = read_ok(path, RB_IMAGE_RGB);
    ck_assert_int_eq(img.channels, 3);
    ck_assert_int_eq(img.palette_size, N); /* the file's palette, whatever the mode */
    for (int k = 0; k < H * W; k++)
        ck_assert_mem_eq(img.pixels + 3 * k, pal[px[k]], 3);
    rb_image_free(&img);
}
END_TEST

START_TEST(rgb_png_round_trip_and_refused_as_mask)
{
    enum { H = 6, W = 5 };
    uint8_t px[H * W * 3];
    char path[PATH_MAX];
    rb_image img;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            rgb_at(y, x, px + 3 * (y * W + x));
    path_in(path, sizeof path, "rgb.png");
    ck_assert_int_eq(rb_image_write_png(path, px, H, W, 3, NULL, 0), RB_OK);
    img = read_ok(path, RB_IMAGE_RGB);
    ck_assert_int_eq(img.height, H);
    ck_assert_int_eq(img.width, W);
    ck_assert_mem_eq(img.pixels, px, sizeof px);
    rb_image_free(&img);

    ck_assert_int_eq(rb_image_read(path, RB_IMAGE_INDICES, &img), RB_ERR_CORRUPT);
    ck_assert_ptr_null(img.pixels);
    {
        char want[PATH_MAX + 256];
        snprintf(want, sizeof want,
                 "%s: a mask must hold class ids as 8-bit grayscale or palette indices, but this PNG is 8-bit RGB; "
                 "save the class ids as a grayscale or palette PNG",
                 path);
        ck_assert_str_eq(rb_last_error(), want);
    }
}
END_TEST

/* ------------------------------------------------------------ conversions */

/* The PNG `b` (written to NAME) decodes in RGB mode to `want` (H×W×3). */
static void expect_rgb(test_bytes *b, const char *name, int h, int w, const uint8_t *want)
{
    char path[PATH_MAX];
    rb_image img;
    put_file(name, b, path, sizeof path);
    img = read_ok(path, RB_IMAGE_RGB);
    ck_assert_int_eq(img.height, h);
    ck_assert_int_eq(img.width, w);
    ck_assert_int_eq(img.channels, 3);
    for (int k = 0; k < h * w * 3; k++)
        ck_assert_msg(img.pixels[k] == want[k], "%s: byte %d is %d, expected %d", name, k, img.pixels[k], want[k]);
    rb_image_free(&img);
}

/* The PNG at `path` is refused as a mask, saying it is `kind`. */
static void expect_not_mask(const char *path, const char *kind)
{
    rb_image img;
    char want[PATH_MAX + 256];
    ck_assert_int_eq(rb_image_read(path, RB_IMAGE_INDICES, &img), RB_ERR_CORRUPT);
    snprintf(want, sizeof want,
             "%s: a mask must hold class ids as 8-bit grayscale or palette indices, but this PNG is %s; save the "
             "class ids as a grayscale or palette PNG",
             path, kind);
    ck_assert_str_eq(rb_last_error(), want);
}

START_TEST(rgba_drops_alpha)
{
    enum { H = 3, W = 4 };
    uint8_t rows[H * W * 4], want[H * W * 3];
    test_bytes b;
    char path[PATH_MAX];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = rows + 4 * (y * W + x);
            rgb_at(y, x, p);
            p[3] = (uint8_t)(x * 80); /* alpha 0 included: dropped, not composited */
            rgb_at(y, x, want + 3 * (y * W + x));
        }
    b = test_png(W, H, 8, PNG_COLOR_TYPE_RGB_ALPHA, rows, NULL, 0, NULL, 0, NULL, 0);
    expect_rgb(&b, "rgba.png", H, W, want);
    path_in(path, sizeof path, "rgba.png");
    expect_not_mask(path, "8-bit RGBA");
}
END_TEST

START_TEST(gray_alpha_becomes_three_equal_channels)
{
    enum { H = 2, W = 5 };
    uint8_t rows[H * W * 2], want[H * W * 3];
    test_bytes b;
    char path[PATH_MAX];
    for (int k = 0; k < H * W; k++) {
        rows[2 * k] = gray_at(k / W, k % W);
        rows[2 * k + 1] = (uint8_t)(255 - k * 20);
        want[3 * k] = want[3 * k + 1] = want[3 * k + 2] = rows[2 * k];
    }
    b = test_png(W, H, 8, PNG_COLOR_TYPE_GRAY_ALPHA, rows, NULL, 0, NULL, 0, NULL, 0);
    expect_rgb(&b, "ga.png", H, W, want);
    path_in(path, sizeof path, "ga.png");
    expect_not_mask(path, "8-bit gray+alpha");
}
END_TEST

static void expect_refused(const char *name, const void *bytes, size_t n, rb_image_mode mode, const char *rest);

/* As Pillow 9.4 reads them (its "RGB;16B" and "RGBA;16B" raw modes): the
 * high byte. A 16-bit grayscale PNG Pillow opens as 32-bit integers, which
 * convert('RGB') clips at 255 (measured: 256 -> 255, 40000 -> 255), so it
 * is refused rather than read in a way no torchvision pipeline would. */
START_TEST(sixteen_bit_keeps_the_high_byte)
{
    enum { H = 3, W = 3 };
    uint8_t rgb16[H * W * 6], rgba16[H * W * 8], gray16[H * W * 2], want[H * W * 3];
    test_bytes b;
    char path[PATH_MAX];
    for (int k = 0; k < H * W; k++) {
        for (int c = 0; c < 3; c++) {
            /* big-endian samples, as PNG stores them; low bytes 0xff so a rounding conversion would differ */
            const uint8_t hi = (uint8_t)(k * 29 + c * 70 + 1);
            rgb16[6 * k + 2 * c] = rgba16[8 * k + 2 * c] = hi;
            rgb16[6 * k + 2 * c + 1] = rgba16[8 * k + 2 * c + 1] = 0xff;
            want[3 * k + c] = hi;
        }
        rgba16[8 * k + 6] = (uint8_t)(k * 10);
        rgba16[8 * k + 7] = 0x80;
        gray16[2 * k] = (uint8_t)(k * 31 + 2);
        gray16[2 * k + 1] = 0xc0;
    }
    b = test_png(W, H, 16, PNG_COLOR_TYPE_RGB, rgb16, NULL, 0, NULL, 0, NULL, 0);
    expect_rgb(&b, "rgb16.png", H, W, want);
    path_in(path, sizeof path, "rgb16.png");
    expect_not_mask(path, "16-bit RGB");
    b = test_png(W, H, 16, PNG_COLOR_TYPE_RGB_ALPHA, rgba16, NULL, 0, NULL, 0, NULL, 0);
    expect_rgb(&b, "rgba16.png", H, W, want);
    b = test_png(W, H, 16, PNG_COLOR_TYPE_GRAY, gray16, NULL, 0, NULL, 0, NULL, 0);
    expect_refused("gray16.png", b.data, b.size, RB_IMAGE_RGB,
                   ": a 16-bit grayscale PNG, which Pillow's convert('RGB') clips at level 255 (white above 255 of "
                   "65535), so no pipeline matching torchvision can read it; save it as 8-bit");
    free(b.data);
    path_in(path, sizeof path, "gray16.png");
    expect_not_mask(path, "16-bit grayscale");
}
END_TEST

START_TEST(palette_with_transparency_gives_its_colours)
{
    enum { H = 2, W = 4 };
    static const uint8_t pal[4][3] = {{9, 8, 7}, {200, 100, 50}, {0, 255, 0}, {33, 66, 99}};
    static const uint8_t trns[4] = {0, 128, 255, 10};
    uint8_t idx[H * W], want[H * W * 3];
    test_bytes b;
    char path[PATH_MAX];
    rb_image img;
    for (int k = 0; k < H * W; k++) {
        idx[k] = (uint8_t)((k * 3) % 4);
        memcpy(want + 3 * k, pal[idx[k]], 3);
    }
    b = test_png(W, H, 8, PNG_COLOR_TYPE_PALETTE, idx, pal, 4, trns, 4, NULL, 0);
    expect_rgb(&b, "trns.png", H, W, want);
    path_in(path, sizeof path, "trns.png");
    img = read_ok(path, RB_IMAGE_INDICES);
    ck_assert_int_eq(img.palette_size, 4);
    ck_assert_mem_eq(img.pixels, idx, sizeof idx);
    rb_image_free(&img);
}
END_TEST

/* Packs values of `depth` bits into rows, most significant bits first. */
static void pack_rows(const uint8_t *values, int h, int w, int depth, uint8_t *rows)
{
    const int rowbytes = (w * depth + 7) / 8;
    memset(rows, 0, (size_t)(h * rowbytes));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const int bit = x * depth;
            rows[y * rowbytes + bit / 8] |= (uint8_t)(values[y * w + x] << (8 - depth - bit % 8));
        }
}

START_TEST(low_bit_depths_scale_for_rgb_not_for_masks)
{
    enum { H = 3, W = 7 };
    for (int depth = 1; depth <= 4; depth *= 2) {
        const int top = (1 << depth) - 1;
        uint8_t values[H * W], rows[H * W], want[H * W * 3];
        char name[32], path[PATH_MAX];
        test_bytes b;
        rb_image img;
        for (int k = 0; k < H * W; k++) {
            values[k] = (uint8_t)((k * 5 + 1) % (top + 1));
            /* Pillow's L;1, L;2, L;4 unpackers: v * 255 / (2^d - 1), exact for these depths */
            want[3 * k] = want[3 * k + 1] = want[3 * k + 2] = (uint8_t)(values[k] * 255 / top);
        }
        pack_rows(values, H, W, depth, rows);
        snprintf(name, sizeof name, "gray%d.png", depth);
        b = test_png(W, H, depth, PNG_COLOR_TYPE_GRAY, rows, NULL, 0, NULL, 0, NULL, 0);
        expect_rgb(&b, name, H, W, want);
        path_in(path, sizeof path, name);
        img = read_ok(path, RB_IMAGE_INDICES);
        ck_assert_int_eq(img.channels, 1);
        ck_assert_mem_eq(img.pixels, values, sizeof values);
        rb_image_free(&img);

        /* the same values as palette indices */
        {
            uint8_t pal[16][3];
            for (int k = 0; k <= top; k++) {
                pal[k][0] = (uint8_t)(k * 16);
                pal[k][1] = (uint8_t)(255 - k);
                pal[k][2] = (uint8_t)(k * 3);
            }
            for (int k = 0; k < H * W; k++)
                memcpy(want + 3 * k, pal[values[k]], 3);
            snprintf(name, sizeof name, "pal%d.png", depth);
            b = test_png(W, H, depth, PNG_COLOR_TYPE_PALETTE, rows, (const unsigned char(*)[3])pal, top + 1, NULL,
                         0, NULL, 0);
            expect_rgb(&b, name, H, W, want);
            path_in(path, sizeof path, name);
            img = read_ok(path, RB_IMAGE_INDICES);
            ck_assert_int_eq(img.palette_size, top + 1);
            ck_assert_mem_eq(img.pixels, values, sizeof values);
            rb_image_free(&img);
        }
    }
}
END_TEST

START_TEST(gray_transparency_and_interlacing_change_no_pixel)
{
    enum { H = 9, W = 11 };
    uint8_t gray[H * W], rgb[H * W * 3], want[H * W * 3];
    png_color_16 key;
    test_bytes b;
    char path[PATH_MAX];
    rb_image img;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const int k = y * W + x;
            gray[k] = gray_at(y, x);
            want[3 * k] = want[3 * k + 1] = want[3 * k + 2] = gray[k];
            rgb_at(y, x, rgb + 3 * k);
        }
    memset(&key, 0, sizeof key);
    key.gray = gray[0]; /* pixels of this value are "transparent": still their value */
    b = test_png(W, H, 8, PNG_COLOR_TYPE_GRAY, gray, NULL, 0, NULL, 0, &key, 0);
    expect_rgb(&b, "gray-trns.png", H, W, want);
    path_in(path, sizeof path, "gray-trns.png");
    img = read_ok(path, RB_IMAGE_INDICES);
    ck_assert_mem_eq(img.pixels, gray, sizeof gray);
    rb_image_free(&img);

    b = test_png(W, H, 8, PNG_COLOR_TYPE_RGB, rgb, NULL, 0, NULL, 0, NULL, 1);
    expect_rgb(&b, "adam7.png", H, W, rgb);
}
END_TEST

/* ------------------------------------------------------------ JPEG */

/* A smooth RGB image: gentle ramps, no edges. */
static void smooth_rgb(int h, int w, uint8_t *px)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = px + 3 * (y * w + x);
            p[0] = (uint8_t)(20 + 4 * x + 2 * y);
            p[1] = (uint8_t)(220 - 3 * x - y);
            p[2] = (uint8_t)(60 + 5 * y + x);
        }
}

START_TEST(jpeg_decodes_close_to_its_source)
{
    enum { H = 24, W = 32 };
    uint8_t px[H * W * 3], gray[H * W];
    test_bytes b;
    char path[PATH_MAX];
    rb_image img;
    int worst = 0;

    smooth_rgb(H, W, px);
    b = test_jpeg(px, W, H, 3, 100);
    put_file("smooth.jpg", &b, path, sizeof path);
    img = read_ok(path, RB_IMAGE_RGB);
    ck_assert_int_eq(img.height, H);
    ck_assert_int_eq(img.width, W);
    ck_assert_int_eq(img.channels, 3);
    ck_assert_int_eq(img.palette_size, 0);
    /* At quality 100 every quantization step is 1, so what is lost is
     * rounding: Y, Cb and Cr to 8 bits before encoding (0.5 each), which
     * the inverse conversion amplifies (B = Y + 1.772 Cb: up to 0.5 +
     * 0.89), the rounding of each DCT coefficient to an integer (0.5 each,
     * spread over the 8×8 block by the inverse DCT: a few tenths on Y,
     * amplified again through Cb and Cr), and the final rounding to 8 bits
     * (0.5). That bounds each sample by 3 levels; on this image libjpeg-
     * turbo's slow-integer DCT measures 0 to 3, mostly 0 or 1 (hence ±3,
     * not the ±2 the sum without the DCT term would give). A mean under
     * 0.6 levels catches a bias that stays inside the bound. A wrong
     * colour conversion, channel order or row stride is off by tens. */
    {
        long total = 0;
        for (int k = 0; k < H * W * 3; k++) {
            int d = abs((int)img.pixels[k] - (int)px[k]);
            worst = d > worst ? d : worst;
            total += d;
        }
        ck_assert_msg(worst <= 3, "a decoded pixel is %d levels from its source", worst);
        ck_assert_msg(total < (long)(0.6 * H * W * 3), "decoded pixels are %g levels from their source on average",
                      (double)total / (H * W * 3));
    }
    rb_image_free(&img);

    /* a grayscale JPEG becomes three equal channels */
    for (int k = 0; k < H * W; k++)
        gray[k] = px[3 * k + 1];
    b = test_jpeg(gray, W, H, 1, 100);
    put_file("gray.jpg", &b, path, sizeof path);
    img = read_ok(path, RB_IMAGE_RGB);
    worst = 0;
    for (int k = 0; k < H * W; k++) {
        ck_assert_int_eq(img.pixels[3 * k], img.pixels[3 * k + 1]);
        ck_assert_int_eq(img.pixels[3 * k], img.pixels[3 * k + 2]);
        worst = abs((int)img.pixels[3 * k] - (int)gray[k]) > worst ? abs((int)img.pixels[3 * k] - (int)gray[k])
                                                                     : worst;
    }
    /* one channel, no colour conversion: only the coefficient rounding */
    ck_assert_msg(worst <= 1, "a decoded gray pixel is %d levels from its source", worst);
    rb_image_free(&img);

    /* never a mask */
    ck_assert_int_eq(rb_image_read(path, RB_IMAGE_INDICES, &img), RB_ERR_CORRUPT);
    {
        char want[PATH_MAX + 256];
        snprintf(want, sizeof want,
                 "%s: a mask must be a PNG of class ids (8-bit grayscale or palette indices), not a JPEG, whose "
                 "lossy compression changes the ids; save it as PNG",
                 path);
        ck_assert_str_eq(rb_last_error(), want);
    }
}
END_TEST

/* ------------------------------------------------------------ bad files */

/* A hand-made 8-bit PNG: IHDR (w, h, colour type), optional PLTE of
 * `palette_entries` colours, one IDAT of the zlib'd filtered rows, IEND. */
static test_bytes crafted_png(uint32_t w, uint32_t h, int color_type, int palette_entries)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const int ch = color_type == PNG_COLOR_TYPE_RGB ? 3 : 1;
    test_bytes b = {0};
    unsigned char ihdr[13];
    test_bytes_put(&b, sig, 8);
    test_ihdr(ihdr, w, h, 8, color_type);
    test_png_chunk(&b, "IHDR", ihdr, 13);
    if (palette_entries > 0) {
        unsigned char *plte = malloc((size_t)palette_entries * 3);
        for (int k = 0; k < palette_entries * 3; k++)
            plte[k] = (unsigned char)k;
        test_png_chunk(&b, "PLTE", plte, (uint32_t)palette_entries * 3);
        free(plte);
    }
    if ((uint64_t)w * h > 4096) {
        /* too large to fill: a token chunk, for a decoder that reads on */
        static const unsigned char token[4] = {0x78, 0x9c, 0x03, 0x00};
        test_png_chunk(&b, "IDAT", token, sizeof token);
    } else {
        const size_t raw_size = (size_t)h * (1 + (size_t)w * ch);
        unsigned char *raw = calloc(raw_size, 1);
        uLongf zsize = compressBound((uLong)raw_size);
        unsigned char *z = malloc(zsize);
        for (size_t k = 0; k < raw_size; k++)
            raw[k] = k % (1 + (size_t)w * ch) == 0 ? 0 : (unsigned char)(k % 3);
        ck_assert_int_eq(compress(z, &zsize, raw, (uLong)raw_size), Z_OK);
        test_png_chunk(&b, "IDAT", z, (uint32_t)zsize);
        free(raw);
        free(z);
    }
    test_png_chunk(&b, "IEND", NULL, 0);
    return b;
}

/* Offset of the first byte of chunk `type`'s data in a PNG. */
static size_t chunk_data(const test_bytes *b, const char *type)
{
    size_t pos = 8;
    while (pos + 8 <= b->size) {
        uint32_t len = (uint32_t)b->data[pos] << 24 | (uint32_t)b->data[pos + 1] << 16 |
                       (uint32_t)b->data[pos + 2] << 8 | b->data[pos + 3];
        if (memcmp(b->data + pos + 4, type, 4) == 0)
            return pos + 8;
        pos += 12 + len;
    }
    ck_abort_msg("no %s chunk", type);
    return 0;
}

/* Offset of the first JPEG marker 0xff `code`. */
static size_t jpeg_marker(const test_bytes *b, unsigned char code)
{
    for (size_t k = 0; k + 1 < b->size; k++)
        if (b->data[k] == 0xff && b->data[k + 1] == code)
            return k;
    ck_abort_msg("no marker ff %02x", code);
    return 0;
}

/* `bytes` (size n) written to NAME is refused in `mode` with
 * RB_ERR_CORRUPT and exactly the message "PATH" + `rest`, printing
 * nothing. */
static void expect_refused(const char *name, const void *bytes, size_t n, rb_image_mode mode, const char *rest)
{
    char path[PATH_MAX], want[PATH_MAX + 512], err[1024];
    rb_image img;
    rb_status s;
    test_stderr t;
    path_in(path, sizeof path, name);
    test_write_bytes(path, bytes, n);
    t = test_stderr_begin();
    s = rb_image_read(path, mode, &img);
    test_stderr_end(t, err, sizeof err);
    ck_assert_msg(s == RB_ERR_CORRUPT, "%s: status %d (%s)", name, (int)s, rb_last_error());
    ck_assert_ptr_null(img.pixels);
    ck_assert_int_eq(img.height, 0);
    snprintf(want, sizeof want, "%s%s", path, rest);
    ck_assert_str_eq(rb_last_error(), want);
    ck_assert_msg(err[0] == '\0', "%s: the decoder printed '%s'", name, err);
    /* the same through the bytes entry point, naming what it is told */
    s = rb_image_decode(bytes, n, mode, "NAME", &img);
    ck_assert_int_eq(s, RB_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "NAME"));
    ck_assert_ptr_null(strchr(rb_last_error(), '\n'));
}

START_TEST(empty_and_foreign_files_are_refused)
{
    static const char gif[] = "GIF89a\x01\x00\x01\x00";
    expect_refused("empty.png", "", 0, RB_IMAGE_RGB, " is empty (0 bytes): not a PNG or JPEG image");
    expect_refused("empty.png", "", 0, RB_IMAGE_INDICES, " is empty (0 bytes): not a PNG or JPEG image");
    expect_refused("picture.png", gif, sizeof gif - 1, RB_IMAGE_RGB,
                   " is neither a PNG nor a JPEG image (its first bytes are 47 49 46 38)");
    expect_refused("x.png", "\x89P", 2, RB_IMAGE_RGB,
                   ": truncated PNG: the file ends at byte 2, inside the signature");
}
END_TEST

START_TEST(truncated_and_corrupt_pngs_are_refused)
{
    enum { H = 16, W = 16 };
    uint8_t px[H * W];
    test_bytes good;
    char want[128];
    size_t idat, cuts[4];
    for (int k = 0; k < H * W; k++)
        px[k] = (uint8_t)(k * 7);
    /* gray: both modes read on into the data */
    good = test_png(W, H, 8, PNG_COLOR_TYPE_GRAY, px, NULL, 0, NULL, 0, NULL, 0);
    idat = chunk_data(&good, "IDAT");
    cuts[0] = 20;              /* inside IHDR */
    cuts[1] = idat + 10;       /* inside the image data */
    cuts[2] = good.size - 12;  /* just before IEND */
    cuts[3] = good.size - 1;   /* inside IEND's CRC */
    for (int k = 0; k < 4; k++) {
        snprintf(want, sizeof want, ": truncated PNG: the file ends at byte %zu, inside the image", cuts[k]);
        expect_refused("cut.png", good.data, cuts[k], RB_IMAGE_RGB, want);
        expect_refused("cut.png", good.data, cuts[k], RB_IMAGE_INDICES, want);
    }

    /* a flipped bit in the image data: the chunk's CRC fails */
    {
        unsigned char *bad = malloc(good.size);
        memcpy(bad, good.data, good.size);
        bad[idat + 5] ^= 0x10;
        expect_refused("crc.png", bad, good.size, RB_IMAGE_RGB, ": corrupt PNG (libpng: IDAT: incorrect data check)");
        /* the data intact, its CRC wrong */
        {
            const size_t len = (size_t)bad[idat - 8] << 24 | (size_t)bad[idat - 7] << 16 |
                               (size_t)bad[idat - 6] << 8 | bad[idat - 5];
            memcpy(bad, good.data, good.size);
            bad[idat + len] ^= 0x01;
            expect_refused("crc.png", bad, good.size, RB_IMAGE_INDICES, ": corrupt PNG (libpng: IDAT: CRC error)");
        }
        free(bad);
    }
    /* a CRC that matches zlib data that does not inflate */
    {
        test_bytes b = {0};
        unsigned char ihdr[13], junk[40];
        test_bytes_put(&b, good.data, 8);
        test_ihdr(ihdr, 4, 4, 8, PNG_COLOR_TYPE_GRAY);
        test_png_chunk(&b, "IHDR", ihdr, 13);
        memset(junk, 0xa5, sizeof junk);
        test_png_chunk(&b, "IDAT", junk, sizeof junk);
        test_png_chunk(&b, "IEND", NULL, 0);
        expect_refused("zlib.png", b.data, b.size, RB_IMAGE_INDICES,
                       ": corrupt PNG (libpng: IDAT: invalid window size (libpng))");
        free(b.data);
    }
    /* a palette image without a palette */
    {
        test_bytes b = crafted_png(4, 4, PNG_COLOR_TYPE_PALETTE, 0);
        expect_refused("noplte.png", b.data, b.size, RB_IMAGE_RGB,
                       ": corrupt PNG (libpng: IDAT: Missing PLTE before IDAT)");
        free(b.data);
    }
    free(good.data);
}
END_TEST

START_TEST(oversized_palette_is_refused)
{
    test_bytes b = crafted_png(2, 2, PNG_COLOR_TYPE_PALETTE, 300);
    expect_refused("plte300.png", b.data, b.size, RB_IMAGE_INDICES,
                   ": corrupt PNG: its palette (PLTE chunk) has 300 entries, more than the 256 PNG allows");
    expect_refused("plte300.png", b.data, b.size, RB_IMAGE_RGB,
                   ": corrupt PNG: its palette (PLTE chunk) has 300 entries, more than the 256 PNG allows");
    free(b.data);
    /* 256 entries is the most, and fine */
    b = crafted_png(2, 2, PNG_COLOR_TYPE_PALETTE, 256);
    {
        rb_image img;
        ck_assert_int_eq(rb_image_decode(b.data, b.size, RB_IMAGE_INDICES, "plte256.png", &img), RB_OK);
        ck_assert_int_eq(img.palette_size, 256);
        ck_assert_int_eq(img.palette[255][2], (3 * 255 + 2) & 255);
        rb_image_free(&img);
    }
    free(b.data);
    /* a palette chunk that is not whole entries */
    b = crafted_png(2, 2, PNG_COLOR_TYPE_PALETTE, 0);
    {
        test_bytes c = {0};
        unsigned char ihdr[13], odd[7] = {1, 2, 3, 4, 5, 6, 7};
        test_bytes_put(&c, b.data, 8);
        test_ihdr(ihdr, 2, 2, 8, PNG_COLOR_TYPE_PALETTE);
        test_png_chunk(&c, "IHDR", ihdr, 13);
        test_png_chunk(&c, "PLTE", odd, 7);
        test_png_chunk(&c, "IEND", NULL, 0);
        expect_refused("plte7.png", c.data, c.size, RB_IMAGE_INDICES,
                       ": corrupt PNG: its palette (PLTE chunk) is 7 bytes, not a whole number of RGB entries");
        free(c.data);
    }
    free(b.data);
}
END_TEST

START_TEST(absurd_declared_sizes_are_refused)
{
    test_bytes b = crafted_png(100000, 100000, PNG_COLOR_TYPE_GRAY, 0);
    expect_refused("huge.png", b.data, b.size, RB_IMAGE_RGB,
                   ": the PNG declares 100000×100000 pixels, more than robusta decodes (2^28); is the file "
                   "damaged?");
    free(b.data);
    /* just past 2^28 */
    b = crafted_png(16385, 16384, PNG_COLOR_TYPE_GRAY, 0);
    expect_refused("past.png", b.data, b.size, RB_IMAGE_INDICES,
                   ": the PNG declares 16385×16384 pixels, more than robusta decodes (2^28); is the file "
                   "damaged?");
    free(b.data);
    /* a JPEG whose frame header claims 65000×65000 */
    {
        uint8_t px[8 * 8 * 3];
        size_t sof;
        smooth_rgb(8, 8, px);
        b = test_jpeg(px, 8, 8, 3, 90);
        sof = jpeg_marker(&b, 0xc0);
        b.data[sof + 5] = b.data[sof + 7] = 0xfd; /* height, width: 0xfde8 = 65000 */
        b.data[sof + 6] = b.data[sof + 8] = 0xe8;
        expect_refused("huge.jpg", b.data, b.size, RB_IMAGE_RGB,
                       ": the JPEG declares 65000×65000 pixels, more than robusta decodes (2^28); is the file "
                       "damaged?");
        free(b.data);
    }
}
END_TEST

START_TEST(truncated_and_corrupt_jpegs_are_refused)
{
    enum { H = 32, W = 32 };
    uint8_t px[H * W * 3];
    test_bytes good;
    size_t sos, sof;
    char want[256];
    smooth_rgb(H, W, px);
    good = test_jpeg(px, W, H, 3, 90);
    sos = jpeg_marker(&good, 0xda);
    sof = jpeg_marker(&good, 0xc0);

    /* cut inside the image data, and inside the headers */
    snprintf(want, sizeof want,
             ": truncated JPEG: the file ends at byte %zu, inside the image (Premature end of JPEG file)",
             sos + 40);
    expect_refused("cut.jpg", good.data, sos + 40, RB_IMAGE_RGB, want);
    snprintf(want, sizeof want,
             ": truncated JPEG: the file ends at byte %zu, inside the image (Premature end of JPEG file)",
             sof + 4);
    expect_refused("cut.jpg", good.data, sof + 4, RB_IMAGE_RGB, want);
    expect_refused("cut.jpg", good.data, 3, RB_IMAGE_RGB,
                   ": truncated JPEG: the file ends at byte 3, inside the image (Premature end of JPEG file)");
    {
        unsigned char *bad = malloc(good.size);
        /* a sample precision of 7 bits */
        memcpy(bad, good.data, good.size);
        bad[sof + 4] = 7;
        expect_refused("precision.jpg", bad, good.size, RB_IMAGE_RGB,
                       ": corrupt JPEG (libjpeg: Unsupported JPEG data precision 7)");
        /* a restart marker in the middle of the entropy-coded data, where none may be */
        memcpy(bad, good.data, good.size);
        bad[sos + 30] = 0xff;
        bad[sos + 31] = 0xd3;
        expect_refused("marker.jpg", bad, good.size, RB_IMAGE_RGB,
                       ": corrupt JPEG (libjpeg: Corrupt JPEG data: premature end of data segment)");
        free(bad);
    }
    free(good.data);
}
END_TEST

/* ------------------------------------------------------------ writing */

START_TEST(bad_writes_leave_the_folder_as_it_was)
{
    static const uint8_t pal[2][3] = {{0, 0, 0}, {255, 255, 255}};
    uint8_t px[4 * 4 * 3] = {0};
    char path[PATH_MAX], missing[PATH_MAX + 32], want[PATH_MAX + 256];
    size_t size;
    unsigned char *before;
    path_in(path, sizeof path, "keep.png");
    ck_assert_int_eq(rb_image_write_png(path, px, 4, 4, 1, NULL, 0), RB_OK);
    before = read_whole_file(path, &size);

    px[5] = 2; /* index 2 of a 2-entry palette */
    ck_assert_int_eq(rb_image_write_png(path, px, 4, 4, 1, pal, 2), RB_ERR_INVALID_ARGUMENT);
    snprintf(want, sizeof want,
             "cannot write %s: pixel (row 1, column 1) is index 2, but the palette has 2 entries", path);
    ck_assert_str_eq(rb_last_error(), want);
    ck_assert_int_eq(rb_image_write_png(path, px, 4, 4, 2, NULL, 0), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_image_write_png(path, px, 4, 4, 3, pal, 2), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_image_write_png(path, px, 0, 4, 1, NULL, 0), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_image_write_png(path, px, 4, 4, 1, NULL, 3), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_image_write_png(path, px, 4, 4, 1, pal, 257), RB_ERR_INVALID_ARGUMENT);
    {
        size_t now;
        unsigned char *after = read_whole_file(path, &now);
        ck_assert_uint_eq(now, size);
        ck_assert_mem_eq(after, before, size);
        free(after);
    }
    ck_assert_int_eq(count_dir_entries(dir), 1);

    snprintf(missing, sizeof missing, "%s/no/such/folder/x.png", dir);
    ck_assert_int_eq(rb_image_write_png(missing, px, 4, 4, 3, NULL, 0), RB_ERR_IO);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), missing));
    ck_assert_int_eq(count_dir_entries(dir), 1);

    /* a good write replaces the file whole */
    memset(px, 200, sizeof px);
    ck_assert_int_eq(rb_image_write_png(path, px, 4, 4, 3, NULL, 0), RB_OK);
    {
        rb_image img = read_ok(path, RB_IMAGE_RGB);
        ck_assert_mem_eq(img.pixels, px, sizeof px);
        rb_image_free(&img);
    }
    ck_assert_int_eq(count_dir_entries(dir), 1);
    free(before);
}
END_TEST

START_TEST(bad_arguments_are_refused)
{
    rb_image img;
    char path[PATH_MAX];
    memset(&img, 0x5a, sizeof img);
    ck_assert_int_eq(rb_image_decode(NULL, 4, RB_IMAGE_RGB, "x", &img), RB_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(img.pixels);
    ck_assert_int_eq(rb_image_decode("\xff\xd8\xff", 3, (rb_image_mode)7, "x", &img), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_image_decode("x", 1, RB_IMAGE_RGB, "x", NULL), RB_ERR_INVALID_ARGUMENT);
    path_in(path, sizeof path, "absent.png");
    ck_assert_int_eq(rb_image_read(path, RB_IMAGE_RGB, &img), RB_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), path));
    ck_assert_int_eq(rb_image_read(dir, RB_IMAGE_RGB, &img), RB_ERR_IO); /* a folder */
    rb_image_free(NULL);
}
END_TEST

static Suite *image_suite(void)
{
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("image");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, gray_png_round_trip);
    tcase_add_test(tc, palette_png_round_trip);
    tcase_add_test(tc, rgb_png_round_trip_and_refused_as_mask);
    tcase_add_test(tc, rgba_drops_alpha);
    tcase_add_test(tc, gray_alpha_becomes_three_equal_channels);
    tcase_add_test(tc, sixteen_bit_keeps_the_high_byte);
    tcase_add_test(tc, palette_with_transparency_gives_its_colours);
    tcase_add_test(tc, low_bit_depths_scale_for_rgb_not_for_masks);
    tcase_add_test(tc, gray_transparency_and_interlacing_change_no_pixel);
    tcase_add_test(tc, jpeg_decodes_close_to_its_source);
    tcase_add_test(tc, empty_and_foreign_files_are_refused);
    tcase_add_test(tc, truncated_and_corrupt_pngs_are_refused);
    tcase_add_test(tc, oversized_palette_is_refused);
    tcase_add_test(tc, absurd_declared_sizes_are_refused);
    tcase_add_test(tc, truncated_and_corrupt_jpegs_are_refused);
    tcase_add_test(tc, bad_writes_leave_the_folder_as_it_was);
    tcase_add_test(tc, bad_arguments_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    rb_log_set_level(RB_LOG_ERROR);
    return run_suite(image_suite());
}
