#!/usr/bin/env bash
# tern's xgboost vs xgboost hist on 1M x 50 generated rows; prints training time, prediction throughput, AUC, ratios.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tern-target}"
[ -x "$root/.venv/bin/python" ] || bash "$root/scripts/setup-python.sh" >/dev/null
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
OMP_NUM_THREADS=2 "$root/.venv/bin/python" "$here/bench.py" "$CARGO_TARGET_DIR/release/tern-xgboost-bench"
