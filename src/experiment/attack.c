/* The attack runtime (robusta/attack.h): the PGD loop that drives step-based
 * attack plugins (random start, steps, projection, keep-best, restarts,
 * targeting) and the oracle that whole-run plugins evaluate the model with.
 * The model always runs in inference mode with data-only backward. The
 * order of the plugin's calls is the "Attack contract" of robusta/plugin.h:
 * change one, change the other. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/attack.h>

rb_attack_options rb_attack_options_default(void)
{
    rb_attack_options o = {.steps = 10, .random_start = false, .restarts = 1, .keep_best = false,
                           .target = RB_ATTACK_UNTARGETED, .seed = 0, .first_example = 0, .examples = NULL};
    return o;
}

/* ------------------------------------------------------------ evaluation */

/* The engine with its staging buffers: examples go through in chunks of the
 * engine's batch, a short chunk padded with zero images and label 0. */
typedef struct attack_ctx {
    rb_engine *engine;
    const rb_model *model;
    int64_t batch, per, classes;
    float *images;  /* batch × per */
    int64_t *labels; /* batch */
    float *grad;    /* batch × per */
    float *logits;  /* batch × classes */
    float *dlogits; /* batch × classes: a logit objective's gradient (padding rows zero) */
    float *objective; /* batch: its per-example values */
    int64_t forwards, backwards;
} attack_ctx;

/* Another objective of the logits than the model's loss (the oracle's
 * logit_loss_and_grad). */
typedef struct logit_objective {
    rb_logit_loss loss;
    void *ctx;
    int64_t first; /* the chunk's first row in the oracle's x */
} logit_objective;

static void ctx_free(attack_ctx *c)
{
    free(c->images);
    free(c->labels);
    free(c->grad);
    free(c->logits);
    free(c->dlogits);
    free(c->objective);
}

static rb_status ctx_init(attack_ctx *c, rb_engine *engine, const rb_model *model)
{
    const rb_model_input *in;
    memset(c, 0, sizeof *c);
    if (engine == NULL || model == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack: engine and model are required");
    in = rb_model_get_input(model);
    c->engine = engine;
    c->model = model;
    c->batch = rb_engine_batch(engine);
    c->per = in->channels * in->height * in->width;
    c->classes = rb_model_num_classes(model);
    if (c->batch < 1 || c->classes < 1 || rb_model_logits(model) == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "attack: the model needs a classifier (%lld classes) and the engine a batch",
                            (long long)c->classes);
    c->images = calloc((size_t)(c->batch * c->per), sizeof *c->images);
    c->labels = calloc((size_t)c->batch, sizeof *c->labels);
    c->grad = calloc((size_t)(c->batch * c->per), sizeof *c->grad);
    c->logits = calloc((size_t)(c->batch * c->classes), sizeof *c->logits);
    c->dlogits = calloc((size_t)(c->batch * c->classes), sizeof *c->dlogits);
    c->objective = calloc((size_t)c->batch, sizeof *c->objective);
    if (!c->images || !c->labels || !c->grad || !c->logits || !c->dlogits || !c->objective) {
        ctx_free(c);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "attack: out of memory for a batch of %lld",
                            (long long)c->batch);
    }
    return RB_OK;
}

/* One chunk of rows <= batch of a logit objective: the plugin's loss on
 * the logits, and backward from its gradient (no scaling: row r's gradient
 * is example r's own). The forward has run. */
static rb_status ctx_objective(attack_ctx *c, const logit_objective *obj, const int64_t *labels, int64_t rows,
                               float *losses, float *grad)
{
    rb_status s;
    memset(c->dlogits, 0, (size_t)(c->batch * c->classes) * sizeof *c->dlogits);
    if ((s = obj->loss(obj->ctx, obj->first, rows, c->classes, c->logits, labels, c->objective, c->dlogits)) != RB_OK)
        return s;
    if (losses != NULL)
        memcpy(losses, c->objective, (size_t)rows * sizeof *losses);
    if (grad != NULL) {
        if ((s = rb_engine_backward_logits(c->engine, c->dlogits, true)) != RB_OK ||
            (s = rb_engine_input_grad(c->engine, c->grad)) != RB_OK)
            return s;
        c->backwards++;
        memcpy(grad, c->grad, (size_t)(rows * c->per) * sizeof *grad);
    }
    return RB_OK;
}

/* One chunk of rows <= batch: losses, per-example input gradients (the
 * engine's gradient of the batch mean times the batch) and logits, each
 * optional; with `obj`, of that objective instead of the model's loss. */
