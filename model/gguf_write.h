/* model/gguf_write.h: a streaming GGUF v3 writer (spec: ../shared/docs/gguf.md §1; mirrors the
 * layout gguf-py's GGUFWriter and ggml's gguf_write_to_file produce).
 *
 * Everything in the header is known before any weight exists: keys are serialized as they are
 * added, tensor infos get their final type, shape and packed, aligned offset at once. gguf_w_open
 * then writes the header and the tensor bytes follow, either in file order (gguf_w_append, which
 * pads each tensor to the alignment) or at any position from any number of threads
 * (gguf_w_write_at, for writers that produce tensors in parallel). So a model of many GiB is
 * written through a bounded buffer; the writer itself holds only the header.
 *
 * Errors (MP_EIO with the path and strerror; disk full included) leave the writer unusable; the
 * caller then calls gguf_w_abort, which removes the partial file. Reading back is gguf.h's job. */
#ifndef GGUF_WRITE_H
#define GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/gguf.h"

struct gguf_writer;

struct gguf_writer *gguf_w_new(void); /* NULL when out of memory */
void gguf_w_free(struct gguf_writer *w); /* NULL-safe; closes (and keeps) an open file */

/* Keys, in the order they will appear. Scalars: `value` points to a value of the C type of
 * `type` (uint8_t for GGUF_U8, bool for GGUF_BOOL, float for GGUF_F32, ...; not STRING/ARRAY).
 * Duplicate or empty keys give MP_EINVAL. */
int gguf_w_add_scalar(struct gguf_writer *w, const char *key, enum gguf_vtype type,
                      const void *value, struct mp_error *err);
int gguf_w_add_u32(struct gguf_writer *w, const char *key, uint32_t v, struct mp_error *err);
int gguf_w_add_f32(struct gguf_writer *w, const char *key, float v, struct mp_error *err);
int gguf_w_add_bool(struct gguf_writer *w, const char *key, bool v, struct mp_error *err);
int gguf_w_add_str(struct gguf_writer *w, const char *key, const char *s, struct mp_error *err);
/* An array of n scalars of elem_type, stored contiguously in their C type at data. */
int gguf_w_add_arr(struct gguf_writer *w, const char *key, enum gguf_vtype elem_type,
                   const void *data, uint64_t n, struct mp_error *err);
/* An array of n NUL-terminated strings. */
int gguf_w_add_arr_str(struct gguf_writer *w, const char *key, const char *const *strs,
                       uint64_t n, struct mp_error *err);

/* Declares the next tensor (file order = call order): its final ggml type and shape (ne[0] the
 * contiguous dimension). Returns its index (>= 0) or MP_EINVAL for a duplicate or too long name,
 * a bad shape, or ne[0] not a multiple of the type's block. Only before gguf_w_open. */
int gguf_w_add_tensor(struct gguf_writer *w, const char *name, int n_dims, const int64_t *ne,
                      uint32_t type, struct mp_error *err);

int gguf_w_n_tensors(const struct gguf_writer *w);
uint64_t gguf_w_tensor_bytes(const struct gguf_writer *w, int ti); /* unpadded size */
uint64_t gguf_w_file_bytes(const struct gguf_writer *w);           /* whole file, padded */
uint64_t gguf_w_data_offset(const struct gguf_writer *w);          /* start of tensor data */

/* Creates (truncates) path and writes the header and its padding. */
int gguf_w_open(struct gguf_writer *w, const char *path, struct mp_error *err);

/* Sequential streaming: the next n bytes of tensor data, in tensor order; a tensor's alignment
 * padding is written when its last byte arrives. Writing past the last tensor is MP_EINVAL. */
int gguf_w_append(struct gguf_writer *w, const void *buf, size_t n, struct mp_error *err);

/* Positional: n bytes at byte `off` of tensor ti. Safe to call from several threads at once for
 * disjoint ranges; do not mix with gguf_w_append on one writer. */
int gguf_w_write_at(struct gguf_writer *w, int ti, uint64_t off, const void *buf, size_t n,
                    struct mp_error *err);

/* Checks that every tensor received exactly its size, writes the padding, closes the file and
 * reports close errors (a full disk may only show here). */
int gguf_w_finish(struct gguf_writer *w, struct mp_error *err);

/* Closes and deletes a partially written file. NULL-safe; harmless after gguf_w_finish fails. */
void gguf_w_abort(struct gguf_writer *w);

#endif
