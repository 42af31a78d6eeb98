/* Grid results: results.csv, the markdown table, the summary and the SVG
 * plot (see robusta/grid.h for what each looks like).
 *
 * Everything here is a pure function of the rows, in row order, so that the
 * same results give the same bytes (the tests compare exact text). Statistics
 * are in percent: mean and sample standard deviation (n - 1) of target_acc
 * over the rows of one (arch, mode, eps, target); rows whose target_acc is
 * NaN are left out. Groups are found by scanning the rows, which is
 * quadratic but grids have hundreds of rows, not millions. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/grid.h>

#include "sys/internal.h"

/* UTF-8, spelled out so that a hex escape can never swallow the next letter. */
#define MIDDOT "\xc2\xb7"
#define EPSILON "\xce\xb5"
#define PLUSMINUS "\xc2\xb1"
#define EMDASH "\xe2\x80\x94"
#define TIMES "\xc3\x97"

static const char CSV_HEADER[] = "arch,eps,source_eps,source_seed,source_test_acc,source_robust_acc,target,mode,"
                                 "transfer_seed,target_acc,seconds";
#define CSV_FIELDS 11

/* ------------------------------------------------------------ text */

typedef struct text {
    char *data;
    size_t len, cap;
    int failed; /* out of memory: checked once at the end */
} text;

static void put(text *t, const char *fmt, ...) RB_PRINTF(2, 3);

static void put(text *t, const char *fmt, ...)
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

/* Hands the text to the caller, or frees it on failure. */
static rb_status finish(text *t, char **out, const char *what)
{
    if (t->data == NULL && !t->failed)
        put(t, "%s", "");
    if (t->failed) {
        free(t->data);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory writing the %s", what);
    }
    *out = t->data;
    return RB_OK;
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
    eps_value *eps;
    double *values;
    long long *best;   /* per target: the best shown mean of a block */
    size_t *filled;    /* per target: how many eps of a block have runs */
} scratch;

static void scratch_free(scratch *s)
{
    free(s->archs);
    free(s->targets);
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
    s->eps = malloc((n + 1) * sizeof *s->eps);
    s->values = malloc((n + 1) * sizeof *s->values);
    s->best = malloc((n + 1) * sizeof *s->best);
    s->filled = malloc((n + 1) * sizeof *s->filled);
    if (s->archs == NULL || s->targets == NULL || s->eps == NULL || s->values == NULL || s->best == NULL ||
        s->filled == NULL) {
        scratch_free(s);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for a report of %zu rows", n);
    }
    s->n_archs = labels(rows, n, 0, s->archs);
    s->n_targets = labels(rows, n, 1, s->targets);
    return RB_OK;
}


static rb_status check_rows(const rb_grid_result *rows, size_t n)
{
    if (rows == NULL && n > 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "grid report: NULL rows");
    for (size_t i = 0; i < n; i++) {
        const rb_grid_result *r = &rows[i];
        if (memchr(r->arch, '\0', sizeof r->arch) == NULL || memchr(r->target, '\0', sizeof r->target) == NULL ||
            memchr(r->eps_text, '\0', sizeof r->eps_text) == NULL || memchr(r->mode, '\0', sizeof r->mode) == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "grid results row %zu: a label is not NUL-terminated", i + 1);
        if (!isfinite(r->source_eps) || r->source_eps < 0)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "grid results row %zu: source eps %g is not finite and >= 0",
                                i + 1, r->source_eps);
    }
    return RB_OK;
}

/* ------------------------------------------------------------ markdown */

