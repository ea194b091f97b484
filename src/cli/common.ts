/** Option specs and helpers that several `dormant` commands share: model loading, sampling flags, output and option checks. */

import { stat } from "node:fs/promises";
import { dirname, resolve as resolvePath } from "node:path";
import { OptionError } from "../errors.js";
import type { OptionSpecs, ParsedArgs } from "../args.js";
import { readModelFile } from "../formats/index.js";
import { readFileBytes } from "../io.js";
import { resolveModel } from "../catalog.js";
import { MAX_THREADS, type LoadOptions, type LoadProgress, type Precision } from "../model.js";
import { readSparsity } from "../sparsity/format.js";
import { createProgressBar } from "../progress.js";
import type { SamplerOptions } from "../sampler.js";

export const DEFAULT_MODEL = "stories260K";

export const modeChoices = ["dense", "oracle", "predicted"] as const;

export const modelOptions: OptionSpecs = {
  model: { kind: "string", help: `model name from models/catalog.json or a path to a .gguf or llama2.c .bin file (default ${DEFAULT_MODEL})` },
  tokenizer: { kind: "string", help: "llama2.c tokenizer.bin for a .bin checkpoint" },
  catalog: { kind: "string", help: "model catalog JSON file (default models/catalog.json)" },
  precision: { kind: "string", choices: ["int8", "f32"], help: "weight precision in wasm memory: int8 (default) or f32" },
  context: { kind: "integer", help: "positions the KV cache has room for (default: the model's context length, at most 4096)" },
  kernels: { kind: "string", choices: ["auto", "exact", "relaxed"], help: "wasm module: auto (default: relaxed SIMD where it works), exact (the simd128 module) or relaxed" },
  mode: { kind: "string", choices: modeChoices, help: "FFN mode of a file with sparsity data: dense, oracle or predicted (default predicted)" },
  threads: { kind: "integer", help: `threads that run the forward pass, 1 to ${MAX_THREADS} (default 1); results are identical for any count` },
  json: { kind: "boolean", help: "print one JSON object on stdout" },
  quiet: { kind: "boolean", help: "print no progress bars or summary line" },
  help: { kind: "boolean", help: "print this help" },
};

export const stdout = process.stdout;
export const stderr = process.stderr;

export function progressReporter(args: ParsedArgs): ((progress: LoadProgress) => void) | undefined {
  if (args.options.quiet || args.options.json) return undefined;
  const bars = new Map<string, ReturnType<typeof createProgressBar>>();
  return (progress) => {
    if (progress.phase !== "download") return;
    const key = progress.file ?? "download";
    let bar = bars.get(key);
    if (!bar) {
      bar = createProgressBar(stderr, `download ${key}`);
      bars.set(key, bar);
    }
    bar.update(progress.loaded, progress.total);
    if (progress.total !== undefined && progress.loaded >= progress.total) {
      bar.done();
      bars.delete(key);
    }
  };
}

export function loadOptions(args: ParsedArgs): LoadOptions {
  const options = args.options;
  return {
    precision: (options.precision as Precision | undefined) ?? "int8",
    tokenizer: options.tokenizer as string | undefined,
    contextLength: options.context as number | undefined,
    kernels: (options.kernels as LoadOptions["kernels"]) ?? "auto",
    threads: options.threads as number | undefined,
    catalog: options.catalog as string | undefined,
    onProgress: progressReporter(args),
  };
}

/** Maps the sampling and length flags shared by generate and chat to generation options. */
export function samplingOptions(args: ParsedArgs): SamplerOptions & { maxTokens?: number } {
  const { options } = args;
  return {
    maxTokens: options["max-tokens"] as number | undefined,
    temperature: options.temperature as number | undefined,
    topP: options["top-p"] as number | undefined,
    topK: options["top-k"] as number | undefined,
    minP: options["min-p"] as number | undefined,
    repetitionPenalty: options["repeat-penalty"] as number | undefined,
    seed: options.seed as number | undefined,
  };
}

export function modelName(args: ParsedArgs): string {
  return (args.options.model as string | undefined) ?? DEFAULT_MODEL;
}

export function writeJson(value: unknown): void {
  stdout.write(`${JSON.stringify(value)}\n`);
}

/** Rejects an --out path that names the input file, which the command would replace. */
export function rejectOverwrite(command: string, out: string, input: string): void {
  if (resolvePath(out) === resolvePath(input)) {
    throw new OptionError(`dormant ${command}: option --out is ${out}, the input file itself, expected a new path (the command would replace its own input)`, {
      source: "option out", field: "out", actual: out, expected: "a path other than the input",
    });
  }
}

export function requireOption(command: string, value: string | undefined, name: string, expected: string): string {
  if (value === undefined) {
    throw new OptionError(`dormant ${command}: option --${name} is missing, expected ${expected}`, {
      source: `option ${name}`, field: name, actual: "missing", expected,
    });
  }
  return value;
}

export async function readModelArgument(args: ParsedArgs, name = modelName(args)) {
  const resolved = await resolveModel(name, {
    catalog: args.options.catalog as string | undefined, onProgress: progressReporter(args),
  });
  const tokenizerPath = (args.options.tokenizer as string | undefined) ?? resolved.tokenizerPath;
  const tokenizer = tokenizerPath ? { bytes: await readFileBytes(tokenizerPath), source: tokenizerPath } : undefined;
  const file = readModelFile(await readFileBytes(resolved.modelPath), resolved.modelPath, tokenizer);
  file.sparsity ??= readSparsity(file);
  return file;
}

export function decodeText(bytes: Uint8Array): string {
  return new TextDecoder("utf-8", { fatal: false }).decode(bytes);
}

export function commaList(command: string, name: string, value: string | undefined, fallback: string[]): string[] {
  if (value === undefined) return fallback;
  const items = value.split(",").map((item) => item.trim()).filter((item) => item !== "");
  if (items.length === 0) {
    throw new OptionError(`dormant ${command}: option --${name} is "${value}", expected a comma-separated list`, {
      source: `option ${name}`, field: name, actual: value, expected: "a comma-separated list",
    });
  }
  return items;
}

/** Throws an OptionError naming the flag when the folder of an output file does not exist. */
export async function checkOutputFolder(command: string, name: string, path: string): Promise<void> {
  const folder = dirname(resolvePath(path));
  const found = await stat(folder).then((entry) => entry.isDirectory(), () => false);
  if (!found) {
    throw new OptionError(`dormant ${command}: option --${name} is "${path}", but its folder ${folder} does not exist; expected a file in an existing folder`, {
      source: `option ${name}`, field: name, actual: path, expected: "a file in an existing folder",
    });
  }
}
