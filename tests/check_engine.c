/* The oneDNN engine against the double-precision reference: every op's
 * forward value, and both backward modes (parameter gradients, input
 * gradient), on odd shapes, in training and inference modes; a residual
 * network; data-only backward and frozen parameters; no allocation during
 * steps; the executed-primitive counts; bad input. */
#include "config.h"

#include <math.h>
#include <dlfcn.h>
#include <stdatomic.h>

#include <robusta/robusta.h>

#include "testgraphs.h"
#include "testutil.h"

/* ------------------------------------------------------------ allocation hook */

/* Interposing malloc in the test binary sees every allocation of the
 * process, oneDNN's and OpenMP's included, and its caller tells whose it
 * is. robusta itself must allocate nothing during a step. oneDNN's C API
 * builds a small argument map on every dnnl_primitive_execute (a few
 * allocations of about 100 bytes each) that no caller can avoid; what must
 * not happen there either is anything tensor-sized, which would mean a
 * buffer missing from the arena or the scratchpad. ASan owns malloc itself,
 * so sanitizer builds skip this check (visibly). */
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ALLOC_HOOK 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ALLOC_HOOK 0
#endif
#endif
#ifndef HAVE_ALLOC_HOOK
#define HAVE_ALLOC_HOOK 1
#endif

#if HAVE_ALLOC_HOOK
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
static atomic_int counting;
static atomic_long allocations;
static atomic_long allocated_bytes;
static atomic_long largest_allocation;
static atomic_long robusta_allocations;
static void *robusta_base;

/* Called from the hooks with the hook's caller. */
static void count(size_t n, void *caller)
{
    long now = (long)n, seen;
    Dl_info info;
    if (!atomic_load(&counting))
        return;
    if (dladdr(caller, &info) && info.dli_fbase == robusta_base)
        atomic_fetch_add(&robusta_allocations, 1);
    atomic_fetch_add(&allocations, 1);
    atomic_fetch_add(&allocated_bytes, now);
    seen = atomic_load(&largest_allocation);
    while (now > seen && !atomic_compare_exchange_weak(&largest_allocation, &seen, now))
        ;
}

void *malloc(size_t n);
void *calloc(size_t k, size_t n);
void *realloc(void *p, size_t n);
void free(void *p);
int posix_memalign(void **out, size_t align, size_t n);
void *aligned_alloc(size_t align, size_t n);

void *malloc(size_t n)
{
    count(n, __builtin_return_address(0));
    return __libc_malloc(n);
}
void *calloc(size_t k, size_t n)
{
    count(k * n, __builtin_return_address(0));
    return __libc_calloc(k, n);
}
void *realloc(void *p, size_t n)
{
    count(n, __builtin_return_address(0));
    return __libc_realloc(p, n);
}
void free(void *p)
{
    if (p != NULL)
        count(0, __builtin_return_address(0));
    __libc_free(p);
}
int posix_memalign(void **out, size_t align, size_t n)
{
    count(n, __builtin_return_address(0));
    *out = __libc_memalign(align, n);
    return *out ? 0 : 12;
}
void *aligned_alloc(size_t align, size_t n)
{
    count(n, __builtin_return_address(0));
    return __libc_memalign(align, n);
}
#endif

/* ------------------------------------------------------------ fixtures */


/* One op of each kind on 5 x 7 x 6 inputs (channels not a multiple of 16),
 * followed by a pool, a linear layer and the loss so that backward has a
 * loss to start from. lead_conv: a 1x1 convolution (5 -> 5 channels)
 * first, so that under bf16 the op reads and writes bf16 activations. */
static rb_graph *op_graph_led(int kind, bool lead_conv, rb_node **op)
{
    rb_graph *g;
    rb_node *x, *y = NULL, *z;
    int64_t c, h, w;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 5, 7, 6, mean5, std5, &x), RB_OK);
    if (lead_conv)
        ck_assert_int_eq(rb_graph_conv(g, "lead", x, &(rb_conv_desc){.out_channels = 5, .kernel = {1, 1}}, &x), RB_OK);
    switch (kind) {
    case 0: ck_assert_int_eq(rb_graph_conv(g, "conv", x, &(rb_conv_desc){.out_channels = 7, .kernel = {3, 3}, .padding = {1, 1}, .bias = true}, &y), RB_OK); break;
    case 1: ck_assert_int_eq(rb_graph_conv(g, "conv", x, &(rb_conv_desc){.out_channels = 3, .kernel = {3, 3}, .stride = {2, 2}}, &y), RB_OK); break;
    case 2: ck_assert_int_eq(rb_graph_conv(g, "conv", x, &(rb_conv_desc){.out_channels = 6, .kernel = {1, 1}, .stride = {2, 2}}, &y), RB_OK); break;
    case 3: ck_assert_int_eq(rb_graph_conv(g, "conv", x, &(rb_conv_desc){.out_channels = 10, .kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 1}, .dilation = {2, 1}, .groups = 5, .bias = true}, &y), RB_OK); break;
    case 4: ck_assert_int_eq(rb_graph_batchnorm(g, "bn", x, &y), RB_OK); break;
    case 5: ck_assert_int_eq(rb_graph_relu(g, x, &y), RB_OK); break;
    case 6: ck_assert_int_eq(rb_graph_maxpool(g, x, &(rb_pool_desc){.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}, &y), RB_OK); break;
    case 7: ck_assert_int_eq(rb_graph_avgpool(g, x, &(rb_pool_desc){.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}, &y), RB_OK); break;
    case 8: ck_assert_int_eq(rb_graph_global_avgpool(g, x, &y), RB_OK); break;
    case 9:
        ck_assert_int_eq(rb_graph_relu(g, x, &z), RB_OK);
        ck_assert_int_eq(rb_graph_add(g, x, z, &y), RB_OK);
        break;
    case 10: ck_assert_int_eq(rb_graph_linear(g, "hidden", x, 6, true, &y), RB_OK); break;
    }
    *op = y;
    /* published, so that its value stays readable (values backward never
     * reads are otherwise only kept through the forward) */
    ck_assert_int_eq(rb_graph_publish(g, y, "under_test"), RB_OK);
    rb_node_shape(y, &c, &h, &w);
    z = y;
    if (h > 1 || w > 1)
        ck_assert_int_eq(rb_graph_global_avgpool(g, z, &z), RB_OK);
    ck_assert_int_eq(rb_graph_linear(g, "fc", z, 5, true, &z), RB_OK);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, z, &z), RB_OK);
    randomize(g, 31 + (uint64_t)kind);
    return g;
}

static rb_graph *op_graph(int kind, rb_node **op)
{
    return op_graph_led(kind, false, op);
}

static const char *const op_names[] = {"conv 3x3/1 pad 1 bias", "conv 3x3/2 pad 0", "conv 1x1/2",
                                       "conv 3x2 dilated grouped", "batchnorm", "relu",
                                       "maxpool 3x3/2 pad 1", "avgpool 3x3/2 pad 1",
                                       "global avgpool", "add", "linear"};

static rb_graph *residual_net(rb_node **backbone_end)
{
    rb_graph *g;
    rb_node *x, *y, *s, *z;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 3, 9, 9, mean5, std5, &x), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "conv1", x, &(rb_conv_desc){.out_channels = 16, .kernel = {3, 3}, .padding = {1, 1}}, &y), RB_OK);
    ck_assert_int_eq(rb_graph_batchnorm(g, "bn1", y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_maxpool(g, y, &(rb_pool_desc){.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}}, &y), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "layer1.0.conv1", y, &(rb_conv_desc){.out_channels = 32, .kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}, &z), RB_OK);
    ck_assert_int_eq(rb_graph_batchnorm(g, "layer1.0.bn1", z, &z), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, z, &z), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "layer1.0.conv2", z, &(rb_conv_desc){.out_channels = 32, .kernel = {3, 3}, .padding = {1, 1}}, &z), RB_OK);
    ck_assert_int_eq(rb_graph_batchnorm(g, "layer1.0.bn2", z, &z), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "layer1.0.downsample.0", y, &(rb_conv_desc){.out_channels = 32, .kernel = {1, 1}, .stride = {2, 2}}, &s), RB_OK);
    ck_assert_int_eq(rb_graph_batchnorm(g, "layer1.0.downsample.1", s, &s), RB_OK);
    ck_assert_int_eq(rb_graph_add(g, z, s, &z), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, z, &z), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, z, &z), RB_OK);
    *backbone_end = z;
    ck_assert_int_eq(rb_graph_publish(g, z, "features"), RB_OK); /* readable: see op_graph_led */
    ck_assert_int_eq(rb_graph_linear(g, "fc", z, 5, true, &z), RB_OK);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, z, &z), RB_OK);
    randomize(g, 41);
    return g;
}

/* A head applied to two levels with shared parameters (rb_graph_reuse):
 * the stem's map and its 2x-pooled copy each go through the same conv ->
 * groupnorm -> ReLU and the same classifier; the objective is the sum of
 * both losses. */
static rb_graph *shared_head_net(void)
{
    rb_graph *g;
    rb_node *x, *a, *b, *t[3], *y;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 3, 9, 9, mean5, std5, &x), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "stem", x, &(rb_conv_desc){.out_channels = 16, .kernel = {3, 3}, .padding = {1, 1}}, &a), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, a, &a), RB_OK);
    ck_assert_int_eq(rb_graph_avgpool(g, a, &(rb_pool_desc){.kernel = {3, 3}}, &b), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "head.0", a, &(rb_conv_desc){.out_channels = 16, .kernel = {3, 3}, .padding = {1, 1}}, &t[0]), RB_OK);
    ck_assert_int_eq(rb_graph_groupnorm(g, "head.1", t[0], 4, &t[1]), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, t[1], &y), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_linear(g, "fc", y, 5, true, &t[2]), RB_OK);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, t[2], &y), RB_OK);
    ck_assert_int_eq(rb_graph_reuse(g, t[0], b, &y), RB_OK);
    ck_assert_int_eq(rb_graph_reuse(g, t[1], y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_reuse(g, t[2], y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, y, &y), RB_OK);
    randomize(g, 43);
    return g;
}

/* ------------------------------------------------------------ comparison */

/* fp32 against double: sums of at most a few hundred products carry
 * ~1e-6 relative error, batch-norm backward's cancellations a few times
 * more. 1e-4 of the largest magnitude (at least 1) leaves room for that
 * and is far below the O(0.1) a wrong term causes. */
#define TOL 1e-4

/* bf16 engines (RB_PRECISION_BF16) are compared by relative L2 error,
 * ||engine - reference|| / ||reference|| per quantity: every convolution
 * input, weight and stored activation or gradient is rounded to 8
 * significant bits (relative error up to 2^-9 = 0.002), and a single
 * element can sit on a sum whose terms cancel, where no elementwise bound
 * is meaningful.
 * - One op behind a 1x1 convolution: a value meets two or three roundings
 *   each way (measured worst 0.55%); 2e-2 leaves room, while a wrong term or
 *   a layout mix-up costs O(1).
 * - The residual network: batch-norm over 4 x 9 x 9 values in training
 *   mode subtracts nearly equal sums, amplifying rounding; the measured
 *   worst is 16% (the first conv's weight gradient), and PyTorch's own
 *   bf16 autocast on the same network, against fp64, errs by 15% on the
 *   same tensors. 0.3 keeps it meaningful: a missing or doubled path is
 *   O(1). */
