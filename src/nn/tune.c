/* Plans chosen by measurement (robusta/tune.h): the plan object, the
 * machine key, and the engine's side of tuning: where a choice comes from
 * (the given plan, the cache, or a measurement) and where it goes. The
 * candidates of each op and their timing live with the op
 * (src/nn/ops/conv_tune.c). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/log.h>
#include <robusta/robusta.h>
#include <robusta/tune.h>

#include "nn/engine_internal.h"
#include "sys/plan_cache.h"

typedef struct plan_entry {
    char *key, *choice;
} plan_entry;

struct rb_plan {
    plan_entry *entries;
    size_t n, cap;
    char machine[RB_PLAN_CACHE_MAX_TEXT + 1];
};

const char *rb_tune_mode_str(rb_tune_mode mode)
{
    switch (mode) {
    case RB_TUNE_OFF: return "off";
    case RB_TUNE_CACHED: return "cached";
    case RB_TUNE_FULL: return "full";
    }
    return "?";
}

rb_status rb_tune_mode_parse(const char *text, rb_tune_mode *out)
{
    for (rb_tune_mode m = RB_TUNE_OFF; m <= RB_TUNE_FULL; m++)
        if (text != NULL && strcmp(text, rb_tune_mode_str(m)) == 0) {
            *out = m;
            return RB_OK;
        }
    return rb_error_set(RB_ERR_INVALID_ARGUMENT, "unknown tuning mode '%s'; use off, cached or full",
                        text ? text : "");
}

rb_status rb_plan_create(rb_plan **out)
{
    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_plan_create: no output");
    *out = calloc(1, sizeof **out);
    return *out ? RB_OK : rb_error_set(RB_ERR_OUT_OF_MEMORY, "plan: out of memory");
}

void rb_plan_destroy(rb_plan *plan)
{
    if (plan == NULL)
        return;
    for (size_t i = 0; i < plan->n; i++) {
        free(plan->entries[i].key);
        free(plan->entries[i].choice);
    }
    free(plan->entries);
    free(plan);
}

static plan_entry *plan_find(const rb_plan *plan, const char *key)
{
    for (size_t i = 0; plan != NULL && key != NULL && i < plan->n; i++)
        if (strcmp(plan->entries[i].key, key) == 0)
            return &plan->entries[i];
    return NULL;
}

rb_status rb_plan_set(rb_plan *plan, const char *key, const char *choice)
{
    plan_entry *e;
    char *copy;
    if (plan == NULL || key == NULL || choice == NULL || !rb_plan_text_ok(key) || !rb_plan_text_ok(choice))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "plan: a key and its choice are 1 to %d printable ASCII characters ('%.60s': '%.60s')",
                            RB_PLAN_CACHE_MAX_TEXT, key ? key : "", choice ? choice : "");
    if ((copy = strdup(choice)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "plan: out of memory");
    if ((e = plan_find(plan, key)) != NULL) {
        free(e->choice);
        e->choice = copy;
        return RB_OK;
    }
    if (plan->n == plan->cap) {
        size_t cap = plan->cap ? 2 * plan->cap : 16;
        plan_entry *grown = realloc(plan->entries, cap * sizeof *grown);
        if (grown == NULL) {
            free(copy);
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "plan: out of memory");
        }
        plan->entries = grown;
        plan->cap = cap;
    }
    e = &plan->entries[plan->n];
    if ((e->key = strdup(key)) == NULL) {
        free(copy);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "plan: out of memory");
    }
    e->choice = copy;
    plan->n++;
    return RB_OK;
}

const char *rb_plan_get(const rb_plan *plan, const char *key)
{
    const plan_entry *e = plan_find(plan, key);
    return e ? e->choice : NULL;
}

size_t rb_plan_count(const rb_plan *plan)
{
    return plan ? plan->n : 0;
}

void rb_plan_entry(const rb_plan *plan, size_t i, const char **key, const char **choice)
{
    const bool in = plan != NULL && i < plan->n;
    if (key != NULL)
        *key = in ? plan->entries[i].key : NULL;
    if (choice != NULL)
        *choice = in ? plan->entries[i].choice : NULL;
}

const char *rb_plan_machine(const rb_plan *plan)
{
    return plan ? plan->machine : "";
}

rb_status rb_plan_set_machine(rb_plan *plan, const char *machine)
{
    if (plan == NULL || machine == NULL || !rb_plan_text_ok(machine))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "plan: a machine is 1 to %d printable ASCII characters",
                            RB_PLAN_CACHE_MAX_TEXT);
    snprintf(plan->machine, sizeof plan->machine, "%s", machine);
    return RB_OK;
}

rb_status rb_tune_machine(int threads, char *buf, size_t size)
{
    char info[RB_PLAN_CACHE_MAX_TEXT + 1];
    rb_status s = rb_machine_info(info, sizeof info);
    int n;
    if (s != RB_OK)
        return s;
    n = snprintf(buf, size, "%s; %d thread%s", info, threads, threads == 1 ? "" : "s");
    if (n < 0 || (size_t)n >= size)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_tune_machine: buffer of %zu bytes too small", size);
    /* /proc/cpuinfo's model name is free text: keep the key printable */
    for (char *p = buf; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
    return RB_OK;
}

