// Worker mode: loadModel(source, { worker: true }) from the built bundles. Node runs the model in a
// worker_threads Worker (dist/worker.js); headless Chromium runs it in a Web Worker
// (dist/dormant.worker.js) from a page served on 127.0.0.1. The proxy must give the same tokens,
// logits and errors as a model on the calling thread, abort in the worker, and leave the calling
// thread free while the worker computes.

import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type * as Dormant from "../src/index.js";
import { launchChromium, startStaticServer, type Chromium, type StaticServer } from "./helpers/browser.js";

const repo = fileURLToPath(new URL("..", import.meta.url));
const modelsDirectory = fileURLToPath(new URL("../../shared/models", import.meta.url));
const modelPath = join(modelsDirectory, "stories260K.gguf");
const temporary = mkdtempSync(join(tmpdir(), "dormant-worker-"));
/** stories260K with llama.context_length 4096 instead of 512 (one uint32 at byte 11048), for long runs. */
const longModelPath = join(temporary, "stories260K-long.gguf");
/** Positions of a long run: about two seconds of decoding in the worker on one core. */
const LONG_CONTEXT = 1536;

const run = promisify(execFile);
let dormant: typeof Dormant;

beforeAll(async () => {
  dormant = (await import(pathToFileURL(join(repo, "dist", "index.js")).href)) as typeof Dormant;
  const bytes = new Uint8Array(readFileSync(modelPath));
  const view = new DataView(bytes.buffer);
  expect(view.getUint32(11048, true)).toBe(512);
  view.setUint32(11048, 4096, true);
  writeFileSync(longModelPath, bytes);
});

afterAll(() => rmSync(temporary, { recursive: true, force: true }));

async function collect<T>(pieces: AsyncGenerator<Dormant.GeneratedPiece, T>): Promise<{ tokens: number[]; text: string; summary: T }> {
  const tokens: number[] = [];
  let text = "";
  let step: IteratorResult<Dormant.GeneratedPiece, T>;
  while (!(step = await pieces.next()).done) {
    tokens.push(step.value.token);
    text += step.value.text;
  }
  return { tokens, text, summary: step.value };
}

/** Returns the error that `promise` rejects with; fails the test when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<Dormant.DormantError> {
  try {
    await promise;
  } catch (error) {
    return error as Dormant.DormantError;
  }
  throw new Error("expected a rejection");
}

/** Copies the fields that must survive the thread boundary. */
function fieldsOf(error: Dormant.DormantError) {
  return { class: error.constructor.name, name: error.name, message: error.message, source: error.source, field: error.field, actual: error.actual, expected: error.expected };
}