#define TOL_BF16_OP 2e-2
/* ReLU and max-pool gradients jump where a value crosses zero or another
 * window element: rounding flips a few of the 630 elements' masks here
 * (measured 3.6% for ReLU, 0.9% for max-pool). */
#define TOL_BF16_KINK 0.1
#define TOL_BF16_NET 0.3

/* Asserts |got - want| <= tol x max(1, max |want|) elementwise, or, with
 * relative_l2, ||got - want|| <= tol x ||want||; returns the error in those
 * units. */
static double compare_tol(const char *what, const char *name, const float *got, const double *want, int64_t n,
                          double tol, bool relative_l2)
{
    double scale = 1, worst = 0;
    int64_t at = 0;
    if (relative_l2) {
        double d2 = 0, w2 = 0, rel;
        for (int64_t i = 0; i < n; i++) {
            d2 += (got[i] - want[i]) * (got[i] - want[i]);
            w2 += want[i] * want[i];
        }
        rel = w2 > 0 ? sqrt(d2 / w2) : sqrt(d2);
        ck_assert_msg(rel <= tol, "%s: %s: relative L2 error %.3g against the reference (tolerance %g)", what,
                      name, rel, tol);
        return rel;
    }
    for (int64_t i = 0; i < n; i++)
        scale = fabs(want[i]) > scale ? fabs(want[i]) : scale;
    for (int64_t i = 0; i < n; i++)
        if (fabs(got[i] - want[i]) > worst) {
            worst = fabs(got[i] - want[i]);
            at = i;
        }
    ck_assert_msg(worst <= tol * scale, "%s: %s[%lld]: engine %.9g, reference %.9g (scale %g)", what, name,
                  (long long)at, got[at], want[at], scale);
    return worst / scale;
}

static void images_and_labels(int64_t batch, int64_t size, float *fx, double *dx, int64_t *labels)
{
    rb_rng r;
    rb_rng_init(&r, 3, RB_RNG_STREAM(RB_RNG_USER, 9), 0);
    for (int64_t i = 0; i < batch * size; i++) {
        fx[i] = rb_rng_uniform(&r);
        dx[i] = fx[i];
    }
    for (int64_t b = 0; b < batch; b++)
        labels[b] = (b * 3 + 1) % 5;
}

/* Runs the engine and the reference on the same data and compares the
 * node `op`'s value, the loss, every parameter gradient and the input
 * gradient. Batch-norm running statistics are restored between the two,
 * since a training forward updates them. */
static double match_reference_with(rb_graph *g, rb_node *op, int64_t batch, bool training, const char *what,
                                   const rb_engine_options *options, double tol, bool relative_l2)
{
    rb_node *input = rb_graph_node(g, 0);
    int64_t c, h, w, size, osize;
    rb_engine *e;
    rb_reference *ref;
    float *fx, *fout, *fgrad;
    double *dx;
    int64_t labels[8];
    size_t np = rb_graph_param_count(g);
    float **saved = calloc(np, sizeof *saved);
    double worst = 0;

    rb_node_shape(input, &c, &h, &w);
    size = c * h * w;
    rb_node_shape(op, &c, &h, &w);
    osize = c * h * w;
    fx = malloc((size_t)(batch * size) * sizeof *fx);
    fgrad = malloc((size_t)(batch * size) * sizeof *fgrad);
    dx = malloc((size_t)(batch * size) * sizeof *dx);
    fout = malloc((size_t)(batch * osize) * sizeof *fout);
    images_and_labels(batch, size, fx, dx, labels);
    for (size_t i = 0; i < np; i++) {
        rb_param_info p;
        rb_graph_param(g, i, &p);
        saved[i] = malloc((size_t)p.numel * sizeof(float));
        memcpy(saved[i], p.value, (size_t)p.numel * sizeof(float));
    }

    ck_assert_msg(rb_engine_create(&e, g, batch, options) == RB_OK, "%s: %s", what, rb_last_error());
    ck_assert_msg(rb_engine_forward(e, fx, rb_engine_batch(e), labels, training) == RB_OK, "%s: %s", what, rb_last_error());
    ck_assert_msg(rb_engine_backward(e, true, true) == RB_OK, "%s: %s", what, rb_last_error());
    ck_assert_int_eq(rb_engine_read(e, op, fout), RB_OK);
    ck_assert_int_eq(rb_engine_input_grad(e, fgrad), RB_OK);

    /* The reference, from the same starting parameters. */
    for (size_t i = 0; i < np; i++) {
        rb_param_info p;
        rb_graph_param(g, i, &p);
        if (!p.trainable) {
            float *tmp = malloc((size_t)p.numel * sizeof(float));
            memcpy(tmp, p.value, (size_t)p.numel * sizeof(float));
            memcpy(p.value, saved[i], (size_t)p.numel * sizeof(float));
            memcpy(saved[i], tmp, (size_t)p.numel * sizeof(float)); /* now: the engine's result */
            free(tmp);
        }
    }
    ck_assert_int_eq(rb_reference_create(&ref, g, batch), RB_OK);
    ck_assert_int_eq(rb_reference_forward(ref, dx, labels, training), RB_OK);
    ck_assert_int_eq(rb_reference_backward(ref, true, true), RB_OK);

#define COMPARE(name_, got_, want_, n_)                                                          \
    do {                                                                                         \
        double err_ = compare_tol(what, (name_), (got_), (want_), (n_), tol, relative_l2);     \
        worst = err_ > worst ? err_ : worst;                                                     \
    } while (0)
    COMPARE(rb_node_name(op), fout, rb_reference_value(ref, op), batch * osize);
    {
        double want = rb_reference_loss(ref);
        float got = (float)rb_engine_mean_loss(e);
        COMPARE("mean loss", &got, &want, 1);
    }
    COMPARE("input gradient", fgrad, rb_reference_input_grad(ref), batch * size);
    for (size_t i = 0; i < np; i++) {
        rb_param_info p;
        rb_graph_param(g, i, &p);
        if (p.trainable) {
            COMPARE(p.name, p.grad, rb_reference_param_grad(ref, i), p.numel);
        } else {
            /* running statistics: the engine's update against the reference's */
            double *want = malloc((size_t)p.numel * sizeof(double));
            for (int64_t k = 0; k < p.numel; k++)
                want[k] = p.value[k];
            COMPARE(p.name, saved[i], want, p.numel);
            free(want);
        }
        free(saved[i]);
    }
    free(saved);
    rb_reference_destroy(ref);
    rb_engine_destroy(e);
    free(fx);
    free(fgrad);
    free(dx);
    free(fout);
    return worst;
#undef COMPARE
}

static void match_reference(rb_graph *g, rb_node *op, int64_t batch, bool training, const char *what)
{
    (void)match_reference_with(g, op, batch, training, what, NULL, TOL, false);
}

START_TEST(every_op_matches_the_reference)
{
    static const int64_t batches[2] = {1, 3};
    for (int bi = 0; bi < 2; bi++)
        for (int mode = 0; mode < 2; mode++) {
            char what[160];
            rb_node *op;
            rb_graph *g = op_graph(_i, &op);
            snprintf(what, sizeof what, "%s, batch %lld, %s", op_names[_i], (long long)batches[bi],
                     mode ? "training" : "inference");
            match_reference(g, op, batches[bi], mode == 1, what);
            rb_graph_destroy(g);
        }
}
END_TEST

/* Convolutions on an image of fewer than 16 channels get the image's
 * gradient by matmul + col2im instead of oneDNN's backward-data (see
 * plan_image_grad_gemm in the engine): the ResNet stem (7x7, stride 2,
 * padding 3) on RGB, a dilated, unevenly strided and padded one on a gray
 * image, and, not eligible, an image that two convolutions read (its
 * gradient accumulates, so oneDNN's path stays). */
static rb_graph *image_conv_graph(int kind, rb_node **conv)
{
    static const float mean1[1] = {0.5f}, std1[1] = {0.25f};
    rb_graph *g;
    rb_node *x, *y, *z;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    if (kind == 1)
        ck_assert_int_eq(rb_graph_input(g, 1, 9, 12, mean1, std1, &x), RB_OK);
    else
        ck_assert_int_eq(rb_graph_input(g, 3, 13, 11, mean5, std5, &x), RB_OK);
    if (kind == 1)
        ck_assert_int_eq(rb_graph_conv(g, "conv1", x, &(rb_conv_desc){.out_channels = 5, .kernel = {3, 3}, .stride = {1, 2}, .padding = {2, 1}, .dilation = {2, 3}, .bias = true}, conv), RB_OK);
    else
        ck_assert_int_eq(rb_graph_conv(g, "conv1", x, &(rb_conv_desc){.out_channels = 8, .kernel = {7, 7}, .stride = {2, 2}, .padding = {3, 3}}, conv), RB_OK);
    ck_assert_int_eq(rb_graph_batchnorm(g, "bn1", *conv, &y), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, y, &y), RB_OK);
    if (kind == 2) { /* a second reader of the image */
        ck_assert_int_eq(rb_graph_conv(g, "conv2", x, &(rb_conv_desc){.out_channels = 8, .kernel = {3, 3}, .stride = {2, 2}}, &z), RB_OK);
        ck_assert_int_eq(rb_graph_global_avgpool(g, z, &z), RB_OK);
        ck_assert_int_eq(rb_graph_add(g, y, z, &y), RB_OK);
    }
    ck_assert_int_eq(rb_graph_publish(g, *conv, "under_test"), RB_OK);
    ck_assert_int_eq(rb_graph_linear(g, "fc", y, 5, true, &y), RB_OK);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, y, &y), RB_OK);
    randomize(g, 47 + (uint64_t)kind);
    return g;
}

START_TEST(image_gradients_by_matmul_match_the_reference)
{
    static const char *const names[3] = {"stem 7x7/2 pad 3, RGB", "3x3 dilated 2x3, stride 1x2, gray",
                                         "image read twice"};
    for (int bi = 0; bi < 2; bi++)
        for (int mode = 0; mode < 2; mode++) {
            char what[160];
            rb_node *conv;
            rb_graph *g = image_conv_graph(_i, &conv);
            rb_engine *e;
            int64_t batch = bi ? 3 : 1;
            ck_assert_int_eq(rb_engine_create(&e, g, batch, NULL), RB_OK);
            if (_i == 2)
                ck_assert_ptr_null(strstr(rb_engine_impl(e, conv), "image gradient by matmul + col2im"));
            else
                ck_assert_ptr_nonnull(strstr(rb_engine_impl(e, conv), ", image gradient by matmul + col2im"));
            rb_engine_destroy(e);
            snprintf(what, sizeof what, "%s, batch %lld, %s", names[_i], (long long)batch,
                     mode ? "training" : "inference");
            match_reference(g, conv, batch, mode == 1, what);
            rb_graph_destroy(g);
        }
}
END_TEST

/* Weight gradients by im2col + matmul (conv_plan_weight_grad_gemm), which
 * the engine uses where oneDNN offers only its reference backward-weights;
 * RB_ENGINE_WEIGHT_GRAD_GEMM=1 forces it, so that it is checked on every
 * CPU: ungrouped convolutions on the image (5, 3 and 1 channels: padded and
 * biased, strided, 1x1, the RGB stem, dilated and unevenly strided) and
 * behind another convolution (a blocked input), a shared head whose
 * gradients add up over its uses, and, not eligible, a grouped one. Each
 * in training and inference, batch 1 and 3, against the double reference
 * (TOL). */
