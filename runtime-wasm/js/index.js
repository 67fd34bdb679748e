// The browser entry of the tern-wasm npm package: wasm-bindgen's module (./tern_wasm.js) behind a check that the
// browser runs WebAssembly SIMD, which the module is compiled with (its kernels are vectorised with it). Without the
// check, instantiation fails with a CompileError naming an opcode instead of the cause.
import wasmInit, { initSync as wasmInitSync } from "./tern_wasm.js";

export * from "./tern_wasm.js";

// The smallest module using a v128 value (i8x16.splat, i8x16.popcnt): it validates only where WebAssembly SIMD is
// supported.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0,
  65, 0, 253, 15, 253, 98, 11]);

/** Whether this JavaScript engine runs WebAssembly SIMD (tern's module needs it). */
export function hasWasmSimd() {
  return typeof WebAssembly === "object" && WebAssembly.validate(SIMD_PROBE);
}

function requireSimd() {
  if (!hasWasmSimd()) {
    throw new Error("tern-wasm: this browser has no WebAssembly SIMD, which tern's wasm module needs "
      + "(current Chrome, Edge, Firefox and Safari 16.4 or later have it)");
  }
}

/** Loads the module (as wasm-bindgen's default export does), after checking for WebAssembly SIMD. */
export default async function init(moduleOrPath) {
  requireSimd();
  return wasmInit(moduleOrPath);
}

/** Instantiates the module synchronously from its bytes or a compiled module, after checking for WebAssembly SIMD. */
export function initSync(module) {
  requireSimd();
  return wasmInitSync(module);
}
