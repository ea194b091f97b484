// Decode speed of dormant beside two llama.cpp builds on the same GGUF files: native llama.cpp
// through node-llama-cpp, and llama.cpp compiled to wasm (wllama) in headless Chromium.
// Prints a table and writes bench/out/peers.json; asserts nothing.
//
//   npm run build && npm ci --prefix bench/peers
//   node bench/peers.mjs [--runs 5] [--tokens N] [--models stories260K,stories110M]
//
// Runs are interleaved (run 1 of every engine, then run 2, ...), so load from other processes
// spreads over all engines alike. Run 0 of each engine is a warm-up and is not counted.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { convertToGGUF, loadModel, readModelFile } from "../dist/index.js";
import { SHAPES, syntheticModel } from "./synthetic.mjs";

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const peersDir = path.join(benchDir, "peers");
const stories260K = path.resolve(benchDir, "../../shared/models/stories260K.gguf");

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at === -1 ? fallback : args[at + 1];
};
const runs = Number(option("runs", 5));
const tokensOption = option("tokens", undefined);
const modelNames = option("models", "stories260K,stories110M").split(",");
const prompt = "Once upon a time";
// stories260K decodes a token in well under a millisecond, so it gets more tokens per run.
const DEFAULT_TOKENS = { stories260K: 256, stories110M: 64 };

for (const name of modelNames) {
  if (!(name in DEFAULT_TOKENS)) {
    console.error(`bench/peers.mjs: --models: ${name} is not a model of this bench, expected stories260K or stories110M`);
    process.exit(2);
  }
}
// The decode rate needs two generated tokens: the first one ends the prompt's forward pass.
for (const [name, text, minimum] of [["runs", option("runs", "5"), 1], ["tokens", tokensOption ?? "2", 2]]) {
  if (!Number.isInteger(Number(text)) || Number(text) < minimum) {
    console.error(`bench/peers.mjs: --${name}: ${text} is invalid, expected an integer of at least ${minimum}`);
    process.exit(2);
  }
}

for (const name of ["node-llama-cpp", "@wllama/wllama"]) {
  if (!fs.existsSync(path.join(peersDir, "node_modules", name, "package.json"))) {
    console.error(`bench/peers.mjs: ${name} not found in bench/peers/node_modules; install the peers with npm ci --prefix bench/peers`);
    process.exit(1);
  }
}
const { loadNative, nativeInfo } = await import("./peers/native.mjs");
const { startBrowser } = await import("./peers/browser.mjs");
const packageVersion = (name) => JSON.parse(fs.readFileSync(path.join(peersDir, "node_modules", name, "package.json"), "utf8")).version;

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/** Writes the F32 and Q8_0 GGUF files of one model into `dir` and returns their paths. */
function writeModelFiles(name, dir) {
  const files = { f32: path.join(dir, `${name}.f32.gguf`), q8_0: path.join(dir, `${name}.q8_0.gguf`) };
  if (name === "stories260K") {
    files.f32 = stories260K;
    fs.writeFileSync(files.q8_0, convertToGGUF(readModelFile(fs.readFileSync(stories260K), stories260K), { type: "q8_0" }));
    return files;
  }
  const model = syntheticModel(name, SHAPES[name]);
  for (const type of ["f32", "q8_0"]) fs.writeFileSync(files[type], convertToGGUF(model, { type }));
  return files;
}

/** Returns an engine that runs dormant's generate and times decode the same way as the peers do. */
async function dormantEngine(file, precision, contextLength, promptTokens, tokens, threads = 1) {
  const model = await loadModel(file, { precision, contextLength, threads });
  return {
    kernels: model.kernels,
    run: async () => {
      const generated = [];
      let first = 0;
      let last = 0;
      const pieces = model.generate(promptTokens, { maxTokens: tokens, temperature: 0, stopAtEos: false });
      for await (const piece of pieces) {
        if (piece.token < 0) continue;
        last = performance.now();
        if (generated.length === 0) first = last;
        generated.push(piece.token);
      }
      return { tokensPerSecond: ((generated.length - 1) * 1000) / (last - first), generated };
    },
    dispose: () => model.dispose(),
  };
}

