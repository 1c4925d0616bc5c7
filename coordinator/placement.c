/* coordinator/placement.c: the placement table, its JSON file, and what it implies per worker
 * (memory, expected load). The planners that fill it are in placement_plan.c. */
#include "coordinator/placement.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/placement_json.h"
#include "coordinator/routing_stats.h"
#include "model/arch.h"
#include "model/fingerprint.h"
#include "model/model.h"

#define PLACE_FORMAT "moepool-placement"
#define PLACE_VERSION 1
#define PLACE_MAX_LAYERS 1024
#define PLACE_MAX_EXPERTS 1024

/* Names and free-text fields are written into JSON without escaping, so they are restricted to
 * characters that need none; extra lets fingerprints hold base64 ("+/=") and colons. */
static bool is_token(const char *s, const char *extra)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("._-", *s) || strchr(extra, *s)))
            return false;
    return true;
}

static int check_workers(int n_workers, const struct place_worker *w, struct mp_error *err)
{
    if (n_workers < 1 || n_workers > PLACE_MAX_WORKERS)
        return mp_error_set(err, MP_ERANGE, "placement: %d workers (1 to %d)", n_workers,
                            PLACE_MAX_WORKERS);
    for (int i = 0; i < n_workers; i++) {
        if (!memchr(w[i].name, 0, PLACE_NAME_MAX) || !is_token(w[i].name, ""))
            return mp_error_set(err, MP_EINVAL, "worker %d: name must be 1 to %d of [A-Za-z0-9._-]",
                                i + 1, PLACE_NAME_MAX - 1);
        if (w[i].cores < 0)
            return mp_error_set(err, MP_EINVAL, "worker %s: negative cores", w[i].name);
        for (int j = 0; j < i; j++)
            if (!strcmp(w[i].name, w[j].name))
                return mp_error_set(err, MP_EINVAL, "worker name '%s' appears twice", w[i].name);
    }
    return 0;
}

int place_new(const char *arch, int n_moe_layers, int n_expert, int n_workers,
              const struct place_worker *workers, struct placement **out, struct mp_error *err)
{
    int rc = check_workers(n_workers, workers, err);
    if (rc)
        return rc;
    if (n_moe_layers < 1 || n_moe_layers > PLACE_MAX_LAYERS || n_expert < 1 ||
        n_expert > PLACE_MAX_EXPERTS)
        return mp_error_set(err, MP_ERANGE, "placement: %d MoE layers x %d experts out of range",
                            n_moe_layers, n_expert);
    if (strlen(arch) >= sizeof(((struct placement *)0)->arch) || !is_token(arch, ""))
        return mp_error_set(err, MP_EINVAL, "placement: bad architecture name");
    struct placement *p = calloc(1, sizeof(*p));
    if (p)
        p->holders = calloc((size_t)n_moe_layers * n_expert, sizeof(*p->holders));
    if (!p || !p->holders) {
        place_free(p);
        return mp_error_set(err, MP_ENOMEM, "placement: out of memory");
    }
    snprintf(p->arch, sizeof(p->arch), "%s", arch);
    p->n_moe_layers = n_moe_layers;
    p->n_expert = n_expert;
    p->n_workers = n_workers;
    memcpy(p->workers, workers, (size_t)n_workers * sizeof(*workers));
    *out = p;
    return 0;
}

void place_free(struct placement *p)
{
    if (p)
        free(p->holders);
    free(p);
}

int place_new_for_model(const struct model *m, int n_workers, const struct place_worker *workers,
                        struct placement **out, struct mp_error *err)
{
    int rc = place_new(m->arch->name, m->n_moe_layers, (int)m->hp.n_expert, n_workers, workers, out,
                       err);
    if (!rc)
        fingerprint_hex(fingerprint_gguf(m->gguf), (*out)->fingerprint);
    return rc;
}

int place_worker_index(const struct placement *p, const char *name)
{
    for (int w = 0; w < p->n_workers; w++)
        if (!strcmp(p->workers[w].name, name))
            return w;
    return -1;
}

void place_add(struct placement *p, int layer, int expert, int w)
{
    MP_ASSERT(layer >= 0 && layer < p->n_moe_layers && expert >= 0 && expert < p->n_expert);
    MP_ASSERT(w >= 0 && w < p->n_workers);
    p->holders[(int64_t)layer * p->n_expert + expert] |= 1ull << w;
}

int place_worker_experts(const struct placement *p, int w, int layer, int32_t *ids)
{
    int n = 0;
    for (int e = 0; e < p->n_expert; e++)
        if (place_holds(p, layer, e, w))
            ids[n++] = e;
    return n;
}

