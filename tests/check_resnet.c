/* The resnet arch plugin, loaded through the registry from RB_PLUGIN_PATH as
 * users load it: torchvision's parameter counts, tensor names and shapes for
 * every preset, the cifar stem, the width multiplier, published stages, MAC
 * counts equal to the built graph's, bad parameters refused with one clear
 * line, and the FLOPs that `robusta plugins` shows. Graphs are only built
 * (parameters allocated, never initialized or run), which is cheap. */
#include "config.h"

#include <robusta/robusta.h>

#include "testutil.h"

static rb_registry *reg;
static const rb_plugin *plugin;
static const rb_arch_ops *ops;

static void setup(void)
{
    ck_assert_int_eq(rb_registry_create(&reg), RB_OK);
    ck_assert_int_eq(rb_registry_load_default(reg), RB_OK);
    ck_assert_msg(rb_registry_find(reg, RB_PLUGIN_ARCH, "resnet", &plugin) == RB_OK, "%s",
                  rb_last_error());
    ops = plugin->ops.arch;
}

static void teardown(void)
{
    rb_registry_destroy(reg);
    reg = NULL;
}

/* Settings are "name", "value" pairs ended by NULL. */
#define SET(...) ((const char *const[]){__VA_ARGS__, NULL})
#define DEFAULTS ((const char *const[]){NULL})

static rb_params *make_params(const char *const *settings)
{
    rb_params *p;
    ck_assert_int_eq(rb_params_create(&p, plugin->params), RB_OK);
    for (size_t i = 0; settings[i] != NULL; i += 2)
        ck_assert_msg(rb_params_set(p, settings[i], settings[i + 1]) == RB_OK, "%s",
                      rb_last_error());
    return p;
}

typedef struct net {
    rb_graph *g;
    rb_node *input, *logits;
    rb_params *params;
} net;

/* Builds the plugin's network on a c×h×w input; returns build's status. */
static rb_status try_build(net *n, int64_t c, int64_t h, int64_t w, const char *const *settings)
{
    n->params = make_params(settings);
    ck_assert_int_eq(rb_graph_create(&n->g), RB_OK);
    ck_assert_int_eq(rb_graph_input(n->g, c, h, w, NULL, NULL, &n->input), RB_OK);
    n->logits = n->input; /* build must overwrite it */
    return ops->build(n->g, n->input, n->params, &n->logits);
}

static void build(net *n, int64_t c, int64_t h, int64_t w, const char *const *settings)
{
    ck_assert_msg(try_build(n, c, h, w, settings) == RB_OK, "%s", rb_last_error());
}

static void release(net *n)
{
    rb_graph_destroy(n->g);
    rb_params_destroy(n->params);
    memset(n, 0, sizeof *n);
}

static int64_t count_macs(const rb_params *p, int64_t h, int64_t w)
{
    int64_t macs = -1;
    ck_assert_msg(ops->count_macs(p, h, w, &macs) == RB_OK, "%s", rb_last_error());
    return macs;
}

static void assert_node_shape(const rb_graph *g, const char *name, int64_t c, int64_t h, int64_t w)
{
    rb_node *n;
    int64_t nc, nh, nw;
    ck_assert_msg(rb_graph_find(g, name, &n) == RB_OK, "%s", rb_last_error());
    rb_node_shape(n, &nc, &nh, &nw);
    ck_assert_msg(nc == c && nh == h && nw == w, "%s is %lldx%lldx%lld, expected %lldx%lldx%lld",
                  name, (long long)nc, (long long)nh, (long long)nw, (long long)c, (long long)h,
                  (long long)w);
}

/* Parameter `name` exists with this shape (ndim values). */
static void assert_param(const rb_graph *g, const char *name, int ndim, const int64_t *shape,
                         bool trainable)
{
    rb_param_info info;
    ck_assert_msg(rb_graph_find_param(g, name, &info) == RB_OK, "%s", rb_last_error());
    ck_assert_msg(info.ndim == ndim, "%s has %d dimensions, expected %d", name, info.ndim, ndim);
    for (int i = 0; i < ndim; i++)
        ck_assert_msg(info.shape[i] == shape[i], "%s: dimension %d is %lld, expected %lld", name, i,
                      (long long)info.shape[i], (long long)shape[i]);
    ck_assert_msg(info.trainable == trainable, "%s: trainable is %d", name, (int)info.trainable);
}
#define PARAM(g, name, ...)                                                                        \
    assert_param((g), (name), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),          \
                 (int64_t[]){__VA_ARGS__}, true)

