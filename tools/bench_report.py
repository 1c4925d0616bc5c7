#!/usr/bin/python3
"""tools/bench_report.py META RAW OUT.md: the tables of the benchmark report, from the key=value
lines bench_report.sh wrote about the machine (META) and the JSON lines of `moepool bench` and
`llama_bench` (RAW, one object per test and round). Writes them into OUT.md between the markers
below, keeping the hand-written text around them (the whole file when the markers are absent)."""
import json
import os
import statistics
import sys

BEGIN, END = "<!-- bench_report:begin -->", "<!-- bench_report:end -->"
ENGINES = ("moepool", "llama.cpp")


def load(meta_path, raw_path):
    meta = {}
    with open(meta_path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            meta[k] = v
    runs = {}  # (engine, test) -> list of lines, one per round; cluster runs: "moepool@SETUP"
    order = []
    with open(raw_path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                setup = r.get("setup", "local")
                engine = r["engine"] if setup == "local" else f"{r['engine']}@{setup}"
                key = (engine, r["test"])
                runs.setdefault(key, []).append(r)
                if r["test"] not in order:
                    order.append(r["test"])
    return meta, runs, order


def spread(values):
    """(median, min, max) of a list of numbers."""
    return statistics.median(values), min(values), max(values)


def is_single(test):
    """Single-stream decode: the tests the memory roofline bounds."""
    return test.startswith("tg") or test == "batch1"


def own_roofline_pct(runs, test):
    """moepool's median % of roofline, each run against the bandwidth probed around it."""
    v = [l["tokens_per_s"] * l["decode_bytes_per_token"] / l["read_bw_bytes_per_s"]
         for l in runs.get(("moepool", test), [])]
    return 100 * statistics.median(v) if v else None


def rates(runs, engine, test):
    lines = runs.get((engine, test), [])
    return [s for l in lines for s in l["samples"]]


def fmt_rate(v):
    if not v:
        return "–"
    med, lo, hi = spread(v)
    return f"{med:.2f} ({lo:.2f}–{hi:.2f})"


def machine_table(meta):
    rows = [("date", meta.get("date")), ("CPU", meta.get("cpu")),
            ("cores", meta.get("cores")), ("memory", f"{meta.get('mem_gib')} GiB"),
            ("SIMD flags", meta.get("flags", "").strip()), ("kernel", meta.get("kernel")),
            ("moepool commit", meta.get("moepool_commit")),
            ("llama.cpp commit (node-llama-cpp)", meta.get("llama_commit")),
            ("threads", meta.get("threads")), ("rounds (interleaved)", meta.get("rounds")),
            ("bench options", f"`{meta.get('options')}`"),
            ("load average before / after (1, 5, 15 min)",
             f"{meta.get('load_before')} / {meta.get('load_after')}"),
            ("load average (1 min) after each round", meta.get("load_rounds", "").strip())]
    out = ["| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in rows]
    return out


def model_table(runs, order):
    mp = [l for t in order for l in runs.get(("moepool", t), [])]
    if not mp:
        return ["(no moepool lines)"], None
    first = mp[0]
    # The single-stream decode tests carry the probes taken around them (moepool bench); the
    # others the one taken at start-up.
    single = [t for t in order if is_single(t)] or order[:1]
    bw = spread([l["read_bw_bytes_per_s"] for l in mp if l["test"] == single[0]])
    per_tok = first["decode_bytes_per_token"]
    roof = bw[0] / per_tok
    out = ["| | |", "|---|---|",
           f"| file | `{first['model']}` ({first['model_bytes'] / 2**30:.2f} GiB) |",
           f"| moepool kernels | {first.get('simd', '?')} |",
           f"| bytes read per decode token | {per_tok / 1e9:.3f} GB |",
           f"| read bandwidth, {first['threads']} threads: median (min–max) | "
           f"{bw[0] / 1e9:.1f} GB/s ({bw[1] / 1e9:.1f}–{bw[2] / 1e9:.1f}) |",
           f"| decode roofline (bandwidth / bytes per token) | {roof:.1f} tok/s |"]
    return out, roof


def compare_table(runs, order, roof):
    out = ["| test | moepool tok/s: median (min–max) | llama.cpp tok/s: median (min–max) "
           "| moepool / llama.cpp | moepool % of roofline | llama.cpp % of roofline |",
           "|---|---|---|---|---|---|"]
    for t in order:
        m, l = rates(runs, "moepool", t), rates(runs, "llama.cpp", t)
        ratio = f"{statistics.median(m) / statistics.median(l):.2f}×" if m and l else "–"
        pct = ["", ""]
        if is_single(t) and roof:
            # moepool: each run against the bandwidth probed around it; llama.cpp, which has no
            # probe of its own, against the median of moepool's probes for the same test.
            own = own_roofline_pct(runs, t)
            pct[0] = f"{own:.1f}%" if own else ""
            pct[1] = f"{100 * statistics.median(l) / roof:.1f}%" if l else ""
        out.append(f"| {t} | {fmt_rate(m)} | {fmt_rate(l)} | {ratio} | {pct[0]} | {pct[1]} |")
    return out


def batch_prompt_table(runs, order):
    out = ["| test | moepool prompt tok/s | llama.cpp prompt tok/s |", "|---|---|---|"]
    any_row = False
    for t in order:
        v = [[l["prompt_tokens_per_s"] for l in runs.get((e, t), []) if "prompt_tokens_per_s" in l]
             for e in ENGINES]
        if any(v):
            any_row = True
            out.append(f"| {t} | {fmt_rate(v[0])} | {fmt_rate(v[1])} |")
    return out if any_row else []


def peak_rss(runs, engine):
    v = [l["peak_rss_bytes"] for (e, _), ls in runs.items() if e == engine for l in ls]
    return max(v) if v else None


def rss_table(runs):
    out = ["| engine | peak RSS (largest over rounds) |", "|---|---|"]
    for e in ENGINES:
        r = peak_rss(runs, e)
        out.append(f"| {e} | {r / 1e9:.2f} GB |" if r else f"| {e} | – |")
    return out


def targets_table(runs, order, roof):
    def med(engine, prefix):
        for t in order:
            if t.startswith(prefix):
                v = rates(runs, engine, t)
                return statistics.median(v) if v else None
        return None

    def ratio(prefix):
        m, l = med("moepool", prefix), med("llama.cpp", prefix)
        return m / l if m and l else None

    rss = peak_rss(runs, "moepool")
    tg_test = next((t for t in order if t.startswith("tg")), None)
    rows = [("single-stream decode vs llama.cpp", "≥ 1.0×", ratio("tg"), "{:.2f}×", 1.0),
            ("single-stream decode, % of roofline", "≥ 92%",
             own_roofline_pct(runs, tg_test) if tg_test else None, "{:.1f}%", 92.0),
            ("prompt processing vs llama.cpp", "≥ 2×", ratio("pp"), "{:.2f}×", 2.0),
            ("aggregate decode, 32 sequences, vs llama.cpp", "≥ 2×", ratio("batch32"),
             "{:.2f}×", 2.0)]
    out = ["| target | wanted | measured | met |", "|---|---|---|---|"]
    for name, want, got, f, bound in rows:
        shown = f.format(got) if got is not None else "not measured"
        met = "–" if got is None else ("yes" if got >= bound else "**no**")
        out.append(f"| {name} | {want} | {shown} | {met} |")
    if rss:
        out.append(f"| peak RSS, in-process experts | ≤ 5.5 GB | {rss / 1e9:.2f} GB | "
                   f"{'yes' if rss <= 5.5e9 else '**no**'} |")
    return out


CLUSTER_SETUPS = (("loopback", "loopback, default split"),
                  ("loopback-r2", "loopback, 2 full replicas"),
                  ("lan", "emulated LAN, default split"),
                  ("lan-r2", "emulated LAN, 2 full replicas"))


def load_worker_rss(meta_path):
    """worker_rss_SETUP lines repeat (one per worker and round): meta keeps only the last."""
    out = {}
    with open(meta_path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            if k.startswith("worker_rss_"):
                out[k[len("worker_rss_"):]] = max(out.get(k[len("worker_rss_"):], 0), int(v))
    return out


def cluster_rate(runs, setup, test, local):
    v = rates(runs, f"moepool@{setup}", test)
    if not v:
        return "–"
    pct = f" ({100 * statistics.median(v) / statistics.median(local):.0f}%)" if local else ""
    return f"{statistics.median(v):.2f}{pct}"


def cluster_table(meta, runs, order):
    setups = [(s, n) for s, n in CLUSTER_SETUPS if any(e == f"moepool@{s}" for e, _ in runs)]
    notes = [n for n in (meta.get("cluster"), meta.get("lan")) if n]
    if meta.get("lan_link"):
        notes.append(f"Emulated LAN (deploy/netns.sh): {meta['lan_link'].strip()}")
    if meta.get("lan_ping"):
        notes.append(f"Ping between two emulated hosts (50 × 64 bytes): {meta['lan_ping']}.")
    if meta.get("lan_delay"):
        notes.append("lan_delay's own account (how late it let packets go, per host): "
                     + " ".join(f"`{x.strip()}`" for x in meta["lan_delay"].split("|") if x))
    if not setups:
        return notes or ["not measured"]
    rss = meta.get("_worker_rss", {})
    out = [f"Coordinator with {meta.get('threads')} threads, 2 workers with "
           f"{meta.get('worker_threads')} each, all on this machine. tok/s medians, in brackets "
           "% of local (one process); bytes: per token per MoE layer on the wire (the first "
           "decode test's); RSS: the largest worker's peak.", ""]
    head = "| setup | " + " | ".join(f"{t} tok/s" for t in order) + " | bytes | worker RSS |"
    out += [head, "|---" * (len(order) + 3) + "|"]
    local = {t: rates(runs, "moepool", t) for t in order}
    out.append("| local (one process) | " + " | ".join(
        f"{statistics.median(local[t]):.2f}" if local[t] else "–" for t in order) + " | | |")
    dec = next((t for t in order if is_single(t)), order[0] if order else None)
    for s, name in setups:
        b = [l["bytes_per_token_layer"] for l in runs.get((f"moepool@{s}", dec), [])
             if "bytes_per_token_layer" in l]
        r = rss.get(s)
        cells = [cluster_rate(runs, s, t, local[t]) for t in order]
        cells.append(f"{statistics.median(b):.0f}" if b else "–")
        cells.append(f"{r / 1e9:.2f} GB" if r else "–")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    for s, name in setups:
        for test, want in (("tg", 80), ("batch32", 90)):
            tt = next((t for t in order if t.startswith(test)), None)
            v, lo = rates(runs, f"moepool@{s}", tt), local.get(tt)
            if tt and v and lo:
                got = 100 * statistics.median(v) / statistics.median(lo)
                out.append(f"\nTarget, {name}: {tt} at ≥ {want}% of local: {got:.0f}% "
                           f"({'met' if got >= want else '**not met**'}).")
    return out + ([""] + notes if notes else [])


def report(meta, runs, order):
    model, roof = model_table(runs, order)
    out = ["_Generated by `tools/bench_report.sh`; rerun it rather than editing this part._", "",
           "### Machine", ""] + machine_table(meta)
    out += ["", "### Model", ""] + model
    out += ["", "### moepool vs llama.cpp (same file, same threads, interleaved rounds)", ""]
    out += compare_table(runs, order, roof)
    bp = batch_prompt_table(runs, order)
    if bp:
        out += ["", "Prompt phase of the batch tests (all sequences' prompts batched "
                "together, llama-batched-bench's S_PP):", ""] + bp
    out += ["", "### Peak RSS", ""] + rss_table(runs)
    out += ["", "### Targets (issue 7)", ""] + targets_table(runs, order, roof)
    out += ["", "### Cluster", ""] + cluster_table(meta, runs, order) + [""]
    return "\n".join(out)


def splice(path, body):
    block = f"{BEGIN}\n{body}\n{END}\n"
    old = open(path).read() if os.path.exists(path) else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        new = head + block + ("\n" + tail if tail else "")
    else:
        new = "# Benchmark report\n\n" + block
    with open(path, "w") as f:
        f.write(new)


def main():
    meta, runs, order = load(sys.argv[1], sys.argv[2])
    meta["_worker_rss"] = load_worker_rss(sys.argv[1])
    splice(sys.argv[3], report(meta, runs, order))


if __name__ == "__main__":
    main()
