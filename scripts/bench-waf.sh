#!/usr/bin/env bash
# WAF end-to-end bench: palisade with the OWASP CRS v4 against nginx +
# ModSecurity v3 with the same CRS, on loopback (issue 4's speed goal).
#
# Four scenarios, the same as the engine bench (crates/seclang/benches/crs.rs):
#   get     benign GET with 3 query args and 14 browser headers
#   form    benign ~1 KB application/x-www-form-urlencoded POST
#   json    benign ~2 KB application/json POST
#   attack  SQLi GET ?id=1' OR '1'='1 (answered 403 by both WAFs)
# through
#   (a) palisade (release build), route with `waf.mode = "block"`, CRS v4 from
#       ../shared/crs-v4 at paranoia level 1 (crs-setup.conf.example defaults);
#   (b) Debian nginx + libnginx-mod-http-modsecurity + libmodsecurity3 (installed
#       with apt-get when missing), `modsecurity on` with the same engine
#       settings, crs-setup.conf.example and rules/*.conf;
#   (c) palisade as a plain proxy (no WAF), for the WAF-overhead ratio.
# Both WAFs get the same engine settings (request and response bodies
# inspected, JSON/XML body processors by Content-Type, audit and debug logs
# off) and sit in front of the same fast upstream (nginx answering a small
# fixed HTML page). Each proxy under test runs pinned to CPU 0 with one
# worker; wrk and the upstream run on CPU 1.
#
# Per proxy and scenario it prints req/s, p50/p99 latency (wrk --latency),
# and the proxy's CPU µs per request (utime+stime from /proc/<pid>/stat
# before/after the measured run, divided by the requests wrk completed);
# then per scenario the ratio ModSecurity CPU / palisade CPU (issue 4 goal:
# >= 50) and palisade's WAF overhead on the benign GET as
# CPU(palisade+WAF) / CPU(plain palisade proxy) (goal: <= 3).
#
# Environment: DURATION (default 10s), WARMUP (3s), CONNS (8; wrk --timeout 10s),
# PALISADE_BIN (skip the build), PALISADE_SHARED (default ../shared).
# Loopback only; every process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNS=${CONNS:-8}
SHARED=$(realpath "${PALISADE_SHARED:-../shared}")
CRS="$SHARED/crs-v4"
[ -f "$CRS/crs-setup.conf.example" ] || { echo "bench-waf: no CRS at $CRS" >&2; exit 1; }

# --- tools ------------------------------------------------------------------
need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_http_modsecurity_module.so ] || need+=(libnginx-mod-http-modsecurity libmodsecurity3)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
MODSEC_VERSION=$(dpkg-query -W -f='${Version}' libmodsecurity3 2>/dev/null || echo "?")

if [ "$(nproc --all)" -lt 2 ]; then
  echo "bench-waf: needs at least 2 CPUs (proxy on one, load generator on the other)" >&2
  exit 1
fi

if [ -z "${PALISADE_BIN:-}" ]; then
  echo "== cargo build --release -p palisade"
  cargo build --release -q -p palisade
  PALISADE_BIN="${CARGO_TARGET_DIR:-target}/release/palisade"
fi
[ -x "$PALISADE_BIN" ] || { echo "bench-waf: no palisade binary at $PALISADE_BIN" >&2; exit 1; }

