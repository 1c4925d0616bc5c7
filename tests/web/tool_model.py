#!/usr/bin/env python3
"""tests/web/tool_model.py MOEPOOL OUT.gguf: a tiny LFM2-MoE model that always calls a tool.

A random-weights model practically never emits a well-formed tool call, so the tests could not
see the server turn one into OpenAI `tool_calls`. This writes `moepool synth --preset tiny
--type f32` and rewrites some weights so that, greedily, the reply to any chat is

    <|tool_call_start|>[find(x=1)]<|tool_call_end|><|im_end|>

i.e. the tool call `find` with arguments {"x": 1}. How: every block's output projection is
zeroed, so the residual stream is just the current token's embedding; then the dense FFN of
block 0 becomes a lookup table, one hidden unit per step of the chain above, whose gate and up
rows are the (normalized) embedding of the step's token and whose down column writes a large
multiple of the next token's embedding. With the final norm set to ones, the tied head's logits
are largest for that next token (self-similarity of a 256-dim embedding against random ones:
a margin of tens of logits), so each token determines the next: a bigram machine started by the
last token of the generation prompt ("\\n" after "<|im_start|>assistant"). All steps are
distinct tokens, as a bigram machine needs. The tokenizer, chat template and file structure
stay the real ones; only the GGUF's tensor data changes (in place).
"""
import struct
import subprocess
import sys

import numpy as np

SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
           11: "<q", 12: "<d"}
GGML_F32 = 0


def read_header(buf):
    """GGUF v3 header: (metadata dict, {tensor: (dims, type, offset)}, data start)."""
    pos = 0

    def take(fmt):
        nonlocal pos
        value = struct.unpack_from(fmt, buf, pos)[0]
        pos += struct.calcsize(fmt)
        return value

    def string():
        nonlocal pos
        n = take("<Q")
        pos += n
        return bytes(buf[pos - n:pos]).decode("utf-8", "replace")

    def value(kind):
        if kind in SCALARS:
            return take(SCALARS[kind])
        if kind == 8:
            return string()
        if kind == 9:
            elem, n = take("<I"), take("<Q")
            return [value(elem) for _ in range(n)]
        raise ValueError(f"GGUF value type {kind}")

    if bytes(buf[:4]) != b"GGUF":
        raise ValueError("not a GGUF file")
    pos = 4
    take("<I")
    n_tensors, n_kv = take("<Q"), take("<Q")
    meta = {}
    for _ in range(n_kv):
        key = string()
        meta[key] = value(take("<I"))
    tensors = {}
    for _ in range(n_tensors):
        name = string()
        dims = [take("<Q") for _ in range(take("<I"))]
        tensors[name] = (dims, take("<I"), take("<Q"))
    align = meta.get("general.alignment", 32)
    return meta, tensors, (pos + align - 1) // align * align


def main():
    if len(sys.argv) != 3:
        print("usage: tool_model.py MOEPOOL OUT.gguf", file=sys.stderr)
        return 2
    moepool, out = sys.argv[1:]
    subprocess.run([moepool, "synth", "--quiet", "--preset", "tiny", "--type", "f32", "-o", out],
                   check=True)
    buf = np.memmap(out, dtype=np.uint8, mode="r+")
    meta, tensors, data = read_header(buf)

    def tensor(name):
        dims, kind, offset = tensors[name]
        assert kind == GGML_F32, f"{name}: not F32"
        count = int(np.prod(dims))
        flat = np.frombuffer(buf, dtype=np.float32, count=count, offset=data + offset)
        return flat.reshape(list(reversed(dims)))  # numpy order: last GGUF dim first

    vocab = meta["tokenizer.ggml.tokens"]
    ids = {tok: i for i, tok in enumerate(vocab)}
    # "Ċ" is the byte-level token of "\n"; the rest are single characters and special tokens.
    chain = (["Ċ", "<|tool_call_start|>"] + list("[find(x=1)]") +
             ["<|tool_call_end|>", "<|im_end|>"])
    steps = [ids[tok] for tok in chain]
    assert len(set(steps)) == len(steps), "a bigram chain needs distinct tokens"

    for name in tensors:
        if name.endswith(("attn_output.weight", "out_proj.weight", "ffn_down.weight",
                          "ffn_down_exps.weight")):
            tensor(name)[...] = 0
    for name in tensors:
        if name.endswith("norm.weight"):  # block norms and the final norm: plain RMS norms
            tensor(name)[...] = 1

    embd = tensor("token_embd.weight")  # [n_vocab][n_embd]
    n_embd = embd.shape[1]
    gate, up, down = (tensor(f"blk.0.ffn_{w}.weight") for w in ("gate", "up", "down"))
    gain = 10.0    # gate pre-activation for the matching token (~gain·cos for others, cos ~ ±1/16)
    boost = 20.0   # next token's embedding written as this multiple of the current one's
    for unit, (cur, nxt) in enumerate(zip(steps, steps[1:])):
        e = embd[cur].astype(np.float64)
        normed = e / np.sqrt(np.mean(e * e) + 1e-5)  # what ffn_norm (weight 1) hands the FFN
        gate[unit] = gain * normed / n_embd
        up[unit] = gain * normed / n_embd
        act = gain * gain / (1 + np.exp(-gain))  # silu(gain) · gain
        down[:, unit] = boost * embd[nxt] / act
    buf.flush()
    print(f"wrote {out}: greedy replies are "
          f"{''.join(chain[1:]).replace('Ċ', chr(10))!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
