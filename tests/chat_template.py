#!/usr/bin/env python3
"""tests/chat_template.py: checks model/chat_template.c's renderings against the real Jinja
templates. Reads the conversations and C renderings written by `chat_template_test OUT.json`,
renders each conversation with python3-jinja2 from `tokenizer.chat_template` in the conformance
GGUF of its format, and compares byte for byte.

The environment is the one llama.cpp's minja and HF transformers give templates: trim_blocks,
lstrip_blocks, loopcontrols, and `tojson` as json.dumps(ensure_ascii=False) keeping key order
(stock Jinja2's tojson sorts keys and HTML-escapes <, >, &, ' -- no model was trained on that).
LFM2's template opens with bos_token; like llama.cpp with add_bos_token, we strip it, since the
tokenizer adds BOS itself.

LFM2.5-8B-A1B's template has no conformance GGUF; its text (llama.cpp models/templates/
LFM2.5-8B-A1B.jinja, as the model ships it) is tests/data/LFM2.5-8B-A1B.jinja. It needs what HF
transformers gives templates: a `{% generation %}` block tag (rendered as its body) and
strftime_now (here the fixed date of the case). It reads OpenAI-style calls
({"function": {"name", "arguments": {...}}}) with parsed arguments, as llama.cpp hands them over.

A message's "reasoning" (struct chat_msg.reasoning) is reasoning_content for Qwen3 and thinking
for LFM2.5; LFM2 has no such variable. A missing content is "" for LFM2 and Qwen3 (their
templates concatenate it; moepool and llama.cpp send "") and undefined for LFM2.5, which tests it.

usage: chat_template.py CASES.json LFM2.gguf QWEN3.gguf LFM2.5.jinja
"""
import json
import struct
import sys

import jinja2
import jinja2.ext

GGUF_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def gguf_str(path, want):
    """The string value of key `want` in a GGUF file's metadata."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            sys.exit(f"{path}: not a GGUF file")
        f.read(4)
        _, n_kv = struct.unpack("<QQ", f.read(16))

        def rstr():
            (n,) = struct.unpack("<Q", f.read(8))
            return f.read(n)

        for _ in range(n_kv):
            key = rstr().decode()
            (t,) = struct.unpack("<I", f.read(4))
            if t == 8:
                v = rstr()
                if key == want:
                    return v.decode()
            elif t == 9:
                (et,) = struct.unpack("<I", f.read(4))
                (n,) = struct.unpack("<Q", f.read(8))
                if et == 8:
                    for _ in range(n):
                        rstr()
                else:
                    f.seek(GGUF_SIZES[et] * n, 1)
            else:
                f.seek(GGUF_SIZES[t], 1)
    sys.exit(f"{path}: no {want}")


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


class GenerationTag(jinja2.ext.Extension):
    """HF transformers' {% generation %}...{% endgeneration %}: marks the assistant's tokens for
    training masks; renders its body unchanged."""
    tags = {"generation"}

    def parse(self, parser):
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def openai_call(call):
    """{"name", "arguments"} or {"function": {...}} -> the OpenAI form, arguments parsed."""
    f = call.get("function", call)
    args = f.get("arguments")
    if isinstance(args, str):
        args = json.loads(args)
    return {"type": "function", "function": {"name": f["name"], "arguments": args}}


def message(m, fmt):
    m = dict(m)
    if "tool_calls" in m:
        m["tool_calls"] = json.loads(m["tool_calls"])
        if fmt == "lfm2.5":
            m["tool_calls"] = [openai_call(c) for c in m["tool_calls"]]
    if "reasoning" in m:
        r = m.pop("reasoning")
        if fmt != "lfm2":
            m["reasoning_content" if fmt == "qwen3" else "thinking"] = r
    if "content" not in m and fmt != "lfm2.5":
        m["content"] = ""
    return m


def render(template, case, bos, eos):
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True,
                             extensions=["jinja2.ext.loopcontrols", GenerationTag])
    env.filters["tojson"] = tojson
    env.globals["strftime_now"] = lambda fmt: case["date"]
    msgs = [message(m, case["format"]) for m in case["messages"]]
    tools = json.loads(case["tools"]) if "tools" in case else None
    out = env.from_string(template).render(messages=msgs, tools=tools, bos_token=bos,
                                           eos_token=eos,
                                           add_generation_prompt=case["gen"], **case["opts"])
    if bos and out.startswith(bos):
        out = out[len(bos):]
    return out


def main():
    cases_path, lfm2, qwen3, lfm25 = sys.argv[1:5]
    with open(cases_path, encoding="utf-8") as f:
        cases = json.load(f)
    fmts = {
        "lfm2": (gguf_str(lfm2, "tokenizer.chat_template"), "<|startoftext|>", "<|im_end|>"),
        "qwen3": (gguf_str(qwen3, "tokenizer.chat_template"), "", "<|im_end|>"),
        "lfm2.5": (open(lfm25, encoding="utf-8").read(), "<|startoftext|>", "<|im_end|>"),
    }
    bad = 0
    for c in cases:
        template, bos, eos = fmts[c["format"]]
        want = render(template, c, bos, eos)
        if want != c["expected"]:
            bad += 1
            print(f"MISMATCH {c['format']}/{c['name']}\n--- jinja2:\n{want!r}\n"
                  f"--- moepool:\n{c['expected']!r}")
    print(f"chat templates: {len(cases) - bad} passed, {bad} failed")
    return 1 if bad or not cases else 0


if __name__ == "__main__":
    sys.exit(main())
