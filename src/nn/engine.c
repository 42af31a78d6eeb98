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
 * of one arena, placed by engine_memory.c.
 *
 * This file is the driver: it knows no op. Each op plans, runs and
 * differentiates its own nodes (src/nn/ops/, found through rb_op_def_of)
 * with the helpers below. */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include <robusta/engine.h>
#include <robusta/log.h>
#include <robusta/threads.h>

#include "nn/engine_internal.h"
#include "nn/op.h"
#include "sys/plan_cache.h"

/* ------------------------------------------------------------ errors */

rb_status eng_dnnl_fail(dnnl_status_t st, const char *what, const rb_node *n)
{
    return rb_error_set(st == dnnl_unimplemented ? RB_ERR_UNSUPPORTED : RB_ERR_INTERNAL,
                        "engine: oneDNN %s for %s '%s' failed: %s", what,
                        n ? rb_op_str(n->op) : "graph", n ? n->name : "", dnnl_status2str(st));
}

/* ------------------------------------------------------------ planning helpers */

/* One scratchpad serves every primitive: size it for the largest. */
static void note_scratchpad(rb_engine *e, const_dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t bytes = md ? dnnl_memory_desc_get_size(md) : 0;
    if (bytes > e->scratchpad_bytes)
        e->scratchpad_bytes = bytes;
}

rb_status eng_make_primitive(rb_engine *e, dnnl_primitive_t *out, dnnl_primitive_desc_t pd,
                                const rb_node *n, const char *what)
{
    note_scratchpad(e, pd);
    DNNL_TRY(dnnl_primitive_create(out, pd), what, n);
    return RB_OK;
}

/* oneDNN's "ref" implementations are correct but orders of magnitude
 * slower; a user should know when a layer lands on one. */
void eng_warn_if_reference(const_dnnl_primitive_desc_t pd, const rb_node *n, const char *what)
{
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    if (impl != NULL && strncmp(impl, "ref", 3) == 0)
        rb_log(RB_LOG_WARN, "engine: %s of %s '%s' runs on oneDNN's slow reference implementation (%s)", what,
               rb_op_str(n->op), n->name, impl);
}

const dnnl_memory_desc_t *eng_query(const_dnnl_primitive_desc_t pd, dnnl_query_t what)
{
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

bool eng_same_md(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b)
{
    return dnnl_memory_desc_equal(a, b) != 0;
}

/* A reorder src -> dst, adding into dst when accumulate. */
rb_status eng_make_reorder(rb_engine *e, dnnl_primitive_t *out, const dnnl_memory_desc_t *src,
                              const dnnl_memory_desc_t *dst, bool accumulate, const rb_node *n)
{
    dnnl_primitive_desc_t pd;
    rb_status s;
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&pd, src, e->eng, dst, e->eng,
                                                accumulate ? e->attr_accumulate : e->attr),
             "reorder", n);
    s = eng_make_primitive(e, out, pd, n, "reorder");
    dnnl_primitive_desc_destroy(pd);
    return s;
}

int64_t eng_channel_block(const rb_engine *e, const rb_node *n, const dnnl_memory_desc_t *md)
{
    static const int64_t blocks[] = {16, 8, 1};
    dnnl_dims_t dims = {e->batch, n->c, n->h, n->w};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        dnnl_memory_desc_t want;
        if (dnnl_memory_desc_init_by_tag(&want, 4, dims, dnnl_f32, eng_block_tag(blocks[i])) == dnnl_success &&
            eng_same_md(&want, md))
            return blocks[i];
    }
    return 0;
}

dnnl_format_tag_t eng_block_tag(int64_t block)
{
    return block == 16 ? dnnl_nChw16c : block == 8 ? dnnl_nChw8c : dnnl_nchw;
}

const char *eng_block_name(int64_t block)
{
    return block == 16 ? "nChw16c" : block == 8 ? "nChw8c" : "nchw";
}

rb_status eng_plan_blocked_input(rb_engine *e, enode *en, dnnl_memory_desc_t *used)
{
    const rb_node *in = en->node->in[0];
    const dnnl_memory_desc_t *src = &eng_producer(e, en, 0)->value.md;
    int64_t block = eng_channel_block(e, in, src);
    rb_status s = RB_OK;
    if (block <= 1) { /* plain already, or anything else reordered to plain */
        eng_md_node_plain(e, in, used);
        if (block == 0)
            s = eng_plan_input(e, en, 0, used);
        block = 1;
    } else {
        *used = *src;
    }
    en->channel_block = block;
    return s;
}

