/* What the files of src/data share: the split's representation and the
 * making of one example. Not part of the API. */
#ifndef RB_DATA_INTERNAL_H
#define RB_DATA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <robusta/data.h>
#include <robusta/rng.h>

/* Bilinear taps along one axis, for each output position: the two input
 * positions and their weights (PyTorch's align_corners=False rule). */
typedef struct rb_resize_axis {
    int32_t *i0, *i1;
    float *w0, *w1;
} rb_resize_axis;

struct rb_split {
    rb_data_source kind;
    char *name;
    int64_t count;
    int64_t classes;
    char **class_names;    /* classes strings */
    rb_dtype dtype;        /* RB_DTYPE_U8 or RB_DTYPE_F32 */
    int channels, height, width; /* stored */
    void *images;          /* count × channels × height × width */
    int64_t *labels;
    int64_t *source_index;
    /* As examples come out. */
    int out_channels, out_height, out_width;
    bool resized;          /* out_height/out_width differ from the stored size */
    rb_resize_axis rows, cols;
};

/* A split with nothing but its header fields set, and room for `count`
 * examples of the stored shape (zeroed), labels, source indices (0..N-1) and
 * `classes` names (NULL). */
rb_status rb_split_alloc(rb_split **out, rb_data_source kind, const char *name, rb_dtype dtype,
                         int64_t count, int channels, int height, int width, int64_t classes);

/* Sets class names from a table (NULL: "class_%d"). */
rb_status rb_split_set_names(rb_split *split, const char *const *names);

/* Refuses (one line naming `what` and the example) a label outside
 * [0, classes). */
rb_status rb_split_check_labels(const char *what, const int64_t *labels, int64_t count, int64_t classes);

/* One example of a feature-map split (kind RB_DATASET_FEATURES) as f32,
 * converted from its stored dtype (split_features.c). No checks. */
void rb_split_render_features(const rb_split *split, int64_t index, float *out);

/* Bytes of one stored image. */
size_t rb_split_stored_bytes(const rb_split *split);

/* One example as it comes out, cropped at (top, left) of the image padded
 * by `padding` (all zero: no crop) and maybe mirrored. No checks. */
void rb_split_render(const rb_split *split, int64_t index, int padding, int top, int left, bool flip,
                     float *out);

/* A uniform integer in [0, n), n >= 1. */
uint64_t rb_data_below(rb_rng *rng, uint64_t n);

/* Largest epoch the augmentation and shuffle streams tell apart. */
#define RB_DATA_EPOCH_LIMIT (INT64_C(1) << 24)

#endif /* RB_DATA_INTERNAL_H */
