/* model/tokenizer.c: tok_encode (tokenizer.h): special-token partitioning, invalid UTF-8 and the
 * per-fragment pipeline (pre-tokenizers in tokenizer_pre.c, BPE in tokenizer_bpe.c). The
 * vocabulary is loaded by vocab.c; tokenizer_impl.h lists every file of the tokenizer. Spec:
 * docs/tokenizer.md; behaviour mirrors llama.cpp src/llama-vocab.cpp and src/unicode.cpp
 * (function names cited where a rule comes from). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer_enc.h"
#include "model/unicode.h"

/* Returns a buffer of at least `need` elements (p itself if big enough). On failure frees p,
 * zeroes *cap, flags the call as out of memory and returns NULL. */
void *tok_grow_buf(struct enc *e, void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = c <= SIZE_MAX / elem ? realloc(p, c * elem) : NULL;
    if (!q) {
        free(p);
        *cap = 0;
        e->oom = true;
        return NULL;
    }
    *cap = c;
    return q;
}

static void enc_free(struct enc *e)
{
    free(e->frags[0]);
    free(e->frags[1]);
    free(e->norm);
    free(e->cp);
    free(e->fl);
    free(e->off);
    free(e->ends[0]);
    free(e->ends[1]);
    free(e->syms);
    free(e->heap);
}

static void frag_push(struct enc *e, int k, size_t off, size_t len, int32_t id)
{
    if (!RESERVE(e, e->frags[k], e->cap_frags[k], e->n_frags[k] + 1))
        return;
    e->frags[k][e->n_frags[k]++] = (struct frag){off, len, id};
}

/* Splits every raw fragment of list `from` at each occurrence of special token id into `to`. */
static void split_at_special(struct enc *e, const char *text, int from, int32_t id)
{
    const struct tok_vocab *v = e->v;
    const char *st = (const char *)span_ptr(v, v->text[id]);
    size_t sl = v->text[id].len;
    int to = 1 - from;
    e->n_frags[to] = 0;
    for (size_t i = 0; i < e->n_frags[from] && !e->oom; i++) {
        struct frag f = e->frags[from][i];
        size_t pos = f.off, end = f.off + f.len;
        if (f.id >= 0) {
            frag_push(e, to, f.off, f.len, f.id);
            continue;
        }
        const char *m;
        while (pos < end && (m = memmem(text + pos, end - pos, st, sl)) != NULL) {
            size_t at = (size_t)(m - text);
            if (at > pos)
                frag_push(e, to, pos, at - pos, -1);
            frag_push(e, to, at, sl, id);
            pos = at + sl;
        }
        if (pos < end)
            frag_push(e, to, pos, end - pos, -1);
    }
}

/* tokenizer_st_partition: each special token, longest first, cuts every remaining raw fragment
 * at all its occurrences. Control and unknown tokens only count when parse_special is on;
 * user-defined ones always do. Returns the index of the final fragment list. */
static int partition(struct enc *e, const char *text, size_t len, bool parse_special)
{
    const struct tok_vocab *v = e->v;
    int cur = 0;
    e->n_frags[0] = 0;
    if (len == 0)
        return 0;
    frag_push(e, 0, 0, len, -1);
    for (uint32_t i = 0; i < v->n_special && !e->oom; i++) {
        int32_t id = v->special[i];
        if (!parse_special && (v->attr[id] & (ATTR_CONTROL | ATTR_UNKNOWN)))
            continue;
        if (!memmem(text, len, span_ptr(v, v->text[id]), v->text[id].len))
            continue; /* most special tokens appear nowhere: one scan rules them out */
        split_at_special(e, text, cur, id);
        cur = 1 - cur;
    }
    return cur;
}

/* llama.cpp decodes invalid UTF-8 to U+FFFD per bad byte and re-encodes every code point before
 * BPE (unicode_cpts_from_utf8, unicode_regex_split), so overlong forms shrink too. Returns the
 * text to tokenize: s itself when already canonical. */
static const uint8_t *normalize(struct enc *e, const uint8_t *s, size_t *n)
{
    if (uc_is_canonical(s, *n))
        return s;
    if (*n > SIZE_MAX / 3 || !RESERVE(e, e->norm, e->cap_norm, 3 * *n))
        return NULL;
    size_t i = 0, k = 0;
    while (i < *n) {
        size_t len;
        k += uc_encode(uc_decode(s + i, *n - i, &len), e->norm + k);
        i += len;
    }
    *n = k;
    return e->norm;
}

/* One raw fragment: normalize, split into pre-tokens, BPE each. */
static void encode_fragment(struct enc *e, const uint8_t *s, size_t n)
{
    if (!(s = normalize(e, s, &n)))
        return;
    if (!RESERVE(e, e->cp, e->cap_cp, n + 1) || !RESERVE(e, e->fl, e->cap_fl, n + 1) ||
        !RESERVE(e, e->off, e->cap_off, n + 1))
        return;
    size_t n_cp = 0;
    for (size_t i = 0; i < n; n_cp++) {
        size_t len;
        e->cp[n_cp] = uc_decode(s + i, n - i, &len);
        e->fl[n_cp] = (uint16_t)uc_flags(e->cp[n_cp]);
        e->off[n_cp] = (uint32_t)i;
        i += len;
    }
    e->off[n_cp] = (uint32_t)n;
    int k = tok_pre_tokenize(e, n_cp);
    size_t lo = 0;
    for (size_t i = 0; i < e->n_ends[k] && !e->oom; i++) {
        size_t hi = e->ends[k][i];
        tok_bpe_word(e, s + e->off[lo], e->off[hi] - e->off[lo]);
        lo = hi;
    }
}

int tok_encode(const struct tok_vocab *v, const char *text, size_t len, bool add_bos,
               bool parse_special, int32_t *ids, int n_max, struct mp_error *err)
{
    if (!v || (!text && len) || n_max < 0)
        return mp_error_set(err, MP_EINVAL, "tokenize: invalid arguments");
    if (len > TOK_MAX_TEXT)
        return mp_error_set(err, MP_ERANGE, "tokenize: %zu bytes of text, at most %u at once", len,
                            TOK_MAX_TEXT);
    struct enc e = {.v = v, .ids = ids, .n_max = ids ? n_max : 0};
    if (add_bos && v->bos >= 0)
        tok_emit(&e, v->bos);
    int k = partition(&e, text, len, parse_special);
    for (size_t i = 0; i < e.n_frags[k] && !e.oom; i++) {
        struct frag f = e.frags[k][i];
        if (f.id >= 0)
            tok_emit(&e, f.id);
        else
            encode_fragment(&e, (const uint8_t *)text + f.off, f.len);
    }
    enc_free(&e);
    if (e.oom)
        return mp_error_set(err, MP_ENOMEM, "tokenize: out of memory for %zu bytes of text", len);
    if (e.count > INT_MAX)
        return mp_error_set(err, MP_ERANGE, "tokenize: %lld tokens are too many",
                            (long long)e.count);
    if (ids && e.count > n_max)
        return mp_error_set(err, MP_ERANGE, "tokenize: %lld ids do not fit in %d",
                            (long long)e.count, n_max);
    return (int)e.count;
}
