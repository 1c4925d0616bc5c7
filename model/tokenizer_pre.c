/* model/tokenizer_pre.c: the pre-tokenizers, llama.cpp's regex splitters (src/unicode.cpp,
 * unicode_regex_split_custom_*) written as hand-made scanners over one fragment's code points.
 * Which one runs comes from tokenizer.ggml.pre (vocab.c). */
#include <string.h>

#include "model/tokenizer_enc.h"
#include "model/unicode.h"

#define OUT_OF_RANGE 0xFFFFFFFFu
#define WLN (UC_WHITESPACE | UC_LETTER | UC_NUMBER)

static uint32_t cp_at(const struct enc *e, size_t hi, size_t i)
{
    return i < hi ? e->cp[i] : OUT_OF_RANGE;
}

static unsigned fl_at(const struct enc *e, size_t hi, size_t i)
{
    return i < hi ? e->fl[i] : 0;
}

/* [^\s\p{L}\p{N}]: any assigned-or-not code point inside the fragment that is none of those. */
static bool is_other(unsigned f)
{
    return f != 0 && !(f & WLN);
}

static void push_end(struct enc *e, int k, size_t end)
{
    if (!RESERVE(e, e->ends[k], e->cap_ends[k], e->n_ends[k] + 1))
        return;
    e->ends[k][e->n_ends[k]++] = (uint32_t)end;
}

static uint32_t ascii_lower(uint32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* 's|'t|'re|'ve|'m|'ll|'d at pos; fold makes it case-insensitive (llama3's (?i:...)). ASCII
 * folding is all unicode_tolower can matter for here: no other letter lowers to s/t/r/e/v/m/l/d. */
