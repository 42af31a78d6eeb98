/* Engine benchmarks: the machine's FP32 FMA peak, each ResNet-18 / ResNet-50
 * convolution shape (forward, backward-data, backward-weights) on bare
 * oneDNN primitives, the engine's overhead over those same primitives, and
 * whole training steps in fp32 (the engine's default, Winograd for 3x3
 * stride-1 convolutions; and direct only) and bf16 mixed precision.
 * Prints benchdnn-style lines
 *     perf,NAME,SHAPE,MS,GFLOP/S,%PEAK
 * with medians of several runs; never fails on time.
 *
 *   bench_engine [--quick] [--threads N] [--batch N] [--net resnet18|resnet50|all]
 */
#include "config.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>

#include <robusta/robusta.h>

#include "benchutil.h"

/* ------------------------------------------------------------ FMA peak */

/* Twelve independent accumulators, named so that they stay in registers,
 * hide the FMA latency (4 cycles on 2 ports needs at least 8). */
#define FMA_ITERS 20000000L
#define FMA_CHAINS 12
#define FMA_BODY(fma)                                                                            \
    a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);              \
    a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);              \
    a8 = fma(a8, m, c); a9 = fma(a9, m, c); a10 = fma(a10, m, c); a11 = fma(a11, m, c)

__attribute__((target("avx512f"))) static double fma_avx512(long iters)
{
    __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2), a3 = _mm512_set1_ps(3);
    __m512 a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5), a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7);
    __m512 a8 = _mm512_set1_ps(8), a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
    float out[16];
    for (long it = 0; it < iters; it++) {
        FMA_BODY(_mm512_fmadd_ps);
    }
    a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                       _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    a0 = _mm512_add_ps(a0, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    _mm512_storeu_ps(out, a0);
    return out[0];
}

__attribute__((target("avx2,fma"))) static double fma_avx2(long iters)
{
    __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2), a3 = _mm256_set1_ps(3);
    __m256 a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5), a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7);
    __m256 a8 = _mm256_set1_ps(8), a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
    float out[8];
    for (long it = 0; it < iters; it++) {
        FMA_BODY(_mm256_fmadd_ps);
    }
    a0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                       _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    a0 = _mm256_add_ps(a0, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    _mm256_storeu_ps(out, a0);
    return out[0];
}

/* GFLOP/s of `threads` threads each running the FMA loop. */
static double fma_peak(int threads, long iters)
{
    int wide = __builtin_cpu_supports("avx512f");
    int lanes = wide ? 16 : 8;
    double t0 = now(), sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += wide ? fma_avx512(iters) : fma_avx2(iters);
    double seconds = now() - t0;
    if (sink == 12345.0)
        puts("");
    return 2.0 * lanes * FMA_CHAINS * (double)iters * threads / seconds * 1e-9;
}

/* ------------------------------------------------------------ conv shapes */

typedef struct shape {
    const char *net;
    int count; /* how many times the network uses it */
    int ic, oc, ih, k, stride, pad;
} shape;

