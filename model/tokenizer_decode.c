/* model/tokenizer_decode.c: vocabulary queries, token pieces, tok_decode and the streaming
 * decoder that never splits a UTF-8 character (tokenizer.h). */
#include <limits.h>
#include <string.h>

#include "model/tokenizer_impl.h"
#include "model/unicode.h"

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
    size_t n = strlen(text);
    return tok_strmap_find(&v->text_map, v->text, v->arena, (const uint8_t *)text, n,
                           tok_hash((const uint8_t *)text, n));
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
