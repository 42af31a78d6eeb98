/* Runs one dense-head op on arrays tests/torch_ops_parity.py wrote, for
 * its comparison with PyTorch:
 *
 *   ops_parity DIR CASE N C H W [A B]
 *
 * DIR holds x.f32 (N x C x H x W, the input) and, by case, w.f32 (the
 * weights of the objective: N x the op's output), conv.f32 (1x1
 * convolution weights, K x C), masks.i32 (N x H x W) and targets.f32
 * (N x C x H x W). The input node normalizes with mean 0 and std 0.25, so
 * the op sees 4x. The objective is the loss for the losses and
 * sum(w * output) / N otherwise (a host-op loss), as the engine averages
 * per-example losses. Writes out.f32 (the op's output), grad.f32 (the
 * objective's gradient with respect to x) and loss.txt (the objective). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/robusta.h>

static const char *dir;
static int64_t n_, c_, h_, w_;
static float *weights; /* the objective's, for the non-loss ops */

static void die(const char *what)
{
    fprintf(stderr, "ops_parity: %s: %s\n", what, rb_last_error());
    exit(1);
}

static void *load(const char *name, size_t bytes)
{
    char path[4096];
    void *p = malloc(bytes ? bytes : 1);
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (f == NULL || p == NULL || fread(p, 1, bytes, f) != bytes) {
        fprintf(stderr, "ops_parity: cannot read %zu bytes from %s: %s\n", bytes, path, strerror(errno));
        exit(1);
    }
    fclose(f);
    return p;
}

