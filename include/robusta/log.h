/* robusta/log.h: leveled logging to standard error (or a sink of yours).
 *
 * Levels, from quiet to chatty: error, warn, info, debug, trace. The default
 * is info. The environment variable RB_LOG sets it by name or number
 * (RB_LOG=debug, RB_LOG=3); the robusta command's -v and -q move it one
 * level per flag from there. Each message is one line written in one piece,
 * so lines from several threads never interleave. When a progress bar is
 * being redrawn on a terminal, a log line first clears the bar's line.
 */
#ifndef ROBUSTA_LOG_H
#define ROBUSTA_LOG_H

#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rb_log_level {
    RB_LOG_ERROR = 0,
    RB_LOG_WARN = 1,
    RB_LOG_INFO = 2,
    RB_LOG_DEBUG = 3,
    RB_LOG_TRACE = 4
} rb_log_level;

/* Receives each message that passes the level filter: the text has no
 * prefix and no trailing newline. */
typedef void (*rb_log_sink)(rb_log_level level, const char *message, void *user);

/* Logs one line if `level` passes the current threshold. */
RB_API void rb_log(rb_log_level level, const char *fmt, ...) RB_PRINTF(2, 3);

RB_API void rb_log_set_level(rb_log_level level);
RB_API rb_log_level rb_log_get_level(void);

/* Reads RB_LOG. Returns RB_ERR_INVALID_ARGUMENT (level unchanged) when it
 * holds something other than a level name or 0..4; unset or empty is OK. */
RB_API rb_status rb_log_init_from_env(void);

/* Parses "warn", "WARNING", "2" ... into a level. */
RB_API rb_status rb_log_parse_level(const char *text, rb_log_level *out);

/* The lower-case name of a level ("warn"). */
RB_API const char *rb_log_level_str(rb_log_level level);

/* Sends messages to `sink` instead of standard error; NULL restores the
 * default, which writes "robusta: warning: text" lines to stderr. */
RB_API void rb_log_set_sink(rb_log_sink sink, void *user);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_LOG_H */
