/* Grid results as CSV: results.csv (see robusta/grid.h), written and read
 * back exactly, including the files of earlier versions that had no metric
 * column, or no robust target accuracy. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/grid.h>

#include "experiment/report_internal.h"

/* The header, and those of earlier versions: before rows named their
 * metric (every row then holds an accuracy), and before robust target
 * accuracy (none measured). */
#define CSV_HEADER_NO_METRIC                                                                                           \
    "arch,eps,source_eps,source_seed,source_test_acc,source_robust_acc,target,mode,transfer_seed,target_acc,seconds"
#define CSV_HEADER_NO_ROBUST CSV_HEADER_NO_METRIC ",metric"
static const char CSV_HEADER[] = CSV_HEADER_NO_ROBUST ",target_robust_acc,robust_attack";
#define CSV_FIELDS 14

/* A label, eps text or metric that can go into an unquoted CSV field. */
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
static void put_number(report_text *t, double v)
{
    if (!isnan(v))
        report_put(t, "%.10g", v);
}

rb_status rb_grid_write_csv(const char *path, const rb_grid_result *rows, size_t n)
{
    report_text t = {0};
    rb_status s;
    if (path == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_grid_write_csv: NULL path");
    if ((s = report_check_rows(rows, n)) != RB_OK)
        return s;
    report_put(&t, "%s\n", CSV_HEADER);
    for (size_t i = 0; i < n; i++) {
        const rb_grid_result *r = &rows[i];
        if (!csv_safe(r->arch) || !csv_safe(r->target) || !csv_safe(r->eps_text)) {
            free(t.data);
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: row %zu: arch '%s', target '%s' and eps '%s' must be non-empty and hold no comma, "
                                "quote or line break",
                                path, i + 1, r->arch, r->target, r->eps_text);
        }
        if (r->robust_attack[0] != '\0' && (memchr(r->robust_attack, '\0', sizeof r->robust_attack) == NULL ||
                                             !csv_safe(r->robust_attack))) {
            free(t.data);
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: row %zu: the robust attack's text must hold no comma, quote or line break", path,
                                i + 1);
        }
        if (!csv_safe(report_metric(r))) {
            free(t.data);
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: row %zu: metric '%s' must hold no comma, quote or line break", path, i + 1,
                                r->metric);
        }
        if (strcmp(r->mode, "fixed") != 0 && strcmp(r->mode, "full") != 0) {
            free(t.data);
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: row %zu: mode '%s' is not fixed or full", path, i + 1,
                                r->mode);
        }
        /* %.17g: source_eps reads back bit for bit, so groups keep together */
        report_put(&t, "%s,%s,%.17g,%llu,", r->arch, r->eps_text, r->source_eps, (unsigned long long)r->source_seed);
        put_number(&t, r->source_test_acc);
        report_put(&t, ",");
        put_number(&t, r->source_robust_acc);
        report_put(&t, ",%s,%s,%llu,", r->target, r->mode, (unsigned long long)r->transfer_seed);
        put_number(&t, r->target_acc);
        report_put(&t, ",");
        put_number(&t, r->seconds);
        report_put(&t, ",%s,", report_metric(r));
        if (r->robust_attack[0] != '\0')
            put_number(&t, r->target_robust_acc);
        report_put(&t, ",%s\n", r->robust_attack);
    }
    return report_write_file(&t, path, path);
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

/* One data line (NUL-terminated, modified in place) of a file with `fields`
 * columns (CSV_FIELDS, or fewer in an old file: metric is "accuracy", no
 * robust target accuracy) into *r; on error, the message without the
 * "PATH:LINE: " part goes into `why`. */
static int csv_row(char *line, size_t fields, rb_grid_result *r, char *why, size_t why_size)
{
    static const char *const names[CSV_FIELDS] = {"arch",          "eps",        "source_eps", "source_seed",
                                                  "source_test_acc", "source_robust_acc", "target", "mode",
                                                  "transfer_seed",   "target_acc", "seconds",    "metric",
                                                  "target_robust_acc", "robust_attack"};
    const char *f[CSV_FIELDS];
    char *c = line;
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
    if (k != fields) {
        snprintf(why, why_size, "expected %zu comma-separated fields, found %zu", fields, k);
        return 0;
    }
    if (fields < CSV_FIELDS - 2)
        f[11] = "accuracy";
    if (fields < CSV_FIELDS)
        f[12] = f[13] = "";
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
    else if (!csv_label(f[11], r->metric, sizeof r->metric) || strchr(f[11], '"') != NULL)
        bad = 11;
    else if (!csv_number(f[12], 1, &r->target_robust_acc))
        bad = 12;
    else if (strlen(f[13]) >= sizeof r->robust_attack || strchr(f[13], '"') != NULL)
        bad = 13;
    if (bad < CSV_FIELDS) {
        static const char *const expect[CSV_FIELDS] = {
            "a label of 1 to 63 characters", "an eps text of 1 to 31 characters", "a finite number >= 0",
            "an unsigned integer", "a number or nothing", "a number or nothing", "a label of 1 to 63 characters",
            "fixed or full", "an unsigned integer", "a number or nothing", "a number or nothing",
            "a metric name of 1 to 31 characters, no quote", "a number or nothing",
            "an attack's text of at most 127 characters, no quote"};
        snprintf(why, why_size, "field '%s' is '%.64s': expected %s", names[bad], f[bad], expect[bad]);
        return 0;
    }
    snprintf(r->mode, sizeof r->mode, "%s", f[7]);
    snprintf(r->robust_attack, sizeof r->robust_attack, "%s", f[13]);
    if (r->robust_attack[0] == '\0')
        r->target_robust_acc = NAN;
    return 1;
}

rb_status rb_grid_parse_csv(const char *text, size_t size, const char *what, rb_grid_result **rows, size_t *n)
{
    char *data;
    size_t used = 0, cap = 0, pos = 0;
    rb_grid_result *out = NULL;
    rb_status s = RB_OK;
    size_t fields = CSV_FIELDS;
    int lineno = 0;
    const char *path = what != NULL ? what : "results.csv";
    if ((text == NULL && size > 0) || rows == NULL || n == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_grid_parse_csv: NULL argument");
    *rows = NULL;
    *n = 0;
    /* a copy with room for the NUL that ends a last line without '\n' */
    data = malloc(size + 1);
    if (data == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory reading %s", path);
    if (size > 0)
        memcpy(data, text, size);
    data[size] = '\0';
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
            if (strcmp(line, CSV_HEADER_NO_METRIC) == 0)
                fields = CSV_FIELDS - 3;
            else if (strcmp(line, CSV_HEADER_NO_ROBUST) == 0)
                fields = CSV_FIELDS - 2;
            else if (strcmp(line, CSV_HEADER) != 0)
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
        if (!csv_row(line, fields, &out[used], why, sizeof why))
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

rb_status rb_grid_read_csv(const char *path, rb_grid_result **rows, size_t *n)
{
    unsigned char *raw;
    size_t size;
    rb_status s;
    if (path == NULL || rows == NULL || n == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_grid_read_csv: NULL argument");
    *rows = NULL;
    *n = 0;
    if ((s = rb_file_read_all(path, (size_t)1 << 28, &raw, &size)) != RB_OK)
        return s;
    s = rb_grid_parse_csv((const char *)raw, size, path, rows, n);
    free(raw);
    return s;
}
