/* model/tokenizer_bpe.c: BPE merging of one pre-token (llm_tokenizer_bpe_session::tokenize):
 * a heap of candidate merges by (rank, position) over a linked list of symbols. */
#include "model/tokenizer_enc.h"
#include "model/unicode.h"

static bool cand_before(const struct cand *a, const struct cand *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(struct enc *e, struct cand c)
{
    if (!RESERVE(e, e->heap, e->cap_heap, e->n_heap + 1))
        return;
    size_t i = e->n_heap++;
    while (i > 0 && cand_before(&c, &e->heap[(i - 1) / 2])) {
        e->heap[i] = e->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->heap[i] = c;
}

static struct cand heap_pop(struct enc *e)
{
    struct cand top = e->heap[0], last = e->heap[--e->n_heap];
    size_t i = 0, n = e->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && cand_before(&e->heap[c + 1], &e->heap[c]))
            c++;
        if (!cand_before(&e->heap[c], &last))
            break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n)
        e->heap[i] = last;
    return top;
}

static void try_pair(struct enc *e, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return;
    const struct sym *a = &e->syms[l], *b = &e->syms[r];
    if (a->id < 0 || b->id < 0)
        return;
    const struct pair_ent *m = tok_pair_find(&e->v->merges, a->id, b->id);
    if (m)
        heap_push(e, (struct cand){m->rank, l, r, m->result, a->n + b->n});
}

/* A symbol that is no token: llama.cpp looks up each byte of its byte-level spelling as a
 * one-byte token and drops the bytes that are none. */
static void emit_sym(struct enc *e, const uint8_t *w, const struct sym *s)
{
    const struct tok_vocab *v = e->v;
    if (s->id >= 0 && s->id < v->n_vocab) {
        tok_emit(e, s->id);
        return;
    }
    for (uint32_t k = 0; k < s->n; k++) {
        uint8_t enc[4];
        size_t ne = uc_encode(uc_byte_to_cp(w[s->start + k]), enc);
        for (size_t j = 0; j < ne; j++)
            if (v->byte_tok[enc[j]] >= 0)
                tok_emit(e, v->byte_tok[enc[j]]);
    }
}

/* llm_tokenizer_bpe_session::tokenize for one pre-token w[0..m), m >= 1. */
void tok_bpe_word(struct enc *e, const uint8_t *w, size_t m)
{
    const struct tok_vocab *v = e->v;
    if (v->ignore_merges && m > 1) {
        int32_t id = tok_strmap_find(&v->sym_map, v->sym, v->arena, w, m, tok_hash(w, m));
        if (id >= 0 && id < v->n_vocab) {
            tok_emit(e, id);
            return;
        }
    }
    if (!RESERVE(e, e->syms, e->cap_syms, m))
        return;
    struct sym *s = e->syms;
    for (size_t i = 0; i < m; i++)
        s[i] = (struct sym){v->byte_sym[w[i]], (int32_t)i - 1, i + 1 < m ? (int32_t)i + 1 : -1,
                            (uint32_t)i, 1};
    e->n_heap = 0;
    for (size_t i = 1; i < m; i++)
        try_pair(e, (int32_t)i - 1, (int32_t)i);
    while (e->n_heap && !e->oom) {
        struct cand c = heap_pop(e);
        struct sym *l = &s[c.left], *r = &s[c.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != c.n)
            continue; /* one side changed since this pair was queued */
        l->n += r->n;
        l->id = c.result;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            s[r->next].prev = c.left;
        try_pair(e, l->prev, c.left);
        try_pair(e, c.left, l->next);
    }
    for (int32_t i = 0; i >= 0; i = s[i].next)
        emit_sym(e, w, &s[i]);
}