static rb_status ctx_eval(attack_ctx *c, const float *x, const int64_t *labels, int64_t rows,
                          const logit_objective *obj, float *losses, float *grad, float *logits)
{
    rb_status s;
    memcpy(c->images, x, (size_t)(rows * c->per) * sizeof *x);
    memcpy(c->labels, labels, (size_t)rows * sizeof *labels);
    if (rows < c->batch) {
        memset(c->images + rows * c->per, 0, (size_t)((c->batch - rows) * c->per) * sizeof *x);
        memset(c->labels + rows, 0, (size_t)(c->batch - rows) * sizeof *labels);
    }
    if ((s = rb_engine_forward(c->engine, c->images, c->batch, c->labels, false)) != RB_OK)
        return s;
    c->forwards++;
    if (obj != NULL) {
        if ((s = rb_engine_read(c->engine, rb_model_logits(c->model), c->logits)) != RB_OK)
            return s;
        if (logits != NULL)
            memcpy(logits, c->logits, (size_t)(rows * c->classes) * sizeof *logits);
        return ctx_objective(c, obj, labels, rows, losses, grad);
    }
    if (losses != NULL) {
        const float *l = rb_engine_losses(c->engine);
        if (l == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack: the model's graph has no loss");
        memcpy(losses, l, (size_t)rows * sizeof *losses);
    }
    if (logits != NULL) {
        if ((s = rb_engine_read(c->engine, rb_model_logits(c->model), c->logits)) != RB_OK)
            return s;
        memcpy(logits, c->logits, (size_t)(rows * c->classes) * sizeof *logits);
    }
    if (grad != NULL) {
        float scale = (float)c->batch;
        if ((s = rb_engine_backward(c->engine, false, true)) != RB_OK ||
            (s = rb_engine_input_grad(c->engine, c->grad)) != RB_OK)
            return s;
        c->backwards++;
        for (int64_t i = 0; i < rows * c->per; i++)
            grad[i] = c->grad[i] * scale;
    }
    return RB_OK;
}

/* Any count, in chunks. */
static rb_status ctx_eval_all(attack_ctx *c, const float *x, const int64_t *labels, int64_t count,
                              logit_objective *obj, float *losses, float *grad, float *logits)
{
    for (int64_t first = 0; first < count; first += c->batch) {
        int64_t rows = count - first < c->batch ? count - first : c->batch;
        rb_status s;
        if (obj != NULL)
            obj->first = first;
        s = ctx_eval(c, x + first * c->per, labels + first, rows, obj, losses ? losses + first : NULL,
                     grad ? grad + first * c->per : NULL, logits ? logits + first * c->classes : NULL);
        if (s != RB_OK)
            return s;
    }
    return RB_OK;
}

/* Images are pixels in [0, 1] (the model normalizes them); anything else,
 * NaN included, would make the eps-ball and the [0, 1] box disagree. */
static rb_status check_images(const attack_ctx *c, const float *x, int64_t count)
{
    for (int64_t i = 0; i < count * c->per; i++)
        if (!(x[i] >= 0.0f && x[i] <= 1.0f))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "attack: value %g of example %lld (at %lld in it) is outside [0, 1] (images are "
                                "pixels in [0, 1]; the model normalizes them)",
                                (double)x[i], (long long)(i / c->per), (long long)(i % c->per));
    return RB_OK;
}

static rb_status check_labels(const attack_ctx *c, const int64_t *labels, int64_t count)
{
    for (int64_t i = 0; i < count; i++)
        if (labels[i] < 0 || labels[i] >= c->classes)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "attack: label %lld of example %lld is outside [0, %lld)",
                                (long long)labels[i], (long long)i, (long long)c->classes);
    return RB_OK;
}

rb_status rb_attack_loss_grad(rb_engine *engine, const rb_model *model, const float *x,
                              const int64_t *labels, int64_t count, float *losses, float *grad,
                              float *logits)
{
    attack_ctx c;
    rb_status s;
    if (x == NULL || labels == NULL || count < 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack: images and labels are required");
    if ((s = ctx_init(&c, engine, model)) != RB_OK)
        return s;
    s = check_labels(&c, labels, count);
    if (s == RB_OK)
        s = ctx_eval_all(&c, x, labels, count, NULL, losses, grad, logits);
    ctx_free(&c);
    return s;
}

/* ------------------------------------------------------------ oracle */

static rb_status oracle_check(const attack_ctx *c, const rb_tensor *x, const char *what)
{
    if (x == NULL || rb_tensor_dtype(x) != RB_DTYPE_F32 || rb_tensor_ndim(x) < 1 ||
        rb_tensor_numel(x) != rb_tensor_dim(x, 0) * c->per)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "attack oracle: %s must be f32 rows of %lld values", what, (long long)c->per);
    return RB_OK;
}

