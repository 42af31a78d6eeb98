/* Decoded images kept at their own size (image_store.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <robusta/robusta.h>

#include "data/image.h"
#include "data/image_store.h"
#include "sys/internal.h"

#define STORE_PATH_MAX 8192

typedef struct table_entry {
    uint32_t height, width;
    uint64_t offset;
} table_entry;

struct rb_image_store {
    atomic_int owners;
    char *what;
    char *base;
    char **paths;
    size_t count;
    unsigned char *map; /* header, table, flags, pixels */
    size_t map_size;
    table_entry *table;
    unsigned char *flags;
    char cache_path[STORE_PATH_MAX];
    char rebuilt_because[160];
    atomic_int_fast64_t decoded_here;
};

/* ------------------------------------------------------------ layout */

static uint64_t round_up(uint64_t n, uint64_t to)
{
    return (n + to - 1) / to * to;
}

/* Offsets of a store of `count` images of the given sizes; false when the
 * pixels would not fit in memory. */
static bool lay_out(rb_image_store_header *h, table_entry *table, const int64_t *sizes, uint64_t count)
{
    uint64_t at;
    memset(h, 0, sizeof *h);
    memcpy(h->magic, RB_IMAGE_STORE_MAGIC, sizeof h->magic);
    h->format = RB_IMAGE_STORE_FORMAT;
    h->order = RB_IMAGE_STORE_ORDER;
    snprintf(h->version, sizeof h->version, "%s", rb_version_string());
    h->count = count;
    h->table_offset = sizeof *h;
    h->flags_offset = h->table_offset + count * sizeof(table_entry);
    h->pixels_offset = round_up(h->flags_offset + count, 64);
    at = h->pixels_offset;
    for (uint64_t k = 0; k < count; k++) {
        const uint64_t bytes = (uint64_t)sizes[2 * k] * (uint64_t)sizes[2 * k + 1] * 3;
        table[k].height = (uint32_t)sizes[2 * k];
        table[k].width = (uint32_t)sizes[2 * k + 1];
        table[k].offset = at;
        if (at > (uint64_t)SIZE_MAX / 2 - bytes)
            return false;
        at += bytes;
    }
    h->total = at > h->pixels_offset ? at : h->pixels_offset + 1;
    return true;
}

bool rb_image_store_check(const void *bytes, size_t size, uint64_t identity, uint64_t count, char *why,
                          size_t why_size)
{
    rb_image_store_header h;
    const unsigned char *b = bytes;
    uint64_t at;
#define STALE(...) (snprintf(why, why_size, __VA_ARGS__), false)
    if (size < sizeof h)
        return STALE("it is shorter than its header (%zu bytes)", size);
    memcpy(&h, b, sizeof h);
    if (memcmp(h.magic, RB_IMAGE_STORE_MAGIC, sizeof h.magic) != 0)
        return STALE("it is not a robusta image cache");
    if (h.order != RB_IMAGE_STORE_ORDER)
        return STALE("it was written on a machine of another byte order");
    if (h.format != RB_IMAGE_STORE_FORMAT)
        return STALE("it has store format %" PRIu32 ", not %u", h.format, RB_IMAGE_STORE_FORMAT);
    if (memchr(h.version, '\0', sizeof h.version) == NULL || strcmp(h.version, rb_version_string()) != 0)
        return STALE("another robusta version wrote it");
    if (h.count != count || h.identity != identity)
        return STALE("it holds other images, or the images changed since it was written");
    if (h.table_offset != sizeof h || h.flags_offset != h.table_offset + count * sizeof(table_entry) ||
        h.pixels_offset != round_up(h.flags_offset + count, 64) || h.total != size || h.pixels_offset > size)
        return STALE("its header's offsets are inconsistent (%zu bytes)", size);
    at = h.pixels_offset;
    for (uint64_t k = 0; k < count; k++) {
        table_entry e;
        memcpy(&e, b + h.table_offset + k * sizeof e, sizeof e);
        if (e.offset != at || e.height == 0 || e.width == 0 ||
            (uint64_t)e.height * e.width > (UINT64_C(1) << 28) ||
            (uint64_t)e.height * e.width * 3 > size - at)
            return STALE("entry %" PRIu64 " of its table is damaged", k);
        at += (uint64_t)e.height * e.width * 3;
        if (b[h.flags_offset + k] > 1)
            return STALE("flag %" PRIu64 " is damaged", k);
    }
    if (at != size && !(count == 0 || at == h.pixels_offset))
        return STALE("it is %zu bytes, not %" PRIu64, size, at);
    return true;
#undef STALE
}

/* ------------------------------------------------------------ opening */

static void store_free(rb_image_store *s)
{
    if (s == NULL)
        return;
    if (s->map != NULL)
        munmap(s->map, s->map_size);
    if (s->paths != NULL)
        for (size_t i = 0; i < s->count; i++)
            free(s->paths[i]);
    free(s->paths);
    free(s->what);
    free(s->base);
    free(s);
}

/* The identity of the files as they are now: the version, the format, and
 * each file's path, size and modification time. */
