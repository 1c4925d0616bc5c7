/* model/tokenizer_test.c: unit tests of the tokenizer (tokenizer.h), and with TOK_BENCH_MAIN its
 * throughput benchmark (the tok_bench target; it prints figures and asserts nothing).
 *
 * usage: tokenizer_test VOCAB_DIR               run the tests on VOCAB_DIR/{qwen3,llama3,
 *                                               lfm2-style}.gguf (../shared/conformance/vocab)
 *        tokenizer_test --write-fixtures DIR    write the bad GGUF files the CLI tests use
 *        tok_bench VOCAB_DIR [MB]               MB/s of encoding mixed text, one core
 *
 * Spec: docs/tokenizer.md §8. The id-level truth is the conformance data (compare.py); these
 * tests cover what it cannot: round trips on a large varied corpus, streaming, invalid input,
 * special-token switches, API edge cases and every load error a file can cause. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#include "model/gguf.h"
#include "model/tokenizer.h"
#include "model/unicode.h"

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
            failures++;                                                                \
        }                                                                              \
    } while (0)

static const char *const vocab_names[] = {"qwen3.gguf", "llama3.gguf", "lfm2-style.gguf"};

/* ---- a varied corpus ---- */

static const char *const fragments[] = {
    "The quick brown fox jumps over the lazy dog.",
    "Café, crème brûlée, naïve façade, piña colada; Ångström and Øresund.",
    "Привет, как дела? Всё хорошо, спасибо! Съешь же ещё этих мягких французских булок.",
    "Γειά σου κόσμε· τι κάνεις; Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "东京是日本的首都，人口超过一千三百万。我能吞下玻璃而不伤身体。",
    "日本語の文章：今日はいい天気ですね。カタカナとひらがな。",
    "한국어 문장입니다. 안녕하세요! 다람쥐 헌 쳇바퀴에 타고파.",
    "مرحبا بك في عالم البرمجة العربية، نص عربي مع تشكيل: مُحَمَّد",
    "नमस्ते, आप कैसे हैं? मैं ठीक हूँ। ऋषि-मुनि ज्ञान।",
    "שלום עולם, מה שלומך? עברית עם ניקוד: שָׁלוֹם",
    "สวัสดีครับ ยินดีต้อนรับสู่ประเทศไทย",
    "emoji: 😀 😃 👍🏽 👍🏿 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷 🇯🇵 👩🏾‍💻 🧑‍🚀 🐈‍⬛",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\n",
    "def f(x):\n    return x**2  # square\n\n\nprint(f(3))\n",
    "<html><body><p class=\"x\">Text &amp; more</p></body></html>",
    "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}",
    "1 12 123 1234 12345 3.14159 -42 1,000,000 2026-11-24 0x7fff 0b1010",
    "I've been there. You'd know. We'll see. THEY'RE HERE. It's done.",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝒮𝒸𝓇𝒾𝓅𝓉 ∀x∈ℝ, x² ≥ 0; ∑ᵢ aᵢ ≈ π",
    "quotes: “curly” ‘single’ «guillemets» „low“ — dashes – and … ellipsis",
    "a\xc2\xa0" "b\xe2\x80\x89" "c\xe3\x80\x80" "d zero\xe2\x80\x8bwidth",
    "e\xcc\x81 decomposed vs \xc3\xa9 composed; Zürich, Łódź, Kraków",
    "line1\r\nline2\rline3\nline4\r\n\r\n",
    "----====____****!!!???...,,,;;;:::",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabababababababababababab",
    "SELECT name, COUNT(*) FROM users WHERE age > 21 GROUP BY name;",
    "$$ \\int_0^1 x^2 dx = \\frac{1}{3} $$ and 100% of $5.99 is €5,50 or £4.75",
    "Tiếng Việt có nhiều dấu. Xin chào, tôi là một mô hình ngôn ngữ.",
    "türkçe: ığüşöç İĞÜŞÖÇ; polski: zażółć gęślą jaźń",
};

