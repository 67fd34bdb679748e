// Answers one /invocations request with the npm package's Node build (runtime-wasm/pkg/node), as a browser page or
// a serverless wasm host would: Model.fromParts(manifest, graph).invoke(body, contentType, accept).
//
// usage: node invoke.mjs <package-dir> <body-file> <content-type> <accept> <out-file>
// Writes the response bytes to <out-file>; an error is printed to stderr with exit code 1.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(import.meta.url);
const { Model } = require("../pkg/node/tern_wasm.js");

const [packageDir, bodyPath, contentType, accept, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error("usage: node invoke.mjs <package-dir> <body-file> <content-type> <accept> <out-file>");
  process.exit(2);
}
try {
  const model = Model.fromParts(
    readFileSync(join(packageDir, "manifest.json")),
    readFileSync(join(packageDir, "model.onnx")),
  );
  const response = await model.invoke(readFileSync(bodyPath), contentType, accept);
  writeFileSync(outPath, response);
} catch (error) {
  console.error(String(error.message ?? error));
  process.exit(1);
}
