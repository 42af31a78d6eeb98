/* The training run: rb_train's set-up of the run folder, the epoch loop
 * (steps, evaluation cadence, logs, checkpoints) and the stop request; see
 * robusta/train.h. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "experiment/train_internal.h"
#include "runtime/params_json.h"
#include "sys/internal.h"
#include "sys/json.h"

/* A stop request, and the signal that made it (0: none, or not a signal). */
static volatile sig_atomic_t stop_requested, stop_signal;

void rb_train_request_stop(int signo)
{
    stop_signal = signo > 0 ? signo : 0;
    stop_requested = 1;
}
void rb_train_clear_stop(void) { stop_requested = stop_signal = 0; }
int rb_train_stop_signal(void) { return stop_requested ? stop_signal : 0; }

/* "SIGTERM" for the signals that stop a run, "a stop request" otherwise. */
static const char *stop_cause(char *buf, size_t size)
{
    int sig = stop_signal;
    if (sig == SIGINT)
        return "SIGINT (Ctrl-C)";
    if (sig == SIGTERM)
        return "SIGTERM";
    if (sig == SIGHUP)
        return "SIGHUP";
    if (sig > 0)
        snprintf(buf, size, "signal %d", sig);
    else
        snprintf(buf, size, "a stop request");
    return buf;
}

rb_status train_text_append(text *t, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return rb_error_set(RB_ERR_INTERNAL, "formatting a log line failed");
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = (t->cap ? t->cap * 2 : 1024) + (size_t)n;
        char *d = realloc(t->data, cap);
        if (d == NULL)
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for the training log");
        t->data = d;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
    return RB_OK;
}

static json_object *attack_json(const run *r);

/* The checkpoint of the model with the training metadata; with_state adds
 * the momentum buffers. */
static rb_status write_checkpoint(run *r, const char *path, bool with_state);

/* Rank 0 writes. The callers then wait at a barrier that every rank
 * reaches (rank 0 alone decides on best.rbt), so no rank goes on before
 * the files are complete. */
static rb_status save_checkpoint(run *r, const char *path, bool with_state)
{
    return r->writer ? write_checkpoint(r, path, with_state) : RB_OK;
}

