// Runs a tern package with the wasm build in Node: the conformance suite's "wasm(node)" column.
//
// usage: node run_package.mjs <package-dir> <features.f32> <rows> <out.json>
//
// features.f32 holds rows × feature_dim little-endian float32 values (row-major); out.json receives
// {"outputs":[{"name":…,"shape":[…],"values":[…]}]} for every graph output, NaN written as null. Same contract as
// runtime-core/examples/run_package.rs. Needs runtime-wasm/pkg (scripts/build-wasm.sh).
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(import.meta.url);
const { Model } = require("../pkg/node/tern_wasm.js");

const [packageDir, featuresPath, rowsText, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error("usage: node run_package.mjs <package-dir> <features.f32> <rows> <out.json>");
  process.exit(2);
}
const rows = Number(rowsText);
if (!Number.isInteger(rows) || rows < 0) {
  console.error(`rows ${JSON.stringify(rowsText)}: expected a count`);
  process.exit(2);
}
try {
  const model = Model.fromParts(
    readFileSync(join(packageDir, "manifest.json")),
    readFileSync(join(packageDir, "model.onnx")),
  );
  const bytes = readFileSync(featuresPath);
  if (bytes.length % 4 !== 0) {
    throw new Error(`${featuresPath}: ${bytes.length} bytes is not a whole number of float32 values`);
  }
  const features = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  const { outputs } = await model.run(features, rows);
  const plain = outputs.map(({ name, shape, values }) => ({
    name,
    shape,
    // NaN → null as in the native runner; int64 values (BigInt) as numbers.
    values: Array.from(values, (v) => (typeof v === "bigint" ? Number(v) : Number.isNaN(v) ? null : v)),
  }));
  writeFileSync(outPath, JSON.stringify({ outputs: plain }));
} catch (error) {
  console.error(`run_package.mjs: ${error.message}`);
  process.exit(1);
}
