/* The image input pipeline of the paper's transform (robusta/data.h, "The
 * paper's transform"), the work issue 21 asks to be fast: JPEG files read
 * from an ImageFolder tree, each decoded, RandomResizedCrop(S) and flipped
 * as torchvision does, cut into float batches by a loader's worker threads.
 * bench/torch_images.py times torchvision's DataLoader over the same files.
 *
 * The images are made here, so no dataset is needed: N JPEGs of 500 x 375
 * (an ImageNet photo's usual size) at quality 90, smooth gradients plus
 * deterministic noise so that their sizes (30-60 KB) and decoding cost are
 * those of photos, written through robusta's own rb_split_export into
 * DIR/train/class_0 .. class_9. Then, per repeat, with fresh splits:
 *   decode_rrc_first_epoch  a split opened in memory, epoch 0 of a loader
 *                           (every image decoded, cropped, resized, flipped)
 *   kept_second_epoch       epoch 1 of the same loader: the decoded images
 *                           are kept, so only the crop and resize are left
 *   cache_write_epoch       a split with a cache folder: epoch 0 decodes and
 *                           writes the cache file
 *   cache_read_epoch        a second split on the same cache folder: epoch 0
 *                           decodes nothing (another process, a later run)
 * Each timed span is rb_loader_start_epoch and draining every batch; opening
 * the split and creating the loader are not counted (they read headers
 * only). Prints
 *     perf,images,PHASE,N,THREADS,SIZE,SECONDS,IMAGES/S
 * (median of --repeats), then a summary with min and max. Never fails on
 * time.
 *
 *   bench_images [--images N] [--threads T] [--repeats R] [--size S] [--keep DIR] [--quick] */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <robusta/robusta.h>

#include "benchutil.h"

#define MAX_REPEATS 16
#define CLASSES 10
#define IMAGE_H 375
#define IMAGE_W 500
#define QUALITY 90
/* Images made per rb_split_create + rb_split_export: bounds the memory the
 * making takes (64 x 560 KB) whatever --images is. */
#define CHUNK 64
#define PATH_LEN 4400

enum { FIRST, KEPT, CACHE_WRITE, CACHE_READ, PHASES };
static const char *const phase_names[PHASES] = {"decode_rrc_first_epoch", "kept_second_epoch", "cache_write_epoch",
                                                "cache_read_epoch"};

static int fail(const char *what)
{
    fprintf(stderr, "bench_images: %s: %s\n", what, rb_last_error());
    return 1;
}

static int fail_errno(const char *what, const char *path)
{
    fprintf(stderr, "bench_images: %s %s: %s\n", what, path, strerror(errno));
    return 1;
}

/* snprintf that fails on a path too long for its buffer rather than cutting it. */
__attribute__((format(printf, 3, 4))) static int path_of(char *out, size_t size, const char *format, ...)
{
    va_list ap;
    int n;
    va_start(ap, format);
    n = vsnprintf(out, size, format, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size)
        return fprintf(stderr, "bench_images: path too long: %s...\n", out), 1;
    return 0;
}

/* Image `index`, N x C x H x W planes: per channel a linear gradient in a
 * direction and range of its own plus a low-frequency wave (so no two
 * images, and no two channels, are alike), plus noise of +-12 levels on
 * 2x2 blocks. Pure gradients compress to a few KB; noise on every pixel
 * makes ~150 KB files; this lands at typical photo sizes. */
static void make_image(uint8_t *planes, int64_t index)
{
    rb_rng r;
    rb_rng_init(&r, 21, RB_RNG_STREAM(RB_RNG_USER, 21), (uint64_t)index);
    for (int ch = 0; ch < 3; ch++) {
        const float gx = 200.0f * (rb_rng_uniform(&r) - 0.5f) / IMAGE_W;
        const float gy = 200.0f * (rb_rng_uniform(&r) - 0.5f) / IMAGE_H;
        const float base = 60.0f + 120.0f * rb_rng_uniform(&r);
        const float fx = 0.005f + 0.03f * rb_rng_uniform(&r), fy = 0.005f + 0.03f * rb_rng_uniform(&r);
        const float amp = 10.0f + 30.0f * rb_rng_uniform(&r);
        uint8_t *p = planes + (size_t)ch * IMAGE_H * IMAGE_W;
        uint8_t noise[IMAGE_W / 2 + 1];
        for (int y = 0; y < IMAGE_H; y++) {
            if (y % 2 == 0)
                for (int x = 0; x < IMAGE_W / 2 + 1; x++)
                    noise[x] = (uint8_t)(rb_rng_u32(&r) % 25);
            for (int x = 0; x < IMAGE_W; x++) {
                float v = base + gx * (float)(x - IMAGE_W / 2) + gy * (float)(y - IMAGE_H / 2) +
                          amp * sinf(fx * (float)x) * cosf(fy * (float)y) + (float)noise[x / 2] - 12.0f;
                p[(size_t)y * IMAGE_W + (size_t)x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f);
            }
        }
    }
}

