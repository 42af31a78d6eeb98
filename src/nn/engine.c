/* The oneDNN engine (robusta/engine.h).
 *
 * Planning walks the graph once in order. Each node gets a memory
 * descriptor for its value (chosen by the primitive that produces it) and
 * the same one for its gradient. A consumer that wants its input in another
 * layout gets a reorder into a buffer of its own ("edge"). Backward walks
 * the nodes in reverse; an input's gradient is written directly when the
 * consumer is the last one to use it and the layouts agree, and otherwise
 * goes through a shared scratch buffer and a reorder that adds into it
 * (reorder with a sum post-op), so several consumers accumulate.
 *
 * Everything (values, gradients, workspaces, reordered inputs, blocked
 * weights, batch-norm statistics, scratch, oneDNN scratchpad) is carved out
 * of one arena. */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include <robusta/engine.h>
#include <robusta/log.h>
#include <robusta/threads.h>

#include "nn/graph_internal.h"

#define ARENA_ALIGN 64
#define HUGE_PAGE ((size_t)2 << 20)

/* A buffer in the arena: a memory object whose handle is set once the
 * arena exists. */
typedef struct slot {
    dnnl_memory_desc_t md;
    dnnl_memory_t mem;
    size_t offset, bytes;
    bool pooled; /* a gradient placed by liveness (offset relative to the pool until planned) */
    bool shared; /* transient weight storage: every shared slot uses the same bytes (see shared_plan) */
} slot;

/* How an input's gradient reaches the producer: directly, or through the
 * scratch buffer and a reorder (which adds when `accumulate`). */
typedef struct edge {
    bool direct;
    bool accumulate;
    bool shared; /* add: the producer's gradient is this add's own memory (see share_add_gradients) */
    dnnl_primitive_t to_producer; /* scratch (consumer layout) -> producer diff */
    dnnl_memory_t scratch;        /* consumer-layout view of the shared scratch */
    /* Forward: the input in the consumer's layout when it differs. */
    bool reordered;
    slot src;
    dnnl_primitive_t fwd_reorder;
} edge;

typedef struct enode {
    rb_node *node;
    slot value, diff;
    bool need_diff; /* this node's output gradient is needed in this backward */
    bool value_deferred; /* value placed by plan_pools (every node's but the input's) */
    bool value_alias;    /* an in-place ReLU: the value is its producer's memory */
    /* A ReLU fused into the batch-norm before it (oneDNN's fuse_norm_relu):
     * no forward of its own, its gradient is the batch-norm's memory, and
     * only an inference-mode backward applies its mask (training-mode
     * batch-norm backward does, from the workspace). */
    bool relu_fused;
    bool relu_follows; /* batch-norm: its ReLU is fused into it */
    /* An in-place ReLU after an add runs as the add's post-op: the add
     * writes the ReLU's output (its only consumer reads nothing else), and
     * the ReLU node only runs its backward. */
    bool relu_in_add, add_applies_relu;
    /* The gradient lives in node diff_host's memory (share_add_gradients). */
    bool diff_shared;
    size_t diff_host;
    edge in[RB_NODE_MAX_INPUTS];
    int consumers;
    char impl[128];

    /* forward: [0] batch statistics / training, [1] running statistics */
    dnnl_primitive_t fwd[2];
    dnnl_primitive_t bwd_data[2], bwd_full[2]; /* bwd_full also computes parameter gradients */
    dnnl_primitive_t bwd_weights;
    slot workspace;
    /* conv / linear */
    dnnl_memory_t weights_user, diff_weights_user, bias_user, diff_bias_user;
    slot weights, diff_weights;
    slot weights_bwd;             /* the weights in backward-data's own layout, when it differs */
    dnnl_primitive_t weights_in, diff_weights_out, weights_bwd_in;
    bool weights_reordered, diff_weights_reordered;
    bool weights_ready, weights_bwd_ready; /* converted since the weights were held (rb_engine_hold_weights) */
    /* The image's gradient by matmul + col2im (see plan_image_grad_gemm). */
    bool image_grad_gemm;
    dnnl_primitive_t gemm_rows_in, gemm_matmul;
    dnnl_memory_t gemm_diff_image; /* one image of this node's gradient; its handle moves per image */
    dnnl_memory_t gemm_rows, gemm_cols, gemm_weights;
    size_t gemm_image_bytes, gemm_rows_bytes;
    /* batch-norm */
    slot mean, variance;
    slot discard_scale, discard_shift; /* parameter gradients nobody asked for */
    slot zeros; /* C zeros: mean and shift of the inference-mode data-only backward */
    dnnl_primitive_t affine; /* with a fused ReLU: that inference forward without the ReLU */
    dnnl_memory_t scale, shift, diff_scale, diff_shift, running_mean, running_var;
} enode;

struct rb_engine {
    rb_graph *g;
    int64_t batch;
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    enode *nodes;
    size_t n;
    unsigned char *arena;
    size_t arena_bytes;
    bool keep_intermediates; /* every value and gradient keeps its own memory (rb_engine_read(_grad)) */
    bool data_grads_only;    /* no weight-gradient primitives were planned */
    bool weights_held;       /* rb_engine_hold_weights: convert weights once, then reuse */
    dnnl_data_type_t conv_dt; /* convolutions' inputs, weights and outputs: f32, or bf16 (rb_precision) */
    rb_conv_algorithm conv_algorithm;
    size_t winograd_scratchpad_limit; /* see rb_engine_options */
    size_t gradient_pool_bytes;
    size_t value_pool_bytes; /* values backward never reads, overlaid on the gradients */
    slot scratch;     /* shared edge scratch, sized for the largest use */
    size_t scratch_bytes;
    slot scratchpad;  /* oneDNN's, shared by all primitives (user scratchpad mode) */
    size_t scratchpad_bytes;
    slot shared_weights; /* bytes behind every shared slot, sized for the largest */
    dnnl_primitive_attr_t attr;
    dnnl_primitive_attr_t attr_accumulate;
    dnnl_primitive_attr_t attr_relu; /* a ReLU applied to the result (an add's, see plan_add) */
    float *losses;    /* batch */
    int64_t *labels;  /* batch */
    double mean_loss;
    bool forward_done, training;
    bool have_input_grad;
    bool backward_done; /* since the last forward */
    enode *loss;
    enode *logits;
    int threads;
    char threads_text[160];
    /* Executions per rb_engine_primitive_kind. Behind a pointer so that
     * reading out (const engine) counts its reorders too. */
    uint64_t *counts;
};

/* ------------------------------------------------------------ errors */

static rb_status dnnl_fail(dnnl_status_t st, const char *what, const rb_node *n)
{
    return rb_error_set(st == dnnl_unimplemented ? RB_ERR_UNSUPPORTED : RB_ERR_INTERNAL,
                        "engine: oneDNN %s for %s '%s' failed: %s", what,
                        n ? rb_op_str(n->op) : "graph", n ? n->name : "", dnnl_status2str(st));
}

#define DNNL_TRY(call, what, node)                                                               \
    do {                                                                                         \
        dnnl_status_t st_ = (call);                                                              \
        if (st_ != dnnl_success)                                                                 \
            return dnnl_fail(st_, (what), (node));                                               \
    } while (0)

/* Arena offsets are multiples of ARENA_ALIGN, so any slot holds floats. */
static float *arena_floats(const rb_engine *e, size_t offset)
{
    return (float *)(void *)(e->arena + offset);
}

/* ------------------------------------------------------------ planning helpers */

