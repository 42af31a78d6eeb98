/* A run's data, model, engines and optimizer, made before its first epoch
 * (rb_train) or from its checkpoint (rb_train_resume), and freed after. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "experiment/train_internal.h"

rb_status train_open_splits(run *r)
{
    rb_split_options so = {0};
    rb_dataset_spec *spec = malloc(sizeof *spec);
    rb_status s;
    if (spec == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory opening the data");
    s = rb_dataset_spec_parse(spec, r->cfg.data);
    so.classes = r->cfg.classes;
    so.per_class = r->cfg.per_class;
    so.seed = r->cfg.seed;
    so.size = r->cfg.image_size;
    so.channels = r->cfg.channels;
    so.transform = r->cfg.transform;
    so.cache_dir = r->cfg.cache_dir;
    if (s == RB_OK)
        s = rb_split_load(&r->train, spec, RB_SPLIT_TRAIN, &so);
    /* A transfer task's targets first: data without masks is the wrong
     * dataset, whatever its size, and the feature cache would otherwise be
     * computed before the refusal. */
    if (s == RB_OK)
        s = train_check_task_targets(r->cfg.transfer.source != NULL ? r->cfg.transfer.task : NULL, r->train);
    r->has_test = s == RB_OK && (spec->kind == RB_DATASET_LIST ? spec->labels[RB_SPLIT_TEST][0] != '\0'
                                 : (spec->kind != RB_DATASET_NPY && spec->kind != RB_DATASET_COCO) ||
                                       spec->images[RB_SPLIT_TEST][0] != '\0');
    so.per_class = 0; /* the whole test split of the kept classes */
    if (s == RB_OK && r->has_test)
        s = rb_split_load(&r->test, spec, RB_SPLIT_TEST, &so);
    free(spec);
    if (s == RB_OK && rb_split_count(r->train) < r->cfg.training.batch_size)
        s = train_invalid("the training split has %lld examples, fewer than --batch-size %lld (the last partial batch "
                          "is dropped, so no step would run)",
                          (long long)rb_split_count(r->train), (long long)r->cfg.training.batch_size);
    return s;
}

/* Before any work that grows with the images (the data's normalization
 * pass, engine planning): data with one class, and what cannot fit in
 * memory, each refused in one line. The model is r->model when resuming,
 * else a throwaway one of the architecture at the data's size (building a
 * graph allocates only its weights). */
rb_status train_check_fits(run *r)
{
    rb_model *probe = NULL;
    const rb_model *m = r->model;
    rb_memory_engine engines[3];
    size_t n = 0;
    int c, h, w;
    int64_t classes = rb_split_classes(r->train), eval_batch;
    uint64_t data;
    rb_status s = RB_OK;
    rb_engine_options eo = {.threads = r->cfg.threads, .precision = r->cfg.precision,
                            .conv_algorithm = r->cfg.conv_algorithm};
    if (classes < 2 && r->source != NULL)
        return train_invalid("the target %s has %lld class; transfer needs at least 2 (check --classes)",
                             rb_split_name(r->train), (long long)classes);
    if (classes < 2)
        return train_invalid("--data %s%s%s leaves %lld class: training needs at least 2", r->cfg.data,
                             r->cfg.classes != NULL ? " --classes " : "", r->cfg.classes != NULL ? r->cfg.classes : "",
                             (long long)classes);
    rb_split_shape(r->train, &c, &h, &w);
    if (m == NULL) {
        rb_model_input in = {.channels = c, .height = h, .width = w};
        rb_params *p = NULL;
        for (int k = 0; k < c && k < RB_MODEL_MAX_CHANNELS; k++)
            in.mean[k] = 0, in.std[k] = 1;
        if (r->source != NULL) {
            in = *rb_model_get_input(r->source);
            in.height = h;
            in.width = w;
            s = rb_model_create_with_head(&probe, rb_model_arch(r->source), rb_model_params(r->source),
                                          r->cfg.transfer.task, r->cfg.transfer.task_params, &in, classes);
        } else if ((s = rb_params_clone(r->cfg.arch_params, &p)) == RB_OK) {
            char k[32];
            snprintf(k, sizeof k, "%lld", (long long)classes);
            if (rb_params_declares(p, RB_PARAM_NUM_CLASSES) && rb_params_source(p, RB_PARAM_NUM_CLASSES) != RB_PARAM_GIVEN)
                s = rb_params_set(p, RB_PARAM_NUM_CLASSES, k);
            if (s == RB_OK)
                s = rb_model_create(&probe, r->cfg.arch, p, &in);
        }
        rb_params_destroy(p);
        if (s != RB_OK)
            return s; /* train_create_model would say the same */
        m = probe;
    }
    eval_batch = r->cfg.training.eval_batch_size;
    if (r->has_test && eval_batch > rb_split_count(r->test))
        eval_batch = rb_split_count(r->test); /* as train_setup sizes it */
    engines[n++] = (rb_memory_engine){r->cfg.training.batch_size, false};
    if (r->has_test)
        engines[n++] = (rb_memory_engine){eval_batch, true};
    if (r->cfg.adversarial.attack != NULL)
        engines[n++] = (rb_memory_engine){r->cfg.training.batch_size, true};
    /* the loader's ring of float batches (threads + 1, at least 2) and the
     * evaluation batch; the stored images are already loaded */
    data = ((uint64_t)(r->cfg.threads > 0 ? r->cfg.threads + 1 : 3) * (uint64_t)r->cfg.training.batch_size +
            (uint64_t)eval_batch) *
           (uint64_t)c * (uint64_t)h * (uint64_t)w * sizeof(float);
    s = rb_model_check_memory(m, &eo, engines, n, data,
                              r->source != NULL || r->cfg.transfer.source != NULL
                                  ? "lower --batch-size, --eval-batch-size or the target's --image-size"
                                  : "lower --batch-size, --eval-batch-size or --image-size");
    rb_model_destroy(probe);
    return s;
}

