/* Host ops: nodes whose forward and backward are C callbacks on plain
 * float arrays (robusta/graph.h), and rb_host_op_check, the finite-
 * difference check plugin authors run on their own. The engine gives the
 * callbacks plain copies of their inputs where the producers' layouts are
 * blocked, buffers of its arena for the output, the inputs' gradients and
 * the op's state, and checks what comes back. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/rng.h>

#include "nn/op.h"

/* No output shape given: the first input's. */
static bool host_same_shape(const rb_host_op *op)
{
    return op->out_channels == 0 && op->out_height == 0 && op->out_width == 0;
}

rb_status rb_graph_host_op(rb_graph *g, const char *name, const rb_host_op *op, rb_node *const *inputs,
                           size_t n_inputs, rb_node **out)
{
    rb_host_op *copy;
    rb_node *n;
    rb_status s;
    if (op == NULL || op->forward == NULL || op->backward == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "host op '%s': it needs a forward and a backward callback",
                            name ? name : "(unnamed)");
    if (inputs == NULL || n_inputs < 1 || n_inputs > RB_HOST_OP_MAX_INPUTS)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "host op '%s': %zu inputs; give 1 to %d", name ? name : "(unnamed)",
                            inputs ? n_inputs : 0, RB_HOST_OP_MAX_INPUTS);
    s = graph_check_node(g, RB_OP_HOST, name, inputs, n_inputs);
    if (s != RB_OK)
        return s;
    for (size_t k = 0; k < n_inputs; k++)
        if (inputs[k]->op == RB_OP_TARGET)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "host op '%s': input '%s' is a target node; host ops read the batch's targets from "
                                "rb_host_io.targets",
                                name ? name : "(unnamed)", inputs[k]->name);
    if (!op->loss && !host_same_shape(op) && (op->out_channels < 1 || op->out_height < 1 || op->out_width < 1))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "host op '%s': output shape %lldx%lldx%lld has an empty dimension; give all three, or "
                            "none for the first input's shape",
                            name ? name : "(unnamed)", (long long)op->out_channels, (long long)op->out_height,
                            (long long)op->out_width);
    copy = malloc(sizeof *copy);
    if (copy == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "host op: out of memory");
    *copy = *op;
    if (op->loss)
        s = graph_add_node(g, RB_OP_HOST, name, inputs, n_inputs, 1, 1, 1, &n);
    else if (host_same_shape(op))
        s = graph_add_node(g, RB_OP_HOST, name, inputs, n_inputs, inputs[0]->c, inputs[0]->h, inputs[0]->w, &n);
    else
        s = graph_add_node(g, RB_OP_HOST, name, inputs, n_inputs, op->out_channels, op->out_height, op->out_width,
                           &n);
    if (s != RB_OK) {
        free(copy);
        return s;
    }
    n->attr.host = copy;
    *out = n;
    return RB_OK;
}

static void free_attr(rb_node *n)
{
    free(n->attr.host);
}

static const char *op_name(const rb_node *n)
{
    return n->attr.host->name != NULL ? n->attr.host->name : n->name;
}

/* The first non-finite value of `count`, or -1. */
static int64_t first_non_finite(const float *x, int64_t count)
{
    for (int64_t i = 0; i < count; i++)
        if (!isfinite(x[i]))
            return i;
    return -1;
}

/* A callback's failure, with the op's names in front of its message (the
 * node's, and the op's own when it differs). The callback's message is
 * copied first: it lives in the buffer the new one is written to. */
static rb_status host_failed(const char *node, const char *op, const char *which, rb_status s)
{
    char message[512];
    snprintf(message, sizeof message, "%s", rb_last_error());
    if (strcmp(node, op) == 0)
        return rb_error_set(s, "host op '%s': its %s failed: %s", node, which, message[0] ? message : rb_status_str(s));
    return rb_error_set(s, "host op '%s' (%s): its %s failed: %s", node, op, which,
                        message[0] ? message : rb_status_str(s));
}

static rb_status callback_failed(const rb_node *n, const char *which, rb_status s)
{
    return host_failed(n->name, op_name(n), which, s);
}

/* Refuses a non-finite value among `count` (examples of `size`) that a
 * callback wrote: its output (input 0) or input k's gradient. */