/* torchvision ResNet-18 and ResNet-50 (v1.5: stride on the 3x3) at 224x224. */
static const shape shapes[] = {
    {"resnet18", 1, 3, 64, 224, 7, 2, 3},
    {"resnet18", 4, 64, 64, 56, 3, 1, 1},
    {"resnet18", 1, 64, 128, 56, 3, 2, 1},
    {"resnet18", 3, 128, 128, 28, 3, 1, 1},
    {"resnet18", 1, 64, 128, 56, 1, 2, 0},
    {"resnet18", 1, 128, 256, 28, 3, 2, 1},
    {"resnet18", 3, 256, 256, 14, 3, 1, 1},
    {"resnet18", 1, 128, 256, 28, 1, 2, 0},
    {"resnet18", 1, 256, 512, 14, 3, 2, 1},
    {"resnet18", 3, 512, 512, 7, 3, 1, 1},
    {"resnet18", 1, 256, 512, 14, 1, 2, 0},
    {"resnet50", 1, 3, 64, 224, 7, 2, 3},
    {"resnet50", 1, 64, 64, 56, 1, 1, 0},
    {"resnet50", 3, 64, 64, 56, 3, 1, 1},
    {"resnet50", 4, 64, 256, 56, 1, 1, 0},
    {"resnet50", 2, 256, 64, 56, 1, 1, 0},
    {"resnet50", 1, 256, 128, 56, 1, 1, 0},
    {"resnet50", 1, 128, 128, 56, 3, 2, 1},
    {"resnet50", 4, 128, 512, 28, 1, 1, 0},
    {"resnet50", 1, 256, 512, 56, 1, 2, 0},
    {"resnet50", 3, 512, 128, 28, 1, 1, 0},
    {"resnet50", 3, 128, 128, 28, 3, 1, 1},
    {"resnet50", 1, 512, 256, 28, 1, 1, 0},
    {"resnet50", 1, 256, 256, 28, 3, 2, 1},
    {"resnet50", 6, 256, 1024, 14, 1, 1, 0},
    {"resnet50", 1, 512, 1024, 28, 1, 2, 0},
    {"resnet50", 5, 1024, 256, 14, 1, 1, 0},
    {"resnet50", 5, 256, 256, 14, 3, 1, 1},
    {"resnet50", 1, 1024, 512, 14, 1, 1, 0},
    {"resnet50", 1, 512, 512, 14, 3, 2, 1},
    {"resnet50", 3, 512, 2048, 7, 1, 1, 0},
    {"resnet50", 1, 1024, 2048, 14, 1, 2, 0},
    {"resnet50", 2, 2048, 512, 7, 1, 1, 0},
    {"resnet50", 2, 512, 512, 7, 3, 1, 1},
};

static int out_size(const shape *s)
{
    return (s->ih + 2 * s->pad - s->k) / s->stride + 1;
}

static double conv_gflop(const shape *s, int batch)
{
    double o = out_size(s);
    return 2.0 * batch * s->oc * o * o * s->ic * s->k * s->k * 1e-9;
}

