// int8 matrix × vector speed on three hosts, beside a plain memory read of the same bytes.
//
//   npm run build:test-wasm
//   node bench/kernel-hosts.mjs [--rounds 21] [--shapes 4096x4096,4096x4096x4,1024x1024,128x2048,2048x32768] [--hosts node,node-flags,deno,chromium]
//
// The hosts run one after another. Node 20 runs in this process, where it rejects the relaxed
// module, and again in a child process with --experimental-wasm-relaxed-simd --no-liftoff. Deno
// comes from the `deno` npm package. Headless Chromium (/usr/bin/chromium through playwright-core)
// loads a page from a 127.0.0.1 server that this script starts and stops. Every host runs
// bench/kernel-hosts-core.js, which interleaves the kernels within each shape and returns medians.
// The script prints a markdown table and writes every sample to bench/out/kernel-hosts.json.

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { measureKernels } from "./kernel-hosts-core.js";

const repo = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
const exactPath = join(repo, "build", "dormant-test.wasm");
const relaxedPath = join(repo, "build", "dormant-test-relaxed.wasm");
const outPath = join(repo, "bench", "out", "kernel-hosts.json");
const RELAXED_FLAGS = ["--experimental-wasm-relaxed-simd", "--no-liftoff"];
const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];
const ALL_HOSTS = ["node", "node-flags", "deno", "chromium"];
// The speed targets are set at 4096 × 4096. On the machine of bench/README.md its 18 MiB of quants
// and scales fit in L3, 128 × 2048 (288 KiB) fits in L2, and 2048 × 32768 (72 MiB) fits in neither.
// 4096x4096x4 takes four such matrices in turn (72 MiB), so 4096 × 4096 is also read from main
// memory, as decode reads a model's weights.
const DEFAULT_SHAPES = [[4096, 4096], [4096, 4096, 4], [1024, 1024], [128, 2048], [2048, 32768]];

const USAGE = "usage: node bench/kernel-hosts.mjs [--rounds 21] [--shapes 4096x4096,4096x4096x4,1024x1024,128x2048,2048x32768] [--hosts node,node-flags,deno,chromium]";

/** Reads --rounds, --shapes and --hosts, and throws on any other option. */
function parseArgs(argv) {
  const options = { rounds: 21, warmupRounds: 2, batchBytes: 256 << 20, shapes: DEFAULT_SHAPES };
  let hosts = ALL_HOSTS;
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`kernel-hosts: option ${name} has no value`);
    if (name === "--rounds") {
      options.rounds = Number(value);
      if (!Number.isInteger(options.rounds) || options.rounds < 1) throw new Error(`kernel-hosts: --rounds is ${value}, expected an integer ≥ 1`);
    } else if (name === "--shapes") {
      options.shapes = value.split(",").map((shape) => {
        const match = /^(\d+)x(\d+)(?:x(\d+))?$/.exec(shape);
        if (!match || Number(match[1]) % 4 || Number(match[2]) % 32 || match[3] === "0") {
          throw new Error(`kernel-hosts: --shapes entry is ${shape}, expected ROWSxCOLS or ROWSxCOLSxCOPIES with rows a multiple of 4, cols a multiple of 32 and copies at least 1`);
        }
        return [Number(match[1]), Number(match[2]), Number(match[3] ?? 1)];
      });
    } else if (name === "--hosts") {
      hosts = value.split(",");
      const unknown = hosts.filter((host) => !ALL_HOSTS.includes(host));
      if (unknown.length) throw new Error(`kernel-hosts: --hosts has ${unknown.join(",")}, expected some of ${ALL_HOSTS.join(",")}`);
    } else {
      throw new Error(`kernel-hosts: option ${name} is unknown, expected --rounds, --shapes or --hosts`);
    }
  }
  return { options, hosts };
}