# --- scratch dir and cleanup -------------------------------------------------
WORK=$(mktemp -d /tmp/palisade-bench-waf.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # url; bounded 60 s (loading the CRS takes a few seconds)
  for _ in $(seq 600); do
    if curl -sS -o /dev/null --max-time 1 "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "bench-waf: $1 did not answer within 60 s" >&2
  return 1
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
UP_PORT=$(free_port)
MSC_PORT=$(free_port)
PAL_PORT=$(free_port)
PAL_ADMIN=$(free_port)
PLAIN_PORT=$(free_port)
PLAIN_ADMIN=$(free_port)
mkdir -p "$WORK/up/logs" "$WORK/msc/logs" "$WORK/pal/data" "$WORK/plain/data" "$WORK/wrk"

# --- the requests (the engine bench's scenarios) -----------------------------
# Browser navigation headers, as crates/seclang/benches/crs.rs sends them.
HEADERS_LUA='
local browser = {
  ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
  ["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
  ["Accept-Language"] = "en-US,en;q=0.5",
  ["Accept-Encoding"] = "gzip, deflate, br, zstd",
  ["Referer"] = "https://www.example.com/",
  ["Cookie"] = "session=9f86d081884c7d659a2feaa0c55ad015; theme=dark; consent=analytics%3A0",
  ["Upgrade-Insecure-Requests"] = "1",
  ["Sec-Fetch-Dest"] = "document",
  ["Sec-Fetch-Mode"] = "navigate",
  ["Sec-Fetch-Site"] = "same-origin",
  ["Sec-Fetch-User"] = "?1",
  ["Priority"] = "u=0, i",
}
for k, v in pairs(browser) do wrk.headers[k] = v end
wrk.headers["Host"] = "www.example.com"
'
FORM_BODY=$(python3 - <<'EOF'
import urllib.parse
fields = [("first_name","Margaret"),("last_name","Hamilton-Jones"),("email","margaret.hamilton@example.org"),
("phone","+44 20 7946 0958"),("company","Example Widgets Ltd"),("address_line1","221 Baker Street"),
("address_line2","Flat 3"),("city","London"),("postcode","NW1 6XE"),("country","GB"),
("subject","Question about my recent delivery"),
("message","Hello, my parcel arrived yesterday but the box was damaged and one of the two mugs inside was cracked. Could you send a replacement, or refund the cracked one? The order number is on the packing slip and I have kept the packaging in case you need photos. Thanks very much for your help, and have a nice day."),
("order_ref","EW-2024-118734"),("preferred_contact","email"),("newsletter","no"),
("csrf_token","b1946ac92492d2347c6235b4d2611184e3f0c3f1a2b5d6e7"),("submit","Send message")]
out = "&".join(k + "=" + urllib.parse.quote_plus(v, safe="-_.~") for k, v in fields)
n = 0
while len(out) < 1000:
    out += "&gift_note_%d=Happy+birthday" % n
    n += 1
print(out, end="")
EOF
)
JSON_BODY=$(python3 - <<'EOF'
import json
items = [{"sku":s,"name":n,"quantity":q,"unit_price":p,"currency":"EUR","gift_wrap":False,"options":{"colour":"default","engraving":None}}
  for s,n,q,p in [("SKU-10021","Ceramic mug, blue",2,"12.50"),("SKU-10457","World map poster",1,"24.00"),
  ("SKU-20931","Sticker set (12 pieces)",3,"6.99"),("SKU-31408","Notebook, dotted, A5",2,"9.75"),
  ("SKU-44120","Fountain pen, medium nib",1,"39.90"),("SKU-50877","Ink cartridges, black, pack of 6",2,"5.40")]]
body = {"cart_id":"c0a80123-7d4e-4f3a-9b1e-2f6c8d9e0a1b","customer":{"id":48213,"first_name":"Margaret","last_name":"Hamilton-Jones","email":"margaret.hamilton@example.org","phone":"+44 20 7946 0958","loyalty_member":True},
"shipping_address":{"line1":"221 Baker Street","line2":"Flat 3","city":"London","postcode":"NW1 6XE","country":"GB"},"billing_address":{"same_as_shipping":True},"items":items,
"delivery":{"method":"standard","instructions":"Please leave the parcel with the concierge if nobody answers the door."},
"payment":{"method":"card","token":"tok_1Nv2aB3cD4eF5gH6iJ7kL8mN","save_card":False},"coupon":"WINTER10","newsletter_opt_in":False,
"client":{"app_version":"5.12.3","platform":"web","locale":"en-GB","timezone":"Europe/London"},
"notes":"Birthday present for my sister, please do not include the invoice in the parcel.",
"recently_viewed":["SKU-77102","SKU-77215","SKU-80431","SKU-81007"],"marketing":{"utm_source":"newsletter","utm_medium":"email","utm_campaign":"winter-sale"}}
print(json.dumps(body, separators=(",", ":")), end="")
EOF
)
lua_string() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }
SCENARIOS=(get form json attack)
declare -A PATHQ EXPECT
PATHQ[get]='/search?q=hello+world&page=2&sort=asc'
PATHQ[form]='/contact'
PATHQ[json]='/api/v1/checkout'
PATHQ[attack]="/item?id=1%27%20OR%20%271%27%3D%271"
EXPECT[get]=200
EXPECT[form]=200
EXPECT[json]=200
EXPECT[attack]=403
for s in "${SCENARIOS[@]}"; do
  {
    echo "$HEADERS_LUA"
    echo "wrk.path = $(lua_string "${PATHQ[$s]}")"
    case $s in
      form)
        echo 'wrk.method = "POST"'
        echo 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"'
        echo 'wrk.headers["Origin"] = "https://www.example.com"'
        echo "wrk.body = $(lua_string "$FORM_BODY")"
        ;;
      json)
        echo 'wrk.method = "POST"'
        echo 'wrk.headers["Content-Type"] = "application/json"'
        echo 'wrk.headers["Origin"] = "https://www.example.com"'
        echo "wrk.body = $(lua_string "$JSON_BODY")"
        ;;
    esac
    # Every request counts in wrk's total; the expected status is checked
    # with curl before measuring (the attack's 403 is the expected answer).
  } >"$WORK/wrk/$s.lua"
