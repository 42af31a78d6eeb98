/* Image folders (folder:DIR, robusta/data.h), laid out as torchvision's
 * ImageFolder reads them: DIR/train/CLASS/... and DIR/test/CLASS/... (or
 * DIR/val/), one folder per class. The classes are train's class folders
 * in sorted order, for both splits (torchvision would number a test
 * folder's classes by its own folders, so a class missing from test would
 * shift the labels of the rest). Within a class, files are found as
 * ImageFolder finds them: every sub-folder walked, folders in sorted
 * order of their paths and files sorted within each, file names matched
 * by extension, case ignored. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <robusta/data.h>
#include <robusta/rng.h>
#include <robusta/suggest.h>

#include "data/data_internal.h"
#include "sys/internal.h"

/* Deepest sub-folder walked inside a class (symbolic links are followed,
 * as ImageFolder follows them, so a link to a parent would loop). */
#define FOLDER_MAX_DEPTH 32

#define FOLDER_PATH_MAX (RB_DATASET_PATH_MAX + 1024)

/* A growable list of strings. */
typedef struct names {
    char **items;
    size_t count, room;
} names;

static void names_free(names *n)
{
    for (size_t i = 0; i < n->count; i++)
        free(n->items[i]);
    free(n->items);
    memset(n, 0, sizeof *n);
}

