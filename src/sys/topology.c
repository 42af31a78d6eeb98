/* Machine topology and thread placement (robusta/threads.h), on hwloc 2.x.
 *
 * rb_topology flattens what the planner needs out of hwloc once: the cores
 * in logical order with their hardware threads (PUs), packages and NUMA
 * nodes. A plan orders the cores (home NUMA node first, then the other nodes
 * of its package, then the other packages, nearest logical index first),
 * takes each core's first PU, then, when more threads are asked for than
 * there are cores, each core's second PU in the same order, and so on. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <hwloc.h>

#include <robusta/log.h>
#include <robusta/threads.h>

#include "sys/internal.h"

typedef struct topo_core {
    hwloc_obj_t obj;   /* a Core, or a PU where the topology has no cores */
    int package;       /* logical index; 0 when there is no package level */
    int numa;          /* first NUMA node (logical) whose CPUs it shares */
    int pu_count;
    int *pu_logical;   /* its PUs, in logical order */
    unsigned *pu_os;
} topo_core;

typedef struct topo_numa {
    hwloc_const_cpuset_t cpuset;
    int package;       /* package of its first core; -1 when it has none */
    int core_count;
} topo_numa;

/* This machine, as far as the process may run: taskset, cgroups and launchers
 * (mpirun's binding) restrict what robusta plans on. */
#define REAL_TOPOLOGY_FLAGS \
    (HWLOC_TOPOLOGY_FLAG_IS_THISSYSTEM | HWLOC_TOPOLOGY_FLAG_RESTRICT_TO_CPUBINDING)

struct rb_topology {
    hwloc_topology_t hw;
    int synthetic;
    int core_count, pu_count, numa_count;
    topo_core *cores;
    topo_numa *numas;
};

typedef struct plan_slot {
    int core, pu, numa, package;
    unsigned pu_os;
} plan_slot;

struct rb_thread_plan {
    const rb_topology *topology; /* borrowed: must outlive the plan */
    int count;
    plan_slot *slots;
};

/* ------------------------------------------------------------------ topology */

static const char *topology_name(const rb_topology *t)
{
    return t->synthetic ? "the synthetic topology" : "this machine";
}

/* Fills cores[] and numas[] from the loaded hwloc topology. */
static rb_status index_topology(rb_topology *t)
{
    hwloc_topology_t hw = t->hw;
    hwloc_obj_type_t unit = hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE
                                                                            : HWLOC_OBJ_PU;
    int nnuma = hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_NUMANODE);

    t->core_count = hwloc_get_nbobjs_by_type(hw, unit);
    t->pu_count = hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_PU);
    if (t->core_count <= 0 || t->pu_count <= 0)
        return rb_error_set(RB_ERR_UNSUPPORTED, "%s has no processing units that hwloc can see",
                            topology_name(t));
    /* hwloc 2 always reports at least one NUMA node; if not, the whole
     * machine is one. */
    t->numa_count = nnuma > 0 ? nnuma : 1;
    t->cores = calloc((size_t)t->core_count, sizeof *t->cores);
    t->numas = calloc((size_t)t->numa_count, sizeof *t->numas);
    if (t->cores == NULL || t->numas == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "topology: out of memory");

    for (int n = 0; n < t->numa_count; n++) {
        if (nnuma > 0)
            t->numas[n].cpuset = hwloc_get_obj_by_type(hw, HWLOC_OBJ_NUMANODE, (unsigned)n)->cpuset;
        else
            t->numas[n].cpuset = hwloc_topology_get_topology_cpuset(hw);
        t->numas[n].package = -1;
    }

    for (int c = 0; c < t->core_count; c++) {
        topo_core *core = &t->cores[c];
        hwloc_obj_t pkg, pu = NULL;
        int k = 0;

        core->obj = hwloc_get_obj_by_type(hw, unit, (unsigned)c);
        pkg = hwloc_get_ancestor_obj_by_type(hw, HWLOC_OBJ_PACKAGE, core->obj);
        core->package = pkg != NULL ? (int)pkg->logical_index : 0;
        if (unit == HWLOC_OBJ_PU)
            core->pu_count = 1;
        else
            core->pu_count = hwloc_get_nbobjs_inside_cpuset_by_type(hw, core->obj->cpuset,
                                                                    HWLOC_OBJ_PU);
        if (core->pu_count <= 0)
            return rb_error_set(RB_ERR_INTERNAL, "topology: core %d has no processing unit", c);
        core->pu_logical = calloc((size_t)core->pu_count, sizeof *core->pu_logical);
        core->pu_os = calloc((size_t)core->pu_count, sizeof *core->pu_os);
        if (core->pu_logical == NULL || core->pu_os == NULL)
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "topology: out of memory");
        if (unit == HWLOC_OBJ_PU) {
            core->pu_logical[0] = (int)core->obj->logical_index;
            core->pu_os[0] = core->obj->os_index;
        } else {
            while (k < core->pu_count &&
                   (pu = hwloc_get_next_obj_inside_cpuset_by_type(hw, core->obj->cpuset,
                                                                  HWLOC_OBJ_PU, pu)) != NULL) {
                core->pu_logical[k] = (int)pu->logical_index;
                core->pu_os[k] = pu->os_index;
                k++;
            }
            core->pu_count = k;
        }

        core->numa = -1;
        for (int n = 0; n < t->numa_count; n++) {
            if (hwloc_bitmap_intersects(core->obj->cpuset, t->numas[n].cpuset)) {
                if (core->numa < 0)
                    core->numa = n;
                if (t->numas[n].core_count++ == 0)
                    t->numas[n].package = core->package;
            }
        }
        if (core->numa < 0) /* outside every node's CPUs: should not happen */
            core->numa = 0;
    }
    return RB_OK;
}

