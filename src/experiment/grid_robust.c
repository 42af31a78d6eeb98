/* Attacks a grid runs: the source's threat model at an eps (training and
 * evaluating source models), and [transfer] eval-attack, which every
 * transferred classifier is evaluated under (robust target accuracy).
 * robusta/grid.h documents the keys. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/autoattack.h>
#include <robusta/grid.h>
#include <robusta/robusta.h>
#include <robusta/suggest.h>

#include "experiment/grid_internal.h"
#include "sys/internal.h"

rb_status grid_attack_params(const rb_grid_spec *spec, const rb_plugin *attack, const char *eps_text, double eps,
                             int64_t steps, bool own_steps, bool random_start, rb_params **out)
{
    char step[64], text[32];
    rb_status s = rb_params_create(out, attack->params);
    if (s == RB_OK && eps_text != NULL && rb_params_declares(*out, RB_PARAM_EPS))
        s = rb_params_set(*out, RB_PARAM_EPS, eps_text);
    snprintf(step, sizeof step, "%.9g", spec->source.step_size_factor * eps / (double)(steps > 0 ? steps : 1));
    if (s == RB_OK && rb_params_declares(*out, "step-size"))
        s = rb_params_set(*out, "step-size", step);
    snprintf(text, sizeof text, "%lld", (long long)steps);
    for (const rb_param_spec *p = attack->params; s == RB_OK && p != NULL && p->name != NULL; p++) {
        if (own_steps && p->type == RB_PARAM_INT && strcmp(p->name, RB_PARAM_STEPS) == 0)
            s = rb_params_set(*out, RB_PARAM_STEPS, text);
        else if (p->type == RB_PARAM_BOOL && strcmp(p->name, "random-start") == 0)
            s = rb_params_set(*out, "random-start", random_start ? "true" : "false");
    }
    return s;
}

/* ------------------------------------------------------------ eval-attack */

/* The runtime loop's options an eval-attack may set (robusta/attack.h). */
static const rb_param_spec loop_specs[] = {
    {RB_PARAM_STEPS, RB_PARAM_INT, "10", "[1, 100000]", 0, "attack steps"},
    {"restarts", RB_PARAM_INT, "1", "[1, 1000]", 0, "restarts"},
    {"random-start", RB_PARAM_BOOL, "true", NULL, 0, "random start where the attack has one"},
    {"keep-best", RB_PARAM_BOOL, "false", NULL, 0, "keep each example's best iterate"},
    {"seed", RB_PARAM_INT, "0", "[0, 9223372036854775807]", 0, "seed"},
    {NULL}};

/* Whether plugin p has a parameter `name`. */
static bool declares(const rb_plugin *p, const char *name)
{
    for (const rb_param_spec *q = p->params; q != NULL && q->name != NULL; q++)
        if (strcmp(q->name, name) == 0)
            return true;
    return false;
}

/* Appends " KEY=VALUE" (a default the text did not give) to the description. */
static rb_status describe(grid_eval_attack *ea, const char *where, const char *key, const char *value)
{
    size_t used = strlen(ea->description);
    int n = snprintf(ea->description + used, sizeof ea->description - used, " %s=%s", key, value);
    if (n < 0 || (size_t)n >= sizeof ea->description - used)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "%s: '%s' with its defaults is longer than the %zu characters results.csv keeps", where,
                            ea->description, sizeof ea->description - 1);
    return RB_OK;
}

/* The [source] attack's norm, where it can be told. */
static const char *source_norm(const rb_grid_spec *spec, const rb_registry *registry)
{
    const rb_plugin *p = NULL;
    if (rb_registry_find(registry, RB_PLUGIN_ATTACK, spec->source.attack, &p) != RB_OK) {
        rb_error_clear();
        return rb_autoattack_norm_of(spec->source.attack, NULL);
    }
    for (const rb_param_spec *q = p->params; q != NULL && q->name != NULL; q++)
        if (strcmp(q->name, "norm") == 0)
            return rb_autoattack_norm_of(p->name, q->default_value);
    return rb_autoattack_norm_of(p->name, NULL);
}

