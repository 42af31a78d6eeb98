/* robusta/task.h: scoring a model's outputs with its task.
 *
 * A task plugin (robusta/plugin.h) says how raw head outputs become
 * predictions (decode) and how predictions are scored against targets
 * (metrics). A scorer runs both for a model over any number of batches,
 * so that training and evaluation loops need not know what the task
 * predicts:
 *
 *     rb_scorer *sc;
 *     rb_scorer_create(&sc, model);
 *     for each batch:
 *         rb_engine_forward_targets(engine, images, batch, &targets, false);
 *         rb_scorer_add(sc, engine, rows, &targets);   // rows <= batch
 *     rb_scorer_finalize(sc, &score);                 // the primary metric
 *     rb_scorer_metric_count(sc) / rb_scorer_metric(sc, i, &value)
 *     rb_scorer_destroy(sc);
 *
 * The task is the model's head's (rb_model_task). A model with its arch's
 * own classifier is scored by the "classify" task with its defaults, found
 * in the shared registry (rb_registry_shared).
 */
#ifndef ROBUSTA_TASK_H
#define ROBUSTA_TASK_H

#include <stddef.h>
#include <stdint.h>
#include <robusta/engine.h>
#include <robusta/model.h>
#include <robusta/status.h>
#include <robusta/targets.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rb_scorer rb_scorer;

/* A scorer for `model` with empty metrics. Fails with one line when the
 * model has no task and no "classify" task plugin can be found. */
RB_API rb_status rb_scorer_create(rb_scorer **out, const rb_model *model);
RB_API void rb_scorer_destroy(rb_scorer *scorer);

/* The task plugin that scores (the model's, or classify). */
RB_API const rb_plugin *rb_scorer_task(const rb_scorer *scorer);

/* Reads the model's raw outputs from the engine's last forward (which
 * ran the model's graph), decodes the first `rows` images and feeds the
 * predictions with `targets` (whose count is taken as `rows`) to the
 * metrics. A decode that claims more boxes than it had room for is an
 * error naming the plugin file. */
RB_API rb_status rb_scorer_add(rb_scorer *scorer, const rb_engine *engine, int64_t rows,
                               const rb_targets *targets);

/* rb_scorer_add in two halves, for outputs computed elsewhere (another
 * rank of a job scores what this one computed): rb_scorer_read_outputs
 * copies the first `rows` images' raw outputs from the engine's last
 * forward into `out`, rows × rb_scorer_row_floats(scorer) floats (each of
 * the model's outputs in turn, its rows contiguous); rb_scorer_add_outputs
 * decodes and scores such a block as rb_scorer_add would. */
RB_API size_t rb_scorer_row_floats(const rb_scorer *scorer);
RB_API rb_status rb_scorer_read_outputs(rb_scorer *scorer, const rb_engine *engine, int64_t rows, float *out);
RB_API rb_status rb_scorer_add_outputs(rb_scorer *scorer, const float *outputs, int64_t rows,
                                       const rb_targets *targets);

/* The predictions of the last rb_scorer_add, valid until the next call. */
RB_API const rb_predictions *rb_scorer_predictions(const rb_scorer *scorer);

/* Reads the metrics (rb_scorer_metric_count, rb_scorer_metric) and sets
 * *primary (may be NULL) to the task's primary metric; the metrics then
 * start empty again. A task whose finalize omits its primary metric is an
 * error naming the plugin file. */
RB_API rb_status rb_scorer_finalize(rb_scorer *scorer, double *primary);

/* The metrics of the last rb_scorer_finalize: how many, and each one's
 * name (valid until the next finalize or destroy) and value. */
RB_API size_t rb_scorer_metric_count(const rb_scorer *scorer);
RB_API const char *rb_scorer_metric(const rb_scorer *scorer, size_t index, double *value);
/* The value of the metric named `name`; RB_ERR_NOT_FOUND when absent. */
RB_API rb_status rb_scorer_find(const rb_scorer *scorer, const char *name, double *value);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_TASK_H */
