/* COCO annotation and results files (robusta/coco.h): strict JSON through
 * the library's one reader (sys/json.h), then each entry typed and checked,
 * with one line naming the file, the entry and the fix for every refusal.
 * The checks of values (ids, references, boxes) live in rb_coco_index_build
 * and rb_coco_check_detection, which the evaluator runs on ground truth
 * built in memory too. */
#include "config.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <robusta/coco.h>
#include <robusta/status.h>

#include "data/coco_internal.h"
#include "sys/internal.h"
#include "sys/json.h"

/* Polygons and RLE masks nest 4 deep; anything past this is not COCO. */
#define COCO_JSON_DEPTH 32
/* json-c's limit on one text. */
#define COCO_FILE_LIMIT ((size_t)INT_MAX)

/* ------------------------------------------------------------ id lookups */

/* id_table reads each record's id from its first bytes. */
_Static_assert(offsetof(rb_coco_image, id) == 0, "rb_coco_image starts with its id");
_Static_assert(offsetof(rb_coco_category, id) == 0, "rb_coco_category starts with its id");
_Static_assert(offsetof(rb_coco_annotation, id) == 0, "rb_coco_annotation starts with its id");

static int by_id(const void *a, const void *b)
{
    const rb_coco_id *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

size_t rb_coco_ids_find(const rb_coco_id *ids, size_t n, int64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && ids[lo].id == id ? lo : SIZE_MAX;
}

/* A table of `n` ids read from `stride`-byte records at `base` (the id is
 * the record's first member), sorted; a repeated id refused naming both
 * entries of `array`. */
static rb_status id_table(const void *base, size_t stride, size_t n, const char *what, const char *array,
                          const char *noun, rb_coco_id **out)
{
    rb_coco_id *t = malloc((n ? n : 1) * sizeof *t);
    *out = t;
    if (t == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu %s ids", what, n, array);
    for (size_t i = 0; i < n; i++) {
        memcpy(&t[i].id, (const char *)base + i * stride, sizeof t[i].id);
        t[i].index = i;
    }
    qsort(t, n, sizeof *t, by_id);
    for (size_t i = 1; i < n; i++)
        if (t[i].id == t[i - 1].id)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: %s[%zu] (id %" PRId64 "): id %" PRId64
                                " is also %s[%zu]'s: give each %s its own id",
                                what, array, t[i].index, t[i].id, t[i].id, array, t[i - 1].index, noun);
    return RB_OK;
}

/* Where a value check failed: "ARRAY[INDEX] (KEY ID)", written only on
 * failure (the checks run on every entry of large files). */
typedef struct place_of {
    const char *array, *key;
    size_t index;
    int64_t id;
    char text[96];
} place_of;

static const char *place_text(place_of *p)
{
    snprintf(p->text, sizeof p->text, "%s[%zu] (%s %" PRId64 ")", p->array, p->index, p->key, p->id);
    return p->text;
}

static rb_status check_box(const double b[4], const char *what, place_of *at)
{
    for (int k = 0; k < 4; k++)
        if (!isfinite(b[k]))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: %s: bbox[%d] is not finite: boxes are [x, y, width, "
                                "height] in pixels", what, place_text(at), k);
    if (b[2] < 0 || b[3] < 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: %s: bbox %s is negative (%g): boxes are [x, y, width, "
                            "height] with width and height >= 0", what, place_text(at),
                            b[2] < 0 ? "width" : "height", b[2] < 0 ? b[2] : b[3]);
    return RB_OK;
}

rb_status rb_coco_index_build(const rb_coco *gt, const char *what, rb_coco_index *ix)
{
    rb_coco_id *anns = NULL;
    rb_status s;

    memset(ix, 0, sizeof *ix);
    if (gt == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: no ground truth (NULL)", what);
    if ((gt->n_images && gt->images == NULL) || (gt->n_categories && gt->categories == NULL) ||
        (gt->n_annotations && gt->annotations == NULL))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: an array with a count but no entries (NULL)", what);
    if ((s = id_table(gt->images, sizeof *gt->images, gt->n_images, what, "images", "image", &ix->images)) != RB_OK)
        return s;
    if ((s = id_table(gt->categories, sizeof *gt->categories, gt->n_categories, what, "categories", "category",
                      &ix->categories)) != RB_OK)
        return s;
    if ((s = id_table(gt->annotations, sizeof *gt->annotations, gt->n_annotations, what, "annotations",
                      "annotation", &anns)) != RB_OK) {
        free(anns);
        return s;
    }
    free(anns);
    ix->ann_image = malloc((gt->n_annotations ? gt->n_annotations : 1) * sizeof *ix->ann_image);
    ix->ann_category = malloc((gt->n_annotations ? gt->n_annotations : 1) * sizeof *ix->ann_category);
    if (ix->ann_image == NULL || ix->ann_category == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu annotations", what, gt->n_annotations);
    for (size_t i = 0; i < gt->n_annotations; i++) {
        const rb_coco_annotation *a = &gt->annotations[i];
        place_of at = {.array = "annotations", .key = "id", .index = i, .id = a->id};
        ix->ann_image[i] = rb_coco_ids_find(ix->images, gt->n_images, a->image_id);
        if (ix->ann_image[i] == SIZE_MAX)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: %s: image_id %" PRId64 " is not in \"images\": list "
                                "the image or drop the annotation", what, place_text(&at), a->image_id);
        ix->ann_category[i] = rb_coco_ids_find(ix->categories, gt->n_categories, a->category_id);
        if (ix->ann_category[i] == SIZE_MAX)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: %s: category_id %" PRId64 " is not in \"categories\": "
                                "list the category or drop the annotation", what, place_text(&at), a->category_id);
        if ((s = check_box(a->bbox, what, &at)) != RB_OK)
            return s;
        if (!isfinite(a->area) || a->area < 0)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: %s: area %g is not a number >= 0: give the object's "
                                "area in pixels", what, place_text(&at), a->area);
        if (a->iscrowd != 0 && a->iscrowd != 1)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: %s: iscrowd is %d: it is 0 (an object) or 1 (a crowd "
                                "region)", what, place_text(&at), a->iscrowd);
    }
    return RB_OK;
}

void rb_coco_index_free(rb_coco_index *ix)
{
    free(ix->images);
    free(ix->categories);
    free(ix->ann_image);
    free(ix->ann_category);
    memset(ix, 0, sizeof *ix);
}

rb_status rb_coco_check_detection(const rb_coco *gt, const rb_coco_index *ix, const rb_coco_detection *d, size_t i,
                                  const char *what, size_t *image, size_t *category)
{
    place_of at = {.array = "detections", .key = "image_id", .index = i, .id = d->image_id};
    rb_status s;
    *image = rb_coco_ids_find(ix->images, gt->n_images, d->image_id);
    if (*image == SIZE_MAX)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: %s: image_id %" PRId64 " is not an image of the ground "
                            "truth: detect on the annotation file's images", what, place_text(&at), d->image_id);
    *category = rb_coco_ids_find(ix->categories, gt->n_categories, d->category_id);
    if (*category == SIZE_MAX)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: %s: category_id %" PRId64 " is not a category of the "
                            "ground truth: use the annotation file's category ids", what, place_text(&at), d->category_id);
    if ((s = check_box(d->bbox, what, &at)) != RB_OK)
        return s;
    if (!isfinite(d->score))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: %s: score is not finite: give every detection a finite "
                            "score", what, place_text(&at));
    return RB_OK;
}