static rb_status prepare_autoattack(grid_eval_attack *ea, const rb_grid_spec *spec, const rb_registry *registry,
                                    const char *where, const char *eps_text, double eps)
{
    const rb_grid_transfer *tf = &spec->transfer;
    const char *norm = NULL, *eps_given = NULL;
    rb_status s = RB_OK;
    snprintf(ea->version, sizeof ea->version, "%s", tf->eval_autoattack);
    for (size_t i = 0; i < tf->n_eval_attack_options; i++) {
        const rb_grid_option *o = &tf->eval_attack_options[i];
        static const char *const keys[] = {"norm", "eps", "seed"};
        if (strcmp(o->key, "norm") == 0)
            norm = o->value;
        else if (strcmp(o->key, "eps") == 0)
            eps_given = o->value;
        else if (strcmp(o->key, "seed") == 0) {
            char *end;
            unsigned long long v;
            errno = 0;
            v = strtoull(o->value, &end, 10);
            if (o->value[0] < '0' || o->value[0] > '9' || *end != '\0' || errno == ERANGE)
                return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: seed=%s is not an unsigned integer", where,
                                    o->value);
            ea->seed = v;
        } else {
            const char *near = rb_suggest(o->key, keys, 3);
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: AutoAttack takes norm, eps and seed, not '%s'%s%s%s",
                                where, o->key, near ? " (did you mean " : "", near ? near : "", near ? "?)" : "");
        }
    }
    if (norm == NULL) {
        if ((norm = source_norm(spec, registry)) == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: the [source] attack %s does not say its norm: give norm=l2 or norm=linf", where,
                                spec->source.attack);
        s = describe(ea, where, "norm", norm);
    } else if (strcmp(norm, "l2") != 0 && strcmp(norm, "linf") != 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: norm=%s: AutoAttack's norm is l2 or linf", where, norm);
    snprintf(ea->norm, sizeof ea->norm, "%s", norm);
    if (s == RB_OK && eps_given != NULL) {
        if (rb_grid_parse_eps(eps_given, &ea->eps) != RB_OK)
            return rb_error_prefix("%s: eps: ", where);
    } else if (s == RB_OK && eps > 0) {
        ea->eps = eps;
        s = describe(ea, where, "eps", eps_text);
    } else if (s == RB_OK)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: every [source] eps is 0: give AutoAttack's radius, eps=E",
                            where);
    return s;
}

static rb_status prepare_plugin(grid_eval_attack *ea, const rb_grid_spec *spec, const rb_registry *registry,
                                const char *where, const char *eps_text, double eps)
{
    const rb_grid_transfer *tf = &spec->transfer;
    const rb_plugin *p = NULL;
    rb_params *loop = NULL;
    bool own_eps = false, steps_given = false, start_given = false, has_start;
    int64_t v;
    rb_status s;
    if ((s = rb_registry_find(registry, RB_PLUGIN_ATTACK, tf->eval_attack, &p)) != RB_OK)
        return rb_error_prefix("%s: ", where);
    ea->plugin = p;
    has_start = p->ops.attack->random_start != NULL || p->ops.attack->run != NULL;
    if ((s = rb_params_create(&loop, loop_specs)) != RB_OK)
        return s;
    for (size_t i = 0; s == RB_OK && i < tf->n_eval_attack_options; i++) {
        const rb_grid_option *o = &tf->eval_attack_options[i];
        if (rb_params_declares(loop, o->key)) {
            if ((s = rb_params_set(loop, o->key, o->value)) != RB_OK)
                s = rb_error_prefix("%s: ", where);
            steps_given |= strcmp(o->key, RB_PARAM_STEPS) == 0;
            start_given |= strcmp(o->key, "random-start") == 0;
        } else if (!declares(p, o->key)) {
            const char *names[64], *near;
            size_t k = 0;
            for (const rb_param_spec *q = loop_specs; q->name != NULL; q++)
                names[k++] = q->name;
            for (const rb_param_spec *q = p->params; q != NULL && q->name != NULL && k < 64; q++)
                names[k++] = q->name;
            near = rb_suggest(o->key, names, k);
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                             "%s: unknown option '%s' (not an option of attack plugin %s%s%s%s)", where, o->key,
                             p->name, near ? "; did you mean " : "", near ? near : "", near ? "?" : "");
        }
        own_eps |= strcmp(o->key, RB_PARAM_EPS) == 0;
    }
    if (s == RB_OK && steps_given && rb_attack_check_steps(p, "") != RB_OK)
        s = rb_error_prefix("%s: ", where);
    ea->options = rb_attack_options_default();
    if (s == RB_OK) {
        bool b;
        rb_params_get_int(loop, RB_PARAM_STEPS, &v);
        ea->options.steps = (int)v;
        rb_params_get_int(loop, "restarts", &v);
        ea->options.restarts = (int)v;
        rb_params_get_int(loop, "seed", &v);
        ea->options.seed = (uint64_t)v;
        rb_params_get_bool(loop, "keep-best", &b);
        ea->options.keep_best = b;
        rb_params_get_bool(loop, "random-start", &b);
        /* a random start where the attack has one, as the source's evaluation */
        ea->options.random_start = start_given ? b : has_start;
        if (ea->options.random_start && !has_start)
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: %s has no random start: drop random-start=true", where,
                             p->name);
    }
    rb_params_destroy(loop);
    /* the grid's threat model and step-size rule, then what the text gives */
    if (s == RB_OK) {
        if (!own_eps && declares(p, RB_PARAM_EPS) && eps > 0)
            s = describe(ea, where, "eps", eps_text);
        if (s == RB_OK)
            s = grid_attack_params(spec, p, own_eps || eps <= 0 ? NULL : eps_text, eps, ea->options.steps,
                                   steps_given || p->ops.attack->run == NULL, ea->options.random_start, &ea->params);
        if (s != RB_OK)
            s = rb_error_prefix("%s: ", where);
    }
    for (size_t i = 0; s == RB_OK && i < tf->n_eval_attack_options; i++) {
        const rb_grid_option *o = &tf->eval_attack_options[i];
        if (rb_params_declares(ea->params, o->key) && (s = rb_params_set(ea->params, o->key, o->value)) != RB_OK)
            s = rb_error_prefix("%s: ", where);
    }
    if (s == RB_OK && (s = rb_attack_check(p, &ea->options)) != RB_OK)
        s = rb_error_prefix("%s: ", where);
    return s;
}

