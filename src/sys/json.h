/* Numbers in robusta's JSON output. JSON has no NaN or infinity, and json-c
 * writes them as the bare words NaN and Infinity, which strict parsers
 * (Python's json with parse_constant, jq, JavaScript) refuse. Every double
 * robusta writes as JSON goes through one of these, so a non-finite value
 * (a missing figure, a diverged loss) becomes null. Header-only so that the
 * command (which sees only the library's API) shares it. */
#ifndef RB_SYS_JSON_H
#define RB_SYS_JSON_H

#include <math.h>
#include <stddef.h>
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

#endif /* RB_SYS_JSON_H */