#define CHECK(call)                                                                              \
    do {                                                                                         \
        if ((call) != dnnl_success) {                                                            \
            fprintf(stderr, "bench_engine: %s failed\n", #call);                                 \
            exit(1);                                                                             \
        }                                                                                        \
    } while (0)

/* One convolution's three primitives on bare oneDNN, as an engine would
 * run them (blocked layouts chosen by oneDNN, user scratchpad). */
typedef struct bare_conv {
    dnnl_primitive_t fwd, bwd_d, bwd_w;
    dnnl_memory_t src, wei, dst, dsrc, dwei, ddst, pad, wei_bwd;
    void *buffers[8];
} bare_conv;

static dnnl_memory_t alloc_mem(dnnl_engine_t eng, const dnnl_memory_desc_t *md, void **keep)
{
    dnnl_memory_t m;
    size_t bytes = dnnl_memory_desc_get_size(md);
    *keep = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    memset(*keep, 0, bytes);
    CHECK(dnnl_memory_create(&m, md, eng, *keep));
    return m;
}

static void bare_conv_create(bare_conv *c, dnnl_engine_t eng, const shape *s, int batch)
{
    int o = out_size(s);
    dnnl_dims_t src = {batch, s->ic, s->ih, s->ih}, wei = {s->oc, s->ic, s->k, s->k}, dst = {batch, s->oc, o, o};
    dnnl_dims_t strides = {s->stride, s->stride}, pad = {s->pad, s->pad};
    dnnl_memory_desc_t src_md, wei_md, dst_md;
    dnnl_convolution_desc_t d;
    dnnl_primitive_desc_t fpd, bdpd, bwpd;
    dnnl_primitive_attr_t attr;
    const dnnl_memory_desc_t *sp[3];
    size_t pad_bytes = 0;
    dnnl_memory_desc_t pad_md;

    CHECK(dnnl_primitive_attr_create(&attr));
    CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    CHECK(dnnl_memory_desc_init_by_tag(&src_md, 4, src, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&wei_md, 4, wei, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 4, dst, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, dnnl_convolution_direct, &src_md,
                                             &wei_md, NULL, &dst_md, strides, pad, pad));
    CHECK(dnnl_primitive_desc_create(&fpd, &d, attr, eng, NULL));
    /* diff_src and weights any, as the engine does: with the forward's
     * layouts oneDNN may only have its reference backward-data. */
    CHECK(dnnl_convolution_backward_data_desc_init(&d, dnnl_convolution_direct, &src_md, &wei_md,
                                                   dnnl_primitive_desc_query_md(fpd, dnnl_query_dst_md, 0),
                                                   strides, pad, pad));
    CHECK(dnnl_primitive_desc_create(&bdpd, &d, attr, eng, fpd));
    CHECK(dnnl_convolution_backward_weights_desc_init(&d, dnnl_convolution_direct,
                                                      dnnl_primitive_desc_query_md(fpd, dnnl_query_src_md, 0),
                                                      &wei_md, NULL,
                                                      dnnl_primitive_desc_query_md(fpd, dnnl_query_dst_md, 0),
                                                      strides, pad, pad));
    CHECK(dnnl_primitive_desc_create(&bwpd, &d, attr, eng, fpd));
    c->src = alloc_mem(eng, dnnl_primitive_desc_query_md(fpd, dnnl_query_src_md, 0), &c->buffers[0]);
    c->wei = alloc_mem(eng, dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0), &c->buffers[1]);
    c->dst = alloc_mem(eng, dnnl_primitive_desc_query_md(fpd, dnnl_query_dst_md, 0), &c->buffers[2]);
    c->dsrc = alloc_mem(eng, dnnl_primitive_desc_query_md(bdpd, dnnl_query_diff_src_md, 0), &c->buffers[3]);
    c->dwei = alloc_mem(eng, dnnl_primitive_desc_query_md(bwpd, dnnl_query_diff_weights_md, 0), &c->buffers[4]);
    c->ddst = alloc_mem(eng, dnnl_primitive_desc_query_md(bwpd, dnnl_query_diff_dst_md, 0), &c->buffers[5]);
    c->wei_bwd = alloc_mem(eng, dnnl_primitive_desc_query_md(bdpd, dnnl_query_weights_md, 0), &c->buffers[7]);
    sp[0] = dnnl_primitive_desc_query_md(fpd, dnnl_query_scratchpad_md, 0);
    sp[1] = dnnl_primitive_desc_query_md(bdpd, dnnl_query_scratchpad_md, 0);
    sp[2] = dnnl_primitive_desc_query_md(bwpd, dnnl_query_scratchpad_md, 0);
    for (int i = 0; i < 3; i++)
        if (sp[i] && dnnl_memory_desc_get_size(sp[i]) > pad_bytes)
            pad_bytes = dnnl_memory_desc_get_size(sp[i]);
    {
        dnnl_dims_t n = {(dnnl_dim_t)(pad_bytes ? pad_bytes : 1)};
        CHECK(dnnl_memory_desc_init_by_tag(&pad_md, 1, n, dnnl_u8, dnnl_a));
    }
    c->pad = alloc_mem(eng, &pad_md, &c->buffers[6]);
    CHECK(dnnl_primitive_create(&c->fwd, fpd));
    CHECK(dnnl_primitive_create(&c->bwd_d, bdpd));
    CHECK(dnnl_primitive_create(&c->bwd_w, bwpd));
    dnnl_primitive_desc_destroy(fpd);
    dnnl_primitive_desc_destroy(bdpd);
    dnnl_primitive_desc_destroy(bwpd);
    dnnl_primitive_attr_destroy(attr);
}

static dnnl_memory_desc_t bare_dst_md(const bare_conv *c)
{
    const dnnl_memory_desc_t *md = NULL;
    dnnl_memory_get_memory_desc(c->dst, &md);
    return *md;
}

static void bare_conv_destroy(bare_conv *c)
{
    dnnl_memory_t mems[] = {c->src, c->wei, c->dst, c->dsrc, c->dwei, c->ddst, c->pad, c->wei_bwd};
    dnnl_primitive_destroy(c->fwd);
    dnnl_primitive_destroy(c->bwd_d);
    dnnl_primitive_destroy(c->bwd_w);
    for (int i = 0; i < 8; i++) {
        dnnl_memory_destroy(mems[i]);
        free(c->buffers[i]);
    }
}