/* ------------------------------------------------------------ JSON places */

/* Where byte `at` of a JSON text lies, for messages: "line L, column C"
 * and, inside an entry of a top-level array (results) or of an array that
 * is a member of the top-level object (annotations), that entry. The text
 * before `at` is valid JSON so far (the strict reader stopped there),
 * except before a NUL byte, which is looked for first: then the entry
 * named may be wrong, but nothing is read out of bounds. */
static void json_place(const char *text, size_t len, size_t at, bool results, char *buf, size_t size)
{
    size_t line = 1, column = 1, index[3] = {0, 0, 0};
    bool object[3] = {false, false, false}, expect_key = false;
    char key[48] = "";
    int depth = 0;
    if (at > len)
        at = len;
    for (size_t i = 0; i < at; i++) {
        char c = text[i];
        if (c == '\n') {
            line++;
            column = 1;
            continue;
        }
        column++;
        if (c == '"') {
            size_t start = ++i;
            while (i < at && text[i] != '"') {
                if (text[i] == '\\')
                    i++;
                i++;
            }
            if (i > at)
                i = at;
            column += i - start + (i < at);
            if (depth == 1 && object[1] && expect_key) {
                size_t n = i - start < sizeof key - 1 ? i - start : sizeof key - 1;
                memcpy(key, text + start, n);
                key[n] = '\0';
            }
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
            if (depth <= 2) {
                object[depth] = c == '{';
                index[depth] = 0;
                expect_key = c == '{';
            }
        } else if (c == '}' || c == ']') {
            if (depth > 0) /* a NUL byte is reported before the text is checked: */
                depth--;   /* what comes before it may not be JSON */
        } else if (c == ',' && depth >= 1 && depth <= 2) {
            index[depth]++;
            expect_key = object[depth];
        } else if (c == ':' && depth >= 1 && depth <= 2) {
            expect_key = false;
        }
    }
    if (results && depth >= 1 && !object[1])
        snprintf(buf, size, "line %zu, column %zu, in detections[%zu]", line, column, index[1]);
    else if (!results && depth >= 2 && object[1] && !object[2] && key[0] != '\0')
        snprintf(buf, size, "line %zu, column %zu, in %s[%zu]", line, column, key, index[2]);
    else
        snprintf(buf, size, "line %zu, column %zu", line, column);
}

