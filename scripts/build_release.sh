#!/usr/bin/env bash
# `make build`: the release server and the site it serves (SITE_ROOT, default target/site):
# pkg/ephemeral-chat.{js,wasm,css} and the public/ files. The same steps, flags and file names
# as `cargo leptos build --release` (Cargo.toml's [workspace.metadata.leptos]), without
# cargo-leptos itself: its JavaScript minifier and CSS processor took about fifteen minutes to
# compile on two cores, the longest step of a first `make run`, to shave a few kilobytes off
# files that are served brotli-compressed anyway. `cargo leptos watch` (the dev loop, `make
# watch`) still uses cargo-leptos and writes the same layout.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
: "${CARGO_TARGET_DIR:?set by the Makefile}"
site=${1:-$PWD/target/site}
name=ephemeral-chat
front=$CARGO_TARGET_DIR/front

step() { echo "build: $*"; }
started=$SECONDS

# The two compilations use separate target directories (cargo-leptos's layout: the WASM in
# front/), so they run side by side and each fills the other's single-threaded stretches.
# As cargo-leptos does: Leptos reads the output name at compile time, and only with it set does
# the server's page name the renamed `NAME.wasm` (else `NAME_bg.wasm`, which is not there).
export LEPTOS_OUTPUT_NAME=$name
step "compiling the server (release) and the page's WASM (wasm-release) side by side"
cargo build --release --package=server --bin=server --no-default-features &
server=$!
wasm_status=0
cargo build --package=frontend --lib --target-dir="$front" --target=wasm32-unknown-unknown \
    --no-default-features --features=hydrate --profile=wasm-release || wasm_status=$?
server_status=0
wait "$server" || server_status=$?
[ "$server_status" = 0 ] || { echo "build: FAILED: the server did not compile" >&2; exit 1; }
[ "$wasm_status" = 0 ] || { echo "build: FAILED: the page's WASM did not compile" >&2; exit 1; }

# Binding and optimising take half a minute: skipped when the compiled WASM, the CSS, the
# public files and the tools are those of the site already there.
wasm=$front/wasm32-unknown-unknown/wasm-release/frontend.wasm
stamp=$( (sha256sum "$wasm" style/main.css; find public -type f -print0 | sort -z | xargs -0 sha256sum;
    wasm-bindgen --version; wasm-opt --version) | sha256sum | cut -d' ' -f1)
# Kept beside the build, not in the site (whose files are all served).
record=$front/site-built-from
if [ -f "$site/pkg/$name.wasm" ] && [ "$(cat "$record" 2>/dev/null)" = "$site $stamp" ]; then
    step "the site is up to date ($site)"
    exit 0
fi

step "binding and optimising the WASM (wasm-bindgen, wasm-opt -Oz)"
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
wasm-bindgen --target web --no-typescript --out-dir "$staging" --out-name "$name" "$wasm"
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    "$staging/${name}_bg.wasm" -o "$staging/$name.wasm"
rm "$staging/${name}_bg.wasm"
cp style/main.css "$staging/$name.css"

# Replaced whole, so no file of an older build lingers beside the new ones.
rm -rf "$site/pkg.new" && mkdir -p "$site"
mv "$staging" "$site/pkg.new"
trap - EXIT
chmod 0755 "$site/pkg.new"
rm -rf "$site/pkg" && mv "$site/pkg.new" "$site/pkg"
cp -R public/. "$site/"
echo "$site $stamp" > "$record"
step "done in $((SECONDS - started)) s: $CARGO_TARGET_DIR/release/server and $site"
