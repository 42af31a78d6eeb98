/* robusta/report.h: one HTML page of the results of grids and runs.
 *
 * A grid (robusta/grid.h) leaves a folder of files meant for programs:
 * results.csv, a markdown table, one plot, and a folder per run with its
 * config.json, log.jsonl, metrics.json and result.json. The report reads
 * one or several such folders, or the folder of a single `robusta train`
 * or `transfer` run, and writes one page a researcher can open, send or
 * print: self-contained (CSS and SVG inline, no script, nothing fetched
 * from the network), well-formed (every element closed, so an XML parser
 * reads it as well as a browser).
 *
 * For each folder, in the order given:
 *   - a grid: the results table and its note (as rb_grid_markdown, as an
 *     HTML table), the verdicts (rb_grid_summary), the plot (as
 *     rb_grid_write_svg draws it), per-class scores (the mean over runs of
 *     each "NAME.K" metric of the transfers' metrics.json, such as
 *     class_accuracy.K or iou.K: one table per target and metric), the
 *     training curves (each source model's loss and accuracies per epoch;
 *     per target and mode, the transfers' train loss and test accuracy,
 *     averaged over seeds, one line per architecture and source eps), and
 *     the grid file when the folder holds one (*.ini);
 *   - a run: its metrics, per-class scores and curves;
 *   - for every run: whether it finished, its epochs, time (result.json's
 *     seconds, else the sum of log.jsonl's epoch times) and its
 *     configuration (config.json, folded);
 *   - where the runs were made: the robusta version, CPU and oneDNN
 *     (config.json's "machine") and plugin versions each config.json
 *     records, with how many runs each;
 * and last, what wrote the page: robusta, oneDNN and library versions, the
 * plugins found, the CPU, and one line for each thing left out.
 *
 * Bad input loses nothing that can be shown. A folder that does not exist
 * or holds no results, a grid without results.csv (no source model
 * finished) or whose results.csv is older than its finished runs, a corrupt
 * results.csv, config.json, metrics.json or result.json, log.jsonl lines
 * that are not rows (report_log: one strict JSON object per line with an
 * increasing "epoch"), runs without result.json: each is said in one line
 * (to `skipped`, and in the page) and the rest is reported. Only a report
 * with nothing in it at all is refused. Text from the files is escaped;
 * nothing from them becomes markup. */
#ifndef ROBUSTA_REPORT_H
#define ROBUSTA_REPORT_H

#include <stddef.h>

#include <robusta/status.h>
#include <robusta/version.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rb_report_options {
    const char *title;  /* the page's heading; NULL: "robusta report: " and the folders' names */
    /* Called once per thing left out with one line naming the file (and
     * line) and why: "runs/g/results.csv: ... (table, verdicts and plot
     * left out)". NULL: each is logged as a warning (rb_log). */
    void (*skipped)(void *user, const char *line);
    void *user;
} rb_report_options;

typedef struct rb_report_outcome {
    size_t folders;     /* folders reported (the others were said to hold nothing) */
    size_t grids;       /* of them, grids */
    size_t runs;        /* run folders read (a grid's and single runs) */
    size_t finished;    /* of them, finished (a result.json, or metrics.json for a single run) */
    size_t skipped;     /* lines said through `skipped` */
    size_t bytes;       /* the page's size */
} rb_report_outcome;

/* Writes the report of `n_dirs` folders to `out_path` (atomically: a
 * failure leaves whatever was there). `opt` may be NULL (defaults); so may
 * `outcome`. RB_ERR_INVALID_ARGUMENT for no folders or a NULL path;
 * RB_ERR_NOT_FOUND, "nothing to report: ..." when no folder holds anything
 * to show (no page is written); RB_ERR_IO when the page cannot be written;
 * RB_ERR_OUT_OF_MEMORY. */
RB_API rb_status rb_report_write_html(const char *const *dirs, size_t n_dirs, const char *out_path,
                                      const rb_report_options *opt, rb_report_outcome *outcome);

#ifdef __cplusplus
}
#endif

#endif /* ROBUSTA_REPORT_H */
