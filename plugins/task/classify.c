/* classify: a classification head for transfer learning, the target task of
 * Salman et al. (2020) and of most robust-prior studies.
 *
 * The head reads the backbone's pooled feature vector (RB_STAGE_FEATURES)
 * and replaces the source classifier:
 *   no --hidden:     fc            linear, features -> classes
 *   --hidden A,B:    fc.0 linear features -> A, ReLU, fc.2 linear A -> B,
 *                    ReLU, fc.4 linear B -> classes
 * The names are what PyTorch gives `model.fc = nn.Sequential(...)` (the
 * ReLUs hold indices 1, 3 ...), so an exported transferred model loads into
 * torchvision after the same assignment. The loss is softmax cross-entropy
 * on the labels given at run time.
 *
 * --stage stage1 .. stage4 reads that stage's output instead (strides 4 to
 * 32, C × H × W): the head is then a global average pool over H × W and the
 * layers above, on C features (the weights keep the same names; fc's input
 * is that stage's width, so such a model no longer loads into torchvision
 * as is). --stage stage4 pools what the backbone's own pooling pools: the
 * same function as the default, read one node earlier.
 *
 * Metrics: "accuracy" (top-1), "balanced_accuracy" (mean of per-class
 * accuracies over the classes that occur) and "class_accuracy.K" for every
 * class K that occurs (NaN-free: absent classes are left out). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/graph.h>
#include <robusta/plugin.h>

#define CLASSIFY_WHO "classify"
#define CLASSIFY_MAX_HIDDEN 8

static const rb_param_spec classify_params[] = {
    {"hidden", RB_PARAM_INT_LIST, NULL, "[1, 1048576]", 0,
     "widths of extra hidden layers (linear + ReLU) before the classifier, e.g. 512,256 (none by default)"},
    {"stage", RB_PARAM_CHOICE, RB_STAGE_FEATURES,
     RB_STAGE_FEATURES "|" RB_STAGE_STRIDE4 "|" RB_STAGE_STRIDE8 "|" RB_STAGE_STRIDE16 "|" RB_STAGE_STRIDE32, 0,
     "what the head reads: the pooled features, or a stage's output (stride 4 to 32), globally average-pooled"},
    {NULL}};

static rb_status classify_stages(const rb_params *params, const char **names, size_t capacity, size_t *count)
{
    rb_status s = rb_params_get_string(params, "stage", &names[0]);
    (void)capacity; /* the host gives RB_TASK_MAX_STAGES */
    *count = s == RB_OK ? 1 : 0;
    return s;
}

static rb_status classify_build_head(rb_graph *g, const rb_params *params, const rb_task_target *target,
                                     rb_node **outputs, size_t capacity, size_t *count)
{
    rb_node **prediction = &outputs[0];
    const int64_t *hidden = NULL;
    const char *stage = RB_STAGE_FEATURES;
    size_t n_hidden = 0;
    rb_node *x;
    char name[32];
    rb_status s;

    (void)capacity; /* at least 1 */
    *count = 1;
    if (target == NULL || target->num_classes < 2)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            CLASSIFY_WHO ": the target has %" PRId64 " class(es); a classifier needs at least 2",
                            target ? target->num_classes : 0);
    if ((s = rb_params_get_string(params, "stage", &stage)) != RB_OK)
        return s;
    if ((s = rb_graph_find(g, stage, &x)) != RB_OK)
        return rb_error_set(s, CLASSIFY_WHO ": the backbone publishes no '%s' stage to attach the head to (--stage)",
                            stage);
    if (strcmp(stage, RB_STAGE_FEATURES) != 0 && (s = rb_graph_global_avgpool(g, x, &x)) != RB_OK)
        return s;
    if (rb_params_source(params, "hidden") == RB_PARAM_GIVEN &&
        (s = rb_params_get_int_list(params, "hidden", &hidden, &n_hidden)) != RB_OK)
        return s;
    if (n_hidden > CLASSIFY_MAX_HIDDEN)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, CLASSIFY_WHO ": --hidden lists %zu layers; at most %d", n_hidden,
                            CLASSIFY_MAX_HIDDEN);
    if (n_hidden == 0)
        return rb_graph_linear(g, "fc", x, target->num_classes, true, prediction);
    for (size_t i = 0; i < n_hidden; i++) {
        snprintf(name, sizeof name, "fc.%zu", 2 * i);
        if ((s = rb_graph_linear(g, name, x, hidden[i], true, &x)) != RB_OK || (s = rb_graph_relu(g, x, &x)) != RB_OK)
            return s;
    }
    snprintf(name, sizeof name, "fc.%zu", 2 * n_hidden);
    return rb_graph_linear(g, name, x, target->num_classes, true, prediction);
}

static rb_status classify_build_loss(rb_graph *g, const rb_params *params, rb_node *const *outputs, size_t count,
                                     rb_node *targets, rb_node **loss)
{
    (void)params;
    (void)count;
    (void)targets; /* the softmax cross-entropy op reads the batch's labels itself */
    return rb_graph_softmax_cross_entropy(g, outputs[0], loss);
}

