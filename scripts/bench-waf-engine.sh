#!/usr/bin/env bash
# WAF engine bench: OWASP CRS v4 (PL1, blocking) through seclang's Transaction,
# four scenarios, single thread, no network (the end-to-end comparison with
# nginx + ModSecurity is scripts/bench-waf.sh).
#
#   scripts/bench-waf-engine.sh [SECS]        # SECS of timing per scenario (default 3)
#
# Prints rule count, load time, and per scenario tx/s, CPU and wall µs per
# transaction and allocations per transaction. If valgrind is installed it
# then counts instructions per transaction under callgrind (stable on a noisy
# machine): BENCH_CALLGRIND=all|get|form|json|attack|none (default get),
# BENCH_CALLGRIND_ITERS (default 20), BENCH_CALLGRIND_REUSE=1 to count the
# exchange in a reused transaction (Transaction::reset) instead of a new one.
# The callgrind output file is kept in $CARGO_TARGET_DIR/callgrind.<scenario>.out
# for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-3}"
target_dir="${CARGO_TARGET_DIR:-target}"
export CARGO_TARGET_DIR="$target_dir"

cargo bench -p seclang --bench crs --no-run
# The bench binary cargo just built (newest crs-* executable).
bin="$(ls -t "$target_dir"/release/deps/crs-* | grep -v '\.d$' | head -n1)"

"$bin" --secs "$secs"

which="${BENCH_CALLGRIND:-get}"
iters="${BENCH_CALLGRIND_ITERS:-20}"
if [ "$which" = none ]; then
    exit 0
fi
if ! command -v valgrind >/dev/null; then
    echo
    echo "valgrind not installed: no instruction counts (apt-get install valgrind)"
    exit 0
fi
if [ "$which" = all ]; then
    set -- get form json attack
else
    set -- "$which"
fi

# Only instructions inside the bench's `run` (one whole transaction) are
# counted: loading CRS and the warm-up exchange are excluded.
total_ir() { # callgrind file -> total Ir
    callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}
echo
reuse=()
mode="new transaction each"
if [ "${BENCH_CALLGRIND_REUSE:-0}" = 1 ]; then
    reuse=(--reuse)
    mode="one reused transaction"
fi
echo "callgrind: instructions per transaction ($iters transactions per scenario, $mode)"
for s in "$@"; do
    out="$target_dir/callgrind.$s.out"
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect='crs::run' --toggle-collect='crs::run_reused' \
        --callgrind-out-file="$out" "$bin" --scenario "$s" --iters "$iters" --quiet "${reuse[@]}" 2>/dev/null
    ir="$(total_ir "$out")"
    printf '  %-8s %14s   (callgrind_annotate %s)\n' "$s" "$(printf "%'d" $((ir / iters)))" "$out"
done
