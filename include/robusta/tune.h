/* robusta/tune.h: execution plans chosen by measurement.
 *
 * Which kernel is fastest for a convolution depends on the CPU: Winograd
 * beats direct on some AVX-512 parts and not on others, bf16 doubles the
 * speed with avx512_bf16 and halves it where oneDNN emulates it, and the
 * weight gradient of a convolution reading few channels is faster as
 * im2col + a matrix product wherever oneDNN's kernel for the shape is
 * weak. A training engine can therefore time its candidates on the real
 * shapes while it plans (rb_engine_options.tune) and keep the fastest:
 *
 *   RB_TUNE_OFF     the static rules of rb_engine_options (the default in
 *                   C: what every release before tuning did);
 *   RB_TUNE_CACHED  choices remembered in the plan cache are used as they
 *                   are, the rest are measured and remembered (the
 *                   command line's default);
 *   RB_TUNE_FULL    every choice is measured again and the cache updated.
 *
 * What is tuned, per convolution of an engine that trains (engines that
 * only compute data gradients, for attacks and evaluation, keep the
 * precision and algorithm they are given, so that robust accuracy never
 * depends on a timing):
 *   - the algorithm: Winograd or direct, where rb_engine_options allows
 *     Winograd and oneDNN has a kernel for the shape;
 *   - the precision: fp32 or bf16, under RB_PRECISION_AUTO where this CPU
 *     has bf16 convolutions;
 *   - the weight gradient: oneDNN's backward-weights or im2col + matmul,
 *     for ungrouped convolutions reading fewer than 16 channels or where
 *     oneDNN has only its reference kernel.
 * Each candidate runs its forward, backward-data (when the engine computes
 * one) and backward-weights once to warm up and three times timed on
 * buffers of its own; the fastest sum wins, and a challenger must beat the
 * static rule's choice by 3% (timings that close are noise, and the static
 * choice keeps results where they were). Identical shapes are timed once.
 *
 * The plan cache is one JSON file (RB_PLAN_CACHE, else
 * $XDG_CACHE_HOME/robusta/plans.json, else ~/.cache/robusta/plans.json)
 * keyed by the machine (CPU model, ISA, oneDNN version, threads) and, within
 * it, by each choice's key. A corrupt, foreign or unreadable file or a
 * folder that cannot be written is one warning line, never a failure.
 *
 * Keys and choices are text (rb_plan): a key names an op with its shape,
 * batch and the policy it was tuned under,
 *   conv 3x3 64->64 56x56 s1 d1 g1 b32 f32 winograd fdw
 * (kernel, channels, input size, stride, dilation, groups, batch, the
 * precision and algorithm policies, and the passes timed: f forward, d
 * backward-data, w backward-weights), and a choice the kernels picked,
 *   direct f32 weight-grad=onednn
 * An rb_plan given to rb_engine_create is both read and written: choices
 * it holds are used without measuring (a resumed run repeats its kernels,
 * so its results stay bit-identical on the same machine), and every choice
 * the engine makes is added to it, for the run's config.json. */
#ifndef ROBUSTA_TUNE_H
#define ROBUSTA_TUNE_H

#include <stddef.h>

#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rb_tune_mode {
    RB_TUNE_OFF = 0,
    RB_TUNE_CACHED = 1,
    RB_TUNE_FULL = 2
} rb_tune_mode;

/* "off", "cached" or "full"; "?" outside the enum. */
RB_API const char *rb_tune_mode_str(rb_tune_mode mode);
/* Parses "off" / "cached" / "full" into *out; RB_ERR_INVALID_ARGUMENT otherwise. */
RB_API rb_status rb_tune_mode_parse(const char *text, rb_tune_mode *out);

/* A set of choices, key -> choice, and the machine they were made on. */
typedef struct rb_plan rb_plan;

RB_API rb_status rb_plan_create(rb_plan **out);
RB_API void rb_plan_destroy(rb_plan *plan);
/* Adds or replaces a choice. RB_ERR_INVALID_ARGUMENT unless key and choice
 * are 1 to 255 printable ASCII characters. */
RB_API rb_status rb_plan_set(rb_plan *plan, const char *key, const char *choice);
/* The choice for `key`, or NULL. */
RB_API const char *rb_plan_get(const rb_plan *plan, const char *key);
/* Entries in the order they were first set: i in [0, rb_plan_count). */
RB_API size_t rb_plan_count(const rb_plan *plan);
RB_API void rb_plan_entry(const rb_plan *plan, size_t i, const char **key, const char **choice);
/* The machine the plan's choices were made on ("" until set). An engine
 * that adds a choice sets it to rb_tune_machine's text. */
RB_API const char *rb_plan_machine(const rb_plan *plan);
RB_API rb_status rb_plan_set_machine(rb_plan *plan, const char *machine);

/* What makes a measurement hold: "CPU model; oneDNN x.y.z, ISA kernels;
 * N threads" (rb_machine_info and the compute threads). */
RB_API rb_status rb_tune_machine(int threads, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* ROBUSTA_TUNE_H */