/* The arg-max class of each row of logits; ties go to the lowest class. */
static rb_status classify_decode(const rb_params *params, const rb_task_target *target, const float *const *outputs,
                                 const int64_t (*shapes)[3], size_t count, int64_t rows, rb_predictions *out)
{
    int64_t k = shapes[0][0] * shapes[0][1] * shapes[0][2];
    (void)params;
    (void)target;
    (void)count;
    for (int64_t i = 0; i < rows; i++) {
        const float *row = outputs[0] + i * k;
        int64_t best = 0;
        for (int64_t c = 1; c < k; c++)
            if (row[c] > row[best])
                best = c;
        out->labels[i] = best;
    }
    return RB_OK;
}

typedef struct metrics {
    int64_t classes;
    int64_t *count, *correct;
    char (*names)[40]; /* "class_accuracy.K", owned here so finalize can hand out pointers */
} metrics;

static void classify_metrics_destroy(void *state)
{
    metrics *m = state;
    if (m == NULL)
        return;
    free(m->count);
    free(m->correct);
    free(m->names);
    free(m);
}

static rb_status classify_metrics_create(const rb_params *params, const rb_task_target *target, void **state)
{
    metrics *m;
    (void)params;
    *state = NULL;
    if (target == NULL || target->num_classes < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, CLASSIFY_WHO ": metrics need the number of classes");
    m = calloc(1, sizeof *m);
    if (m == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, CLASSIFY_WHO ": out of memory for metrics");
    m->classes = target->num_classes;
    m->count = calloc((size_t)m->classes, sizeof *m->count);
    m->correct = calloc((size_t)m->classes, sizeof *m->correct);
    m->names = calloc((size_t)m->classes, sizeof *m->names);
    if (m->count == NULL || m->correct == NULL || m->names == NULL) {
        classify_metrics_destroy(m);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, CLASSIFY_WHO ": out of memory for metrics");
    }
    *state = m;
    return RB_OK;
}

/* Predicted labels against the batch's labels. */
static rb_status classify_metrics_accumulate(void *state, const rb_predictions *predictions, const rb_targets *targets)
{
    metrics *m = state;
    if (m == NULL || predictions == NULL || targets == NULL || predictions->labels == NULL || targets->labels == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, CLASSIFY_WHO ": metrics need a state, predicted labels and labels");
    if (targets->count != predictions->count)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            CLASSIFY_WHO ": %" PRId64 " predictions but %" PRId64 " labels", predictions->count,
                            targets->count);
    for (int64_t i = 0; i < predictions->count; i++) {
        int64_t y = targets->labels[i];
        if (y < 0 || y >= m->classes)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, CLASSIFY_WHO ": label %" PRId64 " of row %" PRId64
                                                                     " is outside [0, %" PRId64 ")",
                                y, i, m->classes);
        m->count[y]++;
        m->correct[y] += predictions->labels[i] == y;
    }
    return RB_OK;
}

static rb_status classify_metrics_finalize(void *state, rb_metric *out, size_t capacity, size_t *count)
{
    metrics *m = state;
    int64_t total = 0, correct = 0, present = 0;
    double balanced = 0;
    size_t n = 0;
    for (int64_t c = 0; c < m->classes; c++) {
        total += m->count[c];
        correct += m->correct[c];
        if (m->count[c] > 0) {
            present++;
            balanced += (double)m->correct[c] / (double)m->count[c];
        }
    }
    if (total == 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, CLASSIFY_WHO ": no examples were accumulated");
    if (n < capacity)
        out[n] = (rb_metric){"accuracy", (double)correct / (double)total};
    n++;
    if (n < capacity)
        out[n] = (rb_metric){"balanced_accuracy", balanced / (double)present};
    n++;
    for (int64_t c = 0; c < m->classes; c++) {
        if (m->count[c] == 0)
            continue;
        snprintf(m->names[c], sizeof m->names[c], "class_accuracy.%" PRId64, c);
        if (n < capacity)
            out[n] = (rb_metric){m->names[c], (double)m->correct[c] / (double)m->count[c]};
        n++;
    }
    *count = n < capacity ? n : capacity;
    return RB_OK;
}

RB_TASK_PLUGIN("classify", "2.0",
               "classification head (linear, optional hidden layers) on the pooled features or a pooled stage",
               classify_params, .dataset_kind = RB_DATASET_CLASSIFICATION, .primary_metric = "accuracy",
               .stages = classify_stages, .build_head = classify_build_head, .build_loss = classify_build_loss,
               .decode = classify_decode, .metrics_create = classify_metrics_create,
               .metrics_accumulate = classify_metrics_accumulate, .metrics_finalize = classify_metrics_finalize,
               .metrics_destroy = classify_metrics_destroy);
