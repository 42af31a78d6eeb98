/* Composed scenes (robusta/data.h, "Composed scenes"): a segmentation and
 * detection dataset in Pascal VOC's layout, made from real Fashion-MNIST
 * (or MNIST) items, so the dense tasks have data with no download.
 *
 * A scene of size S × S is drawn from rb_rng keyed by (seed, split, scene
 * index), so any scene can be remade alone and the output does not depend
 * on how many scenes come before it:
 *   1. background: a grey level g in [0.05, 0.25], then
 *      SCENE_BACKGROUND_ITEMS items of the classes NOT chosen, each scaled
 *      to a side in [S/3, S] at a random place, drawn at 40% intensity
 *      where brighter than what is there (a texture of real clothing that
 *      is not any class), the whole tinted by a muted colour;
 *   2. objects: a count in [min, max]; each a random item of a chosen
 *      class, scaled by nearest neighbour to a side in [0.3 S, 0.6 S],
 *      placed wholly inside the scene, in a random saturated colour;
 *      later objects cover earlier ones. An object's pixels are the
 *      scaled item's pixels of value >= SCENE_ITEM_THRESHOLD;
 *   3. the class mask: the class (1..K, in the order of --classes) of the
 *      object on top, 0 for background, and RB_IGNORE_LABEL on object
 *      pixels with a 4-neighbour of another class (the outline, as VOC's
 *      "void" borders);
 *   4. the COCO instance: each object's visible pixels (outline included):
 *      area = their count, bbox = [x, y, w, h] of their extent in pixels
 *      (w = last column - first column + 1), the mask as uncompressed RLE.
 *      An object wholly covered by later ones is left out.
 * The folder is built next to the destination and renamed into place at
 * the end, so an interrupted run leaves no half-made dataset under DIR. */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include <robusta/data.h>
#include <robusta/rng.h>

#include "data/data_internal.h"
#include "data/image.h"
#include "sys/internal.h"

#define SCENE_BACKGROUND_ITEMS 6
#define SCENE_ITEM_THRESHOLD 16
#define SCENE_MAX_SIDE 4096
#define SCENE_MAX_IMAGES 10000000
#define SCENE_MAX_OBJECTS 64
#define SCENE_NAME_MAX 32

void rb_scenes_defaults(rb_scenes_options *o)
{
    memset(o, 0, sizeof *o);
    o->from = "fashion-mnist";
    o->classes = "5-9";
    o->train_images = 1000;
    o->val_images = -1;
    o->size = 96;
    o->min_objects = 1;
    o->max_objects = 3;
}

/* Items of one class group: pointers to their 28×28 (or h × w) bytes. */
typedef struct item_pool {
    const uint8_t **pixels;
    int64_t *labels; /* scene class (1..K) for objects, unused for background */
    int64_t count;
} item_pool;

typedef struct scene_source {
    rb_split *split;
    int height, width;
    item_pool objects, background;
} scene_source;

static void source_free(scene_source *src)
{
    rb_split_destroy(src->split);
    free(src->objects.pixels);
    free(src->objects.labels);
    free(src->background.pixels);
    free(src->background.labels);
    memset(src, 0, sizeof *src);
}

/* The items of `which`, sorted into the chosen classes (relabelled 1..K in
 * list order) and the others (background). `chosen_original` maps scene
 * class k-1 to the item dataset's class. */
