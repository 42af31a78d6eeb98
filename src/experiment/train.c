/* Standard training (SGD on softmax cross-entropy) and evaluation; see
 * robusta/train.h for the run folder, the training state and resuming. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include <robusta/robusta.h>
#include <robusta/train.h>

#include "experiment/run_dir.h"
#include "sys/internal.h"
#include "sys/json.h"

/* A stop request, and the signal that made it (0: none, or not a signal). */
static volatile sig_atomic_t stop_requested, stop_signal;

void rb_train_request_stop(int signo)
{
    stop_signal = signo > 0 ? signo : 0;
    stop_requested = 1;
}
void rb_train_clear_stop(void) { stop_requested = stop_signal = 0; }
int rb_train_stop_signal(void) { return stop_requested ? stop_signal : 0; }

/* "SIGTERM" for the signals that stop a run, "a stop request" otherwise. */
static const char *stop_cause(char *buf, size_t size)
{
    int sig = stop_signal;
    if (sig == SIGINT)
        return "SIGINT (Ctrl-C)";
    if (sig == SIGTERM)
        return "SIGTERM";
    if (sig == SIGHUP)
        return "SIGHUP";
    if (sig > 0)
        snprintf(buf, size, "signal %d", sig);
    else
        snprintf(buf, size, "a stop request");
    return buf;
}

/* ------------------------------------------------------------ text */

typedef struct text {
    char *data;
    size_t len, cap;
} text;

static rb_status text_append(text *t, const char *fmt, ...) RB_PRINTF(2, 3);

static rb_status text_append(text *t, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return rb_error_set(RB_ERR_INTERNAL, "formatting a log line failed");
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = (t->cap ? t->cap * 2 : 1024) + (size_t)n;
        char *d = realloc(t->data, cap);
        if (d == NULL)
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the training log");
        t->data = d;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
    return RB_OK;
}

/* ------------------------------------------------------------ config */

static rb_status invalid(const char *fmt, ...) RB_PRINTF(1, 2);

static rb_status invalid(const char *fmt, ...)
{
    va_list ap;
    rb_status s;
    va_start(ap, fmt);
    s = rb_error_setv(RB_ERR_INVALID_ARGUMENT, fmt, ap);
    va_end(ap);
    return s;
}

static int has_eps_param(const rb_param_spec *specs);

static const char *const feature_cache_names[] = {"f32", "bf16", "off"};

const char *rb_feature_cache_str(rb_feature_cache cache)
{
    if ((unsigned)cache < sizeof feature_cache_names / sizeof feature_cache_names[0])
        return feature_cache_names[cache];
    return "unknown";
}

rb_status rb_feature_cache_parse(const char *word, rb_feature_cache *out)
{
    for (unsigned i = 0; word != NULL && i < sizeof feature_cache_names / sizeof feature_cache_names[0]; i++)
        if (strcmp(word, feature_cache_names[i]) == 0) {
            *out = (rb_feature_cache)i;
            return RB_OK;
        }
    return invalid("--feature-cache '%s' is not one of f32|bf16|off", word != NULL ? word : "(null)");
}

rb_status rb_train_config_check(const rb_train_config *c)
{
    rb_schedule sched;
    rb_dataset_spec *spec;
    rb_status s;
    if (c == NULL || (c->source == NULL && (c->arch == NULL || c->arch_params == NULL)))
        return invalid("training needs an architecture (--arch)");
    if (c->source != NULL) {
        if (c->task == NULL || c->task->kind != RB_PLUGIN_TASK)
            return invalid("transfer needs a task plugin (--task classify)");
        if (c->registry == NULL)
            return invalid("transfer needs the plugin registry to load the source's architecture");
        if (c->attack != NULL)
            return invalid("transfer trains on clean images: --attack is not available with --source");
        if (c->bn_update && !c->fixed_features)
            return invalid("--bn-stats update applies to --mode fixed only (full-network mode always updates them)");
        if (strcmp(rb_feature_cache_str(c->feature_cache), "unknown") == 0)
            return invalid("--feature-cache %d is not one of f32|bf16|off", (int)c->feature_cache);
        if (c->feature_cache_limit > (uint64_t)INT64_MAX)
            return invalid("--feature-cache-limit %llu bytes is beyond any memory (0: the machine's)",
                           (unsigned long long)c->feature_cache_limit);
    }
    if (c->data == NULL || c->data[0] == '\0')
        return invalid("training needs a dataset (--data)");
    if (c->out_dir == NULL || c->out_dir[0] == '\0')
        return invalid("training needs a run folder (--out DIR)");
    if (c->epochs < 1 || c->epochs >= ((int64_t)1 << 24))
        return invalid("--epochs %lld must lie in [1, 16777215]", (long long)c->epochs);
    if (c->batch_size < 1)
        return invalid("--batch-size %lld must be at least 1", (long long)c->batch_size);
    if (c->eval_batch_size < 1)
        return invalid("--eval-batch-size %lld must be at least 1", (long long)c->eval_batch_size);
    if (!isfinite(c->lr) || c->lr < 0)
        return invalid("--lr %g must be finite and >= 0", c->lr);
    if (!isfinite(c->momentum) || c->momentum < 0 || c->momentum >= 1)
        return invalid("--momentum %g must lie in [0, 1)", c->momentum);
    if (!isfinite(c->weight_decay) || c->weight_decay < 0)
        return invalid("--weight-decay %g must be finite and >= 0", c->weight_decay);
    if (c->nesterov && c->momentum <= 0)
        return invalid("--nesterov needs --momentum > 0");
    if (c->channels != 0 && c->channels != 1 && c->channels != 3)
        return invalid("--channels %d must be 1 or 3 (or 0: the data's own)", c->channels);
    if (c->image_size < 0 || c->per_class < 0 || c->threads < 0 || c->loader_threads < 0)
        return invalid("--image-size, --per-class and thread counts must be >= 0");
    if (c->precision != RB_PRECISION_F32 && c->precision != RB_PRECISION_BF16)
        return invalid("unknown precision %d", (int)c->precision);
    if (c->conv_algorithm != RB_CONV_WINOGRAD && c->conv_algorithm != RB_CONV_DIRECT)
        return invalid("unknown convolution algorithm %d", (int)c->conv_algorithm);
    if (c->attack != NULL) {
        if ((s = rb_attack_check(c->attack, &c->attack_options)) != RB_OK)
            return rb_error_prefix("--attack: ");
        if (c->attack_options.target != RB_ATTACK_UNTARGETED)
            return invalid("adversarial training takes an untargeted attack");
    }
    if (!isfinite(c->eps_warmup) || c->eps_warmup < 0)
        return invalid("--eps-warmup %g must be finite and >= 0", c->eps_warmup);
    if (c->eps_warmup > 0 && (c->attack == NULL || c->attack->params == NULL ||
                              has_eps_param(c->attack->params) == 0))
        return invalid("--eps-warmup needs an --attack whose plugin has an eps parameter");
    if (c->eval_every < 0)
        return invalid("--eval-every %lld must be >= 0", (long long)c->eval_every);
    if ((s = rb_schedule_parse(c->schedule ? c->schedule : "constant", c->lr, (double)c->epochs, &sched)) !=
        RB_OK)
        return rb_error_prefix("--schedule: ");
    spec = malloc(sizeof *spec);
    if (spec == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory checking --data");
    s = rb_dataset_spec_parse(spec, c->data);
    free(spec);
    if (s != RB_OK)
        return rb_error_prefix("--data: ");
    return RB_OK;
}

static int has_eps_param(const rb_param_spec *specs)
{
    for (size_t i = 0; specs[i].name != NULL; i++)
        if (strcmp(specs[i].name, "eps") == 0 && specs[i].type == RB_PARAM_FLOAT)
            return 1;
    return 0;
}

/* The explicitly given parameters of a set, as strings. */
static json_object *given_params(const rb_params *p)
{
    json_object *o = json_object_new_object();
    const rb_param_spec *specs = p ? rb_params_specs(p) : NULL;
    char buf[4096];
    for (size_t i = 0; specs != NULL && specs[i].name != NULL; i++) {
        if (rb_params_source(p, specs[i].name) != RB_PARAM_GIVEN)
            continue;
        rb_params_format(p, specs[i].name, buf, sizeof buf);
        json_object_object_add(o, specs[i].name, json_object_new_string(buf));
    }
    return o;
}

static json_object *json_str_or_null(const char *s)
{
    return s != NULL ? json_object_new_string(s) : NULL;
}

static rb_status write_config(const rb_train_config *c, const char *run_id, const char *path)
{
    json_object *root = json_object_new_object(), *arch = json_object_new_object();
    const rb_param_spec *specs = rb_params_specs(c->arch_params);
    char buf[4096];
    const char *txt;
    rb_status s;

    json_object_object_add(root, "command", json_object_new_string(c->source ? "transfer" : "train"));
    json_object_object_add(root, "robusta", json_object_new_string(RB_VERSION_STRING));
    json_object_object_add(root, "run_id", json_object_new_string(run_id));
    json_object_object_add(root, "arch", json_object_new_string(c->arch_name ? c->arch_name : c->arch->name));
    for (size_t i = 0; specs != NULL && specs[i].name != NULL; i++) {
        if (rb_params_source(c->arch_params, specs[i].name) != RB_PARAM_GIVEN)
            continue;
        rb_params_format(c->arch_params, specs[i].name, buf, sizeof buf);
        json_object_object_add(arch, specs[i].name, json_object_new_string(buf));
    }
    json_object_object_add(root, "arch_options", arch);
    json_object_object_add(root, "data", json_object_new_string(c->data));
    json_object_object_add(root, "out", json_object_new_string(c->out_dir));
    json_object_object_add(root, "epochs", json_object_new_int64(c->epochs));
    json_object_object_add(root, "batch_size", json_object_new_int64(c->batch_size));
    json_object_object_add(root, "eval_batch_size", json_object_new_int64(c->eval_batch_size));
    json_object_object_add(root, "lr", rb_json_number(c->lr));
    json_object_object_add(root, "momentum", rb_json_number(c->momentum));
    json_object_object_add(root, "weight_decay", rb_json_number(c->weight_decay));
    json_object_object_add(root, "nesterov", json_object_new_boolean(c->nesterov));
    json_object_object_add(root, "schedule", json_object_new_string(c->schedule ? c->schedule : "constant"));
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)c->seed);
    json_object_object_add(root, "seed", json_object_new_string(buf));
    json_object_object_add(root, "threads", json_object_new_int(c->threads));
    json_object_object_add(root, "loader_threads", json_object_new_int(c->loader_threads));
    json_object_object_add(root, "precision", json_object_new_string(rb_precision_str(c->precision)));
    json_object_object_add(root, "conv_algorithm", json_object_new_string(rb_conv_algorithm_str(c->conv_algorithm)));
    json_object_object_add(root, "classes", json_str_or_null(c->classes));
    json_object_object_add(root, "per_class", json_object_new_int64(c->per_class));
    json_object_object_add(root, "image_size", json_object_new_int(c->image_size));
    json_object_object_add(root, "channels", json_object_new_int(c->channels));
    json_object_object_add(root, "augment", json_object_new_boolean(c->augment));
    if (c->attack != NULL) {
        json_object_object_add(root, "attack", json_object_new_string(c->attack_name ? c->attack_name : c->attack->name));
        json_object_object_add(root, "attack_options", given_params(c->attack_params));
        json_object_object_add(root, "attack_steps", json_object_new_int(c->attack_options.steps));
        json_object_object_add(root, "attack_restarts", json_object_new_int(c->attack_options.restarts));
        json_object_object_add(root, "attack_random_start", json_object_new_boolean(c->attack_options.random_start));
        json_object_object_add(root, "attack_keep_best", json_object_new_boolean(c->attack_options.keep_best));
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)c->attack_options.seed);
        json_object_object_add(root, "attack_seed", json_object_new_string(buf));
        json_object_object_add(root, "eps_warmup", rb_json_number(c->eps_warmup));
    }
    json_object_object_add(root, "eval_every", json_object_new_int64(c->eval_every));
    if (c->source != NULL) {
        json_object_object_add(root, "source", json_object_new_string(c->source));
        json_object_object_add(root, "task", json_object_new_string(c->task_name ? c->task_name : c->task->name));
        json_object_object_add(root, "task_options", given_params(c->task_params));
        json_object_object_add(root, "mode", json_object_new_string(c->fixed_features ? "fixed" : "full"));
        json_object_object_add(root, "bn_stats", json_object_new_string(c->bn_update ? "update" : "frozen"));
        json_object_object_add(root, "feature_cache", json_object_new_string(rb_feature_cache_str(c->feature_cache)));
        json_object_object_add(root, "feature_cache_limit", json_object_new_int64((int64_t)c->feature_cache_limit));
    }
    txt = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    snprintf(buf, sizeof buf, "%s\n", txt);
    s = rb_file_write_atomic(path, buf, strlen(buf));
    json_object_put(root);
    return s;
}

