/* robusta bench: how fast a model trains, infers and is attacked on this
 * machine, with the same engine settings the other commands use. The
 * images are synthetic (the speed of a step does not depend on them); the
 * model is built by its arch plugin and initialized as for training. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "sys/json.h"

static const rb_param_spec bench_options[] = {
    {"arch", RB_PARAM_STRING, NULL, NULL, RB_PARAM_REQUIRED,
     "architecture plugin or preset (resnet18, resnet50, wide_resnet50_2 ...); its options follow"},
    {"image-size", RB_PARAM_INT, "224", "[1, 8192]", 0, "height and width of the input images"},
    {"channels", RB_PARAM_INT, "3", "[1, 16]", 0, "input channels (16: RB_MODEL_MAX_CHANNELS)"},
    {"batch-size", RB_PARAM_INT, "32", "[1, 65536]", 0, "images per step"},
    {"threads", RB_PARAM_INT, "0", "[0, 4096]", 0, "compute threads (0: every core of this NUMA node)"},
    CLI_ARITHMETIC_OPTIONS,
    CLI_TUNE_OPTION,
    {"repeats", RB_PARAM_INT, "5", "[1, 1000]", 0, "timed runs of each measurement, after one warm-up (the median is reported)"},
    {"only", RB_PARAM_CHOICE, "all", "all|train|infer|attack", 0,
     "measure one thing (attack needs --attack)"},
    {"attack", RB_PARAM_STRING, NULL, NULL, 0, "also time this attack plugin (pgd-linf ...); its options follow"},
    {"steps", RB_PARAM_INT, "10", "[1, 1000000]", 0, "attack iterations per run (step-based attacks)"},
    {"json", RB_PARAM_BOOL, "false", NULL, 0, "print JSON"},
    {"bucket-mib", RB_PARAM_FLOAT, "4", "[0.0625, 1024]", 0,
     "under mpirun: gradient bucket size of the all-reduce, in MiB (the first and last about 1/16 of it)"},
    {"network-gbit", RB_PARAM_FLOAT, "10", "[0.001, 100000]", 0,
     "under mpirun: link bandwidth, Gbit/s, at which the ring all-reduce model predicts scaling"},
    {"network-latency-us", RB_PARAM_FLOAT, "5", "[0, 1000000]", 0,
     "under mpirun: per-message latency, microseconds, for the ring all-reduce model"},
    {NULL}};

static const char *const bench_attack_shared[] = {RB_PARAM_STEPS, NULL};
static const cli_plugin_option bench_plugin_options[] = {
    {"arch", RB_PLUGIN_ARCH, NULL}, {"attack", RB_PLUGIN_ATTACK, bench_attack_shared}, {NULL, 0, NULL}};

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return v[n / 2];
}

/* One measurement's figures. */
typedef struct timing {
    bool done;
    double seconds;         /* median per step (training, inference, attack step) or per run */
    double parts[3];        /* training: forward, backward, SGD medians */
    double arena_mib;
    int64_t forwards, backwards; /* attack: engine passes of one run */
    bool per_step;          /* attack: seconds is per step (step-based) or per run (whole-run) */
    /* whole-run attacks: the same engine's forward, and forward with the
     * input gradient, alone (medians), and the share of a run they explain */
    double forward_s, gradient_s, model_share;
} timing;

typedef struct bench {
    const rb_params *o;
    rb_model *model;
    int64_t batch;  /* this rank's images per step (the whole batch in one process) */
    int64_t global; /* the job's images per step (--batch-size) */
    int repeats;
    rb_engine_options engine;
    float *images;
    int64_t *labels;
    char threads_text[160];
} bench;

/* A measurement's result: the median of b->repeats times in v, and the
 * engine's arena and thread placement. */
static void record(bench *b, timing *t, const rb_engine *e, double *v)
{
    t->done = true;
    t->seconds = median_of(v, b->repeats);
    t->arena_mib = (double)rb_engine_arena_bytes(e) / (1 << 20);
    snprintf(b->threads_text, sizeof b->threads_text, "%s", rb_engine_threads(e));
}

/* b->repeats timed training steps after a warm-up, into v (5 x repeats):
 * the step, forward, backward, SGD and, with `sync` (the data-parallel
 * step, every rank starting together after a barrier), the wait for the
 * gradient sums once backward is done. */
static rb_status timed_steps(const bench *b, rb_engine *e, rb_sgd *sgd, rb_grad_sync *sync, double *v)
{
    rb_status s = RB_OK;
    for (int r = 0; s == RB_OK && r <= b->repeats; r++) { /* run 0 warms up */
        double t0, t1 = 0, t2 = 0, t3 = 0;
        if (sync != NULL && (s = rb_dist_barrier()) != RB_OK)
            break;
        t0 = seconds_now();
        s = rb_engine_forward(e, b->images, b->batch, b->labels, true);
        if (s == RB_OK) {
            t1 = seconds_now();
            if (sync != NULL)
                rb_grad_sync_begin(sync, b->batch, b->global);
            s = rb_engine_backward(e, true, false);
        }
        if (s == RB_OK) {
            t2 = t3 = seconds_now();
            if (sync != NULL && (s = rb_grad_sync_finish(sync)) == RB_OK)
                t3 = seconds_now();
        }
        if (s == RB_OK)
            s = rb_sgd_step(sgd, 0.01);
        if (s == RB_OK && r > 0) {
            double end = seconds_now();
            v[r - 1] = end - t0;
            v[b->repeats + r - 1] = t1 - t0;
            v[2 * b->repeats + r - 1] = t2 - t1;
            v[3 * b->repeats + r - 1] = end - t3;
            v[4 * b->repeats + r - 1] = t3 - t2;
        }
    }
    return s;
}

