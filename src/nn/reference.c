/* The double-precision reference executor (robusta/reference.h): plain loops,
 * one op at a time, written for obviousness rather than speed. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/reference.h>

#include "nn/graph_internal.h"

struct rb_reference {
    rb_graph *g;
    int64_t batch;
    double **value;      /* per node: batch × c × h × w */
    double **grad;       /* per node */
    double **param_grad; /* per parameter (trainable ones) */
    double **saved;      /* per node: op-specific (bn: mean, invstd; ce: softmax; maxpool: argmax) */
    double *input_grad;  /* batch × image */
    bool have_grads, have_param_grads, have_input_grad;
    double loss;
    rb_node *loss_node;
    int64_t *labels;     /* the last forward's labels (loss backward needs them) */
    bool forward_done;   /* a forward has run since creation */
    bool training;       /* the last forward's mode (batch-norm backward depends on it) */
};

static int64_t node_size(const rb_node *n)
{
    return n->c * n->h * n->w;
}

void rb_reference_destroy(rb_reference *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; r->value && i < r->g->n_nodes; i++) {
        free(r->value[i]);
        free(r->grad[i]);
        free(r->saved[i]);
    }
    for (size_t i = 0; r->param_grad && i < r->g->n_params; i++)
        free(r->param_grad[i]);
    free(r->value);
    free(r->grad);
    free(r->saved);
    free(r->param_grad);
    free(r->input_grad);
    free(r->labels);
    free(r);
}

rb_status rb_reference_create(rb_reference **out, rb_graph *g, int64_t batch)
{
    rb_reference *r;
    *out = NULL;
    if (batch < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "reference: batch %lld; need at least 1",
                            (long long)batch);
    if (g->input == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "reference: the graph has no input");
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "reference: out of memory");
    r->g = g;
    r->batch = batch;
    r->value = calloc(g->n_nodes, sizeof *r->value);
    r->grad = calloc(g->n_nodes, sizeof *r->grad);
    r->saved = calloc(g->n_nodes, sizeof *r->saved);
    r->param_grad = calloc(g->n_params + 1, sizeof *r->param_grad);
    r->input_grad = calloc((size_t)(batch * node_size(g->input)), sizeof *r->input_grad);
    r->labels = calloc((size_t)batch, sizeof *r->labels);
    if (!r->value || !r->grad || !r->saved || !r->param_grad || !r->input_grad || !r->labels)
        goto oom;
    for (size_t i = 0; i < g->n_nodes; i++) {
        rb_node *n = g->nodes[i];
        size_t saved = 0;
        r->value[i] = calloc((size_t)(batch * node_size(n)), sizeof(double));
        r->grad[i] = calloc((size_t)(batch * node_size(n)), sizeof(double));
        if (n->op == RB_OP_BATCHNORM)
            saved = (size_t)(2 * n->c);
        else if (n->op == RB_OP_SOFTMAX_CE)
            saved = (size_t)(batch * n->in[0]->c);
        else if (n->op == RB_OP_MAXPOOL)
            saved = (size_t)(batch * node_size(n));
        if (saved)
            r->saved[i] = calloc(saved, sizeof(double));
        if (!r->value[i] || !r->grad[i] || (saved && !r->saved[i]))
            goto oom;
        if (n->op == RB_OP_SOFTMAX_CE)
            r->loss_node = n;
    }
    for (size_t i = 0; i < g->n_params; i++)
        if (g->params[i].trainable &&
            !(r->param_grad[i] = calloc((size_t)g->params[i].numel, sizeof(double))))
            goto oom;
    r->loss = NAN;
    *out = r;
    return RB_OK;
oom:
    rb_reference_destroy(r);
    return rb_error_set(RB_ERR_OUT_OF_MEMORY, "reference: out of memory for batch %lld",
                        (long long)batch);
}

static const float *pvalue(const rb_reference *r, const rb_node *n, int slot)
{
    const rb_param_tensor *p = rb_node_param(r->g, n, slot);
    return p ? p->value : NULL;
}

/* ------------------------------------------------------------ forward */

