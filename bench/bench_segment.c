/* Segmentation training and inference (issue 18's Performance section):
 * ResNet-18 (imagenet stem) with the segment task's FCN head on the stride-8
 * stage (layer2's output), 21 classes (Pascal VOC's), 224x224, batch 16, as
 * `robusta transfer --task segment --mode full` builds it (the arch plugin
 * with num-classes 0 and the task's head, through rb_model_create_with_head).
 * bench/torch_segment.py times the same model in PyTorch.
 *
 * --task detect (issue 19's Performance section) times detection instead,
 * as `transfer --task detect --mode full` builds it: the detect plugin's
 * FCOS head with its default options (the stride-8/16 merge, 4-conv towers
 * with GroupNorm, 128 wide) on layer2 and layer3, 20 classes (Pascal
 * VOC's), 3 synthetic boxes per image (fill_boxes), the FCOS loss host op;
 * infer reads the six raw outputs and runs the task's decode (FCOS's
 * post-processing). Lines say detect_step; bench/torch_detect.py times
 * torchvision's FCOSHead and FCOS loss on the same backbone features. The
 * profile of each mode's last step is printed too: the slowest nodes and
 * the head's share (print_top).
 *
 *   train  one training step: rb_engine_forward_targets (training mode,
 *          batch statistics) with masks (about 8% of pixels 255), backward
 *          with weight gradients, rb_sgd_step (momentum 0.9, weight decay
 *          5e-4, lr 0.01)
 *   infer  one inference batch: the backbone and head without the loss,
 *          forward in inference mode on an engine planned data_grads_only,
 *          the upsampled logits read out (rb_engine_read) and decoded into
 *          class masks by the task's own decode (the arg-max per pixel), what
 *          a prediction needs
 *
 * Each runs one warm-up step, then REPEATS timed steps (3 by default), and
 * reports the median, in a process of its own (the program runs itself with
 * the hidden --single), so that PEAK_MIB, the process's resident high-water
 * mark from before the model is built to the last step (benchutil.h), is
 * that mode's alone, as torch_segment.py measures PyTorch.
 *
 * The engine is told the outputs a transfer's engine lists
 * (rb_model_engine_outputs: the logits and the loss; the logits alone for
 * inference), so with the head on stage2 the backbone's layer3, layer4 and
 * pooled features, which reach neither, never run. Each mode's engine is
 * profiled (two clock reads per node) to show it: the "unused" line gives
 * the forward time of those nodes, 0 unless an engine computes them.
 *
 * Prints per mode
 *     perf,TASK_step,MODE,CONFIG,mbBATCHihSIZE,MS,IMAGES/S,THREADS,REPEATS,PEAK_MIB
 *     # MODE: unused forward NODES nodes (FIRST .. LAST): MS ms per step, PCT% of the step
 *     # MODE: node NAME: F ms forward, B ms backward, PCT% of the step
 * and a line in words. Never fails on time.
 *
 *   bench_segment [--quick] [--threads N] [--batch N] [--size N] [--repeats N]
 *                 [--task segment|detect] [--head fcn|aspp] [--only train|infer]
 * (--quick: batch 4; plugins come from RB_PLUGIN_PATH, then the install
 * folder.) With the hidden --serve and --only MODE it holds that mode's
 * model and runs a step per request on standard input, for
 * torch_segment.py's paired timing (serve_mode below). */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <robusta/robusta.h>

#include "benchutil.h"

#define MAX_REPEATS 64
#define BOXES_PER_IMAGE 3
/* The nodes the train mode's profile lists, the slowest first. */
#define TOP_NODES 8

static int threads, repeats = 3;
static int64_t batch = 16, size = 224;
static const char *head = "fcn";
/* --task detect: the detect plugin's FCOS head (default options) on stride 8
 * and 16, 20 classes (Pascal VOC's); segment: 21 (VOC's with background). */
static bool detect;
static int64_t CLASSES = 21;
static const char *task_name = "segment";

static int fail(const char *what)
{
    fprintf(stderr, "bench_segment: %s: %s\n", what, rb_last_error());
    return 1;
}

/* Deterministic images in [0, 1) and masks over the classes with every
 * 13th pixel ignored. */
