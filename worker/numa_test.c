/* worker/numa_test.c: NUMA discovery and splitting on hwloc synthetic topologies (2 and 4 nodes),
 * plus allocation and pinning on this machine (one node here: binding either works or is skipped
 * with a warning; either way memory is usable and threads run). With --env-nodes N: the
 * HWLOC_SYNTHETIC environment variable is honoured by numa_open. */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "worker/numa.h"

static void check_synthetic(const char *desc, int nodes, int cores_per_node, int pus_per_node)
{
    struct numa_topo *t = NULL;
    struct mp_error err = {0};
    CHECK(numa_open_synthetic(desc, &t, &err) == 0, "%s: %s", desc, err.msg);
    if (!t)
        return;
    CHECK(numa_n_nodes(t) == nodes, "%s: %d nodes", desc, numa_n_nodes(t));
    CHECK(!numa_is_this_system(t), "%s: synthetic counted as this system", desc);
    for (int i = 0; i < numa_n_nodes(t); i++) {
        struct numa_node_info n = numa_node(t, i);
        CHECK(n.n_cores == cores_per_node, "%s node %d: %d cores", desc, i, n.n_cores);
        CHECK(n.n_pus == pus_per_node, "%s node %d: %d PUs", desc, i, n.n_pus);
    }
    CHECK(numa_total_cores(t) == nodes * cores_per_node, "%s: total cores", desc);
    /* Equal nodes: 7 experts go 4/3 (2 nodes) or 2/2/2/1 (4 nodes); 64 split evenly. */
    int64_t counts[8], sum = 0;
    numa_split(t, 7, counts);
    for (int i = 0; i < nodes; i++) {
        sum += counts[i];
        CHECK(counts[i] == 7 / nodes + (i < 7 % nodes), "%s: node %d gets %lld of 7", desc, i,
              (long long)counts[i]);
    }
    CHECK(sum == 7, "%s: split sums to %lld", desc, (long long)sum);
    numa_split(t, 64, counts);
    for (int i = 0; i < nodes; i++)
        CHECK(counts[i] == 64 / nodes, "%s: node %d gets %lld of 64", desc, i,
              (long long)counts[i]);
    /* Binding is skipped on a synthetic topology, allocation still works. */
    void *p = numa_alloc(t, nodes - 1, 1 << 20, &err);
    CHECK(p != NULL, "%s: alloc: %s", desc, err.msg);
    if (p)
        memset(p, 1, 1 << 20);
    numa_free(t, p, 1 << 20);
    CHECK(numa_alloc(t, nodes, 16, &err) == NULL && err.code == MP_EINVAL,
          "%s: node out of range accepted", desc);
    struct tp_pool *pool = tp_new(2);
    CHECK(numa_pin_pool(t, 0, pool, &err) == 0, "%s: pin: %s", desc, err.msg);
    tp_free(pool);
    char buf[4096] = {0};
    FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");
    numa_print(t, f);
    fclose(f);
    CHECK(strstr(buf, "node 1 (os 1)") != NULL, "%s: print:\n%s", desc, buf);
    numa_close(t);
}

static void check_bad_synthetic(void)
{
    struct numa_topo *t = NULL;
    struct mp_error err = {0};
    CHECK(numa_open_synthetic("pack:x numa:?", &t, &err) == MP_EINVAL && !t, "bad desc accepted");
    CHECK(strstr(err.msg, "synthetic") != NULL, "message: %s", err.msg);
}

/* Each pool thread's CPU affinity after pinning: the lowest CPU it may run on, and how many. */
struct affinity {
    int first[8], count[8];
};

static void record_affinity(void *ctx, int ith, int nth)
{
    (void)nth;
    struct affinity *a = ctx;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (ith >= 8 || sched_getaffinity(0, sizeof(set), &set) != 0)
        return;
    a->count[ith] = CPU_COUNT(&set);
    for (int c = CPU_SETSIZE - 1; c >= 0; c--)
        if (CPU_ISSET(c, &set))
            a->first[ith] = c;
}

