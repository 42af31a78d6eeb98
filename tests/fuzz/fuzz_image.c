/* libFuzzer harness: PNG and JPEG images (rb_image_decode and its header
 * reader rb_image_probe, internal to the library). Input: one byte (bit 0:
 * decode as mask indices, else as RGB), then the file's bytes, in an
 * allocation of exactly their size. An accepted image is read to its last
 * pixel, within the documented bounds, and its header gives its size. */
#include "config.h"

#include "data/image.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const rb_image_mode mode = size > 0 && (data[0] & 1u) ? RB_IMAGE_INDICES : RB_IMAGE_RGB;
    const int channels = mode == RB_IMAGE_RGB ? 3 : 1;
    uint8_t *bytes;
    rb_image img;
    rb_status s;
    fuzz_init();
    if (size < 1)
        return 0;
    bytes = malloc(size - 1 ? size - 1 : 1);
    if (size > 1)
        memcpy(bytes, data + 1, size - 1);
    s = rb_image_decode(bytes, size - 1, mode, "image", &img);
    {
        int64_t h = -1, w = -1;
        const rb_status p = rb_image_probe(bytes, size - 1, mode, "image", &h, &w);
        if (p != RB_OK) {
            fuzz_expect_one_line("image-probe", p);
            fuzz_assert(s != RB_OK && h == 0 && w == 0, "image-probe", "a header refused of a decodable image");
        } else {
            fuzz_assert(h >= 1 && w >= 1 && h * w <= RB_IMAGE_MAX_PIXELS, "image-probe", "size out of bounds");
            fuzz_assert(s != RB_OK || (h == img.height && w == img.width), "image-probe",
                        "the header's size is not the decoded size");
        }
    }
    if (s != RB_OK) {
        fuzz_expect_one_line("image", s);
        fuzz_assert(img.pixels == NULL, "image", "a refused image left pixels");
    } else {
        const size_t n = (size_t)img.height * (size_t)img.width * (size_t)channels;
        unsigned sum = 0;
        fuzz_assert(img.channels == channels, "image", "wrong channel count");
        fuzz_assert(img.height >= 1 && img.width >= 1 && img.height * img.width <= RB_IMAGE_MAX_PIXELS, "image",
                    "size out of bounds");
        fuzz_assert(img.palette_size >= 0 && img.palette_size <= 256, "image", "palette out of bounds");
        for (size_t k = 0; k < n; k++)
            sum += img.pixels[k];
        (void)sum;
        rb_image_free(&img);
    }
    free(bytes);
    return 0;
}
