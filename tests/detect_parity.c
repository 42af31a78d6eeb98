/* Runs the detect task's FCOS loss on arrays tests/torch_detect_parity.py
 * wrote, for its comparison with torchvision's FCOS loss:
 *
 *   detect_parity loss DIR N K SIZE
 *
 * The loss host op of plugins/task/fcos.c (compiled in) on N images of
 * SIZE x SIZE with K classes, called as the engine calls it. DIR holds the
 * six raw outputs out0.f32 .. out5.f32 (level by level: class logits
 * N x K x G x G, box regression N x 4 x G x G, centerness N x 1 x G x G;
 * G = SIZE / 8, then SIZE / 16), the boxes as boxes.f32 (x1, y1, x2, y2,
 * class per box, image after image) and offsets.i64 (N + 1 box offsets).
 * One forward and one backward (the objective the engine's: the mean of
 * the per-image values); writes loss.txt (that mean), values.f32 (the
 * per-image values) and grad0.f32 .. grad5.f32 (the objective's gradient
 * with respect to each output). */
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

static int run_loss(int64_t n, int64_t k, int64_t size)
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
            shapes[o][1] = shapes[o][2] = size / (8 << l);
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
    fcos_loss_op(&op);
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

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "loss") == 0) {
        int64_t n = atoll(argv[3]), k = atoll(argv[4]), size = atoll(argv[5]);
        dir = argv[2];
        if (n < 1 || k < 1 || size < 16 || size % 16 != 0)
            return 2;
        return run_loss(n, k, size);
    }
    fprintf(stderr, "usage: detect_parity loss DIR N K SIZE\n");
    return 2;
}
