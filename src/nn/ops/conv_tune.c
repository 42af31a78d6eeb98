/* Choosing a convolution's kernels (robusta/tune.h): the static rules, or
 * the fastest candidate timed on the real shapes while the engine plans.
 * A candidate is an algorithm (Winograd, direct) in a data type (f32,
 * bf16), with its weight gradient by oneDNN or by im2col + matmul; each
 * runs on buffers of its own, so timing touches nothing the engine keeps. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/log.h>

#include "nn/ops/conv_internal.h"
#include "sys/internal.h"
#include "sys/plan_cache.h"

#define TUNE_REPEATS 3
/* A challenger must be this much faster than the static rule's choice:
 * closer timings are noise, and keeping the rule keeps results as they were. */
#define TUNE_MARGIN 0.97

static const char *dt_name(dnnl_data_type_t dt)
{
    return dt == dnnl_bf16 ? "bf16" : "f32";
}

/* The static rules: the engine's options. Under bf16 the classifier stays
 * fp32: it is a sliver of the work, and the logits and their gradient stay
 * exact for the loss. */
static conv_choice rule_choice(const rb_engine *e, const rb_node *n)
{
    return (conv_choice){.algorithm = e->conv_algorithm,
                         .dt = n->op == RB_OP_LINEAR ? dnnl_f32 : e->conv_dt,
                         .weight_grad = CONV_WGRAD_RULE};
}

/* The passes a training step runs: forward always, backward-data unless
 * the input is the graph's image (whose gradient training never needs),
 * backward-weights for trainable weights. */
static void passes(const rb_engine *e, const rb_node *n, bool *data, bool *weights)
{
    const rb_param_tensor *w = rb_node_param(e->g, n, RB_SLOT_WEIGHT);
    *data = n->in[0]->op != RB_OP_INPUT;
    *weights = !e->data_grads_only && w->trainable && !w->frozen;
}

static void choice_key(const rb_engine *e, const rb_node *n, char *key, size_t size)
{
    const rb_conv_desc *d = &n->attr.conv;
    const rb_node *in = n->in[0];
    bool data, weights;
    passes(e, n, &data, &weights);
    snprintf(key, size, "conv %lldx%lld %lld->%lld %lldx%lld s%lldx%lld d%lldx%lld p%lldx%lld g%lld b%lld %s %s f%s%s",
             (long long)d->kernel[0], (long long)d->kernel[1], (long long)in->c, (long long)n->c, (long long)in->h,
             (long long)in->w, (long long)d->stride[0], (long long)d->stride[1], (long long)d->dilation[0],
             (long long)d->dilation[1], (long long)d->padding[0], (long long)d->padding[1], (long long)d->groups,
             (long long)e->batch, e->precision_auto ? "auto" : dt_name(e->conv_dt),
             rb_conv_algorithm_str(e->conv_algorithm), data ? "d" : "", weights ? "w" : "");
}

static void choice_text(const conv_choice *c, char *text, size_t size)
{
    snprintf(text, size, "%s %s weight-grad=%s", rb_conv_algorithm_str(c->algorithm), dt_name(c->dt),
             c->weight_grad == CONV_WGRAD_GEMM ? "gemm" : "onednn");
}

/* A recorded choice back, if this engine may run it: bf16 only where the
 * policy allows it and the CPU has it, Winograd only where the policy
 * allows it. */
static bool choice_parse(const rb_engine *e, const char *text, conv_choice *c)
{
    char alg[16], dt[8], wg[16];
    int end = 0;
    if (sscanf(text, "%15s %7s weight-grad=%15s%n", alg, dt, wg, &end) != 3 || text[end] != '\0' ||
        rb_conv_algorithm_parse(alg, &c->algorithm) != RB_OK)
        return false;
    if (strcmp(dt, "f32") == 0 && (e->precision_auto || e->conv_dt == dnnl_f32))
        c->dt = dnnl_f32;
    else if (strcmp(dt, "bf16") == 0 && (e->precision_auto || e->conv_dt == dnnl_bf16) &&
             rb_precision_available(RB_PRECISION_BF16))
        c->dt = dnnl_bf16;
    else
        return false;
    if (strcmp(wg, "gemm") == 0)
        c->weight_grad = CONV_WGRAD_GEMM;
    else if (strcmp(wg, "onednn") == 0)
        c->weight_grad = CONV_WGRAD_ONEDNN;
    else
        return false;
    return !(c->algorithm == RB_CONV_WINOGRAD && e->conv_algorithm == RB_CONV_DIRECT);
}

