/* Typed parameters: declaration tables, parsing, range checks and command
 * lines (robusta/params.h). Parsers here take text and return a value or a
 * one-line error, so they can be fuzzed on their own. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/params.h>

#include "sys/internal.h"

typedef struct interval {
    double lo, hi;
    bool lo_open, hi_open;
} interval;

typedef struct param_value {
    rb_param_source source;
    int64_t i;
    double f;
    bool b;
    char *text;   /* string and choice */
    void *list;   /* int64_t[] or double[] */
    size_t count; /* list length */
} param_value;

struct rb_params {
    const rb_param_spec *specs;
    size_t count;
    param_value *values;
};

const char *rb_param_type_str(rb_param_type type)
{
    switch (type) {
    case RB_PARAM_INT: return "int";
    case RB_PARAM_FLOAT: return "float";
    case RB_PARAM_BOOL: return "bool";
    case RB_PARAM_STRING: return "string";
    case RB_PARAM_CHOICE: return "choice";
    case RB_PARAM_INT_LIST: return "int list";
    case RB_PARAM_FLOAT_LIST: return "float list";
    }
    return "unknown";
}

static bool is_numeric(rb_param_type t)
{
    return t == RB_PARAM_INT || t == RB_PARAM_FLOAT || t == RB_PARAM_INT_LIST ||
           t == RB_PARAM_FLOAT_LIST;
}

/* ------------------------------------------------------------ numbers */

/* A decimal number, "inf"/"-inf" when allow_inf, or a fraction "a/b".
 * Returns 0 on success, or a static reason. */
static const char *parse_real(const char *text, bool allow_inf, double *out)
{
    char *end;
    double num, den;

    if (text[0] == '\0' || isspace((unsigned char)text[0]))
        return "is not a number";
    errno = 0;
    num = strtod(text, &end);
    if (end == text)
        return "is not a number";
    if (*end == '/') {
        const char *d = end + 1;
        if (*d == '\0' || isspace((unsigned char)*d) || *d == '+' || *d == '-')
            return "is not a number";
        den = strtod(d, &end);
        if (end == d || *end != '\0')
            return "is not a number";
        if (den == 0)
            return "divides by zero";
        num /= den;
    } else if (*end != '\0') {
        return "is not a number";
    }
    if (isnan(num))
        return "is not a finite number";
    if (isinf(num) && (!allow_inf || errno == ERANGE))
        return errno == ERANGE ? "is too large" : "is not a finite number";
    *out = num;
    return NULL;
}

static const char *parse_integer(const char *text, int64_t *out)
{
    char *end;
    long long v;
    if (text[0] == '\0' || isspace((unsigned char)text[0]))
        return "is not an integer";
    errno = 0;
    v = strtoll(text, &end, 10);
    if (end == text || *end != '\0')
        return "is not an integer";
    if (errno == ERANGE)
        return "is too large";
    *out = (int64_t)v;
    return NULL;
}

static const char *parse_boolean(const char *text, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(text, yes[i]) == 0) {
            *out = true;
            return NULL;
        }
        if (strcmp(text, no[i]) == 0) {
            *out = false;
            return NULL;
        }
    }
    return "is not true or false";
}

/* "[lo, hi]" with '(' / ')' for open ends; bounds may be -inf / inf. */
static bool parse_interval(const char *text, interval *out)
{
    char lo[64], hi[64];
    const char *comma, *close;
    size_t len;

    while (isspace((unsigned char)*text))
        text++;
    if (*text != '[' && *text != '(')
        return false;
    out->lo_open = *text == '(';
    comma = strchr(text, ',');
    if (comma == NULL)
        return false;
    len = strlen(text);
    while (len > 0 && isspace((unsigned char)text[len - 1]))
        len--;
    if (len == 0)
        return false;
    close = text + len - 1;
    if ((*close != ']' && *close != ')') || close < comma)
        return false;
    out->hi_open = *close == ')';
    /* Copy the two bounds without the surrounding spaces. */
    {
        const char *a = text + 1, *b = comma;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if ((size_t)(b - a) >= sizeof lo)
            return false;
        memcpy(lo, a, (size_t)(b - a));
        lo[b - a] = '\0';
        a = comma + 1;
        b = close;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if ((size_t)(b - a) >= sizeof hi)
            return false;
        memcpy(hi, a, (size_t)(b - a));
        hi[b - a] = '\0';
    }
    if (parse_real(lo, true, &out->lo) != NULL || parse_real(hi, true, &out->hi) != NULL)
        return false;
    return out->lo <= out->hi;
}

