/* robusta report, writing: the HTML page of the folders report_folder.c
 * read (see robusta/report.h for what it holds). The page is HTML5 that is
 * also well-formed XML (every element closed, only the five XML entities),
 * so strict parsers of either kind read it; every text from a file goes
 * through report_put_escaped. Nothing is fetched: CSS and SVG are inline
 * and there is no script. */
#include "config.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <robusta/registry.h>
#include <robusta/robusta.h>

#include "experiment/report_page.h"
#include "sys/internal.h"

#define EPSILON "\xce\xb5"
#define EMDASH "\xe2\x80\x94"
#define MAX_CLASSES 1000 /* per-class columns shown; more is said */

static const char CSS[] =
    "body{font-family:'DejaVu Sans',sans-serif;margin:24px auto;max-width:1400px;padding:0 16px;color:#222;"
    "font-size:14px}\n"
    "h1{font-size:24px}h2{font-size:20px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:36px}\n"
    "h3{font-size:16px;margin-top:24px}\n"
    "table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;"
    "vertical-align:top}\n"
    "th:first-child,td:first-child{text-align:left}th{background:#f2f2f2}\n"
    "p.note{color:#555;max-width:1100px}ul.skipped li{color:#8a4b00}\n"
    "figure{margin:12px 0;overflow-x:auto}svg{display:block}\n"
    "pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:12px}\n"
    "details summary{cursor:pointer;color:#1f5fa8}td details pre{text-align:left}\n";

static void put_text(report_text *t, const char *tag, const char *text)
{
    report_put(t, "<%s>", tag);
    report_put_escaped(t, text);
    report_put(t, "</%s>\n", tag);
}

/* A fraction as a percentage with one decimal, or an em dash. */
static void put_percent(report_text *t, double v)
{
    if (isfinite(v))
        report_put(t, "%.1f", 100 * v);
    else
        report_put(t, EMDASH);
}

static void put_seconds(report_text *t, double s)
{
    if (!isfinite(s))
        report_put(t, EMDASH);
    else if (s < 120)
        report_put(t, "%.1f s", s);
    else
        report_put(t, "%.1f min", s / 60);
}

/* The last part of a path, for titles. */
static const char *base_name(const char *path, char *buf, size_t size)
{
    size_t n = strlen(path);
    const char *b;
    while (n > 1 && path[n - 1] == '/')
        n--;
    snprintf(buf, size, "%.*s", (int)n, path);
    b = strrchr(buf, '/');
    return b != NULL && b[1] != '\0' ? b + 1 : buf;
}

/* ------------------------------------------------------------ curves */

/* A curve owns its arrays here (report_curve points at them). */
typedef struct owned_curve {
    report_curve c;
    double *x, *y;
    char label[160];
} owned_curve;

static void free_curves(owned_curve *cs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(cs[i].x);
        free(cs[i].y);
    }
}

/* The mean over `runs` of one log column per epoch (x: the epochs of the
 * run with most rows), scaled; false when nothing is finite. */
static bool mean_curve(const report_run *const *runs, size_t n, int column, double scale, owned_curve *out)
{
    const report_log *longest = NULL;
    bool any = false;
    for (size_t r = 0; r < n; r++)
        if (longest == NULL || runs[r]->log.n > longest->n)
            longest = &runs[r]->log;
    memset(out, 0, sizeof *out);
    if (longest == NULL || longest->n == 0)
        return false;
    out->x = malloc(longest->n * sizeof *out->x);
    out->y = malloc(longest->n * sizeof *out->y);
    if (out->x == NULL || out->y == NULL) {
        free_curves(out, 1);
        memset(out, 0, sizeof *out);
        return false;
    }
    for (size_t i = 0; i < longest->n; i++) {
        double sum = 0;
        size_t k = 0;
        for (size_t r = 0; r < n; r++) {
            const report_log *l = &runs[r]->log;
            for (size_t j = 0; j < l->n; j++)
                if (l->epoch[j] == longest->epoch[i] && isfinite(l->v[column][j])) {
                    sum += l->v[column][j];
                    k++;
                }
        }
        out->x[i] = longest->epoch[i];
        out->y[i] = k > 0 ? scale * sum / (double)k : NAN;
        any |= k > 0;
    }
    out->c.x = out->x;
    out->c.y = out->y;
    out->c.n = longest->n;
    if (!any) {
        free_curves(out, 1);
        memset(out, 0, sizeof *out);
    }
    return any;
}