static void conv_forward(const rb_reference *r, const rb_node *n, const double *x, double *y)
{
    const rb_conv_desc *d = &n->attr.conv;
    const rb_node *in = n->in[0];
    const float *w = pvalue(r, n, RB_SLOT_WEIGHT), *b = pvalue(r, n, RB_SLOT_BIAS);
    int64_t cin_g = in->c / d->groups, cout_g = n->c / d->groups;
    for (int64_t b_ = 0; b_ < r->batch; b_++)
        for (int64_t oc = 0; oc < n->c; oc++) {
            int64_t grp = oc / cout_g;
            for (int64_t oy = 0; oy < n->h; oy++)
                for (int64_t ox = 0; ox < n->w; ox++) {
                    double sum = b ? b[oc] : 0.0;
                    for (int64_t ic = 0; ic < cin_g; ic++)
                        for (int64_t ky = 0; ky < d->kernel[0]; ky++) {
                            int64_t iy = oy * d->stride[0] - d->padding[0] + ky * d->dilation[0];
                            if (iy < 0 || iy >= in->h)
                                continue;
                            for (int64_t kx = 0; kx < d->kernel[1]; kx++) {
                                int64_t ix = ox * d->stride[1] - d->padding[1] + kx * d->dilation[1];
                                if (ix < 0 || ix >= in->w)
                                    continue;
                                sum += (double)w[((oc * cin_g + ic) * d->kernel[0] + ky) * d->kernel[1] + kx] *
                                       x[((b_ * in->c + grp * cin_g + ic) * in->h + iy) * in->w + ix];
                            }
                        }
                    y[((b_ * n->c + oc) * n->h + oy) * n->w + ox] = sum;
                }
        }
}

static void conv_backward(rb_reference *r, const rb_node *n, const double *x, const double *dy,
                          double *dx, double *dw, double *db)
{
    const rb_conv_desc *d = &n->attr.conv;
    const rb_node *in = n->in[0];
    const float *w = pvalue(r, n, RB_SLOT_WEIGHT);
    int64_t cin_g = in->c / d->groups, cout_g = n->c / d->groups;
    for (int64_t b_ = 0; b_ < r->batch; b_++)
        for (int64_t oc = 0; oc < n->c; oc++) {
            int64_t grp = oc / cout_g;
            for (int64_t oy = 0; oy < n->h; oy++)
                for (int64_t ox = 0; ox < n->w; ox++) {
                    double g = dy[((b_ * n->c + oc) * n->h + oy) * n->w + ox];
                    if (db)
                        db[oc] += g;
                    for (int64_t ic = 0; ic < cin_g; ic++)
                        for (int64_t ky = 0; ky < d->kernel[0]; ky++) {
                            int64_t iy = oy * d->stride[0] - d->padding[0] + ky * d->dilation[0];
                            if (iy < 0 || iy >= in->h)
                                continue;
                            for (int64_t kx = 0; kx < d->kernel[1]; kx++) {
                                int64_t ix = ox * d->stride[1] - d->padding[1] + kx * d->dilation[1];
                                int64_t wi = ((oc * cin_g + ic) * d->kernel[0] + ky) * d->kernel[1] + kx;
                                int64_t xi = ((b_ * in->c + grp * cin_g + ic) * in->h + iy) * in->w + ix;
                                if (ix < 0 || ix >= in->w)
                                    continue;
                                if (dw)
                                    dw[wi] += g * x[xi];
                                if (dx)
                                    dx[xi] += g * w[wi];
                            }
                        }
                }
        }
}

