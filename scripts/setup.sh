#!/usr/bin/env bash
# Installs what `make run` and `make test` need. Idempotent, and quiet when all is present.
#
# What it installs depends on who asks (the Makefile sets these):
#   always                  the wasm32 target, wasm-bindgen-cli, wasm-opt (binaryen 116), brotli
#   EC_SETUP_LEPTOS=1       cargo-leptos, for the dev loop (`make watch`); not the release build
#   EC_SETUP_TRUNK=1        trunk and the static bundle's pinned Rust (`make static`)
#   EC_SETUP_TEST=1         cargo-deny, cargo-fuzz and Debian's nats-server (`make test` only: the
#                           NATS bus's tests run servers of their own)
#   EC_SETUP_E2E=1          Node.js, Chromium, nginx and Playwright (the browser tests)
# `make run` asks for the first line only. Debian packages come first, in one apt-get call;
# then the independent builds run EC_SETUP_JOBS at a time (default 2: on two cores, two
# `cargo install`s side by side fill each other's single-threaded stretches, such as linking).
# It prints one line when a piece starts and when it is ready, with what remains, so that a
# first run's wait is explained; each piece's own output goes to a log shown only on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# The exact versions the static bundle is built with (its toolchain, trunk, binaryen).
source scripts/bundle_toolchain.sh

want_leptos=${EC_SETUP_LEPTOS:-0}
want_trunk=${EC_SETUP_TRUNK:-1}
want_test=${EC_SETUP_TEST:-1}
want_e2e=${EC_SETUP_E2E:-1}
jobs=${EC_SETUP_JOBS:-2}
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "setup: EC_SETUP_JOBS must be a positive number, not '$jobs'" >&2; exit 2; }