/* One run's figure: its losses, and its accuracies in percent. */
static void run_curves(report_text *t, const report_run *r, const char *title)
{
    static const struct {
        int column, panel;
        const char *label;
    } lines[] = {
        {REPORT_LOG_TRAIN_LOSS, 0, "train loss"},          {REPORT_LOG_TEST_LOSS, 0, "test loss"},
        {REPORT_LOG_TRAIN_ACC, 1, "train accuracy"},       {REPORT_LOG_TEST_ACC, 1, "test accuracy"},
        {REPORT_LOG_ADV_TRAIN_ACC, 1, "adversarial train accuracy"},
        {REPORT_LOG_ROBUST_TEST_ACC, 1, "robust test accuracy"},
    };
    owned_curve cs[sizeof lines / sizeof lines[0]];
    report_curve curves[2][sizeof lines / sizeof lines[0]];
    report_panel panels[2] = {{"loss", "loss", curves[0], 0}, {"accuracy", "accuracy (%)", curves[1], 0}};
    size_t n = 0;
    if (r->log.n == 0)
        return;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        const report_run *one[1] = {r};
        if (!mean_curve(one, 1, lines[i].column, lines[i].panel == 1 ? 100 : 1, &cs[n]))
            continue;
        snprintf(cs[n].label, sizeof cs[n].label, "%s", lines[i].label);
        cs[n].c.label = cs[n].label;
        cs[n].c.color = panels[lines[i].panel].n;
        cs[n].c.dashed = lines[i].column == REPORT_LOG_ADV_TRAIN_ACC || lines[i].column == REPORT_LOG_ROBUST_TEST_ACC;
        curves[lines[i].panel][panels[lines[i].panel].n++] = cs[n].c;
        n++;
    }
    report_put(t, "<figure>\n");
    report_curves_svg(t, title, panels, 2);
    report_put(t, "</figure>\n");
    free_curves(cs, n);
}

/* A transfer's place in the grid, from its result.json. */
typedef struct transfer_key {
    const char *arch, *eps, *target, *mode;
} transfer_key;

static bool transfer_key_of(const report_run *r, transfer_key *k)
{
    if (strncmp(r->rel, "transfers/", 10) != 0 || r->result == NULL)
        return false;
    k->arch = report_json_string(r->result, "arch");
    k->eps = report_json_string(r->result, "eps");
    k->target = report_json_string(r->result, "target");
    k->mode = report_json_string(r->result, "mode");
    return k->arch && k->eps && k->target && k->mode;
}

static double eps_of(const char *text)
{
    double v;
    return rb_grid_parse_eps(text, &v) == RB_OK ? v : INFINITY;
}

/* Distinct (arch, eps) of some transfers, ordered by arch's first
 * appearance, then eps. */
static size_t series_keys(const report_run *const *runs, size_t n, transfer_key *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        transfer_key key;
        size_t j = 0;
        transfer_key_of(runs[i], &key);
        while (j < k && !(strcmp(out[j].arch, key.arch) == 0 && strcmp(out[j].eps, key.eps) == 0))
            j++;
        if (j == k)
            out[k++] = key;
    }
    /* eps ascending within each arch; runs sorted by path already keep an arch's together */
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0; j--) {
            transfer_key tmp = out[j];
            if (strcmp(out[j - 1].arch, out[j].arch) != 0 || eps_of(out[j - 1].eps) <= eps_of(out[j].eps))
                break;
            out[j] = out[j - 1];
            out[j - 1] = tmp;
        }
    return k;
}

/* Per target and mode: the transfers' train loss and test accuracy (and
 * robust test accuracy where logged), the mean over seeds, a line per arch
 * and source eps. */
