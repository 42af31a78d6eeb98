/* Models: an arch plugin's graph plus the metadata to rebuild it
 * (robusta/model.h documents the checkpoint metadata). */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include <robusta/log.h>
#include <robusta/model.h>
#include <robusta/robusta.h>

#include "sys/internal.h"
#include "sys/json.h"

struct rb_model {
    const rb_plugin *arch;
    rb_params *params;
    rb_model_input input;
    rb_graph *graph;
    rb_node *image, *logits, *loss;
    int64_t num_classes;
    /* With a task head (transfer): the task, its given parameters, the
     * backbone node the head reads (NULL when it reads several) and the
     * backbone's last node (everything up to it is the backbone).
     * head_only: the head alone on cached features, never saved. */
    const rb_plugin *task;
    rb_params *task_params;
    rb_node *features, *backbone_end;
    bool head_only;
    /* A head alone that reads several stages: where each one's values lie
     * in an example's packed input (rb_model_head_create), for the unpack
     * host ops, which point here. */
    struct packed_stage *packed;
    size_t n_packed;
    /* The images the task's targets refer to: the input, except for a
     * head alone, whose input is features but whose masks and boxes are
     * still in the whole model's image pixels. */
    int64_t target_height, target_width;
    /* The head's raw outputs (a task's), or the arch's logits alone. */
    rb_node *outputs[RB_TASK_MAX_OUTPUTS];
    size_t n_outputs;
};

/* The stage names an arch publishes its outputs under (robusta/plugin.h),
 * which a head may read and rb_model_head_create republishes. */
static const char *const stage_names[] = {RB_STAGE_FEATURES, RB_STAGE_STRIDE4, RB_STAGE_STRIDE8, RB_STAGE_STRIDE16,
                                          RB_STAGE_STRIDE32};

rb_model_input rb_model_input_imagenet(int64_t height, int64_t width)
{
    rb_model_input in = {.channels = 3, .height = height, .width = width,
                         .mean = {0.485f, 0.456f, 0.406f}, .std = {0.229f, 0.224f, 0.225f}};
    return in;
}

/* The words of a choice range "a|b|c" include `word`. */
static bool choice_has(const char *range, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = range; p != NULL && *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

static const rb_param_spec *find_spec(const rb_param_spec *specs, const char *name)
{
    for (size_t i = 0; specs != NULL && specs[i].name != NULL; i++)
        if (strcmp(specs[i].name, name) == 0)
            return &specs[i];
    return NULL;
}

rb_status rb_arch_resolve(const rb_registry *registry, const char *name, const rb_plugin **plugin,
                          const char **preset)
{
    const char *names[256];
    size_t n = 0;
    *plugin = NULL;
    *preset = NULL;
    if (name == NULL || name[0] == '\0')
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "no architecture given (--arch NAME)");
    /* Names first: a plugin is opened in-process only when it is used. */
    for (size_t i = 0; i < rb_registry_count(registry); i++)
        if (rb_registry_kind(registry, i) == RB_PLUGIN_ARCH &&
            strcmp(rb_registry_name(registry, i), name) == 0)
            return rb_registry_find(registry, RB_PLUGIN_ARCH, name, plugin);
    for (size_t i = 0; i < rb_registry_count(registry); i++) {
        const rb_plugin *p;
        const rb_param_spec *spec;
        if (rb_registry_kind(registry, i) != RB_PLUGIN_ARCH ||
            (p = rb_registry_get(registry, i)) == NULL)
            continue;
        if (strcmp(p->name, name) == 0) {
            *plugin = p;
            return RB_OK;
        }
        if (n < 256)
            names[n++] = p->name;
        spec = find_spec(p->params, "preset");
        if (spec != NULL && spec->type == RB_PARAM_CHOICE) {
            if (choice_has(spec->range, name) && strcmp(name, "none") != 0) {
                *plugin = p;
                *preset = name;
                return RB_OK;
            }
        }
    }
    {
        const char *near = rb_suggest(name, names, n);
        if (near != NULL)
            return rb_error_set(RB_ERR_NOT_FOUND, "unknown architecture '%s'; did you mean '%s'?", name, near);
        return rb_error_set(RB_ERR_NOT_FOUND,
                            "unknown architecture '%s' (robusta plugins --kind arch lists them and their presets)",
                            name);
    }
}

static rb_status copy_params(const rb_param_spec *specs, const rb_params *from, rb_params **out)
{
    char text[4096];
    rb_status s = rb_params_create(out, specs);
    if (s != RB_OK)
        return s;
    for (size_t i = 0; specs != NULL && specs[i].name != NULL; i++) {
        if (rb_params_source(from, specs[i].name) != RB_PARAM_GIVEN)
            continue;
        if ((s = rb_params_format(from, specs[i].name, text, sizeof text)) != RB_OK ||
            (s = rb_params_set(*out, specs[i].name, text)) != RB_OK) {
            rb_params_destroy(*out);
            *out = NULL;
            return s;
        }
    }
    return RB_OK;
}

