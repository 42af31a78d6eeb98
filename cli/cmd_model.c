/* Commands that move models in and out of robusta and run them:
 * import (safetensors -> .rbt), export (.rbt -> safetensors), infer
 * (logits and input gradients on .npy images) and inspect. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"

/* ------------------------------------------------------------ helpers */


/* Reads "a,b,c" (exactly `n` values) from a float-list option. */
static rb_status channel_values(const rb_params *o, const char *name, int64_t n, float *out, bool *given)
{
    const double *v;
    size_t count;
    *given = rb_params_source(o, name) == RB_PARAM_GIVEN;
    if (!*given)
        return RB_OK;
    rb_params_get_float_list(o, name, &v, &count);
    if ((int64_t)count != n)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "--%s needs %lld values (one per input channel), got %zu",
                            name, (long long)n, count);
    for (size_t i = 0; i < count; i++)
        out[i] = (float)v[i];
    return RB_OK;
}

static int64_t get_int(const rb_params *o, const char *name)
{
    int64_t v = 0;
    rb_params_get_int(o, name, &v);
    return v;
}

static const char *get_string(const rb_params *o, const char *name)
{
    const char *v = NULL;
    if (rb_params_source(o, name) == RB_PARAM_UNSET)
        return NULL;
    rb_params_get_string(o, name, &v);
    return v;
}

/* ------------------------------------------------------------ import */

/* Prefixes that wrappers add in front of torchvision names: DataParallel
 * ("module."), and the robustness library's AttackerModel, which holds the
 * same network twice ("module.model." and "module.attacker.model."). */
static const char *const wrapper_prefixes[] = {"module.attacker.model.", "module.model.", "module.", NULL};