/* ------------------------------------------------------------ evaluation */

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

static int64_t argmax(const float *v, int64_t n)
{
    int64_t best = 0;
    for (int64_t j = 1; j < n; j++)
        if (v[j] > v[best])
            best = j;
    return best;
}

/* An attack to evaluate under (NULL plugin: clean only). */
typedef struct eval_attack {
    const rb_plugin *plugin;
    const rb_params *params;
    const rb_attack_options *options;
} eval_attack;

/* A task's metrics fed during an evaluation (NULL ops: none). */
typedef struct eval_metrics {
    const rb_task_ops *ops;
    void *state;
} eval_metrics;

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
static rb_status evaluate_with(rb_engine *engine, rb_model *model, const rb_split *split, const eval_attack *atk,
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
            bool ok = argmax(logits + r * k, k) == y;
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
                bool ok = argmax(logits + r * k, k) == y;
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

static rb_status check_eval_shapes(const rb_model *model, const rb_split *split)
{
    const rb_model_input *in = rb_model_get_input(model);
    int c, h, w;
    rb_split_shape(split, &c, &h, &w);
    if (c != in->channels || h != in->height || w != in->width)
        return invalid("%s gives %d x %d x %d images but the model takes %lld x %lld x %lld", rb_split_name(split), c,
                       h, w, (long long)in->channels, (long long)in->height, (long long)in->width);
    if (rb_split_classes(split) > rb_model_num_classes(model))
        return invalid("%s has %lld classes but the model has %lld (choose classes with --classes)",
                       rb_split_name(split), (long long)rb_split_classes(split),
                       (long long)rb_model_num_classes(model));
    if (rb_split_count(split) == 0)
        return invalid("%s holds no examples", rb_split_name(split));
    return RB_OK;
}

static rb_status evaluate(rb_model *model, const rb_split *split, int64_t batch, const rb_engine_options *options,
                          const eval_attack *atk, rb_eval_result *out)
{
    rb_engine *engine = NULL;
    rb_engine_options eo = options ? *options : (rb_engine_options){0};
    rb_status s;
    if (model == NULL || split == NULL || out == NULL || batch < 1)
        return invalid("rb_evaluate: needs a model, a split, a result and a batch >= 1");
    memset(out, 0, sizeof *out);
    eo.data_grads_only = true;
    if (atk != NULL && (s = rb_attack_check(atk->plugin, atk->options)) != RB_OK)
        return s;
    if ((s = check_eval_shapes(model, split)) != RB_OK)
        return s;
    if (batch > rb_split_count(split))
        batch = rb_split_count(split);
    if ((s = rb_model_check_memory(model, &eo, &(rb_memory_engine){batch, true}, 1,
                                   (uint64_t)batch * rb_split_example_size(split) * 2 * sizeof(float),
                                   "lower --batch-size")) != RB_OK ||
        (s = rb_engine_create(&engine, rb_model_graph(model), batch, &eo)) != RB_OK)
        return s;
    s = evaluate_with(engine, model, split, atk, NULL, out);
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
        return invalid("rb_evaluate_robust: needs an attack plugin");
    }
    return evaluate(model, split, batch, engine, &atk, out);
}

/* ------------------------------------------------------------ a run */

typedef struct run {
    rb_train_config cfg;
    bool has_test;
    rb_split *train, *test;
    rb_model *model;
    rb_engine *engine, *eval_engine;
    rb_sgd *sgd;
    rb_loader *loader;
    rb_schedule schedule;
    int64_t epoch;      /* completed epochs */
    double best_acc;
    int64_t best_epoch;
    text csv, jsonl;
    float *logits;
    /* adversarial training */
    rb_engine *adv_engine;   /* inference engine of batch_size on the same graph */
    rb_attacker *attacker;   /* its attack buffers, made once */
    float *adv_x;            /* the attacked batch */
    rb_params *attack_params;/* owned copy of the plugin's parameters (eps set per epoch) */
    double eps;              /* the full eps (warm-up) */
    /* transfer */
    rb_model *source;        /* the source model, until the transfer model has its weights */
    rb_model *full;          /* with cached features: the whole model, while `model` is its head */
    rb_split *image_train, *image_test; /* with cached features: the image splits */
    bool bn_training;        /* batch-norm in training mode during steps */
    char default_schedule[64]; /* transfer's default schedule, when none is given */
    char *metrics_json;      /* the task's metrics from the last evaluation, for metrics.json */
    /* the run folder (run_dir.h) */
    int lock_fd;             /* its lock, held for the run's life (-1: none) */
    char run_id[RB_RUN_ID_LEN + 1]; /* in config.json and every checkpoint */
} run;

