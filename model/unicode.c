/* model/unicode.c: UTF-8 decoding, code point classes and the GPT-2 byte mapping (unicode.h).
 *
 * Spec: docs/tokenizer.md §2-3, mirroring llama.cpp src/unicode.cpp. The class ranges live in the
 * generated unicode_table.c; this file only searches them. */
#include "model/unicode.h"

unsigned uc_flags(uint32_t cp)
{
    if (cp < 256)
        return uc_latin1_flags[cp];
    if (cp > UC_MAX)
        return 0;
    /* Binary search for the last range starting at or before cp; ranges[0].first == 0. */
    size_t lo = 0, hi = uc_n_ranges;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (uc_ranges[mid].first <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return uc_ranges[lo].flags;
}

static bool is_cont(uint8_t b)
{
    return (b & 0xC0) == 0x80;
}

uint32_t uc_decode(const uint8_t *s, size_t n, size_t *len)
{
    uint8_t b = s[0];
    *len = 1;
    if (b < 0x80)
        return b;
    if (b < 0xC0 || b >= 0xF8)
        return UC_REPLACEMENT;
    if (b < 0xE0) {
        if (n < 2 || !is_cont(s[1]))
            return UC_REPLACEMENT;
        *len = 2;
        return ((uint32_t)(b & 0x1F) << 6) | (s[1] & 0x3F);
    }
    if (b < 0xF0) {
        if (n < 3 || !is_cont(s[1]) || !is_cont(s[2]))
            return UC_REPLACEMENT;
        *len = 3;
        return ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    if (n < 4 || !is_cont(s[1]) || !is_cont(s[2]) || !is_cont(s[3]))
        return UC_REPLACEMENT;
    *len = 4;
    uint32_t cp = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
                  ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    /* llama.cpp decodes this but then throws when re-encoding it; we substitute instead. */
    return cp > UC_MAX ? UC_REPLACEMENT : cp;
}

size_t uc_encode(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

bool uc_is_canonical(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { /* ASCII dominates real text: skip it without decoding */
            i++;
            continue;
        }
        size_t len;
        uint32_t cp = uc_decode(s + i, n - i, &len);
        uint8_t enc[4];
        if (cp == UC_REPLACEMENT && len == 1)
            return false; /* a lone replacement stands for a bad byte */
        if (uc_encode(cp, enc) != len)
            return false; /* overlong form, or above UC_MAX */
        i += len;
    }
    return true;
}

size_t uc_len_from_lead(uint8_t b)
{
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[b >> 4];
}

static bool is_self_byte(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* The bytes that do not stand for themselves, in order, take U+0100 onwards: 0x00-0x20 (33),
 * 0x7F-0xA0 (34), then 0xAD. */
uint32_t uc_byte_to_cp(uint8_t b)
{
    if (is_self_byte(b))
        return b;
    if (b <= 0x20)
        return 0x100u + b;
    if (b <= 0xA0)
        return 0x100u + 33 + (b - 0x7Fu);
    return 0x100u + 67; /* 0xAD */
}

int uc_cp_to_byte(uint32_t cp)
{
    if (cp < 0x100)
        return is_self_byte(cp) ? (int)cp : -1;
    if (cp < 0x100 + 33)
        return (int)(cp - 0x100);
    if (cp < 0x100 + 67)
        return (int)(cp - 0x100 - 33 + 0x7F);
    return cp == 0x100 + 67 ? 0xAD : -1;
}
