/* Classes in order of their logits, largest first, ties to the lower class:
 * the prediction, and the targets apgd-t and fab-t try (the 2nd, 3rd ... of
 * a clean image). */
#ifndef ROBUSTA_PLUGINS_RANKED_H
#define ROBUSTA_PLUGINS_RANKED_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct ranked_class {
    const float *z;
    int64_t i;
} ranked_class;

static inline int ranked_by_logit(const void *a, const void *b)
{
    const ranked_class *x = a, *y = b;
    if (x->z[x->i] != y->z[y->i])
        return x->z[x->i] > y->z[y->i] ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* The predicted class: the first largest logit. */
static inline int64_t top_class(const float *z, int64_t classes)
{
    int64_t best = 0;
    for (int64_t i = 1; i < classes; i++)
        if (z[i] > z[best])
            best = i;
    return best;
}

/* The classes of the `n` largest logits, largest first, ties to the lower
 * class: for a few (the loop is n x classes; the DLR losses read 3 or 4). */
static inline void top_classes(const float *z, int64_t classes, int n, int64_t *top)
{
    for (int k = 0; k < n; k++) {
        int64_t best = -1;
        for (int64_t i = 0; i < classes; i++) {
            bool taken = false;
            for (int j = 0; j < k; j++)
                taken |= top[j] == i;
            if (!taken && (best < 0 || z[i] > z[best]))
                best = i;
        }
        top[k] = best;
    }
}

/* order (classes values) receives the classes of z by decreasing logit;
 * scratch holds `classes` entries. */
static inline void rank_classes(const float *z, int64_t classes, int64_t *order, ranked_class *scratch)
{
    for (int64_t i = 0; i < classes; i++)
        scratch[i] = (ranked_class){z, i};
    qsort(scratch, (size_t)classes, sizeof *scratch, ranked_by_logit);
    for (int64_t i = 0; i < classes; i++)
        order[i] = scratch[i].i;
}

#endif
