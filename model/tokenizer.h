/* model/tokenizer.h: text <-> token ids for byte-level BPE vocabularies ("gpt2" GGUF tokenizers).
 *
 * Spec: docs/tokenizer.md. Mirrors llama.cpp src/llama-vocab.cpp (llama_vocab::impl::load,
 * tokenizer_st_partition, llm_tokenizer_bpe_session, token_to_piece) and src/unicode.cpp (the
 * pre-tokenizer splitters) so that ids equal llama_tokenize's. A loaded struct tok_vocab is
 * immutable and owns copies of everything it needs (the GGUF file may be closed after tok_load);
 * any number of threads may encode and decode with it at once.
 *
 * Token ids are int32_t in [0, tok_n_vocab); -1 means "no such token". */
#ifndef MP_TOKENIZER_H
#define MP_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/gguf.h"

struct tok_vocab;

/* Builds the vocabulary from the tokenizer.ggml.* keys of f. Errors (MP_ENOTFOUND: no tokenizer
 * keys; MP_EUNSUPPORTED: a tokenizer model or pre-tokenizer we do not implement; MP_ECORRUPT:
 * wrong key types, duplicate tokens, counts that disagree) name the file and the key. */
int tok_load(const struct gguf_file *f, struct tok_vocab **out, struct mp_error *err);
void tok_free(struct tok_vocab *v); /* NULL-safe */

/* Tokenizes text[0..len) (any bytes: invalid UTF-8 is handled as llama.cpp does, see
 * docs/tokenizer.md §5). add_bos prepends the BOS token when the vocabulary has one; the caller
 * decides, normally from tok_add_bos(). parse_special turns control tokens written in the text
 * ("<|im_start|>") into their ids; user-defined tokens are matched either way, as llama.cpp does.
 * Returns the number of ids. With ids == NULL nothing is written: a sizing call. Otherwise, when
 * more than n_max ids result, returns MP_ERANGE and err says how many were needed (ids holds the
 * first n_max). Other errors: MP_ENOMEM, MP_EINVAL, MP_ERANGE for len > TOK_MAX_TEXT. */
#define TOK_MAX_TEXT (1u << 30) /* bytes per call: offsets stay 32-bit even after rewriting */
int tok_encode(const struct tok_vocab *v, const char *text, size_t len, bool add_bos,
               bool parse_special, int32_t *ids, int n_max, struct mp_error *err);

int tok_n_vocab(const struct tok_vocab *v);
int32_t tok_bos(const struct tok_vocab *v);  /* -1 if none */
int32_t tok_eos(const struct tok_vocab *v);  /* -1 if none */
bool tok_add_bos(const struct tok_vocab *v); /* tokenizer.ggml.add_bos_token, or the pre-type's
                                                default (true for llama3/lfm2, false for qwen2) */
bool tok_add_eos(const struct tok_vocab *v); /* tokenizer.ggml.add_eos_token, default false */
/* End of generation: EOS, EOT, EOM, FIM pad/repo/file-separator and tokens whose text llama.cpp
 * lists (<|im_end|>, <|endoftext|>, <|eot_id|>, <|end|>, <end_of_turn>, ...). False if out of
 * range. */
bool tok_is_eog(const struct tok_vocab *v, int32_t id);
/* Id of the token whose text is exactly `text` (NUL-terminated), or -1. */
int32_t tok_find(const struct tok_vocab *v, const char *text);
/* The raw text of a token as stored in the vocabulary (byte-level form, e.g. "Ġthe"), not
 * NUL-terminated; NULL if id is out of range. */
const char *tok_text(const struct tok_vocab *v, int32_t id, size_t *len);

/* The bytes a token stands for (byte-level decoded). Control and unknown tokens give their text
 * only when special is true (llama_token_to_piece's `special`), otherwise nothing. Returns the
 * piece's length; writes it to buf only if it fits in n bytes (no NUL is added). MP_EINVAL if id
 * is out of range. A piece may end inside a UTF-8 character: see struct tok_stream. */
int tok_piece(const struct tok_vocab *v, int32_t id, bool special, char *buf, size_t n);
size_t tok_max_piece(const struct tok_vocab *v); /* longest piece, in bytes */

/* Concatenated pieces of ids[0..n_ids) (no clean-up of spaces, as llama.cpp's streaming does).
 * Returns the total length; writes min(total, cap) bytes. MP_EINVAL for an id out of range. */
int64_t tok_decode(const struct tok_vocab *v, const int32_t *ids, size_t n_ids, bool special,
                   char *buf, size_t cap);

/* Streaming detokenizer: holds back the start of a UTF-8 character until its last byte arrives,
 * so every chunk it returns is whole characters (bytes that can never complete a character are
 * passed through at once). Plain data: zero it or use tok_stream_init; no cleanup needed. */
#define TOK_STREAM_HOLD 4
struct tok_stream {
    bool special;                     /* render control tokens (see tok_piece) */
    uint8_t held[TOK_STREAM_HOLD];    /* an incomplete character's first bytes */
    size_t n_held;
};

void tok_stream_init(struct tok_stream *s, bool special);
/* Adds token id; writes the bytes now ready to out and returns their count. out needs
 * tok_max_piece(v) + TOK_STREAM_HOLD bytes; if n is smaller than what is ready, returns MP_ERANGE
 * and the stream is unchanged. MP_EINVAL for an id out of range. */
int tok_stream_push(struct tok_stream *s, const struct tok_vocab *v, int32_t id, char *out,
                    size_t n);
/* At the end of a stream: returns the held bytes (an incomplete character) and empties it. */
int tok_stream_flush(struct tok_stream *s, char *out, size_t n);

#endif
