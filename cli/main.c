/* robusta: the command-line entry point. Parses global flags, picks the
 * subcommand, parses its options and runs it. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const cli_command *const available_commands[] = {
    &cli_plugins_command, &cli_train_command, &cli_eval_command, &cli_import_command,
    &cli_export_command,  &cli_infer_command, &cli_inspect_command, &cli_attack_command,
    &cli_transfer_command, &cli_grid_command, &cli_demo_command, &cli_bench_command,
};
#define AVAILABLE_COUNT (sizeof available_commands / sizeof available_commands[0])


rb_precision cli_precision(const rb_params *options)
{
    const char *text = NULL;
    rb_precision p = RB_PRECISION_F32;
    rb_params_get_string(options, "precision", &text);
    (void)rb_precision_parse(text, &p); /* the choice list admits nothing else */
    return p;
}

rb_conv_algorithm cli_conv_algorithm(const rb_params *options)
{
    const char *text = NULL;
    rb_conv_algorithm a = RB_CONV_WINOGRAD;
    rb_params_get_string(options, "conv-algorithm", &text);
    (void)rb_conv_algorithm_parse(text, &a); /* the choice list admits nothing else */
    return a;
}

rb_registry *cli_registry(void)
{
    return rb_registry_shared();
}

#define MAX_PLUGIN_OPTIONS 4
static struct {
    const char *option;
    const rb_plugin *plugin;
    rb_params *params;
} chosen[MAX_PLUGIN_OPTIONS];
static size_t chosen_count;

const rb_plugin *cli_plugin(const char *option)
{
    for (size_t i = 0; i < chosen_count; i++)
        if (strcmp(chosen[i].option, option) == 0)
            return chosen[i].plugin;
    return NULL;
}

rb_params *cli_plugin_params(const char *option)
{
    for (size_t i = 0; i < chosen_count; i++)
        if (strcmp(chosen[i].option, option) == 0)
            return chosen[i].params;
    return NULL;
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

/* Finds the plugins named by the command's plugin options and makes their
 * parameter sets, so that their options parse along with the command's. */
static rb_status choose_plugins(const cli_command *cmd, int argc, char **argv)
{
    for (size_t i = 0; cmd->plugin_options != NULL && cmd->plugin_options[i].option != NULL; i++) {
        const cli_plugin_option *po = &cmd->plugin_options[i];
        const char *name = scan_option(argc, argv, po->option), *preset = NULL;
        const rb_plugin *plugin;
        rb_registry *reg;
        rb_status s;
        /* An option with a default plugin (transfer's --task classify) takes
         * that plugin's options without being given. */
        for (size_t k = 0; name == NULL && cmd->options != NULL && cmd->options[k].name != NULL; k++)
            if (strcmp(cmd->options[k].name, po->option) == 0)
                name = cmd->options[k].default_value;
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
        chosen[chosen_count].option = po->option;
        chosen[chosen_count].plugin = plugin;
        if ((s = rb_params_create(&chosen[chosen_count].params, plugin->params)) != RB_OK)
            return s;
        chosen_count++;
        if (preset != NULL && (s = rb_params_set(chosen[chosen_count - 1].params, "preset", preset)) != RB_OK)
            return s;
    }
    return RB_OK;
}

static void release_plugins(void)
{
    for (size_t i = 0; i < chosen_count; i++)
        rb_params_destroy(chosen[i].params);
    chosen_count = 0;
}

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < AVAILABLE_COUNT; i++)
        if (strcmp(name, available_commands[i]->name) == 0)
            return available_commands[i];
    return NULL;
}