static rb_status time_training(bench *b, timing *t)
{
    rb_engine *e = NULL;
    rb_sgd *sgd = NULL;
    rb_status s;
    double *v = calloc((size_t)b->repeats * 5, sizeof *v);
    if (v == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "bench: out of memory");
    s = rb_engine_create(&e, rb_model_graph(b->model), b->batch, &b->engine);
    if (s == RB_OK)
        s = rb_sgd_create(&sgd, rb_model_graph(b->model), &(rb_sgd_options){.momentum = 0.9, .weight_decay = 5e-4});
    if (s == RB_OK)
        s = timed_steps(b, e, sgd, NULL, v);
    if (s == RB_OK) {
        record(b, t, e, v);
        for (int k = 0; k < 3; k++)
            t->parts[k] = median_of(v + (k + 1) * b->repeats, b->repeats);
    }
    rb_sgd_destroy(sgd);
    rb_engine_destroy(e);
    free(v);
    return s;
}

/* Under mpirun: the data-parallel training step as `train` runs it (this
 * rank's share of the batch, gradients summed in buckets during backward),
 * and what its cost is made of. */
typedef struct ranks_timing {
    double alone;           /* median step of rank 0 alone at its share, the others idle */
    double alone_backward;  /* its backward */
    double slowest;         /* the slowest rank's median step: the job's step */
    double allreduce;       /* median all-reduce of the whole gradient, nothing else running */
    double exposed;         /* median wait in rb_grad_sync_finish of the rank that waits least: the one
                               that finished backward last, which waits for the sums alone */
    rb_grad_sync_stats stats;
    double *per_rank;       /* rank 0: per rank {batch, step s, exposed s} */
} ranks_timing;

static rb_status time_ranks(bench *b, timing *t, ranks_timing *rt)
{
    const int rank = rb_dist_rank(), ranks = rb_dist_size();
    rb_engine *e = NULL;
    rb_sgd *sgd = NULL;
    rb_grad_sync *sync = NULL;
    rb_engine_options opt = b->engine;
    double bucket_mib = cli_opt_float(b->o, "bucket-mib");
    rb_grad_sync_options so = {.bucket_bytes = (size_t)(bucket_mib * (1 << 20))};
    double *v = calloc((size_t)b->repeats * 5, sizeof *v), mine[3], *all = NULL;
    float *sums = NULL;
    rb_status s = v == NULL ? rb_error_set(RB_ERR_OUT_OF_MEMORY, "bench: out of memory") : RB_OK;
    if (s == RB_OK)
        s = rb_grad_sync_create(&sync, rb_model_graph(b->model), &so);
    if (s == RB_OK) {
        rb_grad_sync_get_stats(sync, &rt->stats);
        opt.node_backward_done = rb_grad_sync_node_done;
        opt.node_backward_done_user = sync;
        s = rb_engine_create(&e, rb_model_graph(b->model), b->batch, &opt);
    }
    if (s == RB_OK)
        s = rb_sgd_create(&sgd, rb_model_graph(b->model), &(rb_sgd_options){.momentum = 0.9, .weight_decay = 5e-4});
    /* 1. rank 0 alone, without sums (the hook is idle outside a step); the
     * others wait in a barrier that sleeps */
    if (s == RB_OK && rank == 0)
        s = timed_steps(b, e, sgd, NULL, v);
    if (s == RB_OK && (s = rb_dist_barrier()) == RB_OK && rank == 0) {
        rt->alone = median_of(v, b->repeats);
        rt->alone_backward = median_of(v + 2 * b->repeats, b->repeats);
    }
    /* 2. the whole gradient summed at once, nothing else running */
    if (s == RB_OK && (sums = calloc(rt->stats.bytes_per_step / sizeof(float) + 1, sizeof *sums)) == NULL)
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "bench: out of memory");
    for (int r = 0; s == RB_OK && r <= b->repeats; r++) {
        double t0;
        if ((s = rb_dist_barrier()) != RB_OK)
            break;
        t0 = seconds_now();
        s = rb_dist_allreduce_sum(sums, rt->stats.bytes_per_step / sizeof(float), RB_DIST_F32);
        if (r > 0)
            v[r - 1] = seconds_now() - t0;
    }
    if (s == RB_OK)
        rt->allreduce = median_of(v, b->repeats);
    /* 3. the data-parallel step: every rank starts together */
    if (s == RB_OK)
        s = timed_steps(b, e, sgd, sync, v);
    if (s == RB_OK) {
        record(b, t, e, v);
        for (int k = 0; k < 3; k++)
            t->parts[k] = median_of(v + (k + 1) * b->repeats, b->repeats);
        mine[0] = (double)b->batch;
        mine[1] = t->seconds;
        mine[2] = median_of(v + 4 * b->repeats, b->repeats);
        rb_grad_sync_get_stats(sync, &rt->stats);
        if (rank == 0 && (all = malloc((size_t)ranks * sizeof mine)) == NULL)
            s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "bench: out of memory");
    }
    if (s == RB_OK) {
        size_t *bytes = malloc((size_t)ranks * sizeof *bytes);
        if (bytes == NULL)
            s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "bench: out of memory");
        for (int r = 0; s == RB_OK && r < ranks; r++)
            bytes[r] = sizeof mine;
        if (s == RB_OK)
            s = rb_dist_gather(mine, bytes, all);
        free(bytes);
    }
    if (s == RB_OK && rank == 0) {
        rt->exposed = all[2];
        for (int r = 0; r < ranks; r++) {
            if (all[3 * r + 1] > rt->slowest)
                rt->slowest = all[3 * r + 1];
            if (all[3 * r + 2] < rt->exposed)
                rt->exposed = all[3 * r + 2];
        }
        rt->per_rank = all;
        all = NULL;
    }
    free(all);
    free(sums);
    free(v);
    rb_sgd_destroy(sgd);
    rb_engine_destroy(e);
    rb_grad_sync_destroy(sync);
    return s;
}

