#!/usr/bin/env bash
# Compares palisade and nginx as plain HTTP reverse proxies on loopback.
#
# One upstream (nginx serving a small static file) sits behind two proxies in
# turn: palisade (release build) and Debian's nginx (proxy_pass with keepalive
# to the upstream). Both proxies run under the same conditions: one worker,
# pinned to CPU 0, access log off. The load generator wrk and the upstream are
# pinned to CPU 1, so the proxy under test has core 0 to itself.
#
# For each proxy it prints req/s, p50/p99 latency (wrk --latency), and the
# proxy's CPU time per request (utime+stime from /proc/<pid>/stat before and
# after the measured run, divided by the requests wrk completed), then the
# ratios palisade/nginx.
#
# Environment: DURATION (default 10s), WARMUP (3s), ROUNDS (3), CONNS (50),
# FILE_BYTES (size of the static file, 1024), PALISADE_BIN (skip the build).
# Loopback only; every process it starts is stopped on exit.
#
# MODE=count measures work per request instead of speed, which a busy shared
# machine does not distort: a fixed number of requests (COUNT, default 20000,
# over COUNT_CONNS=10 keep-alive connections, from a small Python client) is
# sent through each proxy under `strace -c -f` (system calls per request,
# palisade and nginx), then through palisade under valgrind's callgrind
# (user-space instructions per request, palisade only; the profile is kept
# in $CALLGRIND_OUT, default /tmp/palisade-bench.callgrind.out, for
# `callgrind_annotate --inclusive=yes`).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${MODE:-speed}
COUNT=${COUNT:-20000}
COUNT_CONNS=${COUNT_CONNS:-10}
CALLGRIND_OUT=${CALLGRIND_OUT:-/tmp/palisade-bench.callgrind.out}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}
FILE_BYTES=${FILE_BYTES:-1024}

# --- tools ------------------------------------------------------------------
need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
if [ "$MODE" = count ]; then
  command -v strace >/dev/null 2>&1 || need+=(strace)
  command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ "$(nproc --all)" -lt 2 ]; then
  echo "bench-proxy: needs at least 2 CPUs (proxy on one, load generator on the other)" >&2
  exit 1
fi

if [ -z "${PALISADE_BIN:-}" ]; then
  echo "== cargo build --release -p palisade"
  cargo build --release -q -p palisade
  PALISADE_BIN="${CARGO_TARGET_DIR:-target}/release/palisade"
fi
[ -x "$PALISADE_BIN" ] || { echo "bench-proxy: no palisade binary at $PALISADE_BIN" >&2; exit 1; }

# --- scratch dir and cleanup -------------------------------------------------
WORK=$(mktemp -d /tmp/palisade-bench.XXXXXX)
chmod 755 "$WORK" # nginx workers run as an unprivileged user and must read the files
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do
    # bounded wait: at most ~5 s per process, then SIGKILL
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # url; bounded 30 s
  for _ in $(seq 300); do
    if curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "bench-proxy: $1 did not answer within 30 s" >&2
  return 1
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
UP_PORT=$(free_port)
NGX_PORT=$(free_port)
PAL_PORT=$(free_port)
PAL_ADMIN=$(free_port)

# --- the upstream: nginx serving one static file, on CPU 1 -------------------
mkdir -p "$WORK/up/html" "$WORK/up/logs" "$WORK/px/logs" "$WORK/pal/data"
head -c "$FILE_BYTES" /dev/zero | tr '\0' 'a' >"$WORK/up/html/index.html"
cat >"$WORK/up/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/up/nginx.pid;
error_log $WORK/up/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/up/tmp_body;
  proxy_temp_path $WORK/up/tmp_proxy;
  fastcgi_temp_path $WORK/up/tmp_fcgi;
  uwsgi_temp_path $WORK/up/tmp_uwsgi;
  scgi_temp_path $WORK/up/tmp_scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UP_PORT;
    root $WORK/up/html;
    location / { }
  }
}
EOF
taskset -c 1 "$NGINX" -p "$WORK/up" -c "$WORK/up/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/index.html"

