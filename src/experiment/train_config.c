/* rb_train_config: its check, and config.json written from it and read back
 * into it at resume; the feature-cache words. */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiment/train_internal.h"
#include "sys/internal.h"
#include "sys/json.h"

rb_status train_invalid(const char *fmt, ...)
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
    return train_invalid("--feature-cache '%s' is not one of f32|bf16|off", word != NULL ? word : "(null)");
}

rb_status rb_train_config_check(const rb_train_config *c)
{
    rb_schedule sched;
    rb_dataset_spec *spec;
    rb_status s;
    if (c == NULL || (c->source == NULL && (c->arch == NULL || c->arch_params == NULL)))
        return train_invalid("training needs an architecture (--arch)");
    if (c->source != NULL) {
        if (c->task == NULL || c->task->kind != RB_PLUGIN_TASK)
            return train_invalid("transfer needs a task plugin (--task classify)");
        if (c->registry == NULL)
            return train_invalid("transfer needs the plugin registry to load the source's architecture");
        if (c->attack != NULL)
            return train_invalid("transfer trains on clean images: --attack is not available with --source");
        if (c->bn_update && !c->fixed_features)
            return train_invalid("--bn-stats update applies to --mode fixed only (full-network mode always updates them)");
        if (strcmp(rb_feature_cache_str(c->feature_cache), "unknown") == 0)
            return train_invalid("--feature-cache %d is not one of f32|bf16|off", (int)c->feature_cache);
        if (c->feature_cache_limit > (uint64_t)INT64_MAX)
            return train_invalid("--feature-cache-limit %llu bytes is beyond any memory (0: the machine's)",
                           (unsigned long long)c->feature_cache_limit);
    }
    if (c->data == NULL || c->data[0] == '\0')
        return train_invalid("training needs a dataset (--data)");
    if (c->out_dir == NULL || c->out_dir[0] == '\0')
        return train_invalid("training needs a run folder (--out DIR)");
    if (c->epochs < 1 || c->epochs >= ((int64_t)1 << 24))
        return train_invalid("--epochs %lld must lie in [1, 16777215]", (long long)c->epochs);
    if (c->batch_size < 1)
        return train_invalid("--batch-size %lld must be at least 1", (long long)c->batch_size);
    if (c->eval_batch_size < 1)
        return train_invalid("--eval-batch-size %lld must be at least 1", (long long)c->eval_batch_size);
    if (!isfinite(c->lr) || c->lr < 0)
        return train_invalid("--lr %g must be finite and >= 0", c->lr);
    if (!isfinite(c->momentum) || c->momentum < 0 || c->momentum >= 1)
        return train_invalid("--momentum %g must lie in [0, 1)", c->momentum);
    if (!isfinite(c->weight_decay) || c->weight_decay < 0)
        return train_invalid("--weight-decay %g must be finite and >= 0", c->weight_decay);
    if (c->nesterov && c->momentum <= 0)
        return train_invalid("--nesterov needs --momentum > 0");
    if (c->channels != 0 && c->channels != 1 && c->channels != 3)
        return train_invalid("--channels %d must be 1 or 3 (or 0: the data's own)", c->channels);
    if (c->image_size < 0 || c->per_class < 0 || c->threads < 0 || c->loader_threads < 0)
        return train_invalid("--image-size, --per-class and thread counts must be >= 0");
    if (c->precision != RB_PRECISION_F32 && c->precision != RB_PRECISION_BF16)
        return train_invalid("unknown precision %d", (int)c->precision);
    if (c->conv_algorithm != RB_CONV_WINOGRAD && c->conv_algorithm != RB_CONV_DIRECT)
        return train_invalid("unknown convolution algorithm %d", (int)c->conv_algorithm);
    if (c->attack != NULL) {
        if ((s = rb_attack_check(c->attack, &c->attack_options)) != RB_OK)
            return rb_error_prefix("--attack: ");
        if (c->attack_options.target != RB_ATTACK_UNTARGETED)
            return train_invalid("adversarial training takes an untargeted attack");
    }
    if (!isfinite(c->eps_warmup) || c->eps_warmup < 0)
        return train_invalid("--eps-warmup %g must be finite and >= 0", c->eps_warmup);
    if (c->eps_warmup > 0 && (c->attack == NULL || c->attack->params == NULL ||
                              has_eps_param(c->attack->params) == 0))
        return train_invalid("--eps-warmup needs an --attack whose plugin has an eps parameter");
    if (c->eval_every < 0)
        return train_invalid("--eval-every %lld must be >= 0", (long long)c->eval_every);
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
        if (strcmp(specs[i].name, RB_PARAM_EPS) == 0 && specs[i].type == RB_PARAM_FLOAT)
            return 1;
    return 0;
}

