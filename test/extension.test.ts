// The Manifest V3 example in examples/extension, driven in headless Chromium. The test builds the
// extension with stories260K, loads it unpacked, selects text in a page served from 127.0.0.1 and
// clicks the extension's toolbar button through CDP (Extensions.triggerAction). That click is the
// user gesture which grants activeTab, so the flow is the one a user starts.

import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BrowserContext, CDPSession, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { launchChromium, listen, startStaticServer, type Chromium, type StaticServer } from "./helpers/browser.js";

const repo = fileURLToPath(new URL("..", import.meta.url));
const modelPath = fileURLToPath(new URL("../../shared/models/stories260K.gguf", import.meta.url));
const screenshotPath = join(repo, "test", "out", "extension.png");

const SELECTED = "Once upon a time, there was a little girl";
const BEFORE = "A story to continue: ";
const AFTER = " (the end of the paragraph)";
const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>dormant extension test</title></head>
<body style="font: 18px/1.5 serif; margin: 40px; max-width: 720px">
<h1>dormant extension test</h1>
<p id="story">${BEFORE}${SELECTED}${AFTER}</p>
<p id="other">Another paragraph that nothing selects.</p>
<textarea id="notes" cols="60" rows="4">${SELECTED}</textarea>
</body>
</html>`;

/**
 * Hosts that Chromium 156 itself contacts with the flags below, with or without any extension
 * loaded (measured with the same launch and no extension): update.googleapis.com (an on-demand
 * component update check at startup), accounts.google.com (at startup) and
 * content-autofill.googleapis.com (autofill field-type queries for the page's textarea). The flags
 * that would stop the last one replace Playwright's own --disable-features list, so the test
 * allows these hosts by name.
 */
const CHROMIUM_SERVICE_HOSTS = ["update.googleapis.com", "accounts.google.com", "content-autofill.googleapis.com"];

/** Returns the host of a proxied request line: "CONNECT host:443" or an absolute http:// URL. */
function proxiedHost(line: string): string {
  return line.startsWith("CONNECT ") ? line.slice("CONNECT ".length).replace(/:\d+$/, "") : new URL(line).hostname;
}

/** A reply of the extension's message API. */
interface ContinueResult {
  continuation?: string;
  tokens?: number;
  model?: string;
  modelUrl?: string;
  kernels?: string;
  error?: string;
}

let workDirectory = "";
let extensionDirectory = "";
let buildOutput = "";
let pageServer: StaticServer | undefined;
let pageOrigin = "";
/** Chromium sends every request for a host other than loopback to this proxy, which logs and refuses it. */
let proxyServer: Server;
const proxied: string[] = [];
/** URLs the page requested. Playwright reports no requests of the offscreen document and its worker. */
const requests: string[] = [];
let browser: Chromium | undefined;
let context: BrowserContext;
let browserSession: CDPSession;
let extensionId = "";
let commands: { name?: string; shortcut?: string }[] = [];
let page: Page;

/** Clicks the extension's toolbar button for the test page's tab, as a user would. */
async function clickAction(): Promise<void> {
  const { targetInfos } = await browserSession.send("Target.getTargets", { filter: [{ type: "tab" }] });
  const tab = targetInfos.find((target) => target.url.startsWith(pageOrigin));
  if (!tab) throw new Error(`no tab shows ${pageOrigin}: ${targetInfos.map((target) => target.url).join(", ")}`);
  await browserSession.send("Extensions.triggerAction", { id: extensionId, targetId: tab.targetId });
}

/**
 * Clicks the toolbar button until the content script shows its status box, at most three times,
 * and returns the number of clicks.
 * NOTE: in full-suite runs a click sometimes injected no content script, and the tests after it
 * failed. The same test passed alone each time. Why the click was lost is not known.
 */
async function clickActionUntilInjected(): Promise<number> {
  for (let click = 1; click <= 3; click++) {
    await clickAction();
    try {
      await page.waitForSelector("#dormant-status", { timeout: 5_000 });
      return click;
    } catch {
      console.warn(`extension test: click ${click} on the toolbar button showed no status box within 5 s`);
    }
  }
  throw new Error("three clicks on the toolbar button injected no content script into the page");
}

/** Selects SELECTED inside the paragraph's one text node, as dragging the mouse over it would. */
async function selectPrompt(): Promise<string> {
  return page.evaluate(([start, end]) => {
    const text = document.getElementById("story")!.firstChild!;
    const range = document.createRange();
    range.setStart(text, start);
    range.setEnd(text, end);
    const selection = getSelection()!;
    selection.removeAllRanges();
    selection.addRange(range);
    return selection.toString();
  }, [BEFORE.length, BEFORE.length + SELECTED.length]);
}

/** Sends `message` with chrome.runtime.sendMessage from the content script's world in the page. */
async function sendFromContentScript(message: object): Promise<ContinueResult> {
  const session = await context.newCDPSession(page);
  const worlds: { id: number; origin: string; auxData?: { type?: string } }[] = [];
  session.on("Runtime.executionContextCreated", (event) => worlds.push(event.context));
  // Runtime.enable reports every existing execution context before it returns.
  await session.send("Runtime.enable");
  const world = worlds.find((candidate) => candidate.auxData?.type === "isolated" && candidate.origin === `chrome-extension://${extensionId}`);
  if (!world) throw new Error(`no content script world in the page: ${worlds.map((candidate) => candidate.origin).join(", ")}`);
  const { result, exceptionDetails } = await session.send("Runtime.evaluate", {
    contextId: world.id, expression: `chrome.runtime.sendMessage(${JSON.stringify(message)})`, awaitPromise: true, returnByValue: true,
  });
  await session.detach();
  if (exceptionDetails) throw new Error(`sendMessage failed: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`);
  return result.value as ContinueResult;
}

