/* model/tokenizer_impl.h: the tokenizer's private data structures, shared by its files and by no
 * one else (the public interface is tokenizer.h).
 *
 * The tokenizer is split by concern:
 *   vocab.c            loading tokenizer.ggml.* into struct tok_vocab (symbols, merges, pieces)
 *   vocab_special.c    special-token ids, end-of-generation marks and llama.cpp's text rules
 *   vocab_maps.c       the string and pair hash maps and the string arena behind the vocabulary
 *   tokenizer.c        tok_encode: special-token partitioning, invalid UTF-8, per fragment work
 *   tokenizer_pre.c    the pre-tokenizers (llama.cpp's regex splitters)
 *   tokenizer_bpe.c    BPE merging of one pre-token
 *   tokenizer_decode.c queries, pieces, tok_decode and the streaming decoder
 *
 * Work happens on raw bytes, not on GPT-2's byte-level characters: a token's text ("Ġthe") is
 * decoded once at load to the bytes it stands for (" the"), and merges are keyed by those bytes.
 * The stand-in mapping is a bijection, so this gives llama.cpp's results while skipping the
 * per-word re-encoding. Strings that merges mention but that are no token become extra symbols
 * (ids >= n_vocab), so merge chains through them still work; llama.cpp keys merges by strings.
 *
 * The lookups on the encoding hot path (hashing, map probes) are static inline here so that
 * splitting the files costs no speed. */
#ifndef MP_TOKENIZER_IMPL_H
#define MP_TOKENIZER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "model/gguf.h"
#include "model/tokenizer.h"

/* Token attributes: llama.cpp's llama_token_attr bits, plus our end-of-generation mark. */
enum {
    ATTR_UNKNOWN = 1 << 0,
    ATTR_UNUSED = 1 << 1,
    ATTR_NORMAL = 1 << 2,
    ATTR_CONTROL = 1 << 3,
    ATTR_USER_DEFINED = 1 << 4,
    ATTR_BYTE = 1 << 5,
    ATTR_EOG = 1 << 15,
};

enum pre_kind { PRE_DEFAULT, PRE_GPT2, PRE_STARCODER, PRE_LLAMA3, PRE_QWEN2 };

/* A byte string inside the vocabulary's arena. len == NO_SPAN: no such string. */
struct span {
    uint32_t off, len;
};
#define NO_SPAN UINT32_MAX

/* String -> id, open addressing with linear probing. Keys are not stored: slot holds id + 1 and
 * the key's hash; the bytes are compared through the owner's span table. */
struct strmap_slot {
    uint32_t id1; /* id + 1, 0 = empty */
    uint32_t hash;
};

struct strmap {
    uint32_t mask;
    uint32_t n;
    struct strmap_slot *slot; /* id and hash side by side: one cache miss per probe */
};

/* (left symbol, right symbol) -> merge rank and merged symbol. */
struct pair_ent {
    uint64_t key; /* left << 32 | right; PAIR_EMPTY = free */
    int32_t rank;
    int32_t result;
};
#define PAIR_EMPTY UINT64_MAX

struct pairmap {
    uint64_t mask;
    struct pair_ent *ent;
};

struct tok_vocab {
    int n_vocab;
    uint8_t *arena; /* all strings below; owned */
    size_t arena_len, arena_cap;
    struct span *text;  /* [n_vocab] text as stored in the GGUF ("Ġthe") */
    struct span *piece; /* [n_vocab] bytes it decodes to with special = true */
    uint16_t *attr;     /* [n_vocab] ATTR_* */
    struct strmap text_map;
    /* BPE symbols: [0, n_vocab) are tokens (sym[i] = raw bytes, NO_SPAN when the text is not
     * all stand-in characters), then merge strings that are no token. */
    struct span *sym;
    uint32_t n_sym, cap_sym;
    struct strmap sym_map;
    struct pairmap merges;
    int32_t byte_sym[256]; /* symbol of each one-byte string, -1 if none */
    int32_t byte_tok[256]; /* token whose text is exactly that byte, -1 if none */
    int32_t *special;      /* CONTROL, USER_DEFINED and UNKNOWN tokens, longest text first */
    uint32_t n_special;
    enum pre_kind pre;
    bool ignore_merges, add_bos, add_eos;
    int32_t bos, eos, eot, eom;
    size_t max_piece;
};

/* ---- hashing and maps (vocab_maps.c; the lookups are inline) ---- */

static inline uint32_t tok_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0x94D049BB133111EBull;
    h ^= h >> 29;
    return (uint32_t)(h ^ (h >> 32));
}

static inline int32_t tok_strmap_find(const struct strmap *m, const struct span *keys,
                                      const uint8_t *arena, const uint8_t *p, size_t n, uint32_t h)
{
    for (uint32_t i = h & m->mask;; i = (i + 1) & m->mask) {
        struct strmap_slot s = m->slot[i];
        if (!s.id1)
            return -1;
        if (s.hash != h)
            continue;
        const struct span *k = &keys[s.id1 - 1];
        if (k->len == n && !memcmp(arena + k->off, p, n))
            return (int32_t)(s.id1 - 1);
    }
}

static inline uint64_t tok_pair_key(int32_t a, int32_t b)
{
    return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

static inline uint64_t tok_pair_slot(const struct pairmap *m, uint64_t key)
{
    return ((key * 0x9E3779B97F4A7C15ull) >> 17) & m->mask;
}

static inline const struct pair_ent *tok_pair_find(const struct pairmap *m, int32_t a, int32_t b)
{
    uint64_t key = tok_pair_key(a, b);
    for (uint64_t i = tok_pair_slot(m, key);; i = (i + 1) & m->mask) {
        const struct pair_ent *e = &m->ent[i];
        if (e->key == key)
            return e;
        if (e->key == PAIR_EMPTY)
            return NULL;
    }
}

static inline const uint8_t *span_ptr(const struct tok_vocab *v, struct span s)
{
    return v->arena + s.off;
}

int tok_strmap_init(struct strmap *m, size_t n_expected);
void tok_strmap_free(struct strmap *m);
void tok_strmap_put(struct strmap *m, uint32_t id, uint32_t h);
int tok_strmap_grow(struct strmap *m);
/* Adds a merge unless the pair is already known: the first (lowest) rank wins. */
void tok_pair_put(struct pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t result);
/* Appends p[0..n) to the arena (which may move) and returns its span in *out. */
int tok_arena_add(struct tok_vocab *v, const void *p, size_t n, struct span *out);
/* Id of the symbol spelled by raw bytes p[0..n), adding a new one if needed. */
int tok_intern_sym(struct tok_vocab *v, const uint8_t *p, size_t n, int32_t *id);
/* Byte-level text (stand-in characters) -> raw bytes in out (at least n bytes); the raw length,
 * or -1 if some character is no stand-in. */
long tok_unstand(const uint8_t *p, size_t n, uint8_t *out);

/* ---- loading (vocab.c, vocab_special.c) ---- */

struct loader {
    const struct gguf_file *f;
    struct tok_vocab *v;
    struct mp_error *err;
    const struct gguf_value *tokens, *types, *merges;
    struct gguf_str model, pre;
    bool has_pre;
};

/* Reads the special-token ids and flags and applies llama.cpp's rules by token text (attributes,
 * end of generation). Needs the token texts and attributes loaded. */
int tok_read_specials(struct loader *l);

#endif