static const char *strip_prefix(const char *name)
{
    for (size_t i = 0; wrapper_prefixes[i] != NULL; i++) {
        size_t n = strlen(wrapper_prefixes[i]);
        if (strncmp(name, wrapper_prefixes[i], n) == 0)
            return name + n;
    }
    return name;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The normalization buffers of the robustness library's input normalizer. */
static int normalizer_field(const char *name)
{
    if (strcmp(name, "normalizer.new_mean") == 0 || strcmp(name, "attacker.normalize.new_mean") == 0)
        return 1;
    if (strcmp(name, "normalizer.new_std") == 0 || strcmp(name, "attacker.normalize.new_std") == 0)
        return 2;
    return 0;
}

static bool ignored_tensor(const char *name)
{
    return ends_with(name, ".num_batches_tracked") || strcmp(name, "num_batches_tracked") == 0 ||
           strncmp(name, "normalizer.", 11) == 0 || strncmp(name, "attacker.normalize.", 19) == 0;
}

/* Finds a file tensor by torchvision name, whatever wrapper prefix it has.
 * Two copies under different prefixes (model and attacker.model) must hold
 * the same bytes. */
static rb_status find_stripped(const rb_safetensors *st, const char *file, const char *name,
                               rb_safetensors_tensor *out, bool *found)
{
    *found = false;
    for (size_t i = 0; i < rb_safetensors_count(st); i++) {
        rb_safetensors_tensor t;
        rb_safetensors_get(st, i, &t);
        if (strcmp(strip_prefix(t.name), name) != 0)
            continue;
        if (!*found) {
            *out = t;
            *found = true;
        } else if (t.nbytes != out->nbytes || strcmp(t.dtype, out->dtype) != 0 ||
                   memcmp(t.data, out->data, t.nbytes) != 0) {
            return rb_error_set(RB_ERR_CORRUPT, "%s: tensors '%s' and '%s' are both '%s' but differ", file,
                                out->name, t.name, name);
        }
    }
    return RB_OK;
}

/* mean or std from the normalizer buffers ([C] or [C, 1, 1]), if present. */
static rb_status file_normalization(const rb_safetensors *st, const char *file, int field, int64_t channels,
                                    float *out, bool *found)
{
    *found = false;
    for (size_t i = 0; i < rb_safetensors_count(st); i++) {
        rb_safetensors_tensor t;
        float values[RB_MODEL_MAX_CHANNELS];
        rb_status s;
        rb_safetensors_get(st, i, &t);
        if (normalizer_field(strip_prefix(t.name)) != field)
            continue;
        if (t.numel != channels)
            return rb_error_set(RB_ERR_CORRUPT, "%s: '%s' has %lld values but the model has %lld input channels",
                                file, t.name, (long long)t.numel, (long long)channels);
        if ((s = rb_safetensors_to_f32(&t, values)) != RB_OK)
            return s;
        if (*found && memcmp(values, out, (size_t)channels * sizeof *out) != 0)
            return rb_error_set(RB_ERR_CORRUPT, "%s: the normalizer buffers disagree ('%s')", file, t.name);
        memcpy(out, values, (size_t)channels * sizeof *out);
        *found = true;
    }
    return RB_OK;
}

static const rb_param_spec import_options[] = {
    {"arch", RB_PARAM_STRING, NULL, NULL, RB_PARAM_REQUIRED,
     "architecture: a plugin (resnet) or preset (resnet50, wide_resnet50_2)"},
    {"from", RB_PARAM_STRING, NULL, NULL, RB_PARAM_REQUIRED, "safetensors file with torchvision names"},
    {"out", RB_PARAM_STRING, NULL, NULL, RB_PARAM_REQUIRED, "the .rbt checkpoint to write"},
    {"mean", RB_PARAM_FLOAT_LIST, NULL, NULL, 0,
     "per-channel normalization mean (default: the file's normalizer, else ImageNet's)"},
    {"std", RB_PARAM_FLOAT_LIST, NULL, NULL, 0,
     "per-channel normalization std (default: the file's normalizer, else ImageNet's)"},
    {"channels", RB_PARAM_INT, "3", "[1, 16]", 0, "input channels"},
    {"image-size", RB_PARAM_INT, "224", "[1, 65536]", 0, "input height and width recorded in the model"},
    {NULL}};

static const cli_plugin_option arch_option[] = {{"arch", RB_PLUGIN_ARCH, NULL}, {NULL, 0, NULL}};

static rb_status import_weights(rb_model *model, const rb_safetensors *st, const char *file)
{
    rb_graph *g = rb_model_graph(model);
    /* Every model tensor from the file. */
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        rb_safetensors_tensor t;
        bool found;
        char have[128], want[128];
        rb_status s = rb_graph_param(g, i, &p);
        if (s == RB_OK)
            s = find_stripped(st, file, p.name, &t, &found);
        if (s != RB_OK)
            return s;
        if (!found)
            return rb_error_set(RB_ERR_NOT_FOUND, "%s: tensor '%s' is missing (the model needs it, shape %s)", file,
                                p.name, rb_shape_format(p.ndim, p.shape, want, sizeof want));
        if (t.ndim != p.ndim || memcmp(t.shape, p.shape, (size_t)p.ndim * sizeof *p.shape) != 0)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: tensor '%s' has shape %s but the model needs %s", file,
                                t.name, rb_shape_format(t.ndim, t.shape, have, sizeof have),
                                rb_shape_format(p.ndim, p.shape, want, sizeof want));
        if ((s = rb_safetensors_to_f32(&t, p.value)) != RB_OK)
            return s;
        for (int64_t k = 0; k < p.numel; k++)
            if (!isfinite(p.value[k]))
                return rb_error_set(RB_ERR_NUMERIC, "%s: tensor '%s' holds a non-finite value at index %lld", file,
                                    t.name, (long long)k);
    }
    /* Nothing in the file that the model does not use. */
    for (size_t i = 0; i < rb_safetensors_count(st); i++) {
        rb_safetensors_tensor t;
        rb_param_info p;
        const char *name;
        rb_safetensors_get(st, i, &t);
        name = strip_prefix(t.name);
        if (ignored_tensor(name))
            continue;
        if (rb_graph_find_param(g, name, &p) != RB_OK)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: tensor '%s' is not part of a %s model with these parameters (extra tensor)",
                                file, t.name, rb_model_arch(model)->name);
    }
    return RB_OK;
}