/* The ring all-reduce's time for `bytes` in `buckets` messages over
 * `nodes` ranks at `bw` bytes/s and `alpha` s per message: each rank sends
 * and receives 2(N-1)/N of the data, in 2(N-1) steps per message. */
static double ring_seconds(double bytes, double buckets, int nodes, double bw, double alpha)
{
    return 2.0 * (nodes - 1) / nodes * bytes / bw + 2.0 * (nodes - 1) * buckets * alpha;
}

/* The model's efficiency against N x one rank (weak scaling: each node
 * keeps its share): backward hides the sums up to its own length, except
 * the last bucket (the first layers), which starts only when it ends. */
static double ring_efficiency(const ranks_timing *rt, int nodes, double bw, double alpha)
{
    double all = ring_seconds((double)rt->stats.bytes_per_step, (double)rt->stats.buckets, nodes, bw, alpha);
    double last = ring_seconds((double)rt->stats.last_bucket_bytes, 1, nodes, bw, alpha);
    double exposed = all - rt->alone_backward > last ? all - rt->alone_backward : last;
    return rt->alone / (rt->alone + exposed);
}

/* Inference as evaluation runs it: forward with running statistics on an
 * engine that computes no weight gradients. */
static rb_status time_inference(bench *b, timing *t)
{
    rb_engine *e = NULL;
    rb_engine_options opt = b->engine;
    rb_status s;
    double *v = calloc((size_t)b->repeats, sizeof *v);
    if (v == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "bench: out of memory");
    opt.data_grads_only = true;
    s = rb_engine_create(&e, rb_model_graph(b->model), b->batch, &opt);
    if (s == RB_OK)
        rb_engine_hold_weights(e, true);
    for (int r = 0; s == RB_OK && r <= b->repeats; r++) {
        double t0 = seconds_now();
        s = rb_engine_forward(e, b->images, b->batch, b->labels, false);
        if (s == RB_OK && r > 0)
            v[r - 1] = seconds_now() - t0;
    }
    if (s == RB_OK)
        record(b, t, e, v);
    rb_engine_destroy(e);
    free(v);
    return s;
}

/* The attack engine's forward alone and forward + input gradient (one
 * backward) on the batch, medians of the repeats after a warm-up. */
static rb_status time_passes(const bench *b, rb_engine *e, const int64_t *labels, timing *t)
{
    size_t pixels = (size_t)rb_engine_batch(e) * (rb_model_get_input(b->model)->channels *
                                                  rb_model_get_input(b->model)->height *
                                                  rb_model_get_input(b->model)->width);
    float *grad = malloc(pixels * sizeof *grad);
    double *f = calloc((size_t)b->repeats, sizeof *f), *g = calloc((size_t)b->repeats, sizeof *g);
    rb_status s = grad && f && g ? RB_OK : rb_error_set(RB_ERR_OUT_OF_MEMORY, "bench: out of memory");
    for (int r = 0; s == RB_OK && r <= b->repeats; r++) {
        double t0 = seconds_now(), t1;
        s = rb_attack_loss_grad(e, b->model, b->images, labels, b->batch, NULL, NULL, NULL);
        t1 = seconds_now();
        if (s == RB_OK)
            s = rb_attack_loss_grad(e, b->model, b->images, labels, b->batch, NULL, grad, NULL);
        if (r > 0) {
            f[r - 1] = t1 - t0;
            g[r - 1] = seconds_now() - t1;
        }
    }
    if (s == RB_OK) {
        t->forward_s = median_of(f, b->repeats);
        t->gradient_s = median_of(g, b->repeats);
    }
    free(grad);
    free(f);
    free(g);
    return s;
}

/* A step-based attack's step: (a run of N steps - a run of 0) / N, which
 * leaves out the clean passes every run makes. A whole-run attack (its own
 * schedule, e.g. apgd-ce's --steps): the time of one run, on labels that
 * are the model's clean predictions (so that every example is attacked, as
 * in an evaluation of robust examples), with the share of it that its
 * forward and backward passes explain (the rest is the attack's own
 * bookkeeping). */