rb_status rb_grid_markdown(const rb_grid_result *rows, size_t n, char **out)
{
    text t = {0};
    scratch sc;
    rb_status s;
    int robust_col = 0, same_n = 1, split_spread = 0;
    size_t common_n = 0;
    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_grid_markdown: NULL argument");
    *out = NULL;
    if ((s = check_rows(rows, n)) != RB_OK)
        return s;
    if (n == 0) {
        put(&t, "_No results yet._\n");
        return finish(&t, out, "results table");
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

    put(&t, "| source model | source acc |%s", robust_col ? " source robust acc |" : "");
    for (size_t g = 0; g < sc.n_targets; g++)
        put(&t, " %s |", sc.targets[g]);
    put(&t, "\n|---|---:|%s", robust_col ? "---:|" : "");
    for (size_t g = 0; g < sc.n_targets; g++)
        put(&t, "---:|");
    put(&t, "\n");

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
                    put(&t, "| %s " MIDDOT " %s " MIDDOT " standard (" EPSILON "=%s) |", arch, MODE_NAMES[m],
                        sc.eps[e].text);
                else
                    put(&t, "| %s " MIDDOT " %s " MIDDOT " robust " EPSILON "=%s |", arch, MODE_NAMES[m],
                        sc.eps[e].text);
                format_stat(cell, sizeof cell, src);
                put(&t, " %s |", cell);
                if (robust_col) {
                    format_stat(cell, sizeof cell, source_stat(rows, n, sc.values, arch, sc.eps[e].value, 1));
                    put(&t, " %s |", cell);
                }
                for (size_t g = 0; g < sc.n_targets; g++) {
                    stat st = target_stat(rows, n, sc.values, arch, MODES[m], sc.eps[e].value, sc.targets[g]);
                    int bold = st.n > 0 && filled[g] >= 2 && shown(st.mean) == best[g];
                    char levels[64];
                    format_stat(cell, sizeof cell, st);
                    format_spread(levels, sizeof levels,
                                  target_spread(rows, n, sc.values, arch, MODES[m], sc.eps[e].value, sc.targets[g]));
                    put(&t, " %s%s%s%s", bold ? "**" : "", cell, bold ? "**" : "", levels);
                    if (!same_n && st.n > 0)
                        put(&t, " (n=%zu)", st.n);
                    put(&t, " |");
                }
                put(&t, "\n");
            }
        }
    }
    put(&t, "\nTarget test accuracy (%%): mean " PLUSMINUS " sample standard deviation over ");
    if (same_n && common_n > 0)
        put(&t, "n = %zu run%s per cell", common_n, common_n == 1 ? "" : "s");
    else
        put(&t, "the n runs shown in each cell");
    put(&t, " (source seeds " TIMES " transfer seeds); bold: the best mean of each architecture and mode "
            "for a target. source acc: the source models' clean test accuracy (%%), over source seeds.");
    if (robust_col)
        put(&t, " source robust acc: their test accuracy under the PGD evaluation attack (%%), over source seeds.");
    if (split_spread)
        put(&t, " In brackets, where a cell has several source models: s, the standard deviation over source seeds "
                "of the source models' mean target accuracy (each over its transfer seeds); t, the pooled standard "
                "deviation over transfer seeds within a source model.");
    put(&t, "\n");
    scratch_free(&sc);
    return finish(&t, out, "results table");
}

/* ------------------------------------------------------------ summary */

static void put_counts(text *t, stat first, stat second)
{
    if (first.n == second.n)
        put(t, "%zu run%s each", first.n, first.n == 1 ? "" : "s");
    else
        put(t, "%zu and %zu runs", first.n, second.n);
}

