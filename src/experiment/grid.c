/* The grid runner: source models (arch x eps x seed) trained, then each
 * transferred (target x mode x seed); finished runs are recorded in their
 * folder's result.json and skipped next time, so a killed grid resumes.
 * robusta/grid.h documents the file format and the outputs. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include <robusta/grid.h>
#include <robusta/robusta.h>

#include "experiment/grid_internal.h"
#include "experiment/report_internal.h"
#include "sys/internal.h"
#include "sys/json.h"

typedef struct grid_ctx {
    const rb_grid_spec *spec;
    const rb_grid_options *opt;
    int threads;
    size_t step, steps;       /* runs of this shard, for [k/N] */
    double robust_eps;        /* the eps source models are attacked at (the largest) */
    const rb_plugin **tasks;  /* each target's task plugin, checked before anything trains */
    grid_eval_attack eval;    /* [transfer] eval-attack, checked before anything trains */
} grid_ctx;

/* What a finished source run recorded. */
typedef struct source_result {
    double test_acc, robust_acc, seconds;
    int64_t robust_examples; /* the test images attacked (0: none) */
} source_result;

static rb_status make_dir(const char *path)
{
    if (mkdir(path, 0777) == 0 || errno == EEXIST)
        return RB_OK;
    return rb_error_set(RB_ERR_IO, "cannot create the folder %s: %s", path, strerror(errno));
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* "8/255" -> "8_255": eps as written, safe in a folder name. */
static void safe_name(char *out, size_t size, const char *text)
{
    size_t i = 0;
    for (; text[i] != '\0' && i + 1 < size; i++) {
        char c = text[i];
        out[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-'
                     ? c
                     : '_';
    }
    out[i] = '\0';
}

static void source_dir(const grid_ctx *g, size_t a, size_t e, size_t s, char *out, size_t size)
{
    char eps[64];
    safe_name(eps, sizeof eps, g->spec->source.eps_text[e]);
    snprintf(out, size, "%s/sources/%s-eps%s-s%llu", g->opt->out_dir, g->spec->archs[a].label, eps,
             (unsigned long long)g->spec->source.seeds[s]);
}

static void transfer_dir(const grid_ctx *g, size_t a, size_t e, size_t s, size_t t, bool fixed, size_t ts, char *out,
                         size_t size)
{
    char eps[64];
    safe_name(eps, sizeof eps, g->spec->source.eps_text[e]);
    snprintf(out, size, "%s/transfers/%s-eps%s-s%llu/%s-%s-s%llu", g->opt->out_dir, g->spec->archs[a].label, eps,
             (unsigned long long)g->spec->source.seeds[s], g->spec->targets[t].label, fixed ? "fixed" : "full",
             (unsigned long long)g->spec->transfer.seeds[ts]);
}

/* A JSON file, or NULL when missing or unreadable (the run is then redone). */
static json_object *read_json_file(const char *path)
{
    unsigned char *bytes = NULL;
    size_t size = 0;
    json_object *j = NULL;
    char *text;
    if (!file_exists(path) || rb_file_read_all(path, (size_t)1 << 20, &bytes, &size) != RB_OK)
        return NULL;
    text = malloc(size + 1);
    if (text != NULL) {
        memcpy(text, bytes, size);
        text[size] = '\0';
        j = json_tokener_parse(text);
        free(text);
    }
    free(bytes);
    if (j != NULL && !json_object_is_type(j, json_type_object)) {
        json_object_put(j);
        j = NULL;
    }
    if (j == NULL)
        rb_log(RB_LOG_WARN, "%s is not a JSON object: the run is redone", path);
    return j;
}

static double jnum(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || v == NULL ||
        !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
        return NAN;
    return json_object_get_double(v);
}

static rb_status write_json_file(const char *path, json_object *o)
{
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    return rb_file_write_atomic(path, text, strlen(text));
}

static void say(const grid_ctx *g, const char *fmt, ...) RB_PRINTF(2, 3);

static void say(const grid_ctx *g, const char *fmt, ...)
{
    va_list ap;
    if (g->opt->quiet)
        return;
    fprintf(stderr, "grid %s: ", g->spec->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Sets a section's plugin options (the keys a section does not know itself)
 * on `params`. A key the plugin does not declare is refused naming the file,
 * the line and, when one is close, the key (the section's own or the
 * plugin's) that was meant. */
static rb_status set_options(const grid_ctx *g, const char *section, const char *what, const rb_plugin *plugin,
                             const rb_grid_option *options, size_t n, const char *const *own, size_t n_own,
                             rb_params *params)
{
    for (size_t i = 0; i < n; i++) {
        const rb_grid_option *o = &options[i];
        rb_status s;
        if (!rb_params_declares(params, o->key)) {
            const char *names[64], *near;
            size_t k = 0;
            for (; k < n_own && k < 64; k++)
                names[k] = own[k];
            for (const rb_param_spec *p = plugin->params; p != NULL && p->name != NULL && k < 64; p++)
                names[k++] = p->name;
            near = rb_suggest(o->key, names, k);
            if (near != NULL)
                return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                    "%s:%d: %s: unknown key '%s' (%s %s plugin %s; did you mean '%s'?)", g->spec->path,
                                    o->line, section, o->key, what, rb_plugin_kind_str(plugin->kind), plugin->name,
                                    near);
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s:%d: %s: unknown key '%s' (%s %s plugin %s; `robusta plugins` lists them)",
                                g->spec->path, o->line, section, o->key, what, rb_plugin_kind_str(plugin->kind),
                                plugin->name);
        }
        if ((s = rb_params_set(params, o->key, o->value)) != RB_OK)
            return rb_error_prefix("%s:%d: %s: ", g->spec->path, o->line, section);
    }
    return RB_OK;
}

/* The arch plugin and parameters of an [arch] section; an option the plugin
 * does not have is refused naming the file and line. */
static rb_status arch_params(const grid_ctx *g, const rb_grid_arch *arch, const rb_plugin **plugin,
                             rb_params **params)
{
    static const char *const own[] = {"arch"};
    const char *preset = NULL;
    char section[96];
    rb_status s = rb_arch_resolve(g->opt->registry, arch->arch, plugin, &preset);
    *params = NULL;
    snprintf(section, sizeof section, "[arch %s]", arch->label);
    if (s != RB_OK)
        return rb_error_prefix("%s:%d: %s: ", g->spec->path, arch->line, section);
    if ((s = rb_params_create(params, (*plugin)->params)) != RB_OK)
        return s;
    if (preset != NULL && (s = rb_params_set(*params, RB_PARAM_PRESET, preset)) != RB_OK)
        return s;
    return set_options(g, section, "not an option of", *plugin, arch->options, arch->n_options, own, 1, *params);
}

/* A name that can go into an unquoted field of results.csv and fits
 * rb_grid_result.metric. */
static bool metric_name_ok(const char *name)
{
    return name[0] != '\0' && strlen(name) < sizeof ((rb_grid_result *)0)->metric &&
           strpbrk(name, ",\"\r\n") == NULL;
}

/* The task plugin and parameters of a [target] section: its own task or
 * [transfer]'s, with the section's other keys as options; an unknown task,
 * an option the plugin does not have or a primary metric results.csv cannot
 * hold is refused naming the file and line. */
static rb_status target_params(const grid_ctx *g, const rb_grid_target *target, const rb_plugin **plugin,
                               rb_params **params)
{
    static const char *const own[] = {"data",     "classes",    "per-class", "image-size", "task",     "epochs",
                                      "batch-size", "lr-fixed", "lr-full",   "schedule",   "transform", "metric"};
    char section[96];
    rb_status s;
    *params = NULL;
    snprintf(section, sizeof section, "[target %s]", target->label);
    if ((s = rb_registry_find(g->opt->registry, RB_PLUGIN_TASK, target->task, plugin)) != RB_OK)
        return target->task_line > 0
                   ? rb_error_prefix("%s:%d: %s: ", g->spec->path, target->task_line, section)
                   : rb_error_prefix("%s: %s: the task of [transfer]: ", g->spec->path, section);
    if (!metric_name_ok((*plugin)->ops.task->primary_metric))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s:%d: %s: task plugin %s ranks by '%.40s', which results.csv cannot hold (a metric "
                            "name has 1 to 31 characters and no comma or quote)",
                            g->spec->path, target->task_line > 0 ? target->task_line : target->line, section,
                            (*plugin)->name, (*plugin)->ops.task->primary_metric);
    if (target->metric != NULL && !metric_name_ok(target->metric))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s: %s: metric '%.40s' cannot be held by results.csv (a metric name has 1 to 31 "
                            "characters and no comma or quote)",
                            g->spec->path, section, target->metric);
    if ((s = rb_params_create(params, (*plugin)->params)) != RB_OK)
        return s;
    return set_options(g, section, "not a [target] key nor an option of", *plugin, target->options,
                       target->n_options, own, sizeof own / sizeof own[0], *params);
}

/* The metric a target reports: its own `metric`, else its task's primary one. */
static const char *target_metric(const grid_ctx *g, size_t t)
{
    return g->spec->targets[t].metric != NULL ? g->spec->targets[t].metric : g->tasks[t]->ops.task->primary_metric;
}

/* The metric a finished transfer's result.json names into `out` (one that
 * names none was written before metrics had names, by classification: its
 * target_acc is an accuracy). Refused when it is not the metric the target's
 * task reports now: the target's task changed after the run, and its result
 * would be reported under the wrong name. */
static rb_status result_metric(const grid_ctx *g, size_t t, json_object *done, const char *path, char *out,
                               size_t size)
{
    const char *want = target_metric(g, t), *have = "accuracy";
    json_object *v;
    if (json_object_object_get_ex(done, "metric", &v) && json_object_is_type(v, json_type_string))
        have = json_object_get_string(v);
    if (strcmp(have, want) != 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s holds a result in '%.40s', but [target %s] now reports '%s' (task %s): move that "
                            "run folder away to redo it, or give the target another label",
                            path, have, g->spec->targets[t].label, want, g->tasks[t]->name);
    snprintf(out, size, "%s", want);
    return RB_OK;
}

/* The source's threat model at `eps_text`, with the robustness library's step
 * size factor * eps / steps (grid_attack_params); the grid's random start
 * needs an attack that has one. */
static rb_status attack_params(const grid_ctx *g, const rb_plugin *attack, const char *eps_text, double eps,
                               int64_t steps, bool random_start, rb_params **out)
{
    rb_status s = grid_attack_params(g->spec, attack, eps_text, eps, steps, true, random_start, out);
    if (s == RB_OK && attack->ops.attack->run == NULL && attack->ops.attack->random_start == NULL && random_start)
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s has no random start: set random-start = false in [source]",
                         attack->name);
    if (s != RB_OK)
        rb_error_prefix("%s: [source] attack %s: ", g->spec->path, attack->name);
    return s;
}

/* The model a run folder holds (model.rbt) and the test split of `data` in
 * its geometry, as the run read its images. */
static rb_status open_model_and_test(const grid_ctx *g, const char *dir, const char *data, const char *classes,
                                     rb_transform transform, rb_model **model, rb_split **split)
{
    char path[4200];
    rb_status s;
    snprintf(path, sizeof path, "%s/model.rbt", dir);
    s = rb_model_load(model, g->opt->registry, path, 0, 0);
    if (s == RB_OK)
        s = rb_eval_open_split(*model, data, RB_SPLIT_TEST,
                               &(rb_split_options){.classes = classes, .transform = transform,
                                                   .cache_dir = g->spec->cache},
                               split);
    return s;
}

/* The test accuracy the run logged at its last epoch (NAN: none). */
static double logged_test_acc(const char *dir)
{
    char path[4200];
    unsigned char *bytes = NULL;
    size_t size = 0, start = 0;
    double acc = NAN;
    snprintf(path, sizeof path, "%s/log.jsonl", dir);
    if (rb_file_read_all(path, (size_t)64 << 20, &bytes, &size) != RB_OK)
        return NAN;
    for (size_t i = 0; i + 1 < size; i++) /* the last line */
        if (bytes[i] == '\n')
            start = i + 1;
    if (start < size) {
        char *line = malloc(size - start + 1);
        json_object *j = NULL;
        if (line != NULL) {
            memcpy(line, bytes + start, size - start);
            line[size - start] = '\0';
            j = json_tokener_parse(line);
            free(line);
        }
        if (j != NULL)
            acc = jnum(j, "test_acc");
        json_object_put(j);
    }
    free(bytes);
    return acc;
}

/* Clean (and robust) test accuracy of a trained source model: the training
 * log's, unless the grid asks for an attack. */
static rb_status evaluate_source(const grid_ctx *g, const char *dir, source_result *res)
{
    const rb_grid_source *src = &g->spec->source;
    rb_model *model = NULL;
    rb_split *split = NULL;
    rb_params *ap = NULL;
    const rb_plugin *attack = NULL;
    rb_eval_result ev;
    rb_engine_options eo;
    rb_status s;
    memset(&ev, 0, sizeof ev);
    if (src->eval_attack_steps == 0 || g->robust_eps <= 0) {
        res->test_acc = logged_test_acc(dir);
        res->robust_acc = NAN;
        if (!isnan(res->test_acc))
            return RB_OK;
    }
    s = open_model_and_test(g, dir, src->data, src->classes, src->transform, &model, &split);
    eo = (rb_engine_options){.threads = g->threads, .precision = g->spec->precision,
                             .conv_algorithm = g->spec->conv_algorithm};
    if (s == RB_OK && src->eval_attack_steps > 0 && g->robust_eps > 0) {
        rb_attack_options ao = rb_attack_options_default();
        char eps[64];
        ao.steps = (int)src->eval_attack_steps;
        ao.seed = 0;
        snprintf(eps, sizeof eps, "%.9g", g->robust_eps);
        s = rb_registry_find(g->opt->registry, RB_PLUGIN_ATTACK, src->attack, &attack);
        /* a random start where the attack has one */
        ao.random_start = s == RB_OK && (attack->ops.attack->random_start != NULL || attack->ops.attack->run != NULL);
        if (s == RB_OK)
            s = attack_params(g, attack, eps, g->robust_eps, ao.steps, ao.random_start, &ap);
        if (s == RB_OK && src->eval_attack_per_class > 0) {
            /* clean accuracy on every test image, the attack on a subset */
            rb_split_options so = {.per_class = src->eval_attack_per_class, .seed = 0};
            rb_split *subset = NULL;
            if ((s = rb_evaluate(model, split, 256, &eo, &ev)) == RB_OK &&
                (s = rb_split_apply(&subset, split, &so)) == RB_OK) {
                double clean = ev.accuracy;
                rb_eval_result_free(&ev);
                s = rb_evaluate_robust(model, subset, 256, &eo, attack, ap, &ao, &ev);
                ev.accuracy = clean;
                res->robust_examples = rb_split_count(subset);
            }
            rb_split_destroy(subset);
        } else if (s == RB_OK) {
            s = rb_evaluate_robust(model, split, 256, &eo, attack, ap, &ao, &ev);
            res->robust_examples = rb_split_count(split);
        }
        res->robust_acc = ev.robust_accuracy;
    } else if (s == RB_OK) {
        s = rb_evaluate(model, split, 256, &eo, &ev);
        res->robust_acc = NAN;
    }
    res->test_acc = ev.accuracy;
    rb_eval_result_free(&ev);
    rb_params_destroy(ap);
    rb_split_destroy(split);
    rb_model_destroy(model);
    return s;
}

static rb_status run_source(grid_ctx *g, size_t a, size_t e, size_t sd, source_result *res)
{
    const rb_grid_source *src = &g->spec->source;
    const rb_grid_arch *arch = &g->spec->archs[a];
    char dir[4096], path[4200];
    const rb_plugin *plugin = NULL, *attack = NULL;
    rb_params *params = NULL, *ap = NULL;
    rb_train_result tr;
    json_object *done;
    double t0 = rb_monotonic_seconds();
    rb_status s;

    source_dir(g, a, e, sd, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/result.json", dir);
    g->step++;
    if ((done = read_json_file(path)) != NULL) {
        res->test_acc = jnum(done, "test_acc");
        res->robust_acc = jnum(done, "robust_acc");
        res->seconds = jnum(done, "seconds");
        json_object_put(done);
        say(g, "[%zu/%zu] source %s eps %s seed %llu: done before (test %.2f%%)", g->step, g->steps, arch->label,
            src->eps_text[e], (unsigned long long)src->seeds[sd], 100 * res->test_acc);
        return RB_OK;
    }
    say(g, "[%zu/%zu] source %s eps %s seed %llu: training %s", g->step, g->steps, arch->label, src->eps_text[e],
        (unsigned long long)src->seeds[sd], src->eps[e] > 0 ? "adversarially" : "(standard)");
    if ((s = make_dir(dir)) != RB_OK)
        return s;
    snprintf(path, sizeof path, "%s/last.rbt", dir);
    if (file_exists(path)) {
        s = rb_train_resume(g->opt->registry, dir, 0, g->threads, false, g->opt->quiet, &tr);
    } else {
        rb_train_config c;
        c = rb_train_config_default();
        s = arch_params(g, arch, &plugin, &params);
        c.arch_name = arch->arch;
        c.arch = plugin;
        c.arch_params = params;
        c.data = src->data;
        c.out_dir = dir;
        c.training.epochs = src->epochs;
        c.training.batch_size = src->batch_size;
        c.training.eval_batch_size = 256;
        c.training.lr = src->lr;
        c.training.momentum = src->momentum;
        c.training.weight_decay = src->weight_decay;
        c.training.schedule = src->schedule;
        c.seed = src->seeds[sd];
        c.threads = g->threads;
        c.precision = g->spec->precision;
        c.conv_algorithm = g->spec->conv_algorithm;
        c.tune = g->spec->tune;
        c.loader_threads = 1;
        c.classes = src->classes;
        c.per_class = src->per_class;
        c.image_size = (int)src->image_size;
        c.transform = src->transform;
        c.cache_dir = g->spec->cache;
        c.augment = src->augment;
        c.quiet = g->opt->quiet;
        c.training.eval_every = src->epochs; /* test accuracy once, at the end */
        if (s == RB_OK && src->eps[e] > 0) {
            s = rb_registry_find(g->opt->registry, RB_PLUGIN_ATTACK, src->attack, &attack);
            if (s != RB_OK)
                rb_error_prefix("%s: [source] attack: ", g->spec->path);
            if (s == RB_OK)
                s = attack_params(g, attack, src->eps_text[e], src->eps[e], src->steps, src->random_start, &ap);
            c.adversarial.attack = attack;
            c.adversarial.attack_params = ap;
            c.adversarial.attack_options = rb_attack_options_default();
            c.adversarial.attack_options.steps = (int)src->steps;
            c.adversarial.attack_options.random_start = src->random_start;
            c.adversarial.attack_options.seed = src->seeds[sd];
        }
        if (s == RB_OK)
            s = rb_train(&c, &tr);
    }
    rb_params_destroy(params);
    rb_params_destroy(ap);
    if (s == RB_OK)
        s = evaluate_source(g, dir, res);
    if (s != RB_OK)
        return rb_error_prefix("source %s: ", dir);
    res->seconds = rb_monotonic_seconds() - t0;
    done = json_object_new_object();
    json_object_object_add(done, "arch", json_object_new_string(arch->label));
    json_object_object_add(done, "eps", json_object_new_string(src->eps_text[e]));
    json_object_object_add(done, "seed", json_object_new_int64((int64_t)src->seeds[sd]));
    json_object_object_add(done, "test_acc", rb_json_number(res->test_acc));
    json_object_object_add(done, "robust_acc", rb_json_number(res->robust_acc));
    json_object_object_add(done, "robust_eps", rb_json_number(isnan(res->robust_acc) ? NAN : g->robust_eps));
    if (res->robust_examples > 0)
        json_object_object_add(done, "robust_examples", json_object_new_int64(res->robust_examples));
    json_object_object_add(done, "seconds", rb_json_number(res->seconds));
    snprintf(path, sizeof path, "%s/result.json", dir);
    s = write_json_file(path, done);
    json_object_put(done);
    if (isnan(res->robust_acc))
        say(g, "[%zu/%zu] source %s eps %s: test %.2f%% (%.0f s)", g->step, g->steps, arch->label, src->eps_text[e],
            100 * res->test_acc, res->seconds);
    else
        say(g, "[%zu/%zu] source %s eps %s: test %.2f%%, robust %.2f%% at eps %g (%.0f s)", g->step, g->steps,
            arch->label, src->eps_text[e], 100 * res->test_acc, 100 * res->robust_acc, g->robust_eps, res->seconds);
    return s;
}

static void fill_row(const grid_ctx *g, size_t a, size_t e, size_t sd, size_t t, bool fixed, size_t ts,
                     const source_result *src, rb_grid_result *row)
{
    memset(row, 0, sizeof *row);
    snprintf(row->arch, sizeof row->arch, "%s", g->spec->archs[a].label);
    snprintf(row->eps_text, sizeof row->eps_text, "%s", g->spec->source.eps_text[e]);
    row->source_eps = g->spec->source.eps[e];
    row->source_seed = g->spec->source.seeds[sd];
    row->source_test_acc = src ? src->test_acc : NAN;
    row->source_robust_acc = src ? src->robust_acc : NAN;
    snprintf(row->target, sizeof row->target, "%s", g->spec->targets[t].label);
    snprintf(row->mode, sizeof row->mode, "%s", fixed ? "fixed" : "full");
    row->transfer_seed = g->spec->transfer.seeds[ts];
    row->target_acc = NAN;
    row->target_robust_acc = NAN;
    row->seconds = NAN;
    snprintf(row->metric, sizeof row->metric, "%s", target_metric(g, t));
}

/* Whether target t's transfers are evaluated under eval-attack: the grid
 * has one and the target's task a classification loss. */
static bool attacked(const grid_ctx *g, size_t t)
{
    return g->eval.on && g->tasks[t]->ops.task->dataset_kind == RB_DATASET_CLASSIFICATION;
}

/* Does a finished transfer's result hold its robust accuracy under the
 * grid's eval-attack (not another attack's)? */
static bool robust_recorded(const grid_ctx *g, json_object *done)
{
    json_object *v;
    return json_object_object_get_ex(done, "robust_attack", &v) && json_object_is_type(v, json_type_string) &&
           strcmp(json_object_get_string(v), g->eval.description) == 0 && !isnan(jnum(done, "robust_acc"));
}

/* The robust target accuracy of the transfer in `dir` under eval-attack,
 * added to its result `done` (robust_acc, robust_attack, robust_examples). */
static rb_status evaluate_transfer(const grid_ctx *g, size_t t, const char *dir, const char *metric, json_object *done,
                                   double *robust)
{
    const rb_grid_target *target = &g->spec->targets[t];
    const rb_engine_options eo = {.threads = g->threads, .precision = g->spec->precision,
                                  .conv_algorithm = g->spec->conv_algorithm};
    rb_model *model = NULL;
    rb_split *split = NULL;
    int64_t examples = 0;
    rb_status s = open_model_and_test(g, dir, target->data, target->classes, target->transform, &model, &split);
    if (s == RB_OK)
        s = grid_eval_attack_run(&g->eval, g->opt->registry, model, split, g->spec->transfer.eval_attack_per_class,
                                 &eo, metric, robust, &examples);
    rb_split_destroy(split);
    rb_model_destroy(model);
    if (s != RB_OK)
        return rb_error_prefix("transfer %s: eval-attack %s: ", dir, g->eval.description);
    json_object_object_add(done, "robust_acc", rb_json_number(*robust));
    json_object_object_add(done, "robust_attack", json_object_new_string(g->eval.description));
    json_object_object_add(done, "robust_examples", json_object_new_int64(examples));
    return RB_OK;
}

static rb_status run_transfer(grid_ctx *g, size_t a, size_t e, size_t sd, size_t t, bool fixed, size_t ts,
                              const source_result *src)
{
    const rb_grid_transfer *tf = &g->spec->transfer;
    const rb_grid_target *target = &g->spec->targets[t];
    const rb_grid_target_settings set = rb_grid_target_settings_of(g->spec, t);
    const char *metric = target_metric(g, t);
    char dir[4096], path[4200], source[4200];
    rb_grid_result row;
    rb_train_result tr;
    json_object *done;
    double t0 = rb_monotonic_seconds();
    rb_log_level level;
    rb_status s;

    transfer_dir(g, a, e, sd, t, fixed, ts, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/result.json", dir);
    g->step++;
    if ((done = read_json_file(path)) != NULL) {
        char name[32];
        s = result_metric(g, t, done, path, name, sizeof name);
        if (s == RB_OK && attacked(g, t) && !robust_recorded(g, done)) {
            /* finished before the grid had this eval-attack: evaluate it now */
            double robust, t1 = rb_monotonic_seconds();
            if ((s = evaluate_transfer(g, t, dir, name, done, &robust)) == RB_OK &&
                (s = write_json_file(path, done)) == RB_OK)
                say(g, "%s: robust %s %.2f%% under %s (%.1f s)", dir, rb_grid_metric_label(name), 100 * robust,
                    g->eval.description, rb_monotonic_seconds() - t1);
        }
        if (s == RB_OK)
            say(g, "[%zu/%zu] %s eps %s -> %s %s seed %llu: done before (%s %.2f%%)", g->step, g->steps,
                g->spec->archs[a].label, g->spec->source.eps_text[e], target->label, fixed ? "fixed" : "full",
                (unsigned long long)tf->seeds[ts], rb_grid_metric_label(name), 100 * jnum(done, "target_acc"));
        json_object_put(done);
        return s;
    }
    fill_row(g, a, e, sd, t, fixed, ts, src, &row);
    {
        /* transfers/<source>/ first, then the run's own folder */
        char parent[4096];
        snprintf(parent, sizeof parent, "%s", dir);
        *strrchr(parent, '/') = '\0';
        if ((s = make_dir(parent)) != RB_OK || (s = make_dir(dir)) != RB_OK)
            return s;
    }
    snprintf(path, sizeof path, "%s/last.rbt", dir);
    /* One line per transfer (below), not one per epoch: they are many and short. */
    level = rb_log_get_level();
    if (level > RB_LOG_WARN)
        rb_log_set_level(RB_LOG_WARN);
    if (file_exists(path)) {
        /* a stopped run resumes with the task it started with: the target's
         * task must still be that one, or the result would be another's */
        json_object *config, *v;
        snprintf(path, sizeof path, "%s/config.json", dir);
        if ((config = read_json_file(path)) != NULL && json_object_object_get_ex(config, "task", &v) &&
            json_object_is_type(v, json_type_string) && strcmp(json_object_get_string(v), target->task) != 0)
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                             "%s: the stopped run trains task %.40s, but [target %s] now has task %s: move that run "
                             "folder away to redo it, or give the target another label",
                             dir, json_object_get_string(v), target->label, target->task);
        else
            s = rb_train_resume(g->opt->registry, dir, 0, g->threads, false, true, &tr);
        json_object_put(config);
    } else {
        rb_train_config c;
        rb_params *task_params = NULL;
        char sdir[4096];
        c = rb_train_config_default();
        source_dir(g, a, e, sd, sdir, sizeof sdir);
        snprintf(source, sizeof source, "%s/model.rbt", sdir);
        c.transfer.source = source;
        c.transfer.registry = g->opt->registry;
        c.transfer.task_name = target->task;
        if ((s = target_params(g, target, &c.transfer.task, &task_params)) != RB_OK) {
            rb_params_destroy(task_params);
            rb_log_set_level(level);
            return s;
        }
        c.transfer.task_params = task_params;
        c.transfer.fixed_features = fixed;
        c.transfer.bn_update = tf->bn_update;
        c.data = target->data;
        c.out_dir = dir;
        c.training.epochs = set.epochs;
        c.training.batch_size = set.batch_size;
        c.training.eval_batch_size = 256;
        c.training.lr = fixed ? set.lr_fixed : set.lr_full;
        c.training.momentum = tf->momentum;
        c.training.weight_decay = tf->weight_decay;
        c.training.schedule = set.schedule;
        c.seed = tf->seeds[ts];
        c.threads = g->threads;
        c.precision = g->spec->precision;
        c.conv_algorithm = g->spec->conv_algorithm;
        c.tune = g->spec->tune;
        c.loader_threads = 1;
        c.classes = target->classes;
        c.per_class = target->per_class;
        c.image_size = (int)target->image_size;
        c.transform = target->transform;
        c.cache_dir = g->spec->cache;
        /* the paper trains on RandomResizedCrop and flips, as the transfer command does */
        c.augment = tf->augment || target->transform == RB_TRANSFORM_PAPER;
        c.quiet = true;
        c.training.eval_every = set.epochs; /* the target's test score once, at the end */
        s = rb_train(&c, &tr);
        rb_params_destroy(task_params);
    }
    rb_log_set_level(level);
    if (s == RB_OK) {
        json_object *metrics;
        snprintf(path, sizeof path, "%s/metrics.json", dir);
        if ((metrics = read_json_file(path)) == NULL)
            s = rb_error_set(RB_ERR_CORRUPT, "%s is missing or unreadable after the transfer", path);
        else if (isnan(row.target_acc = jnum(metrics, metric)))
            s = rb_error_set(RB_ERR_CORRUPT, "%s has no number '%s', the metric [target %s] reports (task %s)", path,
                             metric, target->label, g->tasks[t]->name);
        else if (row.target_acc < 0 || row.target_acc > 1)
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                             "%s: '%s' is %g; a grid reports a target's metric as a fraction in [0, 1]", path,
                             metric, row.target_acc);
        json_object_put(metrics);
    }
    if (s != RB_OK)
        return rb_error_prefix("transfer %s: ", dir);
    row.seconds = rb_monotonic_seconds() - t0;
    done = json_object_new_object();
    json_object_object_add(done, "arch", json_object_new_string(row.arch));
    json_object_object_add(done, "eps", json_object_new_string(row.eps_text));
    json_object_object_add(done, "source_seed", json_object_new_int64((int64_t)row.source_seed));
    json_object_object_add(done, "target", json_object_new_string(row.target));
    json_object_object_add(done, "mode", json_object_new_string(row.mode));
    json_object_object_add(done, "transfer_seed", json_object_new_int64((int64_t)row.transfer_seed));
    json_object_object_add(done, "task", json_object_new_string(target->task));
    json_object_object_add(done, "metric", json_object_new_string(row.metric));
    json_object_object_add(done, "target_acc", rb_json_number(row.target_acc));
    json_object_object_add(done, "seconds", rb_json_number(row.seconds));
    /* the result is written once, robust accuracy included: a stop during
     * the attack leaves a finished transfer to evaluate again */
    if (attacked(g, t))
        s = evaluate_transfer(g, t, dir, row.metric, done, &row.target_robust_acc);
    snprintf(path, sizeof path, "%s/result.json", dir);
    if (s == RB_OK)
        s = write_json_file(path, done);
    json_object_put(done);
    if (s != RB_OK)
        return s;
    if (attacked(g, t))
        say(g, "[%zu/%zu] %s eps %s -> %s %s seed %llu: %s %.2f%%, robust %.2f%% (%.1f s and %.1f s attacking)",
            g->step, g->steps, row.arch, row.eps_text, row.target, row.mode, (unsigned long long)row.transfer_seed,
            rb_grid_metric_label(row.metric), 100 * row.target_acc, 100 * row.target_robust_acc, row.seconds,
            rb_monotonic_seconds() - t0 - row.seconds);
    else
        say(g, "[%zu/%zu] %s eps %s -> %s %s seed %llu: %s %.2f%% (%.1f s)", g->step, g->steps, row.arch,
            row.eps_text, row.target, row.mode, (unsigned long long)row.transfer_seed,
            rb_grid_metric_label(row.metric), 100 * row.target_acc, row.seconds);
    return s;
}

/* Every finished transfer of the grid (whichever shard ran it), in grid order. */
static rb_status collect(const grid_ctx *g, rb_grid_result **rows, size_t *count)
{
    const rb_grid_spec *sp = g->spec;
    size_t cap = sp->n_archs * sp->source.n_eps * sp->source.n_seeds * sp->n_targets * 2 * sp->transfer.n_seeds, n = 0;
    rb_grid_result *out = calloc(cap ? cap : 1, sizeof *out);
    char dir[4096], path[4200];
    rb_status s = RB_OK;
    if (out == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory collecting results");
    for (size_t a = 0; s == RB_OK && a < sp->n_archs; a++)
        for (size_t e = 0; s == RB_OK && e < sp->source.n_eps; e++)
            for (size_t sd = 0; s == RB_OK && sd < sp->source.n_seeds; sd++) {
                source_result src = {NAN, NAN, NAN, 0};
                json_object *sj;
                source_dir(g, a, e, sd, dir, sizeof dir);
                snprintf(path, sizeof path, "%s/result.json", dir);
                if ((sj = read_json_file(path)) != NULL) {
                    src.test_acc = jnum(sj, "test_acc");
                    src.robust_acc = jnum(sj, "robust_acc");
                    json_object_put(sj);
                }
                for (size_t t = 0; s == RB_OK && t < sp->n_targets; t++)
                    for (int m = 0; s == RB_OK && m < 2; m++) {
                        bool fixed = m == 0;
                        if ((fixed && !sp->transfer.mode_fixed) || (!fixed && !sp->transfer.mode_full))
                            continue;
                        for (size_t ts = 0; s == RB_OK && ts < sp->transfer.n_seeds; ts++) {
                            json_object *tj;
                            transfer_dir(g, a, e, sd, t, fixed, ts, dir, sizeof dir);
                            snprintf(path, sizeof path, "%s/result.json", dir);
                            if ((tj = read_json_file(path)) == NULL)
                                continue;
                            fill_row(g, a, e, sd, t, fixed, ts, &src, &out[n]);
                            s = result_metric(g, t, tj, path, out[n].metric, sizeof out[n].metric);
                            out[n].target_acc = jnum(tj, "target_acc");
                            out[n].seconds = jnum(tj, "seconds");
                            /* robust accuracy under the grid's eval-attack, not an earlier one's */
                            if (attacked(g, t) && robust_recorded(g, tj)) {
                                out[n].target_robust_acc = jnum(tj, "robust_acc");
                                snprintf(out[n].robust_attack, sizeof out[n].robust_attack, "%s",
                                         g->eval.description);
                            }
                            json_object_put(tj);
                            if (s == RB_OK && !isnan(out[n].target_acc))
                                n++;
                        }
                    }
            }
    if (s != RB_OK) {
        free(out);
        return s;
    }
    *rows = out;
    *count = n;
    return RB_OK;
}

static rb_status write_reports(const grid_ctx *g, rb_grid_outcome *outcome)
{
    rb_grid_result *rows = NULL;
    size_t n = 0;
    char path[4200], title[512];
    char *table = NULL, *summary = NULL;
    rb_status s = collect(g, &rows, &n);
    outcome->results = n;
    if (s == RB_OK) {
        snprintf(path, sizeof path, "%s/results.csv", g->opt->out_dir);
        s = rb_grid_write_csv(path, rows, n);
    }
    if (s == RB_OK && n > 0) {
        s = rb_grid_markdown(rows, n, &table);
        if (s == RB_OK)
            s = rb_grid_summary(rows, n, &summary);
        if (s == RB_OK) {
            size_t len = strlen(table) + strlen(summary) + 2;
            char *both = malloc(len);
            if (both == NULL)
                s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the table");
            else {
                snprintf(both, len, "%s\n%s", table, summary);
                snprintf(path, sizeof path, "%s/table.md", g->opt->out_dir);
                s = rb_file_write_atomic(path, both, strlen(both));
                free(both);
            }
        }
        if (s == RB_OK) {
            snprintf(path, sizeof path, "%s/plot.svg", g->opt->out_dir);
            report_plot_title(g->spec->name, rows, n, title, sizeof title);
            s = rb_grid_write_svg(path, title, rows, n);
        }
    }
    if (s == RB_OK) {
        outcome->table = table;
        outcome->summary = summary;
        table = summary = NULL;
    }
    free(table);
    free(summary);
    free(rows);
    return s;
}

/* Checks every [arch] and [target] section against its plugin, keeping
 * each target's task plugin in g->tasks, before anything trains. */
static rb_status check_sections(grid_ctx *g)
{
    const rb_grid_spec *spec = g->spec;
    rb_status s = RB_OK;
    for (size_t a = 0; s == RB_OK && a < spec->n_archs; a++) {
        const rb_plugin *p;
        rb_params *params = NULL;
        s = arch_params(g, &spec->archs[a], &p, &params);
        rb_params_destroy(params);
    }
    for (size_t t = 0; s == RB_OK && t < spec->n_targets; t++) {
        rb_params *params = NULL;
        s = target_params(g, &spec->targets[t], &g->tasks[t], &params);
        rb_params_destroy(params);
    }
    if (s == RB_OK)
        s = grid_eval_attack_prepare(&g->eval, spec, g->opt->registry);
    if (s == RB_OK && g->eval.on) {
        /* said once: a dense target's rows have no robust accuracy */
        char dense[512] = "";
        size_t used = 0, k = 0;
        for (size_t t = 0; t < spec->n_targets; t++)
            if (!attacked(g, t) && used < sizeof dense) {
                used += (size_t)snprintf(dense + used, sizeof dense - used, "%s%s (%s)", used ? ", " : "",
                                         spec->targets[t].label, g->tasks[t]->name);
                k++;
            }
        if (k > 0)
            say(g, "eval-attack %s: target%s %s predict%s masks or boxes, which no attack has a classification loss "
                   "for: %s clean scores only",
                g->eval.description, k == 1 ? "" : "s", dense, k == 1 ? "s" : "",
                k == 1 ? "it reports" : "they report");
    }
    return s;
}

/* rb_grid_run once the grid is checked. */
static rb_status run_checked(grid_ctx *g, rb_grid_outcome *outcome)
{
    const rb_grid_spec *spec = g->spec;
    const rb_grid_options *options = g->opt;
    size_t modes, per_source, units;
    char path[4200];
    grid_job job = {0};
    rb_status s = RB_OK;

    modes = (size_t)spec->transfer.mode_fixed + (size_t)spec->transfer.mode_full;
    per_source = 1 + spec->n_targets * modes * spec->transfer.n_seeds;
    units = spec->n_archs * spec->source.n_eps * spec->source.n_seeds;
    outcome->runs_total = units * per_source;
    outcome->transfers_total = units * (per_source - 1);
    {
        int shards = options->shard_count > 0 ? options->shard_count : 1;
        for (size_t u = 0; u < units; u++)
            if ((int)(u % (size_t)shards) == options->shard_index)
                g->steps += per_source;
    }
    /* in a job, rank 0 alone reports (--report: nothing for the others) */
    if (options->report_only && rb_dist_rank() > 0)
        return RB_OK;
    if ((s = make_dir(options->out_dir)) != RB_OK)
        return s;
    snprintf(path, sizeof path, "%s/sources", options->out_dir);
    if (!options->report_only && (s = make_dir(path)) != RB_OK)
        return s;
    snprintf(path, sizeof path, "%s/transfers", options->out_dir);
    if (!options->report_only && (s = make_dir(path)) != RB_OK)
        return s;
    if (!options->report_only && (s = grid_job_start(&job, options->out_dir)) != RB_OK)
        return s;
    for (size_t u = 0; !options->report_only && s == RB_OK && u < units; u++) {
        size_t sd = u % spec->source.n_seeds, e = (u / spec->source.n_seeds) % spec->source.n_eps,
               a = u / (spec->source.n_seeds * spec->source.n_eps);
        source_result src = {NAN, NAN, NAN, 0};
        int shards = options->shard_count > 0 ? options->shard_count : 1;
        bool reporter = rb_dist_rank() == 0;
        if ((int)(u % (size_t)shards) != options->shard_index || !grid_job_claim(&job, u, &s))
            continue;
        /* the unit is this rank's alone: its runs train as in one process */
        rb_dist_set_alone(true);
        if ((s = run_source(g, a, e, sd, &src)) != RB_OK) {
            rb_dist_set_alone(false);
            break;
        }
        for (size_t t = 0; s == RB_OK && t < spec->n_targets; t++)
            for (int m = 0; s == RB_OK && m < 2; m++) {
                bool fixed = m == 0;
                if ((fixed && !spec->transfer.mode_fixed) || (!fixed && !spec->transfer.mode_full))
                    continue;
                for (size_t ts = 0; s == RB_OK && ts < spec->transfer.n_seeds; ts++)
                    s = run_transfer(g, a, e, sd, t, fixed, ts, &src);
            }
        rb_dist_set_alone(false);
        /* Reports after each source, so a long grid shows its table early. */
        if (s == RB_OK && reporter) {
            rb_grid_outcome partial;
            memset(&partial, 0, sizeof partial);
            s = write_reports(g, &partial);
            free(partial.table);
            free(partial.summary);
        }
    }
    if (s == RB_OK && !options->report_only)
        s = grid_job_end(&job, units);
    if (s == RB_OK && rb_dist_rank() == 0)
        s = write_reports(g, outcome);
    return s;
}

rb_status rb_grid_run(const rb_grid_spec *spec, const rb_grid_options *options, rb_grid_outcome *outcome)
{
    grid_ctx g;
    rb_grid_outcome local;
    double t0 = rb_monotonic_seconds();
    rb_status s;

    if (outcome == NULL)
        outcome = &local;
    memset(outcome, 0, sizeof *outcome);
    if (spec == NULL || options == NULL || options->registry == NULL || options->out_dir == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_grid_run: needs a spec, a registry and an output folder");
    if (options->shard_count < 0 || options->shard_index < 0 ||
        (options->shard_count > 0 && options->shard_index >= options->shard_count))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "--shard %d/%d: the index must lie in [0, %d)",
                            options->shard_index, options->shard_count, options->shard_count);
    memset(&g, 0, sizeof g);
    g.spec = spec;
    g.opt = options;
    g.threads = options->threads >= 0 ? options->threads : spec->threads;
    for (size_t e = 0; e < spec->source.n_eps; e++)
        g.robust_eps = fmax(g.robust_eps, spec->source.eps[e]);
    if ((g.tasks = calloc(spec->n_targets + 1, sizeof *g.tasks)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for a grid of %zu targets", spec->n_targets);
    s = check_sections(&g);
    if (s == RB_OK)
        s = run_checked(&g, outcome);
    grid_eval_attack_free(&g.eval);
    free(g.tasks);
    outcome->seconds = rb_monotonic_seconds() - t0;
    return s;
}

void rb_grid_outcome_free(rb_grid_outcome *outcome)
{
    if (outcome == NULL)
        return;
    free(outcome->table);
    free(outcome->summary);
    outcome->table = outcome->summary = NULL;
}
