/* Runs the detect task's FCOS loss on arrays tests/torch_detect_parity.py
 * wrote, for its comparison with torchvision's FCOS loss:
 *
 *   detect_parity loss DIR N K SIZE STRIDE
 *
 * The loss host op of plugins/task/fcos.c (compiled in) on N images of
 * SIZE x SIZE with K classes and level 0's stride STRIDE, called as the
 * engine calls it. DIR holds the six raw outputs out0.f32 .. out5.f32
 * (level by level: class logits N x K x G x G, box regression
 * N x 4 x G x G, centerness N x 1 x G x G; G = SIZE / STRIDE, then
 * SIZE / (2 STRIDE)), the boxes as boxes.f32 (x1, y1, x2, y2,
 * class per box, image after image) and offsets.i64 (N + 1 box offsets).
 * One forward and one backward (the objective the engine's: the mean of
 * the per-image values); writes loss.txt (that mean), values.f32 (the
 * per-image values) and grad0.f32 .. grad5.f32 (the objective's gradient
 * with respect to each output).
 *
 *   detect_parity decode DIR N K SIZE STRIDE SCORE_THRESHOLD NMS_THRESHOLD
 *
 * fcos_decode (compiled in) on the six raw outputs as above; writes
 * counts.i64 (N boxes counts), boxes.f32 (N x 100 x 5: x1, y1, x2, y2,
 * class) and scores.f32 (N x 100), best first.
 *
 *   detect_parity head DIR N C SIZE STRIDE K [NAME=VALUE ...]
 *
 * The detect plugin (found on RB_PLUGIN_PATH, with the task parameters
 * NAME=VALUE) on a stand-in backbone defined here: the input image,
 * N x C x SIZE x SIZE without normalization, average-pooled by STRIDE and
 * by 2 STRIDE into the C-channel "stages" it publishes as stage2 and
 * stage3; K target classes. DIR holds x.f32 (the images), the boxes as
 * above, and the model's weights as params.txt (one "NAME NUMEL" line per
 * tensor, torch's state-dict names and order) with params.f32 (their
 * values, concatenated); every tensor of the model must be named there.
 * One training forward and backward with weight and input gradients;
 * writes out0.f32 .. out5.f32 (the raw outputs), loss.txt, grads.f32 (the
 * tensors' gradients in params.txt order) and x_grad.f32 (d loss / d
 * images). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/robusta.h>

#include "fcos.h"

static const char *dir;

_Noreturn static void die(const char *what)
{
    fprintf(stderr, "detect_parity: %s: %s\n", what, rb_last_error());
    exit(1);
}

static FILE *open_in(const char *name, const char *mode)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, mode);
    if (f == NULL) {
        fprintf(stderr, "detect_parity: cannot open %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return f;
}

static void *load(const char *name, size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    FILE *f = open_in(name, "rb");
    if (p == NULL || fread(p, 1, bytes, f) != bytes) {
        fprintf(stderr, "detect_parity: cannot read %zu bytes from %s/%s\n", bytes, dir, name);
        exit(1);
    }
    fclose(f);
    return p;
}

static void save(const char *name, const void *p, size_t bytes)
{
    FILE *f = open_in(name, "wb");
    if (fwrite(p, 1, bytes, f) != bytes || fclose(f) != 0) {
        fprintf(stderr, "detect_parity: cannot write %s/%s\n", dir, name);
        exit(1);
    }
}

static int run_loss(int64_t n, int64_t k, int64_t size, int64_t stride)
{
    int64_t shapes[FCOS_OUTPUTS][3], *offsets, count;
    float *inputs[FCOS_OUTPUTS], *grads[FCOS_OUTPUTS], *values, *og, *raw;
    rb_box *boxes;
    rb_host_op op;
    rb_host_io io;
    rb_targets t;
    double state[4], mean = 0;
    char name[32];
    FILE *f;

    for (int l = 0; l < FCOS_LEVELS; l++)
        for (int c = 0; c < FCOS_PER_LEVEL; c++) {
            int o = l * FCOS_PER_LEVEL + c;
            shapes[o][0] = c == 0 ? k : c == 1 ? 4 : 1;
            shapes[o][1] = shapes[o][2] = size / (stride << l);
        }
    for (int o = 0; o < FCOS_OUTPUTS; o++) {
        size_t numel = (size_t)(n * shapes[o][0] * shapes[o][1] * shapes[o][2]);
        snprintf(name, sizeof name, "out%d.f32", o);
        inputs[o] = load(name, numel * sizeof(float));
        grads[o] = calloc(numel, sizeof(float));
        if (grads[o] == NULL)
            return 1;
    }
    offsets = load("offsets.i64", (size_t)(n + 1) * sizeof *offsets);
    count = offsets[n];
    raw = load("boxes.f32", (size_t)count * 5 * sizeof(float));
    boxes = malloc((size_t)(count ? count : 1) * sizeof *boxes);
    values = malloc((size_t)n * sizeof *values);
    og = malloc((size_t)n * sizeof *og);
    if (boxes == NULL || values == NULL || og == NULL)
        return 1;
    for (int64_t i = 0; i < count; i++)
        boxes[i] = (rb_box){raw[5 * i], raw[5 * i + 1], raw[5 * i + 2], raw[5 * i + 3], (int64_t)raw[5 * i + 4]};
    for (int64_t i = 0; i < n; i++)
        og[i] = 1.0f / (float)n; /* the engine's seed for a loss */
    t = (rb_targets){.count = n, .boxes = boxes, .box_offsets = offsets};
    if (rb_targets_check(&t, k, size, size, "boxes.f32") != RB_OK)
        die("targets");
    if (fcos_loss_op(&op, stride) != RB_OK)
        die("the loss");
    if (op.state_bytes > sizeof state)
        return 1;
    io = (rb_host_io){.batch = n, .n_inputs = FCOS_OUTPUTS, .inputs = (const float *const *)inputs,
                      .shapes = (const int64_t(*)[3])shapes, .output = values, .targets = &t, .training = true,
                      .output_grad = og, .input_grads = grads, .state = state};
    if (op.forward(&io, op.user) != RB_OK || op.backward(&io, op.user) != RB_OK)
        die("the loss");
    for (int64_t i = 0; i < n; i++)
        mean += values[i];
    mean /= (double)n;
    save("values.f32", values, (size_t)n * sizeof *values);
    for (int o = 0; o < FCOS_OUTPUTS; o++) {
        snprintf(name, sizeof name, "grad%d.f32", o);
        save(name, grads[o], (size_t)(n * shapes[o][0] * shapes[o][1] * shapes[o][2]) * sizeof(float));
        free(inputs[o]);
        free(grads[o]);
    }
    f = open_in("loss.txt", "w");
    fprintf(f, "%.17g\n", mean);
    fclose(f);
    free(offsets);
    free(raw);
    free(boxes);
    free(values);
    free(og);
    return 0;
}

