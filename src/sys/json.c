/* The strict JSON reader (sys/json.h): one for every JSON document robusta
 * reads from a file. json-c builds the tree, but it is lenient in ways a
 * file format must not be, so the text first goes through a recognizer of
 * RFC 8259 (the scan_* functions) that also checks UTF-8, \u escapes, the
 * range of integers and the nesting depth, and records, in the order they
 * appear, every object (with its member count) and every number. Walking
 * json-c's tree in the same order then finds duplicate keys (an object with
 * fewer members in the tree than in the text) and numbers that became
 * infinite. */
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

/* An object of the text. */
typedef struct scan_object {
    size_t start;              /* its '{' */
    size_t members;
    size_t key_begin, key_end; /* the quoted key it is the value of, when has_key */
    bool has_key;
    int depth;                 /* 1: the top level */
} scan_object;

typedef struct scan {
    const unsigned char *p;
    size_t n, i;
    int max_depth;
    bool record;               /* record objects and numbers (the first pass) */
    scan_object *objects;      /* in pre-order */
    size_t object_count, object_cap;
    size_t *numbers;           /* byte offset of every number, in pre-order */
    size_t number_count, number_cap;
    bool oom;
    const char *err;           /* a fixed phrase */
    size_t err_at;
    bool flat;                 /* record every value as an rb_json_node (no json-c tree) */
    rb_json_node *nodes;
    size_t node_count, node_cap;
    rb_json_error *dup;        /* flat: where a repeated key is described */
} scan;

static bool scan_fail(scan *s, const char *msg)
{
    if (s->err == NULL) {
        s->err = msg;
        s->err_at = s->i;
    }
    return false;
}

/* Makes room for one more element of an array of `size`-byte elements. */
static bool grow(scan *s, void **items, size_t count, size_t *cap, size_t size)
{
    void *bigger;
    size_t want;
    if (count < *cap)
        return true;
    want = *cap ? 2 * *cap : 64;
    bigger = realloc(*items, want * size);
    if (bigger == NULL) {
        s->oom = true;
        return scan_fail(s, "out of memory");
    }
    *items = bigger;
    *cap = want;
    return true;
}

static void scan_ws(scan *s)
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

