#!/usr/bin/python3
"""`moepool run` and `moepool tokenize` on bad input: each case must end with the documented
exit status and one clear line on stderr, never a crash (docs/chat.md, docs/tokenizer.md §5).

usage: run_cli.py MOEPOOL WORKDIR

Models are real GGUF files written by `moepool synth` (the tiny lfm2moe preset, Q8_0) into
WORKDIR: one as the presets make it, one without any tokenizer.* key, one with a chat template
moepool does not know and one with no template at all."""
import os
import re
import subprocess
import sys

MOEPOOL, WORK = sys.argv[1], sys.argv[2]
failures = 0
passed = 0


def synth(name, *extra):
    path = os.path.join(WORK, name)
    subprocess.run([MOEPOOL, "synth", "--quiet", "--preset", "tiny", "--type", "q8_0", "-o", path,
                    *extra], check=True, stdout=subprocess.DEVNULL)
    return path


def run(*args, stdin=None):
    # bytes in and out: prompts with invalid UTF-8 must reach moepool unchanged
    r = subprocess.run([MOEPOOL, *args], input=stdin, capture_output=True, timeout=120)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


def case(name, args, want_rc, err_pattern=None, err_lines=None, out=None):
    """Runs moepool with args; checks the exit status, that stderr matches err_pattern (a regex)
    and has err_lines lines (None: any), and stdout if out is given. Returns (stdout, stderr)."""
    global failures, passed
    rc, o, e = run(*args)
    why = []
    if rc != want_rc:
        why.append(f"exit status {rc}, want {want_rc}")
    if rc < 0 or rc >= 128:
        why.append("killed by a signal")
    if err_pattern and not re.search(err_pattern, e):
        why.append(f"stderr does not match {err_pattern!r}")
    lines = e.splitlines()
    if err_lines is not None and len(lines) != err_lines:
        why.append(f"{len(lines)} lines on stderr, want {err_lines}")
    if out is not None and o != out:
        why.append(f"stdout {o[:80]!r}, want {out[:80]!r}")
    if why:
        failures += 1
        print(f"FAIL {name}: {'; '.join(why)}\n  stderr: {e.strip()[:400]}")
    else:
        passed += 1
        print(f"ok   {name}")
    return o, e


