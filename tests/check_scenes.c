/* Composed scenes (src/data/scenes.c, `robusta make-scenes`), checked from
 * the files alone against the rules of scenes.c's header comment.
 *
 * The items are made here as .npy: 10 × 10 uint8 images, each class one
 * known shape of a single value, so an object's pixels are exactly a
 * nearest-neighbour scaling of that shape:
 *   item class 0  a horizontal bar, rows 3-6, every column, 255
 *   item class 1  a 2 × 2 checkerboard of 255 (background texture only)
 *   item class 2  a square, rows 2-7, columns 2-7, 255
 *   item class 3  a vertical bar, columns 3-6, every row, at 16 (the
 *                 threshold), crossed by a horizontal bar at 15 (just
 *                 under it), so the object is the vertical bar alone
 * With --classes 2,0,3 the scene classes are 1 square, 2 horizontal bar,
 * 3 vertical bar, and class 1 is left for the background.
 *
 * By hand (one object a scene): the mask is the solid rectangle of the
 * object's shape at some side s in [0.3 S, 0.6 S] placed wholly inside the
 * scene, its class inside, 255 on its pixels with an in-image 4-neighbour
 * outside it, 0 elsewhere; the COCO bbox is its extent, area its pixel
 * count, category its class, and the RLE decodes to the same pixels.
 * Several objects: instances are disjoint, cover exactly the mask's
 * object pixels, area counts visible pixels only, and whatever hides part
 * of an instance's box is a later instance. Then determinism (same bytes,
 * other seed, scene independent of the count before it), refusals that
 * leave nothing behind and an existing folder as it was, the command
 * line, and Fashion-MNIST end to end when it is installed. */
#include "config.h"

#include <inttypes.h>
#include <stdint.h>

#include <json-c/json.h>

#include <robusta/data.h>
#include <robusta/interop.h>
#include <robusta/status.h>

#include "data/image.h"
#include "jsonstrict.h"
#include "testutil.h"

enum { ITEM = 10, IGNORE = 255 };

/* Buffer sizes: dir is under 512 bytes, an output folder is dir/NAME, a
 * path is a folder and a short name under it. */
enum { OUT_LEN = 600, PATH_LEN = 1024, SPEC_LEN = 2400 };

static char dir[512], items[SPEC_LEN];

/* Writes n items and their labels as DIR/xname and DIR/yname: labels
 * cycling 0,1,2,3, or the n labels given; each item its class's shape. */
static void write_items(const char *xname, const char *yname, int64_t n, const uint8_t *labels)
{
    uint8_t *x = calloc((size_t)n * ITEM * ITEM, 1), *y = malloc((size_t)n);
    char xp[PATH_LEN], yp[PATH_LEN];
    ck_assert(x != NULL && y != NULL);
    for (int64_t i = 0; i < n; i++) {
        uint8_t *px = x + i * ITEM * ITEM;
        y[i] = labels != NULL ? labels[i] : (uint8_t)(i % 4);
        for (int r = 0; r < ITEM; r++)
            for (int c = 0; c < ITEM; c++) {
                uint8_t v = 0;
                switch (y[i]) {
                case 0: v = r >= 3 && r <= 6 ? 255 : 0; break;
                case 1: v = ((r / 2) + (c / 2)) % 2 ? 255 : 0; break;
                case 2: v = r >= 2 && r <= 7 && c >= 2 && c <= 7 ? 255 : 0; break;
                case 3: v = c >= 3 && c <= 6 ? 16 : r >= 3 && r <= 6 ? 15 : 0; break;
                default: break;
                }
                px[r * ITEM + c] = v;
            }
    }
    snprintf(xp, sizeof xp, "%s/%s", dir, xname);
    snprintf(yp, sizeof yp, "%s/%s", dir, yname);
    ck_assert_int_eq(rb_npy_save(xp, RB_DTYPE_U8, 3, (const int64_t[]){n, ITEM, ITEM}, x), RB_OK);
    ck_assert_int_eq(rb_npy_save(yp, RB_DTYPE_U8, 1, (const int64_t[]){n}, y), RB_OK);
    free(x);
    free(y);
}

static void setup(void)
{
    make_temp_dir(dir, sizeof dir);
    write_items("x.npy", "y.npy", 16, NULL); /* 4 items of each class */
    write_items("tx.npy", "ty.npy", 8, NULL);
    snprintf(items, sizeof items, "npy:%s/x.npy,%s/y.npy;%s/tx.npy,%s/ty.npy", dir, dir, dir, dir);
}

static void teardown(void)
{
    remove_temp_dir(dir);
}

/* Options for the synthetic items, out = DIR/name. */
static rb_scenes_options options_for(const char *name, char *out, size_t size)
{
    rb_scenes_options o;
    rb_scenes_defaults(&o);
    snprintf(out, size, "%s/%s", dir, name);
    o.from = items;
    o.classes = "2,0,3";
    o.out = out;
    o.train_images = 12;
    o.val_images = 4;
    o.size = 40;
    o.min_objects = o.max_objects = 1;
    o.seed = 7;
    return o;
}

static void make_ok(const rb_scenes_options *o)
{
    rb_status s = rb_scenes_make(o, NULL, NULL);
    ck_assert_msg(s == RB_OK, "make-scenes %s: %s", o->out, rb_last_error());
}