static rb_graph *weight_gemm_graph(int kind, rb_node **op, bool *eligible)
{
    *eligible = kind != 7;
    switch (kind) {
    case 0: return op_graph_led(0, false, op);
    case 1: return op_graph_led(1, false, op);
    case 2: return op_graph_led(2, false, op);
    case 3: return image_conv_graph(0, op);
    case 4: return image_conv_graph(1, op);
    case 5: return op_graph_led(0, true, op);
    case 6: {
        rb_graph *g = shared_head_net();
        ck_assert_int_eq(rb_graph_find(g, "head.1.reuse1", op), RB_OK);
        ck_assert_int_eq(rb_graph_publish(g, *op, "level_b"), RB_OK);
        return g;
    }
    default: return op_graph_led(3, false, op);
    }
}

START_TEST(weight_gradients_by_matmul_match_the_reference)
{
    static const char *const names[8] = {"3x3/1 pad 1 bias", "3x3/2", "1x1/2", "stem 7x7/2 RGB",
                                         "3x3 dilated gray", "behind a conv", "shared head", "grouped"};
    ck_assert_int_eq(setenv("RB_ENGINE_WEIGHT_GRAD_GEMM", "1", 1), 0);
    for (int bi = 0; bi < 2; bi++)
        for (int mode = 0; mode < 2; mode++) {
            char what[160];
            rb_node *op, *conv = NULL;
            bool eligible;
            rb_graph *g = weight_gemm_graph(_i, &op, &eligible);
            rb_engine *e;
            int64_t batch = bi ? 3 : 1;
            /* the convolution under test: the op, or the head's first conv */
            ck_assert_int_eq(rb_graph_find(g, _i == 6 ? "head.0" : _i == 3 || _i == 4 ? "conv1" : "conv", &conv),
                             RB_OK);
            ck_assert_int_eq(rb_engine_create(&e, g, batch, NULL), RB_OK);
            ck_assert_msg((strstr(rb_engine_impl(e, conv), ", weight gradient by im2col + matmul") != NULL) == eligible,
                          "%s: %s", names[_i], rb_engine_impl(e, conv));
            rb_engine_destroy(e);
            snprintf(what, sizeof what, "weight gradient by matmul, %s, batch %lld, %s", names[_i], (long long)batch,
                     mode ? "training" : "inference");
            match_reference(g, op, batch, mode == 1, what);
            rb_graph_destroy(g);
        }
    ck_assert_int_eq(unsetenv("RB_ENGINE_WEIGHT_GRAD_GEMM"), 0);
}
END_TEST

/* rb_engine_backward_logits: backward from a given gradient of the logits
 * (another objective than the loss, as DLR attacks use), in inference mode
 * with data gradients only, against the reference seeded at the logits
 * (rb_reference_backward_from) on the residual network, batch 3; the seed
 * is not divided by the batch. A later plain backward is the loss's again,
 * and a graph whose loss is not a softmax cross-entropy is refused. */
START_TEST(backward_from_logits_matches_the_reference)
{
    enum { B = 3, K = 5, SIZE = 3 * 9 * 9 };
    rb_node *features, *fc;
    rb_graph *g = residual_net(&features);
    rb_engine *e;
    rb_reference *ref;
    float fx[B * SIZE], seed[B * K], got[B * SIZE], plain[B * SIZE];
    double dx[B * SIZE], dseed[B * K];
    int64_t labels[8];
    ck_assert_int_eq(rb_graph_find(g, "fc", &fc), RB_OK);
    images_and_labels(B, SIZE, fx, dx, labels);
    for (int i = 0; i < B * K; i++)
        dseed[i] = seed[i] = (float)((i * 7 % 11) - 5) / 4.0f;
    ck_assert_int_eq(rb_engine_create(&e, g, B, &(rb_engine_options){.data_grads_only = true}), RB_OK);
    ck_assert_int_eq(rb_engine_forward(e, fx, B, labels, false), RB_OK);
    ck_assert_msg(rb_engine_backward_logits(e, seed, true) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_engine_input_grad(e, got), RB_OK);
    ck_assert_int_eq(rb_reference_create(&ref, g, B), RB_OK);
    ck_assert_int_eq(rb_reference_forward(ref, dx, labels, false), RB_OK);
    ck_assert_int_eq(rb_reference_backward_from(ref, fc, dseed, false, true), RB_OK);
    compare_tol("backward from the logits", "input gradient", got, rb_reference_input_grad(ref), B * SIZE, TOL, false);
    /* the loss's own gradient again: the reference's plain backward */
    ck_assert_int_eq(rb_engine_backward(e, false, true), RB_OK);
    ck_assert_int_eq(rb_engine_input_grad(e, plain), RB_OK);
    ck_assert_int_eq(rb_reference_backward(ref, false, true), RB_OK);
    compare_tol("plain backward after it", "input gradient", plain, rb_reference_input_grad(ref), B * SIZE, TOL,
                false);
    ck_assert_int_eq(rb_engine_backward_logits(e, NULL, true), RB_ERR_INVALID_ARGUMENT);
    rb_reference_destroy(ref);
    rb_engine_destroy(e);
    rb_graph_destroy(g);
    {   /* a graph without a classification loss */
        rb_node *x, *y;
        ck_assert_int_eq(rb_graph_create(&g), RB_OK);
        ck_assert_int_eq(rb_graph_input(g, 3, 5, 5, mean5, std5, &x), RB_OK);
        ck_assert_int_eq(rb_graph_conv(g, "conv", x, &(rb_conv_desc){.out_channels = 4, .kernel = {1, 1}}, &y), RB_OK);
        randomize(g, 5);
        ck_assert_int_eq(rb_engine_create(&e, g, 1, &(rb_engine_options){.data_grads_only = true}), RB_OK);
        ck_assert_int_eq(rb_engine_forward(e, fx, 1, NULL, false), RB_OK);
        ck_assert_int_eq(rb_engine_backward_logits(e, seed, true), RB_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_nonnull(strstr(rb_last_error(), "softmax cross-entropy"));
        rb_engine_destroy(e);
        rb_graph_destroy(g);
    }
}
END_TEST

/* Winograd (rb_conv_algorithm): 3x3 stride-1 convolutions of 16 and 32
 * channels, with and without bias, on a 11x7 image (output tiles of 4
 * leave ragged edges), before a stride-2 one that Winograd does not fit.
 * The default engine must run Winograd on the first two and direct on the
 * third; RB_CONV_DIRECT, and bf16, direct on all. Both fp32 variants match
 * the double reference to TOL: Winograd's transforms add rounding (errors
 * measured at 7e-7 to 1e-6 of max |value|, against 3e-7 to 5e-7 for
 * direct), still far inside TOL, which catches a wrong tap or tile. */
static rb_graph *winograd_graph(rb_node *conv[3])
{
    rb_graph *g;
    rb_node *x, *y;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 3, 11, 7, mean5, std5, &x), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "stem", x, &(rb_conv_desc){.out_channels = 16, .kernel = {1, 1}}, &y), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "conv16", y, &(rb_conv_desc){.out_channels = 32, .kernel = {3, 3}, .padding = {1, 1}, .bias = true}, &conv[0]), RB_OK);
    ck_assert_int_eq(rb_graph_batchnorm(g, "bn", conv[0], &y), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "conv32", y, &(rb_conv_desc){.out_channels = 32, .kernel = {3, 3}, .padding = {1, 1}}, &conv[1]), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "strided", conv[1], &(rb_conv_desc){.out_channels = 16, .kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}, &conv[2]), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, conv[2], &y), RB_OK);
    ck_assert_int_eq(rb_graph_publish(g, conv[2], "under_test"), RB_OK);
    ck_assert_int_eq(rb_graph_linear(g, "fc", y, 5, true, &y), RB_OK);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, y, &y), RB_OK);
    randomize(g, 53);
    return g;
}

START_TEST(winograd_convolutions_match_the_reference)
{
    static const rb_engine_options variants[3] = {
        {.conv_algorithm = RB_CONV_WINOGRAD},
        {.conv_algorithm = RB_CONV_DIRECT},
        {.conv_algorithm = RB_CONV_WINOGRAD, .precision = RB_PRECISION_BF16},
    };
    /* CPUs without oneDNN's Winograd (AVX2-only) run every convolution
     * direct, and have no bf16 engine to ask */
    const bool has_winograd = rb_conv_algorithm_available(RB_CONV_WINOGRAD);
    if (!has_winograd)
        printf("SKIP: Winograd kernels (this CPU's oneDNN has none; every convolution checked direct)\n");
    for (int v = 0; v < 3; v++) {
        rb_node *conv[3];
        rb_graph *g = winograd_graph(conv);
        rb_engine *e;
        if (!rb_precision_available(variants[v].precision)) {
            ck_assert_int_eq(rb_engine_create(&e, g, 3, &variants[v]), RB_ERR_UNSUPPORTED);
            ck_assert_ptr_nonnull(strstr(rb_last_error(), "no bf16 convolutions"));
            printf("SKIP: bf16 convolutions (this CPU's oneDNN has none; the engine refuses, checked)\n");
            rb_graph_destroy(g);
            continue;
        }
        ck_assert_int_eq(rb_engine_create(&e, g, 3, &variants[v]), RB_OK);
        for (int k = 0; k < 3; k++) {
            bool want = has_winograd && v == 0 && k < 2;
            const char *impl = rb_engine_impl(e, conv[k]);
            ck_assert_msg((strstr(impl, "wino") != NULL) == want, "%s %s: %s got '%s'",
                          rb_conv_algorithm_str(variants[v].conv_algorithm), rb_precision_str(variants[v].precision),
                          rb_node_name(conv[k]), impl);
        }
        rb_engine_destroy(e);
        for (int bi = 0; bi < 2 && v < 2; bi++)
            for (int mode = 0; mode < 2; mode++) {
                char what[160];
                snprintf(what, sizeof what, "%s, batch %d, %s", rb_conv_algorithm_str(variants[v].conv_algorithm),
                         bi ? 3 : 1, mode ? "training" : "inference");
                match_reference_with(g, conv[2], bi ? 3 : 1, mode == 1, what, &variants[v], TOL, false);
            }
        rb_graph_destroy(g);
    }
}
END_TEST

/* rb_engine_options.winograd_scratchpad_limit: a Winograd primitive whose
 * oneDNN scratchpad is over it runs direct, each of the three on its own.
 * A 512-channel 3x3 convolution at one thread: oneDNN's forward and
 * backward-data need about 45 MiB, its backward-weights about 80 (a
 * transformed weight gradient per thread), so a 64 MiB limit keeps the
 * first two and refuses the third, 1 MiB refuses all, and no limit keeps
 * all. The arena follows. */
