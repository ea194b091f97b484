// A static file server on 127.0.0.1 and a headless Chromium for browser tests and benchmarks.
// The server maps URL prefixes to folders, refuses paths outside them, and can send the headers
// that make pages cross-origin isolated (so SharedArrayBuffer and wasm threads are available).

import { createReadStream, mkdtempSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:http";
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
};

/** Headers that make a page cross-origin isolated. */
export const ISOLATION_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
};

export interface StaticServer {
  /** http://127.0.0.1:PORT */
  origin: string;
  /** Paths requested, in order. */
  served: string[];
  close(): Promise<void>;
}

export interface StaticServerOptions {
  /** Sends ISOLATION_HEADERS with every response. */
  isolated?: boolean;
  /** Bodies served at exact paths, such as a page written by the test. */
  pages?: Record<string, string>;
}

/** Serves `mounts` (URL prefix → folder) on an ephemeral port of 127.0.0.1. */
export function startStaticServer(mounts: Record<string, string>, options: StaticServerOptions = {}): Promise<StaticServer> {
  const served: string[] = [];
  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url ?? "/", "http://127.0.0.1").pathname);
    served.push(path);
    const headers: Record<string, string> = options.isolated ? { ...ISOLATION_HEADERS } : {};
    const page = options.pages?.[path];
    if (page !== undefined) {
      response.writeHead(200, { ...headers, "Content-Type": CONTENT_TYPES[extname(path)] ?? "text/plain" });
      response.end(page);
      return;
    }
    const file = fileFor(mounts, path);
    if (!file || !statSync(file, { throwIfNoEntry: false })?.isFile()) {
      response.writeHead(404, headers);
      response.end("not found");
      return;
    }
    response.writeHead(200, {
      ...headers, "Content-Type": CONTENT_TYPES[extname(file)] ?? "application/octet-stream", "Content-Length": statSync(file).size,
    });
    createReadStream(file).pipe(response);
  });
  return new Promise((resolveStart) => {
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      resolveStart({
        origin: `http://127.0.0.1:${port}`,
        served,
        close: () => new Promise((resolveClose) => {
          server.closeAllConnections();
          server.close(() => resolveClose());
        }),
      });
    });
  });
}

function fileFor(mounts: Record<string, string>, path: string): string | undefined {
  for (const [prefix, directory] of Object.entries(mounts)) {
    if (!path.startsWith(prefix)) continue;
    const file = resolve(directory, path.slice(prefix.length));
    return file.startsWith(directory + sep) ? file : undefined;
  }
  return undefined;
}

export interface Chromium {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Starts headless Chromium with a fresh profile that close() removes. */
export async function launchChromium(): Promise<Chromium> {
  const profile = mkdtempSync(join(tmpdir(), "dormant-chromium-"));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
