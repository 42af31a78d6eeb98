/* libFuzzer harness: the image cache files of the paper's transform
 * (rb_image_store_check, internal to the library), which decide whether a
 * file found in --cache's folder is trusted. Input: the file's bytes. The
 * identity and count checked against are the ones its header claims (when
 * it has one), so that mutations reach the table; an accepted file's every
 * image lies inside it. */
#include "config.h"

#include "data/image_store.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rb_image_store_header h;
    uint8_t *bytes;
    char why[160];
    uint64_t count = 0, identity = 0;
    fuzz_init();
    bytes = malloc(size ? size : 1);
    if (size > 0)
        memcpy(bytes, data, size);
    if (size >= sizeof h) {
        memcpy(&h, bytes, sizeof h);
        count = h.count < (UINT64_C(1) << 20) ? h.count : 0;
        identity = h.identity;
    }
    if (rb_image_store_check(bytes, size, identity, count, why, sizeof why)) {
        uint64_t end = h.pixels_offset;
        for (uint64_t k = 0; k < count; k++) {
            uint32_t hw[2];
            uint64_t offset;
            memcpy(hw, bytes + h.table_offset + 16 * k, 8);
            memcpy(&offset, bytes + h.table_offset + 16 * k + 8, 8);
            fuzz_assert(offset == end && hw[0] >= 1 && hw[1] >= 1, "image-cache", "a table entry is out of place");
            end += (uint64_t)hw[0] * hw[1] * 3;
            fuzz_assert(end <= size, "image-cache", "an image ends past the file");
        }
    } else {
        fuzz_assert(why[0] != '\0' && strchr(why, '\n') == NULL, "image-cache", "a refusal without one reason");
    }
    free(bytes);
    return 0;
}