static bool in_interval(const interval *r, double v)
{
    if (r->lo_open ? !(v > r->lo) : !(v >= r->lo))
        return false;
    if (r->hi_open ? !(v < r->hi) : !(v <= r->hi))
        return false;
    return true;
}

/* Shortest decimal text that reads back as exactly v. */
static void format_real(double v, char *buf, size_t size)
{
    for (int precision = 6; precision <= 17; precision++) {
        snprintf(buf, size, "%.*g", precision, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* ------------------------------------------------------------ choices */

/* Whether `word` is one of the '|'-separated words of `choices`. */
static bool choice_contains(const char *choices, const char *word)
{
    size_t n = strlen(word);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0)
            return true;
        if (bar == NULL)
            break;
        p = bar + 1;
    }
    return false;
}

/* Closest choice word to `word`, copied into buf; false when none is close. */
static bool choice_suggest(const char *choices, const char *word, char *buf, size_t size)
{
    char words[1024];
    const char *cand[64];
    size_t n = 0;
    const char *best;
    char *save = NULL;

    snprintf(words, sizeof words, "%s", choices);
    for (char *w = strtok_r(words, "|", &save); w && n < 64; w = strtok_r(NULL, "|", &save))
        cand[n++] = w;
    best = rb_suggest(word, cand, n);
    if (best == NULL)
        return false;
    snprintf(buf, size, "%s", best);
    return true;
}

static bool valid_choices(const char *choices)
{
    size_t len;
    if (choices == NULL || choices[0] == '\0' || choices[0] == '|')
        return false;
    len = strlen(choices);
    if (choices[len - 1] == '|' || strstr(choices, "||") != NULL)
        return false;
    return true;
}

/* ------------------------------------------------------------ tables */

static bool valid_name(const char *name)
{
    if (name == NULL || !(islower((unsigned char)name[0]) || isdigit((unsigned char)name[0])))
        return false;
    for (const char *c = name; *c; c++)
        if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '-'))
            return false;
    return strlen(name) <= 64;
}

static size_t spec_count(const rb_param_spec *specs)
{
    size_t n = 0;
    if (specs != NULL)
        while (specs[n].name != NULL)
            n++;
    return n;
}

static void value_clear(param_value *v)
{
    free(v->text);
    free(v->list);
    memset(v, 0, sizeof *v);
}

/* Parses `text` for `spec` into `v` (which must be clear). On failure sets
 * the error, naming the option, and leaves v clear. */