static rb_status names_add(names *n, const char *text)
{
    char *copy;
    if (n->count == n->room) {
        size_t room = n->room ? 2 * n->room : 64;
        char **items = realloc(n->items, room * sizeof *items);
        if (items == NULL)
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory listing an image folder");
        n->items = items;
        n->room = room;
    }
    if ((copy = strdup(text)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory listing an image folder");
    n->items[n->count++] = copy;
    return RB_OK;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_sort(names *n)
{
    if (n->count > 1)
        qsort(n->items, n->count, sizeof *n->items, compare_names);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool ends_with(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n > k && strcasecmp(name + n - k, suffix) == 0;
}

/* What ImageFolder would load: 1 PNG or JPEG, -1 another image format it
 * knows (refused here), 0 anything else (skipped, as ImageFolder skips). */
static int image_kind(const char *name)
{
    static const char *const ours[] = {".jpg", ".jpeg", ".png"};
    static const char *const theirs[] = {".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
        if (ends_with(name, ours[i]))
            return 1;
    for (size_t i = 0; i < sizeof theirs / sizeof theirs[0]; i++)
        if (ends_with(name, theirs[i]))
            return -1;
    return 0;
}

/* The entries of `path`: sub-folders into dirs, other entries into files
 * (both unsorted). */
static rb_status list_dir(const char *path, names *dirs, names *files)
{
    DIR *d = opendir(path);
    struct dirent *e;
    rb_status st = RB_OK;
    if (d == NULL)
        return rb_error_set(errno == ENOENT || errno == ENOTDIR ? RB_ERR_NOT_FOUND : RB_ERR_IO,
                            "cannot open the folder %s: %s", path, strerror(errno));
    while (st == RB_OK && (e = readdir(d)) != NULL) {
        char full[FOLDER_PATH_MAX];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if ((st = rb_path_join(full, FOLDER_PATH_MAX, path, e->d_name)) == RB_OK)
            st = names_add(is_dir(full) ? dirs : files, e->d_name);
    }
    closedir(d);
    return st;
}

/* Every folder under `root` (relative `rel` to the split folder: "CLASS",
 * "CLASS/SUB" ...), itself included, appended to `roots` in no order. */
static rb_status collect_roots(const char *root, const char *rel, int depth, names *roots)
{
    names dirs = {0}, files = {0};
    rb_status st;
    if (depth > FOLDER_MAX_DEPTH)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s: folders nest more than %d deep inside a class (a symbolic link to a parent?)", root,
                            FOLDER_MAX_DEPTH);
    if ((st = names_add(roots, rel)) != RB_OK || (st = list_dir(root, &dirs, &files)) != RB_OK) {
        names_free(&dirs);
        return st;
    }
    for (size_t i = 0; st == RB_OK && i < dirs.count; i++) {
        char sub_root[FOLDER_PATH_MAX], sub_rel[FOLDER_PATH_MAX];
        if ((st = rb_path_join(sub_root, FOLDER_PATH_MAX, root, dirs.items[i])) == RB_OK &&
            (st = rb_path_join(sub_rel, FOLDER_PATH_MAX, rel, dirs.items[i])) == RB_OK)
            st = collect_roots(sub_root, sub_rel, depth + 1, roots);
    }
    names_free(&dirs);
    names_free(&files);
    return st;
}

/* Every PNG and JPEG of class folder CLASS of split_dir, appended to out as
 * paths relative to split_dir, in ImageFolder's order: os.walk's folders
 * sorted by their paths as strings (so "A B" comes between "A" and "A/B",
 * not after A's sub-folders), each folder's files sorted. */
static rb_status walk_class(const char *split_dir, const char *class_name, names *out)
{
    char root[FOLDER_PATH_MAX];
    names roots = {0};
    rb_status st;
    if ((st = rb_path_join(root, FOLDER_PATH_MAX, split_dir, class_name)) != RB_OK ||
        (st = collect_roots(root, class_name, 0, &roots)) != RB_OK) {
        names_free(&roots);
        return st;
    }
    names_sort(&roots);
    for (size_t r = 0; st == RB_OK && r < roots.count; r++) {
        char folder[FOLDER_PATH_MAX];
        names dirs = {0}, files = {0};
        if ((st = rb_path_join(folder, FOLDER_PATH_MAX, split_dir, roots.items[r])) == RB_OK &&
            (st = list_dir(folder, &dirs, &files)) == RB_OK)
            names_sort(&files);
        for (size_t i = 0; st == RB_OK && i < files.count; i++) {
            char path[FOLDER_PATH_MAX];
            int kind = image_kind(files.items[i]);
            if (kind == 0)
                continue;
            if (kind < 0)
                st = rb_error_set(RB_ERR_UNSUPPORTED,
                                  "%s/%s: robusta reads PNG and JPEG images only; convert it (for example with "
                                  "ImageMagick's mogrify -format png) or move it out of the folder",
                                  folder, files.items[i]);
            else if ((st = rb_path_join(path, FOLDER_PATH_MAX, roots.items[r], files.items[i])) == RB_OK)
                st = names_add(out, path);
        }
        names_free(&dirs);
        names_free(&files);
    }
    names_free(&roots);
    return st;
}

/* A folder without train/ and test/ is split here: of a class's n images
 * (files[first ..]), round(n / 5) go to test, at least 1 when n >= 2,
 * chosen by a generator fixed per class (seed 0), so every run and every
 * seed sees the same split; the rest are train. Keeps `which`'s images in
 * their order and drops the others. */
static rb_status keep_share(names *files, size_t first, rb_split_which which, uint64_t class_index)
{
    const size_t n = files->count - first;
    size_t test = (n + 2) / 5, kept = first;
    unsigned char *in_test = calloc(n + 1, 1);
    size_t *order = malloc((n + 1) * sizeof *order);
    rb_rng rng;
    if (n >= 2 && test == 0)
        test = 1;
    if (in_test == NULL || order == NULL) {
        free(in_test);
        free(order);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory splitting an image folder");
    }
    rb_rng_init(&rng, 0, RB_RNG_STREAM(RB_RNG_SUBSET, 1), class_index);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = 0; i < test; i++) { /* the first `test` of a Fisher-Yates shuffle */
        size_t j = i + (size_t)rb_rng_below(&rng, (uint64_t)(n - i)), t = order[i];
        order[i] = order[j];
        order[j] = t;
        in_test[order[i]] = 1;
    }
    for (size_t i = 0; i < n; i++) {
        char *name = files->items[first + i];
        if ((in_test[i] != 0) == (which == RB_SPLIT_TEST))
            files->items[kept++] = name;
        else
            free(name);
    }
    files->count = kept;
    free(in_test);
    free(order);
    return RB_OK;
}

rb_status rb_folder_load(rb_split **out, const char *dir, rb_split_which which, const rb_split_options *options)
{
    const int size = options != NULL ? options->size : 0;
    char train[FOLDER_PATH_MAX], split_dir[FOLDER_PATH_MAX], what[FOLDER_PATH_MAX + 32];
    names classes = {0}, ignored = {0}, present = {0}, files = {0};
    bool flat;
    int64_t *labels = NULL;
    rb_split *s = NULL;
    rb_status st;

    *out = NULL;
    if (size < 0 || size > 65536)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "folder:%s: image size %d is out of range [1, 65536] (0 keeps "
                            "the images' own size)", dir, size);
    if (!is_dir(dir))
        return rb_error_set(RB_ERR_NOT_FOUND, "folder:%s: %s is not a folder; give the folder holding train/ and "
                            "test/ (or val/), one sub-folder per class in each", dir, dir);
    snprintf(train, sizeof train, "%s/train", dir);
    snprintf(split_dir, sizeof split_dir, "%s/test", dir);
    snprintf(what, sizeof what, "%s/val", dir);
    /* no train/, test/ or val/: DIR's folders are the classes, split here */
    flat = !is_dir(train) && !is_dir(split_dir) && !is_dir(what);
    if (flat) {
        snprintf(train, sizeof train, "%s", dir);
        snprintf(split_dir, sizeof split_dir, "%s", dir);
    } else if (!is_dir(train)) {
        return rb_error_set(RB_ERR_NOT_FOUND, "folder:%s: no folder %s; folder:DIR reads DIR/train/CLASS/*.jpg "
                            "(or .png) and DIR/test/ (or DIR/val/) laid out alike, or DIR/CLASS/ alone", dir, train);
    } else if (which == RB_SPLIT_TRAIN) {
        snprintf(split_dir, sizeof split_dir, "%s", train);
    } else {
        snprintf(split_dir, sizeof split_dir, "%s/test", dir);
        if (!is_dir(split_dir))
            snprintf(split_dir, sizeof split_dir, "%s/val", dir);
        if (!is_dir(split_dir))
            return rb_error_set(RB_ERR_NOT_FOUND, "folder:%s: no test split: neither %s/test nor %s/val is a folder",
                                dir, dir, dir);
    }
    snprintf(what, sizeof what, "folder:%s %s", dir, rb_split_which_str(which));

    if ((st = list_dir(train, &classes, &ignored)) != RB_OK)
        goto done;
    names_sort(&classes);
    if (classes.count == 0) {
        st = rb_error_set(RB_ERR_INVALID_ARGUMENT, "folder:%s: %s has no class folders; put each class's images in "
                          "a folder of its own (train/CLASS/)", dir, train);
        goto done;
    }
    names_free(&ignored);
    if ((st = list_dir(split_dir, &present, &ignored)) != RB_OK)
        goto done;
    for (size_t i = 0; i < present.count; i++)
        if (bsearch(&present.items[i], classes.items, classes.count, sizeof *classes.items, compare_names) == NULL) {
            const char *best = rb_suggest(present.items[i], (const char *const *)classes.items, classes.count);
            st = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                              "%s/%s is not a class: %s has no folder '%s'%s%s%s; the classes are train's folders",
                              split_dir, present.items[i], train, present.items[i], best ? " (did you mean '" : "",
                              best ? best : "", best ? "'?)" : "");
            goto done;
        }
    /* every class's files, in class order; a class folder with none is refused */
    for (size_t c = 0; c < classes.count; c++) {
        char root[FOLDER_PATH_MAX];
        size_t before = files.count;
        int64_t *grown;
        if ((st = rb_path_join(root, FOLDER_PATH_MAX, split_dir, classes.items[c])) != RB_OK)
            goto done;
        if (which != RB_SPLIT_TRAIN && !is_dir(root))
            continue; /* a class the test split does not show */
        if ((st = walk_class(split_dir, classes.items[c], &files)) != RB_OK)
            goto done;
        if (files.count == before) {
            st = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                              "%s holds no PNG or JPEG images (.jpg, .jpeg, .png); add some or remove the folder",
                              root);
            goto done;
        }
        if ((grown = realloc(labels, (files.count + 1) * sizeof *labels)) == NULL) {
            st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory listing %s", root);
            goto done;
        }
        labels = grown;
        for (size_t k = before; k < files.count; k++)
            labels[k] = (int64_t)c;
        if (flat && (st = keep_share(&files, before, which, (uint64_t)c)) != RB_OK)
            goto done;
    }
    if (files.count == 0) {
        st = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s holds no class folders with images", split_dir);
        goto done;
    }

    st = rb_split_from_image_set(&s, RB_DATASET_FOLDER, what, split_dir, (const char *const *)files.items, labels,
                                 files.count, (int64_t)classes.count, (const char *const *)classes.items, options);
done:
    names_free(&classes);
    names_free(&ignored);
    names_free(&present);
    names_free(&files);
    free(labels);
    if (st != RB_OK) {
        rb_split_destroy(s);
        return st;
    }
    *out = s;
    return RB_OK;
}
