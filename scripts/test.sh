#!/usr/bin/env bash
# Runs every test of tern, installing what they need first (idempotently: what is already there is skipped).
#   scripts/test.sh            everything
#   scripts/test.sh -p NAME    one crate's tests (any cargo test arguments pass through)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tern-target}"
export SAGEMAKER_SUPPRESS_V2_WARNING=1
start=$(date +%s)

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
bash scripts/setup-python.sh
bash scripts/setup-cross.sh          # aarch64 column of the conformance suite: cross linker, qemu-user, rust target
bash scripts/setup-gpu.sh            # Vulkan loader + Mesa lavapipe: the trainer's wgpu kernels run without a GPU
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
export TERN_REQUIRE_GPU=1             # the wgpu tests fail, not skip, without an adapter (lavapipe here)
export TERN_CONFORMANCE_REQUIRE_ALL=1   # every conformance column must run (wasm(node), native-wgpu included)
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
.venv/bin/python tests/python/export_datasets.py tests/data/generated >/dev/null
bash scripts/setup-web.sh            # wasm runtime (npm package, WASI), web demo, chromium: wasm(node) column, browser tests
bash scripts/setup-edge.sh           # mosquitto (the device loop's MQTT tests start their own broker on loopback)

# One release build serves every suite (numeric tests are too slow unoptimised) and the end-to-end tests' binary.
cargo build --release --workspace --bins
# runtime-core must build for the browser too (the wasm API itself comes with the browser runtime).
cargo check --release -p tern-runtime --target wasm32-unknown-unknown
log="$(mktemp)"
set +e
cargo test --release --workspace "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$#" -eq 0 ]; then
  # The trainer's GPU kernels (feature `gpu`, off in the workspace build) against the CPU, on lavapipe.
  cargo test --release -p tern-trainer --features gpu --lib gpu:: 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  # The device loop cross-built for aarch64, run under qemu-aarch64 (the .cargo/config.toml runner).
  cargo test --release --target aarch64-unknown-linux-gnu -p tern-edge --test device 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi
set -e
passed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
ignored=$(grep -Eo '[0-9]+ ignored;' "$log" | awk '{s+=$1} END {print s+0}')
rm -f "$log"
echo "tern tests finished in $(( $(date +%s) - start )) s (exit $status)"
echo "summary: $passed passed, $failed failed, $ignored skipped"
exit "$status"
