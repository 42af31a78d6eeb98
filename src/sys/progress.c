/* Progress display (robusta/progress.h). */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <robusta/progress.h>

#include "sys/internal.h"

struct rb_progress {
    char label[96];
    char unit[24];
    char extra[160];
    uint64_t total, done;
    FILE *stream;
    int tty;
    int width;
    double redraw_seconds, line_seconds;
    double (*clock)(void *user);
    void *clock_user;
    double start, last_draw;
    int line_dirty; /* TTY: our text is on the current line */
    int finished;
};

/* The bar currently drawing in place, so that log lines can clear it. */
static pthread_mutex_t progress_lock = PTHREAD_MUTEX_INITIALIZER;
static rb_progress *active_bar = NULL;

double rb_monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double default_clock(void *user)
{
    (void)user;
    return rb_monotonic_seconds();
}

char *rb_format_duration(double seconds, char *buf, size_t size)
{
    if (!isfinite(seconds) || seconds < 0) {
        snprintf(buf, size, "?");
    } else if (seconds < 60) {
        snprintf(buf, size, "%.0fs", floor(seconds));
    } else if (seconds < 3600) {
        long s = (long)seconds;
        snprintf(buf, size, "%ldm%02lds", s / 60, s % 60);
    } else {
        long m = (long)(seconds / 60);
        snprintf(buf, size, "%ldh%02ldm", m / 60, m % 60);
    }
    return buf;
}

static void format_rate(double rate, char *buf, size_t size)
{
    if (!isfinite(rate))
        snprintf(buf, size, "?");
    else if (rate >= 100)
        snprintf(buf, size, "%.0f", rate);
    else if (rate >= 10)
        snprintf(buf, size, "%.1f", rate);
    else
        snprintf(buf, size, "%.2f", rate);
}

rb_status rb_progress_create(rb_progress **out, const char *label, uint64_t total,
                             const char *unit, const rb_progress_options *options)
{
    rb_progress *bar;
    const char *env;

    *out = NULL;
    bar = calloc(1, sizeof *bar);
    if (bar == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "progress display: out of memory");
    snprintf(bar->label, sizeof bar->label, "%s", label ? label : "");
    snprintf(bar->unit, sizeof bar->unit, "%s", unit ? unit : "it");
    bar->total = total;
    bar->stream = stderr;
    bar->tty = -1;
    bar->redraw_seconds = 0.1;
    bar->line_seconds = 10;
    bar->clock = default_clock;
    if (options != NULL) {
        if (options->stream != NULL)
            bar->stream = options->stream;
        bar->tty = options->tty;
        if (options->redraw_seconds > 0)
            bar->redraw_seconds = options->redraw_seconds;
        if (options->line_seconds > 0)
            bar->line_seconds = options->line_seconds;
        bar->width = options->width;
        if (options->clock != NULL) {
            bar->clock = options->clock;
            bar->clock_user = options->clock_user;
        }
    }
    if (bar->tty < 0)
        bar->tty = isatty(fileno(bar->stream));
    if ((env = getenv("RB_PROGRESS_SECONDS")) != NULL && (options == NULL || options->line_seconds <= 0)) {
        double s = strtod(env, NULL);
        if (s > 0)
            bar->line_seconds = s;
    }
    if (bar->width <= 0) {
        env = getenv("COLUMNS");
        bar->width = env ? atoi(env) : 0;
        if (bar->width < 40 || bar->width > 1000)
            bar->width = 80;
    }
    bar->start = bar->clock(bar->clock_user);
    bar->last_draw = bar->start;
    *out = bar;
    return RB_OK;
}

