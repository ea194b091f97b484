/**
 * The `dormant` command. The only module that prints: generated text on stdout, one
 * summary line and progress bars on stderr. Exit codes: 0 success, 1 runtime failure,
 * 2 bad usage (an OptionError).
 */

import { stat } from "node:fs/promises";
import { dirname, resolve as resolvePath } from "node:path";
import { fileURLToPath } from "node:url";
import { DormantError, OptionError } from "./errors.js";
import { formatOptions, parseArgs, type OptionSpecs, type ParsedArgs } from "./args.js";
import { convertToGGUF } from "./convert.js";
import { evaluate } from "./eval/perplexity.js";
import {
  checkBoundRanges, checkBounds, checkCorpus, checkMeasurable, checkSameBase, DEFAULT_MAX_NEW_TOKENS, describeCheck, GateFailure, gateReportJson,
  gateReportMarkdown, mergeBounds, measureGate, parseBounds, parsePrompts, type Bounds, type GateProgress, type MetricName,
} from "./eval/gate.js";
import { inspectFigures, renderInspectHtml } from "./eval/html.js";
import { inspectModel } from "./eval/report.js";
import { readModelFile } from "./formats/index.js";
import { GGMLType, type Vocab } from "./types.js";
import { ggufToVocab, hasGGUFMagic, parseGGUF } from "./gguf.js";
import { createTokenizer } from "./tokenizer/index.js";
import { joinPath, makeDirectory, readFileBytes, writeFileAtomic } from "./io.js";
import { resolveModel } from "./catalog.js";
import { createModel, loadModel, type LoadOptions, type LoadProgress, type Model, type Precision, type SparsityMode } from "./model.js";
import { calibrate, collectActivations, measureSparsity, type LayerSparsity } from "./sparsity/calibrate.js";
import { readSparsity, writeSparsityGGUF, type SparsityData } from "./sparsity/format.js";
import { createProgressBar } from "./progress.js";
import { benchModelFile, formatBenchTable, runBench } from "./bench.js";
import type { GenerationSummary } from "./generate.js";
import type { SamplerOptions } from "./sampler.js";
import { chatPrompt, type ChatMessage, type ChatOptions, type ChatSummary } from "./chat.js";

const DEFAULT_MODEL = "stories260K";

const modeChoices = ["dense", "oracle", "predicted"] as const;

