/* What the files of src/data share: the split's representation and the
 * making of one example. Not part of the API. */
#ifndef RB_DATA_INTERNAL_H
#define RB_DATA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <robusta/data.h>
#include <robusta/rng.h>

/* ------------------------------------------------------------ resizing (resize.c) */

/* Bilinear taps along one axis, for each output position: the two input
 * positions and their weights (PyTorch's align_corners=False rule). */
typedef struct rb_resize_axis {
    int32_t *i0, *i1;
    float *w0, *w1;
} rb_resize_axis;

/* Taps from `in` positions to `out` (both >= 1); free with
 * rb_resize_axis_free (which zeroes the struct and accepts a zeroed one). */
rb_status rb_resize_axis_init(rb_resize_axis *a, int in, int out);
void rb_resize_axis_free(rb_resize_axis *a);

/* One bilinear output value from its four taps: p00, p01 on the first row
 * (column weights cw0, cw1), p10, p11 on the second, rows weighted rw0,
 * rw1. Width taps first, then height, as PyTorch's CPU kernel; every
 * resize of pixels goes through here. */
static inline float rb_resize_mix(float p00, float p01, float p10, float p11, float cw0, float cw1, float rw0,
                                  float rw1)
{
    const float t0 = p00 * cw0 + p01 * cw1;
    const float t1 = p10 * cw0 + p11 * cw1;
    return t0 * rw0 + t1 * rw1;
}

/* Nearest taps at pixel centres for masks: output d reads input
 * floor((d + 0.5) * in / out) (PyTorch's 'nearest-exact'). malloc'd; NULL
 * when memory runs out. */
int32_t *rb_resize_nearest_axis(int in, int out);

/* Resizes an 8-bit image whose channels are interleaved (in_h × in_w ×
 * channels) into planes (channels × out_h × out_w), by the rule a split
 * resizes its stored pixels with (stored / 255, rb_resize_axis taps,
 * rb_resize_mix), each value v stored back as round(255 v): within half a
 * level of what rb_split_render computes from the full-size image. */
rb_status rb_resize_image_u8(const uint8_t *src, int channels, int in_h, int in_w, int out_h, int out_w,
                             uint8_t *dst);

/* Resizes an 8-bit mask (in_h × in_w) to int32 out_h × out_w by the nearest
 * taps, as a split moves masks. */
rb_status rb_resize_mask_u8(const uint8_t *src, int in_h, int in_w, int out_h, int out_w, int32_t *dst);

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
    /* Targets besides labels (split_targets.c), at the stored size; NULL
     * when the split has none. */
    int32_t *masks;        /* count × height × width */
    rb_box *boxes;         /* box_offsets[count] boxes */
    int64_t *box_offsets;  /* count + 1 */
    int64_t max_boxes;     /* most boxes of one example */
    int32_t *near_rows, *near_cols; /* nearest taps (out size) when resized and masks */
    /* The size masks are stored at and boxes refer to: the stored image
     * size, except in a feature split, whose targets stay in the pixels of
     * the images its features were computed from. */
    int target_height, target_width;
    /* Per example, where the reader knows them (voc.c); NULL otherwise. */
    char **example_names;  /* count names (the VOC ids, COCO file names) */
    int64_t *source_sizes; /* count × (height, width) of the images in their files */
    int64_t *source_ids;   /* count ids the dataset gives its images (COCO image ids), -1: none */
    /* Per class, the id the dataset gives it (COCO category ids); NULL
     * where the classes are numbered 0..K-1 already. */
    int64_t *class_source_ids;
    /* The paper's transform (image_split.c): images kept at their own size
     * in a store shared by the splits selected from one another, example i
     * being image store_index[i]; crop and resize are S and R. NULL when
     * the split holds its pixels itself. */
    struct rb_image_store *store;
    int64_t *store_index;
    int crop, resize;
};

/* A split with nothing but its header fields set, and room for `count`
 * examples of the stored shape (zeroed), labels, source indices (0..N-1) and
 * `classes` names (NULL). */
rb_status rb_split_alloc(rb_split **out, rb_data_source kind, const char *name, rb_dtype dtype,
                         int64_t count, int channels, int height, int width, int64_t classes);

/* Gives the split room for per-example names (all NULL), source sizes
 * (all zero) and source ids (all -1), for a reader to fill. */
