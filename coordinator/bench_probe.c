/* coordinator/bench_probe.c: the read-bandwidth probe. Each thread XORs its contiguous slice of
 * a page-aligned buffer into four independent 16-byte accumulators: enough loads in flight to
 * saturate the memory controller from plain SSE2 code, no instruction-set dispatch needed. */
#include "coordinator/bench_probe.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernels/tp.h"

#define PROBE_PASSES 5

typedef uint64_t u64x2 __attribute__((vector_size(16)));

struct probe_task {
    const uint8_t *buf;
    size_t bytes;
    uint64_t sink[64]; /* one slot per thread (up to 64), so the loads cannot be optimised out */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void probe_slice(void *ctx, int ith, int nth)
{
    struct probe_task *t = ctx;
    size_t n_vec = t->bytes / sizeof(u64x2) / 4 * 4;
    size_t lo = n_vec * (size_t)ith / (size_t)nth / 4 * 4;
    size_t hi = n_vec * (size_t)(ith + 1) / (size_t)nth / 4 * 4;
    const u64x2 *v = (const u64x2 *)t->buf;
    u64x2 a0 = {0, 0}, a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = lo; i < hi; i += 4) {
        a0 ^= v[i];
        a1 ^= v[i + 1];
        a2 ^= v[i + 2];
        a3 ^= v[i + 3];
    }
    u64x2 a = a0 ^ a1 ^ a2 ^ a3;
    t->sink[ith % 64] = a[0] ^ a[1];
}

/* Every 8 bytes different (an LCG), so no page can be merged with another (KSM in the kernel or
 * the hypervisor) and read from cache instead of memory; memset(1) left that possible. */
static void fill_distinct(void *buf, size_t bytes)
{
    uint64_t *w = buf, x = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < bytes / sizeof(*w); i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        w[i] = x;
    }
}

/* The measurement itself, in the child: best of a few passes over a freshly touched buffer. */
static double probe_in_child(int n_threads, size_t bytes)
{
    struct probe_task t = {.bytes = bytes};
    void *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct tp_pool *tp = tp_new(n_threads);
    double best = 0;
    if (buf == MAP_FAILED || !tp)
        return 0;
    /* The weights live in transparent huge pages where the kernel allows it (model/repack.c), so
     * the probe reads from them too: with 4 KiB pages it measured ~32 GB/s in minutes when a
     * decode step streamed its weights at ~39 GB/s (TLB misses). */
    madvise(buf, bytes, MADV_HUGEPAGE);
    fill_distinct(buf, bytes); /* fault every page in: the passes then measure reads only */
    t.buf = buf;
    for (int pass = 0; pass < PROBE_PASSES; pass++) {
        double t0 = now_s();
        tp_run(tp, probe_slice, &t);
        double dt = now_s() - t0;
        if (dt > 0 && (double)bytes / dt > best)
            best = (double)bytes / dt;
    }
    tp_free(tp);
    munmap(buf, bytes);
    return best;
}

int bench_read_bandwidth(int n_threads, size_t bytes, double *bytes_per_s, struct mp_error *err)
{
    int fd[2];
    double bw = 0;
    if (pipe(fd))
        return mp_error_set(err, MP_EIO, "bandwidth probe: pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return mp_error_set(err, MP_EIO, "bandwidth probe: fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(fd[0]);
        bw = probe_in_child(n_threads, bytes);
        ssize_t w = write(fd[1], &bw, sizeof(bw));
        _exit(w == (ssize_t)sizeof(bw) ? 0 : 1);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], &bw, sizeof(bw));
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof(bw) || !WIFEXITED(status) || WEXITSTATUS(status) || bw <= 0)
        return mp_error_set(err, MP_ENOMEM, "bandwidth probe: could not read a %zu MiB buffer",
                            bytes >> 20);
    *bytes_per_s = bw;
    return 0;
}
