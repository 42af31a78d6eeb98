/* Dense-head ops at the shapes a ResNet-18 head uses at 224x224: each op
 * alone (forward and backward, timed by the engine's profile), upsampling
 * and concat in GB/s against the machine's copy bandwidth measured in the
 * same run, and a whole training step of ResNet-18 with a segmentation and
 * a detection head, with each head op's share of the step. Prints lines
 *     perf,dense_op,NAME,SHAPE,fwd_ms,bwd_ms,fwd_GB/s,bwd_GB/s,fwd_%copy,bwd_%copy,IMPL
 *     perf,dense_step,NODE,OP,fwd_ms,bwd_ms,%step,IMPL
 * with medians of several runs; never fails on time.
 * bench/torch_dense.py times PyTorch's same ops from these lines.
 *
 *   bench_dense [--quick] [--threads N] [--batch N] [--repeats N]
 */
#include "config.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/robusta.h>

#include "benchutil.h"

#define MAX_REPEATS 32

static int threads, repeats = 5;
static int64_t batch = 16;

static int fail(const char *what)
{
    fprintf(stderr, "bench_dense: %s: %s\n", what, rb_last_error());
    return 1;
}

/* ------------------------------------------------------------ copy bandwidth */

/* GB/s of a parallel memcpy of 256 MiB (read + write counted), the bound
 * a memory-bound op is measured against. */
static double copy_bandwidth(void)
{
    size_t bytes = (size_t)256 << 20;
    char *src = malloc(bytes), *dst = malloc(bytes);
    double t[MAX_REPEATS];
    if (src == NULL || dst == NULL)
        return 0;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < (long)(bytes >> 12); i++) { /* first touch by the threads that copy */
        memset(src + ((size_t)i << 12), 1, 4096);
        memset(dst + ((size_t)i << 12), 0, 4096);
    }
    for (int r = 0; r < repeats; r++) {
        double start = now();
#pragma omp parallel num_threads(threads)
        {
            int n = omp_get_num_threads(), k = omp_get_thread_num();
            size_t chunk = bytes / (size_t)n, from = chunk * (size_t)k;
            memcpy(dst + from, src + from, k == n - 1 ? bytes - from : chunk);
        }
        t[r] = now() - start;
    }
    free(src);
    free(dst);
    return 2.0 * (double)bytes / median(t, repeats) * 1e-9;
}

/* ------------------------------------------------------------ host ops the benchmark uses */

/* A loss summing its input (for ops that are not losses): O(size), and
 * timed apart from the op by the profile. */
static rb_status sum_forward(const rb_host_io *io, void *user)
{
    int64_t size = io->shapes[0][0] * io->shapes[0][1] * io->shapes[0][2];
    (void)user;
    for (int64_t b = 0; b < io->batch; b++) {
        double s = 0;
        for (int64_t i = 0; i < size; i++)
            s += io->inputs[0][b * size + i];
        io->output[b] = (float)(s * 1e-3);
    }
    return RB_OK;
}

static rb_status sum_backward(const rb_host_io *io, void *user)
{
    int64_t size = io->shapes[0][0] * io->shapes[0][1] * io->shapes[0][2];
    (void)user;
    for (int64_t b = 0; b < io->batch; b++)
        for (int64_t i = 0; i < size; i++)
            io->input_grads[0][b * size + i] = io->output_grad[b] * 1e-3f;
    return RB_OK;
}

/* Focal-loss targets: about 1% positives, a fixed pattern. */
static rb_status anchors_forward(const rb_host_io *io, void *user)
{
    int64_t n = io->batch * io->shapes[0][0] * io->shapes[0][1] * io->shapes[0][2];
    (void)user;
    for (int64_t i = 0; i < n; i++)
        io->output[i] = (i * 2654435761u) % 97 == 0 ? 1.0f : 0.0f;
    return RB_OK;
}

static rb_status no_gradient(const rb_host_io *io, void *user)
{
    (void)io;
    (void)user;
    return RB_OK;
}

