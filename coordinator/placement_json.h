/* coordinator/placement_json.h: the small cJSON helpers the placement and routing-stats files
 * share: read a whole file into a checked root object, and read counts exactly. */
#ifndef PLACEMENT_JSON_H
#define PLACEMENT_JSON_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "base/err.h"

/* Parses path (at most 1 GiB) into *root, which must be an object whose "format" is format and
 * whose "version" is version. Errors name the file (and the line of a syntax error). */
int json_read_file(const char *path, const char *format, int version, cJSON **root,
                   struct mp_error *err);

/* A non-negative integral number exactly representable in a double (<= 2^53): 0, else -1. */
int json_u64(const cJSON *item, uint64_t *v);
/* The same for obj's member key (-1 when missing). */
int json_get_u64(const cJSON *obj, const char *key, uint64_t *v);

#endif
