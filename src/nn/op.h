/* One op, one entry.
 *
 * Everything robusta knows about an op lives in one file under src/nn/ops/
 * and is reached through one rb_op_def, listed in ops/table.c:
 *   - the builder (rb_graph_relu ...): shape inference and checks, in the
 *     op's file, with graph.c's helpers (graph_internal.h);
 *   - the oneDNN engine: plan (primitives, layouts, memory it needs, how
 *     its inputs' gradients reach them), forward, backward (weight and
 *     data gradients, as asked), with engine_internal.h's helpers; the
 *     engine's driver walks the nodes and knows no op;
 *   - the double-precision reference: forward and backward with plain
 *     loops, reference_internal.h's helpers.
 * Adding an op is one new file here plus one line in ops/table.c (and its
 * enum value and builder in robusta/graph.h).
 *
 * Memory planning (engine_memory.c) asks an op only what it must know:
 * whether its backward reads its inputs' values or its own. */
#ifndef RB_NN_OP_H
#define RB_NN_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <robusta/rng.h>

#include "nn/engine_internal.h"
#include "nn/reference_internal.h"

typedef struct rb_op_def {
    rb_op op;
    const char *name; /* rb_op_str */

    /* ---- the graph */
    /* Frees what the builder allocated in the node's attributes. */
    void (*free_attr)(rb_node *n);
    /* Initializes parameter `p` of node `n` (rb_graph_init_params), from
     * `rng`; NULL: uniform in +-1/sqrt(fan_in) of the node's weight, as
     * PyTorch initializes linear layers and biases. */
    void (*init_param)(rb_graph *g, rb_node *n, rb_param_tensor *p, rb_rng *rng);
    /* Multiply-accumulates per example of the forward (NULL: 0). */
    int64_t (*macs)(const rb_node *n);
    /* The value is a per-example loss (1 x 1 x 1): the engine's objective
     * is the sum of the graph's losses, averaged over the batch. */
    bool loss;
    /* For ops whose nodes decide (host ops): whether node n is a loss;
     * NULL: `loss`. Ask rb_node_is_loss. */
    bool (*node_is_loss)(const rb_node *n);
    /* rb_graph_reuse: checks that node `like` (its attributes as they are)
     * can be applied to `in` and gives the output's shape, or refuses with
     * a message naming both; NULL: the op's nodes cannot be applied again.
     * Ops that allow it must handle parameters with several users (see
     * rb_param_tensor.users): the engine zeroes their gradients before
     * backward and each node adds its part. The new node's attributes are
     * a plain copy of like's, so ops with free_attr cannot allow it. */
    rb_status (*reuse_shape)(const rb_node *like, const rb_node *in, int64_t *c, int64_t *h, int64_t *w);

    /* ---- the engine */
    rb_status (*plan)(rb_engine *e, enode *en);
    /* Binds memory the op placed itself, once the arena exists (NULL: none). */
    rb_status (*bind)(rb_engine *e, enode *en);
    /* Checks the batch's targets before anything runs (NULL: none needed). */
    rb_status (*check_targets)(rb_engine *e, enode *en, const rb_targets *t);
    rb_status (*forward)(rb_engine *e, enode *en, bool training);
    /* Runs when the node's output gradient is needed (en->need_diff);
     * computes the gradients of the inputs that need them
     * (eng_input_needs_grad) and, when weight_grads, of its trainable,
     * unfrozen parameters. */
    rb_status (*backward)(rb_engine *e, enode *en, bool weight_grads);
    /* Whether backward gives input k a gradient (NULL: every input);
     * a loss's targets get none. */
    bool (*passes_grad)(const rb_node *n, size_t k);
    /* Whether backward reads the value of input k (NULL: never). Memory
     * planning overlays values no backward reads on the gradients. */
    bool (*reads_input)(const rb_engine *e, const enode *en, size_t k);
    /* Whether backward reads the node's own value. */
    bool reads_own_value;

    /* ---- the double-precision reference */
    /* Doubles of op state kept from forward to backward (NULL: none). */
    size_t (*ref_saved)(const rb_node *n, int64_t batch);
    rb_status (*ref_forward)(rb_reference *r, const rb_node *n, bool training);
    /* Adds the gradients of the node's inputs (and, where dw is not NULL,
     * of its parameters) given its output gradient. */
    rb_status (*ref_backward)(rb_reference *r, const rb_node *n, bool weight_grads);
} rb_op_def;

/* The definition of `op`; NULL outside the enum. */
const rb_op_def *rb_op_def_of(rb_op op);
/* Whether node n's value is a per-example loss the objective sums. */
bool rb_node_is_loss(const rb_node *n);

/* Fusions across ops: whether ReLU node `en` may overwrite its input
 * (ops/relu.c; the add before it then applies it as a post-op). */
bool rb_relu_in_place(const rb_engine *e, const enode *en);

#endif /* RB_NN_OP_H */