/* A refusal of the JSON text, naming the file and the place. */
static rb_status json_fault(const char *bytes, size_t size, const char *what, bool results, const rb_json_error *err)
{
    char place[160];
    switch (err->fault) {
    case RB_JSON_NOT_OBJECT:
        return rb_error_set(RB_ERR_CORRUPT, "%s is a JSON %s, not %s", what, err->kind,
                            results ? "a COCO results file (an array of objects with image_id, category_id, bbox "
                                      "and score)"
                                    : "a COCO annotation file (an object with images, annotations and categories)");
    case RB_JSON_NO_MEMORY:
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory parsing %zu bytes of JSON", what, size);
    case RB_JSON_TOO_LONG:
        return rb_error_set(RB_ERR_UNSUPPORTED, "%s: an entry of more than 2 GiB of JSON, more than json-c reads",
                            what);
    default: {
        const char *p = bytes + (err->at < size ? err->at : size);
        size_t left = size - (size_t)(p - bytes);
        bool nonfinite = (left >= 3 && strncmp(p, "NaN", 3) == 0) || (left >= 3 && strncmp(p, "nan", 3) == 0) ||
                         (left >= 8 && strncmp(p, "Infinity", 8) == 0) || (left >= 3 && strncmp(p, "inf", 3) == 0);
        json_place(bytes, size, err->at, results, place, sizeof place);
        return rb_error_set(RB_ERR_CORRUPT, "%s is not valid JSON: %s at byte %zu (%s)%s", what, err->what, err->at,
                            place,
                            nonfinite ? ": NaN and Infinity are not JSON numbers; write finite numbers" : "");
    }
    }
}

/* ------------------------------------------------------------ typed members */

/* One entry being read (node 0 of a piece and its members): messages
 * start "WHAT: ARRAY[INDEX] (id ID): ". Values are node indices; SIZE_MAX
 * is an absent member. */
typedef struct entry {
    const char *what, *array, *id_key;
    const rb_json_node *nodes;
    const char *text;
    size_t index;
    bool has_id;
    int64_t id;
} entry;

static const char *kind_of(const entry *e, size_t v)
{
    return rb_json_kind_name(e->nodes[v].kind);
}

static rb_status entry_fail(const entry *e, const char *fmt, ...) RB_PRINTF(2, 3);
static rb_status entry_fail(const entry *e, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (e->has_id)
        return rb_error_set(RB_ERR_CORRUPT, "%s: %s[%zu] (%s %" PRId64 "): %s", e->what, e->array, e->index,
                            e->id_key, e->id, msg);
    return rb_error_set(RB_ERR_CORRUPT, "%s: %s[%zu]: %s", e->what, e->array, e->index, msg);
}