/* Moves the files rb_split_export wrote into `from` (FROM/L-class_L/IIIIII.jpg,
 * indices counted from 0 in each chunk) to TRAIN/class_L/GGGGGG.jpg, GGGGGG
 * = first + IIIIII, then removes `from`: one ImageFolder tree for all
 * chunks, as rb_split_export writes only into a new folder. */
static int gather_chunk(const char *from, const char *train, int64_t first, int64_t *bytes)
{
    char folder[PATH_LEN], src[PATH_LEN + 300], dst[PATH_LEN + 300];
    DIR *top = opendir(from);
    struct dirent *e;
    if (top == NULL)
        return fail_errno("cannot open", from);
    while ((e = readdir(top)) != NULL) {
        DIR *sub;
        struct dirent *f;
        long label;
        char *end;
        if (e->d_name[0] == '.')
            continue;
        label = strtol(e->d_name, &end, 10);
        if (*end != '-' || label < 0 || label >= CLASSES)
            continue;
        if (path_of(folder, sizeof folder, "%s/%s", from, e->d_name) != 0)
            return closedir(top), 1;
        if ((sub = opendir(folder)) == NULL)
            return closedir(top), fail_errno("cannot open", folder);
        while ((f = readdir(sub)) != NULL) {
            struct stat st;
            if (f->d_name[0] == '.')
                continue;
            if (path_of(src, sizeof src, "%s/%s", folder, f->d_name) != 0 ||
                path_of(dst, sizeof dst, "%s/class_%ld/%06lld.jpg", train, label,
                        (long long)(first + strtoll(f->d_name, NULL, 10))) != 0)
                return closedir(sub), closedir(top), 1;
            if (stat(src, &st) == 0)
                *bytes += (int64_t)st.st_size;
            if (rename(src, dst) != 0)
                return closedir(sub), closedir(top), fail_errno("cannot move", src);
        }
        closedir(sub);
        if (rmdir(folder) != 0)
            return closedir(top), fail_errno("cannot remove", folder);
    }
    closedir(top);
    return rmdir(from) != 0 ? fail_errno("cannot remove", from) : 0;
}

/* Writes n images into DIR/train/class_0 .. class_9 (image i in class i % 10). */
static int make_images(const char *dir, int64_t n)
{
    char train[PATH_LEN], path[PATH_LEN + 32];
    const char *names[CLASSES];
    char name_store[CLASSES][24]; /* "class_" and any int: no truncation warning at any -O */
    uint8_t *planes = malloc((size_t)CHUNK * 3 * IMAGE_H * IMAGE_W);
    int64_t labels[CHUNK], bytes = 0;
    double t0 = now();
    if (planes == NULL)
        return fprintf(stderr, "bench_images: out of memory\n"), 1;
    if (path_of(train, sizeof train, "%s/train", dir) != 0)
        return free(planes), 1;
    if (mkdir(train, 0755) != 0)
        return free(planes), fail_errno("cannot create (it must not exist)", train);
    for (int k = 0; k < CLASSES; k++) {
        snprintf(name_store[k], sizeof name_store[k], "class_%d", k);
        names[k] = name_store[k];
        if (path_of(path, sizeof path, "%s/%s", train, names[k]) != 0)
            return free(planes), 1;
        if (mkdir(path, 0755) != 0)
            return free(planes), fail_errno("cannot create", path);
    }
    for (int64_t first = 0; first < n; first += CHUNK) {
        const int64_t count = n - first < CHUNK ? n - first : CHUNK;
        rb_split *chunk = NULL;
        rb_status s;
        for (int64_t i = 0; i < count; i++) {
            make_image(planes + (size_t)i * 3 * IMAGE_H * IMAGE_W, first + i);
            labels[i] = (first + i) % CLASSES;
        }
        if (path_of(path, sizeof path, "%s/chunk-%lld", dir, (long long)first) != 0)
            return free(planes), 1;
        s = rb_split_create(&chunk, RB_DTYPE_U8, count, 3, IMAGE_H, IMAGE_W, planes, labels, CLASSES, names,
                            "bench images");
        if (s == RB_OK)
            s = rb_split_export(chunk, path, RB_IMAGE_JPEG, QUALITY);
        rb_split_destroy(chunk);
        if (s != RB_OK)
            return free(planes), fail("writing the images");
        if (gather_chunk(path, train, first, &bytes) != 0)
            return free(planes), 1;
    }
    free(planes);
    printf("# %lld JPEG images %dx%d, quality %d, mean %.1f KB, written in %.1f s to %s\n", (long long)n, IMAGE_W,
           IMAGE_H, QUALITY, (double)bytes / (double)n / 1000.0, now() - t0, train);
    return 0;
}