describe("worker mode on Node", () => {
  let model: Dormant.WorkerModel;
  let main: Dormant.Model;
  const progress: Dormant.LoadProgress[] = [];
  /** Milliseconds of a full long run, measured by the responsiveness test. */
  let longRunMs = 0;

  beforeAll(async () => {
    model = await dormant.loadModel(modelPath, { worker: true, onProgress: (p) => progress.push(p) });
    main = await dormant.loadModel(modelPath);
  });

  afterAll(() => {
    model?.dispose();
    main?.dispose();
  });

  test("load fields and progress", () => {
    expect(model).toBeInstanceOf(dormant.WorkerModel);
    expect(model.config).toEqual(main.config);
    expect(model.precision).toBe("int8");
    expect(model.kernels).toBe(main.kernels);
    expect(model.source).toBe(modelPath);
    expect(model.chatFormat).toEqual(main.chatFormat);
    expect(model.mode).toBe("dense");
    expect(progress[0]).toEqual({ phase: "read", file: modelPath, loaded: 1185376, total: 1185376 });
    expect(progress[progress.length - 1]).toEqual({ phase: "place", loaded: 48, total: 48 });
  });

  test("generate matches main thread", async () => {
    const options = { maxTokens: 100, temperature: 0.8, topP: 0.9, seed: 42 };
    const inWorker = await collect(model.generate("Once upon a time", options));
    const inMain = await collect(main.generate("Once upon a time", options));
    expect(inWorker.text).toBe(inMain.text);
    expect(inWorker.tokens).toEqual(inMain.tokens);
    expect(inWorker.summary.tokens).toEqual(inMain.summary.tokens);
    expect(inWorker.summary.stopReason).toBe(inMain.summary.stopReason);
    expect(model.stats().generatedTokens).toBe(inWorker.summary.generatedTokens);
    expect(model.stats().tokensPerSecond).toBe(inWorker.summary.tokensPerSecond);
  });

  test("tokenize, detokenize, logits", async () => {
    const ids = await model.tokenize("Once upon a time");
    expect(ids).toEqual([1, 403, 407, 261, 378]);
    expect(await model.tokenize("Once", { bos: false })).toEqual(main.tokenize("Once", { bos: false }));
    expect(await model.detokenize(ids)).toBe(main.detokenize(ids));
    const rows = await model.logits(ids);
    const expected = main.logits(ids);
    expect(rows).toHaveLength(5);
    for (let i = 0; i < rows.length; i++) {
      expect(rows[i]).toBeInstanceOf(Float32Array);
      expect(Buffer.from(rows[i].buffer).equals(Buffer.from(expected[i].buffer))).toBe(true);
    }
  });

  test("chat matches main thread", async () => {
    const messages = [{ role: "user", content: "Tell me a story." }];
    const inWorker = await collect(model.chat(messages, { maxTokens: 40, temperature: 0 }));
    const inMain = await collect(main.chat(messages, { maxTokens: 40, temperature: 0 }));
    expect(inWorker.summary.prompt).toBe("User: Tell me a story.\n\nAssistant:");
    expect(inWorker.summary.text).toBe(inMain.summary.text);
    expect(inWorker.summary.tokens).toEqual(inMain.summary.tokens);
  });

  test("generate option error", async () => {
    const error = await rejection(model.generate("Once", { temperature: -1 }).next());
    const expected = await rejection((async () => main.generate("Once", { temperature: -1 }))());
    expect(error).toBeInstanceOf(dormant.OptionError);
    expect(fieldsOf(error)).toEqual(fieldsOf(expected));
    expect(error.message).toBe("generate: option temperature is -1, expected a finite number ≥ 0 (0 = greedy)");
  });

  test("setMode error", async () => {
    const error = await rejection(model.setMode("oracle"));
    expect(error).toBeInstanceOf(dormant.OptionError);
    expect(error.message).toBe(
      "setMode: option mode is \"oracle\", expected \"dense\" for a model without sparsity data (run dormant calibrate first)",
    );
    await model.setMode("dense");
    expect(model.mode).toBe("dense");
  });

  test("abort stops the worker", async () => {
    const long = await dormant.loadModel(longModelPath, { worker: true, contextLength: LONG_CONTEXT });
    try {
      const controller = new AbortController();
      const reason = new Error("stopped by the test");
      let pieces = 0;
      let abortedAt = 0;
      const error = await rejection((async () => {
        for await (const piece of long.generate("Once upon a time", { stopAtEos: false, signal: controller.signal })) {
          expect(piece.text).toBeTypeOf("string");
          if (++pieces === 5) {
            abortedAt = performance.now();
            controller.abort(reason);
          }
        }
      })());
      expect(error).toBe(reason);
      expect(pieces).toBe(5);
      // Requests queue behind a running generation, so a prompt answer shows that the run stopped.
      const rows = await long.logits([1]);
      const stoppedMs = performance.now() - abortedAt;
      expect(rows).toHaveLength(1);
      const started = performance.now();
      const full = await collect(long.generate("Once upon a time", { stopAtEos: false, seed: 1 }));
      longRunMs = performance.now() - started;
      expect(full.summary.stopReason).toBe("context");
      expect(stoppedMs).toBeLessThan(longRunMs / 4);

      // A consumer that breaks out of the loop stops the run too.
      for await (const piece of long.generate("Once upon a time", { stopAtEos: false })) {
        expect(piece.token).toBeGreaterThanOrEqual(0);
        break;
      }
      const breakStarted = performance.now();
      await long.tokenize("x");
      await long.logits([1]);
      expect(performance.now() - breakStarted).toBeLessThan(longRunMs / 4);
    } finally {
      long.dispose();
    }
  });

  test("timer fires during long run", async () => {
    const long = await dormant.loadModel(longModelPath, { worker: true, contextLength: LONG_CONTEXT });
    let ticks = 0;
    let maxGap = 0;
    const started = performance.now();
    let last = started;
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks++;
    }, 5);
    try {
      const run = await collect(long.generate("Once upon a time", { stopAtEos: false, seed: 1 }));
      const elapsed = performance.now() - started;
      expect(run.tokens.length).toBe(LONG_CONTEXT - 4);
      expect(elapsed).toBeGreaterThan(300);
      // A 5 ms timer on a free thread ticks about elapsed / 5 times. On the calling thread, generate()
      // yields every 20 ms, which allows about elapsed / 20 ticks.
      expect(ticks).toBeGreaterThan(elapsed / 5 / 2);
      expect(maxGap).toBeLessThan(250);
      console.log(`long run ${LONG_CONTEXT} positions: ${elapsed.toFixed(0)} ms, ${ticks} ticks of a 5 ms timer, longest gap ${maxGap.toFixed(1)} ms`);
    } finally {
      clearInterval(timer);
      long.dispose();
    }
  });

  test("dispose rejects later calls", async () => {
    const disposable = await dormant.loadModel(modelPath, { worker: true });
    const pending = disposable.logits([1, 403, 407]);
    disposable.dispose();
    const message = "Model: the model was disposed, expected a loaded model";
    expect((await rejection(pending)).message).toBe(message);
    const error = await rejection(disposable.tokenize("Once"));
    expect(error).toBeInstanceOf(dormant.OptionError);
    expect(error.message).toBe(message);
    expect((await rejection(disposable.generate("Once").next())).message).toBe(message);
  });
});

