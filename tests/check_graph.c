/* The graph builder: shapes, names, parameters, published stages, bad
 * input refused without changing the graph, initialization statistics. */
#include "config.h"

#include <math.h>

#include <robusta/robusta.h>

#include "testutil.h"

static const float mean3[3] = {0.485f, 0.456f, 0.406f};
static const float std3[3] = {0.229f, 0.224f, 0.225f};

static rb_graph *g;
static rb_node *x;

static void setup(void)
{
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 3, 32, 30, mean3, std3, &x), RB_OK);
}

static void teardown(void)
{
    rb_graph_destroy(g);
    g = NULL;
}

static void assert_shape(const rb_node *n, int64_t c, int64_t h, int64_t w)
{
    int64_t nc, nh, nw;
    rb_node_shape(n, &nc, &nh, &nw);
    ck_assert_msg(nc == c && nh == h && nw == w, "%s is %lldx%lldx%lld, expected %lldx%lldx%lld",
                  rb_node_name(n), (long long)nc, (long long)nh, (long long)nw, (long long)c,
                  (long long)h, (long long)w);
}

START_TEST(shapes_follow_pytorch)
{
    rb_node *y, *p, *q;
    /* ResNet stem: 7x7/2 pad 3, then 3x3/2 pad 1 max-pool. 32x30 -> 16x15 -> 8x8 */
    ck_assert_int_eq(rb_graph_conv(g, "conv1", x, &(rb_conv_desc){.out_channels = 64, .kernel = {7, 7}, .stride = {2, 2}, .padding = {3, 3}}, &y), RB_OK);
    assert_shape(y, 64, 16, 15);
    ck_assert_int_eq(rb_graph_maxpool(g, y, &(rb_pool_desc){.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}, &p), RB_OK);
    assert_shape(p, 64, 8, 8);
    /* dilation 2, no padding: span 5 -> 8 - 5 + 1 = 4 */
    ck_assert_int_eq(rb_graph_conv(g, "dil", p, &(rb_conv_desc){.out_channels = 6, .kernel = {3, 3}, .dilation = {2, 2}}, &q), RB_OK);
    assert_shape(q, 6, 4, 4);
    /* grouped 1x3 kernel, stride (1, 2) */
    ck_assert_int_eq(rb_graph_conv(g, "grp", q, &(rb_conv_desc){.out_channels = 9, .kernel = {1, 3}, .stride = {1, 2}, .padding = {0, 1}, .groups = 3, .bias = true}, &q), RB_OK);
    assert_shape(q, 9, 4, 2);
    /* average pool with the default stride (= kernel) */
    ck_assert_int_eq(rb_graph_avgpool(g, p, &(rb_pool_desc){.kernel = {2, 2}}, &y), RB_OK);
    assert_shape(y, 64, 4, 4);
    ck_assert_int_eq(rb_graph_global_avgpool(g, y, &y), RB_OK);
    assert_shape(y, 64, 1, 1);
    ck_assert_int_eq(rb_graph_linear(g, "fc", y, 10, true, &y), RB_OK);
    assert_shape(y, 10, 1, 1);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, y, &y), RB_OK);
    assert_shape(y, 1, 1, 1);
    ck_assert_int_eq(rb_node_op(y), RB_OP_SOFTMAX_CE);
}
END_TEST

