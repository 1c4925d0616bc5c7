/* model/model.h: a loaded model: hyperparameters, per-layer weight views, and the architecture
 * that bound them. Weights are borrowed views into the GGUF mapping (struct kq_matrix); nothing
 * is copied. Matrices repacked for the x16 kernels (model/repack.h) point to their repacked copy
 * in anonymous memory instead (the file's pages are then dropped) and say so in their `layout`. Field names keep GGUF's names (n_embd, n_head_kv, n_ff_exp) so this reads beside
 * ../shared/docs/models/. */
#ifndef MODEL_H
#define MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "kernels/matmul.h"
#include "model/gguf.h"

#define MODEL_MAX_LAYERS 512

enum layer_kind { LAYER_ATTENTION, LAYER_SHORTCONV };

/* How router logits become expert probabilities (llama.cpp's expert_gating_func values). */
enum gating { GATING_SOFTMAX = 1, GATING_SIGMOID = 2 };

struct hparams {
    int64_t n_vocab;
    int64_t n_embd;
    int64_t n_layer;
    int64_t n_ctx_train;
    int64_t n_head;
    int64_t n_head_kv[MODEL_MAX_LAYERS]; /* 0 for short-conv layers */
    int64_t head_dim;                    /* key_length = value_length */
    int64_t n_rot;
    int64_t n_ff[MODEL_MAX_LAYERS];      /* dense FFN width, for dense layers */
    int64_t n_expert;
    int64_t n_expert_used;
    int64_t n_ff_exp;
    int64_t conv_l_cache;                /* short-conv kernel length */
    float rms_eps;
    float rope_base;
    enum gating gating;
    bool norm_topk;                      /* renormalise the top-k weights */
    enum layer_kind kind[MODEL_MAX_LAYERS];
    bool is_moe[MODEL_MAX_LAYERS];
};

/* The experts of one MoE layer for one projection: n_expert matrices stored back to back. */
struct expert_matrix {
    const uint8_t *data;  /* expert 0 in the mapping: the file's bytes */
    const uint8_t **x16;  /* [n_expert]: expert e's repacked copy (model/repack.h), else NULL */
    enum kq_type type;
    int64_t n_cols;
    int64_t n_rows;
    int64_t n_expert;
    size_t row_bytes;
    size_t expert_bytes; /* n_rows * row_bytes */
};

struct layer {
    enum layer_kind kind;
    bool is_moe;
    const float *attn_norm; /* [n_embd] "operator norm" */
    const float *ffn_norm;  /* [n_embd] */
    /* attention */
    struct kq_matrix attn_q, attn_k, attn_v, attn_output;
    const float *attn_q_norm, *attn_k_norm; /* [head_dim], shared by all heads */
    /* short conv */
    struct kq_matrix conv_in, conv_out;
    const float *conv_kernel; /* [n_embd][conv_l_cache], tap l_cache-1 = current token */
    /* dense FFN */
    struct kq_matrix ffn_gate, ffn_up, ffn_down;
    /* MoE */
    struct kq_matrix router;    /* [n_expert][n_embd], F32 */
    const float *expert_bias;   /* [n_expert] selection-only bias, or NULL */
    struct expert_matrix gate_exps, up_exps, down_exps;
};

struct arch;

/* What model/repack.c did to this model's weights so far (it adds to it through a const model,
 * hence a pointer). */
struct model_repack {
    int64_t n_repacked, n_kept; /* matrices put in the x16 layout / left row-major */
    uint64_t bytes;             /* bytes repacked */
    double seconds;
    struct repack_region {      /* anonymous memory holding repacked copies */
        void *p;
        size_t bytes;
    } *regions;
    size_t n_regions;
};

struct model {
    struct gguf_file *gguf;
    const struct arch *arch;
    struct hparams hp;
    struct layer *layers; /* [n_layer] */
    struct kq_matrix tok_embd;
    struct kq_matrix output; /* the head; the embedding itself when tied */
    const float *output_norm;
    int n_moe_layers;
    bool dense_repacked;         /* model/repack.h: done once */
    struct model_repack *repack; /* never NULL once loaded */
};

/* Opens a GGUF file and binds it to its architecture; every tensor a layer needs is checked for
 * presence, shape and a type moepool can compute with. */
int model_open(const char *path, struct model **out, struct mp_error *err);
int model_from_gguf(struct gguf_file *gguf, struct model **out, struct mp_error *err);
void model_close(struct model *m); /* NULL-safe; closes the GGUF file too */

/* Expert matrix e as a plain 2-D view: the file's bytes, or its repacked copy once there is one. */
struct kq_matrix model_expert(const struct expert_matrix *x, int64_t e);

/* Index among MoE layers (0..n_moe_layers-1) of block il, or -1. */
int model_moe_index(const struct model *m, int il);

#endif
