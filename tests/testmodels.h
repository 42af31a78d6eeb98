/* Models the Check suites share. Include after testutil.h. */
#ifndef RB_TESTMODELS_H
#define RB_TESTMODELS_H

#include <string.h>

#include <robusta/robusta.h>

/* A small CIFAR-stem ResNet-18 (width 1/8: 8..64 channels) with 5 classes,
 * seeded weights and non-trivial batch-norm statistics (running means near
 * 0, variances and scales in [0.5, 1.5]), from the resnet plugin in `reg`. */
static inline rb_model *small_model(const rb_registry *reg, int64_t size, uint64_t seed)
{
    const rb_plugin *arch;
    const char *preset;
    rb_params *p;
    rb_model *m;
    rb_model_input in = rb_model_input_imagenet(size, size);
    rb_rng rng;
    rb_graph *g;
    ck_assert_int_eq(rb_arch_resolve(reg, "resnet18", &arch, &preset), RB_OK);
    ck_assert_int_eq(rb_params_create(&p, arch->params), RB_OK);
    ck_assert_int_eq(rb_params_set(p, "preset", preset), RB_OK);
    ck_assert_int_eq(rb_params_set(p, "stem", "cifar"), RB_OK);
    ck_assert_int_eq(rb_params_set(p, "width", "0.125"), RB_OK);
    ck_assert_int_eq(rb_params_set(p, "num-classes", "5"), RB_OK);
    ck_assert_int_eq(rb_model_create(&m, arch, p, &in), RB_OK);
    rb_params_destroy(p);
    g = rb_model_graph(m);
    ck_assert_int_eq(rb_graph_init_params(g, seed), RB_OK);
    rb_rng_init(&rng, seed, 7, 0);
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info pi;
        rb_graph_param(g, i, &pi);
        if (strstr(pi.name, "running_mean") != NULL)
            for (int64_t k = 0; k < pi.numel; k++)
                pi.value[k] = 0.2f * (rb_rng_uniform(&rng) - 0.5f);
        if (strstr(pi.name, "running_var") != NULL)
            for (int64_t k = 0; k < pi.numel; k++)
                pi.value[k] = 0.5f + rb_rng_uniform(&rng);
        if (strstr(pi.name, "bn") != NULL && strstr(pi.name, ".weight") != NULL)
            for (int64_t k = 0; k < pi.numel; k++)
                pi.value[k] = 0.5f + rb_rng_uniform(&rng);
    }
    return m;
}

#endif /* RB_TESTMODELS_H */