rb_status rb_grid_summary(const rb_grid_result *rows, size_t n, char **out)
{
    text t = {0};
    scratch sc;
    rb_status s;
    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_grid_summary: NULL argument");
    *out = NULL;
    if ((s = check_rows(rows, n)) != RB_OK)
        return s;
    if (n == 0) {
        put(&t, "No results yet.\n");
        return finish(&t, out, "summary");
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
                char a_text[96], b_text[96];
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
                put(&t, "%s, %s, %s: ", arch, MODE_NAMES[m], sc.targets[g]);
                format_stat(a_text, sizeof a_text, rob);
                format_stat(b_text, sizeof b_text, std);
                if (std.n == 0 && rob.n == 0) {
                    put(&t, "no runs yet\n");
                    continue;
                }
                if (std.n == 0) {
                    put(&t, "no standard (" EPSILON "=0) run to compare with; best robust " EPSILON "=%s: ", rob_text);
                    put(&t, "%s (%zu run%s)\n", a_text, rob.n, rob.n == 1 ? "" : "s");
                    continue;
                }
                if (rob.n == 0) {
                    put(&t, "no robust (" EPSILON ">0) run to compare with; standard: %s (%zu run%s)\n", b_text, std.n,
                        std.n == 1 ? "" : "s");
                    continue;
                }
                delta = rob.mean - std.mean;
                if (delta > 0) {
                    put(&t, "robust " EPSILON "=%s beats standard by +%.1f points (%s vs %s, ", rob_text, delta, a_text,
                        b_text);
                    put_counts(&t, rob, std);
                } else if (delta < 0) {
                    put(&t, "standard beats the best robust (" EPSILON "=%s) by %.1f points (%s vs %s, ", rob_text,
                        -delta, b_text, a_text);
                    put_counts(&t, std, rob);
                } else {
                    put(&t, "robust " EPSILON "=%s ties with standard (%s vs %s, ", rob_text, a_text, b_text);
                    put_counts(&t, rob, std);
                }
                /* Runs of one source model share its training's luck, so
                 * where both sides have several source models the verdict
                 * weighs the spread of their means; otherwise only
                 * transfer seeds vary and the verdict says so. */
                if (rob.n < 2 || std.n < 2)
                    put(&t, ") " EMDASH " single run, no spread\n");
                else if (rob_sp.sources >= 2 && std_sp.sources >= 2)
                    put(&t, ") " EMDASH " %s the spread over source seeds (sd %.1f and %.1f)\n",
                        fabs(delta) > rob_sp.source_sd + std_sp.source_sd ? "larger than" : "within",
                        rob_sp.source_sd, std_sp.source_sd);
                else
                    put(&t, ") " EMDASH " %s the seed spread (one source seed: source training's own spread is not "
                            "measured)\n",
                        fabs(delta) > rob.sd + std.sd ? "larger than" : "within");
            }
        }
    }
    scratch_free(&sc);
    return finish(&t, out, "summary");
}

/* ------------------------------------------------------------ CSV */

/* A label or eps text that can go into an unquoted CSV field. */
static int csv_safe(const char *s)
{
    if (s[0] == '\0')
        return 0;
    for (; *s; s++)
        if (*s == ',' || *s == '"' || *s == '\n' || *s == '\r')
            return 0;
    return 1;
}

/* 10 significant digits; NAN is an empty field. */
static void put_number(text *t, double v)
{
    if (!isnan(v))
        put(t, "%.10g", v);
}

rb_status rb_grid_write_csv(const char *path, const rb_grid_result *rows, size_t n)
{
    text t = {0};
    rb_status s;
    if (path == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_grid_write_csv: NULL path");
    if ((s = check_rows(rows, n)) != RB_OK)
        return s;
    put(&t, "%s\n", CSV_HEADER);
    for (size_t i = 0; i < n; i++) {
        const rb_grid_result *r = &rows[i];
        if (!csv_safe(r->arch) || !csv_safe(r->target) || !csv_safe(r->eps_text)) {
            free(t.data);
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: row %zu: arch '%s', target '%s' and eps '%s' must be non-empty and hold no comma, "
                                "quote or line break",
                                path, i + 1, r->arch, r->target, r->eps_text);
        }
        if (strcmp(r->mode, "fixed") != 0 && strcmp(r->mode, "full") != 0) {
            free(t.data);
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: row %zu: mode '%s' is not fixed or full", path, i + 1,
                                r->mode);
        }
        /* %.17g: source_eps reads back bit for bit, so groups keep together */
        put(&t, "%s,%s,%.17g,%llu,", r->arch, r->eps_text, r->source_eps, (unsigned long long)r->source_seed);
        put_number(&t, r->source_test_acc);
        put(&t, ",");
        put_number(&t, r->source_robust_acc);
        put(&t, ",%s,%s,%llu,", r->target, r->mode, (unsigned long long)r->transfer_seed);
        put_number(&t, r->target_acc);
        put(&t, ",");
        put_number(&t, r->seconds);
        put(&t, "\n");
    }
    if (t.failed) {
        free(t.data);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory writing %s", path);
    }
    s = rb_file_write_atomic(path, t.data, t.len);
    free(t.data);
    return s;
}

