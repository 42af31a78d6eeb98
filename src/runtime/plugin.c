/* Plugin loader and registry (robusta/plugin.h, robusta/registry.h).
 *
 * Every check that can be made before running a plugin's code (permissions)
 * is made before dlopen. A file is then opened and checked in a child
 * process (plugin_scan.c), so that a constructor that crashes, exits or
 * hangs costs a refusal, not the command; the verdicts are cached. A plugin
 * is opened in this process only when it is first used (found by name, or
 * its descriptor asked for). Each refusal is one line: "plugin FILE refused:
 * REASON". */
#include "config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <robusta/log.h>
#include <robusta/registry.h>

#include "runtime/plugin_scan.h"
#include "sys/internal.h"

#ifndef RB_PLUGIN_DIR
#error "RB_PLUGIN_DIR must be defined by the build ($(pkglibdir))"
#endif

/* What callers get for an opened plugin: its descriptor, with the ops
 * pointing to a table of this robusta's full size (a shorter table's
 * missing callbacks read as NULL). */
typedef struct plugin_copy {
    rb_plugin descriptor;
    rb_plugin_ops_copy ops;
} plugin_copy;

/* A file whose scan found a valid descriptor. handle and plugin stay NULL
 * until the plugin is first used; failed is set when opening it in this
 * process then failed (the refusal is recorded). */
typedef struct loaded_plugin {
    char *path;
    char *name;
    rb_plugin_kind kind;
    rb_scan_key key;
    void *handle;
    const rb_plugin *plugin; /* &copy->descriptor once opened */
    struct plugin_copy *copy;
    int failed;
    int from_install_dir;
} loaded_plugin;

typedef struct refusal {
    char *path;
    char *reason;
} refusal;

struct rb_registry {
    loaded_plugin *items;
    size_t count, capacity;
    refusal *refusals;
    size_t refusal_count, refusal_capacity;
    int scanning_install_dir; /* set while load_path reads the install folder */
    rb_scan_cache *cache;     /* opened by the first scan */
    pthread_mutex_t lock;     /* lookups open plugins: they may come from several threads */
};

/* dl_iterate_phdr's callback: whether the address in *data lies in a
 * loaded segment of the main program (the first object listed). */
static int in_main_program(struct dl_phdr_info *info, size_t size, void *data)
{
    uintptr_t address = *(const uintptr_t *)data;
    (void)size;
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = (uintptr_t)info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && address >= start && address - start < ph->p_memsz)
            return 2;
    }
    return 1; /* stop after the main program either way */
}

const char *rb_plugin_path(const rb_plugin *plugin)
{
    Dl_info info;
    uintptr_t address;
    /* The descriptor callers hold is a copy; its strings lie in the plugin.
     * A descriptor the program defines itself comes from no plugin file. */
    if (plugin == NULL || plugin->name == NULL || dladdr(plugin->name, &info) == 0 || info.dli_fname == NULL ||
        info.dli_fname[0] == '\0')
        return NULL;
    address = (uintptr_t)plugin->name;
    if (dl_iterate_phdr(in_main_program, &address) == 2)
        return NULL;
    return info.dli_fname;
}

const char *rb_plugin_kind_str(rb_plugin_kind kind)
{
    switch (kind) {
    case RB_PLUGIN_ARCH: return "arch";
    case RB_PLUGIN_ATTACK: return "attack";
    case RB_PLUGIN_TASK: return "task";
    }
    return "unknown";
}

const char *rb_registry_install_dir(void)
{
    return RB_PLUGIN_DIR;
}

rb_status rb_registry_create(rb_registry **out)
{
    *out = calloc(1, sizeof **out);
    if (*out == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "plugin registry: out of memory");
    pthread_mutex_init(&(*out)->lock, NULL);
    return RB_OK;
}

void rb_registry_destroy(rb_registry *reg)
{
    if (reg == NULL)
        return;
    for (size_t i = 0; i < reg->count; i++) {
        if (reg->items[i].handle != NULL)
            dlclose(reg->items[i].handle);
        free(reg->items[i].copy);
        free(reg->items[i].path);
        free(reg->items[i].name);
    }
    rb_scan_cache_close(reg->cache);
    pthread_mutex_destroy(&reg->lock);
    for (size_t i = 0; i < reg->refusal_count; i++) {
        free(reg->refusals[i].path);
        free(reg->refusals[i].reason);
    }
    free(reg->items);
    free(reg->refusals);
    free(reg);
}