/** Counts the leading tokens that two greedy generations share. */
function agreement(a, b) {
  let count = 0;
  while (count < a.length && count < b.length && a[count] === b[count]) count++;
  return count;
}

const loadBefore = os.loadavg();
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "dormant-peers-"));
const browser = await startBrowser(workDir);
const native = await nativeInfo();
const rows = [];
const notes = [];
let browserInfo;

try {
  for (const name of modelNames) {
    const tokens = Number(tokensOption ?? DEFAULT_TOKENS[name]);
    const files = writeModelFiles(name, workDir);

    const probe = await loadModel(files.f32, { precision: "f32" });
    const promptTokens = probe.tokenize(prompt);
    probe.dispose();
    const contextLength = promptTokens.length + tokens + 1;
    const settings = { contextLength, prompt: promptTokens, tokens };

    // Engines in the order the table lists them. A peer's `dormant` names the dormant row it is compared with.
    // Rows whose `dormant` is set are compared with the one-thread dormant row of those weights:
    // a peer, or dormant itself on two threads or in Chromium.
    const engines = [];
    for (const [precision, type] of [["int8", "q8_0"], ["f32", "f32"]]) {
      const engine = await dormantEngine(files[type], precision, contextLength, promptTokens, tokens);
      engines.push({ runtime: "dormant", host: `Node ${process.version}`, weights: precision, threads: 1, engine });
    }
    engines.push({
      runtime: "dormant", host: `Node ${process.version}`, weights: "int8", threads: 2, dormant: "int8",
      engine: await dormantEngine(files.q8_0, "int8", contextLength, promptTokens, tokens, 2),
    });
    for (const threads of [1, 2]) {
      const engine = await browser.openDormant({ modelFile: files.q8_0, threads, contextLength, promptTokens, tokens });
      if (engine.info.threads !== threads) notes.push(`${name}: dormant in Chromium asked for ${threads} threads ran ${engine.info.threads}: ${engine.info.threadsNote}`);
      engines.push({ runtime: "dormant", host: "Chromium", weights: "int8", threads, dormant: "int8", engine });
    }
    const nativeModels = {};
    for (const type of ["q8_0", "f32"]) {
      nativeModels[type] = await loadNative(files[type], settings);
      const nativePrompt = nativeModels[type].tokenize(prompt);
      if (nativePrompt.join(",") !== promptTokens.join(",")) {
        notes.push(`${name}: llama.cpp tokenizes the prompt as [${nativePrompt}], dormant as [${promptTokens}]; all engines got dormant's ids except wllama, which takes text`);
      }
      for (const threads of [1, 2]) {
        const engine = await nativeModels[type].open(threads);
        engines.push({ runtime: "llama.cpp", host: "node-llama-cpp", weights: type.toUpperCase(), threads, dormant: type === "q8_0" ? "int8" : "f32", engine });
      }
    }
    for (const threads of [1, 2]) {
      // wllama's completion API takes the prompt as text, which llama.cpp's tokenizer reads.
      const engine = await browser.open({ modelFile: files.q8_0, threads, contextLength, prompt, tokens });
      browserInfo = engine.info;
      if (engine.info.threads !== threads) {
        notes.push(`${name}: wllama asked for ${threads} threads ran ${engine.info.threads} (crossOriginIsolated ${engine.info.isolated})`);
      }
      engines.push({ runtime: "wllama", host: "Chromium", weights: "Q8_0", threads, dormant: "int8", engine });
    }

    const samples = engines.map(() => []);
    const firstRuns = engines.map(() => undefined);
    for (let run = 0; run <= runs; run++) {
      for (const [i, { engine }] of engines.entries()) {
        const result = await engine.run();
        if (run === 0) firstRuns[i] = result;
        else samples[i].push(result.tokensPerSecond);
      }
    }

    const dormantRow = {};
    for (const [i, entry] of engines.entries()) {
      const result = firstRuns[i];
      const row = {
        model: name, runtime: entry.runtime, host: entry.host, weights: entry.weights, threads: entry.threads,
        promptTokens: result.promptTokens ?? promptTokens.length, tokens, tokensPerSecond: median(samples[i]),
        bestTokensPerSecond: Math.max(...samples[i]), samples: samples[i],
      };
      if (entry.runtime === "dormant") row.kernels = entry.engine.kernels;
      if (entry.dormant === undefined) {
        dormantRow[entry.weights] = { row, generated: result.generated };
      } else {
        const reference = dormantRow[entry.dormant];
        if (entry.runtime === "dormant") row.overDormantNode = row.tokensPerSecond / reference.row.tokensPerSecond;
        else row.dormantOverPeer = reference.row.tokensPerSecond / row.tokensPerSecond;
        if (result.generated) row.greedyAgreement = agreement(result.generated, reference.generated);
        if (result.promptTokens !== undefined && result.promptTokens !== promptTokens.length) {
          notes.push(`${name}: wllama read the prompt as ${result.promptTokens} tokens, dormant as ${promptTokens.length}`);
        }
      }
      rows.push(row);
    }
    for (const { engine } of engines) await engine.dispose();
    for (const model of Object.values(nativeModels)) await model.dispose();
  }
} finally {
  await browser.close();
  fs.rmSync(workDir, { recursive: true, force: true });
}

