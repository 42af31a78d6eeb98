/* libFuzzer harness: grid files (rb_grid_spec_parse), INI text that need
 * not be NUL-terminated. */
#include "config.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rb_grid_spec *g = NULL;
    rb_status s;
    fuzz_init();
    s = rb_grid_spec_parse((const char *)data, size, "fuzz.ini", &g);
    if (s != RB_OK) {
        fuzz_expect_one_line("grid", s);
        fuzz_assert(g == NULL, "grid", "a refused file left a spec");
        return 0;
    }
    rb_grid_spec_destroy(g);
    return 0;
}