/* The explicitly given parameters of a set, as strings. */
json_object *train_given_params(const rb_params *p)
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

json_object *train_json_str_or_null(const char *s)
{
    return s != NULL ? json_object_new_string(s) : NULL;
}

rb_status train_write_config(const rb_train_config *c, const char *run_id, const char *path)
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
    json_object_object_add(root, "classes", train_json_str_or_null(c->classes));
    json_object_object_add(root, "per_class", json_object_new_int64(c->per_class));
    json_object_object_add(root, "image_size", json_object_new_int(c->image_size));
    json_object_object_add(root, "channels", json_object_new_int(c->channels));
    json_object_object_add(root, "augment", json_object_new_boolean(c->augment));
    if (c->attack != NULL) {
        json_object_object_add(root, "attack", json_object_new_string(c->attack_name ? c->attack_name : c->attack->name));
        json_object_object_add(root, "attack_options", train_given_params(c->attack_params));
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
        json_object_object_add(root, "task_options", train_given_params(c->task_params));
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

const char *train_jstr(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || v == NULL || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

bool train_jhas(json_object *o, const char *key, json_type type)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || v == NULL)
        return false;
    return json_object_is_type(v, type) || (type == json_type_double && json_object_is_type(v, json_type_int));
}

int64_t train_jint(json_object *o, const char *key)
{
    json_object *v = NULL;
    json_object_object_get_ex(o, key, &v);
    return json_object_get_int64(v);
}

double train_jdouble(json_object *o, const char *key)
{
    json_object *v = NULL;
    json_object_object_get_ex(o, key, &v);
    return json_object_get_double(v);
}

rb_status train_read_config(json_object *root, const char *file, rb_train_config *c)
{
    static const char *const ints[] = {"epochs", "batch_size", "eval_batch_size", "threads", "loader_threads",
                                       "per_class", "image_size", "channels"};
    static const char *const doubles[] = {"lr", "momentum", "weight_decay"};
    const char *seed;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!train_jhas(root, ints[i], json_type_int))
            return rb_error_set(RB_ERR_CORRUPT, "%s: '%s' is missing or not an integer", file, ints[i]);
    for (size_t i = 0; i < sizeof doubles / sizeof doubles[0]; i++)
        if (!train_jhas(root, doubles[i], json_type_double))
            return rb_error_set(RB_ERR_CORRUPT, "%s: '%s' is missing or not a number", file, doubles[i]);
    if (!train_jhas(root, "nesterov", json_type_boolean) || !train_jhas(root, "augment", json_type_boolean) ||
        train_jstr(root, "data") == NULL || train_jstr(root, "schedule") == NULL || (seed = train_jstr(root, "seed")) == NULL)
        return rb_error_set(RB_ERR_CORRUPT, "%s: nesterov, augment, data, schedule or seed is missing", file);
    c->arch_name = train_jstr(root, "arch");
    c->data = train_jstr(root, "data");
    c->epochs = train_jint(root, "epochs");
    c->batch_size = train_jint(root, "batch_size");
    c->eval_batch_size = train_jint(root, "eval_batch_size");
    c->threads = (int)train_jint(root, "threads");
    c->loader_threads = (int)train_jint(root, "loader_threads");
    c->per_class = train_jint(root, "per_class");
    c->image_size = (int)train_jint(root, "image_size");
    c->channels = (int)train_jint(root, "channels");
    c->lr = train_jdouble(root, "lr");
    c->momentum = train_jdouble(root, "momentum");
    c->weight_decay = train_jdouble(root, "weight_decay");
    c->nesterov = json_object_get_boolean(json_object_object_get(root, "nesterov"));
    c->augment = json_object_get_boolean(json_object_object_get(root, "augment"));
    c->schedule = train_jstr(root, "schedule");
    c->classes = train_jstr(root, "classes");
    c->seed = strtoull(seed, NULL, 10);
    if (train_jhas(root, "eval_every", json_type_int))
        c->eval_every = train_jint(root, "eval_every");
    /* runs written before precision existed were fp32 */
    if (train_jstr(root, "precision") != NULL && rb_precision_parse(train_jstr(root, "precision"), &c->precision) != RB_OK)
        return rb_error_set(RB_ERR_CORRUPT, "%s: unknown precision '%s'", file, train_jstr(root, "precision"));
    /* and before the choice of convolution algorithm, direct: a resumed run
     * keeps its arithmetic, so that it continues bit for bit */
    c->conv_algorithm = RB_CONV_DIRECT;
    if (train_jstr(root, "conv_algorithm") != NULL &&
        rb_conv_algorithm_parse(train_jstr(root, "conv_algorithm"), &c->conv_algorithm) != RB_OK)
        return rb_error_set(RB_ERR_CORRUPT, "%s: unknown convolution algorithm '%s'", file,
                            train_jstr(root, "conv_algorithm"));
    return RB_OK;
}

