#!/usr/bin/env bash
# Wall time of `palisade scan tls` vs `sslscan` on the same Debian nginx
# target (loopback, TLS 1.0-1.3, 6 suites), in one run (ROUNDS alternating
# rounds, default 3), release build.
# Also prints how many (protocol, suite) pairs each tool found.
# Needs: nginx, sslscan, openssl, python3 (apt-get install -y nginx sslscan).
set -euo pipefail
cd "$(dirname "$0")/.."
for t in nginx sslscan openssl python3; do
  command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || { echo "missing $t" >&2; exit 2; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
PALISADE=${PALISADE:-${CARGO_TARGET_DIR:-target}/release/palisade}
if [ ! -x "$PALISADE" ]; then
  cargo build --release -q -p palisade
fi

dir=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/k.pem" -out "$dir/c.pem" \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost -days 90 2>/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$dir/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1;
pid $dir/nginx.pid; error_log $dir/error.log;
events { worker_connections 512; }
http {
  access_log off; client_body_temp_path $dir;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $dir/c.pem; ssl_certificate_key $dir/k.pem;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_ciphers "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-SHA:AES128-SHA:AES256-SHA256:@SECLEVEL=0";
    ssl_prefer_server_ciphers on;
    add_header Strict-Transport-Security "max-age=63072000" always;
    location / { return 200 "ok\n"; }
  }
}
EOF
"$NGINX" -c "$dir/nginx.conf" -e "$dir/error.log" &
pid=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# Alternating rounds: the machine is shared, so one pair of numbers is noise.
ROUNDS=${ROUNDS:-3}
p_all=""; s_all=""
for _ in $(seq 1 "$ROUNDS"); do
  t=$(date +%s%N)
  "$PALISADE" scan tls "127.0.0.1:$port" --fail-on never --json > "$dir/palisade.json" 2>/dev/null
  p_all="$p_all $(ms "$t")"
  t=$(date +%s%N)
  sslscan --no-colour --xml=- "127.0.0.1:$port" > "$dir/sslscan.xml" 2>/dev/null
  s_all="$s_all $(ms "$t")"
done
p_ms="${p_all# }"; s_ms="${s_all# }"

python3 - "$dir/palisade.json" "$dir/sslscan.xml" "$p_ms" "$s_ms" <<'EOF'
import json, re, sys
r = json.load(open(sys.argv[1]))
ours = {(p["protocol"], s["id"]) for p in r["protocols"] for s in p["suites"]}
xml = open(sys.argv[2]).read()
theirs = {(m.group(1), int(m.group(2), 16))
          for m in re.finditer(r'<cipher [^>]*sslversion="([^"]+)"[^>]*id="0x([0-9A-Fa-f]+)"', xml)}
print(f"palisade scan tls: {sys.argv[3]} ms per round, {len(ours)} (protocol, suite) pairs, "
      f"{r['handshakes']} handshakes, grade {r['grade']['grade']} "
      f"({r['grade']['grade_if_trusted']} if trusted)")
print(f"sslscan          : {sys.argv[4]} ms per round, {len(theirs)} (protocol, suite) pairs")
print("same suites:", ours == theirs)
if ours != theirs:
    print("only palisade:", sorted(ours - theirs), "only sslscan:", sorted(theirs - ours))
EOF
