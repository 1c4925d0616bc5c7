#!/usr/bin/python3
"""tests/corrupt_gguf.py MOEPOOL MODEL.gguf: breaks a real GGUF file in known ways and checks that
`moepool inspect` and `moepool logits` refuse each copy with exit status 2 and one line on stderr
that names the file, never a crash or a sanitizer report. The header is parsed here (a minimal
reader of the GGUF layout, docs/gguf.md §1) to find the bytes to break."""
import os, struct, subprocess, sys, tempfile

SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def read_str(b, p):
    n = struct.unpack_from("<Q", b, p)[0]
    return b[p + 8:p + 8 + n].decode("utf-8", "replace"), p + 8 + n


def skip_value(b, p, t):
    if t == 8:
        return read_str(b, p)[1]
    if t == 9:
        et, n = struct.unpack_from("<IQ", b, p)
        p += 12
        for _ in range(n):
            p = skip_value(b, p, et)
        return p
    return p + SCALAR[t]


def layout(b):
    """Offsets of interesting fields: key values by name, tensor infos by name."""
    n_t, n_kv = struct.unpack_from("<QQ", b, 8)
    p, keys, tensors = 24, {}, {}
    for _ in range(n_kv):
        k, p = read_str(b, p)
        t = struct.unpack_from("<I", b, p)[0]
        keys[k] = (t, p + 4)
        p = skip_value(b, p + 4, t)
    for _ in range(n_t):
        start = p
        name, p = read_str(b, p)
        nd = struct.unpack_from("<I", b, p)[0]
        dims_at = p + 4
        p = dims_at + 8 * nd
        tensors[name] = {"name_at": start + 8, "dims_at": dims_at, "n_dims": nd, "type_at": p, "off_at": p + 4}
        p += 12
    return keys, tensors


def variants(b):
    keys, tensors = layout(b)
    first = next(iter(tensors))
    embd = tensors["token_embd.weight"]
    arch_at = keys["general.architecture"][1] + 8  # the string's bytes
    out = {
        "truncated-half": b[:len(b) // 2],
        "truncated-header": b[:100],
        "empty": b"",
        "bad-magic": b"GGUX" + b[4:],
        "version-1": b[:4] + struct.pack("<I", 1) + b[8:],
        "huge-tensor-count": b[:8] + struct.pack("<Q", 1 << 60) + b[16:],
        "huge-key-count": b[:16] + struct.pack("<Q", 1 << 60) + b[24:],
    }

    def patch(at, data):
        return b[:at] + data + b[at + len(data):]

    out["unknown-architecture"] = patch(arch_at, b"x")
    out["tensor-type-unknown"] = patch(tensors[first]["type_at"], struct.pack("<I", 77))
    out["tensor-type-changed"] = patch(tensors[first]["type_at"], struct.pack("<I", 16))
    out["tensor-offset-past-eof"] = patch(embd["off_at"], struct.pack("<Q", 1 << 40))
    out["tensor-row-not-whole-blocks"] = patch(embd["dims_at"], struct.pack("<Q", 128))
    # The last tensor can shrink without moving any other: the reader accepts it, the model
    # binding must not.
    last = tensors[list(tensors)[-1]]
    outer = last["dims_at"] + 8 * (last["n_dims"] - 1)
    out["tensor-shape-wrong"] = patch(outer, struct.pack("<Q", struct.unpack_from("<Q", b, outer)[0] // 2))
    out["tensor-missing"] = patch(tensors["blk.1.ffn_gate_exps.weight"]["name_at"], b"X")
    return out


def main():
    moepool, model = sys.argv[1], sys.argv[2]
    data = open(model, "rb").read()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, blob in variants(data).items():
            path = os.path.join(tmp, name + ".gguf")
            open(path, "wb").write(blob)
            for cmd in (["inspect", path], ["logits", "-m", path, "--tokens", "1 2 3", "-o",
                                            os.path.join(tmp, "out.f32")]):
                r = subprocess.run([moepool] + cmd, capture_output=True, text=True, timeout=60)
                lines = r.stderr.strip().splitlines()
                ok = (r.returncode == 2 and len(lines) == 1 and path in lines[0]
                      and "Sanitizer" not in r.stderr and "runtime error" not in r.stderr)
                print(f"{'ok  ' if ok else 'FAIL'} {cmd[0]:8} {name:26} exit {r.returncode}: "
                      f"{lines[-1] if lines else '(no message)'}")
                failures += not ok
    print(f"corrupt_gguf: {failures} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
