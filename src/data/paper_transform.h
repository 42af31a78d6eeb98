/* The paper's image pipeline, pixel for pixel as torchvision applies it to
 * PIL images (Salman et al. 2020 use torchvision's ImageNet transforms):
 *
 *   training  RandomResizedCrop(S, scale=(0.08, 1), ratio=(3/4, 4/3)),
 *             RandomHorizontalFlip()
 *   test      Resize(R), CenterCrop(S)          (R = 256, S = 224)
 *
 * on 8-bit RGB. Resizing is Pillow's bilinear resampling: the filter's
 * support widens by the scale when shrinking (antialiasing), weights are
 * rounded to 22-bit fixed point, and a horizontal pass (rounded to 8 bits)
 * precedes a vertical one, as Pillow's Resample.c does. Rounding follows
 * Python's round() (half to even) wherever torchvision calls it.
 * Internal to librobusta (not installed); tests/pil-transform-parity.sh
 * compares every function here with Pillow and torchvision. */
#ifndef RB_DATA_PAPER_TRANSFORM_H
#define RB_DATA_PAPER_TRANSFORM_H

#include <stdbool.h>
#include <stdint.h>

#include <robusta/rng.h>
#include <robusta/status.h>

/* A window of an image in pixels: rows [top, top + height), columns
 * [left, left + width). */
typedef struct rb_crop_box {
    int64_t top, left, height, width;
} rb_crop_box;

/* Pillow's Image.resize((out_w, out_h), BILINEAR, box) of in_h × in_w
 * pixels with `channels` interleaved 8-bit channels (1 to 4), box = {x0,
 * y0, x1, y1} in source pixels (NULL: the whole image), into dst (out_h ×
 * out_w × channels, not overlapping src). Sizes must be positive and the
 * box inside the image, else RB_ERR_INVALID_ARGUMENT. */
rb_status rb_pil_resize(const uint8_t *src, int64_t in_h, int64_t in_w, int channels, const double box[4],
                        int64_t out_h, int64_t out_w, uint8_t *dst);

/* torchvision's Resize(size) size rule: the shorter side becomes `size`,
 * the longer int(size * long / short). */
void rb_tv_resize_shape(int64_t h, int64_t w, int64_t size, int64_t *out_h, int64_t *out_w);

/* torchvision's CenterCrop offset along one axis: round((n - crop) / 2)
 * (half to even) when crop <= n, else -((crop - n) / 2): negative offsets
 * are the zero padding torchvision adds to images smaller than the crop. */
int64_t rb_tv_center_offset(int64_t n, int64_t crop);

/* Copies the window `box` of src (h × w × channels) into dst (box.height ×
 * box.width × channels); pixels outside the image are 0. */
void rb_crop_u8(const uint8_t *src, int64_t h, int64_t w, int channels, rb_crop_box box, uint8_t *dst);

/* torchvision's resized_crop: the window copied out (PIL's crop, zeros
 * outside the image), then resized whole to size × size, so the filter
 * never reads past the window's edges as a resize box would. */
rb_status rb_tv_resized_crop(const uint8_t *src, int64_t h, int64_t w, int channels, rb_crop_box box, int64_t size,
                             uint8_t *dst);

/* torchvision's RandomResizedCrop.get_params(scale, ratio) on an h × w
 * image, its random numbers drawn from rng: up to ten tries of an area
 * share uniform in [scale[0], scale[1]] and a log-uniform aspect ratio in
 * [ratio[0], ratio[1]], the first window that fits placed uniformly; else
 * the central window of the image clamped to the ratio range. */
rb_crop_box rb_tv_random_resized_crop_box(int64_t h, int64_t w, const double scale[2], const double ratio[2],
                                          rb_rng *rng);

/* The paper's training transform of one image: the crop box from rng,
 * then a coin from rng (heads and `flip` on: mirrored; the coin is drawn
 * either way), the box resized to size × size into dst (size × size ×
 * channels). box and flipped may be NULL. */
rb_status rb_paper_train_transform(const uint8_t *src, int64_t h, int64_t w, int channels, int64_t size,
                                   rb_rng *rng, bool flip, uint8_t *dst, rb_crop_box *box, bool *flipped);

/* The paper's test transform: Resize(resize) then CenterCrop(crop), into
 * dst (crop × crop × channels). */
rb_status rb_paper_test_transform(const uint8_t *src, int64_t h, int64_t w, int channels, int64_t resize,
                                  int64_t crop, uint8_t *dst);

#endif /* RB_DATA_PAPER_TRANSFORM_H */
