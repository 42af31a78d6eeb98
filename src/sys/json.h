/* JSON in robusta, written and read.
 *
 * Writing: JSON has no NaN or infinity, and json-c writes them as the bare
 * words NaN and Infinity, which strict parsers (Python's json with
 * parse_constant, jq, JavaScript) refuse. Every double robusta writes as
 * JSON goes through rb_json_number or rb_json_number_text, so a non-finite
 * value (a missing figure, a diverged loss) becomes null. These two are
 * inline so that the command (which sees only the library's API) shares
 * them.
 *
 * Reading files: rb_json_parse_object and rb_json_parse_container
 * (src/sys/json.c, inside the library only) are the one strict reader of
 * JSON that comes from files (checkpoint headers, safetensors headers,
 * COCO annotations and results). */
#ifndef RB_SYS_JSON_H
#define RB_SYS_JSON_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

/* A JSON number, or NULL (which json-c writes as null) when `v` is not finite. */
static inline json_object *rb_json_number(double v)
{
    return isfinite(v) ? json_object_new_double(v) : NULL;
}

/* `v` as JSON text for hand-written JSON: "%.9g", or "null" when not finite.
 * Returns `buf`. */
static inline const char *rb_json_number_text(char *buf, size_t size, double v)
{
    if (isfinite(v))
        snprintf(buf, size, "%.9g", v);
    else
        snprintf(buf, size, "null");
    return buf;
}

/* ------------------------------------------------------------ strict reading */

/* What rb_json_parse_object found. */
typedef enum rb_json_fault {
    RB_JSON_OK = 0,
    RB_JSON_INVALID,    /* not strict JSON: `what` at byte `at` */
    RB_JSON_DUPLICATE,  /* an object repeats a key: `what` at `at` (the object's '{'), and key, parent, depth */
    RB_JSON_NOT_OBJECT, /* valid JSON, but not an object (or container): `kind` */
    RB_JSON_TOO_LONG,   /* more than INT_MAX bytes, json-c's limit */
    RB_JSON_NO_MEMORY,
    RB_JSON_STOPPED     /* rb_json_parse_pieces: the callback said stop */
} rb_json_fault;

typedef struct rb_json_error {
    rb_json_fault fault;
    char what[192];     /* INVALID, DUPLICATE: what is wrong, a phrase without the place
                           ("unexpected end", "duplicate key 'a' in the object") */
    size_t at;          /* INVALID, DUPLICATE: its byte offset in the text */
    const char *kind;   /* NOT_OBJECT: "array", "string", "number", "boolean" or "null" */
    /* DUPLICATE: the repeated key and, when the object holding it is the
     * value of a member of another object, that member's key (parent_key
     * false otherwise); depth 1 is the top-level object. Both are cut to fit. */
    char key[128], parent[128];
    bool parent_key;
    int depth;
} rb_json_error;

/* Parses text[0 .. len) as one JSON object, strictly: RFC 8259 and nothing
 * more (json-c alone takes single quotes, NaN, comments, trailing commas,
 * clamps integers that overflow, and keeps the last of duplicate keys), and
 * nothing that would not read back exactly:
 *   - no NUL byte anywhere, not even as a \u0000 escape;
 *   - strings of well-formed UTF-8 (no overlong forms, surrogates or values
 *     past U+10FFFF), \u escapes with paired surrogates;
 *   - numbers without leading zeros; integers that fit int64 (negative) or
 *     uint64; other numbers finite as doubles;
 *   - at most `max_depth` containers nested (the top-level object counts);
 *   - no key twice in an object (compared after unescaping);
 *   - only whitespace (space, tab, LF, CR) around the value.
 * On success *out is the object (json_object_put it) and RB_JSON_OK is
 * returned; otherwise *out is NULL and err (never NULL) says what. A NUL
 * byte is reported first; then the first fault in the text, except that
 * duplicate keys and numbers that overflow to infinity are looked for once
 * the whole text is otherwise valid (the first of them in the text is
 * reported). */
rb_json_fault rb_json_parse_object(const char *text, size_t len, int max_depth, json_object **out,
                                   rb_json_error *err);
/* rb_json_parse_object, but the top-level value may also be an array (a
 * COCO results file is one); a string, number, boolean or null there is
 * RB_JSON_NOT_OBJECT, with `kind`. */