/* ------------------------------------------------------------ timing */

static void fill(dnnl_memory_t m, size_t bytes)
{
    void *p = NULL;
    /* 0x3c23 is 0.00995 as bf16 and, in pairs, 0.00997 as f32: small
     * normal numbers, so no kernel meets denormals or infinities */
    if (dnnl_memory_get_data_handle(m, &p) == dnnl_success && p != NULL)
        for (size_t k = 0; k + 1 < bytes; k += 2)
            ((unsigned char *)p)[k] = 0x23, ((unsigned char *)p)[k + 1] = 0x3c;
}

/* Memory for every argument `pd` takes (none for those it does not). */
static rb_status alloc_args(const rb_engine *e, const rb_node *n, const_dnnl_primitive_desc_t pd, eng_args *x,
                            dnnl_memory_t *mems)
{
    static const int args[] = {DNNL_ARG_SRC,       DNNL_ARG_WEIGHTS,      DNNL_ARG_BIAS,
                               DNNL_ARG_DST,       DNNL_ARG_DIFF_SRC,     DNNL_ARG_DIFF_WEIGHTS,
                               DNNL_ARG_DIFF_BIAS, DNNL_ARG_DIFF_DST,     DNNL_ARG_SCRATCHPAD};
    x->n = 0;
    for (size_t k = 0; k < sizeof args / sizeof args[0]; k++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, args[k]);
        if (md == NULL || md->ndims == 0)
            continue;
        DNNL_TRY(dnnl_memory_create(&mems[x->n], md, e->eng, DNNL_MEMORY_ALLOCATE), "tuning memory", n);
        fill(mems[x->n], dnnl_memory_desc_get_size(md));
        eng_arg(x, args[k], mems[x->n]);
    }
    return RB_OK;
}

/* Run r of 0..TUNE_REPEATS began at t0: *best keeps the fastest after the
 * warm-up (run 0). */
static void keep_fastest(int r, double t0, double *best)
{
    double took = rb_monotonic_seconds() - t0;
    if (r == 1 || (r > 1 && took < *best))
        *best = took;
}

/* The fastest of TUNE_REPEATS runs of `pd` after one to warm up. */
static rb_status time_pd(rb_engine *e, const rb_node *n, const_dnnl_primitive_desc_t pd, double *seconds)
{
    dnnl_primitive_t p = NULL;
    dnnl_memory_t mems[16] = {NULL};
    eng_args x;
    rb_status s = alloc_args(e, n, pd, &x, mems);
    *seconds = 0;
    if (s == RB_OK && dnnl_primitive_create(&p, pd) != dnnl_success)
        s = eng_dnnl_fail(dnnl_out_of_memory, "tuning primitive", n);
    for (int r = 0; s == RB_OK && r <= TUNE_REPEATS; r++) {
        double t0 = rb_monotonic_seconds();
        if (dnnl_primitive_execute(p, e->stream, x.n, x.a) != dnnl_success ||
            dnnl_stream_wait(e->stream) != dnnl_success)
            s = eng_dnnl_fail(dnnl_runtime_error, "tuning run", n);
        else
            keep_fastest(r, t0, seconds);
    }
    if (p != NULL)
        dnnl_primitive_destroy(p);
    for (int k = 0; k < x.n; k++)
        dnnl_memory_destroy(mems[k]);
    return s;
}

/* The same for the weight gradient by im2col + matmul, reading the input
 * in layout src and the gradient in dy. */
