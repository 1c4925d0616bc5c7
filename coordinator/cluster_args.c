/* coordinator/cluster_args.c: see cluster_args.h. */
#include "coordinator/cluster_args.h"

#include <limits.h>
#include <stdlib.h>

int cluster_arg(int c, const char *arg, struct cluster_opts *o)
{
    char *end;
    long n;
    int w;
    switch (c) {
    case CLUSTER_ARG_ENDPOINT: o->endpoint = arg; return 1;
    case CLUSTER_ARG_EXPECT:
        n = strtol(arg, &end, 10);
        if (end == arg || *end || n < 1 || n > INT_MAX) /* cluster_start names the limit */
            return -1;
        o->expect_workers = (int)n;
        return 1;
    case CLUSTER_ARG_WIRE:
        if ((w = wire_parse(arg)) < 0)
            return -1;
        o->wire = (enum wire_type)w;
        return 1;
    case CLUSTER_ARG_KEY: o->key_file = arg; return 1;
    case CLUSTER_ARG_LOCAL_SHARD: o->local_shard = true; return 1;
    case CLUSTER_ARG_EXACT: o->exact = true; return 1;
    case CLUSTER_ARG_SPLIT: o->split = true; return 1;
    case CLUSTER_ARG_PLACEMENT: o->placement_file = arg; return 1;
    default: return 0;
    }
}

int cluster_args_check(const struct cluster_opts *o)
{
    return o->endpoint && o->expect_workers < 1 ? -1 : 0;
}
