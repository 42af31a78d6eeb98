/* Layers applied more than once (rb_graph_reuse) and group normalization
 * (rb_graph_groupnorm): group normalization by hand, against the
 * double-precision reference in plain and channel-blocked layouts, bit for
 * bit across thread counts, and its refusals; a conv + groupnorm + ReLU
 * tower applied to a feature map and its 2x-downsampled copy, whose weight
 * gradients equal the reference's and the sum of the two branches' taken
 * one at a time; an SGD step, a checkpoint round trip, freezing, engines
 * that run only part of the graph, MAC counts; and every refusal of
 * rb_graph_reuse. PyTorch parity is tests/torch-shared-parity.sh. */
#include "config.h"

#include <math.h>

#include <robusta/robusta.h>

#include "testgraphs.h"
#include "testutil.h"

/* fp32 against double, as tests/check_engine.c: sums of at most a few
 * hundred products carry ~1e-6 relative error; group normalization divides
 * by a standard deviation and subtracts means (its backward two), which
 * can multiply that by a few. 1e-4 of the largest magnitude (at least 1)
 * leaves room, and is far below the O(0.1) that a wrong term, a gradient
 * counted once instead of twice or a wrong group costs. */
#define TOL 1e-4

/* Asserts |got - want| <= tol x max(1, max |want|) elementwise; returns the
 * largest |want| (so callers can check a quantity is not trivially 0). */
static double compare(const char *what, const char *name, const float *got, const double *want, int64_t n, double tol)
{
    double scale = 1, worst = 0, top = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        scale = fabs(want[i]) > scale ? fabs(want[i]) : scale;
        top = fabs(want[i]) > top ? fabs(want[i]) : top;
    }
    for (int64_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= worst)) {
            worst = fabs(got[i] - want[i]);
            at = i;
        }
    ck_assert_msg(worst <= tol * scale, "%s: %s[%lld]: engine %.9g, reference %.9g (scale %g)", what, name,
                  (long long)at, (double)got[at], want[at], scale);
    return top;
}

static void images(int64_t count, float *fx, double *dx, uint64_t seed)
{
    rb_rng r;
    rb_rng_init(&r, seed, RB_RNG_STREAM(RB_RNG_USER, 9), 0);
    for (int64_t i = 0; i < count; i++) {
        fx[i] = rb_rng_uniform(&r);
        if (dx != NULL)
            dx[i] = fx[i];
    }
}

static int64_t node_size(const rb_node *n)
{
    int64_t c, h, w;
    rb_node_shape(n, &c, &h, &w);
    return c * h * w;
}

static rb_param_info param(const rb_graph *g, const char *name)
{
    rb_param_info p;
    ck_assert_msg(rb_graph_find_param(g, name, &p) == RB_OK, "%s", rb_last_error());
    return p;
}

static rb_node *node(const rb_graph *g, const char *name)
{
    rb_node *n;
    ck_assert_msg(rb_graph_find(g, name, &n) == RB_OK, "%s", rb_last_error());
    return n;
}

/* Runs one training step (forward in training mode, backward with weight
 * and input gradients) on the engine and on the reference, and compares
 * the value of `watch` (published), the loss, the input gradient and
 * every unfrozen trainable parameter's gradient. */
static void match_reference(rb_graph *g, rb_node *watch, int64_t batch, const rb_engine_options *opt,
                            const char *what)
{
    const int64_t size = node_size(rb_graph_node(g, 0)), osize = node_size(watch);
    float *fx = malloc((size_t)(batch * size) * sizeof *fx), *fgrad = malloc((size_t)(batch * size) * sizeof *fgrad);
    float *fout = malloc((size_t)(batch * osize) * sizeof *fout);
    double *dx = malloc((size_t)(batch * size) * sizeof *dx);
    int64_t labels[8];
    rb_engine *e;
    rb_reference *r;
    images(batch * size, fx, dx, 3);
    for (int64_t b = 0; b < batch; b++)
        labels[b] = (b * 3 + 1) % 5;
    ck_assert_msg(rb_engine_create(&e, g, batch, opt) == RB_OK, "%s: %s", what, rb_last_error());
    ck_assert_msg(rb_engine_forward(e, fx, batch, labels, true) == RB_OK, "%s: %s", what, rb_last_error());
    ck_assert_msg(rb_engine_backward(e, true, true) == RB_OK, "%s: %s", what, rb_last_error());
    ck_assert_int_eq(rb_engine_read(e, watch, fout), RB_OK);
    ck_assert_int_eq(rb_engine_input_grad(e, fgrad), RB_OK);
    ck_assert_int_eq(rb_reference_create(&r, g, batch), RB_OK);
    ck_assert_int_eq(rb_reference_forward(r, dx, labels, true), RB_OK);
    ck_assert_int_eq(rb_reference_backward(r, true, true), RB_OK);
    compare(what, rb_node_name(watch), fout, rb_reference_value(r, watch), batch * osize, TOL);
    {
        float got = (float)rb_engine_mean_loss(e);
        double want = rb_reference_loss(r);
        compare(what, "mean loss", &got, &want, 1, TOL);
    }
    compare(what, "input gradient", fgrad, rb_reference_input_grad(r), batch * size, TOL);
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        rb_graph_param(g, i, &p);
        if (p.trainable && !p.frozen)
            compare(what, p.name, p.grad, rb_reference_param_grad(r, i), p.numel, TOL);
    }
    rb_reference_destroy(r);
    rb_engine_destroy(e);
    free(fx);
    free(fgrad);
    free(fout);
    free(dx);
}

/* ------------------------------------------------------------ group normalization */

/* x = 1, 2, 3, 4 (one example, 2 channels of 1 x 2, no normalization):
 * one group has mean 2.5 and biased variance 1.25; two groups each mean
 * 1.5 / 3.5 and variance 0.25. With weight (2, -1) and bias (0.5, 0):
 *   groups 1: y = w_c (x - 2.5) / sqrt(1.25 + 1e-5) + b_c
 *   groups 2: y = w_c (x - mean_g) / sqrt(0.25 + 1e-5) + b_c
 * and the loss sum(y * v) / 1 for v = (1, 0, 0, 0) has the input gradient
 * rstd (w0 v - mean(w v) - xhat mean(w v xhat)) within the group. */
static rb_status dot_forward(const rb_host_io *io, void *user)
{
    const float *v = user;
    double sum = 0;
    for (int64_t i = 0; i < 4; i++)
        sum += (double)v[i] * io->inputs[0][i];
    io->output[0] = (float)sum;
    return RB_OK;
}