# --- nginx as reverse proxy, on CPU 0 ----------------------------------------
cat >"$WORK/px/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/px/nginx.pid;
error_log $WORK/px/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/px/tmp_body;
  proxy_temp_path $WORK/px/tmp_proxy;
  fastcgi_temp_path $WORK/px/tmp_fcgi;
  uwsgi_temp_path $WORK/px/tmp_uwsgi;
  scgi_temp_path $WORK/px/tmp_scgi;
  keepalive_requests 1000000;
  upstream app {
    server 127.0.0.1:$UP_PORT;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$NGX_PORT;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
EOF

# --- palisade as reverse proxy, on CPU 0 -------------------------------------
cat >"$WORK/pal/palisade.toml" <<EOF
[server]
data_dir = "$WORK/pal/data"
access_log = "off"

[admin]
listen = "127.0.0.1:$PAL_ADMIN"

[[listener]]
name = "bench"
listen = "127.0.0.1:$PAL_PORT"
protocol = "http"

[[upstream]]
name = "app"
servers = ["127.0.0.1:$UP_PORT"]
balance = "round_robin"

[[route]]
path_prefix = "/"
upstream = "app"
EOF

CLK_TCK=$(getconf CLK_TCK)

# Sum of utime+stime (clock ticks) of a process and its direct children.
cpu_ticks() {
  local total=0 p
  for p in "$@" $(pgrep -P "$1" 2>/dev/null || true); do
    if [ -r "/proc/$p/stat" ]; then
      # Fields after the ")" that closes the command name: utime is 14th, stime 15th overall.
      total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    fi
  done
  echo "$total"
}

# Converts a wrk latency ("812.00us", "1.20ms", "1.01s") to microseconds.
to_us() {
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else if (v ~ /s$/) m = 1000000; else m = 1
    printf "%.1f", n * m }'
}

declare -A RPS P50 P99 CPU_US REQS

run_one() { # name pid url
  local name=$1 pid=$2 url=$3 out before after
  echo "== $name: warmup $WARMUP"
  taskset -c 1 wrk -t1 -c"$CONNS" -d"$WARMUP" "$url" >/dev/null
  before=$(cpu_ticks "$pid")
  echo "== $name: measuring $DURATION, $CONNS connections"
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$url")
  after=$(cpu_ticks "$pid")
  echo "$out" | sed 's/^/   /'
  if echo "$out" | grep -q "Non-2xx"; then
    echo "bench-proxy: $name answered non-2xx responses; numbers are not comparable" >&2
    exit 1
  fi
  REQS[$name]=$(echo "$out" | awk '/requests in/ {print $1}')
  RPS[$name]=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
  P50[$name]=$(to_us "$(echo "$out" | awk '$1 == "50%" {print $2}')")
  P99[$name]=$(to_us "$(echo "$out" | awk '$1 == "99%" {print $2}')")
  CPU_US[$name]=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="${REQS[$name]}" \
    'BEGIN { printf "%.2f", (n > 0) ? t / hz * 1e6 / n : 0 }')
}

# Both proxies are started up front (an idle proxy costs no CPU) and measured
# alternately, ROUNDS times, so that background load on a shared machine hits
# both alike; the reported figures are the per-metric medians over rounds.
taskset -c 0 "$PALISADE_BIN" serve -c "$WORK/pal/palisade.toml" >"$WORK/pal/stdout.log" 2>"$WORK/pal/stderr.log" &
PAL_PID=$!
PIDS+=($PAL_PID)
if ! wait_http "http://127.0.0.1:$PAL_PORT/index.html"; then
  cat "$WORK/pal/stderr.log" >&2
  exit 1
fi
body=$(curl -fsS --max-time 5 "http://127.0.0.1:$PAL_PORT/index.html" | wc -c)
[ "$body" -eq "$FILE_BYTES" ] || { echo "bench-proxy: palisade returned $body bytes, want $FILE_BYTES" >&2; exit 1; }

taskset -c 0 "$NGINX" -p "$WORK/px" -c "$WORK/px/nginx.conf" -g 'daemon off;' &
NGX_PID=$!
PIDS+=($NGX_PID)
wait_http "http://127.0.0.1:$NGX_PORT/index.html"

