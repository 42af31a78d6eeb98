/* The scorer: a task's decode and metrics over a model's outputs
 * (robusta/task.h). */
#include "config.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/registry.h>
#include <robusta/task.h>

#define CLASSIFY_TASK "classify"

struct rb_scorer {
    const rb_plugin *task;
    rb_params *default_params; /* classify's defaults, for a model with its own classifier */
    const rb_params *params;
    const rb_model *model;
    rb_task_target target;
    void *state;
    char who[PATH_MAX + 64];
    /* raw outputs of one engine batch */
    size_t n_outputs;
    int64_t shapes[RB_TASK_MAX_OUTPUTS][3];
    float *outputs[RB_TASK_MAX_OUTPUTS];
    int64_t capacity; /* rows the buffers hold */
    rb_predictions predictions;
    /* the last finalize's metrics */
    rb_metric *metrics;
    char (*names)[64];
    size_t metric_count;
};

static void free_buffers(rb_scorer *sc)
{
    for (size_t i = 0; i < sc->n_outputs; i++) {
        free(sc->outputs[i]);
        sc->outputs[i] = NULL;
    }
    free(sc->predictions.labels);
    free(sc->predictions.masks);
    free(sc->predictions.boxes);
    free(sc->predictions.scores);
    free(sc->predictions.box_counts);
    memset(&sc->predictions, 0, sizeof sc->predictions);
    sc->capacity = 0;
}

void rb_scorer_destroy(rb_scorer *sc)
{
    if (sc == NULL)
        return;
    if (sc->state != NULL)
        sc->task->ops.task->metrics_destroy(sc->state);
    free_buffers(sc);
    rb_params_destroy(sc->default_params);
    free(sc->metrics);
    free(sc->names);
    free(sc);
}

