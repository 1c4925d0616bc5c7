/* worker/shard_load.h: reading a worker's experts from the GGUF file into NUMA-local memory.
 *
 * Low level (shard_read_ranges): a list of byte ranges of a file read into destinations with
 * liburing, many reads in flight (queue depth ~32, chunks of a few MiB), with O_DIRECT through
 * straight into place (or through aligned staging buffers) where the filesystem allows it (falling
 * back to buffered reads when the open or the first read says EINVAL), short reads resumed,
 * progress reported.
 *
 * High level (shard_load): given the experts a worker holds, splits them among NUMA nodes in
 * proportion to their cores, allocates each node's memory there, reads each expert's gate/up/down
 * slices of ffn_{gate,up,down}_exps into it, repacks them there (model/repack.h: the x16 layout
 * unless MOEPOOL_LAYOUT=rows) and yields expert tables pointing into that memory: one for the
 * whole shard and one per node. */
#ifndef SHARD_LOAD_H
#define SHARD_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/expert_table.h"
#include "model/model.h"
#include "worker/numa.h"

/* Called from the reading thread as bytes land; done goes from 0 to total. */
typedef void (*shard_progress_fn)(void *ctx, uint64_t done, uint64_t total);

struct shard_read_opts {
    int queue_depth;    /* reads in flight; 0: 32 */
    size_t chunk_bytes; /* bytes per read; 0: 4 MiB */
    bool buffered;      /* true: never try O_DIRECT */
    bool staged;        /* O_DIRECT via staging buffers even where in place works (to compare) */
    shard_progress_fn progress; /* may be NULL */
    void *progress_ctx;
};

struct shard_read_stats {
    uint64_t bytes;
    double seconds;
    double gb_per_s; /* 1e9 bytes per second */
    bool direct;     /* O_DIRECT was used */
};

/* One read: len bytes at file offset into dst.
 *
 * own_blocks: the 4 KiB-aligned blocks of memory around [dst, dst + len) belong to this read
 * alone and may be overwritten (with the neighbouring file bytes). When dst is also congruent to
 * offset modulo 4 KiB, O_DIRECT reads land in place with no staging copy; shard_load lays out its
 * memory so that every read qualifies. */
struct shard_read {
    uint64_t offset;
    uint64_t len;
    void *dst;
    bool own_blocks;
};

/* Reads every request of path; all or nothing (MP_EIO naming the file and offset). opts and
 * stats may be NULL. */
int shard_read_ranges(const char *path, const struct shard_read *reqs, size_t n,
                      const struct shard_read_opts *opts, struct shard_read_stats *stats,
                      struct mp_error *err);

/* The memory of one node of a loaded shard. */
struct shard_node {
    int node; /* index in the numa topology (0 when none) */
    void *mem;
    size_t bytes;
    int64_t n_experts;
    struct expert_table *table; /* the experts held on this node */
};

struct shard {
    struct expert_table *table; /* every expert of the shard */
    int n_nodes;                /* one entry per topology node (some may hold no expert) */
    struct shard_node *nodes;
    int8_t *node_of;        /* [n_layer][n_expert]: node index, -1 when not held */
    struct numa_topo *numa; /* borrowed; NULL: one node, plain memory */
    struct shard_read_stats stats;
};

/* Loads experts[0..n) of model m (opened from path, or from a cache file with the same layout)
 * from path. numa may be NULL (one node, unbound memory). Duplicates and bad (il, e) are refused
 * (MP_EINVAL). The experts of each node are laid out in the order given. */
int shard_load(const char *path, const struct model *m, const struct expert_ref *experts, size_t n,
               struct numa_topo *numa, const struct shard_read_opts *opts, struct shard **out,
               struct mp_error *err);

void shard_free(struct shard *s); /* NULL-safe */

/* Node holding expert e of block il, or -1. */
int shard_node_of(const struct shard *s, int64_t il, int64_t e);

#endif
