/* coordinator/placement_plan.c: the placement policies (see the header), the --workers spec
 * and size parsing. */
#include "coordinator/placement_plan.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLACE_MAX_LAYERS_PLAN 1024

static const char *const policy_names[] = {"contiguous", "striped", "capacity", "balanced"};

int plan_parse_policy(const char *s, enum plan_policy *out)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, policy_names[i])) {
            *out = (enum plan_policy)i;
            return 0;
        }
    if (!strcmp(s, "capacity-weighted")) {
        *out = PLAN_CAPACITY;
        return 0;
    }
    return -1;
}

const char *plan_policy_name(enum plan_policy p)
{
    return policy_names[p];
}

/* ---- parsing ---- */

int plan_parse_size(const char *s, uint64_t *bytes)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0) || isspace((unsigned char)*s))
        return -1;
    static const char units[] = "KMGT";
    double scale = 1;
    const char *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    if (u) {
        scale = pow(1024, (double)(u - units + 1));
        end++;
        if (!strcmp(end, "iB") || !strcmp(end, "B"))
            end += strlen(end);
    } else if (!strcmp(end, "B")) {
        end++;
    }
    if (*end || v * scale > 1e18)
        return -1;
    *bytes = (uint64_t)(v * scale);
    return 0;
}

/* One "NAME[:mem=SIZE][:cores=N]" item (item is modified). */
static int parse_worker(char *item, struct place_worker *w, struct mp_error *err)
{
    char *save = NULL, *name = strtok_r(item, ":", &save), *opt;
    if (!name || strlen(name) >= sizeof(w->name))
        return mp_error_set(err, MP_EINVAL, "--workers: bad worker '%s'", item);
    snprintf(w->name, sizeof(w->name), "%s", name);
    while ((opt = strtok_r(NULL, ":", &save))) {
        char *end;
        if (!strncmp(opt, "mem=", 4) && !plan_parse_size(opt + 4, &w->mem_bytes) && w->mem_bytes)
            continue;
        if (!strncmp(opt, "cores=", 6)) {
            long c = strtol(opt + 6, &end, 10);
            if (end != opt + 6 && !*end && c > 0 && c <= 1 << 20) {
                w->cores = (int)c;
                continue;
            }
        }
        return mp_error_set(err, MP_EINVAL,
                            "--workers: worker %s: bad option '%s' (mem=SIZE such as 8G, cores=N)",
                            w->name, opt);
    }
    return 0;
}

static int parse_count(const char *spec, struct place_worker *workers, int *n)
{
    char *end;
    long count = strtol(spec, &end, 10);
    if (end == spec || *end || count < 1 || count > PLACE_MAX_WORKERS)
        return -1;
    for (int i = 0; i < count; i++)
        workers[i] = (struct place_worker){0};
    for (int i = 0; i < count; i++)
        snprintf(workers[i].name, sizeof(workers[i].name), "w%d", i + 1);
    *n = (int)count;
    return 0;
}

int plan_parse_workers(const char *spec, struct place_worker *workers, int *n_workers,
                       struct mp_error *err)
{
    if (spec[0] && strspn(spec, "0123456789") == strlen(spec)) {
        if (parse_count(spec, workers, n_workers))
            return mp_error_set(err, MP_ERANGE, "--workers %s: 1 to %d workers", spec,
                                PLACE_MAX_WORKERS);
        return 0;
    }
    char *copy = strdup(spec), *save = NULL, *item;
    if (!copy)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    int n = 0, rc = 0;
    for (item = strtok_r(copy, ",", &save); item && !rc; item = strtok_r(NULL, ",", &save)) {
        if (n == PLACE_MAX_WORKERS) {
            rc = mp_error_set(err, MP_ERANGE, "--workers: more than %d workers", PLACE_MAX_WORKERS);
            break;
        }
        workers[n] = (struct place_worker){0};
        rc = parse_worker(item, &workers[n++], err);
    }
    free(copy);
    if (!rc && n == 0)
        rc = mp_error_set(err, MP_EINVAL, "--workers: no workers in '%s'", spec);
    *n_workers = n;
    return rc;
}

/* ---- shared planner state ---- */

struct planner {
    const struct model *m;
    const struct plan_request *req;
    struct placement *p;
    uint64_t ebytes[PLACE_MAX_LAYERS_PLAN]; /* bytes of one expert per MoE layer */
    uint64_t used[PLACE_MAX_WORKERS];       /* bytes given to each worker so far */
    double share[PLACE_MAX_WORKERS];        /* capacity share of expert bytes, sums to 1 */
};