rb_status rb_scorer_create(rb_scorer **out, const rb_model *model)
{
    rb_scorer *sc;
    const rb_model_input *in;
    rb_node *const *nodes;
    const char *file;
    rb_status s;
    *out = NULL;
    if (model == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_scorer_create: no model");
    if ((sc = calloc(1, sizeof *sc)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for a scorer");
    sc->model = model;
    sc->task = rb_model_task(model);
    sc->params = rb_model_task_params(model);
    if (sc->task == NULL) {
        rb_registry *reg = rb_registry_shared();
        if (reg == NULL || rb_registry_find(reg, RB_PLUGIN_TASK, CLASSIFY_TASK, &sc->task) != RB_OK) {
            rb_scorer_destroy(sc);
            return rb_error_set(RB_ERR_NOT_FOUND,
                                "scoring a model with its own classifier needs the '" CLASSIFY_TASK
                                "' task plugin, which is not in RB_PLUGIN_PATH or %s: reinstall robusta",
                                rb_registry_install_dir());
        }
        if ((s = rb_params_create(&sc->default_params, sc->task->params)) != RB_OK) {
            rb_scorer_destroy(sc);
            return s;
        }
        sc->params = sc->default_params;
    }
    file = rb_plugin_path(sc->task);
    snprintf(sc->who, sizeof sc->who, "task %s%s%s%s", sc->task->name, file ? " (" : "", file ? file : "",
             file ? ")" : "");
    in = rb_model_get_input(model);
    sc->target = (rb_task_target){.num_classes = rb_model_num_classes(model), .channels = in->channels,
                                  .height = rb_graph_target_height(rb_model_graph(model)),
                                  .width = rb_graph_target_width(rb_model_graph(model))};
    nodes = rb_model_outputs(model, &sc->n_outputs);
    for (size_t i = 0; i < sc->n_outputs; i++)
        rb_node_shape(nodes[i], &sc->shapes[i][0], &sc->shapes[i][1], &sc->shapes[i][2]);
    if (sc->task->ops.task->dataset_kind == RB_DATASET_CLASSIFICATION && sc->n_outputs >= 1 &&
        (sc->shapes[0][1] != 1 || sc->shapes[0][2] != 1)) {
        rb_scorer_destroy(sc);
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the model's output is %" PRId64 "x%" PRId64 "x%" PRId64
                                                     ", not classes x 1 x 1",
                            sc->who, sc->shapes[0][0], sc->shapes[0][1], sc->shapes[0][2]);
    }
    if ((s = sc->task->ops.task->metrics_create(sc->params, &sc->target, &sc->state)) != RB_OK) {
        rb_error_prefix("%s: ", sc->who);
        rb_scorer_destroy(sc);
        return s;
    }
    *out = sc;
    return RB_OK;
}

const rb_plugin *rb_scorer_task(const rb_scorer *sc) { return sc->task; }
const rb_predictions *rb_scorer_predictions(const rb_scorer *sc) { return &sc->predictions; }

/* Buffers for `rows` images' outputs and predictions. */
static rb_status reserve(rb_scorer *sc, int64_t rows)
{
    rb_predictions *p = &sc->predictions;
    bool ok = true;
    if (rows <= sc->capacity)
        return RB_OK;
    free_buffers(sc);
    for (size_t i = 0; i < sc->n_outputs; i++)
        ok = ok && (sc->outputs[i] = malloc((size_t)rows * (size_t)(sc->shapes[i][0] * sc->shapes[i][1] *
                                                                    sc->shapes[i][2]) * sizeof(float))) != NULL;
    switch (sc->task->ops.task->dataset_kind) {
    case RB_DATASET_CLASSIFICATION: ok = ok && (p->labels = calloc((size_t)rows, sizeof *p->labels)) != NULL; break;
    case RB_DATASET_SEGMENTATION:
        p->mask_height = sc->target.height;
        p->mask_width = sc->target.width;
        ok = ok && (p->masks = calloc((size_t)(rows * p->mask_height * p->mask_width), sizeof *p->masks)) != NULL;
        break;
    case RB_DATASET_DETECTION:
        p->max_boxes = RB_TASK_MAX_DETECTIONS;
        ok = ok && (p->boxes = calloc((size_t)(rows * p->max_boxes), sizeof *p->boxes)) != NULL &&
             (p->scores = calloc((size_t)(rows * p->max_boxes), sizeof *p->scores)) != NULL &&
             (p->box_counts = calloc((size_t)rows, sizeof *p->box_counts)) != NULL;
        break;
    }
    if (!ok) {
        free_buffers(sc);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory for the predictions of %" PRId64 " images",
                            sc->who, rows);
    }
    sc->capacity = rows;
    return RB_OK;
}

/* Decodes the first `rows` images of the outputs in sc->outputs and feeds
 * their predictions to the metrics. */
static rb_status decode_and_score(rb_scorer *sc, int64_t rows, const rb_targets *targets)
{
    const rb_task_ops *ops = sc->task->ops.task;
    rb_targets t;
    rb_status s;
    sc->predictions.count = rows;
    if (sc->predictions.box_counts != NULL)
        memset(sc->predictions.box_counts, 0, (size_t)rows * sizeof *sc->predictions.box_counts);
    if ((s = ops->decode(sc->params, &sc->target, (const float *const *)sc->outputs, (const int64_t(*)[3])sc->shapes,
                         sc->n_outputs, rows, &sc->predictions)) != RB_OK)
        return rb_error_prefix("%s: decode: ", sc->who);
    for (int64_t i = 0; sc->predictions.box_counts != NULL && i < rows; i++)
        if (sc->predictions.box_counts[i] < 0 || sc->predictions.box_counts[i] > sc->predictions.max_boxes)
            return rb_error_set(RB_ERR_PLUGIN,
                                "%s: decode returned %" PRId64 " boxes for image %" PRId64
                                " but was given room for %" PRId64 " (RB_TASK_MAX_DETECTIONS): keep the best %" PRId64,
                                sc->who, sc->predictions.box_counts[i], i, sc->predictions.max_boxes,
                                sc->predictions.max_boxes);
    t = *targets;
    t.count = rows;
    if ((s = ops->metrics_accumulate(sc->state, &sc->predictions, &t)) != RB_OK)
        return rb_error_prefix("%s: metrics: ", sc->who);
    return RB_OK;
}

/* The engine's last outputs into sc->outputs (the whole engine batch). */
static rb_status read_engine(rb_scorer *sc, const rb_engine *engine, int64_t rows, const char *who)
{
    rb_node *const *nodes;
    size_t n;
    rb_status s;
    if (sc == NULL || engine == NULL || rows < 0 || rows > rb_engine_batch(engine))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: needs a scorer, an engine and rows within the engine's batch",
                            who);
    if ((s = reserve(sc, rb_engine_batch(engine))) != RB_OK)
        return s;
    nodes = rb_model_outputs(sc->model, &n);
    for (size_t i = 0; i < n; i++)
        if ((s = rb_engine_read(engine, nodes[i], sc->outputs[i])) != RB_OK)
            return s;
    return RB_OK;
}