/* Opens the train split of folder:DIR under the paper's transform (in
 * memory, or with a cache folder) and its training loader. */
static int open_loader(const char *spec, int size, const char *cache_dir, int threads, rb_split **split,
                       rb_loader **loader)
{
    rb_split_options so = {0};
    rb_loader_options lo = {0};
    so.transform = RB_TRANSFORM_PAPER;
    so.size = size;
    so.cache_dir = cache_dir;
    lo.batch_size = 64;
    lo.shuffle = true;
    lo.seed = 42;
    lo.threads = threads;
    lo.augment.flip = true; /* augmentation on: RandomResizedCrop, then the flip */
    if (rb_split_open(split, spec, RB_SPLIT_TRAIN, &so) != RB_OK)
        return fail(spec);
    if (rb_loader_create(loader, *split, &lo) != RB_OK)
        return fail("loader");
    return 0;
}

/* Seconds of one whole epoch as a trainer sees it: start, then every batch. */
static int time_epoch(rb_loader *loader, int64_t epoch, int64_t expect, double *seconds)
{
    rb_batch b;
    int64_t seen = 0;
    double t0 = now();
    if (rb_loader_start_epoch(loader, epoch) != RB_OK)
        return fail("start epoch");
    for (;;) {
        if (rb_loader_next(loader, &b) != RB_OK)
            return fail("batch");
        if (b.count == 0)
            break;
        seen += b.count;
    }
    *seconds = now() - t0;
    if (seen != expect)
        return fprintf(stderr, "bench_images: an epoch gave %lld images, not %lld\n", (long long)seen,
                       (long long)expect), 1;
    return 0;
}

/* The "Model name" line of lscpu, so that the figures say what ran them. */
static void print_cpu(void)
{
    char line[512];
    FILE *p = popen("lscpu 2>/dev/null", "r");
    if (p == NULL)
        return;
    while (fgets(line, sizeof line, p) != NULL)
        if (strncmp(line, "Model name:", 11) == 0) {
            char *v = line + 11;
            v += strspn(v, " \t");
            printf("# cpu: %s", v);
        }
    pclose(p);
}

static void remove_tree(const char *path)
{
    char cmd[PATH_LEN + 32];
    if (path_of(cmd, sizeof cmd, "rm -rf '%s'", path) != 0 || system(cmd) != 0)
        fprintf(stderr, "bench_images: could not remove %s\n", path);
}

