/* The double-precision reference executor: forward values computed by hand,
 * batch-norm running statistics after several steps, and every op's
 * gradients (parameters and input image) against central finite
 * differences, on odd shapes, in training and inference modes. */
#include "config.h"

#include <math.h>

#include <robusta/robusta.h>

#include "testgraphs.h"
#include "testutil.h"

/* ------------------------------------------------------------ helpers */

static void fill_uniform(double *x, int64_t n, uint64_t seed, double lo, double hi)
{
    rb_rng r;
    rb_rng_init(&r, seed, RB_RNG_STREAM(RB_RNG_USER, 1), 0);
    for (int64_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * rb_rng_uniform(&r);
}

static int64_t per_example(const rb_node *n)
{
    int64_t c, h, w;
    rb_node_shape(n, &c, &h, &w);
    return c * h * w;
}

typedef struct problem {
    rb_graph *g;
    rb_reference *ref;
    rb_node *out; /* the node whose weighted sum is the objective; a loss node: its mean */
    int64_t batch;
    bool training;
    double *images, *seed;
    int64_t *labels;
} problem;

/* The scalar the gradients are of: the mean loss for a loss node, else
 * sum(seed * out). Runs a forward. */
static double objective(problem *p)
{
    const double *v;
    double sum = 0;
    ck_assert_msg(rb_reference_forward(p->ref, p->images, p->labels, p->training) == RB_OK, "%s",
                  rb_last_error());
    if (rb_node_op(p->out) == RB_OP_SOFTMAX_CE)
        return rb_reference_loss(p->ref);
    v = rb_reference_value(p->ref, p->out);
    for (int64_t k = 0; k < p->batch * per_example(p->out); k++)
        sum += p->seed[k] * v[k];
    return sum;
}

static void problem_init(problem *p, rb_graph *g, rb_node *out, int64_t batch, bool training)
{
    rb_node *input = rb_graph_node(g, 0);
    int64_t n_in = batch * per_example(input), n_out = batch * per_example(out);
    p->g = g;
    p->out = out;
    p->batch = batch;
    p->training = training;
    ck_assert_int_eq(rb_reference_create(&p->ref, g, batch), RB_OK);
    p->images = malloc((size_t)n_in * sizeof *p->images);
    p->seed = malloc((size_t)n_out * sizeof *p->seed);
    p->labels = malloc((size_t)batch * sizeof *p->labels);
    fill_uniform(p->images, n_in, 11, 0.0, 1.0);
    fill_uniform(p->seed, n_out, 12, -1.0, 1.0);
    for (int64_t b = 0; b < batch; b++)
        p->labels[b] = (b * 7 + 3) % 5; /* every graph with a loss here has >= 5 classes */
}

static void problem_free(problem *p)
{
    rb_reference_destroy(p->ref);
    free(p->images);
    free(p->seed);
    free(p->labels);
}

/* Central differences with step h on doubles are accurate to about
 * h^2 |f'''| (1e-12 here) plus rounding eps |f| / h (1e-10 for |f| ~ 1),
 * so 1e-6 absolute plus 1e-6 relative is loose for a right gradient and
 * far too tight for a wrong one (wrong terms are O(0.01) or more). Float
 * parameters move by their representable step near p + h, which is known
 * exactly, so the same bound holds for them. */
#define FD_STEP 1e-6
#define FD_TOL(analytic) (1e-6 + 1e-6 * fabs(analytic))

static void check_against_finite_differences(problem *p, const char *what)
{
    rb_graph *g = p->g;
    int64_t n_in = p->batch * per_example(rb_graph_node(g, 0));
    size_t n_params = rb_graph_param_count(g);
    double *input_grad = malloc((size_t)n_in * sizeof *input_grad);
    double **param_grad = calloc(n_params + 1, sizeof *param_grad);
    rb_status s;

    objective(p);
    if (rb_node_op(p->out) == RB_OP_SOFTMAX_CE)
        s = rb_reference_backward(p->ref, true, true);
    else
        s = rb_reference_backward_from(p->ref, p->out, p->seed, true, true);
    ck_assert_msg(s == RB_OK, "%s", rb_last_error());
    memcpy(input_grad, rb_reference_input_grad(p->ref), (size_t)n_in * sizeof *input_grad);
    for (size_t i = 0; i < n_params; i++) {
        rb_param_info info;
        const double *gp = rb_reference_param_grad(p->ref, i);
        ck_assert_int_eq(rb_graph_param(g, i, &info), RB_OK);
        ck_assert_msg((gp != NULL) == (info.trainable && !info.frozen), "%s: %s", what, info.name);
        if (gp != NULL) {
            param_grad[i] = malloc((size_t)info.numel * sizeof(double));
            memcpy(param_grad[i], gp, (size_t)info.numel * sizeof(double));
        }
    }

    /* The image: every element (these problems are small). */
    for (int64_t k = 0; k < n_in; k++) {
        double keep = p->images[k], up, down, fd;
        p->images[k] = keep + FD_STEP;
        up = objective(p);
        p->images[k] = keep - FD_STEP;
        down = objective(p);
        p->images[k] = keep;
        fd = (up - down) / (2 * FD_STEP);
        ck_assert_msg(fabs(fd - input_grad[k]) <= FD_TOL(input_grad[k]),
                      "%s: d/d image[%lld]: backward %.12g, finite differences %.12g", what,
                      (long long)k, input_grad[k], fd);
    }
    /* Each trainable parameter: up to 24 elements spread over it. */
    for (size_t i = 0; i < n_params; i++) {
        rb_param_info info;
        int64_t stride;
        if (param_grad[i] == NULL)
            continue;
        ck_assert_int_eq(rb_graph_param(g, i, &info), RB_OK);
        stride = info.numel > 24 ? info.numel / 24 : 1;
        for (int64_t k = 0; k < info.numel; k += stride) {
            float keep = info.value[k];
            float hi = (float)(keep + FD_STEP), lo = (float)(keep - FD_STEP);
            double up, down, fd;
            info.value[k] = hi;
            up = objective(p);
            info.value[k] = lo;
            down = objective(p);
            info.value[k] = keep;
            fd = (up - down) / ((double)hi - (double)lo);
            ck_assert_msg(fabs(fd - param_grad[i][k]) <= FD_TOL(param_grad[i][k]),
                          "%s: d/d %s[%lld]: backward %.12g, finite differences %.12g", what,
                          info.name, (long long)k, param_grad[i][k], fd);
        }
        free(param_grad[i]);
    }
    free(param_grad);
    free(input_grad);
}

/* ------------------------------------------------------------ hand values */

START_TEST(forward_values_by_hand)
{
    static const float mean1[1] = {0.5f}, std1[1] = {0.25f};
    double image[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    rb_graph *g;
    rb_node *x, *conv, *maxp, *avgp, *avgpad, *gap, *norm_in;
    rb_reference *ref;
    rb_param_info w, b;
    const double *v;

    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 1, 3, 3, NULL, NULL, &x), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "conv", x, &(rb_conv_desc){.out_channels = 1, .kernel = {2, 2}, .bias = true}, &conv), RB_OK);
    ck_assert_int_eq(rb_graph_maxpool(g, x, &(rb_pool_desc){.kernel = {2, 2}, .stride = {1, 1}}, &maxp), RB_OK);
    ck_assert_int_eq(rb_graph_avgpool(g, x, &(rb_pool_desc){.kernel = {2, 2}, .stride = {1, 1}}, &avgp), RB_OK);
    ck_assert_int_eq(rb_graph_avgpool(g, x, &(rb_pool_desc){.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}}, &avgpad), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, x, &gap), RB_OK);
    ck_assert_int_eq(rb_graph_find_param(g, "conv.weight", &w), RB_OK);
    ck_assert_int_eq(rb_graph_find_param(g, "conv.bias", &b), RB_OK);
    w.value[0] = 1; /* the kernel [[1, 0], [0, 1]]: a diagonal sum */
    w.value[3] = 1;
    b.value[0] = 0.5f;
    ck_assert_int_eq(rb_reference_create(&ref, g, 1), RB_OK);
    ck_assert_int_eq(rb_reference_forward(ref, image, NULL, false), RB_OK);
    v = rb_reference_value(ref, conv);
    ck_assert(v[0] == 6.5 && v[1] == 8.5 && v[2] == 12.5 && v[3] == 14.5);
    v = rb_reference_value(ref, maxp);
    ck_assert(v[0] == 5 && v[1] == 6 && v[2] == 8 && v[3] == 9);
    v = rb_reference_value(ref, avgp);
    ck_assert(v[0] == 3 && v[1] == 4 && v[2] == 6 && v[3] == 7);
    v = rb_reference_value(ref, avgpad); /* padding counts: corner (1+2+4+5)/9, centre 45/9 */
    ck_assert_double_eq_tol(v[0], 12.0 / 9, 1e-15);
    ck_assert_double_eq_tol(v[4], 5.0, 1e-15);
    ck_assert_double_eq(rb_reference_value(ref, gap)[0], 5.0);
    ck_assert(isnan(rb_reference_loss(ref)));
    rb_reference_destroy(ref);
    rb_graph_destroy(g);

    /* Normalization and softmax cross-entropy. */
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 1, 1, 3, mean1, std1, &norm_in), RB_OK);
    ck_assert_int_eq(rb_graph_linear(g, "fc", norm_in, 3, false, &x), RB_OK);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, x, &x), RB_OK);
    ck_assert_int_eq(rb_graph_find_param(g, "fc.weight", &w), RB_OK);
    for (int i = 0; i < 3; i++)
        w.value[i * 3 + i] = 1; /* identity: logits = normalized input */
    ck_assert_int_eq(rb_reference_create(&ref, g, 1), RB_OK);
    /* images 0.75, 1.0, 1.25 normalize to 1, 2, 3 */
    ck_assert_int_eq(rb_reference_forward(ref, (const double[]){0.75, 1.0, 1.25}, (const int64_t[]){2}, false), RB_OK);
    v = rb_reference_value(ref, norm_in);
    ck_assert(v[0] == 1 && v[1] == 2 && v[2] == 3);
    /* log(e + e^2 + e^3) - 3 */
    ck_assert_double_eq_tol(rb_reference_loss(ref), 0.40760596444438013, 1e-15);
    ck_assert_double_eq_tol(rb_reference_value(ref, x)[0], 0.40760596444438013, 1e-15);
    rb_reference_destroy(ref);
    rb_graph_destroy(g);
}
END_TEST

