/* Commands that are part of robusta's interface but are not built yet. They
 * exist so that scripts and documentation can name them today, and so that
 * calling one says clearly that it is not available rather than "unknown
 * command". */
#include "config.h"

#include <stdio.h>

#include "cli/cli.h"

static int run_planned(const cli_command *self, rb_params *options, int argc, char **args)
{
    (void)options;
    (void)argc;
    (void)args;
    rb_error_set(RB_ERR_NOT_AVAILABLE,
                 "not available yet in robusta %s (it will %s); the README's roadmap says when",
                 rb_version_string(), self->description);
    return cli_fail(self->name, RB_ERR_NOT_AVAILABLE);
}

#define PLANNED(name_, summary_, usage_, what_)                                                 \
    {.name = name_, .summary = summary_, .usage = usage_, .description = what_,               \
     .options = NULL, .run = run_planned}

const cli_command cli_planned_commands[] = {
    PLANNED("bench", "measure engine and training throughput",
            "[--threads N] [what]",
            "measure layer, step and attack throughput on this machine"),
};

const size_t cli_planned_command_count = sizeof cli_planned_commands / sizeof cli_planned_commands[0];