static size_t reserve_bytes(rb_engine *e, size_t bytes)
{
    size_t at = e->arena_bytes;
    e->arena_bytes += (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    return at;
}

/* Declares an arena slot of layout `md`; memory is bound after the arena exists. */
static rb_status slot_plan(rb_engine *e, slot *s, const dnnl_memory_desc_t *md, const rb_node *n)
{
    s->md = *md;
    s->bytes = dnnl_memory_desc_get_size(md);
    s->offset = reserve_bytes(e, s->bytes);
    DNNL_TRY(dnnl_memory_create(&s->mem, md, e->eng, DNNL_MEMORY_NONE), "memory", n);
    return RB_OK;
}

/* Weight storage that lives only inside one node's backward: a blocked
 * weight gradient (computed, then reordered into the graph's plain one
 * right away) and, in engines that train, the weights in backward-data's
 * layout (converted right before use). All such slots share one buffer
 * sized for the largest, about the size of the model's largest layer
 * instead of the whole model twice over. */
static rb_status shared_plan(rb_engine *e, slot *s, const dnnl_memory_desc_t *md, const rb_node *n)
{
    s->md = *md;
    s->bytes = dnnl_memory_desc_get_size(md);
    s->shared = true;
    if (s->bytes > e->shared_weights.bytes)
        e->shared_weights.bytes = s->bytes;
    DNNL_TRY(dnnl_memory_create(&s->mem, md, e->eng, DNNL_MEMORY_NONE), "memory", n);
    return RB_OK;
}

/* A node's value (its output in the forward): placed by plan_pools, once
 * the whole graph is known, since whether backward reads it depends on its
 * consumers. */
static rb_status value_plan(rb_engine *e, enode *en, const dnnl_memory_desc_t *md)
{
    en->value.md = *md;
    en->value.bytes = dnnl_memory_desc_get_size(md);
    en->value_deferred = true;
    DNNL_TRY(dnnl_memory_create(&en->value.mem, md, e->eng, DNNL_MEMORY_NONE), "memory", en->node);
    return RB_OK;
}

/* A node's output gradient. Unless gradients are kept for reading, it
 * only occupies memory while backward can touch it, from the first write by
 * its last consumer to its own node's backward (node indices [node,
 * last consumer]); plan_pools gives gradients whose ranges do not
 * overlap the same bytes. */
static rb_status diff_plan(rb_engine *e, slot *s, const dnnl_memory_desc_t *md, const rb_node *n)
{
    if (e->keep_intermediates)
        return slot_plan(e, s, md, n);
    s->md = *md;
    s->bytes = dnnl_memory_desc_get_size(md);
    s->pooled = true;
    DNNL_TRY(dnnl_memory_create(&s->mem, md, e->eng, DNNL_MEMORY_NONE), "memory", n);
    return RB_OK;
}

/* The slot of node i that a pool places: its output gradient, or its value. */
static slot *pooled_slot(rb_engine *e, size_t i, bool values)
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
        slot *d = pooled_slot(e, i, values);
        bool moved = true;
        while (moved) { /* raise `at` past every placed, live-overlapping slot it collides with */
            moved = false;
            for (size_t b = 0; b < a; b++) {
                size_t j = order[b];
                const slot *o = pooled_slot(e, j, values);
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

/* Whether backward reads node i's value: a convolution or linear layer
 * reads its input (for its weight gradient) unless it reads a reordered
 * copy, batch-norm reads its input, and a ReLU its own output (which, in
 * place, is its producer's memory). Nothing else reads values: pooling
 * keeps a workspace, add and average pooling need nothing, the loss keeps
 * its probabilities. */
static bool read_by_backward(const rb_engine *e, size_t i)
{
    const rb_node *node = e->nodes[i].node;
    if (node->op == RB_OP_RELU)
        return true;
    for (size_t j = i + 1; j < e->n; j++) {
        const enode *c = &e->nodes[j];
        for (size_t k = 0; k < c->node->n_in; k++) {
            if (c->node->in[k] != node)
                continue;
            if ((c->node->op == RB_OP_CONV || c->node->op == RB_OP_LINEAR || c->node->op == RB_OP_BATCHNORM) &&
                !c->in[k].reordered)
                return true;
            if (c->node->op == RB_OP_RELU && c->value_alias)
                return true;
        }
    }
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
static rb_status plan_pools(rb_engine *e)
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
        bool published = false;
        for (size_t k = 0; k < e->g->n_published; k++)
            published |= e->g->published[k].node == en->node;
        en->value.pooled = en->value_deferred && !e->keep_intermediates && !published && en->consumers > 0 &&
                           en != e->logits && en != e->loss && !read_by_backward(e, i);
        if (en->value.pooled)
            vorder[values++] = i;
    }
    gpool = first_fit(e, gorder, grads, last_use, false);
    vpool = first_fit(e, vorder, values, last_use, true);
    if (grads + values > 0) {
        size_t base = reserve_bytes(e, gpool > vpool ? gpool : vpool);
        for (size_t a = 0; a < grads; a++)
            e->nodes[gorder[a]].diff.offset += base;
        for (size_t a = 0; a < values; a++)
            e->nodes[vorder[a]].value.offset += base;
    }
    for (size_t i = 0; i < n; i++) {
        enode *en = &e->nodes[i];
        if (en->value_deferred && !en->value.pooled)
            en->value.offset = reserve_bytes(e, en->value.bytes);
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

static void need_scratch(rb_engine *e, size_t bytes)
{
    if (bytes > e->scratch_bytes)
        e->scratch_bytes = bytes;
}

/* One scratchpad serves every primitive: size it for the largest. */
static void note_scratchpad(rb_engine *e, const_dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t bytes = md ? dnnl_memory_desc_get_size(md) : 0;
    if (bytes > e->scratchpad_bytes)
        e->scratchpad_bytes = bytes;
}

static rb_status make_primitive(rb_engine *e, dnnl_primitive_t *out, dnnl_primitive_desc_t pd,
                                const rb_node *n, const char *what)
{
    note_scratchpad(e, pd);
    DNNL_TRY(dnnl_primitive_create(out, pd), what, n);
    return RB_OK;
}

/* oneDNN's "ref" implementations are correct but orders of magnitude
 * slower; a user should know when a layer lands on one. */
static void warn_if_reference(const_dnnl_primitive_desc_t pd, const rb_node *n, const char *what)
{
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    if (impl != NULL && strncmp(impl, "ref", 3) == 0)
        rb_log(RB_LOG_WARN, "engine: %s of %s '%s' runs on oneDNN's slow reference implementation (%s)", what,
               rb_op_str(n->op), n->name, impl);
}

static const dnnl_memory_desc_t *query(const_dnnl_primitive_desc_t pd, dnnl_query_t what)
{
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

static bool same_md(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b)
{
    return dnnl_memory_desc_equal(a, b) != 0;
}

/* A reorder src -> dst, adding into dst when accumulate. */
static rb_status make_reorder(rb_engine *e, dnnl_primitive_t *out, const dnnl_memory_desc_t *src,
                              const dnnl_memory_desc_t *dst, bool accumulate, const rb_node *n)
{
    dnnl_primitive_desc_t pd;
    rb_status s;
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&pd, src, e->eng, dst, e->eng,
                                                accumulate ? e->attr_accumulate : e->attr),
             "reorder", n);
    s = make_primitive(e, out, pd, n, "reorder");
    dnnl_primitive_desc_destroy(pd);
    return s;
}

/* Prepares input `k` of node `en` to be read in layout `want`: a reorder
 * into a buffer of its own when the producer's layout differs. Returns the
 * memory the consumer should read. */
static rb_status plan_input(rb_engine *e, enode *en, int k, const dnnl_memory_desc_t *want)
{
    enode *producer = &e->nodes[en->node->in[k]->index];
    edge *ed = &en->in[k];
    rb_status s;
    if (same_md(want, &producer->value.md))
        return RB_OK;
    ed->reordered = true;
    s = slot_plan(e, &ed->src, want, en->node);
    if (s == RB_OK)
        s = make_reorder(e, &ed->fwd_reorder, &producer->value.md, want, false, en->node);
    return s;
}

static dnnl_memory_t input_mem(rb_engine *e, enode *en, int k)
{
    return en->in[k].reordered ? en->in[k].src.mem : e->nodes[en->node->in[k]->index].value.mem;
}

/* Plans how the gradient for input `k` (computed in layout `md` by this
 * node) reaches the producer. Consumers later in the graph write first
 * during backward; the last consumer of an input writes it directly. */
static rb_status plan_grad_edge(rb_engine *e, enode *en, int k, const dnnl_memory_desc_t *md)
{
    enode *producer = &e->nodes[en->node->in[k]->index];
    edge *ed = &en->in[k];
    size_t last_consumer = 0;
    rb_status s;
    for (size_t j = 0; j < e->n; j++)
        for (size_t q = 0; q < e->g->nodes[j]->n_in; q++)
            if (e->g->nodes[j]->in[q] == producer->node)
                last_consumer = j;
    /* The add node reads the same input twice only if a == b: then its
     * second slot accumulates. */
    ed->accumulate = last_consumer != en->node->index ||
                     (k == 1 && en->node->in[0] == en->node->in[1]);
    ed->direct = !ed->accumulate && same_md(md, &producer->diff.md);
    if (ed->direct)
        return RB_OK;
    need_scratch(e, dnnl_memory_desc_get_size(md));
    DNNL_TRY(dnnl_memory_create(&ed->scratch, md, e->eng, DNNL_MEMORY_NONE), "memory", en->node);
    s = make_reorder(e, &ed->to_producer, md, &producer->diff.md, ed->accumulate, en->node);
    return s;
}

/* Where a backward primitive should write input k's gradient. */
static dnnl_memory_t grad_target(rb_engine *e, enode *en, int k)
{
    return en->in[k].direct ? e->nodes[en->node->in[k]->index].diff.mem : en->in[k].scratch;
}

static void md_plain(dnnl_memory_desc_t *md, int ndims, const dnnl_dims_t dims)
{
    static const dnnl_format_tag_t tags[] = {dnnl_format_tag_undef, dnnl_a, dnnl_ab, dnnl_abc,
                                             dnnl_abcd, dnnl_abcde};
    dnnl_memory_desc_init_by_tag(md, ndims, dims, dnnl_f32, tags[ndims]);
}

static void md_any(dnnl_memory_desc_t *md, int ndims, const dnnl_dims_t dims, dnnl_data_type_t dt)
{
    dnnl_memory_desc_init_by_tag(md, ndims, dims, dt, dnnl_format_tag_any);
}

/* ------------------------------------------------------------ planning per op */

static rb_status plan_input_node(rb_engine *e, enode *en)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {e->batch, en->node->c, en->node->h, en->node->w};
    md_plain(&md, 4, dims);
    return slot_plan(e, &en->value, &md, en->node);
}

/* The gradient with respect to the image, for a convolution reading it.
 * oneDNN computes backward-data in blocks of 16 input channels, so with 3
 * (RGB) it does 16/3 of the work at a fraction of its speed: the ResNet
 * stem's backward-data took a seventh of a whole PGD step. It is the
 * transposed convolution, so per image:
 *   rows = the node's gradient in plain order (a reorder; K x P: output
 *          channels x output pixels),
 *   cols = W^T x rows (a matmul with the plain K x (C kh kw) weights read
 *          transposed; (C kh kw) x P), and
 *   the image gradient = the sum of each cols entry into the pixel its
 *          kernel tap read (col2im, along contiguous rows of cols).
 * Used where it pays: a single, ungrouped convolution on an image of fewer
 * than 16 channels; both buffers live in the shared edge scratch. */
static rb_status plan_image_grad_gemm(rb_engine *e, enode *en, const dnnl_memory_desc_t *dst)
{
    const rb_node *n = en->node, *in = n->in[0];
    const rb_conv_desc *d = &n->attr.conv;
    int64_t pixels = n->h * n->w, taps = in->c * d->kernel[0] * d->kernel[1];
    dnnl_memory_desc_t image, rows, cols, weights;
    dnnl_dims_t image_dims = {1, n->c, n->h, n->w}, rows_dims = {n->c, pixels}, cols_dims = {taps, pixels};
    dnnl_dims_t weight_dims = {taps, n->c};
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd;
    size_t dt_bytes = dst->data_type == dnnl_bf16 ? 2 : 4;
    rb_status s;
    if (n->op != RB_OP_CONV || in->op != RB_OP_INPUT || e->nodes[in->index].consumers != 1 || d->groups != 1 ||
        in->c >= 16 || dst->format_kind != dnnl_blocked ||
        (size_t)dst->format_desc.blocking.strides[0] * dt_bytes * (size_t)e->batch != dnnl_memory_desc_get_size(dst))
        return RB_OK; /* oneDNN's backward-data (images must be contiguous, batch outermost) */
    image = *dst; /* one image of the gradient, in the node's layout */
    image.dims[0] = image.padded_dims[0] = 1;
    en->gemm_image_bytes = (size_t)dst->format_desc.blocking.strides[0] * dt_bytes;
    dnnl_memory_desc_init_by_tag(&rows, 4, image_dims, dnnl_f32, dnnl_abcd); /* K x P */
    DNNL_TRY(dnnl_memory_create(&en->gemm_diff_image, &image, e->eng, DNNL_MEMORY_NONE), "memory", n);
    s = make_reorder(e, &en->gemm_rows_in, &image, &rows, false, n);
    if (s != RB_OK)
        return s;
    md_plain(&rows, 2, rows_dims);
    md_plain(&cols, 2, cols_dims);
    /* W^T: the graph's K x (C kh kw) weights, as they are, read transposed */
    dnnl_memory_desc_init_by_tag(&weights, 2, weight_dims, dnnl_f32, dnnl_ba);
    DNNL_TRY(dnnl_matmul_desc_init(&md, &weights, &rows, NULL, &cols), "image gradient matmul", n);
    DNNL_TRY(dnnl_primitive_desc_create(&pd, &md, e->attr, e->eng, NULL), "image gradient matmul", n);
    warn_if_reference(pd, n, "image gradient matmul");
    s = make_primitive(e, &en->gemm_matmul, pd, n, "image gradient matmul");
    dnnl_primitive_desc_destroy(pd);
    if (s != RB_OK)
        return s;
    DNNL_TRY(dnnl_memory_create(&en->gemm_weights, &weights, e->eng, rb_node_param(e->g, n, RB_SLOT_WEIGHT)->value),
             "memory", n);
    en->gemm_rows_bytes = ((size_t)pixels * (size_t)n->c * sizeof(float) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    need_scratch(e, en->gemm_rows_bytes + (size_t)pixels * (size_t)taps * sizeof(float));
    DNNL_TRY(dnnl_memory_create(&en->gemm_rows, &rows, e->eng, DNNL_MEMORY_NONE), "memory", n);
    DNNL_TRY(dnnl_memory_create(&en->gemm_cols, &cols, e->eng, DNNL_MEMORY_NONE), "memory", n);
    en->image_grad_gemm = true;
    en->in[0].direct = true; /* written straight into the image's plain gradient */
    {
        size_t len = strlen(en->impl);
        snprintf(en->impl + len, sizeof en->impl - len, ", image gradient by matmul + col2im");
    }
    return RB_OK;
}

/* Whether to ask oneDNN for a Winograd convolution (rb_conv_algorithm): the
 * shapes its F(4x4, 3x3) kernels are written for. oneDNN may still refuse
 * one (channel counts it does not block); each of forward, backward-data
 * and backward-weights then falls back to direct on its own. */
static bool winograd_fits(const rb_engine *e, const rb_node *n, const rb_conv_desc *d, dnnl_data_type_t dt)
{
    return e->conv_algorithm == RB_CONV_WINOGRAD && n->op == RB_OP_CONV && dt == dnnl_f32 && d->kernel[0] == 3 &&
           d->kernel[1] == 3 && d->stride[0] == 1 && d->stride[1] == 1 && d->dilation[0] == 1 &&
           d->dilation[1] == 1 && d->groups == 1;
}

/* rb_engine_options.winograd_scratchpad_limit's default. oneDNN's Winograd
 * backward-weights keeps a copy of the transformed weight gradient per
 * thread: for 512 channels 134 MiB at 2 threads, 638 MiB at 16. */
#define WINOGRAD_SCRATCHPAD_LIMIT ((size_t)96 << 20)

/* The primitive descriptor of an initialized Winograd operation descriptor,
 * or NULL when oneDNN has no kernel for it or its scratchpad is over the
 * limit (the caller then plans direct). */
static dnnl_primitive_desc_t winograd_pd(const rb_engine *e, const_dnnl_op_desc_t desc,
                                         const_dnnl_primitive_desc_t hint)
{
    dnnl_primitive_desc_t pd;
    if (dnnl_primitive_desc_create(&pd, desc, e->attr, e->eng, hint) != dnnl_success)
        return NULL;
    if (dnnl_memory_desc_get_size(query(pd, dnnl_query_scratchpad_md)) > e->winograd_scratchpad_limit) {
        dnnl_primitive_desc_destroy(pd);
        return NULL;
    }
    return pd;
}

/* Appends ", WHAT IMPL" to a node's kernel description when a backward
 * runs a different kind of kernel than its forward (Winograd or direct). */
static void note_backward_impl(enode *en, const_dnnl_primitive_desc_t pd, const char *what)
{
    const char *impl = NULL;
    size_t len = strlen(en->impl);
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    if (impl != NULL && (strstr(impl, "wino") != NULL) != (strstr(en->impl, "wino") != NULL))
        snprintf(en->impl + len, sizeof en->impl - len, ", %s %s", what, impl);
}

/* Convolutions, and linear layers as the convolution they are: a kernel
 * the size of the input, giving K x 1 x 1 (torch.flatten's C, H, W order is
 * exactly the (K, C, H, W) weight layout). oneDNN's convolutions draw all
 * their buffers from the scratchpad, where its gemm-based inner product
 * allocates on every call. */
static rb_status plan_conv(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    const rb_node *in = n->in[0];
    rb_conv_desc linear_as_conv = {.out_channels = n->c, .kernel = {in->h, in->w}, .stride = {1, 1},
                                   .dilation = {1, 1}, .groups = 1};
    const rb_conv_desc *d = n->op == RB_OP_LINEAR ? &linear_as_conv : &n->attr.conv;
    rb_param_tensor *w = rb_node_param(e->g, n, RB_SLOT_WEIGHT), *b = rb_node_param(e->g, n, RB_SLOT_BIAS);
    dnnl_memory_desc_t src, wei, bias, dst, user_w, user_b;
    dnnl_dims_t src_dims = {e->batch, in->c, in->h, in->w}, dst_dims = {e->batch, n->c, n->h, n->w};
    dnnl_dims_t strides = {d->stride[0], d->stride[1]}, dil = {d->dilation[0] - 1, d->dilation[1] - 1};
    dnnl_dims_t pad = {d->padding[0], d->padding[1]};
    /* oneDNN's padding_r makes the output size exact: (o - 1) s + span - i - p */
    dnnl_dims_t pad_r = {(n->h - 1) * d->stride[0] + d->dilation[0] * (d->kernel[0] - 1) + 1 - in->h - d->padding[0],
                         (n->w - 1) * d->stride[1] + d->dilation[1] * (d->kernel[1] - 1) + 1 - in->w - d->padding[1]};
    dnnl_dims_t bias_dims = {n->c};
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t fwd_pd, bwd_d_pd, bwd_w_pd;
    const char *impl = NULL;
    rb_status s;
    /* Under bf16 the classifier stays fp32: it is a sliver of the work, and
     * the logits and their gradient stay exact for the loss. */
    dnnl_data_type_t dt = n->op == RB_OP_LINEAR ? dnnl_f32 : e->conv_dt;

    md_any(&src, 4, src_dims, dt);
    md_any(&dst, 4, dst_dims, dt);
    if (n->op == RB_OP_LINEAR) /* plain logits: the loss and the user read them directly */
        dnnl_memory_desc_init_by_tag(&dst, 4, dst_dims, dnnl_f32, dnnl_nchw);
    if (d->groups == 1) {
        dnnl_dims_t wd = {n->c, in->c, d->kernel[0], d->kernel[1]};
        md_any(&wei, 4, wd, dt);
        md_plain(&user_w, 4, wd);
    } else {
        dnnl_dims_t wd = {d->groups, n->c / d->groups, in->c / d->groups, d->kernel[0], d->kernel[1]};
        md_any(&wei, 5, wd, dt);
        md_plain(&user_w, 5, wd);
    }
    md_plain(&bias, 1, bias_dims);
    user_b = bias;
    fwd_pd = NULL;
    if (winograd_fits(e, n, d, dt) &&
        dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_winograd, &src, &wei,
                                                   b ? &bias : NULL, &dst, strides, dil, pad, pad_r) == dnnl_success)
        fwd_pd = winograd_pd(e, &cd, NULL);
    if (fwd_pd == NULL) {
        DNNL_TRY(dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct,
                                                            &src, &wei, b ? &bias : NULL, &dst, strides, dil,
                                                            pad, pad_r),
                 "convolution forward", n);
        DNNL_TRY(dnnl_primitive_desc_create(&fwd_pd, &cd, e->attr, e->eng, NULL), "convolution forward", n);
    }
    dnnl_primitive_desc_query(fwd_pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(en->impl, sizeof en->impl, "%s", impl ? impl : "?");
    warn_if_reference(fwd_pd, n, "forward");
    s = value_plan(e, en, query(fwd_pd, dnnl_query_dst_md));
    if (s == RB_OK)
        s = diff_plan(e, &en->diff, query(fwd_pd, dnnl_query_dst_md), n);
    if (s == RB_OK)
        s = plan_input(e, en, 0, query(fwd_pd, dnnl_query_src_md));
    if (s == RB_OK)
        s = make_primitive(e, &en->fwd[0], fwd_pd, n, "convolution forward");
    /* weights: the graph's plain copy, reordered to the primitive's layout */
    if (s == RB_OK && dnnl_memory_create(&en->weights_user, &user_w, e->eng, w->value) != dnnl_success)
        s = dnnl_fail(dnnl_out_of_memory, "weights memory", n);
    if (s == RB_OK && b && dnnl_memory_create(&en->bias_user, &user_b, e->eng, b->value) != dnnl_success)
        s = dnnl_fail(dnnl_out_of_memory, "bias memory", n);
    if (s == RB_OK) {
        const dnnl_memory_desc_t *wmd = query(fwd_pd, dnnl_query_weights_md);
        en->weights_reordered = !same_md(wmd, &user_w);
        if (en->weights_reordered) {
            s = slot_plan(e, &en->weights, wmd, n);
            if (s == RB_OK)
                s = make_reorder(e, &en->weights_in, &user_w, wmd, false, n);
        }
    }
    if (s != RB_OK) {
        dnnl_primitive_desc_destroy(fwd_pd);
        return s;
    }

    /* backward data: onto an image by matmul + col2im, or oneDNN's */
    s = plan_image_grad_gemm(e, en, &en->value.md);
    if (s == RB_OK && !en->image_grad_gemm) {
        dnnl_convolution_desc_t bd;
        /* diff_src any: for a plain 3-channel image oneDNN 2.6 has only a
         * reference backward-data in the forward's layout, about a thousand
         * times slower; the gradient edge reorders whatever it picks. */
        bwd_d_pd = NULL;
        if (winograd_fits(e, n, d, dt) &&
            dnnl_dilated_convolution_backward_data_desc_init(&bd, dnnl_convolution_winograd, &src, &wei,
                                                             &en->value.md, strides, dil, pad, pad_r) == dnnl_success)
            bwd_d_pd = winograd_pd(e, &bd, fwd_pd);
        if (bwd_d_pd == NULL) {
            DNNL_TRY(dnnl_dilated_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &src, &wei,
                                                                      &en->value.md, strides, dil, pad, pad_r),
                     "convolution backward data", n);
            DNNL_TRY(dnnl_primitive_desc_create(&bwd_d_pd, &bd, e->attr, e->eng, fwd_pd), "convolution backward data",
                     n);
        }
        warn_if_reference(bwd_d_pd, n, "backward data");
        note_backward_impl(en, bwd_d_pd, "backward data");
        s = make_primitive(e, &en->bwd_data[0], bwd_d_pd, n, "convolution backward data");
        if (s == RB_OK)
            s = plan_grad_edge(e, en, 0, query(bwd_d_pd, dnnl_query_diff_src_md));
        /* Weights "any" for backward-data too (with the forward's layout
         * oneDNN may only have its reference): a second blocked copy when
         * the layouts differ. */
        if (s == RB_OK) {
            const dnnl_memory_desc_t *bwmd = query(bwd_d_pd, dnnl_query_weights_md);
            const dnnl_memory_desc_t *fwmd = en->weights_reordered ? &en->weights.md : &user_w;
            if (!same_md(bwmd, fwmd)) {
                /* Engines that only compute data gradients (attacks) keep
                 * them, so that held weights are converted once. */
                s = e->data_grads_only ? slot_plan(e, &en->weights_bwd, bwmd, n)
                                       : shared_plan(e, &en->weights_bwd, bwmd, n);
                if (s == RB_OK)
                    s = make_reorder(e, &en->weights_bwd_in, &user_w, bwmd, false, n);
            }
        }
        dnnl_primitive_desc_destroy(bwd_d_pd);
    }
    if (s != RB_OK) {
        dnnl_primitive_desc_destroy(fwd_pd);
        return s;
    }
    /* backward weights (not for engines that only ever compute data gradients) */
    if (!e->data_grads_only) {
        dnnl_convolution_desc_t bd;
        dnnl_memory_desc_t dwei = wei;
        dwei.data_type = dnnl_f32; /* fp32 gradients for the fp32 master weights, whatever the precision */
        bwd_w_pd = NULL;
        if (winograd_fits(e, n, d, dt) &&
            dnnl_dilated_convolution_backward_weights_desc_init(&bd, dnnl_convolution_winograd,
                                                                query(fwd_pd, dnnl_query_src_md), &dwei,
                                                                b ? &bias : NULL, &en->value.md, strides, dil, pad,
                                                                pad_r) == dnnl_success)
            bwd_w_pd = winograd_pd(e, &bd, fwd_pd);
        if (bwd_w_pd == NULL) {
            DNNL_TRY(dnnl_dilated_convolution_backward_weights_desc_init(&bd, dnnl_convolution_direct,
                                                                         query(fwd_pd, dnnl_query_src_md), &dwei,
                                                                         b ? &bias : NULL, &en->value.md, strides,
                                                                         dil, pad, pad_r),
                     "convolution backward weights", n);
            DNNL_TRY(dnnl_primitive_desc_create(&bwd_w_pd, &bd, e->attr, e->eng, fwd_pd),
                     "convolution backward weights", n);
        }
        warn_if_reference(bwd_w_pd, n, "backward weights");
        note_backward_impl(en, bwd_w_pd, "backward weights");
        s = make_primitive(e, &en->bwd_weights, bwd_w_pd, n, "convolution backward weights");
        if (s == RB_OK && dnnl_memory_create(&en->diff_weights_user, &user_w, e->eng, w->grad) != dnnl_success)
            s = dnnl_fail(dnnl_out_of_memory, "weight gradient memory", n);
        if (s == RB_OK && b && dnnl_memory_create(&en->diff_bias_user, &user_b, e->eng, b->grad) != dnnl_success)
            s = dnnl_fail(dnnl_out_of_memory, "bias gradient memory", n);
        if (s == RB_OK) {
            const dnnl_memory_desc_t *dwmd = query(bwd_w_pd, dnnl_query_diff_weights_md);
            en->diff_weights_reordered = !same_md(dwmd, &user_w);
            if (en->diff_weights_reordered) {
                s = shared_plan(e, &en->diff_weights, dwmd, n);
                if (s == RB_OK)
                    s = make_reorder(e, &en->diff_weights_out, dwmd, &user_w, false, n);
            }
        }
        dnnl_primitive_desc_destroy(bwd_w_pd);
    }
    dnnl_primitive_desc_destroy(fwd_pd);
    return s;
}

/* The ReLU that batch-norm `en` can run fused (oneDNN's fuse_norm_relu):
 * its only consumer, when the ReLU would run in place anyway (see
 * relu_in_place) and intermediates are not kept; NULL otherwise. */
static enode *fusable_relu(rb_engine *e, const enode *en)
{
    if (e->keep_intermediates || en->consumers != 1)
        return NULL;
    for (size_t k = 0; k < e->g->n_published; k++)
        if (e->g->published[k].node == en->node)
            return NULL;
    for (size_t j = en->node->index + 1; j < e->n; j++)
        if (e->nodes[j].node->n_in > 0 && e->nodes[j].node->in[0] == en->node)
            return e->nodes[j].node->op == RB_OP_RELU ? &e->nodes[j] : NULL;
    return NULL;
}

static rb_status plan_batchnorm(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    enode *producer = &e->nodes[n->in[0]->index];
    const dnnl_memory_desc_t *data = &producer->value.md;
    dnnl_memory_desc_t stat;
    dnnl_dims_t cdims = {n->c};
    rb_status s = RB_OK;
    const float eps = (float)RB_BATCHNORM_EPS;
    md_plain(&stat, 1, cdims);

    en->relu_follows = fusable_relu(e, en) != NULL;
    s = value_plan(e, en, data);
    if (s == RB_OK)
        s = diff_plan(e, &en->diff, data, n);
    if (s == RB_OK)
        s = slot_plan(e, &en->mean, &stat, n);
    if (s == RB_OK)
        s = slot_plan(e, &en->variance, &stat, n);
    if (s != RB_OK)
        return s;
#define BN_MEM(field, slot_)                                                                     \
    DNNL_TRY(dnnl_memory_create(&en->field, &stat, e->eng, rb_node_param(e->g, n, slot_)->value), \
             "batch-norm memory", n)
    BN_MEM(scale, RB_SLOT_WEIGHT);
    BN_MEM(shift, RB_SLOT_BIAS);
    BN_MEM(running_mean, RB_SLOT_RUNNING_MEAN);
    BN_MEM(running_var, RB_SLOT_RUNNING_VAR);
#undef BN_MEM
    DNNL_TRY(dnnl_memory_create(&en->diff_scale, &stat, e->eng, rb_node_param(e->g, n, RB_SLOT_WEIGHT)->grad),
             "batch-norm memory", n);
    DNNL_TRY(dnnl_memory_create(&en->diff_shift, &stat, e->eng, rb_node_param(e->g, n, RB_SLOT_BIAS)->grad),
             "batch-norm memory", n);
    /* [0]: batch statistics; [1]: running statistics, still with a
     * training-kind forward so that a backward (attacks) can follow.
     * Backward: the full one (input and scale/shift gradients) for
     * training; data-only, with batch statistics oneDNN's backward-data
     * where it has one (2.6 has none with a scale), with running statistics
     * the inference forward applied to the gradient (see below). Engines
     * that never train plan no full backward unless it is the only way to
     * the input gradient. */
    for (int mode = 0; mode < 2; mode++) {
        unsigned flags = dnnl_use_scale | dnnl_use_shift | (mode ? dnnl_use_global_stats : 0u) |
                         (en->relu_follows ? dnnl_fuse_norm_relu : 0u);
        dnnl_batch_normalization_desc_t fd, bd;
        dnnl_primitive_desc_t fpd, bpd;
        const char *impl = NULL;
        DNNL_TRY(dnnl_batch_normalization_forward_desc_init(&fd, dnnl_forward_training, data, eps, flags),
                 "batch-norm forward", n);
        DNNL_TRY(dnnl_primitive_desc_create(&fpd, &fd, e->attr, e->eng, NULL), "batch-norm forward", n);
        if (mode == 0) {
            dnnl_primitive_desc_query(fpd, dnnl_query_impl_info_str, 0, &impl);
            snprintf(en->impl, sizeof en->impl, "%s", impl ? impl : "?");
        }
        s = make_primitive(e, &en->fwd[mode], fpd, n, "batch-norm forward");
        if (s == RB_OK && mode == 0 && en->relu_follows) {
            /* the fused ReLU's mask, written by either forward, read by backward */
            const dnnl_memory_desc_t *ws = query(fpd, dnnl_query_workspace_md);
            if (ws == NULL || dnnl_memory_desc_get_size(ws) == 0)
                s = dnnl_fail(dnnl_unimplemented, "batch-norm with a fused ReLU (no workspace)", n);
            else
                s = slot_plan(e, &en->workspace, ws, n);
        }
        for (int full = mode; s == RB_OK && full < 2; full++) {
            if (full && e->data_grads_only && (mode == 1 || en->bwd_data[mode] != NULL))
                break;
            if (dnnl_batch_normalization_backward_desc_init(&bd, full ? dnnl_backward : dnnl_backward_data,
                                                            data, data, eps, flags) != dnnl_success ||
                dnnl_primitive_desc_create(&bpd, &bd, e->attr, e->eng, fpd) != dnnl_success) {
                /* Without a data-only backward the full one runs, its
                 * parameter gradients going to a discard buffer. */
                if (!full)
                    continue;
                s = dnnl_fail(dnnl_unimplemented, "batch-norm backward", n);
                break;
            }
            s = make_primitive(e, full ? &en->bwd_full[mode] : &en->bwd_data[mode], bpd, n, "batch-norm backward");
            dnnl_primitive_desc_destroy(bpd);
        }
        if (s == RB_OK && mode == 0 && en->bwd_data[mode] == NULL && en->discard_scale.mem == NULL) {
            s = slot_plan(e, &en->discard_scale, &stat, n);
            if (s == RB_OK)
                s = slot_plan(e, &en->discard_shift, &stat, n);
        }
        dnnl_primitive_desc_destroy(fpd);
        if (s != RB_OK)
            return s;
    }
    /* Running statistics make batch-norm affine: its input gradient is
     * diff_dst * gamma / sqrt(running_var + eps) per channel (PyTorch's
     * eval-mode backward), which is the inference forward itself applied to
     * the gradient with a zero mean and shift: fwd[1] on zeros (with a
     * fused ReLU, a copy of it without the ReLU: the ReLU's mask is applied
     * to the gradient first, by the ReLU node). */
    s = slot_plan(e, &en->zeros, &stat, n);
    if (s == RB_OK && en->relu_follows) {
        dnnl_batch_normalization_desc_t fd;
        dnnl_primitive_desc_t fpd;
        DNNL_TRY(dnnl_batch_normalization_forward_desc_init(&fd, dnnl_forward_training, data, eps,
                                                            dnnl_use_scale | dnnl_use_shift | dnnl_use_global_stats),
                 "batch-norm forward", n);
        DNNL_TRY(dnnl_primitive_desc_create(&fpd, &fd, e->attr, e->eng, NULL), "batch-norm forward", n);
        s = make_primitive(e, &en->affine, fpd, n, "batch-norm forward");
        dnnl_primitive_desc_destroy(fpd);
    }
    if (s != RB_OK)
        return s;
    return plan_grad_edge(e, en, 0, data);
}

/* A ReLU may overwrite its input when nothing else reads that value, now or
 * in backward: the producer has no other consumer and is not published
 * (ReLU's own backward uses its output, and no producer's backward needs
 * its own output). It saves one activation per conv/batch-norm + ReLU. */
static bool relu_in_place(const rb_engine *e, const enode *en)
{
    const rb_node *producer = en->node->in[0];
    if (e->keep_intermediates || e->nodes[producer->index].consumers != 1 || producer->op == RB_OP_INPUT)
        return false;
    for (size_t k = 0; k < e->g->n_published; k++)
        if (e->g->published[k].node == producer)
            return false;
    return true;
}

/* An in-place ReLU's value: its producer's memory (placed by plan_pools). */
static rb_status value_alias(rb_engine *e, enode *en, const slot *of)
{
    en->value.md = of->md;
    en->value.bytes = of->bytes;
    en->value_alias = true;
    DNNL_TRY(dnnl_memory_create(&en->value.mem, &en->value.md, e->eng, DNNL_MEMORY_NONE), "memory", en->node);
    return RB_OK;
}

/* ReLU (PyTorch's gradient: where the output is positive), pooling, global pooling. */
static rb_status plan_eltwise_or_pool(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    enode *producer = &e->nodes[n->in[0]->index];
    const dnnl_memory_desc_t *src = &producer->value.md;
    dnnl_primitive_desc_t fpd, bpd;
    const char *impl = NULL;
    rb_status s;

    if (n->op == RB_OP_RELU) {
        dnnl_eltwise_desc_t fd, bd;
        DNNL_TRY(dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd,
                                                src, 0.0f, 0.0f),
                 "relu forward", n);
        DNNL_TRY(dnnl_primitive_desc_create(&fpd, &fd, e->attr, e->eng, NULL), "relu forward", n);
        DNNL_TRY(dnnl_eltwise_backward_desc_init(&bd, dnnl_eltwise_relu_use_dst_for_bwd, src, src, 0.0f, 0.0f),
                 "relu backward", n);
        DNNL_TRY(dnnl_primitive_desc_create(&bpd, &bd, e->attr, e->eng, fpd), "relu backward", n);
    } else {
        dnnl_pooling_v2_desc_t fd, bd;
        dnnl_memory_desc_t dst;
        dnnl_dims_t dst_dims = {e->batch, n->c, n->h, n->w};
        dnnl_dims_t kernel, strides, pad_l, pad_r, dil = {0, 0};
        dnnl_alg_kind_t alg = n->op == RB_OP_MAXPOOL ? dnnl_pooling_max : dnnl_pooling_avg_include_padding;
        if (n->op == RB_OP_GLOBAL_AVGPOOL) {
            const rb_node *in = n->in[0];
            kernel[0] = in->h;
            kernel[1] = in->w;
            strides[0] = strides[1] = 1;
            pad_l[0] = pad_l[1] = pad_r[0] = pad_r[1] = 0;
            alg = dnnl_pooling_avg_exclude_padding;
        } else {
            const rb_pool_desc *d = &n->attr.pool;
            const rb_node *in = n->in[0];
            for (int i = 0; i < 2; i++) {
                kernel[i] = d->kernel[i];
                strides[i] = d->stride[i];
                pad_l[i] = d->padding[i];
            }
            pad_r[0] = (n->h - 1) * d->stride[0] + d->kernel[0] - in->h - d->padding[0];
            pad_r[1] = (n->w - 1) * d->stride[1] + d->kernel[1] - in->w - d->padding[1];
        }
        md_any(&dst, 4, dst_dims, src->data_type);
        DNNL_TRY(dnnl_pooling_v2_forward_desc_init(&fd, dnnl_forward_training, alg, src, &dst, strides, kernel,
                                                   dil, pad_l, pad_r),
                 "pooling forward", n);
        DNNL_TRY(dnnl_primitive_desc_create(&fpd, &fd, e->attr, e->eng, NULL), "pooling forward", n);
        DNNL_TRY(dnnl_pooling_v2_backward_desc_init(&bd, alg, src, query(fpd, dnnl_query_dst_md), strides, kernel,
                                                    dil, pad_l, pad_r),
                 "pooling backward", n);
        DNNL_TRY(dnnl_primitive_desc_create(&bpd, &bd, e->attr, e->eng, fpd), "pooling backward", n);
    }
    dnnl_primitive_desc_query(fpd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(en->impl, sizeof en->impl, "%s", impl ? impl : "?");
    if (n->op == RB_OP_RELU && relu_in_place(e, en))
        s = value_alias(e, en, &producer->value);
    else
        s = value_plan(e, en, query(fpd, dnnl_query_dst_md));
    if (s == RB_OK && n->op == RB_OP_RELU && producer->add_applies_relu) {
        en->relu_in_add = true;
        snprintf(en->impl, sizeof en->impl, "fused into add '%.70s'", producer->node->name);
    }
    if (s == RB_OK && n->op == RB_OP_RELU && producer->relu_follows) {
        /* fused: the gradient is the batch-norm's memory (placed by plan_pools) */
        en->relu_fused = true;
        snprintf(en->impl, sizeof en->impl, "fused into batch-norm '%.60s'", producer->node->name);
        en->diff.md = producer->diff.md;
        en->diff.bytes = producer->diff.bytes;
        DNNL_TRY(dnnl_memory_create(&en->diff.mem, &en->diff.md, e->eng, DNNL_MEMORY_NONE), "memory", n);
    } else if (s == RB_OK) {
        s = diff_plan(e, &en->diff, query(fpd, dnnl_query_dst_md), n);
    }
    if (s == RB_OK) {
        const dnnl_memory_desc_t *ws = query(fpd, dnnl_query_workspace_md);
        if (ws != NULL && dnnl_memory_desc_get_size(ws) > 0)
            s = slot_plan(e, &en->workspace, ws, n);
    }
    if (s == RB_OK)
        s = make_primitive(e, &en->fwd[0], fpd, n, "forward");
    if (s == RB_OK)
        s = make_primitive(e, &en->bwd_data[0], bpd, n, "backward");
    if (s == RB_OK)
        s = plan_grad_edge(e, en, 0, query(bpd, dnnl_query_diff_src_md));
    dnnl_primitive_desc_destroy(fpd);
    dnnl_primitive_desc_destroy(bpd);
    return s;
}

static rb_status plan_add(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    const dnnl_memory_desc_t *a = &e->nodes[n->in[0]->index].value.md;
    const dnnl_memory_desc_t *b = &e->nodes[n->in[1]->index].value.md;
    dnnl_binary_desc_t d;
    dnnl_primitive_desc_t pd;
    const char *impl = NULL;
    rb_status s;
    for (size_t j = n->index + 1; j < e->n && !e->keep_intermediates; j++)
        if (e->nodes[j].node->n_in > 0 && e->nodes[j].node->in[0] == n) {
            en->add_applies_relu = e->nodes[j].node->op == RB_OP_RELU && relu_in_place(e, &e->nodes[j]);
            break;
        }
    DNNL_TRY(dnnl_binary_desc_init(&d, dnnl_binary_add, a, b, a), "add", n);
    DNNL_TRY(dnnl_primitive_desc_create(&pd, &d, en->add_applies_relu ? e->attr_relu : e->attr, e->eng, NULL),
             "add", n);
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(en->impl, sizeof en->impl, "%s", impl ? impl : "?");
    s = make_primitive(e, &en->fwd[0], pd, n, "add");
    dnnl_primitive_desc_destroy(pd);
    if (s == RB_OK)
        s = value_plan(e, en, a);
    if (s == RB_OK)
        s = diff_plan(e, &en->diff, a, n);
    /* The gradient passes unchanged to both inputs. */
    if (s == RB_OK)
        s = plan_grad_edge(e, en, 0, a);
    if (s == RB_OK)
        s = plan_grad_edge(e, en, 1, a);
    return s;
}

static rb_status plan_loss(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    enode *producer = &e->nodes[n->in[0]->index];
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {e->batch, producer->node->c, 1, 1};
    rb_status s;
    md_plain(&md, 4, dims);
    if (!same_md(&producer->value.md, &md))
        return rb_error_set(RB_ERR_UNSUPPORTED,
                            "engine: softmax cross-entropy '%s' needs plain logits, as a linear layer "
                            "gives; '%s' is a %s",
                            n->name, producer->node->name, rb_op_str(producer->node->op));
    snprintf(en->impl, sizeof en->impl, "robusta:softmax_ce");
    e->loss = en;
    e->logits = producer;
    {
        dnnl_memory_desc_t lmd;
        dnnl_dims_t ldims = {e->batch, 1};
        md_plain(&lmd, 2, ldims);
        s = value_plan(e, en, &lmd);
        if (s == RB_OK)
            s = diff_plan(e, &en->diff, &lmd, n);
    }
    /* softmax probabilities, kept for backward */
    if (s == RB_OK)
        s = slot_plan(e, &en->workspace, &md, n);
    if (s == RB_OK)
        s = plan_grad_edge(e, en, 0, &md);
    return s;
}

/* ------------------------------------------------------------ create / destroy */

static void slot_free(slot *s)
{
    if (s->mem)
        dnnl_memory_destroy(s->mem);
}

void rb_engine_destroy(rb_engine *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; e->nodes && i < e->n; i++) {
        enode *en = &e->nodes[i];
        slot *slots[] = {&en->value, &en->diff, &en->workspace, &en->weights, &en->diff_weights,
                         &en->mean, &en->variance, &en->discard_scale, &en->discard_shift, &en->weights_bwd,
                         &en->zeros, &en->in[0].src, &en->in[1].src};
        dnnl_primitive_t prims[] = {en->fwd[0], en->fwd[1], en->bwd_data[0], en->bwd_data[1],
                                    en->bwd_full[0], en->bwd_full[1], en->bwd_weights, en->weights_in,
                                    en->weights_bwd_in,
                                    en->diff_weights_out, en->in[0].to_producer, en->in[1].to_producer,
                                    en->in[0].fwd_reorder, en->in[1].fwd_reorder, en->affine, en->gemm_rows_in,
                                    en->gemm_matmul};
        dnnl_memory_t mems[] = {en->weights_user, en->diff_weights_user, en->bias_user, en->diff_bias_user,
                                en->scale, en->shift, en->diff_scale, en->diff_shift, en->running_mean,
                                en->running_var, en->in[0].scratch, en->in[1].scratch, en->gemm_diff_image,
                                en->gemm_rows, en->gemm_cols, en->gemm_weights};
        for (size_t k = 0; k < sizeof slots / sizeof slots[0]; k++)
            slot_free(slots[k]);
        for (size_t k = 0; k < sizeof prims / sizeof prims[0]; k++)
            if (prims[k])
                dnnl_primitive_destroy(prims[k]);
        for (size_t k = 0; k < sizeof mems / sizeof mems[0]; k++)
            if (mems[k])
                dnnl_memory_destroy(mems[k]);
    }
    slot_free(&e->scratchpad);
    free(e->counts);
    free(e->nodes);
    free(e->arena);
    free(e->losses);
    free(e->labels);
    if (e->attr)
        dnnl_primitive_attr_destroy(e->attr);
    if (e->attr_accumulate)
        dnnl_primitive_attr_destroy(e->attr_accumulate);
    if (e->attr_relu)
        dnnl_primitive_attr_destroy(e->attr_relu);
    if (e->stream)
        dnnl_stream_destroy(e->stream);
    if (e->eng)
        dnnl_engine_destroy(e->eng);
    free(e);
}

