/* model/vocab.c: loading a byte-level BPE vocabulary from the tokenizer.ggml.* keys
 * (tok_load, tok_free in tokenizer.h): the tokenizer kind and pre-tokenizer, token texts and
 * types, the raw-byte symbols, the merges, each token's piece and the special-token list.
 * Special ids and text rules: vocab_special.c. Spec: docs/tokenizer.md; behaviour mirrors
 * llama.cpp src/llama-vocab.cpp (llama_vocab::impl::load). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "model/tokenizer_impl.h"
#include "model/unicode.h"

/* tokenizer.ggml.token_type values (llama_token_type) -> attributes. */
static const uint16_t type_attr[] = {
    0, ATTR_NORMAL, ATTR_UNKNOWN, ATTR_CONTROL, ATTR_USER_DEFINED, ATTR_UNUSED, ATTR_BYTE,
};

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
        return mp_error_set(l->err, MP_ENOTFOUND, "%s: no tokenizer (tokenizer.ggml.model missing)",
                            l->f->path);
    if (rc < 0)
        return rc;
    if (!gguf_str_eq(l->model, "gpt2"))
        return mp_error_set(l->err, MP_EUNSUPPORTED,
                            "%s: tokenizer model '%.*s' is not supported (only gpt2)", l->f->path,
                            (int)(l->model.len > 64 ? 64 : l->model.len), l->model.ptr);
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
                                l->f->path, (int)(l->pre.len > 64 ? 64 : l->pre.len), l->pre.ptr);
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
    if (!v->text || !v->piece || !v->attr || tok_strmap_init(&v->text_map, n) < 0)
        return mp_error_set(l->err, MP_ENOMEM, "%s: out of memory for the vocabulary", l->f->path);
    for (size_t i = 0; i < n; i++) {
        struct gguf_str s = l->tokens->arr.str[i];
        char empty[32];
        if (s.len == 0)
            s = (struct gguf_str){empty,
                                  (uint64_t)snprintf(empty, sizeof(empty), "[EMPTY_%zu]", i)};
        if (tok_arena_add(v, s.ptr, s.len, &v->text[i]) < 0)
            return mp_error_set(l->err, MP_ENOMEM, "%s: vocabulary too large", l->f->path);
        const uint8_t *p = span_ptr(v, v->text[i]);
        uint32_t h = tok_hash(p, s.len);
        int32_t dup = tok_strmap_find(&v->text_map, v->text, v->arena, p, s.len, h);
        if (dup >= 0)
            return mp_error_set(l->err, MP_ECORRUPT, "%s: token %zu repeats the text of token %d",
                                l->f->path, i, dup);
        tok_strmap_put(&v->text_map, (uint32_t)i, h);
        int64_t t = l->types ? gguf_arr_int(l->types, i) : 1;
        v->attr[i] = t >= 0 && t < 7 ? type_attr[t] : 0;
    }
    return 0;
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
    if (!v->sym || !raw || tok_strmap_init(&v->sym_map, v->cap_sym) < 0) {
        free(raw);
        return mp_error_set(l->err, MP_ENOMEM, "%s: out of memory for the vocabulary", l->f->path);
    }
    int rc = 0;
    for (int32_t id = 0; id < v->n_vocab && !rc; id++) {
        struct span t = v->text[id];
        long n = tok_unstand(span_ptr(v, t), t.len, raw);
        v->sym[id].len = NO_SPAN;
        if (n >= 0 && (rc = tok_arena_add(v, raw, (size_t)n, &v->sym[id])) == 0) {
            const uint8_t *p = span_ptr(v, v->sym[id]);
            tok_strmap_put(&v->sym_map, (uint32_t)id, tok_hash(p, (size_t)n));
        }
    }
    v->n_sym = (uint32_t)v->n_vocab;
    free(raw);
    if (rc < 0)
        return mp_error_set(l->err, rc, "%s: vocabulary too large", l->f->path);
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        v->byte_sym[b] = tok_strmap_find(&v->sym_map, v->sym, v->arena, &c, 1, tok_hash(&c, 1));
        v->byte_tok[b] = tok_strmap_find(&v->text_map, v->text, v->arena, &c, 1, tok_hash(&c, 1));
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
    long a = tok_unstand((const uint8_t *)m.ptr, nl, raw);
    long b = a < 0 ? -1 : tok_unstand((const uint8_t *)sp + 1, nr, raw + a);
    int32_t ia, ib, ires;
    int rc = 0;
    if (a > 0 && b > 0 && !(rc = tok_intern_sym(v, raw, (size_t)a, &ia)) &&
        !(rc = tok_intern_sym(v, raw + a, (size_t)b, &ib)) &&
        !(rc = tok_intern_sym(v, raw, (size_t)(a + b), &ires)))
        tok_pair_put(&v->merges, ia, ib, rank, ires);
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
        int rc = b >= 0 ? tok_arena_add(v, &byte, 1, &s) : tok_arena_add(v, "[UNK_BYTE_0x", 12, &s);
        for (size_t k = 0; b < 0 && !rc && k < ne; k++)
            rc = tok_arena_add(v, hex, (size_t)snprintf(hex, sizeof(hex), "%02x", enc[k]), &s);
        if (b < 0 && !rc) {
            struct span whole = v->text[id]; /* copy out: the arena may move */
            uint8_t *tmp = malloc(whole.len + 1);
            rc = tmp ? 0 : MP_ENOMEM;
            if (tmp) {
                memcpy(tmp, span_ptr(v, whole), whole.len);
                tmp[whole.len] = ']';
                rc = tok_arena_add(v, tmp, whole.len + 1, &s);
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
    return tok_arena_add(v, &b, 1, out);
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
    int rc = read_kind(&l);
    rc = rc ? rc : read_arrays(&l);
    rc = rc ? rc : read_tokens(&l);
    rc = rc ? rc : tok_read_specials(&l);
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
    tok_strmap_free(&v->text_map);
    free(v->sym);
    tok_strmap_free(&v->sym_map);
    free(v->merges.ent);
    free(v->special);
    free(v);
}
