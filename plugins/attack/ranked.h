/* Classes in order of their logits, largest first, ties to the lower class:
 * the targets apgd-t and fab-t try (the 2nd, 3rd ... of a clean image). */
#ifndef ROBUSTA_PLUGINS_RANKED_H
#define ROBUSTA_PLUGINS_RANKED_H

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