/* 0 forward, 1 backward data, 2 backward weights. */
static void bare_conv_run(bare_conv *c, dnnl_stream_t stream, int which)
{
    dnnl_exec_arg_t fwd[] = {{DNNL_ARG_SRC, c->src}, {DNNL_ARG_WEIGHTS, c->wei}, {DNNL_ARG_DST, c->dst},
                             {DNNL_ARG_SCRATCHPAD, c->pad}};
    dnnl_exec_arg_t bd[] = {{DNNL_ARG_DIFF_DST, c->ddst}, {DNNL_ARG_WEIGHTS, c->wei_bwd},
                            {DNNL_ARG_DIFF_SRC, c->dsrc}, {DNNL_ARG_SCRATCHPAD, c->pad}};
    dnnl_exec_arg_t bw[] = {{DNNL_ARG_SRC, c->src}, {DNNL_ARG_DIFF_DST, c->ddst},
                            {DNNL_ARG_DIFF_WEIGHTS, c->dwei}, {DNNL_ARG_SCRATCHPAD, c->pad}};
    dnnl_primitive_t p = which == 0 ? c->fwd : which == 1 ? c->bwd_d : c->bwd_w;
    CHECK(dnnl_primitive_execute(p, stream, 4, which == 0 ? fwd : which == 1 ? bd : bw));
}

/* ------------------------------------------------------------ engine overhead */

/* A stack of `depth` 3x3 convolutions with ReLU at 56x56x64, pooled into a
 * 10-way linear head: forward + backward through the engine, against the
 * same convolutions' three primitives run bare. */
static void engine_overhead(int batch, int repeats, double peak)
{
    const int pairs = repeats < 9 ? 9 : repeats; /* cheap next to a network: more pairs, less noise */
    static const shape s = {"stack", 1, 64, 64, 56, 3, 1, 1};
    enum { DEPTH = 4 };
    rb_graph *g;
    rb_node *x, *y;
    rb_engine *e;
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    bare_conv bare;
    dnnl_primitive_t relu_fwd, relu_bwd;
    double t_engine[32], t_bare[32], flop = 3 * DEPTH * conv_gflop(&s, batch);
    float *images = calloc((size_t)batch * 64 * 56 * 56, sizeof(float));
    int64_t *labels = calloc((size_t)batch, sizeof(int64_t));
    char name[32];

    rb_graph_create(&g);
    rb_graph_input(g, 64, 56, 56, NULL, NULL, &x);
    y = x;
    for (int i = 0; i < DEPTH; i++) {
        snprintf(name, sizeof name, "conv%d", i);
        rb_graph_conv(g, name, y, &(rb_conv_desc){.out_channels = 64, .kernel = {3, 3}, .padding = {1, 1}}, &y);
        rb_graph_relu(g, y, &y);
    }
    rb_graph_global_avgpool(g, y, &y);
    rb_graph_linear(g, "fc", y, 10, true, &y);
    rb_graph_softmax_cross_entropy(g, y, &y);
    rb_graph_init_params(g, 1);
    /* direct, as the bare primitives are */
    if (rb_engine_create(&e, g, batch, &(rb_engine_options){.conv_algorithm = RB_CONV_DIRECT}) != RB_OK) {
        fprintf(stderr, "bench_engine: %s\n", rb_last_error());
        exit(1);
    }
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags));
    bare_conv_create(&bare, eng, &s, batch);
    {
        /* The same ReLUs, forward and backward, on the convolution's output layout. */
        dnnl_eltwise_desc_t ed;
        dnnl_primitive_desc_t epd, ebpd;
        dnnl_memory_desc_t dst_md = bare_dst_md(&bare);
        const dnnl_memory_desc_t *md = &dst_md;
        CHECK(dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd, md, 0, 0));
        CHECK(dnnl_primitive_desc_create(&epd, &ed, NULL, eng, NULL));
        CHECK(dnnl_eltwise_backward_desc_init(&ed, dnnl_eltwise_relu_use_dst_for_bwd, md, md, 0, 0));
        CHECK(dnnl_primitive_desc_create(&ebpd, &ed, NULL, eng, epd));
        CHECK(dnnl_primitive_create(&relu_fwd, epd));
        CHECK(dnnl_primitive_create(&relu_bwd, ebpd));
        dnnl_primitive_desc_destroy(epd);
        dnnl_primitive_desc_destroy(ebpd);
    }
    /* Engine and bare runs alternate, and the overhead is the median of
     * each pair's ratio: on a shared machine the load drifts over a run,
     * and timing all of one side first would charge that drift to it. */
    for (int r = 0; r < pairs + 1; r++) {
        dnnl_exec_arg_t rf[] = {{DNNL_ARG_SRC, bare.dst}, {DNNL_ARG_DST, bare.dst}};
        dnnl_exec_arg_t rb[] = {{DNNL_ARG_DST, bare.dst}, {DNNL_ARG_DIFF_DST, bare.ddst}, {DNNL_ARG_DIFF_SRC, bare.ddst}};
        double t0 = now();
        rb_engine_forward(e, images, rb_engine_batch(e), labels, true);
        /* The first layer's input needs no gradient: like an engine step,
         * the bare run below skips that backward-data too. */
        rb_engine_backward(e, true, false);
        if (r > 0)
            t_engine[r - 1] = now() - t0;
        t0 = now();
        for (int i = 0; i < DEPTH; i++) {
            bare_conv_run(&bare, stream, 0);
            CHECK(dnnl_primitive_execute(relu_fwd, stream, 2, rf));
        }
        for (int i = 0; i < DEPTH; i++) {
            CHECK(dnnl_primitive_execute(relu_bwd, stream, 3, rb));
            bare_conv_run(&bare, stream, 2);
            if (i > 0)
                bare_conv_run(&bare, stream, 1);
        }
        if (r > 0)
            t_bare[r - 1] = now() - t0;
    }
    flop -= conv_gflop(&s, batch); /* the skipped backward-data */
    {
        double ratios[32], te, tb;
        for (int r = 0; r < pairs; r++)
            ratios[r] = t_engine[r] / t_bare[r];
        te = median(t_engine, pairs);
        tb = median(t_bare, pairs);
        printf("perf,engine_step,conv3x3x64@56x%d+relu+head,%.2f,%.1f,%.1f\n", DEPTH, te * 1e3, flop / te,
               100 * flop / te / peak);
        printf("perf,bare_primitives,conv3x3x64@56x%d+relu,%.2f,%.1f,%.1f\n", DEPTH, tb * 1e3, flop / tb,
               100 * flop / tb / peak);
        printf("engine overhead over the same oneDNN primitives run bare: %+.1f%% (median of %d alternating "
               "pairs; its pooling, head, loss, weight reorders and bookkeeping)\n",
               100 * (median(ratios, pairs) - 1), pairs);
    }
    bare_conv_destroy(&bare);
    dnnl_primitive_destroy(relu_fwd);
    dnnl_primitive_destroy(relu_bwd);
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    rb_engine_destroy(e);
    rb_graph_destroy(g);
    free(images);
    free(labels);
}