rb_status rb_split_alloc_examples(rb_split *split);

/* Records each class's id in the dataset (classes ids, copied). */
rb_status rb_split_set_class_source_ids(rb_split *split, const int64_t *ids);

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

/* The placement of one example under `augment` (NULL: none): padding of
 * the crop (0 when crop is off), its corner (top, left) and the flip, from
 * the draws of (seed, epoch, index). No checks. */
void rb_augment_place(const rb_augment *augment, uint64_t seed, int64_t epoch, int64_t index, int *padding,
                      int *top, int *left, bool *flip);

/* rb_augment_place after checking the index, epoch and padding, as
 * rb_split_example and rb_split_example_targets do. */
rb_status rb_split_place(const rb_split *split, int64_t index, const rb_augment *augment, uint64_t seed,
                         int64_t epoch, int *padding, int *top, int *left, bool *flip);

/* Targets (split_targets.c). */
bool rb_split_has_targets(const rb_split *split);
void rb_split_free_targets(rb_split *split);
/* Validates (rb_targets_check) and copies `targets` into `split`, replacing
 * any it had; for readers building a split, and rb_split_with_targets. */
rb_status rb_split_set_targets(rb_split *split, const rb_targets *targets);
/* Makes `masks` (count × stored height × width, malloc'd) the split's
 * masks without copying them, after rb_targets_check; the split owns them
 * from then on, and frees them if they are refused. */
rb_status rb_split_adopt_masks(rb_split *split, int32_t *masks);
/* Copies the targets of the examples `keep` marks (in order) from `in` to
 * `split`, whose geometry is already set (rb_split_apply). */
rb_status rb_split_copy_targets(rb_split *split, const rb_split *in, const unsigned char *keep);
/* The targets of one example placed as rb_split_render places its pixels:
 * `mask` (out size; NULL: skipped) and `boxes` with *box_count (NULL:
 * skipped). No checks. */
void rb_split_render_targets(const rb_split *split, int64_t index, int padding, int top, int left, bool flip,
                             int32_t *mask, rb_box *boxes, int64_t *box_count);

/* A split of `count` image files (image_split.c): paths[i], relative to
 * `base`, decoded to RGB with label labels[i], stored at size × size
 * (resized with Pillow's bilinear) or, for size 0, at the first image's
 * size, which every image must then share; example names are the paths;
 * classes named by class_names (NULL: "class_K"). `what` names the split
 * in messages. */
rb_status rb_split_from_image_files(rb_split **out, rb_data_source kind, const char *what, const char *base,
                                    const char *const *paths, const int64_t *labels, size_t count, int64_t classes,
                                    const char *const *class_names, int size);

/* rb_split_from_image_files, or under the paper's transform (options
 * non-NULL, transform RB_TRANSFORM_PAPER) a split whose images are kept at
 * their own size in a store (image_store.h; options->cache_dir), crop size
 * options->size (0: 224). */
rb_status rb_split_from_image_set(rb_split **out, rb_data_source kind, const char *what, const char *base,
                                  const char *const *paths, const int64_t *labels, size_t count, int64_t classes,
                                  const char *const *class_names, const rb_split_options *options);

/* Example `index` of a split with a store, made by the paper's transform
 * (training when `augment` has crop or flip on) into out (3 × S × S). */
rb_status rb_split_render_kept(const rb_split *split, int64_t index, const rb_augment *augment, uint64_t seed,
                               int64_t epoch, float *out);

/* The selected examples of a split with a store, for rb_split_apply: `s`
 * shares in's store and takes the store entries of the examples `keep`
 * marks; crop size `size` (0: in's). */
rb_status rb_split_share_kept(rb_split *s, const rb_split *in, const unsigned char *keep, int size);

/* Image folders (folder.c, folder:DIR in robusta/data.h): split `which`,
 * every image resized to options->size × options->size (0: all must share
 * the first's), or kept under the paper's transform. options may be NULL. */
rb_status rb_folder_load(rb_split **out, const char *dir, rb_split_which which, const rb_split_options *options);

/* Largest epoch the augmentation and shuffle streams tell apart. */
#define RB_DATA_EPOCH_LIMIT (INT64_C(1) << 24)

#endif /* RB_DATA_INTERNAL_H */
