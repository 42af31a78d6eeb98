/* Grid results: the markdown table, the summary and the SVG plot (see
 * robusta/grid.h for what each looks like; results.csv is report_csv.c's).
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

rb_status report_check_rows(const rb_grid_result *rows, size_t n)
{
    if (rows == NULL && n > 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "grid report: NULL rows");
    for (size_t i = 0; i < n; i++) {
        const rb_grid_result *r = &rows[i];
        if (memchr(r->arch, '\0', sizeof r->arch) == NULL || memchr(r->target, '\0', sizeof r->target) == NULL ||
            memchr(r->eps_text, '\0', sizeof r->eps_text) == NULL || memchr(r->mode, '\0', sizeof r->mode) == NULL ||
            memchr(r->metric, '\0', sizeof r->metric) == NULL)
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

typedef struct stat {
    size_t n;
    double mean, sd; /* percent; sd is 0 when n < 2 */
} stat;

static int row_matches(const rb_grid_result *r, const char *arch, const char *mode, double eps, const char *target)
{
    return (arch == NULL || strcmp(r->arch, arch) == 0) && (mode == NULL || strcmp(r->mode, mode) == 0) &&
           r->source_eps == eps && (target == NULL || strcmp(r->target, target) == 0);
}

static stat stat_of(const double *v, size_t n)
{
    stat s = {n, 0, 0};
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

/* Target accuracy of one (arch, mode, eps, target), in percent. `buf`
 * holds n doubles. */
static stat target_stat(const rb_grid_result *rows, size_t n, double *buf, const char *arch, const char *mode,
                        double eps, const char *target)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (row_matches(&rows[i], arch, mode, eps, target) && !isnan(rows[i].target_acc))
            buf[k++] = 100 * rows[i].target_acc;
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
                            double eps, const char *target)
{
    spread sp = {0, NAN, NAN};
    double within = 0;
    size_t dof = 0;
    for (size_t i = 0; i < n; i++) {
        double sum = 0, ss = 0, mean;
        size_t k = 0, j;
        if (!row_matches(&rows[i], arch, mode, eps, target) || isnan(rows[i].target_acc))
            continue;
        for (j = 0; j < i; j++) /* only the first run of a source model opens it */
            if (row_matches(&rows[j], arch, mode, eps, target) && !isnan(rows[j].target_acc) &&
                rows[j].source_seed == rows[i].source_seed)
                break;
        if (j < i)
            continue;
        for (j = i; j < n; j++)
            if (row_matches(&rows[j], arch, mode, eps, target) && !isnan(rows[j].target_acc) &&
                rows[j].source_seed == rows[i].source_seed) {
                sum += 100 * rows[j].target_acc;
                k++;
            }
        mean = sum / (double)k;
        for (j = i; j < n; j++)
            if (row_matches(&rows[j], arch, mode, eps, target) && !isnan(rows[j].target_acc) &&
                rows[j].source_seed == rows[i].source_seed)
                ss += (100 * rows[j].target_acc - mean) * (100 * rows[j].target_acc - mean);
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
static stat source_stat(const rb_grid_result *rows, size_t n, double *buf, const char *arch, double eps, int robust)
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

typedef struct eps_value {
    double value;
    const char *text; /* as written in its first row */
} eps_value;

/* Distinct eps of one arch (NULL: all), ascending. */
static size_t eps_values(const rb_grid_result *rows, size_t n, const char *arch, eps_value *out)
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

static const char *const MODES[2] = {"fixed", "full"};
static const char *const MODE_NAMES[2] = {"fixed-feature", "full-network"};

static int mode_present(const rb_grid_result *rows, size_t n, int m)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].mode, MODES[m]) == 0)
            return 1;
    return 0;
}

/* "78.3 ± 1.2", "78.3" (one run) or "—" (none). */
static void format_stat(char *out, size_t size, stat s)
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

/* Scratch shared by the reports: labels, eps values and a value buffer. */
typedef struct scratch {
    const char **archs, **targets;
    size_t n_archs, n_targets;
    const char **metrics; /* per target: the metric of its rows */
    int named;            /* some target's metric is not accuracy */
    eps_value *eps;
    double *values;
    long long *best;   /* per target: the best shown mean of a block */
    size_t *filled;    /* per target: how many eps of a block have runs */
} scratch;

