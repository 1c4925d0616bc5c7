/* coordinator/engine.c: the continuous-batching engine of engine.h.
 *
 * Locking: one mutex (e->mu) guards the queue, the slots' request pointers, every request's
 * published fields (text_len, finish, counters) and the stats. The engine thread builds a batch
 * under the lock, runs the forward pass and samples without it (only it touches slot state,
 * samplers and the unpublished tail of text buffers), then publishes under the lock and wakes
 * the clients. Clients wait on one condition variable (e->progress): with tens of clients a
 * broadcast per step is cheaper than the bookkeeping of one per request. */
#include "coordinator/engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coordinator/eb_stats.h"
#include "model/eb_local.h"
#include "model/forward.h"
#include "model/stopstr.h"

struct engine_req {
    /* fixed at submit */
    int32_t *prompt;
    int n_prompt;
    int max_tokens;
    struct sampler *samp;
    struct stopstr *stops;
    struct tok_stream detok;
    char *text; /* [text_cap] the visible output */
    size_t text_cap;
    double t_submit;
    struct engine *e;
    /* engine thread only */
    size_t text_len_private;
    int n_gen_private;
    bool stopped;
    /* under e->mu */
    size_t text_len;
    int n_gen;
    enum engine_finish finish;
    double ttft_s;
    char msg[MP_ERROR_MSG_MAX];
    bool released;           /* the client let go */
    bool in_slot;            /* the engine holds it */
    struct engine_req *next; /* queue link */
};

struct slot {
    struct kv_seq *seq;
    struct engine_req *req; /* NULL: free */
    int n_fed;              /* prompt tokens already in seq */
    int32_t next_tok;       /* generated token to feed next (after the prompt) */
    int row;                /* logits row in this step, or -1 */
};