/** Spawns command, resolves with the JSON object on its last stdout line. */
function runJsonChild(command, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: repo, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      const line = stdout.trim().split("\n").pop() ?? "";
      if (code !== 0 || !line.startsWith("{")) reject(new Error(`${command} ${args.join(" ")} exited with ${code}: ${stderr.trim() || stdout.trim()}`));
      else resolve(JSON.parse(line));
    });
  });
}

async function runNode(options) {
  const result = await measureKernels(readFileSync(exactPath), readFileSync(relaxedPath), options);
  return { host: `node ${process.versions.node}`, engine: `V8 ${process.versions.v8}`, ...result };
}

function runNodeWithFlags(options) {
  return runJsonChild(process.execPath, [...RELAXED_FLAGS, fileURLToPath(import.meta.url), "--node-child", JSON.stringify(options)]);
}

function runDeno(options) {
  const args = [
    "deno", "run", "--no-remote", "--no-lock", "--no-config", "--no-prompt",
    `--allow-read=${join(repo, "build")},${join(repo, "bench")}`, join(repo, "bench", "kernel-hosts-deno.js"), JSON.stringify(options),
  ];
  return runJsonChild("npx", args, { DENO_NO_UPDATE_CHECK: "1" });
}

// The page is cross-origin isolated (COOP and COEP headers) because Chromium then rounds
// performance.now() to 5 µs rather than 100 µs.
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>kernel-hosts</title>
<script type="module">
  import { measureKernels } from "/bench/kernel-hosts-core.js";
  const fetchBytes = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());
  window.measure = async (options) => {
    const result = await measureKernels(await fetchBytes("/build/dormant-test.wasm"), await fetchBytes("/build/dormant-test-relaxed.wasm"), options);
    const version = navigator.userAgent.match(/Chrome\\/([\\d.]+)/)?.[1] ?? "unknown";
    const engine = \`Chrome \${version}, crossOriginIsolated \${crossOriginIsolated}\`;
    return { host: \`chromium \${version.split(".")[0]}\`, engine, ...result };
  };
  window.ready = true;
</script>`;

/** Files the page may request, by URL path. */
const pageFiles = {
  "/bench/kernel-hosts-core.js": [join(repo, "bench", "kernel-hosts-core.js"), "text/javascript; charset=utf-8"],
  "/build/dormant-test.wasm": [exactPath, "application/wasm"],
  "/build/dormant-test-relaxed.wasm": [relaxedPath, "application/wasm"],
};

async function runChromium(options) {
  const isolation = { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp", "cache-control": "no-store" };
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://127.0.0.1").pathname;
    if (path === "/") {
      response.writeHead(200, { ...isolation, "content-type": "text/html; charset=utf-8" }).end(PAGE);
    } else if (pageFiles[path]) {
      const [file, type] = pageFiles[path];
      response.writeHead(200, { ...isolation, "content-type": type }).end(readFileSync(file));
    } else {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found");
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  const profile = mkdtempSync(join(tmpdir(), "dormant-kernel-hosts-"));
  let context;
  try {
    const { chromium } = await import("playwright-core");
    context = await chromium.launchPersistentContext(profile, { executablePath: "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS });
    const page = context.pages()[0] ?? (await context.newPage());
    const pageErrors = [];
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => window.ready === true, undefined, { timeout: 10_000 })
      .catch(() => { throw new Error(`kernel-hosts: the page did not load: ${pageErrors.join("; ") || "no error reported"}`); });
    return await page.evaluate((pageOptions) => window.measure(pageOptions), options);
  } finally {
    await context?.close();
    rmSync(profile, { recursive: true, force: true });
    await new Promise((resolve) => server.close(resolve));
  }
}

/** Returns one table row per host, shape and matvec module, with the relaxed/exact ratio and the share of the read speed. */
function tableRows(hostResults) {
  const rows = [];
  for (const result of hostResults) {
    for (const shape of result.shapes) {
      const seconds = (name) => shape.kernels[name].medianMs / 1e3;
      const readGBs = shape.matrixBytes / seconds("readBytes") / 1e9;
      const fastest = (name) => shape.kernels[name].fastestMs;
      for (const module of ["exact", "relaxed"]) {
        if (!shape.kernels[module]) continue;
        const matrixGBs = shape.matrixBytes / seconds(module) / 1e9;
        rows.push({
          host: result.host,
          shape: `${shape.rows}×${shape.cols}${shape.copies > 1 ? ` ×${shape.copies} in turn` : ""}`,
          module,
          gops: (2 * shape.rows * shape.cols) / seconds(module) / 1e9,
          matrixGBs,
          relaxedOverExact: module === "relaxed" ? seconds("exact") / seconds("relaxed") : undefined,
          readGBs,
          matvecOverRead: matrixGBs / readGBs,
          fastestMatvecOverRead: fastest("readBytes") / fastest(module),
        });
      }
    }
  }
  return rows;
}

function formatTable(rows) {
  const lines = [
    "| host | shape | module | GOPS | matrix GB/s | relaxed / exact | readBytes GB/s | matvec / read | same, fastest rounds |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const row of rows) {
    const ratio = row.relaxedOverExact === undefined ? "" : `${row.relaxedOverExact.toFixed(2)}×`;
    lines.push(
      `| ${row.host} | ${row.shape} | ${row.module} | ${row.gops.toFixed(1)} | ${row.matrixGBs.toFixed(1)} | ${ratio} | ` +
        `${row.readGBs.toFixed(1)} | ${(100 * row.matvecOverRead).toFixed(0)}% | ${(100 * row.fastestMatvecOverRead).toFixed(0)}% |`,
    );
  }
  return lines.join("\n");
}

async function main() {
  const { options, hosts } = parseArgs(process.argv.slice(2));
  for (const file of [exactPath, relaxedPath]) {
    try {
      readFileSync(file);
    } catch {
      throw new Error(`kernel-hosts: ${file} not found: build the test modules with npm run build:test-wasm`);
    }
  }
  const runners = { node: runNode, "node-flags": runNodeWithFlags, deno: runDeno, chromium: runChromium };
  const started = new Date();
  const loadBefore = loadavg()[0];
  const hostResults = [];
  for (const host of hosts) {
    process.stderr.write(`kernel-hosts: ${host}...\n`);
    const result = await runners[host](options);
    if (host === "node-flags") result.host += " + flags";
    hostResults.push(result);
  }
  const loadAfter = loadavg()[0];

  const rows = tableRows(hostResults);
  console.log(
    `int8 matvecQ8 and readBytes, one thread, ${options.rounds} rounds after ${options.warmupRounds} warm-up rounds, ` +
      `medians; load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after`,
  );
  console.log(formatTable(rows));
  for (const result of hostResults) {
    const checks = result.shapes.map((shape) => `${shape.rows}×${shape.cols} ${JSON.stringify(shape.checks)}`).join(", ");
    console.log(`${result.host} (${result.engine}): relaxed module ${result.relaxedStatus}; checks ${checks}`);
  }

  mkdirSync(join(repo, "bench", "out"), { recursive: true });
  writeFileSync(outPath, `${JSON.stringify({ date: started.toISOString(), options, loadBefore, loadAfter, rows, hosts: hostResults }, null, 1)}\n`);
  console.log(`wrote ${outPath}`);
}

if (process.argv[2] === "--node-child") {
  const result = await measureKernels(readFileSync(exactPath), readFileSync(relaxedPath), JSON.parse(process.argv[3]));
  console.log(JSON.stringify({ host: `node ${process.versions.node}`, engine: `V8 ${process.versions.v8}`, ...result }));
} else if (process.argv.includes("--help")) {
  console.log(USAGE);
} else {
  try {
    await main();
  } catch (error) {
    // option errors print one line; anything else keeps its stack
    if (!String(error?.message).startsWith("kernel-hosts:")) throw error;
    console.error(error.message);
    console.error(USAGE);
    process.exitCode = 2;
  }
}
