/* Timing helpers shared by the benchmarks: a monotonic clock and medians
 * (the machines are shared and noisy, so figures are medians of runs). */
#ifndef RB_BENCHUTIL_H
#define RB_BENCHUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <robusta/graph.h>

static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place and returns its median. */
static inline double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return v[n / 2];
}

/* Peak resident memory of a phase of the process: reset_peak_rss() makes
 * the kernel's high-water mark (VmHWM) start again from the current
 * resident size (Linux's clear_refs "5"), peak_rss_mib() reads it. -1 when
 * /proc does not allow it. bench/torch_reference.py measures PyTorch the
 * same way, so the two figures compare. */
static inline void reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f != NULL) {
        fputs("5", f);
        fclose(f);
    }
}

static inline double peak_rss_mib(void)
{
    char line[256];
    double kib = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "VmHWM:", 6) == 0)
            kib = strtod(line + 6, NULL);
    fclose(f);
    return kib < 0 ? -1 : kib / 1024.0;
}

/* GFLOP of one training step of `g` at `batch`: two per multiply-add of
 * every convolution and linear layer's forward, backward-data and
 * backward-weights, less the backward-data of layers that read the image,
 * which training never runs (rb_graph_training_macs). Batch-norm, ReLU,
 * pooling, the loss and SGD are not counted. */
static inline double training_step_gflop(const rb_graph *g, int64_t batch)
{
    return 2.0 * (double)rb_graph_training_macs(g) * (double)batch * 1e-9;
}

#endif /* RB_BENCHUTIL_H */
