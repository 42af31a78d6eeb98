/* Dense row-major tensors (robusta/tensor.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/tensor.h>

struct rb_tensor {
    rb_dtype dtype;
    int ndim;
    int64_t shape[RB_MAX_DIMS];
    int64_t numel;
    void *data;
    int owns_data;
};

size_t rb_dtype_size(rb_dtype dtype)
{
    switch (dtype) {
    case RB_DTYPE_F32: return 4;
    case RB_DTYPE_BF16: return 2;
    case RB_DTYPE_U8: return 1;
    case RB_DTYPE_I32: return 4;
    case RB_DTYPE_I64: return 8;
    }
    return 0;
}

const char *rb_dtype_str(rb_dtype dtype)
{
    switch (dtype) {
    case RB_DTYPE_F32: return "f32";
    case RB_DTYPE_BF16: return "bf16";
    case RB_DTYPE_U8: return "u8";
    case RB_DTYPE_I32: return "i32";
    case RB_DTYPE_I64: return "i64";
    }
    return "unknown";
}

/* Validates dtype and shape and fills a handle without data. */
static rb_status tensor_header(rb_tensor **out, rb_dtype dtype, int ndim, const int64_t *shape)
{
    rb_tensor *t;
    int64_t numel = 1;

    *out = NULL;
    if (rb_dtype_size(dtype) == 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "tensor: unknown dtype %d", (int)dtype);
    if (ndim < 0 || ndim > RB_MAX_DIMS)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "tensor: %d dimensions; robusta handles 0 to %d", ndim, RB_MAX_DIMS);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "tensor: dimension %d is negative (%lld)",
                                i, (long long)shape[i]);
        if (shape[i] != 0 && numel > INT64_MAX / 8 / shape[i])
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "tensor: shape too large to address");
        numel *= shape[i];
    }
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "tensor: out of memory");
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->numel = numel;
    *out = t;
    return RB_OK;
}

rb_status rb_tensor_create(rb_tensor **out, rb_dtype dtype, int ndim, const int64_t *shape)
{
    rb_tensor *t;
    size_t bytes;
    rb_status s = tensor_header(&t, dtype, ndim, shape);
    if (s != RB_OK)
        return s;
    /* aligned_alloc wants a size that is a multiple of the alignment. */
    bytes = ((size_t)t->numel * rb_dtype_size(dtype) + 63) & ~(size_t)63;
    t->data = aligned_alloc(64, bytes ? bytes : 64);
    if (t->data == NULL) {
        free(t);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "tensor: cannot allocate %zu bytes", bytes);
    }
    memset(t->data, 0, bytes);
    t->owns_data = 1;
    *out = t;
    return RB_OK;
}

rb_status rb_tensor_wrap(rb_tensor **out, rb_dtype dtype, int ndim, const int64_t *shape, void *data)
{
    rb_status s;
    if (data == NULL && ndim > 0) {
        *out = NULL;
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "tensor: wrapping a NULL pointer");
    }
    s = tensor_header(out, dtype, ndim, shape);
    if (s == RB_OK)
        (*out)->data = data;
    return s;
}

void rb_tensor_destroy(rb_tensor *t)
{
    if (t == NULL)
        return;
    if (t->owns_data)
        free(t->data);
    free(t);
}

rb_dtype rb_tensor_dtype(const rb_tensor *t) { return t->dtype; }
int rb_tensor_ndim(const rb_tensor *t) { return t->ndim; }
int64_t rb_tensor_numel(const rb_tensor *t) { return t->numel; }
size_t rb_tensor_nbytes(const rb_tensor *t) { return (size_t)t->numel * rb_dtype_size(t->dtype); }
void *rb_tensor_data(rb_tensor *t) { return t->data; }
const void *rb_tensor_cdata(const rb_tensor *t) { return t->data; }

int64_t rb_tensor_dim(const rb_tensor *t, int axis)
{
    if (axis < 0)
        axis += t->ndim;
    if (axis < 0 || axis >= t->ndim)
        return 0;
    return t->shape[axis];
}

const char *rb_shape_format(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t used;
    if (size == 0)
        return buf;
    used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

/* ------------------------------------------------------------ bfloat16 */

void rb_bf16_from_f32(const float *in, uint16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &in[i], sizeof bits);
        if ((bits & 0x7fffffffu) > 0x7f800000u) {
            out[i] = (uint16_t)((bits >> 16) | 0x0040u); /* NaN: keep the sign, make it quiet */
            continue;
        }
        /* Round to nearest, ties to even: add 0x7fff plus the lowest kept
         * bit, then truncate. A carry into the exponent is the right result
         * (it rounds up to the next binade, or to Inf past the largest). */
        bits += 0x7fffu + ((bits >> 16) & 1u);
        out[i] = (uint16_t)(bits >> 16);
    }
}

void rb_bf16_to_f32(const uint16_t *in, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)in[i] << 16;
        memcpy(&out[i], &bits, sizeof bits);
    }
}
