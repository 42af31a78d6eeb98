/* Checking plugin files without trusting them (plugin_scan.c), for the
 * registry (plugin.c). Not part of the API. */
#ifndef RB_RUNTIME_PLUGIN_SCAN_H
#define RB_RUNTIME_PLUGIN_SCAN_H

#include <stddef.h>
#include <sys/stat.h>

#include <robusta/plugin.h>

/* What identifies one version of a file: a file whose key changed is
 * scanned again. ctime moves on every write and chmod and cannot be set
 * back by its owner. */
typedef struct rb_scan_key {
    long long dev, ino, size, mtime_s, mtime_ns, ctime_s, ctime_ns;
} rb_scan_key;

void rb_scan_key_of(const struct stat *st, rb_scan_key *key);
int rb_scan_key_equal(const rb_scan_key *a, const rb_scan_key *b);

/* The verdict on one file. */
typedef struct rb_scan_result {
    int ok;               /* 1: a valid descriptor; 0: refused */
    int transient;        /* refused for a cause outside the file (fork failed): not cached */
    double timed_out;     /* refused for outliving this limit (s), else 0: a cached
                             timeout holds only while the limit is not raised */
    rb_plugin_kind kind;  /* when ok */
    char name[72];        /* when ok */
    char reason[768];     /* when refused: one line */
} rb_scan_result;

/* Opens `openable` (a path with a '/') in a child process that checks it
 * with rb_scan_check_handle and reports back; a child that crashes, exits
 * or outlives `timeout_s` seconds is killed and the file refused. */
void rb_scan_file(const char *openable, double timeout_s, rb_scan_result *out);

/* The seconds allowed to one file's scan: RB_PLUGIN_SCAN_TIMEOUT or 5. */
double rb_scan_timeout(void);

/* Checks the descriptor symbol of an opened plugin: that it is a data object
 * of the right alignment and size, then every field. Returns it, or NULL
 * with the reason in `why`. */
const rb_plugin *rb_scan_check_handle(void *handle, char *why, size_t size);

/* An ops table of this robusta's full size, of any kind. */
typedef union rb_plugin_ops_copy {
    rb_ops_header header;
    rb_arch_ops arch;
    rb_attack_ops attack;
    rb_task_ops task;
} rb_plugin_ops_copy;

/* Copies a checked descriptor's table (p->ops_size bytes) into `out`,
 * zero-filling what a shorter table lacks: its missing optional
 * callbacks read as NULL. */
void rb_scan_copy_ops(const rb_plugin *p, rb_plugin_ops_copy *out);

/* The persistent cache of verdicts, by path and key. */
typedef struct rb_scan_cache rb_scan_cache;

/* Reads the cache named by RB_PLUGIN_CACHE ("off" for none), or
 * $XDG_CACHE_HOME/robusta/plugin-scan, or ~/.cache/robusta/plugin-scan. A
 * missing, unreadable or malformed cache is an empty one. NULL only when
 * out of memory. */
rb_scan_cache *rb_scan_cache_open(void);
/* The cached verdict of `path` with `key`, copied to `out`; 0 when none,
 * or when it is a timeout under a smaller limit than `timeout_s`. */
int rb_scan_cache_get(const rb_scan_cache *cache, const char *path, const rb_scan_key *key,
                      double timeout_s, rb_scan_result *out);
void rb_scan_cache_put(rb_scan_cache *cache, const char *path, const rb_scan_key *key,
                       const rb_scan_result *result);
/* Writes the cache back (atomically) if it changed; failures are logged at
 * debug level only: the cache is an optimisation. */
void rb_scan_cache_flush(rb_scan_cache *cache);
void rb_scan_cache_close(rb_scan_cache *cache);

#endif /* RB_RUNTIME_PLUGIN_SCAN_H */
