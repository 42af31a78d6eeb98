/* Runs the segment task's head on arrays tests/torch_segment_parity.py
 * wrote, for its comparison with torchvision's FCNHead and DeepLabHead:
 *
 *   segment_parity DIR N C SIZE STRIDE K eval|train [NAME=VALUE ...]
 *
 * The model is the real segment plugin (found on RB_PLUGIN_PATH, with the
 * task parameters NAME=VALUE) on a stand-in backbone defined here: the
 * input image, N x C x (SIZE*STRIDE)^2 without normalization, average-
 * pooled by STRIDE into the C x SIZE x SIZE "features" that it publishes as
 * stage2 and stage3; K target classes. DIR holds x.f32 (the images),
 * masks.i32 (N x H x W, 255 ignored) and the head's weights as
 * params.txt (one "NAME NUMEL" line per tensor, torchvision's state-dict
 * order and names) with params.f32 (their values, concatenated). Every
 * tensor of the head must be named there, and every name must be one of
 * the head's: the names are part of what is compared.
 *
 * One forward (batch-norm in inference mode for eval, batch statistics for
 * train) and one backward with weight and input gradients; writes out.f32
 * (the head's output, N x K x H x W after upsampling), loss.txt (the mean
 * per-pixel cross-entropy), feature_grad.f32 (the loss's gradient with
 * respect to the features, N x C x SIZE x SIZE), grads.f32 (the trainable
 * tensors' gradients in params.txt order) and buffers.f32 (the batch-norm
 * running statistics after the forward, in params.txt order). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/robusta.h>

#define MAX_TENSORS 128

static const char *dir;
static int64_t stride_;

_Noreturn static void die(const char *what)
{
    fprintf(stderr, "segment_parity: %s: %s\n", what, rb_last_error());
    exit(1);
}

static FILE *open_in(const char *name, const char *mode)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, mode);
    if (f == NULL) {
        fprintf(stderr, "segment_parity: cannot open %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return f;
}

static void *load(const char *name, size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    FILE *f = open_in(name, "rb");
    if (p == NULL || fread(p, 1, bytes, f) != bytes) {
        fprintf(stderr, "segment_parity: cannot read %zu bytes from %s/%s\n", bytes, dir, name);
        exit(1);
    }
    fclose(f);
    return p;
}

static void save(const char *name, const void *p, size_t bytes)
{
    FILE *f = open_in(name, "wb");
    if (fwrite(p, 1, bytes, f) != bytes || fclose(f) != 0) {
        fprintf(stderr, "segment_parity: cannot write %s/%s\n", dir, name);
        exit(1);
    }
}

/* The stand-in backbone: average pooling by `stride_`, published as the
 * stride-8 and stride-16 stages. */
static const rb_param_spec pool_params[] = {
    {RB_PARAM_NUM_CLASSES, RB_PARAM_INT, "0", "[0, 0]", 0, "no classifier"}, {.name = NULL}};

static rb_status pool_build(rb_graph *g, rb_node *input, const rb_params *params, rb_node **logits)
{
    rb_pool_desc d = {.kernel = {stride_, stride_}};
    rb_node *x;
    rb_status s;
    (void)params;
    *logits = NULL;
    if ((s = rb_graph_avgpool(g, input, &d, &x)) != RB_OK || (s = rb_graph_publish(g, x, RB_STAGE_STRIDE8)) != RB_OK)
        return s;
    return rb_graph_publish(g, x, RB_STAGE_STRIDE16);
}

static const rb_arch_ops pool_ops = {.kind = RB_PLUGIN_ARCH, .build = pool_build};
static const rb_plugin pool_arch = {.abi_version = RB_PLUGIN_ABI_VERSION,
                                    .struct_size = sizeof(rb_plugin),
                                    .kind = RB_PLUGIN_ARCH,
                                    .name = "pool",
                                    .version = "1.0",
                                    .summary = "average pooling as a backbone",
                                    .params = pool_params,
                                    .ops = {.arch = &pool_ops},
                                    .ops_size = sizeof(rb_arch_ops)};