/* Prepares input `k` of node `en` to be read in layout `want`: a reorder
 * into a buffer of its own when the producer's layout differs. */
rb_status eng_plan_input(rb_engine *e, enode *en, int k, const dnnl_memory_desc_t *want)
{
    enode *producer = &e->nodes[en->node->in[k]->index];
    edge *ed = &en->in[k];
    rb_status s;
    if (eng_same_md(want, &producer->value.md))
        return RB_OK;
    ed->reordered = true;
    s = eng_slot_plan(e, &ed->src, want, en->node);
    if (s == RB_OK)
        s = eng_make_reorder(e, &ed->fwd_reorder, &producer->value.md, want, false, en->node);
    return s;
}

dnnl_memory_t eng_input_mem(rb_engine *e, enode *en, int k)
{
    return en->in[k].reordered ? en->in[k].src.mem : e->nodes[en->node->in[k]->index].value.mem;
}

bool eng_grad_accumulates(const rb_engine *e, const enode *en, int k)
{
    const rb_node *producer = en->node->in[k];
    size_t last_consumer = 0;
    bool accumulate;
    for (size_t j = 0; j < e->n; j++)
        for (size_t q = 0; q < e->g->nodes[j]->n_in; q++)
            if (e->g->nodes[j]->in[q] == producer)
                last_consumer = j;
    /* A node that reads the same input twice (add(a, a)) delivers its
     * inputs' gradients in order: every slot after the first accumulates. */
    accumulate = last_consumer != en->node->index;
    for (int q = 0; q < k; q++)
        accumulate |= en->node->in[q] == en->node->in[k];
    return accumulate;
}

size_t eng_input_offset(const rb_engine *e, const enode *en, int k)
{
    return en->in[k].reordered ? en->in[k].src.offset : e->nodes[en->node->in[k]->index].value.offset;
}

/* Plans how the gradient for input `k` (computed in layout `md` by this
 * node) reaches the producer. Consumers later in the graph write first
 * during backward; the last consumer of an input writes it directly. */
rb_status eng_plan_grad_edge(rb_engine *e, enode *en, int k, const dnnl_memory_desc_t *md)
{
    enode *producer = &e->nodes[en->node->in[k]->index];
    edge *ed = &en->in[k];
    rb_status s;
    ed->accumulate = eng_grad_accumulates(e, en, k);
    ed->direct = !ed->accumulate && eng_same_md(md, &producer->diff.md);
    if (ed->direct)
        return RB_OK;
    eng_need_scratch(e, dnnl_memory_desc_get_size(md));
    DNNL_TRY(dnnl_memory_create(&ed->scratch, md, e->eng, DNNL_MEMORY_NONE), "memory", en->node);
    s = eng_make_reorder(e, &ed->to_producer, md, &producer->diff.md, ed->accumulate, en->node);
    return s;
}

/* Where a backward primitive should write input k's gradient. */
dnnl_memory_t eng_grad_target(rb_engine *e, enode *en, int k)
{
    return en->in[k].direct ? e->nodes[en->node->in[k]->index].diff.mem : en->in[k].scratch;
}

size_t eng_grad_offset(const rb_engine *e, const enode *en, int k)
{
    return en->in[k].direct ? e->nodes[en->node->in[k]->index].diff.offset : e->scratch.offset;
}

void eng_md_node_plain(const rb_engine *e, const rb_node *n, dnnl_memory_desc_t *md)
{
    dnnl_dims_t dims = {e->batch, n->c, n->h, n->w};
    eng_md_plain(md, 4, dims);
}

bool eng_is_published(const rb_engine *e, const rb_node *n)
{
    for (size_t k = 0; k < e->g->n_published; k++)
        if (e->g->published[k].node == n)
            return true;
    return false;
}

void eng_note_impl(enode *en, const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(en->impl, sizeof en->impl, "%s", impl ? impl : "?");
}

void eng_md_plain(dnnl_memory_desc_t *md, int ndims, const dnnl_dims_t dims)
{
    static const dnnl_format_tag_t tags[] = {dnnl_format_tag_undef, dnnl_a, dnnl_ab, dnnl_abc,
                                             dnnl_abcd, dnnl_abcde};
    dnnl_memory_desc_init_by_tag(md, ndims, dims, dnnl_f32, tags[ndims]);
}