const modelOptions: OptionSpecs = {
  model: { kind: "string", help: `model name from models/catalog.json or a path to a .gguf or llama2.c .bin file (default ${DEFAULT_MODEL})` },
  tokenizer: { kind: "string", help: "llama2.c tokenizer.bin for a .bin checkpoint" },
  catalog: { kind: "string", help: "model catalog JSON file (default models/catalog.json)" },
  precision: { kind: "string", choices: ["int8", "f32"], help: "weight precision in wasm memory: int8 (default) or f32" },
  context: { kind: "integer", help: "positions the KV cache has room for (default: the model's context length, at most 4096)" },
  kernels: { kind: "string", choices: ["auto", "exact", "relaxed"], help: "wasm module: auto (default: relaxed SIMD where it works), exact (the simd128 module) or relaxed" },
  mode: { kind: "string", choices: modeChoices, help: "FFN mode of a file with sparsity data: dense, oracle or predicted (default predicted)" },
  threads: { kind: "integer", help: "threads that run the forward pass, 1 to 64 (default 1); results are identical for any count" },
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

const chatOptions: OptionSpecs = {
  ...modelOptions,
  message: { kind: "string", help: "one user message: print the reply and exit (default: read one message per line from stdin)" },
  system: { kind: "string", help: "system message placed before the conversation" },
  "show-prompt": { kind: "boolean", help: "print each rendered prompt on stderr before the reply" },
  "max-tokens": generateOptions["max-tokens"],
  temperature: generateOptions.temperature,
  "top-p": generateOptions["top-p"],
  "top-k": generateOptions["top-k"],
  "min-p": generateOptions["min-p"],
  "repeat-penalty": generateOptions["repeat-penalty"],
  seed: generateOptions.seed,
};

/** Flags that set one side of a gate bound, and the metric and side they set. */
const boundFlags: Record<string, { metric: MetricName; side: "min" | "max"; help: string }> = {
  "max-perplexity": { metric: "perplexity", side: "max", help: "largest allowed perplexity of the model" },
  "max-perplexity-ratio": { metric: "perplexity_ratio", side: "max", help: "largest allowed perplexity / reference perplexity" },
  "max-kl": { metric: "mean_kl", side: "max", help: "largest allowed mean KL(reference ‖ model), nats per token" },
  "min-top1": { metric: "top1_agreement", side: "min", help: "smallest allowed share of positions whose argmax agrees, in [0, 1]" },
  "min-recall": { metric: "recall", side: "min", help: "smallest allowed predictor recall of any layer, in [0, 1]" },
  "max-kept-fraction": { metric: "kept_fraction", side: "max", help: "largest allowed mean kept fraction of FFN neurons, in [0, 1]" },
  "min-greedy-tokens": { metric: "greedy_tokens", side: "min", help: "smallest allowed mean of greedy tokens that agree before the first difference" },
  "min-expected-tokens": { metric: "expected_tokens", side: "min", help: "smallest allowed mean of greedy tokens that match the expected text" },
};

const builtinReferences: readonly string[] = ["int8", "f32", ...modeChoices];

const gateOptions: OptionSpecs = {
  prompts: { kind: "string", help: 'prompt suite, JSON Lines: {"prompt": "...", "expected": "..."} per line; measures greedy agreement' },
  "max-new-tokens": { kind: "integer", help: `greedy tokens per prompt at most (default ${DEFAULT_MAX_NEW_TOKENS})` },
  "against-mode": { kind: "string", choices: modeChoices, help: "FFN mode of an --against file (default: its own, predicted when it has a predictor)" },
  bounds: { kind: "string", help: 'bounds config, JSON: {"perplexity_ratio": {"max": 1.75}, ...}; a crossed bound exits with code 1' },
  ...Object.fromEntries(Object.entries(boundFlags).map(([name, flag]) => [name, { kind: "number" as const, help: flag.help }])),
  "report-json": { kind: "string", help: "write the JSON report of a gate run to this file" },
  "report-md": { kind: "string", help: "write a markdown summary of a gate run to this file" },
};

const evalOptions: OptionSpecs = {
  ...modelOptions,
  perplexity: { kind: "boolean", help: "compute perplexity (always computed; kept for clarity in scripts)" },
  text: { kind: "string", help: "UTF-8 text file; documents separated by <|endoftext|> lines" },
  "max-tokens": { kind: "integer", help: "score at most this many tokens" },
  mode: { kind: "string", choices: modeChoices, help: "FFN mode of a file with sparsity data (default predicted)" },
  against: {
    kind: "string",
    help: "reference run: int8 or f32 (dense), dense, oracle or predicted (FFN mode of the same file), or a path to another model file of the same base model",
  },
  ...gateOptions,
};

/** Model options without --mode: calibration always runs the dense model. */
const { mode: _calibrateIgnoresMode, ...denseModelOptions } = modelOptions;

const calibrateOptions: OptionSpecs = {
  ...denseModelOptions,
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
  special: { kind: "boolean", help: "read special-token text such as <|eot_id|> as that token" },
  json: modelOptions.json,
  help: modelOptions.help,
};

const pullOptions: OptionSpecs = {
  catalog: modelOptions.catalog,
  json: modelOptions.json,
  quiet: modelOptions.quiet,
  help: modelOptions.help,
};

const inspectOptions: OptionSpecs = {
  model: modelOptions.model,
  tokenizer: modelOptions.tokenizer,
  catalog: modelOptions.catalog,
  kernels: modelOptions.kernels,
  text: { kind: "string", help: "UTF-8 text; the first half of its documents calibrates the sweep, the second half is profiled and scored" },
  report: { kind: "string", help: "output .html file: one page with inline SVG plots, no scripts, loads nothing" },
  "svg-dir": { kind: "string", help: "also write each plot as an .svg file into this folder" },
  "max-tokens": { kind: "integer", help: "tokens traced for the profile and for the sweep's calibration (default 4000)" },
  "eval-tokens": { kind: "integer", help: "tokens scored per perplexity evaluation (default 2000)" },
  sparsities: { kind: "string", help: "target sparsities S of the sweep, comma-separated (default 0.1,0.3,0.5,0.7,0.9)" },
  windows: { kind: "string", help: "window sizes k of the reuse measure, comma-separated (default 1,2,4,8,16,32,64)" },
  json: modelOptions.json,
  quiet: modelOptions.quiet,
  help: modelOptions.help,
};

const benchOptions: OptionSpecs = {
  models: { kind: "string", help: "comma-separated models: stories260K, stories15M, stories110M, llama-1b (default stories260K,stories15M,stories110M)" },
  precision: { kind: "string", help: "comma-separated precisions: int8, f32 (default int8,f32)" },
  runs: { kind: "integer", help: "timed runs per figure after one warm-up, 1 to 100 (default 3)" },
  tokens: { kind: "integer", help: "tokens per decode run, 2 to 4096 (default 32)" },
  threads: { kind: "string", help: "comma-separated thread counts, each 1 to 64 (default 1)" },
  keep: { kind: "string", help: "comma-separated fractions of FFN neurons kept, in (0, 1], 1 = dense (default 1); below 1 runs int8 only, with a random predictor" },
  out: { kind: "string", help: "also write the rows as JSON to this file" },
  json: modelOptions.json,
  quiet: modelOptions.quiet,
  help: modelOptions.help,
};

const commands: Record<string, { summary: string; specs: OptionSpecs; run: (args: ParsedArgs) => Promise<void> }> = {
  generate: { summary: "write text that continues a prompt", specs: generateOptions, run: runGenerate },
  chat: { summary: "reply to messages through the model's chat template", specs: chatOptions, run: runChat },
  eval: { summary: "perplexity of a model on a text file, optionally against a reference run and checked against bounds", specs: evalOptions, run: runEval },
  calibrate: { summary: "fit sparsity thresholds and a predictor, write them into a GGUF", specs: calibrateOptions, run: runCalibrate },
  convert: { summary: "convert a llama2.c checkpoint or GGUF to GGUF (f32 or q8_0)", specs: convertOptions, run: runConvert },
  inspect: { summary: "write an HTML report of where a sparse model's neurons are dormant", specs: inspectOptions, run: runInspect },
  info: { summary: "print a model's configuration and tensors", specs: infoOptions, run: runInfo },
  tokenize: { summary: "print the token ids of a text", specs: tokenizeOptions, run: runTokenize },
  pull: { summary: "download a catalog model into the cache, checking its sha256", specs: pullOptions, run: runPull },
  bench: { summary: "decode and prefill tokens/s, and milliseconds per decode token by stage, of real and generated models", specs: benchOptions, run: runBenchCommand },
};

const stdout = process.stdout;
const stderr = process.stderr;

function mainHelp(): string {
  const lines = Object.entries(commands).map(([name, command]) => `  ${name.padEnd(10)} ${command.summary}`);
  return `usage: dormant <command> [options]\n\ncommands:\n${lines.join("\n")}\n\nRun dormant <command> --help for its options, dormant --version for the version.\n`;
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
    threads: options.threads as number | undefined,
    catalog: options.catalog as string | undefined,
    onProgress: progressReporter(args),
  };
}

