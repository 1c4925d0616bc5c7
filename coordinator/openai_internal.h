/* coordinator/openai_internal.h: what the OpenAI API's files share: the parsed request, the
 * error record that becomes OpenAI's error object, and reply helpers. */
#ifndef MP_OPENAI_INTERNAL_H
#define MP_OPENAI_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <time.h>

#include "coordinator/openai.h"
#include "model/stopstr.h"

struct openai_server {
    struct openai_config cfg;
    time_t created;
    atomic_ulong next_id;
    atomic_ulong http_status[6]; /* replies by class: [0] 2xx, [1] 400, [2] 401, [3] 404,
                                    [4] 503, [5] other */
};

/* An API error: HTTP status and the fields of OpenAI's error object. */
struct api_error {
    int status;
    const char *type;  /* "invalid_request_error", "authentication_error", "server_error" */
    const char *param; /* or NULL */
    const char *code;  /* or NULL */
    char message[512];
};

int api_fail(struct api_error *e, int status, const char *type, const char *param, const char *code,
             const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* A parsed completion request (chat or plain), owning its strings. */
struct api_request {
    bool chat;
    bool stream, include_usage;
    bool has_tools; /* tools rendered into the prompt: parse tool calls from the reply */
    char *prompt;   /* rendered text to tokenize */
    struct engine_req_params params;
    char *stop_buf[STOPSTR_MAX];
    int n_stop;
};

/* Parses and validates a request body (the model check included) and renders the prompt.
 * Fills e (400/404) on failure. */
int api_parse(const struct openai_server *s, bool chat, const char *body, size_t len,
              struct api_request *out, struct api_error *e);
void api_request_free(struct api_request *r);

/* Replies (openai_reply.c). Replaces bytes that are not valid UTF-8 with U+FFFD; out needs
 * 3 * n + 1 bytes; returns the length written (NUL-terminated). */
size_t api_utf8_clean(const char *in, size_t n, char *out);
/* Adds text[0..n), made valid UTF-8, as a string member. NULL when out of memory. */
cJSON *api_add_text(cJSON *o, const char *key, const char *text, size_t n);
/* When tools were offered, parses the reply's tool calls into *p (zeroed if none or if the reply
 * does not parse: it is then plain content). Free with chat_parsed_free. */
void api_split_reply(enum chat_format f, bool tools, const char *reply, size_t n,
                     struct chat_parsed *p);
/* OpenAI's tool_calls array: ids derived from the reply id, type "function", arguments as a
 * JSON string; indexed adds "index" (the streaming delta's form). */
cJSON *api_tool_calls(const char *reply_id, const struct chat_parsed *p, bool indexed);
/* The assistant message: tool_calls and content (null when empty) if p has calls, else the
 * whole text as content. */
cJSON *api_chat_message(const char *reply_id, const char *text, size_t n,
                        const struct chat_parsed *p);

#endif
