/* Every op robusta has: one line each in RB_OPS, in rb_op order. */
#include "config.h"

#include "nn/op.h"

#define RB_OPS(X)                                                                                                    \
    X(RB_OP_INPUT, rb_op_input)                                                                                      \
    X(RB_OP_CONV, rb_op_conv)                                                                                        \
    X(RB_OP_BATCHNORM, rb_op_batchnorm)                                                                              \
    X(RB_OP_RELU, rb_op_relu)                                                                                        \
    X(RB_OP_MAXPOOL, rb_op_maxpool)                                                                                  \
    X(RB_OP_AVGPOOL, rb_op_avgpool)                                                                                  \
    X(RB_OP_GLOBAL_AVGPOOL, rb_op_global_avgpool)                                                                    \
    X(RB_OP_ADD, rb_op_add)                                                                                          \
    X(RB_OP_LINEAR, rb_op_linear)                                                                                    \
    X(RB_OP_SOFTMAX_CE, rb_op_softmax_ce)                                                                            \
    X(RB_OP_UPSAMPLE, rb_op_upsample)                                                                                \
    X(RB_OP_CONCAT, rb_op_concat)                                                                                    \
    X(RB_OP_SIGMOID, rb_op_sigmoid)                                                                                  \
    X(RB_OP_MUL, rb_op_mul)                                                                                          \
    X(RB_OP_PIXEL_CE, rb_op_pixel_ce)                                                                                \
    X(RB_OP_FOCAL, rb_op_focal)                                                                                      \
    X(RB_OP_HOST, rb_op_host)                                                                                        \
    X(RB_OP_TARGET, rb_op_target)                                                                                    \
    X(RB_OP_GROUPNORM, rb_op_groupnorm)

#define DECLARE(op, def) extern const rb_op_def def;
#define ENTRY(op, def) [op] = &def,

RB_OPS(DECLARE)

static const rb_op_def *const table[RB_OP_COUNT] = {RB_OPS(ENTRY)};

const rb_op_def *rb_op_def_of(rb_op op)
{
    return (unsigned)op < RB_OP_COUNT ? table[op] : NULL;
}

bool rb_node_is_loss(const rb_node *n)
{
    const rb_op_def *def = rb_op_def_of(n->op);
    return def->node_is_loss != NULL ? def->node_is_loss(n) : def->loss;
}