static rb_status bind(slot *s, unsigned char *arena)
{
    if (s->mem == NULL)
        return RB_OK;
    if (dnnl_memory_set_data_handle(s->mem, arena + s->offset) != dnnl_success)
        return rb_error_set(RB_ERR_INTERNAL, "engine: cannot bind arena memory");
    return RB_OK;
}

static rb_status create_attrs(rb_engine *e)
{
    dnnl_post_ops_t ops;
    DNNL_TRY(dnnl_primitive_attr_create(&e->attr), "attributes", NULL);
    DNNL_TRY(dnnl_primitive_attr_set_scratchpad_mode(e->attr, dnnl_scratchpad_mode_user), "attributes", NULL);
    DNNL_TRY(dnnl_primitive_attr_create(&e->attr_accumulate), "attributes", NULL);
    DNNL_TRY(dnnl_primitive_attr_set_scratchpad_mode(e->attr_accumulate, dnnl_scratchpad_mode_user),
             "attributes", NULL);
    DNNL_TRY(dnnl_post_ops_create(&ops), "attributes", NULL);
    DNNL_TRY(dnnl_post_ops_append_sum(ops, 1.0f), "attributes", NULL);
    DNNL_TRY(dnnl_primitive_attr_set_post_ops(e->attr_accumulate, ops), "attributes", NULL);
    dnnl_post_ops_destroy(ops);
    DNNL_TRY(dnnl_primitive_attr_create(&e->attr_relu), "attributes", NULL);
    DNNL_TRY(dnnl_primitive_attr_set_scratchpad_mode(e->attr_relu, dnnl_scratchpad_mode_user), "attributes", NULL);
    DNNL_TRY(dnnl_post_ops_create(&ops), "attributes", NULL);
    DNNL_TRY(dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f), "attributes", NULL);
    DNNL_TRY(dnnl_primitive_attr_set_post_ops(e->attr_relu, ops), "attributes", NULL);
    dnnl_post_ops_destroy(ops);
    return RB_OK;
}

