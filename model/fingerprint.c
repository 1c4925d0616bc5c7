/* model/fingerprint.c: see fingerprint.h.
 *
 * The hash runs two 64-bit lanes over the header's 8-byte little-endian words, each lane with its
 * own multiplier and rotation (a multiply-rotate-multiply absorb, as in the common fast hashes),
 * then folds in the tail bytes, the header length and the file size, and finishes each lane with
 * the splitmix64 finaliser so every input bit reaches every output bit. Our own code: a header is
 * a few MB, so speed hardly matters and a library is not worth the dependency. */
#include "model/fingerprint.h"

#include <stdio.h>
#include <string.h>

#define PRIME_A 0x9e3779b97f4a7c15ull
#define PRIME_B 0xc2b2ae3d27d4eb4full
#define PRIME_C 0x165667b19e3779f9ull

static uint64_t rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t finalise(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

struct lanes {
    uint64_t a, b;
};

static void absorb(struct lanes *h, uint64_t w)
{
    h->a = rotl(h->a ^ (w * PRIME_B), 31) * PRIME_A;
    h->b = rotl(h->b ^ (w * PRIME_C), 27) * PRIME_B + PRIME_A;
}

struct model_fingerprint fingerprint_bytes(const void *header, size_t header_len,
                                           uint64_t file_size)
{
    const uint8_t *p = header;
    struct lanes h = {.a = PRIME_C, .b = PRIME_A ^ PRIME_B};
    size_t i = 0;
    for (; i + 8 <= header_len; i += 8)
        absorb(&h, load_le64(p + i));
    uint8_t tail[8] = {0};
    memcpy(tail, p + i, header_len - i);
    absorb(&h, load_le64(tail) ^ ((uint64_t)(header_len - i) << 56));
    absorb(&h, (uint64_t)header_len);
    absorb(&h, file_size);
    return (struct model_fingerprint){.hi = finalise(h.a ^ rotl(h.b, 17)),
                                      .lo = finalise(h.b + h.a)};
}

struct model_fingerprint fingerprint_gguf(const struct gguf_file *f)
{
    return fingerprint_bytes(f->base, (size_t)f->data_offset, (uint64_t)f->size);
}

int fingerprint_file(const char *path, struct model_fingerprint *out, struct mp_error *err)
{
    struct gguf_file *f = NULL;
    int rc = gguf_open(path, &f, err);
    if (rc)
        return rc;
    *out = fingerprint_gguf(f);
    gguf_close(f);
    return 0;
}

void fingerprint_hex(struct model_fingerprint fp, char out[FINGERPRINT_HEX_LEN + 1])
{
    snprintf(out, FINGERPRINT_HEX_LEN + 1, "%016llx%016llx", (unsigned long long)fp.hi,
             (unsigned long long)fp.lo);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int fingerprint_parse(const char *hex, struct model_fingerprint *out, struct mp_error *err)
{
    uint64_t v[2] = {0, 0};
    for (int i = 0; i < FINGERPRINT_HEX_LEN; i++) {
        int d = hex_digit(hex[i]);
        if (d < 0)
            return mp_error_set(err, MP_EINVAL, "fingerprint '%.40s' is not %d hex digits", hex,
                                FINGERPRINT_HEX_LEN);
        v[i / 16] = (v[i / 16] << 4) | (uint64_t)d;
    }
    if (hex[FINGERPRINT_HEX_LEN] != '\0')
        return mp_error_set(err, MP_EINVAL, "fingerprint '%.40s' is not %d hex digits", hex,
                            FINGERPRINT_HEX_LEN);
    *out = (struct model_fingerprint){.hi = v[0], .lo = v[1]};
    return 0;
}

bool fingerprint_eq(struct model_fingerprint a, struct model_fingerprint b)
{
    return a.hi == b.hi && a.lo == b.lo;
}