static const char *const separators[] = {
    " ", " ", " ", "  ", "\n", "\r\n", "\t", "    ", "\n\n", " \t ", "\n   \n",
};

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Appends fragments, separators, whitespace runs and digit runs until `size` bytes. */
static char *make_corpus(size_t size, uint64_t seed, size_t *len)
{
    char *buf = malloc(size + 512);
    size_t n = 0;
    uint64_t s = seed;
    while (buf && n < size) {
        uint64_t r = next_rand(&s);
        const char *piece = fragments[r % (sizeof(fragments) / sizeof(fragments[0]))];
        if (r % 11 == 0) { /* a long whitespace run */
            size_t k = 5 + (r >> 8) % 60;
            memset(buf + n, (r >> 16) % 3 ? ' ' : '\t', k);
            n += k;
        } else if (r % 13 == 0) { /* a run of digits */
            for (size_t k = 1 + (r >> 8) % 25; k > 0; k--)
                buf[n++] = (char)('0' + next_rand(&s) % 10);
        }
        size_t pl = strlen(piece);
        memcpy(buf + n, piece, pl);
        n += pl;
        const char *sep = separators[(r >> 20) % (sizeof(separators) / sizeof(separators[0]))];
        memcpy(buf + n, sep, strlen(sep));
        n += strlen(sep);
    }
    *len = n;
    return buf;
}

/* ---- helpers ---- */

static struct tok_vocab *load_vocab(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct mp_error err = {0};
    struct gguf_file *f = NULL;
    struct tok_vocab *v = NULL;
    if (gguf_open(path, &f, &err) < 0 || tok_load(f, &v, &err) < 0)
        fprintf(stderr, "cannot load %s: %s\n", path, err.msg);
    gguf_close(f);
    return v;
}

/* Encodes text; returns a malloc'd array (count in *n), NULL on error. */
#ifndef TOK_BENCH_MAIN

static int failures;

static int32_t *encode(const struct tok_vocab *v, const char *text, size_t len, bool special,
                       int *n)
{
    struct mp_error err = {0};
    *n = tok_encode(v, text, len, false, special, NULL, 0, &err);
    if (*n < 0)
        return NULL;
    int32_t *ids = malloc(((size_t)*n + 1) * sizeof(*ids));
    if (ids && tok_encode(v, text, len, false, special, ids, *n, &err) != *n) {
        free(ids);
        return NULL;
    }
    return ids;
}

static bool same_ids(const struct tok_vocab *v, const char *a, size_t na, const char *b,
                     size_t nb)
{
    int n1, n2;
    int32_t *x = encode(v, a, na, false, &n1), *y = encode(v, b, nb, false, &n2);
    bool same = x && y && n1 == n2 && !memcmp(x, y, (size_t)n1 * sizeof(*x));
    free(x);
    free(y);
    return same;
}

/* Whole characters only: every lead byte has all its continuation bytes within the chunk. */
static bool whole_chars(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t len = uc_len_from_lead(s[i]);
        if ((s[i] & 0xC0) == 0x80 || i + len > n)
            return false;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
        i += len;
    }
    return true;
}

/* ---- tests on the real vocabularies ---- */

static void test_roundtrip(const struct tok_vocab *v, const char *text, size_t len)
{
    int n;
    int32_t *ids = encode(v, text, len, false, &n);
    CHECK(ids && n > 0 && (size_t)n < len);
    char *back = malloc(len + 1);
    CHECK(ids && back && tok_decode(v, ids, (size_t)n, false, back, len) == (int64_t)len);
    CHECK(back && !memcmp(back, text, len));
    /* streaming: each chunk whole characters, all of them the text again */
    struct tok_stream st;
    tok_stream_init(&st, false);
    size_t cap = tok_max_piece(v) + TOK_STREAM_HOLD, done = 0;
    char *chunk = malloc(cap);
    bool whole = true;
    for (int i = 0; ids && chunk && back && i < n; i++) {
        int k = tok_stream_push(&st, v, ids[i], chunk, cap);
        CHECK(k >= 0 && done + (size_t)k <= len);
        if (k < 0 || done + (size_t)k > len)
            break;
        whole = whole && whole_chars((const uint8_t *)chunk, (size_t)k);
        memcpy(back + done, chunk, (size_t)k);
        done += (size_t)k;
    }
    CHECK(whole);
    CHECK(chunk && tok_stream_flush(&st, chunk, cap) == 0);
    CHECK(done == len && back && !memcmp(back, text, len));
    free(chunk);
    free(back);
    free(ids);
}