static rb_status check_input(const rb_model_input *input)
{
    if (input == NULL || input->channels < 1 || input->channels > RB_MODEL_MAX_CHANNELS || input->height < 1 ||
        input->width < 1)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "model: input must have 1 to %d channels and a positive size", RB_MODEL_MAX_CHANNELS);
    for (int64_t k = 0; k < input->channels; k++)
        if (!(input->std[k] > 0.0f) || !isfinite(input->mean[k]) || !isfinite(input->std[k]))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "model: normalization of channel %lld needs a finite mean and a std > 0",
                                (long long)k);
    return RB_OK;
}

/* "task classify (plugins/task/classify.so)": the plugin and its file, for
 * messages about what it did. */
static const char *task_who(const rb_plugin *task, char *buf, size_t size)
{
    const char *file = rb_plugin_path(task);
    if (file != NULL)
        snprintf(buf, size, "task %s (%s)", task->name, file);
    else
        snprintf(buf, size, "task %s", task->name);
    return buf;
}

/* Checks that the backbone publishes every stage the task's head reads. */
static rb_status check_stages(rb_model *m, const char *who)
{
    const char *names[RB_TASK_MAX_STAGES] = {0};
    size_t count = 0;
    rb_status s = m->task->ops.task->stages(m->task_params, names, RB_TASK_MAX_STAGES, &count);
    if (s != RB_OK)
        return rb_error_prefix("%s: ", who);
    if (count == 0 || count > RB_TASK_MAX_STAGES)
        return rb_error_set(RB_ERR_PLUGIN, "%s: its stages callback names %zu stages; a head reads 1 to %d", who,
                            count, RB_TASK_MAX_STAGES);
    for (size_t i = 0; i < count; i++) {
        rb_node *n;
        char published[128] = "";
        size_t len = 0;
        if (names[i] != NULL && rb_graph_find(m->graph, names[i], &n) == RB_OK)
            continue;
        for (size_t k = 0; k < sizeof stage_names / sizeof stage_names[0]; k++)
            if (rb_graph_find(m->graph, stage_names[k], &n) == RB_OK && len < sizeof published)
                len += (size_t)snprintf(published + len, sizeof published - len, "%s%s", len ? ", " : "",
                                        stage_names[k]);
        return rb_error_set(RB_ERR_PLUGIN,
                            "%s: its head reads stage '%s', which arch %s does not publish (it publishes: %s)", who,
                            names[i] ? names[i] : "(null)", m->arch->name, len ? published : "none");
    }
    return RB_OK;
}

/* The graph's target node for a task's dataset kind. */
static rb_status target_node(rb_graph *g, rb_dataset_kind kind, rb_node **out)
{
    switch (kind) {
    case RB_DATASET_CLASSIFICATION: return rb_graph_target(g, RB_TARGET_LABELS, out);
    case RB_DATASET_SEGMENTATION: return rb_graph_target(g, RB_TARGET_MASKS, out);
    case RB_DATASET_DETECTION: return rb_graph_target(g, RB_TARGET_BOXES, out);
    }
    return rb_error_set(RB_ERR_INVALID_ARGUMENT, "model: unknown dataset kind %d", (int)kind);
}

/* Adds the task's head and loss on the graph's published stages and
 * records its outputs; a classification head's first output must be
 * classes x 1 x 1. */
static rb_status add_head(rb_model *m, int64_t num_classes)
{
    const rb_task_ops *ops = m->task->ops.task;
    rb_task_target target = {.num_classes = num_classes, .channels = m->input.channels,
                             .height = m->target_height > 0 ? m->target_height : m->input.height,
                             .width = m->target_width > 0 ? m->target_width : m->input.width};
    rb_node *targets;
    int64_t c, h, w;
    char who[PATH_MAX + 80];
    rb_status s;

    task_who(m->task, who, sizeof who);
    if ((s = check_stages(m, who)) != RB_OK)
        return s;
    m->n_outputs = 0;
    if ((s = ops->build_head(m->graph, m->task_params, &target, m->outputs, RB_TASK_MAX_OUTPUTS, &m->n_outputs)) !=
        RB_OK)
        return rb_error_prefix("%s: ", who);
    if (m->n_outputs == 0 || m->n_outputs > RB_TASK_MAX_OUTPUTS)
        return rb_error_set(RB_ERR_PLUGIN, "%s: its head gives %zu outputs; a head gives 1 to %d", who,
                            m->n_outputs, RB_TASK_MAX_OUTPUTS);
    for (size_t i = 0; i < m->n_outputs; i++)
        if (m->outputs[i] == NULL || rb_node_index(m->outputs[i]) <= rb_node_index(m->backbone_end))
            return rb_error_set(RB_ERR_PLUGIN, "%s: head output %zu is %s, not a node of the head", who, i,
                                m->outputs[i] == NULL ? "NULL" : rb_node_name(m->outputs[i]));
    m->logits = m->outputs[0];
    rb_node_shape(m->logits, &c, &h, &w);
    if (ops->dataset_kind == RB_DATASET_CLASSIFICATION && (c != num_classes || h != 1 || w != 1))
        return rb_error_set(RB_ERR_PLUGIN, "%s: its head gives %lldx%lldx%lld, not %lld x 1 x 1", who, (long long)c,
                            (long long)h, (long long)w, (long long)num_classes);
    m->num_classes = num_classes;
    if ((s = target_node(m->graph, ops->dataset_kind, &targets)) != RB_OK)
        return s;
    if ((s = ops->build_loss(m->graph, m->task_params, m->outputs, m->n_outputs, targets, &m->loss)) != RB_OK)
        return rb_error_prefix("%s: ", who);
    if (m->loss == NULL)
        return rb_error_set(RB_ERR_PLUGIN, "%s: build_loss made no loss node", who);
    return RB_OK;
}

