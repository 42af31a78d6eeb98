/* Mutation fuzzing of the parsers that read untrusted bytes: checkpoints
 * (.rbt), safetensors, .npy, IDX and CIFAR datasets, PNG and JPEG images
 * (as pictures and as masks), VOC id and class lists, COCO annotation and
 * results files (then evaluated), grid files, and the small text parsers
 * (dataset specs, schedules, epsilons). From one valid seed each,
 * deterministic mutants (bit flips, bytes set to boundary values, a span
 * truncated, duplicated, deleted or overwritten with random bytes, several
 * at once) go through the parser. Each must either parse, and then be
 * readable to the end, or fail with a message of one non-empty line; it
 * must never crash or touch memory outside its input (every mutant lives
 * in an allocation of exactly its size, so the sanitizer build catches
 * over-reads).
 *
 * RB_FUZZ_ITERATIONS sets the mutants per target (default 5000, a few
 * seconds in all); RB_FUZZ_SEED another sequence. A failing mutant is
 * written to the test's temporary folder and its path printed. */
#include "config.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include <robusta/robusta.h>

#include "data/image.h"
#include "data/image_list.h"
#include "data/image_store.h"
#include "data/voc.h"
#include "testimage.h"
#include "testutil.h"

static char dir[512];
static long iterations = 5000;
static uint64_t seed = 1;

/* ------------------------------------------------------------ mutations */

static uint64_t next(uint64_t *state)
{
    /* splitmix64: deterministic, and good enough to pick offsets */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A mutant of `seed_bytes` in a new allocation of exactly *size bytes (at
 * least 1, so that malloc(0) never hides a read). */
static unsigned char *mutate(const unsigned char *seed_bytes, size_t seed_size, uint64_t *rng, size_t *size)
{
    static const unsigned char boundary[] = {0x00, 0x01, 0x7f, 0x80, 0xff, '"', '{', '}', ',', ':', '[', ']',
                                             '\\', '\n', '=', '0', '9', '-', 'e'};
    size_t cap = seed_size * 2 + 64, n = seed_size;
    unsigned char *work = malloc(cap), *out;
    int rounds = 1 + (int)(next(rng) % 4);
    memcpy(work, seed_bytes, seed_size);
    for (int k = 0; k < rounds; k++) {
        size_t at = n ? (size_t)(next(rng) % n) : 0, span = 1 + (size_t)(next(rng) % 16);
        switch (next(rng) % 7) {
        case 0: /* bit flip */
            if (n)
                work[at] ^= (unsigned char)(1u << (next(rng) % 8));
            break;
        case 1: /* a boundary value */
            if (n)
                work[at] = boundary[next(rng) % sizeof boundary];
            break;
        case 2: /* truncation */
            n = at;
            break;
        case 3: /* delete a span */
            if (at + span <= n) {
                memmove(work + at, work + at + span, n - at - span);
                n -= span;
            }
            break;
        case 4: /* duplicate a span */
            if (at + span <= n && n + span <= cap) {
                memmove(work + at + span, work + at, n - at);
                n += span;
            }
            break;
        case 5: /* random bytes over a span */
            for (size_t i = at; i < at + span && i < n; i++)
                work[i] = (unsigned char)next(rng);
            break;
        default: /* a little-endian integer field set to an extreme */
            if (at + 8 <= n) {
                uint64_t v = next(rng) % 2 ? UINT64_MAX >> (next(rng) % 64) : next(rng) % 4096;
                memcpy(work + at, &v, (size_t)(1 + next(rng) % 8));
            }
            break;
        }
    }
    out = malloc(n ? n : 1);
    memcpy(out, work, n);
    free(work);
    *size = n;
    return out;
}

/* A failure's message: one line, not empty. */
static void assert_one_line(const char *target, long i, const unsigned char *bytes, size_t size)
{
    const char *m = rb_last_error();
    if (m != NULL && m[0] != '\0' && strchr(m, '\n') == NULL)
        return;
    {
        char path[600];
        FILE *f;
        snprintf(path, sizeof path, "%s/%s-%ld.bin", dir, target, i);
        f = fopen(path, "wb");
        if (f != NULL) {
            fwrite(bytes, 1, size, f);
            fclose(f);
        }
        ck_abort_msg("%s mutant %ld (kept as %s): error message '%s' is not one non-empty line", target, i, path,
                     m ? m : "(null)");
    }
}

/* ------------------------------------------------------------ seeds */

static unsigned char *file_bytes(const char *name, size_t *size)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return read_whole_file(path, size);
}

static unsigned char *checkpoint_seed(size_t *size)
{
    rb_checkpoint *c;
    char path[600];
    static const float w[6] = {1.5f, -2.0f, 0.25f, 3.0f, -0.5f, 8.0f};
    static const int64_t labels[3] = {0, 7, 2};
    ck_assert_int_eq(rb_checkpoint_create(&c), RB_OK);
    ck_assert_int_eq(rb_checkpoint_set_metadata(c, "{\"arch\": \"resnet\", \"classes\": 10, \"x\": [1, 2.5, null]}"), RB_OK);
    ck_assert_int_eq(rb_checkpoint_add(c, "conv1.weight", RB_DTYPE_F32, 2, (const int64_t[]){2, 3}, w), RB_OK);
    ck_assert_int_eq(rb_checkpoint_add(c, "labels", RB_DTYPE_I64, 1, (const int64_t[]){3}, labels), RB_OK);
    snprintf(path, sizeof path, "%s/seed.rbt", dir);
    ck_assert_int_eq(rb_checkpoint_save(c, path, 3), RB_OK);
    rb_checkpoint_destroy(c);
    return file_bytes("seed.rbt", size);
}

