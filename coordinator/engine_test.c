/* coordinator/engine_test.c MODEL.gguf: the continuous-batching engine with a real model.
 * - batch invariance: greedy requests give the same text and token count alone and among 31
 *   others (exact equality: the forward pass is bit-identical across batch compositions,
 *   model/forward_test.c, and greedy sampling is deterministic);
 * - chunked prefill: a generating request keeps getting tokens while a long prompt is prefilled;
 * - release (cancel) frees the slot at once for a queued request;
 * - the queue limit refuses with MP_EBUSY, a prompt longer than the context with MP_ERANGE;
 * - stop strings cut the text where the stop begins;
 * - an expert-backend failure ends the requests of that step with an error and the engine goes
 *   on serving. */
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "coordinator/engine.h"
#include "kernels/kq.h"
#include "model/eb_local.h"

#define N_CONC 32
#define N_CTX 512

struct env {
    struct model *m;
    struct tok_vocab *v;
};

struct result {
    char text[8192];
    size_t len;
    int n_gen;
    enum engine_finish finish;
    char msg[MP_ERROR_MSG_MAX];
};

static struct engine_config config(int slots, int queue, int step)
{
    struct engine_config c = engine_config_defaults();
    c.n_slots = slots;
    c.n_ctx = N_CTX;
    c.n_threads = 1; /* the machine is shared: spinning pool threads would only contend */
    c.queue_max = queue;
    c.step_tokens = step;
    return c;
}

static struct engine_req_params greedy(int max_tokens)
{
    struct engine_req_params p = {.samp = samp_defaults(), .max_tokens = max_tokens};
    p.samp.temp = 0;
    return p;
}

/* A varied prompt per index: different lengths make prefill chunks straddle steps. */
static int prompt_of(const struct env *env, int i, int32_t *ids, int cap)
{
    char text[1024];
    int n = snprintf(text, sizeof(text), "Request %d: tell me about", i);
    for (int k = 0; k < i % 7; k++)
        n += snprintf(text + n, sizeof(text) - (size_t)n, " the number %d and", i * 31 + k);
    struct mp_error err = {0};
    int got = tok_encode(env->v, text, strlen(text), tok_add_bos(env->v), false, ids, cap, &err);
    if (got < 0)
        abort();
    return got;
}

static struct engine_req *submit(struct engine *e, const struct env *env, int i,
                                 const struct engine_req_params *p)
{
    int32_t ids[256];
    int n = prompt_of(env, i, ids, 256);
    struct engine_req *r;
    struct mp_error err = {0};
    if (engine_submit(e, ids, n, p, &r, &err)) {
        fprintf(stderr, "submit %d: %s\n", i, err.msg);
        abort();
    }
    return r;
}

static void collect(struct engine_req *r, struct result *out)
{
    struct engine_status st;
    do
        engine_wait(r, 0, -1, &st);
    while (st.finish == ENGINE_RUNNING);
    MP_ASSERT(st.text_len < sizeof(out->text));
    memcpy(out->text, st.text, st.text_len);
    out->len = st.text_len;
    out->n_gen = st.n_gen;
    out->finish = st.finish;
    snprintf(out->msg, sizeof(out->msg), "%s", st.msg);
    engine_release(r);
}

