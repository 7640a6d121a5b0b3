#!/usr/bin/env python3
"""mTLS client used by palisade's tunnel tests (crates/palisade/tests/tunnel.rs).

Connects with Python's ssl module (OpenSSL) to a palisade `tls` listener,
optionally presenting a client certificate, sends a message, half-closes is
not possible over TLS so it reads back exactly len(message) bytes from the
echo service behind the tunnel. Prints one JSON object on stdout:
{"ok": true, "echo": "..."} and exits 0, or {"ok": false, "error": "..."}
and exits 3 when the connection is refused (handshake error, alert, or the
connection closed before the echo came back).
"""

import argparse
import json
import socket
import ssl
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--message", default="hello through the tunnel")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--http", action="store_true",
                    help="send an HTTP/1.1 GET with a forged x-client-identity header "
                         "instead; success is any HTTP response")
    a = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The listener uses palisade's self-signed development certificate; the
    # test is about the server checking the client, not the reverse.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    msg = a.message.encode()
    if a.http:
        msg = (b"GET /who HTTP/1.1\r\nHost: localhost\r\n"
               b"X-Client-Identity: forged\r\nConnection: close\r\n\r\n")
    try:
        with socket.create_connection(("127.0.0.1", a.port), timeout=a.timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(msg)
                if a.http:
                    resp = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        resp += chunk
                    ok = resp.startswith(b"HTTP/1.1 ")
                    line = resp.split(b"\r\n", 1)[0].decode(errors="replace")
                    print(json.dumps({"ok": ok, "status": line}))
                    return 0 if ok else 3
                got = b""
                while len(got) < len(msg):
                    chunk = s.recv(len(msg) - len(got))
                    if not chunk:
                        break
                    got += chunk
        if got != msg:
            print(json.dumps({"ok": False, "error": f"closed after {len(got)} bytes"}))
            return 3
        print(json.dumps({"ok": True, "echo": got.decode()}))
        return 0
    except (ssl.SSLError, OSError) as e:
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
        return 3


if __name__ == "__main__":
    sys.exit(main())