static size_t member(const entry *e, const char *key)
{
    return rb_json_member(e->nodes, e->text, 0, key);
}

static rb_status as_int(const entry *e, size_t v, const char *key, int64_t *out)
{
    const rb_json_node *x = &e->nodes[v];
    if (x->kind != RB_JSON_KIND_INT)
        return entry_fail(e, "\"%s\" is %s, not an integer", key, kind_of(e, v));
    if (x->big)
        return entry_fail(e, "\"%s\" is %" PRIu64 ", past the largest id (%" PRId64 ")", key, x->big_value, INT64_MAX);
    *out = x->integer;
    return RB_OK;
}

static rb_status as_number(const entry *e, size_t v, const char *key, double *out)
{
    const rb_json_node *x = &e->nodes[v];
    if (x->kind != RB_JSON_KIND_INT && x->kind != RB_JSON_KIND_DOUBLE)
        return entry_fail(e, "\"%s\" is %s, not a number", key, kind_of(e, v));
    *out = x->number;
    return RB_OK;
}

static rb_status as_box(const entry *e, size_t v, double box[4])
{
    size_t n, k = 0;
    if (e->nodes[v].kind != RB_JSON_KIND_ARRAY)
        return entry_fail(e, "\"bbox\" is %s, not [x, y, width, height]", kind_of(e, v));
    if ((n = rb_json_count(e->nodes, v)) != 4)
        return entry_fail(e, "\"bbox\" has %zu numbers, not 4 ([x, y, width, height])", n);
    for (size_t c = v + 1; c < e->nodes[v].next; c = e->nodes[c].next, k++) {
        if (e->nodes[c].kind != RB_JSON_KIND_INT && e->nodes[c].kind != RB_JSON_KIND_DOUBLE)
            return entry_fail(e, "bbox[%zu] is %s, not a number", k, kind_of(e, c));
        box[k] = e->nodes[c].number;
    }
    return RB_OK;
}

/* Required members; absent: a refusal naming what an entry needs. */
static rb_status required_int(const entry *e, const char *key, const char *needs, int64_t *out)
{
    size_t v = member(e, key);
    if (v == SIZE_MAX)
        return entry_fail(e, "no \"%s\": %s", key, needs);
    return as_int(e, v, key, out);
}

static rb_status required_number(const entry *e, const char *key, const char *needs, double *out)
{
    size_t v = member(e, key);
    if (v == SIZE_MAX)
        return entry_fail(e, "no \"%s\": %s", key, needs);
    return as_number(e, v, key, out);
}

static rb_status required_box(const entry *e, const char *needs, double box[4])
{
    size_t v = member(e, "bbox");
    if (v == SIZE_MAX)
        return entry_fail(e, "no \"bbox\": %s", needs);
    return as_box(e, v, box);
}

/* An optional integer member (absent or null: *out unchanged). */
static rb_status optional_int(const entry *e, const char *key, int64_t *out)
{
    size_t v = member(e, key);
    if (v == SIZE_MAX || e->nodes[v].kind == RB_JSON_KIND_NULL)
        return RB_OK;
    return as_int(e, v, key, out);
}