static const rb_host_op sum_op = {.name = "sum", .loss = true, .forward = sum_forward, .backward = sum_backward};
static const rb_host_op anchors_op = {.name = "anchor targets", .forward = anchors_forward, .backward = no_gradient};

/* ------------------------------------------------------------ single ops */

typedef enum { UP_BILINEAR_X2, UP_NEAREST_X2, UP_BILINEAR_X8, CONCAT, SIGMOID, MUL, PIXEL_CE, FOCAL, GROUPNORM, N_CASES } op_case;

static const struct {
    const char *name;
    int64_t c, h, w; /* the input */
    bool memory_bound;
} cases[N_CASES] = {
    [UP_BILINEAR_X2] = {"upsample-bilinear-x2", 256, 14, 14, true}, /* stride 16 to 8 */
    [UP_NEAREST_X2] = {"upsample-nearest-x2", 256, 14, 14, true},
    [UP_BILINEAR_X8] = {"upsample-bilinear-x8", 21, 28, 28, true}, /* stride-8 logits to the image */
    [CONCAT] = {"concat", 128, 28, 28, true},                       /* stride 8 + 256 upsampled channels */
    [SIGMOID] = {"sigmoid", 256, 28, 28, false},
    [MUL] = {"mul", 256, 28, 28, false},
    [PIXEL_CE] = {"pixel-ce", 21, 224, 224, false}, /* Pascal VOC's 21 classes */
    [FOCAL] = {"focal", 180, 28, 28, false},        /* 9 anchors x 20 classes at stride 8 */
    /* an FCOS tower's at stride 8 (torchvision: 32 groups); bytes as for the
     * others, input + output, though it reads its input twice (and its
     * backward the input and the gradient twice each) */
    [GROUPNORM] = {"groupnorm-32", 128, 28, 28, true},
};

static int64_t numel(const rb_node *n)
{
    int64_t c, h, w;
    rb_node_shape(n, &c, &h, &w);
    return c * h * w;
}

static rb_node *conv(rb_graph *g, const char *name, rb_node *in, int64_t out, int64_t k)
{
    rb_conv_desc d = {.out_channels = out, .kernel = {k, k}, .padding = {k / 2, k / 2}};
    rb_node *n = NULL;
    if (rb_graph_conv(g, name, in, &d, &n) != RB_OK)
        return NULL;
    return n;
}

/* The op under test, reading a 1x1 convolution's output as ops in a head
 * do (the layout a convolution gives, channel-blocked on x86, is the one
 * that matters), or the plain image itself; and its bytes moved per pass
 * (input + output). */
static rb_status build_case(rb_graph *g, op_case k, bool plain, rb_node **op, double *bytes)
{
    float mean[256] = {0}, std[256];
    rb_node *in, *src, *x = NULL, *t, *loss;
    rb_status s;
    for (int i = 0; i < 256; i++)
        std[i] = 1;
    s = rb_graph_input(g, cases[k].c, cases[k].h, cases[k].w, mean, std, &in);
    if (s != RB_OK)
        return s;
    src = plain ? in : conv(g, "producer", in, cases[k].c, 1);
    if (src == NULL)
        return RB_ERR_INVALID_ARGUMENT;
    switch (k) {
    case UP_BILINEAR_X2: case UP_NEAREST_X2: case UP_BILINEAR_X8: {
        rb_upsample_desc d = {.mode = k == UP_NEAREST_X2 ? RB_UPSAMPLE_NEAREST : RB_UPSAMPLE_BILINEAR,
                              .factor = k == UP_BILINEAR_X8 ? 8 : 2};
        s = rb_graph_upsample(g, src, &d, &x);
        break;
    }
    case CONCAT: {
        rb_node *parts[2] = {src, plain ? NULL : conv(g, "lateral", in, 256, 1)};
        s = parts[1] ? rb_graph_concat(g, parts, 2, &x) : RB_ERR_INVALID_ARGUMENT;
        break;
    }
    case SIGMOID: s = rb_graph_sigmoid(g, src, &x); break;
    case GROUPNORM: s = rb_graph_groupnorm(g, "gn", src, 32, &x); break;
    case MUL: s = (s = rb_graph_sigmoid(g, src, &t)) == RB_OK ? rb_graph_mul(g, src, t, &x) : s; break;
    case PIXEL_CE:
        s = (s = rb_graph_target(g, RB_TARGET_MASKS, &t)) == RB_OK
                ? rb_graph_pixel_cross_entropy(g, src, t, RB_IGNORE_LABEL, &x) : s;
        break;
    case FOCAL: {
        rb_focal_desc d = RB_FOCAL_DEFAULTS;
        s = (s = rb_graph_host_op(g, "anchors", &anchors_op, &src, 1, &t)) == RB_OK
                ? rb_graph_sigmoid_focal_loss(g, src, t, &d, &x) : s;
        break;
    }
    default: s = RB_ERR_INVALID_ARGUMENT;
    }
    if (s != RB_OK)
        return s;
    *op = x;
    /* concat reads its inputs and writes its output: twice the output */
    *bytes = 4.0 * (double)batch * (double)((k == CONCAT ? 0 : numel(src)) + numel(x) * (k == CONCAT ? 2 : 1));
    if (k == PIXEL_CE || k == FOCAL)
        return RB_OK;
    return rb_graph_host_op(g, "sum", &sum_op, &x, 1, &loss);
}

