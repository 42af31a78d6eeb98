/* The engine's memory planning: where every value, gradient and buffer
 * lives in the one arena, by lifetime. Ops declare what they need
 * (eng_slot_plan, eng_value_plan, eng_diff_plan ...); this file decides
 * which of it may share bytes:
 *  - a gradient lives from the first write by its node's last consumer to
 *    the node's own backward; gradients whose lives do not overlap share;
 *  - a value that no backward reads (the ops say which they read) lives
 *    only through the forward, and is overlaid on the gradients;
 *  - a residual add's gradient is written into one input's gradient;
 *  - weight storage needed only inside one node's backward is shared by
 *    all nodes.
 * It also sizes the arena for rb_engine_estimate_bytes and places pages. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include <robusta/log.h>

#include "nn/engine_internal.h"
#include "nn/op.h"

/* ------------------------------------------------------------ planning helpers */

size_t eng_reserve_bytes(rb_engine *e, size_t bytes)
{
    size_t at = e->arena_bytes;
    e->arena_bytes += (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    return at;
}

/* Declares an arena slot of layout `md`; memory is bound after the arena exists. */
rb_status eng_slot_plan(rb_engine *e, eng_slot *s, const dnnl_memory_desc_t *md, const rb_node *n)
{
    s->md = *md;
    s->bytes = dnnl_memory_desc_get_size(md);
    s->offset = eng_reserve_bytes(e, s->bytes);
    DNNL_TRY(dnnl_memory_create(&s->mem, md, e->eng, DNNL_MEMORY_NONE), "memory", n);
    return RB_OK;
}

/* Weight storage that lives only inside one node's backward: a blocked
 * weight gradient (computed, then reordered into the graph's plain one
 * right away) and, in engines that train, the weights in backward-data's
 * layout (converted right before use). All such slots share one buffer
 * sized for the largest, about the size of the model's largest layer
 * instead of the whole model twice over. */
rb_status eng_shared_plan(rb_engine *e, eng_slot *s, const dnnl_memory_desc_t *md, const rb_node *n)
{
    s->md = *md;
    s->bytes = dnnl_memory_desc_get_size(md);
    s->shared = true;
    if (s->bytes > e->shared_weights.bytes)
        e->shared_weights.bytes = s->bytes;
    DNNL_TRY(dnnl_memory_create(&s->mem, md, e->eng, DNNL_MEMORY_NONE), "memory", n);
    return RB_OK;
}

/* A node's value (its output in the forward): placed by eng_plan_pools, once
 * the whole graph is known, since whether backward reads it depends on its
 * consumers. */
rb_status eng_value_plan(rb_engine *e, enode *en, const dnnl_memory_desc_t *md)
{
    en->value.md = *md;
    en->value.bytes = dnnl_memory_desc_get_size(md);
    en->value_deferred = true;
    DNNL_TRY(dnnl_memory_create(&en->value.mem, md, e->eng, DNNL_MEMORY_NONE), "memory", en->node);
    return RB_OK;
}

/* An in-place node's value: its producer's memory (placed by eng_plan_pools). */
rb_status eng_value_alias(rb_engine *e, enode *en, const eng_slot *of)
{
    en->value.md = of->md;
    en->value.bytes = of->bytes;
    en->value_alias = true;
    DNNL_TRY(dnnl_memory_create(&en->value.mem, &en->value.md, e->eng, DNNL_MEMORY_NONE), "memory", en->node);
    return RB_OK;
}

void eng_need_scratch(rb_engine *e, size_t bytes)
{
    if (bytes > e->scratch_bytes)
        e->scratch_bytes = bytes;
}

/* A node's output gradient. Unless gradients are kept for reading, it
 * only occupies memory while backward can touch it, from the first write by
 * its last consumer to its own node's backward (node indices [node,
 * last consumer]); eng_plan_pools gives gradients whose ranges do not
 * overlap the same bytes. */
rb_status eng_diff_plan(rb_engine *e, eng_slot *s, const dnnl_memory_desc_t *md, const rb_node *n)
{
    if (e->keep_intermediates)
        return eng_slot_plan(e, s, md, n);
    s->md = *md;
    s->bytes = dnnl_memory_desc_get_size(md);
    s->pooled = true;
    DNNL_TRY(dnnl_memory_create(&s->mem, md, e->eng, DNNL_MEMORY_NONE), "memory", n);
    return RB_OK;
}

/* The slot of node i that a pool places: its output gradient, or its value. */
static eng_slot *pooled_slot(rb_engine *e, size_t i, bool values)
{
    return values ? &e->nodes[i].value : &e->nodes[i].diff;
}

/* First-fit placement of `count` slots (nodes `order`, sorted here largest
 * first, which packs better): each goes at the lowest offset where it
 * overlaps, in bytes, no slot whose live range [node, last_use[node]]
 * overlaps its own. Offsets are relative to the pool; returns its size. */
static size_t first_fit(rb_engine *e, size_t *order, size_t count, const size_t *last_use, bool values)
{
    size_t pool = 0;
    for (size_t a = 1; a < count; a++) /* insertion sort by size, largest first */
        for (size_t b = a; b > 0 && pooled_slot(e, order[b], values)->bytes > pooled_slot(e, order[b - 1], values)->bytes;
             b--) {
            size_t t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    for (size_t a = 0; a < count; a++) {
        size_t i = order[a], at = 0;
        eng_slot *d = pooled_slot(e, i, values);
        bool moved = true;
        while (moved) { /* raise `at` past every placed, live-overlapping slot it collides with */
            moved = false;
            for (size_t b = 0; b < a; b++) {
                size_t j = order[b];
                const eng_slot *o = pooled_slot(e, j, values);
                bool live_together = i <= last_use[j] && j <= last_use[i];
                if (live_together && at < o->offset + o->bytes && o->offset < at + d->bytes) {
                    at = (o->offset + o->bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
                    moved = true;
                }
            }
        }
        d->offset = at;
        if (at + d->bytes > pool)
            pool = at + d->bytes;
    }
    return pool;
}

/* Whether backward reads node i's value: its own backward (a ReLU reads
 * its output), or a consumer's (a convolution reads its input for its
 * weight gradient, unless it reads a reordered copy; an in-place ReLU
 * reads its own output, which is its producer's memory). Each op says
 * which it reads (rb_op_def.reads_input, reads_own_value). */
static bool read_by_backward(const rb_engine *e, size_t i)
{
    const rb_node *node = e->nodes[i].node;
    if (rb_op_def_of(node->op)->reads_own_value)
        return true;
    for (size_t j = i + 1; j < e->n; j++) {
        const enode *c = &e->nodes[j];
        const rb_op_def *def = rb_op_def_of(c->node->op);
        for (size_t k = 0; k < c->node->n_in; k++) {
            if (c->node->in[k] != node)
                continue;
            if (def->reads_input != NULL && def->reads_input(e, c, k))
                return true;
            if (def->reads_own_value && c->value_alias)
                return true;
        }
    }
    return false;
}

/* Whether node i's value feeds a loss: the model's outputs (logits),
 * which callers read after a step. */
static bool feeds_loss(const rb_engine *e, size_t i)
{
    for (size_t j = i + 1; j < e->n; j++)
        if (rb_node_is_loss(e->nodes[j].node))
            for (size_t k = 0; k < e->nodes[j].node->n_in; k++)
                if (e->nodes[j].node->in[k]->index == i)
                    return true;
    return false;
}

/* Whether input k of add `a` may take the add's gradient as its own
 * memory: the add is the last consumer to write it (a direct edge, same
 * layout), it is placed by the pool, and its gradient is no alias itself
 * (a fused ReLU's, another add's). */
static bool add_input_shareable(const rb_engine *e, const enode *a, int k)
{
    const enode *p = &e->nodes[a->node->in[k]->index];
    return a->in[k].direct && a->node->in[0] != a->node->in[1] && p->diff.pooled && !p->relu_fused &&
           p->node->op != RB_OP_ADD;
}

/* A residual add passes its gradient unchanged to both inputs; copying it
 * twice is a full read and write of the largest tensors of a ResNet per
 * block. Instead the add's gradient is written straight into the memory of
 * an input's gradient (the host: the input earlier in the graph, so that
 * its live range covers the add's), and the other input reads that same
 * memory when
 *  - the add is its only consumer (nothing else adds into it), and
 *  - everything else that adds into the host's gradient runs its backward
 *    after it (comes before it in the graph): the host's memory still holds
 *    the add's gradient alone when the other input reads it.
 * The host's live range grows to cover the add's. */
static void share_add_gradients(rb_engine *e, size_t *last_use)
{
    if (e->keep_intermediates)
        return;
    for (size_t i = 0; i < e->n; i++) {
        enode *a = &e->nodes[i];
        bool can[2];
        int host_k, other_k;
        size_t host, other;
        bool other_shares;
        if (a->node->op != RB_OP_ADD || !a->diff.pooled)
            continue;
        can[0] = add_input_shareable(e, a, 0);
        can[1] = add_input_shareable(e, a, 1);
        if (!can[0] && !can[1])
            continue;
        host_k = !can[0] || (can[1] && a->node->in[1]->index < a->node->in[0]->index) ? 1 : 0;
        other_k = 1 - host_k;
        host = a->node->in[host_k]->index;
        other = a->node->in[other_k]->index;
        other_shares = can[other_k] && e->nodes[other].consumers == 1;
        for (size_t j = other + 1; other_shares && j < e->n; j++)
            for (size_t q = 0; q < e->nodes[j].node->n_in; q++)
                if (j != i && e->nodes[j].node->in[q]->index == host)
                    other_shares = false;
        a->diff_shared = true;
        a->diff_host = host;
        a->in[host_k].shared = true;
        if (other_shares) {
            e->nodes[other].diff_shared = true;
            e->nodes[other].diff_host = host;
            a->in[other_k].shared = true;
        }
        if (last_use[i] > last_use[host])
            last_use[host] = last_use[i];
        {
            size_t len = strlen(a->impl);
            snprintf(a->impl + len, sizeof a->impl - len, ", gradient in place for %d of 2 inputs",
                     other_shares ? 2 : 1);
        }
    }
}

/* Places the values and the gradients.
 *
 * Gradients (unless kept for reading) only occupy memory while backward
 * can touch them, from the first write by their node's last consumer to the
 * node's own backward: node indices [node, last consumer]. Values that
 * backward never reads (a batch-norm output feeding a residual add, a
 * classifier's hidden pre-activations ...) are needed only in the forward,
 * from their node to its last consumer: the same index range, but in the
 * other pass, so they never meet a gradient. Both are packed first-fit in
 * one region, which holds the larger of the two. Every other value has
 * memory of its own, and an in-place ReLU shares its producer's. */
rb_status eng_plan_pools(rb_engine *e)
{
    size_t n = e->n, grads = 0, values = 0, gpool, vpool;
    size_t *last_use = calloc(n, sizeof *last_use), *gorder = calloc(n, sizeof *gorder);
    size_t *vorder = calloc(n, sizeof *vorder);
    if (last_use == NULL || gorder == NULL || vorder == NULL) {
        free(last_use);
        free(gorder);
        free(vorder);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "engine: out of memory planning memory");
    }
    for (size_t i = 0; i < n; i++) {
        const rb_node *node = e->nodes[i].node;
        last_use[i] = last_use[i] > i ? last_use[i] : i;
        for (size_t k = 0; k < node->n_in; k++)
            if (last_use[node->in[k]->index] < i)
                last_use[node->in[k]->index] = i;
    }
    /* A fused ReLU's gradient is its batch-norm's memory: written by the
     * ReLU's consumers, so live from the last of them. */
    for (size_t j = 0; j < n; j++)
        if (e->nodes[j].relu_fused) {
            size_t p = e->nodes[j].node->in[0]->index;
            last_use[p] = last_use[j] > last_use[p] ? last_use[j] : last_use[p];
        }
    share_add_gradients(e, last_use);
    for (size_t i = 0; i < n; i++)
        if (e->nodes[i].diff.pooled && !e->nodes[i].diff_shared)
            gorder[grads++] = i;
    for (size_t i = 0; i < n; i++) {
        enode *en = &e->nodes[i];
        en->value.pooled = en->value_deferred && !e->keep_intermediates && !eng_is_published(e, en->node) &&
                           en->consumers > 0 && !rb_node_is_loss(en->node) && !feeds_loss(e, i) &&
                           !read_by_backward(e, i);
        if (en->value.pooled)
            vorder[values++] = i;
    }
    gpool = first_fit(e, gorder, grads, last_use, false);
    vpool = first_fit(e, vorder, values, last_use, true);
    if (grads + values > 0) {
        size_t base = eng_reserve_bytes(e, gpool > vpool ? gpool : vpool);
        for (size_t a = 0; a < grads; a++)
            e->nodes[gorder[a]].diff.offset += base;
        for (size_t a = 0; a < values; a++)
            e->nodes[vorder[a]].value.offset += base;
    }
    for (size_t i = 0; i < n; i++) {
        enode *en = &e->nodes[i];
        if (en->value_deferred && !en->value.pooled)
            en->value.offset = eng_reserve_bytes(e, en->value.bytes);
        if (en->value_alias) /* producers come first: already placed */
            en->value.offset = e->nodes[en->node->in[0]->index].value.offset;
        if (en->relu_fused)
            en->diff.offset = e->nodes[en->node->in[0]->index].diff.offset;
        if (en->diff_shared) /* hosts come first: already placed */
            en->diff.offset = e->nodes[en->diff_host].diff.offset;
    }
    e->gradient_pool_bytes = gpool;
    e->value_pool_bytes = vpool;
    free(last_use);
    free(gorder);
    free(vorder);
    return RB_OK;
}
rb_status eng_bind(eng_slot *s, unsigned char *arena)
{
    if (s->mem == NULL)
        return RB_OK;
    if (dnnl_memory_set_data_handle(s->mem, arena + s->offset) != dnnl_success)
        return rb_error_set(RB_ERR_INTERNAL, "engine: cannot eng_bind arena memory");
    return RB_OK;
}

/* Zeroes the arena from the compute threads, in the static chunks their
 * loops use, so that first touch places pages near them. */
void eng_first_touch(rb_engine *e)
{
    const long pages = (long)((e->arena_bytes + 4095) / 4096);
#pragma omp parallel for schedule(static) num_threads(e->threads)
    for (long p = 0; p < pages; p++) {
        size_t at = (size_t)p * 4096;
        memset(e->arena + at, 0, e->arena_bytes - at < 4096 ? e->arena_bytes - at : 4096);
    }
}

/* Where the arena goes, at debug level: what to shrink next. */
void eng_log_arena(const rb_engine *e)
{
    double mib = 1.0 / (1 << 20), values = 0, edges = 0, weights = 0, other = 0;
    if (rb_log_get_level() < RB_LOG_DEBUG)
        return;
    for (size_t i = 0; i < e->n; i++) {
        const enode *en = &e->nodes[i];
        values += en->value_alias || en->value.pooled ? 0 : (double)en->value.bytes;
        for (size_t k = 0; k < RB_NODE_MAX_INPUTS; k++)
            edges += (double)(en->in[k].src.bytes + en->in_grad[k].bytes);
        weights += (double)(en->weights.bytes + (en->weights_bwd.shared ? 0 : en->weights_bwd.bytes));
        other += (double)(en->workspace.bytes + en->mean.bytes + en->variance.bytes + en->discard_scale.bytes +
                          en->discard_shift.bytes + en->zeros.bytes + en->aux[0].bytes + en->aux[1].bytes);
    }
    rb_log(RB_LOG_DEBUG,
           "engine: arena: values %.1f MiB, reordered inputs %.1f, gradients %.1f (overlaid by forward-only "
           "values %.1f), weights %.1f, shared weight storage %.1f, gradient scratch %.1f, oneDNN scratchpad %.1f, "
           "workspaces and statistics %.1f",
           values * mib, edges * mib, (double)e->gradient_pool_bytes * mib, (double)e->value_pool_bytes * mib,
           weights * mib,
           (double)e->shared_weights.bytes * mib, (double)e->scratch_bytes * mib, (double)e->scratchpad_bytes * mib,
           other * mib);
}

/* A bound computed from the graph alone, for refusing what cannot fit before
 * any planning (planning a 4096x4096 ResNet takes seconds in oneDNN, and
 * the arena is only allocated after). The arena holds the values of every
 * node (gradients overlay values that backward no longer needs; blocked
 * layouts pad channels to 16, or 8 without AVX-512), copies of the weights
 * in blocked layouts and their gradients, and scratch bounded by the
 * Winograd scratchpad limit where Winograd runs. Measured against
 * rb_engine_arena_bytes for ResNet-18/50 from 8x8 to 256x256, training and
 * data-gradient engines, the real arena lies between 0.8 and 1.25 times
 * this figure on AVX-512 CPUs, and at 0.67-0.83 of it for the small
 * ResNets of tests/check_model.c on an AVX2 one, which checks [0.5, 2]. */
rb_status rb_engine_estimate_bytes(const rb_graph *g, int64_t batch, const rb_engine_options *opt, uint64_t *bytes)
{
    double values = 0, params = 0, total;
    /* Training and data-gradient engines measure alike. Blocked layouts
     * pad channels to 16 on AVX-512 CPUs, to 8 elsewhere; the scratch is
     * Winograd's, where it runs. */
    const bool winograd = (opt == NULL || (opt->conv_algorithm == RB_CONV_WINOGRAD &&
                                           opt->precision == RB_PRECISION_F32)) &&
                          rb_conv_algorithm_available(RB_CONV_WINOGRAD);
    const int64_t block =
        (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core ? 16 : 8;
    if (bytes != NULL)
        *bytes = 0;
    if (g == NULL || bytes == NULL || batch < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_engine_estimate_bytes: no graph, no output or batch %lld",
                            (long long)batch);
    for (size_t i = 0; i < g->n_nodes; i++) {
        const rb_node *n = g->nodes[i];
        values += (double)((n->c + block - 1) / block * block) * (double)n->h * (double)n->w;
    }
    for (size_t i = 0; i < g->n_params; i++)
        params += (double)g->params[i].numel;
    total = values * (double)batch * sizeof(float) + 2 * params * sizeof(float) + (winograd ? (double)(8 << 20) : 0);
    *bytes = total >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)total;
    return RB_OK;
}
