/* robusta report, reading: a grid's or a run's folder into a report_folder
 * (report_page.h). Everything read here may be corrupt or half-written; each
 * file that cannot be used is said in one line (report_skip) and left out,
 * and the rest is kept. */
#include "config.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <robusta/log.h>

#include "experiment/report_page.h"
#include "sys/internal.h"
#include "sys/json.h"

#define JSON_LIMIT ((size_t)16 << 20) /* config.json, result.json, metrics.json */
#define LOG_LIMIT ((size_t)256 << 20)
#define INI_LIMIT ((size_t)1 << 20)   /* rb_grid_spec_load's limit */
#define LISTED 3                      /* unfinished runs named in their line */

void report_skip(report_ctx *c, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->n_skipped++;
    if (c->opt != NULL && c->opt->skipped != NULL)
        c->opt->skipped(c->opt->user, line);
    else
        rb_log(RB_LOG_WARN, "%s", line);
    report_put(&c->skipped, "<li>");
    report_put_escaped(&c->skipped, line);
    report_put(&c->skipped, "</li>\n");
}

double report_json_number(json_object *o, const char *key)
{
    json_object *v;
    if (o == NULL || !json_object_object_get_ex(o, key, &v) || v == NULL ||
        !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
        return NAN;
    return json_object_get_double(v);
}

const char *report_json_string(json_object *o, const char *key)
{
    json_object *v;
    if (o == NULL || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* DIR/REL/NAME, or DIR/NAME for a single run (REL "."). */
static void run_file(char *out, size_t size, const char *dir, const char *rel, const char *name)
{
    if (strcmp(rel, ".") == 0)
        snprintf(out, size, "%s/%s", dir, name);
    else
        snprintf(out, size, "%s/%s/%s", dir, rel, name);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* DIR/REL/NAME as a JSON object, or NULL: absent (quietly) or unusable
 * (said). */
static json_object *read_json(report_ctx *c, const char *dir, const char *rel, const char *name)
{
    char path[4200];
    unsigned char *bytes = NULL;
    size_t size = 0;
    json_object *o = NULL;
    rb_json_error err;
    run_file(path, sizeof path, dir, rel, name);
    if (!is_file(path))
        return NULL;
    if (rb_file_read_all(path, JSON_LIMIT, &bytes, &size) != RB_OK) {
        report_skip(c, "%s: %s; left out", path, rb_last_error());
        return NULL;
    }
    switch (rb_json_parse_object((const char *)bytes, size, 16, &o, &err)) {
    case RB_JSON_OK: break;
    case RB_JSON_INVALID:
    case RB_JSON_DUPLICATE:
        report_skip(c, "%s: not JSON (%s at byte %zu); left out", path, err.what, err.at + 1);
        break;
    case RB_JSON_NOT_OBJECT: report_skip(c, "%s: a JSON %s, not an object; left out", path, err.kind); break;
    default: report_skip(c, "%s: cannot be read as JSON; left out", path); break;
    }
    free(bytes);
    return o;
}

static rb_status read_log(report_ctx *c, const char *dir, report_run *r)
{
    char path[4200];
    unsigned char *bytes = NULL;
    size_t size = 0;
    rb_status s;
    run_file(path, sizeof path, dir, r->rel, "log.jsonl");
    if (!is_file(path))
        return RB_OK;
    if (rb_file_read_all(path, LOG_LIMIT, &bytes, &size) != RB_OK) {
        report_skip(c, "%s: %s; curves left out", path, rb_last_error());
        return RB_OK;
    }
    s = report_log_parse((const char *)bytes, size, &r->log);
    free(bytes);
    if (s == RB_OK && r->log.skipped > 0)
        report_skip(c, "%s: %zu of %zu lines skipped (%s)", path, r->log.skipped, r->log.lines,
                    r->log.first_fault);
    return s;
}

static rb_status read_run(report_ctx *c, const char *dir, const char *rel, bool grid_run, report_run *r)
{
    char path[4200];
    memset(r, 0, sizeof *r);
    if ((r->rel = strdup(rel)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory reading %s", dir);
    r->config = read_json(c, dir, rel, "config.json");
    r->result = read_json(c, dir, rel, "result.json");
    r->metrics = read_json(c, dir, rel, "metrics.json");
    run_file(path, sizeof path, dir, rel, "model.rbt");
    r->finished = grid_run ? r->result != NULL : is_file(path);
    r->seconds = report_json_number(r->result, "seconds");
    if (read_log(c, dir, r) != RB_OK)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory reading %s/%s/log.jsonl", dir, rel);
    if (isnan(r->seconds) && r->log.n > 0) {
        double sum = 0;
        for (size_t i = 0; i < r->log.n; i++)
            if (isfinite(r->log.v[REPORT_LOG_SECONDS][i]))
                sum += r->log.v[REPORT_LOG_SECONDS][i];
        r->seconds = sum;
    }
    return RB_OK;
}

/* The sub-folders of DIR/REL, sorted (NULL-terminated list in *names). */
static rb_status subdirs(const char *dir, const char *rel, char ***names, size_t *n)
{
    char path[4200];
    struct dirent **list = NULL;
    int k;
    *names = NULL;
    *n = 0;
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    if ((k = scandir(path, &list, NULL, alphasort)) < 0)
        return RB_OK;
    *names = calloc((size_t)k + 1, sizeof **names);
    for (int i = 0; i < k; i++) {
        char sub[4400];
        snprintf(sub, sizeof sub, "%.4096s/%.255s", path, list[i]->d_name);
        if (*names != NULL && list[i]->d_name[0] != '.' && is_dir(sub))
            if (((*names)[*n] = strdup(list[i]->d_name)) != NULL)
                (*n)++;
        free(list[i]);
    }
    free(list);
    return *names != NULL ? RB_OK : rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory listing %s", path);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static rb_status add_run(report_ctx *c, report_folder *f, const char *rel, bool grid_run)
{
    report_run *grown = realloc(f->runs, (f->n_runs + 1) * sizeof *grown);
    if (grown == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory reading %s", f->dir);
    f->runs = grown;
    f->n_runs++;
    return read_run(c, f->dir, rel, grid_run, &f->runs[f->n_runs - 1]);
}

/* The runs under sources/, then under transfers/SOURCE/: each sorted. */
static rb_status read_grid_runs(report_ctx *c, report_folder *f)
{
    char **sources = NULL, **groups = NULL, rel[4200];
    size_t n_sources = 0, n_groups = 0;
    rb_status s = subdirs(f->dir, "sources", &sources, &n_sources);
    for (size_t i = 0; s == RB_OK && i < n_sources; i++) {
        snprintf(rel, sizeof rel, "sources/%s", sources[i]);
        s = add_run(c, f, rel, true);
    }
    if (s == RB_OK)
        s = subdirs(f->dir, "transfers", &groups, &n_groups);
    for (size_t g = 0; s == RB_OK && g < n_groups; g++) {
        char **runs = NULL, group[4200];
        size_t n = 0;
        snprintf(group, sizeof group, "transfers/%.255s", groups[g]);
        s = subdirs(f->dir, group, &runs, &n);
        for (size_t i = 0; s == RB_OK && i < n; i++) {
            snprintf(rel, sizeof rel, "%.300s/%.255s", group, runs[i]);
            s = add_run(c, f, rel, true);
        }
        free_names(runs, n);
    }
    free_names(sources, n_sources);
    free_names(groups, n_groups);
    return s;
}

/* The folder's grid file: the one *.ini it holds (several: none, said). */
static void read_ini(report_ctx *c, report_folder *f)
{
    struct dirent **list = NULL;
    int k = scandir(f->dir, &list, NULL, alphasort), found = 0;
    char path[4200];
    for (int i = 0; i < k; i++) {
        size_t len = strlen(list[i]->d_name);
        if (len > 4 && strcmp(list[i]->d_name + len - 4, ".ini") == 0 && found++ == 0)
            f->ini_name = strdup(list[i]->d_name);
        free(list[i]);
    }
    free(list);
    if (found > 1) {
        report_skip(c, "%s: %d grid files (*.ini); none shown (which one ran is not recorded)", f->dir, found);
        free(f->ini_name);
        f->ini_name = NULL;
    }
    if (f->ini_name != NULL) {
        unsigned char *bytes = NULL;
        size_t size = 0;
        snprintf(path, sizeof path, "%s/%s", f->dir, f->ini_name);
        if (rb_file_read_all(path, INI_LIMIT, &bytes, &size) != RB_OK) {
            report_skip(c, "%s: %s; left out", path, rb_last_error());
        } else if (memchr(bytes, '\0', size) != NULL || (f->ini_text = malloc(size + 1)) == NULL) {
            if (memchr(bytes, '\0', size) != NULL)
                report_skip(c, "%s: holds a NUL byte, not a grid file; left out", path);
        } else {
            memcpy(f->ini_text, bytes, size);
            f->ini_text[size] = '\0';
        }
        free(bytes);
        if (f->ini_text == NULL) {
            free(f->ini_name);
            f->ini_name = NULL;
        }
    }
}

/* What a grid that is still running, or was stopped, says: its unfinished
 * runs, and a results.csv older than its finished transfers. */
static void check_grid_progress(report_ctx *c, report_folder *f)
{
    size_t finished = 0, unfinished = 0;
    char names[LISTED * 300] = "";
    for (size_t i = 0; i < f->n_runs; i++) {
        finished += strncmp(f->runs[i].rel, "transfers/", 10) == 0 && f->runs[i].finished;
        if (!f->runs[i].finished && unfinished++ < LISTED) {
            size_t used = strlen(names);
            snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", f->runs[i].rel);
        }
    }
    if (unfinished > 0)
        report_skip(c, "%s: %zu run%s unfinished (no result.json: %s%s); listed without results", f->dir, unfinished,
                    unfinished == 1 ? "" : "s", names, unfinished > LISTED ? ", ..." : "");
    if (f->have_rows && f->n_rows < finished)
        report_skip(c, "%s/results.csv: %zu rows, but %zu transfers have finished: it is older than they are "
                    "(robusta grid FILE --report rewrites it); the table shows its rows", f->dir, f->n_rows, finished);
}

rb_status report_folder_read(report_ctx *c, const char *dir, report_folder *f)
{
    char path[4200];
    rb_status s = RB_OK;
    memset(f, 0, sizeof *f);
    f->dir = dir;
    if (!is_dir(dir)) {
        report_skip(c, "%s: %s", dir, is_file(dir) ? "not a folder" : "no such folder");
        return RB_ERR_NOT_FOUND;
    }
    snprintf(path, sizeof path, "%s/results.csv", dir);
    f->grid = is_file(path);
    snprintf(path, sizeof path, "%s/sources", dir);
    f->grid |= is_dir(path);
    snprintf(path, sizeof path, "%s/transfers", dir);
    f->grid |= is_dir(path);
    if (f->grid) {
        bool csv;
        snprintf(path, sizeof path, "%s/results.csv", dir);
        if ((csv = is_file(path)) && rb_grid_read_csv(path, &f->rows, &f->n_rows) != RB_OK) {
            if (rb_last_status() == RB_ERR_OUT_OF_MEMORY)
                return rb_last_status();
            report_skip(c, "%s (table, verdicts and plot left out)", rb_last_error());
        } else {
            f->have_rows = csv;
        }
        if ((s = read_grid_runs(c, f)) != RB_OK)
            return s;
        if (!csv && f->n_runs == 0) {
            report_skip(c, "%s: a grid's folder with nothing in it yet", dir);
            return RB_ERR_NOT_FOUND;
        }
        if (!csv)
            report_skip(c, "%s: no results.csv yet (no source model has finished with its transfers): table, "
                        "verdicts and plot left out", dir);
        read_ini(c, f);
        check_grid_progress(c, f);
        f->shown = true;
        return RB_OK;
    }
    {
        static const char *const marks[] = {"config.json", "log.jsonl", "metrics.json", "result.json"};
        bool run = false;
        for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", dir, marks[i]);
            run |= is_file(path);
        }
        if (!run) {
            report_skip(c, "%s: no results (neither a grid's results.csv, sources/ or transfers/ nor a run's "
                        "config.json, log.jsonl or metrics.json)", dir);
            return RB_ERR_NOT_FOUND;
        }
    }
    if ((s = add_run(c, f, ".", false)) != RB_OK)
        return s;
    if (!f->runs[0].finished)
        report_skip(c, "%s: unfinished (no model.rbt yet): its curves so far are shown", dir);
    f->shown = true;
    return RB_OK;
}

void report_folder_free(report_folder *f)
{
    for (size_t i = 0; i < f->n_runs; i++) {
        report_run *r = &f->runs[i];
        free(r->rel);
        json_object_put(r->config);
        json_object_put(r->result);
        json_object_put(r->metrics);
        report_log_free(&r->log);
    }
    free(f->runs);
    free(f->rows);
    free(f->ini_name);
    free(f->ini_text);
    memset(f, 0, sizeof *f);
}
