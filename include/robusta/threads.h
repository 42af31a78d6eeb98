/* robusta/threads.h: where compute threads run.
 *
 * robusta's compute threads (oneDNN's, and its own loops) are bound one per
 * core, all on the NUMA node the process starts on when it has enough cores,
 * so that memory stays local. The plan is computed from the hwloc topology:
 * this machine's, or a synthetic one for tests ("package:2 numa:2 core:4
 * pu:2" is two packages of two NUMA nodes of four two-way SMT cores).
 *
 *     rb_topology *topo;
 *     rb_thread_plan *plan;
 *     rb_topology_create(&topo, NULL);                  // this machine
 *     rb_thread_plan_create(&plan, topo, 0, -1);        // default count, home node
 *     for each thread i: rb_thread_plan_bind(plan, i);  // from that thread
 *
 * Default thread count: the cores of the home NUMA node (the node holding
 * the first core the process may run on). Asking for more threads spreads
 * them over the other nodes' cores: the home node's cores in logical order,
 * then the other nodes of its package, then the other packages' nodes;
 * nodes and packages whose logical index is nearest the home's come first
 * (on a tie, the lower index). More threads than cores uses the second
 * hardware thread of each core, in the same core order, with a warning
 * (rb_log); more threads than hardware threads is refused.
 *
 * A plan borrows its topology: destroy the plans before the topology.
 */
#ifndef ROBUSTA_THREADS_H
#define ROBUSTA_THREADS_H

#include <stddef.h>
#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rb_topology rb_topology;
typedef struct rb_thread_plan rb_thread_plan;

/* Loads this machine's topology (synthetic == NULL), restricted to the CPUs
 * the process may run on (its CPU binding: taskset, cgroups, mpirun), or
 * builds the synthetic one described in hwloc's synthetic syntax: levels
 * from the top down, each "type:count", ending with pu ("pack:2 numa:2
 * core:4 pu:2"; "package" works too; "core:4 pu:1" has no NUMA level and
 * gets one node). A bad description fails with RB_ERR_INVALID_ARGUMENT and
 * a line quoting it (hwloc gives no more detail). */
RB_API rb_status rb_topology_create(rb_topology **out, const char *synthetic);
RB_API void rb_topology_destroy(rb_topology *topology);

RB_API int rb_topology_core_count(const rb_topology *topology);
RB_API int rb_topology_pu_count(const rb_topology *topology);
RB_API int rb_topology_numa_count(const rb_topology *topology);
/* Cores of NUMA node `numa` (logical index): those sharing any of its CPUs;
 * 0 if there is no such node (or it has memory but no CPUs). */
RB_API int rb_topology_numa_core_count(const rb_topology *topology, int numa);

/* Plans `threads` threads (0: the default count) starting from NUMA node
 * `home_numa` (logical index; -1: the node of the process's first allowed
 * core; node 0's for a synthetic topology). A negative count, a count above
 * the hardware threads or a node that does not exist fails with
 * RB_ERR_INVALID_ARGUMENT and one line ("--threads 40: this machine has 32
 * hardware threads (16 cores)"). `topology` must outlive the plan. */
RB_API rb_status rb_thread_plan_create(rb_thread_plan **out, const rb_topology *topology,
                                       int threads, int home_numa);
RB_API void rb_thread_plan_destroy(rb_thread_plan *plan);

RB_API int rb_thread_plan_count(const rb_thread_plan *plan);
/* Where thread `index` runs: logical indexes of its core, its processing
 * unit (hardware thread), its NUMA node (the one its core was taken for)
 * and its package (0 when the topology has no package level); -1 if out of
 * range. */
RB_API int rb_thread_plan_core(const rb_thread_plan *plan, int index);
RB_API int rb_thread_plan_pu(const rb_thread_plan *plan, int index);
RB_API int rb_thread_plan_numa(const rb_thread_plan *plan, int index);
RB_API int rb_thread_plan_package(const rb_thread_plan *plan, int index);
/* How many NUMA nodes the plan's threads span. */
RB_API int rb_thread_plan_numa_span(const rb_thread_plan *plan);

/* Binds the calling thread to the processing unit of thread `index`. Only
 * for plans of this machine's topology (synthetic ones are refused with
 * RB_ERR_INVALID_ARGUMENT); RB_ERR_IO when the system refuses. Threads may
 * bind themselves concurrently. */
RB_API rb_status rb_thread_plan_bind(const rb_thread_plan *plan, int index);

/* One line describing the plan: "4 threads on cores 0-3 (NUMA node 0)",
 * "10 threads on cores 0-9 (NUMA nodes 0-2, 2 packages)", "20 threads on
 * cores 0-15, 4 of them sharing a core (NUMA nodes 0-3, 2 packages)". If
 * it does not fit in `size` bytes it is cut (still terminated) and the
 * call fails with RB_ERR_INVALID_ARGUMENT. */
RB_API rb_status rb_thread_plan_describe(const rb_thread_plan *plan, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* ROBUSTA_THREADS_H */
