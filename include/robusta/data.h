/* robusta/data.h: datasets and the background batch loader.
 *
 * A dataset is named by a spec string and opened one split (train or test)
 * at a time into an rb_split: N images held in memory as they were stored
 * (uint8 or float32, C×H×W each) with int64 labels, the class count and the
 * class names where the dataset has them, and optionally per-pixel masks
 * and box lists (see "targets" below). An rb_loader then cuts a split
 * into batches of float32 N×C×H×W images in [0, 1] plus labels (and the
 * masks and boxes, moved with the pixels), prepared by worker threads
 * while the caller computes.
 *
 *     rb_split *train = NULL;
 *     rb_loader *loader = NULL;
 *     rb_split_options so = {0};           // zero: the split as stored
 *     so.classes = "0-4";                  // keep five classes, relabelled 0..4
 *     so.size = 32;                        // bilinear resize to 32×32
 *     so.channels = 3;                     // grayscale replicated to RGB
 *     rb_status s = rb_split_open(&train, "fashion-mnist", RB_SPLIT_TRAIN, &so);
 *
 *     rb_loader_options lo = {0};
 *     lo.batch_size = 128;
 *     lo.shuffle = true;
 *     lo.threads = 1;
 *     lo.seed = 42;
 *     if (s == RB_OK) {
 *         rb_augment_defaults(rb_split_kind(train), &lo.augment);
 *         s = rb_loader_create(&loader, train, &lo);
 *     }
 *     for (int64_t epoch = 0; s == RB_OK && epoch < 10; epoch++) {
 *         rb_batch b;
 *         s = rb_loader_start_epoch(loader, epoch);
 *         while (s == RB_OK && (s = rb_loader_next(loader, &b)) == RB_OK && b.count > 0)
 *             train_step(b.images, b.labels, b.count);   // b is valid until the next call
 *     }
 *     if (s != RB_OK)
 *         fprintf(stderr, "robusta: %s\n", rb_last_error());
 *     rb_loader_destroy(loader);                         // before the split it reads
 *     rb_split_destroy(train);
 *
 * Spec strings (rb_dataset_spec_parse):
 *   fashion-mnist            Fashion-MNIST in /usr/share/datasets/fashion-mnist
 *                            (Debian's dataset-fashion-mnist package)
 *   fashion-mnist:DIR        Fashion-MNIST in DIR
 *   mnist:DIR                MNIST in DIR
 *       both read train-images-idx3-ubyte, train-labels-idx1-ubyte,
 *       t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each raw or
 *       gzip'd: NAME is tried first, then NAME.gz; gzip is recognised by its
 *       magic bytes (1f 8b), not by the name.
 *   cifar10:DIR              data_batch_1.bin .. data_batch_5.bin (train) and
 *                            test_batch.bin (test), in DIR or in
 *                            DIR/cifar-10-batches-bin (the tarball's folder)
 *   cifar100:DIR             train.bin and test.bin, in DIR or in
 *                            DIR/cifar-100-binary; fine labels (100 classes)
 *   npy:X.npy,Y.npy          one split (the train split) from two .npy files
 *   npy:X.npy,Y.npy;TX.npy,TY.npy
 *                            train split, then after ';' the test split
 *   Paths of npy specs cannot contain ',' or ';'. Opening the test split of
 *   an npy spec that has none fails with a message saying how to add it.
 *   voc-seg:DIR              a Pascal VOC segmentation folder (see "VOC
 *                            segmentation" below)
 *   coco:IMAGES,ANNOTATIONS.json
 *                            a COCO detection set: the train split from an
 *                            annotation file and the folder its images'
 *                            file names are relative to (see "COCO" below)
 *   coco:IMAGES,ANN.json;TEST_IMAGES,TEST_ANN.json
 *                            train split, then after ';' the test split
 *   coco:DIR                 DIR/annotations/instances_train.json (train)
 *                            and instances_val.json (test), images in
 *                            DIR/JPEGImages: what make-scenes writes
 *   folder:DIR               torchvision's ImageFolder layout: DIR/train/
 *                            and DIR/test/ (or DIR/val/), one folder of
 *                            PNG and JPEG images per class (see "Image
 *                            folders" below)
 *   list:DIR,TRAIN.txt[,TEST.txt]
 *                            images below DIR named by list files of
 *                            "relative/path label" lines (see "Image
 *                            lists" below)
 *
 * .npy images: uint8 (0..255, divided by 255) or float32 already in [0, 1];
 * shapes N×H×W (one channel), or 4-D with a channel axis of 1 or 3. The rule
 * for 4-D shapes N×A×B×D: if D is 1 or 3 and A is not, the array is
 * N×H×W×C (NumPy/TensorFlow order); if A is 1 or 3 and D is not, it is
 * N×C×H×W (PyTorch order); if both are (say N×3×8×3) the layout is
 * ambiguous and refused. Labels: a 1-D array of N integers (uint8, int32 or
 * int64), each >= 0; the class count is the largest label plus one, and
 * classes are named "class_0", "class_1" ...
 *
 * The making of one example, in order: the stored pixels (uint8 / 255, or
 * float32), bilinear resize to S×S when asked (as PyTorch's
 * F.interpolate(mode='bilinear', align_corners=False, antialias=False)),
 * grayscale replicated to 3 channels when asked, then, in training,
 * augmentation: zero padding and a random crop back to S×S (torchvision's
 * RandomCrop(S, padding=P)) and a horizontal flip with probability 0.5.
 * Resizing and replication happen per example as batches are made, so a
 * large S costs no memory beyond the batches.
 *
 * Image folders (folder:DIR) are read as torchvision's ImageFolder reads
 * them, except that both splits take train's classes: the classes are the
 * sub-folders of DIR/train in sorted (byte) order, labels 0..K-1, for the
 * test split too (a class missing from DIR/test keeps its number; a test
 * folder that is no class of train is refused). A class's images are its
 * files ending in .jpg, .jpeg or .png (case ignored) in every sub-folder,
 * folders in the sorted order of their paths, files sorted within each
 * (ImageFolder's order); files of other image formats ImageFolder knows
 * (.bmp, .ppm, .pgm, .tif, .tiff, .webp) are refused, other files skipped.
 * A folder with none of train/, test/ and val/ holds the class folders
 * itself and is split here: round(n / 5) of a class's n images (at least
 * 1 when n >= 2) go to the test split, chosen by a generator fixed per
 * class (the same split for every run and seed), the rest to train.
 * Images are decoded to RGB as for VOC below. Images of different sizes
 * need an image size S: each is resized to S×S as it is read with Pillow's
 * bilinear resampling (antialiased, as torchvision's Resize((S, S)) on PIL
 * images), so only one full-size image is held at a time. Example names
 * are the paths below the split folder ("cat/001.jpg"). A class folder
 * without images, an unreadable, truncated or corrupt image: one line
 * naming the file or folder.
 *
 * Image lists (list:DIR,TRAIN.txt,TEST.txt; list files relative to DIR
 * unless absolute) hold one image per line, "relative/path label": the
 * label is the line's last word (0, 1, 2 ...), the path the rest (spaces
 * inside allowed), relative to DIR and staying below it; blank lines are
 * skipped, CRLF endings accepted. The classes are 0 .. the train list's
 * largest label, named "class_K", for both splits; or, when DIR/classes.txt
 * exists, the classes it names (one a line, line N naming class N - 1, as
 * VOC's classes.txt but 1 to 1,000,000 of them). A label beyond the
 * classes, a listed file that does not exist or a malformed line is
 * refused with one line naming the list and the line. Images are read and resized
 * as for image folders.
 *
 * The paper's transform (rb_split_options.transform RB_TRANSFORM_PAPER,
 * `--transform paper`, for folder: and list: sets) keeps each image at its
 * own size, decoded to 8-bit RGB, and makes an example from it as
 * torchvision's ImageNet transforms make one from a PIL image, pixel for
 * pixel (crop size S, 224 by default):
 *   with augmentation (a loader's augment has crop or flip on; training)
 *       RandomResizedCrop(S, scale=(0.08, 1), ratio=(3/4, 4/3)): up to ten
 *       tries at a window, else the central one, then the window resized
 *       to S×S; then, when augment.flip is on, a horizontal flip with
 *       probability 0.5. The draws come from
 *       rb_rng_init(seed, RB_RNG_STREAM(RB_RNG_AUGMENT, epoch), example
 *       index), crop first, then one word for the flip.
 *   without (evaluation)
 *       Resize(R) (the shorter side to R = rb_transform_resize_for(S),
 *       256 for 224) then CenterCrop(S).
 * Resizing is Pillow's bilinear resampling, antialiased when shrinking;
 * the result, 8-bit, is divided by 255. An image is decoded the first
 * time a batch needs it, on the loader's worker thread, and kept: later
 * epochs decode nothing. Opening the split reads only each file's header
 * (its size). With a cache folder the decoded images live in a file there
 * (robusta-images-HASH.cache, one per image folder and split, memory-
 * mapped), so later runs and other processes decode nothing either; a
 * cache file for other or changed files, or from another robusta
 * version, is rebuilt, never trusted (rb_split_cache_state says why).
 * Such splits have no stored pixel block: rb_split_images is NULL and
 * rb_split_stored_shape gives 3 × 0 × 0; rb_split_example_source_size
 * gives each image's size. A file that fails to decode when its turn
 * comes fails the batch (rb_loader_next) with one line naming it.
 *
 * VOC segmentation (voc-seg:DIR) reads the layout of Pascal VOC's
 * segmentation release:
 *   DIR/ImageSets/Segmentation/train.txt (RB_SPLIT_TRAIN) and val.txt
 *       (RB_SPLIT_TEST): one image id per line; blank lines and the spaces
 *       around an id are ignored; an id is a file name without extension
 *       (no '/', no spaces), each listed once
 *   DIR/JPEGImages/ID.jpg, or ID.png: the image, decoded to 8-bit RGB as
 *       Pillow's convert('RGB') does (PNG and JPEG are told apart by their
 *       bytes, not the extension)
 *   DIR/SegmentationClass/ID.png: its mask, the image's size, of 8-bit
 *       grayscale values or palette indices, each a class id or 255
 *       (RB_IGNORE_LABEL: boundaries, "void")
 *   DIR/classes.txt (optional): the class names, one a line, the first
 *       being class 0 (background); without it, the 21 Pascal VOC classes
 *       (background, aeroplane, bicycle, ..., tvmonitor). 1 to 255 names.
 * The split holds the masks as its targets (rb_split_stored_targets), each
 * example's id (rb_split_example_name) and the size of its image in its
 * file (rb_split_example_source_size). Its label, the one class per
 * example that per_class selection counts, is the class that covers most
 * pixels of the mask as in its file, background (0) and 255 left out, the
 * smaller id on a tie; 0 when nothing else is in the mask. The images of a
 * VOC folder differ in size while a split has one: with
 * rb_split_options.size S > 0 each image is resized to S×S as it is
 * decoded (bilinear as below, the result stored back in 8 bits as
 * round(255 v), so within half a level of a resize of the full image) and
 * its mask by nearest neighbour at pixel centres (as "targets" below), so
 * no more than one full-size image is held at a time; with size 0 every
 * image must have the size of the first. Every fault is one line naming
 * the file: an id naming no image, a missing mask, a mask of another size
 * than its image or holding a class id >= the class count that is not 255,
 * an RGB or JPEG mask, a corrupt or truncated image. The images are
 * decoded once, by rb_split_open, on the calling thread.
 *
 * COCO (coco:...) reads an annotation file with robusta/coco.h's parser
 * (every image, annotation and category checked; a fault is one line
 * naming the file and the entry) and each image it lists, in its order,
 * from the image folder joined with its file_name (PNG or JPEG decoded to
 * RGB). An image whose file size differs from the width and height the
 * file gives is refused. Boxes are made as torchvision's detection
 * references make them: crowd regions (iscrowd 1) left out, [x, y, w, h]
 * turned into corners, clipped to the image, scaled with it when resized,
 * and dropped when nothing is left. Class c is the category of the c-th
 * smallest id, named by its name; rb_split_class_source_id gives the id
 * back, and rb_split_example_source_id each image's id, so predictions can
 * be written as COCO results. The label an example carries for per_class
 * selection is its boxes' most frequent class (the smaller on a tie), 0
 * for an image without boxes. Images of different sizes need
 * rb_split_options.size, as for VOC; images with no box are kept (COCO's
 * evaluation counts them).
 *
 * Reproducibility: the random numbers come from robusta/rng.h, keyed so
 * that no result depends on the number of threads or on timing:
 *   per-class selection  rb_rng_init(seed, RB_RNG_STREAM(RB_RNG_SUBSET, original class), 0)
 *   epoch order          rb_rng_init(seed, RB_RNG_STREAM(RB_RNG_SHUFFLE, epoch), 0)
 *   augmentation         rb_rng_init(seed, RB_RNG_STREAM(RB_RNG_AUGMENT, epoch), example index)
 * where the example index is the example's position in the split.
 *
 * Threads: a split is never changed after it is made, so any number of
 * threads and loaders may read one at once. A loader belongs to the thread
 * that calls it (its workers are its own business).
 *
 * Readers are pure functions from bytes to a split (rb_split_from_idx,
 * rb_split_from_cifar, rb_split_from_npy) so that a fuzz harness can drive
 * them; rb_split_open and rb_split_load read the files and call them. Every
 * failure is one line naming the file and what is wrong with it.
 */
