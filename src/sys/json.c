/* The strict JSON reader (sys/json.h): one for every JSON document robusta
 * reads from a file. json-c builds the tree, but it is lenient in ways a
 * file format must not be, so the text first goes through a recognizer of
 * RFC 8259 (the scan_* functions) that also checks UTF-8, \u escapes, the
 * range of integers and the nesting depth, and records, in the order they
 * appear, every object (with its member count) and every number. Walking
 * json-c's tree in the same order then finds duplicate keys (an object with
 * fewer members in the tree than in the text) and numbers that became
 * infinite. The recognizer can also record every value as an rb_json_node
 * (flat values, below), which sys/json_pieces.c hands out for large files
 * without a json-c tree. */
#include "config.h"

#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "sys/internal.h"
#include "sys/json.h"
#include "sys/json_scan.h"

bool rb_json_scan_fail(scan *s, const char *msg)
{
    if (s->err == NULL) {
        s->err = msg;
        s->err_at = s->i;
    }
    return false;
}

/* Makes room for one more element of an array of `size`-byte elements. */
bool rb_json_grow(scan *s, void **items, size_t count, size_t *cap, size_t size)
{
    void *bigger;
    size_t want;
    if (count < *cap)
        return true;
    want = *cap ? 2 * *cap : 64;
    bigger = realloc(*items, want * size);
    if (bigger == NULL) {
        s->oom = true;
        return rb_json_scan_fail(s, "out of memory");
    }
    *items = bigger;
    *cap = want;
    return true;
}

void rb_json_scan_ws(scan *s)
{
    while (s->i < s->n && (s->p[s->i] == ' ' || s->p[s->i] == '\t' || s->p[s->i] == '\n' || s->p[s->i] == '\r'))
        s->i++;
}

