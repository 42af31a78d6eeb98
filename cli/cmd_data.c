/* Dataset commands: data (what a spec holds and what the model receives
 * from it) and make-scenes (robusta/data.h, "Composed scenes"). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <robusta/data.h>
#include <robusta/interop.h>
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

/* ------------------------------------------------------------------ data */

static const rb_param_spec data_options[] = {
    {"data", RB_PARAM_STRING, NULL, NULL, 0, "dataset spec (fashion-mnist, cifar10:DIR, folder:DIR, list:... )"},
    {"split", RB_PARAM_STRING, NULL, NULL, 0, "train or test (default: both for the summary, train for --dump)"},
    {"classes", RB_PARAM_STRING, NULL, NULL, 0, "classes to keep, relabelled 0..k-1 (\"0-4\", \"3,5\")"},
    {"per-class", RB_PARAM_INT, "0", "[0, 1000000000]", 0, "at most this many examples per class (0: all)"},
    {"image-size", RB_PARAM_INT, "0", "[0, 65536]", 0, "resize to S x S (0: as stored)"},
    {"channels", RB_PARAM_INT, "0", "[0, 3]", 0, "1 or 3 channels (0: as stored)"},
    CLI_IMAGE_SET_OPTIONS,
    {"seed", RB_PARAM_INT, "0", "[0, 9223372036854775807]", 0, "per-class choice and augmentation"},
    {"augment", RB_PARAM_BOOL, "false", NULL, 0, "--dump: the training augmentation of the dataset's kind"},
    {"epoch", RB_PARAM_INT, "0", "[0, 16777215]", 0, "--dump --augment: the epoch whose draws to use"},
    {"count", RB_PARAM_INT, "16", "[1, 1000000]", 0, "--dump: the first N examples"},
    {"export", RB_PARAM_STRING, NULL, NULL, 0,
     "write the split(s) as image files to DIR/train/LL-CLASS/IIIIII.png (and DIR/test/...): the folder:DIR layout"},
    {"format", RB_PARAM_CHOICE, "png", "png|jpeg", 0, "--export: PNG (exact) or JPEG"},
    {"quality", RB_PARAM_INT, "90", "[1, 100]", 0, "--export --format jpeg: JPEG quality"},
    {"dump", RB_PARAM_STRING, NULL, NULL, 0,
     "write the examples as the model receives them to OUT.npy (float32 N x C x H x W in [0, 1]) and their "
     "labels to OUT.labels.npy"},
    {NULL}};

static rb_status open_data_split(const rb_params *o, rb_split_which which, rb_split **out)
{
    rb_split_options so = {.classes = cli_opt_string(o, "classes"),
                           .per_class = cli_opt_int(o, "per-class"),
                           .seed = (uint64_t)cli_opt_int(o, "seed"),
                           .size = (int)cli_opt_int(o, "image-size"),
                           .channels = (int)cli_opt_int(o, "channels")};
    rb_status s = cli_image_set_options(o, &so);
    return s != RB_OK ? s : rb_split_open(out, cli_opt_string(o, "data"), which, &so);
}

