/* rb_train_resume: a run continued from its config.json and last.rbt, with
 * its training state and logs. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "experiment/train_internal.h"
#include "sys/internal.h"

static rb_status restore_state(run *r, const rb_checkpoint *ck, const char *file)
{
    json_object *meta = json_tokener_parse(rb_checkpoint_metadata(ck)), *tr = NULL;
    rb_graph *g = rb_model_graph(r->model);
    rb_status s = RB_OK;
    if (meta == NULL || !json_object_object_get_ex(meta, "training", &tr) || tr == NULL ||
        !train_jhas(tr, "epoch", json_type_int) || !train_jhas(tr, "sgd_steps", json_type_int))
        s = rb_error_set(RB_ERR_CORRUPT, "%s has no training state (\"training\" with epoch and sgd_steps)", file);
    if (s == RB_OK) {
        r->epoch = train_jint(tr, "epoch");
        r->best_acc = train_jhas(tr, "best_test_acc", json_type_double) ? train_jdouble(tr, "best_test_acc") : 0;
        r->best_epoch = train_jhas(tr, "best_epoch", json_type_int) ? train_jint(tr, "best_epoch") : 0;
        if (r->epoch < 0 || r->epoch > r->cfg.training.epochs)
            s = train_invalid("%s is at epoch %lld, past --epochs %lld: ask for more epochs", file, (long long)r->epoch,
                              (long long)r->cfg.training.epochs);
    }
    for (size_t i = 0; s == RB_OK && i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        rb_checkpoint_tensor t;
        float *m = rb_sgd_momentum_buffer(r->sgd, i);
        char name[512];
        if (m == NULL)
            continue;
        rb_graph_param(g, i, &p);
        snprintf(name, sizeof name, "%smomentum.%s", RB_MODEL_STATE_PREFIX, p.name);
        if (train_jint(tr, "sgd_steps") == 0)
            continue; /* buffers start at the first step */
        if ((s = rb_checkpoint_find(ck, name, &t)) != RB_OK)
            s = rb_error_set(RB_ERR_CORRUPT, "%s: momentum buffer '%s' is missing", file, name);
        else if (t.dtype != RB_DTYPE_F32 || t.numel != p.numel)
            s = rb_error_set(RB_ERR_CORRUPT, "%s: momentum buffer '%s' has the wrong size", file, name);
        else
            memcpy(m, t.data, (size_t)p.numel * sizeof *m);
    }
    if (s == RB_OK)
        rb_sgd_set_steps(r->sgd, train_jint(tr, "sgd_steps"));
    json_object_put(meta);
    return s;
}

/* A log reconciled with the checkpoint's epoch, into t. */
static rb_status load_log(text *t, const char *path, const char *header, bool adversarial, int64_t epoch)
{
    char *kept = NULL;
    size_t len = 0;
    rb_status s = rb_run_log_reconcile(path, header, adversarial, epoch, &kept, &len);
    if (s == RB_OK && len > 0)
        s = train_text_append(t, "%s", kept);
    free(kept);
    return s;
}

/* The run id of config.json (`root`) and of the checkpoint in `dir` must
 * agree; out gets the run's id (a new one for a run from before run ids). */
static rb_status check_run_id(json_object *root, const rb_checkpoint *ck, const char *dir, char *out)
{
    const char *want = train_jstr(root, "run_id"), *have = NULL;
    json_object *meta = json_tokener_parse(rb_checkpoint_metadata(ck)), *tr = NULL;
    rb_status s = RB_OK;
    if (meta != NULL && json_object_object_get_ex(meta, "training", &tr) && tr != NULL)
        have = train_jstr(tr, "run_id");
    if (want != NULL && (strlen(want) != RB_RUN_ID_LEN || strspn(want, "0123456789abcdef") != RB_RUN_ID_LEN))
        s = rb_error_set(RB_ERR_CORRUPT, "%s/config.json: run_id '%s' is not %d hex digits", dir, want,
                         RB_RUN_ID_LEN);
    else if (have != NULL && (want == NULL || strcmp(want, have) != 0))
        s = rb_error_set(RB_ERR_INVALID_ARGUMENT,
                         "%s/last.rbt belongs to run %s, config.json to %s%s: it was copied from another run; put "
                         "this run's last.rbt back, or start over with --force",
                         dir, have, want ? "run " : "", want ? want : "no run (it has no run_id)");
    else if (want != NULL) {
        memcpy(out, want, RB_RUN_ID_LEN + 1);
        if (have == NULL)
            rb_log(RB_LOG_INFO, "%s/last.rbt has no run id (written before run ids): taken as run %s's", dir, want);
    } else if ((s = rb_run_id_new(out)) == RB_OK)
        rb_log(RB_LOG_INFO, "%s was started before run ids: it is run %s from now on", dir, out);
    json_object_put(meta);
    return s;
}

/* A plan measured on another machine: its kernels may not exist here, or
 * not be the fastest, and results will not repeat the original run's. */
static rb_status check_plan_machine(const run *r, const char *dir, const char *planned_on, bool strict)
{
    const char *here = rb_engine_machine(r->engine);
    if (planned_on[0] == '\0' || strcmp(planned_on, here) == 0)
        return RB_OK;
    if (strict)
        return rb_error_set(RB_ERR_UNSUPPORTED,
                            "--resume %s: the run's kernels were chosen on \"%s\", this is \"%s\" (--strict-resume): "
                            "resume it there, or leave --strict-resume out to go on with results that differ from the "
                            "original run's", dir, planned_on, here);
    rb_log(RB_LOG_WARN, "--resume %s: the run's kernels were chosen on \"%s\", this is \"%s\"; going on with its plan "
           "where it can run here: results will differ from the original run's (--strict-resume refuses)",
           dir, planned_on, here);
    return RB_OK;
}