#ifndef ROBUSTA_DATA_H
#define ROBUSTA_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <robusta/interop.h>
#include <robusta/status.h>
#include <robusta/targets.h>
#include <robusta/tensor.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ specs */

typedef enum rb_data_source {
    RB_DATASET_NONE = 0,     /* made in memory (rb_split_create) */
    RB_DATASET_MNIST = 1,
    RB_DATASET_FASHION_MNIST = 2,
    RB_DATASET_CIFAR10 = 3,
    RB_DATASET_CIFAR100 = 4,
    RB_DATASET_NPY = 5,
    RB_DATASET_FEATURES = 6, /* feature vectors a model computed (rb_split_create_features) */
    RB_DATASET_VOC_SEG = 7,  /* a Pascal VOC segmentation folder: images, masks, ids */
    RB_DATASET_COCO = 8,     /* COCO annotations and their images: boxes, image and category ids */
    RB_DATASET_FOLDER = 9,   /* a folder of class folders of PNG and JPEG images (torchvision's ImageFolder) */
    RB_DATASET_LIST = 10     /* PNG and JPEG images named by "path label" list files */
} rb_data_source;

/* Which split of a dataset to open. */
typedef enum rb_split_which {
    RB_SPLIT_TRAIN = 0,
    RB_SPLIT_TEST = 1
} rb_split_which;

