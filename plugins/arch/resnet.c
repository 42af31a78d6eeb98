/* resnet: torchvision's ResNet v1.5 family (He et al. 2016; Zagoruyko and
 * Komodakis 2016 for the wide variants), as the robust-prior literature
 * trains it (Salman et al. 2020 use resnet18, resnet50, wide_resnet50_2 and
 * wide_resnet50_4).
 *
 * Layout, as torchvision.models.resnet builds it:
 *   stem    conv1 (7x7/2, pad 3) bn1 relu maxpool (3x3/2, pad 1)
 *           with --stem cifar: conv1 (3x3/1, pad 1) bn1 relu, no max-pool
 *   layer1..layer4, blocks per depth:
 *           18: 2 2 2 2 basic       34: 3 4 6 3 basic      50: 3 4 6 3 bottleneck
 *           101: 3 4 23 3 bottleneck                     152: 3 8 36 3 bottleneck
 *     basic       conv1 3x3 (stride) bn1 relu conv2 3x3 bn2 (+ shortcut) relu
 *     bottleneck  conv1 1x1 bn1 relu conv2 3x3 (stride) bn2 relu conv3 1x1 bn3
 *                 (+ shortcut) relu: v1.5, the stride is on the 3x3
 *     the first block of layer2..4 has stride 2; a block whose stride is not
 *     1 or whose channels change has the shortcut downsample.0 (1x1 conv,
 *     stride, no bias) and downsample.1 (batch-norm)
 *   avgpool (global) and fc (linear with bias), unless --num-classes 0.
 *
 * Channels: layerN has planes 64·2^(N-1); a bottleneck's inner width is
 * planes·width-per-group/64 and its output planes·4 (wide_resnet50_2 is
 * depth 50 with width-per-group 128, wide_resnet50_4 width-per-group 256).
 * --width scales the stem and every stage's planes (rounded to the nearest
 * integer, at least 1) before that, so --width 1 is torchvision exactly.
 *
 * Tensors are named as torchvision names them ("conv1.weight",
 * "layer1.0.downsample.0.weight", "bn1.running_mean", "fc.bias"), so its
 * state dicts import name for name.
 *
 * Published stages: RB_STAGE_STRIDE4, 8, 16 and 32 are the outputs of
 * layer1, layer2, layer3 and layer4. With the imagenet stem they are at
 * strides 4, 8, 16 and 32 of the input; with the cifar stem at strides 1, 2,
 * 4 and 8: the names mean "layer1..4's output", whatever the stem.
 * RB_STAGE_FEATURES is the globally pooled layer4 output, what fc reads.
 * The plugin adds no loss: callers add softmax cross-entropy on the logits.
 *
 * Parameters (robusta spells them with '-'): --preset names a torchvision
 * model and sets --depth and --width-per-group; a value given explicitly
 * that disagrees with the preset is refused, never silently overridden.
 * Without a preset the default is depth 18. Input channels come from the
 * input node; count_macs, which has no input node, assumes 3 (RGB). */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/graph.h>
#include <robusta/plugin.h>

#define RESNET_WHO "resnet"

static const rb_param_spec resnet_params[] = {
    {RB_PARAM_PRESET, RB_PARAM_CHOICE, "none",
     "none|resnet18|resnet34|resnet50|resnet101|resnet152|wide_resnet50_2|wide_resnet50_4|"
     "wide_resnet101_2",
     0, "a torchvision model: sets --depth and --width-per-group (none: use those)"},
    {"depth", RB_PARAM_CHOICE, "18", "18|34|50|101|152", 0,
     "layers: 18 and 34 use basic blocks, 50 and more bottlenecks"},
    {"width-per-group", RB_PARAM_INT, "64", "[1, 4096]", 0,
     "bottleneck inner width per 64 planes (64 standard, 128 wide_resnet50_2; basic blocks need 64)"},
    {"width", RB_PARAM_FLOAT, "1", "(0, 16]", 0,
     "multiplier of every channel count (stem and stages), rounded, at least 1"},
    {"stem", RB_PARAM_CHOICE, "imagenet", "imagenet|cifar", 0,
     "imagenet: 7x7/2 conv and 3x3/2 max-pool; cifar: 3x3/1 conv, no max-pool"},
    {RB_PARAM_NUM_CLASSES, RB_PARAM_INT, "1000", "[0, 10000000]", 0,
     "outputs of the fc classifier; 0: no classifier, features only"},
    {NULL}};

typedef struct preset {
    const char *name;
    int depth;
    int64_t width_per_group;
} preset;

static const preset presets[] = {
    {"resnet18", 18, 64},          {"resnet34", 34, 64},         {"resnet50", 50, 64},
    {"resnet101", 101, 64},        {"resnet152", 152, 64},       {"wide_resnet50_2", 50, 128},
    {"wide_resnet50_4", 50, 256},  {"wide_resnet101_2", 101, 128},
};

