#!/usr/bin/env bash
# tern-runtime vs onnxruntime on the same packages (latency at batch 1, throughput at batch 1024), and a compiled
# tree ensemble vs xgboost's own predict. Prints the figures and the ratios. Usage: bench/runtime/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tern-target}"
[ -x "$root/.venv/bin/python" ] || bash "$root/scripts/setup-python.sh" >/dev/null
cd "$root"
cargo build --release --quiet -p tern --bin tern
cargo build --release --quiet -p tern-runtime --example time_package
"$root/.venv/bin/python" "$here/bench.py" "$CARGO_TARGET_DIR/release/tern" \
  "$CARGO_TARGET_DIR/release/examples/time_package"
