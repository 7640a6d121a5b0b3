#!/usr/bin/env python3
"""TLS client used by palisade's integration tests (crates/palisade/tests/tls.rs).

Connects with Python's ssl module (OpenSSL), prints one JSON object on stdout
describing the handshake (version, cipher, ALPN) and, over HTTP/1.1, the
status of a GET; exits 0 on success and 3 when the handshake fails.

--legacy-control starts a local Python TLS server that accepts TLS 1.0/1.1
(OpenSSL security level 0) and connects to it with the same client settings,
to prove that this machine's client can speak the legacy versions at all, so
that a refusal by palisade is palisade's doing.
"""

import argparse
import json
import socket
import ssl
import sys
import threading
import warnings

# TLSVersion.TLSv1/TLSv1_1 are deprecated; using them is the point here.
warnings.filterwarnings("ignore", category=DeprecationWarning)

VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1_1": ssl.TLSVersion.TLSv1_1,
    "TLSv1_2": ssl.TLSVersion.TLSv1_2,
    "TLSv1_3": ssl.TLSVersion.TLSv1_3,
}

TIMEOUT = 15.0


def client_context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if args.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif args.cafile:
        ctx.load_verify_locations(cafile=args.cafile)
    if args.min_version:
        ctx.minimum_version = VERSIONS[args.min_version]
    elif args.max_version in ("TLSv1", "TLSv1_1"):
        # The default floor (TLS 1.2) would leave no version to offer.
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    if args.max_version:
        ctx.maximum_version = VERSIONS[args.max_version]
    if args.ciphers:
        ctx.set_ciphers(args.ciphers)
    if args.alpn:
        ctx.set_alpn_protocols(args.alpn.split(","))
    return ctx


def read_status(tls):
    data = b""
    while b"\r\n" not in data and len(data) < 65536:
        chunk = tls.recv(4096)
        if not chunk:
            break
        data += chunk
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    headers = {}
    # Keep reading the head so header checks (HSTS) can be made.
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = tls.recv(4096)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    for h in head:
        if ":" in h:
            k, v = h.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return status, headers


def run_client(args, host, port):
    ctx = client_context(args)
    result = {"ok": False}
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
            with ctx.wrap_socket(sock, server_hostname=args.server_name) as tls:
                result.update(
                    ok=True,
                    version=tls.version(),
                    cipher=tls.cipher()[0],
                    alpn=tls.selected_alpn_protocol(),
                )
                cert = tls.getpeercert(binary_form=True)
                result["peer_cert_der_len"] = len(cert) if cert else 0
                if args.path and result["alpn"] in (None, "http/1.1"):
                    req = (
                        f"GET {args.path} HTTP/1.1\r\nHost: {args.server_name}\r\n"
                        "Connection: close\r\n\r\n"
                    )
                    tls.sendall(req.encode())
                    status, headers = read_status(tls)
                    result["status"] = status
                    result["hsts"] = headers.get("strict-transport-security")
    except (ssl.SSLError, ConnectionError, socket.timeout, OSError) as e:
        result = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    return result


def legacy_server(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.load_cert_chain(cert, key)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(TIMEOUT)

    def serve():
        try:
            conn, _ = lsock.accept()
            conn.settimeout(TIMEOUT)
            with ctx.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except (ssl.SSLError, OSError):
            pass
        finally:
            lsock.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return lsock.getsockname()[1], t


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int)
    p.add_argument("--server-name", default="localhost")
    p.add_argument("--cafile")
    p.add_argument("--insecure", action="store_true")
    p.add_argument("--min-version", choices=VERSIONS)
    p.add_argument("--max-version", choices=VERSIONS)
    p.add_argument("--ciphers")
    p.add_argument("--alpn")
    p.add_argument("--path", default="/")
    p.add_argument("--legacy-control", action="store_true")
    p.add_argument("--cert")
    p.add_argument("--key")
    args = p.parse_args()

    if args.legacy_control:
        port, t = legacy_server(args.cert, args.key)
        result = run_client(args, "127.0.0.1", port)
        t.join(TIMEOUT)
    else:
        result = run_client(args, args.host, args.port)
    result["openssl"] = ssl.OPENSSL_VERSION
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 3)


if __name__ == "__main__":
    main()
