/* apgd-t: targeted Auto-PGD on the targeted DLR loss (Croce & Hein, ICML
 * 2020; autoattack's APGDAttack_targeted), the second attack of
 * AutoAttack's standard ensemble. Its success is still a misclassification:
 * the targets only steer the loss. For each example the model classifies
 * correctly, targets are tried in turn, the classes of the 2nd, 3rd, ...
 * (target-classes + 1)-th largest clean logits (ties: the lower class
 * first), each with a whole APGD run (apgd.c) on the examples no earlier
 * target fooled:
 *   loss = -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12).
 * A fooled example ends at its fooling iterate; one no target fooled at
 * its highest-loss point towards the last target; one the model already
 * misclassifies stays clean. Target t's random starts come from the stream
 * RB_RNG_STREAM(RB_RNG_USER + 1, restart << 8 | t % 256), keyed by example,
 * so each target starts elsewhere. Needs 4 classes or more and at most
 * classes - 1 targets; chooses its own targets, so runtime-targeted runs
 * are refused. */
#include <stdlib.h>
#include <string.h>

#include <robusta/plugin.h>

#include "apgd.h"
#include "ranked.h"

#define WHO "apgd-t"

static const rb_param_spec apgd_t_params[] = {
    APGD_PARAMS_COMMON,
    {"target-classes", RB_PARAM_INT, "9", "[1, 100000]", 0,
     "targets tried per example: the classes of the 2nd to (N+1)-th largest clean logits"},
    {NULL}};

typedef struct buffers {
    rb_tensor *clean, *logits;
    float *xs, *x0s;
    int64_t *order, *labels, *targets, *row_of;
    bool *fooled, *done;
    ranked_class *rank;
} buffers;

static void buffers_free(buffers *m)
{
    rb_tensor_destroy(m->clean);
    rb_tensor_destroy(m->logits);
    free(m->xs);
    free(m->x0s);
    free(m->order);
    free(m->labels);
    free(m->targets);
    free(m->row_of);
    free(m->fooled);
    free(m->done);
    free(m->rank);
}

static rb_status buffers_alloc(buffers *m, const float *x0, int64_t rows, int64_t cols, int64_t classes)
{
    size_t n = (size_t)rows, nc = (size_t)(rows * cols);
    int64_t shape[2] = {rows, cols}, lshape[2] = {rows, classes};
    memset(m, 0, sizeof *m);
    if (rb_tensor_wrap(&m->clean, RB_DTYPE_F32, 2, shape, (void *)(uintptr_t)x0) != RB_OK ||
        rb_tensor_create(&m->logits, RB_DTYPE_F32, 2, lshape) != RB_OK) {
        buffers_free(m);
        return rb_error_prefix(WHO ": buffers: ");
    }
    m->xs = malloc(nc * sizeof *m->xs);
    m->x0s = malloc(nc * sizeof *m->x0s);
    m->order = malloc(n * (size_t)classes * sizeof *m->order);
    m->labels = malloc(n * sizeof *m->labels);
    m->targets = malloc(n * sizeof *m->targets);
    m->row_of = malloc(n * sizeof *m->row_of);
    m->fooled = malloc(n * sizeof *m->fooled);
    m->done = calloc(n, sizeof *m->done);
    m->rank = malloc((size_t)classes * sizeof *m->rank);
    if (!m->xs || !m->x0s || !m->order || !m->labels || !m->targets || !m->row_of || !m->fooled || !m->done ||
        !m->rank) {
        buffers_free(m);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, WHO ": out of memory for %lld rows", (long long)rows);
    }
    return RB_OK;
}

static rb_status apgd_t_run(void *self, const rb_params *params, const rb_attack_oracle *oracle,
                            rb_attack_batch *b)
{
    rb_attack_view v;
    apgd_settings set;
    buffers m;
    int64_t targets, classes;
    rb_status st = apgd_open_run(WHO, params, APGD_LOSS_DLR_TARGETED, b, &v, &set);
    (void)self;
    if (st == RB_OK)
        st = rb_params_get_int(params, "target-classes", &targets);
    if (st != RB_OK)
        return st;
    if (b->targeted)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            WHO ": chooses its own targets (the top clean logits); run it untargeted");
    if (!RB_ATTACK_ORACLE_HAS(oracle, classes) || oracle->logit_loss_and_grad == NULL || oracle->logits == NULL)
        return rb_error_set(RB_ERR_UNSUPPORTED, WHO ": needs the oracle's logit_loss_and_grad and classes (ABI 3)");
    classes = oracle->classes;
    if (classes < apgd_min_classes(APGD_LOSS_DLR_TARGETED))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            WHO ": the targeted DLR loss needs at least 4 classes, the model has %lld",
                            (long long)classes);
    if (targets > classes - 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            WHO ": %lld target classes asked, but a model of %lld classes has at most %lld other "
                            "classes; use --target-classes %lld or fewer",
                            (long long)targets, (long long)classes, (long long)(classes - 1),
                            (long long)(classes - 1));
    if (v.rows == 0 || v.cols == 0)
        return RB_OK;
    if ((st = buffers_alloc(&m, v.x0, v.rows, v.cols, classes)) != RB_OK)
        return st;

    /* Clean logits: which rows to attack, and their targets in order. */
    if ((st = oracle->logits(oracle->ctx, m.clean, m.logits)) != RB_OK) {
        st = rb_error_prefix(WHO ": the clean logits: ");
        goto done;
    }
    memcpy(v.x, v.x0, (size_t)(v.rows * v.cols) * sizeof *v.x);
    for (int64_t r = 0; r < v.rows; r++) {
        rank_classes((const float *)rb_tensor_cdata(m.logits) + r * classes, classes, m.order + r * classes, m.rank);
        m.done[r] = m.order[r * classes] != b->labels[r]; /* misclassified already */
    }

    for (int64_t t = 0; t < targets; t++) {
        int64_t n = 0;
        uint32_t stream = RB_RNG_STREAM(RB_RNG_USER + 1, ((uint32_t)b->restart & 0xffffu) << 8 | (uint32_t)(t & 0xff));
        for (int64_t r = 0; r < v.rows; r++) {
            if (m.done[r])
                continue;
            memcpy(m.x0s + n * v.cols, v.x0 + r * v.cols, (size_t)v.cols * sizeof *v.x0);
            m.labels[n] = b->labels[r];
            m.targets[n] = m.order[r * classes + t + 1];
            m.row_of[n++] = r;
        }
        if (n == 0)
            break;
        st = apgd_run_rows(WHO, &set, oracle, b, stream, n, v.cols, m.row_of, m.xs, m.x0s, m.labels, m.targets, false,
                           m.fooled);
        if (st != RB_OK)
            goto done;
        for (int64_t k = 0; k < n; k++) {
            memcpy(v.x + m.row_of[k] * v.cols, m.xs + k * v.cols, (size_t)v.cols * sizeof *v.x);
            m.done[m.row_of[k]] = m.fooled[k];
        }
    }
done:
    buffers_free(&m);
    return st;
}

RB_ATTACK_PLUGIN("apgd-t", "1.0",
                 "targeted Auto-PGD on the DLR loss over the top clean classes, Linf or L2 (Croce & Hein 2020)",
                 apgd_t_params, .run = apgd_t_run);
