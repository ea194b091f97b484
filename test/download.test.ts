import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type DownloadProgress, downloadFile } from "../src/download.js";
import { ModelSourceError } from "../src/errors.js";
import { loadModel } from "../src/model.js";
import { createProgressBar, formatBytes } from "../src/progress.js";

const modelsDirectory = fileURLToPath(new URL("../../shared/models/", import.meta.url));
const MODEL_SHA256 = "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696";
const MODEL_SIZE = 1056540;

/** What the test server should do with the next requests, and what it saw. */
interface ServerControl {
  requests: { path: string; range?: string }[];
  /** Files served with one byte flipped. */
  corrupt: Set<string>;
  /** Files whose next response is cut after this many body bytes (used once). */
  cutAfter: Map<string, number>;
  /** Files whose responses send this many body bytes and then hang. */
  stallAfter: Map<string, number>;
  /** Responds 200 with the whole file even when a Range is requested. */
  ignoreRange: boolean;
  /** Responds 206 with the whole file (Content-Range from byte 0) whatever range is requested. */
  rangeFromZero: boolean;
}

const control: ServerControl = { requests: [], corrupt: new Set(), cutAfter: new Map(), stallAfter: new Map(), ignoreRange: false, rangeFromZero: false };
const files = new Map<string, Uint8Array>();
let server: Server;
let baseUrl: string;
let temporaryDirectory: string;