/* ------------------------------------------------------------ whole networks */

static rb_node *conv_bn(rb_graph *g, const char *prefix, const char *conv, const char *bn, rb_node *x, int64_t out,
                        int64_t k, int64_t stride, bool relu)
{
    char name[96];
    rb_node *y;
    snprintf(name, sizeof name, "%s%s", prefix, conv);
    rb_graph_conv(g, name, x, &(rb_conv_desc){.out_channels = out, .kernel = {k, k}, .stride = {stride, stride},
                                              .padding = {k / 2, k / 2}}, &y);
    snprintf(name, sizeof name, "%s%s", prefix, bn);
    rb_graph_batchnorm(g, name, y, &y);
    if (relu)
        rb_graph_relu(g, y, &y);
    return y;
}

/* torchvision's ResNet-18 or -50 (v1.5), built with the graph API: the arch
 * plugin comes later; this is the same network for measuring the engine. */
static rb_graph *resnet(int depth)
{
    static const int blocks18[4] = {2, 2, 2, 2}, blocks50[4] = {3, 4, 6, 3};
    const int *blocks = depth == 18 ? blocks18 : blocks50;
    rb_graph *g;
    rb_node *x;
    int64_t in = 64;
    rb_graph_create(&g);
    rb_graph_input(g, 3, 224, 224, (const float[]){0.485f, 0.456f, 0.406f}, (const float[]){0.229f, 0.224f, 0.225f}, &x);
    x = conv_bn(g, "", "conv1", "bn1", x, 64, 7, 2, true);
    rb_graph_maxpool(g, x, &(rb_pool_desc){.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}, &x);
    for (int layer = 0; layer < 4; layer++) {
        int64_t width = 64 << layer, out = depth == 18 ? width : width * 4;
        for (int b = 0; b < blocks[layer]; b++) {
            char prefix[32];
            int64_t stride = (b == 0 && layer > 0) ? 2 : 1;
            rb_node *y, *shortcut = x;
            snprintf(prefix, sizeof prefix, "layer%d.%d.", layer + 1, b);
            if (depth == 18) {
                y = conv_bn(g, prefix, "conv1", "bn1", x, width, 3, stride, true);
                y = conv_bn(g, prefix, "conv2", "bn2", y, width, 3, 1, false);
            } else {
                y = conv_bn(g, prefix, "conv1", "bn1", x, width, 1, 1, true);
                y = conv_bn(g, prefix, "conv2", "bn2", y, width, 3, stride, true);
                y = conv_bn(g, prefix, "conv3", "bn3", y, out, 1, 1, false);
            }
            if (stride != 1 || in != out)
                shortcut = conv_bn(g, prefix, "downsample.0", "downsample.1", x, out, 1, stride, false);
            rb_graph_add(g, y, shortcut, &x);
            rb_graph_relu(g, x, &x);
            in = out;
        }
    }
    rb_graph_global_avgpool(g, x, &x);
    rb_graph_linear(g, "fc", x, 1000, true, &x);
    rb_graph_softmax_cross_entropy(g, x, &x);
    rb_graph_init_params(g, 1);
    return g;
}

