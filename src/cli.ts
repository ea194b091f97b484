/**
 * The `dormant` command. The only module that prints: generated text on stdout, one
 * summary line and progress bars on stderr. Exit codes: 0 success, 1 runtime failure,
 * 2 bad usage (an OptionError).
 */

import { DormantError, OptionError } from "./errors.js";
import { formatOptions, parseArgs, type OptionSpecs, type ParsedArgs } from "./args.js";
import { convertToGGUF } from "./convert.js";
import { evaluate } from "./eval/perplexity.js";
import { readModelFile } from "./formats/index.js";
import { GGMLType } from "./types.js";
import { readFileBytes, writeFileAtomic } from "./io.js";
import { resolveModel } from "./catalog.js";
import { createModel, loadModel, type LoadOptions, type LoadProgress, type Model, type Precision, type SparsityMode } from "./model.js";
import { calibrate } from "./sparsity/calibrate.js";
import { readSparsity, writeSparsityGGUF } from "./sparsity/format.js";
import { createProgressBar } from "./progress.js";
import type { GenerationSummary } from "./generate.js";

const DEFAULT_MODEL = "stories260K";

const modelOptions: OptionSpecs = {
  model: { kind: "string", help: `model name from models/catalog.json or a path to a .gguf or llama2.c .bin file (default ${DEFAULT_MODEL})` },
  tokenizer: { kind: "string", help: "llama2.c tokenizer.bin for a .bin checkpoint" },
  catalog: { kind: "string", help: "model catalog JSON file (default models/catalog.json)" },
  precision: { kind: "string", choices: ["int8", "f32"], help: "weight precision in wasm memory: int8 (default) or f32" },
  context: { kind: "integer", help: "positions the KV cache holds (default: the model's context length, at most 4096)" },
  kernels: { kind: "string", choices: ["auto", "exact", "relaxed"], help: "wasm module: auto (default), exact simd128, or relaxed SIMD" },
  json: { kind: "boolean", help: "print one JSON object on stdout" },
  quiet: { kind: "boolean", help: "print no progress bars or summary line" },
  help: { kind: "boolean", help: "print this help" },
};

const generateOptions: OptionSpecs = {
  ...modelOptions,
  prompt: { kind: "string", help: "prompt text (or give it as the first word after the options)" },
  steps: { kind: "integer", help: "positions to run, prompt included, as llama2.c counts them" },
  "max-tokens": { kind: "integer", help: "tokens to generate after the prompt" },
  temperature: { kind: "number", help: "sampling temperature, 0 = greedy (default 0.8)" },
  "top-p": { kind: "number", help: "nucleus sampling mass in (0, 1] (default 0.9)" },
  "top-k": { kind: "integer", help: "keep only the k most likely tokens, 0 = off (default 0)" },
  "min-p": { kind: "number", help: "drop tokens below min-p times the top probability, 0 = off (default 0)" },
  "repeat-penalty": { kind: "number", help: "penalty for tokens in the last 64, 1 = off (default 1)" },
  seed: { kind: "integer", help: "random seed for sampling (default: time)" },
};

const modeChoices = ["dense", "oracle", "predicted"] as const;

const evalOptions: OptionSpecs = {
  ...modelOptions,
  perplexity: { kind: "boolean", help: "compute perplexity (always computed; kept for clarity in scripts)" },
  text: { kind: "string", help: "UTF-8 text file; documents separated by <|endoftext|> lines" },
  "max-tokens": { kind: "integer", help: "score at most this many tokens" },
  mode: { kind: "string", choices: modeChoices, help: "FFN mode of a file with sparsity data (default predicted)" },
  against: {
    kind: "string", choices: ["int8", "f32", ...modeChoices],
    help: "reference run: another precision (dense) or another FFN mode; reports agreement, mean KL and per-layer recall",
  },
};

const calibrateOptions: OptionSpecs = {
  ...modelOptions,
  text: { kind: "string", help: "calibration text, UTF-8; documents separated by <|endoftext|> lines" },
  sparsity: { kind: "number", help: "target fraction S of dormant neurons per layer, in [0, 0.99]" },
  rank: { kind: "integer", help: "predictor rank (default: about 8% of the dense FFN cost)" },
  recall: { kind: "number", help: "activation-mass recall the candidate cutoff must reach, in (0, 1] (default 0.99)" },
  "max-tokens": { kind: "integer", help: "run at most this many calibration tokens" },
  type: { kind: "string", choices: ["f32", "q8_0"], help: "tensor type of the written file (default: as the source)" },
  out: { kind: "string", help: "output .gguf path" },
};