/* A number field; empty is NAN when `empty_ok`. */
static int csv_number(const char *field, int empty_ok, double *out)
{
    char *end;
    if (field[0] == '\0') {
        *out = NAN;
        return empty_ok;
    }
    if (isspace((unsigned char)field[0]))
        return 0;
    *out = strtod(field, &end);
    return *end == '\0';
}

static int csv_unsigned(const char *field, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (!isdigit((unsigned char)field[0]))
        return 0;
    errno = 0;
    v = strtoull(field, &end, 10);
    if (*end != '\0' || errno == ERANGE)
        return 0;
    *out = v;
    return 1;
}

static int csv_label(const char *field, char *out, size_t size)
{
    size_t len = strlen(field);
    if (len == 0 || len >= size)
        return 0;
    memcpy(out, field, len + 1);
    return 1;
}

/* One data line (NUL-terminated, modified in place) into *r; on error,
 * the message without the "PATH:LINE: " part goes into `why`. */
static int csv_row(char *line, rb_grid_result *r, char *why, size_t why_size)
{
    static const char *const names[CSV_FIELDS] = {"arch",   "eps",  "source_eps",    "source_seed",
                                                  "source_test_acc", "source_robust_acc", "target", "mode",
                                                  "transfer_seed",   "target_acc",        "seconds"};
    char *f[CSV_FIELDS], *c = line;
    size_t k = 0, bad = CSV_FIELDS;
    for (;;) {
        char *comma = strchr(c, ',');
        if (k < CSV_FIELDS)
            f[k] = c;
        k++;
        if (comma == NULL)
            break;
        *comma = '\0';
        c = comma + 1;
    }
    if (k != CSV_FIELDS) {
        snprintf(why, why_size, "expected %d comma-separated fields, found %zu", CSV_FIELDS, k);
        return 0;
    }
    memset(r, 0, sizeof *r);
    if (!csv_label(f[0], r->arch, sizeof r->arch))
        bad = 0;
    else if (!csv_label(f[1], r->eps_text, sizeof r->eps_text))
        bad = 1;
    else if (!csv_number(f[2], 0, &r->source_eps) || !isfinite(r->source_eps) || r->source_eps < 0)
        bad = 2;
    else if (!csv_unsigned(f[3], &r->source_seed))
        bad = 3;
    else if (!csv_number(f[4], 1, &r->source_test_acc))
        bad = 4;
    else if (!csv_number(f[5], 1, &r->source_robust_acc))
        bad = 5;
    else if (!csv_label(f[6], r->target, sizeof r->target))
        bad = 6;
    else if (strcmp(f[7], "fixed") != 0 && strcmp(f[7], "full") != 0)
        bad = 7;
    else if (!csv_unsigned(f[8], &r->transfer_seed))
        bad = 8;
    else if (!csv_number(f[9], 1, &r->target_acc))
        bad = 9;
    else if (!csv_number(f[10], 1, &r->seconds))
        bad = 10;
    if (bad < CSV_FIELDS) {
        static const char *const expect[CSV_FIELDS] = {
            "a label of 1 to 63 characters", "an eps text of 1 to 31 characters", "a finite number >= 0",
            "an unsigned integer", "a number or nothing", "a number or nothing", "a label of 1 to 63 characters",
            "fixed or full", "an unsigned integer", "a number or nothing", "a number or nothing"};
        snprintf(why, why_size, "field '%s' is '%.64s': expected %s", names[bad], f[bad], expect[bad]);
        return 0;
    }
    snprintf(r->mode, sizeof r->mode, "%s", f[7]);
    return 1;
}

