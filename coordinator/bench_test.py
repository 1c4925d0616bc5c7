#!/usr/bin/python3
"""coordinator/bench_test.py MOEPOOL MODEL [--cluster]: `moepool bench --json` on a tiny model
with tiny sizes. Checks that every line is one JSON object with the fields tools/bench_report.sh
reads and that they agree with each other and with the file; bad arguments are refused with a
usage line. --cluster: also the bench with its experts on two `moepool worker` processes over
loopback, and its expert traffic per token and MoE layer. No timing is asserted: only that rates
are positive and finite (the machine is shared)."""
import json
import math
import os
import socket
import struct
import subprocess
import sys

moepool, model = sys.argv[1], sys.argv[2]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)



# A minimal GGUF reader (docs/gguf.md): metadata integers and each tensor's name and data offset.
SCALAR = {0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4),
          6: ("<f", 4), 7: ("<B", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8)}


def read_str(b, p):
    n = struct.unpack_from("<Q", b, p)[0]
    return b[p + 8:p + 8 + n].decode("utf-8", "replace"), p + 8 + n


def read_value(b, p, t):
    if t == 8:
        return read_str(b, p)
    if t == 9:
        et, n = struct.unpack_from("<IQ", b, p)
        p += 12
        for _ in range(n):
            p = read_value(b, p, et)[1]
        return None, p
    fmt, size = SCALAR[t]
    return struct.unpack_from(fmt, b, p)[0], p + size


def expected_decode_bytes(path):
    """Bytes a decode token reads, computed independently of moepool: each tensor's size is the
    gap to the next tensor's data (so it includes alignment padding, at most `alignment` bytes
    per tensor); experts count k/n of their size, an untied token embedding not at all."""
    b = open(path, "rb").read()
    n_t, n_kv = struct.unpack_from("<QQ", b, 8)
    p, kv, tensors = 24, {}, []
    for _ in range(n_kv):
        k, p = read_str(b, p)
        t = struct.unpack_from("<I", b, p)[0]
        kv[k], p = read_value(b, p + 4, t)
    for _ in range(n_t):
        name, p = read_str(b, p)
        nd = struct.unpack_from("<I", b, p)[0]
        p += 4 + 8 * nd + 4
        tensors.append((struct.unpack_from("<Q", b, p)[0], name))
        p += 8
    align = kv.get("general.alignment", 32)
    data = (p + align - 1) // align * align
    tensors.sort()
    ends = [off for off, _ in tensors[1:]] + [len(b) - data]
    arch = kv["general.architecture"]
    frac = kv[f"{arch}.expert_used_count"] / kv[f"{arch}.expert_count"]
    names = {name for _, name in tensors}
    total = 0.0
    for (off, name), end in zip(tensors, ends):
        if "_exps." in name:
            total += frac * (end - off)
        elif name != "token_embd.weight" or "output.weight" not in names:
            total += end - off
    return total, align * len(tensors), kv[f"{arch}.embedding_length"]


args = [moepool, "bench", "-m", model, "-t", "2", "-p", "16", "-n", "4", "--batch", "1,3",
        "--batch-prompt", "5", "--batch-gen", "3", "--tg-prompt", "2", "-r", "3", "--ubatch", "8",
        "--probe-mib", "16", "--json"]
out = subprocess.run(args, capture_output=True, text=True, timeout=600)
check(out.returncode == 0, f"exit status {out.returncode}: {out.stderr.strip()}")
lines = [json.loads(l) for l in out.stdout.splitlines()]
check([l["test"] for l in lines] == ["pp16", "tg4", "batch1", "batch3"],
      f"tests {[l['test'] for l in lines]}")