static void check_this_machine(void)
{
    struct numa_topo *t = NULL;
    struct mp_error err = {0};
    CHECK(numa_open(&t, &err) == 0, "open: %s", err.msg);
    if (!t)
        return;
    CHECK(numa_n_nodes(t) >= 1, "no node");
    CHECK(numa_total_cores(t) >= 1, "no core");
    int64_t counts[64];
    numa_split(t, 100, counts);
    int64_t sum = 0;
    for (int i = 0; i < numa_n_nodes(t); i++)
        sum += counts[i];
    CHECK(sum == 100, "split sums to %lld", (long long)sum);
    size_t bytes = 8u << 20;
    unsigned char *p = numa_alloc(t, 0, bytes, &err);
    CHECK(p != NULL, "alloc: %s", err.msg);
    if (p) {
        memset(p, 0xab, bytes);
        CHECK(p[bytes - 1] == 0xab, "memory not writable");
    }
    numa_free(t, p, bytes);
    /* Pinned: thread ith runs on core ith of node 0 only (cores of this machine's node 0 are
     * distinct, so with two or more cores the two threads get different CPUs). */
    struct tp_pool *pool = tp_new(2);
    CHECK(numa_pin_pool(t, 0, pool, &err) == 0, "pin: %s", err.msg);
    struct affinity a = {0};
    tp_run(pool, record_affinity, &a);
    struct numa_node_info n0 = numa_node(t, 0);
    if (n0.n_cores >= 2 && n0.n_pus == n0.n_cores)
        CHECK(a.count[0] == 1 && a.count[1] == 1 && a.first[0] != a.first[1],
              "threads not pinned to one core each: cpus %d/%d, counts %d/%d", a.first[0],
              a.first[1], a.count[0], a.count[1]);
    printf("pinned: thread 0 on cpu %d (%d allowed), thread 1 on cpu %d (%d allowed)\n", a.first[0],
           a.count[0], a.first[1], a.count[1]);
    tp_free(pool);
    /* A pool smaller than the node (a worker -t 1 beside other processes) may use every PU of
     * the node: pinned to the first core, two such workers would share one core. */
    pool = tp_new(1);
    CHECK(numa_pin_pool(t, 0, pool, &err) == 0, "pin: %s", err.msg);
    a = (struct affinity){0};
    tp_run(pool, record_affinity, &a);
    if (n0.n_cores >= 2)
        CHECK(a.count[0] == n0.n_pus, "one thread on a %d-core node: %d cpus allowed, not %d",
              n0.n_cores, a.count[0], n0.n_pus);
    printf("one thread: %d cpus allowed\n", a.count[0]);
    tp_free(pool);
    numa_print(t, stdout);
    numa_close(t);
}

/* numa_test --env-nodes N: run with HWLOC_SYNTHETIC set; numa_open must honour it. */
static int check_env(int nodes)
{
    struct numa_topo *t = NULL;
    struct mp_error err = {0};
    CHECK(numa_open(&t, &err) == 0, "open: %s", err.msg);
    if (t) {
        CHECK(numa_n_nodes(t) == nodes, "HWLOC_SYNTHETIC gave %d nodes, not %d", numa_n_nodes(t),
              nodes);
        CHECK(!numa_is_this_system(t), "HWLOC_SYNTHETIC topology counted as this system");
        numa_print(t, stdout);
        numa_close(t);
    }
    return failures != 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--env-nodes"))
        return check_env(atoi(argv[2]));
    check_synthetic("pack:2 numa:1 core:2 pu:1", 2, 2, 2);
    check_synthetic("pack:4 numa:1 core:2 pu:2", 4, 2, 4);
    check_synthetic("pack:2 numa:2 core:3 pu:1", 4, 3, 3);
    check_bad_synthetic();
    check_this_machine();
    if (!failures)
        printf("numa_test: ok\n");
    return failures != 0;
}