static rb_status dot_backward(const rb_host_io *io, void *user)
{
    const float *v = user;
    for (int64_t i = 0; i < 4; i++)
        io->input_grads[0][i] = io->output_grad[0] * v[i];
    return RB_OK;
}

START_TEST(groupnorm_by_hand)
{
    static const float x[4] = {1, 2, 3, 4}, v[4] = {1, 0, 0, 0};
    const rb_host_op dot = {.name = "dot", .loss = true, .forward = dot_forward, .backward = dot_backward,
                            .user = (void *)v};
    const int64_t groups = _i + 1;
    double want[4], want_grad[4] = {0}, want_w[2] = {0}, want_b[2] = {0};
    float got[4], grad[4];
    rb_graph *g;
    rb_node *in, *gn, *loss;
    rb_engine *e;
    rb_reference *r;
    double dxs[4] = {1, 2, 3, 4};
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 2, 1, 2, NULL, NULL, &in), RB_OK);
    ck_assert_int_eq(rb_graph_groupnorm(g, "gn", in, groups, &gn), RB_OK);
    ck_assert_int_eq(rb_graph_publish(g, gn, "normalized"), RB_OK);
    ck_assert_int_eq(rb_graph_host_op(g, "objective", &dot, &gn, 1, &loss), RB_OK);
    /* PyTorch's initial values, then ours */
    ck_assert(param(g, "gn.weight").value[0] == 1.0f && param(g, "gn.weight").value[1] == 1.0f);
    ck_assert(param(g, "gn.bias").value[0] == 0.0f && param(g, "gn.bias").value[1] == 0.0f);
    param(g, "gn.weight").value[0] = 2.0f;
    param(g, "gn.weight").value[1] = -1.0f;
    param(g, "gn.bias").value[0] = 0.5f;
    {
        const double w[2] = {2, -1}, b[2] = {0.5, 0};
        for (int64_t grp = 0; grp < groups; grp++) {
            const int64_t n = 4 / groups, at = grp * n;
            double mean = 0, var = 0, rstd, m1 = 0, m2 = 0;
            for (int64_t i = at; i < at + n; i++)
                mean += x[i] / (double)n;
            for (int64_t i = at; i < at + n; i++)
                var += (x[i] - mean) * (x[i] - mean) / (double)n;
            ck_assert_double_eq_tol(var, groups == 1 ? 1.25 : 0.25, 1e-15);
            rstd = 1 / sqrt(var + 1e-5);
            for (int64_t i = at; i < at + n; i++) {
                double xhat = (x[i] - mean) * rstd;
                want[i] = w[i / 2] * xhat + b[i / 2];
                m1 += w[i / 2] * v[i] / (double)n;
                m2 += w[i / 2] * v[i] * xhat / (double)n;
                want_w[i / 2] += v[i] * xhat;
                want_b[i / 2] += v[i];
            }
            for (int64_t i = at; i < at + n; i++)
                want_grad[i] = rstd * (w[i / 2] * v[i] - m1 - (x[i] - mean) * rstd * m2);
        }
    }
    ck_assert_int_eq(rb_engine_create(&e, g, 1, &(rb_engine_options){.threads = 1}), RB_OK);
    ck_assert_msg(rb_engine_forward(e, x, 1, NULL, true) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_engine_backward(e, true, true), RB_OK);
    ck_assert_int_eq(rb_engine_read(e, gn, got), RB_OK);
    ck_assert_int_eq(rb_engine_input_grad(e, grad), RB_OK);
    ck_assert_int_eq(rb_reference_create(&r, g, 1), RB_OK);
    ck_assert_int_eq(rb_reference_forward(r, dxs, NULL, true), RB_OK);
    ck_assert_int_eq(rb_reference_backward(r, true, true), RB_OK);
    /* The reference to double rounding; the engine to float (the values are
     * O(1): a few float roundings, 1e-6). */
    for (int i = 0; i < 4; i++) {
        ck_assert_double_eq_tol(rb_reference_value(r, gn)[i], want[i], 1e-12);
        ck_assert_double_eq_tol(rb_reference_input_grad(r)[i], want_grad[i], 1e-12);
        ck_assert_double_eq_tol(got[i], want[i], 1e-6);
        ck_assert_double_eq_tol(grad[i], want_grad[i], 1e-6);
    }
    for (int c = 0; c < 2; c++) {
        ck_assert_double_eq_tol(rb_reference_param_grad(r, 0)[c], want_w[c], 1e-12);
        ck_assert_double_eq_tol(rb_reference_param_grad(r, 1)[c], want_b[c], 1e-12);
        ck_assert_double_eq_tol(param(g, "gn.weight").grad[c], want_w[c], 1e-6);
        ck_assert_double_eq_tol(param(g, "gn.bias").grad[c], want_b[c], 1e-6);
    }
    /* the first value by hand: 2 (1 - 2.5) / sqrt(1.25 + 1e-5) + 0.5, or 2 (1 - 1.5) / sqrt(0.25 + 1e-5) + 0.5 */
    ck_assert_double_eq_tol(want[0], groups == 1 ? -3.0 / sqrt(1.25001) + 0.5 : -1.0 / sqrt(0.25001) + 0.5, 1e-12);
    rb_reference_destroy(r);
    rb_engine_destroy(e);
    rb_graph_destroy(g);
}
END_TEST

/* Group normalization in the layouts the engine meets: on the image
 * (plain nchw) and after a convolution (channel-blocked), with channels
 * per group below, equal to and above the block, channels that do not
 * fill the last block, one group (layer norm) and one channel per group
 * (instance norm). Then ReLU, pooling, a linear layer and the loss. */
typedef struct gn_case {
    int64_t lead;   /* channels of a 3x3 convolution before it; 0: on the image (5 channels) */
    int64_t groups;
    int64_t batch;
    const char *layout; /* expected in the kernel description */
} gn_case;

static const gn_case gn_cases[] = {
    {0, 5, 3, "nchw"},  {0, 1, 1, "nchw"},   {32, 8, 3, "nChw"}, {24, 3, 2, "nChw"},
    {64, 2, 2, "nChw"}, {16, 16, 3, "nChw"}, {16, 1, 3, "nChw"},
};

static rb_graph *gn_graph(const gn_case *k, rb_node **gn)
{
    rb_graph *g;
    rb_node *x;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 5, 7, 6, mean5, std5, &x), RB_OK);
    if (k->lead > 0)
        ck_assert_int_eq(rb_graph_conv(g, "lead", x, &(rb_conv_desc){.out_channels = k->lead, .kernel = {3, 3},
                                                                      .padding = {1, 1}, .bias = true}, &x),
                         RB_OK);
    ck_assert_int_eq(rb_graph_groupnorm(g, "gn", x, k->groups, gn), RB_OK);
    ck_assert_int_eq(rb_graph_publish(g, *gn, "under_test"), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, *gn, &x), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, x, &x), RB_OK);
    ck_assert_int_eq(rb_graph_linear(g, "fc", x, 5, true, &x), RB_OK);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, x, &x), RB_OK);
    randomize(g, 7 + (uint64_t)k->groups);
    return g;
}

