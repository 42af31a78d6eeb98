/* The oneDNN engine's representation, shared by the engine's driver
 * (engine.c), its memory planner (engine_memory.c) and the ops
 * (src/nn/ops/), which plan, run and differentiate their own nodes with the
 * helpers declared here. Nothing outside src/nn/ includes this. */
#ifndef RB_NN_ENGINE_INTERNAL_H
#define RB_NN_ENGINE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oneapi/dnnl/dnnl.h>

#include <robusta/engine.h>
#include <robusta/targets.h>
#include <robusta/tune.h>

#include "nn/graph_internal.h"

#define ARENA_ALIGN 64
#define HUGE_PAGE ((size_t)2 << 20)

/* rb_engine_options.winograd_scratchpad_limit's default. oneDNN's Winograd
 * backward-weights keeps a copy of the transformed weight gradient per
 * thread: for 512 channels 134 MiB at 2 threads, 638 MiB at 16. */
#define WINOGRAD_SCRATCHPAD_LIMIT ((size_t)96 << 20)

/* A buffer in the arena: a memory object whose handle is set once the
 * arena exists. */
typedef struct eng_slot {
    dnnl_memory_desc_t md;
    dnnl_memory_t mem;
    size_t offset, bytes;
    bool pooled; /* a gradient placed by liveness (offset relative to the pool until planned) */
    bool shared; /* transient weight storage: every shared slot uses the same bytes (see shared_plan) */
} eng_slot;

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
    eng_slot src;
    dnnl_primitive_t fwd_reorder;
} edge;

/* How a convolution's weight gradient is computed: by the static rule
 * (im2col + matmul where oneDNN has only its reference kernel), or as
 * chosen (robusta/tune.h). */
typedef enum conv_weight_grad {
    CONV_WGRAD_RULE = 0,
    CONV_WGRAD_ONEDNN,
    CONV_WGRAD_GEMM
} conv_weight_grad;

/* The kernels of one convolution: static rules or a tuned choice. */
typedef struct conv_choice {
    rb_conv_algorithm algorithm; /* Winograd where it fits, or direct */
    dnnl_data_type_t dt;         /* f32 or bf16 */
    conv_weight_grad weight_grad;
} conv_choice;

