/* Parameter sets to and from json-c trees, for the library's own JSON
 * documents (config.json, checkpoint metadata); robusta/params.h has the
 * same as text (rb_params_to_json, rb_params_from_json) for everyone else.
 * Internal to the library. */
#ifndef ROBUSTA_RUNTIME_PARAMS_JSON_H
#define ROBUSTA_RUNTIME_PARAMS_JSON_H

#include <json-c/json.h>

#include <robusta/params.h>

/* rb_params_to_json as a new json-c object (json_object_put it, or hand it
 * to a parent); NULL only when out of memory. `params` NULL gives {}. */
json_object *rb_params_to_json_object(const rb_params *params);

/* rb_params_from_json from a json-c value already parsed (strictly). */
rb_status rb_params_set_json_object(rb_params *params, json_object *object, const char *where);

#endif /* ROBUSTA_RUNTIME_PARAMS_JSON_H */