/* Grows an array of `size`-byte items to hold one more. */
static int grow(void **items, size_t *capacity, size_t count, size_t size)
{
    void *bigger;
    size_t want;
    if (count < *capacity)
        return 1;
    want = *capacity ? *capacity * 2 : 8;
    bigger = realloc(*items, want * size);
    if (bigger == NULL)
        return 0;
    *items = bigger;
    *capacity = want;
    return 1;
}

/* Records a refusal, sets the thread's error to it and returns RB_ERR_PLUGIN.
 * `quiet` logs it at debug level instead of warning (a user's plugin
 * shadowing an installed one of the same name). */
static rb_status refuse(rb_registry *reg, const char *path, int quiet, const char *fmt, ...)
    RB_PRINTF(4, 5);

static rb_status refuse(rb_registry *reg, const char *path, int quiet, const char *fmt, ...)
{
    char reason[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (grow((void **)&reg->refusals, &reg->refusal_capacity, reg->refusal_count,
             sizeof *reg->refusals)) {
        refusal *r = &reg->refusals[reg->refusal_count];
        r->path = rb_strdup(path);
        r->reason = rb_strdup(reason);
        if (r->path != NULL && r->reason != NULL)
            reg->refusal_count++;
        else {
            free(r->path);
            free(r->reason);
        }
    }
    rb_log(quiet ? RB_LOG_DEBUG : RB_LOG_WARN, "plugin %s refused: %s", path, reason);
    return rb_error_set(RB_ERR_PLUGIN, "plugin %s refused: %s", path, reason);
}

/* Refuses paths whose file or folder others could have rewritten: we are
 * about to run code from them. */
static int writable_by_others(const struct stat *st)
{
    return (st->st_mode & (S_IWGRP | S_IWOTH)) != 0;
}

static void folder_of(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(out, size, ".");
    else if (slash == path)
        snprintf(out, size, "/");
    else
        snprintf(out, size, "%.*s", (int)(slash - path), path);
}

/* Room for a reason naming two paths. */
#define WHY_SIZE (3 * PATH_MAX + 256)

/* The reason a file must not be opened before any of its code runs (it or
 * its folder writable by others), written to `why`; 0 when there is none. */
static int unsafe_file(const char *path, const struct stat *st, char *why, size_t size)
{
    struct stat dir_st;
    char folder[PATH_MAX];
    folder_of(path, folder, sizeof folder);
    if (stat(folder, &dir_st) != 0) {
        snprintf(why, size, "cannot read its folder %s: %s", folder, strerror(errno));
        return 1;
    }
    if (writable_by_others(st)) {
        snprintf(why, size, "the file is writable by group or others (chmod go-w %s)", path);
        return 1;
    }
    if (writable_by_others(&dir_st)) {
        snprintf(why, size, "its folder %s is writable by group or others (chmod go-w %s)",
                 folder, folder);
        return 1;
    }
    return 0;
}

/* A name without '/' would be searched on the library path instead. */
static void openable_path(const char *path, char *out, size_t size)
{
    snprintf(out, size, "%s%s", strchr(path, '/') ? "" : "./", path);
}

/* The verdict on a file of key `key`: cached, or from a child's scan. */
static void scan(rb_registry *reg, const char *path, const rb_scan_key *key,
                 rb_scan_result *result)
{
    char openable[PATH_MAX + 2];
    double t0, limit = rb_scan_timeout();
    if (reg->cache == NULL)
        reg->cache = rb_scan_cache_open(); /* NULL (out of memory): no cache */
    if (rb_scan_cache_get(reg->cache, path, key, limit, result))
        return;
    openable_path(path, openable, sizeof openable);
    t0 = rb_monotonic_seconds();
    rb_scan_file(openable, limit, result);
    rb_log(RB_LOG_DEBUG, "scanned plugin %s in %.1f ms", path, (rb_monotonic_seconds() - t0) * 1e3);
    rb_scan_cache_put(reg->cache, path, key, result);
}

static rb_status load_file(rb_registry *reg, const char *path)
{
    struct stat st, link_st;
    char why[WHY_SIZE];
    rb_scan_key key;
    rb_scan_result result;
    loaded_plugin *item;

    if (stat(path, &st) != 0) {
        int err = errno;
        if (err == ENOENT && lstat(path, &link_st) == 0 && S_ISLNK(link_st.st_mode)) {
            char target[PATH_MAX];
            ssize_t n = readlink(path, target, sizeof target - 1);
            target[n < 0 ? 0 : n] = '\0';
            return refuse(reg, path, 0, "dangling symlink to %s (remove it or install its target)",
                          target);
        }
        if (err == ENOENT)
            return rb_error_set(RB_ERR_NOT_FOUND, "plugin %s: no such file", path);
        return refuse(reg, path, 0, "cannot read it: %s", strerror(err));
    }
    if (!S_ISREG(st.st_mode))
        return refuse(reg, path, 0, "not a regular file");
    if (unsafe_file(path, &st, why, sizeof why))
        return refuse(reg, path, 0, "%s", why);
    for (size_t i = 0; i < reg->count; i++)
        if (reg->items[i].key.dev == (long long)st.st_dev &&
            reg->items[i].key.ino == (long long)st.st_ino)
            return RB_OK; /* the same file reached twice (a folder listed twice) */

    rb_scan_key_of(&st, &key);
    scan(reg, path, &key, &result);
    if (!result.ok)
        return refuse(reg, path, 0, "%s", result.reason);
    for (size_t i = 0; i < reg->count; i++) {
        if (strcmp(reg->items[i].name, result.name) == 0) {
            /* A plugin on RB_PLUGIN_PATH overriding an installed one is
             * expected during development: still refused, but said quietly. */
            int shadowing = reg->scanning_install_dir && !reg->items[i].from_install_dir;
            snprintf(why, sizeof why, "duplicate plugin name '%s': already loaded from %s",
                     result.name, reg->items[i].path);
            return refuse(reg, path, shadowing, "%s", why);
        }
    }
    if (!grow((void **)&reg->items, &reg->capacity, reg->count, sizeof *reg->items))
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "plugin registry: out of memory");
    item = &reg->items[reg->count];
    memset(item, 0, sizeof *item);
    item->path = rb_strdup(path);
    item->name = rb_strdup(result.name);
    if (item->path == NULL || item->name == NULL) {
        free(item->path);
        free(item->name);
        return RB_ERR_OUT_OF_MEMORY;
    }
    item->kind = result.kind;
    item->key = key;
    item->from_install_dir = reg->scanning_install_dir;
    reg->count++;
    rb_log(RB_LOG_DEBUG, "found %s plugin '%s' in %s", rb_plugin_kind_str(result.kind),
           result.name, path);
    return RB_OK;
}

