/* coordinator/cluster_args.h: the command-line options that put a command's experts on workers,
 * shared by serve, logits and bench so the three spell and check them alike. */
#ifndef CLUSTER_ARGS_H
#define CLUSTER_ARGS_H

#include <getopt.h>

#include "coordinator/cluster.h"

/* Option codes above any character, so they never collide with a command's short options. */
enum {
    CLUSTER_ARG_ENDPOINT = 0x100,
    CLUSTER_ARG_EXPECT,
    CLUSTER_ARG_WIRE,
    CLUSTER_ARG_KEY,
    CLUSTER_ARG_LOCAL_SHARD,
    CLUSTER_ARG_EXACT,
    CLUSTER_ARG_PLACEMENT,
    CLUSTER_ARG_SPLIT,
};

/* Entries for a command's getopt_long table. */
#define CLUSTER_LONG_OPTIONS                                                                       \
    {"cluster", required_argument, 0, CLUSTER_ARG_ENDPOINT},                                       \
        {"expect-workers", required_argument, 0, CLUSTER_ARG_EXPECT},                              \
        {"wire", required_argument, 0, CLUSTER_ARG_WIRE},                                          \
        {"key", required_argument, 0, CLUSTER_ARG_KEY},                                            \
        {"local-shard", no_argument, 0, CLUSTER_ARG_LOCAL_SHARD},                                  \
        {"exact", no_argument, 0, CLUSTER_ARG_EXACT},                                              \
        {"split", no_argument, 0, CLUSTER_ARG_SPLIT},                                              \
    {                                                                                              \
        "placement", required_argument, 0, CLUSTER_ARG_PLACEMENT                                   \
    }

/* The usage lines; indent: the caller's continuation indent, a string literal. */
#define CLUSTER_USAGE(indent)                                                                      \
    indent "[--cluster tcp://*:PORT --expect-workers N [--wire f32|bf16|f16|q8_0]\n" indent        \
           " [--key FILE] [--local-shard] [--exact] [--split] [--placement FILE]]\n"

/* Applies option code c with its argument: 1 when it was a cluster option, 0 when it is not,
 * -1 for a bad value (expect-workers not a positive number, an unknown wire format). */
int cluster_arg(int c, const char *arg, struct cluster_opts *o);

/* After parsing: -1 when --cluster is given without a valid --expect-workers. */
int cluster_args_check(const struct cluster_opts *o);

#endif