static int32_t *make_masks(int64_t h, int64_t w)
{
    int32_t *m = malloc((size_t)(batch * h * w) * sizeof *m);
    for (int64_t i = 0; m != NULL && i < batch * h * w; i++)
        m[i] = i % 13 == 0 ? RB_IGNORE_LABEL : (int32_t)((i / 7) % 21);
    return m;
}

static int bench_op(op_case k, bool plain, double copy_gbs)
{
    rb_graph *g = NULL;
    rb_engine *e = NULL;
    rb_node *op = NULL;
    double bytes = 0, fwd[MAX_REPEATS], bwd[MAX_REPEATS], f, b;
    int64_t n = batch * cases[k].c * cases[k].h * cases[k].w;
    float *x = malloc((size_t)n * sizeof *x);
    int32_t *masks = make_masks(cases[k].h, cases[k].w);
    rb_targets t = {.count = batch, .masks = masks, .mask_height = cases[k].h, .mask_width = cases[k].w};
    rb_engine_options o = {.threads = threads, .profile = true};
    int rc = 1;
    for (int64_t i = 0; x != NULL && i < n; i++)
        x[i] = (float)((i * 7919) % 1000) * 1e-3f;
    if (x == NULL || masks == NULL || rb_graph_create(&g) != RB_OK || build_case(g, k, plain, &op, &bytes) != RB_OK ||
        rb_graph_init_params(g, 1) != RB_OK || rb_engine_create(&e, g, batch, &o) != RB_OK) {
        fail(cases[k].name);
        goto done;
    }
    for (int r = -1; r < repeats; r++) { /* one warm-up */
        rb_engine_reset_profile(e);
        /* group normalization's backward with its weight gradients, as in training */
        if (rb_engine_forward_targets(e, x, batch, &t, true) != RB_OK ||
            rb_engine_backward(e, k == GROUPNORM, true) != RB_OK) {
            fail(cases[k].name);
            goto done;
        }
        if (r >= 0)
            rb_engine_node_seconds(e, op, &fwd[r], &bwd[r]);
    }
    f = median(fwd, repeats);
    b = median(bwd, repeats);
    printf("perf,dense_op,%s%s,%lldx%lldx%lldx%lld,%.3f,%.3f", cases[k].name, plain ? "-plain-input" : "", (long long)batch, (long long)cases[k].c,
           (long long)cases[k].h, (long long)cases[k].w, f * 1e3, b * 1e3);
    if (cases[k].memory_bound)
        printf(",%.1f,%.1f,%.0f%%,%.0f%%", bytes / f * 1e-9, bytes / b * 1e-9, 100 * bytes / f * 1e-9 / copy_gbs,
               100 * bytes / b * 1e-9 / copy_gbs);
    else
        printf(",,,,");
    printf(",%s\n", rb_engine_impl(e, op));
    fflush(stdout);
    rc = 0;
done:
    rb_engine_destroy(e);
    rb_graph_destroy(g);
    free(x);
    free(masks);
    return rc;
}