static void fill(float *images, size_t n, int32_t *masks, size_t pixels)
{
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        images[i] = (float)(x >> 8) * (1.0f / 16777216.0f);
    }
    for (size_t i = 0; i < pixels; i++)
        masks[i] = i % 13 == 0 ? RB_IGNORE_LABEL : (int32_t)((i / 7) % CLASSES);
}

/* --task detect's boxes: BOXES_PER_IMAGE per image, box j of image i at
 * (x1, y1) = size x ((7i + 29j) mod 50, (11i + 17j) mod 50) / 100, size x
 * (0.1 + 0.15j) wide and size x (0.4 - 0.12j) high, class (3i + 5j) mod
 * CLASSES; torch_detect.py makes the same, from the same formula in double
 * rounded to float. */
static void fill_boxes(rb_box *boxes, int64_t *offsets)
{
    for (int64_t i = 0; i < batch; i++) {
        offsets[i] = i * BOXES_PER_IMAGE;
        for (int64_t j = 0; j < BOXES_PER_IMAGE; j++) {
            double x1 = (double)size * (double)((7 * i + 29 * j) % 50) / 100.0;
            double y1 = (double)size * (double)((11 * i + 17 * j) % 50) / 100.0;
            double w = (double)size * (0.1 + 0.15 * (double)j), h = (double)size * (0.4 - 0.12 * (double)j);
            boxes[i * BOXES_PER_IMAGE + j] =
                (rb_box){(float)x1, (float)y1, (float)(x1 + w), (float)(y1 + h), (3 * i + 5 * j) % CLASSES};
        }
    }
    offsets[batch] = batch * BOXES_PER_IMAGE;
}

/* Which nodes reach one of `ends` (outputs and the loss). */
static bool *reaching(const rb_graph *g, rb_node *const *ends, size_t n_ends)
{
    size_t n = rb_graph_node_count(g);
    bool *reach = calloc(n, sizeof *reach);
    if (reach == NULL)
        return NULL;
    for (size_t i = 0; i < n_ends; i++)
        if (ends[i] != NULL)
            reach[rb_node_index(ends[i])] = true;
    for (size_t i = n; i-- > 0;) {
        const rb_node *node = rb_graph_node(g, i);
        if (!reach[i])
            continue;
        for (size_t k = 0; k < rb_node_input_count(node); k++)
            reach[rb_node_index(rb_node_input(node, k))] = true;
    }
    return reach;
}

/* Forward seconds of the nodes that reach nothing, from the profile. */
static double unused_seconds(const rb_engine *e, const rb_graph *g, const bool *reach)
{
    double total = 0;
    for (size_t i = 0; i < rb_graph_node_count(g); i++) {
        double f = 0;
        if (!reach[i] && rb_engine_node_seconds(e, rb_graph_node(g, i), &f, NULL) == RB_OK)
            total += f;
    }
    return total;
}

static void print_unused(const char *mode, const rb_graph *g, const bool *reach, double seconds, double step)
{
    size_t count = 0;
    const char *first = NULL, *last = NULL;
    for (size_t i = 0; i < rb_graph_node_count(g); i++)
        if (!reach[i]) {
            count++;
            last = rb_node_name(rb_graph_node(g, i));
            if (first == NULL)
                first = last;
        }
    if (count == 0)
        printf("# %s: every node reaches an output or the loss\n", mode);
    else
        printf("# %s: unused forward %zu nodes (%s .. %s): %.1f ms per step, %.1f%% of the step\n", mode, count,
               first, last, seconds * 1e3, 100 * seconds / step);
}

/* The train mode's profile of its last step: the TOP_NODES slowest nodes
 * (forward + backward), then the nodes named "head." or "fpn." (the task's)
 * and the rest (the backbone, SGD excluded) in sum. */
