/* libFuzzer harness: safetensors files (rb_safetensors_parse), each
 * accepted tensor converted to float32 to its last element. */
#include "config.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rb_safetensors *st = NULL;
    rb_status s;
    fuzz_init();
    s = rb_safetensors_parse(&st, data, size, "fuzz.safetensors");
    if (s != RB_OK) {
        fuzz_expect_one_line("safetensors", s);
        return 0;
    }
    for (size_t k = 0; k < rb_safetensors_count(st); k++) {
        rb_safetensors_tensor t;
        float *f;
        fuzz_assert(rb_safetensors_get(st, k, &t) == RB_OK, "safetensors", "an indexed tensor cannot be got");
        fuzz_assert((const uint8_t *)t.data >= data && (const uint8_t *)t.data + t.nbytes <= data + size,
                    "safetensors", "a tensor lies outside the input");
        f = malloc((size_t)(t.numel > 0 ? t.numel : 1) * sizeof *f);
        s = rb_safetensors_to_f32(&t, f);
        if (s != RB_OK)
            fuzz_expect_one_line("safetensors-to-f32", s);
        free(f);
    }
    (void)rb_safetensors_metadata(st, "format");
    rb_safetensors_destroy(st);
    return 0;
}