expect = {"pp16": (1, 16, 0), "tg4": (1, 2, 4), "batch1": (1, 5, 3), "batch3": (3, 5, 3)}
size = os.path.getsize(model)
rss = 0
want_bytes, padding, n_embd = expected_decode_bytes(model)
for l in lines:
    t = l["test"]
    check(l["engine"] == "moepool" and l["model"] == os.path.basename(model), f"{t}: names")
    check(l["threads"] == 2 and l["reps"] == 3 and len(l["samples"]) == 3, f"{t}: counts")
    want_layout = "rows" if os.environ.get("MOEPOOL_LAYOUT") == "rows" else "x16"
    check(l["layout"] == want_layout, f"{t}: layout {l['layout']}, expected {want_layout}")
    check((l["n_seq"], l["n_prompt"], l["n_gen"]) == expect[t], f"{t}: shape")
    check(l["model_bytes"] == size, f"{t}: model_bytes {l['model_bytes']} != {size}")
    s = sorted(l["samples"])
    check(all(math.isfinite(x) and x > 0 for x in s), f"{t}: samples {s}")
    # Printed with 3 decimals: the median of 3 samples is the middle one exactly.
    check(l["min"] == s[0] and l["max"] == s[2] and l["tokens_per_s"] == s[1], f"{t}: stats")
    # ru_maxrss only grows, and a process that mapped and read the weights holds at least the
    # tensors it touched; the whole file is an upper bound for those, so only check > 0 here.
    check(l["peak_rss_bytes"] > 0 and l["peak_rss_bytes"] >= rss, f"{t}: peak RSS")
    rss = l["peak_rss_bytes"]
    # A decode token reads less than the whole file (only k of n experts) but more than nothing.
    check(0 < l["decode_bytes_per_token"] < size, f"{t}: bytes/token")
    # The reader above counts padding between tensors, which moepool rightly does not.
    got = l["decode_bytes_per_token"]
    check(want_bytes - padding <= got <= want_bytes + 1,
          f"{t}: bytes/token {got} vs {want_bytes} (padding up to {padding})")
    check(l["read_bw_bytes_per_s"] > 0, f"{t}: bandwidth")
    roof = "roofline_tokens_per_s" in l
    check(roof == (t in ("tg4", "batch1")), f"{t}: roofline present {roof}")
    if roof:
        want = l["read_bw_bytes_per_s"] / l["decode_bytes_per_token"]
        # Both sides printed rounded (bandwidth to 1 B/s, bytes to 1 B, rate to 1e-3): 1e-3.
        check(abs(l["roofline_tokens_per_s"] - want) <= 1e-3 * want, f"{t}: roofline value")
        pct = 100 * l["tokens_per_s"] / l["roofline_tokens_per_s"]
        check(abs(l["roofline_pct"] - pct) <= 0.01 + 1e-3 * pct, f"{t}: roofline %")
    check(("prompt_tokens_per_s" in l) == (t == "batch3"), f"{t}: prompt rate present")

# The text table: a header and one row per test.
txt = subprocess.run(args[:-1], capture_output=True, text=True, timeout=600)
rows = [r.split()[0] for r in txt.stdout.splitlines()[3:]]
check(txt.returncode == 0 and rows == ["pp16", "tg4", "batch1", "batch3"], f"text rows {rows}")

# Bad input: one clear line, exit status 2, never a crash.
for bad in (["-m", model, "--batch", "1,x"], ["-m", model, "-r", "0"], ["-m", model, "-t", "-1"],
            ["-p", "3"], ["-m", "/nonexistent.gguf", "--probe-mib", "1"],
            ["-m", model, "--probe-mib", "1", "--cluster", "tcp://127.0.0.1:1"]):
    r = subprocess.run([moepool, "bench"] + bad, capture_output=True, text=True, timeout=60)
    check(r.returncode == 2 and r.stderr.strip() and r.stdout == "",
          f"{bad}: exit {r.returncode}, stderr {r.stderr.strip()!r}")



def free_port():
    """A TCP port nobody listens on now (the bench binds it right after: a race only with
    another process picking the same port in that instant)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_cluster():
    port = free_port()
    workers = [subprocess.Popen([moepool, "worker", "--join", f"tcp://127.0.0.1:{port}",
                                 "--model", model, "-t", "1", "--exit-after", "300"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(2)]
    try:
        r = subprocess.run([moepool, "bench", "-m", model, "-t", "1", "-p", "8", "-n", "3",
                            "--batch", "3", "--batch-prompt", "4", "--batch-gen", "2", "-r", "1",
                            "--probe-mib", "16", "--json", "--cluster",
                            f"tcp://127.0.0.1:{port}", "--expect-workers", "2"],
                           capture_output=True, text=True, timeout=600)
    finally:
        for w in workers:
            w.kill()
            w.wait()
    check(r.returncode == 0, f"cluster: exit status {r.returncode}: {r.stderr.strip()[-300:]}")
    cl = [json.loads(l) for l in r.stdout.splitlines()]
    check([l["test"] for l in cl] == ["pp8", "tg3", "batch3"], f"cluster: tests {cl}")
    for l in cl:
        check(l["cluster_workers"] == 2 and l["wire"] == "f32" and l["local_shard"] is False,
              f"cluster {l['test']}: setup fields")
        check(l["tokens_per_s"] > 0, f"cluster {l['test']}: rate")
        # Each token of each MoE layer goes out as n_embd f32 activations and comes back as an
        # n_embd f32 sum at least once; more when its experts sit on both workers, plus ids,
        # weights and message framing. Four times the minimum bounds all that for k <= 8.
        low = 2 * 4 * n_embd
        check(low <= l["bytes_per_token_layer"] <= 4 * low,
              f"cluster {l['test']}: {l['bytes_per_token_layer']} bytes per token and layer, "
              f"want {low}..{4 * low}")


if "--cluster" in sys.argv[3:]:
    check_cluster()

print(f"bench_json: {len(lines)} lines, {len(failures)} failures")
sys.exit(1 if failures else 0)
