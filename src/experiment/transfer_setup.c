/* Transfer set-up: the source model, the transfer model with the task's head,
 * and fixed-feature mode's frozen backbone and feature cache (its size, said
 * and refused past the limit, and the features extracted). */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "experiment/train_internal.h"
#include "sys/internal.h"

/* The transfer model: the source's backbone, normalization and weights with
 * the task's new head for the target's classes. */
rb_status train_create_transfer_model(run *r)
{
    rb_model_input in = *rb_model_get_input(r->source);
    int c, h, w;
    size_t copied = 0;
    rb_status s;
    if (rb_split_classes(r->train) < 2)
        return train_invalid("the target %s has %lld class; transfer needs at least 2 (check --classes)",
                             rb_split_name(r->train), (long long)rb_split_classes(r->train));
    rb_split_shape(r->train, &c, &h, &w);
    if (c != in.channels)
        return train_invalid("the target images have %d channel(s) but the source model takes %lld (--channels %lld)",
                             c, (long long)in.channels, (long long)in.channels);
    in.height = h;
    in.width = w;
    s = rb_model_create_with_head(&r->model, rb_model_arch(r->source), rb_model_params(r->source), r->cfg.transfer.task,
                                  r->cfg.transfer.task_params, &in, rb_split_classes(r->train));
    if (s == RB_OK)
        s = rb_model_init_params(r->model, r->cfg.seed);
    if (s == RB_OK)
        s = rb_model_copy_params(r->model, r->source, RB_MODEL_BACKBONE, &copied);
    if (s != RB_OK)
        return rb_error_prefix("--source %s: ", r->cfg.transfer.source);
    rb_log(RB_LOG_DEBUG, "transfer: %zu backbone tensors from %s", copied, r->cfg.transfer.source);
    r->cfg.arch_params = rb_model_params(r->model); /* the source's go with it */
    rb_model_destroy(r->source);
    r->source = NULL;
    return RB_OK;
}

/* What the head reads of the backbone (the `n` nodes `stages`, by an
 * inference engine) for every example of `split`, as a feature-map split
 * of `dtype` in the geometry the detached head takes (`in`: one node as it
 * is, several packed one after another per example, as
 * rb_model_head_create packs them), with the same labels and order.
 * Written batch by batch into the split: no second copy. */
static rb_status extract_features(run *r, rb_engine *engine, rb_node *const *stages, size_t n,
                                  const rb_model_input *in, rb_dtype dtype, const rb_split *split, rb_split **out)
{
    int64_t batch = rb_engine_batch(engine), count = rb_split_count(split);
    size_t per = rb_split_example_size(split), f = (size_t)(in->channels * in->height * in->width);
    float *images = calloc((size_t)batch * per, sizeof *images), *row = malloc((size_t)batch * f * sizeof *row);
    float *stage = n > 1 ? malloc((size_t)batch * f * sizeof *stage) : NULL;
    int64_t *labels = calloc((size_t)batch, sizeof *labels);
    const char **names = calloc((size_t)rb_split_classes(split), sizeof *names);
    rb_progress *bar = NULL;
    char what[256];
    rb_status s = RB_OK;
    *out = NULL;
    if (images == NULL || row == NULL || labels == NULL || names == NULL || (n > 1 && stage == NULL))
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the features of %s", rb_split_name(split));
    snprintf(what, sizeof what, "features of %s", rb_split_name(split));
    for (int64_t k = 0; s == RB_OK && k < rb_split_classes(split); k++)
        names[k] = rb_split_class_name(split, k);
    if (s == RB_OK)
        s = rb_split_create_feature_maps(out, dtype, count, (int)in->channels, (int)in->height, (int)in->width,
                                         rb_split_labels(split), rb_split_classes(split), names, what);
    if (s == RB_OK && !r->cfg.quiet)
        s = rb_progress_create(&bar, "features", (uint64_t)count, "img", NULL);
    for (int64_t first = 0; s == RB_OK && first < count; first += batch) {
        int64_t rows = count - first < batch ? count - first : batch;
        memset(images, 0, (size_t)batch * per * sizeof *images);
        memset(labels, 0, (size_t)batch * sizeof *labels);
        for (int64_t i = 0; s == RB_OK && i < rows; i++) {
            s = rb_split_example(split, first + i, NULL, 0, 0, images + (size_t)i * per);
            labels[i] = rb_split_labels(split)[first + i];
        }
        if (s == RB_OK)
            s = rb_engine_forward(engine, images, batch, labels, false);
        if (s == RB_OK && n == 1)
            s = rb_engine_read(engine, stages[0], row);
        for (size_t k = 0, offset = 0; s == RB_OK && n > 1 && k < n; k++) {
            int64_t c, h, w;
            size_t size;
            rb_node_shape(stages[k], &c, &h, &w);
            size = (size_t)(c * h * w);
            if ((s = rb_engine_read(engine, stages[k], stage)) != RB_OK)
                break;
            for (int64_t i = 0; i < rows; i++)
                memcpy(row + (size_t)i * f + offset, stage + (size_t)i * size, size * sizeof *row);
            offset += size;
        }
        if (s == RB_OK)
            s = rb_split_features_write(*out, first, rows, row);
        if (s == RB_OK && bar != NULL)
            rb_progress_update(bar, (uint64_t)(first + rows), "%s", rb_split_name(split));
    }
    if (bar != NULL) {
        if (s == RB_OK)
            rb_progress_finish(bar, "%s", rb_split_name(split));
        rb_progress_destroy(bar);
    }
    if (s == RB_OK) /* masks and boxes stay in image pixels: the head upsamples to them */
        s = rb_split_features_take_targets(*out, split);
    if (s != RB_OK) {
        rb_split_destroy(*out);
        *out = NULL;
    }
    free(images);
    free(row);
    free(stage);
    free(labels);
    free(names);
    return s;
}

