/* Parameter sets as JSON objects of strings (robusta/params.h,
 * runtime/params_json.h): what robusta records of a plugin's parameters,
 * and reads back when a run resumes or a model loads. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <robusta/params.h>

#include "runtime/params_json.h"
#include "sys/internal.h"
#include "sys/json.h"

/* An object of strings is one container; one more lets a member that is an
 * array or object be named in the message (".eps is not a string"). */
#define PARAMS_JSON_DEPTH 2

/* The canonical text of a parameter, whatever its length, malloc'd. */
static char *format_alloc(const rb_params *p, const char *name)
{
    size_t size = 256;
    for (;;) {
        char *buf = malloc(size);
        if (buf == NULL)
            return NULL;
        if (rb_params_format(p, name, buf, size) != RB_OK) {
            free(buf);
            return NULL;
        }
        if (strlen(buf) + 1 < size) /* room to spare: nothing was cut */
            return buf;
        free(buf);
        size *= 4;
    }
}

json_object *rb_params_to_json_object(const rb_params *params)
{
    json_object *o = json_object_new_object();
    const rb_param_spec *specs = params != NULL ? rb_params_specs(params) : NULL;
    for (size_t i = 0; o != NULL && specs != NULL && specs[i].name != NULL; i++) {
        char *text;
        if (rb_params_source(params, specs[i].name) != RB_PARAM_GIVEN)
            continue;
        if ((text = format_alloc(params, specs[i].name)) == NULL) {
            json_object_put(o);
            return NULL;
        }
        json_object_object_add(o, specs[i].name, json_object_new_string(text));
        free(text);
    }
    return o;
}

rb_status rb_params_to_json(const rb_params *params, char **out)
{
    json_object *o;
    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_params_to_json: out is NULL");
    *out = NULL;
    if ((o = rb_params_to_json_object(params)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "parameters as JSON: out of memory");
    *out = rb_strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return *out != NULL ? RB_OK : RB_ERR_OUT_OF_MEMORY;
}

rb_status rb_params_set_json_object(rb_params *params, json_object *object, const char *where)
{
    if (params == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: no parameter set to fill", where);
    if (!json_object_is_type(object, json_type_object))
        return rb_error_set(RB_ERR_CORRUPT, "%s is not a JSON object of strings", where);
    json_object_object_foreach(object, key, val)
    {
        if (!json_object_is_type(val, json_type_string))
            return rb_error_set(RB_ERR_CORRUPT, "%s.%s is not a string", where, key);
        if (rb_params_set(params, key, json_object_get_string(val)) != RB_OK)
            return rb_error_prefix("%s: ", where);
    }
    return RB_OK;
}

rb_status rb_params_from_json(rb_params *params, const char *json, const char *where)
{
    json_object *o = NULL;
    rb_json_error err;
    rb_status s;
    if (where == NULL)
        where = "parameters";
    if (json == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: no JSON text", where);
    switch (rb_json_parse_object(json, strlen(json), PARAMS_JSON_DEPTH, &o, &err)) {
    case RB_JSON_OK:
        break;
    case RB_JSON_NOT_OBJECT:
        return rb_error_set(RB_ERR_CORRUPT, "%s is a JSON %s, not an object of strings", where, err.kind);
    case RB_JSON_NO_MEMORY:
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
    default:
        return rb_error_set(RB_ERR_CORRUPT, "%s is not valid JSON: %s at byte %zu", where, err.what, err.at);
    }
    s = rb_params_set_json_object(params, o, where);
    json_object_put(o);
    return s;
}
