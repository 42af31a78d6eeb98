/* The ops dense heads are built from (upsample, concat, sigmoid, mul,
 * per-pixel cross-entropy, sigmoid focal loss, target nodes, host ops):
 * values by hand, the double reference's gradients against central finite
 * differences, the oneDNN engine against the reference in both backward
 * modes, rb_host_op_check, and every refusal the issue names. PyTorch
 * parity is tests/torch-ops-parity.sh. */
#include "config.h"

#include <math.h>

#include <robusta/robusta.h>

#include "tensor/vmath.h"
#include "testgraphs.h"
#include "testutil.h"

/* ------------------------------------------------------------ host ops used below */

/* One-hot targets from the batch's masks: output k x H x W is 1 where the
 * mask holds k (ignored pixels: all 0). Reads its input only for its
 * shape, and gives it no gradient. */
static rb_status one_hot_forward(const rb_host_io *io, void *user)
{
    int64_t k = io->shapes[0][0], h = io->shapes[0][1], w = io->shapes[0][2];
    (void)user;
    if (io->targets->masks == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "one-hot: the batch has no masks");
    for (int64_t b = 0; b < io->batch; b++)
        for (int64_t c = 0; c < k; c++)
            for (int64_t p = 0; p < h * w; p++)
                io->output[(b * k + c) * h * w + p] = io->targets->masks[b * h * w + p] == c ? 1.0f : 0.0f;
    return RB_OK;
}

static rb_status no_gradient(const rb_host_io *io, void *user)
{
    (void)io;
    (void)user;
    return RB_OK;
}

/* No output shape: the input's (K x H x W). */
static const rb_host_op one_hot_op = {.name = "one-hot", .forward = one_hot_forward, .backward = no_gradient};

/* A box-regression loss: for each box of image b, the 4 channels at the
 * pixel under the box's centre predict (x1/W, y1/H, x2/W, y2/H); the loss
 * is half the squared error, summed over the image's boxes. Its state
 * holds each box's pixel, kept from forward to backward. */
static void box_cell(const rb_box *box, int64_t h, int64_t w, int64_t *y, int64_t *x)
{
    *y = (int64_t)floor(0.5 * (box->y1 + box->y2));
    *x = (int64_t)floor(0.5 * (box->x1 + box->x2));
    *y = *y < 0 ? 0 : *y >= h ? h - 1 : *y;
    *x = *x < 0 ? 0 : *x >= w ? w - 1 : *x;
}

static void box_goal(const rb_box *box, int64_t h, int64_t w, double goal[4])
{
    goal[0] = box->x1 / (double)w;
    goal[1] = box->y1 / (double)h;
    goal[2] = box->x2 / (double)w;
    goal[3] = box->y2 / (double)h;
}

static rb_status box_loss_forward(const rb_host_io *io, void *user)
{
    int64_t h = io->shapes[0][1], w = io->shapes[0][2];
    const rb_targets *t = io->targets;
    (void)user;
    if (io->shapes[0][0] != 4)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "box loss: its input needs 4 channels");
    if (t->box_offsets == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "box loss: the batch has no boxes");
    for (int64_t b = 0; b < io->batch; b++) {
        double sum = 0;
        for (int64_t i = t->box_offsets[b]; i < t->box_offsets[b + 1]; i++) {
            int64_t y, x;
            double goal[4];
            box_cell(&t->boxes[i], h, w, &y, &x);
            box_goal(&t->boxes[i], h, w, goal);
            for (int c = 0; c < 4; c++) {
                double d = io->inputs[0][((b * 4 + c) * h + y) * w + x] - goal[c];
                sum += 0.5 * d * d;
            }
        }
        io->output[b] = (float)sum;
    }
    return RB_OK;
}

static rb_status box_loss_backward(const rb_host_io *io, void *user)
{
    int64_t h = io->shapes[0][1], w = io->shapes[0][2];
    const rb_targets *t = io->targets;
    (void)user;
    if (io->input_grads[0] == NULL)
        return RB_OK;
    for (int64_t b = 0; b < io->batch; b++)
        for (int64_t i = t->box_offsets[b]; i < t->box_offsets[b + 1]; i++) {
            int64_t y, x;
            double goal[4];
            box_cell(&t->boxes[i], h, w, &y, &x);
            box_goal(&t->boxes[i], h, w, goal);
            for (int c = 0; c < 4; c++) {
                int64_t at = ((b * 4 + c) * h + y) * w + x;
                io->input_grads[0][at] += (float)(io->output_grad[b] * (io->inputs[0][at] - goal[c]));
            }
        }
    return RB_OK;
}

static const rb_host_op box_loss_op = {
    .name = "box regression", .loss = true, .forward = box_loss_forward, .backward = box_loss_backward};

/* ------------------------------------------------------------ the graphs */

#define BATCH 2
#define CLASSES 4

typedef struct problem {
    rb_graph *g;
    rb_node *watch; /* the new op under test: its value and gradient are compared */
    int64_t c, h, w;
    const char *what;
} problem;

static rb_node *conv(rb_graph *g, const char *name, rb_node *in, int64_t out, int64_t k, int64_t stride)
{
    rb_conv_desc d = {.out_channels = out, .kernel = {k, k}, .stride = {stride, stride}, .padding = {k / 2, k / 2},
                      .bias = true};
    rb_node *n;
    ck_assert_msg(rb_graph_conv(g, name, in, &d, &n) == RB_OK, "%s", rb_last_error());
    return n;
}

static rb_node *pixel_loss(rb_graph *g, rb_node *logits)
{
    rb_node *masks, *loss;
    ck_assert_int_eq(rb_graph_target(g, RB_TARGET_MASKS, &masks), RB_OK);
    ck_assert_msg(rb_graph_pixel_cross_entropy(g, logits, masks, RB_IGNORE_LABEL, &loss) == RB_OK, "%s",
                  rb_last_error());
    return loss;
}

#define N_PROBLEMS 13
static const char *const problem_names[N_PROBLEMS] = {
    "bilinear x2",          "bilinear to 7x9",       "nearest x2",          "nearest to 8x10",
    "concat(a, b, a)",      "sigmoid gate (mul)",    "focal, torchvision defaults",
    "focal, no alpha, gamma 0, fixed normalizer", "box regression + focal", "pixel CE alone",
    "bilinear x2, 32 channels (blocked)", "nearest x2, 32 channels (blocked)", "concat of blocked inputs"};

