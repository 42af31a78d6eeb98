/* Grid files: INI text -> rb_grid_spec (see robusta/grid.h for the format).
 *
 * Two passes over the text. The first is ours: it refuses what libinih
 * would mishandle silently (NUL bytes, lines longer than its buffer, which
 * it splits or truncates; indented lines, which it reads as continuations of
 * the previous value) and reads every section header, so that headers are
 * checked with their own line numbers even when a section has no keys
 * (Debian's inih does not call the handler on new sections). The second is
 * inih's, for key = value lines; Debian builds it without line numbers in
 * the handler, so it reads through ini_parse_stream with a copy of
 * ini_parse_string's reader that counts lines.
 *
 * Only the first error (by line) is reported: later ones are often echoes
 * of it. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include <robusta/grid.h>

#include "experiment/grid_internal.h"
#include "sys/internal.h"

/* inih's line buffer is 200 bytes including the newline and the NUL. */
#define MAX_LINE_CHARS 198
#define MAX_LABEL 63           /* fits rb_grid_result's label fields */
#define MAX_EPS_TEXT 31        /* fits rb_grid_result.eps_text */
#define GRID_FILE_LIMIT ((size_t)1 << 20)

typedef enum { SEC_GRID, SEC_ARCH, SEC_SOURCE, SEC_TARGET, SEC_TRANSFER } sec_kind;

typedef struct seen_key {
    char *name;
    int line;
} seen_key;

/* One section header found by the first pass. */
typedef struct section {
    sec_kind kind;
    int line;
    size_t index;              /* into spec->archs / spec->targets */
    char display[MAX_LABEL + 16]; /* "[arch r18]", for messages */
    seen_key *keys;
    size_t n_keys;
} section;

typedef struct parser {
    const char *what;
    rb_grid_spec *spec;
    section *sections;
    size_t n_sections, cur;
    /* the counting reader */
    const char *pos;
    size_t left;
    int lineno;
    /* the first error: line 0 is a whole-file one, set only when none is */
    rb_status err_status;
    int err_line;
    char err[1024];
} parser;

static int fail_at(parser *p, rb_status status, int line, const char *fmt, ...) RB_PRINTF(4, 5);

/* Records an error at `line` unless one at an earlier line is kept; returns
 * 0, inih's "handler failed". */
static int fail_at(parser *p, rb_status status, int line, const char *fmt, ...)
{
    va_list ap;
    if (p->err_status != RB_OK && (line == 0 || p->err_line == 0 || p->err_line <= line))
        return 0;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    p->err_status = status;
    p->err_line = line;
    return 0;
}

#define FAIL(p, ...) fail_at((p), RB_ERR_INVALID_ARGUMENT, (p)->lineno, __VA_ARGS__)
#define OOM(p) fail_at((p), RB_ERR_OUT_OF_MEMORY, (p)->lineno, "out of memory")

/* ASCII only, whatever the locale: labels end up in folder names. */
static int is_label_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
}

static int is_label(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!is_label_char((unsigned char)*s))
            return 0;
    return 1;
}

/* ------------------------------------------------------------ values */

static char *trim(char *s)
{
    char *end;
    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

static int set_string(parser *p, char **field, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL)
        return OOM(p);
    free(*field);
    *field = copy;
    return 1;
}

/* A string that must not be empty. */
static int set_nonempty(parser *p, const section *sec, const char *key, char **field, const char *value)
{
    if (value[0] == '\0')
        return FAIL(p, "'%s' in %s is empty", key, sec->display);
    return set_string(p, field, value);
}

/* A string where empty means "the default" (NULL). */
static int set_optional(parser *p, char **field, const char *value)
{
    if (value[0] == '\0') {
        free(*field);
        *field = NULL;
        return 1;
    }
    return set_string(p, field, value);
}

static int set_int(parser *p, const section *sec, const char *key, const char *value, int64_t min, int64_t max,
                   int64_t *out)
{
    char *end;
    long long v;
    errno = 0;
    v = strtoll(value, &end, 10);
    if (value[0] == '\0' || isspace((unsigned char)value[0]) || *end != '\0' || errno == ERANGE || v < min ||
        v > max)
        return FAIL(p, "'%s' in %s is '%s': expected an integer in [%lld, %lld]", key, sec->display, value,
                    (long long)min, (long long)max);
    *out = v;
    return 1;
}

typedef enum { ABOVE, AT_LEAST, UNIT } range; /* > 0, >= 0, [0, 1) */

static int set_double(parser *p, const section *sec, const char *key, const char *value, range r, double *out)
{
    static const char *const expect[] = {"a number > 0", "a number >= 0", "a number in [0, 1)"};
    char *end;
    double v;
    int ok;
    errno = 0;
    v = strtod(value, &end);
    ok = value[0] != '\0' && !isspace((unsigned char)value[0]) && *end == '\0' && isfinite(v) &&
         grid_is_decimal(value, strlen(value));
    if (ok)
        ok = r == ABOVE ? v > 0 : r == AT_LEAST ? v >= 0 : v >= 0 && v < 1;
    if (!ok)
        return FAIL(p, "'%s' in %s is '%s': expected %s", key, sec->display, value, expect[r]);
    *out = v;
    return 1;
}

