/* The pieces of the feature cache for any stage: bfloat16 rounding, feature
 * -map splits (any C x H x W, f32 or bf16), heads that read a stage, the
 * detached head that trains on a cache, and what happens to heads the cache
 * cannot serve. Whole transfer runs (sizes, limits, cached against uncached
 * heads) are in check_transfer. */
#include "config.h"

#include <math.h>

#include <robusta/robusta.h>

#include "testutil.h"
#include "testdata.h"
#include "testmodels.h"

static rb_registry *reg;
static char dir[256];

static void setup(void)
{
    ck_assert_int_eq(rb_registry_create(&reg), RB_OK);
    ck_assert_int_eq(rb_registry_load_path(reg, test_env("RB_PLUGIN_PATH")), RB_OK);
    make_temp_dir(dir, sizeof dir);
}

static void teardown(void)
{
    rb_registry_destroy(reg);
    remove_temp_dir(dir);
}

static uint32_t bits_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

static float float_of(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static uint16_t bf16(uint32_t f32_bits)
{
    float f = float_of(f32_bits);
    uint16_t h;
    rb_bf16_from_f32(&f, &h, 1);
    return h;
}

/* ------------------------------------------------------------ bfloat16 */

START_TEST(bf16_rounds_to_nearest_even_on_hand_cases)
{
    /* f32 bits -> bf16 bits, worked out by hand: the kept half is the top
     * 16 bits; the dropped half decides (above 0x8000 up, below down, at
     * 0x8000 to the even kept value). */
    static const struct {
        uint32_t in;
        uint16_t out;
    } cases[] = {
        {0x3f800000u, 0x3f80u}, /* 1 */
        {0x3f808000u, 0x3f80u}, /* 1 + 2^-8: a tie, 0x3f80 is even: down */
        {0x3f818000u, 0x3f82u}, /* 1 + 3 * 2^-8: a tie, 0x3f81 is odd: up */
        {0x3f808001u, 0x3f81u}, /* just above the tie: up */
        {0x3f807fffu, 0x3f80u}, /* just below: down */
        {0xbf818000u, 0xbf82u}, /* the sign plays no part */
        {0x80000000u, 0x8000u}, /* -0 */
        {0x3fffffffu, 0x4000u}, /* 1.99999988: the carry moves into the exponent, 2 */
        {0x7f7fffffu, 0x7f80u}, /* the largest float rounds past the largest bf16: Inf */
        {0x7f7f7fffu, 0x7f7fu}, /* while just under it stays finite */
        {0x7f800000u, 0x7f80u}, /* Inf */
        {0xff800000u, 0xff80u}, /* -Inf */
        {0x7fc00000u, 0x7fc0u}, /* a quiet NaN */
        {0x7f800001u, 0x7fc0u}, /* a signalling NaN whose payload is all in the low half: still a NaN, quiet */
        {0xffa00000u, 0xffe0u}, /* a negative NaN keeps its sign and payload, made quiet */
        {0x00018000u, 0x0002u}, /* subnormal tie, odd: up */
        {0x00008000u, 0x0000u}, /* subnormal tie, even: down to 0 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(bf16(cases[i].in) == cases[i].out, "0x%08x -> 0x%04x, expected 0x%04x", cases[i].in,
                      bf16(cases[i].in), cases[i].out);
    /* back to f32: exact, the low half zero */
    {
        uint16_t h[3] = {0x3f81u, 0xc2f7u, 0x7f80u};
        float f[3];
        rb_bf16_to_f32(h, f, 3);
        ck_assert(f[0] == 1.0f + 1.0f / 128.0f);
        ck_assert(f[1] == -123.5f); /* 0xc2f7 = -(1 + 0x77/128) * 2^6 = -123.5 */
        ck_assert(isinf(f[2]) && f[2] > 0);
    }
}
END_TEST

/* On many floats: the bf16 is one of the two bf16 neighbours of x, the
 * nearer one, and within 2^-8 relative of x (the bound the cache's
 * tolerances rest on). */
START_TEST(bf16_is_the_nearest_neighbour_within_two_to_the_minus_eight)
{
    rb_rng rng;
    enum { N = 200000 };
    rb_rng_init(&rng, 42, 0, 0);
    for (int i = 0; i < N; i++) {
        /* normal floats of every exponent from 2^-100 to 2^100, both signs */
        float x = ldexpf(1.0f + rb_rng_uniform(&rng), (int)(rb_rng_uniform(&rng) * 200.0f) - 100);
        uint16_t h;
        float y, down, up;
        if (rb_rng_uniform(&rng) < 0.5f)
            x = -x;
        rb_bf16_from_f32(&x, &h, 1);
        rb_bf16_to_f32(&h, &y, 1);
        down = float_of(bits_of(x) & 0xffff0000u);
        up = float_of((bits_of(x) & 0xffff0000u) + 0x10000u);
        ck_assert_msg(y == down || y == up, "%a became %a, neither %a nor %a", (double)x, (double)y, (double)down,
                      (double)up);
        ck_assert_msg(fabs((double)y - x) <= fabs((double)(y == down ? up : down) - x), "%a: %a is not the nearer",
                      (double)x, (double)y);
        ck_assert_msg(fabs((double)y - x) <= ldexp(fabs((double)x), -8), "%a: %a is beyond 2^-8", (double)x,
                      (double)y);
    }
}
END_TEST

/* ------------------------------------------------------------ feature-map splits */

START_TEST(feature_map_splits_hold_any_stage_exactly_in_f32)
{
    /* 3 examples of 5 x 2 x 3 (5 channels: more than an image split takes) */
    enum { N = 3, C = 5, H = 2, W = 3, PER = C * H * W };
    float v[N * PER], out[PER];
    int64_t labels[N] = {2, 0, 1};
    const char *names[3] = {"a", "b", "c"};
    rb_split *s;
    int c, h, w;
    for (int i = 0; i < N * PER; i++)
        v[i] = (float)(i - 40) * 0.37f; /* any finite range, negative too */
    ck_assert_int_eq(rb_split_create_feature_maps(&s, RB_DTYPE_F32, N, C, H, W, labels, 3, names, "test maps"),
                     RB_OK);
    ck_assert_int_eq(rb_split_kind(s), RB_DATASET_FEATURES);
    ck_assert_int_eq(rb_split_dtype(s), RB_DTYPE_F32);
    rb_split_shape(s, &c, &h, &w);
    ck_assert(c == C && h == H && w == W);
    ck_assert_uint_eq(rb_split_example_size(s), PER);
    ck_assert_str_eq(rb_split_class_name(s, 1), "b");
    ck_assert_int_eq(rb_split_labels(s)[0], 2);
    /* zero until written; written in two pieces */
    ck_assert_int_eq(rb_split_example(s, 2, NULL, 0, 0, out), RB_OK);
    for (int k = 0; k < PER; k++)
        ck_assert(out[k] == 0.0f);
    ck_assert_int_eq(rb_split_features_write(s, 0, 2, v), RB_OK);
    ck_assert_int_eq(rb_split_features_write(s, 2, 1, v + 2 * PER), RB_OK);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(rb_split_example(s, i, NULL, 0, 0, out), RB_OK);
        ck_assert_msg(memcmp(out, v + i * PER, sizeof out) == 0, "example %d is not as written", i);
    }
    /* augmentation does nothing to features */
    {
        rb_augment aug = {.crop = true, .padding = 2, .flip = true};
        for (int64_t epoch = 0; epoch < 8; epoch++) {
            ck_assert_int_eq(rb_split_example(s, 1, &aug, 9, epoch, out), RB_OK);
            ck_assert_msg(memcmp(out, v + PER, sizeof out) == 0, "epoch %lld augmented a feature map",
                          (long long)epoch);
        }
    }
    rb_split_destroy(s);
}
END_TEST

START_TEST(bf16_feature_map_splits_give_back_the_rounded_values)
{
    enum { N = 4, C = 6, H = 3, W = 1, PER = C * H * W };
    float v[N * PER], out[PER], rounded[N * PER];
    uint16_t h16[N * PER];
    int64_t labels[N] = {0, 1, 0, 1};
    rb_split *s;
    rb_rng rng;
    rb_rng_init(&rng, 7, 0, 0);
    for (int i = 0; i < N * PER; i++)
        v[i] = (rb_rng_uniform(&rng) - 0.5f) * 37.0f;
    rb_bf16_from_f32(v, h16, N * PER);
    rb_bf16_to_f32(h16, rounded, N * PER);
    ck_assert_int_eq(rb_split_create_feature_maps(&s, RB_DTYPE_BF16, N, C, H, W, labels, 2, NULL, NULL), RB_OK);
    ck_assert_int_eq(rb_split_dtype(s), RB_DTYPE_BF16);
    ck_assert_int_eq(rb_split_features_write(s, 0, N, v), RB_OK);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(rb_split_example(s, i, NULL, 0, 0, out), RB_OK);
        ck_assert_msg(memcmp(out, rounded + i * PER, sizeof out) == 0, "example %d is not the bf16 rounding", i);
    }
    /* stored in two bytes a value: the split's images are the bf16 bits */
    ck_assert_msg(memcmp(rb_split_images(s), h16, sizeof h16) == 0, "not stored as bf16");
    /* a loader's batches are the examples, with 0 and 2 threads */
    for (int threads = 0; threads <= 2; threads += 2) {
        rb_loader *l;
        rb_loader_options lo = {.batch_size = 3, .shuffle = true, .seed = 5, .threads = threads,
                                .augment = {.crop = true, .padding = 1, .flip = true}};
        rb_batch b;
        int64_t seen = 0;
        ck_assert_int_eq(rb_loader_create(&l, s, &lo), RB_OK);
        ck_assert_int_eq(rb_loader_start_epoch(l, 1), RB_OK);
        while (rb_loader_next(l, &b) == RB_OK && b.count > 0) {
            ck_assert(b.channels == C && b.height == H && b.width == W);
            for (int64_t k = 0; k < b.count; k++) {
                ck_assert_msg(memcmp(b.images + k * PER, rounded + b.indices[k] * PER, sizeof out) == 0,
                              "loader batch row %lld differs", (long long)k);
                ck_assert_int_eq(b.labels[k], labels[b.indices[k]]);
            }
            seen += b.count;
        }
        ck_assert_int_eq(seen, N);
        rb_loader_destroy(l);
    }
    rb_split_destroy(s);
}
END_TEST