START_TEST(batchnorm_running_statistics_after_three_steps)
{
    /* Batch 2, one channel, 1x2 pixels: values 1, 2 | 3, 4. Mean 2.5, biased
     * variance 1.25, unbiased 5/3. After three training steps from (0, 1):
     * running_mean = 2.5 (1 - 0.9^3), running_var = 0.9^3 + (1 - 0.9^3) 5/3. */
    double images[4] = {1, 2, 3, 4};
    rb_graph *g;
    rb_node *x, *bn;
    rb_reference *ref;
    rb_param_info rm, rv;
    const double *v;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 1, 1, 2, NULL, NULL, &x), RB_OK);
    ck_assert_int_eq(rb_graph_batchnorm(g, "bn", x, &bn), RB_OK);
    ck_assert_int_eq(rb_graph_find_param(g, "bn.running_mean", &rm), RB_OK);
    ck_assert_int_eq(rb_graph_find_param(g, "bn.running_var", &rv), RB_OK);
    ck_assert_int_eq(rb_reference_create(&ref, g, 2), RB_OK);
    for (int step = 0; step < 3; step++)
        ck_assert_int_eq(rb_reference_forward(ref, images, NULL, true), RB_OK);
    /* float storage: 1e-6 relative */
    ck_assert_double_eq_tol(rm.value[0], 0.6775, 1e-6);
    ck_assert_double_eq_tol(rv.value[0], 1.1806666666666665, 1e-6);
    v = rb_reference_value(ref, bn); /* training mode normalizes with the batch's biased variance */
    ck_assert_double_eq_tol(v[0], (1 - 2.5) / sqrt(1.25 + 1e-5), 1e-12);
    ck_assert_double_eq_tol(v[3], (4 - 2.5) / sqrt(1.25 + 1e-5), 1e-12);
    /* Inference mode uses the running statistics and leaves them alone. */
    ck_assert_int_eq(rb_reference_forward(ref, images, NULL, false), RB_OK);
    v = rb_reference_value(ref, bn);
    ck_assert_double_eq_tol(v[0], (1 - (double)rm.value[0]) / sqrt((double)rv.value[0] + 1e-5), 1e-12);
    ck_assert_double_eq_tol(rm.value[0], 0.6775, 1e-6);
    rb_reference_destroy(ref);
    rb_graph_destroy(g);
}
END_TEST

