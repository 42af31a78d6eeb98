/* The run folder's housekeeping: lock, stale temporary files, run id, and
 * the logs reconciled at resume (see run_dir.h). */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include <robusta/log.h>

#include "experiment/run_dir.h"
#include "sys/internal.h"

/* ------------------------------------------------------------ lock */

/* A busy folder: one line naming the holder, from what the lock file says. */
static rb_status busy(const char *dir, const char *path, int f)
{
    char text[128], what[64] = "";
    long pid = 0;
    ssize_t n = pread(f, text, sizeof text - 1, 0);
    text[n > 0 ? n : 0] = '\0';
    if (sscanf(text, "%ld robusta %63s", &pid, what) >= 1 && pid > 0)
        return rb_error_set(RB_ERR_IO,
                            "%s is in use by process %ld (robusta %s); wait for it to finish or stop it (kill %ld), "
                            "then run again",
                            dir, pid, what[0] ? what : "train", pid);
    return rb_error_set(RB_ERR_IO,
                        "%s is in use by another process (it holds %s); wait for it to finish or stop it, then run "
                        "again",
                        dir, path);
}

rb_status rb_run_dir_lock(const char *dir, const char *command, int *fd)
{
    char path[4200], text[128];
    int n;
    *fd = -1;
    snprintf(path, sizeof path, "%s/%s", dir, RB_RUN_LOCK_NAME);
    /* The holder removes the file when it is done, so a lock taken on a file
     * that is no longer (or not yet again) at the path is no lock: retry. */
    for (int attempt = 0; attempt < 100; attempt++) {
        struct stat held, now;
        int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (f < 0)
            return rb_error_set(RB_ERR_IO, "cannot open the run folder's lock %s: %s", path, strerror(errno));
        if (flock(f, LOCK_EX | LOCK_NB) != 0) {
            rb_status s;
            int err = errno;
            if (err != EWOULDBLOCK) {
                close(f);
                return rb_error_set(RB_ERR_IO, "cannot lock %s: %s", path, strerror(err));
            }
            s = busy(dir, path, f);
            close(f);
            return s;
        }
        if (fstat(f, &held) != 0 || stat(path, &now) != 0 || held.st_dev != now.st_dev || held.st_ino != now.st_ino) {
            close(f);
            continue;
        }
        n = snprintf(text, sizeof text, "%ld robusta %s\n", (long)getpid(), command);
        if (ftruncate(f, 0) != 0 || pwrite(f, text, (size_t)n, 0) != n) {
            int err = errno;
            unlink(path);
            close(f);
            return rb_error_set(RB_ERR_IO, "cannot write %s: %s", path, strerror(err));
        }
        *fd = f;
        return RB_OK;
    }
    return rb_error_set(RB_ERR_IO, "cannot take the lock %s: it keeps being replaced", path);
}

void rb_run_dir_unlock(const char *dir, int fd)
{
    char path[4200];
    if (fd < 0)
        return;
    /* Removed while still held, so that no one locks the old file after us
     * (rb_run_dir_lock checks that the file it locked is still the path's). */
    snprintf(path, sizeof path, "%s/%s", dir, RB_RUN_LOCK_NAME);
    unlink(path);
    close(fd);
}

/* ------------------------------------------------------------ stale temporary files */

/* Every file a run (or the grid, in its run folders) writes atomically. */
static const char *const run_files[] = {"last.rbt",    "best.rbt",     "model.rbt",   "log.csv",
                                        "log.jsonl",   "config.json",  "metrics.json", "result.json"};

/* "NAME.tmp.XXXXXX" for one of run_files, as rb_atomic_file_open makes them. */
static bool is_stale_temp(const char *name)
{
    for (size_t i = 0; i < sizeof run_files / sizeof run_files[0]; i++) {
        size_t len = strlen(run_files[i]);
        const char *tail = name + len + 5;
        if (strncmp(name, run_files[i], len) != 0 || strncmp(name + len, ".tmp.", 5) != 0 || strlen(tail) != 6)
            continue;
        for (int k = 0; k < 6; k++)
            if (!isalnum((unsigned char)tail[k]))
                return false;
        return true;
    }
    return false;
}

