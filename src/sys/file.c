/* Whole-file reads and crash-safe writes.
 *
 * Writers never touch the destination until the new contents are complete
 * and on disk: they write a temporary file in the same folder (so that
 * rename is atomic), fsync it, rename it over the destination and fsync the
 * folder so the rename itself survives a crash. On any failure the
 * temporary file is removed and the old destination is left as it was. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <robusta/status.h>

#include "sys/internal.h"

rb_status rb_file_open_regular(const char *path, FILE **out)
{
    struct stat st;
    int fd, flags;

    *out = NULL;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     * writer, forever; the type is checked on the open descriptor (no race
     * with a rename), and blocking reads are restored for regular files. */
    fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return rb_error_set(errno == ENOENT || errno == ENOTDIR ? RB_ERR_NOT_FOUND : RB_ERR_IO, "cannot open %s: %s",
                            path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return rb_error_set(RB_ERR_IO, "cannot read %s: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return rb_error_set(RB_ERR_IO, "%s is not a regular file (it is %s)", path,
                            S_ISDIR(st.st_mode)    ? "a folder"
                            : S_ISFIFO(st.st_mode) ? "a FIFO"
                            : S_ISCHR(st.st_mode)  ? "a character device"
                            : S_ISBLK(st.st_mode)  ? "a block device"
                            : S_ISSOCK(st.st_mode) ? "a socket"
                                                   : "not a plain file");
    }
    if ((flags = fcntl(fd, F_GETFL)) == -1 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == -1 ||
        (*out = fdopen(fd, "rb")) == NULL) {
        int err = errno;
        close(fd);
        return rb_error_set(RB_ERR_IO, "cannot read %s: %s", path, strerror(err));
    }
    return RB_OK;
}

rb_status rb_path_join(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%.60s/%.40s...: path longer than %zu bytes", dir, name,
                            size - 1);
    return RB_OK;
}

rb_status rb_user_cache_path(const char *name, char *out, size_t size)
{
    const char *base = getenv("XDG_CACHE_HOME");
    int n;
    if (base != NULL && base[0] == '/')
        n = snprintf(out, size, "%s/robusta/%s", base, name);
    else if ((base = getenv("HOME")) != NULL && base[0] == '/')
        n = snprintf(out, size, "%s/.cache/robusta/%s", base, name);
    else
        return rb_error_set(RB_ERR_NOT_FOUND, "no cache folder: neither XDG_CACHE_HOME nor HOME is an absolute path");
    if (n < 0 || (size_t)n >= size)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "the cache file %s is past %zu bytes of path", name, size - 1);
    return RB_OK;
}

rb_status rb_make_parent_folders(const char *file)
{
    char dir[PATH_MAX];
    if ((size_t)snprintf(dir, sizeof dir, "%s", file) >= sizeof dir)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%.60s...: path longer than %zu bytes", file, sizeof dir - 1);
    for (char *p = strchr(dir + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            rb_status s = rb_error_set(RB_ERR_IO, "cannot create the folder %s: %s", dir, strerror(errno));
            *p = '/';
            return s;
        }
        *p = '/';
    }
    return RB_OK;
}

rb_status rb_file_read_all(const char *path, size_t limit, unsigned char **data, size_t *size)
{
    FILE *f;
    struct stat st;
    unsigned char *buf;
    size_t len;
    rb_status s;

    *data = NULL;
    *size = 0;
    if ((s = rb_file_open_regular(path, &f)) != RB_OK)
        return s;
    if (fstat(fileno(f), &st) != 0) {
        int err = errno;
        fclose(f);
        return rb_error_set(RB_ERR_IO, "cannot read %s: %s", path, strerror(err));
    }
    if ((unsigned long long)st.st_size > limit) {
        fclose(f);
        return rb_error_set(RB_ERR_UNSUPPORTED, "%s is %lld bytes, more than the %zu this reader accepts", path,
                            (long long)st.st_size, limit);
    }
    len = (size_t)st.st_size;
    buf = malloc(len ? len : 1);
    if (buf == NULL) {
        fclose(f);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory reading %s (%zu bytes)", path, len);
    }
    if (fread(buf, 1, len, f) != len) {
        int err = ferror(f) ? errno : 0;
        fclose(f);
        free(buf);
        return rb_error_set(RB_ERR_IO, "cannot read %s: %s", path, err ? strerror(err) : "file shrank while reading");
    }
    fclose(f);
    *data = buf;
    *size = len;
    return RB_OK;
}

