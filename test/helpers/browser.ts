// A static file server on 127.0.0.1 and a headless Chromium for browser tests and benchmarks.
// The server maps URL prefixes to folders, rejects paths outside them, and can send the headers
// that make pages cross-origin isolated (so SharedArrayBuffer and wasm threads are available).

import { createReadStream, mkdtempSync, rmSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, resolve, sep } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";

export const CHROMIUM_PATH = "/usr/bin/chromium";

/** Flags for a closed network: without the last ones Chromium keeps trying to reach outside hosts. */
export const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".gguf": "application/octet-stream",
  ".bin": "application/octet-stream",
  ".inp": "text/plain; charset=utf-8",
  ".out": "text/plain; charset=utf-8",
};

/** Returns the Content-Type for a file name by its extension, application/octet-stream when unknown. */
export function contentType(path: string): string {
  return CONTENT_TYPES[extname(path)] ?? "application/octet-stream";
}

/** Headers that make a page cross-origin isolated. */
export const ISOLATION_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
};

export interface StaticServer {
  /** http://127.0.0.1:PORT */
  origin: string;
  /** Paths requested (decoded, without the query), in order. */
  served: string[];
  close(): Promise<void>;
}

/** A GET request passed to the `handle` option. */
export interface StaticRequest {
  request: IncomingMessage;
  response: ServerResponse;
  /** Request URL on the server's origin, with its query. */
  url: URL;
  /** Mounted file for the path, which may not exist, or undefined outside the mounts. */
  file: string | undefined;
}

export interface StaticServerOptions {
  /** Sends ISOLATION_HEADERS with every response except those a handler sends. */
  isolated?: boolean;
  /** Bodies served at exact paths, such as a page written by the test. A path without extension is HTML. */
  pages?: Record<string, string | Uint8Array>;
  /** Headers added to each 200 response of a mounted file, such as Cache-Control. */
  headers?: Record<string, string>;
  /** Handles each GET request before pages and mounts. Returns true when it has sent the response, false to let the server send it. */
  handle?: (request: StaticRequest) => boolean;
}

/**
 * Serves `mounts` (URL prefix → folder) on an ephemeral port of 127.0.0.1. The longest matching
 * prefix wins. A method other than GET gets 405. A path outside the mounts or without a file gets 404.
 */
export function startStaticServer(mounts: Record<string, string>, options: StaticServerOptions = {}): Promise<StaticServer> {
  const served: string[] = [];
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    const path = decodeURIComponent(url.pathname);
    served.push(path);
    const headers: Record<string, string> = options.isolated ? { ...ISOLATION_HEADERS } : {};
    if (request.method !== "GET") {
      response.writeHead(405, { ...headers, Allow: "GET", "Content-Type": "text/plain" });
      response.end("method not allowed");
      return;
    }
    const file = fileFor(mounts, prefixes, path);
    if (options.handle?.({ request, response, url, file })) return;

    const page = options.pages?.[path];
    if (page !== undefined) {
      response.writeHead(200, { ...headers, "Content-Type": CONTENT_TYPES[extname(path)] ?? CONTENT_TYPES[".html"] });
      response.end(page);
      return;
    }
    const size = file === undefined ? undefined : statSync(file, { throwIfNoEntry: false });
    if (!file || !size?.isFile()) {
      response.writeHead(404, { ...headers, "Content-Type": "text/plain" });
      response.end("not found");
      return;
    }
    response.writeHead(200, { ...headers, ...options.headers, "Content-Type": contentType(file), "Content-Length": size.size });
    createReadStream(file).pipe(response);
  });
  return listen(server).then((origin) => ({
    origin,
    served,
    close: () => new Promise((resolveClose) => {
      server.closeAllConnections();
      server.close(() => resolveClose());
    }),
  }));
}

/** Starts `server` on an ephemeral port of 127.0.0.1 and returns its origin, http://127.0.0.1:PORT. */
export function listen(server: Server): Promise<string> {
  return new Promise((resolveStart) => {
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolveStart(`http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`);
    });
  });
}

function fileFor(mounts: Record<string, string>, prefixes: string[], path: string): string | undefined {
  const prefix = prefixes.find((candidate) => path.startsWith(candidate));
  if (prefix === undefined) return undefined;
  const directory = mounts[prefix];
  const file = resolve(directory, path.slice(prefix.length));
  return file.startsWith(directory + sep) ? file : undefined;
}

export interface Chromium {
  context: BrowserContext;
  close(): Promise<void>;
}

export interface ChromiumOptions {
  /** Flags passed before CHROMIUM_ARGS, such as --load-extension. */
  args?: string[];
}

/** Starts headless Chromium with a fresh profile that close() removes. */
export async function launchChromium(options: ChromiumOptions = {}): Promise<Chromium> {
  const profile = mkdtempSync(join(tmpdir(), "dormant-chromium-"));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH, headless: true, args: [...(options.args ?? []), ...CHROMIUM_ARGS],
    });
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
