#!/usr/bin/env python3
"""Load generator and upstream services for scripts/bench-tunnel.sh.

  echo  --port P                  TCP echo service (the tunnels' upstream for
                                  handshake runs); one thread, selectors.
  sink  --port P --out FILE       TCP sink: for each connection, counts bytes
                                  from the first to EOF and appends
                                  "bytes seconds" to FILE.
  handshakes --port P --cert C --key K --seconds S --procs N [--resume]
                                  N processes, each in a loop: TCP connect,
                                  TLS 1.3 handshake with a client certificate,
                                  1 byte through the tunnel and back, close.
                                  With --resume every connection after the
                                  first offers the previous session. Prints
                                  JSON: handshakes, per second, resumed share.
  push  --port P --cert C --key K --bytes N
                                  One TLS 1.3 connection sending N bytes (1 MiB
                                  writes) to the sink behind the tunnel.
"""

import argparse
import json
import multiprocessing as mp
import os
import selectors
import socket
import ssl
import sys
import time


def echo(a):
    sel = selectors.DefaultSelector()
    ls = socket.create_server(("127.0.0.1", a.port), backlog=1024)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is ls:
                try:
                    c, _ = ls.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
                continue
            try:
                d = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                d = b""
            if not d:
                sel.unregister(s)
                s.close()
                continue
            try:
                s.sendall(d)
            except OSError:
                sel.unregister(s)
                s.close()


def sink(a):
    ls = socket.create_server(("127.0.0.1", a.port), backlog=64)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while True:
        c, _ = ls.accept()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        n = c.recv_into(view)
        t0 = time.perf_counter()
        total = n
        while n:
            n = c.recv_into(view)
            total += n
        dt = time.perf_counter() - t0
        c.close()
        with open(a.out, "a") as f:
            f.write(f"{total} {dt:.6f}\n")


def client_ctx(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    return ctx


def hs_worker(a, deadline, q):
    ctx = client_ctx(a)
    n = resumed = errors = 0
    sess = None
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", a.port), timeout=10) as raw:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with ctx.wrap_socket(raw, server_hostname="localhost",
                                     session=sess if a.resume else None) as s:
                    s.sendall(b"x")
                    if s.recv(1) != b"x":
                        errors += 1
                        continue
                    n += 1
                    if s.session_reused:
                        resumed += 1
                    if a.resume:
                        sess = s.session
        except (OSError, ssl.SSLError):
            errors += 1
            sess = None
    q.put((n, resumed, errors))


def handshakes(a):
    q = mp.Queue()
    start = time.time()
    deadline = start + a.seconds
    ps = [mp.Process(target=hs_worker, args=(a, deadline, q)) for _ in range(a.procs)]
    for p in ps:
        p.start()
    res = [q.get() for _ in ps]
    for p in ps:
        p.join()
    elapsed = time.time() - start
    n = sum(r[0] for r in res)
    print(json.dumps({
        "handshakes": n,
        "per_second": round(n / elapsed, 1),
        "resumed_share": round(sum(r[1] for r in res) / max(n, 1), 3),
        "errors": sum(r[2] for r in res),
        "seconds": round(elapsed, 2),
    }))


def push(a):
    ctx = client_ctx(a)
    chunk = os.urandom(1 << 20)
    left = a.bytes
    with socket.create_connection(("127.0.0.1", a.port), timeout=60) as raw:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            t0 = time.perf_counter()
            while left > 0:
                k = min(left, len(chunk))
                s.sendall(chunk[:k] if k < len(chunk) else chunk)
                left -= k
            # Half-close without close_notify (the sink timed the bytes),
            # then drain until the server closes: closing with unread bytes
            # (the TLS 1.3 session tickets) would reset the connection and
            # lose data still in flight.
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
            print(json.dumps({"bytes": a.bytes,
                              "client_seconds": round(time.perf_counter() - t0, 3)}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["echo", "sink", "handshakes", "push"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out")
    ap.add_argument("--ca")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--bytes", type=int, default=2 << 30)
    a = ap.parse_args()
    {"echo": echo, "sink": sink, "handshakes": handshakes, "push": push}[a.mode](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