static rb_status source_open(scene_source *src, const rb_scenes_options *o, rb_split_which which,
                             const int64_t *chosen_original, int64_t k)
{
    int channels;
    const uint8_t *images;
    const int64_t *labels;
    int64_t n;
    rb_status s;

    memset(src, 0, sizeof *src);
    if ((s = rb_split_open(&src->split, o->from, which, NULL)) != RB_OK)
        return s;
    rb_split_stored_shape(src->split, &channels, &src->height, &src->width);
    if (channels != 1 || rb_split_dtype(src->split) != RB_DTYPE_U8)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "make-scenes: --from %s has %d-channel %s images; scenes are made from one-channel "
                            "8-bit items (fashion-mnist or mnist)",
                            o->from, channels, rb_split_dtype(src->split) == RB_DTYPE_U8 ? "8-bit" : "float");
    n = rb_split_count(src->split);
    images = rb_split_images(src->split);
    labels = rb_split_labels(src->split);
    src->objects.pixels = malloc((size_t)n * sizeof *src->objects.pixels);
    src->objects.labels = malloc((size_t)n * sizeof *src->objects.labels);
    src->background.pixels = malloc((size_t)n * sizeof *src->background.pixels);
    src->background.labels = malloc((size_t)n * sizeof *src->background.labels);
    if (!src->objects.pixels || !src->objects.labels || !src->background.pixels || !src->background.labels)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "make-scenes: out of memory for %" PRId64 " items", n);
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *px = images + (size_t)i * (size_t)src->height * (size_t)src->width;
        int64_t scene_class = 0;
        for (int64_t c = 0; c < k; c++)
            if (chosen_original[c] == labels[i])
                scene_class = c + 1;
        item_pool *pool = scene_class > 0 ? &src->objects : &src->background;
        pool->pixels[pool->count] = px;
        pool->labels[pool->count] = scene_class;
        pool->count++;
    }
    if (src->objects.count == 0 || src->background.count == 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "make-scenes: the %s split of %s has %s",
                            rb_split_which_str(which), o->from,
                            src->objects.count == 0 ? "no item of the chosen --classes"
                                                    : "no item outside --classes for the background");
    return RB_OK;
}

/* A uniform integer in [lo, hi]. */
static int draw_between(rb_rng *rng, int lo, int hi)
{
    return lo + (int)rb_rng_below(rng, (uint64_t)(hi - lo + 1));
}

/* The item value under scene pixel (y, x) of an item drawn at (top, left)
 * with side `side`, by nearest neighbour: item row floor((y-top)·h/side). */
static uint8_t item_at(const scene_source *src, const uint8_t *item, int side, int dy, int dx)
{
    int iy = (int)((int64_t)dy * src->height / side), ix = (int)((int64_t)dx * src->width / side);
    return item[iy * src->width + ix];
}

typedef struct scene_object {
    int64_t scene_class;
    int top, left, side;
} scene_object;

/* Draws scene `index` of `which` into rgb (S×S×3), class mask (S×S) and
 * instance map (S×S: object number + 1, 0 background). Returns the objects
 * placed in *objects / *count. */
static void draw_scene(const scene_source *src, const rb_scenes_options *o, rb_split_which which, int64_t index,
                       float *grey, uint8_t *rgb, uint8_t *mask, int32_t *instance, scene_object *objects,
                       int *count)
{
    const int size = o->size;
    const size_t pixels = (size_t)size * (size_t)size;
    rb_rng rng;
    float tint[3];

    rb_rng_init(&rng, o->seed, RB_RNG_STREAM(RB_RNG_USER, (uint32_t)which), (uint64_t)index);
    /* 1. background texture */
    float base = 0.05f + 0.2f * rb_rng_uniform(&rng);
    for (size_t p = 0; p < pixels; p++)
        grey[p] = base;
    for (int b = 0; b < SCENE_BACKGROUND_ITEMS; b++) {
        const uint8_t *item = src->background.pixels[rb_rng_below(&rng, (uint64_t)src->background.count)];
        int side = draw_between(&rng, size / 3 > 0 ? size / 3 : 1, size);
        int top = draw_between(&rng, -side / 2, size - side / 2), left = draw_between(&rng, -side / 2, size - side / 2);
        for (int dy = 0; dy < side; dy++)
            for (int dx = 0; dx < side; dx++) {
                int y = top + dy, x = left + dx;
                if (y < 0 || y >= size || x < 0 || x >= size)
                    continue;
                float v = 0.4f * (float)item_at(src, item, side, dy, dx) / 255.0f;
                if (v > grey[(size_t)y * size + x])
                    grey[(size_t)y * size + x] = v;
            }
    }
    for (int c = 0; c < 3; c++)
        tint[c] = 0.6f + 0.4f * rb_rng_uniform(&rng);
    for (size_t p = 0; p < pixels; p++)
        for (int c = 0; c < 3; c++)
            rgb[p * 3 + (size_t)c] = (uint8_t)(grey[p] * tint[c] * 255.0f + 0.5f);
    memset(mask, 0, pixels);
    memset(instance, 0, pixels * sizeof *instance);

    /* 2. objects */
    *count = draw_between(&rng, o->min_objects, o->max_objects);
    int lo = (int)(0.3 * size), hi = (int)(0.6 * size);
    if (lo < 1)
        lo = 1;
    if (hi < lo)
        hi = lo;
    for (int k = 0; k < *count; k++) {
        int64_t pick = (int64_t)rb_rng_below(&rng, (uint64_t)src->objects.count);
        const uint8_t *item = src->objects.pixels[pick];
        scene_object *ob = &objects[k];
        float colour[3];
        ob->scene_class = src->objects.labels[pick];
        ob->side = draw_between(&rng, lo, hi);
        ob->top = draw_between(&rng, 0, size - ob->side);
        ob->left = draw_between(&rng, 0, size - ob->side);
        for (int c = 0; c < 3; c++)
            colour[c] = 0.35f + 0.65f * rb_rng_uniform(&rng);
        for (int dy = 0; dy < ob->side; dy++)
            for (int dx = 0; dx < ob->side; dx++) {
                uint8_t v = item_at(src, item, ob->side, dy, dx);
                size_t p = (size_t)(ob->top + dy) * (size_t)size + (size_t)(ob->left + dx);
                if (v < SCENE_ITEM_THRESHOLD)
                    continue;
                for (int c = 0; c < 3; c++)
                    rgb[p * 3 + (size_t)c] = (uint8_t)((float)v * colour[c] + 0.5f);
                mask[p] = (uint8_t)ob->scene_class;
                instance[p] = k + 1;
            }
    }

    /* 3. outlines: object pixels next to another class */
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            size_t p = (size_t)y * size + x;
            uint8_t c = mask[p];
            int32_t own = instance[p];
            if (own == 0)
                continue;
            static const int step[4][2] = {{-1, 0}, {1, 0}, {0, -1}, {0, 1}};
            for (int d = 0; d < 4; d++) {
                int ny = y + step[d][0], nx = x + step[d][1];
                if (ny < 0 || ny >= size || nx < 0 || nx >= size)
                    continue;
                size_t q = (size_t)ny * size + nx;
                /* compare classes before marking: instance maps hold them */
                uint8_t other = instance[q] == 0 ? 0 : (uint8_t)objects[instance[q] - 1].scene_class;
                if (other != c) {
                    mask[p] = RB_IGNORE_LABEL;
                    break;
                }
            }
        }
}