/* Builds problem `kind`: a small conv net around the op, ending in losses
 * that read masks and boxes. */
static void problem_make(problem *p, int kind)
{
    rb_graph *g;
    rb_node *in, *a, *b, *x = NULL, *loss;
    memset(p, 0, sizeof *p);
    p->what = problem_names[kind];
    p->c = 3;
    p->h = kind == 1 ? 7 : 8;
    p->w = kind == 1 ? 9 : 10;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    p->g = g;
    ck_assert_int_eq(rb_graph_input(g, p->c, p->h, p->w, mean5, std5, &in), RB_OK);
    switch (kind) {
    case 0: case 1: case 2: case 3: {
        rb_upsample_desc d = {.mode = kind < 2 ? RB_UPSAMPLE_BILINEAR : RB_UPSAMPLE_NEAREST};
        if (kind % 2 == 0)
            d.factor = 2;
        else {
            d.height = p->h;
            d.width = p->w;
        }
        a = conv(g, "down", in, CLASSES, 3, 2); /* 4x5, or 4x5 from 7x9 */
        ck_assert_msg(rb_graph_upsample(g, a, &d, &x) == RB_OK, "%s", rb_last_error());
        loss = pixel_loss(g, x);
        break;
    }
    case 4: {
        rb_node *parts[3];
        a = conv(g, "a", in, 2, 3, 1);
        ck_assert_int_eq(rb_graph_relu(g, conv(g, "b", in, 3, 1, 1), &b), RB_OK);
        parts[0] = a;
        parts[1] = b;
        parts[2] = a;
        ck_assert_msg(rb_graph_concat(g, parts, 3, &x) == RB_OK, "%s", rb_last_error());
        loss = pixel_loss(g, conv(g, "mix", x, CLASSES, 1, 1));
        break;
    }
    case 5: {
        rb_node *gate;
        a = conv(g, "a", in, CLASSES, 3, 1);
        ck_assert_int_eq(rb_graph_sigmoid(g, conv(g, "b", in, CLASSES, 1, 1), &gate), RB_OK);
        ck_assert_int_eq(rb_graph_mul(g, a, gate, &x), RB_OK);
        loss = pixel_loss(g, x);
        break;
    }
    case 6: case 7: case 8: {
        rb_focal_desc d = RB_FOCAL_DEFAULTS;
        rb_node *onehot;
        if (kind == 7) {
            d.alpha = -1;
            d.gamma = 0;
            d.normalizer = 3;
        }
        a = conv(g, "cls", in, CLASSES, 3, 1);
        ck_assert_int_eq(rb_graph_host_op(g, "one-hot", &one_hot_op, &a, 1, &onehot), RB_OK);
        ck_assert_msg(rb_graph_sigmoid_focal_loss(g, a, onehot, &d, &x) == RB_OK, "%s", rb_last_error());
        if (kind == 8) {
            b = conv(g, "reg", in, 4, 3, 1);
            ck_assert_int_eq(rb_graph_host_op(g, "boxes", &box_loss_op, &b, 1, &loss), RB_OK);
            p->watch = loss;
            goto done;
        }
        loss = x;
        break;
    }
    case 10: case 11: {
        /* 32 channels: oneDNN's convolutions give a channel-blocked layout,
         * which upsample reads and writes as it is */
        rb_upsample_desc d = {.mode = kind == 10 ? RB_UPSAMPLE_BILINEAR : RB_UPSAMPLE_NEAREST, .factor = 2};
        a = conv(g, "down", in, 32, 3, 2);
        ck_assert_msg(rb_graph_upsample(g, a, &d, &x) == RB_OK, "%s", rb_last_error());
        loss = pixel_loss(g, conv(g, "classify", x, CLASSES, 1, 1));
        break;
    }
    case 12: {
        /* whole channel blocks: the output keeps the inputs' blocked layout */
        rb_node *parts[3];
        parts[0] = a = conv(g, "a", in, 16, 3, 1);
        parts[1] = conv(g, "b", in, 32, 1, 1);
        parts[2] = a;
        ck_assert_msg(rb_graph_concat(g, parts, 3, &x) == RB_OK, "%s", rb_last_error());
        loss = pixel_loss(g, conv(g, "mix", x, CLASSES, 1, 1));
        break;
    }
    default:
        x = conv(g, "logits", in, CLASSES, 3, 1);
        loss = pixel_loss(g, x);
        break;
    }
    (void)loss;
    p->watch = x;
done:
    randomize(g, 5 + (uint64_t)kind);
}

/* The batch's targets: masks with every class and some ignored pixels,
 * boxes of several sizes (none in one image). */
typedef struct targets_buf {
    int32_t masks[BATCH * 8 * 10];
    rb_box boxes[4];
    int64_t offsets[BATCH + 1];
    int64_t labels[BATCH];
    rb_targets t;
} targets_buf;

static void targets_make(targets_buf *tb, int64_t h, int64_t w)
{
    for (int64_t i = 0; i < BATCH * h * w; i++)
        tb->masks[i] = i % 7 == 3 ? RB_IGNORE_LABEL : (int32_t)((i * 5 + i / 3) % CLASSES);
    tb->boxes[0] = (rb_box){1.0f, 0.5f, 4.0f, 3.5f, 2};
    tb->boxes[1] = (rb_box){0.0f, 0.0f, (float)w, (float)h, 0};
    tb->boxes[2] = (rb_box){5.0f, 4.0f, 6.5f, 6.0f, 3};
    tb->offsets[0] = 0;
    tb->offsets[1] = 3;
    tb->offsets[2] = 3; /* the second image has no boxes */
    tb->labels[0] = 1;
    tb->labels[1] = 3;
    tb->t = (rb_targets){.count = BATCH, .labels = tb->labels, .masks = tb->masks, .mask_height = h,
                         .mask_width = w, .boxes = tb->boxes, .box_offsets = tb->offsets};
}

