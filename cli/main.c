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
    &cli_make_scenes_command, &cli_coco_eval_command, &cli_data_command, &cli_report_command,
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

rb_status cli_image_set_options(const rb_params *options, rb_split_options *so)
{
    const char *text = "none", *cache = NULL;
    rb_params_get_string(options, "cache", &cache);
    if (rb_params_source(options, "transform") == RB_PARAM_GIVEN) {
        rb_params_get_string(options, "transform", &text);
        (void)rb_transform_parse(text, &so->transform); /* the choice list admits nothing else */
    }
    if (cache != NULL && so->transform != RB_TRANSFORM_PAPER)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "--cache keeps decoded images for --transform paper; add --transform paper or leave "
                            "--cache out");
    so->cache_dir = cache;
    return RB_OK;
}

rb_tune_mode cli_tune(const rb_params *options)
{
    const char *text = NULL;
    rb_tune_mode m = RB_TUNE_CACHED;
    rb_params_get_string(options, "tune", &text);
    (void)rb_tune_mode_parse(text, &m); /* the choice list admits nothing else */
    return m;
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

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < AVAILABLE_COUNT; i++)
        if (strcmp(name, available_commands[i]->name) == 0)
            return available_commands[i];
    return NULL;
}

const cli_note cli_global_flags[] = {
    {"-v, --verbose", "log more (repeat for debug, trace)"},
    {"-q, --quiet", "log less (warnings, then errors only)"},
    {"-h, --help", "show help (for a command: robusta COMMAND --help)"},
    {"--man", "print the help as a manual page (robusta(1); robusta COMMAND --man: robusta-COMMAND(1))"},
    {"--version", "show versions of robusta and its libraries"},
    {NULL, NULL}};

const cli_note cli_environment[] = {
    {"RB_PLUGIN_PATH", "folders searched for plugins before the install folder"},
    {"RB_LOG", "log level: error, warn, info (default), debug, trace"},
    {"RB_PROGRESS_SECONDS", "seconds between progress lines when not on a terminal (10)"},
    {"RB_PLAN_CACHE", "the file of measured training kernels (--tune; default plans.json under "
                      "$XDG_CACHE_HOME/robusta, else ~/.cache/robusta)"},
    {NULL, NULL}};

const char cli_exit_status[] = "0 success, 1 failure, 2 bad command line, 3 not available yet";

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
    fprintf(out, "\nglobal options (anywhere before a lone --):\n");
    for (size_t i = 0; cli_global_flags[i].name != NULL; i++)
        fprintf(out, "  %-14s %s\n", cli_global_flags[i].name, cli_global_flags[i].text);
    fprintf(out, "\nenvironment (the install folder of plugins: %s):\n", rb_registry_install_dir());
    for (size_t i = 0; cli_environment[i].name != NULL; i++)
        fprintf(out, "  %-20s %s\n", cli_environment[i].name, cli_environment[i].text);
    fprintf(out, "\nexit status: %s\n", cli_exit_status);
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

/* " (rank 1 of 4)" in a job of several ranks, "" alone. */
static const char *rank_note(void)
{
    static char note[48];
    if (rb_dist_size() == 1)
        return "";
    snprintf(note, sizeof note, " (rank %d of %d)", rb_dist_rank(), rb_dist_size());
    return note;
}

int cli_fail(const char *command, rb_status status)
{
    if (command != NULL)
        fprintf(stderr, "robusta %s%s: %s\n", command, rank_note(), rb_last_error());
    else
        fprintf(stderr, "robusta%s: %s\n", rank_note(), rb_last_error());
    switch (status) {
    case RB_OK: return RB_EXIT_OK;
    case RB_ERR_NOT_AVAILABLE: return RB_EXIT_NOT_AVAILABLE;
    default: return RB_EXIT_FAILURE;
    }
}

static int usage_error(const char *command, const char *hint)
{
    fprintf(stderr, "robusta%s%s%s: %s (%s)\n", command ? " " : "", command ? command : "", rank_note(),
            rb_last_error(), hint);
    return RB_EXIT_USAGE;
}

/* A job's ranks must be the same program, with the same plugins and the
 * same command line: checked once at start, one line if not. */
