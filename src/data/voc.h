/* Pascal VOC segmentation folders (voc-seg:DIR, robusta/data.h): the text
 * lists (voc_lists.c, functions from bytes to a result for fuzz harnesses)
 * and the reader (voc.c). Internal to librobusta. */
#ifndef RB_DATA_VOC_H
#define RB_DATA_VOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <robusta/data.h>
#include <robusta/status.h>

#include "data/image.h"

/* The most classes a VOC folder may have: masks hold 8-bit ids, and 255
 * means "ignore". */
#define RB_VOC_MAX_CLASSES 255

/* Longest id or class name, in bytes. */
#define RB_VOC_MAX_NAME 200

/* Longest path made of a folder, a sub-folder, an id and an extension. */
#define RB_VOC_PATH_MAX (RB_DATASET_PATH_MAX + 64 + RB_VOC_MAX_NAME)

/* Largest list file read (ids or classes). */
#define RB_VOC_LIST_LIMIT ((size_t)64 << 20)

typedef enum rb_voc_list_kind {
    /* ImageSets/Segmentation/train.txt, val.txt: one id per line; blank lines and the
     * spaces around an id are skipped. An id is a plain file name: not "."
     * or "..", no '/', no space or control character inside, well-formed
     * UTF-8, at most RB_VOC_MAX_NAME bytes, listed once; a list names at
     * least one. */
    RB_VOC_IDS = 1,
    /* classes.txt: one class name per line, line 1 being class 0; spaces
     * around a name are dropped, blank lines at the end skipped, a blank
     * line before a name refused; names unique, well-formed UTF-8 without
     * control characters, at most RB_VOC_MAX_NAME bytes; 1 to
     * RB_VOC_MAX_CLASSES of them. */
    RB_VOC_CLASSES = 2,
    /* classes.txt of a list: set (list_dataset.c): as RB_VOC_CLASSES, but
     * 1 to RB_CLASS_NAMES_MAX names, its labels not being 8-bit mask ids. */
    RB_CLASS_NAMES = 3
} rb_voc_list_kind;

/* The most names a list: set's classes.txt may hold (image_list.h's
 * largest label plus one). */
#define RB_CLASS_NAMES_MAX 1000000

typedef struct rb_voc_list {
    int64_t count;
    char **items;   /* count NUL-terminated strings */
    int64_t *lines; /* the line (from 1) each item is on */
} rb_voc_list;

/* Parses a list of `kind` from `size` bytes (no terminator needed; lines
 * end in "\n" or "\r\n"; a UTF-8 byte-order mark is skipped). `what` names
 * the bytes in messages (the path). A fault fails with RB_ERR_CORRUPT and
 * one line naming `what`, the line and what to do; *out is then empty. */
rb_status rb_voc_parse_list(const void *bytes, size_t size, rb_voc_list_kind kind, const char *what,
                            rb_voc_list *out);

/* Frees the items and zeroes the list; NULL is accepted. */
void rb_voc_list_free(rb_voc_list *list);

/* One example of a VOC folder as its files hold it. */
typedef struct rb_voc_example {
    rb_image image;  /* RB_IMAGE_RGB */
    rb_image mask;   /* RB_IMAGE_INDICES, the image's size, every value < classes or 255 */
    int64_t label;   /* the mask's most frequent class other than 0 and 255 (smaller on a tie); 0 if none */
    char image_path[RB_VOC_PATH_MAX]; /* the image file read */
} rb_voc_example;

/* Reads and checks example `id` of the VOC folder `dir` with `classes`
 * classes: DIR/JPEGImages/ID.jpg (or ID.png when there is no .jpg) and
 * DIR/SegmentationClass/ID.png. `origin` says where the id came from, for
 * the message when no image has it ("DIR/ImageSets/Segmentation/train.txt
 * line 3"); `classes_from` where the class count came from, for the
 * message about a class id out of range. Thread-safe: it touches nothing
 * but its arguments. Every fault is one line naming the file. */
rb_status rb_voc_read_example(const char *dir, const char *id, int64_t classes, const char *origin,
                              const char *classes_from, rb_voc_example *out);

/* Frees both images and zeroes the struct; NULL is accepted. */
void rb_voc_example_free(rb_voc_example *example);

/* Opens split `which` of the VOC folder `dir` (train.txt or val.txt),
 * every image resized to size × size as it is decoded (size 0: kept, and
 * then all must share one size). The split's kind is RB_DATASET_VOC_SEG. */
rb_status rb_voc_load(rb_split **out, const char *dir, rb_split_which which, int size);

#endif /* RB_DATA_VOC_H */
