#!/usr/bin/env bash
# Starts the machine's NATS server when nothing answers on 127.0.0.1:4222, and waits. The tests
# run nats-servers of their own; this one is for a developer's `BUS_URL=nats://127.0.0.1:4222`
# and for the services CI expects to find up, as PostgreSQL's.
set -euo pipefail
answers() { (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; }
answers && exit 0
bin=$(command -v nats-server || echo /usr/sbin/nats-server)
# Not installed yet: `make test`'s set-up installs it, and the tests start their own.
[ -x "$bin" ] || { echo "no nats-server yet: make setup installs Debian's"; exit 0; }
echo "starting NATS"
if command -v systemctl >/dev/null && systemctl start nats-server 2>/dev/null; then :; else
    nohup "$bin" -a 127.0.0.1 -p 4222 >/dev/null 2>&1 &
fi
for _ in $(seq 30); do answers && exit 0; sleep 1; done
echo "NATS is not reachable on 127.0.0.1:4222" >&2
exit 1