static rb_status time_attack(bench *b, const rb_plugin *plugin, const rb_params *params, timing *t)
{
    const rb_attack_ops *ops = plugin->ops.attack;
    rb_engine *e = NULL;
    rb_attacker *attacker = NULL;
    rb_engine_options opt = b->engine;
    rb_attack_options ao = rb_attack_options_default();
    rb_attack_stats st;
    const rb_model_input *in = rb_model_get_input(b->model);
    size_t pixels = (size_t)b->batch * (size_t)(in->channels * in->height * in->width);
    float *adv = malloc(pixels * sizeof *adv);
    double *v = calloc((size_t)b->repeats, sizeof *v);
    int steps = (int)cli_opt_int(cli_option_owner(b->o, RB_PARAM_STEPS), RB_PARAM_STEPS); /* apgd-ce's own, for one */
    rb_status s = RB_OK;
    if (adv == NULL || v == NULL)
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "bench: out of memory");
    int64_t *labels = malloc((size_t)b->batch * sizeof *labels);
    float *logits = NULL;
    if (labels == NULL)
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "bench: out of memory");
    t->per_step = ops->run == NULL;
    ao.steps = steps;
    if (s == RB_OK)
        s = rb_attack_check(plugin, &ao);
    opt.data_grads_only = true;
    if (s == RB_OK)
        s = rb_engine_create(&e, rb_model_graph(b->model), b->batch, &opt);
    if (s == RB_OK)
        s = rb_attacker_create(&attacker, e, b->model);
    if (s == RB_OK) {
        int64_t k = rb_model_num_classes(b->model);
        memcpy(labels, b->labels, (size_t)b->batch * sizeof *labels);
        if (!t->per_step && (logits = malloc((size_t)(b->batch * k) * sizeof *logits)) == NULL)
            s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "bench: out of memory");
        if (s == RB_OK && !t->per_step &&
            (s = rb_attack_loss_grad(e, b->model, b->images, b->labels, b->batch, NULL, NULL, logits)) == RB_OK)
            for (int64_t i = 0; i < b->batch; i++) {
                int64_t best = 0;
                for (int64_t j = 1; j < k; j++)
                    best = logits[i * k + j] > logits[i * k + best] ? j : best;
                labels[i] = best;
            }
        free(logits);
    }
    for (int r = 0; s == RB_OK && r <= b->repeats; r++) {
        double t0, full;
        ao.steps = r == 0 ? 1 : steps;
        t0 = seconds_now();
        s = rb_attacker_run(attacker, plugin, params, &ao, b->images, labels, b->batch, adv, NULL, &st);
        full = seconds_now() - t0;
        if (s != RB_OK || r == 0)
            continue;
        t->forwards = st.forwards;
        t->backwards = st.backwards;
        v[r - 1] = full;
        if (t->per_step) {
            ao.steps = 0;
            t0 = seconds_now();
            s = rb_attacker_run(attacker, plugin, params, &ao, b->images, labels, b->batch, adv, NULL, &st);
            v[r - 1] = (full - (seconds_now() - t0)) / steps;
        }
    }
    if (s == RB_OK)
        record(b, t, e, v);
    if (s == RB_OK && !t->per_step && (s = time_passes(b, e, labels, t)) == RB_OK)
        t->model_share = ((double)t->forwards * t->forward_s +
                          (double)t->backwards * (t->gradient_s - t->forward_s)) / t->seconds;
    rb_attacker_destroy(attacker);
    rb_engine_destroy(e);
    free(labels);
    free(adv);
    free(v);
    return s;
}

static json_object *timing_json(const timing *t, int64_t batch, double gflop)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ms", rb_json_number(t->seconds * 1e3));
    json_object_object_add(o, "images_per_second", rb_json_number((double)batch / t->seconds));
    if (gflop > 0)
        json_object_object_add(o, "gflop_per_second", rb_json_number(gflop / t->seconds));
    json_object_object_add(o, "arena_mib", rb_json_number(t->arena_mib));
    return o;
}

/* The share of the all-reduce hidden behind backward: 1 - what the step
 * waited for / what the sums take alone. */
static double hidden_share(const ranks_timing *rt)
{
    double h = rt->allreduce > 0 ? 1.0 - rt->exposed / rt->allreduce : 0;
    return h < 0 ? 0 : h > 1 ? 1 : h;
}

/* Bus bandwidth as the ring moves it: 2(N-1)/N of the data per rank. */
static double bus_bytes_per_second(const ranks_timing *rt, int ranks)
{
    return 2.0 * (ranks - 1) / ranks * (double)rt->stats.bytes_per_step / rt->allreduce;
}

static const int model_nodes[] = {2, 4, 8, 16, 32, 64};