static rb_status host_check_finite(const char *node, const char *op, const float *x, int64_t count, int64_t size,
                                   size_t input)
{
    int64_t bad = first_non_finite(x, count);
    char names[300];
    if (bad < 0)
        return RB_OK;
    if (strcmp(node, op) == 0)
        snprintf(names, sizeof names, "'%s'", node);
    else
        snprintf(names, sizeof names, "'%s' (%s)", node, op);
    if (input == 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "host op %s: its forward wrote %g at example %lld, value %lld; outputs must be finite", names,
                            (double)x[bad], (long long)(bad / size), (long long)(bad % size));
    return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                        "host op %s: its backward wrote %g into the gradient of input %zu at example %lld, value %lld; "
                        "gradients must be finite",
                        names, (double)x[bad], input, (long long)(bad / size), (long long)(bad % size));
}

static bool node_is_loss(const rb_node *n)
{
    return n->attr.host->loss;
}

/* ------------------------------------------------------------ engine */

static rb_status plan(rb_engine *e, enode *en)
{
    const rb_node *n = en->node;
    const rb_host_op *op = n->attr.host;
    dnnl_memory_desc_t out, state, grad;
    dnnl_dims_t sdims = {(dnnl_dim_t)(op->state_bytes > 0 ? op->state_bytes : 1)}, gdims = {e->batch};
    rb_status s = RB_OK;
    snprintf(en->impl, sizeof en->impl, "host:%.120s", op_name(n));
    eng_md_node_plain(e, n, &out);
    for (size_t k = 0; s == RB_OK && k < n->n_in; k++) {
        dnnl_memory_desc_t plain;
        eng_md_node_plain(e, n->in[k], &plain);
        s = eng_plan_input(e, en, (int)k, &plain);
        /* the input's gradient, written by the callback, then added or
         * reordered into the producer's */
        if (s == RB_OK)
            s = eng_slot_plan(e, &en->in_grad[k], &plain, n);
        if (s == RB_OK) {
            en->in[k].accumulate = eng_grad_accumulates(e, en, (int)k);
            s = eng_make_reorder(e, &en->in[k].to_producer, &plain, &eng_producer(e, en, k)->diff.md,
                                 en->in[k].accumulate, n);
        }
    }
    if (s == RB_OK)
        s = eng_value_plan(e, en, &out);
    if (s == RB_OK)
        s = eng_diff_plan(e, &en->diff, &out, n);
    dnnl_memory_desc_init_by_tag(&state, 1, sdims, dnnl_u8, dnnl_a);
    if (s == RB_OK)
        s = eng_slot_plan(e, &en->aux[0], &state, n);
    eng_md_plain(&grad, 1, gdims);
    if (s == RB_OK && op->loss) /* a loss's output gradient: 1 / batch */
        s = eng_slot_plan(e, &en->aux[1], &grad, n);
    return s;
}

/* The callbacks' view of the node's buffers. */
typedef struct host_call {
    rb_host_io io;
    const float *inputs[RB_NODE_MAX_INPUTS];
    float *grads[RB_NODE_MAX_INPUTS];
    int64_t shapes[RB_NODE_MAX_INPUTS][3];
} host_call;

static void host_call_init(host_call *c, rb_engine *e, enode *en, bool training)
{
    const rb_node *n = en->node;
    memset(c, 0, sizeof *c);
    for (size_t k = 0; k < n->n_in; k++) {
        c->inputs[k] = eng_floats(e, eng_input_offset(e, en, (int)k));
        c->shapes[k][0] = n->in[k]->c;
        c->shapes[k][1] = n->in[k]->h;
        c->shapes[k][2] = n->in[k]->w;
    }
    c->io.batch = e->batch;
    c->io.n_inputs = n->n_in;
    c->io.inputs = c->inputs;
    c->io.shapes = (const int64_t(*)[3])c->shapes;
    c->io.output = eng_floats(e, en->value.offset);
    c->io.targets = &e->targets;
    c->io.training = training;
    c->io.state = e->arena + en->aux[0].offset;
}

static rb_status forward(rb_engine *e, enode *en, bool training)
{
    const rb_node *n = en->node;
    host_call c;
    int64_t size = n->c * n->h * n->w;
    rb_status s;
    host_call_init(&c, e, en, training);
    rb_error_clear();
    s = n->attr.host->forward(&c.io, n->attr.host->user);
    if (s != RB_OK)
        return callback_failed(n, "forward", s);
    return host_check_finite(n->name, op_name(n), c.io.output, e->batch * size, size, 0);
}