static void print_top(const char *mode, const rb_engine *e, const rb_graph *g, double step)
{
    size_t n = rb_graph_node_count(g), top[TOP_NODES], shown = 0;
    double head_s = 0, rest_s = 0;
    rb_node *loss;
    for (size_t i = 0; i < n; i++) {
        double f = 0, b = 0;
        const char *name = rb_node_name(rb_graph_node(g, i));
        if (rb_engine_node_seconds(e, rb_graph_node(g, i), &f, &b) != RB_OK)
            continue;
        if (name != NULL && (strncmp(name, "head.", 5) == 0 || strncmp(name, "fpn.", 4) == 0))
            head_s += f + b;
        else
            rest_s += f + b;
    }
    for (; shown < TOP_NODES; shown++) { /* selection of the slowest not yet shown */
        double best = -1;
        size_t pick = n;
        for (size_t i = 0; i < n; i++) {
            double f = 0, b = 0;
            bool seen = false;
            for (size_t k = 0; k < shown; k++)
                seen = seen || top[k] == i;
            if (!seen && rb_engine_node_seconds(e, rb_graph_node(g, i), &f, &b) == RB_OK && f + b > best) {
                best = f + b;
                pick = i;
            }
        }
        if (pick == n)
            break;
        top[shown] = pick;
    }
    printf("# %s: head and merge nodes (head.*, fpn.*) %.1f ms, the other nodes %.1f ms, of a %.1f ms step (last "
           "step's profile)\n",
           mode, head_s * 1e3, rest_s * 1e3, step * 1e3);
    for (size_t k = 0; k < shown; k++) {
        double f = 0, b = 0;
        const rb_node *node = rb_graph_node(g, top[k]);
        rb_engine_node_seconds(e, node, &f, &b);
        printf("# %s: node %s: %.1f ms forward, %.1f ms backward, %.1f%% of the step\n", mode,
               rb_node_name(node) != NULL ? rb_node_name(node) : "?", f * 1e3, b * 1e3, 100 * (f + b) / step);
    }    /* the loss, wherever it ranks: detect's is a host op (plugins/task/fcos.c,
     * single-threaded, in double) */
    if (rb_graph_find(g, "head.loss", &loss) == RB_OK) {
        double f = 0, b = 0;
        if (rb_engine_node_seconds(e, loss, &f, &b) == RB_OK)
            printf("# %s: the loss head.loss (%s): %.1f ms forward, %.1f ms backward, %.1f%% of the step\n", mode,
                   rb_op_str(rb_node_op(loss)), f * 1e3, b * 1e3, 100 * (f + b) / step);
    }
}

static rb_status task_params(const rb_plugin *task, rb_params **out)
{
    rb_status s = rb_params_create(out, task->params);
    if (s == RB_OK && !detect)
        s = rb_params_set(*out, "head", head);
    return s;
}

static rb_status arch_params(const rb_registry *reg, const rb_plugin **arch, rb_params **out)
{
    const char *preset;
    rb_status s = rb_arch_resolve(reg, "resnet18", arch, &preset);
    if (s == RB_OK)
        s = rb_params_create(out, (*arch)->params);
    if (s == RB_OK && preset != NULL)
        s = rb_params_set(*out, RB_PARAM_PRESET, preset);
    return s;
}

static void report(const char *mode, const char *config, double t, double peak, const rb_engine *e)
{
    printf("perf,%s_step,%s,%s,mb%lldih%lld,%.1f,%.2f,%d,%d,%.0f\n", task_name, mode, config, (long long)batch,
           (long long)size, t * 1e3, (double)batch / t, threads, repeats, peak);
    printf("%s %s: %.1f ms per batch of %lld, %.2f images/s (%lldx%lld, %lld classes; arena %.0f MiB, peak resident "
           "%.0f MiB; %s)\n",
           config, mode, t * 1e3, (long long)batch, (double)batch / t, (long long)size, (long long)size,
           (long long)CLASSES,
           (double)rb_engine_arena_bytes(e) / (1 << 20), peak, rb_engine_threads(e));
}

/* The model's graph without its loss: what inference runs; `outputs`
 * (RB_TASK_MAX_OUTPUTS) gets the head's raw outputs, *count how many. */