static bool has_room(const struct planner *pl, int w, int l)
{
    uint64_t mem = pl->req->workers[w].mem_bytes;
    return !mem || pl->used[w] + pl->ebytes[l] <= mem;
}

static void give(struct planner *pl, int l, int e, int w)
{
    place_add(pl->p, l, e, w);
    pl->used[w] += pl->ebytes[l];
}

/* "1.5 GiB", "12.0 MiB": sizes in errors, readable for tiny test models and real ones. */
static const char *fmt_bytes(uint64_t bytes, char *buf, size_t n)
{
    double mib = (double)bytes / (1024.0 * 1024);
    if (mib >= 1024)
        snprintf(buf, n, "%.2f GiB", mib / 1024);
    else
        snprintf(buf, n, "%.1f MiB", mib);
    return buf;
}

static int no_room(const struct planner *pl, int l, int e, struct mp_error *err)
{
    char b[32];
    return mp_error_set(err, MP_ERANGE,
                        "%s: layer %d expert %d (%s) fits on no worker: the experts do not fit "
                        "in the workers' memory",
                        plan_policy_name(pl->req->policy), l, e,
                        fmt_bytes(pl->ebytes[l], b, sizeof(b)));
}

/* The model's expert bytes (times replicas) against the workers' memory when all is known. */
static int check_fits(const struct planner *pl, struct mp_error *err)
{
    uint64_t need = 0, have = 0;
    char b0[32], b1[32];
    for (int l = 0; l < pl->p->n_moe_layers; l++)
        need += pl->ebytes[l] * (uint64_t)pl->p->n_expert * (uint64_t)pl->req->replicate;
    for (int w = 0; w < pl->req->n_workers; w++) {
        if (!pl->req->workers[w].mem_bytes)
            return 0;
        have += pl->req->workers[w].mem_bytes;
    }
    if (need > have)
        return mp_error_set(err, MP_ERANGE,
                            "the experts do not fit: they need %s (x%d replicas), the workers "
                            "have %s together",
                            fmt_bytes(need / (uint64_t)pl->req->replicate, b0, sizeof(b0)),
                            pl->req->replicate, fmt_bytes(have, b1, sizeof(b1)));
    return 0;
}

/* ---- capacity shares ---- */

/* Water-filling: shares follow speed; a worker whose share would exceed its memory is capped
 * there and the rest is spread over the others again. */
static void capacity_shares(struct planner *pl, uint64_t total)
{
    const struct plan_request *r = pl->req;
    double speed[PLACE_MAX_WORKERS], left = (double)total;
    bool capped[PLACE_MAX_WORKERS] = {0};
    place_speeds(r->workers, r->n_workers, speed);
    for (bool changed = true; changed;) {
        changed = false;
        double sum = 0;
        for (int w = 0; w < r->n_workers; w++)
            sum += capped[w] ? 0 : speed[w];
        for (int w = 0; w < r->n_workers && sum > 0; w++) {
            double mem = (double)r->workers[w].mem_bytes;
            if (capped[w])
                continue;
            pl->share[w] = left * speed[w] / sum;
            if (mem > 0 && pl->share[w] > mem) {
                pl->share[w] = mem;
                capped[w] = changed = true;
                left -= mem;
                break;
            }
        }
    }
    for (int w = 0; w < r->n_workers; w++)
        pl->share[w] = total ? pl->share[w] / (double)total : 1.0 / r->n_workers;
}

/* ---- policies ---- */

/* contiguous and striped: a fixed primary, replicas on the following workers. */
static int plan_fixed(struct planner *pl, struct mp_error *err)
{
    const int n_w = pl->req->n_workers, n_e = pl->p->n_expert;
    char b[32];
    for (int l = 0; l < pl->p->n_moe_layers; l++)
        for (int e = 0; e < n_e; e++) {
            int primary = pl->req->policy == PLAN_STRIPED ? e % n_w : (int)((int64_t)e * n_w / n_e);
            for (int r = 0; r < pl->req->replicate; r++) {
                int w = (primary + r) % n_w;
                if (!has_room(pl, w, l))
                    return mp_error_set(err, MP_ERANGE,
                                        "%s: worker %s cannot hold its share (memory %s); try "
                                        "--policy capacity",
                                        plan_policy_name(pl->req->policy), pl->req->workers[w].name,
                                        fmt_bytes(pl->req->workers[w].mem_bytes, b, sizeof(b)));
                give(pl, l, e, w);
            }
        }
    return 0;
}

