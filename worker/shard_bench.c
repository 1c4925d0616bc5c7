/* worker/shard_bench.c MODEL.gguf [--buffered] [--staged] [--evict] [--depth N] [--chunk MIB]
 * [--numa]: loads every expert of MODEL as one shard and prints the bytes, the mode and the GB/s
 * reached. --evict first asks the kernel to drop MODEL's cached pages (posix_fadvise DONTNEED,
 * which needs no privilege), so a buffered read is a cold read. --staged makes O_DIRECT reads go
 * through staging buffers and a copy instead of landing in place. Not a test: speed belongs in
 * benchmarks. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/shard_load.h"

static void evict(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0)
        fprintf(stderr, "shard_bench: could not evict %s from the page cache\n", path);
    if (fd >= 0)
        close(fd);
}

int main(int argc, char **argv)
{
    struct shard_read_opts opts = {0};
    bool use_numa = false, drop = false;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--buffered"))
            opts.buffered = true;
        else if (!strcmp(argv[i], "--staged"))
            opts.staged = true;
        else if (!strcmp(argv[i], "--evict"))
            drop = true;
        else if (!strcmp(argv[i], "--numa"))
            use_numa = true;
        else if (!strcmp(argv[i], "--depth") && i + 1 < argc)
            opts.queue_depth = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc)
            opts.chunk_bytes = (size_t)atoi(argv[++i]) << 20;
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else {
            fprintf(stderr, "usage: shard_bench MODEL.gguf [--buffered] [--staged] [--evict] "
                            "[--depth N] [--chunk MIB] [--numa]\n");
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "shard_bench: no model given\n");
        return 2;
    }
    struct mp_error err = {0};
    struct model *m = NULL;
    struct numa_topo *numa = NULL;
    struct expert_ref *refs = NULL;
    size_t n = 0;
    struct shard *s = NULL;
    if (model_open(path, &m, &err) || (use_numa && numa_open(&numa, &err)) ||
        expert_refs_all(m, &refs, &n, &err)) {
        fprintf(stderr, "shard_bench: %s\n", err.msg);
        return 1;
    }
    if (drop)
        evict(path);
    if (shard_load(path, m, refs, n, numa, &opts, &s, &err)) {
        fprintf(stderr, "shard_bench: %s\n", err.msg);
        return 1;
    }
    printf("%zu experts, %.3f GB in %.3f s: %.2f GB/s (%s, depth %d, chunk %zu MiB%s%s)\n", n,
           s->stats.bytes / 1e9, s->stats.seconds, s->stats.gb_per_s,
           s->stats.direct ? "O_DIRECT" : "buffered", opts.queue_depth ? opts.queue_depth : 32,
           opts.chunk_bytes ? opts.chunk_bytes >> 20 : 4, drop ? ", evicted first" : "",
           opts.staged ? ", staged" : "");
    shard_free(s);
    free(refs);
    numa_close(numa);
    model_close(m);
    return 0;
}