/* ------------------------------------------------------------ gradients */


/* One op after a normalizing input of `c` × `h` × `w`; `kind` picks the op. */
static rb_graph *single_op(int kind, int64_t c, int64_t h, int64_t w, rb_node **out)
{
    rb_graph *g;
    rb_node *x, *y = NULL, *z;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, c, h, w, mean5, std5, &x), RB_OK);
    switch (kind) {
    case 0: /* 3x3, stride 1, padding 1, bias; channels 5 -> 7 */
        ck_assert_int_eq(rb_graph_conv(g, "conv", x, &(rb_conv_desc){.out_channels = 7, .kernel = {3, 3}, .padding = {1, 1}, .bias = true}, &y), RB_OK);
        break;
    case 1: /* 3x3, stride 2, padding 0, no bias */
        ck_assert_int_eq(rb_graph_conv(g, "conv", x, &(rb_conv_desc){.out_channels = 3, .kernel = {3, 3}, .stride = {2, 2}}, &y), RB_OK);
        break;
    case 2: /* 1x1 stride 2 (a downsampling shortcut) */
        ck_assert_int_eq(rb_graph_conv(g, "conv", x, &(rb_conv_desc){.out_channels = 6, .kernel = {1, 1}, .stride = {2, 2}}, &y), RB_OK);
        break;
    case 3: /* rectangular, dilated, grouped: 5 -> 10 in 5 groups (depthwise x2) */
        ck_assert_int_eq(rb_graph_conv(g, "conv", x, &(rb_conv_desc){.out_channels = 10, .kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 1}, .dilation = {2, 1}, .groups = 5, .bias = true}, &y), RB_OK);
        break;
    case 4:
        ck_assert_int_eq(rb_graph_batchnorm(g, "bn", x, &y), RB_OK);
        break;
    case 5:
        ck_assert_int_eq(rb_graph_relu(g, x, &y), RB_OK);
        break;
    case 6:
        ck_assert_int_eq(rb_graph_maxpool(g, x, &(rb_pool_desc){.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}, &y), RB_OK);
        break;
    case 7:
        ck_assert_int_eq(rb_graph_avgpool(g, x, &(rb_pool_desc){.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}, &y), RB_OK);
        break;
    case 8:
        ck_assert_int_eq(rb_graph_global_avgpool(g, x, &y), RB_OK);
        break;
    case 9: /* add: a node with itself through two paths */
        ck_assert_int_eq(rb_graph_relu(g, x, &z), RB_OK);
        ck_assert_int_eq(rb_graph_add(g, x, z, &y), RB_OK);
        break;
    case 10: /* linear flattens C x H x W */
        ck_assert_int_eq(rb_graph_linear(g, "fc", x, 6, true, &y), RB_OK);
        break;
    case 11: /* the loss: linear to 5 classes, then softmax cross-entropy */
        ck_assert_int_eq(rb_graph_linear(g, "fc", x, 5, true, &z), RB_OK);
        ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, z, &y), RB_OK);
        break;
    }
    randomize(g, 5 + (uint64_t)kind);
    *out = y;
    return g;
}