/* The parameters, resolved and checked once. */
typedef struct resnet_cfg {
    int depth;
    int blocks[4];
    bool bottleneck;
    int64_t width_per_group;
    double width;
    bool cifar;
    int64_t num_classes;
} resnet_cfg;

static rb_status resolve(const rb_params *p, resnet_cfg *cfg)
{
    const char *preset_name, *depth_text, *stem;
    rb_status s;
    int64_t depth_given;

    memset(cfg, 0, sizeof *cfg);
    if (p == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, RESNET_WHO ": no parameters given");
    s = rb_params_get_string(p, RB_PARAM_PRESET, &preset_name);
    if (s == RB_OK)
        s = rb_params_get_string(p, "depth", &depth_text);
    if (s == RB_OK)
        s = rb_params_get_int(p, "width-per-group", &cfg->width_per_group);
    if (s == RB_OK)
        s = rb_params_get_float(p, "width", &cfg->width);
    if (s == RB_OK)
        s = rb_params_get_string(p, "stem", &stem);
    if (s == RB_OK)
        s = rb_params_get_int(p, RB_PARAM_NUM_CLASSES, &cfg->num_classes);
    if (s != RB_OK)
        return rb_error_prefix(RESNET_WHO ": ");

    depth_given = strtol(depth_text, NULL, 10);
    cfg->depth = (int)depth_given;
    if (strcmp(preset_name, "none") != 0) {
        const preset *pr = NULL;
        for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
            if (strcmp(presets[i].name, preset_name) == 0)
                pr = &presets[i];
        if (pr == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, RESNET_WHO ": unknown --preset %s",
                                preset_name);
        if (rb_params_source(p, "depth") == RB_PARAM_GIVEN && depth_given != pr->depth)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                RESNET_WHO ": --preset %s has depth %d, but --depth %s was given "
                                "(give one of them, or make them agree)",
                                pr->name, pr->depth, depth_text);
        if (rb_params_source(p, "width-per-group") == RB_PARAM_GIVEN &&
            cfg->width_per_group != pr->width_per_group)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                RESNET_WHO ": --preset %s has width-per-group %lld, but "
                                "--width-per-group %lld was given (give one of them, or make "
                                "them agree)",
                                pr->name, (long long)pr->width_per_group,
                                (long long)cfg->width_per_group);
        cfg->depth = pr->depth;
        cfg->width_per_group = pr->width_per_group;
    }

    switch (cfg->depth) {
    case 18: memcpy(cfg->blocks, (const int[4]){2, 2, 2, 2}, sizeof cfg->blocks); break;
    case 34: memcpy(cfg->blocks, (const int[4]){3, 4, 6, 3}, sizeof cfg->blocks); break;
    case 50: memcpy(cfg->blocks, (const int[4]){3, 4, 6, 3}, sizeof cfg->blocks); break;
    case 101: memcpy(cfg->blocks, (const int[4]){3, 4, 23, 3}, sizeof cfg->blocks); break;
    case 152: memcpy(cfg->blocks, (const int[4]){3, 8, 36, 3}, sizeof cfg->blocks); break;
    default:
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            RESNET_WHO ": --depth %d is not one of 18|34|50|101|152", cfg->depth);
    }
    cfg->bottleneck = cfg->depth >= 50;
    if (!cfg->bottleneck && cfg->width_per_group != 64)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            RESNET_WHO ": depth %d uses basic blocks, which need --width-per-group "
                            "64 (got %lld), as in torchvision; wide ResNets have depth 50, 101 "
                            "or 152",
                            cfg->depth, (long long)cfg->width_per_group);
    /* The parameter table's range already refuses these; checked again for
     * callers that pass a set made from another table. */
    if (!(cfg->width > 0) || !isfinite(cfg->width))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            RESNET_WHO ": --width must be positive (got %g)", cfg->width);
    if (cfg->num_classes < 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            RESNET_WHO ": --num-classes must be 0 or more (got %lld)",
                            (long long)cfg->num_classes);
    cfg->cifar = strcmp(stem, "cifar") == 0;
    return RB_OK;
}

/* A channel count scaled by --width: rounded to nearest, at least 1. */
static int64_t scaled(const resnet_cfg *cfg, int64_t channels)
{
    double v = floor((double)channels * cfg->width + 0.5);
    return v < 1 ? 1 : (int64_t)v;
}

/* ------------------------------------------------------------------ walk
 *
 * One description of the network serves both callbacks: with a graph it
 * adds nodes (and the graph computes shapes), without one it only follows
 * shapes and counts multiply-accumulates as rb_graph_forward_macs does
 * (convolutions and the linear layer). */