static int run_decode(int64_t n, int64_t k, int64_t size, int64_t stride, double threshold, double nms)
{
    int64_t shapes[FCOS_OUTPUTS][3], *counts = calloc((size_t)n, sizeof(int64_t));
    float *outputs[FCOS_OUTPUTS], *scores = calloc((size_t)(n * RB_TASK_MAX_DETECTIONS), sizeof(float)),
          *flat = calloc((size_t)(n * RB_TASK_MAX_DETECTIONS * 5), sizeof(float));
    rb_box *boxes = calloc((size_t)(n * RB_TASK_MAX_DETECTIONS), sizeof(rb_box));
    fcos_decode_options o = {threshold, nms, size, size};
    rb_predictions p = {.count = n, .boxes = boxes, .scores = scores, .box_counts = counts,
                        .max_boxes = RB_TASK_MAX_DETECTIONS};
    char name[32];
    if (counts == NULL || scores == NULL || flat == NULL || boxes == NULL)
        return 1;
    for (int l = 0; l < FCOS_LEVELS; l++)
        for (int c = 0; c < FCOS_PER_LEVEL; c++) {
            int o_ = l * FCOS_PER_LEVEL + c;
            shapes[o_][0] = c == 0 ? k : c == 1 ? 4 : 1;
            shapes[o_][1] = shapes[o_][2] = size / (stride << l);
            snprintf(name, sizeof name, "out%d.f32", o_);
            outputs[o_] = load(name, (size_t)(n * shapes[o_][0] * shapes[o_][1] * shapes[o_][2]) * sizeof(float));
        }
    if (fcos_decode(&o, (const float *const *)outputs, (const int64_t(*)[3])shapes, FCOS_OUTPUTS, n, &p) != RB_OK)
        die("decode");
    for (int64_t i = 0; i < n * RB_TASK_MAX_DETECTIONS; i++) {
        flat[5 * i] = boxes[i].x1;
        flat[5 * i + 1] = boxes[i].y1;
        flat[5 * i + 2] = boxes[i].x2;
        flat[5 * i + 3] = boxes[i].y2;
        flat[5 * i + 4] = (float)boxes[i].label;
    }
    save("counts.i64", counts, (size_t)n * sizeof *counts);
    save("boxes.f32", flat, (size_t)(n * RB_TASK_MAX_DETECTIONS * 5) * sizeof *flat);
    save("scores.f32", scores, (size_t)(n * RB_TASK_MAX_DETECTIONS) * sizeof *scores);
    for (int o_ = 0; o_ < FCOS_OUTPUTS; o_++)
        free(outputs[o_]);
    free(counts);
    free(scores);
    free(flat);
    free(boxes);
    return 0;
}