/* One training step (forward, backward with weight gradients, SGD) of a
 * whole network through the engine. GFLOP/s counts direct convolution's
 * FLOPs whatever ran, and %peak is always against the FP32 FMA peak: bf16
 * convolutions (rb_precision) run at up to twice it, and Winograd
 * (rb_conv_algorithm) does fewer multiplications, so both can pass 100%. */
static void whole_network(int depth, int batch, int repeats, double peak, rb_precision precision,
                          rb_conv_algorithm algorithm)
{
    rb_graph *g = resnet(depth);
    rb_engine *e;
    rb_sgd *sgd;
    double times[32], flop = training_step_gflop(g, batch);
    float *images = calloc((size_t)batch * 3 * 224 * 224, sizeof(float));
    int64_t *labels = calloc((size_t)batch, sizeof(int64_t));
    if (rb_engine_create(&e, g, batch, &(rb_engine_options){.precision = precision, .conv_algorithm = algorithm}) !=
            RB_OK ||
        rb_sgd_create(&sgd, g, &(rb_sgd_options){.momentum = 0.9, .weight_decay = 1e-4}) != RB_OK) {
        fprintf(stderr, "bench_engine: %s\n", rb_last_error());
        exit(1);
    }
    for (int r = 0; r < repeats + 1; r++) {
        double t0 = now();
        rb_engine_forward(e, images, rb_engine_batch(e), labels, true);
        rb_engine_backward(e, true, false);
        rb_sgd_step(sgd, 0.1);
        if (r > 0)
            times[r - 1] = now() - t0;
    }
    {
        double t = median(times, repeats);
        const char *suffix = precision == RB_PRECISION_BF16 ? "_bf16" : algorithm == RB_CONV_DIRECT ? "_direct" : "";
        printf("perf,resnet%d_train_step%s,mb%d,%.1f,%.1f,%.1f\n", depth, suffix, batch, t * 1e3, flop / t,
               100 * flop / t / peak);
        printf("resnet%d, %s, %s convolutions: %.1f images/s training at 224x224, batch %d, arena %.0f MiB\n",
               depth, rb_precision_str(precision),
               rb_conv_algorithm_str(precision == RB_PRECISION_BF16 ? RB_CONV_DIRECT : algorithm), batch / t, batch,
               (double)rb_engine_arena_bytes(e) / (1 << 20));
    }
    rb_sgd_destroy(sgd);
    rb_engine_destroy(e);
    rb_graph_destroy(g);
    free(images);
    free(labels);
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    int quick = 0, threads = 0, batch = 32, repeats;
    const char *net = "all";
    double peak1, peak, times[32];
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    rb_topology *topo;
    rb_thread_plan *plan;
    char plan_text[160];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (strcmp(argv[i], "--net") == 0 && i + 1 < argc)
            net = argv[++i];
        else {
            fprintf(stderr, "usage: bench_engine [--quick] [--threads N] [--batch N] [--net resnet18|resnet50|all]\n");
            return 2;
        }
    }
    repeats = quick ? 3 : 5;
    if (rb_topology_create(&topo, NULL) != RB_OK || rb_thread_plan_create(&plan, topo, threads, -1) != RB_OK) {
        fprintf(stderr, "bench_engine: %s\n", rb_last_error());
        return 1;
    }
    threads = rb_thread_plan_count(plan);
    rb_thread_plan_describe(plan, plan_text, sizeof plan_text);
