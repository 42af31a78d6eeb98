/* Dataset spec strings and opening a split from files (robusta/data.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <robusta/data.h>
#include <robusta/interop.h>
#include <robusta/suggest.h>

#include "data/coco_data.h"
#include "data/data_internal.h"
#include "data/image_list.h"
#include "data/voc.h"
#include "sys/internal.h"

/* Files larger than this are refused before reading (CIFAR-100's train.bin
 * is 150 MB, Fashion-MNIST's raw train images 47 MB). */
#define DATA_FILE_LIMIT ((size_t)1 << 32)

#define NPY_FORM "npy:IMAGES.npy,LABELS.npy[;TEST_IMAGES.npy,TEST_LABELS.npy]"
#define LIST_FORM "list:DIR,TRAIN.txt[,TEST.txt]"
#define COCO_FORM "coco:IMAGES,ANNOTATIONS.json[;TEST_IMAGES,TEST_ANNOTATIONS.json] or coco:DIR"

#define SPEC_FORMS                                                                                             \
    "mnist:DIR, fashion-mnist[:DIR], cifar10:DIR, cifar100:DIR, "                                              \
    "npy:IMAGES.npy,LABELS.npy[;TEST_IMAGES.npy,TEST_LABELS.npy], voc-seg:DIR, "                              \
    "coco:IMAGES,ANNOTATIONS.json[;TEST_IMAGES,TEST_ANNOTATIONS.json], coco:DIR, folder:DIR, "               \
    "list:DIR,TRAIN.txt[,TEST.txt]"

static const char *const kind_names[] = {"mnist", "fashion-mnist", "cifar10", "cifar100", "npy",
                                         "voc-seg", "coco", "folder", "list"};
static const rb_data_source kind_values[] = {RB_DATASET_MNIST,   RB_DATASET_FASHION_MNIST, RB_DATASET_CIFAR10,
                                              RB_DATASET_CIFAR100, RB_DATASET_NPY,          RB_DATASET_VOC_SEG,
                                              RB_DATASET_COCO,     RB_DATASET_FOLDER,       RB_DATASET_LIST};
#define KIND_COUNT (sizeof kind_names / sizeof kind_names[0])

/* ------------------------------------------------------------ specs */

static rb_status copy_path(char *dst, const char *src, size_t len, const char *spec)
{
    if (len == 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "dataset spec '%s' has an empty path; expected %s", spec,
                            SPEC_FORMS);
    if (len >= RB_DATASET_PATH_MAX)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "dataset spec '%.60s...': a path is longer than %d bytes", spec,
                            RB_DATASET_PATH_MAX - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
    return RB_OK;
}

/* "A,B" of length len into first and second (npy: images and labels;
 * coco: the image folder and the annotation file); `form` is the spec's
 * expected form, for the message. */
static rb_status parse_pair(const char *part, size_t len, char *images, char *labels, const char *spec,
                            const char *form)
{
    const char *comma = memchr(part, ',', len);
    rb_status st;
    if (comma == NULL || memchr(comma + 1, ',', len - (size_t)(comma + 1 - part)) != NULL || comma == part ||
        comma + 1 == part + len)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "dataset spec '%s': expected %s", spec, form);
    if ((st = copy_path(images, part, (size_t)(comma - part), spec)) != RB_OK)
        return st;
    return copy_path(labels, comma + 1, len - (size_t)(comma + 1 - part), spec);
}

