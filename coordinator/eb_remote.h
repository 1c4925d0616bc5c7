/* coordinator/eb_remote.h: the expert backend that runs each MoE layer's experts on the cluster's
 * workers. Obtain it with cluster_backend() (coordinator/cluster.h); this header only documents it.
 *
 * Per job: each token's slots are grouped by the worker holding their experts; every worker that
 * holds at least one of a token's experts receives that token's hidden state once (in the wire
 * format), its k expert ids (-1 for slots held elsewhere) and weights, and returns one partial
 * sum per token. The partial sums are added in worker order, whatever order replies arrive in:
 * out = ((p_0 + p_1) + p_2) ..., so results are deterministic. With one worker holding all of a
 * token's experts its sum is eb_local's, bit for bit (f32 wire); split tokens differ only by the
 * order of k float additions.
 *
 * Failure: a worker that is lost (no heartbeat for heartbeat_timeout_ms, or gone from its slot)
 * while the job waits for it fails the job with MP_EPEER naming the worker; an error reported by
 * a worker fails it with the worker's message; a live worker that does not answer within
 * job_timeout_ms fails it with MP_ETIMEOUT. Late replies of failed jobs are discarded. */
#ifndef EB_REMOTE_H
#define EB_REMOTE_H

#include "coordinator/cluster.h"

#endif
