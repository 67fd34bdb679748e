#!/usr/bin/env bash
# Builds the browser demo's files into web/ (all git-ignored): web/pkg/ (the wasm runtime, from scripts/build-wasm.sh)
# and web/models/ (two packages the tern CLI trains and compiles here, with a few held-out rows each):
#   models/breast_cancer/  the README's main job (scripts/demo.sh): Linear Learner binary classifier on
#                          examples/breast_cancer, int8, calibrated on train, verified on test
#   models/digits/         Linear Learner multiclass on scikit-learn's 8×8 digits (tests/data/generated/digits), fp32
# Serve web/ with any static server, e.g. `python3 -m http.server -d web`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tern-target}"

bash scripts/build-wasm.sh
cargo build --release -p tern
tern="$CARGO_TARGET_DIR/release/tern"
digits=tests/data/generated/digits
[ -f "$digits/train.csv" ] || .venv/bin/python tests/python/export_datasets.py tests/data/generated digits >/dev/null

work=out/web-models
rm -rf "$work" web/models.tmp
mkdir -p "$work" web/models.tmp

"$tern" train --algorithm linear-learner --train examples/breast_cancer/train.csv \
  --validation examples/breast_cancer/validation.csv --hp predictor_type=binary_classifier --hp epochs=15 \
  --hp mini_batch_size=32 --output-dir "$work/breast_cancer" >/dev/null
"$tern" compile "$work/breast_cancer/model.tar.gz" --precision int8 --calibration examples/breast_cancer/train.csv \
  --held-out examples/breast_cancer/test.csv --target wasm32 -o web/models.tmp/breast_cancer >/dev/null
head -n 20 examples/breast_cancer/test.csv > web/models.tmp/breast_cancer/rows.csv

"$tern" train --algorithm linear-learner --train "$digits/train.csv" --validation "$digits/validation.csv" \
  --hp predictor_type=multiclass_classifier --hp num_classes=10 --hp epochs=15 --output-dir "$work/digits" >/dev/null
"$tern" compile "$work/digits/model.tar.gz" --precision fp32 --held-out "$digits/test.csv" --target wasm32 \
  -o web/models.tmp/digits >/dev/null
head -n 20 "$digits/test.csv" > web/models.tmp/digits/rows.csv

rm -rf web/models web/pkg
mv web/models.tmp web/models
cp -r runtime-wasm/pkg/web web/pkg
echo "web/: demo ready (pkg/ and models/ built); serve it with: python3 -m http.server -d web"
