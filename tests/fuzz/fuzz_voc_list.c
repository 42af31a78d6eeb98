/* libFuzzer harness: the text lists of a Pascal VOC folder and a list:
 * set's classes.txt (rb_voc_parse_list, internal to the library). Input:
 * one byte (its low two bits: 1 a VOC classes.txt, 2 a list: set's
 * classes.txt, else an ImageSets/Segmentation id list), then the list's
 * bytes, in an allocation of exactly their size. */
#include "config.h"

#include "data/voc.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rb_voc_list_kind kind;
    uint8_t *bytes;
    rb_voc_list l;
    rb_status s;
    fuzz_init();
    if (size < 1)
        return 0;
    kind = (data[0] & 3u) == 1 ? RB_VOC_CLASSES : (data[0] & 3u) == 2 ? RB_CLASS_NAMES : RB_VOC_IDS;
    bytes = malloc(size - 1 ? size - 1 : 1);
    if (size > 1)
        memcpy(bytes, data + 1, size - 1);
    s = rb_voc_parse_list(bytes, size - 1, kind, "list.txt", &l);
    if (s != RB_OK) {
        fuzz_expect_one_line("voc-list", s);
        fuzz_assert(l.count == 0 && l.items == NULL, "voc-list", "a refused list kept items");
    } else {
        fuzz_assert(l.count >= 1, "voc-list", "an accepted list is empty");
        fuzz_assert(kind != RB_VOC_CLASSES || l.count <= RB_VOC_MAX_CLASSES, "voc-list", "too many classes");
        fuzz_assert(kind != RB_CLASS_NAMES || l.count <= RB_CLASS_NAMES_MAX, "voc-list", "too many names");
        for (int64_t k = 0; k < l.count; k++) {
            const size_t n = strlen(l.items[k]);
            fuzz_assert(n >= 1 && n <= RB_VOC_MAX_NAME, "voc-list", "an item's length is out of bounds");
            fuzz_assert(kind != RB_VOC_IDS || strchr(l.items[k], '/') == NULL, "voc-list", "an id holds '/'");
        }
        rb_voc_list_free(&l);
    }
    free(bytes);
    return 0;
}