rb_status rb_topology_create(rb_topology **out, const char *synthetic)
{
    rb_topology *t;
    rb_status status;

    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_topology_create: out is NULL");
    *out = NULL;
    /* hwloc's ABI changes with its major version. */
    if ((hwloc_get_api_version() >> 16) != (HWLOC_API_VERSION >> 16))
        return rb_error_set(RB_ERR_UNSUPPORTED,
                            "robusta was built for hwloc API %#x but runs with hwloc API %#x: "
                            "rebuild robusta against the installed hwloc",
                            (unsigned)HWLOC_API_VERSION, hwloc_get_api_version());
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "topology: out of memory");
    if (hwloc_topology_init(&t->hw) != 0) {
        free(t);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "topology: hwloc cannot start: %s",
                            strerror(errno));
    }
    if (synthetic != NULL) {
        t->synthetic = 1;
        if (hwloc_topology_set_synthetic(t->hw, synthetic) != 0) {
            rb_topology_destroy(t);
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "synthetic topology '%s' is not valid hwloc synthetic syntax "
                                "(levels from the machine down to pu, e.g. "
                                "'pack:2 numa:2 core:4 pu:2')",
                                synthetic);
        }
    } else if (hwloc_topology_set_flags(t->hw, REAL_TOPOLOGY_FLAGS) != 0) {
        rb_topology_destroy(t);
        return rb_error_set(RB_ERR_INTERNAL, "topology: hwloc refuses its flags: %s",
                            strerror(errno));
    }
    if (hwloc_topology_load(t->hw) != 0) {
        int err = errno;
        rb_topology_destroy(t);
        if (synthetic != NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "synthetic topology '%s': hwloc cannot build it: %s", synthetic,
                                strerror(err));
        return rb_error_set(RB_ERR_IO, "cannot read this machine's topology (hwloc): %s",
                            strerror(err));
    }
    status = index_topology(t);
    if (status != RB_OK) {
        rb_topology_destroy(t);
        return status;
    }
    *out = t;
    return RB_OK;
}

void rb_topology_destroy(rb_topology *topology)
{
    if (topology == NULL)
        return;
    if (topology->cores != NULL) {
        for (int c = 0; c < topology->core_count; c++) {
            free(topology->cores[c].pu_logical);
            free(topology->cores[c].pu_os);
        }
    }
    free(topology->cores);
    free(topology->numas);
    hwloc_topology_destroy(topology->hw);
    free(topology);
}

int rb_topology_core_count(const rb_topology *topology)
{
    return topology != NULL ? topology->core_count : 0;
}

int rb_topology_pu_count(const rb_topology *topology)
{
    return topology != NULL ? topology->pu_count : 0;
}

int rb_topology_numa_count(const rb_topology *topology)
{
    return topology != NULL ? topology->numa_count : 0;
}

