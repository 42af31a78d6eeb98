/* libFuzzer harness: plan cache files (rb_plan_cache_parse, internal to the
 * library and compiled in), JSON that need not be NUL-terminated. */
#include "config.h"

#include "fuzz.h"
#include "sys/plan_cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_object *root = NULL;
    rb_status s;
    fuzz_init();
    s = rb_plan_cache_parse((const char *)data, size, "fuzz.json", &root);
    if (s != RB_OK) {
        fuzz_expect_one_line("plan_cache", s);
        fuzz_assert(root == NULL, "plan_cache", "a refused file left a root");
        return 0;
    }
    fuzz_assert(json_object_is_type(json_object_object_get(root, "machines"), json_type_object), "plan_cache",
                "an accepted file has no machines object");
    json_object_put(root);
    return 0;
}
