/* robusta/train.h: training a classifier on a dataset, and evaluating one.
 *
 * rb_train runs standard (non-adversarial) training of an arch plugin's
 * model on a dataset split with SGD, writing into the run folder:
 *
 *   config.json   every option of the run (rb_train_config), enough to rerun
 *                 it or to resume it (rb_train_resume)
 *   last.rbt      after every epoch: the model plus the training state (see
 *                 below); written once before the first epoch too, so that
 *                 a run stopped early can always be resumed
 *   best.rbt      the model of the epoch with the best test accuracy so far
 *   model.rbt     the final model, when every epoch is done
 *   log.csv       one row per epoch: epoch, lr, train_loss, train_acc,
 *   log.jsonl     test_loss, test_acc, seconds, images_per_second (the same
 *                 members in JSON lines); both rewritten atomically each
 *                 epoch, before the checkpoints
 *   .lock         while a process writes the folder: locked (flock) by it,
 *                 with its PID; a second rb_train / rb_train_resume on the
 *                 folder fails naming that PID
 *
 * Every file is written atomically (temporary file NAME.tmp.XXXXXX, fsync,
 * rename), so a crash leaves the previous version; the temporary files a
 * killed process leaves are removed when the run starts or resumes. The
 * logs are written before last.rbt, so a kill leaves them at most one row
 * ahead of it. config.json and every checkpoint's "training" metadata
 * carry the run's "run_id" (128 random bits in hex): resuming refuses a
 * last.rbt of another run (checkpoints from before run ids are accepted).
 * On resume the logs keep their rows up to last.rbt's epoch: rows past it
 * are dropped (those epochs are redone) and missing ones named, each with a
 * warning; a missing log starts afresh with a warning; a log that is not
 * this run's (another header, a row that does not parse, epochs out of
 * order) is refused, naming the file and line.
 *
 * The model's input is the data as it comes out of the split (its channels
 * and size, after --channels / --image-size), and its normalization is the
 * per-channel mean and standard deviation of the training split's pixels
 * (after class selection and resizing, without augmentation), computed once
 * when a run starts and stored in the model; a channel with zero deviation
 * gets std 1. The number of classes is the split's, unless the arch
 * parameters set num-classes explicitly.
 *
 * Training uses an engine planned for batch_size and drops the last partial
 * batch of each epoch; evaluation uses an engine of eval_batch_size (at most
 * the split's size) and pads the last batch with zero images whose rows are
 * ignored (inference mode makes examples independent).
 *
 * Training state in last.rbt: the metadata member "training" holds
 * {"epoch": completed epochs, "sgd_steps", "schedule", "seed", "lr",
 * "momentum", "weight_decay", "nesterov", "batch_size", "best_test_acc",
 * "best_epoch"}, and the momentum buffer of each trainable parameter is the
 * tensor "state.momentum.<parameter name>". Random numbers (shuffling,
 * augmentation) are keyed by (seed, epoch), so nothing else is needed:
 * resuming with the same thread count gives the same weights bit for bit as
 * a run that was never stopped. Changing the number of epochs on resume
 * keeps that promise only for schedules that do not depend on the total
 * (constant, step, multistep): cosine's period is the total number of epochs.
 *
 * Safety: after every step the loss and every gradient are checked; a NaN or
 * Inf stops the run with RB_ERR_NUMERIC naming the epoch, the batch and the
 * first offending parameter, leaving last.rbt and best.rbt as they were
 * (the last good state). rb_train_request_stop (async-signal-safe, for a
 * SIGINT, SIGTERM or SIGHUP handler) makes the run stop at the next batch
 * boundary with RB_ERR_INTERRUPTED, leaving last.rbt and the logs at the
 * last completed epoch; rb_train_stop_signal then says which signal asked.
 *
 * Adversarial training (Madry et al.), when config->adversarial.attack is set: every
 * training batch is first attacked with rb_attack_run on a second engine of
 * the training batch size, planned on the same graph in inference mode (it
 * reads the weights the SGD steps write), with the attack options and
 * first_example = the batch's position in the run ((epoch * batches + batch)
 * * batch_size, so random starts differ between batches and epochs); then
 * the SGD step is taken on the adversarial batch in training mode.
 * eps_warmup E > 0 ramps the plugin's "eps" linearly: epoch e (1-based) uses
 * eps * min(1, (e - 1) / E), so the first epoch trains on clean images and
 * epochs after E use the full eps (robust test accuracy always uses it).
 * The logs then add two columns: adv_train_acc (accuracy of the training
 * steps on the adversarial batches; train_loss is their loss, train_acc the
 * clean batches' accuracy in inference mode before the attack) and
 * robust_test_acc (rb_evaluate_robust on the test split with the full eps,
 * every eval_every epochs and at the last one; empty / null otherwise).
 * best.rbt is then the model of the best robust test accuracy, and
 * best_test_acc / best_epoch in the training state refer to it. The attack's
 * name, its given parameters and options are in config.json ("attack",
 * "attack_options", "attack_steps", "attack_restarts", "attack_random_start",
 * "attack_keep_best", "attack_seed", "eps_warmup", "eval_every") and in the
 * checkpoints' "training" metadata ("attack": {"name", "params", "steps",
 * "restarts", "random_start", "keep_best", "seed", "eps_warmup",
 * "eval_every"}); rb_train_resume restores them from config.json.
 *
 * Evaluation cadence: with eval_every N > 1 the test split is evaluated
 * (and attacked, when training adversarially) after every N-th epoch and
 * after the last only; the other epochs leave the test columns empty (null
 * in log.jsonl), and best.rbt is chosen among the evaluated epochs.
 *
 * Transfer (Salman et al. 2020, robusta transfer), when config->transfer.source is
 * set: the source model's backbone (its arch, parameters, normalization and
 * weights) gets config->transfer.task's head in place of its classifier
 * (rb_model_create_with_head), sized for the target split's classes (at
 * least 2) and initialized from config->seed; every backbone tensor comes
 * from the source. Target images are converted to the source's channels
 * (grayscale replicated) unless --channels says otherwise, and keep their
 * own size (the backbone is convolutional) unless --image-size is given.
 *   full-network (fixed_features false): every parameter trains, batch-norm
 *       in training mode, as in rb_train.
 *   fixed-feature: the backbone is frozen (rb_graph_freeze_through) and its
 *       batch-norm stays in inference mode (rb_graph_freeze_statistics_through);
 *       only the head trains, a head's own batch-norm (segment's) in
 *       training mode. With
 *       bn_update the backbone's batch-norm runs in training mode instead,
 *       so its running statistics keep moving, as the reference code's
 *       model.train() did (the weights stay frozen).
 *   Feature cache: in fixed-feature mode with batch-norm frozen and no
 *       augmentation, the backbone is a fixed function of each image, so
 *       what the head reads of it (the pooled features, or the stage or
 *       stages the task reads, rb_model_head_inputs) is computed once for both
 *       splits (inference engine) into a feature-map split
 *       (rb_split_create_feature_maps), and each epoch trains the head
 *       alone (rb_model_head_create) on it, with the same shuffling,
 *       initialization and SGD as without the cache: with an f32 cache the
 *       head weights agree with the uncached run's to rounding.
 *       feature_cache says how the cache is kept (rb_feature_cache: f32,
 *       bf16 at half the memory, or off). Before extracting, one INFO line
 *       gives its size, count × C·H·W (summed over the stages) × 4 (f32)
 *       or 2 (bf16) bytes for the
 *       two splits together; a cache larger than feature_cache_limit bytes
 *       (0: the machine's memory, rb_machine_memory_bytes, less the
 *       images already loaded) is refused with RB_ERR_OUT_OF_MEMORY and one
 *       line naming the options that help, before anything is computed.
 *       bn_update and augment run the backbone every step instead, each
 *       saying why in one INFO line. Test accuracy during training and
 *       metrics.json are then computed on the cached features (so on
 *       bf16-rounded ones with a bf16 cache); model.rbt is the whole model.
 * Checkpoints hold the whole model (backbone and head) and its "training"
 * metadata adds "transfer": {"source", "task", "mode", "bn_stats",
 * "feature_cache" (true when the head trained on cached features),
 * "feature_cache_dtype" ("f32", "bf16"; null without a cache)};
 * config.json has "command": "transfer" and "source", "task",
 * "task_options", "mode", "bn_stats", "feature_cache" ("f32", "bf16",
 * "off") and "feature_cache_limit" (bytes); a config.json of an earlier
 * version with "no_feature_cache" (a boolean) instead still resumes. After
 * the last epoch the task's own metrics on the test split are written to
 * metrics.json ({"accuracy": ..., "balanced_accuracy": ..., ...}).
 * rb_train_resume continues a transfer run from last.rbt, without needing
 * the source file again.
 */