START_TEST(parameters_have_torchvision_names_and_shapes)
{
    rb_node *y;
    rb_param_info info;
    ck_assert_int_eq(rb_graph_conv(g, "layer1.0.conv1", x, &(rb_conv_desc){.out_channels = 8, .kernel = {3, 3}, .padding = {1, 1}}, &y), RB_OK);
    ck_assert_int_eq(rb_graph_batchnorm(g, "layer1.0.bn1", y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_linear(g, "fc", y, 5, true, &y), RB_OK);
    ck_assert_uint_eq(rb_graph_param_count(g), 7);
    ck_assert_int_eq(rb_graph_find_param(g, "layer1.0.conv1.weight", &info), RB_OK);
    ck_assert_int_eq(info.ndim, 4);
    ck_assert_int_eq(info.shape[0], 8);
    ck_assert_int_eq(info.shape[1], 3);
    ck_assert_int_eq(info.shape[2], 3);
    ck_assert_int_eq(info.numel, 8 * 3 * 9);
    ck_assert(info.trainable && info.grad != NULL);
    ck_assert_int_eq(rb_graph_find_param(g, "layer1.0.bn1.running_var", &info), RB_OK);
    ck_assert(!info.trainable && info.grad == NULL);
    ck_assert_float_eq(info.value[0], 1.0f);
    ck_assert_int_eq(rb_graph_find_param(g, "layer1.0.bn1.running_mean", &info), RB_OK);
    ck_assert_float_eq(info.value[7], 0.0f);
    ck_assert_int_eq(rb_graph_find_param(g, "fc.weight", &info), RB_OK);
    ck_assert_int_eq(info.shape[0], 5);
    ck_assert_int_eq(info.shape[1], 8);
    ck_assert_int_eq(rb_graph_find_param(g, "fc.wieght", &info), RB_ERR_NOT_FOUND);
    ck_assert_str_eq(rb_last_error(), "the graph has no parameter 'fc.wieght'; did you mean 'fc.weight'?");
    /* conv 8*3*9 + bn 8 + 8 + fc 5*8 + 5; running statistics do not count */
    ck_assert_int_eq(rb_graph_trainable_count(g), 216 + 16 + 45);
    /* MACs: conv 8x32x30 outputs x 27, fc 5x8 */
    ck_assert_int_eq(rb_graph_forward_macs(g), 8 * 32 * 30 * 27 + 40);
    /* per node: the same terms, nothing for the others */
    ck_assert_int_eq(rb_node_forward_macs(rb_graph_node(g, 1)), 8 * 32 * 30 * 27);
    ck_assert_int_eq(rb_node_forward_macs(y), 40);
    ck_assert_int_eq(rb_node_forward_macs(rb_graph_node(g, 0)), 0);
    ck_assert_int_eq(rb_node_forward_macs(rb_graph_node(g, 2)), 0);
    /* training: three passes each, but no backward-data into the image */
    ck_assert_int_eq(rb_graph_training_macs(g), 2 * 8 * 32 * 30 * 27 + 3 * 40);
}
END_TEST

START_TEST(names_are_generated_published_and_found)
{
    rb_node *y, *r1, *r2, *found;
    ck_assert_int_eq(rb_graph_relu(g, x, &r1), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, r1, &r2), RB_OK);
    ck_assert_str_eq(rb_node_name(r1), "relu_1");
    ck_assert_str_eq(rb_node_name(r2), "relu_2");
    ck_assert_str_eq(rb_node_name(x), "input");
    ck_assert_int_eq(rb_graph_publish(g, r2, RB_STAGE_STRIDE4), RB_OK);
    ck_assert_int_eq(rb_graph_find(g, "stage1", &found), RB_OK);
    ck_assert_ptr_eq(found, r2);
    ck_assert_int_eq(rb_graph_find(g, "relu_1", &found), RB_OK);
    ck_assert_ptr_eq(found, r1);
    ck_assert_int_eq(rb_graph_find(g, "stage2", &found), RB_ERR_NOT_FOUND);
    ck_assert_ptr_null(found);
    ck_assert_str_eq(rb_last_error(), "the graph has no node 'stage2'; did you mean 'stage1'?");
    ck_assert_int_eq(rb_graph_publish(g, r1, "stage1"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "publish 'stage1': the name is already taken");
    /* A user name that looks generated is still unique: the next relu skips it. */
    ck_assert_int_eq(rb_graph_conv(g, "relu_3", r2, &(rb_conv_desc){.out_channels = 2, .kernel = {1, 1}}, &y), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, y, &y), RB_OK);
    ck_assert_str_eq(rb_node_name(y), "relu_4");
    ck_assert_uint_eq(rb_graph_node_count(g), 5);
    ck_assert_ptr_eq(rb_graph_node(g, 1), r1);
    ck_assert_uint_eq(rb_node_index(r2), 2);
    ck_assert_ptr_eq(rb_node_input(r2, 0), r1);
    ck_assert_ptr_null(rb_node_input(r2, 1));
    ck_assert_str_eq(rb_op_str(RB_OP_GLOBAL_AVGPOOL), "global_avgpool");
}
END_TEST

/* A refused node: exact message, and the graph is unchanged. */
#define EXPECT_REFUSED(call, message)                                                           \
    do {                                                                                        \
        size_t nodes_ = rb_graph_node_count(g), params_ = rb_graph_param_count(g);              \
        ck_assert_int_eq((call), RB_ERR_INVALID_ARGUMENT);                                      \
        ck_assert_str_eq(rb_last_error(), (message));                                           \
        ck_assert_uint_eq(rb_graph_node_count(g), nodes_);                                      \
        ck_assert_uint_eq(rb_graph_param_count(g), params_);                                    \
    } while (0)

