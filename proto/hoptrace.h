/* proto/hoptrace.h: timestamps of an expert job at each hand-off of its round trip, to see where
 * the time between "the coordinator sends" and "the reply is in" goes.
 *
 * Off (one relaxed atomic load per call) unless the environment variable MOEPOOL_HOP_TRACE names
 * a file prefix. Each process then keeps up to HOPTRACE_MAX records (job id, slot, hop,
 * CLOCK_MONOTONIC in ns: one clock for every process on a machine) in memory and writes them as
 * text to PREFIX.PID when hoptrace_flush is called (cluster_stop, the worker's exit).
 * tools/hop_table.py turns the files of a run into a table of per-hop latencies. */
#ifndef HOPTRACE_H
#define HOPTRACE_H

#include <stdint.h>

#define HOPTRACE_MAX (1 << 20)

/* In the order a round trip crosses them. Hops of a path that was not taken are absent. */
enum hop {
    HOP_EB_SEND,       /* coordinator, forward thread: starts encoding the worker's request */
    HOP_EB_SENT,       /* ... its last frame is handed to ZeroMQ */
    HOP_CLUSTER_OUT,   /* coordinator, cluster thread: took it from the inproc pipe */
    HOP_WORKER_IO_IN,  /* worker, I/O thread: took it from the DEALER */
    HOP_COMPUTE_IN,    /* worker, compute thread: got the request */
    HOP_COMPUTE_DONE,  /* ... reply encoded, handed to ZeroMQ */
    HOP_WORKER_IO_OUT, /* worker, I/O thread: took the reply from the inproc pipe */
    HOP_CLUSTER_IN,    /* coordinator, cluster thread: took the reply from the ROUTER */
    HOP_EB_RECV,       /* coordinator, forward thread: got the reply */
    HOP_N
};

const char *hop_name(enum hop h);

/* True when tracing is on (MOEPOOL_HOP_TRACE set). */
int hoptrace_on(void);

/* Records that job's message for slot passed hop now. Thread-safe, no allocation after the
 * first call. */
void hoptrace(uint64_t job, int slot, enum hop hop);

struct msg;

/* Records hop for the job of the request or reply whose envelope is frame env_frame of m (a
 * relay's view of a message: the job id costs decoding the envelope, so only when tracing is
 * on); other messages are not recorded. */
void hoptrace_msg(struct msg *m, int env_frame, int slot, enum hop hop);

/* Writes the records so far to PREFIX.PID (appending) and forgets them. */
void hoptrace_flush(void);

#endif
