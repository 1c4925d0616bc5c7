/* model/arch.h: what an architecture owns: its name, how its hyperparameters are read from the
 * GGUF keys, and the names of the tensors that differ between architectures. Everything shared
 * (attention, short conv, dense FFN, MoE tensors and the forward pass) lives in model.c and
 * forward.c. A new architecture is one arch_*.c file plus one line in arch.c's registry; arch.c
 * is the only place that compares architecture names. */
#ifndef ARCH_H
#define ARCH_H

#include "model/model.h"

struct arch {
    const char *name;
    /* Reads hyperparameters into m->hp (n_vocab and the generic keys are read before). */
    int (*load_hparams)(struct model *m, struct mp_error *err);
    const char *output_norm_name; /* final RMSNorm tensor */
    bool tied_output;             /* head may be token_embd when output.weight is absent */
};

extern const struct arch arch_lfm2moe;
extern const struct arch arch_qwen3moe;

/* The architecture named by general.architecture, or NULL. */
const struct arch *arch_find(struct gguf_str name);

/* Helpers for arch files: "{arch}.{suffix}" keys. Integer/float getters fail with a clear error
 * when a required key is missing; optional ones leave *out untouched when absent. */
int arch_key_int(const struct model *m, const char *suffix, bool required, int64_t *out,
                 struct mp_error *err);
int arch_key_float(const struct model *m, const char *suffix, bool required, float *out,
                   struct mp_error *err);
/* A per-layer value that may be stored as one scalar or as an array of n_layer integers. */
int arch_key_per_layer(const struct model *m, const char *suffix, bool required, int64_t *out,
                       struct mp_error *err);

#endif
