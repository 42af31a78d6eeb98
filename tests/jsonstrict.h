/* A strict RFC 8259 check for the JSON robusta writes. json-c, even with
 * JSON_TOKENER_STRICT, accepts NaN, Infinity and 'single quotes', which
 * Python's json (with parse_constant), jq and browsers refuse; this checker
 * accepts exactly the grammar of RFC 8259 (one value, whitespace around it)
 * so a test can assert that every output parses anywhere.
 *
 *     json_strict_assert(text, "eval --json");        // one document
 *     json_strict_assert_lines(text, "log.jsonl");    // one document a line
 *     json_strict_assert_file(path);                  // a file, by its name */
#ifndef RB_TEST_JSONSTRICT_H
#define RB_TEST_JSONSTRICT_H

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct json_strict {
    const char *p, *start, *end;
    const char *why;
} json_strict;

static inline bool js_fail(json_strict *s, const char *why)
{
    if (s->why == NULL)
        s->why = why;
    return false;
}

static inline void js_ws(json_strict *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static inline bool js_value(json_strict *s, int depth);

static inline bool js_string(json_strict *s)
{
    s->p++; /* opening quote */
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p++;
        if (c == '"')
            return true;
        if (c < 0x20)
            return js_fail(s, "control character in a string");
        if (c == '\\') {
            if (s->p >= s->end)
                break;
            c = (unsigned char)*s->p++;
            if (c == 'u') {
                for (int k = 0; k < 4; k++, s->p++)
                    if (s->p >= s->end || !strchr("0123456789abcdefABCDEF", *s->p) || *s->p == '\0')
                        return js_fail(s, "bad \\u escape");
            } else if (!strchr("\"\\/bfnrt", c) || c == '\0')
                return js_fail(s, "bad escape");
        }
    }
    return js_fail(s, "unterminated string");
}

static inline bool js_digits(json_strict *s)
{
    const char *from = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > from;
}

static inline bool js_number(json_strict *s)
{
    if (*s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (!js_digits(s))
        return js_fail(s, "not a number (NaN and Infinity are not JSON)");
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!js_digits(s))
            return js_fail(s, "digits must follow '.'");
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!js_digits(s))
            return js_fail(s, "digits must follow the exponent");
    }
    return true;
}

static inline bool js_word(json_strict *s, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
        return js_fail(s, "unexpected word (NaN and Infinity are not JSON)");
    s->p += n;
    return true;
}

static inline bool js_container(json_strict *s, int depth, char close)
{
    s->p++;
    js_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return true;
    }
    for (;;) {
        js_ws(s);
        if (close == '}') {
            if (s->p >= s->end || *s->p != '"')
                return js_fail(s, "object keys are double-quoted strings");
            if (!js_string(s))
                return false;
            js_ws(s);
            if (s->p >= s->end || *s->p != ':')
                return js_fail(s, "':' expected");
            s->p++;
        }
        if (!js_value(s, depth + 1))
            return false;
        js_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return true;
        }
        return js_fail(s, "',' or a closing bracket expected");
    }
}

static inline bool js_value(json_strict *s, int depth)
{
    if (depth > 512)
        return js_fail(s, "nested too deeply");
    js_ws(s);
    if (s->p >= s->end)
        return js_fail(s, "value expected");
    switch (*s->p) {
    case '{': return js_container(s, depth, '}');
    case '[': return js_container(s, depth, ']');
    case '"': return js_string(s);
    case 't': return js_word(s, "true");
    case 'f': return js_word(s, "false");
    case 'n': return js_word(s, "null");
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
            return js_number(s);
        return js_fail(s, "unexpected character (NaN and Infinity are not JSON)");
    }
}

/* NULL when text[0, len) is one strict JSON document; otherwise why, with
 * the byte offset in *where. */
static inline const char *json_strict_check(const char *text, size_t len, size_t *where)
{
    json_strict s = {text, text, text + len, NULL};
    bool ok = js_value(&s, 0);
    if (ok) {
        js_ws(&s);
        if (s.p != s.end)
            ok = js_fail(&s, "text after the value");
    }
    *where = (size_t)(s.p - s.start);
    return ok ? NULL : s.why;
}

static inline void json_strict_assert(const char *text, const char *what)
{
    size_t where;
    const char *why = json_strict_check(text, strlen(text), &where);
    ck_assert_msg(why == NULL, "%s is not strict JSON: %s at byte %zu: '%.40s'", what, why, where,
                  text + (where > 10 ? where - 10 : 0));
}

/* JSON Lines: every non-empty line one document; at least one line. */
static inline void json_strict_assert_lines(const char *text, const char *what)
{
    int lines = 0;
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line), where;
        const char *why = json_strict_check(line, len, &where);
        ck_assert_msg(why == NULL, "%s line %d is not strict JSON: %s at byte %zu: '%.*s'", what, lines + 1, why,
                      where, (int)(len < 200 ? len : 200), line);
        lines++;
        line += len + (nl != NULL);
    }
    ck_assert_msg(lines > 0, "%s is empty", what);
}

static inline char *json_strict_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long len;
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    return buf;
}

/* A file robusta wrote: JSON Lines when the name ends in .jsonl. */
static inline void json_strict_assert_file(const char *path)
{
    char *text = json_strict_read(path);
    size_t n = strlen(path);
    if (n > 6 && strcmp(path + n - 6, ".jsonl") == 0)
        json_strict_assert_lines(text, path);
    else
        json_strict_assert(text, path);
    free(text);
}

#endif /* RB_TEST_JSONSTRICT_H */