static rb_status model_alloc(rb_model **out, const rb_plugin *arch, const rb_params *params,
                             const rb_plugin *task, const rb_params *task_params)
{
    rb_model *m = calloc(1, sizeof *m);
    rb_status s;
    *out = NULL;
    if (m == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory creating a model");
    m->arch = arch;
    m->task = task;
    s = params != NULL ? copy_params(arch->params, params, &m->params) : rb_params_create(&m->params, arch->params);
    if (s == RB_OK && task != NULL)
        s = task_params != NULL ? copy_params(task->params, task_params, &m->task_params)
                                : rb_params_create(&m->task_params, task->params);
    if (s == RB_OK)
        s = rb_graph_create(&m->graph);
    if (s != RB_OK) {
        rb_model_destroy(m);
        return s;
    }
    *out = m;
    return RB_OK;
}

rb_status rb_model_create_with_head(rb_model **out, const rb_plugin *arch, const rb_params *params,
                                    const rb_plugin *task, const rb_params *task_params,
                                    const rb_model_input *input, int64_t num_classes)
{
    rb_model *m = NULL;
    rb_status s;
    *out = NULL;
    if (arch == NULL || arch->kind != RB_PLUGIN_ARCH)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "model: '%s' is not an architecture plugin",
                            arch ? arch->name : "(null)");
    if (task != NULL && task->kind != RB_PLUGIN_TASK)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "model: '%s' is not a task plugin", task->name);
    if ((s = check_input(input)) != RB_OK || (s = model_alloc(&m, arch, params, task, task_params)) != RB_OK)
        return s;
    m->input = *input;
    if (task != NULL) {
        /* The backbone alone: the head replaces the source classifier. */
        if (!rb_params_declares(m->params, "num-classes"))
            s = rb_error_set(RB_ERR_UNSUPPORTED,
                             "arch %s has no num-classes parameter, so a task head cannot replace its classifier",
                             arch->name);
        else
            s = rb_params_set(m->params, "num-classes", "0");
    }
    if (s == RB_OK)
        s = rb_params_check_required(m->params);
    if (s == RB_OK && task != NULL)
        s = rb_params_check_required(m->task_params);
    if (s == RB_OK)
        s = rb_graph_input(m->graph, input->channels, input->height, input->width, input->mean, input->std,
                           &m->image);
    if (s == RB_OK) {
        s = arch->ops.arch->build(m->graph, m->image, m->params, &m->logits);
        if (s != RB_OK)
            rb_error_prefix("arch %s: ", arch->name);
    }
    if (s == RB_OK && task != NULL) {
        m->backbone_end = rb_graph_node(m->graph, rb_graph_node_count(m->graph) - 1);
        if (m->logits != NULL)
            s = rb_error_set(RB_ERR_PLUGIN, "arch %s built a classifier although num-classes is 0", arch->name);
        else
            s = add_head(m, num_classes);
        if (s == RB_OK && rb_model_head_inputs(m, &m->features, 1) != 1)
            m->features = NULL; /* several stages (or none): no single features node */
    } else if (s == RB_OK) {
        if (m->logits == NULL)
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "arch %s: built no classifier (num_classes 0?)", arch->name);
        if (s == RB_OK) {
            int64_t c, h, w;
            rb_node_shape(m->logits, &c, &h, &w);
            if (h != 1 || w != 1)
                s = rb_error_set(RB_ERR_PLUGIN, "arch %s: logits '%s' are %lldx%lldx%lld, not K x 1 x 1",
                                 arch->name, rb_node_name(m->logits), (long long)c, (long long)h, (long long)w);
            m->num_classes = c;
        }
        if (s == RB_OK) {
            m->outputs[0] = m->logits;
            m->n_outputs = 1;
            s = rb_graph_softmax_cross_entropy(m->graph, m->logits, &m->loss);
        }
    }
    if (s != RB_OK) {
        rb_model_destroy(m);
        return s;
    }
    *out = m;
    return RB_OK;
}

rb_status rb_model_create(rb_model **out, const rb_plugin *arch, const rb_params *params,
                          const rb_model_input *input)
{
    return rb_model_create_with_head(out, arch, params, NULL, NULL, input, 0);
}

