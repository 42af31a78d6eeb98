/* robusta.h: the robusta library, for programs that embed it.
 *
 * robusta trains standard and adversarially robust ResNets, attacks and
 * evaluates them, and transfers them to target tasks, on CPUs. Its pieces are
 * plugins (architectures, attacks, tasks) loaded at run time; this library is
 * the runtime that finds them, checks them, gives them typed parameters and
 * runs them.
 *
 * A short tour:
 *
 *   Errors. Functions return rb_status (RB_OK is 0) and write results through
 *   pointers; on failure rb_last_error() holds one line saying what failed,
 *   where, and what to do (robusta/status.h). Handles come in create/destroy
 *   pairs and destroy accepts NULL.
 *
 *       #include <robusta/robusta.h>
 *
 *       rb_registry *reg = NULL;
 *       rb_params *opts = NULL;
 *       const rb_plugin *attack;
 *       rb_status s = rb_registry_create(&reg);
 *       if (s == RB_OK) s = rb_registry_load_default(reg);
 *       if (s == RB_OK) s = rb_registry_find(reg, RB_PLUGIN_ATTACK, "pgd-linf", &attack);
 *       if (s == RB_OK) s = rb_params_create(&opts, attack->params);
 *       if (s == RB_OK) s = rb_params_set(opts, RB_PARAM_EPS, "8/255");
 *       if (s != RB_OK) fprintf(stderr, "error: %s\n", rb_last_error());
 *       rb_params_destroy(opts);
 *       rb_registry_destroy(reg);
 *
 *   Plugins (robusta/plugin.h, robusta/registry.h): a shared object exporting
 *   one const rb_plugin descriptor: kind, name, version, summary, a table of
 *   typed parameters and a table of callbacks for its kind.
 *
 *   Parameters (robusta/params.h): declared as tables, parsed from
 *   "--name value" text, checked against type and range once.
 *
 *   Tensors and random numbers (robusta/tensor.h, robusta/rng.h): row-major
 *   typed arrays, and counter-based streams keyed by (seed, stream, example)
 *   so that runs repeat exactly whatever the thread count.
 *
 *   Logging and progress (robusta/log.h, robusta/progress.h).
 *
 *   COCO evaluation (robusta/coco.h): annotation and results files, and box
 *   AP exactly as pycocotools computes it.
 *
 *   Data parallelism (robusta/dist.h): the ranks of an mpirun/srun job,
 *   with the collectives training uses; one rank in a lone process or a
 *   build without MPI. robusta/grad_sync.h sums a step's gradients over
 *   them in buckets while backward runs.
 *
 *   Grids (robusta/grid.h): grid files that list the source models and
 *   transfers of an experiment, and the table, summary and plot of its
 *   results.
 *
 * Link with `pkg-config --cflags --libs robusta`.
 */
#ifndef ROBUSTA_ROBUSTA_H
#define ROBUSTA_ROBUSTA_H

#include <robusta/version.h>
#include <robusta/status.h>
#include <robusta/log.h>
#include <robusta/progress.h>
#include <robusta/suggest.h>
#include <robusta/params.h>
#include <robusta/tensor.h>
#include <robusta/targets.h>
#include <robusta/task.h>
#include <robusta/rng.h>
#include <robusta/plugin.h>
#include <robusta/registry.h>
#include <robusta/threads.h>
#include <robusta/dist.h>
#include <robusta/graph.h>
#include <robusta/reference.h>
#include <robusta/optim.h>
#include <robusta/grad_sync.h>
#include <robusta/engine.h>
#include <robusta/checkpoint.h>
#include <robusta/interop.h>
#include <robusta/model.h>
#include <robusta/data.h>
#include <robusta/coco.h>
#include <robusta/train.h>
#include <robusta/attack.h>
#include <robusta/autoattack.h>
#include <robusta/grid.h>
#include <robusta/report.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library actually linked ("0.1.0"), which may differ
 * from RB_VERSION_STRING in the headers a program was built with. */
RB_API const char *rb_version_string(void);
RB_API unsigned rb_version_number(void);

/* One line per library robusta is built on, with the versions found at run
 * time ("oneDNN 2.6.3 (cpu isa: avx512_core)"), written into buf. */
RB_API rb_status rb_build_info(char *buf, size_t size);

/* What a result's rounding depends on, as one line: the CPU model (from
 * /proc/cpuinfo, "unknown CPU" where it cannot be read), the oneDNN version
 * and the instruction set its kernels dispatch to ("AMD EPYC 9B45; oneDNN
 * 2.6.3, avx512_core_bf16 kernels"). Runs are bit-reproducible only when this
 * line and the thread count are the same: other kernels sum in another order. */
RB_API rb_status rb_machine_info(char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_ROBUSTA_H */
