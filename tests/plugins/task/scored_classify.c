/* A task fixture for the grid's metric plumbing (tests/check_grid_run.c):
 * the classify plugin under another name, scored-classify, that ranks by a
 * metric of its own, "fixture_score", always 0.375 (reported after
 * classify's accuracy and the rest). No accuracy over the test's 18 target
 * images (k/18) equals 0.375, so a grid whose results show 0.375 read the
 * task's primary metric, and nothing else, before a dense task exists.
 *
 * classify.c is compiled here as it is; only its descriptor differs: the
 * RB_TASK_PLUGIN below stands in for plugin.h's in this file and lists
 * classify's callbacks with the other name, primary metric and finalize.
 * Built into tests/plugins/task/, a folder only the tests that want it
 * scan. */
#include <robusta/plugin.h>

static rb_status scored_finalize(void *state, rb_metric *out, size_t capacity, size_t *count);

#undef RB_TASK_PLUGIN
#define RB_TASK_PLUGIN(name_, version_, summary_, params_, ...)                                                     \
    static const rb_task_ops rb_plugin_ops_table = {                                                                 \
        .kind = RB_PLUGIN_TASK,                                                                                      \
        .dataset_kind = RB_DATASET_CLASSIFICATION,                                                                   \
        .primary_metric = "fixture_score",                                                                           \
        .stages = classify_stages,                                                                                   \
        .build_head = classify_build_head,                                                                           \
        .build_loss = classify_build_loss,                                                                           \
        .decode = classify_decode,                                                                                   \
        .metrics_create = classify_metrics_create,                                                                   \
        .metrics_accumulate = classify_metrics_accumulate,                                                           \
        .metrics_finalize = scored_finalize,                                                                         \
        .metrics_destroy = classify_metrics_destroy};                                                                \
    RB_PLUGIN_DESCRIPTOR_(RB_PLUGIN_TASK, task, rb_task_ops, rb_plugin_ops_table, "scored-classify", "1.0",          \
                          "classify ranked by a constant fixture_score (a test fixture)", params_)

#include "plugins/task/classify.c"

static rb_status scored_finalize(void *state, rb_metric *out, size_t capacity, size_t *count)
{
    size_t n = 0;
    rb_status s = classify_metrics_finalize(state, out, capacity, &n);
    if (s != RB_OK)
        return s;
    if (n < capacity)
        out[n++] = (rb_metric){"fixture_score", 0.375};
    *count = n;
    return RB_OK;
}
