/* Runs group normalization, or a tower applied twice with shared
 * parameters, on arrays tests/torch_shared_parity.py wrote, for its
 * comparison with PyTorch:
 *
 *   shared_parity DIR CASE N C H W G [K]
 *
 * CASE groupnorm: the image (N x C x H x W, x.f32, no normalization) ->
 * groupnorm "gn" (G groups); groupnorm-conv: a 1x1 convolution "lead"
 * (C -> K, no bias) first, so that the op reads a convolution's blocked
 * layout; tower: conv 3x3 "t.0" (C -> K, bias) -> groupnorm "t.1" (G
 * groups) -> ReLU -> conv 3x3 "t.3" (K -> 4, bias), applied to the image
 * (level a) and, with the same parameters (rb_graph_reuse), to its 2x2
 * average-pooled copy (level b).
 *
 * Parameters come from NAME.f32 files (gn.weight.f32 ...). The objective
 * is sum(w * out) / N for the op (weights wa.f32), and for the tower the
 * sum of that over both levels (wa.f32, wb.f32). Writes out.f32 (the op's
 * output; the tower's on level a), grad.f32 (the objective's gradient
 * with respect to x), NAME.grad.f32 for every parameter, and loss.txt. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/robusta.h>

static const char *dir;

_Noreturn static void die(const char *what)
{
    fprintf(stderr, "shared_parity: %s: %s\n", what, rb_last_error());
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
        fprintf(stderr, "shared_parity: cannot read %zu bytes from %s: %s\n", bytes, path, strerror(errno));
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
        fprintf(stderr, "shared_parity: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* The objective of one output: per example, sum(w * output); `user` is w. */
static rb_status weighted_forward(const rb_host_io *io, void *user)
{
    const float *w = user;
    int64_t size = io->shapes[0][0] * io->shapes[0][1] * io->shapes[0][2];
    for (int64_t b = 0; b < io->batch; b++) {
        double sum = 0;
        for (int64_t i = 0; i < size; i++)
            sum += (double)w[b * size + i] * io->inputs[0][b * size + i];
        io->output[b] = (float)sum;
    }
    return RB_OK;
}

static rb_status weighted_backward(const rb_host_io *io, void *user)
{
    const float *w = user;
    int64_t size = io->shapes[0][0] * io->shapes[0][1] * io->shapes[0][2];
    for (int64_t b = 0; b < io->batch; b++)
        for (int64_t i = 0; i < size; i++)
            io->input_grads[0][b * size + i] = io->output_grad[b] * w[b * size + i];
    return RB_OK;
}

static int64_t size_of(const rb_node *n)
{
    int64_t c, h, w;
    rb_node_shape(n, &c, &h, &w);
    return c * h * w;
}

/* A loss sum(w * out) on node `out`, its weights from FILE. */
static float *objective(rb_graph *g, rb_node *out, const char *name, const char *file, int64_t batch)
{
    float *w = load(file, (size_t)(batch * size_of(out)) * sizeof(float));
    rb_host_op op = {.name = name, .loss = true, .forward = weighted_forward, .backward = weighted_backward, .user = w};
    rb_node *loss;
    if (rb_graph_host_op(g, name, &op, &out, 1, &loss) != RB_OK)
        die(name);
    return w;
}

int main(int argc, char **argv)
{
    const char *kase;
    int64_t n, c, h, w, groups, k, n_x, n_out;
    float *x, *out, *grad, *wa = NULL, *wb = NULL;
    rb_graph *g;
    rb_node *in, *y, *op;
    rb_engine *e;
    FILE *f;
    char path[4096];

    if (argc < 8) {
        fprintf(stderr, "usage: shared_parity DIR CASE N C H W G [K]\n");
        return 2;
    }
    dir = argv[1];
    kase = argv[2];
    n = atoll(argv[3]);
    c = atoll(argv[4]);
    h = atoll(argv[5]);
    w = atoll(argv[6]);
    groups = atoll(argv[7]);
    k = argc > 8 ? atoll(argv[8]) : 0;
    if (n < 1 || c < 1 || h < 2 || w < 2)
        return 2;
    n_x = n * c * h * w;
    x = load("x.f32", (size_t)n_x * sizeof(float));
    if (rb_graph_create(&g) != RB_OK || rb_graph_input(g, c, h, w, NULL, NULL, &in) != RB_OK)
        die("input");
    if (strcmp(kase, "groupnorm") == 0 || strcmp(kase, "groupnorm-conv") == 0) {
        y = in;
        if (strcmp(kase, "groupnorm-conv") == 0 &&
            rb_graph_conv(g, "lead", in, &(rb_conv_desc){.out_channels = k, .kernel = {1, 1}}, &y) != RB_OK)
            die("lead");
        if (rb_graph_groupnorm(g, "gn", y, groups, &op) != RB_OK)
            die(kase);
        wa = objective(g, op, "objective", "wa.f32", n);
    } else if (strcmp(kase, "tower") == 0) {
        rb_node *t0, *t1, *t3, *b;
        const rb_conv_desc d0 = {.out_channels = k, .kernel = {3, 3}, .padding = {1, 1}, .bias = true};
        const rb_conv_desc d3 = {.out_channels = 4, .kernel = {3, 3}, .padding = {1, 1}, .bias = true};
        if (rb_graph_conv(g, "t.0", in, &d0, &t0) != RB_OK || rb_graph_groupnorm(g, "t.1", t0, groups, &t1) != RB_OK ||
            rb_graph_relu(g, t1, &y) != RB_OK || rb_graph_conv(g, "t.3", y, &d3, &t3) != RB_OK)
            die("tower");
        op = t3;
        if (rb_graph_avgpool(g, in, &(rb_pool_desc){.kernel = {2, 2}}, &b) != RB_OK ||
            rb_graph_reuse(g, t0, b, &y) != RB_OK || rb_graph_reuse(g, t1, y, &y) != RB_OK ||
            rb_graph_relu(g, y, &y) != RB_OK || rb_graph_reuse(g, t3, y, &y) != RB_OK)
            die("tower, level b");
        wa = objective(g, op, "objective_a", "wa.f32", n);
        wb = objective(g, y, "objective_b", "wb.f32", n);
    } else {
        fprintf(stderr, "shared_parity: unknown case '%s'\n", kase);
        return 2;
    }
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        float *v;
        rb_graph_param(g, i, &p);
        snprintf(path, sizeof path, "%s.f32", p.name);
        v = load(path, (size_t)p.numel * sizeof(float));
        memcpy(p.value, v, (size_t)p.numel * sizeof(float));
        free(v);
    }
    n_out = n * size_of(op);
    if (rb_graph_publish(g, op, "under-test") != RB_OK)
        die("publish");
    if (rb_engine_create(&e, g, n, NULL) != RB_OK || rb_engine_forward(e, x, n, NULL, true) != RB_OK ||
        rb_engine_backward(e, true, true) != RB_OK)
        die(kase);
    out = malloc((size_t)n_out * sizeof *out);
    grad = malloc((size_t)n_x * sizeof *grad);
    if (out == NULL || grad == NULL || rb_engine_read(e, op, out) != RB_OK || rb_engine_input_grad(e, grad) != RB_OK)
        die("read");
    save("out.f32", out, (size_t)n_out * sizeof *out);
    save("grad.f32", grad, (size_t)n_x * sizeof *grad);
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        rb_graph_param(g, i, &p);
        snprintf(path, sizeof path, "%s.grad.f32", p.name);
        save(path, p.grad, (size_t)p.numel * sizeof(float));
    }
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
    free(wa);
    free(wb);
    return 0;
}