static bool has_param(const rb_graph *g, const char *name)
{
    rb_param_info info;
    return rb_graph_find_param(g, name, &info) == RB_OK;
}

static long param_index(const rb_graph *g, const char *name)
{
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info info;
        ck_assert_int_eq(rb_graph_param(g, i, &info), RB_OK);
        if (strcmp(info.name, name) == 0)
            return (long)i;
    }
    ck_abort_msg("no parameter %s", name);
    return -1;
}

static size_t count_ops(const rb_graph *g, rb_op op)
{
    size_t n = 0;
    for (size_t i = 0; i < rb_graph_node_count(g); i++)
        n += rb_node_op(rb_graph_node(g, i)) == op;
    return n;
}

/* ------------------------------------------------------------------ tests */

START_TEST(descriptor_declares_typed_parameters)
{
    static const char *const names[] = {"preset", "depth", "width-per-group", "width", "stem",
                                        "num-classes"};
    ck_assert_int_eq(plugin->kind, RB_PLUGIN_ARCH);
    ck_assert_ptr_nonnull(ops->build);
    ck_assert_ptr_nonnull(ops->count_macs);
    ck_assert_int_eq(rb_param_specs_validate(plugin->params), RB_OK);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        ck_assert_ptr_nonnull(plugin->params[i].name);
        ck_assert_str_eq(plugin->params[i].name, names[i]);
        ck_assert_ptr_nonnull(plugin->params[i].help);
    }
    ck_assert_ptr_null(plugin->params[6].name);
}
END_TEST

/* torchvision's sum(p.numel() for p in model.parameters()) with 1000
 * classes; wide_resnet50_4 (not in torchvision; the robustness library's
 * width_per_group = 256) from the same formula, which reproduces the other
 * seven exactly. */
static const struct {
    const char *preset;
    int64_t trainable;
    int64_t last_channels;
} presets[] = {
    {"resnet18", 11689512, 512},          {"resnet34", 21797672, 512},
    {"resnet50", 25557032, 2048},         {"resnet101", 44549160, 2048},
    {"resnet152", 60192808, 2048},        {"wide_resnet50_2", 68883240, 2048},
    {"wide_resnet50_4", 223439144, 2048}, {"wide_resnet101_2", 126886696, 2048},
};

START_TEST(presets_match_torchvision_parameter_counts)
{
    net n;
    build(&n, 3, 224, 224, SET("preset", presets[_i].preset));
    ck_assert_msg(rb_graph_trainable_count(n.g) == presets[_i].trainable, "%s: %lld, expected %lld",
                  presets[_i].preset, (long long)rb_graph_trainable_count(n.g),
                  (long long)presets[_i].trainable);
    ck_assert_ptr_nonnull(n.logits);
    assert_node_shape(n.g, "fc", 1000, 1, 1);
    ck_assert_ptr_eq(n.logits, rb_graph_node(n.g, rb_graph_node_count(n.g) - 1));
    PARAM(n.g, "fc.weight", 1000, presets[_i].last_channels);
    /* No loss: callers add it. */
    ck_assert_int_eq(count_ops(n.g, RB_OP_SOFTMAX_CE), 0);
    /* MACs without building equal the graph's, at 224 and an odd size. */
    ck_assert_int_eq(count_macs(n.params, 224, 224), rb_graph_forward_macs(n.g));
    release(&n);
    build(&n, 3, 97, 97, SET("preset", presets[_i].preset));
    ck_assert_int_eq(count_macs(n.params, 97, 97), rb_graph_forward_macs(n.g));
    release(&n);
}
END_TEST