typedef struct enode {
    rb_node *node;
    eng_slot value, diff;
    bool live;      /* computed by forward: needed for rb_engine_options.outputs (all, without) */
    bool need_diff; /* this node's output gradient is needed in this backward */
    bool reaches_loss; /* the objective depends on this node's value (gradients flow back to it) */
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
    double seconds[2]; /* profile: forward, backward */

    /* forward: [0] batch statistics / training, [1] running statistics */
    dnnl_primitive_t fwd[2];
    dnnl_primitive_t bwd_data[2], bwd_full[2]; /* bwd_full also computes parameter gradients */
    dnnl_primitive_t bwd_weights;
    eng_slot workspace;
    /* conv / linear */
    dnnl_memory_t weights_user, diff_weights_user, bias_user, diff_bias_user;
    eng_slot weights, diff_weights;
    eng_slot weights_bwd;             /* the weights in backward-data's own layout, when it differs */
    dnnl_primitive_t weights_in, diff_weights_out, weights_bwd_in;
    bool weights_reordered, diff_weights_reordered;
    /* The parameters are shared (rb_graph_reuse): the weight gradient is
     * added to the graph's (diff_weights_out accumulates) and the bias
     * gradient, computed into aux[0], added to it. */
    bool grads_add;
    bool weights_ready, weights_bwd_ready; /* converted since the weights were held (rb_engine_hold_weights) */
    /* The image's gradient by matmul + col2im (see plan_image_grad_gemm). */
    bool image_grad_gemm;
    dnnl_primitive_t gemm_rows_in, gemm_matmul;
    dnnl_memory_t gemm_diff_image; /* one image of this node's gradient; its handle moves per image */
    dnnl_memory_t gemm_rows, gemm_cols, gemm_weights;
    size_t gemm_image_bytes, gemm_rows_bytes;
    /* The weight gradient by im2col + matmul (see conv_plan_weight_grad_gemm). */
    bool weight_grad_gemm;
    struct conv_wgemm {
        dnnl_primitive_t x_in, dy_in;       /* one image's input / gradient into plain order */
        dnnl_memory_t x_image, dy_image;    /* one image of each; their handles move per image */
        dnnl_memory_t x_plain, dy_plain;    /* in the shared edge scratch */
        size_t x_image_bytes, dy_image_bytes, x_bytes, dy_bytes, cols_bytes;
    } wgemm;
    conv_choice choice; /* conv / linear: the kernels planned */
    const char *tune_source; /* where a tuned choice came from: "measured", "cache", "plan"; NULL: rules */
    /* batch-norm */
    eng_slot mean, variance;
    eng_slot discard_scale, discard_shift; /* parameter gradients nobody asked for */
    eng_slot zeros; /* C zeros: mean and shift of the inference-mode data-only backward */
    dnnl_primitive_t affine; /* with a fused ReLU: that inference forward without the ReLU */
    dnnl_memory_t scale, shift, diff_scale, diff_shift, running_mean, running_var;
    /* ops on plain arrays (losses, host ops, upsampling ...): buffers of
     * their own, described by the op that plans them */
    eng_slot aux[2];
    eng_slot in_grad[RB_NODE_MAX_INPUTS]; /* plain gradients of the inputs, before delivery */
    double op_scalar;                 /* an op's per-batch number (a loss's normalizer) */
    int64_t channel_block;            /* ops with their own loops: the block of the layout they read (eng_channel_block) */
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
    eng_slot scratch;     /* shared edge scratch, sized for the largest use */
    size_t scratch_bytes;
    eng_slot scratchpad;  /* oneDNN's, shared by all primitives (user scratchpad mode) */
    size_t scratchpad_bytes;
    eng_slot shared_weights; /* bytes behind every shared slot, sized for the largest */
    dnnl_primitive_attr_t attr;
    dnnl_primitive_attr_t attr_accumulate;
    dnnl_primitive_attr_t attr_relu; /* a ReLU applied to the result (an add's, see plan_add) */
    float *losses;    /* batch: the sum of the graph's losses per example */
    int64_t *labels;  /* batch */
    /* The last forward's targets: labels point at `labels`; masks and boxes
     * at the caller's memory, valid until the next forward. */
    rb_targets targets;
    const float *images; /* the last forward's images (the input node normalizes them) */
    double mean_loss;
    bool forward_done, training;
    bool have_input_grad;
    bool backward_done; /* since the last forward */
    bool profile;       /* time each node's passes (enode.seconds) */
    /* rb_engine_options.node_backward_done */
    void (*node_backward_done)(void *user, const rb_node *node);
    void *node_backward_done_user;
    int64_t sync_bn_batch; /* rb_engine_options.sync_bn_batch (0: off) */
    enode *loss;   /* the first loss node (NULL: the graph has none) */
    const float *logit_grad; /* rb_engine_backward_logits: the softmax loss's input gradient, given */
    size_t n_losses;
    int threads;
    char threads_text[160];
    /* Tuning (robusta/tune.h, tune.c): the mode, the caller's plan, the
     * cache, this machine's key, and what planning did. */
    rb_tune_mode tune;
    bool precision_auto; /* RB_PRECISION_AUTO: bf16 where measured faster */
    rb_plan *tune_plan;
    rb_plan *tune_made; /* this engine's choices so far: identical shapes are chosen once */
    struct rb_plan_cache *tune_cache;
    char tune_machine[256];
    int tune_measured, tune_cached;
    double tune_seconds;
    /* Executions per rb_engine_primitive_kind. Behind a pointer so that
     * reading out (const engine) counts its reorders too. */
    uint64_t *counts;
};

/* ------------------------------------------------------------ errors */

rb_status eng_dnnl_fail(dnnl_status_t st, const char *what, const rb_node *n);

#define DNNL_TRY(call, what, node)                                                               \
    do {                                                                                         \
        dnnl_status_t st_ = (call);                                                              \
        if (st_ != dnnl_success)                                                                 \
            return eng_dnnl_fail(st_, (what), (node));                                           \
    } while (0)

/* Arena offsets are multiples of ARENA_ALIGN, so any slot holds floats. */
static inline float *eng_floats(const rb_engine *e, size_t offset)
{
    return (float *)(void *)(e->arena + offset);
}