/* --------------------------------------------------------------- writing */

static rb_status make_folder(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return rb_error_set(RB_ERR_IO, "make-scenes: cannot create folder %s: %s", path, strerror(errno));
    return RB_OK;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes a folder this command made (or was told to replace). */
static void remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static rb_status write_text(const char *path, const char *text)
{
    return rb_file_write_atomic(path, text, strlen(text));
}

static rb_status write_json(const char *path, json_object *o)
{
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    return write_text(path, text);
}

/* COCO's uncompressed RLE of an instance: counts of alternating runs of 0
 * and 1 in column-major order, starting with 0. */
static json_object *instance_rle(const int32_t *instance, int size, int32_t id)
{
    json_object *rle = json_object_new_object(), *counts = json_object_new_array(), *dims = json_object_new_array();
    int64_t run = 0;
    int current = 0;
    for (int x = 0; x < size; x++)
        for (int y = 0; y < size; y++) {
            int v = instance[(size_t)y * size + x] == id;
            if (v != current) {
                json_object_array_add(counts, json_object_new_int64(run));
                run = 0;
                current = v;
            }
            run++;
        }
    json_object_array_add(counts, json_object_new_int64(run));
    json_object_array_add(dims, json_object_new_int(size));
    json_object_array_add(dims, json_object_new_int(size));
    json_object_object_add(rle, "counts", counts);
    json_object_object_add(rle, "size", dims);
    return rle;
}

/* Adds scene `image_id`'s visible objects to COCO's annotation list. */
static void add_annotations(json_object *annotations, int64_t *next_id, int64_t image_id, const int32_t *instance,
                            int size, const scene_object *objects, int count)
{
    for (int k = 0; k < count; k++) {
        int x0 = size, y0 = size, x1 = -1, y1 = -1;
        int64_t area = 0;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                if (instance[(size_t)y * size + x] == k + 1) {
                    area++;
                    x0 = x < x0 ? x : x0;
                    y0 = y < y0 ? y : y0;
                    x1 = x > x1 ? x : x1;
                    y1 = y > y1 ? y : y1;
                }
        if (area == 0)
            continue; /* wholly covered */
        json_object *a = json_object_new_object(), *bbox = json_object_new_array();
        json_object_object_add(a, "id", json_object_new_int64((*next_id)++));
        json_object_object_add(a, "image_id", json_object_new_int64(image_id));
        json_object_object_add(a, "category_id", json_object_new_int64(objects[k].scene_class));
        json_object_array_add(bbox, json_object_new_int(x0));
        json_object_array_add(bbox, json_object_new_int(y0));
        json_object_array_add(bbox, json_object_new_int(x1 - x0 + 1));
        json_object_array_add(bbox, json_object_new_int(y1 - y0 + 1));
        json_object_object_add(a, "bbox", bbox);
        json_object_object_add(a, "area", json_object_new_int64(area));
        json_object_object_add(a, "iscrowd", json_object_new_int(0));
        json_object_object_add(a, "segmentation", instance_rle(instance, size, k + 1));
        json_object_array_add(annotations, a);
    }
}

static json_object *coco_categories(const rb_split *split, const int64_t *chosen_original, int64_t k)
{
    json_object *cats = json_object_new_array();
    for (int64_t c = 0; c < k; c++) {
        json_object *cat = json_object_new_object();
        json_object_object_add(cat, "id", json_object_new_int64(c + 1));
        json_object_object_add(cat, "name", json_object_new_string(rb_split_class_name(split, chosen_original[c])));
        json_object_object_add(cat, "supercategory", json_object_new_string(rb_data_source_str(rb_split_kind(split))));
        json_object_array_add(cats, cat);
    }
    return cats;
}

/* Writes every scene of one split into `dir` (the folder being built). */
static rb_status write_split(const char *dir, const rb_scenes_options *o, rb_split_which which, int64_t images,
                             const int64_t *chosen_original, int64_t k, rb_scenes_progress progress, void *user)
{
    const char *set = which == RB_SPLIT_TRAIN ? "train" : "val";
    const size_t pixels = (size_t)o->size * (size_t)o->size;
    uint8_t palette[256][3];
    scene_source src;
    scene_object objects[SCENE_MAX_OBJECTS];
    uint8_t *rgb = NULL, *mask = NULL;
    float *grey = NULL; /* the background, before its tint */
    int32_t *instance = NULL;
    json_object *coco = NULL, *image_list, *annotations;
    char *ids = NULL, path[PATH_MAX + 160];
    size_t ids_len = 0;
    int64_t next_annotation = 1;
    rb_status s;

    rb_image_voc_palette(palette);
    if ((s = source_open(&src, o, which, chosen_original, k)) != RB_OK) {
        source_free(&src);
        return s;
    }
    rgb = malloc(pixels * 3);
    grey = malloc(pixels * sizeof *grey);
    mask = malloc(pixels);
    instance = malloc(pixels * sizeof *instance);
    ids = malloc((size_t)images * SCENE_NAME_MAX + 1);
    if (!rgb || !grey || !mask || !instance || !ids) {
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "make-scenes: out of memory for %d x %d scenes", o->size, o->size);
        goto done;
    }
    ids[0] = '\0';
    coco = json_object_new_object();
    image_list = json_object_new_array();
    annotations = json_object_new_array();
    json_object_object_add(coco, "images", image_list);
    json_object_object_add(coco, "annotations", annotations);
    json_object_object_add(coco, "categories", coco_categories(src.split, chosen_original, k));
    for (int64_t i = 0; i < images; i++) {
        char name[SCENE_NAME_MAX];
        int count = 0;
        snprintf(name, sizeof name, "%s_%06" PRId64, set, i + 1);
        draw_scene(&src, o, which, i, grey, rgb, mask, instance, objects, &count);
        snprintf(path, sizeof path, "%s/JPEGImages/%s.png", dir, name);
        if ((s = rb_image_write_png(path, rgb, o->size, o->size, 3, NULL, 0)) != RB_OK)
            goto done;
        snprintf(path, sizeof path, "%s/SegmentationClass/%s.png", dir, name);
        if ((s = rb_image_write_png(path, mask, o->size, o->size, 1, (const uint8_t(*)[3])palette, 256)) != RB_OK)
            goto done;
        ids_len += (size_t)snprintf(ids + ids_len, SCENE_NAME_MAX + 1, "%s\n", name);
        json_object *im = json_object_new_object();
        char file_name[SCENE_NAME_MAX + 8];
        snprintf(file_name, sizeof file_name, "%s.png", name);
        json_object_object_add(im, "id", json_object_new_int64(i + 1));
        json_object_object_add(im, "file_name", json_object_new_string(file_name));
        json_object_object_add(im, "width", json_object_new_int(o->size));
        json_object_object_add(im, "height", json_object_new_int(o->size));
        json_object_array_add(image_list, im);
        add_annotations(annotations, &next_annotation, i + 1, instance, o->size, objects, count);
        if (progress != NULL)
            progress(user, set, i + 1, images);
    }
    snprintf(path, sizeof path, "%s/ImageSets/Segmentation/%s.txt", dir, set);
    if ((s = write_text(path, ids)) != RB_OK)
        goto done;
    snprintf(path, sizeof path, "%s/annotations/instances_%s.json", dir, set);
    s = write_json(path, coco);
done:
    json_object_put(coco);
    free(rgb);
    free(grey);
    free(mask);
    free(instance);
    free(ids);
    source_free(&src);
    return s;
}

