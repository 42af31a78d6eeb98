/* The grid and demo commands: experiment grids from a file (robusta/grid.h),
 * and the shipped demo grid on Debian's Fashion-MNIST. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <robusta/data.h>
#include <robusta/grid.h>

#include "cli/cli.h"

/* --shard i/n: 0 <= i < n. */
static int parse_shard(const char *text, int *index, int *count)
{
    char *end;
    long i = strtol(text, &end, 10), n;
    if (end == text || *end != '/')
        return -1;
    text = end + 1;
    n = strtol(text, &end, 10);
    if (end == text || *end != '\0' || n < 1 || n > 1000000 || i < 0 || i >= n)
        return -1;
    *index = (int)i;
    *count = (int)n;
    return 0;
}

/* Runs a parsed grid into out_dir and prints its table and verdicts. */
static int run_spec(const cli_command *self, rb_grid_spec *spec, const char *out_dir, int shard_index,
                    int shard_count, bool report_only, int threads)
{
    rb_grid_options go = {0};
    rb_grid_outcome res;
    rb_status s;
    if ((go.registry = cli_registry()) == NULL)
        return cli_fail(self->name, rb_last_status());
    go.out_dir = out_dir;
    go.shard_index = shard_index;
    go.shard_count = shard_count;
    go.report_only = report_only;
    go.quiet = rb_log_get_level() < RB_LOG_INFO;
    go.threads = threads;
    rb_train_clear_stop();
    cli_catch_stop_signals();
    s = rb_grid_run(spec, &go, &res);
    if (s == RB_ERR_INTERRUPTED) {
        fprintf(stderr, "robusta %s: %s\nrobusta %s: finished runs are kept: run the same command again to go on\n",
                self->name, rb_last_error(), self->name);
        return cli_stop_exit_code();
    }
    if (s != RB_OK)
        return cli_fail(self->name, s);
    if (res.table != NULL)
        printf("%s\n%s", res.table, res.summary);
    printf("\n%zu of %zu transfer results in %s/results.csv, table.md and plot.svg (%.0f s)\n", res.results,
           res.transfers_total, out_dir, res.seconds);
    rb_grid_outcome_free(&res);
    return RB_EXIT_OK;
}

/* ------------------------------------------------------------ grid */

static const rb_param_spec grid_options[] = {
    {"out", RB_PARAM_STRING, NULL, NULL, 0, "folder for runs and reports (default: runs/NAME, NAME from [grid])"},
    {"shard", RB_PARAM_STRING, "0/1", NULL, 0,
     "i/n: run the source models i, i+n, i+2n ... and their transfers (split a grid across machines)"},
    {"report", RB_PARAM_BOOL, "false", NULL, 0, "only collect finished results into the reports; train nothing"},
    {"threads", RB_PARAM_INT, "-1", "[-1, 4096]", 0, "compute threads (-1: the grid file's, 0: every core)"},
    {NULL}};

static int run_grid(const cli_command *self, rb_params *o, int argc, char **args)
{
    rb_grid_spec *spec = NULL;
    const char *out = NULL, *shard = "0/1";
    char out_buf[4200];
    int index = 0, count = 1, code;
    int64_t threads = -1;
    bool report = false;
    rb_status s;
    if (argc != 1) {
        fprintf(stderr, "robusta %s: takes one grid file (robusta %s --help describes the format)\n", self->name,
                self->name);
        return RB_EXIT_USAGE;
    }
    rb_params_get_string(o, "shard", &shard);
    if (parse_shard(shard, &index, &count) != 0) {
        fprintf(stderr, "robusta %s: --shard '%s' must be i/n with 0 <= i < n (e.g. 0/2 and 1/2)\n", self->name,
                shard);
        return RB_EXIT_USAGE;
    }
    rb_params_get_bool(o, "report", &report);
    rb_params_get_int(o, "threads", &threads);
    if ((s = rb_grid_spec_load(args[0], &spec)) != RB_OK) {
        fprintf(stderr, "robusta %s: %s\n", self->name, rb_last_error());
        return RB_EXIT_USAGE;
    }
    if (rb_params_source(o, "out") == RB_PARAM_GIVEN)
        rb_params_get_string(o, "out", &out);
    else {
        snprintf(out_buf, sizeof out_buf, "runs/%s", spec->name);
        out = out_buf;
        if (mkdir("runs", 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "robusta %s: cannot create runs/: %s\n", self->name, strerror(errno));
            rb_grid_spec_destroy(spec);
            return RB_EXIT_FAILURE;
        }
    }
    code = run_spec(self, spec, out, index, count, report, (int)threads);
    rb_grid_spec_destroy(spec);
    return code;
}

