#!/usr/bin/env bash
# `make deny` (part of `make test`): cargo-deny's checks of deny.toml. Licenses, bans (duplicate
# versions included) and sources need nothing but Cargo.lock. Advisories need the RustSec
# database, a git repository: fetched from GitHub where the machine can reach it, else from a
# local mirror, RUSTSEC_DB_MIRROR (a clone or bare mirror of github.com/rustsec/advisory-db).
# Without either, the advisory check is reported as NOT RUN, never as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

cargo deny --locked check licenses bans sources

work=${CARGO_TARGET_DIR:-$PWD/target}/deny
mkdir -p "$work"
mirror=${RUSTSEC_DB_MIRROR:-/work/.mirror/rustsec+advisory-db/repo}
if timeout 60 cargo deny --locked fetch db >"$work/fetch.log" 2>&1; then
    cargo deny --locked check advisories
elif [ -d "$mirror" ]; then
    # The same configuration with the database under the target dir, cloned there from the
    # mirror into the directory cargo-deny would fetch it to (which it names in its complaint).
    config=$work/deny-mirror.toml
    sed "s|^\[advisories\]|[advisories]\ndb-path = \"$work/advisory-dbs\"|" deny.toml >"$config"
    db=$(compgen -G "$work/advisory-dbs/advisory-db-*" | head -1 || true)
    if [ -n "$db" ]; then
        git -C "$db" pull -q --ff-only
    else
        db=$(cargo deny --locked --offline --config "$config" check advisories 2>&1 | grep -o "$work/advisory-dbs/advisory-db-[0-9a-f]*" | head -1 || true)
        [ -n "$db" ] || { echo "deny: cannot tell where cargo-deny keeps its database" >&2; exit 1; }
        git clone -q "$mirror" "$db"
    fi
    echo "deny: advisories from the RustSec mirror at $mirror (last commit $(git -C "$mirror" log -1 --format=%cs))"
    cargo deny --locked --offline --config "$config" check advisories
else
    echo "deny: advisories NOT RUN: GitHub is out of reach ($(tail -1 "$work/fetch.log")) and RUSTSEC_DB_MIRROR names no mirror" >&2
fi
