// Builds the browser bundles and prints the sizes whose limits test/hosts.test.ts checks.
//   dist/dormant.browser.js  ESM, minified; reads ../build/dormant*.wasm relative to itself
//   dist/dormant.single.js   the same plus both wasm modules as base64 (model weights never)
//   dist/dormant.worker.js   the worker script of loadModel(source, { worker: true })

import { build } from "esbuild";
import { readFileSync, statSync } from "node:fs";
import { gzipSync } from "node:zlib";

const root = new URL("../", import.meta.url);
const common = {
  bundle: true,
  platform: "browser",
  format: "esm",
  target: "es2022",
  minify: true,
  // io.ts imports node: builtins lazily; browsers never reach those calls.
  external: ["node:*"],
  logLevel: "warning",
  absWorkingDir: new URL(".", root).pathname,
};

// Splitting puts the chat template engine (@huggingface/jinja, loaded by the first chat() call)
// into its own chunk, so pages that never chat do not download it.
await build({
  ...common,
  entryPoints: { "dormant.browser": "src/browser.ts" },
  outdir: "dist",
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
});

// The worker script of worker mode (loadModel with worker: true), a separate build so the page's
// entry keeps its own chunks. Its chat and catalog code are chunks too, loaded on first use.
await build({
  ...common,
  entryPoints: { "dormant.worker": "src/worker-entry.ts" },
  outdir: "dist",
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
});

// The thread worker script of loadModel(source, { threads }), tiny and without chunks.
await build({
  ...common,
  entryPoints: { "dormant.thread": "src/thread-entry.ts" },
  outdir: "dist",
});

const base64 = (path) => readFileSync(new URL(path, root)).toString("base64");
await build({
  ...common,
  stdin: {
    contents: [
      'import { setKernelModules } from "./src/wasm.js";',
      `setKernelModules({ "simd128": "base64:${base64("build/dormant.wasm")}", "relaxed-simd": "base64:${base64("build/dormant-relaxed.wasm")}" });`,
      'export * from "./src/browser.js";',
    ].join("\n"),
    resolveDir: new URL(".", root).pathname,
    sourcefile: "single.js",
    loader: "js",
  },
  outfile: "dist/dormant.single.js",
});

const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;

// JavaScript a page downloads before its first chat(): the entry and the chunks it imports statically.
const entry = readFileSync(new URL("dist/dormant.browser.js", root), "utf8");
const startupChunks = [...entry.matchAll(/from\s*"\.\/(chunks\/[^"]+\.js)"/g)].map((match) => `dist/${match[1]}`);
const startupBytes = ["dist/dormant.browser.js", ...startupChunks].reduce((sum, path) => sum + statSync(new URL(path, root)).size, 0);
for (const [path, limit] of [
  ["build/dormant.wasm", 64],
  ["build/dormant-relaxed.wasm", 64],
  ["build/dormant-threads.wasm", 64],
  ["build/dormant-threads-relaxed.wasm", 64],
  ["dist/dormant.thread.js", undefined],
  ["dist/dormant.browser.js", undefined],
  ["dist/dormant.single.js", undefined],
  ["dist/dormant.worker.js", undefined],
]) {
  const bytes = readFileSync(new URL(path, root));
  const status = limit === undefined ? "" : statSync(new URL(path, root)).size <= limit * 1024 ? `  (limit ${limit} KiB)` : `  OVER the ${limit} KiB limit`;
  console.log(`${path.padEnd(36)} ${kib(bytes.byteLength).padStart(10)}  gzip ${kib(gzipSync(bytes).byteLength).padStart(9)}${status}`);
}
const startupStatus = startupBytes <= 100 * 1024 ? "  (limit 100 KiB)" : "  OVER the 100 KiB limit";
console.log(`${"browser JavaScript at startup".padEnd(36)} ${kib(startupBytes).padStart(10)}${startupStatus} (entry and ${startupChunks.length} chunk${startupChunks.length === 1 ? "" : "s"})`);
