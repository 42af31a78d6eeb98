/* What this CPU and this oneDNN build can run: found by asking oneDNN for
 * one small convolution of each kind, once per process, since its kernels
 * (not the instruction set's name) decide. oneDNN 2.x has bf16 and
 * Winograd convolutions only for AVX-512 CPUs; on an AVX2-only CPU both are
 * missing, and robusta says so instead of failing inside a step. */
#include "config.h"

#include <pthread.h>

#include <dnnl.h>

#include <robusta/engine.h>

static pthread_once_t probed = PTHREAD_ONCE_INIT;
static bool has_bf16, has_winograd;

/* A 3x3 convolution, 16 to 16 channels, 8x8, batch 2: within what both
 * kernels accept wherever they exist. */
static bool convolution_exists(dnnl_engine_t eng, dnnl_data_type_t dt, dnnl_alg_kind_t alg)
{
    dnnl_memory_desc_t src, wei, dst;
    dnnl_dims_t src_dims = {2, 16, 8, 8}, wei_dims = {16, 16, 3, 3}, dst_dims = {2, 16, 8, 8};
    dnnl_dims_t strides = {1, 1}, dil = {0, 0}, pad = {1, 1};
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd = NULL;
    bool exists;
    if (dnnl_memory_desc_init_by_tag(&src, 4, src_dims, dt, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&wei, 4, wei_dims, dt, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dst, 4, dst_dims, dt, dnnl_format_tag_any) != dnnl_success ||
        dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_training, alg, &src, &wei, NULL, &dst, strides,
                                                   dil, pad, pad) != dnnl_success)
        return false;
    exists = dnnl_primitive_desc_create(&pd, &cd, NULL, eng, NULL) == dnnl_success;
    if (pd != NULL)
        dnnl_primitive_desc_destroy(pd);
    return exists;
}

static void probe(void)
{
    dnnl_engine_t eng = NULL;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success)
        return; /* rb_engine_create reports that itself */
    has_bf16 = convolution_exists(eng, dnnl_bf16, dnnl_convolution_direct);
    has_winograd = convolution_exists(eng, dnnl_f32, dnnl_convolution_winograd);
    dnnl_engine_destroy(eng);
}

bool rb_precision_available(rb_precision precision)
{
    pthread_once(&probed, probe);
    return precision == RB_PRECISION_F32 || precision == RB_PRECISION_AUTO ||
           (precision == RB_PRECISION_BF16 && has_bf16);
}

bool rb_conv_algorithm_available(rb_conv_algorithm algorithm)
{
    pthread_once(&probed, probe);
    return algorithm == RB_CONV_DIRECT || (algorithm == RB_CONV_WINOGRAD && has_winograd);
}
