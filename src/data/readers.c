/* Dataset readers (robusta/data.h): IDX (MNIST, Fashion-MNIST), raw or
 * gzip'd; CIFAR-10 and CIFAR-100 binary batches; .npy images and labels.
 * Each is a function from bytes to a split, for fuzz harnesses; the file
 * wrappers live in dataset.c. */
#include "config.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <robusta/data.h>

#include "data/data_internal.h"

/* ------------------------------------------------------------ class names */

static const char *const mnist_names[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

static const char *const cifar10_names[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};

/* fine_label_names.txt of the CIFAR-100 binary distribution, in label order. */
static const char *const cifar100_names[100] = {
    "apple",       "aquarium_fish", "baby",     "bear",       "beaver",       "bed",        "bee",
    "beetle",      "bicycle",       "bottle",   "bowl",       "boy",          "bridge",     "bus",
    "butterfly",   "camel",         "can",      "castle",     "caterpillar",  "cattle",     "chair",
    "chimpanzee",  "clock",         "cloud",    "cockroach",  "couch",        "crab",       "crocodile",
    "cup",         "dinosaur",      "dolphin",  "elephant",   "flatfish",     "forest",     "fox",
    "girl",        "hamster",       "house",    "kangaroo",   "keyboard",     "lamp",       "lawn_mower",
    "leopard",     "lion",          "lizard",   "lobster",    "man",          "maple_tree", "motorcycle",
    "mountain",    "mouse",         "mushroom", "oak_tree",   "orange",       "orchid",     "otter",
    "palm_tree",   "pear",          "pickup_truck", "pine_tree", "plain",     "plate",      "poppy",
    "porcupine",   "possum",        "rabbit",   "raccoon",    "ray",          "road",       "rocket",
    "rose",        "sea",           "seal",     "shark",      "shrew",        "skunk",      "skyscraper",
    "snail",       "snake",         "spider",   "squirrel",   "streetcar",    "sunflower",  "sweet_pepper",
    "table",       "tank",          "telephone", "television", "tiger",       "tractor",    "train",
    "trout",       "tulip",         "turtle",   "wardrobe",   "whale",        "willow_tree", "wolf",
    "woman",       "worm"};

/* ------------------------------------------------------------ byte sources */

/* Reads the bytes of a file held in memory, inflating them on the way when
 * they are gzip'd (magic 1f 8b). Concatenated gzip members are read as one
 * stream, as gzip -d does. */
typedef struct source {
    const unsigned char *bytes;
    size_t size, pos; /* raw: next byte; gzip: input consumed */
    const char *what;
    bool gz;
    bool zinit;
    bool ended; /* gzip: the last member's trailer has been read */
    z_stream zs;
} source;

static rb_status source_open(source *s, const void *bytes, size_t size, const char *what)
{
    memset(s, 0, sizeof *s);
    s->bytes = bytes;
    s->size = size;
    s->what = what;
    s->gz = size >= 2 && s->bytes[0] == 0x1f && s->bytes[1] == 0x8b;
    if (s->gz) {
        if (inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK)
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: cannot start zlib's inflate", what);
        s->zinit = true;
    }
    return RB_OK;
}

static void source_close(source *s)
{
    if (s->zinit)
        inflateEnd(&s->zs);
    s->zinit = false;
}

/* Reads up to n bytes into dst; *got says how many (fewer only at the end). */
static rb_status source_read(source *s, void *dst, size_t n, size_t *got)
{
    unsigned char *out = dst;
    size_t done = 0;

    if (!s->gz) {
        size_t avail = s->size - s->pos;
        done = n < avail ? n : avail;
        memcpy(out, s->bytes + s->pos, done);
        s->pos += done;
        *got = done;
        return RB_OK;
    }
    while (done < n && !(s->ended && s->pos == s->size)) {
        size_t in_chunk, out_chunk;
        int rc;
        if (s->ended) {
            /* Another gzip member follows, or garbage does. */
            if (s->size - s->pos < 2 || s->bytes[s->pos] != 0x1f || s->bytes[s->pos + 1] != 0x8b)
                return rb_error_set(RB_ERR_CORRUPT, "%s: %zu bytes of trailing garbage after the gzip data",
                                    s->what, s->size - s->pos);
            inflateReset(&s->zs);
            s->ended = false;
        }
        in_chunk = s->size - s->pos;
        if (in_chunk > (1u << 30))
            in_chunk = 1u << 30;
        out_chunk = n - done;
        if (out_chunk > (1u << 30))
            out_chunk = 1u << 30;
        s->zs.next_in = (Bytef *)(uintptr_t)(s->bytes + s->pos);
        s->zs.avail_in = (uInt)in_chunk;
        s->zs.next_out = out + done;
        s->zs.avail_out = (uInt)out_chunk;
        rc = inflate(&s->zs, Z_NO_FLUSH);
        s->pos += in_chunk - s->zs.avail_in;
        done += out_chunk - s->zs.avail_out;
        if (rc == Z_STREAM_END) {
            s->ended = true;
        } else if (rc == Z_BUF_ERROR) {
            break; /* no progress possible: input exhausted mid-stream; the caller reports it */
        } else if (rc != Z_OK) {
            return rb_error_set(RB_ERR_CORRUPT, "%s: corrupt gzip data (%s)", s->what,
                                s->zs.msg ? s->zs.msg : "inflate failed");
        } else if (s->zs.avail_out > 0 && s->pos == s->size) {
            break; /* all input used, no end of stream */
        }
    }
    *got = done;
    return RB_OK;
}

/* After the last expected byte: fails if more data follows or (gzip) the
 * stream does not end properly. `expected` describes the content. */
static rb_status source_finish(source *s, const char *expected)
{
    unsigned char extra;
    size_t got;
    rb_status st = source_read(s, &extra, 1, &got);
    if (st != RB_OK)
        return st;
    if (got != 0) {
        if (!s->gz)
            return rb_error_set(RB_ERR_CORRUPT, "%s: %zu bytes longer than its header says (%s)", s->what,
                                s->size - s->pos + 1, expected);
        return rb_error_set(RB_ERR_CORRUPT, "%s: more data than its header says (%s)", s->what, expected);
    }
    if (s->gz && !s->ended)
        return rb_error_set(RB_ERR_CORRUPT, "%s: the gzip stream is cut short (no end-of-stream trailer)",
                            s->what);
    return RB_OK;
}

/* ------------------------------------------------------------ IDX */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u

/* Reads an IDX header of `ndim` dimensions with `magic` into dims. */
static rb_status idx_header(source *s, uint32_t magic, int ndim, uint32_t *dims)
{
    unsigned char head[16];
    size_t want = 4 + 4 * (size_t)ndim, got;
    const char *kind = ndim == 3 ? "image" : "label";
    rb_status st = source_read(s, head, want, &got);
    uint32_t m;

    if (st != RB_OK)
        return st;
    if (got >= 4) {
        m = be32(head);
        if (m != magic) {
            const char *hint = "";
            if (m == IDX_LABELS_MAGIC && ndim == 3)
                hint = ": this is a label file, not an image file";
            else if (m == IDX_IMAGES_MAGIC && ndim == 1)
                hint = ": this is an image file, not a label file";
            else if ((m >> 16) != 0)
                hint = ": not an IDX file";
            return rb_error_set(RB_ERR_CORRUPT,
                                "%s: bad magic number 0x%08x, expected 0x%08x (IDX %s file of unsigned bytes)%s",
                                s->what, m, magic, kind, hint);
        }
    }
    if (got < want)
        return rb_error_set(RB_ERR_CORRUPT, "%s: truncated: %zu bytes, shorter than the %zu-byte IDX %s header",
                            s->what, got, want, kind);
    for (int d = 0; d < ndim; d++)
        dims[d] = be32(head + 4 + 4 * d);
    return RB_OK;
}

/* Whether `total` bytes could come out of this source at all: a raw source
 * holds exactly what is left; deflate expands at most 1032:1. Stops a
 * forged header from asking for terabytes before the data proves short. */
static bool plausible(const source *s, uint64_t total)
{
    uint64_t left = s->size - s->pos;
    if (!s->gz)
        return total <= left;
    return total <= (uint64_t)s->size * 1032u + 1024u;
}

rb_status rb_split_from_idx(rb_split **out, rb_data_source kind, const void *images, size_t images_size,
                            const char *images_what, const void *labels, size_t labels_size,
                            const char *labels_what)
{
    source si, sl;
    uint32_t idim[3] = {0, 0, 0}, ldim[1] = {0};
    uint64_t total;
    unsigned char *lab = NULL;
    rb_split *s = NULL;
    rb_status st;
    char expected[160];
    size_t got;

    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_from_idx: out is NULL");
    *out = NULL;
    if (kind != RB_DATASET_MNIST && kind != RB_DATASET_FASHION_MNIST)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_from_idx: kind must be mnist or fashion-mnist, not %s",
                            rb_data_source_str(kind));
    if (images_what == NULL)
        images_what = "IDX images";
    if (labels_what == NULL)
        labels_what = "IDX labels";
    if ((images == NULL && images_size) || (labels == NULL && labels_size))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_from_idx: NULL bytes");

    if ((st = source_open(&si, images, images_size, images_what)) != RB_OK)
        return st;
    if ((st = source_open(&sl, labels, labels_size, labels_what)) != RB_OK) {
        source_close(&si);
        return st;
    }
    if ((st = idx_header(&si, IDX_IMAGES_MAGIC, 3, idim)) != RB_OK)
        goto done;
    if ((st = idx_header(&sl, IDX_LABELS_MAGIC, 1, ldim)) != RB_OK)
        goto done;
    if (idim[1] == 0 || idim[2] == 0 || idim[1] > 65536 || idim[2] > 65536) {
        st = rb_error_set(RB_ERR_CORRUPT, "%s: images of %" PRIu32 "×%" PRIu32 " pixels: each side must be 1 to 65536",
                          images_what, idim[1], idim[2]);
        goto done;
    }
    total = (uint64_t)idim[0] * idim[1] * idim[2];
    snprintf(expected, sizeof expected, "%" PRIu32 " images of %" PRIu32 "×%" PRIu32 ", %" PRIu64 " bytes of pixels",
             idim[0], idim[1], idim[2], total);
    if (idim[0] != ldim[0]) {
        st = rb_error_set(RB_ERR_CORRUPT,
                          "%s holds %" PRIu32 " images but %s holds %" PRIu32 " labels: use the files of one split",
                          images_what, idim[0], labels_what, ldim[0]);
        goto done;
    }
    if (!plausible(&si, total)) {
        st = rb_error_set(RB_ERR_CORRUPT, "%s: truncated: the header promises %s, but the file is %zu bytes",
                          images_what, expected, images_size);
        goto done;
    }
    if (!plausible(&sl, ldim[0])) {
        st = rb_error_set(RB_ERR_CORRUPT, "%s: truncated: the header promises %" PRIu32
                          " labels, but the file is %zu bytes",
                          labels_what, ldim[0], labels_size);
        goto done;
    }
    if ((st = rb_split_alloc(&s, kind, images_what, RB_DTYPE_U8, (int64_t)idim[0], 1, (int)idim[1], (int)idim[2],
                             10)) != RB_OK)
        goto done;
    if ((st = source_read(&si, s->images, (size_t)total, &got)) != RB_OK)
        goto done;
    if (got != total) {
        st = rb_error_set(RB_ERR_CORRUPT, "%s: truncated: the header promises %s, but only %zu%s are there",
                          images_what, expected, got, si.gz ? " (after decompression)" : "");
        goto done;
    }
    if ((st = source_finish(&si, expected)) != RB_OK)
        goto done;
    lab = malloc(ldim[0] ? ldim[0] : 1);
    if (lab == NULL) {
        st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory reading %s", labels_what);
        goto done;
    }
    if ((st = source_read(&sl, lab, ldim[0], &got)) != RB_OK)
        goto done;
    if (got != ldim[0]) {
        st = rb_error_set(RB_ERR_CORRUPT, "%s: truncated: the header promises %" PRIu32
                          " labels, but only %zu are there",
                          labels_what, ldim[0], got);
        goto done;
    }
    snprintf(expected, sizeof expected, "%" PRIu32 " labels", ldim[0]);
    if ((st = source_finish(&sl, expected)) != RB_OK)
        goto done;
    for (uint32_t i = 0; i < ldim[0]; i++) {
        if (lab[i] >= 10) {
            st = rb_error_set(RB_ERR_CORRUPT, "%s: label %u of example %" PRIu32 " is out of range [0, 9]",
                              labels_what, lab[i], i);
            goto done;
        }
        s->labels[i] = lab[i];
    }
    st = rb_split_set_names(s, kind == RB_DATASET_MNIST ? mnist_names : fashion_names);

done:
    source_close(&si);
    source_close(&sl);
    free(lab);
    if (st != RB_OK) {
        rb_split_destroy(s);
        return st;
    }
    *out = s;
    return RB_OK;
}

