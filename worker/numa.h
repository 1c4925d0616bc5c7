/* worker/numa.h: the machine's NUMA nodes, memory bound to a node, threads pinned to a node
 * (hwloc). A worker keeps each expert in the memory of the node whose cores compute it.
 *
 * The topology is this machine's, or a synthetic one (numa_open_synthetic, or the HWLOC_SYNTHETIC
 * environment variable, which hwloc itself honours) for tests and manual runs. On a synthetic
 * topology, or where the OS does not support binding, allocation falls back to ordinary
 * page-aligned memory and pinning is skipped, each with one warning. A machine hwloc reports no
 * NUMA node for counts as one node holding every core. */
#ifndef NUMA_H
#define NUMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"
#include "kernels/tp.h"

struct numa_topo;

struct numa_node_info {
    int os_index;         /* the OS's node number */
    int n_cores;          /* physical cores local to the node */
    int n_pus;            /* hardware threads local to the node */
    uint64_t total_bytes; /* node memory, 0 when unknown */
    uint64_t free_bytes;  /* free node memory now (from the OS; total when unknown) */
};

/* This machine's topology (or HWLOC_SYNTHETIC's). */
int numa_open(struct numa_topo **out, struct mp_error *err);
/* A synthetic topology, e.g. "pack:2 numa:1 core:2 pu:1"; binding is skipped on it. */
int numa_open_synthetic(const char *desc, struct numa_topo **out, struct mp_error *err);
void numa_close(struct numa_topo *t); /* NULL-safe */

int numa_n_nodes(const struct numa_topo *t);
/* Node i, 0 <= i < numa_n_nodes (logical order). */
struct numa_node_info numa_node(const struct numa_topo *t, int i);
int numa_total_cores(const struct numa_topo *t);
/* True when the topology is the running machine (binding can work). */
bool numa_is_this_system(const struct numa_topo *t);

/* bytes of page-aligned memory bound to node i (hwloc_alloc_membind, BIND policy); falls back to
 * unbound memory with a warning where binding is not supported. NULL (err set) when out of
 * memory. Free with numa_free and the same size. */
void *numa_alloc(struct numa_topo *t, int node, size_t bytes, struct mp_error *err);
void numa_free(struct numa_topo *t, void *p, size_t bytes); /* NULL-safe */

/* Pins every thread of pool (including the caller, its thread 0) to node i's PUs: thread ith
 * goes to PU ith modulo the node's PUs when the pool has at least as many threads as the node
 * has cores; a smaller pool's threads may each run on any of the node's PUs (other processes,
 * other workers, share the node: pinning would stack every small pool on the first cores).
 * Call from the thread that created the pool. Returns 0, or warns and returns 0 when binding is
 * not supported; fails only on bad arguments. */
int numa_pin_pool(struct numa_topo *t, int node, struct tp_pool *pool, struct mp_error *err);

/* Splits n items among the nodes in proportion to their cores: counts[i] for node i, summing to
 * n, largest remainders first and ties to the lower node (deterministic). counts has
 * numa_n_nodes entries. Used for experts and for threads. */
void numa_split(const struct numa_topo *t, int64_t n, int64_t *counts);

/* Human-readable topology for `moepool worker --print-topology`: one line per node with its
 * cores, PUs and memory. */
void numa_print(const struct numa_topo *t, FILE *f);

#endif
