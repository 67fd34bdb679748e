// Types of the tern-wasm npm package's browser entry (index.js): wasm-bindgen's declarations, with init and initSync
// checking for WebAssembly SIMD first.
export * from "./tern_wasm.js";
export { default } from "./tern_wasm.js";

/** Whether this JavaScript engine runs WebAssembly SIMD (tern's module needs it). */
export function hasWasmSimd(): boolean;
