/* Image files: PNG and JPEG decoding through libpng and libjpeg-turbo, and
 * an 8-bit PNG writer. Internal to librobusta (not installed).
 *
 * Decoding is a function from bytes to pixels (rb_image_decode), so fuzz
 * harnesses can drive it; rb_image_read reads a file and calls it. The
 * libraries' own error paths never reach stderr and never jump out of
 * these functions: every fault becomes one line through rb_error_set.
 * Every call keeps its state to itself, so any number of threads may
 * decode at once. */
#ifndef RB_DATA_IMAGE_H
#define RB_DATA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include <robusta/status.h>

/* Most pixels (height × width) a decoded image may have: 2^28, 768 MiB of
 * RGB. Larger declared sizes are refused before anything is allocated. */
#define RB_IMAGE_MAX_PIXELS (INT64_C(1) << 28)

/* Largest image file rb_image_read reads (1 GiB). */
#define RB_IMAGE_FILE_LIMIT ((size_t)1 << 30)

typedef enum rb_image_mode {
    /* Everything to 8-bit RGB as Pillow's convert('RGB') does: gray
     * becomes 3 equal channels (1, 2 and 4-bit gray scaled to 0..255),
     * a palette its colours, alpha and tRNS transparency are dropped (not
     * composited), 16-bit RGB, RGBA and gray+alpha samples keep their high
     * byte, as Pillow reads them; 16-bit grayscale, which Pillow clips at
     * level 255, is refused. Gray JPEGs become
     * 3 equal channels; CMYK JPEGs are refused. */
    RB_IMAGE_RGB = 1,
    /* Masks: one channel holding the stored 8-bit grayscale values or
     * palette indices (1, 2 and 4-bit ones expanded to their value, not
     * scaled). PNG only; RGB, gray+alpha, RGBA, 16-bit PNGs and JPEGs are
     * refused with one line saying what the file is. */
    RB_IMAGE_INDICES = 2
} rb_image_mode;

typedef struct rb_image {
    int64_t height, width;
    int channels;          /* 3 for RB_IMAGE_RGB, 1 for RB_IMAGE_INDICES */
    uint8_t *pixels;       /* height × width × channels, rows top to bottom, channels interleaved */
    int palette_size;      /* > 0 when the file had a palette (PNG colour type 3) */
    uint8_t palette[256][3];
} rb_image;

/* Decodes PNG or JPEG bytes (the kind is sniffed from the signature, not a
 * name) into *out in `mode`; `what` names the data in messages (a path).
 * Empty, truncated, corrupt or unsupported data (a mask that is not
 * indices included), and images declaring more than RB_IMAGE_MAX_PIXELS
 * pixels, fail with RB_ERR_CORRUPT and one line naming `what` and the
 * fault (RB_ERR_OUT_OF_MEMORY when memory runs out); *out is then zeroed. Any libjpeg warning (a premature end, corrupt
 * entropy data) is a failure too: decoders would otherwise fill the rest
 * of the image with gray. */
rb_status rb_image_decode(const void *bytes, size_t size, rb_image_mode mode, const char *what, rb_image *out);

/* The height and width rb_image_decode would give `bytes` in `mode`, from
 * the header alone (PNG: up to IHDR and PLTE; JPEG: up to the frame
 * header), with the same refusals of what the header says (a CMYK JPEG,
 * too many pixels, a mask that is not indices); faults in the pixel data
 * show only when decoding. 0 × 0 on failure. For stores that lay images
 * out before decoding them. */
rb_status rb_image_probe(const void *bytes, size_t size, rb_image_mode mode, const char *what, int64_t *height,
                         int64_t *width);

/* Reads the regular file `path` (at most RB_IMAGE_FILE_LIMIT bytes) and
 * decodes it with rb_image_decode, naming `path` in messages. A missing
 * file: RB_ERR_NOT_FOUND. */
rb_status rb_image_read(const char *path, rb_image_mode mode, rb_image *out);

/* Reads `path` and decodes it to RGB straight into `pixels` (height × width
 * × 3 bytes, the size its header gave earlier), as rb_image_read would
 * decode it; an image of another size is refused (one line: did the file
 * change?) and leaves `pixels` unspecified. For stores that keep decoded
 * images in place. */
rb_status rb_image_read_into(const char *path, uint8_t *pixels, int64_t height, int64_t width);

/* Frees the pixels and zeroes the struct; NULL is accepted. */
void rb_image_free(rb_image *image);

/* Pascal VOC's mask colours: class c's bits spread over the high bits of
 * red, green and blue, as the VOC development kit colours its masks. */
void rb_image_voc_palette(uint8_t palette[256][3]);

/* Writes `pixels` (height × width × channels bytes, rows top to bottom,
 * channels interleaved) as an 8-bit PNG at `path`, atomically: the file is
 * written next to it and renamed over it, so a failure leaves what was
 * there. channels 1: grayscale, or palette indices when `palette` is not
 * NULL (palette_size entries, 1 to 256; every pixel must index one);
 * channels 3: RGB. Sides 1 to 2^31 - 1 and at most RB_IMAGE_MAX_PIXELS
 * pixels. RB_ERR_INVALID_ARGUMENT for bad arguments, RB_ERR_IO when the
 * file cannot be written. */
rb_status rb_image_write_png(const char *path, const uint8_t *pixels, int64_t height, int64_t width, int channels,
                             const uint8_t (*palette)[3], int palette_size);

/* Writes `pixels` (height × width × channels bytes, 1: grayscale, 3: RGB)
 * as a baseline JPEG of `quality` (1 to 100, libjpeg's scale) at `path`,
 * atomically as rb_image_write_png. Sides 1 to 65500. */
rb_status rb_image_write_jpeg(const char *path, const uint8_t *pixels, int64_t height, int64_t width, int channels,
                              int quality);

#endif /* RB_DATA_IMAGE_H */
