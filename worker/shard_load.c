/* worker/shard_load.c: shard_load (see shard_load.h).
 *
 * Each MoE layer's experts of the shard are split among the NUMA nodes in proportion to their
 * cores, so every node has work in every layer (splitting whole layers would leave all nodes but
 * one idle during each layer). A node's memory holds its experts one after the other, each as
 * gate, up, down. Every matrix gets 4 KiB blocks of its own and sits in them at its file offset's
 * position within a block, so O_DIRECT reads land in place (no staging copy) and each matrix has
 * the alignment it has in the file mapping. That costs under 8 KiB per matrix (0.4% of a 2 MB
 * expert matrix). The memory is advised to use transparent huge pages: a multi-GB shard would
 * otherwise take a million page faults as it is first written. Once read, the experts are
 * repacked in place for the x16 kernels (model/repack.h): same bytes, same places. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "model/repack.h"
#include "worker/shard_load.h"

#define BLOCK 4096u

static uint64_t block_down(uint64_t x)
{
    return x & ~(uint64_t)(BLOCK - 1);
}

static uint64_t block_up(uint64_t x)
{
    return block_down(x + BLOCK - 1);
}

/* Where a matrix at file range r goes when the node's memory is used up to `used`: the next free
 * block, at r's offset within a block. *end receives the end of its last block. */
static size_t place_matrix(size_t used, struct file_range r, size_t *end)
{
    size_t at = (size_t)block_up(used) + (size_t)(r.offset % BLOCK);
    *end = (size_t)block_up(at + r.len);
    return at;
}

/* Memory expert e of block il takes in a node's block (three matrices in blocks of their own). */
static size_t slot_bytes(const struct model *m, int64_t il, int64_t e)
{
    struct file_range r[3];
    size_t used = 0;
    expert_file_ranges(m, il, e, r, NULL); /* checked by check_refs */
    for (int j = 0; j < 3; j++)
        place_matrix(used, r[j], &used);
    return used;
}

static void *alloc_plain(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static int check_refs(const struct model *m, const struct expert_ref *x, size_t n, int8_t *node_of,
                      struct mp_error *err)
{
    for (size_t i = 0; i < n; i++) {
        if (x[i].il < 0 || x[i].il >= m->hp.n_layer || !m->hp.is_moe[x[i].il] || x[i].expert < 0 ||
            x[i].expert >= m->hp.n_expert)
            return mp_error_set(err, MP_EINVAL, "shard names block %d expert %d: not in the model",
                                (int)x[i].il, (int)x[i].expert);
        int8_t *at = &node_of[x[i].il * m->hp.n_expert + x[i].expert];
        if (*at != -1)
            return mp_error_set(err, MP_EINVAL, "shard names block %d expert %d twice",
                                (int)x[i].il, (int)x[i].expert);
        *at = 0;
    }
    return 0;
}

/* node_of for every ref: per layer, the layer's refs (in the order given) split by cores. */
static void assign_nodes(const struct model *m, const struct expert_ref *x, size_t n,
                         struct numa_topo *numa, int n_nodes, int8_t *node_of)
{
    int64_t counts[n_nodes];
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        int64_t in_layer = 0;
        for (size_t i = 0; i < n; i++)
            in_layer += x[i].il == il;
        if (!in_layer)
            continue;
        if (numa)
            numa_split(numa, in_layer, counts);
        else
            counts[0] = in_layer;
        int node = 0;
        int64_t used = 0;
        for (size_t i = 0; i < n; i++) {
            if (x[i].il != il)
                continue;
            while (used == counts[node]) {
                node++;
                used = 0;
            }
            node_of[il * m->hp.n_expert + x[i].expert] = (int8_t)node;
            used++;
        }
    }
}

static int alloc_nodes(struct shard *s, const struct model *m, const struct expert_ref *x, size_t n,
                       struct mp_error *err)
{
    for (size_t i = 0; i < n; i++) {
        struct shard_node *nd = &s->nodes[shard_node_of(s, x[i].il, x[i].expert)];
        nd->bytes += slot_bytes(m, x[i].il, x[i].expert);
        nd->n_experts++;
    }
    for (int k = 0; k < s->n_nodes; k++) {
        struct shard_node *nd = &s->nodes[k];
        nd->node = k;
        int rc = expert_table_new(m->hp.n_layer, m->hp.n_expert, &nd->table, err);
        if (rc)
            return rc;
        if (!nd->bytes)
            continue;
        if (s->numa) {
            if (!(nd->mem = numa_alloc(s->numa, k, nd->bytes, err)))
                return MP_ENOMEM; /* numa_alloc said why */
        } else if (!(nd->mem = alloc_plain(nd->bytes))) {
            return mp_error_set(err, MP_ENOMEM, "out of memory for the shard (%zu bytes)",
                                nd->bytes);
        }
        madvise(nd->mem, nd->bytes, MADV_HUGEPAGE); /* advice only: failure changes nothing */
    }
    return 0;
}

