/* Reading an accepted dataset split to its end, for the dataset harnesses. */
#ifndef ROBUSTA_FUZZ_SPLIT_H
#define ROBUSTA_FUZZ_SPLIT_H

#include "fuzz.h"

static inline void fuzz_read_split(rb_split *split, const char *parser)
{
    const unsigned char *images = rb_split_images(split);
    const int64_t *labels = rb_split_labels(split);
    int64_t n = rb_split_count(split);
    size_t bytes = (size_t)n * rb_split_example_size(split);
    unsigned sum = 0;
    fuzz_assert(n > 0, parser, "an accepted split is empty");
    for (size_t b = 0; b < bytes; b++)
        sum += images[b];
    for (int64_t k = 0; k < n; k++)
        fuzz_assert(labels[k] >= 0 && labels[k] < rb_split_classes(split), parser, "a label is out of range");
    (void)sum;
    rb_split_destroy(split);
}

#endif