static rb_status backward(rb_engine *e, enode *en, bool weight_grads)
{
    const rb_node *n = en->node;
    host_call c;
    rb_status s;
    (void)weight_grads;
    host_call_init(&c, e, en, e->training);
    for (size_t k = 0; k < n->n_in; k++)
        if (eng_input_needs_grad(e, en, k)) {
            c.grads[k] = eng_floats(e, en->in_grad[k].offset);
            memset(c.grads[k], 0, en->in_grad[k].bytes);
        }
    if (n->attr.host->loss) {
        float *seed = eng_floats(e, en->aux[1].offset);
        for (int64_t b = 0; b < e->batch; b++)
            seed[b] = 1.0f / (float)e->batch;
        c.io.output_grad = seed;
    } else {
        c.io.output_grad = eng_floats(e, en->diff.offset);
    }
    c.io.input_grads = c.grads;
    rb_error_clear();
    s = n->attr.host->backward(&c.io, n->attr.host->user);
    if (s != RB_OK)
        return callback_failed(n, "backward", s);
    for (size_t k = 0; k < n->n_in; k++) {
        int64_t size;
        if (c.grads[k] == NULL)
            continue;
        size = n->in[k]->c * n->in[k]->h * n->in[k]->w;
        s = host_check_finite(n->name, op_name(n), c.grads[k], e->batch * size, size, k + 1);
        if (s != RB_OK)
            return s;
        s = eng_reorder(e, en->in[k].to_producer, en->in_grad[k].mem, eng_producer(e, en, k)->diff.mem, n,
                        RB_PRIM_REORDER_GRADIENT);
        if (s != RB_OK)
            return s;
    }
    return RB_OK;
}

/* Callbacks may read every input in backward. */
static bool reads_input(const rb_engine *e, const enode *en, size_t k)
{
    (void)e;
    return !en->in[k].reordered;
}

/* ------------------------------------------------------------ reference */

/* The reference runs the same float callbacks on its double values: the
 * callbacks are the definition. */
typedef struct ref_call {
    rb_host_io io;
    float *inputs[RB_NODE_MAX_INPUTS];
    float *grads[RB_NODE_MAX_INPUTS];
    int64_t shapes[RB_NODE_MAX_INPUTS][3];
    float *output, *output_grad;
    void *state;
} ref_call;

static void ref_call_free(ref_call *c)
{
    for (size_t k = 0; k < RB_NODE_MAX_INPUTS; k++) {
        free(c->inputs[k]);
        free(c->grads[k]);
    }
    free(c->output);
    free(c->output_grad);
    free(c->state);
}

static rb_status ref_call_init(ref_call *c, rb_reference *r, const rb_node *n, bool backward)
{
    int64_t size = ref_node_size(n);
    memset(c, 0, sizeof *c);
    c->output = calloc((size_t)(r->batch * size), sizeof(float));
    c->output_grad = calloc((size_t)(r->batch * size), sizeof(float));
    c->state = calloc(n->attr.host->state_bytes + 1, 1);
    if (c->output == NULL || c->output_grad == NULL || c->state == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "reference: out of memory for host op '%s'", n->name);
    for (size_t k = 0; k < n->n_in; k++) {
        int64_t in_size = ref_node_size(n->in[k]);
        const double *x = ref_value(r, n->in[k]);
        c->inputs[k] = malloc((size_t)(r->batch * in_size) * sizeof(float));
        c->grads[k] = backward ? calloc((size_t)(r->batch * in_size), sizeof(float)) : NULL;
        if (c->inputs[k] == NULL || (backward && c->grads[k] == NULL))
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "reference: out of memory for host op '%s'", n->name);
        for (int64_t i = 0; i < r->batch * in_size; i++)
            c->inputs[k][i] = (float)x[i];
        c->shapes[k][0] = n->in[k]->c;
        c->shapes[k][1] = n->in[k]->h;
        c->shapes[k][2] = n->in[k]->w;
    }
    c->io.batch = r->batch;
    c->io.n_inputs = n->n_in;
    c->io.inputs = (const float *const *)c->inputs;
    c->io.shapes = (const int64_t(*)[3])c->shapes;
    c->io.output = c->output;
    c->io.targets = &r->targets;
    c->io.training = r->training;
    c->io.state = c->state;
    c->io.output_grad = c->output_grad;
    c->io.input_grads = c->grads;
    return RB_OK;
}

static rb_status ref_forward(rb_reference *r, const rb_node *n, bool training)
{
    ref_call c;
    double *y = ref_value(r, n);
    rb_status s = ref_call_init(&c, r, n, false);
    (void)training;
    if (s == RB_OK && (s = n->attr.host->forward(&c.io, n->attr.host->user)) != RB_OK)
        s = callback_failed(n, "forward", s);
    if (s == RB_OK)
        s = host_check_finite(n->name, op_name(n), c.output, r->batch * ref_node_size(n), ref_node_size(n), 0);
    for (int64_t i = 0; s == RB_OK && i < r->batch * ref_node_size(n); i++)
        y[i] = c.output[i];
    ref_call_free(&c);
    return s;
}