START_TEST(groupnorm_matches_the_reference)
{
    const gn_case *k = &gn_cases[_i];
    char what[128];
    rb_node *gn;
    rb_graph *g = gn_graph(k, &gn);
    rb_engine *e;
    snprintf(what, sizeof what, "groupnorm %lld groups after %lld channels, batch %lld", (long long)k->groups,
             (long long)k->lead, (long long)k->batch);
    match_reference(g, gn, k->batch, NULL, what);
    /* the layout its loops ran in: the image's, or the convolution's blocks */
    ck_assert_int_eq(rb_engine_create(&e, g, k->batch, NULL), RB_OK);
    ck_assert_msg(strstr(rb_engine_impl(e, gn), k->layout) != NULL, "%s: %s", what, rb_engine_impl(e, gn));
    rb_engine_destroy(e);
    /* every gradient kept apart (no shared memory) gives the same */
    match_reference(g, gn, k->batch, &(rb_engine_options){.keep_intermediates = true}, what);
    rb_graph_destroy(g);
}
END_TEST

/* The objective sum(w * out) / N for a fixed pattern w, in C. */
static rb_status pattern_forward(const rb_host_io *io, void *user)
{
    const int64_t size = io->shapes[0][0] * io->shapes[0][1] * io->shapes[0][2];
    (void)user;
    for (int64_t b = 0; b < io->batch; b++) {
        double sum = 0;
        for (int64_t i = 0; i < size; i++)
            sum += (double)((i * 7 + b) % 11 - 5) / 5.0 * io->inputs[0][b * size + i];
        io->output[b] = (float)sum;
    }
    return RB_OK;
}

static rb_status pattern_backward(const rb_host_io *io, void *user)
{
    const int64_t size = io->shapes[0][0] * io->shapes[0][1] * io->shapes[0][2];
    (void)user;
    for (int64_t b = 0; b < io->batch; b++)
        for (int64_t i = 0; i < size; i++)
            io->input_grads[0][b * size + i] = io->output_grad[b] * (float)((i * 7 + b) % 11 - 5) / 5.0f;
    return RB_OK;
}

static const rb_host_op pattern = {.name = "pattern", .loss = true, .forward = pattern_forward,
                                   .backward = pattern_backward};

/* The group normalization's sums have a fixed order: with the same input
 * (a 1x1 convolution's forward, which oneDNN computes per output element)
 * and output gradient (from C), one thread and two give the same bits. */
START_TEST(groupnorm_is_the_same_on_any_thread_count)
{
    float *out[2], *grad[2], *wgrad[2];
    const int64_t batch = 4, size = 32 * 9 * 9;
    float fx[4 * 3 * 81];
    images(4 * 3 * 81, fx, NULL, 5);
    for (int t = 0; t < 2; t++) {
        rb_graph *g;
        rb_node *x, *lead, *gn, *loss;
        rb_engine *e;
        float *lead_out = malloc((size_t)(batch * size) * sizeof(float));
        static float first_lead[4 * 32 * 81];
        ck_assert_int_eq(rb_graph_create(&g), RB_OK);
        ck_assert_int_eq(rb_graph_input(g, 3, 9, 9, mean5, std5, &x), RB_OK);
        ck_assert_int_eq(rb_graph_conv(g, "lead", x, &(rb_conv_desc){.out_channels = 32, .kernel = {1, 1}}, &lead),
                         RB_OK);
        ck_assert_int_eq(rb_graph_groupnorm(g, "gn", lead, 8, &gn), RB_OK);
        ck_assert_int_eq(rb_graph_host_op(g, "objective", &pattern, &gn, 1, &loss), RB_OK);
        randomize(g, 11);
        ck_assert_int_eq(rb_engine_create(&e, g, batch, &(rb_engine_options){.threads = t + 1, .keep_intermediates = true}),
                         RB_OK);
        ck_assert_int_eq(rb_engine_forward(e, fx, batch, NULL, true), RB_OK);
        ck_assert_int_eq(rb_engine_backward(e, true, false), RB_OK);
        out[t] = malloc((size_t)(batch * size) * sizeof(float));
        grad[t] = malloc((size_t)(batch * size) * sizeof(float));
        wgrad[t] = malloc(64 * sizeof(float));
        ck_assert_int_eq(rb_engine_read(e, lead, lead_out), RB_OK);
        ck_assert_int_eq(rb_engine_read(e, gn, out[t]), RB_OK);
        ck_assert_int_eq(rb_engine_read_grad(e, lead, grad[t]), RB_OK);
        memcpy(wgrad[t], param(g, "gn.weight").grad, 32 * sizeof(float));
        memcpy(wgrad[t] + 32, param(g, "gn.bias").grad, 32 * sizeof(float));
        if (t == 0)
            memcpy(first_lead, lead_out, sizeof first_lead);
        else /* the premise: the same input */
            ck_assert_int_eq(memcmp(first_lead, lead_out, sizeof first_lead), 0);
        free(lead_out);
        rb_engine_destroy(e);
        rb_graph_destroy(g);
    }
    ck_assert_int_eq(memcmp(out[0], out[1], (size_t)(batch * size) * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(grad[0], grad[1], (size_t)(batch * size) * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(wgrad[0], wgrad[1], 64 * sizeof(float)), 0);
    for (int t = 0; t < 2; t++) {
        free(out[t]);
        free(grad[t]);
        free(wgrad[t]);
    }
}
END_TEST

START_TEST(groupnorm_refusals)
{
    rb_graph *g;
    rb_node *x, *gn, *loss;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 6, 4, 4, NULL, NULL, &x), RB_OK);
    ck_assert_int_eq(rb_graph_groupnorm(g, "gn", x, 4, &gn), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "groupnorm 'gn': 4 groups do not divide the 6 channels of 'input'; give a "
                                      "divisor of 6 (32 is torchvision's, for 32k channels)");
    ck_assert_int_eq(rb_graph_groupnorm(g, "gn", x, 0, &gn), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "groupnorm 'gn': 0 groups do not divide the 6 channels of 'input'; give a "
                                      "divisor of 6 (32 is torchvision's, for 32k channels)");
    ck_assert_int_eq(rb_graph_groupnorm(g, "gn", x, -3, &gn), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_graph_groupnorm(g, "gn", x, 12, &gn), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_graph_groupnorm(g, NULL, x, 3, &gn), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "groupnorm: a group normalization needs a name for its parameters");
    ck_assert_int_eq(rb_graph_groupnorm(g, "gn", NULL, 3, &gn), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_graph_host_op(g, "objective", &pattern, &x, 1, &loss), RB_OK);
    ck_assert_int_eq(rb_graph_groupnorm(g, "gn", loss, 1, &gn), RB_ERR_INVALID_ARGUMENT); /* after a loss */
    /* nothing was added */
    ck_assert_uint_eq(rb_graph_node_count(g), 2);
    ck_assert_uint_eq(rb_graph_param_count(g), 0);
    ck_assert_int_eq(rb_graph_groupnorm(g, "gn", x, 6, &gn), RB_OK);
    ck_assert_int_eq(rb_graph_groupnorm(g, "gn", x, 6, &gn), RB_ERR_INVALID_ARGUMENT); /* the name is taken */
    ck_assert_uint_eq(rb_graph_param_count(g), 2);
    ck_assert_str_eq(rb_op_str(RB_OP_GROUPNORM), "groupnorm");
    rb_graph_destroy(g);
}
END_TEST