static int set_bool(parser *p, const section *sec, const char *key, const char *value, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(value, yes[i]) == 0) {
            *out = true;
            return 1;
        }
        if (strcmp(value, no[i]) == 0) {
            *out = false;
            return 1;
        }
    }
    return FAIL(p, "'%s' in %s is '%s': expected true, false, yes, no, on, off, 1 or 0", key, sec->display,
                value);
}

/* Splits a comma-separated list in place into trimmed items; an empty item
 * (",," or a comma at an end) or an empty list is refused. Returns the
 * count, or 0 after recording an error. */
static size_t split_list(parser *p, const char *list_name, char *copy, char ***items)
{
    size_t n = 1, i = 0;
    char *s = copy, *comma;
    for (const char *c = copy; *c; c++)
        n += *c == ',';
    if (trim(copy)[0] == '\0') {
        FAIL(p, "%s is empty: give at least one item", list_name);
        return 0;
    }
    *items = malloc(n * sizeof **items);
    if (*items == NULL) {
        OOM(p);
        return 0;
    }
    for (;;) {
        comma = strchr(s, ',');
        if (comma != NULL)
            *comma = '\0';
        (*items)[i] = trim(s);
        if ((*items)[i][0] == '\0') {
            FAIL(p, "%s: empty item (two commas in a row, or a comma at an end)", list_name);
            free(*items);
            *items = NULL;
            return 0;
        }
        i++;
        if (comma == NULL)
            break;
        s = comma + 1;
    }
    return n;
}

static int set_eps_list(parser *p, const char *value)
{
    rb_grid_source *src = &p->spec->source;
    char *copy = strdup(value), **items = NULL;
    size_t n;
    int ok = 1;
    if (copy == NULL)
        return OOM(p);
    n = split_list(p, "eps list", copy, &items);
    if (n == 0) {
        free(copy);
        return 0;
    }
    src->eps = calloc(n, sizeof *src->eps);
    src->eps_text = calloc(n, sizeof *src->eps_text);
    if (src->eps == NULL || src->eps_text == NULL)
        ok = OOM(p);
    for (size_t i = 0; ok && i < n; i++) {
        char text[MAX_EPS_TEXT + 1];
        size_t len = 0;
        double v;
        if (rb_grid_parse_eps(items[i], &v) != RB_OK) {
            ok = FAIL(p, "eps list: %s", rb_last_error());
            break;
        }
        /* Without spaces: "8 / 255" is labelled "8/255". */
        for (const char *c = items[i]; *c; c++) {
            if (*c == ' ' || *c == '\t')
                continue;
            if (len == MAX_EPS_TEXT) {
                ok = FAIL(p, "eps list: '%s' is longer than %d characters", items[i], MAX_EPS_TEXT);
                break;
            }
            text[len++] = *c;
        }
        text[len] = '\0';
        for (size_t j = 0; ok && j < i; j++)
            if (src->eps[j] == v)
                ok = strcmp(src->eps_text[j], text) == 0
                         ? FAIL(p, "eps list: '%s' given twice", text)
                         : FAIL(p, "eps list: '%s' given twice (it equals '%s')", text, src->eps_text[j]);
        if (!ok)
            break;
        src->eps[i] = v;
        if ((src->eps_text[i] = strdup(text)) == NULL)
            ok = OOM(p);
        src->n_eps = i + 1;
    }
    free(items);
    free(copy);
    return ok;
}

static int set_seeds(parser *p, const section *sec, const char *value, uint64_t **seeds, size_t *n_seeds)
{
    char *copy = strdup(value), **items = NULL, name[MAX_LABEL + 32];
    uint64_t *out = NULL;
    size_t n;
    int ok = 1;
    if (copy == NULL)
        return OOM(p);
    snprintf(name, sizeof name, "seeds list in %s", sec->display);
    n = split_list(p, name, copy, &items);
    if (n == 0) {
        free(copy);
        return 0;
    }
    if ((out = malloc(n * sizeof *out)) == NULL)
        ok = OOM(p);
    for (size_t i = 0; ok && i < n; i++) {
        char *end;
        unsigned long long v;
        errno = 0;
        v = strtoull(items[i], &end, 10);
        /* strtoull would take "-1" as 2^64 - 1 */
        if (!isdigit((unsigned char)items[i][0]) || *end != '\0' || errno == ERANGE) {
            ok = FAIL(p, "seeds list in %s: '%s' is not an unsigned integer", sec->display, items[i]);
            break;
        }
        for (size_t j = 0; ok && j < i; j++)
            if (out[j] == v)
                ok = FAIL(p, "seeds list in %s: '%s' given twice", sec->display, items[i]);
        if (ok)
            out[i] = v;
    }
    if (ok) {
        free(*seeds);
        *seeds = out;
        *n_seeds = n;
    } else {
        free(out);
    }
    free(items);
    free(copy);
    return ok;
}

