/* libFuzzer harness: CIFAR-10 and CIFAR-100 binary files
 * (rb_split_from_cifar). Input: one byte (bit 0: CIFAR-100; bits 1-2:
 * files - 1, so 1 to 4 files), then the bytes, cut into that many files
 * of equal size (the last takes the remainder), each in an allocation of
 * exactly its size. */
#include "config.h"

#include "split.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const whats[4] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "test_batch.bin"};
    const void *files[4];
    size_t sizes[4], count, each, at = 0;
    uint8_t *copies[4];
    rb_split *split = NULL;
    rb_status s;
    fuzz_init();
    if (size < 1)
        return 0;
    count = 1 + ((data[0] >> 1) & 3u);
    each = (size - 1) / count;
    for (size_t k = 0; k < count; k++) {
        sizes[k] = k + 1 < count ? each : size - 1 - at;
        copies[k] = malloc(sizes[k] ? sizes[k] : 1);
        if (sizes[k])
            memcpy(copies[k], data + 1 + at, sizes[k]);
        files[k] = copies[k];
        at += sizes[k];
    }
    s = rb_split_from_cifar(&split, (data[0] & 1u) ? RB_DATASET_CIFAR100 : RB_DATASET_CIFAR10, files, sizes, whats,
                            count);
    if (s != RB_OK)
        fuzz_expect_one_line("cifar", s);
    else
        fuzz_read_split(split, "cifar");
    for (size_t k = 0; k < count; k++)
        free(copies[k]);
    return 0;
}
