/* The strict JSON reader for large texts (sys/json.h, "large files"): the
 * top-level arrays handed to a callback one element at a time, as json-c
 * trees or as the recognizer's nodes, and the accessors of nodes. The
 * recognizer and the tree checks are sys/json.c's (sys/json_scan.h). */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "sys/json.h"
#include "sys/json_scan.h"

/* ------------------------------------------------------------ nodes */

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
        const char *k = rb_json_key_text(p, nodes[c].key, &len, &owned);
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
    if (out != NULL && !rb_json_decode_string((const unsigned char *)text + nodes[node].start, len, out, len + 1)) {
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
        return rb_json_fail(pc->err, RB_JSON_NO_MEMORY, "out of memory", 0);
    if (end - start > INT_MAX - 1) {
        free(copy);
        return rb_json_fail(pc->err, RB_JSON_TOO_LONG, "JSON text too long", start);
    }
    memcpy(copy, pc->s.p + start, end - start);
    copy[end - start] = ' ';
    copy[end - start + 1] = '\0';
    json_tokener_reset(pc->tok);
    o = json_tokener_parse_ex(pc->tok, copy, (int)(end - start + 1));
    free(copy);
    if (o == NULL && pc->s.p[start] != 'n')
        return rb_json_fail(pc->err, RB_JSON_INVALID, json_tokener_error_desc(json_tokener_get_error(pc->tok)), start);
    if (json_object_is_type(o, json_type_double) && !isfinite(json_object_get_double(o))) {
        json_object_put(o);
        return rb_json_fail(pc->err, RB_JSON_INVALID, "number out of range", start);
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
        if (!rb_json_scan_value(&pc->s, depth, 0, 0, false)) {
            pc->s.flat = false;
            if (pc->err->fault == RB_JSON_DUPLICATE)
                return RB_JSON_DUPLICATE;
            return rb_json_fail(pc->err, pc->s.oom ? RB_JSON_NO_MEMORY : RB_JSON_INVALID, pc->s.err, pc->s.err_at);
        }
        pc->s.flat = false;
        piece.nodes = pc->s.nodes;
        piece.text = (const char *)pc->s.p;
        more = pc->fn(pc->user, &piece);
        return more ? RB_JSON_OK : (pc->err->fault = RB_JSON_STOPPED);
    }
    pc->s.object_count = pc->s.number_count = 0;
    pc->s.record = true;
    if (!rb_json_scan_value(&pc->s, depth, 0, 0, false))
        return rb_json_fail(pc->err, pc->s.oom ? RB_JSON_NO_MEMORY : RB_JSON_INVALID, pc->s.err, pc->s.err_at);
    pc->s.record = false;
    if (pc->s.p[start] == '{' || pc->s.p[start] == '[')
        r = rb_json_build_tree(&pc->s, pc->tok, start, pc->s.i, &o, pc->err);
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
        return rb_json_fail(pc->err, RB_JSON_INVALID, "nesting too deep", pc->s.i);
    if (!pc->fn(pc->user, &piece))
        return pc->err->fault = RB_JSON_STOPPED;
    pc->s.i++;
    rb_json_scan_ws(&pc->s);
    if (pc->s.i < pc->s.n && pc->s.p[pc->s.i] == ']')
        pc->s.i++;
    else
        for (;;) {
            if ((r = hand_piece(pc, depth + 1, RB_JSON_ELEMENT, key, count)) != RB_JSON_OK)
                return r;
            count++;
            rb_json_scan_ws(&pc->s);
            if (pc->s.i < pc->s.n && pc->s.p[pc->s.i] == ',') {
                pc->s.i++;
                rb_json_scan_ws(&pc->s);
                continue;
            }
            if (pc->s.i < pc->s.n && pc->s.p[pc->s.i] == ']') {
                pc->s.i++;
                break;
            }
            rb_json_scan_fail(&pc->s, pc->s.i >= pc->s.n ? "unexpected end" : "expected ',' or ']'");
            return rb_json_fail(pc->err, RB_JSON_INVALID, pc->s.err, pc->s.err_at);
        }
    piece = (rb_json_piece){.event = RB_JSON_END, .key = key, .index = count, .at = pc->s.i};
    return pc->fn(pc->user, &piece) ? RB_JSON_OK : (pc->err->fault = RB_JSON_STOPPED);
}

