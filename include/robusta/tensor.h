/* robusta/tensor.h: dense tensors as plugins see them.
 *
 * A tensor is a typed, row-major (C order) array of up to RB_MAX_DIMS
 * dimensions; images are N×C×H×W with values in [0, 1]. The engine keeps its
 * own faster layouts internally and hands plugins plain row-major views. The
 * handle is opaque so that the representation can grow (bf16 storage,
 * views) without breaking plugins.
 */
#ifndef ROBUSTA_TENSOR_H
#define ROBUSTA_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RB_MAX_DIMS 8

typedef enum rb_dtype {
    RB_DTYPE_F32 = 1,
    RB_DTYPE_BF16 = 2,
    RB_DTYPE_U8 = 3,
    RB_DTYPE_I32 = 4,
    RB_DTYPE_I64 = 5
} rb_dtype;

typedef struct rb_tensor rb_tensor;

/* A new tensor filled with zeros; its data is 64-byte aligned. Every
 * dimension must be >= 1 (0 is allowed for empty batches). */
RB_API rb_status rb_tensor_create(rb_tensor **out, rb_dtype dtype, int ndim, const int64_t *shape);

/* A tensor over memory the caller owns and keeps alive; destroy frees only
 * the handle. */
RB_API rb_status rb_tensor_wrap(rb_tensor **out, rb_dtype dtype, int ndim, const int64_t *shape,
                                void *data);

RB_API void rb_tensor_destroy(rb_tensor *tensor);

RB_API rb_dtype rb_tensor_dtype(const rb_tensor *tensor);
RB_API int rb_tensor_ndim(const rb_tensor *tensor);
/* Size of dimension `axis`; negative axes count from the end (-1 is last);
 * 0 for an axis out of range. */
RB_API int64_t rb_tensor_dim(const rb_tensor *tensor, int axis);
RB_API int64_t rb_tensor_numel(const rb_tensor *tensor);
RB_API size_t rb_tensor_nbytes(const rb_tensor *tensor);
RB_API void *rb_tensor_data(rb_tensor *tensor);
RB_API const void *rb_tensor_cdata(const rb_tensor *tensor);

/* Bytes per element (2 for bf16); 0 for an unknown dtype. */
RB_API size_t rb_dtype_size(rb_dtype dtype);
/* Writes a shape as "[64, 3, 7, 7]" ("[]" for a scalar) into buf, cut to
 * fit, and returns buf. For messages. */
RB_API const char *rb_shape_format(int ndim, const int64_t *shape, char *buf, size_t size);

/* "f32", "bf16", "u8", "i32", "i64"; "unknown" otherwise. */
RB_API const char *rb_dtype_str(rb_dtype dtype);

/* bfloat16 is the top 16 bits of an IEEE float32: sign, the same 8-bit
 * exponent, 7 stored mantissa bits (8 significant bits, so a rounding
 * error of at most 2^-8 relative). rb_bf16_from_f32 rounds each of the n
 * floats to the nearest bf16, ties to even (as oneDNN and PyTorch do);
 * values beyond the largest bf16 become +-Inf, Inf stays Inf and a NaN
 * stays a (quiet) NaN. rb_bf16_to_f32 is exact: each bf16 is the float
 * whose low 16 bits are zero. `in` and `out` must not overlap. */
RB_API void rb_bf16_from_f32(const float *in, uint16_t *out, size_t n);
RB_API void rb_bf16_to_f32(const uint16_t *in, float *out, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_TENSOR_H */