beforeAll(async () => {
  workDirectory = mkdtempSync(join(tmpdir(), "dormant-extension-"));
  extensionDirectory = join(workDirectory, "extension");
  const build = spawnSync(process.execPath, ["examples/extension/build.mjs", "--model", modelPath, "--out", extensionDirectory], {
    cwd: repo, encoding: "utf8",
  });
  if (build.status !== 0) throw new Error(`build.mjs exited with ${build.status}: ${build.stderr}`);
  buildOutput = build.stdout;

  pageServer = await startStaticServer({}, { pages: { "/": PAGE } });
  pageOrigin = pageServer.origin;
  proxyServer = createServer((request, response) => {
    proxied.push(request.url ?? "");
    response.writeHead(403).end();
  });
  proxyServer.on("connect", (request, socket) => {
    proxied.push(`CONNECT ${request.url}`);
    socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
  });
  const proxyOrigin = await listen(proxyServer);

  // With Chromium 156, headless: true (Playwright passes --headless) is the new headless mode,
  // which loads extensions. --enable-unsafe-extension-debugging enables the CDP Extensions domain.
  browser = await launchChromium({
    args: [
      `--disable-extensions-except=${extensionDirectory}`, `--load-extension=${extensionDirectory}`,
      "--enable-unsafe-extension-debugging", `--proxy-server=${proxyOrigin}`,
    ],
  });
  context = browser.context;
  context.on("request", (request) => requests.push(request.url()));
  const serviceWorker = context.serviceWorkers()[0] ?? (await context.waitForEvent("serviceworker", { timeout: 10_000 }));
  extensionId = new URL(serviceWorker.url()).host;
  type Commands = { commands: { getAll(): Promise<typeof commands> } };
  commands = await serviceWorker.evaluate(() => (globalThis as unknown as { chrome: Commands }).chrome.commands.getAll());
  const contextBrowser = context.browser();
  if (!contextBrowser) throw new Error("the persistent context has no browser to open a CDP session on");
  browserSession = await contextBrowser.newBrowserCDPSession();
  page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`${pageOrigin}/`);
}, 30_000);

afterAll(async () => {
  await browser?.close();
  await pageServer?.close();
  await new Promise((done) => (proxyServer ? proxyServer.close(done) : done(undefined)));
  if (workDirectory) rmSync(workDirectory, { recursive: true, force: true });
});

