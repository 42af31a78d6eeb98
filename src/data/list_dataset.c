/* list:DIR,TRAIN.txt[,TEST.txt] (image_list.h): the list files read and
 * checked against each other and the folder, then the images read. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data_internal.h"
#include "data/image_list.h"
#include "data/voc.h"
#include "sys/internal.h"

/* DIR/classes.txt, when there is one: the class names, line N naming
 * class N - 1; names->count 0 without it. */
static rb_status read_class_names(const char *dir, char *path, size_t path_size, rb_voc_list *names)
{
    unsigned char *bytes = NULL;
    size_t size = 0;
    rb_status st = rb_path_join(path, path_size, dir, "classes.txt");
    memset(names, 0, sizeof *names);
    if (st == RB_OK)
        st = rb_file_read_all(path, RB_VOC_LIST_LIMIT, &bytes, &size);
    if (st == RB_ERR_NOT_FOUND) {
        rb_error_clear();
        return RB_OK;
    }
    if (st == RB_OK)
        st = rb_voc_parse_list(bytes, size, RB_CLASS_NAMES, path, names);
    free(bytes);
    return st;
}

/* Reads and parses list file `name` (relative to dir unless absolute). */
static rb_status read_list(const char *dir, const char *name, char *path, size_t path_size, rb_image_list *out)
{
    unsigned char *bytes = NULL;
    size_t size = 0;
    rb_status st;
    memset(out, 0, sizeof *out);
    if (name[0] == '/')
        st = (size_t)snprintf(path, path_size, "%s", name) < path_size
                 ? RB_OK
                 : rb_error_set(RB_ERR_INVALID_ARGUMENT, "%.60s...: path too long", name);
    else
        st = rb_path_join(path, path_size, dir, name);
    if (st != RB_OK)
        return st;
    st = rb_file_read_all(path, RB_IMAGE_LIST_LIMIT, &bytes, &size);
    if (st == RB_ERR_NOT_FOUND)
        st = rb_error_set(RB_ERR_NOT_FOUND, "cannot open %s: no such file (list:DIR,TRAIN.txt,TEST.txt reads the "
                          "lists relative to DIR)", path);
    if (st == RB_OK)
        st = rb_image_list_parse(bytes, size, path, out);
    free(bytes);
    return st;
}

rb_status rb_image_list_load(rb_split **out, const char *dir, const char *train_list, const char *test_list,
                             rb_split_which which, const rb_split_options *options)
{
    const int size = options != NULL ? options->size : 0;
    char train_path[RB_DATASET_PATH_MAX + 8], path[RB_DATASET_PATH_MAX + 8], what[RB_DATASET_PATH_MAX + 64];
    char names_path[RB_DATASET_PATH_MAX + 16];
    rb_image_list train = {0}, test = {0};
    rb_voc_list names = {0};
    const rb_image_list *list;
    const char *list_path;
    int64_t classes = 0;
    rb_status st;
    struct stat info;

    *out = NULL;
    if (size < 0 || size > 65536)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "list:%s: image size %d is out of range [1, 65536] (0 keeps "
                            "the images' own size)", dir, size);
    if (stat(dir, &info) != 0 || !S_ISDIR(info.st_mode))
        return rb_error_set(RB_ERR_NOT_FOUND, "list:%s: %s is not a folder; give the folder the lists' paths are "
                            "relative to", dir, dir);
    if (which == RB_SPLIT_TEST && (test_list == NULL || test_list[0] == '\0'))
        return rb_error_set(RB_ERR_NOT_FOUND, "list:%s has no test list; add it: list:DIR,TRAIN.txt,TEST.txt", dir);
    /* the train list numbers the classes for both splits */
    if ((st = read_list(dir, train_list, train_path, sizeof train_path, &train)) != RB_OK)
        return st;
    for (size_t i = 0; i < train.count; i++)
        if (train.labels[i] + 1 > classes)
            classes = train.labels[i] + 1;
    /* classes.txt, if there, names the classes and says how many there are */
    if ((st = read_class_names(dir, names_path, sizeof names_path, &names)) != RB_OK)
        goto done;
    if (names.count > 0) {
        for (size_t i = 0; i < train.count; i++)
            if (train.labels[i] >= names.count) {
                st = rb_error_set(RB_ERR_CORRUPT,
                                  "%s line %" PRId64 ": label %" PRId64 " is out of range: %s names classes 0-%" PRId64,
                                  train_path, train.lines[i], train.labels[i], names_path, names.count - 1);
                goto done;
            }
        classes = names.count;
    }
    list = &train;
    list_path = train_path;
    if (which == RB_SPLIT_TEST) {
        if ((st = read_list(dir, test_list, path, sizeof path, &test)) != RB_OK)
            goto done;
        for (size_t i = 0; i < test.count; i++)
            if (test.labels[i] >= classes) {
                st = rb_error_set(RB_ERR_CORRUPT,
                                  "%s line %" PRId64 ": label %" PRId64 " is out of range: %s%s numbers classes 0-%" PRId64,
                                  path, test.lines[i], test.labels[i], names.count > 0 ? "" : "the train list ",
                                  names.count > 0 ? names_path : train_path, classes - 1);
                goto done;
            }
        list = &test;
        list_path = path;
    }
    for (size_t i = 0; i < list->count; i++) {
        char image[RB_DATASET_PATH_MAX + RB_IMAGE_LIST_MAX_PATH + 8];
        if ((st = rb_path_join(image, sizeof image, dir, list->paths[i])) != RB_OK)
            goto done;
        if (stat(image, &info) != 0 || S_ISDIR(info.st_mode)) {
            st = rb_error_set(RB_ERR_NOT_FOUND, "%s line %" PRId64 " names %s, which is not a file; fix the line or "
                              "add the image", list_path, list->lines[i], image);
            goto done;
        }
    }
    snprintf(what, sizeof what, "list:%s %s", dir, rb_split_which_str(which));
    st = rb_split_from_image_set(out, RB_DATASET_LIST, what, dir, (const char *const *)list->paths, list->labels,
                                 list->count, classes, names.count > 0 ? (const char *const *)names.items : NULL,
                                 options);
done:
    rb_image_list_free(&train);
    rb_image_list_free(&test);
    rb_voc_list_free(&names);
    return st;
}
