#!/usr/bin/env bash
# Cold start of tern's Lambda bootstrap: process start -> first prediction answered through the Lambda Runtime API
# (served by bench.py on loopback, as AWS documents it), and warm invocation latency. Prints the figures.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tern-target}"
bash scripts/setup-python.sh >/dev/null
cargo build --release -p tern -p tern-lambda --quiet
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tern="$CARGO_TARGET_DIR/release/tern"
data=tests/data/generated/breast_cancer
"$tern" train --algorithm linear-learner --train "$data/train.csv" --hp predictor_type=binary_classifier \
  --hp epochs=5 --output-dir "$work/model" --quiet --no-plots
"$tern" compile "$work/model/model.tar.gz" --held-out "$data/validation.csv" --output "$work/package" >/dev/null
# What a deployment zip would hold: the release binary without its debug line tables (profile.release keeps them).
bootstrap="$CARGO_TARGET_DIR/release/bootstrap"
if command -v strip >/dev/null; then
  strip -o "$work/bootstrap" "$bootstrap"
  echo "bootstrap: $(( $(stat -c %s "$bootstrap") / 1000000 )) MB as built, stripped for the runs below"
  bootstrap="$work/bootstrap"
fi
.venv/bin/python bench/lambda/bench.py "$bootstrap" "$work/package" "$data/test.csv"
