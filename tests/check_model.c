/* Models and the commands that move them: architecture names, .rbt save and
 * load with its metadata, and import / export / infer / inspect through the
 * built robusta, checked against the double-precision reference. */
#include "config.h"

#include <math.h>
#include <time.h>

#include <robusta/robusta.h>

#include "testutil.h"
#include "testmodels.h"

#define RUN(r, env, ...) run_robusta(r, env, (const char *const[]){__VA_ARGS__, NULL})

static run_result r;
static rb_registry *reg;
static char dir[256]; /* mkdtemp names are short */

static void setup(void)
{
    ck_assert_int_eq(rb_registry_create(&reg), RB_OK);
    ck_assert_int_eq(rb_registry_load_path(reg, test_env("RB_PLUGIN_PATH")), RB_OK);
    make_temp_dir(dir, sizeof dir);
}

static void teardown(void)
{
    char cmd[PATH_MAX + 16];
    rb_registry_destroy(reg);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void path_in(char *out, const char *name)
{
    snprintf(out, PATH_MAX, "%s/%s", dir, name);
}

START_TEST(shapes_format_for_messages)
{
    char buf[32], tiny[6];
    ck_assert_str_eq(rb_shape_format(4, (const int64_t[]){64, 3, 7, 7}, buf, sizeof buf), "[64, 3, 7, 7]");
    ck_assert_str_eq(rb_shape_format(0, NULL, buf, sizeof buf), "[]");
    ck_assert_str_eq(rb_shape_format(2, (const int64_t[]){1000, 2048}, tiny, sizeof tiny), "[1000");
}
END_TEST

START_TEST(architecture_names_resolve_to_plugins_and_presets)
{
    const rb_plugin *p;
    const char *preset;
    ck_assert_int_eq(rb_arch_resolve(reg, "resnet", &p, &preset), RB_OK);
    ck_assert_str_eq(p->name, "resnet");
    ck_assert_ptr_null(preset);
    ck_assert_int_eq(rb_arch_resolve(reg, "wide_resnet50_2", &p, &preset), RB_OK);
    ck_assert_str_eq(p->name, "resnet");
    ck_assert_str_eq(preset, "wide_resnet50_2");
    ck_assert_int_eq(rb_arch_resolve(reg, "resnet51", &p, &preset), RB_ERR_NOT_FOUND);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(rb_arch_resolve(reg, "none", &p, &preset), RB_ERR_NOT_FOUND);
    ck_assert_int_eq(rb_arch_resolve(reg, "", &p, &preset), RB_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(save_and_load_give_back_the_same_model)
{
    rb_model *m = small_model(reg, 16, 1), *back;
    char path[PATH_MAX];
    rb_graph *g = rb_model_graph(m), *gb;
    path_in(path, "m.rbt");
    ck_assert_int_eq(rb_model_save(m, path), RB_OK);
    ck_assert_int_eq(rb_model_load(&back, reg, path, 0, 0), RB_OK);
    gb = rb_model_graph(back);
    ck_assert_int_eq(rb_model_num_classes(back), 5);
    ck_assert_int_eq(rb_model_get_input(back)->height, 16);
    ck_assert(rb_model_get_input(back)->mean[1] == 0.456f);
    ck_assert_uint_eq(rb_graph_param_count(gb), rb_graph_param_count(g));
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info a, b;
        rb_graph_param(g, i, &a);
        rb_graph_param(gb, i, &b);
        ck_assert_str_eq(a.name, b.name);
        ck_assert_int_eq(memcmp(a.value, b.value, (size_t)a.numel * sizeof(float)), 0);
    }
    rb_model_destroy(back);
    /* Another input size builds the same weights into a bigger graph. */
    ck_assert_int_eq(rb_model_load(&back, reg, path, 24, 20), RB_OK);
    {
        int64_t c, h, w;
        rb_node_shape(rb_graph_node(rb_model_graph(back), 0), &c, &h, &w);
        ck_assert_int_eq(h, 24);
        ck_assert_int_eq(w, 20);
    }
    rb_model_destroy(back);
    rb_model_destroy(m);
}
END_TEST

/* Saves `m`'s checkpoint after `edit` changed it; loading must fail with
 * `status` and `message`. */
static void expect_load_failure(rb_model *m, void (*edit)(rb_checkpoint **ck), rb_status status,
                                const char *message)
{
    rb_checkpoint *ck;
    rb_model *back = NULL;
    ck_assert_int_eq(rb_model_to_checkpoint(m, &ck), RB_OK);
    edit(&ck);
    ck_assert_int_eq(rb_model_from_checkpoint(&back, reg, ck, "x.rbt", 0, 0), status);
    ck_assert_ptr_null(back);
    ck_assert_str_eq(rb_last_error(), message);
    rb_checkpoint_destroy(ck);
}

/* Copies every tensor but `skip` (or replaces it with a wrong shape). */
static const char *edit_name;
static int edit_mode; /* 0 drop, 1 reshape, 2 add extra, 3 add state */

static void edit_tensors(rb_checkpoint **ck)
{
    rb_checkpoint *out;
    ck_assert_int_eq(rb_checkpoint_create(&out), RB_OK);
    ck_assert_int_eq(rb_checkpoint_set_metadata(out, rb_checkpoint_metadata(*ck)), RB_OK);
    for (size_t i = 0; i < rb_checkpoint_count(*ck); i++) {
        rb_checkpoint_tensor t;
        rb_checkpoint_get(*ck, i, &t);
        if (strcmp(t.name, edit_name) == 0 && edit_mode == 0)
            continue;
        if (strcmp(t.name, edit_name) == 0 && edit_mode == 1) {
            int64_t flat = t.numel;
            ck_assert_int_eq(rb_checkpoint_add(out, t.name, t.dtype, 1, &flat, t.data), RB_OK);
            continue;
        }
        ck_assert_int_eq(rb_checkpoint_add(out, t.name, t.dtype, t.ndim, t.shape, t.data), RB_OK);
    }
    if (edit_mode >= 2) {
        float v = 1;
        int64_t one = 1;
        ck_assert_int_eq(rb_checkpoint_add(out, edit_name, RB_DTYPE_F32, 1, &one, &v), RB_OK);
    }
    rb_checkpoint_destroy(*ck);
    *ck = out;
}

static void edit_metadata(rb_checkpoint **ck)
{
    ck_assert_int_eq(rb_checkpoint_set_metadata(*ck, edit_name), RB_OK);
}

START_TEST(loading_refuses_checkpoints_that_do_not_fit)
{
    rb_model *m = small_model(reg, 16, 2);
    edit_name = "layer2.0.conv1.weight", edit_mode = 0;
    expect_load_failure(m, edit_tensors, RB_ERR_CORRUPT, "x.rbt: tensor 'layer2.0.conv1.weight' of the model is missing");
    edit_mode = 1;
    expect_load_failure(m, edit_tensors, RB_ERR_CORRUPT,
                        "x.rbt: tensor 'layer2.0.conv1.weight' is f32 [1152] but the model needs f32 [16, 8, 3, 3]");
    edit_name = "layer9.weight", edit_mode = 2;
    expect_load_failure(m, edit_tensors, RB_ERR_CORRUPT, "x.rbt: tensor 'layer9.weight' is not a parameter of this resnet model");
    edit_name = "{\"format\": \"something-else\"}";
    expect_load_failure(m, edit_metadata, RB_ERR_CORRUPT,
                        "x.rbt: not a robusta model (metadata format is not \"robusta-model\")");
    edit_name = "{\"format\": \"robusta-model\", \"arch\": {\"plugin\": \"vgg\", \"params\": {}}, \"input\": {}}";
    expect_load_failure(m, edit_metadata, RB_ERR_NOT_FOUND,
                        "x.rbt was saved by arch plugin 'vgg', which is not installed: unknown arch plugin 'vgg' "
                        "(robusta plugins lists those found; RB_PLUGIN_PATH adds folders)");
    {
        /* Training state under the reserved prefix is the trainer's business. */
        rb_checkpoint *ck;
        rb_model *back;
        edit_name = RB_MODEL_STATE_PREFIX "momentum.fc.weight", edit_mode = 3;
        ck_assert_int_eq(rb_model_to_checkpoint(m, &ck), RB_OK);
        edit_tensors(&ck);
        ck_assert_int_eq(rb_model_from_checkpoint(&back, reg, ck, "x.rbt", 0, 0), RB_OK);
        rb_model_destroy(back);
        rb_checkpoint_destroy(ck);
    }
    rb_model_destroy(m);
}
END_TEST

/* Writes the model's parameters as safetensors with `prefix` on every name,
 * optionally leaving out or adding a tensor. */
static void write_state_dict(const rb_model *m, const char *path, const char *prefix, const char *drop,
                             const char *extra)
{
    rb_graph *g = rb_model_graph(m);
    size_t n = rb_graph_param_count(g), count = 0;
    rb_safetensors_entry *e = calloc(n + 2, sizeof *e);
    char (*names)[128] = calloc(n + 2, sizeof *names);
    static const int64_t tracked = 5;
    static const float one = 1;
    static const int64_t shape1[1] = {1};
    for (size_t i = 0; i < n; i++) {
        rb_param_info p;
        rb_graph_param(g, i, &p);
        if (drop != NULL && strcmp(p.name, drop) == 0)
            continue;
        snprintf(names[count], sizeof names[count], "%s%s", prefix, p.name);
        e[count] = (rb_safetensors_entry){names[count], RB_DTYPE_F32, p.ndim, p.shape, p.value};
        count++;
    }
    snprintf(names[count], sizeof names[count], "%sbn1.num_batches_tracked", prefix);
    e[count] = (rb_safetensors_entry){names[count], RB_DTYPE_I64, 0, NULL, &tracked};
    count++;
    if (extra != NULL)
        e[count++] = (rb_safetensors_entry){extra, RB_DTYPE_F32, 1, shape1, &one};
    ck_assert_int_eq(rb_safetensors_save(path, e, count, NULL, NULL, 0), RB_OK);
    free(names);
    free(e);
}

static void import_small(const char *from, const char *out)
{
    RUN(&r, NULL, "import", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--from", from, "--out",
        out, "--image-size", "16");
}

START_TEST(import_reads_torchvision_names_and_refuses_what_does_not_fit)
{
    rb_model *m = small_model(reg, 16, 3), *back;
    char st[PATH_MAX], rbt[PATH_MAX], line[PATH_MAX + 512];
    path_in(st, "w.safetensors");
    path_in(rbt, "w.rbt");

    write_state_dict(m, st, "module.", NULL, NULL);
    import_small(st, rbt);
    ck_assert_msg(r.code == 0, "%s", r.err);
    ck_assert_ptr_nonnull(strstr(r.out, "5 classes"));
    ck_assert_int_eq(rb_model_load(&back, reg, rbt, 0, 0), RB_OK);
    for (size_t i = 0; i < rb_graph_param_count(rb_model_graph(m)); i++) {
        rb_param_info a, b;
        rb_graph_param(rb_model_graph(m), i, &a);
        rb_graph_param(rb_model_graph(back), i, &b);
        ck_assert_int_eq(memcmp(a.value, b.value, (size_t)a.numel * sizeof(float)), 0);
    }
    rb_model_destroy(back);

    /* Failures name the tensor, exit 1 and leave the old output alone. */
    write_state_dict(m, st, "", "layer3.1.bn2.running_var", NULL);
    import_small(st, rbt);
    ck_assert_int_eq(r.code, 1);
    snprintf(line, sizeof line, "robusta import: %s: tensor 'layer3.1.bn2.running_var' is missing (the model needs it, shape [32])\n", st);
    ck_assert_str_eq(r.err, line);
    write_state_dict(m, st, "module.model.", NULL, "module.model.head.weight");
    import_small(st, rbt);
    ck_assert_int_eq(r.code, 1);
    snprintf(line, sizeof line,
             "robusta import: %s: tensor 'module.model.head.weight' is not part of a resnet model with these "
             "parameters (extra tensor)\n", st);
    ck_assert_str_eq(r.err, line);
    /* A wider model's file: shapes do not fit. */
    write_state_dict(m, st, "", NULL, NULL);
    RUN(&r, NULL, "import", "--arch", "resnet18", "--stem", "cifar", "--width", "0.25", "--from", st, "--out", rbt);
    ck_assert_int_eq(r.code, 1);
    snprintf(line, sizeof line, "robusta import: %s: tensor 'conv1.weight' has shape [8, 3, 3, 3] but the model needs [16, 3, 3, 3]\n", st);
    ck_assert_str_eq(r.err, line);
    ck_assert_int_eq(rb_model_load(&back, reg, rbt, 0, 0), RB_OK); /* still the good one */
    rb_model_destroy(back);

    RUN(&r, NULL, "import", "--arch", "resnet81", "--from", st, "--out", rbt);
    ck_assert_int_eq(r.code, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "unknown architecture 'resnet81'; did you mean"));
    RUN(&r, NULL, "import", "--arch", "resnet18", "--widht", "2", "--from", st, "--out", rbt);
    ck_assert_int_eq(r.code, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "unknown option --widht; did you mean --width?"));
    rb_model_destroy(m);
}
END_TEST

