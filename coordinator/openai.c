/* coordinator/openai.c: routes and replies of the OpenAI-compatible API (openai.h). A
 * completion request is parsed (openai_parse.c), tokenized and submitted to the engine; the
 * connection's thread then either waits for the end and answers with one JSON object, or
 * streams Server-Sent Events, each a chunk in OpenAI's format, ending with `data: [DONE]`.
 * While waiting it checks every WAIT_MS whether the client has hung up; if so the request is
 * released and its slot freed at the engine's next step. */
#include <stdlib.h>
#include <string.h>

#include "coordinator/metrics.h"
#include "coordinator/openai_internal.h"
#include "coordinator/web_assets.h"

#define WAIT_MS 100 /* how often a waiting connection looks for a hung-up client */
#define RETRY_AFTER_S 1

/* ---- replies ---- */

static void reply_json(struct http_reply *out, int status, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    out->status = s ? status : 500;
    out->content_type = "application/json";
    out->body = s ? s : (char *)"{\"error\":{\"message\":\"out of memory\"}}";
    out->body_static = !s;
    out->body_len = strlen(out->body);
}

static cJSON *error_object(const struct api_error *e)
{
    cJSON *o = cJSON_CreateObject(), *x = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(x, "message", e->message);
    cJSON_AddStringToObject(x, "type", e->type);
    if (e->param)
        cJSON_AddStringToObject(x, "param", e->param);
    else
        cJSON_AddNullToObject(x, "param");
    if (e->code)
        cJSON_AddStringToObject(x, "code", e->code);
    else
        cJSON_AddNullToObject(x, "code");
    return o;
}

static void reply_error(struct http_reply *out, const struct api_error *e)
{
    reply_json(out, e->status, error_object(e));
    if (e->status == 503)
        out->retry_after = RETRY_AFTER_S;
}

/* ---- one completion ---- */

struct job {
    struct openai_server *s;
    struct api_request req;
    struct engine_req *er;
    int fd;
    char id[48];
    long created;
    /* streaming */
    size_t seen;
    int phase; /* 0 role chunk next, 1 text, 2 done */
    char *out;
    size_t out_len, out_off;
};

static const char *finish_name(enum engine_finish f, bool tool_calls)
{
    if (tool_calls)
        return "tool_calls";
    return f == ENGINE_LENGTH ? "length" : "stop";
}

static cJSON *usage_object(const struct engine_status *st)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", st->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", st->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", st->n_prompt + st->n_gen);
    return u;
}

static cJSON *envelope(const struct job *j, const char *object)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", j->s->cfg.model_id);
    cJSON_AddNullToObject(o, "system_fingerprint");
    return o;
}

