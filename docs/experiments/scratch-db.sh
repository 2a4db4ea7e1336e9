# Sourced by the experiments' run.sh: `fresh` makes the scratch database $DB anew at the latest
# migration, with the pgbench parameter helpers, vacuumed and checkpointed so that a run starts
# with the database at rest (as `make bench` starts its runs).
# Plain TCP, as the server's sqlx connects (built without TLS); pgbench would otherwise use TLS.
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres} PGSSLMODE=${PGSSLMODE:-disable}
EXPERIMENTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fresh() {
    psql -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" 2>/dev/null
    for f in "$EXPERIMENTS"/../../migrations/postgres/*.sql; do psql -q -d "$DB" -v ON_ERROR_STOP=1 -f "$f"; done
    psql -q -d "$DB" -v ON_ERROR_STOP=1 -f "$EXPERIMENTS"/postgres-recipients-in-row/helpers.sql
    psql -q -d "$DB" -c "VACUUM ANALYZE" -c "CHECKPOINT"
}
