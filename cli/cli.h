/* The robusta command: a table of subcommands, each with its own options
 * declared as an rb_param_spec table (so --help and parsing come from one
 * place). */
#ifndef RB_CLI_H
#define RB_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include <robusta/robusta.h>

/* Exit codes, documented in `robusta --help` and the README. */
enum {
    RB_EXIT_OK = 0,
    RB_EXIT_FAILURE = 1,       /* the command ran and failed */
    RB_EXIT_USAGE = 2,         /* bad command line: unknown command or option, bad value */
    RB_EXIT_NOT_AVAILABLE = 3  /* what was asked needs a piece this release does not have yet */
};

/* An option whose value names a plugin whose own parameters the command
 * line then also accepts (import's --arch resnet50 --width 0.5), each also
 * as --OPTION.NAME (--arch.width 0.5): see cli/options.c, "Namespaces". */
typedef struct cli_plugin_option {
    const char *option; /* "arch" */
    rb_plugin_kind kind;
    /* The command's options that the plugin takes over when it declares a
     * parameter of the same name and type (NULL-terminated; NULL: none):
     * a plain --NAME then sets the plugin's parameter, and the command
     * reads the value from there (cli_option_owner). Any other name both
     * declare stays the command's. */
    const char *const *shared;
} cli_plugin_option;

/* The attack schedule (rb_attack_options): the options an attack plugin
 * takes over when it declares them: steps, random-start, restarts,
 * keep-best, targeted, seed. */
extern const char *const cli_attack_schedule[];

typedef struct cli_command {
    const char *name;
    const char *summary;     /* one line for `robusta --help` */
    const char *usage;       /* arguments after the command name */
    const char *description; /* a paragraph for `robusta CMD --help` */
    const rb_param_spec *options;
    /* Optional, ended by a NULL option: plugin-selecting options. */
    const cli_plugin_option *plugin_options;
    /* Runs with options parsed; `args` are the positional arguments. */
    int (*run)(const struct cli_command *self, rb_params *options, int argc, char **args);
    /* Runs as one job over the ranks of mpirun/srun (robusta/dist.h):
     * data-parallel, or dealing independent runs to the ranks; other
     * commands refuse to start in a job of several ranks. */
    bool data_parallel;
} cli_command;

/* Prints "robusta: CMD: message" for the current error and returns the exit
 * code its status maps to. */
int cli_fail(const char *command, rb_status status);

/* The plugins found in RB_PLUGIN_PATH and the install folder, loaded on
 * first use and kept until exit. NULL (with the error set) on failure. */
rb_registry *cli_registry(void);

/* The plugin chosen with --OPTION and the parameter set main parsed its
 * options into; NULL when that option was not given. */
const rb_plugin *cli_plugin(const char *option);
rb_params *cli_plugin_params(const char *option);

/* Option namespaces (cli/options.c). main calls these in order:
 * cli_choose_plugins (the plugins the command line names, or the plugin
 * options' defaults), then makes the command's options from
 * cli_own_options (its table less the options chosen plugins take over),
 * cli_parse_options, runs the command, and cli_release_plugins. */
rb_status cli_choose_plugins(const cli_command *cmd, int argc, char **argv);
const rb_param_spec *cli_own_options(void);
/* Parses argv (after the command name) into `options` and the chosen
 * plugins' parameters, moving positional arguments to the front. */
rb_status cli_parse_options(rb_params *options, int argc, char **argv, int *positional);
void cli_release_plugins(void);
/* The usage, the command's options and, with a plugin named on argv, its
 * parameters; otherwise what plugins may take over. */
void cli_print_command_help(FILE *out, const cli_command *cmd, int argc, char **argv);

/* One option as help shows it: "--NAME TYPE" (or the choices; a flag
 * alone) and its text with "(required)", "(default D)" and its range. */
void cli_describe_option(const rb_param_spec *spec, const char *name, char *left, size_t left_size, char *right,
                         size_t right_size);

/* What `robusta --help` lists besides the commands, for it and the manual. */
typedef struct cli_note {
    const char *name, *text;
} cli_note;
extern const cli_note cli_global_flags[];  /* ended by a NULL name */
extern const cli_note cli_environment[];   /* ended by a NULL name */
extern const char cli_exit_status[];

/* Manual pages (man.c), from the same tables as --help: robusta(1) for the
 * program and its commands, robusta-COMMAND(1) for each command. */
void cli_print_man_main(FILE *out, const cli_command *const *commands, size_t n);
void cli_print_man_command(FILE *out, const cli_command *cmd);

/* The set that holds the value of the command's option `name`: a chosen
 * plugin's parameters when the plugin took the option over, else
 * `options`. Read the command's shared options through it. */
const rb_params *cli_option_owner(const rb_params *options, const char *name);
/* Fills steps, restarts, random_start, keep_best and seed of `ao` from
 * those of the command's options it has (through cli_option_owner).
 * Refuses --steps given to a whole-run attack that schedules itself
 * without taking steps over (square counts queries): it would be
 * ignored. */
rb_status cli_attack_options(const rb_params *options, rb_attack_options *ao);

/* An option's value, after parsing (so it has one: given or default);
 * cli_opt_string is NULL for a string option without a default that was
 * not given. */
static inline int64_t cli_opt_int(const rb_params *o, const char *name)
{
    int64_t v = 0;
    rb_params_get_int(o, name, &v);
    return v;
}

static inline double cli_opt_float(const rb_params *o, const char *name)
{
    double v = 0;
    rb_params_get_float(o, name, &v);
    return v;
}

