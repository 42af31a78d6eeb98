/* Grid results: the markdown table and the summary (see robusta/grid.h for
 * what each looks like; results.csv is report_csv.c's, the SVG plot
 * report_svg.c's), and the statistics every report draws from the rows.
 *
 * Everything here is a pure function of the rows, in row order, so that the
 * same results give the same bytes (the tests compare exact text). Statistics
 * are in percent: mean and sample standard deviation (n - 1) of target_acc
 * over the rows of one (arch, mode, eps, target); rows whose target_acc is
 * NaN are left out. Groups are found by scanning the rows, which is
 * quadratic but grids have hundreds of rows, not millions. */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/grid.h>

#include "experiment/report_internal.h"
#include "sys/internal.h"

/* UTF-8, spelled out so that a hex escape can never swallow the next letter. */
#define MIDDOT "\xc2\xb7"
#define EPSILON "\xce\xb5"
#define PLUSMINUS "\xc2\xb1"
#define EMDASH "\xe2\x80\x94"
#define TIMES "\xc3\x97"

/* ------------------------------------------------------------ shared */

void report_put(report_text *t, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (t->failed)
        return;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->failed = 1;
        return;
    }
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
        char *d = realloc(t->data, cap);
        if (d == NULL) {
            t->failed = 1;
            return;
        }
        t->data = d;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

rb_status report_finish(report_text *t, char **out, const char *what)
{
    if (t->data == NULL && !t->failed)
        report_put(t, "%s", "");
    if (t->failed) {
        free(t->data);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory writing the %s", what);
    }
    *out = t->data;
    return RB_OK;
}

rb_status report_write_file(report_text *t, const char *path, const char *what)
{
    rb_status s;
    if (t->failed) {
        free(t->data);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory writing %s", what);
    }
    s = rb_file_write_atomic(path, t->data, t->len);
    free(t->data);
    return s;
}

rb_status report_check_rows(const rb_grid_result *rows, size_t n)
{
    if (rows == NULL && n > 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "grid report: NULL rows");
    for (size_t i = 0; i < n; i++) {
        const rb_grid_result *r = &rows[i];
        if (memchr(r->arch, '\0', sizeof r->arch) == NULL || memchr(r->target, '\0', sizeof r->target) == NULL ||
            memchr(r->eps_text, '\0', sizeof r->eps_text) == NULL || memchr(r->mode, '\0', sizeof r->mode) == NULL ||
            memchr(r->metric, '\0', sizeof r->metric) == NULL ||
            memchr(r->robust_attack, '\0', sizeof r->robust_attack) == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "grid results row %zu: a label is not NUL-terminated", i + 1);
        if (!isfinite(r->source_eps) || r->source_eps < 0)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "grid results row %zu: source eps %g is not finite and >= 0",
                                i + 1, r->source_eps);
    }
    return RB_OK;
}

const char *report_metric(const rb_grid_result *row)
{
    return row->metric[0] != '\0' ? row->metric : "accuracy";
}

const char *rb_grid_metric_label(const char *metric)
{
    static const char *const names[][2] = {{"miou", "mIoU"},
                                           {"ap", "AP"},
                                           {"ap50", "AP50"},
                                           {"ap75", "AP75"},
                                           {"balanced_accuracy", "balanced accuracy"},
                                           {"pixel_accuracy", "pixel accuracy"}};
    if (metric == NULL || metric[0] == '\0')
        return "accuracy";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(metric, names[i][0]) == 0)
            return names[i][1];
    return metric;
}

/* Is this metric shown without naming it? (Accuracy is the table's and the
 * summary's default, as it was before metrics had names.) */
static int is_accuracy(const char *metric)
{
    return strcmp(metric, "accuracy") == 0;
}

/* ------------------------------------------------------------ groups */