static rb_status write_checkpoint(run *r, const char *path, bool with_state)
{
    rb_checkpoint *ck = NULL;
    json_object *meta = NULL, *tr;
    rb_graph *g = rb_model_graph(r->model);
    rb_model *whole;
    char buf[64];
    rb_status s = train_whole_model(r, &whole);
    if (s == RB_OK)
        s = rb_model_to_checkpoint(whole, &ck);
    if (s == RB_OK && (meta = json_tokener_parse(rb_checkpoint_metadata(ck))) == NULL)
        s = rb_error_set(RB_ERR_INTERNAL, "the model's metadata is not JSON");
    if (s == RB_OK) {
        tr = json_object_new_object();
        json_object_object_add(tr, "run_id", json_object_new_string(r->run_id));
        json_object_object_add(tr, "epoch", json_object_new_int64(r->epoch));
        json_object_object_add(tr, "epochs", json_object_new_int64(r->cfg.training.epochs));
        json_object_object_add(tr, "sgd_steps", json_object_new_int64(rb_sgd_steps(r->sgd)));
        json_object_object_add(tr, "schedule", json_object_new_string(r->cfg.training.schedule));
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)r->cfg.seed);
        json_object_object_add(tr, "seed", json_object_new_string(buf));
        json_object_object_add(tr, "lr", rb_json_number(r->cfg.training.lr));
        json_object_object_add(tr, "momentum", rb_json_number(r->cfg.training.momentum));
        json_object_object_add(tr, "weight_decay", rb_json_number(r->cfg.training.weight_decay));
        json_object_object_add(tr, "nesterov", json_object_new_boolean(r->cfg.training.nesterov));
        json_object_object_add(tr, "batch_size", json_object_new_int64(r->cfg.training.batch_size));
        json_object_object_add(tr, "data", json_object_new_string(r->cfg.data));
        json_object_object_add(tr, "classes", train_json_str_or_null(r->cfg.classes));
        json_object_object_add(tr, "transform", json_object_new_string(rb_transform_str(r->cfg.transform)));
        json_object_object_add(tr, "best_test_acc", rb_json_number(r->best_acc));
        json_object_object_add(tr, "best_epoch", json_object_new_int64(r->best_epoch));
        if (r->cfg.adversarial.attack != NULL)
            json_object_object_add(tr, "attack", attack_json(r));
        if (r->cfg.transfer.source != NULL) {
            json_object *t = json_object_new_object();
            json_object_object_add(t, "source", json_object_new_string(r->cfg.transfer.source));
            json_object_object_add(t, "task", json_object_new_string(r->cfg.transfer.task->name));
            json_object_object_add(t, "mode",
                                   json_object_new_string(r->cfg.transfer.fixed_features ? "fixed" : "full"));
            json_object_object_add(t, "bn_stats",
                                   json_object_new_string(r->cfg.transfer.bn_update ? "update" : "frozen"));
            json_object_object_add(t, "feature_cache", json_object_new_boolean(r->full != NULL));
            json_object_object_add(
                t, "feature_cache_dtype",
                r->full != NULL ? json_object_new_string(rb_feature_cache_str(r->cfg.transfer.feature_cache)) : NULL);
            json_object_object_add(tr, "transfer", t);
        }
        json_object_object_add(meta, "training", tr);
        s = rb_checkpoint_set_metadata(ck, json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PLAIN));
    }
    for (size_t i = 0; s == RB_OK && with_state && i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        const float *m = rb_sgd_momentum_buffer(r->sgd, i);
        char name[512];
        rb_graph_param(g, i, &p);
        if (m == NULL)
            continue;
        snprintf(name, sizeof name, "%smomentum.%s", RB_MODEL_STATE_PREFIX, p.name);
        s = rb_checkpoint_add(ck, name, RB_DTYPE_F32, p.ndim, p.shape, m);
    }
    if (s == RB_OK)
        s = rb_checkpoint_save(ck, path, 0);
    json_object_put(meta);
    rb_checkpoint_destroy(ck);
    return s;
}

static rb_status write_logs(run *r)
{
    char path[4200];
    rb_status s;
    if (!r->writer)
        return RB_OK;
    path_in(path, sizeof path, r->cfg.out_dir, "log.csv");
    if ((s = rb_file_write_atomic(path, r->csv.data, r->csv.len)) != RB_OK)
        return s;
    path_in(path, sizeof path, r->cfg.out_dir, "log.jsonl");
    return rb_file_write_atomic(path, r->jsonl.data ? r->jsonl.data : "", r->jsonl.len);
}

const char train_csv_header[] = "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,images_per_second\n";
const char train_csv_header_adv[] =
    "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,images_per_second,adv_train_acc,robust_test_acc\n";

/* Sets the attack's eps (warm-up); a no-op without warm-up. */
static rb_status set_eps(run *r, double eps)
{
    char buf[64];
    if (r->cfg.adversarial.eps_warmup <= 0)
        return RB_OK;
    snprintf(buf, sizeof buf, "%.17g", eps);
    return rb_params_set(r->attack_params, RB_PARAM_EPS, buf);
}