static json_object *ranks_json(const ranks_timing *rt, int ranks, int64_t global, const rb_params *o)
{
    json_object *d = json_object_new_object(), *per = json_object_new_array(), *model = json_object_new_object();
    json_object *pred = json_object_new_array();
    double bw = cli_opt_float(o, "network-gbit") * 1e9 / 8, alpha = cli_opt_float(o, "network-latency-us") * 1e-6;
    double step = rt->slowest;
    json_object_object_add(d, "images_per_second", rb_json_number((double)global / step));
    json_object_object_add(d, "step_ms", rb_json_number(rt->slowest * 1e3));
    for (int r = 0; r < ranks; r++) {
        json_object *x = json_object_new_object();
        const double *p = rt->per_rank + 3 * r;
        json_object_object_add(x, "rank", json_object_new_int(r));
        json_object_object_add(x, "batch", json_object_new_int64((int64_t)p[0]));
        json_object_object_add(x, "step_ms", rb_json_number(p[1] * 1e3));
        json_object_object_add(x, "images_per_second", rb_json_number(p[0] / p[1]));
        json_object_object_add(x, "allreduce_wait_ms", rb_json_number(p[2] * 1e3));
        json_object_array_add(per, x);
    }
    json_object_object_add(d, "per_rank", per);
    json_object_object_add(d, "gradient_bytes", json_object_new_int64((int64_t)rt->stats.bytes_per_step));
    json_object_object_add(d, "buckets", json_object_new_int64((int64_t)rt->stats.buckets));
    json_object_object_add(d, "allreduce_alone_ms", rb_json_number(rt->allreduce * 1e3));
    json_object_object_add(d, "allreduce_exposed_ms", rb_json_number(rt->exposed * 1e3));
    json_object_object_add(d, "hidden_share", rb_json_number(hidden_share(rt)));
    json_object_object_add(d, "bus_gbytes_per_second", rb_json_number(bus_bytes_per_second(rt, ranks) * 1e-9));
    json_object_object_add(d, "one_rank_alone_ms", rb_json_number(rt->alone * 1e3));
    json_object_object_add(d, "scaling_efficiency",
                           rb_json_number(rt->alone / step * (double)global / (double)ranks /
                                          (double)(rt->per_rank[0])));
    json_object_object_add(model, "network_gbit", rb_json_number(cli_opt_float(o, "network-gbit")));
    json_object_object_add(model, "latency_us", rb_json_number(cli_opt_float(o, "network-latency-us")));
    for (size_t k = 0; k < sizeof model_nodes / sizeof *model_nodes; k++) {
        json_object *x = json_object_new_object();
        json_object_object_add(x, "nodes", json_object_new_int(model_nodes[k]));
        json_object_object_add(x, "efficiency", rb_json_number(ring_efficiency(rt, model_nodes[k], bw, alpha)));
        json_object_array_add(pred, x);
    }
    json_object_object_add(model, "predicted", pred);
    json_object_object_add(d, "ring_model", model);
    return d;
}

static void print_ranks(const ranks_timing *rt, int ranks, int64_t global, const rb_params *o)
{
    double bw = cli_opt_float(o, "network-gbit") * 1e9 / 8, alpha = cli_opt_float(o, "network-latency-us") * 1e-6;
    double step = rt->slowest, share0 = rt->per_rank[0];
    double measured_bw = bus_bytes_per_second(rt, ranks); /* the link bandwidth the ring model would need */
    printf("  %d ranks        %9.1f ms  %9.1f images/s  of the batch of %lld (slowest rank's median step)\n", ranks,
           step * 1e3, (double)global / step, (long long)global);
    for (int r = 0; r < ranks; r++) {
        const double *p = rt->per_rank + 3 * r;
        printf("    rank %-4d    %9.1f ms  %9.1f images/s  (%lld images; waited %.1f ms for the sums)\n", r,
               p[1] * 1e3, p[0] / p[1], (long long)p[0], p[2] * 1e3);
    }
    printf("  all-reduce: %.1f MiB of gradients in %zu buckets per step; alone %.1f ms (bus %.2f GB/s), "
           "exposed %.1f ms: %.0f%% hidden behind backward\n",
           (double)rt->stats.bytes_per_step / (1 << 20), rt->stats.buckets, rt->allreduce * 1e3,
           bus_bytes_per_second(rt, ranks) * 1e-9, rt->exposed * 1e3, 100 * hidden_share(rt));
    printf("  scaling: one rank alone (rank 0, the others idle) %.1f ms per %.0f images; %d ranks reach %.0f%% of "
           "%d x one rank\n",
           rt->alone * 1e3, share0, ranks, 100 * (rt->alone / step) * ((double)global / ranks / share0), ranks);
    printf("  ring all-reduce model, each node keeping %.0f images per step:\n", share0);
    printf("    nodes       ");
    for (size_t k = 0; k < sizeof model_nodes / sizeof *model_nodes; k++)
        printf(" %6d", model_nodes[k]);
    printf("\n    at %g Gbit/s ", cli_opt_float(o, "network-gbit"));
    for (size_t k = 0; k < sizeof model_nodes / sizeof *model_nodes; k++)
        printf(" %5.0f%%", 100 * ring_efficiency(rt, model_nodes[k], bw, alpha));
    printf("\n    as measured ");
    for (size_t k = 0; k < sizeof model_nodes / sizeof *model_nodes; k++)
        printf(" %5.0f%%", 100 * ring_efficiency(rt, model_nodes[k], measured_bw, 0));
    printf("  (bus bandwidth measured here, no latency)\n");
}