rb_status rb_dataset_spec_parse(rb_dataset_spec *out, const char *text)
{
    const char *colon, *rest;
    char word[64];
    size_t len;
    rb_status st;

    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_dataset_spec_parse: out is NULL");
    memset(out, 0, sizeof *out);
    if (text == NULL || text[0] == '\0')
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "empty dataset spec: expected one of %s", SPEC_FORMS);
    colon = strchr(text, ':');
    len = colon ? (size_t)(colon - text) : strlen(text);
    rest = colon ? colon + 1 : NULL;
    snprintf(word, sizeof word, "%.*s", (int)(len < sizeof word ? len : sizeof word - 1), text);
    for (size_t k = 0; k < KIND_COUNT; k++)
        if (len == strlen(kind_names[k]) && strncmp(text, kind_names[k], len) == 0)
            out->kind = kind_values[k];
    if (out->kind == RB_DATASET_NONE) {
        const char *best = len < sizeof word ? rb_suggest(word, kind_names, KIND_COUNT) : NULL;
        if (best != NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "unknown dataset kind '%s' in spec '%s'; did you mean '%s'? (kinds: mnist, "
                                "fashion-mnist, cifar10, cifar100, npy, voc-seg, coco, folder, list)",
                                word, text, best);
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "unknown dataset kind '%s' in spec '%s' (kinds: mnist, fashion-mnist, cifar10, cifar100, "
                            "npy, voc-seg, coco, folder, list)",
                            word, text);
    }

    if (out->kind == RB_DATASET_COCO && rest != NULL && strchr(rest, ',') == NULL) {
        /* coco:DIR, the layout make-scenes writes */
        if (strchr(rest, ';') != NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "dataset spec '%s': expected %s", text, COCO_FORM);
        if (rest[0] == '\0')
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "dataset spec '%s' names no files: expected %s", text,
                                COCO_FORM);
        for (int w = 0; w < 2; w++) {
            static const char *const files[2] = {"annotations/instances_train.json", "annotations/instances_val.json"};
            if ((size_t)snprintf(out->images[w], RB_DATASET_PATH_MAX, "%s/JPEGImages", rest) >= RB_DATASET_PATH_MAX ||
                (size_t)snprintf(out->labels[w], RB_DATASET_PATH_MAX, "%s/%s", rest, files[w]) >= RB_DATASET_PATH_MAX)
                return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                    "dataset spec '%.60s...': a path is longer than %d bytes", text,
                                    RB_DATASET_PATH_MAX - 1);
        }
        return copy_path(out->dir, rest, strlen(rest), text);
    }
    if (out->kind == RB_DATASET_LIST) {
        /* list:DIR,TRAIN.txt[,TEST.txt] */
        const char *c1 = rest != NULL ? strchr(rest, ',') : NULL, *c2 = c1 != NULL ? strchr(c1 + 1, ',') : NULL;
        if (c1 == NULL || (c2 != NULL && strchr(c2 + 1, ',') != NULL))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "dataset spec '%s': expected %s", text, LIST_FORM);
        if ((st = copy_path(out->dir, rest, (size_t)(c1 - rest), text)) != RB_OK ||
            (st = copy_path(out->labels[RB_SPLIT_TRAIN], c1 + 1,
                            c2 != NULL ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1), text)) != RB_OK)
            return st;
        return c2 != NULL ? copy_path(out->labels[RB_SPLIT_TEST], c2 + 1, strlen(c2 + 1), text) : RB_OK;
    }
    if (out->kind != RB_DATASET_NPY && out->kind != RB_DATASET_COCO) {
        if (rest == NULL || rest[0] == '\0') {
            if (out->kind == RB_DATASET_FASHION_MNIST) {
                snprintf(out->dir, sizeof out->dir, "%s", RB_FASHION_MNIST_DEFAULT_DIR);
                return RB_OK;
            }
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "dataset spec '%s' needs a folder: %s:DIR (only fashion-mnist has a default, %s)",
                                text, rb_data_source_str(out->kind), RB_FASHION_MNIST_DEFAULT_DIR);
        }
        return copy_path(out->dir, rest, strlen(rest), text);
    }

    {
        const char *form = out->kind == RB_DATASET_NPY ? NPY_FORM : COCO_FORM;
        const char *semi;
        size_t train_len;
        if (rest == NULL || rest[0] == '\0')
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "dataset spec '%s' names no files: expected %s", text, form);
        semi = strchr(rest, ';');
        train_len = semi ? (size_t)(semi - rest) : strlen(rest);
        if ((st = parse_pair(rest, train_len, out->images[RB_SPLIT_TRAIN], out->labels[RB_SPLIT_TRAIN], text,
                             form)) != RB_OK)
            return st;
        if (semi != NULL && (st = parse_pair(semi + 1, strlen(semi + 1), out->images[RB_SPLIT_TEST],
                                             out->labels[RB_SPLIT_TEST], text, form)) != RB_OK)
            return st;
    }
    return RB_OK;
}

/* ------------------------------------------------------------ files */

/* Reads PATH, or PATH.gz when PATH does not exist. *used names the one read. */
static rb_status read_maybe_gz(const char *path, unsigned char **data, size_t *size, char *used, size_t used_size,
                               rb_data_source kind, const char *dir)
{
    rb_status st = rb_file_read_all(path, DATA_FILE_LIMIT, data, size);
    snprintf(used, used_size, "%s", path);
    if (st != RB_ERR_NOT_FOUND)
        return st;
    snprintf(used, used_size, "%s.gz", path);
    st = rb_file_read_all(used, DATA_FILE_LIMIT, data, size);
    if (st != RB_ERR_NOT_FOUND)
        return st;
    snprintf(used, used_size, "%s", path);
    if (kind == RB_DATASET_FASHION_MNIST && strcmp(dir, RB_FASHION_MNIST_DEFAULT_DIR) == 0)
        return rb_error_set(RB_ERR_NOT_FOUND,
                            "cannot open %s (nor %s.gz): no such file; install Debian's dataset-fashion-mnist "
                            "package or give fashion-mnist:DIR",
                            path, path);
    return rb_error_set(RB_ERR_NOT_FOUND, "cannot open %s (nor %s.gz): no such file", path, path);
}

