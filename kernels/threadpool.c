/* kernels/threadpool.c: the persistent thread pool of tp.h.
 *
 * A step is published by bumping a generation counter; workers spin on it for a short while
 * (decode issues the next step within microseconds) and then sleep on a futex, so an idle
 * server does not burn CPUs. Completion is a countdown the caller spins on: the caller works as
 * thread 0, so by the time it finishes its share the others are usually done too. Linux only
 * (futex), like the rest of moepool. */
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kernels/tp.h"

/* How long a worker spins before it sleeps: longer than the gap between two parallel steps of
 * one decode step, far shorter than the gap between requests. */
#define SPIN_NS 300000u

/* Spins (roughly 10 us) before a waiting thread starts yielding its core on every check. */
#define YIELD_AFTER_SPINS 8192u

struct tp_pool {
    int n_threads;            /* counting the caller */
    pthread_t *threads;       /* [n_threads - 1] */
    tp_task_fn fn;            /* the current step, written before gen is bumped */
    void *ctx;
    _Atomic uint32_t gen;     /* bumped once per step; workers futex-wait on it */
    _Atomic int pending;      /* workers still running the current step */
    _Atomic int sleeping;     /* workers in (or entering) futex wait */
    _Atomic uint32_t sleep_gen; /* workers that have seen this gen sleep at once (tp_sleep_now) */
    _Atomic bool stop;
};

struct worker_arg {
    struct tp_pool *pool;
    int ith;
};

/* A spin iteration: a compiler barrier only. PAUSE would be the polite choice on bare metal, but
 * under KVM a loop of PAUSEs trips pause-loop exiting and costs a VM exit: tp_run measured
 * 205 us per step with PAUSE and under 1 us without it (kq_bench). The spin is bounded in time
 * instead (SPIN_NS). */
static inline void cpu_relax(void)
{
    __asm__ volatile("" ::: "memory");
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void futex_wait(_Atomic uint32_t *addr, uint32_t expected)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *addr)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Waits until pool->gen differs from seen and returns the new value. */
static uint32_t wait_for_step(struct tp_pool *pool, uint32_t seen)
{
    const uint64_t t0 = now_ns();
    for (unsigned i = 1;; i++) {
        uint32_t g = atomic_load_explicit(&pool->gen, memory_order_acquire);
        if (g != seen)
            return g;
        cpu_relax();
        if (i >= YIELD_AFTER_SPINS) /* as in tp_run: let a starved thread have this core */
            sched_yield();
        if (i % 1024 == 0 && now_ns() - t0 > SPIN_NS) /* the clock costs ~20 ns: not each time */
            break;
        if (atomic_load_explicit(&pool->sleep_gen, memory_order_relaxed) == seen)
            break;
    }
    for (;;) {
        /* announce sleeping before the last check: tp_run bumps gen, then reads sleeping, so
         * either it sees us and wakes us, or we see its new gen (both seq_cst) */
        atomic_fetch_add(&pool->sleeping, 1);
        uint32_t g = atomic_load(&pool->gen);
        if (g == seen)
            futex_wait(&pool->gen, seen);
        atomic_fetch_sub(&pool->sleeping, 1);
        g = atomic_load_explicit(&pool->gen, memory_order_acquire);
        if (g != seen)
            return g;
    }
}

static void *worker_main(void *p)
{
    struct worker_arg *arg = p;
    struct tp_pool *pool = arg->pool;
    const int ith = arg->ith;
    free(arg);
    /* not a load: the first tp_run may bump gen before this thread gets here */
    uint32_t seen = 0;
    for (;;) {
        seen = wait_for_step(pool, seen);
        if (atomic_load_explicit(&pool->stop, memory_order_acquire))
            return NULL;
        pool->fn(pool->ctx, ith, pool->n_threads);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
    }
}

static int start_worker(struct tp_pool *pool, int ith)
{
    struct worker_arg *arg = malloc(sizeof(*arg));
    if (!arg)
        return -1;
    arg->pool = pool;
    arg->ith = ith;
    if (pthread_create(&pool->threads[ith - 1], NULL, worker_main, arg) != 0) {
        free(arg);
        return -1;
    }
    return 0;
}

struct tp_pool *tp_new(int n_threads)
{
    struct tp_pool *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return NULL;
    const int n = n_threads > 1 ? n_threads : 1;
    pool->threads = calloc((size_t)n, sizeof(*pool->threads));
    if (!pool->threads) {
        free(pool);
        return NULL;
    }
    /* n_threads counts the threads started so far, so tp_free joins exactly those */
    pool->n_threads = 1;
    for (int i = 1; i < n; i++) {
        if (start_worker(pool, i) != 0) {
            tp_free(pool);
            return NULL;
        }
        pool->n_threads = i + 1;
    }
    return pool;
}

void tp_free(struct tp_pool *pool)
{
    if (!pool)
        return;
    atomic_store(&pool->stop, true);
    atomic_fetch_add(&pool->gen, 1);
    futex_wake_all(&pool->gen);
    for (int i = 1; i < pool->n_threads; i++)
        pthread_join(pool->threads[i - 1], NULL);
    free(pool->threads);
    free(pool);
}

int tp_n_threads(const struct tp_pool *pool)
{
    return pool ? pool->n_threads : 1;
}

void tp_sleep_now(struct tp_pool *pool)
{
    if (pool)
        atomic_store_explicit(&pool->sleep_gen, atomic_load(&pool->gen), memory_order_relaxed);
}

void tp_run(struct tp_pool *pool, tp_task_fn fn, void *ctx)
{
    if (!pool || pool->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store_explicit(&pool->pending, pool->n_threads - 1, memory_order_relaxed);
    atomic_fetch_add(&pool->gen, 1); /* seq_cst: publishes fn/ctx/pending, orders with sleeping */
    if (atomic_load(&pool->sleeping) > 0)
        futex_wake_all(&pool->gen);
    fn(ctx, 0, pool->n_threads);
    /* Workers normally finish within microseconds of us. When there are more runnable threads
     * than cores (two servers on one machine, a build running), a worker may be waiting for the
     * very core we spin on: after a short spin, give the core away on every check. */
    for (unsigned i = 0; atomic_load_explicit(&pool->pending, memory_order_acquire) > 0; i++) {
        cpu_relax();
        if (i >= YIELD_AFTER_SPINS)
            sched_yield();
    }
}