/* The top-level object's members; `start` is its '{'. */
static rb_json_fault hand_object(pieces *pc, size_t start)
{
    rb_json_fault r;
    pc->s.i++;
    rb_json_scan_ws(&pc->s);
    if (pc->s.i < pc->s.n && pc->s.p[pc->s.i] == '}') {
        pc->s.i++;
        return RB_JSON_OK;
    }
    for (;;) {
        size_t kb = pc->s.i;
        char *key;
        if (pc->s.i >= pc->s.n || pc->s.p[pc->s.i] != '"') {
            rb_json_scan_fail(&pc->s, pc->s.i >= pc->s.n ? "unexpected end" : "expected a string key");
            return rb_json_fail(pc->err, RB_JSON_INVALID, pc->s.err, pc->s.err_at);
        }
        if (!rb_json_scan_string(&pc->s))
            return rb_json_fail(pc->err, RB_JSON_INVALID, pc->s.err, pc->s.err_at);
        if (!rb_json_grow(&pc->s, (void **)&pc->keys, pc->key_count, &pc->key_cap, sizeof *pc->keys) ||
            (key = malloc(pc->s.i - kb)) == NULL)
            return rb_json_fail(pc->err, RB_JSON_NO_MEMORY, "out of memory", 0);
        pc->keys[pc->key_count++] = key;
        if (!rb_json_decode_string(pc->s.p + kb, pc->s.i - kb, key, pc->s.i - kb))
            return rb_json_fail(pc->err, RB_JSON_NO_MEMORY, "out of memory", 0);
        for (size_t k = 0; k + 1 < pc->key_count; k++)
            if (strcmp(pc->keys[k], key) == 0) {
                pc->err->fault = RB_JSON_DUPLICATE;
                pc->err->at = start;
                pc->err->depth = 1;
                snprintf(pc->err->key, sizeof pc->err->key, "%s", key);
                snprintf(pc->err->what, sizeof pc->err->what, "duplicate key '%s' in the object", pc->err->key);
                return RB_JSON_DUPLICATE;
            }
        rb_json_scan_ws(&pc->s);
        if (pc->s.i >= pc->s.n || pc->s.p[pc->s.i] != ':') {
            rb_json_scan_fail(&pc->s, pc->s.i >= pc->s.n ? "unexpected end" : "expected ':'");
            return rb_json_fail(pc->err, RB_JSON_INVALID, pc->s.err, pc->s.err_at);
        }
        pc->s.i++;
        rb_json_scan_ws(&pc->s);
        if (pc->s.i < pc->s.n && pc->s.p[pc->s.i] == '[')
            r = hand_array(pc, 1, key);
        else
            r = hand_piece(pc, 1, RB_JSON_MEMBER, key, 0);
        if (r != RB_JSON_OK)
            return r;
        rb_json_scan_ws(&pc->s);
        if (pc->s.i < pc->s.n && pc->s.p[pc->s.i] == ',') {
            pc->s.i++;
            rb_json_scan_ws(&pc->s);
            continue;
        }
        if (pc->s.i < pc->s.n && pc->s.p[pc->s.i] == '}') {
            pc->s.i++;
            return RB_JSON_OK;
        }
        rb_json_scan_fail(&pc->s, pc->s.i >= pc->s.n ? "unexpected end" : "expected ',' or '}'");
        return rb_json_fail(pc->err, RB_JSON_INVALID, pc->s.err, pc->s.err_at);
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
        return rb_json_fail(err, RB_JSON_INVALID, "NUL byte", (size_t)((const char *)nul - text));
    rb_json_scan_ws(&pc.s);
    first = pc.s.i;
    if (first >= len)
        return rb_json_fail(err, RB_JSON_INVALID, "unexpected end", first);
    if (text[first] != '{' && text[first] != '[') {
        if (!rb_json_scan_value(&pc.s, 0, 0, 0, false))
            return rb_json_fail(err, RB_JSON_INVALID, pc.s.err, pc.s.err_at);
        rb_json_scan_ws(&pc.s);
        if (pc.s.i < len)
            return rb_json_fail(err, RB_JSON_INVALID, "unexpected bytes after the JSON value", pc.s.i);
        err->fault = RB_JSON_NOT_OBJECT;
        err->kind = rb_json_kind_of(pc.s.p[first]);
        return RB_JSON_NOT_OBJECT;
    }
    if ((pc.tok = rb_json_strict_tokener(max_depth)) == NULL)
        return rb_json_fail(err, RB_JSON_NO_MEMORY, "out of memory", 0);
    if (max_depth < 1)
        r = rb_json_fail(err, RB_JSON_INVALID, "nesting too deep", first);
    else
        r = text[first] == '[' ? hand_array(&pc, 0, NULL) : hand_object(&pc, first);
    if (r == RB_JSON_OK) {
        rb_json_scan_ws(&pc.s);
        if (pc.s.i < len)
            r = rb_json_fail(err, RB_JSON_INVALID, "unexpected bytes after the JSON value", pc.s.i);
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