function serve(request: import("node:http").IncomingMessage, response: import("node:http").ServerResponse): void {
  const name = decodeURIComponent(new URL(request.url ?? "/", "http://127.0.0.1").pathname.slice(1));
  control.requests.push({ path: `/${name}`, range: request.headers.range });
  let body = files.get(name);
  if (body === undefined) {
    response.writeHead(404, { "Content-Length": 0 });
    response.end();
    return;
  }
  if (control.corrupt.has(name)) {
    body = Uint8Array.from(body);
    body[body.length >> 1] ^= 0xff;
  }

  let start = 0;
  let status = 200;
  const headers: Record<string, string | number> = { "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream" };
  const range = request.headers.range;
  if (range !== undefined && !control.ignoreRange) {
    start = control.rangeFromZero ? 0 : Number(/^bytes=(\d+)-$/.exec(range)?.[1] ?? 0);
    if (start >= body.length) {
      response.writeHead(416, { "Content-Range": `bytes */${body.length}`, "Content-Length": 0 });
      response.end();
      return;
    }
    status = 206;
    headers["Content-Range"] = `bytes ${start}-${body.length - 1}/${body.length}`;
  }
  const slice = body.subarray(start);
  headers["Content-Length"] = slice.length;
  response.writeHead(status, headers);

  const cut = control.cutAfter.get(name);
  if (cut !== undefined) {
    control.cutAfter.delete(name);
    response.write(slice.subarray(0, cut), () => response.destroy());
    return;
  }
  const stall = control.stallAfter.get(name);
  if (stall !== undefined) {
    response.write(slice.subarray(0, stall));
    return;
  }
  response.end(slice);
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

beforeAll(async () => {
  for (const name of ["stories260K.bin", "tok512.bin"]) files.set(name, new Uint8Array(await readFile(join(modelsDirectory, name))));
  server = createServer(serve);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  temporaryDirectory = await mkdtemp(join(tmpdir(), "dormant-download-"));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(temporaryDirectory, { recursive: true, force: true });
});

beforeEach(() => {
  control.requests.length = 0;
  control.corrupt.clear();
  control.cutAfter.clear();
  control.stallAfter.clear();
  control.ignoreRange = false;
  control.rangeFromZero = false;
});

let caseNumber = 0;

/** Returns a destination path in a fresh, existing directory. */
async function destination(name = "stories260K.bin"): Promise<string> {
  caseNumber++;
  const directory = join(temporaryDirectory, `case${caseNumber}`);
  await mkdir(directory);
  return join(directory, name);
}

describe("loadModel cut download", () => {
  /** Serves the first 300000 bytes of stories260K.bin and then drops the connection, with no Accept-Ranges. */
  let cutServer: Server;
  let cutUrl: string;
  const CUT_AT = 300000;

  beforeAll(async () => {
    const body = files.get("stories260K.bin")!;
    cutServer = createServer((request, response) => {
      const sized = request.url === "/sized/stories260K.bin";
      response.writeHead(200, sized ? { "Content-Length": body.length } : {});
      response.write(body.subarray(0, CUT_AT), () => response.destroy());
    });
    await new Promise<void>((resolve) => cutServer.listen(0, "127.0.0.1", resolve));
    cutUrl = `http://127.0.0.1:${(cutServer.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    cutServer.closeAllConnections();
    await new Promise<void>((resolve) => cutServer.close(() => resolve()));
  });

  it("names the expected size", async () => {
    const url = `${cutUrl}/sized/stories260K.bin`;
    const error = await loadModel(url).then(() => undefined, (caught: unknown) => caught as ModelSourceError);
    expect(error).toBeInstanceOf(ModelSourceError);
    expect(error?.message).toMatch(new RegExp(
      `^loadModel: ${url}: body length is ${CUT_AT} bytes, expected ${MODEL_SIZE} bytes ` +
      `\\(Content-Length; the connection failed \\(.+\\), and without "Accept-Ranges: bytes" from the server the download cannot resume, so load the model again\\)$`,
    ));
    expect(error?.field).toBe("body length");
    expect(error?.actual).toBe(`${CUT_AT} bytes`);
    expect(error?.expected).toBe(`${MODEL_SIZE} bytes`);
  });

  it("unsized body reports bytes received", async () => {
    const url = `${cutUrl}/unsized/stories260K.bin`;
    await expect(loadModel(url)).rejects.toThrow(new RegExp(`^loadModel: ${url}: download stopped after ${CUT_AT} bytes: .+$`));
  });
});

describe("downloadFile", () => {
  it("downloads and verifies", async () => {
    const path = await destination();
    const events: DownloadProgress[] = [];
    await downloadFile(`${baseUrl}/stories260K.bin`, path, { sha256: MODEL_SHA256, size: MODEL_SIZE, onProgress: (event) => events.push(event) });

    expect(sha256(new Uint8Array(await readFile(path)))).toBe(MODEL_SHA256);
    expect(await exists(`${path}.part`)).toBe(false);
    expect(events.length).toBeGreaterThan(2);
    for (let i = 1; i < events.length; i++) expect(events[i].loaded).toBeGreaterThan(events[i - 1].loaded);
    expect(events.at(-1)).toEqual({ phase: "download", file: "stories260K.bin", loaded: MODEL_SIZE, total: MODEL_SIZE });
    expect(control.requests).toEqual([{ path: "/stories260K.bin", range: undefined }]);
  });

  it("resumes from .part", async () => {
    const path = await destination();
    await writeFile(`${path}.part`, files.get("stories260K.bin")!.subarray(0, 100_000));
    const events: DownloadProgress[] = [];

    await downloadFile(`${baseUrl}/stories260K.bin`, path, { sha256: MODEL_SHA256, size: MODEL_SIZE, onProgress: (event) => events.push(event) });

    expect(control.requests).toEqual([{ path: "/stories260K.bin", range: "bytes=100000-" }]);
    expect(events[0].loaded).toBe(100_000);
    expect(sha256(new Uint8Array(await readFile(path)))).toBe(MODEL_SHA256);
  });

  it("resumes after cut connection", async () => {
    const path = await destination();
    const url = `${baseUrl}/stories260K.bin`;
    control.cutAfter.set("stories260K.bin", 300_000);

    await expect(downloadFile(url, path, { sha256: MODEL_SHA256, size: MODEL_SIZE })).rejects.toThrow(
      new RegExp(`^pull: ${url}: download stopped after \\d+ of ${MODEL_SIZE} bytes, connection failed: .+ \\(run again to resume\\)$`),
    );
    const keptBytes = (await stat(`${path}.part`)).size;
    expect(keptBytes).toBeGreaterThan(0);
    expect(keptBytes).toBeLessThanOrEqual(300_000);

    await downloadFile(url, path, { sha256: MODEL_SHA256, size: MODEL_SIZE });
    expect(control.requests.at(-1)).toEqual({ path: "/stories260K.bin", range: `bytes=${keptBytes}-` });
    expect(sha256(new Uint8Array(await readFile(path)))).toBe(MODEL_SHA256);
  });

  it("restarts when Range is ignored", async () => {
    const path = await destination();
    // Garbage in the .part proves that the 200 response replaced it rather than being appended.
    await writeFile(`${path}.part`, new Uint8Array(5000).fill(7));
    control.ignoreRange = true;

    await downloadFile(`${baseUrl}/stories260K.bin`, path, { sha256: MODEL_SHA256, size: MODEL_SIZE });

    expect(control.requests).toEqual([{ path: "/stories260K.bin", range: "bytes=5000-" }]);
    expect(sha256(new Uint8Array(await readFile(path)))).toBe(MODEL_SHA256);
  });

  it("restarts on another range", async () => {
    const path = await destination();
    await writeFile(`${path}.part`, files.get("stories260K.bin")!.subarray(0, 5000));
    control.rangeFromZero = true;

    await downloadFile(`${baseUrl}/stories260K.bin`, path, { sha256: MODEL_SHA256, size: MODEL_SIZE });

    expect(control.requests).toEqual([
      { path: "/stories260K.bin", range: "bytes=5000-" },
      { path: "/stories260K.bin", range: undefined },
    ]);
    expect(sha256(new Uint8Array(await readFile(path)))).toBe(MODEL_SHA256);
  });

  it("restarts on 416", async () => {
    const path = await destination();
    await writeFile(`${path}.part`, new Uint8Array(MODEL_SIZE + 10));

    // Without a known size, an oversized .part is only detected by the server's 416.
    await downloadFile(`${baseUrl}/stories260K.bin`, path, { sha256: MODEL_SHA256 });

    expect(control.requests).toEqual([
      { path: "/stories260K.bin", range: `bytes=${MODEL_SIZE + 10}-` },
      { path: "/stories260K.bin", range: undefined },
    ]);
    expect(sha256(new Uint8Array(await readFile(path)))).toBe(MODEL_SHA256);
  });

  it("complete .part needs no request", async () => {
    const path = await destination();
    await writeFile(`${path}.part`, files.get("stories260K.bin")!);

    await downloadFile(`${baseUrl}/stories260K.bin`, path, { sha256: MODEL_SHA256, size: MODEL_SIZE });

    expect(control.requests).toEqual([]);
    expect(await exists(path)).toBe(true);
  });

  it("rejects sha256 mismatch", async () => {
    const path = await destination();
    const url = `${baseUrl}/stories260K.bin`;
    control.corrupt.add("stories260K.bin");
    const corrupted = Uint8Array.from(files.get("stories260K.bin")!);
    corrupted[corrupted.length >> 1] ^= 0xff;

    await expect(downloadFile(url, path, { sha256: MODEL_SHA256, size: MODEL_SIZE })).rejects.toThrow(
      `pull: ${url}: sha256 is ${sha256(corrupted)}, expected ${MODEL_SHA256} (download corrupted or catalog out of date)`,
    );
    expect(await exists(`${path}.part`)).toBe(false);
    expect(await exists(path)).toBe(false);
  });

  it("rejects size mismatch", async () => {
    const path = await destination();
    const url = `${baseUrl}/stories260K.bin`;

    await expect(downloadFile(url, path, { size: 1000 })).rejects.toThrow(
      `pull: ${url}: size is ${MODEL_SIZE} bytes, expected 1000 bytes (download corrupted or catalog out of date)`,
    );
    expect(await exists(`${path}.part`)).toBe(false);
  });

  it("rejects HTTP 404", async () => {
    const url = `${baseUrl}/missing.bin`;
    const promise = downloadFile(url, await destination(), { where: "loadModel" });

    await expect(promise).rejects.toThrow(`loadModel: ${url}: HTTP status is 404 Not Found, expected 200`);
    await expect(promise).rejects.toMatchObject({ name: "ModelSourceError", field: "HTTP status", actual: "404 Not Found" });
  });

  it("rejects refused connection", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const url = `http://127.0.0.1:${port}/stories260K.bin`;

    await expect(downloadFile(url, await destination())).rejects.toThrow(`pull: ${url}: request failed: connect ECONNREFUSED 127.0.0.1:${port}`);
  });

  it("abort keeps .part", async () => {
    const path = await destination();
    control.stallAfter.set("stories260K.bin", 200_000);
    const controller = new AbortController();
    const onProgress = (event: DownloadProgress): void => {
      if (event.loaded >= 200_000) controller.abort();
    };

    await expect(downloadFile(`${baseUrl}/stories260K.bin`, path, { size: MODEL_SIZE, onProgress, signal: controller.signal })).rejects.toMatchObject({
      name: "AbortError",
    });
    expect((await stat(`${path}.part`)).size).toBe(200_000);
    expect(await exists(path)).toBe(false);
  });
});

describe("createProgressBar", () => {
  function fakeStream(isTTY: boolean, columns?: number): { isTTY: boolean; columns?: number; output: string[]; write(text: string): void } {
    const output: string[] = [];
    return { isTTY, columns, output, write: (text: string) => void output.push(text) };
  }

  it("redraws on a TTY", () => {
    let time = 0;
    const stream = fakeStream(true, 80);
    const bar = createProgressBar(stream, "stories260K.bin", { now: () => time });

    bar.update(0, 2 * 1024 * 1024);
    time = 50;
    bar.update(512 * 1024, 2 * 1024 * 1024);
    time = 1000;
    bar.update(1024 * 1024, 2 * 1024 * 1024);
    time = 2000;
    bar.update(2 * 1024 * 1024, 2 * 1024 * 1024);
    bar.done();

    expect(stream.output).toEqual([
      "\rstories260K.bin [--------------------]   0% 0 B / 2.0 MiB\x1b[K",
      "\rstories260K.bin [##########----------]  50% 1.0 MiB / 2.0 MiB 1.0 MiB/s\x1b[K",
      "\rstories260K.bin [####################] 100% 2.0 MiB / 2.0 MiB 1.0 MiB/s\x1b[K",
      "\rstories260K.bin [####################] 100% 2.0 MiB / 2.0 MiB 1.0 MiB/s\x1b[K",
      "\n",
    ]);
  });

  it("fits narrow TTY", () => {
    const stream = fakeStream(true, 20);
    const bar = createProgressBar(stream, "stories260K.bin", { now: () => 0 });

    bar.update(10, 100);

    expect(stream.output).toEqual(["\rstories260K.bin [##\x1b[K"]);
  });

  it("silent until done off TTY", () => {
    let time = 0;
    const stream = fakeStream(false);
    const bar = createProgressBar(stream, "tok512.bin", { now: () => time });

    bar.update(0);
    time = 500;
    bar.update(1024 * 1024);
    time = 2000;
    bar.update(2 * 1024 * 1024);
    expect(stream.output).toEqual([]);

    bar.done();
    bar.done();
    expect(stream.output).toEqual(["tok512.bin: 2.0 MiB in 2.0 s, 1.0 MiB/s\n"]);
  });

  it("short run: ms, no rate", () => {
    let time = 0;
    const stream = fakeStream(false);
    const bar = createProgressBar(stream, "eval", { now: () => time, unit: "tokens" });

    bar.update(2);
    time = 12;
    bar.done();
    expect(stream.output).toEqual(["eval: 2 tokens in 12 ms\n"]);
  });

  it("formats bytes", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(1056540)).toBe("1.0 MiB");
    expect(formatBytes(3 * 1024 ** 3)).toBe("3.0 GiB");
  });
});