static json_object *field(json_object *o, const char *key)
{
    json_object *v = NULL;
    ck_assert_msg(json_object_object_get_ex(o, key, &v), "no field '%s'", key);
    return v;
}

static json_object *read_json(const char *out, const char *name)
{
    char path[PATH_LEN];
    json_object *o;
    snprintf(path, sizeof path, "%s/%s", out, name);
    json_strict_assert_file(path);
    o = json_object_from_file(path);
    ck_assert_msg(o != NULL, "%s does not parse", path);
    return o;
}

static rb_image read_image(const char *out, const char *folder, const char *name, rb_image_mode mode, int size)
{
    char path[PATH_LEN];
    rb_image im;
    snprintf(path, sizeof path, "%s/%s/%s.png", out, folder, name);
    ck_assert_msg(rb_image_read(path, mode, &im) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(im.height, size);
    ck_assert_int_eq(im.width, size);
    return im;
}

/* ------------------------------------------------------- one scene's files */

typedef struct instance {
    int64_t id, category, area;
    int x, y, w, h; /* bbox */
    uint8_t *bits;  /* size × size, row-major: 1 on the instance's pixels */
} instance;

typedef struct scene {
    int size, count;
    rb_image mask, rgb;
    instance inst[64];
} scene;

/* Decodes COCO's uncompressed RLE (runs of 0 and 1 alternating from 0,
 * column-major) into bits; returns the count of ones. */
static int64_t decode_rle(json_object *seg, int size, uint8_t *bits)
{
    json_object *counts = field(seg, "counts"), *dims = field(seg, "size");
    int64_t pos = 0, ones = 0, total = (int64_t)size * size;
    ck_assert_int_eq(json_object_array_length(dims), 2);
    ck_assert_int_eq(json_object_get_int(json_object_array_get_idx(dims, 0)), size);
    ck_assert_int_eq(json_object_get_int(json_object_array_get_idx(dims, 1)), size);
    for (size_t i = 0; i < json_object_array_length(counts); i++) {
        int64_t run = json_object_get_int64(json_object_array_get_idx(counts, i));
        ck_assert_msg(run > 0 || (i == 0 && run == 0), "RLE run %zu is %" PRId64, i, run);
        ck_assert_int_le(pos + run, total);
        for (int64_t j = 0; j < run; j++, pos++) {
            int x = (int)(pos / size), y = (int)(pos % size);
            bits[y * size + x] = (uint8_t)(i % 2);
            ones += (int64_t)(i % 2);
        }
    }
    ck_assert_int_eq(pos, total);
    return ones;
}

/* The class of the instance covering pixel p, or 0. */
static int64_t class_at(const scene *sc, size_t p)
{
    for (int k = 0; k < sc->count; k++)
        if (sc->inst[k].bits[p])
            return sc->inst[k].category;
    return 0;
}

/* Reads scene `index` (from 1) of `set` and checks every rule that holds
 * whatever the items: the COCO image entry; each annotation's bbox, area
 * and category against its RLE; instances disjoint and covering exactly
 * the mask's non-zero pixels; the mask's value on each pixel (class, or
 * 255 with a 4-neighbour of another class); and, for `solid` items
 * (ours, not Fashion-MNIST's), what hides part of an instance's box being a
 * later instance. */
static void read_scene(scene *sc, const char *out, const char *set, int64_t index, json_object *coco, int size,
                       int64_t classes, bool solid)
{
    char name[64], file_name[80];
    json_object *images = field(coco, "images"), *annotations = field(coco, "annotations"), *image;
    uint8_t palette[256][3];
    const size_t pixels = (size_t)size * (size_t)size;

    memset(sc, 0, sizeof *sc);
    sc->size = size;
    snprintf(name, sizeof name, "%s_%06" PRId64, set, index);
    sc->mask = read_image(out, "SegmentationClass", name, RB_IMAGE_INDICES, size);
    sc->rgb = read_image(out, "JPEGImages", name, RB_IMAGE_RGB, size);
    rb_image_voc_palette(palette);
    ck_assert_int_eq(sc->mask.palette_size, 256);
    ck_assert_mem_eq(sc->mask.palette, palette, sizeof palette);

    ck_assert_int_ge((int64_t)json_object_array_length(images), index);
    image = json_object_array_get_idx(images, (size_t)(index - 1));
    snprintf(file_name, sizeof file_name, "%s.png", name);
    ck_assert_int_eq(json_object_get_int64(field(image, "id")), index);
    ck_assert_str_eq(json_object_get_string(field(image, "file_name")), file_name);
    ck_assert_int_eq(json_object_get_int(field(image, "width")), size);
    ck_assert_int_eq(json_object_get_int(field(image, "height")), size);

    for (size_t a = 0; a < json_object_array_length(annotations); a++) {
        json_object *an = json_object_array_get_idx(annotations, a), *bbox;
        instance *in;
        int x0 = size, y0 = size, x1 = -1, y1 = -1;
        int64_t ones;
        if (json_object_get_int64(field(an, "image_id")) != index)
            continue;
        ck_assert_int_lt(sc->count, 64);
        in = &sc->inst[sc->count++];
        in->id = json_object_get_int64(field(an, "id"));
        if (sc->count > 1)
            ck_assert_int_gt(in->id, sc->inst[sc->count - 2].id);
        in->category = json_object_get_int64(field(an, "category_id"));
        ck_assert_int_ge(in->category, 1);
        ck_assert_int_le(in->category, classes);
        in->area = json_object_get_int64(field(an, "area"));
        ck_assert_int_eq(json_object_get_int(field(an, "iscrowd")), 0);
        bbox = field(an, "bbox");
        ck_assert_int_eq(json_object_array_length(bbox), 4);
        in->x = json_object_get_int(json_object_array_get_idx(bbox, 0));
        in->y = json_object_get_int(json_object_array_get_idx(bbox, 1));
        in->w = json_object_get_int(json_object_array_get_idx(bbox, 2));
        in->h = json_object_get_int(json_object_array_get_idx(bbox, 3));
        in->bits = calloc(pixels, 1);
        ck_assert_ptr_nonnull(in->bits);
        ones = decode_rle(field(an, "segmentation"), size, in->bits);
        ck_assert_int_gt(ones, 0); /* wholly covered objects are left out */
        ck_assert_int_eq(in->area, ones);
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                if (in->bits[y * size + x]) {
                    x0 = x < x0 ? x : x0;
                    y0 = y < y0 ? y : y0;
                    x1 = x > x1 ? x : x1;
                    y1 = y > y1 ? y : y1;
                }
        ck_assert_int_eq(in->x, x0);
        ck_assert_int_eq(in->y, y0);
        ck_assert_int_eq(in->w, x1 - x0 + 1);
        ck_assert_int_eq(in->h, y1 - y0 + 1);
    }
    ck_assert_msg(sc->count >= 1, "%s has no annotation", name);

    for (size_t p = 0; p < pixels; p++) {
        int owners = 0;
        for (int k = 0; k < sc->count; k++)
            owners += sc->inst[k].bits[p];
        ck_assert_msg(owners <= 1, "%s: pixel %zu in %d instances", name, p, owners);
        ck_assert_msg((owners == 1) == (sc->mask.pixels[p] != 0), "%s: pixel %zu: mask %d, %d instances", name, p,
                      sc->mask.pixels[p], owners);
    }
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            size_t p = (size_t)y * size + x;
            int64_t c = class_at(sc, p);
            bool outline = false;
            static const int step[4][2] = {{-1, 0}, {1, 0}, {0, -1}, {0, 1}};
            if (c == 0)
                continue;
            for (int d = 0; d < 4; d++) {
                int ny = y + step[d][0], nx = x + step[d][1];
                if (ny >= 0 && ny < size && nx >= 0 && nx < size && class_at(sc, (size_t)ny * size + nx) != c)
                    outline = true;
            }
            ck_assert_msg(sc->mask.pixels[p] == (outline ? IGNORE : c), "%s (%d, %d): mask %d, want %d", name, y, x,
                          sc->mask.pixels[p], (int)(outline ? IGNORE : c));
        }
    /* An object is a solid shape, so any pixel of its box that is not its
     * own is covered by an object drawn after it. */
    for (int k = 0; solid && k < sc->count; k++) {
        const instance *in = &sc->inst[k];
        for (int y = in->y; y < in->y + in->h; y++)
            for (int x = in->x; x < in->x + in->w; x++) {
                size_t p = (size_t)y * size + x;
                bool later = false;
                if (in->bits[p])
                    continue;
                for (int j = k + 1; j < sc->count; j++)
                    later = later || sc->inst[j].bits[p];
                ck_assert_msg(later, "%s: (%d, %d) in the box of instance %" PRId64 " is neither its own nor a later "
                                     "object's", name, y, x, in->id);
            }
    }
}

