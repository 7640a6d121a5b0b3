#!/usr/bin/env python3
"""Independent checks of `palisade pki` output with Python's `ssl` and
`cryptography` (used by crates/palisade/tests/pki_cli.rs).

  pki_check.py p12 FILE.p12 PASSFILE ROOT.crt ISSUING.crt
      load the PKCS#12 bundle, verify leaf -> issuing -> root with
      cryptography's X.509 verifier (client policy); print JSON
  pki_check.py tls CA_BUNDLE SERVER_CHAIN SERVER_KEY CLIENT_CHAIN CLIENT_KEY [CRL]
      mutual-TLS handshake on 127.0.0.1 between two ssl contexts that trust
      CA_BUNDLE (and check the client against CRL if given); print
      "ok" or "refused: <reason>"
  pki_check.py crl CRL.pem ISSUING.crt SERIAL_HEX
      print JSON: signature valid, serial listed, reason
"""
import json
import socket
import ssl
import sys
import threading
import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12


def cmd_p12(path, passfile, root_path, issuing_path):
    password = open(passfile, "rb").read().strip()
    key, cert, extra = pkcs12.load_key_and_certificates(open(path, "rb").read(), password)
    root = x509.load_pem_x509_certificate(open(root_path, "rb").read())
    issuing = x509.load_pem_x509_certificate(open(issuing_path, "rb").read())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    out = {
        "cn": cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value,
        "serial": format(cert.serial_number, "x"),
        "key": type(key).__name__,
        "key_matches": key.public_key().public_bytes_raw() == cert.public_key().public_bytes_raw()
        if hasattr(key.public_key(), "public_bytes_raw") and type(key).__name__.startswith("Ed")
        else key.public_key().public_numbers() == cert.public_key().public_numbers(),
        "extra": [c.subject.rfc4514_string() for c in extra],
        "dns": sans.get_values_for_type(x509.DNSName),
        "uri": sans.get_values_for_type(x509.UniformResourceIdentifier),
    }
    try:
        from cryptography.x509.verification import PolicyBuilder, Store

        verifier = (
            PolicyBuilder()
            .store(Store([root]))
            .time(datetime.datetime.now(datetime.timezone.utc))
            .build_client_verifier()
        )
        verifier.verify(cert, [issuing])
        out["verified"] = True
    except Exception as e:  # noqa: BLE001 - report why
        out["verified"] = False
        out["verify_error"] = str(e)
    print(json.dumps(out))


def cmd_tls(bundle, server_chain, server_key, client_chain, client_key, crl=None):
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(server_chain, server_key)
    sctx.load_verify_locations(bundle)
    sctx.verify_mode = ssl.CERT_REQUIRED
    if crl:
        sctx.load_verify_locations(crl)
        sctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_verify_locations(bundle)
    cctx.load_cert_chain(client_chain, client_key)
    cctx.check_hostname = False

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(20)
    port = lsock.getsockname()[1]
    result = {}

    def serve():
        try:
            conn, _ = lsock.accept()
            conn.settimeout(20)
            with sctx.wrap_socket(conn, server_side=True) as s:
                peer = s.getpeercert()
                s.sendall(b"hello " + dict(x[0] for x in peer["subject"])["commonName"].encode())
        except Exception as e:  # noqa: BLE001
            result["server"] = str(e)

    t = threading.Thread(target=serve)
    t.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
            with cctx.wrap_socket(raw) as s:
                data = s.recv(100)
        t.join(20)
        if "server" in result or not data:
            print("refused: " + result.get("server", "connection closed"))
        else:
            print("ok: " + data.decode())
    except Exception as e:  # noqa: BLE001
        t.join(20)
        print("refused: " + result.get("server", str(e)))


def cmd_crl(crl_path, issuing_path, serial_hex):
    crl = x509.load_pem_x509_crl(open(crl_path, "rb").read())
    issuing = x509.load_pem_x509_certificate(open(issuing_path, "rb").read())
    r = crl.get_revoked_certificate_by_serial_number(int(serial_hex, 16))
    reason = None
    if r is not None:
        try:
            reason = r.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
        except x509.ExtensionNotFound:
            pass
    num = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    print(json.dumps({
        "signature_valid": crl.is_signature_valid(issuing.public_key()),
        "revoked": r is not None,
        "reason": reason,
        "count": len(list(crl)),
        "number": num,
    }))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"p12": cmd_p12, "tls": cmd_tls, "crl": cmd_crl}[cmd](*args)
