/* Leveled logging (robusta/log.h). */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <robusta/log.h>

#include "sys/internal.h"

static rb_log_level current_level = RB_LOG_INFO;
static rb_log_sink current_sink = NULL;
static void *current_sink_user = NULL;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

const char *rb_log_level_str(rb_log_level level)
{
    if ((int)level < RB_LOG_ERROR || level > RB_LOG_TRACE)
        return "unknown";
    return level_names[level];
}

rb_status rb_log_parse_level(const char *text, rb_log_level *out)
{
    if (text == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "log level: missing value");
    for (int i = RB_LOG_ERROR; i <= RB_LOG_TRACE; i++) {
        if (strcasecmp(text, level_names[i]) == 0 || (text[0] == '0' + i && text[1] == '\0')) {
            *out = (rb_log_level)i;
            return RB_OK;
        }
    }
    if (strcasecmp(text, "warning") == 0) {
        *out = RB_LOG_WARN;
        return RB_OK;
    }
    return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                        "log level '%s' is not one of error, warn, info, debug, trace (or 0-4)",
                        text);
}

void rb_log_set_level(rb_log_level level)
{
    /* The enum may be unsigned: compare as int so that -1 clamps to error. */
    if ((int)level < RB_LOG_ERROR)
        level = RB_LOG_ERROR;
    if (level > RB_LOG_TRACE)
        level = RB_LOG_TRACE;
    current_level = level;
}

rb_log_level rb_log_get_level(void)
{
    return current_level;
}

rb_status rb_log_init_from_env(void)
{
    const char *text = getenv("RB_LOG");
    rb_log_level level;
    if (text == NULL || text[0] == '\0')
        return RB_OK;
    if (rb_log_parse_level(text, &level) != RB_OK)
        return rb_error_prefix("RB_LOG: ");
    rb_log_set_level(level);
    return RB_OK;
}

void rb_log_set_sink(rb_log_sink sink, void *user)
{
    pthread_mutex_lock(&log_lock);
    current_sink = sink;
    current_sink_user = user;
    pthread_mutex_unlock(&log_lock);
}

void rb_log(rb_log_level level, const char *fmt, ...)
{
    static const char *const prefixes[] = {"error: ", "warning: ", "", "debug: ", "trace: "};
    char text[2048];
    va_list ap;

    if (level > current_level || (int)level < RB_LOG_ERROR)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    for (char *c = text; *c; c++)
        if (*c == '\n')
            *c = ' ';

    pthread_mutex_lock(&log_lock);
    if (current_sink != NULL) {
        current_sink(level, text, current_sink_user);
    } else {
        rb_progress_clear_line(stderr);
        fprintf(stderr, "robusta: %s%s\n", prefixes[level], text);
        fflush(stderr);
    }
    pthread_mutex_unlock(&log_lock);
}
