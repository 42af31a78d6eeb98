/* The robusta command: a table of subcommands, each with its own options
 * declared as an rb_param_spec table (so --help and parsing come from one
 * place). */
#ifndef RB_CLI_H
#define RB_CLI_H

#include <robusta/robusta.h>

/* Exit codes, documented in `robusta --help` and the README. */
enum {
    RB_EXIT_OK = 0,
    RB_EXIT_FAILURE = 1,       /* the command ran and failed */
    RB_EXIT_USAGE = 2,         /* bad command line: unknown command or option, bad value */
    RB_EXIT_NOT_AVAILABLE = 3  /* the command exists but is not available in this release */
};

typedef struct cli_command {
    const char *name;
    const char *summary;     /* one line for `robusta --help` */
    const char *usage;       /* arguments after the command name */
    const char *description; /* a paragraph for `robusta CMD --help` */
    const rb_param_spec *options;
    /* Runs with options parsed; `args` are the positional arguments. */
    int (*run)(const struct cli_command *self, rb_params *options, int argc, char **args);
} cli_command;

/* Prints "robusta: CMD: message" for the current error and returns the exit
 * code its status maps to. */
int cli_fail(const char *command, rb_status status);

extern const cli_command cli_plugins_command;
/* Commands that exist in the interface but are not available yet. */
extern const cli_command cli_planned_commands[];
extern const size_t cli_planned_command_count;

#endif /* RB_CLI_H */