static rb_status transfer_curves(report_text *t, const report_folder *f)
{
    const report_run **group = malloc((f->n_runs + 1) * sizeof *group), **series_runs;
    transfer_key *keys = malloc((f->n_runs + 1) * sizeof *keys), *done = malloc((f->n_runs + 1) * sizeof *done);
    owned_curve *cs = malloc(3 * (f->n_runs + 1) * sizeof *cs);
    report_curve *curves = malloc(3 * (f->n_runs + 1) * sizeof *curves);
    size_t n_done = 0;
    series_runs = malloc((f->n_runs + 1) * sizeof *series_runs);
    if (group == NULL || keys == NULL || done == NULL || cs == NULL || curves == NULL || series_runs == NULL) {
        free(group), free(keys), free(done), free(cs), free(curves), free(series_runs);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory drawing %s's curves", f->dir);
    }
    for (size_t i = 0; i < f->n_runs; i++) {
        transfer_key k;
        size_t n = 0, n_keys, n_cs = 0, counts[3] = {0, 0, 0};
        bool seen = false;
        char title[400];
        struct {
            int column;
            const char *title, *y;
        } panels_of[3] = {{REPORT_LOG_TRAIN_LOSS, "train loss", "train loss"},
                          {REPORT_LOG_TEST_ACC, "test accuracy", "test accuracy (%)"},
                          {REPORT_LOG_ROBUST_TEST_ACC, "robust test accuracy", "robust test accuracy (%)"}};
        report_panel panels[3];
        size_t n_panels = 0;
        if (!transfer_key_of(&f->runs[i], &k) || f->runs[i].log.n == 0)
            continue;
        for (size_t d = 0; d < n_done; d++)
            seen |= strcmp(done[d].target, k.target) == 0 && strcmp(done[d].mode, k.mode) == 0;
        if (seen)
            continue;
        done[n_done++] = k;
        for (size_t j = i; j < f->n_runs; j++) {
            transfer_key kj;
            if (transfer_key_of(&f->runs[j], &kj) && f->runs[j].log.n > 0 && strcmp(kj.target, k.target) == 0 &&
                strcmp(kj.mode, k.mode) == 0)
                group[n++] = &f->runs[j];
        }
        n_keys = series_keys(group, n, keys);
        {
            /* test accuracy evaluated at the last epoch only is a point per line: train accuracy instead */
            size_t tested = 0;
            for (size_t r = 0; r < n; r++) {
                size_t m = 0;
                for (size_t j = 0; j < group[r]->log.n; j++)
                    m += isfinite(group[r]->log.v[REPORT_LOG_TEST_ACC][j]);
                tested = m > tested ? m : tested;
            }
            if (tested < 2) {
                panels_of[1].column = REPORT_LOG_TRAIN_ACC;
                panels_of[1].title = "train accuracy";
                panels_of[1].y = "train accuracy (%)";
            }
        }
        for (int p = 0; p < 3; p++) {
            for (size_t s = 0; s < n_keys; s++) {
                size_t m = 0;
                for (size_t r = 0; r < n; r++) {
                    transfer_key kr;
                    transfer_key_of(group[r], &kr);
                    if (strcmp(kr.arch, keys[s].arch) == 0 && strcmp(kr.eps, keys[s].eps) == 0)
                        series_runs[m++] = group[r];
                }
                if (!mean_curve(series_runs, m, panels_of[p].column, p == 0 ? 1 : 100, &cs[n_cs]))
                    continue;
                if (eps_of(keys[s].eps) == 0)
                    snprintf(cs[n_cs].label, sizeof cs[n_cs].label, "%s standard (" EPSILON "=%s)", keys[s].arch,
                             keys[s].eps);
                else
                    snprintf(cs[n_cs].label, sizeof cs[n_cs].label, "%s robust " EPSILON "=%s", keys[s].arch,
                             keys[s].eps);
                cs[n_cs].c.label = cs[n_cs].label;
                cs[n_cs].c.color = s;
                curves[n_cs] = cs[n_cs].c;
                n_cs++;
                counts[p]++;
            }
        }
        for (int p = 0, at = 0; p < 3; at += (int)counts[p], p++)
            if (counts[p] > 0)
                panels[n_panels++] = (report_panel){panels_of[p].title, panels_of[p].y, curves + at, counts[p]};
        snprintf(title, sizeof title, "%s, %s transfers (mean over seeds)", k.target,
                 MODE_NAMES[strcmp(k.mode, MODES[0]) == 0 ? 0 : 1]);
        if (n_panels > 0) {
            report_put(t, "<figure>\n");
            report_curves_svg(t, title, panels, n_panels);
            report_put(t, "</figure>\n");
        }
        free_curves(cs, n_cs);
    }
    free(group), free(keys), free(done), free(cs), free(curves), free(series_runs);
    return RB_OK;
}

/* ------------------------------------------------------------ per class */

/* "class_accuracy.3" -> prefix "class_accuracy", class 3; false for a
 * metric that is not per class. */
static bool per_class_key(const char *key, char *prefix, size_t size, long *k)
{
    const char *dot = strrchr(key, '.');
    char *end;
    if (dot == NULL || dot == key || dot[1] < '0' || dot[1] > '9' || (size_t)(dot - key) >= size)
        return false;
    *k = strtol(dot + 1, &end, 10);
    if (*end != '\0' || *k < 0)
        return false;
    snprintf(prefix, size, "%.*s", (int)(dot - key), key);
    return true;
}

static const char *class_label(const char *prefix)
{
    return strcmp(prefix, "class_accuracy") == 0 ? "accuracy" : strcmp(prefix, "iou") == 0 ? "IoU" : prefix;
}

/* One table: a row per label, a column per class present; cells are the
 * mean over `rows[r]`'s runs in percent. */
typedef struct class_row {
    char label[200];
    const report_run **runs;
    size_t n;
} class_row;

