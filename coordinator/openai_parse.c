/* coordinator/openai_parse.c: request bodies of /v1/chat/completions and /v1/completions ->
 * sampling parameters, stop strings and the prompt text. Every field is type-checked; a wrong
 * type or range is a 400 naming the field (OpenAI's `param`). Unknown fields are ignored, as
 * OpenAI-compatible servers do, so newer clients keep working. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/openai_internal.h"

int api_fail(struct api_error *e, int status, const char *type, const char *param, const char *code,
             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    e->status = status;
    e->type = type;
    e->param = param;
    e->code = code;
    return -1;
}

static int bad(struct api_error *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(struct api_error *e, const char *param, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return api_fail(e, 400, "invalid_request_error", param, NULL, "%s", msg);
}

/* A number field in [lo, hi]; absent or null leaves *v unchanged. */
static int get_number(const cJSON *o, const char *key, double lo, double hi, double *v,
                      struct api_error *e)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!x || cJSON_IsNull(x))
        return 0;
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
        return bad(e, key, "'%s' must be a number", key);
    if (x->valuedouble < lo || x->valuedouble > hi)
        return bad(e, key, "'%s' must be between %g and %g (got %g)", key, lo, hi, x->valuedouble);
    *v = x->valuedouble;
    return 0;
}

static int get_int(const cJSON *o, const char *key, double lo, double hi, double *v,
                   struct api_error *e)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (x && cJSON_IsNumber(x) && x->valuedouble != floor(x->valuedouble))
        return bad(e, key, "'%s' must be an integer", key);
    return get_number(o, key, lo, hi, v, e);
}

static int get_bool(const cJSON *o, const char *key, bool *v, struct api_error *e)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!x || cJSON_IsNull(x))
        return 0;
    if (!cJSON_IsBool(x))
        return bad(e, key, "'%s' must be a boolean", key);
    *v = cJSON_IsTrue(x);
    return 0;
}

static int parse_sampling(const cJSON *o, struct api_request *r, struct api_error *e)
{
    struct samp_params *p = &r->params.samp;
    double temp = p->temp, top_p = p->top_p, top_k = p->top_k, min_p = p->min_p;
    double pres = p->presence_penalty, freq = p->frequency_penalty, rep = p->repeat_penalty;
    double seed = -1, max_tokens = 0, n = 1;
    if (get_number(o, "temperature", 0, 2, &temp, e) || get_number(o, "top_p", 0, 1, &top_p, e) ||
        get_int(o, "top_k", 0, 1e9, &top_k, e) || get_number(o, "min_p", 0, 1, &min_p, e) ||
        get_number(o, "presence_penalty", -2, 2, &pres, e) ||
        get_number(o, "frequency_penalty", -2, 2, &freq, e) ||
        get_number(o, "repeat_penalty", 0, 10, &rep, e) ||
        get_int(o, "seed", -9.2e18, 9.2e18, &seed, e) ||
        get_int(o, "max_tokens", 1, 1e9, &max_tokens, e) ||
        get_int(o, "max_completion_tokens", 1, 1e9, &max_tokens, e) || get_int(o, "n", 1, 1, &n, e))
        return -1;
    p->temp = (float)temp;
    p->top_p = (float)top_p;
    p->top_k = (int32_t)top_k;
    p->min_p = (float)min_p;
    p->presence_penalty = (float)pres;
    p->frequency_penalty = (float)freq;
    p->repeat_penalty = (float)rep;
    if (seed >= 0)
        p->seed = (uint64_t)seed;
    r->params.max_tokens = (int)max_tokens;
    return 0;
}