static rb_status infer_graph(const rb_registry *reg, const rb_plugin *task, const rb_params *tp, rb_graph **out,
                             rb_node **outputs, size_t *count)
{
    const rb_plugin *arch;
    rb_params *ap = NULL;
    rb_model_input in = rb_model_input_imagenet(size, size);
    rb_task_target target = {.num_classes = CLASSES, .channels = 3, .height = size, .width = size};
    rb_node *x, *none = NULL;
    rb_status s = arch_params(reg, &arch, &ap);
    *out = NULL;
    *count = 0;
    if (s == RB_OK)
        s = rb_params_set(ap, RB_PARAM_NUM_CLASSES, "0");
    if (s == RB_OK)
        s = rb_graph_create(out);
    if (s == RB_OK)
        s = rb_graph_input(*out, 3, size, size, in.mean, in.std, &x);
    if (s == RB_OK)
        s = arch->ops.arch->build(*out, x, ap, &none);
    if (s == RB_OK)
        s = task->ops.task->build_head(*out, tp, &target, outputs, RB_TASK_MAX_OUTPUTS, count);
    /* published, as the engine refuses nodes nobody reads (the loss reads
     * them in training) */
    for (size_t i = 0; s == RB_OK && i < *count; i++) {
        char name[48]; /* room for any size_t, which gcc's -O1 truncation check asks */
        snprintf(name, sizeof name, "bench.output%zu", i);
        s = rb_graph_publish(*out, outputs[i], name);
    }
    if (s == RB_OK)
        s = rb_graph_init_params(*out, 1);
    rb_params_destroy(ap);
    return s;
}

/* One mode's model, engine and buffers, set up once; step() runs one
 * training step or inference batch. */
typedef struct session {
    bool infer;
    const rb_plugin *task;
    rb_params *ap, *tp;
    rb_model *model; /* train */
    rb_graph *graph; /* infer: the graph without the loss; train: the model's */
    rb_node *logits;
    rb_node *outputs[RB_TASK_MAX_OUTPUTS]; /* infer: the head's raw outputs */
    size_t n_outputs;
    int64_t shapes[RB_TASK_MAX_OUTPUTS][3];
    float *outs[RB_TASK_MAX_OUTPUTS]; /* infer: where they are read to */
    rb_engine *e;
    rb_sgd *sgd;
    float *images;
    int32_t *masks;
    rb_box *boxes, *found; /* detect: the targets; infer: the decoded boxes */
    int64_t *offsets, *found_counts;
    float *scores;
    bool *reach;
    double tail; /* infer: seconds of the last step's read-out and decode */
} session;

static void session_destroy(session *ss)
{
    free(ss->reach);
    rb_sgd_destroy(ss->sgd);
    rb_engine_destroy(ss->e);
    if (ss->model != NULL)
        rb_model_destroy(ss->model);
    else
        rb_graph_destroy(ss->graph);
    rb_params_destroy(ss->ap);
    rb_params_destroy(ss->tp);
    free(ss->images);
    for (size_t i = 0; i < ss->n_outputs; i++)
        free(ss->outs[i]);
    free(ss->masks);
    free(ss->boxes);
    free(ss->offsets);
    free(ss->found);
    free(ss->found_counts);
    free(ss->scores);
}