START_TEST(winograd_stays_within_its_scratchpad_limit)
{
    static const size_t limits[3] = {(size_t)64 << 20, (size_t)1 << 20, SIZE_MAX};
    static const char *const want[3] = {"jit_wino_4x3:avx512_core, backward weights jit:avx512_core",
                                        "jit:avx512_core", "jit_wino_4x3:avx512_core"};
    size_t arena[3];
    rb_graph *g;
    rb_node *x, *y, *conv;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 3, 4, 4, mean5, std5, &x), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "widen", x, &(rb_conv_desc){.out_channels = 512, .kernel = {1, 1}}, &y), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "conv512", y, &(rb_conv_desc){.out_channels = 512, .kernel = {3, 3}, .padding = {1, 1}}, &conv), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, conv, &y), RB_OK);
    ck_assert_int_eq(rb_graph_linear(g, "fc", y, 5, true, &y), RB_OK);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_init_params(g, 3), RB_OK);
    if (!rb_conv_algorithm_available(RB_CONV_WINOGRAD)) {
        printf("SKIP: winograd_stays_within_its_scratchpad_limit (this CPU's oneDNN has no Winograd kernels)\n");
        rb_graph_destroy(g);
        return;
    }
    for (int k = 0; k < 3; k++) {
        rb_engine *e;
        ck_assert_int_eq(
            rb_engine_create(&e, g, 2, &(rb_engine_options){.threads = 1, .winograd_scratchpad_limit = limits[k]}),
            RB_OK);
        ck_assert_str_eq(rb_engine_impl(e, conv), want[k]);
        arena[k] = rb_engine_arena_bytes(e);
        rb_engine_destroy(e);
    }
    ck_assert_msg(arena[1] < arena[0] && arena[0] + ((size_t)16 << 20) < arena[2], "arenas %zu, %zu, %zu", arena[0],
                  arena[1], arena[2]);
    rb_graph_destroy(g);
}
END_TEST

START_TEST(residual_network_matches_the_reference)
{
    for (int mode = 0; mode < 2; mode++) {
        rb_node *end;
        rb_graph *g = residual_net(&end);
        match_reference(g, end, 4, mode == 1, mode ? "residual net, training" : "residual net, inference");
        rb_graph_destroy(g);
    }
}
END_TEST

/* A head applied to two levels: the shared parameters' gradients are the
 * sums over both (tests/check_shared.c checks more), in fp32 and, by
 * relative L2 error, in bf16. */
START_TEST(shared_head_matches_the_reference)
{
    for (int mode = 0; mode < 2; mode++) {
        rb_graph *g = shared_head_net();
        rb_node *level_b;
        ck_assert_int_eq(rb_graph_find(g, "head.1.reuse1", &level_b), RB_OK);
        ck_assert_int_eq(rb_graph_publish(g, level_b, "level_b"), RB_OK);
        match_reference(g, level_b, 4, mode == 1, mode ? "shared head, training" : "shared head, inference");
        /* measured 2.1% (no batch-norm here to amplify rounding); a level
         * whose part went missing costs O(0.5) */
        if (rb_precision_available(RB_PRECISION_BF16))
            match_reference_with(g, level_b, 4, true, "shared head, bf16",
                                 &(rb_engine_options){.precision = RB_PRECISION_BF16}, 0.1, true);
        else if (mode == 0)
            printf("SKIP: shared head in bf16 (this CPU's oneDNN has no bf16 convolutions)\n");
        rb_graph_destroy(g);
    }
}
END_TEST

/* Mixed precision: every op, and the residual network, within bf16's
 * tolerance of the double reference; and visibly not fp32 (an engine that
 * ignored the option would match to 1e-6), wherever a convolution runs. */
START_TEST(bf16_engines_match_the_reference_within_bf16_rounding)
{
    const rb_engine_options bf16 = {.precision = RB_PRECISION_BF16};
    double least = 1;
    if (!rb_precision_available(RB_PRECISION_BF16)) {
        printf("SKIP: bf16_engines_match_the_reference_within_bf16_rounding (this CPU's oneDNN has no bf16 "
               "convolutions)\n");
        return;
    }
    for (int kind = 0; kind < 11; kind++)
        for (int mode = 0; mode < 2; mode++) {
            char what[160];
            rb_node *op;
            rb_graph *g = op_graph_led(kind, true, &op);
            double worst;
            snprintf(what, sizeof what, "bf16 %s behind a 1x1 conv, batch 3, %s", op_names[kind],
                     mode ? "training" : "inference");
            worst = match_reference_with(g, op, 3, mode == 1, what, &bf16,
                                         kind == 5 || kind == 6 || kind == 9 ? TOL_BF16_KINK : TOL_BF16_OP, true);
            least = worst < least ? worst : least;
            rb_graph_destroy(g);
        }
    /* fp32 would agree to ~1e-6 on every one of them */
    ck_assert_msg(least > 1e-4, "a bf16 engine agrees with fp64 to %g: the precision option did nothing", least);
    for (int mode = 0; mode < 2; mode++) {
        rb_node *end;
        rb_graph *g = residual_net(&end);
        double worst = match_reference_with(g, end, 4, mode == 1, mode ? "bf16 residual net, training"
                                                                        : "bf16 residual net, inference",
                                            &bf16, TOL_BF16_NET, true);
        ck_assert_msg(worst > 1e-4, "bf16 residual net agrees with fp64 to %g: no bf16 ran", worst);
        rb_graph_destroy(g);
    }
}
END_TEST

/* rb_engine_hold_weights: while held, the weights are converted once and
 * results are bit-identical to converting them every pass; a change made
 * while held is not seen (as documented) and is seen after release. */
START_TEST(held_weights_are_converted_once_and_released)
{
    rb_node *end;
    rb_graph *g = residual_net(&end);
    rb_engine *e;
    static float fx[4 * 243], grad[4 * 243], grad_held[4 * 243];
    static double dx[4 * 243];
    int64_t labels[4];
    uint64_t counts[RB_PRIM_KIND_COUNT], per_pass;
    double loss, loss_held;
    rb_param_info w;
    images_and_labels(4, 243, fx, dx, labels);
    ck_assert_int_eq(rb_engine_create(&e, g, 4, &(rb_engine_options){.data_grads_only = true}), RB_OK);
#define PASS()                                                                                   \
    do {                                                                                         \
        ck_assert_int_eq(rb_engine_forward(e, fx, 4, labels, false), RB_OK);                    \
        ck_assert_int_eq(rb_engine_backward(e, false, true), RB_OK);                            \
    } while (0)
    PASS();
    loss = rb_engine_mean_loss(e);
    ck_assert_int_eq(rb_engine_input_grad(e, grad), RB_OK);
    rb_engine_reset_primitive_counts(e);
    PASS();
    rb_engine_primitive_counts(e, counts);
    per_pass = counts[RB_PRIM_REORDER_WEIGHTS];
    ck_assert_msg(per_pass > 0, "the residual net's convolutions take blocked weights: expected conversions");

    ck_assert(!rb_engine_hold_weights(e, true));
    rb_engine_reset_primitive_counts(e);
    for (int i = 0; i < 3; i++)
        PASS();
    rb_engine_primitive_counts(e, counts);
    ck_assert_uint_eq(counts[RB_PRIM_REORDER_WEIGHTS], per_pass); /* once, not 3 times */
    loss_held = rb_engine_mean_loss(e);
    ck_assert_int_eq(rb_engine_input_grad(e, grad_held), RB_OK);
    ck_assert(loss_held == loss);
    ck_assert(memcmp(grad, grad_held, sizeof grad) == 0);
    ck_assert(rb_engine_hold_weights(e, true)); /* holding again keeps the conversions */
    rb_engine_reset_primitive_counts(e);
    PASS();
    rb_engine_primitive_counts(e, counts);
    ck_assert_uint_eq(counts[RB_PRIM_REORDER_WEIGHTS], 0);

    /* a change while held is not seen; after release it is */
    ck_assert_int_eq(rb_graph_find_param(g, "layer1.0.conv1.weight", &w), RB_OK);
    for (int64_t k = 0; k < w.numel; k++)
        w.value[k] *= 2;
    PASS();
    ck_assert(rb_engine_mean_loss(e) == loss);
    ck_assert(rb_engine_hold_weights(e, false));
    PASS();
    ck_assert_msg(rb_engine_mean_loss(e) != loss, "the doubled weights were not seen after release");
#undef PASS
    rb_engine_destroy(e);
    rb_graph_destroy(g);
}
END_TEST

/* Sets every trainable parameter's gradient to a sentinel. */
static void poison_grads(rb_graph *g)
{
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        rb_graph_param(g, i, &p);
        for (int64_t k = 0; p.grad && k < p.numel; k++)
            p.grad[k] = 12345.0f;
    }
}

START_TEST(data_only_backward_and_frozen_backbone)
{
    rb_node *end;
    rb_graph *g = residual_net(&end);
    rb_engine *e;
    float fx[4 * 243], full[4 * 243], data_only[4 * 243];
    double dx[4 * 243];
    int64_t labels[4];
    images_and_labels(4, 243, fx, dx, labels);
    ck_assert_int_eq(rb_engine_create(&e, g, 4, NULL), RB_OK);
    ck_assert_int_eq(rb_engine_forward(e, fx, rb_engine_batch(e), labels, false), RB_OK);
    ck_assert_int_eq(rb_engine_backward(e, true, true), RB_OK);
    ck_assert_int_eq(rb_engine_input_grad(e, full), RB_OK);
    poison_grads(g);
    ck_assert_int_eq(rb_engine_backward(e, false, true), RB_OK);
    ck_assert_int_eq(rb_engine_input_grad(e, data_only), RB_OK);
    /* Not bit for bit: in inference mode the data-only backward multiplies
     * each batch-norm gradient by gamma / sqrt(var + eps), where oneDNN's
     * full backward multiplies by the two factors in an order that depends
     * on its implementation (1 ulp apart). */
    {
        double top = 0, worst = 0;
        for (size_t k = 0; k < sizeof full / sizeof full[0]; k++) {
            top = fmax(top, fabs((double)full[k]));
            worst = fmax(worst, fabs((double)full[k] - data_only[k]));
        }
        ck_assert_msg(top > 0 && worst <= 1e-6 * top, "data-only vs full input gradient: %g of %g", worst, top);
    }
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        rb_graph_param(g, i, &p);
        ck_assert_msg(p.grad == NULL || p.grad[0] == 12345.0f, "%s was written by a data-only backward", p.name);
    }
    /* Frozen backbone, no input gradient: only the head is touched. */
    ck_assert_int_eq(rb_graph_freeze_through(g, end), RB_OK);
    ck_assert_int_eq(rb_engine_backward(e, true, false), RB_OK);
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        rb_graph_param(g, i, &p);
        if (p.grad == NULL)
            continue;
        if (strncmp(p.name, "fc.", 3) == 0)
            ck_assert_float_ne(p.grad[0], 12345.0f);
        else
            ck_assert_msg(p.grad[0] == 12345.0f, "frozen %s got a gradient", p.name);
    }
    ck_assert_int_eq(rb_engine_input_grad(e, data_only), RB_ERR_INVALID_ARGUMENT);
    rb_engine_destroy(e);
    rb_graph_destroy(g);
}
END_TEST

/* Frozen statistics (a fixed-feature backbone): batch-norm up to the
 * frozen node normalizes with its running statistics in a training step and
 * leaves them as they were, while later batch-norm trains on the batch; the
 * engine agrees with the reference either way. */
