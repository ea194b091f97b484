#!/usr/bin/env node
// Assembles the loadable extension folder: the extension's sources, dormant's browser bundle with
// the chunks it imports, both wasm modules, and one GGUF model.
//
//   node examples/extension/build.mjs --model PATH.gguf [--out DIR]
//
// DIR defaults to examples/extension/dist. Layout of the result:
//   manifest.json background.js offscreen.html offscreen.js worker.js content.js
//   dormant/dist/dormant.browser.js, dormant/dist/chunks/*.js   (the bundle finds ../build/*.wasm)
//   dormant/build/dormant.wasm, dormant/build/dormant-relaxed.wasm
//   model/<name>.gguf, model/model.json                         ({ "file", "bytes" })
// Run `npm run build` in the repository first, so that dist/ and build/ exist.

import { copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readSync, closeSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const exampleDirectory = dirname(fileURLToPath(import.meta.url));
const repo = resolve(exampleDirectory, "../..");
const sources = ["manifest.json", "background.js", "offscreen.html", "offscreen.js", "worker.js", "content.js"];
const wasmModules = ["dormant.wasm", "dormant-relaxed.wasm"];
const usage = "usage: node examples/extension/build.mjs --model PATH.gguf [--out DIR]";

/** Prints one error line and exits: code 2 for bad usage, 1 for missing or invalid files. */
function fail(message, code = 1) {
  console.error(`build.mjs: ${message}`);
  process.exit(code);
}

function readOptions() {
  try {
    const { values } = parseArgs({ options: { model: { type: "string" }, out: { type: "string" } } });
    if (values.model === undefined) fail(`option --model is missing, expected a GGUF file path\n${usage}`, 2);
    return { model: resolve(values.model), out: resolve(values.out ?? join(exampleDirectory, "dist")) };
  } catch (error) {
    return fail(`${error.message}\n${usage}`, 2);
  }
}

/** Checks that `path` is a readable GGUF file by its magic. */
function checkModel(path) {
  if (!existsSync(path) || !statSync(path).isFile()) fail(`--model ${path}: file not found`);
  const magic = Buffer.alloc(4);
  const fd = openSync(path, "r");
  const length = readSync(fd, magic, 0, 4, 0);
  closeSync(fd);
  const text = magic.subarray(0, length).toString("latin1");
  if (text !== "GGUF") fail(`--model ${path}: magic is ${JSON.stringify(text)}, expected "GGUF" (convert llama2.c checkpoints with dormant convert)`);
}

/** Returns dist/dormant.browser.js and every chunk it imports, statically or dynamically, relative to dist/. */
function bundleFiles(distDirectory) {
  const files = ["dormant.browser.js"];
  for (let i = 0; i < files.length; i++) {
    const folder = dirname(files[i]);
    const text = readFileSync(join(distDirectory, files[i]), "utf8");
    for (const [, specifier] of text.matchAll(/["']\.\/([\w./-]+\.js)["']/g)) {
      const file = join(folder, specifier);
      if (!files.includes(file)) files.push(file);
    }
  }
  return files;
}

/** Empties `out`. Rejects a non-empty folder that contains no earlier build. */
function prepareOutput(out) {
  if (existsSync(out) && readdirSync(out).length > 0) {
    if (!existsSync(join(out, "manifest.json"))) fail(`--out ${out}: folder is not empty and contains no manifest.json, expected an empty folder or an earlier build`);
    rmSync(out, { recursive: true });
  }
  mkdirSync(out, { recursive: true });
}

function copy(from, to) {
  if (!existsSync(from)) fail(`${from}: file not found (run npm run build in ${repo} first)`);
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
}

const { model, out } = readOptions();
checkModel(model);
const distDirectory = join(repo, "dist");
if (!existsSync(join(distDirectory, "dormant.browser.js"))) fail(`${join(distDirectory, "dormant.browser.js")}: file not found (run npm run build in ${repo} first)`);
prepareOutput(out);

for (const file of sources) copy(join(exampleDirectory, file), join(out, file));
const bundle = bundleFiles(distDirectory);
for (const file of bundle) copy(join(distDirectory, file), join(out, "dormant", "dist", file));
for (const file of wasmModules) copy(join(repo, "build", file), join(out, "dormant", "build", file));
const modelFile = basename(model);
copy(model, join(out, "model", modelFile));
const modelBytes = statSync(model).size;
writeFileSync(join(out, "model", "model.json"), `${JSON.stringify({ file: modelFile, bytes: modelBytes })}\n`);

console.log(`extension folder ${out}`);
console.log(`  ${sources.length} extension files, ${bundle.length} bundle files, ${wasmModules.length} wasm modules, model ${modelFile} (${(modelBytes / 1024).toFixed(1)} KiB)`);
console.log("  load it at chrome://extensions with Developer mode on: Load unpacked");