START_TEST(depth_alone_gives_the_standard_models)
{
    static const struct {
        const char *depth;
        int64_t trainable;
    } depths[] = {{"18", 11689512}, {"34", 21797672}, {"50", 25557032},
                  {"101", 44549160}, {"152", 60192808}};
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        net n;
        build(&n, 3, 64, 64, SET("depth", depths[i].depth));
        ck_assert_int_eq(rb_graph_trainable_count(n.g), depths[i].trainable);
        release(&n);
    }
    /* Wide without a preset: depth 50 with width-per-group 128. */
    {
        net n;
        build(&n, 3, 64, 64, SET("depth", "50", "width-per-group", "128"));
        ck_assert_int_eq(rb_graph_trainable_count(n.g), 68883240);
        release(&n);
    }
    /* A preset with agreeing explicit values is accepted. */
    {
        net n;
        build(&n, 3, 64, 64,
              SET("preset", "wide_resnet50_2", "depth", "50", "width-per-group", "128"));
        ck_assert_int_eq(rb_graph_trainable_count(n.g), 68883240);
        release(&n);
    }
}
END_TEST

START_TEST(known_mac_counts)
{
    /* torchvision/fvcore: convolutions and fc, per image. */
    rb_params *p = make_params(SET("preset", "resnet18"));
    ck_assert_int_eq(count_macs(p, 224, 224), 1814073344);
    rb_params_destroy(p);
    p = make_params(SET("preset", "resnet50"));
    ck_assert_int_eq(count_macs(p, 224, 224), 4089184256);
    rb_params_destroy(p);
    p = make_params(SET("depth", "18", "stem", "cifar", "num-classes", "10"));
    ck_assert_int_eq(count_macs(p, 32, 32), 555422720);
    rb_params_destroy(p);
    /* Non-square inputs. */
    {
        net n;
        build(&n, 3, 97, 130, SET("preset", "resnet50"));
        ck_assert_int_eq(count_macs(n.params, 97, 130), rb_graph_forward_macs(n.g));
        release(&n);
    }
}
END_TEST

START_TEST(tensors_are_named_as_torchvision_names_them)
{
    net n;
    int64_t one[1] = {64};
    build(&n, 3, 224, 224, SET("preset", "resnet50"));
    PARAM(n.g, "conv1.weight", 64, 3, 7, 7);
    ck_assert(!has_param(n.g, "conv1.bias"));
    PARAM(n.g, "bn1.weight", 64);
    PARAM(n.g, "bn1.bias", 64);
    assert_param(n.g, "bn1.running_mean", 1, one, false);
    assert_param(n.g, "bn1.running_var", 1, one, false);
    PARAM(n.g, "layer1.0.conv1.weight", 64, 64, 1, 1);
    PARAM(n.g, "layer1.0.conv2.weight", 64, 64, 3, 3);
    PARAM(n.g, "layer1.0.conv3.weight", 256, 64, 1, 1);
    PARAM(n.g, "layer1.0.bn3.weight", 256);
    PARAM(n.g, "layer1.0.downsample.0.weight", 256, 64, 1, 1);
    PARAM(n.g, "layer1.0.downsample.1.weight", 256);
    ck_assert(!has_param(n.g, "layer1.1.downsample.0.weight"));
    PARAM(n.g, "layer2.0.downsample.0.weight", 512, 256, 1, 1);
    PARAM(n.g, "layer3.5.conv3.weight", 1024, 256, 1, 1);
    ck_assert(!has_param(n.g, "layer3.6.conv1.weight"));
    PARAM(n.g, "layer4.2.conv2.weight", 512, 512, 3, 3);
    PARAM(n.g, "fc.weight", 1000, 2048);
    PARAM(n.g, "fc.bias", 1000);
    /* v1.5: the stride is on the 3x3 conv of the bottleneck. */
    assert_node_shape(n.g, "layer2.0.conv1", 128, 56, 56);
    assert_node_shape(n.g, "layer2.0.conv2", 128, 28, 28);
    assert_node_shape(n.g, "layer2.0.downsample.0", 512, 28, 28);
    /* Order as torchvision's state_dict (module registration order). */
    ck_assert_int_eq(param_index(n.g, "conv1.weight"), 0);
    ck_assert_int_lt(param_index(n.g, "layer1.0.bn3.running_var"),
                     param_index(n.g, "layer1.0.downsample.0.weight"));
    ck_assert_int_lt(param_index(n.g, "layer1.0.downsample.1.running_var"),
                     param_index(n.g, "layer1.1.conv1.weight"));
    ck_assert_int_eq(param_index(n.g, "fc.bias"), (long)rb_graph_param_count(n.g) - 1);
    release(&n);

    build(&n, 3, 224, 224, SET("preset", "resnet18"));
    PARAM(n.g, "layer1.0.conv1.weight", 64, 64, 3, 3);
    PARAM(n.g, "layer1.1.conv2.weight", 64, 64, 3, 3);
    ck_assert(!has_param(n.g, "layer1.0.conv3.weight"));
    ck_assert(!has_param(n.g, "layer1.0.downsample.0.weight"));
    PARAM(n.g, "layer2.0.conv1.weight", 128, 64, 3, 3);
    PARAM(n.g, "layer2.0.downsample.0.weight", 128, 64, 1, 1);
    PARAM(n.g, "layer4.1.bn2.weight", 512);
    PARAM(n.g, "fc.weight", 1000, 512);
    assert_node_shape(n.g, "layer2.0.conv1", 128, 28, 28);
    ck_assert_int_eq(count_ops(n.g, RB_OP_MAXPOOL), 1);
    release(&n);

    build(&n, 3, 224, 224, SET("preset", "wide_resnet50_2"));
    PARAM(n.g, "layer1.0.conv1.weight", 128, 64, 1, 1);
    PARAM(n.g, "layer1.0.conv3.weight", 256, 128, 1, 1);
    PARAM(n.g, "layer4.0.conv2.weight", 1024, 1024, 3, 3);
    release(&n);
    build(&n, 3, 64, 64, SET("preset", "wide_resnet50_4"));
    PARAM(n.g, "layer1.0.conv1.weight", 256, 64, 1, 1);
    PARAM(n.g, "layer4.0.conv2.weight", 2048, 2048, 3, 3);
    release(&n);
}
END_TEST

