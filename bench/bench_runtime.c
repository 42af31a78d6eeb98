/* Runtime micro-benchmarks: what the plugin runtime costs around the real
 * work. Prints medians of repeated runs; never fails on time.
 *   - scanning RB_PLUGIN_PATH and the install folder (dlopen + checks)
 *   - parsing and range-checking one float parameter ("8/255")
 *   - Philox4x32-10 random numbers per second (attack random starts and
 *     augmentation draw one stream per example) */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <robusta/robusta.h>

#include "benchutil.h"

#define REPEATS 9

int main(void)
{
    static const rb_param_spec specs[] = {
        {"eps", RB_PARAM_FLOAT, "0", "[0, 1]", 0, "radius"}, {NULL}};
    double times[REPEATS], t0;
    size_t plugins = 0;
    volatile uint32_t sink = 0;
    rb_params *params;

    for (int r = 0; r < REPEATS; r++) {
        rb_registry *reg;
        t0 = now();
        if (rb_registry_create(&reg) != RB_OK || rb_registry_load_default(reg) != RB_OK) {
            fprintf(stderr, "bench_runtime: %s\n", rb_last_error());
            return 1;
        }
        times[r] = now() - t0;
        plugins = rb_registry_count(reg);
        rb_registry_destroy(reg);
    }
    printf("plugin scan: %zu plugins in %.3f ms (median of %d)\n", plugins,
           median(times, REPEATS) * 1e3, REPEATS);

    if (rb_params_create(&params, specs) != RB_OK)
        return 1;
    for (int r = 0; r < REPEATS; r++) {
        enum { N = 200000 };
        t0 = now();
        for (int i = 0; i < N; i++)
            if (rb_params_set(params, "eps", "8/255") != RB_OK)
                return 1;
        times[r] = (now() - t0) / N;
    }
    rb_params_destroy(params);
    printf("parameter parse+check: %.0f ns per value (median of %d)\n",
           median(times, REPEATS) * 1e9, REPEATS);

    for (int r = 0; r < REPEATS; r++) {
        enum { N = 4000000 };
        rb_rng rng;
        rb_rng_init(&rng, 1, RB_RNG_STREAM(RB_RNG_USER, r), 0);
        t0 = now();
        for (int i = 0; i < N; i++)
            sink ^= rb_rng_u32(&rng);
        times[r] = N / (now() - t0);
    }
    printf("philox4x32-10: %.0f M numbers/s on one thread (median of %d)\n",
           median(times, REPEATS) * 1e-6, REPEATS);
    return sink == 0xdeadbeef; /* keeps the loop; practically never true */
}
