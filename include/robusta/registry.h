/* robusta/registry.h: finding, checking and looking up plugins (host side).
 *
 *     rb_registry *reg;
 *     rb_registry_create(&reg);
 *     rb_registry_load_default(reg);          // RB_PLUGIN_PATH, then plugindir
 *     const rb_plugin *pgd;
 *     if (rb_registry_find(reg, RB_PLUGIN_ATTACK, "pgd-l2", &pgd) != RB_OK)
 *         fprintf(stderr, "%s\n", rb_last_error()); // ...; did you mean 'pgd-linf'?
 *     ...
 *     rb_registry_destroy(reg);               // closes the shared objects
 *
 * Refused plugins do not stop a scan: each refusal is logged as a warning and
 * kept, so that `robusta plugins` can list what was refused and why.
 *
 * Scanning never runs a plugin's code in the calling process: each file is
 * opened and checked in a child process (fork, dlopen, check, _exit), so a
 * constructor that crashes, calls exit() or hangs is refused with the reason
 * instead of taking the caller down. The child is given
 * RB_PLUGIN_SCAN_TIMEOUT seconds (default 5). Verdicts are cached by path,
 * device, inode, size, mtime and ctime in RB_PLUGIN_CACHE (default
 * $XDG_CACHE_HOME/robusta/plugin-scan or ~/.cache/robusta/plugin-scan;
 * "off" for none). A plugin is opened in the calling process only when it is
 * first used: rb_registry_find or rb_registry_get. The scan forks: call it
 * before starting threads that hold locks the child could need.
 *
 * Environment: RB_PLUGIN_PATH (folders searched first), RB_PLUGIN_NO_INSTALL_DIR
 * (set, and not "0": the install folder is not searched; the test suite sets
 * it so that an installed robusta does not change its results),
 * RB_PLUGIN_SCAN_TIMEOUT and RB_PLUGIN_CACHE.
 */
#ifndef ROBUSTA_REGISTRY_H
#define ROBUSTA_REGISTRY_H

#include <stddef.h>
#include <robusta/plugin.h>
#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rb_registry rb_registry;

RB_API rb_status rb_registry_create(rb_registry **out);
/* Closes every plugin; descriptors from it become invalid. Accepts NULL. */
RB_API void rb_registry_destroy(rb_registry *registry);

/* Scans one file (a dangling symlink is refused, naming its target). On refusal returns RB_ERR_PLUGIN (RB_ERR_NOT_FOUND when the
 * file is missing) with the one-line reason in rb_last_error(), and records
 * the refusal. */
RB_API rb_status rb_registry_load_file(rb_registry *registry, const char *path);

/* Loads every "*.so" file of a folder, in name order. Refusals are recorded
 * and logged, not returned: the status reports only whether the folder
 * itself could be read (a folder writable by group or others is refused). */
RB_API rb_status rb_registry_load_dir(rb_registry *registry, const char *dir);

/* Loads the folders of `path_list` (colon-separated; empty entries skipped),
 * then the install folder unless RB_PLUGIN_NO_INSTALL_DIR is set. Missing
 * folders are skipped quietly. */
RB_API rb_status rb_registry_load_path(rb_registry *registry, const char *path_list);

/* rb_registry_load_path(registry, getenv("RB_PLUGIN_PATH")). */
RB_API rb_status rb_registry_load_default(rb_registry *registry);

/* The process's shared registry, made on first use (thread-safe) with
 * rb_registry_load_default and kept until the process exits: what the
 * command line uses, and where the runtime finds plugins it needs itself
 * (the "classify" task that scores models with their own classifier).
 * NULL, with the reason in rb_last_error(), when it cannot be made. */
RB_API rb_registry *rb_registry_shared(void);

/* The install folder compiled in ($(pkglibdir)). */
RB_API const char *rb_registry_install_dir(void);

/* Looks a plugin up by kind and name, and opens it in this process if it is
 * not yet. An unknown name fails with RB_ERR_NOT_FOUND and the closest name
 * of that kind suggested; a plugin that cannot be opened (its file changed
 * since the scan and is now refused) fails with RB_ERR_PLUGIN, the refusal
 * recorded. */
RB_API rb_status rb_registry_find(const rb_registry *registry, rb_plugin_kind kind,
                                  const char *name, const rb_plugin **out);

/* Plugins found (scanned and accepted) in load order: index from 0 to
 * count - 1. rb_registry_get opens the plugin in this process if it is not
 * yet and returns its descriptor, or NULL when it cannot be opened (as for
 * rb_registry_find). */
RB_API size_t rb_registry_count(const rb_registry *registry);
RB_API const rb_plugin *rb_registry_get(const rb_registry *registry, size_t index);
/* The name and kind of a plugin found, without opening it. */
RB_API const char *rb_registry_name(const rb_registry *registry, size_t index);
RB_API rb_plugin_kind rb_registry_kind(const rb_registry *registry, size_t index);
/* The file a loaded plugin came from. */
RB_API const char *rb_registry_path(const rb_registry *registry, size_t index);

/* Refusals in the order they happened: the file and the one-line reason. */
RB_API size_t rb_registry_refusal_count(const rb_registry *registry);
RB_API const char *rb_registry_refusal_path(const rb_registry *registry, size_t index);
RB_API const char *rb_registry_refusal_reason(const rb_registry *registry, size_t index);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_REGISTRY_H */
