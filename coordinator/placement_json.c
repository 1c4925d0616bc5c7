/* coordinator/placement_json.c: reading JSON files with cJSON, strictly (see the header). */
#include "coordinator/placement_json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_BYTES (1L << 30)

static int slurp(const char *path, char **text, struct mp_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return mp_error_set(err, MP_EIO, "%s: cannot open: %s", path, strerror(errno));
    long n = -1;
    if (!fseek(f, 0, SEEK_END))
        n = ftell(f);
    if (n < 0 || n > JSON_MAX_BYTES || fseek(f, 0, SEEK_SET)) {
        fclose(f);
        return mp_error_set(err, MP_EIO, "%s: not a readable file of at most 1 GiB", path);
    }
    char *buf = malloc((size_t)n + 1);
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!buf)
        return mp_error_set(err, MP_ENOMEM, "%s: out of memory", path);
    if (got != (size_t)n) {
        free(buf);
        return mp_error_set(err, MP_EIO, "%s: read failed", path);
    }
    buf[n] = 0;
    *text = buf;
    return 0;
}

/* 1-based line of byte offset `at` in text, for syntax errors. */
static int line_of(const char *text, const char *at)
{
    int line = 1;
    for (const char *c = text; c < at && *c; c++)
        line += *c == '\n';
    return line;
}

static int check_header(const cJSON *root, const char *path, const char *format, int version,
                        struct mp_error *err)
{
    if (!cJSON_IsObject(root))
        return mp_error_set(err, MP_ECORRUPT, "%s: not a JSON object", path);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(f) || strcmp(f->valuestring, format))
        return mp_error_set(err, MP_ECORRUPT, "%s: \"format\" must be \"%s\"", path, format);
    uint64_t v;
    if (json_get_u64(root, "version", &v) || v != (uint64_t)version)
        return mp_error_set(err, MP_EUNSUPPORTED, "%s: unsupported version (this moepool reads %d)",
                            path, version);
    return 0;
}

int json_read_file(const char *path, const char *format, int version, cJSON **root,
                   struct mp_error *err)
{
    char *text = NULL;
    int rc = slurp(path, &text, err);
    if (rc)
        return rc;
    const char *end = NULL;
    cJSON *r = cJSON_ParseWithOpts(text, &end, 1);
    if (!r)
        rc = mp_error_set(err, MP_ECORRUPT, "%s:%d: JSON syntax error", path,
                          line_of(text, end ? end : text));
    else
        rc = check_header(r, path, format, version, err);
    free(text);
    if (rc) {
        cJSON_Delete(r);
        return rc;
    }
    *root = r;
    return 0;
}

int json_u64(const cJSON *item, uint64_t *v)
{
    if (!cJSON_IsNumber(item))
        return -1;
    double d = item->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d)
        return -1;
    *v = (uint64_t)d;
    return 0;
}

int json_get_u64(const cJSON *obj, const char *key, uint64_t *v)
{
    return json_u64(cJSON_GetObjectItemCaseSensitive(obj, key), v);
}