rb_status rb_registry_load_file(rb_registry *reg, const char *path)
{
    rb_status s = load_file(reg, path);
    rb_scan_cache_flush(reg->cache);
    return s;
}

/* Opens a scanned plugin in this process (the caller holds reg->lock).
 * A file changed since its scan is scanned again first. Returns NULL, with
 * the refusal recorded and in rb_last_error(), when that fails. */
static const rb_plugin *open_item(rb_registry *reg, loaded_plugin *item)
{
    struct stat st;
    rb_scan_key key;
    char openable[PATH_MAX + 2], why[WHY_SIZE];
    const rb_plugin *p;

    if (item->plugin != NULL)
        return item->plugin;
    if (item->failed) {
        rb_error_set(RB_ERR_PLUGIN, "plugin %s refused: it could not be loaded (see above)",
                     item->path);
        return NULL;
    }
    item->failed = 1; /* until it succeeds */
    if (stat(item->path, &st) != 0) {
        refuse(reg, item->path, 0, "it was removed since it was scanned (%s)", strerror(errno));
        return NULL;
    }
    rb_scan_key_of(&st, &key);
    if (!rb_scan_key_equal(&key, &item->key)) {
        rb_scan_result result;
        if (!S_ISREG(st.st_mode) || unsafe_file(item->path, &st, why, sizeof why)) {
            refuse(reg, item->path, 0, "changed since it was scanned: %s",
                   S_ISREG(st.st_mode) ? why : "not a regular file");
            return NULL;
        }
        scan(reg, item->path, &key, &result);
        rb_scan_cache_flush(reg->cache);
        if (!result.ok) {
            refuse(reg, item->path, 0, "changed since it was scanned: %s", result.reason);
            return NULL;
        }
        if (result.kind != item->kind || strcmp(result.name, item->name) != 0) {
            refuse(reg, item->path, 0, "changed since it was scanned: it is now %s plugin '%s'",
                   rb_plugin_kind_str(result.kind), result.name);
            return NULL;
        }
        item->key = key;
    }
    openable_path(item->path, openable, sizeof openable);
    item->handle = dlopen(openable, RTLD_NOW | RTLD_LOCAL);
    if (item->handle == NULL) {
        const char *err = dlerror();
        refuse(reg, item->path, 0, "not a robusta plugin: cannot load it as a shared object (%s)",
               err ? err : "unknown dlopen error");
        return NULL;
    }
    if ((p = rb_scan_check_handle(item->handle, why, sizeof why)) == NULL ||
        p->kind != item->kind || strcmp(p->name, item->name) != 0) {
        if (p != NULL)
            snprintf(why, sizeof why, "changed since it was scanned: it is now %s plugin '%s'",
                     rb_plugin_kind_str(p->kind), p->name);
        dlclose(item->handle);
        item->handle = NULL;
        refuse(reg, item->path, 0, "%s", why);
        return NULL;
    }
    if ((item->copy = malloc(sizeof *item->copy)) == NULL) {
        dlclose(item->handle);
        item->handle = NULL;
        rb_error_set(RB_ERR_OUT_OF_MEMORY, "plugin %s: out of memory", item->path);
        return NULL;
    }
    item->copy->descriptor = *p;
    rb_scan_copy_ops(p, &item->copy->ops);
    item->copy->descriptor.ops.header = &item->copy->ops.header;
    item->copy->descriptor.ops_size = (uint32_t)(p->kind == RB_PLUGIN_ARCH     ? sizeof(rb_arch_ops)
                                                 : p->kind == RB_PLUGIN_ATTACK ? sizeof(rb_attack_ops)
                                                                               : sizeof(rb_task_ops));
    p = item->plugin = &item->copy->descriptor;
    item->failed = 0;
    rb_log(RB_LOG_DEBUG, "loaded %s plugin '%s' %s from %s", rb_plugin_kind_str(p->kind), p->name,
           p->version, item->path);
    return p;
}