/* ------------------------------------------------------------ the engine's side */

rb_status eng_tune_begin(rb_engine *e, const rb_engine_options *opt)
{
    rb_status s;
    e->tune = opt != NULL ? opt->tune : RB_TUNE_OFF;
    e->tune_plan = opt != NULL ? opt->plan : NULL;
    if (e->tune != RB_TUNE_OFF && e->tune != RB_TUNE_CACHED && e->tune != RB_TUNE_FULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: unknown tuning mode %d", (int)e->tune);
    /* Engines that never train keep their given kernels (robusta/tune.h). */
    if (e->data_grads_only)
        e->tune = RB_TUNE_OFF;
    if ((s = rb_tune_machine(e->threads, e->tune_machine, sizeof e->tune_machine)) != RB_OK)
        return s;
    if (e->tune == RB_TUNE_OFF)
        return RB_OK;
    if ((s = rb_plan_create(&e->tune_made)) != RB_OK)
        return s;
    return rb_plan_cache_open(&e->tune_cache, opt->plan_cache, e->tune_machine);
}

const char *eng_tune_known(rb_engine *e, const char *key, const char **source)
{
    const char *c = rb_plan_get(e->tune_plan, key);
    if (c != NULL) {
        *source = "plan";
        return c;
    }
    if ((c = rb_plan_get(e->tune_made, key)) != NULL) {
        *source = "measured";
        return c;
    }
    if (e->tune == RB_TUNE_CACHED && (c = rb_plan_cache_get(e->tune_cache, key)) != NULL) {
        *source = "cache";
        e->tune_cached++;
        return c;
    }
    *source = NULL;
    return NULL;
}

rb_status eng_tune_record(rb_engine *e, const char *key, const char *choice, bool measured)
{
    rb_status s = RB_OK;
    if (measured) {
        e->tune_measured++;
        s = rb_plan_set(e->tune_made, key, choice);
        if (s == RB_OK)
            s = rb_plan_cache_put(e->tune_cache, key, choice);
    }
    if (s == RB_OK && e->tune_plan != NULL) {
        s = rb_plan_set(e->tune_plan, key, choice);
        if (s == RB_OK && rb_plan_machine(e->tune_plan)[0] == '\0')
            s = rb_plan_set_machine(e->tune_plan, e->tune_machine);
    }
    return s;
}

/* What --precision auto chose, once per training engine. */
static void say_precision(const rb_engine *e)
{
    int convs = 0, bf16 = 0;
    for (size_t i = 0; i < e->n; i++)
        if (e->nodes[i].live && e->nodes[i].node->op == RB_OP_CONV) {
            convs++;
            bf16 += e->nodes[i].choice.dt == dnnl_bf16;
        }
    if (e->tune == RB_TUNE_OFF)
        rb_log(RB_LOG_INFO, "engine: precision auto without tuning (--tune off): every convolution in f32");
    else if (!rb_precision_available(RB_PRECISION_BF16))
        rb_log(RB_LOG_INFO, "engine: precision auto: this CPU has no bf16 convolutions in oneDNN, so all %d "
               "convolutions run in f32", convs);
    else
        rb_log(RB_LOG_INFO, "engine: precision auto: %d of %d convolutions in bf16 (measured faster here), the rest "
               "in f32", bf16, convs);
}

rb_status eng_tune_end(rb_engine *e)
{
    rb_status s = RB_OK;
    if (e->precision_auto && !e->data_grads_only)
        say_precision(e);
    if (e->tune_cache == NULL)
        return RB_OK;
    if (e->tune_measured > 0)
        s = rb_plan_cache_save(e->tune_cache);
    rb_log(e->tune_measured > 0 ? RB_LOG_INFO : RB_LOG_DEBUG,
           "engine: tuned %d convolution shape%s in %.1f s; %d convolution%s planned from the plan cache %s",
           e->tune_measured, e->tune_measured == 1 ? "" : "s", e->tune_seconds, e->tune_cached,
           e->tune_cached == 1 ? "" : "s", rb_plan_cache_path(e->tune_cache));
    rb_plan_cache_close(e->tune_cache);
    e->tune_cache = NULL;
    rb_plan_destroy(e->tune_made);
    e->tune_made = NULL;
    return s;
}

const char *rb_engine_machine(const rb_engine *e)
{
    return e->tune_machine;
}