/* Sizes OpenMP's pool from the hwloc plan and binds each of its threads to
 * its core. Binding failures (a container that forbids it) only warn:
 * results do not depend on placement. */
/* The machine as the process found it. Loaded once: after an engine binds
 * the calling thread, a fresh load restricted to the current binding would
 * see a single core. Kept for the life of the process. */
static pthread_once_t machine_once = PTHREAD_ONCE_INIT;
static rb_topology *machine;
static rb_status machine_status;
static char machine_error[512];

static void load_machine(void)
{
    machine_status = rb_topology_create(&machine, NULL);
    if (machine_status != RB_OK)
        snprintf(machine_error, sizeof machine_error, "%s", rb_last_error());
}

static rb_status setup_threads(rb_engine *e, const rb_engine_options *opt)
{
    rb_thread_plan *plan = NULL;
    rb_status s;
    int failures = 0;
    pthread_once(&machine_once, load_machine);
    if (machine_status != RB_OK)
        return rb_error_set(machine_status, "%s", machine_error);
    s = rb_thread_plan_create(&plan, machine, opt ? opt->threads : 0, -1);
    if (s != RB_OK)
        return s;
    e->threads = rb_thread_plan_count(plan);
    rb_thread_plan_describe(plan, e->threads_text, sizeof e->threads_text);
    omp_set_num_threads(e->threads);
#ifdef _OPENMP
    if (opt == NULL || !opt->no_binding) {
#pragma omp parallel num_threads(e->threads) reduction(+ : failures)
        failures += rb_thread_plan_bind(plan, omp_get_thread_num()) != RB_OK;
        if (failures > 0)
            rb_log(RB_LOG_WARN, "engine: could not bind %d of %d threads (%s); running unbound", failures,
                   e->threads, rb_last_error());
    } else {
        snprintf(e->threads_text + strlen(e->threads_text), sizeof e->threads_text - strlen(e->threads_text),
                 ", not bound");
    }
#else
    /* Compiled without OpenMP pragmas (clang's -fopenmp=libgomp only links
     * the runtime oneDNN uses): the pool's threads cannot be bound one by
     * one, and binding this thread alone would pin the whole pool, which
     * inherits its mask, to one core, where oneDNN's spinning barriers run
     * about 70 times slower. Leave placement to the OS. */
    (void)failures;
    snprintf(e->threads_text + strlen(e->threads_text), sizeof e->threads_text - strlen(e->threads_text),
             ", not bound (built without OpenMP)");
#endif
    rb_thread_plan_destroy(plan);
    return RB_OK;
}

