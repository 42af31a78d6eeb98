/* The strict JSON reader (src/sys/json.c, rb_json_parse_object), on its own:
 * it is internal to the library, so this suite compiles it in. The
 * checkpoint and safetensors suites check the messages each format builds
 * from it; the fuzz replays run it on mutated headers. */
#include "config.h"

#include <json-c/json.h>

#include "sys/json.h"
#include "testutil.h"

/* Parses `text` (strlen) with max_depth `depth`; checks the fault, and for
 * INVALID / DUPLICATE the phrase and the byte. */
static void expect(const char *text, int depth, rb_json_fault fault, const char *what, size_t at)
{
    json_object *o = (json_object *)&o; /* must be reset */
    rb_json_error err;
    rb_json_fault r = rb_json_parse_object(text, strlen(text), depth, &o, &err);
    ck_assert_msg(r == fault, "%s: fault %d, expected %d (%s at %zu)", text, (int)r, (int)fault, err.what, err.at);
    if (fault == RB_JSON_OK) {
        ck_assert_ptr_nonnull(o);
        ck_assert(json_object_is_type(o, json_type_object));
        json_object_put(o);
        return;
    }
    ck_assert_ptr_null(o);
    ck_assert_int_eq(err.fault, fault);
    if (what != NULL) {
        ck_assert_str_eq(err.what, what);
        ck_assert_uint_eq(err.at, at);
    }
}

START_TEST(valid_objects_parse)
{
    json_object *o = NULL, *v;
    rb_json_error err;
    const char *doc = " \t\r\n{\"a\": [1, -0, 0.5e-3, true, false, null], \"b\": {\"\\u00e9\\ud83d\\ude00\": \"\xc3\xa9\"}}\n ";
    ck_assert_int_eq(rb_json_parse_object(doc, strlen(doc), 8, &o, &err), RB_JSON_OK);
    ck_assert(json_object_object_get_ex(o, "b", &v));
    /* the escapes decode to the same UTF-8 as the raw bytes would */
    ck_assert(json_object_object_get_ex(v, "\xc3\xa9\xf0\x9f\x98\x80", NULL));
    json_object_put(o);
    expect("{}", 1, RB_JSON_OK, NULL, 0);
    /* the integer limits: int64's least, uint64's greatest */
    expect("{\"a\":-9223372036854775808,\"b\":18446744073709551615}", 2, RB_JSON_OK, NULL, 0);
    /* 1e308 is a finite double, 1e-400 underflows to 0 (finite) */
    expect("{\"a\":1e308,\"b\":1e-400}", 2, RB_JSON_OK, NULL, 0);
}
END_TEST

START_TEST(depth_counts_containers)
{
    /* three containers: {, [, { */
    expect("{\"a\":[{\"b\":1}]}", 3, RB_JSON_OK, NULL, 0);
    /* the third container opens at byte 6 */
    expect("{\"a\":[{\"b\":1}]}", 2, RB_JSON_INVALID, "nesting too deep", 6);
    expect("{\"a\":[[]]}", 2, RB_JSON_INVALID, "nesting too deep", 6);
    expect("{}", 0, RB_JSON_INVALID, "nesting too deep", 0);
}
END_TEST

START_TEST(numbers_are_exact_or_refused)
{
    expect("{\"a\":18446744073709551616}", 2, RB_JSON_INVALID, "integer out of range", 5);
    expect("{\"a\":-9223372036854775809}", 2, RB_JSON_INVALID, "integer out of range", 5);
    /* found after the syntax: the number's own byte */
    expect("{\"a\":[1, 2, 1e999]}", 2, RB_JSON_INVALID, "number out of range", 12);
    expect("{\"a\":-1e999}", 2, RB_JSON_INVALID, "number out of range", 5);
    expect("{\"a\":00}", 2, RB_JSON_INVALID, "number with a leading zero", 6);
    expect("{\"a\":-01}", 2, RB_JSON_INVALID, "number with a leading zero", 7);
    expect("{\"a\":1.}", 2, RB_JSON_INVALID, "bad number", 7);
    expect("{\"a\":.5}", 2, RB_JSON_INVALID, "unexpected character", 5);
    expect("{\"a\":1e}", 2, RB_JSON_INVALID, "bad number", 7);
    expect("{\"a\":+1}", 2, RB_JSON_INVALID, "unexpected character", 5);
    expect("{\"a\":Infinity}", 2, RB_JSON_INVALID, "unexpected character", 5);
}
END_TEST

