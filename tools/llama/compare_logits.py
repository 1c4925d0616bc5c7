#!/usr/bin/python3
"""tools/llama/compare_logits.py: compares two logits files ([n_tokens][n_vocab] float32 LE, as
written by `moepool logits` and llama_logits) and prints, per file pair, the largest absolute
difference, the median over positions of the per-position largest difference, the logits'
standard deviation (for scale) and how often the argmax agrees (ties: lowest id, as the
conformance data). Needs numpy (Debian's python3-numpy).

usage: compare_logits.py N_VOCAB A.f32 B.f32 [LABEL]"""
import sys

import numpy as np


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    n_vocab = int(sys.argv[1])
    a = np.fromfile(sys.argv[2], dtype="<f4")
    b = np.fromfile(sys.argv[3], dtype="<f4")
    label = sys.argv[4] if len(sys.argv) == 5 else sys.argv[2]
    if a.size != b.size or a.size % n_vocab or a.size == 0:
        print(f"{label}: sizes differ or are not whole rows ({a.size}, {b.size})")
        return 1
    a = a.reshape(-1, n_vocab)
    b = b.reshape(-1, n_vocab)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        print(f"{label}: non-finite logits")
        return 1
    d = np.abs(a - b).max(axis=1)
    agree = (a.argmax(axis=1) == b.argmax(axis=1)).mean()
    print(f"{label}: {a.shape[0]} positions, max_abs {d.max():.4f}, median_abs "
          f"{np.median(d):.4f}, logit std {a.std():.3f}, argmax agreement {100 * agree:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
