#!/usr/bin/env bash
# Starts the machine's PostgreSQL cluster when nothing answers on 127.0.0.1:5432, and waits.
set -euo pipefail
pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && exit 0
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
fi
for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done
echo "PostgreSQL is not reachable on 127.0.0.1:5432 (set TEST_POSTGRES_URL to use another)" >&2
exit 1