/* Zeroes the arena from the compute threads, in the static chunks their
 * loops use, so that first touch places pages near them. */
static void first_touch(rb_engine *e)
{
    const long pages = (long)((e->arena_bytes + 4095) / 4096);
#pragma omp parallel for schedule(static) num_threads(e->threads)
    for (long p = 0; p < pages; p++) {
        size_t at = (size_t)p * 4096;
        memset(e->arena + at, 0, e->arena_bytes - at < 4096 ? e->arena_bytes - at : 4096);
    }
}

/* Where the arena goes, at debug level: what to shrink next. */
static void log_arena(const rb_engine *e)
{
    double mib = 1.0 / (1 << 20), values = 0, edges = 0, weights = 0, other = 0;
    if (rb_log_get_level() < RB_LOG_DEBUG)
        return;
    for (size_t i = 0; i < e->n; i++) {
        const enode *en = &e->nodes[i];
        values += en->value_alias || en->value.pooled ? 0 : (double)en->value.bytes;
        edges += (double)(en->in[0].src.bytes + en->in[1].src.bytes);
        weights += (double)(en->weights.bytes + (en->weights_bwd.shared ? 0 : en->weights_bwd.bytes));
        other += (double)(en->workspace.bytes + en->mean.bytes + en->variance.bytes + en->discard_scale.bytes +
                          en->discard_shift.bytes + en->zeros.bytes);
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
 * layouts pad channels to 16), copies of the weights in blocked layouts and
 * their gradients, and scratch bounded by the Winograd scratchpad limit.
 * Measured against rb_engine_arena_bytes for ResNet-18/50 from 8x8 to
 * 256x256, training and data-gradient engines, the real arena lies between
 * 0.8 and 1.25 times this figure (tests/check_model.c checks [0.5, 2]). */
rb_status rb_engine_estimate_bytes(const rb_graph *g, int64_t batch, const rb_engine_options *opt, uint64_t *bytes)
{
    double values = 0, params = 0, total;
    (void)opt; /* training and data-gradient engines measure alike */
    if (bytes != NULL)
        *bytes = 0;
    if (g == NULL || bytes == NULL || batch < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_engine_estimate_bytes: no graph, no output or batch %lld",
                            (long long)batch);
    for (size_t i = 0; i < g->n_nodes; i++) {
        const rb_node *n = g->nodes[i];
        values += (double)((n->c + 15) / 16 * 16) * (double)n->h * (double)n->w;
    }
    for (size_t i = 0; i < g->n_params; i++)
        params += (double)g->params[i].numel;
    total = values * (double)batch * sizeof(float) + 2 * params * sizeof(float) + (double)(8 << 20);
    *bytes = total >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)total;
    return RB_OK;
}