/* Where Debian's dataset-fashion-mnist package puts the files. */
#define RB_FASHION_MNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

/* Longest path a spec may hold, with its terminating NUL. */
#define RB_DATASET_PATH_MAX 4096

/* A parsed spec string. `dir` is set for the folder kinds; `images` and
 * `labels` for npy, and for coco the image folders and annotation files,
 * indexed by rb_split_which ("" when the spec has no test split). About 20 KB: allocate it rather than put it on a small stack. */
typedef struct rb_dataset_spec {
    rb_data_source kind;
    char dir[RB_DATASET_PATH_MAX];
    char images[2][RB_DATASET_PATH_MAX];
    char labels[2][RB_DATASET_PATH_MAX];
} rb_dataset_spec;

/* Parses a spec string (see the top of this header). Fails with
 * RB_ERR_INVALID_ARGUMENT and one line quoting the spec: an empty spec, a
 * missing folder, a malformed npy file list, or an unknown kind (with the
 * closest known kind suggested: "did you mean 'cifar10'?"). Touches no file. */
RB_API rb_status rb_dataset_spec_parse(rb_dataset_spec *out, const char *text);

/* "mnist", "fashion-mnist", "cifar10", "cifar100", "npy", "features",
 * "voc-seg", "coco", "folder", "list"; "memory" for RB_DATASET_NONE,
 * "unknown" otherwise. */