START_TEST(bad_nodes_are_refused_and_leave_the_graph_unchanged)
{
    rb_node *y, *z, *loss, *other_x;
    rb_graph *other;
    ck_assert_int_eq(rb_graph_conv(g, "conv1", x, &(rb_conv_desc){.out_channels = 4, .kernel = {3, 3}}, &y), RB_OK);
    EXPECT_REFUSED(rb_graph_conv(g, "conv1", y, &(rb_conv_desc){.out_channels = 4, .kernel = {1, 1}}, &z),
                   "conv 'conv1': the graph already has a node of that name");
    EXPECT_REFUSED(rb_graph_conv(g, "bad name", y, &(rb_conv_desc){.out_channels = 4, .kernel = {1, 1}}, &z),
                   "conv 'bad name': names are dotted paths of letters, digits, '_' and '-'");
    EXPECT_REFUSED(rb_graph_conv(g, "big", y, &(rb_conv_desc){.out_channels = 4, .kernel = {31, 3}}, &z),
                   "conv 'big': a 31x3 kernel (dilation 1x1, padding 0x0) does not fit the 30x28 output of 'conv1'");
    EXPECT_REFUSED(rb_graph_conv(g, "grp", y, &(rb_conv_desc){.out_channels = 6, .kernel = {1, 1}, .groups = 3}, &z),
                   "conv 'grp': 3 groups do not divide its 4 input channels (from 'conv1') and 6 output channels");
    EXPECT_REFUSED(rb_graph_conv(g, "neg", y, &(rb_conv_desc){.out_channels = 4, .kernel = {1, 1}, .padding = {-1, 0}}, &z),
                   "conv 'neg': out_channels, kernel, stride, dilation and groups must be positive and padding non-negative");
    EXPECT_REFUSED(rb_graph_conv(g, NULL, y, &(rb_conv_desc){.out_channels = 4, .kernel = {1, 1}}, &z),
                   "conv: a convolution needs a name for its parameters");
    EXPECT_REFUSED(rb_graph_maxpool(g, y, &(rb_pool_desc){.kernel = {2, 2}, .padding = {2, 0}}, &z),
                   "maxpool after 'conv1': padding 2x0 is more than half the 2x2 kernel");
    ck_assert_int_eq(rb_graph_global_avgpool(g, y, &z), RB_OK);
    EXPECT_REFUSED(rb_graph_add(g, y, z, &z),
                   "add: 'conv1' is 4x30x28 but 'global_avgpool_1' is 4x1x1; they must match");
    EXPECT_REFUSED(rb_graph_softmax_cross_entropy(g, y, &loss),
                   "softmax cross-entropy on 'conv1': it needs logits of K >= 2 classes (K x 1 x 1), but 'conv1' is 4x30x28; add a global pool and a linear layer first");
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, z, &loss), RB_OK);
    EXPECT_REFUSED(rb_graph_relu(g, loss, &z),
                   "relu node: its input 'softmax_cross_entropy_1' is a loss; nothing may follow a loss");
    EXPECT_REFUSED(rb_graph_linear(g, "fc", z, 0, true, &z), "linear 'fc': 0 output features; need at least 1");
    EXPECT_REFUSED(rb_graph_relu(g, NULL, &z), "relu node: input 1 is NULL");
    EXPECT_REFUSED(rb_graph_input(g, 3, 8, 8, NULL, NULL, &z), "input: the graph already has one ('input')");

    ck_assert_int_eq(rb_graph_create(&other), RB_OK);
    EXPECT_REFUSED(rb_graph_relu(other, x, &z), "relu node: input 1 belongs to another graph");
    ck_assert_int_eq(rb_graph_relu(other, NULL, &z), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_graph_input(other, 3, 0, 8, NULL, NULL, &other_x), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "input: shape 3x0x8 has an empty dimension");
    ck_assert_int_eq(rb_graph_input(other, 2, 8, 8, (const float[]){0, 0}, (const float[]){1, 0}, &other_x), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "input: channel 1 has mean 0 and std 0; std must be positive and both finite");
    ck_assert_int_eq(rb_graph_input(other, 2, 8, 8, (const float[]){0, 0}, NULL, &other_x), RB_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq(rb_graph_node_count(other), 0);
    rb_graph_destroy(other);
}
END_TEST

START_TEST(nodes_need_an_input_first)
{
    rb_graph *empty;
    rb_node *y;
    ck_assert_int_eq(rb_graph_create(&empty), RB_OK);
    ck_assert_int_eq(rb_graph_relu(empty, x, &y), RB_ERR_INVALID_ARGUMENT);
    rb_graph_destroy(empty);
    rb_graph_destroy(NULL);
}
END_TEST