static void path_in(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

static rb_status open_splits(run *r)
{
    rb_split_options so = {0};
    rb_dataset_spec *spec = malloc(sizeof *spec);
    rb_status s;
    if (spec == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory opening the data");
    s = rb_dataset_spec_parse(spec, r->cfg.data);
    so.classes = r->cfg.classes;
    so.per_class = r->cfg.per_class;
    so.seed = r->cfg.seed;
    so.size = r->cfg.image_size;
    so.channels = r->cfg.channels;
    if (s == RB_OK)
        s = rb_split_load(&r->train, spec, RB_SPLIT_TRAIN, &so);
    r->has_test = s == RB_OK && (spec->kind != RB_DATASET_NPY || spec->images[RB_SPLIT_TEST][0] != '\0');
    so.per_class = 0; /* the whole test split of the kept classes */
    if (s == RB_OK && r->has_test)
        s = rb_split_load(&r->test, spec, RB_SPLIT_TEST, &so);
    free(spec);
    if (s == RB_OK && rb_split_count(r->train) < r->cfg.batch_size)
        s = invalid("the training split has %lld examples, fewer than --batch-size %lld (the last partial batch "
                    "is dropped, so no step would run)",
                    (long long)rb_split_count(r->train), (long long)r->cfg.batch_size);
    return s;
}

/* Before any work that grows with the images (the data's normalization
 * pass, engine planning): data with one class, and what cannot fit in
 * memory, each refused in one line. The model is r->model when resuming,
 * else a throwaway one of the architecture at the data's size (building a
 * graph allocates only its weights). */
static rb_status copy_params(const rb_params *from, rb_params **out);

static rb_status check_fits(run *r)
{
    rb_model *probe = NULL;
    const rb_model *m = r->model;
    rb_memory_engine engines[3];
    size_t n = 0;
    int c, h, w;
    int64_t classes = rb_split_classes(r->train), eval_batch;
    uint64_t data;
    rb_status s = RB_OK;
    rb_engine_options eo = {.threads = r->cfg.threads, .precision = r->cfg.precision,
                            .conv_algorithm = r->cfg.conv_algorithm};
    if (classes < 2 && r->source != NULL)
        return invalid("the target %s has %lld class; transfer needs at least 2 (check --classes)",
                       rb_split_name(r->train), (long long)classes);
    if (classes < 2)
        return invalid("--data %s%s%s leaves %lld class: training needs at least 2", r->cfg.data,
                       r->cfg.classes != NULL ? " --classes " : "", r->cfg.classes != NULL ? r->cfg.classes : "",
                       (long long)classes);
    rb_split_shape(r->train, &c, &h, &w);
    if (m == NULL) {
        rb_model_input in = {.channels = c, .height = h, .width = w};
        rb_params *p = NULL;
        for (int k = 0; k < c && k < RB_MODEL_MAX_CHANNELS; k++)
            in.mean[k] = 0, in.std[k] = 1;
        if (r->source != NULL) {
            in = *rb_model_get_input(r->source);
            in.height = h;
            in.width = w;
            s = rb_model_create_with_head(&probe, rb_model_arch(r->source), rb_model_params(r->source), r->cfg.task,
                                          r->cfg.task_params, &in, classes);
        } else if ((s = copy_params(r->cfg.arch_params, &p)) == RB_OK) {
            char k[32];
            snprintf(k, sizeof k, "%lld", (long long)classes);
            if (rb_params_declares(p, "num-classes") && rb_params_source(p, "num-classes") != RB_PARAM_GIVEN)
                s = rb_params_set(p, "num-classes", k);
            if (s == RB_OK)
                s = rb_model_create(&probe, r->cfg.arch, p, &in);
        }
        rb_params_destroy(p);
        if (s != RB_OK)
            return s; /* create_model would say the same */
        m = probe;
    }
    eval_batch = r->cfg.eval_batch_size;
    if (r->has_test && eval_batch > rb_split_count(r->test))
        eval_batch = rb_split_count(r->test); /* as setup sizes it */
    engines[n++] = (rb_memory_engine){r->cfg.batch_size, false};
    if (r->has_test)
        engines[n++] = (rb_memory_engine){eval_batch, true};
    if (r->cfg.attack != NULL)
        engines[n++] = (rb_memory_engine){r->cfg.batch_size, true};
    /* the loader's ring of float batches (threads + 1, at least 2) and the
     * evaluation batch; the stored images are already loaded */
    data = ((uint64_t)(r->cfg.threads > 0 ? r->cfg.threads + 1 : 3) * (uint64_t)r->cfg.batch_size +
            (uint64_t)eval_batch) *
           (uint64_t)c * (uint64_t)h * (uint64_t)w * sizeof(float);
    s = rb_model_check_memory(m, &eo, engines, n, data,
                              r->source != NULL || r->cfg.source != NULL
                                  ? "lower --batch-size, --eval-batch-size or the target's --image-size"
                                  : "lower --batch-size, --eval-batch-size or --image-size");
    rb_model_destroy(probe);
    return s;
}

/* Per-channel mean and standard deviation of the training pixels. */
static rb_status data_normalization(const rb_split *split, rb_model_input *in)
{
    int c, h, w;
    size_t per = rb_split_example_size(split), plane;
    int64_t n = rb_split_count(split);
    double sum[RB_MODEL_MAX_CHANNELS] = {0}, sq[RB_MODEL_MAX_CHANNELS] = {0};
    float *x = malloc(per * sizeof *x);
    rb_status s = RB_OK;
    rb_split_shape(split, &c, &h, &w);
    if (c > RB_MODEL_MAX_CHANNELS) {
        free(x);
        return invalid("%s has %d channels; models take at most %d", rb_split_name(split), c, RB_MODEL_MAX_CHANNELS);
    }
    if (x == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory computing the data's mean");
    plane = (size_t)h * (size_t)w;
    for (int64_t i = 0; s == RB_OK && i < n; i++) {
        s = rb_split_example(split, i, NULL, 0, 0, x);
        for (int ch = 0; s == RB_OK && ch < c; ch++)
            for (size_t p = 0; p < plane; p++) {
                double v = x[(size_t)ch * plane + p];
                sum[ch] += v;
                sq[ch] += v * v;
            }
    }
    free(x);
    in->channels = c;
    in->height = h;
    in->width = w;
    for (int ch = 0; ch < c; ch++) {
        double count = (double)n * (double)plane, mean = sum[ch] / count, var = sq[ch] / count - mean * mean;
        double sd = var > 1e-12 ? sqrt(var) : 1.0;
        in->mean[ch] = (float)mean;
        in->std[ch] = (float)sd;
    }
    return s;
}

/* A copy of a parameter set, keeping which values were given. */
static rb_status copy_params(const rb_params *from, rb_params **out)
{
    const rb_param_spec *specs = rb_params_specs(from);
    char buf[4096];
    rb_status s = rb_params_create(out, specs);
    for (size_t i = 0; s == RB_OK && specs[i].name != NULL; i++) {
        if (rb_params_source(from, specs[i].name) != RB_PARAM_GIVEN)
            continue;
        rb_params_format(from, specs[i].name, buf, sizeof buf);
        s = rb_params_set(*out, specs[i].name, buf);
    }
    return s;
}

/* The transfer model: the source's backbone, normalization and weights with
 * the task's new head for the target's classes. */
static rb_status create_transfer_model(run *r)
{
    rb_model_input in = *rb_model_get_input(r->source);
    int c, h, w;
    size_t copied = 0;
    rb_status s;
    if (rb_split_classes(r->train) < 2)
        return invalid("the target %s has %lld class; transfer needs at least 2 (check --classes)",
                       rb_split_name(r->train), (long long)rb_split_classes(r->train));
    rb_split_shape(r->train, &c, &h, &w);
    if (c != in.channels)
        return invalid("the target images have %d channel(s) but the source model takes %lld (--channels %lld)", c,
                       (long long)in.channels, (long long)in.channels);
    in.height = h;
    in.width = w;
    s = rb_model_create_with_head(&r->model, rb_model_arch(r->source), rb_model_params(r->source), r->cfg.task,
                                  r->cfg.task_params, &in, rb_split_classes(r->train));
    if (s == RB_OK)
        s = rb_graph_init_params(rb_model_graph(r->model), r->cfg.seed);
    if (s == RB_OK)
        s = rb_model_copy_params(r->model, r->source, RB_MODEL_BACKBONE, &copied);
    if (s != RB_OK)
        return rb_error_prefix("--source %s: ", r->cfg.source);
    rb_log(RB_LOG_DEBUG, "transfer: %zu backbone tensors from %s", copied, r->cfg.source);
    r->cfg.arch_params = rb_model_params(r->model); /* the source's go with it */
    rb_model_destroy(r->source);
    r->source = NULL;
    return RB_OK;
}

/* What the head reads of the backbone (`feat`, in inference mode) for every
 * example of `split`, as a feature-map split of `dtype` in the geometry the
 * detached head takes (`in`), with the same labels and order. Written batch
 * by batch into the split: no second copy. */
static rb_status extract_features(run *r, rb_engine *engine, rb_node *feat, const rb_model_input *in, rb_dtype dtype,
                                  const rb_split *split, rb_split **out)
{
    int64_t batch = rb_engine_batch(engine), n = rb_split_count(split);
    size_t per = rb_split_example_size(split), f = (size_t)(in->channels * in->height * in->width);
    float *images = calloc((size_t)batch * per, sizeof *images), *row = malloc((size_t)batch * f * sizeof *row);
    int64_t *labels = calloc((size_t)batch, sizeof *labels);
    const char **names = calloc((size_t)rb_split_classes(split), sizeof *names);
    rb_progress *bar = NULL;
    char what[256];
    rb_status s = RB_OK;
    *out = NULL;
    if (images == NULL || row == NULL || labels == NULL || names == NULL)
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the features of %s", rb_split_name(split));
    snprintf(what, sizeof what, "features of %s", rb_split_name(split));
    for (int64_t k = 0; s == RB_OK && k < rb_split_classes(split); k++)
        names[k] = rb_split_class_name(split, k);
    if (s == RB_OK)
        s = rb_split_create_feature_maps(out, dtype, n, (int)in->channels, (int)in->height, (int)in->width,
                                         rb_split_labels(split), rb_split_classes(split), names, what);
    if (s == RB_OK && !r->cfg.quiet)
        s = rb_progress_create(&bar, "features", (uint64_t)n, "img", NULL);
    for (int64_t first = 0; s == RB_OK && first < n; first += batch) {
        int64_t rows = n - first < batch ? n - first : batch;
        memset(images, 0, (size_t)batch * per * sizeof *images);
        memset(labels, 0, (size_t)batch * sizeof *labels);
        for (int64_t i = 0; s == RB_OK && i < rows; i++) {
            s = rb_split_example(split, first + i, NULL, 0, 0, images + (size_t)i * per);
            labels[i] = rb_split_labels(split)[first + i];
        }
        if (s == RB_OK)
            s = rb_engine_forward(engine, images, batch, labels, false);
        if (s == RB_OK)
            s = rb_engine_read(engine, feat, row);
        if (s == RB_OK)
            s = rb_split_features_write(*out, first, rows, row);
        if (s == RB_OK && bar != NULL)
            rb_progress_update(bar, (uint64_t)(first + rows), "%s", rb_split_name(split));
    }
    if (bar != NULL) {
        if (s == RB_OK)
            rb_progress_finish(bar, "%s", rb_split_name(split));
        rb_progress_destroy(bar);
    }
    if (s != RB_OK) {
        rb_split_destroy(*out);
        *out = NULL;
    }
    free(images);
    free(row);
    free(labels);
    free(names);
    return s;
}

/* Bytes of a split's stored images. */
static uint64_t split_bytes(const rb_split *split)
{
    int c = 0, h = 0, w = 0;
    if (split == NULL)
        return 0;
    rb_split_stored_shape(split, &c, &h, &w);
    return (uint64_t)rb_split_count(split) * (uint64_t)c * (uint64_t)h * (uint64_t)w *
           rb_dtype_size(rb_split_dtype(split));
}

/* Bytes as MiB for messages: "0.15", "97.50", "12,288". */
static const char *mib_text(char *buf, size_t size, uint64_t bytes)
{
    double mib = (double)bytes / (1 << 20);
    if (mib < 100)
        snprintf(buf, size, "%.2f", mib);
    else
        rb_format_count(buf, size, (unsigned long long)llround(mib));
    return buf;
}

/* The feature cache's size, said before anything is computed, and refused
 * past the limit. */
static rb_status check_cache_size(run *r, const char *stage, const rb_model_input *in, rb_dtype dtype)
{
    int64_t n_train = rb_split_count(r->train), n_test = r->has_test ? rb_split_count(r->test) : 0;
    uint64_t per = (uint64_t)in->channels * (uint64_t)in->height * (uint64_t)in->width;
    uint64_t bytes = (uint64_t)(n_train + n_test) * per * rb_dtype_size(dtype), limit = r->cfg.feature_cache_limit;
    uint64_t have = rb_machine_memory_bytes(), images = split_bytes(r->train) + split_bytes(r->test);
    char b[40], bm[40], l[40], lm[40], count[64];
    int64_t c, h, w;
    rb_node_shape(rb_model_features(r->model), &c, &h, &w);
    if (limit == 0)
        limit = have > images ? have - images : 0;
    if (r->has_test)
        snprintf(count, sizeof count, "%lld + %lld images", (long long)n_train, (long long)n_test);
    else
        snprintf(count, sizeof count, "%lld images", (long long)n_train);
    rb_log(RB_LOG_INFO,
           "fixed-feature transfer: caching %s (%lld x %lld x %lld values per image, the one stage the head reads) "
           "of %s in %s: %s bytes (%s MiB)",
           stage, (long long)c, (long long)h, (long long)w, count, rb_dtype_str(dtype),
           rb_format_count(b, sizeof b, bytes), mib_text(bm, sizeof bm, bytes));
    if (bytes <= limit)
        return RB_OK;
    return rb_error_set(RB_ERR_OUT_OF_MEMORY,
                        "the feature cache of %s (%s bytes, %s MiB in %s) exceeds %s (%s bytes, %s MiB): %s",
                        stage, b, bm, rb_dtype_str(dtype),
                        r->cfg.feature_cache_limit != 0 ? "--feature-cache-limit"
                                                        : "this machine's memory less the loaded images",
                        rb_format_count(l, sizeof l, limit), mib_text(lm, sizeof lm, limit),
                        dtype == RB_DTYPE_F32
                            ? "use --feature-cache bf16 (half the size), --feature-cache off (no cache), or a "
                              "smaller stage (--stage)"
                            : "use --feature-cache off (no cache) or a smaller stage (--stage)");
}

/* Fixed-feature mode: freezes the backbone and, where the backbone is a fixed
 * function of each image, swaps the model and splits for the head and the
 * cached features. */
static rb_status prepare_transfer(run *r)
{
    rb_engine_options eo = {.threads = r->cfg.threads, .data_grads_only = true, .precision = r->cfg.precision,
                            .conv_algorithm = r->cfg.conv_algorithm};
    rb_engine *engine = NULL;
    rb_model *head = NULL;
    rb_split *train = NULL, *test = NULL;
    int64_t batch = r->cfg.eval_batch_size;
    rb_dtype dtype = r->cfg.feature_cache == RB_FEATURE_CACHE_BF16 ? RB_DTYPE_BF16 : RB_DTYPE_F32;
    const char *stage;
    char why[512] = "";
    size_t reads;
    rb_status s;
    r->bn_training = !r->cfg.fixed_features || r->cfg.bn_update;
    if (r->cfg.source == NULL || !r->cfg.fixed_features)
        return RB_OK;
    if ((s = rb_graph_freeze_through(rb_model_graph(r->model), rb_model_backbone_end(r->model))) != RB_OK)
        return s;
    if (r->cfg.feature_cache == RB_FEATURE_CACHE_OFF)
        snprintf(why, sizeof why, "--feature-cache off");
    else if (r->cfg.bn_update)
        snprintf(why, sizeof why, "--bn-stats update moves the backbone's statistics");
    else if (r->cfg.augment)
        snprintf(why, sizeof why, "--augment changes the images every epoch");
    else if ((reads = rb_model_head_inputs(r->model, NULL, 0)) != 1)
        snprintf(why, sizeof why, "the head reads %zu backbone stages; the cache holds one", reads);
    else if ((s = rb_model_head_create(&head, r->model)) == RB_ERR_UNSUPPORTED)
        snprintf(why, sizeof why, "%s", rb_last_error());
    else if (s != RB_OK)
        return s;
    if (why[0] != '\0') {
        rb_log(RB_LOG_INFO, "fixed-feature transfer without a feature cache (%s): the frozen backbone runs at every "
                            "step", why);
        return RB_OK;
    }
    stage = rb_model_stage_name(r->model, rb_model_features(r->model));
    s = check_cache_size(r, stage, rb_model_get_input(head), dtype);
    if (batch > rb_split_count(r->train))
        batch = rb_split_count(r->train);
    if (s == RB_OK)
        s = rb_engine_create(&engine, rb_model_graph(r->model), batch, &eo);
    if (s == RB_OK) {
        rb_engine_hold_weights(engine, true); /* a frozen backbone: convert its weights once */
        s = extract_features(r, engine, rb_model_features(r->model), rb_model_get_input(head), dtype, r->train,
                             &train);
    }
    if (s == RB_OK && r->has_test)
        s = extract_features(r, engine, rb_model_features(r->model), rb_model_get_input(head), dtype, r->test, &test);
    rb_engine_destroy(engine);
    if (s == RB_OK)
        s = rb_model_copy_params(head, r->model, RB_MODEL_ALL, NULL);
    if (s != RB_OK) {
        rb_model_destroy(head);
        rb_split_destroy(train);
        rb_split_destroy(test);
        return s;
    }
    r->full = r->model;
    r->model = head;
    r->image_train = r->train;
    r->image_test = r->test;
    r->train = train;
    r->test = test;
    return RB_OK;
}

/* The whole model, with the trained head copied in when training runs on
 * cached features. */
static rb_status whole_model(run *r, rb_model **out)
{
    *out = r->full != NULL ? r->full : r->model;
    if (r->full != NULL)
        return rb_model_copy_params(r->full, r->model, RB_MODEL_HEAD, NULL);
    return RB_OK;
}

static rb_status create_model(run *r)
{
    rb_model_input in;
    rb_params *p = NULL;
    rb_status s;
    if (r->cfg.source != NULL)
        return create_transfer_model(r);
    memset(&in, 0, sizeof in);
    if ((s = data_normalization(r->train, &in)) != RB_OK || (s = copy_params(r->cfg.arch_params, &p)) != RB_OK)
        goto done;
    if (rb_params_declares(p, "num-classes") && rb_params_source(p, "num-classes") != RB_PARAM_GIVEN) {
        char k[32];
        snprintf(k, sizeof k, "%lld", (long long)rb_split_classes(r->train));
        if ((s = rb_params_set(p, "num-classes", k)) != RB_OK)
            goto done;
    }
    if ((s = rb_model_create(&r->model, r->cfg.arch, p, &in)) != RB_OK)
        goto done;
    if (rb_model_num_classes(r->model) < rb_split_classes(r->train))
        s = invalid("the data has %lld classes but the model only %lld (num-classes)",
                    (long long)rb_split_classes(r->train), (long long)rb_model_num_classes(r->model));
    else
        s = rb_graph_init_params(rb_model_graph(r->model), r->cfg.seed);
done:
    rb_params_destroy(p);
    return s;
}

static rb_status setup(run *r)
{
    rb_engine_options eo = {.threads = r->cfg.threads, .precision = r->cfg.precision,
                            .conv_algorithm = r->cfg.conv_algorithm};
    /* evaluation and attack engines never train */
    rb_engine_options eval_eo = {.threads = r->cfg.threads, .data_grads_only = true, .precision = r->cfg.precision,
                                 .conv_algorithm = r->cfg.conv_algorithm};
    rb_loader_options lo = {0};
    rb_sgd_options so = {.momentum = r->cfg.momentum, .weight_decay = r->cfg.weight_decay,
                         .nesterov = r->cfg.nesterov};
    rb_status s;
    int64_t eval_batch = r->cfg.eval_batch_size;
    if ((s = rb_schedule_parse(r->cfg.schedule, r->cfg.lr, (double)r->cfg.epochs, &r->schedule)) != RB_OK)
        return s;
    lo.batch_size = r->cfg.batch_size;
    lo.shuffle = true;
    lo.drop_last = true;
    lo.seed = r->cfg.seed;
    lo.threads = r->cfg.loader_threads;
    if (r->cfg.augment)
        rb_augment_defaults(rb_split_kind(r->train), &lo.augment);
    if ((s = rb_loader_create(&r->loader, r->train, &lo)) != RB_OK)
        return s;
    if ((s = rb_engine_create(&r->engine, rb_model_graph(r->model), r->cfg.batch_size, &eo)) != RB_OK)
        return s;
    if (r->has_test) {
        if ((s = check_eval_shapes(r->model, r->test)) != RB_OK)
            return s;
        if (eval_batch > rb_split_count(r->test))
            eval_batch = rb_split_count(r->test);
        if ((s = rb_engine_create(&r->eval_engine, rb_model_graph(r->model), eval_batch, &eval_eo)) != RB_OK)
            return s;
    }
    r->logits = malloc((size_t)(r->cfg.batch_size * rb_model_num_classes(r->model)) * sizeof *r->logits);
    if (r->logits == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for logits");
    if (r->cfg.attack != NULL) {
        /* A second engine on the same graph: it reads the weights the SGD steps write. */
        if ((s = rb_engine_create(&r->adv_engine, rb_model_graph(r->model), r->cfg.batch_size, &eval_eo)) != RB_OK ||
            (s = rb_attacker_create(&r->attacker, r->adv_engine, r->model)) != RB_OK)
            return s;
        r->adv_x = malloc((size_t)r->cfg.batch_size * rb_split_example_size(r->train) * sizeof *r->adv_x);
        if (r->adv_x == NULL)
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for adversarial batches");
        if (r->cfg.attack_params != NULL)
            s = copy_params(r->cfg.attack_params, &r->attack_params);
        else
            s = rb_params_create(&r->attack_params, r->cfg.attack->params);
        if (s != RB_OK)
            return s;
        r->eps = 0;
        if (rb_params_declares(r->attack_params, "eps"))
            rb_params_get_float(r->attack_params, "eps", &r->eps);
    }
    return rb_sgd_create(&r->sgd, rb_model_graph(r->model), &so);
}

static json_object *attack_json(const run *r);

/* The checkpoint of the model with the training metadata; with_state adds
 * the momentum buffers. */
static rb_status save_checkpoint(run *r, const char *path, bool with_state)
{
    rb_checkpoint *ck = NULL;
    json_object *meta = NULL, *tr;
    rb_graph *g = rb_model_graph(r->model);
    rb_model *whole;
    char buf[64];
    rb_status s = whole_model(r, &whole);
    if (s == RB_OK)
        s = rb_model_to_checkpoint(whole, &ck);
    if (s == RB_OK && (meta = json_tokener_parse(rb_checkpoint_metadata(ck))) == NULL)
        s = rb_error_set(RB_ERR_INTERNAL, "the model's metadata is not JSON");
    if (s == RB_OK) {
        tr = json_object_new_object();
        json_object_object_add(tr, "run_id", json_object_new_string(r->run_id));
        json_object_object_add(tr, "epoch", json_object_new_int64(r->epoch));
        json_object_object_add(tr, "epochs", json_object_new_int64(r->cfg.epochs));
        json_object_object_add(tr, "sgd_steps", json_object_new_int64(rb_sgd_steps(r->sgd)));
        json_object_object_add(tr, "schedule", json_object_new_string(r->cfg.schedule));
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)r->cfg.seed);
        json_object_object_add(tr, "seed", json_object_new_string(buf));
        json_object_object_add(tr, "lr", rb_json_number(r->cfg.lr));
        json_object_object_add(tr, "momentum", rb_json_number(r->cfg.momentum));
        json_object_object_add(tr, "weight_decay", rb_json_number(r->cfg.weight_decay));
        json_object_object_add(tr, "nesterov", json_object_new_boolean(r->cfg.nesterov));
        json_object_object_add(tr, "batch_size", json_object_new_int64(r->cfg.batch_size));
        json_object_object_add(tr, "data", json_object_new_string(r->cfg.data));
        json_object_object_add(tr, "classes", json_str_or_null(r->cfg.classes));
        json_object_object_add(tr, "best_test_acc", rb_json_number(r->best_acc));
        json_object_object_add(tr, "best_epoch", json_object_new_int64(r->best_epoch));
        if (r->cfg.attack != NULL)
            json_object_object_add(tr, "attack", attack_json(r));
        if (r->cfg.source != NULL) {
            json_object *t = json_object_new_object();
            json_object_object_add(t, "source", json_object_new_string(r->cfg.source));
            json_object_object_add(t, "task", json_object_new_string(r->cfg.task->name));
            json_object_object_add(t, "mode", json_object_new_string(r->cfg.fixed_features ? "fixed" : "full"));
            json_object_object_add(t, "bn_stats", json_object_new_string(r->cfg.bn_update ? "update" : "frozen"));
            json_object_object_add(t, "feature_cache", json_object_new_boolean(r->full != NULL));
            json_object_object_add(t, "feature_cache_dtype",
                                   r->full != NULL ? json_object_new_string(rb_feature_cache_str(r->cfg.feature_cache))
                                                   : NULL);
            json_object_object_add(tr, "transfer", t);
        }
        json_object_object_add(meta, "training", tr);
        s = rb_checkpoint_set_metadata(ck, json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PLAIN));
    }
    for (size_t i = 0; s == RB_OK && with_state && i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        const float *m = rb_sgd_momentum_buffer(r->sgd, i);
        char name[512];
        rb_graph_param(g, i, &p);
        if (m == NULL)
            continue;
        snprintf(name, sizeof name, "%smomentum.%s", RB_MODEL_STATE_PREFIX, p.name);
        s = rb_checkpoint_add(ck, name, RB_DTYPE_F32, p.ndim, p.shape, m);
    }
    if (s == RB_OK)
        s = rb_checkpoint_save(ck, path, 0);
    json_object_put(meta);
    rb_checkpoint_destroy(ck);
    return s;
}

static rb_status write_logs(run *r)
{
    char path[4200];
    rb_status s;
    path_in(path, sizeof path, r->cfg.out_dir, "log.csv");
    if ((s = rb_file_write_atomic(path, r->csv.data, r->csv.len)) != RB_OK)
        return s;
    path_in(path, sizeof path, r->cfg.out_dir, "log.jsonl");
    return rb_file_write_atomic(path, r->jsonl.data ? r->jsonl.data : "", r->jsonl.len);
}

static const char csv_header[] = "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,images_per_second\n";
static const char csv_header_adv[] =
    "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,images_per_second,adv_train_acc,robust_test_acc\n";

/* Sets the attack's eps (warm-up); a no-op without warm-up. */
static rb_status set_eps(run *r, double eps)
{
    char buf[64];
    if (r->cfg.eps_warmup <= 0)
        return RB_OK;
    snprintf(buf, sizeof buf, "%.17g", eps);
    return rb_params_set(r->attack_params, "eps", buf);
}

static json_object *attack_json(const run *r)
{
    json_object *a = json_object_new_object();
    const rb_attack_options *o = &r->cfg.attack_options;
    char buf[64];
    json_object_object_add(a, "name", json_object_new_string(r->cfg.attack_name ? r->cfg.attack_name
                                                                                : r->cfg.attack->name));
    json_object_object_add(a, "params", given_params(r->cfg.attack_params));
    json_object_object_add(a, "steps", json_object_new_int(o->steps));
    json_object_object_add(a, "restarts", json_object_new_int(o->restarts));
    json_object_object_add(a, "random_start", json_object_new_boolean(o->random_start));
    json_object_object_add(a, "keep_best", json_object_new_boolean(o->keep_best));
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)o->seed);
    json_object_object_add(a, "seed", json_object_new_string(buf));
    json_object_object_add(a, "eps_warmup", rb_json_number(r->cfg.eps_warmup));
    json_object_object_add(a, "eval_every", json_object_new_int64(r->cfg.eval_every));
    return a;
}

