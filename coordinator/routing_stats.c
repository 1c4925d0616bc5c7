/* coordinator/routing_stats.c: activation and co-activation counts per MoE layer, their merge,
 * and their JSON file (written with stdio, since a qwen3moe file has ~400k pair entries and a
 * cJSON tree of them would only be built to be printed; read with cJSON). */
#include "coordinator/routing_stats.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/placement_json.h"

#define RSTATS_FORMAT "moepool-routing-stats"
#define RSTATS_VERSION 1
/* Bounds for hostile files: far above any real model (qwen3moe: 48 layers, 128 experts). */
#define RSTATS_MAX_LAYERS 1024
#define RSTATS_MAX_EXPERTS 1024
#define RSTATS_ARCH_MAX sizeof(((struct routing_stats *)0)->arch)

int rstats_new(const char *arch, int n_moe_layers, int n_expert, struct routing_stats **out,
               struct mp_error *err)
{
    if (n_moe_layers < 1 || n_moe_layers > RSTATS_MAX_LAYERS || n_expert < 1 ||
        n_expert > RSTATS_MAX_EXPERTS)
        return mp_error_set(err, MP_ERANGE,
                            "routing stats: %d MoE layers x %d experts out of range", n_moe_layers,
                            n_expert);
    struct routing_stats *s = calloc(1, sizeof(*s));
    size_t n_le = (size_t)n_moe_layers * (size_t)n_expert;
    if (s) {
        s->tokens = calloc((size_t)n_moe_layers, sizeof(*s->tokens));
        s->count = calloc(n_le, sizeof(*s->count));
        s->pair = calloc(n_le * (size_t)n_expert, sizeof(*s->pair));
    }
    if (!s || !s->tokens || !s->count || !s->pair) {
        rstats_free(s);
        return mp_error_set(err, MP_ENOMEM, "routing stats: out of memory");
    }
    snprintf(s->arch, sizeof(s->arch), "%s", arch ? arch : "");
    s->n_moe_layers = n_moe_layers;
    s->n_expert = n_expert;
    pthread_mutex_init(&s->lock, NULL);
    *out = s;
    return 0;
}

void rstats_free(struct routing_stats *s)
{
    if (!s)
        return;
    if (s->tokens && s->count && s->pair)
        pthread_mutex_destroy(&s->lock);
    free(s->tokens);
    free(s->count);
    free(s->pair);
    free(s);
}

static uint64_t *pair_at(struct routing_stats *s, int layer, int a, int b)
{
    return &s->pair[((size_t)layer * s->n_expert + a) * s->n_expert + b];
}

/* One token's distinct experts: counts and every unordered pair once, stored both ways. */
static void record_token(struct routing_stats *s, int layer, int k, const int32_t *ids)
{
    uint64_t *count = s->count + (size_t)layer * s->n_expert;
    for (int i = 0; i < k; i++) {
        bool dup = false;
        for (int j = 0; j < i; j++)
            dup |= ids[j] == ids[i];
        if (dup)
            continue;
        count[ids[i]]++;
        for (int j = 0; j < i; j++) {
            bool seen = false; /* ids[j] already paired with ids[i] via an earlier duplicate */
            for (int t = 0; t < j; t++)
                seen |= ids[t] == ids[j];
            if (seen)
                continue;
            (*pair_at(s, layer, ids[i], ids[j]))++;
            (*pair_at(s, layer, ids[j], ids[i]))++;
        }
    }
}