static void put_class_table(report_ctx *c, report_text *t, const char *where, const char *prefix,
                            const class_row *rows, size_t n_rows)
{
    long max = -1, beyond = -1;
    bool *present = calloc(MAX_CLASSES, sizeof *present);
    if (present == NULL)
        return;
    for (size_t r = 0; r < n_rows; r++)
        for (size_t i = 0; i < rows[r].n; i++) {
            json_object_object_foreach(rows[r].runs[i]->metrics, key, v) {
                char p[64];
                long k;
                (void)v;
                if (!per_class_key(key, p, sizeof p, &k) || strcmp(p, prefix) != 0)
                    continue;
                if (k >= MAX_CLASSES) {
                    beyond = k > beyond ? k : beyond;
                    continue;
                }
                present[k] = true;
                max = k > max ? k : max;
            }
        }
    if (beyond >= 0)
        report_skip(c, "%s: %s.K up to class %ld; the first %d classes shown", where, prefix, beyond, MAX_CLASSES);
    if (max < 0) {
        free(present);
        return;
    }
    report_put(t, "<table class=\"classes\">\n<thead><tr><th>%s</th>", n_rows > 1 ? "source model" : "run");
    for (long k = 0; k <= max; k++)
        if (present[k])
            report_put(t, "<th>%ld</th>", k);
    report_put(t, "</tr></thead>\n<tbody>\n");
    for (size_t r = 0; r < n_rows; r++) {
        report_put(t, "<tr><td>");
        report_put_escaped(t, rows[r].label);
        report_put(t, "</td>");
        for (long k = 0; k <= max; k++) {
            char key[96];
            double sum = 0;
            size_t m = 0;
            if (!present[k])
                continue;
            snprintf(key, sizeof key, "%s.%ld", prefix, k);
            for (size_t i = 0; i < rows[r].n; i++) {
                double v = report_json_number(rows[r].runs[i]->metrics, key);
                if (isfinite(v)) {
                    sum += v;
                    m++;
                }
            }
            report_put(t, "<td>");
            put_percent(t, m > 0 ? sum / (double)m : NAN);
            report_put(t, "</td>");
        }
        report_put(t, "</tr>\n");
    }
    report_put(t, "</tbody>\n</table>\n");
    free(present);
}

/* Per target and per-class metric: a row per (arch, mode, eps), the mean
 * over its finished transfers' metrics.json. */
static rb_status grid_per_class(report_ctx *c, report_text *t, const report_folder *f)
{
    typedef struct {
        const char *target;
        char prefix[64];
    } table_key;
    table_key *tables = malloc((f->n_runs * 4 + 1) * sizeof *tables);
    class_row *rows = malloc((f->n_runs + 1) * sizeof *rows);
    const report_run **pool = malloc((f->n_runs + 1) * sizeof *pool);
    size_t n_tables = 0, used = 0;
    bool heading = false;
    if (tables == NULL || rows == NULL || pool == NULL) {
        free(tables), free(rows), free(pool);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for %s's per-class tables", f->dir);
    }
    for (size_t i = 0; i < f->n_runs; i++) {
        transfer_key k;
        if (!transfer_key_of(&f->runs[i], &k) || f->runs[i].metrics == NULL)
            continue;
        json_object_object_foreach(f->runs[i].metrics, key, v) {
            char p[64];
            long cls;
            size_t j = 0;
            (void)v;
            if (!per_class_key(key, p, sizeof p, &cls))
                continue;
            while (j < n_tables && !(strcmp(tables[j].target, k.target) == 0 && strcmp(tables[j].prefix, p) == 0))
                j++;
            if (j == n_tables && n_tables < f->n_runs * 4 + 1) {
                tables[n_tables].target = k.target;
                snprintf(tables[n_tables].prefix, sizeof tables[n_tables].prefix, "%s", p);
                n_tables++;
            }
        }
    }
    for (size_t g = 0; g < n_tables; g++) {
        size_t n_rows = 0;
        char where[600];
        used = 0;
        for (int m = 0; m < 2; m++) {
            for (size_t i = 0; i < f->n_runs; i++) {
                transfer_key k;
                size_t r;
                if (!transfer_key_of(&f->runs[i], &k) || f->runs[i].metrics == NULL ||
                    strcmp(k.target, tables[g].target) != 0 || strcmp(k.mode, MODES[m]) != 0)
                    continue;
                /* the row of (arch, eps): runs sorted by path keep a source's seeds together, not an eps's */
                for (r = 0; r < n_rows; r++) {
                    transfer_key kr;
                    transfer_key_of(rows[r].runs[0], &kr);
                    if (strcmp(kr.arch, k.arch) == 0 && strcmp(kr.eps, k.eps) == 0 && strcmp(kr.mode, k.mode) == 0)
                        break;
                }
                if (r == n_rows) {
                    rows[n_rows].runs = pool + used;
                    rows[n_rows].n = 0;
                    snprintf(rows[n_rows].label, sizeof rows[n_rows].label, "%s \xc2\xb7 %s \xc2\xb7 %s%s%s",
                             k.arch, MODE_NAMES[m],
                             eps_of(k.eps) == 0 ? "standard (" EPSILON "=" : "robust " EPSILON "=", k.eps,
                             eps_of(k.eps) == 0 ? ")" : "");
                    n_rows++;
                }
                /* rows fill the pool in turn: append by moving later rows' runs up one */
                {
                    const report_run **end = rows[r].runs + rows[r].n;
                    memmove(end + 1, end, (size_t)((pool + used) - end) * sizeof *pool);
                    *end = &f->runs[i];
                    rows[r].n++;
                    used++;
                    for (size_t q = r + 1; q < n_rows; q++)
                        rows[q].runs++;
                }
            }
        }
        /* arch by first appearance, mode, then eps */
        for (size_t i = 1; i < n_rows; i++)
            for (size_t j = i; j > 0; j--) {
                transfer_key a, b;
                class_row tmp;
                transfer_key_of(rows[j - 1].runs[0], &a);
                transfer_key_of(rows[j].runs[0], &b);
                if (strcmp(a.arch, b.arch) != 0 || strcmp(a.mode, b.mode) != 0 || eps_of(a.eps) <= eps_of(b.eps))
                    break;
                tmp = rows[j];
                rows[j] = rows[j - 1];
                rows[j - 1] = tmp;
            }
        if (!heading) {
            report_put(t, "<h3>Per-class scores</h3>\n<p class=\"note\">The mean over each row's transfers (source "
                          "seeds " "\xc3\x97" " transfer seeds) of the per-class metrics in their metrics.json, in "
                          "percent; the column is the class index.</p>\n");
            heading = true;
        }
        report_put(t, "<h4>");
        report_put_escaped(t, tables[g].target);
        report_put(t, ": per-class ");
        report_put_escaped(t, class_label(tables[g].prefix));
        report_put(t, "</h4>\n");
        snprintf(where, sizeof where, "%s, target %s", f->dir, tables[g].target);
        put_class_table(c, t, where, tables[g].prefix, rows, n_rows);
    }
    free(tables), free(rows), free(pool);
    return RB_OK;
}