/* Per-channel mean and standard deviation of the training pixels. */
static rb_status data_normalization(const rb_split *split, rb_model_input *in)
{
    int c, h, w;
    size_t per = rb_split_example_size(split), plane;
    int64_t n = rb_split_count(split);
    double sum[RB_MODEL_MAX_CHANNELS] = {0}, sq[RB_MODEL_MAX_CHANNELS] = {0};
    float *x = malloc(per * sizeof *x);
    rb_status s = RB_OK;
    rb_split_shape(split, &c, &h, &w);
    if (c > RB_MODEL_MAX_CHANNELS) {
        free(x);
        return train_invalid("%s has %d channels; models take at most %d", rb_split_name(split), c,
                             RB_MODEL_MAX_CHANNELS);
    }
    if (x == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory computing the data's mean");
    plane = (size_t)h * (size_t)w;
    for (int64_t i = 0; s == RB_OK && i < n; i++) {
        s = rb_split_example(split, i, NULL, 0, 0, x);
        for (int ch = 0; s == RB_OK && ch < c; ch++)
            for (size_t p = 0; p < plane; p++) {
                double v = x[(size_t)ch * plane + p];
                sum[ch] += v;
                sq[ch] += v * v;
            }
    }
    free(x);
    in->channels = c;
    in->height = h;
    in->width = w;
    for (int ch = 0; ch < c; ch++) {
        double count = (double)n * (double)plane, mean = sum[ch] / count, var = sq[ch] / count - mean * mean;
        double sd = var > 1e-12 ? sqrt(var) : 1.0;
        in->mean[ch] = (float)mean;
        in->std[ch] = (float)sd;
    }
    return s;
}


rb_status train_create_model(run *r)
{
    rb_model_input in;
    rb_params *p = NULL;
    rb_status s;
    if (r->cfg.transfer.source != NULL)
        return train_create_transfer_model(r);
    memset(&in, 0, sizeof in);
    if ((s = data_normalization(r->train, &in)) != RB_OK || (s = rb_params_clone(r->cfg.arch_params, &p)) != RB_OK)
        goto done;
    if (rb_params_declares(p, RB_PARAM_NUM_CLASSES) && rb_params_source(p, RB_PARAM_NUM_CLASSES) != RB_PARAM_GIVEN) {
        char k[32];
        snprintf(k, sizeof k, "%lld", (long long)rb_split_classes(r->train));
        if ((s = rb_params_set(p, RB_PARAM_NUM_CLASSES, k)) != RB_OK)
            goto done;
    }
    if ((s = rb_model_create(&r->model, r->cfg.arch, p, &in)) != RB_OK)
        goto done;
    if (rb_model_num_classes(r->model) < rb_split_classes(r->train))
        s = train_invalid("the data has %lld classes but the model only %lld (num-classes)",
                          (long long)rb_split_classes(r->train), (long long)rb_model_num_classes(r->model));
    else
        s = rb_graph_init_params(rb_model_graph(r->model), r->cfg.seed);
done:
    rb_params_destroy(p);
    return s;
}

/* In a job of several ranks, rank 0's training kernels are the job's:
 * rank 0 plans (and tunes) first, then sends its plan, which the others
 * follow, so that ranks sharing a node do not time kernels against each
 * other and every rank runs what config.json records. Sent as
 * config.json writes it ({"plan": ...}) and read back by the same reader. */
static rb_status share_plan(rb_plan *plan, bool send)
{
    json_object *root = NULL;
    const char *sent = NULL;
    char *wire = NULL;
    uint64_t bytes = 0;
    rb_status s;
    if (send) {
        root = json_object_new_object();
        json_object_object_add(root, "plan", train_plan_to_json(plan));
        sent = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
        bytes = strlen(sent);
    }
    if ((s = rb_dist_broadcast(&bytes, sizeof bytes, 0)) == RB_OK) {
        if (send)
            s = rb_dist_broadcast((void *)sent, (size_t)bytes, 0);
        else if ((wire = calloc((size_t)bytes + 1, 1)) == NULL)
            s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory receiving the plan");
        else if ((s = rb_dist_broadcast(wire, (size_t)bytes, 0)) == RB_OK) {
            if ((root = json_tokener_parse(wire)) == NULL)
                s = rb_error_set(RB_ERR_INTERNAL, "rank 0's plan did not arrive whole");
            else
                s = train_read_plan(root, "rank 0's plan", plan);
        }
    }
    json_object_put(root);
    free(wire);
    return s;
}

rb_status train_setup(run *r)
{
    rb_engine_options eo = {.threads = r->cfg.threads, .precision = r->cfg.precision,
                            .conv_algorithm = r->cfg.conv_algorithm, .tune = r->cfg.tune};
    /* evaluation and attack engines never train */
    rb_engine_options eval_eo = {.threads = r->cfg.threads, .data_grads_only = true, .precision = r->cfg.precision,
                                 .conv_algorithm = r->cfg.conv_algorithm};
    rb_loader_options lo = {0};
    rb_node *outputs[RB_MODEL_ENGINE_OUTPUTS];
    rb_sgd_options so = {.momentum = r->cfg.training.momentum,
                         .weight_decay = r->cfg.training.weight_decay,
                         .nesterov = r->cfg.training.nesterov};
    rb_status s;
    int64_t eval_batch = r->cfg.training.eval_batch_size;
    if ((s = rb_schedule_parse(r->cfg.training.schedule, r->cfg.training.lr, (double)r->cfg.training.epochs,
                               &r->schedule)) != RB_OK)
        return s;
    lo.batch_size = r->cfg.training.batch_size;
    lo.shuffle = true;
    lo.drop_last = true;
    lo.seed = r->cfg.seed;
    lo.threads = r->cfg.loader_threads;
    /* each rank its part of every batch; the gradients summed as backward
     * makes them (robusta/grad_sync.h) */
    lo.shard = rb_dist_rank();
    lo.shards = rb_dist_size();
    /* every batch is whole (drop_last), so this rank's share is the same each step */
    r->local_batch = r->cfg.training.batch_size * (lo.shard + 1) / lo.shards -
                     r->cfg.training.batch_size * lo.shard / lo.shards;
    if (lo.shards > r->cfg.training.batch_size)
        return train_invalid("--batch-size %lld is smaller than the job's %d ranks: each rank needs at least one "
                             "example of every batch",
                             (long long)r->cfg.training.batch_size, lo.shards);
    if (lo.shards > 1) {
        rb_grad_sync_options buckets = {.bucket_bytes = (size_t)(r->cfg.training.bucket_mib * (1 << 20))};
        if ((s = rb_grad_sync_create(&r->grad_sync, rb_model_graph(r->model), &buckets)) != RB_OK ||
            (s = rb_grad_sync_broadcast_values(rb_model_graph(r->model))) != RB_OK)
            return s;
        const char *check = getenv("RB_DIST_CHECK");
        r->check_ranks = check != NULL && check[0] != '\0' && strcmp(check, "0") != 0;
        eo.node_backward_done = rb_grad_sync_node_done;
        eo.node_backward_done_user = r->grad_sync;
        eo.sync_bn_batch = r->cfg.training.sync_bn ? r->cfg.training.batch_size : 0;
    }
    if (r->cfg.augment)
        rb_augment_defaults(rb_split_kind(r->train), &lo.augment);
    if ((s = rb_loader_create(&r->loader, r->train, &lo)) != RB_OK)
        return s;
    /* nothing of the backbone that neither the outputs nor the loss need */
    eo.outputs = eval_eo.outputs = outputs;
    eo.n_outputs = eval_eo.n_outputs = rb_model_engine_outputs(r->model, outputs);
    if ((s = train_check_targets(r->model, r->train)) != RB_OK ||
        (r->cfg.adversarial.attack != NULL && (s = train_check_attackable(r->model, "adversarial training")) != RB_OK) ||
        (r->plan == NULL && (s = rb_plan_create(&r->plan)) != RB_OK))
        return s;
    eo.plan = r->plan;
    if ((lo.shards > 1 && lo.shard != 0 && (s = share_plan(r->plan, false)) != RB_OK) ||
        (s = rb_engine_create(&r->engine, rb_model_graph(r->model), r->local_batch, &eo)) != RB_OK ||
        (lo.shards > 1 && lo.shard == 0 && (s = share_plan(r->plan, true)) != RB_OK))
        return s;
    if (r->has_test) {
        if ((s = train_check_eval_shapes(r->model, r->test)) != RB_OK)
            return s;
        if (eval_batch > rb_split_count(r->test))
            eval_batch = rb_split_count(r->test);
        if ((s = rb_engine_create(&r->eval_engine, rb_model_graph(r->model), eval_batch, &eval_eo)) != RB_OK)
            return s;
    }
    if ((s = rb_scorer_create(&r->scorer, r->model)) != RB_OK)
        return s;
    if (r->cfg.adversarial.attack != NULL) {
        /* A second engine on the same graph: it reads the weights the SGD steps write. */
        if ((s = rb_engine_create(&r->adv_engine, rb_model_graph(r->model), r->local_batch, &eval_eo)) != RB_OK ||
            (s = rb_attacker_create(&r->attacker, r->adv_engine, r->model)) != RB_OK)
            return s;
        r->adv_x = malloc((size_t)r->local_batch * rb_split_example_size(r->train) * sizeof *r->adv_x);
        if (r->adv_x == NULL)
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for adversarial batches");
        if (r->cfg.adversarial.attack_params != NULL)
            s = rb_params_clone(r->cfg.adversarial.attack_params, &r->attack_params);
        else
            s = rb_params_create(&r->attack_params, r->cfg.adversarial.attack->params);
        if (s != RB_OK)
            return s;
        r->eps = 0;
        if (rb_params_declares(r->attack_params, RB_PARAM_EPS))
            rb_params_get_float(r->attack_params, RB_PARAM_EPS, &r->eps);
    }
    return rb_sgd_create(&r->sgd, rb_model_graph(r->model), &so);
}

void train_run_free(run *r)
{
    rb_sgd_destroy(r->sgd);
    rb_grad_sync_destroy(r->grad_sync);
    rb_engine_destroy(r->eval_engine);
    rb_attacker_destroy(r->attacker);
    rb_engine_destroy(r->adv_engine);
    rb_engine_destroy(r->engine);
    rb_plan_destroy(r->plan);
    r->plan = NULL;
    rb_params_destroy(r->attack_params);
    free(r->adv_x);
    rb_loader_destroy(r->loader);
    rb_model_destroy(r->model);
    rb_model_destroy(r->full);
    rb_model_destroy(r->source);
    rb_split_destroy(r->test);
    rb_split_destroy(r->train);
    rb_split_destroy(r->image_test);
    rb_split_destroy(r->image_train);
    free(r->csv.data);
    free(r->jsonl.data);
    rb_scorer_destroy(r->scorer);
    free(r->metrics_json);
    rb_run_dir_unlock(r->cfg.out_dir, r->lock_fd);
    r->lock_fd = -1;
}