static json_object *attack_json(const run *r)
{
    json_object *a = json_object_new_object();
    const rb_attack_options *o = &r->cfg.adversarial.attack_options;
    char buf[64];
    json_object_object_add(a, "name",
                           json_object_new_string(r->cfg.adversarial.attack_name ? r->cfg.adversarial.attack_name
                                                                                 : r->cfg.adversarial.attack->name));
    json_object_object_add(a, "params", rb_params_to_json_object(r->cfg.adversarial.attack_params));
    json_object_object_add(a, "steps", json_object_new_int(o->steps));
    json_object_object_add(a, "restarts", json_object_new_int(o->restarts));
    json_object_object_add(a, "random_start", json_object_new_boolean(o->random_start));
    json_object_object_add(a, "keep_best", json_object_new_boolean(o->keep_best));
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)o->seed);
    json_object_object_add(a, "seed", json_object_new_string(buf));
    json_object_object_add(a, "eps_warmup", rb_json_number(r->cfg.adversarial.eps_warmup));
    json_object_object_add(a, "eval_every", json_object_new_int64(r->cfg.training.eval_every));
    return a;
}

/* The first non-finite gradient (or NULL). */
static const char *bad_gradient(rb_graph *g)
{
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        rb_graph_param(g, i, &p);
        if (p.grad == NULL || !p.trainable || p.frozen)
            continue;
        for (int64_t k = 0; k < p.numel; k++)
            if (!isfinite(p.grad[k]))
                return p.name;
    }
    return NULL;
}

/* Images of the train and test splits this process has decoded so far,
 * where the splits keep decoded image files (the paper's transform); -1
 * where they do not. */
static int64_t images_decoded_here(const run *r)
{
    rb_split_cache_state train, test;
    rb_split_cache_state_get(r->train, &train);
    rb_split_cache_state_get(r->test, &test);
    return train.kept ? train.decoded_here + test.decoded_here : -1;
}

/* RB_DIST_CHECK=1: after every step each rank hashes its parameters and
 * buffers (FNV-1a over their bytes), and the job stops at the first step
 * where a rank's differ from rank 0's. For tests and for doubts: data
 * parallelism is only right while the ranks hold one model. */
static rb_status check_ranks_hold_one_model(run *r, int64_t epoch, int64_t step)
{
    rb_graph *g = rb_model_graph(r->model);
    uint64_t h = RB_FNV1A_START;
    char hash[96], what[160];
    rb_status s;
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        rb_graph_param(g, i, &p);
        h = rb_fnv1a(h, p.value, (size_t)p.numel * sizeof(float));
    }
    snprintf(hash, sizeof hash, "parameter hash %016llx", (unsigned long long)h);
    snprintf(what, sizeof what, "after epoch %lld step %lld the ranks' models differ (RB_DIST_CHECK)",
             (long long)epoch + 1, (long long)step + 1);
    s = rb_dist_agree(what, hash);
    return s;
}

static rb_status write_task_metrics(run *r);
static rb_status keep_task_metrics(run *r, const rb_eval_result *ev);