rb_status grid_eval_attack_prepare(grid_eval_attack *ea, const rb_grid_spec *spec, const rb_registry *registry)
{
    const rb_grid_transfer *tf = &spec->transfer;
    const char *eps_text = NULL;
    double eps = 0;
    char where[4200];
    rb_status s;
    memset(ea, 0, sizeof *ea);
    if (tf->eval_attack == NULL)
        return RB_OK;
    ea->on = true;
    snprintf(where, sizeof where, "%s:%d: [transfer] eval-attack", spec->path, tf->eval_attack_line);
    /* the eps source models are attacked at: the largest */
    for (size_t e = 0; e < spec->source.n_eps; e++)
        if (spec->source.eps[e] > eps || eps_text == NULL) {
            eps = spec->source.eps[e];
            eps_text = spec->source.eps_text[e];
        }
    snprintf(ea->description, sizeof ea->description, "%s", tf->eval_attack_text);
    if (strlen(tf->eval_attack_text) >= sizeof ea->description)
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: longer than the %zu characters results.csv keeps", where,
                         sizeof ea->description - 1);
    else if (strcmp(tf->eval_attack, "autoattack") == 0)
        s = prepare_autoattack(ea, spec, registry, where, eps_text, eps);
    else
        s = prepare_plugin(ea, spec, registry, where, eps_text, eps);
    if (s != RB_OK)
        grid_eval_attack_free(ea);
    return s;
}

rb_status grid_eval_attack_run(const grid_eval_attack *ea, const rb_registry *registry, rb_model *model,
                               const rb_split *split, int64_t per_class, const rb_engine_options *engine,
                               const char *metric, double *robust, int64_t *examples)
{
    rb_split *subset = NULL;
    const rb_split *use = split;
    rb_autoattack *aa = NULL;
    rb_eval_result ev;
    rb_status s = RB_OK;
    memset(&ev, 0, sizeof ev);
    *robust = NAN;
    *examples = 0;
    if (per_class > 0) {
        /* a class-balanced subset drawn with seed 0: the same for every model */
        rb_split_options so = {.per_class = per_class, .seed = 0};
        s = rb_split_apply(&subset, split, &so);
        use = subset;
    }
    if (s == RB_OK && ea->plugin == NULL) {
        size_t n;
        const rb_attack_stage *stages;
        if ((s = rb_autoattack_create(&aa, registry, ea->version, ea->norm, ea->eps, rb_model_num_classes(model),
                                      ea->seed)) == RB_OK) {
            stages = rb_autoattack_stages(aa, &n);
            s = rb_evaluate_stages(model, use, 256, engine, stages, n, &ev);
        }
    } else if (s == RB_OK)
        s = rb_evaluate_robust(model, use, 256, engine, ea->plugin, ea->params, &ea->options, &ev);
    if (s == RB_OK) {
        for (size_t i = 0; i < ev.robust_metric_count; i++)
            if (strcmp(ev.robust_metrics[i].name, metric) == 0)
                *robust = ev.robust_metrics[i].value;
        if (isnan(*robust))
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "the attacked images have no metric '%s' to report", metric);
        *examples = rb_split_count(use);
    }
    rb_eval_result_free(&ev);
    rb_autoattack_destroy(aa);
    rb_split_destroy(subset);
    return s;
}

void grid_eval_attack_free(grid_eval_attack *ea)
{
    rb_params_destroy(ea->params);
    ea->params = NULL;
}