static void bn_forward(rb_reference *r, const rb_node *n, const double *x, double *y, bool training)
{
    const float *gamma = pvalue(r, n, RB_SLOT_WEIGHT), *beta = pvalue(r, n, RB_SLOT_BIAS);
    float *rmean = rb_node_param(r->g, n, RB_SLOT_RUNNING_MEAN)->value;
    float *rvar = rb_node_param(r->g, n, RB_SLOT_RUNNING_VAR)->value;
    double *saved = r->saved[n->index];
    int64_t hw = n->h * n->w, count = r->batch * hw;
    for (int64_t c = 0; c < n->c; c++) {
        double mean, var;
        if (training) {
            double sum = 0, sq = 0;
            for (int64_t b = 0; b < r->batch; b++)
                for (int64_t i = 0; i < hw; i++)
                    sum += x[(b * n->c + c) * hw + i];
            mean = sum / (double)count;
            for (int64_t b = 0; b < r->batch; b++)
                for (int64_t i = 0; i < hw; i++) {
                    double dev = x[(b * n->c + c) * hw + i] - mean;
                    sq += dev * dev;
                }
            var = sq / (double)count; /* biased: what normalizes */
            /* Running statistics keep the unbiased variance, as PyTorch does. */
            rmean[c] = (float)((1 - RB_BATCHNORM_MOMENTUM) * rmean[c] + RB_BATCHNORM_MOMENTUM * mean);
            rvar[c] = (float)((1 - RB_BATCHNORM_MOMENTUM) * rvar[c] +
                              RB_BATCHNORM_MOMENTUM * (count > 1 ? sq / (double)(count - 1) : var));
        } else {
            mean = rmean[c];
            var = rvar[c];
        }
        saved[2 * c] = mean;
        saved[2 * c + 1] = 1.0 / sqrt(var + RB_BATCHNORM_EPS);
        for (int64_t b = 0; b < r->batch; b++)
            for (int64_t i = 0; i < hw; i++) {
                int64_t k = (b * n->c + c) * hw + i;
                y[k] = (x[k] - mean) * saved[2 * c + 1] * gamma[c] + beta[c];
            }
    }
}

static void bn_backward(rb_reference *r, const rb_node *n, const double *x, const double *dy,
                        double *dx, double *dgamma, double *dbeta, bool training)
{
    const float *gamma = pvalue(r, n, RB_SLOT_WEIGHT);
    const double *saved = r->saved[n->index];
    int64_t hw = n->h * n->w, count = r->batch * hw;
    for (int64_t c = 0; c < n->c; c++) {
        double mean = saved[2 * c], invstd = saved[2 * c + 1], sum_dy = 0, sum_dy_xhat = 0;
        for (int64_t b = 0; b < r->batch; b++)
            for (int64_t i = 0; i < hw; i++) {
                int64_t k = (b * n->c + c) * hw + i;
                sum_dy += dy[k];
                sum_dy_xhat += dy[k] * (x[k] - mean) * invstd;
            }
        if (dgamma)
            dgamma[c] += sum_dy_xhat;
        if (dbeta)
            dbeta[c] += sum_dy;
        if (dx == NULL)
            continue;
        for (int64_t b = 0; b < r->batch; b++)
            for (int64_t i = 0; i < hw; i++) {
                int64_t k = (b * n->c + c) * hw + i;
                if (training) {
                    /* The batch statistics depend on x too. */
                    double xhat = (x[k] - mean) * invstd;
                    dx[k] += gamma[c] * invstd *
                             (dy[k] - sum_dy / (double)count - xhat * sum_dy_xhat / (double)count);
                } else {
                    dx[k] += dy[k] * gamma[c] * invstd;
                }
            }
    }
}

static void pool_forward(rb_reference *r, const rb_node *n, const double *x, double *y)
{
    const rb_pool_desc *d = &n->attr.pool;
    const rb_node *in = n->in[0];
    double *argmax = r->saved[n->index];
    for (int64_t b = 0; b < r->batch; b++)
        for (int64_t c = 0; c < n->c; c++)
            for (int64_t oy = 0; oy < n->h; oy++)
                for (int64_t ox = 0; ox < n->w; ox++) {
                    double best = -INFINITY, sum = 0;
                    int64_t best_at = -1;
                    for (int64_t ky = 0; ky < d->kernel[0]; ky++)
                        for (int64_t kx = 0; kx < d->kernel[1]; kx++) {
                            int64_t iy = oy * d->stride[0] - d->padding[0] + ky;
                            int64_t ix = ox * d->stride[1] - d->padding[1] + kx;
                            int64_t k = ((b * in->c + c) * in->h + iy) * in->w + ix;
                            if (iy < 0 || iy >= in->h || ix < 0 || ix >= in->w)
                                continue; /* padding: -inf for max, 0 for average */
                            sum += x[k];
                            if (x[k] > best) { /* the first maximum wins, as in PyTorch */
                                best = x[k];
                                best_at = k;
                            }
                        }
                    int64_t o = ((b * n->c + c) * n->h + oy) * n->w + ox;
                    if (n->op == RB_OP_MAXPOOL) {
                        y[o] = best;
                        argmax[o] = (double)best_at;
                    } else {
                        /* count_include_pad: the divisor is the whole window */
                        y[o] = sum / (double)(d->kernel[0] * d->kernel[1]);
                    }
                }
}

