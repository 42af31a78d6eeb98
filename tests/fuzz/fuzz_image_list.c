/* libFuzzer harness: the "path label" lists of list:DIR,TRAIN,TEST
 * (rb_image_list_parse, internal to the library). Input: the list's
 * bytes, in an allocation of exactly their size. */
#include "config.h"

#include "data/image_list.h"
#include "fuzz.h"

/* Whether some '/'-separated part of path is "..". */
static int has_parent_part(const char *path)
{
    for (const char *p = path; *p != '\0';) {
        const char *e = strchr(p, '/');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return 1;
        p += n + (e != NULL);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *bytes;
    rb_image_list l;
    rb_status s;
    fuzz_init();
    bytes = malloc(size ? size : 1);
    if (size > 0)
        memcpy(bytes, data, size);
    s = rb_image_list_parse(bytes, size, "list.txt", &l);
    if (s != RB_OK) {
        fuzz_expect_one_line("image-list", s);
        fuzz_assert(l.count == 0 && l.paths == NULL, "image-list", "a refused list kept entries");
    } else {
        fuzz_assert(l.count >= 1, "image-list", "an accepted list is empty");
        for (size_t k = 0; k < l.count; k++) {
            const size_t n = strlen(l.paths[k]);
            fuzz_assert(n >= 1 && n <= RB_IMAGE_LIST_MAX_PATH, "image-list", "a path's length is out of bounds");
            fuzz_assert(l.paths[k][0] != '/', "image-list", "an absolute path was accepted");
            fuzz_assert(!has_parent_part(l.paths[k]), "image-list", "a path leaving the folder was accepted");
            fuzz_assert(l.labels[k] >= 0 && l.labels[k] < RB_IMAGE_LIST_MAX_CLASSES, "image-list",
                        "a label is out of range");
            fuzz_assert(l.lines[k] >= 1 && (k == 0 || l.lines[k] > l.lines[k - 1]), "image-list",
                        "lines are not increasing");
        }
        rb_image_list_free(&l);
    }
    free(bytes);
    return 0;
}