/* ------------------------------------------------------------ a whole step */

/* ResNet-18 at 224x224 (its 21-class classifier kept: it costs little)
 * with a head reading stride 8 and 16: lateral 1x1
 * conv, bilinear x2, concat, a sigmoid gate (mul), then a segmentation
 * branch (3x3 conv to 21 classes, bilinear x8, pixel CE) and a detection
 * classification branch (3x3 conv to 9 x 20, focal loss). */
static int bench_step(const rb_registry *reg)
{
    const rb_plugin *arch;
    const char *preset;
    rb_params *params = NULL;
    rb_model *model = NULL;
    rb_engine *e = NULL;
    rb_model_input input = rb_model_input_imagenet(224, 224);
    rb_graph *g;
    rb_node *s8, *s16, *lat, *up, *cat, *gate, *gated, *seg, *seg_up, *masks, *ce, *cls, *targets, *focal;
    rb_node *parts[2];
    rb_upsample_desc up2 = {.mode = RB_UPSAMPLE_BILINEAR, .factor = 2}, up8 = {.mode = RB_UPSAMPLE_BILINEAR,
                                                                              .factor = 8};
    rb_focal_desc fd = RB_FOCAL_DEFAULTS;
    rb_engine_options o = {.threads = threads, .profile = true};
    int64_t n = batch * 3 * 224 * 224;
    float *x = malloc((size_t)n * sizeof *x);
    int32_t *m = make_masks(224, 224);
    int64_t labels[1024];
    rb_targets t = {.count = batch, .labels = labels, .masks = m, .mask_height = 224, .mask_width = 224};
    double steps[MAX_REPEATS], step;
    int rc = 1;
    const char *names[] = {"lateral-upsample", "concat", "gate-sigmoid", "gated-mul", "seg-upsample-x8", "pixel-ce",
                           "focal"};
    rb_node **nodes[] = {&up, &cat, &gate, &gated, &seg_up, &ce, &focal};
    double fwd[7][MAX_REPEATS], bwd[7][MAX_REPEATS];

    for (int64_t i = 0; x != NULL && i < n; i++)
        x[i] = (float)((i * 7919) % 1000) * 1e-3f;
    for (int64_t b = 0; b < batch; b++)
        labels[b] = b % 21;
    if (x == NULL || m == NULL || rb_arch_resolve(reg, "resnet18", &arch, &preset) != RB_OK ||
        rb_params_create(&params, arch->params) != RB_OK ||
        (preset != NULL && rb_params_set(params, "preset", preset) != RB_OK) ||
        rb_params_set(params, "num-classes", "21") != RB_OK || rb_model_create(&model, arch, params, &input) != RB_OK)
        return fail("resnet18");
    g = rb_model_graph(model);
    if (rb_graph_find(g, RB_STAGE_STRIDE8, &s8) != RB_OK || rb_graph_find(g, RB_STAGE_STRIDE16, &s16) != RB_OK ||
        (lat = conv(g, "head.lateral", s16, 128, 1)) == NULL || rb_graph_upsample(g, lat, &up2, &up) != RB_OK ||
        (parts[0] = s8, parts[1] = up, rb_graph_concat(g, parts, 2, &cat)) != RB_OK ||
        rb_graph_sigmoid(g, conv(g, "head.gate", cat, 256, 1), &gate) != RB_OK ||
        rb_graph_mul(g, cat, gate, &gated) != RB_OK || (seg = conv(g, "head.seg", gated, 21, 3)) == NULL ||
        rb_graph_upsample(g, seg, &up8, &seg_up) != RB_OK || rb_graph_target(g, RB_TARGET_MASKS, &masks) != RB_OK ||
        rb_graph_pixel_cross_entropy(g, seg_up, masks, RB_IGNORE_LABEL, &ce) != RB_OK ||
        (cls = conv(g, "head.cls", gated, 180, 3)) == NULL ||
        rb_graph_host_op(g, "anchors", &anchors_op, &cls, 1, &targets) != RB_OK ||
        rb_graph_sigmoid_focal_loss(g, cls, targets, &fd, &focal) != RB_OK || rb_graph_init_params(g, 1) != RB_OK ||
        rb_engine_create(&e, g, batch, &o) != RB_OK) {
        rc = fail("dense head");
        goto done;
    }
    for (int r = -1; r < repeats; r++) {
        double start = now();
        rb_engine_reset_profile(e);
        if (rb_engine_forward_targets(e, x, batch, &t, true) != RB_OK || rb_engine_backward(e, true, false) != RB_OK) {
            rc = fail("dense step");
            goto done;
        }
        if (r < 0)
            continue;
        steps[r] = now() - start;
        for (int k = 0; k < 7; k++)
            rb_engine_node_seconds(e, *nodes[k], &fwd[k][r], &bwd[k][r]);
    }
    step = median(steps, repeats);
    printf("perf,dense_step,step,resnet18+head %lldx3x224x224,%.1f,,100%%,\n", (long long)batch, step * 1e3);
    {
        double total = 0;
        for (int k = 0; k < 7; k++) {
            double f = median(fwd[k], repeats), b = median(bwd[k], repeats);
            total += f + b;
            printf("perf,dense_step,%s,%s,%.3f,%.3f,%.2f%%,%s\n", names[k], rb_op_str(rb_node_op(*nodes[k])), f * 1e3,
                   b * 1e3, 100 * (f + b) / step, rb_engine_impl(e, *nodes[k]));
        }
        printf("perf,dense_step,all-new-ops,,%.3f,,%.2f%%,\n", total * 1e3, 100 * total / step);
    }
    rc = 0;
done:
    rb_engine_destroy(e);
    rb_model_destroy(model);
    rb_params_destroy(params);
    free(x);
    free(m);
    return rc;
}

