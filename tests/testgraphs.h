/* Graph helpers shared by the reference and engine suites. */
#ifndef RB_TESTGRAPHS_H
#define RB_TESTGRAPHS_H

#include <check.h>
#include <string.h>

#include <robusta/robusta.h>

/* A five-channel normalization that is not the identity. */
static const float mean5[5] = {0.4f, 0.5f, 0.45f, 0.5f, 0.55f};
static const float std5[5] = {0.2f, 0.25f, 0.3f, 0.22f, 0.27f};

/* Initializes parameters, then makes batch-norm and group-norm affine
 * parameters and running statistics non-trivial so that their gradients
 * are exercised. */
static inline void randomize(rb_graph *g, uint64_t seed)
{
    rb_rng r;
    ck_assert_int_eq(rb_graph_init_params(g, seed), RB_OK);
    rb_rng_init(&r, seed, RB_RNG_STREAM(RB_RNG_USER, 2), 0);
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        ck_assert_int_eq(rb_graph_param(g, i, &p), RB_OK);
        if (rb_node_op(p.owner) != RB_OP_BATCHNORM && rb_node_op(p.owner) != RB_OP_GROUPNORM)
            continue;
        for (int64_t k = 0; k < p.numel; k++) {
            float u = rb_rng_uniform(&r);
            /* weight and running_var in [0.5, 1.5), bias and running_mean in [-0.5, 0.5) */
            p.value[k] = strstr(p.name, ".running_var") || strstr(p.name, ".weight") ? 0.5f + u : u - 0.5f;
        }
    }
}

#endif /* RB_TESTGRAPHS_H */