static bool scan_string(scan *s)
{
    s->i++; /* the opening quote */
    for (;;) {
        unsigned char c;
        if (s->i >= s->n)
            return scan_fail(s, "unterminated string");
        c = s->p[s->i];
        if (c == '"') {
            s->i++;
            return true;
        }
        if (c < 0x20)
            return scan_fail(s, "control character in a string");
        if (c == '\\') {
            unsigned u, low;
            if (s->i + 1 >= s->n)
                return scan_fail(s, "unterminated string");
            switch (s->p[s->i + 1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                s->i += 2;
                break;
            case 'u':
                if (!scan_hex4(s, s->i + 2, &u))
                    return scan_fail(s, "bad \\u escape");
                if (u == 0)
                    return scan_fail(s, "\\u0000 escape (no name or value may hold a NUL)");
                if (u >= 0xdc00 && u <= 0xdfff)
                    return scan_fail(s, "unpaired surrogate in a \\u escape");
                if (u >= 0xd800 && u <= 0xdbff) {
                    if (s->i + 7 >= s->n || s->p[s->i + 6] != '\\' || s->p[s->i + 7] != 'u' ||
                        !scan_hex4(s, s->i + 8, &low) || low < 0xdc00 || low > 0xdfff)
                        return scan_fail(s, "unpaired surrogate in a \\u escape");
                    s->i += 6;
                }
                s->i += 6;
                break;
            default:
                return scan_fail(s, "bad escape in a string");
            }
            continue;
        }
        {
            size_t len = rb_utf8_char(s->p + s->i, s->n - s->i);
            if (len == 0)
                return scan_fail(s, "invalid UTF-8 in a string");
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
        if (!grow(s, (void **)&s->numbers, s->number_count, &s->number_cap, sizeof *s->numbers))
            return false;
        s->numbers[s->number_count++] = start;
    }
    if (s->p[s->i] == '-') {
        neg = true;
        s->i++;
    }
    digits_at = s->i;
    if (!is_digit(s))
        return scan_fail(s, "bad number");
    if (s->p[s->i] == '0') {
        s->i++;
        if (is_digit(s))
            return scan_fail(s, "number with a leading zero");
    } else
        while (is_digit(s))
            s->i++;
    ndigits = s->i - digits_at;
    if (s->i < s->n && s->p[s->i] == '.') {
        integer = false;
        s->i++;
        if (!is_digit(s))
            return scan_fail(s, "bad number");
        while (is_digit(s))
            s->i++;
    }
    if (s->i < s->n && (s->p[s->i] == 'e' || s->p[s->i] == 'E')) {
        integer = false;
        s->i++;
        if (s->i < s->n && (s->p[s->i] == '+' || s->p[s->i] == '-'))
            s->i++;
        if (!is_digit(s))
            return scan_fail(s, "bad number");
        while (is_digit(s))
            s->i++;
    }
    if (integer) {
        /* json-c would clamp what does not fit int64 (negative) or uint64. */
        const char *max = neg ? "9223372036854775808" : "18446744073709551615";
        size_t maxlen = strlen(max);
        if (ndigits > maxlen || (ndigits == maxlen && memcmp(s->p + digits_at, max, maxlen) > 0)) {
            s->i = start;
            return scan_fail(s, "integer out of range");
        }
    }
    return true;
}

static bool scan_value(scan *s, int depth, size_t key_begin, size_t key_end, bool has_key);

/* An object or array at `depth` enclosing containers; an object that is a
 * member's value gets that member's key. */
static bool scan_container(scan *s, int depth, size_t key_begin, size_t key_end, bool has_key)
{
    bool object = s->p[s->i] == '{';
    char close = object ? '}' : ']';
    size_t slot = 0, members = 0;
    if (depth >= s->max_depth)
        return scan_fail(s, "nesting too deep");
    if (object && s->record) {
        if (!grow(s, (void **)&s->objects, s->object_count, &s->object_cap, sizeof *s->objects))
            return false;
        slot = s->object_count++;
        s->objects[slot] = (scan_object){.start = s->i, .key_begin = key_begin, .key_end = key_end,
                                         .has_key = has_key, .depth = depth + 1};
    }
    s->i++;
    scan_ws(s);
    if (s->i < s->n && s->p[s->i] == close)
        s->i++;
    else
        for (;;) {
            size_t kb = 0, ke = 0;
            if (object) {
                if (s->i >= s->n || s->p[s->i] != '"')
                    return scan_fail(s, s->i >= s->n ? "unexpected end" : "expected a string key");
                kb = s->i;
                if (!scan_string(s))
                    return false;
                ke = s->i;
                scan_ws(s);
                if (s->i >= s->n || s->p[s->i] != ':')
                    return scan_fail(s, s->i >= s->n ? "unexpected end" : "expected ':'");
                s->i++;
                scan_ws(s);
            }
            if (!scan_value(s, depth + 1, kb, ke, object))
                return false;
            members++;
            scan_ws(s);
            if (s->i >= s->n)
                return scan_fail(s, "unexpected end");
            if (s->p[s->i] == ',') {
                s->i++;
                scan_ws(s);
                continue;
            }
            if (s->p[s->i] == close) {
                s->i++;
                break;
            }
            return scan_fail(s, object ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    if (object && s->record)
        s->objects[slot].members = members;
    return true;
}

static bool scan_literal(scan *s, const char *word)
{
    size_t len = strlen(word);
    if (s->n - s->i < len || memcmp(s->p + s->i, word, len) != 0)
        return scan_fail(s, "unexpected character");
    s->i += len;
    return true;
}

static bool scan_value_raw(scan *s, int depth, size_t key_begin, size_t key_end, bool has_key)
{
    unsigned char c;
    if (s->i >= s->n)
        return scan_fail(s, "unexpected end");
    c = s->p[s->i];
    switch (c) {
    case '{': case '[': return scan_container(s, depth, key_begin, key_end, has_key);
    case '"': return scan_string(s);
    case 't': return scan_literal(s, "true");
    case 'f': return scan_literal(s, "false");
    case 'n': return scan_literal(s, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return scan_number(s);
        return scan_fail(s, "unexpected character");
    }
}

/* ------------------------------------------------------------ flat values */

static bool decode_string(const unsigned char *p, size_t len, char *out, size_t size);

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
static const char *key_text(const unsigned char *p, size_t k, size_t *len, char **owned)
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
    if ((*owned = malloc(e - k + 1)) == NULL || !decode_string(p + k, e + 1 - k, *owned, e - k + 1)) {
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
            return scan_fail(s, "out of memory");
        }
    }
    for (size_t c = slot + 1; c < s->node_count; c = s->nodes[c].next, n++)
        if ((keys[n].text = key_text(s->p, s->nodes[c].key, &keys[n].len, &owned[n])) == NULL) {
            s->oom = true;
            unique = scan_fail(s, "out of memory");
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
            const char *ptext = key_text(s->p, s->nodes[slot].key, &plen, &pown);
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
        return scan_fail(s, "number out of range");
    }
    return true;
}

/* scan_value_raw, and in flat mode the value's node (pre-order). */
static bool scan_value(scan *s, int depth, size_t key_begin, size_t key_end, bool has_key)
{
    size_t slot;
    rb_json_node *node;
    if (!s->flat)
        return scan_value_raw(s, depth, key_begin, key_end, has_key);
    if (!grow(s, (void **)&s->nodes, s->node_count, &s->node_cap, sizeof *s->nodes))
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

size_t rb_json_count(const rb_json_node *nodes, size_t node)
{
    size_t count = 0;
    for (size_t c = node + 1; c < nodes[node].next; c = nodes[c].next)
        count++;
    return count;
}

size_t rb_json_child(const rb_json_node *nodes, size_t node, size_t index)
{
    for (size_t c = node + 1; c < nodes[node].next; c = nodes[c].next)
        if (index-- == 0)
            return c;
    return SIZE_MAX;
}

size_t rb_json_member(const rb_json_node *nodes, const char *text, size_t node, const char *key)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t want = strlen(key);
    if (nodes[node].kind != RB_JSON_KIND_OBJECT)
        return SIZE_MAX;
    for (size_t c = node + 1; c < nodes[node].next; c = nodes[c].next) {
        size_t len;
        char *owned;
        const char *k = key_text(p, nodes[c].key, &len, &owned);
        bool same = k != NULL && len == want && memcmp(k, key, len) == 0;
        free(owned);
        if (same)
            return c;
    }
    return SIZE_MAX;
}

char *rb_json_string(const rb_json_node *nodes, const char *text, size_t node)
{
    size_t len = nodes[node].end - nodes[node].start;
    char *out = malloc(len + 1);
    if (out != NULL && !decode_string((const unsigned char *)text + nodes[node].start, len, out, len + 1)) {
        free(out);
        out = NULL;
    }
    return out;
}

const char *rb_json_kind_name(rb_json_kind kind)
{
    switch (kind) {
    case RB_JSON_KIND_NULL: return "null";
    case RB_JSON_KIND_BOOL: return "a boolean";
    case RB_JSON_KIND_INT: return "an integer";
    case RB_JSON_KIND_DOUBLE: return "a number with a fraction or exponent";
    case RB_JSON_KIND_STRING: return "a string";
    case RB_JSON_KIND_ARRAY: return "an array";
    default: return "an object";
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
static bool decode_string(const unsigned char *p, size_t len, char *out, size_t size)
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
    if (obj->has_key && !decode_string(s->p + obj->key_begin, obj->key_end - obj->key_begin, err->parent,
                                       sizeof err->parent))
        return RB_JSON_NO_MEMORY;
    for (;;) { /* the text is valid: no checks needed but the closing brace */
        scan_ws(&again);
        if (again.p[again.i] == '}')
            break;
        if (!grow(&again, (void **)&keys, count, &cap, sizeof *keys))
            goto done;
        keys[count][0] = again.i;
        scan_string(&again);
        keys[count][1] = again.i;
        count++;
        scan_ws(&again);
        again.i++; /* ':' */
        scan_ws(&again);
        scan_value(&again, 0, 0, 0, false);
        scan_ws(&again);
        if (again.p[again.i] == ',')
            again.i++;
    }
    text = calloc(count ? count : 1, sizeof *text);
    if (text == NULL)
        goto done;
    for (size_t i = 0; i < count; i++) {
        if (!decode_string(s->p + keys[i][0], keys[i][1] - keys[i][0], text[i], sizeof text[i]))
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

static const char *kind_of(unsigned char first)
{
    switch (first) {
    case '[': return "array";
    case '"': return "string";
    case 't': case 'f': return "boolean";
    case 'n': return "null";
    default: return "number";
    }
}

static rb_json_fault fail(rb_json_error *err, rb_json_fault fault, const char *what, size_t at)
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
static rb_json_fault build_tree(scan *s, json_tokener *tok, size_t first, size_t end, json_object **out,
                                rb_json_error *err)
{
    json_object *root;
    walk w = {.s = s};
    rb_json_fault r;
    *out = NULL;
    if (end - first > INT_MAX)
        return fail(err, RB_JSON_TOO_LONG, "JSON text too long", first);
    json_tokener_reset(tok);
    root = json_tokener_parse_ex(tok, (const char *)s->p + first, (int)(end - first));
    if (root == NULL || !json_object_is_type(root, s->p[first] == '{' ? json_type_object : json_type_array) ||
        json_tokener_get_parse_end(tok) != end - first) {
        /* The recognizer accepted it: json-c should never disagree. */
        json_object_put(root);
        return fail(err, RB_JSON_INVALID, json_tokener_error_desc(json_tokener_get_error(tok)), first);
    }
    switch (check_tree(root, &w)) {
    case TREE_OK:
        *out = root;
        return RB_JSON_OK;
    case TREE_DUPLICATE:
        json_object_put(root);
        if (w.object >= s->object_count) /* cannot happen: the tree has no more objects than the text */
            return fail(err, RB_JSON_INVALID, "json-c and the recognizer disagree", first);
        r = name_duplicate(s, &s->objects[w.object], err);
        if (r != RB_JSON_DUPLICATE)
            return fail(err, r, "out of memory", 0);
        err->fault = r;
        err->at = s->objects[w.object].start;
        snprintf(err->what, sizeof err->what, "duplicate key '%s' in the object", err->key);
        return r;
    case TREE_NONFINITE:
    default:
        json_object_put(root);
        return fail(err, RB_JSON_INVALID, "number out of range", s->numbers[w.number]);
    }
}

static json_tokener *strict_tokener(int max_depth)
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
        return fail(err, RB_JSON_INVALID, "NUL byte", (size_t)((const char *)nul - text));
    scan_ws(&s);
    first = s.i;
    if (scan_value(&s, 0, 0, 0, false)) {
        end = s.i;
        scan_ws(&s);
        if (s.i < s.n)
            scan_fail(&s, "unexpected bytes after the JSON value");
    }
    if (s.err != NULL) {
        r = fail(err, s.oom ? RB_JSON_NO_MEMORY : RB_JSON_INVALID, s.err, s.err_at);
        goto done;
    }
    if (s.p[first] != '{' && (object_only || s.p[first] != '[')) {
        err->fault = r = RB_JSON_NOT_OBJECT;
        err->kind = kind_of(s.p[first]);
        goto done;
    }
    if ((tok = strict_tokener(max_depth)) == NULL) {
        r = fail(err, RB_JSON_NO_MEMORY, "out of memory", 0);
        goto done;
    }
    r = build_tree(&s, tok, first, end, out, err);
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

/* ------------------------------------------------------------ pieces */

typedef struct pieces {
    scan s;
    bool nodes;  /* hand rb_json_node arrays instead of json-c trees */
    json_tokener *tok;
    rb_json_piece_fn fn;
    void *user;
    rb_json_error *err;
    char **keys; /* the top-level object's keys so far, decoded */
    size_t key_count, key_cap;
} pieces;

/* A scalar piece p[start .. end), valid JSON: parsed from a copy with a
 * space after it (json-c cannot tell where a number at the end of its
 * input stops). */
static rb_json_fault parse_scalar(pieces *pc, size_t start, size_t end, json_object **out)
{
    char *copy = malloc(end - start + 2);
    json_object *o;
    *out = NULL;
    if (copy == NULL)
        return fail(pc->err, RB_JSON_NO_MEMORY, "out of memory", 0);
    if (end - start > INT_MAX - 1) {
        free(copy);
        return fail(pc->err, RB_JSON_TOO_LONG, "JSON text too long", start);
    }
    memcpy(copy, pc->s.p + start, end - start);
    copy[end - start] = ' ';
    copy[end - start + 1] = '\0';
    json_tokener_reset(pc->tok);
    o = json_tokener_parse_ex(pc->tok, copy, (int)(end - start + 1));
    free(copy);
    if (o == NULL && pc->s.p[start] != 'n')
        return fail(pc->err, RB_JSON_INVALID, json_tokener_error_desc(json_tokener_get_error(pc->tok)), start);
    if (json_object_is_type(o, json_type_double) && !isfinite(json_object_get_double(o))) {
        json_object_put(o);
        return fail(pc->err, RB_JSON_INVALID, "number out of range", start);
    }
    *out = o;
    return RB_JSON_OK;
}

/* The value at the scanner's position, `depth` containers deep: checked,
 * parsed into its own tree and handed to fn. The scanner records the
 * piece's objects and numbers afresh (its buffers are kept), and one
 * tokener serves every piece. */
static rb_json_fault hand_piece(pieces *pc, int depth, rb_json_event event, const char *key, size_t index)
{
    size_t start = pc->s.i;
    json_object *o = NULL;
    rb_json_fault r;
    rb_json_piece piece = {.event = event, .key = key, .index = index, .at = start};
    bool more;
    if (pc->nodes) {
        pc->s.node_count = 0;
        pc->s.flat = true;
        pc->s.dup = pc->err;
        if (!scan_value(&pc->s, depth, 0, 0, false)) {
            pc->s.flat = false;
            if (pc->err->fault == RB_JSON_DUPLICATE)
                return RB_JSON_DUPLICATE;
            return fail(pc->err, pc->s.oom ? RB_JSON_NO_MEMORY : RB_JSON_INVALID, pc->s.err, pc->s.err_at);
        }
        pc->s.flat = false;
        piece.nodes = pc->s.nodes;
        piece.text = (const char *)pc->s.p;
        more = pc->fn(pc->user, &piece);
        return more ? RB_JSON_OK : (pc->err->fault = RB_JSON_STOPPED);
    }
    pc->s.object_count = pc->s.number_count = 0;
    pc->s.record = true;
    if (!scan_value(&pc->s, depth, 0, 0, false))
        return fail(pc->err, pc->s.oom ? RB_JSON_NO_MEMORY : RB_JSON_INVALID, pc->s.err, pc->s.err_at);
    pc->s.record = false;
    if (pc->s.p[start] == '{' || pc->s.p[start] == '[')
        r = build_tree(&pc->s, pc->tok, start, pc->s.i, &o, pc->err);
    else
        r = parse_scalar(pc, start, pc->s.i, &o);
    if (r != RB_JSON_OK)
        return r;
    piece.value = o;
    more = pc->fn(pc->user, &piece);
    json_object_put(o);
    return more ? RB_JSON_OK : (pc->err->fault = RB_JSON_STOPPED);
}

/* The array at the scanner's position, `depth` containers around it,
 * element by element. */
static rb_json_fault hand_array(pieces *pc, int depth, const char *key)
{
    rb_json_piece piece = {.event = RB_JSON_BEGIN, .key = key, .at = pc->s.i};
    size_t count = 0;
    rb_json_fault r;
    if (depth >= pc->s.max_depth)
        return fail(pc->err, RB_JSON_INVALID, "nesting too deep", pc->s.i);
    if (!pc->fn(pc->user, &piece))
        return pc->err->fault = RB_JSON_STOPPED;
    pc->s.i++;
    scan_ws(&pc->s);
    if (pc->s.i < pc->s.n && pc->s.p[pc->s.i] == ']')
        pc->s.i++;
    else
        for (;;) {
            if ((r = hand_piece(pc, depth + 1, RB_JSON_ELEMENT, key, count)) != RB_JSON_OK)
                return r;
            count++;
            scan_ws(&pc->s);
            if (pc->s.i < pc->s.n && pc->s.p[pc->s.i] == ',') {
                pc->s.i++;
                scan_ws(&pc->s);
                continue;
            }
            if (pc->s.i < pc->s.n && pc->s.p[pc->s.i] == ']') {
                pc->s.i++;
                break;
            }
            scan_fail(&pc->s, pc->s.i >= pc->s.n ? "unexpected end" : "expected ',' or ']'");
            return fail(pc->err, RB_JSON_INVALID, pc->s.err, pc->s.err_at);
        }
    piece = (rb_json_piece){.event = RB_JSON_END, .key = key, .index = count, .at = pc->s.i};
    return pc->fn(pc->user, &piece) ? RB_JSON_OK : (pc->err->fault = RB_JSON_STOPPED);
}

/* The top-level object's members; `start` is its '{'. */
static rb_json_fault hand_object(pieces *pc, size_t start)
{
    rb_json_fault r;
    pc->s.i++;
    scan_ws(&pc->s);
    if (pc->s.i < pc->s.n && pc->s.p[pc->s.i] == '}') {
        pc->s.i++;
        return RB_JSON_OK;
    }
    for (;;) {
        size_t kb = pc->s.i;
        char *key;
        if (pc->s.i >= pc->s.n || pc->s.p[pc->s.i] != '"') {
            scan_fail(&pc->s, pc->s.i >= pc->s.n ? "unexpected end" : "expected a string key");
            return fail(pc->err, RB_JSON_INVALID, pc->s.err, pc->s.err_at);
        }
        if (!scan_string(&pc->s))
            return fail(pc->err, RB_JSON_INVALID, pc->s.err, pc->s.err_at);
        if (!grow(&pc->s, (void **)&pc->keys, pc->key_count, &pc->key_cap, sizeof *pc->keys) ||
            (key = malloc(pc->s.i - kb)) == NULL)
            return fail(pc->err, RB_JSON_NO_MEMORY, "out of memory", 0);
        pc->keys[pc->key_count++] = key;
        if (!decode_string(pc->s.p + kb, pc->s.i - kb, key, pc->s.i - kb))
            return fail(pc->err, RB_JSON_NO_MEMORY, "out of memory", 0);
        for (size_t k = 0; k + 1 < pc->key_count; k++)
            if (strcmp(pc->keys[k], key) == 0) {
                pc->err->fault = RB_JSON_DUPLICATE;
                pc->err->at = start;
                pc->err->depth = 1;
                snprintf(pc->err->key, sizeof pc->err->key, "%s", key);
                snprintf(pc->err->what, sizeof pc->err->what, "duplicate key '%s' in the object", pc->err->key);
                return RB_JSON_DUPLICATE;
            }
        scan_ws(&pc->s);
        if (pc->s.i >= pc->s.n || pc->s.p[pc->s.i] != ':') {
            scan_fail(&pc->s, pc->s.i >= pc->s.n ? "unexpected end" : "expected ':'");
            return fail(pc->err, RB_JSON_INVALID, pc->s.err, pc->s.err_at);
        }
        pc->s.i++;
        scan_ws(&pc->s);
        if (pc->s.i < pc->s.n && pc->s.p[pc->s.i] == '[')
            r = hand_array(pc, 1, key);
        else
            r = hand_piece(pc, 1, RB_JSON_MEMBER, key, 0);
        if (r != RB_JSON_OK)
            return r;
        scan_ws(&pc->s);
        if (pc->s.i < pc->s.n && pc->s.p[pc->s.i] == ',') {
            pc->s.i++;
            scan_ws(&pc->s);
            continue;
        }
        if (pc->s.i < pc->s.n && pc->s.p[pc->s.i] == '}') {
            pc->s.i++;
            return RB_JSON_OK;
        }
        scan_fail(&pc->s, pc->s.i >= pc->s.n ? "unexpected end" : "expected ',' or '}'");
        return fail(pc->err, RB_JSON_INVALID, pc->s.err, pc->s.err_at);
    }
}

rb_json_fault rb_json_parse_pieces(const char *text, size_t len, int max_depth, bool nodes, rb_json_piece_fn fn,
                                   void *user, rb_json_error *err)
{
    pieces pc = {.s = {.p = (const unsigned char *)text, .n = len, .max_depth = max_depth}, .nodes = nodes, .fn = fn,
                 .user = user, .err = err};
    const void *nul = memchr(text, '\0', len);
    rb_json_fault r;
    size_t first;

    memset(err, 0, sizeof *err);
    if (nul != NULL)
        return fail(err, RB_JSON_INVALID, "NUL byte", (size_t)((const char *)nul - text));
    scan_ws(&pc.s);
    first = pc.s.i;
    if (first >= len)
        return fail(err, RB_JSON_INVALID, "unexpected end", first);
    if (text[first] != '{' && text[first] != '[') {
        if (!scan_value(&pc.s, 0, 0, 0, false))
            return fail(err, RB_JSON_INVALID, pc.s.err, pc.s.err_at);
        scan_ws(&pc.s);
        if (pc.s.i < len)
            return fail(err, RB_JSON_INVALID, "unexpected bytes after the JSON value", pc.s.i);
        err->fault = RB_JSON_NOT_OBJECT;
        err->kind = kind_of(pc.s.p[first]);
        return RB_JSON_NOT_OBJECT;
    }
    if ((pc.tok = strict_tokener(max_depth)) == NULL)
        return fail(err, RB_JSON_NO_MEMORY, "out of memory", 0);
    if (max_depth < 1)
        r = fail(err, RB_JSON_INVALID, "nesting too deep", first);
    else
        r = text[first] == '[' ? hand_array(&pc, 0, NULL) : hand_object(&pc, first);
    if (r == RB_JSON_OK) {
        scan_ws(&pc.s);
        if (pc.s.i < len)
            r = fail(err, RB_JSON_INVALID, "unexpected bytes after the JSON value", pc.s.i);
    }
    json_tokener_free(pc.tok);
    free(pc.s.objects);
    free(pc.s.numbers);
    free(pc.s.nodes);
    for (size_t k = 0; k < pc.key_count; k++)
        free(pc.keys[k]);
    free(pc.keys);
    return r;
}
