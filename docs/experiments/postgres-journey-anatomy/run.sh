#!/usr/bin/env bash
# Where PostgreSQL's work in a journey goes: the journey as the server runs it (journey.pgbench),
# the same with one part taken out (no-*.pgbench, plain-view.pgbench), the floor of an insert and
# a delete that still name the recipients (bare.pgbench), and the ceiling's pair. Each runs with
# pgbench (no server, no clients), prepared once per connection as sqlx does, on a scratch
# database of the local cluster; prints the rate and processor time per unit. See README.md.
# SCRIPTS (a list), ROUNDS (2) and SECONDS_EACH (10) change what runs and for how long.
set -euo pipefail
cd "$(dirname "$0")"
DB=ec_experiment_anatomy
# The ceiling's pair is an earlier experiment's; scratch-db.sh connects and makes the database.
previous=../postgres-recipients-in-row
source ../scratch-db.sh
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
# $1: the pgbench script.
measure() {
    fresh
    local before after out tx user sys
    before=$(busy)
    out=$({ /usr/bin/time -f "TIME %U %S" pgbench -n -M prepared -c 32 -j 2 -T "${SECONDS_EACH:-10}" -f "$1" $DB; } 2>&1)
    after=$(busy)
    tx=$(awk '/number of transactions actually processed/ {print $NF}' <<<"$out" | cut -d/ -f1)
    read -r user sys < <(awk '/^TIME/ {print $2, $3}' <<<"$out")
    python3 -c "
n = $tx; s = ${SECONDS_EACH:-10}; machine = ($after - $before) / 100; pgbench = $user + $sys
print(f'$(basename "$1"): {n / s:.0f}/s; per unit: machine {machine * 1000 / n:.3f} ms, pgbench {pgbench * 1000 / n:.3f} ms, PostgreSQL (the rest) {(machine - pgbench) * 1000 / n:.3f} ms')"
}
for _ in $(seq "${ROUNDS:-2}"); do
    for script in ${SCRIPTS:-journey.pgbench no-lock.pgbench no-backlog.pgbench no-existing.pgbench one-scan.pgbench \
        plain-view.pgbench bare.pgbench $previous/pair.pgbench}; do
        measure "$script"
    done
done
psql -q -d postgres -c "DROP DATABASE IF EXISTS $DB"
