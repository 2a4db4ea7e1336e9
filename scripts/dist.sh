#!/usr/bin/env bash
# Builds the release tarball from a finished `make build`: everything a relay needs to run, and
# nothing else (no checkout, no cargo), and the terminal client.
# Usage: scripts/dist.sh SERVER_BIN SITE_ROOT OUT_DIR CLI_BIN
#
#   ephemeral-chat-VERSION-ARCH-linux/
#     bin/ephemeral-chat-relay       the server (migrations are compiled in)
#     bin/ephemeral-chat             the terminal client (README, "From a terminal")
#     site/                          the pages' JS, WASM, CSS and icons, precompressed
#     ephemeral-chat.service         the sandboxed systemd unit
#     env.sample                     every setting, with its default (.env.sample)
#     OPERATING.md                   the README's part for operators
#     LICENSE-NOTE                   the licences
#     SHA256SUMS                     of every file above
#
# Beside the tarball: its own .sha256. The archive's entries are sorted, owned by root and dated
# at the commit, so the same build gives the same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
server_bin=$1 site_root=$2 out=$3 cli_bin=$4

version=$(awk -F'"' '/^\[workspace.package\]/ { p = 1 } p && /^version/ { print $2; exit }' Cargo.toml)
arch=$(uname -m)
name="ephemeral-chat-$version-$arch-linux"
stage="$out/$name"
# The directory is the tarball's alone: an older version's goes.
rm -rf "$out"
mkdir -p "$stage/bin" "$stage/site"

install -m 0755 "$server_bin" "$stage/bin/ephemeral-chat-relay"
install -m 0755 "$cli_bin" "$stage/bin/ephemeral-chat"
cp -R "$site_root/." "$stage/site/"
install -m 0644 docs/ephemeral-chat.service "$stage/ephemeral-chat.service"
install -m 0644 .env.sample "$stage/env.sample"
# The operator's part of the README, between its markers.
awk '/<!-- operator:start -->/ { on = 1; next } /<!-- operator:end -->/ { on = 0 } on' README.md > "$stage/OPERATING.md"
[ -s "$stage/OPERATING.md" ] || { echo "dist: README.md has no operator part between its markers" >&2; exit 1; }
printf 'Ephemeral Chat is licensed MIT OR Apache-2.0 (Cargo.toml); its dependencies under the\nlicences deny.toml allows (cargo deny list shows each).\n' > "$stage/LICENSE-NOTE"

(cd "$stage" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum > SHA256SUMS)

epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)
find "$stage" -exec touch -h -d "@$epoch" {} +
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" --format=gnu \
    -C "$out" -cf - "$name" | gzip -n -9 > "$out/$name.tar.gz"
(cd "$out" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "$out/$name.tar.gz"
