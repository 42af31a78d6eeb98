/* robusta/reference.h: a slow, obvious, double-precision executor.
 *
 * It runs a graph with plain loops in double precision, one op at a time,
 * exactly as the semantics in robusta/graph.h describe. It exists to check
 * faster engines (and new ops or heads) against: robusta's own tests compare
 * the oneDNN engine with it, and it is checked itself against central finite
 * differences. It is far too slow for training.
 *
 *     rb_reference *ref;
 *     rb_reference_create(&ref, graph, batch);
 *     rb_reference_forward(ref, images, labels, false);   // inference mode
 *     rb_reference_backward(ref, true, true);             // d mean loss
 *     const double *dx = rb_reference_input_grad(ref);
 *
 * Parameters are read from the graph (fp32) at every forward; a training
 * forward updates the graph's batch-norm running statistics as PyTorch does.
 */
#ifndef ROBUSTA_REFERENCE_H
#define ROBUSTA_REFERENCE_H

#include <stdbool.h>
#include <stdint.h>
#include <robusta/graph.h>
#include <robusta/targets.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rb_reference rb_reference;

RB_API rb_status rb_reference_create(rb_reference **out, rb_graph *graph, int64_t batch);
RB_API void rb_reference_destroy(rb_reference *ref);

/* images: batch × C × H × W (row-major), labels: one per example for the
 * loss node (NULL when the graph has none). training: batch-norm uses batch
 * statistics and updates the running ones. */
RB_API rb_status rb_reference_forward(rb_reference *ref, const double *images,
                                      const int64_t *labels, bool training);
/* The same with any targets (masks and boxes read where they lie: keep
 * them until the backward that follows). */
RB_API rb_status rb_reference_forward_targets(rb_reference *ref, const double *images,
                                              const rb_targets *targets, bool training);

/* Backward from the objective: the mean over the batch of the sum of the
 * graph's losses. weight_grads: gradients of trainable, unfrozen parameters;
 * input_grad: the gradient with respect to the images. */
RB_API rb_status rb_reference_backward(rb_reference *ref, bool weight_grads, bool input_grad);

/* Backward from an arbitrary node, seeding its gradient with `seed` (batch ×
 * its shape): checks single ops without a loss. */
RB_API rb_status rb_reference_backward_from(rb_reference *ref, const rb_node *node,
                                            const double *seed, bool weight_grads,
                                            bool input_grad);

/* A node's output and gradient (batch × C × H × W), valid until the next
 * forward or backward. The gradient is NULL before a backward. */
RB_API const double *rb_reference_value(const rb_reference *ref, const rb_node *node);
RB_API const double *rb_reference_node_grad(const rb_reference *ref, const rb_node *node);
/* The gradient of parameter `index` (graph order); NULL for buffers and
 * frozen parameters, or when weight gradients were not asked for. */
RB_API const double *rb_reference_param_grad(const rb_reference *ref, size_t index);
RB_API const double *rb_reference_input_grad(const rb_reference *ref);
/* Mean loss of the last forward (NaN if the graph has no loss). */
RB_API double rb_reference_loss(const rb_reference *ref);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_REFERENCE_H */
