/* model/cmd_inspect.c: `moepool inspect FILE`: what a GGUF file holds (metadata, tensors with
 * types and sizes) and, when moepool supports its architecture, how the model is built: layers
 * and their kinds, experts, total and active parameters. Works on vocab-only files too. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "kernels/kq.h"
#include "model/arch.h"

static void print_scalar(const struct gguf_value *v)
{
    switch (v->type) {
    case GGUF_F32:
    case GGUF_F64: printf("%g", v->f); break;
    case GGUF_BOOL: printf("%s", v->u ? "true" : "false"); break;
    case GGUF_STRING:
        printf("\"%.*s%s\"", v->s.len > 60 ? 60 : (int)v->s.len, v->s.ptr,
               v->s.len > 60 ? "..." : "");
        break;
    case GGUF_I8: case GGUF_I16: case GGUF_I32: case GGUF_I64:
        printf("%lld", (long long)v->i);
        break;
    default: printf("%llu", (unsigned long long)v->u); break;
    }
}

static void print_array(const struct gguf_value *v)
{
    printf("[%s x %llu]", gguf_vtype_name(v->arr.type), (unsigned long long)v->arr.n);
    uint64_t show = v->arr.n < 8 ? v->arr.n : 8;
    for (uint64_t i = 0; i < show; i++) {
        if (v->arr.type == GGUF_STRING)
            printf(" \"%.*s\"", v->arr.str[i].len > 24 ? 24 : (int)v->arr.str[i].len,
                   v->arr.str[i].ptr);
        else if (v->arr.type == GGUF_F32 || v->arr.type == GGUF_F64)
            printf(" %g", gguf_arr_float(v, i));
        else
            printf(" %lld", (long long)gguf_arr_int(v, i));
    }
    if (show < v->arr.n)
        printf(" ...");
}

static void print_metadata(const struct gguf_file *f)
{
    printf("file: %s\nGGUF version %u, %llu keys, %llu tensors, alignment %llu\n\nmetadata:\n",
           f->path, f->version, (unsigned long long)f->n_kv, (unsigned long long)f->n_tensors,
           (unsigned long long)f->alignment);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const struct gguf_kv *kv = &f->kv[i];
        printf("  %-44.*s ", (int)kv->key.len, kv->key.ptr);
        if (kv->v.type == GGUF_ARRAY)
            print_array(&kv->v);
        else
            print_scalar(&kv->v);
        printf("\n");
    }
}

static void print_tensors(const struct gguf_file *f)
{
    uint64_t total = 0, count[KQ_TYPE_COUNT] = {0};
    printf("\ntensors:\n");
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        char shape[96];
        int len = snprintf(shape, sizeof(shape), "{%lld", (long long)t->ne[0]);
        for (uint32_t d = 1; d < t->n_dims; d++)
            len += snprintf(shape + len, sizeof(shape) - (size_t)len, ", %lld",
                            (long long)t->ne[d]);
        snprintf(shape + len, sizeof(shape) - (size_t)len, "}");
        printf("  %-36s %-6s %-22s %12llu bytes\n", t->name, kq_format(t->type)->name, shape,
               (unsigned long long)t->n_bytes);
        total += t->n_bytes;
        count[t->type]++;
    }
    printf("  %llu bytes of tensor data; types:", (unsigned long long)total);
    for (int ty = 0; ty < KQ_TYPE_COUNT; ty++)
        if (count[ty])
            printf(" %s x%llu", kq_format((uint32_t)ty)->name, (unsigned long long)count[ty]);
    printf("\n");
}

static void print_model(const struct model *m)
{
    const struct hparams *hp = &m->hp;
    int64_t total = 0, experts = 0;
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        const struct gguf_tensor *t = &m->gguf->tensors[i];
        total += t->n_elements;
        if (strstr(t->name, "_exps."))
            experts += t->n_elements;
    }
    const double active = (double)(total - experts) +
                          (double)experts * (double)hp->n_expert_used / (double)hp->n_expert;
    printf("\nmodel: %s, %lld layers, n_embd %lld, vocab %lld, context %lld\n", m->arch->name,
           (long long)hp->n_layer, (long long)hp->n_embd, (long long)hp->n_vocab,
           (long long)hp->n_ctx_train);
    printf("attention: %lld heads, head_dim %lld, rope base %g; experts: %lld, %lld per token, "
           "width %lld, %s gating\n", (long long)hp->n_head, (long long)hp->head_dim,
           (double)hp->rope_base, (long long)hp->n_expert, (long long)hp->n_expert_used,
           (long long)hp->n_ff_exp, hp->gating == GATING_SIGMOID ? "sigmoid" : "softmax");
    printf("layers:");
    for (int il = 0; il < hp->n_layer; il++)
        printf(" %d:%s+%s", il, hp->kind[il] == LAYER_ATTENTION ? "attn" : "conv",
               hp->is_moe[il] ? "moe" : "ffn");
    printf("\nparameters: %.3fB total, %.3fB active per token (experts %.3fB)\n", total / 1e9,
           active / 1e9, experts / 1e9);
}

int cmd_inspect(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(argc == 2 && !strcmp(argv[1], "--help") ? stdout : stderr,
                "usage: moepool inspect MODEL.gguf\n");
        return argc == 2 && !strcmp(argv[1], "--help") ? 0 : 2;
    }
    struct mp_error err = {0};
    struct gguf_file *f;
    kq_init();
    if (gguf_open(argv[1], &f, &err)) {
        fprintf(stderr, "moepool inspect: %s\n", err.msg);
        return 2;
    }
    print_metadata(f);
    print_tensors(f);
    struct model *m;
    int rc = 0;
    if (f->n_tensors && model_from_gguf(f, &m, &err)) {
        fprintf(stderr, "moepool inspect: %s\n", err.msg);
        gguf_close(f);
        return 2;
    }
    if (f->n_tensors) {
        print_model(m);
        model_close(m); /* closes f */
    } else {
        printf("\n(no tensors: a vocabulary-only file)\n");
        gguf_close(f);
    }
    return rc;
}