#ifndef ROBUSTA_TRAIN_H
#define ROBUSTA_TRAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <robusta/attack.h>
#include <robusta/data.h>
#include <robusta/engine.h>
#include <robusta/model.h>
#include <robusta/params.h>
#include <robusta/plugin.h>
#include <robusta/registry.h>
#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How fixed-feature transfer keeps the backbone's outputs (see "Feature
 * cache" above). Zero is the default. */
typedef enum rb_feature_cache {
    RB_FEATURE_CACHE_F32 = 0,  /* computed once, kept as float32 */
    RB_FEATURE_CACHE_BF16 = 1, /* computed once, kept as bfloat16: half the memory, each value
                                  rounded to 8 significant bits (2^-8 relative at most) */
    RB_FEATURE_CACHE_OFF = 2   /* no cache: the frozen backbone runs at every step */
} rb_feature_cache;

/* "f32", "bf16", "off"; "unknown" otherwise. */
RB_API const char *rb_feature_cache_str(rb_feature_cache cache);
/* The inverse of rb_feature_cache_str; anything else is
 * RB_ERR_INVALID_ARGUMENT with one line naming --feature-cache. */
RB_API rb_status rb_feature_cache_parse(const char *text, rb_feature_cache *out);

/* How the weights are fitted: SGD, its schedule, the epochs and batches. */
typedef struct rb_training_options {
    int64_t epochs;              /* total epochs, >= 1 */
    int64_t batch_size;          /* training batch (the last partial batch of an epoch is dropped) */
    int64_t eval_batch_size;     /* evaluation (and feature extraction) batch */
    double lr, momentum, weight_decay;
    bool nesterov;
    const char *schedule;        /* rb_schedule_parse text ("constant", "cosine+warmup:1"); NULL: "constant"
                                    when training from scratch, "step:S:0.1" with S = epochs / 3 (at least 1)
                                    for transfer */
    int64_t eval_every;          /* test (and robust test) accuracy every this many epochs and at the
                                    last (0 or 1: every epoch) */
    bool sync_bn;                /* in a job of several ranks: batch-norm statistics over the job's whole
                                    batch, not each rank's share (rb_engine_options.sync_bn_batch);
                                    no effect in one process, whose batch is whole */
    double bucket_mib;           /* in a job of several ranks: the gradient buckets' size, MiB (0: 4;
                                    robusta/grad_sync.h); a speed setting, results do not change */
} rb_training_options;