static rb_status join(char *out, size_t size, const char *dir, const char *sub, const char *name)
{
    char mid[RB_DATASET_PATH_MAX + 64];
    rb_status st;
    if (sub == NULL)
        return rb_path_join(out, size, dir, name);
    if ((st = rb_path_join(mid, sizeof mid, dir, sub)) != RB_OK)
        return st;
    return rb_path_join(out, size, mid, name);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static rb_status load_idx(rb_split **out, const rb_dataset_spec *spec, rb_split_which which)
{
    const char *prefix = which == RB_SPLIT_TRAIN ? "train" : "t10k";
    char ipath[RB_DATASET_PATH_MAX + 64], lpath[RB_DATASET_PATH_MAX + 64];
    char iused[RB_DATASET_PATH_MAX + 80], lused[RB_DATASET_PATH_MAX + 80];
    char name[32];
    unsigned char *ib = NULL, *lb = NULL;
    size_t isz = 0, lsz = 0;
    rb_status st;

    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    if ((st = join(ipath, sizeof ipath, spec->dir, NULL, name)) != RB_OK)
        return st;
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    if ((st = join(lpath, sizeof lpath, spec->dir, NULL, name)) != RB_OK)
        return st;
    st = read_maybe_gz(ipath, &ib, &isz, iused, sizeof iused, spec->kind, spec->dir);
    if (st == RB_OK)
        st = read_maybe_gz(lpath, &lb, &lsz, lused, sizeof lused, spec->kind, spec->dir);
    if (st == RB_OK)
        st = rb_split_from_idx(out, spec->kind, ib, isz, iused, lb, lsz, lused);
    free(ib);
    free(lb);
    return st;
}

static rb_status load_cifar(rb_split **out, const rb_dataset_spec *spec, rb_split_which which)
{
    const bool c10 = spec->kind == RB_DATASET_CIFAR10;
    const char *sub = NULL;
    char paths[5][RB_DATASET_PATH_MAX + 64];
    const char *names[5];
    unsigned char *bytes[5] = {NULL, NULL, NULL, NULL, NULL};
    size_t sizes[5] = {0, 0, 0, 0, 0}, count;
    rb_status st = RB_OK;

    if (c10 && which == RB_SPLIT_TRAIN) {
        static const char *const batches[5] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                               "data_batch_4.bin", "data_batch_5.bin"};
        count = 5;
        for (size_t i = 0; i < 5; i++)
            names[i] = batches[i];
    } else {
        count = 1;
        names[0] = c10 ? "test_batch.bin" : which == RB_SPLIT_TRAIN ? "train.bin" : "test.bin";
    }
    /* The tarballs unpack into a folder of their own; accept its parent. */
    if ((st = join(paths[0], sizeof paths[0], spec->dir, NULL, names[0])) != RB_OK)
        return st;
    if (!exists(paths[0])) {
        const char *candidate = c10 ? "cifar-10-batches-bin" : "cifar-100-binary";
        if (join(paths[0], sizeof paths[0], spec->dir, candidate, names[0]) == RB_OK && exists(paths[0]))
            sub = candidate;
    }
    for (size_t i = 0; i < count && st == RB_OK; i++)
        if ((st = join(paths[i], sizeof paths[i], spec->dir, sub, names[i])) == RB_OK)
            st = rb_file_read_all(paths[i], DATA_FILE_LIMIT, &bytes[i], &sizes[i]);
    if (st == RB_OK) {
        const void *files[5];
        const char *whats[5];
        for (size_t i = 0; i < count; i++) {
            files[i] = bytes[i];
            whats[i] = paths[i];
        }
        st = rb_split_from_cifar(out, spec->kind, files, sizes, whats, count);
    }
    for (size_t i = 0; i < 5; i++)
        free(bytes[i]);
    return st;
}