/* A string member, copied; absent or null leaves *out NULL. */
static rb_status as_optional_string(const entry *e, const char *key, char **out)
{
    size_t v = member(e, key);
    *out = NULL;
    if (v == SIZE_MAX || e->nodes[v].kind == RB_JSON_KIND_NULL)
        return RB_OK;
    if (e->nodes[v].kind != RB_JSON_KIND_STRING)
        return entry_fail(e, "\"%s\" is %s, not a string", key, kind_of(e, v));
    if ((*out = rb_json_string(e->nodes, e->text, v)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory", e->what);
    return RB_OK;
}

/* Element `index` of e's array (the piece p): an object, with its id
 * (e->id_key) read for messages and the caller. */
static rb_status open_entry(entry *e, const rb_json_piece *p, const char *needs)
{
    e->nodes = p->nodes;
    e->text = p->text;
    e->index = p->index;
    e->has_id = false;
    if (e->nodes[0].kind != RB_JSON_KIND_OBJECT)
        return entry_fail(e, "is %s, not an object", kind_of(e, 0));
    if (required_int(e, e->id_key, needs, &e->id) != RB_OK)
        return RB_ERR_CORRUPT;
    e->has_id = true;
    return RB_OK;
}

/* Room for element `index` of a growing array. */
static bool make_room(void **items, size_t index, size_t *cap, size_t size)
{
    if (index >= *cap) {
        size_t want = *cap ? 2 * *cap : 1024;
        void *bigger = realloc(*items, want * size);
        if (bigger == NULL)
            return false;
        memset((char *)bigger + *cap * size, 0, (want - *cap) * size);
        *items = bigger;
        *cap = want;
    }
    return true;
}

/* ------------------------------------------------------------ annotation files */

static const char image_needs[] = "images need an integer id";
static const char category_needs[] = "categories need an integer id";
static const char annotation_needs[] =
    "annotations need id, image_id, category_id, bbox [x, y, width, height] and area";

static rb_status read_image(rb_coco_image *im, const rb_json_piece *p, const char *what)
{
    entry e = {.what = what, .array = "images", .id_key = "id"};
    rb_status s;
    if ((s = open_entry(&e, p, image_needs)) != RB_OK)
        return s;
    im->id = e.id;
    if ((s = as_optional_string(&e, "file_name", &im->file_name)) != RB_OK ||
        (s = optional_int(&e, "width", &im->width)) != RB_OK || (s = optional_int(&e, "height", &im->height)) != RB_OK)
        return s;
    if (im->width < 0 || im->height < 0)
        return entry_fail(&e, "%s is negative (%" PRId64 "): give the image's size in pixels",
                          im->width < 0 ? "width" : "height", im->width < 0 ? im->width : im->height);
    return RB_OK;
}

static rb_status read_category(rb_coco_category *cat, const rb_json_piece *p, const char *what)
{
    entry e = {.what = what, .array = "categories", .id_key = "id"};
    rb_status s;
    if ((s = open_entry(&e, p, category_needs)) != RB_OK)
        return s;
    cat->id = e.id;
    return as_optional_string(&e, "name", &cat->name);
}

static rb_status read_annotation(rb_coco_annotation *a, const rb_json_piece *p, const char *what)
{
    entry e = {.what = what, .array = "annotations", .id_key = "id"};
    size_t v;
    rb_status s;
    if ((s = open_entry(&e, p, annotation_needs)) != RB_OK)
        return s;
    a->id = e.id;
    if ((s = required_int(&e, "image_id", annotation_needs, &a->image_id)) != RB_OK ||
        (s = required_int(&e, "category_id", annotation_needs, &a->category_id)) != RB_OK ||
        (s = required_box(&e, annotation_needs, a->bbox)) != RB_OK ||
        (s = required_number(&e, "area", annotation_needs, &a->area)) != RB_OK)
        return s;
    a->iscrowd = 0;
    v = member(&e, "iscrowd");
    if (v != SIZE_MAX && e.nodes[v].kind != RB_JSON_KIND_NULL) {
        int64_t crowd;
        if (e.nodes[v].kind == RB_JSON_KIND_BOOL)
            a->iscrowd = e.nodes[v].boolean ? 1 : 0;
        else if ((s = as_int(&e, v, "iscrowd", &crowd)) != RB_OK)
            return s;
        else if (crowd != 0 && crowd != 1)
            return entry_fail(&e, "\"iscrowd\" is %" PRId64 ": it is 0 (an object) or 1 (a crowd region)", crowd);
        else
            a->iscrowd = (int)crowd;
    }
    return RB_OK;
}

/* rb_coco_parse's reading, one piece of the file at a time. */
typedef struct gt_reader {
    const char *what;
    rb_coco *c;
    size_t cap[3];
    bool seen[3]; /* images, annotations, categories */
    rb_status status;
} gt_reader;

static const char *const gt_keys[3] = {"images", "annotations", "categories"};

static bool gt_piece(void *user, const rb_json_piece *p)
{
    gt_reader *g = user;
    rb_coco *c = g->c;
    int which = -1;
    if (p->key == NULL) {
        g->status = rb_error_set(RB_ERR_CORRUPT, "%s is a JSON array, not a COCO annotation file (an object with "
                                 "images, annotations and categories; an array is a results file)", g->what);
        return false;
    }
    for (int k = 0; k < 3; k++)
        if (strcmp(p->key, gt_keys[k]) == 0)
            which = k;
    if (which < 0 || p->event == RB_JSON_END)
        return true; /* info, licenses, ... */
    if (p->event == RB_JSON_BEGIN) {
        g->seen[which] = true;
        return true;
    }
    if (p->event == RB_JSON_MEMBER) {
        g->status = rb_error_set(RB_ERR_CORRUPT, "%s: \"%s\" is %s, not an array: not a COCO annotation file",
                                 g->what, p->key, rb_json_kind_name(p->nodes[0].kind));
        return false;
    }
    switch (which) {
    case 0:
        if (!make_room((void **)&c->images, p->index, &g->cap[0], sizeof *c->images))
            break;
        c->n_images = p->index + 1;
        g->status = read_image(&c->images[p->index], p, g->what);
        return g->status == RB_OK;
    case 1:
        if (!make_room((void **)&c->annotations, p->index, &g->cap[1], sizeof *c->annotations))
            break;
        c->n_annotations = p->index + 1;
        g->status = read_annotation(&c->annotations[p->index], p, g->what);
        return g->status == RB_OK;
    default:
        if (!make_room((void **)&c->categories, p->index, &g->cap[2], sizeof *c->categories))
            break;
        c->n_categories = p->index + 1;
        g->status = read_category(&c->categories[p->index], p, g->what);
        return g->status == RB_OK;
    }
    g->status = rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory at %s[%zu]", g->what, p->key, p->index);
    return false;
}

rb_status rb_coco_parse(const char *bytes, size_t size, const char *what, rb_coco **out)
{
    gt_reader g = {0};
    rb_json_error err;
    rb_coco_index ix;
    rb_status s = RB_OK;

    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_coco_parse: out is NULL");
    *out = NULL;
    if (what == NULL)
        what = "COCO annotations";
    if (bytes == NULL && size > 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_coco_parse: %s: bytes is NULL", what);
    g.what = what;
    if ((g.c = calloc(1, sizeof *g.c)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    switch (rb_json_parse_pieces(bytes ? bytes : "", size, COCO_JSON_DEPTH, true, gt_piece, &g, &err)) {
    case RB_JSON_OK:
        break;
    case RB_JSON_STOPPED:
        s = g.status;
        break;
    default:
        s = json_fault(bytes, size, what, false, &err);
        break;
    }
    for (int k = 0; s == RB_OK && k < 3; k++)
        if (!g.seen[k])
            s = rb_error_set(RB_ERR_CORRUPT, "%s: no \"%s\" array: not a COCO annotation file (an object with "
                             "images, annotations and categories)", what, gt_keys[k]);
    if (s == RB_OK) {
        s = rb_coco_index_build(g.c, what, &ix);
        rb_coco_index_free(&ix);
        if (s == RB_ERR_INVALID_ARGUMENT)
            s = RB_ERR_CORRUPT; /* a file's contents, not a caller's mistake */
    }
    if (s != RB_OK) {
        rb_coco_destroy(g.c);
        return s;
    }
    *out = g.c;
    return RB_OK;
}

rb_status rb_coco_load(rb_coco **out, const char *path)
{
    unsigned char *bytes = NULL;
    size_t size = 0;
    rb_status s;
    if (out == NULL || path == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_coco_load: out or path is NULL");
    *out = NULL;
    if ((s = rb_file_read_all(path, COCO_FILE_LIMIT, &bytes, &size)) != RB_OK)
        return s;
    s = rb_coco_parse((const char *)bytes, size, path, out);
    free(bytes);
    return s;
}

void rb_coco_destroy(rb_coco *coco)
{
    if (coco == NULL)
        return;
    for (size_t i = 0; coco->images != NULL && i < coco->n_images; i++)
        free(coco->images[i].file_name);
    for (size_t i = 0; coco->categories != NULL && i < coco->n_categories; i++)
        free(coco->categories[i].name);
    free(coco->images);
    free(coco->categories);
    free(coco->annotations);
    free(coco);
}

/* ------------------------------------------------------------ results files */

static const char detection_needs[] = "detections need image_id, category_id, bbox [x, y, width, height] and score";

/* rb_coco_parse_detections's reading, one detection at a time. */
typedef struct dt_reader {
    const char *what;
    const rb_coco *gt;
    const rb_coco_index *ix;
    rb_coco_detection *d;
    size_t n, cap;
    bool array; /* the top level is an array */
    rb_status status;
} dt_reader;

static rb_status read_detection(dt_reader *r, const rb_json_piece *p)
{
    entry e = {.what = r->what, .array = "detections", .id_key = "image_id"};
    rb_coco_detection *d = &r->d[p->index];
    size_t image, category;
    rb_status s;
    if ((s = open_entry(&e, p, detection_needs)) != RB_OK)
        return s;
    d->image_id = e.id;
    if ((s = required_int(&e, "category_id", detection_needs, &d->category_id)) != RB_OK ||
        (s = required_box(&e, detection_needs, d->bbox)) != RB_OK ||
        (s = required_number(&e, "score", detection_needs, &d->score)) != RB_OK)
        return s;
    if (rb_coco_check_detection(r->gt, r->ix, d, p->index, r->what, &image, &category) != RB_OK)
        return RB_ERR_CORRUPT;
    return RB_OK;
}

static bool dt_piece(void *user, const rb_json_piece *p)
{
    dt_reader *r = user;
    if (p->key != NULL) {
        r->status = rb_error_set(RB_ERR_CORRUPT, "%s is a JSON object, not a COCO results file (an array of objects "
                                 "with image_id, category_id, bbox and score; an object is an annotation file)",
                                 r->what);
        return false;
    }
    if (p->event == RB_JSON_BEGIN)
        r->array = true;
    if (p->event != RB_JSON_ELEMENT)
        return true;
    if (!make_room((void **)&r->d, p->index, &r->cap, sizeof *r->d)) {
        r->status = rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory at detections[%zu]", r->what, p->index);
        return false;
    }
    r->n = p->index + 1;
    r->status = read_detection(r, p);
    return r->status == RB_OK;
}

rb_status rb_coco_parse_detections(const rb_coco *gt, const char *bytes, size_t size, const char *what,
                                   rb_coco_detection **out, size_t *count)
{
    dt_reader r = {0};
    rb_coco_index ix;
    rb_json_error err;
    rb_status s;

    if (out == NULL || count == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_coco_parse_detections: out or count is NULL");
    *out = NULL;
    *count = 0;
    if (what == NULL)
        what = "COCO results";
    if (bytes == NULL && size > 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_coco_parse_detections: %s: bytes is NULL", what);
    if ((s = rb_coco_index_build(gt, "ground truth", &ix)) != RB_OK) {
        rb_coco_index_free(&ix);
        return s;
    }
    r.what = what;
    r.gt = gt;
    r.ix = &ix;
    switch (rb_json_parse_pieces(bytes ? bytes : "", size, COCO_JSON_DEPTH, true, dt_piece, &r, &err)) {
    case RB_JSON_OK:
        s = r.array ? RB_OK
                    : rb_error_set(RB_ERR_CORRUPT, "%s is a JSON object, not a COCO results file (an array of "
                                   "objects with image_id, category_id, bbox and score; an object is an annotation "
                                   "file)", what);
        break;
    case RB_JSON_STOPPED:
        s = r.status;
        break;
    default:
        s = json_fault(bytes, size, what, true, &err);
        break;
    }
    rb_coco_index_free(&ix);
    if (s != RB_OK) {
        free(r.d);
        return s;
    }
    if (r.d == NULL && (r.d = malloc(sizeof *r.d)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    *out = r.d;
    *count = r.n;
    return RB_OK;
}

rb_status rb_coco_load_detections(const rb_coco *gt, const char *path, rb_coco_detection **out, size_t *count)
{
    unsigned char *bytes = NULL;
    size_t size = 0;
    rb_status s;
    if (out == NULL || count == NULL || path == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_coco_load_detections: out, count or path is NULL");
    *out = NULL;
    *count = 0;
    if ((s = rb_file_read_all(path, COCO_FILE_LIMIT, &bytes, &size)) != RB_OK)
        return s;
    s = rb_coco_parse_detections(gt, (const char *)bytes, size, path, out, count);
    free(bytes);
    return s;
}