static void free_scene(scene *sc)
{
    for (int k = 0; k < sc->count; k++)
        free(sc->inst[k].bits);
    rb_image_free(&sc->mask);
    rb_image_free(&sc->rgb);
}

/* Every object pixel of an instance has one colour (its item has one
 * value); the background is at most 40% of white (tint <= 1). */
static void check_colours(const scene *sc)
{
    const size_t pixels = (size_t)sc->size * (size_t)sc->size;
    for (int k = 0; k < sc->count; k++) {
        const uint8_t *first = NULL;
        for (size_t p = 0; p < pixels; p++)
            if (sc->inst[k].bits[p]) {
                if (first == NULL)
                    first = &sc->rgb.pixels[p * 3];
                ck_assert_mem_eq(&sc->rgb.pixels[p * 3], first, 3);
            }
    }
    for (size_t p = 0; p < pixels; p++)
        if (sc->mask.pixels[p] == 0)
            for (int c = 0; c < 3; c++)
                ck_assert_int_le(sc->rgb.pixels[p * 3 + c], 102); /* round(0.4 * 255) */
}

/* ---------------------------------------------------------------- by hand */

/* Rows (or columns) [r0, r1] of a 10-pixel item scaled to `side` by
 * nearest neighbour (item row floor(d * 10 / side)) cover scene offsets
 * [first, end): d >= r0 * side / 10 and d < (r1 + 1) * side / 10. */
