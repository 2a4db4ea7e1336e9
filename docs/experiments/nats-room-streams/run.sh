#!/usr/bin/env bash
# What one wake-up of the NATS bus task costs with N rooms followed: tokio-stream's StreamMap (the
# relay before) against futures' SelectAll (after). Builds a throwaway crate in a temp dir.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
cp "$here/main.rs" "$work/src/main.rs"
cat > "$work/Cargo.toml" <<'TOML'
[package]
name = "nats-room-streams"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
tokio = { version = "1", features = ["rt", "sync", "macros"] }
tokio-stream = { version = "0.1", default-features = false }
futures = "0.3"

[workspace]
TOML
cd "$work" && CARGO_TARGET_DIR="$work/target" cargo run -q --release