/* ------------------------------------------------------------ CIFAR */

#define CIFAR_PIXELS 3072

rb_status rb_split_from_cifar(rb_split **out, rb_data_source kind, const void *const *files, const size_t *sizes,
                              const char *const *whats, size_t file_count)
{
    size_t record, label_bytes;
    int64_t total = 0, k = 0;
    const char *name;
    rb_split *s = NULL;
    rb_status st;

    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_from_cifar: out is NULL");
    *out = NULL;
    if (kind == RB_DATASET_CIFAR10) {
        label_bytes = 1;
        name = "CIFAR-10";
    } else if (kind == RB_DATASET_CIFAR100) {
        label_bytes = 2;
        name = "CIFAR-100";
    } else {
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_from_cifar: kind must be cifar10 or cifar100, not %s",
                            rb_data_source_str(kind));
    }
    record = label_bytes + CIFAR_PIXELS;
    if (file_count == 0 || files == NULL || sizes == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_from_cifar: no files");

    for (size_t f = 0; f < file_count; f++) {
        const char *what = whats && whats[f] ? whats[f] : "CIFAR batch";
        const unsigned char *b = files[f];
        size_t n;
        if (b == NULL && sizes[f] != 0)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_from_cifar: NULL bytes for %s", what);
        if (sizes[f] == 0)
            return rb_error_set(RB_ERR_CORRUPT, "%s is empty: expected %s records of %zu bytes", what, name, record);
        if (sizes[f] % record != 0)
            return rb_error_set(RB_ERR_CORRUPT,
                                "%s: %zu bytes is not a whole number of %zu-byte %s records (%s + 3072 pixels): "
                                "truncated, or not a %s binary file",
                                what, sizes[f], record, name,
                                label_bytes == 1 ? "label byte" : "coarse and fine label bytes", name);
        n = sizes[f] / record;
        for (size_t r = 0; r < n; r++) {
            const unsigned char *rec = b + r * record;
            if (label_bytes == 1 && rec[0] >= 10)
                return rb_error_set(RB_ERR_CORRUPT,
                                    "%s: record %zu has label %u, out of range [0, 9]: not a CIFAR-10 file?", what,
                                    r, rec[0]);
            if (label_bytes == 2 && rec[0] >= 20)
                return rb_error_set(RB_ERR_CORRUPT,
                                    "%s: record %zu has coarse label %u, out of range [0, 19]: not a CIFAR-100 file?",
                                    what, r, rec[0]);
            if (label_bytes == 2 && rec[1] >= 100)
                return rb_error_set(RB_ERR_CORRUPT,
                                    "%s: record %zu has fine label %u, out of range [0, 99]: not a CIFAR-100 file?",
                                    what, r, rec[1]);
        }
        total += (int64_t)n;
    }
    if ((st = rb_split_alloc(&s, kind, whats && whats[0] ? whats[0] : name, RB_DTYPE_U8, total, 3, 32, 32,
                             kind == RB_DATASET_CIFAR10 ? 10 : 100)) != RB_OK)
        return st;
    for (size_t f = 0; f < file_count; f++) {
        const unsigned char *b = files[f];
        size_t n = sizes[f] / record;
        for (size_t r = 0; r < n; r++, k++) {
            const unsigned char *rec = b + r * record;
            s->labels[k] = rec[label_bytes - 1];
            memcpy((unsigned char *)s->images + (size_t)k * CIFAR_PIXELS, rec + label_bytes, CIFAR_PIXELS);
        }
    }
    if ((st = rb_split_set_names(s, kind == RB_DATASET_CIFAR10 ? cifar10_names : cifar100_names)) != RB_OK) {
        rb_split_destroy(s);
        return st;
    }
    *out = s;
    return RB_OK;
}