static void scaled_span(int r0, int r1, int side, int *first, int *end)
{
    *first = (r0 * side + ITEM - 1) / ITEM;
    *end = ((r1 + 1) * side + ITEM - 1) / ITEM;
}

/* The shape of scene class k: rows [r0, r1], columns [c0, c1]. */
static const int shape[4][4] = {{0, 0, 0, 0}, {2, 7, 2, 7}, {3, 6, 0, 9}, {0, 9, 3, 6}};

/* A one-object scene: the instance must be the solid rectangle of its
 * class's shape scaled to some side s in [0.3 S, 0.6 S] and placed with the
 * item's square wholly inside the scene. */
static void check_single_object(const scene *sc)
{
    const int size = sc->size, lo = (int)(0.3 * size), hi = (int)(0.6 * size);
    const instance *in = &sc->inst[0];
    const int *sh = shape[in->category];
    bool found = false;

    ck_assert_int_eq(sc->count, 1);
    ck_assert_int_eq(in->area, (int64_t)in->w * in->h); /* solid: nothing hides it */
    for (int s = lo; s <= hi && !found; s++) {
        int rf, re, cf, ce;
        scaled_span(sh[0], sh[1], s, &rf, &re);
        scaled_span(sh[2], sh[3], s, &cf, &ce);
        int top = in->y - rf, left = in->x - cf;
        found = re - rf == in->h && ce - cf == in->w && top >= 0 && top + s <= size && left >= 0 &&
                left + s <= size;
    }
    ck_assert_msg(found, "a %d x %d box at (%d, %d) is no class-%" PRId64 " shape at a side in [%d, %d]", in->w,
                  in->h, in->x, in->y, in->category, lo, hi);
    /* The mask worked out from the rectangle alone. */
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            bool inside = x >= in->x && x < in->x + in->w && y >= in->y && y < in->y + in->h;
            bool edge = inside && ((y > 0 && y == in->y) || (y < size - 1 && y == in->y + in->h - 1) ||
                                   (x > 0 && x == in->x) || (x < size - 1 && x == in->x + in->w - 1));
            int want = !inside ? 0 : edge ? IGNORE : (int)in->category;
            ck_assert_msg(sc->mask.pixels[y * size + x] == want, "(%d, %d): mask %d, want %d", y, x,
                          sc->mask.pixels[y * size + x], want);
        }
}

START_TEST(one_object_scenes_by_hand)
{
    char out[OUT_LEN];
    rb_scenes_options o = options_for("one", out, sizeof out);
    int seen[4] = {0};
    make_ok(&o);

    {
        size_t len;
        char path[PATH_LEN];
        unsigned char *text;
        snprintf(path, sizeof path, "%s/classes.txt", out);
        text = read_whole_file(path, &len);
        text[len] = '\0';
        ck_assert_str_eq((char *)text, "background\nclass_2\nclass_0\nclass_3\n");
        free(text);
        snprintf(path, sizeof path, "%s/ImageSets/Segmentation/val.txt", out);
        text = read_whole_file(path, &len);
        text[len] = '\0';
        ck_assert_str_eq((char *)text, "val_000001\nval_000002\nval_000003\nval_000004\n");
        free(text);
    }
    {
        json_object *made = read_json(out, "scenes.json");
        ck_assert_str_eq(json_object_get_string(field(made, "classes")), "2,0,3");
        ck_assert_int_eq(json_object_get_int64(field(made, "images")), 12);
        ck_assert_int_eq(json_object_get_int64(field(made, "val_images")), 4);
        ck_assert_int_eq(json_object_get_int(field(made, "size")), 40);
        ck_assert_int_eq(json_object_get_int(field(made, "objects_min")), 1);
        ck_assert_int_eq(json_object_get_int(field(made, "objects_max")), 1);
        ck_assert_int_eq(json_object_get_uint64(field(made, "seed")), 7);
        json_object_put(made);
    }
    for (int split = 0; split < 2; split++) {
        const char *set = split == 0 ? "train" : "val";
        char name[64];
        int64_t n = split == 0 ? 12 : 4;
        snprintf(name, sizeof name, "annotations/instances_%s.json", set);
        json_object *coco = read_json(out, name), *cats = field(coco, "categories");
        static const char *const names[] = {"class_2", "class_0", "class_3"};
        ck_assert_int_eq(json_object_array_length(cats), 3);
        for (int c = 0; c < 3; c++) {
            json_object *cat = json_object_array_get_idx(cats, (size_t)c);
            ck_assert_int_eq(json_object_get_int(field(cat, "id")), c + 1);
            ck_assert_str_eq(json_object_get_string(field(cat, "name")), names[c]);
        }
        ck_assert_int_eq(json_object_array_length(field(coco, "images")), n);
        ck_assert_int_eq(json_object_array_length(field(coco, "annotations")), n);
        for (int64_t i = 1; i <= n; i++) {
            scene sc;
            read_scene(&sc, out, set, i, coco, 40, 3, true);
            check_single_object(&sc);
            check_colours(&sc);
            seen[sc.inst[0].category]++;
            free_scene(&sc);
        }
        json_object_put(coco);
    }
    /* every shape (and so the threshold of class 3) was looked at */
    ck_assert_msg(seen[1] > 0 && seen[2] > 0 && seen[3] > 0, "classes seen: %d %d %d", seen[1], seen[2], seen[3]);

    /* The folder reads back as voc-seg. */
    {
        char spec[PATH_LEN];
        rb_split *s = NULL;
        snprintf(spec, sizeof spec, "voc-seg:%s", out);
        ck_assert_msg(rb_split_open(&s, spec, RB_SPLIT_TEST, NULL) == RB_OK, "%s", rb_last_error());
        ck_assert_int_eq(rb_split_count(s), 4);
        ck_assert_int_eq(rb_split_classes(s), 4);
        ck_assert_str_eq(rb_split_class_name(s, 3), "class_3");
        rb_split_destroy(s);
    }
}
END_TEST