/* ------------------------------------------------------------ a tower applied twice */

/* An FCOS-like head on two levels: a stem gives A (16 x 12 x 12) and its
 * 2x average-pooled copy B (16 x 6 x 6); the tower conv 3x3 (no bias) ->
 * groupnorm (4 groups) -> ReLU -> conv 3x3 "cls" (bias) -> global pool ->
 * linear "fc" -> cross-entropy is applied to each level that `levels`
 * names (1: A, 2: B, 3: both; the objective is then the sum of the two
 * losses). Every level's layers after the first are rb_graph_reuse of the
 * first's, so the parameters (and their names) are the same in all three
 * graphs. */
static rb_graph *tower_net(int levels, rb_node **loss_a, rb_node **loss_b)
{
    rb_graph *g;
    rb_node *x, *a, *b = NULL, *first[4] = {NULL}, *losses[2] = {NULL, NULL};
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 3, 12, 12, mean5, std5, &x), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "stem", x, &(rb_conv_desc){.out_channels = 16, .kernel = {3, 3}, .padding = {1, 1}},
                                   &a),
                     RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, a, &a), RB_OK);
    if (levels & 2)
        ck_assert_int_eq(rb_graph_avgpool(g, a, &(rb_pool_desc){.kernel = {2, 2}}, &b), RB_OK);
    for (int level = 0; level < 2; level++) {
        rb_node *y = level == 0 ? a : b;
        if (!(levels & (1 << level)))
            continue;
        if (first[0] == NULL) {
            ck_assert_int_eq(rb_graph_conv(g, "tower.0", y, &(rb_conv_desc){.out_channels = 16, .kernel = {3, 3},
                                                                             .padding = {1, 1}}, &first[0]),
                             RB_OK);
            ck_assert_int_eq(rb_graph_groupnorm(g, "tower.1", first[0], 4, &first[1]), RB_OK);
            ck_assert_int_eq(rb_graph_relu(g, first[1], &y), RB_OK);
            ck_assert_int_eq(rb_graph_conv(g, "cls", y, &(rb_conv_desc){.out_channels = 5, .kernel = {3, 3},
                                                                         .padding = {1, 1}, .bias = true}, &first[2]),
                             RB_OK);
            ck_assert_int_eq(rb_graph_global_avgpool(g, first[2], &y), RB_OK);
            ck_assert_int_eq(rb_graph_linear(g, "fc", y, 5, true, &first[3]), RB_OK);
            y = first[3];
        } else {
            ck_assert_int_eq(rb_graph_reuse(g, first[0], y, &y), RB_OK);
            ck_assert_int_eq(rb_graph_reuse(g, first[1], y, &y), RB_OK);
            ck_assert_int_eq(rb_graph_relu(g, y, &y), RB_OK);
            ck_assert_int_eq(rb_graph_reuse(g, first[2], y, &y), RB_OK);
            ck_assert_int_eq(rb_graph_global_avgpool(g, y, &y), RB_OK);
            ck_assert_int_eq(rb_graph_reuse(g, first[3], y, &y), RB_OK);
        }
        ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, y, &losses[level]), RB_OK);
    }
    randomize(g, 23);
    if (loss_a != NULL)
        *loss_a = losses[0];
    if (loss_b != NULL)
        *loss_b = losses[1];
    return g;
}

static const char *const tower_params[] = {"stem.weight", "tower.0.weight", "tower.1.weight", "tower.1.bias",
                                           "cls.weight",  "cls.bias",       "fc.weight",      "fc.bias"};
#define TOWER_PARAMS 8
#define TOWER_BATCH 3
#define TOWER_IMAGE (3 * 12 * 12)

/* Every tower gradient after one training step (engine or reference),
 * concatenated in tower_params' order; returns how many. */
static int64_t tower_grads(rb_graph *g, bool engine, const rb_engine_options *opt, double *out)
{
    static float fx[TOWER_BATCH * TOWER_IMAGE];
    static double dx[TOWER_BATCH * TOWER_IMAGE];
    const int64_t labels[TOWER_BATCH] = {1, 4, 2};
    int64_t n = 0;
    rb_reference *r = NULL;
    images(TOWER_BATCH * TOWER_IMAGE, fx, dx, 17);
    if (engine) {
        rb_engine *e;
        ck_assert_msg(rb_engine_create(&e, g, TOWER_BATCH, opt) == RB_OK, "%s", rb_last_error());
        ck_assert_int_eq(rb_engine_forward(e, fx, TOWER_BATCH, labels, true), RB_OK);
        ck_assert_int_eq(rb_engine_backward(e, true, false), RB_OK);
        rb_engine_destroy(e);
    } else {
        ck_assert_int_eq(rb_reference_create(&r, g, TOWER_BATCH), RB_OK);
        ck_assert_int_eq(rb_reference_forward(r, dx, labels, true), RB_OK);
        ck_assert_int_eq(rb_reference_backward(r, true, false), RB_OK);
    }
    for (int k = 0; k < TOWER_PARAMS; k++)
        for (size_t index = 0; index < rb_graph_param_count(g); index++) {
            rb_param_info p;
            rb_graph_param(g, index, &p);
            if (strcmp(p.name, tower_params[k]) != 0)
                continue;
            for (int64_t i = 0; i < p.numel; i++)
                out[n + i] = engine ? (double)p.grad[i] : rb_reference_param_grad(r, index)[i];
            n += p.numel;
        }
    rb_reference_destroy(r);
    return n;
}

