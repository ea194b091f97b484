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
   * Opens the page of an engine (bench/peers/NAME.html, whose script defines window.NAMEReady and
   * loadNAME, runNAME, unloadNAME with the name capitalized) and loads one model into it. Two or
   * more threads need the isolated server. Resolves to an engine: { info, run(), dispose() }.
   */
  async function openPage(name, { modelFile, threads, ...settings }) {
    const server = threads > 1 ? isolated : plain;
    const suffix = name[0].toUpperCase() + name.slice(1);
    const page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(`${server.url}/page/${name}.html`);
    await page.waitForFunction((flag) => window[flag] === true, `${name}Ready`);
    const modelUrl = `/models/${path.relative(modelDir, modelFile)}`;
    const info = await page.evaluate(([load, options]) => window[load](options), [`load${suffix}`, { modelUrl, threads, ...settings }]);
    return {
      info,
      kernels: info.kernels,
      run: () => page.evaluate((run) => window[run](), `run${suffix}`),
      dispose: async () => {
        await page.evaluate((unload) => window[unload](), `unload${suffix}`);
        await page.close();
      },
    };
  }

  /** Loads one model into wllama: { modelFile, threads, contextLength, prompt, tokens }. */
  const open = (options) => openPage("wllama", options);

  /** Loads one model into dormant (int8): { modelFile, threads, contextLength, promptTokens, tokens }. */
  const openDormant = (options) => openPage("dormant", options);

  async function close() {
    await context.close();
    await plain.close();
    await isolated.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }

  return { open, openDormant, close, pageErrors };
}
