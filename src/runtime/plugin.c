/* Plugin loader and registry (robusta/plugin.h, robusta/registry.h).
 *
 * Every check that can be made before running a plugin's code (permissions)
 * is made before dlopen; everything else before the plugin is used. Each
 * refusal is one line: "plugin FILE refused: REASON". */
#include "config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <robusta/log.h>
#include <robusta/registry.h>

#include "sys/internal.h"

#ifndef RB_PLUGIN_DIR
#error "RB_PLUGIN_DIR must be defined by the build ($(pkglibdir))"
#endif

typedef struct loaded_plugin {
    char *path;
    void *handle;
    const rb_plugin *plugin;
    dev_t dev;
    ino_t ino;
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
};

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
    return RB_OK;
}

void rb_registry_destroy(rb_registry *reg)
{
    if (reg == NULL)
        return;
    for (size_t i = 0; i < reg->count; i++) {
        dlclose(reg->items[i].handle);
        free(reg->items[i].path);
    }
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

static int valid_plugin_name(const char *name)
{
    size_t n = 0;
    if (name == NULL || name[0] == '\0')
        return 0;
    for (const char *c = name; *c; c++, n++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_'))
            return 0;
    return n <= 64;
}

static size_t expected_ops_size(rb_plugin_kind kind)
{
    switch (kind) {
    case RB_PLUGIN_ARCH: return sizeof(rb_arch_ops);
    case RB_PLUGIN_ATTACK: return sizeof(rb_attack_ops);
    case RB_PLUGIN_TASK: return sizeof(rb_task_ops);
    }
    return 0;
}

/* The first required callback that is NULL, or NULL when all are there. */
static const char *missing_callback(const rb_plugin *p)
{
    switch (p->kind) {
    case RB_PLUGIN_ARCH: {
        const rb_arch_ops *ops = p->ops;
        return ops->build == NULL ? "build" : NULL;
    }
    case RB_PLUGIN_ATTACK: {
        const rb_attack_ops *ops = p->ops;
        if (ops->run != NULL)
            return NULL;
        if (ops->random_start == NULL && ops->step == NULL && ops->project == NULL)
            return "run (or random_start, step and project)";
        if (ops->random_start == NULL)
            return "random_start";
        if (ops->step == NULL)
            return "step";
        if (ops->project == NULL)
            return "project";
        return NULL;
    }
    case RB_PLUGIN_TASK: {
        const rb_task_ops *ops = p->ops;
        if (ops->build_head == NULL)
            return "build_head";
        if (ops->build_loss == NULL)
            return "build_loss";
        if (ops->metrics_create == NULL)
            return "metrics_create";
        if (ops->metrics_accumulate == NULL)
            return "metrics_accumulate";
        if (ops->metrics_finalize == NULL)
            return "metrics_finalize";
        if (ops->metrics_destroy == NULL)
            return "metrics_destroy";
        return NULL;
    }
    }
    return "ops";
}

/* Checks a descriptor; on failure writes the reason into `why`. */
static int descriptor_ok(const rb_plugin *p, char *why, size_t size)
{
    const char *missing;
    if (p->abi_version != RB_PLUGIN_ABI_VERSION) {
        snprintf(why, size,
                 "built for plugin ABI %u, but robusta %s loads ABI %u: rebuild it against "
                 "this robusta's headers",
                 p->abi_version, RB_VERSION_STRING, RB_PLUGIN_ABI_VERSION);
        return 0;
    }
    if (p->struct_size != sizeof(rb_plugin)) {
        snprintf(why, size,
                 "descriptor size is %u bytes, but ABI %u's is %zu: rebuild it against this "
                 "robusta's headers",
                 p->struct_size, RB_PLUGIN_ABI_VERSION, sizeof(rb_plugin));
        return 0;
    }
    if (p->kind != RB_PLUGIN_ARCH && p->kind != RB_PLUGIN_ATTACK && p->kind != RB_PLUGIN_TASK) {
        snprintf(why, size, "unknown plugin kind %d (1 arch, 2 attack and 3 task are known)",
                 (int)p->kind);
        return 0;
    }
    if (!valid_plugin_name(p->name)) {
        snprintf(why, size, "plugin name '%s' is not 1-64 lower-case letters, digits, '-' or '_'",
                 p->name ? p->name : "(null)");
        return 0;
    }
    if (p->version == NULL || p->summary == NULL) {
        snprintf(why, size, "'%s' has no %s", p->name, p->version == NULL ? "version" : "summary");
        return 0;
    }
    if (p->params != NULL && rb_param_specs_validate(p->params) != RB_OK) {
        snprintf(why, size, "'%s' declares a bad parameter table: %s", p->name, rb_last_error());
        return 0;
    }
    if (p->ops == NULL) {
        snprintf(why, size, "'%s' has no ops table", p->name);
        return 0;
    }
    if (p->ops_size != expected_ops_size(p->kind)) {
        snprintf(why, size,
                 "'%s': its %s ops table is %u bytes, but ABI %u's is %zu: rebuild it against "
                 "this robusta's headers",
                 p->name, rb_plugin_kind_str(p->kind), p->ops_size, RB_PLUGIN_ABI_VERSION,
                 expected_ops_size(p->kind));
        return 0;
    }
    if (p->kind == RB_PLUGIN_TASK) {
        const rb_task_ops *ops = p->ops;
        if (ops->dataset_kind < RB_DATASET_CLASSIFICATION ||
            ops->dataset_kind > RB_DATASET_SEGMENTATION) {
            snprintf(why, size, "'%s' asks for unknown dataset kind %d", p->name,
                     (int)ops->dataset_kind);
            return 0;
        }
    }
    if ((missing = missing_callback(p)) != NULL) {
        snprintf(why, size, "'%s' lacks the required %s callback %s", p->name,
                 rb_plugin_kind_str(p->kind), missing);
        return 0;
    }
    return 1;
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

rb_status rb_registry_load_file(rb_registry *reg, const char *path)
{
    struct stat st, dir_st;
    char folder[PATH_MAX], openable[PATH_MAX + 2], why[1024];
    void *handle;
    const rb_plugin *p;
    loaded_plugin *item;

    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            return rb_error_set(RB_ERR_NOT_FOUND, "plugin %s: no such file", path);
        return refuse(reg, path, 0, "cannot read it: %s", strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        return refuse(reg, path, 0, "not a regular file");
    folder_of(path, folder, sizeof folder);
    if (stat(folder, &dir_st) != 0)
        return refuse(reg, path, 0, "cannot read its folder %s: %s", folder, strerror(errno));
    if (writable_by_others(&st))
        return refuse(reg, path, 0, "the file is writable by group or others (chmod go-w %s)",
                      path);
    if (writable_by_others(&dir_st))
        return refuse(reg, path, 0,
                      "its folder %s is writable by group or others (chmod go-w %s)", folder,
                      folder);
    for (size_t i = 0; i < reg->count; i++)
        if (reg->items[i].dev == st.st_dev && reg->items[i].ino == st.st_ino)
            return RB_OK; /* the same file reached twice (a folder listed twice) */

    /* A name without '/' would be searched on the library path instead. */
    snprintf(openable, sizeof openable, "%s%s", strchr(path, '/') ? "" : "./", path);
    handle = dlopen(openable, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *err = dlerror();
        return refuse(reg, path, 0, "not a robusta plugin: cannot load it as a shared object (%s)",
                      err ? err : "unknown dlopen error");
    }
    p = dlsym(handle, RB_PLUGIN_SYMBOL);
    if (p == NULL) {
        dlclose(handle);
        return refuse(reg, path, 0, "not a robusta plugin: it exports no %s symbol",
                      RB_PLUGIN_SYMBOL);
    }
    if (!descriptor_ok(p, why, sizeof why)) {
        dlclose(handle);
        return refuse(reg, path, 0, "%s", why);
    }
    for (size_t i = 0; i < reg->count; i++) {
        if (strcmp(reg->items[i].plugin->name, p->name) == 0) {
            /* A plugin on RB_PLUGIN_PATH overriding an installed one is
             * expected during development: still refused, but said quietly. */
            int shadowing = reg->scanning_install_dir && !reg->items[i].from_install_dir;
            snprintf(why, sizeof why, "duplicate plugin name '%s': already loaded from %s",
                     p->name, reg->items[i].path);
            dlclose(handle);
            return refuse(reg, path, shadowing, "%s", why);
        }
    }
    if (!grow((void **)&reg->items, &reg->capacity, reg->count, sizeof *reg->items)) {
        dlclose(handle);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "plugin registry: out of memory");
    }
    item = &reg->items[reg->count];
    item->path = rb_strdup(path);
    if (item->path == NULL) {
        dlclose(handle);
        return RB_ERR_OUT_OF_MEMORY;
    }
    item->handle = handle;
    item->plugin = p;
    item->dev = st.st_dev;
    item->ino = st.st_ino;
    item->from_install_dir = reg->scanning_install_dir;
    reg->count++;
    rb_log(RB_LOG_DEBUG, "loaded %s plugin '%s' %s from %s", rb_plugin_kind_str(p->kind), p->name,
           p->version, path);
    return RB_OK;
}

static int shared_object_filter(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 3 && strcmp(e->d_name + n - 3, ".so") == 0;
}

rb_status rb_registry_load_dir(rb_registry *reg, const char *dir)
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
            (void)rb_registry_load_file(reg, path); /* refusals are recorded and logged */
        free(entries[i]);
    }
    free(entries);
    rb_error_clear();
    return RB_OK;
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
                if (rb_registry_load_dir(reg, dir) == RB_ERR_OUT_OF_MEMORY)
                    return RB_ERR_OUT_OF_MEMORY;
            }
            if (colon == NULL)
                break;
            p = colon + 1;
        }
    }
    reg->scanning_install_dir = 1;
    if (rb_registry_load_dir(reg, RB_PLUGIN_DIR) == RB_ERR_OUT_OF_MEMORY) {
        reg->scanning_install_dir = 0;
        return RB_ERR_OUT_OF_MEMORY;
    }
    reg->scanning_install_dir = 0;
    rb_error_clear();
    return RB_OK;
}

rb_status rb_registry_load_default(rb_registry *reg)
{
    return rb_registry_load_path(reg, getenv("RB_PLUGIN_PATH"));
}

rb_status rb_registry_find(const rb_registry *reg, rb_plugin_kind kind, const char *name,
                           const rb_plugin **out)
{
    const char *names[256];
    size_t n = 0;
    const char *near;

    *out = NULL;
    for (size_t i = 0; i < reg->count; i++) {
        const rb_plugin *p = reg->items[i].plugin;
        if (p->kind != kind)
            continue;
        if (strcmp(p->name, name) == 0) {
            *out = p;
            return RB_OK;
        }
        if (n < 256)
            names[n++] = p->name;
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
    return i < reg->count ? reg->items[i].plugin : NULL;
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