/** Maps the sampling and length flags shared by generate and chat to generation options. */
function samplingOptions(args: ParsedArgs): SamplerOptions & { maxTokens?: number } {
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
  if (options.mode) model.setMode(options.mode as SparsityMode);
  const iterator = model.generate(prompt, { steps: options.steps as number | undefined, ...samplingOptions(args) });

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
  if (!options.quiet) stderr.write(summaryLine(summary, model));
  model.dispose();
}

/** Formats the stderr summary of one run: token counts, speed, precision, kernels and threads. */
function summaryLine(summary: GenerationSummary, model: Model): string {
  const { threads, threadsNote } = model.stats();
  return `prompt ${summary.promptTokens} tokens, generated ${summary.generatedTokens} tokens, ` +
    `${summary.tokensPerSecond.toFixed(1)} tokens/s, precision ${model.precision}, kernels ${model.kernels}, ` +
    `threads ${threads}${threadsNote ? ` (${threadsNote})` : ""}\n`;
}

/**
 * Replies to one message (--message) or to each line read from stdin, keeping the conversation:
 * every turn renders the whole conversation again and runs it from position 0.
 */
async function runChat(args: ParsedArgs): Promise<void> {
  const { options, positionals } = args;
  if (positionals.length > 0) {
    throw new OptionError(`dormant chat: found ${positionals.length} words after the options, expected none (pass the message with --message)`, {
      source: "arguments", field: "message", actual: `${positionals.length} words`, expected: "none",
    });
  }
  const model = await loadModel(modelName(args), loadOptions(args));
  if (options.mode) model.setMode(options.mode as SparsityMode);
  if (model.chatFormat.template === null) stderr.write("no chat template in the file; using dormant's fallback format\n");
  const messages: ChatMessage[] = [];
  if (options.system !== undefined) messages.push({ role: "system", content: options.system as string });
  const chatSettings: ChatOptions = samplingOptions(args);

  const reply = async (content: string): Promise<void> => {
    messages.push({ role: "user", content });
    if (options["show-prompt"]) stderr.write(`${chatPrompt(model, messages).text}\n`);
    const iterator = model.chat(messages, chatSettings);
    let summary: ChatSummary;
    for (;;) {
      const next = await iterator.next();
      if (next.done) {
        summary = next.value;
        break;
      }
      if (!options.json) stdout.write(next.value.text);
    }
    messages.push({ role: "assistant", content: summary.text });
    if (options.json) {
      writeJson({ prompt: summary.prompt, text: summary.text, tokens: summary.tokens, tokens_per_second: summary.tokensPerSecond });
    } else {
      stdout.write("\n");
    }
    if (!options.quiet) stderr.write(summaryLine(summary, model));
  };

  if (options.message !== undefined) {
    await reply(options.message as string);
  } else {
    const { createInterface } = await import("node:readline");
    const interactive = Boolean(process.stdin.isTTY);
    // The "> " prompt goes to stderr, so stdout carries only replies.
    const lines = createInterface({ input: process.stdin, output: interactive ? stderr : undefined, terminal: interactive });
    if (interactive) {
      stderr.write("Type a message and press Enter; Ctrl-D ends the chat.\n");
      lines.setPrompt("> ");
      lines.prompt();
    }
    try {
      for await (const line of lines) {
        if (line.trim() !== "") await reply(line);
        if (interactive) lines.prompt();
      }
    } finally {
      // A failed turn must not leave stdin open, or the process would wait for more input.
      lines.close();
    }
  }
  model.dispose();
}