START_TEST(frozen_statistics_normalize_with_the_running_ones)
{
    rb_node *end, *bn1;
    rb_graph *g = residual_net(&end);
    rb_engine *e;
    rb_param_info mean_bn1, mean_late;
    float fx[4 * 243], before_bn1[16], before_late[32];
    double dx[4 * 243];
    int64_t labels[4];
    images_and_labels(4, 243, fx, dx, labels);
    ck_assert_int_eq(rb_graph_find(g, "bn1", &bn1), RB_OK);
    ck_assert_int_eq(rb_graph_freeze_statistics_through(g, bn1), RB_OK);
    match_reference(g, end, 4, true, "residual net, training, bn1 frozen");
    ck_assert_int_eq(rb_graph_find_param(g, "bn1.running_mean", &mean_bn1), RB_OK);
    ck_assert_int_eq(rb_graph_find_param(g, "layer1.0.bn2.running_mean", &mean_late), RB_OK);
    memcpy(before_bn1, mean_bn1.value, sizeof before_bn1);
    memcpy(before_late, mean_late.value, sizeof before_late);
    ck_assert_int_eq(rb_engine_create(&e, g, 4, NULL), RB_OK);
    ck_assert_int_eq(rb_engine_forward(e, fx, 4, labels, true), RB_OK);
    ck_assert_int_eq(rb_engine_backward(e, true, true), RB_OK);
    ck_assert(memcmp(before_bn1, mean_bn1.value, sizeof before_bn1) == 0);
    ck_assert(memcmp(before_late, mean_late.value, sizeof before_late) != 0);
    rb_engine_destroy(e);
    /* every batch-norm frozen: a training step's loss is the inference one */
    ck_assert_int_eq(rb_graph_freeze_statistics_through(g, end), RB_OK);
    ck_assert_int_eq(rb_engine_create(&e, g, 4, NULL), RB_OK);
    ck_assert_int_eq(rb_engine_forward(e, fx, 4, labels, false), RB_OK);
    {
        double inference = rb_engine_mean_loss(e);
        memcpy(before_late, mean_late.value, sizeof before_late);
        ck_assert_int_eq(rb_engine_forward(e, fx, 4, labels, true), RB_OK);
        ck_assert(rb_engine_mean_loss(e) == inference);
        ck_assert(memcmp(before_late, mean_late.value, sizeof before_late) == 0);
    }
    rb_engine_destroy(e);
    match_reference(g, end, 4, true, "residual net, training, every statistic frozen");
    /* NULL thaws them: training mode moves the statistics again */
    ck_assert_int_eq(rb_graph_freeze_statistics_through(g, NULL), RB_OK);
    ck_assert_int_eq(rb_engine_create(&e, g, 4, NULL), RB_OK);
    ck_assert_int_eq(rb_engine_forward(e, fx, 4, labels, true), RB_OK);
    ck_assert(memcmp(before_bn1, mean_bn1.value, sizeof before_bn1) != 0);
    rb_engine_destroy(e);
    rb_graph_destroy(g);
}
END_TEST

START_TEST(steps_allocate_nothing)
{
    rb_node *end;
    /* _i 2, 3: a head applied twice, with group normalization */
    rb_graph *g = _i < 2 ? residual_net(&end) : shared_head_net();
    rb_engine *e;
    rb_sgd *sgd;
    static float fx[8 * 243];
    static double dx[8 * 243];
    int64_t labels[8];
    size_t arena;
    /* _i odd: one thread, where the engine and SGD skip their OpenMP regions
     * (libgomp allocates for one-thread regions) */
    images_and_labels(8, 243, fx, dx, labels);
    ck_assert_int_eq(rb_engine_create(&e, g, 8, &(rb_engine_options){.threads = _i % 2}), RB_OK);
    ck_assert_int_eq(rb_sgd_create(&sgd, g, &(rb_sgd_options){.momentum = 0.9, .weight_decay = 5e-4}), RB_OK);
    arena = rb_engine_arena_bytes(e);
    ck_assert_uint_gt(arena, 0);
    /* A warm-up step lets the OpenMP runtime start its threads. */
    ck_assert_int_eq(rb_engine_forward(e, fx, rb_engine_batch(e), labels, true), RB_OK);
    ck_assert_int_eq(rb_engine_backward(e, true, true), RB_OK);
    ck_assert_int_eq(rb_sgd_step(sgd, 0.1), RB_OK);
#if HAVE_ALLOC_HOOK
    {
        Dl_info info;
        ck_assert(dladdr((void *)rb_engine_forward, &info) != 0);
        robusta_base = info.dli_fbase;
    }
    atomic_store(&robusta_allocations, 0);
    atomic_store(&allocations, 0);
    atomic_store(&allocated_bytes, 0);
    atomic_store(&largest_allocation, 0);
    atomic_store(&counting, 1);
#endif
    for (int step = 0; step < 3; step++) {
        ck_assert_int_eq(rb_engine_forward(e, fx, rb_engine_batch(e), labels, step % 2 == 0), RB_OK);
        ck_assert_int_eq(rb_engine_backward(e, step != 1, true), RB_OK);
        ck_assert_int_eq(rb_sgd_step(sgd, 0.1), RB_OK);
    }
#if HAVE_ALLOC_HOOK
    atomic_store(&counting, 0);
    printf("3 steps: %ld allocations and frees (%ld by robusta), %ld bytes allocated, largest %ld "
           "bytes; arena %zu bytes\n",
           atomic_load(&allocations), atomic_load(&robusta_allocations), atomic_load(&allocated_bytes),
           atomic_load(&largest_allocation), arena);
    ck_assert_msg(atomic_load(&robusta_allocations) == 0, "robusta allocated or freed %ld times during 3 steps",
                  atomic_load(&robusta_allocations));
    /* The smallest tensor of this network is 8 x 5 logits (160 bytes);
     * oneDNN's argument-map nodes are under 128 bytes. Its AVX2 kernels
     * (CPUs without AVX-512) allocate buffers of their own in a step
     * (measured: 16640 bytes), which robusta cannot hand them. */
    char machine[512];
    ck_assert_int_eq(rb_machine_info(machine, sizeof machine), RB_OK);
    if (strstr(machine, "avx512") != NULL)
        ck_assert_msg(atomic_load(&largest_allocation) < 160, "an allocation of %ld bytes during a step",
                      atomic_load(&largest_allocation));
    else if (_i == 0)
        printf("SKIP: oneDNN's own allocations during steps (its AVX2 kernels make some; robusta's checked)\n");
#else
    printf("SKIP: allocation count during steps (sanitizers own malloc); arena size checked only\n");
#endif
    ck_assert_uint_eq(rb_engine_arena_bytes(e), arena);
    ck_assert(isfinite(rb_engine_mean_loss(e)));
    rb_sgd_destroy(sgd);
    rb_engine_destroy(e);
    rb_graph_destroy(g);
}
END_TEST

START_TEST(training_reduces_the_loss)
{
    /* Twenty SGD steps on one fixed batch must fit it better: a whole-loop
     * check that forward, backward and the optimizer agree in sign and scale,
     * in fp32 (_i 0) and in bf16 mixed precision (_i 1). */
    const rb_engine_options options = {.precision = _i ? RB_PRECISION_BF16 : RB_PRECISION_F32};
    rb_node *end;
    rb_graph *g = residual_net(&end);
    rb_engine *e;
    rb_sgd *sgd;
    static float fx[8 * 243];
    static double dx[8 * 243];
    int64_t labels[8];
    double first;
    images_and_labels(8, 243, fx, dx, labels);
    if (!rb_precision_available(options.precision)) {
        printf("SKIP: training_reduces_the_loss in bf16 (this CPU's oneDNN has no bf16 convolutions)\n");
        rb_graph_destroy(g);
        return;
    }
    ck_assert_int_eq(rb_engine_create(&e, g, 8, &options), RB_OK);
    ck_assert_int_eq(rb_sgd_create(&sgd, g, &(rb_sgd_options){.momentum = 0.9}), RB_OK);
    ck_assert_int_eq(rb_engine_forward(e, fx, rb_engine_batch(e), labels, true), RB_OK);
    first = rb_engine_mean_loss(e);
    for (int step = 0; step < 20; step++) {
        ck_assert_int_eq(rb_engine_forward(e, fx, rb_engine_batch(e), labels, true), RB_OK);
        ck_assert_int_eq(rb_engine_backward(e, true, false), RB_OK);
        ck_assert_int_eq(rb_sgd_step(sgd, 0.05), RB_OK);
    }
    ck_assert_int_eq(rb_engine_forward(e, fx, rb_engine_batch(e), labels, true), RB_OK);
    ck_assert_msg(rb_engine_mean_loss(e) < 0.5 * first, "%s: loss %g -> %g", rb_precision_str(options.precision),
                  first, rb_engine_mean_loss(e));
    rb_sgd_destroy(sgd);
    rb_engine_destroy(e);
    rb_graph_destroy(g);
}
END_TEST

/* Runs one training step's forward and backward with `threads` threads
 * and returns the mean loss; the input gradient goes to `grad`. */
static double step_with_threads(int threads, float *grad, char *description, size_t size)
{
    rb_node *end;
    rb_graph *g = residual_net(&end);
    rb_engine *e;
    static float fx[4 * 243];
    static double dx[4 * 243];
    int64_t labels[4];
    double loss;
    images_and_labels(4, 243, fx, dx, labels);
    ck_assert_msg(rb_engine_create(&e, g, 4, &(rb_engine_options){.threads = threads}) == RB_OK, "%s",
                  rb_last_error());
    snprintf(description, size, "%s", rb_engine_threads(e));
    ck_assert_int_eq(rb_engine_forward(e, fx, rb_engine_batch(e), labels, true), RB_OK);
    ck_assert_int_eq(rb_engine_backward(e, true, true), RB_OK);
    ck_assert_int_eq(rb_engine_input_grad(e, grad), RB_OK);
    loss = rb_engine_mean_loss(e);
    rb_engine_destroy(e);
    rb_graph_destroy(g);
    return loss;
}

START_TEST(thread_counts_are_planned_and_agree)
{
    rb_topology *topo;
    int two;
    static float one_grad[4 * 243], two_grad[4 * 243];
    char one_text[160], two_text[160];
    double one_loss, two_loss, scale = 1e-30;
    ck_assert_int_eq(rb_topology_create(&topo, NULL), RB_OK);
    two = rb_topology_pu_count(topo) >= 2 ? 2 : 1;
    rb_topology_destroy(topo);
    one_loss = step_with_threads(1, one_grad, one_text, sizeof one_text);
    two_loss = step_with_threads(two, two_grad, two_text, sizeof two_text);
    ck_assert_msg(strncmp(one_text, "1 thread ", 9) == 0, "%s", one_text);
    ck_assert_msg(two == 1 || strncmp(two_text, "2 threads ", 10) == 0, "%s", two_text);
    /* Reductions split differently across threads: equal up to fp32 rounding. */
    ck_assert_double_eq_tol(one_loss, two_loss, 1e-5);
    for (int i = 0; i < 4 * 243; i++)
        scale = fabs(one_grad[i]) > scale ? fabs(one_grad[i]) : scale;
    for (int i = 0; i < 4 * 243; i++)
        ck_assert_msg(fabs(one_grad[i] - two_grad[i]) <= 1e-4 * scale, "input gradient %d: %g vs %g", i,
                      one_grad[i], two_grad[i]);
}
END_TEST