static bool scan_hex4(const scan *s, size_t at, unsigned *out)
{
    unsigned v = 0;
    if (at > s->n || s->n - at < 4)
        return false;
    for (size_t k = 0; k < 4; k++) {
        unsigned char c = s->p[at + k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return false;
    }
    *out = v;
    return true;
}

bool rb_json_scan_string(scan *s)
{
    s->i++; /* the opening quote */
    for (;;) {
        unsigned char c;
        if (s->i >= s->n)
            return rb_json_scan_fail(s, "unterminated string");
        c = s->p[s->i];
        if (c == '"') {
            s->i++;
            return true;
        }
        if (c < 0x20)
            return rb_json_scan_fail(s, "control character in a string");
        if (c == '\\') {
            unsigned u, low;
            if (s->i + 1 >= s->n)
                return rb_json_scan_fail(s, "unterminated string");
            switch (s->p[s->i + 1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                s->i += 2;
                break;
            case 'u':
                if (!scan_hex4(s, s->i + 2, &u))
                    return rb_json_scan_fail(s, "bad \\u escape");
                if (u == 0)
                    return rb_json_scan_fail(s, "\\u0000 escape (no name or value may hold a NUL)");
                if (u >= 0xdc00 && u <= 0xdfff)
                    return rb_json_scan_fail(s, "unpaired surrogate in a \\u escape");
                if (u >= 0xd800 && u <= 0xdbff) {
                    if (s->i + 7 >= s->n || s->p[s->i + 6] != '\\' || s->p[s->i + 7] != 'u' ||
                        !scan_hex4(s, s->i + 8, &low) || low < 0xdc00 || low > 0xdfff)
                        return rb_json_scan_fail(s, "unpaired surrogate in a \\u escape");
                    s->i += 6;
                }
                s->i += 6;
                break;
            default:
                return rb_json_scan_fail(s, "bad escape in a string");
            }
            continue;
        }
        {
            size_t len = rb_utf8_char(s->p + s->i, s->n - s->i);
            if (len == 0)
                return rb_json_scan_fail(s, "invalid UTF-8 in a string");
            s->i += len;
        }
    }
}

static bool is_digit(const scan *s)
{
    return s->i < s->n && s->p[s->i] >= '0' && s->p[s->i] <= '9';
}

static bool scan_number(scan *s)
{
    size_t start = s->i, digits_at, ndigits;
    bool neg = false, integer = true;
    if (s->record) {
        if (!rb_json_grow(s, (void **)&s->numbers, s->number_count, &s->number_cap, sizeof *s->numbers))
            return false;
        s->numbers[s->number_count++] = start;
    }
    if (s->p[s->i] == '-') {
        neg = true;
        s->i++;
    }
    digits_at = s->i;
    if (!is_digit(s))
        return rb_json_scan_fail(s, "bad number");
    if (s->p[s->i] == '0') {
        s->i++;
        if (is_digit(s))
            return rb_json_scan_fail(s, "number with a leading zero");
    } else
        while (is_digit(s))
            s->i++;
    ndigits = s->i - digits_at;
    if (s->i < s->n && s->p[s->i] == '.') {
        integer = false;
        s->i++;
        if (!is_digit(s))
            return rb_json_scan_fail(s, "bad number");
        while (is_digit(s))
            s->i++;
    }
    if (s->i < s->n && (s->p[s->i] == 'e' || s->p[s->i] == 'E')) {
        integer = false;
        s->i++;
        if (s->i < s->n && (s->p[s->i] == '+' || s->p[s->i] == '-'))
            s->i++;
        if (!is_digit(s))
            return rb_json_scan_fail(s, "bad number");
        while (is_digit(s))
            s->i++;
    }
    if (integer) {
        /* json-c would clamp what does not fit int64 (negative) or uint64. */
        const char *max = neg ? "9223372036854775808" : "18446744073709551615";
        size_t maxlen = strlen(max);
        if (ndigits > maxlen || (ndigits == maxlen && memcmp(s->p + digits_at, max, maxlen) > 0)) {
            s->i = start;
            return rb_json_scan_fail(s, "integer out of range");
        }
    }
    return true;
}

/* An object or array at `depth` enclosing containers; an object that is a
 * member's value gets that member's key. */
static bool scan_container(scan *s, int depth, size_t key_begin, size_t key_end, bool has_key)
{
    bool object = s->p[s->i] == '{';
    char close = object ? '}' : ']';
    size_t slot = 0, members = 0;
    if (depth >= s->max_depth)
        return rb_json_scan_fail(s, "nesting too deep");
    if (object && s->record) {
        if (!rb_json_grow(s, (void **)&s->objects, s->object_count, &s->object_cap, sizeof *s->objects))
            return false;
        slot = s->object_count++;
        s->objects[slot] = (scan_object){.start = s->i, .key_begin = key_begin, .key_end = key_end,
                                         .has_key = has_key, .depth = depth + 1};
    }
    s->i++;
    rb_json_scan_ws(s);
    if (s->i < s->n && s->p[s->i] == close)
        s->i++;
    else
        for (;;) {
            size_t kb = 0, ke = 0;
            if (object) {
                if (s->i >= s->n || s->p[s->i] != '"')
                    return rb_json_scan_fail(s, s->i >= s->n ? "unexpected end" : "expected a string key");
                kb = s->i;
                if (!rb_json_scan_string(s))
                    return false;
                ke = s->i;
                rb_json_scan_ws(s);
                if (s->i >= s->n || s->p[s->i] != ':')
                    return rb_json_scan_fail(s, s->i >= s->n ? "unexpected end" : "expected ':'");
                s->i++;
                rb_json_scan_ws(s);
            }
            if (!rb_json_scan_value(s, depth + 1, kb, ke, object))
                return false;
            members++;
            rb_json_scan_ws(s);
            if (s->i >= s->n)
                return rb_json_scan_fail(s, "unexpected end");
            if (s->p[s->i] == ',') {
                s->i++;
                rb_json_scan_ws(s);
                continue;
            }
            if (s->p[s->i] == close) {
                s->i++;
                break;
            }
            return rb_json_scan_fail(s, object ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    if (object && s->record)
        s->objects[slot].members = members;
    return true;
}

static bool scan_literal(scan *s, const char *word)
{
    size_t len = strlen(word);
    if (s->n - s->i < len || memcmp(s->p + s->i, word, len) != 0)
        return rb_json_scan_fail(s, "unexpected character");
    s->i += len;
    return true;
}

static bool scan_value_raw(scan *s, int depth, size_t key_begin, size_t key_end, bool has_key)
{
    unsigned char c;
    if (s->i >= s->n)
        return rb_json_scan_fail(s, "unexpected end");
    c = s->p[s->i];
    switch (c) {
    case '{': case '[': return scan_container(s, depth, key_begin, key_end, has_key);
    case '"': return rb_json_scan_string(s);
    case 't': return scan_literal(s, "true");
    case 'f': return scan_literal(s, "false");
    case 'n': return scan_literal(s, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return scan_number(s);
        return rb_json_scan_fail(s, "unexpected character");
    }
}

/* ------------------------------------------------------------ flat values */

static locale_t c_numeric;
static pthread_once_t c_numeric_once = PTHREAD_ONCE_INIT;

static void make_c_numeric(void)
{
    c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* A JSON number token (valid) as a double, whatever the program's locale. */
static double token_double(const unsigned char *p, size_t len)
{
    char small[64], *buf = len < sizeof small ? small : malloc(len + 1);
    double v;
    if (buf == NULL)
        return NAN; /* reported as out of range: only a number of megabytes gets here */
    memcpy(buf, p, len);
    buf[len] = '\0';
    pthread_once(&c_numeric_once, make_c_numeric);
    v = c_numeric != (locale_t)0 ? strtod_l(buf, NULL, c_numeric) : strtod(buf, NULL);
    if (buf != small)
        free(buf);
    return v;
}

/* The text of the key token at `k` (its opening quote): a span of the text
 * when it has no escape, else decoded into *owned (free it). NULL when out
 * of memory. */
const char *rb_json_key_text(const unsigned char *p, size_t k, size_t *len, char **owned)
{
    size_t e = k + 1;
    bool escaped = false;
    *owned = NULL;
    while (p[e] != '"') {
        if (p[e] == '\\') {
            escaped = true;
            e++;
        }
        e++;
    }
    if (!escaped) {
        *len = e - k - 1;
        return (const char *)p + k + 1;
    }
    if ((*owned = malloc(e - k + 1)) == NULL || !rb_json_decode_string(p + k, e + 1 - k, *owned, e - k + 1)) {
        free(*owned);
        *owned = NULL;
        return NULL;
    }
    *len = strlen(*owned);
    return *owned;
}

typedef struct key_span {
    const char *text;
    size_t len;
} key_span;

static int by_key(const void *a, const void *b)
{
    const key_span *x = a, *y = b;
    int c = memcmp(x->text, y->text, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Whether the object node `slot` (just scanned) repeats a key; when it does
 * s->dup describes it. False also when out of memory (s->oom). */
static bool object_unique(scan *s, size_t slot, int depth)
{
    size_t count = 0, n = 0;
    key_span small_keys[16], *keys = small_keys;
    char *small_owned[16] = {NULL}, **owned = small_owned;
    bool unique = true;
    for (size_t c = slot + 1; c < s->node_count; c = s->nodes[c].next)
        count++;
    if (count < 2)
        return true;
    if (count > 16) {
        keys = malloc(count * sizeof *keys);
        owned = calloc(count, sizeof *owned);
        if (keys == NULL || owned == NULL) {
            free(keys);
            free(owned);
            s->oom = true;
            return rb_json_scan_fail(s, "out of memory");
        }
    }
    for (size_t c = slot + 1; c < s->node_count; c = s->nodes[c].next, n++)
        if ((keys[n].text = rb_json_key_text(s->p, s->nodes[c].key, &keys[n].len, &owned[n])) == NULL) {
            s->oom = true;
            unique = rb_json_scan_fail(s, "out of memory");
            goto done;
        }
    if (count <= 16) {
        for (size_t i = 1; i < count && unique; i++)
            for (size_t j = 0; j < i && unique; j++)
                if (keys[i].len == keys[j].len && memcmp(keys[i].text, keys[j].text, keys[i].len) == 0) {
                    unique = false;
                    n = i;
                }
    } else {
        qsort(keys, count, sizeof *keys, by_key);
        for (size_t i = 1; i < count && unique; i++)
            if (by_key(&keys[i], &keys[i - 1]) == 0) {
                unique = false;
                n = i;
            }
    }
    if (!unique && s->dup != NULL) {
        rb_json_error *err = s->dup;
        size_t len = keys[n].len < sizeof err->key - 1 ? keys[n].len : sizeof err->key - 1;
        memset(err, 0, sizeof *err);
        err->fault = RB_JSON_DUPLICATE;
        memcpy(err->key, keys[n].text, len);
        err->key[len] = '\0';
        err->at = s->nodes[slot].start;
        err->depth = depth + 1;
        if (s->nodes[slot].key != SIZE_MAX) {
            size_t plen;
            char *pown;
            const char *ptext = rb_json_key_text(s->p, s->nodes[slot].key, &plen, &pown);
            if (ptext != NULL) {
                plen = plen < sizeof err->parent - 1 ? plen : sizeof err->parent - 1;
                memcpy(err->parent, ptext, plen);
                err->parent[plen] = '\0';
                err->parent_key = true;
            }
            free(pown);
        }
        snprintf(err->what, sizeof err->what, "duplicate key '%s' in the object", err->key);
    }
done:
    for (size_t i = 0; i < count; i++)
        free(owned[i]);
    if (count > 16) {
        free(owned);
        free(keys);
    }
    return unique;
}

/* A number node's values from its token p[start .. end). */
static bool flat_number(scan *s, rb_json_node *node)
{
    const unsigned char *p = s->p + node->start;
    size_t len = node->end - node->start, d = p[0] == '-';
    bool integer = true;
    for (size_t k = d; k < len; k++)
        if (p[k] == '.' || p[k] == 'e' || p[k] == 'E')
            integer = false;
    if (integer) {
        uint64_t u = 0;
        for (size_t k = d; k < len; k++)
            u = u * 10 + (uint64_t)(p[k] - '0'); /* the recognizer checked the range */
        node->kind = RB_JSON_KIND_INT;
        if (d) {
            node->integer = u == (uint64_t)1 << 63 ? INT64_MIN : -(int64_t)u;
            node->number = -(double)u;
        } else {
            node->big = u > (uint64_t)INT64_MAX;
            node->integer = node->big ? INT64_MAX : (int64_t)u;
            node->big_value = u;
            node->number = (double)u;
        }
        return true;
    }
    node->kind = RB_JSON_KIND_DOUBLE;
    node->number = token_double(p, len);
    if (!isfinite(node->number)) {
        s->i = node->start;
        return rb_json_scan_fail(s, "number out of range");
    }
    return true;
}

/* scan_value_raw, and in flat mode the value's node (pre-order). */
bool rb_json_scan_value(scan *s, int depth, size_t key_begin, size_t key_end, bool has_key)
{
    size_t slot;
    rb_json_node *node;
    if (!s->flat)
        return scan_value_raw(s, depth, key_begin, key_end, has_key);
    if (!rb_json_grow(s, (void **)&s->nodes, s->node_count, &s->node_cap, sizeof *s->nodes))
        return false;
    slot = s->node_count++;
    s->nodes[slot] = (rb_json_node){.start = s->i, .key = has_key ? key_begin : SIZE_MAX};
    if (!scan_value_raw(s, depth, key_begin, key_end, has_key))
        return false;
    node = &s->nodes[slot];
    node->end = s->i;
    node->next = s->node_count;
    switch (s->p[node->start]) {
    case '{':
        node->kind = RB_JSON_KIND_OBJECT;
        return object_unique(s, slot, depth);
    case '[': node->kind = RB_JSON_KIND_ARRAY; return true;
    case '"': node->kind = RB_JSON_KIND_STRING; return true;
    case 't': node->kind = RB_JSON_KIND_BOOL; node->boolean = true; return true;
    case 'f': node->kind = RB_JSON_KIND_BOOL; return true;
    case 'n': node->kind = RB_JSON_KIND_NULL; return true;
    default: return flat_number(s, node);
    }
}

/* ------------------------------------------------------------ the tree */

typedef enum tree_check { TREE_OK, TREE_DUPLICATE, TREE_NONFINITE } tree_check;

typedef struct walk {
    const scan *s;
    size_t object, number; /* the next of each in pre-order */
} walk;

/* Walks json-c's tree in the recognizer's pre-order. json-c keeps the first
 * position of a repeated key, so up to the first object that repeats a key
 * both orders agree, and that object has fewer members in the tree. */
static tree_check check_tree(json_object *o, walk *w)
{
    tree_check r;
    switch (json_object_get_type(o)) {
    case json_type_object: {
        struct json_object_iterator it = json_object_iter_begin(o), end = json_object_iter_end(o);
        if (w->object >= w->s->object_count ||
            w->s->objects[w->object].members != (size_t)json_object_object_length(o))
            return TREE_DUPLICATE;
        w->object++;
        for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
            if ((r = check_tree(json_object_iter_peek_value(&it), w)) != TREE_OK)
                return r;
        return TREE_OK;
    }
    case json_type_array:
        for (size_t i = 0, n = json_object_array_length(o); i < n; i++)
            if ((r = check_tree(json_object_array_get_idx(o, i), w)) != TREE_OK)
                return r;
        return TREE_OK;
    case json_type_double:
        if (!isfinite(json_object_get_double(o)))
            return TREE_NONFINITE;
        w->number++;
        return TREE_OK;
    case json_type_int:
        w->number++;
        return TREE_OK;
    default:
        return TREE_OK;
    }
}

/* The text of the (valid) quoted string token p[0 .. len) into out, cut to
 * fit; false when out of memory. */
bool rb_json_decode_string(const unsigned char *p, size_t len, char *out, size_t size)
{
    struct json_tokener *tok = json_tokener_new();
    char *copy = malloc(len + 1);
    json_object *o = NULL;
    if (tok != NULL && copy != NULL) {
        memcpy(copy, p, len);
        copy[len] = '\0';
        o = json_tokener_parse_ex(tok, copy, (int)len + 1);
    }
    free(copy);
    if (tok != NULL)
        json_tokener_free(tok);
    if (o == NULL || !json_object_is_type(o, json_type_string)) {
        json_object_put(o);
        return false;
    }
    snprintf(out, size, "%s", json_object_get_string(o));
    json_object_put(o);
    return true;
}

/* Which key the object `obj` repeats: its members' keys, decoded, compared
 * pairwise (only after the member counts disagreed). */
static rb_json_fault name_duplicate(const scan *s, const scan_object *obj, rb_json_error *err)
{
    scan again = {.p = s->p, .n = s->n, .i = obj->start + 1, .max_depth = INT_MAX};
    size_t count = 0, cap = 0;
    size_t (*keys)[2] = NULL;
    rb_json_fault r = RB_JSON_NO_MEMORY;
    char (*text)[128] = NULL;

    err->depth = obj->depth;
    err->parent_key = obj->has_key;
    if (obj->has_key && !rb_json_decode_string(s->p + obj->key_begin, obj->key_end - obj->key_begin, err->parent,
                                       sizeof err->parent))
        return RB_JSON_NO_MEMORY;
    for (;;) { /* the text is valid: no checks needed but the closing brace */
        rb_json_scan_ws(&again);
        if (again.p[again.i] == '}')
            break;
        if (!rb_json_grow(&again, (void **)&keys, count, &cap, sizeof *keys))
            goto done;
        keys[count][0] = again.i;
        rb_json_scan_string(&again);
        keys[count][1] = again.i;
        count++;
        rb_json_scan_ws(&again);
        again.i++; /* ':' */
        rb_json_scan_ws(&again);
        rb_json_scan_value(&again, 0, 0, 0, false);
        rb_json_scan_ws(&again);
        if (again.p[again.i] == ',')
            again.i++;
    }
    text = calloc(count ? count : 1, sizeof *text);
    if (text == NULL)
        goto done;
    for (size_t i = 0; i < count; i++) {
        if (!rb_json_decode_string(s->p + keys[i][0], keys[i][1] - keys[i][0], text[i], sizeof text[i]))
            goto done;
        for (size_t j = 0; j < i; j++)
            if (strcmp(text[i], text[j]) == 0) {
                snprintf(err->key, sizeof err->key, "%s", text[i]);
                r = RB_JSON_DUPLICATE;
                goto done;
            }
    }
    /* Keys longer than the buffer that agree in their first 127 bytes. */
    snprintf(err->key, sizeof err->key, "?");
    r = RB_JSON_DUPLICATE;
done:
    free(keys);
    free(text);
    return r;
}

const char *rb_json_kind_of(unsigned char first)
{
    switch (first) {
    case '[': return "array";
    case '"': return "string";
    case 't': case 'f': return "boolean";
    case 'n': return "null";
    default: return "number";
    }
}

rb_json_fault rb_json_fail(rb_json_error *err, rb_json_fault fault, const char *what, size_t at)
{
    err->fault = fault;
    snprintf(err->what, sizeof err->what, "%s", what);
    err->at = at;
    return fault;
}

/* json-c's tree of the container text[first .. end), which the recognizer
 * `s` has just accepted and recorded (its objects and numbers from index
 * 0), checked for repeated keys and numbers that became infinite. `tok` is
 * reset first; its depth must allow the container's. */
rb_json_fault rb_json_build_tree(scan *s, json_tokener *tok, size_t first, size_t end, json_object **out,
                                rb_json_error *err)
{
    json_object *root;
    walk w = {.s = s};
    rb_json_fault r;
    *out = NULL;
    if (end - first > INT_MAX)
        return rb_json_fail(err, RB_JSON_TOO_LONG, "JSON text too long", first);
    json_tokener_reset(tok);
    root = json_tokener_parse_ex(tok, (const char *)s->p + first, (int)(end - first));
    if (root == NULL || !json_object_is_type(root, s->p[first] == '{' ? json_type_object : json_type_array) ||
        json_tokener_get_parse_end(tok) != end - first) {
        /* The recognizer accepted it: json-c should never disagree. */
        json_object_put(root);
        return rb_json_fail(err, RB_JSON_INVALID, json_tokener_error_desc(json_tokener_get_error(tok)), first);
    }
    switch (check_tree(root, &w)) {
    case TREE_OK:
        *out = root;
        return RB_JSON_OK;
    case TREE_DUPLICATE:
        json_object_put(root);
        if (w.object >= s->object_count) /* cannot happen: the tree has no more objects than the text */
            return rb_json_fail(err, RB_JSON_INVALID, "json-c and the recognizer disagree", first);
        r = name_duplicate(s, &s->objects[w.object], err);
        if (r != RB_JSON_DUPLICATE)
            return rb_json_fail(err, r, "out of memory", 0);
        err->fault = r;
        err->at = s->objects[w.object].start;
        snprintf(err->what, sizeof err->what, "duplicate key '%s' in the object", err->key);
        return r;
    case TREE_NONFINITE:
    default:
        json_object_put(root);
        return rb_json_fail(err, RB_JSON_INVALID, "number out of range", s->numbers[w.number]);
    }
}

json_tokener *rb_json_strict_tokener(int max_depth)
{
    json_tokener *tok = json_tokener_new_ex(max_depth + 2);
    if (tok != NULL)
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    return tok;
}

/* rb_json_parse_object, or with `object_only` false rb_json_parse_container. */
static rb_json_fault parse_strict(const char *text, size_t len, int max_depth, bool object_only, json_object **out,
                                  rb_json_error *err)
{
    scan s = {.p = (const unsigned char *)text, .n = len, .max_depth = max_depth, .record = true};
    const void *nul = memchr(text, '\0', len);
    json_tokener *tok;
    size_t first, end = 0;
    rb_json_fault r;

    *out = NULL;
    memset(err, 0, sizeof *err);
    if (nul != NULL)
        return rb_json_fail(err, RB_JSON_INVALID, "NUL byte", (size_t)((const char *)nul - text));
    rb_json_scan_ws(&s);
    first = s.i;
    if (rb_json_scan_value(&s, 0, 0, 0, false)) {
        end = s.i;
        rb_json_scan_ws(&s);
        if (s.i < s.n)
            rb_json_scan_fail(&s, "unexpected bytes after the JSON value");
    }
    if (s.err != NULL) {
        r = rb_json_fail(err, s.oom ? RB_JSON_NO_MEMORY : RB_JSON_INVALID, s.err, s.err_at);
        goto done;
    }
    if (s.p[first] != '{' && (object_only || s.p[first] != '[')) {
        err->fault = r = RB_JSON_NOT_OBJECT;
        err->kind = rb_json_kind_of(s.p[first]);
        goto done;
    }
    if ((tok = rb_json_strict_tokener(max_depth)) == NULL) {
        r = rb_json_fail(err, RB_JSON_NO_MEMORY, "out of memory", 0);
        goto done;
    }
    r = rb_json_build_tree(&s, tok, first, end, out, err);
    json_tokener_free(tok);
done:
    free(s.objects);
    free(s.numbers);
    return r;
}

rb_json_fault rb_json_parse_object(const char *text, size_t len, int max_depth, json_object **out,
                                   rb_json_error *err)
{
    return parse_strict(text, len, max_depth, true, out, err);
}

rb_json_fault rb_json_parse_container(const char *text, size_t len, int max_depth, json_object **out,
                                      rb_json_error *err)
{
    return parse_strict(text, len, max_depth, false, out, err);
}

