/* model/synth_keys.c: the synthetic models' metadata (synth_impl.h): general.*, the
 * architecture's hyperparameters and the tokenizer.* keys in the order llama.cpp's converter
 * writes them, with the real chat templates. Spec: docs/synth.md. */
#include <stdbool.h>
#include <stdio.h>

#include "model/synth_impl.h"

/* ---- metadata ---- */

/* The real templates, as stored in the conformance models' tokenizer.chat_template: LFM2's
 * (llama.cpp models/templates/LFM2-8B-A1B.jinja) and Qwen3's. */
static const char tmpl_lfm2[] =
    "{{- bos_token -}}\n"
    "{%- set system_prompt = \"\" -%}\n"
    "{%- set ns = namespace(system_prompt=\"\") -%}\n"
    "{%- if messages[0][\"role\"] == \"system\" -%}\n"
    "\t{%- set ns.system_prompt = messages[0][\"content\"] -%}\n"
    "\t{%- set messages = messages[1:] -%}\n"
    "{%- endif -%}\n"
    "{%- if tools -%}\n"
    "\t{%- set ns.system_prompt = ns.system_prompt + (\"\\n\" if ns.system_prompt else \"\") + "
    "\"List of tools: <|tool_list_start|>[\" -%}\n"
    "\t{%- for tool in tools -%}\n"
    "\t\t{%- if tool is not string -%}\n"
    "\t\t\t{%- set tool = tool | tojson -%}\n"
    "\t\t{%- endif -%}\n"
    "\t\t{%- set ns.system_prompt = ns.system_prompt + tool -%}\n"
    "\t\t{%- if not loop.last -%}\n"
    "\t\t\t{%- set ns.system_prompt = ns.system_prompt + \", \" -%}\n"
    "\t\t{%- endif -%}\n"
    "\t{%- endfor -%}\n"
    "\t{%- set ns.system_prompt = ns.system_prompt + \"]<|tool_list_end|>\" -%}\n"
    "{%- endif -%}\n"
    "{%- if ns.system_prompt -%}\n"
    "\t{{- \"<|im_start|>system\\n\" + ns.system_prompt + \"<|im_end|>\\n\" -}}\n"
    "{%- endif -%}\n"
    "{%- for message in messages -%}\n"
    "\t{{- \"<|im_start|>\" + message[\"role\"] + \"\\n\" -}}\n"
    "\t{%- set content = message[\"content\"] -%}\n"
    "\t{%- if content is not string -%}\n"
    "\t\t{%- set content = content | tojson -%}\n"
    "\t{%- endif -%}\n"
    "\t{%- if message[\"role\"] == \"tool\" -%}\n"
    "\t\t{%- set content = \"<|tool_response_start|>\" + content + \"<|tool_response_end|>\" -%"
    "}\n"
    "\t{%- endif -%}\n"
    "\t{{- content + \"<|im_end|>\\n\" -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "\t{{- \"<|im_start|>assistant\\n\" -}}\n"
    "{%- endif -%}";
static const char tmpl_qwen3[] =
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0].role == 'system' %}\n"
    "        {{- messages[0].content + '\\n\\n' }}\n"
    "    {%- endif %}\n"
    "    {{- \"# Tools\\n\\nYou may call one or more functions to assist with the user query.\\"
    "n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>\""
    " }}\n"
    "    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n"
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name"
    " and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <fu"
    "nction-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
    "{%- else %}\n"
    "    {%- if messages[0].role == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}\n"
    "{%- for message in messages[::-1] %}\n"
    "    {%- set index = (messages|length - 1) - loop.index0 %}\n"
    "    {%- if ns.multi_step_tool and message.role == \"user\" and not(message.content.startsw"
    "ith('<tool_response>') and message.content.endswith('</tool_response>')) %}\n"
    "        {%- set ns.multi_step_tool = false %}\n"
    "        {%- set ns.last_query_index = index %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) %"
    "}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n'"
    " }}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
    "        {%- set content = message.content %}\n"
    "        {%- set reasoning_content = '' %}\n"
    "        {%- if message.reasoning_content is defined and message.reasoning_content is not n"
    "one %}\n"
    "            {%- set reasoning_content = message.reasoning_content %}\n"
    "        {%- else %}\n"
    "            {%- if '</think>' in message.content %}\n"
    "                {%- set content = message.content.split('</think>')[-1].lstrip('\\n') %}\n"
    "                {%- set reasoning_content = message.content.split('</think>')[0].rstrip('"
    "\\n').split('<think>')[-1].lstrip('\\n') %}\n"
    "            {%- endif %}\n"
    "        {%- endif %}\n"
    "        {%- if loop.index0 > ns.last_query_index %}\n"
    "            {%- if loop.last or (not loop.last and reasoning_content) %}\n"
    "                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.st"
    "rip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}\n"
    "            {%- else %}\n"
    "                {{- '<|im_start|>' + message.role + '\\n' + content }}\n"
    "            {%- endif %}\n"
    "        {%- else %}\n"
    "            {{- '<|im_start|>' + message.role + '\\n' + content }}\n"
    "        {%- endif %}\n"
    "        {%- if message.tool_calls %}\n"
    "            {%- for tool_call in message.tool_calls %}\n"
    "                {%- if (loop.first and content) or (not loop.first) %}\n"
    "                    {{- '\\n' }}\n"
    "                {%- endif %}\n"
    "                {%- if tool_call.function %}\n"
    "                    {%- set tool_call = tool_call.function %}\n"
    "                {%- endif %}\n"
    "                {{- '<tool_call>\\n{\"name\": \"' }}\n"
    "                {{- tool_call.name }}\n"
    "                {{- '\", \"arguments\": ' }}\n"
    "                {%- if tool_call.arguments is string %}\n"
    "                    {{- tool_call.arguments }}\n"
    "                {%- else %}\n"
    "                    {{- tool_call.arguments | tojson }}\n"
    "                {%- endif %}\n"
    "                {{- '}\\n</tool_call>' }}\n"
    "            {%- endfor %}\n"
    "        {%- endif %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if loop.first or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "    {%- if enable_thinking is defined and enable_thinking is false %}\n"
    "        {{- '<think>\\n\\n</think>\\n\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}";