START_TEST(occluded_objects_count_visible_pixels)
{
    char out[OUT_LEN];
    rb_scenes_options o = options_for("many", out, sizeof out);
    int occluded = 0, objects = 0;
    json_object *coco;
    o.train_images = 24;
    o.val_images = 2;
    o.size = 48;
    o.min_objects = 2;
    o.max_objects = 3;
    make_ok(&o);
    coco = read_json(out, "annotations/instances_train.json");
    for (int64_t i = 1; i <= 24; i++) {
        scene sc;
        read_scene(&sc, out, "train", i, coco, 48, 3, true);
        check_colours(&sc);
        objects += sc.count;
        for (int k = 0; k < sc.count; k++)
            occluded += sc.inst[k].area < (int64_t)sc.inst[k].w * sc.inst[k].h;
        free_scene(&sc);
    }
    json_object_put(coco);
    /* scenes hold 2-3 objects of side >= 14 in 48 x 48: some overlap */
    ck_assert_msg(occluded > 0, "no instance of %d is partly hidden: occlusion went unchecked", objects);
    ck_assert_int_ge(objects, 40);
}
END_TEST

/* ------------------------------------------------------------ determinism */

/* Compares every file under a and b (the same names, the same bytes). */
static void assert_same_tree(const char *a, const char *b)
{
    char cmd[2 * OUT_LEN + 64];
    snprintf(cmd, sizeof cmd, "diff -r '%s' '%s' >/dev/null", a, b);
    ck_assert_msg(system(cmd) == 0, "%s and %s differ", a, b);
}

static bool same_file(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = read_whole_file(a, &na), *y = read_whole_file(b, &nb);
    bool same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static bool same_scene_file(const char *out_a, const char *out_b, const char *folder, const char *name)
{
    char a[PATH_LEN], b[PATH_LEN];
    snprintf(a, sizeof a, "%s/%s/%s.png", out_a, folder, name);
    snprintf(b, sizeof b, "%s/%s/%s.png", out_b, folder, name);
    return same_file(a, b);
}

/* The annotations and image entry of image `id` as JSON text. */
static void annotations_of(const char *out, const char *set, int64_t id, char *text, size_t size)
{
    char name[64];
    json_object *coco, *list;
    size_t used = 0;
    snprintf(name, sizeof name, "annotations/instances_%s.json", set);
    coco = read_json(out, name);
    list = field(coco, "annotations");
    text[0] = '\0';
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *an = json_object_array_get_idx(list, i);
        if (json_object_get_int64(field(an, "image_id")) == id)
            used += (size_t)snprintf(text + used, size - used, "%s\n", json_object_to_json_string(an));
        ck_assert_int_lt(used, size);
    }
    used += (size_t)snprintf(text + used, size - used, "%s",
                             json_object_to_json_string(json_object_array_get_idx(field(coco, "images"),
                                                                                   (size_t)(id - 1))));
    ck_assert_int_lt(used, size);
    json_object_put(coco);
}

START_TEST(same_options_same_bytes)
{
    char a[OUT_LEN], b[OUT_LEN], c[OUT_LEN], five[OUT_LEN], two[OUT_LEN];
    rb_scenes_options oa = options_for("a", a, sizeof a), ob = options_for("b", b, sizeof b),
                      oc = options_for("c", c, sizeof c), o5 = options_for("five", five, sizeof five),
                      o2 = options_for("two", two, sizeof two);
    int differ = 0;

    oa.min_objects = ob.min_objects = oc.min_objects = 1;
    oa.max_objects = ob.max_objects = oc.max_objects = 3;
    oa.train_images = ob.train_images = oc.train_images = 5;
    oa.val_images = ob.val_images = oc.val_images = 3;
    oc.seed = 8;
    make_ok(&oa);
    make_ok(&ob);
    make_ok(&oc);
    assert_same_tree(a, b);
    for (int i = 1; i <= 5; i++) {
        char name[32];
        snprintf(name, sizeof name, "train_%06d", i);
        differ += !same_scene_file(a, c, "JPEGImages", name);
    }
    ck_assert_msg(differ == 5, "seed 8 remade %d of 5 scenes of seed 7", 5 - differ);

    /* Scenes 1 and 2 of each split do not depend on how many follow. */
    o5.min_objects = o2.min_objects = 1;
    o5.max_objects = o2.max_objects = 3;
    o5.train_images = o5.val_images = 5;
    o2.train_images = o2.val_images = 2;
    make_ok(&o5);
    make_ok(&o2);
    for (int split = 0; split < 2; split++) {
        const char *set = split == 0 ? "train" : "val";
        for (int i = 1; i <= 2; i++) {
            char name[32], t5[16384], t2[16384];
            snprintf(name, sizeof name, "%s_%06d", set, i);
            ck_assert_msg(same_scene_file(five, two, "JPEGImages", name), "%s differs", name);
            ck_assert_msg(same_scene_file(five, two, "SegmentationClass", name), "%s's mask differs", name);
            annotations_of(five, set, i, t5, sizeof t5);
            annotations_of(two, set, i, t2, sizeof t2);
            ck_assert_str_eq(t5, t2);
        }
    }
}
END_TEST