/* tower_net's parameter values copied into `to` by name. */
static void copy_params(rb_graph *to, const rb_graph *from)
{
    for (int k = 0; k < TOWER_PARAMS; k++) {
        rb_param_info a = param(to, tower_params[k]), b = param(from, tower_params[k]);
        ck_assert_int_eq(a.numel, b.numel);
        memcpy(a.value, b.value, (size_t)a.numel * sizeof(float));
    }
}

START_TEST(a_tower_applied_twice_sums_its_gradients)
{
    rb_node *la, *lb;
    rb_graph *both = tower_net(3, &la, &lb), *only_a = tower_net(1, NULL, NULL), *only_b = tower_net(2, NULL, NULL);
    static double g_both[20000], r_both[20000], g_a[20000], g_b[20000], r_a[20000], r_b[20000];
    static float got[20000];
    int64_t n;
    double b_part = 0;
    const rb_engine_options keep = {.keep_intermediates = true};
    copy_params(only_a, both);
    copy_params(only_b, both);
    /* one copy of each parameter, under the first application's name */
    ck_assert_uint_eq(rb_graph_param_count(both), TOWER_PARAMS);
    ck_assert_uint_eq(rb_graph_param_count(only_a), TOWER_PARAMS);
    ck_assert_int_eq(rb_graph_trainable_count(both), rb_graph_trainable_count(only_a));

    /* the engine against the reference, both levels: the value of the
     * second level's tower output, the loss, the input gradient and every
     * parameter's gradient (the shared ones summed over both levels) */
    ck_assert_int_eq(rb_graph_publish(both, node(both, "tower.1.reuse1"), "level_b_tower"), RB_OK);
    match_reference(both, node(both, "tower.1.reuse1"), TOWER_BATCH, NULL, "tower on two levels");
    match_reference(both, node(both, "tower.1.reuse1"), TOWER_BATCH, &keep, "tower on two levels, kept apart");
    match_reference(both, node(both, "tower.1.reuse1"), TOWER_BATCH, &(rb_engine_options){.threads = 1},
                    "tower on two levels, one thread");
    match_reference(both, node(both, "tower.1.reuse1"), TOWER_BATCH,
                    &(rb_engine_options){.conv_algorithm = RB_CONV_DIRECT}, "tower on two levels, direct convolutions");

    /* the sum of the two levels taken one at a time */
    n = tower_grads(both, true, NULL, g_both);
    ck_assert_int_eq(tower_grads(both, false, NULL, r_both), n);
    ck_assert_int_eq(tower_grads(only_a, true, NULL, g_a), n);
    ck_assert_int_eq(tower_grads(only_b, true, NULL, g_b), n);
    ck_assert_int_eq(tower_grads(only_a, false, NULL, r_a), n);
    ck_assert_int_eq(tower_grads(only_b, false, NULL, r_b), n);
    for (int64_t i = 0; i < n; i++) {
        /* the reference adds both levels' terms into one buffer: the same
         * sums in another order, equal to double rounding */
        ck_assert_msg(fabs(r_both[i] - (r_a[i] + r_b[i])) <= 1e-12 * (1 + fabs(r_both[i])), "reference %lld: %.17g vs %.17g",
                      (long long)i, r_both[i], r_a[i] + r_b[i]);
        r_a[i] += r_b[i];
        got[i] = (float)(g_a[i] + g_b[i]);
        b_part = fmax(b_part, fabs(r_b[i]));
    }
    compare("engine, one level at a time, summed", "tower gradients", got, r_a, n, TOL);
    for (int64_t i = 0; i < n; i++)
        got[i] = (float)g_both[i];
    compare("engine, both levels", "tower gradients", got, r_a, n, TOL);
    /* the second level's part is far above the tolerance: a gradient that
     * one application overwrote instead of adding to would fail above */
    ck_assert_msg(b_part > 100 * TOL, "the second level's gradients are too small to tell (%g)", b_part);
    rb_graph_destroy(both);
    rb_graph_destroy(only_a);
    rb_graph_destroy(only_b);
}
END_TEST

/* Convolutions of every kind applied twice, to inputs of different sizes:
 * grouped, strided, dilated and padded with a bias (weights in 5
 * dimensions), a 1x1 one without, on the image itself and on its pooled
 * copy; both levels share the classifier. */
START_TEST(odd_convolutions_applied_twice_match_the_reference)
{
    rb_graph *g;
    rb_node *x, *p, *a[3], *b, *la, *lb;
    const rb_conv_desc grouped = {.out_channels = 6, .kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 1},
                                  .dilation = {2, 1}, .groups = 2, .bias = true};
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 4, 11, 9, mean5, std5, &x), RB_OK);
    ck_assert_int_eq(rb_graph_avgpool(g, x, &(rb_pool_desc){.kernel = {2, 2}}, &p), RB_OK); /* 4 x 5 x 4 */
    ck_assert_int_eq(rb_graph_conv(g, "grouped", x, &grouped, &a[0]), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "point", a[0], &(rb_conv_desc){.out_channels = 5, .kernel = {1, 1}}, &a[1]), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, a[1], &a[2]), RB_OK);
    ck_assert_int_eq(rb_graph_linear(g, "fc", a[2], 5, true, &a[2]), RB_OK);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, a[2], &la), RB_OK);
    ck_assert_int_eq(rb_graph_reuse(g, a[0], p, &b), RB_OK);
    ck_assert_int_eq(rb_graph_reuse(g, a[1], b, &b), RB_OK);
    ck_assert_int_eq(rb_graph_publish(g, b, "level_b"), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, b, &b), RB_OK);
    ck_assert_int_eq(rb_graph_reuse(g, a[2], b, &b), RB_OK);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, b, &lb), RB_OK);
    randomize(g, 29);
    match_reference(g, node(g, "point.reuse1"), 2, NULL, "odd convolutions on two levels");
    match_reference(g, node(g, "point.reuse1"), 2, &(rb_engine_options){.threads = 1, .keep_intermediates = true},
                    "odd convolutions on two levels, one thread, kept apart");
    rb_graph_destroy(g);
}
END_TEST