static int parse_stop(const cJSON *o, struct api_request *r, struct api_error *e)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "stop");
    if (!x || cJSON_IsNull(x))
        return 0;
    if (cJSON_IsString(x)) {
        if (!*x->valuestring)
            return bad(e, "stop", "'stop' must not be empty");
        r->stop_buf[r->n_stop++] = strdup(x->valuestring);
    } else if (cJSON_IsArray(x)) {
        if (cJSON_GetArraySize(x) > STOPSTR_MAX)
            return bad(e, "stop", "at most %d stop strings are supported", STOPSTR_MAX);
        const cJSON *it;
        cJSON_ArrayForEach(it, x)
        {
            if (!cJSON_IsString(it) || !*it->valuestring ||
                strlen(it->valuestring) > STOPSTR_MAX_LEN)
                return bad(e, "stop", "'stop' must hold non-empty strings of at most %d bytes",
                           STOPSTR_MAX_LEN);
            r->stop_buf[r->n_stop++] = strdup(it->valuestring);
        }
    } else {
        return bad(e, "stop", "'stop' must be a string or an array of strings");
    }
    for (int i = 0; i < r->n_stop; i++)
        if (!r->stop_buf[i])
            return api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    r->params.stop = (const char *const *)r->stop_buf;
    r->params.n_stop = r->n_stop;
    return 0;
}

/* A message's content: a string, null, or an array of {"type":"text","text":...} parts. */
static int content_text(const cJSON *c, int i, char **out, struct api_error *e)
{
    *out = NULL;
    if (!c || cJSON_IsNull(c))
        return 0;
    if (cJSON_IsString(c))
        return (*out = strdup(c->valuestring)) ? 0 : bad(e, NULL, "out of memory");
    if (!cJSON_IsArray(c))
        return bad(e, "messages", "messages[%d].content must be a string or an array of parts", i);
    size_t len = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, c)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(part, "type");
        if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "text") || !cJSON_IsString(t))
            return bad(e, "messages", "messages[%d].content: only text parts are supported", i);
        len += strlen(t->valuestring);
    }
    if (!(*out = calloc(1, len + 1)))
        return bad(e, NULL, "out of memory");
    cJSON_ArrayForEach(part, c)
        strcat(*out, cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring);
    return 0;
}

/* Owned strings of the chat_msg array, freed after rendering. */
struct msg_strings {
    char **s;
    int n;
};

static const char *keep(struct msg_strings *k, char *s)
{
    if (s)
        k->s[k->n++] = s;
    return s;
}

static int parse_message(const cJSON *m, int i, struct chat_msg *out, struct msg_strings *k,
                         struct api_error *e)
{
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    if (!cJSON_IsObject(m) || !cJSON_IsString(role))
        return bad(e, "messages", "messages[%d] must be an object with a string 'role'", i);
    const char *r = role->valuestring;
    if (!strcmp(r, "developer"))
        r = "system"; /* OpenAI's newer name for the system role */
    if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") && strcmp(r, "tool"))
        return bad(e, "messages",
                   "messages[%d].role '%s' is not one of system, developer, "
                   "user, assistant, tool",
                   i, role->valuestring);
    char *content;
    if (content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), i, &content, e))
        return -1;
    out->role = r;
    out->content = keep(k, content);
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
    if (calls && !cJSON_IsNull(calls)) {
        if (!cJSON_IsArray(calls))
            return bad(e, "messages", "messages[%d].tool_calls must be an array", i);
        out->tool_calls_json = keep(k, cJSON_PrintUnformatted(calls));
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
    if (cJSON_IsString(name))
        out->name = name->valuestring;
    return 0;
}