static void print_split(const char *spec, rb_split_which which, const rb_split *s)
{
    int c, h, w, sc, sh, sw;
    const int64_t n = rb_split_count(s), k = rb_split_classes(s);
    int64_t *counts = calloc((size_t)k + 1, sizeof *counts);
    rb_split_cache_state cache;
    rb_split_shape(s, &c, &h, &w);
    rb_split_stored_shape(s, &sc, &sh, &sw);
    rb_split_cache_state_get(s, &cache);
    if (cache.kept) {
        int64_t lo[2] = {INT64_MAX, INT64_MAX}, hi[2] = {0, 0};
        for (int64_t i = 0; i < n; i++) {
            int64_t ih, iw;
            rb_split_example_source_size(s, i, &ih, &iw);
            lo[0] = ih < lo[0] ? ih : lo[0], hi[0] = ih > hi[0] ? ih : hi[0];
            lo[1] = iw < lo[1] ? iw : lo[1], hi[1] = iw > hi[1] ? iw : hi[1];
        }
        printf("%s %s: %" PRId64 " examples, %" PRId64 " classes, RGB images of %" PRId64 "-%" PRId64 " x %" PRId64
               "-%" PRId64 " pixels (width x height) kept as they are, out %dx%dx%d by the paper's transform\n",
               spec, rb_split_which_str(which), n, k, lo[1], hi[1], lo[0], hi[0], c, h, w);
        printf("  decoded images: %s%s, %" PRId64 " of %" PRId64 " decoded%s%s%s\n",
               cache.path[0] ? "cache file " : "in memory (--cache DIR keeps them for later runs)", cache.path,
               cache.ready, cache.images, cache.rebuilt_because[0] ? "; rebuilt: the file there was stale (" : "",
               cache.rebuilt_because, cache.rebuilt_because[0] ? ")" : "");
    } else {
        printf("%s %s: %" PRId64 " examples, %" PRId64 " classes, stored %dx%dx%d %s, out %dx%dx%d\n", spec,
               rb_split_which_str(which), n, k, sc, sh, sw, rb_dtype_str(rb_split_dtype(s)), c, h, w);
    }
    if (counts == NULL)
        return;
    for (int64_t i = 0; i < n; i++)
        if (rb_split_labels(s)[i] >= 0 && rb_split_labels(s)[i] < k)
            counts[rb_split_labels(s)[i]]++;
    printf("  classes:");
    for (int64_t i = 0; i < k; i++)
        printf("%s %s %" PRId64, i ? "," : "", rb_split_class_name(s, i), counts[i]);
    printf("\n");
    free(counts);
}

/* OUT.npy -> OUT.labels.npy (any other name: NAME.labels.npy). */
static void labels_path(const char *out, char *path, size_t size)
{
    size_t n = strlen(out);
    if (n > 4 && strcmp(out + n - 4, ".npy") == 0)
        n -= 4;
    snprintf(path, size, "%.*s.labels.npy", (int)n, out);
}

static rb_status dump_examples(const rb_params *o, const rb_split *s, const char *out, int64_t *written)
{
    const int64_t n = cli_opt_int(o, "count") < rb_split_count(s) ? cli_opt_int(o, "count") : rb_split_count(s);
    const size_t per = rb_split_example_size(s);
    rb_augment aug;
    float *x = malloc((size_t)n * per * sizeof *x);
    int64_t *y = malloc((size_t)n * sizeof *y);
    char lpath[4200];
    int c, h, w;
    rb_status st = RB_OK;
    if (x == NULL || y == NULL) {
        free(x);
        free(y);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for %" PRId64 " examples", n);
    }
    rb_augment_defaults(rb_split_kind(s), &aug);
    for (int64_t i = 0; st == RB_OK && i < n; i++) {
        st = rb_split_example(s, i, cli_opt_bool(o, "augment") ? &aug : NULL, (uint64_t)cli_opt_int(o, "seed"),
                              cli_opt_int(o, "epoch"), x + (size_t)i * per);
        y[i] = rb_split_labels(s)[i];
    }
    rb_split_shape(s, &c, &h, &w);
    labels_path(out, lpath, sizeof lpath);
    if (st == RB_OK)
        st = rb_npy_save(out, RB_DTYPE_F32, 4, (const int64_t[4]){n, c, h, w}, x);
    if (st == RB_OK)
        st = rb_npy_save(lpath, RB_DTYPE_I64, 1, (const int64_t[1]){n}, y);
    free(x);
    free(y);
    *written = n;
    return st;
}