rb_status rb_engine_create(rb_engine **out, rb_graph *g, int64_t batch, const rb_engine_options *opt)
{
    rb_engine *e;
    rb_status s = RB_OK;
    *out = NULL;
    if (batch < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: batch %lld; need at least 1", (long long)batch);
    if (g->input == NULL || g->n_nodes < 2)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: the graph has no input or no layers");
    if (opt != NULL && opt->threads < 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: %d threads", opt->threads);
    if (opt != NULL && opt->precision != RB_PRECISION_F32 && opt->precision != RB_PRECISION_BF16)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: unknown precision %d", (int)opt->precision);
    if (opt != NULL && opt->conv_algorithm != RB_CONV_WINOGRAD && opt->conv_algorithm != RB_CONV_DIRECT)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: unknown convolution algorithm %d",
                            (int)opt->conv_algorithm);
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "engine: out of memory");
    e->g = g;
    e->keep_intermediates = opt != NULL && opt->keep_intermediates;
    e->data_grads_only = opt != NULL && opt->data_grads_only;
    e->conv_dt = opt != NULL && opt->precision == RB_PRECISION_BF16 ? dnnl_bf16 : dnnl_f32;
    e->conv_algorithm = opt != NULL ? opt->conv_algorithm : RB_CONV_WINOGRAD;
    e->winograd_scratchpad_limit =
        opt != NULL && opt->winograd_scratchpad_limit > 0 ? opt->winograd_scratchpad_limit : WINOGRAD_SCRATCHPAD_LIMIT;
    if (e->conv_dt == dnnl_bf16 &&
        (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_bf16) != dnnl_cpu_isa_avx512_core_bf16)
        rb_log(RB_LOG_WARN, "engine: this CPU has no native bf16 instructions (avx512_bf16); oneDNN emulates "
                            "them where it can, slower than fp32: prefer --precision f32 here");
    e->batch = batch;
    e->n = g->n_nodes;
    e->nodes = calloc(e->n, sizeof *e->nodes);
    e->losses = calloc((size_t)batch, sizeof *e->losses);
    e->labels = calloc((size_t)batch, sizeof *e->labels);
    e->counts = calloc(RB_PRIM_KIND_COUNT, sizeof *e->counts);
    if (e->nodes == NULL || e->losses == NULL || e->labels == NULL || e->counts == NULL) {
        rb_engine_destroy(e);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "engine: out of memory");
    }
    if (dnnl_engine_create(&e->eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&e->stream, e->eng, dnnl_stream_default_flags) != dnnl_success) {
        rb_engine_destroy(e);
        return rb_error_set(RB_ERR_INTERNAL, "engine: cannot create a oneDNN CPU engine");
    }
    s = setup_threads(e, opt);
    if (s == RB_OK)
        s = create_attrs(e);
    for (size_t i = 0; i < e->n; i++) {
        e->nodes[i].node = g->nodes[i];
        for (size_t k = 0; k < g->nodes[i]->n_in; k++)
            e->nodes[g->nodes[i]->in[k]->index].consumers++;
    }
    for (size_t i = 0; s == RB_OK && i < e->n; i++) {
        enode *en = &e->nodes[i];
        switch (en->node->op) {
        case RB_OP_INPUT: s = plan_input_node(e, en); break;
        case RB_OP_CONV:
        case RB_OP_LINEAR: s = plan_conv(e, en); break;
        case RB_OP_BATCHNORM: s = plan_batchnorm(e, en); break;
        case RB_OP_RELU:
        case RB_OP_MAXPOOL:
        case RB_OP_AVGPOOL:
        case RB_OP_GLOBAL_AVGPOOL: s = plan_eltwise_or_pool(e, en); break;
        case RB_OP_ADD: s = plan_add(e, en); break;
        case RB_OP_SOFTMAX_CE: s = plan_loss(e, en); break;
        }
        if (en->node->op == RB_OP_INPUT && s == RB_OK)
            s = diff_plan(e, &en->diff, &en->value.md, en->node);
    }
    /* Nodes whose value nobody reads are a mistake in the graph (a head
     * forgotten, a branch not added back); say which. */
    for (size_t i = 0; s == RB_OK && i < e->n; i++) {
        const rb_node *n = e->nodes[i].node;
        bool published = false;
        for (size_t k = 0; k < g->n_published; k++)
            published |= g->published[k].node == n;
        if (e->nodes[i].consumers == 0 && n->op != RB_OP_SOFTMAX_CE && i + 1 != e->n && !published)
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                             "engine: node '%s' (%s) is computed but nothing uses it; connect it, "
                             "publish it, or remove it",
                             n->name, rb_op_str(n->op));
    }
    if (s == RB_OK)
        s = plan_pools(e);
    if (s == RB_OK) {
        dnnl_memory_desc_t md;
        dnnl_dims_t dims = {(dnnl_dim_t)(e->scratchpad_bytes > 0 ? e->scratchpad_bytes : 1)};
        dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_u8, dnnl_a);
        s = slot_plan(e, &e->scratchpad, &md, NULL);
        e->scratch.offset = reserve_bytes(e, e->scratch_bytes);
        e->scratch.bytes = e->scratch_bytes;
        e->shared_weights.offset = reserve_bytes(e, e->shared_weights.bytes);
        for (size_t i = 0; i < e->n; i++) {
            slot *shared[] = {&e->nodes[i].weights_bwd, &e->nodes[i].diff_weights};
            for (size_t k = 0; k < 2; k++)
                if (shared[k]->shared)
                    shared[k]->offset = e->shared_weights.offset;
        }
    }
    if (s == RB_OK) {
        /* 2 MiB alignment and MADV_HUGEPAGE: activations of large models
         * span gigabytes, and 4 KiB pages make every layer a TLB-miss storm. */
        size_t bytes = (e->arena_bytes + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
        e->arena = aligned_alloc(HUGE_PAGE, bytes ? bytes : HUGE_PAGE);
        if (e->arena != NULL && bytes >= HUGE_PAGE)
            (void)madvise(e->arena, bytes, MADV_HUGEPAGE); /* advice only: fine if refused */
        if (e->arena == NULL)
            s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "engine: cannot allocate a %zu MiB arena for batch %lld",
                             e->arena_bytes >> 20, (long long)batch);
        else
            first_touch(e); /* also commits the pages before the first step */
    }
    for (size_t i = 0; s == RB_OK && i < e->n; i++) {
        enode *en = &e->nodes[i];
        slot *slots[] = {&en->value, &en->diff, &en->workspace, &en->weights, &en->diff_weights,
                         &en->mean, &en->variance, &en->discard_scale, &en->discard_shift, &en->weights_bwd,
                         &en->zeros, &en->in[0].src, &en->in[1].src};
        for (size_t k = 0; s == RB_OK && k < sizeof slots / sizeof slots[0]; k++)
            s = bind(slots[k], e->arena);
        for (size_t k = 0; s == RB_OK && k < en->node->n_in; k++)
            if (en->in[k].scratch &&
                dnnl_memory_set_data_handle(en->in[k].scratch, e->arena + e->scratch.offset) != dnnl_success)
                s = rb_error_set(RB_ERR_INTERNAL, "engine: cannot bind arena memory");
        if (s == RB_OK && en->image_grad_gemm &&
            (dnnl_memory_set_data_handle(en->gemm_rows, e->arena + e->scratch.offset) != dnnl_success ||
             dnnl_memory_set_data_handle(en->gemm_cols, e->arena + e->scratch.offset + en->gemm_rows_bytes) !=
                 dnnl_success))
            s = rb_error_set(RB_ERR_INTERNAL, "engine: cannot bind arena memory");
    }
    if (s == RB_OK)
        s = bind(&e->scratchpad, e->arena);
    if (s != RB_OK) {
        rb_engine_destroy(e);
        return s;
    }
    rb_log(RB_LOG_DEBUG, "engine: %zu nodes, batch %lld, arena %.1f MiB, %s", e->n, (long long)batch,
           (double)e->arena_bytes / (1 << 20), e->threads_text);
    log_arena(e);
    *out = e;
    return RB_OK;
}

/* ------------------------------------------------------------ execution */

typedef struct args {
    dnnl_exec_arg_t a[16];
    int n;
} args;

static void arg(args *x, int which, dnnl_memory_t m)
{
    x->a[x->n].arg = which;
    x->a[x->n].memory = m;
    x->n++;
}

/* Every primitive of a step runs here, counted by its kind. */
static rb_status run(rb_engine *e, dnnl_primitive_t p, args *x, const rb_node *n, const char *what,
                     rb_engine_primitive_kind kind)
{
    arg(x, DNNL_ARG_SCRATCHPAD, e->scratchpad.mem);
    e->counts[kind]++;
    DNNL_TRY(dnnl_primitive_execute(p, e->stream, x->n, x->a), what, n);
    return RB_OK;
}

static rb_status reorder(rb_engine *e, dnnl_primitive_t p, dnnl_memory_t from, dnnl_memory_t to, const rb_node *n,
                         rb_engine_primitive_kind kind)
{
    args x = {.n = 0};
    arg(&x, DNNL_ARG_FROM, from);
    arg(&x, DNNL_ARG_TO, to);
    return run(e, p, &x, n, "reorder", kind);
}

static rb_status forward_node(rb_engine *e, enode *en, bool training)
{
    const rb_node *n = en->node;
    args x = {.n = 0};
    rb_status s = RB_OK;
    for (size_t k = 0; k < n->n_in && s == RB_OK; k++)
        if (en->in[k].reordered)
            s = reorder(e, en->in[k].fwd_reorder, e->nodes[n->in[k]->index].value.mem, en->in[k].src.mem, n,
                        RB_PRIM_REORDER_ACTIVATION);
    if (s != RB_OK)
        return s;
    switch (n->op) {
    case RB_OP_INPUT: return RB_OK;
    case RB_OP_CONV:
    case RB_OP_LINEAR:
        if (en->weights_reordered && !(e->weights_held && en->weights_ready)) {
            if ((s = reorder(e, en->weights_in, en->weights_user, en->weights.mem, n, RB_PRIM_REORDER_WEIGHTS)) != RB_OK)
                return s;
            en->weights_ready = true;
        }
        arg(&x, DNNL_ARG_SRC, input_mem(e, en, 0));
        arg(&x, DNNL_ARG_WEIGHTS, en->weights_reordered ? en->weights.mem : en->weights_user);
        if (en->bias_user)
            arg(&x, DNNL_ARG_BIAS, en->bias_user);
        arg(&x, DNNL_ARG_DST, en->value.mem);
        return run(e, en->fwd[0], &x, n, "forward", RB_PRIM_CONV_FORWARD);
    case RB_OP_BATCHNORM: {
        int mode = training ? 0 : 1;
        arg(&x, DNNL_ARG_SRC, input_mem(e, en, 0));
        arg(&x, DNNL_ARG_DST, en->value.mem);
        arg(&x, DNNL_ARG_SCALE, en->scale);
        arg(&x, DNNL_ARG_SHIFT, en->shift);
        arg(&x, DNNL_ARG_MEAN, training ? en->mean.mem : en->running_mean);
        arg(&x, DNNL_ARG_VARIANCE, training ? en->variance.mem : en->running_var);
        if (en->relu_follows)
            arg(&x, DNNL_ARG_WORKSPACE, en->workspace.mem);
        s = run(e, en->fwd[mode], &x, n, "forward", RB_PRIM_BATCHNORM_FORWARD);
        if (s == RB_OK && training) {
            /* Running statistics as PyTorch keeps them: momentum 0.1, and
             * the unbiased variance (oneDNN reports the biased one). */
            float *rm = rb_node_param(e->g, n, RB_SLOT_RUNNING_MEAN)->value;
            float *rv = rb_node_param(e->g, n, RB_SLOT_RUNNING_VAR)->value;
            const float *bm = arena_floats(e, en->mean.offset);
            const float *bv = arena_floats(e, en->variance.offset);
            double count = (double)(e->batch * n->h * n->w);
            double unbias = count > 1 ? count / (count - 1) : 1.0;
            for (int64_t c = 0; c < n->c; c++) {
                rm[c] = (float)((1 - RB_BATCHNORM_MOMENTUM) * rm[c] + RB_BATCHNORM_MOMENTUM * bm[c]);
                rv[c] = (float)((1 - RB_BATCHNORM_MOMENTUM) * rv[c] + RB_BATCHNORM_MOMENTUM * bv[c] * unbias);
            }
        }
        return s;
    }
    case RB_OP_RELU:
    case RB_OP_MAXPOOL:
    case RB_OP_AVGPOOL:
    case RB_OP_GLOBAL_AVGPOOL:
        if (en->relu_fused || en->relu_in_add) /* the batch-norm or add before it applied it */
            return RB_OK;
        arg(&x, DNNL_ARG_SRC, input_mem(e, en, 0));
        arg(&x, DNNL_ARG_DST, en->value.mem);
        if (en->workspace.mem)
            arg(&x, DNNL_ARG_WORKSPACE, en->workspace.mem);
        return run(e, en->fwd[0], &x, n, "forward",
                   n->op == RB_OP_RELU ? RB_PRIM_RELU_FORWARD : RB_PRIM_POOLING_FORWARD);
    case RB_OP_ADD:
        arg(&x, DNNL_ARG_SRC_0, e->nodes[n->in[0]->index].value.mem);
        arg(&x, DNNL_ARG_SRC_1, e->nodes[n->in[1]->index].value.mem);
        arg(&x, DNNL_ARG_DST, en->value.mem);
        return run(e, en->fwd[0], &x, n, "forward", RB_PRIM_ADD_FORWARD);
    case RB_OP_SOFTMAX_CE: {
        int64_t k = n->in[0]->c;
        const float *z = arena_floats(e, e->logits->value.offset);
        float *prob = arena_floats(e, en->workspace.offset);
        float *loss = arena_floats(e, en->value.offset);
        double total = 0;
        for (int64_t b = 0; b < e->batch; b++) {
            double top = -INFINITY, sum = 0;
            for (int64_t i = 0; i < k; i++)
                top = z[b * k + i] > top ? z[b * k + i] : top;
            for (int64_t i = 0; i < k; i++)
                sum += exp((double)z[b * k + i] - top);
            for (int64_t i = 0; i < k; i++)
                prob[b * k + i] = (float)(exp((double)z[b * k + i] - top) / sum);
            loss[b] = (float)(top + log(sum) - z[b * k + e->labels[b]]);
            e->losses[b] = loss[b];
            total += loss[b];
        }
        e->mean_loss = total / (double)e->batch;
        return RB_OK;
    }
    }
    return RB_OK;
}

/* Image plane `plane` (example x channel) of `images`, normalized into `x`. */
static void normalize_plane(const rb_node *n, int64_t plane, const float *images, float *x, int64_t hw)
{
    int64_t c = plane % n->c;
    const float *src = images + plane * hw;
    float *dst = x + plane * hw;
    if (n->attr.input.mean) {
        float m = n->attr.input.mean[c], inv = 1.0f / n->attr.input.std[c];
        for (int64_t p = 0; p < hw; p++)
            dst[p] = (src[p] - m) * inv;
    } else {
        memcpy(dst, src, (size_t)hw * sizeof *dst);
    }
}

