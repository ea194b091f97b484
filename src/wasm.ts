/**
 * Picks and instantiates the wasm module. Two builds come from one source: the exact
 * simd128 module, and a relaxed-SIMD module that is faster where the engine supports it.
 * The relaxed module is used only when WebAssembly.validate accepts it AND its int8 dot
 * product passes a self-test, because Node 20's baseline compiler computes
 * relaxed_dot_i8x16_i7x16_add_s wrongly behind a flag, and engines without relaxed SIMD
 * reject the whole module.
 */

import { env } from "./env.js";
import { WasmError } from "./errors.js";
import { checkOptionKeys } from "./options.js";

/** The raw exports of build/dormant*.wasm; see assembly/index.ts. */
export interface DormantExports {
  memory: WebAssembly.Memory;
  reserve(budget: number): number;
  alloc(bytes: number): number;
  heapUsed(): number;
  modelInit(
    dim: number, hiddenDim: number, nLayers: number, nHeads: number, nKvHeads: number,
    vocabSize: number, seqLen: number, normEps: number, ropeTheta: number, int8: number,
  ): number;
  modelStateBytes(
    dim: number, hiddenDim: number, nLayers: number, nHeads: number, nKvHeads: number,
    vocabSize: number, seqLen: number,
  ): number;
  setWeight(slot: number, layer: number, data: number, scales: number): void;
  forward(token: number, pos: number): number;
  selfTest(): number;
  relaxedSimd(): number;
  setActivation(kind: number, gated: number): void;
  sparseInit(maxRank: number): number;
  sparseInitBytes(maxRank: number): number;
  bundleStride(): number;
  setBundles(layer: number, bundles: number, downScales: number): void;
  setSparsity(layer: number, predDown: number, predDownScales: number, predUp: number, rank: number, threshold: number, cutoff: number): void;
  setThreshold(layer: number, threshold: number, cutoff: number): void;
  setMode(mode: number): void;
  sparseStats(): number;
  setTrace(pointer: number): void;
  ffnRepeat(layer: number, input: number, repeats: number): void;
  predictorRepeat(layer: number, input: number, repeats: number): void;
  setRope(neox: number, freqScale: number): void;
  prefillInit(): number;
  prefillInitBytes(): number;
  prefillBlock(): number;
  prefillTokenBuffer(): number;
  forwardBlock(n: number, pos0: number, logits: number): number;
  classifierRepeat(repeats: number): void;
  attentionRepeat(layer: number, pos: number, repeats: number): void;
  threadsInit(count: number, mayBlock: number): number;
  threadsBytes(count: number): number;
  threadRun(control: number, id: number): void;
  threadsStop(): void;
  threadsStarted(): number;
  threadFail(control: number): void;
  threadsFailed(): number;
  threadCount(): number;
  prefillProbe(relaxed: number, repeats: number): void;
  prefillRelaxed(): number;
  matvecProbe(relaxed: number, repeats: number): void;
  matvecRelaxed(): number;
}

/** Module choice: "auto" tries relaxed SIMD first, the others force one. */
export type KernelChoice = "auto" | "exact" | "relaxed";

/** Kernel variant actually running. */
export type KernelVariant = "simd128" | "relaxed-simd";

/**
 * A built module: a kernel variant, or its threaded build ("-threads"), which imports a shared
 * memory as env.memory so Workers can run slices of the forward pass over it (src/threads.ts).
 */
export type ModuleName = KernelVariant | `${KernelVariant}-threads`;

/** The module names setKernelModules takes; tsc rejects a list that differs from ModuleName. */
const MODULE_NAMES = {
  "simd128": true, "relaxed-simd": true, "simd128-threads": true, "relaxed-simd-threads": true,
} as const satisfies Record<ModuleName, true>;

// Both dist/*.js bundles sit in dist/, beside build/, so one relative URL serves every host.
// Bundlers that understand `new URL(..., import.meta.url)` copy the files along.
const moduleUrls: Record<ModuleName, URL> = {
  "simd128": new URL("../build/dormant.wasm", import.meta.url),
  "relaxed-simd": new URL("../build/dormant-relaxed.wasm", import.meta.url),
  "simd128-threads": new URL("../build/dormant-threads.wasm", import.meta.url),
  "relaxed-simd-threads": new URL("../build/dormant-threads-relaxed.wasm", import.meta.url),
};

/** Module bytes given by setKernelModules (the single-file build embeds them as base64). */
const givenBytes = new Map<ModuleName, Uint8Array<ArrayBuffer>>();

const compiled = new Map<ModuleName, Promise<WebAssembly.Module | null>>();

/** Source of a kernel module: a URL, or its bytes (base64 text or a Uint8Array). */
export type KernelModuleSource = URL | string | Uint8Array;

/**
 * Replaces where the wasm modules are read from, for pages that serve them elsewhere than
 * `../build/` beside the bundle. A string is a URL, except that the prefix "base64:" marks
 * embedded bytes. Modules compiled before the call are dropped.
 */
