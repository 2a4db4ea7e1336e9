#!/usr/bin/env bash
# Installs what `make run` and `make test` need. Idempotent, and quiet when all is present.
# Each missing piece is announced before it is installed; a failure says what to do by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# The exact versions the static bundle is built with (its toolchain, trunk, binaryen).
source scripts/bundle_toolchain.sh

step() { echo "setup: $*"; }
fail() {
    echo "setup: FAILED: $1" >&2
    echo "setup: install it by hand: $2" >&2
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
    if have apt-get && [ "$(id -u)" = 0 ]; then
        [ -n "$(find /var/lib/apt/lists -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ] || apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        return 1
    fi
}

have cargo && have rustc || fail "no Rust toolchain" "https://rustup.rs, then rerun"

# Debian's rustc-web (1.96) linked into rustup as `debian-web`, with rust-lld to link wasm32.
ensure_debian_web() {
    RUSTUP_TOOLCHAIN=debian-web rustc --version >/dev/null 2>&1 && return 0
    step "installing Debian's rustc-web toolchain"
    apt_install rustc-web cargo-web rust-web-src rust-web-clippy rustfmt-web \
        || fail "Debian's rustc-web packages" "apt-get install rustc-web cargo-web rust-web-src rust-web-clippy rustfmt-web"
    have rustup || fail "rustup (to link the Debian toolchain)" "https://rustup.rs"
    rustup toolchain link debian-web /usr
    lld=/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld
    if [ ! -e "$lld" ]; then
        # rust-lld needs its own libLLVM beside it: link, do not copy.
        src=$(ls "$HOME"/.rustup/toolchains/*/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld 2>/dev/null | head -1)
        [ -n "$src" ] || fail "a rust-lld linker" "install any rustup toolchain (it ships rust-lld)"
        mkdir -p "$(dirname "$lld")" && ln -sf "$src" "$lld"
    fi
}

# Runs a command with toolchain $1 (empty: the default one).
with_toolchain() {
    local toolchain=$1
    shift
    if [ -n "$toolchain" ]; then RUSTUP_TOOLCHAIN=$toolchain "$@"; else "$@"; fi
}

rustc_minor() { with_toolchain "$1" rustc --version 2>/dev/null | awk '{ split($2, v, "."); print v[2] + 0 }'; }

# --- 1. The wasm32 target -------------------------------------------------------------------
if ! ec_has_wasm_std ""; then
    if [ -z "${RUSTUP_TOOLCHAIN:-}" ] && have rustup && { step "adding the wasm32-unknown-unknown target (rustup)"; timeout 300 rustup target add wasm32-unknown-unknown >/dev/null 2>&1; } && ec_has_wasm_std ""; then
        :
    else
        step "rustup cannot fetch wasm32 std: building it with Debian's rustc-web instead"
        ensure_debian_web
        scratch=$(mktemp -d)
        step "building the wasm32 standard library from source (about a minute)"
        (
            cd "$scratch" && RUSTUP_TOOLCHAIN=debian-web cargo init --lib --name wasm_std_scratch -q \
                && RUSTUP_TOOLCHAIN=debian-web RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$scratch/target" \
                    cargo build -q --release -Zbuild-std=std,panic_abort --target wasm32-unknown-unknown
        ) || fail "building wasm32 std" "see the cargo output above"
        dest=/usr/lib/rustlib/wasm32-unknown-unknown/lib
        mkdir -p "$dest"
        find "$scratch/target/wasm32-unknown-unknown/release/deps" -name '*.rlib' ! -name '*wasm_std_scratch*' -exec cp {} "$dest/" \;
        rm -rf "$scratch"
        export RUSTUP_TOOLCHAIN=debian-web
        ec_has_wasm_std debian-web || fail "wasm32 std in the debian-web toolchain" "see above"
    fi
fi

# --- 2. Build tools, each at the version this project needs ----------------------------------
# cargo install builds in release mode; fat LTO would make cargo-leptos take half an hour.
install_crate() {
    step "installing $* (from crates.io, several minutes)"
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 cargo install -q "$@"
}

if ! cargo leptos --version 2>/dev/null | grep -q '^cargo-leptos 0\.3\.'; then
    # cargo-leptos 0.3.11 needs rustc >= 1.96 to build; the project itself builds with older.
    tools_toolchain=${RUSTUP_TOOLCHAIN:-}
    if [ "$(rustc_minor "$tools_toolchain")" -lt 96 ]; then
        ensure_debian_web
        tools_toolchain=debian-web
    fi
    with_toolchain "$tools_toolchain" install_crate cargo-leptos --locked --version 0.3.11 \
        || fail "cargo-leptos 0.3.11 (needs rustc >= 1.96)" "cargo install cargo-leptos --locked --version 0.3.11"
fi

bindgen=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$bindgen" ]; then
    # --locked can fail when a locked dependency was yanked from the registry; retry without.
    install_crate wasm-bindgen-cli --version "$bindgen" --locked 2>/dev/null \
        || install_crate wasm-bindgen-cli --version "$bindgen" \
        || fail "wasm-bindgen-cli $bindgen" "cargo install wasm-bindgen-cli --version $bindgen"
fi

# Exactly binaryen 116: older ones (Debian's is 108) break hydration of the release build, and
# Trunk (Trunk.toml) and the bundle's reproducible hashes need this very version.
opt_version=$(wasm-opt --version 2>/dev/null | grep -o 'version [0-9]*' | awk '{print $2}' || true)
if [ "${opt_version:-0}" != "$EC_BUNDLE_BINARYEN" ]; then
    install_crate wasm-opt --locked --version "$EC_BUNDLE_WASM_OPT_CRATE" 2>/dev/null \
        || install_crate wasm-opt --version "$EC_BUNDLE_WASM_OPT_CRATE" \
        || fail "wasm-opt (binaryen $EC_BUNDLE_BINARYEN)" "cargo install wasm-opt --locked --version $EC_BUNDLE_WASM_OPT_CRATE"
fi

# brotli, for the precompressed assets `make build` writes (scripts/precompress.sh).
have brotli || { step "installing brotli"; apt_install brotli || echo "setup: no brotli command: assets will be precompressed with gzip only" >&2; }

# Trunk, for the client-only static bundle (`make static`, and the browser tests run against it).
if [ "${EC_SETUP_TRUNK:-1}" = 1 ] && [ "$(trunk --version 2>/dev/null)" != "trunk $EC_BUNDLE_TRUNK" ]; then
    # No update check (it would call crates.io at every run); rustls, no OpenSSL headers needed.
    install_crate trunk --locked --version "$EC_BUNDLE_TRUNK" --no-default-features --features rustls \
        || fail "trunk $EC_BUNDLE_TRUNK" "cargo install trunk --locked --version $EC_BUNDLE_TRUNK --no-default-features --features rustls"
fi

# The bundle's own Rust toolchain (scripts/bundle_toolchain.sh), whatever this machine's default:
# its hashes depend on the compiler. Without rustup's downloads `make static` refuses to build
# and says why; `make static-e2e` (the browser tests) builds with the toolchain above instead.
if [ "${EC_SETUP_TRUNK:-1}" = 1 ]; then
    if ! ec_has_wasm_std "$EC_BUNDLE_RUST"; then
        step "installing Rust $EC_BUNDLE_RUST with the wasm32 target, the static bundle's compiler (rustup)"
        have rustup && timeout 900 rustup toolchain install "$EC_BUNDLE_RUST" --profile minimal \
            --target wasm32-unknown-unknown >/dev/null 2>&1 && ec_has_wasm_std "$EC_BUNDLE_RUST" \
            || echo "setup: could not install Rust $EC_BUNDLE_RUST (rustup toolchain install $EC_BUNDLE_RUST --profile minimal --target wasm32-unknown-unknown): make static will refuse to build" >&2
    fi
    # The Trunk hooks (scripts/static_bundle.py).
    have python3 || { step "installing python3"; apt_install python3 || fail "python3" "apt-get install python3"; }
fi

# cargo-deny checks licenses, bans, duplicate versions and sources (deny.toml) in `make test`.
if ! cargo deny --version 2>/dev/null | grep -q '^cargo-deny 0\.20\.'; then
    install_crate cargo-deny --locked --version 0.20.2 \
        || fail "cargo-deny 0.20.2" "cargo install cargo-deny --locked --version 0.20.2"
fi

# cargo-fuzz drives libFuzzer (`make fuzz`, and a short run in `make test`); the fuzz targets
# themselves build with a nightly toolchain, or with RUSTC_BOOTSTRAP=1 on a stable one.
if ! cargo fuzz --version 2>/dev/null | grep -q '^cargo-fuzz 0\.13\.'; then
    install_crate cargo-fuzz --locked --version 0.13.1 \
        || fail "cargo-fuzz 0.13.1" "cargo install cargo-fuzz --locked --version 0.13.1"
fi

# --- 3. What the end-to-end tests need --------------------------------------------------------
if [ "${EC_SETUP_E2E:-1}" = 1 ]; then
    have node && have npm || { step "installing Node.js"; apt_install nodejs npm || fail "Node.js and npm" "apt-get install nodejs npm"; }
    if ! have chromium && [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
        step "installing Chromium"
        apt_install chromium || fail "Chromium" "apt-get install chromium (or set CHROMIUM_PATH)"
    fi
    have python3 || { step "installing python3"; apt_install python3 || fail "python3" "apt-get install python3"; }
    # The integration test of docs/nginx.conf runs nginx in front of two instances.
    have nginx || [ -x /usr/sbin/nginx ] || { step "installing nginx"; apt_install nginx-light || apt_install nginx || fail "nginx" "apt-get install nginx"; }
    # A stamp of the lock file the modules were installed from: reinstall when it changes.
    stamp=end2end/node_modules/.installed-from-package-lock.json
    if ! cmp -s end2end/package-lock.json "$stamp" 2>/dev/null; then
        step "installing Playwright into end2end/ (no browser download: it drives the system Chromium)"
        (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
            || fail "the Playwright npm package" "cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci"
        cp end2end/package-lock.json "$stamp"
    fi
fi
