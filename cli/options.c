/* A command's options and its plugins' parameters on one command line:
 * choosing the plugins (--attack pgd-l2), the option namespaces that say
 * which set each --NAME goes to, parsing, and the --help that shows it.
 *
 * Namespaces. Every parameter of a plugin chosen with --OPTION answers to
 * --OPTION.NAME (--attack.eps, --arch.width). A plain --NAME goes to the
 * one set that declares it; when the command and a chosen plugin both do:
 *  - a name in the command's `shared` list for that plugin option (the
 *    attack schedule: --steps, --random-start, ...) that the plugin declares
 *    with the same type belongs to the plugin: the user's value reaches the
 *    plugin's parameter, whose help documents what it does, and the
 *    command reads it from there (cli_option_owner);
 *  - any other name stays the command's, and the plugin's parameter is
 *    written --OPTION.NAME. */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

const char *const cli_attack_schedule[] = {RB_PARAM_STEPS, "random-start", "restarts", "keep-best", "targeted", "seed", NULL};

#define MAX_PLUGIN_OPTIONS 4
#define MAX_TAKEN 16

static struct {
    const cli_plugin_option *po;
    const rb_plugin *plugin;
    rb_params *params;
} chosen[MAX_PLUGIN_OPTIONS];
static size_t chosen_count;

/* The command's options that chosen plugins took over, and the rest. */
static struct {
    const char *name;
    size_t plugin; /* index in chosen */
} taken[MAX_TAKEN];
static size_t taken_count;
static rb_param_spec *own_specs;

const rb_plugin *cli_plugin(const char *option)
{
    for (size_t i = 0; i < chosen_count; i++)
        if (strcmp(chosen[i].po->option, option) == 0)
            return chosen[i].plugin;
    return NULL;
}

rb_params *cli_plugin_params(const char *option)
{
    for (size_t i = 0; i < chosen_count; i++)
        if (strcmp(chosen[i].po->option, option) == 0)
            return chosen[i].params;
    return NULL;
}

const rb_params *cli_option_owner(const rb_params *options, const char *name)
{
    for (size_t k = 0; k < taken_count; k++)
        if (strcmp(taken[k].name, name) == 0)
            return chosen[taken[k].plugin].params;
    return options;
}

rb_status cli_attack_options(const rb_params *options, rb_attack_options *ao)
{
    const rb_plugin *attack = cli_plugin("attack");
    int64_t v;
    bool b;
    /* --steps stays the command's when the plugin has none to take it over */
    if (attack != NULL && cli_option_owner(options, RB_PARAM_STEPS) == options &&
        rb_params_declares(options, RB_PARAM_STEPS) && rb_params_source(options, RB_PARAM_STEPS) == RB_PARAM_GIVEN &&
        rb_attack_check_steps(attack, "--") != RB_OK)
        return rb_last_status();
    /* Each read fails, leaving the field, where the command has no such option. */
    if (rb_params_get_int(cli_option_owner(options, RB_PARAM_STEPS), RB_PARAM_STEPS, &v) == RB_OK)
        ao->steps = (int)v;
    if (rb_params_get_int(cli_option_owner(options, "restarts"), "restarts", &v) == RB_OK)
        ao->restarts = (int)v;
    if (rb_params_get_bool(cli_option_owner(options, "random-start"), "random-start", &b) == RB_OK)
        ao->random_start = b;
    if (rb_params_get_bool(cli_option_owner(options, "keep-best"), "keep-best", &b) == RB_OK)
        ao->keep_best = b;
    if (rb_params_get_int(cli_option_owner(options, "seed"), "seed", &v) == RB_OK)
        ao->seed = (uint64_t)v;
    return RB_OK;
}

static const rb_param_spec *find_spec(const rb_param_spec *specs, const char *name)
{
    for (size_t i = 0; specs != NULL && specs[i].name != NULL; i++)
        if (strcmp(specs[i].name, name) == 0)
            return &specs[i];
    return NULL;
}

