/* SGD as torch.optim.SGD, and learning-rate schedules (robusta/optim.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include <robusta/optim.h>

#include "nn/graph_internal.h"

/* Tensors at least this large are updated by all compute threads: a
 * ResNet-50 step touches ~400 MB of parameters, gradients and momentum,
 * too much for one core's bandwidth; below it, starting the team costs
 * more than the loop. */
#define PARALLEL_MIN 32768

/* The two loops of a step, over elements [0, n) of one tensor. They are
 * called either directly or from an OpenMP region, never with an `if`
 * clause: libgomp allocates and frees a team for a region that runs on one
 * thread, and steps allocate nothing. */
static int any_non_finite(const float *grad, int64_t n, bool parallel)
{
    int bad = 0;
    if (!parallel) {
        for (int64_t k = 0; k < n; k++)
            bad |= !isfinite(grad[k]);
        return bad;
    }
#pragma omp parallel for schedule(static) reduction(| : bad)
    for (int64_t k = 0; k < n; k++)
        bad |= !isfinite(grad[k]);
    return bad;
}

typedef struct sgd_update {
    float *value, *buf;
    const float *grad;
    bool started, nesterov;
    float wd, mu, damp, lr;
} sgd_update;

static inline void update_one(const sgd_update *u, int64_t k)
{
    float d = u->grad[k] + u->wd * u->value[k];
    if (u->buf != NULL) {
        u->buf[k] = !u->started ? d : u->mu * u->buf[k] + u->damp * d;
        d = u->nesterov ? d + u->mu * u->buf[k] : u->buf[k];
    }
    u->value[k] -= u->lr * d;
}

static void update(const sgd_update *u, int64_t n, bool parallel)
{
    if (!parallel) {
        for (int64_t k = 0; k < n; k++)
            update_one(u, k);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < n; k++)
        update_one(u, k);
}

struct rb_sgd {
    rb_graph *g;
    rb_sgd_options opt;
    float **momentum; /* per parameter; NULL for buffers or without momentum */
    bool *started;    /* per parameter: its buffer holds a first step (PyTorch's per-parameter state) */
    int64_t steps;
};

rb_status rb_sgd_create(rb_sgd **out, rb_graph *g, const rb_sgd_options *opt)
{
    rb_sgd *s;
    *out = NULL;
    if (!(opt->momentum >= 0) || !(opt->dampening >= 0) || !(opt->weight_decay >= 0) ||
        !isfinite(opt->momentum) || !isfinite(opt->dampening) || !isfinite(opt->weight_decay))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "sgd: momentum %g, dampening %g and weight decay %g must be finite and "
                            "non-negative",
                            opt->momentum, opt->dampening, opt->weight_decay);
    if (opt->nesterov && (opt->momentum <= 0 || opt->dampening != 0))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "sgd: Nesterov momentum needs momentum > 0 and dampening 0 (got %g and %g)",
                            opt->momentum, opt->dampening);
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "sgd: out of memory");
    s->g = g;
    s->opt = *opt;
    s->momentum = calloc(g->n_params + 1, sizeof *s->momentum);
    s->started = calloc(g->n_params + 1, sizeof *s->started);
    if (s->momentum == NULL || s->started == NULL)
        goto oom;
    for (size_t i = 0; opt->momentum > 0 && i < g->n_params; i++)
        if (g->params[i].trainable &&
            !(s->momentum[i] = calloc((size_t)g->params[i].numel, sizeof(float))))
            goto oom;
    *out = s;
    return RB_OK;
oom:
    rb_sgd_destroy(s);
    return rb_error_set(RB_ERR_OUT_OF_MEMORY, "sgd: out of memory for momentum buffers");
}

void rb_sgd_destroy(rb_sgd *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; s->momentum && i < s->g->n_params; i++)
        free(s->momentum[i]);
    free(s->momentum);
    free(s->started);
    free(s);
}

rb_status rb_sgd_step(rb_sgd *s, double lr)
{
    rb_graph *g = s->g;
    const double mu = s->opt.momentum, wd = s->opt.weight_decay, damp = s->opt.dampening;
    if (!isfinite(lr) || lr < 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "sgd: learning rate %g must be finite and >= 0", lr);
    /* Check every gradient first: a step is applied whole or not at all.
     * Large tensors are split over the compute threads (the engine sized
     * the pool); elements are independent, so the result does not depend
     * on the thread count. */
    for (size_t i = 0; i < g->n_params; i++) {
        const rb_param_tensor *p = &g->params[i];
        int bad;
        if (!p->trainable || p->frozen)
            continue;
        bad = any_non_finite(p->grad, p->numel, p->numel >= PARALLEL_MIN && omp_get_max_threads() > 1);
        for (int64_t k = 0; bad && k < p->numel; k++) /* the first one, for the message */
            if (!isfinite(p->grad[k]))
                return rb_error_set(RB_ERR_NUMERIC,
                                    "sgd step %lld: gradient of %s[%lld] is %g; no parameter was changed",
                                    (long long)s->steps + 1, p->name, (long long)k, (double)p->grad[k]);
    }
    for (size_t i = 0; i < g->n_params; i++) {
        rb_param_tensor *p = &g->params[i];
        const sgd_update u = {.value = p->value, .buf = s->momentum[i], .grad = p->grad,
                              .started = s->started[i], .nesterov = s->opt.nesterov, .wd = (float)wd,
                              .mu = (float)mu, .damp = (float)(1 - damp), .lr = (float)lr};
        if (!p->trainable || p->frozen)
            continue;
        update(&u, p->numel, p->numel >= PARALLEL_MIN && omp_get_max_threads() > 1);
        s->started[i] = true;
    }
    s->steps++;
    return RB_OK;
}