rb_status rb_engine_forward(rb_engine *e, const float *images, int64_t count, const int64_t *labels,
                            bool training)
{
    enode *in = &e->nodes[e->g->input->index];
    const rb_node *n = in->node;
    float *x = arena_floats(e, in->value.offset);
    int64_t hw = n->h * n->w;
    e->forward_done = e->have_input_grad = e->backward_done = false;
    if (count != e->batch)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "engine: a batch of %lld images, but the engine was planned for %lld; plan "
                            "one for %lld with rb_engine_create",
                            (long long)count, (long long)e->batch, (long long)count);
    if (e->loss != NULL) {
        int64_t k = e->loss->node->in[0]->c;
        if (labels == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "engine: the graph ends in a loss ('%s') but no labels were given",
                                e->loss->node->name);
        for (int64_t b = 0; b < e->batch; b++)
            if (labels[b] < 0 || labels[b] >= k)
                return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                    "engine: label %lld of example %lld is outside [0, %lld) for loss '%s'",
                                    (long long)labels[b], (long long)b, (long long)k, e->loss->node->name);
        memcpy(e->labels, labels, (size_t)e->batch * sizeof *labels);
    }
    /* The graph's edge: normalization into the plain input buffer, one
     * image plane per iteration (independent, so any thread count gives the
     * same values). */
    if (e->threads == 1) { /* see parallel_copy */
        for (int64_t plane = 0; plane < e->batch * n->c; plane++)
            normalize_plane(n, plane, images, x, hw);
    } else {
#pragma omp parallel for schedule(static) num_threads(e->threads)
        for (int64_t plane = 0; plane < e->batch * n->c; plane++)
            normalize_plane(n, plane, images, x, hw);
    }
    for (size_t i = 0; i < e->n; i++) {
        rb_status s = forward_node(e, &e->nodes[i], training);
        if (s != RB_OK)
            return s;
    }
    e->training = training;
    e->forward_done = true;
    return RB_OK;
}

/* memcpy on all compute threads: one core cannot saturate memory bandwidth.
 * (Never a one-thread OpenMP region, nor an `if` clause: libgomp allocates
 * a team for a region that runs on one thread, and steps allocate nothing.) */
static void parallel_copy(const rb_engine *e, unsigned char *dst, const unsigned char *src, size_t bytes)
{
    const long chunks = (long)((bytes + (256 << 10) - 1) / (256 << 10));
    if (chunks <= 1 || e->threads == 1) {
        memcpy(dst, src, bytes);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(e->threads)
    for (long i = 0; i < chunks; i++) {
        size_t at = (size_t)i << 18;
        memcpy(dst + at, src + at, bytes - at < ((size_t)256 << 10) ? bytes - at : (size_t)256 << 10);
    }
}

/* Sends a gradient computed for input k (in the edge's scratch unless
 * direct) to the producer. */
static rb_status deliver(rb_engine *e, enode *en, int k)
{
    if (en->in[k].direct)
        return RB_OK;
    return reorder(e, en->in[k].to_producer, en->in[k].scratch, e->nodes[en->node->in[k]->index].diff.mem,
                   en->node, RB_PRIM_REORDER_GRADIENT);
}

/* col2im: row `row` (channel c, image row ih) of one image's gradient,
 * summed from cols ((C kh kw) x P, see plan_image_grad_gemm): every kernel
 * tap of every output pixel that read a pixel of this row. Rows are
 * independent, so threads split them without races. */
static void col2im_row(const rb_node *n, const float *cols, float *image, int64_t row)
{
    const rb_node *in = n->in[0];
    const rb_conv_desc *d = &n->attr.conv;
    const int64_t c = row / in->h, ih = row % in->h, kh_n = d->kernel[0], kw_n = d->kernel[1];
    const int64_t sw = d->stride[1], pixels = n->h * n->w;
    float *out = image + row * in->w;
    memset(out, 0, (size_t)in->w * sizeof *out);
    for (int64_t kh = 0; kh < kh_n; kh++) {
        int64_t t = ih + d->padding[0] - kh * d->dilation[0], oh;
        if (t < 0 || t % d->stride[0] != 0 || (oh = t / d->stride[0]) >= n->h)
            continue;
        for (int64_t kw = 0; kw < kw_n; kw++) {
            /* output pixel ow read image column ow * sw + shift */
            const int64_t shift = kw * d->dilation[1] - d->padding[1];
            const int64_t lo = shift >= 0 ? 0 : (-shift + sw - 1) / sw;
            const int64_t hi_raw = in->w - 1 - shift < 0 ? 0 : (in->w - 1 - shift) / sw + 1;
            const int64_t hi = hi_raw < n->w ? hi_raw : n->w;
            const float *tap;
            float *dst;
            if (hi <= lo) /* this tap reads only padding on this row */
                continue;
            tap = cols + ((c * kh_n + kh) * kw_n + kw) * pixels + oh * n->w + lo;
            dst = out + lo * sw + shift;
            if (sw == 1) { /* contiguous: vectorized */
                for (int64_t j = 0; j < hi - lo; j++)
                    dst[j] += tap[j];
            } else {
                for (int64_t j = 0; j < hi - lo; j++)
                    dst[j * sw] += tap[j];
            }
        }
    }
}

/* The image's gradient of a convolution planned by plan_image_grad_gemm,
 * one image at a time (the buffers hold one). Counted as one
 * backward-data. */
static rb_status image_grad_by_gemm(rb_engine *e, enode *en)
{
    const rb_node *n = en->node, *in = n->in[0];
    float *image_grad = arena_floats(e, e->nodes[in->index].diff.offset);
    const float *cols = arena_floats(e, e->scratch.offset + en->gemm_rows_bytes);
    const int64_t rows = in->c * in->h, plane = rows * in->w;
    e->counts[RB_PRIM_CONV_BACKWARD_DATA]++;
    for (int64_t b = 0; b < e->batch; b++) {
        args x = {.n = 0};
        float *out = image_grad + b * plane;
        if (dnnl_memory_set_data_handle(en->gemm_diff_image, e->arena + en->diff.offset + (size_t)b * en->gemm_image_bytes) !=
            dnnl_success)
            return dnnl_fail(dnnl_runtime_error, "image gradient", n);
        arg(&x, DNNL_ARG_FROM, en->gemm_diff_image);
        arg(&x, DNNL_ARG_TO, en->gemm_rows);
        arg(&x, DNNL_ARG_SCRATCHPAD, e->scratchpad.mem);
        DNNL_TRY(dnnl_primitive_execute(en->gemm_rows_in, e->stream, x.n, x.a), "image gradient", n);
        x.n = 0;
        arg(&x, DNNL_ARG_SRC, en->gemm_weights);
        arg(&x, DNNL_ARG_WEIGHTS, en->gemm_rows);
        arg(&x, DNNL_ARG_DST, en->gemm_cols);
        arg(&x, DNNL_ARG_SCRATCHPAD, e->scratchpad.mem);
        DNNL_TRY(dnnl_primitive_execute(en->gemm_matmul, e->stream, x.n, x.a), "image gradient", n);
        if (e->threads == 1) { /* see parallel_copy */
            for (int64_t r = 0; r < rows; r++)
                col2im_row(n, cols, out, r);
        } else {
#pragma omp parallel for schedule(static) num_threads(e->threads)
            for (int64_t r = 0; r < rows; r++)
                col2im_row(n, cols, out, r);
        }
    }
    return RB_OK;
}

static rb_status backward_node(rb_engine *e, enode *en, bool weight_grads)
{
    const rb_node *n = en->node;
    bool need_in = n->n_in > 0 && e->nodes[n->in[0]->index].need_diff;
    rb_param_tensor *w = n->param[RB_SLOT_WEIGHT] >= 0 ? rb_node_param(e->g, n, RB_SLOT_WEIGHT) : NULL;
    bool want_w = weight_grads && w != NULL && w->trainable && !w->frozen;
    args x = {.n = 0};
    rb_status s = RB_OK;

    switch (n->op) {
    case RB_OP_INPUT: return RB_OK;
    case RB_OP_CONV:
    case RB_OP_LINEAR:
        if (want_w) {
            arg(&x, DNNL_ARG_SRC, input_mem(e, en, 0));
            arg(&x, DNNL_ARG_DIFF_DST, en->diff.mem);
            arg(&x, DNNL_ARG_DIFF_WEIGHTS, en->diff_weights_reordered ? en->diff_weights.mem : en->diff_weights_user);
            if (en->diff_bias_user)
                arg(&x, DNNL_ARG_DIFF_BIAS, en->diff_bias_user);
            s = run(e, en->bwd_weights, &x, n, "backward weights", RB_PRIM_CONV_BACKWARD_WEIGHTS);
            if (s == RB_OK && en->diff_weights_reordered)
                s = reorder(e, en->diff_weights_out, en->diff_weights.mem, en->diff_weights_user, n,
                            RB_PRIM_REORDER_WEIGHT_GRADIENT);
        }
        if (s == RB_OK && need_in && en->image_grad_gemm)
            return image_grad_by_gemm(e, en);
        if (s == RB_OK && need_in) {
            dnnl_memory_t weights = en->weights_reordered ? en->weights.mem : en->weights_user;
            if (en->weights_bwd_in != NULL) {
                if (!(e->weights_held && en->weights_bwd_ready)) {
                    s = reorder(e, en->weights_bwd_in, en->weights_user, en->weights_bwd.mem, n,
                                RB_PRIM_REORDER_WEIGHTS);
                    if (s != RB_OK)
                        return s;
                    en->weights_bwd_ready = !en->weights_bwd.shared; /* other nodes overwrite shared bytes */
                }
                weights = en->weights_bwd.mem;
            }
            x.n = 0;
            arg(&x, DNNL_ARG_DIFF_DST, en->diff.mem);
            arg(&x, DNNL_ARG_WEIGHTS, weights);
            arg(&x, DNNL_ARG_DIFF_SRC, grad_target(e, en, 0));
            s = run(e, en->bwd_data[0], &x, n, "backward data", RB_PRIM_CONV_BACKWARD_DATA);
            if (s == RB_OK)
                s = deliver(e, en, 0);
        }
        return s;
    case RB_OP_BATCHNORM: {
        int mode = e->training ? 0 : 1;
        bool full;
        if (!need_in && !want_w)
            return RB_OK;
        if (!want_w && mode == 1) {
            /* Running statistics, input gradient only: dy * gamma /
             * sqrt(running_var + eps), the inference forward on dy with a
             * zero mean and shift (the arena's zeros are never written). */
            arg(&x, DNNL_ARG_SRC, en->diff.mem);
            arg(&x, DNNL_ARG_DST, grad_target(e, en, 0));
            arg(&x, DNNL_ARG_SCALE, en->scale);
            arg(&x, DNNL_ARG_SHIFT, en->zeros.mem);
            arg(&x, DNNL_ARG_MEAN, en->zeros.mem);
            arg(&x, DNNL_ARG_VARIANCE, en->running_var);
            s = run(e, en->relu_follows ? en->affine : en->fwd[1], &x, n, "backward", RB_PRIM_BATCHNORM_BACKWARD_DATA);
            return s == RB_OK ? deliver(e, en, 0) : s;
        }
        full = want_w || en->bwd_data[mode] == NULL;
        /* oneDNN's batch-norm backward always produces the data gradient;
         * when only parameter gradients are wanted it lands in scratch. */
        arg(&x, DNNL_ARG_SRC, input_mem(e, en, 0));
        arg(&x, DNNL_ARG_DIFF_DST, en->diff.mem);
        arg(&x, DNNL_ARG_SCALE, en->scale);
        arg(&x, DNNL_ARG_SHIFT, en->shift); /* oneDNN 2.6 lists it as an input of backward too */
        arg(&x, DNNL_ARG_MEAN, e->training ? en->mean.mem : en->running_mean);
        arg(&x, DNNL_ARG_VARIANCE, e->training ? en->variance.mem : en->running_var);
        if (need_in) {
            arg(&x, DNNL_ARG_DIFF_SRC, grad_target(e, en, 0));
        } else {
            /* Nobody needs the input's gradient: let it land where it is
             * harmless (the producer's own gradient buffer is unused too). */
            arg(&x, DNNL_ARG_DIFF_SRC, en->in[0].scratch ? en->in[0].scratch : e->nodes[n->in[0]->index].diff.mem);
        }
        if (en->relu_follows) /* the fused ReLU's mask */
            arg(&x, DNNL_ARG_WORKSPACE, en->workspace.mem);
        if (want_w) {
            arg(&x, DNNL_ARG_DIFF_SCALE, en->diff_scale);
            arg(&x, DNNL_ARG_DIFF_SHIFT, en->diff_shift);
        } else if (en->bwd_data[mode] == NULL) {
            arg(&x, DNNL_ARG_DIFF_SCALE, en->discard_scale.mem);
            arg(&x, DNNL_ARG_DIFF_SHIFT, en->discard_shift.mem);
        }
        s = run(e, full ? en->bwd_full[mode] : en->bwd_data[mode], &x, n, "backward",
                full ? RB_PRIM_BATCHNORM_BACKWARD : RB_PRIM_BATCHNORM_BACKWARD_DATA);
        if (s == RB_OK && need_in)
            s = deliver(e, en, 0);
        return s;
    }
    case RB_OP_RELU:
    case RB_OP_MAXPOOL:
    case RB_OP_AVGPOOL:
    case RB_OP_GLOBAL_AVGPOOL:
        /* A fused ReLU's mask is applied by batch-norm's training backward;
         * with running statistics, here, in place on the shared gradient. */
        if (!need_in || (en->relu_fused && e->training))
            return RB_OK;
        if (n->op == RB_OP_RELU)
            arg(&x, DNNL_ARG_DST, en->value.mem);
        arg(&x, DNNL_ARG_DIFF_DST, en->diff.mem);
        arg(&x, DNNL_ARG_DIFF_SRC, grad_target(e, en, 0));
        if (en->workspace.mem)
            arg(&x, DNNL_ARG_WORKSPACE, en->workspace.mem);
        s = run(e, en->bwd_data[0], &x, n, "backward",
                n->op == RB_OP_RELU ? RB_PRIM_RELU_BACKWARD : RB_PRIM_POOLING_BACKWARD);
        if (s == RB_OK)
            s = deliver(e, en, 0);
        return s;
    case RB_OP_ADD:
        for (int k = 0; k < 2 && s == RB_OK; k++) {
            enode *producer = &e->nodes[n->in[k]->index];
            if (!producer->need_diff || en->in[k].shared) /* shared: already there */
                continue;
            if (en->in[k].direct)
                parallel_copy(e, e->arena + producer->diff.offset, e->arena + en->diff.offset, en->diff.bytes);
            else /* the edge's reorder reads the add's own gradient: no copy into scratch */
                s = reorder(e, en->in[k].to_producer, en->diff.mem, producer->diff.mem, n, RB_PRIM_REORDER_GRADIENT);
        }
        return s;
    case RB_OP_SOFTMAX_CE: {
        int64_t k = n->in[0]->c;
        const float *prob = arena_floats(e, en->workspace.offset);
        float *dz;
        if (!need_in)
            return RB_OK;
        dz = arena_floats(e, (en->in[0].direct ? e->logits->diff.offset : e->scratch.offset));
        /* d mean loss / d z = (softmax - onehot) / N */
        for (int64_t b = 0; b < e->batch; b++)
            for (int64_t c = 0; c < k; c++)
                dz[b * k + c] = (prob[b * k + c] - (c == e->labels[b] ? 1.0f : 0.0f)) / (float)e->batch;
        return deliver(e, en, 0);
    }
    }
    return RB_OK;
}

rb_status rb_engine_backward(rb_engine *e, bool weight_grads, bool input_grad)
{
    if (!e->forward_done)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: backward before forward");
    if (e->loss == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: the graph has no loss to start backward from");
    if (weight_grads && e->data_grads_only)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "engine: planned with data_grads_only, so it computes no weight gradients");
    /* Which gradients are needed: a node's output gradient is needed if it
     * has parameters to train, or if one of its inputs needs its own. */
    for (size_t i = 0; i < e->n; i++) {
        enode *en = &e->nodes[i];
        const rb_node *n = en->node;
        const rb_param_tensor *w = n->param[RB_SLOT_WEIGHT] >= 0 ? rb_node_param(e->g, n, RB_SLOT_WEIGHT) : NULL;
        en->need_diff = n->op == RB_OP_INPUT ? input_grad
                                             : weight_grads && w != NULL && w->trainable && !w->frozen;
        for (size_t k = 0; k < n->n_in; k++)
            en->need_diff |= e->nodes[n->in[k]->index].need_diff;
    }
    for (size_t i = e->n; i-- > 0;) {
        rb_status s;
        if (!e->nodes[i].need_diff && e->nodes[i].node->op != RB_OP_SOFTMAX_CE)
            continue;
        s = backward_node(e, &e->nodes[i], weight_grads);
        if (s != RB_OK)
            return s;
    }
    e->have_input_grad = input_grad;
    e->backward_done = true;
    return RB_OK;
}

bool rb_engine_hold_weights(rb_engine *e, bool hold)
{
    bool was = e->weights_held;
    if (hold && !was) /* conversions made before the hold may predate a change */
        for (size_t i = 0; i < e->n; i++)
            e->nodes[i].weights_ready = e->nodes[i].weights_bwd_ready = false;
    e->weights_held = hold;
    return was;
}

/* ------------------------------------------------------------ reading out */

/* Copies a node's value or gradient out in plain row-major order. */
static rb_status read_plain(const rb_engine *e, const slot *s, const rb_node *n, float *out)
{
    dnnl_memory_desc_t plain;
    dnnl_primitive_t r;
    dnnl_memory_t dst;
    dnnl_primitive_desc_t pd;
    rb_status st = RB_OK;
    args x = {.n = 0};
    if (s->md.ndims == 4) {
        dnnl_dims_t d = {e->batch, n->c, n->h, n->w};
        md_plain(&plain, 4, d);
    } else {
        md_plain(&plain, s->md.ndims, s->md.dims);
    }
    if (same_md(&plain, &s->md)) {
        memcpy(out, e->arena + s->offset, s->bytes);
        return RB_OK;
    }
    /* Reading out is not part of a step: a one-off reorder is fine here. */
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&pd, &s->md, e->eng, &plain, e->eng, NULL), "reorder", n);
    if (dnnl_primitive_create(&r, pd) != dnnl_success) {
        dnnl_primitive_desc_destroy(pd);
        return dnnl_fail(dnnl_runtime_error, "reorder", n);
    }
    dnnl_primitive_desc_destroy(pd);
    if (dnnl_memory_create(&dst, &plain, e->eng, out) != dnnl_success) {
        dnnl_primitive_destroy(r);
        return dnnl_fail(dnnl_out_of_memory, "memory", n);
    }
    arg(&x, DNNL_ARG_FROM, s->mem);
    arg(&x, DNNL_ARG_TO, dst);
    e->counts[RB_PRIM_REORDER_READOUT]++;
    if (dnnl_primitive_execute(r, e->stream, x.n, x.a) != dnnl_success)
        st = dnnl_fail(dnnl_runtime_error, "reorder", n);
    dnnl_memory_destroy(dst);
    dnnl_primitive_destroy(r);
    return st;
}