static rb_status check_ranks_agree(int argc, char **argv)
{
    char text[8192];
    size_t len = 0;
    rb_registry *reg;
    rb_status s;
    if (rb_dist_size() == 1)
        return RB_OK;
    snprintf(text, sizeof text, "%s", rb_version_string());
    if ((s = rb_dist_agree("the robusta versions differ between ranks", text)) != RB_OK)
        return s;
    text[0] = '\0';
    for (int i = 1; i < argc && len + 1 < sizeof text; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", i > 1 ? " " : "", argv[i]);
    if ((s = rb_dist_agree("the command lines differ between ranks", text)) != RB_OK)
        return s;
    text[0] = '\0';
    len = 0;
    if ((reg = cli_registry()) != NULL)
        for (size_t i = 0; i < rb_registry_count(reg) && len + 1 < sizeof text; i++) {
            const rb_plugin *p = rb_registry_get(reg, i);
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%s %s %s", i > 0 ? ", " : "",
                                    rb_plugin_kind_str(p->kind), p->name, p->version);
        }
    return rb_dist_agree("the plugin sets differ between ranks (RB_PLUGIN_PATH?)", text);
}

static int run_command(int argc, char **argv);

/* Every rank of an mpirun/srun job runs the command; one that fails ends
 * the whole job, since the others may be waiting for it in a collective. */
int main(int argc, char **argv)
{
    int code;
    if (rb_dist_init(&argc, &argv) != RB_OK) {
        fprintf(stderr, "robusta: %s\n", rb_last_error());
        return RB_EXIT_NOT_AVAILABLE;
    }
    if (check_ranks_agree(argc, argv) != RB_OK) {
        if (rb_dist_rank() == 0)
            fprintf(stderr, "robusta: %s; every rank must run the same robusta with the same plugins and options\n",
                    rb_last_error());
        rb_dist_abort(RB_EXIT_USAGE);
    }
    /* rank 0 reports; the others' results are the same or a share of it */
    if (rb_dist_rank() > 0 && freopen("/dev/null", "w", stdout) == NULL)
        rb_dist_abort(RB_EXIT_FAILURE);
    code = run_command(argc, argv);
    if (code != RB_EXIT_OK && rb_dist_size() > 1)
        rb_dist_abort(code); /* its line is out, with its rank */
    rb_dist_finalize();
    return code;
}

static int run_command(int argc, char **argv)
{
    int verbosity = 0, help = 0, version = 0, man = 0, kept = 0, code;
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
        } else if (strcmp(a, "--man") == 0) {
            man = 1;
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
    /* in a job, rank 0 tells the story; the others speak up for warnings */
    if (rb_dist_rank() > 0 && rb_log_get_level() > RB_LOG_WARN)
        rb_log_set_level(RB_LOG_WARN);

    if (version) {
        print_version(stdout);
        return RB_EXIT_OK;
    }
    if (man && (argc < 2 || strcmp(argv[1], "--") == 0)) {
        cli_print_man_main(stdout, available_commands, AVAILABLE_COUNT);
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
    if (man) {
        cli_print_man_command(stdout, cmd);
        return RB_EXIT_OK;
    }
    if (help) {
        cli_print_command_help(stdout, cmd, argc - 2, argv + 2);
        return RB_EXIT_OK;
    }

    if (rb_dist_size() > 1 && !cmd->data_parallel) {
        rb_error_set(RB_ERR_NOT_AVAILABLE,
                     "robusta %s does not run as a job of several ranks (%d here); under mpirun or srun only train, "
                     "transfer, grid and bench do: run it as one process",
                     cmd->name, rb_dist_size());
        return cli_fail(NULL, RB_ERR_NOT_AVAILABLE);
    }
    s = cli_choose_plugins(cmd, argc - 2, argv + 2);
    if (s == RB_OK)
        s = rb_params_create(&options, cli_own_options());
    if (s != RB_OK) {
        cli_release_plugins();
        if (s != RB_ERR_NOT_FOUND)
            return cli_fail(cmd->name, s);
        fprintf(stderr, "robusta %s: %s\n", cmd->name, rb_last_error()); /* names a fix already */
        return RB_EXIT_USAGE;
    }
    {
        int positional = 0;
        char hint[96];
        snprintf(hint, sizeof hint, "robusta %s --help lists its options", cmd->name);
        const char *precision = NULL;
        if (cli_parse_options(options, argc - 2, argv + 2, &positional) != RB_OK) {
            rb_params_destroy(options);
            cli_release_plugins();
            return usage_error(cmd->name, hint);
        }
        /* before anything is read or written: a CPU without the kernels */
        if (rb_params_get_string(options, "precision", &precision) == RB_OK && precision != NULL &&
            !rb_precision_available(cli_precision(options))) {
            rb_error_set(RB_ERR_INVALID_ARGUMENT,
                         "--precision %s: this CPU has no bf16 convolutions in oneDNN (they need AVX-512)", precision);
            rb_params_destroy(options);
            cli_release_plugins();
            return usage_error(cmd->name, "use --precision f32");
        }
        code = cmd->run(cmd, options, positional, argv + 2);
    }
    rb_params_destroy(options);
    cli_release_plugins();
    return code;
}
