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

#endif