int64_t rb_sgd_steps(const rb_sgd *s) { return s->steps; }
void rb_sgd_set_steps(rb_sgd *s, int64_t steps)
{
    s->steps = steps;
    for (size_t i = 0; i < s->g->n_params; i++)
        s->started[i] = steps > 0 && s->g->params[i].trainable && !s->g->params[i].frozen;
}

float *rb_sgd_momentum_buffer(rb_sgd *s, size_t index)
{
    return index < s->g->n_params ? s->momentum[index] : NULL;
}

/* ------------------------------------------------------------ schedules */

/* Epoch counts in a schedule are stored as int64_t: larger ones (1e90)
 * would overflow the conversion, and no run is that long. */
#define SCHEDULE_MAX_EPOCH 1e9

static bool parse_number(const char **p, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(*p, &end);
    if (end == *p || errno == ERANGE || !isfinite(*out))
        return false;
    *p = end;
    return true;
}

static rb_status bad_schedule(const char *text, const char *why)
{
    return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                        "--schedule '%s': %s (write constant, step:N:GAMMA, multistep:A,B,...:GAMMA "
                        "or cosine, optionally +warmup:EPOCHS)",
                        text, why);
}

rb_status rb_schedule_parse(const char *text, double base_lr, double total_epochs, rb_schedule *out)
{
    const char *p = text;
    double v;
    rb_schedule s;
    memset(&s, 0, sizeof s);
    s.base_lr = base_lr;
    s.total_epochs = total_epochs;
    if (!isfinite(base_lr) || base_lr < 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "learning rate %g must be finite and >= 0", base_lr);
    if (strncmp(p, "constant", 8) == 0) {
        s.kind = RB_SCHEDULE_CONSTANT;
        p += 8;
    } else if (strncmp(p, "step:", 5) == 0) {
        s.kind = RB_SCHEDULE_STEP;
        p += 5;
        if (!parse_number(&p, &v) || v < 1 || v > SCHEDULE_MAX_EPOCH || v != floor(v) || *p != ':')
            return bad_schedule(text, "step needs a whole number of epochs from 1 to 1e9, then ':'");
        s.step_epochs = (int64_t)v;
        p++;
        if (!parse_number(&p, &s.gamma) || s.gamma <= 0)
            return bad_schedule(text, "gamma must be a positive number");
    } else if (strncmp(p, "multistep:", 10) == 0) {
        s.kind = RB_SCHEDULE_MULTISTEP;
        p += 10;
        for (;;) {
            if (s.milestone_count == RB_SCHEDULE_MAX_MILESTONES)
                return bad_schedule(text, "more than 16 milestones");
            if (!parse_number(&p, &v) || v < 0 || v > SCHEDULE_MAX_EPOCH || v != floor(v) ||
                (s.milestone_count > 0 && v <= (double)s.milestones[s.milestone_count - 1]))
                return bad_schedule(text, "milestones must be increasing whole epochs up to 1e9");
            s.milestones[s.milestone_count++] = (int64_t)v;
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p != ':')
                return bad_schedule(text, "milestones end with ':GAMMA'");
            p++;
            break;
        }
        if (!parse_number(&p, &s.gamma) || s.gamma <= 0)
            return bad_schedule(text, "gamma must be a positive number");
    } else if (strncmp(p, "cosine", 6) == 0) {
        s.kind = RB_SCHEDULE_COSINE;
        p += 6;
        if (!(total_epochs > 0))
            return bad_schedule(text, "cosine needs a positive number of epochs");
    } else {
        return bad_schedule(text, "unknown schedule");
    }
    if (strncmp(p, "+warmup:", 8) == 0) {
        p += 8;
        if (!parse_number(&p, &s.warmup_epochs) || s.warmup_epochs <= 0)
            return bad_schedule(text, "warm-up needs a positive number of epochs");
    }
    if (*p != '\0')
        return bad_schedule(text, "unexpected text at the end");
    /* A gamma above 1 raises the rate at every milestone, so the rate is
     * largest at the run's end: it must still be a number there. */
    if (!isfinite(rb_schedule_lr(&s, total_epochs)))
        return bad_schedule(text, "gamma raises the learning rate past the largest double within the run");
    *out = s;
    return RB_OK;
}

double rb_schedule_lr(const rb_schedule *s, double epoch)
{
    double lr = s->base_lr;
    switch (s->kind) {
    case RB_SCHEDULE_CONSTANT: break;
    case RB_SCHEDULE_STEP: lr *= pow(s->gamma, floor(epoch / (double)s->step_epochs)); break;
    case RB_SCHEDULE_MULTISTEP: {
        int passed = 0;
        while (passed < s->milestone_count && epoch >= (double)s->milestones[passed])
            passed++;
        lr *= pow(s->gamma, passed);
        break;
    }
    case RB_SCHEDULE_COSINE: {
        double t = epoch < s->total_epochs ? epoch : s->total_epochs;
        lr = s->min_lr + (s->base_lr - s->min_lr) * (1 + cos(M_PI * t / s->total_epochs)) / 2;
        break;
    }
    }
    if (s->warmup_epochs > 0 && epoch < s->warmup_epochs)
        lr *= epoch / s->warmup_epochs;
    return lr;
}