int place_check_complete(const struct placement *p, struct mp_error *err)
{
    for (int l = 0; l < p->n_moe_layers; l++)
        for (int e = 0; e < p->n_expert; e++)
            if (!place_holders(p, l, e))
                return mp_error_set(err, MP_EINVAL, "placement: layer %d expert %d has no worker",
                                    l, e);
    return 0;
}

int place_check_model(const struct placement *p, const struct model *m, const char *fingerprint,
                      struct mp_error *err)
{
    if (strcmp(p->arch, m->arch->name))
        return mp_error_set(err, MP_EINVAL, "placement is for %s, the model is %s", p->arch,
                            m->arch->name);
    if (p->n_moe_layers != m->n_moe_layers || p->n_expert != m->hp.n_expert)
        return mp_error_set(
            err, MP_EINVAL, "placement is for %d MoE layers x %d experts, the model has %d x %lld",
            p->n_moe_layers, p->n_expert, m->n_moe_layers, (long long)m->hp.n_expert);
    char own[FINGERPRINT_HEX_LEN + 1];
    if (!fingerprint) {
        fingerprint_hex(fingerprint_gguf(m->gguf), own);
        fingerprint = own;
    }
    if (p->fingerprint[0] && fingerprint[0] && strcmp(p->fingerprint, fingerprint))
        return mp_error_set(err, MP_EINVAL,
                            "placement is for model file %s, this one's fingerprint is %s",
                            p->fingerprint, fingerprint);
    return 0;
}

int place_check_stats(const struct placement *p, const struct routing_stats *s,
                      struct mp_error *err)
{
    if ((s->arch[0] && strcmp(s->arch, p->arch)) || s->n_moe_layers != p->n_moe_layers ||
        s->n_expert != p->n_expert)
        return mp_error_set(err, MP_EINVAL,
                            "routing statistics are for %s %d MoE layers x %d experts, the "
                            "placement for %s %d x %d",
                            s->arch[0] ? s->arch : "(unknown)", s->n_moe_layers, s->n_expert,
                            p->arch, p->n_moe_layers, p->n_expert);
    return 0;
}

/* ---- memory and load ---- */

uint64_t place_expert_bytes(const struct model *m, int layer)
{
    for (int il = 0; il < m->hp.n_layer; il++) {
        if (model_moe_index(m, il) != layer)
            continue;
        const struct layer *L = &m->layers[il];
        return L->gate_exps.expert_bytes + L->up_exps.expert_bytes + L->down_exps.expert_bytes;
    }
    return 0;
}

void place_worker_bytes(const struct placement *p, const struct model *m, uint64_t *bytes)
{
    memset(bytes, 0, (size_t)p->n_workers * sizeof(*bytes));
    for (int l = 0; l < p->n_moe_layers; l++) {
        uint64_t b = place_expert_bytes(m, l);
        for (int e = 0; e < p->n_expert; e++)
            for (int w = 0; w < p->n_workers; w++)
                bytes[w] += place_holds(p, l, e, w) ? b : 0;
    }
}

static int popcount64(uint64_t x)
{
    return __builtin_popcountll(x);
}

/* Activations of (l, e): the recorded count, or 1 for every expert without statistics. */
static double activations(const struct routing_stats *s, int l, int e)
{
    return s ? (double)rstats_count(s, l, e) : 1.0;
}

void place_layer_load(const struct placement *p, const struct routing_stats *stats, int layer,
                      double *load)
{
    memset(load, 0, (size_t)p->n_workers * sizeof(*load));
    for (int e = 0; e < p->n_expert; e++) {
        uint64_t set = place_holders(p, layer, e);
        double a = activations(stats, layer, e) / (set ? popcount64(set) : 1);
        for (int w = 0; set; w++, set >>= 1)
            load[w] += (set & 1) ? a : 0;
    }
}

void place_expected_load(const struct placement *p, const struct routing_stats *stats,
                         double *share)
{
    double load[PLACE_MAX_WORKERS], total = 0;
    memset(share, 0, (size_t)p->n_workers * sizeof(*share));
    for (int l = 0; l < p->n_moe_layers; l++) {
        place_layer_load(p, stats, l, load);
        for (int w = 0; w < p->n_workers; w++) {
            share[w] += load[w];
            total += load[w];
        }
    }
    for (int w = 0; w < p->n_workers; w++)
        share[w] = total > 0 ? share[w] / total : 0;
}