static void pool_backward(rb_reference *r, const rb_node *n, const double *dy, double *dx)
{
    const rb_pool_desc *d = &n->attr.pool;
    const rb_node *in = n->in[0];
    const double *argmax = r->saved[n->index];
    for (int64_t b = 0; b < r->batch; b++)
        for (int64_t c = 0; c < n->c; c++)
            for (int64_t oy = 0; oy < n->h; oy++)
                for (int64_t ox = 0; ox < n->w; ox++) {
                    int64_t o = ((b * n->c + c) * n->h + oy) * n->w + ox;
                    if (n->op == RB_OP_MAXPOOL) {
                        dx[(int64_t)argmax[o]] += dy[o];
                        continue;
                    }
                    for (int64_t ky = 0; ky < d->kernel[0]; ky++)
                        for (int64_t kx = 0; kx < d->kernel[1]; kx++) {
                            int64_t iy = oy * d->stride[0] - d->padding[0] + ky;
                            int64_t ix = ox * d->stride[1] - d->padding[1] + kx;
                            if (iy < 0 || iy >= in->h || ix < 0 || ix >= in->w)
                                continue;
                            dx[((b * in->c + c) * in->h + iy) * in->w + ix] +=
                                dy[o] / (double)(d->kernel[0] * d->kernel[1]);
                        }
                }
}

static rb_status ce_forward(rb_reference *r, const rb_node *n, const double *z,
                            const int64_t *labels, double *loss)
{
    int64_t k = n->in[0]->c;
    double *prob = r->saved[n->index], total = 0;
    if (labels == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "reference: the graph ends in a loss ('%s') but no labels were given",
                            n->name);
    for (int64_t b = 0; b < r->batch; b++) {
        double top = -INFINITY, sum = 0;
        if (labels[b] < 0 || labels[b] >= k)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "reference: label %lld of example %lld is outside [0, %lld) for loss '%s'",
                                (long long)labels[b], (long long)b, (long long)k, n->name);
        for (int64_t i = 0; i < k; i++)
            top = z[b * k + i] > top ? z[b * k + i] : top;
        for (int64_t i = 0; i < k; i++)
            sum += exp(z[b * k + i] - top);
        for (int64_t i = 0; i < k; i++)
            prob[b * k + i] = exp(z[b * k + i] - top) / sum;
        loss[b] = top + log(sum) - z[b * k + labels[b]];
        total += loss[b];
    }
    r->loss = total / (double)r->batch;
    return RB_OK;
}