/* The first non-finite gradient (or NULL). */
static const char *bad_gradient(rb_graph *g)
{
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        rb_graph_param(g, i, &p);
        if (p.grad == NULL || !p.trainable || p.frozen)
            continue;
        for (int64_t k = 0; k < p.numel; k++)
            if (!isfinite(p.grad[k]))
                return p.name;
    }
    return NULL;
}

static rb_status write_task_metrics(run *r);
static rb_status metrics_begin(run *r, eval_metrics *tm);
static rb_status metrics_end(run *r, eval_metrics *tm);

static rb_status train_epochs(run *r, rb_train_result *res)
{
    rb_graph *g = rb_model_graph(r->model);
    int64_t steps = rb_loader_batch_count(r->loader), B = r->cfg.batch_size, k = rb_model_num_classes(r->model);
    double total_seconds = 0;
    int64_t epochs_run = 0;
    char path[4200];
    rb_status s = RB_OK;

    while (r->epoch < r->cfg.epochs) {
        int64_t e = r->epoch, correct = 0, seen = 0, clean_correct = 0;
        double loss_sum = 0, lr = 0, t0 = rb_monotonic_seconds(), seconds, test_loss = NAN, test_acc = NAN;
        double robust_acc = NAN;
        bool adv = r->cfg.attack != NULL;
        const float *train_x;
        rb_progress *bar = NULL;
        rb_batch b;
        char label[64];
        snprintf(label, sizeof label, "epoch %lld/%lld", (long long)e + 1, (long long)r->cfg.epochs);
        if (!r->cfg.quiet && (s = rb_progress_create(&bar, label, (uint64_t)(steps * B), "img", NULL)) != RB_OK)
            return s;
        if ((s = rb_loader_start_epoch(r->loader, e)) != RB_OK)
            goto epoch_failed;
        if (adv && r->cfg.eps_warmup > 0 &&
            (s = set_eps(r, r->eps * ((double)e >= r->cfg.eps_warmup ? 1.0 : (double)e / r->cfg.eps_warmup))) != RB_OK)
            goto epoch_failed;
        for (int64_t step = 0;; step++) {
            double loss;
            const char *bad;
            if (stop_requested) {
                char cause[32];
                s = rb_error_set(RB_ERR_INTERRUPTED,
                                 "stopped by %s in epoch %lld at batch %lld; %s/last.rbt and the logs hold epoch "
                                 "%lld: continue with robusta %s --resume %s",
                                 stop_cause(cause, sizeof cause), (long long)e + 1, (long long)step + 1,
                                 r->cfg.out_dir, (long long)e, r->cfg.source != NULL ? "transfer" : "train",
                                 r->cfg.out_dir);
                goto epoch_failed;
            }
            if ((s = rb_loader_next(r->loader, &b)) != RB_OK)
                goto epoch_failed;
            if (b.count == 0)
                break;
            lr = rb_schedule_lr(&r->schedule, (double)e + (double)(step + 1) / (double)steps);
            train_x = b.images;
            if (adv) {
                rb_attack_options ao = r->cfg.attack_options;
                rb_attack_stats st;
                ao.first_example = (e * steps + step) * B;
                if ((s = rb_attacker_run(r->attacker, r->cfg.attack, r->attack_params, &ao, b.images,
                                       b.labels, b.count, r->adv_x, NULL, &st)) != RB_OK) {
                    rb_error_prefix("epoch %lld batch %lld: attack: ", (long long)e + 1, (long long)step + 1);
                    goto epoch_failed;
                }
                clean_correct += st.clean_correct;
                train_x = r->adv_x;
            }
            if ((s = rb_engine_forward(r->engine, train_x, b.count, b.labels, r->bn_training)) != RB_OK ||
                (s = rb_engine_read(r->engine, rb_model_logits(r->model), r->logits)) != RB_OK ||
                (s = rb_engine_backward(r->engine, true, false)) != RB_OK)
                goto epoch_failed;
            loss = rb_engine_mean_loss(r->engine);
            bad = bad_gradient(g);
            if (!isfinite(loss) || bad != NULL) {
                s = rb_error_set(RB_ERR_NUMERIC,
                                 "training diverged at epoch %lld batch %lld (step %lld): loss %g, first non-finite "
                                 "gradient %s%s%s; %s/last.rbt keeps epoch %lld (lower --lr?)",
                                 (long long)e + 1, (long long)step + 1, (long long)rb_sgd_steps(r->sgd) + 1, loss,
                                 bad ? "'" : "", bad ? bad : "none", bad ? "'" : "", r->cfg.out_dir, (long long)e);
                goto epoch_failed;
            }
            if ((s = rb_sgd_step(r->sgd, lr)) != RB_OK) {
                rb_error_prefix("epoch %lld batch %lld: ", (long long)e + 1, (long long)step + 1);
                goto epoch_failed;
            }
            loss_sum += loss * (double)b.count;
            for (int64_t i = 0; i < b.count; i++)
                correct += argmax(r->logits + i * k, k) == b.labels[i];
            seen += b.count;
            if (bar != NULL)
                rb_progress_update(bar, (uint64_t)seen, "loss %.4f acc %.1f%%", loss_sum / (double)seen,
                                   100.0 * (double)correct / (double)seen);
        }
        seconds = rb_monotonic_seconds() - t0;
        if (bar != NULL) {
            rb_progress_finish(bar, "loss %.4f acc %.1f%%", loss_sum / (double)seen,
                               100.0 * (double)correct / (double)seen);
            rb_progress_destroy(bar);
            bar = NULL;
        }
        if (r->has_test && (e + 1 == r->cfg.epochs || r->cfg.eval_every <= 1 || (e + 1) % r->cfg.eval_every == 0)) {
            rb_eval_result ev;
            eval_metrics tm = {NULL, NULL};
            bool last = e + 1 == r->cfg.epochs;
            if (last && r->cfg.source != NULL && (s = metrics_begin(r, &tm)) != RB_OK)
                return s;
            s = evaluate_with(r->eval_engine, r->model, r->test, NULL, &tm, &ev);
            if (s == RB_OK && tm.ops != NULL)
                s = metrics_end(r, &tm);
            if (tm.ops != NULL)
                tm.ops->metrics_destroy(tm.state);
            if (s != RB_OK)
                return s;
            test_loss = ev.mean_loss;
            test_acc = ev.accuracy;
            rb_eval_result_free(&ev);
            if (adv) {
                eval_attack atk = {r->cfg.attack, r->attack_params, &r->cfg.attack_options};
                if ((s = set_eps(r, r->eps)) != RB_OK ||
                    (s = evaluate_with(r->eval_engine, r->model, r->test, &atk, NULL, &ev)) != RB_OK)
                    return s;
                robust_acc = ev.robust_accuracy;
                rb_eval_result_free(&ev);
            }
        }
        r->epoch = e + 1;
        res->train_loss = loss_sum / (double)seen;
        res->train_acc = (double)(adv ? clean_correct : correct) / (double)seen;
        res->adv_train_acc = adv ? (double)correct / (double)seen : NAN;
        if (adv && !isnan(robust_acc))
            res->robust_test_acc = robust_acc;
        res->test_loss = test_loss;
        res->test_acc = test_acc;
        total_seconds += seconds;
        epochs_run++;
        /* Logs and checkpoints. */
        {
            char tl[32] = "", ta[32] = "", tlj[32] = "null", taj[32] = "null", ra[32] = "", raj[32] = "null";
            char jn[4][32];
            if (!isnan(test_acc)) {
                snprintf(tl, sizeof tl, "%.9g", test_loss);
                snprintf(ta, sizeof ta, "%.9g", test_acc);
                rb_json_number_text(tlj, sizeof tlj, test_loss);
                rb_json_number_text(taj, sizeof taj, test_acc);
            }
            if (!isnan(robust_acc)) {
                snprintf(ra, sizeof ra, "%.9g", robust_acc);
                rb_json_number_text(raj, sizeof raj, robust_acc);
            }
            s = text_append(&r->csv, "%lld,%.9g,%.9g,%.9g,%s,%s,%.3f,%.1f", (long long)r->epoch, lr,
                            res->train_loss, res->train_acc, tl, ta, seconds, (double)seen / seconds);
            if (s == RB_OK && adv)
                s = text_append(&r->csv, ",%.9g,%s", res->adv_train_acc, ra);
            if (s == RB_OK)
                s = text_append(&r->csv, "\n");
            /* JSON has no nan: a diverged loss is written as null */
            if (s == RB_OK)
                s = text_append(&r->jsonl,
                                "{\"epoch\": %lld, \"lr\": %s, \"train_loss\": %s, \"train_acc\": %s, "
                                "\"test_loss\": %s, \"test_acc\": %s, \"seconds\": %.3f, "
                                "\"images_per_second\": %s",
                                (long long)r->epoch, rb_json_number_text(jn[0], sizeof jn[0], lr),
                                rb_json_number_text(jn[1], sizeof jn[1], res->train_loss),
                                rb_json_number_text(jn[2], sizeof jn[2], res->train_acc), tlj, taj, seconds,
                                rb_json_number_text(jn[3], sizeof jn[3], round((double)seen / seconds * 10) / 10));
            if (s == RB_OK && adv)
                s = text_append(&r->jsonl, ", \"adv_train_acc\": %s, \"robust_test_acc\": %s",
                                rb_json_number_text(jn[0], sizeof jn[0], res->adv_train_acc), raj);
            if (s == RB_OK)
                s = text_append(&r->jsonl, "}\n");
        }
        /* The logs go first: a kill between the two writes leaves them one
         * row ahead of last.rbt, which a resume drops, never behind. */
        if (s == RB_OK)
            s = write_logs(r);
        if (s == RB_OK && !isnan(test_acc) && !adv && (r->best_epoch == 0 || test_acc > r->best_acc)) {
            r->best_acc = test_acc;
            r->best_epoch = r->epoch;
            path_in(path, sizeof path, r->cfg.out_dir, "best.rbt");
            s = save_checkpoint(r, path, false);
        }
        if (s == RB_OK && adv && !isnan(robust_acc) && (r->best_epoch == 0 || robust_acc > r->best_acc)) {
            r->best_acc = robust_acc;
            r->best_epoch = r->epoch;
            path_in(path, sizeof path, r->cfg.out_dir, "best.rbt");
            s = save_checkpoint(r, path, false);
        }
        if (s == RB_OK) {
            path_in(path, sizeof path, r->cfg.out_dir, "last.rbt");
            s = save_checkpoint(r, path, true);
        }
        if (s != RB_OK)
            return s;
        if (!isnan(test_acc))
            rb_log(RB_LOG_INFO, "epoch %lld/%lld: lr %.4g, train loss %.4f acc %.2f%%, test loss %.4f acc %.2f%%, %.1fs",
                   (long long)r->epoch, (long long)r->cfg.epochs, lr, res->train_loss, 100 * res->train_acc,
                   test_loss, 100 * test_acc, seconds);
        else
            rb_log(RB_LOG_INFO, "epoch %lld/%lld: lr %.4g, train loss %.4f acc %.2f%%, %.1fs", (long long)r->epoch,
                   (long long)r->cfg.epochs, lr, res->train_loss, 100 * res->train_acc, seconds);
        continue;
    epoch_failed:
        rb_progress_destroy(bar);
        return s;
    }
    res->epochs_done = r->epoch;
    res->best_test_acc = r->best_acc;
    res->best_epoch = r->best_epoch;
    res->seconds_per_epoch = epochs_run ? total_seconds / (double)epochs_run : 0;
    path_in(path, sizeof path, r->cfg.out_dir, "model.rbt");
    if ((s = save_checkpoint(r, path, false)) == RB_OK && r->cfg.source != NULL && r->has_test)
        s = write_task_metrics(r);
    return s;
}