static rb_status time_wgemm(rb_engine *e, const rb_node *n, const dnnl_memory_desc_t *src,
                            const dnnl_memory_desc_t *dy, double *seconds)
{
    struct conv_wgemm w = {0};
    dnnl_memory_t x = NULL, g = NULL, pad = NULL;
    dnnl_memory_desc_t pad_md;
    dnnl_dims_t one = {1};
    unsigned char *scratch = NULL;
    float *dw = NULL, *db = NULL;
    void *xp = NULL, *gp = NULL;
    size_t pad_bytes = 1;
    rb_status s = conv_wgemm_init(e, n, src, dy, &w);
    *seconds = 0;
    for (int k = 0; s == RB_OK && k < 2; k++) { /* the reorders' scratchpads */
        const_dnnl_primitive_desc_t rpd = NULL;
        if (dnnl_primitive_get_primitive_desc(k == 0 ? w.x_in : w.dy_in, &rpd) == dnnl_success) {
            size_t b = dnnl_memory_desc_get_size(eng_query(rpd, dnnl_query_scratchpad_md));
            pad_bytes = b > pad_bytes ? b : pad_bytes;
        }
    }
    one[0] = (dnnl_dim_t)pad_bytes;
    dnnl_memory_desc_init_by_tag(&pad_md, 1, one, dnnl_u8, dnnl_a);
    if (s == RB_OK && (dnnl_memory_create(&x, src, e->eng, DNNL_MEMORY_ALLOCATE) != dnnl_success ||
                       dnnl_memory_create(&g, dy, e->eng, DNNL_MEMORY_ALLOCATE) != dnnl_success ||
                       dnnl_memory_create(&pad, &pad_md, e->eng, DNNL_MEMORY_ALLOCATE) != dnnl_success))
        s = eng_dnnl_fail(dnnl_out_of_memory, "tuning memory", n);
    if (s == RB_OK) {
        const rb_param_tensor *wt = rb_node_param(e->g, n, RB_SLOT_WEIGHT);
        scratch = aligned_alloc(ARENA_ALIGN, (w.x_bytes + w.dy_bytes + w.cols_bytes + ARENA_ALIGN - 1) &
                                                 ~(size_t)(ARENA_ALIGN - 1));
        dw = malloc((size_t)wt->numel * sizeof *dw);
        db = malloc((size_t)n->c * sizeof *db);
        if (scratch == NULL || dw == NULL || db == NULL)
            s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "engine: out of memory tuning conv '%s'", n->name);
    }
    if (s == RB_OK) {
        fill(x, dnnl_memory_desc_get_size(src));
        fill(g, dnnl_memory_desc_get_size(dy));
        dnnl_memory_get_data_handle(x, &xp);
        dnnl_memory_get_data_handle(g, &gp);
    }
    for (int r = 0; s == RB_OK && r <= TUNE_REPEATS; r++) {
        double t0 = rb_monotonic_seconds();
        s = conv_wgemm_run(e, n, &w, xp, gp, scratch, pad, dw, db, false);
        if (s == RB_OK)
            keep_fastest(r, t0, seconds);
    }
    free(scratch);
    free(dw);
    free(db);
    if (x)
        dnnl_memory_destroy(x);
    if (g)
        dnnl_memory_destroy(g);
    if (pad)
        dnnl_memory_destroy(pad);
    conv_wgemm_free(&w);
    return s;
}

/* One algorithm in one data type: its forward, backward-data and
 * backward-weights times (those the step runs), and the weight gradient by
 * matmul where that is a candidate. *valid false when it is no candidate
 * (Winograd asked, oneDNN gave direct). */
typedef struct timing {
    conv_choice c;
    bool valid, wgemm_timed, onednn_ref;
    double base, wgrad_onednn, wgrad_gemm;
} timing;