START_TEST(strings_hold_no_nul_and_only_utf8)
{
    char nul[] = "{\"a\":\"x?\"}";
    nul[7] = '\0';
    {
        json_object *o = NULL;
        rb_json_error err;
        ck_assert_int_eq(rb_json_parse_object(nul, sizeof nul - 1, 2, &o, &err), RB_JSON_INVALID);
        ck_assert_str_eq(err.what, "NUL byte");
        ck_assert_uint_eq(err.at, 7);
    }
    expect("{\"a\":\"\\u0000\"}", 2, RB_JSON_INVALID, "\\u0000 escape (no name or value may hold a NUL)", 6);
    expect("{\"a\":\"\\ud83d\"}", 2, RB_JSON_INVALID, "unpaired surrogate in a \\u escape", 6);
    expect("{\"a\":\"\\ude00\\ud83d\"}", 2, RB_JSON_INVALID, "unpaired surrogate in a \\u escape", 6);
    expect("{\"a\":\"\\u00g0\"}", 2, RB_JSON_INVALID, "bad \\u escape", 6);
    /* an overlong '/' (C0 AF) and a UTF-8-encoded surrogate (ED A0 80) */
    expect("{\"a\":\"\xc0\xaf\"}", 2, RB_JSON_INVALID, "invalid UTF-8 in a string", 6);
    expect("{\"\xed\xa0\x80\":1}", 2, RB_JSON_INVALID, "invalid UTF-8 in a string", 2);
    expect("{\"a\":\"x\ny\"}", 2, RB_JSON_INVALID, "control character in a string", 7);
    expect("{\"a\":'x'}", 2, RB_JSON_INVALID, "unexpected character", 5);
    expect("{\"a\":\"x", 2, RB_JSON_INVALID, "unterminated string", 7);
}
END_TEST

START_TEST(structure_and_trailing_bytes)
{
    expect("", 2, RB_JSON_INVALID, "unexpected end", 0);
    expect("   ", 2, RB_JSON_INVALID, "unexpected end", 3);
    expect("{\"a\":1,}", 2, RB_JSON_INVALID, "expected a string key", 7);
    expect("{\"a\" 1}", 2, RB_JSON_INVALID, "expected ':'", 5);
    expect("{\"a\":[1 2]}", 2, RB_JSON_INVALID, "expected ',' or ']'", 8);
    expect("{\"a\":1 \"b\":2}", 2, RB_JSON_INVALID, "expected ',' or '}'", 7);
    expect("{} {}", 2, RB_JSON_INVALID, "unexpected bytes after the JSON value", 3);
    expect("{}/* c */", 2, RB_JSON_INVALID, "unexpected bytes after the JSON value", 2);
    expect("{}\f", 2, RB_JSON_INVALID, "unexpected bytes after the JSON value", 2);
}
END_TEST

START_TEST(other_values_are_not_objects)
{
    static const char *const texts[] = {"[]", " \"{}\" ", "-1.5", "true", "false", "null"};
    static const char *const kinds[] = {"array", "string", "number", "boolean", "boolean", "null"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_object *o = NULL;
        rb_json_error err;
        ck_assert_int_eq(rb_json_parse_object(texts[i], strlen(texts[i]), 4, &o, &err), RB_JSON_NOT_OBJECT);
        ck_assert_ptr_null(o);
        ck_assert_str_eq(err.kind, kinds[i]);
    }
}
END_TEST

static rb_json_fault parse_container(const char *text, int depth, json_object **o, rb_json_error *err)
{
    return rb_json_parse_container(text, strlen(text), depth, o, err);
}

/* rb_json_parse_container: an array at the top level too, with the same
 * strictness inside it; scalars are still refused with their kind. */
