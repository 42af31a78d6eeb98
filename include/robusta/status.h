/* robusta/status.h: how every robusta function reports success and failure.
 *
 * A function that can fail returns an rb_status; RB_OK (0) is success and
 * results come back through out-parameters. On failure the library also keeps
 * a one-line message for the calling thread, naming what went wrong and where
 * (file, tensor, option) and what to do: read it with rb_last_error() before
 * the next robusta call on that thread overwrites it.
 *
 *     rb_status s = rb_registry_load_file(reg, "x.so");
 *     if (s != RB_OK)
 *         fprintf(stderr, "robusta: %s\n", rb_last_error());
 *
 * The library never exits or aborts on bad input.
 */
#ifndef ROBUSTA_STATUS_H
#define ROBUSTA_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the public API; everything else in librobusta is hidden. */
#if defined(__GNUC__)
#define RB_API __attribute__((visibility("default")))
#define RB_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define RB_API
#define RB_PRINTF(fmt, args)
#endif

typedef enum rb_status {
    RB_OK = 0,
    RB_ERR_INVALID_ARGUMENT = 1, /* a caller or user passed something unusable */
    RB_ERR_OUT_OF_MEMORY = 2,
    RB_ERR_IO = 3,               /* the operating system refused a read or write */
    RB_ERR_NOT_FOUND = 4,        /* no such file, plugin, parameter or tensor */
    RB_ERR_CORRUPT = 5,          /* a file's contents fail validation */
    RB_ERR_UNSUPPORTED = 6,      /* well-formed, but a version or variant we do not handle */
    RB_ERR_PLUGIN = 7,           /* a plugin was refused or failed */
    RB_ERR_NOT_AVAILABLE = 8,    /* a feature this build or release does not have yet */
    RB_ERR_NUMERIC = 9,          /* NaN or Inf where a finite number was needed */
    RB_ERR_INTERRUPTED = 10,     /* stopped on request (Ctrl-C) at a safe point */
    RB_ERR_INTERNAL = 11,        /* a robusta bug: please report it */
    RB_STATUS_COUNT              /* not a status: the number of codes */
} rb_status;

/* A short, fixed English name for a status code ("invalid argument");
 * "unknown status" for values outside the enum. Never NULL. */
RB_API const char *rb_status_str(rb_status status);

/* The detail message of the last failure on this thread, one line without a
 * trailing newline. When the last failure set no detail, the status name;
 * "" when no failure has been recorded since rb_error_clear(). */
RB_API const char *rb_last_error(void);

/* The status that went with rb_last_error() (RB_OK when none). */
RB_API rb_status rb_last_status(void);

/* Records a failure for this thread and returns `status`, so that code can
 * write `return rb_error_set(RB_ERR_IO, "cannot open %s: %s", path, why);`.
 * Plugins use it to explain their own failures. Newlines in the message are
 * turned into spaces so that every error stays one line; messages longer than
 * 1023 bytes are cut. */
RB_API rb_status rb_error_set(rb_status status, const char *fmt, ...) RB_PRINTF(2, 3);
RB_API rb_status rb_error_setv(rb_status status, const char *fmt, va_list ap) RB_PRINTF(2, 0);

/* Prefixes the current message with context, keeping its status:
 * "reading model.rbt: " + "tensor fc.weight: shape mismatch". Returns the
 * current status. */
RB_API rb_status rb_error_prefix(const char *fmt, ...) RB_PRINTF(1, 2);

/* Forgets this thread's last failure. */
RB_API void rb_error_clear(void);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_STATUS_H */