int main(int argc, char **argv)
{
    int64_t n, c, size, k, h, w, total = 0;
    bool training;
    rb_registry *reg;
    const rb_plugin *seg;
    rb_params *tp;
    rb_model *m;
    rb_model_input in = {0};
    rb_graph *g;
    rb_engine *e;
    rb_engine_options o = {.keep_intermediates = true};
    rb_node *features;
    rb_targets targets;
    char names[MAX_TENSORS][128];
    int64_t numel[MAX_TENSORS];
    size_t count = 0, head_tensors = 0;
    float *x, *values, *out, *feature_grad, *grads, *buffers;
    int32_t *masks;
    size_t n_grads = 0, n_buffers = 0;
    FILE *f;

    if (argc < 8 || (strcmp(argv[7], "eval") != 0 && strcmp(argv[7], "train") != 0)) {
        fprintf(stderr, "usage: segment_parity DIR N C SIZE STRIDE K eval|train [NAME=VALUE ...]\n");
        return 2;
    }
    dir = argv[1];
    n = atoll(argv[2]);
    c = atoll(argv[3]);
    size = atoll(argv[4]);
    stride_ = atoll(argv[5]);
    k = atoll(argv[6]);
    training = strcmp(argv[7], "train") == 0;
    if (n < 1 || c < 1 || c > RB_MODEL_MAX_CHANNELS || size < 1 || stride_ < 1 || k < 2)
        return 2;
    h = w = size * stride_;

    if (rb_registry_create(&reg) != RB_OK || rb_registry_load_path(reg, getenv("RB_PLUGIN_PATH")) != RB_OK ||
        rb_registry_find(reg, RB_PLUGIN_TASK, "segment", &seg) != RB_OK)
        die("the segment plugin (RB_PLUGIN_PATH)");
    if (rb_params_create(&tp, seg->params) != RB_OK)
        die("parameters");
    for (int i = 8; i < argc; i++) {
        char name[64];
        const char *eq = strchr(argv[i], '=');
        if (eq == NULL || eq - argv[i] >= (long)sizeof name)
            return 2;
        snprintf(name, sizeof name, "%.*s", (int)(eq - argv[i]), argv[i]);
        if (rb_params_set(tp, name, eq + 1) != RB_OK)
            die(argv[i]);
    }
    in.channels = c;
    in.height = h;
    in.width = w;
    for (int i = 0; i < RB_MODEL_MAX_CHANNELS; i++)
        in.std[i] = 1.0f;
    if (rb_model_create_with_head(&m, &pool_arch, NULL, seg, tp, &in, k) != RB_OK)
        die("model");
    g = rb_model_graph(m);

    /* the weights, by torchvision's names */
    f = open_in("params.txt", "r");
    while (count < MAX_TENSORS && fscanf(f, "%127s %lld", names[count], (long long *)&numel[count]) == 2)
        total += numel[count++];
    fclose(f);
    values = load("params.f32", (size_t)total * sizeof(float));
    total = 0;
    for (size_t i = 0; i < count; i++) {
        rb_param_info p;
        if (rb_graph_find_param(g, names[i], &p) != RB_OK)
            die(names[i]);
        if (p.numel != numel[i]) {
            fprintf(stderr, "segment_parity: %s holds %lld values in robusta, %lld in torch\n", names[i],
                    (long long)p.numel, (long long)numel[i]);
            return 1;
        }
        memcpy(p.value, values + total, (size_t)p.numel * sizeof(float));
        total += p.numel;
        if (p.trainable)
            n_grads += (size_t)p.numel;
        else
            n_buffers += (size_t)p.numel;
    }
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        rb_graph_param(g, i, &p);
        head_tensors += strncmp(p.name, "classifier.", 11) == 0;
    }
    if (head_tensors != count || count != rb_graph_param_count(g)) {
        fprintf(stderr, "segment_parity: the head has %zu tensors (the graph %zu), torch's state dict %zu\n",
                head_tensors, rb_graph_param_count(g), count);
        return 1;
    }

    x = load("x.f32", (size_t)(n * c * h * w) * sizeof(float));
    masks = load("masks.i32", (size_t)(n * h * w) * sizeof(int32_t));
    targets = (rb_targets){.count = n, .masks = masks, .mask_height = h, .mask_width = w};
    if (rb_engine_create(&e, g, n, &o) != RB_OK || rb_engine_forward_targets(e, x, n, &targets, training) != RB_OK ||
        rb_engine_backward(e, true, true) != RB_OK)
        die("forward and backward");
    if (rb_graph_find(g, RB_STAGE_STRIDE8, &features) != RB_OK)
        die("features");
    out = malloc((size_t)(n * k * h * w) * sizeof *out);
    feature_grad = malloc((size_t)(n * c * size * size) * sizeof *feature_grad);
    grads = malloc((n_grads ? n_grads : 1) * sizeof *grads);
    buffers = malloc((n_buffers ? n_buffers : 1) * sizeof *buffers);
    if (out == NULL || feature_grad == NULL || grads == NULL || buffers == NULL)
        return 1;
    if (rb_engine_read(e, rb_model_logits(m), out) != RB_OK || rb_engine_read_grad(e, features, feature_grad) != RB_OK)
        die("read");
    n_grads = n_buffers = 0;
    for (size_t i = 0; i < count; i++) {
        rb_param_info p;
        rb_graph_find_param(g, names[i], &p);
        if (p.trainable) {
            memcpy(grads + n_grads, p.grad, (size_t)p.numel * sizeof(float));
            n_grads += (size_t)p.numel;
        } else {
            memcpy(buffers + n_buffers, p.value, (size_t)p.numel * sizeof(float));
            n_buffers += (size_t)p.numel;
        }
    }
    save("out.f32", out, (size_t)(n * k * h * w) * sizeof *out);
    save("feature_grad.f32", feature_grad, (size_t)(n * c * size * size) * sizeof *feature_grad);
    save("grads.f32", grads, n_grads * sizeof *grads);
    save("buffers.f32", buffers, n_buffers * sizeof *buffers);
    f = open_in("loss.txt", "w");
    fprintf(f, "%.9g\n", rb_engine_mean_loss(e));
    fclose(f);
    rb_engine_destroy(e);
    rb_model_destroy(m);
    rb_params_destroy(tp);
    rb_registry_destroy(reg);
    free(x);
    free(masks);
    free(values);
    free(out);
    free(feature_grad);
    free(grads);
    free(buffers);
    return 0;
}