rb_status train_epochs(run *r, rb_train_result *res)
{
    rb_graph *g = rb_model_graph(r->model);
    int64_t steps = rb_loader_batch_count(r->loader), B = r->cfg.training.batch_size;
    double total_seconds = 0;
    int64_t epochs_run = 0;
    char path[4200];
    rb_status s = RB_OK;

    while (r->epoch < r->cfg.training.epochs) {
        int64_t e = r->epoch, seen = 0, clean_correct = 0, shown = 0, decoded_before = images_decoded_here(r);
        double loss_sum = 0, lr = 0, t0 = rb_monotonic_seconds(), seconds, test_loss = NAN, test_acc = NAN;
        double train_score = NAN;
        const char *score_name = rb_scorer_task(r->scorer)->ops.task->primary_metric;
        double robust_acc = NAN;
        bool adv = r->cfg.adversarial.attack != NULL;
        const float *train_x;
        rb_progress *bar = NULL;
        rb_batch b;
        char label[64];
        snprintf(label, sizeof label, "epoch %lld/%lld", (long long)e + 1, (long long)r->cfg.training.epochs);
        if (!r->cfg.quiet && r->writer && (s = rb_progress_create(&bar, label, (uint64_t)(steps * B), "img", NULL)) != RB_OK)
            return s;
        if ((s = rb_loader_start_epoch(r->loader, e)) != RB_OK)
            goto epoch_failed;
        if (adv && r->cfg.adversarial.eps_warmup > 0 &&
            (s = set_eps(r, r->eps * ((double)e >= r->cfg.adversarial.eps_warmup
                                          ? 1.0
                                          : (double)e / r->cfg.adversarial.eps_warmup))) != RB_OK)
            goto epoch_failed;
        for (int64_t step = 0;; step++) {
            double loss;
            const char *bad;
            /* every rank stops at the same step, or one would wait forever
             * in a sum the other never starts */
            int64_t stop = stop_requested;
            if (r->grad_sync != NULL && (s = rb_dist_allreduce_sum(&stop, 1, RB_DIST_I64)) != RB_OK)
                goto epoch_failed;
            if (stop) {
                char cause[32];
                s = rb_error_set(RB_ERR_INTERRUPTED,
                                 "stopped by %s in epoch %lld at batch %lld; %s/last.rbt and the logs hold epoch "
                                 "%lld: continue with robusta %s --resume %s",
                                 stop_cause(cause, sizeof cause), (long long)e + 1, (long long)step + 1, r->cfg.out_dir,
                                 (long long)e, r->cfg.transfer.source != NULL ? "transfer" : "train", r->cfg.out_dir);
                goto epoch_failed;
            }
            if ((s = rb_loader_next(r->loader, &b)) != RB_OK)
                goto epoch_failed;
            if (b.count == 0)
                break;
            lr = rb_schedule_lr(&r->schedule, (double)e + (double)(step + 1) / (double)steps);
            train_x = b.images;
            if (adv) {
                rb_attack_options ao = r->cfg.adversarial.attack_options;
                rb_attack_stats st;
                ao.first_example = e * steps * B + b.first; /* this rank's part keys as in the whole batch */
                if ((s = rb_attacker_run(r->attacker, r->cfg.adversarial.attack, r->attack_params, &ao, b.images,
                                         b.labels, b.count, r->adv_x, NULL, &st)) != RB_OK) {
                    rb_error_prefix("epoch %lld batch %lld: attack: ", (long long)e + 1, (long long)step + 1);
                    goto epoch_failed;
                }
                clean_correct += st.clean_correct;
                train_x = r->adv_x;
            }
            if ((s = rb_engine_forward_targets(r->engine, train_x, b.count, &b.targets, true)) != RB_OK ||
                (s = rb_scorer_add(r->scorer, r->engine, b.count, &b.targets)) != RB_OK)
                goto epoch_failed;
            if (r->grad_sync != NULL)
                rb_grad_sync_begin(r->grad_sync, b.count, b.global_count);
            if ((s = rb_engine_backward(r->engine, true, false)) != RB_OK ||
                (r->grad_sync != NULL && (s = rb_grad_sync_finish(r->grad_sync)) != RB_OK))
                goto epoch_failed;
            loss = rb_engine_mean_loss(r->engine);
            bad = bad_gradient(g);
            if (!isfinite(loss) || bad != NULL) {
                s = rb_error_set(RB_ERR_NUMERIC,
                                 "training diverged at epoch %lld batch %lld (step %lld): loss %g, first non-finite "
                                 "gradient %s%s%s; %s/last.rbt keeps epoch %lld (lower --lr?)",
                                 (long long)e + 1, (long long)step + 1, (long long)rb_sgd_steps(r->sgd) + 1, loss,
                                 bad ? "'" : "", bad ? bad : "none", bad ? "'" : "", r->cfg.out_dir, (long long)e);
                goto epoch_failed;
            }
            if ((s = rb_sgd_step(r->sgd, lr)) != RB_OK ||
                (r->grad_sync != NULL && (s = rb_grad_sync_share_buffers(r->grad_sync)) != RB_OK)) {
                rb_error_prefix("epoch %lld batch %lld: ", (long long)e + 1, (long long)step + 1);
                goto epoch_failed;
            }
            if (r->check_ranks && (s = check_ranks_hold_one_model(r, e, step)) != RB_OK)
                goto epoch_failed;
            loss_sum += loss * (double)b.count;
            seen += b.count;
            shown += b.global_count; /* the job's images, though the loss is rank 0's */
            if (bar != NULL)
                rb_progress_update(bar, (uint64_t)shown, "loss %.4f", loss_sum / (double)seen);
        }
        seconds = rb_monotonic_seconds() - t0;
        /* the task's primary metric over the epoch's batches (attacked ones in adversarial training) */
        if ((s = rb_scorer_finalize(r->scorer, &train_score)) != RB_OK)
            goto epoch_failed;
        /* the epoch's loss and counts over all ranks' parts; the training
         * score is the ranks' scores weighted by their images: exact for
         * accuracy (each is a count over the same number of images), an
         * average over the ranks' shares for a metric such as mIoU or AP */
        if (r->grad_sync != NULL) {
            double sums[2] = {loss_sum, train_score * (double)seen};
            int64_t counts[2] = {seen, clean_correct};
            if ((s = rb_dist_allreduce_sum(sums, 2, RB_DIST_F64)) != RB_OK ||
                (s = rb_dist_allreduce_sum(counts, 2, RB_DIST_I64)) != RB_OK)
                goto epoch_failed;
            loss_sum = sums[0];
            seen = counts[0];
            clean_correct = counts[1];
            train_score = sums[1] / (double)seen;
        }
        if (bar != NULL) {
            rb_progress_finish(bar, "loss %.4f %s %.4g", loss_sum / (double)seen, score_name, train_score);
            rb_progress_destroy(bar);
            bar = NULL;
        }
        if (r->has_test && (e + 1 == r->cfg.training.epochs || r->cfg.training.eval_every <= 1 ||
                            (e + 1) % r->cfg.training.eval_every == 0)) {
            rb_eval_result ev;
            bool last = e + 1 == r->cfg.training.epochs;
            if ((s = train_evaluate_with(r->eval_engine, r->model, r->test, NULL, &ev)) != RB_OK)
                return s;
            if (last && r->cfg.transfer.source != NULL && (s = keep_task_metrics(r, &ev)) != RB_OK) {
                rb_eval_result_free(&ev);
                return s;
            }
            test_loss = ev.mean_loss;
            test_acc = ev.accuracy;
            rb_eval_result_free(&ev);
            if (adv) {
                eval_attack atk = {r->cfg.adversarial.attack, r->attack_params, &r->cfg.adversarial.attack_options};
                if ((s = set_eps(r, r->eps)) != RB_OK ||
                    (s = train_evaluate_with(r->eval_engine, r->model, r->test, &atk, &ev)) != RB_OK)
                    return s;
                robust_acc = ev.robust_accuracy;
                rb_eval_result_free(&ev);
            }
        }
        r->epoch = e + 1;
        res->train_loss = loss_sum / (double)seen;
        res->train_acc = adv ? (double)clean_correct / (double)seen : train_score;
        res->adv_train_acc = adv ? train_score : NAN;
        if (adv && !isnan(robust_acc))
            res->robust_test_acc = robust_acc;
        res->test_loss = test_loss;
        res->test_acc = test_acc;
        total_seconds += seconds;
        epochs_run++;
        /* Logs and checkpoints. */
        {
            char tl[32] = "", ta[32] = "", tlj[32] = "null", taj[32] = "null", ra[32] = "", raj[32] = "null";
            char jn[4][32];
            if (!isnan(test_acc)) {
                snprintf(tl, sizeof tl, "%.9g", test_loss);
                snprintf(ta, sizeof ta, "%.9g", test_acc);
                rb_json_number_text(tlj, sizeof tlj, test_loss);
                rb_json_number_text(taj, sizeof taj, test_acc);
            }
            if (!isnan(robust_acc)) {
                snprintf(ra, sizeof ra, "%.9g", robust_acc);
                rb_json_number_text(raj, sizeof raj, robust_acc);
            }
            s = train_text_append(&r->csv, "%lld,%.9g,%.9g,%.9g,%s,%s,%.3f,%.1f", (long long)r->epoch, lr,
                            res->train_loss, res->train_acc, tl, ta, seconds, (double)seen / seconds);
            if (s == RB_OK && adv)
                s = train_text_append(&r->csv, ",%.9g,%s", res->adv_train_acc, ra);
            if (s == RB_OK)
                s = train_text_append(&r->csv, "\n");
            /* JSON has no nan: a diverged loss is written as null */
            if (s == RB_OK)
                s = train_text_append(&r->jsonl,
                                "{\"epoch\": %lld, \"lr\": %s, \"train_loss\": %s, \"train_acc\": %s, "
                                "\"test_loss\": %s, \"test_acc\": %s, \"seconds\": %.3f, "
                                "\"images_per_second\": %s",
                                (long long)r->epoch, rb_json_number_text(jn[0], sizeof jn[0], lr),
                                rb_json_number_text(jn[1], sizeof jn[1], res->train_loss),
                                rb_json_number_text(jn[2], sizeof jn[2], res->train_acc), tlj, taj, seconds,
                                rb_json_number_text(jn[3], sizeof jn[3], round((double)seen / seconds * 10) / 10));
            if (s == RB_OK && adv)
                s = train_text_append(&r->jsonl, ", \"adv_train_acc\": %s, \"robust_test_acc\": %s",
                                rb_json_number_text(jn[0], sizeof jn[0], res->adv_train_acc), raj);
            /* image files kept decoded (--transform paper): what this epoch decoded */
            if (s == RB_OK && images_decoded_here(r) >= 0)
                s = train_text_append(&r->jsonl, ", \"images_decoded\": %lld",
                                      (long long)(images_decoded_here(r) - decoded_before));
            if (s == RB_OK)
                s = train_text_append(&r->jsonl, "}\n");
        }
        /* The logs go first: a kill between the two writes leaves them one
         * row ahead of last.rbt, which a resume drops, never behind. */
        if (s == RB_OK)
            s = write_logs(r);
        if (s == RB_OK && !isnan(test_acc) && !adv && (r->best_epoch == 0 || test_acc > r->best_acc)) {
            r->best_acc = test_acc;
            r->best_epoch = r->epoch;
            path_in(path, sizeof path, r->cfg.out_dir, "best.rbt");
            s = save_checkpoint(r, path, false);
        }
        if (s == RB_OK && adv && !isnan(robust_acc) && (r->best_epoch == 0 || robust_acc > r->best_acc)) {
            r->best_acc = robust_acc;
            r->best_epoch = r->epoch;
            path_in(path, sizeof path, r->cfg.out_dir, "best.rbt");
            s = save_checkpoint(r, path, false);
        }
        if (s == RB_OK) {
            path_in(path, sizeof path, r->cfg.out_dir, "last.rbt");
            s = save_checkpoint(r, path, true);
        }
        if (s == RB_OK)
            s = rb_dist_barrier();
        if (s != RB_OK)
            return s;
        {
            /* accuracy as a percentage, as always; other tasks' scores (miou) as they are */
            const bool percent = strcmp(score_name, "accuracy") == 0;
            const char *unit = percent ? "%" : "";
            const double scale = percent ? 100 : 1;
            const char *short_name = percent ? "acc" : score_name;
            if (!isnan(test_acc))
                rb_log(RB_LOG_INFO,
                       "epoch %lld/%lld: lr %.4g, train loss %.4f %s %.*f%s, test loss %.4f %s %.*f%s, %.1fs",
                       (long long)r->epoch, (long long)r->cfg.training.epochs, lr, res->train_loss, short_name,
                       percent ? 2 : 4, scale * res->train_acc, unit, test_loss, short_name, percent ? 2 : 4,
                       scale * test_acc, unit, seconds);
            else
                rb_log(RB_LOG_INFO, "epoch %lld/%lld: lr %.4g, train loss %.4f %s %.*f%s, %.1fs", (long long)r->epoch,
                       (long long)r->cfg.training.epochs, lr, res->train_loss, short_name, percent ? 2 : 4,
                       scale * res->train_acc, unit, seconds);
        }
        continue;
    epoch_failed:
        rb_progress_destroy(bar);
        return s;
    }
    res->epochs_done = r->epoch;
    snprintf(res->metric, sizeof res->metric, "%s", rb_scorer_task(r->scorer)->ops.task->primary_metric);
    res->best_test_acc = r->best_acc;
    res->best_epoch = r->best_epoch;
    res->seconds_per_epoch = epochs_run ? total_seconds / (double)epochs_run : 0;
    path_in(path, sizeof path, r->cfg.out_dir, "model.rbt");
    if ((s = save_checkpoint(r, path, false)) == RB_OK && r->cfg.transfer.source != NULL && r->has_test)
        s = write_task_metrics(r);
    if (s == RB_OK)
        s = rb_dist_barrier();
    return s;
}

