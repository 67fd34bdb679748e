// Exercises the npm package's API in Node (the nodejs build in runtime-wasm/pkg/node) on one package and writes
// what every call returned or threw, for runtime-wasm/tests/node.rs to compare with the native runtime.
//
// usage: node api_check.mjs <package-dir> <package.tar> <rows.csv> <out.json>
// rows.csv: unlabelled text/csv rows. The package folder and the archive are also served on 127.0.0.1 to exercise
// Model.load(url).
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(import.meta.url);
const { Model } = require("../pkg/node/tern_wasm.js");

const [packageDir, archivePath, rowsPath, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error("usage: node api_check.mjs <package-dir> <package.tar> <rows.csv> <out.json>");
  process.exit(2);
}
const manifest = readFileSync(join(packageDir, "manifest.json"));
const graph = readFileSync(join(packageDir, "model.onnx"));
const archive = readFileSync(archivePath);
const csv = readFileSync(rowsPath, "utf8");
const rows = csv.trim().split("\n").map((line) => line.split(",").map(Number));

/** The message of what `call` throws (or rejects with), with whether it is an Error. */
async function thrown(call) {
  try {
    await call();
    return { threw: false };
  } catch (error) {
    return { threw: true, is_error: error instanceof Error, message: String(error.message ?? error) };
  }
}

const files = { "/package/manifest.json": manifest, "/package/model.onnx": graph, "/package.tar": archive };
const server = createServer((request, response) => {
  const body = files[request.url];
  response.writeHead(body ? 200 : 404);
  response.end(body ?? "");
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const base = `http://127.0.0.1:${server.address().port}`;

const result = {};
try {
  const model = Model.fromParts(manifest, graph);
  result.backend = model.backend;
  result.fallback_reason = model.fallbackReason ?? null;
  result.feature_dim = model.featureDim;
  result.algorithm = model.manifest.algorithm;
  // Every prediction method returns a Promise (on both backends).
  const pending = model.predictCsv(csv);
  result.predict_returns_promise = pending instanceof Promise;
  result.predict_csv = await pending;
  result.predict = await model.predict(Float32Array.from(rows.flat()), rows.length);
  // A package whose manifest does not accept application/json (XGBoost) rejects here: kept as {error}.
  const orError = async (call) => { try { return await call(); } catch (error) { return { error: error.message }; } };
  result.predict_json = await orError(() => model.predictJson({ instances: rows.map((features) => ({ features })) }));
  result.predict_json_text = await orError(() => model.predictJson(JSON.stringify({ instances: [{ features: rows[0] }] })));
  // invoke with a text response type other than JSON (jsonlines for Linear Learner, text/csv for XGBoost).
  result.invoke_accept = model.manifest.produces.find((t) => t !== "application/json" && !t.includes("recordio"));
  result.invoke = new TextDecoder().decode(await model.invoke(Buffer.from(csv), "text/csv", result.invoke_accept));
  result.run = (await model.run(Float32Array.from(rows[0]), 1)).outputs.map(({ name, shape, values }) => ({
    name, shape, type: values.constructor.name, values: Array.from(values, Number),
  }));

  const webgpu = Model.fromParts(manifest, graph, { backend: "webgpu" });
  result.webgpu = { backend: webgpu.backend, fallback_reason: webgpu.fallbackReason ?? null };
  // Node has no navigator.gpu and this build no WebGPU backend: an asynchronous load asking for it falls back too.
  const webgpuLoad = await Model.load({ manifest, model: graph }, { backend: "webgpu" });
  result.webgpu_load = { backend: webgpuLoad.backend, fallback_reason: webgpuLoad.fallbackReason ?? null };
  const wasmLoad = await Model.load({ manifest, model: graph }, { backend: "wasm" });
  result.wasm_load = { backend: wasmLoad.backend, fallback_reason: wasmLoad.fallbackReason ?? null };

  const loaded = {
    folder_url: await Model.load(`${base}/package/`),
    tar_url: await Model.load(`${base}/package.tar`),
    archive_bytes: await Model.load(archive),
    archive_buffer: await Model.load(archive.buffer.slice(archive.byteOffset, archive.byteOffset + archive.length)),
    parts: await Model.load({ manifest, model: graph }),
    from_archive: Model.fromArchive(archive),
  };
  result.loaded = {};
  for (const [name, m] of Object.entries(loaded)) {
    result.loaded[name] = await m.predictCsv(csv);
  }

  const tampered = Buffer.from(graph);
  tampered[tampered.length >> 1] ^= 0xff;
  result.errors = {
    tampered_graph: await thrown(() => Model.fromParts(manifest, tampered)),
    bad_manifest: await thrown(() => Model.fromParts(Buffer.from("{\"manifest_version\": 99}"), graph)),
    short_row: await thrown(() => model.predictCsv("1.0,2.0\n")),
    bad_field: await thrown(() => model.predictCsv(csv.replace(/^[^,]*/, "abc"))),
    wrong_length: await thrown(() => model.predict(new Float32Array(7), 1)),
    bad_accept: await thrown(() => model.invoke(Buffer.from(csv), "text/csv", "image/png")),
    bad_backend: await thrown(() => Model.fromParts(manifest, graph, { backend: "cuda" })),
    missing_url: await thrown(() => Model.load(`${base}/nothing/`)),
    not_a_source: await thrown(() => Model.load(42)),
    not_an_archive: await thrown(() => Model.fromArchive(new Uint8Array(1024).fill(7))),
  };
  writeFileSync(outPath, JSON.stringify(result, null, 1));
} catch (error) {
  console.error(`api_check.mjs: ${error.stack ?? error}`);
  process.exitCode = 1;
} finally {
  server.close();
}
