/* A run's log.jsonl read back as curves for robusta report (see
 * report_internal.h). The text may come from anywhere (a folder copied off
 * a cluster, a run killed mid-write), so every line is read with the strict
 * JSON reader and a line that is not a row is skipped and counted, never
 * guessed at; the caller says in one line what was skipped. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "experiment/report_internal.h"
#include "sys/json.h"

const char *const REPORT_LOG_KEYS[REPORT_LOG_COLUMNS] = {"train_loss", "test_loss", "train_acc", "test_acc",
                                                         "adv_train_acc", "robust_test_acc", "seconds"};

void report_log_free(report_log *log)
{
    free(log->epoch);
    for (int c = 0; c < REPORT_LOG_COLUMNS; c++)
        free(log->v[c]);
    memset(log, 0, sizeof *log);
}

/* Why a line is not a row (NULL: it is one; *epoch and vals filled). */
static const char *read_row(const char *line, size_t len, char *why, size_t why_size, long long *epoch,
                            double *vals)
{
    json_object *o = NULL, *v;
    rb_json_error err;
    const char *what = NULL;
    if (rb_json_parse_object(line, len, 2, &o, &err) != RB_JSON_OK) {
        if (err.fault == RB_JSON_NOT_OBJECT)
            snprintf(why, why_size, "a JSON %s, not an object", err.kind);
        else if (err.fault == RB_JSON_INVALID || err.fault == RB_JSON_DUPLICATE)
            snprintf(why, why_size, "not JSON (%s at byte %zu)", err.what, err.at + 1);
        else
            snprintf(why, why_size, "not JSON");
        return why;
    }
    if (!json_object_object_get_ex(o, "epoch", &v) || !json_object_is_type(v, json_type_int) ||
        json_object_get_int64(v) < 1)
        what = "no \"epoch\" number >= 1";
    else
        *epoch = json_object_get_int64(v);
    for (int c = 0; what == NULL && c < REPORT_LOG_COLUMNS; c++) {
        vals[c] = NAN;
        if (!json_object_object_get_ex(o, REPORT_LOG_KEYS[c], &v) || v == NULL)
            continue; /* absent or null: not measured that epoch */
        if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)) {
            snprintf(why, why_size, "\"%s\" is not a number", REPORT_LOG_KEYS[c]);
            what = why;
        } else {
            vals[c] = json_object_get_double(v);
        }
    }
    json_object_put(o);
    return what;
}

static void note_fault(report_log *log, size_t line_no, const char *why)
{
    if (log->skipped++ == 0)
        snprintf(log->first_fault, sizeof log->first_fault, "line %zu: %s", line_no, why);
}

rb_status report_log_parse(const char *text, size_t size, report_log *log)
{
    size_t cap = 0, line_no = 0;
    memset(log, 0, sizeof *log);
    for (size_t at = 0; at < size;) {
        const char *nl = memchr(text + at, '\n', size - at);
        size_t len = nl ? (size_t)(nl - (text + at)) : size - at;
        const char *line = text + at;
        long long epoch = 0;
        double vals[REPORT_LOG_COLUMNS];
        char why[256];
        const char *fault;
        at += len + (nl != NULL);
        line_no++;
        if (len == 0)
            continue;
        if ((fault = read_row(line, len, why, sizeof why, &epoch, vals)) != NULL) {
            note_fault(log, line_no, fault);
            continue;
        }
        if (log->n > 0 && (double)epoch <= log->epoch[log->n - 1]) {
            /* a resumed run rewrites its log whole; two rows of an epoch mean two runs' logs were joined */
            snprintf(why, sizeof why, "epoch %lld after epoch %.0f", epoch, log->epoch[log->n - 1]);
            note_fault(log, line_no, why);
            continue;
        }
        if (log->n == cap) {
            size_t grown = cap ? 2 * cap : 64;
            double *e = realloc(log->epoch, grown * sizeof *e);
            if (e == NULL)
                goto oom;
            log->epoch = e;
            for (int c = 0; c < REPORT_LOG_COLUMNS; c++) {
                double *p = realloc(log->v[c], grown * sizeof *p);
                if (p == NULL)
                    goto oom;
                log->v[c] = p;
            }
            cap = grown;
        }
        log->epoch[log->n] = (double)epoch;
        for (int c = 0; c < REPORT_LOG_COLUMNS; c++)
            log->v[c][log->n] = vals[c];
        log->n++;
    }
    log->lines = line_no;
    return RB_OK;
oom:
    report_log_free(log);
    return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory reading a log of %zu bytes", size);
}
