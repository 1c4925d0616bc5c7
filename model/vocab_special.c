/* model/vocab_special.c: special tokens of a vocabulary (tokenizer_impl.h): the BOS/EOS/EOT/EOM
 * and fill-in-the-middle ids, add_bos/add_eos, and the attribute and end-of-generation rules
 * llama.cpp applies by token text (llama_vocab::impl::load). */
#include <string.h>

#include "base/log.h"
#include "model/tokenizer_impl.h"

/* Token texts llama.cpp treats as end of generation and forces to CONTROL (load(): the EOT, EOM
 * and EOG lists). */
static const char *const eog_texts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    ("<\xef\xbd\x9c"
     "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"),
    "[e~[",
};

/* Fill-in-the-middle tokens by text (load()), used when the GGUF gives no id: they become CONTROL,
 * and pad/repo/file-separator are end of generation. */
enum fim { FIM_PRE, FIM_SUF, FIM_MID, FIM_PAD, FIM_REP, FIM_SEP, FIM_COUNT };

static const char *const fim_keys[FIM_COUNT][2] = {
    {"tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id"},
    {"tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id"},
    {"tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id"},
    {"tokenizer.ggml.fim_pad_token_id", NULL},
    {"tokenizer.ggml.fim_rep_token_id", NULL},
    {"tokenizer.ggml.fim_sep_token_id", NULL},
};

static const char *const fim_texts[FIM_COUNT][9] = {
    {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
     "<\xef\xbd\x9c"
     "fim\xe2\x96\x81"
     "begin"
     "\xef\xbd\x9c>",
     "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL},
    {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
     "<\xef\xbd\x9c"
     "fim\xe2\x96\x81"
     "hole"
     "\xef\xbd\x9c>",
     "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL},
    {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
     "<\xef\xbd\x9c"
     "fim\xe2\x96\x81"
     "end"
     "\xef\xbd\x9c>",
     "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL},
    {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL},
    {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL},
    {"<|file_sep|>", NULL},
};

/* A special-token id key: ids outside the vocabulary are ignored, as llama.cpp does. */
static int read_id(struct loader *l, const char *key, int32_t *id)
{
    int64_t x;
    int rc = gguf_get_int(l->f, key, &x, l->err);
    if (rc == MP_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    if (x >= 0 && x < l->v->n_vocab)
        *id = (int32_t)x;
    else
        mp_warn("%s: %s = %lld is outside the vocabulary, ignored", l->f->path, key, (long long)x);
    return 0;
}

static int read_flag(struct loader *l, const char *key, bool *flag)
{
    int rc = gguf_get_bool(l->f, key, flag, l->err);
    return rc == MP_ENOTFOUND ? 0 : rc;
}

static int read_specials(struct loader *l, int32_t fim[FIM_COUNT])
{
    struct tok_vocab *v = l->v;
    /* llama.cpp's BPE defaults: BOS = EOS = 11 when the vocabulary is that large. */
    v->bos = v->eos = v->n_vocab > 11 ? 11 : -1;
    v->eot = v->eom = -1;
    int rc = 0;
    rc = rc ? rc : read_id(l, "tokenizer.ggml.bos_token_id", &v->bos);
    rc = rc ? rc : read_id(l, "tokenizer.ggml.eos_token_id", &v->eos);
    rc = rc ? rc : read_id(l, "tokenizer.ggml.eot_token_id", &v->eot);
    rc = rc ? rc : read_id(l, "tokenizer.ggml.eom_token_id", &v->eom);
    for (int k = 0; k < FIM_COUNT && !rc; k++) {
        fim[k] = -1;
        rc = read_id(l, fim_keys[k][0], &fim[k]);
        if (!rc && fim_keys[k][1])
            rc = read_id(l, fim_keys[k][1], &fim[k]);
    }
    rc = rc ? rc : read_flag(l, "tokenizer.ggml.add_bos_token", &v->add_bos);
    rc = rc ? rc : read_flag(l, "tokenizer.ggml.add_eos_token", &v->add_eos);
    if (rc < 0)
        return rc;
    if ((v->add_bos && v->bos < 0) || (v->add_eos && v->eos < 0))
        return mp_error_set(l->err, MP_ECORRUPT, "%s: add_%s_token is set but there is no %s id",
                            l->f->path, v->add_bos && v->bos < 0 ? "bos" : "eos",
                            v->add_bos && v->bos < 0 ? "BOS" : "EOS");
    return 0;
}

static void mark(struct tok_vocab *v, int32_t id, uint16_t bits)
{
    if (id >= 0)
        v->attr[id] |= bits;
}

static bool eog_text(const struct tok_vocab *v, const char *text)
{
    int32_t id = tok_find(v, text);
    return id >= 0 && (v->attr[id] & ATTR_EOG);
}

/* llama.cpp's exceptions to the EOG list: o200k_harmony and solar-open end turns with <|return|>
 * or <|flush|> and a call marker, so there <|end|> is a user-defined token; gemma4's </s> is
 * normal text. */
static void eog_exceptions(struct tok_vocab *v)
{
    bool call = eog_text(v, "<|call|>") || eog_text(v, "<|calls|>");
    int32_t end = tok_find(v, "<|end|>");
    if (call && (eog_text(v, "<|return|>") || eog_text(v, "<|flush|>")) && eog_text(v, "<|end|>"))
        v->attr[end] = ATTR_USER_DEFINED;
    int32_t s = tok_find(v, "</s>");
    if (eog_text(v, "<|tool_response>") && eog_text(v, "</s>"))
        v->attr[s] = ATTR_NORMAL;
}

/* End-of-generation set and the attribute fixes llama.cpp applies by token text (load()). */
static void apply_text_rules(struct tok_vocab *v, const int32_t fim_in[FIM_COUNT])
{
    for (int k = 0; k < FIM_COUNT; k++) {
        int32_t id = fim_in[k];
        for (int j = 0; id < 0 && fim_texts[k][j]; j++)
            if ((id = tok_find(v, fim_texts[k][j])) >= 0)
                mark(v, id, ATTR_CONTROL);
        if (k == FIM_PAD || k == FIM_REP || k == FIM_SEP)
            mark(v, id, ATTR_EOG);
    }
    for (size_t i = 0; i < sizeof(eog_texts) / sizeof(eog_texts[0]); i++)
        mark(v, tok_find(v, eog_texts[i]), ATTR_EOG | ATTR_CONTROL);
    for (int32_t id = 0; id < v->n_vocab; id++) {
        struct span t = v->text[id];
        if ((v->attr[id] & ATTR_CONTROL) && memmem(span_ptr(v, t), t.len, "unused", 6))
            v->attr[id] |= ATTR_UNUSED;
    }
    static const char *const always_shown[] = {"<|channel|>", "<|message|>", "<|start|>",
                                               "<|constrain|>"};
    for (int i = 0; i < 4; i++) {
        int32_t id = tok_find(v, always_shown[i]);
        if (id >= 0)
            v->attr[id] = ATTR_USER_DEFINED | (v->attr[id] & ATTR_EOG);
    }
    mark(v, v->eos, ATTR_EOG);
    mark(v, v->eot, ATTR_EOG);
    mark(v, v->eom, ATTR_EOG);
    eog_exceptions(v);
}

int tok_read_specials(struct loader *l)
{
    int32_t fim[FIM_COUNT];
    int rc = read_specials(l, fim);
    if (!rc)
        apply_text_rules(l->v, fim);
    return rc;
}