/* --------------------------------------------------------------- refusals */

/* The names in `path`, sorted, one a line. */
static void listing(const char *path, char *text, size_t size)
{
    char cmd[OUT_LEN + 32];
    FILE *p;
    size_t n;
    snprintf(cmd, sizeof cmd, "LC_ALL=C ls -A '%s'", path);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    n = fread(text, 1, size - 1, p);
    text[n] = '\0';
    ck_assert_int_eq(pclose(p), 0);
}

/* An existing OUT holding one file, "keep", that says `what`. */
static void make_existing(const char *out, const char *what)
{
    char path[PATH_LEN];
    ck_assert_int_eq(mkdir(out, 0755), 0);
    snprintf(path, sizeof path, "%s/keep", out);
    write_text(path, what);
}

static void assert_untouched(const char *out, const char *what)
{
    char path[PATH_LEN], names[256];
    size_t len;
    unsigned char *text;
    listing(out, names, sizeof names);
    ck_assert_str_eq(names, "keep\n");
    snprintf(path, sizeof path, "%s/keep", out);
    text = read_whole_file(path, &len);
    text[len] = '\0';
    ck_assert_str_eq((char *)text, what);
    free(text);
}

/* The failure is one line naming `needle`. */
static void assert_refused(const rb_scenes_options *o, rb_status want, const char *needle)
{
    rb_status s = rb_scenes_make(o, NULL, NULL);
    const char *e = rb_last_error();
    ck_assert_msg(s == want, "got %d (%s), want %d", s, e, want);
    ck_assert_ptr_null(strchr(e, '\n'));
    ck_assert_msg(strstr(e, needle) != NULL, "'%s' does not name '%s'", e, needle);
}

START_TEST(existing_out_refused_or_replaced)
{
    char out[OUT_LEN], names[1024], path[PATH_LEN];
    rb_scenes_options o = options_for("out", out, sizeof out);
    struct stat st;

    make_existing(out, "old\n");
    assert_refused(&o, RB_ERR_INVALID_ARGUMENT, "--force");
    ck_assert_ptr_nonnull(strstr(rb_last_error(), out));
    assert_untouched(out, "old\n");
    o.force = true;
    make_ok(&o);
    snprintf(path, sizeof path, "%s/keep", out);
    ck_assert_int_ne(stat(path, &st), 0); /* replaced, not merged */
    listing(out, names, sizeof names);
    ck_assert_str_eq(names, "ImageSets\nJPEGImages\nSegmentationClass\nannotations\nclasses.txt\nscenes.json\n");
    listing(dir, names, sizeof names); /* no OUT.old-* or OUT.partial-* */
    ck_assert_str_eq(names, "out\ntx.npy\nty.npy\nx.npy\ny.npy\n");

    /* a file in the way stays, even with force */
    snprintf(out, sizeof out, "%s/file", dir);
    write_text(out, "a file\n");
    assert_refused(&o, RB_ERR_INVALID_ARGUMENT, "not a folder");
    {
        size_t len;
        unsigned char *text = read_whole_file(out, &len);
        ck_assert_int_eq(len, 7);
        ck_assert_mem_eq(text, "a file\n", 7);
        free(text);
    }
}
END_TEST

typedef struct bad_case {
    const char *needle; /* what the one line must name */
    rb_status want;     /* RB_OK: any failure */
    const char *from, *classes;
    int size, min_objects, max_objects;
    int64_t train_images, val_images;
} bad_case;