const machine = {
  cpu: os.cpus()[0].model, cores: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  node: process.version, chromium: browserInfo?.userAgent.match(/Chrome\/([\d.]+)/)?.[1],
  // Other processes on the machine slow the engines down, two-thread runs most of all.
  loadAverage: { before: loadBefore, after: os.loadavg() },
};
const versions = {
  "node-llama-cpp": packageVersion("node-llama-cpp"), "node-llama-cpp llama.cpp": native.llamaCpp,
  "@wllama/wllama": packageVersion("@wllama/wllama"), "wllama llama.cpp": browserInfo?.llamaCpp,
};

console.log(`# decode tokens/s, greedy, prompt "${prompt}", median of ${runs} runs after a warm-up`);
console.log(`# ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, Chromium ${machine.chromium}`);
console.log(`# load average ${machine.loadAverage.before[0].toFixed(2)} before, ${machine.loadAverage.after[0].toFixed(2)} after`);
console.log(`# ${Object.entries(versions).map(([key, value]) => `${key} ${value}`).join(", ")}`);
console.log("| model | runtime | host | weights | threads | tokens | tokens/s | best run | dormant / peer | this / dormant Node 1 thread | greedy tokens equal to dormant's |");
console.log("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const row of rows) {
  const ratio = row.dormantOverPeer === undefined ? "" : `${row.dormantOverPeer.toFixed(2)}×`;
  const speedup = row.overDormantNode === undefined ? "" : `${row.overDormantNode.toFixed(2)}×`;
  const agree = row.greedyAgreement === undefined ? "" : `${row.greedyAgreement}/${row.tokens}`;
  const host = row.kernels ? `${row.host}, ${row.kernels}` : row.host;
  console.log(`| ${row.model} | ${row.runtime} | ${host} | ${row.weights} | ${row.threads} | ${row.tokens} | ${row.tokensPerSecond.toFixed(1)} | ${row.bestTokensPerSecond.toFixed(1)} | ${ratio} | ${speedup} | ${agree} |`);
}
for (const note of notes) console.log(`note: ${note}`);
for (const error of browser.pageErrors) console.log(`page error: ${error}`);

const out = path.join(benchDir, "out");
fs.mkdirSync(out, { recursive: true });
const json = { date: new Date().toISOString(), prompt, runs, machine, versions, nativeSystemInfo: native.systemInfo, rows, notes };
fs.writeFileSync(path.join(out, "peers.json"), `${JSON.stringify(json, null, 2)}\n`);
console.log(`wrote ${path.relative(process.cwd(), path.join(out, "peers.json"))}`);
