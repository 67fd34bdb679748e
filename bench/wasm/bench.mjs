// tern's wasm runtime vs onnxruntime-web (npm, wasm backend, one thread) in the same headless Chromium, on the
// packages scripts/build-web.sh writes (web/models/digits: Linear Learner multiclass fp32, 64 features;
// web/models/breast_cancer: Linear Learner binary int8, 30 features). Prints latency per call at batch 1 and 256
// (median of 15 timed blocks, each repeating the call for at least 20 ms, after 20 warm-up calls and 200 ms more of
// them; rows cycled from the package's held-out rows) and gzipped .wasm sizes, as ratios tern / onnxruntime-web
// (below 1: tern is faster or smaller).
//
// usage: node bench/wasm/bench.mjs      (after scripts/setup-web.sh)
// What makes up tern's module: python3 bench/wasm/sizes.py "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm/tern_wasm.wasm"
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { inside, launchChromium, serve } from "../../web/tests/chromium.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const server = await serve((path) => inside(root, path));

const gz = (path) => gzipSync(readFileSync(join(root, path)), { level: 9 }).length;
const ternWasm = "web/pkg/tern_wasm_bg.wasm";
const ortWasm = "web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm";
// The module's JS: wasm-bindgen's glue and the crate's inline_js snippets.
const ternJs = ["web/pkg/tern_wasm.js", ...readdirSync(join(root, "web/pkg/snippets"), { recursive: true })
  .filter((file) => file.endsWith(".js")).map((file) => join("web/pkg/snippets", file))];
const sizes = {
  tern: { raw: statSync(join(root, ternWasm)).size, gzip: gz(ternWasm) + ternJs.reduce((sum, file) => sum + gz(file), 0) },
  ort: {
    raw: statSync(join(root, ortWasm)).size,
    gzip: gz(ortWasm) + gz("web/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs")
      + gz("web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.mjs"),
  },
};

const browser = await launchChromium();
try {
  const { page } = browser;
  await page.goto(`http://127.0.0.1:${server.address().port}/bench/wasm/bench.html`);
  await page.waitForFunction(() => window.benchReady, null, { timeout: 60000 });
  const results = await page.evaluate(() => window.bench(["digits", "breast_cancer"], [1, 256], 15));
  const kib = (bytes) => `${(bytes / 1024).toFixed(0)} KiB`;
  console.log("tern wasm vs onnxruntime-web 1.30.0 (wasm backend, 1 thread), headless Chromium, ms per call (median of 15 blocks of ≥ 20 ms)");
  console.log("package         batch   tern run   tern predict   ort run   ratio run (tern/ort)   ratio predict");
  for (const r of results) {
    console.log(`${r.package.padEnd(15)} ${String(r.batch).padStart(5)} ${r.tern_run_ms.toFixed(4).padStart(10)} ms`
      + `${r.tern_predict_ms.toFixed(4).padStart(11)} ms ${r.ort_run_ms.toFixed(4).padStart(9)} ms`
      + `${(r.tern_run_ms / r.ort_run_ms).toFixed(2).padStart(16)}x ${(r.tern_predict_ms / r.ort_run_ms).toFixed(2).padStart(14)}x`);
  }
  console.log(`wasm size: tern ${kib(sizes.tern.raw)} raw, ${kib(sizes.tern.gzip)} gzipped (+ JS glue); `
    + `onnxruntime-web ${kib(sizes.ort.raw)} raw, ${kib(sizes.ort.gzip)} gzipped (+ JS); `
    + `ratio gzipped ${(sizes.tern.gzip / sizes.ort.gzip).toFixed(2)}x`);
} finally {
  await browser.close();
  server.close();
}