rb_status rb_scorer_add(rb_scorer *sc, const rb_engine *engine, int64_t rows, const rb_targets *targets)
{
    rb_status s;
    if (targets == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_scorer_add: needs targets");
    if ((s = read_engine(sc, engine, rows, "rb_scorer_add")) != RB_OK)
        return s;
    return decode_and_score(sc, rows, targets);
}

size_t rb_scorer_row_floats(const rb_scorer *sc)
{
    size_t f = 0;
    for (size_t i = 0; i < sc->n_outputs; i++)
        f += (size_t)(sc->shapes[i][0] * sc->shapes[i][1] * sc->shapes[i][2]);
    return f;
}

rb_status rb_scorer_read_outputs(rb_scorer *sc, const rb_engine *engine, int64_t rows, float *out)
{
    rb_status s = read_engine(sc, engine, rows, "rb_scorer_read_outputs");
    if (s != RB_OK)
        return s;
    for (size_t i = 0; i < sc->n_outputs; i++) {
        size_t part = (size_t)rows * (size_t)(sc->shapes[i][0] * sc->shapes[i][1] * sc->shapes[i][2]);
        memcpy(out, sc->outputs[i], part * sizeof *out);
        out += part;
    }
    return RB_OK;
}

rb_status rb_scorer_add_outputs(rb_scorer *sc, const float *outputs, int64_t rows, const rb_targets *targets)
{
    rb_status s;
    if (sc == NULL || (outputs == NULL && rows > 0) || targets == NULL || rows < 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_scorer_add_outputs: needs a scorer, outputs and targets");
    if ((s = reserve(sc, rows)) != RB_OK)
        return s;
    for (size_t i = 0; i < sc->n_outputs; i++) {
        size_t part = (size_t)rows * (size_t)(sc->shapes[i][0] * sc->shapes[i][1] * sc->shapes[i][2]);
        memcpy(sc->outputs[i], outputs, part * sizeof *outputs);
        outputs += part;
    }
    return decode_and_score(sc, rows, targets);
}

rb_status rb_scorer_finalize(rb_scorer *sc, double *primary)
{
    const rb_task_ops *ops = sc->task->ops.task;
    size_t count = 0, capacity = 64;
    rb_status s;
    void *fresh = NULL;
    bool found = false;
    for (;;) {
        rb_metric *m = realloc(sc->metrics, capacity * sizeof *m);
        if (m == NULL)
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory for metrics", sc->who);
        sc->metrics = m;
        if ((s = ops->metrics_finalize(sc->state, sc->metrics, capacity, &count)) != RB_OK)
            return rb_error_prefix("%s: metrics: ", sc->who);
        if (count < capacity || capacity >= ((size_t)1 << 20))
            break;
        capacity *= 4; /* it may have more: ask again with more room */
    }
    if (count > capacity)
        count = capacity;
    /* names may live in the state, which is made afresh below */
    free(sc->names);
    if ((sc->names = calloc(count ? count : 1, sizeof *sc->names)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory for metrics", sc->who);
    for (size_t i = 0; i < count; i++) {
        snprintf(sc->names[i], sizeof sc->names[i], "%s", sc->metrics[i].name ? sc->metrics[i].name : "?");
        sc->metrics[i].name = sc->names[i];
        if (strcmp(sc->names[i], ops->primary_metric) == 0) {
            found = true;
            if (primary != NULL)
                *primary = sc->metrics[i].value;
        }
    }
    sc->metric_count = count;
    if ((s = ops->metrics_create(sc->params, &sc->target, &fresh)) != RB_OK)
        return rb_error_prefix("%s: ", sc->who);
    ops->metrics_destroy(sc->state);
    sc->state = fresh;
    if (!found)
        return rb_error_set(RB_ERR_PLUGIN, "%s: its metrics do not include its primary metric '%s'", sc->who,
                            ops->primary_metric);
    return RB_OK;
}

size_t rb_scorer_metric_count(const rb_scorer *sc) { return sc->metric_count; }

const char *rb_scorer_metric(const rb_scorer *sc, size_t index, double *value)
{
    if (index >= sc->metric_count)
        return NULL;
    if (value != NULL)
        *value = sc->metrics[index].value;
    return sc->metrics[index].name;
}

rb_status rb_scorer_find(const rb_scorer *sc, const char *name, double *value)
{
    for (size_t i = 0; i < sc->metric_count; i++)
        if (strcmp(sc->metrics[i].name, name) == 0) {
            *value = sc->metrics[i].value;
            return RB_OK;
        }
    return rb_error_set(RB_ERR_NOT_FOUND, "%s reports no metric '%s'", sc->who, name);
}