START_TEST(stages_are_published)
{
    net n;
    build(&n, 3, 224, 224, SET("preset", "resnet50"));
    assert_node_shape(n.g, RB_STAGE_STRIDE4, 256, 56, 56);
    assert_node_shape(n.g, RB_STAGE_STRIDE8, 512, 28, 28);
    assert_node_shape(n.g, RB_STAGE_STRIDE16, 1024, 14, 14);
    assert_node_shape(n.g, RB_STAGE_STRIDE32, 2048, 7, 7);
    assert_node_shape(n.g, RB_STAGE_FEATURES, 2048, 1, 1);
    {
        rb_node *stage4, *features;
        ck_assert_int_eq(rb_graph_find(n.g, RB_STAGE_STRIDE32, &stage4), RB_OK);
        ck_assert_int_eq(rb_graph_find(n.g, RB_STAGE_FEATURES, &features), RB_OK);
        ck_assert_int_eq(rb_node_op(stage4), RB_OP_RELU);
        ck_assert_int_eq(rb_node_op(features), RB_OP_GLOBAL_AVGPOOL);
        ck_assert_ptr_eq(rb_node_input(features, 0), stage4);
        ck_assert_ptr_eq(rb_node_input(n.logits, 0), features);
    }
    release(&n);
    /* Odd sizes round as PyTorch does: 97 -> 49 -> 25 -> 13 -> 7 -> 4. */
    build(&n, 3, 97, 97, SET("preset", "resnet18"));
    assert_node_shape(n.g, RB_STAGE_STRIDE4, 64, 25, 25);
    assert_node_shape(n.g, RB_STAGE_STRIDE8, 128, 13, 13);
    assert_node_shape(n.g, RB_STAGE_STRIDE16, 256, 7, 7);
    assert_node_shape(n.g, RB_STAGE_STRIDE32, 512, 4, 4);
    release(&n);
}
END_TEST

