/* coordinator/cluster.h: the coordinator's side of the cluster: workers join over ZeroMQ, get a
 * shard of the experts, and compute each MoE layer's expert outputs for the tokens routed to them.
 *
 * The coordinator binds a ROUTER socket; workers (`moepool worker --join`) dial out with a DEALER,
 * say hello (protocol version, model fingerprint, host, cores, NUMA nodes, SIMD level) and are
 * welcomed into one of expect_workers slots or refused with a reason. Each slot owns a fixed part
 * of the experts, so a worker that restarts takes a free slot and gets the same experts again.
 * A background thread owns the socket: it answers joins, exchanges heartbeats, declares a silent
 * worker dead after heartbeat_timeout_ms and relays expert jobs for cluster_backend().
 *
 * Use: cluster_start, cluster_wait_ready (every slot filled and loaded), then run the forward
 * pass with cluster_backend() as its expert backend (from one thread at a time). A job whose
 * worker dies fails with MP_EPEER and a message naming the worker; the cluster keeps running and
 * the backend works again once the slot is filled (cluster_wait_ready). cluster_status is safe
 * from any thread (for /health and /metrics). */
#ifndef CLUSTER_H
#define CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "kernels/tp.h"
#include "model/expert_backend.h"
#include "model/model.h"
#include "proto/wire.h"

#define CLUSTER_MAX_WORKERS 63 /* + the local shard: 64 holders, one bit each */

struct cluster_opts {
    const char *endpoint;       /* e.g. "tcp://0.0.0.0:5555" */
    int expect_workers;         /* 1..CLUSTER_MAX_WORKERS slots */
    const char *key_file;       /* CURVE key from `moepool keygen`, or NULL for plain TCP */
    const char *placement_file; /* coordinator/placement.h JSON; NULL: contiguous. Its workers
                                 * in file order are the slots; "local" is the local shard */
    enum wire_type wire;        /* activation format both ways (WIRE_F32 by default) */
    int n_max;                  /* most tokens per job (the forward pass's batch); 0: 512 */
    int heartbeat_ms;           /* 0: 500 */
    int heartbeat_timeout_ms;   /* silence before a worker counts as dead; 0: 3000 */
    int job_timeout_ms;         /* longest wait for a live worker's reply; 0: 120000 */
    /* The coordinator holds a share of the experts too, as if it were one more worker (the
     * last share), computed in-process on local_tp while the workers compute theirs. */
    bool local_shard;
    /* Exact mode: workers return one row per (token, expert slot) instead of one partial sum per
     * token, and the coordinator adds them in slot order as the in-process backend does: logits
     * bit-identical to `moepool run` (f32 wire), for up to k/2 times the reply bytes. */
    bool exact;
    /* Pipelining: the backend takes two jobs at once, and the forward pass splits each batch of
     * two or more tokens in halves so one half's attention computes while the other half's
     * experts are remote (model/forward.h). Same results; each expert is read once per half. */
    bool split;
    /* Borrowed; used from the thread that runs the backend: the local shard's threads, and the
     * pool put to sleep (tp_sleep_now) while the backend waits for the workers: the forward
     * pass's pool, so its threads do not spin on cores the workers need. */
    struct tp_pool *local_tp;
};

struct cluster_worker_status {
    bool joined;              /* slot filled by a live worker */
    bool ready;               /* its experts are loaded */
    char host[64];
    char addr[64];            /* peer address as seen by the coordinator */
    int cores;
    char simd[16];
    int64_t n_experts;        /* (layer, expert) pairs assigned */
    double load_gbps;         /* reported by the worker when ready */
    double rtt_ms_last;       /* send -> reply of the last job (includes its compute) */
    double rtt_ms_mean;
    uint64_t jobs;
    uint64_t bytes_sent, bytes_received; /* expert traffic only */
    uint32_t joins;           /* how often this slot was filled */
    bool has_model;           /* the worker has its own model file */
    uint64_t streamed_bytes;  /* model file bytes sent to it since it joined (no model file) */
    double compute_seconds;   /* the worker's own count of time spent on jobs (Stats, ~5 s old) */
};

/* Where a MoE layer's time goes on the coordinator's side (sums over jobs, microseconds):
 * send = grouping, encoding and handing the job to the cluster thread (the first worker may
 * start meanwhile); wait = blocked until the last reply is in; worker = the slowest worker's own
 * compute time per job (from its reply), so send + wait - worker is encoding, transport, relaying
 * and wake-ups; sum = decoding and adding partial sums.
 * Expert slots: per job, the most slots one worker computed and all slots (their ratio times
 * the number of workers is the load imbalance: 1 when perfectly even). */
struct cluster_timing {
    uint64_t jobs;
    uint64_t send_us, wait_us, worker_us, sum_us;
    uint64_t slots_max, slots_total;
};

struct cluster_status {
    int expect_workers;
    int joined;
    int ready;
    bool all_ready;
    enum wire_type wire;
    uint64_t jobs;            /* MoE layer jobs run through the cluster */
    uint64_t token_layers;    /* sum over jobs of tokens */
    double bytes_per_token_layer; /* expert traffic both ways / token_layers */
    uint64_t refused;         /* hellos refused (version, model, key, full) */
    uint64_t garbage;         /* undecodable messages ignored */
    int data_port;            /* the data connections' port (0: none, all relayed) */
    uint64_t direct_requests; /* worker requests sent on its data connection */
    uint64_t relayed_requests; /* ... relayed by the cluster thread (no data connection yet) */
    int64_t local_experts;    /* (layer, expert) pairs computed in-process (local_shard) */
    struct cluster_timing timing;
    struct cluster_worker_status w[CLUSTER_MAX_WORKERS];
};

struct cluster;

/* Binds the endpoint and starts the cluster thread. Borrows m (its fingerprint and expert layout)
 * until cluster_stop. */
int cluster_start(const struct model *m, const struct cluster_opts *o, struct cluster **out,
                  struct mp_error *err);

/* Waits until every slot holds a live worker that has loaded its experts, printing progress
 * lines; timeout_ms < 0 waits forever. MP_ETIMEOUT when time runs out. */
int cluster_wait_ready(struct cluster *c, int timeout_ms, struct mp_error *err);

/* The expert backend that scatters jobs to the workers. Borrows c; one user thread at a time. */
struct expert_backend cluster_backend(struct cluster *c);

void cluster_status(struct cluster *c, struct cluster_status *out);

/* One line (no newline) summarising t per MoE layer job: send, wait, slowest worker, transport,
 * imbalance. */
void cluster_timing_format(const struct cluster_timing *t, int n_workers, char *buf, size_t len);

/* Stops the thread, closes the socket, frees c. NULL-safe. Free the backend first. */
void cluster_stop(struct cluster *c);

#endif
