#!/usr/bin/env bash
# What keeping a message's recipients in its own row (migration 0005) saves PostgreSQL per
# journey. Runs the server's journey statements with pgbench (no server, no clients), each
# prepared once per connection as sqlx does, on the schema before it (migrations 0001-0004) and
# after it, and the ceiling's insert+delete pair, on a scratch database of the local cluster;
# prints journeys (or pairs) per second and processor time per journey. See README.md.
set -euo pipefail
cd "$(dirname "$0")"
# Plain TCP, as the server's sqlx connects (built without TLS); pgbench would otherwise use TLS.
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres} PGSSLMODE=${PGSSLMODE:-disable}
DB=ec_experiment_in_row
migrations=../../../migrations/postgres

# $1: the last migration to apply (its number).
fresh() {
    psql -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" 2>/dev/null
    for f in "$migrations"/*.sql; do
        [ "$((10#$(basename "$f" | cut -c1-4)))" -le "$1" ] && psql -q -d $DB -v ON_ERROR_STOP=1 -f "$f"
    done
    psql -q -d $DB -v ON_ERROR_STOP=1 -f helpers.sql
}
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

# $1: the pgbench script; $2: the last migration of its schema.
measure() {
    fresh "$2"
    local before after out tx user sys
    before=$(busy)
    out=$({ /usr/bin/time -f "TIME %U %S" pgbench -n -M prepared -c 32 -j 2 -T 10 -f "$1" $DB; } 2>&1)
    after=$(busy)
    tx=$(awk '/number of transactions actually processed/ {print $NF}' <<<"$out" | cut -d/ -f1)
    read -r user sys < <(awk '/^TIME/ {print $2, $3}' <<<"$out")
    python3 -c "
n = $tx; machine = ($after - $before) / 100; pgbench = $user + $sys
print(f'$(basename "$1"): {n / 10:.0f}/s; per unit: machine {machine * 1000 / n:.3f} ms, pgbench {pgbench * 1000 / n:.3f} ms, PostgreSQL (the rest) {(machine - pgbench) * 1000 / n:.3f} ms')"
}

for _ in 1 2; do
    measure before.pgbench 4
    measure after.pgbench 5
    measure pair.pgbench 5
done
psql -q -d postgres -c "DROP DATABASE IF EXISTS $DB"
