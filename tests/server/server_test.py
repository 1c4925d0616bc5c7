#!/usr/bin/env python3
"""tests/server/server_test.py MOEPOOL MODEL: `moepool serve` end to end over real HTTP.

Starts real server processes on free loopback ports (port 0) and checks, with the standard
library's http.client only: health and models; chat and plain completions, streamed (OpenAI's
SSE chunk format ending with [DONE]) and not, agreeing with each other under greedy decoding;
tools and tool results in a conversation; every error case (malformed JSON, wrong types,
unknown model, unknown path, missing or wrong API key, oversized prompt, full queue with
Retry-After) with OpenAI's error object; 32 concurrent streams that all finish and equal their
solo greedy outputs; a client hanging up mid-stream frees its slot and the server goes on;
/metrics parses as Prometheus text; SIGTERM shuts down cleanly."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MOEPOOL, MODEL = sys.argv[1], sys.argv[2]
KEY = "sk-test-key"
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what, flush=True)


class Server:
    def __init__(self, *args):
        self.proc = subprocess.Popen([MOEPOOL, "serve", "-m", MODEL, "--port", "0", "-t", "1",
                                      *args], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"http://[^:]+:(\d+)", line)
        if not m:
            raise SystemExit("server did not start: %r" % line)
        self.port = int(m.group(1))
        self.model = re.search(r"model '([^']+)'", line).group(1)

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)

    def request(self, method, path, body=None, key=KEY, raw=None):
        c = self.conn()
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = "Bearer " + key
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        return r.status, dict(r.getheaders()), text

    def json(self, method, path, body=None, **kw):
        status, headers, text = self.request(method, path, body, **kw)
        return status, headers, json.loads(text)

    def stream(self, path, body, key=KEY):
        """Yields the JSON of each `data:` event; the last item is the string '[DONE]'."""
        c = self.conn()
        c.request("POST", path, body=json.dumps(body),
                  headers={"Content-Type": "application/json", "Authorization": "Bearer " + key})
        r = c.getresponse()
        check(r.status == 200, "stream status %d" % r.status)
        check(r.getheader("Content-Type", "").startswith("text/event-stream"), "SSE type")
        events = []
        for line in r:
            line = line.decode().rstrip("\n")
            if not line.startswith("data: "):
                check(line == "", "SSE lines are data: or blank, got %r" % line)
                continue
            payload = line[6:]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
        c.close()
        return events

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=120)
        check(rc == 0, "server exits 0 on SIGTERM (got %d)" % rc)


def chat_body(server, text, n=24, **extra):
    body = {"model": server.model, "messages": [{"role": "user", "content": text}],
            "max_tokens": n, "temperature": 0}
    body.update(extra)
    return body


def stream_text(events, chat=True):
    out = ""
    for e in events[:-1]:
        if "error" in e:
            check(False, "stream error event: %s" % e)
            continue
        for ch in e["choices"]:
            out += (ch["delta"].get("content") or "") if chat else ch["text"]
    return out


def test_basics(s):
    st, _, body = s.json("GET", "/health")
    check(st == 200 and body["status"] == "ok", "health")
    st, _, body = s.json("GET", "/v1/models")
    check(st == 200 and body["object"] == "list" and body["data"][0]["id"] == s.model, "models")
    st, h, text = s.request("GET", "/")
    check(st == 200 and h.get("Content-Type", "").startswith("text/html"), "chat page at /")


def test_chat(s):
    st, _, r = s.json("POST", "/v1/chat/completions", chat_body(s, "Tell me a story"))
    check(st == 200, "chat status %d %s" % (st, r))
    check(r["object"] == "chat.completion" and r["id"].startswith("chatcmpl-"), "chat object")
    ch = r["choices"][0]
    check(ch["message"]["role"] == "assistant" and isinstance(ch["message"]["content"], str),
          "chat message")
    check(ch["finish_reason"] in ("stop", "length"), "finish_reason %s" % ch["finish_reason"])
    u = r["usage"]
    check(u["prompt_tokens"] > 0 and u["total_tokens"] == u["prompt_tokens"] +
          u["completion_tokens"], "usage %s" % u)
    events = s.stream("/v1/chat/completions", chat_body(
        s, "Tell me a story", stream=True, stream_options={"include_usage": True}))
    check(events[-1] == "[DONE]", "stream ends with [DONE]")
    check(events[0]["choices"][0]["delta"].get("role") == "assistant", "first delta has role")
    check(all(e["object"] == "chat.completion.chunk" for e in events[:-1]), "chunk objects")
    check(stream_text(events) == ch["message"]["content"],
          "streamed text equals the non-streamed text (greedy)")
    finals = [e for e in events[:-1] if e["choices"] and e["choices"][0]["finish_reason"]]
    check(len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] == ch["finish_reason"],
          "one chunk carries the finish reason")
    check(events[-2]["choices"] == [] and events[-2]["usage"] == u, "usage chunk last")


def test_completions(s):
    body = {"model": s.model, "prompt": "Once upon a time", "max_tokens": 16, "temperature": 0}
    st, _, r = s.json("POST", "/v1/completions", body)
    check(st == 200 and r["object"] == "text_completion", "completion %d %s" % (st, r))
    text = r["choices"][0]["text"]
    events = s.stream("/v1/completions", dict(body, stream=True))
    check(events[-1] == "[DONE]" and stream_text(events, chat=False) == text,
          "streamed completion equals the non-streamed one")
    # a stop string taken from the text cuts the output where it begins
    if len(text) >= 8:
        stop = text[len(text) // 2:len(text) // 2 + 3]
        st, _, r2 = s.json("POST", "/v1/completions", dict(body, stop=[stop]))
        check(st == 200 and r2["choices"][0]["text"] == text[:text.index(stop)] and
              r2["choices"][0]["finish_reason"] == "stop", "stop string %r: %r" % (stop, r2))


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


def test_tools(s):
    msgs = [{"role": "user", "content": "Weather in Paris?"}]
    base = {"model": s.model, "messages": msgs, "max_tokens": 8, "temperature": 0}
    _, _, plain = s.json("POST", "/v1/chat/completions", base)
    st, _, r = s.json("POST", "/v1/chat/completions", dict(base, tools=TOOLS))
    check(st == 200, "chat with tools: %d %s" % (st, r))
    check(r["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"],
          "the tool list is rendered into the prompt")
    _, _, none = s.json("POST", "/v1/chat/completions", dict(base, tools=TOOLS,
                                                            tool_choice="none"))
    check(none["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"],
          "tool_choice none leaves tools out")
    # a full round: the assistant's call and the tool's result go back in
    msgs2 = msgs + [
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"}]
    st, _, r = s.json("POST", "/v1/chat/completions", dict(base, messages=msgs2, tools=TOOLS))
    check(st == 200 and r["choices"][0]["message"]["role"] == "assistant",
          "tool result round: %d %s" % (st, r))
    events = s.stream("/v1/chat/completions", dict(base, messages=msgs2, tools=TOOLS,
                                                   stream=True))
    check(events[-1] == "[DONE]", "streamed tool round ends with [DONE]")


def expect_error(s, st, r, status, what, code=None, param=None):
    ok = st == status and isinstance(r.get("error"), dict)
    if ok:
        e = r["error"]
        ok = (isinstance(e.get("message"), str) and e["message"] and "type" in e and
              "param" in e and "code" in e)
        ok = ok and (code is None or e["code"] == code) and (param is None or e["param"] == param)
    check(ok, "%s: want %d, got %d %s" % (what, status, st, r))


def test_errors(s):
    p = "/v1/chat/completions"
    st, _, r = s.json("POST", p, raw="{not json")
    expect_error(s, st, r, 400, "malformed JSON")
    st, _, r = s.json("POST", p, raw="[1, 2]")
    expect_error(s, st, r, 400, "body not an object")
    st, _, r = s.json("POST", p, chat_body(s, "hi", temperature="hot"))
    expect_error(s, st, r, 400, "temperature of the wrong type", param="temperature")
    st, _, r = s.json("POST", p, chat_body(s, "hi", max_tokens=1.5))
    expect_error(s, st, r, 400, "fractional max_tokens", param="max_tokens")
    st, _, r = s.json("POST", p, chat_body(s, "hi", stop=[1]))
    expect_error(s, st, r, 400, "stop of the wrong type", param="stop")
    st, _, r = s.json("POST", p, {"model": s.model, "messages": "hi"})
    expect_error(s, st, r, 400, "messages not an array", param="messages")
    st, _, r = s.json("POST", p, {"model": s.model, "messages": [{"role": "wizard",
                                                                  "content": "x"}]})
    expect_error(s, st, r, 400, "unknown role", param="messages")
    st, _, r = s.json("POST", p, dict(chat_body(s, "hi"), model="gpt-nope"))
    expect_error(s, st, r, 404, "unknown model", code="model_not_found")
    st, _, r = s.json("GET", "/v1/nothing")
    expect_error(s, st, r, 404, "unknown path")
    st, _, r = s.json("POST", p, chat_body(s, "hi"), key=None)
    expect_error(s, st, r, 401, "missing API key", code="invalid_api_key")
    st, _, r = s.json("POST", p, chat_body(s, "hi"), key="sk-wrong")
    expect_error(s, st, r, 401, "wrong API key", code="invalid_api_key")
    st, _, r = s.json("GET", "/v1/models", key=None)
    expect_error(s, st, r, 401, "models without a key")
    st, _, r = s.json("POST", p, chat_body(s, "word " * 3000))
    expect_error(s, st, r, 400, "oversized prompt", code="context_length_exceeded")
    check("context" in r["error"]["message"], "the oversized-prompt message says why")


def read_some_events(resp, n):
    got = 0
    while got < n:
        line = resp.fp.readline()
        if not line:
            break
        got += line.startswith(b"data: ")
    return got


def test_queue_full():
    """One slot, no queue: while one stream runs, another request gets 503 + Retry-After."""
    stats = os.path.join(tempfile.mkdtemp(), "routing.json")
    s = Server("-np", "1", "--queue", "0", "-c", "1024", "--api-key", KEY,
               "--routing-stats", stats)
    c = s.conn()
    c.request("POST", "/v1/chat/completions", body=json.dumps(chat_body(
        s, "Go on", n=900, stream=True, temperature=1.0)),
        headers={"Authorization": "Bearer " + KEY})
    resp = c.getresponse()
    check(read_some_events(resp, 2) == 2, "the first stream runs")
    st, h, text = s.request("POST", "/v1/chat/completions", chat_body(s, "hi"))
    r = json.loads(text)
    expect_error(s, st, r, 503, "full queue")
    check(h.get("Retry-After") == "1", "Retry-After header: %s" % h)
    c.close()  # hang up: the slot must free so the next request runs
    st, _, r = s.json("POST", "/v1/chat/completions", chat_body(s, "hi", n=4))
    for _ in range(100):  # the engine frees the slot at its next step; allow a few of them
        if st != 503:
            break
        time.sleep(0.1)
        st, _, r = s.json("POST", "/v1/chat/completions", chat_body(s, "hi", n=4))
    check(st == 200, "after the hang-up the slot is free again: %d %s" % (st, r))
    s.stop()
    with open(stats) as f:
        check(json.load(f).get("n_moe_layers", 0) > 0, "--routing-stats saved at shutdown")


def metrics(s):
    st, h, text = s.request("GET", "/metrics")
    check(st == 200 and h.get("Content-Type", "").startswith("text/plain"), "metrics status")
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            check(not line or re.match(r"# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+", line),
                  "metrics comment %r" % line)
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
        check(m is not None, "metrics line %r" % line)
        if m:
            values[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return values


def test_concurrent(s):
    prompts = ["Request %d: tell me about %d" % (i, i * 37) for i in range(32)]
    # solo runs of a few of them (all 32 would double the test's time under ASan)
    solo = {}
    for i in (0, 5, 13, 31):
        _, _, r = s.json("POST", "/v1/chat/completions", chat_body(s, prompts[i], n=12))
        solo[i] = r["choices"][0]["message"]["content"]
    results = [None] * 32

    def run(i):
        try:
            results[i] = s.stream("/v1/chat/completions", chat_body(s, prompts[i], n=12,
                                                                    stream=True))
        except Exception as e:  # recorded, then reported by the checks below
            results[i] = e
    threads = [threading.Thread(target=run, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, ev in enumerate(results):
        ok = isinstance(ev, list) and ev and ev[-1] == "[DONE]"
        check(ok, "stream %d finished: %s" % (i, ev if not ok else ""))
        if ok and i in solo:
            check(stream_text(ev) == solo[i], "stream %d equals its solo greedy output" % i)


def test_disconnect(s):
    c = s.conn()
    c.request("POST", "/v1/chat/completions", body=json.dumps(chat_body(
        s, "Keep talking", n=400, stream=True, temperature=1.0)),
        headers={"Authorization": "Bearer " + KEY})
    resp = c.getresponse()
    check(read_some_events(resp, 3) == 3, "the stream started")
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    active = None
    for _ in range(200):  # polls until the engine's next step has freed the slot
        active = metrics(s).get("moepool_active_slots")
        if active == 0:
            break
        time.sleep(0.05)
    check(active == 0, "the hung-up stream's slot is free (active %s)" % active)
    st, _, r = s.json("POST", "/v1/chat/completions", chat_body(s, "Still there?", n=4))
    check(st == 200, "the server serves after a hang-up: %d" % st)


def test_metrics(s):
    v = metrics(s)
    for name in ["moepool_requests_total", "moepool_generation_tokens_total",
                 "moepool_queue_depth", "moepool_batch_tokens",
                 "moepool_generation_tokens_per_second",
                 "moepool_time_to_first_token_seconds_count",
                 'moepool_http_responses_total{code="2xx"}']:
        check(name in v, "metric %s present" % name)
    check(v.get("moepool_requests_total", 0) > 32, "requests counted")
    check(v.get('moepool_http_responses_total{code="401"}', 0) >= 3, "401s counted")
    acts = sum(x for k, x in v.items() if k.startswith("moepool_expert_activations_total{"))
    routed = sum(x for k, x in v.items() if k.startswith("moepool_routed_tokens_total{"))
    check(routed > 0 and acts >= routed, "routing counts: %s tokens, %s activations" %
          (routed, acts))


def main():
    s = Server("-np", "32", "-c", "512", "--api-key", KEY)
    try:
        for t in [test_basics, test_chat, test_completions, test_tools, test_errors,
                  test_concurrent, test_disconnect, test_metrics]:
            print("--", t.__name__, flush=True)
            t(s)
    finally:
        s.stop()
    print("--", "test_queue_full", flush=True)
    test_queue_full()
    print("server_test: %s" % ("all passed" if not failures else "%d failed" % failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