RB_API const char *rb_data_source_str(rb_data_source kind);

/* "train" or "test" ("unknown" otherwise). */
RB_API const char *rb_split_which_str(rb_split_which which);

/* ------------------------------------------------------------ splits */

typedef struct rb_split rb_split;

/* How the examples of an image set (folder:, list:) are made from its
 * files (rb_split_options.transform). */
typedef enum rb_transform {
    /* Every image decoded and resized to the split's one size as the split
     * is opened (see "Image folders"), then the making of one example
     * below. */
    RB_TRANSFORM_NONE = 0,
    /* The pipeline of Salman et al. 2020, as torchvision applies it to PIL
     * images (see "The paper's transform" below). */
    RB_TRANSFORM_PAPER = 1
} rb_transform;

/* "none" or "paper" ("unknown" otherwise). */
RB_API const char *rb_transform_str(rb_transform transform);

/* Parses "none" or "paper"; anything else fails with
 * RB_ERR_INVALID_ARGUMENT and one line listing them (with "did you mean"). */
RB_API rb_status rb_transform_parse(const char *text, rb_transform *out);

/* The test transform's Resize for crop size S: round(S × 256 / 224), so
 * 256 for the paper's 224. */
RB_API int rb_transform_resize_for(int crop);

/* What to keep of a split and the geometry its examples come out in. A
 * zeroed struct keeps everything as stored. */
typedef struct rb_split_options {
    /* Classes to keep, in this order, relabelled 0..k-1: a comma-separated
     * list of class numbers and inclusive ranges ("0-4", "5,7,9",
     * "9,0-2"). NULL or "": every class, labels unchanged. */
    const char *classes;
    /* At most this many examples per (kept) class, chosen at random by
     * `seed`; 0: all. The chosen examples keep their file order. */
    int64_t per_class;
    uint64_t seed;
    /* Resize every image bilinearly to size×size; 0: keep the size the
     * split already has (the stored size, unless resized before). */
    int size;
    /* Channels the examples come out with: 0 keeps what the split already
     * has; 3 turns one-channel images into three equal channels
     * (three-channel images stay as they are); 1 keeps one-channel images
     * and turns RGB ones grey as Pillow's convert('L') does (8-bit:
     * (19595 R + 38470 G + 7471 B + 2^15) >> 16; float: 0.299 R + 0.587 G
     * + 0.114 B), before any resizing. */
    int channels;
    /* RB_TRANSFORM_PAPER: images of an image set (folder:, list:) are kept
     * at their own size and each example is made from its image as it goes
     * into a batch; `size` is the crop size S (0: 224) and channels must
     * be 0 or 3. Other datasets refuse it. */
    rb_transform transform;
    /* With the paper's transform: a folder for the decoded images' cache
     * file, so later runs decode nothing (see "The paper's transform");
     * NULL or "": the decoded images are kept in memory for this run. */
    const char *cache_dir;
    /* Only these examples (index_count indices into the split as opened,
     * each once, in any order; they keep the split's order), before
     * classes and per_class apply: a fixed evaluation subset such as
     * RobustBench's. NULL: every example. An index out of range or given
     * twice is refused, naming its entry. */
    const int64_t *indices;
    int64_t index_count;
} rb_split_options;

/* Opens split `which` of the dataset named by spec string `spec` and
 * applies `options` (NULL: none). A missing file fails with
 * RB_ERR_NOT_FOUND naming its path; a file whose contents fail validation
 * with RB_ERR_CORRUPT naming the file and the fault. */
RB_API rb_status rb_split_open(rb_split **out, const char *spec, rb_split_which which,
                               const rb_split_options *options);

/* rb_split_open for a spec already parsed. */
RB_API rb_status rb_split_load(rb_split **out, const rb_dataset_spec *spec, rb_split_which which,
                               const rb_split_options *options);

/* A new split holding copies of what `in` keeps under `options` (see
 * rb_split_options); `in` is unchanged. Non-zero `size` and `channels`
 * replace any that `in` had: resizing always starts from the stored pixels,
 * never from an earlier resize. A class list naming a class the split
 * lacks, a class twice, or text that is not numbers and ranges fails with
 * RB_ERR_INVALID_ARGUMENT quoting the list. */
RB_API rb_status rb_split_apply(rb_split **out, const rb_split *in, const rb_split_options *options);

/* Frees a split; NULL is accepted. Destroy every loader reading it first. */
RB_API void rb_split_destroy(rb_split *split);

/* A split made from memory: `count` images of channels×height×width,
 * stored as `dtype` (RB_DTYPE_U8: 0..255; RB_DTYPE_F32: values in [0, 1]),
 * row-major N×C×H×W, and `count` labels in [0, classes). Everything is
 * copied. `names` may be NULL ("class_0" ...) or hold `classes` strings.
 * `what` names the data in messages. */