const cli_command cli_grid_command = {
    .name = "grid",
    .summary = "run a grid of source x transfer experiments, resumable, with table and plot",
    .usage = "FILE [--out DIR] [--shard i/n] [--report] [--threads N]",
    .description =
        "Runs the experiments a grid file describes (INI; include/robusta/grid.h and the README\n"
        "document it): a source model per [arch] section x eps x seed, standard for eps 0 and\n"
        "adversarially trained (PGD) otherwise, each transferred to every [target] in the\n"
        "[transfer] modes and seeds, with the target's task (its `task` key, else [transfer]'s)\n"
        "and the task options its other keys give. Every run has its folder under DIR\n"
        "(sources/, transfers/) with a result.json when it finished; those are skipped, and a\n"
        "half-done run resumes, so a killed grid goes on where it stopped. DIR receives\n"
        "results.csv, table.md (the paper's table: mean +- sd over seeds of each target's\n"
        "metric, accuracy or mIoU..., and which setting won) and plot.svg (that metric against\n"
        "source eps). eval-attack = NAME [KEY=VALUE ...] in [transfer] (an attack plugin, or\n"
        "autoattack) also attacks every transferred classifier: robust target accuracy goes into\n"
        "each of them, with a verdict on whether the robust prior's robustness survived.\n"
        "--shard i/n runs a share of the source models so that machines can split a grid; copy\n"
        "their folders together and run --report to merge.",
    .options = grid_options,
    .run = run_grid,
    .data_parallel = true,
};

/* ------------------------------------------------------------ demo */

/* The paper's protocol in miniature. Sized so that the full demo takes
 * about 15 minutes on a 2-core machine and --quick about 45 seconds. */
static const char demo_grid[] =
    "; robusta demo: do adversarially robust source models transfer better?\n"
    "; Salman et al. (2020) in miniature on Fashion-MNIST (Debian's dataset-fashion-mnist):\n"
    "; source models learn classes 0-4 (T-shirt/top, trouser, pullover, dress, coat),\n"
    "; standard (eps 0) or adversarially trained with PGD-L2, then transfer to classes\n"
    "; 5-9 (sandal, shirt, sneaker, bag, ankle boot) from 50 examples per class, and to\n"
    "; segmenting scenes of those items (target scenes, mIoU) and detecting them\n"
    "; (target boxes, COCO AP).\n"
    "[grid]\n"
    "name = demo\n"
    "\n"
    "[arch r18w25]\n"
    "arch = resnet18\n"
    "stem = cifar\n"
    "width = 0.25\n"
    "\n"
    "[source]\n"
    "data = fashion-mnist\n"
    "classes = 0-4\n"
    "per-class = 1000\n"
    "epochs = 6\n"
    "batch-size = 128\n"
    "lr = 0.1\n"
    "schedule = cosine\n"
    "attack = pgd-l2\n"
    "eps = 0, 0.5, 1.0\n"
    "steps = 3\n"
    "step-size-factor = 2.5\n"
    "random-start = true\n"
    "; two source models per eps: the verdicts weigh source training's own\n"
    "; spread, not only the transfer seeds'\n"
    "seeds = 0, 1\n"
    "eval-attack-steps = 10\n"
    "; the attack on 100 test images per class (500; clean accuracy on all 5,000)\n"
    "eval-attack-per-class = 100\n"
    "\n"
    "[target fm5-9]\n"
    "data = fashion-mnist\n"
    "classes = 5-9\n"
    "per-class = 50\n"
    "\n"
    "; segmentation: 32 x 32 scenes of 2-4 items of classes 5-9 on a texture of\n"
    "; the other classes' items, 128 to train on and 64 to test, which robusta demo\n"
    "; makes into its folder first, as this command would:\n"
    "; robusta make-scenes --classes 5-9 --images 128 --val-images 64 --size 32 --objects 2-4 --out scenes\n"
    "[target scenes]\n"
    "data = voc-seg:scenes\n"
    "task = segment\n"
    "head = fcn\n"
    "; the default inner width (the stage's channels / 4) is 8 at width 0.25\n"
    "channels = 64\n"
    "epochs = 20\n"
    "batch-size = 16\n"
    "lr-fixed = 0.1\n"
    "lr-full = 0.05\n"
    "schedule = cosine\n"
    "\n"
    "; detection: boxes of the same scenes (make-scenes writes COCO annotations\n"
    "; beside the masks), an FCOS head on stages 2 and 3 scored by COCO AP\n"
    "[target boxes]\n"
    "data = coco:scenes\n"
    "task = detect\n"
    "convs = 2\n"
    "; the default 0.2 keeps too few boxes for AP's recall after 12 epochs\n"
    "score-threshold = 0.05\n"
    "epochs = 12\n"
    "batch-size = 16\n"
    "lr-fixed = 0.05\n"
    "lr-full = 0.05\n"
    "schedule = cosine\n"
    "\n"
    "[transfer]\n"
    "task = classify\n"
    "modes = fixed, full\n"
    "seeds = 0, 1, 2\n"
    "epochs = 40\n"
    "batch-size = 64\n"
    "; the paper's ratio (fixed-feature 10x full-network), both 10x its values:\n"
    "; 250 target images make only 4 steps an epoch\n"
    "lr-fixed = 0.1\n"
    "lr-full = 0.01\n"
    "; does a robust prior's robustness survive transfer? each fm5-9 model is\n"
    "; also attacked as the sources are (PGD-L2, 10 steps, at eps 1.0) on 50 test\n"
    "; images per class (the dense targets have no classification loss to attack)\n"
    "eval-attack = pgd-l2 steps=10\n"
    "eval-attack-per-class = 50\n";