/* ------------------------------------------------------------ runs */

static void put_config(report_text *t, json_object *config)
{
    if (config == NULL) {
        report_put(t, EMDASH);
        return;
    }
    report_put(t, "<details><summary>config.json</summary><pre>");
    report_put_escaped(t, json_object_to_json_string_ext(config, JSON_C_TO_STRING_PRETTY |
                                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
    report_put(t, "</pre></details>");
}

/* What a run scored: a transfer's target metric (and robust accuracy), a
 * source model's test (and robust) accuracy, a single run's last logged
 * test accuracy. */
static void put_score(report_text *t, const report_run *r)
{
    const char *metric = report_json_string(r->result, "metric");
    double v = report_json_number(r->result, "target_acc"), robust = report_json_number(r->result, "robust_acc");
    if (isfinite(v)) {
        report_put_escaped(t, rb_grid_metric_label(metric != NULL ? metric : ""));
        report_put(t, " ");
        put_percent(t, v);
    } else if (isfinite(v = report_json_number(r->result, "test_acc"))) {
        report_put(t, "test accuracy ");
        put_percent(t, v);
    } else {
        for (size_t i = r->log.n; i-- > 0;)
            if (isfinite(r->log.v[REPORT_LOG_TEST_ACC][i])) {
                report_put(t, "test accuracy ");
                put_percent(t, r->log.v[REPORT_LOG_TEST_ACC][i]);
                report_put(t, " (epoch %.0f)", r->log.epoch[i]);
                break;
            }
    }
    if (isfinite(robust)) {
        report_put(t, ", robust ");
        put_percent(t, robust);
    }
}

static void runs_table(report_text *t, const report_folder *f)
{
    double total = 0;
    size_t finished = 0;
    for (size_t i = 0; i < f->n_runs; i++) {
        finished += f->runs[i].finished;
        if (isfinite(f->runs[i].seconds))
            total += f->runs[i].seconds;
    }
    report_put(t, "<h3>Runs</h3>\n<p>%zu run%s, %zu finished; ", f->n_runs, f->n_runs == 1 ? "" : "s", finished);
    put_seconds(t, total);
    report_put(t, " in all (each run's result.json, else the sum of its logged epochs).</p>\n");
    report_put(t, "<table class=\"runs\">\n<thead><tr><th>run</th><th>state</th><th>epochs</th><th>time</th>"
                  "<th>score (%%)</th><th>configuration</th></tr></thead>\n<tbody>\n");
    for (size_t i = 0; i < f->n_runs; i++) {
        const report_run *r = &f->runs[i];
        char buf[256];
        report_put(t, "<tr><td>");
        report_put_escaped(t, strcmp(r->rel, ".") == 0 ? base_name(f->dir, buf, sizeof buf) : r->rel);
        report_put(t, "</td><td>%s</td><td>", r->finished ? "finished" : "unfinished");
        if (r->log.n > 0)
            report_put(t, "%.0f", r->log.epoch[r->log.n - 1]);
        else
            report_put(t, EMDASH);
        report_put(t, "</td><td>");
        put_seconds(t, r->seconds);
        report_put(t, "</td><td>");
        put_score(t, r);
        report_put(t, "</td><td>");
        put_config(t, r->config);
        report_put(t, "</td></tr>\n");
    }
    report_put(t, "</tbody>\n</table>\n");
}

/* ------------------------------------------------------------ sections */

static rb_status grid_section(report_ctx *c, report_text *t, const report_folder *f)
{
    char buf[256], title[512];
    const char *name = base_name(f->dir, buf, sizeof buf);
    size_t sources = 0;
    rb_status s;
    for (size_t i = 0; i < f->n_runs; i++)
        sources += strncmp(f->runs[i].rel, "sources/", 8) == 0;
    report_put(t, "<p>A grid: %zu source model%s, %zu transfer%s", sources, sources == 1 ? "" : "s",
               f->n_runs - sources, f->n_runs - sources == 1 ? "" : "s");
    if (f->have_rows)
        report_put(t, "; results.csv holds %zu result%s", f->n_rows, f->n_rows == 1 ? "" : "s");
    report_put(t, ".</p>\n");
    if (f->have_rows && f->n_rows > 0) {
        report_text piece = {0};
        char *summary = NULL;
        report_put(t, "<h3>Results</h3>\n");
        /* each piece is made whole before it joins the page: a refused one leaves nothing behind */
        if ((s = report_grid_table(&piece, f->rows, f->n_rows, REPORT_HTML)) == RB_OK &&
            (s = rb_grid_summary(f->rows, f->n_rows, &summary)) == RB_OK) {
            report_put(t, "%s", piece.data ? piece.data : "");
            report_put(t, "<h3>Verdicts</h3>\n<ul class=\"verdicts\">\n");
            for (char *line = summary; *line != '\0';) { /* a verdict per line */
                char *nl = line + strcspn(line, "\n");
                bool more = *nl == '\n';
                *nl = '\0';
                if (nl > line) {
                    report_put(t, "<li>");
                    report_put_escaped(t, line);
                    report_put(t, "</li>\n");
                }
                line = more ? nl + 1 : nl;
            }
            report_put(t, "</ul>\n");
            free(piece.data);
            piece = (report_text){0};
            report_plot_title(name, f->rows, f->n_rows, title, sizeof title);
            if ((s = report_grid_svg(&piece, title, f->rows, f->n_rows)) == RB_OK)
                report_put(t, "<h3>Plot</h3>\n<figure>\n%s</figure>\n", piece.data ? piece.data : "");
        }
        free(piece.data);
        free(summary);
        if (s == RB_ERR_OUT_OF_MEMORY)
            return s;
        if (s != RB_OK)
            report_skip(c, "%s/results.csv: %s (what it refused is left out)", f->dir, rb_last_error());
    }
    if ((s = grid_per_class(c, t, f)) != RB_OK)
        return s;
    if (f->n_runs > 0) {
        report_put(t, "<h3>Training curves</h3>\n");
        for (size_t i = 0; i < f->n_runs; i++)
            if (strncmp(f->runs[i].rel, "sources/", 8) == 0) {
                snprintf(title, sizeof title, "source model %s", f->runs[i].rel + 8);
                run_curves(t, &f->runs[i], title);
            }
        if ((s = transfer_curves(t, f)) != RB_OK)
            return s;
    }
    if (f->ini_text != NULL) {
        report_put(t, "<h3>Grid file</h3>\n<details open=\"open\"><summary>");
        report_put_escaped(t, f->ini_name);
        report_put(t, "</summary><pre>");
        report_put_escaped(t, f->ini_text);
        report_put(t, "</pre></details>\n");
    }
    runs_table(t, f);
    return RB_OK;
}

static void run_section(report_ctx *c, report_text *t, const report_folder *f)
{
    const report_run *r = &f->runs[0];
    char buf[256];
    const char *name = base_name(f->dir, buf, sizeof buf);
    const char *command = report_json_string(r->config, "command");
    report_put(t, "<p>A %s run%s.</p>\n", command != NULL && strcmp(command, "transfer") == 0 ? "transfer"
                                           : command != NULL && strcmp(command, "train") == 0  ? "training"
                                                                                                : "",
               r->finished ? "" : ", unfinished");
    if (r->metrics != NULL) {
        class_row one = {"", &r, 1};
        bool any_class = false;
        report_put(t, "<h3>Metrics</h3>\n<table class=\"metrics\">\n<thead><tr><th>metric</th><th>value</th></tr>"
                      "</thead>\n<tbody>\n");
        json_object_object_foreach(r->metrics, key, v) {
            char p[64];
            long k;
            if (per_class_key(key, p, sizeof p, &k)) {
                any_class = true;
                continue;
            }
            report_put(t, "<tr><td>");
            report_put_escaped(t, key);
            report_put(t, "</td><td>");
            if (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int))
                report_put(t, "%.6g", json_object_get_double(v));
            else
                report_put_escaped(t, v != NULL ? json_object_get_string(v) : "null");
            report_put(t, "</td></tr>\n");
        }
        report_put(t, "</tbody>\n</table>\n");
        if (any_class) {
            char done[16][64];
            size_t n_done = 0;
            snprintf(one.label, sizeof one.label, "%.190s", name);
            json_object_object_foreach(r->metrics, key2, v2) {
                char p[64];
                long k;
                bool seen = false;
                (void)v2;
                if (!per_class_key(key2, p, sizeof p, &k))
                    continue;
                for (size_t i = 0; i < n_done; i++)
                    seen |= strcmp(done[i], p) == 0;
                if (seen || n_done == 16)
                    continue;
                snprintf(done[n_done++], sizeof done[0], "%s", p);
                report_put(t, "<h4>per-class ");
                report_put_escaped(t, class_label(p));
                report_put(t, " (%%)</h4>\n");
                put_class_table(c, t, f->dir, p, &one, 1);
            }
        }
    }
    if (r->log.n > 0) {
        report_put(t, "<h3>Training curves</h3>\n");
        run_curves(t, r, name);
    }
    runs_table(t, f);
}

/* Where the runs were made: each distinct robusta version, machine and
 * plugin set that config.json records, with how many runs. */
static rb_status provenance(report_text *t, const report_folder *fs, size_t n_fs)
{
    size_t cap = 0, n = 0;
    struct entry {
        char text[900];
        size_t runs;
    } *list = NULL;
    for (size_t d = 0; d < n_fs; d++)
        cap += fs[d].n_runs;
    if (cap == 0)
        return RB_OK;
    if ((list = calloc(cap, sizeof *list)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the report's provenance");
    for (size_t d = 0; d < n_fs; d++)
        for (size_t i = 0; i < fs[d].n_runs; i++) {
            json_object *cfg = fs[d].runs[i].config, *plugins;
            const char *version = report_json_string(cfg, "robusta"), *machine = report_json_string(cfg, "machine");
            char text[900];
            size_t used, j = 0;
            if (cfg == NULL)
                continue;
            used = (size_t)snprintf(text, sizeof text, "robusta %s; %s", version ? version : "(version not recorded)",
                                    machine ? machine : "machine not recorded (runs before robusta recorded it)");
            if (json_object_object_get_ex(cfg, "plugins", &plugins) && json_object_is_type(plugins, json_type_object)) {
                int first = 1;
                json_object_object_foreach(plugins, name, v) {
                    if (used < sizeof text)
                        used += (size_t)snprintf(text + used, sizeof text - used, "%s%s %s",
                                                 first ? "; plugins " : ", ", name,
                                                 json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                                                          : "?");
                    first = 0;
                }
            }
            while (j < n && strcmp(list[j].text, text) != 0)
                j++;
            if (j == n)
                snprintf(list[n++].text, sizeof list[0].text, "%s", text);
            list[j].runs++;
        }
    report_put(t, "<h2 id=\"provenance\">Where the runs were made</h2>\n<ul class=\"provenance\">\n");
    for (size_t j = 0; j < n; j++) {
        report_put(t, "<li>");
        report_put_escaped(t, list[j].text);
        report_put(t, " (%zu run%s)</li>\n", list[j].runs, list[j].runs == 1 ? "" : "s");
    }
    if (n == 0)
        report_put(t, "<li>no run recorded a configuration</li>\n");
    report_put(t, "</ul>\n");
    free(list);
    return RB_OK;
}

/* What wrote the page. */
static void this_report(report_text *t)
{
    char info[1024];
    time_t now = time(NULL);
    struct tm tm;
    rb_registry *reg = rb_registry_shared();
    report_put(t, "<h2 id=\"about\">This report</h2>\n<p>Written by robusta %s", rb_version_string());
    if (gmtime_r(&now, &tm) != NULL && strftime(info, sizeof info, "%Y-%m-%d %H:%M UTC", &tm) > 0)
        report_put(t, " on %s", info);
    report_put(t, ".</p>\n");
    if (rb_machine_info(info, sizeof info) == RB_OK) {
        report_put(t, "<p>CPU and kernels: ");
        report_put_escaped(t, info);
        report_put(t, "</p>\n");
    }
    if (rb_build_info(info, sizeof info) == RB_OK)
        put_text(t, "pre", info);
    if (reg != NULL && rb_registry_count(reg) > 0) {
        report_put(t, "<p>Plugins found: ");
        for (size_t i = 0; i < rb_registry_count(reg); i++) {
            const rb_plugin *p = rb_registry_get(reg, i);
            report_put(t, "%s", i ? ", " : "");
            report_put_escaped(t, rb_registry_name(reg, i));
            if (p != NULL) {
                report_put(t, " ");
                report_put_escaped(t, p->version);
            }
        }
        report_put(t, ".</p>\n");
    }
}

rb_status rb_report_write_html(const char *const *dirs, size_t n_dirs, const char *out_path,
                               const rb_report_options *opt, rb_report_outcome *outcome)
{
    report_ctx c = {opt, {0}, 0};
    report_text t = {0};
    report_folder *fs;
    size_t shown = 0;
    rb_status s = RB_OK;
    char title[1024];
    if (outcome != NULL)
        memset(outcome, 0, sizeof *outcome);
    if (dirs == NULL || n_dirs == 0 || out_path == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_report_write_html: %s",
                            out_path == NULL ? "NULL output path" : "no folders to report");
    for (size_t d = 0; d < n_dirs; d++)
        if (dirs[d] == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_report_write_html: folder %zu is NULL", d);
    if ((fs = calloc(n_dirs, sizeof *fs)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for a report of %zu folders", n_dirs);
    for (size_t d = 0; d < n_dirs && s != RB_ERR_OUT_OF_MEMORY; d++) {
        s = report_folder_read(&c, dirs[d], &fs[d]);
        shown += s == RB_OK;
    }
    if (opt != NULL && opt->title != NULL) {
        snprintf(title, sizeof title, "%s", opt->title);
    } else { /* the folders shown, by their last names */
        size_t used = (size_t)snprintf(title, sizeof title, "robusta report:");
        for (size_t d = 0, k = 0; d < n_dirs && used < sizeof title; d++) {
            char name[256];
            if (fs[d].shown)
                used += (size_t)snprintf(title + used, sizeof title - used, "%s %s", k++ ? "," : "",
                                         base_name(dirs[d], name, sizeof name));
        }
    }
    if (s == RB_ERR_OUT_OF_MEMORY)
        goto done;
    if (shown == 0) {
        s = rb_error_set(RB_ERR_NOT_FOUND, "nothing to report: %s %s", n_dirs == 1 ? dirs[0] : "the folders",
                         n_dirs == 1 ? "holds no results" : "hold no results");
        goto done;
    }
    s = RB_OK;
    report_put(&t, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
                   "<meta name=\"generator\" content=\"robusta %s\"/>\n<title>", rb_version_string());
    report_put_escaped(&t, title);
    report_put(&t, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>", CSS);
    report_put_escaped(&t, title);
    report_put(&t, "</h1>\n<ul class=\"contents\">\n");
    for (size_t d = 0; d < n_dirs; d++)
        if (fs[d].shown) {
            report_put(&t, "<li><a href=\"#folder-%zu\">", d + 1);
            report_put_escaped(&t, dirs[d]);
            report_put(&t, "</a> (%s)</li>\n", fs[d].grid ? "grid" : "run");
        }
    report_put(&t, "<li><a href=\"#provenance\">where the runs were made</a></li>\n"
                   "<li><a href=\"#about\">this report</a></li>\n");
    if (c.n_skipped > 0)
        report_put(&t, "<li><a href=\"#skipped\">left out</a></li>\n");
    report_put(&t, "</ul>\n");
    for (size_t d = 0; d < n_dirs && s == RB_OK; d++) {
        if (!fs[d].shown)
            continue;
        report_put(&t, "<section id=\"folder-%zu\">\n<h2>", d + 1);
        report_put_escaped(&t, dirs[d]);
        report_put(&t, "</h2>\n");
        if (fs[d].grid)
            s = grid_section(&c, &t, &fs[d]);
        else
            run_section(&c, &t, &fs[d]);
        report_put(&t, "</section>\n");
        if (outcome != NULL) {
            outcome->folders++;
            outcome->grids += fs[d].grid;
            outcome->runs += fs[d].n_runs;
            for (size_t i = 0; i < fs[d].n_runs; i++)
                outcome->finished += fs[d].runs[i].finished;
        }
    }
    if (s == RB_OK)
        s = provenance(&t, fs, n_dirs);
    if (s != RB_OK)
        goto done;
    this_report(&t);
    if (c.n_skipped > 0) {
        report_put(&t, "<h2 id=\"skipped\">Left out</h2>\n<ul class=\"skipped\">\n%s</ul>\n",
                   c.skipped.data ? c.skipped.data : "");
    }
    report_put(&t, "</body>\n</html>\n");
    if (outcome != NULL) {
        outcome->skipped = c.n_skipped;
        outcome->bytes = t.len;
    }
    s = report_write_file(&t, out_path, out_path);
    t.data = NULL;
done:
    free(t.data);
    free(c.skipped.data);
    for (size_t d = 0; d < n_dirs; d++)
        report_folder_free(&fs[d]);
    free(fs);
    if (s != RB_OK && outcome != NULL)
        outcome->skipped = c.n_skipped;
    return s;
}
