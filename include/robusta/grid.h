/* robusta/grid.h: grid files (which source models to train and how to
 * transfer them) and the reports made from a grid's results.
 *
 * A grid asks the paper's question on a small scale: for each architecture,
 * train source models at several eps (0 is standard training), then transfer
 * each to each target, in fixed-feature and full-network mode, over a few
 * seeds, and compare. The grid file says what to run; the runner (robusta
 * grid) runs it and writes one results row per transfer run; this header's
 * report functions turn those rows into a table, a summary and a plot.
 *
 * The file is INI (read with libinih). Comments start a line with ';' or
 * '#', or follow a value after a space and ';' ("epochs = 5 ; short").
 * Lists are comma-separated; spaces around items are ignored. Keys and
 * section headers start at the beginning of their line: an indented line is
 * refused (INI would silently read it as the continuation of the previous
 * value). Lines are at most 198 characters.
 *
 *   [grid]
 *   name = demo            ; required: a label for titles, [a-zA-Z0-9_.-]+
 *   threads = 0            ; compute threads, 0: every core (default 0)
 *   precision = f32        ; f32, bf16 or auto (robusta/engine.h), every
 *                          ;   training, transfer and evaluation (default f32)
 *   tune = cached          ; off, cached or full (robusta/tune.h): how
 *                          ;   training kernels are chosen (default cached)
 *   conv-algorithm = winograd ; winograd or direct (robusta/engine.h), the
 *                          ;   same (default winograd)
 *   cache = runs/images    ; a folder (it must exist) for the decoded images
 *                          ;   of image sets read with transform = paper, so
 *                          ;   later runs decode nothing (default: in memory)
 *
 *   [arch r18]             ; one or more; "r18" is the label: [a-zA-Z0-9_.-]+,
 *   arch = resnet18        ;   at most 63 characters, unique. arch: required,
 *   stem = cifar           ;   an arch plugin or preset; every other key is an
 *   width = 0.25           ;   option of that plugin, kept as written (the
 *                          ;   runner checks it against the plugin's parameters)
 *
 *   [source]               ; exactly one: how the source models are trained
 *   data = fashion-mnist   ; required dataset spec
 *   classes = 0-4          ; class list (default: all)
 *   per-class = 1000       ; examples per class, 0: all (default 0)
 *   image-size = 0         ; 0: the stored size (default 0)
 *   epochs = 5             ; >= 1 (default 10)
 *   batch-size = 128       ; >= 1 (default 128)
 *   lr = 0.1               ; > 0 (default 0.1)
 *   momentum = 0.9         ; in [0, 1) (default 0.9)
 *   weight-decay = 5e-4    ; >= 0 (default 5e-4)
 *   schedule = cosine      ; learning-rate schedule (default cosine)
 *   augment = true         ; true|false|yes|no|on|off|1|0 (default true)
 *   transform = none       ; none|paper: how image files (folder:, list:)
 *                          ;   become examples (robusta/data.h; default none)
 *   attack = pgd-l2        ; threat model for eps > 0 (default pgd-l2)
 *   eps = 0, 0.25, 8/255   ; required: one source model per eps and seed; each
 *                          ;   a decimal or a fraction, >= 0, no repeats; 0 is
 *                          ;   standard training
 *   steps = 3              ; attack steps during training, >= 1 (default 3)
 *   step-size-factor = 2.5 ; step = factor * eps / steps, the robustness
 *                          ;   library's rule; > 0 (default 2.5)
 *   random-start = true    ; (default true)
 *   seeds = 0, 1           ; unsigned seeds, no repeats (default 0)
 *   eval-attack-steps = 20 ; robust test accuracy of each source model under a
 *                          ;   PGD of this many steps at the largest eps of the
 *                          ;   list, so that standard and robust models face the
 *                          ;   same attack; 0: skip (default 0)
 *   eval-attack-per-class = 200 ; attack only this many test images per
 *                          ;   class (a class-balanced subset drawn with seed
 *                          ;   0, the same for every source model), clean
 *                          ;   accuracy still on them all; 0: every one
 *                          ;   (default 0)
 *
 *   [target fm59]          ; one or more; label as for [arch]
 *   data = fashion-mnist   ; required
 *   classes = 5-9          ; (default: all)
 *   per-class = 50         ; 0: all (default 0)
 *   image-size = 0         ; (default 0)
 *   task = classify        ; the task plugin whose head this target trains
 *                          ;   (default: [transfer]'s task)
 *   epochs = 60            ; these five override [transfer]'s for this
 *   batch-size = 16        ;   target only (a dense task usually wants
 *   lr-fixed = 0.1         ;   other settings than a classifier); same
 *   lr-full = 0.01         ;   ranges; absent: [transfer]'s value
 *   schedule = constant
 *   transform = paper      ; none|paper, as in [source]; with paper the
 *                          ;   target trains with augmentation (default none)
 *   metric = balanced_accuracy ; the number of the task's metrics.json that
 *                          ;   results.csv, table.md and plot.svg report and
 *                          ;   rank (default: the task's primary metric)
 *   hidden = 256           ; every other key is an option of that task,
 *                          ;   kept as written (the runner checks it against
 *                          ;   the plugin's parameters, as for [arch])
 *
 *   [target scenes]        ; e.g. segmentation (the segment plugin and the
 *   data = voc-seg:scenes  ;   voc-seg reader, where installed)
 *   task = segment
 *   head = fcn
 *   stage = stride8
 *
 *   [transfer]             ; exactly one (it may be empty: all defaults)
 *   task = classify        ; the default task of every target (default classify)
 *   modes = fixed, full    ; fixed and/or full, no repeats (default both)
 *   seeds = 0, 1, 2        ; (default 0)
 *   epochs = 20            ; >= 1 (default 30)
 *   batch-size = 64        ; >= 1 (default 64)
 *   lr-fixed = 0.01        ; > 0 (default 0.01)
 *   lr-full = 0.001        ; > 0 (default 0.001)
 *   momentum = 0.9         ; in [0, 1) (default 0.9)
 *   weight-decay = 5e-4    ; >= 0 (default 5e-4)
 *   schedule =             ; empty or absent: the transfer command's default
 *   augment = false        ; (default false)
 *   bn-stats = frozen      ; frozen|update: batch-norm statistics in
 *                          ;   fixed-feature mode (default frozen)
 *   eval-attack = pgd-l2 steps=20 ; also evaluate every transferred
 *                          ;   classifier under this attack: an attack plugin
 *                          ;   (or "autoattack standard|plus|rand") and
 *                          ;   KEY=VALUE options, separated by spaces: the
 *                          ;   plugin's parameters (eps, step-size, ...) and
 *                          ;   steps, restarts, random-start, keep-best, seed;
 *                          ;   AutoAttack takes norm (l2|linf), eps and seed.
 *                          ;   eps defaults to the largest [source] eps (the
 *                          ;   one source models are attacked at), norm to
 *                          ;   [source] attack's; step-size, where the plugin
 *                          ;   has one, to step-size-factor * eps / steps.
 *                          ;   Targets whose task predicts masks or boxes are
 *                          ;   not attacked (no classification loss); the grid
 *                          ;   says so once. (default: none)
 *   eval-attack-per-class = 50 ; attack only this many test images per class
 *                          ;   of each target, as [source]'s key (default 0:
 *                          ;   every one)
 *
 * Every mistake is refused with one line naming the file and line:
 * "grid.ini:12: key 'lr' given twice in [source] (first at line 9)",
 * "grid.ini:7: unknown section [sorce] (expected ...)",
 * "grid.ini: [source] needs 'data'". The parser is a pure function from bytes
 * to a spec (rb_grid_spec_parse), so it can be fuzzed.
 *
 * Results: one rb_grid_result per finished transfer run, kept as a CSV file
 * (rb_grid_write_csv / rb_grid_read_csv); from the rows come a markdown table
 * shaped like Table 1 of Salman et al. 2020 (rb_grid_markdown), a plain-text
 * verdict per architecture, mode and target (rb_grid_summary) and an SVG plot
 * of the target's metric against source eps (rb_grid_write_svg). All of them
 * are deterministic: the same rows give the same bytes.
 *
 * Metrics: each row carries the name of the metric its target_acc holds, the
 * primary metric of the target's task ("accuracy" for classify, "miou" for
 * segment, "ap" for detection), always a value in [0, 1] shown in percent.
 * One target reports one metric: rows of one target label with different
 * metrics are refused by every report. The reports name a metric as
 * rb_grid_metric_label does ("accuracy", "mIoU", "AP").
 */