/* Logits and input gradients of `robusta infer` against the double
 * reference on the same weights. Tolerance 1e-4 of the tensor's largest
 * magnitude: fp32 accumulation over at most a few thousand terms per output
 * (576 for a 3x3x64 conv) keeps errors near 1e-6 relative; 1e-4 leaves room
 * for oneDNN's Winograd-free but reordered sums and still catches any wrong
 * term (a dropped example, an unscaled gradient, a missing normalization). */
START_TEST(infer_matches_the_double_reference)
{
    enum { N = 3, C = 3, S = 16, K = 5 };
    rb_model *m = small_model(reg, S, 4);
    rb_reference *ref;
    char rbt[PATH_MAX], x_path[PATH_MAX], y_path[PATH_MAX], l_path[PATH_MAX], g_path[PATH_MAX];
    static float x[N * C * S * S];
    static double xd[N * C * S * S];
    int64_t labels[N] = {4, 0, 2}, shape[4] = {N, C, S, S};
    rb_npy *logits, *grad;
    rb_rng rng;
    double max_ref = 0, max_err = 0;

    path_in(rbt, "m.rbt");
    path_in(x_path, "x.npy");
    path_in(y_path, "y.npy");
    path_in(l_path, "logits.npy");
    path_in(g_path, "grad.npy");
    ck_assert_int_eq(rb_model_save(m, rbt), RB_OK);
    rb_rng_init(&rng, 9, 1, 0);
    for (size_t i = 0; i < N * C * S * S; i++)
        xd[i] = x[i] = rb_rng_uniform(&rng);
    ck_assert_int_eq(rb_npy_save(x_path, RB_DTYPE_F32, 4, shape, x), RB_OK);
    ck_assert_int_eq(rb_npy_save(y_path, RB_DTYPE_I64, 1, (const int64_t[]){N}, labels), RB_OK);
    /* batch 2 for 3 images: the last batch is padded */
    RUN(&r, NULL, "infer", "--ckpt", rbt, "--input", x_path, "--labels", y_path, "--output", l_path, "--input-grad",
        g_path, "--batch-size", "2", "--threads", "1");
    ck_assert_msg(r.code == 0, "%s", r.err);
    ck_assert_ptr_nonnull(strstr(r.out, "3 images through"));

    ck_assert_int_eq(rb_reference_create(&ref, rb_model_graph(m), N), RB_OK);
    ck_assert_int_eq(rb_reference_forward(ref, xd, labels, false), RB_OK);
    ck_assert_int_eq(rb_reference_backward(ref, false, true), RB_OK);
    ck_assert_int_eq(rb_npy_load(&logits, l_path), RB_OK);
    ck_assert_int_eq(logits->ndim, 2);
    ck_assert_int_eq(logits->shape[0], N);
    ck_assert_int_eq(logits->shape[1], K);
    {
        const double *want = rb_reference_value(ref, rb_model_logits(m));
        const float *got = logits->data;
        for (int i = 0; i < N * K; i++) {
            max_ref = fmax(max_ref, fabs(want[i]));
            max_err = fmax(max_err, fabs(got[i] - want[i]));
        }
        ck_assert_msg(max_err <= 1e-4 * max_ref, "logits: max err %g of max %g", max_err, max_ref);
    }
    ck_assert_int_eq(rb_npy_load(&grad, g_path), RB_OK);
    ck_assert_int_eq(grad->ndim, 4);
    ck_assert_int_eq(memcmp(grad->shape, shape, sizeof shape), 0);
    {
        const double *want = rb_reference_input_grad(ref);
        const float *got = grad->data;
        max_ref = max_err = 0;
        for (int i = 0; i < N * C * S * S; i++) {
            max_ref = fmax(max_ref, fabs(want[i]));
            max_err = fmax(max_err, fabs(got[i] - want[i]));
        }
        ck_assert_msg(max_ref > 0, "the reference gradient is zero");
        ck_assert_msg(max_err <= 1e-4 * max_ref, "input grad: max err %g of max %g", max_err, max_ref);
    }
    rb_npy_destroy(logits);
    rb_npy_destroy(grad);
    rb_reference_destroy(ref);

    /* Bad inputs: one line, exit 1, outputs untouched. */
    {
        int64_t bad_labels[N] = {4, 5, 0};
        struct stat before, after;
        char line[PATH_MAX * 2];
        ck_assert_int_eq(stat(l_path, &before), 0);
        ck_assert_int_eq(rb_npy_save(y_path, RB_DTYPE_I64, 1, (const int64_t[]){N}, bad_labels), RB_OK);
        RUN(&r, NULL, "infer", "--ckpt", rbt, "--input", x_path, "--labels", y_path, "--output", l_path);
        ck_assert_int_eq(r.code, 1);
        snprintf(line, sizeof line, "robusta infer: %s: label 5 of example 1 is outside [0, 5)\n", y_path);
        ck_assert_str_eq(r.err, line);
        x[7] = 1.5f;
        ck_assert_int_eq(rb_npy_save(x_path, RB_DTYPE_F32, 4, shape, x), RB_OK);
        RUN(&r, NULL, "infer", "--ckpt", rbt, "--input", x_path, "--output", l_path);
        ck_assert_int_eq(r.code, 1);
        snprintf(line, sizeof line,
                 "robusta infer: %s: value 1.5 at flat index 7 is outside [0, 1] (images are pixels in [0, 1]; the "
                 "model normalizes them)\n", x_path);
        ck_assert_str_eq(r.err, line);
        ck_assert_int_eq(rb_npy_save(x_path, RB_DTYPE_F32, 3, shape + 1, x), RB_OK);
        RUN(&r, NULL, "infer", "--ckpt", rbt, "--input", x_path, "--output", l_path);
        ck_assert_int_eq(r.code, 1);
        snprintf(line, sizeof line, "robusta infer: %s: images must be float32 N x C x H x W, not f32 [3, 16, 16]\n",
                 x_path);
        ck_assert_str_eq(r.err, line);
        RUN(&r, NULL, "infer", "--ckpt", rbt, "--input", x_path, "--output", l_path, "--input-grad", g_path);
        ck_assert_int_eq(r.code, 1);
        ck_assert_str_eq(r.err, "robusta infer: --input-grad needs --labels (the gradient is of the loss)\n");
        ck_assert_int_eq(stat(l_path, &after), 0);
        ck_assert(before.st_mtim.tv_sec == after.st_mtim.tv_sec && before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
        ck_assert_int_eq(before.st_ino, after.st_ino);
    }
    rb_model_destroy(m);
}
END_TEST

START_TEST(export_round_trips_and_inspect_shows_the_table)
{
    rb_model *m = small_model(reg, 16, 5);
    char rbt[PATH_MAX], st[PATH_MAX], rbt2[PATH_MAX];
    rb_safetensors *file;
    rb_safetensors_tensor t;
    rb_param_info p;
    path_in(rbt, "m.rbt");
    path_in(st, "m.safetensors");
    path_in(rbt2, "m2.rbt");
    ck_assert_int_eq(rb_model_save(m, rbt), RB_OK);
    RUN(&r, NULL, "export", "--ckpt", rbt, "--out", st);
    ck_assert_msg(r.code == 0, "%s", r.err);
    ck_assert_int_eq(rb_safetensors_load(&file, st), RB_OK);
    ck_assert_int_eq(rb_safetensors_find(file, "layer4.1.bn2.num_batches_tracked", &t), RB_OK);
    ck_assert_str_eq(t.dtype, "I64");
    ck_assert_int_eq(rb_safetensors_find(file, "fc.weight", &t), RB_OK);
    ck_assert_int_eq(rb_graph_find_param(rb_model_graph(m), "fc.weight", &p), RB_OK);
    ck_assert_int_eq(memcmp(t.data, p.value, t.nbytes), 0);
    ck_assert_ptr_nonnull(strstr(rb_safetensors_metadata(file, "robusta.metadata"), "\"robusta-model\""));
    rb_safetensors_destroy(file);
    /* and back in, with the normalization given again */
    RUN(&r, NULL, "import", "--arch", "resnet18", "--stem", "cifar", "--width", "0.125", "--from", st, "--out", rbt2,
        "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225", "--image-size", "16");
    ck_assert_msg(r.code == 0, "%s", r.err);

    RUN(&r, NULL, "inspect", rbt);
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "\"plugin\":\"resnet\""));
    ck_assert_ptr_nonnull(strstr(r.out, "\nlayer1.0.conv1.weight "));
    ck_assert_ptr_null(strstr(r.out, "verified"));
    RUN(&r, NULL, "inspect", rbt, "--verify");
    ck_assert_int_eq(r.code, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "verified: every tensor decompressed, matched its checksums and holds finite values"));
    {
        /* A flipped byte near the end (inside the last tensor's frame). */
        FILE *f = fopen(rbt, "r+b");
        int c;
        ck_assert_ptr_nonnull(f);
        fseek(f, -9, SEEK_END);
        c = fgetc(f);
        fseek(f, -9, SEEK_END);
        fputc(c ^ 0x10, f);
        fclose(f);
    }
    RUN(&r, NULL, "inspect", rbt, "--verify");
    ck_assert_int_eq(r.code, 1);
    ck_assert_msg(strncmp(r.err, "robusta inspect: ", 17) == 0 && strstr(r.err, "fc.bias") != NULL, "%s", r.err);
    RUN(&r, NULL, "inspect");
    ck_assert_int_eq(r.code, 2);
    rb_model_destroy(m);
}
END_TEST