static void images_make(int64_t n, double *dx, float *fx)
{
    rb_rng r;
    rb_rng_init(&r, 21, RB_RNG_STREAM(RB_RNG_USER, 4), 0);
    for (int64_t i = 0; i < n; i++) {
        dx[i] = rb_rng_uniform(&r);
        if (fx != NULL)
            fx[i] = (float)dx[i];
    }
}

static int64_t numel(const rb_node *n)
{
    int64_t c, h, w;
    rb_node_shape(n, &c, &h, &w);
    return c * h * w;
}

/* ------------------------------------------------------------ values by hand */

START_TEST(upsample_values_by_hand)
{
    /* A 1x2x2 map [[0, 1], [2, 3]] made 4x4. Bilinear, align_corners=False:
     * output pixel i maps to (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25,
     * clamped to [0, 1]: weights 0, 0.25, 0.75, 1 on the second pixel. Row 0
     * is [0, 0.25, 0.75, 1]; row 1 adds 0.25 x 2 = 0.5; row 2 adds 1.5;
     * row 3 adds 2. Nearest repeats each pixel 2x2. */
    static const double want_bilinear[16] = {0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5,
                                             1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3};
    static const double want_nearest[16] = {0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3};
    static const float zero[1] = {0}, one[1] = {1};
    for (int mode = 0; mode < 2; mode++) {
        rb_graph *g;
        rb_node *in, *up;
        rb_reference *ref;
        rb_engine *e;
        rb_upsample_desc d = {.mode = mode ? RB_UPSAMPLE_NEAREST : RB_UPSAMPLE_BILINEAR, .factor = 2};
        double x[4] = {0, 1, 2, 3};
        float fx[4] = {0, 1, 2, 3}, fy[16];
        const double *want = mode ? want_nearest : want_bilinear;
        ck_assert_int_eq(rb_graph_create(&g), RB_OK);
        ck_assert_int_eq(rb_graph_input(g, 1, 2, 2, zero, one, &in), RB_OK);
        ck_assert_int_eq(rb_graph_upsample(g, in, &d, &up), RB_OK);
        ck_assert_int_eq(rb_reference_create(&ref, g, 1), RB_OK);
        ck_assert_int_eq(rb_reference_forward(ref, x, NULL, false), RB_OK);
        ck_assert_int_eq(rb_engine_create(&e, g, 1, NULL), RB_OK);
        ck_assert_msg(rb_engine_forward(e, fx, 1, NULL, false) == RB_OK, "%s", rb_last_error());
        ck_assert_int_eq(rb_engine_read(e, up, fy), RB_OK);
        for (int i = 0; i < 16; i++) {
            /* exact: every weight is a multiple of 1/4 */
            ck_assert_msg(rb_reference_value(ref, up)[i] == want[i], "mode %d [%d]: reference %g, want %g", mode, i,
                          rb_reference_value(ref, up)[i], want[i]);
            ck_assert_msg(fy[i] == (float)want[i], "mode %d [%d]: engine %g, want %g", mode, i, fy[i], want[i]);
        }
        rb_engine_destroy(e);
        rb_reference_destroy(ref);
        rb_graph_destroy(g);
    }
}
END_TEST

START_TEST(losses_by_hand)
{
    /* Two channels, 1x2 pixels: logits (0, 0) and (ln 3, 0). Pixel CE with
     * masks {0, 1}: -ln(1/2) and -ln(1/4) (p1 = 1 / (3 + 1)), mean
     * (ln 2 + ln 4) / 2 = 1.5 ln 2. With pixel 1 ignored: ln 2. All
     * ignored: 0. Focal on the same logits against one-hot targets, alpha
     * 0.25, gamma 2, normalizer = positives (2): for x = 0, t = 1: p = 1/2,
     * 0.25 x ln 2 x 1/4; x = 0, t = 0: 0.75 x ln 2 x 1/4 ... summed below. */
    static const float zero[2] = {0, 0}, one[2] = {1, 1};
    rb_graph *g;
    rb_node *in, *masks, *ce, *onehot, *focal;
    rb_reference *ref;
    rb_engine *e;
    rb_focal_desc fd = RB_FOCAL_DEFAULTS;
    double x[4] = {0, log(3.0), 0, 0}; /* channel 0: (0, ln 3); channel 1: (0, 0) */
    float fx[4] = {0, (float)log(3.0), 0, 0};
    int32_t mask[2] = {0, 1};
    rb_targets t = {.count = 1, .masks = mask, .mask_height = 1, .mask_width = 2};
    double want_ce, want_focal = 0;
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 2, 1, 2, zero, one, &in), RB_OK);
    ck_assert_int_eq(rb_graph_target(g, RB_TARGET_MASKS, &masks), RB_OK);
    ck_assert_int_eq(rb_graph_pixel_cross_entropy(g, in, masks, RB_IGNORE_LABEL, &ce), RB_OK);
    ck_assert_int_eq(rb_graph_host_op(g, "one-hot", &one_hot_op, &in, 1, &onehot), RB_OK);
    ck_assert_int_eq(rb_graph_sigmoid_focal_loss(g, in, onehot, &fd, &focal), RB_OK);
    /* pixel 0: channel 0 logit 0 vs channel 1 logit 0: p(0) = 1/2.
     * pixel 1: channel 0 logit ln 3, channel 1 logit 0: p(1) = 1/4. */
    want_ce = (log(2.0) + log(4.0)) / 2;
    for (int i = 0; i < 4; i++) {
        int c = i / 2, px = i % 2;
        double tt = mask[px] == c ? 1 : 0, p = 1 / (1 + exp(-x[i]));
        double ce_i = -(tt * log(p) + (1 - tt) * log(1 - p)), pt = p * tt + (1 - p) * (1 - tt);
        want_focal += (0.25 * tt + 0.75 * (1 - tt)) * ce_i * (1 - pt) * (1 - pt);
    }
    want_focal /= 2; /* two positives */
    ck_assert_int_eq(rb_reference_create(&ref, g, 1), RB_OK);
    ck_assert_int_eq(rb_reference_forward_targets(ref, x, &t, false), RB_OK);
    ck_assert_msg(fabs(rb_reference_value(ref, ce)[0] - want_ce) < 1e-15, "pixel CE %.17g, want %.17g",
                  rb_reference_value(ref, ce)[0], want_ce);
    ck_assert_msg(fabs(rb_reference_value(ref, focal)[0] - want_focal) < 1e-15, "focal %.17g, want %.17g",
                  rb_reference_value(ref, focal)[0], want_focal);
    ck_assert_msg(fabs(rb_reference_loss(ref) - want_ce - want_focal) < 1e-15, "sum of losses %.17g",
                  rb_reference_loss(ref));
    ck_assert_int_eq(rb_engine_create(&e, g, 1, NULL), RB_OK);
    ck_assert_msg(rb_engine_forward_targets(e, fx, 1, &t, false) == RB_OK, "%s", rb_last_error());
    /* float: a few ulps of values near 1 */
    ck_assert_msg(fabs(rb_engine_mean_loss(e) - want_ce - want_focal) < 1e-6, "engine loss %.9g, want %.9g",
                  rb_engine_mean_loss(e), want_ce + want_focal);

    /* One pixel ignored: CE of the other alone; all ignored: 0, gradient 0. */
    mask[1] = RB_IGNORE_LABEL;
    ck_assert_int_eq(rb_reference_forward_targets(ref, x, &t, false), RB_OK);
    ck_assert_msg(fabs(rb_reference_value(ref, ce)[0] - log(2.0)) < 1e-15, "one ignored: %.17g",
                  rb_reference_value(ref, ce)[0]);
    mask[0] = RB_IGNORE_LABEL;
    ck_assert_int_eq(rb_reference_forward_targets(ref, x, &t, false), RB_OK);
    ck_assert_msg(rb_reference_value(ref, ce)[0] == 0.0, "all ignored: %g", rb_reference_value(ref, ce)[0]);
    ck_assert_msg(rb_engine_forward_targets(e, fx, 1, &t, false) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_engine_read(e, ce, fx), RB_OK);
    ck_assert_msg(fx[0] == 0.0f, "engine, all ignored: %g", fx[0]);
    rb_engine_destroy(e);
    rb_reference_destroy(ref);
    rb_graph_destroy(g);
}
END_TEST

