/* Evaluation: clean and robust accuracy of a model on a split (rb_evaluate,
 * rb_evaluate_robust), the loop training shares, and opening a split in a
 * model's geometry. */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiment/train_internal.h"

static rb_status eval_alloc(rb_eval_result *r, int64_t classes)
{
    memset(r, 0, sizeof *r);
    r->classes = classes;
    r->class_count = calloc((size_t)(classes > 0 ? classes : 1), sizeof *r->class_count);
    r->class_correct = calloc((size_t)(classes > 0 ? classes : 1), sizeof *r->class_correct);
    r->class_robust_correct = calloc((size_t)(classes > 0 ? classes : 1), sizeof *r->class_robust_correct);
    if (r->class_count == NULL || r->class_correct == NULL || r->class_robust_correct == NULL) {
        rb_eval_result_free(r);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for per-class accuracy");
    }
    return RB_OK;
}

void rb_eval_result_free(rb_eval_result *r)
{
    if (r == NULL)
        return;
    free(r->class_count);
    free(r->class_correct);
    free(r->class_robust_correct);
    free(r->metrics);
    free(r->robust_metrics);
    free(r->stage_fooled);
    r->stage_fooled = NULL;
    r->stage_count = 0;
    r->class_count = r->class_correct = r->class_robust_correct = NULL;
    r->metrics = r->robust_metrics = NULL;
    r->metric_count = r->robust_metric_count = 0;
}

rb_status train_check_attackable(const rb_model *model, const char *what)
{
    const rb_plugin *task = rb_model_task(model);
    if (task != NULL && task->ops.task->dataset_kind != RB_DATASET_CLASSIFICATION)
        return rb_error_set(RB_ERR_UNSUPPORTED,
                            "%s: attacks need a classification task, but task %s predicts %s; evaluate it without "
                            "--attack",
                            what, task->name,
                            task->ops.task->dataset_kind == RB_DATASET_SEGMENTATION ? "masks" : "boxes");
    return RB_OK;
}

/* The batch's targets: the split's labels, and its masks and boxes when it
 * has them, for rows [first, first + rows) of an engine batch of `batch`
 * (padding rows: label 0, masks ignored, no boxes). */
typedef struct eval_targets {
    int64_t *labels, *box_offsets;
    int32_t *masks;
    rb_box *boxes;
    int64_t max_boxes, mask_pixels;
    rb_targets targets;
} eval_targets;

static void eval_targets_free(eval_targets *t)
{
    free(t->labels);
    free(t->box_offsets);
    free(t->masks);
    free(t->boxes);
}

static rb_status eval_targets_alloc(eval_targets *t, const rb_split *split, int64_t batch)
{
    rb_targets stored;
    int h, w;
    bool ok;
    memset(t, 0, sizeof *t);
    rb_split_stored_targets(split, &stored);
    rb_split_mask_shape(split, &h, &w);
    ok = (t->labels = calloc((size_t)batch, sizeof *t->labels)) != NULL;
    if (stored.masks != NULL) {
        t->mask_pixels = (int64_t)h * w;
        ok = ok && (t->masks = malloc((size_t)(batch * t->mask_pixels) * sizeof *t->masks)) != NULL;
    }
    if (stored.boxes != NULL) {
        t->max_boxes = rb_split_max_boxes(split);
        ok = ok && (t->boxes = calloc((size_t)(batch * (t->max_boxes > 0 ? t->max_boxes : 1)), sizeof *t->boxes)) != NULL &&
             (t->box_offsets = calloc((size_t)batch + 1, sizeof *t->box_offsets)) != NULL;
    }
    if (!ok) {
        eval_targets_free(t);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for evaluation targets");
    }
    t->targets = (rb_targets){.count = batch, .labels = t->labels, .masks = t->masks,
                              .mask_height = t->masks ? h : 0, .mask_width = t->masks ? w : 0,
                              .boxes = t->boxes, .box_offsets = t->box_offsets};
    return RB_OK;
}