static size_t contraction(const struct enc *e, size_t pos, size_t hi, bool fold)
{
    if (e->cp[pos] != '\'' || pos + 1 >= hi)
        return 0;
    uint32_t a = e->cp[pos + 1], b = pos + 2 < hi ? e->cp[pos + 2] : 0;
    if (fold) {
        a = ascii_lower(a);
        b = ascii_lower(b);
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

/* \s*[\r\n]+ (when newline_rule) | \s+(?!\S) | \s+ | a lone character matching nothing. */
static size_t ws_step(const struct enc *e, size_t pos, size_t hi, bool newline_rule)
{
    size_t n = 0, last_nl = 0;
    while (fl_at(e, hi, pos + n) & UC_WHITESPACE) {
        uint32_t c = e->cp[pos + n];
        if (c == '\r' || c == '\n')
            last_nl = pos + n + 1;
        n++;
    }
    if (newline_rule && last_nl)
        return last_nl;
    if (n > 1 && pos + n < hi)
        return pos + n - 1; /* leave the last space to prefix the next word */
    return pos + (n ? n : 1);
}

/* One pre-token of unicode_regex_split_custom_llama3:
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 * \s*[\r\n]+|\s+(?!\S)|\s+ . With max_digits 1 it is Qwen2's regex (\p{N} alone), which
 * llama.cpp runs through std::regex with the same outcome. Returns the end. */
static size_t llama3_step(const struct enc *e, size_t pos, size_t hi, size_t max_digits)
{
    uint32_t c = e->cp[pos];
    unsigned f = e->fl[pos];
    size_t k = contraction(e, pos, hi, true);
    if (k)
        return pos + k;
    if (c != '\r' && c != '\n' && !(f & UC_NUMBER) &&
        ((f & UC_LETTER) || (fl_at(e, hi, pos + 1) & UC_LETTER))) {
        pos++;
        while (fl_at(e, hi, pos) & UC_LETTER)
            pos++;
        return pos;
    }
    if (f & UC_NUMBER) {
        size_t end = pos + 1;
        while (end - pos < max_digits && (fl_at(e, hi, end) & UC_NUMBER))
            end++;
        return end;
    }
    unsigned f2 = c == ' ' ? fl_at(e, hi, pos + 1) : f;
    if (!(f2 & WLN) && f) {
        pos += c == ' ';
        while (is_other(fl_at(e, hi, pos)))
            pos++;
        while (cp_at(e, hi, pos) == '\r' || cp_at(e, hi, pos) == '\n')
            pos++;
        return pos;
    }
    return ws_step(e, pos, hi, true);
}

/* One pre-token of unicode_regex_split_custom_gpt2:
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t gpt2_step(const struct enc *e, size_t pos, size_t hi)
{
    uint32_t c = e->cp[pos];
    size_t k = contraction(e, pos, hi, false);
    if (k)
        return pos + k;
    unsigned f2 = c == ' ' ? fl_at(e, hi, pos + 1) : e->fl[pos];
    unsigned cls = (f2 & UC_LETTER) ? UC_LETTER : (f2 & UC_NUMBER) ? UC_NUMBER : 0;
    if (cls) {
        pos += c == ' ';
        while (fl_at(e, hi, pos) & cls)
            pos++;
        return pos;
    }
    if (is_other(f2)) {
        pos += c == ' ';
        while (is_other(fl_at(e, hi, pos)))
            pos++;
        return pos;
    }
    return ws_step(e, pos, hi, false);
}

typedef void splitter(struct enc *e, size_t lo, size_t hi, int out);

static void split_llama3(struct enc *e, size_t lo, size_t hi, int out)
{
    for (size_t pos = lo; pos < hi;)
        push_end(e, out, pos = llama3_step(e, pos, hi, 3));
}

static void split_qwen2(struct enc *e, size_t lo, size_t hi, int out)
{
    for (size_t pos = lo; pos < hi;)
        push_end(e, out, pos = llama3_step(e, pos, hi, 1));
}

static void split_gpt2(struct enc *e, size_t lo, size_t hi, int out)
{
    for (size_t pos = lo; pos < hi;)
        push_end(e, out, pos = gpt2_step(e, pos, hi));
}

/* std::regex splitting by a one-class pattern (unicode_regex_split_stl): each match and each gap
 * between matches becomes a pre-token. run: X+ rather than X. */
static void split_class(struct enc *e, size_t lo, size_t hi, int out,
                        bool (*in)(const struct enc *, size_t), bool run)
{
    size_t pos = lo;
    while (pos < hi) {
        size_t m = pos;
        while (m < hi && !in(e, m))
            m++;
        if (m > pos)
            push_end(e, out, m);
        if (m == hi)
            break;
        size_t end = m + 1;
        while (run && end < hi && in(e, end))
            end++;
        push_end(e, out, end);
        pos = end;
    }
}

/* [\p{P}\$\+<=>\^~\|]: the ASCII symbols are listed because they are \p{S}, not \p{P}. */
static bool in_punct(const struct enc *e, size_t i)
{
    uint32_t c = e->cp[i];
    return (e->fl[i] & UC_PUNCT) || (c < 0x80 && c && strchr("$+<=>^~|", (int)c));
}

static bool in_number(const struct enc *e, size_t i)
{
    return e->fl[i] & UC_NUMBER;
}

static void split_punct_runs(struct enc *e, size_t lo, size_t hi, int out)
{
    split_class(e, lo, hi, out, in_punct, true);
}

static void split_number_runs(struct enc *e, size_t lo, size_t hi, int out)
{
    split_class(e, lo, hi, out, in_number, true);
}

static void split_each_number(struct enc *e, size_t lo, size_t hi, int out)
{
    split_class(e, lo, hi, out, in_number, false);
}

static bool is_digit_at(const struct enc *e, size_t i)
{
    return e->cp[i] >= '0' && e->cp[i] <= '9';
}

/* [0-9][0-9][0-9], leftmost and non-overlapping. */
static void split_digit_triples(struct enc *e, size_t lo, size_t hi, int out)
{
    size_t pos = lo, gap = lo;
    while (pos + 3 <= hi) {
        if (is_digit_at(e, pos) && is_digit_at(e, pos + 1) && is_digit_at(e, pos + 2)) {
            if (pos > gap)
                push_end(e, out, pos);
            push_end(e, out, pos += 3);
            gap = pos;
        } else {
            pos++;
        }
    }
    if (gap < hi)
        push_end(e, out, hi);
}

/* The regex lists of llm_tokenizer_bpe, applied in order, each splitting the previous pieces. */
static const struct {
    splitter *stage[4];
    int n;
} pre_stages[] = {
    [PRE_DEFAULT] = {{split_punct_runs, split_gpt2, split_number_runs, split_digit_triples}, 4},
    [PRE_GPT2] = {{split_gpt2}, 1},
    [PRE_STARCODER] = {{split_each_number, split_gpt2}, 2},
    [PRE_LLAMA3] = {{split_llama3}, 1},
    [PRE_QWEN2] = {{split_qwen2}, 1},
};

/* Splits the fragment's n_cp code points; returns the index of the list of pre-token ends. */
int tok_pre_tokenize(struct enc *e, size_t n_cp)
{
    int cur = 0;
    e->n_ends[0] = 0;
    push_end(e, 0, n_cp);
    for (int s = 0; s < pre_stages[e->v->pre].n && !e->oom; s++) {
        int out = 1 - cur;
        size_t lo = 0;
        e->n_ends[out] = 0;
        for (size_t i = 0; i < e->n_ends[cur] && !e->oom; i++) {
            pre_stages[e->v->pre].stage[s](e, lo, e->ends[cur][i], out);
            lo = e->ends[cur][i];
        }
        cur = out;
    }
    return cur;
}