static void scratch_free(scratch *s)
{
    free(s->archs);
    free(s->targets);
    free(s->metrics);
    free(s->eps);
    free(s->values);
    free(s->best);
    free(s->filled);
}

static rb_status scratch_make(scratch *s, const rb_grid_result *rows, size_t n)
{
    memset(s, 0, sizeof *s);
    s->archs = malloc((n + 1) * sizeof *s->archs);
    s->targets = malloc((n + 1) * sizeof *s->targets);
    s->metrics = malloc((n + 1) * sizeof *s->metrics);
    s->eps = malloc((n + 1) * sizeof *s->eps);
    s->values = malloc((n + 1) * sizeof *s->values);
    s->best = malloc((n + 1) * sizeof *s->best);
    s->filled = malloc((n + 1) * sizeof *s->filled);
    if (s->archs == NULL || s->targets == NULL || s->metrics == NULL || s->eps == NULL || s->values == NULL ||
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
    }
    return RB_OK;
}

/* ------------------------------------------------------------ markdown */

rb_status rb_grid_markdown(const rb_grid_result *rows, size_t n, char **out)
{
    report_text t = {0};
    scratch sc;
    rb_status s;
    int robust_col = 0, same_n = 1, split_spread = 0;
    size_t common_n = 0;
    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_grid_markdown: NULL argument");
    *out = NULL;
    if ((s = report_check_rows(rows, n)) != RB_OK)
        return s;
    if (n == 0) {
        report_put(&t, "_No results yet._\n");
        return report_finish(&t, out, "results table");
    }
    if ((s = scratch_make(&sc, rows, n)) != RB_OK)
        return s;
    for (size_t i = 0; i < n; i++)
        robust_col |= !isnan(rows[i].source_robust_acc);

    /* One count for the note, or a count in every cell? */
    for (size_t a = 0; a < sc.n_archs; a++) {
        size_t ne = eps_values(rows, n, sc.archs[a], sc.eps);
        for (int m = 0; m < 2; m++)
            for (size_t e = 0; e < ne; e++)
                for (size_t g = 0; g < sc.n_targets; g++) {
                    stat st = target_stat(rows, n, sc.values, sc.archs[a], MODES[m], sc.eps[e].value, sc.targets[g]);
                    if (st.n == 0)
                        continue;
                    split_spread |=
                        target_spread(rows, n, sc.values, sc.archs[a], MODES[m], sc.eps[e].value, sc.targets[g])
                            .sources >= 2;
                    if (common_n == 0)
                        common_n = st.n;
                    else if (st.n != common_n)
                        same_n = 0;
                }
    }

    report_put(&t, "| source model | source acc |%s", robust_col ? " source robust acc |" : "");
    for (size_t g = 0; g < sc.n_targets; g++) {
        /* "scenes (mIoU)": a column that is not accuracy says so */
        if (is_accuracy(sc.metrics[g]))
            report_put(&t, " %s |", sc.targets[g]);
        else
            report_put(&t, " %s (%s) |", sc.targets[g], rb_grid_metric_label(sc.metrics[g]));
    }
    report_put(&t, "\n|---|---:|%s", robust_col ? "---:|" : "");
    for (size_t g = 0; g < sc.n_targets; g++)
        report_put(&t, "---:|");
    report_put(&t, "\n");

    for (size_t a = 0; a < sc.n_archs; a++) {
        const char *arch = sc.archs[a];
        size_t ne = eps_values(rows, n, arch, sc.eps);
        for (int m = 0; m < 2; m++) {
            long long *best = sc.best;
            size_t *filled = sc.filled;
            if (!mode_present(rows, n, m))
                continue;
            /* best shown mean per target within this (arch, mode) block */
            for (size_t g = 0; g < sc.n_targets; g++) {
                best[g] = -1;
                filled[g] = 0;
                for (size_t e = 0; e < ne; e++) {
                    stat st = target_stat(rows, n, sc.values, arch, MODES[m], sc.eps[e].value, sc.targets[g]);
                    if (st.n == 0)
                        continue;
                    filled[g]++;
                    if (shown(st.mean) > best[g])
                        best[g] = shown(st.mean);
                }
            }
            for (size_t e = 0; e < ne; e++) {
                char cell[96];
                stat src = source_stat(rows, n, sc.values, arch, sc.eps[e].value, 0);
                if (sc.eps[e].value == 0)
                    report_put(&t, "| %s " MIDDOT " %s " MIDDOT " standard (" EPSILON "=%s) |", arch, MODE_NAMES[m],
                        sc.eps[e].text);
                else
                    report_put(&t, "| %s " MIDDOT " %s " MIDDOT " robust " EPSILON "=%s |", arch, MODE_NAMES[m],
                        sc.eps[e].text);
                format_stat(cell, sizeof cell, src);
                report_put(&t, " %s |", cell);
                if (robust_col) {
                    format_stat(cell, sizeof cell, source_stat(rows, n, sc.values, arch, sc.eps[e].value, 1));
                    report_put(&t, " %s |", cell);
                }
                for (size_t g = 0; g < sc.n_targets; g++) {
                    stat st = target_stat(rows, n, sc.values, arch, MODES[m], sc.eps[e].value, sc.targets[g]);
                    int bold = st.n > 0 && filled[g] >= 2 && shown(st.mean) == best[g];
                    char levels[64];
                    format_stat(cell, sizeof cell, st);
                    format_spread(levels, sizeof levels,
                                  target_spread(rows, n, sc.values, arch, MODES[m], sc.eps[e].value, sc.targets[g]));
                    report_put(&t, " %s%s%s%s", bold ? "**" : "", cell, bold ? "**" : "", levels);
                    if (!same_n && st.n > 0)
                        report_put(&t, " (n=%zu)", st.n);
                    report_put(&t, " |");
                }
                report_put(&t, "\n");
            }
        }
    }
    if (sc.named)
        report_put(&t, "\nTarget test score (%%), accuracy or the metric its column names: mean " PLUSMINUS
                       " sample standard deviation over ");
    else
        report_put(&t, "\nTarget test accuracy (%%): mean " PLUSMINUS " sample standard deviation over ");
    if (same_n && common_n > 0)
        report_put(&t, "n = %zu run%s per cell", common_n, common_n == 1 ? "" : "s");
    else
        report_put(&t, "the n runs shown in each cell");
    report_put(&t, " (source seeds " TIMES " transfer seeds); bold: the best mean of each architecture and mode "
            "for a target. source acc: the source models' clean test accuracy (%%), over source seeds.");
    if (robust_col)
        report_put(&t, " source robust acc: their test accuracy under the PGD evaluation attack (%%), over source "
                       "seeds.");
    if (split_spread)
        report_put(&t,
                   " In brackets, where a cell has several source models: s, the standard deviation over source "
                   "seeds of the source models' mean target %s (each over its transfer seeds); t, the pooled "
                   "standard deviation over transfer seeds within a source model.",
                   sc.named ? "score" : "accuracy");
    report_put(&t, "\n");
    scratch_free(&sc);
    return report_finish(&t, out, "results table");
}