static void reply_complete(struct job *j, const struct engine_status *st, struct http_reply *out)
{
    bool chat = j->req.chat;
    cJSON *o = envelope(j, chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    struct chat_parsed p;
    api_split_reply(j->s->cfg.chat, j->req.has_tools, st->text, st->text_len, &p);
    cJSON_AddNumberToObject(c, "index", 0);
    if (chat)
        cJSON_AddItemToObject(c, "message", api_chat_message(j->id, st->text, st->text_len, &p));
    else
        api_add_text(c, "text", st->text, st->text_len);
    cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddStringToObject(c, "finish_reason", finish_name(st->finish, p.n_calls > 0));
    cJSON_AddItemToArray(choices, c);
    cJSON_AddItemToObject(o, "usage", usage_object(st));
    chat_parsed_free(&p);
    reply_json(out, 200, o);
}

/* Waits for news on the job's request, giving up if the client hangs up. */
static bool wait_news(struct job *j, struct engine_status *st, bool *gone)
{
    *gone = false;
    while (!engine_wait(j->er, j->seen, WAIT_MS, st)) {
        if (j->fd >= 0 && http_peer_closed(j->fd)) {
            *gone = true;
            return false;
        }
    }
    return true;
}

static void job_free(struct job *j)
{
    engine_release(j->er);
    api_request_free(&j->req);
    free(j->out);
    free(j);
}

static void engine_error(struct api_error *e, const struct engine_status *st)
{
    api_fail(e, 500, "server_error", NULL, NULL, "generation failed: %s", st->msg);
}

static void run_blocking(struct job *j, struct http_reply *out)
{
    struct engine_status st;
    bool gone;
    do {
        if (!wait_news(j, &st, &gone))
            break;
        j->seen = st.text_len;
    } while (st.finish == ENGINE_RUNNING);
    if (gone) {
        out->status = 499; /* nobody reads it; the connection is gone */
        out->body = (char *)"";
        out->body_static = true;
    } else if (st.finish == ENGINE_ERROR) {
        struct api_error e;
        engine_error(&e, &st);
        reply_error(out, &e);
    } else {
        reply_complete(j, &st, out);
    }
    job_free(j);
}

/* ---- streaming ---- */

static int queue_event(struct job *j, cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : strdup("[DONE]");
    cJSON_Delete(o);
    if (!s)
        return -1;
    size_t n = strlen(s);
    char *buf = realloc(j->out, j->out_len + n + 8); /* "data: " + s + "\n\n" */
    if (!buf) {
        free(s);
        return -1;
    }
    j->out = buf;
    memcpy(buf + j->out_len, "data: ", 6);
    memcpy(buf + j->out_len + 6, s, n);
    memcpy(buf + j->out_len + 6 + n, "\n\n", 2);
    j->out_len += n + 8;
    free(s);
    return 0;
}

/* A chunk with one choice; for chat the choice gets a delta object, returned in *delta. */
static cJSON *chunk(struct job *j, cJSON **choice_out, cJSON **delta)
{
    bool chat = j->req.chat;
    cJSON *o = envelope(j, chat ? "chat.completion.chunk" : "text_completion");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    if (chat)
        *delta = cJSON_AddObjectToObject(c, "delta");
    cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), c);
    *choice_out = c;
    return o;
}

static int text_event(struct job *j, const char *text, size_t n)
{
    cJSON *c, *d = NULL, *o = chunk(j, &c, &d);
    api_add_text(j->req.chat ? d : c, j->req.chat ? "content" : "text", text, n);
    cJSON_AddNullToObject(c, "finish_reason");
    return queue_event(j, o);
}

static int role_event(struct job *j)
{
    cJSON *c, *d, *o = chunk(j, &c, &d);
    cJSON_AddStringToObject(d, "role", "assistant");
    cJSON_AddStringToObject(d, "content", "");
    cJSON_AddNullToObject(c, "finish_reason");
    return queue_event(j, o);
}

/* The end: buffered content or tool calls (when tools were offered), the finish reason, usage
 * if asked for, [DONE]. */
static int final_events(struct job *j, const struct engine_status *st)
{
    if (st->finish == ENGINE_ERROR) {
        struct api_error e;
        engine_error(&e, st);
        return queue_event(j, error_object(&e)) || queue_event(j, NULL);
    }
    struct chat_parsed p;
    api_split_reply(j->s->cfg.chat, j->req.has_tools, st->text, st->text_len, &p);
    int rc = 0;
    if (j->req.has_tools && p.n_calls > 0) {
        cJSON *c, *d, *o = chunk(j, &c, &d);
        if (p.content && *p.content)
            api_add_text(d, "content", p.content, strlen(p.content));
        cJSON_AddItemToObject(d, "tool_calls", api_tool_calls(j->id, &p, true));
        cJSON_AddNullToObject(c, "finish_reason");
        rc = queue_event(j, o);
    } else if (j->req.has_tools && st->text_len > 0) {
        rc = text_event(j, st->text, st->text_len);
    }
    cJSON *c, *d, *o = chunk(j, &c, &d);
    if (!j->req.chat)
        cJSON_AddStringToObject(c, "text", "");
    cJSON_AddStringToObject(c, "finish_reason", finish_name(st->finish, p.n_calls > 0));
    rc = rc || queue_event(j, o);
    if (j->req.include_usage) {
        cJSON *u = envelope(j, j->req.chat ? "chat.completion.chunk" : "text_completion");
        cJSON_AddArrayToObject(u, "choices");
        cJSON_AddItemToObject(u, "usage", usage_object(st));
        rc = rc || queue_event(j, u);
    }
    chat_parsed_free(&p);
    return rc || queue_event(j, NULL);
}

