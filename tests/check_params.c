/* Parameter tables, parsing, ranges, suggestions and command lines. */
#include "config.h"

#include <math.h>

#include <robusta/robusta.h>

#include "testutil.h"

static const rb_param_spec specs[] = {
    {"eps", RB_PARAM_FLOAT, "0.5", "[0, inf)", 0, "radius"},
    {"step-size", RB_PARAM_FLOAT, "2/255", "(0, 1]", 0, "step"},
    {"steps", RB_PARAM_INT, "7", "[1, 1000]", 0, "iterations"},
    {"random-start", RB_PARAM_BOOL, "false", NULL, 0, "start at a random point"},
    {"stem", RB_PARAM_CHOICE, "imagenet", "imagenet|cifar", 0, "first layers"},
    {"out", RB_PARAM_STRING, NULL, NULL, RB_PARAM_REQUIRED, "output folder"},
    {"mean", RB_PARAM_FLOAT_LIST, "0.485,0.456,0.406", "[0, 1]", 0, "channel means"},
    {"hidden", RB_PARAM_INT_LIST, NULL, "[1, 65536]", 0, "hidden layer widths"},
    {NULL}};

static rb_params *params;

static void setup(void)
{
    ck_assert_int_eq(rb_params_create(&params, specs), RB_OK);
}

static void teardown(void)
{
    rb_params_destroy(params);
    params = NULL;
}

START_TEST(defaults_are_parsed_and_typed)
{
    double f;
    int64_t i;
    bool b;
    const char *s;
    const double *list;
    size_t n;
    ck_assert_int_eq(rb_params_get_float(params, "eps", &f), RB_OK);
    ck_assert_double_eq(f, 0.5);
    ck_assert_int_eq(rb_params_get_float(params, "step-size", &f), RB_OK);
    ck_assert_double_eq(f, 2.0 / 255.0);
    ck_assert_int_eq(rb_params_get_int(params, "steps", &i), RB_OK);
    ck_assert_int_eq(i, 7);
    ck_assert_int_eq(rb_params_get_bool(params, "random-start", &b), RB_OK);
    ck_assert(!b);
    ck_assert_int_eq(rb_params_get_string(params, "stem", &s), RB_OK);
    ck_assert_str_eq(s, "imagenet");
    ck_assert_int_eq(rb_params_get_float_list(params, "mean", &list, &n), RB_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_double_eq(list[2], 0.406);
    ck_assert_int_eq(rb_params_source(params, "eps"), RB_PARAM_DEFAULT);
    ck_assert_int_eq(rb_params_source(params, "out"), RB_PARAM_UNSET);
    ck_assert_int_eq(rb_params_get_string(params, "out", &s), RB_ERR_NOT_FOUND);
    ck_assert_str_eq(rb_last_error(), "--out was not given");
}
END_TEST

START_TEST(values_are_set_and_checked)
{
    double f;
    int64_t i;
    const int64_t *ints;
    size_t n;
    ck_assert_int_eq(rb_params_set(params, "eps", "8/255"), RB_OK);
    ck_assert_int_eq(rb_params_get_float(params, "eps", &f), RB_OK);
    ck_assert_double_eq(f, 8.0 / 255.0);
    ck_assert_int_eq(rb_params_source(params, "eps"), RB_PARAM_GIVEN);
    ck_assert_int_eq(rb_params_set(params, "eps", "1e-3"), RB_OK);
    ck_assert_int_eq(rb_params_get_float(params, "eps", &f), RB_OK);
    ck_assert_double_eq(f, 1e-3);
    ck_assert_int_eq(rb_params_set(params, "steps", "1000"), RB_OK);
    ck_assert_int_eq(rb_params_get_int(params, "steps", &i), RB_OK);
    ck_assert_int_eq(i, 1000);
    ck_assert_int_eq(rb_params_set(params, "hidden", "512, 256"), RB_OK);
    ck_assert_int_eq(rb_params_get_int_list(params, "hidden", &ints, &n), RB_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ints[0], 512);
    ck_assert_int_eq(ints[1], 256);
}
END_TEST

/* Each bad value: the status, the exact message, and the old value kept. */
static void expect_bad(const char *name, const char *value, const char *message)
{
    char before[256], after[256];
    ck_assert_int_eq(rb_params_format(params, name, before, sizeof before), RB_OK);
    ck_assert_int_eq(rb_params_set(params, name, value), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), message);
    ck_assert_int_eq(rb_params_format(params, name, after, sizeof after), RB_OK);
    ck_assert_str_eq(before, after);
}