/* ------------------------------------------------------------ summary */

static void put_counts(report_text *t, stat first, stat second)
{
    if (first.n == second.n)
        report_put(t, "%zu run%s each", first.n, first.n == 1 ? "" : "s");
    else
        report_put(t, "%zu and %zu runs", first.n, second.n);
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
        const char *arch = sc.archs[a];
        size_t ne = eps_values(rows, n, arch, sc.eps);
        for (int m = 0; m < 2; m++) {
            if (!mode_present(rows, n, m))
                continue;
            for (size_t g = 0; g < sc.n_targets; g++) {
                stat std = {0, 0, 0}, rob = {0, 0, 0};
                spread std_sp = {0, NAN, NAN}, rob_sp = {0, NAN, NAN};
                const char *rob_text = NULL;
                char a_text[96], b_text[96], of[48] = "", unit[48] = "";
                double delta;
                for (size_t e = 0; e < ne; e++) {
                    stat st = target_stat(rows, n, sc.values, arch, MODES[m], sc.eps[e].value, sc.targets[g]);
                    if (st.n == 0)
                        continue;
                    if (sc.eps[e].value == 0) {
                        std = st;
                        std_sp = target_spread(rows, n, sc.values, arch, MODES[m], 0, sc.targets[g]);
                    } else if (rob_text == NULL || st.mean > rob.mean) {
                        rob = st;
                        rob_text = sc.eps[e].text;
                        rob_sp = target_spread(rows, n, sc.values, arch, MODES[m], sc.eps[e].value, sc.targets[g]);
                    }
                }
                /* accuracy goes unnamed, as before metrics had names */
                if (!is_accuracy(sc.metrics[g])) {
                    snprintf(of, sizeof of, " of %s", rb_grid_metric_label(sc.metrics[g]));
                    snprintf(unit, sizeof unit, " %s", rb_grid_metric_label(sc.metrics[g]));
                }
                report_put(&t, "%s, %s, %s: ", arch, MODE_NAMES[m], sc.targets[g]);
                format_stat(a_text, sizeof a_text, rob);
                format_stat(b_text, sizeof b_text, std);
                if (std.n == 0 && rob.n == 0) {
                    report_put(&t, "no runs yet\n");
                    continue;
                }
                if (std.n == 0) {
                    report_put(&t, "no standard (" EPSILON "=0) run to compare with; best robust " EPSILON "=%s: ",
                               rob_text);
                    report_put(&t, "%s%s (%zu run%s)\n", a_text, unit, rob.n, rob.n == 1 ? "" : "s");
                    continue;
                }
                if (rob.n == 0) {
                    report_put(&t, "no robust (" EPSILON ">0) run to compare with; standard: %s%s (%zu run%s)\n",
                               b_text, unit, std.n, std.n == 1 ? "" : "s");
                    continue;
                }
                delta = rob.mean - std.mean;
                if (delta > 0) {
                    report_put(&t, "robust " EPSILON "=%s beats standard by +%.1f points%s (%s vs %s, ", rob_text,
                               delta, of, a_text, b_text);
                    put_counts(&t, rob, std);
                } else if (delta < 0) {
                    report_put(&t, "standard beats the best robust (" EPSILON "=%s) by %.1f points%s (%s vs %s, ",
                               rob_text, -delta, of, b_text, a_text);
                    put_counts(&t, std, rob);
                } else {
                    report_put(&t, "robust " EPSILON "=%s ties with standard (%s vs %s, ", rob_text, a_text,
                               b_text);
                    put_counts(&t, rob, std);
                }
                /* Runs of one source model share its training's luck, so
                 * where both sides have several source models the verdict
                 * weighs the spread of their means; otherwise only
                 * transfer seeds vary and the verdict says so. */
                if (rob.n < 2 || std.n < 2)
                    report_put(&t, ") " EMDASH " single run, no spread\n");
                else if (rob_sp.sources >= 2 && std_sp.sources >= 2)
                    report_put(&t, ") " EMDASH " %s the spread over source seeds (sd %.1f and %.1f)\n",
                               fabs(delta) > rob_sp.source_sd + std_sp.source_sd ? "larger than" : "within",
                               rob_sp.source_sd, std_sp.source_sd);
                else
                    report_put(&t,
                               ") " EMDASH " %s the seed spread (one source seed: source training's own spread is "
                               "not measured)\n",
                               fabs(delta) > rob.sd + std.sd ? "larger than" : "within");
            }
        }
    }
    scratch_free(&sc);
    return report_finish(&t, out, "summary");
}