/* Backward reruns forward first: the callbacks may keep state between them. */
static rb_status ref_backward(rb_reference *r, const rb_node *n, bool weight_grads)
{
    ref_call c;
    const double *dy = ref_grad(r, n);
    rb_status s = ref_call_init(&c, r, n, true);
    (void)weight_grads;
    if (s == RB_OK && (s = n->attr.host->forward(&c.io, n->attr.host->user)) != RB_OK)
        s = callback_failed(n, "forward", s);
    for (int64_t i = 0; s == RB_OK && i < r->batch * ref_node_size(n); i++)
        c.output_grad[i] = (float)dy[i];
    if (s == RB_OK && (s = n->attr.host->backward(&c.io, n->attr.host->user)) != RB_OK)
        s = callback_failed(n, "backward", s);
    for (size_t k = 0; s == RB_OK && k < n->n_in; k++)
        s = host_check_finite(n->name, op_name(n), c.grads[k], r->batch * ref_node_size(n->in[k]),
                              ref_node_size(n->in[k]), k + 1);
    for (size_t k = 0; s == RB_OK && k < n->n_in; k++) {
        double *dx = ref_grad(r, n->in[k]);
        for (int64_t i = 0; i < r->batch * ref_node_size(n->in[k]); i++)
            dx[i] += c.grads[k][i];
    }
    ref_call_free(&c);
    return s;
}

const rb_op_def rb_op_host = {
    .op = RB_OP_HOST,
    .name = "host",
    .free_attr = free_attr,
    .node_is_loss = node_is_loss,
    .plan = plan,
    .forward = forward,
    .backward = backward,
    .reads_input = reads_input,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
};

/* ------------------------------------------------------------ checking a host op */

typedef struct checker {
    const rb_host_op *op;
    const char *name;
    size_t n_inputs;
    int64_t batch, out_size, in_size[RB_HOST_OP_MAX_INPUTS];
    float *inputs[RB_HOST_OP_MAX_INPUTS], *grads[RB_HOST_OP_MAX_INPUTS];
    float *output, *output_grad;
    double *weights; /* the objective's w */
    void *state;
    rb_host_io io;
} checker;

/* sum(w * output), after a forward. */
static rb_status objective(checker *c, double *out)
{
    rb_status s;
    double total = 0;
    rb_error_clear();
    s = c->op->forward(&c->io, c->op->user);
    if (s != RB_OK)
        return host_failed(c->name, c->name, "forward", s);
    s = host_check_finite(c->name, c->name, c->output, c->batch * c->out_size, c->out_size, 0);
    if (s != RB_OK)
        return s;
    for (int64_t i = 0; i < c->batch * c->out_size; i++)
        total += c->weights[i] * c->output[i];
    *out = total;
    return RB_OK;
}

static void checker_free(checker *c)
{
    for (size_t k = 0; k < RB_HOST_OP_MAX_INPUTS; k++) {
        free(c->inputs[k]);
        free(c->grads[k]);
    }
    free(c->output);
    free(c->output_grad);
    free(c->weights);
    free(c->state);
}