static int run_import(const cli_command *self, rb_params *o, int argc, char **args)
{
    const char *from = get_string(o, "from"), *out = get_string(o, "out");
    const rb_plugin *arch = cli_plugin("arch");
    rb_params *arch_params = cli_plugin_params("arch");
    rb_safetensors *st = NULL;
    rb_model *model = NULL;
    rb_model_input input;
    int64_t channels = get_int(o, "channels"), size = get_int(o, "image-size");
    bool mean_opt, std_opt, mean_file, std_file;
    float mean[RB_MODEL_MAX_CHANNELS], std[RB_MODEL_MAX_CHANNELS];
    rb_status s;

    (void)args;
    if (argc > 0) {
        rb_error_set(RB_ERR_INVALID_ARGUMENT, "import takes no positional arguments (got '%s')", args[0]);
        return cli_fail(self->name, RB_ERR_INVALID_ARGUMENT);
    }
    input = rb_model_input_imagenet(size, size);
    input.channels = channels;
    if (channels != 3) /* ImageNet's statistics only fit RGB: a neutral default otherwise */
        for (int64_t c = 0; c < channels; c++)
            input.mean[c] = 0.5f, input.std[c] = 0.5f;
    if ((s = channel_values(o, "mean", channels, mean, &mean_opt)) != RB_OK ||
        (s = channel_values(o, "std", channels, std, &std_opt)) != RB_OK)
        return cli_fail(self->name, s);
    if ((s = rb_safetensors_load(&st, from)) != RB_OK)
        return cli_fail(self->name, s);

    /* Normalization: the file's normalizer buffers, else the options, else
     * the default; options that contradict the file are an error. */
    {
        float fmean[RB_MODEL_MAX_CHANNELS], fstd[RB_MODEL_MAX_CHANNELS];
        s = file_normalization(st, from, 1, channels, fmean, &mean_file);
        if (s == RB_OK)
            s = file_normalization(st, from, 2, channels, fstd, &std_file);
        if (s == RB_OK && ((mean_file && mean_opt && memcmp(mean, fmean, sizeof(float) * (size_t)channels)) ||
                           (std_file && std_opt && memcmp(std, fstd, sizeof(float) * (size_t)channels))))
            s = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                             "%s holds normalizer mean/std that differ from --mean/--std; drop the options", from);
        if (s != RB_OK)
            goto done;
        memcpy(input.mean, mean_file ? fmean : mean_opt ? mean : input.mean, sizeof(float) * (size_t)channels);
        memcpy(input.std, std_file ? fstd : std_opt ? std : input.std, sizeof(float) * (size_t)channels);
    }

    /* Classes: from the classifier in the file unless given. */
    if (rb_params_declares(arch_params, RB_PARAM_NUM_CLASSES) &&
        rb_params_source(arch_params, RB_PARAM_NUM_CLASSES) != RB_PARAM_GIVEN) {
        rb_safetensors_tensor fc;
        bool found;
        char text[32];
        if ((s = find_stripped(st, from, "fc.weight", &fc, &found)) != RB_OK)
            goto done;
        if (found && fc.ndim == 2) {
            snprintf(text, sizeof text, "%lld", (long long)fc.shape[0]);
            if ((s = rb_params_set(arch_params, RB_PARAM_NUM_CLASSES, text)) != RB_OK)
                goto done;
        }
    }
    if ((s = rb_model_create(&model, arch, arch_params, &input)) != RB_OK)
        goto done;
    if ((s = import_weights(model, st, from)) != RB_OK)
        goto done;
    if ((s = rb_model_save(model, out)) != RB_OK)
        goto done;
    printf("imported %zu tensors (%lld parameters, %lld classes) from %s into %s\n",
           rb_graph_param_count(rb_model_graph(model)), (long long)rb_graph_trainable_count(rb_model_graph(model)),
           (long long)rb_model_num_classes(model), from, out);
done:
    rb_model_destroy(model);
    rb_safetensors_destroy(st);
    return s == RB_OK ? RB_EXIT_OK : cli_fail(self->name, s);
}

const cli_command cli_import_command = {
    .name = "import",
    .summary = "import torchvision weights from safetensors",
    .usage = "--arch NAME --from FILE.safetensors --out MODEL.rbt [arch options] [--mean a,b,c --std a,b,c]",
    .description =
        "Reads a state dict in torchvision layout from a safetensors file and writes a robusta\n"
        "checkpoint. Wrapper prefixes (module., module.model., module.attacker.model.) are\n"
        "stripped; num_batches_tracked and the robustness library's normalizer buffers are\n"
        "ignored, and the normalizer's mean/std are kept as the model's normalization.\n"
        "Missing or extra tensors and shape mismatches are refused by name. The architecture's\n"
        "own options (robusta plugins resnet lists them) may follow --arch; the number of\n"
        "classes defaults to the file's classifier.",
    .options = import_options,
    .plugin_options = arch_option,
    .run = run_import,
};

/* ------------------------------------------------------------ export */

static const rb_param_spec export_options[] = {
    {"ckpt", RB_PARAM_STRING, NULL, NULL, RB_PARAM_REQUIRED, "the .rbt checkpoint to read"},
    {"out", RB_PARAM_STRING, NULL, NULL, RB_PARAM_REQUIRED, "the safetensors file to write"},
    {NULL}};