/* Produces the next events into j->out; false when the stream is over or the client left. */
static bool produce(struct job *j)
{
    if (j->phase == 0) {
        j->phase = 1;
        if (j->req.chat)
            return role_event(j) == 0;
    }
    if (j->phase == 2)
        return false;
    struct engine_status st;
    bool gone;
    if (!wait_news(j, &st, &gone))
        return false;
    int rc = 0;
    if (!j->req.has_tools && st.text_len > j->seen)
        rc = text_event(j, st.text + j->seen, st.text_len - j->seen);
    j->seen = st.text_len;
    if (st.finish != ENGINE_RUNNING) {
        j->phase = 2;
        rc = rc || final_events(j, &st);
    }
    return rc == 0;
}

static ssize_t stream_read(void *ctx, char *buf, size_t max)
{
    struct job *j = ctx;
    while (j->out_off == j->out_len) {
        j->out_off = j->out_len = 0;
        if (j->phase == 2)
            return HTTP_STREAM_END;
        if (!produce(j))
            return HTTP_STREAM_ERROR;
    }
    size_t n = j->out_len - j->out_off < max ? j->out_len - j->out_off : max;
    memcpy(buf, j->out + j->out_off, n);
    j->out_off += n;
    return (ssize_t)n;
}

static void stream_done(void *ctx)
{
    job_free(ctx);
}

/* ---- routes ---- */

static int tokenize_prompt(struct openai_server *s, const char *text, int32_t **ids, int *n,
                           struct api_error *e)
{
    const struct tok_vocab *v = engine_vocab(s->cfg.engine);
    struct mp_error err = {0};
    size_t len = strlen(text);
    bool bos = tok_add_bos(v);
    int count = tok_encode(v, text, len, bos, true, NULL, 0, &err);
    if (count < 0)
        return api_fail(e, 400, "invalid_request_error", NULL, NULL, "%s", err.msg);
    *ids = malloc(((size_t)count + 1) * sizeof(**ids));
    if (!*ids)
        return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    *n = tok_encode(v, text, len, bos, true, *ids, count, &err);
    return *n < 0 ? api_fail(e, 500, "server_error", NULL, NULL, "%s", err.msg) : 0;
}

static int submit_job(struct openai_server *s, struct job *j, struct api_error *e)
{
    int32_t *ids = NULL;
    int n = 0;
    if (tokenize_prompt(s, j->req.prompt, &ids, &n, e)) {
        free(ids);
        return -1;
    }
    struct mp_error err = {0};
    int rc = engine_submit(s->cfg.engine, ids, n, &j->req.params, &j->er, &err);
    free(ids);
    const char *param = j->req.chat ? "messages" : "prompt";
    if (rc == MP_ERANGE)
        return api_fail(e, 400, "invalid_request_error", param, "context_length_exceeded", "%s",
                        err.msg);
    if (rc == MP_EBUSY)
        return api_fail(e, 503, "server_error", NULL, "server_overloaded", "%s; retry later",
                        err.msg);
    if (rc)
        return api_fail(e, rc == MP_ENOMEM ? 500 : 400,
                        rc == MP_ENOMEM ? "server_error" : "invalid_request_error", param, NULL,
                        "%s", err.msg);
    return 0;
}

static bool server_ready(const struct openai_server *s, char *why, size_t n)
{
    return !s->cfg.ready || s->cfg.ready(s->cfg.ready_ctx, why, n);
}

static void completion(struct openai_server *s, const struct http_request *hr, bool chat,
                       struct http_reply *out)
{
    struct api_error e;
    struct job *j = calloc(1, sizeof(*j));
    if (!j) {
        api_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        reply_error(out, &e);
        return;
    }
    j->s = s;
    j->fd = hr->fd;
    j->created = (long)time(NULL);
    snprintf(j->id, sizeof(j->id), "%s%016lx%08lx", chat ? "chatcmpl-" : "cmpl-",
             (unsigned long)atomic_fetch_add(&s->next_id, 1), (unsigned long)j->created);
    if (api_parse(s, chat, hr->body, hr->body_len, &j->req, &e) || submit_job(s, j, &e)) {
        reply_error(out, &e);
        job_free(j);
        return;
    }
    if (!j->req.stream) {
        run_blocking(j, out);
        return;
    }
    out->status = 200;
    out->content_type = "text/event-stream";
    out->read = stream_read;
    out->done = stream_done;
    out->ctx = j;
}

