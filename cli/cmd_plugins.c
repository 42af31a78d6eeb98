/* robusta plugins: what plugins were found, what they take, and what was
 * refused and why. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "sys/json.h"

static const rb_param_spec plugins_options[] = {
    {"json", RB_PARAM_BOOL, "false", NULL, 0, "print JSON instead of text"},
    {"kind", RB_PARAM_CHOICE, "any", "any|arch|attack|task", 0, "list only plugins of this kind"},
    {"input-size", RB_PARAM_INT, "224", "[1, 65536]", 0,
     "image side (pixels) at which arch plugins' FLOPs per image are counted"},
    {NULL}};

/* Whether plugin i is listed; decided without opening it, so that
 * `robusta plugins NAME` opens only NAME. */
static int selected(const rb_registry *reg, size_t i, const char *kind, const char *only)
{
    return (strcmp(kind, "any") == 0 ||
            strcmp(kind, rb_plugin_kind_str(rb_registry_kind(reg, i))) == 0) &&
           (only == NULL || strcmp(only, rb_registry_name(reg, i)) == 0);
}

static const char *attack_shape(const rb_plugin *p)
{
    const rb_attack_ops *ops = p->ops.attack;
    return ops->run != NULL ? "whole-run" : "step-based (random_start, step, project)";
}

static const char *dataset_kind_str(rb_dataset_kind kind)
{
    switch (kind) {
    case RB_DATASET_CLASSIFICATION: return "classification";
    case RB_DATASET_DETECTION: return "detection";
    case RB_DATASET_SEGMENTATION: return "segmentation";
    }
    return "unknown";
}

/* Forward multiply-accumulates per image of an arch plugin with its default
 * parameters at size x size (3 channels). Returns false, with the reason in
 * rb_last_error(), when the plugin cannot count them. */
static bool arch_macs(const rb_plugin *p, int64_t size, int64_t *macs)
{
    const rb_arch_ops *ops = p->ops.arch;
    rb_params *defaults = NULL;
    rb_status s;

    if (p->kind != RB_PLUGIN_ARCH || ops->count_macs == NULL)
        return false;
    s = rb_params_create(&defaults, p->params);
    if (s == RB_OK)
        s = ops->count_macs(defaults, size, size, macs);
    rb_params_destroy(defaults);
    return s == RB_OK;
}