rb_status rb_grid_read_csv(const char *path, rb_grid_result **rows, size_t *n)
{
    unsigned char *raw;
    char *data;
    size_t size, used = 0, cap = 0, pos = 0;
    rb_grid_result *out = NULL;
    rb_status s;
    int lineno = 0;
    if (path == NULL || rows == NULL || n == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_grid_read_csv: NULL argument");
    *rows = NULL;
    *n = 0;
    if ((s = rb_file_read_all(path, (size_t)1 << 28, &raw, &size)) != RB_OK)
        return s;
    /* a copy with room for the NUL that ends a last line without '\n' */
    data = malloc(size + 1);
    if (data != NULL) {
        memcpy(data, raw, size);
        data[size] = '\0';
    }
    free(raw);
    if (data == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory reading %s", path);
    while (pos < size && s == RB_OK) {
        char *nl = memchr(data + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - data) : size, len = end - pos;
        char *line = data + pos;
        char why[256];
        lineno++;
        pos = end + 1;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (memchr(line, '\0', len) != NULL) {
            s = rb_error_set(RB_ERR_CORRUPT, "%s:%d: holds a NUL byte: not a results file", path, lineno);
            break;
        }
        line[len] = '\0'; /* over the '\r', the '\n' or the spare byte */
        if (lineno == 1) {
            if (strcmp(line, CSV_HEADER) != 0)
                s = rb_error_set(RB_ERR_CORRUPT, "%s:1: expected the header '%s'", path, CSV_HEADER);
            continue;
        }
        if (len == 0)
            continue;
        if (used == cap) {
            size_t c = cap ? cap * 2 : 64;
            rb_grid_result *bigger = realloc(out, c * sizeof *out);
            if (bigger == NULL) {
                s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory reading %s", path);
                break;
            }
            out = bigger;
            cap = c;
        }
        if (!csv_row(line, &out[used], why, sizeof why))
            s = rb_error_set(RB_ERR_CORRUPT, "%s:%d: %s", path, lineno, why);
        else
            used++;
    }
    if (s == RB_OK && lineno == 0)
        s = rb_error_set(RB_ERR_CORRUPT, "%s is empty: expected the header '%s'", path, CSV_HEADER);
    free(data);
    if (s != RB_OK) {
        free(out);
        return s;
    }
    *rows = out;
    *n = used;
    return RB_OK;
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

static void put_escaped(text *t, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '&': put(t, "&amp;"); break;
        case '<': put(t, "&lt;"); break;
        case '>': put(t, "&gt;"); break;
        case '"': put(t, "&quot;"); break;
        default: put(t, "%c", *s);
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
static void put_stroke(text *t, size_t i)
{
    put(t, "stroke=\"%s\"%s", COLORS[i % N_COLORS], i >= N_COLORS ? " stroke-dasharray=\"5 3\"" : "");
}

static void svg_panel(text *t, const rb_grid_result *rows, size_t n, scratch *sc, const series *ser, size_t n_ser,
                      size_t ne, double x_max, size_t g)
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
    put(t, "<g>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">",
        x0 + PLOT_LEFT + w / 2, TITLE_H + 18);
    put_escaped(t, target);
    put(t, "</text>\n");
    for (int k = 0; k < n_ticks; k++) {
        double v = y_lo + k * step, y = PY(v);
        put(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", left, y, left + w, y);
        put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", left - 6, y + 4, v);
    }
    put(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n", left, top, w,
        h);
    {
        /* a label too close to the previous one (0 and 8/255) drops a row */
        double last_x = -INFINITY;
        int row = 0;
        for (size_t e = 0; e < ne; e++) {
            double x = PX(sc->eps[e].value);
            row = x - last_x < 30 && row == 0;
            last_x = x;
            put(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", x, top + h, x,
                top + h + 4);
            put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x, top + h + 16 + 11 * row);
            put_escaped(t, sc->eps[e].text);
            put(t, "</text>\n");
        }
    }
    put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">source " EPSILON "</text>\n", left + w / 2,
        top + h + 40);
    put(t, "<text transform=\"rotate(-90 %.1f %.1f)\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">"
           "target accuracy (%%)</text>\n",
        x0 + 16, top + h / 2, x0 + 16, top + h / 2);

    for (size_t s = 0; s < n_ser; s++) {
        int any = 0;
        for (size_t e = 0; e < ne; e++) {
            stat st = target_stat(rows, n, sc->values, ser[s].arch, MODES[ser[s].mode], sc->eps[e].value, target);
            if (st.n == 0)
                continue;
            if (!any)
                put(t, "<polyline fill=\"none\" stroke-width=\"1.5\" ");
            if (!any)
                put_stroke(t, s);
            put(t, "%s%.1f,%.1f", any ? " " : " points=\"", PX(sc->eps[e].value), PY(st.mean));
            any = 1;
        }
        if (any)
            put(t, "\"/>\n");
        for (size_t e = 0; e < ne; e++) {
            stat st = target_stat(rows, n, sc->values, ser[s].arch, MODES[ser[s].mode], sc->eps[e].value, target);
            double x = PX(sc->eps[e].value);
            if (st.n == 0)
                continue;
            if (st.n > 1) {
                put(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" ", x, PY(st.mean - st.sd), x,
                    PY(st.mean + st.sd));
                put_stroke(t, s);
                put(t, "/>\n");
            }
            put(t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", x, PY(st.mean), COLORS[s % N_COLORS]);
        }
    }
#undef PX
#undef PY
    put(t, "</g>\n");
}

rb_status rb_grid_write_svg(const char *path, const char *title, const rb_grid_result *rows, size_t n)
{
    text t = {0};
    scratch sc;
    series *ser = NULL;
    size_t n_ser = 0, ne = 0, panels;
    double x_max = 0, width, height;
    rb_status s;
    if (path == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_grid_write_svg: NULL path");
    if ((s = check_rows(rows, n)) != RB_OK)
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

    put(&t, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    put(&t, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
            "font-family=\"sans-serif\" font-size=\"11\">\n",
        width, height, width, height);
    put(&t, "<rect width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", width, height);
    if (title != NULL) {
        put(&t, "<text x=\"%.1f\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">", width / 2);
        put_escaped(&t, title);
        put(&t, "</text>\n");
    }
    if (n == 0)
        put(&t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no results yet</text>\n", width / 2,
            TITLE_H + PANEL_H / 2);
    for (size_t g = 0; g < sc.n_targets; g++)
        svg_panel(&t, rows, n, &sc, ser, n_ser, ne, x_max, g);
    for (size_t i = 0; i < n_ser; i++) {
        double y = TITLE_H + PANEL_H + 10 + LEGEND_ROW * (double)i + LEGEND_ROW / 2;
        put(&t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke-width=\"2\" ", PLOT_LEFT, y,
            PLOT_LEFT + 24, y);
        put_stroke(&t, i);
        put(&t, "/>\n<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PLOT_LEFT + 12, y,
            COLORS[i % N_COLORS]);
        put(&t, "<text x=\"%.1f\" y=\"%.1f\">", PLOT_LEFT + 32, y + 4);
        put_escaped(&t, ser[i].arch);
        put(&t, " %s</text>\n", MODES[ser[i].mode]);
    }
    put(&t, "</svg>\n");
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