/* Bytes of a split's stored images. */
static uint64_t split_bytes(const rb_split *split)
{
    int c = 0, h = 0, w = 0;
    if (split == NULL)
        return 0;
    rb_split_stored_shape(split, &c, &h, &w);
    return (uint64_t)rb_split_count(split) * (uint64_t)c * (uint64_t)h * (uint64_t)w *
           rb_dtype_size(rb_split_dtype(split));
}

/* Bytes as MiB for messages: "0.15", "97.50", "12,288". */
static const char *mib_text(char *buf, size_t size, uint64_t bytes)
{
    double mib = (double)bytes / (1 << 20);
    if (mib < 100)
        snprintf(buf, size, "%.2f", mib);
    else
        rb_format_count(buf, size, (unsigned long long)llround(mib));
    return buf;
}

/* The names and shapes of the stages the head reads, for messages:
 * "stage2" and "32 x 16 x 16", or "stage2 + stage3" and "32 x 16 x 16 +
 * 64 x 8 x 8". */
static void stages_text(const rb_model *model, rb_node *const *stages, size_t n, char *names, size_t names_size,
                        char *shapes, size_t shapes_size)
{
    size_t a = 0, b = 0;
    names[0] = shapes[0] = '\0';
    for (size_t k = 0; k < n; k++) {
        int64_t c, h, w;
        rb_node_shape(stages[k], &c, &h, &w);
        if (a < names_size)
            a += (size_t)snprintf(names + a, names_size - a, "%s%s", k > 0 ? " + " : "",
                                  rb_model_stage_name(model, stages[k]));
        if (b < shapes_size)
            b += (size_t)snprintf(shapes + b, shapes_size - b, "%s%lld x %lld x %lld", k > 0 ? " + " : "",
                                  (long long)c, (long long)h, (long long)w);
    }
}

/* The feature cache's size, said before anything is computed, and refused
 * past the limit. */
static rb_status check_cache_size(run *r, rb_node *const *stages, size_t n, const rb_model_input *in,
                                  rb_dtype dtype)
{
    int64_t n_train = rb_split_count(r->train), n_test = r->has_test ? rb_split_count(r->test) : 0;
    uint64_t per = (uint64_t)in->channels * (uint64_t)in->height * (uint64_t)in->width;
    uint64_t bytes = (uint64_t)(n_train + n_test) * per * rb_dtype_size(dtype),
             limit = r->cfg.transfer.feature_cache_limit;
    uint64_t have = rb_machine_memory_bytes(), images = split_bytes(r->train) + split_bytes(r->test);
    char b[40], bm[40], l[40], lm[40], count[64], stage[128], shapes[256];
    stages_text(r->model, stages, n, stage, sizeof stage, shapes, sizeof shapes);
    if (limit == 0)
        limit = have > images ? have - images : 0;
    if (r->has_test)
        snprintf(count, sizeof count, "%lld + %lld images", (long long)n_train, (long long)n_test);
    else
        snprintf(count, sizeof count, "%lld images", (long long)n_train);
    rb_log(RB_LOG_INFO,
           "fixed-feature transfer: caching %s (%s values per image, %s the head reads) of %s in %s: %s bytes "
           "(%s MiB)",
           stage, shapes, n == 1 ? "the one stage" : "the stages", count, rb_dtype_str(dtype),
           rb_format_count(b, sizeof b, bytes), mib_text(bm, sizeof bm, bytes));
    if (bytes <= limit)
        return RB_OK;
    return rb_error_set(
        RB_ERR_OUT_OF_MEMORY, "the feature cache of %s (%s bytes, %s MiB in %s) exceeds %s (%s bytes, %s MiB): %s",
        stage, b, bm, rb_dtype_str(dtype),
        r->cfg.transfer.feature_cache_limit != 0 ? "--feature-cache-limit"
                                                 : "this machine's memory less the loaded images",
        rb_format_count(l, sizeof l, limit), mib_text(lm, sizeof lm, limit),
        dtype == RB_DTYPE_F32 ? "use --feature-cache bf16 (half the size), --feature-cache off (no cache), or a "
                                "smaller stage (--stage)"
                              : "use --feature-cache off (no cache) or a smaller stage (--stage)");
}

/* Fixed-feature mode: freezes the backbone and, where the backbone is a fixed
 * function of each image, swaps the model and splits for the head and the
 * cached features. */