rb_status rb_model_init_params(rb_model *m, uint64_t seed)
{
    const rb_task_ops *ops;
    char who[PATH_MAX + 80];
    rb_status s;
    if (m == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_model_init_params: no model");
    if ((s = rb_graph_init_params(m->graph, seed)) != RB_OK)
        return s;
    ops = m->task != NULL ? m->task->ops.task : NULL;
    if (ops == NULL || ops->init_head == NULL)
        return RB_OK;
    rb_error_clear();
    if ((s = ops->init_head(m->graph, m->task_params, seed)) != RB_OK) {
        task_who(m->task, who, sizeof who);
        return rb_error_prefix("%s: init_head: ", who);
    }
    return RB_OK;
}

/* One stage of a packed head input: `size` values from `offset` of each
 * example's row. */
typedef struct packed_stage {
    int64_t offset, size;
} packed_stage;

static int64_t packed_row(const rb_host_io *io)
{
    return io->shapes[0][0] * io->shapes[0][1] * io->shapes[0][2];
}

static rb_status unpack_forward(const rb_host_io *io, void *user)
{
    const packed_stage *p = user;
    int64_t row = packed_row(io);
    for (int64_t b = 0; b < io->batch; b++)
        memcpy(io->output + b * p->size, io->inputs[0] + b * row + p->offset, (size_t)p->size * sizeof(float));
    return RB_OK;
}

static rb_status unpack_backward(const rb_host_io *io, void *user)
{
    const packed_stage *p = user;
    int64_t row = packed_row(io);
    for (int64_t b = 0; io->input_grads[0] != NULL && b < io->batch; b++)
        memcpy(io->input_grads[0] + b * row + p->offset, io->output_grad + b * p->size,
               (size_t)p->size * sizeof(float));
    return RB_OK;
}

/* Publishes `node` of the head alone under every stage name the backbone
 * gives `stage` in the whole model, so the task finds it as before. */
static rb_status publish_as(rb_model *m, rb_node *node, const rb_model *full, const rb_node *stage)
{
    rb_status s = RB_OK;
    for (size_t i = 0; s == RB_OK && i < sizeof stage_names / sizeof stage_names[0]; i++) {
        rb_node *n;
        if (rb_graph_find(full->graph, stage_names[i], &n) == RB_OK && n == stage)
            s = rb_graph_publish(m->graph, node, stage_names[i]);
    }
    return s;
}

/* The input of a head alone: the one node it reads as it is (the pooled
 * features as a 1 x C x 1 image, as rb_split_create_features has always
 * given them: linear heads flatten their input, so the weights keep their
 * shapes; a stage as its C x H x W, even at 1 x 1: its head pools it), or
 * several packed into one 1 x 1 x total row, each taken out again by an
 * unpack host op. No normalization. */
static rb_status head_input(rb_model *m, const rb_model *full, rb_node *const *stages, size_t n)
{
    int64_t c, h, w, total = 0;
    rb_status s;
    rb_node_shape(stages[0], &c, &h, &w);
    if (n == 1) {
        bool vector = strcmp(rb_model_stage_name(full, stages[0]), RB_STAGE_FEATURES) == 0;
        m->input.channels = vector ? 1 : c;
        m->input.height = vector ? c : h;
        m->input.width = vector ? 1 : w;
    } else {
        if ((m->packed = calloc(n, sizeof *m->packed)) == NULL)
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "model: out of memory");
        m->n_packed = n;
        for (size_t k = 0; k < n; k++) {
            rb_node_shape(stages[k], &c, &h, &w);
            m->packed[k] = (packed_stage){total, c * h * w};
            total += c * h * w;
        }
        m->input.channels = m->input.height = 1;
        m->input.width = total;
    }
    m->input.mean[0] = 0.0f;
    m->input.std[0] = 1.0f;
    s = rb_graph_input(m->graph, m->input.channels, m->input.height, m->input.width, NULL, NULL, &m->image);
    if (s == RB_OK && n == 1) {
        m->features = m->backbone_end = m->image;
        return publish_as(m, m->image, full, stages[0]);
    }
    for (size_t k = 0; s == RB_OK && k < n; k++) {
        char name[64];
        rb_host_op op = {.name = "unpack a cached stage", .forward = unpack_forward, .backward = unpack_backward,
                         .user = &m->packed[k]};
        rb_node_shape(stages[k], &op.out_channels, &op.out_height, &op.out_width);
        snprintf(name, sizeof name, "%s.unpacked", rb_model_stage_name(full, stages[k]));
        if ((s = rb_graph_host_op(m->graph, name, &op, &m->image, 1, &m->backbone_end)) == RB_OK)
            s = publish_as(m, m->backbone_end, full, stages[k]);
    }
    return s;
}

rb_status rb_model_head_create(rb_model **out, const rb_model *full)
{
    rb_node *stages[sizeof stage_names / sizeof stage_names[0]];
    rb_model *m = NULL;
    size_t reads;
    rb_status s;
    *out = NULL;
    if (full == NULL || full->task == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "model: only a model with a task head has a head to detach");
    reads = rb_model_head_inputs(full, stages, sizeof stages / sizeof stages[0]);
    if (reads == 0)
        return rb_error_set(RB_ERR_UNSUPPORTED, "model: the %s head reads nothing of the backbone",
                            full->task->name);
    /* each node a stage name: the distinct nodes are at most the names */
    if (reads > sizeof stages / sizeof stages[0])
        return rb_error_set(RB_ERR_UNSUPPORTED,
                            "model: the %s head reads %zu backbone nodes, more than the backbone publishes stages",
                            full->task->name, reads);
    for (size_t k = 0; k < reads; k++)
        if (rb_model_stage_name(full, stages[k]) == NULL)
            return rb_error_set(RB_ERR_UNSUPPORTED,
                                "model: the %s head reads '%s', which the backbone publishes under no stage name",
                                full->task->name, rb_node_name(stages[k]));
    if ((s = model_alloc(&m, full->arch, full->params, full->task, full->task_params)) != RB_OK)
        return s;
    m->head_only = true;
    m->target_height = full->input.height;
    m->target_width = full->input.width;
    s = head_input(m, full, stages, reads);
    if (s == RB_OK)
        s = rb_graph_set_target_size(m->graph, full->input.height, full->input.width);
    if (s == RB_OK)
        s = add_head(m, full->num_classes);
    if (s == RB_OK && rb_model_head_inputs(m, NULL, 0) != reads)
        s = rb_error_set(RB_ERR_PLUGIN, "task %s: its detached head does not read the features it was given",
                         full->task->name);
    if (s != RB_OK) {
        rb_model_destroy(m);
        return s;
    }
    *out = m;
    return RB_OK;
}