static unsigned char *safetensors_seed(size_t *size)
{
    char path[600];
    static const float w[4] = {1, 2, 3, 4};
    static const int64_t n[2] = {5, -6};
    static const int64_t shape_w[2] = {2, 2}, shape_n[1] = {2};
    static const char *const keys[1] = {"format"}, *const values[1] = {"pt"};
    rb_safetensors_entry e[2] = {{.name = "fc.weight", .dtype = RB_DTYPE_F32, .ndim = 2, .shape = shape_w, .data = w},
                                 {.name = "bn.num_batches_tracked", .dtype = RB_DTYPE_I64, .ndim = 1, .shape = shape_n, .data = n}};
    snprintf(path, sizeof path, "%s/seed.safetensors", dir);
    ck_assert_int_eq(rb_safetensors_save(path, e, 2, keys, values, 1), RB_OK);
    return file_bytes("seed.safetensors", size);
}

static unsigned char *npy_seed(size_t *size)
{
    char path[600];
    static const float x[2 * 3 * 2] = {0, 0.5f, 1, 0.25f, 0.75f, 0.125f, 1, 0, 0.5f, 0.5f, 0.5f, 0.5f};
    snprintf(path, sizeof path, "%s/seed.npy", dir);
    ck_assert_int_eq(rb_npy_save(path, RB_DTYPE_F32, 3, (const int64_t[]){2, 3, 2}, x), RB_OK);
    return file_bytes("seed.npy", size);
}

static const char grid_seed[] = "[grid]\nname = fuzz\nthreads = 2\n"
                                "[arch r18]\narch = resnet18\nstem = cifar\nwidth = 0.25\n"
                                "[source]\ndata = fashion-mnist\nclasses = 0-4\nper-class = 100\nepochs = 2\n"
                                "attack = pgd-l2\neps = 0, 0.25, 8/255\nsteps = 3\nseeds = 1,2\n"
                                "[target t]\ndata = cifar10\nclasses = 5-9\ntask = classify\nhidden = 16\n"
                                "[target s]\ndata = voc-seg:scenes\ntask = segment\nhead = fcn\n"
                                "[transfer]\nmodes = fixed, full\nseeds = 0\nepochs = 3\nlr-fixed = 0.05\n"
                                "eval-attack = pgd-l2 steps=10 eps=1/2\neval-attack-per-class = 5\n";

/* ------------------------------------------------------------ targets */

typedef void (*target_fn)(const unsigned char *bytes, size_t size, long i);

/* Mutants a target accepted: printed, so that a run shows the fuzzing gets
 * past the first checks (a target that refuses everything tests little). */
static long accepted;

static void fuzz_checkpoint(const unsigned char *bytes, size_t size, long i)
{
    rb_checkpoint *c = NULL;
    if (rb_checkpoint_parse(&c, bytes, size, "mutant.rbt", 0) != RB_OK) {
        assert_one_line("rbt", i, bytes, size);
        return;
    }
    accepted++;
    /* accepted: every tensor readable to its last byte */
    for (size_t k = 0; k < rb_checkpoint_count(c); k++) {
        rb_checkpoint_tensor t;
        unsigned sum = 0;
        ck_assert_int_eq(rb_checkpoint_get(c, k, &t), RB_OK);
        for (size_t b = 0; b < t.nbytes; b++)
            sum += ((const unsigned char *)t.data)[b];
        (void)sum;
    }
    (void)rb_checkpoint_metadata(c);
    rb_checkpoint_destroy(c);
}

static void fuzz_safetensors(const unsigned char *bytes, size_t size, long i)
{
    rb_safetensors *st = NULL;
    if (rb_safetensors_parse(&st, bytes, size, "mutant.safetensors") != RB_OK) {
        assert_one_line("safetensors", i, bytes, size);
        return;
    }
    accepted++;
    for (size_t k = 0; k < rb_safetensors_count(st); k++) {
        rb_safetensors_tensor t;
        float *f;
        ck_assert_int_eq(rb_safetensors_get(st, k, &t), RB_OK);
        ck_assert((const unsigned char *)t.data >= bytes && (const unsigned char *)t.data + t.nbytes <= bytes + size);
        f = malloc((size_t)(t.numel > 0 ? t.numel : 1) * sizeof *f);
        if (rb_safetensors_to_f32(&t, f) != RB_OK)
            assert_one_line("safetensors-to-f32", i, bytes, size);
        free(f);
    }
    (void)rb_safetensors_metadata(st, "format");
    rb_safetensors_destroy(st);
}