/* Copies every tensor, setting element `poison_index` of `edit_name` to
 * `poison` (adding it as a 3-element state tensor when it is not there). */
static float poison;
static int64_t poison_index;

static void poison_tensor(rb_checkpoint **ck)
{
    rb_checkpoint *out;
    bool found = false;
    ck_assert_int_eq(rb_checkpoint_create(&out), RB_OK);
    ck_assert_int_eq(rb_checkpoint_set_metadata(out, rb_checkpoint_metadata(*ck)), RB_OK);
    for (size_t i = 0; i < rb_checkpoint_count(*ck); i++) {
        rb_checkpoint_tensor t;
        float *copy;
        rb_checkpoint_get(*ck, i, &t);
        copy = malloc(t.nbytes);
        ck_assert_ptr_nonnull(copy);
        memcpy(copy, t.data, t.nbytes);
        if (strcmp(t.name, edit_name) == 0) {
            copy[poison_index] = poison;
            found = true;
        }
        ck_assert_int_eq(rb_checkpoint_add(out, t.name, t.dtype, t.ndim, t.shape, copy), RB_OK);
        free(copy);
    }
    if (!found) {
        float v[3] = {0, 0, 0};
        v[poison_index] = poison;
        ck_assert_int_eq(rb_checkpoint_add(out, edit_name, RB_DTYPE_F32, 1, (const int64_t[]){3}, v), RB_OK);
    }
    rb_checkpoint_destroy(*ck);
    *ck = out;
}