RB_API rb_status rb_split_create(rb_split **out, rb_dtype dtype, int64_t count, int channels,
                                 int height, int width, const void *images, const int64_t *labels,
                                 int64_t classes, const char *const *names, const char *what);

/* A split of feature vectors (a backbone's outputs, for training a head on
 * them): `count` vectors of `dim` finite floats of any range, stored as
 * 1 × dim × 1 "images" so loaders and engines take them as they are, and
 * `count` labels in [0, classes). Everything is copied; names and what as
 * for rb_split_create. Augmentation does nothing to them. */
RB_API rb_status rb_split_create_features(rb_split **out, int64_t count, int dim, const float *values,
                                          const int64_t *labels, int64_t classes, const char *const *names,
                                          const char *what);

/* ---- feature maps (split_features.c): a cache of any backbone stage ----
 *
 * A split of a model's outputs of any shape (a stage's C × H × W, or a
 * pooled vector as 1 × F × 1), for training a head on features computed
 * once: kind RB_DATASET_FEATURES, `count` examples of channels × height ×
 * width values (1 to 65536 each; channels are not limited to 4 as for
 * images), stored as `dtype`:
 *   RB_DTYPE_F32   the values as given;
 *   RB_DTYPE_BF16  half the memory: each value rounded to the nearest
 *                  bfloat16 (rb_bf16_from_f32), examples come out as those
 *                  rounded floats, exactly; rb_split_dtype says bf16.
 * Examples come out as stored, whatever augmentation a loader is given.
 * The split starts zero: fill every example with rb_split_features_write
 * before any loader or rb_split_example reads it (a split is otherwise
 * never changed). Labels, names and what as for rb_split_create. One line
 * each for a dtype other than those two, a shape out of range, a label
 * out of range. */
RB_API rb_status rb_split_create_feature_maps(rb_split **out, rb_dtype dtype, int64_t count, int channels,
                                              int height, int width, const int64_t *labels, int64_t classes,
                                              const char *const *names, const char *what);

/* Writes examples first .. first + rows - 1 of a feature-map split from
 * `values` (rows × its channels·height·width floats, row-major),
 * converting to its dtype. A non-finite value is refused (RB_ERR_NUMERIC,
 * naming the example) and leaves the examples unchanged; so is a range
 * outside [0, count) or a split that is not a feature-map split
 * (RB_ERR_INVALID_ARGUMENT). */
RB_API rb_status rb_split_features_write(rb_split *split, int64_t first, int64_t rows, const float *values);

/* Gives a feature split the targets (masks, boxes) of the image split its
 * features were computed from, example for example, as the images come
 * out without augmentation (resized if the image split resizes): a task
 * head trained on cached features meets the same masks and boxes it would
 * on the images. They keep the images' pixel size, whatever the feature
 * map's size; features and their targets come out as stored. An image
 * split without masks or boxes gives nothing (RB_OK). One line for
 * splits of different lengths. */
RB_API rb_status rb_split_features_take_targets(rb_split *features, const rb_split *images);

/* Parses IDX bytes (MNIST's format): an image file (magic 0x00000803,
 * count×rows×columns unsigned bytes) and a label file (magic 0x00000801,
 * count unsigned bytes, each below `classes`), each raw or gzip'd. Sizes
 * must match the headers exactly and the two counts must agree. `kind`
 * (RB_DATASET_MNIST or RB_DATASET_FASHION_MNIST) names the classes;
 * images_what and labels_what name the bytes in messages (the paths). */
RB_API rb_status rb_split_from_idx(rb_split **out, rb_data_source kind, const void *images,
                                   size_t images_size, const char *images_what, const void *labels,
                                   size_t labels_size, const char *labels_what);

/* Parses CIFAR binary files, concatenated in the order given: for
 * RB_DATASET_CIFAR10, records of one label byte (< 10) and 3072 pixel bytes
 * (3×32×32, channel-major); for RB_DATASET_CIFAR100, records of a coarse
 * label (< 20), a fine label (< 100, the one kept) and 3072 pixel bytes.
 * Each file must hold a whole, non-zero number of records. */
RB_API rb_status rb_split_from_cifar(rb_split **out, rb_data_source kind, const void *const *files,
                                     const size_t *sizes, const char *const *whats, size_t file_count);

/* Makes a split from parsed .npy arrays (robusta/interop.h): images and
 * labels as described at the top of this header. */
RB_API rb_status rb_split_from_npy(rb_split **out, const rb_npy *images, const char *images_what,
                                   const rb_npy *labels, const char *labels_what);

/* Number of examples. */
RB_API int64_t rb_split_count(const rb_split *split);
/* Number of classes; labels lie in [0, classes). */
RB_API int64_t rb_split_classes(const rb_split *split);
/* Name of class `label` ("T-shirt/top", "airplane", "7", "class_3"); NULL
 * out of range. */
RB_API const char *rb_split_class_name(const rb_split *split, int64_t label);
/* The dataset the split came from. */
RB_API rb_data_source rb_split_kind(const rb_split *split);
/* What the split is, for messages: "fashion-mnist train"; for splits made
 * by the parsers or rb_split_create, the `what` they were given. */
RB_API const char *rb_split_name(const rb_split *split);

