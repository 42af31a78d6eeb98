/* robusta/checkpoint.h: the .rbt checkpoint format.
 *
 * A checkpoint is a JSON metadata document plus named tensors, stored
 * compressed with zstd. It is what `robusta train` writes and `robusta
 * import` produces; robusta/model.h gives it meaning (which architecture,
 * which normalization, which training state). This layer only stores and
 * validates bytes, so it is also what a fuzz harness drives
 * (rb_checkpoint_parse).
 *
 * File layout, all integers little-endian:
 *
 *   offset  size  field
 *   0       8     magic "RBTCKPT\0"
 *   8       4     format version, u32 (RB_CHECKPOINT_VERSION; others are refused)
 *   12      4     flags, u32 (0; any other bit is refused)
 *   16      8     header length H, u64 (1 .. RB_CHECKPOINT_MAX_HEADER)
 *   24      4     CRC-32 (zlib's crc32) of the H header bytes, u32
 *   28      4     reserved, u32 (0)
 *   32      H     header: a UTF-8 JSON object
 *                   {"metadata": {...},           free-form object (model.h)
 *                    "tensors": [                 in file order
 *                      {"name":   "layer1.0.conv1.weight",
 *                       "dtype":  "f32" | "bf16" | "u8" | "i32" | "i64",
 *                       "shape":  [64, 64, 3, 3],  0 .. RB_MAX_DIMS dims, each >= 0
 *                       "offset": 0,      of its zstd frame, from the data section start
 *                       "length": 12345,  bytes of the zstd frame
 *                       "crc32":  305419896}  CRC-32 of the uncompressed bytes
 *                    ]}
 *   32+H    ...   data section: one zstd frame per tensor, with the content
 *                 size and zstd's content checksum; frames are contiguous,
 *                 in index order, and the data section ends the file.
 *
 * Readers check, before using anything: the magic, the version and flags,
 * that the header fits in the file and its CRC matches, that the header is
 * strict JSON (RFC 8259 only; well-formed UTF-8; no NUL, not even as
 * \u0000; no key twice in an object; integers that fit 64 bits and other
 * numbers finite; at most 64 nested containers; nothing after the object
 * but whitespace), that the JSON has exactly these fields with these types, unique non-empty names, shapes
 * whose byte size does not overflow, frames that are in bounds, do not
 * overlap and cover the data section exactly, frames whose declared content
 * size equals the tensor's byte size, and, after decompression, zstd's
 * checksum and the CRC-32. Each failure is one line naming the file, the
 * tensor and the check (RB_ERR_CORRUPT; RB_ERR_UNSUPPORTED for a newer
 * version).
 *
 * Writes are atomic: a temporary file in the destination's folder, fsync,
 * rename, fsync of the folder. A failed save leaves the old file intact.
 */
#ifndef ROBUSTA_CHECKPOINT_H
#define ROBUSTA_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <robusta/status.h>
#include <robusta/tensor.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RB_CHECKPOINT_MAGIC "RBTCKPT"
#define RB_CHECKPOINT_VERSION 1u
#define RB_CHECKPOINT_MAX_HEADER (64u << 20)

typedef struct rb_checkpoint rb_checkpoint;

/* One stored tensor. Pointers stay valid until the checkpoint is destroyed
 * or gains a tensor. `data` is NULL for checkpoints loaded with
 * RB_CHECKPOINT_INDEX_ONLY. */
typedef struct rb_checkpoint_tensor {
    const char *name;
    rb_dtype dtype;
    int ndim;
    int64_t shape[RB_MAX_DIMS];
    int64_t numel;
    size_t nbytes;          /* uncompressed */
    const void *data;       /* row-major, nbytes bytes */
    uint64_t offset;        /* of the zstd frame in the data section (loaded files) */
    uint64_t stored_bytes;  /* compressed length (loaded files; 0 before saving) */
    uint32_t crc32;         /* of the uncompressed bytes */
} rb_checkpoint_tensor;

/* An empty checkpoint: metadata "{}" and no tensors. */
RB_API rb_status rb_checkpoint_create(rb_checkpoint **out);
RB_API void rb_checkpoint_destroy(rb_checkpoint *ckpt);

/* Replaces the metadata; `json` must be a JSON object, as strict as the
 * header (see above; RB_ERR_INVALID_ARGUMENT otherwise). */
RB_API rb_status rb_checkpoint_set_metadata(rb_checkpoint *ckpt, const char *json);
/* The metadata as compact JSON text, owned by the checkpoint. */
RB_API const char *rb_checkpoint_metadata(const rb_checkpoint *ckpt);

/* Adds a tensor, copying `data` (numel × dtype size bytes). Names must be
 * unique and non-empty. */
RB_API rb_status rb_checkpoint_add(rb_checkpoint *ckpt, const char *name, rb_dtype dtype, int ndim,
                                   const int64_t *shape, const void *data);

RB_API size_t rb_checkpoint_count(const rb_checkpoint *ckpt);
RB_API rb_status rb_checkpoint_get(const rb_checkpoint *ckpt, size_t index, rb_checkpoint_tensor *out);
/* RB_ERR_NOT_FOUND (naming the checkpoint's closest name) when absent. */
RB_API rb_status rb_checkpoint_find(const rb_checkpoint *ckpt, const char *name, rb_checkpoint_tensor *out);

/* NaN and infinite values of a float tensor (f32 or bf16): counts and the
 * flat index of the first (-1: none). Other dtypes and tensors without
 * data (index-only loads) count none. */
typedef struct rb_nonfinite_count {
    int64_t nan, inf, first;
} rb_nonfinite_count;
RB_API void rb_checkpoint_tensor_nonfinite(const rb_checkpoint_tensor *tensor, rb_nonfinite_count *out);
/* RB_ERR_CORRUPT, naming `what` (NULL: the file it was read from), the
 * first tensor holding a NaN or an infinity, their counts and the first
 * index, when any float tensor does; checksums cannot tell (a diverged run
 * saves NaN faithfully). Models refuse such checkpoints when they load. */
RB_API rb_status rb_checkpoint_check_finite(const rb_checkpoint *ckpt, const char *what);

/* Writes the checkpoint atomically; `level` is zstd's compression level
 * (0: zstd's default, 3). */
RB_API rb_status rb_checkpoint_save(const rb_checkpoint *ckpt, const char *path, int level);

typedef enum rb_checkpoint_flags {
    /* Validate the header and index only; do not decompress (inspect). */
    RB_CHECKPOINT_INDEX_ONLY = 1u << 0
} rb_checkpoint_flags;

/* Reads and validates a file (see the layout above). Without
 * RB_CHECKPOINT_INDEX_ONLY every tensor is decompressed and its checksums
 * verified. */
RB_API rb_status rb_checkpoint_load(rb_checkpoint **out, const char *path, unsigned flags);
/* The same from bytes in memory; `what` names them in messages (a path). */
RB_API rb_status rb_checkpoint_parse(rb_checkpoint **out, const void *bytes, size_t size, const char *what,
                                     unsigned flags);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_CHECKPOINT_H */
