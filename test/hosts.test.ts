// One computation on four hosts: Node 20 (this process), Deno 2 (spawned), and headless Chromium's
// main thread and a module Web Worker (pages served from 127.0.0.1). Each host loads stories260K,
// runs 64 greedy positions of "Once upon a time" at f32 and int8 with the exact simd128 module,
// and hashes the logits. Then it loads with kernels "auto" to see which module the host picks.
// The same hosts run llama.cpp's tokenizer test vectors through loadTokenizer (tokenizer-probe.js).

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync, createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { readModelSource, type SourceProgress } from "../src/source.js";
import { contentType, launchChromium, startStaticServer, type Chromium, type StaticRequest, type StaticServer } from "./helpers/browser.js";

const repo = fileURLToPath(new URL("..", import.meta.url));
const shared = fileURLToPath(new URL("../../shared", import.meta.url));
const modelsDirectory = join(shared, "models");
const modelPath = join(modelsDirectory, "stories260K.gguf");
const modelSize = statSync(modelPath).size;
const fixturesDirectory = join(shared, "fixtures", "tokenizers");
/** Vocabularies that have expected ids: ggml-vocab-NAME.gguf.out. */
const vocabNames = readdirSync(fixturesDirectory)
  .map((file) => /^ggml-vocab-(.+)\.gguf\.out$/.exec(file)?.[1])
  .filter((name): name is string => name !== undefined)
  .sort();
const nodeMajor = Number(process.versions.node.split(".")[0]);

interface GreedyRun {
  ids: number[];
  sha256: string;
  text: string;
}

interface HostResult {
  host: string;
  /** Global scope the probe saw: "node", "deno", "page" or "worker". */
  scope: string;
  f32: GreedyRun;
  int8: GreedyRun;
  auto: GreedyRun & { variant: string; dots: { matvec: string; prefill: string } | null };
  progress: SourceProgress[];
  milliseconds: number;
}

type Probe = (dormant: unknown, source: string, host: string) => Promise<HostResult>;

interface VocabResult {
  cases: number;
  mismatches: number[];
  roundTripFailures: number[];
  sha256: string;
}

interface TokenizerResult {
  host: string;
  scope: string;
  vocabs: Record<string, VocabResult>;
  milliseconds: number;
}

type TokenizerProbe = (
  dormant: unknown, readFixture: (file: string) => Promise<Uint8Array>, names: string[], host: string,
) => Promise<TokenizerResult>;

/**
 * URL prefixes of the test server and the folders they serve. "/plain/", "/chunked/" and
 * "/truncated/" serve the models folder too: "/chunked/" sends no Content-Length, and
 * "/truncated/" closes the connection after 1000 bytes.
 */
const mounts: Record<string, string> = {
  "/dist/": join(repo, "dist"),
  "/build/": join(repo, "build"),
  "/hosts/": join(repo, "test", "hosts"),
  "/models/": modelsDirectory,
  "/plain/": modelsDirectory,
  "/chunked/": modelsDirectory,
  "/truncated/": modelsDirectory,
  "/tokenizers/": fixturesDirectory,
};

/** URLs Chromium requested, from the page and the worker. */
const browserRequests: string[] = [];
const results = new Map<string, HostResult>();
const tokenizerResults = new Map<string, TokenizerResult>();
let server: StaticServer;
/** Paths the server received, in order. */
let served: string[] = [];
let origin = "";
let browser: Chromium | undefined;
let errorsInBrowser: string[] = [];
let singleServed: string[] = [];
let singleResult: { kernels: string; last: number[] } | undefined;

/** Sends the "/chunked/" and "/truncated/" responses, and returns false for other paths so the static server sends those. */
function serveCut({ response, url, file }: StaticRequest): boolean {
  const chunked = url.pathname.startsWith("/chunked/");
  if (!(chunked || url.pathname.startsWith("/truncated/"))) return false;
  const size = file === undefined ? undefined : statSync(file, { throwIfNoEntry: false });
  if (!file || !size?.isFile()) return false;
  if (chunked) {
    // No Content-Length: the body arrives with chunked transfer encoding.
    response.writeHead(200, { "content-type": contentType(file) });
    createReadStream(file).pipe(response);
  } else {
    response.writeHead(200, { "content-type": contentType(file), "content-length": String(size.size) });
    response.write(readFileSync(file).subarray(0, 1000), () => response.destroy());
  }
  return true;
}

