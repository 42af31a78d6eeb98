/* robusta/params.h: typed parameters, declared in tables and parsed from
 * "--name value" arguments.
 *
 * Plugins and the robusta command describe every option they take with a
 * table of rb_param_spec, ended by an entry whose name is NULL:
 *
 *     static const rb_param_spec pgd_params[] = {
 *         {"eps", RB_PARAM_FLOAT, "0.5", "[0, inf)", 0, "radius of the threat model"},
 *         {"steps", RB_PARAM_INT, "7", "[1, 100000]", 0, "ascent steps"},
 *         {"norm", RB_PARAM_CHOICE, "l2", "l2|linf", 0, "which ball"},
 *         {NULL}
 *     };
 *
 * An rb_params holds one value per declared parameter. Values arrive as text
 * (defaults, command lines, config files) and are parsed and checked against
 * the type and range once, when set, so a plugin that reads a value never has
 * to check it again. A name that is not declared is refused with the closest
 * declared name suggested ("unknown option --epss; did you mean --eps?").
 *
 * Text forms accepted:
 *   int         decimal, optional sign: "-3", "128"
 *   float       decimal or exponent form, or a fraction "8/255"; never NaN/Inf
 *   bool        true/false, yes/no, on/off, 1/0; on a command line "--name"
 *               alone means true and "--no-name" means false
 *   string      anything
 *   choice      one of the words in `range`, written "a|b|c"
 *   int/float lists  comma-separated: "0.485,0.456,0.406"; the range applies
 *               to each element
 * Ranges for numbers are intervals "[lo, hi]", "(lo, hi)", "[0, inf)" ...;
 * NULL means any finite value.
 */
#ifndef ROBUSTA_PARAMS_H
#define ROBUSTA_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <robusta/status.h>
#include <robusta/suggest.h> /* rb_suggest, declared here before */

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rb_param_type {
    RB_PARAM_INT = 1,
    RB_PARAM_FLOAT = 2,
    RB_PARAM_BOOL = 3,
    RB_PARAM_STRING = 4,
    RB_PARAM_CHOICE = 5,
    RB_PARAM_INT_LIST = 6,
    RB_PARAM_FLOAT_LIST = 7
} rb_param_type;

/* Flags for rb_param_spec.flags. */
#define RB_PARAM_REQUIRED 0x1u /* must be given; rb_params_check_required() enforces it */

typedef struct rb_param_spec {
    const char *name;          /* lower-case letters, digits and '-': "step-size" */
    rb_param_type type;
    const char *default_value; /* as a user would type it; NULL: no default (unset until given) */
    const char *range;         /* interval for numbers, "a|b" words for choices, NULL: any */
    unsigned flags;            /* RB_PARAM_REQUIRED ... */
    const char *help;          /* one line, no trailing period needed */
} rb_param_spec;

/* Where a parameter's current value came from. */
typedef enum rb_param_source {
    RB_PARAM_UNSET = 0,   /* no default and not given */
    RB_PARAM_DEFAULT = 1, /* the declared default */
    RB_PARAM_GIVEN = 2    /* set by rb_params_set / rb_params_parse_args */
} rb_param_source;

typedef struct rb_params rb_params;

/* Checks a table (names well formed and unique, known types, ranges that
 * parse, defaults that parse and lie in range) without creating anything.
 * On failure the message names the parameter and the fault. */
RB_API rb_status rb_param_specs_validate(const rb_param_spec *specs);

/* Creates a value set for `specs` (validated first) holding the defaults.
 * The table must outlive the set: it is referenced, not copied. */
RB_API rb_status rb_params_create(rb_params **out, const rb_param_spec *specs);
RB_API void rb_params_destroy(rb_params *params);

/* Parses `value` for parameter `name` and stores it, or leaves the old value
 * and fails with a message naming the option, the text and the rule broken. */
RB_API rb_status rb_params_set(rb_params *params, const char *name, const char *value);

