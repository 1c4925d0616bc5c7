/* model/cmd_run.c: `moepool run -m FILE -p PROMPT [-n N] [--temp T] [--seed S] [-t THREADS]`
 * (all options: usage() below; bad input and its messages: docs/chat.md, tests/run_cli.py):
 * tokenizes the prompt, prefills it in chunks, then samples and streams text to stdout as it is
 * generated (whole UTF-8 characters only), and ends with a line of timings on stderr. Stops at
 * an end-of-generation token or after N tokens. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "kernels/kq.h"
#include "model/chat_template.h"
#include "model/eb_local.h"
#include "model/forward.h"
#include "model/repack.h"
#include "model/sampler.h"
#include "model/stopstr.h"
#include "model/tokenizer.h"
#include "model/unicode.h"

#define RUN_UBATCH 512
#define RUN_MAX_CTX (1 << 20) /* -c and -n: far above any model's context, below int overflow */

struct run_args {
    const char *model, *prompt;
    int n_predict, threads, n_ctx;
    bool chat;     /* render the prompt as one user turn with the model's chat template */
    bool no_think; /* with --chat: Qwen3's enable_thinking = false */
    const char *stops[STOPSTR_MAX]; /* --stop: generation ends before the first of these */
    int n_stops;
    struct samp_params samp;
};

struct run_ctx {
    struct model *m;
    struct tok_vocab *vocab;
    struct tp_pool *tp;
    struct fwd_state *st;
    struct kv_seq *seq;
    struct expert_backend eb;
    struct sampler *samp;
    struct stopstr *stop;
    char *stop_out; /* [stopstr_out_cap] text the stop matcher lets through */
    float *logits;
    int32_t *ids;
    int n_ids;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: moepool run -m MODEL -p PROMPT [-n N_PREDICT] [-c CTX] [-t THREADS]\n"
               "                   [--temp T] [--top-k K] [--top-p P] [--min-p P] [--seed S]\n"
               "                   [--repeat-penalty R] [--presence-penalty P]\n"
               "                   [--frequency-penalty F] [--repeat-last-n N]\n"
               "                   [--chat [--no-think]] [--stop STRING]...\n");
}

/* Numbers are read whole and range-checked: "-n 12x", "-t 0" or "--temp nan" get one line naming
 * the option instead of atoi's silent 0. */
static bool parse_int(const char *opt, const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "moepool run: %s '%s': want an integer from %ld to %ld\n", opt, s, lo, hi);
        return false;
    }
    *out = (int)v;
    return true;
}

static bool parse_float(const char *opt, const char *s, float lo, float hi, float *out)
{
    char *end;
    float v = strtof(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) { /* NaN fails the range test too */
        fprintf(stderr, "moepool run: %s '%s': want a number from %g to %g\n", opt, s,
                (double)lo, (double)hi);
        return false;
    }
    *out = v;
    return true;
}

static bool parse_seed(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 10);
    if (end == s || *end || errno || *s == '-') {
        fprintf(stderr, "moepool run: --seed '%s': want a non-negative integer\n", s);
        return false;
    }
    return true;
}

static bool add_stop(const char *v, struct run_args *a)
{
    if (!*v || strlen(v) > STOPSTR_MAX_LEN || a->n_stops == STOPSTR_MAX) {
        fprintf(stderr, "moepool run: --stop '%.40s': want at most %d non-empty strings of at most "
                        "%d bytes\n", v, STOPSTR_MAX, STOPSTR_MAX_LEN);
        return false;
    }
    a->stops[a->n_stops++] = v;
    return true;
}