/* The gradients of `g` after one step on `e`: training (parameter
 * gradients, then the input's) or an attack's (inference mode, the input
 * gradient only). */
static size_t gradients_of(rb_graph *g, rb_engine *e, bool training, float *grads, size_t capacity)
{
    static float fx[4 * 243];
    static double dx[4 * 243];
    int64_t labels[4];
    size_t used = 0;
    images_and_labels(4, 243, fx, dx, labels);
    ck_assert_int_eq(rb_engine_forward(e, fx, 4, labels, training), RB_OK);
    ck_assert_int_eq(rb_engine_backward(e, training, true), RB_OK);
    for (size_t i = 0; training && i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        rb_graph_param(g, i, &p);
        if (p.grad == NULL)
            continue;
        ck_assert_uint_le(used + (size_t)p.numel, capacity);
        memcpy(grads + used, p.grad, (size_t)p.numel * sizeof *grads);
        used += (size_t)p.numel;
    }
    ck_assert_uint_le(used + 4 * 243, capacity);
    ck_assert_int_eq(rb_engine_input_grad(e, grads + used), RB_OK);
    return used + 4 * 243;
}

/* One training step of the residual net; the parameter and input
 * gradients are copied into grads (in graph order, input last). */
static size_t step_into(bool keep_intermediates, float *grads, size_t capacity, rb_engine **out, rb_graph **graph)
{
    rb_node *end;
    rb_graph *g = residual_net(&end);
    rb_engine *e;
    ck_assert_int_eq(rb_engine_create(&e, g, 4, &(rb_engine_options){.threads = 1, .keep_intermediates = keep_intermediates}), RB_OK);
    *out = e;
    *graph = g;
    return gradients_of(g, e, true, grads, capacity);
}

/* Gradients share memory when their lifetimes in backward do not overlap,
 * and values backward never reads (here the batch-norms feeding the
 * residual add) share it with them: the same primitives run on the same
 * data, so the loss and every gradient must come out bit for bit as with
 * private buffers, in less memory. */
START_TEST(shared_gradient_memory_changes_no_result)
{
    static float kept[40000], shared[40000];
    rb_engine *a, *b;
    rb_graph *ga, *gb;
    size_t na = step_into(true, kept, 40000, &a, &ga), nb = step_into(false, shared, 40000, &b, &gb);
    float probe[4 * 32 * 5 * 5];
    rb_node *mid;
    ck_assert_uint_eq(na, nb);
    ck_assert_int_eq(memcmp(kept, shared, na * sizeof *kept), 0);
    ck_assert_msg(rb_engine_arena_bytes(b) < rb_engine_arena_bytes(a), "shared %zu, kept %zu",
                  rb_engine_arena_bytes(b), rb_engine_arena_bytes(a));
    ck_assert_int_eq(rb_graph_find(gb, "layer1.0.conv2", &mid), RB_OK);
    ck_assert_int_eq(rb_engine_read_grad(b, mid, probe), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "engine: the gradient of node 'layer1.0.conv2' shares memory with others after "
                                      "backward; create the engine with keep_intermediates to read it");
    ck_assert_int_eq(rb_graph_find(ga, "layer1.0.conv2", &mid), RB_OK);
    ck_assert_int_eq(rb_engine_read_grad(a, mid, probe), RB_OK);
    ck_assert(rb_engine_mean_loss(a) == rb_engine_mean_loss(b));
    /* a forward-only value: refused without keep_intermediates */
    ck_assert_int_eq(rb_graph_find(gb, "layer1.0.downsample.1", &mid), RB_OK);
    ck_assert_int_eq(rb_engine_read(b, mid, probe), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "engine: the value of node 'layer1.0.downsample.1' is only kept until its "
                                      "consumers have run (backward never reads it); publish the node, or create "
                                      "the engine with keep_intermediates, to read it");
    ck_assert_int_eq(rb_graph_find(ga, "layer1.0.downsample.1", &mid), RB_OK);
    ck_assert_int_eq(rb_engine_read(a, mid, probe), RB_OK);
    /* a value backward reads (a batch-norm's input) stays readable */
    ck_assert_int_eq(rb_graph_find(gb, "layer1.0.conv2", &mid), RB_OK);
    ck_assert_int_eq(rb_engine_read(b, mid, probe), RB_OK);
    rb_engine_destroy(a);
    rb_engine_destroy(b);
    rb_graph_destroy(ga);
    rb_graph_destroy(gb);
}
END_TEST

/* Two residual adds whose inputs can take the add's gradient in place
 * (share_add_gradients in the engine), and one where only one of them can:
 *   x = relu(conv0(input))             host of add1; read again by conv_b
 *                                      (no batch-norm: a fused ReLU's
 *                                      gradient is no host)
 *   a = bn_a(conv_a(x))                add1's other input
 *   b = conv_b(x)                      reads x after a: a must not share
 *                                      x's gradient memory (conv_b's
 *                                      backward adds into it before a's)
 *   r = relu(add1(a, x)); t = relu(add2(r, b))   add2: both share
 * then global pooling, a classifier and the loss. */
static rb_graph *shared_gradient_net(rb_node **add1, rb_node **add2)
{
    rb_graph *g;
    rb_node *x, *a, *b, *r;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 3, 9, 9, mean5, std5, &x), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "conv0", x, &(rb_conv_desc){.out_channels = 16, .kernel = {3, 3}, .padding = {1, 1}}, &x), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, x, &x), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "conv_a", x, &(rb_conv_desc){.out_channels = 16, .kernel = {3, 3}, .padding = {1, 1}}, &a), RB_OK);
    ck_assert_int_eq(rb_graph_batchnorm(g, "bn_a", a, &a), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "conv_b", x, &(rb_conv_desc){.out_channels = 16, .kernel = {1, 1}}, &b), RB_OK);
    ck_assert_int_eq(rb_graph_add(g, a, x, add1), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, *add1, &r), RB_OK);
    ck_assert_int_eq(rb_graph_add(g, r, b, add2), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, *add2, &r), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, r, &r), RB_OK);
    ck_assert_int_eq(rb_graph_linear(g, "fc", r, 5, true, &r), RB_OK);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, r, &r), RB_OK);
    randomize(g, 43);
    return g;
}

/* A residual add hands its gradient to its inputs without copying: the
 * add's consumers write it into an input's gradient memory and the inputs
 * read it there. Bit for bit the gradients of private buffers
 * (keep_intermediates), in training and in an attack's data-only backward,
 * and each add says how many of its inputs share. */
START_TEST(residual_gradients_in_place_change_no_result)
{
    static float kept[20000], shared[20000];
    for (int mode = 0; mode < 2; mode++) {
        bool training = mode == 0;
        rb_node *kept_add1, *add1, *add2;
        rb_graph *ga = shared_gradient_net(&kept_add1, &add2), *gb;
        rb_engine *a, *b;
        size_t na, nb;
        ck_assert_int_eq(rb_engine_create(&a, ga, 4, &(rb_engine_options){.threads = 1, .keep_intermediates = true,
                                                                          .data_grads_only = !training}),
                         RB_OK);
        na = gradients_of(ga, a, training, kept, 20000);
        gb = shared_gradient_net(&add1, &add2);
        ck_assert_int_eq(rb_engine_create(&b, gb, 4, &(rb_engine_options){.threads = 1, .data_grads_only = !training}),
                         RB_OK);
        nb = gradients_of(gb, b, training, shared, 20000);
        ck_assert_uint_eq(na, nb);
        for (size_t i = 0; i < na; i++)
            ck_assert_msg(kept[i] == shared[i], "%s: gradient %zu of %zu: %.9g in place, %.9g kept",
                          training ? "training" : "attack", i, na, shared[i], kept[i]);
        ck_assert_ptr_nonnull(strstr(rb_engine_impl(b, add1), ", gradient in place for 1 of 2 inputs"));
        ck_assert_ptr_nonnull(strstr(rb_engine_impl(b, add2), ", gradient in place for 2 of 2 inputs"));
        ck_assert_ptr_null(strstr(rb_engine_impl(a, kept_add1), "in place"));
        rb_engine_destroy(a);
        rb_engine_destroy(b);
        rb_graph_destroy(ga);
        rb_graph_destroy(gb);
    }
}
END_TEST

/* An engine that never trains plans no weight-gradient primitive: the same
 * input gradient, less memory, and weight gradients refused. */
START_TEST(data_gradient_engines_plan_no_weight_gradients)
{
    rb_node *end;
    rb_graph *g = residual_net(&end);
    rb_engine *full, *data;
    static float fx[4 * 243], ga[4 * 243], gb[4 * 243];
    static double dx[4 * 243];
    int64_t labels[4];
    images_and_labels(4, 243, fx, dx, labels);
    ck_assert_int_eq(rb_engine_create(&full, g, 4, &(rb_engine_options){.threads = 1}), RB_OK);
    ck_assert_int_eq(rb_engine_create(&data, g, 4, &(rb_engine_options){.threads = 1, .data_grads_only = true}),
                     RB_OK);
    /* (Arenas are not compared: a data_grads_only engine keeps backward's
     * copy of every layer's weights, for held weights, where a training
     * engine shares one buffer; executed_primitives_are_counted_by_kind
     * shows what each runs.) */
    ck_assert_int_eq(rb_engine_forward(full, fx, 4, labels, false), RB_OK);
    ck_assert_int_eq(rb_engine_backward(full, false, true), RB_OK);
    ck_assert_int_eq(rb_engine_input_grad(full, ga), RB_OK);
    ck_assert_int_eq(rb_engine_forward(data, fx, 4, labels, false), RB_OK);
    ck_assert_int_eq(rb_engine_backward(data, true, true), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "engine: planned with data_grads_only, so it computes no weight gradients");
    ck_assert_int_eq(rb_engine_backward(data, false, true), RB_OK);
    ck_assert_int_eq(rb_engine_input_grad(data, gb), RB_OK);
    ck_assert_int_eq(memcmp(ga, gb, sizeof ga), 0);
    rb_engine_destroy(full);
    rb_engine_destroy(data);
    rb_graph_destroy(g);
}
END_TEST

/* ------------------------------------------------------------ executed primitives */

/* The graph's nodes of each op. */
static void ops_of(const rb_graph *g, int64_t *by_op)
{
    memset(by_op, 0, 11 * sizeof *by_op);
    for (size_t i = 0; i < rb_graph_node_count(g); i++)
        by_op[rb_node_op(rb_graph_node(g, i))]++;
}

static uint64_t weight_gradient_primitives(const uint64_t *c)
{
    return c[RB_PRIM_CONV_BACKWARD_WEIGHTS] + c[RB_PRIM_BATCHNORM_BACKWARD] + c[RB_PRIM_REORDER_WEIGHT_GRADIENT];
}

/* The engine counts what it executes: one forward runs each layer's
 * primitive once; a training step's backward computes weight and
 * scale/shift gradients; a data-only backward in inference mode (attacks),
 * on an engine planned for training too, computes none. */