rb_status rb_atomic_file_open(rb_atomic_file *af, const char *path)
{
    int fd;
    size_t n = strlen(path);
    memset(af, 0, sizeof *af);
    if (n == 0 || n + 16 > sizeof af->tmp_path || n >= sizeof af->path)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "output path '%s' is empty or too long", path);
    memcpy(af->path, path, n + 1);
    snprintf(af->tmp_path, sizeof af->tmp_path, "%s.tmp.XXXXXX", path);
    fd = mkstemp(af->tmp_path);
    if (fd < 0)
        return rb_error_set(RB_ERR_IO, "cannot create a temporary file next to %s: %s", path, strerror(errno));
    /* mkstemp makes 0600; outputs are ordinary files, readable as umask allows. */
    {
        mode_t mask = umask(0);
        umask(mask);
        (void)fchmod(fd, 0666 & ~mask);
    }
    af->file = fdopen(fd, "wb");
    if (af->file == NULL) {
        int err = errno;
        close(fd);
        unlink(af->tmp_path);
        return rb_error_set(RB_ERR_IO, "cannot open %s: %s", af->tmp_path, strerror(err));
    }
    return RB_OK;
}

rb_status rb_atomic_file_write(rb_atomic_file *af, const void *data, size_t size)
{
    if (af->failed)
        return RB_ERR_IO;
    if (size && fwrite(data, 1, size, af->file) != size) {
        af->failed = 1;
        return rb_error_set(RB_ERR_IO, "cannot write %s: %s", af->path, strerror(errno));
    }
    return RB_OK;
}

void rb_atomic_file_abort(rb_atomic_file *af)
{
    if (af->file != NULL) {
        fclose(af->file);
        af->file = NULL;
        unlink(af->tmp_path);
    }
}

/* fsync of the folder that holds `path`, so that a rename into it is durable. */
static rb_status sync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int fd;
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return rb_error_set(RB_ERR_IO, "cannot open folder %s to sync it: %s", dir, strerror(errno));
    if (fsync(fd) != 0 && errno != EINVAL) {
        int err = errno;
        close(fd);
        return rb_error_set(RB_ERR_IO, "cannot sync folder %s: %s", dir, strerror(err));
    }
    close(fd);
    return RB_OK;
}

rb_status rb_atomic_file_commit(rb_atomic_file *af)
{
    int err = 0;
    if (af->file == NULL)
        return rb_error_set(RB_ERR_INTERNAL, "atomic file %s committed twice", af->path);
    if (af->failed) {
        rb_atomic_file_abort(af);
        return RB_ERR_IO;
    }
    if (fflush(af->file) != 0 || fsync(fileno(af->file)) != 0)
        err = errno;
    if (fclose(af->file) != 0 && err == 0)
        err = errno;
    af->file = NULL;
    if (err != 0) {
        unlink(af->tmp_path);
        return rb_error_set(RB_ERR_IO, "cannot write %s: %s", af->path, strerror(err));
    }
    if (rename(af->tmp_path, af->path) != 0) {
        err = errno;
        unlink(af->tmp_path);
        return rb_error_set(RB_ERR_IO, "cannot replace %s: %s", af->path, strerror(err));
    }
    return sync_parent(af->path);
}

rb_status rb_file_write_atomic(const char *path, const void *data, size_t size)
{
    rb_atomic_file af;
    rb_status s = rb_atomic_file_open(&af, path);
    if (s != RB_OK)
        return s;
    s = rb_atomic_file_write(&af, data, size);
    if (s != RB_OK) {
        rb_atomic_file_abort(&af);
        return s;
    }
    return rb_atomic_file_commit(&af);
}
