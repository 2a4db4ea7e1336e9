#!/usr/bin/env bash
# Would batching the journey's writes let PostgreSQL reach half its insert+delete ceiling?
# Runs the server's journey statements with pgbench (no server, no clients), one message per
# call and sixteen per call, and a plain insert+delete pair, on a scratch database of the local
# cluster; prints journeys (or pairs) per second and processor time per journey. See README.md.
set -euo pipefail
cd "$(dirname "$0")"
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres}
DB=ec_experiment_batching
migrations=../../../migrations/postgres

fresh() {
    psql -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" 2>/dev/null
    # The schema the harness was written for: the recipients table, before 0005 moved them.
    for f in "$migrations"/000[1-4]_*.sql; do psql -q -d $DB -v ON_ERROR_STOP=1 -f "$f"; done
    psql -q -d $DB -v ON_ERROR_STOP=1 -f harness.sql
}
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

# $1: the pgbench script; $2: journeys (or pairs) per transaction of it.
measure() {
    fresh
    local before after out tx user sys
    before=$(busy)
    out=$({ /usr/bin/time -f "TIME %U %S" pgbench -n -M prepared -c 32 -j 2 -T 10 -f "$1" $DB; } 2>&1)
    after=$(busy)
    tx=$(awk '/number of transactions actually processed/ {print $NF}' <<<"$out" | cut -d/ -f1)
    read -r user sys < <(awk '/^TIME/ {print $2, $3}' <<<"$out")
    python3 -c "
n = $tx * $2; machine = ($after - $before) / 100; pgbench = $user + $sys
print(f'$1: {n / 10:.0f}/s; per unit: machine {machine * 1000 / n:.3f} ms, pgbench {pgbench * 1000 / n:.3f} ms, PostgreSQL (the rest) {(machine - pgbench) * 1000 / n:.3f} ms')"
}

for _ in 1 2; do
    measure one-per-call.pgbench 1
    measure sixteen-per-call.pgbench 16
    measure pair.pgbench 1
done
psql -q -d postgres -c "DROP DATABASE IF EXISTS $DB"