async function startServer(): Promise<void> {
  server = await startStaticServer(mounts, { headers: { "cache-control": "no-store" }, handle: serveCut });
  served = server.served;
  origin = server.origin;
}

/** Runs a script of test/hosts in Deno, with read access to the repository and shared folder only. */
function runDeno<T>(script: string, ...scriptArgs: string[]): Promise<T> {
  const args = [
    "deno", "run", "--no-remote", "--no-lock", "--no-config", "--no-prompt",
    `--allow-read=${repo.replace(/\/$/, "")},${shared}`, join(repo, "test", "hosts", script), ...scriptArgs,
  ];
  return new Promise((done, fail) => {
    const child = spawn("npx", args, { cwd: repo, env: { ...process.env, DENO_NO_UPDATE_CHECK: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
    child.on("error", fail);
    child.on("close", (code) => {
      const line = stdout.trim().split("\n").pop() ?? "";
      if (code !== 0 || !line.startsWith("{")) fail(new Error(`npx ${args.join(" ")} exited with ${code}: ${stderr.trim() || stdout.trim()}`));
      else done(JSON.parse(line) as T);
    });
  });
}

/**
 * Runs the probe in Chromium's main thread and in a module worker, then the single-file bundle,
 * then the tokenizer probe in the main thread and in a worker.
 */
async function runChromium(): Promise<[HostResult, HostResult, TokenizerResult, TokenizerResult]> {
  browser = await launchChromium();
  const context = browser.context;
  context.on("request", (request) => browserRequests.push(request.url()));
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  page.on("pageerror", (error) => pageErrors.push(error.message));
  await page.goto(`${origin}/hosts/index.html`);
  await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true, undefined, { timeout: 10_000 })
    .catch(() => { throw new Error(`page did not load: ${pageErrors.join("; ") || "no error reported"}`); });
  const modelUrl = `${origin}/models/stories260K.gguf`;
  type PageFunctions = Record<string, (argument: string) => Promise<unknown>>;
  const main = (await page.evaluate((url) => (window as unknown as PageFunctions).probeMain(url), modelUrl)) as HostResult;
  // A relative string is a URL in browsers, resolved against the worker script's address.
  const worker = (await page.evaluate((url) => (window as unknown as PageFunctions).probeWorker(url), "../models/stories260K.gguf")) as HostResult;
  errorsInBrowser = (await page.evaluate((base) => (window as unknown as PageFunctions).probeErrors(base), origin)) as string[];
  const before = served.length;
  singleResult = (await page.evaluate((url) => (window as unknown as PageFunctions).probeSingle(url), modelUrl)) as typeof singleResult;
  singleServed = served.slice(before);

  const tokenizerArgument = { fixturesUrl: `${origin}/tokenizers/`, names: vocabNames };
  type TokenizerFunctions = Record<string, (argument: typeof tokenizerArgument) => Promise<TokenizerResult>>;
  // One after the other: on two cores, running both at once takes longer than this.
  const tokenizersMain = await page.evaluate((argument) => (window as unknown as TokenizerFunctions).probeTokenizersMain(argument), tokenizerArgument);
  const tokenizersWorker = await page.evaluate((argument) => (window as unknown as TokenizerFunctions).probeTokenizersWorker(argument), tokenizerArgument);
  return [main, worker, tokenizersMain, tokenizersWorker];
}

beforeAll(async () => {
  await startServer();
  // Deno runs its two scripts one after the other, beside Chromium and this process.
  const deno = runDeno<HostResult>("deno-probe.js", modelPath).then(async (result) => {
    const tokenizers = await runDeno<TokenizerResult>("deno-tokenizer-probe.js", fixturesDirectory, vocabNames.join(","));
    return [result, tokenizers] as const;
  });
  const chromiumRun = runChromium();
  const dormant: unknown = await import(pathToFileURL(join(repo, "dist", "index.js")).href);
  const { probeHost } = (await import(pathToFileURL(join(repo, "test", "hosts", "probe.js")).href)) as { probeHost: Probe };
  const { probeTokenizers } = (await import(pathToFileURL(join(repo, "test", "hosts", "tokenizer-probe.js")).href)) as {
    probeTokenizers: TokenizerProbe;
  };
  const nodeHost = `node ${process.versions.node}`;
  results.set("node", await probeHost(dormant, modelPath, nodeHost));
  const readFixture = async (file: string) => new Uint8Array(await readFile(join(fixturesDirectory, file)));
  tokenizerResults.set("node", await probeTokenizers(dormant, readFixture, vocabNames, nodeHost));
  const [denoResult, denoTokenizers] = await deno;
  results.set("deno", denoResult);
  tokenizerResults.set("deno", denoTokenizers);
  const [main, worker, tokenizersMain, tokenizersWorker] = await chromiumRun;
  results.set("chromium", main);
  results.set("worker", worker);
  tokenizerResults.set("chromium", tokenizersMain);
  tokenizerResults.set("worker", tokenizersWorker);
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

const short = (hash: string) => hash.slice(0, 16);

describe("hosts", () => {
  test("same logits on four hosts", () => {
    const rows = [...results.values()];
    const lines = [
      "| host | ms | greedy ids (sha-256 of JSON) | f32 logits sha-256 | int8 logits sha-256 |",
      "| --- | ---: | --- | --- | --- |",
    ];
    for (const row of rows) {
      const idsHash = short(createHashHex(JSON.stringify([row.f32.ids, row.int8.ids])));
      lines.push(`| ${row.host} | ${row.milliseconds} | ${idsHash} | ${short(row.f32.sha256)} | ${short(row.int8.sha256)} |`);
    }
    console.log(`${lines.join("\n")}\nf32 text: ${JSON.stringify(rows[0].f32.text)}`);
    expect(rows.map((row) => row.scope)).toEqual(["node", "deno", "page", "worker"]);
    expect(rows[0].f32.text.startsWith("Once upon a time, there was a little girl named Lily.")).toBe(true);
    for (const row of rows.slice(1)) {
      expect(row.f32.ids, row.host).toEqual(rows[0].f32.ids);
      expect(row.int8.ids, row.host).toEqual(rows[0].int8.ids);
      expect(row.f32.sha256, row.host).toBe(rows[0].f32.sha256);
      expect(row.int8.sha256, row.host).toBe(rows[0].int8.sha256);
    }
  });

  test("same tokenizer ids on four hosts", () => {
    const rows = [...tokenizerResults.values()];
    const lines = [
      `| host | ms | cases | mismatches | round-trip failures | ${vocabNames.map((name) => `${name} ids sha-256`).join(" | ")} |`,
      `| --- | ---: | ---: | ---: | ---: | ${vocabNames.map(() => "---").join(" | ")} |`,
    ];
    for (const row of rows) {
      const vocabs = vocabNames.map((name) => row.vocabs[name]);
      const sum = (count: (vocab: VocabResult) => number) => vocabs.reduce((total, vocab) => total + count(vocab), 0);
      lines.push(
        `| ${row.host} | ${row.milliseconds} | ${sum((v) => v.cases)} | ${sum((v) => v.mismatches.length)} | ` +
          `${sum((v) => v.roundTripFailures.length)} | ${vocabs.map((v) => v.sha256.slice(0, 12)).join(" | ")} |`,
      );
    }
    console.log(lines.join("\n"));
    expect(vocabNames).toEqual(["gpt-2", "llama-bpe", "llama-spm", "phi-3", "qwen2", "starcoder"]);
    expect(rows.map((row) => row.scope)).toEqual(["node", "deno", "page", "worker"]);
    for (const row of rows) {
      for (const name of vocabNames) {
        const vocab = row.vocabs[name];
        expect(vocab.cases, `${row.host} ${name}`).toBe(46);
        expect(vocab.mismatches, `${row.host} ${name} cases whose ids differ`).toEqual([]);
        expect(vocab.roundTripFailures, `${row.host} ${name} cases that do not round-trip`).toEqual([]);
        expect(vocab.sha256, `${row.host} ${name}`).toBe(rows[0].vocabs[name].sha256);
      }
    }
  });

  test("kernel module per host", () => {
    const lines = [
      "| host | auto picks | dots kept (matvec, prefill) | int8 ids simd128 = relaxed | int8 logits bit-identical |",
      "| --- | --- | --- | --- | --- |",
    ];
    for (const [name, row] of results) {
      const relaxed = row.auto.variant === "relaxed-simd";
      const sameIds = relaxed ? String(JSON.stringify(row.auto.ids) === JSON.stringify(row.int8.ids)) : "(no relaxed module)";
      const sameLogits = relaxed ? String(row.auto.sha256 === row.int8.sha256) : "(no relaxed module)";
      const dots = row.auto.dots ? `${row.auto.dots.matvec}, ${row.auto.dots.prefill}` : "(none)";
      lines.push(`| ${name} | ${row.auto.variant} | ${dots} | ${sameIds} | ${sameLogits} |`);
    }
    for (const [name, row] of results) {
      if (row.auto.variant !== "relaxed-simd") continue;
      lines.push(`${name} int8 simd128:      ${row.int8.ids.join(" ")}`, `${name} int8 relaxed-simd: ${row.auto.ids.join(" ")}`);
    }
    console.log(lines.join("\n"));
    // Node 20 rejects relaxed SIMD without V8 flags. Deno 2.9 and Chromium 156 validate it and pass the self-test.
    if (nodeMajor < 22) {
      expect(WebAssembly.validate(readFileSync(join(repo, "build", "dormant-relaxed.wasm")))).toBe(false);
      expect(results.get("node")?.auto.variant).toBe("simd128");
    }
    for (const name of ["deno", "chromium", "worker"]) expect(results.get(name)?.auto.variant, name).toBe("relaxed-simd");
    // the relaxed module times its two dots at load and reports which it kept; simd128 has one
    for (const [name, row] of results) {
      if (row.auto.variant === "relaxed-simd") {
        expect(["relaxed", "exact"], `${name} matvec dot`).toContain(row.auto.dots?.matvec);
        expect(["relaxed", "exact"], `${name} prefill dot`).toContain(row.auto.dots?.prefill);
      } else {
        expect(row.auto.dots, name).toBeNull();
      }
    }
    for (const [name, row] of results) expect(row.auto.ids, name).toEqual(row.int8.ids);
  });

  test("fetch reports Content-Length progress", () => {
    for (const name of ["chromium", "worker"]) {
      const progress = (results.get(name)?.progress ?? []).filter((event) => event.phase === "download");
      expect(progress[0], name).toEqual({ phase: "download", file: "stories260K.gguf", loaded: 0, total: modelSize });
      expect(progress[progress.length - 1], name).toEqual({ phase: "download", file: "stories260K.gguf", loaded: modelSize, total: modelSize });
      for (let i = 1; i < progress.length; i++) expect(progress[i].loaded).toBeGreaterThan(progress[i - 1].loaded);
    }
  });

  test("browser requests stay local", () => {
    expect(browserRequests.length).toBeGreaterThan(0);
    expect(browserRequests.filter((url) => !url.startsWith(`${origin}/`))).toEqual([]);
    // The worker fetched the model and the wasm modules itself, so the server saw them at least twice.
    expect(served.filter((path) => path === "/models/stories260K.gguf").length).toBeGreaterThanOrEqual(6);
    expect(served.filter((path) => path === "/build/dormant.wasm").length).toBeGreaterThanOrEqual(2);
  });

  test("browser error messages", () => {
    expect(errorsInBrowser).toEqual([
      `ModelSourceError: loadModel: ${origin}/models/missing.gguf: HTTP status is 404 Not Found, expected 200`,
      "FormatError: readModelFile: <blob>: magic is 01 02 03 04 (\"....\"), expected \"GGUF\" or a plausible llama2.c v0 checkpoint header " +
        "(neither format: as a llama2.c header, header is 4 bytes, expected 28 bytes (7 int32))",
    ]);
  });

  test("single-file bundle reads no wasm", () => {
    expect(singleResult?.kernels).toBe("simd128");
    expect(singleServed.filter((path) => path.endsWith(".wasm"))).toEqual([]);
    expect(singleServed).toContain("/dist/dormant.single.js");
  });

  test("sizes", () => {
    for (const file of ["build/dormant.wasm", "build/dormant-relaxed.wasm", "build/dormant-threads.wasm", "build/dormant-threads-relaxed.wasm"]) {
      expect(statSync(join(repo, file)).size, file).toBeLessThanOrEqual(64 * 1024);
    }
    // The page loads the entry and the chunks it imports statically; the chat chunk loads on first chat().
    const entry = readFileSync(join(repo, "dist/dormant.browser.js"), "utf8");
    const chunks = [...entry.matchAll(/from\s*"\.\/(chunks\/[^"]+\.js)"/g)].map((match) => match[1]);
    const startup = statSync(join(repo, "dist/dormant.browser.js")).size +
      chunks.reduce((sum, chunk) => sum + statSync(join(repo, "dist", chunk)).size, 0);
    expect(startup).toBeLessThanOrEqual(100 * 1024);
    // The catalog and download code (paths and catalog names: Node and Deno) is in a chunk the page never loads.
    const startupText = [entry, ...chunks.map((chunk) => readFileSync(join(repo, "dist", chunk), "utf8"))].join("");
    expect(startupText).not.toContain("models/catalog.json");
    expect(entry).toMatch(/import\("\.\/chunks\/catalog-[^"]+\.js"\)/);
  });
});

describe("readModelSource", () => {
  const fileBytes = readFileSync(modelPath);

  test("URL with Content-Length", async () => {
    const progress: SourceProgress[] = [];
    const { bytes, name } = await readModelSource(`${origin}/plain/stories260K.gguf`, { onProgress: (p) => progress.push(p) });
    expect(name).toBe(`${origin}/plain/stories260K.gguf`);
    expect(Buffer.from(bytes).equals(fileBytes)).toBe(true);
    expect(progress[0]).toEqual({ phase: "download", file: "stories260K.gguf", loaded: 0, total: modelSize });
    expect(progress[progress.length - 1]).toEqual({ phase: "download", file: "stories260K.gguf", loaded: modelSize, total: modelSize });
  });

  test("URL without Content-Length", async () => {
    const progress: SourceProgress[] = [];
    const { bytes } = await readModelSource(new URL(`${origin}/chunked/stories260K.gguf`), { onProgress: (p) => progress.push(p) });
    expect(Buffer.from(bytes).equals(fileBytes)).toBe(true);
    expect(progress.every((p) => p.total === undefined)).toBe(true);
    expect(progress[progress.length - 1].loaded).toBe(modelSize);
  });

  test("file URL", async () => {
    const { bytes, name } = await readModelSource(pathToFileURL(modelPath));
    expect(name).toBe(modelPath);
    expect(bytes.byteLength).toBe(modelSize);
  });

  test("Blob and File", async () => {
    const progress: SourceProgress[] = [];
    const file = new File([fileBytes], "model.gguf");
    const { bytes, name } = await readModelSource(file, { onProgress: (p) => progress.push(p) });
    expect(name).toBe("model.gguf");
    expect(Buffer.from(bytes).equals(fileBytes)).toBe(true);
    expect(progress[progress.length - 1]).toEqual({ phase: "read", file: "model.gguf", loaded: modelSize, total: modelSize });
    expect((await readModelSource(new Blob([fileBytes.subarray(0, 10)]))).name).toBe("<blob>");
  });

  test("bytes kept without copy", async () => {
    const view = new Uint8Array(fileBytes.buffer, fileBytes.byteOffset, 64);
    expect((await readModelSource(view)).bytes).toBe(view);
    const dataView = new DataView(fileBytes.buffer, fileBytes.byteOffset, 8);
    expect((await readModelSource(dataView)).bytes.buffer).toBe(fileBytes.buffer);
  });

  test("HTTP 404", async () => {
    await expect(readModelSource(`${origin}/models/none.gguf`)).rejects.toThrow(
      `loadModel: ${origin}/models/none.gguf: HTTP status is 404 Not Found, expected 200`,
    );
  });

  test("body shorter than Content-Length", async () => {
    await expect(readModelSource(`${origin}/truncated/stories260K.gguf`, { where: "fetchModel" })).rejects.toThrow(
      new RegExp(`^fetchModel: ${origin}/truncated/stories260K.gguf: (download stopped after 1000 bytes: .+|body length is 1000 bytes, expected ${modelSize} bytes .+)$`),
    );
  });

  test("unreachable port", async () => {
    const closed = createServer();
    await new Promise<void>((done) => closed.listen(0, "127.0.0.1", done));
    const address = closed.address();
    const port = typeof address === "object" && address ? address.port : 0;
    await new Promise((done) => closed.close(done));
    await expect(readModelSource(`http://127.0.0.1:${port}/m.gguf`)).rejects.toThrow(
      `loadModel: http://127.0.0.1:${port}/m.gguf: request failed: connect ECONNREFUSED 127.0.0.1:${port}`,
    );
  });

  test("wrong source type", async () => {
    await expect(readModelSource(42 as unknown as string)).rejects.toThrow(
      "loadModel: option source is a number, expected a path or catalog name, a URL, a Blob or File, an ArrayBuffer or a Uint8Array",
    );
    await expect(readModelSource({} as unknown as string)).rejects.toThrow("loadModel: option source is an object (Object), expected");
  });
});

function createHashHex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