typedef struct walker {
    rb_graph *g;   /* NULL: count only */
    int64_t macs;  /* when counting */
    bool overflow; /* the count does not fit in 64 bits */
} walker;

/* macs += a·b·c·d·e·f, noting overflow instead of wrapping. */
static void count(walker *k, int64_t a, int64_t b, int64_t c, int64_t d, int64_t e, int64_t f)
{
    const int64_t factors[5] = {b, c, d, e, f};
    int64_t term = a;
    for (int i = 0; i < 5; i++)
        k->overflow |= __builtin_mul_overflow(term, factors[i], &term);
    k->overflow |= __builtin_add_overflow(k->macs, term, &k->macs);
}

typedef struct value {
    rb_node *node; /* NULL when counting */
    int64_t c, h, w;
} value;

static int64_t window_out(int64_t in, int64_t kernel, int64_t stride, int64_t pad)
{
    if (in + 2 * pad < kernel)
        return 0;
    return (in + 2 * pad - kernel) / stride + 1;
}

static void take_shape(value *v)
{
    rb_node_shape(v->node, &v->c, &v->h, &v->w);
}

static rb_status conv(walker *k, const char *name, value in, int64_t out, int64_t kernel,
                      int64_t stride, value *res)
{
    int64_t pad = kernel / 2;
    if (k->g != NULL) {
        rb_status s = rb_graph_conv(
            k->g, name, in.node,
            &(rb_conv_desc){.out_channels = out, .kernel = {kernel, kernel},
                            .stride = {stride, stride}, .padding = {pad, pad}},
            &res->node);
        if (s != RB_OK)
            return s;
        take_shape(res);
        return RB_OK;
    }
    res->node = NULL;
    res->c = out;
    res->h = window_out(in.h, kernel, stride, pad);
    res->w = window_out(in.w, kernel, stride, pad);
    count(k, out, res->h, res->w, in.c, kernel, kernel);
    return RB_OK;
}

static rb_status batchnorm(walker *k, const char *name, value *v)
{
    if (k->g == NULL)
        return RB_OK;
    return rb_graph_batchnorm(k->g, name, v->node, &v->node);
}

static rb_status relu(walker *k, value *v)
{
    if (k->g == NULL)
        return RB_OK;
    return rb_graph_relu(k->g, v->node, &v->node);
}

static rb_status maxpool(walker *k, value *v)
{
    if (k->g != NULL) {
        rb_status s = rb_graph_maxpool(
            k->g, v->node, &(rb_pool_desc){.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}},
            &v->node);
        if (s == RB_OK)
            take_shape(v);
        return s;
    }
    v->h = window_out(v->h, 3, 2, 1);
    v->w = window_out(v->w, 3, 2, 1);
    return RB_OK;
}

static rb_status add(walker *k, value *v, value shortcut)
{
    if (k->g == NULL)
        return RB_OK;
    return rb_graph_add(k->g, v->node, shortcut.node, &v->node);
}

static rb_status publish(walker *k, value v, const char *name)
{
    if (k->g == NULL)
        return RB_OK;
    return rb_graph_publish(k->g, v.node, name);
}

/* conv (stride) + batch-norm, then ReLU when asked: "PREFIXconv", "PREFIXbn". */
static rb_status conv_bn(walker *k, const char *prefix, const char *conv_name, const char *bn_name,
                         value in, int64_t out, int64_t kernel, int64_t stride, bool with_relu,
                         value *res)
{
    char cname[64], bname[64];
    rb_status s;
    snprintf(cname, sizeof cname, "%s%s", prefix, conv_name);
    snprintf(bname, sizeof bname, "%s%s", prefix, bn_name);
    s = conv(k, cname, in, out, kernel, stride, res);
    if (s == RB_OK)
        s = batchnorm(k, bname, res);
    if (s == RB_OK && with_relu)
        s = relu(k, res);
    return s;
}