/* Writes the status text (without bar) into buf. */
static void describe(const rb_progress *bar, double now, int final, char *buf, size_t size)
{
    double elapsed = now - bar->start;
    double rate = elapsed > 0 ? (double)bar->done / elapsed : NAN;
    char rate_text[32], time_text[32];
    size_t n = 0;

    format_rate(rate, rate_text, sizeof rate_text);
    if (bar->total > 0)
        n += (size_t)snprintf(buf + n, size - n, "%llu/%llu %s (%.0f%%)",
                              (unsigned long long)bar->done, (unsigned long long)bar->total,
                              bar->unit, 100.0 * (double)bar->done / (double)bar->total);
    else
        n += (size_t)snprintf(buf + n, size - n, "%llu %s", (unsigned long long)bar->done,
                              bar->unit);
    if (n < size)
        n += (size_t)snprintf(buf + n, size - n, ", %s %s/s", rate_text, bar->unit);
    if (n < size) {
        if (final) {
            rb_format_duration(elapsed, time_text, sizeof time_text);
            n += (size_t)snprintf(buf + n, size - n, ", took %s", time_text);
        } else if (bar->total > 0 && bar->done > 0 && bar->done <= bar->total) {
            rb_format_duration((double)(bar->total - bar->done) / rate, time_text,
                               sizeof time_text);
            n += (size_t)snprintf(buf + n, size - n, ", ETA %s", time_text);
        }
    }
    if (n < size && bar->extra[0])
        snprintf(buf + n, size - n, ", %s", bar->extra);
}

static void draw(rb_progress *bar, double now, int final)
{
    char status[512];
    describe(bar, now, final, status, sizeof status);
    if (bar->tty) {
        char line[1024];
        int room = bar->width - 1 - (int)strlen(bar->label) - (int)strlen(status) - 4;
        if (bar->total > 0 && room >= 12) {
            int cells = room > 40 ? 40 : room - 2;
            int filled = (int)((double)cells * (double)bar->done / (double)bar->total);
            char cells_text[64];
            if (filled > cells)
                filled = cells;
            memset(cells_text, '#', (size_t)filled);
            memset(cells_text + filled, '.', (size_t)(cells - filled));
            cells_text[cells] = '\0';
            snprintf(line, sizeof line, "%s [%s] %s", bar->label, cells_text, status);
        } else {
            snprintf(line, sizeof line, "%s %s", bar->label, status);
        }
        if ((int)strlen(line) > bar->width - 1)
            line[bar->width - 1] = '\0';
        /* \r and erase-to-end-of-line redraw in place. */
        fprintf(bar->stream, "\r%s\033[K%s", line, final ? "\n" : "");
        bar->line_dirty = !final;
    } else {
        fprintf(bar->stream, "%s%s%s\n", bar->label, bar->label[0] ? ": " : "", status);
    }
    fflush(bar->stream);
    bar->last_draw = now;
}

static void set_extra(rb_progress *bar, const char *fmt, va_list ap) RB_PRINTF(2, 0);

static void set_extra(rb_progress *bar, const char *fmt, va_list ap)
{
    if (fmt == NULL)
        return;
    vsnprintf(bar->extra, sizeof bar->extra, fmt, ap);
    for (char *c = bar->extra; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
}

void rb_progress_update(rb_progress *bar, uint64_t done, const char *fmt, ...)
{
    double now;
    va_list ap;

    if (bar == NULL || bar->finished)
        return;
    bar->done = done;
    now = bar->clock(bar->clock_user);
    if (now - bar->last_draw < (bar->tty ? bar->redraw_seconds : bar->line_seconds))
        return;
    va_start(ap, fmt);
    set_extra(bar, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&progress_lock);
    draw(bar, now, 0);
    if (bar->tty)
        active_bar = bar;
    pthread_mutex_unlock(&progress_lock);
}

void rb_progress_finish(rb_progress *bar, const char *fmt, ...)
{
    va_list ap;
    if (bar == NULL || bar->finished)
        return;
    va_start(ap, fmt);
    set_extra(bar, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&progress_lock);
    draw(bar, bar->clock(bar->clock_user), 1);
    bar->finished = 1;
    if (active_bar == bar)
        active_bar = NULL;
    pthread_mutex_unlock(&progress_lock);
}

void rb_progress_destroy(rb_progress *bar)
{
    if (bar == NULL)
        return;
    rb_progress_finish(bar, NULL);
    free(bar);
}

void rb_progress_clear_line(FILE *stream)
{
    pthread_mutex_lock(&progress_lock);
    if (active_bar != NULL && active_bar->stream == stream && active_bar->line_dirty) {
        fputs("\r\033[K", stream);
        active_bar->line_dirty = 0;
        /* Redraw at the next update rather than waiting out the interval. */
        active_bar->last_draw = -INFINITY;
    }
    pthread_mutex_unlock(&progress_lock);
}