rb_json_fault rb_json_parse_container(const char *text, size_t len, int max_depth, json_object **out,
                                      rb_json_error *err);

/* ------------------------------------------------------------ large files */

/* A value as the strict reader recorded it, for reading without a json-c
 * tree (rb_json_parse_pieces with `nodes`): a piece is an array of these in
 * pre-order, its first the piece itself. */
typedef enum rb_json_kind {
    RB_JSON_KIND_NULL,
    RB_JSON_KIND_BOOL,
    RB_JSON_KIND_INT,    /* no fraction or exponent */
    RB_JSON_KIND_DOUBLE,
    RB_JSON_KIND_STRING,
    RB_JSON_KIND_ARRAY,
    RB_JSON_KIND_OBJECT
} rb_json_kind;

typedef struct rb_json_node {
    rb_json_kind kind;
    bool boolean;        /* BOOL */
    bool big;            /* INT above INT64_MAX: integer is INT64_MAX, big_value the value */
    int64_t integer;     /* INT */
    uint64_t big_value;
    double number;       /* INT and DOUBLE, as json_object_get_double would give it (finite) */
    size_t start, end;   /* the value's bytes in the text */
    size_t key;          /* a member's key token (its opening quote), else SIZE_MAX */
    size_t next;         /* the node after this one's subtree */
} rb_json_node;

/* The member `key` of object node `node`, an element of array or object
 * node `node` by index, how many it has: node indices, SIZE_MAX when
 * absent (or `node` is not an object, for rb_json_member). */
size_t rb_json_member(const rb_json_node *nodes, const char *text, size_t node, const char *key);
size_t rb_json_child(const rb_json_node *nodes, size_t node, size_t index);
size_t rb_json_count(const rb_json_node *nodes, size_t node);
/* A string node's text, unescaped, malloc'd (NULL when out of memory). */
char *rb_json_string(const rb_json_node *nodes, const char *text, size_t node);
/* "null", "a boolean", "an integer", "a number with a fraction or
 * exponent", "a string", "an array", "an object" (as json-c's types). */
const char *rb_json_kind_name(rb_json_kind kind);

/* What rb_json_parse_pieces hands its callback, in text order. */
typedef enum rb_json_event {
    RB_JSON_BEGIN,   /* an array starts: the top-level one (key NULL) or a member's */
    RB_JSON_ELEMENT, /* one element of that array: value, index */
    RB_JSON_END,     /* the array ends: index is its length */
    RB_JSON_MEMBER   /* a top-level member whose value is not an array: value */
} rb_json_event;

typedef struct rb_json_piece {
    rb_json_event event;
    const char *key;    /* the top-level member's key; NULL inside a top-level array */
    size_t index;
    json_object *value; /* ELEMENT, MEMBER: its own tree (NULL for null), freed after the call */
    size_t at;          /* the piece's byte offset in the text */
    /* With `nodes`, instead of value: the piece as nodes (the piece is node
     * 0), valid during the call, and the text they point into. */
    const rb_json_node *nodes;
    const char *text;
} rb_json_piece;

/* Returns false to stop. */
typedef bool (*rb_json_piece_fn)(void *user, const rb_json_piece *piece);

/* The strict reader for texts too large for one json-c tree (COCO's
 * annotation files run from 25 MB to 450 MB, and json-c spends about 20
 * times the text's size on a tree of small objects): the top-level array,
 * or the arrays that are values of the top-level object's members, are
 * handed to `fn` one element at a time, each as its own tree that is freed
 * when fn returns; other top-level members come whole. Every rule of
 * rb_json_parse_object holds (nesting counted from the top level), but the
 * text is checked as it is read: fn may have seen the pieces before a
 * fault, which is then the first in text order (a duplicate key too).
 * A string, number, boolean or null at the top level is RB_JSON_NOT_OBJECT;
 * RB_JSON_STOPPED when fn returned false. With `nodes`, pieces come as
 * rb_json_node arrays (read with rb_json_member and the others) and no
 * json-c tree is built: about twice as fast, for readers of large files. */
rb_json_fault rb_json_parse_pieces(const char *text, size_t len, int max_depth, bool nodes, rb_json_piece_fn fn,
                                   void *user, rb_json_error *err);

#endif /* RB_SYS_JSON_H */