static int row_matches(const rb_grid_result *r, const char *arch, const char *mode, double eps, const char *target)
{
    return (arch == NULL || strcmp(r->arch, arch) == 0) && (mode == NULL || strcmp(r->mode, mode) == 0) &&
           r->source_eps == eps && (target == NULL || strcmp(r->target, target) == 0);
}

static report_stat stat_of(const double *v, size_t n)
{
    report_stat s = {n, 0, 0};
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        s.mean += v[i];
    if (n > 0)
        s.mean /= (double)n;
    for (size_t i = 0; i < n && n > 1; i++)
        ss += (v[i] - s.mean) * (v[i] - s.mean);
    if (n > 1)
        s.sd = sqrt(ss / (double)(n - 1));
    return s;
}

/* A row's target metric, or its robust target accuracy (NAN where none
 * was measured). */
static double row_value(const rb_grid_result *r, int robust)
{
    if (!robust)
        return r->target_acc;
    return r->robust_attack[0] != '\0' ? r->target_robust_acc : NAN;
}

/* Does row r count for (arch, mode, eps, target), with a value? */
static int row_counts(const rb_grid_result *r, const char *arch, const char *mode, double eps, const char *target,
                      int robust)
{
    return row_matches(r, arch, mode, eps, target) && !isnan(row_value(r, robust));
}

report_stat target_stat(const rb_grid_result *rows, size_t n, double *buf, const char *arch, const char *mode,
                        double eps, const char *target, int robust)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (row_counts(&rows[i], arch, mode, eps, target, robust))
            buf[k++] = 100 * row_value(&rows[i], robust);
    return stat_of(buf, k);
}

/* The two levels of a cell's spread. Each source model (source seed) is
 * trained once and transferred with every transfer seed, so runs of one
 * source model share its training's luck: the spread over source seeds is
 * the standard deviation of the source models' means (each over its transfer
 * seeds), and the spread over transfer seeds is the pooled standard
 * deviation within a source model. */
typedef struct spread {
    size_t sources;     /* source models with runs */
    double source_sd;   /* NAN with fewer than 2 source models */
    double transfer_sd; /* NAN without a source model of 2 runs or more */
} spread;

static spread target_spread(const rb_grid_result *rows, size_t n, double *buf, const char *arch, const char *mode,
                            double eps, const char *target, int robust)
{
    spread sp = {0, NAN, NAN};
    double within = 0;
    size_t dof = 0;
    for (size_t i = 0; i < n; i++) {
        double sum = 0, ss = 0, mean;
        size_t k = 0, j;
        if (!row_counts(&rows[i], arch, mode, eps, target, robust))
            continue;
        for (j = 0; j < i; j++) /* only the first run of a source model opens it */
            if (row_counts(&rows[j], arch, mode, eps, target, robust) && rows[j].source_seed == rows[i].source_seed)
                break;
        if (j < i)
            continue;
        for (j = i; j < n; j++)
            if (row_counts(&rows[j], arch, mode, eps, target, robust) && rows[j].source_seed == rows[i].source_seed) {
                sum += 100 * row_value(&rows[j], robust);
                k++;
            }
        mean = sum / (double)k;
        for (j = i; j < n; j++)
            if (row_counts(&rows[j], arch, mode, eps, target, robust) && rows[j].source_seed == rows[i].source_seed)
                ss += (100 * row_value(&rows[j], robust) - mean) * (100 * row_value(&rows[j], robust) - mean);
        within += ss;
        dof += k - 1;
        buf[sp.sources++] = mean;
    }
    if (sp.sources >= 2)
        sp.source_sd = stat_of(buf, sp.sources).sd;
    if (dof > 0)
        sp.transfer_sd = sqrt(within / (double)dof);
    return sp;
}

/* A source model's accuracy (clean, or robust), in percent, over the source
 * seeds of one (arch, eps): each model counts once however many transfer
 * rows repeat it (the first row with a value speaks for it). */
