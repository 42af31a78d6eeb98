/* Status codes and the thread-local error message (robusta/status.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <robusta/status.h>

#define RB_ERROR_MAX 1024

static _Thread_local char error_text[RB_ERROR_MAX];
static _Thread_local rb_status error_status = RB_OK;

static const char *const status_names[RB_STATUS_COUNT] = {
    [RB_OK] = "success",
    [RB_ERR_INVALID_ARGUMENT] = "invalid argument",
    [RB_ERR_OUT_OF_MEMORY] = "out of memory",
    [RB_ERR_IO] = "input/output error",
    [RB_ERR_NOT_FOUND] = "not found",
    [RB_ERR_CORRUPT] = "corrupt data",
    [RB_ERR_UNSUPPORTED] = "unsupported",
    [RB_ERR_PLUGIN] = "plugin refused or failed",
    [RB_ERR_NOT_AVAILABLE] = "not available yet",
    [RB_ERR_NUMERIC] = "non-finite number",
    [RB_ERR_INTERRUPTED] = "interrupted",
    [RB_ERR_INTERNAL] = "internal error",
};

const char *rb_status_str(rb_status status)
{
    if ((int)status < 0 || status >= RB_STATUS_COUNT)
        return "unknown status";
    return status_names[status];
}

/* Errors are promised to be one line: fold line breaks and tabs. */
static void flatten_lines(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r' || *s == '\t')
            *s = ' ';
}

rb_status rb_error_setv(rb_status status, const char *fmt, va_list ap)
{
    error_status = status;
    if (fmt == NULL) {
        error_text[0] = '\0';
        return status;
    }
    vsnprintf(error_text, sizeof error_text, fmt, ap);
    flatten_lines(error_text);
    return status;
}

rb_status rb_error_set(rb_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rb_error_setv(status, fmt, ap);
    va_end(ap);
    return status;
}

rb_status rb_error_prefix(const char *fmt, ...)
{
    char prefix[RB_ERROR_MAX];
    char joined[RB_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    snprintf(joined, sizeof joined, "%s%s", prefix, rb_last_error());
    memcpy(error_text, joined, sizeof error_text);
    flatten_lines(error_text);
    return error_status;
}

const char *rb_last_error(void)
{
    if (error_text[0] == '\0' && error_status != RB_OK)
        return rb_status_str(error_status);
    return error_text;
}

rb_status rb_last_status(void)
{
    return error_status;
}

void rb_error_clear(void)
{
    error_status = RB_OK;
    error_text[0] = '\0';
}
