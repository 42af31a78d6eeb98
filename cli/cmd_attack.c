/* robusta attack: runs an attack plugin on .npy images through a checkpoint
 * and writes the adversarial images (robusta/attack.h does the work). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const rb_param_spec attack_options[] = {
    {"ckpt", RB_PARAM_STRING, NULL, NULL, RB_PARAM_REQUIRED, "the .rbt model"},
    {"input", RB_PARAM_STRING, NULL, NULL, RB_PARAM_REQUIRED, "images: float32 .npy, N x C x H x W in [0, 1]"},
    {"labels", RB_PARAM_STRING, NULL, NULL, RB_PARAM_REQUIRED, "true labels: integer .npy of N classes"},
    {"attack", RB_PARAM_STRING, NULL, NULL, RB_PARAM_REQUIRED,
     "attack plugin (pgd-l2, pgd-linf ...); its own parameters (eps, step-size) follow"},
    {"output", RB_PARAM_STRING, NULL, NULL, RB_PARAM_REQUIRED,
     "adversarial images to write: float32 .npy, N x C x H x W"},
    {"steps", RB_PARAM_INT, "10", "[0, 1000000]", 0, "iterations per restart (step-based attacks)"},
    {"random-start", RB_PARAM_BOOL, "false", NULL, 0, "start each restart at a random point of the ball"},
    {"restarts", RB_PARAM_INT, "1", "[1, 65536]", 0,
     "runs per example; keeps the first that fools the model, else the highest loss"},
    {"keep-best", RB_PARAM_BOOL, "false", NULL, 0,
     "keep each example's highest-loss iterate (lowest when targeted) instead of the last"},
    {"targeted", RB_PARAM_CHOICE, "none", "none|random|least-likely", 0,
     "targeted attack towards a random other class or the least likely one"},
    {"targets", RB_PARAM_STRING, NULL, NULL, 0, "write the targets here (int64 .npy) for a targeted attack"},
    {"seed", RB_PARAM_INT, "0", "[0, inf)", 0, "seed of random starts and random targets"},
    {"batch-size", RB_PARAM_INT, "32", "[1, 65536]", 0, "images per engine step"},
    {"threads", RB_PARAM_INT, "0", "[0, 4096]", 0, "compute threads (0: every core of this NUMA node)"},
    CLI_ARITHMETIC_OPTIONS,
    {NULL}};

static const cli_plugin_option attack_plugin_option[] = {{"attack", RB_PLUGIN_ATTACK, cli_attack_schedule}, {NULL, 0, NULL}};

/* "eps 0.5, step-size 0.1": the plugin's parameters as used. */
static void describe_params(const rb_params *p, char *buf, size_t size)
{
    const rb_param_spec *specs = p ? rb_params_specs(p) : NULL;
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; specs != NULL && specs[i].name != NULL && used < size; i++) {
        char value[64];
        if (rb_params_format(p, specs[i].name, value, sizeof value) != RB_OK)
            continue;
        used += (size_t)snprintf(buf + used, size - used, "%s%s %s", used ? ", " : "", specs[i].name, value);
    }
}

