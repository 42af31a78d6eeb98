/* robusta/progress.h: a progress display for long loops (epochs, attacks,
 * grids).
 *
 * On a terminal the bar is redrawn in place, at most a few times a second,
 * with the count, percentage, rate and time left. When the output is a file
 * or a pipe (CI logs, nohup), it prints a plain line every few seconds
 * instead, so logs stay readable. Updating costs a clock read and a compare,
 * so it may be called once per batch.
 *
 *     rb_progress *bar;
 *     rb_progress_create(&bar, "epoch 3/10", n_batches, "batch", NULL);
 *     for (i = 0; i < n_batches; i++) {
 *         ...train one batch...
 *         rb_progress_update(bar, i + 1, "loss %.3f", loss);
 *     }
 *     rb_progress_finish(bar, "loss %.3f", loss);
 *     rb_progress_destroy(bar);
 */
#ifndef ROBUSTA_PROGRESS_H
#define ROBUSTA_PROGRESS_H

#include <stdint.h>
#include <stdio.h>
#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rb_progress rb_progress;

/* Settings; pass NULL to rb_progress_create for the defaults noted. */
typedef struct rb_progress_options {
    FILE *stream;           /* where to draw; default stderr */
    int tty;                /* 1 redraw in place, 0 plain lines, -1 (default) ask isatty() */
    double redraw_seconds;  /* TTY: least time between redraws; default 0.1 */
    double line_seconds;    /* plain: least time between lines; default 10 (RB_PROGRESS_SECONDS overrides) */
    int width;              /* TTY: columns; default $COLUMNS or 80 */
    /* Clock in seconds, for tests; default CLOCK_MONOTONIC. */
    double (*clock)(void *user);
    void *clock_user;
} rb_progress_options;

/* Starts a display for `total` units (0 when unknown: no percentage or ETA).
 * `unit` names one unit in the rate ("img" gives "412 img/s"). Nothing is
 * drawn until the first update. */
RB_API rb_status rb_progress_create(rb_progress **out, const char *label, uint64_t total,
                                    const char *unit, const rb_progress_options *options);

/* Reports that `done` units are complete; `fmt` (may be NULL) adds a short
 * status such as the running loss. Draws only when enough time has passed. */
RB_API void rb_progress_update(rb_progress *bar, uint64_t done, const char *fmt, ...)
    RB_PRINTF(3, 4);

/* Draws the final state once, ends the line, and reports elapsed time and
 * mean rate. Later updates are ignored. */
RB_API void rb_progress_finish(rb_progress *bar, const char *fmt, ...) RB_PRINTF(2, 3);

/* Frees the display (finishing it first if needed). Accepts NULL. */
RB_API void rb_progress_destroy(rb_progress *bar);

/* Formats seconds as "42s", "3m07s" or "2h05m" into buf; returns buf. */
RB_API char *rb_format_duration(double seconds, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_PROGRESS_H */