START_TEST(failures_leave_nothing_behind)
{
    char out[OUT_LEN], names[1024], no_test[SPEC_LEN], no_val_objects[SPEC_LEN], missing[SPEC_LEN];
    /* the test split holds item classes 0 and 1 only: none of class 2 */
    write_items("ox.npy", "oy.npy", 4, (const uint8_t[]){0, 1, 0, 1});
    snprintf(no_test, sizeof no_test, "npy:%s/x.npy,%s/y.npy", dir, dir);
    snprintf(no_val_objects, sizeof no_val_objects, "npy:%s/x.npy,%s/y.npy;%s/ox.npy,%s/oy.npy", dir, dir, dir, dir);
    snprintf(missing, sizeof missing, "npy:%s/absent.npy,%s/y.npy;%s/tx.npy,%s/ty.npy", dir, dir, dir, dir);
    /* the good options are: items, 2,0,3, size 40, 1-1 objects, 12 and 4 scenes */
    const bad_case cases[] = {
        {"background", RB_ERR_INVALID_ARGUMENT, NULL, "0-3", 40, 1, 1, 12, 4},
        {"--classes", RB_ERR_INVALID_ARGUMENT, NULL, "7", 40, 1, 1, 12, 4},
        {"--classes", RB_ERR_INVALID_ARGUMENT, NULL, "2,2", 40, 1, 1, 12, 4},
        {"--classes", RB_ERR_INVALID_ARGUMENT, NULL, "two", 40, 1, 1, 12, 4},
        {"--size 7", RB_ERR_INVALID_ARGUMENT, NULL, "2,0,3", 7, 1, 1, 12, 4},
        {"--size 4097", RB_ERR_INVALID_ARGUMENT, NULL, "2,0,3", 4097, 1, 1, 12, 4},
        {"--objects 3-1", RB_ERR_INVALID_ARGUMENT, NULL, "2,0,3", 40, 3, 1, 12, 4},
        {"--objects 0-0", RB_ERR_INVALID_ARGUMENT, NULL, "2,0,3", 40, 0, 0, 12, 4},
        {"--objects 1-65", RB_ERR_INVALID_ARGUMENT, NULL, "2,0,3", 40, 1, 65, 12, 4},
        {"--images 0", RB_ERR_INVALID_ARGUMENT, NULL, "2,0,3", 40, 1, 1, 0, 4},
        {"--val-images 0", RB_ERR_INVALID_ARGUMENT, NULL, "2,0,3", 40, 1, 1, 12, 0},
        /* these fail only once the train scenes are written */
        {"test split", RB_OK, no_test, "2,0,3", 40, 1, 1, 12, 4},
        {"no item of the chosen --classes", RB_ERR_INVALID_ARGUMENT, no_val_objects, "2", 40, 1, 1, 12, 4},
        /* and this before anything is made */
        {"absent.npy", RB_ERR_NOT_FOUND, missing, "2,0,3", 40, 1, 1, 12, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        rb_scenes_options o = options_for("out", out, sizeof out);
        o.from = c->from ? c->from : items;
        o.classes = c->classes;
        o.size = c->size;
        o.min_objects = c->min_objects;
        o.max_objects = c->max_objects;
        o.train_images = c->train_images;
        o.val_images = c->val_images;
        for (int existing = 0; existing < 2; existing++) {
            rb_status s;
            o.force = existing;
            if (existing)
                make_existing(out, "old\n");
            s = rb_scenes_make(&o, NULL, NULL);
            ck_assert_msg(s != RB_OK && (c->want == RB_OK || s == c->want), "case %zu (%s): status %d: %s", i,
                          c->needle, s, rb_last_error());
            ck_assert_msg(strchr(rb_last_error(), '\n') == NULL && strstr(rb_last_error(), c->needle) != NULL,
                          "case %zu: '%s' does not name '%s' in one line", i, rb_last_error(), c->needle);
            listing(dir, names, sizeof names);
            ck_assert_msg(strcmp(names, existing ? "out\nox.npy\noy.npy\ntx.npy\nty.npy\nx.npy\ny.npy\n"
                                                 : "ox.npy\noy.npy\ntx.npy\nty.npy\nx.npy\ny.npy\n") == 0,
                          "case %zu (%s) left:\n%s", i, c->needle, names);
            if (existing) {
                assert_untouched(out, "old\n");
                remove_temp_dir(out);
            }
        }
    }
}
END_TEST

/* The class list is mapped to item classes through the train items; a
 * listed class with none used to be mapped to item class 0 and named
 * after it (scenes of bars called "class_0" for --classes 2,3). */
START_TEST(class_without_train_items_refused)
{
    char out[OUT_LEN], spec[SPEC_LEN], names[1024];
    rb_scenes_options o = options_for("out", out, sizeof out);
    write_items("ex.npy", "ey.npy", 6, (const uint8_t[]){0, 1, 3, 0, 1, 3}); /* no class 2 */
    snprintf(spec, sizeof spec, "npy:%s/ex.npy,%s/ey.npy;%s/tx.npy,%s/ty.npy", dir, dir, dir, dir);
    o.from = spec;
    o.classes = "2,3";
    assert_refused(&o, RB_ERR_INVALID_ARGUMENT, "--classes 2,3: class_2 has no item in the train split");
    listing(dir, names, sizeof names);
    ck_assert_str_eq(names, "ex.npy\ney.npy\ntx.npy\nty.npy\nx.npy\ny.npy\n");
    /* the classes that have items still make scenes, named right */
    o.classes = "3,0";
    make_ok(&o);
    {
        char path[PATH_LEN];
        size_t len;
        unsigned char *text;
        snprintf(path, sizeof path, "%s/classes.txt", out);
        text = read_whole_file(path, &len);
        text[len] = '\0';
        ck_assert_str_eq((char *)text, "background\nclass_3\nclass_0\n");
        free(text);
    }
}
END_TEST

/* ------------------------------------------------------------ the command */

#define RUN(r, ...) run_robusta((r), NULL, (const char *const[]){__VA_ARGS__, NULL})

START_TEST(command_line)
{
    static run_result r;
    char out[OUT_LEN], api[OUT_LEN], names[1024];
    rb_scenes_options o = options_for("api", api, sizeof api);
    snprintf(out, sizeof out, "%s/cli", dir);

    /* the command's options are the library's */
    RUN(&r, "make-scenes", "--from", items, "--classes", "2,0,3", "--out", out, "--images", "3", "--val-images", "1",
        "--size", "16", "--objects", "1-2", "--seed", "5");
    ck_assert_msg(r.code == 0, "%d: %s", r.code, r.err);
    {
        char want[OUT_LEN + 128];
        snprintf(want, sizeof want, "%s: 4 scenes (train and val) of 16 x 16, VOC layout and COCO annotations\n", out);
        ck_assert_str_eq(r.out, want);
    }
    o.train_images = 3;
    o.val_images = 1;
    o.size = 16;
    o.min_objects = 1;
    o.max_objects = 2;
    o.seed = 5;
    make_ok(&o);
    assert_same_tree(out, api);

    /* again: refused, the folder as it was */
    RUN(&r, "make-scenes", "--from", items, "--classes", "2,0,3", "--out", out, "--images", "3", "--seed", "6");
    ck_assert_int_eq(r.code, 1);
    ck_assert_msg(count_lines(r.err) == 1 && strstr(r.err, "already exists") && strstr(r.err, "--force"), "%s",
                  r.err);
    assert_same_tree(out, api);

    /* bad values: the option named, one line, nothing made */
    snprintf(out, sizeof out, "%s/bad", dir);
    RUN(&r, "make-scenes", "--from", items, "--out", out, "--size", "5");
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.err, "robusta make-scenes: --size: 5 is outside [8, 4096] (robusta make-scenes --help lists "
                            "its options)\n");
    RUN(&r, "make-scenes", "--from", items, "--out", out, "--images", "0");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(count_lines(r.err) == 1 && strstr(r.err, "--images") != NULL, "%s", r.err);
    RUN(&r, "make-scenes", "--from", items, "--out", out, "--objects", "two");
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.err, "robusta make-scenes: --objects 'two' is not MIN-MAX (e.g. 1-3)\n");
    RUN(&r, "make-scenes", "--from", items, "--size", "16");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(count_lines(r.err) == 1 && strstr(r.err, "--out") != NULL, "%s", r.err);
    /* values only the library can judge: the failure code, still one line */
    RUN(&r, "make-scenes", "--from", items, "--classes", "2,0,3", "--out", out, "--objects", "3-1");
    ck_assert_int_eq(r.code, 1);
    ck_assert_msg(count_lines(r.err) == 1 && strncmp(r.err, "robusta make-scenes: ", 21) == 0 &&
                      strstr(r.err, "--objects 3-1") != NULL,
                  "%s", r.err);
    RUN(&r, "make-scenes", "--from", items, "--classes", "0-3", "--out", out);
    ck_assert_int_eq(r.code, 1);
    ck_assert_msg(count_lines(r.err) == 1 && strstr(r.err, "background") != NULL, "%s", r.err);
    listing(dir, names, sizeof names);
    ck_assert_str_eq(names, "api\ncli\ntx.npy\nty.npy\nx.npy\ny.npy\n");
}
END_TEST