void place_speeds(const struct place_worker *workers, int n_workers, double *speed)
{
    double cores_sum = 0;
    int n_cores = 0, n_mem = 0;
    for (int w = 0; w < n_workers; w++) {
        cores_sum += workers[w].cores;
        n_cores += workers[w].cores > 0;
        n_mem += workers[w].mem_bytes > 0;
    }
    for (int w = 0; w < n_workers; w++) {
        if (n_cores)
            speed[w] = workers[w].cores ? workers[w].cores : cores_sum / n_cores;
        else if (n_mem == n_workers)
            speed[w] = (double)workers[w].mem_bytes;
        else
            speed[w] = 1;
    }
}

double place_imbalance(const struct placement *p, const struct routing_stats *stats)
{
    double load[PLACE_MAX_WORKERS], speed[PLACE_MAX_WORKERS], speed_sum = 0, sum = 0;
    place_speeds(p->workers, p->n_workers, speed);
    for (int w = 0; w < p->n_workers; w++)
        speed_sum += speed[w];
    for (int l = 0; l < p->n_moe_layers; l++) {
        place_layer_load(p, stats, l, load);
        double worst = 0, total = 0;
        for (int w = 0; w < p->n_workers; w++)
            total += load[w];
        for (int w = 0; w < p->n_workers; w++) {
            double fair = total * speed[w] / speed_sum;
            worst = fair > 0 && load[w] / fair > worst ? load[w] / fair : worst;
        }
        sum += total > 0 ? worst : 1;
    }
    return sum / p->n_moe_layers;
}

double place_colocated(const struct placement *p, const struct routing_stats *stats)
{
    double together = 0, all = 0;
    for (int l = 0; l < p->n_moe_layers; l++)
        for (int a = 0; a < p->n_expert; a++)
            for (int b = a + 1; b < p->n_expert; b++) {
                double c = (double)rstats_pair(stats, l, a, b);
                all += c;
                together += place_holders(p, l, a) & place_holders(p, l, b) ? c : 0;
            }
    return all > 0 ? together / all : 0;
}

/* ---- saving ---- */

static void write_holders(FILE *f, const struct placement *p, uint64_t set)
{
    bool many = popcount64(set) > 1;
    fputs(many ? "[" : "", f);
    for (int w = 0, n = 0; set; w++, set >>= 1)
        if (set & 1)
            fprintf(f, "%s\"%s\"", n++ ? ", " : "", p->workers[w].name);
    fputs(many ? "]" : "", f);
}

static void write_body(FILE *f, const struct placement *p)
{
    fprintf(f, "{\n  \"format\": \"%s\", \"version\": %d,\n", PLACE_FORMAT, PLACE_VERSION);
    fprintf(f, "  \"model\": {\"architecture\": \"%s\", \"n_moe_layers\": %d, \"n_expert\": %d",
            p->arch, p->n_moe_layers, p->n_expert);
    if (p->fingerprint[0])
        fprintf(f, ", \"fingerprint\": \"%s\"", p->fingerprint);
    fprintf(f, "},\n");
    if (p->policy[0])
        fprintf(f, "  \"policy\": \"%s\",\n", p->policy);
    fprintf(f, "  \"workers\": [\n");
    for (int w = 0; w < p->n_workers; w++) {
        fprintf(f, "    {\"name\": \"%s\"", p->workers[w].name);
        if (p->workers[w].mem_bytes)
            fprintf(f, ", \"mem_bytes\": %llu", (unsigned long long)p->workers[w].mem_bytes);
        if (p->workers[w].cores)
            fprintf(f, ", \"cores\": %d", p->workers[w].cores);
        fprintf(f, "}%s\n", w + 1 < p->n_workers ? "," : "");
    }
    fprintf(f, "  ],\n  \"layers\": [\n");
    for (int l = 0; l < p->n_moe_layers; l++) {
        fprintf(f, "    [");
        for (int e = 0; e < p->n_expert; e++) {
            fputs(e ? ", " : "", f);
            write_holders(f, p, place_holders(p, l, e));
        }
        fprintf(f, "]%s\n", l + 1 < p->n_moe_layers ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
}

int place_save(const struct placement *p, const char *path, struct mp_error *err)
{
    if ((p->fingerprint[0] && !is_token(p->fingerprint, ":+/=")) ||
        (p->policy[0] && !is_token(p->policy, "")))
        return mp_error_set(err, MP_EINVAL, "%s: fingerprint or policy has unsafe characters",
                            path);
    FILE *f = fopen(path, "w");
    if (!f)
        return mp_error_set(err, MP_EIO, "%s: cannot create: %s", path, strerror(errno));
    write_body(f, p);
    int bad = ferror(f);
    if (fclose(f) || bad)
        return mp_error_set(err, MP_EIO, "%s: write failed", path);
    return 0;
}

/* ---- loading ---- */

/* Copies a string member (optional when `optional`) of at most n-1 bytes of allowed characters. */
static int get_token(const cJSON *obj, const char *key, bool optional, const char *extra, char *dst,
                     size_t n, const char *path, struct mp_error *err)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!s && optional)
        return 0;
    if (!cJSON_IsString(s) || strlen(s->valuestring) >= n || !is_token(s->valuestring, extra))
        return mp_error_set(err, MP_ECORRUPT,
                            "%s: \"%s\" must be a name of 1 to %zu of "
                            "[A-Za-z0-9._-%s]",
                            path, key, n - 1, extra);
    memcpy(dst, s->valuestring, strlen(s->valuestring) + 1);
    return 0;
}

