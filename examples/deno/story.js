// Writes a story with stories260K (or any GGUF model) on Deno 2.
//
//   deno run --allow-read=MODEL_DIR,DORMANT/dist,DORMANT/build examples/deno/story.js MODEL.gguf [PROMPT]
//
// Read access to the model's folder and to the repository's dist/ and build/ is all it needs:
// no network, no environment, no writes. Options: --max-tokens N (default 256), --seed N,
// --temperature T (default 0.8), and --worker, which runs the model in a Web Worker.
// The story goes to stdout and one summary line to stderr. Errors print one line and exit 1.

import { loadModel } from "../../dist/index.js";

const usage = "usage: story.js MODEL.gguf [PROMPT] [--max-tokens N] [--seed N] [--temperature T] [--worker]";

/** Splits the command line into the model path, the prompt and the options. */
function parseArgs(args) {
  const options = { maxTokens: 256, temperature: 0.8, seed: undefined, worker: false };
  const positional = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--worker") {
      options.worker = true;
    } else if (arg === "--max-tokens" || arg === "--seed" || arg === "--temperature") {
      const value = Number(args[++i]);
      if (args[i] === undefined || !Number.isFinite(value)) throw new Error(`${arg} is ${JSON.stringify(args[i] ?? "missing")}, expected a number`);
      if (arg === "--max-tokens") options.maxTokens = value;
      else if (arg === "--seed") options.seed = value;
      else options.temperature = value;
    } else if (arg.startsWith("--")) {
      throw new Error(`unknown option ${arg}\n${usage}`);
    } else {
      positional.push(arg);
    }
  }
  if (positional.length === 0 || positional.length > 2) throw new Error(`expected a model path and an optional prompt\n${usage}`);
  return { modelPath: positional[0], prompt: positional[1] ?? "Once upon a time", options };
}

async function main() {
  const { modelPath, prompt, options } = parseArgs(Deno.args);
  const model = options.worker ? await loadModel(modelPath, { worker: true }) : await loadModel(modelPath);
  const encoder = new TextEncoder();
  try {
    const pieces = model.generate(prompt, { maxTokens: options.maxTokens, temperature: options.temperature, seed: options.seed });
    // the first piece comes before the prompt is printed, so that an option error is the only output
    let step = await pieces.next();
    await Deno.stdout.write(encoder.encode(prompt));
    for (; !step.done; step = await pieces.next()) await Deno.stdout.write(encoder.encode(step.value.text));
    const summary = step.value;
    await Deno.stdout.write(encoder.encode("\n"));
    console.error(
      `prompt ${summary.promptTokens} tokens, generated ${summary.generatedTokens} tokens, ` +
        `${summary.tokensPerSecond.toFixed(1)} tokens/s, precision ${model.precision}, kernels ${model.kernels}` +
        (options.worker ? ", in a worker" : ""),
    );
  } finally {
    model.dispose();
  }
}

try {
  await main();
} catch (error) {
  console.error(`story: ${error instanceof Error ? error.message : String(error)}`);
  Deno.exit(1);
}