/* --quick: the same questions on a tenth of the work. */
static const char demo_quick_grid[] =
    "; robusta demo --quick: the demo's grid, reduced to run in under a minute.\n"
    "[grid]\n"
    "name = demo-quick\n"
    "\n"
    "[arch r18w25]\n"
    "arch = resnet18\n"
    "stem = cifar\n"
    "width = 0.25\n"
    "\n"
    "[source]\n"
    "data = fashion-mnist\n"
    "classes = 0-4\n"
    "per-class = 200\n"
    "epochs = 2\n"
    "batch-size = 64\n"
    "lr = 0.1\n"
    "attack = pgd-l2\n"
    "eps = 0, 1.0\n"
    "steps = 2\n"
    "seeds = 0\n"
    "\n"
    "[target fm5-9]\n"
    "data = fashion-mnist\n"
    "classes = 5-9\n"
    "per-class = 20\n"
    "\n"
    "; robusta make-scenes --classes 5-9 --images 64 --val-images 32 --size 32 --objects 2-4 --out scenes\n"
    "[target scenes]\n"
    "data = voc-seg:scenes\n"
    "task = segment\n"
    "channels = 64\n"
    "epochs = 10\n"
    "batch-size = 16\n"
    "lr-fixed = 0.1\n"
    "lr-full = 0.05\n"
    "schedule = cosine\n"
    "\n"
    "[target boxes]\n"
    "data = coco:scenes\n"
    "task = detect\n"
    "convs = 2\n"
    "score-threshold = 0.05\n"
    "epochs = 10\n"
    "batch-size = 16\n"
    "lr-fixed = 0.05\n"
    "lr-full = 0.05\n"
    "schedule = cosine\n"
    "\n"
    "[transfer]\n"
    "modes = fixed, full\n"
    "seeds = 0\n"
    "epochs = 20\n"
    "batch-size = 32\n"
    "lr-fixed = 0.1\n"
    "lr-full = 0.01\n"
    "eval-attack = pgd-l2 steps=5\n"
    "eval-attack-per-class = 20\n";

static const rb_param_spec demo_options[] = {
    {"quick", RB_PARAM_BOOL, "false", NULL, 0, "the reduced grid (about 45 s instead of 15 min on 2 cores)"},
    {"out", RB_PARAM_STRING, NULL, NULL, 0, "folder for runs and reports (default: robusta-demo[-quick])"},
    {"data", RB_PARAM_STRING, NULL, NULL, 0,
     "Fashion-MNIST folder (default: /usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist)"},
    {"threads", RB_PARAM_INT, "0", "[0, 4096]", 0, "compute threads (0: every core of this NUMA node)"},
    {"print-grid", RB_PARAM_BOOL, "false", NULL, 0, "print the demo's grid file (a start for your own) and exit"},
    {NULL}};