step() { echo "setup: $*"; }
fail() {
    echo "setup: FAILED: $1" >&2
    echo "setup: install it by hand: $2" >&2
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }
can_apt() { have apt-get && [ "$(id -u)" = 0 ]; }
apt_install() {
    can_apt || return 1
    [ -n "$(find /var/lib/apt/lists -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ] || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
elapsed() { local s=$1; if ((s >= 60)); then echo "$((s / 60))m$((s % 60))s"; else echo "${s}s"; fi; }

have cargo && have rustc || fail "no Rust toolchain" "https://rustup.rs, then rerun"

# Runs a command with toolchain $1 (empty: the default one).
with_toolchain() {
    local toolchain=$1
    shift
    if [ -n "$toolchain" ]; then RUSTUP_TOOLCHAIN=$toolchain "$@"; else "$@"; fi
}
rustc_minor() { with_toolchain "$1" rustc --version 2>/dev/null | awk '{ split($2, v, "."); print v[2] + 0 }'; }

# --- 1. The wasm32 target, the quick way --------------------------------------------------------
need_wasm_std=0
if ! ec_has_wasm_std ""; then
    if [ -z "${RUSTUP_TOOLCHAIN:-}" ] && have rustup && { step "adding the wasm32-unknown-unknown target (rustup)"; timeout 300 rustup target add wasm32-unknown-unknown >/dev/null 2>&1; } && ec_has_wasm_std ""; then
        :
    elif ec_has_wasm_std debian-web; then
        export RUSTUP_TOOLCHAIN=debian-web
    else
        step "rustup cannot fetch wasm32 std: it will be built from source with Debian's rustc-web"
        need_wasm_std=1
    fi
fi

# --- 2. What is missing -----------------------------------------------------------------------
bindgen=$(ec_bundle_wasm_bindgen)
need_leptos=0 need_bindgen=0 need_opt=0 need_trunk=0 need_bundle_rust=0 need_deny=0 need_fuzz=0 need_npm=0
if [ "$want_leptos" = 1 ]; then
    cargo leptos --version 2>/dev/null | grep -q '^cargo-leptos 0\.3\.' || need_leptos=1
fi
[ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" = "$bindgen" ] || need_bindgen=1
# Exactly binaryen 116: older ones (Debian's is 108) break hydration of the release build, and
# Trunk (Trunk.toml) and the bundle's reproducible hashes need this very version.
opt_version=$(wasm-opt --version 2>/dev/null | grep -o 'version [0-9]*' | awk '{print $2}' || true)
[ "${opt_version:-0}" = "$EC_BUNDLE_BINARYEN" ] || need_opt=1
if [ "$want_trunk" = 1 ]; then
    [ "$(trunk --version 2>/dev/null)" = "trunk $EC_BUNDLE_TRUNK" ] || need_trunk=1
    ec_has_wasm_std "$EC_BUNDLE_RUST" || { have rustup && need_bundle_rust=1; }
fi
if [ "$want_test" = 1 ]; then
    cargo deny --version 2>/dev/null | grep -q '^cargo-deny 0\.20\.' || need_deny=1
    cargo fuzz --version 2>/dev/null | grep -q '^cargo-fuzz 0\.13\.' || need_fuzz=1
fi
# A stamp of the lock file the modules were installed from: reinstall when it changes.
npm_stamp=end2end/node_modules/.installed-from-package-lock.json
if [ "$want_e2e" = 1 ] && ! cmp -s end2end/package-lock.json "$npm_stamp" 2>/dev/null; then need_npm=1; fi

# cargo-leptos 0.3.11 needs rustc >= 1.96 to build; the project itself builds with older.
tools_toolchain=${RUSTUP_TOOLCHAIN:-}
need_debian_web=$need_wasm_std
if [ "$need_leptos" = 1 ] && [ "$(rustc_minor "$tools_toolchain")" -lt 96 ]; then
    need_debian_web=1
    tools_toolchain=debian-web
fi
if [ "$need_debian_web" = 1 ] && RUSTUP_TOOLCHAIN=debian-web rustc --version >/dev/null 2>&1; then
    need_debian_web=0
fi

# --- 3. Debian's packages, in one call (apt holds one lock: nothing else can run beside it) -----
packages=()
[ "$need_debian_web" = 1 ] && packages+=(rustc-web cargo-web rust-web-src rust-web-clippy rustfmt-web)
# brotli, for the precompressed assets `make build` writes (scripts/precompress.sh).
have brotli || packages+=(brotli)
if [ "$want_trunk" = 1 ] || [ "$want_e2e" = 1 ]; then
    # The Trunk hooks (scripts/static_bundle.py) and the browser tests' helpers.
    have python3 || packages+=(python3)
fi
# wasm-opt comes from binaryen's npm release, run by Node.js (see task_opt below).
if [ "$want_e2e" = 1 ] || [ "$need_opt" = 1 ]; then
    { have node && have npm; } || packages+=(nodejs npm)
fi
if [ "$want_e2e" = 1 ]; then
    have chromium || [ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || packages+=(chromium)
    # The integration test of docs/nginx.conf runs nginx in front of two instances.
    have nginx || [ -x /usr/sbin/nginx ] || packages+=(nginx-light)
fi
if [ "$want_test" = 1 ]; then
    # The NATS bus's integration tests and `faults run` start nats-servers of their own.
    have nats-server || [ -x /usr/sbin/nats-server ] || packages+=(nats-server)
fi
if [ ${#packages[@]} -gt 0 ]; then
    started=$SECONDS
    step "installing Debian packages: ${packages[*]}"
    if ! apt_install "${packages[@]}" 2>/dev/null; then
        # One at a time, to say which one is missing; brotli alone is optional.
        for package in "${packages[@]}"; do
            apt_install "$package" 2>/dev/null && continue
            case $package in
            brotli) echo "setup: no brotli command: assets will be precompressed with gzip only" >&2 ;;
            *) fail "the Debian package $package" "apt-get install $package" ;;
            esac
        done
    fi
    step "Debian packages ready after $(elapsed $((SECONDS - started)))"
fi
if [ "$need_debian_web" = 1 ]; then
    # Debian's rustc-web (1.96) linked into rustup as `debian-web`, with rust-lld to link wasm32.
    have rustup || fail "rustup (to link the Debian toolchain)" "https://rustup.rs"
    rustup toolchain link debian-web /usr
    lld=/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld
    if [ ! -e "$lld" ]; then
        # rust-lld needs its own libLLVM beside it: link, do not copy.
        src=$(ls "$HOME"/.rustup/toolchains/*/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld 2>/dev/null | head -1)
        [ -n "$src" ] || fail "a rust-lld linker" "install any rustup toolchain (it ships rust-lld)"
        mkdir -p "$(dirname "$lld")" && ln -sf "$src" "$lld"
    fi
    RUSTUP_TOOLCHAIN=debian-web rustc --version >/dev/null 2>&1 \
        || fail "Debian's rustc-web toolchain" "apt-get install rustc-web cargo-web rust-web-src rust-web-clippy rustfmt-web"
fi

# --- 4. The builds, side by side ----------------------------------------------------------------
# Each task is a function; its output goes to its own log. `cargo install` builds in release
# mode; fat LTO would make cargo-leptos take half an hour.
install_crate() { CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 cargo install "$@"; }

task_wasm_std() {
    local scratch dest
    scratch=$(mktemp -d)
    (
        cd "$scratch" && RUSTUP_TOOLCHAIN=debian-web cargo init --lib --name wasm_std_scratch -q \
            && RUSTUP_TOOLCHAIN=debian-web RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$scratch/target" \
                cargo build --release -Zbuild-std=std,panic_abort --target wasm32-unknown-unknown
    ) || return 1
    dest=/usr/lib/rustlib/wasm32-unknown-unknown/lib
    mkdir -p "$dest"
    find "$scratch/target/wasm32-unknown-unknown/release/deps" -name '*.rlib' ! -name '*wasm_std_scratch*' -exec cp {} "$dest/" \;
    rm -rf "$scratch"
    ec_has_wasm_std debian-web
}
task_leptos() { with_toolchain "$tools_toolchain" install_crate cargo-leptos --locked --version 0.3.11; }
# --locked can fail when a locked dependency was yanked from the registry; retry without.
task_bindgen() { install_crate wasm-bindgen-cli --version "$bindgen" --locked || install_crate wasm-bindgen-cli --version "$bindgen"; }
# wasm-opt: binaryen's own npm release of version 116, which is binaryen compiled to
# WebAssembly and run by Node.js, pinned by scripts/binaryen/package-lock.json (its sha512).
# Ready in seconds; the wasm-opt crate instead compiles binaryen's C++, about half an hour on two
# cores. Without Node.js, the crate.
task_opt() {
    if have node && have npm; then
        local dir=$EC_TOOLS_DIR/binaryen-$EC_BUNDLE_BINARYEN
        rm -rf "$dir" && mkdir -p "$dir" "$EC_TOOLS_DIR/bin"
        cp scripts/binaryen/package.json scripts/binaryen/package-lock.json "$dir/"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || return 1
        ln -sf "$dir/node_modules/binaryen/bin/wasm-opt" "$EC_TOOLS_DIR/bin/wasm-opt"
        wasm-opt --version | grep -q "version $EC_BUNDLE_BINARYEN"
    else
        install_crate wasm-opt --locked --version "$EC_BUNDLE_WASM_OPT_CRATE" || install_crate wasm-opt --version "$EC_BUNDLE_WASM_OPT_CRATE"
    fi
}
# No update check (it would call crates.io at every run); rustls, no OpenSSL headers needed.
task_trunk() { install_crate trunk --locked --version "$EC_BUNDLE_TRUNK" --no-default-features --features rustls; }
# The bundle's own Rust toolchain (scripts/bundle_toolchain.sh), whatever this machine's default:
# its hashes depend on the compiler. Without rustup's downloads `make static` refuses to build
# and says why; `make static-e2e` (the browser tests) builds with the toolchain above instead.
task_bundle_rust() {
    timeout 900 rustup toolchain install "$EC_BUNDLE_RUST" --profile minimal --target wasm32-unknown-unknown \
        && ec_has_wasm_std "$EC_BUNDLE_RUST"
}
# cargo-deny checks licenses, bans, duplicate versions and sources (deny.toml) in `make test`.
task_deny() { install_crate cargo-deny --locked --version 0.20.2; }
# cargo-fuzz drives libFuzzer (`make fuzz`, and a short run in `make test`); the fuzz targets
# themselves build with a nightly toolchain, or with RUSTC_BOOTSTRAP=1 on a stable one.
task_fuzz() { install_crate cargo-fuzz --locked --version 0.13.1; }
task_npm() {
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) \
        && cp end2end/package-lock.json "$npm_stamp"
}

# id|what it is|how to install it by hand|optional (a failure is reported, not fatal). The quick
# ones first, so the long compilations overlap only each other.
tasks=()
[ "$need_wasm_std" = 1 ] && tasks+=("wasm_std|the wasm32 standard library, from source|see the log above|")
[ "$need_opt" = 1 ] && tasks+=("opt|wasm-opt (binaryen $EC_BUNDLE_BINARYEN)|npm ci in a copy of scripts/binaryen, or cargo install wasm-opt --locked --version $EC_BUNDLE_WASM_OPT_CRATE|")
[ "$need_npm" = 1 ] && tasks+=("npm|Playwright in end2end/ (no browser download: it drives the system Chromium)|cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci|")
[ "$need_leptos" = 1 ] && tasks+=("leptos|cargo-leptos 0.3.11|cargo install cargo-leptos --locked --version 0.3.11 (needs rustc >= 1.96)|")
[ "$need_bindgen" = 1 ] && tasks+=("bindgen|wasm-bindgen-cli $bindgen|cargo install wasm-bindgen-cli --version $bindgen|")
[ "$need_trunk" = 1 ] && tasks+=("trunk|trunk $EC_BUNDLE_TRUNK|cargo install trunk --locked --version $EC_BUNDLE_TRUNK --no-default-features --features rustls|")
[ "$need_deny" = 1 ] && tasks+=("deny|cargo-deny 0.20.2|cargo install cargo-deny --locked --version 0.20.2|")
[ "$need_fuzz" = 1 ] && tasks+=("fuzz|cargo-fuzz 0.13.1|cargo install cargo-fuzz --locked --version 0.13.1|")
[ "$need_bundle_rust" = 1 ] && tasks+=("bundle_rust|Rust $EC_BUNDLE_RUST with the wasm32 target, the static bundle's compiler (rustup)|rustup toolchain install $EC_BUNDLE_RUST --profile minimal --target wasm32-unknown-unknown: without it make static refuses to build|optional")

[ ${#tasks[@]} -eq 0 ] && exit 0

logs=$(mktemp -d)
declare -A pid_task=() task_started=() label=() hint=() optional=()
order=()
for entry in "${tasks[@]}"; do
    IFS='|' read -r id what how opt <<<"$entry"
    label[$id]=$what hint[$id]=$how optional[$id]=$opt
    order+=("$id")
done
names_of() { local id out=(); for id in "$@"; do out+=("${label[$id]%% (*}"); done; local IFS=,; echo "${out[*]}" | sed 's/,/, /g'; }

total=${#order[@]}
step "$total to build or install, $jobs at a time (a first run takes tens of minutes; later runs skip this): $(names_of "${order[@]}")"
setup_started=$SECONDS
next=0 finished=0
running=()
stop_all() { local pid; for pid in "${running[@]}"; do kill -- "$pid" 2>/dev/null || true; done; }
trap 'stop_all' EXIT
while [ "$next" -lt "$total" ] || [ ${#running[@]} -gt 0 ]; do
    while [ ${#running[@]} -lt "$jobs" ] && [ "$next" -lt "$total" ]; do
        id=${order[$next]}
        next=$((next + 1))
        "task_$id" >"$logs/$id.log" 2>&1 &
        pid_task[$!]=$id
        task_started[$id]=$SECONDS
        running+=("$!")
        step "[$((finished + ${#running[@]}))/$total] started: ${label[$id]}"
    done
    status=0
    wait -n -p done_pid "${running[@]}" || status=$?
    id=${pid_task[$done_pid]}
    remaining=()
    for pid in "${running[@]}"; do [ "$pid" = "$done_pid" ] || remaining+=("$pid"); done
    running=("${remaining[@]+"${remaining[@]}"}")
    finished=$((finished + 1))
    took=$(elapsed $((SECONDS - ${task_started[$id]})))
    if [ "$status" != 0 ]; then
        if [ -n "${optional[$id]}" ]; then
            echo "setup: could not install ${label[$id]} (after $took): ${hint[$id]}" >&2
        else
            tail -n 30 "$logs/$id.log" >&2
            fail "${label[$id]} (after $took; its log is above)" "${hint[$id]}"
        fi
    else
        rest=()
        for pid in "${running[@]+"${running[@]}"}"; do rest+=("${pid_task[$pid]}"); done
        for ((i = next; i < total; i++)); do rest+=("${order[$i]}"); done
        if [ ${#rest[@]} -gt 0 ]; then
            step "[$finished/$total] ready after $took: ${label[$id]%% (*}; still to come: $(names_of "${rest[@]}")"
        else
            step "[$finished/$total] ready after $took: ${label[$id]%% (*}"
        fi
    fi
    [ "$id" = wasm_std ] && export RUSTUP_TOOLCHAIN=debian-web
done
trap - EXIT
rm -rf "$logs"
step "all installed after $(elapsed $((SECONDS - setup_started)))"
