/* coordinator/engine.h: continuous batching. One engine owns a model's forward state, n_slots
 * sequences (each a KV/conv state) and a queue of waiting requests; one engine thread runs steps.
 * Every step feeds one token to each generating sequence plus chunks of waiting prompts up to a
 * per-step token budget (chunked prefill), so a long prompt never stalls the others. Requests
 * join at the next step and leave when done; a released (canceled) request frees its slot at the
 * next step. Because the forward pass computes every token row on its own (model/forward.h), a
 * request's tokens do not depend on what it was batched with: greedy output is identical alone
 * and under load.
 *
 * Threads: engine_submit, engine_wait and engine_release may be called from any thread (the
 * HTTP connections'); all model work happens on the engine thread. Nothing is allocated per
 * step: a request's buffers (text, sampler, stop matcher) are allocated when it is submitted. */
#ifndef MP_ENGINE_H
#define MP_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/expert_backend.h"
#include "model/model.h"
#include "model/sampler.h"
#include "model/tokenizer.h"

struct engine_config {
    int n_slots;     /* sequences generated at once */
    int32_t n_ctx;   /* positions per sequence (prompt + generated) */
    int n_threads;   /* compute threads */
    int queue_max;   /* requests allowed to wait for a slot; beyond it submit fails MP_EBUSY */
    int step_tokens; /* token budget of one step (>= n_slots): decode tokens + prefill chunks */
    /* Optional: the in-process expert backend records routing into it (coordinator/eb_stats.h);
     * borrowed. A backend passed to engine_new records only if it was wrapped by its maker. */
    struct routing_stats *routing_stats;
    /* Optional: compute threads to use instead of starting n_threads own ones (borrowed; the
     * cluster's local shard shares them). Only the engine thread runs work on it. */
    struct tp_pool *tp;
};
struct engine_config engine_config_defaults(void);

struct engine_req_params {
    struct samp_params samp;
    int max_tokens;          /* <= 0: until the context is full */
    const char *const *stop; /* stop strings, copied at submit */
    int n_stop;
    bool special; /* output control tokens' text (tool-call markers) */
};

enum engine_finish {
    ENGINE_RUNNING,
    ENGINE_STOP,   /* end-of-generation token or a stop string */
    ENGINE_LENGTH, /* max_tokens or the context reached */
    ENGINE_ERROR,  /* the expert backend or the forward pass failed; see msg */
};

/* What a client sees of its request. text[0..text_len) is final: later updates only append. */
struct engine_status {
    const char *text;
    size_t text_len;
    enum engine_finish finish;
    int n_prompt, n_gen;
    double ttft_s; /* submit -> first generated token; 0 until then */
    char msg[MP_ERROR_MSG_MAX];
};

struct engine_stats {
    uint64_t requests, rejected, finished, errors;
    uint64_t prompt_tokens, gen_tokens, steps;
    int queued, active, last_batch;
    double ttft_sum_s;
    uint64_t ttft_count;
    double gen_tok_per_s; /* over the last second or so of steps */
};

struct engine;
struct engine_req;

/* The engine borrows m and v. eb: the expert backend to use (borrowed), or NULL for an
 * in-process eb_local on the engine's threads. Starts the engine thread. */
int engine_new(const struct model *m, const struct tok_vocab *v, struct expert_backend *eb,
               const struct engine_config *c, struct engine **out, struct mp_error *err);
/* Stops the engine thread: running and queued requests end with ENGINE_ERROR ("shutting
 * down") and their waiting clients wake up; later submits fail with MP_EBUSY. Idempotent. */
void engine_stop(struct engine *e);
/* Stops (if needed) and frees. Clients must have released their requests before (or the
 * memory leaks rather than being freed under them). NULL-safe. */
void engine_free(struct engine *e);

/* Queues prompt[0..n). Errors: MP_ERANGE the prompt does not fit the context (message says by
 * how much), MP_EBUSY the queue is full, MP_EINVAL bad ids or parameters, MP_ENOMEM. */
int engine_submit(struct engine *e, const int32_t *prompt, int n, const struct engine_req_params *p,
                  struct engine_req **out, struct mp_error *err);
/* Waits until the request has more than `seen` bytes of text or has finished, or timeout_ms
 * passes (< 0: no limit); fills *st. Returns true if something new is there. */
bool engine_wait(struct engine_req *r, size_t seen, int timeout_ms, struct engine_status *st);
/* The client is done with r (finished or not): a running request is canceled and its slot freed
 * at the next step. r must not be used afterwards. */
void engine_release(struct engine_req *r);

void engine_get_stats(struct engine *e, struct engine_stats *out);
const struct tok_vocab *engine_vocab(const struct engine *e);
int32_t engine_n_ctx(const struct engine *e);

#endif