/* ------------------------------------------------------------ vectorizable math */

/* tensor/vmath.h against double precision: relative error within 2 ulp
 * (2^-24 each) for exp and 4 for log1p, as its header says (measured 1.7
 * and 2.9), over the range at a million points; the documented clamps;
 * NaN kept. A wrong coefficient or range reduction is off by far
 * more than that (a missing Taylor term: 1e-5 and worse). */
START_TEST(vector_math_is_accurate)
{
    const double ulp = 5.96e-8;
    double worst_exp = 0, worst_log = 0;
    for (int i = 0; i <= 1000000; i++) {
        float x = -87.35f + (float)i * (2 * 87.35f / 1000000), e = (float)i / 1000000;
        double want = exp((double)x), got = rb_vexpf(x), err = fabs(got - want) / want;
        worst_exp = err > worst_exp ? err : worst_exp;
        want = log1p((double)e);
        got = rb_vlog1pf_unit(e);
        err = want > 0 ? fabs(got - want) / want : fabs(got);
        worst_log = err > worst_log ? err : worst_log;
    }
    ck_assert_msg(worst_exp <= 2 * ulp, "rb_vexpf: worst relative error %.3g (%.2f ulp)", worst_exp, worst_exp / ulp);
    ck_assert_msg(worst_log <= 4 * ulp, "rb_vlog1pf_unit: worst relative error %.3g (%.2f ulp)", worst_log,
                  worst_log / ulp);
    ck_assert(rb_vexpf(0.0f) == 1.0f && rb_vlog1pf_unit(0.0f) == 0.0f);
    ck_assert_msg(fabs(rb_vexpf(-1000.0f) / exp(-87.35) - 1) < 1e-5, "clamped below: %g", rb_vexpf(-1000.0f));
    ck_assert_msg(fabs(rb_vexpf(1000.0f) / exp(87.35) - 1) < 1e-5, "clamped above: %g", rb_vexpf(1000.0f));
    ck_assert_msg(rb_vexpf(-INFINITY) > 0 && rb_vexpf(-INFINITY) < 1.2e-38, "exp(-inf): %g", rb_vexpf(-INFINITY));
    ck_assert(isnan(rb_vexpf(NAN)));
    ck_assert(rb_vpositive(0.0f) && rb_vpositive(2.5f) && !rb_vpositive(-1e-30f) && !rb_vpositive(-INFINITY));
}
END_TEST

/* ------------------------------------------------------------ reference against finite differences */

/* As in check_reference.c: central differences with h = 1e-6 on doubles
 * are accurate to ~1e-10 here; a wrong term is O(0.01). Nearest and the
 * one-hot targets are piecewise constant in the input, so no difference
 * crosses a kink. */
#define FD_STEP 1e-6
#define FD_TOL(analytic) (1e-6 + 1e-6 * fabs(analytic))
/* The box-regression host op computes in float (as host ops do): its
 * output carries rounding of ~6e-8 x |loss| (loss < 10 here), which a step
 * of 1e-6 would amplify to 0.3. Its loss is quadratic, so a step of 1e-3
 * costs no truncation error, and rounding then adds < 3e-4: 1e-3 absolute
 * plus relative still catches a wrong factor (errors O(0.1) and more). */
#define FD_STEP_FLOAT_HOST 1e-3
#define FD_TOL_FLOAT_HOST(analytic) (1e-3 + 1e-3 * fabs(analytic))

static double ref_objective(rb_reference *ref, const double *x, const rb_targets *t, bool training)
{
    ck_assert_msg(rb_reference_forward_targets(ref, x, t, training) == RB_OK, "%s", rb_last_error());
    return rb_reference_loss(ref);
}

