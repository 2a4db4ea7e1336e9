#!/usr/bin/env bash
# `make fuzz` (and `make fuzz-smoke` in `make test`): runs each cargo-fuzz target for a set time
# from the committed corpus (fuzz/corpus/<target>, read only: new inputs go to a working copy)
# and prints how many inputs each one ran. A crash, an allocation over the limit or a run over
# the memory limit fails it, and libFuzzer leaves the input under fuzz/artifacts/<target>/.
#
# Usage: scripts/fuzz.sh SECONDS_PER_TARGET [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
seconds=${1:?usage: scripts/fuzz.sh SECONDS_PER_TARGET [TARGET...]}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame room_code sealed_payload at_rest)

# libFuzzer's instrumentation needs a nightly compiler: the rustup nightly if there is one,
# else the stable toolchain told to accept nightly flags.
if rustup run nightly rustc --version >/dev/null 2>&1; then
    export RUSTUP_TOOLCHAIN=nightly
else
    export RUSTUP_TOOLCHAIN=${RUSTUP_TOOLCHAIN:-stable} RUSTC_BOOTSTRAP=1
fi
# Its own target dir: sanitizer builds share nothing with the others.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}/fuzz
work=$CARGO_TARGET_DIR/corpus
summary=$CARGO_TARGET_DIR/summary.txt

echo "fuzz: building the targets (nightly, AddressSanitizer)"
(cd fuzz && cargo fuzz build --release --debug-assertions)
: > "$summary"
status=0
for target in "${targets[@]}"; do
    mkdir -p "$work/$target" "fuzz/artifacts/$target"
    log=$CARGO_TARGET_DIR/$target.log
    # -malloc_limit_mb: any single allocation over 64 MiB is a failure (unbounded allocation);
    # -rss_limit_mb: so is a process over 1 GiB.
    if (cd fuzz && cargo fuzz run --release --debug-assertions "$target" "$work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -malloc_limit_mb=64 -rss_limit_mb=1024 \
        -print_final_stats=1 >"$log" 2>&1); then
        result=ok
    else
        result=FAILED
        status=1
        tail -40 "$log" >&2
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    corpus=$(find "$work/$target" "fuzz/corpus/$target" -type f | wc -l)
    printf '%-16s %-6s %12s executions in %ss, corpus %s inputs\n' "$target" "$result" "$runs" "$seconds" "$corpus" | tee -a "$summary"
done
exit "$status"
