/* What the grid's report files share (report.c: table, summary, plot;
 * report_csv.c: results.csv): a growing text buffer and the checks every
 * report makes of its rows. Internal to the library. */
#ifndef ROBUSTA_EXPERIMENT_REPORT_INTERNAL_H
#define ROBUSTA_EXPERIMENT_REPORT_INTERNAL_H

#include <stddef.h>

#include <robusta/grid.h>
#include <robusta/status.h>

#include "sys/internal.h"

/* Text built piece by piece; zero-initialize it. */
typedef struct report_text {
    char *data;
    size_t len, cap;
    int failed; /* out of memory: checked once at the end */
} report_text;

/* Appends printf-formatted text (nothing once an allocation has failed). */
void report_put(report_text *t, const char *fmt, ...) RB_PRINTF(2, 3);

/* Hands the text to the caller (*out, never NULL: "" for no text), or frees
 * it and says RB_ERR_OUT_OF_MEMORY, "out of memory writing the WHAT". */
rb_status report_finish(report_text *t, char **out, const char *what);

/* Every row's labels and metric NUL-terminated and its eps finite and
 * >= 0; RB_ERR_INVALID_ARGUMENT naming the first row that is not. */
rb_status report_check_rows(const rb_grid_result *rows, size_t n);

/* A row's metric, "accuracy" for an empty one. */
const char *report_metric(const rb_grid_result *row);

#endif /* ROBUSTA_EXPERIMENT_REPORT_INTERNAL_H */