const convertOptions: OptionSpecs = {
  model: { kind: "string", help: "llama2.c .bin checkpoint or GGUF file to convert" },
  tokenizer: { kind: "string", help: "llama2.c tokenizer.bin for a .bin checkpoint" },
  catalog: modelOptions.catalog,
  type: { kind: "string", choices: ["f32", "q8_0"], help: "tensor type: f32, or q8_0 (rows that are not multiples of 32 stay f32)" },
  out: { kind: "string", help: "output .gguf path" },
  json: { kind: "boolean", help: "print one JSON object on stdout" },
  quiet: { kind: "boolean", help: "print no summary line" },
  help: { kind: "boolean", help: "print this help" },
};

const infoOptions: OptionSpecs = {
  model: modelOptions.model,
  tokenizer: modelOptions.tokenizer,
  catalog: modelOptions.catalog,
  json: modelOptions.json,
  quiet: modelOptions.quiet,
  help: modelOptions.help,
};

const tokenizeOptions: OptionSpecs = {
  model: modelOptions.model,
  tokenizer: modelOptions.tokenizer,
  catalog: modelOptions.catalog,
  bos: { kind: "boolean", help: "prepend BOS" },
  pieces: { kind: "boolean", help: "print the piece of each token as well" },
  json: modelOptions.json,
  help: modelOptions.help,
};

const pullOptions: OptionSpecs = {
  catalog: modelOptions.catalog,
  json: modelOptions.json,
  quiet: modelOptions.quiet,
  help: modelOptions.help,
};

const commands: Record<string, { summary: string; specs: OptionSpecs; run: (args: ParsedArgs) => Promise<void> }> = {
  generate: { summary: "write text that continues a prompt", specs: generateOptions, run: runGenerate },
  eval: { summary: "perplexity of a model on a text file, optionally against a reference run", specs: evalOptions, run: runEval },
  calibrate: { summary: "fit sparsity thresholds and a predictor, write them into a GGUF", specs: calibrateOptions, run: runCalibrate },
  convert: { summary: "convert a llama2.c checkpoint or GGUF to GGUF (f32 or q8_0)", specs: convertOptions, run: runConvert },
  info: { summary: "print a model's configuration and tensors", specs: infoOptions, run: runInfo },
  tokenize: { summary: "print the token ids of a text", specs: tokenizeOptions, run: runTokenize },
  pull: { summary: "download a catalog model into the cache, checking its sha256", specs: pullOptions, run: runPull },
};

const stdout = process.stdout;
const stderr = process.stderr;

function mainHelp(): string {
  const lines = Object.entries(commands).map(([name, command]) => `  ${name.padEnd(10)} ${command.summary}`);
  return `usage: dormant <command> [options]\n\ncommands:\n${lines.join("\n")}\n\nRun dormant <command> --help for its options.\n`;
}

