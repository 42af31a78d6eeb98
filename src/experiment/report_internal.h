/* What the grid's report files share (report.c: table, summary, plot;
 * report_csv.c: results.csv): a growing text buffer and the checks every
 * report makes of its rows. Internal to the library. */
#ifndef ROBUSTA_EXPERIMENT_REPORT_INTERNAL_H
#define ROBUSTA_EXPERIMENT_REPORT_INTERNAL_H

#include <stdbool.h>
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

/* Writes the text to `path` atomically and frees it; after an allocation
 * failed, RB_ERR_OUT_OF_MEMORY, "out of memory writing WHAT", and nothing
 * written. */
rb_status report_write_file(report_text *t, const char *path, const char *what);

/* Every row's labels and metric NUL-terminated and its eps finite and
 * >= 0; RB_ERR_INVALID_ARGUMENT naming the first row that is not. */
rb_status report_check_rows(const rb_grid_result *rows, size_t n);

/* A row's metric, "accuracy" for an empty one. */
const char *report_metric(const rb_grid_result *row);

/* "fixed" and "full", the order modes are reported in. */
extern const char *const MODES[2];
/* Their names in tables and titles: "fixed-feature" and "full-network". */
extern const char *const MODE_NAMES[2];

/* Mean and sample standard deviation of some runs, in percent. */
typedef struct report_stat {
    size_t n;
    double mean, sd; /* sd is 0 when n < 2 */
} report_stat;

/* The target metric (robust: the robust target accuracy) of the rows of one
 * (arch, mode, eps, target), NULL arch, mode or target matching any; `buf`
 * holds n doubles. */
report_stat target_stat(const rb_grid_result *rows, size_t n, double *buf, const char *arch, const char *mode,
                        double eps, const char *target, int robust);

typedef struct eps_value {
    double value;
    const char *text; /* as written in its first row */
} eps_value;

/* Distinct eps of one arch (NULL: all), ascending, into out (n of them at most). */
size_t eps_values(const rb_grid_result *rows, size_t n, const char *arch, eps_value *out);

/* Scratch shared by the reports: labels, eps values and a value buffer. */
typedef struct scratch {
    const char **archs, **targets;
    size_t n_archs, n_targets;
    const char **metrics;  /* per target: the metric of its rows */
    const char **attacks;  /* per target: the robust attack of its rows (NULL: none measured) */
    int named;             /* some target's metric is not accuracy */
    eps_value *eps;
    double *values;
    long long *best;       /* per table column: the best shown mean of a block */
    size_t *filled;        /* per table column: how many eps of a block have runs */
} scratch;

/* Fills a scratch for `rows`, refusing a target whose rows mix metrics or
 * robust attacks; scratch_free frees it. */
rb_status scratch_make(scratch *s, const rb_grid_result *rows, size_t n);
void scratch_free(scratch *s);

/* ------------------------------------------------------------ the reports
 * as pieces of a larger page (robusta report's HTML holds several). */
typedef enum report_format { REPORT_MARKDOWN, REPORT_HTML } report_format;

/* Appends the results table and its note (rb_grid_markdown's text, or an
 * HTML <table> and <p class="note">). */
rb_status report_grid_table(report_text *t, const rb_grid_result *rows, size_t n, report_format f);

/* Appends the plot as an <svg> element (no XML declaration): what
 * rb_grid_write_svg writes after its declaration. */
rb_status report_grid_svg(report_text *t, const char *title, const rb_grid_result *rows, size_t n);

/* The plot's title: "NAME: target accuracy against source robustness (eps)",
 * naming every metric of the rows in order of first appearance ("target
 * accuracy and mIoU"). */
void report_plot_title(const char *name, const rb_grid_result *rows, size_t n, char *out, size_t size);

/* ------------------------------------------------------------ log.jsonl
 * (report_log.c): a run's per-epoch rows as columns. */