START_TEST(bad_values_are_refused_with_one_clear_line)
{
    expect_bad("eps", "-1", "--eps: -1 is outside [0, inf)");
    expect_bad("eps", "abc", "--eps: 'abc' is not a number (write e.g. 0.5, 1e-3 or 8/255)");
    expect_bad("eps", "nan", "--eps: 'nan' is not a finite number");
    expect_bad("eps", "inf", "--eps: 'inf' is not a finite number");
    expect_bad("eps", "1e999", "--eps: '1e999' is too large");
    expect_bad("eps", "8/0", "--eps: '8/0' divides by zero");
    expect_bad("eps", "0.5x", "--eps: '0.5x' is not a number (write e.g. 0.5, 1e-3 or 8/255)");
    expect_bad("eps", "", "--eps: '' is not a number (write e.g. 0.5, 1e-3 or 8/255)");
    expect_bad("step-size", "0", "--step-size: 0 is outside (0, 1]");
    expect_bad("step-size", "1.0001", "--step-size: 1.0001 is outside (0, 1]");
    expect_bad("steps", "0", "--steps: 0 is outside [1, 1000]");
    expect_bad("steps", "2.5", "--steps: '2.5' is not an integer");
    expect_bad("steps", "99999999999999999999", "--steps: '99999999999999999999' is too large");
    expect_bad("random-start", "maybe", "--random-start: 'maybe' is not true or false");
    expect_bad("stem", "imagenett", "--stem: 'imagenett' is not one of imagenet|cifar; did you mean imagenet?");
    expect_bad("stem", "vit", "--stem: 'vit' is not one of imagenet|cifar");
    expect_bad("mean", "0.5,x,0.5", "--mean: element 2 'x' is not a number");
    expect_bad("mean", "0.5,2", "--mean: element 2 (2) is outside [0, 1]");
    expect_bad("mean", "", "--mean: empty list");
}
END_TEST

