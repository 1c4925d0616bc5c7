/* kernels/tp.h: a persistent thread pool. Threads are created once (`-t N`) and woken for each
 * parallel step; a decode step runs hundreds of steps per token, so waking must cost microseconds,
 * not a thread creation. */
#ifndef TP_H
#define TP_H

struct tp_pool;

/* fn runs on every thread: ith in [0, nth). */
typedef void (*tp_task_fn)(void *ctx, int ith, int nth);

/* n_threads counts the caller, which works as thread 0; n_threads <= 1 runs everything inline.
 * Returns NULL if threads cannot be created. */
struct tp_pool *tp_new(int n_threads);
void tp_free(struct tp_pool *pool); /* NULL-safe */
int tp_n_threads(const struct tp_pool *pool); /* 1 for NULL */

/* Runs fn(ctx, ith, nth) on all threads and returns when every one has finished. Not reentrant:
 * one tp_run at a time per pool, from the thread that created it. pool may be NULL (inline). */
void tp_run(struct tp_pool *pool, tp_task_fn fn, void *ctx);

/* The pool's idle threads stop spinning for the next step and sleep until it comes: call it
 * before the caller blocks on something slow (a cluster's workers computing), so the cores go
 * to the processes doing the work. From the thread that calls tp_run; NULL-safe. */
void tp_sleep_now(struct tp_pool *pool);

#endif