void eng_md_any(dnnl_memory_desc_t *md, int ndims, const dnnl_dims_t dims, dnnl_data_type_t dt)
{
    dnnl_memory_desc_init_by_tag(md, ndims, dims, dt, dnnl_format_tag_any);
}

/* The rest of a one-input primitive's plan once its value and gradient are
 * placed: its workspace, forward and backward primitives, and its input's
 * gradient edge. Takes the status so far and destroys both descriptors
 * whatever happens. */
rb_status eng_finish_unary(rb_engine *e, enode *en, dnnl_primitive_desc_t fpd, dnnl_primitive_desc_t bpd, rb_status s)
{
    const rb_node *n = en->node;
    if (s == RB_OK) {
        const dnnl_memory_desc_t *ws = eng_query(fpd, dnnl_query_workspace_md);
        if (ws != NULL && dnnl_memory_desc_get_size(ws) > 0)
            s = eng_slot_plan(e, &en->workspace, ws, n);
    }
    if (s == RB_OK)
        s = eng_make_primitive(e, &en->fwd[0], fpd, n, "forward");
    if (s == RB_OK)
        s = eng_make_primitive(e, &en->bwd_data[0], bpd, n, "backward");
    if (s == RB_OK)
        s = eng_plan_grad_edge(e, en, 0, eng_query(bpd, dnnl_query_diff_src_md));
    dnnl_primitive_desc_destroy(fpd);
    dnnl_primitive_desc_destroy(bpd);
    return s;
}

rb_status eng_unary_forward(rb_engine *e, enode *en, rb_engine_primitive_kind kind)
{
    eng_args x = {.n = 0};
    eng_arg(&x, DNNL_ARG_SRC, eng_input_mem(e, en, 0));
    eng_arg(&x, DNNL_ARG_DST, en->value.mem);
    if (en->workspace.mem)
        eng_arg(&x, DNNL_ARG_WORKSPACE, en->workspace.mem);
    return eng_run(e, en->fwd[0], &x, en->node, "forward", kind);
}

rb_status eng_unary_backward(rb_engine *e, enode *en, bool reads_dst, rb_engine_primitive_kind kind)
{
    eng_args x = {.n = 0};
    rb_status s;
    if (reads_dst)
        eng_arg(&x, DNNL_ARG_DST, en->value.mem);
    eng_arg(&x, DNNL_ARG_DIFF_DST, en->diff.mem);
    eng_arg(&x, DNNL_ARG_DIFF_SRC, eng_grad_target(e, en, 0));
    if (en->workspace.mem)
        eng_arg(&x, DNNL_ARG_WORKSPACE, en->workspace.mem);
    s = eng_run(e, en->bwd_data[0], &x, en->node, "backward", kind);
    return s == RB_OK ? eng_deliver(e, en, 0) : s;
}

/* ------------------------------------------------------------ create / destroy */

static void slot_free(eng_slot *s)
{
    if (s->mem)
        dnnl_memory_destroy(s->mem);
}

/* Every arena slot of a node, for binding and freeing; returns the count. */
static size_t node_slots(enode *en, eng_slot **out)
{
    size_t n = 0;
    eng_slot *fixed[] = {&en->value, &en->diff, &en->workspace, &en->weights, &en->diff_weights, &en->mean,
                     &en->variance, &en->discard_scale, &en->discard_shift, &en->weights_bwd, &en->zeros,
                     &en->aux[0], &en->aux[1]};
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
        out[n++] = fixed[k];
    for (size_t k = 0; k < RB_NODE_MAX_INPUTS; k++) {
        out[n++] = &en->in[k].src;
        out[n++] = &en->in_grad[k];
    }
    return n;
}

#define NODE_SLOTS_MAX (13 + 2 * RB_NODE_MAX_INPUTS)