START_TEST(cifar_stem)
{
    net n;
    build(&n, 3, 32, 32, SET("depth", "18", "stem", "cifar", "num-classes", "10"));
    PARAM(n.g, "conv1.weight", 64, 3, 3, 3);
    assert_node_shape(n.g, "conv1", 64, 32, 32);
    ck_assert_int_eq(count_ops(n.g, RB_OP_MAXPOOL), 0);
    /* The stage names mean layer1..4's outputs: strides 1, 2, 4, 8 here. */
    assert_node_shape(n.g, RB_STAGE_STRIDE4, 64, 32, 32);
    assert_node_shape(n.g, RB_STAGE_STRIDE8, 128, 16, 16);
    assert_node_shape(n.g, RB_STAGE_STRIDE16, 256, 8, 8);
    assert_node_shape(n.g, RB_STAGE_STRIDE32, 512, 4, 4);
    PARAM(n.g, "fc.weight", 10, 512);
    ck_assert_int_eq(rb_graph_trainable_count(n.g), 11689512 - 1000 * 513 + 10 * 513 -
                                                        64 * 3 * (49 - 9));
    ck_assert_int_eq(count_macs(n.params, 32, 32), rb_graph_forward_macs(n.g));
    release(&n);

    build(&n, 3, 32, 32, SET("preset", "resnet50", "stem", "cifar"));
    assert_node_shape(n.g, RB_STAGE_STRIDE32, 2048, 4, 4);
    ck_assert_int_eq(count_macs(n.params, 32, 32), rb_graph_forward_macs(n.g));
    release(&n);
    build(&n, 3, 97, 97, SET("preset", "wide_resnet50_2", "stem", "cifar"));
    ck_assert_int_eq(count_macs(n.params, 97, 97), rb_graph_forward_macs(n.g));
    release(&n);
}
END_TEST

START_TEST(input_channels_come_from_the_input)
{
    net n;
    build(&n, 1, 28, 28, SET("depth", "18", "stem", "cifar", "num-classes", "10"));
    PARAM(n.g, "conv1.weight", 64, 1, 3, 3);
    assert_node_shape(n.g, RB_STAGE_STRIDE32, 512, 4, 4);
    release(&n);
}
END_TEST

START_TEST(width_multiplier_scales_every_stage)
{
    net n;
    /* 0.25: a quarter of every channel count. */
    build(&n, 3, 64, 64, SET("depth", "18", "width", "0.25"));
    PARAM(n.g, "conv1.weight", 16, 3, 7, 7);
    PARAM(n.g, "layer1.0.conv1.weight", 16, 16, 3, 3);
    assert_node_shape(n.g, RB_STAGE_STRIDE4, 16, 16, 16);
    assert_node_shape(n.g, RB_STAGE_STRIDE8, 32, 8, 8);
    assert_node_shape(n.g, RB_STAGE_STRIDE16, 64, 4, 4);
    assert_node_shape(n.g, RB_STAGE_STRIDE32, 128, 2, 2);
    PARAM(n.g, "fc.weight", 1000, 128);
    ck_assert_int_eq(count_macs(n.params, 64, 64), rb_graph_forward_macs(n.g));
    release(&n);

    build(&n, 3, 64, 64, SET("preset", "resnet50", "width", "0.25"));
    PARAM(n.g, "conv1.weight", 16, 3, 7, 7);
    PARAM(n.g, "layer1.0.conv1.weight", 16, 16, 1, 1);
    PARAM(n.g, "layer1.0.conv3.weight", 64, 16, 1, 1);
    assert_node_shape(n.g, RB_STAGE_STRIDE32, 512, 2, 2);
    PARAM(n.g, "fc.weight", 1000, 512);
    release(&n);

    /* Rounded to the nearest: 64·0.3 = 19.2, 128·0.3 = 38.4, 256·0.3 = 76.8,
     * 512·0.3 = 153.6; wide inner width = planes·128/64. */
    build(&n, 3, 64, 64, SET("preset", "wide_resnet50_2", "width", "0.3"));
    PARAM(n.g, "conv1.weight", 19, 3, 7, 7);
    PARAM(n.g, "layer1.0.conv1.weight", 38, 19, 1, 1);
    PARAM(n.g, "layer2.0.conv2.weight", 76, 76, 3, 3);
    PARAM(n.g, "layer3.0.conv3.weight", 308, 154, 1, 1);
    assert_node_shape(n.g, RB_STAGE_STRIDE32, 616, 2, 2);
    ck_assert_int_eq(count_macs(n.params, 64, 64), rb_graph_forward_macs(n.g));
    release(&n);

    /* At least one channel. */
    build(&n, 3, 32, 32, SET("depth", "50", "width", "0.001", "num-classes", "3"));
    PARAM(n.g, "conv1.weight", 1, 3, 7, 7);
    assert_node_shape(n.g, RB_STAGE_STRIDE32, 4, 1, 1);
    ck_assert_int_eq(count_macs(n.params, 32, 32), rb_graph_forward_macs(n.g));
    release(&n);

    build(&n, 3, 32, 32, SET("depth", "34", "width", "2", "stem", "cifar"));
    PARAM(n.g, "conv1.weight", 128, 3, 3, 3);
    assert_node_shape(n.g, RB_STAGE_STRIDE32, 1024, 4, 4);
    ck_assert_int_eq(count_macs(n.params, 32, 32), rb_graph_forward_macs(n.g));
    release(&n);
}
END_TEST