START_TEST(feature_map_splits_refuse_bad_input_with_one_line)
{
    int64_t labels[2] = {0, 1}, bad_labels[2] = {0, 3};
    float v[2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8}, out[4];
    rb_split *s = NULL, *img;
    ck_assert_int_eq(rb_split_create_feature_maps(&s, RB_DTYPE_U8, 2, 4, 1, 1, labels, 2, NULL, "maps"),
                     RB_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(rb_last_error(), "maps: u8 features of 4×1×1 are not supported (f32 or bf16") != NULL, "%s",
                  rb_last_error());
    ck_assert_ptr_null(s);
    ck_assert_int_eq(rb_split_create_feature_maps(&s, RB_DTYPE_F32, 2, 0, 1, 1, labels, 2, NULL, "maps"),
                     RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_split_create_feature_maps(&s, RB_DTYPE_F32, 2, 70000, 1, 1, labels, 2, NULL, "maps"),
                     RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_split_create_feature_maps(&s, RB_DTYPE_F32, 2, 4, 1, 1, bad_labels, 2, NULL, "maps"),
                     RB_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(rb_last_error(), "maps: label 3 of example 1 is out of range [0, 1]") != NULL, "%s",
                  rb_last_error());
    ck_assert_int_eq(rb_split_create_feature_maps(&s, RB_DTYPE_F32, 2, 4, 1, 1, NULL, 2, NULL, "maps"),
                     RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_split_create_feature_maps(&s, RB_DTYPE_BF16, 2, 4, 1, 1, labels, 2, NULL, "maps"), RB_OK);
    /* a NaN in example 1 of two: refused, nothing written */
    v[5] = NAN;
    ck_assert_int_eq(rb_split_features_write(s, 0, 2, v), RB_ERR_NUMERIC);
    ck_assert_msg(strstr(rb_last_error(), "maps: value nan in example 1 is not finite") != NULL, "%s",
                  rb_last_error());
    ck_assert_int_eq(rb_split_example(s, 0, NULL, 0, 0, out), RB_OK);
    ck_assert(out[0] == 0.0f && out[3] == 0.0f);
    v[5] = INFINITY;
    ck_assert_int_eq(rb_split_features_write(s, 1, 1, v + 4), RB_ERR_NUMERIC);
    ck_assert_int_eq(rb_split_features_write(s, 1, 2, v), RB_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(rb_last_error(), "maps: examples 1 to 2 are outside [0, 2)") != NULL, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_features_write(s, -1, 1, v), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_split_features_write(s, 0, 1, NULL), RB_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rb_split_features_write(s, 2, 0, NULL), RB_OK); /* nothing to write */
    rb_split_destroy(s);
    /* an image split is not written through this */
    {
        unsigned char px[2] = {0, 255};
        ck_assert_int_eq(rb_split_create(&img, RB_DTYPE_U8, 2, 1, 1, 1, px, labels, 2, NULL, "pixels"), RB_OK);
        ck_assert_int_eq(rb_split_features_write(img, 0, 1, v), RB_ERR_INVALID_ARGUMENT);
        ck_assert_msg(strstr(rb_last_error(), "pixels is not a split of features") != NULL, "%s", rb_last_error());
        rb_split_destroy(img);
    }
    /* and image splits keep their rules: 5 channels, bf16 are refused */
    ck_assert_int_eq(rb_split_create(&img, RB_DTYPE_F32, 2, 5, 1, 1, v, labels, 2, NULL, "five"),
                     RB_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(rb_last_error(), "1 to 4 channels") != NULL, "%s", rb_last_error());
    ck_assert_int_eq(rb_split_create(&img, RB_DTYPE_BF16, 2, 1, 2, 2, v, labels, 2, NULL, "half"),
                     RB_ERR_INVALID_ARGUMENT);
    /* rb_split_create_features, the vector form, as before */
    v[5] = 6;
    ck_assert_int_eq(rb_split_create_features(&s, 2, 4, v, labels, 2, NULL, "vectors"), RB_OK);
    {
        int c, h, w;
        rb_split_shape(s, &c, &h, &w);
        ck_assert(c == 1 && h == 4 && w == 1);
        ck_assert_int_eq(rb_split_example(s, 1, NULL, 0, 0, out), RB_OK);
        ck_assert(out[0] == 5 && out[3] == 8);
    }
    rb_split_destroy(s);
    v[2] = NAN;
    ck_assert_int_eq(rb_split_create_features(&s, 2, 4, v, labels, 2, NULL, "vectors"), RB_ERR_NUMERIC);
    ck_assert_msg(strstr(rb_last_error(), "vectors: value nan in example 0 is not finite") != NULL, "%s",
                  rb_last_error());
    ck_assert_ptr_null(s);
}
END_TEST