test("idle worker lets Node exit", async () => {
  // The script never calls dispose(); an idle worker must not keep the process alive.
  const script = [
    `const { loadModel } = await import(${JSON.stringify(pathToFileURL(join(repo, "dist", "index.js")).href)});`,
    `const model = await loadModel(${JSON.stringify(modelPath)}, { worker: true });`,
    "console.log(JSON.stringify(await model.tokenize(\"Once\")));",
  ].join("\n");
  const started = performance.now();
  const { stdout } = await run(process.execPath, ["--input-type=module", "--eval", script], { timeout: 20_000 });
  expect(stdout).toBe("[1,403]\n");
  expect(performance.now() - started).toBeLessThan(10_000);
});

describe("worker mode load errors", () => {
  test("missing file", async () => {
    const path = join(temporary, "missing.gguf");
    const error = await rejection(dormant.loadModel(path, { worker: true }));
    expect(error).toBeInstanceOf(dormant.ModelSourceError);
    expect(fieldsOf(error)).toEqual(fieldsOf(await rejection(dormant.loadModel(path))));
    expect(error.message).toBe(`loadModel: ${path}: file not found`);
  });

  test("truncated file", async () => {
    const path = join(temporary, "truncated.gguf");
    writeFileSync(path, readFileSync(modelPath).subarray(0, 5000));
    const error = await rejection(dormant.loadModel(path, { worker: true }));
    expect(error).toBeInstanceOf(dormant.FormatError);
    expect(fieldsOf(error)).toEqual(fieldsOf(await rejection(dormant.loadModel(path))));
  });

  test("File keeps its name", async () => {
    const file = new File([new Uint8Array(64)], "zeros.gguf");
    const error = await rejection(dormant.loadModel(file, { worker: true }));
    expect(error).toBeInstanceOf(dormant.FormatError);
    expect(error.source).toBe("zeros.gguf");
    expect(error.message).toBe((await rejection(dormant.loadModel(file))).message);
  });

  test("bad precision", async () => {
    const error = await rejection(dormant.loadModel(modelPath, { worker: true, precision: "f16" as "f32" }));
    expect(error).toBeInstanceOf(dormant.OptionError);
    expect(error.message).toBe("loadModel: option precision is \"f16\", expected \"int8\" or \"f32\"");
  });

  test("bad worker options", async () => {
    const notBoolean = await rejection(dormant.loadModel(modelPath, { worker: "yes" } as unknown as Dormant.WorkerLoadOptions));
    expect(notBoolean).toBeInstanceOf(dormant.OptionError);
    expect(notBoolean.message).toBe("loadModel: option worker is \"yes\", expected true or false");
    const withFetch = { worker: true, fetch: globalThis.fetch } as unknown as Dormant.WorkerLoadOptions;
    expect((await rejection(dormant.loadModel("stories260K", withFetch))).message).toBe(
      "loadModel: option fetch is a function, expected a value that can be copied to the worker (worker: true)",
    );
    const url = pathToFileURL(join(temporary, "no-worker.js"));
    const missingScript = await rejection(dormant.loadModel(modelPath, { worker: true, workerUrl: url }));
    expect(missingScript).toBeInstanceOf(dormant.DormantError);
    expect(missingScript.message).toMatch(new RegExp(`^loadModel: ${url.href}: worker failed: Cannot find module '.+no-worker\\.js'`));
    expect(missingScript.field).toBe("worker");
  });

  test("abort while loading", async () => {
    const reason = new Error("load stopped");
    expect(await rejection(dormant.loadModel(modelPath, { worker: true, signal: AbortSignal.abort(reason) }))).toBe(reason);
    const controller = new AbortController();
    const loading = dormant.loadModel(modelPath, { worker: true, signal: controller.signal });
    controller.abort(reason);
    expect(await rejection(loading)).toBe(reason);
  });

  test("onProgress error", async () => {
    const failure = new Error("progress callback failed");
    const error = await rejection(dormant.loadModel(modelPath, { worker: true, onProgress: () => { throw failure; } }));
    expect(error).toBe(failure);
  });
});

