#!/usr/bin/env bash
# Compares palisade's `tls` tunnel listener with Debian's stunnel4 on loopback,
# in the same run and with equivalent settings:
#   - the same ECDSA P-256 server certificate chain from `palisade pki`,
#   - client certificates required and verified against the same CA bundle,
#   - TLS 1.3 (the client allows nothing else),
#   - the same upstreams: a TCP echo service (handshake runs) and a sink
#     (throughput run), plain TCP on 127.0.0.1,
#   - both servers pinned to CPU 0, clients and upstreams to CPU 1, default
#     logging (one record per connection for both).
#
# Measured for each server:
#   full      TLS handshakes/s: CONCURRENCY client processes (Python ssl, i.e.
#             OpenSSL) for SECONDS, each connecting, handshaking with a client
#             certificate, sending 1 byte through the tunnel to the echo
#             service and reading it back, closing;
#   resumed   the same offering the previous session (TLS 1.3 resumption);
#   GB/s      one connection pushing BYTES (default 4 GiB) through the tunnel
#             to the sink, timed by the sink from first byte to EOF;
#   and the server's CPU time (utime+stime) per handshake and per GB.
# Then the ratios palisade/stunnel. Goal (issue 7): handshakes/s >= stunnel,
# throughput >= 90% of stunnel.
#
# Environment: SECONDS_RUN (10), CONCURRENCY (4), BYTES (4294967296),
# ROUNDS (1: more rounds alternate the servers and print every round),
# PALISADE_BIN (skip the release build). Loopback only; every process it
# starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_RUN=${SECONDS_RUN:-10}
CONCURRENCY=${CONCURRENCY:-4}
BYTES=${BYTES:-4294967296}
ROUNDS=${ROUNDS:-1}

need=()
command -v stunnel4 >/dev/null 2>&1 || need+=(stunnel4)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "$(nproc --all)" -lt 2 ]; then
  echo "bench-tunnel: needs at least 2 CPUs (servers on one, clients on the other)" >&2
  exit 1
fi

if [ -z "${PALISADE_BIN:-}" ]; then
  echo "== cargo build --release -p palisade"
  cargo build --release -q -p palisade
  PALISADE_BIN="${CARGO_TARGET_DIR:-target}/release/palisade"
fi
CLIENT=scripts/bench-tunnel-client.py