START_TEST(executed_primitives_are_counted_by_kind)
{
    rb_node *end;
    rb_graph *g = residual_net(&end);
    rb_engine *e, *data;
    uint64_t c[RB_PRIM_KIND_COUNT];
    int64_t ops[11], fused = 0, in_add = 0;
    static float fx[4 * 243];
    static double dx[4 * 243];
    int64_t labels[4];
    images_and_labels(4, 243, fx, dx, labels);
    ops_of(g, ops);
    ck_assert_int_gt(ops[RB_OP_BATCHNORM], 0);
    ck_assert_int_gt(ops[RB_OP_CONV], 0);

    /* Names: one per kind, distinct; "?" outside. */
    for (int k = 0; k < RB_PRIM_KIND_COUNT; k++) {
        ck_assert_str_ne(rb_engine_primitive_kind_str((rb_engine_primitive_kind)k), "?");
        for (int j = 0; j < k; j++)
            ck_assert_str_ne(rb_engine_primitive_kind_str((rb_engine_primitive_kind)k),
                             rb_engine_primitive_kind_str((rb_engine_primitive_kind)j));
    }
    ck_assert_str_eq(rb_engine_primitive_kind_str(RB_PRIM_KIND_COUNT), "?");
    ck_assert_str_eq(rb_engine_primitive_kind_str(RB_PRIM_CONV_BACKWARD_DATA), "convolution backward data");

    ck_assert_int_eq(rb_engine_create(&e, g, 4, &(rb_engine_options){.threads = 1}), RB_OK);
    ck_assert_int_eq(rb_engine_primitive_counts(e, c), RB_OK);
    for (int k = 0; k < RB_PRIM_KIND_COUNT; k++)
        ck_assert_uint_eq(c[k], 0);
    /* The ReLUs right after a batch-norm (bn1's and layer1.0.bn1's) run
     * fused into it; the one after the residual add is the add's post-op
     * in the forward and runs its own backward. */
    for (size_t i = 0; i < rb_graph_node_count(g); i++) {
        rb_node *node = rb_graph_node(g, i);
        if (rb_node_op(node) == RB_OP_RELU && strncmp(rb_engine_impl(e, node), "fused into batch-norm", 21) == 0)
            fused++;
        if (rb_node_op(node) == RB_OP_RELU && strncmp(rb_engine_impl(e, node), "fused into add", 14) == 0)
            in_add++;
    }
    ck_assert_int_eq(fused, 2);
    ck_assert_int_eq(in_add, 1);
    ck_assert_int_eq(ops[RB_OP_RELU], 3);

    /* Inference forward: one primitive per layer, fused ReLUs none. */
    ck_assert_int_eq(rb_engine_forward(e, fx, 4, labels, false), RB_OK);
    ck_assert_int_eq(rb_engine_primitive_counts(e, c), RB_OK);
    ck_assert_uint_eq(c[RB_PRIM_CONV_FORWARD], (uint64_t)(ops[RB_OP_CONV] + ops[RB_OP_LINEAR]));
    ck_assert_uint_eq(c[RB_PRIM_BATCHNORM_FORWARD], (uint64_t)ops[RB_OP_BATCHNORM]);
    ck_assert_uint_eq(c[RB_PRIM_RELU_FORWARD], (uint64_t)(ops[RB_OP_RELU] - fused - in_add));
    ck_assert_uint_eq(c[RB_PRIM_POOLING_FORWARD],
                      (uint64_t)(ops[RB_OP_MAXPOOL] + ops[RB_OP_AVGPOOL] + ops[RB_OP_GLOBAL_AVGPOOL]));
    ck_assert_uint_eq(c[RB_PRIM_ADD_FORWARD], (uint64_t)ops[RB_OP_ADD]);
    for (int k = RB_PRIM_CONV_BACKWARD_DATA; k < RB_PRIM_KIND_COUNT; k++)
        if (k == RB_PRIM_CONV_BACKWARD_DATA || k == RB_PRIM_CONV_BACKWARD_WEIGHTS ||
            k == RB_PRIM_BATCHNORM_BACKWARD_DATA || k == RB_PRIM_BATCHNORM_BACKWARD || k == RB_PRIM_RELU_BACKWARD ||
            k == RB_PRIM_POOLING_BACKWARD || k == RB_PRIM_REORDER_GRADIENT || k == RB_PRIM_REORDER_WEIGHT_GRADIENT)
            ck_assert_msg(c[k] == 0, "forward ran %s", rb_engine_primitive_kind_str((rb_engine_primitive_kind)k));

    /* (c) Data-only backward in inference mode on an engine that could
     * train: every layer's data gradient, no weight gradient. */
    rb_engine_reset_primitive_counts(e);
    ck_assert_int_eq(rb_engine_backward(e, false, true), RB_OK);
    ck_assert_int_eq(rb_engine_primitive_counts(e, c), RB_OK);
    ck_assert_uint_eq(c[RB_PRIM_CONV_BACKWARD_DATA], (uint64_t)(ops[RB_OP_CONV] + ops[RB_OP_LINEAR]));
    ck_assert_uint_eq(c[RB_PRIM_BATCHNORM_BACKWARD_DATA], (uint64_t)ops[RB_OP_BATCHNORM]);
    /* every ReLU's mask: with running statistics a fused one applies its own */
    ck_assert_uint_eq(c[RB_PRIM_RELU_BACKWARD], (uint64_t)ops[RB_OP_RELU]);
    ck_assert_uint_eq(c[RB_PRIM_CONV_FORWARD] + c[RB_PRIM_BATCHNORM_FORWARD], 0);
    ck_assert_msg(weight_gradient_primitives(c) == 0,
                  "data-only backward ran %llu conv backward-weights, %llu batch-norm backward with "
                  "scale/shift gradients, %llu weight-gradient reorders",
                  (unsigned long long)c[RB_PRIM_CONV_BACKWARD_WEIGHTS],
                  (unsigned long long)c[RB_PRIM_BATCHNORM_BACKWARD],
                  (unsigned long long)c[RB_PRIM_REORDER_WEIGHT_GRADIENT]);
    /* After a training-mode forward (batch statistics) the input gradient
     * needs batch-norm's per-channel sums, which oneDNN 2.6 computes only in
     * its full backward (the scale/shift gradients are discarded); still no
     * convolution weight gradient. */
    ck_assert_int_eq(rb_engine_forward(e, fx, 4, labels, true), RB_OK);
    rb_engine_reset_primitive_counts(e);
    ck_assert_int_eq(rb_engine_backward(e, false, true), RB_OK);
    ck_assert_int_eq(rb_engine_primitive_counts(e, c), RB_OK);
    ck_assert_uint_eq(c[RB_PRIM_BATCHNORM_BACKWARD] + c[RB_PRIM_BATCHNORM_BACKWARD_DATA],
                      (uint64_t)ops[RB_OP_BATCHNORM]);
    ck_assert_uint_eq(c[RB_PRIM_CONV_BACKWARD_WEIGHTS] + c[RB_PRIM_REORDER_WEIGHT_GRADIENT], 0);
    ck_assert_uint_eq(c[RB_PRIM_CONV_BACKWARD_DATA], (uint64_t)(ops[RB_OP_CONV] + ops[RB_OP_LINEAR]));

    /* (b) A training step does compute weight and scale/shift gradients,
     * so the checks above can fail. */
    ck_assert_int_eq(rb_engine_forward(e, fx, 4, labels, true), RB_OK);
    rb_engine_reset_primitive_counts(e);
    ck_assert_int_eq(rb_engine_backward(e, true, false), RB_OK);
    ck_assert_int_eq(rb_engine_primitive_counts(e, c), RB_OK);
    ck_assert_uint_eq(c[RB_PRIM_CONV_BACKWARD_WEIGHTS], (uint64_t)(ops[RB_OP_CONV] + ops[RB_OP_LINEAR]));
    ck_assert_uint_eq(c[RB_PRIM_BATCHNORM_BACKWARD], (uint64_t)ops[RB_OP_BATCHNORM]);
    ck_assert_uint_eq(c[RB_PRIM_BATCHNORM_BACKWARD_DATA], 0);
    ck_assert_uint_gt(c[RB_PRIM_CONV_BACKWARD_DATA], 0);
    /* batch-norm's training backward applies its fused ReLU's mask itself */
    ck_assert_uint_eq(c[RB_PRIM_RELU_BACKWARD], (uint64_t)(ops[RB_OP_RELU] - fused));
    /* Counting costs nothing extra: a second engine counts on its own. */
    ck_assert_int_eq(rb_engine_create(&data, g, 4, &(rb_engine_options){.threads = 1, .data_grads_only = true}),
                     RB_OK);
    ck_assert_int_eq(rb_engine_forward(data, fx, 4, labels, false), RB_OK);
    ck_assert_int_eq(rb_engine_backward(data, false, true), RB_OK);
    ck_assert_int_eq(rb_engine_primitive_counts(data, c), RB_OK);
    ck_assert_uint_eq(c[RB_PRIM_BATCHNORM_BACKWARD_DATA], (uint64_t)ops[RB_OP_BATCHNORM]);
    ck_assert_uint_eq(weight_gradient_primitives(c), 0);
    rb_engine_reset_primitive_counts(data);
    ck_assert_int_eq(rb_engine_primitive_counts(data, c), RB_OK);
    for (int k = 0; k < RB_PRIM_KIND_COUNT; k++)
        ck_assert_uint_eq(c[k], 0);
    rb_engine_reset_primitive_counts(NULL);
    ck_assert_int_eq(rb_engine_primitive_counts(data, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "engine: primitive counts need an engine and an array");
    rb_engine_destroy(data);
    rb_engine_destroy(e);
    rb_graph_destroy(g);
}
END_TEST

/* rb_engine_options.outputs: a step runs the listed nodes and what they
 * read, nothing else. Graph: x -> c1 -> relu -> "stem"; stem -> pool -> fc
 * -> loss; stem -> c2 -> "side". Listing the loss runs 2 convolutions (c1,
 * fc) where the whole graph runs 3, with the same loss and input gradient
 * bit for bit (the same primitives on the same memory); listing "side"
 * needs no labels, since no loss runs. */
static rb_graph *two_branch_net(rb_node **stem, rb_node **side, rb_node **fc, rb_node **loss)
{
    rb_graph *g = NULL;
    rb_node *x;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 2, 6, 6, NULL, NULL, &x), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "c1", x, &(rb_conv_desc){.out_channels = 4, .kernel = {3, 3}, .padding = {1, 1}},
                                   stem),
                     RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, *stem, stem), RB_OK);
    ck_assert_int_eq(rb_graph_publish(g, *stem, "stem"), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "c2", *stem, &(rb_conv_desc){.out_channels = 3, .kernel = {1, 1}}, side), RB_OK);
    ck_assert_int_eq(rb_graph_publish(g, *side, "side"), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, *stem, fc), RB_OK);
    ck_assert_int_eq(rb_graph_linear(g, "fc", *fc, 3, true, fc), RB_OK);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, *fc, loss), RB_OK);
    ck_assert_int_eq(rb_graph_init_params(g, 9), RB_OK);
    return g;
}