static rb_status check_options(const rb_scenes_options *o)
{
    if (o->from == NULL || o->from[0] == '\0' || o->classes == NULL || o->classes[0] == '\0' || o->out == NULL ||
        o->out[0] == '\0')
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "make-scenes: --from, --classes and --out are needed");
    if (o->size < 8 || o->size > SCENE_MAX_SIDE)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "make-scenes: --size %d is outside [8, %d]", o->size,
                            SCENE_MAX_SIDE);
    if (o->train_images < 1 || o->train_images > SCENE_MAX_IMAGES || o->val_images < 1 ||
        o->val_images > SCENE_MAX_IMAGES)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "make-scenes: --images %" PRId64 " and --val-images %" PRId64 " must lie in [1, %d]",
                            o->train_images, o->val_images, SCENE_MAX_IMAGES);
    if (o->min_objects < 1 || o->max_objects < o->min_objects || o->max_objects > SCENE_MAX_OBJECTS)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "make-scenes: --objects %d-%d: give MIN-MAX with 1 <= MIN <= MAX <= %d", o->min_objects,
                            o->max_objects, SCENE_MAX_OBJECTS);
    return RB_OK;
}

/* The item dataset's classes the list chooses, in list order. */
static rb_status chosen_classes(const rb_scenes_options *o, int64_t **chosen, int64_t *k, char ***names)
{
    rb_split_options so = {.classes = o->classes};
    rb_split *all = NULL, *picked = NULL;
    rb_status s;

    *chosen = NULL;
    *names = NULL;
    if ((s = rb_split_open(&all, o->from, RB_SPLIT_TRAIN, NULL)) != RB_OK)
        return s;
    if ((s = rb_split_apply(&picked, all, &so)) != RB_OK) {
        rb_split_destroy(all);
        return rb_error_prefix("make-scenes: --classes: ");
    }
    *k = rb_split_classes(picked);
    if (*k >= rb_split_classes(all)) {
        rb_split_destroy(all);
        rb_split_destroy(picked);
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "make-scenes: --classes %s chooses every class of %s; leave at least one out for the "
                            "background texture",
                            o->classes, o->from);
    }
    if (*k >= RB_IGNORE_LABEL) {
        rb_split_destroy(all);
        rb_split_destroy(picked);
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "make-scenes: --classes chooses %" PRId64
                                                     " classes; masks hold at most %d",
                            *k, RB_IGNORE_LABEL - 1);
    }
    *chosen = calloc((size_t)*k, sizeof **chosen);
    *names = calloc((size_t)*k + 1, sizeof **names);
    if (*chosen == NULL || *names == NULL) {
        rb_split_destroy(all);
        rb_split_destroy(picked);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "make-scenes: out of memory");
    }
    const int64_t *src = rb_split_source_indices(picked), *labels = rb_split_labels(picked),
                  *orig = rb_split_labels(all);
    /* The mapping comes from the examples, so a listed class with no train
     * item would be left unmapped (and its scenes silently drawn from
     * another class): refused instead. */
    for (int64_t c = 0; c < *k; c++)
        (*chosen)[c] = -1;
    for (int64_t i = 0; i < rb_split_count(picked); i++)
        (*chosen)[labels[i]] = orig[src[i]];
    for (int64_t c = 0; c < *k; c++)
        if ((*chosen)[c] < 0) {
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                             "make-scenes: --classes %s: %s has no item in the train split of %s; choose classes "
                             "that have items",
                             o->classes, rb_split_class_name(picked, c), o->from);
            rb_split_destroy(all);
            rb_split_destroy(picked);
            return s;
        }
    for (int64_t c = 0; c < *k; c++)
        (*names)[c] = rb_strdup(rb_split_class_name(all, (*chosen)[c]));
    rb_split_destroy(all);
    rb_split_destroy(picked);
    return RB_OK;
}

