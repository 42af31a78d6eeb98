/* rb_train_config: its check, and config.json written from it and read back
 * into it at resume; the feature-cache words. */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiment/train_internal.h"
#include "runtime/params_json.h"
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

rb_train_config rb_train_config_default(void)
{
    rb_train_config c;
    memset(&c, 0, sizeof c);
    c.loader_threads = 1;
    c.precision = RB_PRECISION_F32;
    c.conv_algorithm = RB_CONV_WINOGRAD;
    c.tune = RB_TUNE_CACHED;
    c.augment = true;
    c.training.epochs = 10;
    c.training.batch_size = 128;
    c.training.eval_batch_size = 256;
    c.training.lr = 0.1;
    c.training.momentum = 0.9;
    c.training.weight_decay = 5e-4;
    c.training.eval_every = 1;
    c.adversarial.attack_options = rb_attack_options_default();
    c.transfer.fixed_features = true;
    c.transfer.feature_cache = RB_FEATURE_CACHE_F32;
    return c;
}

rb_status rb_train_config_check(const rb_train_config *c)
{
    rb_schedule sched;
    rb_dataset_spec *spec;
    rb_status s;
    if (c == NULL || (c->transfer.source == NULL && (c->arch == NULL || c->arch_params == NULL)))
        return train_invalid("training needs an architecture (--arch)");
    if (c->transfer.source != NULL) {
        if (c->transfer.task == NULL || c->transfer.task->kind != RB_PLUGIN_TASK)
            return train_invalid("transfer needs a task plugin (--task classify)");
        if (c->transfer.registry == NULL)
            return train_invalid("transfer needs the plugin registry to load the source's architecture");
        if (c->adversarial.attack != NULL)
            return train_invalid("transfer trains on clean images: --attack is not available with --source");
        if (c->transfer.bn_update && !c->transfer.fixed_features)
            return train_invalid("--bn-stats update applies to --mode fixed only (full-network mode always updates them)");
        if (strcmp(rb_feature_cache_str(c->transfer.feature_cache), "unknown") == 0)
            return train_invalid("--feature-cache %d is not one of f32|bf16|off", (int)c->transfer.feature_cache);
        if (c->transfer.feature_cache_limit > (uint64_t)INT64_MAX)
            return train_invalid("--feature-cache-limit %llu bytes is beyond any memory (0: the machine's)",
                                 (unsigned long long)c->transfer.feature_cache_limit);
    }
    if (c->data == NULL || c->data[0] == '\0')
        return train_invalid("training needs a dataset (--data)");
    if (c->out_dir == NULL || c->out_dir[0] == '\0')
        return train_invalid("training needs a run folder (--out DIR)");
    if (c->training.epochs < 1 || c->training.epochs >= ((int64_t)1 << 24))
        return train_invalid("--epochs %lld must lie in [1, 16777215]", (long long)c->training.epochs);
    if (c->training.batch_size < 1)
        return train_invalid("--batch-size %lld must be at least 1", (long long)c->training.batch_size);
    if (c->training.eval_batch_size < 1)
        return train_invalid("--eval-batch-size %lld must be at least 1", (long long)c->training.eval_batch_size);
    if (!isfinite(c->training.lr) || c->training.lr < 0)
        return train_invalid("--lr %g must be finite and >= 0", c->training.lr);
    if (!isfinite(c->training.momentum) || c->training.momentum < 0 || c->training.momentum >= 1)
        return train_invalid("--momentum %g must lie in [0, 1)", c->training.momentum);
    if (!isfinite(c->training.weight_decay) || c->training.weight_decay < 0)
        return train_invalid("--weight-decay %g must be finite and >= 0", c->training.weight_decay);
    if (!(c->training.bucket_mib == 0 || (c->training.bucket_mib >= 0.0625 && c->training.bucket_mib <= 1024)))
        return train_invalid("--bucket-mib %g must be in [0.0625, 1024] (0: the default, 4)", c->training.bucket_mib);
    if (c->training.nesterov && c->training.momentum <= 0)
        return train_invalid("--nesterov needs --momentum > 0");
    if (c->channels != 0 && c->channels != 1 && c->channels != 3)
        return train_invalid("--channels %d must be 1 or 3 (or 0: the data's own)", c->channels);
    if (c->image_size < 0 || c->per_class < 0 || c->threads < 0 || c->loader_threads < 0)
        return train_invalid("--image-size, --per-class and thread counts must be >= 0");
    if (c->transform != RB_TRANSFORM_NONE && c->transform != RB_TRANSFORM_PAPER)
        return train_invalid("unknown transform %d", (int)c->transform);
    if (c->precision != RB_PRECISION_F32 && c->precision != RB_PRECISION_BF16 && c->precision != RB_PRECISION_AUTO)
        return train_invalid("unknown precision %d", (int)c->precision);
    if (!rb_precision_available(c->precision))
        return train_invalid("--precision %s: this CPU has no bf16 convolutions in oneDNN (they need AVX-512); use "
                             "--precision f32", rb_precision_str(c->precision));
    if (c->tune != RB_TUNE_OFF && c->tune != RB_TUNE_CACHED && c->tune != RB_TUNE_FULL)
        return train_invalid("unknown tuning mode %d", (int)c->tune);
    if (c->conv_algorithm != RB_CONV_WINOGRAD && c->conv_algorithm != RB_CONV_DIRECT)
        return train_invalid("unknown convolution algorithm %d", (int)c->conv_algorithm);
    if (c->adversarial.attack != NULL) {
        if ((s = rb_attack_check(c->adversarial.attack, &c->adversarial.attack_options)) != RB_OK)
            return rb_error_prefix("--attack: ");
        if (c->adversarial.attack_options.target != RB_ATTACK_UNTARGETED)
            return train_invalid("adversarial training takes an untargeted attack");
    }
    if (!isfinite(c->adversarial.eps_warmup) || c->adversarial.eps_warmup < 0)
        return train_invalid("--eps-warmup %g must be finite and >= 0", c->adversarial.eps_warmup);
    if (c->adversarial.eps_warmup > 0 && (c->adversarial.attack == NULL || c->adversarial.attack->params == NULL ||
                                          has_eps_param(c->adversarial.attack->params) == 0))
        return train_invalid("--eps-warmup needs an --attack whose plugin has an eps parameter");
    if (c->training.eval_every < 0)
        return train_invalid("--eval-every %lld must be >= 0", (long long)c->training.eval_every);
    if ((s = rb_schedule_parse(c->training.schedule ? c->training.schedule : "constant", c->training.lr,
                               (double)c->training.epochs, &sched)) != RB_OK)
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

json_object *train_json_str_or_null(const char *s)
{
    return s != NULL ? json_object_new_string(s) : NULL;
}

/* The plan a run's engines used (robusta/tune.h), for config.json:
 * {"machine": M, "choices": {KEY: CHOICE, ...}}. */
json_object *train_plan_to_json(const rb_plan *plan)
{
    json_object *o = json_object_new_object(), *choices = json_object_new_object();
    json_object_object_add(o, "machine", json_object_new_string(rb_plan_machine(plan)));
    for (size_t i = 0; i < rb_plan_count(plan); i++) {
        const char *key, *choice;
        rb_plan_entry(plan, i, &key, &choice);
        json_object_object_add(choices, key, json_object_new_string(choice));
    }
    json_object_object_add(o, "choices", choices);
    return o;
}

rb_status train_read_plan(json_object *root, const char *file, rb_plan *plan)
{
    json_object *o, *machine, *choices;
    if (!json_object_object_get_ex(root, "plan", &o))
        return RB_OK; /* runs written before tuning, or that tuned nothing */
    if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "machine", &machine) ||
        !json_object_is_type(machine, json_type_string) || !json_object_object_get_ex(o, "choices", &choices) ||
        !json_object_is_type(choices, json_type_object))
        return rb_error_set(RB_ERR_CORRUPT, "%s: 'plan' is not {\"machine\": TEXT, \"choices\": {KEY: CHOICE, ...}}",
                            file);
    if (json_object_get_string_len(machine) > 0 && rb_plan_set_machine(plan, json_object_get_string(machine)) != RB_OK)
        return rb_error_set(RB_ERR_CORRUPT, "%s: the plan's machine is not 1 to 255 printable characters", file);
    json_object_object_foreach(choices, key, choice)
    {
        if (!json_object_is_type(choice, json_type_string) ||
            rb_plan_set(plan, key, json_object_get_string(choice)) != RB_OK)
            return rb_error_set(RB_ERR_CORRUPT, "%s: plan choice '%.60s': a key and its choice are 1 to 255 printable "
                                "characters", file, key);
    }
    return RB_OK;
}

