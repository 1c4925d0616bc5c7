/* model/tokenizer.c: byte-level BPE tokenization and detokenization (tokenizer.h).
 *
 * Owns: loading the vocabulary from tokenizer.ggml.* keys, special-token partitioning, the
 * pre-tokenizer splitters, BPE merging, pieces and the streaming decoder. Unicode facts come from
 * unicode.c. Spec: docs/tokenizer.md; behaviour mirrors llama.cpp src/llama-vocab.cpp and
 * src/unicode.cpp (function names cited where a rule comes from).
 *
 * Work happens on raw bytes, not on GPT-2's byte-level characters: a token's text ("Ġthe") is
 * decoded once at load to the bytes it stands for (" the"), and merges are keyed by those bytes.
 * The stand-in mapping is a bijection, so this gives llama.cpp's results while skipping the
 * per-word re-encoding. Strings that merges mention but that are no token become extra symbols
 * (ids >= n_vocab), so merge chains through them still work; llama.cpp keys merges by strings. */
#include "model/tokenizer.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "model/unicode.h"

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

/* tokenizer.ggml.token_type values (llama_token_type) -> attributes. */
static const uint16_t type_attr[] = {
    0, ATTR_NORMAL, ATTR_UNKNOWN, ATTR_CONTROL, ATTR_USER_DEFINED, ATTR_UNUSED, ATTR_BYTE,
};

enum pre_kind { PRE_DEFAULT, PRE_GPT2, PRE_STARCODER, PRE_LLAMA3, PRE_QWEN2 };

/* tokenizer.ggml.pre -> rules, from llama_vocab::impl::load. A new pre-type whose regexes are
 * already implemented is one line here; a new regex is a splitter below plus a kind. */
struct pre_type {
    const char *name;
    enum pre_kind kind;
    bool ignore_merges; /* a pre-token that is itself a token is emitted without merging */
    bool add_bos;       /* default when tokenizer.ggml.add_bos_token is absent */
};

static const struct pre_type pre_types[] = {
    {"default", PRE_DEFAULT, false, false},
    {"llama3", PRE_LLAMA3, true, true},
    {"llama-v3", PRE_LLAMA3, true, true},
    {"llama-bpe", PRE_LLAMA3, true, true},
    {"falcon3", PRE_LLAMA3, true, true},
    {"falcon-h1", PRE_LLAMA3, true, true},
    {"pixtral", PRE_LLAMA3, true, true},
    {"midm-2.0", PRE_LLAMA3, true, true},
    {"lfm2", PRE_LLAMA3, true, true},
    {"jina-v5-nano", PRE_LLAMA3, true, true},
    {"dbrx", PRE_LLAMA3, false, false},
    {"smaug-bpe", PRE_LLAMA3, false, false},
    {"qwen2", PRE_QWEN2, false, false},
    {"deepseek-r1-qwen", PRE_QWEN2, false, false},
    {"kormo", PRE_QWEN2, false, false},
    {"f2llmv2", PRE_QWEN2, false, false},
    {"megrez", PRE_QWEN2, false, false},
    {"stablelm2", PRE_QWEN2, false, false},
    {"hunyuan", PRE_QWEN2, false, false},
    {"solar-open", PRE_QWEN2, false, false},
    {"grok-2", PRE_QWEN2, false, false},
    {"gpt-2", PRE_GPT2, false, false},
    {"phi-2", PRE_GPT2, false, false},
    {"jina-es", PRE_GPT2, false, false},
    {"jina-de", PRE_GPT2, false, false},
    {"jina-v2-es", PRE_GPT2, false, false},
    {"jina-v2-de", PRE_GPT2, false, false},
    {"gigachat", PRE_GPT2, false, false},
    {"a.x-4.0", PRE_GPT2, false, false},
    {"mellum", PRE_GPT2, false, false},
    {"exaone4", PRE_GPT2, false, false},
    {"mpt", PRE_GPT2, false, false},
    {"olmo", PRE_GPT2, false, false},
    {"jais", PRE_GPT2, false, false},
    {"trillion", PRE_GPT2, false, false},
    {"granite-docling", PRE_GPT2, false, false},
    {"starcoder", PRE_STARCODER, false, false},
    {"refact", PRE_STARCODER, false, false},
    {"command-r", PRE_STARCODER, false, false},
    {"smollm", PRE_STARCODER, false, false},
    {"codeshell", PRE_STARCODER, false, false},
    {"exaone", PRE_STARCODER, false, false},
    {"minerva-7b", PRE_STARCODER, false, false},
    {"mellum2", PRE_STARCODER, false, false},
};

/* Token texts llama.cpp treats as end of generation and forces to CONTROL (load(): the EOT, EOM
 * and EOG lists). */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    ("<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"), "[e~[",
};

/* Fill-in-the-middle tokens by text (load()), used when the GGUF gives no id: they become CONTROL,
 * and pad/repo/file-separator are end of generation. */
enum fim { FIM_PRE, FIM_SUF, FIM_MID, FIM_PAD, FIM_REP, FIM_SEP, FIM_COUNT };

static const char *const fim_keys[FIM_COUNT][2] = {
    {"tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id"},
    {"tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id"},
    {"tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id"},
    {"tokenizer.ggml.fim_pad_token_id", NULL},
    {"tokenizer.ggml.fim_rep_token_id", NULL},
    {"tokenizer.ggml.fim_sep_token_id", NULL},
};

