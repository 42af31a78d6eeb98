/* Data-parallel gradient averaging: the gradients of one training step
 * summed across the job's ranks (robusta/dist.h) in buckets, each started
 * as soon as backward has finished every gradient in it, so the sums run
 * while backward computes the rest.
 *
 *     rb_grad_sync_create(&sync, graph, &options);
 *     engine options: .node_backward_done = rb_grad_sync_node_done,
 *                     .node_backward_done_user = sync
 *     per step:
 *         rb_engine_forward_targets(...)          // this rank's share
 *         rb_grad_sync_begin(sync, share, global_batch);
 *         rb_engine_backward(engine, true, false); // buckets start inside
 *         rb_grad_sync_finish(sync);               // waits; grads are global
 *         rb_sgd_step(...)
 *
 * Buckets follow backward's order (the last layers first), the first one
 * small so that the network starts early, and the last one (the first
 * layers, ready only when backward ends, so never hidden) small too, about
 * the first one's size; a bucket's gradients are copied
 * into one buffer, scaled by share / global_batch (each rank's loss is a
 * mean over its share, so the sum is the mean over the global batch), sent
 * as one MPI_Iallreduce and copied back as soon as a test sees it
 * complete (while backward goes on, not in the final wait). MPI moves a
 * nonblocking sum only inside MPI calls: the hook tests the buckets in
 * flight, and where the library grants MPI_THREAD_MULTIPLE
 * (rb_dist_threads_may_call) a thread of the sync also tests them every
 * millisecond while backward computes (RB_GRAD_SYNC_NO_THREAD=1: none).
 *
 * Training drives it (rb_train); a loop of one's own uses it as above, and
 * `robusta bench` under mpirun times it. Every rank must create it on the
 * same graph, with the same parameters trainable, and run the same steps. */
#ifndef ROBUSTA_GRAD_SYNC_H
#define ROBUSTA_GRAD_SYNC_H

#include <stddef.h>

#include <robusta/graph.h>
#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rb_grad_sync_options {
    size_t bucket_bytes;       /* 0: RB_GRAD_SYNC_BUCKET_BYTES */
    size_t first_bucket_bytes; /* 0: bucket_bytes / 16 (RB_GRAD_SYNC_FIRST_BUCKET_BYTES by default) */
} rb_grad_sync_options;

#define RB_GRAD_SYNC_BUCKET_BYTES ((size_t)4 << 20)
#define RB_GRAD_SYNC_FIRST_BUCKET_BYTES ((size_t)256 << 10)

typedef struct rb_grad_sync rb_grad_sync;

/* Buckets over the graph's trainable, unfrozen parameters. */
RB_API rb_status rb_grad_sync_create(rb_grad_sync **out, rb_graph *graph, const rb_grad_sync_options *options);
RB_API void rb_grad_sync_destroy(rb_grad_sync *sync);

/* Before a backward: this rank's examples and the global batch's. */
RB_API void rb_grad_sync_begin(rb_grad_sync *sync, int64_t share, int64_t global_batch);

/* The engine hook (rb_engine_options.node_backward_done). */
RB_API void rb_grad_sync_node_done(void *sync, const rb_node *node);

/* After the backward: starts what is left, waits for every bucket and
 * writes the sums back. Each parameter's gradient is then the gradient of
 * the global batch's mean loss, the same on every rank. */
RB_API rb_status rb_grad_sync_finish(rb_grad_sync *sync);

/* Copies rank 0's buffers (batch-norm running statistics) to the other
 * ranks, as PyTorch's DistributedDataParallel does before each forward:
 * each rank's statistics come from its own part of the batch, and the
 * checkpoint and every evaluation must see one model. */
RB_API rb_status rb_grad_sync_share_buffers(rb_grad_sync *sync);

/* Copies every parameter and buffer value (running statistics too) from
 * rank 0 to the others: the start of a run, and after a resume. */
RB_API rb_status rb_grad_sync_broadcast_values(rb_graph *graph);

/* Counts since creation, for benchmarks: steps finished, seconds from a
 * step's first bucket start to its last completion summed (the reduction
 * time), seconds spent waiting in rb_grad_sync_finish (the part not
 * hidden behind backward), and bytes reduced per step. */
typedef struct rb_grad_sync_stats {
    int64_t steps;
    double reduce_seconds, exposed_seconds;
    size_t bytes_per_step;
    size_t buckets;
    size_t last_bucket_bytes; /* the first layers': it starts only when backward ends */
} rb_grad_sync_stats;

RB_API void rb_grad_sync_get_stats(const rb_grad_sync *sync, rb_grad_sync_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* ROBUSTA_GRAD_SYNC_H */