rb_status rb_host_op_check(const rb_host_op *op, const int64_t (*shapes)[3], size_t n_inputs, int64_t batch,
                           const rb_targets *targets, uint64_t seed, double tolerance, double *max_error)
{
    static const rb_targets none = {0};
    checker c;
    rb_rng rng;
    rb_status s = RB_OK;
    double worst = 0;
    const char *name = op != NULL && op->name != NULL ? op->name : "(unnamed)";
    if (max_error != NULL)
        *max_error = INFINITY;
    if (op == NULL || op->forward == NULL || op->backward == NULL || shapes == NULL || n_inputs < 1 ||
        n_inputs > RB_HOST_OP_MAX_INPUTS || batch < 1 || !(tolerance > 0))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "host op check '%s': it needs both callbacks, 1 to %d input shapes, a batch >= 1 and a "
                            "positive tolerance",
                            name, RB_HOST_OP_MAX_INPUTS);
    memset(&c, 0, sizeof c);
    c.op = op;
    c.name = name;
    c.n_inputs = n_inputs;
    c.batch = batch;
    c.out_size = op->loss ? 1
                 : host_same_shape(op) ? shapes[0][0] * shapes[0][1] * shapes[0][2]
                                       : op->out_channels * op->out_height * op->out_width;
    rb_rng_init(&rng, seed, RB_RNG_STREAM(RB_RNG_USER, 0x4057), 0);
    for (size_t k = 0; k < n_inputs; k++) {
        if (shapes[k][0] < 1 || shapes[k][1] < 1 || shapes[k][2] < 1)
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "host op check '%s': input %zu has an empty shape", name, k + 1);
        c.in_size[k] = shapes[k][0] * shapes[k][1] * shapes[k][2];
        c.inputs[k] = s == RB_OK ? malloc((size_t)(batch * c.in_size[k]) * sizeof(float)) : NULL;
        c.grads[k] = s == RB_OK ? calloc((size_t)(batch * c.in_size[k]), sizeof(float)) : NULL;
        if (s == RB_OK && (c.inputs[k] == NULL || c.grads[k] == NULL))
            s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "host op check '%s': out of memory", name);
        for (int64_t i = 0; s == RB_OK && i < batch * c.in_size[k]; i++)
            c.inputs[k][i] = (float)(2 * rb_rng_uniform(&rng) - 1);
    }
    if (s == RB_OK && c.out_size < 1)
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "host op check '%s': the output shape is empty", name);
    if (s == RB_OK) {
        c.output = calloc((size_t)(batch * c.out_size), sizeof(float));
        c.output_grad = calloc((size_t)(batch * c.out_size), sizeof(float));
        c.weights = calloc((size_t)(batch * c.out_size), sizeof(double));
        c.state = calloc(op->state_bytes + 1, 1);
        if (c.output == NULL || c.output_grad == NULL || c.weights == NULL || c.state == NULL)
            s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "host op check '%s': out of memory", name);
    }
    if (s != RB_OK) {
        checker_free(&c);
        return s;
    }
    /* the objective: the engine's (mean over the batch) for a loss, a
     * random weighting otherwise; its gradient seeds backward */
    for (int64_t i = 0; i < batch * c.out_size; i++) {
        c.weights[i] = op->loss ? 1.0 / (double)batch : 2 * rb_rng_uniform(&rng) - 1;
        c.output_grad[i] = (float)c.weights[i];
    }
    c.io.batch = batch;
    c.io.n_inputs = n_inputs;
    c.io.inputs = (const float *const *)c.inputs;
    c.io.shapes = shapes;
    c.io.output = c.output;
    c.io.targets = targets != NULL ? targets : &none;
    c.io.training = true;
    c.io.state = c.state;
    c.io.output_grad = c.output_grad;
    c.io.input_grads = c.grads;
    {
        double unused;
        s = objective(&c, &unused);
    }
    if (s == RB_OK) {
        rb_error_clear();
        s = op->backward(&c.io, op->user);
        if (s != RB_OK)
            s = host_failed(name, name, "backward", s);
    }
    for (size_t k = 0; s == RB_OK && k < n_inputs; k++)
        s = host_check_finite(name, name, c.grads[k], batch * c.in_size[k], c.in_size[k], k + 1);
    for (size_t k = 0; s == RB_OK && k < n_inputs; k++) {
        int64_t count = batch * c.in_size[k], step = count > 4096 ? count / 4096 : 1;
        for (int64_t i = 0; s == RB_OK && i < count; i += step) {
            float keep = c.inputs[k][i];
            double h = 1e-2 * fmax(1.0, fabs(keep)), up = 0, down = 0, numeric, analytic = c.grads[k][i], err;
            c.inputs[k][i] = (float)(keep + h);
            s = objective(&c, &up);
            c.inputs[k][i] = (float)(keep - h);
            if (s == RB_OK)
                s = objective(&c, &down);
            /* the step actually taken, after rounding to float */
            numeric = (up - down) / ((double)(float)(keep + h) - (double)(float)(keep - h));
            c.inputs[k][i] = keep;
            err = fabs(analytic - numeric) / (1 + fabs(numeric));
            worst = fmax(worst, err);
            if (s == RB_OK && err > tolerance)
                s = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                 "host op '%s': d objective / d input %zu [%lld] is %.6g by its backward but %.6g by "
                                 "finite differences (error %.3g > tolerance %g)",
                                 name, k + 1, (long long)i, analytic, numeric, err, tolerance);
        }
    }
    if (max_error != NULL && s == RB_OK)
        *max_error = worst;
    checker_free(&c);
    return s;
}