START_TEST(reference_matches_finite_differences)
{
    problem p;
    targets_buf tb;
    rb_reference *ref;
    int64_t n_in;
    double *x, *grad, **pgs;
    const bool float_host = _i == 8; /* the box-regression host op */
    const double step = float_host ? FD_STEP_FLOAT_HOST : FD_STEP;
    problem_make(&p, _i);
    targets_make(&tb, p.h, p.w);
    n_in = BATCH * p.c * p.h * p.w;
    x = malloc((size_t)n_in * sizeof *x);
    grad = malloc((size_t)n_in * sizeof *grad);
    images_make(n_in, x, NULL);
    ck_assert_int_eq(rb_reference_create(&ref, p.g, BATCH), RB_OK);
    for (int mode = 0; mode < 2; mode++) { /* 0: weights and data (training); 1: data only (inference) */
        bool weights = mode == 0;
        size_t np = rb_graph_param_count(p.g);
        ref_objective(ref, x, &tb.t, weights);
        ck_assert_msg(isfinite(rb_reference_loss(ref)) && rb_reference_loss(ref) > 0, "%s: loss %g", p.what,
                      rb_reference_loss(ref));
        ck_assert_msg(rb_reference_backward(ref, weights, true) == RB_OK, "%s", rb_last_error());
        memcpy(grad, rb_reference_input_grad(ref), (size_t)n_in * sizeof *grad);
        for (int64_t k = 0; k < n_in; k++) {
            double keep = x[k], up, down, fd;
            x[k] = keep + step;
            up = ref_objective(ref, x, &tb.t, weights);
            x[k] = keep - step;
            down = ref_objective(ref, x, &tb.t, weights);
            x[k] = keep;
            fd = (up - down) / (2 * step);
            ck_assert_msg(fabs(fd - grad[k]) <= (float_host ? FD_TOL_FLOAT_HOST(grad[k]) : FD_TOL(grad[k])),
                          "%s, %s: d/d image[%lld]: backward %.12g, finite differences %.12g", p.what,
                          weights ? "training" : "inference", (long long)k, grad[k], fd);
        }
        if (!weights)
            continue;
        ref_objective(ref, x, &tb.t, true);
        ck_assert_int_eq(rb_reference_backward(ref, true, false), RB_OK);
        /* copied first: every forward below drops the gradients */
        pgs = calloc(np, sizeof *pgs);
        for (size_t i = 0; i < np; i++) {
            rb_param_info info;
            ck_assert_int_eq(rb_graph_param(p.g, i, &info), RB_OK);
            ck_assert_msg(rb_reference_param_grad(ref, i) != NULL, "%s: no gradient for %s", p.what, info.name);
            pgs[i] = malloc((size_t)info.numel * sizeof **pgs);
            memcpy(pgs[i], rb_reference_param_grad(ref, i), (size_t)info.numel * sizeof **pgs);
        }
        for (size_t i = 0; i < np; i++) {
            rb_param_info info;
            const double *pg = pgs[i];
            ck_assert_int_eq(rb_graph_param(p.g, i, &info), RB_OK);
            for (int64_t k = 0; k < info.numel; k += info.numel > 16 ? info.numel / 16 : 1) {
                float keep = info.value[k], hi = (float)(keep + step), lo = (float)(keep - step);
                double up, down, fd;
                info.value[k] = hi;
                up = ref_objective(ref, x, &tb.t, true);
                info.value[k] = lo;
                down = ref_objective(ref, x, &tb.t, true);
                info.value[k] = keep;
                fd = (up - down) / ((double)hi - (double)lo);
                ck_assert_msg(fabs(fd - pg[k]) <= (float_host ? FD_TOL_FLOAT_HOST(pg[k]) : FD_TOL(pg[k])), "%s: d/d %s[%lld]: backward %.12g, finite differences %.12g",
                              p.what, info.name, (long long)k, pg[k], fd);
            }
            free(pgs[i]);
        }
        free(pgs);
    }
    rb_reference_destroy(ref);
    rb_graph_destroy(p.g);
    free(x);
    free(grad);
}
END_TEST

/* ------------------------------------------------------------ engine against the reference */

/* As in check_engine.c: fp32 against double, 1e-4 of the largest magnitude
 * (at least 1) leaves room for fp32 sums over a few hundred terms and is
 * far below the O(0.1) of a wrong term. */
#define TOL 1e-4

static void compare(const char *what, const char *name, const float *got, const double *want, int64_t n)
{
    double scale = 1, worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++)
        scale = fabs(want[i]) > scale ? fabs(want[i]) : scale;
    for (int64_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= worst)) {
            worst = fabs(got[i] - want[i]);
            at = i;
        }
    ck_assert_msg(worst <= TOL * scale, "%s: %s[%lld]: engine %.9g, reference %.9g", what, name, (long long)at,
                  got[at], want[at]);
}

START_TEST(engine_matches_the_reference)
{
    problem p;
    targets_buf tb;
    rb_reference *ref;
    rb_engine *e;
    int64_t n_in, n_watch;
    double *dx;
    float *fx, *fgrad, *fwatch;
    size_t np;
    char what[160];
    problem_make(&p, _i);
    targets_make(&tb, p.h, p.w);
    n_in = BATCH * p.c * p.h * p.w;
    n_watch = BATCH * numel(p.watch);
    np = rb_graph_param_count(p.g);
    dx = malloc((size_t)n_in * sizeof *dx);
    fx = malloc((size_t)n_in * sizeof *fx);
    fgrad = malloc((size_t)n_in * sizeof *fgrad);
    fwatch = malloc((size_t)n_watch * sizeof *fwatch);
    images_make(n_in, dx, fx);
    ck_assert_int_eq(rb_reference_create(&ref, p.g, BATCH), RB_OK);
    /* Engine 0 keeps every value readable (the watched op's included) and
     * runs both backward modes; engine 1 is an inference engine
     * (data_grads_only), as attacks and evaluation plan them. */
    for (int mode = 0; mode < 3; mode++) {
        bool weights = mode == 0;
        rb_engine_options options = {.keep_intermediates = mode < 2, .data_grads_only = mode == 2};
        if (mode != 1) {
            rb_engine_destroy(mode ? e : NULL);
            ck_assert_msg(rb_engine_create(&e, p.g, BATCH, &options) == RB_OK, "%s: %s", p.what, rb_last_error());
        }
        snprintf(what, sizeof what, "%s, %s", p.what,
                 mode == 0 ? "weights and data" : mode == 1 ? "data only" : "inference engine");
        ck_assert_msg(rb_engine_forward_targets(e, fx, BATCH, &tb.t, weights) == RB_OK, "%s: %s", what,
                      rb_last_error());
        ck_assert_msg(rb_engine_backward(e, weights, true) == RB_OK, "%s: %s", what, rb_last_error());
        ck_assert_int_eq(rb_engine_input_grad(e, fgrad), RB_OK);
        ck_assert_int_eq(rb_reference_forward_targets(ref, dx, &tb.t, weights), RB_OK);
        ck_assert_int_eq(rb_reference_backward(ref, weights, true), RB_OK);
        if (_i >= 10) /* the blocked paths are the ones under test */
            ck_assert_msg(strstr(rb_engine_impl(e, p.watch), "nChw") != NULL, "%s: upsample ran as '%s'", what,
                          rb_engine_impl(e, p.watch));
        if (mode < 2) {
            ck_assert_msg(rb_engine_read(e, p.watch, fwatch) == RB_OK, "%s: %s", what, rb_last_error());
            compare(what, rb_node_name(p.watch), fwatch, rb_reference_value(ref, p.watch), n_watch);
        }
        {
            float got = (float)rb_engine_mean_loss(e);
            double want = rb_reference_loss(ref);
            compare(what, "loss", &got, &want, 1);
        }
        compare(what, "input gradient", fgrad, rb_reference_input_grad(ref), n_in);
        for (size_t i = 0; weights && i < np; i++) {
            rb_param_info info;
            ck_assert_int_eq(rb_graph_param(p.g, i, &info), RB_OK);
            compare(what, info.name, info.grad, rb_reference_param_grad(ref, i), info.numel);
        }
    }
    rb_engine_destroy(e);
    rb_reference_destroy(ref);
    rb_graph_destroy(p.g);
    free(dx);
    free(fx);
    free(fgrad);
    free(fwatch);
}
END_TEST