rb_status rb_train_resume(const rb_registry *registry, const char *dir, int64_t epochs, int threads, bool strict_plan,
                          bool quiet, rb_train_result *result)
{
    run r;
    rb_train_result local;
    char path[4200];
    unsigned char *bytes = NULL;
    size_t size = 0;
    json_object *root = NULL;
    rb_checkpoint *ck = NULL;
    rb_params *attack_params = NULL, *task_params = NULL;
    char planned_on[256];
    rb_status s;

    if (result == NULL)
        result = &local;
    memset(result, 0, sizeof *result);
    result->adv_train_acc = result->robust_test_acc = NAN;
    memset(&r, 0, sizeof r);
    r.lock_fd = -1;
    r.writer = rb_dist_rank() == 0; /* every rank reads the folder; rank 0 alone locks and writes it */
    if (registry == NULL || dir == NULL)
        return train_invalid("rb_train_resume: needs a registry and a folder");
    path_in(path, sizeof path, dir, "config.json");
    if ((s = rb_file_read_all(path, (size_t)16 << 20, &bytes, &size)) != RB_OK)
        return rb_error_prefix("--resume %s: ", dir);
    {
        char *txt = malloc(size + 1);
        if (txt == NULL) {
            free(bytes);
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory reading %s", path);
        }
        memcpy(txt, bytes, size);
        txt[size] = '\0';
        root = json_tokener_parse(txt);
        free(txt);
        free(bytes);
    }
    if (root == NULL || !json_object_is_type(root, json_type_object)) {
        s = rb_error_set(RB_ERR_CORRUPT, "%s is not a JSON object", path);
        goto done;
    }
    if ((s = train_read_config(root, path, &r.cfg)) != RB_OK ||
        (s = train_read_attack(registry, root, path, &r.cfg, &attack_params)) != RB_OK ||
        (s = train_read_transfer(registry, root, path, &r.cfg, &task_params)) != RB_OK ||
        (s = rb_plan_create(&r.plan)) != RB_OK || (s = train_read_plan(root, path, r.plan)) != RB_OK)
        goto done;
    snprintf(planned_on, sizeof planned_on, "%s", rb_plan_machine(r.plan));
    r.cfg.out_dir = dir;
    r.cfg.quiet = quiet;
    if (epochs > 0)
        r.cfg.training.epochs = epochs;
    if (threads >= 0)
        r.cfg.threads = threads;
    if (r.writer && ((s = rb_run_dir_lock(dir, r.cfg.transfer.source != NULL ? "transfer" : "train", &r.lock_fd)) !=
                         RB_OK ||
                     (s = rb_run_dir_remove_stale(dir)) != RB_OK))
        goto done;
    path_in(path, sizeof path, dir, "last.rbt");
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        s = rb_error_set(RB_ERR_NOT_FOUND,
                         "%s has config.json but no last.rbt: the run was stopped during its setup, before its first "
                         "checkpoint, so there is nothing to resume; start it over with robusta %s --out %s --force "
                         "and the options in %s/config.json",
                         dir, r.cfg.transfer.source != NULL ? "transfer" : "train", dir, dir);
        goto done;
    }
    if ((s = rb_checkpoint_load(&ck, path, 0)) != RB_OK || (s = check_run_id(root, ck, dir, r.run_id)) != RB_OK ||
        (s = rb_model_from_checkpoint(&r.model, registry, ck, path, 0, 0)) != RB_OK)
        goto done;
    r.cfg.arch = rb_model_arch(r.model);
    r.cfg.arch_params = rb_model_params(r.model);
    if ((s = rb_train_config_check(&r.cfg)) != RB_OK || (s = train_open_splits(&r)) != RB_OK ||
        (s = train_check_fits(&r)) != RB_OK || (s = train_prepare_transfer(&r)) != RB_OK ||
        (s = train_setup(&r)) != RB_OK || (s = check_plan_machine(&r, dir, planned_on, strict_plan)) != RB_OK ||
        (s = restore_state(&r, ck, path)) != RB_OK)
        goto done;
    rb_checkpoint_destroy(ck);
    ck = NULL;
    /* The logs keep every row up to last.rbt's epoch (see run_dir.h). */
    path_in(path, sizeof path, dir, "log.csv");
    if ((s = load_log(&r.csv, path, r.cfg.adversarial.attack != NULL ? train_csv_header_adv : train_csv_header,
                      r.cfg.adversarial.attack != NULL, r.epoch)) != RB_OK)
        goto done;
    path_in(path, sizeof path, dir, "log.jsonl");
    if ((s = load_log(&r.jsonl, path, NULL, r.cfg.adversarial.attack != NULL, r.epoch)) != RB_OK)
        goto done;
    path_in(path, sizeof path, dir, "config.json");
    if (r.writer && (s = train_write_config(&r.cfg, r.run_id, r.plan, path)) != RB_OK)
        goto done;
    rb_log(RB_LOG_INFO, "resuming %s at epoch %lld of %lld", dir, (long long)r.epoch, (long long)r.cfg.training.epochs);
    s = train_epochs(&r, result);
done:
    rb_checkpoint_destroy(ck);
    train_run_free(&r);
    rb_params_destroy(attack_params);
    rb_params_destroy(task_params);
    json_object_put(root);
    return s;
}