static void fuzz_npy(const unsigned char *bytes, size_t size, long i)
{
    rb_npy *a = NULL;
    int64_t numel = 1;
    if (rb_npy_parse(&a, bytes, size, "mutant.npy") != RB_OK) {
        assert_one_line("npy", i, bytes, size);
        return;
    }
    accepted++;
    for (int d = 0; d < a->ndim; d++)
        numel *= a->shape[d];
    ck_assert_int_eq(numel, a->numel);
    ck_assert_uint_le(a->nbytes, size);
    if (a->nbytes > 0) /* the copy is readable to its end */
        ck_assert_uint_le(((const unsigned char *)a->data)[a->nbytes - 1], 255);
    rb_npy_destroy(a);
}

static void fuzz_grid(const unsigned char *bytes, size_t size, long i)
{
    rb_grid_spec *g = NULL;
    if (rb_grid_spec_parse((const char *)bytes, size, "mutant.ini", &g) != RB_OK) {
        assert_one_line("grid", i, bytes, size);
        return;
    }
    accepted++;
    rb_grid_spec_destroy(g);
}

/* results.csv: accepted rows must go through the table and the summary
 * (which refuse some, in one line). */
static const char results_seed[] =
    "arch,eps,source_eps,source_seed,source_test_acc,source_robust_acc,target,mode,transfer_seed,target_acc,"
    "seconds,metric,target_robust_acc,robust_attack\n"
    "r18,0,0,0,0.788,0.14,fm5-9,fixed,0,0.52,4.1,accuracy,0.02,pgd-l2 steps=5 eps=1.0\n"
    "r18,1.0,1,0,0.70,0.52,fm5-9,fixed,0,0.55,4.0,accuracy,0.31,pgd-l2 steps=5 eps=1.0\n"
    "r18,1.0,1,1,0.71,0.50,scenes,full,0,0.27,9.5,miou,,\n";

static void fuzz_results(const unsigned char *bytes, size_t size, long i)
{
    rb_grid_result *rows = NULL;
    size_t n = 0;
    char *text = NULL;
    if (rb_grid_parse_csv((const char *)bytes, size, "mutant.csv", &rows, &n) != RB_OK) {
        assert_one_line("results_csv", i, bytes, size);
        return;
    }
    accepted++;
    if (rb_grid_markdown(rows, n, &text) != RB_OK)
        assert_one_line("results_csv", i, bytes, size);
    free(text);
    text = NULL;
    if (rb_grid_summary(rows, n, &text) != RB_OK)
        assert_one_line("results_csv", i, bytes, size);
    free(text);
    free(rows);
}

/* The checkpoint's JSON header, mutated behind a valid frame: its length
 * and CRC are recomputed, so mutants reach the JSON and index checks that
 * the CRC otherwise guards. */
static const unsigned char *rbt_data;
static size_t rbt_data_size;

static void fuzz_checkpoint_header(const unsigned char *header, size_t size, long i)
{
    size_t total = 32 + size + rbt_data_size;
    unsigned char *file = malloc(total);
    uint64_t h = size;
    uint32_t crc = (uint32_t)crc32(0L, header, (uInt)size), zero = 0, version = RB_CHECKPOINT_VERSION;
    memcpy(file, RB_CHECKPOINT_MAGIC, 8);
    memcpy(file + 8, &version, 4);
    memcpy(file + 12, &zero, 4);
    memcpy(file + 16, &h, 8);
    memcpy(file + 24, &crc, 4);
    memcpy(file + 28, &zero, 4);
    memcpy(file + 32, header, size);
    memcpy(file + 32 + size, rbt_data, rbt_data_size);
    fuzz_checkpoint(file, total, i);
    free(file);
}

/* Dataset files: IDX images (raw and gzip'd) beside valid labels, IDX
 * labels beside valid images, CIFAR-10 and CIFAR-100 record files. An
 * accepted split is read to its last image and label. */
static const unsigned char *idx_images, *idx_labels;
static size_t idx_images_size, idx_labels_size;

static void read_split(rb_split *split)
{
    const unsigned char *images = rb_split_images(split);
    const int64_t *labels = rb_split_labels(split);
    int64_t n = rb_split_count(split);
    size_t bytes = (size_t)n * rb_split_example_size(split);
    unsigned sum = 0;
    ck_assert_int_gt(n, 0);
    for (size_t b = 0; b < bytes; b++)
        sum += images[b];
    for (int64_t k = 0; k < n; k++)
        ck_assert(labels[k] >= 0 && labels[k] < rb_split_classes(split));
    (void)sum;
    rb_split_destroy(split);
}

static void fuzz_idx_images(const unsigned char *bytes, size_t size, long i)
{
    rb_split *split = NULL;
    if (rb_split_from_idx(&split, RB_DATASET_FASHION_MNIST, bytes, size, "images.idx", idx_labels, idx_labels_size,
                          "labels.idx") != RB_OK) {
        assert_one_line("idx-images", i, bytes, size);
        return;
    }
    accepted++;
    read_split(split);
}

static void fuzz_idx_labels(const unsigned char *bytes, size_t size, long i)
{
    rb_split *split = NULL;
    if (rb_split_from_idx(&split, RB_DATASET_MNIST, idx_images, idx_images_size, "images.idx", bytes, size,
                          "labels.idx") != RB_OK) {
        assert_one_line("idx-labels", i, bytes, size);
        return;
    }
    accepted++;
    read_split(split);
}

