# Sourced by the other scripts: chooses the Rust toolchain that can build for wasm32, and puts
# cargo's bin directory on PATH. Every build in this project uses the same toolchain, so one
# target directory serves them all; the static bundle alone pins its own, the same on every
# machine (scripts/bundle_toolchain.sh), and builds into its own wasm32-unknown-unknown/ there.
#
# - A rustup toolchain with the wasm32-unknown-unknown target (the normal route, with internet).
# - Otherwise Debian's rustc-web linked into rustup as `debian-web`, with a wasm32 std built
#   from source by scripts/setup.sh (machines where rustup cannot download the target).

# Tools the project installs outside cargo (scripts/setup.sh): wasm-opt from binaryen's npm release.
export EC_TOOLS_DIR="${EC_TOOLS_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/ephemeral-chat}"
export PATH="$EC_TOOLS_DIR/bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

ec_has_wasm_std() { # $1: toolchain name, or empty for the default
    local sysroot
    sysroot=$(RUSTUP_TOOLCHAIN="${1:-${RUSTUP_TOOLCHAIN:-}}" rustc --print sysroot 2>/dev/null) || return 1
    compgen -G "$sysroot/lib/rustlib/wasm32-unknown-unknown/lib/libstd-*.rlib" >/dev/null
}

if [ -z "${RUSTUP_TOOLCHAIN:-}" ] && ! ec_has_wasm_std "" && ec_has_wasm_std debian-web; then
    export RUSTUP_TOOLCHAIN=debian-web
fi