START_TEST(freezing_marks_the_backbone)
{
    rb_node *a, *b;
    rb_param_info info;
    ck_assert_int_eq(rb_graph_conv(g, "backbone.conv", x, &(rb_conv_desc){.out_channels = 4, .kernel = {3, 3}}, &a), RB_OK);
    ck_assert_int_eq(rb_graph_batchnorm(g, "backbone.bn", a, &a), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, a, &b), RB_OK);
    ck_assert_int_eq(rb_graph_linear(g, "head", b, 3, true, &b), RB_OK);
    ck_assert_int_eq(rb_graph_freeze_through(g, a), RB_OK);
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        ck_assert_int_eq(rb_graph_param(g, i, &info), RB_OK);
        ck_assert_msg(info.frozen == (strncmp(info.name, "backbone.", 9) == 0), "%s", info.name);
    }
    ck_assert_int_eq(rb_graph_freeze_through(g, NULL), RB_OK);
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        ck_assert_int_eq(rb_graph_param(g, i, &info), RB_OK);
        ck_assert(!info.frozen);
    }
    ck_assert_int_eq(rb_graph_param(g, 99, &info), RB_ERR_NOT_FOUND);
}
END_TEST

/* Sample mean and standard deviation of a parameter's values. */
static void moments(const rb_param_info *p, double *mean, double *sd)
{
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < p->numel; i++) {
        s += p->value[i];
        s2 += (double)p->value[i] * p->value[i];
    }
    *mean = s / (double)p->numel;
    *sd = sqrt(s2 / (double)p->numel - *mean * *mean);
}

START_TEST(initialization_matches_torchvision_and_repeats)
{
    rb_node *y;
    rb_param_info w, fc, fcb, bnw;
    double mean, sd, lo = 1, hi = -1;
    float first;
    ck_assert_int_eq(rb_graph_conv(g, "conv", x, &(rb_conv_desc){.out_channels = 64, .kernel = {3, 3}, .padding = {1, 1}}, &y), RB_OK);
    ck_assert_int_eq(rb_graph_batchnorm(g, "bn", y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_linear(g, "fc", y, 1000, true, &y), RB_OK);
    ck_assert_int_eq(rb_graph_init_params(g, 7), RB_OK);
    ck_assert_int_eq(rb_graph_find_param(g, "conv.weight", &w), RB_OK);
    ck_assert_int_eq(rb_graph_find_param(g, "fc.weight", &fc), RB_OK);
    ck_assert_int_eq(rb_graph_find_param(g, "fc.bias", &fcb), RB_OK);
    ck_assert_int_eq(rb_graph_find_param(g, "bn.weight", &bnw), RB_OK);
    /* Kaiming normal, fan_out = 64 * 9: sd = sqrt(2/576) = 0.0589. 1728 samples:
     * the sample sd is within 3 standard errors (sd / sqrt(2n) = 0.001) */
    moments(&w, &mean, &sd);
    ck_assert_msg(fabs(sd - sqrt(2.0 / 576)) < 0.003, "conv sd %g", sd);
    ck_assert_msg(fabs(mean) < 3 * sqrt(2.0 / 576) / sqrt(1728.0), "conv mean %g", mean);
    /* Linear: uniform in +-1/sqrt(64) = 0.125; 64000 samples reach both ends. */
    for (int64_t i = 0; i < fc.numel; i++) {
        lo = fc.value[i] < lo ? fc.value[i] : lo;
        hi = fc.value[i] > hi ? fc.value[i] : hi;
    }
    ck_assert(lo >= -0.125 && hi <= 0.125 && lo < -0.124 && hi > 0.124);
    for (int64_t i = 0; i < fcb.numel; i++)
        ck_assert(fabs(fcb.value[i]) <= 0.125);
    for (int64_t i = 0; i < bnw.numel; i++)
        ck_assert_float_eq(bnw.value[i], 1.0f);
    /* Same seed, same values; another seed, others. */
    first = w.value[0];
    ck_assert_int_eq(rb_graph_init_params(g, 7), RB_OK);
    ck_assert_float_eq(w.value[0], first);
    ck_assert_int_eq(rb_graph_init_params(g, 8), RB_OK);
    ck_assert_float_ne(w.value[0], first);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("graph");
    TCase *tc = tcase_create("graph");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, shapes_follow_pytorch);
    tcase_add_test(tc, parameters_have_torchvision_names_and_shapes);
    tcase_add_test(tc, names_are_generated_published_and_found);
    tcase_add_test(tc, bad_nodes_are_refused_and_leave_the_graph_unchanged);
    tcase_add_test(tc, nodes_need_an_input_first);
    tcase_add_test(tc, freezing_marks_the_backbone);
    tcase_add_test(tc, initialization_matches_torchvision_and_repeats);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