static int run_export(const cli_command *self, rb_params *o, int argc, char **args)
{
    const char *ckpt_path = get_string(o, "ckpt"), *out = get_string(o, "out");
    rb_registry *reg = cli_registry();
    rb_checkpoint *ck = NULL;
    rb_model *model = NULL;
    rb_safetensors_entry *entries = NULL;
    char **names = NULL;
    size_t count = 0, extra = 0;
    static const int64_t zero_count = 0;
    rb_status s;

    (void)args;
    if (argc > 0) {
        rb_error_set(RB_ERR_INVALID_ARGUMENT, "export takes no positional arguments (got '%s')", args[0]);
        return cli_fail(self->name, RB_ERR_INVALID_ARGUMENT);
    }
    if (reg == NULL)
        return cli_fail(self->name, rb_last_status());
    if ((s = rb_checkpoint_load(&ck, ckpt_path, 0)) != RB_OK ||
        (s = rb_model_from_checkpoint(&model, reg, ck, ckpt_path, 0, 0)) != RB_OK)
        goto done;
    {
        rb_graph *g = rb_model_graph(model);
        size_t n = rb_graph_param_count(g);
        entries = calloc(2 * n, sizeof *entries);
        names = calloc(n, sizeof *names);
        if (entries == NULL || names == NULL) {
            s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory exporting %s", ckpt_path);
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            rb_param_info p;
            rb_graph_param(g, i, &p);
            entries[count++] = (rb_safetensors_entry){p.name, RB_DTYPE_F32, p.ndim, p.shape, p.value};
            /* torchvision's batch-norm state dicts carry a step counter too. */
            if (ends_with(p.name, ".running_var")) {
                size_t stem = strlen(p.name) - strlen(".running_var");
                names[extra] = malloc(stem + sizeof ".num_batches_tracked");
                if (names[extra] == NULL) {
                    s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory exporting %s", ckpt_path);
                    goto done;
                }
                snprintf(names[extra], stem + sizeof ".num_batches_tracked", "%.*s.num_batches_tracked", (int)stem,
                         p.name);
                entries[count++] = (rb_safetensors_entry){names[extra], RB_DTYPE_I64, 0, NULL, &zero_count};
                extra++;
            }
        }
    }
    {
        const char *keys[] = {"format", "robusta.metadata"};
        const char *values[] = {"pt", rb_checkpoint_metadata(ck)};
        s = rb_safetensors_save(out, entries, count, keys, values, 2);
    }
    if (s == RB_OK)
        printf("exported %zu tensors from %s to %s\n", count, ckpt_path, out);
done:
    for (size_t i = 0; i < extra; i++)
        free(names[i]);
    free(names);
    free(entries);
    rb_model_destroy(model);
    rb_checkpoint_destroy(ck);
    return s == RB_OK ? RB_EXIT_OK : cli_fail(self->name, s);
}

const cli_command cli_export_command = {
    .name = "export",
    .summary = "export a checkpoint's weights to safetensors",
    .usage = "--ckpt MODEL.rbt --out FILE.safetensors",
    .description =
        "Writes a checkpoint's parameters and batch-norm statistics as a safetensors state dict\n"
        "with torchvision names (plus num_batches_tracked, as torchvision saves them), loadable\n"
        "with torchvision's load_state_dict. The model's metadata goes into the file's\n"
        "__metadata__ under robusta.metadata.",
    .options = export_options,
    .run = run_export,
};

/* ------------------------------------------------------------ infer */

static const rb_param_spec infer_options[] = {
    {"ckpt", RB_PARAM_STRING, NULL, NULL, RB_PARAM_REQUIRED, "the .rbt model"},
    {"input", RB_PARAM_STRING, NULL, NULL, 0, "images: float32 .npy, N x C x H x W in [0, 1] (or --data)"},
    {"data", RB_PARAM_STRING, NULL, NULL, 0,
     "a dataset spec instead of --input: predictions go to --output (masks as PNGs in a folder; a detector's "
     "boxes to one COCO results file)"},
    {"split", RB_PARAM_CHOICE, "test", "test|train", 0, "with --data: which split"},
    {"classes", RB_PARAM_STRING, NULL, NULL, 0, "with --data: classes to keep, relabelled 0..k-1"},
    {"output", RB_PARAM_STRING, NULL, NULL, RB_PARAM_REQUIRED,
     "logits to write (float32 .npy, N x K), or with --data the folder of predictions (a detector: "
     "detections.json)"},
    {"labels", RB_PARAM_STRING, NULL, NULL, 0, "labels: integer .npy of N classes (needed for --input-grad)"},
    {"input-grad", RB_PARAM_STRING, NULL, NULL, 0,
     "write d(mean cross-entropy)/d(images) here: float32 .npy, N x C x H x W"},
    {"batch-size", RB_PARAM_INT, "32", "[1, 65536]", 0, "images per engine step"},
    {"threads", RB_PARAM_INT, "0", "[0, 4096]", 0, "compute threads (0: every core of this NUMA node)"},
    CLI_ARITHMETIC_OPTIONS,
    {NULL}};