/* ------------------------------------------------------------ SVG */

#define PANEL_W 420.0
#define PANEL_H 300.0
#define TITLE_H 34.0     /* the main title, above the panels */
#define PLOT_LEFT 60.0   /* inside a panel: room for the y labels */
#define PLOT_RIGHT 16.0
#define PLOT_TOP 30.0    /* the panel title */
#define PLOT_BOTTOM 46.0 /* x tick labels and the x axis title */
#define X_INSET 14.0     /* keeps the first and last eps off the frame */
#define LEGEND_ROW 18.0

static const char *const COLORS[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                     "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define N_COLORS (sizeof COLORS / sizeof COLORS[0])

static void put_escaped(report_text *t, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '&': report_put(t, "&amp;"); break;
        case '<': report_put(t, "&lt;"); break;
        case '>': report_put(t, "&gt;"); break;
        case '"': report_put(t, "&quot;"); break;
        default: report_put(t, "%c", *s);
        }
}

/* A round tick step (1, 2 or 5 times a power of ten) giving about 5 ticks. */
static double nice_step(double span)
{
    double raw = span / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

typedef struct series {
    const char *arch;
    int mode;
} series;

/* Series style: a color, dashed once the palette has been used up. */
static void put_stroke(report_text *t, size_t i)
{
    report_put(t, "stroke=\"%s\"%s", COLORS[i % N_COLORS], i >= N_COLORS ? " stroke-dasharray=\"5 3\"" : "");
}

static void svg_panel(report_text *t, const rb_grid_result *rows, size_t n, scratch *sc, const series *ser,
                      size_t n_ser, size_t ne, double x_max, size_t g)
{
    const char *target = sc->targets[g];
    double x0 = (double)g * PANEL_W, left = x0 + PLOT_LEFT, top = TITLE_H + PLOT_TOP;
    double w = PANEL_W - PLOT_LEFT - PLOT_RIGHT, h = PANEL_H - PLOT_TOP - PLOT_BOTTOM;
    double lo = INFINITY, hi = -INFINITY, step, y_lo, y_hi;
    int n_ticks;

    /* y range: every mean ± sd of this panel, widened to round ticks */
    for (size_t s = 0; s < n_ser; s++)
        for (size_t e = 0; e < ne; e++) {
            stat st = target_stat(rows, n, sc->values, ser[s].arch, MODES[ser[s].mode], sc->eps[e].value, target);
            if (st.n == 0)
                continue;
            lo = fmin(lo, st.mean - st.sd);
            hi = fmax(hi, st.mean + st.sd);
        }
    if (!(lo <= hi)) {
        lo = 0;
        hi = 100;
    }
    if (hi - lo < 1e-6) {
        lo -= 1;
        hi += 1;
    }
    step = nice_step(hi - lo);
    y_lo = floor(lo / step) * step;
    y_hi = ceil(hi / step) * step;
    n_ticks = (int)lround((y_hi - y_lo) / step) + 1;

#define PX(eps) (x_max > 0 ? left + X_INSET + (eps) / x_max * (w - 2 * X_INSET) : left + w / 2)
#define PY(v) (top + (y_hi - (v)) / (y_hi - y_lo) * h)
    report_put(t, "<g>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">",
        x0 + PLOT_LEFT + w / 2, TITLE_H + 18);
    put_escaped(t, target);
    report_put(t, "</text>\n");
    for (int k = 0; k < n_ticks; k++) {
        double v = y_lo + k * step, y = PY(v);
        report_put(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", left, y,
                   left + w, y);
        report_put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", left - 6, y + 4, v);
    }
    report_put(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n",
               left, top, w, h);
    {
        /* a label too close to the previous one (0 and 8/255) drops a row */
        double last_x = -INFINITY;
        int row = 0;
        for (size_t e = 0; e < ne; e++) {
            double x = PX(sc->eps[e].value);
            row = x - last_x < 30 && row == 0;
            last_x = x;
            report_put(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", x, top + h, x,
                top + h + 4);
            report_put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x, top + h + 16 + 11 * row);
            put_escaped(t, sc->eps[e].text);
            report_put(t, "</text>\n");
        }
    }
    report_put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">source " EPSILON "</text>\n", left + w / 2,
        top + h + 40);
    /* the y axis names the panel's metric: "target accuracy (%)", "target mIoU (%)" */
    report_put(t, "<text transform=\"rotate(-90 %.1f %.1f)\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
               x0 + 16, top + h / 2, x0 + 16, top + h / 2);
    report_put(t, "target ");
    put_escaped(t, rb_grid_metric_label(sc->metrics[g]));
    report_put(t, " (%%)</text>\n");

    for (size_t s = 0; s < n_ser; s++) {
        int any = 0;
        for (size_t e = 0; e < ne; e++) {
            stat st = target_stat(rows, n, sc->values, ser[s].arch, MODES[ser[s].mode], sc->eps[e].value, target);
            if (st.n == 0)
                continue;
            if (!any)
                report_put(t, "<polyline fill=\"none\" stroke-width=\"1.5\" ");
            if (!any)
                put_stroke(t, s);
            report_put(t, "%s%.1f,%.1f", any ? " " : " points=\"", PX(sc->eps[e].value), PY(st.mean));
            any = 1;
        }
        if (any)
            report_put(t, "\"/>\n");
        for (size_t e = 0; e < ne; e++) {
            stat st = target_stat(rows, n, sc->values, ser[s].arch, MODES[ser[s].mode], sc->eps[e].value, target);
            double x = PX(sc->eps[e].value);
            if (st.n == 0)
                continue;
            if (st.n > 1) {
                report_put(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" ", x, PY(st.mean - st.sd), x,
                    PY(st.mean + st.sd));
                put_stroke(t, s);
                report_put(t, "/>\n");
            }
            report_put(t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", x, PY(st.mean),
                       COLORS[s % N_COLORS]);
        }
    }