int rb_topology_numa_core_count(const rb_topology *topology, int numa)
{
    if (topology == NULL || numa < 0 || numa >= topology->numa_count)
        return 0;
    return topology->numas[numa].core_count;
}

/* ------------------------------------------------------------------ planning */

/* The core (index into cores[]) holding the first CPU the process may run
 * on; core 0 for synthetic topologies or when the binding cannot be read. */
static int first_allowed_core(const rb_topology *t)
{
    hwloc_bitmap_t set;
    hwloc_obj_t pu = NULL;
    int first, found = 0;

    if (t->synthetic || (set = hwloc_bitmap_alloc()) == NULL)
        return 0;
    if (hwloc_get_cpubind(t->hw, set, 0) == 0) {
        hwloc_bitmap_and(set, set, hwloc_topology_get_topology_cpuset(t->hw));
        first = hwloc_bitmap_first(set);
        if (first >= 0)
            pu = hwloc_get_pu_obj_by_os_index(t->hw, (unsigned)first);
    }
    hwloc_bitmap_free(set);
    if (pu == NULL)
        return 0;
    for (int c = 0; c < t->core_count; c++) {
        if (hwloc_bitmap_isset(t->cores[c].obj->cpuset, pu->os_index)) {
            found = c;
            break;
        }
    }
    return found;
}

typedef struct numa_rank {
    int numa;
    int key[4]; /* compared in order */
} numa_rank;

static int compare_rank(const void *a, const void *b)
{
    const numa_rank *x = a, *y = b;
    for (int i = 0; i < 4; i++)
        if (x->key[i] != y->key[i])
            return x->key[i] < y->key[i] ? -1 : 1;
    return 0;
}

/* Orders the cores: the home node's in logical order, then the other nodes
 * of its package, then those of the other packages; nodes and packages
 * nearest the home's logical index first (ties: the lower index). Writes
 * core indexes to order[] and the node each was taken for to numa_of[]. */
static rb_status order_cores(const rb_topology *t, int home, int *order, int *numa_of)
{
    int home_pkg = t->numas[home].package, used = 0;
    numa_rank *ranks = calloc((size_t)t->numa_count, sizeof *ranks);
    char *taken = calloc((size_t)t->core_count, 1);

    if (ranks == NULL || taken == NULL) {
        free(ranks);
        free(taken);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "thread plan: out of memory");
    }
    for (int n = 0; n < t->numa_count; n++) {
        int pkg = t->numas[n].package;
        ranks[n].numa = n;
        ranks[n].key[0] = n == home ? 0 : pkg == home_pkg ? 1 : 2;
        ranks[n].key[1] = abs(pkg - home_pkg);
        ranks[n].key[2] = pkg;
        ranks[n].key[3] = abs(n - home) * 2 + (n > home); /* nearer first, then lower */
    }
    qsort(ranks, (size_t)t->numa_count, sizeof *ranks, compare_rank);

    for (int r = 0; r < t->numa_count; r++) {
        const topo_numa *node = &t->numas[ranks[r].numa];
        for (int c = 0; c < t->core_count; c++) {
            if (!taken[c] && hwloc_bitmap_intersects(t->cores[c].obj->cpuset, node->cpuset)) {
                taken[c] = 1;
                order[used] = c;
                numa_of[used++] = ranks[r].numa;
            }
        }
    }
    for (int c = 0; c < t->core_count; c++) { /* cores outside every node */
        if (!taken[c]) {
            order[used] = c;
            numa_of[used++] = t->cores[c].numa;
        }
    }
    free(ranks);
    free(taken);
    return RB_OK;
}