/* The stand-in backbone: average pooling by `pool_stride` and twice that,
 * published as the stride-8 and stride-16 stages. */
static int64_t pool_stride;

static const rb_param_spec pool_params[] = {
    {RB_PARAM_NUM_CLASSES, RB_PARAM_INT, "0", "[0, 0]", 0, "no classifier"}, {.name = NULL}};

static rb_status pool_build(rb_graph *g, rb_node *input, const rb_params *params, rb_node **logits)
{
    rb_pool_desc d8 = {.kernel = {pool_stride, pool_stride}}, d16 = {.kernel = {2 * pool_stride, 2 * pool_stride}};
    rb_node *x8, *x16;
    rb_status s;
    (void)params;
    *logits = NULL;
    if ((s = rb_graph_avgpool(g, input, &d8, &x8)) != RB_OK || (s = rb_graph_avgpool(g, input, &d16, &x16)) != RB_OK ||
        (s = rb_graph_publish(g, x8, RB_STAGE_STRIDE8)) != RB_OK)
        return s;
    return rb_graph_publish(g, x16, RB_STAGE_STRIDE16);
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

#define MAX_TENSORS 256

static int run_head(int argc, char **argv)
{
    int64_t n = atoll(argv[3]), c = atoll(argv[4]), size = atoll(argv[5]), k = atoll(argv[7]), total = 0, *offsets;
    rb_registry *reg;
    const rb_plugin *detect;
    rb_params *tp;
    rb_model *m;
    rb_model_input in = {0};
    rb_graph *g;
    rb_engine *e;
    rb_engine_options o = {0};
    rb_node *const *outputs;
    rb_targets t;
    rb_box *boxes;
    char names[MAX_TENSORS][128];
    int64_t numel[MAX_TENSORS];
    size_t count = 0, n_outputs, n_grads = 0;
    float *x, *values, *grads, *x_grad, *raw;
    FILE *f;

    pool_stride = atoll(argv[6]);
    if (n < 1 || c < 1 || c > RB_MODEL_MAX_CHANNELS || pool_stride < 1 || size % (2 * pool_stride) != 0 || k < 1)
        return 2;
    if (rb_registry_create(&reg) != RB_OK || rb_registry_load_path(reg, getenv("RB_PLUGIN_PATH")) != RB_OK ||
        rb_registry_find(reg, RB_PLUGIN_TASK, "detect", &detect) != RB_OK)
        die("the detect plugin (RB_PLUGIN_PATH)");
    if (rb_params_create(&tp, detect->params) != RB_OK)
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
    in.height = in.width = size;
    for (int i = 0; i < RB_MODEL_MAX_CHANNELS; i++)
        in.std[i] = 1.0f;
    if (rb_model_create_with_head(&m, &pool_arch, NULL, detect, tp, &in, k) != RB_OK)
        die("model");
    g = rb_model_graph(m);

    /* the weights, by torch's names: all of the model's, and only those */
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
        if (p.numel != numel[i] || !p.trainable) {
            fprintf(stderr, "detect_parity: %s holds %lld values in robusta (%s), %lld in torch\n", names[i],
                    (long long)p.numel, p.trainable ? "trainable" : "a buffer", (long long)numel[i]);
            return 1;
        }
        memcpy(p.value, values + total, (size_t)p.numel * sizeof(float));
        total += p.numel;
        n_grads += (size_t)p.numel;
    }
    if (count != rb_graph_param_count(g)) {
        fprintf(stderr, "detect_parity: the model has %zu tensors, torch's state dict %zu\n",
                rb_graph_param_count(g), count);
        return 1;
    }

    x = load("x.f32", (size_t)(n * c * size * size) * sizeof(float));
    offsets = load("offsets.i64", (size_t)(n + 1) * sizeof *offsets);
    raw = load("boxes.f32", (size_t)offsets[n] * 5 * sizeof(float));
    boxes = malloc((size_t)(offsets[n] ? offsets[n] : 1) * sizeof *boxes);
    if (boxes == NULL)
        return 1;
    for (int64_t i = 0; i < offsets[n]; i++)
        boxes[i] = (rb_box){raw[5 * i], raw[5 * i + 1], raw[5 * i + 2], raw[5 * i + 3], (int64_t)raw[5 * i + 4]};
    t = (rb_targets){.count = n, .boxes = boxes, .box_offsets = offsets};
    if (rb_engine_create(&e, g, n, &o) != RB_OK || rb_engine_forward_targets(e, x, n, &t, true) != RB_OK ||
        rb_engine_backward(e, true, true) != RB_OK)
        die("forward and backward");
    outputs = rb_model_outputs(m, &n_outputs);
    for (size_t i = 0; i < n_outputs; i++) {
        int64_t oc, oh, ow;
        char name[32];
        float *out;
        rb_node_shape(outputs[i], &oc, &oh, &ow);
        out = malloc((size_t)(n * oc * oh * ow) * sizeof *out);
        if (out == NULL || rb_engine_read(e, outputs[i], out) != RB_OK)
            die("read");
        snprintf(name, sizeof name, "out%zu.f32", i);
        save(name, out, (size_t)(n * oc * oh * ow) * sizeof *out);
        free(out);
    }
    grads = malloc((n_grads ? n_grads : 1) * sizeof *grads);
    x_grad = malloc((size_t)(n * c * size * size) * sizeof *x_grad);
    if (grads == NULL || x_grad == NULL || rb_engine_input_grad(e, x_grad) != RB_OK)
        die("gradients");
    n_grads = 0;
    for (size_t i = 0; i < count; i++) {
        rb_param_info p;
        rb_graph_find_param(g, names[i], &p);
        memcpy(grads + n_grads, p.grad, (size_t)p.numel * sizeof(float));
        n_grads += (size_t)p.numel;
    }
    save("grads.f32", grads, n_grads * sizeof *grads);
    save("x_grad.f32", x_grad, (size_t)(n * c * size * size) * sizeof *x_grad);
    f = open_in("loss.txt", "w");
    fprintf(f, "%.17g\n", rb_engine_mean_loss(e));
    fclose(f);
    rb_engine_destroy(e);
    rb_model_destroy(m);
    rb_params_destroy(tp);
    rb_registry_destroy(reg);
    free(x);
    free(offsets);
    free(raw);
    free(boxes);
    free(values);
    free(grads);
    free(x_grad);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 8 && strcmp(argv[1], "head") == 0) {
        dir = argv[2];
        return run_head(argc, argv);
    }
    if (argc == 9 && strcmp(argv[1], "decode") == 0) {
        int64_t n = atoll(argv[3]), k = atoll(argv[4]), size = atoll(argv[5]), stride = atoll(argv[6]);
        dir = argv[2];
        if (n < 1 || k < 1 || stride < 1 || size < 2 * stride || size % (2 * stride) != 0)
            return 2;
        return run_decode(n, k, size, stride, atof(argv[7]), atof(argv[8]));
    }
    if (argc == 7 && strcmp(argv[1], "loss") == 0) {
        int64_t n = atoll(argv[3]), k = atoll(argv[4]), size = atoll(argv[5]), stride = atoll(argv[6]);
        dir = argv[2];
        if (n < 1 || k < 1 || stride < 1 || size < 2 * stride || size % (2 * stride) != 0)
            return 2;
        return run_loss(n, k, size, stride);
    }
    fprintf(stderr, "usage: detect_parity loss DIR N K SIZE STRIDE\n"
                    "       detect_parity decode DIR N K SIZE STRIDE SCORE_THRESHOLD NMS_THRESHOLD\n"
                    "       detect_parity head DIR N C SIZE STRIDE K [NAME=VALUE ...]\n");
    return 2;
}
