#!/usr/bin/env bash
# Builds tern's wasm runtime (runtime-wasm, crate tern-wasm) into runtime-wasm/pkg/ (git-ignored):
#   pkg/web/   ES module for browsers (wasm-bindgen --target web), with the WebGPU backend (feature `webgpu`) and
#              tern's interpreter as the wasm CPU engine (no tract: download size; TERN_WASM_TRACT=1 builds it with
#              tract as the CPU engine instead, about 8x the size)
#   pkg/node/  CommonJS module for Node (wasm-bindgen --target nodejs), the wasm CPU backend only, on tract: Node
#              has no WebGPU, and a build without wgpu cannot reach it
#   pkg/wasi/tern-wasi.wasm   the wasm32-wasip1 stdin/stdout runner for wasmtime and other WASI hosts
#   pkg/package.json          the npm package (exports: node → node/, browsers → web/; types in .d.ts)
# Installs what it needs idempotently: the rust targets, wasm-bindgen-cli at the version Cargo.lock pins, and
# wasm-opt from the npm package binaryen (web/package.json; never Debian's binaryen, whose output breaks in Chromium).
# Prints each .wasm's raw and gzipped size.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tern-target}"
pkg=runtime-wasm/pkg

for target in wasm32-unknown-unknown wasm32-wasip1; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
done

# wasm-bindgen's CLI must match the wasm-bindgen crate in Cargo.lock exactly.
version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)"
[ -n "$version" ] || { echo "build-wasm: no wasm-bindgen in Cargo.lock"; exit 1; }
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
  # --locked first; the CLI's own lockfile can name a yanked crate, then the newest compatible versions are taken.
  cargo install wasm-bindgen-cli --version "$version" --locked \
    || cargo install wasm-bindgen-cli --version "$version"
fi

[ -x web/node_modules/.bin/wasm-opt ] || (cd web && npm ci --no-audit --no-fund)
wasm_opt=web/node_modules/.bin/wasm-opt
# The features rustc's wasm32 targets enable by default, and SIMD (below); wasm-opt must accept them.
features=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals
  --enable-reference-types --enable-multivalue --enable-simd)

# tract-linalg compiles its wasm kernels (matrix products, reductions, activations) only for
# target_feature = "simd128"; without it the browser and Node builds fall back to scalar loops. Every current browser
# and Node runs wasm SIMD.
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="${CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS:--C target-feature=+simd128}"

# Both builds use the `wasm` profile (root Cargo.toml: release at opt-level "z", fat LTO, one codegen unit,
# panic = "abort", no debug info): download size matters more than build time.
# The crates a prediction's time is spent in (tract-linalg's kernels and packing, ndarray and tract-data under
# tract's generic ops, runtime-core's row kernels) at opt-level 3 instead of the profile's "z": about twice as fast
# for about 8% more gzipped module.
hot_crates=(--config 'profile.wasm.package."tract-linalg".opt-level=3' --config 'profile.wasm.package.ndarray.opt-level=3'
  --config 'profile.wasm.package."tract-data".opt-level=3' --config 'profile.wasm.package."tern-runtime".opt-level=3')
lib="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm/tern_wasm.wasm"
rm -rf "$pkg.tmp"
mkdir -p "$pkg.tmp/wasi"
cargo build --profile wasm "${hot_crates[@]}" --target wasm32-unknown-unknown -p tern-wasm --lib
wasm-bindgen "$lib" --target nodejs --out-dir "$pkg.tmp/node"
# wasm-bindgen writes the crate's inline_js snippets as ES modules, which the nodejs target's CommonJS glue
# require()s: rewrite them as CommonJS (they hold only `export function` declarations).
for snippet in "$pkg.tmp"/node/snippets/*/*.js; do
  [ -e "$snippet" ] || continue
  names="$(sed -n 's/^export function \([A-Za-z0-9_$]*\).*/\1/p' "$snippet" | paste -sd, -)"
  sed -i 's/^export function /function /' "$snippet"
  echo "module.exports = { $names };" >> "$snippet"
done
web_features=(--no-default-features --features webgpu)
[ "${TERN_WASM_TRACT:-0}" = 1 ] && web_features=(--features webgpu)
cargo build --profile wasm "${hot_crates[@]}" --target wasm32-unknown-unknown -p tern-wasm --lib "${web_features[@]}"
# The WASI runner ships without debug info (the release profile keeps line tables for native backtraces).
# SIMD too: wasmtime, wasmer and WasmEdge run it, and tract-linalg's wasm kernels exist only with it.
CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true \
  CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="${CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS:--C target-feature=+simd128}" \
  cargo build --release --target wasm32-wasip1 -p tern-wasm --bin tern-wasi

wasm-bindgen "$lib" --target web --out-dir "$pkg.tmp/web"
# wasm-opt (binaryen's JS build) takes minutes on a module this size: it optimises the browser build, where download
# size matters; the Node build (conformance) and the WASI runner ship as rustc and wasm-bindgen leave them.
"$wasm_opt" -O3 "${features[@]}" "$pkg.tmp/web/tern_wasm_bg.wasm" -o "$pkg.tmp/web/tern_wasm_bg.wasm.opt"
mv "$pkg.tmp/web/tern_wasm_bg.wasm.opt" "$pkg.tmp/web/tern_wasm_bg.wasm"
# The package's browser entry: the module behind a WebAssembly SIMD check (runtime-wasm/js/).
cp runtime-wasm/js/index.js runtime-wasm/js/index.d.ts "$pkg.tmp/web/"
cp "$CARGO_TARGET_DIR/wasm32-wasip1/release/tern-wasi.wasm" "$pkg.tmp/wasi/tern-wasi.wasm"

crate_version="$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)"
cat > "$pkg.tmp/package.json" <<EOF
{
  "name": "tern-wasm",
  "version": "$crate_version",
  "description": "Run tern packages (ONNX graph + manifest) in browsers and Node: SageMaker-shaped predictions on WebGPU or wasm",
  "license": "Apache-2.0",
  "type": "module",
  "main": "./node/tern_wasm.js",
  "module": "./web/index.js",
  "types": "./web/index.d.ts",
  "exports": {
    ".": {
      "types": "./web/index.d.ts",
      "node": "./node/tern_wasm.js",
      "default": "./web/index.js"
    },
    "./wasi/tern-wasi.wasm": "./wasi/tern-wasi.wasm"
  },
  "files": ["web/", "node/", "wasi/"]
}
EOF
# wasm-bindgen's nodejs output is CommonJS: mark that folder so the package's "type": "module" does not apply.
echo '{"type": "commonjs"}' > "$pkg.tmp/node/package.json"
rm -rf "$pkg"
mv "$pkg.tmp" "$pkg"

echo "runtime-wasm/pkg:"
for wasm in "$pkg/web/tern_wasm_bg.wasm" "$pkg/node/tern_wasm_bg.wasm" "$pkg/wasi/tern-wasi.wasm"; do
  raw=$(stat -c %s "$wasm")
  gz=$(gzip -9 -c "$wasm" | wc -c)
  awk -v name="${wasm#"$pkg"/}" -v raw="$raw" -v gz="$gz" \
    'BEGIN { printf "  %-26s %8.1f KiB raw %8.1f KiB gzipped\n", name, raw / 1024, gz / 1024 }'
done