rb_status rb_thread_plan_create(rb_thread_plan **out, const rb_topology *topology, int threads,
                                int home_numa)
{
    rb_thread_plan *plan;
    int *order, *numa_of, capacity = 0, filled = 0;
    rb_status status;

    if (out == NULL || topology == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_thread_plan_create: %s is NULL",
                            out == NULL ? "out" : "topology");
    *out = NULL;
    if (threads < 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "--threads %d: give a positive count, or 0 for one thread per core "
                            "of the home NUMA node",
                            threads);
    if (home_numa < -1 || home_numa >= topology->numa_count)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "NUMA node %d does not exist: %s has %d NUMA node%s (0-%d, or -1 for "
                            "the node the process starts on)",
                            home_numa, topology_name(topology), topology->numa_count,
                            topology->numa_count == 1 ? "" : "s", topology->numa_count - 1);
    if (home_numa == -1)
        home_numa = topology->cores[first_allowed_core(topology)].numa;
    for (int c = 0; c < topology->core_count; c++)
        capacity += topology->cores[c].pu_count;
    if (threads == 0) {
        threads = topology->numas[home_numa].core_count;
        if (threads == 0)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "NUMA node %d has no cores (memory only): give a thread count "
                                "or another home node",
                                home_numa);
    }
    if (threads > capacity)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "--threads %d: %s has %d hardware thread%s (%d core%s)", threads,
                            topology_name(topology), capacity, capacity == 1 ? "" : "s",
                            topology->core_count, topology->core_count == 1 ? "" : "s");

    plan = calloc(1, sizeof *plan);
    order = calloc((size_t)topology->core_count, sizeof *order);
    numa_of = calloc((size_t)topology->core_count, sizeof *numa_of);
    if (plan != NULL)
        plan->slots = calloc((size_t)threads, sizeof *plan->slots);
    if (plan == NULL || plan->slots == NULL || order == NULL || numa_of == NULL) {
        status = rb_error_set(RB_ERR_OUT_OF_MEMORY, "thread plan: out of memory");
        goto fail;
    }
    status = order_cores(topology, home_numa, order, numa_of);
    if (status != RB_OK)
        goto fail;

    /* Round k gives each core, in order, its k-th hardware thread. */
    for (int k = 0; filled < threads; k++) {
        for (int i = 0; i < topology->core_count && filled < threads; i++) {
            const topo_core *core = &topology->cores[order[i]];
            plan_slot *slot;
            if (k >= core->pu_count)
                continue;
            slot = &plan->slots[filled++];
            slot->core = order[i];
            slot->pu = core->pu_logical[k];
            slot->pu_os = core->pu_os[k];
            slot->numa = numa_of[i];
            slot->package = core->package;
        }
    }
    plan->topology = topology;
    plan->count = threads;
    if (threads > topology->core_count)
        rb_log(RB_LOG_WARN,
               "--threads %d: more threads than the %d cores of %s; %d of them share a core "
               "with another thread, which is usually slower for dense compute",
               threads, topology->core_count, topology_name(topology),
               threads - topology->core_count);
    free(order);
    free(numa_of);
    *out = plan;
    return RB_OK;

fail:
    free(order);
    free(numa_of);
    rb_thread_plan_destroy(plan);
    return status;
}

void rb_thread_plan_destroy(rb_thread_plan *plan)
{
    if (plan == NULL)
        return;
    free(plan->slots);
    free(plan);
}

int rb_thread_plan_count(const rb_thread_plan *plan)
{
    return plan != NULL ? plan->count : 0;
}

static const plan_slot *slot_at(const rb_thread_plan *plan, int index)
{
    if (plan == NULL || index < 0 || index >= plan->count)
        return NULL;
    return &plan->slots[index];
}

int rb_thread_plan_core(const rb_thread_plan *plan, int index)
{
    const plan_slot *s = slot_at(plan, index);
    return s != NULL ? s->core : -1;
}

int rb_thread_plan_pu(const rb_thread_plan *plan, int index)
{
    const plan_slot *s = slot_at(plan, index);
    return s != NULL ? s->pu : -1;
}

int rb_thread_plan_numa(const rb_thread_plan *plan, int index)
{
    const plan_slot *s = slot_at(plan, index);
    return s != NULL ? s->numa : -1;
}

int rb_thread_plan_package(const rb_thread_plan *plan, int index)
{
    const plan_slot *s = slot_at(plan, index);
    return s != NULL ? s->package : -1;
}

/* Marks the values of one field of the plan's slots in seen[0..n). Returns
 * how many distinct values there are. */
static int mark_values(const rb_thread_plan *plan, size_t offset, char *seen, int n)
{
    int distinct = 0;
    memset(seen, 0, (size_t)n);
    for (int i = 0; i < plan->count; i++) {
        int v;
        memcpy(&v, (const char *)&plan->slots[i] + offset, sizeof v);
        if (v >= 0 && v < n && !seen[v]) {
            seen[v] = 1;
            distinct++;
        }
    }
    return distinct;
}

