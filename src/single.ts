/**
 * Entry of dist/dormant.single.js: the browser entry plus both one-thread wasm modules embedded
 * as base64 (esbuild's base64 loader for .wasm), so a page loads one file and no .wasm. Model
 * weights are never embedded. The threaded modules are not either: with `threads` the bundle
 * reads them from ../build/ beside it, or runs one thread where that fails.
 */

import simd128 from "../build/dormant.wasm";
import relaxedSimd from "../build/dormant-relaxed.wasm";
import { setKernelModules } from "./wasm.js";

setKernelModules({ "simd128": `base64:${simd128}`, "relaxed-simd": `base64:${relaxedSimd}` });

export * from "./browser.js";