done

# --- the upstream: nginx answering a small HTML page to any method, CPU 1 ----
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
    location / {
      default_type "text/html; charset=utf-8";
      return 200 "<!DOCTYPE html><html><head><title>ok</title></head><body><p>Thanks, your request was received.</p></body></html>\n";
    }
  }
}
EOF
taskset -c 1 "$NGINX" -p "$WORK/up" -c "$WORK/up/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/"

# --- the engine settings both WAFs get before the CRS ------------------------
# (the essentials of modsecurity.conf-recommended, as the engine bench uses)
ENGINE_CONF='SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit 13107200
SecRequestBodyNoFilesLimit 131072
SecRequestBodyLimitAction Reject
SecResponseBodyAccess On
SecResponseBodyMimeType text/plain text/html text/xml
SecResponseBodyLimit 524288
SecResponseBodyLimitAction ProcessPartial
SecRule REQUEST_HEADERS:Content-Type "@rx (?:application(?:/soap\+|/)|text/)xml" \
    "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "@rx ^application/json" \
    "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQBODY_ERROR "!@eq 0" \
    "id:200002,phase:2,t:none,log,deny,status:400,msg:'"'"'Failed to parse request body.'"'"'"
'

# --- (b) nginx + ModSecurity v3, CPU 0 ----------------------------------------
{
  echo "$ENGINE_CONF"
  echo "SecAuditEngine Off"
  echo "SecDebugLogLevel 0"
  echo "SecTmpDir $WORK/msc"
  echo "SecDataDir $WORK/msc"
  echo "Include $CRS/crs-setup.conf.example"
  echo "Include $CRS/rules/*.conf"
} >"$WORK/msc/modsecurity.conf"
cat >"$WORK/msc/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_http_modsecurity_module.so;
user root;
worker_processes 1;
pid $WORK/msc/nginx.pid;
error_log $WORK/msc/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/msc/tmp_body;
  proxy_temp_path $WORK/msc/tmp_proxy;
  fastcgi_temp_path $WORK/msc/tmp_fcgi;
  uwsgi_temp_path $WORK/msc/tmp_uwsgi;
  scgi_temp_path $WORK/msc/tmp_scgi;
  keepalive_requests 1000000;
  client_body_buffer_size 128k;
  upstream app {
    server 127.0.0.1:$UP_PORT;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$MSC_PORT;
    modsecurity on;
    modsecurity_rules_file $WORK/msc/modsecurity.conf;
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

# --- (a) palisade with the CRS, (c) palisade as a plain proxy, CPU 0 ---------
{
  echo "$ENGINE_CONF"
  echo "SecAuditEngine Off"
} >"$WORK/pal/engine.conf"
palisade_config() { # dir port admin waf(yes|no)
  local dir=$1 port=$2 admin=$3 waf=$4
  cat <<EOF
[server]
data_dir = "$dir/data"
access_log = "off"

[admin]
listen = "127.0.0.1:$admin"

[[listener]]
name = "bench"
listen = "127.0.0.1:$port"
protocol = "http"

[[upstream]]
name = "app"
servers = ["127.0.0.1:$UP_PORT"]
balance = "round_robin"

[[route]]
path_prefix = "/"
upstream = "app"
EOF
  if [ "$waf" = yes ]; then
    # The CRS directory (crs-setup.conf.example, then rules/*.conf) at
    # paranoia level 1 with the default thresholds, plus the engine
    # settings file (bodies, body processors) as extra rules; responses
    # inspected as ModSecurity's SecResponseBodyAccess On does.
    cat <<EOF

  [route.waf]
  mode = "block"
  crs = "$CRS"
  rules = ["$dir/engine.conf"]
  paranoia_level = 1
  response_inspection = true
EOF
  fi
  cat <<EOF

[waf]
mode = "off"
  [waf.audit_log]
  mode = "off"
EOF
}
palisade_config "$WORK/pal" "$PAL_PORT" "$PAL_ADMIN" yes >"$WORK/pal/palisade.toml"
palisade_config "$WORK/plain" "$PLAIN_PORT" "$PLAIN_ADMIN" no >"$WORK/plain/palisade.toml"

CLK_TCK=$(getconf CLK_TCK)

# Sum of utime+stime (clock ticks) of a process and its direct children.
cpu_ticks() {
  local total=0 p
  for p in "$@" $(pgrep -P "$1" 2>/dev/null || true); do
    if [ -r "/proc/$p/stat" ]; then
      total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    fi
  done
  echo "$total"
}

to_us() {
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else if (v ~ /s$/) m = 1000000; else m = 1
    printf "%.1f", n * m }'
}