static void save(const char *name, const void *p, size_t bytes)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, bytes, f) != bytes || fclose(f) != 0) {
        fprintf(stderr, "ops_parity: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* The objective of a non-loss op: per example, sum(w * output). */
static rb_status weighted_forward(const rb_host_io *io, void *user)
{
    int64_t size = io->shapes[0][0] * io->shapes[0][1] * io->shapes[0][2];
    (void)user;
    for (int64_t b = 0; b < io->batch; b++) {
        double sum = 0;
        for (int64_t i = 0; i < size; i++)
            sum += (double)weights[b * size + i] * io->inputs[0][b * size + i];
        io->output[b] = (float)sum;
    }
    return RB_OK;
}

static rb_status weighted_backward(const rb_host_io *io, void *user)
{
    int64_t size = io->shapes[0][0] * io->shapes[0][1] * io->shapes[0][2];
    (void)user;
    for (int64_t b = 0; b < io->batch; b++)
        for (int64_t i = 0; i < size; i++)
            io->input_grads[0][b * size + i] = io->output_grad[b] * weights[b * size + i];
    return RB_OK;
}

/* The focal loss's targets, as given. */
static float *focal_targets;
static rb_status given_forward(const rb_host_io *io, void *user)
{
    int64_t size = io->shapes[0][0] * io->shapes[0][1] * io->shapes[0][2];
    (void)user;
    memcpy(io->output, focal_targets, (size_t)(io->batch * size) * sizeof(float));
    return RB_OK;
}

static rb_status no_gradient(const rb_host_io *io, void *user)
{
    (void)io;
    (void)user;
    return RB_OK;
}

static rb_node *conv1x1(rb_graph *g, rb_node *in, int64_t out)
{
    rb_conv_desc d = {.out_channels = out, .kernel = {1, 1}};
    rb_param_info p;
    rb_node *n;
    float *k = load("conv.f32", (size_t)(out * c_) * sizeof(float));
    if (rb_graph_conv(g, "conv", in, &d, &n) != RB_OK || rb_graph_find_param(g, "conv.weight", &p) != RB_OK)
        die("conv");
    memcpy(p.value, k, (size_t)p.numel * sizeof(float));
    free(k);
    return n;
}

int main(int argc, char **argv)
{
    static const rb_host_op weighted = {.name = "weighted sum", .loss = true, .forward = weighted_forward,
                                        .backward = weighted_backward};
    static const rb_host_op given = {.name = "given targets", .forward = given_forward, .backward = no_gradient};
    const char *kase;
    int64_t a, b, n_x, n_out;
    float mean[16] = {0}, std[16];
    float *x, *out, *grad;
    int32_t *masks = NULL;
    rb_targets targets = {0};
    rb_graph *g;
    rb_node *in, *op = NULL, *loss = NULL;
    rb_engine *e;
    FILE *f;
    char path[4096];

    if (argc < 7) {
        fprintf(stderr, "usage: ops_parity DIR CASE N C H W [A B]\n");
        return 2;
    }
    dir = argv[1];
    kase = argv[2];
    n_ = atoll(argv[3]);
    c_ = atoll(argv[4]);
    h_ = atoll(argv[5]);
    w_ = atoll(argv[6]);
    a = argc > 7 ? atoll(argv[7]) : 0;
    b = argc > 8 ? atoll(argv[8]) : 0;
    if (c_ < 1 || c_ > 16)
        return 2;
    for (int i = 0; i < 16; i++)
        std[i] = 0.25f;
    n_x = n_ * c_ * h_ * w_;
    x = load("x.f32", (size_t)n_x * sizeof(float));
    if (rb_graph_create(&g) != RB_OK || rb_graph_input(g, c_, h_, w_, mean, std, &in) != RB_OK)
        die("input");

    if (strncmp(kase, "up-", 3) == 0) {
        rb_upsample_desc d = {.mode = strstr(kase, "nearest") ? RB_UPSAMPLE_NEAREST : RB_UPSAMPLE_BILINEAR};
        if (strstr(kase, "factor"))
            d.factor = a;
        else {
            d.height = a;
            d.width = b;
        }
        if (rb_graph_upsample(g, in, &d, &op) != RB_OK)
            die(kase);
    } else if (strcmp(kase, "concat") == 0) {
        rb_node *parts[3] = {in, conv1x1(g, in, a), in};
        if (rb_graph_concat(g, parts, 3, &op) != RB_OK)
            die(kase);
    } else if (strcmp(kase, "sigmoid") == 0) {
        if (rb_graph_sigmoid(g, in, &op) != RB_OK)
            die(kase);
    } else if (strcmp(kase, "mul") == 0) {
        if (rb_graph_mul(g, in, conv1x1(g, in, c_), &op) != RB_OK)
            die(kase);
    } else if (strcmp(kase, "pixel-ce") == 0) {
        rb_node *m;
        masks = load("masks.i32", (size_t)(n_ * h_ * w_) * sizeof(int32_t));
        targets = (rb_targets){.count = n_, .masks = masks, .mask_height = h_, .mask_width = w_};
        if (rb_graph_target(g, RB_TARGET_MASKS, &m) != RB_OK ||
            rb_graph_pixel_cross_entropy(g, in, m, RB_IGNORE_LABEL, &loss) != RB_OK)
            die(kase);
    } else if (strcmp(kase, "focal") == 0) {
        rb_focal_desc d = RB_FOCAL_DEFAULTS;
        rb_node *t;
        if (a == 1) {
            d.alpha = -1;
            d.gamma = 1.5;
            d.normalizer = 7;
        }
        focal_targets = load("targets.f32", (size_t)n_x * sizeof(float));
        if (rb_graph_host_op(g, "targets", &given, &in, 1, &t) != RB_OK ||
            rb_graph_sigmoid_focal_loss(g, in, t, &d, &loss) != RB_OK)
            die(kase);
    } else {
        fprintf(stderr, "ops_parity: unknown case '%s'\n", kase);
        return 2;
    }
    if (loss == NULL) {
        int64_t oc, oh, ow;
        rb_node_shape(op, &oc, &oh, &ow);
        weights = load("w.f32", (size_t)(n_ * oc * oh * ow) * sizeof(float));
        if (rb_graph_host_op(g, "objective", &weighted, &op, 1, &loss) != RB_OK)
            die("objective");
    } else {
        op = loss;
    }
    {
        int64_t oc, oh, ow;
        rb_node_shape(op, &oc, &oh, &ow);
        n_out = n_ * oc * oh * ow;
    }
    if (rb_graph_publish(g, op, "under-test") != RB_OK)
        die("publish");
    if (rb_engine_create(&e, g, n_, NULL) != RB_OK || rb_engine_forward_targets(e, x, n_, &targets, true) != RB_OK ||
        rb_engine_backward(e, false, true) != RB_OK)
        die(kase);
    out = malloc((size_t)n_out * sizeof *out);
    grad = malloc((size_t)n_x * sizeof *grad);
    if (out == NULL || grad == NULL || rb_engine_read(e, op, out) != RB_OK || rb_engine_input_grad(e, grad) != RB_OK)
        die("read");
    save("out.f32", out, (size_t)n_out * sizeof *out);
    save("grad.f32", grad, (size_t)n_x * sizeof *grad);
    snprintf(path, sizeof path, "%s/loss.txt", dir);
    f = fopen(path, "w");
    if (f == NULL)
        die("loss.txt");
    fprintf(f, "%.9g\n", rb_engine_mean_loss(e));
    fclose(f);
    rb_engine_destroy(e);
    rb_graph_destroy(g);
    free(x);
    free(out);
    free(grad);
    free(masks);
    free(weights);
    free(focal_targets);
    return 0;
}