static rb_status block(walker *k, const resnet_cfg *cfg, int layer, int index, value x,
                       int64_t planes, int64_t stride, value *res)
{
    static const char *const stage_names[4] = {RB_STAGE_STRIDE4, RB_STAGE_STRIDE8,
                                               RB_STAGE_STRIDE16, RB_STAGE_STRIDE32};
    char prefix[32];
    int64_t out = cfg->bottleneck ? planes * 4 : planes;
    value y, shortcut = x;
    rb_status s;

    snprintf(prefix, sizeof prefix, "layer%d.%d.", layer + 1, index);
    if (cfg->bottleneck) {
        int64_t inner = planes * cfg->width_per_group / 64;
        if (inner < 1)
            inner = 1;
        s = conv_bn(k, prefix, "conv1", "bn1", x, inner, 1, 1, true, &y);
        if (s == RB_OK)
            s = conv_bn(k, prefix, "conv2", "bn2", y, inner, 3, stride, true, &y);
        if (s == RB_OK)
            s = conv_bn(k, prefix, "conv3", "bn3", y, out, 1, 1, false, &y);
    } else {
        s = conv_bn(k, prefix, "conv1", "bn1", x, planes, 3, stride, true, &y);
        if (s == RB_OK)
            s = conv_bn(k, prefix, "conv2", "bn2", y, planes, 3, 1, false, &y);
    }
    if (s == RB_OK && (stride != 1 || x.c != out))
        s = conv_bn(k, prefix, "downsample.0", "downsample.1", x, out, 1, stride, false,
                    &shortcut);
    if (s == RB_OK)
        s = add(k, &y, shortcut);
    if (s == RB_OK)
        s = relu(k, &y);
    if (s == RB_OK && index == cfg->blocks[layer] - 1)
        s = publish(k, y, stage_names[layer]);
    *res = y;
    return s;
}

static rb_status walk(walker *k, const resnet_cfg *cfg, value x, value *logits)
{
    rb_status s;
    int64_t stem = scaled(cfg, 64);

    if (cfg->cifar) {
        s = conv_bn(k, "", "conv1", "bn1", x, stem, 3, 1, true, &x);
    } else {
        s = conv_bn(k, "", "conv1", "bn1", x, stem, 7, 2, true, &x);
        if (s == RB_OK)
            s = maxpool(k, &x);
    }
    for (int layer = 0; s == RB_OK && layer < 4; layer++) {
        int64_t planes = scaled(cfg, (int64_t)64 << layer);
        for (int b = 0; s == RB_OK && b < cfg->blocks[layer]; b++)
            s = block(k, cfg, layer, b, x, planes, (b == 0 && layer > 0) ? 2 : 1, &x);
    }
    if (s != RB_OK)
        return s;
    /* Global average pooling, then the classifier. */
    if (k->g != NULL) {
        s = rb_graph_global_avgpool(k->g, x.node, &x.node);
        if (s == RB_OK)
            s = rb_graph_publish(k->g, x.node, RB_STAGE_FEATURES);
        if (s != RB_OK)
            return s;
        take_shape(&x);
    } else {
        x.h = x.w = 1;
    }
    logits->node = NULL;
    if (cfg->num_classes == 0)
        return RB_OK;
    if (k->g != NULL) {
        s = rb_graph_linear(k->g, "fc", x.node, cfg->num_classes, true, &logits->node);
        if (s == RB_OK)
            take_shape(logits);
        return s;
    }
    count(k, cfg->num_classes, x.c, x.h, x.w, 1, 1);
    return RB_OK;
}

/* ------------------------------------------------------------- callbacks */

static rb_status resnet_build(rb_graph *g, rb_node *input, const rb_params *params,
                              rb_node **logits)
{
    resnet_cfg cfg;
    walker k = {.g = g};
    value x = {.node = input}, out;
    rb_status s;

    if (logits != NULL)
        *logits = NULL;
    if (g == NULL || input == NULL || logits == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            RESNET_WHO ": build needs a graph, an input node and a place for the "
                            "logits");
    s = resolve(params, &cfg);
    if (s != RB_OK)
        return s;
    take_shape(&x);
    /* On failure the graph keeps the nodes added so far; callers discard it. */
    s = walk(&k, &cfg, x, &out);
    if (s != RB_OK)
        return rb_error_prefix(RESNET_WHO ": ");
    *logits = out.node;
    return RB_OK;
}

/* The input is taken to have 3 channels (RGB), as every preset expects. */
static rb_status resnet_count_macs(const rb_params *params, int64_t height, int64_t width,
                                   int64_t *macs)
{
    resnet_cfg cfg;
    walker k = {.g = NULL};
    value x = {.node = NULL, .c = 3, .h = height, .w = width}, out;
    rb_status s;

    if (macs == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, RESNET_WHO ": count_macs needs an output");
    *macs = 0;
    if (height < 1 || width < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            RESNET_WHO ": cannot count MACs for a %lldx%lld input; give a "
                            "positive height and width",
                            (long long)height, (long long)width);
    s = resolve(params, &cfg);
    if (s != RB_OK)
        return s;
    s = walk(&k, &cfg, x, &out);
    if (s != RB_OK)
        return s;
    if (k.overflow)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            RESNET_WHO ": %lldx%lld input: the MAC count overflows 64 bits",
                            (long long)height, (long long)width);
    *macs = k.macs;
    return RB_OK;
}

RB_ARCH_PLUGIN("resnet", "1.0",
                 "torchvision ResNet v1.5 (18-152, wide), imagenet or cifar stem, width multiplier",
                 resnet_params, .build = resnet_build, .count_macs = resnet_count_macs);
