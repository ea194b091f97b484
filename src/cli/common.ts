/** Option specs and helpers that several `dormant` commands share: model loading, sampling flags, output and option checks. */

import { constants as fsConstants } from "node:fs";
import { access, realpath, stat } from "node:fs/promises";
import { basename, dirname, join as joinPath, resolve as resolvePath } from "node:path";
import { ModelSourceError, OptionError } from "../errors.js";
import type { OptionSpecs, ParsedArgs } from "../args.js";
import { hasGGUFMagic } from "../gguf.js";
import { readModelFile } from "../formats/index.js";
import { readFileBytes } from "../io.js";
import { isPathLike, loadCatalog, modelSearchDirectories, resolveModel, type Catalog, type ResolvedModel } from "../catalog.js";
import { MAX_THREADS, createModel, loadModel, type LoadOptions, type LoadProgress, type Model, type Precision, type SparsityMode } from "../model.js";
import { readSparsity } from "../sparsity/format.js";
import { createProgressBar } from "../progress.js";
import type { SamplerOptions } from "../sampler.js";
import type { ModelFile } from "../types.js";

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

export function requireOption(command: string, value: string | undefined, name: string, expected: string): string {
  if (value === undefined) {
    throw new OptionError(`dormant ${command}: option --${name} is missing, expected ${expected}`, {
      source: `option ${name}`, field: name, actual: "missing", expected,
    });
  }
  return value;
}

/** Model argument to look up: its name, the option that gave it and the values it may take. */
export interface ModelArgument {
  /** Catalog name or path; default --model or stories260K. */
  name?: string;
  /** Option that gave the name, without dashes. Default "model". */
  option?: string;
  /** Name of the argument in messages. Default "option --<option>". */
  subject?: string;
  /** Other values the option takes, listed first when the name is not found. */
  builtins?: readonly string[];
  /** Whether a path is allowed besides catalog names. Default true. */
  allowPath?: boolean;
}

/**
 * Finds the files of a model argument (a catalog name or a path). A name the catalog lacks is
 * rejected with the list of valid values. A failed lookup of a catalog name also names each
 * DORMANT_MODELS folder that does not exist, because a typo there leads to a download instead.
 */
export async function resolveModelArgument(command: string, args: ParsedArgs, argument: ModelArgument = {}): Promise<ResolvedModel> {
  const name = argument.name ?? modelName(args);
  const option = argument.option ?? "model";
  const subject = argument.subject ?? `option --${option}`;
  const allowPath = argument.allowPath ?? true;
  let catalog: Catalog | string | undefined = args.options.catalog as string | undefined;
  if (!isPathLike(name)) {
    catalog = await loadCatalog(catalog);
    if (!catalog.models.has(name)) {
      const known = [...(argument.builtins ?? []), ...catalog.models.keys()];
      const path = allowPath ? "a path to a .gguf or .bin file" : "";
      let expected = [known.length === 0 ? "" : `one of: ${known.join(", ")}`, path].filter((part) => part !== "").join(", or ");
      if (catalog.models.size === 0) expected = `${expected || "a model name"} (the catalog lists no models; add one or pass another --catalog)`;
      throw new ModelSourceError(`dormant ${command}: ${subject} is "${name}", not a model in the catalog (${catalog.source}); expected ${expected}`, {
        source: subject, field: option, actual: name, expected,
      });
    }
  } else if (!allowPath) {
    throw new OptionError(`dormant ${command}: ${subject} is "${name}", a path, expected a model name from the catalog`, {
      source: subject, field: option, actual: name, expected: "a catalog model name",
    });
  }
  try {
    return await resolveModel(name, { catalog, onProgress: progressReporter(args), where: command });
  } catch (error) {
    if (!(error instanceof ModelSourceError) || isPathLike(name)) throw error;
    const missing = await missingModelFolders();
    if (missing.length === 0) throw error;
    const note = missing.map((folder) => `DORMANT_MODELS folder ${folder} does not exist`).join("; ");
    throw new ModelSourceError(`${error.message} (${note})`, {
      source: error.source, field: error.field, actual: error.actual, expected: error.expected,
    });
  }
}

/** Returns the folders listed in DORMANT_MODELS that do not exist. */
async function missingModelFolders(): Promise<string[]> {
  const folders = modelSearchDirectories();
  const found = await Promise.all(folders.map((folder) => stat(folder).then((entry) => entry.isDirectory(), () => false)));
  return folders.filter((_, i) => !found[i]);
}

/** Options of loadModel that the model flags set, with the tokenizer of a resolved catalog model. */
export function resolvedLoadOptions(args: ParsedArgs, resolved: ResolvedModel): LoadOptions {
  const options = loadOptions(args);
  // A file with sparsity data runs f32 only without it, so --mode dense drops that data.
  const f32Dense = options.precision === "f32" && args.options.mode === "dense";
  return { ...options, tokenizer: options.tokenizer ?? resolved.tokenizerPath, ...(f32Dense ? { sparsity: null } : {}) };
}

/** Loads a resolved model with the model flags; see createModelArgument for its errors. */
export async function loadModelArgument(command: string, args: ParsedArgs, resolved: ResolvedModel, overrides: LoadOptions = {}): Promise<Model> {
  return withPrecisionHint(command, () => loadModel(resolved.modelPath, { ...resolvedLoadOptions(args, resolved), ...overrides }));
}

/**
 * Creates a model from a file read by readModelArgument. The library's hint for f32 on a file
 * with sparsity data names a library option, so that error is replaced by one naming CLI flags.
 */
export async function createModelArgument(command: string, file: ModelFile, options: LoadOptions): Promise<Model> {
  return withPrecisionHint(command, () => createModel(file, options));
}