START_TEST(no_classes_means_features_only)
{
    net n;
    build(&n, 3, 224, 224, SET("preset", "resnet50", "num-classes", "0"));
    ck_assert_ptr_null(n.logits);
    ck_assert(!has_param(n.g, "fc.weight"));
    ck_assert_int_eq(count_ops(n.g, RB_OP_LINEAR), 0);
    ck_assert_int_eq(rb_graph_trainable_count(n.g), 25557032 - 2048 * 1000 - 1000);
    assert_node_shape(n.g, RB_STAGE_FEATURES, 2048, 1, 1);
    ck_assert_int_eq(count_macs(n.params, 224, 224), 4089184256 - 2048 * 1000);
    ck_assert_int_eq(count_macs(n.params, 224, 224), rb_graph_forward_macs(n.g));
    release(&n);
}
END_TEST

/* Both build and count_macs refuse `settings` with exactly `message`. */
static void assert_refused(const char *const *settings, const char *message)
{
    net n;
    int64_t macs = 7;
    ck_assert_int_eq(try_build(&n, 3, 64, 64, settings), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), message);
    ck_assert_ptr_null(n.logits);
    ck_assert_int_eq(ops->count_macs(n.params, 64, 64, &macs), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), message);
    ck_assert_int_eq(macs, 0);
    release(&n);
}