/* ------------------------------------------------------------ heads on stages */

/* A transfer model of small_model's backbone (resnet18, cifar stem, width
 * 1/8) at 8 x 8 with a classify head of `stage` ("" for the default). */
static rb_model *stage_model(const char *stage, const rb_plugin *task, const char *task_param)
{
    rb_model *src = small_model(reg, 8, 3), *m;
    const rb_plugin *classify;
    rb_params *tp;
    if (task == NULL) {
        ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_TASK, "classify", &classify), RB_OK);
        task = classify;
    }
    ck_assert_int_eq(rb_params_create(&tp, task->params), RB_OK);
    if (stage[0] != '\0')
        ck_assert_int_eq(rb_params_set(tp, task_param, stage), RB_OK);
    ck_assert_msg(rb_model_create_with_head(&m, rb_model_arch(src), rb_model_params(src), task, tp,
                                            rb_model_get_input(src), 3) == RB_OK,
                  "%s", rb_last_error());
    ck_assert_int_eq(rb_graph_init_params(rb_model_graph(m), 11), RB_OK);
    ck_assert_int_eq(rb_model_copy_params(m, src, RB_MODEL_BACKBONE, NULL), RB_OK);
    rb_params_destroy(tp);
    rb_model_destroy(src);
    return m;
}