/* capacity: smooth weighted round robin over (layer, expert) slots with the shares as weights,
 * skipping workers without room or already holding the expert. */
static int plan_capacity(struct planner *pl, struct mp_error *err)
{
    const int n_w = pl->req->n_workers;
    double current[PLACE_MAX_WORKERS] = {0};
    for (int l = 0; l < pl->p->n_moe_layers; l++)
        for (int e = 0; e < pl->p->n_expert; e++)
            for (int r = 0; r < pl->req->replicate; r++) {
                int best = -1;
                for (int w = 0; w < n_w; w++) {
                    current[w] += pl->share[w];
                    if (has_room(pl, w, l) && !place_holds(pl->p, l, e, w) &&
                        (best < 0 || current[w] > current[best]))
                        best = w;
                }
                if (best < 0)
                    return no_room(pl, l, e, err);
                current[best] -= 1.0;
                give(pl, l, e, best);
            }
    return 0;
}

struct ranked {
    int e;
    double a;
};

static int by_activations_desc(const void *x, const void *y)
{
    const struct ranked *a = x, *b = y;
    return a->a < b->a ? 1 : a->a > b->a ? -1 : a->e - b->e;
}

/* Most tolerable next holder of a replica carrying a activations in layer l: lowest expected
 * load relative to share, then fewest experts relative to share, then lowest index. cap limits
 * expert counts (memory evenness) unless ignore_cap. */
static int pick_balanced(const struct planner *pl, int l, int e, double a, const double *load,
                         const int *count, const int *cap, bool ignore_cap)
{
    int best = -1;
    double best_load = 0, best_count = 0;
    for (int w = 0; w < pl->req->n_workers; w++) {
        if (!has_room(pl, w, l) || place_holds(pl->p, l, e, w) ||
            (!ignore_cap && count[w] >= cap[w]))
            continue;
        double lw = (load[w] + a) / pl->share[w], cw = (count[w] + 1) / pl->share[w];
        if (best < 0 || lw < best_load || (lw == best_load && cw < best_count)) {
            best = w;
            best_load = lw;
            best_count = cw;
        }
    }
    return best;
}

/* Co-activations of expert x with the experts of worker w (other than x itself). */
static double affinity(const struct planner *pl, int l, int x, int w)
{
    double sum = 0;
    for (int c = 0; c < pl->p->n_expert; c++)
        if (c != x && place_holds(pl->p, l, c, w))
            sum += (double)rstats_pair(pl->req->stats, l, x, c);
    return sum;
}

static int owner(const struct planner *pl, int l, int e)
{
    return __builtin_ctzll(place_holders(pl->p, l, e));
}

/* Swaps experts a and b (on different workers) when more tokens then find their experts on one
 * worker, and the busier of the two workers stays within the layer's limit. Returns 1 if done. */
static int try_swap(struct planner *pl, int l, int a, int b, double *load, double limit)
{
    const struct routing_stats *s = pl->req->stats;
    int wa = owner(pl, l, a), wb = owner(pl, l, b);
    if (wa == wb)
        return 0;
    double ca = (double)rstats_count(s, l, a), cb = (double)rstats_count(s, l, b);
    double new_a = load[wa] - ca + cb, new_b = load[wb] - cb + ca;
    if ((new_a > limit && new_a > load[wa]) || (new_b > limit && new_b > load[wb]))
        return 0;
    double gain = affinity(pl, l, a, wb) + affinity(pl, l, b, wa) - affinity(pl, l, a, wa) -
                  affinity(pl, l, b, wb) - 2 * (double)rstats_pair(s, l, a, b);
    if (gain <= 0)
        return 0;
    pl->p->holders[(int64_t)l * pl->p->n_expert + a] = 1ull << wb;
    pl->p->holders[(int64_t)l * pl->p->n_expert + b] = 1ull << wa;
    load[wa] = new_a;
    load[wb] = new_b;
    return 1;
}

/* Co-activation pass (single copies only): a worker receives one copy of a token's hidden state
 * however many of its experts the token uses, so experts often chosen together save traffic
 * when they share a worker. Pairwise swaps keep expert counts (memory) and may let the busiest
 * worker's load grow by at most 1% of the layer's mean: a layer's time is set by its busiest
 * worker, so balance stays first and locality takes only what is nearly free. */