/* Memory planning changes no result: an engine that shares memory between
 * values and gradients (the default) and one that keeps everything give
 * bit-identical gradients. */
START_TEST(memory_sharing_changes_no_result)
{
    problem p;
    targets_buf tb;
    float *fx, *g1, *g2;
    double *dx;
    int64_t n_in;
    problem_make(&p, _i);
    targets_make(&tb, p.h, p.w);
    n_in = BATCH * p.c * p.h * p.w;
    dx = malloc((size_t)n_in * sizeof *dx);
    fx = malloc((size_t)n_in * sizeof *fx);
    g1 = malloc((size_t)n_in * sizeof *g1);
    g2 = malloc((size_t)n_in * sizeof *g2);
    images_make(n_in, dx, fx);
    for (int run = 0; run < 2; run++) {
        rb_engine *e;
        rb_engine_options options = {.keep_intermediates = run == 1};
        ck_assert_int_eq(rb_engine_create(&e, p.g, BATCH, &options), RB_OK);
        ck_assert_int_eq(rb_engine_forward_targets(e, fx, BATCH, &tb.t, true), RB_OK);
        ck_assert_int_eq(rb_engine_backward(e, true, true), RB_OK);
        ck_assert_int_eq(rb_engine_input_grad(e, run ? g2 : g1), RB_OK);
        rb_engine_destroy(e);
    }
    ck_assert_msg(memcmp(g1, g2, (size_t)n_in * sizeof *g1) == 0, "%s: shared and private memory give different gradients", p.what);
    rb_graph_destroy(p.g);
    free(dx);
    free(fx);
    free(g1);
    free(g2);
}
END_TEST

/* ------------------------------------------------------------ host op check */

static rb_status doubled_backward(const rb_host_io *io, void *user)
{
    rb_status s = box_loss_backward(io, user);
    int64_t n = io->batch * io->shapes[0][0] * io->shapes[0][1] * io->shapes[0][2];
    for (int64_t i = 0; io->input_grads[0] != NULL && i < n; i++)
        io->input_grads[0][i] *= 2;
    return s;
}

static rb_status nan_forward(const rb_host_io *io, void *user)
{
    rb_status s = box_loss_forward(io, user);
    io->output[io->batch - 1] = NAN;
    return s;
}

static rb_status failing_forward(const rb_host_io *io, void *user)
{
    (void)io;
    (void)user;
    return rb_error_set(RB_ERR_INVALID_ARGUMENT, "no anchors match");
}

static rb_status nan_backward(const rb_host_io *io, void *user)
{
    rb_status s = box_loss_backward(io, user);
    io->input_grads[0][3] = INFINITY;
    return s;
}

/* A smooth non-loss op: y = x * x + sin(x) per element. */
static rb_status smooth_forward(const rb_host_io *io, void *user)
{
    int64_t n = io->batch * io->shapes[0][0] * io->shapes[0][1] * io->shapes[0][2];
    (void)user;
    for (int64_t i = 0; i < n; i++)
        io->output[i] = io->inputs[0][i] * io->inputs[0][i] + sinf(io->inputs[0][i]);
    return RB_OK;
}

static rb_status smooth_backward(const rb_host_io *io, void *user)
{
    int64_t n = io->batch * io->shapes[0][0] * io->shapes[0][1] * io->shapes[0][2];
    (void)user;
    for (int64_t i = 0; i < n; i++)
        io->input_grads[0][i] = io->output_grad[i] * (2 * io->inputs[0][i] + cosf(io->inputs[0][i]));
    return RB_OK;
}