/* Shape of one example as it comes out (after size and channels). */
RB_API void rb_split_shape(const rb_split *split, int *channels, int *height, int *width);
/* Floats in one example as it comes out: channels*height*width. */
RB_API size_t rb_split_example_size(const rb_split *split);

/* The stored pixels: dtype (RB_DTYPE_U8 or RB_DTYPE_F32), shape of one
 * stored image, and the data, row-major N×C×H×W. */
RB_API rb_dtype rb_split_dtype(const rb_split *split);
RB_API void rb_split_stored_shape(const rb_split *split, int *channels, int *height, int *width);
RB_API const void *rb_split_images(const rb_split *split);
/* The N labels. */
RB_API const int64_t *rb_split_labels(const rb_split *split);
/* For each example, its index in the file(s) it was read from (CIFAR
 * batches counted one after another), before any selection. */
RB_API const int64_t *rb_split_source_indices(const rb_split *split);

/* The name of example `index` where its dataset names examples (voc-seg:
 * its id, "2007_000032"; output files are named after it); NULL for
 * datasets without names and for an index out of range. Valid while the
 * split lives; selection (rb_split_apply) carries names with their
 * examples. */
RB_API const char *rb_split_example_name(const rb_split *split, int64_t index);

/* The state of a split's decoded images under the paper's transform:
 * whether it has them (false, all zero, for every other split), the cache
 * file ("" in memory), images, images decoded so far, images this process
 * decoded, and why an existing cache file was rebuilt ("" when reused or
 * new). Strings valid while the split lives. */
typedef struct rb_split_cache_state {
    bool kept;
    const char *path;
    int64_t images, ready, decoded_here;
    const char *rebuilt_because;
} rb_split_cache_state;
RB_API void rb_split_cache_state_get(const rb_split *split, rb_split_cache_state *out);

/* The height and width of example `index` in the file it was read from,
 * before any resize (voc-seg: its image's size); the stored size
 * (rb_split_stored_shape) where the dataset does not say; 0 × 0 for an
 * index out of range. Either pointer may be NULL. */
RB_API void rb_split_example_source_size(const rb_split *split, int64_t index, int64_t *height, int64_t *width);

/* The id the dataset gives example `index` (coco: its image id), for
 * writing predictions back in the dataset's terms; -1 where the dataset
 * has none or the index is out of range. */
RB_API int64_t rb_split_example_source_id(const rb_split *split, int64_t index);

/* The id the dataset gives class `label` (coco: its category id); the
 * label itself where classes are numbered 0..K-1 already; -1 out of
 * range. Class selection carries the ids with their classes. */
RB_API int64_t rb_split_class_source_id(const rb_split *split, int64_t label);

/* Image file formats rb_split_export writes. */
typedef enum rb_image_format {
    RB_IMAGE_PNG = 0, /* lossless: 8-bit pixels come back exactly */
    RB_IMAGE_JPEG = 1 /* baseline, 4:2:0 for RGB, at a quality of 1 to 100 (libjpeg's scale) */
} rb_image_format;

/* Writes every example of `split` as it comes out unaugmented (rb_split_
 * example; 1 or 3 channels, each value v stored as round(255 v), so stored
 * 8-bit pixels are written exactly) as an image file in torchvision's
 * ImageFolder layout, which folder:DIR reads back:
 *     DIR/LL-NAME/IIIIII.png (or .jpg)
 * LL the label, zero-padded so sorted names keep label order ("07"), NAME
 * the class name with every byte but letters, digits, '.', '-', '_' made
 * '_' ("07-Sneaker", "0-T-shirt_top"), IIIIII the example's index. DIR must
 * not exist (it is created; nothing is overwritten or mixed); each file is
 * written atomically. One line for a bad argument, a split of features or
 * of 2 or 4 channels, a folder that exists or cannot be made. */
RB_API rb_status rb_split_export(const rb_split *split, const char *dir, rb_image_format format, int quality);

/* ------------------------------------------------------------ augmentation */

/* Training augmentation. A zeroed struct means none. */
typedef struct rb_augment {
    bool crop;   /* pad by `padding` zeros on every side, then crop a random S×S window */
    int padding; /* P >= 0 */
    bool flip;   /* mirror left-right with probability 0.5 */
} rb_augment;

/* The usual training augmentation for a dataset kind, what robusta's
 * training uses unless told otherwise:
 *   cifar10, cifar100     crop with padding 4, flip (the standard CIFAR recipe)
 *   mnist                 crop with padding 2, no flip (digits are not mirror-symmetric)
 *   fashion-mnist         crop with padding 2, no flip: the Zalando product
 *                         photos are in a canonical pose (shoes point left),
 *                         so mirrored garments are examples the test set never
 *                         shows, and the published Fashion-MNIST baselines
 *                         train without flips; set flip to try it
 *   voc-seg               flip, no crop: photos and scenes are mirror-symmetric,
 *                         and the crop's zero padding would become ignored
 *                         mask pixels; set crop to try it
 *   coco                  flip, no crop, as torchvision's detection references
 *                         train (RandomHorizontalFlip only)
 *   folder, list          flip, no crop: photos are mirror-symmetric
 *   npy, memory           none (the content is unknown) */
RB_API void rb_augment_defaults(rb_data_source kind, rb_augment *out);

