/* Shared between the files of training (train_config.c, train_setup.c,
 * transfer_setup.c, train_loop.c, train_resume.c, evaluate.c); internal to
 * the library (hidden by -fvisibility=hidden). robusta/train.h is the API. */
#ifndef ROBUSTA_EXPERIMENT_TRAIN_INTERNAL_H
#define ROBUSTA_EXPERIMENT_TRAIN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include <robusta/robusta.h>
#include <robusta/train.h>

#include "experiment/run_dir.h"

/* A growing text buffer (the logs kept in memory). */
typedef struct text {
    char *data;
    size_t len, cap;
} text;

/* An attack to evaluate under (NULL plugin: clean only). */
typedef struct eval_attack {
    const rb_plugin *plugin;
    const rb_params *params;
    const rb_attack_options *options;
    /* an ensemble instead (plugin NULL): rb_attacker_run_stages */
    const rb_attack_stage *stages;
    size_t stage_count;
} eval_attack;

/* A training run: its configuration and everything made for it. */
typedef struct run {
    rb_train_config cfg;
    bool has_test;
    rb_split *train, *test;
    rb_model *model;
    rb_engine *engine, *eval_engine;
    rb_plan *plan;           /* the training engine's kernels (robusta/tune.h): followed, and filled */
    rb_sgd *sgd;
    rb_loader *loader;
    rb_schedule schedule;
    int64_t epoch;      /* completed epochs */
    double best_acc;
    int64_t best_epoch;
    text csv, jsonl;
    rb_scorer *scorer;       /* scores the training batches */
    /* adversarial training */
    rb_engine *adv_engine;   /* inference engine of batch_size on the same graph */
    rb_attacker *attacker;   /* its attack buffers, made once */
    float *adv_x;            /* the attacked batch */
    rb_params *attack_params;/* owned copy of the plugin's parameters (eps set per epoch) */
    double eps;              /* the full eps (warm-up) */
    /* transfer */
    rb_model *source;        /* the source model, until the transfer model has its weights */
    rb_model *full;          /* with cached features: the whole model, while `model` is its head */
    rb_split *image_train, *image_test; /* with cached features: the image splits */
    char default_schedule[64]; /* transfer's default schedule, when none is given */
    char *metrics_json;      /* the task's metrics from the last evaluation, for metrics.json */
    /* data parallelism over the job's ranks (robusta/dist.h) */
    rb_grad_sync *grad_sync; /* NULL in a lone process */
    int64_t local_batch;     /* this rank's share of every batch */
    bool writer;             /* rank 0: writes the run folder, logs and progress */
    bool check_ranks;        /* RB_DIST_CHECK: compare the ranks' models after every step */
    /* the run folder (run_dir.h) */
    int lock_fd;             /* its lock, held for the run's life (-1: none) */
    char run_id[RB_RUN_ID_LEN + 1]; /* in config.json and every checkpoint */
} run;


