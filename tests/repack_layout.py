#!/usr/bin/python3
"""tests/repack_layout.py MOEPOOL MODEL CASE.json: the x16 layout computes what the row-major
one computes, as closely as llama.cpp agrees with itself. `moepool logits` runs the same tokens
(ids below 1000: every model here has more) twice in separate processes: once with
MOEPOOL_LAYOUT=rows, dumping the router's choices, and once with the default (x16) layout, forced
to those choices; only the second may report repacking. Forcing the routing keeps a rounding
difference from sending a token through other experts (a difference of the model, not of the
arithmetic).

Bound: the x16 kernels compute the same exact integer block sums as the row-major dots and
differ only in the order of float operations (kernels/kq_x16.h), as llama.cpp's own runs differ
with their thread count or batch size. Such a difference is small in one dot, but the next
layer quantizes its input to 8 bits: a value near a rounding boundary goes the other way, and
these random-weight models amplify it layer after layer (measured: 0.18 of logits up to 13 on
lfm2moe-small-q4_k_m). The conformance case of the model (or of its kind) measured exactly this
for llama.cpp (llama_cpp_self_spread) and sets its forced-routing tolerance max_abs at 4x it:
the x16 logits must stay within max_abs of the row-major ones. A wrong layout (rows read from
the wrong place) moves logits by their own scale and fails."""
import os
import subprocess
import sys
import tempfile

import json

import numpy as np

moepool, model, case = sys.argv[1], sys.argv[2], sys.argv[3]
max_abs = json.load(open(case))["tolerance"]["max_abs"]
tokens = "1 17 400 93 1000 5 88 301 77 2 640 12 9 150 33 3"


def logits(layout, out, routing_flag, routing_file):
    env = dict(os.environ, MOEPOOL_LOG="debug")  # the repacking's line is a debug message
    if layout == "rows":
        env["MOEPOOL_LAYOUT"] = "rows"
    else:
        env.pop("MOEPOOL_LAYOUT", None)
    r = subprocess.run([moepool, "logits", "-m", model, "--tokens", tokens, "-o", out, "-t", "2",
                        routing_flag, routing_file], env=env, capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0:
        sys.exit(f"FAIL: {layout}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stderr


with tempfile.TemporaryDirectory() as d:
    rows_f, x16_f, route = (os.path.join(d, n) for n in ("rows.f32", "x16.f32", "routing.i32"))
    err_rows = logits("rows", rows_f, "--dump-routing", route)
    err_x16 = logits("x16", x16_f, "--force-routing", route)
    failures = []
    if "x16 layout" in err_rows:
        failures.append(f"the rows run repacked: {err_rows.strip()}")
    if "x16 layout" not in err_x16:
        failures.append(f"the default run did not report its repacking: {err_x16.strip()}")
    a, b = np.fromfile(rows_f, dtype=np.float32), np.fromfile(x16_f, dtype=np.float32)
    if a.shape != b.shape or a.size == 0 or not np.all(np.isfinite(b)):
        failures.append(f"logits shapes {a.shape} {b.shape} or non-finite values")
    else:
        scale = float(np.max(np.abs(a)))
        worst = float(np.max(np.abs(a - b)))
        print(f"{os.path.basename(model)}: max |x16 - rows| = {worst:.3g} (max |logit| {scale:.3g}"
              f", tolerance {max_abs:.3g}); identical: {bool(np.array_equal(a, b))}")
        if not worst <= max_abs:
            failures.append(f"max |diff| {worst:.4g} > {max_abs:.4g}")
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)
