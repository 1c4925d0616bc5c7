#!/usr/bin/python3
"""tools/lan_delay/lan_delay_probe.py: TCP through an emulated link, for lan_delay's test.

  lan_delay_probe.py serve ADDR PORT READY_FILE      answers two connections, then exits
  lan_delay_probe.py client ADDR PORT ROUNDS BYTES   prints round trips and throughput

Connection 1, ping-pong: ROUNDS messages of 64 bytes, each echoed before the next is sent
(TCP_NODELAY), so each round trip crosses the link twice; the client prints min and median in ms
as `rtt_ms MIN MEDIAN`. Connection 2, both directions at once: BYTES each way of a known stream
(SHA-256 counter blocks), every byte and its order checked at both ends (a reordered or damaged
byte changes the digest); prints `duplex_mbit EACH_WAY`. Exit 1 on any mismatch."""
import hashlib
import socket
import statistics
import sys
import threading
import time

MSG = 64


def stream(n, seed):
    """The first n bytes of a known byte stream: SHA-256 of (seed, counter) blocks."""
    out, i = bytearray(), 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{i}".encode()).digest() * 64
        i += 1
    return bytes(out[:n])


def recv_exact(c, n):
    buf = bytearray()
    while len(buf) < n:
        d = c.recv(min(1 << 16, n - len(buf)))
        if not d:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += d
    return bytes(buf)


def duplex(c, send_seed, recv_seed, n, result):
    """Sends n bytes of stream send_seed while receiving n of recv_seed; result: (ok, seconds)."""
    data = stream(n, send_seed)
    t = time.monotonic()
    sender = threading.Thread(target=c.sendall, args=(data,))
    sender.start()
    got = recv_exact(c, n)
    sender.join()
    result.append((got == stream(n, recv_seed), time.monotonic() - t))


def serve(addr, port, ready):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(2)
    open(ready, "w").close()
    c, _ = s.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rounds = int(recv_exact(c, 8))
    for _ in range(rounds):
        c.sendall(recv_exact(c, MSG))
    c.close()
    c, _ = s.accept()
    n = int(recv_exact(c, 12))
    result = []
    duplex(c, "down", "up", n, result)
    c.sendall(b"ok" if result[0][0] else b"no")
    c.close()
    return 0 if result[0][0] else 1


def client(addr, port, rounds, n):
    c = socket.create_connection((addr, port), timeout=60)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sendall(b"%08d" % rounds)
    rtts = []
    for i in range(rounds):
        msg = (b"%08d" % i) * (MSG // 8)
        t = time.monotonic()
        c.sendall(msg)
        back = recv_exact(c, MSG)
        rtts.append(time.monotonic() - t)
        if back != msg:
            print(f"ping-pong: message {i} came back changed")
            return 1
    c.close()
    print(f"rtt_ms {min(rtts) * 1e3:.3f} {statistics.median(rtts) * 1e3:.3f}")
    c = socket.create_connection((addr, port), timeout=60)
    c.sendall(b"%012d" % n)
    result = []
    duplex(c, "up", "down", n, result)
    ok_up = recv_exact(c, 2) == b"ok"
    ok, secs = result[0]
    mbit = n * 8 / secs / 1e6
    print(f"duplex_mbit {mbit:.0f}")
    if not (ok and ok_up):
        print(f"duplex: stream damaged ({'down' if not ok else 'up'})")
        return 1
    return 0


if __name__ == "__main__":
    a = sys.argv
    if a[1] == "serve":
        sys.exit(serve(a[2], int(a[3]), a[4]))
    sys.exit(client(a[2], int(a[3]), int(a[4]), int(a[5])))