/* Whether `name` is declared in this set. */
RB_API bool rb_params_declares(const rb_params *params, const char *name);
RB_API rb_param_source rb_params_source(const rb_params *params, const char *name);

/* Typed reads. They fail with RB_ERR_NOT_FOUND for an undeclared or unset
 * name and RB_ERR_INVALID_ARGUMENT for the wrong type. get_string serves
 * string and choice parameters. Pointers stay valid until the value is set
 * again or the set is destroyed. */
RB_API rb_status rb_params_get_int(const rb_params *params, const char *name, int64_t *out);
RB_API rb_status rb_params_get_float(const rb_params *params, const char *name, double *out);
RB_API rb_status rb_params_get_bool(const rb_params *params, const char *name, bool *out);
RB_API rb_status rb_params_get_string(const rb_params *params, const char *name, const char **out);
RB_API rb_status rb_params_get_int_list(const rb_params *params, const char *name,
                                        const int64_t **values, size_t *count);
RB_API rb_status rb_params_get_float_list(const rb_params *params, const char *name,
                                          const double **values, size_t *count);

/* Fails naming the first RB_PARAM_REQUIRED parameter that is unset. */
RB_API rb_status rb_params_check_required(const rb_params *params);

/* The current value as canonical text ("0.5", "true", "1,2,3"); "" if unset. */
RB_API rb_status rb_params_format(const rb_params *params, const char *name, char *buf,
                                  size_t size);

/* A copy of `from`: the same table (still referenced, not copied), every
 * value, and where each came from (given, default, unset), so that the
 * copy records and reads back exactly what the user gave. Values are
 * copied as stored, not through their text, so they are bit-identical. */
RB_API rb_status rb_params_clone(const rb_params *from, rb_params **out);

/* The given parameters (RB_PARAM_GIVEN) as a JSON object of their canonical
 * texts (rb_params_format), in table order: {"eps": "0.5", "norm": "linf"};
 * "{}" when none was given. *out is malloc'd (free it). This is how robusta
 * records a plugin's parameters (config.json's attack_options and
 * task_options, a checkpoint's arch.params and task.params): defaults are
 * left out, so they stay defaults when read back (a preset refuses an
 * explicit value that contradicts it). */
RB_API rb_status rb_params_to_json(const rb_params *params, char **out);

/* Reads rb_params_to_json's form back: sets each member of a JSON object of
 * strings with rb_params_set, so those values become given. The text must be
 * strict JSON (as a checkpoint header, robusta/checkpoint.h) holding one
 * object whose values are all strings: otherwise RB_ERR_CORRUPT, naming
 * `where` ("run/config.json: attack_options") and the member. A name the
 * table does not declare, or a value it refuses, fails with rb_params_set's
 * status and message after "WHERE: ". On failure the members before the
 * bad one stay set. */
RB_API rb_status rb_params_from_json(rb_params *params, const char *json, const char *where);

/* The table this set was created from. */
RB_API const rb_param_spec *rb_params_specs(const rb_params *params);

/* "int", "float", "bool", "string", "choice", "int list", "float list". */
RB_API const char *rb_param_type_str(rb_param_type type);

/* Parses command-line arguments into one or more sets (say, a command's own
 * options, then its attack plugin's). Each "--name value", "--name=value",
 * "--flag" or "--no-flag" goes to the first set, in the order given, that
 * declares the name, and to no other: order the sets so that a name two of
 * them declare reaches the one it means (the robusta command removes from
 * its own set the options a chosen plugin takes over).
 * Arguments that do not start with "--" are positional: they are moved, in
 * order, to the front of argv and counted in *positional_count. "--" ends the
 * options; everything after it is positional. An unknown name fails with the
 * closest declared name across all sets suggested. */
RB_API rb_status rb_params_parse_args(rb_params *const *sets, size_t set_count, int argc,
                                      char **argv, int *positional_count);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_PARAMS_H */