static inline bool cli_opt_bool(const rb_params *o, const char *name)
{
    bool v = false;
    rb_params_get_bool(o, name, &v);
    return v;
}

static inline const char *cli_opt_string(const rb_params *o, const char *name)
{
    const char *v = NULL;
    if (rb_params_source(o, name) == RB_PARAM_UNSET)
        return NULL;
    rb_params_get_string(o, name, &v);
    return v;
}

/* --precision and --conv-algorithm, the same on every command that runs an
 * engine. */
#define CLI_ARITHMETIC_OPTIONS                                                                   \
    {"precision", RB_PARAM_CHOICE, "f32", "f32|bf16|auto", 0,                                    \
     "arithmetic: f32, bf16 mixed precision (about twice as fast with avx512_bf16), or auto: "   \
     "training convolutions in bf16 where measured faster"},                                     \
    {"conv-algorithm", RB_PARAM_CHOICE, "winograd", "winograd|direct", 0,                        \
     "3x3 stride-1 fp32 convolutions by Winograd (faster; rounding ~1e-6) or direct everywhere"}
/* --tune, on every command that trains (and bench), and --strict-resume on
 * those that resume. */
#define CLI_TUNE_OPTION                                                                          \
    {"tune", RB_PARAM_CHOICE, "cached", "off|cached|full", 0,                                   \
     "training kernels: measured once and remembered (cached), measured again (full), or by "    \
     "static rules (off)"}
#define CLI_STRICT_RESUME_OPTION                                                                 \
    {"strict-resume", RB_PARAM_BOOL, "false", NULL, 0,                                          \
     "with --resume: refuse a run whose kernels were chosen on another machine"}
/* --transform and --cache, the same on every command that opens image sets. */
#define CLI_IMAGE_SET_OPTIONS                                                                    \
    {"transform", RB_PARAM_CHOICE, "none", "none|paper", 0,                                      \
     "image files (folder:, list:): none (resized to --image-size as read), or paper: the "      \
     "paper's RandomResizedCrop+flip / Resize+CenterCrop at --image-size (0: 224)"},             \
    {"cache", RB_PARAM_STRING, NULL, NULL, 0,                                                   \
     "with --transform paper: a folder for the decoded images' cache file (default: memory)"}
/* Sets so->transform from --transform when it is given (else keeps what
 * so holds: none, or eval's checkpoint's) and so->cache_dir from --cache;
 * RB_ERR_INVALID_ARGUMENT (one line) for --cache without the paper's
 * transform. */
rb_status cli_image_set_options(const rb_params *options, rb_split_options *so);

/* The engine precision --precision chose. */
rb_precision cli_precision(const rb_params *options);
/* The tuning mode --tune chose. */
rb_tune_mode cli_tune(const rb_params *options);
/* The convolution algorithm --conv-algorithm chose. */
rb_conv_algorithm cli_conv_algorithm(const rb_params *options);

/* Images for a model: float32 N x C x H x W, finite, in [0, 1]. */
rb_status cli_read_images(const char *path, rb_npy **out);
/* Integer labels of shape [n], each in [0, classes), as int64 (free them). */
rb_status cli_read_labels(const char *path, int64_t n, int64_t classes, int64_t **out);
/* Example indices: an integer .npy of shape [k], k >= 1 (ranges are the
 * split's to check); *count receives k. */
rb_status cli_read_indices(const char *path, int64_t **out, int64_t *count);

/* For commands that train: SIGINT (Ctrl-C), SIGTERM and SIGHUP ask the run
 * to stop at the next batch (rb_train_request_stop); a second one of them
 * ends the process at once. */
void cli_catch_stop_signals(void);
/* The exit code of a run stopped that way: 128 + the signal (130 for SIGINT). */
int cli_stop_exit_code(void);
/* Prints a training or transfer run's outcome; returns the exit code
 * (cli_stop_exit_code when stopped by a signal). */
int cli_finish_train(const cli_command *self, rb_status status, const struct rb_train_result *result,
                     const char *dir);

/* An evaluation to print (cli_print_eval): what was evaluated and how. */
typedef struct cli_eval_report {
    const char *ckpt, *data, *classes;
    rb_split_which which;
    const rb_split *split;
    const rb_eval_result *result;
    const char *attack;                      /* NULL: no attack */
    const rb_params *attack_params;
    const rb_attack_options *attack_options;
    /* AutoAttack (attack_params NULL): its version, norm and eps, and the
     * stages in the order of result->stage_fooled */
    const char *autoattack, *norm;
    double eps;
    const rb_attack_stage *stages;
} cli_eval_report;

/* Prints an evaluation as eval does: text (the primary metric and loss,
 * then per-class accuracy for classifiers or the task's metrics for other
 * tasks) or JSON. */
void cli_print_eval(const cli_eval_report *report, bool json);

extern const cli_command cli_plugins_command;
extern const cli_command cli_train_command;
extern const cli_command cli_eval_command;
extern const cli_command cli_import_command;
extern const cli_command cli_export_command;
extern const cli_command cli_infer_command;
extern const cli_command cli_inspect_command;
extern const cli_command cli_attack_command;
extern const cli_command cli_transfer_command;
extern const cli_command cli_grid_command;
extern const cli_command cli_demo_command;
extern const cli_command cli_bench_command;
extern const cli_command cli_make_scenes_command;
extern const cli_command cli_data_command;
extern const cli_command cli_coco_eval_command;
extern const cli_command cli_report_command;

#endif /* RB_CLI_H */
