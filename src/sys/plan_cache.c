/* The plan cache file (see plan_cache.h): read strictly, written merged
 * under a lock and replaced atomically. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <robusta/log.h>

#include "sys/internal.h"
#include "sys/json.h"
#include "sys/plan_cache.h"

struct rb_plan_cache {
    char path[PATH_MAX];
    char *machine;
    json_object *plans; /* this machine's plans: the file's, then what was put */
    json_object *added; /* what was put since opening, laid over the file when saving */
    bool foreign;       /* the file is not ours to replace (another version, unreadable): never written */
};

bool rb_plan_text_ok(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (s[n] < 0x20 || s[n] > 0x7e)
            return false;
    return n >= 1 && n <= RB_PLAN_CACHE_MAX_TEXT;
}

rb_status rb_plan_cache_parse(const char *text, size_t size, const char *what, json_object **root)
{
    rb_json_error err;
    json_object *o = NULL, *v, *machines;
    rb_status s = RB_OK;
    *root = NULL;
    switch (rb_json_parse_object(text, size, 4, &o, &err)) {
    case RB_JSON_OK: break;
    case RB_JSON_NO_MEMORY: return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    case RB_JSON_NOT_OBJECT:
        return rb_error_set(RB_ERR_CORRUPT, "%s: not a plan cache (the file is a JSON %s, not an object)", what,
                            err.kind);
    default: return rb_error_set(RB_ERR_CORRUPT, "%s: not valid JSON: %s at byte %zu", what, err.what, err.at);
    }
    if (!json_object_object_get_ex(o, "format", &v) || !json_object_is_type(v, json_type_string) ||
        strcmp(json_object_get_string(v), RB_PLAN_CACHE_FORMAT) != 0)
        s = rb_error_set(RB_ERR_UNSUPPORTED, "%s: not a robusta plan cache (its \"format\" is not \"%s\")", what,
                         RB_PLAN_CACHE_FORMAT);
    else if (!json_object_object_get_ex(o, "version", &v) || !json_object_is_type(v, json_type_int))
        s = rb_error_set(RB_ERR_CORRUPT, "%s: \"version\" is missing or not an integer", what);
    else if (json_object_get_int64(v) != RB_PLAN_CACHE_VERSION)
        s = rb_error_set(RB_ERR_UNSUPPORTED, "%s: plan cache version %lld; this robusta reads version %d", what,
                         (long long)json_object_get_int64(v), RB_PLAN_CACHE_VERSION);
    else if (!json_object_object_get_ex(o, "machines", &machines) || !json_object_is_type(machines, json_type_object))
        s = rb_error_set(RB_ERR_CORRUPT, "%s: \"machines\" is missing or not an object", what);
    else {
        json_object_object_foreach(machines, machine, plans)
        {
            if (s != RB_OK)
                break;
            if (!rb_plan_text_ok(machine) || !json_object_is_type(plans, json_type_object)) {
                s = rb_error_set(RB_ERR_CORRUPT, "%s: machine '%.60s': %s", what, machine,
                                 rb_plan_text_ok(machine) ? "its plans are not an object"
                                                       : "a machine is 1 to 255 printable ASCII characters");
                break;
            }
            json_object_object_foreach(plans, key, choice)
            {
                if (!rb_plan_text_ok(key) || !json_object_is_type(choice, json_type_string) ||
                    !rb_plan_text_ok(json_object_get_string(choice))) {
                    s = rb_error_set(RB_ERR_CORRUPT,
                                     "%s: machine '%.60s', plan '%.60s': a key and its choice are strings of 1 to "
                                     "255 printable ASCII characters",
                                     what, machine, key);
                    break;
                }
            }
        }
    }
    if (s != RB_OK) {
        json_object_put(o);
        return s;
    }
    *root = o;
    return RB_OK;
}

/* The file's root, or NULL: missing (*why RB_OK), or unreadable, corrupt or
 * foreign (*why the status, the message set). */