size_t rb_model_head_inputs(const rb_model *m, rb_node **nodes, size_t capacity)
{
    size_t end, total, count = 0;
    if (m == NULL || m->task == NULL || m->backbone_end == NULL)
        return 0;
    end = rb_node_index(m->backbone_end);
    total = rb_graph_node_count(m->graph);
    /* Backbone nodes times the head's edges: a few hundred by a few. */
    for (size_t b = 0; b <= end; b++) {
        bool read = false;
        for (size_t i = end + 1; !read && i < total; i++) {
            const rb_node *n = rb_graph_node(m->graph, i);
            for (size_t k = 0; !read && k < rb_node_input_count(n); k++)
                read = rb_node_index(rb_node_input(n, k)) == b;
        }
        if (read) {
            if (count < capacity)
                nodes[count] = rb_graph_node(m->graph, b);
            count++;
        }
    }
    return count;
}

const char *rb_model_stage_name(const rb_model *m, const rb_node *node)
{
    for (size_t i = 0; m != NULL && node != NULL && i < sizeof stage_names / sizeof stage_names[0]; i++) {
        rb_node *n;
        if (rb_graph_find(m->graph, stage_names[i], &n) == RB_OK && n == node)
            return stage_names[i];
    }
    return NULL;
}

rb_status rb_model_copy_params(rb_model *dst, const rb_model *src, rb_model_part part, size_t *copied)
{
    size_t n = 0;
    if (part != RB_MODEL_ALL && dst->task == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "model: only a model with a task head has a backbone and a head");
    for (size_t i = 0; i < rb_graph_param_count(dst->graph); i++) {
        rb_param_info d, s;
        bool in_backbone;
        rb_graph_param(dst->graph, i, &d);
        in_backbone = dst->backbone_end != NULL && rb_node_index(d.owner) <= rb_node_index(dst->backbone_end);
        if ((part == RB_MODEL_BACKBONE && !in_backbone) || (part == RB_MODEL_HEAD && in_backbone))
            continue;
        if (rb_graph_find_param(src->graph, d.name, &s) != RB_OK)
            return rb_error_set(RB_ERR_NOT_FOUND, "model: tensor '%s' is not in the model copied from", d.name);
        if (s.ndim != d.ndim || memcmp(s.shape, d.shape, (size_t)d.ndim * sizeof *d.shape) != 0) {
            char have[128], want[128];
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "model: tensor '%s' is %s in the source but %s here", d.name,
                                rb_shape_format(s.ndim, s.shape, have, sizeof have),
                                rb_shape_format(d.ndim, d.shape, want, sizeof want));
        }
        memcpy(d.value, s.value, (size_t)d.numel * sizeof *d.value);
        n++;
    }
    if (copied != NULL)
        *copied = n;
    return RB_OK;
}

void rb_model_destroy(rb_model *m)
{
    if (m == NULL)
        return;
    rb_graph_destroy(m->graph);
    rb_params_destroy(m->params);
    rb_params_destroy(m->task_params);
    free(m->packed);
    free(m);
}

rb_graph *rb_model_graph(const rb_model *m) { return m->graph; }
rb_node *rb_model_logits(const rb_model *m) { return m->logits; }
rb_node *const *rb_model_outputs(const rb_model *m, size_t *count)
{
    *count = m->n_outputs;
    return m->outputs;
}
size_t rb_model_engine_outputs(const rb_model *m, rb_node **nodes)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_outputs; i++)
        nodes[n++] = m->outputs[i];
    if (m->n_outputs == 0 && m->logits != NULL)
        nodes[n++] = m->logits;
    if (m->loss != NULL)
        nodes[n++] = m->loss;
    return n;
}
rb_node *rb_model_loss(const rb_model *m) { return m->loss; }
const rb_model_input *rb_model_get_input(const rb_model *m) { return &m->input; }
int64_t rb_model_num_classes(const rb_model *m) { return m->num_classes; }
const rb_plugin *rb_model_arch(const rb_model *m) { return m->arch; }
const rb_params *rb_model_params(const rb_model *m) { return m->params; }
const rb_plugin *rb_model_task(const rb_model *m) { return m->task; }
const rb_params *rb_model_task_params(const rb_model *m) { return m->task_params; }
rb_node *rb_model_features(const rb_model *m) { return m->features; }
rb_node *rb_model_backbone_end(const rb_model *m) { return m->backbone_end; }