static int run_bench(const cli_command *self, rb_params *o, int argc, char **args)
{
    const rb_plugin *arch = cli_plugin("arch"), *attack = cli_plugin("attack");
    const char *only = cli_opt_string(o, "only");
    bool all = strcmp(only, "all") == 0, json = cli_opt_bool(o, "json");
    int64_t size = cli_opt_int(o, "image-size"), channels = cli_opt_int(o, "channels");
    const int rank = rb_dist_rank(), ranks = rb_dist_size();
    bench b = {.o = o, .global = cli_opt_int(o, "batch-size"), .repeats = (int)cli_opt_int(o, "repeats")};
    ranks_timing rt = {0};
    rb_model_input input = rb_model_input_imagenet(size, size);
    timing train = {0}, infer = {0}, atk = {0};
    double train_gflop, infer_gflop, attack_gflop;
    const char *conv_algorithm;
    size_t pixels;
    rb_status s = RB_OK;

    if (argc > 0) {
        fprintf(stderr, "robusta %s: bench takes no positional arguments (got '%s') (robusta %s --help lists its "
                        "options)\n", self->name, args[0], self->name);
        return RB_EXIT_USAGE;
    }
    if (arch == NULL || cli_plugin_params("arch") == NULL)
        return cli_fail(self->name, rb_error_set(RB_ERR_INTERNAL, "--arch was given but no plugin was chosen"));
    if (strcmp(only, "attack") == 0 && attack == NULL) {
        fprintf(stderr, "robusta %s: --only attack needs --attack NAME (robusta %s --help lists its options)\n",
                self->name, self->name);
        return RB_EXIT_USAGE;
    }
    if (attack == NULL && rb_params_source(o, RB_PARAM_STEPS) == RB_PARAM_GIVEN) {
        fprintf(stderr, "robusta %s: --steps needs --attack (robusta %s --help lists its options)\n", self->name,
                self->name);
        return RB_EXIT_USAGE;
    }
    if (ranks > 1 && b.global < ranks) {
        fprintf(stderr, "robusta %s: --batch-size %lld is smaller than the %d ranks; each rank needs an image of "
                        "the batch (robusta %s --help lists its options)\n", self->name, (long long)b.global, ranks,
                self->name);
        return RB_EXIT_USAGE;
    }
    if (ranks > 1 && (strcmp(only, "infer") == 0 || strcmp(only, "attack") == 0)) {
        fprintf(stderr, "robusta %s: under mpirun bench times the data-parallel training step; run --only %s as one "
                        "process (robusta %s --help lists its options)\n", self->name, only, self->name);
        return RB_EXIT_USAGE;
    }
    /* this rank's share of the batch, as train splits it */
    b.batch = b.global * (rank + 1) / ranks - b.global * rank / ranks;
    if (channels != 3) { /* the normalization does not change the speed */
        input.channels = channels;
        for (int64_t c = 0; c < channels; c++) {
            input.mean[c] = 0.5f;
            input.std[c] = 0.25f;
        }
    }
    b.engine.threads = (int)cli_opt_int(o, "threads");
    b.engine.precision = cli_precision(o);
    b.engine.conv_algorithm = cli_conv_algorithm(o);
    b.engine.tune = cli_tune(o);
    s = rb_plan_create(&b.engine.plan); /* the training engine's choices, shown below */
    if (s == RB_OK)
        s = rb_model_create(&b.model, arch, cli_plugin_params("arch"), &input);
    if (s == RB_OK) {
        /* the engines come one at a time; a training one is the largest.
         * Images: the batch and, for attacks, its adversarial copy. */
        rb_memory_engine one = {b.batch, !(all || strcmp(only, "train") == 0)};
        uint64_t images = (uint64_t)b.batch * (uint64_t)channels * (uint64_t)size * (uint64_t)size * sizeof(float);
        s = rb_model_check_memory(b.model, &b.engine, &one, 1, attack != NULL ? 2 * images : images,
                                  "lower --batch-size or --image-size");
    }
    if (s == RB_OK)
        s = rb_graph_init_params(rb_model_graph(b.model), 1);
    if (s != RB_OK) {
        rb_model_destroy(b.model);
        rb_plan_destroy(b.engine.plan);
        return cli_fail(self->name, s);
    }
    /* Fixed pseudo-random images in [0, 1) and labels spread over the classes. */
    pixels = (size_t)b.batch * (size_t)(channels * size * size);
    b.images = malloc(pixels * sizeof *b.images);
    b.labels = malloc((size_t)b.batch * sizeof *b.labels);
    if (b.images == NULL || b.labels == NULL) {
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "bench: no memory for %lld images of %lldx%lldx%lld",
                         (long long)b.batch, (long long)channels, (long long)size, (long long)size);
    } else {
        uint32_t x = 12345;
        for (size_t i = 0; i < pixels; i++) {
            x = x * 1664525u + 1013904223u;
            b.images[i] = (float)(x >> 8) * (1.0f / 16777216.0f);
        }
        for (int64_t i = 0; i < b.batch; i++)
            b.labels[i] = (i * 7919) % rb_model_num_classes(b.model);
    }
    if (s == RB_OK && ranks > 1)
        s = time_ranks(&b, &train, &rt);
    if (s == RB_OK && ranks == 1 && (all || strcmp(only, "train") == 0))
        s = time_training(&b, &train);
    if (s == RB_OK && ranks == 1 && (all || strcmp(only, "infer") == 0))
        s = time_inference(&b, &infer);
    if (s == RB_OK && ranks == 1 && attack != NULL && (all || strcmp(only, "attack") == 0))
        s = time_attack(&b, attack, cli_plugin_params("attack"), &atk);
    if (s != RB_OK || rank > 0) {
        free(b.images);
        free(b.labels);
        free(rt.per_rank);
        rb_model_destroy(b.model);
        rb_plan_destroy(b.engine.plan);
        return s != RB_OK ? cli_fail(self->name, s) : RB_EXIT_OK;
    }

    train_gflop = 2.0 * (double)rb_graph_training_macs(rb_model_graph(b.model)) * (double)b.batch * 1e-9;
    infer_gflop = 2.0 * (double)rb_graph_forward_macs(rb_model_graph(b.model)) * (double)b.batch * 1e-9;
    attack_gflop = 2.0 * infer_gflop; /* forward and backward-data */
    /* what ran: bf16 has no Winograd (robusta/engine.h) */
    /* what runs: bf16 has no Winograd, nor do CPUs without oneDNN's kernel */
    conv_algorithm = rb_conv_algorithm_str(b.engine.precision == RB_PRECISION_BF16 ||
                                                   !rb_conv_algorithm_available(b.engine.conv_algorithm)
                                               ? RB_CONV_DIRECT
                                               : b.engine.conv_algorithm);
    if (json) {
        json_object *root = json_object_new_object();
        json_object_object_add(root, "arch", json_object_new_string(cli_opt_string(o, "arch")));
        json_object_object_add(root, "image_size", json_object_new_int64(size));
        json_object_object_add(root, "channels", json_object_new_int64(channels));
        json_object_object_add(root, "classes", json_object_new_int64(rb_model_num_classes(b.model)));
        json_object_object_add(root, "batch_size", json_object_new_int64(b.batch));
        json_object_object_add(root, "precision", json_object_new_string(rb_precision_str(b.engine.precision)));
        json_object_object_add(root, "conv_algorithm", json_object_new_string(conv_algorithm));
        json_object_object_add(root, "tune", json_object_new_string(rb_tune_mode_str(b.engine.tune)));
        if (rb_plan_count(b.engine.plan) > 0) {
            json_object *plan = json_object_new_object();
            for (size_t i = 0; i < rb_plan_count(b.engine.plan); i++) {
                const char *key, *choice;
                rb_plan_entry(b.engine.plan, i, &key, &choice);
                json_object_object_add(plan, key, json_object_new_string(choice));
            }
            json_object_object_add(root, "plan", plan);
        }
        json_object_object_add(root, "threads", json_object_new_string(b.threads_text));
        json_object_object_add(root, "repeats", json_object_new_int(b.repeats));
        if (train.done) {
            json_object *t = timing_json(&train, b.batch, train_gflop);
            json_object_object_add(t, "forward_ms", rb_json_number(train.parts[0] * 1e3));
            json_object_object_add(t, "backward_ms", rb_json_number(train.parts[1] * 1e3));
            json_object_object_add(t, "sgd_ms", rb_json_number(train.parts[2] * 1e3));
            json_object_object_add(root, "train", t);
        }
        if (ranks > 1) {
            json_object_object_add(root, "ranks", json_object_new_int(ranks));
            json_object_object_add(root, "global_batch_size", json_object_new_int64(b.global));
            json_object_object_add(root, "data_parallel", ranks_json(&rt, ranks, b.global, o));
        }
        if (infer.done)
            json_object_object_add(root, "inference", timing_json(&infer, b.batch, infer_gflop));
        if (atk.done) {
            json_object *t = timing_json(&atk, b.batch, atk.per_step ? attack_gflop : 0);
            json_object_object_add(t, "name", json_object_new_string(attack->name));
            json_object_object_add(t, "per", json_object_new_string(atk.per_step ? "step" : "run"));
            json_object_object_add(t, "forwards_per_run", json_object_new_int64(atk.forwards));
            json_object_object_add(t, "backwards_per_run", json_object_new_int64(atk.backwards));
            if (!atk.per_step) {
                json_object_object_add(t, "forward_ms", rb_json_number(atk.forward_s * 1e3));
                json_object_object_add(t, "forward_gradient_ms", rb_json_number(atk.gradient_s * 1e3));
                json_object_object_add(t, "model_share", rb_json_number(atk.model_share));
            }
            json_object_object_add(root, "attack", t);
        }
        printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(root);
    } else {
        char batch_text[64];
        if (ranks > 1)
            snprintf(batch_text, sizeof batch_text, "batch %lld over %d ranks (rank 0: %lld)", (long long)b.global,
                     ranks, (long long)b.batch);
        else
            snprintf(batch_text, sizeof batch_text, "batch %lld", (long long)b.batch);
        printf("%s at %lldx%lldx%lld, %lld classes, %s, %s, %s convolutions%s; %s%s; median of %d after a "
               "warm-up\n",
               cli_opt_string(o, "arch"), (long long)channels, (long long)size, (long long)size,
               (long long)rb_model_num_classes(b.model), batch_text, rb_precision_str(b.engine.precision),
               conv_algorithm, b.engine.tune != RB_TUNE_OFF ? " (training: tuned)" : "", ranks > 1 ? "rank 0: " : "",
               b.threads_text, b.repeats);
        if (train.done)
            printf("  training step   %9.1f ms  %9.1f images/s  %7.1f GFLOP/s  (forward %.1f, backward %.1f, "
                   "SGD %.1f ms; arena %.0f MiB)\n",
                   train.seconds * 1e3, (double)b.batch / train.seconds, train_gflop / train.seconds,
                   train.parts[0] * 1e3, train.parts[1] * 1e3, train.parts[2] * 1e3, train.arena_mib);
        if (ranks > 1)
            print_ranks(&rt, ranks, b.global, o);
        if (infer.done)
            printf("  inference       %9.1f ms  %9.1f images/s  %7.1f GFLOP/s  (arena %.0f MiB)\n",
                   infer.seconds * 1e3, (double)b.batch / infer.seconds, infer_gflop / infer.seconds,
                   infer.arena_mib);
        if (atk.done && atk.per_step)
            printf("  %-15s %9.1f ms  %9.1f images/s  %7.1f GFLOP/s  (per step; arena %.0f MiB)\n", attack->name,
                   atk.seconds * 1e3, (double)b.batch / atk.seconds, attack_gflop / atk.seconds, atk.arena_mib);
        else if (atk.done)
            printf("  %-15s %9.1f ms  %9.1f images/s  per run of %lld forward and %lld backward passes "
                   "(arena %.0f MiB)\n",
                   attack->name, atk.seconds * 1e3, (double)b.batch / atk.seconds, (long long)atk.forwards,
                   (long long)atk.backwards, atk.arena_mib);
        if (rb_plan_count(b.engine.plan) > 0) {
            printf("  training kernels (--tune %s), per convolution shape:\n", rb_tune_mode_str(b.engine.tune));
            for (size_t i = 0; i < rb_plan_count(b.engine.plan); i++) {
                const char *key, *choice;
                rb_plan_entry(b.engine.plan, i, &key, &choice);
                printf("    %-60s %s\n", key, choice);
            }
        }
        if (atk.done && !atk.per_step && atk.backwards == 0)
            printf("  %-15s per query %.2fx a forward (%.1f ms); passes %.1f%% of the run, bookkeeping %.1f%%\n", "",
                   atk.seconds / (double)(atk.forwards ? atk.forwards : 1) / atk.forward_s, atk.forward_s * 1e3,
                   100 * atk.model_share, 100 * (1 - atk.model_share));
        else if (atk.done && !atk.per_step)
            printf("  %-15s per gradient step %.2fx a forward with input gradient (%.1f ms; a forward %.1f ms); "
                   "passes %.1f%% of the run, bookkeeping %.1f%%\n",
                   "", atk.seconds / (double)atk.backwards / atk.gradient_s, atk.gradient_s * 1e3, atk.forward_s * 1e3,
                   100 * atk.model_share, 100 * (1 - atk.model_share));
    }
    free(b.images);
    free(b.labels);
    free(rt.per_rank);
    rb_model_destroy(b.model);
    rb_plan_destroy(b.engine.plan);
    return RB_EXIT_OK;
}

