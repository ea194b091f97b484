// Development server of the web example: serves the page, the repository's dist/ and build/,
// and the model files of a folder, on 127.0.0.1 only.
//
//   node examples/web/serve.mjs --models ../shared/models [--port 8080]
//
// Then open the printed address. --port 0 picks a free port. The first line on stdout is
// "serving http://127.0.0.1:PORT/"; each failed request prints one line on stderr.

import { createReadStream, statSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const usage = "usage: node examples/web/serve.mjs --models DIR [--port N]";
const repo = fileURLToPath(new URL("../../", import.meta.url));

const mimeTypes = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".wasm": "application/wasm",
  ".gguf": "application/octet-stream",
  ".bin": "application/octet-stream",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

/** Reads --models and --port; exits with the usage line on anything else. */
function parseArgs(args) {
  let models;
  let port = 8080;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--models" && args[i + 1] !== undefined) {
      models = resolve(args[++i]);
    } else if (args[i] === "--port" && /^\d+$/.test(args[i + 1] ?? "") && Number(args[i + 1]) <= 65535) {
      port = Number(args[++i]);
    } else {
      exitWithUsage(`serve: option ${args[i]} is unknown or has no value`);
    }
  }
  if (models === undefined) exitWithUsage("serve: option --models is missing, expected the folder that contains stories260K.gguf");
  let isDirectory = false;
  try {
    isDirectory = statSync(models).isDirectory();
  } catch {
    // reported below
  }
  if (!isDirectory) exitWithUsage(`serve: --models ${models} is not a directory, expected the folder that contains stories260K.gguf`);
  return { models, port };
}

function exitWithUsage(message) {
  console.error(`${message}\n${usage}`);
  process.exit(2);
}

const { models, port } = parseArgs(process.argv.slice(2));

/** URL prefixes and the folders they serve; "/" is the page itself. */
const mounts = [
  ["/dist/", join(repo, "dist")],
  ["/build/", join(repo, "build")],
  ["/models/", models],
  ["/", join(repo, "examples", "web")],
];

/** Maps a URL path to a file inside one of the mounts, or undefined outside them. */
function fileFor(urlPath) {
  let path;
  try {
    path = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (path === "/") path = "/index.html";
  for (const [prefix, directory] of mounts) {
    if (!path.startsWith(prefix)) continue;
    const file = resolve(directory, path.slice(prefix.length));
    return file.startsWith(directory + sep) ? file : undefined;
  }
  return undefined;
}

const server = createServer((request, response) => {
  const urlPath = new URL(request.url ?? "/", "http://127.0.0.1").pathname;
  const file = fileFor(urlPath);
  let size = -1;
  try {
    if (file !== undefined && statSync(file).isFile()) size = statSync(file).size;
  } catch {
    // a missing file gets a 404 below
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    response.writeHead(405, { "content-type": "text/plain; charset=utf-8", allow: "GET, HEAD" }).end("method not allowed\n");
    console.error(`serve: ${request.method} ${urlPath}: method not allowed`);
    return;
  }
  if (size < 0) {
    response.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found\n");
    console.error(`serve: GET ${urlPath}: not found`);
    return;
  }
  response.writeHead(200, {
    "content-type": mimeTypes[extname(file)] ?? "application/octet-stream",
    "content-length": String(size),
    "cache-control": "no-store",
    // cross-origin isolation, so the page may share wasm memory with the model's threads
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
  });
  if (request.method === "HEAD") response.end();
  else createReadStream(file).pipe(response);
});

server.listen(port, "127.0.0.1", () => {
  const address = server.address();
  console.log(`serving http://127.0.0.1:${address.port}/ (models from ${models})`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