/* Adversarial training (see "Adversarial training" above); attack NULL:
 * standard training. */
typedef struct rb_adversarial_options {
    const char *attack_name;     /* as typed, for config.json (NULL: attack->name) */
    const rb_plugin *attack;     /* an attack plugin, or NULL */
    const rb_params *attack_params; /* its parameters (NULL: defaults); the given ones are recorded */
    rb_attack_options attack_options; /* steps, restarts, random_start, keep_best, seed (target must be untargeted) */
    double eps_warmup;           /* epochs over which the plugin's eps ramps from 0 (0: none) */
} rb_adversarial_options;

/* Transfer (see "Transfer" above) when source is set; the configuration's
 * arch and arch_params are then ignored (the source's are used). */
typedef struct rb_transfer_options {
    const char *source;          /* the source model (.rbt), or NULL */
    const rb_registry *registry; /* finds the source's arch plugin */
    const char *task_name;       /* as typed, for config.json (NULL: task->name) */
    const rb_plugin *task;       /* the task plugin whose head replaces the source classifier */
    const rb_params *task_params;/* its parameters (NULL: defaults) */
    bool fixed_features;         /* fixed-feature: freeze the backbone; false: full-network */
    bool bn_update;              /* fixed-feature: batch-norm statistics keep updating (the paper's code) */
    rb_feature_cache feature_cache; /* fixed-feature: how features are cached (zero: f32; OFF: the backbone
                                       runs every step) */
    uint64_t feature_cache_limit;/* bytes the cache may take (0: the machine's memory less the loaded images) */
} rb_transfer_options;