function progressReporter(args: ParsedArgs): ((progress: LoadProgress) => void) | undefined {
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

function loadOptions(args: ParsedArgs): LoadOptions {
  const options = args.options;
  return {
    precision: (options.precision as Precision | undefined) ?? "int8",
    tokenizer: options.tokenizer as string | undefined,
    contextLength: options.context as number | undefined,
    kernels: (options.kernels as LoadOptions["kernels"]) ?? "auto",
    catalog: options.catalog as string | undefined,
    onProgress: progressReporter(args),
  };
}

function modelName(args: ParsedArgs): string {
  return (args.options.model as string | undefined) ?? DEFAULT_MODEL;
}

function writeJson(value: unknown): void {
  stdout.write(`${JSON.stringify(value)}\n`);
}

async function runGenerate(args: ParsedArgs): Promise<void> {
  const { options, positionals } = args;
  if (options.prompt !== undefined && positionals.length > 0) {
    throw new OptionError(`dormant generate: the prompt is given twice (--prompt and "${positionals[0]}"), expected one`, {
      source: "option prompt", field: "prompt", actual: "two prompts", expected: "one",
    });
  }
  if (positionals.length > 1) {
    throw new OptionError(`dormant generate: found ${positionals.length} prompt words, expected one argument (quote the prompt)`, {
      source: "arguments", field: "prompt", actual: `${positionals.length} words`, expected: "one",
    });
  }
  const prompt = (options.prompt as string | undefined) ?? positionals[0] ?? "";
  const model = await loadModel(modelName(args), loadOptions(args));
  const iterator = model.generate(prompt, {
    steps: options.steps as number | undefined,
    maxTokens: options["max-tokens"] as number | undefined,
    temperature: options.temperature as number | undefined,
    topP: options["top-p"] as number | undefined,
    topK: options["top-k"] as number | undefined,
    minP: options["min-p"] as number | undefined,
    repetitionPenalty: options["repeat-penalty"] as number | undefined,
    seed: options.seed as number | undefined,
  });

  let text = prompt;
  if (!options.json) stdout.write(prompt);
  let summary: GenerationSummary;
  for (;;) {
    const next = await iterator.next();
    if (next.done) {
      summary = next.value;
      break;
    }
    text += next.value.text;
    if (!options.json) stdout.write(next.value.text);
  }

  if (options.json) {
    writeJson({ text, tokens: summary.tokens, tokens_per_second: summary.tokensPerSecond });
  } else {
    stdout.write("\n");
  }
  if (!options.quiet) {
    stderr.write(
      `prompt ${summary.promptTokens} tokens, generated ${summary.generatedTokens} tokens, ` +
      `${summary.tokensPerSecond.toFixed(1)} tokens/s, precision ${model.precision}, kernels ${model.kernels}\n`,
    );
  }
  model.dispose();
}

async function runEval(args: ParsedArgs): Promise<void> {
  const { options } = args;
  const textPath = requireOption("eval", options.text as string | undefined, "text", "a path to a UTF-8 text file");
  const text = new TextDecoder("utf-8", { fatal: false }).decode(await readFileBytes(textPath));
  const load = loadOptions(args);
  const model = await loadModel(modelName(args), load);
  if (options.mode) model.setMode(options.mode as SparsityMode);

  const against = options.against as Precision | SparsityMode | undefined;
  let reference: Model | undefined;
  if (against === "int8" || against === "f32") {
    reference = await loadModel(modelName(args), { ...load, precision: against, sparsity: null, onProgress: undefined });
  } else if (against) {
    reference = await loadModel(modelName(args), { ...load, onProgress: undefined });
    reference.setMode(against);
  }

  const bar = options.quiet || options.json ? undefined : createProgressBar(stderr, "eval", { unit: "tokens" });
  const result = await evaluate(model, text, {
    reference,
    maxTokens: options["max-tokens"] as number | undefined,
    onProgress: bar ? (progress) => bar.update(progress.loaded, progress.total) : undefined,
  }, textPath);
  bar?.done();
  const layers = model.layerStats();
  const keptFraction = layers.reduce((sum, layer) => sum + layer.keptFraction, 0) / layers.length;

  if (options.json) {
    const json: Record<string, unknown> = { perplexity: result.perplexity, tokens: result.tokens, precision: model.precision };
    if (model.sparse) {
      json.mode = model.mode;
      json.kept_fraction = keptFraction;
      json.layers = layers.map((layer) => ({
        kept_fraction: layer.keptFraction, candidate_fraction: layer.candidateFraction,
        ffn_bytes_per_token: layer.ffnBytesPerToken,
      }));
    }
    if (reference) {
      json.against = against;
      json.against_perplexity = result.referencePerplexity;
      json.top1_agreement = result.top1Agreement;
      json.mean_kl = result.meanKl;
    }
    writeJson(json);
    return;
  }
  stdout.write(`perplexity ${result.perplexity.toFixed(4)} over ${result.tokens} tokens (precision ${model.precision}, mode ${model.mode}, kept ${(keptFraction * 100).toFixed(1)}%)\n`);
  if (reference) {
    stdout.write(`perplexity ${result.referencePerplexity!.toFixed(4)} (${against}), ` +
      `top-1 agreement ${(result.top1Agreement! * 100).toFixed(2)}%, mean KL ${result.meanKl!.toExponential(3)} nats\n`);
  }
  if (model.sparse) {
    for (const [l, layer] of layers.entries()) {
      stdout.write(`  layer ${l}: kept ${(layer.keptFraction * 100).toFixed(1)}%, candidates ${(layer.candidateFraction * 100).toFixed(1)}%, ` +
        `FFN ${(layer.ffnBytesPerToken / 1024).toFixed(1)} KiB/token\n`);
    }
  }
}

function requireOption(command: string, value: string | undefined, name: string, expected: string): string {
  if (value === undefined) {
    throw new OptionError(`dormant ${command}: option --${name} is missing, expected ${expected}`, {
      source: `option ${name}`, field: name, actual: "missing", expected,
    });
  }
  return value;
}

async function runCalibrate(args: ParsedArgs): Promise<void> {
  const { options } = args;
  const textPath = requireOption("calibrate", options.text as string | undefined, "text", "a path to a UTF-8 text file");
  const out = requireOption("calibrate", options.out as string | undefined, "out", "the path of the .gguf file to write");
  const sparsity = options.sparsity as number | undefined;
  if (sparsity === undefined) requireOption("calibrate", undefined, "sparsity", "a number in [0, 0.99]");
  const text = new TextDecoder("utf-8", { fatal: false }).decode(await readFileBytes(textPath));
  const file = await readModelArgument(args);
  const model = await createModel(file, { ...loadOptions(args), sparsity: null });

  const bars = new Map<string, ReturnType<typeof createProgressBar>>();
  const data = await calibrate(model, file, text, {
    sparsity: sparsity!,
    rank: options.rank as number | undefined,
    recall: options.recall as number | undefined,
    maxTokens: options["max-tokens"] as number | undefined,
    source: textPath,
    onProgress: options.quiet || options.json ? undefined : (progress) => {
      let bar = bars.get(progress.phase);
      if (!bar) {
        bar = progress.phase === "collect"
          ? createProgressBar(stderr, "calibrate: run", { unit: "tokens" })
          : createProgressBar(stderr, "calibrate: fit", { unit: "layers" });
        bars.set(progress.phase, bar);
      }
      bar.update(progress.loaded, progress.total);
      if (progress.loaded >= progress.total) bar.done();
    },
  });
  const bytes = writeSparsityGGUF(file, data, { type: options.type as "f32" | "q8_0" | undefined });
  await writeFileAtomic(out, bytes);
  model.dispose();

  if (options.json) {
    writeJson({
      out, sparsity: data.sparsity, rank: data.rank, recall: data.recall,
      thresholds: Array.from(data.thresholds), cutoffs: Array.from(data.cutoffs),
    });
  } else if (!options.quiet) {
    stderr.write(`wrote ${out}: sparsity ${data.sparsity}, rank ${data.rank}, recall ${data.recall}, ` +
      `thresholds ${Array.from(data.thresholds, (value) => value.toPrecision(3)).join(" ")}\n`);
  }
}

async function readModelArgument(args: ParsedArgs) {
  const resolved = await resolveModel(modelName(args), {
    catalog: args.options.catalog as string | undefined, onProgress: progressReporter(args),
  });
  const tokenizerPath = (args.options.tokenizer as string | undefined) ?? resolved.tokenizerPath;
  const tokenizer = tokenizerPath ? { bytes: await readFileBytes(tokenizerPath), source: tokenizerPath } : undefined;
  const file = readModelFile(await readFileBytes(resolved.modelPath), resolved.modelPath, tokenizer);
  file.sparsity ??= readSparsity(file);
  return file;
}

async function runConvert(args: ParsedArgs): Promise<void> {
  const { options } = args;
  const out = options.out as string | undefined;
  if (!out) {
    throw new OptionError("dormant convert: option --out is missing, expected the path of the .gguf file to write", {
      source: "option out", field: "out", actual: "missing", expected: "a file path",
    });
  }
  const type = (options.type as "f32" | "q8_0" | undefined) ?? "f32";
  const file = await readModelArgument(args);
  const bytes = convertToGGUF(file, { type });
  await writeFileAtomic(out, bytes);
  if (options.json) {
    writeJson({ out, type, bytes: bytes.length, tensors: file.tensors.size });
  } else if (!options.quiet) {
    stderr.write(`wrote ${out}: ${bytes.length} bytes, ${file.tensors.size} tensors, type ${type}\n`);
  }
}

async function runInfo(args: ParsedArgs): Promise<void> {
  const file = await readModelArgument(args);
  const tensors = [...file.tensors.values()].map((tensor) => ({
    name: tensor.name, dims: tensor.dims, type: tensorTypeName(tensor.type), bytes: tensor.data.length,
  }));
  const parameters = tensors.reduce((sum, tensor) => sum + tensor.dims.reduce((a, b) => a * b, 1), 0);
  if (args.options.json) {
    writeJson({
      source: file.source, format: file.format, config: file.config, parameters,
      vocab_size: file.vocab?.tokens.length ?? null, tensors,
    });
    return;
  }
  const c = file.config;
  stdout.write(
    `${file.source} (${file.format})\n` +
    `architecture ${c.architecture}, dim ${c.dim}, hidden_dim ${c.hidden_dim}, n_layers ${c.n_layers}, ` +
    `n_heads ${c.n_heads}, n_kv_heads ${c.n_kv_heads}, vocab_size ${c.vocab_size}, seq_len ${c.seq_len}\n` +
    `norm_eps ${c.norm_eps}, rope_theta ${c.rope_theta}, parameters ${parameters}, ` +
    `tokenizer ${file.vocab ? `${file.vocab.model} (${file.vocab.tokens.length} tokens)` : "missing"}\n`,
  );
  for (const tensor of tensors) stdout.write(`  ${tensor.name.padEnd(28)} ${tensor.type.padEnd(5)} [${tensor.dims.join(", ")}]\n`);
}

function tensorTypeName(type: number): string {
  return GGMLType[type] ?? `type ${type}`;
}

async function runTokenize(args: ParsedArgs): Promise<void> {
  const file = await readModelArgument(args);
  if (!file.vocab) {
    throw new OptionError(`dormant tokenize: ${file.source}: tokenizer is missing, expected --tokenizer for a llama2.c checkpoint`, {
      source: file.source, field: "tokenizer", actual: "missing", expected: "a vocabulary",
    });
  }
  const { SpmTokenizer } = await import("./tokenizer/spm.js");
  const tokenizer = new SpmTokenizer(file.vocab);
  const text = args.positionals.join(" ");
  const ids = tokenizer.encode(text, { bos: Boolean(args.options.bos) });
  const pieces = ids.map((id) => file.vocab!.tokens[id]);
  if (args.options.json) {
    writeJson(args.options.pieces ? { tokens: ids, pieces } : { tokens: ids });
  } else if (args.options.pieces) {
    stdout.write(ids.map((id, i) => `${id}\t${JSON.stringify(pieces[i])}`).join("\n") + "\n");
  } else {
    stdout.write(`${ids.join(" ")}\n`);
  }
}

async function runPull(args: ParsedArgs): Promise<void> {
  if (args.positionals.length !== 1) {
    throw new OptionError(`dormant pull: found ${args.positionals.length} model names, expected one`, {
      source: "arguments", field: "name", actual: String(args.positionals.length), expected: "1",
    });
  }
  const resolved = await resolveModel(args.positionals[0], {
    catalog: args.options.catalog as string | undefined, onProgress: progressReporter(args), where: "pull",
  });
  if (args.options.json) {
    writeJson({ model: resolved.modelPath, tokenizer: resolved.tokenizerPath ?? null, downloaded: resolved.downloaded });
  } else {
    stdout.write(`${resolved.modelPath}\n${resolved.tokenizerPath ? `${resolved.tokenizerPath}\n` : ""}`);
  }
}

/** Library option names and the flags that set them, so messages name what the user typed. */
const flagNames: Record<string, string> = {
  topP: "--top-p", topK: "--top-k", minP: "--min-p", temperature: "--temperature", seed: "--seed",
  repetitionPenalty: "--repeat-penalty", maxTokens: "--max-tokens", steps: "--steps",
  contextLength: "--context", precision: "--precision", kernels: "--kernels", mode: "--mode",
  sparsity: "--sparsity", rank: "--rank", recall: "--recall",
};

function withFlagNames(message: string): string {
  return message.replace(/\boption (\w+)/g, (match, name: string) => (flagNames[name] ? `option ${flagNames[name]}` : match));
}

/** Runs the CLI with `argv` (without node and the script path) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    stdout.write(mainHelp());
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    stderr.write(`dormant: command "${name}" is not known, expected one of ${Object.keys(commands).join(", ")}\n`);
    return 2;
  }
  try {
    const args = parseArgs(name, rest, command.specs);
    if (args.options.help) {
      stdout.write(`usage: dormant ${name} [options]${name === "generate" || name === "tokenize" ? " [text]" : ""}\n\n${command.summary}\n\noptions:\n${formatOptions(command.specs)}\n`);
      return 0;
    }
    await command.run(args);
    return 0;
  } catch (error) {
    if (error instanceof OptionError) {
      stderr.write(`${withFlagNames(error.message)}\n`);
      return 2;
    }
    if (error instanceof DormantError) {
      stderr.write(`${error.message}\n`);
      return 1;
    }
    const message = error instanceof Error ? error.message : String(error);
    stderr.write(`dormant ${name}: internal error: ${message}\n`);
    if (process.env.DORMANT_DEBUG && error instanceof Error) stderr.write(`${error.stack}\n`);
    return 1;
  }
}

// A closed pipe (`dormant generate | head`) ends the output, not the process with a stack trace.
stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0);
  throw error;
});

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
