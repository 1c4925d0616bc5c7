/* proto/wire_test.c: every wire format round-trips rows within its format's rounding, and f32
 * exactly. */
#include <math.h>
#include <stdlib.h>

#include "base/check.h"
#include "kernels/kq.h"
#include "proto/wire.h"

int main(void)
{
    kq_init();
    enum { N = 256, ROWS = 3 };
    static float x[ROWS * N], y[ROWS * N];
    static unsigned char buf[ROWS * N * 4];
    for (int i = 0; i < ROWS * N; i++)
        x[i] = sinf((float)i * 0.37f) * (float)(1 + i % 7);
    /* Bounds relative to the row's largest magnitude: bf16 keeps 8 significant bits (2^-8),
     * f16 11 (2^-11), q8_0 rounds to steps of d = block max / 127 (half a step: 1/254) and
     * stores d as f16 (2^-11 relative, times up to 127 steps: another 2^-11 of the maximum). */
    const struct { const char *name; double rel; } cases[] = {
        {"f32", 0}, {"bf16", 1.0 / 256}, {"f16", 1.0 / 2048}, {"q8_0", 1.0 / 254 + 1.0 / 2048}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        int w = wire_parse(cases[c].name);
        CHECK(w >= 0 && wire_valid(w, N), "%s", cases[c].name);
        wire_encode(w, x, ROWS, N, buf);
        wire_decode(w, buf, ROWS, N, y);
        double worst = 0;
        for (int i = 0; i < ROWS * N; i++)
            worst = fmax(worst, fabs((double)y[i] - x[i]) / 7.0);
        CHECK(worst <= cases[c].rel, "%s: error %g > %g", cases[c].name, worst, cases[c].rel);
    }
    CHECK(wire_row_bytes(WIRE_F32, N) == N * 4, "f32 row");
    CHECK(wire_row_bytes(WIRE_Q8_0, N) == N / 32 * 34, "q8_0 row");
    CHECK(!wire_valid(WIRE_Q8_0, 33), "q8_0 needs whole blocks");
    CHECK(!wire_valid(7, N) && wire_parse("f8") == -1, "unknown formats");
    return failures != 0;
}