static void print_main_help(FILE *out)
{
    fprintf(out,
            "usage: robusta [-v | -q]... COMMAND [options]\n"
            "       robusta --version | --help | COMMAND --help\n"
            "\n"
            "robusta trains, attacks and transfers adversarially robust models on CPUs.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < AVAILABLE_COUNT; i++)
        fprintf(out, "  %-10s %s\n", available_commands[i]->name, available_commands[i]->summary);
    fprintf(out,
            "\n"
            "global options (anywhere before a lone --):\n"
            "  -v, --verbose  log more (repeat for debug, trace)\n"
            "  -q, --quiet    log less (warnings, then errors only)\n"
            "  -h, --help     show help (for a command: robusta COMMAND --help)\n"
            "  --version      show versions of robusta and its libraries\n"
            "\n"
            "environment:\n"
            "  RB_PLUGIN_PATH       folders searched for plugins before %s\n"
            "  RB_LOG               log level: error, warn, info (default), debug, trace\n"
            "  RB_PROGRESS_SECONDS  seconds between progress lines when not on a terminal (10)\n"
            "\n"
            "exit status: 0 success, 1 failure, 2 bad command line, 3 not available yet\n",
            rb_registry_install_dir());
}

static void print_option_help(FILE *out, const rb_param_spec *specs)
{
    for (size_t i = 0; specs != NULL && specs[i].name != NULL; i++) {
        const rb_param_spec *s = &specs[i];
        char left[96];
        if (s->type == RB_PARAM_BOOL)
            snprintf(left, sizeof left, "--%s", s->name);
        else
            snprintf(left, sizeof left, "--%s %s", s->name,
                     s->type == RB_PARAM_CHOICE ? s->range : rb_param_type_str(s->type));
        fprintf(out, "  %-24s %s", left, s->help);
        if (s->flags & RB_PARAM_REQUIRED)
            fprintf(out, " (required)");
        else if (s->default_value != NULL && s->type != RB_PARAM_BOOL)
            fprintf(out, " (default %s)", s->default_value);
        if (s->range != NULL && s->type != RB_PARAM_CHOICE)
            fprintf(out, " %s", s->range);
        fputc('\n', out);
    }
}

static void print_command_help(FILE *out, const cli_command *cmd)
{
    fprintf(out, "usage: robusta %s %s\n\n", cmd->name, cmd->usage);
    fprintf(out, "%s\n", cmd->description);
    if (cmd->options != NULL && cmd->options[0].name != NULL) {
        fprintf(out, "\noptions:\n");
        print_option_help(out, cmd->options);
    }
}

static void print_version(FILE *out)
{
    char info[1024];
    fprintf(out, "robusta %s\n", rb_version_string());
    if (rb_build_info(info, sizeof info) == RB_OK)
        for (char *line = strtok(info, "\n"); line; line = strtok(NULL, "\n"))
            fprintf(out, "  %s\n", line);
    if (rb_machine_info(info, sizeof info) == RB_OK)
        fprintf(out, "  this machine: %s\n", info);
}

int cli_fail(const char *command, rb_status status)
{
    if (command != NULL)
        fprintf(stderr, "robusta %s: %s\n", command, rb_last_error());
    else
        fprintf(stderr, "robusta: %s\n", rb_last_error());
    switch (status) {
    case RB_OK: return RB_EXIT_OK;
    case RB_ERR_NOT_AVAILABLE: return RB_EXIT_NOT_AVAILABLE;
    default: return RB_EXIT_FAILURE;
    }
}

static int usage_error(const char *command, const char *hint)
{
    fprintf(stderr, "robusta%s%s: %s (%s)\n", command ? " " : "", command ? command : "",
            rb_last_error(), hint);
    return RB_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    int verbosity = 0, help = 0, version = 0, kept = 0, code;
    int after_dashes = 0;
    const cli_command *cmd;
    rb_params *options = NULL;
    rb_status s;

    /* Global flags may appear anywhere before "--"; strip them. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!after_dashes && strcmp(a, "--") == 0) {
            after_dashes = 1;
            argv[++kept] = argv[i];
        } else if (after_dashes) {
            argv[++kept] = argv[i];
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            verbosity++;
        } else if (strcmp(a, "-vv") == 0) {
            verbosity += 2;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            verbosity--;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            help = 1;
        } else if (strcmp(a, "--version") == 0) {
            version = 1;
        } else if (a[0] == '-' && a[1] != '-' && a[1] != '\0' && !(a[1] >= '0' && a[1] <= '9') &&
                   a[1] != '.') {
            rb_error_set(RB_ERR_INVALID_ARGUMENT, "unknown flag %s", a);
            return usage_error(NULL, "robusta --help lists them");
        } else {
            argv[++kept] = argv[i];
        }
    }
    argc = kept + 1;

    if (rb_log_init_from_env() != RB_OK)
        return usage_error(NULL, "unset RB_LOG or give a level name");
    rb_log_set_level((rb_log_level)((int)rb_log_get_level() + verbosity));

    if (version) {
        print_version(stdout);
        return RB_EXIT_OK;
    }
    if (argc < 2 || strcmp(argv[1], "--") == 0) {
        if (help) {
            print_main_help(stdout);
            return RB_EXIT_OK;
        }
        print_main_help(stderr);
        return RB_EXIT_USAGE;
    }
    if (strcmp(argv[1], "help") == 0) {
        if (argc < 3) {
            print_main_help(stdout);
            return RB_EXIT_OK;
        }
        argv[1] = argv[2];
        argc = 2;
        help = 1;
    }
    cmd = find_command(argv[1]);
    if (cmd == NULL) {
        const char *names[32];
        size_t n = 0;
        const char *near;
        for (size_t i = 0; i < AVAILABLE_COUNT; i++)
            names[n++] = available_commands[i]->name;
        near = rb_suggest(argv[1], names, n);
        if (near != NULL)
            rb_error_set(RB_ERR_INVALID_ARGUMENT, "unknown command '%s'; did you mean '%s'?",
                         argv[1], near);
        else
            rb_error_set(RB_ERR_INVALID_ARGUMENT, "unknown command '%s'", argv[1]);
        return usage_error(NULL, "robusta --help lists the commands");
    }
    if (help) {
        print_command_help(stdout, cmd);
        /* With a plugin named (--arch resnet18 --help), its options too. */
        if (cmd->plugin_options != NULL && choose_plugins(cmd, argc - 2, argv + 2) == RB_OK)
            for (size_t i = 0; i < chosen_count; i++) {
                fprintf(stdout, "\noptions of %s plugin %s (--%s):\n", rb_plugin_kind_str(chosen[i].plugin->kind),
                        chosen[i].plugin->name, chosen[i].option);
                print_option_help(stdout, chosen[i].plugin->params);
            }
        release_plugins();
        return RB_EXIT_OK;
    }

    s = rb_params_create(&options, cmd->options);
    if (s != RB_OK)
        return cli_fail(cmd->name, s);
    {
        int positional = 0;
        char hint[96];
        rb_params *sets[1 + MAX_PLUGIN_OPTIONS] = {options};
        snprintf(hint, sizeof hint, "robusta %s --help lists its options", cmd->name);
        s = choose_plugins(cmd, argc - 2, argv + 2);
        if (s != RB_OK) {
            rb_params_destroy(options);
            release_plugins();
            if (s != RB_ERR_NOT_FOUND)
                return cli_fail(cmd->name, s);
            fprintf(stderr, "robusta %s: %s\n", cmd->name, rb_last_error()); /* names a fix already */
            return RB_EXIT_USAGE;
        }
        for (size_t i = 0; i < chosen_count; i++)
            sets[1 + i] = chosen[i].params;
        s = rb_params_parse_args(sets, 1 + chosen_count, argc - 2, argv + 2, &positional);
        for (size_t i = 0; s == RB_OK && i <= chosen_count; i++)
            s = rb_params_check_required(sets[i]);
        if (s != RB_OK) {
            rb_params_destroy(options);
            release_plugins();
            return usage_error(cmd->name, hint);
        }
        code = cmd->run(cmd, options, positional, argv + 2);
    }
    rb_params_destroy(options);
    release_plugins();
    return code;
}