static void keep_pairs_together(struct planner *pl, int l, double *load)
{
    double max = 0, total = 0;
    for (int w = 0; w < pl->req->n_workers; w++) {
        max = load[w] > max ? load[w] : max;
        total += load[w];
    }
    const double limit = max + 0.01 * total / pl->req->n_workers;
    for (int pass = 0, swapped = 1; swapped && pass < 8; pass++) {
        swapped = 0;
        for (int a = 0; a < pl->p->n_expert; a++)
            for (int b = a + 1; b < pl->p->n_expert; b++)
                swapped += try_swap(pl, l, a, b, load, limit);
    }
}

/* balanced, one layer: largest-first greedy (LPT) onto the least-loaded worker. */
static int plan_balanced_layer(struct planner *pl, int l, struct ranked *rank, struct mp_error *err)
{
    const int n_e = pl->p->n_expert, n_r = pl->req->replicate;
    double load[PLACE_MAX_WORKERS] = {0};
    int count[PLACE_MAX_WORKERS] = {0}, cap[PLACE_MAX_WORKERS];
    /* Expert counts may exceed the capacity share by 1/8: a little memory unevenness buys
     * freedom to even out load (a cold expert costs memory but no time). */
    for (int w = 0; w < pl->req->n_workers; w++) {
        double fair = pl->share[w] * n_e * n_r;
        cap[w] = (int)ceil(fair + fair / 8);
    }
    for (int e = 0; e < n_e; e++)
        rank[e] = (struct ranked){e, (double)rstats_count(pl->req->stats, l, e)};
    qsort(rank, (size_t)n_e, sizeof(*rank), by_activations_desc);
    for (int i = 0; i < n_e; i++)
        for (int r = 0; r < n_r; r++) {
            double a = rank[i].a / n_r;
            int w = pick_balanced(pl, l, rank[i].e, a, load, count, cap, false);
            if (w < 0)
                w = pick_balanced(pl, l, rank[i].e, a, load, count, cap, true);
            if (w < 0)
                return no_room(pl, l, rank[i].e, err);
            load[w] += a;
            count[w]++;
            give(pl, l, rank[i].e, w);
        }
    if (n_r == 1 && !pl->req->no_pairs)
        keep_pairs_together(pl, l, load);
    return 0;
}

static int plan_balanced(struct planner *pl, struct mp_error *err)
{
    const struct routing_stats *s = pl->req->stats;
    int rc = 0;
    if (!s)
        return mp_error_set(err, MP_EINVAL, "balanced: needs routing statistics (--stats FILE)");
    if ((rc = place_check_stats(pl->p, s, err)))
        return rc;
    struct ranked *rank = malloc((size_t)pl->p->n_expert * sizeof(*rank));
    if (!rank)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    for (int l = 0; l < pl->p->n_moe_layers && !rc; l++)
        rc = plan_balanced_layer(pl, l, rank, err);
    free(rank);
    return rc;
}

static int run_policy(struct planner *pl, struct mp_error *err)
{
    switch (pl->req->policy) {
    case PLAN_CONTIGUOUS:
    case PLAN_STRIPED: return plan_fixed(pl, err);
    case PLAN_CAPACITY: return plan_capacity(pl, err);
    case PLAN_BALANCED: return plan_balanced(pl, err);
    }
    return mp_error_set(err, MP_EINVAL, "unknown policy");
}

int plan_make(const struct model *m, const struct plan_request *req, struct placement **out,
              struct mp_error *err)
{
    if (req->replicate < 1 || req->replicate > req->n_workers)
        return mp_error_set(err, MP_ERANGE,
                            "--replicate %d: must be 1 to the number of workers (%d)",
                            req->replicate, req->n_workers);
    if (m->n_moe_layers > PLACE_MAX_LAYERS_PLAN)
        return mp_error_set(err, MP_ERANGE, "%d MoE layers: too many", m->n_moe_layers);
    struct planner *pl = calloc(1, sizeof(*pl));
    if (!pl)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    *pl = (struct planner){.m = m, .req = req};
    int rc = place_new_for_model(m, req->n_workers, req->workers, &pl->p, err);
    uint64_t total = 0;
    for (int l = 0; !rc && l < m->n_moe_layers; l++) {
        pl->ebytes[l] = place_expert_bytes(m, l);
        total += pl->ebytes[l] * (uint64_t)m->hp.n_expert * (uint64_t)req->replicate;
    }
    if (!rc && !(rc = check_fits(pl, err))) {
        capacity_shares(pl, total);
        snprintf(pl->p->policy, sizeof(pl->p->policy), "%s", plan_policy_name(req->policy));
        rc = run_policy(pl, err);
    }
    if (!rc)
        rc = place_check_complete(pl->p, err);
    if (rc)
        place_free(pl->p);
    else
        *out = pl->p;
    free(pl);
    return rc;
}