async function runEval(args: ParsedArgs): Promise<void> {
  if (isGateRun(args)) return runEvalGate(args);
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
  const predictor = model.hasPredictor ? await measurePredictor(args, text, textPath) : undefined;

  if (options.json) {
    const json: Record<string, unknown> = { perplexity: result.perplexity, tokens: result.tokens, precision: model.precision };
    if (model.sparse) {
      json.mode = model.mode;
      json.kept_fraction = keptFraction;
      json.layers = layers.map((layer, l) => ({
        kept_fraction: layer.keptFraction, candidate_fraction: layer.candidateFraction,
        ffn_bytes_per_token: layer.ffnBytesPerToken,
        ...(predictor ? {
          recall_mass: predictor[l].recall, recall_count: predictor[l].recallCount, precision: predictor[l].precision,
        } : {}),
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
      const recall = predictor
        ? `, predictor recall ${predictor[l].recall.toFixed(4)} (mass) ${predictor[l].recallCount.toFixed(4)} (count), precision ${predictor[l].precision.toFixed(4)}`
        : "";
      stdout.write(`  layer ${l}: kept ${(layer.keptFraction * 100).toFixed(1)}%, candidates ${(layer.candidateFraction * 100).toFixed(1)}%, ` +
        `FFN ${(layer.ffnBytesPerToken / 1024).toFixed(1)} KiB/token${recall}\n`);
    }
  }
}

/**
 * Measures the file's predictor against the oracle on `text`: the dense model's exact gate
 * activations decide which neurons are kept, and the predictor's candidates are compared with them.
 */
async function measurePredictor(args: ParsedArgs, text: string, textPath: string): Promise<LayerSparsity[] | undefined> {
  const file = await readModelArgument(args);
  if (!file.sparsity) return undefined;
  const dense = await createModel(file, { ...loadOptions(args), sparsity: null, onProgress: undefined });
  const statistics = await collectActivations(dense, text, { maxTokens: args.options["max-tokens"] as number | undefined, source: textPath });
  dense.dispose();
  return measureSparsity(statistics, file.sparsity as SparsityData);
}

/** Rejects an --out path that names the input file, which the command would replace. */
function rejectOverwrite(command: string, out: string, input: string): void {
  if (resolvePath(out) === resolvePath(input)) {
    throw new OptionError(`dormant ${command}: option --out is ${out}, the input file itself, expected a new path (the command would replace its own input)`, {
      source: "option out", field: "out", actual: out, expected: "a path other than the input",
    });
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
  rejectOverwrite("calibrate", out, file.source);
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

/**
 * Reads --model for `tokenize`. A GGUF without tensors, such as llama.cpp's ggml-vocab-*.gguf,
 * gives only its vocabulary, whatever architecture it names.
 */
async function readVocabArgument(args: ParsedArgs): Promise<{ source: string; vocab?: Vocab }> {
  const resolved = await resolveModel(modelName(args), {
    catalog: args.options.catalog as string | undefined, onProgress: progressReporter(args),
  });
  const bytes = await readFileBytes(resolved.modelPath);
  const tokenizerPath = (args.options.tokenizer as string | undefined) ?? resolved.tokenizerPath;
  if (hasGGUFMagic(bytes) && tokenizerPath === undefined) {
    const gguf = parseGGUF(bytes, resolved.modelPath);
    if (gguf.tensors.size === 0) return { source: resolved.modelPath, vocab: ggufToVocab(gguf, resolved.modelPath) };
  }
  const tokenizer = tokenizerPath ? { bytes: await readFileBytes(tokenizerPath), source: tokenizerPath } : undefined;
  return readModelFile(bytes, resolved.modelPath, tokenizer);
}

async function readModelArgument(args: ParsedArgs, name = modelName(args)) {
  const resolved = await resolveModel(name, {
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
  rejectOverwrite("convert", out, file.source);
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
  const file = await readVocabArgument(args);
  if (!file.vocab) {
    throw new OptionError(`dormant tokenize: ${file.source}: tokenizer is missing, expected --tokenizer for a llama2.c checkpoint`, {
      source: file.source, field: "tokenizer", actual: "missing", expected: "a vocabulary",
    });
  }
  const tokenizer = createTokenizer(file.vocab, file.source);
  const text = args.positionals.join(" ");
  const ids = tokenizer.encode(text, { bos: Boolean(args.options.bos), parseSpecial: Boolean(args.options.special) });
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

/** Returns whether an eval run is a gate run: it has a gate option, or a model file as the reference. */
function isGateRun(args: ParsedArgs): boolean {
  const against = args.options.against as string | undefined;
  if (against !== undefined && !builtinReferences.includes(against)) return true;
  return Object.keys(gateOptions).some((name) => args.options[name] !== undefined);
}

function decodeText(bytes: Uint8Array): string {
  return new TextDecoder("utf-8", { fatal: false }).decode(bytes);
}

/** Bounds of a gate run: the --bounds file, with sides set by flags replacing the file's. */
async function gateBounds(args: ParsedArgs): Promise<Bounds> {
  const path = args.options.bounds as string | undefined;
  const fromFile = path === undefined ? {} : parseBounds(decodeText(await readFileBytes(path)), path);
  const fromFlags: Bounds = {};
  for (const [name, flag] of Object.entries(boundFlags)) {
    const value = args.options[name] as number | undefined;
    if (value !== undefined) fromFlags[flag.metric] = { ...fromFlags[flag.metric], [flag.side]: value };
  }
  return checkBoundRanges(mergeBounds(fromFile, fromFlags), "bounds");
}

/** Progress bars of a gate run, one per phase, on stderr. */
function gateProgress(args: ParsedArgs): ((progress: GateProgress) => void) | undefined {
  if (args.options.quiet || args.options.json) return undefined;
  const labels = { eval: ["eval", "tokens"], recall: ["eval: recall", "tokens"], greedy: ["eval: greedy", "prompts"] } as const;
  const bars = new Map<string, ReturnType<typeof createProgressBar>>();
  return (progress) => {
    let bar = bars.get(progress.phase);
    if (!bar) {
      const [label, unit] = labels[progress.phase];
      bar = createProgressBar(stderr, label, { unit });
      bars.set(progress.phase, bar);
    }
    bar.update(progress.loaded, progress.total);
    if (progress.loaded >= progress.total) bar.done();
  };
}

/**
 * Runs eval as a regression gate. The model runs against a reference: a precision, a mode of the
 * same file or another file of the same base model. Its metrics are checked against bounds and
 * the reports written, then a GateFailure (exit code 1) reports any crossed bound.
 */
async function runEvalGate(args: ParsedArgs): Promise<void> {
  const { options } = args;
  const textPath = requireOption("eval", options.text as string | undefined, "text", "a path to a UTF-8 text file");
  const text = decodeText(await readFileBytes(textPath));
  checkCorpus(text, textPath);
  const promptsPath = options.prompts as string | undefined;
  const prompts = promptsPath === undefined ? undefined : parsePrompts(decodeText(await readFileBytes(promptsPath)), promptsPath);
  const maxNewTokens = (options["max-new-tokens"] as number | undefined) ?? DEFAULT_MAX_NEW_TOKENS;
  if (maxNewTokens < 1) {
    throw new OptionError(`dormant eval: option --max-new-tokens is ${maxNewTokens}, expected an integer ≥ 1`, {
      source: "option max-new-tokens", field: "max-new-tokens", actual: String(maxNewTokens), expected: "an integer ≥ 1",
    });
  }
  const bounds = await gateBounds(args);

  const file = await readModelArgument(args);
  const against = (options.against as string | undefined) ?? "int8";
  if (options["against-mode"] !== undefined && builtinReferences.includes(against)) {
    throw new OptionError(`dormant eval: option --against-mode is given with --against ${against}, expected it only with an --against model file`, {
      source: "option against-mode", field: "against-mode", actual: String(options["against-mode"]), expected: "an --against model file",
    });
  }
  const referenceFile = builtinReferences.includes(against) ? file : await readModelArgument(args, against);
  if (referenceFile !== file) checkSameBase(file, referenceFile);
  checkMeasurable(bounds, { prompts, predictor: file.sparsity !== undefined });

  const load = loadOptions(args);
  const model = await createModel(file, load);
  if (options.mode) model.setMode(options.mode as SparsityMode);
  let reference: Model;
  if (against === "int8" || against === "f32") {
    reference = await createModel(file, { ...load, precision: against, sparsity: null, onProgress: undefined });
  } else {
    reference = await createModel(referenceFile, { ...load, onProgress: undefined });
    const mode = referenceFile === file ? against : options["against-mode"];
    if (mode) reference.setMode(mode as SparsityMode);
  }

  const measurement = await measureGate(model, text, {
    reference, sparsity: model.hasPredictor ? file.sparsity : undefined, prompts, promptSource: promptsPath, maxNewTokens,
    maxTokens: options["max-tokens"] as number | undefined, source: textPath, onProgress: gateProgress(args),
  });
  const checks = checkBounds(measurement.metrics, bounds);
  const context = { model: file.source, mode: model.mode, precision: model.precision, against, text: textPath };
  const json = gateReportJson(context, measurement, checks);
  const encoder = new TextEncoder();
  if (options["report-json"]) await writeFileAtomic(options["report-json"] as string, encoder.encode(`${JSON.stringify(json, null, 2)}\n`));
  if (options["report-md"]) await writeFileAtomic(options["report-md"] as string, encoder.encode(gateReportMarkdown(context, measurement, checks)));
  model.dispose();
  reference.dispose();

  if (options.json) writeJson(json);
  else printGateSummary(measurement, against, reference.precision);
  if (checks.some((check) => !check.passed)) throw new GateFailure(checks);
  if (!options.quiet && !options.json && checks.length > 0) {
    stderr.write(`eval: ${checks.length} bounds checked, all passed (${checks.map(describeCheck).join("; ")})\n`);
  }
}

function printGateSummary(measurement: Awaited<ReturnType<typeof measureGate>>, against: string, referencePrecision: string): void {
  const { metrics, layers, prompts } = measurement;
  const percent = (value: number, digits = 1): string => `${(value * 100).toFixed(digits)}%`;
  stdout.write(`perplexity ${metrics.perplexity!.toFixed(4)} over ${measurement.tokens} tokens, kept ${percent(metrics.kept_fraction!)}\n`);
  stdout.write(
    `perplexity ${metrics.reference_perplexity!.toFixed(4)} (${against}, ${referencePrecision}), ratio ${metrics.perplexity_ratio!.toFixed(4)}, ` +
    `top-1 agreement ${percent(metrics.top1_agreement!, 2)}, mean KL ${metrics.mean_kl!.toExponential(3)} nats\n`,
  );
  for (const [l, layer] of layers.entries()) {
    const recall = layer.measured ? `, recall ${percent(layer.measured.recall, 2)}` : "";
    stdout.write(`  layer ${l}: kept ${percent(layer.keptFraction)}, candidates ${percent(layer.candidateFraction)}${recall}, ` +
      `FFN ${(layer.ffnBytesPerToken / 1024).toFixed(1)} KiB/token\n`);
  }
  if (prompts.length > 0) {
    const expected = metrics.expected_tokens === undefined ? "" : `, ${metrics.expected_tokens.toFixed(1)} match the expected text`;
    stdout.write(`greedy: ${prompts.length} prompts, ${metrics.greedy_tokens!.toFixed(1)} tokens agree before the first difference ` +
      `(at most ${measurement.maxNewTokens})${expected}\n`);
  }
}

/** Parses a comma-separated list of numbers given to `--name`. */
function numberList(command: string, name: string, raw: string, expected: string): number[] {
  const values = raw.split(",").map((word) => Number(word.trim()));
  if (raw.trim() === "" || values.some((value, i) => !Number.isFinite(value) || raw.split(",")[i].trim() === "")) {
    throw new OptionError(`dormant ${command}: option --${name} is "${raw}", expected ${expected}`, {
      source: `option ${name}`, field: name, actual: raw, expected,
    });
  }
  return values;
}

async function runInspect(args: ParsedArgs): Promise<void> {
  const { options } = args;
  const textPath = requireOption("inspect", options.text as string | undefined, "text", "a path to a UTF-8 text file");
  const reportPath = requireOption("inspect", options.report as string | undefined, "report", "the path of the .html file to write");
  const sparsities = options.sparsities === undefined
    ? undefined
    : numberList("inspect", "sparsities", options.sparsities as string, "comma-separated numbers in [0, 0.99]");
  const windows = options.windows === undefined
    ? undefined
    : numberList("inspect", "windows", options.windows as string, "comma-separated integers ≥ 1");
  const text = decodeText(await readFileBytes(textPath));
  checkCorpus(text, textPath, "inspect");
  const file = await readModelArgument(args);

  const bars = new Map<string, ReturnType<typeof createProgressBar>>();
  const quiet = Boolean(options.quiet || options.json);
  const data = await inspectModel(file, text, {
    maxTokens: options["max-tokens"] as number | undefined,
    evalTokens: options["eval-tokens"] as number | undefined,
    sparsities, windows, source: textPath,
    load: { kernels: (options.kernels as "auto" | "exact" | "relaxed" | undefined) ?? "auto" },
    onProgress: quiet ? undefined : (progress) => {
      let bar = bars.get(progress.phase);
      if (!bar) {
        bar = createProgressBar(stderr, `inspect: ${progress.phase}`, { unit: { profile: "tokens", modes: "modes", sweep: "steps" }[progress.phase] });
        bars.set(progress.phase, bar);
      }
      bar.update(progress.loaded, progress.total);
      if (progress.loaded >= progress.total) bar.done();
    },
  });

  const figures = inspectFigures(data);
  const encoder = new TextEncoder();
  await writeFileAtomic(reportPath, encoder.encode(renderInspectHtml(data, figures)));
  const svgDirectory = options["svg-dir"] as string | undefined;
  const svgPaths: string[] = [];
  if (svgDirectory !== undefined) {
    await makeDirectory(svgDirectory);
    for (const entry of figures) {
      const path = joinPath(svgDirectory, `${entry.name}.svg`);
      await writeFileAtomic(path, encoder.encode(entry.svg));
      svgPaths.push(path);
    }
  }

  const { profile, sweep } = data;
  if (options.json) {
    writeJson({
      report: reportPath, svg: svgPaths, tokens: profile.tokens, contexts: profile.contexts, sampled_tokens: profile.sampledTokens,
      windows: profile.windows,
      layers: profile.layers.map((layer) => ({
        threshold: layer.threshold, kept_fraction: layer.keptFraction, hot_neurons: layer.hotNeurons, cold_neurons: layer.coldNeurons,
        top_decile_share: layer.topDecileShare, jaccard: layer.jaccard, reuse: layer.reuse, independent_reuse: layer.independentReuse,
        window_union: layer.windowUnion, recall: layer.predictor.recall, candidates: layer.predictor.candidates,
        kept_at_threshold: layer.keptAtThreshold, histogram: layer.histogram,
      })),
      quantiles: profile.quantiles, sweep_thresholds: profile.sweepThresholds,
      modes: data.modes.map((mode) => ({
        mode: mode.mode, perplexity: mode.perplexity, ffn_bytes_per_token: mode.layers.map((layer) => layer.ffnBytesPerToken),
      })),
      sweep: { dense: sweep.dense, rank: sweep.rank, points: sweep.points },
    });
  } else if (!options.quiet) {
    stderr.write(`wrote ${reportPath}: ${figures.length} plots, ${profile.tokens} tokens traced` +
      `${svgPaths.length > 0 ? `, ${svgPaths.length} .svg files in ${svgDirectory}` : ""}\n`);
  }
}

function commaList(command: string, name: string, value: string | undefined, fallback: string[]): string[] {
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
async function checkOutputFolder(command: string, name: string, path: string): Promise<void> {
  const folder = dirname(resolvePath(path));
  const found = await stat(folder).then((entry) => entry.isDirectory(), () => false);
  if (!found) {
    throw new OptionError(`dormant ${command}: option --${name} is "${path}", but its folder ${folder} does not exist; expected a file in an existing folder`, {
      source: `option ${name}`, field: name, actual: path, expected: "a file in an existing folder",
    });
  }
}

async function runBenchCommand(args: ParsedArgs): Promise<void> {
  const { options } = args;
  const precisions = commaList("bench", "precision", options.precision as string | undefined, ["int8", "f32"]);
  for (const precision of precisions) {
    if (precision !== "int8" && precision !== "f32") {
      throw new OptionError(`dormant bench: option --precision has "${precision}", expected int8 or f32`, {
        source: "option precision", field: "precision", actual: precision, expected: "int8 or f32",
      });
    }
  }
  const threads = commaList("bench", "threads", options.threads as string | undefined, ["1"]).map((item) => {
    const count = Number(item);
    if (!/^\d+$/.test(item) || count < 1 || count > 64) {
      throw new OptionError(`dormant bench: option --threads has "${item}", expected integers in [1, 64]`, {
        source: "option threads", field: "threads", actual: item, expected: "integers in [1, 64]",
      });
    }
    return count;
  });
  const keep = commaList("bench", "keep", options.keep as string | undefined, ["1"]).map((item) => {
    const fraction = Number(item);
    if (!Number.isFinite(fraction) || fraction <= 0 || fraction > 1) {
      throw new OptionError(`dormant bench: option --keep has "${item}", expected fractions in (0, 1]`, {
        source: "option keep", field: "keep", actual: item, expected: "fractions in (0, 1]",
      });
    }
    return fraction;
  });
  if (keep.some((fraction) => fraction < 1) && !precisions.includes("int8")) {
    throw new OptionError(`dormant bench: option --keep has fractions below 1, which run int8 only, but --precision is "${precisions.join(",")}"; add int8`, {
      source: "option keep", field: "keep", actual: keep.join(","), expected: "1 alone, or int8 among the precisions",
    });
  }
  const out = options.out as string | undefined;
  if (out !== undefined) await checkOutputFolder("bench", "out", out);
  const rows = await runBench({
    models: commaList("bench", "models", options.models as string | undefined, ["stories260K", "stories15M", "stories110M"]),
    precisions: precisions as Precision[],
    runs: (options.runs as number | undefined) ?? 3,
    tokens: (options.tokens as number | undefined) ?? 32,
    threads,
    keep,
    load: (name, precision, contextLength, threadCount, sparsity) => name === "stories260K"
      ? loadModel(name, { precision, contextLength, sparsity, threads: threadCount })
      : createModel(benchModelFile(name), { precision, contextLength, sparsity, threads: threadCount }),
    onProgress: options.quiet || options.json ? undefined : (label) => stderr.write(`bench: ${label}\n`),
  });
  if (out !== undefined) await writeFileAtomic(out, new TextEncoder().encode(`${JSON.stringify(rows, null, 2)}\n`));
  if (options.json) writeJson({ rows });
  else stdout.write(formatBenchTable(rows));
}

/** Library option names and the flags that set them, so messages name what the user typed. */
const flagNames: Record<string, string> = {
  topP: "--top-p", topK: "--top-k", minP: "--min-p", temperature: "--temperature", seed: "--seed",
  repetitionPenalty: "--repeat-penalty", maxTokens: "--max-tokens", steps: "--steps",
  contextLength: "--context", precision: "--precision", kernels: "--kernels", mode: "--mode",
  sparsity: "--sparsity", rank: "--rank", threads: "--threads", recall: "--recall", models: "--models", runs: "--runs", keep: "--keep", tokens: "--tokens",
  evalTokens: "--eval-tokens", sparsities: "--sparsities", windows: "--windows",
};

function withFlagNames(message: string): string {
  return message.replace(/\boption (\w+)/g, (match, name: string) => (flagNames[name] ? `option ${flagNames[name]}` : match));
}

/** Words a command takes after its options, for its usage line. */
const POSITIONAL_USAGE: Record<string, string> = { generate: " [prompt]", tokenize: " [text]", pull: " NAME" };

/** Version from the package.json beside dist/, where the bundled CLI lives. */
async function packageVersion(): Promise<string> {
  const text = new TextDecoder().decode(await readFileBytes(fileURLToPath(new URL("../package.json", import.meta.url))));
  return (JSON.parse(text) as { version: string }).version;
}

/** Runs the CLI with `argv` (without node and the script path) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    stdout.write(mainHelp());
    return name ? 0 : 2;
  }
  if (name === "--version" || name === "-v") {
    stdout.write(`dormant ${await packageVersion()}\n`);
    return 0;
  }
  const command = commands[name];
  if (!command) {
    stderr.write(`dormant: command "${name}" is not known, expected one of ${Object.keys(commands).join(", ")}\n`);
    return 2;
  }
  try {
    const args = parseArgs(name, rest, command.specs);
    if (args.options.help) {
      stdout.write(`usage: dormant ${name} [options]${POSITIONAL_USAGE[name] ?? ""}\n\n${command.summary}\n\noptions:\n${formatOptions(command.specs)}\n`);
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