describe("extension", () => {
  let pageResult: { story: string; continuation: string; before: string; after: string; status: string };

  test("build output", () => {
    expect(buildOutput).toContain(`extension folder ${extensionDirectory}`);
    expect(buildOutput).toContain("model stories260K.gguf");
    const manifest = JSON.parse(readFileSync(join(extensionDirectory, "manifest.json"), "utf8"));
    expect(manifest.manifest_version).toBe(3);
    expect(manifest.permissions).toEqual(["activeTab", "scripting", "contextMenus", "offscreen"]);
    expect(manifest.host_permissions).toBeUndefined();
    expect(manifest.content_security_policy.extension_pages).toBe("script-src 'self' 'wasm-unsafe-eval'; object-src 'self'");
    expect(commands).toEqual([{ name: "_execute_action", shortcut: "Alt+Shift+D", description: "" }]);
  });

  test("continuation after selection", async () => {
    expect(await selectPrompt()).toBe(SELECTED);
    await clickActionUntilInjected();
    await page.waitForSelector("#dormant-continuation", { timeout: 20_000 });
    await page.waitForSelector('#dormant-status[data-state="done"]', { timeout: 5_000 });
    pageResult = await page.evaluate(() => {
      const span = document.getElementById("dormant-continuation")!;
      const status = document.getElementById("dormant-status")!;
      return {
        story: document.getElementById("story")!.textContent ?? "",
        continuation: span.textContent ?? "",
        // Inserting the span split the paragraph's text node at the end of the selection.
        before: span.previousSibling?.textContent ?? "",
        after: span.nextSibling?.textContent ?? "",
        status: status.textContent ?? "",
      };
    });
    mkdirSync(join(repo, "test", "out"), { recursive: true });
    await page.screenshot({ path: screenshotPath });

    console.log(`continuation: ${JSON.stringify(pageResult.continuation)}\nstatus: ${pageResult.status}`);
    expect(pageResult.continuation.trim().length).toBeGreaterThan(0);
    expect(pageResult.before).toBe(BEFORE + SELECTED);
    expect(pageResult.after).toBe(AFTER);
    expect(pageResult.story).toBe(BEFORE + SELECTED + pageResult.continuation + AFTER);
    // stories260K continues this sentence with a space and " named ...".
    expect(pageResult.continuation.startsWith(" ")).toBe(true);
    expect(pageResult.status).toMatch(/^dormant: 48 tokens from stories260K in \d+ ms \(relaxed-simd\)$/);
  });

  test("message API", async () => {
    const result = await sendFromContentScript({ type: "dormant.continue", text: SELECTED });
    expect(result.error).toBeUndefined();
    // Greedy decoding: the same text gives the same continuation as the page shows.
    expect(result.continuation).toBe(pageResult.continuation);
    expect(result.tokens).toBe(48);
    expect(result.model).toBe("stories260K");
    expect(result.modelUrl).toBe(`chrome-extension://${extensionId}/model/stories260K.gguf`);
    expect(result.kernels).toBe("relaxed-simd");

    const short = await sendFromContentScript({ type: "dormant.continue", text: SELECTED, maxTokens: 4 });
    expect(short.tokens).toBe(4);
    expect(short.continuation?.length).toBeGreaterThan(0);
    expect(pageResult.continuation.startsWith(short.continuation!)).toBe(true);
  });

  test("message API errors", async () => {
    expect(await sendFromContentScript({ type: "dormant.continue", text: "" }))
      .toEqual({ error: "text is empty, expected a non-empty string" });
    expect(await sendFromContentScript({ type: "dormant.continue", text: SELECTED, maxTokens: 0 }))
      .toEqual({ error: "OptionError: generate: option maxTokens is 0, expected an integer ≥ 1" });
  });

  test("continuation in textarea", async () => {
    await page.evaluate((length) => {
      const notes = document.getElementById("notes") as HTMLTextAreaElement;
      notes.focus();
      notes.setSelectionRange(0, length);
    }, SELECTED.length);
    await clickAction();
    await page.waitForFunction((length) => (document.getElementById("notes") as HTMLTextAreaElement).value.length > length, SELECTED.length, { timeout: 10_000 });
    const value = await page.evaluate(() => (document.getElementById("notes") as HTMLTextAreaElement).value);
    expect(value).toBe(SELECTED + pageResult.continuation);
  });

  test("no selection error", async () => {
    await page.evaluate(() => {
      (document.activeElement as HTMLElement | null)?.blur();
      getSelection()!.removeAllRanges();
    });
    await clickAction();
    const status = await page.waitForSelector('#dormant-status[data-state="error"]', { timeout: 5_000 });
    expect(await status.textContent()).toBe("dormant: no text is selected: select some text, then try again");
    expect(await page.locator(".dormant-continuation").count()).toBe(1);
  });

  test("requests stay local", () => {
    expect(requests).toContain(`${pageOrigin}/`);
    const outside = requests.filter((url) => !url.startsWith(`${pageOrigin}/`) && !url.startsWith(`chrome-extension://${extensionId}/`));
    expect(outside).toEqual([]);
    // Every request for a host other than loopback went to the proxy. The only ones are Chromium's.
    const hosts = new Set(proxied.map(proxiedHost));
    for (const host of hosts) expect(CHROMIUM_SERVICE_HOSTS, `request to ${host}`).toContain(host);
    expect(proxied.filter((line) => line.includes(extensionId) || line.includes(pageOrigin))).toEqual([]);
  });
});
