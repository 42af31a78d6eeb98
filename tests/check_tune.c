/* Kernels chosen by measurement (robusta/tune.h): the plan object and the
 * tuning modes; a training engine that tunes fills the plan with one exact
 * key per convolution shape and writes the cache under its machine key;
 * `cached` follows a cache entry without measuring and `full` ignores it;
 * a given plan wins over both and repeats a run's gradients bit for bit;
 * a choice that cannot run here, a corrupt cache and a read-only cache
 * folder are one warning each; engines that only compute data gradients
 * and `off` never touch the cache; `auto` precision says what it chose;
 * where the CPU has Winograd or bf16 kernels, they are timed and compute
 * the step correctly (a SKIP line elsewhere). */
#include "config.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include <robusta/robusta.h>

#include "testgraphs.h"
#include "testutil.h"

#define BATCH 4

static char dir[256], cache_path[1024];
static char messages[8192];
static int n_warnings;

static void collect(rb_log_level level, const char *message, void *user)
{
    (void)user;
    if (level > RB_LOG_INFO)
        return;
    n_warnings += level <= RB_LOG_WARN;
    snprintf(messages + strlen(messages), sizeof messages - strlen(messages), "%s\n", message);
}

static void setup(void)
{
    make_temp_dir(dir, sizeof dir);
    snprintf(cache_path, sizeof cache_path, "%s/plans.json", dir);
    messages[0] = '\0';
    n_warnings = 0;
    rb_log_set_sink(collect, NULL);
}

static void teardown(void)
{
    rb_log_set_sink(NULL, NULL);
    unlink(cache_path);
    remove_temp_dir(dir);
}

/* A gray 12x12 image, a stem convolution on it (1 channel: the matmul
 * weight gradient is a candidate, and the image's gradient is never
 * computed in training), a second one behind it (backward-data too), a
 * classifier. */
#define STEM_KEY "conv 3x3 1->8 12x12 s1x1 d1x1 p1x1 g1 b4 f32 winograd fw"
#define BODY_KEY "conv 3x3 8->8 12x12 s1x1 d1x1 p1x1 g1 b4 f32 winograd fdw"

static rb_graph *small_net(rb_node **stem, rb_node **body)
{
    rb_graph *g;
    rb_node *x, *y;
    const rb_conv_desc c1 = {.out_channels = 8, .kernel = {3, 3}, .padding = {1, 1}, .bias = true};
    const rb_conv_desc c2 = {.out_channels = 8, .kernel = {3, 3}, .padding = {1, 1}};
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 1, 12, 12, NULL, NULL, &x), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "stem", x, &c1, stem), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, *stem, &y), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "body", y, &c2, body), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, *body, &y), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_linear(g, "fc", y, 3, true, &y), RB_OK);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, y, &y), RB_OK);
    randomize(g, 5);
    return g;
}

static const float *images(void)
{
    static float x[BATCH * 144];
    for (int i = 0; i < BATCH * 144; i++)
        x[i] = (float)((i * 37) % 101) / 100.0f;
    return x;
}

static const int64_t labels[BATCH] = {0, 1, 2, 1};

/* One training step's weight gradients, concatenated into out (n floats). */
static size_t step_grads(rb_engine *e, rb_graph *g, float *out, size_t cap)
{
    size_t n = 0;
    ck_assert_int_eq(rb_engine_forward(e, images(), BATCH, labels, true), RB_OK);
    ck_assert_int_eq(rb_engine_backward(e, true, false), RB_OK);
    for (size_t i = 0; i < rb_graph_param_count(g); i++) {
        rb_param_info p;
        ck_assert_int_eq(rb_graph_param(g, i, &p), RB_OK);
        for (int64_t k = 0; p.grad != NULL && k < p.numel; k++) {
            ck_assert_uint_lt(n, cap);
            out[n++] = p.grad[k];
        }
    }
    return n;
}