/* A NaN or an infinity anywhere (a weight, a batch-norm statistic, the
 * optimizer state a resume reads) is refused where a model is built from
 * a checkpoint, naming the file and the tensor: one check serves infer,
 * eval, attack, transfer and --resume. */
START_TEST(loading_refuses_non_finite_tensors)
{
    rb_model *m = small_model(reg, 16, 3);
    edit_name = "layer1.0.conv1.weight", poison = NAN, poison_index = 7;
    expect_load_failure(m, poison_tensor, RB_ERR_CORRUPT,
                        "x.rbt: tensor 'layer1.0.conv1.weight' holds 1 NaN and 0 infinite values (the first at flat "
                        "index 7): the model diverged or the file was damaged; use an earlier checkpoint");
    edit_name = "bn1.running_var", poison = INFINITY, poison_index = 0;
    expect_load_failure(m, poison_tensor, RB_ERR_CORRUPT,
                        "x.rbt: tensor 'bn1.running_var' holds 0 NaN and 1 infinite values (the first at flat "
                        "index 0): the model diverged or the file was damaged; use an earlier checkpoint");
    edit_name = RB_MODEL_STATE_PREFIX "momentum.fc.bias", poison = -INFINITY, poison_index = 2;
    expect_load_failure(m, poison_tensor, RB_ERR_CORRUPT,
                        "x.rbt: tensor 'state.momentum.fc.bias' holds 0 NaN and 1 infinite values (the first at "
                        "flat index 2): the model diverged or the file was damaged; use an earlier checkpoint");
    {
        /* and through a file, as the commands load them */
        char path[PATH_MAX], want[PATH_MAX + 200];
        rb_checkpoint *ck;
        rb_model *back = (rb_model *)1;
        path_in(path, "nan.rbt");
        edit_name = "fc.weight", poison = NAN, poison_index = 3;
        ck_assert_int_eq(rb_model_to_checkpoint(m, &ck), RB_OK);
        poison_tensor(&ck);
        ck_assert_int_eq(rb_checkpoint_save(ck, path, 0), RB_OK);
        rb_checkpoint_destroy(ck);
        ck_assert_int_eq(rb_model_load(&back, reg, path, 0, 0), RB_ERR_CORRUPT);
        ck_assert_ptr_null(back);
        snprintf(want, sizeof want,
                 "%s: tensor 'fc.weight' holds 1 NaN and 0 infinite values (the first at flat index 3): the model "
                 "diverged or the file was damaged; use an earlier checkpoint", path);
        ck_assert_str_eq(rb_last_error(), want);
    }
    rb_model_destroy(m);
}
END_TEST