static int set_modes(parser *p, const char *value)
{
    rb_grid_transfer *t = &p->spec->transfer;
    char *copy = strdup(value), **items = NULL;
    bool fixed = false, full = false;
    size_t n;
    int ok = 1;
    if (copy == NULL)
        return OOM(p);
    n = split_list(p, "modes list", copy, &items);
    for (size_t i = 0; ok && i < n; i++) {
        bool *flag = strcmp(items[i], "fixed") == 0 ? &fixed : strcmp(items[i], "full") == 0 ? &full : NULL;
        if (flag == NULL)
            ok = FAIL(p, "modes list: '%s' is not fixed or full", items[i]);
        else if (*flag)
            ok = FAIL(p, "modes list: '%s' given twice", items[i]);
        else
            *flag = true;
    }
    if (n > 0 && ok) {
        t->mode_fixed = fixed;
        t->mode_full = full;
    }
    free(items);
    free(copy);
    return n > 0 && ok;
}

/* ------------------------------------------------------------ sections */

static int unknown_key(parser *p, const section *sec, const char *key)
{
    return FAIL(p, "unknown key '%s' in %s", key, sec->display);
}

static int set_grid(parser *p, const section *sec, const char *key, const char *value)
{
    rb_grid_spec *g = p->spec;
    int64_t v;
    if (strcmp(key, "name") == 0) {
        if (!is_label(value))
            return FAIL(p, "'name' in [grid] is '%s': a name may only hold letters, digits, '_', '.' and '-'",
                        value);
        return set_string(p, &g->name, value);
    }
    if (strcmp(key, "threads") == 0) {
        if (!set_int(p, sec, key, value, 0, 4096, &v))
            return 0;
        g->threads = (int)v;
        return 1;
    }
    if (strcmp(key, "precision") == 0) {
        if (rb_precision_parse(value, &g->precision) != RB_OK)
            return FAIL(p, "'precision' in [grid] is '%s': use f32, bf16 or auto", value);
        return 1;
    }
    if (strcmp(key, "tune") == 0) {
        if (rb_tune_mode_parse(value, &g->tune) != RB_OK)
            return FAIL(p, "'tune' in [grid] is '%s': use off, cached or full", value);
        return 1;
    }
    if (strcmp(key, "conv-algorithm") == 0) {
        if (rb_conv_algorithm_parse(value, &g->conv_algorithm) != RB_OK)
            return FAIL(p, "'conv-algorithm' in [grid] is '%s': use winograd or direct", value);
        return 1;
    }
    if (strcmp(key, "cache") == 0)
        return set_nonempty(p, sec, key, &g->cache, value);
    return unknown_key(p, sec, key);
}

/* A plugin option, kept as written with its line (checked by the runner). */
static int add_option(parser *p, rb_grid_option **options, size_t *n_options, const char *key, const char *value)
{
    rb_grid_option *o = realloc(*options, (*n_options + 1) * sizeof *o);
    if (o == NULL)
        return OOM(p);
    *options = o;
    o = &o[*n_options];
    o->key = strdup(key);
    o->value = strdup(value);
    o->line = p->lineno;
    (*n_options)++;
    if (o->key == NULL || o->value == NULL)
        return OOM(p);
    return 1;
}

static int set_arch(parser *p, const section *sec, const char *key, const char *value)
{
    rb_grid_arch *a = &p->spec->archs[sec->index];
    if (strcmp(key, "arch") == 0)
        return set_nonempty(p, sec, key, &a->arch, value);
    return add_option(p, &a->options, &a->n_options, key, value);
}

/* `transform = none | paper` of [source] or a [target]. */
static int set_transform(parser *p, const section *sec, const char *value, rb_transform *out)
{
    if (rb_transform_parse(value, out) != RB_OK)
        return FAIL(p, "'transform' in %s is '%s': use none or paper", sec->display, value);
    return 1;
}

static int set_source(parser *p, const section *sec, const char *key, const char *value)
{
    rb_grid_source *s = &p->spec->source;
    if (strcmp(key, "data") == 0)
        return set_nonempty(p, sec, key, &s->data, value);
    if (strcmp(key, "classes") == 0)
        return set_optional(p, &s->classes, value);
    if (strcmp(key, "per-class") == 0)
        return set_int(p, sec, key, value, 0, INT32_MAX, &s->per_class);
    if (strcmp(key, "image-size") == 0)
        return set_int(p, sec, key, value, 0, 65536, &s->image_size);
    if (strcmp(key, "epochs") == 0)
        return set_int(p, sec, key, value, 1, 16777215, &s->epochs);
    if (strcmp(key, "batch-size") == 0)
        return set_int(p, sec, key, value, 1, 1 << 20, &s->batch_size);
    if (strcmp(key, "lr") == 0)
        return set_double(p, sec, key, value, ABOVE, &s->lr);
    if (strcmp(key, "momentum") == 0)
        return set_double(p, sec, key, value, UNIT, &s->momentum);
    if (strcmp(key, "weight-decay") == 0)
        return set_double(p, sec, key, value, AT_LEAST, &s->weight_decay);
    if (strcmp(key, "schedule") == 0)
        return set_nonempty(p, sec, key, &s->schedule, value);
    if (strcmp(key, "augment") == 0)
        return set_bool(p, sec, key, value, &s->augment);
    if (strcmp(key, "transform") == 0)
        return set_transform(p, sec, value, &s->transform);
    if (strcmp(key, "attack") == 0)
        return set_nonempty(p, sec, key, &s->attack, value);
    if (strcmp(key, "eps") == 0)
        return set_eps_list(p, value);
    if (strcmp(key, "steps") == 0)
        return set_int(p, sec, key, value, 1, 100000, &s->steps);
    if (strcmp(key, "step-size-factor") == 0)
        return set_double(p, sec, key, value, ABOVE, &s->step_size_factor);
    if (strcmp(key, "random-start") == 0)
        return set_bool(p, sec, key, value, &s->random_start);
    if (strcmp(key, "seeds") == 0)
        return set_seeds(p, sec, value, &s->seeds, &s->n_seeds);
    if (strcmp(key, "eval-attack-steps") == 0)
        return set_int(p, sec, key, value, 0, 100000, &s->eval_attack_steps);
    if (strcmp(key, "eval-attack-per-class") == 0)
        return set_int(p, sec, key, value, 0, INT64_C(1000000000), &s->eval_attack_per_class);
    return unknown_key(p, sec, key);
}