static void batch_invariance(const struct env *env)
{
    struct engine_config c = config(N_CONC, 0, 64);
    struct engine *e;
    struct mp_error err = {0};
    if (engine_new(env->m, env->v, NULL, &c, &e, &err))
        abort();
    struct engine_req_params p = greedy(24);
    static struct result solo[N_CONC], conc[N_CONC];
    const int checked[] = {0, 5, 13, 31};
    for (int k = 0; k < 4; k++)
        collect(submit(e, env, checked[k], &p), &solo[checked[k]]);
    struct engine_req *reqs[N_CONC];
    for (int i = 0; i < N_CONC; i++)
        reqs[i] = submit(e, env, i, &p);
    for (int i = 0; i < N_CONC; i++)
        collect(reqs[i], &conc[i]);
    for (int k = 0; k < 4; k++) {
        int i = checked[k];
        CHECK(solo[i].n_gen > 0, "request %d generated nothing", i);
        CHECK(solo[i].len == conc[i].len && !memcmp(solo[i].text, conc[i].text, solo[i].len) &&
                  solo[i].n_gen == conc[i].n_gen,
              "request %d differs alone (%d tokens) and among %d (%d tokens)", i, solo[i].n_gen,
              N_CONC, conc[i].n_gen);
    }
    for (int i = 0; i < N_CONC; i++)
        CHECK(conc[i].finish == ENGINE_STOP || conc[i].finish == ENGINE_LENGTH,
              "request %d ended with %d: %s", i, conc[i].finish, conc[i].msg);
    struct engine_stats s;
    engine_get_stats(e, &s);
    CHECK(s.requests == N_CONC + 4 && s.finished == N_CONC + 4 && s.errors == 0,
          "stats: %llu requests, %llu finished, %llu errors", (unsigned long long)s.requests,
          (unsigned long long)s.finished, (unsigned long long)s.errors);
    engine_free(e);
}

/* Budget 8 per step: a 300-token prompt needs many steps, and every one of them must also carry
 * the generating request's token. */
static void chunked_prefill(const struct env *env)
{
    struct engine_config c = config(2, 0, 8);
    struct engine *e;
    struct mp_error err = {0};
    if (engine_new(env->m, env->v, NULL, &c, &e, &err))
        abort();
    struct engine_req_params p = greedy(400);
    p.samp.temp = 1.0f; /* sampled with a seed: runs long rather than hitting end-of-text */
    p.samp.seed = 7;
    struct engine_req *gen = submit(e, env, 1, &p);
    struct engine_status st;
    do
        engine_wait(gen, 0, -1, &st);
    while (st.n_gen < 1 && st.finish == ENGINE_RUNNING);
    int before = st.n_gen;
    int32_t ids[300];
    for (int i = 0; i < 300; i++)
        ids[i] = (int32_t)(10 + i % 500);
    struct engine_req_params lp = greedy(1);
    struct engine_req *longr;
    if (engine_submit(e, ids, 300, &lp, &longr, &err))
        abort();
    do
        engine_wait(longr, 0, -1, &st);
    while (st.finish == ENGINE_RUNNING);
    struct engine_status gs;
    engine_wait(gen, 0, 0, &gs);
    /* 300 prompt tokens at most 7 a step (one of 8 goes to the generating request): >= 43 steps */
    CHECK(gs.finish != ENGINE_RUNNING || gs.n_gen - before >= 300 / 7,
          "the generating request got %d tokens during a 300-token prefill", gs.n_gen - before);
    CHECK(gs.finish == ENGINE_RUNNING,
          "the generating request ended early (%d tokens); the "
          "interleaving check was inconclusive",
          gs.n_gen);
    engine_release(gen);
    engine_release(longr);
    engine_free(e);
}

static void cancel_and_limits(const struct env *env)
{
    struct engine_config c = config(1, 1, 16);
    struct engine *e;
    struct mp_error err = {0};
    if (engine_new(env->m, env->v, NULL, &c, &e, &err))
        abort();
    struct engine_req_params longp = greedy(0); /* until the context is full */
    longp.samp.temp = 1.0f;
    struct engine_req *a = submit(e, env, 2, &longp);
    struct engine_status st;
    do
        engine_wait(a, 0, -1, &st);
    while (st.n_gen < 2 && st.finish == ENGINE_RUNNING);
    struct engine_req_params shortp = greedy(4);
    struct engine_req *b = submit(e, env, 3, &shortp), *c3;
    int32_t ids[8] = {10, 11, 12};
    CHECK(engine_submit(e, ids, 3, &shortp, &c3, &err) == MP_EBUSY && !c3,
          "a third request past 1 slot + queue 1 must be refused");
    int32_t big[N_CTX];
    for (int i = 0; i < N_CTX; i++)
        big[i] = 10;
    CHECK(engine_submit(e, big, N_CTX, &shortp, &c3, &err) == MP_ERANGE,
          "a prompt of the whole context must be refused");
    CHECK(strstr(err.msg, "context") != NULL, "message: %s", err.msg);
    engine_release(a); /* b must now run without waiting for a's ~%d tokens */
    struct result rb;
    collect(b, &rb);
    struct engine_stats s;
    engine_get_stats(e, &s);
    CHECK(rb.n_gen >= 1 && s.gen_tokens < (uint64_t)N_CTX / 2,
          "after the release b ran (%d tokens) and a stopped early (%llu tokens in all)", rb.n_gen,
          (unsigned long long)s.gen_tokens);
    CHECK(s.active == 0 && s.queued == 0, "slots and queue are empty (%d, %d)", s.active, s.queued);
    engine_free(e);
}