/* Lookups are const for callers; opening on first use is a cache. The
 * registry itself is always heap-allocated, so writing through it is
 * defined. */
static const rb_plugin *use_item(const rb_registry *creg, size_t i)
{
    rb_registry *reg = (rb_registry *)creg;
    const rb_plugin *p;
    pthread_mutex_lock(&reg->lock);
    p = open_item(reg, &reg->items[i]);
    pthread_mutex_unlock(&reg->lock);
    return p;
}

static int shared_object_filter(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 3 && strcmp(e->d_name + n - 3, ".so") == 0;
}

static rb_status load_dir(rb_registry *reg, const char *dir)
{
    struct stat st;
    struct dirent **entries;
    int n;

    if (stat(dir, &st) != 0) {
        if (errno == ENOENT)
            return rb_error_set(RB_ERR_NOT_FOUND, "plugin folder %s: no such folder", dir);
        return rb_error_set(RB_ERR_IO, "plugin folder %s: %s", dir, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return rb_error_set(RB_ERR_NOT_FOUND, "plugin folder %s: not a folder", dir);
    if (writable_by_others(&st))
        return refuse(reg, dir, 0,
                      "the folder is writable by group or others (chmod go-w %s); none of its "
                      "plugins were loaded",
                      dir);
    n = scandir(dir, &entries, shared_object_filter, alphasort);
    if (n < 0)
        return rb_error_set(RB_ERR_IO, "plugin folder %s: %s", dir, strerror(errno));
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, entries[i]->d_name) < sizeof path)
            (void)load_file(reg, path); /* refusals are recorded and logged */
        free(entries[i]);
    }
    free(entries);
    rb_error_clear();
    return RB_OK;
}

rb_status rb_registry_load_dir(rb_registry *reg, const char *dir)
{
    rb_status s = load_dir(reg, dir);
    rb_scan_cache_flush(reg->cache);
    return s;
}

/* RB_PLUGIN_NO_INSTALL_DIR set (and not "0"): the install folder is not
 * searched, so that tests see only the plugins they name. */
