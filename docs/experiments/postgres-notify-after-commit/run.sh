#!/usr/bin/env bash
# What a NOTIFY in each commit costs, and what it would cost sent after the commit: the ceiling's
# insert+delete pair without NOTIFY, with it inside each commit (as the server sends it when
# another instance must hear), and with it in a transaction of its own after each commit that
# does not wait for the disk (after.pgbench: BEGIN, SET LOCAL, NOTIFY, COMMIT; after-one.pgbench: the
# same in one statement). Closed loop at 32 connections (the rate), then each
# at a fixed rate (RATE, 500 pairs/s) for the latency per pair from its scheduled start (pgbench
# -R, whose latency includes the schedule lag). No server, no clients, nobody LISTENing, as in the
# bench's ceiling. ROUNDS (2) and SECONDS_EACH (10) change how long; HOGS below. See README.md.
set -euo pipefail
cd "$(dirname "$0")"
DB=ec_experiment_notify
# The ceiling's pair is an earlier experiment's; scratch-db.sh connects and makes the database.
previous=../postgres-recipients-in-row
source ../scratch-db.sh
# $1: the script; prints pairs per second, closed loop.
rate() {
    fresh
    local out
    out=$(pgbench -n -M prepared -c 32 -j 2 -T "${SECONDS_EACH:-10}" -f "$1" $DB 2>&1)
    awk -v s="$(basename "$1")" '/^tps/ {printf "%s: %.0f pairs/s (32 connections)\n", s, $3}' <<<"$out"
}
# $1: the script; prints the latency of each pair from its scheduled start at RATE pairs/s.
paced() {
    fresh
    local dir
    dir=$(mktemp -d)
    (cd "$dir" && pgbench -n -M prepared -c 10 -j 2 -R "${RATE:-500}" -T "${SECONDS_EACH:-10}" -l -f "$OLDPWD/$1" $DB >/dev/null 2>&1)
    # Log lines: client, transaction, latency µs (from the scheduled start with -R), script,
    # epoch, µs, schedule lag µs.
    cat "$dir"/pgbench_log.* | python3 -c "
import sys
lat = sorted(int(line.split()[2]) for line in sys.stdin)
pick = lambda p: lat[min(len(lat) - 1, max(0, -(-len(lat) * p // 100) - 1))] / 1000
print(f'$(basename "$1") at ${RATE:-500}/s: {len(lat)} pairs, p50 {pick(50):.2f} / p90 {pick(90):.2f} / p99 {pick(99):.2f} / max {lat[-1] / 1000:.2f} ms')"
    rm -rf "$dir"
}
# HOGS (0): processes that spin on a core meanwhile, as the servers and clients of a journey keep
# the cores busy beside the database.
for _ in $(seq "${HOGS:-0}"); do (while :; do :; done) & done
trap 'jobs -p | xargs -r kill' EXIT
for _ in $(seq "${ROUNDS:-2}"); do
    for script in $previous/pair.pgbench inside.pgbench after.pgbench after-one.pgbench; do rate "$script"; done
    for script in $previous/pair.pgbench inside.pgbench after.pgbench after-one.pgbench; do paced "$script"; done
done
psql -q -d postgres -c "DROP DATABASE IF EXISTS $DB"