START_TEST(heads_read_the_stage_their_task_names)
{
    /* stage: what the head reads, its shape, the detached head's input */
    static const struct {
        const char *stage, *name;
        int64_t c, h, w, in_c, in_h, in_w;
    } cases[] = {
        {"", "features", 64, 1, 1, 1, 64, 1},     /* the pooled vector, as a 1 x F x 1 image, as ever */
        {"stage1", "stage1", 8, 8, 8, 8, 8, 8},   /* cifar stem: stride 1 */
        {"stage3", "stage3", 32, 2, 2, 32, 2, 2},
        {"stage4", "stage4", 64, 1, 1, 64, 1, 1}, /* 1 x 1, but a stage: it stays C x 1 x 1, its head pools it */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rb_model *m = stage_model(cases[i].stage, NULL, "stage"), *head;
        rb_node *reads[4], *published;
        int64_t c, h, w;
        const rb_model_input *in;
        ck_assert_uint_eq(rb_model_head_inputs(m, reads, 4), 1);
        ck_assert_int_eq(rb_graph_find(rb_model_graph(m), cases[i].name, &published), RB_OK);
        ck_assert_ptr_eq(reads[0], published);
        ck_assert_ptr_eq(rb_model_features(m), published);
        ck_assert_str_eq(rb_model_stage_name(m, published), cases[i].name);
        rb_node_shape(published, &c, &h, &w);
        ck_assert(c == cases[i].c && h == cases[i].h && w == cases[i].w);
        ck_assert_msg(rb_model_head_create(&head, m) == RB_OK, "%s", rb_last_error());
        in = rb_model_get_input(head);
        ck_assert_msg(in->channels == cases[i].in_c && in->height == cases[i].in_h && in->width == cases[i].in_w,
                      "%s: the detached head takes %lldx%lldx%lld", cases[i].name, (long long)in->channels,
                      (long long)in->height, (long long)in->width);
        /* The same head: its parameters copy both ways. */
        ck_assert_int_eq(rb_model_copy_params(head, m, RB_MODEL_ALL, NULL), RB_OK);
        ck_assert_int_eq(rb_model_copy_params(m, head, RB_MODEL_HEAD, NULL), RB_OK);
        rb_model_destroy(head);
        rb_model_destroy(m);
    }
    /* A stage the backbone does not publish at that name is the task's refusal. */
    {
        const rb_plugin *classify;
        rb_params *tp;
        rb_model *src = small_model(reg, 8, 3), *m;
        ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_TASK, "classify", &classify), RB_OK);
        ck_assert_int_eq(rb_params_create(&tp, classify->params), RB_OK);
        ck_assert_int_eq(rb_params_set(tp, "stage", "stage9"), RB_ERR_INVALID_ARGUMENT);
        ck_assert_msg(strstr(rb_last_error(), "--stage: 'stage9' is not one of features|stage1|stage2|stage3|stage4") !=
                          NULL,
                      "%s", rb_last_error());
        rb_params_destroy(tp);
        ck_assert_uint_eq(rb_model_head_inputs(src, NULL, 0), 0); /* no task head */
        ck_assert_ptr_null(rb_model_features(src));
        ck_assert_int_eq(rb_model_head_create(&m, src), RB_ERR_INVALID_ARGUMENT);
        rb_model_destroy(src);
    }
}
END_TEST