/* Everything a training run needs: the data and the run at the top level,
 * then the three parts. Strings are borrowed for the call. Start from
 * rb_train_config_default() and set what differs:
 *
 *     rb_train_config c = rb_train_config_default();
 *     c.arch = resnet; c.arch_params = p; c.data = "cifar10:data"; c.out_dir = "runs/a";
 *     c.training.epochs = 30;
 *
 * config.json (see the top of this header) keeps its flat member names:
 * "epochs", "attack_options", "task_options"... */
typedef struct rb_train_config {
    const char *arch_name;       /* as the user typed it ("resnet18"), for config.json */
    const rb_plugin *arch;       /* the arch plugin */
    const rb_params *arch_params;/* its parameters; the explicitly given ones are recorded */
    const char *data;            /* dataset spec (robusta/data.h) */
    const char *out_dir;         /* run folder, created if missing */
    uint64_t seed;               /* weights, shuffling, augmentation, per-class selection */
    int threads;                 /* compute threads (0: every core of the NUMA node) */
    int loader_threads;          /* batch-making threads (0: on the training thread) */
    rb_precision precision;      /* engine arithmetic (robusta/engine.h; zero: fp32); kept on resume */
    rb_conv_algorithm conv_algorithm; /* (robusta/engine.h; zero: Winograd where it fits); kept on resume */
    rb_tune_mode tune;           /* kernels by measurement (robusta/tune.h); the plan is kept on resume */
    const char *classes;         /* class list (rb_split_options), NULL: all */
    int64_t per_class;           /* examples per class, 0: all */
    int image_size;              /* 0: the stored size */
    int channels;                /* 0: the data's own (transfer: the source model's); 3: grayscale replicated */
    rb_transform transform;      /* how image files become examples (robusta/data.h); kept on resume */
    const char *cache_dir;       /* the paper's transform: folder of the decoded images' cache; NULL: memory */
    bool augment;                /* the dataset kind's usual augmentation (rb_augment_defaults) */
    bool quiet;                  /* no progress bar or per-epoch lines */
    bool force;                  /* start over in a folder that holds a run (its checkpoints are removed) */
    rb_training_options training;
    rb_adversarial_options adversarial;
    rb_transfer_options transfer;
} rb_train_config;

/* A configuration holding the defaults of `robusta train`, all but what a
 * run must be told (arch, arch_params, data, out_dir: NULL):
 *   seed 0, threads 0 (every core of the NUMA node), loader_threads 1,
 *   precision fp32, conv_algorithm Winograd, tune cached, every class and example at the
 *   stored size and channels, augment true, quiet false, force false;
 *   training: epochs 10, batch_size 128, eval_batch_size 256, lr 0.1,
 *   momentum 0.9, weight_decay 5e-4, nesterov false, schedule NULL (see
 *   rb_training_options), eval_every 1, sync_bn false, bucket_mib 0 (4 MiB);
 *   adversarial: no attack; attack_options rb_attack_options_default()
 *   (10 steps, 1 restart, untargeted), eps_warmup 0;
 *   transfer: no source; fixed_features true, bn_update false, feature_cache
 *   f32, feature_cache_limit 0.
 * `robusta transfer` starts from it too and changes epochs to 30,
 * batch_size to 64, lr to 0.01 (fixed-feature) or 0.001 (full-network) and
 * augment to false. */