rb_status rb_run_dir_remove_stale(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    rb_status s = RB_OK;
    if (d == NULL)
        return rb_error_set(RB_ERR_IO, "cannot list the run folder %s: %s", dir, strerror(errno));
    while (s == RB_OK && (e = readdir(d)) != NULL) {
        char path[4200];
        struct stat st;
        if (!is_stale_temp(e->d_name))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (unlink(path) != 0 && errno != ENOENT)
            s = rb_error_set(RB_ERR_IO, "cannot remove the stale temporary file %s: %s", path, strerror(errno));
        else
            rb_log(RB_LOG_INFO, "removed %s, left by a run that was killed while writing", path);
    }
    closedir(d);
    return s;
}

/* ------------------------------------------------------------ run id */

rb_status rb_run_id_new(char *out)
{
    unsigned char bytes[RB_RUN_ID_LEN / 2];
    size_t got = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rb_error_set(RB_ERR_IO, "cannot open /dev/urandom for a run id: %s", strerror(errno));
    while (got < sizeof bytes) {
        ssize_t n = read(fd, bytes + got, sizeof bytes - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            close(fd);
            return rb_error_set(RB_ERR_IO, "cannot read /dev/urandom for a run id: %s", strerror(err));
        }
        got += (size_t)n;
    }
    close(fd);
    for (size_t i = 0; i < sizeof bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", bytes[i]);
    return RB_OK;
}

/* ------------------------------------------------------------ logs at resume */

/* The epoch of one CSV row with `columns` columns; NULL, or what is wrong. */
static const char *csv_row_epoch(const char *line, size_t len, int columns, int64_t *epoch)
{
    int commas = 0;
    char *end;
    long long v;
    for (size_t i = 0; i < len; i++)
        commas += line[i] == ',';
    if (commas + 1 != columns)
        return "has another number of columns than the header";
    if (len == 0 || !isdigit((unsigned char)line[0]))
        return "does not begin with an epoch number";
    errno = 0;
    v = strtoll(line, &end, 10);
    if (errno != 0 || *end != ',' || v < 1)
        return "does not begin with an epoch number";
    *epoch = v;
    return NULL;
}

/* The epoch of one JSON-lines row; NULL, or what is wrong. */
static const char *jsonl_row_epoch(const char *line, size_t len, bool adversarial, int64_t *epoch)
{
    json_tokener *tok = json_tokener_new();
    json_object *o, *v;
    const char *what = NULL;
    if (tok == NULL)
        return "could not be read (out of memory)";
    o = json_tokener_parse_ex(tok, line, (int)len);
    if (o == NULL || json_tokener_get_error(tok) != json_tokener_success || (size_t)tok->char_offset != len ||
        !json_object_is_type(o, json_type_object))
        what = "is not one JSON object";
    else if (!json_object_object_get_ex(o, "epoch", &v) || !json_object_is_type(v, json_type_int) ||
             json_object_get_int64(v) < 1)
        what = "has no \"epoch\" number";
    else if (json_object_object_get_ex(o, "adv_train_acc", NULL) != adversarial)
        what = adversarial ? "is a standard run's row, but this run trains adversarially"
                           : "is an adversarial run's row, but this run trains on clean images";
    else
        *epoch = json_object_get_int64(v);
    json_object_put(o);
    json_tokener_free(tok);
    return what;
}

/* Appends "a-b" or "a" to a list of epochs (kept short). */
static void add_range(char *list, size_t size, int64_t a, int64_t b)
{
    size_t used = strlen(list);
    if (used + 40 >= size) {
        if (used + 5 < size && strcmp(list + used - 3, "...") != 0)
            snprintf(list + used, size - used, ", ...");
        return;
    }
    if (a == b)
        snprintf(list + used, size - used, "%s%lld", used ? ", " : "", (long long)a);
    else
        snprintf(list + used, size - used, "%s%lld-%lld", used ? ", " : "", (long long)a, (long long)b);
}

rb_status rb_run_log_reconcile(const char *path, const char *csv_header, bool adversarial, int64_t epoch,
                               char **kept, size_t *kept_len)
{
    unsigned char *data = NULL;
    size_t size = 0, pos = 0, keep = 0;
    int64_t line_no = 0, last = 0, next_expected = 1, dropped_from = 0, dropped_to = 0;
    int columns = 0;
    char missing[256] = "";
    rb_status s;

    *kept = NULL;
    *kept_len = 0;
    s = rb_file_read_all(path, (size_t)1 << 30, &data, &size);
    if (s == RB_ERR_NOT_FOUND || (s == RB_OK && size == 0)) {
        free(data);
        if (epoch > 0)
            rb_log(RB_LOG_WARN, "%s is %s: a new one starts after epoch %lld (epochs 1-%lld cannot be recovered)",
                   path, s == RB_OK ? "empty" : "missing", (long long)epoch, (long long)epoch);
        else if (s != RB_OK)
            rb_log(RB_LOG_WARN, "%s is missing: a new one starts", path);
        size = csv_header ? strlen(csv_header) : 0;
        if ((*kept = malloc(size + 1)) == NULL)
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for %s", path);
        memcpy(*kept, csv_header ? csv_header : "", size + 1);
        *kept_len = size;
        return RB_OK;
    }
    if (s != RB_OK)
        return s;
    while (pos < size) {
        const char *line = (const char *)data + pos, *nl = memchr(line, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - line) : size - pos;
        const char *what = NULL;
        int64_t e = 0;
        line_no++;
        if (nl == NULL)
            what = "is cut short (no end of line)";
        else if (csv_header != NULL && line_no == 1) {
            if (len + 1 != strlen(csv_header) || memcmp(line, csv_header, len) != 0)
                what = "is not this run's header";
            for (const char *c = csv_header; *c; c++)
                columns += *c == ',';
            columns++;
        } else {
            what = csv_header ? csv_row_epoch(line, len, columns, &e) : jsonl_row_epoch(line, len, adversarial, &e);
            if (what == NULL && e <= last)
                what = "repeats an epoch or goes back (rows must go up)";
        }
        if (what != NULL) {
            s = rb_error_set(RB_ERR_CORRUPT,
                             "%s line %lld %s: it is not this run's log; move it aside (mv %s %s.old) and resume "
                             "again to start a new one",
                             path, (long long)line_no, what, path, path);
            free(data);
            return s;
        }
        pos += len + 1;
        if (e == 0) { /* the header */
            keep = pos;
            continue;
        }
        last = e;
        if (e > epoch) {
            if (dropped_from == 0)
                dropped_from = e;
            dropped_to = e;
            continue;
        }
        if (e > next_expected)
            add_range(missing, sizeof missing, next_expected, e - 1);
        next_expected = e + 1;
        keep = pos;
    }
    if (next_expected <= epoch)
        add_range(missing, sizeof missing, next_expected, epoch);
    if (missing[0])
        rb_log(RB_LOG_WARN, "%s has no row for epoch%s %s (lost before this resume, not recoverable): keeping the "
               "rows it has", path, strchr(missing, '-') || strchr(missing, ',') ? "s" : "", missing);
    if (dropped_from > 0) {
        char range[64] = "";
        add_range(range, sizeof range, dropped_from, dropped_to);
        rb_log(RB_LOG_WARN, "%s has rows for epoch%s %s, past last.rbt's epoch %lld: dropped, as %s redone", path,
               dropped_from == dropped_to ? "" : "s", range, (long long)epoch,
               dropped_from == dropped_to ? "that epoch is" : "those epochs are");
    }
    {
        char *t = realloc(data, keep + 1); /* keep <= size */
        if (t == NULL) {
            free(data);
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for %s", path);
        }
        t[keep] = '\0';
        *kept = t;
        *kept_len = keep;
    }
    return RB_OK;
}