/* The transfer settings of a transfer run's config.json (none: training). */
rb_status train_read_transfer(const rb_registry *reg, json_object *root, const char *file, rb_train_config *c,
                               rb_params **params)
{
    const char *source = train_jstr(root, "source"), *task = train_jstr(root, "task"), *mode = train_jstr(root, "mode");
    const char *bn = train_jstr(root, "bn_stats");
    json_object *given = NULL;
    rb_status s;
    *params = NULL;
    if (source == NULL)
        return RB_OK;
    if (task == NULL || mode == NULL || bn == NULL ||
        !(train_jstr(root, "feature_cache") != NULL || train_jhas(root, "no_feature_cache", json_type_boolean)) ||
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
    if (train_jstr(root, "feature_cache") != NULL) {
        if (rb_feature_cache_parse(train_jstr(root, "feature_cache"), &c->feature_cache) != RB_OK)
            return rb_error_set(RB_ERR_CORRUPT, "%s: feature_cache '%s' is not one of f32|bf16|off", file,
                                train_jstr(root, "feature_cache"));
    } else { /* written before bf16 caches: a boolean */
        c->feature_cache = json_object_get_boolean(json_object_object_get(root, "no_feature_cache"))
                               ? RB_FEATURE_CACHE_OFF
                               : RB_FEATURE_CACHE_F32;
    }
    c->feature_cache_limit = 0;
    if (train_jhas(root, "feature_cache_limit", json_type_int)) {
        int64_t limit = json_object_get_int64(json_object_object_get(root, "feature_cache_limit"));
        if (limit < 0)
            return rb_error_set(RB_ERR_CORRUPT, "%s: feature_cache_limit %lld is negative", file, (long long)limit);
        c->feature_cache_limit = (uint64_t)limit;
    }
    return RB_OK;
}

/* The attack of an adversarial run's config.json (none: standard training). */
rb_status train_read_attack(const rb_registry *reg, json_object *root, const char *file, rb_train_config *c,
                             rb_params **params)
{
    const char *name = train_jstr(root, "attack"), *seed;
    json_object *given = NULL;
    rb_status s;
    *params = NULL;
    if (name == NULL)
        return RB_OK;
    if (!train_jhas(root, "attack_steps", json_type_int) || !train_jhas(root, "attack_restarts", json_type_int) ||
        !train_jhas(root, "attack_random_start", json_type_boolean) || !train_jhas(root, "attack_keep_best", json_type_boolean) ||
        !train_jhas(root, "eps_warmup", json_type_double) || !train_jhas(root, "eval_every", json_type_int) ||
        (seed = train_jstr(root, "attack_seed")) == NULL ||
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
    c->attack_options.steps = (int)train_jint(root, "attack_steps");
    c->attack_options.restarts = (int)train_jint(root, "attack_restarts");
    c->attack_options.random_start = json_object_get_boolean(json_object_object_get(root, "attack_random_start"));
    c->attack_options.keep_best = json_object_get_boolean(json_object_object_get(root, "attack_keep_best"));
    c->attack_options.seed = strtoull(seed, NULL, 10);
    c->eps_warmup = train_jdouble(root, "eps_warmup");
    c->eval_every = train_jint(root, "eval_every");
    return RB_OK;
}