/* The detached head on a stage computes the whole model's logits from that
 * stage's values: the same pool and linear layer on the same numbers, so
 * the same bits. */
START_TEST(a_detached_stage_head_gives_the_whole_models_logits)
{
    enum { B = 4 };
    rb_model *m = stage_model("stage2", NULL, "stage"), *head;
    rb_engine *full, *he;
    rb_engine_options eo = {.threads = 1, .data_grads_only = true};
    float images[B * 3 * 8 * 8], stage[B * 16 * 4 * 4], a[B * 3], b[B * 3];
    int64_t labels[B] = {0, 1, 2, 0};
    rb_rng rng;
    rb_rng_init(&rng, 1, 0, 0);
    for (size_t i = 0; i < sizeof images / sizeof images[0]; i++)
        images[i] = rb_rng_uniform(&rng);
    ck_assert_int_eq(rb_model_head_create(&head, m), RB_OK);
    ck_assert_int_eq(rb_model_copy_params(head, m, RB_MODEL_ALL, NULL), RB_OK);
    ck_assert_int_eq(rb_engine_create(&full, rb_model_graph(m), B, &eo), RB_OK);
    ck_assert_int_eq(rb_engine_create(&he, rb_model_graph(head), B, &eo), RB_OK);
    ck_assert_int_eq(rb_engine_forward(full, images, B, labels, false), RB_OK);
    ck_assert_int_eq(rb_engine_read(full, rb_model_features(m), stage), RB_OK);
    ck_assert_int_eq(rb_engine_read(full, rb_model_logits(m), a), RB_OK);
    ck_assert_int_eq(rb_engine_forward(he, stage, B, labels, false), RB_OK);
    ck_assert_int_eq(rb_engine_read(he, rb_model_logits(head), b), RB_OK);
    ck_assert_msg(memcmp(a, b, sizeof a) == 0, "logits differ: %g vs %g", (double)a[0], (double)b[0]);
    rb_engine_destroy(full);
    rb_engine_destroy(he);
    rb_model_destroy(head);
    rb_model_destroy(m);
}
END_TEST

