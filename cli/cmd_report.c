/* report: one self-contained HTML page of one or several grid or run
 * folders (robusta/report.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <robusta/report.h>

#include "cli/cli.h"

static const rb_param_spec report_options[] = {
    {"out", RB_PARAM_STRING, "report.html", NULL, 0, "the page to write (replaced whole, or left as it was)"},
    {"title", RB_PARAM_STRING, NULL, NULL, 0, "the page's heading (default: \"robusta report:\" and the folders)"},
    {"strict", RB_PARAM_BOOL, "false", NULL, 0,
     "exit 1 when anything was left out (the page is still written)"},
    {NULL}};

static void say_skipped(void *user, const char *line)
{
    fprintf(stderr, "robusta %s: %s\n", (const char *)user, line);
}

static int run_report(const cli_command *self, rb_params *o, int argc, char **args)
{
    rb_report_options opt = {cli_opt_string(o, "title"), say_skipped, (void *)self->name};
    rb_report_outcome out;
    const char *path = cli_opt_string(o, "out");
    rb_status s;
    if (argc == 0) {
        fprintf(stderr, "robusta %s: give one or more grid or run folders (robusta %s DIR [DIR ...] --out "
                        "report.html)\n", self->name, self->name);
        return RB_EXIT_USAGE;
    }
    if (path == NULL || path[0] == '\0') {
        fprintf(stderr, "robusta %s: --out needs a file name\n", self->name);
        return RB_EXIT_USAGE;
    }
    s = rb_report_write_html((const char *const *)args, (size_t)argc, path, &opt, &out);
    if (s != RB_OK)
        return cli_fail(self->name, s);
    printf("%s: %zu grid%s and %zu run folder%s (%zu of %zu runs finished)%s, %zu bytes\n", path, out.grids,
           out.grids == 1 ? "" : "s", out.folders - out.grids, out.folders - out.grids == 1 ? "" : "s",
           out.finished, out.runs, out.skipped ? "; some left out, said above" : "", out.bytes);
    if (out.skipped > 0 && cli_opt_bool(o, "strict")) {
        fprintf(stderr, "robusta %s: %zu thing%s left out (--strict)\n", self->name, out.skipped,
                out.skipped == 1 ? "" : "s");
        return RB_EXIT_FAILURE;
    }
    return RB_EXIT_OK;
}

const cli_command cli_report_command = {
    .name = "report",
    .summary = "one self-contained HTML page of grids' and runs' results",
    .usage = "DIR [DIR ...] [--out report.html] [--title TEXT] [--strict]",
    .description =
        "Reads grid folders (robusta grid's --out: results.csv, sources/, transfers/) and run\n"
        "folders (robusta train's or transfer's --out) and writes one HTML page with inline CSS\n"
        "and SVG, nothing fetched: for a grid the results table and its verdicts, the plot,\n"
        "per-class scores, the training curves of the source models and (mean over seeds) of\n"
        "the transfers, the grid file; for a run its metrics, per-class scores and curves; for\n"
        "every run whether it finished, its epochs, time, score and config.json; where the runs\n"
        "were made (robusta version, CPU, oneDNN, plugins) and what wrote the page. Several\n"
        "folders share one page, one section each. What cannot be read (a corrupt results.csv,\n"
        "log.jsonl lines that are not rows, unfinished runs, an empty folder) is said in one line\n"
        "on stderr and in the page, and the rest is reported; nothing to report at all is an\n"
        "error and writes no page.",
    .options = report_options,
    .run = run_report,
};
