/* libFuzzer harness: .npy arrays (rb_npy_parse) and .npy datasets
 * (rb_split_from_npy). The input is one .npy file, or two concatenated
 * (images, then labels: the second starts at the second "\x93NUMPY"
 * magic); both parsed arrays then go through rb_split_from_npy, and an
 * accepted split is read to its last image and label. */
#include "config.h"

#include "fuzz.h"

static rb_npy *parse(const uint8_t *bytes, size_t size, const char *what)
{
    rb_npy *a = NULL;
    int64_t numel = 1;
    uint8_t *copy = malloc(size ? size : 1); /* exact size: over-reads are caught */
    rb_status s;
    if (size)
        memcpy(copy, bytes, size);
    s = rb_npy_parse(&a, copy, size, what);
    free(copy);
    if (s != RB_OK) {
        fuzz_expect_one_line("npy", s);
        return NULL;
    }
    for (int d = 0; d < a->ndim; d++)
        numel *= a->shape[d];
    fuzz_assert(numel == a->numel, "npy", "numel is not the product of the shape");
    fuzz_assert(a->nbytes <= size, "npy", "more data than bytes");
    {
        unsigned sum = 0; /* the copy is readable to its end */
        for (size_t b = 0; b < a->nbytes; b++)
            sum += ((const uint8_t *)a->data)[b];
        (void)sum;
    }
    return a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    size_t second = size;
    rb_npy *images, *labels = NULL;
    fuzz_init();
    for (size_t k = 1; k + sizeof magic <= size; k++)
        if (memcmp(data + k, magic, sizeof magic) == 0) {
            second = k;
            break;
        }
    images = parse(data, second, "images.npy");
    if (second < size)
        labels = parse(data + second, size - second, "labels.npy");
    if (images != NULL && labels != NULL) {
        rb_split *split = NULL;
        rb_status s = rb_split_from_npy(&split, images, "images.npy", labels, "labels.npy");
        if (s != RB_OK) {
            fuzz_expect_one_line("npy-split", s);
        } else {
            const int64_t *l = rb_split_labels(split);
            const uint8_t *px = rb_split_images(split);
            size_t bytes = (size_t)rb_split_count(split) * rb_split_example_size(split);
            unsigned sum = 0;
            for (int64_t k = 0; k < rb_split_count(split); k++)
                fuzz_assert(l[k] >= 0 && l[k] < rb_split_classes(split), "npy-split", "label out of range");
            for (size_t b = 0; b < bytes; b++)
                sum += px[b];
            (void)sum;
            rb_split_destroy(split);
        }
    }
    rb_npy_destroy(images);
    rb_npy_destroy(labels);
    return 0;
}
