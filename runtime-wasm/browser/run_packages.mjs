// Runs tern packages with the browser build of the wasm runtime (runtime-wasm/pkg/web) inside Debian's headless
// Chromium: the conformance suite's "chromium-wasm" and "chromium-webgpu" columns. One Chromium serves every job, so
// the suite pays its start-up once.
//
// usage: node run_packages.mjs <root-dir>
//
// Serves runtime-wasm/pkg/web and the files under <root-dir> (nothing else) on 127.0.0.1, opens a page that
// imports the module, then reads jobs from stdin, one JSON object per line:
//   {"package": "<dir>", "features": "<file.f32>", "rows": N, "out": "<out.json>", "backend": "wasm"|"webgpu"}
// features.f32 holds rows × feature_dim little-endian float32 values (row-major). For each job the page loads the
// package with Model.load({manifest, model}, {backend}) and runs Model.run on the rows; out.json receives
// {"outputs":[{"name","shape","values"}]} (NaN as null, int64 as numbers), the contract of
// runtime-core/examples/run_package.rs. Writes one JSON line per job to stdout:
//   {"ok": true, "backend": "wasm"|"webgpu", "fallbackReason": "…"|null}   or   {"ok": false, "error": "…"}
// Before the first job it writes {"ready": true, "webgpu": {"navigator_gpu": bool, "adapter": "<description>"|null}}.
// Exits when stdin closes. Needs scripts/setup-web.sh (chromium, web/node_modules/playwright-core, the wasm build).
import { createInterface } from "node:readline";
import { writeFileSync } from "node:fs";
import { dirname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { inside, launchChromium, serve } from "../../web/tests/chromium.mjs";

const repo = join(dirname(fileURLToPath(import.meta.url)), "../..");

const [rootArg] = process.argv.slice(2);
if (!rootArg) {
  console.error("usage: node run_packages.mjs <root-dir>");
  process.exit(2);
}
const root = resolve(rootArg);
const pkg = join(repo, "runtime-wasm/pkg/web");

// The page: imports the module, then runs jobs handed over by page.evaluate.
const PAGE = `<!doctype html><meta charset="utf-8"><title>tern conformance</title>
<script type="module">
import init, { Model } from "/pkg/tern_wasm.js";
const bytes = async (path) => {
  const response = await fetch("/files" + path.split("/").map(encodeURIComponent).join("/"));
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return new Uint8Array(await response.arrayBuffer());
};
try {
  await init();
  window.runJob = async (job) => {
    const [manifest, model, features] = await Promise.all([
      bytes(job.package + "/manifest.json"), bytes(job.package + "/model.onnx"), bytes(job.features)]);
    if (features.length % 4 !== 0) throw new Error(job.features + ": not a whole number of float32 values");
    const loaded = await Model.load({ manifest, model }, { backend: job.backend });
    try {
      const { outputs } = await loaded.run(new Float32Array(features.buffer), job.rows);
      return {
        backend: loaded.backend,
        fallbackReason: loaded.fallbackReason ?? null,
        outputs: outputs.map(({ name, shape, values }) => ({
          name,
          shape: Array.from(shape),
          values: Array.from(values, (v) => (typeof v === "bigint" ? Number(v) : Number.isNaN(v) ? null : v)),
        })),
      };
    } finally {
      loaded.free();
    }
  };
  const navigatorGpu = "gpu" in navigator;
  const adapter = navigatorGpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
  const info = adapter && adapter.info;
  window.webgpu = {
    navigator_gpu: navigatorGpu,
    adapter: adapter ? [info?.vendor, info?.architecture, info?.description].filter(Boolean).join(" ") || "unnamed" : null,
  };
  window.runnerReady = true;
} catch (error) {
  window.runnerError = String(error && error.message || error);
}
</script>`;

/** The page, the wasm package, and files under `root` (GET /files/<absolute path>); null: not served. */
function route(path) {
  if (path === "/" || path === "/index.html") return { body: PAGE, type: "text/html" };
  if (path.startsWith("/pkg/")) return inside(pkg, path.slice(4));
  if (path.startsWith("/files/")) {
    const file = resolve(path.slice(6));
    return file.startsWith(root + sep) ? file : null;
  }
  return null;
}

const say = (value) => process.stdout.write(JSON.stringify(value) + "\n");

const server = await serve(route);
let browser = null;
try {
  browser = await launchChromium();
  const { page } = browser;
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(error.message));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => window.runnerReady || window.runnerError, null, { timeout: 120000 });
  const startError = await page.evaluate(() => window.runnerError);
  if (startError) throw new Error(`the page could not load runtime-wasm/pkg/web: ${startError}`);
  say({ ready: true, webgpu: await page.evaluate(() => window.webgpu) });

  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    try {
      const job = JSON.parse(line);
      if (!["wasm", "webgpu"].includes(job.backend)) throw new Error(`backend ${JSON.stringify(job.backend)}: expected "wasm" or "webgpu"`);
      if (!Number.isInteger(job.rows) || job.rows < 0) throw new Error(`rows ${JSON.stringify(job.rows)}: expected a count`);
      const request = { ...job, package: resolve(job.package), features: resolve(job.features) };
      const result = await page.evaluate((j) => window.runJob(j), request);
      writeFileSync(job.out, JSON.stringify({ outputs: result.outputs }));
      say({ ok: true, backend: result.backend, fallbackReason: result.fallbackReason });
    } catch (error) {
      const message = String(error.message ?? error).split("\n")[0].replace(/^page\.evaluate: (Error: )?/, "");
      say({ ok: false, error: pageErrors.length ? `${message} (page errors: ${pageErrors.join("; ")})` : message });
      pageErrors.length = 0;
    }
  }
} catch (error) {
  console.error(`run_packages.mjs: ${error.message}`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
  server.close();
}