static int set_target(parser *p, const section *sec, const char *key, const char *value)
{
    rb_grid_target *t = &p->spec->targets[sec->index];
    if (strcmp(key, "data") == 0)
        return set_nonempty(p, sec, key, &t->data, value);
    if (strcmp(key, "classes") == 0)
        return set_optional(p, &t->classes, value);
    if (strcmp(key, "per-class") == 0)
        return set_int(p, sec, key, value, 0, INT32_MAX, &t->per_class);
    if (strcmp(key, "image-size") == 0)
        return set_int(p, sec, key, value, 0, 65536, &t->image_size);
    if (strcmp(key, "task") == 0) {
        t->task_line = p->lineno;
        return set_nonempty(p, sec, key, &t->task, value);
    }
    /* the target's own training settings, in [transfer]'s ranges */
    if (strcmp(key, "epochs") == 0)
        return set_int(p, sec, key, value, 1, 16777215, &t->epochs);
    if (strcmp(key, "batch-size") == 0)
        return set_int(p, sec, key, value, 1, 1 << 20, &t->batch_size);
    if (strcmp(key, "lr-fixed") == 0)
        return set_double(p, sec, key, value, ABOVE, &t->lr_fixed);
    if (strcmp(key, "lr-full") == 0)
        return set_double(p, sec, key, value, ABOVE, &t->lr_full);
    if (strcmp(key, "schedule") == 0)
        return set_string(p, &t->schedule, value);
    if (strcmp(key, "transform") == 0)
        return set_transform(p, sec, value, &t->transform);
    if (strcmp(key, "metric") == 0)
        return set_nonempty(p, sec, key, &t->metric, value);
    return add_option(p, &t->options, &t->n_options, key, value);
}

/* `eval-attack = NAME [VERSION] [KEY=VALUE ...]`: the words are checked
 * here, the plugin and its keys by the runner (before anything trains). */
static int set_eval_attack(parser *p, const char *value)
{
    rb_grid_transfer *t = &p->spec->transfer;
    char *copy = strdup(value), *save = NULL, *word;
    char joined[MAX_LINE_CHARS + 1] = ""; /* the words fit: they come from one line */
    int ok = 1;
    if (copy == NULL)
        return OOM(p);
    t->eval_attack_line = p->lineno;
    for (word = strtok_r(copy, " \t", &save); ok && word != NULL; word = strtok_r(NULL, " \t", &save)) {
        char *eq = strchr(word, '=');
        if (strpbrk(word, ",\"") != NULL)
            ok = FAIL(p, "'eval-attack' in [transfer]: '%s' holds a comma or a quote, which results.csv cannot keep",
                      word);
        else if (t->eval_attack == NULL) {
            if (eq != NULL || !is_label(word))
                ok = FAIL(p, "'eval-attack' in [transfer] starts with '%s': write the attack plugin's name (or "
                             "autoattack) first, then KEY=VALUE options",
                          word);
            else
                ok = set_string(p, &t->eval_attack, word);
        } else if (eq == NULL && strcmp(t->eval_attack, "autoattack") == 0 && t->eval_autoattack == NULL &&
                   t->n_eval_attack_options == 0) {
            if (strcmp(word, "standard") != 0 && strcmp(word, "plus") != 0 && strcmp(word, "rand") != 0)
                ok = FAIL(p, "'eval-attack' in [transfer]: AutoAttack's version is standard, plus or rand, not '%s'",
                          word);
            else
                ok = set_string(p, &t->eval_autoattack, word);
        } else if (eq == NULL || eq == word || eq[1] == '\0') {
            ok = FAIL(p, "'eval-attack' in [transfer]: '%s' is not KEY=VALUE (e.g. eval-attack = pgd-linf eps=8/255 "
                         "steps=20)",
                      word);
        } else {
            *eq = '\0';
            for (size_t i = 0; ok && i < t->n_eval_attack_options; i++)
                if (strcmp(t->eval_attack_options[i].key, word) == 0)
                    ok = FAIL(p, "'eval-attack' in [transfer]: option '%s' given twice", word);
            if (ok)
                ok = add_option(p, &t->eval_attack_options, &t->n_eval_attack_options, word, eq + 1);
            *eq = '=';
        }
        if (ok)
            snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s%s", joined[0] ? " " : "", word);
    }
    free(copy);
    if (ok && t->eval_attack == NULL)
        ok = FAIL(p, "'eval-attack' in [transfer] is empty: name an attack plugin, or autoattack");
    if (ok && strcmp(t->eval_attack, "autoattack") == 0 && t->eval_autoattack == NULL)
        ok = set_string(p, &t->eval_autoattack, "standard");
    if (ok)
        ok = set_string(p, &t->eval_attack_text, joined);
    return ok;
}