static rb_status make_dir(const char *dir)
{
    if (mkdir(dir, 0777) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            return RB_OK;
        return rb_error_set(RB_ERR_IO, "--out %s exists and is not a folder", dir);
    }
    return rb_error_set(RB_ERR_IO, "cannot create the run folder %s: %s", dir, strerror(errno));
}

/* The paper's transfer schedule scaled to the run: lr x 0.1 at each third
 * (150 epochs decayed every 50); constant for training from scratch. */
static const char *default_schedule(run *r)
{
    if (r->cfg.transfer.source == NULL)
        return "constant";
    snprintf(r->default_schedule, sizeof r->default_schedule, "step:%lld:0.1",
             (long long)(r->cfg.training.epochs >= 3 ? r->cfg.training.epochs / 3 : 1));
    return r->default_schedule;
}

/* A transfer's last evaluation gives the task's own metrics; their values
 * wait in r->metrics_json until model.rbt is written. */
static rb_status keep_task_metrics(run *r, const rb_eval_result *ev)
{
    json_object *root = json_object_new_object();
    for (size_t i = 0; i < ev->metric_count; i++)
        json_object_object_add(root, ev->metrics[i].name, rb_json_number(ev->metrics[i].value));
    free(r->metrics_json);
    r->metrics_json = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
    return r->metrics_json != NULL ? RB_OK : rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for metrics");
}