#ifndef ROBUSTA_GRID_H
#define ROBUSTA_GRID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <robusta/data.h>
#include <robusta/engine.h>
#include <robusta/registry.h>
#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A key of an [arch] section other than "arch", or of a [target] section
 * other than its own keys: an option of the arch or task plugin. */
typedef struct rb_grid_option {
    char *key, *value;
    int line;                  /* where it was written, for error messages */
} rb_grid_option;

typedef struct rb_grid_arch {
    char *label;               /* the section's label ("r18") */
    char *arch;                /* plugin or preset name */
    rb_grid_option *options;   /* in file order */
    size_t n_options;
    int line;                  /* the section header's line */
} rb_grid_arch;

typedef struct rb_grid_target {
    char *label, *data, *classes; /* classes NULL: all */
    int64_t per_class;         /* 0: all */
    int64_t image_size;        /* 0: the stored size */
    char *task;                /* the task plugin: the section's `task`, else [transfer]'s (never NULL) */
    int task_line;             /* the line of the section's `task` key; 0: inherited from [transfer] */
    /* The target's own training settings; 0 (NULL for schedule): [transfer]'s.
     * rb_grid_target_settings resolves them. */
    int64_t epochs, batch_size;
    double lr_fixed, lr_full;
    char *schedule;            /* "" (written empty): the transfer command's default */
    rb_transform transform;    /* how its image files become examples (robusta/data.h) */
    char *metric;              /* the metric reported and ranked, one the task writes to metrics.json
                                  ("balanced_accuracy"); NULL: the task's primary metric */
    rb_grid_option *options;   /* the task's options: every other key, in file order */
    size_t n_options;
    int line;                  /* the section header's line */
} rb_grid_target;

