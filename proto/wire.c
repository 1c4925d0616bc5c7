/* proto/wire.c: see wire.h. Each format is a kq type, so encoding is the kernels' from_f32 and
 * decoding their to_f32; f32 is a plain copy. */
#include "proto/wire.h"

#include <string.h>

#include "kernels/kq.h"

static const struct {
    const char *name;
    enum kq_type kq;
} formats[] = {
    [WIRE_F32] = {"f32", KQ_F32},
    [WIRE_BF16] = {"bf16", KQ_BF16},
    [WIRE_F16] = {"f16", KQ_F16},
    [WIRE_Q8_0] = {"q8_0", KQ_Q8_0},
};
#define N_FORMATS ((int)(sizeof(formats) / sizeof(formats[0])))

int wire_parse(const char *name)
{
    for (int i = 0; name && i < N_FORMATS; i++)
        if (!strcmp(name, formats[i].name))
            return i;
    return -1;
}

const char *wire_name(enum wire_type w)
{
    return (int)w >= 0 && (int)w < N_FORMATS ? formats[w].name : "?";
}

int wire_valid(int w, int64_t n)
{
    return w >= 0 && w < N_FORMATS && n > 0 && kq_row_bytes(formats[w].kq, n) > 0;
}

size_t wire_row_bytes(enum wire_type w, int64_t n)
{
    return kq_row_bytes(formats[w].kq, n);
}

void wire_encode(enum wire_type w, const float *x, int n_rows, int64_t n, void *dst)
{
    if (w == WIRE_F32) {
        memcpy(dst, x, (size_t)n_rows * (size_t)n * sizeof(float));
        return;
    }
    const struct kq_format *f = kq_format(formats[w].kq);
    const size_t row = wire_row_bytes(w, n);
    for (int r = 0; r < n_rows; r++)
        f->from_f32(x + (size_t)r * n, (uint8_t *)dst + (size_t)r * row, n);
}

void wire_decode(enum wire_type w, const void *src, int n_rows, int64_t n, float *y)
{
    if (w == WIRE_F32) {
        memcpy(y, src, (size_t)n_rows * (size_t)n * sizeof(float));
        return;
    }
    const struct kq_format *f = kq_format(formats[w].kq);
    const size_t row = wire_row_bytes(w, n);
    for (int r = 0; r < n_rows; r++)
        f->to_f32((const uint8_t *)src + (size_t)r * row, y + (size_t)r * n, n);
}
