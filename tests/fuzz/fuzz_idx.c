/* libFuzzer harness: IDX dataset files (MNIST's format), raw or gzip'd
 * (rb_split_from_idx). Input: one byte (bit 0: MNIST or Fashion-MNIST
 * class names), the length of the image file (4 bytes, little-endian;
 * clamped to what follows), the image file, then the label file. Each
 * file gets an allocation of exactly its size. */
#include "config.h"

#include "split.h"

static uint8_t *exact_copy(const uint8_t *bytes, size_t size)
{
    uint8_t *c = malloc(size ? size : 1);
    if (size)
        memcpy(c, bytes, size);
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n_images, n_labels;
    uint8_t *images, *labels;
    rb_split *split = NULL;
    rb_status s;
    fuzz_init();
    if (size < 5)
        return 0;
    n_images = (size_t)data[1] | (size_t)data[2] << 8 | (size_t)data[3] << 16 | (size_t)data[4] << 24;
    if (n_images > size - 5)
        n_images = size - 5;
    n_labels = size - 5 - n_images;
    images = exact_copy(data + 5, n_images);
    labels = exact_copy(data + 5 + n_images, n_labels);
    s = rb_split_from_idx(&split, (data[0] & 1u) ? RB_DATASET_FASHION_MNIST : RB_DATASET_MNIST, images, n_images,
                          "images.idx", labels, n_labels, "labels.idx");
    if (s != RB_OK)
        fuzz_expect_one_line("idx", s);
    else
        fuzz_read_split(split, "idx");
    free(images);
    free(labels);
    return 0;
}
