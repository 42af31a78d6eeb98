/* Functions shared between files of librobusta but not part of its API
 * (hidden by -fvisibility=hidden). */
#ifndef RB_SYS_INTERNAL_H
#define RB_SYS_INTERNAL_H

#include <stddef.h>
#include <stdio.h>

/* If a progress bar is being redrawn in place on `stream`, erases its line
 * so that a log message can be written; the bar redraws on its next update. */
void rb_progress_clear_line(FILE *stream);

/* Seconds from CLOCK_MONOTONIC. */
double rb_monotonic_seconds(void);

/* strdup that reports failure through rb_error_set. */
char *rb_strdup(const char *s);

#endif /* RB_SYS_INTERNAL_H */