/* infer --data: the model's predictions for a dataset split, written into
 * a folder (rb_infer_split), and its metrics printed as eval prints them. */
static int infer_dataset(const cli_command *self, rb_params *o)
{
    const char *ckpt = get_string(o, "ckpt"), *data = get_string(o, "data"), *dir = get_string(o, "output");
    const char *which_name = get_string(o, "split");
    const rb_split_which which = strcmp(which_name, "train") == 0 ? RB_SPLIT_TRAIN : RB_SPLIT_TEST;
    rb_engine_options eo = {.threads = (int)get_int(o, "threads"), .precision = cli_precision(o),
                            .conv_algorithm = cli_conv_algorithm(o)};
    rb_registry *reg = cli_registry();
    rb_model *model = NULL;
    rb_split *split = NULL;
    rb_eval_result ev;
    rb_status s;

    memset(&ev, 0, sizeof ev);
    if (rb_params_source(o, "input") == RB_PARAM_GIVEN || rb_params_source(o, "labels") == RB_PARAM_GIVEN ||
        rb_params_source(o, "input-grad") == RB_PARAM_GIVEN) {
        rb_error_set(RB_ERR_INVALID_ARGUMENT, "--data takes no --input, --labels or --input-grad (those are for .npy images)");
        return cli_fail(self->name, RB_ERR_INVALID_ARGUMENT);
    }
    if (reg == NULL)
        return cli_fail(self->name, rb_last_status());
    if ((s = rb_model_load(&model, reg, ckpt, 0, 0)) == RB_OK &&
        (s = rb_eval_open_split(model, data, which, &(rb_split_options){.classes = get_string(o, "classes")}, &split)) ==
            RB_OK &&
        (s = rb_infer_split(model, split, get_int(o, "batch-size"), &eo, dir, &ev)) == RB_OK) {
        cli_print_eval(&(cli_eval_report){.ckpt = ckpt, .data = data, .which = which,
                                          .classes = get_string(o, "classes"), .split = split, .result = &ev},
                       false);
        printf("predictions of %lld images in %s\n", (long long)ev.count, dir);
    }
    rb_eval_result_free(&ev);
    rb_split_destroy(split);
    rb_model_destroy(model);
    return s == RB_OK ? RB_EXIT_OK : cli_fail(self->name, s);
}