# --- MODE=count: system calls and instructions per request -------------------
if [ "$MODE" = count ]; then
  cat >"$WORK/load.py" <<'PYEOF'
# Fixed-count HTTP/1.1 keep-alive load: total requests over conns connections.
import socket, sys, threading
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
total, conns = int(sys.argv[4]), int(sys.argv[5])
req = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n".encode()
bad = []
def worker(n):
    s = socket.create_connection((host, port), timeout=60)
    buf = b""
    for _ in range(n):
        s.sendall(req)
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                raise SystemExit("connection closed")
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            bad.append(head[:40])
        cl = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                cl = int(v)
        while len(rest) < cl:
            d = s.recv(65536)
            if not d:
                raise SystemExit("connection closed")
            rest += d
        buf = rest[cl:]
    s.close()
ts = [threading.Thread(target=worker, args=(total // conns,)) for _ in range(conns)]
for t in ts:
    t.start()
for t in ts:
    t.join()
if bad:
    sys.exit(f"non-200 answers: {len(bad)}, first {bad[0]!r}")
PYEOF
  load() { # port requests
    taskset -c 1 python3 "$WORK/load.py" 127.0.0.1 "$1" /index.html "$2" "$COUNT_CONNS"
  }
  syscalls() { # name port pid...
    local name=$1 port=$2 spid
    shift 2
    load "$port" 1000
    local args=()
    for p in "$@"; do args+=(-p "$p"); done
    strace -c -f -o "$WORK/strace.$name" "${args[@]}" 2>/dev/null &
    spid=$!
    sleep 1
    load "$port" "$COUNT"
    kill -INT "$spid"
    wait "$spid" 2>/dev/null || true
    echo "== $name: system calls per request (strace -c, $COUNT requests)"
    # Rows: % time, seconds, usecs/call, calls, [errors], syscall.
    awk -v n="$COUNT" '$NF == "total" { printf "   %-16s %6.2f\n", "total", $4 / n; next }
      $1 ~ /^[0-9.]+$/ && NF >= 5 { printf "   %-16s %6.2f\n", $NF, $4 / n }' "$WORK/strace.$name"
  }
  syscalls palisade "$PAL_PORT" "$PAL_PID"
  syscalls nginx "$NGX_PORT" $(pgrep -P "$NGX_PID")

  cg_total() { # callgrind output file -> total instructions
    callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t { gsub(",", "", $1); t = $1 + 0 } END { print t + 0 }'
  }

  # palisade under callgrind, on its own port; instrumentation only while
  # the counted requests run.
  CG_PORT=$(free_port)
  CG_ADMIN=$(free_port)
  sed -e "s/127.0.0.1:$PAL_PORT/127.0.0.1:$CG_PORT/" -e "s/127.0.0.1:$PAL_ADMIN/127.0.0.1:$CG_ADMIN/" \
    "$WORK/pal/palisade.toml" >"$WORK/pal/callgrind.toml"
  taskset -c 0 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$CALLGRIND_OUT" \
    "$PALISADE_BIN" serve -c "$WORK/pal/callgrind.toml" >"$WORK/pal/cg.log" 2>&1 &
  CG_PID=$!
  PIDS+=($CG_PID)
  wait_http "http://127.0.0.1:$CG_PORT/index.html"
  load "$CG_PORT" 1000
  callgrind_control -i on "$CG_PID" >/dev/null 2>&1
  load "$CG_PORT" "$COUNT"
  callgrind_control -i off "$CG_PID" >/dev/null 2>&1
  kill "$CG_PID"
  wait "$CG_PID" 2>/dev/null || true
  total=$(cg_total "$CALLGRIND_OUT")
  echo "== palisade: user-space instructions per request (callgrind, $COUNT requests): $((total / COUNT))"
  echo "   profile: callgrind_annotate --inclusive=yes $CALLGRIND_OUT"

  # nginx as proxy under callgrind, the same way: one process (no master),
  # on its own port, instrumented only while the counted requests run.
  if [ -z "${SKIP_NGINX_COUNT:-}" ]; then
    NCG_PORT=$(free_port)
    mkdir -p "$WORK/ncg/logs"
    sed -e "s#listen 127.0.0.1:$NGX_PORT;#listen 127.0.0.1:$NCG_PORT;#" -e "s#$WORK/px/#$WORK/ncg/#g" \
      "$WORK/px/nginx.conf" >"$WORK/ncg/nginx.conf"
    taskset -c 0 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$CALLGRIND_OUT.nginx" \
      "$NGINX" -p "$WORK/ncg" -c "$WORK/ncg/nginx.conf" -g 'daemon off; master_process off;' >"$WORK/ncg/cg.log" 2>&1 &
    NCG_PID=$!
    PIDS+=($NCG_PID)
    wait_http "http://127.0.0.1:$NCG_PORT/index.html"
    load "$NCG_PORT" 1000
    callgrind_control -i on "$NCG_PID" >/dev/null 2>&1
    load "$NCG_PORT" "$COUNT"
    callgrind_control -i off "$NCG_PID" >/dev/null 2>&1
    kill "$NCG_PID"
    wait "$NCG_PID" 2>/dev/null || true
    ntotal=$(cg_total "$CALLGRIND_OUT.nginx")
    echo "== nginx: user-space instructions per request (callgrind, $COUNT requests): $((ntotal / COUNT))"
    awk -v a="$total" -v b="$ntotal" 'BEGIN { if (b > 0) printf "ratio palisade/nginx: user-space instructions per request %.3f\n", a / b }'
  fi
  exit 0
fi

declare -A ALL_RPS ALL_P50 ALL_P99 ALL_CPU
for round in $(seq "$ROUNDS"); do
  for n in palisade nginx; do
    if [ "$n" = palisade ]; then
      run_one palisade "$PAL_PID" "http://127.0.0.1:$PAL_PORT/index.html"
    else
      run_one nginx "$NGX_PID" "http://127.0.0.1:$NGX_PORT/index.html"
    fi
    ALL_RPS[$n]+="${RPS[$n]} "
    ALL_P50[$n]+="${P50[$n]} "
    ALL_P99[$n]+="${P99[$n]} "
    ALL_CPU[$n]+="${CPU_US[$n]} "
    echo "   round $round $n: ${RPS[$n]} req/s, p50 ${P50[$n]} us, p99 ${P99[$n]} us, ${CPU_US[$n]} CPU us/request"
  done
done

median() { echo "$@" | tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
for n in palisade nginx; do
  RPS[$n]=$(median ${ALL_RPS[$n]})
  P50[$n]=$(median ${ALL_P50[$n]})
  P99[$n]=$(median ${ALL_P99[$n]})
  CPU_US[$n]=$(median ${ALL_CPU[$n]})
done

echo
echo "== results: medians of $ROUNDS alternating rounds (loopback, proxy on CPU 0, wrk + upstream on CPU 1, ${CONNS} connections, ${DURATION} each, ${FILE_BYTES}-byte file)"
echo "   load average before the run: $LOAD_BEFORE"
printf '%-10s %12s %12s %12s %16s\n' proxy "req/s" "p50 (us)" "p99 (us)" "CPU us/request"
for n in palisade nginx; do
  printf '%-10s %12s %12s %12s %16s\n' "$n" "${RPS[$n]}" "${P50[$n]}" "${P99[$n]}" "${CPU_US[$n]}"
done
awk -v pr="${RPS[palisade]}" -v nr="${RPS[nginx]}" -v pc="${CPU_US[palisade]}" -v nc="${CPU_US[nginx]}" \
  -v p50a="${P50[palisade]}" -v p50b="${P50[nginx]}" -v p99a="${P99[palisade]}" -v p99b="${P99[nginx]}" 'BEGIN {
  printf "ratio palisade/nginx: req/s %.3f (goal >= 0.9), CPU/request %.3f (goal <= 1.1), p50 %.3f, p99 %.3f\n",
    pr / nr, (nc > 0 ? pc / nc : 0), (p50b > 0 ? p50a / p50b : 0), (p99b > 0 ? p99a / p99b : 0) }'
