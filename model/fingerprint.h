/* model/fingerprint.h: a model file's identity, so a worker holding a different file (or a stale
 * cache) is refused instead of computing wrong numbers.
 *
 * The fingerprint is a 128-bit hash of the GGUF header bytes, from the magic to the start of the
 * tensor data (metadata, tensor infos and the alignment padding), together with the file size.
 * The header names every tensor with its type, shape and offset, and the metadata carries the
 * tokenizer, so two files that agree on it and on their size are the same model for moepool's
 * purposes. Reading the header only keeps it cheap: a few MB for a 30B model, never tensor data.
 * It is not cryptographic: it catches mistakes, not adversaries. */
#ifndef FINGERPRINT_H
#define FINGERPRINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/gguf.h"

#define FINGERPRINT_HEX_LEN 32 /* hex digits, without the NUL */

struct model_fingerprint {
    uint64_t hi, lo;
};

/* From header bytes [0, header_len) (header_len = the file's data_offset) and the file size:
 * what a worker that was sent the header computes. */
struct model_fingerprint fingerprint_bytes(const void *header, size_t header_len,
                                           uint64_t file_size);

/* From an open GGUF file (its mapping's first data_offset bytes and its size). */
struct model_fingerprint fingerprint_gguf(const struct gguf_file *f);

/* Opens path, validates its header and fingerprints it. */
int fingerprint_file(const char *path, struct model_fingerprint *out, struct mp_error *err);

/* 32 lowercase hex digits + NUL. */
void fingerprint_hex(struct model_fingerprint fp, char out[FINGERPRINT_HEX_LEN + 1]);

/* Parses the hex form; MP_EINVAL unless exactly 32 hex digits. */
int fingerprint_parse(const char *hex, struct model_fingerprint *out, struct mp_error *err);

bool fingerprint_eq(struct model_fingerprint a, struct model_fingerprint b);

#endif
