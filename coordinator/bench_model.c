/* coordinator/bench_model.c: bytes read per decode token. */
#include "coordinator/bench_model.h"

#include <string.h>

struct bench_bytes bench_decode_bytes(const struct model *m)
{
    struct bench_bytes b = {0};
    const struct gguf_file *f = m->gguf;
    bool tied = !gguf_find_tensor(f, "output.weight");
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        if (strstr(t->name, "_exps."))
            b.experts += t->n_bytes;
        else if (!strcmp(t->name, "output.weight") ||
                 (tied && !strcmp(t->name, "token_embd.weight")))
            b.head += t->n_bytes;
        else if (strcmp(t->name, "token_embd.weight"))
            b.dense += t->n_bytes;
    }
    double active = m->hp.n_expert > 0 ? (double)m->hp.n_expert_used / (double)m->hp.n_expert : 0;
    b.per_token = (double)(b.dense + b.head) + active * (double)b.experts;
    return b;
}