/* Places every expert in its node's memory, fills the tables and the read list (3 per expert). */
static int place(struct shard *s, const struct model *m, const struct expert_ref *x, size_t n,
                 struct shard_read *reads, struct mp_error *err)
{
    size_t used[s->n_nodes];
    memset(used, 0, sizeof(used));
    for (size_t i = 0; i < n; i++) {
        const int k = shard_node_of(s, x[i].il, x[i].expert);
        struct file_range r[3];
        int rc = expert_file_ranges(m, x[i].il, x[i].expert, r, err);
        if (rc)
            return rc;
        uint8_t *dst[3];
        for (int j = 0; j < 3; j++) {
            dst[j] = (uint8_t *)s->nodes[k].mem + place_matrix(used[k], r[j], &used[k]);
            reads[3 * i + j] = (struct shard_read){
                .offset = r[j].offset, .len = r[j].len, .dst = dst[j], .own_blocks = true};
        }
        const struct expert_weights w = {.gate = dst[0], .up = dst[1], .down = dst[2]};
        const size_t idx = (size_t)x[i].il * (size_t)m->hp.n_expert + (size_t)x[i].expert;
        s->table->w[idx] = w;
        s->nodes[k].table->w[idx] = w;
    }
    return 0;
}

/* Puts the experts just read in the x16 layout where they lie (model/repack.h), on every CPU:
 * the threads that will compute do not exist yet. Node tables hold copies of the entries. */
static int repack(struct shard *s, const struct model *m, struct mp_error *err)
{
    int rc = repack_expert_table(s->table, m, 0, NULL, err);
    for (int64_t i = 0; !rc && i < s->table->n_layer * s->table->n_expert; i++) {
        const int k = s->node_of[i];
        if (k >= 0)
            memcpy(s->nodes[k].table->w[i].layout, s->table->w[i].layout,
                   sizeof(s->table->w[i].layout));
    }
    return rc;
}

int shard_load(const char *path, const struct model *m, const struct expert_ref *experts, size_t n,
               struct numa_topo *numa, const struct shard_read_opts *opts, struct shard **out,
               struct mp_error *err)
{
    *out = NULL;
    struct shard *s = calloc(1, sizeof(*s));
    if (!s)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    s->numa = numa;
    s->n_nodes = numa ? numa_n_nodes(numa) : 1;
    if (s->n_nodes > INT8_MAX) { /* node_of holds int8_t */
        int n_nodes = s->n_nodes;
        free(s);
        return mp_error_set(err, MP_EUNSUPPORTED, "%d NUMA nodes (at most %d)", n_nodes, INT8_MAX);
    }
    const size_t n_entries = (size_t)(m->hp.n_layer * m->hp.n_expert);
    s->node_of = malloc(n_entries);
    s->nodes = calloc((size_t)s->n_nodes, sizeof(*s->nodes));
    struct shard_read *reads = malloc((n ? n : 1) * 3 * sizeof(*reads));
    int rc = 0;
    if (!s->node_of || !s->nodes || !reads)
        rc = mp_error_set(err, MP_ENOMEM, "out of memory for a shard of %zu experts", n);
    if (!rc) {
        memset(s->node_of, -1, n_entries);
        rc = check_refs(m, experts, n, s->node_of, err);
    }
    if (!rc) {
        assign_nodes(m, experts, n, numa, s->n_nodes, s->node_of);
        rc = expert_table_new(m->hp.n_layer, m->hp.n_expert, &s->table, err);
    }
    if (!rc)
        rc = alloc_nodes(s, m, experts, n, err);
    if (!rc)
        rc = place(s, m, experts, n, reads, err);
    if (!rc)
        rc = shard_read_ranges(path, reads, 3 * n, opts, &s->stats, err);
    if (!rc)
        rc = repack(s, m, err);
    free(reads);
    if (rc) {
        shard_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void shard_free(struct shard *s)
{
    if (!s)
        return;
    for (int k = 0; s->nodes && k < s->n_nodes; k++) {
        if (s->numa)
            numa_free(s->numa, s->nodes[k].mem, s->nodes[k].bytes);
        else if (s->nodes[k].mem)
            munmap(s->nodes[k].mem, s->nodes[k].bytes);
        expert_table_free(s->nodes[k].table);
    }
    free(s->nodes);
    free(s->node_of);
    expert_table_free(s->table);
    free(s);
}

int shard_node_of(const struct shard *s, int64_t il, int64_t e)
{
    if (!s->table || il < 0 || il >= s->table->n_layer || e < 0 || e >= s->table->n_expert)
        return -1;
    return s->node_of[il * s->table->n_expert + e];
}