/* ------------------------------------------------------------ npy */

static bool is_channel_count(int64_t d)
{
    return d == 1 || d == 3;
}

rb_status rb_split_from_npy(rb_split **out, const rb_npy *images, const char *images_what, const rb_npy *labels,
                            const char *labels_what)
{
    int64_t n, c, h, w, max_label = -1;
    bool nhwc = false;
    rb_split *s = NULL;
    rb_status st;
    size_t esize;

    if (out == NULL || images == NULL || labels == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_split_from_npy: NULL argument");
    *out = NULL;
    if (images_what == NULL)
        images_what = "images";
    if (labels_what == NULL)
        labels_what = "labels";
    if (images->dtype != RB_DTYPE_U8 && images->dtype != RB_DTYPE_F32)
        return rb_error_set(RB_ERR_UNSUPPORTED,
                            "%s: images of dtype %s; robusta reads uint8 (0..255) or float32 in [0, 1]",
                            images_what, rb_dtype_str(images->dtype));
    if (images->ndim == 3) {
        n = images->shape[0];
        c = 1;
        h = images->shape[1];
        w = images->shape[2];
    } else if (images->ndim == 4) {
        bool last = is_channel_count(images->shape[3]), first = is_channel_count(images->shape[1]);
        n = images->shape[0];
        if (last && first)
            return rb_error_set(RB_ERR_UNSUPPORTED,
                                "%s: shape %" PRId64 "×%" PRId64 "×%" PRId64 "×%" PRId64
                                " is ambiguous: both axis 1 and axis 3 could hold the channels",
                                images_what, images->shape[0], images->shape[1], images->shape[2], images->shape[3]);
        if (last) {
            nhwc = true;
            h = images->shape[1];
            w = images->shape[2];
            c = images->shape[3];
        } else if (first) {
            c = images->shape[1];
            h = images->shape[2];
            w = images->shape[3];
        } else {
            return rb_error_set(RB_ERR_UNSUPPORTED,
                                "%s: shape %" PRId64 "×%" PRId64 "×%" PRId64 "×%" PRId64
                                " has no channel axis of 1 or 3 (expected N×H×W×C or N×C×H×W)",
                                images_what, images->shape[0], images->shape[1], images->shape[2], images->shape[3]);
        }
    } else {
        return rb_error_set(RB_ERR_UNSUPPORTED,
                            "%s: images with %d dimensions; expected N×H×W, N×H×W×C or N×C×H×W", images_what,
                            images->ndim);
    }
    if (h < 1 || w < 1 || h > 65536 || w > 65536)
        return rb_error_set(RB_ERR_UNSUPPORTED, "%s: images of %" PRId64 "×%" PRId64 " pixels are not supported",
                            images_what, h, w);
    if (labels->ndim != 1)
        return rb_error_set(RB_ERR_UNSUPPORTED, "%s: labels must be a 1-D array of N integers, not %d-D",
                            labels_what, labels->ndim);
    if (labels->dtype != RB_DTYPE_U8 && labels->dtype != RB_DTYPE_I32 && labels->dtype != RB_DTYPE_I64)
        return rb_error_set(RB_ERR_UNSUPPORTED, "%s: labels of dtype %s; expected integers (uint8, int32, int64)",
                            labels_what, rb_dtype_str(labels->dtype));
    if (n < 0 || (uint64_t)images->nbytes / rb_dtype_size(images->dtype) / (uint64_t)(c * h * w) < (uint64_t)n ||
        (images->data == NULL && n > 0))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the array holds fewer bytes than its shape says",
                            images_what);
    if (labels->shape[0] < 0 || (uint64_t)labels->nbytes / rb_dtype_size(labels->dtype) < (uint64_t)labels->shape[0] ||
        (labels->data == NULL && labels->shape[0] > 0))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the array holds fewer bytes than its shape says",
                            labels_what);
    if (labels->shape[0] != n)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s holds %" PRId64 " images but %s holds %" PRId64 " labels", images_what, n,
                            labels_what, labels->shape[0]);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = labels->dtype == RB_DTYPE_U8    ? ((const uint8_t *)labels->data)[i]
                    : labels->dtype == RB_DTYPE_I32 ? ((const int32_t *)labels->data)[i]
                                                    : ((const int64_t *)labels->data)[i];
        if (v < 0 || v >= 100000)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: label %" PRId64 " of example %" PRId64 " is out of range [0, 99999]",
                                labels_what, v, i);
        if (v > max_label)
            max_label = v;
    }
    if ((st = rb_split_alloc(&s, RB_DATASET_NPY, images_what, images->dtype, n, (int)c, (int)h, (int)w,
                             max_label < 0 ? 1 : max_label + 1)) != RB_OK)
        return st;
    esize = rb_dtype_size(images->dtype);
    if (images->dtype == RB_DTYPE_F32) {
        const float *f = images->data;
        for (int64_t i = 0; i < n * c * h * w; i++) {
            if (!(f[i] >= 0.0f && f[i] <= 1.0f)) {
                rb_split_destroy(s);
                return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                    "%s: value %g in example %" PRId64
                                    " is outside [0, 1]: float32 images must be scaled to [0, 1]",
                                    images_what, (double)f[i], i / (c * h * w));
            }
        }
    }
    if (!nhwc) {
        memcpy(s->images, images->data, (size_t)n * (size_t)(c * h * w) * esize);
    } else {
        const unsigned char *src = images->data;
        unsigned char *dst = s->images;
        const size_t plane = (size_t)(h * w);
        for (int64_t i = 0; i < n; i++) {
            const unsigned char *si = src + (size_t)i * plane * (size_t)c * esize;
            unsigned char *di = dst + (size_t)i * plane * (size_t)c * esize;
            for (size_t p = 0; p < plane; p++)
                for (int64_t ch = 0; ch < c; ch++)
                    memcpy(di + ((size_t)ch * plane + p) * esize, si + (p * (size_t)c + (size_t)ch) * esize, esize);
        }
    }
    for (int64_t i = 0; i < n; i++)
        s->labels[i] = labels->dtype == RB_DTYPE_U8    ? ((const uint8_t *)labels->data)[i]
                       : labels->dtype == RB_DTYPE_I32 ? ((const int32_t *)labels->data)[i]
                                                       : ((const int64_t *)labels->data)[i];
    if ((st = rb_split_set_names(s, NULL)) != RB_OK) {
        rb_split_destroy(s);
        return st;
    }
    *out = s;
    return RB_OK;
}
