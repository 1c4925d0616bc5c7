/* model/stopstr.h: stop strings for streamed text. Text arrives in pieces (one token's bytes at a
 * time); a stop string may span several pieces. The matcher passes text through as soon as it can
 * no longer become part of a stop string, holds back only a tail that is still a prefix of one,
 * and on a match ends the stream with the text before the stop (the stop itself is never output).
 *
 * Memory is allocated once by stopstr_new; pushing never allocates, so a server's decode loop can
 * call it per token. Stop strings are matched byte for byte; since a held tail always starts
 * where a stop string starts, whole UTF-8 characters in give whole characters out. */
#ifndef MP_STOPSTR_H
#define MP_STOPSTR_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

#define STOPSTR_MAX 16       /* stop strings per matcher (OpenAI allows 4) */
#define STOPSTR_MAX_LEN 1024 /* bytes per stop string */

struct stopstr;

/* stops[0..n): non-empty strings (empty ones are refused: MP_EINVAL). max_piece: the longest
 * piece stopstr_push will be given. n == 0 gives a matcher that passes everything through. */
int stopstr_new(const char *const *stops, int n, size_t max_piece, struct stopstr **out,
                struct mp_error *err);
void stopstr_free(struct stopstr *s); /* NULL-safe */
/* Forgets held text and a match, for reuse on another stream. */
void stopstr_reset(struct stopstr *s);

/* Adds piece[0..n) (n <= max_piece). Writes the text now safe to emit to out (which needs
 * stopstr_out_cap bytes) and returns its length. Sets *stopped when a stop string completed:
 * the output ends just before it, and later pushes return 0. */
size_t stopstr_push(struct stopstr *s, const char *piece, size_t n, char *out, bool *stopped);
/* At the end of the stream without a stop: returns the held tail (written to out) and empties
 * it. Returns 0 after a stop. */
size_t stopstr_flush(struct stopstr *s, char *out);
/* Bytes out must have room for. */
size_t stopstr_out_cap(const struct stopstr *s);

#endif