static int run_infer(const cli_command *self, rb_params *o, int argc, char **args)
{
    const char *ckpt = get_string(o, "ckpt"), *labels_path = get_string(o, "labels");
    const char *grad_path = get_string(o, "input-grad");
    rb_registry *reg = cli_registry();
    rb_npy *x = NULL;
    rb_model *model = NULL;
    rb_engine *engine = NULL;
    int64_t *labels = NULL, n, c, h, w, k, batch, per;
    float *batch_images = NULL, *batch_logits = NULL, *batch_grad = NULL, *logits = NULL, *grad = NULL;
    int64_t *batch_labels = NULL;
    double loss_sum = 0;
    int64_t correct = 0;
    rb_status s;

    (void)args;
    if (argc > 0) {
        rb_error_set(RB_ERR_INVALID_ARGUMENT, "infer takes no positional arguments (got '%s')", args[0]);
        return cli_fail(self->name, RB_ERR_INVALID_ARGUMENT);
    }
    if (get_string(o, "data") != NULL)
        return infer_dataset(self, o);
    if (get_string(o, "input") == NULL) {
        rb_error_set(RB_ERR_INVALID_ARGUMENT, "give the images: --input X.npy, or --data SPEC");
        return cli_fail(self->name, RB_ERR_INVALID_ARGUMENT);
    }
    if (grad_path != NULL && labels_path == NULL) {
        rb_error_set(RB_ERR_INVALID_ARGUMENT, "--input-grad needs --labels (the gradient is of the loss)");
        return cli_fail(self->name, RB_ERR_INVALID_ARGUMENT);
    }
    if (reg == NULL)
        return cli_fail(self->name, rb_last_status());
    if ((s = cli_read_images(get_string(o, "input"), &x)) != RB_OK)
        return cli_fail(self->name, s);
    n = x->shape[0], c = x->shape[1], h = x->shape[2], w = x->shape[3];
    per = c * h * w;
    if ((s = rb_model_load(&model, reg, ckpt, h, w)) != RB_OK)
        goto done;
    if (rb_model_get_input(model)->channels != c) {
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s has %lld channels but %s takes %lld", get_string(o, "input"),
                         (long long)c, ckpt, (long long)rb_model_get_input(model)->channels);
        goto done;
    }
    k = rb_model_num_classes(model);
    if (labels_path != NULL && (s = cli_read_labels(labels_path, n, k, &labels)) != RB_OK)
        goto done;
    batch = get_int(o, "batch-size");
    if (batch > n)
        batch = n;
    {
        rb_engine_options eo = {.threads = (int)get_int(o, "threads"), .data_grads_only = true,
                                .precision = cli_precision(o), .conv_algorithm = cli_conv_algorithm(o)};
        rb_memory_engine one = {batch, true};
        rb_node *outputs[RB_MODEL_ENGINE_OUTPUTS];
        eo.outputs = outputs;
        eo.n_outputs = rb_model_engine_outputs(model, outputs);
        /* the batch buffers: images, logits and gradients */
        if ((s = rb_model_check_memory(model, &eo, &one, 1,
                                       (uint64_t)batch * (uint64_t)(2 * per + k) * sizeof(float),
                                       "lower --batch-size or infer smaller images")) != RB_OK ||
            (s = rb_engine_create(&engine, rb_model_graph(model), batch, &eo)) != RB_OK)
            goto done;
    }
    batch_images = calloc((size_t)(batch * per), sizeof *batch_images);
    batch_logits = calloc((size_t)(batch * k), sizeof *batch_logits);
    batch_grad = calloc((size_t)(batch * per), sizeof *batch_grad);
    batch_labels = calloc((size_t)batch, sizeof *batch_labels);
    logits = calloc((size_t)(n * k), sizeof *logits);
    grad = grad_path ? calloc((size_t)(n * per), sizeof *grad) : NULL;
    if (!batch_images || !batch_logits || !batch_grad || !batch_labels || !logits || (grad_path && !grad)) {
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for %lld images", (long long)n);
        goto done;
    }
    /* A short last batch is padded with zero images: in inference mode every
     * example is independent, and padded rows are dropped. */
    for (int64_t first = 0; first < n; first += batch) {
        int64_t rows = n - first < batch ? n - first : batch;
        memset(batch_images, 0, (size_t)(batch * per) * sizeof *batch_images);
        memset(batch_labels, 0, (size_t)batch * sizeof *batch_labels);
        memcpy(batch_images, (const float *)x->data + first * per, (size_t)(rows * per) * sizeof(float));
        if (labels != NULL)
            memcpy(batch_labels, labels + first, (size_t)rows * sizeof *labels);
        if ((s = rb_engine_forward(engine, batch_images, batch, batch_labels, false)) != RB_OK ||
            (s = rb_engine_read(engine, rb_model_logits(model), batch_logits)) != RB_OK)
            goto done;
        memcpy(logits + first * k, batch_logits, (size_t)(rows * k) * sizeof *logits);
        if (labels != NULL) {
            const float *losses = rb_engine_losses(engine);
            for (int64_t r = 0; r < rows; r++) {
                int64_t best = 0;
                loss_sum += losses[r];
                for (int64_t j = 1; j < k; j++)
                    if (batch_logits[r * k + j] > batch_logits[r * k + best])
                        best = j;
                correct += best == labels[first + r];
            }
        }
        if (grad != NULL) {
            /* The engine's gradient is of the batch mean (over `batch` rows);
             * the file holds the gradient of the mean over all n images. */
            float scale = (float)batch / (float)n;
            if ((s = rb_engine_backward(engine, false, true)) != RB_OK ||
                (s = rb_engine_input_grad(engine, batch_grad)) != RB_OK)
                goto done;
            for (int64_t i = 0; i < rows * per; i++)
                grad[first * per + i] = batch_grad[i] * scale;
        }
    }
    if ((s = rb_npy_save(get_string(o, "output"), RB_DTYPE_F32, 2, (const int64_t[]){n, k}, logits)) != RB_OK)
        goto done;
    if (grad != NULL && (s = rb_npy_save(grad_path, RB_DTYPE_F32, 4, x->shape, grad)) != RB_OK)
        goto done;
    printf("%lld images through %s (%s)", (long long)n, ckpt, rb_engine_threads(engine));
    if (labels != NULL)
        printf(": accuracy %.2f%%, mean loss %.6f", 100.0 * (double)correct / (double)n, loss_sum / (double)n);
    printf("\n");
