/* model/synth.h: synthetic models of real architectures (lfm2moe, qwen3moe), written as GGUF files
 * that look like llama.cpp's converter + llama-quantize output: same keys in the same order, same
 * tensor names, shapes and order, a byte-level BPE tokenizer and the real chat template; weights
 * are deterministic noise from a seed, scaled like a trained, residual-dominated model.
 *
 * Spec: docs/synth.md; keys and tensors from ../shared/docs/models/{lfm2moe,qwen3moe}.md, the
 * Q4_K_M type rules from ../shared/docs/gguf.md §5 (llama.cpp src/llama-quant.cpp,
 * llama_tensor_get_type_impl). Writing streams: the header is computed from the shapes, then each
 * tensor is generated, quantized and written in chunks of rows by a few threads, so memory stays
 * bounded whatever the model size. Printing is cmd_synth.c's job. */
#ifndef SYNTH_H
#define SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "kernels/kq.h"

#define SYNTH_MAX_LAYERS 512 /* as MODEL_MAX_LAYERS */

enum synth_arch { SYNTH_LFM2MOE, SYNTH_QWEN3MOE };

/* Values are llama_ftype ids, written as general.file_type. */
enum synth_ftype { SYNTH_F32 = 0, SYNTH_Q8_0 = 7, SYNTH_Q4_K_M = 15 };

struct synth_params {
    enum synth_arch arch;
    char name[64];          /* general.name */
    int64_t n_vocab;
    int64_t n_embd;
    int64_t n_layer;
    int64_t n_ctx;          /* context_length */
    int64_t n_head;
    int64_t n_head_kv;      /* for attention layers */
    int64_t head_dim;       /* key_length = value_length */
    int64_t n_ff;           /* feed_forward_length: dense FFN width */
    int64_t n_dense;        /* lfm2moe: leading dense-FFN layers */
    int64_t n_expert;
    int64_t n_expert_used;
    int64_t n_ff_exp;
    int64_t l_cache;        /* lfm2moe: short-conv kernel length */
    bool is_attn[SYNTH_MAX_LAYERS]; /* lfm2moe: attention (else short-conv); qwen3moe: all */
    float rope_base;
    float rms_eps;
    uint64_t seed;
    enum synth_ftype ftype;
    /* For testing what readers do with odd files; both off in the presets. */
    bool no_tokenizer;         /* write no tokenizer.* keys at all */
    const char *chat_template; /* NULL: the architecture's real template; "": no template key;
                                  else this text (not copied: it must outlive synth_write) */
};

/* Fills p from a preset: "tiny", "lfm2-8b-a1b" (lfm2moe), "qwen3-tiny", "qwen3-30b-a3b".
 * MP_EINVAL (message lists the presets) for an unknown name. */
int synth_preset(const char *name, struct synth_params *p, struct mp_error *err);
const char *synth_preset_names(void); /* "tiny, lfm2-8b-a1b, ..." for usage text */

/* Parses "f32", "q8_0", "q4_k_m". */
int synth_parse_ftype(const char *s, enum synth_ftype *out, struct mp_error *err);

/* Sets p->is_attn from a list of layer indices like "2,6,10" (lfm2moe only). */
int synth_set_attn_layers(struct synth_params *p, const char *list, struct mp_error *err);

/* Checks that the shape is one llama.cpp and moepool can load (divisibility, ranges, vocabulary
 * large enough for the bytes and special tokens). */
int synth_check(const struct synth_params *p, struct mp_error *err);

/* What llama-quantize's Q4_K_M needs to know about the whole model besides one tensor's name. It
 * counts attn_v tensors as they go by, so call synth_q4_k_m_type in file order, as it does. */
struct synth_q4km_state {
    int n_layer;
    int n_expert;
    int n_attn_v;     /* attn_v tensors in the file */
    bool has_output;  /* output.weight exists (else token_embd gets the output's type) */
    int i_attn_v;     /* attn_v tensors seen so far */
    int i_ffn_down;   /* ffn_down tensors seen so far (the layer when n_expert <= 1) */
};

/* Type of a tensor under llama-quantize Q4_K_M without an imatrix (gguf.md §5): F32 for what is
 * never quantized, Q6_K/Q8_0/Q5_K promotions, Q5_0/Q8_0/Q5_1/F16 fallbacks for rows that are not
 * a multiple of 256. */
enum kq_type synth_q4_k_m_type(struct synth_q4km_state *q, const char *name, int n_dims,
                               const int64_t *ne);

/* Same decision for any supported ftype. */
enum kq_type synth_tensor_type(enum synth_ftype ftype, struct synth_q4km_state *q,
                               const char *name, int n_dims, const int64_t *ne);

struct synth_stats {
    uint64_t file_bytes;
    int n_tensors;
    int64_t n_params;
    double seconds;
};

/* Called from the calling thread between chunks: bytes of tensor data written so far. */
typedef void (*synth_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* Writes the model to path with n_threads threads (>= 1). On any error the partial file is
 * removed. progress may be NULL. */
int synth_write(const struct synth_params *p, const char *path, int n_threads,
                synth_progress_fn progress, void *progress_ctx, struct synth_stats *stats,
                struct mp_error *err);

#endif
