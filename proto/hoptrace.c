/* proto/hoptrace.c: see hoptrace.h. Records go into one array claimed slot by slot with an
 * atomic counter, so the threads of a round trip never wait for each other to trace. */
#include "proto/hoptrace.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "proto/msg.h"

struct hop_record {
    uint64_t job;
    int64_t ns;
    int32_t slot;
    int32_t hop;
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *prefix;
static struct hop_record *records;
static atomic_size_t n_records;

static void init(void)
{
    const char *p = getenv("MOEPOOL_HOP_TRACE");
    if (!p || !*p)
        return;
    records = malloc(HOPTRACE_MAX * sizeof(*records));
    prefix = records ? p : NULL;
}

const char *hop_name(enum hop h)
{
    static const char *names[HOP_N] = {"eb_send",       "eb_sent",    "cluster_out",
                                       "worker_io_in",  "compute_in", "compute_done",
                                       "worker_io_out", "cluster_in", "eb_recv"};
    return h >= 0 && h < HOP_N ? names[h] : "?";
}

int hoptrace_on(void)
{
    pthread_once(&once, init);
    return prefix != NULL;
}

void hoptrace(uint64_t job, int slot, enum hop hop)
{
    if (!hoptrace_on())
        return;
    size_t i = atomic_fetch_add_explicit(&n_records, 1, memory_order_relaxed);
    if (i >= HOPTRACE_MAX)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    records[i] = (struct hop_record){
        .job = job, .ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, .slot = slot, .hop = hop};
}

void hoptrace_flush(void)
{
    if (!hoptrace_on())
        return;
    size_t n = atomic_exchange(&n_records, 0);
    n = n < HOPTRACE_MAX ? n : HOPTRACE_MAX;
    char path[4096];
    snprintf(path, sizeof(path), "%s.%d", prefix, (int)getpid());
    FILE *f = fopen(path, "a");
    if (!f)
        return;
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%llu %d %s %lld\n", (unsigned long long)records[i].job, records[i].slot,
                hop_name(records[i].hop), (long long)records[i].ns);
    fclose(f);
}

void hoptrace_msg(struct msg *m, int env_frame, int slot, enum hop hop)
{
    if (!hoptrace_on() || m->n <= env_frame)
        return;
    Envelope *env = msg_envelope(m, env_frame);
    if (!env)
        return;
    if (env->body_case == ENVELOPE__BODY_REQUEST)
        hoptrace(env->request->job, slot, hop);
    else if (env->body_case == ENVELOPE__BODY_REPLY)
        hoptrace(env->reply->job, slot, hop);
    envelope__free_unpacked(env, NULL);
}
