// The browser entry's WebAssembly SIMD guard (runtime-wasm/js/index.js, copied into runtime-wasm/pkg/web): in an
// engine whose WebAssembly.validate refuses SIMD, init() and initSync() must throw the guard's message before the
// module is touched; where SIMD validates, hasWasmSimd() is true. Exits 1 with the reason when a check fails.
//
// usage: node simd_check.mjs
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const entry = join(dirname(fileURLToPath(import.meta.url)), "../pkg/web/index.js");
const { default: init, initSync, hasWasmSimd, Model } = await import(entry);
const fail = (message) => {
  console.error(`simd_check.mjs: ${message}`);
  process.exit(1);
};

if (typeof Model !== "function") fail("the entry does not re-export Model");
if (!hasWasmSimd()) fail("hasWasmSimd() is false in Node, which runs WebAssembly SIMD");

const validate = WebAssembly.validate;
// An engine without SIMD: every module holding a v128 value fails validation.
WebAssembly.validate = (bytes) => !new Uint8Array(bytes).includes(123) && validate(bytes);
try {
  if (hasWasmSimd()) fail("hasWasmSimd() is true in an engine refusing SIMD");
  for (const [name, call] of [["init", () => init(new Uint8Array(8))], ["initSync", async () => initSync(new Uint8Array(8))]]) {
    const outcome = await call().then(() => null, (error) => error);
    if (!outcome) fail(`${name}() succeeded without SIMD`);
    if (!/no WebAssembly SIMD/.test(outcome.message)) fail(`${name}() threw ${JSON.stringify(outcome.message)}`);
  }
} finally {
  WebAssembly.validate = validate;
}
console.log("simd_check.mjs: the SIMD guard refuses init and initSync without SIMD");