static void run_free(run *r)
{
    rb_sgd_destroy(r->sgd);
    rb_engine_destroy(r->eval_engine);
    rb_attacker_destroy(r->attacker);
    rb_engine_destroy(r->adv_engine);
    rb_engine_destroy(r->engine);
    rb_params_destroy(r->attack_params);
    free(r->adv_x);
    rb_loader_destroy(r->loader);
    rb_model_destroy(r->model);
    rb_model_destroy(r->full);
    rb_model_destroy(r->source);
    rb_split_destroy(r->test);
    rb_split_destroy(r->train);
    rb_split_destroy(r->image_test);
    rb_split_destroy(r->image_train);
    free(r->csv.data);
    free(r->jsonl.data);
    free(r->logits);
    free(r->metrics_json);
    rb_run_dir_unlock(r->cfg.out_dir, r->lock_fd);
    r->lock_fd = -1;
}

static rb_status make_dir(const char *dir)
{
    if (mkdir(dir, 0777) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            return RB_OK;
        return rb_error_set(RB_ERR_IO, "--out %s exists and is not a folder", dir);
    }
    return rb_error_set(RB_ERR_IO, "cannot create the run folder %s: %s", dir, strerror(errno));
}

/* The paper's transfer schedule scaled to the run: lr x 0.1 at each third
 * (150 epochs decayed every 50); constant for training from scratch. */