static rb_status oracle_loss_and_grad(void *ctx, const rb_tensor *x, const int64_t *labels,
                                      float *losses, rb_tensor *grad)
{
    attack_ctx *c = ctx;
    rb_status s = oracle_check(c, x, "x");
    if (s == RB_OK && grad != NULL && (s = oracle_check(c, grad, "grad")) == RB_OK &&
        rb_tensor_dim(grad, 0) != rb_tensor_dim(x, 0))
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack oracle: grad and x differ in rows");
    if (s == RB_OK && labels == NULL)
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack oracle: labels are required");
    if (s == RB_OK)
        s = check_labels(c, labels, rb_tensor_dim(x, 0));
    if (s != RB_OK)
        return s;
    return ctx_eval_all(c, rb_tensor_cdata(x), labels, rb_tensor_dim(x, 0), NULL, losses,
                        grad ? rb_tensor_data(grad) : NULL, NULL);
}

static rb_status oracle_logit_loss_and_grad(void *ctx, const rb_tensor *x, const int64_t *labels, rb_logit_loss loss,
                                            void *loss_ctx, float *losses, float *logits, rb_tensor *grad)
{
    attack_ctx *c = ctx;
    logit_objective obj = {loss, loss_ctx, 0};
    rb_status s = oracle_check(c, x, "x");
    if (s == RB_OK && grad != NULL && (s = oracle_check(c, grad, "grad")) == RB_OK &&
        rb_tensor_dim(grad, 0) != rb_tensor_dim(x, 0))
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack oracle: grad and x differ in rows");
    if (s == RB_OK && (labels == NULL || loss == NULL))
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack oracle: a logit objective needs labels and a loss");
    if (s == RB_OK)
        s = check_labels(c, labels, rb_tensor_dim(x, 0));
    if (s != RB_OK)
        return s;
    return ctx_eval_all(c, rb_tensor_cdata(x), labels, rb_tensor_dim(x, 0), &obj, losses,
                        grad ? rb_tensor_data(grad) : NULL, logits);
}

static rb_status oracle_logits(void *ctx, const rb_tensor *x, rb_tensor *logits)
{
    attack_ctx *c = ctx;
    int64_t n;
    int64_t *zeros;
    rb_status s = oracle_check(c, x, "x");
    if (s != RB_OK)
        return s;
    n = rb_tensor_dim(x, 0);
    if (logits == NULL || rb_tensor_dtype(logits) != RB_DTYPE_F32 || rb_tensor_numel(logits) != n * c->classes)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack oracle: logits must be f32 %lld x %lld",
                            (long long)n, (long long)c->classes);
    zeros = calloc((size_t)(n ? n : 1), sizeof *zeros);
    if (zeros == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "attack oracle: out of memory");
    s = ctx_eval_all(c, rb_tensor_cdata(x), zeros, n, NULL, NULL, NULL, rb_tensor_data(logits));
    free(zeros);
    return s;
}

/* ------------------------------------------------------------ the loop */

static int64_t argmax(const float *v, int64_t n)
{
    int64_t best = 0;
    for (int64_t j = 1; j < n; j++)
        if (v[j] > v[best])
            best = j;
    return best;
}

/* Buffers for one chunk. */
typedef struct chunk_state {
    float *x0, *xa, *grad;            /* clean, current iterate, per-example gradient */
    float *best_x, *res_x;            /* best iterate of this restart, chosen result */
    float *losses, *best_loss, *res_loss, *logits;
    int64_t *best_pred, *res_pred, *targets;
    bool *res_fooled;
} chunk_state;

static void chunk_free(chunk_state *b)
{
    free(b->x0);
    free(b->xa);
    free(b->grad);
    free(b->best_x);
    free(b->res_x);
    free(b->losses);
    free(b->best_loss);
    free(b->res_loss);
    free(b->logits);
    free(b->best_pred);
    free(b->res_pred);
    free(b->targets);
    free(b->res_fooled);
}