static rb_status parse_value(const rb_param_spec *spec, const char *text, param_value *v)
{
    const char *why = NULL;
    interval range;
    bool has_range = is_numeric(spec->type) && spec->range != NULL;

    if (has_range && !parse_interval(spec->range, &range))
        return rb_error_set(RB_ERR_INTERNAL, "--%s: declared range '%s' does not parse",
                            spec->name, spec->range);
    switch (spec->type) {
    case RB_PARAM_INT:
        why = parse_integer(text, &v->i);
        if (why == NULL && has_range && !in_interval(&range, (double)v->i))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "--%s: %s is outside %s", spec->name,
                                text, spec->range);
        break;
    case RB_PARAM_FLOAT:
        why = parse_real(text, false, &v->f);
        if (why == NULL && has_range && !in_interval(&range, v->f))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "--%s: %s is outside %s", spec->name,
                                text, spec->range);
        if (why != NULL && strcmp(why, "is not a number") == 0)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "--%s: '%s' is not a number (write e.g. 0.5, 1e-3 or 8/255)",
                                spec->name, text);
        break;
    case RB_PARAM_BOOL:
        why = parse_boolean(text, &v->b);
        break;
    case RB_PARAM_CHOICE:
        if (!choice_contains(spec->range, text)) {
            char near[128];
            if (choice_suggest(spec->range, text, near, sizeof near))
                return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                    "--%s: '%s' is not one of %s; did you mean %s?", spec->name,
                                    text, spec->range, near);
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "--%s: '%s' is not one of %s",
                                spec->name, text, spec->range);
        }
        /* fall through */
    case RB_PARAM_STRING:
        v->text = rb_strdup(text);
        if (v->text == NULL)
            return RB_ERR_OUT_OF_MEMORY;
        break;
    case RB_PARAM_INT_LIST:
    case RB_PARAM_FLOAT_LIST: {
        bool ints = spec->type == RB_PARAM_INT_LIST;
        size_t n = 1, k = 0;
        char element[128];
        const char *p = text;
        for (const char *c = text; *c; c++)
            n += *c == ',';
        if (text[0] == '\0')
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "--%s: empty list", spec->name);
        v->list = calloc(n, ints ? sizeof(int64_t) : sizeof(double));
        if (v->list == NULL)
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "--%s: out of memory", spec->name);
        for (k = 0; k < n; k++) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            double as_real;
            while (len > 0 && isspace((unsigned char)*p)) {
                p++;
                len--;
            }
            while (len > 0 && isspace((unsigned char)p[len - 1]))
                len--;
            if (len >= sizeof element)
                len = sizeof element - 1;
            memcpy(element, p, len);
            element[len] = '\0';
            if (ints) {
                why = parse_integer(element, &((int64_t *)v->list)[k]);
                as_real = (double)((int64_t *)v->list)[k];
            } else {
                why = parse_real(element, false, &((double *)v->list)[k]);
                as_real = ((double *)v->list)[k];
            }
            if (why != NULL) {
                value_clear(v);
                return rb_error_set(RB_ERR_INVALID_ARGUMENT, "--%s: element %zu '%s' %s",
                                    spec->name, k + 1, element, why);
            }
            if (has_range && !in_interval(&range, as_real)) {
                value_clear(v);
                return rb_error_set(RB_ERR_INVALID_ARGUMENT, "--%s: element %zu (%s) is outside %s",
                                    spec->name, k + 1, element, spec->range);
            }
            p = comma ? comma + 1 : p + len;
        }
        v->count = n;
        break;
    }
    default:
        return rb_error_set(RB_ERR_INTERNAL, "--%s: unknown parameter type %d", spec->name,
                            (int)spec->type);
    }
    if (why != NULL) {
        value_clear(v);
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "--%s: '%s' %s", spec->name, text, why);
    }
    return RB_OK;
}

rb_status rb_param_specs_validate(const rb_param_spec *specs)
{
    size_t n = spec_count(specs);
    for (size_t i = 0; i < n; i++) {
        const rb_param_spec *s = &specs[i];
        interval r;
        if (!valid_name(s->name))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "parameter %zu: name '%s' is not lower-case letters, digits and '-'",
                                i + 1, s->name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(specs[j].name, s->name) == 0)
                return rb_error_set(RB_ERR_INVALID_ARGUMENT, "parameter '%s' is declared twice",
                                    s->name);
        if (s->type < RB_PARAM_INT || s->type > RB_PARAM_FLOAT_LIST)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "parameter '%s': unknown type %d",
                                s->name, (int)s->type);
        if (s->help == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "parameter '%s': no help text", s->name);
        if (s->type == RB_PARAM_CHOICE && !valid_choices(s->range))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "parameter '%s': a choice needs its words as \"a|b|c\"", s->name);
        if (is_numeric(s->type) && s->range != NULL && !parse_interval(s->range, &r))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "parameter '%s': range '%s' is not an interval like [0, 1] or (0, inf)",
                                s->name, s->range);
        if ((s->type == RB_PARAM_BOOL || s->type == RB_PARAM_STRING) && s->range != NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "parameter '%s': a %s parameter takes no range", s->name,
                                rb_param_type_str(s->type));
        if (s->default_value != NULL) {
            param_value v = {0};
            if (parse_value(s, s->default_value, &v) != RB_OK)
                return rb_error_prefix("parameter '%s': bad default: ", s->name);
            value_clear(&v);
        }
    }
    return RB_OK;
}