/* metrics.json after model.rbt; a resumed run that had nothing left to train
 * evaluates once for them. */
static rb_status write_task_metrics(run *r)
{
    char path[4200];
    if (r->metrics_json == NULL) {
        rb_eval_result ev;
        rb_status s = train_evaluate_with(r->eval_engine, r->model, r->test, NULL, &ev);
        if (s == RB_OK) {
            s = keep_task_metrics(r, &ev);
            rb_eval_result_free(&ev);
        }
        if (s != RB_OK)
            return s;
    }
    if (!r->writer)
        return RB_OK;
    path_in(path, sizeof path, r->cfg.out_dir, "metrics.json");
    return rb_file_write_atomic(path, r->metrics_json, strlen(r->metrics_json));
}

rb_status rb_train(const rb_train_config *config, rb_train_result *result)
{
    run r;
    rb_train_result local;
    char path[4200];
    rb_status s;
    if (result == NULL)
        result = &local;
    memset(result, 0, sizeof *result);
    result->adv_train_acc = result->robust_test_acc = NAN;
    if ((s = rb_train_config_check(config)) != RB_OK)
        return s;
    memset(&r, 0, sizeof r);
    r.lock_fd = -1;
    r.cfg = *config;
    r.writer = rb_dist_rank() == 0; /* the other ranks of a job never touch the run folder */
    if (r.cfg.training.schedule == NULL)
        r.cfg.training.schedule = default_schedule(&r);
    if (!r.writer)
        goto set_up;
    if ((s = make_dir(r.cfg.out_dir)) != RB_OK)
        return s;
    /* One writer per folder, from here to train_run_free; then the litter of a
     * killed run goes. */
    if ((s = rb_run_dir_lock(r.cfg.out_dir, r.cfg.transfer.source != NULL ? "transfer" : "train", &r.lock_fd)) !=
            RB_OK ||
        (s = rb_run_dir_remove_stale(r.cfg.out_dir)) != RB_OK)
        goto done;
    path_in(path, sizeof path, r.cfg.out_dir, "last.rbt");
    {
        if (access(path, F_OK) == 0) { /* not fopen: a FIFO there would block */
            static const char *const old_run[] = {"last.rbt", "best.rbt", "model.rbt", "metrics.json"};
            if (!r.cfg.force) {
                s = train_invalid("%s already holds a run (last.rbt): continue it with --resume %s, start over with "
                                  "--force, or choose another --out",
                                  r.cfg.out_dir, r.cfg.out_dir);
                goto done;
            }
            /* Asked to start over: the old checkpoints must not pass for the new run's. */
            for (size_t i = 0; i < sizeof old_run / sizeof old_run[0]; i++) {
                path_in(path, sizeof path, r.cfg.out_dir, old_run[i]);
                if (unlink(path) != 0 && errno != ENOENT) {
                    s = rb_error_set(RB_ERR_IO, "--force: cannot remove %s: %s", path, strerror(errno));
                    goto done;
                }
            }
        }
    }
set_up:
    if (r.cfg.transfer.source != NULL && (s = train_load_source(&r)) != RB_OK)
        goto done;
    if ((s = train_open_splits(&r)) != RB_OK || (s = train_check_fits(&r)) != RB_OK ||
        (s = train_create_model(&r)) != RB_OK || (s = train_prepare_transfer(&r)) != RB_OK ||
        (s = train_setup(&r)) != RB_OK)
        goto done;
    if ((s = train_text_append(&r.csv, "%s",
                               r.cfg.adversarial.attack != NULL ? train_csv_header_adv : train_csv_header)) != RB_OK)
        goto done;
    path_in(path, sizeof path, r.cfg.out_dir, "config.json");
    if (r.writer &&
        ((s = rb_run_id_new(r.run_id)) != RB_OK || (s = train_write_config(&r.cfg, r.run_id, r.plan, path)) != RB_OK))
        goto done;
    /* Epoch 0: a resumable state even if the first epoch is interrupted
     * (the logs first, as after every epoch). */
    path_in(path, sizeof path, r.cfg.out_dir, "last.rbt");
    if ((s = write_logs(&r)) != RB_OK || (s = save_checkpoint(&r, path, true)) != RB_OK ||
        (s = rb_dist_barrier()) != RB_OK)
        goto done;
    if (r.cfg.transfer.source != NULL)
        rb_log(RB_LOG_INFO, "transferring %s (%s) to %s in %s mode: %lld examples, %lld classes, %s",
               r.cfg.transfer.source, r.cfg.arch->name, r.cfg.data,
               r.cfg.transfer.fixed_features ? "fixed-feature" : "full-network", (long long)rb_split_count(r.train),
               (long long)rb_split_classes(r.train), rb_engine_threads(r.engine));
    else
        rb_log(RB_LOG_INFO, "training %s on %s: %lld examples, %lld classes, %lld x %lld x %lld, %s",
               r.cfg.arch_name ? r.cfg.arch_name : r.cfg.arch->name, r.cfg.data, (long long)rb_split_count(r.train),
               (long long)rb_split_classes(r.train), (long long)rb_model_get_input(r.model)->channels,
               (long long)rb_model_get_input(r.model)->height, (long long)rb_model_get_input(r.model)->width,
               rb_engine_threads(r.engine));
    s = train_epochs(&r, result);
done:
    train_run_free(&r);
    return s;
}