rb_status train_write_config(const rb_train_config *c, const char *run_id, const rb_plan *plan, const char *path)
{
    json_object *root = json_object_new_object();
    char buf[4096];
    const char *txt;
    rb_status s;

    json_object_object_add(root, "command", json_object_new_string(c->transfer.source ? "transfer" : "train"));
    json_object_object_add(root, "robusta", json_object_new_string(RB_VERSION_STRING));
    json_object_object_add(root, "run_id", json_object_new_string(run_id));
    json_object_object_add(root, "arch", json_object_new_string(c->arch_name ? c->arch_name : c->arch->name));
    json_object_object_add(root, "arch_options", rb_params_to_json_object(c->arch_params));
    json_object_object_add(root, "data", json_object_new_string(c->data));
    json_object_object_add(root, "out", json_object_new_string(c->out_dir));
    json_object_object_add(root, "epochs", json_object_new_int64(c->training.epochs));
    json_object_object_add(root, "batch_size", json_object_new_int64(c->training.batch_size));
    json_object_object_add(root, "eval_batch_size", json_object_new_int64(c->training.eval_batch_size));
    json_object_object_add(root, "lr", rb_json_number(c->training.lr));
    json_object_object_add(root, "momentum", rb_json_number(c->training.momentum));
    json_object_object_add(root, "weight_decay", rb_json_number(c->training.weight_decay));
    json_object_object_add(root, "nesterov", json_object_new_boolean(c->training.nesterov));
    json_object_object_add(root, "schedule",
                           json_object_new_string(c->training.schedule ? c->training.schedule : "constant"));
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
    json_object_object_add(root, "transform", json_object_new_string(rb_transform_str(c->transform)));
    if (c->cache_dir != NULL && c->cache_dir[0] != '\0')
        json_object_object_add(root, "cache", json_object_new_string(c->cache_dir));
    if (c->adversarial.attack != NULL) {
        json_object_object_add(root, "attack",
                               json_object_new_string(c->adversarial.attack_name ? c->adversarial.attack_name
                                                                                 : c->adversarial.attack->name));
        json_object_object_add(root, "attack_options", rb_params_to_json_object(c->adversarial.attack_params));
        json_object_object_add(root, "attack_steps", json_object_new_int(c->adversarial.attack_options.steps));
        json_object_object_add(root, "attack_restarts", json_object_new_int(c->adversarial.attack_options.restarts));
        json_object_object_add(root, "attack_random_start",
                               json_object_new_boolean(c->adversarial.attack_options.random_start));
        json_object_object_add(root, "attack_keep_best",
                               json_object_new_boolean(c->adversarial.attack_options.keep_best));
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)c->adversarial.attack_options.seed);
        json_object_object_add(root, "attack_seed", json_object_new_string(buf));
        json_object_object_add(root, "eps_warmup", rb_json_number(c->adversarial.eps_warmup));
    }
    json_object_object_add(root, "eval_every", json_object_new_int64(c->training.eval_every));
    json_object_object_add(root, "sync_bn", json_object_new_boolean(c->training.sync_bn));
    if (c->training.bucket_mib > 0)
        json_object_object_add(root, "bucket_mib", json_object_new_double(c->training.bucket_mib));
    if (c->transfer.source != NULL) {
        json_object_object_add(root, "source", json_object_new_string(c->transfer.source));
        json_object_object_add(
            root, "task",
            json_object_new_string(c->transfer.task_name ? c->transfer.task_name : c->transfer.task->name));
        json_object_object_add(root, "task_options", rb_params_to_json_object(c->transfer.task_params));
        json_object_object_add(root, "mode", json_object_new_string(c->transfer.fixed_features ? "fixed" : "full"));
        json_object_object_add(root, "bn_stats", json_object_new_string(c->transfer.bn_update ? "update" : "frozen"));
        json_object_object_add(root, "feature_cache",
                               json_object_new_string(rb_feature_cache_str(c->transfer.feature_cache)));
        json_object_object_add(root, "feature_cache_limit",
                               json_object_new_int64((int64_t)c->transfer.feature_cache_limit));
    }
    /* last, so that earlier members keep their places (older readers) */
    json_object_object_add(root, "tune", json_object_new_string(rb_tune_mode_str(c->tune)));
    if (rb_plan_count(plan) > 0)
        json_object_object_add(root, "plan", train_plan_to_json(plan));
    {
        /* where and with what the run was made, for robusta report; never read back */
        char machine[512];
        json_object *plugins = json_object_new_object();
        const rb_plugin *used[] = {c->arch, c->adversarial.attack, c->transfer.task};
        if (rb_machine_info(machine, sizeof machine) == RB_OK)
            json_object_object_add(root, "machine", json_object_new_string(machine));
        for (size_t i = 0; i < sizeof used / sizeof used[0]; i++)
            if (used[i] != NULL)
                json_object_object_add(plugins, used[i]->name, json_object_new_string(used[i]->version));
        json_object_object_add(root, "plugins", plugins);
    }
    txt = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    {
        /* a plan makes the text any length: written with its newline as one piece */
        size_t n = strlen(txt);
        char *line = malloc(n + 2);
        if (line == NULL) {
            json_object_put(root);
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory writing %s", path);
        }
        memcpy(line, txt, n);
        line[n] = '\n';
        line[n + 1] = '\0';
        s = rb_file_write_atomic(path, line, n + 1);
        free(line);
    }
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
        train_jstr(root, "data") == NULL || train_jstr(root, "schedule") == NULL ||
        (seed = train_jstr(root, "seed")) == NULL)
        return rb_error_set(RB_ERR_CORRUPT, "%s: nesterov, augment, data, schedule or seed is missing", file);
    c->arch_name = train_jstr(root, "arch");
    c->data = train_jstr(root, "data");
    c->training.epochs = train_jint(root, "epochs");
    c->training.batch_size = train_jint(root, "batch_size");
    c->training.eval_batch_size = train_jint(root, "eval_batch_size");
    c->threads = (int)train_jint(root, "threads");
    c->loader_threads = (int)train_jint(root, "loader_threads");
    c->per_class = train_jint(root, "per_class");
    c->image_size = (int)train_jint(root, "image_size");
    c->channels = (int)train_jint(root, "channels");
    c->training.lr = train_jdouble(root, "lr");
    c->training.momentum = train_jdouble(root, "momentum");
    c->training.weight_decay = train_jdouble(root, "weight_decay");
    c->training.nesterov = json_object_get_boolean(json_object_object_get(root, "nesterov"));
    c->augment = json_object_get_boolean(json_object_object_get(root, "augment"));
    c->training.schedule = train_jstr(root, "schedule");
    c->classes = train_jstr(root, "classes");
    c->seed = strtoull(seed, NULL, 10);
    /* runs written before --transform stored their images as read */
    if (train_jstr(root, "transform") != NULL &&
        rb_transform_parse(train_jstr(root, "transform"), &c->transform) != RB_OK)
        return rb_error_set(RB_ERR_CORRUPT, "%s: unknown transform '%s'", file, train_jstr(root, "transform"));
    c->cache_dir = train_jstr(root, "cache");
    if (train_jhas(root, "eval_every", json_type_int))
        c->training.eval_every = train_jint(root, "eval_every");
    /* runs written before --sync-bn had each rank's statistics */
    if (train_jhas(root, "sync_bn", json_type_boolean))
        c->training.sync_bn = json_object_get_boolean(json_object_object_get(root, "sync_bn"));
    /* runs written before --bucket-mib had the default */
    if (train_jhas(root, "bucket_mib", json_type_double))
        c->training.bucket_mib = json_object_get_double(json_object_object_get(root, "bucket_mib"));
    /* runs written before precision existed were fp32 */
    if (train_jstr(root, "precision") != NULL &&
        rb_precision_parse(train_jstr(root, "precision"), &c->precision) != RB_OK)
        return rb_error_set(RB_ERR_CORRUPT, "%s: unknown precision '%s'", file, train_jstr(root, "precision"));
    /* and before the choice of convolution algorithm, direct: a resumed run
     * keeps its arithmetic, so that it continues bit for bit */
    c->conv_algorithm = RB_CONV_DIRECT;
    if (train_jstr(root, "conv_algorithm") != NULL &&
        rb_conv_algorithm_parse(train_jstr(root, "conv_algorithm"), &c->conv_algorithm) != RB_OK)
        return rb_error_set(RB_ERR_CORRUPT, "%s: unknown convolution algorithm '%s'", file,
                            train_jstr(root, "conv_algorithm"));
    /* and before tuning, the static rules */
    c->tune = RB_TUNE_OFF;
    if (train_jstr(root, "tune") != NULL && rb_tune_mode_parse(train_jstr(root, "tune"), &c->tune) != RB_OK)
        return rb_error_set(RB_ERR_CORRUPT, "%s: unknown tuning mode '%s'", file, train_jstr(root, "tune"));
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
    if ((s = rb_registry_find(reg, RB_PLUGIN_TASK, task, &c->transfer.task)) != RB_OK)
        return rb_error_prefix("%s: ", file);
    if ((s = rb_params_create(params, c->transfer.task->params)) != RB_OK)
        return s;
    {
        char where[4200];
        snprintf(where, sizeof where, "%s: task_options", file);
        if ((s = rb_params_set_json_object(*params, given, where)) != RB_OK)
            return s;
    }
    c->transfer.source = source;
    c->transfer.registry = reg;
    c->transfer.task_name = task;
    c->transfer.task_params = *params;
    c->transfer.fixed_features = strcmp(mode, "fixed") == 0;
    c->transfer.bn_update = strcmp(bn, "update") == 0;
    if (train_jstr(root, "feature_cache") != NULL) {
        if (rb_feature_cache_parse(train_jstr(root, "feature_cache"), &c->transfer.feature_cache) != RB_OK)
            return rb_error_set(RB_ERR_CORRUPT, "%s: feature_cache '%s' is not one of f32|bf16|off", file,
                                train_jstr(root, "feature_cache"));
    } else { /* written before bf16 caches: a boolean */
        c->transfer.feature_cache = json_object_get_boolean(json_object_object_get(root, "no_feature_cache"))
                                        ? RB_FEATURE_CACHE_OFF
                                        : RB_FEATURE_CACHE_F32;
    }
    c->transfer.feature_cache_limit = 0;
    if (train_jhas(root, "feature_cache_limit", json_type_int)) {
        int64_t limit = json_object_get_int64(json_object_object_get(root, "feature_cache_limit"));
        if (limit < 0)
            return rb_error_set(RB_ERR_CORRUPT, "%s: feature_cache_limit %lld is negative", file, (long long)limit);
        c->transfer.feature_cache_limit = (uint64_t)limit;
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
        !train_jhas(root, "attack_random_start", json_type_boolean) ||
        !train_jhas(root, "attack_keep_best", json_type_boolean) || !train_jhas(root, "eps_warmup", json_type_double) ||
        !train_jhas(root, "eval_every", json_type_int) || (seed = train_jstr(root, "attack_seed")) == NULL ||
        !json_object_object_get_ex(root, "attack_options", &given) || !json_object_is_type(given, json_type_object))
        return rb_error_set(RB_ERR_CORRUPT, "%s: the attack's settings (attack_steps, attack_options ...) are missing",
                            file);
    if ((s = rb_registry_find(reg, RB_PLUGIN_ATTACK, name, &c->adversarial.attack)) != RB_OK)
        return rb_error_prefix("%s: ", file);
    if ((s = rb_params_create(params, c->adversarial.attack->params)) != RB_OK)
        return s;
    {
        char where[4200];
        snprintf(where, sizeof where, "%s: attack_options", file);
        if ((s = rb_params_set_json_object(*params, given, where)) != RB_OK)
            return s;
    }
    c->adversarial.attack_name = name;
    c->adversarial.attack_params = *params;
    c->adversarial.attack_options = rb_attack_options_default();
    c->adversarial.attack_options.steps = (int)train_jint(root, "attack_steps");
    c->adversarial.attack_options.restarts = (int)train_jint(root, "attack_restarts");
    c->adversarial.attack_options.random_start =
        json_object_get_boolean(json_object_object_get(root, "attack_random_start"));
    c->adversarial.attack_options.keep_best = json_object_get_boolean(json_object_object_get(root, "attack_keep_best"));
    c->adversarial.attack_options.seed = strtoull(seed, NULL, 10);
    c->adversarial.eps_warmup = train_jdouble(root, "eps_warmup");
    c->training.eval_every = train_jint(root, "eval_every");
    return RB_OK;
}