static report_stat source_stat(const rb_grid_result *rows, size_t n, double *buf, const char *arch, double eps,
                               int robust)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        double v = robust ? rows[i].source_robust_acc : rows[i].source_test_acc;
        int first = 1;
        if (!row_matches(&rows[i], arch, NULL, eps, NULL) || isnan(v))
            continue;
        for (size_t j = 0; j < i && first; j++) {
            double w = robust ? rows[j].source_robust_acc : rows[j].source_test_acc;
            first = !(row_matches(&rows[j], arch, NULL, eps, NULL) && !isnan(w) &&
                      rows[j].source_seed == rows[i].source_seed);
        }
        if (first)
            buf[k++] = 100 * v;
    }
    return stat_of(buf, k);
}

/* Distinct labels in order of first appearance (pointers into rows). */
static size_t labels(const rb_grid_result *rows, size_t n, int target, const char **out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *l = target ? rows[i].target : rows[i].arch;
        size_t j = 0;
        while (j < k && strcmp(out[j], l) != 0)
            j++;
        if (j == k)
            out[k++] = l;
    }
    return k;
}

/* Distinct eps of one arch (NULL: all), ascending. */
size_t eps_values(const rb_grid_result *rows, size_t n, const char *arch, eps_value *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        if (arch != NULL && strcmp(rows[i].arch, arch) != 0)
            continue;
        while (j < k && out[j].value != rows[i].source_eps)
            j++;
        if (j < k)
            continue;
        /* insertion keeps them sorted */
        for (j = k; j > 0 && out[j - 1].value > rows[i].source_eps; j--)
            out[j] = out[j - 1];
        out[j].value = rows[i].source_eps;
        out[j].text = rows[i].eps_text;
        k++;
    }
    return k;
}

const char *const MODES[2] = {"fixed", "full"};
const char *const MODE_NAMES[2] = {"fixed-feature", "full-network"};

static int mode_present(const rb_grid_result *rows, size_t n, int m)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].mode, MODES[m]) == 0)
            return 1;
    return 0;
}

/* "78.3 ± 1.2", "78.3" (one run) or "—" (none). */
static void format_stat(char *out, size_t size, report_stat s)
{
    if (s.n == 0)
        snprintf(out, size, EMDASH);
    else if (s.n == 1)
        snprintf(out, size, "%.1f", s.mean);
    else
        snprintf(out, size, "%.1f " PLUSMINUS " %.1f", s.mean, s.sd);
}

/* " (s 1.1, t 0.7)": the two levels of spread of a cell that has several
 * source models; nothing otherwise. */
static void format_spread(char *out, size_t size, spread sp)
{
    if (sp.sources < 2)
        out[0] = '\0';
    else if (isnan(sp.transfer_sd))
        snprintf(out, size, " (s %.1f)", sp.source_sd);
    else
        snprintf(out, size, " (s %.1f, t %.1f)", sp.source_sd, sp.transfer_sd);
}

/* The mean as shown, for "best" comparisons that agree with the eye. */
static long long shown(double mean)
{
    return llround(mean * 10);
}

void scratch_free(scratch *s)
{
    free(s->archs);
    free(s->targets);
    free(s->metrics);
    free(s->attacks);
    free(s->eps);
    free(s->values);
    free(s->best);
    free(s->filled);
}