/* rb_engine_estimate_bytes, from shapes alone, against the arena the
 * engine really plans: within a factor of two either way (measured 0.8 to
 * 1.25 on ResNets from 8x8 to 256x256), for training and data-gradient
 * engines; and instant for images no machine could hold. */
START_TEST(arena_estimate_is_within_a_factor_of_two)
{
    struct {
        int64_t size, batch;
    } cases[] = {{16, 8}, {32, 16}, {48, 4}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rb_model *m = small_model(reg, cases[i].size, 1);
        for (int mode = 0; mode < 2; mode++) {
            rb_engine_options eo = {.threads = 1, .data_grads_only = mode == 1};
            rb_engine *e;
            uint64_t est;
            double ratio;
            ck_assert_int_eq(rb_engine_estimate_bytes(rb_model_graph(m), cases[i].batch, &eo, &est), RB_OK);
            ck_assert_int_eq(rb_engine_create(&e, rb_model_graph(m), cases[i].batch, &eo), RB_OK);
            ratio = (double)rb_engine_arena_bytes(e) / (double)est;
            ck_assert_msg(ratio >= 0.5 && ratio <= 2.0, "%lldx%lld batch %lld %s: arena %zu, estimate %llu (x%.2f)",
                          (long long)cases[i].size, (long long)cases[i].size, (long long)cases[i].batch,
                          mode ? "data grads" : "training", rb_engine_arena_bytes(e), (unsigned long long)est, ratio);
            rb_engine_destroy(e);
        }
        rb_model_destroy(m);
    }
    {
        rb_model *m = small_model(reg, 16384, 1);
        uint64_t est, est2;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ck_assert_int_eq(rb_engine_estimate_bytes(rb_model_graph(m), 128, NULL, &est), RB_OK);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ck_assert((double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec) < 0.1);
        /* the input alone: 128 x 16 (3 padded) x 16384^2 floats */
        ck_assert(est > (uint64_t)128 * 16 * 16384 * 16384 * 4);
        ck_assert_int_eq(rb_engine_estimate_bytes(rb_model_graph(m), 256, NULL, &est2), RB_OK);
        ck_assert(est2 > est + est / 2); /* grows with the batch */
        ck_assert_int_eq(rb_engine_estimate_bytes(rb_model_graph(m), 0, NULL, &est), RB_ERR_INVALID_ARGUMENT);
        rb_model_destroy(m);
    }
}
END_TEST