static rb_data_source cifar_kind;

static void fuzz_cifar(const unsigned char *bytes, size_t size, long i)
{
    rb_split *split = NULL;
    const void *files[2] = {bytes, bytes};
    const size_t sizes[2] = {size, size};
    const char *const whats[2] = {"data_batch_1.bin", "data_batch_2.bin"};
    if (rb_split_from_cifar(&split, cifar_kind, files, sizes, whats, 2) != RB_OK) {
        assert_one_line("cifar", i, bytes, size);
        return;
    }
    accepted++;
    read_split(split);
}

/* Text parsers take C strings: the mutant gets a terminator. */
static void fuzz_texts(const unsigned char *bytes, size_t size, long i)
{
    char *text = malloc(size + 1);
    rb_dataset_spec *spec = malloc(sizeof *spec);
    rb_schedule schedule;
    double eps;
    memcpy(text, bytes, size);
    text[size] = '\0';
    bool any = false;
    if (rb_dataset_spec_parse(spec, text) != RB_OK)
        assert_one_line("dataset-spec", i, bytes, size);
    else
        any = true;
    if (rb_schedule_parse(text, 0.1, 30, &schedule) != RB_OK) {
        assert_one_line("schedule", i, bytes, size);
    } else {
        ck_assert(isfinite(rb_schedule_lr(&schedule, 7.5)));
        any = true;
    }
    if (rb_grid_parse_eps(text, &eps) != RB_OK) {
        assert_one_line("eps", i, bytes, size);
    } else {
        ck_assert(isfinite(eps) && eps >= 0);
        any = true;
    }
    accepted += any;
    free(spec);
    free(text);
}

/* Images: PNG and JPEG bytes through the decoder in both modes. An
 * accepted image is read to its last byte, within the documented bounds. */
static void read_image(const rb_image *img, int channels)
{
    const size_t n = (size_t)img->height * (size_t)img->width * (size_t)channels;
    unsigned sum = 0;
    ck_assert_int_eq(img->channels, channels);
    ck_assert(img->height >= 1 && img->width >= 1 && img->height * img->width <= RB_IMAGE_MAX_PIXELS);
    ck_assert(img->palette_size >= 0 && img->palette_size <= 256);
    for (size_t k = 0; k < n; k++)
        sum += img->pixels[k];
    (void)sum;
}

/* The header reader agrees with the decoder: it accepts what decodes, with
 * the same size, and refuses in one line. */
static void probe_agrees(const rb_image *img, bool decoded, const unsigned char *bytes, size_t size, long i)
{
    int64_t h = -1, w = -1;
    if (rb_image_probe(bytes, size, RB_IMAGE_RGB, "mutant.png", &h, &w) != RB_OK) {
        assert_one_line("image-probe", i, bytes, size);
        ck_assert(!decoded && h == 0 && w == 0);
    } else {
        ck_assert(h >= 1 && w >= 1 && h * w <= RB_IMAGE_MAX_PIXELS);
        ck_assert(!decoded || (h == img->height && w == img->width));
    }
}

static void fuzz_image(const unsigned char *bytes, size_t size, long i)
{
    rb_image img;
    bool any = false;
    if (rb_image_decode(bytes, size, RB_IMAGE_RGB, "mutant.png", &img) != RB_OK) {
        assert_one_line("image-rgb", i, bytes, size);
        ck_assert_ptr_null(img.pixels);
        probe_agrees(&img, false, bytes, size, i);
    } else {
        probe_agrees(&img, true, bytes, size, i);
        read_image(&img, 3);
        rb_image_free(&img);
        any = true;
    }
    if (rb_image_decode(bytes, size, RB_IMAGE_INDICES, "mutant.png", &img) != RB_OK) {
        assert_one_line("image-indices", i, bytes, size);
        ck_assert_ptr_null(img.pixels);
    } else {
        read_image(&img, 1);
        rb_image_free(&img);
        any = true;
    }
    accepted += any;
}

/* The mutant with the CRC of every whole chunk recomputed, so that
 * mutations reach libpng's checks past the CRCs. */
static void fuzz_png_chunks(const unsigned char *bytes, size_t size, long i)
{
    unsigned char *b = malloc(size ? size : 1);
    size_t pos = 8;
    memcpy(b, bytes, size);
    while (size >= 12 && pos <= size - 12) {
        const uint32_t len =
            (uint32_t)b[pos] << 24 | (uint32_t)b[pos + 1] << 16 | (uint32_t)b[pos + 2] << 8 | b[pos + 3];
        uLong crc;
        if (len > size - pos - 12)
            break;
        crc = crc32(crc32(0L, Z_NULL, 0), b + pos + 4, (uInt)len + 4);
        b[pos + 8 + len] = (unsigned char)(crc >> 24);
        b[pos + 9 + len] = (unsigned char)(crc >> 16);
        b[pos + 10 + len] = (unsigned char)(crc >> 8);
        b[pos + 11 + len] = (unsigned char)crc;
        pos += 12 + (size_t)len;
    }
    fuzz_image(b, size, i);
    free(b);
}