rb_status rb_scenes_make(const rb_scenes_options *options, rb_scenes_progress progress, void *user)
{
    rb_scenes_options o = *options;
    char build[PATH_MAX + 32], old[PATH_MAX + 32], path[PATH_MAX + 96];
    static const char *const folders[] = {"JPEGImages", "SegmentationClass", "ImageSets", "ImageSets/Segmentation",
                                          "annotations"};
    int64_t *chosen = NULL, k = 0;
    char **names = NULL, *text = NULL;
    struct stat st;
    bool exists;
    rb_status s;

    if (o.val_images < 0)
        o.val_images = o.train_images / 4 > 0 ? o.train_images / 4 : 1;
    if ((s = check_options(&o)) != RB_OK)
        return s;
    exists = stat(o.out, &st) == 0;
    if (exists && !o.force)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "make-scenes: %s already exists; choose another --out or give --force to replace it", o.out);
    if (exists && !S_ISDIR(st.st_mode))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "make-scenes: %s exists and is not a folder; it is left as it is",
                            o.out);
    if ((s = chosen_classes(&o, &chosen, &k, &names)) != RB_OK)
        goto done;
    if (strlen(o.out) >= PATH_MAX - 64) {
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "make-scenes: --out %s is too long", o.out);
        goto done;
    }
    snprintf(build, sizeof build, "%s.partial-%ld", o.out, (long)getpid());
    snprintf(old, sizeof old, "%s.old-%ld", o.out, (long)getpid());
    remove_tree(build);
    if ((s = make_folder(build)) != RB_OK)
        goto done;
    for (size_t f = 0; f < sizeof folders / sizeof folders[0]; f++) {
        snprintf(path, sizeof path, "%s/%s", build, folders[f]);
        if ((s = make_folder(path)) != RB_OK)
            goto fail;
    }
    /* classes.txt: background, then the chosen classes in order */
    size_t len = strlen("background\n") + 1;
    for (int64_t c = 0; c < k; c++)
        len += strlen(names[c]) + 1;
    if ((text = malloc(len)) == NULL) {
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "make-scenes: out of memory");
        goto fail;
    }
    strcpy(text, "background\n");
    for (int64_t c = 0; c < k; c++) {
        strcat(text, names[c]);
        strcat(text, "\n");
    }
    snprintf(path, sizeof path, "%s/classes.txt", build);
    if ((s = write_text(path, text)) != RB_OK)
        goto fail;
    if ((s = write_split(build, &o, RB_SPLIT_TRAIN, o.train_images, chosen, k, progress, user)) != RB_OK ||
        (s = write_split(build, &o, RB_SPLIT_TEST, o.val_images, chosen, k, progress, user)) != RB_OK)
        goto fail;
    {
        json_object *made = json_object_new_object();
        json_object_object_add(made, "from", json_object_new_string(o.from));
        json_object_object_add(made, "classes", json_object_new_string(o.classes));
        json_object_object_add(made, "images", json_object_new_int64(o.train_images));
        json_object_object_add(made, "val_images", json_object_new_int64(o.val_images));
        json_object_object_add(made, "size", json_object_new_int(o.size));
        json_object_object_add(made, "objects_min", json_object_new_int(o.min_objects));
        json_object_object_add(made, "objects_max", json_object_new_int(o.max_objects));
        json_object_object_add(made, "seed", json_object_new_uint64(o.seed));
        snprintf(path, sizeof path, "%s/scenes.json", build);
        s = write_json(path, made);
        json_object_put(made);
        if (s != RB_OK)
            goto fail;
    }
    /* into place: the old folder moves aside first, and goes only once the
     * new one is there */
    if (exists && rename(o.out, old) != 0) {
        s = rb_error_set(RB_ERR_IO, "make-scenes: cannot move %s aside to replace it: %s", o.out, strerror(errno));
        goto fail;
    }
    if (rename(build, o.out) != 0) {
        s = rb_error_set(RB_ERR_IO, "make-scenes: cannot rename %s to %s: %s", build, o.out, strerror(errno));
        if (exists)
            rename(old, o.out);
        goto fail;
    }
    if (exists)
        remove_tree(old);
    goto done;
fail:
    remove_tree(build);
done:
    for (int64_t c = 0; names != NULL && c < k; c++)
        free(names[c]);
    free(names);
    free(chosen);
    free(text);
    return s;
}