static int session_create(session *ss, const rb_registry *reg, const rb_plugin *task, bool infer, const char *config)
{
    const rb_plugin *arch;
    rb_model_input input = rb_model_input_imagenet(size, size);
    rb_engine_options o = {.threads = threads, .profile = true, .data_grads_only = infer};
    size_t n = (size_t)(batch * 3 * size * size), pixels = (size_t)(batch * size * size);
    memset(ss, 0, sizeof *ss);
    ss->infer = infer;
    ss->task = task;
    size_t boxes = (size_t)batch * (detect ? RB_TASK_MAX_DETECTIONS : 1);
    ss->images = malloc(n * sizeof *ss->images);
    ss->masks = malloc(pixels * sizeof *ss->masks);
    ss->boxes = malloc((size_t)batch * BOXES_PER_IMAGE * sizeof *ss->boxes);
    ss->offsets = malloc((size_t)(batch + 1) * sizeof *ss->offsets);
    ss->found = malloc(boxes * sizeof *ss->found);
    ss->scores = malloc(boxes * sizeof *ss->scores);
    ss->found_counts = malloc((size_t)batch * sizeof *ss->found_counts);
    if (ss->images == NULL || ss->masks == NULL || ss->boxes == NULL || ss->offsets == NULL || ss->found == NULL ||
        ss->scores == NULL || ss->found_counts == NULL) {
        fprintf(stderr, "bench_segment: out of memory\n");
        return 1;
    }
    fill(ss->images, n, ss->masks, pixels);
    fill_boxes(ss->boxes, ss->offsets);
    if (task_params(task, &ss->tp) != RB_OK)
        return fail(config);
    if (infer) {
        if (infer_graph(reg, task, ss->tp, &ss->graph, ss->outputs, &ss->n_outputs) != RB_OK)
            return fail(config);
        ss->logits = ss->n_outputs > 0 ? ss->outputs[0] : NULL;
        for (size_t i = 0; i < ss->n_outputs; i++) {
            int64_t *sh = ss->shapes[i];
            rb_node_shape(ss->outputs[i], &sh[0], &sh[1], &sh[2]);
            if ((ss->outs[i] = malloc((size_t)(batch * sh[0] * sh[1] * sh[2]) * sizeof *ss->outs[i])) == NULL) {
                fprintf(stderr, "bench_segment: out of memory\n");
                return 1;
            }
        }
    } else {
        if (arch_params(reg, &arch, &ss->ap) != RB_OK ||
            rb_model_create_with_head(&ss->model, arch, ss->ap, task, ss->tp, &input, CLASSES) != RB_OK ||
            rb_graph_init_params(rb_model_graph(ss->model), 1) != RB_OK)
            return fail(config);
        ss->graph = rb_model_graph(ss->model);
        ss->logits = rb_model_logits(ss->model);
    }
    {
        rb_node *outputs[RB_MODEL_ENGINE_OUTPUTS > RB_TASK_MAX_OUTPUTS ? RB_MODEL_ENGINE_OUTPUTS : RB_TASK_MAX_OUTPUTS];
        o.n_outputs = infer ? ss->n_outputs : rb_model_engine_outputs(ss->model, outputs);
        for (size_t i = 0; infer && i < ss->n_outputs; i++)
            outputs[i] = ss->outputs[i];
        o.outputs = outputs;
        if (rb_engine_create(&ss->e, ss->graph, batch, &o) != RB_OK)
            return fail(config);
    }
    if (!infer && rb_sgd_create(&ss->sgd, ss->graph, &(rb_sgd_options){.momentum = 0.9, .weight_decay = 5e-4}) != RB_OK)
        return fail(config);
    {
        rb_node *ends[RB_TASK_MAX_OUTPUTS + 2] = {ss->logits, ss->model != NULL ? rb_model_loss(ss->model) : NULL};
        size_t n_ends = 2;
        if (ss->model != NULL)
            n_ends += rb_model_engine_outputs(ss->model, ends + 2);
        for (size_t i = 0; i < ss->n_outputs; i++)
            ends[n_ends++] = ss->outputs[i];
        if ((ss->reach = reaching(ss->graph, ends, n_ends)) == NULL)
            return 1;
    }
    return 0;
}

static int session_step(session *ss, const char *config)
{
    rb_engine_reset_profile(ss->e);
    if (ss->infer) {
        rb_task_target target = {.num_classes = CLASSES, .channels = 3, .height = size, .width = size};
        rb_predictions pred = {.count = batch};
        double t1;
        if (detect) {
            pred.boxes = ss->found;
            pred.scores = ss->scores;
            pred.box_counts = ss->found_counts;
            pred.max_boxes = RB_TASK_MAX_DETECTIONS;
        } else {
            pred.masks = ss->masks;
            pred.mask_height = pred.mask_width = size;
        }
        if (rb_engine_forward(ss->e, ss->images, batch, NULL, false) != RB_OK)
            return fail(config);
        t1 = now();
        for (size_t i = 0; i < ss->n_outputs; i++)
            if (rb_engine_read(ss->e, ss->outputs[i], ss->outs[i]) != RB_OK)
                return fail(config);
        if (ss->task->ops.task->decode(ss->tp, &target, (const float *const *)ss->outs,
                                       (const int64_t(*)[3])ss->shapes, ss->n_outputs, batch, &pred) != RB_OK)
            return fail(config);
        ss->tail = now() - t1;
    } else {
        rb_targets t = {.count = batch};
        if (detect) {
            t.boxes = ss->boxes;
            t.box_offsets = ss->offsets;
        } else {
            t.masks = ss->masks;
            t.mask_height = t.mask_width = size;
        }
        if (rb_engine_forward_targets(ss->e, ss->images, batch, &t, true) != RB_OK ||
            rb_engine_backward(ss->e, true, false) != RB_OK || rb_sgd_step(ss->sgd, 0.01) != RB_OK)
            return fail(config);
    }
    return 0;
}

