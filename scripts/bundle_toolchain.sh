# Sourced after scripts/env.sh by `make static` and `make static-e2e`, and by scripts/setup.sh
# (which installs what it names): the exact compiler and tools the static bundle is built with.
# The same commit and EC_RELAY_ORIGIN built with these give the same bytes, so the same
# SHA256SUMS, on any machine, whatever its default toolchain.

# The Rust toolchain for the bundle (rustup), with the wasm32-unknown-unknown target, and the
# commit its `rustc -vV` reports: a build of another commit under the same name is refused too.
EC_BUNDLE_RUST=1.95.0
EC_BUNDLE_RUSTC_COMMIT=59807616e1fa2540724bfbac14d7976d7e4a3860
EC_BUNDLE_TRUNK=0.21.14
# The wasm-opt crate (`cargo install --locked`) builds binaryen from its bundled sources: this
# version is binaryen 116, the `version_116` that Trunk.toml asks for.
EC_BUNDLE_WASM_OPT_CRATE=0.116.1
EC_BUNDLE_BINARYEN=116
# wasm-bindgen-cli: the version of the wasm-bindgen crate in Cargo.lock (Trunk insists on it).

ec_bundle_wasm_bindgen() {
    awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

# Prints one line per difference from the pins ("<what>: expected <x>, found <y>").
ec_bundle_differences() {
    local vv release commit bindgen found
    vv=$(RUSTUP_TOOLCHAIN=$EC_BUNDLE_RUST rustc -vV 2>/dev/null) || vv=
    release=$(sed -n 's/^release: //p' <<<"$vv")
    commit=$(sed -n 's/^commit-hash: //p' <<<"$vv")
    if [ "$release" != "$EC_BUNDLE_RUST" ] || [ "$commit" != "$EC_BUNDLE_RUSTC_COMMIT" ]; then
        found=$(head -1 <<<"$vv")
        echo "rustc (toolchain $EC_BUNDLE_RUST): expected rustc $EC_BUNDLE_RUST, commit $EC_BUNDLE_RUSTC_COMMIT; found ${found:-no such toolchain}${commit:+, commit $commit}"
    elif ! ec_has_wasm_std "$EC_BUNDLE_RUST"; then
        echo "rustc $EC_BUNDLE_RUST: expected the wasm32-unknown-unknown target; found it missing"
    fi
    found=$(trunk --version 2>/dev/null | head -1)
    [ "$found" = "trunk $EC_BUNDLE_TRUNK" ] || echo "trunk: expected trunk $EC_BUNDLE_TRUNK; found ${found:-none}"
    bindgen=$(ec_bundle_wasm_bindgen)
    found=$(wasm-bindgen --version 2>/dev/null | head -1)
    [ "$found" = "wasm-bindgen $bindgen" ] || echo "wasm-bindgen: expected wasm-bindgen $bindgen (Cargo.lock); found ${found:-none}"
    found=$(wasm-opt --version 2>/dev/null | head -1)
    [[ "$found" =~ version\ $EC_BUNDLE_BINARYEN([^0-9]|$) ]] || echo "wasm-opt: expected binaryen version $EC_BUNDLE_BINARYEN; found ${found:-none}"
    # Compiler flags or profile settings from the environment would change the output too.
    env | grep -E '^(RUSTFLAGS|CARGO_ENCODED_RUSTFLAGS|CARGO_BUILD_RUSTFLAGS|CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS|CARGO_PROFILE_[A-Z0-9_]+|RUSTC|CARGO_BUILD_RUSTC)=' \
        | sed 's/=.*//' | while read -r name; do echo "$name: expected unset; found it set"; done || true
}

# Chooses the pinned toolchain and machine-independent paths for the bundle's build.
# $1 = strict (`make static`: any difference refuses the build, printing what was expected and
# found) or lenient (`make static-e2e`: the differences are printed and the build goes on with
# what there is, since the browser tests need a bundle but not its published hashes).
ec_bundle_toolchain() {
    local mode=$1 who differences
    who=$([ "$mode" = strict ] && echo "make static" || echo "make static-e2e")
    differences=$(ec_bundle_differences)
    if [ -n "$differences" ]; then
        sed "s/^/$who: /" <<<"$differences" >&2
        if [ "$mode" = strict ]; then
            echo "$who: refusing to build a bundle whose hashes others could not reproduce; \`make setup-static\` installs the pinned versions (Rust $EC_BUNDLE_RUST through rustup)" >&2
            return 1
        fi
        echo "$who: building anyway (a test bundle: its hashes will not match a pinned build)" >&2
    fi
    if ec_has_wasm_std "$EC_BUNDLE_RUST"; then export RUSTUP_TOOLCHAIN=$EC_BUNDLE_RUST; fi
    # Crates' source paths end up in the WASM (panic locations): name them the same everywhere.
    # The later prefix wins where two match (a target dir inside the checkout).
    local root cargo_home target
    root=$(pwd -P)
    cargo_home=${CARGO_HOME:-$HOME/.cargo}
    target=${CARGO_TARGET_DIR:-$root/target}
    for dir in "$root" "$cargo_home" "$target"; do
        if [[ "$dir" =~ [[:space:]] ]]; then
            echo "$who: the path '$dir' has a space, which the compiler flags cannot carry" >&2
            return 1
        fi
    done
    export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="--remap-path-prefix=$root=/ephemeral-chat --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$target=/ephemeral-chat/target"
}