START_TEST(host_op_check_passes_right_gradients_and_catches_wrong_ones)
{
    targets_buf tb;
    const int64_t shape[1][3] = {{4, 8, 10}};
    rb_host_op op = box_loss_op, smooth = {.name = "square plus sine", .out_channels = 4, .out_height = 8,
                                          .out_width = 10, .forward = smooth_forward, .backward = smooth_backward};
    double err = -1;
    targets_make(&tb, 8, 10);
    /* Tolerance 1e-3: float callbacks with h = 1e-2 (see robusta/graph.h);
     * the box loss is quadratic, so its differences are exact up to float
     * rounding, and the smooth op's O(h^2) term is ~1e-5. */
    ck_assert_msg(rb_host_op_check(&op, shape, 1, BATCH, &tb.t, 1, 1e-3, &err) == RB_OK, "%s", rb_last_error());
    ck_assert_msg(err >= 0 && err < 1e-3, "box loss: max error %g", err);
    ck_assert_msg(rb_host_op_check(&smooth, shape, 1, 3, NULL, 2, 1e-3, &err) == RB_OK, "%s", rb_last_error());
    ck_assert_msg(err >= 0 && err < 1e-3, "smooth op: max error %g", err);

    op.backward = doubled_backward;
    ck_assert_int_eq(rb_host_op_check(&op, shape, 1, BATCH, &tb.t, 1, 1e-3, &err), RB_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(rb_last_error(), "box regression") && strstr(rb_last_error(), "input 1"), "%s",
                  rb_last_error());
    op = box_loss_op;
    op.forward = nan_forward;
    ck_assert_int_ne(rb_host_op_check(&op, shape, 1, BATCH, &tb.t, 1, 1e-3, NULL), RB_OK);
    ck_assert_msg(strstr(rb_last_error(), "nan") || strstr(rb_last_error(), "NaN"), "%s", rb_last_error());
    op = box_loss_op;
    op.backward = nan_backward;
    ck_assert_int_ne(rb_host_op_check(&op, shape, 1, BATCH, &tb.t, 1, 1e-3, NULL), RB_OK);
    ck_assert_msg(strstr(rb_last_error(), "inf"), "%s", rb_last_error());
    op = box_loss_op;
    op.forward = failing_forward;
    ck_assert_int_eq(rb_host_op_check(&op, shape, 1, BATCH, &tb.t, 1, 1e-3, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(rb_last_error(), "no anchors match"), "%s", rb_last_error());
}
END_TEST

/* In a graph, a failing or non-finite callback stops the step with the
 * op's name, in the engine and in the reference. */
START_TEST(host_op_errors_stop_the_step)
{
    rb_status (*forwards[2])(const rb_host_io *, void *) = {failing_forward, nan_forward};
    for (int v = 0; v < 3; v++) {
        rb_graph *g;
        rb_node *in, *reg, *loss;
        rb_engine *e;
        rb_reference *ref;
        rb_host_op op = box_loss_op;
        targets_buf tb;
        float fx[BATCH * 3 * 8 * 10];
        double dx[BATCH * 3 * 8 * 10];
        rb_status s;
        if (v < 2)
            op.forward = forwards[v];
        else
            op.backward = nan_backward;
        targets_make(&tb, 8, 10);
        images_make(BATCH * 3 * 8 * 10, dx, fx);
        ck_assert_int_eq(rb_graph_create(&g), RB_OK);
        ck_assert_int_eq(rb_graph_input(g, 3, 8, 10, mean5, std5, &in), RB_OK);
        reg = conv(g, "reg", in, 4, 3, 1);
        ck_assert_int_eq(rb_graph_host_op(g, "boxes", &op, &reg, 1, &loss), RB_OK);
        randomize(g, 3);
        ck_assert_int_eq(rb_engine_create(&e, g, BATCH, NULL), RB_OK);
        s = rb_engine_forward_targets(e, fx, BATCH, &tb.t, true);
        if (v == 2) {
            ck_assert_int_eq(s, RB_OK);
            s = rb_engine_backward(e, true, true);
        }
        ck_assert_int_ne(s, RB_OK);
        ck_assert_msg(strstr(rb_last_error(), "'boxes'") && strchr(rb_last_error(), '\n') == NULL, "%s",
                      rb_last_error());
        if (v == 0)
            ck_assert_msg(strstr(rb_last_error(), "no anchors match"), "%s", rb_last_error());
        ck_assert_int_eq(rb_reference_create(&ref, g, BATCH), RB_OK);
        s = rb_reference_forward_targets(ref, dx, &tb.t, true);
        if (v == 2) {
            ck_assert_int_eq(s, RB_OK);
            s = rb_reference_backward(ref, true, true);
        }
        ck_assert_int_ne(s, RB_OK);
        ck_assert_msg(strstr(rb_last_error(), "boxes"), "%s", rb_last_error());
        rb_reference_destroy(ref);
        rb_engine_destroy(e);
        rb_graph_destroy(g);
    }
}
END_TEST

/* ------------------------------------------------------------ bad input */

#define REFUSED(call_, ...)                                                                                     \
    do {                                                                                                        \
        ck_assert_int_eq((call_), RB_ERR_INVALID_ARGUMENT);                                                     \
        const char *subs_[] = {__VA_ARGS__};                                                                    \
        for (size_t i_ = 0; i_ < sizeof subs_ / sizeof *subs_; i_++)                                            \
            ck_assert_msg(strstr(rb_last_error(), subs_[i_]) != NULL, "'%s' lacks '%s'", rb_last_error(),      \
                          subs_[i_]);                                                                           \
        ck_assert_msg(strchr(rb_last_error(), '\n') == NULL, "not one line: %s", rb_last_error());              \
    } while (0)

START_TEST(graph_refusals)
{
    rb_graph *g;
    rb_node *in, *a, *b, *out, *masks, *small;
    rb_upsample_desc d = {.mode = RB_UPSAMPLE_BILINEAR};
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 3, 8, 10, mean5, std5, &in), RB_OK);
    a = conv(g, "a", in, 4, 3, 1);
    small = conv(g, "small", in, 4, 3, 2); /* 4x5 */

    /* upsampling: smaller, both factor and size, neither, nearest by a non-whole ratio */
    d.height = 3;
    d.width = 4;
    REFUSED(rb_graph_upsample(g, small, &d, &out), "upsample", "smaller");
    d.factor = 2;
    d.height = 8;
    d.width = 10;
    REFUSED(rb_graph_upsample(g, small, &d, &out), "upsample", "factor");
    d.factor = 0;
    d.height = d.width = 0;
    REFUSED(rb_graph_upsample(g, small, &d, &out), "upsample");
    d.mode = RB_UPSAMPLE_NEAREST;
    d.height = 6;
    d.width = 10;
    REFUSED(rb_graph_upsample(g, small, &d, &out), "upsample", "nearest");
    d.factor = -1;
    REFUSED(rb_graph_upsample(g, small, &d, &out), "upsample");

    /* concat of mismatched spatial sizes; mul of different shapes */
    {
        rb_node *parts[2] = {a, small};
        REFUSED(rb_graph_concat(g, parts, 2, &out), "concat", "4x5", "8x10");
        REFUSED(rb_graph_concat(g, parts, 0, &out), "concat");
        REFUSED(rb_graph_mul(g, a, small, &out), "mul");
    }

    /* pixel CE: logits not at the masks' size, one class, a node that is not masks */
    ck_assert_int_eq(rb_graph_target(g, RB_TARGET_MASKS, &masks), RB_OK);
    REFUSED(rb_graph_pixel_cross_entropy(g, small, masks, RB_IGNORE_LABEL, &out), "4x5", "8x10");
    b = conv(g, "one", in, 1, 1, 1);
    REFUSED(rb_graph_pixel_cross_entropy(g, b, masks, RB_IGNORE_LABEL, &out), "class");
    REFUSED(rb_graph_pixel_cross_entropy(g, a, a, RB_IGNORE_LABEL, &out), "mask");

    /* focal: shapes differ, alpha over 1, negative gamma */
    {
        rb_focal_desc fd = RB_FOCAL_DEFAULTS;
        REFUSED(rb_graph_sigmoid_focal_loss(g, a, small, &fd, &out), "focal");
        fd.alpha = 1.5;
        REFUSED(rb_graph_sigmoid_focal_loss(g, a, a, &fd, &out), "alpha");
        fd.alpha = 0.25;
        fd.gamma = -1;
        REFUSED(rb_graph_sigmoid_focal_loss(g, a, a, &fd, &out), "gamma");
    }

    /* host ops: no callbacks, a target node as input, no inputs */
    {
        rb_host_op op = box_loss_op;
        rb_node *boxes;
        op.backward = NULL;
        REFUSED(rb_graph_host_op(g, "h", &op, &a, 1, &out), "host op", "callback");
        ck_assert_int_eq(rb_graph_target(g, RB_TARGET_BOXES, &boxes), RB_OK);
        REFUSED(rb_graph_host_op(g, "h", &box_loss_op, &boxes, 1, &out), "target");
        REFUSED(rb_graph_host_op(g, "h", &box_loss_op, &a, 0, &out), "host op");
    }
    rb_graph_destroy(g);
}
END_TEST