int main(int argc, char **argv)
{
    rb_registry *reg = NULL;
    double copy;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            batch = 4;
            repeats = 3;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            batch = atoll(argv[++i]);
        } else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
            repeats = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_dense [--quick] [--threads N] [--batch N] [--repeats N]\n");
            return 2;
        }
    }
    if (batch < 1 || batch > 1024 || repeats < 1 || repeats > MAX_REPEATS || threads < 0) {
        fprintf(stderr, "bench_dense: --batch in [1, 1024], --repeats in [1, %d], --threads >= 0\n", MAX_REPEATS);
        return 2;
    }
    if (threads == 0) { /* as the engine plans them: one per core of the NUMA node */
        rb_topology *topo;
        rb_thread_plan *plan;
        if (rb_topology_create(&topo, NULL) != RB_OK || rb_thread_plan_create(&plan, topo, 0, -1) != RB_OK)
            return fail("threads");
        threads = rb_thread_plan_count(plan);
        rb_thread_plan_destroy(plan);
        rb_topology_destroy(topo);
    }
    copy = copy_bandwidth();
    printf("# robusta %s, %d threads, batch %lld; medians of %d after 1 warm-up\n", rb_version_string(), threads,
           (long long)batch, repeats);
    printf("# copy bandwidth (parallel memcpy of 256 MiB, read + write): %.1f GB/s\n", copy);
    printf("# perf,dense_op,name,input,fwd_ms,bwd_ms,fwd_GB/s,bwd_GB/s,fwd_%%copy,bwd_%%copy,impl\n");
    fflush(stdout);
    for (int k = 0; k < N_CASES; k++)
        rc |= bench_op((op_case)k, false, copy);
    for (int k = UP_BILINEAR_X2; k <= UP_BILINEAR_X8; k++) /* upsampling the image itself: plain layout */
        rc |= bench_op((op_case)k, true, copy);
    printf("# perf,dense_step,node,op,fwd_ms,bwd_ms,%%step,impl (one step: forward, training + backward, weights)\n");
    fflush(stdout);
    if (rb_log_init_from_env() != RB_OK || rb_registry_create(&reg) != RB_OK || rb_registry_load_default(reg) != RB_OK)
        return fail("plugins");
    rc |= bench_step(reg);
    rb_registry_destroy(reg);
    return rc;
}