static rb_status time_candidate(rb_engine *e, const rb_node *n, timing *t)
{
    conv_shape cs;
    dnnl_primitive_desc_t fwd = NULL, bwd = NULL;
    const char *impl = NULL;
    bool data, weights;
    double sec;
    rb_status s;
    passes(e, n, &data, &weights);
    conv_shape_init(e, n, t->c.dt, &cs);
    t->valid = false;
    if ((s = conv_forward_pd(e, n, &cs, t->c.algorithm, &fwd)) != RB_OK)
        return s;
    dnnl_primitive_desc_query(fwd, dnnl_query_impl_info_str, 0, &impl);
    if (t->c.algorithm == RB_CONV_WINOGRAD && (impl == NULL || strstr(impl, "wino") == NULL)) {
        dnnl_primitive_desc_destroy(fwd);
        return RB_OK;
    }
    s = time_pd(e, n, fwd, &t->base);
    if (s == RB_OK && data) {
        s = conv_backward_data_pd(e, n, &cs, t->c.algorithm, eng_query(fwd, dnnl_query_dst_md), fwd, &bwd);
        if (s == RB_OK)
            s = time_pd(e, n, bwd, &sec);
        t->base += s == RB_OK ? sec : 0;
        if (bwd)
            dnnl_primitive_desc_destroy(bwd);
        bwd = NULL;
    }
    if (s == RB_OK && weights) {
        const dnnl_memory_desc_t *src = eng_query(fwd, dnnl_query_src_md), *dy = eng_query(fwd, dnnl_query_dst_md);
        s = conv_backward_weights_pd(e, n, &cs, t->c.algorithm, src, dy, fwd, &bwd);
        /* a reference kernel is the naive loops, never the fastest, and
         * timing it would cost seconds: the matmul is timed alone */
        if (s == RB_OK) {
            t->onednn_ref = conv_weight_grad_rule_gemm(bwd);
            if (t->onednn_ref)
                t->wgrad_onednn = HUGE_VAL;
            else
                s = time_pd(e, n, bwd, &t->wgrad_onednn);
        }
        /* the matmul path pays for few input channels, or against a
         * reference kernel; elsewhere oneDNN's kernels win and timing it
         * would only cost planning time */
        if (s == RB_OK && (n->in[0]->c < 16 || t->onednn_ref) && conv_wgemm_fits(e, n, src, dy)) {
            s = time_wgemm(e, n, src, dy, &t->wgrad_gemm);
            t->wgemm_timed = s == RB_OK;
        }
        if (bwd)
            dnnl_primitive_desc_destroy(bwd);
    }
    dnnl_primitive_desc_destroy(fwd);
    t->valid = s == RB_OK;
    return s;
}

/* Whether oneDNN's backward-weights for choice c is its reference kernel
 * (the static rule then computes the weight gradient by matmul). */
static rb_status onednn_wgrad_is_ref(rb_engine *e, const rb_node *n, const conv_choice *c, bool *ref)
{
    conv_shape cs;
    dnnl_primitive_desc_t fwd = NULL, bwd = NULL;
    rb_status s;
    conv_shape_init(e, n, c->dt, &cs);
    *ref = false;
    if ((s = conv_forward_pd(e, n, &cs, c->algorithm, &fwd)) != RB_OK)
        return s;
    s = conv_backward_weights_pd(e, n, &cs, c->algorithm, eng_query(fwd, dnnl_query_src_md),
                                 eng_query(fwd, dnnl_query_dst_md), fwd, &bwd);
    if (s == RB_OK)
        *ref = conv_weight_grad_rule_gemm(bwd);
    if (bwd)
        dnnl_primitive_desc_destroy(bwd);
    dnnl_primitive_desc_destroy(fwd);
    return s;
}

/* Times every candidate the policy allows and sets *best: the fastest,
 * unless it is within TUNE_MARGIN of what the static rule runs. *measured
 * false when the rule's choice was the only candidate. */