/* The random choices of augmentation for one example: the top-left corner
 * (top, left) of the crop window in the padded image, each uniform in
 * [0, 2*padding] (0 when crop is off), and whether it is flipped (false
 * when flip is off). Keyed by (seed, epoch, index) as described at the top
 * of this header; the draws do not depend on which of crop and flip are on.
 * epoch must lie in [0, 2^24). */
RB_API void rb_augment_draw(const rb_augment *augment, uint64_t seed, int64_t epoch, int64_t index,
                            int *top, int *left, bool *flip);

/* Writes example `index` as it comes out (rb_split_shape) into `out`
 * (rb_split_example_size floats, C×H×W, values in [0, 1]), augmented with
 * the draws of (seed, epoch, index) when `augment` is not NULL; exactly
 * what a loader puts in a batch. RB_ERR_INVALID_ARGUMENT for an index out
 * of range or an epoch outside [0, 2^24). */
RB_API rb_status rb_split_example(const rb_split *split, int64_t index, const rb_augment *augment,
                                  uint64_t seed, int64_t epoch, float *out);

/* ------------------------------------------------------------ targets */

/* Besides its labels, a split may hold, for every example, a mask (one
 * int32 class per pixel, or RB_IGNORE_LABEL, at the stored image size) and
 * a list of boxes (corners in pixels of the stored image, each with a
 * class in [0, classes)). They come out with the example, moved with its
 * pixels (rb_split_example_targets, rb_batch.targets):
 *   resize  masks by nearest neighbour at pixel centres (output pixel d
 *           reads stored pixel floor((d + 0.5) * in / out), PyTorch's
 *           'nearest-exact', on the grid bilinear resizing uses); box
 *           corners scaled by out / in;
 *   crop    the same window as the pixels: mask pixels of the zero padding
 *           become RB_IGNORE_LABEL; boxes shift by (padding - left,
 *           padding - top), are clipped to the image, and are dropped
 *           when nothing of them is left (zero width or height);
 *   flip    masks mirrored as the pixels; boxes x1' = W - x2, x2' = W - x1.
 * A box of zero width or height never comes out, even unaugmented. */

/* A new split: a copy of `in` holding `targets` (rb_targets_check against
 * the split's classes and its STORED height and width, naming the split):
 * targets->count must be the split's count; labels NULL or equal to the
 * split's; masks (mask_height × mask_width the stored size) and boxes
 * (box_offsets with count + 1 entries) each optional; at least one of the
 * two. Any masks or boxes `in` had are replaced. Everything is copied; `in`
 * is unchanged. RB_ERR_INVALID_ARGUMENT with one line otherwise. */
RB_API rb_status rb_split_with_targets(rb_split **out, const rb_split *in, const rb_targets *targets);

/* The split's targets as stored: count, labels, masks at the stored size
 * (NULL if none), boxes and box_offsets in stored pixels (NULL if none).
 * Valid while the split lives. */
RB_API void rb_split_stored_targets(const rb_split *split, rb_targets *out);

/* The most boxes one example has (0 without boxes): the room
 * rb_split_example_targets needs for one example's boxes. */
RB_API int64_t rb_split_max_boxes(const rb_split *split);

/* The height and width masks come out at (and boxes refer to): the
 * examples' size, except in a feature split, whose targets keep the size
 * of the images its features came from (rb_split_features_take_targets). */
RB_API void rb_split_mask_shape(const rb_split *split, int *height, int *width);

/* Writes the targets of example `index` as they come out (rb_split_shape),
 * augmented with the draws of (seed, epoch, index) when `augment` is not
 * NULL: exactly what a loader puts in a batch, and what rb_split_example
 * does to the pixels. `mask` (height × width int32 as it comes out) and
 * `boxes` (room for rb_split_max_boxes boxes; *box_count receives how many
 * are written) may be NULL where not wanted; asking for masks or boxes the
 * split does not have, an index out of range or an epoch outside
 * [0, 2^24) fails with RB_ERR_INVALID_ARGUMENT. */
RB_API rb_status rb_split_example_targets(const rb_split *split, int64_t index, const rb_augment *augment,
                                          uint64_t seed, int64_t epoch, int32_t *mask, rb_box *boxes,
                                          int64_t *box_count);

/* ------------------------------------------------------------ loader */

typedef struct rb_loader rb_loader;

typedef struct rb_loader_options {
    int64_t batch_size; /* examples per batch, >= 1 */
    bool shuffle;       /* a new order every epoch from (seed, epoch); else split order */
    bool drop_last;     /* leave out a last batch smaller than batch_size */
    rb_augment augment; /* zeroed for evaluation */
    uint64_t seed;
    /* Worker threads; 0 makes each batch inside rb_loader_next on the
     * caller's thread. The batches are the same bit for bit either way. */
    int threads;
    /* Batch buffers in the ring (0: threads + 1, at least 2; ignored when
     * threads is 0): how far the workers may run ahead, counting the batch
     * the caller holds. Each holds batch_size examples of float32. */
    int prefetch;
    /* Data-parallel training: this process takes part `shard` of
     * `shards` of every batch, the examples at positions [n·shard/shards,
     * n·(shard+1)/shards) of a batch of n, with the augmentation they
     * would have in the whole batch; needs drop_last and shards <= batch_size,
     * so no part is ever empty. 0 shards: the whole batch. */
    int shard, shards;
} rb_loader_options;

