#!/usr/bin/env python3
"""tests/placement/cli_test.py: `moepool placement` end to end, as a user runs it.

    cli_test.py MOEPOOL MODELS_DIR TMP_DIR record|cli

record: for each model, `moepool placement record --tokens IDS` must count exactly the experts
        that `moepool logits --dump-routing` reports for the same tokens (same windows: one
        sequence, one batch), activations and co-activated pairs alike.
cli:    plan -> show for every policy, and bad input: each must exit 2 with one clear line.
"""
import itertools
import json
import os
import subprocess
import sys

import numpy as np

MOEPOOL, MODELS, TMP, MODE = sys.argv[1:5]
failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL", msg)


def run(*args, want_rc=0, want_err=None):
    p = subprocess.run([MOEPOOL, *args], capture_output=True, text=True)
    if p.returncode != want_rc:
        fail(f"{' '.join(args)}: exit {p.returncode} (want {want_rc}): {p.stderr.strip()}")
    if want_err is not None:
        lines = p.stderr.strip().splitlines()
        if len(lines) != 1 or want_err not in lines[0]:
            fail(f"{' '.join(args)}: stderr {p.stderr!r}, want one line with {want_err!r}")
    return p.stdout


TEXT = ("Experts are chosen per token; the statistics count how often each one is chosen and "
        "which ones are chosen together. 3.14159, print('hi'), Zürich, 東京.")


def record_vs_dump(model):
    path = os.path.join(MODELS, model)
    ids = run("tokenize", "-m", path, "--", TEXT).split()
    n = len(ids)
    stats = os.path.join(TMP, model + ".stats.json")
    dump = os.path.join(TMP, model + ".routing.i32")
    run("logits", "-m", path, "--tokens", " ".join(ids), "-o", os.path.join(TMP, "x.f32"),
        "--dump-routing", dump)
    run("placement", "record", "-m", path, "--tokens", " ".join(ids), "--ctx", str(n),
        "-o", stats)
    with open(stats) as f:
        s = json.load(f)
    n_layers, n_expert = s["n_moe_layers"], s["n_expert"]
    routing = np.fromfile(dump, dtype=np.int32).reshape(n_layers, n, -1)
    for l in range(n_layers):
        counts = np.zeros(n_expert, dtype=np.int64)
        pairs = {}
        for t in range(n):
            chosen = sorted(set(routing[l, t].tolist()))
            counts[chosen] += 1
            for a, b in itertools.combinations(chosen, 2):
                pairs[(a, b)] = pairs.get((a, b), 0) + 1
        layer = s["layers"][l]
        got_pairs = {(a, b): c for a, b, c in layer["pairs"]}
        if layer["tokens"] != n or layer["counts"] != counts.tolist() or got_pairs != pairs:
            fail(f"{model}: layer {l}: recorded statistics differ from --dump-routing")
    print(f"{model}: {n} tokens x {n_layers} MoE layers: record matches --dump-routing")


def cli():
    model = os.path.join(MODELS, "lfm2moe-small-q4_k_m.gguf")
    other = os.path.join(MODELS, "qwen3moe-tiny-q8_0.gguf")
    text = os.path.join(TMP, "text.txt")
    with open(text, "w") as f:
        f.write(TEXT * 5)
    stats = os.path.join(TMP, "cli.stats.json")
    run("placement", "record", "-m", model, "-f", text, "-o", stats, "--ctx", "128")
    for policy in ["contiguous", "striped", "capacity", "balanced"]:
        out = os.path.join(TMP, f"cli.{policy}.json")
        run("placement", "plan", "-m", model, "--policy", policy, "--stats", stats,
            "--workers", "local:mem=8M:cores=2,w1:cores=2,w2:mem=1G", "-o", out)
        shown = run("placement", "show", out, "-m", model, "--stats", stats)
        rows = [l.split() for l in shown.splitlines() if l.startswith(("local ", "w1 ", "w2 "))]
        if len(rows) != 3 or sum(int(r[1]) for r in rows) != 5 * 16:
            fail(f"show {policy}: {shown}")
        elif abs(sum(float(r[3].rstrip("%")) for r in rows) - 100) > 0.2:  # 3 x 0.05% rounding
            fail(f"show {policy}: loads do not add up to 100%: {shown}")
        if policy == "balanced":
            print(shown)
    p = os.path.join(TMP, "cli.balanced.json")
    # Bad input: exit status 2 and one line naming what is wrong.
    run("placement", "plan", "-m", model, "--policy", "random", "--workers", "2", "-o", p,
        want_rc=2, want_err="unknown policy 'random'")
    run("placement", "plan", "-m", model, "--policy", "balanced", "--workers", "2", "-o", p,
        want_rc=2, want_err="needs routing statistics")
    run("placement", "plan", "-m", model, "--policy", "striped", "--workers", "a:mem=1M,b:mem=1M",
        "-o", p, want_rc=2, want_err="do not fit")
    run("placement", "plan", "-m", model, "--policy", "striped", "--workers", "a:ram=1M", "-o",
        p, want_rc=2, want_err="bad option 'ram=1M'")
    run("placement", "plan", "-m", other, "--policy", "balanced", "--workers", "2", "--stats",
        stats, "-o", p, want_rc=2, want_err="routing statistics are for lfm2moe")
    run("placement", "show", p, "-m", other, want_rc=2,
        want_err="placement is for lfm2moe, the model is qwen3moe")
    # Same architecture and shape, another file: the fingerprint written by plan tells them apart.
    q8 = os.path.join(MODELS, "lfm2moe-tiny-q8_0.gguf")
    run("placement", "plan", "-m", q8, "--policy", "striped", "--workers", "2", "-o", p)
    run("placement", "show", p, "-m", q8)
    run("placement", "show", p, "-m", os.path.join(MODELS, "lfm2moe-tiny-q4_0.gguf"), want_rc=2,
        want_err="placement is for model file")
    run("placement", "show", os.path.join(TMP, "missing.json"), want_rc=1,
        want_err="missing.json: cannot open")
    run("placement", "show", stats, want_rc=2, want_err="\"format\" must be \"moepool-placement\"")
    run("placement", "show", want_rc=2)
    run("placement", "frobnicate", want_rc=2)
    run("placement", "record", "-m", model, "-o", p, want_rc=2)
    run("placement", "record", "-m", model, "--tokens", "1 x", "-o", p, want_rc=2,
        want_err="--tokens must be a list")
    run("placement", "record", "-m", model, "--tokens", "1 999999", "-o", p, want_rc=2)


if MODE == "record":
    for m in ["lfm2moe-small-q4_k_m.gguf", "lfm2moe-tiny-q8_0.gguf", "qwen3moe-tiny-q4_k_m.gguf"]:
        record_vs_dump(m)
else:
    cli()
print("FAILED" if failures else "ok")
sys.exit(1 if failures else 0)
