/* model/synth_vocab.c: the synthetic models' tokenizer (synth_impl.h): a byte-level BPE vocabulary
 * with the architecture's special tokens at their real ids, all 256 bytes, merges learned from a
 * small corpus and then systematic fill-up words, so that every token is reachable by merges.
 * Spec: docs/synth.md. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "model/synth_impl.h"

/* ---- tokenizer: byte-level BPE ---- */

/* Special tokens. lfm2moe: ids 0-13 (lfm2moe.md §8); qwen3moe: after the BPE tokens, as Qwen3's
 * added tokens (control, then user-defined from <tool_call>). */
static const char *const lfm2_special[] = {
    "<|pad|>", "<|startoftext|>", "<|endoftext|>", "<|fim_pre|>", "<|fim_mid|>",
    "<|fim_suf|>", "<|im_start|>", "<|im_end|>", "<|tool_list_start|>", "<|tool_list_end|>",
    "<|tool_call_start|>", "<|tool_call_end|>", "<|tool_response_start|>",
    "<|tool_response_end|>",
};
static const char *const qwen3_special[] = {
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>",
    "</think>",
};
#define N_LFM2_SPECIAL 14
#define QWEN3_N_CONTROL 14 /* the rest are user-defined (token type 4) */

int synth_n_special(const struct synth_params *p)
{
    return p->arch == SYNTH_LFM2MOE ? N_LFM2_SPECIAL : N_QWEN3_SPECIAL;
}

/* Merges are learned from this text (pairs seen at least twice), then the vocabulary is filled
 * systematically: letter words extended by one letter, in id order. */
static const char corpus[] =
    "The quick brown fox jumps over the lazy dog. A model that is trained on text learns which\n"
    "words follow which, and the tokenizer splits that text into pieces it has seen often.\n"
    "When the weather is good we go outside; when it rains we read, write and think about the\n"
    "things that matter. The people in the city work, eat, talk and sleep, and then they do it\n"
    "again the next day. Numbers like 42, 1000 and 3.14159 appear in text too, as do names such\n"
    "as London, Paris and Tokyo. What is the answer? It is the one you find by asking again.\n"
    "\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    for (int i = 0; i < argc; i++)\n"
    "        printf(\"%s\\n\", argv[i]);\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "def tokenize(text):\n"
    "    return [token for token in text.split() if token]\n"
    "\n"
    "class Model:\n"
    "    def __init__(self, name, layers):\n"
    "        self.name = name\n"
    "        self.layers = layers\n"
    "\n"
    "The user asked the assistant a question, and the assistant answered with a short reply\n"
    "that was both helpful and correct. Then the user thanked the assistant and asked another\n"
    "question about the weather, the time and the best way to learn a new language.\n";

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the other 68 to U+0100 onwards.
 * Writes the UTF-8 of byte b's character to out (at most 2 bytes + NUL). */
static void byte_char(int b, char *out)
{
    int cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
        int k = 0;
        for (int i = 0; i < b; i++)
            k += !((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255));
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        out[2] = 0;
    }
}

