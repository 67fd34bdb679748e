#!/usr/bin/env bash
# Linear Learner vs scikit-learn SGDClassifier on 1M generated rows; prints times, quality and ratios.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tern-target}"
bash scripts/setup-python.sh >/dev/null
cargo build --release -p tern --quiet
RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2 .venv/bin/python bench/linear_learner/bench.py "$CARGO_TARGET_DIR/release/tern"