static bool chunk_alloc(chunk_state *b, int64_t batch, int64_t per, int64_t classes)
{
    size_t img = (size_t)(batch * per), n = (size_t)batch;
    memset(b, 0, sizeof *b);
    b->x0 = calloc(img, sizeof(float));
    b->xa = calloc(img, sizeof(float));
    b->grad = calloc(img, sizeof(float));
    b->best_x = calloc(img, sizeof(float));
    b->res_x = calloc(img, sizeof(float));
    b->losses = calloc(n, sizeof(float));
    b->best_loss = calloc(n, sizeof(float));
    b->res_loss = calloc(n, sizeof(float));
    b->logits = calloc((size_t)(batch * classes), sizeof(float));
    b->best_pred = calloc(n, sizeof(int64_t));
    b->res_pred = calloc(n, sizeof(int64_t));
    b->targets = calloc(n, sizeof(int64_t));
    b->res_fooled = calloc(n, sizeof(bool));
    return b->x0 && b->xa && b->grad && b->best_x && b->res_x && b->losses && b->best_loss &&
           b->res_loss && b->logits && b->best_pred && b->res_pred && b->targets && b->res_fooled;
}

/* Whether loss a is better than b for the attacker. */
static bool better(float a, float b, bool targeted)
{
    return targeted ? a < b : a > b;
}

/* Keeps, per row, the current iterate xa (losses and logits from its forward)
 * as the restart's best when `always` or it beats the best so far. */
static void track_best(const attack_ctx *c, chunk_state *b, int64_t rows, bool always, bool targeted)
{
    for (int64_t r = 0; r < rows; r++) {
        if (!always && !better(b->losses[r], b->best_loss[r], targeted))
            continue;
        b->best_loss[r] = b->losses[r];
        b->best_pred[r] = argmax(b->logits + r * c->classes, c->classes);
        memcpy(b->best_x + r * c->per, b->xa + r * c->per, (size_t)c->per * sizeof(float));
    }
}

/* "/usr/lib/robusta/pgd_l2.so (pgd-l2)": the plugin's file and name, or
 * its name alone for a descriptor that no registry loaded. */
static const char *plugin_label(const rb_plugin *p, char *buf, size_t size)
{
    const char *path = rb_plugin_path(p);
    if (path != NULL)
        snprintf(buf, size, "%s (%s)", path, p->name);
    else
        snprintf(buf, size, "%s", p->name);
    return buf;
}

/* A callback of the plugin failed with `status`: one line naming the file
 * and the callback, then what the plugin said (or that it said nothing). */
static rb_status plugin_failed(const rb_plugin *p, const char *callback, rb_status status)
{
    char label[1024], said[1024];
    if (rb_last_status() == RB_OK)
        snprintf(said, sizeof said, "returned \"%s\" without saying why", rb_status_str(status));
    else
        snprintf(said, sizeof said, "%s", rb_last_error());
    return rb_error_set(status, "attack plugin %s: %s: %s", plugin_label(p, label, sizeof label), callback, said);
}

/* Runs one callback of the plugin: its error becomes plugin_failed's line. */
#define PLUGIN_CALL(plugin, name, call)                                                                     \
    (rb_error_clear(), (s = (call)) == RB_OK ? RB_OK : plugin_failed((plugin), (name), s))

static rb_status check_options(const rb_plugin *plugin, const rb_attack_options *o, bool *use_run)
{
    const rb_attack_ops *ops;
    char label[1024];
    if (plugin == NULL || plugin->kind != RB_PLUGIN_ATTACK || plugin->ops.attack == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack: '%s' is not an attack plugin",
                            plugin ? plugin->name : "(null)");
    ops = plugin->ops.attack;
    if (ops->run == NULL && (ops->step == NULL || ops->project == NULL))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack: plugin %s offers neither step and project nor run",
                            plugin_label(plugin, label, sizeof label));
    *use_run = ops->run != NULL;
    if (o == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack: options are required");
    if (o->steps < 0 || o->restarts < 1 || o->restarts > RB_ATTACK_MAX_RESTARTS || o->first_example < 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "attack: steps must be >= 0 and restarts in [1, %d] (got %d and %d)",
                            RB_ATTACK_MAX_RESTARTS, o->steps, o->restarts);
    if (o->target != RB_ATTACK_UNTARGETED && o->target != RB_ATTACK_TARGET_RANDOM &&
        o->target != RB_ATTACK_TARGET_LEAST_LIKELY)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack: unknown target rule %d", (int)o->target);
    if (*use_run)
        return RB_OK;
    if (ops->random_start == NULL && (o->random_start || o->restarts > 1))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack: plugin %s has no random start%s: drop %s",
                            plugin_label(plugin, label, sizeof label),
                            o->restarts > 1 ? ", and restarts need one" : "",
                            !o->random_start ? "--restarts (use 1 restart)"
                            : o->restarts > 1 ? "--random-start and --restarts"
                                              : "--random-start");
    if (o->restarts > 1 && !o->random_start)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "attack: %d restarts without a random start would repeat the same run; "
                            "add --random-start or use 1 restart",
                            o->restarts);
    return RB_OK;
}