static int run_attack(const cli_command *self, rb_params *o, int argc, char **args)
{
    const char *ckpt = cli_opt_string(o, "ckpt"), *input = cli_opt_string(o, "input");
    const char *targeted = cli_opt_string(cli_option_owner(o, "targeted"), "targeted");
    const char *targets_path = cli_opt_string(o, "targets");
    const rb_plugin *plugin = cli_plugin("attack");
    rb_params *plugin_params = cli_plugin_params("attack");
    rb_registry *reg = cli_registry();
    rb_npy *x = NULL;
    rb_model *model = NULL;
    rb_engine *engine = NULL;
    int64_t *labels = NULL, *targets = NULL, n, batch;
    float *x_adv = NULL;
    rb_attack_options ao = rb_attack_options_default();
    rb_attack_stats st;
    char described[512];
    rb_status s;

    (void)args;
    if (argc > 0) {
        rb_error_set(RB_ERR_INVALID_ARGUMENT, "attack takes no positional arguments (got '%s')", args[0]);
        return cli_fail(self->name, RB_ERR_INVALID_ARGUMENT);
    }
    if (reg == NULL)
        return cli_fail(self->name, rb_last_status());
    if (plugin == NULL) { /* main resolved --attack; this only guards the invariant */
        rb_error_set(RB_ERR_INVALID_ARGUMENT, "--attack names no attack plugin");
        return cli_fail(self->name, RB_ERR_INVALID_ARGUMENT);
    }
    if (cli_attack_options(o, &ao) != RB_OK) { /* from the plugin's parameters where it took them over */
        fprintf(stderr, "robusta %s: %s\n", self->name, rb_last_error());
        return RB_EXIT_USAGE;
    }
    ao.target = targeted == NULL                      ? RB_ATTACK_UNTARGETED
                : strcmp(targeted, "random") == 0       ? RB_ATTACK_TARGET_RANDOM
                : strcmp(targeted, "least-likely") == 0 ? RB_ATTACK_TARGET_LEAST_LIKELY
                                                        : RB_ATTACK_UNTARGETED;
    if (targets_path != NULL && ao.target == RB_ATTACK_UNTARGETED) {
        rb_error_set(RB_ERR_INVALID_ARGUMENT, "--targets needs --targeted random|least-likely");
        return cli_fail(self->name, RB_ERR_INVALID_ARGUMENT);
    }
    if ((s = rb_attack_check(plugin, &ao)) != RB_OK)
        return cli_fail(self->name, s);
    if ((s = cli_read_images(input, &x)) != RB_OK)
        return cli_fail(self->name, s);
    n = x->shape[0];
    if ((s = rb_model_load(&model, reg, ckpt, x->shape[2], x->shape[3])) != RB_OK)
        goto done;
    if (rb_model_get_input(model)->channels != x->shape[1]) {
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s has %lld channels but %s takes %lld", input,
                         (long long)x->shape[1], ckpt, (long long)rb_model_get_input(model)->channels);
        goto done;
    }
    if ((s = cli_read_labels(cli_opt_string(o, "labels"), n, rb_model_num_classes(model), &labels)) != RB_OK)
        goto done;
    batch = cli_opt_int(o, "batch-size");
    if (batch > n)
        batch = n;
    {
        rb_engine_options eo = {.threads = (int)cli_opt_int(o, "threads"), .data_grads_only = true,
                                .precision = cli_precision(o), .conv_algorithm = cli_conv_algorithm(o)};
        rb_memory_engine one = {batch, true};
        rb_node *outputs[RB_MODEL_ENGINE_OUTPUTS];
        eo.outputs = outputs;
        eo.n_outputs = rb_model_engine_outputs(model, outputs);
        /* the adversarial copy of the images */
        if ((s = rb_model_check_memory(model, &eo, &one, 1, (uint64_t)x->numel * sizeof(float),
                                       "lower --batch-size or attack fewer or smaller images at a time")) != RB_OK ||
            (s = rb_engine_create(&engine, rb_model_graph(model), batch, &eo)) != RB_OK)
            goto done;
    }
    x_adv = malloc((size_t)x->numel * sizeof *x_adv);
    targets = malloc((size_t)n * sizeof *targets);
    if (x_adv == NULL || targets == NULL) {
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for %lld images", (long long)n);
        goto done;
    }
    if ((s = rb_attack_run(engine, model, plugin, plugin_params, &ao, x->data, labels, n, x_adv, targets, &st)) !=
        RB_OK)
        goto done;
    if ((s = rb_npy_save(cli_opt_string(o, "output"), RB_DTYPE_F32, 4, x->shape, x_adv)) != RB_OK)
        goto done;
    if (targets_path != NULL && (s = rb_npy_save(targets_path, RB_DTYPE_I64, 1, &n, targets)) != RB_OK)
        goto done;
    describe_params(plugin_params, described, sizeof described);
    printf("attack %s (%s; %d steps, %d restart%s%s%s%s) on %lld images of %s\n", plugin->name, described,
           ao.steps, ao.restarts, ao.restarts == 1 ? "" : "s", ao.random_start ? ", random start" : "", ao.keep_best ? ", keep best" : "",
           ao.target == RB_ATTACK_TARGET_RANDOM         ? ", targeted: random"
           : ao.target == RB_ATTACK_TARGET_LEAST_LIKELY ? ", targeted: least likely"
                                                        : "",
           (long long)n, ckpt);
    printf("clean accuracy: %.2f%% (%lld/%lld)\n", 100.0 * (double)st.clean_correct / (double)n,
           (long long)st.clean_correct, (long long)n);
    printf("adversarial accuracy: %.2f%% (%lld/%lld)\n", 100.0 * (double)st.adv_correct / (double)n,
           (long long)st.adv_correct, (long long)n);
    if (ao.target != RB_ATTACK_UNTARGETED)
        printf("target reached: %.2f%% (%lld/%lld)\n", 100.0 * (double)st.target_reached / (double)n,
               (long long)st.target_reached, (long long)n);
    printf("max perturbation: L2 %.6f, Linf %.6f\n", st.max_l2, st.max_linf);
done:
    free(x_adv);
    free(targets);
    free(labels);
    rb_engine_destroy(engine);
    rb_model_destroy(model);
    rb_npy_destroy(x);
    return s == RB_OK ? RB_EXIT_OK : cli_fail(self->name, s);
}

const cli_command cli_attack_command = {
    .name = "attack",
    .summary = "run an attack on images and save the adversarial examples",
    .usage = "--ckpt MODEL.rbt --input X.npy --labels Y.npy --attack NAME [attack options] --output XADV.npy",
    .description =
        "Attacks float32 images N x C x H x W in [0, 1] with an attack plugin and writes the\n"
        "adversarial images (float32, same shape). The plugin owns the threat model (for\n"
        "pgd-l2 and pgd-linf: --eps and --step-size); this command owns the schedule: --steps,\n"
        "--random-start, --restarts (per example the first restart that fools the model is\n"
        "kept, else the highest-loss one), --keep-best, --targeted and --seed, except those the\n"
        "plugin declares itself (apgd-ce: --steps, --random-start), whose values are the\n"
        "plugin's and which the schedule then follows. The model runs in\n"
        "inference mode; no weight gradients are computed. Prints clean and adversarial\n"
        "accuracy and the largest L2 and Linf perturbation over the images. Random starts\n"
        "and random targets depend on --seed and the example index only, not on --batch-size.",
    .options = attack_options,
    .plugin_options = attack_plugin_option,
    .run = run_attack,
};
