/* worker/numa.c: see numa.h. hwloc gives one view of NUMA nodes, cores and binding across
 * kernels and machines (and synthetic topologies for tests), where libnuma would cover memory
 * only and leave cores to sched_setaffinity bookkeeping. */
#include "worker/numa.h"

#include <errno.h>
#include <hwloc.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

struct numa_topo {
    hwloc_topology_t topo;
    int n_nodes;
    hwloc_obj_t *nodes; /* [n_nodes] NUMA node objects, logical order */
    bool this_system;
    bool warned_alloc, warned_pin;
};

static int topo_load(const char *synthetic, struct numa_topo **out, struct mp_error *err)
{
    *out = NULL;
    struct numa_topo *t = calloc(1, sizeof(*t));
    if (!t)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    if (hwloc_topology_init(&t->topo) != 0) {
        free(t);
        return mp_error_set(err, MP_EIO, "hwloc: cannot initialise a topology");
    }
    if (synthetic && hwloc_topology_set_synthetic(t->topo, synthetic) != 0) {
        hwloc_topology_destroy(t->topo);
        free(t);
        return mp_error_set(err, MP_EINVAL, "hwloc: bad synthetic topology '%s'", synthetic);
    }
    if (hwloc_topology_load(t->topo) != 0) {
        hwloc_topology_destroy(t->topo);
        free(t);
        return mp_error_set(err, MP_EIO, "hwloc: cannot discover the topology: %s",
                            strerror(errno));
    }
    t->this_system = hwloc_topology_is_thissystem(t->topo);
    int n = hwloc_get_nbobjs_by_type(t->topo, HWLOC_OBJ_NUMANODE);
    /* hwloc 2 always reports at least one NUMA node; keep the machine usable if it does not. */
    t->n_nodes = n > 0 ? n : 1;
    t->nodes = calloc((size_t)t->n_nodes, sizeof(*t->nodes));
    if (!t->nodes) {
        numa_close(t);
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++)
        t->nodes[i] = hwloc_get_obj_by_type(t->topo, HWLOC_OBJ_NUMANODE, (unsigned)i);
    if (n <= 0)
        t->nodes[0] = hwloc_get_root_obj(t->topo);
    *out = t;
    return 0;
}

int numa_open(struct numa_topo **out, struct mp_error *err)
{
    /* hwloc_topology_load itself applies HWLOC_SYNTHETIC (and HWLOC_XMLFILE) when set. */
    return topo_load(NULL, out, err);
}

int numa_open_synthetic(const char *desc, struct numa_topo **out, struct mp_error *err)
{
    return topo_load(desc, out, err);
}

void numa_close(struct numa_topo *t)
{
    if (!t)
        return;
    free(t->nodes);
    hwloc_topology_destroy(t->topo);
    free(t);
}

int numa_n_nodes(const struct numa_topo *t)
{
    return t->n_nodes;
}

bool numa_is_this_system(const struct numa_topo *t)
{
    return t->this_system;
}

/* MemFree of node os_index from sysfs, or 0 when the file is absent (no NUMA support). */
static uint64_t sysfs_free_bytes(unsigned os_index)
{
    char path[96], line[256];
    snprintf(path, sizeof(path), "/sys/devices/system/node/node%u/meminfo", os_index);
    FILE *f = fopen(path, "r");
    uint64_t kb = 0;
    while (f && fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, "MemFree:");
        if (p) {
            kb = strtoull(p + strlen("MemFree:"), NULL, 10);
            break;
        }
    }
    if (f)
        fclose(f);
    return kb * 1024;
}

static int count_inside(const struct numa_topo *t, hwloc_const_cpuset_t set, hwloc_obj_type_t type)
{
    return set ? hwloc_get_nbobjs_inside_cpuset_by_type(t->topo, set, type) : 0;
}

struct numa_node_info numa_node(const struct numa_topo *t, int i)
{
    hwloc_obj_t o = t->nodes[i];
    struct numa_node_info info = {.os_index = (int)o->os_index};
    info.n_cores = count_inside(t, o->cpuset, HWLOC_OBJ_CORE);
    info.n_pus = count_inside(t, o->cpuset, HWLOC_OBJ_PU);
    if (info.n_cores == 0) /* machines (or VMs) that report no core objects */
        info.n_cores = info.n_pus;
    info.total_bytes = o->type == HWLOC_OBJ_NUMANODE ? o->attr->numanode.local_memory : 0;
    info.free_bytes = t->this_system ? sysfs_free_bytes(o->os_index) : 0;
    if (info.free_bytes == 0)
        info.free_bytes = info.total_bytes;
    return info;
}

int numa_total_cores(const struct numa_topo *t)
{
    int n = 0;
    for (int i = 0; i < t->n_nodes; i++)
        n += numa_node(t, i).n_cores;
    return n;
}

static bool can_bind_memory(const struct numa_topo *t)
{
    const struct hwloc_topology_support *s = hwloc_topology_get_support(t->topo);
    return t->this_system && t->nodes[0]->type == HWLOC_OBJ_NUMANODE && s->membind->alloc_membind &&
           s->membind->bind_membind;
}