static rb_status eval_targets_fill(eval_targets *t, const rb_split *split, int64_t first, int64_t rows, int64_t batch)
{
    const int64_t *all = rb_split_labels(split);
    int64_t used = 0;
    rb_status s = RB_OK;
    memset(t->labels, 0, (size_t)batch * sizeof *t->labels);
    for (int64_t r = 0; r < rows; r++)
        t->labels[r] = all[first + r];
    if (t->masks == NULL && t->boxes == NULL)
        return RB_OK;
    for (int64_t r = 0; s == RB_OK && r < batch; r++) {
        int64_t n = 0;
        if (t->box_offsets != NULL)
            t->box_offsets[r] = used;
        if (r >= rows) {
            for (int64_t i = 0; t->masks != NULL && i < t->mask_pixels; i++)
                t->masks[r * t->mask_pixels + i] = RB_IGNORE_LABEL;
            continue;
        }
        s = rb_split_example_targets(split, first + r, NULL, 0, 0, t->masks ? t->masks + r * t->mask_pixels : NULL,
                                     t->boxes ? t->boxes + used : NULL, t->boxes ? &n : NULL);
        used += n;
    }
    if (t->box_offsets != NULL)
        t->box_offsets[batch] = used;
    return s;
}

/* Copies a scorer's metrics into the result. */
static rb_status keep_metrics(const rb_scorer *sc, rb_eval_metric **out, size_t *count)
{
    size_t n = rb_scorer_metric_count(sc);
    *out = calloc(n ? n : 1, sizeof **out);
    if (*out == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for metrics");
    for (size_t i = 0; i < n; i++) {
        const char *name = rb_scorer_metric(sc, i, &(*out)[i].value);
        snprintf((*out)[i].name, sizeof (*out)[i].name, "%s", name);
    }
    *count = n;
    return RB_OK;
}

/* Classification's right answers per class, from the task's
 * class_accuracy.K metrics and the split's class counts (exact: a fraction
 * of two counts below 2^52, times the denominator, rounds to the
 * numerator). */
static void class_correct_from_metrics(const rb_scorer *sc, const int64_t *class_count, int64_t classes,
                                       int64_t *class_correct)
{
    for (int64_t k = 0; k < classes; k++) {
        char name[48];
        double v;
        snprintf(name, sizeof name, "class_accuracy.%lld", (long long)k);
        class_correct[k] = class_count[k] > 0 && rb_scorer_find(sc, name, &v) == RB_OK
                               ? (int64_t)llround(v * (double)class_count[k])
                               : 0;
    }
    rb_error_clear();
}

/* Evaluates with an engine already planned (its batch is the batch); with an
 * attack, robust metrics too. */
rb_status train_evaluate_with(rb_engine *engine, rb_model *model, const rb_split *split, const eval_attack *atk,
                              rb_eval_result *out)
{
    return train_evaluate_into(engine, model, split, atk, NULL, out);
}

/* The batches of an evaluation are dealt to the job's ranks in turn
 * (batch k to rank k mod N); each rank sends rank 0 what its batch gave,
 * its per-image losses and raw outputs (clean, then attacked), and rank
 * 0 scores every batch in order, as one process would: the metrics are
 * exact (counts, not averages of averages; COCO AP over all detections).
 * One rank sends itself the same way, so every run takes this path. */
typedef struct eval_share {
    int64_t batch, n, floats; /* images per batch, in the split, raw output floats per image */
    bool robust, staged;      /* staged: one more float per image, the stage that fooled it */
} eval_share;

/* Rows of batch k, and the floats a rank sends for it. */
static int64_t share_rows(const eval_share *e, int64_t k)
{
    int64_t first = k * e->batch;
    return first >= e->n ? 0 : (e->n - first < e->batch ? e->n - first : e->batch);
}
static size_t share_floats(const eval_share *e, int64_t rows)
{
    return (size_t)rows * (size_t)(1 + e->floats * (e->robust ? 2 : 1) + (e->staged ? 1 : 0));
}

rb_status train_evaluate_into(rb_engine *engine, rb_model *model, const rb_split *split, const eval_attack *atk,
                              const eval_sink *sink, rb_eval_result *out)
{
    int64_t batch = rb_engine_batch(engine), n = rb_split_count(split);
    const int rank = rb_dist_rank(), ranks = rb_dist_size();
    size_t per = rb_split_example_size(split);
    float *images = calloc((size_t)batch * per, sizeof *images);
    const int64_t *all = rb_split_labels(split);
    bool staged = atk != NULL && atk->plugin == NULL && atk->stages != NULL;
    bool robust = atk != NULL && (atk->plugin != NULL || staged);
    float *adv = robust ? calloc((size_t)batch * per, sizeof *adv) : NULL;
    float *mine = NULL, *got = NULL;
    size_t *bytes = calloc((size_t)ranks, sizeof *bytes);
    rb_attacker *attacker = NULL;
    rb_scorer *clean = NULL, *attacked = NULL;
    eval_targets t = {0};
    eval_share e = {.batch = batch, .n = n, .robust = robust, .staged = staged};
    int *fooled_by = staged ? calloc((size_t)batch, sizeof *fooled_by) : NULL;
    double loss_sum = 0, score = 0, robust_score = 0;
    rb_status s = eval_alloc(out, rb_split_classes(split));
    bool held = rb_engine_hold_weights(engine, true); /* the model is fixed for the whole pass */

    if (s == RB_OK)
        s = eval_targets_alloc(&t, split, batch);
    if (s == RB_OK)
        s = rb_scorer_create(&clean, model);
    if (s == RB_OK && robust && (s = train_check_attackable(model, "robust evaluation")) == RB_OK &&
        (s = rb_scorer_create(&attacked, model)) == RB_OK)
        s = rb_attacker_create(&attacker, engine, model);
    if (s == RB_OK) {
        e.floats = (int64_t)rb_scorer_row_floats(clean);
        mine = malloc(share_floats(&e, batch) * sizeof *mine);
        got = rank == 0 ? malloc((size_t)ranks * share_floats(&e, batch) * sizeof *got) : NULL;
        if (mine == NULL || (rank == 0 && got == NULL) || bytes == NULL)
            s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for evaluation outputs");
    }
    if (s == RB_OK && robust && (adv == NULL || (staged && fooled_by == NULL)))
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for adversarial images");
    if (s == RB_OK && staged &&
        (out->stage_fooled = calloc(atk->stage_count ? atk->stage_count : 1, sizeof *out->stage_fooled)) == NULL)
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the stages' counts");
    if (s == RB_OK && staged)
        out->stage_count = atk->stage_count;
    if (s == RB_OK && images == NULL)
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for evaluation batches");
    for (int64_t round = 0; s == RB_OK && round * batch * ranks < n; round++) {
        const int64_t k = round * ranks + rank, first = k * batch, rows = share_rows(&e, k);
        float *at = mine;
        /* this rank's batch: losses, clean outputs, attacked outputs */
        if (rows > 0) {
            const float *losses;
            memset(images, 0, (size_t)batch * per * sizeof *images);
            for (int64_t r = 0; s == RB_OK && r < rows; r++)
                s = rb_split_example(split, first + r, NULL, 0, 0, images + (size_t)r * per);
            if (s != RB_OK || (s = eval_targets_fill(&t, split, first, rows, batch)) != RB_OK ||
                (s = rb_engine_forward_targets(engine, images, batch, &t.targets, false)) != RB_OK)
                break;
            losses = rb_engine_losses(engine);
            memcpy(at, losses, (size_t)rows * sizeof *at);
            at += rows;
            if ((s = rb_scorer_read_outputs(clean, engine, rows, at)) != RB_OK)
                break;
            at += (size_t)rows * (size_t)e.floats;
            if (robust) {
                memset(adv, 0, (size_t)batch * per * sizeof *adv);
                if (staged)
                    s = rb_attacker_run_stages(attacker, atk->stages, atk->stage_count, images, t.labels, rows, first,
                                               adv, fooled_by);
                else {
                    rb_attack_options o = *atk->options;
                    o.first_example = first;
                    s = rb_attacker_run(attacker, atk->plugin, atk->params, &o, images, t.labels, rows, adv, NULL,
                                        NULL);
                }
                if (s != RB_OK || (s = rb_engine_forward_targets(engine, adv, batch, &t.targets, false)) != RB_OK ||
                    (s = rb_scorer_read_outputs(attacked, engine, rows, at)) != RB_OK)
                    break;
                at += (size_t)rows * (size_t)e.floats;
                for (int64_t r = 0; staged && r < rows; r++)
                    *at++ = (float)fooled_by[r];
            }
        }
        for (int r = 0; r < ranks; r++)
            bytes[r] = share_floats(&e, share_rows(&e, round * ranks + r)) * sizeof(float);
        if ((s = rb_dist_gather(mine, bytes, got)) != RB_OK || rank != 0)
            continue;
        /* rank 0 scores the round's batches in order */
        at = got;
        for (int r = 0; s == RB_OK && r < ranks; r++) {
            const int64_t kb = round * ranks + r, fb = kb * batch, rb = share_rows(&e, kb);
            if (rb == 0)
                break;
            if ((s = eval_targets_fill(&t, split, fb, rb, batch)) != RB_OK)
                break;
            for (int64_t i = 0; i < rb; i++) {
                loss_sum += at[i];
                out->class_count[all[fb + i]]++;
            }
            at += rb;
            if ((s = rb_scorer_add_outputs(clean, at, rb, &t.targets)) != RB_OK ||
                (sink != NULL && (s = sink->write(sink->user, split, fb, rb, rb_scorer_predictions(clean))) != RB_OK))
                break;
            at += (size_t)rb * (size_t)e.floats;
            if (robust) {
                if ((s = rb_scorer_add_outputs(attacked, at, rb, &t.targets)) != RB_OK)
                    break;
                at += (size_t)rb * (size_t)e.floats;
                for (int64_t i = 0; staged && i < rb; i++, at++)
                    if (*at >= 0 && (size_t)*at < out->stage_count)
                        out->stage_fooled[(size_t)*at]++;
            }
        }
    }
    /* rank 0 alone scored, so it alone finalizes */
    if (s == RB_OK && rank == 0 && (s = rb_scorer_finalize(clean, &score)) == RB_OK)
        s = keep_metrics(clean, &out->metrics, &out->metric_count);
    if (s == RB_OK && rank == 0 && robust && (s = rb_scorer_finalize(attacked, &robust_score)) == RB_OK)
        s = keep_metrics(attacked, &out->robust_metrics, &out->robust_metric_count);
    if (s == RB_OK) {
        out->score_name = rb_scorer_task(clean)->ops.task->primary_metric;
        out->count = n;
        out->robust = robust;
    }
    if (s == RB_OK && rank == 0) {
        out->accuracy = score;
        out->robust_accuracy = robust ? robust_score : 0;
        out->mean_loss = n > 0 ? loss_sum / (double)n : 0;
        class_correct_from_metrics(clean, out->class_count, out->classes, out->class_correct);
        for (int64_t k = 0; k < out->classes; k++)
            out->correct += out->class_correct[k];
        if (robust) {
            class_correct_from_metrics(attacked, out->class_count, out->classes, out->class_robust_correct);
            for (int64_t k = 0; k < out->classes; k++)
                out->robust_correct += out->class_robust_correct[k];
        }
    }
    /* every rank holds rank 0's scores (the metrics list stays rank 0's) */
    if (s == RB_OK && ranks > 1) {
        double scalars[3] = {out->accuracy, out->robust_accuracy, out->mean_loss};
        size_t classes = (size_t)out->classes;
        if ((s = rb_dist_broadcast(scalars, sizeof scalars, 0)) == RB_OK &&
            (s = rb_dist_broadcast(out->class_count, classes * sizeof *out->class_count, 0)) == RB_OK &&
            (s = rb_dist_broadcast(out->class_correct, classes * sizeof *out->class_correct, 0)) == RB_OK &&
            (s = rb_dist_broadcast(out->class_robust_correct, classes * sizeof *out->class_robust_correct, 0)) ==
                RB_OK &&
            (!staged || (s = rb_dist_broadcast(out->stage_fooled, out->stage_count * sizeof *out->stage_fooled, 0)) ==
                            RB_OK)) {
            out->accuracy = scalars[0];
            out->robust_accuracy = scalars[1];
            out->mean_loss = scalars[2];
            out->correct = out->robust_correct = 0;
            for (int64_t k = 0; k < out->classes; k++) {
                out->correct += out->class_correct[k];
                out->robust_correct += out->class_robust_correct[k];
            }
        }
    }
    free(images);
    free(adv);
    free(fooled_by);
    free(mine);
    free(got);
    free(bytes);
    eval_targets_free(&t);
    rb_scorer_destroy(clean);
    rb_scorer_destroy(attacked);
    rb_attacker_destroy(attacker);
    rb_engine_hold_weights(engine, held);
    if (s != RB_OK)
        rb_eval_result_free(out);
    return s;
}

rb_status train_check_task_targets(const rb_plugin *task, const rb_split *split)
{
    rb_targets stored;
    if (task == NULL)
        return RB_OK;
    rb_split_stored_targets(split, &stored);
    if (task->ops.task->dataset_kind == RB_DATASET_SEGMENTATION && stored.masks == NULL)
        return train_invalid("task %s needs per-pixel masks but %s has none: give a dataset with masks",
                             task->name, rb_split_name(split));
    if (task->ops.task->dataset_kind == RB_DATASET_DETECTION && stored.boxes == NULL)
        return train_invalid("task %s needs boxes but %s has none: give a dataset with boxes", task->name,
                             rb_split_name(split));
    return RB_OK;
}

rb_status train_check_targets(const rb_model *model, const rb_split *split)
{
    return train_check_task_targets(rb_model_task(model), split);
}

rb_status train_check_eval_shapes(const rb_model *model, const rb_split *split)
{
    rb_status s = train_check_targets(model, split);
    if (s != RB_OK)
        return s;
    const rb_model_input *in = rb_model_get_input(model);
    int c, h, w;
    rb_split_shape(split, &c, &h, &w);
    if (c != in->channels || h != in->height || w != in->width)
        return train_invalid("%s gives %d x %d x %d images but the model takes %lld x %lld x %lld",
                             rb_split_name(split), c, h, w, (long long)in->channels, (long long)in->height,
                             (long long)in->width);
    if (rb_split_classes(split) > rb_model_num_classes(model))
        return train_invalid("%s has %lld classes but the model has %lld (choose classes with --classes)",
                             rb_split_name(split), (long long)rb_split_classes(split),
                             (long long)rb_model_num_classes(model));
    if (rb_split_count(split) == 0)
        return train_invalid("%s holds no examples", rb_split_name(split));
    return RB_OK;
}

rb_status train_evaluate_model(rb_model *model, const rb_split *split, int64_t batch,
                               const rb_engine_options *options, const eval_attack *atk, const eval_sink *sink,
                               rb_eval_result *out)
{
    rb_engine *engine = NULL;
    rb_engine_options eo = options ? *options : (rb_engine_options){0};
    rb_node *outputs[RB_MODEL_ENGINE_OUTPUTS];
    rb_status s;
    if (model == NULL || split == NULL || out == NULL || batch < 1)
        return train_invalid("rb_evaluate: needs a model, a split, a result and a batch >= 1");
    if (eo.n_outputs == 0) {
        eo.outputs = outputs;
        eo.n_outputs = rb_model_engine_outputs(model, outputs);
    }
    memset(out, 0, sizeof *out);
    eo.data_grads_only = true;
    if (atk != NULL && atk->plugin != NULL && (s = rb_attack_check(atk->plugin, atk->options)) != RB_OK)
        return s;
    for (size_t k = 0; atk != NULL && atk->plugin == NULL && k < atk->stage_count; k++)
        if ((s = rb_attack_check(atk->stages[k].plugin, &atk->stages[k].options)) != RB_OK)
            return rb_error_prefix("stage %zu: ", k + 1);
    if (atk != NULL && (s = train_check_attackable(model, "robust evaluation")) != RB_OK)
        return s;
    if ((s = train_check_eval_shapes(model, split)) != RB_OK)
        return s;
    if (batch > rb_split_count(split))
        batch = rb_split_count(split);
    if ((s = rb_model_check_memory(model, &eo, &(rb_memory_engine){batch, true}, 1,
                                   (uint64_t)batch * rb_split_example_size(split) * 2 * sizeof(float),
                                   "lower --batch-size")) != RB_OK ||
        (s = rb_engine_create(&engine, rb_model_graph(model), batch, &eo)) != RB_OK)
        return s;
    s = train_evaluate_into(engine, model, split, atk, sink, out);
    rb_engine_destroy(engine);
    return s;
}

rb_status rb_evaluate(rb_model *model, const rb_split *split, int64_t batch, const rb_engine_options *engine,
                      rb_eval_result *out)
{
    return train_evaluate_model(model, split, batch, engine, NULL, NULL, out);
}

rb_status rb_evaluate_robust(rb_model *model, const rb_split *split, int64_t batch, const rb_engine_options *engine,
                             const rb_plugin *plugin, const rb_params *params, const rb_attack_options *options,
                             rb_eval_result *out)
{
    eval_attack atk = {plugin, params, options};
    rb_attack_options def = rb_attack_options_default();
    if (options == NULL)
        atk.options = &def;
    if (plugin == NULL) {
        if (out != NULL)
            memset(out, 0, sizeof *out);
        return train_invalid("rb_evaluate_robust: needs an attack plugin");
    }
    return train_evaluate_model(model, split, batch, engine, &atk, NULL, out);
}

rb_status rb_evaluate_stages(rb_model *model, const rb_split *split, int64_t batch, const rb_engine_options *engine,
                             const rb_attack_stage *stages, size_t stage_count, rb_eval_result *out)
{
    eval_attack atk = {.stages = stages, .stage_count = stage_count};
    if (stages == NULL || stage_count == 0) {
        if (out != NULL)
            memset(out, 0, sizeof *out);
        return train_invalid("rb_evaluate_stages: needs at least one stage");
    }
    return train_evaluate_model(model, split, batch, engine, &atk, NULL, out);
}

rb_status rb_eval_open_split(const rb_model *model, const char *data, rb_split_which which,
                             const rb_split_options *options, rb_split **out)
{
    const rb_model_input *in = rb_model_get_input(model);
    rb_split_options so = {0};
    rb_split *raw = NULL;
    int c, h, w;
    rb_status s;
    *out = NULL;
    if (options != NULL) {
        so.classes = options->classes;
        so.transform = options->transform;
        so.cache_dir = options->cache_dir;
        so.indices = options->indices;
        so.index_count = options->index_count;
    }
    /* at the model's size from the start: a folder of images of many sizes
     * (voc-seg) can only be held at one */
    so.size = in->height == in->width && in->height <= INT_MAX ? (int)in->height : 0;
    if ((s = rb_split_open(&raw, data, which, &so)) != RB_OK)
        return s;
    rb_split_shape(raw, &c, &h, &w);
    if (h == in->height && w == in->width && c == in->channels) {
        *out = raw;
        return RB_OK;
    }
    memset(&so, 0, sizeof so);
    if (h != in->height || w != in->width) {
        if (in->height != in->width) {
            rb_split_destroy(raw);
            return train_invalid("the model takes %lld x %lld images; only square resizing is available",
                                 (long long)in->height, (long long)in->width);
        }
        so.size = (int)in->height;
    }
    if (c != in->channels)
        so.channels = (int)in->channels;
    s = rb_split_apply(out, raw, &so);
    rb_split_destroy(raw);
    return s;
}