static void stop_strings(const struct env *env)
{
    struct engine_config c = config(2, 0, 64);
    struct engine *e;
    struct mp_error err = {0};
    if (engine_new(env->m, env->v, NULL, &c, &e, &err))
        abort();
    struct engine_req_params p = greedy(48);
    struct result full, cut;
    collect(submit(e, env, 4, &p), &full);
    if (full.len < 12) {
        CHECK(0, "reference text too short (%zu bytes) for a stop-string check", full.len);
        engine_free(e);
        return;
    }
    char stop[8];
    memcpy(stop, full.text + full.len / 2, 3);
    stop[3] = 0;
    const char *stops[] = {stop};
    p.stop = stops;
    p.n_stop = 1;
    collect(submit(e, env, 4, &p), &cut);
    size_t want = (size_t)(strstr(full.text, stop) - full.text);
    CHECK(cut.finish == ENGINE_STOP && cut.len == want && !memcmp(cut.text, full.text, want),
          "stop \"%s\": got %zu bytes, want %zu", stop, cut.len, want);
    engine_free(e);
}

/* eb_local behind a switch: fails while `broken` is set, like a worker that died. */
struct flaky {
    struct expert_backend inner;
    bool broken;
};

static int flaky_run(void *self, const struct eb_job *job, float *out, struct mp_error *err)
{
    struct flaky *f = self;
    if (f->broken)
        return mp_error_set(err, MP_EPEER, "expert worker lost (test)");
    return eb_run(&f->inner, job, out, err);
}

static void flaky_free(void *self)
{
    (void)self;
}

static void backend_failure(const struct env *env)
{
    static const struct eb_ops ops = {.run = flaky_run, .free = flaky_free};
    struct flaky f = {0};
    struct tp_pool *tp = tp_new(1);
    struct mp_error err = {0};
    if (eb_local_new(env->m, NULL, tp, 64, &f.inner, &err))
        abort();
    struct expert_backend eb = {&ops, &f};
    struct engine_config c = config(2, 0, 64);
    struct engine *e;
    if (engine_new(env->m, env->v, &eb, &c, &e, &err))
        abort();
    struct engine_req_params p = greedy(8);
    f.broken = true;
    struct result r1, r2;
    collect(submit(e, env, 5, &p), &r1);
    CHECK(r1.finish == ENGINE_ERROR && strstr(r1.msg, "worker lost"),
          "a failing backend ends the request with its error (%d: %s)", r1.finish, r1.msg);
    f.broken = false;
    collect(submit(e, env, 5, &p), &r2);
    CHECK(r2.finish != ENGINE_ERROR && r2.n_gen > 0, "the engine serves again (%d: %s)", r2.finish,
          r2.msg);
    engine_free(e);
    eb_free(&f.inner);
    tp_free(tp);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: engine_test MODEL.gguf\n");
        return 2;
    }
    kq_init();
    struct env env = {0};
    struct mp_error err = {0};
    if (model_open(argv[1], &env.m, &err) || tok_load(env.m->gguf, &env.v, &err)) {
        fprintf(stderr, "engine_test: %s\n", err.msg);
        return 1;
    }
    batch_invariance(&env);
    chunked_prefill(&env);
    cancel_and_limits(&env);
    stop_strings(&env);
    backend_failure(&env);
    tok_free(env.v);
    model_close(env.m);
    if (!failures)
        printf("engine_test: all passed\n");
    return failures != 0;
}