/* ------------------------------------------------------------ heads the cache cannot serve */

/* A task whose head reads two stages (stage3 and stage4, pooled and
 * concatenated), or one node published under no stage name, to show what
 * the cache does with them. */
static const rb_param_spec odd_params[] = {
    {"reads", RB_PARAM_CHOICE, "two", "two|unnamed", 0, "two stages, or a node without a stage name"}, {NULL}};

static rb_status odd_stages(const rb_params *params, const char **names, size_t capacity, size_t *count)
{
    const char *reads = "two";
    rb_status s = rb_params_get_string(params, "reads", &reads);
    (void)capacity;
    names[0] = RB_STAGE_STRIDE32;
    names[1] = RB_STAGE_STRIDE16;
    *count = strcmp(reads, "two") == 0 ? 2 : 1; /* "unnamed" reads inside stage4's block */
    return s;
}

static rb_status odd_head(rb_graph *g, const rb_params *params, const rb_task_target *target, rb_node **outputs,
                         size_t capacity, size_t *count)
{
    rb_node **prediction = &outputs[0];
    const char *reads = "two";
    rb_node *x[2], *y;
    rb_status s = rb_params_get_string(params, "reads", &reads);
    if (s == RB_OK && strcmp(reads, "two") == 0) {
        if ((s = rb_graph_find(g, RB_STAGE_STRIDE16, &x[0])) != RB_OK ||
            (s = rb_graph_find(g, RB_STAGE_STRIDE32, &x[1])) != RB_OK ||
            (s = rb_graph_global_avgpool(g, x[0], &x[0])) != RB_OK ||
            (s = rb_graph_global_avgpool(g, x[1], &x[1])) != RB_OK || (s = rb_graph_concat(g, x, 2, &y)) != RB_OK)
            return s;
    } else if (s == RB_OK) {
        /* the first convolution of layer4, by its own name */
        if ((s = rb_graph_find(g, "layer4.0.conv1", &x[0])) != RB_OK ||
            (s = rb_graph_global_avgpool(g, x[0], &y)) != RB_OK)
            return s;
    }
    (void)capacity;
    *count = 1;
    return s == RB_OK ? rb_graph_linear(g, "fc", y, target->num_classes, true, prediction) : s;
}

static rb_status odd_loss(rb_graph *g, const rb_params *params, rb_node *const *outputs, size_t count,
                          rb_node *targets, rb_node **loss)
{
    (void)params;
    (void)count;
    (void)targets;
    return rb_graph_softmax_cross_entropy(g, outputs[0], loss);
}

static rb_status odd_decode(const rb_params *params, const rb_task_target *target, const float *const *outputs,
                            const int64_t (*shapes)[3], size_t count, int64_t rows, rb_predictions *out)
{
    (void)params;
    (void)target;
    (void)outputs;
    (void)shapes;
    (void)count;
    for (int64_t i = 0; i < rows; i++)
        out->labels[i] = 0;
    return RB_OK;
}