/* DIR/NAME into out. */
static inline void path_in(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

/* ------------------------------------------------------------ train_loop.c */

/* Appends printf-formatted text. */
rb_status train_text_append(text *t, const char *fmt, ...) RB_PRINTF(2, 3);
/* log.csv's header, without and with adversarial training. */
extern const char train_csv_header[];
extern const char train_csv_header_adv[];
/* Runs the epochs from r->epoch to the configured total. */
rb_status train_epochs(run *r, rb_train_result *res);

/* ------------------------------------------------------------ train_config.c */

/* rb_error_set(RB_ERR_INVALID_ARGUMENT, ...). */
rb_status train_invalid(const char *fmt, ...) RB_PRINTF(1, 2);
/* A JSON string, or NULL (null) for NULL. */
json_object *train_json_str_or_null(const char *s);
/* config.json of a run. */
rb_status train_write_config(const rb_train_config *c, const char *run_id, const rb_plan *plan, const char *path);
/* A plan as config.json's "plan" holds it: {"machine": M, "choices": {KEY: CHOICE, ...}}. */
json_object *train_plan_to_json(const rb_plan *plan);
/* config.json's "plan" into `plan` (none: left empty). */
rb_status train_read_plan(json_object *root, const char *file, rb_plan *plan);
/* Members of a JSON object: a string (NULL: missing or not a string), its
 * presence with a type (an integer passes for a double), an integer, a
 * double. */
const char *train_jstr(json_object *o, const char *key);
bool train_jhas(json_object *o, const char *key, json_type type);
int64_t train_jint(json_object *o, const char *key);
double train_jdouble(json_object *o, const char *key);
/* The training options of config.json (`root`, read from `file`) into c. */
rb_status train_read_config(json_object *root, const char *file, rb_train_config *c);
/* The transfer settings of a transfer run's config.json (none: training);
 * *params gets the task's parameters (destroy them after the run). */
rb_status train_read_transfer(const rb_registry *reg, json_object *root, const char *file, rb_train_config *c,
                              rb_params **params);
/* The attack of an adversarial run's config.json (none: standard training);
 * *params gets the attack's parameters (destroy them after the run). */
rb_status train_read_attack(const rb_registry *reg, json_object *root, const char *file, rb_train_config *c,
                            rb_params **params);

/* ------------------------------------------------------------ evaluate.c */

/* Evaluates with an engine already planned (its batch is the batch); with an
 * attack, robust metrics too. */
rb_status train_evaluate_with(rb_engine *engine, rb_model *model, const rb_split *split, const eval_attack *atk,
                              rb_eval_result *out);

/* Where an evaluation hands each batch's decoded predictions (infer.c):
 * rows [first, first + rows) of the split. */
typedef struct eval_sink {
    rb_status (*write)(void *user, const rb_split *split, int64_t first, int64_t rows, const rb_predictions *p);
    void *user;
} eval_sink;

/* train_evaluate_with, each batch's predictions also given to `sink` (NULL: none). */
rb_status train_evaluate_into(rb_engine *engine, rb_model *model, const rb_split *split, const eval_attack *atk,
                              const eval_sink *sink, rb_eval_result *out);
/* The same on an engine of `batch` planned here with `options` (NULL: defaults). */
rb_status train_evaluate_model(rb_model *model, const rb_split *split, int64_t batch,
                               const rb_engine_options *options, const eval_attack *atk, const eval_sink *sink,
                               rb_eval_result *out);
/* The split has the targets `task` reads (masks, boxes); NULL: nothing to check. */
rb_status train_check_task_targets(const rb_plugin *task, const rb_split *split);
/* The split has the targets the model's task reads (masks, boxes). */
rb_status train_check_targets(const rb_model *model, const rb_split *split);
/* Refuses an attack on a model whose task is not classification. */
rb_status train_check_attackable(const rb_model *model, const char *what);
/* The split's images and classes fit the model, and it is not empty. */
rb_status train_check_eval_shapes(const rb_model *model, const rb_split *split);

/* ------------------------------------------------------------ train_setup.c */

/* The training and test splits of r->cfg.data. */
rb_status train_open_splits(run *r);
/* Data with one class, and what cannot fit in memory, refused before any
 * work that grows with the images. */
rb_status train_check_fits(run *r);
/* A new model of the architecture (or the transfer model), initialized. */
rb_status train_create_model(run *r);
/* The loader, engines, attack buffers and optimizer of a run. */
rb_status train_setup(run *r);
/* Frees everything of a run and releases its folder's lock. */
void train_run_free(run *r);

/* ------------------------------------------------------------ transfer_setup.c */

/* Loads a transfer's source model (r->source). */
rb_status train_load_source(run *r);
/* The transfer model: the source's backbone with the task's new head. */
rb_status train_create_transfer_model(run *r);
/* Fixed-feature mode: the frozen backbone, and the feature cache where it applies. */
rb_status train_prepare_transfer(run *r);
/* The whole model (with cached features: the head's weights copied in). */
rb_status train_whole_model(run *r, rb_model **out);

#endif /* ROBUSTA_EXPERIMENT_TRAIN_INTERNAL_H */