/* ------------------------------------------------------------ metadata */

static json_object *float_array(const float *v, int64_t n)
{
    json_object *a = json_object_new_array();
    for (int64_t i = 0; i < n; i++)
        json_object_array_add(a, rb_json_number((double)v[i]));
    return a;
}

static rb_status metadata_json(const rb_model *m, json_object **out)
{
    json_object *root = json_object_new_object(), *arch = json_object_new_object();
    json_object *params = json_object_new_object(), *input = json_object_new_object();
    const rb_param_spec *specs = m->arch->params;
    char text[4096];

    json_object_object_add(root, "format", json_object_new_string(RB_MODEL_FORMAT));
    json_object_object_add(root, "robusta", json_object_new_string(rb_version_string()));
    json_object_object_add(arch, "plugin", json_object_new_string(m->arch->name));
    json_object_object_add(arch, "plugin_version", json_object_new_string(m->arch->version));
    for (size_t i = 0; specs != NULL && specs[i].name != NULL; i++) {
        /* Only what was given: presets refuse explicit values that
         * contradict them, so defaults must stay defaults. */
        if (rb_params_source(m->params, specs[i].name) != RB_PARAM_GIVEN)
            continue;
        rb_params_format(m->params, specs[i].name, text, sizeof text);
        json_object_object_add(params, specs[i].name, json_object_new_string(text));
    }
    json_object_object_add(arch, "params", params);
    json_object_object_add(root, "arch", arch);
    json_object_object_add(input, "channels", json_object_new_int64(m->input.channels));
    json_object_object_add(input, "height", json_object_new_int64(m->input.height));
    json_object_object_add(input, "width", json_object_new_int64(m->input.width));
    json_object_object_add(input, "mean", float_array(m->input.mean, m->input.channels));
    json_object_object_add(input, "std", float_array(m->input.std, m->input.channels));
    json_object_object_add(root, "input", input);
    json_object_object_add(root, "num_classes", json_object_new_int64(m->num_classes));
    if (m->task != NULL) {
        json_object *task = json_object_new_object(), *tparams = json_object_new_object();
        specs = m->task->params;
        json_object_object_add(task, "plugin", json_object_new_string(m->task->name));
        json_object_object_add(task, "plugin_version", json_object_new_string(m->task->version));
        for (size_t i = 0; specs != NULL && specs[i].name != NULL; i++) {
            if (rb_params_source(m->task_params, specs[i].name) != RB_PARAM_GIVEN)
                continue;
            rb_params_format(m->task_params, specs[i].name, text, sizeof text);
            json_object_object_add(tparams, specs[i].name, json_object_new_string(text));
        }
        json_object_object_add(task, "params", tparams);
        json_object_object_add(root, "task", task);
    }
    *out = root;
    return RB_OK;
}

rb_status rb_model_to_checkpoint(const rb_model *m, rb_checkpoint **out)
{
    rb_checkpoint *ck = NULL;
    json_object *meta = NULL;
    rb_status s;
    if (m->head_only)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "model: a detached head is not a whole model; copy it into its model and save that");
    s = rb_checkpoint_create(&ck);
    if (s == RB_OK)
        s = metadata_json(m, &meta);
    if (s == RB_OK)
        s = rb_checkpoint_set_metadata(ck, json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PLAIN));
    json_object_put(meta);
    for (size_t i = 0; s == RB_OK && i < rb_graph_param_count(m->graph); i++) {
        rb_param_info p;
        s = rb_graph_param(m->graph, i, &p);
        if (s == RB_OK)
            s = rb_checkpoint_add(ck, p.name, RB_DTYPE_F32, p.ndim, p.shape, p.value);
    }
    if (s != RB_OK) {
        rb_checkpoint_destroy(ck);
        return s;
    }
    *out = ck;
    return RB_OK;
}

rb_status rb_model_save(const rb_model *m, const char *path)
{
    rb_checkpoint *ck;
    rb_status s = rb_model_to_checkpoint(m, &ck);
    if (s != RB_OK)
        return s;
    s = rb_checkpoint_save(ck, path, 0);
    rb_checkpoint_destroy(ck);
    return s;
}

/* ------------------------------------------------------------ loading */

static json_object *member(json_object *obj, const char *key, json_type type)
{
    json_object *v;
    if (obj == NULL || !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, type))
        return NULL;
    return v;
}

static rb_status read_floats(json_object *input, const char *key, float *out, int64_t n, const char *what)
{
    json_object *a = member(input, key, json_type_array);
    if (a == NULL || (int64_t)json_object_array_length(a) != n)
        return rb_error_set(RB_ERR_CORRUPT, "%s: metadata input.%s must be an array of %lld numbers", what, key,
                            (long long)n);
    for (int64_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(a, (size_t)i);
        if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
            return rb_error_set(RB_ERR_CORRUPT, "%s: metadata input.%s[%lld] is not a number", what, key,
                                (long long)i);
        out[i] = (float)json_object_get_double(v);
    }
    return RB_OK;
}