START_TEST(listed_outputs_bound_what_a_step_runs)
{
    rb_node *stem, *side, *fc, *loss;
    rb_graph *g = two_branch_net(&stem, &side, &fc, &loss);
    rb_engine *all = NULL, *to_loss = NULL, *to_side = NULL;
    float fx[2 * 72], grad_all[2 * 72], grad_loss[2 * 72], side_all[2 * 108], side_only[2 * 108], logits[6];
    const int64_t labels[2] = {2, 0};
    uint64_t counts[RB_PRIM_KIND_COUNT];

    for (int i = 0; i < 2 * 72; i++)
        fx[i] = (float)((i * 37) % 101) / 100.0f;
    ck_assert_int_eq(rb_engine_create(&all, g, 2, &(rb_engine_options){.threads = 1}), RB_OK);
    ck_assert_int_eq(rb_engine_create(&to_loss, g, 2,
                                      &(rb_engine_options){.threads = 1, .outputs = (rb_node *const[]){fc, loss},
                                                           .n_outputs = 2}),
                     RB_OK);
    ck_assert_int_eq(rb_engine_create(&to_side, g, 2,
                                      &(rb_engine_options){.threads = 1, .outputs = (rb_node *const[]){side},
                                                           .n_outputs = 1}),
                     RB_OK);

    ck_assert_int_eq(rb_engine_forward(all, fx, 2, labels, true), RB_OK);
    ck_assert_int_eq(rb_engine_backward(all, true, true), RB_OK);
    ck_assert_int_eq(rb_engine_input_grad(all, grad_all), RB_OK);
    ck_assert_int_eq(rb_engine_read(all, side, side_all), RB_OK);

    rb_engine_reset_primitive_counts(to_loss);
    ck_assert_int_eq(rb_engine_forward(to_loss, fx, 2, labels, true), RB_OK);
    ck_assert_int_eq(rb_engine_primitive_counts(to_loss, counts), RB_OK);
    ck_assert_uint_eq(counts[RB_PRIM_CONV_FORWARD], 2); /* c1 and fc; not c2 */
    ck_assert(rb_engine_mean_loss(to_loss) == rb_engine_mean_loss(all));
    ck_assert_int_eq(rb_engine_read(to_loss, fc, logits), RB_OK);
    ck_assert_int_eq(rb_engine_read(to_loss, side, side_only), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "engine: node 'c2' is not computed: no node of rb_engine_options.outputs "
                                      "needs it");
    ck_assert_int_eq(rb_engine_backward(to_loss, true, true), RB_OK);
    ck_assert_int_eq(rb_engine_input_grad(to_loss, grad_loss), RB_OK);
    ck_assert_int_eq(memcmp(grad_all, grad_loss, sizeof grad_all), 0);

    /* No loss listed: no labels needed, and no backward. */
    rb_engine_reset_primitive_counts(to_side);
    ck_assert_msg(rb_engine_forward(to_side, fx, 2, NULL, false) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_engine_primitive_counts(to_side, counts), RB_OK);
    ck_assert_uint_eq(counts[RB_PRIM_CONV_FORWARD], 2); /* c1 and c2; not fc */
    ck_assert_int_eq(rb_engine_read(to_side, side, side_only), RB_OK);
    ck_assert_int_eq(rb_engine_backward(to_side, false, true), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "engine: the graph has no loss to start backward from");
    ck_assert(isnan(rb_engine_mean_loss(to_side)));
    ck_assert_int_eq(rb_engine_forward(all, fx, 2, labels, false), RB_OK);
    ck_assert_int_eq(rb_engine_read(all, side, side_all), RB_OK);
    ck_assert_int_eq(memcmp(side_all, side_only, sizeof side_all), 0);
    /* nodes that are not run take no memory either: the side branch's
     * values and gradients, fc's weights, are left out of to_loss's arena */
    ck_assert_msg(rb_engine_arena_bytes(to_loss) < rb_engine_arena_bytes(all), "%zu vs %zu",
                  rb_engine_arena_bytes(to_loss), rb_engine_arena_bytes(all));
    ck_assert_msg(rb_engine_arena_bytes(to_side) < rb_engine_arena_bytes(all), "%zu vs %zu",
                  rb_engine_arena_bytes(to_side), rb_engine_arena_bytes(all));

    /* A node of another graph, or a count without a list. */
    {
        rb_node *s2, *d2, *f2, *l2;
        rb_graph *other = two_branch_net(&s2, &d2, &f2, &l2);
        rb_engine *bad = NULL;
        ck_assert_int_eq(rb_engine_create(&bad, g, 2,
                                          &(rb_engine_options){.threads = 1, .outputs = (rb_node *const[]){side, d2},
                                                               .n_outputs = 2}),
                         RB_ERR_INVALID_ARGUMENT);
        ck_assert_str_eq(rb_last_error(), "engine: output 1 is not a node of this engine's graph");
        ck_assert_ptr_null(bad);
        ck_assert_int_eq(rb_engine_create(&bad, g, 2, &(rb_engine_options){.threads = 1, .n_outputs = 1}),
                         RB_ERR_INVALID_ARGUMENT);
        ck_assert_str_eq(rb_last_error(), "engine: 1 outputs but no list of them");
        rb_graph_destroy(other);
    }
    rb_engine_destroy(all);
    rb_engine_destroy(to_loss);
    rb_engine_destroy(to_side);
    rb_graph_destroy(g);
}
END_TEST

START_TEST(bad_input_is_refused)
{
    rb_node *end, *x, *y, *z;
    rb_graph *g = residual_net(&end), *dangling;
    rb_engine *e = (rb_engine *)0x1;
    float fx[2 * 243];
    double dx[2 * 243];
    int64_t labels[2];
    images_and_labels(2, 243, fx, dx, labels);
    ck_assert_int_eq(rb_engine_create(&e, g, 0, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(e);
    ck_assert_int_eq(rb_engine_create(&e, g, 2, &(rb_engine_options){.threads = 100000}), RB_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "--threads 100000: this machine has"));
    ck_assert_int_eq(rb_engine_create(&e, g, 2, &(rb_engine_options){.threads = -2}), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_engine_create(&e, g, 2, &(rb_engine_options){.precision = (rb_precision)7}),
                     RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "engine: unknown precision 7");
    {
        rb_precision p = RB_PRECISION_F32;
        ck_assert_int_eq(rb_precision_parse("bf16", &p), RB_OK);
        ck_assert_int_eq(p, RB_PRECISION_BF16);
        ck_assert_str_eq(rb_precision_str(p), "bf16");
        ck_assert_int_eq(rb_precision_parse("fp32", &p), RB_OK);
        ck_assert_int_eq(p, RB_PRECISION_F32);
        ck_assert_int_eq(rb_precision_parse("fp16", &p), RB_ERR_INVALID_ARGUMENT);
        ck_assert_str_eq(rb_last_error(), "unknown precision 'fp16'; use f32, bf16 or auto");
        ck_assert_str_eq(rb_precision_str((rb_precision)9), "?");
    }
    ck_assert_int_eq(rb_engine_create(&e, g, 2, &(rb_engine_options){.conv_algorithm = (rb_conv_algorithm)7}),
                     RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "engine: unknown convolution algorithm 7");
    {
        rb_conv_algorithm a = RB_CONV_WINOGRAD;
        ck_assert_int_eq(rb_conv_algorithm_parse("direct", &a), RB_OK);
        ck_assert_int_eq(a, RB_CONV_DIRECT);
        ck_assert_int_eq(rb_conv_algorithm_parse("winograd", &a), RB_OK);
        ck_assert_int_eq(a, RB_CONV_WINOGRAD);
        ck_assert_int_eq(rb_conv_algorithm_parse("auto", &a), RB_ERR_INVALID_ARGUMENT);
        ck_assert_str_eq(rb_last_error(), "unknown convolution algorithm 'auto'; use winograd or direct");
        ck_assert_int_eq(rb_conv_algorithm_parse(NULL, &a), RB_ERR_INVALID_ARGUMENT);
        ck_assert_str_eq(rb_conv_algorithm_str(RB_CONV_DIRECT), "direct");
        ck_assert_str_eq(rb_conv_algorithm_str((rb_conv_algorithm)9), "?");
    }
    ck_assert_int_eq(rb_engine_create(&e, g, 2, NULL), RB_OK);
    ck_assert_int_eq(rb_engine_backward(e, true, true), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "engine: backward before forward");
    labels[1] = 7;
    ck_assert_int_eq(rb_engine_forward(e, fx, rb_engine_batch(e), labels, false), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "engine: label 7 of example 1 is outside [0, 5) for loss 'softmax_cross_entropy_1'");
    ck_assert_int_eq(rb_engine_forward(e, fx, rb_engine_batch(e), NULL, false), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_engine_forward(e, fx, 3, labels, false), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "engine: a batch of 3 images, but the engine was planned for 2; plan one for 3 with rb_engine_create");
    ck_assert_int_eq(rb_engine_read(e, end, fx), RB_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(rb_engine_impl(e, end));
    rb_engine_destroy(e);
    rb_engine_destroy(NULL);

    /* A branch computed and never used. */
    ck_assert_int_eq(rb_graph_create(&dangling), RB_OK);
    ck_assert_int_eq(rb_graph_input(dangling, 3, 8, 8, NULL, NULL, &x), RB_OK);
    ck_assert_int_eq(rb_graph_conv(dangling, "forgotten", x, &(rb_conv_desc){.out_channels = 4, .kernel = {3, 3}}, &y), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(dangling, x, &z), RB_OK);
    ck_assert_int_eq(rb_graph_linear(dangling, "fc", z, 3, true, &z), RB_OK);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(dangling, z, &z), RB_OK);
    ck_assert_int_eq(rb_engine_create(&e, dangling, 2, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "engine: node 'forgotten' (conv) is computed but nothing uses it; connect it, publish it, or remove it");
    rb_graph_destroy(dangling);
    rb_graph_destroy(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("engine");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, every_op_matches_the_reference, 0, 11);
    tcase_add_loop_test(tc, image_gradients_by_matmul_match_the_reference, 0, 3);
    tcase_add_loop_test(tc, weight_gradients_by_matmul_match_the_reference, 0, 8);
    tcase_add_test(tc, backward_from_logits_matches_the_reference);
    tcase_add_test(tc, winograd_convolutions_match_the_reference);
    tcase_add_test(tc, winograd_stays_within_its_scratchpad_limit);
    tcase_add_test(tc, residual_network_matches_the_reference);
    tcase_add_test(tc, shared_head_matches_the_reference);
    tcase_add_test(tc, bf16_engines_match_the_reference_within_bf16_rounding);
    tcase_add_test(tc, held_weights_are_converted_once_and_released);
    tcase_add_test(tc, data_only_backward_and_frozen_backbone);
    tcase_add_test(tc, frozen_statistics_normalize_with_the_running_ones);
    tcase_add_loop_test(tc, steps_allocate_nothing, 0, 4);
    tcase_add_loop_test(tc, training_reduces_the_loss, 0, 2);
    tcase_add_test(tc, thread_counts_are_planned_and_agree);
    tcase_add_test(tc, shared_gradient_memory_changes_no_result);
    tcase_add_test(tc, residual_gradients_in_place_change_no_result);
    tcase_add_test(tc, data_gradient_engines_plan_no_weight_gradients);
    tcase_add_test(tc, executed_primitives_are_counted_by_kind);
    tcase_add_test(tc, bad_input_is_refused);
    tcase_add_test(tc, listed_outputs_bound_what_a_step_runs);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
