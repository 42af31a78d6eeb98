/* robusta report's model of what it read (report_folder.c) and what writes
 * the page from it (report_html.c). Internal to the library. */
#ifndef ROBUSTA_EXPERIMENT_REPORT_PAGE_H
#define ROBUSTA_EXPERIMENT_REPORT_PAGE_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include <robusta/grid.h>
#include <robusta/report.h>

#include "experiment/report_internal.h"

/* One run folder: a grid's source or transfer, or a single run. */
typedef struct report_run {
    char *rel;                  /* under the folder: "sources/r18-eps0-s0", or "." for a single run */
    json_object *config;        /* config.json, result.json, metrics.json; NULL: absent or unreadable */
    json_object *result;
    json_object *metrics;
    report_log log;             /* log.jsonl's rows (none: absent) */
    bool finished;              /* a grid run: result.json; a single run: model.rbt */
    double seconds;             /* result.json's seconds, else log.jsonl's sum; NAN: unknown */
} report_run;

typedef struct report_folder {
    const char *dir;            /* as given */
    bool shown;                 /* it holds something to show (report_folder_read said RB_OK) */
    bool grid;
    bool have_rows;             /* results.csv read (rows may still be 0) */
    rb_grid_result *rows;
    size_t n_rows;
    char *ini_name, *ini_text;  /* the grid file the folder holds, or NULL */
    report_run *runs;           /* grid: sources, then transfers, each sorted by path */
    size_t n_runs;
} report_folder;

/* What the report is writing and has left out. */
typedef struct report_ctx {
    const rb_report_options *opt;
    report_text skipped;        /* the lines, each escaped in an <li> */
    size_t n_skipped;
} report_ctx;

/* Says one thing left out (one line, no newline). */
void report_skip(report_ctx *c, const char *fmt, ...) RB_PRINTF(2, 3);

/* Reads `dir` into *f, saying what it leaves out. RB_ERR_NOT_FOUND when it
 * holds nothing to show (said already); RB_ERR_OUT_OF_MEMORY. */
rb_status report_folder_read(report_ctx *c, const char *dir, report_folder *f);
void report_folder_free(report_folder *f);

/* A member of a JSON object: a number (NAN otherwise), a string (NULL otherwise). */
double report_json_number(json_object *o, const char *key);
const char *report_json_string(json_object *o, const char *key);

#endif /* ROBUSTA_EXPERIMENT_REPORT_PAGE_H */
