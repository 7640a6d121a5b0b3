#!/usr/bin/env bash
# CPU per request of the shield's per-request check (allow list + deny list
# of 10 000 entries each, ban lookup with 1000 bans, one per-IP GCRA rate
# limit), with the in-memory and the SQLite (embedded default) state
# backends, on one thread. Goal: under 2 µs. Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p shield --example shield_bench