rb_status rb_attack_check(const rb_plugin *plugin, const rb_attack_options *options)
{
    bool use_run;
    return check_options(plugin, options, &use_run);
}

rb_status rb_attack_check_steps(const rb_plugin *plugin, const char *prefix)
{
    char own[256] = "";
    size_t used = 0;
    if (plugin == NULL || plugin->kind != RB_PLUGIN_ATTACK || plugin->ops.attack->run == NULL)
        return RB_OK;
    for (const rb_param_spec *p = plugin->params; p != NULL && p->name != NULL; p++)
        if (p->type == RB_PARAM_INT && strcmp(p->name, RB_PARAM_STEPS) == 0)
            return RB_OK;
    for (const rb_param_spec *p = plugin->params; p != NULL && p->name != NULL && used < sizeof own; p++)
        if (p->type == RB_PARAM_INT)
            used += (size_t)snprintf(own + used, sizeof own - used, "%s%s%s", used ? ", " : "", prefix, p->name);
    return rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack plugin %s schedules itself and takes no %ssteps%s%s",
                        plugin->name, prefix, used ? "; its own budget: " : "", own);
}

/* Picks the targets of rows [first, first + rows) from the clean logits. */
static void choose_targets(const attack_ctx *c, const rb_attack_options *o, chunk_state *b,
                           const int64_t *labels, int64_t first, int64_t rows)
{
    for (int64_t r = 0; r < rows; r++) {
        int64_t y = labels[r], t = y;
        if (o->target == RB_ATTACK_TARGET_RANDOM) {
            rb_rng g;
            rb_rng_init(&g, o->seed, RB_RNG_STREAM(RB_RNG_ATTACK, RB_ATTACK_TARGET_STREAM),
                        (uint64_t)(o->examples ? o->examples[first + r] : o->first_example + first + r));
            t = (y + 1 + (int64_t)(rb_rng_u32(&g) % (uint32_t)(c->classes - 1))) % c->classes;
        } else if (o->target == RB_ATTACK_TARGET_LEAST_LIKELY) {
            const float *l = b->logits + r * c->classes;
            t = -1;
            for (int64_t j = 0; j < c->classes; j++)
                if (j != y && (t < 0 || l[j] < l[t]))
                    t = j;
        }
        b->targets[r] = t;
    }
}

struct rb_attacker {
    attack_ctx c;
    chunk_state b;
};

rb_status rb_attacker_create(rb_attacker **out, rb_engine *engine, const rb_model *model)
{
    rb_attacker *a = calloc(1, sizeof *a);
    rb_status s;
    *out = NULL;
    if (a == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "attack: out of memory");
    if ((s = ctx_init(&a->c, engine, model)) != RB_OK) {
        free(a);
        return s;
    }
    if (!chunk_alloc(&a->b, a->c.batch, a->c.per, a->c.classes)) {
        rb_attacker_destroy(a);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "attack: out of memory for a batch of %lld",
                            (long long)a->c.batch);
    }
    *out = a;
    return RB_OK;
}

void rb_attacker_destroy(rb_attacker *a)
{
    if (a == NULL)
        return;
    chunk_free(&a->b);
    ctx_free(&a->c);
    free(a);
}

/* rb_attacker_run, with each result's prediction into predictions (count
 * values, may be NULL). */
