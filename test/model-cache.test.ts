// The model cache and HTTP Range resume. Headless Chromium loads stories260K from a node:http
// server on 127.0.0.1, which counts requests per path and can cut a response after N bytes.
// A cached model loads without a request, and deleteCachedModel and clearModelCache remove
// entries. A cut download continues with `Range: bytes=N-`. Node runs the Range cases through
// readModelSource, and checks that it has no cache.

import { readFileSync, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type * as Dormant from "../src/index.js";
import { readModelSource, type SourceProgress } from "../src/source.js";
import { launchChromium, startStaticServer, type Chromium, type StaticRequest, type StaticServer } from "./helpers/browser.js";

const repo = fileURLToPath(new URL("..", import.meta.url));
const modelsDirectory = fileURLToPath(new URL("../../shared/models", import.meta.url));
const modelPath = join(modelsDirectory, "stories260K.gguf");
const modelBytes = readFileSync(modelPath);
const modelSize = statSync(modelPath).size;
const MODEL = "/models/stories260K.gguf";
/** Milliseconds between writing the bytes before a cut and closing the connection. */
const CUT_DELAY_MS = 300;

/** Bytes of a model response before the server cuts the connection. */
const CUT_AT = 300_000;

/** One request the server received: path with query, and its Range header. */
interface Received {
  path: string;
  range: string | undefined;
}

/** What the page's run() returns: greedy ids, progress events (no "place" phase) and Model.source. */
interface PageRun {
  ids: number[];
  progress: Array<SourceProgress & { phase: string }>;
  source: string;
}

const received: Received[] = [];
/** Responses cut so far, per path with query. */
const cutCounts = new Map<string, number>();
/** URLs Chromium requested. */
const browserRequests: string[] = [];
let server: StaticServer | undefined;
let origin = "";
let browser: Chromium | undefined;
let page: Page;

const mounts: Record<string, string> = {
  "/dist/": join(repo, "dist"),
  "/build/": join(repo, "build"),
  "/models/": modelsDirectory,
};

/** The test page: it exposes the browser bundle and run(url, options) as globals. */
const pageHtml = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>model cache</title>
<script type="module">
  import * as dormant from "/dist/dormant.browser.js";
  window.dormant = dormant;
  window.run = async (url, options = {}) => {
    const progress = [];
    const onProgress = (event) => { if (event.phase !== "place") progress.push({ ...event }); };
    const model = await dormant.loadModel(url, { ...options, onProgress });
    const ids = [];
    for await (const piece of model.generate("Once upon a time", { maxTokens: 32, temperature: 0 })) ids.push(piece.token);
    model.dispose();
    return { ids, progress, source: model.source };
  };
  window.ready = true;
</script></head><body></body></html>`;

/**
 * Serves a model file. Query parameters: cut=N closes the connection after N body bytes, for the
 * first `cuts` responses (default 1); ranges=0 drops Accept-Ranges and ignores Range;
 * ignore-range=1 replies to a Range request with the whole file (200); no-store=1 sends
 * Cache-Control: no-store; chunked=1 sends no Content-Length; wrong-range=1 replies to a Range
 * request with all bytes from 0 as a 206.
 */
function serveModel(request: IncomingMessage, response: ServerResponse, key: string, query: URLSearchParams, bytes: Buffer): void {
  const ranges = query.get("ranges") !== "0";
  const match = /^bytes=(\d+)-$/.exec(request.headers.range ?? "");
  const start = ranges && query.get("ignore-range") !== "1" && match ? Number(match[1]) : 0;
  if (match && query.get("wrong-range") === "1") {
    const headers = { "content-length": String(bytes.byteLength), "content-range": `bytes 0-${bytes.byteLength - 1}/${bytes.byteLength}` };
    response.writeHead(206, headers).end(bytes);
    return;
  }
  const body = bytes.subarray(start);
  const headers: Record<string, string> = {
    "content-type": "application/octet-stream",
    // no-cache makes Chromium's HTTP cache send every request to this server.
    "cache-control": query.get("no-store") === "1" ? "no-store" : "no-cache",
  };
  if (ranges) headers["accept-ranges"] = "bytes";
  if (query.get("chunked") !== "1") headers["content-length"] = String(body.byteLength);
  if (start > 0) headers["content-range"] = `bytes ${start}-${bytes.byteLength - 1}/${bytes.byteLength}`;
  response.writeHead(start > 0 ? 206 : 200, headers);

  const cut = Number(query.get("cut") ?? "0");
  const cuts = Number(query.get("cuts") ?? "1");
  const done = cutCounts.get(key) ?? 0;
  if (cut > 0 && done < cuts && cut < body.byteLength) {
    cutCounts.set(key, done + 1);
    // The cut waits a moment after the write, so a loaded machine still delivers the bytes before it.
    response.write(body.subarray(0, cut), () => setTimeout(() => response.destroy(), CUT_DELAY_MS));
    return;
  }
  response.end(body);
}

/** Records each GET request and sends the model files, so the static server sends only the page and the other files. */
function handle({ request, response, url, file }: StaticRequest): boolean {
  const key = url.pathname + url.search;
  received.push({ path: key, range: request.headers.range });
  if (!file?.endsWith(".gguf") || !statSync(file, { throwIfNoEntry: false })?.isFile()) return false;
  serveModel(request, response, key, url.searchParams, readFileSync(file));
  return true;
}

async function startServer(): Promise<void> {
  server = await startStaticServer(mounts, { pages: { "/page.html": pageHtml }, handle });
  origin = server.origin;
}

/** Returns how many requests the server received for a path with query. */
function requestsFor(path: string): number {
  return received.filter((request) => request.path === path).length;
}

type PageGlobals = {
  run: (url: string, options?: Record<string, unknown>) => Promise<PageRun>;
  dormant: typeof Dormant;
};

function run(url: string, options: Record<string, unknown> = {}, on: Page = page): Promise<PageRun> {
  return on.evaluate(([url, options]) => (window as unknown as PageGlobals).run(url, options), [url, options] as const);
}

function listCached(): Promise<Dormant.CachedModel[]> {
  return page.evaluate(() => (window as unknown as PageGlobals).dormant.listCachedModels());
}

function deleteCached(url: string): Promise<boolean> {
  return page.evaluate((url) => (window as unknown as PageGlobals).dormant.deleteCachedModel(url), url);
}

function clearCache(): Promise<number> {
  return page.evaluate(() => (window as unknown as PageGlobals).dormant.clearModelCache());
}

async function openPage(): Promise<Page> {
  const opened = await browser!.context.newPage();
  const errors: string[] = [];
  opened.on("pageerror", (error) => errors.push(error.message));
  await opened.goto(`${origin}/page.html`);
  await opened.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true, undefined, { timeout: 10_000 })
    .catch(() => { throw new Error(`page did not load: ${errors.join("; ") || "no error reported"}`); });
  return opened;
}

/** Greedy ids of an uncut, uncached load, the reference for every other load. */
let referenceIds: number[] = [];

beforeAll(async () => {
  await startServer();
  browser = await launchChromium();
  browser.context.on("request", (request) => browserRequests.push(request.url()));
  page = await openPage();
  referenceIds = (await run(`${origin}${MODEL}?reference=1`, { cache: false })).ids;
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe("model cache in Chromium", () => {
  test("first load downloads and stores", async () => {
    await clearCache();
    const started = Date.now();
    const first = await run(`${origin}${MODEL}`);
    expect(requestsFor(MODEL)).toBe(1);
    expect(first.ids).toEqual(referenceIds);
    expect(first.source).toBe(`${origin}${MODEL}`);
    expect(first.progress.filter((event) => event.phase === "download").pop()).toEqual({
      phase: "download", file: "stories260K.gguf", loaded: modelSize, total: modelSize,
    });

    const cached = await listCached();
    expect(cached.map(({ url, bytes }) => ({ url, bytes }))).toEqual([{ url: `${origin}${MODEL}`, bytes: modelSize }]);
    const storedAt = Date.parse(cached[0].storedAt);
    expect(storedAt).toBeGreaterThanOrEqual(started - 1000);
    expect(storedAt).toBeLessThanOrEqual(Date.now() + 1000);
  });

  test("second load reads the cache", async () => {
    await run(`${origin}${MODEL}`);
    const before = requestsFor(MODEL);
    const again = await run(`${origin}${MODEL}`);
    expect(requestsFor(MODEL)).toBe(before);
    expect(again.ids).toEqual(referenceIds);
    expect(again.progress.map((event) => event.phase)).not.toContain("download");
    expect(again.progress[0]).toEqual({ phase: "read", file: "stories260K.gguf", loaded: 0, total: modelSize });
    expect(again.progress[again.progress.length - 1]).toEqual({ phase: "read", file: "stories260K.gguf", loaded: modelSize, total: modelSize });
  });

  test("new page reads the cache", async () => {
    await run(`${origin}${MODEL}`);
    const before = requestsFor(MODEL);
    const other = await openPage();
    try {
      // A relative URL resolves against the page, to the same cache key.
      const fromOtherPage = await run("/models/stories260K.gguf", {}, other);
      expect(fromOtherPage.ids).toEqual(referenceIds);
      expect(fromOtherPage.source).toBe(`${origin}${MODEL}`);
    } finally {
      await other.close();
    }
    expect(requestsFor(MODEL)).toBe(before);
  });

  test("worker reads the cache", async () => {
    await run(`${origin}${MODEL}`);
    const before = requestsFor(MODEL);
    const inWorker = await run(`${origin}${MODEL}`, { worker: true });
    expect(inWorker.ids).toEqual(referenceIds);
    expect(inWorker.progress.map((event) => event.phase)).not.toContain("download");
    expect(requestsFor(MODEL)).toBe(before);
  });

  test("cache false downloads", async () => {
    await run(`${origin}${MODEL}`);
    const [entry] = await listCached();
    const before = requestsFor(MODEL);
    const uncached = await run(`${origin}${MODEL}`, { cache: false });
    expect(uncached.ids).toEqual(referenceIds);
    expect(requestsFor(MODEL)).toBe(before + 1);
    expect(await listCached()).toEqual([entry]);
  });

  test("deleteCachedModel removes one", async () => {
    await run(`${origin}${MODEL}`);
    expect(await deleteCached(`${origin}${MODEL}`)).toBe(true);
    expect(await listCached()).toEqual([]);
    expect(await deleteCached(`${origin}${MODEL}`)).toBe(false);

    const before = requestsFor(MODEL);
    const reloaded = await run(`${origin}${MODEL}`);
    expect(requestsFor(MODEL)).toBe(before + 1);
    expect(reloaded.ids).toEqual(referenceIds);
    expect((await listCached()).map((entry) => entry.url)).toEqual([`${origin}${MODEL}`]);
    // A path relative to the page names the same entry.
    expect(await deleteCached("/models/stories260K.gguf")).toBe(true);
    expect(await listCached()).toEqual([]);
  });

  test("clearModelCache empties it", async () => {
    await run(`${origin}${MODEL}`);
    await run(`${origin}${MODEL}?copy=2`);
    expect((await listCached()).map((entry) => entry.url)).toEqual([`${origin}${MODEL}`, `${origin}${MODEL}?copy=2`]);
    expect(await clearCache()).toBe(2);
    expect(await listCached()).toEqual([]);
    expect(await clearCache()).toBe(0);

    const before = requestsFor(MODEL);
    await run(`${origin}${MODEL}`);
    expect(requestsFor(MODEL)).toBe(before + 1);
  });

  test("no-store response is not stored", async () => {
    await clearCache();
    const path = `${MODEL}?no-store=1`;
    await run(`${origin}${path}`);
    await run(`${origin}${path}`);
    expect(requestsFor(path)).toBe(2);
    expect(await listCached()).toEqual([]);
  });

  test("failed store is a warning", async () => {
    await clearCache();
    const url = `${origin}${MODEL}?copy=quota`;
    const result = await page.evaluate(async (url) => {
      const put = Cache.prototype.put;
      Cache.prototype.put = () => Promise.reject(new DOMException("quota exceeded", "QuotaExceededError"));
      try {
        return await (window as unknown as PageGlobals).run(url);
      } finally {
        Cache.prototype.put = put;
      }
    }, url);
    expect(result.ids).toEqual(referenceIds);
    expect(result.progress.filter((event) => event.warning !== undefined)).toEqual([{
      phase: "download", file: "stories260K.gguf", loaded: modelSize, total: modelSize,
      warning: `model cache: ${url}: storing ${modelSize} bytes failed (QuotaExceededError: quota exceeded); the model loaded but is not cached`,
    }]);
    expect(await listCached()).toEqual([]);
  });

  test("failed lookup is a warning", async () => {
    const url = `${origin}${MODEL}?copy=lookup`;
    await run(url);
    const before = requestsFor(`${MODEL}?copy=lookup`);
    const result = await page.evaluate(async (url) => {
      const match = Cache.prototype.match;
      Cache.prototype.match = () => Promise.reject(new DOMException("storage is broken", "UnknownError"));
      try {
        return await (window as unknown as PageGlobals).run(url);
      } finally {
        Cache.prototype.match = match;
      }
    }, url);
    expect(result.ids).toEqual(referenceIds);
    expect(requestsFor(`${MODEL}?copy=lookup`)).toBe(before + 1);
    expect(result.progress.filter((event) => event.warning !== undefined)).toEqual([{
      phase: "download", file: "stories260K.gguf", loaded: 0,
      warning: `model cache: ${url}: reading the cached copy failed (UnknownError: storage is broken); downloading it`,
    }]);
  });

  test("cut download resumes with Range", async () => {
    const path = `${MODEL}?cut=${CUT_AT}`;
    const result = await run(`${origin}${path}`, { cache: false });
    const ranges = received.filter((request) => request.path === path).map((request) => request.range);
    expect(ranges).toHaveLength(2);
    expect(ranges[0]).toBeUndefined();
    // Chromium drops bytes still buffered when the connection fails, so it resumes at or before the cut.
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? "")?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(CUT_AT);
    expect(result.ids).toEqual(referenceIds);
    const downloads = result.progress.filter((event) => event.phase === "download");
    for (let i = 1; i < downloads.length; i++) expect(downloads[i].loaded).toBeGreaterThan(downloads[i - 1].loaded);
    expect(downloads[downloads.length - 1]).toEqual({ phase: "download", file: "stories260K.gguf", loaded: modelSize, total: modelSize });
  });

  test("resumed download is cached whole", async () => {
    await clearCache();
    const path = `${MODEL}?cut=${CUT_AT}&copy=resumed`;
    await run(`${origin}${path}`);
    expect(requestsFor(path)).toBe(2);
    expect(await listCached()).toMatchObject([{ url: `${origin}${path}`, bytes: modelSize }]);
    const fromCache = await run(`${origin}${path}`);
    expect(fromCache.ids).toEqual(referenceIds);
    expect(requestsFor(path)).toBe(2);
  });

  test("browser requests stay local", () => {
    expect(browserRequests.length).toBeGreaterThan(0);
    expect(browserRequests.filter((url) => !url.startsWith(`${origin}/`))).toEqual([]);
  });
});

describe("Range resume in Node", () => {
  /** Reads `path` from the test server with readModelSource, collecting progress. */
  async function read(path: string): Promise<{ bytes: Uint8Array; progress: SourceProgress[] }> {
    const progress: SourceProgress[] = [];
    const { bytes } = await readModelSource(`${origin}${path}`, { onProgress: (event) => progress.push(event) });
    return { bytes, progress };
  }

  function rangesOf(path: string): Array<string | undefined> {
    return received.filter((request) => request.path === path).map((request) => request.range);
  }

  test("cut body resumes", async () => {
    const path = `${MODEL}?cut=${CUT_AT}&node=1`;
    const { bytes, progress } = await read(path);
    expect(Buffer.from(bytes).equals(modelBytes)).toBe(true);
    expect(rangesOf(path)).toEqual([undefined, `bytes=${CUT_AT}-`]);
    expect(progress[0]).toEqual({ phase: "download", file: "stories260K.gguf", loaded: 0, total: modelSize });
    for (let i = 1; i < progress.length; i++) expect(progress[i].loaded).toBeGreaterThan(progress[i - 1].loaded);
    expect(progress[progress.length - 1]).toEqual({ phase: "download", file: "stories260K.gguf", loaded: modelSize, total: modelSize });
  });

  test("cut twice resumes twice", async () => {
    // Every response, the ranged ones too, stops after 300,000 bytes, until two were cut.
    const path = `${MODEL}?cut=${CUT_AT}&cuts=2&node=2`;
    const { bytes } = await read(path);
    expect(Buffer.from(bytes).equals(modelBytes)).toBe(true);
    expect(rangesOf(path)).toEqual([undefined, `bytes=${CUT_AT}-`, `bytes=${2 * CUT_AT}-`]);
  });

  test("chunked body resumes", async () => {
    const path = `${MODEL}?cut=${CUT_AT}&chunked=1`;
    const { bytes, progress } = await read(path);
    expect(Buffer.from(bytes).equals(modelBytes)).toBe(true);
    expect(rangesOf(path)).toEqual([undefined, `bytes=${CUT_AT}-`]);
    expect(progress[progress.length - 1].loaded).toBe(modelSize);
  });

  test("200 reply restarts", async () => {
    const path = `${MODEL}?cut=${CUT_AT}&ignore-range=1`;
    const { bytes, progress } = await read(path);
    expect(Buffer.from(bytes).equals(modelBytes)).toBe(true);
    expect(rangesOf(path)).toEqual([undefined, `bytes=${CUT_AT}-`]);
    const restart = progress.findIndex((event, i) => i > 0 && event.loaded === 0);
    expect(restart).toBeGreaterThan(0);
    expect(progress[restart - 1].loaded).toBe(CUT_AT);
    expect(progress[progress.length - 1]).toEqual({ phase: "download", file: "stories260K.gguf", loaded: modelSize, total: modelSize });
  });

  test("wrong Content-Range restarts", async () => {
    const path = `${MODEL}?cut=${CUT_AT}&wrong-range=1`;
    const { bytes } = await read(path);
    expect(Buffer.from(bytes).equals(modelBytes)).toBe(true);
    expect(rangesOf(path)).toEqual([undefined, `bytes=${CUT_AT}-`, undefined]);
  });

  test("last failed attempt", async () => {
    const path = `${MODEL}?cut=1000&cuts=10`;
    await expect(read(path)).rejects.toThrow(new RegExp(
      `^loadModel: ${origin}/models/stories260K\\.gguf\\?cut=1000&cuts=10: bytes received is 4000, expected ${modelSize} ` +
        `\\(the download was cut off and 3 requests with Range did not finish it; last failure: .+\\)$`,
    ));
    expect(rangesOf(path)).toEqual([undefined, "bytes=1000-", "bytes=2000-", "bytes=3000-"]);
  });

  test("no Accept-Ranges keeps the old error", async () => {
    const path = `${MODEL}?cut=1000&ranges=0`;
    await expect(read(path)).rejects.toThrow(new RegExp(
      `^loadModel: ${origin}/models/stories260K\\.gguf\\?cut=1000&ranges=0: ` +
        `(download stopped after 1000 bytes: .+|body length is 1000 bytes, expected ${modelSize} bytes .+)$`,
    ));
    expect(rangesOf(path)).toEqual([undefined]);
  });

  test("abort during retry wait", async () => {
    const controller = new AbortController();
    const path = `${MODEL}?cut=1000&cuts=10&abort=1`;
    const reading = readModelSource(`${origin}${path}`, {
      signal: controller.signal,
      onProgress: (event) => {
        // The cut comes right after these bytes, so 100 ms later the source waits to resume (250 ms).
        if (event.loaded === 1000) setTimeout(() => controller.abort(new Error("stopped by the test")), 100);
      },
    });
    await expect(reading).rejects.toThrow("stopped by the test");
    expect(rangesOf(path)).toEqual([undefined]);
  });
});

describe("model cache in Node", () => {
  test("functions without Cache API", async () => {
    const dormant = (await import(pathToFileURL(join(repo, "dist", "index.js")).href)) as typeof Dormant;
    expect(dormant.MODEL_CACHE_NAME).toBe("dormant-models-v1");
    expect(await dormant.listCachedModels()).toEqual([]);
    expect(await dormant.deleteCachedModel(`${origin}${MODEL}`)).toBe(false);
    expect(await dormant.clearModelCache()).toBe(0);
  });

  test("URL load downloads every time", async () => {
    const dormant = (await import(pathToFileURL(join(repo, "dist", "index.js")).href)) as typeof Dormant;
    const path = `${MODEL}?node=cache`;
    for (let i = 0; i < 2; i++) (await dormant.loadModel(`${origin}${path}`, { cache: true })).dispose();
    expect(requestsFor(path)).toBe(2);
  });

  test("cache option type", async () => {
    await expect(readModelSource(`${origin}${MODEL}`, { cache: "yes" as unknown as boolean })).rejects.toThrow(
      "loadModel: option cache is \"yes\", expected true or false",
    );
  });

  test("deleteCachedModel bad URL", async () => {
    const { deleteCachedModel } = await import("../src/model-cache.js");
    await expect(deleteCachedModel("not a url")).rejects.toThrow(
      "deleteCachedModel: option url is \"not a url\", expected an absolute URL, or a path relative to the page",
    );
  });
});