/* A slot of double scratch (the alignment above holds doubles too). */
static inline double *eng_doubles(const rb_engine *e, size_t offset)
{
    return (double *)(void *)(e->arena + offset);
}

static inline enode *eng_producer(rb_engine *e, const enode *en, size_t k)
{
    return &e->nodes[en->node->in[k]->index];
}

/* Whether backward needs the gradient of input k of `en`. */
static inline bool eng_input_needs_grad(const rb_engine *e, const enode *en, size_t k)
{
    return k < en->node->n_in && e->nodes[en->node->in[k]->index].need_diff;
}

/* ------------------------------------------------------------ memory (engine_memory.c) */

size_t eng_reserve_bytes(rb_engine *e, size_t bytes);
/* An arena slot of layout `md` of its own; bound after the arena exists. */
rb_status eng_slot_plan(rb_engine *e, eng_slot *s, const dnnl_memory_desc_t *md, const rb_node *n);
/* Weight storage that lives only inside one node's backward (see engine_memory.c). */
rb_status eng_shared_plan(rb_engine *e, eng_slot *s, const dnnl_memory_desc_t *md, const rb_node *n);
/* A node's value, placed once the whole graph is known. */
rb_status eng_value_plan(rb_engine *e, enode *en, const dnnl_memory_desc_t *md);
/* A node's output gradient, placed by its live range. */
rb_status eng_diff_plan(rb_engine *e, eng_slot *s, const dnnl_memory_desc_t *md, const rb_node *n);
/* An in-place node's value: the memory of slot `of` (its producer's value). */
rb_status eng_value_alias(rb_engine *e, enode *en, const eng_slot *of);
/* Grows the shared edge scratch to hold `bytes`. */
void eng_need_scratch(rb_engine *e, size_t bytes);
rb_status eng_plan_pools(rb_engine *e);
rb_status eng_bind(eng_slot *s, unsigned char *arena);
void eng_first_touch(rb_engine *e);
void eng_log_arena(const rb_engine *e);

/* ------------------------------------------------------------ planning helpers (engine.c) */

rb_status eng_make_primitive(rb_engine *e, dnnl_primitive_t *out, dnnl_primitive_desc_t pd, const rb_node *n,
                             const char *what);
void eng_warn_if_reference(const_dnnl_primitive_desc_t pd, const rb_node *n, const char *what);
/* Sets en->impl to the implementation oneDNN chose for `pd`. */
void eng_note_impl(enode *en, const_dnnl_primitive_desc_t pd);
const dnnl_memory_desc_t *eng_query(const_dnnl_primitive_desc_t pd, dnnl_query_t what);
bool eng_same_md(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b);
rb_status eng_make_reorder(rb_engine *e, dnnl_primitive_t *out, const dnnl_memory_desc_t *src,
                           const dnnl_memory_desc_t *dst, bool accumulate, const rb_node *n);
/* Input k of `en` read in layout `want`: a reorder into a buffer of its
 * own when the producer's layout differs (run by the driver before the
 * node's forward). */
rb_status eng_plan_input(rb_engine *e, enode *en, int k, const dnnl_memory_desc_t *want);
/* The memory holding input k as the node reads it, and its arena offset. */
dnnl_memory_t eng_input_mem(rb_engine *e, enode *en, int k);
size_t eng_input_offset(const rb_engine *e, const enode *en, int k);
/* Whether input k's gradient must be added to what is already there: the
 * node is not the input's last consumer (those run their backward first
 * and write), or it reads the same input in an earlier slot. */
bool eng_grad_accumulates(const rb_engine *e, const enode *en, int k);
/* How the gradient for input k, computed in layout `md`, reaches its
 * producer: directly, or through the shared scratch and a reorder that adds. */