static rb_voc_list_kind list_kind;

static void fuzz_voc_list(const unsigned char *bytes, size_t size, long i)
{
    rb_voc_list l;
    if (rb_voc_parse_list(bytes, size, list_kind, "mutant.txt", &l) != RB_OK) {
        assert_one_line(list_kind == RB_VOC_IDS ? "voc-ids" : list_kind == RB_VOC_CLASSES ? "voc-classes" : "class-names",
                        i, bytes, size);
        ck_assert_int_eq(l.count, 0);
        return;
    }
    accepted++;
    ck_assert_int_ge(l.count, 1);
    ck_assert(list_kind != RB_VOC_CLASSES || l.count <= RB_VOC_MAX_CLASSES);
    for (int64_t k = 0; k < l.count; k++) {
        const size_t n = strlen(l.items[k]);
        ck_assert(n >= 1 && n <= RB_VOC_MAX_NAME);
        ck_assert(list_kind != RB_VOC_IDS || strchr(l.items[k], '/') == NULL);
        ck_assert(l.lines[k] >= 1 && (k == 0 || l.lines[k] > l.lines[k - 1]));
    }
    rb_voc_list_free(&l);
}

/* COCO annotation files: an accepted one is then evaluated against its own
 * boxes as detections (the evaluator meets odd ground truth too). */
static void check_coco_stats(const double stats[RB_COCO_STATS])
{
    for (int k = 0; k < RB_COCO_STATS; k++)
        ck_assert(stats[k] == -1 || (stats[k] >= 0 && stats[k] <= 1));
}

static void fuzz_coco(const unsigned char *bytes, size_t size, long i)
{
    rb_coco *c = NULL;
    rb_coco_detection *d;
    double stats[RB_COCO_STATS];
    if (rb_coco_parse((const char *)bytes, size, "mutant.json", &c) != RB_OK) {
        assert_one_line("coco", i, bytes, size);
        ck_assert_ptr_null(c);
        return;
    }
    accepted++;
    d = malloc((c->n_annotations ? c->n_annotations : 1) * sizeof *d);
    ck_assert_ptr_nonnull(d);
    for (size_t k = 0; k < c->n_annotations; k++) {
        const rb_coco_annotation *a = &c->annotations[k];
        ck_assert(a->bbox[2] >= 0 && a->bbox[3] >= 0 && a->area >= 0 && (a->iscrowd == 0 || a->iscrowd == 1));
        d[k] = (rb_coco_detection){.image_id = a->image_id, .category_id = a->category_id,
                                   .bbox = {a->bbox[0], a->bbox[1], a->bbox[2], a->bbox[3]},
                                   .score = 1.0 / (double)(k + 1)};
    }
    ck_assert_int_eq(rb_coco_evaluate(c, d, c->n_annotations, stats, NULL), RB_OK);
    check_coco_stats(stats);
    free(d);
    rb_coco_destroy(c);
}

static rb_coco *coco_results_gt;

static void fuzz_coco_results(const unsigned char *bytes, size_t size, long i)
{
    rb_coco_detection *d = NULL;
    double stats[RB_COCO_STATS];
    size_t n = 0;
    if (rb_coco_parse_detections(coco_results_gt, (const char *)bytes, size, "mutant.json", &d, &n) != RB_OK) {
        assert_one_line("coco-results", i, bytes, size);
        ck_assert(d == NULL && n == 0);
        return;
    }
    accepted++;
    for (size_t k = 0; k < n; k++)
        ck_assert(isfinite(d[k].score) && d[k].bbox[2] >= 0 && d[k].bbox[3] >= 0);
    ck_assert_int_eq(rb_coco_evaluate(coco_results_gt, d, n, stats, NULL), RB_OK);
    check_coco_stats(stats);
    free(d);
}

static void run_target(const char *name, target_fn fn, const unsigned char *seed_bytes, size_t seed_size)
{
    uint64_t rng = seed * 1000003u + (uint64_t)strlen(name) * 7919u + (uint64_t)(unsigned char)name[0];
    fn(seed_bytes, seed_size, -1); /* the seed itself parses */
    accepted = 0;
    for (long i = 0; i < iterations; i++) {
        size_t size;
        unsigned char *m = mutate(seed_bytes, seed_size, &rng, &size);
        fn(m, size, i);
        free(m);
    }
    printf("%s: %ld mutants, %ld accepted\n", name, iterations, accepted);
}

START_TEST(checkpoints_survive_mutation)
{
    size_t size;
    unsigned char *s = checkpoint_seed(&size);
    rb_checkpoint *c;
    ck_assert_int_eq(rb_checkpoint_parse(&c, s, size, "seed", 0), RB_OK);
    ck_assert_uint_eq(rb_checkpoint_count(c), 2);
    rb_checkpoint_destroy(c);
    run_target("rbt", fuzz_checkpoint, s, size);
    free(s);
}
END_TEST

