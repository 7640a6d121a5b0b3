#!/usr/bin/env bash
# Runs palisade's whole test suite on a fresh machine: installs what the tests
# need (Debian packages, PyPI packages), checks formatting and lints, then runs
# every test. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# --- system packages the tests start for real (loopback only) -------------
# "binary:package" pairs. The gateway's TLS tests drive Python's ssl module.
apt_pkgs=()
for pair in "python3:python3" "redis-server:redis-server" "chromium:chromium" "nmap:nmap" "nginx:nginx" "chromedriver:chromium-driver" "sslscan:sslscan" "openssl:openssl" "mosquitto:mosquitto" "zbarimg:zbar-tools"; do
  bin=${pair%%:*}; pkg=${pair##*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || apt_pkgs+=("$pkg")
done
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${apt_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

# --- Python clients used by interoperability tests -------------------------
if [ -f tests/requirements.txt ]; then
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r tests/requirements.txt
fi

# --- Rust toolchain components ---------------------------------------------
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== doc tests"
cargo test --workspace --doc --quiet
echo "== tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