static int run_data(const cli_command *self, rb_params *o, int argc, char **args)
{
    const char *spec = cli_opt_string(o, "data"), *split = cli_opt_string(o, "split");
    const char *dump = cli_opt_string(o, "dump");
    rb_split_which which = RB_SPLIT_TRAIN;
    rb_status s;
    if (argc > 0) {
        fprintf(stderr, "robusta %s: takes no positional arguments (got '%s')\n", self->name, args[0]);
        return RB_EXIT_USAGE;
    }
    if (spec == NULL) {
        fprintf(stderr, "robusta %s: --data SPEC is needed (robusta %s --help lists the options)\n", self->name,
                self->name);
        return RB_EXIT_USAGE;
    }
    if (split != NULL && strcmp(split, "train") != 0 && strcmp(split, "test") != 0) {
        fprintf(stderr, "robusta %s: --split '%s' is neither train nor test\n", self->name, split);
        return RB_EXIT_USAGE;
    }
    if (split != NULL && strcmp(split, "test") == 0)
        which = RB_SPLIT_TEST;
    {
        rb_split_options checked = {0};
        if (cli_image_set_options(o, &checked) != RB_OK) {
            fprintf(stderr, "robusta %s: %s\n", self->name, rb_last_error());
            return RB_EXIT_USAGE;
        }
    }
    if (cli_opt_string(o, "export") != NULL) {
        const char *root = cli_opt_string(o, "export");
        const rb_image_format format = strcmp(cli_opt_string(o, "format"), "jpeg") == 0 ? RB_IMAGE_JPEG : RB_IMAGE_PNG;
        if (dump != NULL) {
            fprintf(stderr, "robusta %s: --export and --dump write different things; give one\n", self->name);
            return RB_EXIT_USAGE;
        }
        if (mkdir(root, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "robusta %s: cannot create %s: %s\n", self->name, root, strerror(errno));
            return RB_EXIT_FAILURE;
        }
        for (int w = 0; w < 2; w++) {
            rb_split *d = NULL;
            char path[4200];
            if (split != NULL && (rb_split_which)w != which)
                continue;
            snprintf(path, sizeof path, "%s/%s", root, rb_split_which_str((rb_split_which)w));
            s = open_data_split(o, (rb_split_which)w, &d);
            if (s != RB_OK && split == NULL && w == 1 && rb_last_status() == RB_ERR_NOT_FOUND)
                continue; /* no test split */
            if (s == RB_OK)
                s = rb_split_export(d, path, format, (int)cli_opt_int(o, "quality"));
            if (s == RB_OK)
                printf("%s: %" PRId64 " %s examples of %s as %s files\n", path, rb_split_count(d),
                       rb_split_which_str((rb_split_which)w), spec, format == RB_IMAGE_JPEG ? "JPEG" : "PNG");
            rb_split_destroy(d);
            if (s != RB_OK)
                return cli_fail(self->name, s);
        }
        return RB_EXIT_OK;
    }
    if (dump != NULL) {
        rb_split *d = NULL;
        int64_t n = 0;
        if ((s = open_data_split(o, which, &d)) == RB_OK)
            s = dump_examples(o, d, dump, &n);
        rb_split_destroy(d);
        if (s != RB_OK)
            return cli_fail(self->name, s);
        printf("%s: %" PRId64 " %s examples of %s as the model receives them%s\n", dump, n,
               rb_split_which_str(which), spec, cli_opt_bool(o, "augment") ? " in training (augmented)" : "");
        return RB_EXIT_OK;
    }
    for (int w = 0; w < 2; w++) {
        rb_split *d = NULL;
        if (split != NULL && (rb_split_which)w != which)
            continue;
        s = open_data_split(o, (rb_split_which)w, &d);
        if (s != RB_OK && split == NULL && w == 1 && rb_last_status() == RB_ERR_NOT_FOUND) {
            printf("%s test: none (%s)\n", spec, rb_last_error());
            continue;
        }
        if (s != RB_OK)
            return cli_fail(self->name, s);
        print_split(spec, (rb_split_which)w, d);
        rb_split_destroy(d);
    }
    return RB_EXIT_OK;
}

const cli_command cli_data_command = {
    .name = "data",
    .summary = "what a dataset spec holds, and its examples as the model receives them",
    .usage = "--data SPEC [--split train|test] [--classes C] [--per-class K] [--image-size S] [--channels C] "
             "[--transform none|paper [--cache DIR]] [--export DIR [--format png|jpeg] [--quality Q]] "
             "[--dump OUT.npy [--count N] [--augment [--epoch E] [--seed S]]]",
    .description =
        "Without --dump, prints each split's size, classes with their counts and image shapes\n"
        "(as stored and as they come out). With --dump, writes the first --count examples of the\n"
        "split (train unless --split test) as the model receives them, before its normalization:\n"
        "float32 N x C x H x W in [0, 1] to OUT.npy and their labels (int64) to OUT.labels.npy,\n"
        "with --augment the training augmentation of --epoch and --seed.",
    .options = data_options,
    .run = run_data,
};
