#!/usr/bin/env python3
"""tests/web/browser_test.py MOEPOOL MODEL TOOL_MODEL OUT_DIR: the chat page in a real browser.

Starts `moepool serve` on a free loopback port, drives Debian's headless Chromium through
chromedriver (WebDriver spoken with the standard library's http.client: nothing to install),
and checks that the page
  - loads with nothing from outside the server and shows the model from /v1/models,
  - streams a greedy reply equal to what the API returns for the same request,
  - shows time to first token and tok/s, and shows typed HTML as text,
  - stops a long reply with the Stop button, after which the server still answers, and the next
    turn carries the whole conversation (stopped reply included) like the API would,
  - shows the server's error message for a refused request, and New chat clears the page,
  - renders a tool call (a second server on TOOL_MODEL, made by tool_model.py, whose greedy
    reply is always the call find(x=1)).
Leaves a screenshot in OUT_DIR/chat.png. Exit 77 (ctest: skipped) without chromium/chromedriver.
"""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

# Polls are bounded by count, not asserted as speeds: a busy 2-core machine under ASan is slow.
POLL_S = 0.1
POLLS = 1800


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(port, method, path, body=None, timeout=600):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        text = resp.read().decode()
        return resp.status, (json.loads(text) if text else None)
    finally:
        conn.close()


def wait_for(what, probe):
    for _ in range(POLLS):
        try:
            value = probe()
            if value:
                return value
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(POLL_S)
    raise AssertionError(f"timed out waiting for {what}")


class WebDriver:
    """The few W3C WebDriver commands this test needs."""

    def __init__(self, port, chromium, profile):
        self.port = port
        caps = {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", f"--user-data-dir={profile}", "--window-size=1200,900"]}}
        self.session = self.call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})[
            "sessionId"]

    def call(self, method, path, body=None):
        status, reply = http_json(self.port, method, path, body if body is not None else
                                  ({} if method == "POST" else None))
        if status != 200:
            raise AssertionError(f"WebDriver {method} {path}: {status} {reply}")
        return reply["value"]

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def find(self, css):
        elem = self.s("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(elem.values()))

    def type(self, css, text, clear=True):
        elem = self.find(css)
        if clear:
            self.s("POST", f"/element/{elem}/clear")
        self.s("POST", f"/element/{elem}/value", {"text": text})

    def click(self, css):
        self.s("POST", f"/element/{self.find(css)}/click")

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))

    def quit(self):
        self.s("DELETE", "")


LAST_REPLY = """const m = [...document.querySelectorAll('.msg.assistant')].pop();
return m ? {state: m.dataset.state || '', text: m.querySelector('.content').textContent,
            stats: (m.querySelector('.stats') || {}).textContent || '',
            error: (m.querySelector('.error') || {}).textContent || ''} : null;"""


def wait_reply(wd, states=("done",)):
    def probe():
        r = wd.js(LAST_REPLY)
        if r and r["state"] == "error":
            raise AssertionError(f"page shows an error: {r['error']}")
        return r if r and r["state"] in states else None
    return wait_for(f"a reply in state {states}", probe)


def api_greedy(port, messages, max_tokens):
    status, body = http_json(port, "POST", "/v1/chat/completions",
                             {"messages": messages, "temperature": 0, "max_tokens": max_tokens})
    assert status == 200, f"API: {status} {body}"
    return body["choices"][0]["message"]["content"] or ""


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}")