void rb_engine_destroy(rb_engine *e)
{
    if (e == NULL)
        return;
    rb_plan_cache_close(e->tune_cache); /* planning failed before it was saved */
    rb_plan_destroy(e->tune_made);
    for (size_t i = 0; e->nodes && i < e->n; i++) {
        enode *en = &e->nodes[i];
        eng_slot *slots[NODE_SLOTS_MAX];
        size_t n_slots = node_slots(en, slots);
        dnnl_primitive_t prims[] = {en->fwd[0], en->fwd[1], en->bwd_data[0], en->bwd_data[1],
                                    en->bwd_full[0], en->bwd_full[1], en->bwd_weights, en->weights_in,
                                    en->weights_bwd_in, en->diff_weights_out, en->affine, en->gemm_rows_in,
                                    en->gemm_matmul, en->wgemm.x_in, en->wgemm.dy_in};
        dnnl_memory_t mems[] = {en->weights_user, en->diff_weights_user, en->bias_user, en->diff_bias_user,
                                en->scale, en->shift, en->diff_scale, en->diff_shift, en->running_mean,
                                en->running_var, en->gemm_diff_image, en->gemm_rows, en->gemm_cols,
                                en->gemm_weights, en->wgemm.x_image, en->wgemm.dy_image,
                                en->wgemm.x_plain, en->wgemm.dy_plain};
        for (size_t k = 0; k < n_slots; k++)
            slot_free(slots[k]);
        for (size_t k = 0; k < sizeof prims / sizeof prims[0]; k++)
            if (prims[k])
                dnnl_primitive_destroy(prims[k]);
        for (size_t k = 0; k < sizeof mems / sizeof mems[0]; k++)
            if (mems[k])
                dnnl_memory_destroy(mems[k]);
        for (size_t k = 0; k < RB_NODE_MAX_INPUTS; k++) {
            if (en->in[k].to_producer)
                dnnl_primitive_destroy(en->in[k].to_producer);
            if (en->in[k].fwd_reorder)
                dnnl_primitive_destroy(en->in[k].fwd_reorder);
            if (en->in[k].scratch)
                dnnl_memory_destroy(en->in[k].scratch);
        }
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
/* Which nodes a step computes (rb_engine_options.outputs): the listed ones
 * and, graph order being topological, everything they read. */
static rb_status mark_live(rb_engine *e, const rb_engine_options *opt)
{
    const bool all = opt == NULL || opt->n_outputs == 0;
    for (size_t i = 0; i < e->n; i++)
        e->nodes[i].live = all;
    if (all)
        return RB_OK;
    if (opt->outputs == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: %zu outputs but no list of them", opt->n_outputs);
    for (size_t k = 0; k < opt->n_outputs; k++) {
        const rb_node *n = opt->outputs[k];
        if (n == NULL || n->index >= e->n || e->nodes[n->index].node != n)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: output %zu is not a node of this engine's graph",
                                k);
        e->nodes[n->index].live = true;
    }
    for (size_t i = e->n; i-- > 0;)
        if (e->nodes[i].live)
            for (size_t k = 0; k < e->nodes[i].node->n_in; k++)
                e->nodes[e->nodes[i].node->in[k]->index].live = true;
    e->nodes[e->g->input->index].live = true;
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
    if (opt != NULL && opt->precision != RB_PRECISION_F32 && opt->precision != RB_PRECISION_BF16 &&
        opt->precision != RB_PRECISION_AUTO)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: unknown precision %d", (int)opt->precision);
    if (opt != NULL && opt->sync_bn_batch != 0 && opt->sync_bn_batch < batch)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: a synchronized batch-norm's job batch %lld is smaller "
                            "than this rank's share %lld", (long long)opt->sync_bn_batch, (long long)batch);
    if (opt != NULL && opt->conv_algorithm != RB_CONV_WINOGRAD && opt->conv_algorithm != RB_CONV_DIRECT)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: unknown convolution algorithm %d",
                            (int)opt->conv_algorithm);
    if (opt != NULL && opt->precision == RB_PRECISION_BF16 && !rb_precision_available(RB_PRECISION_BF16))
        return rb_error_set(RB_ERR_UNSUPPORTED, "engine: this CPU has no bf16 convolutions in oneDNN (they need "
                                                "AVX-512); use --precision f32");
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "engine: out of memory");
    e->g = g;
    e->keep_intermediates = opt != NULL && opt->keep_intermediates;
    e->profile = opt != NULL && opt->profile;
    if (opt != NULL) {
        e->node_backward_done = opt->node_backward_done;
        e->node_backward_done_user = opt->node_backward_done_user;
        e->sync_bn_batch = opt->sync_bn_batch;
    }
    e->data_grads_only = opt != NULL && opt->data_grads_only;
    e->conv_dt = opt != NULL && opt->precision == RB_PRECISION_BF16 ? dnnl_bf16 : dnnl_f32;
    e->precision_auto = opt != NULL && opt->precision == RB_PRECISION_AUTO;
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
    if (s == RB_OK)
        s = eng_tune_begin(e, opt);
    for (size_t i = 0; i < e->n; i++) {
        e->nodes[i].node = g->nodes[i];
        for (size_t k = 0; k < g->nodes[i]->n_in; k++)
            e->nodes[g->nodes[i]->in[k]->index].consumers++;
    }
    if (s == RB_OK)
        s = mark_live(e, opt);
    for (size_t i = 0; s == RB_OK && i < e->n; i++) {
        enode *en = &e->nodes[i];
        /* a node no listed output needs gets no primitives and no memory:
         * its slots stay unbound, and nothing runs or reads it */
        if (!en->live)
            continue;
        s = rb_op_def_of(en->node->op)->plan(e, en);
        if (s == RB_OK && rb_node_is_loss(en->node) && en->live) {
            if (e->loss == NULL)
                e->loss = en;
            e->n_losses++;
        }
    }
    if (s == RB_OK)
        s = eng_tune_end(e);
    /* Nodes whose value nobody reads are a mistake in the graph (a head
     * forgotten, a branch not added back); say which. A target node is
     * not computed: a task's loss may leave the one it is given unread. */
    for (size_t i = 0; s == RB_OK && i < e->n; i++) {
        const rb_node *n = e->nodes[i].node;
        if (e->nodes[i].consumers == 0 && !rb_node_is_loss(n) && n->op != RB_OP_TARGET && i + 1 != e->n &&
            !eng_is_published(e, n))
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                             "engine: node '%s' (%s) is computed but nothing uses it; connect it, "
                             "publish it, or remove it",
                             n->name, rb_op_str(n->op));
    }
    if (s == RB_OK)
        s = eng_plan_pools(e);
    if (s == RB_OK) {
        dnnl_memory_desc_t md;
        dnnl_dims_t dims = {(dnnl_dim_t)(e->scratchpad_bytes > 0 ? e->scratchpad_bytes : 1)};
        dnnl_memory_desc_init_by_tag(&md, 1, dims, dnnl_u8, dnnl_a);
        s = eng_slot_plan(e, &e->scratchpad, &md, NULL);
        e->scratch.offset = eng_reserve_bytes(e, e->scratch_bytes);
        e->scratch.bytes = e->scratch_bytes;
        e->shared_weights.offset = eng_reserve_bytes(e, e->shared_weights.bytes);
        for (size_t i = 0; i < e->n; i++) {
            eng_slot *shared[] = {&e->nodes[i].weights_bwd, &e->nodes[i].diff_weights};
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
            eng_first_touch(e); /* also commits the pages before the first step */
    }
    for (size_t i = 0; s == RB_OK && i < e->n; i++) {
        enode *en = &e->nodes[i];
        eng_slot *slots[NODE_SLOTS_MAX];
        size_t n_slots = node_slots(en, slots);
        for (size_t k = 0; s == RB_OK && k < n_slots; k++)
            s = eng_bind(slots[k], e->arena);
        for (size_t k = 0; s == RB_OK && k < en->node->n_in; k++)
            if (en->in[k].scratch &&
                dnnl_memory_set_data_handle(en->in[k].scratch, e->arena + e->scratch.offset) != dnnl_success)
                s = rb_error_set(RB_ERR_INTERNAL, "engine: cannot bind arena memory");
        if (s == RB_OK && rb_op_def_of(en->node->op)->bind != NULL)
            s = rb_op_def_of(en->node->op)->bind(e, en);
    }
    if (s == RB_OK)
        s = eng_bind(&e->scratchpad, e->arena);
    if (s != RB_OK) {
        rb_engine_destroy(e);
        return s;
    }
    rb_log(RB_LOG_DEBUG, "engine: %zu nodes, batch %lld, arena %.1f MiB, %s", e->n, (long long)batch,
           (double)e->arena_bytes / (1 << 20), e->threads_text);
    eng_log_arena(e);
    *out = e;
    return RB_OK;
}