# Sends one scenario with curl and checks the status (the bench only counts
# when each WAF really passes the benign requests and blocks the attack).
check() { # name port scenario
  local name=$1 port=$2 s=$3 code args=()
  args=(-s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Host: www.example.com'
    -H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'
    -H 'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'
    -H 'Accept-Language: en-US,en;q=0.5')
  case $s in
    form) args+=(-H 'Content-Type: application/x-www-form-urlencoded' --data-binary "$FORM_BODY") ;;
    json) args+=(-H 'Content-Type: application/json' --data-binary "$JSON_BODY") ;;
  esac
  code=$(curl "${args[@]}" "http://127.0.0.1:$port${PATHQ[$s]}")
  if [ "$code" != "${EXPECT[$s]}" ]; then
    echo "bench-waf: $name answered $code to scenario $s, expected ${EXPECT[$s]}" >&2
    return 1
  fi
}

declare -A RPS P50 P99 CPU_US

run_one() { # name pid port scenario
  local name=$1 pid=$2 port=$3 s=$4 out before after reqs key="$1/$4"
  taskset -c 1 wrk -t1 -c"$CONNS" -d"$WARMUP" --timeout 10s -s "$WORK/wrk/$s.lua" "http://127.0.0.1:$port" >/dev/null
  before=$(cpu_ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" --timeout 10s --latency -s "$WORK/wrk/$s.lua" "http://127.0.0.1:$port")
  after=$(cpu_ticks "$pid")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  RPS[$key]=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
  P50[$key]=$(to_us "$(echo "$out" | awk '$1 == "50%" {print $2}')")
  P99[$key]=$(to_us "$(echo "$out" | awk '$1 == "99%" {print $2}')")
  CPU_US[$key]=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$reqs" \
    'BEGIN { printf "%.1f", (n > 0) ? t / hz * 1e6 / n : 0 }')
  printf '   %-9s %-7s %10s req/s  p50 %9s us  p99 %9s us  %10s CPU us/request\n' \
    "$name" "$s" "${RPS[$key]}" "${P50[$key]}" "${P99[$key]}" "${CPU_US[$key]}"
}

start_palisade() { # dir port -> pid in STARTED
  local dir=$1 port=$2
  taskset -c 0 "$PALISADE_BIN" serve -c "$dir/palisade.toml" >"$dir/stdout.log" 2>"$dir/stderr.log" &
  STARTED=$!
  PIDS+=($STARTED)
  if ! wait_http "http://127.0.0.1:$port/"; then
    cat "$dir/stderr.log" >&2
    exit 1
  fi
}

echo "== starting: palisade + CRS, nginx + ModSecurity $MODSEC_VERSION + CRS, plain palisade"
start_palisade "$WORK/pal" "$PAL_PORT"
PAL_PID=$STARTED
start_palisade "$WORK/plain" "$PLAIN_PORT"
PLAIN_PID=$STARTED
taskset -c 0 "$NGINX" -p "$WORK/msc" -c "$WORK/msc/nginx.conf" -g 'daemon off;' 2>"$WORK/msc/logs/stderr.log" &
MSC_PID=$!
PIDS+=($MSC_PID)
if ! wait_http "http://127.0.0.1:$MSC_PORT/"; then
  cat "$WORK/msc/logs/stderr.log" "$WORK/msc/logs/error.log" >&2
  exit 1
fi
for s in "${SCENARIOS[@]}"; do
  check palisade "$PAL_PORT" "$s"
  check modsecurity "$MSC_PORT" "$s"
done
check plain "$PLAIN_PORT" get

echo "== measuring: $CONNS connections, warmup $WARMUP, $DURATION per run; proxy on CPU 0, wrk + upstream on CPU 1"
for s in "${SCENARIOS[@]}"; do
  run_one palisade "$PAL_PID" "$PAL_PORT" "$s"
  run_one modsec "$MSC_PID" "$MSC_PORT" "$s"
done
run_one plain "$PLAIN_PID" "$PLAIN_PORT" get

echo
echo "== results (CRS v4 $(head -c 10 "$CRS/SOURCE_COMMIT" 2>/dev/null || echo '?'), PL1, block mode; load average before: $LOAD_BEFORE)"
printf '%-8s | %-21s | %-21s | %-21s | %s\n' scenario "req/s pal / modsec" "p50 us pal / modsec" "p99 us pal / modsec" "CPU us/req pal / modsec = ratio (goal >= 50)"
for s in "${SCENARIOS[@]}"; do
  awk -v s="$s" -v pr="${RPS[palisade/$s]}" -v mr="${RPS[modsec/$s]}" \
    -v p50a="${P50[palisade/$s]}" -v p50b="${P50[modsec/$s]}" \
    -v p99a="${P99[palisade/$s]}" -v p99b="${P99[modsec/$s]}" \
    -v pc="${CPU_US[palisade/$s]}" -v mc="${CPU_US[modsec/$s]}" 'BEGIN {
    printf "%-8s | %9.0f / %9.0f | %9.1f / %9.1f | %9.1f / %9.1f | %8.1f / %9.1f = %6.1fx\n",
      s, pr, mr, p50a, p50b, p99a, p99b, pc, mc, (pc > 0 ? mc / pc : 0) }'
done
awk -v w="${CPU_US[palisade/get]}" -v p="${CPU_US[plain/get]}" -v r="${RPS[plain/get]}" 'BEGIN {
  printf "plain palisade proxy, benign GET: %.0f req/s, %.1f CPU us/request\n", r, p
  printf "WAF overhead on the benign GET: CPU(palisade + CRS) / CPU(plain proxy) = %.2f (goal <= 3)\n", (p > 0 ? w / p : 0) }'