static void test_stream_partial(const struct tok_vocab *v)
{
    /* Feed the byte tokens of "é" (C3 A9) one at a time: nothing may come out before the A9. */
    int32_t c3 = -1, a9 = -1;
    uint8_t enc[4];
    size_t k = uc_encode(uc_byte_to_cp(0xC3), enc);
    enc[k] = 0;
    c3 = tok_find(v, (const char *)enc);
    k = uc_encode(uc_byte_to_cp(0xA9), enc);
    enc[k] = 0;
    a9 = tok_find(v, (const char *)enc);
    CHECK(c3 >= 0 && a9 >= 0);
    char out[64];
    struct tok_stream st;
    tok_stream_init(&st, false);
    CHECK(tok_stream_push(&st, v, c3, out, sizeof(out)) == 0);
    CHECK(tok_stream_push(&st, v, a9, out, sizeof(out)) == 2 && !memcmp(out, "\xc3\xa9", 2));
    /* An orphan lead byte followed by ASCII is passed through, not held forever. */
    CHECK(tok_stream_push(&st, v, c3, out, sizeof(out)) == 0);
    CHECK(tok_stream_push(&st, v, tok_find(v, "a"), out, sizeof(out)) == 2);
    CHECK(tok_stream_push(&st, v, c3, out, sizeof(out)) == 0);
    CHECK(tok_stream_push(&st, v, tok_find(v, "a"), out, 1) == MP_ERANGE);
    CHECK(tok_stream_flush(&st, out, sizeof(out)) == 1 && (uint8_t)out[0] == 0xC3);
    CHECK(tok_stream_push(&st, v, -5, out, sizeof(out)) == MP_EINVAL);
}

/* llama.cpp reads a bad byte as U+FFFD and re-encodes overlong forms; anything goes in. */
static void test_invalid_utf8(const struct tok_vocab *v)
{
    CHECK(same_ids(v, "\xff", 1, "\xef\xbf\xbd", 3));
    CHECK(same_ids(v, "a\xe4" "b", 3, "a\xef\xbf\xbd" "b", 5));
    CHECK(same_ids(v, "x\xc1\x81y", 4, "xAy", 3));          /* overlong 'A' */
    CHECK(same_ids(v, "\xe0\x80\xaf", 3, "/", 1));           /* overlong '/' */
    CHECK(same_ids(v, "\xf4\x90\x80\x80", 4, "\xef\xbf\xbd", 3)); /* above U+10FFFF */
    CHECK(same_ids(v, "\xf0\x9f\x98", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9));
    uint64_t s = 0x1234567;
    for (int round = 0; round < 3000; round++) {
        uint8_t buf[96];
        size_t n = next_rand(&s) % sizeof(buf);
        for (size_t i = 0; i < n; i++) {
            uint64_t r = next_rand(&s);
            buf[i] = (uint8_t)(r % 4 == 0 ? 0x80 | (r >> 8) % 64 : r >> 16);
        }
        int k;
        int32_t *ids = encode(v, (const char *)buf, n, round % 2, &k);
        CHECK(ids != NULL);
        for (int i = 0; ids && i < k; i++)
            CHECK(ids[i] >= 0 && ids[i] < tok_n_vocab(v));
        free(ids);
    }
}