START_TEST(checkpoint_headers_survive_mutation)
{
    size_t size;
    uint64_t h;
    unsigned char *s = checkpoint_seed(&size);
    ck_assert_uint_gt(size, 32);
    memcpy(&h, s + 16, 8); /* little-endian hosts only, as the format */
    ck_assert_uint_le(32 + h, size);
    rbt_data = s + 32 + h;
    rbt_data_size = size - 32 - h;
    run_target("rbt-header", fuzz_checkpoint_header, s + 32, (size_t)h);
    free(s);
}
END_TEST

/* Big-endian u32, as IDX headers are. */
static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* gzip of `bytes` (zlib's deflate with a gzip wrapper), exactly sized. */
static unsigned char *gzip_bytes(const unsigned char *bytes, size_t size, size_t *out_size)
{
    z_stream z;
    unsigned char *out = malloc(size + 256);
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)bytes;
    z.avail_in = (uInt)size;
    z.next_out = out;
    z.avail_out = (uInt)(size + 256);
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_size = z.total_out;
    deflateEnd(&z);
    return out;
}

START_TEST(dataset_files_survive_mutation)
{
    unsigned char images[16 + 3 * 4 * 5], labels[8 + 3], *gz;
    unsigned char cifar[2 * (2 + 3072)];
    size_t gz_size;
    put_be32(images, 0x00000803u);
    put_be32(images + 4, 3);
    put_be32(images + 8, 4);
    put_be32(images + 12, 5);
    for (size_t k = 16; k < sizeof images; k++)
        images[k] = (unsigned char)(k * 37);
    put_be32(labels, 0x00000801u);
    put_be32(labels + 4, 3);
    labels[8] = 9;
    labels[9] = 0;
    labels[10] = 4;
    idx_images = images;
    idx_images_size = sizeof images;
    idx_labels = labels;
    idx_labels_size = sizeof labels;
    run_target("idx-images", fuzz_idx_images, images, sizeof images);
    run_target("idx-labels", fuzz_idx_labels, labels, sizeof labels);
    gz = gzip_bytes(images, sizeof images, &gz_size);
    run_target("idx-images.gz", fuzz_idx_images, gz, gz_size);
    free(gz);
    /* CIFAR-100 records (coarse, fine, pixels); CIFAR-10 reads the same
     * bytes as 1-byte-label records of another size */
    for (size_t r = 0; r < 2; r++) {
        cifar[r * 3074] = (unsigned char)(3 + r);
        cifar[r * 3074 + 1] = (unsigned char)(42 + r);
        for (size_t k = 0; k < 3072; k++)
            cifar[r * 3074 + 2 + k] = (unsigned char)(k ^ r);
    }
    cifar_kind = RB_DATASET_CIFAR100;
    run_target("cifar100", fuzz_cifar, cifar, sizeof cifar);
    cifar_kind = RB_DATASET_CIFAR10;
    cifar[0] = 7;
    run_target("cifar10", fuzz_cifar, cifar, 3073);
}
END_TEST

START_TEST(safetensors_survive_mutation)
{
    size_t size;
    unsigned char *s = safetensors_seed(&size);
    run_target("safetensors", fuzz_safetensors, s, size);
    free(s);
}
END_TEST

START_TEST(npy_survives_mutation)
{
    size_t size;
    unsigned char *s = npy_seed(&size);
    run_target("npy", fuzz_npy, s, size);
    free(s);
}
END_TEST

START_TEST(grid_files_survive_mutation)
{
    rb_grid_spec *g;
    ck_assert_int_eq(rb_grid_spec_parse(grid_seed, strlen(grid_seed), "seed.ini", &g), RB_OK);
    rb_grid_spec_destroy(g);
    run_target("grid", fuzz_grid, (const unsigned char *)grid_seed, strlen(grid_seed));
}
END_TEST

START_TEST(results_files_survive_mutation)
{
    rb_grid_result *rows;
    size_t n;
    ck_assert_int_eq(rb_grid_parse_csv(results_seed, strlen(results_seed), "seed.csv", &rows, &n), RB_OK);
    ck_assert_uint_eq(n, 3);
    free(rows);
    run_target("results_csv", fuzz_results, (const unsigned char *)results_seed, strlen(results_seed));
}
END_TEST

START_TEST(text_options_survive_mutation)
{
    static const char *const seeds[] = {"npy:/data/x.npy,/data/y.npy;/data/tx.npy,/data/ty.npy",
                                        "cosine+warmup:5", "multistep:30,60:0.1", "8/255"};
    for (size_t k = 0; k < sizeof seeds / sizeof seeds[0]; k++)
        run_target(seeds[k], fuzz_texts, (const unsigned char *)seeds[k], strlen(seeds[k]));
}
END_TEST

/* A PNG written by rb_image_write_png, as bytes. */
static unsigned char *png_seed(const char *name, const uint8_t *px, int h, int w, int channels,
                               const uint8_t (*palette)[3], int palette_size, size_t *size)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ck_assert_int_eq(rb_image_write_png(path, px, h, w, channels, palette, palette_size), RB_OK);
    return file_bytes(name, size);
}