static rb_status read_int(json_object *obj, const char *section, const char *key, int64_t lo, int64_t hi,
                          int64_t *out, const char *what)
{
    json_object *v = member(obj, key, json_type_int);
    if (v == NULL || json_object_get_int64(v) < lo || json_object_get_int64(v) > hi)
        return rb_error_set(RB_ERR_CORRUPT, "%s: metadata %s%s must be an integer in [%lld, %lld]", what, section,
                            key, (long long)lo, (long long)hi);
    *out = json_object_get_int64(v);
    return RB_OK;
}

rb_status rb_model_load_params(rb_model *m, const rb_checkpoint *ck, const char *what)
{
    for (size_t i = 0; i < rb_graph_param_count(m->graph); i++) {
        rb_param_info p;
        rb_checkpoint_tensor t;
        rb_status s = rb_graph_param(m->graph, i, &p);
        if (s != RB_OK)
            return s;
        if (rb_checkpoint_find(ck, p.name, &t) != RB_OK)
            return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s' of the model is missing", what, p.name);
        if (t.dtype != RB_DTYPE_F32 || t.ndim != p.ndim ||
            memcmp(t.shape, p.shape, (size_t)p.ndim * sizeof *p.shape) != 0) {
            char have[128], want[128];
            return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s' is %s %s but the model needs f32 %s", what, p.name,
                                rb_dtype_str(t.dtype), rb_shape_format(t.ndim, t.shape, have, sizeof have),
                                rb_shape_format(p.ndim, p.shape, want, sizeof want));
        }
        if (t.data == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: loaded without tensor data", what);
        memcpy(p.value, t.data, t.nbytes);
    }
    for (size_t i = 0; i < rb_checkpoint_count(ck); i++) {
        rb_checkpoint_tensor t;
        rb_param_info p;
        rb_checkpoint_get(ck, i, &t);
        if (strncmp(t.name, RB_MODEL_STATE_PREFIX, strlen(RB_MODEL_STATE_PREFIX)) == 0)
            continue;
        if (rb_graph_find_param(m->graph, t.name, &p) != RB_OK)
            return rb_error_set(RB_ERR_CORRUPT, "%s: tensor '%s' is not a parameter of this %s model", what, t.name,
                                m->arch->name);
    }
    return RB_OK;
}

/* The "task" member of a transferred model's metadata: the plugin and the
 * parameters it was given. */
static rb_status read_task(const rb_registry *registry, json_object *task, const char *what,
                           const rb_plugin **plugin, rb_params **values)
{
    json_object *name = member(task, "plugin", json_type_string), *params = member(task, "params", json_type_object);
    rb_status s;
    if (name == NULL || params == NULL)
        return rb_error_set(RB_ERR_CORRUPT, "%s: metadata task needs plugin and params", what);
    if ((s = rb_registry_find(registry, RB_PLUGIN_TASK, json_object_get_string(name), plugin)) != RB_OK)
        return rb_error_prefix("%s was saved with task plugin '%s', which is not installed: ", what,
                               json_object_get_string(name));
    if ((s = rb_params_create(values, (*plugin)->params)) != RB_OK)
        return s;
    json_object_object_foreach(params, key, val)
    {
        if (!json_object_is_type(val, json_type_string))
            return rb_error_set(RB_ERR_CORRUPT, "%s: metadata task.params.%s is not a string", what, key);
        if ((s = rb_params_set(*values, key, json_object_get_string(val))) != RB_OK)
            return rb_error_prefix("%s: task parameter from the checkpoint: ", what);
    }
    return RB_OK;
}

