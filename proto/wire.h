/* proto/wire.h: the formats activations travel in between coordinator and workers
 * (`--wire f32|bf16|f16|q8_0`): hidden states out, partial expert sums back. Rows are encoded
 * with the kernels' own converters (kernels/kq.h), so a row costs wire_row_bytes. */
#ifndef WIRE_H
#define WIRE_H

#include <stddef.h>
#include <stdint.h>

enum wire_type { WIRE_F32 = 0, WIRE_BF16 = 1, WIRE_F16 = 2, WIRE_Q8_0 = 3 };

/* "f32" -> WIRE_F32 ...; -1 for an unknown name. */
int wire_parse(const char *name);
const char *wire_name(enum wire_type w); /* "?" for an unknown value */
/* False for values outside the enum or rows the format cannot hold (q8_0: n % 32). */
int wire_valid(int w, int64_t n);

size_t wire_row_bytes(enum wire_type w, int64_t n);

/* n_rows rows of n floats <-> n_rows * wire_row_bytes bytes. */
void wire_encode(enum wire_type w, const float *x, int n_rows, int64_t n, void *dst);
void wire_decode(enum wire_type w, const void *src, int n_rows, int64_t n, float *y);

#endif