START_TEST(images_survive_mutation)
{
    enum { H = 6, W = 10 };
    static const uint8_t pal[4][3] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    uint8_t px[H * W * 3];
    size_t size;
    unsigned char *b;
    test_bytes t;
    for (int k = 0; k < H * W * 3; k++)
        px[k] = (uint8_t)((k * 13) % 4);
    b = png_seed("gray.png", px, H, W, 1, NULL, 0, &size);
    run_target("png-gray", fuzz_image, b, size);
    run_target("png-gray-crc", fuzz_png_chunks, b, size);
    free(b);
    b = png_seed("palette.png", px, H, W, 1, pal, 4, &size);
    run_target("png-palette", fuzz_image, b, size);
    run_target("png-palette-crc", fuzz_png_chunks, b, size);
    free(b);
    for (int k = 0; k < H * W * 3; k++)
        px[k] = (uint8_t)(k * 7);
    b = png_seed("rgb.png", px, H, W, 3, NULL, 0, &size);
    run_target("png-rgb-crc", fuzz_png_chunks, b, size);
    free(b);
    /* 16-bit gray+alpha, interlaced: libpng's other paths */
    {
        uint8_t ga[H * W * 4];
        for (int k = 0; k < H * W * 4; k++)
            ga[k] = (uint8_t)(k * 29);
        t = test_png(W, H, 16, PNG_COLOR_TYPE_GRAY_ALPHA, ga, NULL, 0, NULL, 0, NULL, 1);
        run_target("png-ga16-crc", fuzz_png_chunks, t.data, t.size);
        free(t.data);
    }
    t = test_jpeg(px, W, H, 3, 90);
    run_target("jpeg", fuzz_image, t.data, t.size);
    free(t.data);
}
END_TEST

static void fuzz_image_list(const unsigned char *bytes, size_t size, long i)
{
    rb_image_list l;
    if (rb_image_list_parse(bytes, size, "mutant.txt", &l) != RB_OK) {
        assert_one_line("image-list", i, bytes, size);
        ck_assert(l.count == 0 && l.paths == NULL);
        return;
    }
    accepted++;
    ck_assert_uint_ge(l.count, 1);
    for (size_t k = 0; k < l.count; k++) {
        const size_t n = strlen(l.paths[k]);
        ck_assert(n >= 1 && n <= RB_IMAGE_LIST_MAX_PATH && l.paths[k][0] != '/');
        ck_assert(l.labels[k] >= 0 && l.labels[k] < RB_IMAGE_LIST_MAX_CLASSES);
        ck_assert(l.lines[k] >= 1 && (k == 0 || l.lines[k] > l.lines[k - 1]));
    }
    rb_image_list_free(&l);
}

START_TEST(image_lists_survive_mutation)
{
    static const char list[] = "img/a.png 0\nimg/sub dir/b.jpg 12\r\n\n  c.png\t3 \n..x/y.. 2\n";
    run_target("image-list", fuzz_image_list, (const unsigned char *)list, sizeof list - 1);
}
END_TEST

/* Image caches of the paper's transform: whether a file found in --cache's
 * folder is trusted. Checked against the identity and count its header
 * claims, so mutations reach the table; an accepted file holds every
 * image inside it, a refused one gives one reason. */
static void fuzz_image_cache(const unsigned char *bytes, size_t size, long i)
{
    rb_image_store_header h;
    uint64_t count = 0, identity = 0, end;
    char why[160] = "";
    memset(&h, 0, sizeof h);
    if (size >= sizeof h) {
        memcpy(&h, bytes, sizeof h);
        count = h.count < (UINT64_C(1) << 20) ? h.count : 0;
        identity = h.identity;
    }
    if (!rb_image_store_check(bytes, size, identity, count, why, sizeof why)) {
        ck_assert_msg(i >= 0, "the seed was refused: %s", why);
        ck_assert(why[0] != '\0' && strchr(why, '\n') == NULL);
        return;
    }
    accepted++;
    end = h.pixels_offset;
    for (uint64_t k = 0; k < count; k++) {
        uint32_t hw[2];
        uint64_t offset;
        memcpy(hw, bytes + h.table_offset + 16 * k, 8);
        memcpy(&offset, bytes + h.table_offset + 16 * k + 8, 8);
        ck_assert(offset == end && hw[0] >= 1 && hw[1] >= 1);
        end += (uint64_t)hw[0] * hw[1] * 3;
        ck_assert_uint_le(end, size);
    }
}