/* Replaces every data spec of the grid that reads `from` by `to`. */
static rb_status redirect_data(rb_grid_spec *spec, const char *from, const char *to)
{
    char **fields[64];
    size_t n = 0;
    fields[n++] = &spec->source.data;
    for (size_t t = 0; t < spec->n_targets && n < 64; t++)
        fields[n++] = &spec->targets[t].data;
    for (size_t i = 0; i < n; i++) {
        char *text;
        if (strcmp(*fields[i], from) != 0)
            continue;
        if ((text = strdup(to)) == NULL)
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory");
        free(*fields[i]);
        *fields[i] = text;
    }
    return RB_OK;
}

/* The scenes of the demo's segmentation target, made in OUT/scenes from
 * the items' dataset unless an earlier run made them (they are the same
 * for the same options, and a folder appears there only complete). */
static rb_status make_demo_scenes(const char *out, const char *items, bool quick, char *spec, size_t size)
{
    rb_scenes_options so;
    char folder[4200];
    struct stat st;
    rb_status s;
    snprintf(folder, sizeof folder, "%s/scenes", out);
    snprintf(spec, size, "voc-seg:%s", folder);
    if (stat(folder, &st) == 0)
        return RB_OK;
    rb_scenes_defaults(&so);
    so.from = items;
    so.classes = "5-9";
    so.out = folder;
    so.train_images = quick ? 64 : 128;
    so.val_images = quick ? 32 : 64;
    so.size = 32;
    so.min_objects = 2;
    so.max_objects = 4;
    if ((s = rb_scenes_make(&so, NULL, NULL)) != RB_OK)
        return rb_error_prefix("making the scenes in %s: ", folder);
    printf("made %lld + %lld segmentation scenes from classes 5-9 in %s\n", (long long)so.train_images,
           (long long)so.val_images, folder);
    return RB_OK;
}

static void say_left_out(void *user, const char *line)
{
    fprintf(stderr, "robusta %s: report: %s\n", (const char *)user, line);
}

/* DIR/report.html: the demo's results as one page (robusta/report.h). */
static int write_demo_report(const cli_command *self, const char *out)
{
    char path[4200];
    const char *dirs[1] = {out};
    rb_report_options opt = {"robusta demo: do adversarially robust source models transfer better?", say_left_out,
                             (void *)self->name};
    snprintf(path, sizeof path, "%s/report.html", out);
    if (rb_report_write_html(dirs, 1, path, &opt, NULL) != RB_OK)
        return cli_fail(self->name, rb_last_status());
    printf("The whole report, with per-class scores, training curves and each run's configuration: %s\n", path);
    return RB_EXIT_OK;
}