static int set_transfer(parser *p, const section *sec, const char *key, const char *value)
{
    rb_grid_transfer *t = &p->spec->transfer;
    if (strcmp(key, "task") == 0)
        return set_nonempty(p, sec, key, &t->task, value);
    if (strcmp(key, "modes") == 0)
        return set_modes(p, value);
    if (strcmp(key, "seeds") == 0)
        return set_seeds(p, sec, value, &t->seeds, &t->n_seeds);
    if (strcmp(key, "epochs") == 0)
        return set_int(p, sec, key, value, 1, 16777215, &t->epochs);
    if (strcmp(key, "batch-size") == 0)
        return set_int(p, sec, key, value, 1, 1 << 20, &t->batch_size);
    if (strcmp(key, "lr-fixed") == 0)
        return set_double(p, sec, key, value, ABOVE, &t->lr_fixed);
    if (strcmp(key, "lr-full") == 0)
        return set_double(p, sec, key, value, ABOVE, &t->lr_full);
    if (strcmp(key, "momentum") == 0)
        return set_double(p, sec, key, value, UNIT, &t->momentum);
    if (strcmp(key, "weight-decay") == 0)
        return set_double(p, sec, key, value, AT_LEAST, &t->weight_decay);
    if (strcmp(key, "schedule") == 0)
        return set_optional(p, &t->schedule, value);
    if (strcmp(key, "augment") == 0)
        return set_bool(p, sec, key, value, &t->augment);
    if (strcmp(key, "bn-stats") == 0) {
        if (strcmp(value, "frozen") != 0 && strcmp(value, "update") != 0)
            return FAIL(p, "'bn-stats' in [transfer] is '%s': expected frozen or update", value);
        t->bn_update = strcmp(value, "update") == 0;
        return 1;
    }
    if (strcmp(key, "eval-attack") == 0)
        return set_eval_attack(p, value);
    if (strcmp(key, "eval-attack-per-class") == 0)
        return set_int(p, sec, key, value, 0, INT64_C(1000000000), &t->eval_attack_per_class);
    return unknown_key(p, sec, key);
}

/* inih's handler: one key = value line (p->lineno is its line). */
static int on_key(void *user, const char *section_name, const char *key, const char *value)
{
    parser *p = user;
    section *sec;
    seen_key *keys;
    (void)section_name; /* the first pass knows the section from the line */
    if (p->err_status != RB_OK && p->err_line > 0 && p->lineno >= p->err_line)
        return 1; /* past the first error: nothing more to say */
    while (p->cur < p->n_sections && p->sections[p->cur].line < p->lineno)
        p->cur++;
    if (p->cur == 0)
        return FAIL(p, "key '%s' outside any section: put it under [grid], [arch NAME], [source], "
                       "[target NAME] or [transfer]",
                    key);
    sec = &p->sections[p->cur - 1];
    if (key[0] == '\0')
        return FAIL(p, "a key name is missing before '=' in %s", sec->display);
    for (size_t i = 0; i < sec->n_keys; i++)
        if (strcmp(sec->keys[i].name, key) == 0)
            return FAIL(p, "key '%s' given twice in %s (first at line %d)", key, sec->display, sec->keys[i].line);
    keys = realloc(sec->keys, (sec->n_keys + 1) * sizeof *keys);
    if (keys == NULL)
        return OOM(p);
    sec->keys = keys;
    if ((keys[sec->n_keys].name = strdup(key)) == NULL)
        return OOM(p);
    keys[sec->n_keys++].line = p->lineno;
    switch (sec->kind) {
    case SEC_GRID: return set_grid(p, sec, key, value);
    case SEC_ARCH: return set_arch(p, sec, key, value);
    case SEC_SOURCE: return set_source(p, sec, key, value);
    case SEC_TARGET: return set_target(p, sec, key, value);
    case SEC_TRANSFER: return set_transfer(p, sec, key, value);
    }
    return 0;
}

/* ini_parse_string's reader (fgets on a string), counting the lines. */
static char *read_line(char *str, int num, void *stream)
{
    parser *p = stream;
    char *out = str;
    if (p->left == 0 || num < 2)
        return NULL;
    while (num > 1 && p->left != 0) {
        char c = *p->pos++;
        p->left--;
        *out++ = c;
        if (c == '\n')
            break;
        num--;
    }
    *out = '\0';
    p->lineno++;
    return str;
}

/* ------------------------------------------------------------ first pass */

static const char *const kind_names[] = {"grid", "arch", "source", "target", "transfer"};