/* "3.6 GFLOPs" for a count of floating-point operations. */
static void format_flops(int64_t flops, char *buf, size_t size)
{
    static const struct {
        double scale;
        const char *prefix;
    } units[] = {{1e15, "P"}, {1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "K"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if ((double)flops >= units[i].scale) {
            snprintf(buf, size, "%.1f %sFLOPs", (double)flops / units[i].scale, units[i].prefix);
            return;
        }
    snprintf(buf, size, "%lld FLOPs", (long long)flops);
}

/* A default value as typed JSON (numbers stay numbers), or null. */
static json_object *json_default(const rb_params *defaults, const rb_param_spec *s)
{
    int64_t i;
    double f;
    bool b;
    const char *text;
    const int64_t *ints;
    const double *reals;
    size_t n;
    json_object *array;

    if (rb_params_source(defaults, s->name) == RB_PARAM_UNSET)
        return NULL;
    switch (s->type) {
    case RB_PARAM_INT:
        rb_params_get_int(defaults, s->name, &i);
        return json_object_new_int64(i);
    case RB_PARAM_FLOAT:
        rb_params_get_float(defaults, s->name, &f);
        return rb_json_number(f);
    case RB_PARAM_BOOL:
        rb_params_get_bool(defaults, s->name, &b);
        return json_object_new_boolean(b);
    case RB_PARAM_STRING:
    case RB_PARAM_CHOICE:
        rb_params_get_string(defaults, s->name, &text);
        return json_object_new_string(text);
    case RB_PARAM_INT_LIST:
        rb_params_get_int_list(defaults, s->name, &ints, &n);
        array = json_object_new_array();
        for (size_t k = 0; k < n; k++)
            json_object_array_add(array, json_object_new_int64(ints[k]));
        return array;
    case RB_PARAM_FLOAT_LIST:
        rb_params_get_float_list(defaults, s->name, &reals, &n);
        array = json_object_new_array();
        for (size_t k = 0; k < n; k++)
            json_object_array_add(array, rb_json_number(reals[k]));
        return array;
    }
    return NULL;
}

static json_object *json_string_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

static json_object *plugin_json(const rb_plugin *p, const char *path, int64_t input_size)
{
    json_object *o = json_object_new_object(), *params = json_object_new_array();
    rb_params *defaults = NULL;

    json_object_object_add(o, "name", json_object_new_string(p->name));
    json_object_object_add(o, "kind", json_object_new_string(rb_plugin_kind_str(p->kind)));
    json_object_object_add(o, "version", json_object_new_string(p->version));
    json_object_object_add(o, "summary", json_object_new_string(p->summary));
    json_object_object_add(o, "path", json_object_new_string(path));
    if (p->kind == RB_PLUGIN_ATTACK)
        json_object_object_add(o, "shape", json_object_new_string(
                                               p->ops.attack->run ? "whole-run"
                                                                                    : "step-based"));
    if (p->kind == RB_PLUGIN_TASK)
        json_object_object_add(
            o, "dataset_kind",
            json_object_new_string(dataset_kind_str(p->ops.task->dataset_kind)));
    if (p->kind == RB_PLUGIN_ARCH && p->ops.arch->count_macs != NULL) {
        /* Per image, with the default parameters, at input_size². */
        int64_t macs = 0;
        json_object *cost = json_object_new_object();
        json_object_object_add(cost, "input_size", json_object_new_int64(input_size));
        if (arch_macs(p, input_size, &macs) && macs <= INT64_MAX / 2) {
            json_object_object_add(cost, "macs", json_object_new_int64(macs));
            json_object_object_add(cost, "flops", json_object_new_int64(2 * macs));
        } else {
            json_object_object_add(cost, "macs", NULL);
            json_object_object_add(cost, "flops", NULL);
            json_object_object_add(cost, "error", json_object_new_string(rb_last_error()));
        }
        json_object_object_add(o, "cost", cost);
    }
    /* The loader validated the table, so creating defaults cannot fail. */
    if (p->params != NULL && rb_params_create(&defaults, p->params) == RB_OK) {
        for (size_t i = 0; p->params[i].name != NULL; i++) {
            const rb_param_spec *s = &p->params[i];
            json_object *param = json_object_new_object();
            json_object_object_add(param, "name", json_object_new_string(s->name));
            json_object_object_add(param, "type", json_object_new_string(rb_param_type_str(s->type)));
            json_object_object_add(param, "default", json_default(defaults, s));
            json_object_object_add(param, "range", json_string_or_null(s->range));
            json_object_object_add(param, "required",
                                   json_object_new_boolean((s->flags & RB_PARAM_REQUIRED) != 0));
            json_object_object_add(param, "help", json_object_new_string(s->help));
            json_object_array_add(params, param);
        }
    }
    rb_params_destroy(defaults);
    json_object_object_add(o, "params", params);
    return o;
}

static void print_plugin_text(const rb_plugin *p, const char *path, int64_t input_size)
{
    printf("%-7s %s %s: %s\n", rb_plugin_kind_str(p->kind), p->name, p->version, p->summary);
    printf("        file: %s\n", path);
    if (p->kind == RB_PLUGIN_ATTACK)
        printf("        shape: %s\n", attack_shape(p));
    if (p->kind == RB_PLUGIN_TASK)
        printf("        dataset: %s\n", dataset_kind_str(p->ops.task->dataset_kind));
    if (p->kind == RB_PLUGIN_ARCH && p->ops.arch->count_macs != NULL) {
        int64_t macs = 0;
        char flops[32];
        if (arch_macs(p, input_size, &macs) && macs <= INT64_MAX / 2) {
            format_flops(2 * macs, flops, sizeof flops);
            printf("        cost: %s per image at %lldx%lld (defaults)\n", flops,
                   (long long)input_size, (long long)input_size);
        } else {
            printf("        cost: not counted at %lldx%lld: %s\n", (long long)input_size,
                   (long long)input_size, rb_last_error());
        }
    }
    for (size_t i = 0; p->params != NULL && p->params[i].name != NULL; i++) {
        const rb_param_spec *s = &p->params[i];
        char name[72];
        snprintf(name, sizeof name, "--%s", s->name);
        printf("        %-18s %-10s %-10s %-14s %s\n", name, rb_param_type_str(s->type),
               s->flags & RB_PARAM_REQUIRED ? "(required)"
               : s->default_value            ? s->default_value
                                             : "(unset)",
               s->range ? s->range : "", s->help);
    }
}

static int run_plugins(const cli_command *self, rb_params *options, int argc, char **args)
{
    rb_registry *reg = NULL;
    bool json = false;
    int64_t input_size = 224;
    const char *kind = "any", *only = NULL;
    size_t shown = 0;
    rb_status s;
    int code = RB_EXIT_OK;

    rb_params_get_bool(options, "json", &json);
    rb_params_get_string(options, "kind", &kind);
    rb_params_get_int(options, "input-size", &input_size);
    if (argc > 1) {
        fprintf(stderr, "robusta plugins: give at most one plugin name (got %d arguments)\n", argc);
        return RB_EXIT_USAGE;
    }
    if (argc == 1)
        only = args[0];

    s = rb_registry_create(&reg);
    if (s == RB_OK)
        s = rb_registry_load_default(reg);
    if (s != RB_OK) {
        rb_registry_destroy(reg);
        return cli_fail(self->name, s);
    }

    if (only != NULL) {
        const char *names[256];
        size_t n = 0;
        int found = 0;
        for (size_t i = 0; i < rb_registry_count(reg); i++) {
            const char *name = rb_registry_name(reg, i);
            found |= strcmp(name, only) == 0;
            if (n < 256)
                names[n++] = name;
        }
        if (!found) {
            const char *near = rb_suggest(only, names, n);
            if (near)
                rb_error_set(RB_ERR_NOT_FOUND, "no plugin named '%s'; did you mean '%s'?", only, near);
            else
                rb_error_set(RB_ERR_NOT_FOUND, "no plugin named '%s' (robusta plugins lists them)",
                             only);
            rb_registry_destroy(reg);
            return cli_fail(self->name, RB_ERR_NOT_FOUND);
        }
    }

    if (json) {
        json_object *root = json_object_new_object();
        json_object *list = json_object_new_array(), *refused = json_object_new_array();
        json_object *search = json_object_new_array();
        const char *env = getenv("RB_PLUGIN_PATH");
        json_object_object_add(root, "robusta", json_object_new_string(rb_version_string()));
        json_object_object_add(root, "abi", json_object_new_int(RB_PLUGIN_ABI_VERSION));
        if (env != NULL && env[0] != '\0') {
            char *copy = strdup(env), *save = NULL;
            for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save))
                json_object_array_add(search, json_object_new_string(d));
            free(copy);
        }
        json_object_array_add(search, json_object_new_string(rb_registry_install_dir()));
        json_object_object_add(root, "search_path", search);
        for (size_t i = 0; i < rb_registry_count(reg); i++) {
            const rb_plugin *p = selected(reg, i, kind, only) ? rb_registry_get(reg, i) : NULL;
            if (p != NULL) /* NULL: not listed, or refused when opened (listed below) */
                json_object_array_add(list, plugin_json(p, rb_registry_path(reg, i), input_size));
        }
        json_object_object_add(root, "plugins", list);
        for (size_t i = 0; i < rb_registry_refusal_count(reg); i++) {
            json_object *r = json_object_new_object();
            json_object_object_add(r, "path", json_object_new_string(rb_registry_refusal_path(reg, i)));
            json_object_object_add(r, "reason",
                                   json_object_new_string(rb_registry_refusal_reason(reg, i)));
            json_object_array_add(refused, r);
        }
        json_object_object_add(root, "refused", refused);
        printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
                                                                JSON_C_TO_STRING_SPACED |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(root);
    } else {
        for (size_t i = 0; i < rb_registry_count(reg); i++) {
            const rb_plugin *p = selected(reg, i, kind, only) ? rb_registry_get(reg, i) : NULL;
            if (p == NULL) /* not listed, or refused when opened (listed below) */
                continue;
            if (shown++)
                putchar('\n');
            print_plugin_text(p, rb_registry_path(reg, i), input_size);
        }
        if (shown == 0 && only == NULL)
            printf("no %s%splugins found in RB_PLUGIN_PATH or %s\n",
                   strcmp(kind, "any") == 0 ? "" : kind, strcmp(kind, "any") == 0 ? "" : " ",
                   rb_registry_install_dir());
        if (rb_registry_refusal_count(reg) > 0) {
            printf("\nrefused:\n");
            for (size_t i = 0; i < rb_registry_refusal_count(reg); i++)
                printf("  %s: %s\n", rb_registry_refusal_path(reg, i),
                       rb_registry_refusal_reason(reg, i));
        }
    }
    fflush(stdout);
    if (ferror(stdout)) {
        rb_error_set(RB_ERR_IO, "cannot write the listing to standard output");
        code = cli_fail(self->name, RB_ERR_IO);
    }
    rb_registry_destroy(reg);
    return code;
}

const cli_command cli_plugins_command = {
    .name = "plugins",
    .summary = "list plugins: kind, version, summary and parameters",
    .usage = "[--json] [--kind arch|attack|task] [--input-size N] [NAME]",
    .description =
        "Lists the plugins found in the folders of RB_PLUGIN_PATH, then in the install folder,\n"
        "with their parameters (type, default, range), and the files that were refused and why.\n"
        "With NAME, shows that plugin only. For architectures that can count their work, shows\n"
        "the forward FLOPs per image (2 x multiply-accumulates of convolutions and linear layers)\n"
        "with their default parameters at --input-size x --input-size (default 224).",
    .options = plugins_options,
    .run = run_plugins,
};
