/* model/arch.c: the architecture registry and the "{arch}.key" helpers (see arch.h). */
#include "model/arch.h"

#include <stdio.h>

static const struct arch *const registry[] = {
    &arch_lfm2moe,
    &arch_qwen3moe,
};

const struct arch *arch_find(struct gguf_str name)
{
    for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
        if (gguf_str_eq(name, registry[i]->name))
            return registry[i];
    return NULL;
}

static void key_name(const struct model *m, const char *suffix, char *buf, size_t n)
{
    snprintf(buf, n, "%s.%s", m->arch->name, suffix);
}

static int missing(const struct model *m, const char *key, struct mp_error *err)
{
    return mp_error_set(err, MP_ECORRUPT, "%s: required key %s is missing", m->gguf->path, key);
}

int arch_key_int(const struct model *m, const char *suffix, bool required, int64_t *out,
                 struct mp_error *err)
{
    char key[128];
    key_name(m, suffix, key, sizeof(key));
    int rc = gguf_get_int(m->gguf, key, out, err);
    if (rc == MP_ENOTFOUND)
        return required ? missing(m, key, err) : 0;
    return rc;
}

int arch_key_float(const struct model *m, const char *suffix, bool required, float *out,
                   struct mp_error *err)
{
    char key[128];
    double v;
    key_name(m, suffix, key, sizeof(key));
    int rc = gguf_get_float(m->gguf, key, &v, err);
    if (rc == MP_ENOTFOUND)
        return required ? missing(m, key, err) : 0;
    if (!rc)
        *out = (float)v;
    return rc;
}

int arch_key_per_layer(const struct model *m, const char *suffix, bool required, int64_t *out,
                       struct mp_error *err)
{
    char key[128];
    key_name(m, suffix, key, sizeof(key));
    const struct gguf_kv *kv = gguf_find(m->gguf, key);
    int64_t n_layer = m->hp.n_layer;
    if (!kv)
        return required ? missing(m, key, err) : 0;
    if (kv->v.type != GGUF_ARRAY) {
        int64_t v;
        int rc = gguf_get_int(m->gguf, key, &v, err);
        for (int64_t il = 0; !rc && il < n_layer; il++)
            out[il] = v;
        return rc;
    }
    if (!gguf_vtype_is_int(kv->v.arr.type) || (int64_t)kv->v.arr.n != n_layer)
        return mp_error_set(err, MP_ECORRUPT, "%s: %s must be %lld integers",
                            m->gguf->path, key, (long long)n_layer);
    for (int64_t il = 0; il < n_layer; il++)
        out[il] = gguf_arr_int(&kv->v, (uint64_t)il);
    return 0;
}