/* "362,115" -> 362115 */
static double mib_field(const char *text, const char *after)
{
    const char *p = strstr(text, after);
    double v = 0;
    ck_assert_msg(p != NULL, "no '%s' in %s", after, text);
    for (p += strlen(after); (*p >= '0' && *p <= '9') || *p == ','; p++)
        if (*p != ',')
            v = v * 10 + (*p - '0');
    return v;
}

/* rb_model_check_memory: passes what fits, refuses what cannot with the
 * figures (estimate, data, this machine's memory) and the advice. */
START_TEST(memory_check_refuses_what_cannot_fit)
{
    rb_model *small = small_model(reg, 16, 1), *huge = small_model(reg, 16384, 1);
    rb_memory_engine two[2] = {{128, false}, {256, true}};
    uint64_t machine = rb_machine_memory_bytes(), a, b;
    double mib = 1 << 20;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    ck_assert(machine > 0 && machine <= (uint64_t)pages * (uint64_t)page);
    ck_assert_int_eq(rb_model_check_memory(small, NULL, two, 2, 1 << 20, "x"), RB_OK);
    ck_assert_int_eq(rb_model_check_memory(huge, NULL, two, 2, 3 << 20, "lower --batch-size"), RB_ERR_OUT_OF_MEMORY);
    ck_assert_int_eq(rb_engine_estimate_bytes(rb_model_graph(huge), 128, NULL, &a), RB_OK);
    ck_assert_int_eq(rb_engine_estimate_bytes(rb_model_graph(huge), 256, NULL, &b), RB_OK);
    {
        const char *msg = rb_last_error();
        ck_assert_msg(strncmp(msg, "needs about ", 12) == 0, "%s", msg);
        ck_assert_double_eq(mib_field(msg, "needs about "), ceil(((double)a + (double)b + (3 << 20)) / mib));
        ck_assert_double_eq(mib_field(msg, "(arena "), ceil(((double)a + (double)b) / mib));
        ck_assert_ptr_nonnull(strstr(msg, " MiB at batch 128, 3x16384x16384 images; data 3 MiB) but this machine has "));
        ck_assert_double_eq(mib_field(msg, "but this machine has "), ceil((double)machine / mib));
        ck_assert_ptr_nonnull(strstr(msg, " MiB: lower --batch-size"));
        ck_assert_ptr_null(strchr(msg, '\n'));
    }
    rb_model_destroy(small);
    rb_model_destroy(huge);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    SRunner *sr;
    int failed;
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, shapes_format_for_messages);
    tcase_add_test(tc, architecture_names_resolve_to_plugins_and_presets);
    tcase_add_test(tc, save_and_load_give_back_the_same_model);
    tcase_add_test(tc, loading_refuses_checkpoints_that_do_not_fit);
    tcase_add_test(tc, import_reads_torchvision_names_and_refuses_what_does_not_fit);
    tcase_add_test(tc, infer_matches_the_double_reference);
    tcase_add_test(tc, export_round_trips_and_inspect_shows_the_table);
    tcase_add_test(tc, loading_refuses_non_finite_tensors);
    tcase_add_test(tc, arena_estimate_is_within_a_factor_of_two);
    tcase_add_test(tc, memory_check_refuses_what_cannot_fit);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
