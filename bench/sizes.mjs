// Sizes of what a page downloads: each wasm module, each bundle, and the JavaScript a page loads
// before its first chat() (the entry and the chunks it imports statically). test/hosts.test.ts
// checks the same limits. Run `npm run build` first.
//
//   node bench/sizes.mjs

import { readFileSync, statSync } from "node:fs";
import { gzipSync } from "node:zlib";

const root = new URL("../", import.meta.url);
const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;

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
  let status = "";
  if (limit !== undefined) status = bytes.byteLength <= limit * 1024 ? `  (limit ${limit} KiB)` : `  OVER the ${limit} KiB limit`;
  console.log(`${path.padEnd(36)} ${kib(bytes.byteLength).padStart(10)}  gzip ${kib(gzipSync(bytes).byteLength).padStart(9)}${status}`);
}
const startupStatus = startupBytes <= 100 * 1024 ? "  (limit 100 KiB)" : "  OVER the 100 KiB limit";
const chunkCount = `${startupChunks.length} chunk${startupChunks.length === 1 ? "" : "s"}`;
console.log(`${"browser JavaScript at startup".padEnd(36)} ${kib(startupBytes).padStart(10)}${startupStatus} (entry and ${chunkCount})`);
