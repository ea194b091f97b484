// examples/web in headless Chromium: serve.mjs serves the page, dist/, build/ and the shared models
// folder on 127.0.0.1, and the page loads stories260K in a worker and streams a story.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { launchChromium, type Chromium } from "./helpers/browser.js";

const repo = fileURLToPath(new URL("..", import.meta.url));
const modelsDirectory = fileURLToPath(new URL("../../shared/models", import.meta.url));
const screenshotPath = join(repo, "test", "out", "examples-web.png");

interface ExampleState {
  state: string;
  progress: Array<{ phase: string; loaded: number; total?: number }>;
  text: string;
  summary: { generatedTokens: number; tokensPerSecond: number; stopReason: string } | null;
  error: string | null;
  kernels: string | null;
  threads: number | null;
}

let server: ChildProcess | undefined;
let origin = "";
let serverErrors = "";
let browser: Chromium | undefined;
const requests: string[] = [];

/** Starts serve.mjs on a free port and resolves with its address from the first stdout line. */
function startServer(): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [join(repo, "examples", "web", "serve.mjs"), "--models", modelsDirectory, "--port", "0"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    server = child;
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk;
      const match = /serving (http:\/\/127\.0\.0\.1:\d+)\//.exec(stdout);
      if (match) done(match[1]);
    });
    child.stderr.on("data", (chunk: Buffer) => (serverErrors += chunk));
    child.on("error", fail);
    child.on("exit", (code) => fail(new Error(`serve.mjs exited with ${code}: ${serverErrors}`)));
  });
}

beforeAll(async () => {
  origin = await startServer();
  browser = await launchChromium();
  browser.context.on("request", (request) => requests.push(request.url()));
}, 30_000);

afterAll(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
});

describe("examples/web", () => {
  test("streams a story", async () => {
    const context = browser!.context;
    const page = context.pages()[0] ?? (await context.newPage());
    const pageErrors: string[] = [];
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(`${origin}/?seed=7`);
    const handle = await page.waitForFunction(() => {
      const example = (window as unknown as { dormantExample?: ExampleState }).dormantExample;
      return example && (example.state === "done" || example.state === "error") ? example : undefined;
    }, undefined, { timeout: 20_000 });
    const example = (await handle.jsonValue()) as ExampleState;
    mkdirSync(join(repo, "test", "out"), { recursive: true });
    await page.screenshot({ path: screenshotPath, fullPage: true });

    expect(pageErrors).toEqual([]);
    expect(example.error).toBeNull();
    expect(example.state).toBe("done");
    expect(example.text.trim().length).toBeGreaterThan(20);
    expect(example.summary?.generatedTokens).toBeGreaterThan(10);
    expect(example.summary?.tokensPerSecond).toBeGreaterThan(0);
    expect(example.progress.some((p) => p.phase === "download")).toBe(true);
    const lastDownload = example.progress.filter((p) => p.phase === "download").pop();
    expect(lastDownload?.loaded).toBe(lastDownload?.total);

    const storyText = await page.textContent("#story");
    expect(storyText).toBe(`Once upon a time${example.text}`);
    expect(await page.textContent("#speed")).toMatch(/^\d+ tokens, \d+ tokens\/s in the worker \(\S+, int8, 2 threads\)/);
    // serve.mjs makes the page cross-origin isolated, so the model runs on the 2 threads it requests
    expect(example.threads).toBe(2);
    expect(await page.getAttribute("#progress", "value")).toBe("1");
  });

  test("load error keeps the button disabled", async () => {
    const page = await browser!.context.newPage();
    await page.goto(`${origin}/?model=models/missing.gguf`);
    const handle = await page.waitForFunction(() => {
      const example = (window as unknown as { dormantExample?: ExampleState }).dormantExample;
      return example && example.state === "error" ? example : undefined;
    }, undefined, { timeout: 20_000 });
    const example = (await handle.jsonValue()) as ExampleState;
    const disabled = await page.isDisabled("#write");
    await page.close();

    expect(example.error).toContain("missing.gguf");
    expect(example.error).toContain("404");
    expect(disabled).toBe(true);
  });

  test("requests stay on 127.0.0.1", () => {
    const paths = requests.map((url) => new URL(url).pathname);
    expect(requests.length).toBeGreaterThan(0);
    for (const url of requests) expect(new URL(url).origin, url).toBe(origin);
    // The model runs in the worker script beside the bundle, which reads the wasm modules from build/.
    expect(paths).toContain("/dist/dormant.worker.js");
    // the worker starts the model's second thread from the thread script beside the bundle
    expect(paths).toContain("/dist/dormant.thread.js");
    expect(paths).toContain("/models/stories260K.gguf");
    expect(paths.some((path) => path.startsWith("/build/dormant"))).toBe(true);
  });
});