struct engine {
    const struct model *m;
    const struct tok_vocab *vocab;
    struct engine_config cfg;
    struct tp_pool *tp;
    struct fwd_state *st;
    struct expert_backend eb_own, *eb;
    struct slot *slots;
    /* step scratch, [step_tokens] and [n_slots][n_vocab] */
    int32_t *tok, *pos;
    struct kv_seq **bseq;
    bool *want;
    float *logits;
    char *piece, *piece2;
    size_t piece_cap;
    enum engine_finish *fin; /* [n_slots] */

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t work;     /* the engine thread waits here when idle */
    pthread_cond_t progress; /* clients wait here */
    bool stopping;
    struct engine_req *q_head, *q_tail;
    int n_inflight; /* queued + in slots: what the queue limit counts */
    struct engine_stats stats;
    double rate_t0;
    uint64_t rate_tokens;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct engine_config engine_config_defaults(void)
{
    return (struct engine_config){
        .n_slots = 4, .n_ctx = 4096, .n_threads = 1, .queue_max = 64, .step_tokens = 256};
}

static void req_free(struct engine_req *r)
{
    samp_free(r->samp);
    stopstr_free(r->stops);
    free(r->prompt);
    free(r->text);
    free(r);
}

/* ---- the engine thread ---- */

/* Publishes the end of a request; the slot becomes free. Caller holds mu. */
static void finish_locked(struct engine *e, struct slot *s, enum engine_finish f, const char *msg)
{
    struct engine_req *r = s->req;
    r->finish = f;
    if (msg)
        snprintf(r->msg, sizeof(r->msg), "%s", msg);
    r->in_slot = false;
    s->req = NULL;
    e->stats.active--;
    e->n_inflight--;
    e->stats.finished++;
    if (f == ENGINE_ERROR)
        e->stats.errors++;
    if (r->released)
        req_free(r);
}

/* Drops released requests from slots and fills free slots from the queue. Caller holds mu. */
static void admit_locked(struct engine *e)
{
    for (int i = 0; i < e->cfg.n_slots; i++) {
        struct slot *s = &e->slots[i];
        if (s->req && s->req->released)
            finish_locked(e, s, ENGINE_STOP, NULL);
        if (s->req || !e->q_head)
            continue;
        struct engine_req *r = e->q_head;
        e->q_head = r->next;
        if (!e->q_head)
            e->q_tail = NULL;
        e->stats.queued--;
        kv_seq_clear(s->seq, e->m);
        s->req = r;
        s->n_fed = 0;
        r->in_slot = true;
        e->stats.active++;
    }
}

/* Fills the step's batch: first one token for every generating sequence, then prompt chunks
 * in slot order while the budget lasts. Returns the number of tokens. Caller holds mu. */
static int build_batch(struct engine *e)
{
    int n = 0, rows = 0, budget = e->cfg.step_tokens;
    for (int i = 0; i < e->cfg.n_slots; i++) {
        struct slot *s = &e->slots[i];
        s->row = -1;
        if (!s->req || s->n_fed < s->req->n_prompt)
            continue;
        e->tok[n] = s->next_tok;
        e->pos[n] = s->seq->n_pos;
        e->bseq[n] = s->seq;
        e->want[n++] = true;
        s->row = rows++;
    }
    for (int i = 0; i < e->cfg.n_slots && n < budget; i++) {
        struct slot *s = &e->slots[i];
        if (!s->req || s->n_fed >= s->req->n_prompt)
            continue;
        int left = s->req->n_prompt - s->n_fed, take = left < budget - n ? left : budget - n;
        for (int j = 0; j < take; j++) {
            e->tok[n] = s->req->prompt[s->n_fed + j];
            e->pos[n] = s->n_fed + j;
            e->bseq[n] = s->seq;
            e->want[n++] = j == left - 1;
        }
        if (take == left)
            s->row = rows++;
        s->n_fed += take;
    }
    return n;
}

/* Appends a token's text to the request (through the detokenizer and the stop matcher), in the
 * unpublished tail of its buffer. */
static void append_text(struct engine *e, struct engine_req *r, const char *p, size_t n)
{
    size_t got = stopstr_push(r->stops, p, n, e->piece2, &r->stopped);
    MP_ASSERT(r->text_len_private + got <= r->text_cap);
    memcpy(r->text + r->text_len_private, e->piece2, got);
    r->text_len_private += got;
}

static void end_text(struct engine *e, struct engine_req *r)
{
    int n = tok_stream_flush(&r->detok, e->piece, e->piece_cap);
    if (n > 0 && !r->stopped)
        append_text(e, r, e->piece, (size_t)n);
    if (!r->stopped) {
        size_t got = stopstr_flush(r->stops, e->piece2);
        memcpy(r->text + r->text_len_private, e->piece2, got);
        r->text_len_private += got;
    }
}

/* Samples the slot's next token from its logits row. Returns the finish reason, or
 * ENGINE_RUNNING. Engine thread, without the lock. */
static enum engine_finish sample_slot(struct engine *e, struct slot *s)
{
    struct engine_req *r = s->req;
    float *row = e->logits + (size_t)s->row * (size_t)e->m->hp.n_vocab;
    int32_t tok = samp_sample(r->samp, row);
    if (tok_is_eog(e->vocab, tok)) {
        end_text(e, r);
        return ENGINE_STOP;
    }
    samp_accept(r->samp, tok);
    r->n_gen_private++;
    s->next_tok = tok;
    int n = tok_stream_push(&r->detok, e->vocab, tok, e->piece, e->piece_cap);
    if (n > 0)
        append_text(e, r, e->piece, (size_t)n);
    if (r->stopped)
        return ENGINE_STOP;
    if (r->n_gen_private >= r->max_tokens || s->seq->n_pos >= s->seq->n_ctx) {
        end_text(e, r);
        return ENGINE_LENGTH;
    }
    return ENGINE_RUNNING;
}

static void update_rate_locked(struct engine *e, int n_new)
{
    double t = now_s();
    e->rate_tokens += (uint64_t)n_new;
    if (t - e->rate_t0 >= 1.0) {
        e->stats.gen_tok_per_s = (double)e->rate_tokens / (t - e->rate_t0);
        e->rate_t0 = t;
        e->rate_tokens = 0;
    }
}

/* After a successful forward pass: sample every slot that got logits, then publish. */
static void absorb(struct engine *e)
{
    enum engine_finish *fin = e->fin;
    for (int i = 0; i < e->cfg.n_slots; i++) {
        struct slot *s = &e->slots[i];
        fin[i] = s->row >= 0 ? sample_slot(e, s) : ENGINE_RUNNING;
    }
    double t = now_s();
    int n_new = 0;
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < e->cfg.n_slots; i++) {
        struct slot *s = &e->slots[i];
        if (s->row < 0)
            continue;
        struct engine_req *r = s->req;
        n_new += r->n_gen_private - r->n_gen;
        if (r->n_gen == 0 && r->n_gen_private > 0) {
            r->ttft_s = t - r->t_submit;
            e->stats.ttft_sum_s += r->ttft_s;
            e->stats.ttft_count++;
        }
        r->n_gen = r->n_gen_private;
        r->text_len = r->text_len_private;
        if (fin[i] != ENGINE_RUNNING)
            finish_locked(e, s, fin[i], NULL);
    }
    e->stats.gen_tokens += (uint64_t)n_new;
    update_rate_locked(e, n_new);
    pthread_cond_broadcast(&e->progress);
    pthread_mutex_unlock(&e->mu);
}