enum {
    REPORT_LOG_TRAIN_LOSS,
    REPORT_LOG_TEST_LOSS,
    REPORT_LOG_TRAIN_ACC,
    REPORT_LOG_TEST_ACC,
    REPORT_LOG_ADV_TRAIN_ACC,
    REPORT_LOG_ROBUST_TEST_ACC,
    REPORT_LOG_SECONDS,
    REPORT_LOG_COLUMNS
};
extern const char *const REPORT_LOG_KEYS[REPORT_LOG_COLUMNS]; /* "train_loss", ... as log.jsonl names them */

typedef struct report_log {
    size_t n;                         /* rows kept, epochs ascending */
    double *epoch;                    /* n of them */
    double *v[REPORT_LOG_COLUMNS];    /* n each; NAN where null or absent */
    size_t lines;                     /* lines read, empty ones included */
    size_t skipped;                   /* lines that were not rows */
    char first_fault[320];            /* the first of them: "line 7: not JSON (unexpected end at byte 31)" */
} report_log;

/* Reads `size` bytes of log.jsonl text (not necessarily NUL-terminated).
 * A row is one strict JSON object with an integer "epoch" >= 1, greater
 * than the previous row's, whose REPORT_LOG_KEYS members are numbers or
 * null; any other non-empty line is skipped and counted. Only running out
 * of memory fails (RB_ERR_OUT_OF_MEMORY, *log then empty). Free with
 * report_log_free. A pure function of the bytes, so it can be fuzzed. */
rb_status report_log_parse(const char *text, size_t size, report_log *log);
void report_log_free(report_log *log);

/* ------------------------------------------------------------ curves
 * (report_curves.c): values per epoch, panels side by side. */
typedef struct report_curve {
    const char *label;     /* in the panel's legend */
    const double *x, *y;   /* n each: epoch and value; a NAN y is a gap */
    size_t n;
    size_t color;          /* index into REPORT_COLORS */
    bool dashed;
} report_curve;

typedef struct report_panel {
    const char *title, *y_label;
    const report_curve *curves;
    size_t n;
} report_panel;

/* Appends an <svg> of the panels (a NULL title: none). */
rb_status report_curves_svg(report_text *t, const char *title, const report_panel *panels, size_t n_panels);

/* ------------------------------------------------------------ drawing
 * (report_draw.c). SVG text has no layout: widths are estimated from
 * DejaVu Sans's advance widths (Debian's sans-serif, what librsvg and
 * Chromium draw with) and padded by TEXT_SLACK for fonts a little wider;
 * tests render the plots and check that nothing reaches the border. */
#define TEXT_SLACK 1.08
#define TEXT_MARGIN 8.0 /* px between text and the canvas or panel edge */
#define TITLE_SIZE 15.0
#define PANEL_TITLE_SIZE 13.0
#define TEXT_SIZE 11.0
#define MIN_TEXT_SIZE 8.0

#define REPORT_N_COLORS 10
extern const char *const REPORT_COLORS[REPORT_N_COLORS]; /* series colors, in order */

/* Appends `s` with &, <, > and " escaped (SVG and HTML text and attributes). */
void report_put_escaped(report_text *t, const char *s);
/* The estimated width in px of `s` (UTF-8) at `size` px. */
double report_text_width(const char *s, double size, bool bold);
/* The font size at most `size` (and at least MIN_TEXT_SIZE) at which `s`
 * is at most `room` px wide. */
double report_fitting_size(const char *s, double size, bool bold, double room);
/* `s` at `size`, cut to `room` px with an ellipsis if it is still wider. */
void report_put_fitted(report_text *t, const char *s, double size, bool bold, double room);
/* A round tick step (1, 2 or 5 times a power of ten) giving about 5 ticks. */
double report_nice_step(double span);
/* A figure's title size: fitted to *width, shrunk to 2/3 at most, and
 * *width widened to what the title then needs. */
double report_title_size(const char *title, double *width);
/* Opens an <svg> of width x height on white with the title (NULL: none)
 * centred on the baseline title_y; the caller closes it. */
void report_svg_begin(report_text *t, double width, double height, const char *title, double title_size,
                      double title_y);

#endif /* ROBUSTA_EXPERIMENT_REPORT_INTERNAL_H */
