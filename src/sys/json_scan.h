/* The strict JSON recognizer, shared by the two files of the strict reader
 * (inside the library only): sys/json.c, which checks a whole text and
 * builds json-c's tree of it, and sys/json_pieces.c, which hands a large
 * text to a callback one piece at a time (sys/json.h has the interfaces).
 * The recognizer walks RFC 8259 byte by byte; as it goes it can record
 * objects and numbers (to check json-c's tree afterwards) or every value
 * as an rb_json_node (to read values without a tree). */
#ifndef RB_SYS_JSON_SCAN_H
#define RB_SYS_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

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

/* Records the first fault (`msg`, a fixed phrase, at s->i); returns false. */
bool rb_json_scan_fail(scan *s, const char *msg);
/* Room for one more of an array of `size`-byte items (a fault when out of memory). */
bool rb_json_grow(scan *s, void **items, size_t count, size_t *cap, size_t size);
void rb_json_scan_ws(scan *s);
/* The string token at s->i (its opening quote). */
bool rb_json_scan_string(scan *s);
/* The value at s->i, inside `depth` containers; a member's value gets its
 * key token [key_begin, key_end). Records as s->record and s->flat say. */
bool rb_json_scan_value(scan *s, int depth, size_t key_begin, size_t key_end, bool has_key);
/* The text of the valid quoted string token p[0 .. len) into out, cut to
 * fit; false when out of memory. */
bool rb_json_decode_string(const unsigned char *p, size_t len, char *out, size_t size);
/* The text of the key token at p[k]: a span of p when it has no escape,
 * else decoded into *owned (free it); NULL when out of memory. */
const char *rb_json_key_text(const unsigned char *p, size_t k, size_t *len, char **owned);
/* "array", "string", "number", "boolean" or "null" from a value's first byte. */
const char *rb_json_kind_of(unsigned char first);
/* Fills err (fault, what, at) and returns fault. */
rb_json_fault rb_json_fail(rb_json_error *err, rb_json_fault fault, const char *what, size_t at);
/* json-c's tree of the container text[first .. end) that s has just
 * accepted with s->record, checked for repeated keys and numbers that
 * became infinite; `tok` is reset first. */
rb_json_fault rb_json_build_tree(scan *s, json_tokener *tok, size_t first, size_t end, json_object **out,
                                 rb_json_error *err);
/* A json-c tokener in strict mode for `max_depth` levels (NULL when out of memory). */
json_tokener *rb_json_strict_tokener(int max_depth);

#endif /* RB_SYS_JSON_SCAN_H */