/* Checks one "[...]" header (`inside` is between the brackets, NUL-ended)
 * and appends it to p->sections. Returns 0 after recording an error. */
static int add_section(parser *p, char *inside)
{
    char *words[3], *save = NULL;
    size_t n_words = 0;
    int kind = -1;
    section *sec;
    for (char *w = strtok_r(inside, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save))
        if (n_words < 3)
            words[n_words++] = w;
        else
            n_words++;
    if (n_words == 0)
        return FAIL(p, "empty section name []");
    for (int k = 0; k < 5; k++)
        if (strcmp(words[0], kind_names[k]) == 0)
            kind = k;
    if (kind < 0) {
        char shown[256];
        size_t used = 0;
        for (size_t i = 0; i < n_words && i < 3; i++)
            used += (size_t)snprintf(shown + used, sizeof shown - used, "%s%s", i ? " " : "", words[i]);
        return FAIL(p, "unknown section [%s] (expected [grid], [arch NAME], [source], [target NAME] or [transfer])",
                    shown);
    }
    if (kind == SEC_ARCH || kind == SEC_TARGET) {
        if (n_words == 1)
            return FAIL(p, "[%s] needs a label: [%s NAME], NAME of letters, digits, '_', '.' and '-'", words[0],
                        words[0]);
        if (n_words > 2)
            return FAIL(p, "[%s %s ...]: a section label is one word", words[0], words[1]);
        if (!is_label(words[1]))
            return FAIL(p, "[%s %s]: the label may only hold letters, digits, '_', '.' and '-'", words[0],
                        words[1]);
        if (strlen(words[1]) > MAX_LABEL)
            return FAIL(p, "[%s %.*s...]: the label is longer than %d characters", words[0], MAX_LABEL, words[1],
                        MAX_LABEL);
    } else if (n_words > 1) {
        return FAIL(p, "[%s %s]: [%s] takes no label", words[0], words[1], words[0]);
    }
    sec = realloc(p->sections, (p->n_sections + 1) * sizeof *sec);
    if (sec == NULL)
        return OOM(p);
    p->sections = sec;
    sec = &p->sections[p->n_sections];
    memset(sec, 0, sizeof *sec);
    sec->kind = (sec_kind)kind;
    sec->line = p->lineno;
    if (n_words == 1)
        snprintf(sec->display, sizeof sec->display, "[%s]", words[0]);
    else
        snprintf(sec->display, sizeof sec->display, "[%s %s]", words[0], words[1]);
    for (size_t i = 0; i < p->n_sections; i++)
        if (strcmp(p->sections[i].display, sec->display) == 0)
            return FAIL(p, "%s given twice (first at line %d)", sec->display, p->sections[i].line);
    p->n_sections++;
    return 1;
}

/* Finds what inih would mishandle silently and reads the section headers.
 * Stops at the first error, which it records. */
static void first_pass(parser *p, const char *text, size_t size)
{
    const char *line = text, *end = text + size;
    p->lineno = 0;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
        const char *s = line, *stop = line + len;
        p->lineno++;
        if (memchr(line, '\0', len) != NULL) {
            FAIL(p, "holds a NUL byte: a grid file is text");
            return;
        }
        if (len > MAX_LINE_CHARS) {
            FAIL(p, "line longer than %d characters", MAX_LINE_CHARS);
            return;
        }
        if (p->lineno == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
            line = s += 3; /* a UTF-8 byte order mark, as inih allows */
        while (s < stop && isspace((unsigned char)*s))
            s++;
        if (s < stop && *s != ';' && *s != '#') {
            if (s > line) {
                FAIL(p, "indented line: start keys and [sections] at the beginning of the line "
                        "(INI would read it as the continuation of the value above)");
                return;
            }
            if (*s == '[') {
                /* inih's rule: the header ends at ']', or at a ';' after a space */
                char inside[MAX_LINE_CHARS + 1];
                const char *c = s + 1;
                int was_space = 0;
                while (c < stop && *c != ']' && !(was_space && *c == ';')) {
                    was_space = isspace((unsigned char)*c);
                    c++;
                }
                if (c >= stop || *c != ']') {
                    FAIL(p, "not an INI line: '[' without a closing ']'");
                    return;
                }
                memcpy(inside, s + 1, (size_t)(c - s - 1));
                inside[c - s - 1] = '\0';
                for (c++; c < stop && isspace((unsigned char)*c); c++)
                    ;
                if (c < stop && *c != ';' && *c != '#') {
                    FAIL(p, "text after ']' in a section header (comments start with ';')");
                    return;
                }
                if (!add_section(p, inside))
                    return;
                if (p->sections[p->n_sections - 1].kind == SEC_ARCH)
                    p->sections[p->n_sections - 1].index = p->spec->n_archs++;
                else if (p->sections[p->n_sections - 1].kind == SEC_TARGET)
                    p->sections[p->n_sections - 1].index = p->spec->n_targets++;
            }
        }
        line = nl ? nl + 1 : end;
    }
}

/* ------------------------------------------------------------ spec */