/* ------------------------------------------------------------ execution */

void eng_arg(eng_args *x, int which, dnnl_memory_t m)
{
    x->a[x->n].arg = which;
    x->a[x->n].memory = m;
    x->n++;
}

/* Every primitive of a step runs here, counted by its kind. */
rb_status eng_run(rb_engine *e, dnnl_primitive_t p, eng_args *x, const rb_node *n, const char *what,
                     rb_engine_primitive_kind kind)
{
    eng_arg(x, DNNL_ARG_SCRATCHPAD, e->scratchpad.mem);
    e->counts[kind]++;
    DNNL_TRY(dnnl_primitive_execute(p, e->stream, x->n, x->a), what, n);
    return RB_OK;
}

rb_status eng_reorder(rb_engine *e, dnnl_primitive_t p, dnnl_memory_t from, dnnl_memory_t to, const rb_node *n,
                         rb_engine_primitive_kind kind)
{
    eng_args x = {.n = 0};
    eng_arg(&x, DNNL_ARG_FROM, from);
    eng_arg(&x, DNNL_ARG_TO, to);
    return eng_run(e, p, &x, n, "reorder", kind);
}

/* Profiling's clock (rb_engine_options.profile). */
static double profile_clock(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

rb_status rb_engine_forward_targets(rb_engine *e, const float *images, int64_t count, const rb_targets *targets,
                                    bool training)
{
    rb_status s = RB_OK;
    e->forward_done = e->have_input_grad = e->backward_done = false;
    if (count != e->batch)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "engine: a batch of %lld images, but the engine was planned for %lld; plan "
                            "one for %lld with rb_engine_create",
                            (long long)count, (long long)e->batch, (long long)count);
    if (images == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: no images");
    memset(&e->targets, 0, sizeof e->targets);
    if (targets != NULL)
        e->targets = *targets;
    e->targets.count = e->batch;
    e->targets.labels = NULL;
    /* The masks and boxes given must be the images', whoever reads them (a
     * host op reads them without a target node); labels and classes are
     * the readers' to check. */
    if (targets != NULL)
        s = rb_targets_check(&e->targets, INT64_MAX, rb_graph_target_height(e->g), rb_graph_target_width(e->g), "engine: the batch");
    /* Every op that reads targets checks what it needs before anything runs. */
    for (size_t i = 0; s == RB_OK && i < e->n; i++)
        if (e->nodes[i].live && rb_op_def_of(e->nodes[i].node->op)->check_targets != NULL)
            s = rb_op_def_of(e->nodes[i].node->op)->check_targets(e, &e->nodes[i],
                                                                   targets != NULL ? targets : &e->targets);
    if (s != RB_OK)
        return s;
    if (targets != NULL && targets->labels != NULL) { /* a copy: callers may reuse theirs before backward */
        memcpy(e->labels, targets->labels, (size_t)e->batch * sizeof *e->labels);
        e->targets.labels = e->labels;
    }
    e->images = images;
    for (size_t i = 0; i < e->n; i++) {
        enode *en = &e->nodes[i];
        const rb_node *n = en->node;
        double start = e->profile ? profile_clock() : 0;
        if (!en->live)
            continue;
        for (size_t k = 0; k < n->n_in && s == RB_OK; k++)
            if (en->in[k].reordered)
                s = eng_reorder(e, en->in[k].fwd_reorder, e->nodes[n->in[k]->index].value.mem, en->in[k].src.mem, n,
                                RB_PRIM_REORDER_ACTIVATION);
        if (s == RB_OK)
            s = rb_op_def_of(n->op)->forward(e, en, training);
        if (s != RB_OK)
            return s;
        if (e->profile)
            en->seconds[0] += profile_clock() - start;
    }
    /* The objective: the sum of the graph's losses, averaged over the batch. */
    if (e->loss != NULL) {
        double total = 0;
        for (int64_t b = 0; b < e->batch; b++)
            e->losses[b] = 0.0f;
        for (size_t i = 0; i < e->n; i++)
            if (rb_node_is_loss(e->nodes[i].node) && e->nodes[i].live) {
                const float *v = eng_floats(e, e->nodes[i].value.offset);
                for (int64_t b = 0; b < e->batch; b++)
                    e->losses[b] += v[b];
            }
        for (int64_t b = 0; b < e->batch; b++)
            total += e->losses[b];
        e->mean_loss = total / (double)e->batch;
    }
    e->training = training;
    e->forward_done = true;
    return RB_OK;
}

rb_status rb_engine_forward(rb_engine *e, const float *images, int64_t count, const int64_t *labels, bool training)
{
    rb_targets t = {.count = count, .labels = labels};
    return rb_engine_forward_targets(e, images, count, &t, training);
}

/* memcpy on all compute threads: one core cannot saturate memory bandwidth.
 * (Never a one-thread OpenMP region, nor an `if` clause: libgomp allocates
 * a team for a region that runs on one thread, and steps allocate nothing.) */
void eng_parallel_copy(const rb_engine *e, unsigned char *dst, const unsigned char *src, size_t bytes)
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

void eng_parallel_for(const rb_engine *e, enode *en, int64_t count, eng_task fn, void *ctx)
{
    if (e->threads == 1) { /* see eng_parallel_copy */
        for (int64_t i = 0; i < count; i++)
            fn(e, en, i, ctx);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(e->threads)
    for (int64_t i = 0; i < count; i++)
        fn(e, en, i, ctx);
}

/* Sends a gradient computed for input k (in the edge's scratch unless
 * direct) to the producer. */
rb_status eng_deliver(rb_engine *e, enode *en, int k)
{
    if (en->in[k].direct)
        return RB_OK;
    return eng_reorder(e, en->in[k].to_producer, en->in[k].scratch, e->nodes[en->node->in[k]->index].diff.mem,
                       en->node, RB_PRIM_REORDER_GRADIENT);
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
    /* Which gradients are needed: a node's output gradient is needed if
     * the objective depends on it (a path to a loss along inputs that
     * receive gradients) and something asks for a gradient behind it
     * (parameters to train, or the input image). */
    for (size_t i = 0; i < e->n; i++) {
        enode *en = &e->nodes[i];
        const rb_node *n = en->node;
        const rb_op_def *def = rb_op_def_of(n->op);
        const rb_param_tensor *w = n->param[RB_SLOT_WEIGHT] >= 0 ? rb_node_param(e->g, n, RB_SLOT_WEIGHT) : NULL;
        en->need_diff = n->op == RB_OP_INPUT ? input_grad
                                             : weight_grads && w != NULL && w->trainable && !w->frozen;
        for (size_t k = 0; k < n->n_in; k++)
            en->need_diff |= e->nodes[n->in[k]->index].need_diff && (def->passes_grad == NULL || def->passes_grad(n, k));
        en->need_diff &= en->live;
        en->reaches_loss = rb_node_is_loss(en->node) && en->live;
    }
    for (size_t i = e->n; i-- > 0;) {
        const rb_node *n = e->nodes[i].node;
        const rb_op_def *def = rb_op_def_of(n->op);
        e->nodes[i].need_diff &= e->nodes[i].reaches_loss; /* final: its consumers came before */
        if (!e->nodes[i].reaches_loss)
            continue;
        for (size_t k = 0; k < n->n_in; k++)
            if (def->passes_grad == NULL || def->passes_grad(n, k))
                e->nodes[n->in[k]->index].reaches_loss = true;
    }
    /* A parameter that several nodes apply (rb_graph_reuse) gets the sum
     * of their gradients: each of them adds its part (rb_op_def.reuse_shape),
     * so it starts from zero, whichever of them run. */
    for (size_t i = 0; weight_grads && i < e->g->n_params; i++) {
        rb_param_tensor *p = &e->g->params[i];
        if (p->users > 1 && p->trainable && !p->frozen)
            memset(p->grad, 0, (size_t)p->numel * sizeof *p->grad);
    }
    for (size_t i = e->n; i-- > 0;) {
        enode *en = &e->nodes[i];
        const rb_op_def *def = rb_op_def_of(en->node->op);
        rb_status s;
        double start;
        if (en->need_diff && def->backward != NULL) {
            start = e->profile ? profile_clock() : 0;
            s = def->backward(e, en, weight_grads);
            if (s != RB_OK)
                return s;
            if (e->profile)
                en->seconds[1] += profile_clock() - start;
        }
        if (weight_grads && e->node_backward_done != NULL)
            e->node_backward_done(e->node_backward_done_user, en->node);
    }
    e->have_input_grad = input_grad;
    e->backward_done = true;
    return RB_OK;
}

rb_status rb_engine_backward_logits(rb_engine *e, const float *logit_grad, bool input_grad)
{
    rb_status s;
    if (logit_grad == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: backward from the logits needs their gradient");
    if (e->loss == NULL || e->n_losses != 1 || e->loss->node->op != RB_OP_SOFTMAX_CE)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "engine: backward from the logits needs a graph whose one loss is a softmax "
                            "cross-entropy on them (this one has %zu loss%s%s%s)",
                            e->n_losses, e->n_losses == 1 ? "" : "es", e->loss ? ", the first a " : "",
                            e->loss ? rb_op_str(e->loss->node->op) : "");
    e->logit_grad = logit_grad;
    s = rb_engine_backward(e, false, input_grad);
    e->logit_grad = NULL;
    return s;
}

/* ------------------------------------------------------------ profile */

rb_status rb_engine_node_seconds(const rb_engine *e, const rb_node *node, double *forward, double *backward)
{
    if (!e->profile)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: no profile; create the engine with the profile option");
    if (node == NULL || node->index >= e->n || e->nodes[node->index].node != node)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "engine: that node is not in this engine's graph");
    if (forward != NULL)
        *forward = e->nodes[node->index].seconds[0];
    if (backward != NULL)
        *backward = e->nodes[node->index].seconds[1];
    return RB_OK;
}

void rb_engine_reset_profile(rb_engine *e)
{
    for (size_t i = 0; i < e->n; i++)
        e->nodes[i].seconds[0] = e->nodes[i].seconds[1] = 0;
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
static rb_status read_plain(const rb_engine *e, const eng_slot *s, const rb_node *n, float *out)
{
    dnnl_memory_desc_t plain;
    dnnl_primitive_t r;
    dnnl_memory_t dst;
    dnnl_primitive_desc_t pd;
    rb_status st = RB_OK;
    eng_args x = {.n = 0};
    if (s->md.ndims == 4) {
        dnnl_dims_t d = {e->batch, n->c, n->h, n->w};
        eng_md_plain(&plain, 4, d);
    } else {
        eng_md_plain(&plain, s->md.ndims, s->md.dims);
    }
    if (eng_same_md(&plain, &s->md)) {
        memcpy(out, e->arena + s->offset, s->bytes);
        return RB_OK;
    }
    /* Reading out is not part of a step: a one-off reorder is fine here. */
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&pd, &s->md, e->eng, &plain, e->eng, NULL), "reorder", n);
    if (dnnl_primitive_create(&r, pd) != dnnl_success) {
        dnnl_primitive_desc_destroy(pd);
        return eng_dnnl_fail(dnnl_runtime_error, "reorder", n);
    }
    dnnl_primitive_desc_destroy(pd);
    if (dnnl_memory_create(&dst, &plain, e->eng, out) != dnnl_success) {
        dnnl_primitive_destroy(r);
        return eng_dnnl_fail(dnnl_out_of_memory, "memory", n);
    }
    eng_arg(&x, DNNL_ARG_FROM, s->mem);
    eng_arg(&x, DNNL_ARG_TO, dst);
    e->counts[RB_PRIM_REORDER_READOUT]++;
    if (dnnl_primitive_execute(r, e->stream, x.n, x.a) != dnnl_success)
        st = eng_dnnl_fail(dnnl_runtime_error, "reorder", n);
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
    if (!e->nodes[node->index].live)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "engine: node '%s' is not computed: no node of rb_engine_options.outputs needs it",
                            node->name);
    if (e->nodes[node->index].value.mem == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "engine: node '%s' is a target; the engine keeps no copy of the batch's targets",
                            node->name);
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
    if (!e->backward_done || !e->nodes[node->index].need_diff || rb_node_is_loss(node))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "engine: no gradient for node '%s' from the last backward (not needed by it)",
                            node->name);
    return read_plain(e, &e->nodes[node->index].diff, node, out);
}

rb_status rb_engine_input_grad(const rb_engine *e, float *out)
{
    const enode *in = &e->nodes[e->g->input->index];
    const rb_node *n = in->node;
    const float *d = eng_floats(e, in->diff.offset);
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
    case RB_PRECISION_AUTO: return "auto";
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
    if (text != NULL && strcmp(text, "auto") == 0) {
        *out = RB_PRECISION_AUTO;
        return RB_OK;
    }
    return rb_error_set(RB_ERR_INVALID_ARGUMENT, "unknown precision '%s'; use f32, bf16 or auto", text ? text : "");
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
        [RB_PRIM_RESAMPLING_FORWARD] = "resampling forward",
        [RB_PRIM_RESAMPLING_BACKWARD] = "resampling backward",
        [RB_PRIM_CONCAT_FORWARD] = "concat forward",
        [RB_PRIM_SIGMOID_FORWARD] = "sigmoid forward",
        [RB_PRIM_SIGMOID_BACKWARD] = "sigmoid backward",
        [RB_PRIM_MUL_FORWARD] = "mul forward",
        [RB_PRIM_MUL_BACKWARD] = "mul backward",
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