struct kvw {
    struct gguf_writer *w;
    const char *arch;
    struct mp_error *err;
    int rc;
};

static void arch_key(struct kvw *k, char *buf, size_t n, const char *suffix)
{
    snprintf(buf, n, "%s.%s", k->arch, suffix);
}

static void kv_u32(struct kvw *k, const char *suffix, int64_t v)
{
    char key[96];
    arch_key(k, key, sizeof(key), suffix);
    if (!k->rc)
        k->rc = gguf_w_add_u32(k->w, key, (uint32_t)v, k->err);
}

static void kv_f32(struct kvw *k, const char *suffix, float v)
{
    char key[96];
    arch_key(k, key, sizeof(key), suffix);
    if (!k->rc)
        k->rc = gguf_w_add_f32(k->w, key, v, k->err);
}

/* The architecture's keys, in the converter's order (see the conformance models). */
static void write_arch_keys(struct kvw *k, const struct synth_params *p)
{
    bool lfm2 = p->arch == SYNTH_LFM2MOE;
    kv_u32(k, "block_count", p->n_layer);
    kv_u32(k, "context_length", p->n_ctx);
    kv_u32(k, "embedding_length", p->n_embd);
    kv_u32(k, "attention.head_count", p->n_head);
    kv_f32(k, "rope.freq_base", p->rope_base);
    kv_u32(k, "expert_count", p->n_expert);
    kv_u32(k, "expert_used_count", p->n_expert_used);
    kv_u32(k, "expert_feed_forward_length", p->n_ff_exp);
    kv_u32(k, "feed_forward_length", p->n_ff);
    if (lfm2) {
        /* per layer: 0 marks a short-conv layer (lfm2moe.md §3) */
        int32_t kv[SYNTH_MAX_LAYERS];
        for (int64_t il = 0; il < p->n_layer; il++)
            kv[il] = p->is_attn[il] ? (int32_t)p->n_head_kv : 0;
        if (!k->rc)
            k->rc = gguf_w_add_arr(k->w, "lfm2moe.attention.head_count_kv", GGUF_I32, kv,
                                   (uint64_t)p->n_layer, k->err);
    } else {
        kv_u32(k, "attention.head_count_kv", p->n_head_kv);
    }
    /* lfm2moe has no key_length unless the head size differs from n_embd / n_head */
    if (!lfm2 || p->head_dim * p->n_head != p->n_embd) {
        kv_u32(k, "attention.key_length", p->head_dim);
        kv_u32(k, "attention.value_length", p->head_dim);
    }
    kv_f32(k, "attention.layer_norm_rms_epsilon", p->rms_eps);
    if (lfm2) {
        kv_u32(k, "leading_dense_block_count", p->n_dense);
        kv_u32(k, "expert_gating_func", 2); /* sigmoid */
        kv_u32(k, "vocab_size", p->n_vocab);
        kv_u32(k, "shortconv.l_cache", p->l_cache);
    }
}