static rb_status set_defaults(rb_grid_spec *g)
{
    rb_grid_source *s = &g->source;
    rb_grid_transfer *t = &g->transfer;
    g->tune = RB_TUNE_CACHED;
    s->epochs = 10;
    s->batch_size = 128;
    s->lr = 0.1;
    s->momentum = 0.9;
    s->weight_decay = 5e-4;
    s->augment = true;
    s->steps = 3;
    s->step_size_factor = 2.5;
    s->random_start = true;
    s->schedule = strdup("cosine");
    s->attack = strdup("pgd-l2");
    s->seeds = calloc(1, sizeof *s->seeds);
    s->n_seeds = 1;
    t->mode_fixed = t->mode_full = true;
    t->epochs = 30;
    t->batch_size = 64;
    t->lr_fixed = 0.01;
    t->lr_full = 0.001;
    t->momentum = 0.9;
    t->weight_decay = 5e-4;
    t->task = strdup("classify");
    t->seeds = calloc(1, sizeof *t->seeds);
    t->n_seeds = 1;
    if (s->schedule == NULL || s->attack == NULL || s->seeds == NULL || t->task == NULL || t->seeds == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for a grid spec");
    return RB_OK;
}

/* Gives each [arch] and [target] its slot, in file order. */
static int make_slots(parser *p)
{
    rb_grid_spec *g = p->spec;
    if (g->n_archs > 0 && (g->archs = calloc(g->n_archs, sizeof *g->archs)) == NULL)
        return OOM(p);
    if (g->n_targets > 0 && (g->targets = calloc(g->n_targets, sizeof *g->targets)) == NULL)
        return OOM(p);
    for (size_t i = 0; i < p->n_sections; i++) {
        const section *sec = &p->sections[i];
        /* display is "[arch LABEL]" or "[target LABEL]" */
        const char *label = strchr(sec->display, ' ');
        char **slot = NULL;
        if (sec->kind == SEC_ARCH) {
            g->archs[sec->index].line = sec->line;
            slot = &g->archs[sec->index].label;
        } else if (sec->kind == SEC_TARGET) {
            g->targets[sec->index].line = sec->line;
            slot = &g->targets[sec->index].label;
        }
        if (slot != NULL && (*slot = strndup(label + 1, strlen(label + 1) - 1)) == NULL)
            return OOM(p);
    }
    return 1;
}

static int has_section(const parser *p, sec_kind kind)
{
    for (size_t i = 0; i < p->n_sections; i++)
        if (p->sections[i].kind == kind)
            return 1;
    return 0;
}

/* What is missing, once every line has been read (errors without a line). */
static void check_complete(parser *p)
{
    const rb_grid_spec *g = p->spec;
    static const struct {
        sec_kind kind;
        const char *name;
    } needed[] = {{SEC_GRID, "[grid]"},
                  {SEC_ARCH, "[arch NAME]"},
                  {SEC_SOURCE, "[source]"},
                  {SEC_TARGET, "[target NAME]"},
                  {SEC_TRANSFER, "[transfer]"}};
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
        if (!has_section(p, needed[i].kind)) {
            fail_at(p, RB_ERR_INVALID_ARGUMENT, 0, "no %s section", needed[i].name);
            return;
        }
    if (g->name == NULL) {
        fail_at(p, RB_ERR_INVALID_ARGUMENT, 0, "[grid] needs 'name'");
        return;
    }
    for (size_t i = 0; i < g->n_archs; i++)
        if (g->archs[i].arch == NULL) {
            fail_at(p, RB_ERR_INVALID_ARGUMENT, 0, "[arch %s] needs 'arch'", g->archs[i].label);
            return;
        }
    if (g->source.data == NULL) {
        fail_at(p, RB_ERR_INVALID_ARGUMENT, 0, "[source] needs 'data'");
        return;
    }
    if (g->source.n_eps == 0) {
        fail_at(p, RB_ERR_INVALID_ARGUMENT, 0, "[source] needs 'eps'");
        return;
    }
    for (size_t i = 0; i < g->n_targets; i++)
        if (g->targets[i].data == NULL) {
            fail_at(p, RB_ERR_INVALID_ARGUMENT, 0, "[target %s] needs 'data'", g->targets[i].label);
            return;
        }
    if (!g->transfer.mode_fixed && !g->transfer.mode_full) {
        fail_at(p, RB_ERR_INTERNAL, 0, "no transfer mode left"); /* split_list refuses empty lists */
        return;
    }
    if (g->transfer.eval_attack_per_class > 0 && g->transfer.eval_attack == NULL) {
        fail_at(p, RB_ERR_INVALID_ARGUMENT, 0,
                "[transfer] has 'eval-attack-per-class' but no 'eval-attack' to run on those images");
        return;
    }
    /* [transfer]'s task is every target's default, wherever the sections are */
    for (size_t i = 0; i < g->n_targets; i++)
        if (g->targets[i].task == NULL && (g->targets[i].task = strdup(g->transfer.task)) == NULL) {
            fail_at(p, RB_ERR_OUT_OF_MEMORY, 0, "out of memory");
            return;
        }
}

rb_grid_target_settings rb_grid_target_settings_of(const rb_grid_spec *spec, size_t target)
{
    const rb_grid_target *t = &spec->targets[target];
    const rb_grid_transfer *tf = &spec->transfer;
    rb_grid_target_settings out;
    out.epochs = t->epochs > 0 ? t->epochs : tf->epochs;
    out.batch_size = t->batch_size > 0 ? t->batch_size : tf->batch_size;
    out.lr_fixed = t->lr_fixed > 0 ? t->lr_fixed : tf->lr_fixed;
    out.lr_full = t->lr_full > 0 ? t->lr_full : tf->lr_full;
    out.schedule = t->schedule == NULL ? tf->schedule : t->schedule[0] != '\0' ? t->schedule : NULL;
    return out;
}

rb_status rb_grid_spec_parse(const char *text, size_t size, const char *what, rb_grid_spec **out)
{
    parser p;
    char *copy = NULL;
    rb_status s;
    int ret;
    if (out == NULL || (text == NULL && size > 0))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_grid_spec_parse: NULL argument");
    *out = NULL;
    memset(&p, 0, sizeof p);
    p.what = what != NULL ? what : "grid";
    if ((p.spec = calloc(1, sizeof *p.spec)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for a grid spec");
    if ((s = set_defaults(p.spec)) != RB_OK)
        goto done;
    if ((p.spec->path = strdup(p.what)) == NULL || (copy = malloc(size + 1)) == NULL) {
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory reading %s", p.what);
        goto done;
    }
    if (size > 0)
        memcpy(copy, text, size);
    copy[size] = '\0';

    first_pass(&p, copy, size);
    if (make_slots(&p)) {
        p.pos = copy;
        p.left = strlen(copy); /* inih stops at a NUL anyway: the first pass refused it */
        p.lineno = 0;
        ret = ini_parse_stream(read_line, &p, on_key, &p);
        if (ret > 0)
            fail_at(&p, RB_ERR_INVALID_ARGUMENT, ret,
                    "not an INI line (expected [section], key = value, or a comment starting with ';' or '#')");
        else if (ret < 0)
            fail_at(&p, RB_ERR_OUT_OF_MEMORY, 1, "out of memory in the INI reader");
    }
    if (p.err_status == RB_OK)
        check_complete(&p);
    if (p.err_status != RB_OK) {
        s = p.err_line > 0 ? rb_error_set(p.err_status, "%s:%d: %s", p.what, p.err_line, p.err)
                           : rb_error_set(p.err_status, "%s: %s", p.what, p.err);
    } else {
        s = RB_OK;
    }
done:
    for (size_t i = 0; i < p.n_sections; i++) {
        for (size_t k = 0; k < p.sections[i].n_keys; k++)
            free(p.sections[i].keys[k].name);
        free(p.sections[i].keys);
    }
    free(p.sections);
    free(copy);
    if (s == RB_OK)
        *out = p.spec;
    else
        rb_grid_spec_destroy(p.spec);
    return s;
}

rb_status rb_grid_spec_load(const char *path, rb_grid_spec **out)
{
    unsigned char *data;
    size_t size;
    rb_status s;
    if (out == NULL || path == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_grid_spec_load: NULL argument");
    *out = NULL;
    if ((s = rb_file_read_all(path, GRID_FILE_LIMIT, &data, &size)) != RB_OK)
        return s;
    s = rb_grid_spec_parse((const char *)data, size, path, out);
    free(data);
    return s;
}

void rb_grid_spec_destroy(rb_grid_spec *g)
{
    if (g == NULL)
        return;
    free(g->path);
    free(g->name);
    for (size_t i = 0; i < g->n_archs; i++) {
        for (size_t k = 0; k < g->archs[i].n_options; k++) {
            free(g->archs[i].options[k].key);
            free(g->archs[i].options[k].value);
        }
        free(g->archs[i].options);
        free(g->archs[i].label);
        free(g->archs[i].arch);
    }
    free(g->archs);
    for (size_t i = 0; i < g->n_targets; i++) {
        for (size_t k = 0; k < g->targets[i].n_options; k++) {
            free(g->targets[i].options[k].key);
            free(g->targets[i].options[k].value);
        }
        free(g->targets[i].options);
        free(g->targets[i].label);
        free(g->targets[i].data);
        free(g->targets[i].classes);
        free(g->targets[i].task);
        free(g->targets[i].schedule);
        free(g->targets[i].metric);
    }
    free(g->targets);
    free(g->source.data);
    free(g->source.classes);
    free(g->source.schedule);
    free(g->source.attack);
    free(g->source.eps);
    for (size_t i = 0; i < g->source.n_eps; i++)
        free(g->source.eps_text[i]);
    free(g->source.eps_text);
    free(g->source.seeds);
    free(g->cache);
    free(g->transfer.task);
    free(g->transfer.schedule);
    free(g->transfer.seeds);
    for (size_t k = 0; k < g->transfer.n_eval_attack_options; k++) {
        free(g->transfer.eval_attack_options[k].key);
        free(g->transfer.eval_attack_options[k].value);
    }
    free(g->transfer.eval_attack_options);
    free(g->transfer.eval_attack);
    free(g->transfer.eval_autoattack);
    free(g->transfer.eval_attack_text);
    free(g);
}
