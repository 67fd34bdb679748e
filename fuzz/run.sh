#!/usr/bin/env bash
# tern's fuzz campaign: runs every fuzz target (or those named) for SECONDS each, one after another, one libFuzzer
# process at a time.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]      defaults: 60 seconds, every target in fuzz/Cargo.toml
#
# Each target's corpus is fuzz/corpus/<target>/, kept in the repository: a run starts from it (and from
# fuzz/seeds/<target>/, written by fuzz/seeds/make_seeds.py) and adds what it finds; it is then minimised with
# `cargo fuzz cmin` (FUZZ_CMIN=0 skips that). Targets are built with debug assertions, so integer overflow is a crash,
# and with AddressSanitizer (cargo fuzz's default).
#
# Prints one line per target (also appended, dated, to fuzz/logs/summary.tsv; libFuzzer's output is in
# fuzz/logs/<target>.log):
#   target  seconds  executions  exec/s  crashes
# `seconds` are the seconds libFuzzer fuzzed (building is not counted), `executions` its final
# stat::number_of_executed_units, `exec/s` its stat::average_exec_per_sec. A crash, timeout or out-of-memory ends that
# target's run and leaves its reproducer in fuzz/artifacts/<target>/ (replay it with
# `cargo +nightly fuzz run -a <target> <file>`); the script goes on to the other targets and exits 1 at the end.
#
# Environment: FUZZ_TOOLCHAIN (default nightly), FUZZ_CMIN (default 1), FUZZ_TIMEOUT (seconds one input may take
# before it counts as a hang; default 30).
set -euo pipefail

fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz_dir"

seconds="${1:-60}"
shift || true
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
cargo_fuzz=(cargo "+$toolchain" fuzz)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${cargo_fuzz[@]}" list)
fi

# Flags for one target beyond the campaign's own.
extra_flags() {
    case "$1" in
        # The artifact reader's caps (256 MiB unpacked at most, for archives this small): any allocation sized by a
        # declared length past them fails the run.
        artifact) echo "-malloc_limit_mb=300" ;;
    esac
}

mkdir -p logs
status=0
printf '%-20s %8s %14s %10s %8s\n' target seconds executions exec/s crashes
for target in "${targets[@]}"; do
    corpus="corpus/$target"
    artifacts="artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    corpora=("$corpus")
    [ -d "seeds/$target" ] && corpora+=("seeds/$target")
    before=$(find "$artifacts" -type f | wc -l)
    log="logs/$target.log"
    if ! "${cargo_fuzz[@]}" build -a "$target" >"$log" 2>&1; then
        echo "$target: the build failed; see fuzz/$log" >&2
        status=1
        continue
    fi
    start=$(date +%s)
    # shellcheck disable=SC2046
    "${cargo_fuzz[@]}" run -a "$target" "${corpora[@]}" -- \
        -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-30}" -print_final_stats=1 \
        $(extra_flags "$target") >>"$log" 2>&1 || true
    # libFuzzer's own count of the seconds it fuzzed; the wall clock when it stopped on a crash.
    elapsed=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
    elapsed=${elapsed:-$(($(date +%s) - start))}
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    crashes=$(($(find "$artifacts" -type f | wc -l) - before))
    if [ -z "$executions" ]; then
        # No final stats: the build or the run failed before fuzzing; the log says why.
        echo "$target: no libFuzzer stats; see fuzz/$log" >&2
        executions=0 rate=0
        crashes=$((crashes > 0 ? crashes : 1))
    fi
    if [ "$crashes" -gt 0 ]; then
        status=1
    elif [ "${FUZZ_CMIN:-1}" != 0 ]; then
        "${cargo_fuzz[@]}" cmin -a "$target" "$corpus" >>"$log" 2>&1 || echo "$target: cmin failed; see fuzz/$log" >&2
    fi
    printf '%-20s %8s %14s %10s %8s\n' "$target" "$elapsed" "$executions" "$rate" "$crashes"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%d)" "$target" "$elapsed" "$executions" "$rate" "$crashes" \
        >>logs/summary.tsv
done
exit "$status"
