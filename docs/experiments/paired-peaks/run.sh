#!/usr/bin/env bash
# Paired peaks: two server binaries (BASE and NEW), one instance against two over NATS, in
# turns, ROUNDS times; each run closed loop, window 4, 32 rooms of two, with each process's
# processor time and the machine's context switches per journey over five seconds of its middle.
#   BASE=/path/to/old/server NEW=/path/to/new/server ROUNDS=3 docs/experiments/paired-peaks/run.sh
# Each binary must be named `server` (the processor time is summed by process name). Needs
# PostgreSQL on 127.0.0.1:5432 and nats-server on 127.0.0.1:4222 (the machine's), and a release
# loadgen (`cargo build --release -p loadgen`).
set -euo pipefail
cd "$(dirname "$0")"
: "${CARGO_TARGET_DIR:?}" "${BASE:?}" "${NEW:?}"
ROUNDS=${ROUNDS:-3}
MSGS=${MSGS:-600}
OUT=$(mktemp -d)

run() { # label binary instances [server env...]
    local label=$1 bin=$2 n=$3
    shift 3
    local extra=()
    for e in "$@"; do extra+=(--server-env "$e"); done
    "$CARGO_TARGET_DIR/release/loadgen" journey --server-bin "$bin" --backend postgres --instances "$n" \
        "${extra[@]}" --rooms 32 --messages "$MSGS" --concurrency 4 >"$OUT/$label.json" 2>"$OUT/$label.err" &
    local lg=$!
    sleep 5
    local a b
    a=$(python3 cpu.py)
    sleep 5
    b=$(python3 cpu.py)
    wait "$lg"
    python3 - "$a" "$b" "$OUT/$label.json" "$label" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
r = json.load(open(sys.argv[3]))["report"]
journeys = r["journeys_per_s"] * 5
def per(k): return (b["by"].get(k, 0) - a["by"].get(k, 0)) * 1000 / journeys
print(f'{sys.argv[4]:<14} peak {r["journeys_per_s"]:6.0f}  ms per journey: server {per("server"):.3f}'
      f' postgres {per("postgres"):.3f} nats-server {per("nats-server"):.3f} loadgen {per("loadgen"):.3f}'
      f'  context switches per journey {(b["ctxt"] - a["ctxt"]) / journeys:.1f}')
PY
}

for round in $(seq "$ROUNDS"); do
    for which in BASE NEW; do
        bin=${!which}
        run "$which-one-$round" "$bin" 1
        run "$which-nats-$round" "$bin" 2 BUS_URL=nats://127.0.0.1:4222
    done
done