rb_status train_prepare_transfer(run *r)
{
    rb_engine_options eo = {.threads = r->cfg.threads, .data_grads_only = true, .precision = r->cfg.precision,
                            .conv_algorithm = r->cfg.conv_algorithm};
    rb_engine *engine = NULL;
    rb_model *head = NULL;
    rb_split *train = NULL, *test = NULL;
    int64_t batch = r->cfg.training.eval_batch_size;
    rb_dtype dtype = r->cfg.transfer.feature_cache == RB_FEATURE_CACHE_BF16 ? RB_DTYPE_BF16 : RB_DTYPE_F32;
    rb_node *stages[8];
    char why[512] = "";
    size_t reads = 0;
    rb_status s;
    /* fixed_features and bn_update mean nothing without a source */
    if (r->cfg.transfer.source == NULL || !r->cfg.transfer.fixed_features)
        return RB_OK;
    if ((s = rb_graph_freeze_through(rb_model_graph(r->model), rb_model_backbone_end(r->model))) != RB_OK)
        return s;
    /* Only the backbone's batch-norm keeps its statistics: a task head's
     * own (the segment head's) learns them, as torchvision's head does
     * under model.train() with a frozen backbone. */
    if (!r->cfg.transfer.bn_update &&
        (s = rb_graph_freeze_statistics_through(rb_model_graph(r->model), rb_model_backbone_end(r->model))) != RB_OK)
        return s;
    if (r->cfg.transfer.feature_cache == RB_FEATURE_CACHE_OFF)
        snprintf(why, sizeof why, "--feature-cache off");
    else if (r->cfg.transfer.bn_update)
        snprintf(why, sizeof why, "--bn-stats update moves the backbone's statistics");
    else if (r->cfg.augment)
        snprintf(why, sizeof why, "--augment changes the images every epoch");
    else if ((reads = rb_model_head_inputs(r->model, stages, sizeof stages / sizeof stages[0])) >
             sizeof stages / sizeof stages[0])
        snprintf(why, sizeof why, "the head reads %zu backbone nodes", reads);
    else if ((s = rb_model_head_create(&head, r->model)) == RB_ERR_UNSUPPORTED)
        snprintf(why, sizeof why, "%s", rb_last_error());
    else if (s != RB_OK)
        return s;
    if (why[0] != '\0') {
        rb_log(RB_LOG_INFO, "fixed-feature transfer without a feature cache (%s): the frozen backbone runs at every "
                            "step", why);
        return RB_OK;
    }
    s = check_cache_size(r, stages, reads, rb_model_get_input(head), dtype);
    if (batch > rb_split_count(r->train))
        batch = rb_split_count(r->train);
    eo.outputs = stages; /* the backbone up to the stages, no more */
    eo.n_outputs = reads;
    if (s == RB_OK)
        s = rb_engine_create(&engine, rb_model_graph(r->model), batch, &eo);
    if (s == RB_OK) {
        rb_engine_hold_weights(engine, true); /* a frozen backbone: convert its weights once */
        s = extract_features(r, engine, stages, reads, rb_model_get_input(head), dtype, r->train, &train);
    }
    if (s == RB_OK && r->has_test)
        s = extract_features(r, engine, stages, reads, rb_model_get_input(head), dtype, r->test, &test);
    rb_engine_destroy(engine);
    if (s == RB_OK)
        s = rb_model_copy_params(head, r->model, RB_MODEL_ALL, NULL);
    if (s != RB_OK) {
        rb_model_destroy(head);
        rb_split_destroy(train);
        rb_split_destroy(test);
        return s;
    }
    r->full = r->model;
    r->model = head;
    r->image_train = r->train;
    r->image_test = r->test;
    r->train = train;
    r->test = test;
    return RB_OK;
}

/* The whole model, with the trained head copied in when training runs on
 * cached features. */
rb_status train_whole_model(run *r, rb_model **out)
{
    *out = r->full != NULL ? r->full : r->model;
    if (r->full != NULL)
        return rb_model_copy_params(r->full, r->model, RB_MODEL_HEAD, NULL);
    return RB_OK;
}

/* Loads the source model of a transfer and takes its channels for the
 * target images unless --channels says otherwise. */
rb_status train_load_source(run *r)
{
    rb_status s = rb_model_load(&r->source, r->cfg.transfer.registry, r->cfg.transfer.source, 0, 0);
    if (s != RB_OK)
        return rb_error_prefix("--source: ");
    if (rb_model_task(r->source) != NULL)
        rb_log(RB_LOG_INFO, "--source %s is itself a transferred model: its backbone is used, its %s head dropped",
               r->cfg.transfer.source, rb_model_task(r->source)->name);
    r->cfg.arch = rb_model_arch(r->source);
    r->cfg.arch_params = rb_model_params(r->source);
    if (r->cfg.arch_name == NULL)
        r->cfg.arch_name = r->cfg.arch->name;
    if (r->cfg.channels == 0)
        r->cfg.channels = (int)rb_model_get_input(r->source)->channels;
    return RB_OK;
}