typedef struct rb_grid_source {
    char *data, *classes, *schedule, *attack;   /* classes NULL: all */
    int64_t per_class, image_size, epochs, batch_size, steps, eval_attack_steps, eval_attack_per_class;
    double lr, momentum, weight_decay, step_size_factor;
    bool augment, random_start;
    rb_transform transform;    /* how its image files become examples (robusta/data.h) */
    double *eps;               /* in file order */
    char **eps_text;           /* as written without spaces ("8/255"), for labels;
                                  may hold '/': make it safe before using it in
                                  a file name */
    size_t n_eps;
    uint64_t *seeds;           /* in file order */
    size_t n_seeds;
} rb_grid_source;

typedef struct rb_grid_transfer {
    char *task;                /* the default task of the targets */
    char *schedule;            /* NULL: the default */
    bool mode_fixed, mode_full;/* which modes run; fixed runs first */
    uint64_t *seeds;           /* in file order */
    size_t n_seeds;
    int64_t epochs, batch_size;
    double lr_fixed, lr_full, momentum, weight_decay;
    bool augment, bn_update;   /* bn_update: bn-stats = update */
    /* eval-attack: NULL when absent. */
    char *eval_attack;         /* the attack plugin, or "autoattack" */
    char *eval_autoattack;     /* AutoAttack's version ("standard") when eval_attack is "autoattack"; else NULL */
    rb_grid_option *eval_attack_options; /* its KEY=VALUE words, in order */
    size_t n_eval_attack_options;
    char *eval_attack_text;    /* the value's words joined by one space, for messages */
    int eval_attack_line;
    int64_t eval_attack_per_class; /* 0: every test image */
} rb_grid_transfer;

typedef struct rb_grid_spec {
    char *path;                /* as given to rb_grid_spec_load ("what" for parse) */
    char *name;
    int threads;
    rb_precision precision;
    rb_conv_algorithm conv_algorithm;
    rb_tune_mode tune;         /* training kernels (robusta/tune.h; default cached) */
    char *cache;               /* [grid] cache: folder of the decoded images' cache files
                                  (--transform paper); NULL: in memory */
    rb_grid_arch *archs;       /* in file order */
    size_t n_archs;
    rb_grid_source source;
    rb_grid_target *targets;   /* in file order */
    size_t n_targets;
    rb_grid_transfer transfer;
} rb_grid_spec;

/* The settings one target's transfers train with: its own where its
 * section gives them, else [transfer]'s. */
typedef struct rb_grid_target_settings {
    int64_t epochs, batch_size;
    double lr_fixed, lr_full;
    const char *schedule;      /* NULL: the transfer command's default */
} rb_grid_target_settings;

RB_API rb_grid_target_settings rb_grid_target_settings_of(const rb_grid_spec *spec, size_t target);