/* One warm-up step, `repeats` timed ones, and the lines of the header
 * comment. */
static int run_mode(const rb_registry *reg, const rb_plugin *task, bool infer, const char *config)
{
    const char *mode = infer ? "infer" : "train";
    double times[MAX_REPEATS], unused[MAX_REPEATS], tail[MAX_REPEATS], step;
    session ss;
    int rc;

    reset_peak_rss(); /* this mode's peak, images and model included */
    rc = session_create(&ss, reg, task, infer, config);
    for (int r = 0; rc == 0 && r <= repeats; r++) { /* step 0 is the warm-up */
        double t0 = now();
        rc = session_step(&ss, config);
        if (rc == 0 && r > 0) {
            times[r - 1] = now() - t0;
            tail[r - 1] = ss.tail;
            unused[r - 1] = unused_seconds(ss.e, ss.graph, ss.reach);
        }
    }
    if (rc == 0) {
        step = median(times, repeats);
        report(mode, config, step, peak_rss_mib(), ss.e);
        print_unused(mode, ss.graph, ss.reach, median(unused, repeats), step);
        print_top(mode, ss.e, ss.graph, step);
        if (infer)
            printf("# infer: reading the %s out and decoding them: %.1f ms per batch\n",
                   detect ? "head's outputs" : "logits", median(tail, repeats) * 1e3);
        else
            printf("# train: last loss %.4f\n", rb_engine_mean_loss(ss.e));
        fflush(stdout);
    }
    session_destroy(&ss);
    return rc;
}

/* --serve: for torch_segment.py --paired, which alternates robusta's and
 * PyTorch's steps so that both see the same load on a shared machine. After
 * one warm-up step it prints "ready"; then per line read, "step" runs one
 * and prints its milliseconds, "peak" prints the peak resident MiB; end of
 * input ends it. */
static int serve_mode(const rb_registry *reg, const rb_plugin *task, bool infer, const char *config)
{
    char line[64];
    session ss;
    int rc;
    reset_peak_rss();
    rc = session_create(&ss, reg, task, infer, config);
    if (rc == 0)
        rc = session_step(&ss, config);
    if (rc == 0) {
        printf("ready\n");
        fflush(stdout);
    }
    while (rc == 0 && fgets(line, sizeof line, stdin) != NULL) {
        if (strncmp(line, "step", 4) == 0) {
            double t0 = now();
            if ((rc = session_step(&ss, config)) == 0)
                printf("%.3f\n", (now() - t0) * 1e3);
        } else if (strncmp(line, "peak", 4) == 0) {
            printf("%.0f\n", peak_rss_mib());
        } else {
            fprintf(stderr, "bench_segment: --serve: unknown request '%s'\n", line);
            rc = 2;
        }
        fflush(stdout);
    }
    session_destroy(&ss);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_segment [--quick] [--threads N] [--batch N] [--size N] [--repeats N] "
                    "[--task segment|detect] [--head fcn|aspp] [--only train|infer]\n");
    return 2;
}

