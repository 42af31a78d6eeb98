/* robusta/optim.h: SGD and learning-rate schedules.
 *
 * SGD follows torch.optim.SGD exactly, so that hyper-parameters from the
 * literature mean the same thing here. For each trainable, unfrozen
 * parameter p with gradient g, at learning rate lr:
 *
 *     d = g + weight_decay * p
 *     if momentum != 0:
 *         buf = d                                   (first step)
 *         buf = momentum * buf + (1 - dampening) * d (later steps)
 *         d = nesterov ? d + momentum * buf : buf
 *     p = p - lr * d
 *
 * Frozen parameters and buffers (batch-norm running statistics) are never
 * touched. Momentum buffers are fp32, one per trainable parameter.
 *
 * Schedules give the learning rate at a (possibly fractional) epoch, so that
 * warm-up can advance every step:
 *
 *     constant          lr
 *     step:N:G          lr * G^floor(epoch / N)             (StepLR)
 *     multistep:A,B:G   lr * G^(milestones passed)          (MultiStepLR)
 *     cosine            min + (lr - min) (1 + cos(pi epoch / total)) / 2
 *                                                           (CosineAnnealingLR)
 *     ...+warmup:W      times min(1, epoch / W): a linear rise over the
 *                       first W epochs (trainers ask for the epoch at the
 *                       end of each step, so the first step already moves)
 */
#ifndef ROBUSTA_OPTIM_H
#define ROBUSTA_OPTIM_H

#include <stdbool.h>
#include <stdint.h>
#include <robusta/graph.h>
#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rb_sgd_options {
    double momentum;     /* 0 disables momentum */
    double dampening;
    double weight_decay;
    bool nesterov;       /* needs momentum > 0 and dampening 0, as in PyTorch */
} rb_sgd_options;

typedef struct rb_sgd rb_sgd;

/* An optimizer for the trainable parameters of `graph` (which must outlive
 * it). Options are checked: negative values, or Nesterov without momentum or
 * with dampening, are refused. */
RB_API rb_status rb_sgd_create(rb_sgd **out, rb_graph *graph, const rb_sgd_options *options);
RB_API void rb_sgd_destroy(rb_sgd *sgd);

/* One update at learning rate `lr` from the gradients in the graph's
 * parameters. A non-finite gradient stops the step before any parameter
 * changes, with RB_ERR_NUMERIC naming the parameter. */
RB_API rb_status rb_sgd_step(rb_sgd *sgd, double lr);

/* Steps taken so far. When resuming, restore the momentum buffers and then
 * set the count: with steps > 0, every unfrozen trainable parameter's
 * buffer counts as started, as it was when the run was saved. */
RB_API int64_t rb_sgd_steps(const rb_sgd *sgd);
RB_API void rb_sgd_set_steps(rb_sgd *sgd, int64_t steps);
/* The momentum buffer of parameter `index` (graph order), or NULL for
 * parameters without one (buffers, or momentum 0). */
RB_API float *rb_sgd_momentum_buffer(rb_sgd *sgd, size_t index);

typedef enum rb_schedule_kind {
    RB_SCHEDULE_CONSTANT = 1,
    RB_SCHEDULE_STEP = 2,
    RB_SCHEDULE_MULTISTEP = 3,
    RB_SCHEDULE_COSINE = 4
} rb_schedule_kind;

#define RB_SCHEDULE_MAX_MILESTONES 16

typedef struct rb_schedule {
    rb_schedule_kind kind;
    double base_lr;
    double gamma;                 /* step, multistep */
    int64_t step_epochs;          /* step: decay every this many epochs */
    int64_t milestones[RB_SCHEDULE_MAX_MILESTONES]; /* multistep, increasing */
    int milestone_count;
    double total_epochs;          /* cosine: the period T_max */
    double min_lr;                /* cosine: eta_min */
    double warmup_epochs;         /* 0: no warm-up */
} rb_schedule;

/* Parses "constant", "step:30:0.1", "multistep:30,60,90:0.1", "cosine",
 * each optionally followed by "+warmup:5", for a run of `total_epochs`.
 * Errors quote the text and say what was expected. */
RB_API rb_status rb_schedule_parse(const char *text, double base_lr, double total_epochs,
                                   rb_schedule *out);

/* The learning rate at `epoch` (fractional: epoch + step / steps_per_epoch). */
RB_API double rb_schedule_lr(const rb_schedule *schedule, double epoch);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_OPTIM_H */