static const char *default_schedule(run *r)
{
    if (r->cfg.source == NULL)
        return "constant";
    snprintf(r->default_schedule, sizeof r->default_schedule, "step:%lld:0.1",
             (long long)(r->cfg.epochs >= 3 ? r->cfg.epochs / 3 : 1));
    return r->default_schedule;
}

/* Loads the source model of a transfer and takes its channels for the
 * target images unless --channels says otherwise. */
static rb_status load_source(run *r)
{
    rb_status s = rb_model_load(&r->source, r->cfg.registry, r->cfg.source, 0, 0);
    if (s != RB_OK)
        return rb_error_prefix("--source: ");
    if (rb_model_task(r->source) != NULL)
        rb_log(RB_LOG_INFO, "--source %s is itself a transferred model: its backbone is used, its %s head dropped",
               r->cfg.source, rb_model_task(r->source)->name);
    r->cfg.arch = rb_model_arch(r->source);
    r->cfg.arch_params = rb_model_params(r->source);
    if (r->cfg.arch_name == NULL)
        r->cfg.arch_name = r->cfg.arch->name;
    if (r->cfg.channels == 0)
        r->cfg.channels = (int)rb_model_get_input(r->source)->channels;
    return RB_OK;
}

/* A transfer's last evaluation also feeds the task's own metrics; their
 * values wait in r->metrics_json until model.rbt is written. */
static rb_status metrics_begin(run *r, eval_metrics *tm)
{
    rb_task_target target = {.num_classes = rb_model_num_classes(r->model)};
    tm->ops = r->cfg.task->ops;
    if (tm->ops->metrics_create(r->cfg.task_params, &target, &tm->state) != RB_OK) {
        tm->ops = NULL;
        return rb_error_prefix("task %s: ", r->cfg.task->name);
    }
    return RB_OK;
}

static rb_status metrics_end(run *r, eval_metrics *tm)
{
    rb_metric metrics[256];
    size_t count = 0;
    json_object *root;
    if (tm->ops->metrics_finalize(tm->state, metrics, sizeof metrics / sizeof metrics[0], &count) != RB_OK)
        return rb_error_prefix("task %s: ", r->cfg.task->name);
    root = json_object_new_object();
    for (size_t i = 0; i < count; i++)
        json_object_object_add(root, metrics[i].name, rb_json_number(metrics[i].value));
    free(r->metrics_json);
    r->metrics_json = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
    return r->metrics_json != NULL ? RB_OK : rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for metrics");
}

/* metrics.json after model.rbt; a resumed run that had nothing left to train
 * evaluates once for them. */
static rb_status write_task_metrics(run *r)
{
    char path[4200];
    if (r->metrics_json == NULL) {
        eval_metrics tm = {NULL, NULL};
        rb_eval_result ev;
        rb_status s = metrics_begin(r, &tm);
        if (s == RB_OK && (s = evaluate_with(r->eval_engine, r->model, r->test, NULL, &tm, &ev)) == RB_OK) {
            rb_eval_result_free(&ev);
            s = metrics_end(r, &tm);
        }
        if (tm.ops != NULL)
            tm.ops->metrics_destroy(tm.state);
        if (s != RB_OK)
            return s;
    }
    path_in(path, sizeof path, r->cfg.out_dir, "metrics.json");
    return rb_file_write_atomic(path, r->metrics_json, strlen(r->metrics_json));
}