static rb_status identity_of(const rb_image_store *s, uint64_t *out)
{
    uint64_t h = RB_FNV1A_START;
    const uint32_t format = RB_IMAGE_STORE_FORMAT;
    h = rb_fnv1a(h, rb_version_string(), strlen(rb_version_string()) + 1);
    h = rb_fnv1a(h, &format, sizeof format);
    for (size_t i = 0; i < s->count; i++) {
        char path[STORE_PATH_MAX];
        struct stat st;
        int64_t stamp[3];
        rb_status r = rb_path_join(path, sizeof path, s->base, s->paths[i]);
        if (r != RB_OK)
            return r;
        if (stat(path, &st) != 0)
            return rb_error_set(errno == ENOENT ? RB_ERR_NOT_FOUND : RB_ERR_IO, "%s: cannot read it: %s", path,
                                strerror(errno));
        stamp[0] = (int64_t)st.st_size;
        stamp[1] = (int64_t)st.st_mtim.tv_sec;
        stamp[2] = (int64_t)st.st_mtim.tv_nsec;
        h = rb_fnv1a(h, s->paths[i], strlen(s->paths[i]) + 1);
        h = rb_fnv1a(h, stamp, sizeof stamp);
    }
    *out = h;
    return RB_OK;
}

/* Every image's size from its header. */
static rb_status probe_all(const rb_image_store *s, int64_t *sizes)
{
    for (size_t i = 0; i < s->count; i++) {
        char path[STORE_PATH_MAX];
        unsigned char *bytes = NULL;
        size_t n = 0;
        rb_status st = rb_path_join(path, sizeof path, s->base, s->paths[i]);
        if (st == RB_OK)
            st = rb_file_read_all(path, RB_IMAGE_FILE_LIMIT, &bytes, &n);
        if (st == RB_OK)
            st = rb_image_probe(bytes, n, RB_IMAGE_RGB, path, &sizes[2 * i], &sizes[2 * i + 1]);
        free(bytes);
        if (st != RB_OK)
            return st;
    }
    return RB_OK;
}

static void attach(rb_image_store *s)
{
    s->table = (table_entry *)(void *)(s->map + sizeof(rb_image_store_header));
    s->flags = s->map + ((const rb_image_store_header *)(void *)s->map)->flags_offset;
}

/* A cache file that matches: mapped shared, true. Anything else: false,
 * with the reason in s->rebuilt_because when a file was there. */
static bool reuse_cache(rb_image_store *s, uint64_t identity)
{
    struct stat st;
    void *map;
    int fd = open(s->cache_path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
        snprintf(s->rebuilt_because, sizeof s->rebuilt_because, "it is empty or not a regular file");
        close(fd);
        return false;
    }
    map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        snprintf(s->rebuilt_because, sizeof s->rebuilt_because, "it cannot be mapped: %s", strerror(errno));
        return false;
    }
    if (!rb_image_store_check(map, (size_t)st.st_size, identity, s->count, s->rebuilt_because,
                              sizeof s->rebuilt_because)) {
        munmap(map, (size_t)st.st_size);
        return false;
    }
    s->map = map;
    s->map_size = (size_t)st.st_size;
    attach(s);
    return true;
}

/* A new block laid out for `sizes`: a cache file written next to its
 * final name and renamed over it (so no reader ever sees half a header),
 * or anonymous memory. */
static rb_status create_block(rb_image_store *s, const int64_t *sizes, uint64_t identity)
{
    rb_image_store_header h;
    table_entry *table = malloc((s->count ? s->count : 1) * sizeof *table);
    rb_status st = RB_OK;
    if (table == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory laying out %s", s->what);
    if (!lay_out(&h, table, sizes, s->count)) {
        free(table);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: the decoded images would not fit in memory", s->what);
    }
    h.identity = identity;
    s->map_size = (size_t)h.total;
    if (s->cache_path[0] == '\0') {
        void *map = mmap(NULL, s->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
                         0);
        if (map == MAP_FAILED)
            st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: cannot reserve %zu bytes for the decoded images: %s",
                              s->what, s->map_size, strerror(errno));
        else
            s->map = map;
#ifdef MADV_HUGEPAGE
        /* fewer page faults as decoded images fill it (advice only: no error if refused) */
        if (s->map != NULL)
            (void)madvise(s->map, s->map_size, MADV_HUGEPAGE);
#endif
    } else {
        char tmp[STORE_PATH_MAX + 32];
        int fd;
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", s->cache_path, (long)getpid());
        fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            st = rb_error_set(RB_ERR_IO, "cannot create the image cache %s: %s; check --cache's folder", tmp,
                              strerror(errno));
        } else {
            void *map = MAP_FAILED;
            int err = ftruncate(fd, (off_t)s->map_size) != 0 ? errno : 0;
            if (err == 0) {
                map = mmap(NULL, s->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (map == MAP_FAILED)
                    err = errno;
            }
            close(fd);
            if (err == 0) {
                s->map = map;
                memcpy(s->map, &h, sizeof h);
                memcpy(s->map + h.table_offset, table, s->count * sizeof *table);
                if (rename(tmp, s->cache_path) != 0)
                    err = errno;
            }
            if (err != 0) {
                unlink(tmp);
                st = rb_error_set(RB_ERR_IO, "cannot write the image cache %s (%zu bytes): %s", s->cache_path,
                                  s->map_size, strerror(err));
            }
        }
    }
    if (st == RB_OK && s->cache_path[0] == '\0') {
        memcpy(s->map, &h, sizeof h);
        memcpy(s->map + h.table_offset, table, s->count * sizeof *table);
    }
    free(table);
    if (st == RB_OK)
        attach(s);
    return st;
}