/* Parses `size` bytes of grid file text (not necessarily NUL-terminated;
 * the text is copied) into a new spec, *out (free with
 * rb_grid_spec_destroy). `what` names the text in messages, usually its path
 * (NULL: "grid"). Nothing but memory is touched, so it can be fuzzed.
 * RB_ERR_INVALID_ARGUMENT with "WHAT:LINE: ..." (or "WHAT: ..." for
 * something missing) on the first mistake; *out is then NULL. */
RB_API rb_status rb_grid_spec_parse(const char *text, size_t size, const char *what, rb_grid_spec **out);

/* Reads the grid file at `path` (at most 1 MiB) and parses it.
 * RB_ERR_NOT_FOUND when it does not exist, RB_ERR_IO when it cannot be read,
 * else as rb_grid_spec_parse. */
RB_API rb_status rb_grid_spec_load(const char *path, rb_grid_spec **out);

/* Frees a spec and everything in it; NULL is accepted. */
RB_API void rb_grid_spec_destroy(rb_grid_spec *spec);

/* Parses one eps as written in a grid file: a decimal ("0.5", "1e-1", "0")
 * or a fraction of two decimals ("8/255", computed as 8.0 / 255 so that it
 * equals what C computes). Spaces around the numbers are ignored. Refuses,
 * with RB_ERR_INVALID_ARGUMENT and a one-line message quoting the text,
 * anything else: negatives, NaN, infinities, hexadecimal, trailing junk,
 * division by zero. */
RB_API rb_status rb_grid_parse_eps(const char *text, double *out);

/* One finished transfer run: one row of results.csv. */
typedef struct rb_grid_result {
    char arch[64];             /* arch section label */
    char eps_text[32];         /* source eps as written */
    double source_eps;
    uint64_t source_seed;
    double source_test_acc;    /* source model's clean test accuracy in [0,1]; NAN: unknown */
    double source_robust_acc;  /* NAN: not measured */
    char target[64];           /* target section label */
    char mode[8];              /* "fixed" or "full" */
    uint64_t transfer_seed;
    double target_acc;         /* the target's final test score in `metric`, [0,1]; NAN: rows are skipped by
                                  the reports */
    double seconds;            /* transfer wall time */
    char metric[32];           /* the task's primary metric that target_acc holds ("accuracy", "miou");
                                  empty reads as "accuracy" (rows made before metrics were named) */
    /* Robust target accuracy: the same metric on the test images (or the
     * class-balanced subset) attacked by [transfer] eval-attack. Measured
     * only when robust_attack is not empty (so a zeroed row has none);
     * NAN is skipped as for target_acc. */
    double target_robust_acc;
    char robust_attack[128];   /* the attack in full, defaults spelled out: "pgd-l2 steps=20 eps=1" */
} rb_grid_result;

/* How the reports name a metric: "miou" -> "mIoU", "ap" -> "AP", "ap50"
 * -> "AP50", "ap75" -> "AP75", "balanced_accuracy" -> "balanced accuracy",
 * "pixel_accuracy" -> "pixel accuracy", "" -> "accuracy"; any other name as
 * it is. The result is static or `metric` itself. */
RB_API const char *rb_grid_metric_label(const char *metric);

/* Writes rows as CSV to `path`, atomically (a crash leaves the old file).
 * The header row is
 *   arch,eps,source_eps,source_seed,source_test_acc,source_robust_acc,target,mode,transfer_seed,
 *   target_acc,seconds,metric,target_robust_acc,robust_attack
 * (one line; eps is eps_text; metric is the row's metric, "accuracy" for an
 * empty one; robust_attack is empty, and target_robust_acc too, where none
 * was measured); numbers are written with 10 significant digits (source_eps
 * with 17, so it reads back exactly) and NAN as an empty field. Fields are
 * never quoted: a label, eps text, metric or robust attack holding a comma,
 * a quote or a line break is refused (RB_ERR_INVALID_ARGUMENT), as is a mode
 * other than fixed or full. */
RB_API rb_status rb_grid_write_csv(const char *path, const rb_grid_result *rows, size_t n);

/* Reads a file written by rb_grid_write_csv into a new malloc'd array
 * (*rows, free it; NULL when *n is 0). Files of earlier versions still
 * report: a header ending at "seconds" (no metric column) is read with
 * metric "accuracy" in every row, one ending at "metric" with no robust
 * target accuracy. A wrong header,
 * a row with the wrong number of fields, a bad number, an over-long label or
 * metric, a metric holding a quote or an unknown mode is refused with
 * RB_ERR_CORRUPT and "PATH:LINE: ...". Blank lines are skipped. */