static void test_special(const struct tok_vocab *v, const char *ctrl, const char *user)
{
    int32_t c = tok_find(v, ctrl);
    CHECK(c >= 0);
    char text[128];
    int n = snprintf(text, sizeof(text), "%shello%s", ctrl, ctrl);
    int k;
    int32_t *ids = encode(v, text, (size_t)n, true, &k);
    CHECK(ids && k >= 3 && ids[0] == c && ids[k - 1] == c);
    free(ids);
    ids = encode(v, text, (size_t)n, false, &k);
    CHECK(ids && k > 3);
    for (int i = 0; ids && i < k; i++)
        CHECK(ids[i] != c);
    free(ids);
    char piece[64];
    CHECK(tok_piece(v, c, false, piece, sizeof(piece)) == 0);
    CHECK(tok_piece(v, c, true, piece, sizeof(piece)) == (int)strlen(ctrl));
    if (user) { /* user-defined tokens are matched even without parse_special */
        int32_t u = tok_find(v, user);
        ids = encode(v, user, strlen(user), false, &k);
        CHECK(u >= 0 && ids && k == 1 && ids[0] == u);
        CHECK(tok_piece(v, u, false, piece, sizeof(piece)) == (int)strlen(user));
        free(ids);
    }
}

static void test_api(const struct tok_vocab *v, bool add_bos, const char *eog)
{
    struct mp_error err = {0};
    int32_t ids[8];
    CHECK(tok_add_bos(v) == add_bos);
    CHECK(tok_is_eog(v, tok_find(v, eog)));
    CHECK(tok_is_eog(v, tok_eos(v)));
    CHECK(!tok_is_eog(v, tok_find(v, "hello")) && !tok_is_eog(v, -1));
    CHECK(!tok_is_eog(v, tok_n_vocab(v)));
    CHECK(tok_find(v, "no such token, surely") == -1);
    CHECK(tok_encode(v, "", 0, false, false, ids, 8, &err) == 0);
    CHECK(tok_encode(v, NULL, 0, false, false, ids, 8, &err) == 0);
    CHECK(tok_encode(v, "", 0, true, false, ids, 8, &err) == 1 && ids[0] == tok_bos(v));
    const char *t = "one two three four five six seven eight nine ten";
    CHECK(tok_encode(v, t, strlen(t), false, false, NULL, 0, &err) == 10);
    CHECK(tok_encode(v, t, strlen(t), false, false, ids, 8, &err) == MP_ERANGE);
    CHECK(strstr(err.msg, "10") != NULL);
    CHECK(tok_encode(v, t, 3, false, false, ids, -1, &err) == MP_EINVAL);
    CHECK(tok_encode(v, t, (size_t)TOK_MAX_TEXT + 1, false, false, NULL, 0, &err) == MP_ERANGE);
    char buf[4];
    CHECK(tok_piece(v, tok_find(v, "hello"), false, buf, 2) == 5); /* too small: length only */
    CHECK(tok_piece(v, -1, false, buf, 4) == MP_EINVAL);
    CHECK(tok_decode(v, (int32_t[]){0, -3}, 2, false, buf, 4) == MP_EINVAL);
    size_t len;
    CHECK(tok_text(v, tok_n_vocab(v), &len) == NULL);
}

static void test_real_vocabs(const char *dir, const char *corpus, size_t len)
{
    static const struct {
        const char *ctrl, *user, *eog;
        bool add_bos;
    } exp[] = {
        {"<|im_start|>", "<think>", "<|im_end|>", false},
        {"<|begin_of_text|>", NULL, "<|eot_id|>", true},
        {"<|im_start|>", NULL, "<|im_end|>", true},
    };
    for (int i = 0; i < 3; i++) {
        struct tok_vocab *v = load_vocab(dir, vocab_names[i]);
        CHECK(v != NULL);
        if (!v)
            continue;
        fprintf(stderr, "  %s\n", vocab_names[i]);
        test_roundtrip(v, corpus, len);
        test_stream_partial(v);
        test_invalid_utf8(v);
        test_special(v, exp[i].ctrl, exp[i].user);
        test_api(v, exp[i].add_bos, exp[i].eog);
        tok_free(v);
    }
}

/* ---- synthetic GGUF files: load errors and BPE corner cases ---- */

struct gbuf {
    uint8_t *p;
    size_t n, cap;
    uint64_t n_kv;
};