START_TEST(containers_take_arrays_and_objects)
{
    static const char *const scalars[] = {" \"[]\" ", "-1.5", "true", "null"};
    static const char *const kinds[] = {"string", "number", "boolean", "null"};
    json_object *o = NULL;
    rb_json_error err;
    ck_assert_int_eq(parse_container(" [1, {\"a\": [2.5]}, \"x\"] ", 4, &o, &err), RB_JSON_OK);
    ck_assert(json_object_is_type(o, json_type_array));
    ck_assert_int_eq(json_object_array_length(o), 3);
    ck_assert(json_object_get_double(json_object_array_get_idx(json_object_object_get(json_object_array_get_idx(o, 1), "a"), 0)) == 2.5);
    json_object_put(o);
    ck_assert_int_eq(parse_container("{\"a\":1}", 4, &o, &err), RB_JSON_OK);
    ck_assert(json_object_is_type(o, json_type_object));
    json_object_put(o);
    ck_assert_int_eq(parse_container("[]", 4, &o, &err), RB_JSON_OK);
    ck_assert_int_eq(json_object_array_length(o), 0);
    json_object_put(o);
    /* NaN, an array nested too deep, a duplicate key inside an element */
    ck_assert_int_eq(parse_container("[1, NaN]", 4, &o, &err), RB_JSON_INVALID);
    ck_assert_ptr_null(o);
    ck_assert_str_eq(err.what, "unexpected character");
    ck_assert_uint_eq(err.at, 4);
    ck_assert_int_eq(parse_container("[[[1]]]", 2, &o, &err), RB_JSON_INVALID);
    ck_assert_str_eq(err.what, "nesting too deep");
    ck_assert_int_eq(parse_container("[{\"a\":1,\"a\":2}]", 4, &o, &err), RB_JSON_DUPLICATE);
    ck_assert_str_eq(err.key, "a");
    ck_assert_uint_eq(err.at, 1);
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) {
        ck_assert_int_eq(rb_json_parse_container(scalars[i], strlen(scalars[i]), 4, &o, &err), RB_JSON_NOT_OBJECT);
        ck_assert_ptr_null(o);
        ck_assert_str_eq(err.kind, kinds[i]);
    }
}
END_TEST

/* rb_json_parse_pieces: what the callback sees, written as one line per
 * event ("B key", "E key[i] <json>", "M key <json>", "N key count"). */
typedef struct seen {
    char log[2048];
    int stop_after; /* events; 0: never stop */
    int events;
} seen;

static bool log_piece(void *user, const rb_json_piece *p)
{
    seen *s = user;
    size_t n = strlen(s->log);
    const char *key = p->key ? p->key : "-";
    switch (p->event) {
    case RB_JSON_BEGIN:
        snprintf(s->log + n, sizeof s->log - n, "B %s @%zu\n", key, p->at);
        break;
    case RB_JSON_ELEMENT:
        snprintf(s->log + n, sizeof s->log - n, "E %s[%zu] %s @%zu\n", key, p->index,
                 p->value ? json_object_to_json_string_ext(p->value, JSON_C_TO_STRING_PLAIN) : "null", p->at);
        break;
    case RB_JSON_END:
        snprintf(s->log + n, sizeof s->log - n, "N %s %zu\n", key, p->index);
        break;
    default:
        snprintf(s->log + n, sizeof s->log - n, "M %s %s @%zu\n", key,
                 p->value ? json_object_to_json_string_ext(p->value, JSON_C_TO_STRING_PLAIN) : "null", p->at);
        break;
    }
    return ++s->events != s->stop_after;
}

static rb_json_fault pieces(const char *text, int depth, seen *s, rb_json_error *err)
{
    return rb_json_parse_pieces(text, strlen(text), depth, false, log_piece, s, err);
}

START_TEST(pieces_come_one_at_a_time)
{
    seen s = {0};
    rb_json_error err;
    ck_assert_int_eq(pieces(" [ {\"a\": [1, 2.5]}, \"x\", 7, null, [] ] ", 4, &s, &err), RB_JSON_OK);
    ck_assert_str_eq(s.log, "B - @1\nE -[0] {\"a\":[1,2.5]} @3\nE -[1] \"x\" @20\nE -[2] 7 @25\nE -[3] null @28\n"
                            "E -[4] [] @34\nN - 5\n");
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(pieces("{\"info\": {\"v\": 1}, \"images\": [{\"id\": 1}], \"n\": -3, \"empty\": [], \"s\": \"\\u00e9\"}",
                            4, &s, &err),
                     RB_JSON_OK);
    ck_assert_str_eq(s.log, "M info {\"v\":1} @9\nB images @29\nE images[0] {\"id\":1} @30\nN images 1\nM n -3 @47\n"
                            "B empty @60\nN empty 0\nM s \"\xc3\xa9\" @69\n");
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(pieces("{}", 4, &s, &err), RB_JSON_OK);
    ck_assert_str_eq(s.log, "");
    /* the callback stops it */
    memset(&s, 0, sizeof s);
    s.stop_after = 2;
    ck_assert_int_eq(pieces("[1, 2, 3]", 4, &s, &err), RB_JSON_STOPPED);
    ck_assert_str_eq(s.log, "B - @0\nE -[0] 1 @1\n");
}
END_TEST