int main(int argc, char **argv)
{
    int64_t n = 512;
    int threads = 2, repeats = 3, size = 224;
    const char *keep = NULL;
    char tmp[] = "/tmp/bench-images-XXXXXX", cache_tmp[] = "/tmp/bench-images-cache-XXXXXX";
    char dir[PATH_LEN], spec[PATH_LEN + 16], cache[PATH_LEN + 32];
    double sec[PHASES][MAX_REPEATS], rate[PHASES], lo[PHASES], hi[PHASES];
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--images") == 0 && i + 1 < argc)
            n = atoll(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
            size = atoi(argv[++i]);
        else if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc)
            keep = argv[++i];
        else if (strcmp(argv[i], "--quick") == 0)
            repeats = 1, n = 256;
        else {
            fprintf(stderr, "usage: bench_images [--images N] [--threads T] [--repeats R] [--size S] [--keep DIR] "
                            "[--quick]\n");
            return 2;
        }
    }
    if (n < CLASSES || threads < 0 || size < 1 || repeats < 1 || repeats > MAX_REPEATS)
        return fprintf(stderr, "bench_images: --images >= %d, --threads >= 0, --size >= 1, --repeats in [1, %d]\n",
                       CLASSES, MAX_REPEATS), 2;
    rb_log_set_level(RB_LOG_WARN);
    print_cpu();
    if (keep != NULL) {
        if (mkdir(keep, 0755) != 0 && errno != EEXIST)
            return fail_errno("cannot create", keep);
        if (path_of(dir, sizeof dir, "%s", keep) != 0)
            return 2;
    } else {
        if (mkdtemp(tmp) == NULL)
            return fail_errno("cannot create", tmp);
        memcpy(dir, tmp, sizeof tmp);
    }
    /* The caches live outside DIR, so that DIR holds only what ImageFolder reads. */
    if (mkdtemp(cache_tmp) == NULL)
        return fail_errno("cannot create", cache_tmp);
    if (make_images(dir, n) != 0) {
        rc = 1;
        goto done;
    }
    if (path_of(spec, sizeof spec, "folder:%s", dir) != 0)
        rc = 1;
    for (int k = 0; k < repeats && rc == 0; k++) {
        rb_split *split = NULL, *again = NULL;
        rb_loader *loader = NULL, *loader2 = NULL;
        rb_split_cache_state cs;
        /* (a), (b): in memory, two epochs of one loader */
        rc = open_loader(spec, size, NULL, threads, &split, &loader);
        if (rc == 0)
            rc = time_epoch(loader, 0, n, &sec[FIRST][k]);
        if (rc == 0)
            rc = time_epoch(loader, 1, n, &sec[KEPT][k]);
        rb_loader_destroy(loader);
        rb_split_destroy(split);
        split = NULL, loader = NULL;
        /* (c): a fresh cache folder per repeat, written by one split, read by the next */
        if (rc == 0 && path_of(cache, sizeof cache, "%s/run-%d", cache_tmp, k) != 0)
            rc = 1;
        if (rc == 0 && mkdir(cache, 0755) != 0)
            rc = fail_errno("cannot create", cache);
        if (rc == 0)
            rc = open_loader(spec, size, cache, threads, &split, &loader);
        if (rc == 0)
            rc = time_epoch(loader, 0, n, &sec[CACHE_WRITE][k]);
        rb_loader_destroy(loader);
        rb_split_destroy(split); /* the cache file is complete once its split is gone */
        if (rc == 0)
            rc = open_loader(spec, size, cache, threads, &again, &loader2);
        if (rc == 0)
            rc = time_epoch(loader2, 0, n, &sec[CACHE_READ][k]);
        if (rc == 0) {
            rb_split_cache_state_get(again, &cs);
            if (cs.decoded_here != 0)
                fprintf(stderr, "bench_images: the split on the cache decoded %lld images (%s)\n",
                        (long long)cs.decoded_here, cs.rebuilt_because);
        }
        rb_loader_destroy(loader2);
        rb_split_destroy(again);
    }
    if (rc != 0)
        goto done;
    for (int p = 0; p < PHASES; p++) {
        const double m = median(sec[p], repeats); /* sorts: [0] is the fastest */
        rate[p] = (double)n / m;
        lo[p] = (double)n / sec[p][repeats - 1];
        hi[p] = (double)n / sec[p][0];
        printf("perf,images,%s,%lld,%d,%d,%.3f,%.1f\n", phase_names[p], (long long)n, threads, size, m, rate[p]);
    }
    printf("paper transform (decode, RandomResizedCrop(%d), flip), %lld JPEGs %dx%d, %d threads, batch 64, median "
           "of %d (min-max images/s):\n",
           size, (long long)n, IMAGE_W, IMAGE_H, threads, repeats);
    for (int p = 0; p < PHASES; p++)
        printf("  %-24s %8.1f images/s (%.1f-%.1f), %.3f ms per image per thread\n", phase_names[p], rate[p], lo[p],
               hi[p], 1e3 * (threads > 0 ? threads : 1) / rate[p]);
    printf("  second epoch / first: %.2fx (the issue's goal: 10x); decoding is %.0f%% of the first epoch, "
           "the crop and resize that every epoch redoes the rest\n",
           rate[KEPT] / rate[FIRST], 100.0 * (1.0 - rate[FIRST] / rate[KEPT]));
    printf("  cache: a run that reads it / the run that wrote it: %.2fx\n", rate[CACHE_READ] / rate[CACHE_WRITE]);
done:
    remove_tree(cache_tmp);
    if (keep == NULL)
        remove_tree(dir);
    else if (rc == 0)
        printf("# images kept in %s (bench/torch_images.py %s)\n", dir, dir);
    return rc;
}