static void put(struct gbuf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort(); /* test harness only */
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void put_u32(struct gbuf *b, uint32_t x) { put(b, &x, 4); }
static void put_u64(struct gbuf *b, uint64_t x) { put(b, &x, 8); }

static void put_str(struct gbuf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

static void kv_str(struct gbuf *b, const char *key, const char *val)
{
    put_str(b, key);
    put_u32(b, GGUF_STRING);
    put_str(b, val);
    b->n_kv++;
}

static void kv_u32(struct gbuf *b, const char *key, uint32_t val)
{
    put_str(b, key);
    put_u32(b, GGUF_U32);
    put_u32(b, val);
    b->n_kv++;
}

static void kv_bool(struct gbuf *b, const char *key, bool val)
{
    uint8_t x = val;
    put_str(b, key);
    put_u32(b, GGUF_BOOL);
    put(b, &x, 1);
    b->n_kv++;
}

static void kv_strs(struct gbuf *b, const char *key, const char *const *s, size_t n)
{
    put_str(b, key);
    put_u32(b, GGUF_ARRAY);
    put_u32(b, GGUF_STRING);
    put_u64(b, n);
    for (size_t i = 0; i < n; i++)
        put_str(b, s[i]);
    b->n_kv++;
}

static void kv_i32s(struct gbuf *b, const char *key, const int32_t *x, size_t n)
{
    put_str(b, key);
    put_u32(b, GGUF_ARRAY);
    put_u32(b, GGUF_I32);
    put_u64(b, n);
    put(b, x, n * 4);
    b->n_kv++;
}

/* Header + the key/values collected in kvs; the caller frees the result. */
static struct gbuf finish(struct gbuf *kvs)
{
    struct gbuf f = {0};
    put(&f, "GGUF", 4);
    put_u32(&f, 3);
    put_u64(&f, 0);
    put_u64(&f, kvs->n_kv);
    put(&f, kvs->p, kvs->n);
    free(kvs->p);
    return f;
}

/* A small byte-level vocabulary: "Ġ" is the stand-in of ' '. "bc" is no token, yet the merge
 * chain b+c -> bc, a+bc -> abc must still work; "q" has no token at all. */
static const char *const tiny_tokens[] = {"a", "b", "c", "\xc4\xa0", "ab", "abc", ("\xc4\xa0" "a"),
                                          "<|ctl|>", "<usr>", "d", "<|im_end|>"};
static const int32_t tiny_types[] = {1, 1, 1, 1, 1, 1, 1, 3, 4, 1, 1};
static const char *const tiny_merges[] = {"b c", "a bc", "a b", "\xc4\xa0 a", "no-space",
                                          "x \xe2\x82\xac", "d d"};

enum tiny_flaw {
    TINY_OK, TINY_NO_MODEL, TINY_LLAMA_MODEL, TINY_BAD_PRE, TINY_INT_TOKENS, TINY_NO_MERGES,
    TINY_SHORT_TYPES, TINY_DUP_TOKEN, TINY_BOS_MISSING, TINY_BAD_TYPE_KEY, TINY_FLAW_COUNT
};

static struct gbuf tiny_gguf(enum tiny_flaw flaw, const char *pre)
{
    struct gbuf b = {0};
    size_t nt = sizeof(tiny_tokens) / sizeof(tiny_tokens[0]);
    kv_str(&b, "general.architecture", "llama");
    if (flaw != TINY_NO_MODEL)
        kv_str(&b, "tokenizer.ggml.model", flaw == TINY_LLAMA_MODEL ? "llama" : "gpt2");
    if (flaw == TINY_BAD_PRE)
        kv_str(&b, "tokenizer.ggml.pre", "no-such-pre");
    else if (pre)
        kv_str(&b, "tokenizer.ggml.pre", pre);
    if (flaw == TINY_INT_TOKENS)
        kv_i32s(&b, "tokenizer.ggml.tokens", tiny_types, nt);
    else if (flaw == TINY_DUP_TOKEN)
        kv_strs(&b, "tokenizer.ggml.tokens", (const char *const[]){"a", "b", "a"}, 3);
    else
        kv_strs(&b, "tokenizer.ggml.tokens", tiny_tokens, nt);
    kv_i32s(&b, "tokenizer.ggml.token_type", tiny_types, flaw == TINY_SHORT_TYPES ? 2 : nt);
    if (flaw != TINY_NO_MERGES)
        kv_strs(&b, "tokenizer.ggml.merges", tiny_merges,
                sizeof(tiny_merges) / sizeof(tiny_merges[0]));
    if (flaw == TINY_BOS_MISSING)
        kv_bool(&b, "tokenizer.ggml.add_bos_token", true); /* no BOS id, vocab < 12 tokens */
    if (flaw == TINY_BAD_TYPE_KEY)
        kv_str(&b, "tokenizer.ggml.add_bos_token", "yes");
    if (flaw != TINY_BOS_MISSING)
        kv_u32(&b, "tokenizer.ggml.bos_token_id", 7);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", 7);
    return finish(&b);
}

static int load_tiny(enum tiny_flaw flaw, const char *pre, struct tok_vocab **v)
{
    struct gbuf g = tiny_gguf(flaw, pre);
    struct gguf_file *f = NULL;
    struct mp_error err = {0};
    int rc = gguf_parse(g.p, g.n, "tiny.gguf", &f, &err);
    if (rc == 0)
        rc = tok_load(f, v, &err);
    CHECK(rc == 0 || strstr(err.msg, "tiny.gguf") != NULL); /* errors name the file */
    gguf_close(f);
    free(g.p);
    return rc;
}

static void test_load_errors(void)
{
    static const int want[TINY_FLAW_COUNT] = {
        [TINY_OK] = 0, [TINY_NO_MODEL] = MP_ENOTFOUND, [TINY_LLAMA_MODEL] = MP_EUNSUPPORTED,
        [TINY_BAD_PRE] = MP_EUNSUPPORTED, [TINY_INT_TOKENS] = MP_ECORRUPT,
        [TINY_NO_MERGES] = MP_ECORRUPT, [TINY_SHORT_TYPES] = MP_ECORRUPT,
        [TINY_DUP_TOKEN] = MP_ECORRUPT, [TINY_BOS_MISSING] = MP_ECORRUPT,
        [TINY_BAD_TYPE_KEY] = MP_ECORRUPT,
    };
    for (int flaw = 0; flaw < TINY_FLAW_COUNT; flaw++) {
        struct tok_vocab *v = NULL;
        int rc = load_tiny(flaw, "gpt-2", &v);
        if (rc != want[flaw])
            fprintf(stderr, "flaw %d: got %d, want %d\n", flaw, rc, want[flaw]);
        CHECK(rc == want[flaw]);
        CHECK((rc == 0) == (v != NULL));
        tok_free(v);
    }
}

static bool tiny_ids(const struct tok_vocab *v, const char *text, bool special,
                     const int32_t *want, int n_want)
{
    int n;
    int32_t *ids = encode(v, text, strlen(text), special, &n);
    bool ok = ids && n == n_want && !memcmp(ids, want, (size_t)n * sizeof(*ids));
    if (!ok) {
        fprintf(stderr, "tiny '%s':", text);
        for (int i = 0; ids && i < n; i++)
            fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
    return ok;
}

static void test_tiny_bpe(void)
{
    static const char *const pres[] = {"gpt-2", "llama-bpe", "qwen2", "starcoder", NULL};
    for (int p = 0; p < 5; p++) {
        struct tok_vocab *v = NULL;
        CHECK(load_tiny(TINY_OK, pres[p], &v) == 0);
        if (!v)
            continue;
        CHECK(tiny_ids(v, "abc", false, (int32_t[]){5}, 1));       /* via the non-token "bc" */
        CHECK(tiny_ids(v, "ab", false, (int32_t[]){4}, 1));
        CHECK(tiny_ids(v, "cab", false, (int32_t[]){2, 4}, 2));
        CHECK(tiny_ids(v, "a a", false, (int32_t[]){0, 6}, 2));
        CHECK(tiny_ids(v, "aqb", false, (int32_t[]){0, 1}, 2));     /* "q" has no token */
        CHECK(tiny_ids(v, "dd", false, (int32_t[]){9, 9}, 2));      /* merge result unknown */
        CHECK(tiny_ids(v, "<|ctl|>", true, (int32_t[]){7}, 1));
        CHECK(tiny_ids(v, "a<usr>b", false, (int32_t[]){0, 8, 1}, 3));
        CHECK(tok_bos(v) == 7 && tok_eos(v) == 7 && tok_is_eog(v, 7));
        /* a NORMAL-typed <|im_end|> becomes a control token that ends generation */
        CHECK(tok_is_eog(v, 10) && !tok_is_eog(v, 8));
        CHECK(tiny_ids(v, "a<|im_end|>", true, (int32_t[]){0, 10}, 2));
        CHECK(tok_piece(v, 10, false, NULL, 0) == 0);
        CHECK(tok_add_bos(v) == (p == 1));
        tok_free(v);
    }
}

/* Files for the CLI error tests (tests/tokenizer.cmake). */
static int write_fixtures(const char *dir)
{
    static const struct {
        const char *name;
        enum tiny_flaw flaw;
    } files[] = {{"novocab.gguf", TINY_NO_MODEL}, {"badmodel.gguf", TINY_LLAMA_MODEL},
                 {"badpre.gguf", TINY_BAD_PRE}, {"badmerges.gguf", TINY_NO_MERGES}};
    char path[4096];
    mkdir(dir, 0777); /* may exist already; fopen reports real trouble */
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        struct gbuf g = tiny_gguf(files[i].flaw, "gpt-2");
        snprintf(path, sizeof(path), "%s/%s", dir, files[i].name);
        FILE *f = fopen(path, "wb");
        bool ok = f && fwrite(g.p, 1, g.n, f) == g.n;
        ok = f && !fclose(f) && ok;
        free(g.p);
        if (!ok)
            return fprintf(stderr, "cannot write %s\n", path), 1;
    }
    snprintf(path, sizeof(path), "%s/notgguf.gguf", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fputs("this is not a GGUF file\n", f) < 0 || fclose(f))
        return fprintf(stderr, "cannot write %s\n", path), 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write-fixtures"))
        return write_fixtures(argv[2]);
    if (argc != 2) {
        fprintf(stderr, "usage: tokenizer_test VOCAB_DIR | --write-fixtures DIR\n");
        return 2;
    }
    size_t len;
    char *corpus = make_corpus(400000, 7, &len);
    if (!corpus)
        return 1;
    test_load_errors();
    test_tiny_bpe();
    test_real_vocabs(argv[1], corpus, len);
    free(corpus);
    if (failures)
        fprintf(stderr, "tokenizer_test: %d checks failed\n", failures);
    else
        fprintf(stderr, "tokenizer_test: all passed\n");
    return failures ? 1 : 0;
}

#else /* TOK_BENCH_MAIN */

/* ---- benchmark ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int bench(const char *dir, double mb)
{
    size_t len;
    char *text = make_corpus((size_t)(mb * 1e6), 42, &len);
    int32_t *ids = malloc(len * sizeof(*ids));
    if (!text || !ids)
        return 1;
    for (int i = 0; i < 3; i++) {
        double tl = now_s();
        struct tok_vocab *v = load_vocab(dir, vocab_names[i]);
        if (!v)
            return 1;
        tl = now_s() - tl;
        struct mp_error err = {0};
        double t0 = now_s();
        int n = tok_encode(v, text, len, false, false, ids, (int)len, &err);
        double t1 = now_s();
        int64_t nb = tok_decode(v, ids, n > 0 ? (size_t)n : 0, false, NULL, 0);
        double t2 = now_s();
        tok_encode(v, text, len, false, true, ids, (int)len, &err); /* control tokens too */
        double t3 = now_s();
        printf("%-16s load %4.0f ms  encode %6.2f MB/s (%d tokens, %.2f bytes/token), "
               "%6.2f MB/s parsing specials  decode %7.1f MB/s\n", vocab_names[i], tl * 1e3,
               len / 1e6 / (t1 - t0), n, (double)len / n, len / 1e6 / (t3 - t2),
               nb / 1e6 / (t2 - t1));
        tok_free(v);
    }
    free(ids);
    free(text);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: tok_bench VOCAB_DIR [MB]\n");
        return 2;
    }
    return bench(argv[1], argc > 2 ? atof(argv[2]) : 8.0);
}

#endif /* TOK_BENCH_MAIN */