static rb_engine *tuned(rb_graph *g, rb_tune_mode mode, rb_plan *plan, bool data_grads_only)
{
    rb_engine *e;
    rb_engine_options o = {.threads = 1, .tune = mode, .plan = plan, .plan_cache = cache_path,
                           .data_grads_only = data_grads_only};
    ck_assert_int_eq(rb_engine_create(&e, g, BATCH, &o), RB_OK);
    return e;
}

static char *cache_text(void)
{
    size_t size;
    char *text = (char *)read_whole_file(cache_path, &size);
    if (text != NULL)
        text[size] = '\0';
    return text;
}

START_TEST(modes_parse_and_name_themselves)
{
    rb_tune_mode m = RB_TUNE_FULL;
    for (rb_tune_mode k = RB_TUNE_OFF; k <= RB_TUNE_FULL; k++) {
        ck_assert_int_eq(rb_tune_mode_parse(rb_tune_mode_str(k), &m), RB_OK);
        ck_assert_int_eq(m, k);
    }
    ck_assert_str_eq(rb_tune_mode_str(RB_TUNE_CACHED), "cached");
    ck_assert_str_eq(rb_tune_mode_str((rb_tune_mode)7), "?");
    ck_assert_int_eq(rb_tune_mode_parse("fast", &m), RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "unknown tuning mode 'fast'; use off, cached or full");
    ck_assert_int_eq(rb_tune_mode_parse(NULL, &m), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(m, RB_TUNE_FULL); /* untouched since the last good parse */
}
END_TEST

START_TEST(a_plan_keeps_its_choices_in_order)
{
    rb_plan *p;
    const char *key, *choice;
    char long_key[300];
    ck_assert_int_eq(rb_plan_create(&p), RB_OK);
    ck_assert_uint_eq(rb_plan_count(p), 0);
    ck_assert_str_eq(rb_plan_machine(p), "");
    ck_assert_int_eq(rb_plan_set(p, "conv b", "direct f32 weight-grad=onednn"), RB_OK);
    ck_assert_int_eq(rb_plan_set(p, "conv a", "winograd f32 weight-grad=gemm"), RB_OK);
    ck_assert_int_eq(rb_plan_set(p, "conv b", "direct bf16 weight-grad=onednn"), RB_OK); /* replaced in place */
    ck_assert_uint_eq(rb_plan_count(p), 2);
    rb_plan_entry(p, 0, &key, &choice);
    ck_assert_str_eq(key, "conv b");
    ck_assert_str_eq(choice, "direct bf16 weight-grad=onednn");
    rb_plan_entry(p, 1, &key, &choice);
    ck_assert_str_eq(key, "conv a");
    rb_plan_entry(p, 2, &key, &choice);
    ck_assert_ptr_null(key);
    ck_assert_ptr_null(choice);
    ck_assert_str_eq(rb_plan_get(p, "conv a"), "winograd f32 weight-grad=gemm");
    ck_assert_ptr_null(rb_plan_get(p, "conv c"));
    /* bad text: empty, a control character, 256 characters */
    memset(long_key, 'k', 256);
    long_key[256] = '\0';
    ck_assert_int_eq(rb_plan_set(p, "", "direct"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_plan_set(p, "conv\n", "direct"), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_plan_set(p, long_key, "direct"), RB_ERR_INVALID_ARGUMENT);
    long_key[255] = '\0';
    ck_assert_int_eq(rb_plan_set(p, long_key, "direct"), RB_OK);
    ck_assert_int_eq(rb_plan_set_machine(p, ""), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_plan_set_machine(p, "Some CPU; 2 threads"), RB_OK);
    ck_assert_str_eq(rb_plan_machine(p), "Some CPU; 2 threads");
    ck_assert_uint_eq(rb_plan_count(p), 3);
    rb_plan_destroy(p);
    rb_plan_destroy(NULL);
}
END_TEST

START_TEST(the_machine_key_names_cpu_onednn_and_threads)
{
    char info[256], key[300], want[320];
    ck_assert_int_eq(rb_machine_info(info, sizeof info), RB_OK);
    ck_assert_int_eq(rb_tune_machine(3, key, sizeof key), RB_OK);
    snprintf(want, sizeof want, "%s; 3 threads", info);
    ck_assert_str_eq(key, want);
    ck_assert_ptr_nonnull(strstr(key, "oneDNN "));
    ck_assert_int_eq(rb_tune_machine(1, key, sizeof key), RB_OK);
    ck_assert_ptr_nonnull(strstr(key, "; 1 thread"));
    ck_assert_int_eq(rb_tune_machine(1, key, 8), RB_ERR_INVALID_ARGUMENT);
}
END_TEST

/* full: every shape measured, the plan and the cache filled with exact
 * keys under this engine's machine, the gradients those of the static
 * rules within fp32 rounding (both weight-gradient paths match the double
 * reference in check_engine; 1e-4 relative bounds their difference). */
START_TEST(full_tuning_fills_plan_and_cache)
{
    rb_node *stem, *body;
    rb_graph *g = small_net(&stem, &body);
    rb_plan *plan;
    rb_engine *e, *ref;
    static float a[4096], b[4096];
    size_t na, nb;
    char *text, want[600];
    ck_assert_int_eq(rb_plan_create(&plan), RB_OK);
    e = tuned(g, RB_TUNE_FULL, plan, false);
    ck_assert_uint_eq(rb_plan_count(plan), 2);
    ck_assert_ptr_nonnull(rb_plan_get(plan, STEM_KEY));
    ck_assert_ptr_nonnull(rb_plan_get(plan, BODY_KEY));
    ck_assert_str_eq(rb_plan_machine(plan), rb_engine_machine(e));
    ck_assert_ptr_nonnull(strstr(rb_engine_impl(e, stem), ", tuned (measured)"));
    ck_assert_ptr_nonnull(strstr(messages, "engine: tuned 2 convolution shapes in "));
    text = cache_text();
    ck_assert_ptr_nonnull(text);
    snprintf(want, sizeof want, "\"%s\":{", rb_engine_machine(e));
    ck_assert_msg(strstr(text, want) != NULL, "%s", text);
    snprintf(want, sizeof want, "\"" STEM_KEY "\":\"%s\"", rb_plan_get(plan, STEM_KEY));
    ck_assert_msg(strstr(text, want) != NULL, "%s", text);
    free(text);
    na = step_grads(e, g, a, 4096);
    rb_engine_destroy(e);
    ref = tuned(g, RB_TUNE_OFF, NULL, false);
    nb = step_grads(ref, g, b, 4096);
    rb_engine_destroy(ref);
    ck_assert_uint_eq(na, nb);
    for (size_t k = 0; k < na; k++)
        ck_assert_msg(fabsf(a[k] - b[k]) <= 1e-4f * (1.0f + fabsf(b[k])), "gradient %zu: %g tuned, %g rules", k,
                      (double)a[k], (double)b[k]);
    ck_assert_int_eq(n_warnings, 0);
    rb_plan_destroy(plan);
    rb_graph_destroy(g);
}
END_TEST

/* cached follows the cache without measuring: a hand-written entry asks
 * for the matmul weight gradient of the body, which the rules never give a
 * convolution of 8 channels (oneDNN has a kernel for it); full measures
 * instead. */
START_TEST(cached_follows_the_cache_and_full_ignores_it)
{
    rb_node *stem, *body;
    rb_graph *g = small_net(&stem, &body);
    rb_engine *e;
    char machine[300], text[1200];
    ck_assert_int_eq(rb_tune_machine(1, machine, sizeof machine), RB_OK);
    snprintf(text, sizeof text,
             "{\"format\": \"robusta-plan-cache\", \"version\": 1, \"machines\": {\"%s\": {\"" BODY_KEY
             "\": \"direct f32 weight-grad=gemm\", \"" STEM_KEY "\": \"direct f32 weight-grad=gemm\"}}}",
             machine);
    write_text(cache_path, text);
    e = tuned(g, RB_TUNE_CACHED, NULL, false);
    ck_assert_msg(strstr(rb_engine_impl(e, body), ", weight gradient by im2col + matmul") != NULL, "%s",
                  rb_engine_impl(e, body));
    ck_assert_ptr_nonnull(strstr(rb_engine_impl(e, body), ", tuned (cache)"));
    ck_assert_ptr_nonnull(strstr(rb_engine_impl(e, stem), "im2col + matmul, tuned (cache)"));
    ck_assert_ptr_null(strstr(messages, "engine: tuned")); /* nothing measured: no info line */
    rb_engine_destroy(e);
    e = tuned(g, RB_TUNE_FULL, NULL, false);
    ck_assert_ptr_nonnull(strstr(rb_engine_impl(e, body), ", tuned (measured)"));
    ck_assert_ptr_nonnull(strstr(messages, "engine: tuned 2 convolution shapes"));
    rb_engine_destroy(e);
    ck_assert_msg(n_warnings == 0, "%s", messages);
    rb_graph_destroy(g);
}
END_TEST

/* A plan given to the engine wins over the cache, and a second engine on
 * the plan of a first computes bit-identical gradients. */
START_TEST(a_given_plan_wins_and_repeats_gradients_bit_for_bit)
{
    rb_node *stem, *body;
    rb_graph *g = small_net(&stem, &body);
    rb_plan *plan, *again;
    rb_engine *e;
    static float a[4096], b[4096];
    size_t na, nb;
    ck_assert_int_eq(rb_plan_create(&plan), RB_OK);
    ck_assert_int_eq(rb_plan_set(plan, BODY_KEY, "direct f32 weight-grad=gemm"), RB_OK);
    e = tuned(g, RB_TUNE_FULL, plan, false);
    ck_assert_ptr_nonnull(strstr(rb_engine_impl(e, body), "im2col + matmul, tuned (plan)"));
    ck_assert_uint_eq(rb_plan_count(plan), 2); /* the stem's choice added */
    na = step_grads(e, g, a, 4096);
    rb_engine_destroy(e);
    ck_assert_int_eq(rb_plan_create(&again), RB_OK);
    for (size_t i = 0; i < rb_plan_count(plan); i++) {
        const char *key, *choice;
        rb_plan_entry(plan, i, &key, &choice);
        ck_assert_int_eq(rb_plan_set(again, key, choice), RB_OK);
    }
    e = tuned(g, RB_TUNE_CACHED, again, false);
    ck_assert_ptr_nonnull(strstr(rb_engine_impl(e, stem), ", tuned (plan)"));
    nb = step_grads(e, g, b, 4096);
    rb_engine_destroy(e);
    ck_assert_uint_eq(na, nb);
    ck_assert_int_eq(memcmp(a, b, na * sizeof *a), 0);
    rb_plan_destroy(plan);
    rb_plan_destroy(again);
    rb_graph_destroy(g);
}
END_TEST

/* Choices this engine cannot run: bf16 under an f32 policy, Winograd under
 * direct, and text that is no choice: one warning each, then measured. */
START_TEST(a_choice_that_cannot_run_here_is_measured_again)
{
    static const char *const bad[] = {"direct bf16 weight-grad=onednn", "winograd f32 weight-grad=onednn",
                                      "fast please", "direct f32 weight-grad=cuda"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rb_node *stem, *body;
        rb_graph *g = small_net(&stem, &body);
        rb_plan *plan;
        rb_engine *e;
        char want[200];
        const char *body_key = i == 1 ? "conv 3x3 8->8 12x12 s1x1 d1x1 p1x1 g1 b4 f32 direct fdw" : BODY_KEY;
        rb_engine_options o = {.threads = 1, .tune = RB_TUNE_CACHED, .plan_cache = cache_path,
                               .conv_algorithm = i == 1 ? RB_CONV_DIRECT : RB_CONV_WINOGRAD};
        messages[0] = '\0';
        n_warnings = 0;
        ck_assert_int_eq(rb_plan_create(&plan), RB_OK);
        ck_assert_int_eq(rb_plan_set(plan, body_key, bad[i]), RB_OK);
        o.plan = plan;
        ck_assert_int_eq(rb_engine_create(&e, g, BATCH, &o), RB_OK);
        snprintf(want, sizeof want, "engine: conv 'body': the plan's choice '%s' cannot run here; measuring again\n",
                 bad[i]);
        ck_assert_msg(strstr(messages, want) != NULL, "%s", messages);
        ck_assert_int_eq(n_warnings, 1);
        ck_assert_str_ne(rb_plan_get(plan, body_key), bad[i]); /* replaced by what was measured */
        ck_assert_ptr_nonnull(strstr(rb_engine_impl(e, body), ", tuned (measured)"));
        rb_engine_destroy(e);
        rb_plan_destroy(plan);
        rb_graph_destroy(g);
    }
}
END_TEST

/* A corrupt cache: one warning, the engine plans, and the file is replaced
 * by a valid one; a read-only folder: one warning, no failure. */
START_TEST(a_corrupt_cache_or_a_read_only_folder_is_one_warning)
{
    rb_node *stem, *body;
    rb_graph *g = small_net(&stem, &body);
    rb_engine *e;
    char *text, file[600];
    write_text(cache_path, "{\"format\": \"robusta-plan-cache\", \"version\": 1, \"machines\": [");
    e = tuned(g, RB_TUNE_CACHED, NULL, false);
    rb_engine_destroy(e);
    ck_assert_int_eq(n_warnings, 1);
    ck_assert_msg(strstr(messages, "not valid JSON") != NULL, "%s", messages);
    text = cache_text();
    ck_assert_ptr_nonnull(strstr(text, STEM_KEY));
    free(text);
    /* a folder that cannot be made (its parent is a file; root too) */
    snprintf(file, sizeof file, "%s/a-file", dir);
    write_text(file, "x");
    snprintf(cache_path, sizeof cache_path, "%s/sub/plans.json", file);
    messages[0] = '\0';
    n_warnings = 0;
    e = tuned(g, RB_TUNE_FULL, NULL, false);
    rb_engine_destroy(e);
    ck_assert_msg(n_warnings == 1 && strstr(messages, "plan cache: cannot create the folder ") != NULL, "%s",
                  messages);
    snprintf(cache_path, sizeof cache_path, "%s/plans.json", dir);
    unlink(file);
    rb_graph_destroy(g);
}
END_TEST

/* off, and engines that never train, neither measure nor touch the cache
 * nor fill the plan; their kernels are the rules'. */
START_TEST(off_and_data_gradient_engines_do_not_tune)
{
    rb_node *stem, *body;
    rb_graph *g = small_net(&stem, &body);
    rb_plan *plan;
    rb_engine *e;
    ck_assert_int_eq(rb_plan_create(&plan), RB_OK);
    e = tuned(g, RB_TUNE_OFF, plan, false);
    ck_assert_ptr_null(strstr(rb_engine_impl(e, body), "tuned"));
    rb_engine_destroy(e);
    e = tuned(g, RB_TUNE_FULL, plan, true);
    ck_assert_ptr_null(strstr(rb_engine_impl(e, body), "tuned"));
    rb_engine_destroy(e);
    ck_assert_uint_eq(rb_plan_count(plan), 0);
    ck_assert_int_eq(access(cache_path, F_OK), -1);
    ck_assert_str_eq(messages, "");
    rb_plan_destroy(plan);
    rb_graph_destroy(g);
}
END_TEST

/* precision auto: keys name the policy, and the engine says what it chose
 * (on a CPU without bf16 convolutions: f32 everywhere); an engine that only
 * computes data gradients runs f32 and says nothing. */
START_TEST(precision_auto_says_what_it_chose)
{
    rb_node *stem, *body;
    rb_graph *g = small_net(&stem, &body);
    rb_plan *plan;
    rb_engine *e;
    rb_engine_options o = {.threads = 1, .tune = RB_TUNE_CACHED, .plan_cache = cache_path,
                           .precision = RB_PRECISION_AUTO};
    rb_precision p = RB_PRECISION_F32;
    ck_assert_int_eq(rb_precision_parse("auto", &p), RB_OK);
    ck_assert_int_eq(p, RB_PRECISION_AUTO);
    ck_assert_str_eq(rb_precision_str(RB_PRECISION_AUTO), "auto");
    ck_assert(rb_precision_available(RB_PRECISION_AUTO));
    ck_assert_int_eq(rb_plan_create(&plan), RB_OK);
    o.plan = plan;
    ck_assert_int_eq(rb_engine_create(&e, g, BATCH, &o), RB_OK);
    ck_assert_ptr_nonnull(rb_plan_get(plan, "conv 3x3 8->8 12x12 s1x1 d1x1 p1x1 g1 b4 auto winograd fdw"));
    if (rb_precision_available(RB_PRECISION_BF16))
        ck_assert_msg(strstr(messages, "engine: precision auto: ") != NULL &&
                          strstr(messages, " of 2 convolutions in bf16 (measured faster here), the rest in f32") != NULL,
                      "%s", messages);
    else
        ck_assert_msg(strstr(messages, "engine: precision auto: this CPU has no bf16 convolutions in oneDNN, so all 2 "
                                       "convolutions run in f32\n") != NULL,
                      "%s", messages);
    rb_engine_destroy(e);
    messages[0] = '\0';
    o.data_grads_only = true;
    ck_assert_int_eq(rb_engine_create(&e, g, BATCH, &o), RB_OK);
    ck_assert_ptr_null(strstr(rb_engine_impl(e, body), "bf16"));
    ck_assert_str_eq(messages, "");
    rb_engine_destroy(e);
    ck_assert_int_eq(rb_engine_create(&e, g, BATCH, &(rb_engine_options){.precision = (rb_precision)9}),
                     RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_engine_create(&e, g, BATCH, &(rb_engine_options){.tune = (rb_tune_mode)9}),
                     RB_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(rb_last_error(), "engine: unknown tuning mode 9");
    rb_plan_destroy(plan);
    rb_graph_destroy(g);
}
END_TEST

/* Where this CPU has them, the Winograd and bf16 candidates are timed and
 * whatever wins computes the step: a 32-channel net (Winograd's kernels
 * block channels by 16) tuned under a Winograd policy, then under precision
 * auto, against the static rules' direct fp32 gradients. Tolerances: 1e-4
 * relative for Winograd (its transforms round at about 1e-6, see
 * check_engine), 3e-2 of the largest gradient for bf16 (8 significant
 * bits through two convolutions). */
static rb_graph *wide_net(rb_node **body)
{
    rb_graph *g;
    rb_node *x, *y, *stem;
    const rb_conv_desc c1 = {.out_channels = 32, .kernel = {3, 3}, .padding = {1, 1}};
    const rb_conv_desc c2 = {.out_channels = 32, .kernel = {3, 3}, .padding = {1, 1}};
    ck_assert_int_eq(rb_graph_create(&g), RB_OK);
    ck_assert_int_eq(rb_graph_input(g, 1, 12, 12, NULL, NULL, &x), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "stem", x, &c1, &stem), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, stem, &y), RB_OK);
    ck_assert_int_eq(rb_graph_conv(g, "body", y, &c2, body), RB_OK);
    ck_assert_int_eq(rb_graph_relu(g, *body, &y), RB_OK);
    ck_assert_int_eq(rb_graph_global_avgpool(g, y, &y), RB_OK);
    ck_assert_int_eq(rb_graph_linear(g, "fc", y, 3, true, &y), RB_OK);
    ck_assert_int_eq(rb_graph_softmax_cross_entropy(g, y, &y), RB_OK);
    randomize(g, 9);
    return g;
}

START_TEST(winograd_and_bf16_candidates_run_where_the_cpu_has_them)
{
    const bool have[2] = {rb_conv_algorithm_available(RB_CONV_WINOGRAD), rb_precision_available(RB_PRECISION_BF16)};
    static const char *const what[2] = {"Winograd", "bf16"};
    for (int k = 0; k < 2; k++) {
        rb_node *body;
        rb_graph *g;
        rb_plan *plan;
        rb_engine *e;
        static float a[65536], b[65536];
        size_t na, nb;
        float largest = 0;
        rb_engine_options o = {.threads = 1, .tune = RB_TUNE_FULL, .plan_cache = cache_path,
                               .precision = k == 1 ? RB_PRECISION_AUTO : RB_PRECISION_F32};
        if (!have[k]) {
            printf("SKIP: tuning among %s kernels (this CPU's oneDNN has none)\n", what[k]);
            continue;
        }
        g = wide_net(&body);
        ck_assert_int_eq(rb_plan_create(&plan), RB_OK);
        o.plan = plan;
        ck_assert_int_eq(rb_engine_create(&e, g, BATCH, &o), RB_OK);
        ck_assert_ptr_nonnull(strstr(rb_engine_impl(e, body), ", tuned (measured)"));
        printf("%s candidates: body %s\n", what[k], rb_engine_impl(e, body));
        na = step_grads(e, g, a, 65536);
        rb_engine_destroy(e);
        ck_assert_int_eq(rb_engine_create(&e, g, BATCH, &(rb_engine_options){.threads = 1,
                                                                             .conv_algorithm = RB_CONV_DIRECT}),
                         RB_OK);
        nb = step_grads(e, g, b, 65536);
        rb_engine_destroy(e);
        ck_assert_uint_eq(na, nb);
        for (size_t i = 0; i < nb; i++)
            largest = fabsf(b[i]) > largest ? fabsf(b[i]) : largest;
        for (size_t i = 0; i < na; i++)
            ck_assert_msg(k == 0 ? fabsf(a[i] - b[i]) <= 1e-4f * (1.0f + fabsf(b[i]))
                                 : fabsf(a[i] - b[i]) <= 3e-2f * largest,
                          "%s: gradient %zu: %g tuned, %g direct fp32", what[k], i, (double)a[i], (double)b[i]);
        rb_plan_destroy(plan);
        rb_graph_destroy(g);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tune");
    TCase *t = tcase_create("tune");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, modes_parse_and_name_themselves);
    tcase_add_test(t, a_plan_keeps_its_choices_in_order);
    tcase_add_test(t, the_machine_key_names_cpu_onednn_and_threads);
    tcase_add_test(t, full_tuning_fills_plan_and_cache);
    tcase_add_test(t, cached_follows_the_cache_and_full_ignores_it);
    tcase_add_test(t, a_given_plan_wins_and_repeats_gradients_bit_for_bit);
    tcase_add_test(t, a_choice_that_cannot_run_here_is_measured_again);
    tcase_add_test(t, a_corrupt_cache_or_a_read_only_folder_is_one_warning);
    tcase_add_test(t, off_and_data_gradient_engines_do_not_tune);
    tcase_add_test(t, precision_auto_says_what_it_chose);
    tcase_add_test(t, winograd_and_bf16_candidates_run_where_the_cpu_has_them);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
