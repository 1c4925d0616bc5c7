/* model/gguf.h: a validating reader for GGUF v2/v3 files (spec: ../shared/docs/gguf.md §1).
 *
 * The file is memory-mapped once; keys, strings and tensor data are views into that mapping, so
 * weights are never copied. Every count, length, offset and size is checked against the bytes
 * that are really there (and for overflow) before use: a parsed struct gguf_file can be trusted by
 * the rest of the program. Errors name the file and the offending key or tensor. */
#ifndef GGUF_H
#define GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4
#define GGUF_NAME_MAX 64 /* tensor names: at most 63 bytes, as ggml's GGML_MAX_NAME */

enum gguf_vtype {
    GGUF_U8 = 0,
    GGUF_I8 = 1,
    GGUF_U16 = 2,
    GGUF_I16 = 3,
    GGUF_U32 = 4,
    GGUF_I32 = 5,
    GGUF_F32 = 6,
    GGUF_BOOL = 7,
    GGUF_STRING = 8,
    GGUF_ARRAY = 9,
    GGUF_U64 = 10,
    GGUF_I64 = 11,
    GGUF_F64 = 12,
    GGUF_VTYPE_COUNT
};

/* A string inside the mapping: not NUL-terminated. */
struct gguf_str {
    const char *ptr;
    uint64_t len;
};

struct gguf_value {
    uint32_t type; /* enum gguf_vtype */
    union {
        uint64_t u;        /* U8, U16, U32, U64, BOOL */
        int64_t i;         /* I8, I16, I32, I64 */
        double f;          /* F32, F64 */
        struct gguf_str s; /* STRING */
        struct {
            uint32_t type;              /* element type (never ARRAY) */
            uint64_t n;                 /* element count */
            const void *data;           /* raw little-endian elements (may be unaligned) */
            const struct gguf_str *str; /* for STRING arrays: n views, owned by the file */
        } arr;
    };
};

struct gguf_kv {
    struct gguf_str key;
    struct gguf_value v;
};

struct gguf_tensor {
    char name[GGUF_NAME_MAX]; /* NUL-terminated copy */
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] contiguous; unused dims are 1 */
    uint32_t type;             /* ggml type id, see kernels/kq.h */
    uint64_t offset;           /* from the start of the data section */
    uint64_t n_bytes;
    int64_t n_elements;
    const uint8_t *data; /* inside the mapping */
};

struct gguf_file {
    char *path;
    uint32_t version;
    uint64_t n_kv;
    uint64_t n_tensors;
    struct gguf_kv *kv;
    struct gguf_tensor *tensors; /* in file order */
    uint64_t alignment;
    uint64_t data_offset; /* start of the tensor data section in the file */
    const uint8_t *base;  /* the whole file */
    size_t size;
    /* private */
    uint32_t *by_name;       /* tensor indices sorted by name, for lookups */
    struct gguf_str *strs;   /* storage for string-array views */
    bool mapped;
};

/* Maps and validates a file. On failure returns a negative MP_E* and fills err. */
int gguf_open(const char *path, struct gguf_file **out, struct mp_error *err);

/* Validates a buffer the caller keeps alive (fuzzing, tests); label names it in errors. */
int gguf_parse(const void *buf, size_t size, const char *label, struct gguf_file **out,
               struct mp_error *err);

void gguf_close(struct gguf_file *f); /* NULL-safe */

const struct gguf_kv *gguf_find(const struct gguf_file *f, const char *key);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name);

/* Typed getters: 0 on success, MP_ENOTFOUND if the key is absent (err untouched), MP_ECORRUPT
 * with a message if it has the wrong type. Integers of any width and signedness are accepted. */
int gguf_get_int(const struct gguf_file *f, const char *key, int64_t *out, struct mp_error *err);
int gguf_get_float(const struct gguf_file *f, const char *key, double *out, struct mp_error *err);
int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out, struct mp_error *err);
int gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *out,
                 struct mp_error *err);
int gguf_get_arr(const struct gguf_file *f, const char *key, const struct gguf_value **out,
                 struct mp_error *err);

/* Elements of a validated array (any integer type / F32 or F64); i < arr.n. */
bool gguf_vtype_is_int(uint32_t type);
int64_t gguf_arr_int(const struct gguf_value *v, uint64_t i);
double gguf_arr_float(const struct gguf_value *v, uint64_t i);

bool gguf_str_eq(struct gguf_str s, const char *cstr);
const char *gguf_vtype_name(uint32_t type);

#endif