done:
    free(batch_images);
    free(batch_logits);
    free(batch_grad);
    free(batch_labels);
    free(logits);
    free(grad);
    free(labels);
    rb_engine_destroy(engine);
    rb_model_destroy(model);
    rb_npy_destroy(x);
    return s == RB_OK ? RB_EXIT_OK : cli_fail(self->name, s);
}

const cli_command cli_infer_command = {
    .name = "infer",
    .summary = "logits of a checkpoint on .npy images, or its predictions (masks) for a dataset",
    .usage = "--ckpt MODEL.rbt --input X.npy --output LOGITS.npy [--labels Y.npy [--input-grad G.npy]]\n"
             "       --ckpt MODEL.rbt --data SPEC [--split test|train] [--classes LIST] --output DIR",
    .description =
        "Runs a model in inference mode (batch-norm with running statistics) on float32 images\n"
        "N x C x H x W in [0, 1] and writes the logits (float32 N x K). With labels it reports\n"
        "accuracy and mean cross-entropy, and --input-grad writes the gradient of the mean\n"
        "cross-entropy over all N images with respect to the images (no weight gradients are\n"
        "computed). Images of another size than the model was saved with are fine for\n"
        "convolutional backbones.\n"
        "With --data it predicts every image of a dataset split instead, prints the task's\n"
        "metrics as eval does, and writes the predictions into the folder --output: a\n"
        "segmentation model's as one class-index PNG per image (Pascal VOC colours), named as\n"
        "the image and at its size in the dataset; a classifier's as predictions.csv.",
    .options = infer_options,
    .run = run_infer,
};

/* ------------------------------------------------------------ inspect */

static const rb_param_spec inspect_options[] = {
    {"verify", RB_PARAM_BOOL, "false", NULL, 0, "decompress every tensor and check its checksums"},
    {"json", RB_PARAM_BOOL, "false", NULL, 0, "print JSON (metadata and tensor table)"},
    {NULL}};

/* The end of inspect: with non-finite tensors, one line and exit 1. */
static int inspect_end(const cli_command *self, const char *path, rb_checkpoint *ck, rb_nonfinite_count *nonfinite, size_t bad,
                       size_t first_bad)
{
    int code = RB_EXIT_OK;
    if (bad > 0) {
        rb_checkpoint_tensor t;
        rb_checkpoint_get(ck, first_bad, &t);
        fprintf(stderr,
                "robusta %s: %s: %zu tensor%s hold%s NaN or infinite values, the first '%s' (%lld NaN, %lld "
                "infinite, from flat index %lld): the model is not usable\n",
                self->name, path, bad, bad == 1 ? "" : "s", bad == 1 ? "s" : "", t.name,
                (long long)nonfinite[first_bad].nan, (long long)nonfinite[first_bad].inf,
                (long long)nonfinite[first_bad].first);
        code = RB_EXIT_FAILURE;
    }
    free(nonfinite);
    rb_checkpoint_destroy(ck);
    return code;
}