int rstats_record(struct routing_stats *s, int layer, int n_tokens, int k, const int32_t *ids,
                  struct mp_error *err)
{
    if (layer < 0 || layer >= s->n_moe_layers || n_tokens < 0 || k < 0)
        return mp_error_set(err, MP_ERANGE, "routing stats: MoE layer %d of %d", layer,
                            s->n_moe_layers);
    for (int64_t i = 0; i < (int64_t)n_tokens * k; i++)
        if (ids[i] < 0 || ids[i] >= s->n_expert)
            return mp_error_set(err, MP_ERANGE, "routing stats: layer %d: expert %d of %d", layer,
                                (int)ids[i], s->n_expert);
    pthread_mutex_lock(&s->lock);
    for (int t = 0; t < n_tokens; t++)
        record_token(s, layer, k, ids + (int64_t)t * k);
    s->tokens[layer] += (uint64_t)n_tokens;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int rstats_merge(struct routing_stats *dst, const struct routing_stats *src, struct mp_error *err)
{
    if (dst->n_moe_layers != src->n_moe_layers || dst->n_expert != src->n_expert)
        return mp_error_set(err, MP_EINVAL,
                            "routing stats: cannot merge %d layers x %d experts into %d x %d",
                            src->n_moe_layers, src->n_expert, dst->n_moe_layers, dst->n_expert);
    if (dst->arch[0] && src->arch[0] && strcmp(dst->arch, src->arch))
        return mp_error_set(err, MP_EINVAL, "routing stats: cannot merge %s statistics into %s",
                            src->arch, dst->arch);
    size_t n_le = (size_t)dst->n_moe_layers * dst->n_expert;
    pthread_mutex_lock(&dst->lock);
    for (int l = 0; l < dst->n_moe_layers; l++)
        dst->tokens[l] += src->tokens[l];
    for (size_t i = 0; i < n_le; i++)
        dst->count[i] += src->count[i];
    for (size_t i = 0; i < n_le * dst->n_expert; i++)
        dst->pair[i] += src->pair[i];
    if (!dst->arch[0])
        memcpy(dst->arch, src->arch, sizeof(dst->arch));
    pthread_mutex_unlock(&dst->lock);
    return 0;
}

uint64_t rstats_total(const struct routing_stats *s)
{
    uint64_t total = 0;
    for (size_t i = 0; i < (size_t)s->n_moe_layers * s->n_expert; i++)
        total += s->count[i];
    return total;
}

/* ---- saving ---- */

static void write_layer(FILE *f, struct routing_stats *s, int l)
{
    fprintf(f, "    {\"tokens\": %llu, \"counts\": [", (unsigned long long)s->tokens[l]);
    for (int e = 0; e < s->n_expert; e++)
        fprintf(f, "%s%llu", e ? ", " : "", (unsigned long long)rstats_count(s, l, e));
    fprintf(f, "],\n     \"pairs\": [");
    int n = 0;
    for (int a = 0; a < s->n_expert; a++)
        for (int b = a + 1; b < s->n_expert; b++) {
            uint64_t c = rstats_pair(s, l, a, b);
            if (c)
                fprintf(f, "%s[%d, %d, %llu]", n++ ? (n % 8 ? ", " : ",\n       ") : "", a, b,
                        (unsigned long long)c);
        }
    fprintf(f, "]}%s\n", l + 1 < s->n_moe_layers ? "," : "");
}

int rstats_save(struct routing_stats *s, const char *path, struct mp_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return mp_error_set(err, MP_EIO, "%s: cannot create: %s", path, strerror(errno));
    pthread_mutex_lock(&s->lock);
    fprintf(f, "{\n  \"format\": \"%s\", \"version\": %d,\n", RSTATS_FORMAT, RSTATS_VERSION);
    fprintf(f, "  \"architecture\": \"%s\", \"n_moe_layers\": %d, \"n_expert\": %d,\n", s->arch,
            s->n_moe_layers, s->n_expert);
    fprintf(f, "  \"layers\": [\n");
    for (int l = 0; l < s->n_moe_layers; l++)
        write_layer(f, s, l);
    fprintf(f, "  ]\n}\n");
    pthread_mutex_unlock(&s->lock);
    int bad = ferror(f);
    if (fclose(f) || bad)
        return mp_error_set(err, MP_EIO, "%s: write failed", path);
    return 0;
}

/* ---- loading ---- */

static int load_counts(const cJSON *layer, struct routing_stats *s, int l, const char *path,
                       struct mp_error *err)
{
    uint64_t v;
    if (json_get_u64(layer, "tokens", &v))
        return mp_error_set(err, MP_ECORRUPT, "%s: layer %d: \"tokens\" must be a count", path, l);
    s->tokens[l] = v;
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(layer, "counts");
    if (!cJSON_IsArray(counts) || cJSON_GetArraySize(counts) != s->n_expert)
        return mp_error_set(err, MP_ECORRUPT, "%s: layer %d: \"counts\" must list %d counts", path,
                            l, s->n_expert);
    int e = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, counts)
    {
        if (json_u64(c, &v) || v > s->tokens[l])
            return mp_error_set(err, MP_ECORRUPT,
                                "%s: layer %d expert %d: count must be a count <= tokens", path, l,
                                e);
        s->count[(size_t)l * s->n_expert + e++] = v;
    }
    return 0;
}

