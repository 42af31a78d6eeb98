/* Evaluation: clean and robust accuracy of a model on a split (rb_evaluate,
 * rb_evaluate_robust), the loop training shares, and opening a split in a
 * model's geometry. */
#include "config.h"

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
    r->class_count = r->class_correct = r->class_robust_correct = NULL;
}

int64_t train_argmax(const float *v, int64_t n)
{
    int64_t best = 0;
    for (int64_t j = 1; j < n; j++)
        if (v[j] > v[best])
            best = j;
    return best;
}

/* Feeds the first `rows` logits and labels of a batch to a task's metrics. */
static rb_status feed_metrics(const eval_metrics *tm, float *logits, int64_t *labels, int64_t rows, int64_t k)
{
    rb_tensor *pred = NULL, *lab = NULL;
    rb_status s = rb_tensor_wrap(&pred, RB_DTYPE_F32, 2, (const int64_t[]){rows, k}, logits);
    if (s == RB_OK)
        s = rb_tensor_wrap(&lab, RB_DTYPE_I64, 1, (const int64_t[]){rows}, labels);
    if (s == RB_OK)
        s = tm->ops->metrics_accumulate(tm->state, pred, lab);
    rb_tensor_destroy(pred);
    rb_tensor_destroy(lab);
    return s;
}

/* Evaluates with an engine already planned (its batch is the batch); with an
 * attack, robust accuracy too; with task metrics, feeds them the clean logits. */
rb_status train_evaluate_with(rb_engine *engine, rb_model *model, const rb_split *split, const eval_attack *atk,
                               const eval_metrics *tm, rb_eval_result *out)
{
    int64_t batch = rb_engine_batch(engine), n = rb_split_count(split), k = rb_model_num_classes(model);
    size_t per = rb_split_example_size(split);
    float *images = calloc((size_t)batch * per, sizeof *images), *logits = calloc((size_t)(batch * k), sizeof *logits);
    int64_t *labels = calloc((size_t)batch, sizeof *labels);
    const int64_t *all = rb_split_labels(split);
    bool robust = atk != NULL && atk->plugin != NULL;
    float *adv = robust ? calloc((size_t)batch * per, sizeof *adv) : NULL;
    rb_attacker *attacker = NULL;
    double loss_sum = 0;
    rb_status s = eval_alloc(out, rb_split_classes(split));
    bool held = rb_engine_hold_weights(engine, true); /* the model is fixed for the whole pass */

    if (s == RB_OK && robust)
        s = rb_attacker_create(&attacker, engine, model);

    if (s == RB_OK && robust && adv == NULL)
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for adversarial images");
    if (s == RB_OK && (images == NULL || logits == NULL || labels == NULL))
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for evaluation batches");
    for (int64_t first = 0; s == RB_OK && first < n; first += batch) {
        int64_t rows = n - first < batch ? n - first : batch;
        const float *losses;
        memset(images, 0, (size_t)batch * per * sizeof *images);
        memset(labels, 0, (size_t)batch * sizeof *labels);
        for (int64_t r = 0; s == RB_OK && r < rows; r++) {
            s = rb_split_example(split, first + r, NULL, 0, 0, images + (size_t)r * per);
            labels[r] = all[first + r];
        }
        if (s != RB_OK || (s = rb_engine_forward(engine, images, batch, labels, false)) != RB_OK ||
            (s = rb_engine_read(engine, rb_model_logits(model), logits)) != RB_OK)
            break;
        losses = rb_engine_losses(engine);
        for (int64_t r = 0; r < rows; r++) {
            int64_t y = labels[r];
            bool ok = train_argmax(logits + r * k, k) == y;
            loss_sum += losses[r];
            out->correct += ok;
            out->class_count[y]++;
            out->class_correct[y] += ok;
        }
        if (tm != NULL && tm->ops != NULL && (s = feed_metrics(tm, logits, labels, rows, k)) != RB_OK)
            break;
        if (robust) {
            rb_attack_options o = *atk->options;
            o.first_example = first;
            memset(adv, 0, (size_t)batch * per * sizeof *adv);
            if ((s = rb_attacker_run(attacker, atk->plugin, atk->params, &o, images, labels, rows, adv, NULL,
                                     NULL)) != RB_OK ||
                (s = rb_engine_forward(engine, adv, batch, labels, false)) != RB_OK ||
                (s = rb_engine_read(engine, rb_model_logits(model), logits)) != RB_OK)
                break;
            for (int64_t r = 0; r < rows; r++) {
                int64_t y = labels[r];
                bool ok = train_argmax(logits + r * k, k) == y;
                out->robust_correct += ok;
                out->class_robust_correct[y] += ok;
            }
        }
    }
    out->count = n;
    out->robust = robust;
    out->robust_accuracy = robust && n > 0 ? (double)out->robust_correct / (double)n : 0;
    out->accuracy = n > 0 ? (double)out->correct / (double)n : 0;
    out->mean_loss = n > 0 ? loss_sum / (double)n : 0;
    free(images);
    free(logits);
    free(labels);
    free(adv);
    rb_attacker_destroy(attacker);
    rb_engine_hold_weights(engine, held);
    if (s != RB_OK)
        rb_eval_result_free(out);
    return s;
}

rb_status train_check_eval_shapes(const rb_model *model, const rb_split *split)
{
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

static rb_status evaluate(rb_model *model, const rb_split *split, int64_t batch, const rb_engine_options *options,
                          const eval_attack *atk, rb_eval_result *out)
{
    rb_engine *engine = NULL;
    rb_engine_options eo = options ? *options : (rb_engine_options){0};
    rb_status s;
    if (model == NULL || split == NULL || out == NULL || batch < 1)
        return train_invalid("rb_evaluate: needs a model, a split, a result and a batch >= 1");
    memset(out, 0, sizeof *out);
    eo.data_grads_only = true;
    if (atk != NULL && (s = rb_attack_check(atk->plugin, atk->options)) != RB_OK)
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
    s = train_evaluate_with(engine, model, split, atk, NULL, out);
    rb_engine_destroy(engine);
    return s;
}

rb_status rb_evaluate(rb_model *model, const rb_split *split, int64_t batch, const rb_engine_options *engine,
                      rb_eval_result *out)
{
    return evaluate(model, split, batch, engine, NULL, out);
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
    return evaluate(model, split, batch, engine, &atk, out);
}

rb_status rb_eval_open_split(const rb_model *model, const char *data, rb_split_which which, const char *classes,
                             rb_split **out)
{
    const rb_model_input *in = rb_model_get_input(model);
    rb_split_options so = {0};
    rb_split *raw = NULL;
    int c, h, w;
    rb_status s;
    *out = NULL;
    so.classes = classes;
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
