#!/usr/bin/env python3
"""tests/server/cluster_serve_test.py MOEPOOL MODEL: `moepool serve --cluster` with two real
`moepool worker` processes over ZeroMQ on loopback. Greedy chat output must equal the in-process
server's exactly (--exact makes the cluster's expert sums bit-identical to eb_local's, see
coordinator/cluster.h; --split pipelines each batch's halves, prompts included, through the
routing statistics' backend, with the same output), /metrics shows both workers with jobs, and
everything exits 0 on SIGTERM."""
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import time

MOEPOOL, MODEL = sys.argv[1], sys.argv[2]
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what, flush=True)


def serve(*args):
    p = subprocess.Popen([MOEPOOL, "serve", "-m", MODEL, "--port", "0", "-t", "1", "-np", "4",
                          "-c", "256", *args], stdout=subprocess.PIPE, text=True)
    m = re.search(r"http://[^:]+:(\d+) ", p.stdout.readline())
    if not m:
        raise SystemExit("serve did not start")
    return p, int(m.group(1))


def get(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    c.request(method, path, body=json.dumps(body) if body else None)
    r = c.getresponse()
    return r.status, r.read().decode()


def chats(port):
    out = []
    for text in ["Tell me a story", "What is two plus two?"]:
        st, body = get(port, "POST", "/v1/chat/completions", {
            "messages": [{"role": "user", "content": text}], "max_tokens": 16, "temperature": 0})
        check(st == 200, "chat status %d" % st)
        out.append(json.loads(body)["choices"][0]["message"]["content"] if st == 200 else None)
    return out


def stop(p, what):
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=120)
    check(rc == 0, "%s exits 0 on SIGTERM (got %d)" % (what, rc))


def main():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))  # a free port for the cluster's ROUTER socket
    endpoint = "tcp://127.0.0.1:%d" % s.getsockname()[1]
    s.close()
    # The coordinator serves HTTP before its workers join: /health and completions say 503
    # with the reason until every worker is ready.
    p, port = serve("--cluster", endpoint, "--expect-workers", "2", "--exact", "--split")
    st, body = get(port, "GET", "/health")
    check(st == 503 and "0 of 2 workers joined" in body, "health before workers: %d %s" % (st, body))
    st, body = get(port, "POST", "/v1/chat/completions",
                   {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    check(st == 503 and "not ready" in body, "chat before workers: %d %s" % (st, body))
    workers = [subprocess.Popen([MOEPOOL, "worker", "--join", endpoint, "--model", MODEL, "-t",
                                 "1"], stderr=subprocess.DEVNULL) for _ in range(2)]
    for _ in range(600):  # the workers load in well under a second; 60 s covers a loaded machine
        if get(port, "GET", "/health")[0] == 200:
            break
        time.sleep(0.1)
    check(get(port, "GET", "/health")[0] == 200, "health once the workers are ready")
    remote = chats(port)
    st, text = get(port, "GET", "/metrics")
    jobs = [float(v) for v in re.findall(r'^moepool_worker_jobs_total\{worker="\d"\} (\S+)$',
                                         text, re.M)]
    check(st == 200 and len(jobs) == 2 and all(j > 0 for j in jobs), "both workers ran jobs")
    check("moepool_cluster_workers_ready 2" in text, "both workers ready")
    stop(p, "serve --cluster")
    for w in workers:
        stop(w, "worker")
    q, port = serve()
    local = chats(port)
    stop(q, "serve")
    check(remote == local, "cluster output equals in-process output: %r vs %r" %
          (remote, local))
    print("cluster_serve_test: %s" % ("all passed" if not failures else "%d failed" % failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