static rb_status attacker_run(rb_attacker *a, const rb_plugin *plugin, const rb_params *params,
                              const rb_attack_options *o, const float *x, const int64_t *labels, int64_t count,
                              float *x_adv, int64_t *targets_out, rb_attack_stats *stats, int64_t *predictions)
{
    attack_ctx *c = &a->c;
    chunk_state *b = &a->b;
    const rb_attack_ops *ops;
    rb_params *own_params = NULL;
    void *self = NULL;
    bool use_run = false, targeted, self_made = false;
    rb_attack_stats st = {0};
    rb_tensor *t_adv = NULL, *t_clean = NULL, *t_grad = NULL;
    rb_status s;
    bool held;

    if ((s = check_options(plugin, o, &use_run)) != RB_OK)
        return s;
    if (x == NULL || labels == NULL || x_adv == NULL || count < 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack: images, labels and the output are required");
    /* The model is fixed for the whole attack: convert its weights once. */
    held = rb_engine_hold_weights(c->engine, true);
    ops = plugin->ops.attack;
    targeted = o->target != RB_ATTACK_UNTARGETED;
    c->forwards = c->backwards = 0;
    if ((s = check_labels(c, labels, count)) != RB_OK || (s = check_images(c, x, count)) != RB_OK)
        goto done;
    if (targeted && c->classes < 2) {
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack: a targeted attack needs at least 2 classes");
        goto done;
    }
    if (params == NULL) {
        if ((s = rb_params_create(&own_params, plugin->params)) != RB_OK)
            goto done;
        params = own_params;
    }
    st.count = count;
    if (count == 0)
        goto done; /* nothing to attack: the plugin is not called */
    if (ops->create != NULL) {
        if (PLUGIN_CALL(plugin, "create", ops->create(params, &self)) != RB_OK)
            goto done;
        self_made = true;
    }
    if (ops->begin != NULL) {
        const rb_model_input *in = rb_model_get_input(c->model);
        rb_attack_plan plan = {.examples = count,
                               .batch = count < c->batch ? count : c->batch,
                               .channels = in->channels,
                               .height = in->height,
                               .width = in->width,
                               .steps = use_run ? 0 : o->steps,
                               .restarts = o->restarts,
                               .targeted = targeted,
                               .seed = o->seed,
                               .random_start = !use_run && o->random_start};
        if (PLUGIN_CALL(plugin, "begin", ops->begin(self, params, &plan)) != RB_OK)
            goto done;
    }

    for (int64_t first = 0; first < count; first += c->batch) {
        int64_t rows = count - first < c->batch ? count - first : c->batch;
        const int64_t *y = labels + first, *goal;
        int64_t shape[4];
        const rb_model_input *in = rb_model_get_input(c->model);
        rb_attack_oracle oracle = {.struct_size = (uint32_t)sizeof(rb_attack_oracle),
                                   .loss_and_grad = oracle_loss_and_grad,
                                   .logits = oracle_logits,
                                   .ctx = c,
                                   .logit_loss_and_grad = oracle_logit_loss_and_grad,
                                   .classes = c->classes};
        rb_attack_batch batch;

        shape[0] = rows, shape[1] = in->channels, shape[2] = in->height, shape[3] = in->width;
        memcpy(b->x0, x + first * c->per, (size_t)(rows * c->per) * sizeof(float));
        /* Clean predictions, and the targets. */
        if ((s = ctx_eval(c, b->x0, y, rows, NULL, NULL, NULL, b->logits)) != RB_OK)
            goto done;
        for (int64_t r = 0; r < rows; r++)
            st.clean_correct += argmax(b->logits + r * c->classes, c->classes) == y[r];
        choose_targets(c, o, b, y, first, rows);
        goal = targeted ? b->targets : y;
        if (targets_out != NULL)
            memcpy(targets_out + first, b->targets, (size_t)rows * sizeof(int64_t));

        if ((s = rb_tensor_wrap(&t_adv, RB_DTYPE_F32, 4, shape, b->xa)) != RB_OK ||
            (s = rb_tensor_wrap(&t_clean, RB_DTYPE_F32, 4, shape, b->x0)) != RB_OK ||
            (s = rb_tensor_wrap(&t_grad, RB_DTYPE_F32, 4, shape, b->grad)) != RB_OK)
            goto done;

        for (int restart = 0; restart < o->restarts; restart++) {
            bool all_fooled = true;
            batch = (rb_attack_batch){.x_adv = t_adv,
                                      .x_clean = t_clean,
                                      .grad = NULL,
                                      .labels = goal,
                                      .first_example = o->first_example + first,
                                      .seed = o->seed,
                                      .stream = RB_RNG_STREAM(RB_RNG_ATTACK, (uint32_t)restart),
                                      .iteration = 0,
                                      .targeted = targeted,
                                      .restart = restart,
                                      .examples = o->examples ? o->examples + first : NULL};
            memcpy(b->xa, b->x0, (size_t)(rows * c->per) * sizeof(float));
            if (use_run) {
                if (PLUGIN_CALL(plugin, "run", ops->run(self, params, &oracle, &batch)) != RB_OK)
                    goto done;
                if ((s = ctx_eval(c, b->xa, goal, rows, NULL, b->losses, NULL, b->logits)) != RB_OK)
                    goto done;
                track_best(c, b, rows, true, targeted);
            } else {
                if (o->random_start &&
                    PLUGIN_CALL(plugin, "random_start", ops->random_start(self, params, &batch)) != RB_OK)
                    goto done;
                for (int it = 0;; it++) {
                    bool last = it == o->steps;
                    if ((s = ctx_eval(c, b->xa, goal, rows, NULL, b->losses, last ? NULL : b->grad, b->logits)) !=
                        RB_OK)
                        goto done;
                    if (o->keep_best || last)
                        track_best(c, b, rows, it == 0 || !o->keep_best, targeted);
                    if (last)
                        break;
                    batch.grad = t_grad;
                    batch.iteration = it;
                    if (PLUGIN_CALL(plugin, "step", ops->step(self, params, &batch)) != RB_OK)
                        goto done;
                    batch.grad = NULL; /* the contract: the gradient is step's alone */
                    if (PLUGIN_CALL(plugin, "project", ops->project(self, params, &batch)) != RB_OK)
                        goto done;
                }
            }
            /* Merge: the first restart that fools the model, else the best loss. */
            for (int64_t r = 0; r < rows; r++) {
                bool fooled = targeted ? b->best_pred[r] == goal[r] : b->best_pred[r] != y[r];
                if (restart == 0 ||
                    (!b->res_fooled[r] && (fooled || better(b->best_loss[r], b->res_loss[r], targeted)))) {
                    b->res_fooled[r] = fooled;
                    b->res_loss[r] = b->best_loss[r];
                    b->res_pred[r] = b->best_pred[r];
                    memcpy(b->res_x + r * c->per, b->best_x + r * c->per, (size_t)c->per * sizeof(float));
                }
                all_fooled = all_fooled && b->res_fooled[r];
            }
            if (all_fooled)
                break; /* later restarts could not change the result */
        }
        rb_tensor_destroy(t_adv);
        rb_tensor_destroy(t_clean);
        rb_tensor_destroy(t_grad);
        t_adv = t_clean = t_grad = NULL;

        for (int64_t r = 0; r < rows; r++) {
            const float *xr = b->res_x + r * c->per, *x0 = b->x0 + r * c->per;
            double l2 = 0, linf = 0;
            st.adv_correct += b->res_pred[r] == y[r];
            if (predictions != NULL)
                predictions[first + r] = b->res_pred[r];
            st.target_reached += targeted && b->res_pred[r] == b->targets[r];
            for (int64_t i = 0; i < c->per; i++) {
                double d = fabs((double)xr[i] - x0[i]);
                l2 += d * d;
                if (d > linf)
                    linf = d;
            }
            l2 = sqrt(l2);
            if (l2 > st.max_l2)
                st.max_l2 = l2;
            if (linf > st.max_linf)
                st.max_linf = linf;
        }
        memcpy(x_adv + first * c->per, b->res_x, (size_t)(rows * c->per) * sizeof(float));
    }
done:
    st.forwards = c->forwards;
    st.backwards = c->backwards;
    if (stats != NULL)
        *stats = st;
    rb_tensor_destroy(t_adv);
    rb_tensor_destroy(t_clean);
    rb_tensor_destroy(t_grad);
    if (self_made && ops->destroy != NULL)
        ops->destroy(self);
    rb_params_destroy(own_params);
    rb_engine_hold_weights(c->engine, held);
    return s;
}

rb_status rb_attacker_run(rb_attacker *a, const rb_plugin *plugin, const rb_params *params,
                          const rb_attack_options *o, const float *x, const int64_t *labels, int64_t count,
                          float *x_adv, int64_t *targets_out, rb_attack_stats *stats)
{
    return attacker_run(a, plugin, params, o, x, labels, count, x_adv, targets_out, stats, NULL);
}

/* ------------------------------------------------------------ ensembles */

rb_status rb_attacker_run_stages(rb_attacker *a, const rb_attack_stage *stages, size_t stage_count, const float *x,
                                 const int64_t *labels, int64_t count, int64_t first_example, float *x_adv,
                                 int *fooled_by)
{
    attack_ctx *c = &a->c;
    float *xs = NULL, *out = NULL, *logits = NULL;
    int64_t *ys = NULL, *index = NULL, *pred = NULL, *examples = NULL;
    int *state = NULL;
    rb_status s = RB_OK;
    if (x == NULL || labels == NULL || x_adv == NULL || count < 0 || (stage_count > 0 && stages == NULL))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack: images, labels, stages and the output are required");
    for (size_t k = 0; k < stage_count; k++) {
        bool use_run;
        if (stages[k].plugin == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack: stage %zu has no plugin", k + 1);
        if ((s = check_options(stages[k].plugin, &stages[k].options, &use_run)) != RB_OK)
            return rb_error_prefix("attack: stage %zu (%s): ", k + 1, stages[k].plugin->name);
        if (stages[k].options.target != RB_ATTACK_UNTARGETED)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "attack: stage %zu (%s) is runtime-targeted; an ensemble counts misclassifications",
                                k + 1, stages[k].plugin->name);
    }
    if ((s = check_labels(c, labels, count)) != RB_OK || (s = check_images(c, x, count)) != RB_OK)
        return s;
    xs = malloc((size_t)((count ? count : 1) * c->per) * sizeof *xs);
    out = malloc((size_t)((count ? count : 1) * c->per) * sizeof *out);
    ys = malloc((size_t)(count ? count : 1) * sizeof *ys);
    index = malloc((size_t)(count ? count : 1) * sizeof *index);
    examples = malloc((size_t)(count ? count : 1) * sizeof *examples);
    pred = malloc((size_t)(count ? count : 1) * sizeof *pred);
    state = malloc((size_t)(count ? count : 1) * sizeof *state);
    logits = malloc((size_t)(c->batch * c->classes) * sizeof *logits);
    if (!xs || !out || !ys || !index || !examples || !pred || !state || !logits) {
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "attack: out of memory for an ensemble of %lld images",
                         (long long)count);
        goto done;
    }
    memcpy(x_adv, x, (size_t)(count * c->per) * sizeof *x_adv);
    /* the clean predictions: only what the model gets right is attacked */
    for (int64_t first = 0; first < count; first += c->batch) {
        int64_t rows = count - first < c->batch ? count - first : c->batch;
        if ((s = ctx_eval(c, x + first * c->per, labels + first, rows, NULL, NULL, NULL, logits)) != RB_OK)
            goto done;
        for (int64_t r = 0; r < rows; r++)
            state[first + r] = argmax(logits + r * c->classes, c->classes) == labels[first + r] ? RB_ATTACK_SURVIVED
                                                                                                : RB_ATTACK_CLEAN_WRONG;
    }
    for (size_t k = 0; k < stage_count; k++) {
        rb_attack_options o = stages[k].options;
        int64_t n = 0;
        for (int64_t i = 0; i < count; i++)
            if (state[i] == RB_ATTACK_SURVIVED) {
                memcpy(xs + n * c->per, x + i * c->per, (size_t)c->per * sizeof *xs);
                ys[n] = labels[i];
                examples[n] = first_example + i;
                index[n++] = i;
            }
        if (n == 0)
            break;
        o.first_example = first_example;
        o.examples = examples;
        if ((s = attacker_run(a, stages[k].plugin, stages[k].params, &o, xs, ys, n, out, NULL, NULL, pred)) !=
            RB_OK) {
            s = rb_error_prefix("stage %zu (%s): ", k + 1, stages[k].plugin->name);
            goto done;
        }
        for (int64_t j = 0; j < n; j++)
            if (pred[j] != ys[j]) {
                state[index[j]] = (int)k;
                memcpy(x_adv + index[j] * c->per, out + j * c->per, (size_t)c->per * sizeof *out);
            }
    }
    if (fooled_by != NULL)
        memcpy(fooled_by, state, (size_t)count * sizeof *state);
done:
    free(xs);
    free(out);
    free(ys);
    free(index);
    free(examples);
    free(pred);
    free(state);
    free(logits);
    return s;
}

rb_status rb_attack_run(rb_engine *engine, const rb_model *model, const rb_plugin *plugin,
                        const rb_params *params, const rb_attack_options *o, const float *x,
                        const int64_t *labels, int64_t count, float *x_adv, int64_t *targets_out,
                        rb_attack_stats *stats)
{
    rb_attacker *a;
    rb_status s = check_options(plugin, o, &(bool){false});
    if (s == RB_OK)
        s = rb_attacker_create(&a, engine, model);
    if (s != RB_OK)
        return s;
    s = rb_attacker_run(a, plugin, params, o, x, labels, count, x_adv, targets_out, stats);
    rb_attacker_destroy(a);
    return s;
}