rb_status scratch_make(scratch *s, const rb_grid_result *rows, size_t n)
{
    memset(s, 0, sizeof *s);
    s->archs = malloc((n + 1) * sizeof *s->archs);
    s->targets = malloc((n + 1) * sizeof *s->targets);
    s->metrics = malloc((n + 1) * sizeof *s->metrics);
    s->attacks = calloc(n + 1, sizeof *s->attacks);
    s->eps = malloc((n + 1) * sizeof *s->eps);
    s->values = malloc((n + 1) * sizeof *s->values);
    s->best = malloc(2 * (n + 1) * sizeof *s->best); /* per table column: two a target at most */
    s->filled = malloc(2 * (n + 1) * sizeof *s->filled);
    if (s->archs == NULL || s->targets == NULL || s->metrics == NULL || s->attacks == NULL || s->eps == NULL ||
        s->values == NULL ||
        s->best == NULL || s->filled == NULL) {
        scratch_free(s);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for a report of %zu rows", n);
    }
    s->n_archs = labels(rows, n, 0, s->archs);
    s->n_targets = labels(rows, n, 1, s->targets);
    /* One metric per target: a mean of accuracies and mIoUs means nothing. */
    for (size_t g = 0; g < s->n_targets; g++) {
        size_t first = n;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(rows[i].target, s->targets[g]) != 0)
                continue;
            if (first == n) {
                first = i;
                s->metrics[g] = report_metric(&rows[i]);
                s->named |= !is_accuracy(s->metrics[g]);
            } else if (strcmp(report_metric(&rows[i]), s->metrics[g]) != 0) {
                rb_status st = rb_error_set(
                    RB_ERR_INVALID_ARGUMENT,
                    "grid results: target '%s' mixes metrics, %s in row %zu and %s in row %zu (a target reports "
                    "one metric: give another task's runs a target label of their own)",
                    s->targets[g], s->metrics[g], first + 1, report_metric(&rows[i]), i + 1);
                scratch_free(s);
                return st;
            }
        }
        /* and one attack: robust accuracies under two attacks do not average */
        first = n;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(rows[i].target, s->targets[g]) != 0 || rows[i].robust_attack[0] == '\0')
                continue;
            if (first == n) {
                first = i;
                s->attacks[g] = rows[i].robust_attack;
            } else if (strcmp(rows[i].robust_attack, s->attacks[g]) != 0) {
                rb_status st = rb_error_set(
                    RB_ERR_INVALID_ARGUMENT,
                    "grid results: target '%s' mixes robust attacks, '%s' in row %zu and '%s' in row %zu (evaluate "
                    "every run of a target under one attack)",
                    s->targets[g], s->attacks[g], first + 1, rows[i].robust_attack, i + 1);
                scratch_free(s);
                return st;
            }
        }
    }
    return RB_OK;
}

/* ------------------------------------------------------------ markdown */

/* The table's target columns: each target's metric, then, where it was
 * measured, its robust accuracy. Column c is target cols[c].target. */
typedef struct column {
    size_t target;
    int robust;
} column;

static size_t target_columns(const scratch *sc, column *cols)
{
    size_t k = 0;
    for (size_t g = 0; g < sc->n_targets; g++) {
        cols[k++] = (column){g, 0};
        if (sc->attacks[g] != NULL)
            cols[k++] = (column){g, 1};
    }
    return k;
}

/* Table markup: one row starts, cells follow, the row ends. In markdown
 * bold is **, in HTML <strong>; `tail` follows the (bold) text unbolded. */
static void row_start(report_text *t, report_format f)
{
    report_put(t, f == REPORT_HTML ? "<tr>" : "|");
}

static void row_end(report_text *t, report_format f)
{
    report_put(t, f == REPORT_HTML ? "</tr>\n" : "\n");
}

static void put_cell(report_text *t, report_format f, bool head, const char *text, bool bold, const char *tail)
{
    if (f == REPORT_MARKDOWN) {
        report_put(t, " %s%s%s%s |", bold ? "**" : "", text, bold ? "**" : "", tail);
        return;
    }
    report_put(t, "<%s>%s", head ? "th" : "td", bold ? "<strong>" : "");
    report_put_escaped(t, text);
    report_put(t, "%s", bold ? "</strong>" : "");
    report_put_escaped(t, tail);
    report_put(t, "</%s>", head ? "th" : "td");
}

