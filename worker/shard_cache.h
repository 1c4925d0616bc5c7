/* worker/shard_cache.h: a worker's copy of the parts of a model file it needs, for workers that
 * do not have the GGUF file.
 *
 * The coordinator streams the header bytes (0 .. data_offset) and the shard's expert ranges; the
 * worker keeps them in a sparse file DIR/<fingerprint>.gguf, each range at its real offset and the
 * file truncated to the real size, so model_open and shard_load read it unchanged (bytes never
 * written read as zeros: the non-expert tensors a worker never uses). A record
 * DIR/<fingerprint>.ranges lists the ranges present, so a restart fetches only what is missing.
 * Data is made durable (fdatasync) before the record names it: after a crash the record may miss
 * a range that is present, never claim one that is not. A worker receiving the header can check
 * it against the coordinator's fingerprint with fingerprint_bytes before writing it.
 *
 * Default DIR: $XDG_CACHE_HOME/moepool, else $HOME/.cache/moepool. */
#ifndef SHARD_CACHE_H
#define SHARD_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/expert_table.h"
#include "model/fingerprint.h"

struct shard_cache;

/* Writes the default directory into buf (created on open, not here). */
int shard_cache_default_dir(char *buf, size_t n, struct mp_error *err);

/* Opens DIR/<fp>.gguf, creating DIR and the file (sized file_size) when absent. An existing file of
 * another size is refused (MP_ECORRUPT). dir NULL: the default directory. */
int shard_cache_open(const char *dir, struct model_fingerprint fp, uint64_t file_size,
                     struct shard_cache **out, struct mp_error *err);
/* Syncs (as shard_cache_sync) and closes; NULL-safe. */
void shard_cache_close(struct shard_cache *c);

/* The cache file's path, for model_open / shard_load. */
const char *shard_cache_path(const struct shard_cache *c);

/* The parts of want[0..n) not yet recorded present, merged and in offset order; *missing is
 * malloc'ed (NULL when nothing is missing). */
int shard_cache_missing(const struct shard_cache *c, const struct file_range *want, size_t n,
                        struct file_range **missing, size_t *n_missing, struct mp_error *err);

/* Writes len bytes at offset (any chunk of a range, any order). The bytes count as present once
 * shard_cache_sync returns. Out-of-file writes are refused (MP_ERANGE). */
int shard_cache_write(struct shard_cache *c, uint64_t offset, const void *data, size_t len,
                      struct mp_error *err);

/* Marks everything written so far complete: fdatasync of the data, then the record. */
int shard_cache_sync(struct shard_cache *c, struct mp_error *err);

/* Checks that the file can stand in for the model: its header parses, the header bytes
 * [0, data_offset) are recorded present and their fingerprint is the cache's. */
int shard_cache_check_header(const struct shard_cache *c, struct mp_error *err);

/* The file ranges a worker holding experts[0..n) of m needs: the header [0, data_offset) and each
 * expert's gate/up/down slices, merged and in offset order (*out malloc'ed). The worker computes
 * it once the header is cached (model_open on the cache file), then asks for what is missing. */
int shard_file_ranges(const struct model *m, const struct expert_ref *experts, size_t n,
                      struct file_range **out, size_t *n_out, struct mp_error *err);

#endif