async function withPrecisionHint(command: string, load: () => Promise<Model>): Promise<Model> {
  try {
    return await load();
  } catch (error) {
    if (error instanceof OptionError && error.field === "precision" && error.actual === "\"f32\"") {
      const expected = "int8 for a file with sparsity data (its sparse FFN runs int8 only)";
      throw new OptionError(`dormant ${command}: option --precision is "f32", expected ${expected}; use --precision int8, or add --mode dense to run the file dense in f32`, {
        source: "option precision", field: "precision", actual: "f32", expected,
      });
    }
    throw error;
  }
}

/** Joins words as "a, b or c". */
export function listWords(words: readonly string[]): string {
  return words.length <= 1 ? words.join("") : `${words.slice(0, -1).join(", ")} or ${words[words.length - 1]}`;
}

/**
 * Sets the FFN mode given by `--<option>`, with errors that name that option. `denseValues`
 * lists the values of that option that work for a file without sparsity data.
 */
export function setModeOption(command: string, model: Model, mode: SparsityMode, option = "mode", denseValues: readonly string[] = ["dense"]): void {
  const fail = (expected: string): never => {
    throw new OptionError(`dormant ${command}: option --${option} is "${mode}", expected ${expected}`, {
      source: `option ${option}`, field: option, actual: mode, expected,
    });
  };
  if (mode !== "dense" && !model.sparse) fail(`${listWords(denseValues)} for a model without sparsity data (run dormant calibrate first)`);
  if (mode === "predicted" && !model.hasPredictor) fail(`${listWords([...denseValues, "oracle"])} for a model without a predictor`);
  model.setMode(mode);
}

/**
 * Reads a resolved model file with its sparsity data and the --tokenizer file. With
 * `tokenizerForCheckpointOnly`, a GGUF ignores --tokenizer because it carries its own
 * vocabulary, so one --tokenizer can serve a llama2.c checkpoint given beside a GGUF.
 */
export async function readModelArgument(args: ParsedArgs, resolved: ResolvedModel, tokenizerForCheckpointOnly = false) {
  const bytes = await readFileBytes(resolved.modelPath);
  let tokenizerPath = (args.options.tokenizer as string | undefined) ?? resolved.tokenizerPath;
  if (tokenizerForCheckpointOnly && hasGGUFMagic(bytes)) tokenizerPath = undefined;
  const tokenizer = tokenizerPath ? { bytes: await readFileBytes(tokenizerPath), source: tokenizerPath } : undefined;
  const file = readModelFile(bytes, resolved.modelPath, tokenizer);
  file.sparsity ??= readSparsity(file);
  return file;
}

export function decodeText(bytes: Uint8Array): string {
  return new TextDecoder("utf-8", { fatal: false }).decode(bytes);
}

/** Splits a comma-separated option value. An empty item, as in "1,,2" or "a,", is an error. */
export function commaList(command: string, name: string, value: string | undefined, fallback: string[]): string[] {
  if (value === undefined) return fallback;
  const items = value.split(",").map((item) => item.trim());
  if (items.some((item) => item === "")) {
    const expected = "a comma-separated list with no empty items";
    throw new OptionError(`dormant ${command}: option --${name} is "${value}", expected ${expected}`, {
      source: `option ${name}`, field: name, actual: value, expected,
    });
  }
  return items;
}

/** Output option: its path, its kind and the input files it must never replace. */
export interface OutputPath {
  /** Option that gave the path, without dashes. */
  option: string;
  path: string;
  /** "file" (default) for a file written whole, "folder" for a folder that files are written into. */
  kind?: "file" | "folder";
  /** Files the command reads; the output must not be any of them, under any spelling or link. */
  inputs?: (string | undefined)[];
}

/**
 * Checks an output path before the command does any work: the target must be of the right kind
 * and writable, its folder must exist, and it must not be one of the inputs. Replacing an
 * ordinary writable file stays allowed, so that users can run a command again.
 */
export async function checkOutputPath(command: string, output: OutputPath): Promise<void> {
  const { option, path } = output;
  const kind = output.kind ?? "file";
  const fail = (problem: string, expected: string): never => {
    throw new OptionError(`dormant ${command}: option --${option} is "${path}", ${problem}; expected ${expected}`, {
      source: `option ${option}`, field: option, actual: path, expected,
    });
  };
  const target = await stat(path).catch(() => undefined);
  if (target?.isDirectory() && kind === "file") fail("an existing folder", "the path of a file to write");
  if (target && !target.isDirectory() && kind === "folder") fail("an existing file", "a folder, or a new path to create one at");

  const folder = dirname(resolvePath(path));
  const folderFound = await stat(folder).then((entry) => entry.isDirectory(), () => false);
  if (!folderFound) fail(`but its folder ${folder} does not exist`, `a ${kind} in an existing folder`);

  // Root passes the access check on any file, so a file without write bits counts as read-only too.
  // NOTE: for --svg-dir only the folder itself is checked, not the files already inside it.
  if (target) {
    const writable = await access(path, fsConstants.W_OK).then(() => true, () => false);
    if (!writable || (target.mode & 0o222) === 0) {
      fail(`a read-only ${kind}`, `a writable ${kind} (change its permissions or choose another path)`);
    }
  }

  const real = target ? await realpath(path) : joinPath(await realpath(folder), basename(path));
  for (const input of output.inputs ?? []) {
    if (input === undefined) continue;
    const inputReal = await realpath(input).catch(() => resolvePath(input));
    if (inputReal === real) {
      fail(`which is the input file ${input}`, "a path other than the input (the command would replace its own input)");
    }
  }
}
