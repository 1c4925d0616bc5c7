/* model/vocab_maps.c: the tokenizer vocabulary's storage (tokenizer_impl.h): one byte arena for
 * all strings, a string -> id map, a (left, right) -> merge map, and the BPE symbol table. */
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer_impl.h"
#include "model/unicode.h"

int tok_strmap_init(struct strmap *m, size_t n_expected)
{
    size_t cap = 64;
    while (cap < 2 * n_expected)
        cap *= 2;
    m->mask = (uint32_t)(cap - 1);
    m->n = 0;
    m->slot = calloc(cap, sizeof(*m->slot));
    return m->slot ? 0 : MP_ENOMEM;
}

void tok_strmap_free(struct strmap *m)
{
    free(m->slot);
}

void tok_strmap_put(struct strmap *m, uint32_t id, uint32_t h)
{
    uint32_t i = h & m->mask;
    while (m->slot[i].id1)
        i = (i + 1) & m->mask;
    m->slot[i] = (struct strmap_slot){id + 1, h};
    m->n++;
}

/* Keeps the load factor at most 1/2 so probes stay short. */
int tok_strmap_grow(struct strmap *m)
{
    if (2 * (size_t)(m->n + 1) <= (size_t)m->mask + 1)
        return 0;
    struct strmap bigger;
    if (tok_strmap_init(&bigger, (size_t)m->mask + 1) < 0) {
        tok_strmap_free(&bigger);
        return MP_ENOMEM;
    }
    for (uint32_t i = 0; i <= m->mask; i++)
        if (m->slot[i].id1)
            tok_strmap_put(&bigger, m->slot[i].id1 - 1, m->slot[i].hash);
    tok_strmap_free(m);
    *m = bigger;
    return 0;
}

/* Adds a merge unless the pair is already known: the first (lowest) rank wins, as
 * std::unordered_map::emplace does in llama.cpp. */
void tok_pair_put(struct pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t result)
{
    uint64_t key = tok_pair_key(a, b);
    uint64_t i = tok_pair_slot(m, key);
    while (m->ent[i].key != PAIR_EMPTY) {
        if (m->ent[i].key == key)
            return;
        i = (i + 1) & m->mask;
    }
    m->ent[i] = (struct pair_ent){key, rank, result};
}

int tok_arena_add(struct tok_vocab *v, const void *p, size_t n, struct span *out)
{
    if (n >= NO_SPAN || v->arena_len + n >= NO_SPAN)
        return MP_ERANGE;
    if (v->arena_len + n > v->arena_cap) {
        size_t cap = v->arena_cap ? v->arena_cap : 1 << 20;
        while (cap < v->arena_len + n)
            cap *= 2;
        uint8_t *a = realloc(v->arena, cap);
        if (!a)
            return MP_ENOMEM;
        v->arena = a;
        v->arena_cap = cap;
    }
    if (n)
        memcpy(v->arena + v->arena_len, p, n);
    *out = (struct span){(uint32_t)v->arena_len, (uint32_t)n};
    v->arena_len += n;
    return 0;
}

/* Id of the symbol spelled by raw bytes p[0..n), adding a new one if needed. */
int tok_intern_sym(struct tok_vocab *v, const uint8_t *p, size_t n, int32_t *id)
{
    uint32_t h = tok_hash(p, n);
    *id = tok_strmap_find(&v->sym_map, v->sym, v->arena, p, n, h);
    if (*id >= 0)
        return 0;
    if (v->n_sym == v->cap_sym) {
        uint32_t cap = v->cap_sym * 2;
        struct span *s = realloc(v->sym, cap * sizeof(*s));
        if (!s)
            return MP_ENOMEM;
        v->sym = s;
        v->cap_sym = cap;
    }
    /* p may point into the arena, which tok_arena_add can move: copy first. */
    uint8_t small[256];
    uint8_t *copy = n <= sizeof(small) ? small : malloc(n);
    if (!copy)
        return MP_ENOMEM;
    memcpy(copy, p, n);
    int rc = tok_arena_add(v, copy, n, &v->sym[v->n_sym]);
    if (copy != small)
        free(copy);
    if (rc < 0 || (rc = tok_strmap_grow(&v->sym_map)) < 0)
        return rc;
    tok_strmap_put(&v->sym_map, v->n_sym, h);
    *id = (int32_t)v->n_sym++;
    return 0;
}

/* Decodes byte-level text (stand-in characters) to raw bytes in out (at least n bytes).
 * Returns the raw length, or -1 if some character is no stand-in. */
long tok_unstand(const uint8_t *p, size_t n, uint8_t *out)
{
    size_t i = 0, k = 0;
    while (i < n) {
        size_t len;
        int b = uc_cp_to_byte(uc_decode(p + i, n - i, &len));
        if (b < 0)
            return -1;
        out[k++] = (uint8_t)b;
        i += len;
    }
    return (long)k;
}
