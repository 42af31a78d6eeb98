/* Runs one step of the paper's image pipeline (src/data/paper_transform.c
 * and the decoder, src/data/image.c, compiled in) for
 * tests/pil_transform_parity.py, which compares the result with Pillow and
 * torchvision:
 *
 *   pil_transform_parity decode IMAGE OUT
 *   pil_transform_parity resize IN H W OH OW OUT [X0 Y0 X1 Y1]
 *   pil_transform_parity test IN H W RESIZE CROP OUT
 *   pil_transform_parity crop IN H W TOP LEFT CH CW SIZE OUT
 *   pil_transform_parity boxes H W SEED COUNT
 *
 * IN and OUT are raw 8-bit RGB, rows top to bottom (decode writes its
 * height and width on stdout). crop is RandomResizedCrop's resize of a
 * given window; boxes prints COUNT random windows (top left height width)
 * of an H x W image for the Python side to check against torchvision's
 * rules. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/rng.h>
#include <robusta/status.h>

#include "data/image.h"
#include "data/paper_transform.h"

static void die(const char *what)
{
    fprintf(stderr, "pil_transform_parity: %s: %s\n", what, rb_last_error());
    exit(1);
}

static uint8_t *load(const char *path, size_t bytes)
{
    uint8_t *p = malloc(bytes ? bytes : 1);
    FILE *f = fopen(path, "rb");
    if (f == NULL || p == NULL || fread(p, 1, bytes, f) != bytes) {
        fprintf(stderr, "pil_transform_parity: cannot read %zu bytes from %s: %s\n", bytes, path, strerror(errno));
        exit(1);
    }
    fclose(f);
    return p;
}

static void save(const char *path, const uint8_t *p, size_t bytes)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, bytes, f) != bytes || fclose(f) != 0) {
        fprintf(stderr, "pil_transform_parity: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static int64_t num(const char *text)
{
    return strtoll(text, NULL, 10);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "decode") == 0 && argc == 4) {
        rb_image img;
        if (rb_image_read(argv[2], RB_IMAGE_RGB, &img) != RB_OK)
            die("decode");
        save(argv[3], img.pixels, (size_t)(img.height * img.width * 3));
        printf("%lld %lld\n", (long long)img.height, (long long)img.width);
        rb_image_free(&img);
        return 0;
    }
    if (strcmp(mode, "resize") == 0 && (argc == 8 || argc == 12)) {
        const int64_t h = num(argv[3]), w = num(argv[4]), oh = num(argv[5]), ow = num(argv[6]);
        uint8_t *in = load(argv[2], (size_t)(h * w * 3)), *out = malloc((size_t)(oh * ow * 3));
        double box[4];
        for (int i = 0; i < 4 && argc == 12; i++)
            box[i] = strtod(argv[8 + i], NULL);
        if (rb_pil_resize(in, h, w, 3, argc == 12 ? box : NULL, oh, ow, out) != RB_OK)
            die("resize");
        save(argv[7], out, (size_t)(oh * ow * 3));
        free(in);
        free(out);
        return 0;
    }
    if (strcmp(mode, "test") == 0 && argc == 8) {
        const int64_t h = num(argv[3]), w = num(argv[4]), resize = num(argv[5]), crop = num(argv[6]);
        uint8_t *in = load(argv[2], (size_t)(h * w * 3)), *out = malloc((size_t)(crop * crop * 3));
        if (rb_paper_test_transform(in, h, w, 3, resize, crop, out) != RB_OK)
            die("test transform");
        save(argv[7], out, (size_t)(crop * crop * 3));
        free(in);
        free(out);
        return 0;
    }
    if (strcmp(mode, "crop") == 0 && argc == 11) {
        const int64_t h = num(argv[3]), w = num(argv[4]), top = num(argv[5]), left = num(argv[6]);
        const int64_t ch = num(argv[7]), cw = num(argv[8]), size = num(argv[9]);
        uint8_t *in = load(argv[2], (size_t)(h * w * 3)), *out = malloc((size_t)(size * size * 3));
        if (rb_tv_resized_crop(in, h, w, 3, (rb_crop_box){top, left, ch, cw}, size, out) != RB_OK)
            die("resized crop");
        save(argv[10], out, (size_t)(size * size * 3));
        free(in);
        free(out);
        return 0;
    }
    if (strcmp(mode, "boxes") == 0 && argc == 6) {
        static const double scale[2] = {0.08, 1.0}, ratio[2] = {3.0 / 4.0, 4.0 / 3.0};
        const int64_t h = num(argv[2]), w = num(argv[3]);
        for (int64_t i = 0; i < num(argv[5]); i++) {
            rb_rng rng;
            rb_crop_box b;
            rb_rng_init(&rng, (uint64_t)num(argv[4]), RB_RNG_STREAM(RB_RNG_AUGMENT, 0), (uint64_t)i);
            b = rb_tv_random_resized_crop_box(h, w, scale, ratio, &rng);
            printf("%lld %lld %lld %lld\n", (long long)b.top, (long long)b.left, (long long)b.height,
                   (long long)b.width);
        }
        return 0;
    }
    fprintf(stderr, "usage: pil_transform_parity decode|resize|test|crop|boxes ... (see the source)\n");
    return 2;
}