rb_status rb_train(const rb_train_config *config, rb_train_result *result)
{
    run r;
    rb_train_result local;
    char path[4200];
    rb_status s;
    if (result == NULL)
        result = &local;
    memset(result, 0, sizeof *result);
    result->adv_train_acc = result->robust_test_acc = NAN;
    if ((s = rb_train_config_check(config)) != RB_OK)
        return s;
    memset(&r, 0, sizeof r);
    r.lock_fd = -1;
    r.cfg = *config;
    if (r.cfg.schedule == NULL)
        r.cfg.schedule = default_schedule(&r);
    if ((s = make_dir(r.cfg.out_dir)) != RB_OK)
        return s;
    /* One writer per folder, from here to run_free; then the litter of a
     * killed run goes. */
    if ((s = rb_run_dir_lock(r.cfg.out_dir, r.cfg.source != NULL ? "transfer" : "train", &r.lock_fd)) != RB_OK ||
        (s = rb_run_dir_remove_stale(r.cfg.out_dir)) != RB_OK)
        goto done;
    path_in(path, sizeof path, r.cfg.out_dir, "last.rbt");
    {
        if (access(path, F_OK) == 0) { /* not fopen: a FIFO there would block */
            static const char *const old_run[] = {"last.rbt", "best.rbt", "model.rbt", "metrics.json"};
            if (!r.cfg.force) {
                s = invalid("%s already holds a run (last.rbt): continue it with --resume %s, start over with "
                            "--force, or choose another --out",
                            r.cfg.out_dir, r.cfg.out_dir);
                goto done;
            }
            /* Asked to start over: the old checkpoints must not pass for the new run's. */
            for (size_t i = 0; i < sizeof old_run / sizeof old_run[0]; i++) {
                path_in(path, sizeof path, r.cfg.out_dir, old_run[i]);
                if (unlink(path) != 0 && errno != ENOENT) {
                    s = rb_error_set(RB_ERR_IO, "--force: cannot remove %s: %s", path, strerror(errno));
                    goto done;
                }
            }
        }
    }
    if (r.cfg.source != NULL && (s = load_source(&r)) != RB_OK)
        goto done;
    if ((s = open_splits(&r)) != RB_OK || (s = check_fits(&r)) != RB_OK || (s = create_model(&r)) != RB_OK ||
        (s = prepare_transfer(&r)) != RB_OK || (s = setup(&r)) != RB_OK)
        goto done;
    if ((s = text_append(&r.csv, "%s", r.cfg.attack != NULL ? csv_header_adv : csv_header)) != RB_OK)
        goto done;
    path_in(path, sizeof path, r.cfg.out_dir, "config.json");
    if ((s = rb_run_id_new(r.run_id)) != RB_OK || (s = write_config(&r.cfg, r.run_id, path)) != RB_OK)
        goto done;
    /* Epoch 0: a resumable state even if the first epoch is interrupted
     * (the logs first, as after every epoch). */
    path_in(path, sizeof path, r.cfg.out_dir, "last.rbt");
    if ((s = write_logs(&r)) != RB_OK || (s = save_checkpoint(&r, path, true)) != RB_OK)
        goto done;
    if (r.cfg.source != NULL)
        rb_log(RB_LOG_INFO, "transferring %s (%s) to %s in %s mode: %lld examples, %lld classes, %s", r.cfg.source,
               r.cfg.arch->name, r.cfg.data, r.cfg.fixed_features ? "fixed-feature" : "full-network",
               (long long)rb_split_count(r.train), (long long)rb_split_classes(r.train), rb_engine_threads(r.engine));
    else
        rb_log(RB_LOG_INFO, "training %s on %s: %lld examples, %lld classes, %lld x %lld x %lld, %s",
               r.cfg.arch_name ? r.cfg.arch_name : r.cfg.arch->name, r.cfg.data, (long long)rb_split_count(r.train),
               (long long)rb_split_classes(r.train), (long long)rb_model_get_input(r.model)->channels,
               (long long)rb_model_get_input(r.model)->height, (long long)rb_model_get_input(r.model)->width,
               rb_engine_threads(r.engine));
    s = train_epochs(&r, result);
done:
    run_free(&r);
    return s;
}

/* ------------------------------------------------------------ resume */

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || v == NULL || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static bool jhas(json_object *o, const char *key, json_type type)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || v == NULL)
        return false;
    return json_object_is_type(v, type) || (type == json_type_double && json_object_is_type(v, json_type_int));
}

static int64_t jint(json_object *o, const char *key)
{
    json_object *v = NULL;
    json_object_object_get_ex(o, key, &v);
    return json_object_get_int64(v);
}

static double jdouble(json_object *o, const char *key)
{
    json_object *v = NULL;
    json_object_object_get_ex(o, key, &v);
    return json_object_get_double(v);
}

static rb_status read_config(json_object *root, const char *file, rb_train_config *c)
{
    static const char *const ints[] = {"epochs", "batch_size", "eval_batch_size", "threads", "loader_threads",
                                       "per_class", "image_size", "channels"};
    static const char *const doubles[] = {"lr", "momentum", "weight_decay"};
    const char *seed;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!jhas(root, ints[i], json_type_int))
            return rb_error_set(RB_ERR_CORRUPT, "%s: '%s' is missing or not an integer", file, ints[i]);
    for (size_t i = 0; i < sizeof doubles / sizeof doubles[0]; i++)
        if (!jhas(root, doubles[i], json_type_double))
            return rb_error_set(RB_ERR_CORRUPT, "%s: '%s' is missing or not a number", file, doubles[i]);
    if (!jhas(root, "nesterov", json_type_boolean) || !jhas(root, "augment", json_type_boolean) ||
        jstr(root, "data") == NULL || jstr(root, "schedule") == NULL || (seed = jstr(root, "seed")) == NULL)
        return rb_error_set(RB_ERR_CORRUPT, "%s: nesterov, augment, data, schedule or seed is missing", file);
    c->arch_name = jstr(root, "arch");
    c->data = jstr(root, "data");
    c->epochs = jint(root, "epochs");
    c->batch_size = jint(root, "batch_size");
    c->eval_batch_size = jint(root, "eval_batch_size");
    c->threads = (int)jint(root, "threads");
    c->loader_threads = (int)jint(root, "loader_threads");
    c->per_class = jint(root, "per_class");
    c->image_size = (int)jint(root, "image_size");
    c->channels = (int)jint(root, "channels");
    c->lr = jdouble(root, "lr");
    c->momentum = jdouble(root, "momentum");
    c->weight_decay = jdouble(root, "weight_decay");
    c->nesterov = json_object_get_boolean(json_object_object_get(root, "nesterov"));
    c->augment = json_object_get_boolean(json_object_object_get(root, "augment"));
    c->schedule = jstr(root, "schedule");
    c->classes = jstr(root, "classes");
    c->seed = strtoull(seed, NULL, 10);
    if (jhas(root, "eval_every", json_type_int))
        c->eval_every = jint(root, "eval_every");
    /* runs written before precision existed were fp32 */
    if (jstr(root, "precision") != NULL && rb_precision_parse(jstr(root, "precision"), &c->precision) != RB_OK)
        return rb_error_set(RB_ERR_CORRUPT, "%s: unknown precision '%s'", file, jstr(root, "precision"));
    /* and before the choice of convolution algorithm, direct: a resumed run
     * keeps its arithmetic, so that it continues bit for bit */
    c->conv_algorithm = RB_CONV_DIRECT;
    if (jstr(root, "conv_algorithm") != NULL &&
        rb_conv_algorithm_parse(jstr(root, "conv_algorithm"), &c->conv_algorithm) != RB_OK)
        return rb_error_set(RB_ERR_CORRUPT, "%s: unknown convolution algorithm '%s'", file,
                            jstr(root, "conv_algorithm"));
    return RB_OK;
}

/* The transfer settings of a transfer run's config.json (none: training). */
static rb_status read_transfer(const rb_registry *reg, json_object *root, const char *file, rb_train_config *c,
                               rb_params **params)
{
    const char *source = jstr(root, "source"), *task = jstr(root, "task"), *mode = jstr(root, "mode");
    const char *bn = jstr(root, "bn_stats");
    json_object *given = NULL;
    rb_status s;
    *params = NULL;
    if (source == NULL)
        return RB_OK;
    if (task == NULL || mode == NULL || bn == NULL ||
        !(jstr(root, "feature_cache") != NULL || jhas(root, "no_feature_cache", json_type_boolean)) ||
        !json_object_object_get_ex(root, "task_options", &given) || !json_object_is_type(given, json_type_object))
        return rb_error_set(RB_ERR_CORRUPT, "%s: the transfer's settings (task, task_options, mode ...) are missing",
                            file);
    if ((s = rb_registry_find(reg, RB_PLUGIN_TASK, task, &c->task)) != RB_OK)
        return rb_error_prefix("%s: ", file);
    if ((s = rb_params_create(params, c->task->params)) != RB_OK)
        return s;
    {
        json_object_object_foreach(given, key, val)
        {
            if (!json_object_is_type(val, json_type_string))
                return rb_error_set(RB_ERR_CORRUPT, "%s: task_options.%s is not a string", file, key);
            if ((s = rb_params_set(*params, key, json_object_get_string(val))) != RB_OK)
                return rb_error_prefix("%s: task_options: ", file);
        }
    }
    c->source = source;
    c->registry = reg;
    c->task_name = task;
    c->task_params = *params;
    c->fixed_features = strcmp(mode, "fixed") == 0;
    c->bn_update = strcmp(bn, "update") == 0;
    if (jstr(root, "feature_cache") != NULL) {
        if (rb_feature_cache_parse(jstr(root, "feature_cache"), &c->feature_cache) != RB_OK)
            return rb_error_set(RB_ERR_CORRUPT, "%s: feature_cache '%s' is not one of f32|bf16|off", file,
                                jstr(root, "feature_cache"));
    } else { /* written before bf16 caches: a boolean */
        c->feature_cache = json_object_get_boolean(json_object_object_get(root, "no_feature_cache"))
                               ? RB_FEATURE_CACHE_OFF
                               : RB_FEATURE_CACHE_F32;
    }
    c->feature_cache_limit = 0;
    if (jhas(root, "feature_cache_limit", json_type_int)) {
        int64_t limit = json_object_get_int64(json_object_object_get(root, "feature_cache_limit"));
        if (limit < 0)
            return rb_error_set(RB_ERR_CORRUPT, "%s: feature_cache_limit %lld is negative", file, (long long)limit);
        c->feature_cache_limit = (uint64_t)limit;
    }
    return RB_OK;
}