RB_API rb_train_config rb_train_config_default(void);

/* What a run did. */
typedef struct rb_train_result {
    int64_t epochs_done;         /* completed epochs, resumed ones included */
    double train_loss, train_acc;/* last epoch (accuracies in [0, 1]) */
    double test_loss, test_acc;
    double best_test_acc;
    int64_t best_epoch;          /* 1-based, 0: none */
    double seconds_per_epoch;    /* mean over the epochs of this call */
    double adv_train_acc;        /* adversarial training: last epoch's accuracy on the adversarial batches */
    double robust_test_acc;      /* adversarial training: last robust test accuracy measured (NAN: none) */
    char metric[32];             /* what train_acc, test_acc and best_test_acc hold: the task's
                                    primary metric ("accuracy"; "miou" for segment) */
} rb_train_result;

/* Checks a configuration without touching any file: values in range, the
 * schedule text, the dataset spec. RB_ERR_INVALID_ARGUMENT naming the option. */
RB_API rb_status rb_train_config_check(const rb_train_config *config);

/* Trains from scratch into config->out_dir (see the top of this header). */
RB_API rb_status rb_train(const rb_train_config *config, rb_train_result *result);

/* Continues the run in `dir` from its config.json and last.rbt. epochs > 0
 * replaces the total number of epochs; threads >= 0 the compute threads.
 * The run's engines follow the plan its config.json records (the kernels
 * tuning chose), so that it continues bit for bit. A plan measured on
 * another machine (another CPU, ISA, oneDNN or thread count) is followed
 * where it can run here, with one warning that results will differ from
 * the original run's; strict_plan refuses instead (RB_ERR_UNSUPPORTED). */
RB_API rb_status rb_train_resume(const rb_registry *registry, const char *dir, int64_t epochs, int threads,
                                 bool strict_plan, bool quiet, rb_train_result *result);

/* Asks a running rb_train / rb_train_resume to stop at the next batch
 * boundary; safe to call from a signal handler. signo is the signal that
 * asked (SIGINT, SIGTERM ...; 0: not a signal): the run's message names it
 * and rb_train_stop_signal returns it. */
RB_API void rb_train_request_stop(int signo);
/* The signal of the pending stop request (0: none, or not a signal), so
 * that a command can exit with 128 + it. */
RB_API int rb_train_stop_signal(void);
/* Clears a pending request (before starting a run). */
RB_API void rb_train_clear_stop(void);

/* ------------------------------------------------------------ evaluation */

/* One metric of an evaluation, named as its task names it. */
typedef struct rb_eval_metric {
    char name[64];
    double value;
} rb_eval_metric;

typedef struct rb_eval_result {
    int64_t count;          /* examples */
    int64_t correct;        /* classification: right predictions (accuracy x count) */
    double accuracy;        /* the task's primary metric: accuracy for classification, correct / count */
    double mean_loss;       /* mean of the task's per-example loss */
    int64_t classes;        /* entries in the arrays below */
    int64_t *class_count;   /* examples of each class (by the split's labels) */
    int64_t *class_correct; /* classification: the right ones of each class, else 0 */
    /* Every metric the task's finalize reported on the clean images
     * (robusta/task.h; classify: accuracy, balanced_accuracy,
     * class_accuracy.K), and on the attacked ones (rb_evaluate_robust). */
    const char *score_name; /* the task's primary metric (static) */
    size_t metric_count;
    rb_eval_metric *metrics;
    size_t robust_metric_count;
    rb_eval_metric *robust_metrics;
    /* rb_evaluate_robust only (robust false and the rest zero otherwise): */
    bool robust;
    int64_t robust_correct;       /* examples whose attacked image is still classified right */
    double robust_accuracy;       /* the primary metric on the attacked images */
    int64_t *class_robust_correct;/* per class */
    /* rb_evaluate_stages only: the examples each stage fooled, in order
     * (stage_count values); after stage k, correct - (stage_fooled[0] +
     * ... + stage_fooled[k]) examples remain correctly classified. */
    size_t stage_count;
    int64_t *stage_fooled;
} rb_eval_result;