RB_API rb_status rb_grid_read_csv(const char *path, rb_grid_result **rows, size_t *n);

/* rb_grid_read_csv on `size` bytes of text (not necessarily NUL-terminated),
 * `what` naming it in messages (NULL: "results.csv"). Nothing but memory is
 * touched, so it can be fuzzed. */
RB_API rb_status rb_grid_parse_csv(const char *text, size_t size, const char *what, rb_grid_result **rows,
                                   size_t *n);

/* The results as a GitHub markdown table, in a new malloc'd string (*out,
 * free it). Columns: the row label, "source acc" (the source models' clean
 * test accuracy, mean ± sd over source seeds), "source robust acc" (the
 * same under the evaluation attack; only when some row has it) and one
 * column per target, in order of first appearance, headed by its label, and
 * by "label (METRIC)" when its metric is not accuracy ("scenes (mIoU)"),
 * each followed, where some row of the target has a robust target accuracy,
 * by a "label robust" column of it (the note names the attack).
 * Rows: for each arch (first appearance), each mode present (fixed, then
 * full), each eps of that arch (ascending): "r18 · fixed-feature · standard
 * (ε=0)" or "r18 · full-network · robust ε=0.5". A cell is the mean ±
 * sample standard deviation, in percent with one decimal, of target_acc over
 * the rows with that arch, mode, eps and target (source seeds × transfer
 * seeds): "78.3 ± 1.2", "78.3" for one run, "—" for none. The best mean (as
 * shown) of each arch, mode and target is bold when at least two eps have
 * runs. A note after the table gives n: one figure when every filled cell
 * has the same count, otherwise every filled cell ends with "(n=K)"; it
 * starts "Target test accuracy (%)", or, when some target has another
 * metric, "Target test score (%), accuracy or the metric its column names". No
 * rows: "_No results yet._". A target whose rows name different metrics is
 * refused (RB_ERR_INVALID_ARGUMENT, one line naming the target and two rows
 * that differ); so are the other reports. */
RB_API rb_status rb_grid_markdown(const rb_grid_result *rows, size_t n, char **out);

/* Which setting won and by how much, one line per arch, mode and target (in
 * the table's order), in a new malloc'd string (*out, free it):
 *   "r18, fixed-feature, fm59: robust ε=0.5 beats standard by +4.2 points
 *    (81.3 ± 1.0 vs 77.1 ± 1.5, 3 runs each) — larger than the seed spread"
 *   "r18, fixed-feature, fm59: standard beats the best robust (ε=0.25) by
 *    1.0 points (77.1 ± 1.5 vs 76.1 ± 0.8, 3 runs each) — within the seed
 *    spread"
 * For a target whose metric is not accuracy the points say what they are
 * ("beats standard by +4.2 points of mIoU", "by 1.0 points of mIoU"), and
 * a lone side's figure too ("standard: 60.0 ± 1.4 mIoU (2 runs)").
 * The best robust eps is the eps > 0 with the highest mean (the smallest eps
 * on a tie). The difference is "larger than the seed spread" when |Δ|
 * exceeds the sum of the two standard deviations and both have at least two
 * runs; with a single run on either side the line ends "single run, no
 * spread". A group without an eps 0 run or without an eps > 0 run says so.
 * A target with robust target accuracy gets a second line, on it:
 *   "r18, fixed-feature, fm59 under pgd-l2 steps=20 eps=1: the robust
 *    prior's robustness survived: robust ε=1 keeps 41.0 ± 2.0 robust
 *    accuracy vs standard's 3.0 ± 1.0 (+38.0 points, 3 runs each) — larger
 *    than the seed spread"
 * (the best robust eps by robust accuracy; "survived" when it is higher by
 * more than the spread, "did not clearly survive" when higher within it,
 * "did not survive" when not higher, and "a single run cannot tell" with a
 * single run on a side). Rows of one target under two attacks are refused,
 * as two metrics are. */
RB_API rb_status rb_grid_summary(const rb_grid_result *rows, size_t n, char **out);

