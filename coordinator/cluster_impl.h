/* coordinator/cluster_impl.h: the cluster's state, shared by its files (cluster.c: the thread
 * that owns the ROUTER socket; cluster_zap.c: CURVE admission; eb_remote.c: the expert backend
 * on the caller's thread). Not for other concerns: they use cluster.h. */
#ifndef CLUSTER_IMPL_H
#define CLUSTER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "coordinator/cluster.h"
#include "proto/keyfile.h"
#include "proto/msg.h"

#define SLOT_ID_MAX 256
/* Routing id of a worker's data connection: 'd' and 8 random bytes, fresh for every join. */
#define DATA_ID_LEN 9

/* One of expect_workers places a worker can fill. Guarded by cluster.mu. */
struct slot {
    unsigned char id[SLOT_ID_MAX]; /* the worker's ROUTER identity */
    size_t id_len;
    uint32_t gen;       /* bumped whenever the slot is filled or emptied */
    int64_t last_seen;  /* ms (mono_ms) of the worker's latest message */
    uint64_t instance;
    unsigned char data_id[DATA_ID_LEN]; /* its data connection's routing id (Welcome.data_id) */
    struct cluster_worker_status st;
};

struct cluster {
    const struct model *m;
    struct cluster_opts o;
    char fingerprint[33];
    /* [n_layer][n_expert]: bit w set when holder w holds the expert. Holders are the worker
     * slots 0..expect_workers-1, then the coordinator's local shard (bit expect_workers). */
    uint64_t *holders;
    void *ctx;
    void *router;       /* thread: workers */
    void *pipe_thread;  /* thread end of the inproc pipe to eb_remote */
    void *pipe_eb;      /* eb_remote's end */
    void *monitor;      /* thread: ROUTER handshake events */
    void *zap;          /* thread: ZAP requests, when a key is set */
    /* The data ROUTER: workers' compute threads connect to it (Welcome.data_port) and eb_remote,
     * on the forward pass's thread, sends requests and takes replies on it directly, without
     * the cluster thread. NULL when the endpoint is not TCP: everything is relayed. */
    void *data;
    int data_port;
    int has_key;
    struct cluster_key key;
    pthread_t thread;
    int thread_started;
    atomic_int stop;
    pthread_mutex_t mu;
    pthread_cond_t changed; /* a slot joined, became ready or was lost */
    struct slot slot[CLUSTER_MAX_WORKERS];
    uint64_t refused, garbage;          /* under mu */
    uint64_t jobs, token_layers, bytes; /* under mu, written by eb_remote */
    uint64_t direct_requests, relayed_requests; /* under mu, written by eb_remote */
    struct cluster_timing timing;       /* under mu, written by eb_remote */
    struct eb_remote *eb;
};

int64_t mono_ms(void);
int64_t mono_us(void);

/* cluster_plan.c: fills c->holders (contiguous shares, or the placement file). */
int cluster_plan(struct cluster *c, struct mp_error *err);

/* cluster_join.c, on the cluster thread. m: [identity][envelope]...; addr: the peer's address. */
int cluster_find_slot(struct cluster *c, const void *id, size_t len); /* under c->mu */
void cluster_send_to(struct cluster *c, const void *id, size_t len, const Envelope *env);
void cluster_refuse(struct cluster *c, struct msg *m, const char *addr, int retry,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void cluster_on_hello(struct cluster *c, struct msg *m, const Hello *h, const char *addr);
void cluster_on_ready(struct cluster *c, int s, const Ready *r);
void cluster_on_fetch(struct cluster *c, struct msg *m, int s, const Fetch *f);
void cluster_garbage(struct cluster *c, const char *addr, const char *what);

/* cluster_zap.c: binds the ZAP endpoint (before the ROUTER binds) and answers one request. */
int zap_open(struct cluster *c, struct mp_error *err);
void zap_handle(struct cluster *c);

/* eb_remote.c */
int eb_remote_new(struct cluster *c, struct mp_error *err);
void eb_remote_delete(struct eb_remote *r);
extern const struct eb_ops eb_remote_ops, eb_remote_split_ops;

#endif