work=$(mktemp -d /tmp/bench-tunnel.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 1 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 never opened" >&2; exit 1
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# --- certificates -----------------------------------------------------------
export PALISADE_PKI_PASSPHRASE="bench passphrase, loopback only"
pki="$work/pki"
"$PALISADE_BIN" pki --dir "$pki" init --org Bench >/dev/null
"$PALISADE_BIN" pki --dir "$pki" issue --device server --san dns:localhost >/dev/null
"$PALISADE_BIN" pki --dir "$pki" issue --device bench-client >/dev/null
SCHAIN="$pki/devices/server/chain.pem"; SKEY="$pki/devices/server/server.key"
CCHAIN="$pki/devices/bench-client/chain.pem"; CKEY="$pki/devices/bench-client/bench-client.key"
BUNDLE="$pki/ca-bundle.pem"

# --- upstreams (CPU 1) -------------------------------------------------------
ECHO_PORT=$(free_port); SINK_PORT=$(free_port)
taskset -c 1 python3 "$CLIENT" echo --port "$ECHO_PORT" & pids+=($!)
taskset -c 1 python3 "$CLIENT" sink --port "$SINK_PORT" --out "$work/sink.txt" & pids+=($!)
wait_port "$ECHO_PORT"; wait_port "$SINK_PORT"

# --- palisade (CPU 0) --------------------------------------------------------
P_HS=$(free_port); P_BULK=$(free_port)
mkdir -p "$work/pdata"
cat > "$work/palisade.toml" <<TOML
[server]
data_dir = "$work/pdata"
access_log = "off"
[[listener]]
name = "hs"
listen = "127.0.0.1:$P_HS"
protocol = "tls"
upstream = "echo"
client_auth = "required"
client_ca = "$BUNDLE"
[[listener.certificate]]
cert = "$SCHAIN"
key = "$SKEY"
[[listener]]
name = "bulk"
listen = "127.0.0.1:$P_BULK"
protocol = "tls"
upstream = "sink"
client_auth = "required"
client_ca = "$BUNDLE"
[[listener.certificate]]
cert = "$SCHAIN"
key = "$SKEY"
[[upstream]]
name = "echo"
servers = ["127.0.0.1:$ECHO_PORT"]
[[upstream]]
name = "sink"
servers = ["127.0.0.1:$SINK_PORT"]
TOML
taskset -c 0 "$PALISADE_BIN" serve -c "$work/palisade.toml" >"$work/palisade.log" 2>&1 & PAL=$!; pids+=($PAL)

# --- stunnel (CPU 0) ---------------------------------------------------------
S_HS=$(free_port); S_BULK=$(free_port)
cat > "$work/stunnel.conf" <<CONF
foreground = yes
pid =
output = $work/stunnel.log
[hs]
accept = 127.0.0.1:$S_HS
connect = 127.0.0.1:$ECHO_PORT
cert = $SCHAIN
key = $SKEY
CAfile = $BUNDLE
verifyChain = yes
requireCert = yes
sslVersionMin = TLSv1.3
[bulk]
accept = 127.0.0.1:$S_BULK
connect = 127.0.0.1:$SINK_PORT
cert = $SCHAIN
key = $SKEY
CAfile = $BUNDLE
verifyChain = yes
requireCert = yes
sslVersionMin = TLSv1.3
CONF
taskset -c 0 stunnel4 "$work/stunnel.conf" >"$work/stunnel.out" 2>&1 & STN=$!; pids+=($STN)
for p in "$P_HS" "$P_BULK" "$S_HS" "$S_BULK"; do wait_port "$p"; done

TLS=(--ca "$BUNDLE" --cert "$CCHAIN" --key "$CKEY")
json() { python3 -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }

# run NAME PID HS_PORT BULK_PORT: prints one result line, sets R_* vars.
run() {
  local name=$1 pid=$2 hs=$3 bulk=$4 t0 t1 out
  t0=$(cpu_ticks "$pid")
  out=$(taskset -c 1 python3 "$CLIENT" handshakes --port "$hs" "${TLS[@]}" --seconds "$SECONDS_RUN" --procs "$CONCURRENCY")
  t1=$(cpu_ticks "$pid")
  R_FULL=$(echo "$out" | json per_second); local n_full; n_full=$(echo "$out" | json handshakes)
  local e_full; e_full=$(echo "$out" | json errors)
  R_FULL_CPU=$(python3 -c "print(round(($t1-$t0)/$hz/max($n_full,1)*1e6))")

  t0=$(cpu_ticks "$pid")
  out=$(taskset -c 1 python3 "$CLIENT" handshakes --resume --port "$hs" "${TLS[@]}" --seconds "$SECONDS_RUN" --procs "$CONCURRENCY")
  t1=$(cpu_ticks "$pid")
  R_RES=$(echo "$out" | json per_second); local n_res; n_res=$(echo "$out" | json handshakes)
  R_RES_SHARE=$(echo "$out" | json resumed_share)
  local e_res; e_res=$(echo "$out" | json errors)
  R_RES_CPU=$(python3 -c "print(round(($t1-$t0)/$hz/max($n_res,1)*1e6))")

  : > "$work/sink.txt"
  t0=$(cpu_ticks "$pid")
  taskset -c 1 python3 "$CLIENT" push --port "$bulk" "${TLS[@]}" --bytes "$BYTES" >/dev/null
  for _ in $(seq 1 100); do [ -s "$work/sink.txt" ] && break; sleep 0.1; done
  t1=$(cpu_ticks "$pid")
  read -r got secs < "$work/sink.txt"
  R_GBPS=$(python3 -c "print(round($got/$secs/1e9, 3))")
  R_GB_CPU=$(python3 -c "print(round(($t1-$t0)/$hz/($got/1e9), 3))")
  [ "$got" = "$BYTES" ] || echo "  warning: sink got $got of $BYTES bytes" >&2
  printf "%-9s %12s %10s %14s %10s %9s %8s %12s %s\n" "$name" "$R_FULL" "$R_FULL_CPU" "$R_RES" "$R_RES_CPU" "$R_RES_SHARE" "$R_GBPS" "$R_GB_CPU" "errors=$((e_full+e_res))"
}

echo "== $(nproc) CPUs; servers on CPU 0, clients on CPU 1; concurrency $CONCURRENCY; ${SECONDS_RUN}s per handshake run; $BYTES bytes pushed"
printf "%-9s %12s %10s %14s %10s %9s %8s %12s\n" server "full hs/s" "us cpu/hs" "resumed hs/s" "us cpu/hs" resumed "GB/s" "cpu s/GB"
for round in $(seq 1 "$ROUNDS"); do
  run palisade "$PAL" "$P_HS" "$P_BULK"
  PF=$R_FULL; PR=$R_RES; PG=$R_GBPS; PFC=$R_FULL_CPU; PRC=$R_RES_CPU; PGC=$R_GB_CPU
  run stunnel "$STN" "$S_HS" "$S_BULK"
  python3 - "$PF" "$R_FULL" "$PR" "$R_RES" "$PG" "$R_GBPS" "$PFC" "$R_FULL_CPU" "$PRC" "$R_RES_CPU" "$PGC" "$R_GB_CPU" <<'PY'
import sys
v = [float(x) for x in sys.argv[1:]]
r = lambda a, b: a / b if b else float("nan")
print(f"palisade/stunnel: full hs/s {r(v[0], v[1]):.2f}x, resumed hs/s {r(v[2], v[3]):.2f}x, "
      f"GB/s {r(v[4], v[5]):.2f}x; server CPU per full hs {r(v[6], v[7]):.2f}x, "
      f"per resumed hs {r(v[8], v[9]):.2f}x, per GB {r(v[10], v[11]):.2f}x")
PY
done