static int run_inspect(const cli_command *self, rb_params *o, int argc, char **args)
{
    bool verify = false, as_json = false;
    rb_checkpoint *ck = NULL;
    rb_nonfinite_count *nonfinite = NULL;
    rb_status s;
    uint64_t raw = 0, stored = 0;
    size_t count, bad = 0, first_bad = 0;

    if (argc != 1) {
        rb_error_set(RB_ERR_INVALID_ARGUMENT, "inspect takes one checkpoint path (got %d)", argc);
        fprintf(stderr, "robusta inspect: %s (usage: robusta inspect MODEL.rbt [--verify])\n", rb_last_error());
        return RB_EXIT_USAGE;
    }
    rb_params_get_bool(o, "verify", &verify);
    rb_params_get_bool(o, "json", &as_json);
    if ((s = rb_checkpoint_load(&ck, args[0], verify ? 0 : RB_CHECKPOINT_INDEX_ONLY)) != RB_OK)
        return cli_fail(self->name, s);
    count = rb_checkpoint_count(ck);
    /* Checksums cannot see a NaN that was saved as one: --verify counts them. */
    if (verify) {
        nonfinite = calloc(count ? count : 1, sizeof *nonfinite);
        if (nonfinite == NULL) {
            rb_checkpoint_destroy(ck);
            return cli_fail(self->name, rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory"));
        }
        for (size_t i = 0; i < count; i++) {
            rb_checkpoint_tensor t;
            rb_checkpoint_get(ck, i, &t);
            rb_checkpoint_tensor_nonfinite(&t, &nonfinite[i]);
            if (nonfinite[i].nan + nonfinite[i].inf > 0 && bad++ == 0)
                first_bad = i;
        }
    }
    if (as_json) {
        json_object *root = json_object_new_object(), *list = json_object_new_array();
        json_object *meta = json_tokener_parse(rb_checkpoint_metadata(ck));
        json_object_object_add(root, "path", json_object_new_string(args[0]));
        json_object_object_add(root, "format_version", json_object_new_int64(RB_CHECKPOINT_VERSION));
        json_object_object_add(root, "metadata", meta);
        for (size_t i = 0; i < count; i++) {
            rb_checkpoint_tensor t;
            json_object *e = json_object_new_object(), *shape = json_object_new_array();
            rb_checkpoint_get(ck, i, &t);
            for (int d = 0; d < t.ndim; d++)
                json_object_array_add(shape, json_object_new_int64(t.shape[d]));
            json_object_object_add(e, "name", json_object_new_string(t.name));
            json_object_object_add(e, "dtype", json_object_new_string(rb_dtype_str(t.dtype)));
            json_object_object_add(e, "shape", shape);
            json_object_object_add(e, "bytes", json_object_new_int64((int64_t)t.nbytes));
            json_object_object_add(e, "stored_bytes", json_object_new_int64((int64_t)t.stored_bytes));
            json_object_object_add(e, "crc32", json_object_new_int64(t.crc32));
            if (verify) {
                json_object_object_add(e, "nan", json_object_new_int64(nonfinite[i].nan));
                json_object_object_add(e, "inf", json_object_new_int64(nonfinite[i].inf));
                json_object_object_add(e, "first_nonfinite", nonfinite[i].first >= 0
                                                                 ? json_object_new_int64(nonfinite[i].first)
                                                                 : NULL);
            }
            json_object_array_add(list, e);
        }
        json_object_object_add(root, "tensors", list);
        if (verify)
            json_object_object_add(root, "verified", json_object_new_boolean(bad == 0));
        printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(root);
        return inspect_end(self, args[0], ck, nonfinite, bad, first_bad);
    }
    {
        json_object *meta = json_tokener_parse(rb_checkpoint_metadata(ck));
        printf("checkpoint %s (format version %u)\nmetadata:\n%s\n", args[0], RB_CHECKPOINT_VERSION,
               json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(meta);
    }
    printf("\n%-44s %-5s %-20s %12s %12s %10s\n", "tensor", "dtype", "shape", "bytes", "stored", "crc32");
    for (size_t i = 0; i < count; i++) {
        rb_checkpoint_tensor t;
        char shape[128];
        rb_checkpoint_get(ck, i, &t);
        printf("%-44s %-5s %-20s %12zu %12llu %08x\n", t.name, rb_dtype_str(t.dtype),
               rb_shape_format(t.ndim, t.shape, shape, sizeof shape), t.nbytes, (unsigned long long)t.stored_bytes,
               (unsigned)t.crc32);
        raw += t.nbytes;
        stored += t.stored_bytes;
    }
    printf("%zu tensors, %llu bytes, %llu stored (%.1f%%)\n", count, (unsigned long long)raw,
           (unsigned long long)stored, raw ? 100.0 * (double)stored / (double)raw : 100.0);
    for (size_t i = 0; i < count && bad > 0; i++) {
        rb_checkpoint_tensor t;
        if (nonfinite[i].nan + nonfinite[i].inf == 0)
            continue;
        rb_checkpoint_get(ck, i, &t);
        printf("non-finite: %s: %lld NaN, %lld infinite, the first at flat index %lld\n", t.name,
               (long long)nonfinite[i].nan, (long long)nonfinite[i].inf, (long long)nonfinite[i].first);
    }
    if (verify && bad == 0)
        printf("verified: every tensor decompressed, matched its checksums and holds finite values\n");
    return inspect_end(self, args[0], ck, nonfinite, bad, first_bad);
}

const cli_command cli_inspect_command = {
    .name = "inspect",
    .summary = "print a checkpoint's metadata and tensor table",
    .usage = "MODEL.rbt [--verify] [--json]",
    .description =
        "Prints a .rbt checkpoint's metadata and its tensors (name, dtype, shape, sizes, CRC-32).\n"
        "The header and index are always validated; --verify also decompresses every tensor\n"
        "and checks zstd's checksum and the CRC-32, and fails naming the first bad tensor; it\n"
        "also counts NaN and infinite values in float tensors and fails (exit 1) if there are any.",
    .options = inspect_options,
    .run = run_inspect,
};