static bool is_printable_byte(int b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

static uint64_t str_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* Slot of string s: its id's slot, or the empty slot where it would go. */
static uint64_t vocab_slot(const struct synth_vocab *v, const char *s)
{
    uint64_t i = str_hash(s) & (v->n_slot - 1);
    while (v->slot[i] && strcmp(v->tok[v->slot[i] - 1], s))
        i = (i + 1) & (v->n_slot - 1);
    return i;
}

static int64_t vocab_find(const struct synth_vocab *v, const char *s)
{
    uint64_t i = vocab_slot(v, s);
    return v->slot[i] ? (int64_t)v->slot[i] - 1 : -1;
}

/* Adds a token (owning s); the caller checked that it is new and that there is room. */
static void vocab_add(struct synth_vocab *v, char *s, int32_t type)
{
    v->slot[vocab_slot(v, s)] = (uint32_t)(v->n_tok + 1);
    v->tok[v->n_tok] = s;
    v->type[v->n_tok++] = type;
}

void synth_vocab_free(struct synth_vocab *v)
{
    for (int64_t i = 0; i < v->n_tok; i++)
        free(v->tok[i]);
    for (int64_t i = 0; i < v->n_merges; i++)
        free(v->merges[i]);
    free(v->tok);
    free(v->type);
    free(v->merges);
    free(v->slot);
}

static char *concat(const char *a, const char *sep, const char *b)
{
    size_t na = strlen(a), ns = strlen(sep), nb = strlen(b);
    char *s = malloc(na + ns + nb + 1);
    if (s) {
        memcpy(s, a, na);
        memcpy(s + na, sep, ns);
        memcpy(s + na + ns, b, nb + 1);
    }
    return s;
}

/* Records merge "a b" and returns the id of the token a+b, adding it if new; -1 on ENOMEM. */
static int64_t vocab_merge(struct synth_vocab *v, int64_t a, int64_t b)
{
    char *m = concat(v->tok[a], " ", v->tok[b]);
    char *s = concat(v->tok[a], "", v->tok[b]);
    if (!m || !s) {
        free(m);
        free(s);
        return -1;
    }
    v->merges[v->n_merges++] = m;
    int64_t id = vocab_find(v, s);
    if (id >= 0) {
        free(s);
        return id;
    }
    vocab_add(v, s, 1);
    return v->n_tok - 1;
}

/* The corpus as byte-token ids, words separated by -1: a word is an optional space followed by
 * a run of letters, of digits, or of other characters; newlines stand alone. */
static int32_t *corpus_words(const struct synth_vocab *v, int64_t *n_out)
{
    int64_t n = (int64_t)sizeof(corpus) - 1;
    int32_t *seq = malloc((size_t)(2 * n + 1) * sizeof(*seq));
    if (!seq)
        return NULL;
    int64_t k = 0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i + (corpus[i] == ' ' && i + 1 < n && corpus[i + 1] != ' ');
        int cls = (corpus[j] >= 'a' && corpus[j] <= 'z') || (corpus[j] >= 'A' && corpus[j] <= 'Z')
                      ? 1 : corpus[j] >= '0' && corpus[j] <= '9' ? 2 : corpus[j] == '\n' ? 3 : 4;
        int64_t e = j + 1;
        while (cls != 3 && e < n && corpus[e] != ' ' && corpus[e] != '\n') {
            char c = corpus[e];
            int c2 = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ? 1
                     : c >= '0' && c <= '9' ? 2 : 4;
            if (c2 != cls)
                break;
            e++;
        }
        for (int64_t x = i; x < e; x++)
            seq[k++] = v->byte_id[(uint8_t)corpus[x]];
        seq[k++] = -1;
        i = e;
    }
    *n_out = k;
    return seq;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The most frequent adjacent pair (ties: smallest ids) and its count. */
static int64_t best_pair(const int32_t *seq, int64_t n, uint64_t *pairs, uint64_t *best)
{
    int64_t np = 0, best_n = 0;
    for (int64_t i = 0; i + 1 < n; i++)
        if (seq[i] >= 0 && seq[i + 1] >= 0)
            pairs[np++] = (uint64_t)seq[i] << 32 | (uint32_t)seq[i + 1];
    qsort(pairs, (size_t)np, sizeof(*pairs), cmp_u64);
    for (int64_t i = 0; i < np;) {
        int64_t j = i;
        while (j < np && pairs[j] == pairs[i])
            j++;
        if (j - i > best_n) {
            best_n = j - i;
            *best = pairs[i];
        }
        i = j;
    }
    return best_n;
}

/* Replaces every (a, b) in seq with id; returns the new length. */
static int64_t apply_merge(int32_t *seq, int64_t n, int32_t a, int32_t b, int32_t id)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i + 1 < n && seq[i] == a && seq[i + 1] == b) {
            seq[k++] = id;
            i++;
        } else {
            seq[k++] = seq[i];
        }
    }
    return k;
}