/* Faults carry offsets in the whole text, and nesting counts from the top. */
START_TEST(pieces_refuse_what_the_strict_reader_refuses)
{
    static const struct {
        const char *text;
        int depth;
        rb_json_fault fault;
        const char *what;
        size_t at;
    } bad[] = {
        {"[1, NaN]", 4, RB_JSON_INVALID, "unexpected character", 4},
        {"[{\"a\": 1}, {\"b\": 01}]", 4, RB_JSON_INVALID, "number with a leading zero", 18},
        {"[{\"a\": 1, \"a\": 2}]", 4, RB_JSON_DUPLICATE, "duplicate key 'a' in the object", 1},
        {"{\"x\": [{\"b\": {\"c\": 1, \"c\": 1}}]}", 8, RB_JSON_DUPLICATE, "duplicate key 'c' in the object", 13},
        {"{\"a\": 1, \"b\": [], \"a\": 2}", 4, RB_JSON_DUPLICATE, "duplicate key 'a' in the object", 0},
        {"[[[1]]]", 2, RB_JSON_INVALID, "nesting too deep", 2},
        {"{\"a\": [[1]]}", 2, RB_JSON_INVALID, "nesting too deep", 7},
        {"{\"a\": [1]}", 1, RB_JSON_INVALID, "nesting too deep", 6},
        {"[1e400]", 4, RB_JSON_INVALID, "number out of range", 1},
        {"[{\"a\": 1e400}]", 4, RB_JSON_INVALID, "number out of range", 7},
        {"[1, 2", 4, RB_JSON_INVALID, "unexpected end", 5},
        {"[1] x", 4, RB_JSON_INVALID, "unexpected bytes after the JSON value", 4},
        {"{\"a\" 1}", 4, RB_JSON_INVALID, "expected ':'", 5},
        {"{\"a\": 1 \"b\": 2}", 4, RB_JSON_INVALID, "expected ',' or '}'", 8},
        {"[1 2]", 4, RB_JSON_INVALID, "expected ',' or ']'", 3},
        {"", 4, RB_JSON_INVALID, "unexpected end", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        seen s = {0};
        rb_json_error err;
        ck_assert_msg(pieces(bad[i].text, bad[i].depth, &s, &err) == bad[i].fault, "%s", bad[i].text);
        ck_assert_msg(strcmp(err.what, bad[i].what) == 0 && err.at == bad[i].at, "%s: '%s' at %zu", bad[i].text,
                      err.what, err.at);
    }
    {
        static const char nul[] = "[1,\0 2]";
        seen s = {0};
        rb_json_error err;
        ck_assert_int_eq(rb_json_parse_pieces(nul, sizeof nul - 1, 4, false, log_piece, &s, &err), RB_JSON_INVALID);
        ck_assert_str_eq(err.what, "NUL byte");
        ck_assert_str_eq(s.log, ""); /* checked before anything is handed out */
    }
    {
        seen s = {0};
        rb_json_error err;
        ck_assert_int_eq(pieces(" 5 ", 4, &s, &err), RB_JSON_NOT_OBJECT);
        ck_assert_str_eq(err.kind, "number");
        ck_assert_int_eq(pieces("\"a\" 1", 4, &s, &err), RB_JSON_INVALID);
    }
}
END_TEST

/* With `nodes`, the same pieces come as rb_json_node arrays. */
typedef struct node_seen {
    int pieces;
    rb_json_node copy[16];
    size_t count;
    char text[256];
} node_seen;

static bool keep_nodes(void *user, const rb_json_piece *p)
{
    node_seen *s = user;
    if (p->event != RB_JSON_ELEMENT)
        return true;
    s->pieces++;
    s->count = p->nodes[0].next;
    ck_assert_uint_le(s->count, 16);
    memcpy(s->copy, p->nodes, s->count * sizeof *p->nodes);
    return true;
}

START_TEST(pieces_as_nodes)
{
    static const char text[] =
        "[{\"id\": 12, \"big\": 18446744073709551615, \"min\": -9223372036854775808, \"x\": -2.5e-3,"
        " \"s\": \"a\\u00e9\\n\\ud83d\\ude00\", \"b\": [true, false, null], \"\\u0069d2\": {}}]";
    node_seen s = {0};
    rb_json_error err;
    const rb_json_node *n = s.copy;
    size_t v;
    char *str;
    ck_assert_int_eq(rb_json_parse_pieces(text, sizeof text - 1, 4, true, keep_nodes, &s, &err), RB_JSON_OK);
    ck_assert_int_eq(s.pieces, 1);
    ck_assert_int_eq(n[0].kind, RB_JSON_KIND_OBJECT);
    ck_assert_uint_eq(rb_json_count(n, 0), 7);
    v = rb_json_member(n, text, 0, "id");
    ck_assert(n[v].kind == RB_JSON_KIND_INT && n[v].integer == 12 && !n[v].big && n[v].number == 12);
    v = rb_json_member(n, text, 0, "big");
    ck_assert(n[v].kind == RB_JSON_KIND_INT && n[v].big && n[v].integer == INT64_MAX &&
              n[v].big_value == UINT64_MAX && n[v].number == 18446744073709551615.0);
    v = rb_json_member(n, text, 0, "min");
    ck_assert(n[v].kind == RB_JSON_KIND_INT && n[v].integer == INT64_MIN && n[v].number == -9223372036854775808.0);
    v = rb_json_member(n, text, 0, "x");
    ck_assert(n[v].kind == RB_JSON_KIND_DOUBLE && n[v].number == -2.5e-3);
    v = rb_json_member(n, text, 0, "s");
    ck_assert_int_eq(n[v].kind, RB_JSON_KIND_STRING);
    str = rb_json_string(n, text, v);
    ck_assert_str_eq(str, "a\xc3\xa9\n\xf0\x9f\x98\x80");
    free(str);
    v = rb_json_member(n, text, 0, "b");
    ck_assert_int_eq(n[v].kind, RB_JSON_KIND_ARRAY);
    ck_assert_uint_eq(rb_json_count(n, v), 3);
    ck_assert(n[rb_json_child(n, v, 0)].kind == RB_JSON_KIND_BOOL && n[rb_json_child(n, v, 0)].boolean);
    ck_assert(n[rb_json_child(n, v, 1)].kind == RB_JSON_KIND_BOOL && !n[rb_json_child(n, v, 1)].boolean);
    ck_assert_int_eq(n[rb_json_child(n, v, 2)].kind, RB_JSON_KIND_NULL);
    ck_assert_uint_eq(rb_json_child(n, v, 3), SIZE_MAX);
    v = rb_json_member(n, text, 0, "id2"); /* written with an escape */
    ck_assert(v != SIZE_MAX && n[v].kind == RB_JSON_KIND_OBJECT && rb_json_count(n, v) == 0);
    ck_assert_uint_eq(rb_json_member(n, text, 0, "i"), SIZE_MAX);
    ck_assert_uint_eq(rb_json_member(n, text, 0, "absent"), SIZE_MAX);
    ck_assert_uint_eq(rb_json_member(n, text, v - 1, "id"), SIZE_MAX); /* not an object */
    ck_assert_str_eq(rb_json_kind_name(RB_JSON_KIND_DOUBLE), "a number with a fraction or exponent");
}
END_TEST

/* Both modes accept and refuse the same texts, with the same fault and
 * offset; repeated keys are found in small and large objects, escaped or
 * not. */
START_TEST(nodes_and_trees_agree)
{
    static const char *const texts[] = {
        "[{\"a\": 1, \"\\u0061\": 2}]",
        "[{\"k\": {\"b\": 1, \"c\": 2, \"b\": 3}}]",
        "[{\"a\": 1, \"b\": 1e400}]",
        "[[1, 2], {\"x\": [[[]]]}]",
        "[-0, 0.5, 1E+2, -1e-2, 18446744073709551616]",
        "[\"\\ud800\"]",
        "[{\"a\": 1},, 2]",
        "{\"images\": [{\"id\": 1}], \"n\": {\"a\": 1, \"a\": 1}}",
        "{\"a\": [1, 2], \"b\": [{\"c\": [1e308, -1e308]}]}",
    };
    static const int depths[] = {4, 4, 4, 3, 4, 4, 4, 4, 4};
    static const rb_json_fault want[] = {RB_JSON_DUPLICATE, RB_JSON_DUPLICATE, RB_JSON_INVALID, RB_JSON_INVALID,
                                         RB_JSON_INVALID,   RB_JSON_INVALID,   RB_JSON_INVALID, RB_JSON_DUPLICATE,
                                         RB_JSON_OK,        RB_JSON_DUPLICATE};
    char big[4096];
    size_t n = 0;
    /* an object of 40 members, the last repeating the 20th: sorted, not pairwise */
    n += (size_t)snprintf(big + n, sizeof big - n, "[{");
    for (int k = 0; k < 40; k++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s\"key%d\": %d", k ? ", " : "", k == 39 ? 19 : k, k);
    snprintf(big + n, sizeof big - n, "}]");
    for (size_t i = 0; i <= sizeof texts / sizeof texts[0]; i++) {
        const char *t = i < sizeof texts / sizeof texts[0] ? texts[i] : big;
        int depth = i < sizeof texts / sizeof texts[0] ? depths[i] : 4;
        seen a = {0};
        node_seen b = {0};
        rb_json_error ea, eb;
        rb_json_fault fa = rb_json_parse_pieces(t, strlen(t), depth, false, log_piece, &a, &ea);
        rb_json_fault fb = rb_json_parse_pieces(t, strlen(t), depth, true, keep_nodes, &b, &eb);
        ck_assert_msg(fa == fb && fa == want[i], "%s: trees %d, nodes %d", t, (int)fa, (int)fb);
        if (fa != RB_JSON_OK) {
            ck_assert_msg(strcmp(ea.what, eb.what) == 0 && ea.at == eb.at, "%s: '%s' at %zu vs '%s' at %zu", t, ea.what,
                          ea.at, eb.what, eb.at);
            ck_assert_str_eq(ea.key, eb.key);
        }
    }
    {
        seen a = {0};
        rb_json_error e;
        ck_assert_int_eq(rb_json_parse_pieces(big, strlen(big), 4, true, log_piece, &a, &e), RB_JSON_DUPLICATE);
        ck_assert_str_eq(e.key, "key19");
        ck_assert_uint_eq(e.at, 1);
    }
}
END_TEST

START_TEST(duplicate_keys_are_named)
{
    json_object *o = NULL;
    rb_json_error err;
    const char *top = "{\"a\":1,\"b\":2,\"a\":3}";
    /* a key spelt with an escape is the same key */
    const char *nested = "{\"m\":{},\"t\":{\"x\":1,\"\\u0078\":2}}";
    const char *in_array = "{\"l\":[{\"k\":1},{\"k\":1,\"k\":2}]}";
    /* the first offender in the text wins: the outer object (byte 0) opens
     * before the inner one (byte 5), so its 'a' is named, not the inner 'q' */
    const char *first = "{\"a\":{\"q\":1,\"q\":2},\"a\":1}";

    ck_assert_int_eq(rb_json_parse_object(top, strlen(top), 4, &o, &err), RB_JSON_DUPLICATE);
    ck_assert_ptr_null(o);
    ck_assert_str_eq(err.key, "a");
    ck_assert_str_eq(err.what, "duplicate key 'a' in the object");
    ck_assert_uint_eq(err.at, 0);
    ck_assert_int_eq(err.depth, 1);
    ck_assert(!err.parent_key);

    ck_assert_int_eq(rb_json_parse_object(nested, strlen(nested), 4, &o, &err), RB_JSON_DUPLICATE);
    ck_assert_str_eq(err.key, "x");
    ck_assert(err.parent_key);
    ck_assert_str_eq(err.parent, "t");
    ck_assert_int_eq(err.depth, 2);
    ck_assert_uint_eq(err.at, 12);

    ck_assert_int_eq(rb_json_parse_object(in_array, strlen(in_array), 4, &o, &err), RB_JSON_DUPLICATE);
    ck_assert_str_eq(err.key, "k");
    ck_assert(!err.parent_key); /* its parent is an array */
    ck_assert_int_eq(err.depth, 3);
    ck_assert_uint_eq(err.at, 14);

    ck_assert_int_eq(rb_json_parse_object(first, strlen(first), 4, &o, &err), RB_JSON_DUPLICATE);
    ck_assert_str_eq(err.key, "a");
    ck_assert_uint_eq(err.at, 0);
    ck_assert_int_eq(err.depth, 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, valid_objects_parse);
    tcase_add_test(tc, depth_counts_containers);
    tcase_add_test(tc, numbers_are_exact_or_refused);
    tcase_add_test(tc, strings_hold_no_nul_and_only_utf8);
    tcase_add_test(tc, structure_and_trailing_bytes);
    tcase_add_test(tc, other_values_are_not_objects);
    tcase_add_test(tc, duplicate_keys_are_named);
    tcase_add_test(tc, containers_take_arrays_and_objects);
    tcase_add_test(tc, pieces_come_one_at_a_time);
    tcase_add_test(tc, pieces_refuse_what_the_strict_reader_refuses);
    tcase_add_test(tc, pieces_as_nodes);
    tcase_add_test(tc, nodes_and_trees_agree);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
