/* tests/placement/placement_test.c: placement files, planners and routing statistics, on the
 * conformance models.
 *
 *   placement_test MODELS_DIR TMP_DIR
 *
 * Routing statistics are recorded here by running a real model over real text with eb_stats
 * around eb_local while the forward pass also dumps the router's choices (what `moepool logits
 * --dump-routing` writes): the counts must equal those recomputed from the dump. The planners
 * are then checked on those statistics: every expert placed `replicate` times on distinct
 * workers, memory limits kept, the fixed policies' layouts, capacity's proportions, and the
 * balanced policy's expected load more even than contiguous's. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "coordinator/eb_stats.h"
#include "coordinator/placement_plan.h"
#include "kernels/kq.h"
#include "model/arch.h"
#include "model/eb_local.h"
#include "model/forward.h"
#include "model/tokenizer.h"

static const char *tmp_dir;

static const char text[] =
    "A Mixture-of-Experts model routes every token to a few of its experts. Which experts a "
    "token needs depends on what it says: numbers, names, code and prose each favour their own "
    "experts, so some experts are busier than others. A placement that gives every worker the "
    "same number of experts can still leave one worker doing most of the work, and the whole "
    "layer waits for the slowest worker. Recording which experts the router picks over real "
    "text lets a planner spread the expected load instead: hot experts apart, cold ones filling "
    "the gaps. 1, 2, 3, 42, 1024; for (int i = 0; i < n; i++) sum += x[i]; The quick brown fox "
    "jumps over the lazy dog. Ceci n'est pas une pipe. 東京は日本の首都です。";

static char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmp_dir, name);
    return buf[i];
}

static void write_text(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(s, f);
    fclose(f);
}

/* ---- routing statistics ---- */

static void test_rstats_record(void)
{
    struct mp_error err = {0};
    struct routing_stats *s = NULL, *t = NULL;
    CHECK(!rstats_new("lfm2moe", 2, 4, &s, &err), "%s", err.msg);
    const int32_t ids[] = {0, 1, 2, 1, 3, 3}; /* tokens {0,1}, {2,1}, {3,3}: a repeat counts once */
    CHECK(!rstats_record(s, 1, 3, 2, ids, &err), "%s", err.msg);
    CHECK(s->tokens[1] == 3 && s->tokens[0] == 0, "tokens %llu", (unsigned long long)s->tokens[1]);
    CHECK(rstats_count(s, 1, 1) == 2 && rstats_count(s, 1, 3) == 1, "counts");
    CHECK(rstats_pair(s, 1, 0, 1) == 1 && rstats_pair(s, 1, 1, 0) == 1, "pair symmetric");
    CHECK(rstats_pair(s, 1, 1, 2) == 1 && rstats_pair(s, 1, 3, 3) == 0, "pairs");
    CHECK(rstats_total(s) == 5, "total %llu", (unsigned long long)rstats_total(s));
    const int32_t bad[] = {0, 4};
    CHECK(rstats_record(s, 1, 1, 2, bad, &err) == MP_ERANGE && strstr(err.msg, "expert 4"),
          "out of range: %s", err.msg);
    CHECK(rstats_record(s, 2, 1, 2, ids, &err) == MP_ERANGE, "layer out of range");
    CHECK(rstats_total(s) == 5, "a refused batch records nothing");

    CHECK(!rstats_save(s, tmp_path("rs.json"), &err), "%s", err.msg);
    CHECK(!rstats_load(tmp_path("rs.json"), &t, &err), "%s", err.msg);
    CHECK(t && !memcmp(t->count, s->count, 8 * sizeof(uint64_t)) &&
              !memcmp(t->pair, s->pair, 2 * 16 * sizeof(uint64_t)) && t->tokens[1] == 3 &&
              !strcmp(t->arch, "lfm2moe"),
          "round trip");
    CHECK(t && !rstats_merge(t, s, &err) && rstats_pair(t, 1, 2, 1) == 2 && t->tokens[1] == 6,
          "merge");
    rstats_free(t);
    CHECK(!rstats_new("qwen3moe", 2, 4, &t, &err) && rstats_merge(t, s, &err) == MP_EINVAL &&
              strstr(err.msg, "lfm2moe"),
          "merging another architecture: %s", err.msg);
    rstats_free(t);
    CHECK(!rstats_new("lfm2moe", 3, 4, &t, &err) && rstats_merge(t, s, &err) == MP_EINVAL,
          "merging another shape");
    rstats_free(t);
    rstats_free(s);
}

