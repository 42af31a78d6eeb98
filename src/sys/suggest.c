/* Suggestions for misspelt names (robusta/suggest.h). Below every other
 * layer: it needs only the C library. */
#include "config.h"

#include <string.h>

#include <robusta/suggest.h>

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[65];
    if (la > 64 || lb > 64)
        return (size_t)-1;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *rb_suggest(const char *name, const char *const *candidates, size_t count)
{
    size_t len = strlen(name);
    size_t limit = len <= 3 ? 1 : (len + 2) / 3;
    size_t best_distance = (size_t)-1;
    const char *best = NULL, *prefixed = NULL;
    size_t prefix_matches = 0;

    if (limit < 2 && len > 3)
        limit = 2;
    for (size_t i = 0; i < count; i++) {
        size_t d;
        if (candidates[i] == NULL)
            continue;
        d = edit_distance(name, candidates[i]);
        if (d < best_distance) {
            best_distance = d;
            best = candidates[i];
        }
        if (len >= 3 && strncmp(candidates[i], name, len) == 0) {
            prefixed = candidates[i];
            prefix_matches++;
        }
    }
    /* A one-letter slip beats a prefix; a unique prefix beats a looser match. */
    if (best != NULL && best_distance <= 1)
        return best;
    if (prefix_matches == 1)
        return prefixed;
    if (best != NULL && best_distance <= limit)
        return best;
    return NULL;
}