static void write_tokenizer_keys(struct kvw *k, const struct synth_params *p,
                                 const struct synth_vocab *v)
{
    bool lfm2 = p->arch == SYNTH_LFM2MOE;
    if (p->no_tokenizer)
        return;
    const char *tmpl = p->chat_template ? p->chat_template : lfm2 ? tmpl_lfm2 : tmpl_qwen3;
    /* lfm2: <|startoftext|> 1 / <|im_end|> 7 / <|pad|> 0; qwen3: <|endoftext|> / <|im_end|> */
    uint32_t bos = lfm2 ? 1 : (uint32_t)(p->n_vocab - N_QWEN3_SPECIAL);
    uint32_t eos = lfm2 ? 7 : bos + 2, pad = lfm2 ? 0 : bos;
    struct gguf_writer *w = k->w;
    struct mp_error *err = k->err;
    int rc = k->rc;
    if (!rc)
        rc = gguf_w_add_str(w, "tokenizer.ggml.model", "gpt2", err);
    if (!rc)
        rc = gguf_w_add_str(w, "tokenizer.ggml.pre", lfm2 ? "lfm2" : "qwen2", err);
    if (!rc)
        rc = gguf_w_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tok,
                                (uint64_t)v->n_tok, err);
    if (!rc)
        rc = gguf_w_add_arr(w, "tokenizer.ggml.token_type", GGUF_I32, v->type,
                            (uint64_t)v->n_tok, err);
    if (!rc)
        rc = gguf_w_add_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges,
                                (uint64_t)v->n_merges, err);
    if (!rc)
        rc = gguf_w_add_u32(w, "tokenizer.ggml.bos_token_id", bos, err);
    if (!rc)
        rc = gguf_w_add_u32(w, "tokenizer.ggml.eos_token_id", eos, err);
    if (!rc)
        rc = gguf_w_add_u32(w, "tokenizer.ggml.padding_token_id", pad, err);
    if (!rc)
        rc = gguf_w_add_bool(w, "tokenizer.ggml.add_bos_token", lfm2, err);
    if (!rc)
        rc = gguf_w_add_bool(w, "tokenizer.ggml.add_eos_token", false, err);
    if (!rc && *tmpl)
        rc = gguf_w_add_str(w, "tokenizer.chat_template", tmpl, err);
    k->rc = rc;
}

int synth_write_keys(struct gguf_writer *w, const struct synth_params *p,
                     const struct synth_vocab *v, struct mp_error *err)
{
    struct kvw k = {w, p->arch == SYNTH_LFM2MOE ? "lfm2moe" : "qwen3moe", err, 0};
    k.rc = gguf_w_add_str(w, "general.architecture", k.arch, err);
    if (!k.rc)
        k.rc = gguf_w_add_str(w, "general.name", p->name, err);
    write_arch_keys(&k, p);
    write_tokenizer_keys(&k, p, v);
    if (!k.rc)
        k.rc = gguf_w_add_u32(w, "general.quantization_version", 2, err);
    if (!k.rc)
        k.rc = gguf_w_add_u32(w, "general.file_type", (uint32_t)p->ftype, err);
    return k.rc;
}

/* ---- streaming, parallel tensor data ---- */
