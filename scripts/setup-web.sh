#!/usr/bin/env bash
# Installs what the browser runtime's tests need, idempotently, then builds the wasm package and the demo:
# Debian's chromium (headless, for the Playwright tests) and node/npm, the npm tools of web/package.json
# (binaryen's wasm-opt, playwright-core, onnxruntime-web), the PyPI wasmtime of tests/python/requirements.txt (via
# scripts/setup-python.sh), then scripts/build-web.sh (which runs scripts/build-wasm.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

missing=()
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -d web/node_modules/playwright-core ] || [ ! -d web/node_modules/binaryen ] \
  || [ ! -d web/node_modules/onnxruntime-web ]; then
  (cd web && npm ci --no-audit --no-fund)
fi
bash scripts/build-web.sh