static void models(struct openai_server *s, struct http_reply *out)
{
    cJSON *o = cJSON_CreateObject(), *m = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddStringToObject(m, "id", s->cfg.model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->created);
    cJSON_AddStringToObject(m, "owned_by", "moepool");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "data"), m);
    reply_json(out, 200, o);
}

static bool authorized(const struct openai_server *s, const struct http_request *hr)
{
    if (!s->cfg.api_key)
        return true;
    const char *h = hr->authorization;
    if (!h || strncmp(h, "Bearer ", 7))
        return false;
    /* compare every byte so the time taken does not reveal how much of the key matched */
    const char *k = s->cfg.api_key, *g = h + 7;
    size_t kl = strlen(k), gl = strlen(g);
    unsigned diff = kl != gl;
    for (size_t i = 0; i < gl; i++)
        diff |= (unsigned)(g[i] ^ k[i % (kl ? kl : 1)]);
    return diff == 0;
}

static bool serve_page(const struct http_request *hr, struct http_reply *out)
{
    size_t len;
    const char *type;
    const char *bytes = web_asset(hr->path, &len, &type);
    if (!bytes)
        return false;
    out->status = 200;
    out->content_type = type;
    out->body = (char *)bytes;
    out->body_len = len;
    out->body_static = true;
    return true;
}

static void route(struct openai_server *s, const struct http_request *hr, struct http_reply *out)
{
    struct api_error e;
    bool get = !strcmp(hr->method, "GET"), post = !strcmp(hr->method, "POST");
    const char *p = hr->path;
    bool api = !strncmp(p, "/v1/", 4);
    if (!strcmp(hr->method, "OPTIONS")) { /* CORS preflight for browser clients */
        out->status = 204;
        out->body = (char *)"";
        out->body_static = true;
        return;
    }
    if (api && !authorized(s, hr)) {
        api_fail(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
                 "Incorrect or missing API key: send 'Authorization: Bearer KEY'");
        reply_error(out, &e);
        return;
    }
    bool completions =
        post && (!strcmp(p, "/v1/chat/completions") || !strcmp(p, "/v1/completions"));
    char why[256];
    if ((completions || (get && !strcmp(p, "/health"))) && !server_ready(s, why, sizeof(why))) {
        api_fail(&e, 503, "unavailable_error", NULL, "not_ready", "%s", why);
        reply_error(out, &e);
        return;
    }
    if (post && !strcmp(p, "/v1/chat/completions"))
        completion(s, hr, true, out);
    else if (post && !strcmp(p, "/v1/completions"))
        completion(s, hr, false, out);
    else if (get && !strcmp(p, "/v1/models"))
        models(s, out);
    else if (get && !strcmp(p, "/health"))
        reply_json(out, 200, cJSON_CreateRaw("{\"status\":\"ok\"}"));
    else if (get && !strcmp(p, "/metrics"))
        metrics_reply(s, out);
    else if (!(get && serve_page(hr, out))) {
        api_fail(&e, 404, "invalid_request_error", NULL, "unknown_url",
                 "Invalid URL (%.16s %.200s)", hr->method, p);
        reply_error(out, &e);
    }
}

void openai_handle(void *app, const struct http_request *hr, struct http_reply *out)
{
    struct openai_server *s = app;
    route(s, hr, out);
    int st = out->status;
    int cls = st < 300 ? 0 : st == 400 ? 1 : st == 401 ? 2 : st == 404 ? 3 : st == 503 ? 4 : 5;
    atomic_fetch_add(&s->http_status[cls], 1);
}

int openai_new(const struct openai_config *c, struct openai_server **out, struct mp_error *err)
{
    struct openai_server *s = calloc(1, sizeof(*s));
    if (!s)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    s->cfg = *c;
    s->created = time(NULL);
    atomic_init(&s->next_id, (unsigned long)s->created * 1000u);
    *out = s;
    return 0;
}

void openai_free(struct openai_server *s)
{
    free(s);
}