static const char *const fim_texts[FIM_COUNT][9] = {
    {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin"
     "\xef\xbd\x9c>", "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL},
    {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "hole"
     "\xef\xbd\x9c>", "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL},
    {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end"
     "\xef\xbd\x9c>", "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL},
    {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL},
    {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL},
    {"<|file_sep|>", NULL},
};

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

/* ---- hashing and maps ---- */

static uint32_t hash_bytes(const uint8_t *p, size_t n)
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

static int strmap_init(struct strmap *m, size_t n_expected)
{
    size_t cap = 64;
    while (cap < 2 * n_expected)
        cap *= 2;
    m->mask = (uint32_t)(cap - 1);
    m->n = 0;
    m->slot = calloc(cap, sizeof(*m->slot));
    return m->slot ? 0 : MP_ENOMEM;
}

static void strmap_free(struct strmap *m)
{
    free(m->slot);
}

static int32_t strmap_find(const struct strmap *m, const struct span *keys, const uint8_t *arena,
                           const uint8_t *p, size_t n, uint32_t h)
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

static void strmap_put(struct strmap *m, uint32_t id, uint32_t h)
{
    uint32_t i = h & m->mask;
    while (m->slot[i].id1)
        i = (i + 1) & m->mask;
    m->slot[i] = (struct strmap_slot){id + 1, h};
    m->n++;
}

/* Keeps the load factor at most 1/2 so probes stay short. */
static int strmap_grow(struct strmap *m)
{
    if (2 * (size_t)(m->n + 1) <= (size_t)m->mask + 1)
        return 0;
    struct strmap bigger;
    if (strmap_init(&bigger, (size_t)m->mask + 1) < 0) {
        strmap_free(&bigger);
        return MP_ENOMEM;
    }
    for (uint32_t i = 0; i <= m->mask; i++)
        if (m->slot[i].id1)
            strmap_put(&bigger, m->slot[i].id1 - 1, m->slot[i].hash);
    strmap_free(m);
    *m = bigger;
    return 0;
}

static uint64_t pair_key(int32_t a, int32_t b)
{
    return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

static uint64_t pair_slot(const struct pairmap *m, uint64_t key)
{
    return ((key * 0x9E3779B97F4A7C15ull) >> 17) & m->mask;
}

static const struct pair_ent *pair_find(const struct pairmap *m, int32_t a, int32_t b)
{
    uint64_t key = pair_key(a, b);
    for (uint64_t i = pair_slot(m, key);; i = (i + 1) & m->mask) {
        const struct pair_ent *e = &m->ent[i];
        if (e->key == key)
            return e;
        if (e->key == PAIR_EMPTY)
            return NULL;
    }
}

/* Adds a merge unless the pair is already known: the first (lowest) rank wins, as
 * std::unordered_map::emplace does in llama.cpp. */
static void pair_put(struct pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t result)
{
    uint64_t key = pair_key(a, b);
    uint64_t i = pair_slot(m, key);
    while (m->ent[i].key != PAIR_EMPTY) {
        if (m->ent[i].key == key)
            return;
        i = (i + 1) & m->mask;
    }
    m->ent[i] = (struct pair_ent){key, rank, result};
}

/* ---- arena and symbols ---- */

static int arena_add(struct tok_vocab *v, const void *p, size_t n, struct span *out)
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

static const uint8_t *span_ptr(const struct tok_vocab *v, struct span s)
{
    return v->arena + s.off;
}

/* Id of the symbol spelled by raw bytes p[0..n), adding a new one if needed. */
static int intern_sym(struct tok_vocab *v, const uint8_t *p, size_t n, int32_t *id)
{
    uint32_t h = hash_bytes(p, n);
    *id = strmap_find(&v->sym_map, v->sym, v->arena, p, n, h);
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
    /* p may point into the arena, which arena_add can move: copy first. */
    uint8_t small[256];
    uint8_t *copy = n <= sizeof(small) ? small : malloc(n);
    if (!copy)
        return MP_ENOMEM;
    memcpy(copy, p, n);
    int rc = arena_add(v, copy, n, &v->sym[v->n_sym]);
    if (copy != small)
        free(copy);
    if (rc < 0 || (rc = strmap_grow(&v->sym_map)) < 0)
        return rc;
    strmap_put(&v->sym_map, v->n_sym, h);
    *id = (int32_t)v->n_sym++;
    return 0;
}

/* Decodes byte-level text (stand-in characters) to raw bytes in out (at least n bytes).
 * Returns the raw length, or -1 if some character is no stand-in. */
static long unstand(const uint8_t *p, size_t n, uint8_t *out)
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

/* ---- loading ---- */

struct loader {
    const struct gguf_file *f;
    struct tok_vocab *v;
    struct mp_error *err;
    const struct gguf_value *tokens, *types, *merges;
    struct gguf_str model, pre;
    bool has_pre;
};

static int get_str_arr(struct loader *l, const char *key, bool required,
                       const struct gguf_value **out)
{
    int rc = gguf_get_arr(l->f, key, out, l->err);
    if (rc == MP_ENOTFOUND && !required) {
        *out = NULL;
        return 0;
    }
    if (rc == MP_ENOTFOUND)
        return mp_error_set(l->err, MP_ECORRUPT, "%s: tokenizer key %s is missing", l->f->path,
                            key);
    if (rc < 0)
        return rc;
    if ((*out)->arr.type != GGUF_STRING)
        return mp_error_set(l->err, MP_ECORRUPT, "%s: %s must be an array of strings, not of %s",
                            l->f->path, key, gguf_vtype_name((*out)->arr.type));
    return 0;
}

static int read_kind(struct loader *l)
{
    int rc = gguf_get_str(l->f, "tokenizer.ggml.model", &l->model, l->err);
    if (rc == MP_ENOTFOUND)
        return mp_error_set(l->err, MP_ENOTFOUND,
                            "%s: no tokenizer (tokenizer.ggml.model missing)", l->f->path);
    if (rc < 0)
        return rc;
    if (!gguf_str_eq(l->model, "gpt2"))
        return mp_error_set(l->err, MP_EUNSUPPORTED,
                            "%s: tokenizer model '%.*s' is not supported (only gpt2)",
                            l->f->path, (int)(l->model.len > 64 ? 64 : l->model.len),
                            l->model.ptr);
    rc = gguf_get_str(l->f, "tokenizer.ggml.pre", &l->pre, l->err);
    if (rc < 0 && rc != MP_ENOTFOUND)
        return rc;
    l->has_pre = rc == 0 && l->pre.len > 0;
    const struct pre_type *pt = &pre_types[0]; /* missing: llama.cpp falls back to "default" */
    if (l->has_pre) {
        pt = NULL;
        for (size_t i = 0; i < sizeof(pre_types) / sizeof(pre_types[0]); i++)
            if (gguf_str_eq(l->pre, pre_types[i].name))
                pt = &pre_types[i];
        if (!pt)
            return mp_error_set(l->err, MP_EUNSUPPORTED, "%s: unknown pre-tokenizer '%.*s'",
                                l->f->path, (int)(l->pre.len > 64 ? 64 : l->pre.len),
                                l->pre.ptr);
    } else {
        mp_warn("%s: no tokenizer.ggml.pre, using the 'default' pre-tokenizer", l->f->path);
    }
    l->v->pre = pt->kind;
    l->v->ignore_merges = pt->ignore_merges;
    l->v->add_bos = pt->add_bos;
    return 0;
}

static int read_arrays(struct loader *l)
{
    int rc = get_str_arr(l, "tokenizer.ggml.tokens", true, &l->tokens);
    if (rc < 0)
        return rc;
    if (l->tokens->arr.n == 0 || l->tokens->arr.n > (1u << 30))
        return mp_error_set(l->err, MP_ECORRUPT, "%s: tokenizer.ggml.tokens has %llu entries",
                            l->f->path, (unsigned long long)l->tokens->arr.n);
    l->v->n_vocab = (int)l->tokens->arr.n;
    if ((rc = get_str_arr(l, "tokenizer.ggml.merges", true, &l->merges)) < 0)
        return rc;
    if (l->merges->arr.n > INT32_MAX)
        return mp_error_set(l->err, MP_ECORRUPT, "%s: too many merges", l->f->path);
    rc = gguf_get_arr(l->f, "tokenizer.ggml.token_type", &l->types, l->err);
    if (rc == MP_ENOTFOUND) {
        l->types = NULL;
        return 0;
    }
    if (rc < 0)
        return rc;
    if (!gguf_vtype_is_int(l->types->arr.type) || l->types->arr.n < l->tokens->arr.n)
        return mp_error_set(l->err, MP_ECORRUPT,
                            "%s: tokenizer.ggml.token_type must hold %d integers (has %llu %s)",
                            l->f->path, l->v->n_vocab, (unsigned long long)l->types->arr.n,
                            gguf_vtype_name(l->types->arr.type));
    return 0;
}

/* Token texts and attributes; empty texts get llama.cpp's "[EMPTY_<id>]" name. */
static int read_tokens(struct loader *l)
{
    struct tok_vocab *v = l->v;
    size_t n = (size_t)v->n_vocab;
    v->text = malloc(n * sizeof(*v->text));
    v->piece = malloc(n * sizeof(*v->piece));
    v->attr = malloc(n * sizeof(*v->attr));
    if (!v->text || !v->piece || !v->attr || strmap_init(&v->text_map, n) < 0)
        return mp_error_set(l->err, MP_ENOMEM, "%s: out of memory for the vocabulary", l->f->path);
    for (size_t i = 0; i < n; i++) {
        struct gguf_str s = l->tokens->arr.str[i];
        char empty[32];
        if (s.len == 0)
            s = (struct gguf_str){empty,
                                  (uint64_t)snprintf(empty, sizeof(empty), "[EMPTY_%zu]", i)};
        if (arena_add(v, s.ptr, s.len, &v->text[i]) < 0)
            return mp_error_set(l->err, MP_ENOMEM, "%s: vocabulary too large", l->f->path);
        const uint8_t *p = span_ptr(v, v->text[i]);
        uint32_t h = hash_bytes(p, s.len);
        int32_t dup = strmap_find(&v->text_map, v->text, v->arena, p, s.len, h);
        if (dup >= 0)
            return mp_error_set(l->err, MP_ECORRUPT, "%s: token %zu repeats the text of token %d",
                                l->f->path, i, dup);
        strmap_put(&v->text_map, (uint32_t)i, h);
        int64_t t = l->types ? gguf_arr_int(l->types, i) : 1;
        v->attr[i] = t >= 0 && t < 7 ? type_attr[t] : 0;
    }
    return 0;
}

/* A special-token id key: ids outside the vocabulary are ignored, as llama.cpp does. */
static int read_id(struct loader *l, const char *key, int32_t *id)
{
    int64_t x;
    int rc = gguf_get_int(l->f, key, &x, l->err);
    if (rc == MP_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    if (x >= 0 && x < l->v->n_vocab)
        *id = (int32_t)x;
    else
        mp_warn("%s: %s = %lld is outside the vocabulary, ignored", l->f->path, key,
                (long long)x);
    return 0;
}

static int read_flag(struct loader *l, const char *key, bool *flag)
{
    int rc = gguf_get_bool(l->f, key, flag, l->err);
    return rc == MP_ENOTFOUND ? 0 : rc;
}

static int read_specials(struct loader *l, int32_t fim[FIM_COUNT])
{
    struct tok_vocab *v = l->v;
    /* llama.cpp's BPE defaults: BOS = EOS = 11 when the vocabulary is that large. */
    v->bos = v->eos = v->n_vocab > 11 ? 11 : -1;
    v->eot = v->eom = -1;
    int rc = 0;
    rc = rc ? rc : read_id(l, "tokenizer.ggml.bos_token_id", &v->bos);
    rc = rc ? rc : read_id(l, "tokenizer.ggml.eos_token_id", &v->eos);
    rc = rc ? rc : read_id(l, "tokenizer.ggml.eot_token_id", &v->eot);
    rc = rc ? rc : read_id(l, "tokenizer.ggml.eom_token_id", &v->eom);
    for (int k = 0; k < FIM_COUNT && !rc; k++) {
        fim[k] = -1;
        rc = read_id(l, fim_keys[k][0], &fim[k]);
        if (!rc && fim_keys[k][1])
            rc = read_id(l, fim_keys[k][1], &fim[k]);
    }
    rc = rc ? rc : read_flag(l, "tokenizer.ggml.add_bos_token", &v->add_bos);
    rc = rc ? rc : read_flag(l, "tokenizer.ggml.add_eos_token", &v->add_eos);
    if (rc < 0)
        return rc;
    if ((v->add_bos && v->bos < 0) || (v->add_eos && v->eos < 0))
        return mp_error_set(l->err, MP_ECORRUPT, "%s: add_%s_token is set but there is no %s id",
                            l->f->path, v->add_bos && v->bos < 0 ? "bos" : "eos",
                            v->add_bos && v->bos < 0 ? "BOS" : "EOS");
    return 0;
}

static int32_t find_text(const struct tok_vocab *v, const char *s)
{
    size_t n = strlen(s);
    return strmap_find(&v->text_map, v->text, v->arena, (const uint8_t *)s, n,
                       hash_bytes((const uint8_t *)s, n));
}

static void mark(struct tok_vocab *v, int32_t id, uint16_t bits)
{
    if (id >= 0)
        v->attr[id] |= bits;
}

static bool eog_text(const struct tok_vocab *v, const char *text)
{
    int32_t id = find_text(v, text);
    return id >= 0 && (v->attr[id] & ATTR_EOG);
}

/* llama.cpp's exceptions to the EOG list: o200k_harmony and solar-open end turns with <|return|>
 * or <|flush|> and a call marker, so there <|end|> is a user-defined token; gemma4's </s> is
 * normal text. */
static void eog_exceptions(struct tok_vocab *v)
{
    bool call = eog_text(v, "<|call|>") || eog_text(v, "<|calls|>");
    int32_t end = find_text(v, "<|end|>");
    if (call && (eog_text(v, "<|return|>") || eog_text(v, "<|flush|>")) && eog_text(v, "<|end|>"))
        v->attr[end] = ATTR_USER_DEFINED;
    int32_t s = find_text(v, "</s>");
    if (eog_text(v, "<|tool_response>") && eog_text(v, "</s>"))
        v->attr[s] = ATTR_NORMAL;
}

/* End-of-generation set and the attribute fixes llama.cpp applies by token text (load()). */
static void apply_text_rules(struct tok_vocab *v, const int32_t fim_in[FIM_COUNT])
{
    for (int k = 0; k < FIM_COUNT; k++) {
        int32_t id = fim_in[k];
        for (int j = 0; id < 0 && fim_texts[k][j]; j++)
            if ((id = find_text(v, fim_texts[k][j])) >= 0)
                mark(v, id, ATTR_CONTROL);
        if (k == FIM_PAD || k == FIM_REP || k == FIM_SEP)
            mark(v, id, ATTR_EOG);
    }
    for (size_t i = 0; i < sizeof(eog_texts) / sizeof(eog_texts[0]); i++)
        mark(v, find_text(v, eog_texts[i]), ATTR_EOG | ATTR_CONTROL);
    for (int32_t id = 0; id < v->n_vocab; id++) {
        struct span t = v->text[id];
        if ((v->attr[id] & ATTR_CONTROL) && memmem(span_ptr(v, t), t.len, "unused", 6))
            v->attr[id] |= ATTR_UNUSED;
    }
    static const char *const always_shown[] = {"<|channel|>", "<|message|>", "<|start|>",
                                               "<|constrain|>"};
    for (int i = 0; i < 4; i++) {
        int32_t id = find_text(v, always_shown[i]);
        if (id >= 0)
            v->attr[id] = ATTR_USER_DEFINED | (v->attr[id] & ATTR_EOG);
    }
    mark(v, v->eos, ATTR_EOG);
    mark(v, v->eot, ATTR_EOG);
    mark(v, v->eom, ATTR_EOG);
    eog_exceptions(v);
}

/* Raw bytes of every token (the BPE symbols) and the one-byte lookups. */
static int build_symbols(struct loader *l)
{
    struct tok_vocab *v = l->v;
    size_t max_text = 0;
    for (int32_t id = 0; id < v->n_vocab; id++)
        max_text = v->text[id].len > max_text ? v->text[id].len : max_text;
    v->cap_sym = (uint32_t)v->n_vocab + 1024;
    v->sym = malloc(v->cap_sym * sizeof(*v->sym));
    uint8_t *raw = malloc(max_text + 1);
    if (!v->sym || !raw || strmap_init(&v->sym_map, v->cap_sym) < 0) {
        free(raw);
        return mp_error_set(l->err, MP_ENOMEM, "%s: out of memory for the vocabulary", l->f->path);
    }
    int rc = 0;
    for (int32_t id = 0; id < v->n_vocab && !rc; id++) {
        struct span t = v->text[id];
        long n = unstand(span_ptr(v, t), t.len, raw);
        v->sym[id].len = NO_SPAN;
        if (n >= 0 && (rc = arena_add(v, raw, (size_t)n, &v->sym[id])) == 0) {
            const uint8_t *p = span_ptr(v, v->sym[id]);
            strmap_put(&v->sym_map, (uint32_t)id, hash_bytes(p, (size_t)n));
        }
    }
    v->n_sym = (uint32_t)v->n_vocab;
    free(raw);
    if (rc < 0)
        return mp_error_set(l->err, rc, "%s: vocabulary too large", l->f->path);
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        v->byte_sym[b] = strmap_find(&v->sym_map, v->sym, v->arena, &c, 1, hash_bytes(&c, 1));
        v->byte_tok[b] = strmap_find(&v->text_map, v->text, v->arena, &c, 1, hash_bytes(&c, 1));
    }
    return 0;
}

/* One merge line "left right" (llama.cpp splits at the first space after the first byte). Lines
 * that cannot apply to byte-level text (no space, characters that are no stand-ins) are kept out,
 * as they could never match in llama.cpp either. */
static int add_merge(struct tok_vocab *v, struct gguf_str m, int32_t rank)
{
    const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', m.len - 1) : NULL;
    if (!sp)
        return 0;
    size_t nl = (size_t)(sp - m.ptr), nr = m.len - nl - 1;
    uint8_t buf[512], *raw = nl + nr <= sizeof(buf) ? buf : malloc(nl + nr);
    if (!raw)
        return MP_ENOMEM;
    long a = unstand((const uint8_t *)m.ptr, nl, raw);
    long b = a < 0 ? -1 : unstand((const uint8_t *)sp + 1, nr, raw + a);
    int32_t ia, ib, ires;
    int rc = 0;
    if (a > 0 && b > 0 && !(rc = intern_sym(v, raw, (size_t)a, &ia)) &&
        !(rc = intern_sym(v, raw + a, (size_t)b, &ib)) &&
        !(rc = intern_sym(v, raw, (size_t)(a + b), &ires)))
        pair_put(&v->merges, ia, ib, rank, ires);
    if (raw != buf)
        free(raw);
    return rc;
}

static int build_merges(struct loader *l)
{
    struct tok_vocab *v = l->v;
    size_t n = l->merges->arr.n, cap = 1024;
    while (cap < 2 * n)
        cap *= 2;
    v->merges.mask = cap - 1;
    v->merges.ent = malloc(cap * sizeof(*v->merges.ent));
    if (!v->merges.ent)
        return mp_error_set(l->err, MP_ENOMEM, "%s: out of memory for merges", l->f->path);
    for (size_t i = 0; i < cap; i++)
        v->merges.ent[i].key = PAIR_EMPTY;
    for (size_t i = 0; i < n; i++) {
        int rc = add_merge(v, l->merges->arr.str[i], (int32_t)i);
        if (rc < 0)
            return mp_error_set(l->err, rc, "%s: tokenizer.ggml.merges[%zu]: %s", l->f->path, i,
                                mp_strerror(rc));
    }
    return 0;
}

/* llama_decode_text: stand-ins become their bytes; any other character is kept visible as
 * "[UNK_BYTE_0x<its utf-8 hex><the whole text>]". */
static int decode_normal(struct tok_vocab *v, int32_t id, struct span *out)
{
    struct span t = v->text[id];
    if (v->sym[id].len != NO_SPAN) {
        *out = v->sym[id];
        return 0;
    }
    size_t start = v->arena_len, i = 0;
    while (i < t.len) {
        size_t len;
        uint32_t cp = uc_decode(span_ptr(v, t) + i, t.len - i, &len);
        int b = uc_cp_to_byte(cp);
        struct span s;
        char hex[32];
        uint8_t enc[4], byte = (uint8_t)b;
        size_t ne = uc_encode(cp, enc);
        int rc = b >= 0 ? arena_add(v, &byte, 1, &s) : arena_add(v, "[UNK_BYTE_0x", 12, &s);
        for (size_t k = 0; b < 0 && !rc && k < ne; k++)
            rc = arena_add(v, hex, (size_t)snprintf(hex, sizeof(hex), "%02x", enc[k]), &s);
        if (b < 0 && !rc) {
            struct span whole = v->text[id]; /* copy out: the arena may move */
            uint8_t *tmp = malloc(whole.len + 1);
            rc = tmp ? 0 : MP_ENOMEM;
            if (tmp) {
                memcpy(tmp, span_ptr(v, whole), whole.len);
                tmp[whole.len] = ']';
                rc = arena_add(v, tmp, whole.len + 1, &s);
                free(tmp);
            }
        }
        if (rc < 0)
            return rc;
        i += len;
    }
    *out = (struct span){(uint32_t)start, (uint32_t)(v->arena_len - start)};
    return 0;
}

/* BYTE tokens spell their byte "<0xHH>" (llama_vocab::impl::token_to_byte). */
static int decode_byte(struct tok_vocab *v, int32_t id, struct span *out)
{
    struct span t = v->text[id];
    const char *p = (const char *)span_ptr(v, t);
    char hex[3] = {0};
    *out = (struct span){0, 0};
    if (t.len < 6 || memcmp(p, "<0x", 3))
        return 0;
    memcpy(hex, p + 3, 2);
    uint8_t b = (uint8_t)strtol(hex, NULL, 16);
    return arena_add(v, &b, 1, out);
}

/* What llama_token_to_piece(special = true) gives for each token. */
static int build_pieces(struct loader *l)
{
    struct tok_vocab *v = l->v;
    v->max_piece = 0;
    for (int32_t id = 0; id < v->n_vocab; id++) {
        uint16_t a = v->attr[id];
        int rc = 0;
        if (a & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED))
            v->piece[id] = v->text[id];
        else if (a & ATTR_NORMAL)
            rc = decode_normal(v, id, &v->piece[id]);
        else if (a & ATTR_BYTE)
            rc = decode_byte(v, id, &v->piece[id]);
        else
            v->piece[id] = (struct span){0, 0}; /* unused and undefined tokens render as nothing */
        if (rc < 0)
            return mp_error_set(l->err, rc, "%s: token %d: %s", l->f->path, id, mp_strerror(rc));
        if (v->piece[id].len > v->max_piece)
            v->max_piece = v->piece[id].len;
    }
    return 0;
}

/* Longest first, then by id so the order does not depend on the sort. */
static int by_length_desc(const void *pa, const void *pb, void *ctx)
{
    const struct tok_vocab *v = ctx;
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    if (v->text[a].len != v->text[b].len)
        return v->text[a].len > v->text[b].len ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* llama.cpp's cache_special_tokens: the tokens tokenizer_st_partition looks for in raw text. */
static int build_specials(struct loader *l)
{
    struct tok_vocab *v = l->v;
    v->special = malloc((size_t)v->n_vocab * sizeof(*v->special));
    if (!v->special)
        return mp_error_set(l->err, MP_ENOMEM, "%s: out of memory", l->f->path);
    v->n_special = 0;
    for (int32_t id = 0; id < v->n_vocab; id++)
        if (v->attr[id] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN))
            v->special[v->n_special++] = id;
    qsort_r(v->special, v->n_special, sizeof(*v->special), by_length_desc, v);
    return 0;
}

int tok_load(const struct gguf_file *f, struct tok_vocab **out, struct mp_error *err)
{
    *out = NULL;
    struct tok_vocab *v = calloc(1, sizeof(*v));
    if (!v)
        return mp_error_set(err, MP_ENOMEM, "%s: out of memory", f->path);
    struct loader l = {.f = f, .v = v, .err = err};
    int32_t fim[FIM_COUNT];
    int rc = read_kind(&l);
    rc = rc ? rc : read_arrays(&l);
    rc = rc ? rc : read_tokens(&l);
    rc = rc ? rc : read_specials(&l, fim);
    if (!rc)
        apply_text_rules(v, fim);
    rc = rc ? rc : build_symbols(&l);
    rc = rc ? rc : build_merges(&l);
    rc = rc ? rc : build_pieces(&l);
    rc = rc ? rc : build_specials(&l);
    if (rc < 0) {
        tok_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void tok_free(struct tok_vocab *v)
{
    if (!v)
        return;
    free(v->arena);
    free(v->text);
    free(v->piece);
    free(v->attr);
    strmap_free(&v->text_map);
    free(v->sym);
    strmap_free(&v->sym_map);
    free(v->merges.ent);
    free(v->special);
    free(v);
}

/* ---- encoding ---- */

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
static void *grow_buf(struct enc *e, void *p, size_t *cap, size_t need, size_t elem)
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

#define RESERVE(e, arr, cap, need) \
    (((arr) = grow_buf((e), (arr), &(cap), (need), sizeof(*(arr)))) != NULL)

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

static void emit(struct enc *e, int32_t id)
{
    if (e->ids && e->count < e->n_max)
        e->ids[e->count] = id;
    e->count++;
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

/* ---- pre-tokenizers: llama.cpp's regex splitters over one fragment's code points ---- */

#define OUT_OF_RANGE 0xFFFFFFFFu
#define WLN (UC_WHITESPACE | UC_LETTER | UC_NUMBER)

static uint32_t cp_at(const struct enc *e, size_t hi, size_t i)
{
    return i < hi ? e->cp[i] : OUT_OF_RANGE;
}

static unsigned fl_at(const struct enc *e, size_t hi, size_t i)
{
    return i < hi ? e->fl[i] : 0;
}

/* [^\s\p{L}\p{N}]: any assigned-or-not code point inside the fragment that is none of those. */
static bool is_other(unsigned f)
{
    return f != 0 && !(f & WLN);
}

static void push_end(struct enc *e, int k, size_t end)
{
    if (!RESERVE(e, e->ends[k], e->cap_ends[k], e->n_ends[k] + 1))
        return;
    e->ends[k][e->n_ends[k]++] = (uint32_t)end;
}

static uint32_t ascii_lower(uint32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* 's|'t|'re|'ve|'m|'ll|'d at pos; fold makes it case-insensitive (llama3's (?i:...)). ASCII
 * folding is all unicode_tolower can matter for here: no other letter lowers to s/t/r/e/v/m/l/d. */
static size_t contraction(const struct enc *e, size_t pos, size_t hi, bool fold)
{
    if (e->cp[pos] != '\'' || pos + 1 >= hi)
        return 0;
    uint32_t a = e->cp[pos + 1], b = pos + 2 < hi ? e->cp[pos + 2] : 0;
    if (fold) {
        a = ascii_lower(a);
        b = ascii_lower(b);
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

/* \s*[\r\n]+ (when newline_rule) | \s+(?!\S) | \s+ | a lone character matching nothing. */
static size_t ws_step(const struct enc *e, size_t pos, size_t hi, bool newline_rule)
{
    size_t n = 0, last_nl = 0;
    while (fl_at(e, hi, pos + n) & UC_WHITESPACE) {
        uint32_t c = e->cp[pos + n];
        if (c == '\r' || c == '\n')
            last_nl = pos + n + 1;
        n++;
    }
    if (newline_rule && last_nl)
        return last_nl;
    if (n > 1 && pos + n < hi)
        return pos + n - 1; /* leave the last space to prefix the next word */
    return pos + (n ? n : 1);
}

/* One pre-token of unicode_regex_split_custom_llama3:
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 * \s*[\r\n]+|\s+(?!\S)|\s+ . With max_digits 1 it is Qwen2's regex (\p{N} alone), which
 * llama.cpp runs through std::regex with the same outcome. Returns the end. */
static size_t llama3_step(const struct enc *e, size_t pos, size_t hi, size_t max_digits)
{
    uint32_t c = e->cp[pos];
    unsigned f = e->fl[pos];
    size_t k = contraction(e, pos, hi, true);
    if (k)
        return pos + k;
    if (c != '\r' && c != '\n' && !(f & UC_NUMBER) &&
        ((f & UC_LETTER) || (fl_at(e, hi, pos + 1) & UC_LETTER))) {
        pos++;
        while (fl_at(e, hi, pos) & UC_LETTER)
            pos++;
        return pos;
    }
    if (f & UC_NUMBER) {
        size_t end = pos + 1;
        while (end - pos < max_digits && (fl_at(e, hi, end) & UC_NUMBER))
            end++;
        return end;
    }
    unsigned f2 = c == ' ' ? fl_at(e, hi, pos + 1) : f;
    if (!(f2 & WLN) && f) {
        pos += c == ' ';
        while (is_other(fl_at(e, hi, pos)))
            pos++;
        while (cp_at(e, hi, pos) == '\r' || cp_at(e, hi, pos) == '\n')
            pos++;
        return pos;
    }
    return ws_step(e, pos, hi, true);
}

/* One pre-token of unicode_regex_split_custom_gpt2:
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t gpt2_step(const struct enc *e, size_t pos, size_t hi)
{
    uint32_t c = e->cp[pos];
    size_t k = contraction(e, pos, hi, false);
    if (k)
        return pos + k;
    unsigned f2 = c == ' ' ? fl_at(e, hi, pos + 1) : e->fl[pos];
    unsigned cls = (f2 & UC_LETTER) ? UC_LETTER : (f2 & UC_NUMBER) ? UC_NUMBER : 0;
    if (cls) {
        pos += c == ' ';
        while (fl_at(e, hi, pos) & cls)
            pos++;
        return pos;
    }
    if (is_other(f2)) {
        pos += c == ' ';
        while (is_other(fl_at(e, hi, pos)))
            pos++;
        return pos;
    }
    return ws_step(e, pos, hi, false);
}

typedef void splitter(struct enc *e, size_t lo, size_t hi, int out);

static void split_llama3(struct enc *e, size_t lo, size_t hi, int out)
{
    for (size_t pos = lo; pos < hi;)
        push_end(e, out, pos = llama3_step(e, pos, hi, 3));
}

static void split_qwen2(struct enc *e, size_t lo, size_t hi, int out)
{
    for (size_t pos = lo; pos < hi;)
        push_end(e, out, pos = llama3_step(e, pos, hi, 1));
}

static void split_gpt2(struct enc *e, size_t lo, size_t hi, int out)
{
    for (size_t pos = lo; pos < hi;)
        push_end(e, out, pos = gpt2_step(e, pos, hi));
}

/* std::regex splitting by a one-class pattern (unicode_regex_split_stl): each match and each gap
 * between matches becomes a pre-token. run: X+ rather than X. */
static void split_class(struct enc *e, size_t lo, size_t hi, int out,
                        bool (*in)(const struct enc *, size_t), bool run)
{
    size_t pos = lo;
    while (pos < hi) {
        size_t m = pos;
        while (m < hi && !in(e, m))
            m++;
        if (m > pos)
            push_end(e, out, m);
        if (m == hi)
            break;
        size_t end = m + 1;
        while (run && end < hi && in(e, end))
            end++;
        push_end(e, out, end);
        pos = end;
    }
}

/* [\p{P}\$\+<=>\^~\|]: the ASCII symbols are listed because they are \p{S}, not \p{P}. */
static bool in_punct(const struct enc *e, size_t i)
{
    uint32_t c = e->cp[i];
    return (e->fl[i] & UC_PUNCT) || (c < 0x80 && c && strchr("$+<=>^~|", (int)c));
}

static bool in_number(const struct enc *e, size_t i)
{
    return e->fl[i] & UC_NUMBER;
}

static void split_punct_runs(struct enc *e, size_t lo, size_t hi, int out)
{
    split_class(e, lo, hi, out, in_punct, true);
}

static void split_number_runs(struct enc *e, size_t lo, size_t hi, int out)
{
    split_class(e, lo, hi, out, in_number, true);
}

static void split_each_number(struct enc *e, size_t lo, size_t hi, int out)
{
    split_class(e, lo, hi, out, in_number, false);
}

static bool is_digit_at(const struct enc *e, size_t i)
{
    return e->cp[i] >= '0' && e->cp[i] <= '9';
}

/* [0-9][0-9][0-9], leftmost and non-overlapping. */
static void split_digit_triples(struct enc *e, size_t lo, size_t hi, int out)
{
    size_t pos = lo, gap = lo;
    while (pos + 3 <= hi) {
        if (is_digit_at(e, pos) && is_digit_at(e, pos + 1) && is_digit_at(e, pos + 2)) {
            if (pos > gap)
                push_end(e, out, pos);
            push_end(e, out, pos += 3);
            gap = pos;
        } else {
            pos++;
        }
    }
    if (gap < hi)
        push_end(e, out, hi);
}

/* The regex lists of llm_tokenizer_bpe, applied in order, each splitting the previous pieces. */
static const struct {
    splitter *stage[4];
    int n;
} pre_stages[] = {
    [PRE_DEFAULT] = {{split_punct_runs, split_gpt2, split_number_runs, split_digit_triples}, 4},
    [PRE_GPT2] = {{split_gpt2}, 1},
    [PRE_STARCODER] = {{split_each_number, split_gpt2}, 2},
    [PRE_LLAMA3] = {{split_llama3}, 1},
    [PRE_QWEN2] = {{split_qwen2}, 1},
};

/* Splits the fragment's n_cp code points; returns the index of the list of pre-token ends. */
static int pre_tokenize(struct enc *e, size_t n_cp)
{
    int cur = 0;
    e->n_ends[0] = 0;
    push_end(e, 0, n_cp);
    for (int s = 0; s < pre_stages[e->v->pre].n && !e->oom; s++) {
        int out = 1 - cur;
        size_t lo = 0;
        e->n_ends[out] = 0;
        for (size_t i = 0; i < e->n_ends[cur] && !e->oom; i++) {
            pre_stages[e->v->pre].stage[s](e, lo, e->ends[cur][i], out);
            lo = e->ends[cur][i];
        }
        cur = out;
    }
    return cur;
}

/* ---- BPE ---- */

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
    const struct pair_ent *m = pair_find(&e->v->merges, a->id, b->id);
    if (m)
        heap_push(e, (struct cand){m->rank, l, r, m->result, a->n + b->n});
}

/* A symbol that is no token: llama.cpp looks up each byte of its byte-level spelling as a
 * one-byte token and drops the bytes that are none. */
static void emit_sym(struct enc *e, const uint8_t *w, const struct sym *s)
{
    const struct tok_vocab *v = e->v;
    if (s->id >= 0 && s->id < v->n_vocab) {
        emit(e, s->id);
        return;
    }
    for (uint32_t k = 0; k < s->n; k++) {
        uint8_t enc[4];
        size_t ne = uc_encode(uc_byte_to_cp(w[s->start + k]), enc);
        for (size_t j = 0; j < ne; j++)
            if (v->byte_tok[enc[j]] >= 0)
                emit(e, v->byte_tok[enc[j]]);
    }
}

/* llm_tokenizer_bpe_session::tokenize for one pre-token w[0..m), m >= 1. */
static void bpe_word(struct enc *e, const uint8_t *w, size_t m)
{
    const struct tok_vocab *v = e->v;
    if (v->ignore_merges && m > 1) {
        int32_t id = strmap_find(&v->sym_map, v->sym, v->arena, w, m, hash_bytes(w, m));
        if (id >= 0 && id < v->n_vocab) {
            emit(e, id);
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
    int k = pre_tokenize(e, n_cp);
    size_t lo = 0;
    for (size_t i = 0; i < e->n_ends[k] && !e->oom; i++) {
        size_t hi = e->ends[k][i];
        bpe_word(e, s + e->off[lo], e->off[hi] - e->off[lo]);
        lo = hi;
    }
}

int tok_encode(const struct tok_vocab *v, const char *text, size_t len, bool add_bos,
               bool parse_special, int32_t *ids, int n_max, struct mp_error *err)
{
    if (!v || (!text && len) || n_max < 0)
        return mp_error_set(err, MP_EINVAL, "tokenize: invalid arguments");
    if (len > TOK_MAX_TEXT)
        return mp_error_set(err, MP_ERANGE, "tokenize: %zu bytes of text, at most %u at once",
                            len, TOK_MAX_TEXT);
    struct enc e = {.v = v, .ids = ids, .n_max = ids ? n_max : 0};
    if (add_bos && v->bos >= 0)
        emit(&e, v->bos);
    int k = partition(&e, text, len, parse_special);
    for (size_t i = 0; i < e.n_frags[k] && !e.oom; i++) {
        struct frag f = e.frags[k][i];
        if (f.id >= 0)
            emit(&e, f.id);
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

/* ---- queries and decoding ---- */

int tok_n_vocab(const struct tok_vocab *v)
{
    return v->n_vocab;
}

int32_t tok_bos(const struct tok_vocab *v)
{
    return v->bos;
}

int32_t tok_eos(const struct tok_vocab *v)
{
    return v->eos;
}

bool tok_add_bos(const struct tok_vocab *v)
{
    return v->add_bos;
}

bool tok_add_eos(const struct tok_vocab *v)
{
    return v->add_eos;
}

bool tok_is_eog(const struct tok_vocab *v, int32_t id)
{
    return id >= 0 && id < v->n_vocab && (v->attr[id] & ATTR_EOG);
}

int32_t tok_find(const struct tok_vocab *v, const char *text)
{
    return find_text(v, text);
}

const char *tok_text(const struct tok_vocab *v, int32_t id, size_t *len)
{
    if (id < 0 || id >= v->n_vocab)
        return NULL;
    *len = v->text[id].len;
    return (const char *)span_ptr(v, v->text[id]);
}

size_t tok_max_piece(const struct tok_vocab *v)
{
    return v->max_piece;
}

/* llama_token_to_piece: control and unknown tokens are silent unless special. */
static struct span visible_piece(const struct tok_vocab *v, int32_t id, bool special)
{
    if (!special && (v->attr[id] & (ATTR_CONTROL | ATTR_UNKNOWN)))
        return (struct span){0, 0};
    return v->piece[id];
}

int tok_piece(const struct tok_vocab *v, int32_t id, bool special, char *buf, size_t n)
{
    if (id < 0 || id >= v->n_vocab)
        return MP_EINVAL;
    struct span p = visible_piece(v, id, special);
    if (p.len && p.len <= n)
        memcpy(buf, span_ptr(v, p), p.len);
    return (int)p.len;
}

int64_t tok_decode(const struct tok_vocab *v, const int32_t *ids, size_t n_ids, bool special,
                   char *buf, size_t cap)
{
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= v->n_vocab)
            return MP_EINVAL;
        struct span p = visible_piece(v, ids[i], special);
        size_t fit = total < cap ? cap - total : 0;
        if (p.len && fit)
            memcpy(buf + total, span_ptr(v, p), p.len < fit ? p.len : fit);
        total += p.len;
    }
    return (int64_t)total;
}

void tok_stream_init(struct tok_stream *s, bool special)
{
    memset(s, 0, sizeof(*s));
    s->special = special;
}

/* Bytes at the end of held + p that begin a character still missing bytes (at most 3). Bytes
 * that can never complete (stray continuations, 0xF8-0xFF) are not held. */
static size_t incomplete_tail(const uint8_t *held, size_t nh, const uint8_t *p, size_t np)
{
    size_t total = nh + np;
    for (size_t back = 1; back <= 4 && back <= total; back++) {
        size_t i = total - back;
        uint8_t b = i < nh ? held[i] : p[i - nh];
        if ((b & 0xC0) == 0x80)
            continue;
        size_t need = b >= 0xC0 && b < 0xF8 ? uc_len_from_lead(b) : 1;
        return need > back ? back : 0;
    }
    return 0;
}

int tok_stream_push(struct tok_stream *s, const struct tok_vocab *v, int32_t id, char *out,
                    size_t n)
{
    if (id < 0 || id >= v->n_vocab)
        return MP_EINVAL;
    struct span sp = visible_piece(v, id, s->special);
    const uint8_t *p = span_ptr(v, sp);
    size_t total = s->n_held + sp.len;
    size_t hold = incomplete_tail(s->held, s->n_held, p, sp.len);
    size_t ready = total - hold;
    if (ready > n || ready > INT_MAX)
        return MP_ERANGE;
    uint8_t tail[TOK_STREAM_HOLD];
    for (size_t i = 0; i < hold; i++) {
        size_t k = ready + i;
        tail[i] = k < s->n_held ? s->held[k] : p[k - s->n_held];
    }
    size_t from_held = ready < s->n_held ? ready : s->n_held;
    memcpy(out, s->held, from_held);
    if (ready > from_held)
        memcpy(out + from_held, p, ready - from_held);
    memcpy(s->held, tail, hold);
    s->n_held = hold;
    return (int)ready;
}

int tok_stream_flush(struct tok_stream *s, char *out, size_t n)
{
    if (s->n_held > n)
        return MP_ERANGE;
    memcpy(out, s->held, s->n_held);
    int r = (int)s->n_held;
    s->n_held = 0;
    return r;
}