/* BPE training on the corpus until no pair repeats or the vocabulary is full. */
static int learn_merges(struct synth_vocab *v, int64_t n_max)
{
    int64_t n = 0;
    int32_t *seq = corpus_words(v, &n);
    uint64_t *pairs = malloc((size_t)n * sizeof(*pairs) + 1);
    int rc = seq && pairs ? 0 : MP_ENOMEM;
    while (!rc && v->n_tok < n_max) {
        uint64_t p = 0;
        if (best_pair(seq, n, pairs, &p) < 2)
            break;
        int64_t id = vocab_merge(v, (int64_t)(p >> 32), (int64_t)(p & 0xffffffffu));
        if (id < 0)
            rc = MP_ENOMEM;
        else
            n = apply_merge(seq, n, (int32_t)(p >> 32), (int32_t)(p & 0xffffffffu), (int32_t)id);
    }
    free(seq);
    free(pairs);
    return rc;
}

/* A word token: ASCII letters, optionally after the byte-level space "Ġ" (U+0120). */
static bool is_word(const char *s)
{
    if (!strncmp(s, "\xc4\xa0", 2))
        s += 2;
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
            return false;
    return true;
}

/* Fills up to n_max tokens with merges word + letter, visiting words in id order. Terminates:
 * every word yields longer words. */
static int fill_merges(struct synth_vocab *v, int64_t n_max)
{
    for (int64_t i = 0; v->n_tok < n_max; i++) {
        if (!is_word(v->tok[i]))
            continue;
        for (int c = 'a'; c <= 'z' && v->n_tok < n_max; c++) {
            char *s = concat(v->tok[i], "", v->tok[v->byte_id[c]]);
            if (!s)
                return MP_ENOMEM;
            bool have = vocab_find(v, s) >= 0;
            free(s);
            if (!have && vocab_merge(v, i, v->byte_id[c]) < 0)
                return MP_ENOMEM;
        }
    }
    return 0;
}

static int add_specials(struct synth_vocab *v, const struct synth_params *p)
{
    bool lfm2 = p->arch == SYNTH_LFM2MOE;
    const char *const *sp = lfm2 ? lfm2_special : qwen3_special;
    for (int i = 0; i < synth_n_special(p); i++) {
        char *s = strdup(sp[i]);
        if (!s)
            return MP_ENOMEM;
        vocab_add(v, s, lfm2 || i < QWEN3_N_CONTROL ? 3 : 4);
    }
    return 0;
}

static int add_bytes(struct synth_vocab *v)
{
    /* GPT-2 order: printable bytes first, then the remapped ones */
    for (int pass = 0; pass < 2; pass++) {
        for (int b = 0; b < 256; b++) {
            if (is_printable_byte(b) != (pass == 0))
                continue;
            char c[4];
            byte_char(b, c);
            char *s = strdup(c);
            if (!s)
                return MP_ENOMEM;
            v->byte_id[b] = (int)v->n_tok;
            vocab_add(v, s, 1);
        }
    }
    return 0;
}

int synth_build_vocab(const struct synth_params *p, struct synth_vocab *v, struct mp_error *err)
{
    memset(v, 0, sizeof(*v));
    v->cap = p->n_vocab;
    v->n_slot = 1;
    while (v->n_slot < 2 * (uint64_t)p->n_vocab)
        v->n_slot *= 2;
    v->tok = calloc((size_t)v->cap, sizeof(*v->tok));
    v->type = calloc((size_t)v->cap, sizeof(*v->type));
    /* a learned merge may rebuild an existing token: at most one per corpus byte */
    v->merges = calloc((size_t)v->cap + sizeof(corpus), sizeof(*v->merges));
    v->slot = calloc((size_t)v->n_slot, sizeof(*v->slot));
    int rc = v->tok && v->type && v->merges && v->slot ? 0 : MP_ENOMEM;
    bool lfm2 = p->arch == SYNTH_LFM2MOE;
    int64_t n_bpe_end = lfm2 ? p->n_vocab : p->n_vocab - N_QWEN3_SPECIAL;
    if (!rc && lfm2)
        rc = add_specials(v, p);
    if (!rc)
        rc = add_bytes(v);
    if (!rc)
        rc = learn_merges(v, n_bpe_end);
    if (!rc)
        rc = fill_merges(v, n_bpe_end);
    if (!rc && !lfm2)
        rc = add_specials(v, p);
    if (rc)
        return mp_error_set(err, MP_ENOMEM, "synth: out of memory building the vocabulary");
    return 0;
}