static rb_status odd_metrics_create(const rb_params *params, const rb_task_target *target, void **state)
{
    (void)params;
    (void)target;
    *state = NULL;
    return RB_OK;
}

static rb_status odd_metrics_accumulate(void *state, const rb_predictions *prediction, const rb_targets *target)
{
    (void)state;
    (void)prediction;
    (void)target;
    return RB_OK;
}

static rb_status odd_metrics_finalize(void *state, rb_metric *metrics, size_t capacity, size_t *count)
{
    (void)state;
    if (capacity > 0)
        metrics[0] = (rb_metric){"accuracy", 0.0};
    *count = capacity > 0;
    return RB_OK;
}

static void odd_metrics_destroy(void *state)
{
    (void)state;
}

static const rb_task_ops odd_ops = {
    .kind = RB_PLUGIN_TASK,
    .dataset_kind = RB_DATASET_CLASSIFICATION,
    .primary_metric = "accuracy",
    .stages = odd_stages,
    .decode = odd_decode,
    .build_head = odd_head,
    .build_loss = odd_loss,
    .metrics_create = odd_metrics_create,
    .metrics_accumulate = odd_metrics_accumulate,
    .metrics_finalize = odd_metrics_finalize,
    .metrics_destroy = odd_metrics_destroy,
};

static const rb_plugin odd_task = {
    .abi_version = RB_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(rb_plugin),
    .kind = RB_PLUGIN_TASK,
    .name = "odd",
    .version = "1.0",
    .summary = "a head the feature cache cannot serve",
    .params = odd_params,
    .ops = {.task = &odd_ops},
    .ops_size = sizeof(rb_task_ops),
};

/* A head on two stages detaches with both packed into one row per example,
 * stride16's C·H·W values then stride32's (graph order), each unpacked and
 * published under its stage name again. */
START_TEST(a_head_on_two_stages_detaches_with_both_packed)
{
    rb_model *m = stage_model("two", &odd_task, "reads"), *head = NULL;
    rb_node *reads[2], *s3, *s4, *h3, *h4;
    int64_t c3, hh3, w3, c4, hh4, w4;
    ck_assert_uint_eq(rb_model_head_inputs(m, reads, 2), 2);
    ck_assert_int_eq(rb_graph_find(rb_model_graph(m), RB_STAGE_STRIDE16, &s3), RB_OK);
    ck_assert_int_eq(rb_graph_find(rb_model_graph(m), RB_STAGE_STRIDE32, &s4), RB_OK);
    ck_assert_ptr_eq(reads[0], s3); /* graph order */
    ck_assert_ptr_eq(reads[1], s4);
    ck_assert_ptr_null(rb_model_features(m));
    ck_assert_msg(rb_model_head_create(&head, m) == RB_OK, "%s", rb_last_error());
    rb_node_shape(s3, &c3, &hh3, &w3);
    rb_node_shape(s4, &c4, &hh4, &w4);
    ck_assert_int_eq(rb_model_get_input(head)->channels, 1);
    ck_assert_int_eq(rb_model_get_input(head)->height, 1);
    ck_assert_int_eq(rb_model_get_input(head)->width, c3 * hh3 * w3 + c4 * hh4 * w4);
    ck_assert_uint_eq(rb_model_head_inputs(head, NULL, 0), 2);
    ck_assert_int_eq(rb_graph_find(rb_model_graph(head), RB_STAGE_STRIDE16, &h3), RB_OK);
    ck_assert_int_eq(rb_graph_find(rb_model_graph(head), RB_STAGE_STRIDE32, &h4), RB_OK);
    {
        int64_t c, h, w;
        rb_node_shape(h3, &c, &h, &w);
        ck_assert(c == c3 && h == hh3 && w == w3);
        rb_node_shape(h4, &c, &h, &w);
        ck_assert(c == c4 && h == hh4 && w == w4);
    }
    rb_model_destroy(head);
    rb_model_destroy(m);
}
END_TEST