rb_status rb_engine_read(const rb_engine *e, const rb_node *node, float *out)
{
    if (node == NULL || node->index >= e->n || e->nodes[node->index].node != node)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: that node is not in this engine's graph");
    if (!e->forward_done)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: nothing to read before a forward");
    if (e->nodes[node->index].value.pooled)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "engine: the value of node '%s' is only kept until its consumers have run (backward "
                            "never reads it); publish the node, or create the engine with keep_intermediates, "
                            "to read it",
                            node->name);
    return read_plain(e, &e->nodes[node->index].value, node, out);
}

rb_status rb_engine_read_grad(const rb_engine *e, const rb_node *node, float *out)
{
    if (node == NULL || node->index >= e->n || e->nodes[node->index].node != node)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: that node is not in this engine's graph");
    if (e->nodes[node->index].diff.pooled && node != e->g->input)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "engine: the gradient of node '%s' shares memory with others after backward; "
                            "create the engine with keep_intermediates to read it",
                            node->name);
    if (!e->backward_done || !e->nodes[node->index].need_diff || node->op == RB_OP_SOFTMAX_CE)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "engine: no gradient for node '%s' from the last backward (not needed by it)",
                            node->name);
    return read_plain(e, &e->nodes[node->index].diff, node, out);
}

rb_status rb_engine_input_grad(const rb_engine *e, float *out)
{
    const enode *in = &e->nodes[e->g->input->index];
    const rb_node *n = in->node;
    const float *d = arena_floats(e, in->diff.offset);
    int64_t hw = n->h * n->w;
    if (!e->have_input_grad)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "engine: no input gradient: run rb_engine_backward with input_grad first");
    /* Back through the normalization: d image = d normalized / std. */
    for (int64_t b = 0; b < e->batch; b++)
        for (int64_t c = 0; c < n->c; c++) {
            float inv = n->attr.input.std ? 1.0f / n->attr.input.std[c] : 1.0f;
            for (int64_t p = 0; p < hw; p++)
                out[(b * n->c + c) * hw + p] = d[(b * n->c + c) * hw + p] * inv;
        }
    return RB_OK;
}

const float *rb_engine_losses(const rb_engine *e) { return e->loss && e->forward_done ? e->losses : NULL; }
double rb_engine_mean_loss(const rb_engine *e) { return e->loss && e->forward_done ? e->mean_loss : NAN; }
int64_t rb_engine_batch(const rb_engine *e) { return e->batch; }
const char *rb_engine_threads(const rb_engine *e) { return e->threads_text; }
size_t rb_engine_arena_bytes(const rb_engine *e) { return e->arena_bytes; }

const char *rb_engine_impl(const rb_engine *e, const rb_node *node)
{
    if (node == NULL || node->index >= e->n || e->nodes[node->index].node != node)
        return NULL;
    return e->nodes[node->index].impl;
}

/* ------------------------------------------------------------ precision */

const char *rb_precision_str(rb_precision precision)
{
    switch (precision) {
    case RB_PRECISION_F32: return "f32";
    case RB_PRECISION_BF16: return "bf16";
    }
    return "?";
}

rb_status rb_precision_parse(const char *text, rb_precision *out)
{
    if (text != NULL && (strcmp(text, "f32") == 0 || strcmp(text, "fp32") == 0)) {
        *out = RB_PRECISION_F32;
        return RB_OK;
    }
    if (text != NULL && strcmp(text, "bf16") == 0) {
        *out = RB_PRECISION_BF16;
        return RB_OK;
    }
    return rb_error_set(RB_ERR_INVALID_ARGUMENT, "unknown precision '%s'; use f32 or bf16", text ? text : "");
}

const char *rb_conv_algorithm_str(rb_conv_algorithm algorithm)
{
    switch (algorithm) {
    case RB_CONV_WINOGRAD: return "winograd";
    case RB_CONV_DIRECT: return "direct";
    }
    return "?";
}

rb_status rb_conv_algorithm_parse(const char *text, rb_conv_algorithm *out)
{
    for (rb_conv_algorithm a = RB_CONV_WINOGRAD; a <= RB_CONV_DIRECT; a++)
        if (text != NULL && strcmp(text, rb_conv_algorithm_str(a)) == 0) {
            *out = a;
            return RB_OK;
        }
    return rb_error_set(RB_ERR_INVALID_ARGUMENT, "unknown convolution algorithm '%s'; use winograd or direct",
                        text ? text : "");
}

/* ------------------------------------------------------------ counts */

const char *rb_engine_primitive_kind_str(rb_engine_primitive_kind kind)
{
    static const char *const names[RB_PRIM_KIND_COUNT] = {
        [RB_PRIM_CONV_FORWARD] = "convolution forward",
        [RB_PRIM_CONV_BACKWARD_DATA] = "convolution backward data",
        [RB_PRIM_CONV_BACKWARD_WEIGHTS] = "convolution backward weights",
        [RB_PRIM_BATCHNORM_FORWARD] = "batch-norm forward",
        [RB_PRIM_BATCHNORM_BACKWARD_DATA] = "batch-norm backward data",
        [RB_PRIM_BATCHNORM_BACKWARD] = "batch-norm backward with scale/shift gradients",
        [RB_PRIM_RELU_FORWARD] = "relu forward",
        [RB_PRIM_RELU_BACKWARD] = "relu backward",
        [RB_PRIM_POOLING_FORWARD] = "pooling forward",
        [RB_PRIM_POOLING_BACKWARD] = "pooling backward",
        [RB_PRIM_ADD_FORWARD] = "add forward",
        [RB_PRIM_REORDER_ACTIVATION] = "reorder activation",
        [RB_PRIM_REORDER_GRADIENT] = "reorder gradient",
        [RB_PRIM_REORDER_WEIGHTS] = "reorder weights",
        [RB_PRIM_REORDER_WEIGHT_GRADIENT] = "reorder weight gradient",
        [RB_PRIM_REORDER_READOUT] = "reorder readout",
    };
    return (unsigned)kind < RB_PRIM_KIND_COUNT ? names[kind] : "?";
}

rb_status rb_engine_primitive_counts(const rb_engine *e, uint64_t *counts)
{
    if (e == NULL || counts == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: primitive counts need an engine and an array");
    memcpy(counts, e->counts, RB_PRIM_KIND_COUNT * sizeof *counts);
    return RB_OK;
}

void rb_engine_reset_primitive_counts(rb_engine *e)
{
    if (e != NULL)
        memset(e->counts, 0, RB_PRIM_KIND_COUNT * sizeof *e->counts);
}