static const char *const op_names[] = {"conv 3x3/1 pad 1 bias", "conv 3x3/2 pad 0", "conv 1x1/2",
                                       "conv 3x2 dilated grouped", "batchnorm", "relu",
                                       "maxpool 3x3/2 pad 1", "avgpool 3x3/2 pad 1",
                                       "global avgpool", "add", "linear", "softmax cross-entropy"};

START_TEST(every_op_matches_finite_differences)
{
    int kind = _i;
    /* batch 1 and 3; 5 channels (not a multiple of 16); odd spatial sizes */
    static const int64_t batches[2] = {1, 3};
    for (int bi = 0; bi < 2; bi++)
        for (int mode = 0; mode < 2; mode++) {
            char what[128];
            problem p;
            rb_node *out;
            rb_graph *g = single_op(kind, 5, 7, 6, &out);
            /* batch-norm training statistics need two values per channel */
            if (mode == 1 && batches[bi] == 1 && kind == 4) {
                rb_graph_destroy(g);
                continue;
            }
            snprintf(what, sizeof what, "%s, batch %lld, %s", op_names[kind], (long long)batches[bi],
                     mode ? "training" : "inference");
            problem_init(&p, g, out, batches[bi], mode == 1);
            check_against_finite_differences(&p, what);
            problem_free(&p);
            rb_graph_destroy(g);
        }
}
END_TEST

