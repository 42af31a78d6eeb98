/* Image lists (list:DIR,TRAIN.txt[,TEST.txt], robusta/data.h): text files
 * of lines "relative/path label". The parser (image_list.c) is a function
 * from bytes to entries, so the fuzz harnesses drive it; rb_image_list_load
 * (list_dataset.c) reads the files and the images. Internal to librobusta
 * (not installed). */
#ifndef RB_DATA_IMAGE_LIST_H
#define RB_DATA_IMAGE_LIST_H

#include <stddef.h>
#include <stdint.h>

#include <robusta/data.h>
#include <robusta/status.h>

/* Most classes a list may number (labels 0 .. this - 1). */
#define RB_IMAGE_LIST_MAX_CLASSES 1000000

/* Longest path on a line, in bytes. */
#define RB_IMAGE_LIST_MAX_PATH 1024

/* Largest list file read. */
#define RB_IMAGE_LIST_LIMIT ((size_t)64 << 20)

typedef struct rb_image_list {
    size_t count;
    char **paths;    /* count NUL-terminated relative paths */
    int64_t *labels; /* count labels in [0, RB_IMAGE_LIST_MAX_CLASSES) */
    int64_t *lines;  /* the line (from 1) each entry is on */
} rb_image_list;

/* Parses `size` bytes (no terminator needed) of lines "PATH LABEL": the
 * label is the last word (decimal digits), the path everything before it,
 * spaces and tabs around both dropped, so paths may hold spaces. Lines end
 * in '\n' (a '\r' before it is dropped); blank lines are skipped. A path
 * is relative and stays below the list's folder (no leading '/', no ".."
 * part), holds no control character and at most RB_IMAGE_LIST_MAX_PATH
 * bytes; a list has at least one entry. Anything else fails with
 * RB_ERR_CORRUPT and one line naming `what` and the line; *out is then
 * empty. */
rb_status rb_image_list_parse(const void *bytes, size_t size, const char *what, rb_image_list *out);

/* Frees the entries and zeroes the list; NULL is accepted. */
void rb_image_list_free(rb_image_list *list);

/* Split `which` of list:DIR,TRAIN,TEST: the list files (relative to DIR
 * unless absolute) name images below DIR. The classes are 0 .. the train
 * list's largest label, for both splits (a test label beyond them is
 * refused), named "class_K"; images resized or kept as
 * rb_split_from_image_set does under `options` (may be NULL). A listed
 * file that does not exist is refused naming its line. */
rb_status rb_image_list_load(rb_split **out, const char *dir, const char *train_list, const char *test_list,
                             rb_split_which which, const rb_split_options *options);

#endif /* RB_DATA_IMAGE_LIST_H */