/* Only the listed members: a misspelt key is an error, not a silently ignored setting. */
static int only_keys(const cJSON *obj, const char *const *keys, const char *where, const char *path,
                     struct mp_error *err)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, obj)
    {
        bool known = false;
        for (int i = 0; keys[i]; i++)
            known |= item->string && !strcmp(item->string, keys[i]);
        if (!known)
            return mp_error_set(err, MP_ECORRUPT, "%s: %sunknown key \"%s\"", path, where,
                                item->string ? item->string : "");
    }
    return 0;
}

static int load_worker(const cJSON *o, struct place_worker *w, int i, const char *path,
                       struct mp_error *err)
{
    static const char *const keys[] = {"name", "mem_bytes", "cores", NULL};
    char where[32];
    snprintf(where, sizeof(where), "worker %d: ", i + 1);
    if (!cJSON_IsObject(o))
        return mp_error_set(err, MP_ECORRUPT, "%s: %smust be an object", path, where);
    int rc = only_keys(o, keys, where, path, err);
    if (!rc)
        rc = get_token(o, "name", false, "", w->name, sizeof(w->name), path, err);
    uint64_t v = 0;
    const cJSON *mem = cJSON_GetObjectItemCaseSensitive(o, "mem_bytes");
    const cJSON *cores = cJSON_GetObjectItemCaseSensitive(o, "cores");
    if (!rc && mem && json_u64(mem, &v))
        rc = mp_error_set(err, MP_ECORRUPT, "%s: worker %s: \"mem_bytes\" must be a count", path,
                          w->name);
    w->mem_bytes = v;
    v = 0;
    if (!rc && cores && (json_u64(cores, &v) || v > 1 << 20))
        rc = mp_error_set(err, MP_ECORRUPT, "%s: worker %s: \"cores\" must be a count", path,
                          w->name);
    w->cores = (int)v;
    return rc;
}

static int load_workers(const cJSON *root, struct place_worker *w, int *n, const char *path,
                        struct mp_error *err)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "workers");
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) < 1 ||
        cJSON_GetArraySize(list) > PLACE_MAX_WORKERS)
        return mp_error_set(err, MP_ECORRUPT, "%s: \"workers\" must list 1 to %d workers", path,
                            PLACE_MAX_WORKERS);
    const cJSON *o;
    int i = 0, rc;
    cJSON_ArrayForEach(o, list)
    {
        if ((rc = load_worker(o, &w[i], i, path, err)))
            return rc;
        i++;
    }
    *n = i;
    if ((rc = check_workers(i, w, err)))
        return mp_error_wrap(err, "%s: ", path);
    return 0;
}

static int load_model(const cJSON *root, char *arch, uint64_t *n_layers, uint64_t *n_expert,
                      char *fingerprint, const char *path, struct mp_error *err)
{
    static const char *const keys[] = {"architecture", "n_moe_layers", "n_expert", "fingerprint",
                                       NULL};
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(m))
        return mp_error_set(err, MP_ECORRUPT, "%s: \"model\" must be an object", path);
    int rc = only_keys(m, keys, "model: ", path, err);
    if (!rc)
        rc = get_token(m, "architecture", false, "", arch, 32, path, err);
    if (!rc)
        rc = get_token(m, "fingerprint", true, ":+/=", fingerprint, 80, path, err);
    if (!rc && (json_get_u64(m, "n_moe_layers", n_layers) ||
                json_get_u64(m, "n_expert", n_expert) || *n_layers < 1 ||
                *n_layers > PLACE_MAX_LAYERS || *n_expert < 1 || *n_expert > PLACE_MAX_EXPERTS))
        rc =
            mp_error_set(err, MP_ECORRUPT,
                         "%s: model: \"n_moe_layers\" and \"n_expert\" must be counts from 1 to %d",
                         path, PLACE_MAX_LAYERS);
    return rc;
}

