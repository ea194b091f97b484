// Threads in headless Chromium: a cross-origin isolated page runs stories260K on 2 threads (Web
// Workers over one shared memory) with the bits of 1 thread, and a page without isolation falls
// back to 1 thread and gives the reason.

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium, startStaticServer, type Chromium, type StaticServer } from "./helpers/browser.js";

const repo = fileURLToPath(new URL("..", import.meta.url));
const mounts = {
  "/dist/": join(repo, "dist"),
  "/build/": join(repo, "build"),
  "/models/": fileURLToPath(new URL("../../shared/models", import.meta.url)),
};
/**
 * The page: window.probe(threads) computes the logits of a prompt and 32 greedy tokens on 1 thread
 * and on `threads`. It is page source rather than a function for page.evaluate, because vitest
 * rewrites dynamic imports in this file.
 */
const PAGE = `<!doctype html><title>dormant threads</title><script type="module">
import { loadModel } from "/dist/dormant.browser.js";
const bits = (rows) => rows.map((row) => Array.from(new Uint32Array(row.buffer)).join()).join(";");
async function greedy(model) {
  const tokens = [];
  let text = "";
  for await (const piece of model.generate("Once upon a time", { maxTokens: 32, temperature: 0 })) {
    tokens.push(piece.token);
    text += piece.text;
  }
  return { tokens: tokens.join(), text };
}
window.probe = async (threads) => {
  const single = await loadModel("/models/stories260K.gguf");
  const threaded = await loadModel("/models/stories260K.gguf", { threads });
  const ids = single.tokenize("Once upon a time, there was a little girl named Lily. She loved to play outside with her friends in the big park.");
  const sameLogits = bits(single.logits(ids)) === bits(threaded.logits(ids));
  const x = await greedy(single);
  const y = await greedy(threaded);
  const stats = threaded.stats();
  single.dispose();
  threaded.dispose();
  return {
    isolated: crossOriginIsolated, threads: stats.threads, note: stats.threadsNote ?? null,
    sameLogits, sameTokens: x.tokens === y.tokens, text: y.text,
  };
};
window.ready = true;
</script>`;
const pages = { "/index.html": PAGE };

interface ProbeResult {
  isolated: boolean;
  threads: number;
  note: string | null;
  sameLogits: boolean;
  sameTokens: boolean;
  text: string;
}

let isolatedServer: StaticServer;
let plainServer: StaticServer;
let browser: Chromium;
const pageErrors: string[] = [];

beforeAll(async () => {
  isolatedServer = await startStaticServer(mounts, { isolated: true, pages });
  plainServer = await startStaticServer(mounts, { pages });
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await isolatedServer?.close();
  await plainServer?.close();
});

async function runPage(origin: string, threads: number): Promise<ProbeResult> {
  const page = await browser.context.newPage();
  page.on("pageerror", (error) => pageErrors.push(error.message));
  try {
    await page.goto(`${origin}/index.html`);
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    return await page.evaluate((count) => (window as unknown as { probe(count: number): Promise<ProbeResult> }).probe(count), threads);
  } finally {
    await page.close();
  }
}

describe("threads in Chromium", () => {
  it("a cross-origin isolated page runs 2 threads with the bits of 1", async () => {
    const result = await runPage(isolatedServer.origin, 2);
    expect(result.isolated).toBe(true);
    expect(result.threads).toBe(2);
    expect(result.note).toBeNull();
    expect(result.sameLogits).toBe(true);
    expect(result.sameTokens).toBe(true);
    expect(result.text.length).toBeGreaterThan(20);
    expect(isolatedServer.served).toContain("/dist/dormant.thread.js");
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it("a page without isolation falls back to 1 thread", async () => {
    const result = await runPage(plainServer.origin, 2);
    expect(result.isolated).toBe(false);
    expect(result.threads).toBe(1);
    expect(result.note).toBe(
      "1 of 2 threads runs: the page is not cross-origin isolated (serve it with COOP same-origin and COEP require-corp), so SharedArrayBuffer is unavailable",
    );
    expect(result.sameLogits).toBe(true);
    expect(plainServer.served).not.toContain("/dist/dormant.thread.js");
    expect(pageErrors).toEqual([]);
  }, 60_000);
});
