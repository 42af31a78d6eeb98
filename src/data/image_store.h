/* Decoded images of different sizes, decoded when first asked for and kept:
 * the store behind splits whose images stay at their own size (the paper's
 * transform, robusta/data.h). Internal to librobusta (not installed).
 *
 * Opening lists the files and reads each one's size from its header
 * (rb_image_probe), which lays out one block of 8-bit RGB pixels for all
 * of them; nothing is decoded yet. rb_image_store_get decodes an image the
 * first time any thread asks for it, in that thread (the loader's
 * workers), and hands out the kept pixels every later time, so later
 * epochs cost no decoding.
 *
 * The block lives in memory, or, given a cache folder, in a file there,
 * memory-mapped and shared, so the next run (and other processes, MPI
 * ranks) on the same files finds the images decoded. The file is named
 * after the image folder and split; its header says which files it holds
 * (an identity hashed from the robusta version, the store format, and each
 * file's path, size and modification time) and where each image lies. A
 * file whose header does not match what is opened (other files, changed
 * files, another robusta version, a damaged file) is stale: it is rebuilt,
 * never trusted, and the reason is kept for `robusta data` to show.
 *
 * Layout of the file (native byte order; another order reads as stale):
 *   header   rb_image_store_header, 128 bytes
 *   table    count × {u32 height, u32 width, u64 offset}
 *   flags    count bytes: 1 once the image's pixels are in place
 *   pixels   from pixels_offset, each image height × width × 3 at its
 *            offset, one after another in table order
 *
 * Threads: any number may call rb_image_store_get at once. An image asked
 * for by two at once may be decoded twice; both write the same bytes. */
#ifndef RB_DATA_IMAGE_STORE_H
#define RB_DATA_IMAGE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <robusta/status.h>

typedef struct rb_image_store rb_image_store;

#define RB_IMAGE_STORE_MAGIC "RBIMAGES"
#define RB_IMAGE_STORE_FORMAT 1u
#define RB_IMAGE_STORE_ORDER 0x01020304u

typedef struct rb_image_store_header {
    char magic[8];           /* RB_IMAGE_STORE_MAGIC, no NUL */
    uint32_t format;         /* RB_IMAGE_STORE_FORMAT */
    uint32_t order;          /* RB_IMAGE_STORE_ORDER as written */
    char version[32];        /* robusta's version, NUL-padded */
    uint64_t identity;       /* hash of the version, format and each file's path, size and time */
    uint64_t count;          /* images */
    uint64_t table_offset;   /* 128 */
    uint64_t flags_offset;   /* table_offset + 16 count */
    uint64_t pixels_offset;  /* flags_offset + count, rounded up to 64 */
    uint64_t total;          /* the file's size */
    char reserved[32];
} rb_image_store_header;

/* Opens a store of `count` images, paths[i] relative to `base` (copied).
 * cache_dir NULL or "": in memory; else the cache file in that folder (it
 * must exist), reused when its header matches, rebuilt otherwise.
 * `name_key` tells the files of different image sets apart in one folder
 * (the image folder and split). A file that is missing, unreadable or not
 * a PNG or JPEG: one line naming it. `what` names the set in messages. */
rb_status rb_image_store_open(rb_image_store **out, const char *what, const char *base, const char *const *paths,
                              size_t count, const char *cache_dir, const char *name_key);

/* Another owner of `store` (it is freed when the last one releases it). */
rb_image_store *rb_image_store_retain(rb_image_store *store);
void rb_image_store_release(rb_image_store *store);

/* Image k's size (no decoding). */
void rb_image_store_size(const rb_image_store *store, int64_t k, int64_t *height, int64_t *width);

/* Image k's pixels (height × width × 3, RGB interleaved), decoded first if
 * no one has yet. Valid while the store lives. A file that no longer
 * decodes, or decodes to another size than its header said: one line
 * naming it. */
rb_status rb_image_store_get(rb_image_store *store, int64_t k, const uint8_t **pixels, int64_t *height,
                             int64_t *width);

/* What the store holds, for reports: the cache file ("" in memory), images,
 * images decoded so far (by anyone, this run or an earlier one), images
 * this process decoded, and why an existing cache file was rebuilt (""
 * when it was reused or there was none). */
typedef struct rb_image_store_state {
    const char *path;
    int64_t images, ready, decoded_here;
    const char *rebuilt_because;
} rb_image_store_state;
void rb_image_store_state_get(const rb_image_store *store, rb_image_store_state *out);

/* Checks `size` bytes of a cache file against what opening expects (its
 * identity and image count; bytes hold at least the header and table):
 * true when it can be trusted, else false with the reason in `why`. Pure,
 * so fuzzing can drive it. */
bool rb_image_store_check(const void *bytes, size_t size, uint64_t identity, uint64_t count, char *why,
                          size_t why_size);

#endif /* RB_DATA_IMAGE_STORE_H */
