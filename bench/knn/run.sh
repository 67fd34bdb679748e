#!/usr/bin/env bash
# tern's k-NN (Flat, IVFFlat) vs faiss-cpu on 100k x 64 generated rows; prints build/query times, recall and ratios.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tern-target}"
[ -x "$root/.venv/bin/python" ] || bash "$root/scripts/setup-python.sh" >/dev/null
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 "$root/.venv/bin/python" "$here/bench.py" \
  "$CARGO_TARGET_DIR/release/tern-knn-bench"