/* ------------------------------------------------------ Fashion-MNIST */

START_TEST(fashion_mnist_end_to_end)
{
    const char *fm = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
    char out[OUT_LEN];
    rb_scenes_options o;
    json_object *coco;
    struct stat st;
    if (stat(fm, &st) != 0) {
        printf("SKIP: fashion_mnist_end_to_end: Fashion-MNIST is not installed (%s)\n", fm);
        return;
    }
    rb_scenes_defaults(&o); /* fashion-mnist, classes 5-9, 1-3 objects, 96 x 96 */
    snprintf(out, sizeof out, "%s/fm", dir);
    o.out = out;
    o.train_images = 6;
    o.val_images = 2;
    o.seed = 3;
    make_ok(&o);
    for (int split = 0; split < 2; split++) {
        const char *set = split == 0 ? "train" : "val";
        char name[64];
        snprintf(name, sizeof name, "annotations/instances_%s.json", set);
        coco = read_json(out, name);
        ck_assert_str_eq(json_object_get_string(field(json_object_array_get_idx(field(coco, "categories"), 0),
                                                      "name")),
                         "Sandal");
        for (int64_t i = 1; i <= (split == 0 ? 6 : 2); i++) {
            scene sc;
            read_scene(&sc, out, set, i, coco, 96, 5, false);
            free_scene(&sc);
        }
        json_object_put(coco);
    }
}
END_TEST

Suite *scenes_suite(void);

Suite *scenes_suite(void)
{
    Suite *s = suite_create("scenes");
    TCase *tc = tcase_create("scenes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, one_object_scenes_by_hand);
    tcase_add_test(tc, occluded_objects_count_visible_pixels);
    tcase_add_test(tc, same_options_same_bytes);
    tcase_add_test(tc, existing_out_refused_or_replaced);
    tcase_add_test(tc, failures_leave_nothing_behind);
    tcase_add_test(tc, class_without_train_items_refused);
    tcase_add_test(tc, command_line);
    tcase_add_test(tc, fashion_mnist_end_to_end);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(scenes_suite());
}
