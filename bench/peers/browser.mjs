// wllama in headless Chromium: one page per engine, served from a local server, one with
// cross-origin isolation (COOP + COEP) for threads and one without.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { serveFiles } from "./server.mjs";

const peersDir = path.dirname(fileURLToPath(import.meta.url));
export const wllamaPackage = path.join(peersDir, "node_modules", "@wllama", "wllama");

// The network is closed: without the last flags Chromium keeps trying to reach outside hosts.
const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/**
 * Starts Chromium and two servers (plain and isolated) that serve the page, the wllama package
 * and the given model folder at /models/. Resolves to { open(options), close() }.
 */
export async function startBrowser(modelDir) {
  const repo = path.resolve(peersDir, "../..");
  const roots = {
    "/wllama/": wllamaPackage, "/page/": peersDir, "/models/": modelDir,
    "/dist/": path.join(repo, "dist"), "/build/": path.join(repo, "build"),
  };
  const plain = await serveFiles(roots, { isolated: false });
  const isolated = await serveFiles(roots, { isolated: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "dormant-peers-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS,
  });
  const pageErrors = [];

  /**
   * Opens a page and loads one model into wllama. Two or more threads need the isolated server.
   * Resolves to an engine: { info, run(), dispose() }.
   */
  async function open({ modelFile, threads, contextLength, prompt, tokens }) {
    const server = threads > 1 ? isolated : plain;
    const page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(`${server.url}/page/wllama.html`);
    await page.waitForFunction(() => window.wllamaReady === true);
    const modelUrl = `/models/${path.relative(modelDir, modelFile)}`;
    const info = await page.evaluate((options) => window.loadWllama(options), { modelUrl, threads, contextLength, prompt, tokens });
    return {
      info,
      run: () => page.evaluate(() => window.runWllama()),
      dispose: async () => {
        await page.evaluate(() => window.unloadWllama());
        await page.close();
      },
    };
  }

  /**
   * Opens a page and loads one model into dormant (int8). Two or more threads need the isolated
   * server. Resolves to an engine: { info, run(), dispose() }.
   */
  async function openDormant({ modelFile, threads, contextLength, promptTokens, tokens }) {
    const server = threads > 1 ? isolated : plain;
    const page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(`${server.url}/page/dormant.html`);
    await page.waitForFunction(() => window.dormantReady === true);
    const modelUrl = `/models/${path.relative(modelDir, modelFile)}`;
    const info = await page.evaluate((options) => window.loadDormant(options), { modelUrl, threads, contextLength, promptTokens, tokens });
    return {
      info,
      kernels: info.kernels,
      run: () => page.evaluate(() => window.runDormant()),
      dispose: async () => {
        await page.evaluate(() => window.unloadDormant());
        await page.close();
      },
    };
  }

  async function close() {
    await context.close();
    await plain.close();
    await isolated.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }

  return { open, openDormant, close, pageErrors };
}