/* One option with its argument; false (message printed) when the value is bad. */
static bool set_option(int c, const char *v, struct run_args *a)
{
    struct samp_params *sp = &a->samp;
    switch (c) {
    case 'm': a->model = v; return true;
    case 'p': a->prompt = v; return true;
    case 'n': return parse_int("-n", v, 0, RUN_MAX_CTX, &a->n_predict);
    case 't': return parse_int("-t", v, 1, 1024, &a->threads);
    case 'c': return parse_int("-c", v, 1, RUN_MAX_CTX, &a->n_ctx);
    case 'T': return parse_float("--temp", v, 0.0f, 100.0f, &sp->temp);
    case 'K': return parse_int("--top-k", v, 0, INT32_MAX, &sp->top_k);
    case 'P': return parse_float("--top-p", v, 0.0f, 1.0f, &sp->top_p);
    case 'M': return parse_float("--min-p", v, 0.0f, 1.0f, &sp->min_p);
    case 'S': return parse_seed(v, &sp->seed);
    case 'R': return parse_float("--repeat-penalty", v, 0.01f, 100.0f, &sp->repeat_penalty);
    case 'E': return parse_float("--presence-penalty", v, -100.0f, 100.0f, &sp->presence_penalty);
    case 'F': return parse_float("--frequency-penalty", v, -100.0f, 100.0f,
                                 &sp->frequency_penalty);
    case 'L': return parse_int("--repeat-last-n", v, 0, RUN_MAX_CTX, &sp->penalty_last_n);
    case 'C': a->chat = true; return true;
    case 'N': a->no_think = true; return true;
    case 'X': return add_stop(v, a);
    }
    return false;
}

