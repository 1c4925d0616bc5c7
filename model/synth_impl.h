/* model/synth_impl.h: what the synthetic model generator's files share (private; the interface
 * is synth.h). synth.c: presets, tensors, types, weights and the streaming write;
 * synth_vocab.c: the byte-level BPE vocabulary; synth_keys.c: the metadata keys and the real chat
 * templates. */
#ifndef SYNTH_IMPL_H
#define SYNTH_IMPL_H

#include <stdint.h>

#include "base/err.h"
#include "model/gguf_write.h"
#include "model/synth.h"

#define N_QWEN3_SPECIAL 26 /* qwen3moe's special tokens, the last ids of its vocabulary */

/* A generated vocabulary, in the form the GGUF stores it. */
struct synth_vocab {
    char **tok;         /* [n_tok] owned strings (byte-level form) */
    int32_t *type;      /* [n_tok] */
    char **merges;      /* [n_merges] "a b" */
    int64_t n_tok, n_merges, cap;
    uint32_t *slot;     /* hash table: id + 1, 0 = empty */
    uint64_t n_slot;    /* power of two */
    int byte_id[256];   /* token id of each byte */
};

/* Special tokens the architecture's vocabulary holds (the rest are bytes and BPE tokens). */
int synth_n_special(const struct synth_params *p);
/* Builds the p->n_vocab tokens and their merges; synth_vocab_free even after a failure. */
int synth_build_vocab(const struct synth_params *p, struct synth_vocab *v, struct mp_error *err);
void synth_vocab_free(struct synth_vocab *v);

/* Writes every key/value in the converter's order: general.*, the architecture's, tokenizer.*
 * (skipped with p->no_tokenizer) and the quantization keys. */
int synth_write_keys(struct gguf_writer *w, const struct synth_params *p,
                     const struct synth_vocab *v, struct mp_error *err);

#endif
