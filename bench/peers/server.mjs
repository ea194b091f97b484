// A static file server for the wllama page: 127.0.0.1, an ephemeral port, a fixed set of roots.
// With `isolated`, every response carries COOP and COEP, so the page gets SharedArrayBuffer.

import fs from "node:fs";
import http from "node:http";
import path from "node:path";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".gguf": "application/octet-stream",
};

/**
 * Starts a server that maps URL prefixes to folders, e.g. { "/wllama/": "/path/to/package/" },
 * and resolves to { url, close }. Paths that leave their folder get 404.
 */
export function serveFiles(roots, { isolated }) {
  const server = http.createServer((request, response) => {
    const headers = isolated
      ? { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" }
      : {};
    const urlPath = decodeURIComponent(new URL(request.url, "http://127.0.0.1").pathname);
    const prefix = Object.keys(roots).find((candidate) => urlPath.startsWith(candidate));
    const root = prefix === undefined ? undefined : path.resolve(roots[prefix]);
    const file = root === undefined ? undefined : path.resolve(root, urlPath.slice(prefix.length));
    if (file === undefined || !file.startsWith(root + path.sep) || !fs.statSync(file, { throwIfNoEntry: false })?.isFile()) {
      response.writeHead(404, headers).end();
      return;
    }
    const size = fs.statSync(file).size;
    response.writeHead(200, {
      ...headers,
      "Content-Type": TYPES[path.extname(file)] ?? "application/octet-stream",
      "Content-Length": size,
      "Cache-Control": "no-store",
    });
    fs.createReadStream(file).pipe(response);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () => new Promise((done) => {
          server.closeAllConnections();
          server.close(() => done());
        }),
      });
    });
  });
}
