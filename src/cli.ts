/**
 * The `dormant` command: the command table, argument dispatch, help, version and the mapping of
 * errors to exit codes. Each command runs from its module in src/cli/. These modules and this one
 * are the only ones that print: generated text on stdout, one summary line and progress bars on
 * stderr. Exit codes: 0 success, 1 runtime failure, 2 bad usage (an OptionError).
 */

import { fileURLToPath } from "node:url";
import { DormantError, OptionError } from "./errors.js";
import { formatOptions, parseArgs, type OptionSpecs, type ParsedArgs } from "./args.js";
import { readFileBytes } from "./io.js";
import { stderr, stdout } from "./cli/common.js";
import { generateOptions, runGenerate } from "./cli/generate.js";
import { chatOptions, runChat } from "./cli/chat.js";
import { evalOptions, runEval } from "./cli/eval.js";
import { calibrateOptions, runCalibrate } from "./cli/calibrate.js";
import { convertOptions, runConvert } from "./cli/convert.js";
import { inspectOptions, runInspect } from "./cli/inspect.js";
import { infoOptions, runInfo } from "./cli/info.js";
import { runTokenize, tokenizeOptions } from "./cli/tokenize.js";
import { pullOptions, runPull } from "./cli/pull.js";
import { benchOptions, runBenchCommand } from "./cli/bench.js";

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

function mainHelp(): string {
  const lines = Object.entries(commands).map(([name, command]) => `  ${name.padEnd(10)} ${command.summary}`);
  return `usage: dormant <command> [options]\n\ncommands:\n${lines.join("\n")}\n\nRun dormant <command> --help for its options, dormant --version for the version.\n`;
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
const POSITIONAL_USAGE: Record<string, string> = { generate: " [prompt]", tokenize: " TEXT", pull: " NAME" };

/** Version from the package.json beside dist/, where the bundled CLI lives. */
async function packageVersion(): Promise<string> {
  const text = new TextDecoder().decode(await readFileBytes(fileURLToPath(new URL("../package.json", import.meta.url))));
  return (JSON.parse(text) as { version: string }).version;
}

/** Runs the CLI with `argv` (without node and the script path) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  // Help that was asked for goes to stdout; without a command it is a usage error, on stderr.
  if (!name) {
    stderr.write(mainHelp());
    return 2;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    stdout.write(mainHelp());
    return 0;
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