int rb_thread_plan_numa_span(const rb_thread_plan *plan)
{
    char *seen;
    int span;
    if (plan == NULL)
        return 0;
    seen = malloc((size_t)plan->topology->numa_count);
    if (seen == NULL)
        return 0;
    span = mark_values(plan, offsetof(plan_slot, numa), seen, plan->topology->numa_count);
    free(seen);
    return span;
}

rb_status rb_thread_plan_bind(const rb_thread_plan *plan, int index)
{
    const plan_slot *s = slot_at(plan, index);
    hwloc_obj_t pu;

    if (s == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "cannot bind thread %d: the plan has %d thread%s", index,
                            rb_thread_plan_count(plan), rb_thread_plan_count(plan) == 1 ? "" : "s");
    if (plan->topology->synthetic)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "cannot bind thread %d: its plan is for a synthetic topology, not "
                            "this machine's",
                            index);
    pu = hwloc_get_obj_by_type(plan->topology->hw, HWLOC_OBJ_PU, (unsigned)s->pu);
    if (pu == NULL)
        return rb_error_set(RB_ERR_INTERNAL, "cannot bind thread %d: hardware thread %d is gone",
                            index, s->pu);
    if (hwloc_set_cpubind(plan->topology->hw, pu->cpuset, HWLOC_CPUBIND_THREAD) != 0)
        return rb_error_set(RB_ERR_IO, "cannot bind thread %d to CPU %u (core %d): %s", index,
                            s->pu_os, s->core, strerror(errno));
    return RB_OK;
}

/* ------------------------------------------------------------------ describe */

typedef struct text_buf {
    char *buf;
    size_t size, len; /* len may exceed size - 1: then the text was cut */
} text_buf;

static void append(text_buf *t, const char *fmt, ...) RB_PRINTF(2, 3);

static void append(text_buf *t, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    if (t->len < t->size)
        n = vsnprintf(t->buf + t->len, t->size - t->len, fmt, ap);
    else
        n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n;
}

/* Appends the indexes marked in seen[0..n) as ranges: "0-3,8,10-11". */
static void append_ranges(text_buf *t, const char *seen, int n)
{
    int first = 1;
    for (int i = 0; i < n; i++) {
        int j = i;
        if (!seen[i])
            continue;
        while (j + 1 < n && seen[j + 1])
            j++;
        if (j == i)
            append(t, "%s%d", first ? "" : ",", i);
        else
            append(t, "%s%d-%d", first ? "" : ",", i, j);
        first = 0;
        i = j;
    }
}

rb_status rb_thread_plan_describe(const rb_thread_plan *plan, char *buf, size_t size)
{
    const rb_topology *topo;
    text_buf t = {buf, size, 0};
    char *seen;
    int n, cores, numas, packages = 0;

    if (plan == NULL || buf == NULL || size == 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_thread_plan_describe: %s",
                            plan == NULL ? "plan is NULL" : "no buffer to write to");
    topo = plan->topology;
    n = topo->core_count > topo->numa_count ? topo->core_count : topo->numa_count;
    for (int i = 0; i < plan->count; i++)
        if (plan->slots[i].package + 1 > n)
            n = plan->slots[i].package + 1;
    seen = malloc((size_t)n);
    if (seen == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "thread plan: out of memory");

    cores = mark_values(plan, offsetof(plan_slot, core), seen, topo->core_count);
    append(&t, "%d thread%s on core%s ", plan->count, plan->count == 1 ? "" : "s",
           cores == 1 ? "" : "s");
    append_ranges(&t, seen, topo->core_count);
    if (plan->count > cores)
        append(&t, ", %d of them sharing a core", plan->count - cores);
    numas = mark_values(plan, offsetof(plan_slot, numa), seen, topo->numa_count);
    append(&t, " (NUMA node%s ", numas == 1 ? "" : "s");
    append_ranges(&t, seen, topo->numa_count);
    packages = mark_values(plan, offsetof(plan_slot, package), seen, n);
    if (packages > 1)
        append(&t, ", %d packages", packages);
    append(&t, ")");
    free(seen);
    if (t.len >= size)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "thread plan description needs %zu bytes, the buffer has %zu",
                            t.len + 1, size);
    return RB_OK;
}