const cli_command cli_bench_command = {
    .name = "bench",
    .summary = "measure how fast a model trains, infers and is attacked here",
    .usage = "--arch NAME [arch options] [--image-size S] [--batch-size B] [--precision f32|bf16] "
             "[--attack NAME [attack options]] [options]",
    .description =
        "Builds the architecture (its options as for train; num-classes is the arch's default\n"
        "unless given) and times, on synthetic images, what the other commands run per batch:\n"
        "a training step (forward with batch statistics, backward with weight gradients, SGD\n"
        "with momentum), an inference forward (running statistics, as eval), and with --attack\n"
        "an attack step: for step-based attacks (pgd-linf, pgd-l2) the time of --steps steps\n"
        "less a run of none, divided by --steps; for whole-run attacks (apgd-ce) one run.\n"
        "Each figure is the median of --repeats runs after a warm-up. GFLOP/s counts the\n"
        "convolutions and linear layers: 2 per multiply-accumulate of forward, backward-data\n"
        "and backward-weights (training, without the image's backward-data), forward only\n"
        "(inference), forward and backward-data (attack), as direct convolution does them:\n"
        "with Winograd (--conv-algorithm) it is an effective rate, since Winograd needs\n"
        "fewer multiplications. bench/ has the benchmarks that compare with PyTorch.\n"
        "Under mpirun (a build with MPI) it times the data-parallel training step instead:\n"
        "--batch-size is the job's batch, split over the ranks as train splits it; it reports\n"
        "each rank's step, the all-reduce of the gradients alone and the part of it backward\n"
        "hides, the bus bandwidth, the efficiency against N x one rank alone, and a ring\n"
        "all-reduce model's efficiency for 2-64 nodes at --network-gbit (README, 'Training on\n"
        "a cluster').",
    .options = bench_options,
    .plugin_options = bench_plugin_options,
    .run = run_bench,
    .data_parallel = true,
};