START_TEST(reuse_builds_nodes_without_parameters)
{
    rb_node *la, *lb, *t0, *t0b, *again, *gn;
    rb_graph *g = tower_net(3, &la, &lb), *one = tower_net(1, NULL, NULL);
    const size_t params = rb_graph_param_count(g);
    int64_t c, h, w;
    t0 = node(g, "tower.0");
    t0b = node(g, "tower.0.reuse1");
    ck_assert_ptr_eq(rb_node_reuses(t0b), t0);
    ck_assert_ptr_null(rb_node_reuses(t0));
    ck_assert_ptr_null(rb_node_reuses(node(g, "stem")));
    ck_assert_int_eq(rb_node_op(t0b), RB_OP_CONV);
    ck_assert_int_eq(rb_node_op(node(g, "tower.1.reuse1")), RB_OP_GROUPNORM);
    ck_assert_int_eq(rb_node_op(node(g, "fc.reuse1")), RB_OP_LINEAR);
    rb_node_shape(t0b, &c, &h, &w); /* the kernel on the smaller map */
    ck_assert(c == 16 && h == 6 && w == 6);
    rb_node_shape(node(g, "cls.reuse1"), &c, &h, &w);
    ck_assert(c == 5 && h == 6 && w == 6);
    /* a reuse of a reuse applies the first node's parameters and is named after it */
    ck_assert_int_eq(rb_graph_reuse(g, t0b, rb_node_input(t0b, 0), &again), RB_OK);
    ck_assert_str_eq(rb_node_name(again), "tower.0.reuse2");
    ck_assert_ptr_eq(rb_node_reuses(again), t0);
    ck_assert_uint_eq(rb_graph_param_count(g), params);
    for (size_t i = 0; i < params; i++) {
        rb_param_info p;
        rb_graph_param(g, i, &p);
        ck_assert_ptr_null(rb_node_reuses(p.owner)); /* owners are the first applications */
        ck_assert_ptr_null(strstr(p.name, "reuse"));
    }
    /* MACs: every application on its own input (3x3 convolutions: out x
     * in x 9 per output pixel; the linear layer 5 x 5) */
    {
        const int64_t stem = 16 * 3 * 9 * 144, tower_a = 16 * 16 * 9 * 144, tower_b = 16 * 16 * 9 * 36;
        const int64_t cls_a = 5 * 16 * 9 * 144, cls_b = 5 * 16 * 9 * 36, fc = 25;
        ck_assert_int_eq(rb_node_forward_macs(t0b), tower_b);
        ck_assert_int_eq(rb_node_forward_macs(again), tower_b);
        ck_assert_int_eq(rb_graph_forward_macs(one), stem + tower_a + cls_a + fc);
        ck_assert_int_eq(rb_graph_forward_macs(g), stem + tower_a + cls_a + fc + tower_b + cls_b + fc + tower_b);
        /* training: 3 x forward, less the stem's backward-data (it reads the image) */
        ck_assert_int_eq(rb_graph_training_macs(g), 3 * rb_graph_forward_macs(g) - stem);
    }
    /* initialization touches each parameter once, as in the one-level graph */
    ck_assert_int_eq(rb_graph_init_params(g, 5), RB_OK);
    ck_assert_int_eq(rb_graph_init_params(one, 5), RB_OK);
    for (int k = 0; k < TOWER_PARAMS; k++) {
        rb_param_info a = param(g, tower_params[k]), b = param(one, tower_params[k]);
        ck_assert_int_eq(memcmp(a.value, b.value, (size_t)a.numel * sizeof(float)), 0);
    }
    gn = node(g, "tower.1");
    ck_assert(param(g, "tower.1.weight").value[3] == 1.0f && param(g, "tower.1.bias").value[3] == 0.0f);
    (void)gn;
    rb_graph_destroy(g);
    rb_graph_destroy(one);
}
END_TEST