/* Runs `model` in inference mode over every example of `split` in order,
 * scores its outputs with its task (robusta/task.h: decode, then the
 * task's metrics against the split's targets),
 * on an engine of `batch` examples (at most the split's size; the last
 * batch is padded with zeros and the padded rows ignored) with `engine`'s
 * threads and precision (NULL: the defaults; it is always planned
 * data_grads_only). The split's
 * classes must not exceed the model's. Free the result with
 * rb_eval_result_free. */
RB_API rb_status rb_evaluate(rb_model *model, const rb_split *split, int64_t batch,
                             const rb_engine_options *engine, rb_eval_result *out);
RB_API void rb_eval_result_free(rb_eval_result *result);

/* rb_evaluate_robust with an ensemble (robusta/attack.h,
 * rb_attacker_run_stages; AutoAttack: robusta/autoattack.h): every batch
 * goes through the stages in order, each attacking what the earlier left
 * correctly classified; robust metrics are those of the final images, and
 * stage_fooled counts what each stage fooled. */
RB_API rb_status rb_evaluate_stages(rb_model *model, const rb_split *split, int64_t batch,
                                    const rb_engine_options *engine, const rb_attack_stage *stages,
                                    size_t stage_count, rb_eval_result *out);

/* rb_evaluate that also writes what the model predicts for each example
 * into folder `dir` (made if absent; files of the same names replaced,
 * each written whole or not at all):
 *   masks (segmentation)   NAME.png per example: class indices as an 8-bit
 *                          palette PNG in Pascal VOC's colours, at the
 *                          example's size in its files
 *                          (rb_split_example_source_size), resized from
 *                          the model's output by nearest neighbour;
 *   labels (classification) predictions.csv: image,label,predicted.
 * NAME is rb_split_example_name, or the example's index as 000042 for
 * datasets without names. For a detector (a task of RB_DATASET_DETECTION)
 * `dir` is instead the file to write, in COCO's results format: a JSON
 * array of {"image_id", "category_id", "bbox": [x, y, w, h], "score"} per
 * detection, in the pixels of the image's file (boxes scaled back from the
 * model's input size), with the dataset's image and category ids
 * (rb_split_example_source_id, rb_split_class_source_id; coco: the
 * annotation file's), so that robusta coco-eval (robusta/coco.h) scores it
 * against that file. The metrics against the split's targets come back in
 * *out as from rb_evaluate. */
RB_API rb_status rb_infer_split(rb_model *model, const rb_split *split, int64_t batch,
                                const rb_engine_options *engine, const char *dir, rb_eval_result *out);

/* rb_evaluate plus robust accuracy: each batch of clean images is attacked
 * with rb_attack_run (plugin, params, options; options->first_example is
 * replaced by each example's index in the split, so results do not depend on
 * `batch`), the adversarial images are classified by the same inference
 * engine, and robust_correct / class_robust_correct count the right ones.
 * The clean members are exactly rb_evaluate's. Attacks need labels and a
 * classification task; a dense task is refused with one line. */
RB_API rb_status rb_evaluate_robust(rb_model *model, const rb_split *split, int64_t batch,
                                    const rb_engine_options *engine,
                                    const rb_plugin *plugin, const rb_params *params,
                                    const rb_attack_options *options, rb_eval_result *out);

/* Opens split `which` of dataset `data` in the geometry `model` takes: the
 * model's image size (bilinear resize when the stored size differs, or the
 * crop size of the paper's transform) and channels (grayscale replicated
 * when the model takes 3), keeping options->classes relabelled as training
 * did, with options->transform and options->cache_dir; the other fields of
 * `options` (NULL: none) are set here. */
RB_API rb_status rb_eval_open_split(const rb_model *model, const char *data, rb_split_which which,
                                    const rb_split_options *options, rb_split **out);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_TRAIN_H */