static json_object *read_root(const char *path, rb_status *why)
{
    unsigned char *bytes = NULL;
    size_t size = 0;
    json_object *root = NULL;
    *why = rb_file_read_all(path, RB_PLAN_CACHE_LIMIT, &bytes, &size);
    if (*why == RB_ERR_NOT_FOUND) {
        rb_error_clear();
        *why = RB_OK;
        return NULL;
    }
    if (*why == RB_ERR_UNSUPPORTED) /* past the size limit */
        *why = RB_ERR_CORRUPT;
    if (*why == RB_OK)
        *why = rb_plan_cache_parse((const char *)bytes, size, path, &root);
    free(bytes);
    return root;
}

/* This machine's plans in a root (made where absent); NULL when out of memory. */
static json_object *machine_plans(json_object *root, const char *machine)
{
    json_object *machines, *plans;
    if (!json_object_object_get_ex(root, "machines", &machines))
        return NULL;
    if (json_object_object_get_ex(machines, machine, &plans))
        return plans;
    if ((plans = json_object_new_object()) == NULL || json_object_object_add(machines, machine, plans) != 0) {
        json_object_put(plans);
        return NULL;
    }
    return plans;
}

static json_object *empty_root(void)
{
    json_object *root = json_object_new_object();
    if (root == NULL)
        return NULL;
    if (json_object_object_add(root, "format", json_object_new_string(RB_PLAN_CACHE_FORMAT)) != 0 ||
        json_object_object_add(root, "version", json_object_new_int(RB_PLAN_CACHE_VERSION)) != 0 ||
        json_object_object_add(root, "machines", json_object_new_object()) != 0) {
        json_object_put(root);
        return NULL;
    }
    return root;
}

rb_status rb_plan_cache_open(rb_plan_cache **out, const char *path, const char *machine)
{
    rb_plan_cache *c;
    json_object *root, *plans;
    rb_status why;
    if (out == NULL || machine == NULL || !rb_plan_text_ok(machine))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "rb_plan_cache_open: a machine is 1 to 255 printable ASCII characters");
    *out = NULL;
    if ((c = calloc(1, sizeof *c)) == NULL || (c->machine = strdup(machine)) == NULL ||
        (c->added = json_object_new_object()) == NULL) {
        rb_plan_cache_close(c);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "plan cache: out of memory");
    }
    if (path == NULL && (path = getenv("RB_PLAN_CACHE")) != NULL && path[0] == '\0')
        path = NULL;
    if (path != NULL)
        snprintf(c->path, sizeof c->path, "%s", path);
    else if (rb_user_cache_path("plans.json", c->path, sizeof c->path) != RB_OK) {
        rb_log(RB_LOG_WARN, "plan cache: %s: plans are measured again next time", rb_last_error());
        rb_error_clear();
    }
    root = c->path[0] != '\0' ? read_root(c->path, &why) : NULL;
    if (c->path[0] != '\0' && why != RB_OK) {
        /* only a corrupt file is replaced: another version's, or one this user cannot read, is not ours */
        c->foreign = why != RB_ERR_CORRUPT;
        rb_log(RB_LOG_WARN, "%s; %s", rb_last_error(),
               c->foreign ? "not used, and left as it is (RB_PLAN_CACHE names another file)"
                          : "not used; it is replaced when plans are saved");
        rb_error_clear();
    }
    plans = root != NULL ? json_object_object_get(json_object_object_get(root, "machines"), machine) : NULL;
    c->plans = plans != NULL ? json_object_get(plans) : json_object_new_object();
    json_object_put(root);
    if (c->plans == NULL) {
        rb_plan_cache_close(c);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "plan cache: out of memory");
    }
    *out = c;
    return RB_OK;
}

const char *rb_plan_cache_get(const rb_plan_cache *c, const char *key)
{
    json_object *v;
    if (c == NULL || key == NULL || !json_object_object_get_ex(c->plans, key, &v))
        return NULL;
    return json_object_get_string(v);
}

