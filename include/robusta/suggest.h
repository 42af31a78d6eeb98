/* robusta/suggest.h: "did you mean" suggestions for misspelt names.
 *
 * Every place that refuses an unknown name (an option, a command, a plugin,
 * a tensor of a checkpoint, a dataset kind) names the closest known one:
 *
 *     const char *near = rb_suggest(name, names, count);
 *     rb_error_set(RB_ERR_NOT_FOUND, "no tensor '%s'%s%s%s", name,
 *                  near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
 *
 * Depends on nothing but the C library, so every layer can use it.
 */
#ifndef ROBUSTA_SUGGEST_H
#define ROBUSTA_SUGGEST_H

#include <stddef.h>
#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The candidate closest to `name`, or NULL when none is close enough.
 * Closeness is the edit distance (insertions, deletions, substitutions;
 * a name or candidate longer than 64 characters is matched by prefix only). In order of preference:
 *   - a candidate at distance 1 or less ("trian" -> "train");
 *   - otherwise the only candidate that starts with `name`, when `name`
 *     has at least 3 characters ("trans" -> "transfer"; two such: none);
 *   - otherwise the closest candidate within about a third of the length
 *     of `name`: distance 1 for names of up to 3 characters, at most
 *     max(2, (length + 2) / 3) for longer ones.
 * Among equally close candidates the first wins. NULL entries of
 * `candidates` are skipped; count 0 gives NULL. The result points into
 * `candidates`. */
RB_API const char *rb_suggest(const char *name, const char *const *candidates, size_t count);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_SUGGEST_H */
