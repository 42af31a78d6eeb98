/* What the convolution files share: conv.c (plans and runs), conv_gemm.c
 * (gradients by matrix products) and conv_tune.c (choosing kernels by
 * measurement). */
#ifndef ROBUSTA_NN_OPS_CONV_INTERNAL_H
#define ROBUSTA_NN_OPS_CONV_INTERNAL_H

#include "nn/op.h"

/* ------------------------------------------------------------ oneDNN descriptors (conv.c) */

/* A convolution (or a linear layer as one) as oneDNN is asked for it, in
 * data type dt: memory descriptors "any" for oneDNN to choose, the plain
 * fp32 weights and bias of the graph, and the geometry. */
typedef struct conv_shape {
    rb_conv_desc linear_as_conv; /* a linear layer: the kernel the size of its input */
    const rb_conv_desc *d;
    dnnl_data_type_t dt;
    bool has_bias;
    dnnl_memory_desc_t src, wei, dst, bias, user_w;
    dnnl_dims_t strides, dil, pad, pad_r;
} conv_shape;

void conv_shape_init(const rb_engine *e, const rb_node *n, dnnl_data_type_t dt, conv_shape *cs);
/* Whether oneDNN's Winograd kernels are written for this shape. */
bool conv_winograd_fits(const rb_node *n, dnnl_data_type_t dt);
/* The primitive descriptors of each pass: Winograd when asked and oneDNN
 * has it (within the scratchpad limit), else direct. */
rb_status conv_forward_pd(const rb_engine *e, const rb_node *n, const conv_shape *cs, rb_conv_algorithm algorithm,
                          dnnl_primitive_desc_t *out);
rb_status conv_backward_data_pd(const rb_engine *e, const rb_node *n, const conv_shape *cs,
                                rb_conv_algorithm algorithm, const dnnl_memory_desc_t *diff_dst,
                                const_dnnl_primitive_desc_t fwd_pd, dnnl_primitive_desc_t *out);
rb_status conv_backward_weights_pd(const rb_engine *e, const rb_node *n, const conv_shape *cs,
                                   rb_conv_algorithm algorithm, const dnnl_memory_desc_t *src,
                                   const dnnl_memory_desc_t *diff_dst, const_dnnl_primitive_desc_t fwd_pd,
                                   dnnl_primitive_desc_t *out);

/* ------------------------------------------------------------ choosing kernels (conv_tune.c) */

/* Sets en->choice (and en->tune_source): the static rules of the engine's
 * options, or, when the engine tunes, the choice of the caller's plan, the
 * cache, or a measurement of the candidates (robusta/tune.h). */
rb_status conv_choose(rb_engine *e, enode *en);

/* ------------------------------------------------------------ gradients by matrix products (conv_gemm.c) */

/* Plan the image gradient by matmul + col2im where it pays (sets
 * en->image_grad_gemm); dst: the node's output layout. */
rb_status conv_plan_image_grad_gemm(rb_engine *e, enode *en, const dnnl_memory_desc_t *dst);
rb_status conv_image_grad_by_gemm(rb_engine *e, enode *en);
/* The static rule: the weight gradient by im2col + matmul where oneDNN's
 * backward-weights (bwd_w_pd) is its reference. */
bool conv_weight_grad_rule_gemm(const_dnnl_primitive_desc_t bwd_w_pd);
/* Whether the im2col + matmul weight gradient can run for these layouts
 * of the input (src) and the node's gradient (dy): ungrouped, images kept
 * apart. */
bool conv_wgemm_fits(const rb_engine *e, const rb_node *n, const dnnl_memory_desc_t *src,
                     const dnnl_memory_desc_t *dy);
/* Its reorders and memories (conv_wgemm_free releases them); the scratch
 * it runs in is w->x_bytes + w->dy_bytes + w->cols_bytes. */
rb_status conv_wgemm_init(rb_engine *e, const rb_node *n, const dnnl_memory_desc_t *src,
                          const dnnl_memory_desc_t *dy, struct conv_wgemm *w);
void conv_wgemm_free(struct conv_wgemm *w);
/* One batch's weight (and, db not NULL, bias) gradient from the input at
 * x_base and the node's gradient at dy_base, written or (accumulate) added. */
rb_status conv_wgemm_run(rb_engine *e, const rb_node *n, const struct conv_wgemm *w, const void *x_base,
                         const void *dy_base, unsigned char *scratch, dnnl_memory_t scratchpad, float *dw, float *db,
                         bool accumulate);
/* Plan the weight gradient by im2col + matmul where en->choice (or the
 * static rule) asks for it (sets en->weight_grad_gemm); src: the input's
 * layout as the forward reads it. */
rb_status conv_plan_weight_grad_gemm(rb_engine *e, enode *en, const_dnnl_primitive_desc_t bwd_w_pd,
                                     const dnnl_memory_desc_t *src);
/* x: the input memory the forward read. */
rb_status conv_weight_grad_by_gemm(rb_engine *e, enode *en, dnnl_memory_t x);
/* Points the image gradient's buffers at the shared edge scratch (the op's bind). */
rb_status conv_gemm_bind(rb_engine *e, enode *en);

#endif
