/* worker/worker.h: the worker process (`moepool worker`): dials the coordinator, says hello,
 * loads the experts it is assigned and computes expert jobs until it is stopped.
 *
 * Two threads: the I/O thread owns the DEALER socket (hello, heartbeats, reconnects) so the worker
 * stays visibly alive while it loads or computes; the compute thread owns the model, the expert
 * table and the thread pool, and gets assign/request messages over an inproc pipe. A worker that
 * hears nothing from the coordinator for the heartbeat timeout (or gets no welcome) reconnects
 * and says hello again, so it survives coordinator restarts and may start first.
 *
 * Without a model file the worker asks the coordinator for the bytes it needs (the GGUF header,
 * then its experts' slices) and keeps them in a shard cache (worker/shard_cache.h) keyed by the
 * model's fingerprint, so a restarted worker fetches only what it lacks. */
#ifndef WORKER_H
#define WORKER_H

#include "base/err.h"

struct worker_opts {
    const char *endpoint;   /* "tcp://HOST:PORT" */
    const char *model_path; /* NULL: no local model file */
    const char *key_file;   /* CURVE key, or NULL */
    const char *cache_dir;  /* without model_path: where streamed shards are kept (NULL: default) */
    int threads;
    int max_seconds;        /* > 0: exit 0 after this long (tests); 0: run until signalled */
};

/* Runs until SIGINT/SIGTERM (0), a fatal refusal (MP_EINVAL with the coordinator's reason in
 * err) or a failed security handshake (MP_EPEER). */
int worker_run(const struct worker_opts *o, struct mp_error *err);

#endif