/* ------------------------------------------------------------ value sets */

static long find_index(const rb_params *p, const char *name)
{
    for (size_t i = 0; i < p->count; i++)
        if (strcmp(p->specs[i].name, name) == 0)
            return (long)i;
    return -1;
}

rb_status rb_params_create(rb_params **out, const rb_param_spec *specs)
{
    rb_params *p;
    rb_status s;

    *out = NULL;
    s = rb_param_specs_validate(specs);
    if (s != RB_OK)
        return s;
    p = calloc(1, sizeof *p);
    if (p == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "parameters: out of memory");
    p->specs = specs;
    p->count = spec_count(specs);
    p->values = calloc(p->count ? p->count : 1, sizeof *p->values);
    if (p->values == NULL) {
        free(p);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "parameters: out of memory");
    }
    for (size_t i = 0; i < p->count; i++) {
        if (specs[i].default_value == NULL)
            continue;
        s = parse_value(&specs[i], specs[i].default_value, &p->values[i]);
        if (s != RB_OK) {
            rb_params_destroy(p);
            return s;
        }
        p->values[i].source = RB_PARAM_DEFAULT;
    }
    *out = p;
    return RB_OK;
}

void rb_params_destroy(rb_params *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->count; i++)
        value_clear(&p->values[i]);
    free(p->values);
    free(p);
}

rb_status rb_params_clone(const rb_params *from, rb_params **out)
{
    rb_params *p;
    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_params_clone: out is NULL");
    *out = NULL;
    if (from == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_params_clone: no parameters to copy");
    p = calloc(1, sizeof *p);
    if (p == NULL || (p->values = calloc(from->count ? from->count : 1, sizeof *p->values)) == NULL) {
        free(p);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "parameters: out of memory");
    }
    p->specs = from->specs;
    p->count = from->count;
    for (size_t i = 0; i < from->count; i++) {
        const param_value *v = &from->values[i];
        size_t each = from->specs[i].type == RB_PARAM_INT_LIST ? sizeof(int64_t) : sizeof(double);
        p->values[i] = *v;
        p->values[i].text = NULL;
        p->values[i].list = NULL;
        if ((v->text != NULL && (p->values[i].text = strdup(v->text)) == NULL) ||
            (v->list != NULL && (p->values[i].list = malloc(v->count ? v->count * each : 1)) == NULL)) {
            rb_params_destroy(p);
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "parameters: out of memory");
        }
        if (v->list != NULL && v->count > 0)
            memcpy(p->values[i].list, v->list, v->count * each);
    }
    *out = p;
    return RB_OK;
}

/* "unknown option --x; did you mean --y?" over the names of several sets. */
static rb_status unknown_option(rb_params *const *sets, size_t set_count, const char *name)
{
    const char *cand[256];
    size_t n = 0;
    const char *best;
    for (size_t s = 0; s < set_count; s++)
        for (size_t i = 0; sets[s] && i < sets[s]->count && n < 256; i++)
            cand[n++] = sets[s]->specs[i].name;
    best = rb_suggest(name, cand, n);
    if (best != NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "unknown option --%s; did you mean --%s?",
                            name, best);
    return rb_error_set(RB_ERR_INVALID_ARGUMENT, "unknown option --%s", name);
}

