#!/usr/bin/env bash
# `palisade logs analyze` throughput with OWASP CRS v4 (PL1) on a
# benign-heavy combined log shaped like a real shop's (see the generator:
# Zipf-popular pages among a few hundred URLs, the static assets each view
# pulls with the page as Referer, XHR calls with varying ids, a few dozen
# browser versions; about 2% attack and scanner lines), release build.
#
#   scripts/bench-logs.sh [LINES]     # default 1,000,000 lines
#
# Prints lines/s for: one worker thread (per core) with the verdict cache,
# every core with the cache, and one thread without the cache (every line
# through the engine, on the first 100k lines). Goal: >= 50k lines/s per core. The log is generated
# once into $CARGO_TARGET_DIR/bench-logs/ (seeded: the same every run).
# CRS: $PALISADE_SHARED/crs-v4 or ../shared/crs-v4. PALISADE_BIN skips the
# build.
set -euo pipefail
cd "$(dirname "$0")/.."

lines="${1:-1000000}"
target_dir="${CARGO_TARGET_DIR:-target}"
export CARGO_TARGET_DIR="$target_dir"
crs="${PALISADE_SHARED:-$(cd .. && pwd)/shared}/crs-v4"
[ -d "$crs/rules" ] || { echo "no CRS at $crs" >&2; exit 2; }

if [ -n "${PALISADE_BIN:-}" ]; then
    bin="$PALISADE_BIN" # a release binary built already
else
    cargo build --release -p palisade
    bin="$target_dir/release/palisade"
fi

dir="$target_dir/bench-logs"
mkdir -p "$dir"
log="$dir/shop-$lines.log"
if [ ! -s "$log" ]; then
    python3 - "$lines" "$log" <<'PY'
# A shop's access log, shaped like a real one: pages are requested with
# Zipf-like popularity (a few hundred distinct URLs: home, 20 categories,
# 300 products, cart/checkout, search), each page view pulls some of 40
# static assets (versioned CSS/JS, fonts, images) with the page as
# Referer, XHR calls carry varying ids (cart item ids, pagination
# cursors: these rarely repeat), browsers are a few dozen User-Agent
# versions with a long tail, and 2% of lines are attacks and scanners.
import bisect, itertools, random, sys
n, path = int(sys.argv[1]), sys.argv[2]
r = random.Random(20261123)
def zipf(items, s=1.0):
    cum = list(itertools.accumulate(1 / (i + 1) ** s for i in range(len(items))))
    return lambda: items[bisect.bisect(cum, r.random() * cum[-1])]
uas = []
for v in range(120, 132):
    uas.append("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Safari/537.36" % v)
    uas.append("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Mobile Safari/537.36" % v)
for v in ("17.4", "17.5", "17.6", "18.0", "18.1"):
    uas.append("Mozilla/5.0 (iPhone; CPU iPhone OS %s like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/%s Mobile/15E148 Safari/604.1" % (v.replace(".", "_"), v))
    uas.append("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/%s Safari/605.1.15" % v)
for v in range(128, 133):
    uas.append("Mozilla/5.0 (X11; Linux x86_64; rv:%d.0) Gecko/20100101 Firefox/%d.0" % (v, v))
r.shuffle(uas)
browser = zipf(uas)
bots = ["Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"]
site = "https://shop.example"
words = ["shoes", "red+dress", "laptop", "coffee", "table+lamp", "garden", "kids", "gift+card", "sale", "usb-c+cable",
         "jacket", "headphones", "sofa", "running", "wool+socks"]
cats = ["women", "men", "kids", "home", "garden", "electronics", "sports", "beauty", "toys", "books",
        "shoes", "bags", "jewellery", "kitchen", "office", "outdoor", "pets", "music", "gifts", "sale"]
pages = (["/"] + ["/c/%s" % c for c in cats] + ["/p/item-%04d" % i for i in range(300)]
         + ["/cart", "/checkout", "/account", "/help", "/about"])
page = zipf(pages, 0.9)
assets = (["/static/css/site.css?v=42", "/static/js/app.js?v=42", "/static/js/vendor.js?v=17", "/favicon.ico",
           "/static/fonts/inter.woff2", "/static/img/logo.svg", "/static/img/sprite.svg"]
          + ["/static/img/banner-%d.webp" % i for i in range(8)]
          + ["/static/img/cat-%s.webp" % c for c in cats[:25]])
attacks = ["/p/item-0001?id=1%27%20OR%20%271%27=%271", "/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
           "/dl?f=../../../../etc/passwd", "/ping?h=127.0.0.1;cat%20/etc/passwd",
           "/p?id=1%20UNION%20SELECT%20username,password%20FROM%20users--",
           "/.env", "/wp-login.php", "/.git/config", "/phpmyadmin/index.php", "/cgi-bin/test.cgi"]
clients = [("10.%d.%d.%d" % (i % 7, i // 7 % 250, 1 + i % 250), browser()) for i in range(3000)]
with open(path, "w") as f:
    i = 0
    while i < n:
        t = i * 86400 // n
        stamp = "23/Nov/2026:%02d:%02d:%02d +0000" % (t // 3600, t // 60 % 60, t % 60)
        k = r.random()
        if k < 0.02:  # attacks and scanners
            ip = "203.0.113.%d" % r.randrange(1, 50)
            a = r.choice(attacks)
            a += "&n=%d" % r.randrange(1000) if "?" in a else ""
            lines = [(ip, a, r.choice([403, 404]), "-", r.choice(
                ["curl/8.5.0", "python-requests/2.32.3", "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)"]))]
        elif k < 0.05:  # crawlers: pages only
            ip = "66.249.66.%d" % r.randrange(1, 200)
            lines = [(ip, page(), 200, "-", r.choice(bots))]
        else:  # a browser views a page, fetches some assets, maybe an XHR
            ip, ua = r.choice(clients)
            p = page()
            if p.startswith("/c/") and r.random() < 0.3:
                p += "?page=%d&sort=%s" % (r.randrange(1, 6), r.choice(["price", "new", "popular"]))
            if r.random() < 0.08:
                p = "/search?q=%s" % r.choice(words) + ("&page=%d" % r.randrange(2, 5) if r.random() < 0.3 else "")
            ref = r.choice(["-", site + "/", "https://www.google.com/", site + page()])
            lines = [(ip, p, 200 if r.random() < 0.97 else 404, ref, ua)]
            for a in r.sample(assets, r.randrange(0, 5)):
                lines.append((ip, a, r.choice([200, 200, 304]), site + p, ua))
            if r.random() < 0.25:  # XHR with ids that rarely repeat
                x = r.choice(["/api/v1/cart?item=%d" % r.randrange(100000),
                              "/api/v1/reviews?product=%d&cursor=%x" % (r.randrange(300), r.getrandbits(32)),
                              "/api/v1/stock?sku=%d" % r.randrange(2000)])
                lines.append((ip, x, 200, site + p, ua))
        for ip, target, status, ref, ua in lines:
            f.write('%s - - [%s] "GET %s HTTP/1.1" %d %d "%s" "%s"\n' % (ip, stamp, target, status, r.randrange(90000), ref, ua))
            i += 1
            if i >= n:
                break
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