rb_status rb_reference_forward(rb_reference *r, const double *images, const int64_t *labels,
                               bool training)
{
    rb_graph *g = r->g;
    r->have_grads = r->have_param_grads = r->have_input_grad = false;
    r->forward_done = false;
    r->loss = NAN;
    r->training = training;
    if (labels != NULL)
        memcpy(r->labels, labels, (size_t)r->batch * sizeof *labels);
    for (size_t i = 0; i < g->n_nodes; i++) {
        const rb_node *n = g->nodes[i];
        double *y = r->value[i];
        const double *x = n->n_in ? r->value[n->in[0]->index] : images;
        int64_t size = node_size(n), in_size = n->n_in ? node_size(n->in[0]) : size;
        switch (n->op) {
        case RB_OP_INPUT: {
            int64_t hw = n->h * n->w;
            for (int64_t b = 0; b < r->batch; b++)
                for (int64_t c = 0; c < n->c; c++)
                    for (int64_t p = 0; p < hw; p++) {
                        int64_t k = (b * n->c + c) * hw + p;
                        y[k] = n->attr.input.mean
                                   ? (images[k] - n->attr.input.mean[c]) / n->attr.input.std[c]
                                   : images[k];
                    }
            break;
        }
        case RB_OP_CONV: conv_forward(r, n, x, y); break;
        case RB_OP_BATCHNORM: bn_forward(r, n, x, y, training); break;
        case RB_OP_RELU:
            for (int64_t k = 0; k < r->batch * size; k++)
                y[k] = x[k] > 0 ? x[k] : 0;
            break;
        case RB_OP_MAXPOOL:
        case RB_OP_AVGPOOL: pool_forward(r, n, x, y); break;
        case RB_OP_GLOBAL_AVGPOOL: {
            int64_t hw = n->in[0]->h * n->in[0]->w;
            for (int64_t k = 0; k < r->batch * n->c; k++) {
                double sum = 0;
                for (int64_t p = 0; p < hw; p++)
                    sum += x[k * hw + p];
                y[k] = sum / (double)hw;
            }
            break;
        }
        case RB_OP_ADD: {
            const double *x2 = r->value[n->in[1]->index];
            for (int64_t k = 0; k < r->batch * size; k++)
                y[k] = x[k] + x2[k];
            break;
        }
        case RB_OP_LINEAR: {
            const float *w = pvalue(r, n, RB_SLOT_WEIGHT), *bias = pvalue(r, n, RB_SLOT_BIAS);
            for (int64_t b = 0; b < r->batch; b++)
                for (int64_t o = 0; o < n->c; o++) {
                    double sum = bias ? bias[o] : 0.0;
                    for (int64_t k = 0; k < in_size; k++)
                        sum += (double)w[o * in_size + k] * x[b * in_size + k];
                    y[b * n->c + o] = sum;
                }
            break;
        }
        case RB_OP_SOFTMAX_CE: {
            rb_status s = ce_forward(r, n, x, labels, y);
            if (s != RB_OK)
                return s;
            break;
        }
        }
    }
    r->forward_done = true;
    return RB_OK;
}

/* ------------------------------------------------------------ backward */