/* The forward pass failed (e.g. a worker died): every request in the batch ends with the
 * error; the others, and the engine, go on. */
static void fail_batch(struct engine *e, const struct mp_error *err)
{
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < e->cfg.n_slots; i++) {
        struct slot *s = &e->slots[i];
        bool in_batch = false;
        for (int j = 0; s->req && j < e->stats.last_batch && !in_batch; j++)
            in_batch = e->bseq[j] == s->seq;
        if (in_batch)
            finish_locked(e, s, ENGINE_ERROR, err->msg);
    }
    pthread_cond_broadcast(&e->progress);
    pthread_mutex_unlock(&e->mu);
}

static void *engine_main(void *arg)
{
    struct engine *e = arg;
    pthread_mutex_lock(&e->mu);
    while (!e->stopping) {
        admit_locked(e);
        int n = build_batch(e);
        if (n == 0) {
            pthread_cond_broadcast(&e->progress); /* releases may have freed slots */
            pthread_cond_wait(&e->work, &e->mu);
            continue;
        }
        e->stats.last_batch = n;
        e->stats.steps++;
        pthread_mutex_unlock(&e->mu);

        struct fwd_batch b = {
            .n_tokens = n, .token = e->tok, .pos = e->pos, .seq = e->bseq, .want_logits = e->want};
        struct mp_error err = {0};
        if (fwd_run(e->st, &b, e->eb, NULL, e->logits, &err))
            fail_batch(e, &err);
        else
            absorb(e);
        pthread_mutex_lock(&e->mu);
    }
    /* shutting down: end what is running and what waits */
    for (int i = 0; i < e->cfg.n_slots; i++)
        if (e->slots[i].req)
            finish_locked(e, &e->slots[i], ENGINE_ERROR, "the server is shutting down");
    for (struct engine_req *r = e->q_head; r; r = r->next) {
        e->stats.queued--;
        e->n_inflight--;
        r->finish = ENGINE_ERROR;
        snprintf(r->msg, sizeof(r->msg), "the server is shutting down");
    }
    e->q_head = e->q_tail = NULL;
    pthread_cond_broadcast(&e->progress);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- setup ---- */

static int alloc_scratch(struct engine *e, struct mp_error *err)
{
    size_t nt = (size_t)e->cfg.step_tokens, nv = (size_t)e->m->hp.n_vocab;
    e->slots = calloc((size_t)e->cfg.n_slots, sizeof(*e->slots));
    e->fin = calloc((size_t)e->cfg.n_slots, sizeof(*e->fin));
    e->tok = malloc(nt * sizeof(*e->tok));
    e->pos = malloc(nt * sizeof(*e->pos));
    e->bseq = malloc(nt * sizeof(*e->bseq));
    e->want = malloc(nt * sizeof(*e->want));
    e->logits = malloc((size_t)e->cfg.n_slots * nv * sizeof(float));
    e->piece_cap = tok_max_piece(e->vocab) + TOK_STREAM_HOLD;
    e->piece = malloc(e->piece_cap);
    /* the stop matcher may return a held tail plus the piece */
    e->piece2 = malloc(e->piece_cap + STOPSTR_MAX_LEN + 1);
    if (!e->slots || !e->fin || !e->tok || !e->pos || !e->bseq || !e->want || !e->logits ||
        !e->piece || !e->piece2)
        return mp_error_set(err, MP_ENOMEM, "out of memory for the engine's buffers");
    for (int i = 0; i < e->cfg.n_slots; i++) {
        int rc = kv_seq_new(e->m, e->cfg.n_ctx, &e->slots[i].seq, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* The in-process backend, wrapped to record routing when the config asks for it. */
static int local_backend(struct engine *e, struct mp_error *err)
{
    struct expert_backend local = {0};
    int rc = eb_local_new(e->m, NULL, e->tp, e->cfg.step_tokens, &local, err);
    if (rc || !e->cfg.routing_stats) {
        e->eb_own = local;
        return rc;
    }
    if ((rc = eb_stats_new(e->m, local, e->cfg.routing_stats, &e->eb_own, err)))
        eb_free(&local);
    return rc;
}

static int check_config(const struct engine_config *c, struct mp_error *err)
{
    if (c->n_slots < 1 || c->n_ctx < 2 || c->n_threads < 1 || c->queue_max < 0 ||
        c->step_tokens < c->n_slots)
        return mp_error_set(err, MP_EINVAL,
                            "engine: need slots >= 1, context >= 2, threads >= 1, queue >= 0 and "
                            "a step budget >= slots (got %d, %d, %d, %d, %d)",
                            c->n_slots, (int)c->n_ctx, c->n_threads, c->queue_max, c->step_tokens);
    return 0;
}

int engine_new(const struct model *m, const struct tok_vocab *v, struct expert_backend *eb,
               const struct engine_config *c, struct engine **out, struct mp_error *err)
{
    *out = NULL;
    int rc = check_config(c, err);
    if (rc)
        return rc;
    struct engine *e = calloc(1, sizeof(*e));
    if (!e)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    e->m = m;
    e->vocab = v;
    e->cfg = *c;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->work, NULL);
    pthread_cond_init(&e->progress, NULL);
    e->rate_t0 = now_s();
    e->tp = c->tp ? c->tp : tp_new(c->n_threads);
    if (!e->tp)
        rc = mp_error_set(err, MP_ENOMEM, "cannot start %d threads", c->n_threads);
    if (!rc)
        rc = alloc_scratch(e, err);
    if (!rc)
        rc = fwd_state_new(m, c->step_tokens, c->n_ctx, e->tp, &e->st, err);
    if (!rc && !eb)
        rc = local_backend(e, err);
    e->eb = eb ? eb : &e->eb_own;
    if (!rc && pthread_create(&e->thread, NULL, engine_main, e))
        rc = mp_error_set(err, MP_ENOMEM, "cannot start the engine thread");
    e->thread_started = !rc;
    if (rc) {
        engine_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void engine_stop(struct engine *e)
{
    if (!e || !e->thread_started)
        return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    e->thread_started = false;
}

void engine_free(struct engine *e)
{
    if (!e)
        return;
    engine_stop(e);
    for (int i = 0; e->slots && i < e->cfg.n_slots; i++)
        kv_seq_free(e->slots[i].seq);
    if (e->eb == &e->eb_own)
        eb_free(&e->eb_own);
    fwd_state_free(e->st);
    if (e->tp != e->cfg.tp)
        tp_free(e->tp);
    free(e->slots);
    free(e->fin);
    free(e->tok);
    free(e->pos);
    free(e->bseq);
    free(e->want);
    free(e->logits);
    free(e->piece);
    free(e->piece2);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->work);
    pthread_cond_destroy(&e->progress);
    free(e);
}

/* ---- clients ---- */

static int check_prompt(const struct engine *e, const int32_t *prompt, int n, struct mp_error *err)
{
    if (n < 1)
        return mp_error_set(err, MP_EINVAL, "the prompt is empty");
    if (n >= e->cfg.n_ctx)
        return mp_error_set(err, MP_ERANGE,
                            "the prompt has %d tokens but the context holds %d (%d too many, "
                            "counting one token to generate)",
                            n, (int)e->cfg.n_ctx, n - (int)e->cfg.n_ctx + 1);
    for (int i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= e->m->hp.n_vocab)
            return mp_error_set(err, MP_EINVAL, "token %d of the prompt (%d) is out of range", i,
                                (int)prompt[i]);
    return 0;
}

static int req_new(struct engine *e, const int32_t *prompt, int n,
                   const struct engine_req_params *p, struct engine_req **out, struct mp_error *err)
{
    struct engine_req *r = calloc(1, sizeof(*r));
    if (!r)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    r->e = e;
    r->n_prompt = n;
    int room = e->cfg.n_ctx - n;
    r->max_tokens = p->max_tokens > 0 && p->max_tokens < room ? p->max_tokens : room;
    r->prompt = malloc((size_t)n * sizeof(*prompt));
    int rc = r->prompt ? 0 : mp_error_set(err, MP_ENOMEM, "out of memory");
    if (!rc)
        rc = samp_new(&p->samp, (int32_t)e->m->hp.n_vocab, &r->samp, err);
    if (!rc)
        rc = stopstr_new(p->stop, p->n_stop, e->piece_cap, &r->stops, err);
    /* every generated token adds at most one piece; the flushes add held bytes */
    r->text_cap = (size_t)r->max_tokens * e->piece_cap + stopstr_out_cap(r->stops);
    if (!rc && !(r->text = malloc(r->text_cap)))
        rc = mp_error_set(err, MP_ENOMEM, "out of memory for %d tokens of text", r->max_tokens);
    if (rc) {
        req_free(r);
        return rc;
    }
    memcpy(r->prompt, prompt, (size_t)n * sizeof(*prompt));
    tok_stream_init(&r->detok, p->special);
    for (int i = 0; i < n; i++)
        samp_accept(r->samp, prompt[i]);
    r->t_submit = now_s();
    *out = r;
    return 0;
}

int engine_submit(struct engine *e, const int32_t *prompt, int n, const struct engine_req_params *p,
                  struct engine_req **out, struct mp_error *err)
{
    *out = NULL;
    int rc = check_prompt(e, prompt, n, err);
    struct engine_req *r = NULL;
    if (!rc)
        rc = req_new(e, prompt, n, p, &r, err);
    pthread_mutex_lock(&e->mu);
    if (!rc && e->n_inflight >= e->cfg.queue_max + e->cfg.n_slots)
        rc = mp_error_set(err, MP_EBUSY, "all %d slots are busy and %d requests are waiting",
                          e->cfg.n_slots, e->stats.queued);
    if (!rc && e->stopping)
        rc = mp_error_set(err, MP_EBUSY, "the server is shutting down");
    if (rc) {
        e->stats.rejected++;
        pthread_mutex_unlock(&e->mu);
        if (r)
            req_free(r);
        return rc;
    }
    if (e->q_tail)
        e->q_tail->next = r;
    else
        e->q_head = r;
    e->q_tail = r;
    e->stats.queued++;
    e->n_inflight++;
    e->stats.requests++;
    e->stats.prompt_tokens += (uint64_t)n;
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
    *out = r;
    return 0;
}

static void fill_status(const struct engine_req *r, struct engine_status *st)
{
    st->text = r->text;
    st->text_len = r->text_len;
    st->finish = r->finish;
    st->n_prompt = r->n_prompt;
    st->n_gen = r->n_gen;
    st->ttft_s = r->ttft_s;
    snprintf(st->msg, sizeof(st->msg), "%s", r->msg);
}

bool engine_wait(struct engine_req *r, size_t seen, int timeout_ms, struct engine_status *st)
{
    struct engine *e = r->e;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    if (timeout_ms >= 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&e->mu);
    bool fresh;
    while (!(fresh = r->text_len > seen || r->finish != ENGINE_RUNNING)) {
        if (timeout_ms < 0)
            pthread_cond_wait(&e->progress, &e->mu);
        else if (pthread_cond_timedwait(&e->progress, &e->mu, &until))
            break;
    }
    fill_status(r, st);
    pthread_mutex_unlock(&e->mu);
    return fresh;
}

void engine_release(struct engine_req *r)
{
    if (!r)
        return;
    struct engine *e = r->e;
    pthread_mutex_lock(&e->mu);
    r->released = true;
    for (struct engine_req **p = &e->q_head, *prev = NULL; *p; prev = *p, p = &(*p)->next) {
        if (*p != r)
            continue;
        *p = r->next;
        if (e->q_tail == r)
            e->q_tail = prev;
        e->stats.queued--;
        e->n_inflight--;
        break;
    }
    if (r->in_slot)
        pthread_cond_signal(&e->work); /* the engine frees the slot at its next step */
    else
        req_free(r);
    pthread_mutex_unlock(&e->mu);
}

void engine_get_stats(struct engine *e, struct engine_stats *out)
{
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    pthread_mutex_unlock(&e->mu);
}

const struct tok_vocab *engine_vocab(const struct engine *e)
{
    return e->vocab;
}

int32_t engine_n_ctx(const struct engine *e)
{
    return e->cfg.n_ctx;
}