rb_status rb_params_set(rb_params *p, const char *name, const char *value)
{
    long i = find_index(p, name);
    param_value v = {0};
    rb_status s;

    if (i < 0)
        return unknown_option(&p, 1, name);
    if (value == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "--%s needs a value", name);
    s = parse_value(&p->specs[i], value, &v);
    if (s != RB_OK)
        return s;
    value_clear(&p->values[i]);
    p->values[i] = v;
    p->values[i].source = RB_PARAM_GIVEN;
    return RB_OK;
}

bool rb_params_declares(const rb_params *p, const char *name)
{
    return find_index(p, name) >= 0;
}

rb_param_source rb_params_source(const rb_params *p, const char *name)
{
    long i = find_index(p, name);
    return i < 0 ? RB_PARAM_UNSET : p->values[i].source;
}

const rb_param_spec *rb_params_specs(const rb_params *p)
{
    return p->specs;
}

/* The value of `name` if declared, set and of one of the two types. */
static rb_status lookup(const rb_params *p, const char *name, rb_param_type t1, rb_param_type t2,
                        const param_value **out)
{
    long i = find_index(p, name);
    if (i < 0)
        return rb_error_set(RB_ERR_NOT_FOUND, "parameter '%s' is not declared", name);
    if (p->specs[i].type != t1 && p->specs[i].type != t2)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "parameter '%s' is of type %s, not %s", name,
                            rb_param_type_str(p->specs[i].type), rb_param_type_str(t1));
    if (p->values[i].source == RB_PARAM_UNSET)
        return rb_error_set(RB_ERR_NOT_FOUND, "--%s was not given", name);
    *out = &p->values[i];
    return RB_OK;
}

rb_status rb_params_get_int(const rb_params *p, const char *name, int64_t *out)
{
    const param_value *v;
    rb_status s = lookup(p, name, RB_PARAM_INT, RB_PARAM_INT, &v);
    if (s == RB_OK)
        *out = v->i;
    return s;
}

rb_status rb_params_get_float(const rb_params *p, const char *name, double *out)
{
    const param_value *v;
    rb_status s = lookup(p, name, RB_PARAM_FLOAT, RB_PARAM_FLOAT, &v);
    if (s == RB_OK)
        *out = v->f;
    return s;
}

rb_status rb_params_get_bool(const rb_params *p, const char *name, bool *out)
{
    const param_value *v;
    rb_status s = lookup(p, name, RB_PARAM_BOOL, RB_PARAM_BOOL, &v);
    if (s == RB_OK)
        *out = v->b;
    return s;
}

rb_status rb_params_get_string(const rb_params *p, const char *name, const char **out)
{
    const param_value *v;
    rb_status s = lookup(p, name, RB_PARAM_STRING, RB_PARAM_CHOICE, &v);
    if (s == RB_OK)
        *out = v->text;
    return s;
}

rb_status rb_params_get_int_list(const rb_params *p, const char *name, const int64_t **values,
                                 size_t *count)
{
    const param_value *v;
    rb_status s = lookup(p, name, RB_PARAM_INT_LIST, RB_PARAM_INT_LIST, &v);
    if (s == RB_OK) {
        *values = v->list;
        *count = v->count;
    }
    return s;
}

rb_status rb_params_get_float_list(const rb_params *p, const char *name, const double **values,
                                   size_t *count)
{
    const param_value *v;
    rb_status s = lookup(p, name, RB_PARAM_FLOAT_LIST, RB_PARAM_FLOAT_LIST, &v);
    if (s == RB_OK) {
        *values = v->list;
        *count = v->count;
    }
    return s;
}

rb_status rb_params_check_required(const rb_params *p)
{
    for (size_t i = 0; i < p->count; i++)
        if ((p->specs[i].flags & RB_PARAM_REQUIRED) && p->values[i].source == RB_PARAM_UNSET)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "missing required option --%s (%s)",
                                p->specs[i].name, p->specs[i].help);
    return RB_OK;
}

