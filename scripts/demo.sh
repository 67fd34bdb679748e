#!/usr/bin/env bash
# The main job on data shipped in the repo: train Linear Learner on scikit-learn's breast-cancer set (examples/),
# evaluate it on the held-out test split, cross-validate, compile it into an int8 ONNX package verified against the
# trained model, and predict a few unlabelled rows with that package.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tern-target}"
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
cargo build --release -p tern --quiet
tern="$CARGO_TARGET_DIR/release/tern"
data=examples/breast_cancer
out="${1:-out/demo}"

echo "== train: linear-learner, binary_classifier, on $data/train.csv (validation: $data/validation.csv)"
"$tern" train --algorithm linear-learner --train "$data/train.csv" --validation "$data/validation.csv" \
  --hp predictor_type=binary_classifier --hp epochs=15 --hp mini_batch_size=32 --output-dir "$out"

echo; echo "== evaluate on the held-out test split"
"$tern" evaluate "$out/model.tar.gz" --test "$data/test.csv"

echo; echo "== 5-fold stratified cross-validation of the same hyperparameters on the train split"
"$tern" evaluate "$out/model.tar.gz" --test "$data/train.csv" --kfold 5 --stratified

echo; echo "== compile: an int8 package (model.onnx + manifest.json), calibrated on train, verified on test"
"$tern" compile "$out/model.tar.gz" --precision int8 --calibration "$data/train.csv" --held-out "$data/test.csv" \
  --target x86_64 --target aarch64 -o "$out/package"
"$tern" inspect "$out/package"

echo; echo "== predict with the package: the first 3 test rows without their label (text/csv -> application/json)"
head -n 3 "$data/test.csv" | cut -d, -f2- > "$out/rows.csv"
"$tern" predict "$out/package" --input "$out/rows.csv" --content-type text/csv --accept application/json
echo
echo "(true labels: $(head -n 3 "$data/test.csv" | cut -d, -f1 | tr '\n' ' '))"
echo; echo "model.tar.gz, metrics.json, plots (learning curve, ROC, PR) and package/ are in $out/"