/* A batch, valid until the next rb_loader_next, rb_loader_start_epoch or
 * rb_loader_destroy on its loader. */
typedef struct rb_batch {
    const float *images;    /* count×channels×height×width, 64-byte aligned; pixels in [0, 1] (a feature split: its features) */
    const int64_t *labels;  /* count labels */
    const int64_t *indices; /* each example's index in the split (keys per-example randomness) */
    int64_t count;          /* examples in this batch; 0: the epoch is over */
    int64_t first;          /* position of the first example in the epoch's order */
    int64_t global_count;   /* examples in the whole batch, over all shards (count without shards) */
    int64_t number;         /* batch number within the epoch, from 0 */
    int channels, height, width;
    /* What the batch asks the model to predict (robusta/targets.h), ready
     * for rb_engine_forward_targets: count; labels (the same array as
     * `labels`); masks count × height × width when the split has masks
     * (mask_height, mask_width = height, width), else NULL and 0 × 0;
     * boxes with box_offsets (count + 1 entries) when the split has boxes,
     * else both NULL. Moved with the pixels (see "targets" above). */
    rb_targets targets;
} rb_batch;

/* Creates a loader over `split`, which must outlive it. Allocates every
 * buffer it will use (for boxes: rb_split_max_boxes × batch_size per
 * batch) and starts its worker threads, which wait for
 * rb_loader_start_epoch; making batches allocates nothing. Bad options fail
 * with RB_ERR_INVALID_ARGUMENT naming the option. */
RB_API rb_status rb_loader_create(rb_loader **out, const rb_split *split, const rb_loader_options *options);

/* Starts epoch `epoch` (0 <= epoch < 2^24): the order is drawn, and workers
 * begin filling batches. Abandons whatever is left of the current epoch;
 * may be called at any time, any number of times. */
RB_API rb_status rb_loader_start_epoch(rb_loader *loader, int64_t epoch);

/* The next batch of the epoch, waiting for a worker if it is not ready.
 * At the end of the epoch it returns RB_OK with batch->count == 0 (and does
 * so again on every later call until the next rb_loader_start_epoch). The
 * previous batch's buffer goes back to the workers. RB_ERR_INVALID_ARGUMENT
 * before the first rb_loader_start_epoch. */
RB_API rb_status rb_loader_next(rb_loader *loader, rb_batch *batch);

/* Batches in one epoch. */
RB_API int64_t rb_loader_batch_count(const rb_loader *loader);

/* Stops the workers (at any point of an epoch; each finishes at most the
 * example it is on) and frees everything; NULL is accepted. */
RB_API void rb_loader_destroy(rb_loader *loader);

/* ------------------------------------------------------------ composed scenes
 *
 * A segmentation and detection dataset made from real items, with no
 * download (scenes.c; `robusta make-scenes`): scenes of size × size pixels
 * placing items of the chosen classes of a one-channel 8-bit dataset
 * (Fashion-MNIST, MNIST), scaled, coloured and possibly overlapping, on a
 * texture made from items of the other classes. The folder has Pascal
 * VOC's segmentation layout, readable as `voc-seg:DIR`:
 *   JPEGImages/NAME.png            RGB scenes (PNG: lossless)
 *   SegmentationClass/NAME.png     palette masks: 0 background, 1..K the
 *                                  chosen classes in list order, 255 on
 *                                  each object's outline
 *   ImageSets/Segmentation/{train,val}.txt   the names, one per line
 *   classes.txt                    "background", then the K class names
 *   annotations/instances_{train,val}.json   COCO instances: each visible
 *                                  object's bbox [x, y, w, h], mask area,
 *                                  category 1..K, mask as uncompressed RLE
 *   scenes.json                    the options that made it
 * Train scenes take items from the item dataset's train split, val scenes
 * from its test split. Everything follows from `seed`: the same options
 * give the same bytes. */
typedef struct rb_scenes_options {
    const char *from;     /* item dataset spec ("fashion-mnist") */
    const char *classes;  /* item classes, in order, as rb_split_options.classes ("5-9");
                             at least one class must be left for the background */
    const char *out;      /* folder to make; an existing one only with force */
    int64_t train_images; /* train scenes (>= 1) */
    int64_t val_images;   /* val scenes (>= 1); negative: train_images / 4 */
    int size;             /* side in pixels, 8 to 4096 */
    int min_objects, max_objects; /* objects per scene, 1 <= min <= max <= 64 */
    uint64_t seed;
    bool force;           /* replace an existing folder (only once the new one is complete) */
} rb_scenes_options;

/* Defaults: fashion-mnist, classes 5-9, 1000 train and 250 val scenes of
 * 96 × 96, 1 to 3 objects, seed 0; `out` unset. */
RB_API void rb_scenes_defaults(rb_scenes_options *options);

/* Called after each scene: `set` is "train" or "val". */
typedef void (*rb_scenes_progress)(void *user, const char *set, int64_t done, int64_t total);

/* Makes the folder. The folder is built as OUT.partial-PID and renamed
 * into place when complete: on any failure nothing is left under `out`
 * (an existing folder replaced with force stays as it was). One line each
 * for options out of range, an existing `out` without force, a class list
 * the item dataset refuses or that leaves no class for the background. */
RB_API rb_status rb_scenes_make(const rb_scenes_options *options, rb_scenes_progress progress, void *user);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_DATA_H */
