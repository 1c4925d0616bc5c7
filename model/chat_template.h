/* model/chat_template.h: conversation -> prompt text, and the model's reply -> tool calls, for the
 * chat templates moepool knows, rendered natively in C (moepool has no Jinja engine). Owns the
 * rendering and parsing only; tokenizing the prompt and sampling stay with the tokenizer and the
 * request code. Spec: docs/models/lfm2moe.md §9, docs/models/qwen3moe.md §7, and the
 * `tokenizer.chat_template` stored in the conformance GGUFs, which model/chat_template_test.c
 * checks byte for byte against python3-jinja2 (tests/chat_template.py).
 *
 * JSON (tools, tool-call arguments) is taken as text and re-serialized as the templates' `tojson`
 * does under llama.cpp (minja) and HF transformers: json.dumps(ensure_ascii=False) with ", " and
 * ": " separators, key order kept, no HTML escaping (stock Jinja2's tojson would sort keys and
 * write `<` as \u003c; neither llama.cpp nor the model's training data does). */
#ifndef MP_CHAT_TEMPLATE_H
#define MP_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

enum chat_format {
    CHAT_CHATML, /* plain `<|im_start|>role\ncontent<|im_end|>\n`; tools are not rendered */
    CHAT_LFM2,   /* LFM2-8B-A1B: `List of tools: <|tool_list_start|>[...]`, Python-call syntax */
    CHAT_QWEN3,  /* Qwen3: ChatML + `# Tools`/<tools>, <tool_call> JSON, <think> */
    CHAT_LFM25,  /* LFM2.5-8B-A1B: tools as plain `List of tools: [...]` after today's date,
                    calls rendered `<|tool_call_start|>[f(a='x')]<|tool_call_end|>`, thinking */
};

/* One turn. role is "system", "user", "assistant" or "tool"; content may be NULL (= "").
 * tool_calls_json (assistant only, may be NULL) is a JSON array of {"name": ..., "arguments":
 * {...}} (arguments may also be a JSON string holding the object text, as OpenAI sends it).
 * name (tool turns) is accepted for the API's sake; neither template renders it. */
struct chat_msg {
    const char *role;
    const char *content;
    const char *tool_calls_json;
    const char *name;
    /* Assistant reasoning given apart from the content (OpenAI-style reasoning_content; may be
     * NULL): Qwen3 renders it as message.reasoning_content instead of splitting </think> off the
     * content, LFM2.5 as message.thinking. LFM2 and ChatML ignore it. */
    const char *reasoning;
};

/* Recognizes a template by distinctive substrings, as llama.cpp's chat.cpp does: LFM2 by
 * `<|tool_list_start|>`, LFM2.5 by `<|tool_call_start|>` with `List of tools: ` but no tool list
 * tokens, Qwen3 by `<tool_call>` together with `<|im_start|>`. Anything else is CHAT_CHATML and
 * sets *fallback (may be NULL) so the caller can warn that the prompt is a guess. */
enum chat_format chat_detect(const char *template_text, size_t len, bool *fallback);

/* Renders msgs[0..n) and, if add_generation_prompt, the opening of the assistant's turn, into a
 * malloc'd NUL-terminated *out (the caller frees). tools_json: JSON array of tool definitions or
 * NULL. LFM2's template starts with bos_token; it is left out here because llama.cpp strips it
 * when the vocab adds BOS itself (lfm2moe has add_bos_token = true), so the tokenizer adds the
 * one BOS. LFM2's template ignores `tool_calls`: an assistant's past call must be in its content
 * (`<|tool_call_start|>[f(x=1)]<|tool_call_end|>`), as the model wrote it.
 * Returns 0, MP_EINVAL (bad role, malformed JSON; the message names which turn) or MP_ENOMEM. */
int chat_render(enum chat_format f, const struct chat_msg *msgs, int n, const char *tools_json,
                bool add_generation_prompt, char **out, struct mp_error *err);

/* The template variables a request may set (chat_template_kwargs); zeroed = the defaults. */
struct chat_opts {
    bool no_thinking;       /* Qwen3: enable_thinking = false, i.e. the generation prompt gets
                               an empty `<think>\n\n</think>\n\n` so the model answers at once */
    bool preserve_thinking; /* LFM2.5: keep the thinking of turns before the last user turn */
    const char *date;       /* LFM2.5: strftime_now("%Y-%m-%d") in the tools line; NULL: today
                               (UTC). Set it for reproducible prompts. */
};

/* chat_render with template options (opts may be NULL: the defaults). Templates ignore the
 * options they do not use, as Jinja ignores unknown variables. */
int chat_render_opts(enum chat_format f, const struct chat_msg *msgs, int n,
                     const char *tools_json, bool add_generation_prompt,
                     const struct chat_opts *opts, char **out, struct mp_error *err);

/* One call the model asked for; both strings malloc'd, owned by the chat_parsed holding them. */
struct chat_call {
    char *name;
    char *args_json; /* JSON object, ", "/": " separators (see above) */
};

/* The model's reply split into its text and its tool calls. */
struct chat_parsed {
    char *content; /* text before the first call (and, for Qwen3, between/after calls) */
    struct chat_call *calls;
    int n_calls;
};

/* Parses a reply: LFM2 and LFM2.5 `<|tool_call_start|>[f(a="x", n=3), g()]<|tool_call_end|>`
 * (Python-call syntax: strings single or double quoted, numbers, True/False/None and their JSON
 * spellings, nested lists and dicts), Qwen3
 * `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>` (any number). CHAT_CHATML never
 * has calls. A reply without calls is all content. Returns 0 or MP_ECORRUPT with a message
 * naming the offset of the malformed call; *out is then empty. */
int chat_parse_tool_calls(enum chat_format f, const char *text, struct chat_parsed *out,
                          struct mp_error *err);

/* Frees what chat_parse_tool_calls filled and zeroes *p; NULL-safe, safe on a zeroed struct. */
void chat_parsed_free(struct chat_parsed *p);

#endif