/* Plots each target's metric against source eps as a standalone SVG file at
 * `path` (any name: the caller chooses it), written atomically. One panel
 * per target (420×300 px, side by side, titled with the target label); x:
 * source eps from 0 to the largest, ticks at the eps values labelled as
 * written; y: the target's metric in percent, titled "target accuracy (%)"
 * or "target mIoU (%)", with round ticks spanning mean ± sd; one
 * polyline per arch and mode ("r18 fixed") with a marker at each eps' mean
 * and an error bar of ± one sample standard deviation; where rows have
 * robust target accuracy, a dotted line of it per arch and mode, in the
 * same color with hollow markers; a legend and the main `title` (NULL:
 * none) above. Text is XML-escaped. */
RB_API rb_status rb_grid_write_svg(const char *path, const char *title, const rb_grid_result *rows, size_t n);

/* ------------------------------------------------------------ running */

/* How rb_grid_run runs a grid. */
typedef struct rb_grid_options {
    const rb_registry *registry; /* arch, attack and task plugins */
    const char *out_dir;         /* runs and reports go here (created) */
    int shard_index, shard_count;/* run source models shard_index, +shard_count, ... and
                                    their transfers; 0 and 0 or 1: all */
    bool report_only;            /* train nothing: collect finished results into the reports */
    bool quiet;                  /* no progress lines or bars */
    int threads;                 /* compute threads; -1: the grid file's */
} rb_grid_options;

/* What rb_grid_run did. */
typedef struct rb_grid_outcome {
    size_t runs_total;       /* source and transfer runs of the whole grid (every shard) */
    size_t transfers_total;  /* transfer runs of the whole grid */
    size_t results;          /* finished transfers found: the rows of results.csv */
    double seconds;          /* wall time of this call */
    char *table, *summary;   /* rb_grid_markdown and rb_grid_summary of the results (NULL: none);
                                free with rb_grid_outcome_free */
} rb_grid_outcome;

/* Runs a grid into options->out_dir:
 *   sources/ARCH-epsEPS-sSEED/          a `robusta train` run folder per source
 *                                       model (eps 0: standard; else adversarial
 *                                       training with [source] attack, eps and
 *                                       step size factor * eps / steps), and its
 *                                       result.json (test_acc, robust_acc,
 *                                       robust_eps, seconds; robust_examples: the
 *                                       test images attacked)
 *   transfers/SOURCE/TARGET-MODE-sSEED/ a `robusta transfer` run folder per
 *                                       transfer with the target's task and
 *                                       options, and result.json (task; metric:
 *                                       the task's primary metric; target_acc:
 *                                       its value in metrics.json; seconds;
 *                                       with eval-attack, on a classification
 *                                       target: robust_acc, robust_attack and
 *                                       robust_examples, the images attacked)
 *   results.csv, table.md, plot.svg     every finished transfer (of any shard),
 *                                       rewritten after each source model
 * ("/" and other characters unsafe in a file name become "_" in EPS.) A run
 * with a result.json is skipped; one with a last.rbt but no result.json (it
 * was stopped) resumes; so running a killed grid again finishes it, and
 * loses no finished result. Every [arch] section's options, and every
 * [target]'s task and task options, are checked against their plugins (file
 * and line in the message) before anything trains; so is each task's
 * primary metric (at most 31 characters, no comma or quote: it goes into
 * results.csv). A finished transfer whose result.json names another metric
 * than its target's task reports (the target's task was changed after it
 * ran; a result.json without "metric" is an accuracy) is refused with one
 * line naming the folder, rather than reported under the wrong metric; so
 * is a stopped transfer (last.rbt, no result.json) whose config.json names
 * another task than its target's, which would resume with the old task. A
 * task metric outside [0, 1], or missing from metrics.json, is refused too.
 * rb_train_request_stop (Ctrl-C, SIGTERM, SIGHUP) stops at the next batch
 * with RB_ERR_INTERRUPTED.
 *
 * [transfer] eval-attack is checked against its plugin before anything
 * trains too. A finished transfer whose result.json has no robust accuracy
 * under the grid's eval-attack (it ran before the key was added, or under
 * another attack) is evaluated when the grid runs again, without training;
 * the reports carry only robust accuracies measured under the grid's
 * eval-attack. */
RB_API rb_status rb_grid_run(const rb_grid_spec *spec, const rb_grid_options *options, rb_grid_outcome *outcome);
/* Frees an outcome's strings; NULL is accepted. */
RB_API void rb_grid_outcome_free(rb_grid_outcome *outcome);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_GRID_H */