rb_status eng_plan_grad_edge(rb_engine *e, enode *en, int k, const dnnl_memory_desc_t *md);
/* Where to write input k's gradient (then call eng_deliver). */
dnnl_memory_t eng_grad_target(rb_engine *e, enode *en, int k);
/* Byte offset in the arena of eng_grad_target's memory. */
size_t eng_grad_offset(const rb_engine *e, const enode *en, int k);
void eng_md_plain(dnnl_memory_desc_t *md, int ndims, const dnnl_dims_t dims);
void eng_md_any(dnnl_memory_desc_t *md, int ndims, const dnnl_dims_t dims, dnnl_data_type_t dt);
/* The plain fp32 batch x C x H x W layout of node n. */
void eng_md_node_plain(const rb_engine *e, const rb_node *n, dnnl_memory_desc_t *md);
/* The channel block of fp32 layout md holding node n's values: 16 or 8
 * (nChw16c, nChw8c: what convolutions give on x86), 1 (plain nchw), or 0
 * (any other). Ops with their own loops read blocked layouts as planes of
 * H x W pixels of `block` channels. */
int64_t eng_channel_block(const rb_engine *e, const rb_node *n, const dnnl_memory_desc_t *md);
/* The format tag of a channel block (1, 8, 16). */
dnnl_format_tag_t eng_block_tag(int64_t block);
/* Its name for en->impl: "nchw", "nChw8c", "nChw16c". */
const char *eng_block_name(int64_t block);
/* For ops with their own loops over any channel block (one input): reads
 * input 0 in its producer's layout when that is blocked by 8 or 16 or
 * plain, else plans a reorder to plain; sets en->channel_block and *used
 * to the layout read. */
rb_status eng_plan_blocked_input(rb_engine *e, enode *en, dnnl_memory_desc_t *used);
bool eng_is_published(const rb_engine *e, const rb_node *n);

/* ------------------------------------------------------------ tuning (tune.c) */

/* Reads the tuning options, opens the plan cache when tuning. */
rb_status eng_tune_begin(rb_engine *e, const rb_engine_options *opt);
/* A choice already made for `key`: from the caller's plan, or (tune
 * cached) the cache; *source says which ("plan", "cache"). NULL: none. */
const char *eng_tune_known(rb_engine *e, const char *key, const char **source);
/* Records a choice in the caller's plan and, when measured, the cache. */
rb_status eng_tune_record(rb_engine *e, const char *key, const char *choice, bool measured);
/* Saves what was measured and closes the cache. */
rb_status eng_tune_end(rb_engine *e);

/* ------------------------------------------------------------ execution helpers (engine.c) */

typedef struct eng_args {
    dnnl_exec_arg_t a[24];
    int n;
} eng_args;

void eng_arg(eng_args *x, int which, dnnl_memory_t m);
/* Every primitive of a step runs here, counted by its kind. */
rb_status eng_run(rb_engine *e, dnnl_primitive_t p, eng_args *x, const rb_node *n, const char *what,
                  rb_engine_primitive_kind kind);
rb_status eng_reorder(rb_engine *e, dnnl_primitive_t p, dnnl_memory_t from, dnnl_memory_t to, const rb_node *n,
                      rb_engine_primitive_kind kind);
/* Sends the gradient computed for input k to its producer. */
rb_status eng_deliver(rb_engine *e, enode *en, int k);
/* One-input primitive ops (eltwise, pooling): the rest of the plan once
 * value and gradient are placed (workspace, primitives, gradient edge;
 * destroys both descriptors), and running them (reads_dst: backward reads
 * the output, as ReLU's and sigmoid's do). */
rb_status eng_finish_unary(rb_engine *e, enode *en, dnnl_primitive_desc_t fpd, dnnl_primitive_desc_t bpd,
                           rb_status s);
rb_status eng_unary_forward(rb_engine *e, enode *en, rb_engine_primitive_kind kind);
rb_status eng_unary_backward(rb_engine *e, enode *en, bool reads_dst, rb_engine_primitive_kind kind);
/* fn(e, en, i, ctx) for i in [0, count), split statically over the
 * compute threads (for ops in plain C; each i must write its own part). */
typedef void (*eng_task)(const rb_engine *e, enode *en, int64_t i, void *ctx);
void eng_parallel_for(const rb_engine *e, enode *en, int64_t count, eng_task fn, void *ctx);
/* memcpy on all compute threads. */
void eng_parallel_copy(const rb_engine *e, unsigned char *dst, const unsigned char *src, size_t bytes);

#endif /* RB_NN_ENGINE_INTERNAL_H */
