#!/usr/bin/env bash
# `make bench`: the whole benchmark, one run, written to BENCHMARKS.md (see its Method section).
# Expects `make build` and `make static-e2e` to have run (the Makefile sees to it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
: "${CARGO_TARGET_DIR:?set by the Makefile}"
SITE_ROOT=${SITE_ROOT:-$PWD/target/site}
STATIC_DIST=${STATIC_DIST:-$CARGO_TARGET_DIR/static-e2e}
OUT=$CARGO_TARGET_DIR/bench
mkdir -p "$OUT"

# Ten thousand sockets on each side of loopback.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 12000 ] \
    || { echo "bench: open-file limit $(ulimit -n) is below 12000: raise the hard limit (ulimit -Hn)" >&2; exit 1; }
scripts/ensure-postgres.sh

echo "bench: building the load generator"
cargo build -q --release -p loadgen
LOADGEN=$CARGO_TARGET_DIR/release/loadgen

# The app's crypto exported for the browser page, built exactly as cargo-leptos builds the
# shipped bundle (same profile, target dir and wasm-opt flags), plus the `bench` exports.
echo "bench: building the crypto exports (WASM, release profile)"
cargo build -q --package=frontend --lib --target-dir="$CARGO_TARGET_DIR/front" --target=wasm32-unknown-unknown \
    --no-default-features --features=hydrate,bench --profile=wasm-release
rm -rf "$OUT/crypto-bench" && mkdir -p "$OUT/crypto-bench"
wasm-bindgen --target web --no-typescript --out-dir "$OUT/crypto-bench" --out-name crypto-bench \
    "$CARGO_TARGET_DIR/front/wasm32-unknown-unknown/wasm-release/frontend.wasm"
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    "$OUT/crypto-bench/crypto-bench_bg.wasm" -o "$OUT/crypto-bench/crypto-bench_bg.wasm"

echo "bench: browser (client crypto, join time, sizes)"
(cd end2end && SERVER_BIN="$CARGO_TARGET_DIR/release/server" LEPTOS_SITE_ROOT="$SITE_ROOT" STATIC_DIST="$STATIC_DIST" \
    BENCH_PKG="$OUT/crypto-bench" OUT="$OUT/browser.json" node bench/browser.mjs)

echo "bench: server (ceilings, journeys, idle connections)"
status=0
rm -f "$OUT/server.json"
"$LOADGEN" bench --server-bin "$CARGO_TARGET_DIR/release/server" --out "$OUT/server.json" || status=$?
# A run that stopped before writing its results leaves BENCHMARKS.md as it was.
[ -f "$OUT/server.json" ] || { echo "bench: the server part wrote no results; BENCHMARKS.md not written" >&2; exit 1; }

"$LOADGEN" render --results "$OUT/server.json" --browser "$OUT/browser.json" \
    --history docs/benchmark-history.md --out BENCHMARKS.md
echo "bench: wrote BENCHMARKS.md (raw figures in $OUT)"
exit "$status"