struct bad_file {
    const char *json, *want;
};

static void expect_rstats_error(const struct bad_file *b)
{
    struct mp_error err = {0};
    struct routing_stats *s = NULL;
    write_text(tmp_path("bad_rs.json"), b->json);
    int rc = rstats_load(tmp_path("bad_rs.json"), &s, &err);
    CHECK(rc && !s && strstr(err.msg, b->want), "want '%s', got '%s'", b->want, err.msg);
    rstats_free(s);
}

static void test_rstats_errors(void)
{
#define RS_HEAD "{\"format\": \"moepool-routing-stats\", \"version\": 1, "
    static const struct bad_file cases[] = {
        {"{\"format\": \"moepool-placement\", \"version\": 1}", "\"format\" must be"},
        {RS_HEAD "\"n_moe_layers\": 1, \"n_expert\": 2,\n \"layers\": [}", ":2: JSON syntax"},
        {"{\"format\": \"moepool-routing-stats\", \"version\": 9}", "unsupported version"},
        {RS_HEAD "\"n_moe_layers\": -1, \"n_expert\": 2, \"layers\": []}", "must be counts"},
        {RS_HEAD "\"n_moe_layers\": 1, \"n_expert\": 2, \"layers\": []}", "must list 1 layers"},
        {RS_HEAD "\"n_moe_layers\": 1, \"n_expert\": 2, \"layers\": [{\"tokens\": 1, "
                 "\"counts\": [1]}]}",
         "must list 2 counts"},
        {RS_HEAD "\"n_moe_layers\": 1, \"n_expert\": 2, \"layers\": [{\"tokens\": 1, "
                 "\"counts\": [1, 2]}]}",
         "expert 1: count must be"},
        {RS_HEAD "\"n_moe_layers\": 1, \"n_expert\": 2, \"layers\": [{\"tokens\": 3, "
                 "\"counts\": [1, 2], \"pairs\": [[0, 1, 2]]}]}",
         "more often than its experts"},
        {RS_HEAD "\"n_moe_layers\": 1, \"n_expert\": 2, \"layers\": [{\"tokens\": 3, "
                 "\"counts\": [1, 2], \"pairs\": [[1, 0, 1]]}]}",
         "needs a < b"},
        {RS_HEAD "\"n_moe_layers\": 1, \"n_expert\": 2, \"layers\": [{\"tokens\": 3, "
                 "\"counts\": [1.5, 2]}]}",
         "count must be"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_rstats_error(&cases[i]);
    struct mp_error err = {0};
    struct routing_stats *s = NULL;
    CHECK(rstats_load(tmp_path("does-not-exist.json"), &s, &err) == MP_EIO &&
              strstr(err.msg, "cannot open"),
          "%s", err.msg);
}

/* ---- placement files ---- */

static void test_place_roundtrip(void)
{
    struct mp_error err = {0};
    struct place_worker w[3] = {{"local", 0, 0}, {"w1", 8ull << 30, 4}, {"w2", 0, 8}};
    struct placement *p = NULL, *q = NULL;
    CHECK(!place_new("lfm2moe", 2, 3, 3, w, &p, &err), "%s", err.msg);
    if (!p)
        return;
    snprintf(p->fingerprint, sizeof(p->fingerprint), "sha256:abc+/=");
    place_add(p, 0, 0, 0);
    place_add(p, 0, 1, 1);
    place_add(p, 0, 1, 2);
    place_add(p, 0, 2, 2);
    for (int e = 0; e < 3; e++)
        place_add(p, 1, e, 1);
    CHECK(!place_save(p, tmp_path("p.json"), &err), "%s", err.msg);
    CHECK(!place_load(tmp_path("p.json"), &q, &err), "%s", err.msg);
    CHECK(q && q->n_workers == 3 && !memcmp(q->holders, p->holders, 6 * sizeof(uint64_t)) &&
              q->workers[1].mem_bytes == 8ull << 30 && q->workers[2].cores == 8 &&
              !strcmp(q->fingerprint, p->fingerprint),
          "round trip");
    int32_t ids[3];
    CHECK(place_worker_experts(p, 1, 1, ids) == 3 && ids[2] == 2, "worker experts");
    CHECK(place_worker_experts(p, 2, 0, ids) == 2 && ids[0] == 1 && ids[1] == 2, "replica");
    place_free(q);
    q = NULL;
    CHECK(!place_new("lfm2moe", 2, 3, 3, w, &q, &err) && place_check_complete(q, &err) &&
              strstr(err.msg, "layer 0 expert 0 has no worker"),
          "incomplete: %s", err.msg);
    place_free(q);
    struct place_worker dup[2] = {{"a", 0, 0}, {"a", 0, 0}};
    CHECK(place_new("lfm2moe", 1, 1, 2, dup, &q, &err) && strstr(err.msg, "'a' appears twice"),
          "%s", err.msg);
    place_free(p);
}

static void expect_place_error(const struct bad_file *b)
{
    struct mp_error err = {0};
    struct placement *p = NULL;
    write_text(tmp_path("bad_p.json"), b->json);
    int rc = place_load(tmp_path("bad_p.json"), &p, &err);
    CHECK(rc && !p && strstr(err.msg, b->want) && strstr(err.msg, "bad_p.json"),
          "want '%s', got '%s'", b->want, err.msg);
    place_free(p);
}

static void test_place_errors(void)
{
#define P_HEAD                                                                                     \
    "{\"format\": \"moepool-placement\", \"version\": 1,\n"                                        \
    " \"model\": {\"architecture\": \"lfm2moe\", \"n_moe_layers\": 2, \"n_expert\": 2},\n"
#define P_WORKERS " \"workers\": [{\"name\": \"a\"}, {\"name\": \"b\"}],\n"
    static const struct bad_file cases[] = {
        {P_HEAD P_WORKERS " \"layers\": [[\"a\", \"b\"], [\"a\", \"c\"]]}",
         "layer 1 expert 1: unknown worker 'c'"},
        {P_HEAD P_WORKERS " \"layers\": [[\"a\", \"b\"], [\"a\"]]}", "layer 1 must list 2 experts"},
        {P_HEAD P_WORKERS " \"layers\": [[\"a\", \"b\"]]}", "must list 2 MoE layers, has 1"},
        {P_HEAD P_WORKERS " \"layers\": [[\"a\", []], [\"a\", \"b\"]]}",
         "layer 0 expert 1: empty list"},
        {P_HEAD P_WORKERS " \"layers\": [[\"a\", [\"b\", \"b\"]], [\"a\", \"b\"]]}",
         "layer 0 expert 1: worker 'b' twice"},
        {P_HEAD P_WORKERS " \"layers\": [[\"a\", 7], [\"a\", \"b\"]]}",
         "layer 0 expert 1: must be a worker name"},
        {P_HEAD " \"workers\": [{\"name\": \"a\"}, {\"name\": \"a\"}],\n"
                " \"layers\": [[\"a\", \"a\"], [\"a\", \"a\"]]}",
         "'a' appears twice"},
        {P_HEAD
         " \"workers\": [{\"name\": \"a b\"}],\n \"layers\": [[\"a\", \"a\"], [\"a\", \"a\"]]}",
         "\"name\" must be a name"},
        {P_HEAD " \"workers\": [{\"name\": \"a\", \"mem\": 5}],\n"
                " \"layers\": [[\"a\", \"a\"], [\"a\", \"a\"]]}",
         "worker 1: unknown key \"mem\""},
        {P_HEAD " \"workers\": [{\"name\": \"a\", \"cores\": -2}],\n"
                " \"layers\": [[\"a\", \"a\"], [\"a\", \"a\"]]}",
         "\"cores\" must be a count"},
        {P_HEAD " \"workers\": [],\n \"layers\": []}", "\"workers\" must list 1 to 64"},
        {P_HEAD P_WORKERS " \"layer\": []}", "unknown key \"layer\""},
        {"{\"format\": \"moepool-placement\", \"version\": 1, \"model\": {\"architecture\": "
         "\"lfm2moe\", \"n_moe_layers\": 0, \"n_expert\": 2}}",
         "must be counts from 1"},
        {"{\"format\": \"moepool-placement\", \"version\": 2}", "unsupported version"},
        {"[1, 2]", "not a JSON object"},
        {P_HEAD P_WORKERS " \"layers\": [[\"a\", \"b\"],\n [\"a\", \"b\"]", ":5: JSON syntax"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_place_error(&cases[i]);
}

/* ---- mutated files: hostile input never crashes (run under ASan in CI) ---- */

static uint64_t rng_state = 42;

static uint32_t rng(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

static char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *buf = malloc(1 << 20);
    *n = f && buf ? fread(buf, 1, 1 << 20, f) : 0;
    if (f)
        fclose(f);
    return buf;
}

/* One to four edits: a byte replaced by JSON punctuation or a digit, a byte deleted, a span
 * repeated, or the tail cut off. */
static size_t mutate(char *dst, const char *src, size_t n)
{
    static const char alphabet[] = "{}[]\",:-.e0123456789 aw";
    memcpy(dst, src, n);
    for (int edits = 1 + (int)(rng() % 4); edits-- && n > 1;) {
        size_t at = rng() % n;
        switch (rng() % 4) {
        case 0: dst[at] = alphabet[rng() % (sizeof(alphabet) - 1)]; break;
        case 1: memmove(dst + at, dst + at + 1, n - at - 1), n--; break;
        case 2: {
            size_t len = 1 + rng() % 16;
            if (at + len <= n && n + len < (1 << 20) - 1) {
                memmove(dst + at + len, dst + at, n - at);
                n += len;
            }
            break;
        }
        default: n = at; break;
        }
    }
    return n;
}

/* Loads many mutations of a valid file: each must load or fail with a message, never crash,
 * and whatever loads must be complete (every expert held). */
static void test_mutations(const char *valid, bool placement, int rounds)
{
    size_t n;
    char *src = read_all(tmp_path(valid), &n), *dst = malloc(1 << 20);
    int loaded = 0;
    for (int i = 0; src && dst && n && i < rounds; i++) {
        struct mp_error err = {0};
        size_t len = mutate(dst, src, n);
        FILE *f = fopen(tmp_path("mutated.json"), "wb");
        fwrite(dst, 1, len, f);
        fclose(f);
        struct placement *p = NULL;
        struct routing_stats *s = NULL;
        int rc = placement ? place_load(tmp_path("mutated.json"), &p, &err)
                           : rstats_load(tmp_path("mutated.json"), &s, &err);
        CHECK(rc ? err.msg[0] != 0 : (placement ? !place_check_complete(p, &err) : 1),
              "mutation %d of %s: rc %d '%s'", i, valid, rc, err.msg);
        loaded += !rc;
        place_free(p);
        rstats_free(s);
    }
    printf("%s: %d of %d mutations still load\n", valid, loaded, rounds);
    free(src);
    free(dst);
}

/* ---- recording on a real model ---- */

struct run {
    struct model *m;
    struct tp_pool *tp;
    struct fwd_state *st;
    struct kv_seq *seq;
    struct expert_backend eb;
    struct routing_stats *stats;
};

static int tokenize(const struct model *m, int32_t **ids)
{
    struct mp_error err = {0};
    struct tok_vocab *v = NULL;
    int n = -1;
    if (!tok_load(m->gguf, &v, &err)) {
        *ids = malloc(4096 * sizeof(**ids));
        n = tok_encode(v, text, strlen(text), tok_add_bos(v), false, *ids, 4096, &err);
    }
    CHECK(n > 100, "tokenize: %s", err.msg);
    tok_free(v);
    return n;
}

/* Runs the text through m in one batch with eb_stats recording and the router's choices dumped;
 * compares the recorded counts with counts recomputed from the dump. */
static struct routing_stats *record_and_compare(const char *path)
{
    struct mp_error err = {0};
    struct run r = {0};
    struct expert_backend local = {0};
    int32_t *ids = NULL;
    CHECK(!model_open(path, &r.m, &err), "%s", err.msg);
    if (!r.m)
        return NULL;
    int n = tokenize(r.m, &ids);
    const int k = (int)r.m->hp.n_expert_used, n_e = (int)r.m->hp.n_expert;
    int32_t *dump = calloc((size_t)r.m->n_moe_layers * n * k, sizeof(*dump));
    int32_t *pos = malloc((size_t)n * sizeof(*pos));
    struct kv_seq **seqs = malloc((size_t)n * sizeof(*seqs));
    r.tp = tp_new(2);
    int rc = rstats_new(r.m->arch->name, r.m->n_moe_layers, n_e, &r.stats, &err);
    if (!rc)
        rc = kv_seq_new(r.m, n, &r.seq, &err);
    if (!rc)
        rc = fwd_state_new(r.m, n, n, r.tp, &r.st, &err);
    if (!rc)
        rc = eb_local_new(r.m, NULL, r.tp, n, &local, &err);
    if (!rc)
        rc = eb_stats_new(r.m, local, r.stats, &r.eb, &err);
    for (int i = 0; i < n; i++) {
        pos[i] = i;
        seqs[i] = r.seq;
    }
    struct fwd_batch b = {.n_tokens = n,
                          .token = ids,
                          .pos = pos,
                          .seq = seqs,
                          .want_logits = calloc((size_t)n, sizeof(bool))};
    struct fwd_trace trace = {.dump = dump, .n_pos = n};
    if (!rc)
        rc = fwd_run(r.st, &b, &r.eb, &trace, NULL, &err);
    CHECK(!rc, "%s: %s", path, err.msg);
    struct routing_stats *want = NULL;
    CHECK(!rstats_new(r.m->arch->name, r.m->n_moe_layers, n_e, &want, &err), "%s", err.msg);
    for (int l = 0; want && l < r.m->n_moe_layers; l++)
        rstats_record(want, l, n, k, dump + (size_t)l * n * k, &err);
    size_t n_le = (size_t)r.m->n_moe_layers * n_e;
    CHECK(!rc && want && !memcmp(want->count, r.stats->count, n_le * sizeof(uint64_t)) &&
              !memcmp(want->pair, r.stats->pair, n_le * n_e * sizeof(uint64_t)) &&
              r.stats->tokens[0] == (uint64_t)n && rstats_total(r.stats) == n_le / n_e * n * k,
          "%s: eb_stats counts differ from the router's dumped choices", path);
    rstats_free(want);
    free((void *)b.want_logits);
    free(dump);
    free(pos);
    free(seqs);
    free(ids);
    eb_free(&r.eb);
    fwd_state_free(r.st);
    kv_seq_free(r.seq);
    tp_free(r.tp);
    model_close(r.m);
    return r.stats;
}

/* ---- planners ---- */

static int holders_count(uint64_t set)
{
    return __builtin_popcountll(set);
}

/* Invariants of every plan: each expert on exactly `replicate` distinct workers, memory kept. */
static void check_plan(const struct placement *p, const struct model *m,
                       const struct plan_request *req, const char *what)
{
    uint64_t bytes[PLACE_MAX_WORKERS];
    struct mp_error err = {0};
    CHECK(!place_check_model(p, m, NULL, &err), "%s: %s", what, err.msg);
    for (int l = 0; l < p->n_moe_layers; l++)
        for (int e = 0; e < p->n_expert; e++)
            CHECK(holders_count(place_holders(p, l, e)) == req->replicate,
                  "%s: layer %d expert %d has %d holders", what, l, e,
                  holders_count(place_holders(p, l, e)));
    place_worker_bytes(p, m, bytes);
    for (int w = 0; w < p->n_workers; w++)
        CHECK(!req->workers[w].mem_bytes || bytes[w] <= req->workers[w].mem_bytes,
              "%s: worker %d holds %llu bytes > %llu", what, w, (unsigned long long)bytes[w],
              (unsigned long long)req->workers[w].mem_bytes);
}

static struct placement *plan(const struct model *m, enum plan_policy policy, const char *spec,
                              int replicate, const struct routing_stats *s)
{
    struct mp_error err = {0};
    struct plan_request req = {.policy = policy, .stats = s, .replicate = replicate};
    struct placement *p = NULL;
    char what[160];
    snprintf(what, sizeof(what), "%s %s x%d", plan_policy_name(policy), spec, replicate);
    CHECK(!plan_parse_workers(spec, req.workers, &req.n_workers, &err), "%s", err.msg);
    CHECK(!plan_make(m, &req, &p, &err), "%s: %s", what, err.msg);
    if (p)
        check_plan(p, m, &req, what);
    return p;
}

static void test_fixed_layouts(const struct model *m)
{
    struct placement *c = plan(m, PLAN_CONTIGUOUS, "3", 1, NULL);
    struct placement *s = plan(m, PLAN_STRIPED, "3", 1, NULL);
    const int n_e = (int)m->hp.n_expert;
    for (int l = 0; c && s && l < m->n_moe_layers; l++)
        for (int e = 0; e < n_e; e++) {
            CHECK(place_holds(c, l, e, e * 3 / n_e), "contiguous: layer %d expert %d", l, e);
            CHECK(place_holds(s, l, e, e % 3), "striped: layer %d expert %d", l, e);
        }
    place_free(c);
    place_free(s);
}

/* Cores 1:3 (memory unlimited): the second worker gets about three quarters of the bytes. The
 * bound is one expert per layer per worker, the rounding of dealing whole experts. */
static void test_capacity(const struct model *m)
{
    struct placement *p = plan(m, PLAN_CAPACITY, "a:cores=2,b:cores=6", 1, NULL);
    uint64_t bytes[2], total;
    if (!p)
        return;
    place_worker_bytes(p, m, bytes);
    total = bytes[0] + bytes[1];
    double slack = (double)m->n_moe_layers * place_expert_bytes(m, 0) / (double)total;
    CHECK(fabs((double)bytes[1] / (double)total - 0.75) <= slack, "capacity 1:3 gives %.3f",
          (double)bytes[1] / (double)total);
    place_free(p);
    /* Memory caps the share: 'a' may hold only about a tenth, however many cores it has. */
    uint64_t tenth = 0;
    for (int l = 0; l < m->n_moe_layers; l++)
        tenth += place_expert_bytes(m, l) * (uint64_t)m->hp.n_expert / 10;
    char spec[128];
    snprintf(spec, sizeof(spec), "a:cores=8:mem=%llu,b:cores=1", (unsigned long long)tenth);
    p = plan(m, PLAN_CAPACITY, spec, 1, NULL);
    place_free(p);
}

static void expect_plan_error(const struct model *m, enum plan_policy policy, const char *spec,
                              int replicate, const struct routing_stats *s, const char *want)
{
    struct mp_error err = {0};
    struct plan_request req = {.policy = policy, .stats = s, .replicate = replicate};
    struct placement *p = NULL;
    CHECK(!plan_parse_workers(spec, req.workers, &req.n_workers, &err), "%s", err.msg);
    CHECK(plan_make(m, &req, &p, &err) && !p && strstr(err.msg, want), "%s: want '%s', got '%s'",
          spec, want, err.msg);
    place_free(p);
}

static void test_plan_errors(const struct model *m, const struct routing_stats *s)
{
    uint64_t total = 0;
    for (int l = 0; l < m->n_moe_layers; l++)
        total += place_expert_bytes(m, l) * (uint64_t)m->hp.n_expert;
    char spec[160];
    /* Together a byte short of the experts: no policy can fit them. */
    snprintf(spec, sizeof(spec), "a:mem=%llu,b:mem=%llu", (unsigned long long)(total / 2),
             (unsigned long long)(total - total / 2 - 1));
    for (int pol = PLAN_CONTIGUOUS; pol <= PLAN_BALANCED; pol++)
        expect_plan_error(m, (enum plan_policy)pol, spec, 1, s, "do not fit");
    /* Enough together, but contiguous's even split overflows the small worker. */
    snprintf(spec, sizeof(spec), "a:mem=%llu,b", (unsigned long long)(total / 4));
    expect_plan_error(m, PLAN_CONTIGUOUS, spec, 1, NULL, "worker a cannot hold its share");
    struct placement *p = plan(m, PLAN_CAPACITY, spec, 1, NULL);
    place_free(p);
    p = plan(m, PLAN_BALANCED, spec, 1, s);
    place_free(p);
    expect_plan_error(m, PLAN_BALANCED, "2", 1, NULL, "needs routing statistics");
    expect_plan_error(m, PLAN_STRIPED, "2", 3, NULL, "--replicate 3");

    struct mp_error err = {0};
    struct place_worker w[PLACE_MAX_WORKERS];
    int n = 0;
    CHECK(plan_parse_workers("a:mem=8x", w, &n, &err) && strstr(err.msg, "bad option 'mem=8x'"),
          "%s", err.msg);
    CHECK(plan_parse_workers("a:cores=0", w, &n, &err), "cores=0");
    CHECK(plan_parse_workers("65", w, &n, &err), "65 workers");
    CHECK(!plan_parse_workers("x:mem=1.5GiB:cores=4,y", w, &n, &err) && n == 2 &&
              w[0].mem_bytes == 3ull << 29 && w[0].cores == 4 && !w[1].mem_bytes,
          "spec parse");
    uint64_t b = 0;
    CHECK(!plan_parse_size("512M", &b) && b == 512ull << 20, "512M");
    CHECK(plan_parse_size("-1G", &b) && plan_parse_size("G", &b) && plan_parse_size("1Q", &b),
          "bad sizes");
}

/* On recorded statistics, balanced must spread expected load more evenly than contiguous (and
 * no worse than striped); replicas must keep the invariants. */
static void test_balanced(const struct model *m, const struct routing_stats *s)
{
    static const char *const specs[] = {"2", "3", "4"};
    for (int i = 0; i < 3; i++) {
        struct placement *c = plan(m, PLAN_CONTIGUOUS, specs[i], 1, NULL);
        struct placement *st = plan(m, PLAN_STRIPED, specs[i], 1, NULL);
        struct placement *b = plan(m, PLAN_BALANCED, specs[i], 1, s);
        if (c && st && b) {
            double ic = place_imbalance(c, s), is = place_imbalance(st, s),
                   ib = place_imbalance(b, s);
            printf("%s, %s workers: imbalance contiguous %.4f striped %.4f balanced %.4f; "
                   "pairs together %.3f %.3f %.3f\n",
                   m->arch->name, specs[i], ic, is, ib, place_colocated(c, s),
                   place_colocated(st, s), place_colocated(b, s));
            CHECK(ib < ic, "balanced %.4f not better than contiguous %.4f", ib, ic);
            CHECK(ib <= is, "balanced %.4f worse than striped %.4f", ib, is);
        }
        /* The co-activation pass: more pairs together, busiest load up by at most 1% of the
         * mean per layer (so the layer average of max/mean by at most 0.01, plus rounding). */
        struct mp_error err = {0};
        struct plan_request req = {
            .policy = PLAN_BALANCED, .stats = s, .replicate = 1, .no_pairs = true};
        struct placement *g = NULL;
        CHECK(!plan_parse_workers(specs[i], req.workers, &req.n_workers, &err), "%s", err.msg);
        CHECK(!plan_make(m, &req, &g, &err), "%s", err.msg);
        if (g && b) {
            CHECK(place_colocated(b, s) >= place_colocated(g, s), "pairs %.4f < greedy %.4f",
                  place_colocated(b, s), place_colocated(g, s));
            CHECK(place_imbalance(b, s) <= place_imbalance(g, s) + 0.01 + 1e-9,
                  "pair pass raised imbalance %.4f -> %.4f", place_imbalance(g, s),
                  place_imbalance(b, s));
            printf("  greedy only: imbalance %.4f, pairs together %.3f\n", place_imbalance(g, s),
                   place_colocated(g, s));
        }
        place_free(g);
        place_free(c);
        place_free(st);
        place_free(b);
    }
    struct placement *r = plan(m, PLAN_BALANCED, "w1:cores=4,w2:cores=4,w3:cores=8", 2, s);
    place_free(r);
    r = plan(m, PLAN_CAPACITY, "4", 3, NULL);
    place_free(r);
    r = plan(m, PLAN_CONTIGUOUS, "3", 3, NULL);
    place_free(r);
}

static void test_model(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct routing_stats *s = record_and_compare(path);
    struct model *m = NULL;
    struct mp_error err = {0};
    CHECK(!model_open(path, &m, &err), "%s", err.msg);
    if (s && m) {
        test_fixed_layouts(m);
        test_capacity(m);
        test_plan_errors(m, s);
        test_balanced(m, s);
    }
    model_close(m);
    rstats_free(s);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: placement_test MODELS_DIR TMP_DIR\n");
        return 2;
    }
    tmp_dir = argv[2];
    kq_init();
    test_rstats_record();
    test_rstats_errors();
    test_place_roundtrip();
    test_place_errors();
    test_mutations("p.json", true, 800);
    test_mutations("rs.json", false, 400);
    test_model(argv[1], "lfm2moe-small-q4_k_m.gguf");
    test_model(argv[1], "qwen3moe-tiny-q8_0.gguf");
    test_model(argv[1], "lfm2moe-tiny-q4_0.gguf");
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures != 0;
}