/* Returns 0 to run, 1 after --help, 2 for bad usage (one line printed). */
static int parse_args(int argc, char **argv, struct run_args *a)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
        {"n-predict", required_argument, 0, 'n'}, {"threads", required_argument, 0, 't'},
        {"ctx-size", required_argument, 0, 'c'}, {"temp", required_argument, 0, 'T'},
        {"top-k", required_argument, 0, 'K'}, {"top-p", required_argument, 0, 'P'},
        {"min-p", required_argument, 0, 'M'}, {"seed", required_argument, 0, 'S'},
        {"repeat-penalty", required_argument, 0, 'R'},
        {"presence-penalty", required_argument, 0, 'E'},
        {"frequency-penalty", required_argument, 0, 'F'},
        {"repeat-last-n", required_argument, 0, 'L'}, {"chat", no_argument, 0, 'C'},
        {"no-think", no_argument, 0, 'N'}, {"stop", required_argument, 0, 'X'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    *a = (struct run_args){.n_predict = 128, .n_ctx = 4096, .threads = n_cpu < 1 ? 1 : (int)n_cpu,
                           .samp = samp_defaults()};
    a->samp.seed = (uint64_t)time(NULL);
    optind = 1;
    opterr = 0; /* our own one-line messages */
    int c;
    while ((c = getopt_long(argc, argv, ":m:p:n:t:c:h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == '?' || c == ':') {
            fprintf(stderr, "moepool run: %s option '%s' (moepool run --help)\n",
                    c == ':' ? "missing value for" : "unknown", argv[optind - 1]);
            return 2;
        }
        if (!set_option(c, optarg, a))
            return 2;
    }
    if (!a->model || !a->prompt || optind != argc) {
        if (optind != argc)
            fprintf(stderr, "moepool run: unexpected argument '%s' (quote the prompt)\n",
                    argv[optind]);
        else
            fprintf(stderr, "moepool run: -m MODEL and -p PROMPT are required "
                            "(moepool run --help)\n");
        return 2;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int tokenize_text(struct run_ctx *r, const struct run_args *a, const char *text,
                         struct mp_error *err)
{
    size_t len = strlen(text);
    int n = tok_encode(r->vocab, text, len, tok_add_bos(r->vocab), true, NULL, 0, err);
    if (n < 0)
        return n;
    if (n == 0)
        return mp_error_set(err, MP_EINVAL, "the prompt is empty");
    if (n > a->n_ctx)
        return mp_error_set(err, MP_ERANGE, "the prompt is %d tokens, longer than the context "
                            "of %d (use -c)", n, a->n_ctx);
    r->ids = malloc((size_t)n * sizeof(*r->ids));
    if (!r->ids)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    r->n_ids = tok_encode(r->vocab, text, len, tok_add_bos(r->vocab), true, r->ids, n, err);
    return r->n_ids < 0 ? r->n_ids : 0;
}

/* With --chat, the prompt becomes one user turn in the format the GGUF's chat template names
 * (LFM2, Qwen3, or ChatML with a warning when the template is not recognised). */
static int render_prompt(struct run_ctx *r, const struct run_args *a, char **out,
                         struct mp_error *err)
{
    struct gguf_str tmpl = {"", 0};
    bool fallback = false;
    *out = NULL;
    if (!a->chat)
        return (*out = strdup(a->prompt)) ? 0 : mp_error_set(err, MP_ENOMEM, "out of memory");
    int rc = gguf_get_str(r->m->gguf, "tokenizer.chat_template", &tmpl, err);
    if (rc && rc != MP_ENOTFOUND)
        return rc;
    enum chat_format f = chat_detect(tmpl.ptr, (size_t)tmpl.len, &fallback);
    if (fallback)
        fprintf(stderr, "moepool run: warning: chat template not recognised, using ChatML\n");
    struct chat_msg msg = {.role = "user", .content = a->prompt};
    struct chat_opts opts = {.no_thinking = a->no_think};
    return chat_render_opts(f, &msg, 1, NULL, true, &opts, out, err);
}

/* Invalid UTF-8 is not refused: llama.cpp reads each bad byte as U+FFFD (and overlong forms as
 * their value) and so does the tokenizer (docs/tokenizer.md §3), so the ids stay llama.cpp's.
 * One line says so, since the model sees replacement characters rather than what was typed. */
static void warn_invalid_utf8(const char *prompt)
{
    if (!uc_is_canonical((const uint8_t *)prompt, strlen(prompt)))
        fprintf(stderr, "moepool run: warning: the prompt is not valid UTF-8; it is read as "
                        "llama.cpp reads it (a bad byte becomes U+FFFD)\n");
}

static int tokenize_prompt(struct run_ctx *r, const struct run_args *a, struct mp_error *err)
{
    char *text;
    warn_invalid_utf8(a->prompt);
    int rc = render_prompt(r, a, &text, err);
    if (rc)
        return rc;
    rc = tokenize_text(r, a, text, err);
    free(text);
    return rc;
}

static int setup(struct run_ctx *r, const struct run_args *a, struct mp_error *err)
{
    int rc = model_open(a->model, &r->m, err);
    if (!rc)
        rc = tok_load(r->m->gguf, &r->vocab, err);
    if (!rc)
        rc = tokenize_prompt(r, a, err);
    if (rc)
        return rc;
    r->tp = tp_new(a->threads);
    r->logits = malloc((size_t)r->m->hp.n_vocab * sizeof(float));
    if (!r->tp || !r->logits)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    if ((rc = kv_seq_new(r->m, a->n_ctx, &r->seq, err)) ||
        (rc = fwd_state_new(r->m, RUN_UBATCH, a->n_ctx, r->tp, &r->st, err)) ||
        (rc = eb_local_new(r->m, NULL, r->tp, RUN_UBATCH, &r->eb, err)))
        return rc;
    size_t piece = tok_max_piece(r->vocab) + TOK_STREAM_HOLD; /* what tok_stream_push gives */
    if ((rc = stopstr_new(a->stops, a->n_stops, piece, &r->stop, err)))
        return rc;
    if (!(r->stop_out = malloc(stopstr_out_cap(r->stop))))
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    return samp_new(&a->samp, (int32_t)r->m->hp.n_vocab, &r->samp, err);
}

static void teardown(struct run_ctx *r)
{
    samp_free(r->samp);
    stopstr_free(r->stop);
    free(r->stop_out);
    eb_free(&r->eb);
    fwd_state_free(r->st);
    kv_seq_free(r->seq);
    tp_free(r->tp);
    tok_free(r->vocab);
    model_close(r->m);
    free(r->logits);
    free(r->ids);
}

/* Runs tokens[0..n) of the sequence; logits of the last one land in r->logits. */
static int feed(struct run_ctx *r, const int32_t *tokens, int n, struct mp_error *err)
{
    int32_t pos[RUN_UBATCH];
    bool want[RUN_UBATCH];
    struct kv_seq *seqs[RUN_UBATCH];
    for (int start = 0; start < n; start += RUN_UBATCH) {
        int len = n - start < RUN_UBATCH ? n - start : RUN_UBATCH;
        for (int i = 0; i < len; i++) {
            pos[i] = r->seq->n_pos + i;
            seqs[i] = r->seq;
            want[i] = start + i == n - 1;
        }
        struct fwd_batch b = {.n_tokens = len, .token = tokens + start, .pos = pos, .seq = seqs,
                              .want_logits = want};
        int rc = fwd_run(r->st, &b, &r->eb, NULL, r->logits, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* Writes decoded text through the stop-string matcher; returns true once a stop string
 * completed (the text before it is out, the stop string itself is not). */
static bool emit_text(struct run_ctx *r, const char *text, size_t n)
{
    bool stopped = false;
    size_t k = stopstr_push(r->stop, text, n, r->stop_out, &stopped);
    if (k && fwrite(r->stop_out, 1, k, stdout))
        fflush(stdout);
    return stopped;
}

static int generate(struct run_ctx *r, const struct run_args *a, struct mp_error *err)
{
    size_t cap = tok_max_piece(r->vocab) + TOK_STREAM_HOLD;
    char *text = malloc(cap);
    struct tok_stream stream;
    int n_gen = 0, rc = text ? 0 : mp_error_set(err, MP_ENOMEM, "out of memory");
    bool full = false, stopped = false;
    tok_stream_init(&stream, false);
    for (int i = 0; i < r->n_ids; i++)
        samp_accept(r->samp, r->ids[i]);
    double t0 = now_s();
    if (!rc)
        rc = feed(r, r->ids, r->n_ids, err);
    double t1 = now_s();
    /* Each token after the first needs the previous one in the cache: generation ends at
     * n_predict, at end of generation, or when the context is full. */
    while (!rc && n_gen < a->n_predict) {
        int32_t tok = samp_sample(r->samp, r->logits);
        if (tok_is_eog(r->vocab, tok))
            break;
        samp_accept(r->samp, tok);
        n_gen++;
        int n = tok_stream_push(&stream, r->vocab, tok, text, cap);
        if (n > 0 && (stopped = emit_text(r, text, (size_t)n)))
            break;
        if (n_gen == a->n_predict)
            break;
        if (r->n_ids + n_gen > a->n_ctx) {
            full = true;
            break;
        }
        rc = feed(r, &tok, 1, err);
    }
    int n = text && !stopped ? tok_stream_flush(&stream, text, cap) : 0;
    if (n > 0)
        stopped = emit_text(r, text, (size_t)n);
    size_t held = stopped ? 0 : stopstr_flush(r->stop, r->stop_out); /* a partial match */
    fwrite(r->stop_out, 1, held, stdout);
    double t2 = now_s();
    printf("\n");
    fflush(stdout); /* the timings line goes to stderr after the text, not inside it */
    if (full)
        fprintf(stderr, "moepool run: the context of %d tokens is full (use -c)\n", a->n_ctx);
    fprintf(stderr, "moepool run: prompt %d tokens in %.2f s (%.1f tok/s), generated %d tokens in "
            "%.2f s (%.1f tok/s), %d threads, %s kernels, %s layout\n", r->n_ids, t1 - t0,
            r->n_ids / (t1 - t0), n_gen, t2 - t1, n_gen / (t2 > t1 ? t2 - t1 : 1), a->threads,
            kq_simd_name(), repack_layout_name());
    free(text);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    struct run_args a;
    struct run_ctx r = {0};
    struct mp_error err = {0};
    int prc = parse_args(argc, argv, &a);
    if (prc)
        return prc == 1 ? 0 : prc;
    kq_init();
    int rc = setup(&r, &a, &err);
    if (!rc)
        rc = generate(&r, &a, &err);
    teardown(&r);
    if (rc) {
        fprintf(stderr, "moepool run: %s\n", err.msg);
        return rc == MP_ENOMEM ? 1 : 2;
    }
    return 0;
}