/** URL prefixes of the Chromium test server and the folders they serve. */
const mounts: Record<string, string> = {
  "/dist/": join(repo, "dist"),
  "/build/": join(repo, "build"),
  "/worker/models/": modelsDirectory,
  "/worker/": join(repo, "test", "worker"),
  "/long/": temporary,
};

describe("worker mode in Chromium", () => {
  let server: StaticServer | undefined;
  let origin = "";
  let browser: Chromium | undefined;
  const requests: string[] = [];

  beforeAll(async () => {
    server = await startStaticServer(mounts);
    origin = server.origin;
    browser = await launchChromium();
    browser.context.on("request", (request) => requests.push(request.url()));
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  test("same results as the page", async () => {
    const context = browser!.context;
    const page = context.pages()[0] ?? (await context.newPage());
    const pageErrors: string[] = [];
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(`${origin}/worker/page.html`);
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true, undefined, { timeout: 10_000 });
    type Check = (argument: { modelUrl: string; longUrl: string }) => Promise<Record<string, any>>;
    const result = await page.evaluate(
      (argument) => (window as unknown as { checkWorker: Check }).checkWorker(argument),
      { modelUrl: "models/stories260K.gguf", longUrl: `${origin}/long/stories260K-long.gguf` },
    );
    expect(pageErrors).toEqual([]);
    expect(result.kernels).toBe("simd128");
    expect(result.progress).toBeGreaterThan(2);
    expect(result.lastProgress).toEqual({ phase: "place", loaded: 48, total: 48 });
    expect(result.workerTokens).toHaveLength(64);
    expect(result.workerTokens).toEqual(result.pageTokens);
    expect(result.afterAbort).toEqual(result.workerTokens);
    expect(result.sameLogits).toBe(true);
    expect(result.logitRows).toBe(5);

    expect(result.optionError).toMatchObject({
      name: "OptionError", dormant: true, isOptionError: true, field: "temperature",
      message: "generate: option temperature is -1, expected a finite number ≥ 0 (0 = greedy)",
    });
    const missingUrl = `${origin}/worker/models/missing.gguf`;
    expect(result.missing).toMatchObject({
      name: "ModelSourceError", isSourceError: true, source: missingUrl,
      message: `loadModel: ${missingUrl}: HTTP status is 404 Not Found, expected 200`,
    });
    expect(result.missing.message).toBe(result.missingInPage.message);
    expect(result.abortedWithReason).toBe(true);
    expect(result.disposed).toMatchObject({ name: "OptionError", message: "Model: the model was disposed, expected a loaded model" });

    const run = result.run as { tokens: number; ticks: number; maxGap: number; milliseconds: number };
    console.log(`chromium long run: ${run.tokens} tokens in ${run.milliseconds.toFixed(0)} ms, ${run.ticks} ticks, longest gap ${run.maxGap.toFixed(1)} ms`);
    expect(run.tokens).toBe(1024 - 4);
    expect(run.ticks).toBeGreaterThan(run.milliseconds / 5 / 2);
    expect(run.maxGap).toBeLessThan(250);
  });

  test("requests stay on 127.0.0.1", () => {
    expect(requests.length).toBeGreaterThan(0);
    for (const url of requests) expect(new URL(url).origin, url).toBe(origin);
    const paths = requests.map((url) => new URL(url).pathname);
    expect(paths).toContain("/dist/dormant.worker.js");
    expect(paths).toContain("/worker/models/stories260K.gguf");
  });
});