rb_status report_grid_table(report_text *t, const rb_grid_result *rows, size_t n, report_format f)
{
    report_text note = {0};
    scratch sc;
    column *cols;
    rb_status s;
    int robust_col = 0, same_n = 1, split_spread = 0;
    size_t common_n = 0, n_cols;
    char text[160];
    if ((s = report_check_rows(rows, n)) != RB_OK)
        return s;
    if (n == 0) {
        report_put(t, f == REPORT_HTML ? "<p>No results yet.</p>\n" : "_No results yet._\n");
        return RB_OK;
    }
    if ((s = scratch_make(&sc, rows, n)) != RB_OK)
        return s;
    if ((cols = malloc(2 * (sc.n_targets + 1) * sizeof *cols)) == NULL) {
        scratch_free(&sc);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for a report of %zu rows", n);
    }
    n_cols = target_columns(&sc, cols);
    for (size_t i = 0; i < n; i++)
        robust_col |= !isnan(rows[i].source_robust_acc);

    /* One count for the note, or a count in every cell? */
    for (size_t a = 0; a < sc.n_archs; a++) {
        size_t ne = eps_values(rows, n, sc.archs[a], sc.eps);
        for (int m = 0; m < 2; m++)
            for (size_t e = 0; e < ne; e++)
                for (size_t c = 0; c < n_cols; c++) {
                    const char *target = sc.targets[cols[c].target];
                    report_stat st =
                        target_stat(rows, n, sc.values, sc.archs[a], MODES[m], sc.eps[e].value, target, cols[c].robust);
                    if (st.n == 0)
                        continue;
                    split_spread |= target_spread(rows, n, sc.values, sc.archs[a], MODES[m], sc.eps[e].value, target,
                                                  cols[c].robust)
                                        .sources >= 2;
                    if (common_n == 0)
                        common_n = st.n;
                    else if (st.n != common_n)
                        same_n = 0;
                }
    }

    if (f == REPORT_HTML)
        report_put(t, "<table class=\"results\">\n<thead>");
    row_start(t, f);
    put_cell(t, f, true, "source model", false, "");
    put_cell(t, f, true, "source acc", false, "");
    if (robust_col)
        put_cell(t, f, true, "source robust acc", false, "");
    for (size_t c = 0; c < n_cols; c++) {
        size_t g = cols[c].target;
        /* "scenes (mIoU)": a column that is not accuracy says so */
        if (is_accuracy(sc.metrics[g]))
            snprintf(text, sizeof text, "%s%s", sc.targets[g], cols[c].robust ? " robust" : "");
        else
            snprintf(text, sizeof text, "%s%s (%s)", sc.targets[g], cols[c].robust ? " robust" : "",
                     rb_grid_metric_label(sc.metrics[g]));
        put_cell(t, f, true, text, false, "");
    }
    row_end(t, f);
    if (f == REPORT_HTML) {
        report_put(t, "</thead>\n<tbody>\n");
    } else {
        report_put(t, "|---|---:|%s", robust_col ? "---:|" : "");
        for (size_t c = 0; c < n_cols; c++)
            report_put(t, "---:|");
        report_put(t, "\n");
    }

    for (size_t a = 0; a < sc.n_archs; a++) {
        const char *arch = sc.archs[a];
        size_t ne = eps_values(rows, n, arch, sc.eps);
        for (int m = 0; m < 2; m++) {
            long long *best = sc.best;
            size_t *filled = sc.filled;
            if (!mode_present(rows, n, m))
                continue;
            /* best shown mean per column within this (arch, mode) block */
            for (size_t c = 0; c < n_cols; c++) {
                best[c] = -1;
                filled[c] = 0;
                for (size_t e = 0; e < ne; e++) {
                    report_stat st = target_stat(rows, n, sc.values, arch, MODES[m], sc.eps[e].value,
                                                 sc.targets[cols[c].target], cols[c].robust);
                    if (st.n == 0)
                        continue;
                    filled[c]++;
                    if (shown(st.mean) > best[c])
                        best[c] = shown(st.mean);
                }
            }
            for (size_t e = 0; e < ne; e++) {
                char cell[96];
                report_stat src = source_stat(rows, n, sc.values, arch, sc.eps[e].value, 0);
                row_start(t, f);
                if (sc.eps[e].value == 0)
                    snprintf(text, sizeof text, "%s " MIDDOT " %s " MIDDOT " standard (" EPSILON "=%s)", arch,
                             MODE_NAMES[m], sc.eps[e].text);
                else
                    snprintf(text, sizeof text, "%s " MIDDOT " %s " MIDDOT " robust " EPSILON "=%s", arch,
                             MODE_NAMES[m], sc.eps[e].text);
                put_cell(t, f, false, text, false, "");
                format_stat(cell, sizeof cell, src);
                put_cell(t, f, false, cell, false, "");
                if (robust_col) {
                    format_stat(cell, sizeof cell, source_stat(rows, n, sc.values, arch, sc.eps[e].value, 1));
                    put_cell(t, f, false, cell, false, "");
                }
                for (size_t c = 0; c < n_cols; c++) {
                    const char *target = sc.targets[cols[c].target];
                    report_stat st =
                        target_stat(rows, n, sc.values, arch, MODES[m], sc.eps[e].value, target, cols[c].robust);
                    int bold = st.n > 0 && filled[c] >= 2 && shown(st.mean) == best[c];
                    char levels[64], tail[96];
                    format_stat(cell, sizeof cell, st);
                    format_spread(levels, sizeof levels,
                                  target_spread(rows, n, sc.values, arch, MODES[m], sc.eps[e].value, target,
                                                cols[c].robust));
                    if (!same_n && st.n > 0)
                        snprintf(tail, sizeof tail, "%s (n=%zu)", levels, st.n);
                    else
                        snprintf(tail, sizeof tail, "%s", levels);
                    put_cell(t, f, false, cell, bold, tail);
                }
                row_end(t, f);
            }
        }
    }
    if (f == REPORT_HTML)
        report_put(t, "</tbody>\n</table>\n");

    if (sc.named)
        report_put(&note, "Target test score (%%), accuracy or the metric its column names: mean " PLUSMINUS
                          " sample standard deviation over ");
    else
        report_put(&note, "Target test accuracy (%%): mean " PLUSMINUS " sample standard deviation over ");
    if (same_n && common_n > 0)
        report_put(&note, "n = %zu run%s per cell", common_n, common_n == 1 ? "" : "s");
    else
        report_put(&note, "the n runs shown in each cell");
    report_put(&note, " (source seeds " TIMES " transfer seeds); bold: the best mean of each architecture and mode "
                      "for a target. source acc: the source models' clean test accuracy (%%), over source seeds.");
    if (robust_col)
        report_put(&note, " source robust acc: their test accuracy under the PGD evaluation attack (%%), over "
                          "source seeds.");
    for (size_t c = 0; c < n_cols; c++)
        if (cols[c].robust)
            report_put(&note, " %s robust: the transferred models' %s on %s's test images attacked by %s (%%).",
                       sc.targets[cols[c].target], rb_grid_metric_label(sc.metrics[cols[c].target]),
                       sc.targets[cols[c].target], sc.attacks[cols[c].target]);
    if (split_spread)
        report_put(&note,
                   " In brackets, where a cell has several source models: s, the standard deviation over source "
                   "seeds of the source models' mean target %s (each over its transfer seeds); t, the pooled "
                   "standard deviation over transfer seeds within a source model.",
                   sc.named ? "score" : "accuracy");
    free(cols);
    scratch_free(&sc);
    if (note.failed) {
        free(note.data);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory writing the results table");
    }
    if (f == REPORT_HTML) {
        report_put(t, "<p class=\"note\">");
        report_put_escaped(t, note.data);
        report_put(t, "</p>\n");
    } else {
        report_put(t, "\n%s\n", note.data);
    }
    free(note.data);
    return RB_OK;
}

