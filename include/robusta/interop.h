/* robusta/interop.h: reading and writing other tools' tensor files.
 *
 *  - safetensors (https://huggingface.co/docs/safetensors): how PyTorch
 *    state dicts travel; `robusta import` and `robusta export` use it.
 *  - .npy (NumPy's format, version 1.0, 2.0 and 3.0 headers): images,
 *    labels, logits and gradients for `robusta infer` and `robusta attack`.
 *
 * Parsers take bytes and return a validated result, so each can be driven
 * by a fuzz harness; the *_load functions read a file and call them.
 * Everything a parser returns is checked first: header sizes and lengths,
 * that offsets lie inside the file and do not overlap, that every shape's
 * byte size matches its data and does not overflow. A failure is one line
 * naming the file, the tensor or header field, and the problem.
 * Writers are atomic (temporary file, fsync, rename): a failed write never
 * leaves a half-written file in place of a good one.
 */
#ifndef ROBUSTA_INTEROP_H
#define ROBUSTA_INTEROP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <robusta/status.h>
#include <robusta/tensor.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ safetensors */

/* The safetensors header may be at most this long (the format's own limit). */
#define RB_SAFETENSORS_MAX_HEADER (100u << 20)

typedef struct rb_safetensors rb_safetensors;

/* One tensor of a safetensors file. `dtype` is the file's spelling ("F32",
 * "BF16", "I64" ...); every dtype of the spec is accepted by the parser
 * (F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL F8_E4M3 F8_E5M2).
 * `data` points into the parsed bytes: little-endian, row-major, maybe
 * unaligned. */
typedef struct rb_safetensors_tensor {
    const char *name;
    const char *dtype;
    size_t element_size;
    int ndim;
    int64_t shape[RB_MAX_DIMS];
    int64_t numel;
    const void *data;
    size_t nbytes;
} rb_safetensors_tensor;

/* Parses a safetensors file held in memory. The bytes must outlive the
 * result (tensors point into them). `what` names the bytes in messages.
 * The header must be strict JSON, as a checkpoint's (robusta/checkpoint.h),
 * with at most 16 nested containers, padded with whitespace only; a name
 * or field given twice is refused naming it. */
RB_API rb_status rb_safetensors_parse(rb_safetensors **out, const void *bytes, size_t size, const char *what);
/* Reads `path` whole and parses it; the result owns the bytes. */
RB_API rb_status rb_safetensors_load(rb_safetensors **out, const char *path);
RB_API void rb_safetensors_destroy(rb_safetensors *st);

/* Tensors in file order (ascending offset). */
RB_API size_t rb_safetensors_count(const rb_safetensors *st);
RB_API rb_status rb_safetensors_get(const rb_safetensors *st, size_t index, rb_safetensors_tensor *out);
RB_API rb_status rb_safetensors_find(const rb_safetensors *st, const char *name, rb_safetensors_tensor *out);
/* A "__metadata__" string value, or NULL. */
RB_API const char *rb_safetensors_metadata(const rb_safetensors *st, const char *key);

/* Converts a floating tensor (F32, F64, F16, BF16) to float32 into `out`
 * (numel floats); other dtypes give RB_ERR_UNSUPPORTED naming the tensor. */
RB_API rb_status rb_safetensors_to_f32(const rb_safetensors_tensor *tensor, float *out);

/* A tensor to write: f32, bf16, i64, i32 or u8 data, row-major. */
typedef struct rb_safetensors_entry {
    const char *name;
    rb_dtype dtype;
    int ndim;
    const int64_t *shape;
    const void *data;
} rb_safetensors_entry;

/* Writes `count` tensors (names unique) and optional string metadata
 * (metadata_keys/values, metadata_count pairs) atomically to `path`. */
RB_API rb_status rb_safetensors_save(const char *path, const rb_safetensors_entry *entries, size_t count,
                                     const char *const *metadata_keys, const char *const *metadata_values,
                                     size_t metadata_count);

/* ------------------------------------------------------------------- npy */

/* A parsed .npy array: dtype one of f32, u8, i32, i64 (little-endian "<f4",
 * "|u1", "<i4", "<i8"; "<f8" is refused: say float32), C order only. */
typedef struct rb_npy {
    rb_dtype dtype;
    int ndim;
    int64_t shape[RB_MAX_DIMS];
    int64_t numel;
    void *data;      /* 64-byte aligned, owned by the rb_npy */
    size_t nbytes;
} rb_npy;

/* Parses .npy bytes into a new array (data copied out). */
RB_API rb_status rb_npy_parse(rb_npy **out, const void *bytes, size_t size, const char *what);
RB_API rb_status rb_npy_load(rb_npy **out, const char *path);
RB_API void rb_npy_destroy(rb_npy *array);

/* Writes an array (version 1.0 header, C order, little-endian) atomically. */
RB_API rb_status rb_npy_save(const char *path, rb_dtype dtype, int ndim, const int64_t *shape, const void *data);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_INTEROP_H */