rb_status rb_params_format(const rb_params *p, const char *name, char *buf, size_t size)
{
    long i = find_index(p, name);
    const param_value *v;
    size_t used = 0;

    if (size == 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_params_format: empty buffer");
    buf[0] = '\0';
    if (i < 0)
        return rb_error_set(RB_ERR_NOT_FOUND, "parameter '%s' is not declared", name);
    v = &p->values[i];
    if (v->source == RB_PARAM_UNSET)
        return RB_OK;
    switch (p->specs[i].type) {
    case RB_PARAM_INT: snprintf(buf, size, "%lld", (long long)v->i); break;
    case RB_PARAM_FLOAT: format_real(v->f, buf, size); break;
    case RB_PARAM_BOOL: snprintf(buf, size, "%s", v->b ? "true" : "false"); break;
    case RB_PARAM_STRING:
    case RB_PARAM_CHOICE: snprintf(buf, size, "%s", v->text); break;
    case RB_PARAM_INT_LIST:
    case RB_PARAM_FLOAT_LIST:
        for (size_t k = 0; k < v->count && used < size; k++) {
            char one[40];
            if (p->specs[i].type == RB_PARAM_INT_LIST)
                snprintf(one, sizeof one, "%lld", (long long)((int64_t *)v->list)[k]);
            else
                format_real(((double *)v->list)[k], one, sizeof one);
            used += (size_t)snprintf(buf + used, size - used, "%s%s", k ? "," : "", one);
        }
        break;
    }
    return RB_OK;
}

/* ------------------------------------------------------------ command lines */

rb_status rb_params_parse_args(rb_params *const *sets, size_t set_count, int argc, char **argv,
                               int *positional_count)
{
    int kept = 0;
    bool options_done = false;

    for (int i = 0; i < argc; i++) {
        char *arg = argv[i];
        char name[128];
        const char *value = NULL, *eq;
        rb_params *target = NULL;
        long index = -1;
        size_t len;
        rb_status s;

        if (options_done || strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (!options_done && strcmp(arg, "--") == 0) {
                options_done = true;
                continue;
            }
            argv[kept++] = arg;
            continue;
        }
        eq = strchr(arg + 2, '=');
        len = eq ? (size_t)(eq - (arg + 2)) : strlen(arg + 2);
        if (len >= sizeof name)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "option %.40s...: name too long", arg);
        memcpy(name, arg + 2, len);
        name[len] = '\0';
        if (eq)
            value = eq + 1;

        for (size_t k = 0; k < set_count && target == NULL; k++)
            if (sets[k] != NULL && (index = find_index(sets[k], name)) >= 0)
                target = sets[k];
        /* "--no-flag" for a bool "flag". */
        if (target == NULL && strncmp(name, "no-", 3) == 0) {
            for (size_t k = 0; k < set_count && target == NULL; k++)
                if (sets[k] != NULL && (index = find_index(sets[k], name + 3)) >= 0 &&
                    sets[k]->specs[index].type == RB_PARAM_BOOL)
                    target = sets[k];
            if (target != NULL) {
                if (value != NULL)
                    return rb_error_set(RB_ERR_INVALID_ARGUMENT, "--%s takes no value", name);
                memmove(name, name + 3, strlen(name + 3) + 1);
                value = "false";
            }
        }
        if (target == NULL)
            return unknown_option(sets, set_count, name);
        if (value == NULL) {
            if (target->specs[index].type == RB_PARAM_BOOL) {
                value = "true";
            } else if (i + 1 >= argc) {
                return rb_error_set(RB_ERR_INVALID_ARGUMENT, "--%s needs a value (%s)", name,
                                    target->specs[index].help);
            } else if (strncmp(argv[i + 1], "--", 2) == 0 && argv[i + 1][2] != '\0') {
                return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                    "--%s needs a value, but the next argument is the option %s",
                                    name, argv[i + 1]);
            } else {
                value = argv[++i];
            }
        }
        /* The first set that declares the name takes the value: callers
         * order the sets so that each name reaches the parameter it
         * documents (the robusta command: see its option namespaces). */
        if ((s = rb_params_set(target, name, value)) != RB_OK)
            return s;
    }
    if (positional_count != NULL)
        *positional_count = kept;
    return RB_OK;
}