static bool listed(const char *const *names, const char *name)
{
    for (size_t i = 0; names != NULL && names[i] != NULL; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* The chosen plugin (index) that takes over the command's option `spec`,
 * or -1. */
static long taker(const rb_param_spec *spec)
{
    for (size_t i = 0; i < chosen_count; i++) {
        const rb_param_spec *mine = find_spec(chosen[i].plugin->params, spec->name);
        if (mine != NULL && mine->type == spec->type && listed(chosen[i].po->shared, spec->name))
            return (long)i;
    }
    return -1;
}

/* The value of --NAME VALUE or --NAME=VALUE before any lone "--". */
static const char *scan_option(int argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0)
            continue;
        if (a[2 + n] == '=')
            return a + 3 + n;
        if (a[2 + n] == '\0' && i + 1 < argc)
            return argv[i + 1];
    }
    return NULL;
}

rb_status cli_choose_plugins(const cli_command *cmd, int argc, char **argv)
{
    size_t n = 0;
    for (size_t i = 0; cmd->plugin_options != NULL && cmd->plugin_options[i].option != NULL; i++) {
        const cli_plugin_option *po = &cmd->plugin_options[i];
        const char *name = scan_option(argc, argv, po->option), *preset = NULL;
        const rb_param_spec *dflt = find_spec(cmd->options, po->option);
        const rb_plugin *plugin;
        rb_registry *reg;
        rb_status s;
        /* An option with a default plugin (transfer's --task classify) takes
         * that plugin's options without being given. */
        if (name == NULL && dflt != NULL)
            name = dflt->default_value;
        if (name == NULL || chosen_count == MAX_PLUGIN_OPTIONS)
            continue;
        if ((reg = cli_registry()) == NULL)
            return rb_last_status();
        if (po->kind == RB_PLUGIN_ARCH)
            s = rb_arch_resolve(reg, name, &plugin, &preset);
        else
            s = rb_registry_find(reg, po->kind, name, &plugin);
        if (s != RB_OK)
            return s;
        chosen[chosen_count].po = po;
        chosen[chosen_count].plugin = plugin;
        if ((s = rb_params_create(&chosen[chosen_count].params, plugin->params)) != RB_OK)
            return s;
        chosen_count++;
        if (preset != NULL && (s = rb_params_set(chosen[chosen_count - 1].params, RB_PARAM_PRESET, preset)) != RB_OK)
            return s;
    }
    /* The command's own options: those no chosen plugin takes over. */
    for (size_t i = 0; cmd->options != NULL && cmd->options[i].name != NULL; i++)
        n++;
    if ((own_specs = calloc(n + 1, sizeof *own_specs)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory");
    n = 0;
    for (size_t i = 0; cmd->options != NULL && cmd->options[i].name != NULL; i++) {
        long t = taker(&cmd->options[i]);
        if (t >= 0 && taken_count < MAX_TAKEN) {
            taken[taken_count].name = cmd->options[i].name;
            taken[taken_count++].plugin = (size_t)t;
        } else {
            own_specs[n++] = cmd->options[i];
        }
    }
    return RB_OK;
}

const rb_param_spec *cli_own_options(void)
{
    return own_specs;
}

void cli_release_plugins(void)
{
    for (size_t i = 0; i < chosen_count; i++)
        rb_params_destroy(chosen[i].params);
    chosen_count = taken_count = 0;
    free(own_specs);
    own_specs = NULL;
}

/* The chosen plugin whose option is the `len` characters at `prefix`, or -1. */
static long plugin_of_prefix(const char *prefix, size_t len)
{
    for (size_t i = 0; i < chosen_count; i++)
        if (strlen(chosen[i].po->option) == len && strncmp(chosen[i].po->option, prefix, len) == 0)
            return (long)i;
    return -1;
}

/* Whether --NAME (no value attached) of `specs` is a flag, "--no-FLAG" included. */
static bool is_flag(const rb_param_spec *specs, const char *name, size_t len)
{
    for (size_t i = 0; specs != NULL && specs[i].name != NULL; i++) {
        const char *n = specs[i].name;
        if (specs[i].type != RB_PARAM_BOOL)
            continue;
        if ((strlen(n) == len && strncmp(n, name, len) == 0) ||
            (len > 3 && strncmp(name, "no-", 3) == 0 && strlen(n) == len - 3 && strncmp(n, name + 3, len - 3) == 0))
            return true;
    }
    return false;
}

rb_status cli_parse_options(rb_params *options, int argc, char **argv, int *positional)
{
    rb_params *sets[1 + MAX_PLUGIN_OPTIONS] = {options};
    char **mine[MAX_PLUGIN_OPTIONS] = {NULL};
    int counts[MAX_PLUGIN_OPTIONS] = {0}, kept = 0;
    rb_status s = RB_OK;
    for (size_t i = 0; i < chosen_count; i++) {
        sets[1 + i] = chosen[i].params;
        if ((mine[i] = calloc((size_t)argc + 1, sizeof *mine[i])) == NULL)
            s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory");
    }
    /* --OPTION.NAME[=VALUE] [VALUE] goes to that plugin alone, as
     * --NAME[=VALUE] [VALUE]; the rest stays in argv, in order. */
    for (int i = 0; s == RB_OK && i < argc; i++) {
        char *a = argv[i], *eq = strchr(a, '='), *dot = strncmp(a, "--", 2) == 0 ? strchr(a + 2, '.') : NULL;
        long p;
        if (strcmp(a, "--") == 0) { /* the rest is positional */
            while (i < argc)
                argv[kept++] = argv[i++];
            break;
        }
        if (dot == NULL || (eq != NULL && eq < dot)) {
            argv[kept++] = a;
            continue;
        }
        if ((p = plugin_of_prefix(a + 2, (size_t)(dot - a - 2))) < 0) {
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "--%.*s names a parameter of a --%.*s plugin, but none was chosen",
                             (int)(eq != NULL ? eq - a - 2 : (ptrdiff_t)strlen(a + 2)), a + 2, (int)(dot - a - 2),
                             a + 2);
            break;
        }
        memmove(a + 2, dot + 1, strlen(dot + 1) + 1); /* --attack.eps -> --eps */
        mine[p][counts[p]++] = a;
        if (strchr(a, '=') == NULL && !is_flag(chosen[p].plugin->params, a + 2, strlen(a + 2)) && i + 1 < argc &&
            !(strncmp(argv[i + 1], "--", 2) == 0 && argv[i + 1][2] != '\0'))
            mine[p][counts[p]++] = argv[++i];
    }
    for (size_t i = 0; s == RB_OK && i < chosen_count; i++)
        if ((s = rb_params_parse_args(&chosen[i].params, 1, counts[i], mine[i], NULL)) != RB_OK)
            rb_error_prefix("%s plugin %s: ", rb_plugin_kind_str(chosen[i].plugin->kind), chosen[i].plugin->name);
    for (size_t i = 0; i < chosen_count; i++)
        free(mine[i]);
    if (s == RB_OK)
        s = rb_params_parse_args(sets, 1 + chosen_count, kept, argv, positional);
    for (size_t i = 0; s == RB_OK && i <= chosen_count; i++)
        s = rb_params_check_required(sets[i]);
    return s;
}

/* ------------------------------------------------------------ help */

void cli_describe_option(const rb_param_spec *s, const char *name, char *left, size_t left_size, char *right,
                         size_t right_size)
{
    int n;
    if (s->type == RB_PARAM_BOOL)
        snprintf(left, left_size, "--%s", name);
    else
        snprintf(left, left_size, "--%s %s", name, s->type == RB_PARAM_CHOICE ? s->range : rb_param_type_str(s->type));
    n = snprintf(right, right_size, "%s", s->help);
    if (n >= 0 && (size_t)n < right_size && (s->flags & RB_PARAM_REQUIRED))
        n += snprintf(right + n, right_size - (size_t)n, " (required)");
    else if (n >= 0 && (size_t)n < right_size && s->default_value != NULL && s->type != RB_PARAM_BOOL)
        n += snprintf(right + n, right_size - (size_t)n, " (default %s)", s->default_value);
    if (n >= 0 && (size_t)n < right_size && s->range != NULL && s->type != RB_PARAM_CHOICE)
        snprintf(right + n, right_size - (size_t)n, " %s", s->range);
}

/* One option per line. For a chosen plugin's parameters (plugin >= 0), a
 * name the command keeps is shown as --OPTION.NAME; either side notes what
 * the other does with a name both declare. */
static void print_specs(FILE *out, const rb_param_spec *specs, const cli_command *cmd, long plugin)
{
    for (size_t i = 0; specs != NULL && specs[i].name != NULL; i++) {
        const rb_param_spec *s = &specs[i];
        const rb_param_spec *theirs = plugin >= 0 ? find_spec(cmd->options, s->name) : NULL;
        long by = plugin < 0 ? taker(s) : -1;
        bool qualified = theirs != NULL && taker(theirs) != plugin;
        char left[160], right[1024], name[128];
        snprintf(name, sizeof name, "%s%s%s", qualified ? chosen[plugin].po->option : "", qualified ? "." : "", s->name);
        cli_describe_option(s, name, left, sizeof left, right, sizeof right);
        fprintf(out, "  %-24s %s", left, right);
        if (by >= 0)
            fprintf(out, " [taken over by %s: its own --%s below]", chosen[by].plugin->name, s->name);
        else if (theirs != NULL && !qualified)
            fprintf(out, " [takes over robusta %s's --%s]", cmd->name, s->name);
        else if (qualified)
            fprintf(out, " [--%s is robusta %s's own]", s->name, cmd->name);
        fputc('\n', out);
    }
}

/* No plugin named: which options a plugin of each plugin option may take
 * over, and which installed plugins do. */
static void print_namespaces(FILE *out, const cli_command *cmd)
{
    rb_registry *reg = cli_registry();
    for (size_t i = 0; cmd->plugin_options[i].option != NULL; i++) {
        const cli_plugin_option *po = &cmd->plugin_options[i];
        const char *opt = po->option;
        size_t n = 0, shown = 0;
        fprintf(out,
                "\n--%s plugins: robusta %s --%s NAME --help lists a plugin's parameters, which\n"
                "follow --%s NAME on the command line. --%s.PARAM always sets the plugin's PARAM; a\n"
                "plain --PARAM does too, unless this command has an option --PARAM",
                opt, cmd->name, opt, opt, opt);
        for (size_t k = 0; po->shared != NULL && po->shared[k] != NULL; k++)
            n += find_spec(cmd->options, po->shared[k]) != NULL;
        if (n == 0) {
            fprintf(out, ".\n");
            continue;
        }
        fprintf(out, ". These options of the\n"
                     "command are taken over by a plugin that declares them (same type), which then holds\n"
                     "the value that the command uses:\n ");
        for (size_t k = 0, m = 0; po->shared[k] != NULL; k++)
            if (find_spec(cmd->options, po->shared[k]) != NULL)
                fprintf(out, "%s --%s", m++ == 0 ? "" : ",", po->shared[k]);
        fputc('\n', out);
        for (size_t j = 0; reg != NULL && j < rb_registry_count(reg); j++) {
            const rb_plugin *p = rb_registry_get(reg, j);
            size_t taken_here = 0;
            for (size_t k = 0; p->kind == po->kind && po->shared[k] != NULL; k++) {
                const rb_param_spec *c = find_spec(cmd->options, po->shared[k]);
                const rb_param_spec *q = c != NULL ? find_spec(p->params, c->name) : NULL;
                if (q == NULL || q->type != c->type)
                    continue;
                if (shown++ == 0)
                    fprintf(out, "Installed plugins that take some over:\n");
                if (taken_here++ == 0)
                    fprintf(out, "  %s:", p->name);
                fprintf(out, "%s --%s", taken_here > 1 ? "," : "", c->name);
            }
            if (taken_here > 0)
                fprintf(out, "\n");
        }
    }
}

void cli_print_command_help(FILE *out, const cli_command *cmd, int argc, char **argv)
{
    fprintf(out, "usage: robusta %s %s\n\n", cmd->name, cmd->usage);
    fprintf(out, "%s\n", cmd->description);
    if (cmd->plugin_options != NULL && cli_choose_plugins(cmd, argc, argv) != RB_OK)
        cli_release_plugins(); /* an unknown plugin named: the command's help alone */
    if (cmd->options != NULL && cmd->options[0].name != NULL) {
        fprintf(out, "\noptions:\n");
        print_specs(out, cmd->options, cmd, -1);
    }
    /* With a plugin named (--arch resnet18 --help), its options too. */
    for (size_t i = 0; i < chosen_count; i++) {
        fprintf(out, "\noptions of %s plugin %s (--%s; each also as --%s.NAME):\n",
                rb_plugin_kind_str(chosen[i].plugin->kind), chosen[i].plugin->name, chosen[i].po->option,
                chosen[i].po->option);
        print_specs(out, chosen[i].plugin->params, cmd, (long)i);
    }
    if (cmd->plugin_options != NULL && chosen_count == 0)
        print_namespaces(out, cmd);
    cli_release_plugins();
}
