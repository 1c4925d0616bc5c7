/* model/tokenizer_enc.h: the state of one tok_encode call, shared by tokenizer.c (partitioning,
 * the driver), tokenizer_pre.c (pre-tokenizers) and tokenizer_bpe.c (merging). Private. */
#ifndef MP_TOKENIZER_ENC_H
#define MP_TOKENIZER_ENC_H

#include "model/tokenizer_impl.h"

/* A piece of the input after special-token partitioning: a special token or raw text. */
struct frag {
    size_t off, len;
    int32_t id; /* >= 0: this special token; -1: raw text to pre-tokenize */
};

/* One BPE symbol: a run of a word's bytes, linked to its live neighbours. */
struct sym {
    int32_t id; /* symbol id (token if < n_vocab), -1 if its bytes are no known symbol */
    int32_t prev, next;
    uint32_t start, n; /* bytes of the word; n == 0 once merged into its left neighbour */
};

/* A possible merge of two adjacent symbols, queued by (rank, left) like llm_bigram_bpe. */
struct cand {
    int32_t rank, left, right, result;
    uint32_t n; /* combined length when queued: a mismatch later means the entry is stale */
};

/* State of one tok_encode call. Buffers grow to the largest fragment and word seen and are freed
 * at the end: nothing is allocated per token. */
struct enc {
    const struct tok_vocab *v;
    int32_t *ids;
    int n_max;
    int64_t count;
    bool oom;
    struct frag *frags[2];
    size_t n_frags[2], cap_frags[2];
    uint8_t *norm; /* the fragment rewritten as llama.cpp reads invalid UTF-8 */
    size_t cap_norm;
    uint32_t *cp;  /* [n_cp] code points of the fragment */
    uint16_t *fl;  /* [n_cp] their UC_* flags */
    uint32_t *off; /* [n_cp + 1] byte offset of each code point */
    size_t cap_cp, cap_fl, cap_off;
    uint32_t *ends[2]; /* pre-token ends (code point index), two lists for staged splitting */
    size_t n_ends[2], cap_ends[2];
    struct sym *syms;
    size_t cap_syms;
    struct cand *heap;
    size_t n_heap, cap_heap;
};

/* Returns a buffer of at least `need` elements (p itself if big enough). On failure frees p,
 * zeroes *cap, flags the call as out of memory and returns NULL. */
void *tok_grow_buf(struct enc *e, void *p, size_t *cap, size_t need, size_t elem);

#define RESERVE(e, arr, cap, need)                                                                 \
    (((arr) = tok_grow_buf((e), (arr), &(cap), (need), sizeof(*(arr)))) != NULL)

static inline void tok_emit(struct enc *e, int32_t id)
{
    if (e->ids && e->count < e->n_max)
        e->ids[e->count] = id;
    e->count++;
}

/* Splits the fragment's n_cp code points (e->cp, e->fl) into pre-tokens; returns the index of
 * the list of pre-token ends (e->ends[k]). tokenizer_pre.c. */
int tok_pre_tokenize(struct enc *e, size_t n_cp);
/* BPE of one pre-token w[0..m), m >= 1: emits its ids. tokenizer_bpe.c. */
void tok_bpe_word(struct enc *e, const uint8_t *w, size_t m);

#endif