#pragma omp parallel num_threads(threads)
    rb_thread_plan_bind(plan, omp_get_thread_num());
    omp_set_num_threads(threads);
    printf("# robusta %s, oneDNN %d.%d.%d, %s, batch %d\n", rb_version_string(), dnnl_version()->major,
           dnnl_version()->minor, dnnl_version()->patch, plan_text, batch);

    for (int r = 0; r < repeats; r++)
        times[r] = fma_peak(1, FMA_ITERS / (quick ? 4 : 1));
    peak1 = median(times, repeats);
    for (int r = 0; r < repeats; r++)
        times[r] = fma_peak(threads, FMA_ITERS / (quick ? 4 : 1));
    peak = median(times, repeats);
    printf("perf,fma_peak_fp32,1thread,,%.1f,100.0\n", peak1);
    printf("perf,fma_peak_fp32,%dthreads,,%.1f,100.0\n", threads, peak);
    printf("# name,shape,ms,GFLOP/s,%%peak (of %.1f GFLOP/s on %d threads); median of %d\n", peak, threads,
           repeats);

    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags));
    for (const char *which = "resnet18"; which != NULL; which = strcmp(which, "resnet18") == 0 ? "resnet50" : NULL) {
        double total_flop = 0, total_time = 0;
        if (strcmp(net, "all") != 0 && strcmp(net, which) != 0)
            continue;
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            const shape *s = &shapes[i];
            bare_conv c;
            char text[96];
            static const char *const kinds[3] = {"fwd", "bwd_d", "bwd_w"};
            if (strcmp(s->net, which) != 0)
                continue;
            snprintf(text, sizeof text, "mb%dic%doc%dih%dkh%dsh%dph%d", batch, s->ic, s->oc, s->ih, s->k,
                     s->stride, s->pad);
            bare_conv_create(&c, eng, s, batch);
            for (int kind = 0; kind < 3; kind++) {
                double t, gf = conv_gflop(s, batch);
                bare_conv_run(&c, stream, kind); /* warm-up */
                for (int r = 0; r < repeats; r++) {
                    double t0 = now();
                    bare_conv_run(&c, stream, kind);
                    times[r] = now() - t0;
                }
                t = median(times, repeats);
                printf("perf,%s_conv_%s,%s,%.3f,%.1f,%.1f\n", which, kinds[kind], text, t * 1e3, gf / t,
                       100 * gf / t / peak);
                /* The first layer's backward-data is never needed in training. */
                if (!(kind == 1 && s->ic == 3)) {
                    total_flop += s->count * gf;
                    total_time += s->count * t;
                }
            }
            bare_conv_destroy(&c);
            fflush(stdout);
        }
        printf("perf,%s_all_convs_fwd_bwd,mb%d,%.1f,%.1f,%.1f\n", which, batch, total_time * 1e3,
               total_flop / total_time, 100 * total_flop / total_time / peak);
    }
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    engine_overhead(batch, repeats, peak);
    fflush(stdout);
    for (int p = 0; p < 3; p++) { /* f32 (Winograd where it fits), f32 direct only, bf16 */
        rb_precision precision = p == 2 ? RB_PRECISION_BF16 : RB_PRECISION_F32;
        rb_conv_algorithm algorithm = p == 1 ? RB_CONV_DIRECT : RB_CONV_WINOGRAD;
        if (!rb_precision_available(precision)) {
            printf("# skipped whole networks in bf16: this CPU's oneDNN has no bf16 convolutions\n");
            continue;
        }
        if (strcmp(net, "all") == 0 || strcmp(net, "resnet18") == 0)
            whole_network(18, batch, repeats, peak, precision, algorithm);
        fflush(stdout);
        if (strcmp(net, "all") == 0 || strcmp(net, "resnet50") == 0)
            whole_network(50, batch, repeats, peak, precision, algorithm);
        fflush(stdout);
    }
    rb_thread_plan_destroy(plan);
    rb_topology_destroy(topo);
    return 0;
}