static int run_demo(const cli_command *self, rb_params *o, int argc, char **args)
{
    bool quick = false, print = false;
    const char *text, *out, *data = NULL;
    rb_grid_spec *spec = NULL;
    int64_t threads = 0;
    int code;
    rb_status s;
    (void)args;
    if (argc > 0) {
        fprintf(stderr, "robusta %s: takes no positional arguments\n", self->name);
        return RB_EXIT_USAGE;
    }
    rb_params_get_bool(o, "quick", &quick);
    rb_params_get_bool(o, "print-grid", &print);
    rb_params_get_int(o, "threads", &threads);
    text = quick ? demo_quick_grid : demo_grid;
    if (print) {
        fputs(text, stdout);
        return RB_EXIT_OK;
    }
    out = quick ? "robusta-demo-quick" : "robusta-demo";
    if (rb_params_source(o, "out") == RB_PARAM_GIVEN)
        rb_params_get_string(o, "out", &out);
    if (rb_params_source(o, "data") == RB_PARAM_GIVEN)
        rb_params_get_string(o, "data", &data);
    if ((s = rb_grid_spec_parse(text, strlen(text), quick ? "demo-quick.ini" : "demo.ini", &spec)) != RB_OK)
        return cli_fail(self->name, s);
    if (data != NULL) {
        char items[4200];
        snprintf(items, sizeof items, "fashion-mnist:%s", data);
        if ((s = redirect_data(spec, "fashion-mnist", items)) != RB_OK) {
            rb_grid_spec_destroy(spec);
            return cli_fail(self->name, s);
        }
    }
    {
        char machine[512];
        if (rb_machine_info(machine, sizeof machine) != RB_OK)
            snprintf(machine, sizeof machine, "unknown machine");
        printf("robusta demo%s: do adversarially robust source models transfer better?\n"
               "sources: ResNet-18 (width 0.25) on Fashion-MNIST classes 0-4, standard and PGD-L2 robust;\n"
               "targets: classes 5-9 from %s examples per class, and segmenting (mIoU) and detecting (AP)\n"
               "scenes of them,\n"
               "fixed-feature and full-network transfer; does the robust prior's robustness survive it?\n"
               "runs and reports go to %s/ (a stopped demo goes on where it stopped)\n"
               "the figures repeat bit for bit only on the same CPU model, oneDNN kernels and thread count;\n"
               "here: %s\n\n",
               quick ? " --quick" : "", quick ? "20" : "50", out, machine);
    }
    fflush(stdout);
    {
        /* The grid file itself, next to its results, to rerun or edit. */
        char path[4200];
        FILE *f;
        if (mkdir(out, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "robusta %s: cannot create %s: %s\n", self->name, out, strerror(errno));
            rb_grid_spec_destroy(spec);
            return RB_EXIT_FAILURE;
        }
        snprintf(path, sizeof path, "%s/%s", out, quick ? "demo-quick.ini" : "demo.ini");
        if ((f = fopen(path, "w")) != NULL) {
            fputs(text, f);
            fclose(f);
        }
    }
    {
        char items[4200], scenes[4300], boxes[4300];
        snprintf(items, sizeof items, "%s%s%s", "fashion-mnist", data != NULL ? ":" : "", data != NULL ? data : "");
        s = make_demo_scenes(out, items, quick, scenes, sizeof scenes);
        /* the same folder, read as COCO: the boxes of the segmentation's scenes */
        snprintf(boxes, sizeof boxes, "coco:%s", scenes + strlen("voc-seg:"));
        if (s != RB_OK ||
            (s = redirect_data(spec, "voc-seg:scenes", scenes)) != RB_OK ||
            (s = redirect_data(spec, "coco:scenes", boxes)) != RB_OK) {
            rb_grid_spec_destroy(spec);
            return cli_fail(self->name, s);
        }
        fflush(stdout);
    }
    code = run_spec(self, spec, out, 0, 1, false, (int)threads);
    rb_grid_spec_destroy(spec);
    if (code == RB_EXIT_OK)
        code = write_demo_report(self, out);
    return code;
}

const cli_command cli_demo_command = {
    .name = "demo",
    .summary = "the paper's comparison in miniature on Fashion-MNIST (about 15 minutes on 2 cores; --quick: 45 s)",
    .usage = "[--quick] [--out DIR] [--data FASHION_MNIST_DIR] [--threads N] [--print-grid]",
    .description =
        "Runs a shipped grid (see --print-grid) on Debian's Fashion-MNIST, no download needed:\n"
        "ResNet-18 (cifar stem, width 0.25) source models trained on classes 0-4, standard\n"
        "(eps 0) and PGD-L2 robust (eps 0.5 and 1.0), 2 source seeds each, each transferred to\n"
        "classes 5-9 from 50 examples per class, and to segmenting and detecting scenes of\n"
        "those classes (made with make-scenes into DIR/scenes first), in fixed-feature and\n"
        "full-network mode over 3 transfer seeds. Each classes 5-9 model is also attacked\n"
        "(PGD-L2, 10 steps, eps 1.0, 50 test images per class). Prints the paper-style table\n"
        "(target accuracy and robust accuracy, mIoU and AP, mean +- sd, split into the spread\n"
        "over source seeds and over transfer seeds), says which setting won, by how much and\n"
        "whether that exceeds the spread over source seeds, and whether the robust prior's\n"
        "robustness survived each transfer mode, and writes results.csv, table.md,\n"
        "plot.svg and report.html (robusta report's page of it all) into DIR, printing the\n"
        "page's path. --quick runs a reduced grid (2 sources, 1 seed) in\n"
        "about 45 seconds.",
    .options = demo_options,
    .run = run_demo,
};