rb_status rb_model_from_checkpoint(rb_model **out, const rb_registry *registry, const rb_checkpoint *ck,
                                   const char *what, int64_t height, int64_t width)
{
    json_object *root, *arch, *params, *input, *v, *task_json = NULL;
    const rb_plugin *plugin, *task = NULL;
    rb_params *values = NULL, *task_values = NULL;
    rb_model_input in;
    rb_model *m = NULL;
    rb_status s;
    int64_t classes;
    const char *plugin_name;

    *out = NULL;
    root = json_tokener_parse(rb_checkpoint_metadata(ck));
    if (root == NULL || !json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        return rb_error_set(RB_ERR_CORRUPT, "%s: metadata is not a JSON object", what);
    }
    v = member(root, "format", json_type_string);
    if (v == NULL || strcmp(json_object_get_string(v), RB_MODEL_FORMAT) != 0) {
        json_object_put(root);
        return rb_error_set(RB_ERR_CORRUPT, "%s: not a robusta model (metadata format is not \"%s\")", what,
                            RB_MODEL_FORMAT);
    }
    arch = member(root, "arch", json_type_object);
    v = member(arch, "plugin", json_type_string);
    params = member(arch, "params", json_type_object);
    input = member(root, "input", json_type_object);
    if (v == NULL || params == NULL || input == NULL) {
        json_object_put(root);
        return rb_error_set(RB_ERR_CORRUPT, "%s: metadata needs arch.plugin, arch.params and input", what);
    }
    plugin_name = json_object_get_string(v);
    s = rb_registry_find(registry, RB_PLUGIN_ARCH, plugin_name, &plugin);
    if (s != RB_OK) {
        rb_error_prefix("%s was saved by arch plugin '%s', which is not installed: ", what, plugin_name);
        json_object_put(root);
        return s;
    }
    memset(&in, 0, sizeof in);
    s = rb_params_create(&values, plugin->params);
    json_object_object_foreach(params, key, val)
    {
        if (s != RB_OK)
            break;
        if (!json_object_is_type(val, json_type_string)) {
            s = rb_error_set(RB_ERR_CORRUPT, "%s: metadata arch.params.%s is not a string", what, key);
            break;
        }
        s = rb_params_set(values, key, json_object_get_string(val));
        if (s != RB_OK)
            rb_error_prefix("%s: arch parameter from the checkpoint: ", what);
    }
    if (s == RB_OK)
        s = read_int(input, "input.", "channels", 1, RB_MODEL_MAX_CHANNELS, &in.channels, what);
    if (s == RB_OK)
        s = read_int(input, "input.", "height", 1, 1 << 20, &in.height, what);
    if (s == RB_OK)
        s = read_int(input, "input.", "width", 1, 1 << 20, &in.width, what);
    if (s == RB_OK)
        s = read_floats(input, "mean", in.mean, in.channels, what);
    if (s == RB_OK)
        s = read_floats(input, "std", in.std, in.channels, what);
    if (s == RB_OK)
        s = read_int(root, "", "num_classes", 1, INT32_MAX, &classes, what);
    if (s == RB_OK && json_object_object_get_ex(root, "task", &task_json))
        s = read_task(registry, task_json, what, &task, &task_values);
    if (s == RB_OK) {
        if (height > 0)
            in.height = height;
        if (width > 0)
            in.width = width;
        s = rb_model_create_with_head(&m, plugin, values, task, task_values, &in, classes);
        if (s != RB_OK)
            rb_error_prefix("%s: ", what);
    }
    if (s == RB_OK && m->num_classes != classes)
        s = rb_error_set(RB_ERR_CORRUPT, "%s: metadata says %lld classes but the architecture gives %lld", what,
                         (long long)classes, (long long)m->num_classes);
    /* Every float tensor, training state (momentum) included: NaN weights
     * would otherwise run, predicting class 0 with a loss of nan. */
    if (s == RB_OK)
        s = rb_checkpoint_check_finite(ck, what);
    if (s == RB_OK)
        s = rb_model_load_params(m, ck, what);
    json_object_put(root);
    rb_params_destroy(values);
    rb_params_destroy(task_values);
    if (s != RB_OK) {
        rb_model_destroy(m);
        return s;
    }
    *out = m;
    return RB_OK;
}

rb_status rb_model_load(rb_model **out, const rb_registry *registry, const char *path, int64_t height,
                        int64_t width)
{
    rb_checkpoint *ck;
    rb_status s = rb_checkpoint_load(&ck, path, 0);
    *out = NULL;
    if (s != RB_OK)
        return s;
    s = rb_model_from_checkpoint(out, registry, ck, path, height, width);
    rb_checkpoint_destroy(ck);
    return s;
}

/* ------------------------------------------------------------ will it fit? */

uint64_t rb_machine_memory_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    uint64_t total = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UINT64_MAX;
    FILE *f;
    /* cgroup v2: a container's limit ("max" when there is none) */
    if (access("/sys/fs/cgroup/memory.max", R_OK) == 0 && rb_file_open_regular("/sys/fs/cgroup/memory.max", &f) == RB_OK) {
        unsigned long long limit;
        if (fscanf(f, "%llu", &limit) == 1 && limit > 0 && limit < total)
            total = limit;
        fclose(f);
    }
    return total;
}

/* MiB, rounded up, with thousands separators: "362,115". */
static const char *mib_text(char *buf, size_t size, double bytes)
{
    double mib = ceil(bytes / (1 << 20));
    return rb_format_count(buf, size, (unsigned long long)(mib > 1e18 ? 1e18 : mib));
}

rb_status rb_model_check_memory(const rb_model *model, const rb_engine_options *options,
                                const rb_memory_engine *engines, size_t count, uint64_t data_bytes,
                                const char *advice)
{
    double arena = 0, need, have = (double)rb_machine_memory_bytes();
    int64_t batch = count > 0 ? engines[0].batch : 0;
    char a[40], d[40], t[40], h[40];
    if (model == NULL || (count > 0 && engines == NULL))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_model_check_memory: no model or no engines");
    for (size_t i = 0; i < count; i++) {
        uint64_t bytes;
        rb_engine_options o = options != NULL ? *options : (rb_engine_options){0};
        rb_status s;
        o.data_grads_only = engines[i].data_grads_only;
        if ((s = rb_engine_estimate_bytes(model->graph, engines[i].batch, &o, &bytes)) != RB_OK)
            return s;
        arena += (double)bytes;
    }
    need = arena + (double)data_bytes;
    if (need <= have)
        return RB_OK;
    return rb_error_set(RB_ERR_OUT_OF_MEMORY,
                        "needs about %s MiB (arena %s MiB at batch %lld, %lldx%lldx%lld images; data %s MiB) but this "
                        "machine has %s MiB: %s",
                        mib_text(t, sizeof t, need), mib_text(a, sizeof a, arena), (long long)batch,
                        (long long)model->input.channels, (long long)model->input.height,
                        (long long)model->input.width, mib_text(d, sizeof d, (double)data_bytes),
                        mib_text(h, sizeof h, have), advice != NULL ? advice : "use smaller batches or images");
}