rb_status rb_grid_markdown(const rb_grid_result *rows, size_t n, char **out)
{
    report_text t = {0};
    rb_status s;
    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_grid_markdown: NULL argument");
    *out = NULL;
    if ((s = report_grid_table(&t, rows, n, REPORT_MARKDOWN)) != RB_OK) {
        free(t.data);
        return s;
    }
    return report_finish(&t, out, "results table");
}

/* ------------------------------------------------------------ summary */

static void put_counts(report_text *t, report_stat first, report_stat second)
{
    if (first.n == second.n)
        report_put(t, "%zu run%s each", first.n, first.n == 1 ? "" : "s");
    else
        report_put(t, "%zu and %zu runs", first.n, second.n);
}

/* How a difference of `delta` points between two cells compares with their
 * spread: "larger than" (1), "within" (0), or a single run on a side (-1);
 * the words go into `words` (" — ..."). Runs of one source model share its
 * training's luck, so where both sides have several source models the
 * verdict weighs the spread of their means; otherwise only transfer seeds
 * vary and the words say so. */
static int against_spread(double delta, report_stat a, spread a_sp, report_stat b, spread b_sp, char *words,
                          size_t size)
{
    int larger;
    if (a.n < 2 || b.n < 2) {
        snprintf(words, size, " " EMDASH " single run, no spread");
        return -1;
    }
    if (a_sp.sources >= 2 && b_sp.sources >= 2) {
        larger = fabs(delta) > a_sp.source_sd + b_sp.source_sd;
        snprintf(words, size, " " EMDASH " %s the spread over source seeds (sd %.1f and %.1f)",
                 larger ? "larger than" : "within", a_sp.source_sd, b_sp.source_sd);
        return larger;
    }
    larger = fabs(delta) > a.sd + b.sd;
    snprintf(words, size,
             " " EMDASH " %s the seed spread (one source seed: source training's own spread is not measured)",
             larger ? "larger than" : "within");
    return larger;
}

