/* Functions shared between files of librobusta but not part of its API
 * (hidden by -fvisibility=hidden). */
#ifndef RB_SYS_INTERNAL_H
#define RB_SYS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <robusta/status.h>

/* If a progress bar is being redrawn in place on `stream`, erases its line
 * so that a log message can be written; the bar redraws on its next update. */
void rb_progress_clear_line(FILE *stream);

/* 64-bit FNV-1a over n bytes, continuing from h (RB_FNV1A_START to begin):
 * a hash that spreads and tells apart, with no strength against an
 * adversary (hash tables, identities of files, comparing ranks' weights). */
#define RB_FNV1A_START UINT64_C(14695981039346656037)
static inline uint64_t rb_fnv1a(uint64_t h, const void *bytes, size_t n)
{
    const unsigned char *b = bytes;
    for (size_t k = 0; k < n; k++)
        h = (h ^ b[k]) * UINT64_C(1099511628211);
    return h;
}

/* Seconds from CLOCK_MONOTONIC. */
double rb_monotonic_seconds(void);

/* strdup that reports failure through rb_error_set. */
char *rb_strdup(const char *s);

/* Writes n in decimal with thousands separators ("1,277,952") into buf,
 * cut to fit, and returns buf. For sizes in messages. */
const char *rb_format_count(char *buf, size_t size, unsigned long long n);

/* Length of the well-formed UTF-8 sequence at p (at most `avail` bytes
 * read), or 0 when it is not one: Unicode's table 3-7, so no overlong
 * forms, no surrogates, nothing past U+10FFFF. */
size_t rb_utf8_char(const unsigned char *p, size_t avail);
/* Whether a NUL-terminated string is well-formed UTF-8 (rb_utf8_char). */
bool rb_utf8_valid(const char *s);

/* Opens `path` for reading ("rb") only if it is a regular file: a FIFO,
 * device, socket or folder is refused at once ("PATH is not a regular
 * file (it is a FIFO)"), without blocking. Every file robusta reads goes
 * through here. */
rb_status rb_file_open_regular(const char *path, FILE **out);

/* out = "dir/name" in `size` bytes, or RB_ERR_INVALID_ARGUMENT with one
 * line saying the path is too long. */
rb_status rb_path_join(char *out, size_t size, const char *dir, const char *name);

/* out = the file NAME in the user's cache folder, $XDG_CACHE_HOME/robusta
 * (when that is an absolute path) or $HOME/.cache/robusta; RB_ERR_NOT_FOUND
 * when neither variable names an absolute path, RB_ERR_INVALID_ARGUMENT when
 * the path does not fit. Nothing is created. */
rb_status rb_user_cache_path(const char *name, char *out, size_t size);

/* Creates the missing folders above `file` (mkdir -p of its folder), each
 * private to the user (0700). RB_ERR_IO naming the folder that could not
 * be made. */
rb_status rb_make_parent_folders(const char *file);

/* Reads a whole regular file into a new malloc'd buffer (free it). Files
 * larger than `limit` bytes are refused with RB_ERR_UNSUPPORTED. */
rb_status rb_file_read_all(const char *path, size_t limit, unsigned char **data, size_t *size);

/* A file written crash-safely: the data goes to PATH.tmp.XXXXXX in the same
 * folder; commit fsyncs it, renames it over PATH and fsyncs the folder;
 * abort (or any failed write, at commit) removes it. PATH is untouched
 * until commit succeeds, so a failed write never replaces a good file.
 *
 *     rb_atomic_file af;
 *     if ((s = rb_atomic_file_open(&af, path)) != RB_OK) return s;
 *     fprintf(af.file, ...);             // or rb_atomic_file_write
 *     return rb_atomic_file_commit(&af); */
typedef struct rb_atomic_file {
    FILE *file;
    int failed;
    char path[4096];
    char tmp_path[4096 + 16];
} rb_atomic_file;

rb_status rb_atomic_file_open(rb_atomic_file *af, const char *path);
rb_status rb_atomic_file_write(rb_atomic_file *af, const void *data, size_t size);
rb_status rb_atomic_file_commit(rb_atomic_file *af);
void rb_atomic_file_abort(rb_atomic_file *af);
/* open + write + commit of one buffer. */
rb_status rb_file_write_atomic(const char *path, const void *data, size_t size);

#endif /* RB_SYS_INTERNAL_H */