START_TEST(image_caches_survive_mutation)
{
    char folder[512], path[700], spec[600];
    rb_split *s = NULL;
    rb_split_cache_state st;
    float x[3 * 4 * 4];
    size_t size;
    unsigned char *b;
    make_temp_dir(folder, sizeof folder);
    snprintf(path, sizeof path, "%s/a", folder);
    mkdir(path, 0755);
    for (int i = 0; i < 4; i++) {
        unsigned char px[3 * 5 * 5];
        test_bytes t;
        for (int k = 0; k < (int)sizeof px; k++)
            px[k] = (unsigned char)(k * 41 + i);
        t = test_png(1 + i, 5 - i, 8, PNG_COLOR_TYPE_RGB, px, NULL, 0, NULL, 0, NULL, 0);
        snprintf(path, sizeof path, "%s/a/%d.png", folder, i);
        test_write_bytes(path, t.data, t.size);
        free(t.data);
    }
    snprintf(spec, sizeof spec, "folder:%s", folder);
    ck_assert_msg(rb_split_open(&s, spec, RB_SPLIT_TRAIN,
                                &(rb_split_options){.transform = RB_TRANSFORM_PAPER, .size = 4, .cache_dir = folder}) ==
                      RB_OK,
                  "%s", rb_last_error());
    for (int64_t i = 0; i < rb_split_count(s); i++)
        ck_assert_int_eq(rb_split_example(s, i, NULL, 0, 0, x), RB_OK);
    rb_split_cache_state_get(s, &st);
    b = read_whole_file(st.path, &size);
    rb_split_destroy(s);
    run_target("image-cache", fuzz_image_cache, b, size);
    free(b);
    snprintf(path, sizeof path, "rm -rf '%s'", folder);
    ck_assert_int_eq(system(path), 0);
}
END_TEST

START_TEST(voc_lists_survive_mutation)
{
    static const char ids[] = "2007_000032\n2007_000039\n\n  2008_000001 \r\n2008_000002";
    static const char classes[] = "background\naeroplane\npotted plant\nv\xc3\xa9lo\n\n";
    list_kind = RB_VOC_IDS;
    run_target("voc-ids", fuzz_voc_list, (const unsigned char *)ids, sizeof ids - 1);
    list_kind = RB_VOC_CLASSES;
    run_target("voc-classes", fuzz_voc_list, (const unsigned char *)classes, sizeof classes - 1);
    list_kind = RB_CLASS_NAMES; /* a list: set's classes.txt */
    run_target("class-names", fuzz_voc_list, (const unsigned char *)classes, sizeof classes - 1);
}
END_TEST

START_TEST(coco_files_survive_mutation)
{
    static const char gt[] =
        "{\"info\": {\"year\": 2017}, \"images\": [{\"id\": 1, \"file_name\": \"a.jpg\", \"width\": 64}, {\"id\": 2}],"
        " \"annotations\": [{\"id\": 1, \"image_id\": 1, \"category_id\": 3, \"bbox\": [1, 2.5, 30, 40], \"area\": 1100,"
        " \"iscrowd\": 0, \"segmentation\": [[1, 2, 3, 4]]}, {\"id\": 2, \"image_id\": 2, \"category_id\": 3, \"bbox\":"
        " [0, 0, 96, 96], \"area\": 9216, \"iscrowd\": 1}], \"categories\": [{\"id\": 3, \"name\": \"x\"}, {\"id\": 7}]}";
    static const char dt[] = "[{\"image_id\": 1, \"category_id\": 3, \"bbox\": [0, 0, 10, 10], \"score\": 0.9},\n"
                             " {\"image_id\": 2, \"category_id\": 7, \"bbox\": [1, 1, 95, 96], \"score\": 0.9},\n"
                             " {\"image_id\": 1, \"category_id\": 3, \"bbox\": [1, 2.5, 30, 40], \"score\": 1e-3}]";
    run_target("coco", fuzz_coco, (const unsigned char *)gt, sizeof gt - 1);
    ck_assert_int_eq(rb_coco_parse(gt, sizeof gt - 1, "gt.json", &coco_results_gt), RB_OK);
    run_target("coco-results", fuzz_coco_results, (const unsigned char *)dt, sizeof dt - 1);
    rb_coco_destroy(coco_results_gt);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("fuzz");
    TCase *tc = tcase_create("fuzz");
    const char *n = getenv("RB_FUZZ_ITERATIONS"), *sd = getenv("RB_FUZZ_SEED");
    int failed;
    if (n != NULL && atol(n) > 0)
        iterations = atol(n);
    if (sd != NULL)
        seed = strtoull(sd, NULL, 10);
    rb_log_set_level(RB_LOG_ERROR); /* mutants may warn; the messages are checked */
    /* (not make_temp_dir: Check's asserts only work inside a test) */
    snprintf(dir, sizeof dir, "%s/robusta-fuzz-XXXXXX", getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("check_fuzz: mkdtemp");
        return EXIT_FAILURE;
    }
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, checkpoints_survive_mutation);
    tcase_add_test(tc, checkpoint_headers_survive_mutation);
    tcase_add_test(tc, safetensors_survive_mutation);
    tcase_add_test(tc, npy_survives_mutation);
    tcase_add_test(tc, grid_files_survive_mutation);
    tcase_add_test(tc, results_files_survive_mutation);
    tcase_add_test(tc, dataset_files_survive_mutation);
    tcase_add_test(tc, text_options_survive_mutation);
    tcase_add_test(tc, images_survive_mutation);
    tcase_add_test(tc, voc_lists_survive_mutation);
    tcase_add_test(tc, image_lists_survive_mutation);
    tcase_add_test(tc, image_caches_survive_mutation);
    tcase_add_test(tc, coco_files_survive_mutation);
    suite_add_tcase(suite, tc);
    failed = run_suite(suite);
    if (failed == 0) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "check_fuzz: could not remove %s\n", dir);
    } else
        fprintf(stderr, "check_fuzz: failing mutants are kept in %s\n", dir);
    return failed;
}
