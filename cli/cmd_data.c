/* Commands that make datasets: make-scenes (robusta/data.h, "Composed
 * scenes"). */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <robusta/data.h>
#include <robusta/progress.h>

#include "cli/cli.h"

static const rb_param_spec scenes_options[] = {
    {"from", RB_PARAM_STRING, "fashion-mnist", NULL, 0, "items: a one-channel 8-bit dataset spec (fashion-mnist, mnist:DIR)"},
    {"classes", RB_PARAM_STRING, "5-9", NULL, 0,
     "item classes that become scene classes 1..K, in this order (the others make the background)"},
    {"out", RB_PARAM_STRING, NULL, NULL, 0, "folder to make (VOC layout plus COCO annotations)"},
    {"images", RB_PARAM_INT, "1000", "[1, 10000000]", 0, "train scenes"},
    {"val-images", RB_PARAM_INT, "-1", "[-1, 10000000]", 0, "val scenes (-1: a quarter of --images)"},
    {"size", RB_PARAM_INT, "96", "[8, 4096]", 0, "scene height and width in pixels"},
    {"objects", RB_PARAM_STRING, "1-3", NULL, 0, "objects per scene, MIN-MAX (at most 64)"},
    {"seed", RB_PARAM_INT, "0", "[0, 9223372036854775807]", 0, "everything random follows from it"},
    {"force", RB_PARAM_BOOL, "false", NULL, 0, "replace --out if it exists (once the new folder is complete)"},
    {NULL}};

/* The bar starts with the first scene, so a refusal before any scene is
 * made prints its one line and nothing else. */
typedef struct scenes_bar {
    rb_progress *bar;
    bool started;
    int64_t total, base;
} scenes_bar;

static void scenes_progress(void *user, const char *set, int64_t done, int64_t total)
{
    scenes_bar *b = user;
    if (!b->started) {
        b->started = true;
        if (rb_progress_create(&b->bar, "scenes", (uint64_t)b->total, "img", NULL) != RB_OK)
            b->bar = NULL; /* no bar, same scenes */
    }
    if (strcmp(set, "val") == 0 && b->base == 0)
        b->base = b->total - total;
    rb_progress_update(b->bar, (uint64_t)(b->base + done), "%s", set);
}

/* "MIN-MAX" or "N" into two ints; false on anything else. */
static bool parse_range(const char *text, int *lo, int *hi)
{
    int a, b, used = 0;
    if (sscanf(text, "%d-%d%n", &a, &b, &used) == 2 && text[used] == '\0') {
        *lo = a;
        *hi = b;
        return true;
    }
    if (sscanf(text, "%d%n", &a, &used) == 1 && text[used] == '\0') {
        *lo = *hi = a;
        return true;
    }
    return false;
}

static int run_make_scenes(const cli_command *self, rb_params *o, int argc, char **args)
{
    rb_scenes_options so;
    scenes_bar bar = {0};
    rb_status s;

    if (argc > 0) {
        fprintf(stderr, "robusta %s: takes no positional arguments (got '%s')\n", self->name, args[0]);
        return RB_EXIT_USAGE;
    }
    rb_scenes_defaults(&so);
    so.from = cli_opt_string(o, "from");
    so.classes = cli_opt_string(o, "classes");
    so.out = cli_opt_string(o, "out");
    so.train_images = cli_opt_int(o, "images");
    so.val_images = cli_opt_int(o, "val-images");
    so.size = (int)cli_opt_int(o, "size");
    so.seed = (uint64_t)cli_opt_int(o, "seed");
    so.force = cli_opt_bool(o, "force");
    if (so.out == NULL) {
        fprintf(stderr, "robusta %s: --out DIR is needed (robusta %s --help lists the options)\n", self->name,
                self->name);
        return RB_EXIT_USAGE;
    }
    if (!parse_range(cli_opt_string(o, "objects"), &so.min_objects, &so.max_objects)) {
        fprintf(stderr, "robusta %s: --objects '%s' is not MIN-MAX (e.g. 1-3)\n", self->name,
                cli_opt_string(o, "objects"));
        return RB_EXIT_USAGE;
    }
    bar.total = so.train_images + (so.val_images < 0 ? (so.train_images / 4 > 0 ? so.train_images / 4 : 1)
                                                     : so.val_images);
    s = rb_scenes_make(&so, scenes_progress, &bar);
    if (s == RB_OK)
        rb_progress_finish(bar.bar, "%s", so.out);
    rb_progress_destroy(bar.bar);
    if (s != RB_OK)
        return cli_fail(self->name, s);
    printf("%s: %" PRId64 " scenes (train and val) of %d x %d, VOC layout and COCO annotations\n", so.out, bar.total,
           so.size, so.size);
    return RB_EXIT_OK;
}

const cli_command cli_make_scenes_command = {
    .name = "make-scenes",
    .summary = "a segmentation/detection dataset composed from real items, no download",
    .usage = "--out DIR [--from fashion-mnist] [--classes 5-9] [--images N] [--val-images M] [--size S] "
             "[--objects MIN-MAX] [--seed S] [--force]",
    .description =
        "Writes scenes that place real items of the chosen classes (scaled, coloured, possibly\n"
        "overlapping) on a texture made of the other classes' items, with class masks (0\n"
        "background, 1..K the classes in --classes order, 255 on object outlines) in Pascal VOC's\n"
        "segmentation layout (read it back with --data voc-seg:DIR) and COCO box annotations in\n"
        "annotations/instances_{train,val}.json. Train scenes use the items' train split, val\n"
        "scenes their test split. The same options give the same files.",
    .options = scenes_options,
    .run = run_make_scenes,
};