START_TEST(batch_refusals)
{
    problem p;
    targets_buf tb;
    rb_engine *e;
    rb_reference *ref;
    float fx[BATCH * 3 * 8 * 10];
    double dx[BATCH * 3 * 8 * 10];
    rb_targets t;
    problem_make(&p, 8); /* reads masks (one-hot) and boxes */
    images_make(BATCH * 3 * 8 * 10, dx, fx);
    ck_assert_int_eq(rb_engine_create(&e, p.g, BATCH, NULL), RB_OK);
    ck_assert_int_eq(rb_reference_create(&ref, p.g, BATCH), RB_OK);

    /* a mask whose size is not the image's */
    targets_make(&tb, 8, 10);
    t = tb.t;
    t.mask_width = 9;
    REFUSED(rb_engine_forward_targets(e, fx, BATCH, &t, true), "masks", "9x8", "10x8");
    /* no masks, no boxes */
    t = tb.t;
    t.masks = NULL;
    REFUSED(rb_engine_forward_targets(e, fx, BATCH, &t, true), "masks");
    t = tb.t;
    t.boxes = NULL;
    t.box_offsets = NULL;
    REFUSED(rb_engine_forward_targets(e, fx, BATCH, &t, true), "boxes");
    /* a box with x2 < x1, one outside the image, a non-finite corner */
    tb.boxes[1].x2 = -1;
    REFUSED(rb_engine_forward_targets(e, fx, BATCH, &tb.t, true), "box", "x2");
    targets_make(&tb, 8, 10);
    tb.boxes[2].y2 = 9;
    REFUSED(rb_engine_forward_targets(e, fx, BATCH, &tb.t, true), "box", "outside");
    targets_make(&tb, 8, 10);
    tb.boxes[0].x1 = NAN;
    REFUSED(rb_engine_forward_targets(e, fx, BATCH, &tb.t, true), "box");
    /* offsets that decrease */
    targets_make(&tb, 8, 10);
    tb.offsets[1] = 4;
    REFUSED(rb_engine_forward_targets(e, fx, BATCH, &tb.t, true), "offset");
    /* Nothing half-done: the good batch still runs after the refusals. */
    targets_make(&tb, 8, 10);
    ck_assert_int_eq(rb_engine_forward_targets(e, fx, BATCH, &tb.t, true), RB_OK);
    ck_assert_int_eq(rb_engine_backward(e, true, true), RB_OK);
    rb_engine_destroy(e);
    rb_reference_destroy(ref);
    rb_graph_destroy(p.g);

    /* a mask class out of range for the pixel CE, in both executors */
    problem_make(&p, 9);
    targets_make(&tb, 8, 10);
    tb.masks[17] = CLASSES;
    ck_assert_int_eq(rb_engine_create(&e, p.g, BATCH, NULL), RB_OK);
    REFUSED(rb_engine_forward_targets(e, fx, BATCH, &tb.t, true), "4", "[0, 4)");
    ck_assert_int_eq(rb_reference_create(&ref, p.g, BATCH), RB_OK);
    REFUSED(rb_reference_forward_targets(ref, dx, &tb.t, true), "4", "[0, 4)");
    tb.masks[17] = -3;
    REFUSED(rb_engine_forward_targets(e, fx, BATCH, &tb.t, true), "-3");
    rb_engine_destroy(e);
    rb_reference_destroy(ref);
    rb_graph_destroy(p.g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, upsample_values_by_hand);
    tcase_add_test(tc, losses_by_hand);
    tcase_add_test(tc, vector_math_is_accurate);
    tcase_add_loop_test(tc, reference_matches_finite_differences, 0, N_PROBLEMS);
    tcase_add_loop_test(tc, engine_matches_the_reference, 0, N_PROBLEMS);
    tcase_add_loop_test(tc, memory_sharing_changes_no_result, 0, N_PROBLEMS);
    tcase_add_test(tc, host_op_check_passes_right_gradients_and_catches_wrong_ones);
    tcase_add_test(tc, host_op_errors_stop_the_step);
    tcase_add_test(tc, graph_refusals);
    tcase_add_test(tc, batch_refusals);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
