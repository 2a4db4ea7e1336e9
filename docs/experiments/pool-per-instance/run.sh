#!/usr/bin/env bash
# One instance against two over NATS at one window, on a database of the run's own, with what
# PostgreSQL did per journey (pg_stat_database: commits, rows returned, fetched, inserted,
# deleted) and each process's user and system time and context switches per journey.
#   docs/experiments/pool-per-instance/run.sh INSTANCES WINDOW [POOL] [nats]
# e.g. `run.sh 1 1`, `run.sh 2 1 10 nats`, `run.sh 2 1 5 nats` (POSTGRES_POOL_SIZE per instance).
# Needs PostgreSQL on 127.0.0.1:5432 (trust, user postgres), nats-server on 127.0.0.1:4222 for
# `nats`, and release builds of server and loadgen in $CARGO_TARGET_DIR. Drops and recreates the
# database `pool_per_instance`.
set -euo pipefail
cd "$(dirname "$0")"
: "${CARGO_TARGET_DIR:?}"
T=$CARGO_TARGET_DIR/release
n=$1; w=$2; pool=${3:-10}; bus=${4:-}
DB=pool_per_instance
P="psql -h 127.0.0.1 -U postgres -Atq"
$P -c "DROP DATABASE IF EXISTS $DB" 2>/dev/null; $P -c "CREATE DATABASE $DB"
KEY=$(python3 -c "import os; print(os.urandom(32).hex())")
dir=$(mktemp -d); pids=(); urls=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$dir"' EXIT
for i in $(seq 1 "$n"); do
    port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
    env -i PATH="$PATH" PORT="$port" DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" DATA_DIR="$dir" \
        ENCRYPTION_KEY="$KEY" LEPTOS_SITE_ROOT="$dir" POSTGRES_POOL_SIZE="$pool" SESSION_GRACE=1s \
        RATE_LIMIT_PER_SECOND=1000000 RATE_LIMIT_BURST=1000000 MAX_CONNECTIONS_PER_ADDRESS=1000000 \
        CONNECTS_PER_SECOND_PER_ADDRESS=1000000 CONNECT_BURST_PER_ADDRESS=1000000 \
        MAX_STORED_BYTES_PER_ADDRESS=1024GiB MAX_CONNECTIONS=1000000 \
        ${bus:+BUS_URL=${NATS_URL:-nats://127.0.0.1:4222}} "$T/server" >"$dir/server-$i.log" 2>&1 &
    pids+=($!); urls+=(--url "ws://127.0.0.1:$port/ws")
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.1; done
done
"$T/loadgen" journey "${urls[@]}" --rooms 32 --messages 50 --concurrency "$w" >/dev/null 2>&1 # warm-up
sleep 2
$P -d $DB -c "VACUUM"; $P -c "CHECKPOINT"; $P -d $DB -c "SELECT pg_stat_reset()" >/dev/null; sleep 1
q="SELECT xact_commit, tup_returned, tup_fetched, tup_inserted, tup_deleted FROM pg_stat_database WHERE datname = '$DB'"
a=$($P -c "$q"); pa=$(python3 cpu.py)
"$T/loadgen" journey "${urls[@]}" --rooms 32 --messages 300 --concurrency "$w" >"$dir/report.json" 2>/dev/null
pb=$(python3 cpu.py); sleep 2 # PostgreSQL publishes its counts within a second
b=$($P -c "$q"); backends=$($P -c "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = '$DB'")
python3 - "$a" "$b" "$pa" "$pb" "$dir/report.json" "×$n window $w pool $pool ${bus:-listen} ($backends connections)" <<'PY'
import json, sys
a, b = (list(map(int, x.split('|'))) for x in sys.argv[1:3])
pa, pb = json.loads(sys.argv[3]), json.loads(sys.argv[4])
r = json.load(open(sys.argv[5]))["report"]
j = r["completed"]
print(f'{sys.argv[6]}: {r["journeys_per_s"]:.0f} journeys/s')
print('  PostgreSQL per journey: ' + ', '.join(f'{k} {(y - x) / j:.2f}' for k, x, y in
      zip(['commits', 'rows returned', 'rows fetched', 'inserted', 'deleted'], a, b)))
for k in sorted(pb):
    x, y = pa.get(k, [0, 0, 0]), pb[k]
    print(f'  {k:<12} user {(y[0] - x[0]) * 10 / j:.3f} ms, system {(y[1] - x[1]) * 10 / j:.3f} ms, '
          f'context switches {(y[2] - x[2]) / j:.1f} per journey')
PY
$P -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