START_TEST(bad_parameters_are_refused)
{
    rb_params *p;
    int64_t macs;
    assert_refused(SET("preset", "resnet50", "depth", "18"),
                   "resnet: --preset resnet50 has depth 50, but --depth 18 was given (give one of "
                   "them, or make them agree)");
    assert_refused(SET("preset", "wide_resnet50_2", "width-per-group", "64"),
                   "resnet: --preset wide_resnet50_2 has width-per-group 128, but "
                   "--width-per-group 64 was given (give one of them, or make them agree)");
    assert_refused(SET("depth", "18", "width-per-group", "128"),
                   "resnet: depth 18 uses basic blocks, which need --width-per-group 64 (got 128), "
                   "as in torchvision; wide ResNets have depth 50, 101 or 152");
    assert_refused(SET("preset", "resnet34", "width-per-group", "128"),
                   "resnet: --preset resnet34 has width-per-group 64, but --width-per-group 128 "
                   "was given (give one of them, or make them agree)");

    ck_assert_int_eq(rb_params_create(&p, plugin->params), RB_OK);
    ck_assert_int_eq(rb_params_set(p, "width", "0"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--width: 0 is outside (0, 16]");
    ck_assert_int_eq(rb_params_set(p, "width", "-0.5"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--width: -0.5 is outside (0, 16]");
    ck_assert_int_eq(rb_params_set(p, "depth", "20"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--depth: '20' is not one of 18|34|50|101|152; did you mean 50?");
    ck_assert_int_eq(rb_params_set(p, "num-classes", "-1"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "--num-classes: -1 is outside [0, 10000000]");
    ck_assert_int_eq(rb_params_set(p, "stem", "cifar10"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(ops->count_macs(p, 0, 224, &macs), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(),
                     "resnet: cannot count MACs for a 0x224 input; give a positive height and width");
    ck_assert_int_eq(ops->count_macs(p, 4000000000LL, 4000000000LL, &macs),
                     RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(),
                     "resnet: 4000000000x4000000000 input: the MAC count overflows 64 bits");
    rb_params_destroy(p);
}
END_TEST

/* The FLOPs text as cmd_plugins.c prints it. */
static void flops_text(int64_t flops, char *buf, size_t size)
{
    if (flops >= 1000000000)
        snprintf(buf, size, "%.1f GFLOPs", (double)flops / 1e9);
    else
        snprintf(buf, size, "%.1f MFLOPs", (double)flops / 1e6);
}

START_TEST(plugins_command_shows_flops)
{
    run_result *r = malloc(sizeof *r);
    rb_params *p = make_params(DEFAULTS);
    char want[128], flops[32];
    int64_t macs32 = count_macs(p, 32, 32), macs224 = count_macs(p, 224, 224);

    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(macs224, 1814073344); /* the defaults are resnet18 */
    run_robusta(r, NULL, (const char *const[]){"plugins", "resnet", "--input-size", "32", NULL});
    ck_assert_msg(r->code == 0, "%s", r->err);
    ck_assert_ptr_nonnull(strstr(r->out, "arch    resnet 1.0: "));
    flops_text(2 * macs32, flops, sizeof flops);
    snprintf(want, sizeof want, "        cost: %s per image at 32x32 (defaults)\n", flops);
    ck_assert_msg(strstr(r->out, want) != NULL, "no '%s' in:\n%s", want, r->out);
    ck_assert_ptr_nonnull(strstr(r->out, "--width-per-group"));

    run_robusta(r, NULL, (const char *const[]){"plugins", "resnet", NULL});
    ck_assert_int_eq(r->code, 0);
    ck_assert_ptr_nonnull(
        strstr(r->out, "        cost: 3.6 GFLOPs per image at 224x224 (defaults)\n"));

    run_robusta(r, NULL,
                (const char *const[]){"plugins", "--json", "--kind", "arch", "--input-size", "32",
                                      NULL});
    ck_assert_int_eq(r->code, 0);
    snprintf(want, sizeof want, "\"input_size\": 32,");
    ck_assert_msg(strstr(r->out, want) != NULL, "no '%s' in:\n%s", want, r->out);
    snprintf(want, sizeof want, "\"macs\": %lld,", (long long)macs32);
    ck_assert_msg(strstr(r->out, want) != NULL, "no '%s' in:\n%s", want, r->out);
    snprintf(want, sizeof want, "\"flops\": %lld\n", (long long)(2 * macs32));
    ck_assert_msg(strstr(r->out, want) != NULL, "no '%s' in:\n%s", want, r->out);

    run_robusta(r, NULL, (const char *const[]){"plugins", "resnet", "--input-size", "0", NULL});
    ck_assert_int_eq(r->code, 2);
    ck_assert_str_eq(r->err, "robusta plugins: --input-size: 0 is outside [1, 65536] (robusta "
                             "plugins --help lists its options)\n");
    rb_params_destroy(p);
    free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("resnet");
    TCase *tc = tcase_create("resnet");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, descriptor_declares_typed_parameters);
    tcase_add_loop_test(tc, presets_match_torchvision_parameter_counts, 0,
                        (int)(sizeof presets / sizeof presets[0]));
    tcase_add_test(tc, depth_alone_gives_the_standard_models);
    tcase_add_test(tc, known_mac_counts);
    tcase_add_test(tc, tensors_are_named_as_torchvision_names_them);
    tcase_add_test(tc, stages_are_published);
    tcase_add_test(tc, cifar_stem);
    tcase_add_test(tc, input_channels_come_from_the_input);
    tcase_add_test(tc, width_multiplier_scales_every_stage);
    tcase_add_test(tc, no_classes_means_features_only);
    tcase_add_test(tc, bad_parameters_are_refused);
    tcase_add_test(tc, plugins_command_shows_flops);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