#undef PX
#undef PY
    report_put(t, "</g>\n");
}

rb_status rb_grid_write_svg(const char *path, const char *title, const rb_grid_result *rows, size_t n)
{
    report_text t = {0};
    scratch sc;
    series *ser = NULL;
    size_t n_ser = 0, ne = 0, panels;
    double x_max = 0, width, height;
    rb_status s;
    if (path == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_grid_write_svg: NULL path");
    if ((s = report_check_rows(rows, n)) != RB_OK)
        return s;
    if ((s = scratch_make(&sc, rows, n)) != RB_OK)
        return s;
    if ((ser = malloc((2 * sc.n_archs + 1) * sizeof *ser)) == NULL) {
        scratch_free(&sc);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory plotting %s", path);
    }
    for (size_t a = 0; a < sc.n_archs; a++)
        for (int m = 0; m < 2; m++)
            for (size_t i = 0; i < n; i++)
                if (strcmp(rows[i].arch, sc.archs[a]) == 0 && strcmp(rows[i].mode, MODES[m]) == 0) {
                    ser[n_ser].arch = sc.archs[a];
                    ser[n_ser++].mode = m;
                    break;
                }
    ne = eps_values(rows, n, NULL, sc.eps);
    for (size_t e = 0; e < ne; e++)
        x_max = fmax(x_max, sc.eps[e].value);
    panels = sc.n_targets > 0 ? sc.n_targets : 1;
    width = PANEL_W * (double)panels;
    height = TITLE_H + PANEL_H + 10 + LEGEND_ROW * (double)n_ser + 10;

    report_put(&t, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    report_put(&t, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
            "font-family=\"sans-serif\" font-size=\"11\">\n",
        width, height, width, height);
    report_put(&t, "<rect width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", width, height);
    if (title != NULL) {
        report_put(&t, "<text x=\"%.1f\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">",
                   width / 2);
        put_escaped(&t, title);
        report_put(&t, "</text>\n");
    }
    if (n == 0)
        report_put(&t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no results yet</text>\n", width / 2,
            TITLE_H + PANEL_H / 2);
    for (size_t g = 0; g < sc.n_targets; g++)
        svg_panel(&t, rows, n, &sc, ser, n_ser, ne, x_max, g);
    for (size_t i = 0; i < n_ser; i++) {
        double y = TITLE_H + PANEL_H + 10 + LEGEND_ROW * (double)i + LEGEND_ROW / 2;
        report_put(&t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke-width=\"2\" ", PLOT_LEFT, y,
            PLOT_LEFT + 24, y);
        put_stroke(&t, i);
        report_put(&t, "/>\n<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PLOT_LEFT + 12, y,
            COLORS[i % N_COLORS]);
        report_put(&t, "<text x=\"%.1f\" y=\"%.1f\">", PLOT_LEFT + 32, y + 4);
        put_escaped(&t, ser[i].arch);
        report_put(&t, " %s</text>\n", MODES[ser[i].mode]);
    }
    report_put(&t, "</svg>\n");
    free(ser);
    scratch_free(&sc);
    if (t.failed) {
        free(t.data);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory plotting %s", path);
    }
    s = rb_file_write_atomic(path, t.data, t.len);
    free(t.data);
    return s;
}