START_TEST(unknown_names_get_the_closest_suggested)
{
    ck_assert_int_eq(rb_params_set(params, "epss", "1"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "unknown option --epss; did you mean --eps?");
    ck_assert_int_eq(rb_params_set(params, "stepsize", "1"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "unknown option --stepsize; did you mean --step-size?");
    ck_assert_int_eq(rb_params_set(params, "random", "1"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "unknown option --random; did you mean --random-start?");
    ck_assert_int_eq(rb_params_set(params, "zzzzzz", "1"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "unknown option --zzzzzz");
}
END_TEST

START_TEST(required_options_are_enforced)
{
    ck_assert_int_eq(rb_params_check_required(params), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "missing required option --out (output folder)");
    ck_assert_int_eq(rb_params_set(params, "out", "runs/a"), RB_OK);
    ck_assert_int_eq(rb_params_check_required(params), RB_OK);
}
END_TEST

START_TEST(format_round_trips)
{
    char text[128];
    double f;
    ck_assert_int_eq(rb_params_set(params, "eps", "0.1"), RB_OK);
    ck_assert_int_eq(rb_params_format(params, "eps", text, sizeof text), RB_OK);
    ck_assert_str_eq(text, "0.1");
    ck_assert_int_eq(rb_params_format(params, "step-size", text, sizeof text), RB_OK);
    ck_assert_int_eq(rb_params_set(params, "step-size", text), RB_OK);
    ck_assert_int_eq(rb_params_get_float(params, "step-size", &f), RB_OK);
    ck_assert(f == 2.0 / 255.0); /* exact: the text must read back bit for bit */
    ck_assert_int_eq(rb_params_format(params, "mean", text, sizeof text), RB_OK);
    ck_assert_str_eq(text, "0.485,0.456,0.406");
    ck_assert_int_eq(rb_params_format(params, "random-start", text, sizeof text), RB_OK);
    ck_assert_str_eq(text, "false");
    ck_assert_int_eq(rb_params_format(params, "out", text, sizeof text), RB_OK);
    ck_assert_str_eq(text, "");
}
END_TEST

START_TEST(typed_reads_refuse_wrong_types)
{
    int64_t i;
    ck_assert_int_eq(rb_params_get_int(params, "eps", &i), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "parameter 'eps' is of type float, not int");
    ck_assert_int_eq(rb_params_get_int(params, "nope", &i), RB_ERR_NOT_FOUND);
    ck_assert(rb_params_declares(params, "eps"));
    ck_assert(!rb_params_declares(params, "nope"));
}
END_TEST

START_TEST(command_lines_parse_across_sets)
{
    static const rb_param_spec own[] = {
        {"json", RB_PARAM_BOOL, "false", NULL, 0, "JSON output"},
        {"batch-size", RB_PARAM_INT, "64", "[1, inf)", 0, "batch"},
        {"steps", RB_PARAM_INT, "10", "[0, inf)", 0, "declared by both sets: the first takes the value"},
        {NULL}};
    rb_params *mine;
    char a0[] = "model.rbt", a1[] = "--eps", a2[] = "0.25", a3[] = "--json", a4[] = "--steps=9",
         a5[] = "--no-random-start", a6[] = "extra", a7[] = "--", a8[] = "--not-an-option",
         a9[] = "--batch-size", a10[] = "-3", a32[] = "32";
    char *argv[] = {a0, a1, a2, a3, a4, a5, a6, a9, a10, a7, a8};
    rb_params *sets[2];
    int positional = -1;
    double f;
    int64_t i;
    bool b;

    ck_assert_int_eq(rb_params_create(&mine, own), RB_OK);
    sets[0] = mine;
    sets[1] = params;
    /* --batch-size -3 is parsed (negative numbers are values) and refused by range. */
    ck_assert_int_eq(rb_params_parse_args(sets, 2, 11, argv, &positional), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--batch-size: -3 is outside [1, inf)");
    /* A failed parse may leave argv partly reordered: start again from a fresh copy. */
    {
        char *fresh[] = {a0, a1, a2, a3, a4, a5, a6, a9, a32, a7, a8};
        memcpy(argv, fresh, sizeof argv);
    }
    ck_assert_int_eq(rb_params_parse_args(sets, 2, 11, argv, &positional), RB_OK);
    ck_assert_int_eq(positional, 3);
    ck_assert_str_eq(argv[0], "model.rbt");
    ck_assert_str_eq(argv[1], "extra");
    ck_assert_str_eq(argv[2], "--not-an-option");
    ck_assert_int_eq(rb_params_get_float(params, "eps", &f), RB_OK);
    ck_assert_double_eq(f, 0.25);
    /* a name both sets declare goes to the first only */
    ck_assert_int_eq(rb_params_get_int(mine, "steps", &i), RB_OK);
    ck_assert_int_eq(i, 9);
    ck_assert_int_eq(rb_params_source(mine, "steps"), RB_PARAM_GIVEN);
    ck_assert_int_eq(rb_params_source(params, "steps"), RB_PARAM_DEFAULT);
    {
        /* ... whose range alone applies: 0 suits mine, not the second's [1, 1000] */
        char s0[] = "--steps", s1[] = "0";
        char *zero[] = {s0, s1};
        rb_params *swapped[2] = {params, mine};
        ck_assert_int_eq(rb_params_parse_args(sets, 2, 2, zero, NULL), RB_OK);
        ck_assert_int_eq(rb_params_get_int(mine, "steps", &i), RB_OK);
        ck_assert_int_eq(i, 0);
        zero[0] = s0;
        zero[1] = s1;
        ck_assert_int_eq(rb_params_parse_args(swapped, 2, 2, zero, NULL), RB_ERR_INVALID_ARGUMENT);
        ck_assert_str_eq(rb_last_error(), "--steps: 0 is outside [1, 1000]");
    }
    ck_assert_int_eq(rb_params_get_bool(params, "random-start", &b), RB_OK);
    ck_assert(!b);
    ck_assert_int_eq(rb_params_get_bool(mine, "json", &b), RB_OK);
    ck_assert(b);
    ck_assert_int_eq(rb_params_get_int(mine, "batch-size", &i), RB_OK);
    ck_assert_int_eq(i, 32);
    rb_params_destroy(mine);
}
END_TEST

START_TEST(command_line_errors)
{
    rb_params *sets[1] = {params};
    char a0[] = "--eps", a1[] = "--steps", a2[] = "--jsn", a3[] = "--no-eps", a4[] = "--no-random-start=1";
    char *missing[] = {a0};
    char *option_as_value[] = {a0, a1, (char[]){"3"}};
    char *unknown[] = {a2};
    char *no_for_float[] = {a3};
    char *no_with_value[] = {a4};
    ck_assert_int_eq(rb_params_parse_args(sets, 1, 1, missing, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--eps needs a value (radius)");
    ck_assert_int_eq(rb_params_parse_args(sets, 1, 3, option_as_value, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--eps needs a value, but the next argument is the option --steps");
    ck_assert_int_eq(rb_params_parse_args(sets, 1, 1, unknown, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "unknown option --jsn");
    ck_assert_int_eq(rb_params_parse_args(sets, 1, 1, no_for_float, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "unknown option --no-eps");
    ck_assert_int_eq(rb_params_parse_args(sets, 1, 1, no_with_value, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--no-random-start takes no value");
}
END_TEST

/* A bad declaration table is refused with the parameter and the fault. */
static void expect_bad_table(const rb_param_spec *table, const char *message)
{
    rb_params *p = (rb_params *)0x1;
    ck_assert_int_eq(rb_param_specs_validate(table), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), message);
    ck_assert_int_ne(rb_params_create(&p, table), RB_OK);
    ck_assert_ptr_null(p);
}

START_TEST(declaration_tables_are_validated)
{
    static const rb_param_spec bad_name[] = {{"Eps", RB_PARAM_FLOAT, NULL, NULL, 0, "x"}, {NULL}};
    static const rb_param_spec twice[] = {{"a", RB_PARAM_INT, NULL, NULL, 0, "x"},
                                          {"a", RB_PARAM_INT, NULL, NULL, 0, "x"}, {NULL}};
    static const rb_param_spec bad_type[] = {{"a", (rb_param_type)99, NULL, NULL, 0, "x"}, {NULL}};
    static const rb_param_spec bad_range[] = {{"a", RB_PARAM_INT, NULL, "[1, 0]", 0, "x"}, {NULL}};
    static const rb_param_spec bad_default[] = {{"a", RB_PARAM_INT, "5", "[0, 1]", 0, "x"}, {NULL}};
    static const rb_param_spec bad_choice[] = {{"a", RB_PARAM_CHOICE, "x", "x||y", 0, "x"}, {NULL}};
    static const rb_param_spec no_help[] = {{"a", RB_PARAM_INT, NULL, NULL, 0, NULL}, {NULL}};
    static const rb_param_spec bool_range[] = {{"a", RB_PARAM_BOOL, NULL, "[0, 1]", 0, "x"}, {NULL}};
    expect_bad_table(bad_name, "parameter 1: name 'Eps' is not lower-case letters, digits and '-'");
    expect_bad_table(twice, "parameter 'a' is declared twice");
    expect_bad_table(bad_type, "parameter 'a': unknown type 99");
    expect_bad_table(bad_range, "parameter 'a': range '[1, 0]' is not an interval like [0, 1] or (0, inf)");
    expect_bad_table(bad_default, "parameter 'a': bad default: --a: 5 is outside [0, 1]");
    expect_bad_table(bad_choice, "parameter 'a': a choice needs its words as \"a|b|c\"");
    expect_bad_table(no_help, "parameter 'a': no help text");
    expect_bad_table(bool_range, "parameter 'a': a bool parameter takes no range");
    ck_assert_int_eq(rb_param_specs_validate(NULL), RB_OK);
}
END_TEST

START_TEST(suggestions)
{
    const char *names[] = {"train", "transfer", "eval", "attack", "plugins"};
    ck_assert_str_eq(rb_suggest("trian", names, 5), "train");
    ck_assert_str_eq(rb_suggest("plugin", names, 5), "plugins");
    ck_assert_str_eq(rb_suggest("trans", names, 5), "transfer");
    ck_assert_ptr_null(rb_suggest("zebra", names, 5));
    ck_assert_ptr_null(rb_suggest("x", names, 0));
    /* the rules of robusta/suggest.h, one case each */
    {
        const char *two[] = {"steps", NULL, "step-size", "seed"};
        const char *ties[] = {"eps", "ops"};
        const char *far[] = {"momentum"};
        /* "step" is one deletion from "steps": distance 1 beats the two prefixes */
        ck_assert_str_eq(rb_suggest("step", two, 4), "steps");
        /* "ste" starts "steps" and "step-size" (ambiguous) and is 2 from both: none */
        ck_assert_ptr_null(rb_suggest("ste", two, 4));
        /* "xps" is 1 from "eps" and from "ops": the first wins */
        ck_assert_str_eq(rb_suggest("xps", ties, 2), "eps");
        /* 6 letters allow max(2, (6 + 2) / 3) = 2 edits: "momntm" (2) passes;
         * 8 letters allow 3: "mamantam" (3) passes, "mxmxntxx" (4) does not */
        ck_assert_str_eq(rb_suggest("momntm", far, 1), "momentum");
        ck_assert_str_eq(rb_suggest("mamantam", far, 1), "momentum");
        ck_assert_ptr_null(rb_suggest("mxmxntxx", far, 1));
    }
}
END_TEST

START_TEST(type_names)
{
    ck_assert_str_eq(rb_param_type_str(RB_PARAM_INT), "int");
    ck_assert_str_eq(rb_param_type_str(RB_PARAM_FLOAT_LIST), "float list");
    ck_assert_str_eq(rb_param_type_str((rb_param_type)0), "unknown");
}
END_TEST

START_TEST(clones_keep_values_and_sources)
{
    rb_params *copy = NULL;
    double a, b;
    const int64_t *hidden;
    const char *out;
    size_t n;
    ck_assert_int_eq(rb_params_set(params, "eps", "1/3"), RB_OK);
    ck_assert_int_eq(rb_params_set(params, "hidden", "64,32"), RB_OK);
    ck_assert_int_eq(rb_params_set(params, "out", "runs/a"), RB_OK);
    ck_assert_int_eq(rb_params_clone(params, &copy), RB_OK);
    ck_assert_ptr_eq(rb_params_specs(copy), specs);
    for (size_t i = 0; specs[i].name != NULL; i++)
        ck_assert_int_eq(rb_params_source(copy, specs[i].name), rb_params_source(params, specs[i].name));
    ck_assert_int_eq(rb_params_source(copy, "eps"), RB_PARAM_GIVEN);
    ck_assert_int_eq(rb_params_source(copy, "steps"), RB_PARAM_DEFAULT);
    /* 1/3 has no short decimal: the copy holds the same bits, not a reparse */
    ck_assert_int_eq(rb_params_get_float(params, "eps", &a), RB_OK);
    ck_assert_int_eq(rb_params_get_float(copy, "eps", &b), RB_OK);
    ck_assert(memcmp(&a, &b, sizeof a) == 0);
    /* its own storage: the original can change or go */
    ck_assert_int_eq(rb_params_set(params, "out", "runs/b"), RB_OK);
    teardown();
    ck_assert_int_eq(rb_params_get_string(copy, "out", &out), RB_OK);
    ck_assert_str_eq(out, "runs/a");
    ck_assert_int_eq(rb_params_get_int_list(copy, "hidden", &hidden, &n), RB_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(hidden[0], 64);
    ck_assert_int_eq(hidden[1], 32);
    rb_params_destroy(copy);
    ck_assert_int_eq(rb_params_clone(NULL, &copy), RB_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(copy);
}
END_TEST

START_TEST(given_values_go_to_json_and_back)
{
    rb_params *back = NULL;
    char *json = NULL, *again = NULL, *long_text = malloc(5001);
    const char *s;
    ck_assert_int_eq(rb_params_to_json(params, &json), RB_OK);
    ck_assert_str_eq(json, "{}");
    free(json);
    /* table order, canonical texts, only what was given */
    ck_assert_int_eq(rb_params_set(params, "hidden", "64, 32"), RB_OK);
    ck_assert_int_eq(rb_params_set(params, "out", "a \"q\" b"), RB_OK);
    ck_assert_int_eq(rb_params_set(params, "stem", "cifar"), RB_OK);
    ck_assert_int_eq(rb_params_set(params, "eps", "0.25"), RB_OK);
    ck_assert_int_eq(rb_params_to_json(params, &json), RB_OK);
    ck_assert_str_eq(json, "{\"eps\":\"0.25\",\"stem\":\"cifar\",\"out\":\"a \\\"q\\\" b\",\"hidden\":\"64,32\"}");
    ck_assert_int_eq(rb_params_create(&back, specs), RB_OK);
    ck_assert_int_eq(rb_params_from_json(back, json, "t"), RB_OK);
    ck_assert_int_eq(rb_params_source(back, "stem"), RB_PARAM_GIVEN);
    ck_assert_int_eq(rb_params_source(back, "steps"), RB_PARAM_DEFAULT);
    ck_assert_int_eq(rb_params_to_json(back, &again), RB_OK);
    ck_assert_str_eq(again, json);
    free(json);
    free(again);
    /* a value longer than any fixed buffer is not cut */
    memset(long_text, 'x', 5000);
    long_text[5000] = '\0';
    ck_assert_int_eq(rb_params_set(params, "out", long_text), RB_OK);
    ck_assert_int_eq(rb_params_to_json(params, &json), RB_OK);
    ck_assert_int_eq(rb_params_from_json(back, json, "t"), RB_OK);
    ck_assert_int_eq(rb_params_get_string(back, "out", &s), RB_OK);
    ck_assert_str_eq(s, long_text);
    free(json);
    free(long_text);
    rb_params_destroy(back);
}
END_TEST

START_TEST(bad_json_parameters_are_refused_naming_the_place)
{
    int64_t steps;
    ck_assert_int_eq(rb_params_from_json(params, "{\"eps\": 1}", "cfg: attack_options"), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), "cfg: attack_options.eps is not a string");
    ck_assert_int_eq(rb_params_from_json(params, "{\"eps\": [\"1\"]}", "cfg: attack_options"), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), "cfg: attack_options.eps is not a string");
    ck_assert_int_eq(rb_params_from_json(params, "{\"epss\": \"1\"}", "cfg: attack_options"),
                     RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "cfg: attack_options: unknown option --epss; did you mean --eps?");
    ck_assert_int_eq(rb_params_from_json(params, "[]", "cfg: attack_options"), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), "cfg: attack_options is a JSON array, not an object of strings");
    ck_assert_int_eq(rb_params_from_json(params, "{\"eps\": \"1\", \"eps\": \"2\"}", "cfg"), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), "cfg is not valid JSON: duplicate key 'eps' in the object at byte 0");
    ck_assert_int_eq(rb_params_from_json(params, "{'eps': '1'}", "cfg"), RB_ERR_CORRUPT);
    ck_assert_str_eq(rb_last_error(), "cfg is not valid JSON: expected a string key at byte 1");
    ck_assert_int_eq(rb_params_from_json(params, NULL, "cfg"), RB_ERR_INVALID_ARGUMENT);
    /* the members before a bad one stay set; the bad one does not */
    ck_assert_int_eq(rb_params_from_json(params, "{\"steps\": \"9\", \"eps\": \"-1\"}", "cfg"),
                     RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "cfg: --eps: -1 is outside [0, inf)");
    ck_assert_int_eq(rb_params_get_int(params, "steps", &steps), RB_OK);
    ck_assert_int_eq(steps, 9);
    ck_assert_int_eq(rb_params_source(params, "eps"), RB_PARAM_DEFAULT);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("params");
    TCase *tc = tcase_create("params");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, defaults_are_parsed_and_typed);
    tcase_add_test(tc, values_are_set_and_checked);
    tcase_add_test(tc, bad_values_are_refused_with_one_clear_line);
    tcase_add_test(tc, unknown_names_get_the_closest_suggested);
    tcase_add_test(tc, required_options_are_enforced);
    tcase_add_test(tc, format_round_trips);
    tcase_add_test(tc, typed_reads_refuse_wrong_types);
    tcase_add_test(tc, command_lines_parse_across_sets);
    tcase_add_test(tc, command_line_errors);
    tcase_add_test(tc, declaration_tables_are_validated);
    tcase_add_test(tc, suggestions);
    tcase_add_test(tc, type_names);
    tcase_add_test(tc, clones_keep_values_and_sources);
    tcase_add_test(tc, given_values_go_to_json_and_back);
    tcase_add_test(tc, bad_json_parameters_are_refused_naming_the_place);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