static int tools_json(const cJSON *o, char **out, struct api_error *e)
{
    *out = NULL;
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(o, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(o, "tool_choice");
    if (!tools || cJSON_IsNull(tools))
        return 0;
    if (!cJSON_IsArray(tools))
        return bad(e, "tools", "'tools' must be an array");
    if (choice && !cJSON_IsNull(choice) && !cJSON_IsString(choice) && !cJSON_IsObject(choice))
        return bad(e, "tool_choice", "'tool_choice' must be a string or an object");
    if (cJSON_IsString(choice) && !strcmp(choice->valuestring, "none"))
        return 0;
    if (cJSON_GetArraySize(tools) == 0)
        return 0;
    return (*out = cJSON_PrintUnformatted(tools)) ? 0 : bad(e, NULL, "out of memory");
}

static int render_chat(const struct openai_server *s, const cJSON *o, struct api_request *r,
                       struct api_error *e)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(o, "messages");
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
        return bad(e, "messages", "'messages' must be a non-empty array");
    int n = cJSON_GetArraySize(msgs);
    struct chat_msg *cm = calloc((size_t)n, sizeof(*cm));
    struct msg_strings k = {calloc((size_t)n * 2, sizeof(char *)), 0};
    char *tools = NULL;
    int rc = cm && k.s ? 0 : bad(e, NULL, "out of memory");
    for (int i = 0; !rc && i < n; i++)
        rc = parse_message(cJSON_GetArrayItem(msgs, i), i, &cm[i], &k, e);
    if (!rc)
        rc = tools_json(o, &tools, e);
    struct mp_error err = {0};
    if (!rc && chat_render(s->cfg.chat, cm, n, tools, true, &r->prompt, &err))
        rc = bad(e, "messages", "%s", err.msg);
    r->has_tools = tools != NULL && s->cfg.chat != CHAT_CHATML;
    r->params.special = r->has_tools; /* tool-call markers are control tokens in LFM2 */
    for (int i = 0; i < k.n; i++)
        free(k.s[i]);
    free(k.s);
    free(cm);
    cJSON_free(tools);
    return rc;
}

static int plain_prompt(const cJSON *o, struct api_request *r, struct api_error *e)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1)
        p = cJSON_GetArrayItem(p, 0);
    if (!cJSON_IsString(p))
        return bad(e, "prompt", "'prompt' must be a string (or an array of one string)");
    return (r->prompt = strdup(p->valuestring)) ? 0 : bad(e, NULL, "out of memory");
}

static int check_model(const struct openai_server *s, const cJSON *o, struct api_error *e)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "model");
    if (!m || cJSON_IsNull(m))
        return 0;
    if (!cJSON_IsString(m))
        return bad(e, "model", "'model' must be a string");
    if (strcmp(m->valuestring, s->cfg.model_id))
        return api_fail(e, 404, "invalid_request_error", "model", "model_not_found",
                        "The model '%.200s' does not exist; this server serves '%.200s'",
                        m->valuestring, s->cfg.model_id);
    return 0;
}

static int parse_stream(const cJSON *o, struct api_request *r, struct api_error *e)
{
    if (get_bool(o, "stream", &r->stream, e))
        return -1;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(o, "stream_options");
    if (!so || cJSON_IsNull(so))
        return 0;
    if (!cJSON_IsObject(so))
        return bad(e, "stream_options", "'stream_options' must be an object");
    return get_bool(so, "include_usage", &r->include_usage, e);
}

int api_parse(const struct openai_server *s, bool chat, const char *body, size_t len,
              struct api_request *r, struct api_error *e)
{
    memset(r, 0, sizeof(*r));
    r->chat = chat;
    r->params.samp = samp_defaults();
    r->params.samp.seed = atomic_fetch_add((atomic_ulong *)&s->next_id, 1) ^ (uint64_t)time(NULL);
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (!o)
        return bad(e, NULL, "the request body is not valid JSON");
    int rc = cJSON_IsObject(o) ? 0 : bad(e, NULL, "the request body must be a JSON object");
    if (!rc)
        rc = check_model(s, o, e);
    if (!rc)
        rc = parse_sampling(o, r, e);
    if (!rc)
        rc = parse_stop(o, r, e);
    if (!rc)
        rc = parse_stream(o, r, e);
    if (!rc)
        rc = chat ? render_chat(s, o, r, e) : plain_prompt(o, r, e);
    cJSON_Delete(o);
    return rc;
}

void api_request_free(struct api_request *r)
{
    free(r->prompt);
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop_buf[i]);
    memset(r, 0, sizeof(*r));
}