static void run_backward(rb_reference *r, bool weight_grads, bool input_grad)
{
    rb_graph *g = r->g;
    bool bn_training = r->training;
    for (size_t i = 0; i < g->n_params; i++)
        if (r->param_grad[i])
            memset(r->param_grad[i], 0, (size_t)g->params[i].numel * sizeof(double));
    for (size_t i = g->n_nodes; i-- > 0;) {
        const rb_node *n = g->nodes[i];
        const double *dy = r->grad[i];
        const double *x = n->n_in ? r->value[n->in[0]->index] : NULL;
        double *dx = n->n_in ? r->grad[n->in[0]->index] : NULL;
        int64_t size = node_size(n), in_size = n->n_in ? node_size(n->in[0]) : size;
        double *dw = NULL, *db = NULL;
        if (weight_grads && n->param[RB_SLOT_WEIGHT] >= 0 &&
            !g->params[n->param[RB_SLOT_WEIGHT]].frozen) {
            dw = r->param_grad[n->param[RB_SLOT_WEIGHT]];
            if (n->param[RB_SLOT_BIAS] >= 0)
                db = r->param_grad[n->param[RB_SLOT_BIAS]];
        }
        switch (n->op) {
        case RB_OP_INPUT: {
            int64_t hw = n->h * n->w;
            if (!input_grad)
                break;
            for (int64_t b = 0; b < r->batch; b++)
                for (int64_t c = 0; c < n->c; c++)
                    for (int64_t p = 0; p < hw; p++) {
                        int64_t k = (b * n->c + c) * hw + p;
                        r->input_grad[k] = n->attr.input.std ? dy[k] / n->attr.input.std[c] : dy[k];
                    }
            break;
        }
        case RB_OP_CONV: conv_backward(r, n, x, dy, dx, dw, db); break;
        case RB_OP_BATCHNORM: bn_backward(r, n, x, dy, dx, dw, db, bn_training); break;
        case RB_OP_RELU:
            /* PyTorch passes the gradient where the output is positive. */
            for (int64_t k = 0; k < r->batch * size; k++)
                dx[k] += r->value[i][k] > 0 ? dy[k] : 0;
            break;
        case RB_OP_MAXPOOL:
        case RB_OP_AVGPOOL: pool_backward(r, n, dy, dx); break;
        case RB_OP_GLOBAL_AVGPOOL: {
            int64_t hw = n->in[0]->h * n->in[0]->w;
            for (int64_t k = 0; k < r->batch * n->c; k++)
                for (int64_t p = 0; p < hw; p++)
                    dx[k * hw + p] += dy[k] / (double)hw;
            break;
        }
        case RB_OP_ADD: {
            double *dx2 = r->grad[n->in[1]->index];
            for (int64_t k = 0; k < r->batch * size; k++) {
                dx[k] += dy[k];
                dx2[k] += dy[k];
            }
            break;
        }
        case RB_OP_LINEAR: {
            const float *w = pvalue(r, n, RB_SLOT_WEIGHT);
            for (int64_t b = 0; b < r->batch; b++)
                for (int64_t o = 0; o < n->c; o++) {
                    double gval = dy[b * n->c + o];
                    if (db)
                        db[o] += gval;
                    for (int64_t k = 0; k < in_size; k++) {
                        if (dw)
                            dw[o * in_size + k] += gval * x[b * in_size + k];
                        dx[b * in_size + k] += gval * w[o * in_size + k];
                    }
                }
            break;
        }
        case RB_OP_SOFTMAX_CE: {
            int64_t k = n->in[0]->c;
            const double *prob = r->saved[i];
            for (int64_t b = 0; b < r->batch; b++)
                for (int64_t c = 0; c < k; c++)
                    dx[b * k + c] += dy[b] * (prob[b * k + c] - (c == r->labels[b] ? 1.0 : 0.0));
            break;
        }
        }
    }
    r->have_grads = true;
    r->have_param_grads = weight_grads;
    r->have_input_grad = input_grad;
}

rb_status rb_reference_backward_from(rb_reference *r, const rb_node *node, const double *seed,
                                     bool weight_grads, bool input_grad)
{
    rb_graph *g = r->g;
    if (!r->forward_done)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "reference: backward before any forward");
    if (node == NULL || node->index >= g->n_nodes || g->nodes[node->index] != node)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "reference: backward from a node of another graph");
    for (size_t i = 0; i < g->n_nodes; i++)
        memset(r->grad[i], 0, (size_t)(r->batch * node_size(g->nodes[i])) * sizeof(double));
    memcpy(r->grad[node->index], seed, (size_t)(r->batch * node_size(node)) * sizeof(double));
    run_backward(r, weight_grads, input_grad);
    return RB_OK;
}

rb_status rb_reference_backward(rb_reference *r, bool weight_grads, bool input_grad)
{
    double *seed;
    rb_status s;
    if (r->loss_node == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "reference: the graph has no loss node to start backward from");
    seed = malloc((size_t)r->batch * sizeof *seed);
    if (seed == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "reference: out of memory");
    /* d mean / d loss_i = 1 / N */
    for (int64_t b = 0; b < r->batch; b++)
        seed[b] = 1.0 / (double)r->batch;
    s = rb_reference_backward_from(r, r->loss_node, seed, weight_grads, input_grad);
    free(seed);
    return s;
}

const double *rb_reference_value(const rb_reference *r, const rb_node *node)
{
    return r->forward_done ? r->value[node->index] : NULL;
}

const double *rb_reference_node_grad(const rb_reference *r, const rb_node *node)
{
    return r->have_grads ? r->grad[node->index] : NULL;
}

const double *rb_reference_param_grad(const rb_reference *r, size_t index)
{
    if (!r->have_param_grads || index >= r->g->n_params || r->g->params[index].frozen)
        return NULL;
    return r->param_grad[index];
}

const double *rb_reference_input_grad(const rb_reference *r)
{
    return r->have_input_grad ? r->input_grad : NULL;
}

double rb_reference_loss(const rb_reference *r)
{
    return r->loss;
}