/* The attack of an adversarial run's config.json (none: standard training). */
static rb_status read_attack(const rb_registry *reg, json_object *root, const char *file, rb_train_config *c,
                             rb_params **params)
{
    const char *name = jstr(root, "attack"), *seed;
    json_object *given = NULL;
    rb_status s;
    *params = NULL;
    if (name == NULL)
        return RB_OK;
    if (!jhas(root, "attack_steps", json_type_int) || !jhas(root, "attack_restarts", json_type_int) ||
        !jhas(root, "attack_random_start", json_type_boolean) || !jhas(root, "attack_keep_best", json_type_boolean) ||
        !jhas(root, "eps_warmup", json_type_double) || !jhas(root, "eval_every", json_type_int) ||
        (seed = jstr(root, "attack_seed")) == NULL ||
        !json_object_object_get_ex(root, "attack_options", &given) || !json_object_is_type(given, json_type_object))
        return rb_error_set(RB_ERR_CORRUPT, "%s: the attack's settings (attack_steps, attack_options ...) are missing",
                            file);
    if ((s = rb_registry_find(reg, RB_PLUGIN_ATTACK, name, &c->attack)) != RB_OK)
        return rb_error_prefix("%s: ", file);
    if ((s = rb_params_create(params, c->attack->params)) != RB_OK)
        return s;
    {
        json_object_object_foreach(given, key, val)
        {
            if (!json_object_is_type(val, json_type_string))
                return rb_error_set(RB_ERR_CORRUPT, "%s: attack_options.%s is not a string", file, key);
            if ((s = rb_params_set(*params, key, json_object_get_string(val))) != RB_OK)
                return rb_error_prefix("%s: attack_options: ", file);
        }
    }
    c->attack_name = name;
    c->attack_params = *params;
    c->attack_options = rb_attack_options_default();
    c->attack_options.steps = (int)jint(root, "attack_steps");
    c->attack_options.restarts = (int)jint(root, "attack_restarts");
    c->attack_options.random_start = json_object_get_boolean(json_object_object_get(root, "attack_random_start"));
    c->attack_options.keep_best = json_object_get_boolean(json_object_object_get(root, "attack_keep_best"));
    c->attack_options.seed = strtoull(seed, NULL, 10);
    c->eps_warmup = jdouble(root, "eps_warmup");
    c->eval_every = jint(root, "eval_every");
    return RB_OK;
}

static rb_status restore_state(run *r, const rb_checkpoint *ck, const char *file)
{
    json_object *meta = json_tokener_parse(rb_checkpoint_metadata(ck)), *tr = NULL;
    rb_graph *g = rb_model_graph(r->model);
    rb_status s = RB_OK;
    if (meta == NULL || !json_object_object_get_ex(meta, "training", &tr) || tr == NULL ||
        !jhas(tr, "epoch", json_type_int) || !jhas(tr, "sgd_steps", json_type_int))
        s = rb_error_set(RB_ERR_CORRUPT, "%s has no training state (\"training\" with epoch and sgd_steps)", file);
    if (s == RB_OK) {
        r->epoch = jint(tr, "epoch");
        r->best_acc = jhas(tr, "best_test_acc", json_type_double) ? jdouble(tr, "best_test_acc") : 0;
        r->best_epoch = jhas(tr, "best_epoch", json_type_int) ? jint(tr, "best_epoch") : 0;
        if (r->epoch < 0 || r->epoch > r->cfg.epochs)
            s = invalid("%s is at epoch %lld, past --epochs %lld: ask for more epochs", file, (long long)r->epoch,
                        (long long)r->cfg.epochs);
    }
    for (size_t i = 0; s == RB_OK && i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        rb_checkpoint_tensor t;
        float *m = rb_sgd_momentum_buffer(r->sgd, i);
        char name[512];
        if (m == NULL)
            continue;
        rb_graph_param(g, i, &p);
        snprintf(name, sizeof name, "%smomentum.%s", RB_MODEL_STATE_PREFIX, p.name);
        if (jint(tr, "sgd_steps") == 0)
            continue; /* buffers start at the first step */
        if ((s = rb_checkpoint_find(ck, name, &t)) != RB_OK)
            s = rb_error_set(RB_ERR_CORRUPT, "%s: momentum buffer '%s' is missing", file, name);
        else if (t.dtype != RB_DTYPE_F32 || t.numel != p.numel)
            s = rb_error_set(RB_ERR_CORRUPT, "%s: momentum buffer '%s' has the wrong size", file, name);
        else
            memcpy(m, t.data, (size_t)p.numel * sizeof *m);
    }
    if (s == RB_OK)
        rb_sgd_set_steps(r->sgd, jint(tr, "sgd_steps"));
    json_object_put(meta);
    return s;
}

/* A log reconciled with the checkpoint's epoch, into t. */
static rb_status load_log(text *t, const char *path, const char *header, bool adversarial, int64_t epoch)
{
    char *kept = NULL;
    size_t len = 0;
    rb_status s = rb_run_log_reconcile(path, header, adversarial, epoch, &kept, &len);
    if (s == RB_OK && len > 0)
        s = text_append(t, "%s", kept);
    free(kept);
    return s;
}

/* The run id of config.json (`root`) and of the checkpoint in `dir` must
 * agree; out gets the run's id (a new one for a run from before run ids). */
static rb_status check_run_id(json_object *root, const rb_checkpoint *ck, const char *dir, char *out)
{
    const char *want = jstr(root, "run_id"), *have = NULL;
    json_object *meta = json_tokener_parse(rb_checkpoint_metadata(ck)), *tr = NULL;
    rb_status s = RB_OK;
    if (meta != NULL && json_object_object_get_ex(meta, "training", &tr) && tr != NULL)
        have = jstr(tr, "run_id");
    if (want != NULL && (strlen(want) != RB_RUN_ID_LEN || strspn(want, "0123456789abcdef") != RB_RUN_ID_LEN))
        s = rb_error_set(RB_ERR_CORRUPT, "%s/config.json: run_id '%s' is not %d hex digits", dir, want,
                         RB_RUN_ID_LEN);
    else if (have != NULL && (want == NULL || strcmp(want, have) != 0))
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                         "%s/last.rbt belongs to run %s, config.json to %s%s: it was copied from another run; put "
                         "this run's last.rbt back, or start over with --force",
                         dir, have, want ? "run " : "", want ? want : "no run (it has no run_id)");
    else if (want != NULL) {
        memcpy(out, want, RB_RUN_ID_LEN + 1);
        if (have == NULL)
            rb_log(RB_LOG_INFO, "%s/last.rbt has no run id (written before run ids): taken as run %s's", dir, want);
    } else if ((s = rb_run_id_new(out)) == RB_OK)
        rb_log(RB_LOG_INFO, "%s was started before run ids: it is run %s from now on", dir, out);
    json_object_put(meta);
    return s;
}

rb_status rb_train_resume(const rb_registry *registry, const char *dir, int64_t epochs, int threads, bool quiet,
                          rb_train_result *result)
{
    run r;
    rb_train_result local;
    char path[4200];
    unsigned char *bytes = NULL;
    size_t size = 0;
    json_object *root = NULL;
    rb_checkpoint *ck = NULL;
    rb_params *attack_params = NULL, *task_params = NULL;
    rb_status s;

    if (result == NULL)
        result = &local;
    memset(result, 0, sizeof *result);
    result->adv_train_acc = result->robust_test_acc = NAN;
    memset(&r, 0, sizeof r);
    r.lock_fd = -1;
    if (registry == NULL || dir == NULL)
        return invalid("rb_train_resume: needs a registry and a folder");
    path_in(path, sizeof path, dir, "config.json");
    if ((s = rb_file_read_all(path, (size_t)16 << 20, &bytes, &size)) != RB_OK)
        return rb_error_prefix("--resume %s: ", dir);
    {
        char *txt = malloc(size + 1);
        if (txt == NULL) {
            free(bytes);
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory reading %s", path);
        }
        memcpy(txt, bytes, size);
        txt[size] = '\0';
        root = json_tokener_parse(txt);
        free(txt);
        free(bytes);
    }
    if (root == NULL || !json_object_is_type(root, json_type_object)) {
        s = rb_error_set(RB_ERR_CORRUPT, "%s is not a JSON object", path);
        goto done;
    }
    if ((s = read_config(root, path, &r.cfg)) != RB_OK ||
        (s = read_attack(registry, root, path, &r.cfg, &attack_params)) != RB_OK ||
        (s = read_transfer(registry, root, path, &r.cfg, &task_params)) != RB_OK)
        goto done;
    r.cfg.out_dir = dir;
    r.cfg.quiet = quiet;
    if (epochs > 0)
        r.cfg.epochs = epochs;
    if (threads >= 0)
        r.cfg.threads = threads;
    if ((s = rb_run_dir_lock(dir, r.cfg.source != NULL ? "transfer" : "train", &r.lock_fd)) != RB_OK ||
        (s = rb_run_dir_remove_stale(dir)) != RB_OK)
        goto done;
    path_in(path, sizeof path, dir, "last.rbt");
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        s = rb_error_set(RB_ERR_NOT_FOUND,
                         "%s has config.json but no last.rbt: the run was stopped during its setup, before its first "
                         "checkpoint, so there is nothing to resume; start it over with robusta %s --out %s --force "
                         "and the options in %s/config.json",
                         dir, r.cfg.source != NULL ? "transfer" : "train", dir, dir);
        goto done;
    }
    if ((s = rb_checkpoint_load(&ck, path, 0)) != RB_OK || (s = check_run_id(root, ck, dir, r.run_id)) != RB_OK ||
        (s = rb_model_from_checkpoint(&r.model, registry, ck, path, 0, 0)) != RB_OK)
        goto done;
    r.cfg.arch = rb_model_arch(r.model);
    r.cfg.arch_params = rb_model_params(r.model);
    if ((s = rb_train_config_check(&r.cfg)) != RB_OK || (s = open_splits(&r)) != RB_OK || (s = check_fits(&r)) != RB_OK ||
        (s = prepare_transfer(&r)) != RB_OK || (s = setup(&r)) != RB_OK || (s = restore_state(&r, ck, path)) != RB_OK)
        goto done;
    rb_checkpoint_destroy(ck);
    ck = NULL;
    /* The logs keep every row up to last.rbt's epoch (see run_dir.h). */
    path_in(path, sizeof path, dir, "log.csv");
    if ((s = load_log(&r.csv, path, r.cfg.attack != NULL ? csv_header_adv : csv_header, r.cfg.attack != NULL,
                      r.epoch)) != RB_OK)
        goto done;
    path_in(path, sizeof path, dir, "log.jsonl");
    if ((s = load_log(&r.jsonl, path, NULL, r.cfg.attack != NULL, r.epoch)) != RB_OK)
        goto done;
    path_in(path, sizeof path, dir, "config.json");
    if ((s = write_config(&r.cfg, r.run_id, path)) != RB_OK)
        goto done;
    rb_log(RB_LOG_INFO, "resuming %s at epoch %lld of %lld", dir, (long long)r.epoch, (long long)r.cfg.epochs);
    s = train_epochs(&r, result);
done:
    rb_checkpoint_destroy(ck);
    run_free(&r);
    rb_params_destroy(attack_params);
    rb_params_destroy(task_params);
    json_object_put(root);
    return s;
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
            return invalid("the model takes %lld x %lld images; only square resizing is available",
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
