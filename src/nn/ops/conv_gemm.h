/* Convolution gradients by matrix products (conv_gemm.c), for conv.c. */
#ifndef ROBUSTA_NN_OPS_CONV_GEMM_H
#define ROBUSTA_NN_OPS_CONV_GEMM_H

#include "nn/op.h"

/* Plan the image gradient by matmul + col2im where it pays (sets
 * en->image_grad_gemm); dst: the node's output layout. */
rb_status conv_plan_image_grad_gemm(rb_engine *e, enode *en, const dnnl_memory_desc_t *dst);
rb_status conv_image_grad_by_gemm(rb_engine *e, enode *en);
/* Plan the weight gradient by im2col + matmul where oneDNN's
 * backward-weights (bwd_w_pd) is its reference (sets
 * en->weight_grad_gemm); src: the input's layout as the forward reads it. */
rb_status conv_plan_weight_grad_gemm(rb_engine *e, enode *en, const_dnnl_primitive_desc_t bwd_w_pd,
                                     const dnnl_memory_desc_t *src);
/* x: the input memory the forward read. */
rb_status conv_weight_grad_by_gemm(rb_engine *e, enode *en, dnnl_memory_t x);
/* Points the paths' buffers at the shared edge scratch (the op's bind). */
rb_status conv_gemm_bind(rb_engine *e, enode *en);

#endif