export function setKernelModules(sources: Partial<Record<ModuleName, KernelModuleSource>>): void {
  checkOptionKeys("setKernelModules", sources, MODULE_NAMES);
  for (const variant of Object.keys(sources) as ModuleName[]) {
    const source = sources[variant];
    if (!(variant in moduleUrls) || source === undefined) continue;
    compiled.delete(variant);
    givenBytes.delete(variant);
    if (source instanceof Uint8Array) {
      givenBytes.set(variant, new Uint8Array(source));
    } else if (typeof source === "string" && source.startsWith("base64:")) {
      const text = atob(source.slice("base64:".length));
      const bytes = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
      givenBytes.set(variant, bytes);
    } else {
      const base = (globalThis as { location?: { href?: string } }).location?.href ?? import.meta.url;
      moduleUrls[variant] = new URL(source, base);
    }
  }
}

async function readUrlBytes(url: URL): Promise<Uint8Array<ArrayBuffer>> {
  // Node and Deno read file: URLs from disk; browsers and workers fetch every URL.
  if (url.protocol === "file:" && env.hasFileSystem) {
    const { readFile } = await import("node:fs/promises");
    const { fileURLToPath } = await import("node:url");
    return new Uint8Array(await readFile(fileURLToPath(url)));
  }
  const response = await fetch(url);
  if (!response.ok) {
    throw new WasmError(`loadModel: ${url.href}: HTTP status is ${response.status}, expected 200`, {
      source: url.href, field: "status", actual: String(response.status), expected: "200",
    });
  }
  return new Uint8Array(await response.arrayBuffer());
}

/** Compiles one module, or returns null when this engine rejects it. */
export function compileVariant(variant: ModuleName): Promise<WebAssembly.Module | null> {
  let pending = compiled.get(variant);
  if (!pending) {
    pending = (async () => {
      let bytes: Uint8Array<ArrayBuffer>;
      try {
        bytes = givenBytes.get(variant) ?? await readUrlBytes(moduleUrls[variant]);
      } catch (error) {
        if (error instanceof WasmError) throw error;
        throw new WasmError(
          `loadModel: ${moduleUrls[variant].href}: wasm module could not be read (${(error as Error).message}); run \`npm run build\``,
          { source: moduleUrls[variant].href, field: "module", actual: "unreadable", expected: "a built wasm module" },
        );
      }
      if (!WebAssembly.validate(bytes)) return null;
      return WebAssembly.compile(bytes);
    })();
    compiled.set(variant, pending);
  }
  return pending;
}

function instantiate(module: WebAssembly.Module, memory?: WebAssembly.Memory): DormantExports {
  const instance = new WebAssembly.Instance(module, memory ? { env: { memory } } : {});
  return instance.exports as unknown as DormantExports;
}

/**
 * Instantiates the threaded build of `variant` over a new shared memory that can grow to
 * maximumBytes, and self-tests it. Returns null when the engine rejects the module.
 */
export async function instantiateThreaded(variant: KernelVariant, maximumBytes: number): Promise<{ exports: DormantExports; module: WebAssembly.Module } | null> {
  const name: ModuleName = `${variant}-threads`;
  const module = await compileVariant(name);
  if (!module) return null;
  const maximum = Math.min(65536, Math.ceil(maximumBytes / 65536));
  const memory = new WebAssembly.Memory({ initial: 1, maximum, shared: true });
  const exports = instantiate(module, memory);
  if (exports.selfTest() !== 1) {
    throw new WasmError(`loadModel: ${moduleUrls[name].href}: int8 kernel self-test failed on this engine`, {
      source: moduleUrls[name].href, field: "selfTest", actual: "0", expected: "1",
    });
  }
  return { exports, module };
}

/** Instantiates a fresh module of the chosen variant; each model owns one instance. */
export async function instantiateKernels(choice: KernelChoice = "auto"): Promise<{ exports: DormantExports; variant: KernelVariant }> {
  if (choice !== "exact") {
    const relaxed = await compileVariant("relaxed-simd");
    if (relaxed) {
      const exports = instantiate(relaxed);
      if (exports.selfTest() === 1) return { exports, variant: "relaxed-simd" };
    }
    if (choice === "relaxed") {
      throw new WasmError(
        "loadModel: option kernels is \"relaxed\", but this engine rejects relaxed SIMD or fails its int8 dot-product self-test; use \"auto\" or \"exact\"",
        { source: "kernels", field: "kernels", actual: "relaxed", expected: "an engine with working relaxed SIMD" },
      );
    }
  }
  const exact = await compileVariant("simd128");
  if (!exact) {
    throw new WasmError(
      "loadModel: build/dormant.wasm: WebAssembly.validate rejected the module; this engine lacks SIMD (simd128), which dormant requires",
      { source: moduleUrls.simd128.href, field: "simd128", actual: "unsupported", expected: "WebAssembly SIMD" },
    );
  }
  const exports = instantiate(exact);
  if (exports.selfTest() !== 1) {
    throw new WasmError("loadModel: build/dormant.wasm: int8 kernel self-test failed on this engine", {
      source: moduleUrls.simd128.href, field: "selfTest", actual: "0", expected: "1",
    });
  }
  return { exports, variant: "simd128" };
}
