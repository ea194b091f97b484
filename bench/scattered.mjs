// The memory floor of the sparse FFN: how long one thread takes to read only some rows of a
// layer's weights, against reading all of them.
//
// The region is twelve layers of stories110M-shaped int8 bundles (2048 neurons × 2496 bytes each,
// 61 MB, more than the last-level cache). Each round picks every neuron with probability p, from
// one of three fixed sets in turn. It reads the chosen neurons' chunks in increasing address
// order, as the runtime does, with readChunks (assembly/kernels/bandwidth.ts), which only loads
// and adds. The chunks are the three that the sparse FFN reads per neuron:
//
//   bundle    2496 bytes   gate row, up row and down column of a kept neuron (scattered mode)
//   gate      864 bytes    the gate row and its scales of a candidate
//   up+down   1728 bytes   what a kept neuron adds when its gate row came from somewhere else
//
// "vs all" divides the time by readBytes over the whole region. A sparse FFN that reads those
// chunks cannot be faster than that fraction of a dense FFN that reads the whole region at the
// read speed. Medians of the rounds. Then, when a C compiler (`cc`) is found, the same reads in
// native code (bench/native/scattered.c), which tells the machine's memory system from the engine.
//
//   npm run build:test-wasm
//   node bench/scattered.mjs [--rounds 9]

import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const NEURONS = 2048;
const LAYERS = 12;
const BUNDLE = 2496;
const CHUNKS = [
  ["bundle", 0, 2496],
  ["gate", 0, 864],
  ["up+down", 864, 1728],
];
const FRACTIONS = [0.1, 0.3, 0.5, 0.55, 0.7, 1];
const SETS = 3;
/** Bytes read before each timed read, so that the chunks come from memory, not from the L3 (32 MiB here). */
const EVICT_BYTES = 48 << 20;

function parseRounds(argv) {
  const at = argv.indexOf("--rounds");
  if (at < 0) return 9;
  const value = Number(argv[at + 1]);
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`bench/scattered.mjs: invalid --rounds ${JSON.stringify(argv[at + 1])}, expected a positive integer`);
  }
  return value;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const rounds = parseRounds(process.argv.slice(2));
const path = new URL("../build/dormant-test.wasm", import.meta.url);
const moduleBytes = await readFile(path).catch((error) => {
  console.error(`bench/scattered.mjs: ${fileURLToPath(path)} could not be read (${error.code ?? error.message}); build it with npm run build:test-wasm`);
  process.exit(1);
});
const { instance } = await WebAssembly.instantiate(moduleBytes, {});
const e = instance.exports;
e.allocReset();

const count = NEURONS * LAYERS;
const regionBytes = count * BUNDLE;
const region = e.alloc(regionBytes) >>> 0;
const list = e.alloc(4 * count) >>> 0;
const evict = e.alloc(EVICT_BYTES) >>> 0;
if (region === 0 || list === 0 || evict === 0) {
  throw new Error(`bench/scattered.mjs: the test module could not allocate ${regionBytes + EVICT_BYTES} bytes`);
}
// written once, so every page is mapped before the timing
new Uint8Array(e.memory.buffer, region, regionBytes).fill(3);
new Uint8Array(e.memory.buffer, evict, EVICT_BYTES).fill(5);

/** Returns the ascending neuron indices of set `seed`, each chosen with probability p. */
function pick(p, seed) {
  const chosen = [];
  let state = seed >>> 0;
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    if (state / 2 ** 32 < p) chosen.push(i);
  }
  return chosen;
}

const whole = [];
for (let r = 0; r < rounds + 1; r++) {
  e.readBytes(evict, EVICT_BYTES);
  const start = performance.now();
  e.readBytes(region, regionBytes);
  if (r > 0) whole.push(performance.now() - start);
}
const wholeMs = median(whole);
console.log(`# one thread, ${LAYERS} × ${NEURONS} bundles of ${BUNDLE} bytes (${(regionBytes / 1e6).toFixed(1)} MB), ${rounds} rounds`);
console.log(`readBytes, whole region: ${wholeMs.toFixed(2)} ms, ${(regionBytes / wholeMs / 1e6).toFixed(1)} GB/s`);
console.log("chunk     bytes  fraction  chunk GB/s  ms      vs all");

const results = [];
for (const [name, offset, bytes] of CHUNKS) {
  for (const p of FRACTIONS) {
    const sets = Array.from({ length: SETS }, (_, s) => pick(p, 977 * (s + 1)));
    const times = [];
    for (let r = 0; r < rounds + 1; r++) {
      const chosen = sets[r % SETS];
      const addresses = new Uint32Array(e.memory.buffer, list, chosen.length);
      for (let k = 0; k < chosen.length; k++) addresses[k] = region + chosen[k] * BUNDLE + offset;
      e.readBytes(evict, EVICT_BYTES);
      const start = performance.now();
      e.readChunks(list, chosen.length, bytes);
      // time per chosen neuron, because the three sets differ slightly in size
      if (r > 0) times.push((performance.now() - start) / chosen.length);
    }
    const perChunk = median(times);
    const ms = perChunk * count * p;
    const row = { chunk: name, bytes, fraction: p, chunkGBs: bytes / perChunk / 1e6, ms, vsAll: ms / wholeMs };
    results.push(row);
    console.log(
      `${name.padEnd(8)}  ${String(bytes).padStart(5)}  ${p.toFixed(2).padStart(8)}  ${row.chunkGBs.toFixed(1).padStart(10)}  ` +
      `${ms.toFixed(2).padStart(6)}  ${row.vsAll.toFixed(2).padStart(6)}`,
    );
  }
}

const source = fileURLToPath(new URL("./native/scattered.c", import.meta.url));
const binary = fileURLToPath(new URL("../build/scattered-native", import.meta.url));
const compiled = spawnSync("cc", ["-O2", "-o", binary, source], { stdio: "inherit" });
if (compiled.error || compiled.status !== 0) {
  console.log(`\nnative comparison skipped: cc -O2 ${source} failed (${compiled.error?.message ?? `exit status ${compiled.status}`})`);
} else {
  console.log("");
  spawnSync(binary, [String(rounds)], { stdio: "inherit" });
}