int main(int argc, char **argv)
{
    static const char *const modes[] = {"train", "infer"};
    const char *only = NULL;
    int single = 0, serve = 0, rc = 0;
    char config[64], plan_text[160];
    rb_registry *reg;
    const rb_plugin *task;
    rb_topology *topo;
    rb_thread_plan *plan;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            batch = 4;
        else if (strcmp(argv[i], "--single") == 0)
            single = 1;
        else if (strcmp(argv[i], "--serve") == 0)
            serve = 1;
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = atoll(argv[++i]);
        else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
            size = atoll(argv[++i]);
        else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (strcmp(argv[i], "--head") == 0 && i + 1 < argc)
            head = argv[++i];
        else if (strcmp(argv[i], "--task") == 0 && i + 1 < argc)
            task_name = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else
            return usage();
    }
    if (batch < 1 || batch > 1024 || size < 32 || size > 4096 || repeats < 1 || repeats > MAX_REPEATS ||
        threads < 0 || (strcmp(head, "fcn") != 0 && strcmp(head, "aspp") != 0) ||
        (only != NULL && strcmp(only, "train") != 0 && strcmp(only, "infer") != 0) ||
        (strcmp(task_name, "segment") != 0 && strcmp(task_name, "detect") != 0))
        return usage();
    detect = strcmp(task_name, "detect") == 0;
    if (detect) {
        CLASSES = 20;
        if (size % 16 != 0) {
            fprintf(stderr, "bench_segment: --task detect: --size %lld is not a multiple of 16, which the head's "
                            "stride-8 and stride-16 levels need; give one that is\n",
                    (long long)size);
            return 2;
        }
        snprintf(config, sizeof config, "resnet18-fcos-s8s16");
    } else {
        snprintf(config, sizeof config, "resnet18-%s-s8", head);
    }
    /* the plan the engine makes, to say how many threads ran */
    if (rb_topology_create(&topo, NULL) != RB_OK || rb_thread_plan_create(&plan, topo, threads, -1) != RB_OK)
        return fail("threads");
    threads = rb_thread_plan_count(plan);
    rb_thread_plan_describe(plan, plan_text, sizeof plan_text);
    rb_thread_plan_destroy(plan);
    rb_topology_destroy(topo);
    if (rb_log_init_from_env() != RB_OK || rb_registry_create(&reg) != RB_OK || rb_registry_load_default(reg) != RB_OK)
        return fail("plugins");
    if (rb_registry_find(reg, RB_PLUGIN_TASK, task_name, &task) != RB_OK) {
        rb_registry_destroy(reg);
        return fail(detect ? "the detect task plugin" : "the segment task plugin");
    }
    if (single || serve) { /* one mode, named by --only (default train) */
        bool infer = only != NULL && strcmp(only, "infer") == 0;
        rc = serve ? serve_mode(reg, task, infer, config) : run_mode(reg, task, infer, config);
        rb_registry_destroy(reg);
        return rc;
    }
    rb_registry_destroy(reg);

    if (detect) {
        printf("# robusta %s, %s; %s: resnet18 (imagenet stem) + detect (FCOS head, default options) on stage2 and "
               "stage3, %lld classes, %d boxes per image, batch %lld, %lldx%lld; median of %d after 1 warm-up\n",
               rb_version_string(), plan_text, config, (long long)CLASSES, BOXES_PER_IMAGE, (long long)batch,
               (long long)size, (long long)size, repeats);
        printf("# train = forward (training, boxes, FCOS loss) + backward (weights) + SGD (momentum 0.9, wd 5e-4); "
               "infer = forward (inference, no loss) + read the head's outputs + FCOS decode\n");
    } else {
        printf("# robusta %s, %s; %s: resnet18 (imagenet stem) + segment --head %s on stage2, %lld classes, batch "
               "%lld, %lldx%lld; median of %d after 1 warm-up\n",
               rb_version_string(), plan_text, config, head, (long long)CLASSES, (long long)batch, (long long)size,
               (long long)size, repeats);
        printf("# train = forward (training, masks) + backward (weights) + SGD (momentum 0.9, wd 5e-4); infer = "
               "forward (inference, no loss) + read logits + arg-max decode\n");
    }
    printf("# perf,%s_step,mode,config,shape,ms,images/s,threads,repeats,peak_MiB\n", task_name);
    fflush(stdout);
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        char threads_text[16], repeats_text[16], batch_text[24], size_text[24];
        const char *child[] = {"bench_segment", "--single", "--only", modes[m], "--task", task_name, "--head", head,
                               "--threads",
                               threads_text, "--repeats", repeats_text, "--batch", batch_text, "--size", size_text,
                               NULL};
        int status;
        pid_t pid;
        if (only != NULL && strcmp(only, modes[m]) != 0)
            continue;
        snprintf(threads_text, sizeof threads_text, "%d", threads);
        snprintf(repeats_text, sizeof repeats_text, "%d", repeats);
        snprintf(batch_text, sizeof batch_text, "%lld", (long long)batch);
        snprintf(size_text, sizeof size_text, "%lld", (long long)size);
        fflush(stdout);
        pid = fork();
        if (pid == 0) {
            execv("/proc/self/exe", (char *const *)child);
            perror("bench_segment: /proc/self/exe");
            _exit(127);
        }
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "bench_segment: %s failed\n", modes[m]);
            rc = 1;
        }
    }
    return rc;
}
