#!/usr/bin/env bash
# `palisade logs analyze` throughput with OWASP CRS v4 (PL1) on a
# benign-heavy combined log (98% ordinary shop traffic from 2,000 clients,
# 2% SQLi/XSS/traversal/RCE/scanner lines), release build.
#
#   scripts/bench-logs.sh [LINES]     # default 1,000,000 lines
#
# Prints lines/s for: one worker thread (per core) with the verdict cache,
# every core with the cache, and one thread without the cache (every line
# through the engine, on the first 100k lines). Goal: >= 50k lines/s per core. The log is generated
# once into $CARGO_TARGET_DIR/bench-logs/ (seeded: the same every run).
# CRS: $PALISADE_SHARED/crs-v4 or ../shared/crs-v4.
set -euo pipefail
cd "$(dirname "$0")/.."

lines="${1:-1000000}"
target_dir="${CARGO_TARGET_DIR:-target}"
export CARGO_TARGET_DIR="$target_dir"
crs="${PALISADE_SHARED:-$(cd .. && pwd)/shared}/crs-v4"
[ -d "$crs/rules" ] || { echo "no CRS at $crs" >&2; exit 2; }

cargo build --release -p palisade
bin="$target_dir/release/palisade"

dir="$target_dir/bench-logs"
mkdir -p "$dir"
log="$dir/access-$lines.log"
if [ ! -s "$log" ]; then
    python3 - "$lines" "$log" <<'PY'
import random, sys
n, path = int(sys.argv[1]), sys.argv[2]
r = random.Random(20261123)
uas = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.5.0", "python-requests/2.32.3",
]
words = ["shoes", "red+dress", "laptop", "coffee", "table+lamp", "garden", "kids", "gift+card", "sale", "usb-c+cable"]
refs = ["-", "https://shop.example/", "https://shop.example/products", "https://www.google.com/"]
attacks = ["/item?id=1%27%20OR%20%271%27=%271", "/s?q=%3Cscript%3Ealert(1)%3C/script%3E",
           "/dl?f=../../../../etc/passwd", "/ping?h=127.0.0.1;cat%20/etc/passwd",
           "/p?id=1%20UNION%20SELECT%20username,password%20FROM%20users--"]
clients = [("10.%d.%d.%d" % (i % 7, i // 7 % 250, 1 + i % 250), r.choice(uas)) for i in range(2000)]
months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
with open(path, "w") as f:
    for i in range(n):
        t = i * 86400 // n
        stamp = "23/Nov/2026:%02d:%02d:%02d +0000" % (t // 3600, t // 60 % 60, t % 60)
        ip, ua = r.choice(clients)
        k = r.random()
        if k < 0.02:
            target, ua, status = r.choice(attacks) + "&n=%d" % r.randrange(1000), "curl/8.5.0", 403
            ip = "203.0.113.%d" % r.randrange(1, 50)
        elif k < 0.30:
            target, status = r.choice(["/static/css/site.css", "/static/js/app.js", "/favicon.ico", "/images/logo.svg"]), 200
        elif k < 0.55:
            target, status = "/products/%d" % r.randrange(2000), 200
        elif k < 0.65:
            target, status = "/search?q=%s&page=%d" % (r.choice(words), r.randrange(5)), 200
        elif k < 0.75:
            target, status = "/images/products/%d.jpg" % r.randrange(2000), 200
        elif k < 0.80:
            target, status = "/api/v1/items?ids=%d,%d" % (r.randrange(50), r.randrange(50)), 200
        elif k < 0.82:
            target, status = "/nope/%d" % r.randrange(5000), 404
        else:
            target, status = "/", 200
        ref = "https://shop.example/" if target.startswith(("/static", "/images")) else r.choice(refs)
        f.write('%s - - [%s] "GET %s HTTP/1.1" %d %d "%s" "%s"\n' % (ip, stamp, target, status, r.randrange(90000), ref, ua))
PY
fi
echo "log: $log ($(wc -l < "$log") lines, $(du -h "$log" | cut -f1))"
echo "cores: $(nproc), load: $(cut -d' ' -f1-3 /proc/loadavg)"

# Wall-clock lines/s depends on what else runs on the machine; lines per
# CPU-second (user + system time of the process) is the per-core figure.
run() { # label, extra args...
    local label="$1"; shift
    python3 - "$label" "$dir/report.json" "$bin" "$log" "$crs" "$@" <<'PY'
import json, resource, subprocess, sys
label, report, binary, log, crs, extra = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
subprocess.run([binary, "logs", "analyze", log, "--crs", crs, "--no-progress", "--json", report, "-q"] + extra, check=True)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = ru.ru_utime + ru.ru_stime
j = json.load(open(report))
hit = j["cache_hits"] / max(1, j["cache_hits"] + j["evaluated"])
print("%-34s %8.0f lines/CPU-s %8.0f lines/s wall  (%d lines, %.1f s wall, %.1f s CPU, %d threads, %d attacks, %.1f%% verdicts cached)" % (
    label, j["lines"] / max(cpu, 1e-6), j["lines_per_second"], j["lines"], j["elapsed_seconds"], cpu, j["threads"], j["attacks"], 100 * hit))
PY
}
run "1 thread, verdict cache:" --threads 1
run "all cores, verdict cache:" --threads 0
# Without the cache every line goes through CRS: a 100k-line slice is enough.
head -n 100000 "$log" > "$dir/slice.log"
log="$dir/slice.log"
run "1 thread, no cache (100k lines):" --threads 1 --no-cache