void *numa_alloc(struct numa_topo *t, int node, size_t bytes, struct mp_error *err)
{
    if (node < 0 || node >= t->n_nodes) {
        mp_error_set(err, MP_EINVAL, "NUMA node %d out of range (%d nodes)", node, t->n_nodes);
        return NULL;
    }
    void *p = NULL;
    if (can_bind_memory(t)) {
        p = hwloc_alloc_membind(t->topo, bytes, t->nodes[node]->nodeset, HWLOC_MEMBIND_BIND,
                                HWLOC_MEMBIND_BYNODESET | HWLOC_MEMBIND_STRICT);
        if (!p && errno == ENOMEM) {
            mp_error_set(err, MP_ENOMEM, "out of memory on NUMA node %d (%zu bytes)", node, bytes);
            return NULL;
        }
    }
    if (!p) {
        if (!t->warned_alloc)
            mp_warn("NUMA memory binding is not supported here: expert memory is not bound");
        t->warned_alloc = true;
        p = hwloc_alloc(t->topo, bytes);
    }
    if (!p)
        mp_error_set(err, MP_ENOMEM, "out of memory (%zu bytes)", bytes);
    return p;
}

void numa_free(struct numa_topo *t, void *p, size_t bytes)
{
    if (p)
        hwloc_free(t->topo, p, bytes);
}

struct pin_ctx {
    struct numa_topo *t;
    hwloc_const_cpuset_t node_set;
    int n_cores;
    int failures; /* threads whose binding failed (written under no lock: only counted) */
};

/* Thread ith binds itself to core ith mod n_cores of the node (all PUs of that core) when the
 * pool covers the node's cores; a smaller pool's threads get the whole node: several workers (or
 * a worker and its coordinator) share the machine, and pinning each one's thread 0 to the node's
 * first core would stack them on one core while the others idle. */
static void pin_thread(void *vctx, int ith, int nth)
{
    struct pin_ctx *c = vctx;
    if (nth < c->n_cores) {
        if (hwloc_set_cpubind(c->t->topo, c->node_set, HWLOC_CPUBIND_THREAD) != 0)
            __atomic_fetch_add(&c->failures, 1, __ATOMIC_RELAXED);
        return;
    }
    hwloc_obj_t core = hwloc_get_obj_inside_cpuset_by_type(c->t->topo, c->node_set, HWLOC_OBJ_CORE,
                                                           (unsigned)(ith % c->n_cores));
    if (!core)
        core = hwloc_get_obj_inside_cpuset_by_type(c->t->topo, c->node_set, HWLOC_OBJ_PU,
                                                   (unsigned)(ith % c->n_cores));
    if (!core || hwloc_set_cpubind(c->t->topo, core->cpuset, HWLOC_CPUBIND_THREAD) != 0)
        __atomic_fetch_add(&c->failures, 1, __ATOMIC_RELAXED);
}

int numa_pin_pool(struct numa_topo *t, int node, struct tp_pool *pool, struct mp_error *err)
{
    if (node < 0 || node >= t->n_nodes)
        return mp_error_set(err, MP_EINVAL, "NUMA node %d out of range (%d nodes)", node,
                            t->n_nodes);
    const struct hwloc_topology_support *s = hwloc_topology_get_support(t->topo);
    struct numa_node_info info = numa_node(t, node);
    if (!t->this_system || !s->cpubind->set_thread_cpubind || info.n_cores == 0) {
        if (!t->warned_pin)
            mp_warn("thread pinning is not supported here: threads are not pinned");
        t->warned_pin = true;
        return 0;
    }
    struct pin_ctx c = {.t = t, .node_set = t->nodes[node]->cpuset, .n_cores = info.n_cores};
    tp_run(pool, pin_thread, &c);
    if (c.failures)
        mp_warn("NUMA node %d: %d of %d threads could not be pinned", node, c.failures,
                tp_n_threads(pool));
    return 0;
}

void numa_split(const struct numa_topo *t, int64_t n, int64_t *counts)
{
    const int nn = t->n_nodes;
    int64_t cores[nn], total = 0, given = 0;
    for (int i = 0; i < nn; i++) {
        cores[i] = numa_node(t, i).n_cores;
        total += cores[i];
    }
    if (total == 0) { /* no core information: even split */
        for (int i = 0; i < nn; i++)
            cores[i] = 1;
        total = nn;
    }
    int64_t rem[nn];
    for (int i = 0; i < nn; i++) {
        counts[i] = n * cores[i] / total;
        rem[i] = n * cores[i] % total;
        given += counts[i];
    }
    /* Largest remainders get the leftovers; ties go to the lower node. */
    for (; given < n; given++) {
        int best = 0;
        for (int i = 1; i < nn; i++)
            if (rem[i] > rem[best])
                best = i;
        counts[best]++;
        rem[best] = -1;
    }
}

void numa_print(const struct numa_topo *t, FILE *f)
{
    fprintf(f, "%d NUMA node%s, %d cores%s\n", t->n_nodes, t->n_nodes == 1 ? "" : "s",
            numa_total_cores(t), t->this_system ? "" : " (synthetic topology: no binding)");
    for (int i = 0; i < t->n_nodes; i++) {
        struct numa_node_info info = numa_node(t, i);
        char *cpus = NULL;
        if (t->nodes[i]->cpuset)
            hwloc_bitmap_list_asprintf(&cpus, t->nodes[i]->cpuset);
        fprintf(f, "node %d (os %d): %d cores, %d PUs (cpus %s), memory %.1f GiB, free %.1f GiB\n",
                i, info.os_index, info.n_cores, info.n_pus, cpus ? cpus : "?",
                (double)info.total_bytes / (1u << 30), (double)info.free_bytes / (1u << 30));
        free(cpus);
    }
}