rb_status rb_image_store_open(rb_image_store **out, const char *what, const char *base, const char *const *paths,
                              size_t count, const char *cache_dir, const char *name_key)
{
    rb_image_store *s;
    uint64_t identity = 0;
    rb_status st;
    *out = NULL;
    if (count > (SIZE_MAX / 2) / sizeof(table_entry))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: too many images (%zu)", what, count);
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for %s", what);
    atomic_init(&s->owners, 1);
    atomic_init(&s->decoded_here, 0);
    s->count = count;
    s->what = strdup(what);
    s->base = strdup(base);
    s->paths = calloc(count ? count : 1, sizeof *s->paths);
    if (s->what == NULL || s->base == NULL || s->paths == NULL) {
        store_free(s);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for %s", what);
    }
    for (size_t i = 0; i < count; i++)
        if ((s->paths[i] = strdup(paths[i])) == NULL) {
            store_free(s);
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the paths of %s", what);
        }
    if (cache_dir != NULL && cache_dir[0] != '\0') {
        struct stat dst;
        char name[64];
        if (stat(cache_dir, &dst) != 0 || !S_ISDIR(dst.st_mode)) {
            store_free(s);
            return rb_error_set(RB_ERR_NOT_FOUND, "cache folder %s %s; create it or give another (--cache)",
                                cache_dir, errno == ENOENT ? "does not exist" : "is not a folder");
        }
        snprintf(name, sizeof name, "robusta-images-%016" PRIx64 ".cache",
                 rb_fnv1a(RB_FNV1A_START, name_key, strlen(name_key)));
        if ((st = rb_path_join(s->cache_path, sizeof s->cache_path, cache_dir, name)) != RB_OK) {
            store_free(s);
            return st;
        }
        if ((st = identity_of(s, &identity)) != RB_OK) {
            store_free(s);
            return st;
        }
        if (reuse_cache(s, identity)) {
            *out = s;
            return RB_OK;
        }
    }
    {
        int64_t *sizes = malloc((count ? count : 1) * 2 * sizeof *sizes);
        if (sizes == NULL)
            st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the sizes of %s", what);
        else if ((st = probe_all(s, sizes)) == RB_OK)
            st = create_block(s, sizes, identity);
        free(sizes);
    }
    if (st != RB_OK) {
        store_free(s);
        return st;
    }
    *out = s;
    return RB_OK;
}

rb_image_store *rb_image_store_retain(rb_image_store *store)
{
    if (store != NULL)
        atomic_fetch_add(&store->owners, 1);
    return store;
}

void rb_image_store_release(rb_image_store *store)
{
    if (store != NULL && atomic_fetch_sub(&store->owners, 1) == 1)
        store_free(store);
}

/* ------------------------------------------------------------ access */

void rb_image_store_size(const rb_image_store *store, int64_t k, int64_t *height, int64_t *width)
{
    *height = store->table[k].height;
    *width = store->table[k].width;
}

rb_status rb_image_store_get(rb_image_store *store, int64_t k, const uint8_t **pixels, int64_t *height,
                             int64_t *width)
{
    const table_entry e = store->table[k];
    uint8_t *slot = store->map + e.offset;
    *height = e.height;
    *width = e.width;
    *pixels = slot;
    if (__atomic_load_n(&store->flags[k], __ATOMIC_ACQUIRE) == 0) {
        char path[STORE_PATH_MAX];
        rb_status st = rb_path_join(path, sizeof path, store->base, store->paths[k]);
        if (st == RB_OK)
            st = rb_image_read_into(path, slot, e.height, e.width);
        if (st != RB_OK)
            return st;
        __atomic_store_n(&store->flags[k], 1, __ATOMIC_RELEASE);
        atomic_fetch_add(&store->decoded_here, 1);
    }
    return RB_OK;
}

void rb_image_store_state_get(const rb_image_store *store, rb_image_store_state *out)
{
    int64_t ready = 0;
    for (size_t k = 0; k < store->count; k++)
        ready += __atomic_load_n(&store->flags[k], __ATOMIC_ACQUIRE) != 0;
    out->path = store->cache_path;
    out->images = (int64_t)store->count;
    out->ready = ready;
    out->decoded_here = atomic_load(&((rb_image_store *)store)->decoded_here);
    out->rebuilt_because = store->rebuilt_because;
}