START_TEST(heads_the_cache_cannot_serve_train_without_it_saying_why)
{
    static const struct {
        const char *reads, *detach_says, *train_says;
    } cases[] = {
        {"unnamed", "the odd head reads 'layer4.0.conv1', which the backbone publishes under no stage name",
         "fixed-feature transfer without a feature cache (model: the odd head reads 'layer4.0.conv1', which the "
         "backbone publishes under no stage name): the frozen backbone runs at every step"},
    };
    char source[PATH_MAX], data[4 * PATH_MAX], out[PATH_MAX];
    rb_model *src = small_model(reg, 8, 3);
    snprintf(source, sizeof source, "%s/source.rbt", dir);
    ck_assert_int_eq(rb_model_save(src, source), RB_OK);
    rb_model_destroy(src);
    write_bar_images(dir, "tx.npy", "ty.npy", 24, 3, 4, 3);
    snprintf(data, sizeof data, "npy:%s/tx.npy,%s/ty.npy", dir, dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rb_model *m = stage_model(cases[i].reads, &odd_task, "reads"), *head = NULL;
        rb_params *tp;
        rb_train_config c;
        rb_train_result res;
        captured cap = {0};
        bool said = false;
        ck_assert_uint_eq(rb_model_head_inputs(m, NULL, 0), 1);
        ck_assert_ptr_null(rb_model_stage_name(m, rb_model_features(m)));
        ck_assert_int_eq(rb_model_head_create(&head, m), RB_ERR_UNSUPPORTED);
        ck_assert_msg(strstr(rb_last_error(), cases[i].detach_says) != NULL, "%s", rb_last_error());
        ck_assert_ptr_null(head);
        rb_model_destroy(m);
        /* rb_train in fixed-feature mode: no cache, one INFO line why, and it trains */
        ck_assert_int_eq(rb_params_create(&tp, odd_params), RB_OK);
        ck_assert_int_eq(rb_params_set(tp, "reads", cases[i].reads), RB_OK);
        c = rb_train_config_default();
        snprintf(out, sizeof out, "%s/run-%s", dir, cases[i].reads);
        c.transfer.source = source;
        c.transfer.registry = reg;
        c.transfer.task = &odd_task;
        c.transfer.task_params = tp;
        c.transfer.fixed_features = true;
        c.data = data;
        c.out_dir = out;
        c.training.epochs = 1;
        c.training.batch_size = 8;
        c.training.eval_batch_size = 8;
        c.training.lr = 0.01;
        c.threads = 1;
        c.augment = false; /* the head's reads must be the reason, not augmentation */
        c.quiet = true;
        rb_log_set_sink(capture_sink, &cap);
        rb_log_set_level(RB_LOG_INFO);
        ck_assert_msg(rb_train(&c, &res) == RB_OK, "%s", rb_last_error());
        rb_log_set_sink(NULL, NULL);
        for (int k = 0; k < cap.count && k < MAX_CAPTURED; k++) {
            ck_assert_msg(strstr(cap.message[k], "caching") == NULL, "cached: %s", cap.message[k]);
            said |= strstr(cap.message[k], cases[i].train_says) != NULL;
        }
        ck_assert_msg(said, "%s: no line saying why the cache was not used (%d lines, first: %s)", cases[i].reads,
                      cap.count, cap.count > 0 ? cap.message[0] : "");
        ck_assert_int_eq(res.epochs_done, 1);
        rb_params_destroy(tp);
    }
}
END_TEST

static Suite *feature_cache_suite(void)
{
    Suite *s = suite_create("feature_cache");
    TCase *tc = tcase_create("feature_cache");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, bf16_rounds_to_nearest_even_on_hand_cases);
    tcase_add_test(tc, bf16_is_the_nearest_neighbour_within_two_to_the_minus_eight);
    tcase_add_test(tc, feature_map_splits_hold_any_stage_exactly_in_f32);
    tcase_add_test(tc, bf16_feature_map_splits_give_back_the_rounded_values);
    tcase_add_test(tc, feature_map_splits_refuse_bad_input_with_one_line);
    tcase_add_test(tc, heads_read_the_stage_their_task_names);
    tcase_add_test(tc, a_detached_stage_head_gives_the_whole_models_logits);
    tcase_add_test(tc, a_head_on_two_stages_detaches_with_both_packed);
    tcase_add_test(tc, heads_the_cache_cannot_serve_train_without_it_saying_why);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(feature_cache_suite());
}