static int load_pair(const cJSON *p, struct routing_stats *s, int l, const char *path,
                     struct mp_error *err)
{
    uint64_t a, b, c;
    if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) != 3 || json_u64(cJSON_GetArrayItem(p, 0), &a) ||
        json_u64(cJSON_GetArrayItem(p, 1), &b) || json_u64(cJSON_GetArrayItem(p, 2), &c))
        return mp_error_set(err, MP_ECORRUPT, "%s: layer %d: a pair must be [a, b, count]", path,
                            l);
    if (a >= b || b >= (uint64_t)s->n_expert)
        return mp_error_set(err, MP_ECORRUPT, "%s: layer %d: pair [%llu, %llu] needs a < b < %d",
                            path, l, (unsigned long long)a, (unsigned long long)b, s->n_expert);
    if (c > rstats_count(s, l, (int)a) || c > rstats_count(s, l, (int)b))
        return mp_error_set(err, MP_ECORRUPT,
                            "%s: layer %d: pair [%llu, %llu] seen more often than its experts",
                            path, l, (unsigned long long)a, (unsigned long long)b);
    *pair_at(s, l, (int)a, (int)b) = c;
    *pair_at(s, l, (int)b, (int)a) = c;
    return 0;
}

static int load_layers(const cJSON *root, struct routing_stats *s, const char *path,
                       struct mp_error *err)
{
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) != s->n_moe_layers)
        return mp_error_set(err, MP_ECORRUPT, "%s: \"layers\" must list %d layers", path,
                            s->n_moe_layers);
    int l = 0, rc = 0;
    const cJSON *layer, *p;
    cJSON_ArrayForEach(layer, layers)
    {
        if (!cJSON_IsObject(layer))
            return mp_error_set(err, MP_ECORRUPT, "%s: layer %d must be an object", path, l);
        if ((rc = load_counts(layer, s, l, path, err)))
            return rc;
        const cJSON *pairs = cJSON_GetObjectItemCaseSensitive(layer, "pairs");
        if (pairs && !cJSON_IsArray(pairs))
            return mp_error_set(err, MP_ECORRUPT, "%s: layer %d: \"pairs\" must be a list", path,
                                l);
        cJSON_ArrayForEach(p, pairs)
        {
            if ((rc = load_pair(p, s, l, path, err)))
                return rc;
        }
        l++;
    }
    return 0;
}

int rstats_load(const char *path, struct routing_stats **out, struct mp_error *err)
{
    cJSON *root = NULL;
    int rc = json_read_file(path, RSTATS_FORMAT, RSTATS_VERSION, &root, err);
    if (rc)
        return rc;
    uint64_t n_layers, n_expert;
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architecture");
    if (json_get_u64(root, "n_moe_layers", &n_layers) || json_get_u64(root, "n_expert", &n_expert))
        rc = mp_error_set(err, MP_ECORRUPT, "%s: \"n_moe_layers\" and \"n_expert\" must be counts",
                          path);
    else if (arch && (!cJSON_IsString(arch) || strlen(arch->valuestring) >= RSTATS_ARCH_MAX))
        rc = mp_error_set(err, MP_ECORRUPT, "%s: \"architecture\" must be a short string", path);
    struct routing_stats *s = NULL;
    if (!rc && n_layers <= RSTATS_MAX_LAYERS && n_expert <= RSTATS_MAX_EXPERTS)
        rc = rstats_new(arch ? arch->valuestring : "", (int)n_layers, (int)n_expert, &s, err);
    else if (!rc)
        rc = mp_error_set(err, MP_ECORRUPT, "%s: %llu MoE layers x %llu experts out of range", path,
                          (unsigned long long)n_layers, (unsigned long long)n_expert);
    if (!rc)
        rc = load_layers(root, s, path, err);
    cJSON_Delete(root);
    if (rc) {
        rstats_free(s);
        return rc;
    }
    *out = s;
    return 0;
}