/* One layers[l][e] entry: a worker name or a non-empty list of distinct names. */
static int load_entry(struct placement *p, const cJSON *entry, int l, int e, const char *path,
                      struct mp_error *err)
{
    const cJSON *one = entry, *item, *list = cJSON_IsArray(entry) ? entry : NULL;
    if (cJSON_IsArray(entry) && cJSON_GetArraySize(entry) == 0)
        return mp_error_set(err, MP_ECORRUPT, "%s: layer %d expert %d: empty list of workers", path,
                            l, e);
    cJSON_ArrayForEach(item, list)
    {
        if (!cJSON_IsString(item))
            return mp_error_set(err, MP_ECORRUPT, "%s: layer %d expert %d: not a worker name", path,
                                l, e);
        int w = place_worker_index(p, item->valuestring);
        if (w < 0)
            return mp_error_set(err, MP_ECORRUPT, "%s: layer %d expert %d: unknown worker '%s'",
                                path, l, e, item->valuestring);
        if (place_holds(p, l, e, w))
            return mp_error_set(err, MP_ECORRUPT, "%s: layer %d expert %d: worker '%s' twice", path,
                                l, e, item->valuestring);
        place_add(p, l, e, w);
    }
    if (cJSON_IsArray(entry))
        return 0;
    if (!cJSON_IsString(one))
        return mp_error_set(err, MP_ECORRUPT,
                            "%s: layer %d expert %d: must be a worker name or a list of them", path,
                            l, e);
    int w = place_worker_index(p, one->valuestring);
    if (w < 0)
        return mp_error_set(err, MP_ECORRUPT, "%s: layer %d expert %d: unknown worker '%s'", path,
                            l, e, one->valuestring);
    place_add(p, l, e, w);
    return 0;
}

static int load_layers(struct placement *p, const cJSON *root, const char *path,
                       struct mp_error *err)
{
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) != p->n_moe_layers)
        return mp_error_set(err, MP_ECORRUPT, "%s: \"layers\" must list %d MoE layers, has %d",
                            path, p->n_moe_layers,
                            cJSON_IsArray(layers) ? cJSON_GetArraySize(layers) : 0);
    const cJSON *layer, *entry;
    int l = 0, rc;
    cJSON_ArrayForEach(layer, layers)
    {
        if (!cJSON_IsArray(layer) || cJSON_GetArraySize(layer) != p->n_expert)
            return mp_error_set(err, MP_ECORRUPT, "%s: layer %d must list %d experts, has %d", path,
                                l, p->n_expert,
                                cJSON_IsArray(layer) ? cJSON_GetArraySize(layer) : 0);
        int e = 0;
        cJSON_ArrayForEach(entry, layer)
        {
            if ((rc = load_entry(p, entry, l, e++, path, err)))
                return rc;
        }
        l++;
    }
    return 0;
}

static int load_root(const cJSON *root, const char *path, struct placement **out,
                     struct mp_error *err)
{
    static const char *const keys[] = {"format",  "version", "model", "policy",
                                       "workers", "layers",  NULL};
    struct place_worker workers[PLACE_MAX_WORKERS] = {0};
    char arch[32] = "", fingerprint[80] = "", policy[32] = "";
    uint64_t n_layers = 0, n_expert = 0;
    int n_workers = 0;
    int rc = only_keys(root, keys, "", path, err);
    if (!rc)
        rc = load_model(root, arch, &n_layers, &n_expert, fingerprint, path, err);
    if (!rc)
        rc = get_token(root, "policy", true, "", policy, sizeof(policy), path, err);
    if (!rc)
        rc = load_workers(root, workers, &n_workers, path, err);
    struct placement *p = NULL;
    if (!rc && (rc = place_new(arch, (int)n_layers, (int)n_expert, n_workers, workers, &p, err)))
        mp_error_wrap(err, "%s: ", path);
    if (!rc) {
        memcpy(p->fingerprint, fingerprint, sizeof(fingerprint));
        memcpy(p->policy, policy, sizeof(policy));
        rc = load_layers(p, root, path, err);
    }
    if (!rc && (rc = place_check_complete(p, err)))
        mp_error_wrap(err, "%s: ", path);
    if (rc) {
        place_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int place_load(const char *path, struct placement **out, struct mp_error *err)
{
    cJSON *root = NULL;
    int rc = json_read_file(path, PLACE_FORMAT, PLACE_VERSION, &root, err);
    if (!rc)
        rc = load_root(root, path, out, err);
    cJSON_Delete(root);
    return rc;
}