/* A small residual network: stem, one basic block with a downsampling
 * shortcut, pool, linear, loss. */
static rb_graph *residual_net(rb_node **loss, rb_node **backbone_end)
{
    rb_graph *g;
    rb_node *x, *y, *s, *z;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 3, 9, 9, mean5, std5, &x), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "conv1", x, &(rb_conv_desc){.out_channels = 6, .kernel = {3, 3}, .padding = {1, 1}}, &y), RB_OK);
    ck_assert_int_eq(rb_graph_batchnorm(g, "bn1", y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "layer1.0.conv1", y, &(rb_conv_desc){.out_channels = 10, .kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}, &z), RB_OK);
    ck_assert_int_eq(rb_graph_batchnorm(g, "layer1.0.bn1", z, &z), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, z, &z), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "layer1.0.conv2", z, &(rb_conv_desc){.out_channels = 10, .kernel = {3, 3}, .padding = {1, 1}}, &z), RB_OK);
    ck_assert_int_eq(rb_graph_batchnorm(g, "layer1.0.bn2", z, &z), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "layer1.0.downsample.0", y, &(rb_conv_desc){.out_channels = 10, .kernel = {1, 1}, .stride = {2, 2}}, &s), RB_OK);
    ck_assert_int_eq(rb_graph_batchnorm(g, "layer1.0.downsample.1", s, &s), RB_OK);
    ck_assert_int_eq(rb_graph_add(g, z, s, &z), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, z, &z), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, z, &z), RB_OK);
    *backbone_end = z;
    ck_assert_int_eq(rb_graph_linear(g, "fc", z, 5, true, &z), RB_OK);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, z, loss), RB_OK);
    randomize(g, 21);
    return g;
}

START_TEST(residual_network_end_to_end)
{
    for (int mode = 0; mode < 2; mode++) {
        rb_node *loss, *end;
        rb_graph *g = residual_net(&loss, &end);
        problem p;
        problem_init(&p, g, loss, 3, mode == 1);
        check_against_finite_differences(&p, mode ? "resnet block, training" : "resnet block, inference");
        problem_free(&p);
        rb_graph_destroy(g);
    }
}
END_TEST