static int install_dir_skipped(void)
{
    const char *v = getenv("RB_PLUGIN_NO_INSTALL_DIR");
    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

rb_status rb_registry_load_path(rb_registry *reg, const char *path_list)
{
    if (path_list != NULL) {
        const char *p = path_list;
        while (*p) {
            const char *colon = strchr(p, ':');
            size_t len = colon ? (size_t)(colon - p) : strlen(p);
            if (len > 0 && len < PATH_MAX) {
                char dir[PATH_MAX];
                memcpy(dir, p, len);
                dir[len] = '\0';
                if (load_dir(reg, dir) == RB_ERR_OUT_OF_MEMORY) {
                    rb_scan_cache_flush(reg->cache);
                    return RB_ERR_OUT_OF_MEMORY;
                }
            }
            if (colon == NULL)
                break;
            p = colon + 1;
        }
    }
    if (!install_dir_skipped()) {
        rb_status s;
        reg->scanning_install_dir = 1;
        s = load_dir(reg, RB_PLUGIN_DIR);
        reg->scanning_install_dir = 0;
        if (s == RB_ERR_OUT_OF_MEMORY) {
            rb_scan_cache_flush(reg->cache);
            return s;
        }
    }
    rb_scan_cache_flush(reg->cache);
    rb_error_clear();
    return RB_OK;
}

rb_status rb_registry_load_default(rb_registry *reg)
{
    return rb_registry_load_path(reg, getenv("RB_PLUGIN_PATH"));
}

static rb_registry *shared_registry;
static rb_status shared_status;
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;

static void make_shared(void)
{
    rb_registry *r;
    if ((shared_status = rb_registry_create(&r)) != RB_OK)
        return;
    if ((shared_status = rb_registry_load_default(r)) != RB_OK) {
        rb_registry_destroy(r);
        return;
    }
    shared_registry = r;
}

rb_registry *rb_registry_shared(void)
{
    pthread_once(&shared_once, make_shared);
    if (shared_registry == NULL)
        rb_error_set(shared_status, "the shared plugin registry could not be made (RB_PLUGIN_PATH and %s)",
                     rb_registry_install_dir());
    return shared_registry;
}

rb_status rb_registry_find(const rb_registry *reg, rb_plugin_kind kind, const char *name,
                           const rb_plugin **out)
{
    const char *names[256];
    size_t n = 0;
    const char *near;

    *out = NULL;
    for (size_t i = 0; i < reg->count; i++) {
        const loaded_plugin *item = &reg->items[i];
        if (item->kind != kind)
            continue;
        if (strcmp(item->name, name) == 0) {
            *out = use_item(reg, i);
            return *out != NULL ? RB_OK : RB_ERR_PLUGIN;
        }
        if (n < 256)
            names[n++] = item->name;
    }
    near = rb_suggest(name, names, n);
    if (near != NULL)
        return rb_error_set(RB_ERR_NOT_FOUND, "unknown %s plugin '%s'; did you mean '%s'?",
                            rb_plugin_kind_str(kind), name, near);
    return rb_error_set(RB_ERR_NOT_FOUND,
                        "unknown %s plugin '%s' (robusta plugins lists those found; "
                        "RB_PLUGIN_PATH adds folders)",
                        rb_plugin_kind_str(kind), name);
}

size_t rb_registry_count(const rb_registry *reg) { return reg->count; }

const rb_plugin *rb_registry_get(const rb_registry *reg, size_t i)
{
    return i < reg->count ? use_item(reg, i) : NULL;
}

const char *rb_registry_name(const rb_registry *reg, size_t i)
{
    return i < reg->count ? reg->items[i].name : NULL;
}

rb_plugin_kind rb_registry_kind(const rb_registry *reg, size_t i)
{
    return i < reg->count ? reg->items[i].kind : (rb_plugin_kind)0;
}

const char *rb_registry_path(const rb_registry *reg, size_t i)
{
    return i < reg->count ? reg->items[i].path : NULL;
}

size_t rb_registry_refusal_count(const rb_registry *reg) { return reg->refusal_count; }

const char *rb_registry_refusal_path(const rb_registry *reg, size_t i)
{
    return i < reg->refusal_count ? reg->refusals[i].path : NULL;
}

const char *rb_registry_refusal_reason(const rb_registry *reg, size_t i)
{
    return i < reg->refusal_count ? reg->refusals[i].reason : NULL;
}
