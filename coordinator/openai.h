/* coordinator/openai.h: the OpenAI-compatible API on top of the engine: routes, request parsing,
 * chat rendering, responses and Server-Sent-Event streams in OpenAI's formats, and OpenAI's
 * error object {"error":{"message","type","param","code"}} with the matching HTTP status.
 *
 *   POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health,
 *   GET /metrics (Prometheus text), GET / and other page paths (coordinator/web_assets.h). */
#ifndef MP_OPENAI_H
#define MP_OPENAI_H

#include <stdbool.h>
#include <stdio.h>

#include "coordinator/engine.h"
#include "coordinator/http.h"
#include "model/chat_template.h"

/* Adds lines of Prometheus text to /metrics (e.g. per-layer/expert routing counts). */
typedef void (*metrics_hook)(void *ctx, FILE *out);

struct openai_config {
    struct engine *engine;      /* borrowed */
    const char *model_id;       /* the name /v1/models lists and requests must use */
    enum chat_format chat;      /* how to render messages */
    const char *api_key;        /* NULL: no authentication */
    metrics_hook metrics_extra; /* optional */
    void *metrics_ctx;
    /* Optional readiness (a cluster still loading, a worker lost): returns true when requests
     * can be served; otherwise writes a one-line reason. /health answers 503 with the reason
     * and completions get 503 + Retry-After instead of an error deep inside a step. */
    bool (*ready)(void *ctx, char *why, size_t n);
    void *ready_ctx;
};

struct openai_server;

int openai_new(const struct openai_config *c, struct openai_server **out, struct mp_error *err);
void openai_free(struct openai_server *s); /* NULL-safe */
/* The http_handler: pass it to http_start with the server as app. */
void openai_handle(void *app, const struct http_request *req, struct http_reply *out);

#endif