rb_status rb_plan_cache_put(rb_plan_cache *c, const char *key, const char *choice)
{
    if (c == NULL || key == NULL || choice == NULL || !rb_plan_text_ok(key) || !rb_plan_text_ok(choice))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "plan cache: a key and its choice are strings of 1 to 255 printable ASCII characters");
    if (json_object_object_add(c->plans, key, json_object_new_string(choice)) != 0 ||
        json_object_object_add(c->added, key, json_object_new_string(choice)) != 0)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "plan cache: out of memory");
    return RB_OK;
}

/* Takes PATH.lock (flock, exclusive): -1 and the reason set when it cannot. */
static int take_lock(const char *path)
{
    char lock[PATH_MAX + 8];
    int fd;
    snprintf(lock, sizeof lock, "%s.lock", path);
    if ((fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        rb_error_set(RB_ERR_IO, "cannot create %s: %s", lock, strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX) != 0)
        if (errno != EINTR) {
            rb_error_set(RB_ERR_IO, "cannot lock %s: %s", lock, strerror(errno));
            close(fd);
            return -1;
        }
    return fd;
}

rb_status rb_plan_cache_save(rb_plan_cache *c)
{
    json_object *root = NULL, *plans;
    const char *text;
    rb_status s = RB_OK, why;
    int lock;
    if (c == NULL || c->path[0] == '\0' || c->foreign || json_object_object_length(c->added) == 0)
        return RB_OK;
    if (rb_make_parent_folders(c->path) != RB_OK || (lock = take_lock(c->path)) < 0) {
        rb_log(RB_LOG_WARN, "plan cache: %s: the plans are measured again next time", rb_last_error());
        rb_error_clear();
        return RB_OK;
    }
    /* what other writers saved meanwhile, then ours over it */
    root = read_root(c->path, &why);
    if (why == RB_ERR_UNSUPPORTED || why == RB_ERR_IO) {
        /* another version's file, or one this user cannot read: not ours to replace */
        if (why == RB_ERR_IO)
            rb_log(RB_LOG_WARN, "plan cache: %s: the plans are measured again next time", rb_last_error());
        c->foreign = true;
        rb_error_clear();
        close(lock);
        return RB_OK;
    }
    rb_error_clear();
    if (root == NULL && (root = empty_root()) == NULL)
        s = RB_ERR_OUT_OF_MEMORY;
    if (s == RB_OK && (plans = machine_plans(root, c->machine)) != NULL) {
        json_object_object_foreach(c->added, key, choice)
        {
            if (json_object_object_add(plans, key, json_object_get(choice)) != 0) {
                s = RB_ERR_OUT_OF_MEMORY;
                break;
            }
        }
    } else if (s == RB_OK)
        s = RB_ERR_OUT_OF_MEMORY;
    text = s == RB_OK ? json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE)
                      : NULL;
    if (s == RB_OK && text == NULL)
        s = RB_ERR_OUT_OF_MEMORY;
    if (s == RB_OK && rb_file_write_atomic(c->path, text, strlen(text)) != RB_OK) {
        rb_log(RB_LOG_WARN, "plan cache: %s: the plans are measured again next time", rb_last_error());
        rb_error_clear();
    } else if (s == RB_OK) {
        /* saved: a later save writes only what is put after it */
        json_object_put(c->added);
        if ((c->added = json_object_new_object()) == NULL)
            s = RB_ERR_OUT_OF_MEMORY;
    }
    close(lock);
    json_object_put(root);
    if (s != RB_OK)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "plan cache %s: out of memory saving", c->path);
    return RB_OK;
}

const char *rb_plan_cache_path(const rb_plan_cache *c)
{
    return c != NULL ? c->path : NULL;
}

void rb_plan_cache_close(rb_plan_cache *c)
{
    if (c == NULL)
        return;
    json_object_put(c->plans);
    json_object_put(c->added);
    free(c->machine);
    free(c);
}