def run(wd, port):
    base = f"http://127.0.0.1:{port}"
    wd.go(base + "/")
    check(wd.js("return document.title") == "moepool chat", "page title")
    _, models = http_json(port, "GET", "/v1/models")
    model = models["data"][0]["id"]
    shown = wait_for("the model name", lambda: wd.js(
        "const t = document.getElementById('model').textContent; return t !== '…' && t"))
    check(shown == model, f"header shows the model {model!r}")
    check(wd.js("return performance.getEntriesByType('resource').every("
                "e => new URL(e.name).origin === location.origin)"),
          "every resource the page loaded came from the server itself")

    # A greedy reply, streamed into the page, equals the API's reply to the same conversation.
    system = "You are a helpful assistant."
    user = "Hello <b>there</b> & <img src=x onerror=alert(1)>"
    wd.type("#system", system)
    wd.type("#temperature", "0")
    wd.type("#max_tokens", "24")
    wd.type("#input", user)
    wd.click("#send")
    reply = wait_reply(wd)
    want = api_greedy(port, [{"role": "system", "content": system},
                             {"role": "user", "content": user}], 24)
    check(reply["text"] == want, f"streamed reply equals the API's ({len(want)} chars)")
    check("TTFT" in reply["stats"] and "token" in reply["stats"],
          f"stats shown: {reply['stats']!r}")
    check(wd.js("const u = document.querySelector('.msg.user .content');"
                "return u.textContent === arguments[0] && u.children.length === 0", user),
          "typed HTML is shown as text")

    # Stop: a long reply aborted once it has started streaming. A tiny model streams over 1000
    # tok/s, so the reply is allowed 30000 tokens (the server's context is 32768): it cannot
    # finish on its own in the moment between the first streamed text and the click.
    wd.type("#max_tokens", "30000")
    wd.type("#input", "Tell me a very long story.")
    wd.click("#send")
    wait_for("streaming text", lambda: (lambda r: r and r["state"] == "streaming" and r["text"])(
        wd.js(LAST_REPLY)))
    check(wd.js("return document.getElementById('send').disabled"), "Send is disabled while streaming")
    wd.click("#stop")
    stopped = wait_reply(wd, ("stopped", "done"))
    check(stopped["state"] == "stopped", "Stop ends the reply")
    check(not wd.js("return document.getElementById('send').disabled"), "Send is enabled again")
    wd.screenshot(os.path.join(OUT_DIR, "chat.png"))

    # The next turn: the server still answers, and the page sent the whole conversation.
    wd.type("#max_tokens", "12")
    wd.type("#input", "Thanks.")
    wd.click("#send")
    third = wait_reply(wd)
    want = api_greedy(port, [{"role": "system", "content": system},
                             {"role": "user", "content": user},
                             {"role": "assistant", "content": reply["text"]},
                             {"role": "user", "content": "Tell me a very long story."},
                             {"role": "assistant", "content": stopped["text"]},
                             {"role": "user", "content": "Thanks."}], 12)
    check(third["text"] == want, "after Stop the server answers the whole conversation as the API does")
    status, _ = http_json(port, "GET", "/health")
    check(status == 200, "server healthy")
    wd.screenshot(os.path.join(OUT_DIR, "chat.png"))

    # A request the server refuses: its OpenAI error message is shown in the reply's place.
    wd.type("#max_tokens", "-5")
    wd.type("#input", "This one is refused.")
    wd.click("#send")
    error = wait_for("an error", lambda: (lambda r: r and r["state"] == "error" and r["error"])(
        wd.js(LAST_REPLY)))
    check(error.startswith("HTTP 400: "), f"the server's error is shown: {error!r}")
    check(not wd.js("return document.getElementById('send').disabled"), "Send is enabled after an error")
    wd.click("#new-chat")
    check(wd.js("return document.getElementById('messages').children.length") == 0,
          "New chat clears the conversation")


def run_tool_call(wd, port):
    wd.go(f"http://127.0.0.1:{port}/")
    wd.type("#temperature", "0")
    wd.type("#tools", json.dumps([{"type": "function", "function": {
        "name": "find", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}}]))
    wd.type("#input", "Find one.")
    wd.click("#send")
    wait_reply(wd)
    calls = wd.js("return [...document.querySelectorAll('.msg.assistant .tool-call')]"
                  ".map(e => [e.dataset.name, e.textContent])")
    check(len(calls) == 1 and calls[0][0] == "find", f"one tool call shown: {calls}")
    check(calls[0][1] == 'tool call find({\n  "x": 1\n})', "with its arguments, pretty-printed")
    wd.screenshot(os.path.join(OUT_DIR, "tool-call.png"))


def main():
    global OUT_DIR
    if len(sys.argv) != 5:
        print("usage: browser_test.py MOEPOOL MODEL TOOL_MODEL OUT_DIR", file=sys.stderr)
        return 2
    moepool, model, tool_model, OUT_DIR = sys.argv[1:]
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        print("SKIP: chromium and chromedriver not found (Debian: apt-get install chromium chromium-driver)")
        return 77
    os.makedirs(OUT_DIR, exist_ok=True)
    wd_port = free_port()
    servers = []
    chromedriver = subprocess.Popen([driver, f"--port={wd_port}"], stdout=subprocess.DEVNULL)
    try:
        port, server = start_server(servers, moepool, model)
        tool_port, _ = start_server(servers, moepool, tool_model)
        wait_for("chromedriver", lambda: http_json(wd_port, "GET", "/status", timeout=5)[1][
            "value"]["ready"])
        with tempfile.TemporaryDirectory() as profile:
            wd = WebDriver(wd_port, chromium, profile)
            try:
                run(wd, port)
                run_tool_call(wd, tool_port)
            finally:
                wd.quit()
        check(server.poll() is None, "server still running")
        server.send_signal(signal.SIGTERM)
        check(server.wait(timeout=60) == 0, "server exits 0 on SIGTERM")
        print("browser_test: 1 passed, 0 failed")
        return 0
    finally:
        chromedriver.terminate()
        chromedriver.wait()
        for server in servers:
            if server.poll() is None:
                server.kill()
                server.wait()


def start_server(servers, moepool, model):
    """`moepool serve` on a free port (one thread: tiny model, 2 shared cores), once healthy."""
    port = free_port()
    server = subprocess.Popen([moepool, "serve", "-m", model, "--host", "127.0.0.1",
                               "--port", str(port), "-np", "4", "-c", "32768", "-t", "1"])
    servers.append(server)

    def serving():
        if server.poll() is not None:
            raise AssertionError(f"moepool serve exited with status {server.returncode}")
        return http_json(port, "GET", "/health", timeout=5)[0] == 200
    wait_for("moepool serve", serving)
    return port, server


if __name__ == "__main__":
    sys.exit(main())