START_TEST(reuse_refusals)
{
    rb_graph *g, *other;
    rb_node *x, *conv, *bn, *relu, *gn, *fc, *small, *tiny, *loss, *out = NULL, *ox;
    size_t nodes, params;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 4, 8, 8, NULL, NULL, &x), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "conv", x, &(rb_conv_desc){.out_channels = 6, .kernel = {3, 3}}, &conv), RB_OK);
    ck_assert_int_eq(rb_graph_batchnorm(g, "bn", conv, &bn), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, bn, &relu), RB_OK);
    ck_assert_int_eq(rb_graph_groupnorm(g, "gn", relu, 3, &gn), RB_OK);
    ck_assert_int_eq(rb_graph_linear(g, "fc", gn, 2, true, &fc), RB_OK); /* reads 6 x 6 x 6 */
    ck_assert_int_eq(rb_graph_avgpool(g, x, &(rb_pool_desc){.kernel = {4, 4}}, &small), RB_OK); /* 4 x 2 x 2 */
    ck_assert_int_eq(rb_graph_avgpool(g, small, &(rb_pool_desc){.kernel = {2, 2}}, &tiny), RB_OK); /* 4 x 1 x 1 */
    ck_assert_int_eq(rb_graph_host_op(g, "objective", &pattern, &fc, 1, &loss), RB_OK);
    nodes = rb_graph_node_count(g);
    params = rb_graph_param_count(g);

    ck_assert_int_eq(rb_graph_reuse(g, bn, conv, &out), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "rb_graph_reuse: 'bn' is a batch-norm, whose running statistics cannot be shared "
                                      "between inputs; use rb_graph_groupnorm, or a batch-norm of its own per input");
    ck_assert_int_eq(rb_graph_reuse(g, relu, conv, &out), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "rb_graph_reuse: 'relu_1' is a relu; only conv, linear and groupnorm layers can "
                                      "be applied again (for an op without parameters, add another node of it)");
    ck_assert_int_eq(rb_graph_reuse(g, x, x, &out), RB_ERR_INVALID_ARGUMENT); /* the input */
    ck_assert_int_eq(rb_graph_reuse(g, loss, fc, &out), RB_ERR_INVALID_ARGUMENT); /* a host op */
    ck_assert_int_eq(rb_graph_reuse(g, conv, conv, &out), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "rb_graph_reuse: conv 'conv' reads 4 channels but 'conv' has 6; its weight fits "
                                      "only inputs of 4 channels");
    ck_assert_int_eq(rb_graph_reuse(g, conv, small, &out), RB_ERR_INVALID_ARGUMENT); /* 3x3 on 2x2 */
    ck_assert_str_eq(rb_last_error(), "rb_graph_reuse: the 3x3 kernel of conv 'conv' (dilation 1x1, padding 0x0) does "
                                      "not fit the 2x2 output of 'avgpool_1'");
    ck_assert_int_eq(rb_graph_reuse(g, gn, x, &out), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "rb_graph_reuse: groupnorm 'gn' normalizes 6 channels but 'input' has 4; its "
                                      "weight fits only inputs of 6 channels");
    ck_assert_int_eq(rb_graph_reuse(g, fc, small, &out), RB_ERR_INVALID_ARGUMENT); /* 4 x 2 x 2 */
    ck_assert_int_eq(rb_graph_reuse(g, fc, tiny, &out), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "rb_graph_reuse: linear 'fc' reads 6x6x6 values but 'avgpool_2' is 4x1x1; its "
                                      "weight fits only inputs of that shape (pool to it first)");
    ck_assert_int_eq(rb_graph_reuse(g, conv, loss, &out), RB_ERR_INVALID_ARGUMENT); /* nothing follows a loss */
    ck_assert_int_eq(rb_graph_reuse(g, conv, NULL, &out), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_graph_reuse(g, NULL, x, &out), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "rb_graph_reuse: the layer to apply again is NULL; give a node of this graph");
    ck_assert_int_eq(rb_graph_create(&other), RB_OK);
    ck_assert_int_eq(rb_graph_input(other, 4, 8, 8, NULL, NULL, &ox), RB_OK);
    ck_assert_int_eq(rb_graph_reuse(other, conv, ox, &out), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "rb_graph_reuse: the layer to apply again is not in this graph; give a node of "
                                      "this graph");
    ck_assert_int_eq(rb_graph_reuse(g, conv, ox, &out), RB_ERR_INVALID_ARGUMENT); /* input of another graph */
    ck_assert_int_eq(rb_graph_reuse(g, conv, x, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(out);
    /* the graph is as it was */
    ck_assert_uint_eq(rb_graph_node_count(g), nodes);
    ck_assert_uint_eq(rb_graph_param_count(g), params);
    /* and the same calls with fitting inputs work */
    ck_assert_int_eq(rb_graph_reuse(g, conv, x, &out), RB_OK);
    ck_assert_int_eq(rb_graph_reuse(g, gn, conv, &out), RB_OK);
    ck_assert_int_eq(rb_graph_reuse(g, fc, gn, &out), RB_OK);
    ck_assert_uint_eq(rb_graph_node_count(g), nodes + 3);
    ck_assert_uint_eq(rb_graph_param_count(g), params);
    rb_graph_destroy(other);
    rb_graph_destroy(g);
}
END_TEST

/* ------------------------------------------------------------ training, checkpoints, freezing */

/* SGD (lr 0.5, a power of two: the update is exact whatever the CPU
 * fuses) moves each shared parameter once, by the summed gradient. */
START_TEST(a_step_moves_shared_weights_once)
{
    rb_graph *g = tower_net(3, NULL, NULL);
    rb_engine *e;
    rb_sgd *sgd;
    static float fx[TOWER_BATCH * TOWER_IMAGE], before[TOWER_PARAMS][2304];
    const int64_t labels[TOWER_BATCH] = {0, 3, 1};
    images(TOWER_BATCH * TOWER_IMAGE, fx, NULL, 2);
    for (int k = 0; k < TOWER_PARAMS; k++) {
        rb_param_info p = param(g, tower_params[k]);
        ck_assert_int_le(p.numel, 2304);
        memcpy(before[k], p.value, (size_t)p.numel * sizeof(float));
    }
    ck_assert_int_eq(rb_engine_create(&e, g, TOWER_BATCH, NULL), RB_OK);
    ck_assert_int_eq(rb_sgd_create(&sgd, g, &(rb_sgd_options){0}), RB_OK);
    ck_assert_int_eq(rb_engine_forward(e, fx, TOWER_BATCH, labels, true), RB_OK);
    ck_assert_int_eq(rb_engine_backward(e, true, false), RB_OK);
    ck_assert_int_eq(rb_sgd_step(sgd, 0.5), RB_OK);
    for (int k = 0; k < TOWER_PARAMS; k++) {
        rb_param_info p = param(g, tower_params[k]);
        int64_t moved = 0;
        for (int64_t i = 0; i < p.numel; i++) {
            ck_assert_msg(p.value[i] == before[k][i] - 0.5f * p.grad[i], "%s[%lld]: %.9g, want %.9g - 0.5 x %.9g",
                          p.name, (long long)i, (double)p.value[i], (double)before[k][i], (double)p.grad[i]);
            moved += p.value[i] != before[k][i];
        }
        ck_assert_msg(moved > 0, "%s did not move", p.name);
    }
    /* a second step from the new values: the gradient is the new one, not
     * added to the last (shared gradients start from zero each backward) */
    {
        rb_reference *r;
        static double dx[TOWER_BATCH * TOWER_IMAGE];
        for (int64_t i = 0; i < TOWER_BATCH * TOWER_IMAGE; i++)
            dx[i] = fx[i];
        ck_assert_int_eq(rb_engine_forward(e, fx, TOWER_BATCH, labels, true), RB_OK);
        ck_assert_int_eq(rb_engine_backward(e, true, false), RB_OK);
        ck_assert_int_eq(rb_reference_create(&r, g, TOWER_BATCH), RB_OK);
        ck_assert_int_eq(rb_reference_forward(r, dx, labels, true), RB_OK);
        ck_assert_int_eq(rb_reference_backward(r, true, false), RB_OK);
        for (size_t i = 0; i < rb_graph_param_count(g); i++) {
            rb_param_info p;
            rb_graph_param(g, i, &p);
            compare("second step", p.name, p.grad, rb_reference_param_grad(r, i), p.numel, TOL);
        }
        rb_reference_destroy(r);
    }
    rb_sgd_destroy(sgd);
    rb_engine_destroy(e);
    rb_graph_destroy(g);
}
END_TEST

/* A checkpoint of a graph with shared layers holds each parameter once,
 * and loading it into a fresh graph gives the same losses. */
START_TEST(checkpoints_hold_shared_parameters_once)
{
    char dir[256], path[320];
    rb_graph *g = tower_net(3, NULL, NULL), *fresh = tower_net(3, NULL, NULL);
    rb_checkpoint *ck, *back;
    rb_engine *e;
    static float fx[TOWER_BATCH * TOWER_IMAGE];
    const int64_t labels[TOWER_BATCH] = {2, 2, 0};
    double losses[2];
    images(TOWER_BATCH * TOWER_IMAGE, fx, NULL, 4);
    ck_assert_int_eq(rb_graph_init_params(fresh, 99), RB_OK); /* other values */
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/tower.rbt", dir);
    ck_assert_int_eq(rb_checkpoint_create(&ck), RB_OK);
    for (size_t i = 0; i < rb_graph_param_count(g); i++) { /* as rb_model_to_checkpoint does */
        rb_param_info p;
        rb_graph_param(g, i, &p);
        ck_assert_int_eq(rb_checkpoint_add(ck, p.name, RB_DTYPE_F32, p.ndim, p.shape, p.value), RB_OK);
    }
    ck_assert_int_eq(rb_checkpoint_save(ck, path, 0), RB_OK);
    rb_checkpoint_destroy(ck);
    ck_assert_int_eq(rb_checkpoint_load(&back, path, 0), RB_OK);
    ck_assert_uint_eq(rb_checkpoint_count(back), TOWER_PARAMS);
    for (int k = 0; k < TOWER_PARAMS; k++) {
        rb_checkpoint_tensor t;
        rb_param_info p = param(fresh, tower_params[k]);
        ck_assert_int_eq(rb_checkpoint_find(back, tower_params[k], &t), RB_OK);
        ck_assert_uint_eq(t.nbytes, (size_t)p.numel * sizeof(float));
        memcpy(p.value, t.data, t.nbytes);
    }
    rb_checkpoint_destroy(back);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(rb_engine_create(&e, k == 0 ? g : fresh, TOWER_BATCH, NULL), RB_OK);
        ck_assert_int_eq(rb_engine_forward(e, fx, TOWER_BATCH, labels, false), RB_OK);
        losses[k] = rb_engine_mean_loss(e);
        rb_engine_destroy(e);
    }
    ck_assert(losses[0] == losses[1]);
    remove_temp_dir(dir);
    rb_graph_destroy(g);
    rb_graph_destroy(fresh);
}
END_TEST