static rb_status load_npy(rb_split **out, const rb_dataset_spec *spec, rb_split_which which)
{
    rb_npy *images = NULL, *labels = NULL;
    rb_status st;
    if (spec->images[which][0] == '\0')
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "dataset spec npy:%s,%s has no test split: append ;TEST_IMAGES.npy,TEST_LABELS.npy",
                            spec->images[RB_SPLIT_TRAIN], spec->labels[RB_SPLIT_TRAIN]);
    st = rb_npy_load(&images, spec->images[which]);
    if (st == RB_OK)
        st = rb_npy_load(&labels, spec->labels[which]);
    if (st == RB_OK)
        st = rb_split_from_npy(out, images, spec->images[which], labels, spec->labels[which]);
    rb_npy_destroy(images);
    rb_npy_destroy(labels);
    return st;
}

static rb_status load_coco(rb_split **out, const rb_dataset_spec *spec, rb_split_which which, int size)
{
    if (spec->images[which][0] == '\0')
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "dataset spec coco:%s,%s has no test split: append ;TEST_IMAGES,TEST_ANNOTATIONS.json",
                            spec->images[RB_SPLIT_TRAIN], spec->labels[RB_SPLIT_TRAIN]);
    return rb_coco_data_load(out, spec->images[which], spec->labels[which], which, size);
}

static bool options_empty(const rb_split_options *o)
{
    /* an image set under the paper's transform has taken size and channels */
    return o == NULL || ((o->classes == NULL || o->classes[0] == '\0') && o->per_class == 0 && o->indices == NULL &&
                         ((o->size == 0 && o->channels == 0) || o->transform == RB_TRANSFORM_PAPER));
}

rb_status rb_split_load(rb_split **out, const rb_dataset_spec *spec, rb_split_which which,
                        const rb_split_options *options)
{
    rb_split *raw = NULL;
    rb_status st;
    char name[64];

    if (out == NULL || spec == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_load: out or spec is NULL");
    *out = NULL;
    if (which != RB_SPLIT_TRAIN && which != RB_SPLIT_TEST)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_load: split %d is neither train nor test", (int)which);
    if (options != NULL && options->transform != RB_TRANSFORM_NONE) {
        if (options->transform != RB_TRANSFORM_PAPER)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_load: transform %d is neither none nor paper",
                                (int)options->transform);
        if (spec->kind != RB_DATASET_FOLDER && spec->kind != RB_DATASET_LIST)
            return rb_error_set(RB_ERR_UNSUPPORTED,
                                "the paper's transform (--transform paper) reads image files of their own sizes: "
                                "folder: and list: datasets, not %s; leave it out for %s",
                                rb_data_source_str(spec->kind), rb_data_source_str(spec->kind));
    }
    switch (spec->kind) {
    case RB_DATASET_MNIST:
    case RB_DATASET_FASHION_MNIST: st = load_idx(&raw, spec, which); break;
    case RB_DATASET_CIFAR10:
    case RB_DATASET_CIFAR100: st = load_cifar(&raw, spec, which); break;
    case RB_DATASET_NPY: st = load_npy(&raw, spec, which); break;
    case RB_DATASET_VOC_SEG: st = rb_voc_load(&raw, spec->dir, which, options != NULL ? options->size : 0); break;
    case RB_DATASET_COCO: st = load_coco(&raw, spec, which, options != NULL ? options->size : 0); break;
    case RB_DATASET_FOLDER: st = rb_folder_load(&raw, spec->dir, which, options); break;
    case RB_DATASET_LIST:
        st = rb_image_list_load(&raw, spec->dir, spec->labels[RB_SPLIT_TRAIN], spec->labels[RB_SPLIT_TEST], which,
                                options);
        break;
    case RB_DATASET_NONE:
    default: return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_load: the spec names no dataset kind");
    }
    if (st != RB_OK)
        return st;
    snprintf(name, sizeof name, "%s %s", rb_data_source_str(spec->kind), rb_split_which_str(which));
    {
        char *copy = strdup(name);
        if (copy == NULL) {
            rb_split_destroy(raw);
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory naming a split");
        }
        free(raw->name);
        raw->name = copy;
    }
    if (options_empty(options)) {
        *out = raw;
        return RB_OK;
    }
    st = rb_split_apply(out, raw, options);
    rb_split_destroy(raw);
    return st;
}

rb_status rb_split_open(rb_split **out, const char *spec, rb_split_which which, const rb_split_options *options)
{
    rb_dataset_spec *parsed;
    rb_status st;
    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_open: out is NULL");
    *out = NULL;
    /* 20 KB of paths: not on the stack of a worker thread. */
    parsed = malloc(sizeof *parsed);
    if (parsed == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory parsing a dataset spec");
    st = rb_dataset_spec_parse(parsed, spec);
    if (st == RB_OK)
        st = rb_split_load(out, parsed, which, options);
    free(parsed);
    return st;
}
