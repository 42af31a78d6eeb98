/* Execution plans a run measured, remembered for the next (issue 23): the
 * choice made for each op (its algorithm, precision, layout), keyed by the
 * machine that measured it and, within that, by the op's shape and
 * precision. Internal to the library.
 *
 * One JSON file holds every machine's plans, so that nodes of several kinds
 * sharing a home folder share one cache:
 *
 *   {"format": "robusta-plan-cache", "version": 1,
 *    "machines": {"MACHINE": {"KEY": "CHOICE", ...}, ...}}
 *
 * MACHINE names what makes a measurement hold (CPU model, ISA, threads,
 * oneDNN version); KEY and CHOICE are the caller's words. Both, and
 * MACHINE, are 1 to 255 printable ASCII characters.
 *
 * A cache never stops a run. Opening reads the file if there is one: a
 * missing file is an empty cache; a corrupt one is an empty cache with one
 * warning line, and is replaced when plans are saved; one of another
 * format or version, or one that cannot be read, is not used, with one
 * warning line, and is left as it is. Saving merges under a lock (PATH.lock, flock): the file is read
 * again, this cache's new plans are laid over it, and the result replaces
 * it atomically, so concurrent writers never corrupt it and each keeps
 * what the others saved. A folder that cannot be written is one warning
 * line; the plans are then measured again next time. */
#ifndef RB_SYS_PLAN_CACHE_H
#define RB_SYS_PLAN_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include <robusta/status.h>

#define RB_PLAN_CACHE_FORMAT "robusta-plan-cache"
#define RB_PLAN_CACHE_VERSION 1
#define RB_PLAN_CACHE_MAX_TEXT 255      /* characters of a machine, key or choice */
#define RB_PLAN_CACHE_LIMIT (8u << 20)  /* bytes of a cache file */

typedef struct rb_plan_cache rb_plan_cache;

/* Whether `text` is 1 to RB_PLAN_CACHE_MAX_TEXT printable ASCII characters
 * (what a machine, key and choice must be). */
bool rb_plan_text_ok(const char *text);

/* Opens the cache at `path` (NULL: $RB_PLAN_CACHE, else plans.json in the
 * user's cache folder, rb_user_cache_path) for plans of `machine`. Fails
 * only for a bad argument or memory; whatever is wrong with the file is
 * said in one warning line and leaves the cache empty. */
rb_status rb_plan_cache_open(rb_plan_cache **out, const char *path, const char *machine);

/* The choice remembered for `key` on this machine, or NULL. Valid until the
 * next put or close. */
const char *rb_plan_cache_get(const rb_plan_cache *cache, const char *key);

/* Remembers a choice (saved by rb_plan_cache_save). RB_ERR_INVALID_ARGUMENT
 * for a key or choice that is not 1 to 255 printable ASCII characters. */
rb_status rb_plan_cache_put(rb_plan_cache *cache, const char *key, const char *choice);

/* Saves the plans put since opening (nothing to do: no write). RB_OK unless
 * out of memory: a file that cannot be written is one warning line. */
rb_status rb_plan_cache_save(rb_plan_cache *cache);

/* The file the cache reads and writes. */
const char *rb_plan_cache_path(const rb_plan_cache *cache);

void rb_plan_cache_close(rb_plan_cache *cache);

/* The reader, a pure function of the bytes (fuzzed): the file's root object
 * (*root, json_object_put it). RB_ERR_CORRUPT for text that is not a valid
 * plan cache, RB_ERR_UNSUPPORTED for another format or version, each with
 * one line starting "WHAT: ". */
rb_status rb_plan_cache_parse(const char *text, size_t size, const char *what, json_object **root);

#endif /* RB_SYS_PLAN_CACHE_H */
