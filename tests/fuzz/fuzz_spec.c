/* libFuzzer harness: the small text parsers of user input. Every input,
 * as a C string, goes through each of them: dataset spec strings
 * (rb_dataset_spec_parse), learning-rate schedules (rb_schedule_parse,
 * then the rate at a few epochs), grid epsilons (rb_grid_parse_eps),
 * precision, convolution algorithm and log level names, and a typed value
 * of every parameter type (as `--eps 8/255`, `--mean 0.5,0.4,0.3`: int,
 * float, bool, string, choice, int and float lists, with ranges). Then the
 * input, cut at newlines, is a command line for rb_params_parse_args over
 * two parameter sets, as a command and its attack plugin share one. */
#include "config.h"

#include <math.h>

#include "fuzz.h"

static const rb_param_spec command_params[] = {
    {"eps", RB_PARAM_FLOAT, "0.5", "[0, inf)", 0, "radius"},
    {"steps", RB_PARAM_INT, "7", "[1, 100000]", 0, "steps"},
    {"norm", RB_PARAM_CHOICE, "l2", "l2|linf", 0, "ball"},
    {"random-start", RB_PARAM_BOOL, "false", NULL, 0, "random start"},
    {"out", RB_PARAM_STRING, NULL, NULL, 0, "output"},
    {"milestones", RB_PARAM_INT_LIST, "30,60", "[0, 1000)", 0, "epochs"},
    {"mean", RB_PARAM_FLOAT_LIST, "0.485,0.456,0.406", "[0, 1]", 0, "mean"},
    {"lr", RB_PARAM_FLOAT, "0.1", "(0, 10]", 0, "learning rate"},
    {NULL}};
static const rb_param_spec plugin_params[] = {
    {"steps", RB_PARAM_INT, "10", "[0, 50]", 0, "steps"},
    {"restarts", RB_PARAM_INT, "1", "[1, inf)", 0, "restarts"},
    {"rho", RB_PARAM_FLOAT, "0.75", "(0, 1)", 0, "rho"},
    {NULL}};

static void text_parsers(const char *text)
{
    rb_dataset_spec *spec = malloc(sizeof *spec);
    rb_schedule schedule;
    rb_precision precision;
    rb_conv_algorithm algorithm;
    rb_log_level level;
    double eps;
    rb_status s;

    if ((s = rb_dataset_spec_parse(spec, text)) != RB_OK)
        fuzz_expect_one_line("dataset-spec", s);
    free(spec);
    if ((s = rb_schedule_parse(text, 0.1, 30, &schedule)) != RB_OK) {
        fuzz_expect_one_line("schedule", s);
    } else {
        for (double e = 0; e <= 31; e += 0.75)
            fuzz_assert(isfinite(rb_schedule_lr(&schedule, e)) && rb_schedule_lr(&schedule, e) >= 0, "schedule",
                        "a learning rate is negative or not finite");
    }
    if ((s = rb_grid_parse_eps(text, &eps)) != RB_OK)
        fuzz_expect_one_line("eps", s);
    else
        fuzz_assert(isfinite(eps) && eps >= 0, "eps", "accepted a negative or non-finite eps");
    if ((s = rb_precision_parse(text, &precision)) != RB_OK)
        fuzz_expect_one_line("precision", s);
    if ((s = rb_conv_algorithm_parse(text, &algorithm)) != RB_OK)
        fuzz_expect_one_line("conv-algorithm", s);
    if ((s = rb_log_parse_level(text, &level)) != RB_OK)
        fuzz_expect_one_line("log-level", s);
}

static void typed_values(const char *text)
{
    rb_params *p = NULL;
    fuzz_assert(rb_params_create(&p, command_params) == RB_OK, "params", "the table is refused");
    for (const rb_param_spec *spec = command_params; spec->name != NULL; spec++) {
        rb_status s = rb_params_set(p, spec->name, text);
        char shown[512];
        if (s != RB_OK) {
            fuzz_expect_one_line("params", s);
            continue;
        }
        if (spec->type == RB_PARAM_FLOAT) {
            double v;
            fuzz_assert(rb_params_get_float(p, spec->name, &v) == RB_OK && isfinite(v), "params",
                        "an accepted float is not finite");
        } else if (spec->type == RB_PARAM_FLOAT_LIST || spec->type == RB_PARAM_INT_LIST) {
            const double *f;
            const int64_t *i;
            size_t n;
            if (spec->type == RB_PARAM_FLOAT_LIST) {
                fuzz_assert(rb_params_get_float_list(p, spec->name, &f, &n) == RB_OK && n > 0, "params",
                            "an accepted list is empty");
                for (size_t k = 0; k < n; k++)
                    fuzz_assert(isfinite(f[k]), "params", "an accepted element is not finite");
            } else {
                fuzz_assert(rb_params_get_int_list(p, spec->name, &i, &n) == RB_OK && n > 0, "params",
                            "an accepted list is empty");
            }
        }
        (void)rb_params_format(p, spec->name, shown, sizeof shown);
    }
    rb_params_destroy(p);
}

static void command_line(char *text)
{
    char *argv[64];
    int argc = 0, positional = 0;
    rb_params *sets[2] = {NULL, NULL};
    rb_status s;
    for (char *line = text; argc < 64;) {
        char *nl = strchr(line, '\n');
        argv[argc++] = line;
        if (nl == NULL)
            break;
        *nl = '\0';
        line = nl + 1;
    }
    fuzz_assert(rb_params_create(&sets[0], command_params) == RB_OK &&
                    rb_params_create(&sets[1], plugin_params) == RB_OK,
                "params", "a table is refused");
    s = rb_params_parse_args(sets, 2, argc, argv, &positional);
    if (s != RB_OK)
        fuzz_expect_one_line("params-args", s);
    else
        fuzz_assert(positional >= 0 && positional <= argc, "params-args", "positional count out of range");
    rb_params_destroy(sets[0]);
    rb_params_destroy(sets[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;
    fuzz_init();
    if (size > 4096) /* options and specs are short; longer inputs only slow the search */
        return 0;
    text = fuzz_strndup(data, size);
    text_parsers(text);
    typed_values(text);
    command_line(text); /* last: cuts the text at newlines */
    free(text);
    return 0;
}