static void poison_grads(rb_graph *g)
{
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        rb_graph_param(g, i, &p);
        for (int64_t k = 0; p.grad && k < p.numel; k++)
            p.grad[k] = 12345.0f;
    }
}

/* Freezing follows the owner (the first application): freezing through
 * the first level's groupnorm freezes the tower's parameters, also where
 * the second level applies them after that point; the rest trains, with
 * the reference's gradients. */
START_TEST(freezing_follows_the_first_application)
{
    rb_graph *g = tower_net(3, NULL, NULL);
    rb_engine *e;
    rb_reference *r;
    static float fx[TOWER_BATCH * TOWER_IMAGE];
    static double dx[TOWER_BATCH * TOWER_IMAGE];
    const int64_t labels[TOWER_BATCH] = {4, 0, 1};
    images(TOWER_BATCH * TOWER_IMAGE, fx, dx, 6);
    ck_assert_int_eq(rb_graph_freeze_through(g, node(g, "tower.1")), RB_OK);
    ck_assert(param(g, "tower.0.weight").frozen && param(g, "tower.1.bias").frozen && param(g, "stem.weight").frozen);
    ck_assert(!param(g, "cls.weight").frozen && !param(g, "fc.bias").frozen);
    ck_assert_int_eq(rb_engine_create(&e, g, TOWER_BATCH, NULL), RB_OK);
    poison_grads(g);
    ck_assert_int_eq(rb_engine_forward(e, fx, TOWER_BATCH, labels, true), RB_OK);
    ck_assert_int_eq(rb_engine_backward(e, true, false), RB_OK);
    ck_assert_int_eq(rb_reference_create(&r, g, TOWER_BATCH), RB_OK);
    ck_assert_int_eq(rb_reference_forward(r, dx, labels, true), RB_OK);
    ck_assert_int_eq(rb_reference_backward(r, true, false), RB_OK);
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        rb_graph_param(g, i, &p);
        if (p.frozen) {
            for (int64_t k = 0; k < p.numel; k++)
                ck_assert_msg(p.grad[k] == 12345.0f, "frozen %s got a gradient", p.name);
            ck_assert_ptr_null(rb_reference_param_grad(r, i));
        } else {
            compare("frozen tower", p.name, p.grad, rb_reference_param_grad(r, i), p.numel, TOL);
        }
    }
    rb_reference_destroy(r);
    rb_engine_destroy(e);
    /* freezing through a later application freezes what its owners own */
    ck_assert_int_eq(rb_graph_freeze_through(g, node(g, "cls.reuse1")), RB_OK);
    ck_assert(param(g, "cls.bias").frozen && param(g, "fc.weight").frozen);
    ck_assert_int_eq(rb_graph_freeze_through(g, NULL), RB_OK);
    ck_assert(!param(g, "tower.0.weight").frozen);
    rb_graph_destroy(g);
}
END_TEST

/* An engine listing only the first level's loss runs none of the second
 * level's nodes: the shared parameters get the first level's gradient
 * alone, as in the one-level graph. */
START_TEST(engines_running_one_level_give_its_gradients)
{
    rb_node *la, *lb;
    rb_graph *both = tower_net(3, &la, &lb), *only_a = tower_net(1, NULL, NULL);
    static double want[20000], got[20000];
    static float gotf[20000];
    int64_t n;
    copy_params(only_a, both);
    n = tower_grads(only_a, false, NULL, want);
    ck_assert_int_eq(tower_grads(both, true, &(rb_engine_options){.outputs = (rb_node *const[]){la}, .n_outputs = 1}, got), n);
    for (int64_t i = 0; i < n; i++)
        gotf[i] = (float)got[i];
    compare("first level only", "tower gradients", gotf, want, n, TOL);
    /* and the second level alone */
    {
        rb_graph *only_b = tower_net(2, NULL, NULL);
        copy_params(only_b, both);
        ck_assert_int_eq(tower_grads(only_b, false, NULL, want), n);
        ck_assert_int_eq(
            tower_grads(both, true, &(rb_engine_options){.outputs = (rb_node *const[]){lb}, .n_outputs = 1}, got), n);
        for (int64_t i = 0; i < n; i++)
            gotf[i] = (float)got[i];
        compare("second level only", "tower gradients", gotf, want, n, TOL);
        rb_graph_destroy(only_b);
    }
    rb_graph_destroy(both);
    rb_graph_destroy(only_a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shared");
    TCase *tc = tcase_create("shared");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, groupnorm_by_hand, 0, 2);
    tcase_add_loop_test(tc, groupnorm_matches_the_reference, 0, (int)(sizeof gn_cases / sizeof gn_cases[0]));
    tcase_add_test(tc, groupnorm_is_the_same_on_any_thread_count);
    tcase_add_test(tc, groupnorm_refusals);
    tcase_add_test(tc, a_tower_applied_twice_sums_its_gradients);
    tcase_add_test(tc, odd_convolutions_applied_twice_match_the_reference);
    tcase_add_test(tc, reuse_builds_nodes_without_parameters);
    tcase_add_test(tc, reuse_refusals);
    tcase_add_test(tc, a_step_moves_shared_weights_once);
    tcase_add_test(tc, checkpoints_hold_shared_parameters_once);
    tcase_add_test(tc, freezing_follows_the_first_application);
    tcase_add_test(tc, engines_running_one_level_give_its_gradients);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