def main():
    os.makedirs(WORK, exist_ok=True)
    good = synth("run-good.gguf")
    notok = synth("run-notok.gguf", "--no-tokenizer")
    odd = synth("run-oddtmpl.gguf", "--chat-template", "{% for m in messages %}{{ m.content }}"
                "{% endfor %}")
    none = synth("run-notmpl.gguf", "--chat-template", "")
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "data", "LFM2.5-8B-A1B.jinja"), encoding="utf-8") as f:
        lfm25 = synth("run-lfm25.gguf", "--chat-template", f.read())
    qwen3 = os.path.join(WORK, "run-qwen3.gguf")
    subprocess.run([MOEPOOL, "synth", "--quiet", "--preset", "qwen3-tiny", "--type", "q8_0", "-o",
                    qwen3], check=True, stdout=subprocess.DEVNULL)
    base = ["run", "-t", "1", "--seed", "7"]
    timing = r"prompt \d+ tokens .* generated \d+ tokens"

    # Invalid UTF-8: read as llama.cpp reads it (docs/tokenizer.md §3), with one warning. Each
    # bad byte here stands alone, so Python's "replace" gives the same U+FFFD per byte.
    bad = b"caf\xe9 \xff\xfe ok \x80 end"
    fixed = bad.decode("utf-8", "replace").encode()
    o, _ = case("run: invalid UTF-8 prompt", base + ["-m", good, "-p", bad, "-n", "4"], 0,
                r"^moepool run: warning: the prompt is not valid UTF-8[^\n]*\n[^\n]*" + timing,
                err_lines=2)
    o2, _ = case("run: the same prompt with U+FFFD written out", base +
                 ["-m", good, "-p", fixed, "-n", "4"], 0, timing, err_lines=1)
    check_equal("run: invalid bytes generate as U+FFFD does", o, o2)
    o, _ = case("tokenize: invalid UTF-8", ["tokenize", "-m", good, "--", bad], 0,
                r"^moepool tokenize: warning: the text is not valid UTF-8", err_lines=1)
    o2, _ = case("tokenize: U+FFFD written out", ["tokenize", "-m", good, "--", fixed], 0,
                 err_lines=0)
    check_equal("tokenize: invalid bytes give U+FFFD's ids", o, o2)
    o, _ = case("tokenize: overlong form", ["tokenize", "-m", good, "--", b"\xc1\x81BC"], 0,
                r"not valid UTF-8", err_lines=1)
    o2, _ = case("tokenize: its value", ["tokenize", "-m", good, "--", "ABC"], 0, err_lines=0)
    check_equal("tokenize: an overlong form reads as its value, as in llama.cpp", o, o2)

    # The prompt does not fit the context.
    case("run: prompt longer than the context", base + ["-m", good, "-p", "word " * 40, "-c", "16"],
         2, r"^moepool run: the prompt is \d+ tokens, longer than the context of 16 \(use -c\)\n$")
    case("run: context fills up while generating", base + ["-m", good, "-p", "hello", "-c", "8",
         "-n", "50"], 0, r"the context of 8 tokens is full")

    # Files that cannot serve.
    case("run: GGUF without a tokenizer", base + ["-m", notok, "-p", "hi"], 2,
         r"^moepool run: .*run-notok\.gguf: no tokenizer \(tokenizer\.ggml\.model missing\)\n$")
    case("tokenize: GGUF without a tokenizer", ["tokenize", "-m", notok, "--", "hi"], 2,
         r"run-notok\.gguf: no tokenizer", err_lines=1)
    case("run: nonexistent file", base + ["-m", os.path.join(WORK, "nope.gguf"), "-p", "hi"], 2,
         r"^moepool run: .*nope\.gguf: cannot open: No such file or directory\n$")
    case("tokenize: nonexistent file", ["tokenize", "-m", os.path.join(WORK, "nope.gguf"), "x"],
         2, r"nope\.gguf: cannot open", err_lines=1)

    # Chat templates: unknown or missing means ChatML and exactly one warning.
    for label, path in (("unknown", odd), ("missing", none)):
        case(f"run --chat: {label} template", base + ["-m", path, "-p", "hi", "-n", "2", "--chat"],
             0, r"^moepool run: warning: chat template not recognised, using ChatML\n"
             r"moepool run: " + timing, err_lines=2)
    case("run --chat: the real LFM2 template, no warning", base + ["-m", good, "-p", "hi", "-n",
         "2", "--chat"], 0, r"^moepool run: " + timing, err_lines=1)
    case("run --chat: the LFM2.5 template is recognised", base + ["-m", lfm25, "-p", "hi", "-n",
         "2", "--chat"], 0, r"^moepool run: " + timing, err_lines=1)
    # Qwen3 with --no-think: the generation prompt gains an empty <think> block
    _, think = case("run --chat: Qwen3", base + ["-m", qwen3, "-p", "hi", "-n", "1", "--chat"], 0,
                    timing, err_lines=1)
    _, no_think = case("run --chat --no-think: Qwen3", base + ["-m", qwen3, "-p", "hi", "-n", "1",
                       "--chat", "--no-think"], 0, timing, err_lines=1)
    n_think, n_no_think = (int(re.search(r"prompt (\d+) tokens", e).group(1))
                           for e in (think, no_think))
    # <think>, "\n\n", </think>, "\n\n": at least the two special tokens and some newlines
    check_equal("run --no-think: 4 more prompt tokens or so", n_no_think - n_think >= 3, True)

    # -n 0: the prompt is read, nothing is generated.
    case("run: -n 0", base + ["-m", good, "-p", "hello", "-n", "0"], 0,
         r"generated 0 tokens", err_lines=1, out=b"\n")

    # Numbers are checked whole and in range; each mistake is one line naming the option.
    for args, pattern in (
            (["-n", "12x"], r"-n '12x': want an integer from 0 to"),
            (["-n", "-3"], r"-n '-3': want an integer"),
            (["-t", "0"], r"-t '0': want an integer from 1 to"),
            (["-c", "99999999999"], r"-c '99999999999': want an integer"),
            (["--temp", "nan"], r"--temp 'nan': want a number"),
            (["--temp", "hot"], r"--temp 'hot': want a number"),
            (["--top-p", "1.5"], r"--top-p '1.5': want a number from 0 to 1"),
            (["--min-p", "-0.1"], r"--min-p '-0.1': want a number"),
            (["--top-k", "ten"], r"--top-k 'ten': want an integer"),
            (["--seed", "-1"], r"--seed '-1': want a non-negative integer"),
            (["--repeat-penalty", "0"], r"--repeat-penalty '0': want a number"),
            (["--frobnicate"], r"unknown option '--frobnicate'"),
            (["-n"], r"missing value for option '-n'"),
            (["surplus"], r"unexpected argument 'surplus'")):
        case(f"run: bad argument {' '.join(args)}", ["run", "-m", good, "-p", "hi", *args], 2,
             r"^moepool run: " + pattern, err_lines=1)
    case("run: no prompt", ["run", "-m", good], 2, r"-p PROMPT are required", err_lines=1)

    # The same seed gives the same text (sampling at the default temperature).
    a, _ = case("run: seed 11", ["run", "-t", "1", "-m", good, "-p", "Once", "-n", "12",
                "--seed", "11"], 0)
    b, _ = case("run: seed 11 again", ["run", "-t", "1", "-m", good, "-p", "Once", "-n", "12",
                "--seed", "11"], 0)
    check_equal("run: a seed reproduces the text", a, b)

    print(f"run cli: {passed} passed, {failures} failed")
    return 1 if failures else 0


def check_equal(name, a, b):
    global failures, passed
    if a != b:
        failures += 1
        print(f"FAIL {name}: {a[:80]!r} != {b[:80]!r}")
    else:
        passed += 1
        print(f"ok   {name}")


if __name__ == "__main__":
    sys.exit(main())