static rb_status measure(rb_engine *e, const rb_node *n, conv_choice *best, bool *measured)
{
    timing cand[4];
    size_t nc = 0, ndt = 0;
    dnnl_data_type_t dts[2];
    double rule_time = -1, best_time = -1;
    const conv_choice rule = rule_choice(e, n);
    conv_choice rule_run = rule, fastest = rule;
    bool data, weights, ref = false;
    rb_status s = RB_OK;
    passes(e, n, &data, &weights);
    dts[ndt++] = e->conv_dt;
    if (e->precision_auto && rb_precision_available(RB_PRECISION_BF16))
        dts[ndt++] = dnnl_bf16;
    for (size_t k = 0; k < ndt; k++) {
        cand[nc++] = (timing){.c = {.algorithm = RB_CONV_DIRECT, .dt = dts[k]}};
        if (e->conv_algorithm == RB_CONV_WINOGRAD && conv_winograd_fits(n, dts[k]) &&
            rb_conv_algorithm_available(RB_CONV_WINOGRAD))
            cand[nc++] = (timing){.c = {.algorithm = RB_CONV_WINOGRAD, .dt = dts[k]}};
    }
    *measured = false;
    *best = rule;
    best->weight_grad = CONV_WGRAD_ONEDNN;
    /* one kernel and no weight gradient to choose: nothing to time */
    if (nc == 1 && weights && n->in[0]->c >= 16 && (s = onednn_wgrad_is_ref(e, n, &cand[0].c, &ref)) != RB_OK)
        return s;
    if (nc == 1 && (!weights || (n->in[0]->c >= 16 && !ref))) {
        *best = cand[0].c; /* direct: Winograd was no candidate */
        best->weight_grad = ref ? CONV_WGRAD_GEMM : CONV_WGRAD_ONEDNN;
        return RB_OK;
    }
    for (size_t k = 0; s == RB_OK && k < nc; k++)
        s = time_candidate(e, n, &cand[k]);
    if (s != RB_OK)
        return s;
    for (size_t k = 0; k < nc; k++) {
        const timing *t = &cand[k];
        conv_choice c = t->c;
        double total;
        if (!t->valid)
            continue;
        c.weight_grad = t->wgemm_timed && t->wgrad_gemm < t->wgrad_onednn ? CONV_WGRAD_GEMM : CONV_WGRAD_ONEDNN;
        total = t->base + (c.weight_grad == CONV_WGRAD_GEMM ? t->wgrad_gemm : t->wgrad_onednn);
        if (best_time < 0 || total < best_time) {
            fastest = c;
            best_time = total;
        }
        /* the static rule: its algorithm (direct where oneDNN has no
         * Winograd: the direct candidate comes first) in its precision,
         * the weight gradient by matmul only against a reference kernel */
        if (t->c.dt == rule.dt && (t->c.algorithm == rule.algorithm || rule.algorithm == RB_CONV_WINOGRAD)) {
            rule_run = t->c;
            rule_run.weight_grad = t->onednn_ref && t->wgemm_timed ? CONV_WGRAD_GEMM : CONV_WGRAD_ONEDNN;
            rule_time = t->base + (rule_run.weight_grad == CONV_WGRAD_GEMM ? t->wgrad_gemm : t->wgrad_onednn);
        }
    }
    if (best_time < 0 || isinf(best_time))
        return rb_error_set(RB_ERR_INTERNAL, "engine: conv '%s': no kernel could be timed", n->name);
    for (size_t k = 0; k < nc; k++)
        if (cand[k].valid)
            rb_log(RB_LOG_DEBUG, "engine: conv '%s': %s %s %.2f ms, weight gradient oneDNN %.2f ms%s, matmul %.2f ms%s",
                   n->name, rb_conv_algorithm_str(cand[k].c.algorithm), dt_name(cand[k].c.dt), 1e3 * cand[k].base,
                   isinf(cand[k].wgrad_onednn) ? 0.0 : 1e3 * cand[k].wgrad_onednn,
                   cand[k].onednn_ref ? " (reference kernel, not timed)" : "", 1e3 * cand[k].wgrad_gemm,
                   cand[k].wgemm_timed ? "" : " (not a candidate)");
    *measured = true;
    *best = rule_time >= 0 && best_time >= rule_time * TUNE_MARGIN ? rule_run : fastest;
    return RB_OK;
}

rb_status conv_choose(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    char key[RB_PLAN_CACHE_MAX_TEXT + 1], text[64];
    const char *known, *source;
    bool measured = false;
    double t0;
    rb_status s;
    en->choice = rule_choice(e, n);
    en->tune_source = NULL;
    if (e->tune == RB_TUNE_OFF || n->op != RB_OP_CONV)
        return RB_OK;
    choice_key(e, n, key, sizeof key);
    if ((known = eng_tune_known(e, key, &source)) != NULL) {
        if (choice_parse(e, known, &en->choice)) {
            en->tune_source = source;
            return eng_tune_record(e, key, known, false);
        }
        rb_log(RB_LOG_WARN, "engine: conv '%s': the %s's choice '%.60s' cannot run here; measuring again", n->name,
               source, known);
        en->choice = rule_choice(e, n);
    }
    t0 = rb_monotonic_seconds();
    s = measure(e, n, &en->choice, &measured);
    e->tune_seconds += rb_monotonic_seconds() - t0;
    if (s != RB_OK)
        return s;
    en->tune_source = measured ? "measured" : NULL;
    choice_text(&en->choice, text, sizeof text);
    return eng_tune_record(e, key, text, measured);
}