/* The verdict line of one arch, mode and target, on its metric or (robust)
 * on its robust accuracy. */
static void put_verdict(report_text *t, const rb_grid_result *rows, size_t n, scratch *sc, const char *arch, int m,
                        size_t ne, size_t g, int robust)
{
    report_stat std = {0, 0, 0}, rob = {0, 0, 0};
    spread std_sp = {0, NAN, NAN}, rob_sp = {0, NAN, NAN};
    const char *rob_text = NULL, *target = sc->targets[g];
    char a_text[96], b_text[96], of[64] = "", unit[64] = "", tail[160];
    double delta;
    int larger;
    for (size_t e = 0; e < ne; e++) {
        report_stat st = target_stat(rows, n, sc->values, arch, MODES[m], sc->eps[e].value, target, robust);
        if (st.n == 0)
            continue;
        if (sc->eps[e].value == 0) {
            std = st;
            std_sp = target_spread(rows, n, sc->values, arch, MODES[m], 0, target, robust);
        } else if (rob_text == NULL || st.mean > rob.mean) {
            rob = st;
            rob_text = sc->eps[e].text;
            rob_sp = target_spread(rows, n, sc->values, arch, MODES[m], sc->eps[e].value, target, robust);
        }
    }
    format_stat(a_text, sizeof a_text, rob);
    format_stat(b_text, sizeof b_text, std);
    if (robust) {
        /* "does the robust prior's robustness survive transfer?" */
        if (std.n == 0 && rob.n == 0)
            return; /* measured in another block only */
        snprintf(unit, sizeof unit, " robust %s", rb_grid_metric_label(sc->metrics[g]));
        report_put(t, "%s, %s, %s under %s: ", arch, MODE_NAMES[m], target, sc->attacks[g]);
        if (std.n == 0 || rob.n == 0) {
            if (std.n == 0)
                report_put(t, "no standard (" EPSILON "=0) run to compare with; best robust " EPSILON "=%s keeps %s%s",
                           rob_text, a_text, unit);
            else
                report_put(t, "no robust (" EPSILON ">0) run to compare with; standard keeps %s%s", b_text, unit);
            report_put(t, " (%zu run%s)\n", rob.n + std.n, rob.n + std.n == 1 ? "" : "s");
            return;
        }
        delta = rob.mean - std.mean;
        larger = against_spread(delta, rob, rob_sp, std, std_sp, tail, sizeof tail);
        report_put(t, "%s: robust " EPSILON "=%s keeps %s%s vs standard's %s (%s%.1f points, ",
                   larger == -1             ? "a single run cannot tell whether the robust prior's robustness "
                                              "survived"
                   : delta > 0 && larger == 1 ? "the robust prior's robustness survived"
                   : delta > 0                ? "the robust prior's robustness did not clearly survive"
                                              : "the robust prior's robustness did not survive",
                   rob_text, a_text, unit, b_text, delta > 0 ? "+" : "", delta);
        put_counts(t, rob, std);
        report_put(t, ")%s\n", tail);
        return;
    }
    /* accuracy goes unnamed, as before metrics had names */
    if (!is_accuracy(sc->metrics[g])) {
        snprintf(of, sizeof of, " of %s", rb_grid_metric_label(sc->metrics[g]));
        snprintf(unit, sizeof unit, " %s", rb_grid_metric_label(sc->metrics[g]));
    }
    report_put(t, "%s, %s, %s: ", arch, MODE_NAMES[m], target);
    if (std.n == 0 && rob.n == 0) {
        report_put(t, "no runs yet\n");
        return;
    }
    if (std.n == 0) {
        report_put(t, "no standard (" EPSILON "=0) run to compare with; best robust " EPSILON "=%s: ", rob_text);
        report_put(t, "%s%s (%zu run%s)\n", a_text, unit, rob.n, rob.n == 1 ? "" : "s");
        return;
    }
    if (rob.n == 0) {
        report_put(t, "no robust (" EPSILON ">0) run to compare with; standard: %s%s (%zu run%s)\n", b_text, unit,
                   std.n, std.n == 1 ? "" : "s");
        return;
    }
    delta = rob.mean - std.mean;
    if (delta > 0) {
        report_put(t, "robust " EPSILON "=%s beats standard by +%.1f points%s (%s vs %s, ", rob_text, delta, of,
                   a_text, b_text);
        put_counts(t, rob, std);
    } else if (delta < 0) {
        report_put(t, "standard beats the best robust (" EPSILON "=%s) by %.1f points%s (%s vs %s, ", rob_text,
                   -delta, of, b_text, a_text);
        put_counts(t, std, rob);
    } else {
        report_put(t, "robust " EPSILON "=%s ties with standard (%s vs %s, ", rob_text, a_text, b_text);
        put_counts(t, rob, std);
    }
    against_spread(delta, rob, rob_sp, std, std_sp, tail, sizeof tail);
    report_put(t, ")%s\n", tail);
}

rb_status rb_grid_summary(const rb_grid_result *rows, size_t n, char **out)
{
    report_text t = {0};
    scratch sc;
    rb_status s;
    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_grid_summary: NULL argument");
    *out = NULL;
    if ((s = report_check_rows(rows, n)) != RB_OK)
        return s;
    if (n == 0) {
        report_put(&t, "No results yet.\n");
        return report_finish(&t, out, "summary");
    }
    if ((s = scratch_make(&sc, rows, n)) != RB_OK)
        return s;
    for (size_t a = 0; a < sc.n_archs; a++) {
        size_t ne = eps_values(rows, n, sc.archs[a], sc.eps);
        for (int m = 0; m < 2; m++) {
            if (!mode_present(rows, n, m))
                continue;
            for (size_t g = 0; g < sc.n_targets; g++) {
                put_verdict(&t, rows, n, &sc, sc.archs[a], m, ne, g, 0);
                if (sc.attacks[g] != NULL)
                    put_verdict(&t, rows, n, &sc, sc.archs[a], m, ne, g, 1);
            }
        }
    }
    scratch_free(&sc);
    return report_finish(&t, out, "summary");
}