START_TEST(data_only_backward_and_frozen_parameters)
{
    rb_node *loss, *end;
    rb_graph *g = residual_net(&loss, &end);
    problem p;
    int64_t n_in = 3 * 3 * 9 * 9;
    double *full = malloc((size_t)n_in * sizeof *full);
    rb_param_info fc;
    problem_init(&p, g, loss, 3, false);
    objective(&p);
    ck_assert_int_eq(rb_reference_backward(p.ref, true, true), RB_OK);
    memcpy(full, rb_reference_input_grad(p.ref), (size_t)n_in * sizeof *full);
    /* Data gradients only: the same input gradient, no parameter gradients. */
    ck_assert_int_eq(rb_reference_backward(p.ref, false, true), RB_OK);
    ck_assert(memcmp(full, rb_reference_input_grad(p.ref), (size_t)n_in * sizeof *full) == 0);
    for (size_t i = 0; i < rb_graph_param_count(g); i++)
        ck_assert_ptr_null(rb_reference_param_grad(p.ref, i));
    /* Weights only: no input gradient. */
    ck_assert_int_eq(rb_reference_backward(p.ref, true, false), RB_OK);
    ck_assert_ptr_null(rb_reference_input_grad(p.ref));
    /* A frozen backbone: only the head has gradients, and they are right. */
    ck_assert_int_eq(rb_graph_freeze_through(g, end), RB_OK);
    ck_assert_int_eq(rb_graph_find_param(g, "fc.weight", &fc), RB_OK);
    check_against_finite_differences(&p, "frozen backbone");
    objective(&p);
    ck_assert_int_eq(rb_reference_backward(p.ref, true, true), RB_OK);
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info info;
        ck_assert_int_eq(rb_graph_param(g, i, &info), RB_OK);
        ck_assert((rb_reference_param_grad(p.ref, i) != NULL) == (strncmp(info.name, "fc.", 3) == 0));
    }
    free(full);
    problem_free(&p);
    rb_graph_destroy(g);
}
END_TEST

START_TEST(bad_input_is_refused)
{
    rb_node *loss, *end;
    rb_graph *g = residual_net(&loss, &end), *empty;
    rb_reference *ref = (rb_reference *)0x1;
    problem p;
    ck_assert_int_eq(rb_reference_create(&ref, g, 0), RB_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(ref);
    ck_assert_str_eq(rb_last_error(), "reference: batch 0; need at least 1");
    ck_assert_int_eq(rb_graph_create(&empty), RB_OK);
    ck_assert_int_eq(rb_reference_create(&ref, empty, 1), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "reference: the graph has no input");
    rb_graph_destroy(empty);
    problem_init(&p, g, loss, 3, false);
    ck_assert_int_eq(rb_reference_backward(p.ref, true, true), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "reference: backward before any forward");
    p.labels[2] = 5;
    ck_assert_int_eq(rb_reference_forward(p.ref, p.images, p.labels, false), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "reference: label 5 of example 2 is outside [0, 5) for loss 'softmax_cross_entropy_1'");
    ck_assert_int_eq(rb_reference_forward(p.ref, p.images, NULL, false), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "reference: the graph ends in a loss ('softmax_cross_entropy_1') but no labels were given");
    problem_free(&p);
    rb_graph_destroy(g);
    rb_reference_destroy(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reference");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, forward_values_by_hand);
    tcase_add_test(tc, batchnorm_running_statistics_after_three_steps);
    tcase_add_loop_test(tc, every_op_matches_finite_differences, 0, 12);
    tcase_add_test(tc, residual_network_end_to_end);
    tcase_add_test(tc, data_only_backward_and_frozen_parameters);
    tcase_add_test(tc, bad_input_is_refused);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
