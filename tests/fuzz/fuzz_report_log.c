/* libFuzzer harness: log.jsonl as robusta report reads it (report_log_parse,
 * internal to the library and compiled in): bytes that need not be
 * NUL-terminated; kept rows must have increasing epochs and the counts must
 * add up. */
#include "config.h"

#include <math.h>

#include "experiment/report_internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    report_log log;
    fuzz_init();
    if (report_log_parse((const char *)data, size, &log) != RB_OK)
        return 0; /* out of memory only */
    fuzz_assert(log.n + log.skipped <= log.lines, "report_log", "more rows and skipped lines than lines");
    fuzz_assert((log.skipped == 0) == (log.first_fault[0] == '\0'), "report_log", "a skip without its reason");
    for (size_t i = 0; i < log.n; i++) {
        fuzz_assert(log.epoch[i] >= 1 && (i == 0 || log.epoch[i] > log.epoch[i - 1]), "report_log",
                    "a kept row's epoch is not above the previous one");
        for (int c = 0; c < REPORT_LOG_COLUMNS; c++)
            fuzz_assert(!isinf(log.v[c][i]), "report_log", "an infinite value kept");
    }
    report_log_free(&log);
    return 0;
}
