/* libFuzzer harness: a grid's results.csv (rb_grid_parse_csv), which
 * robusta report and grid --report read from folders copied from anywhere;
 * accepted rows must then go through every report (table, summary, plot)
 * without a crash, or be refused in one line. */
#include "config.h"

#include <stdlib.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rb_grid_result *rows = NULL;
    size_t n = 0;
    char *text = NULL;
    rb_status s;
    fuzz_init();
    s = rb_grid_parse_csv((const char *)data, size, "fuzz.csv", &rows, &n);
    if (s != RB_OK) {
        fuzz_expect_one_line("results_csv", s);
        fuzz_assert(rows == NULL && n == 0, "results_csv", "a refused file left rows");
        return 0;
    }
    fuzz_assert((rows == NULL) == (n == 0), "results_csv", "rows and their count disagree");
    if ((s = rb_grid_markdown(rows, n, &text)) != RB_OK)
        fuzz_expect_one_line("results_csv", s);
    free(text);
    text = NULL;
    if ((s = rb_grid_summary(rows, n, &text)) != RB_OK)
        fuzz_expect_one_line("results_csv", s);
    free(text);
    free(rows);
    return 0;
}
