/* coordinator/metrics.h: GET /metrics in Prometheus' text format (version 0.0.4): request and
 * token counters, queue depth, batch size, generation rate and time to first token from the
 * engine, replies by status from the API, and whatever the configured metrics_hook adds (the
 * placement helper's per-layer/expert routing counts). */
#ifndef MP_METRICS_H
#define MP_METRICS_H

#include "coordinator/http.h"

struct openai_server;

void metrics_reply(struct openai_server *s, struct http_reply *out);

#endif
