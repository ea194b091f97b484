// `dormant inspect`: the SVG charts in process, and the CLI (dist/cli.js, built by `npm test`) on a
// stories260K file calibrated at 50% sparsity. The report opens in headless Chromium from a
// server on 127.0.0.1, and every request it makes must stay there.

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { splitDocuments } from "../src/eval/perplexity.js";
import { escapeXml, formatTick, renderChart } from "../src/eval/svg.js";
import { readModelFile } from "../src/formats/index.js";
import { createModel } from "../src/model.js";
import { collectActivations, fitSparsity } from "../src/sparsity/calibrate.js";
import { writeSparsityGGUF } from "../src/sparsity/format.js";
import { launchChromium, startStaticServer, type Chromium, type StaticServer } from "./helpers/browser.js";

const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
const GGUF = fileURLToPath(new URL("../../shared/models/stories260K.gguf", import.meta.url));
const TEXT = fileURLToPath(new URL("../../shared/data/tinystories-valid-sample.txt", import.meta.url));
const OUT = fileURLToPath(new URL("./out/", import.meta.url));
const directory = mkdtempSync(join(tmpdir(), "dormant-inspect-"));
const sparsePath = join(directory, "s50.gguf");
const reportPath = join(directory, "report.html");
const svgDirectory = join(directory, "svg");

/** Series each plot draws for stories260K (5 layers): layers, modes or named lines. */
const EXPECTED_SERIES: Record<string, number> = {
  "kept-vs-threshold": 5,
  "perplexity-vs-sparsity": 3,
  "firing-frequency": 5,
  "window-reuse": 6,
  "predictor-recall": 2,
  "ffn-bytes": 3,
};
/** Path data of at least two points: "M x y L x y ...". */
const PATH_DATA = /^M-?[\d.]+ -?[\d.]+( L-?[\d.]+ -?[\d.]+)+$/;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function dormant(args: string[]): Promise<Run> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, DORMANT_CACHE: join(directory, "cache") } });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => child.on("close", (status) => resolve({ status, stdout, stderr })));
}

describe("renderChart", () => {
  it("draws one path per series", () => {
    const svg = renderChart({
      title: "t", xLabel: "x", yLabel: "y",
      series: [{ name: "a", points: [[0, 1], [1, 2]] }, { name: "b", points: [[0, 2], [1, 3], [2, 1]], dashed: true }],
    });
    const paths = [...svg.matchAll(/<path class="series" data-series="([^"]*)" d="([^"]*)"/g)];
    expect(paths.map((match) => match[1])).toEqual(["a", "b"]);
    for (const match of paths) expect(match[2]).toMatch(PATH_DATA);
    expect(svg).toContain('stroke-dasharray="6 4"');
  });

  it("escapes names", () => {
    const svg = renderChart({ title: "a < b & c", xLabel: "x", yLabel: "y", series: [{ name: '"q"', points: [[0, 0], [1, 1]] }] });
    expect(svg).toContain("<title id=\"chart-title\">a &lt; b &amp; c</title>");
    expect(svg).toContain('data-series="&quot;q&quot;"');
    expect(escapeXml("<'&'>")).toBe("&lt;&#39;&amp;&#39;&gt;");
  });

  it("drops non-positive points on a log axis", () => {
    const svg = renderChart({ title: "t", xLabel: "x", yLabel: "y", xScale: "log", series: [{ name: "a", points: [[0, 1], [1, 2], [10, 3]] }] });
    const d = /<path class="series"[^>]* d="([^"]*)"/.exec(svg)![1];
    expect(d.split(" L")).toHaveLength(2);
  });

  it("formats ticks", () => {
    expect([0, 0.1 + 0.2, 1200, 1e-4, 2.5e-5, 1e6].map(formatTick)).toEqual(["0", "0.3", "1200", "1e-4", "2.5e-5", "1e6"]);
  });
});

describe("dormant inspect", () => {
  let server: StaticServer | undefined;
  let origin = "";
  let browser: Chromium | undefined;
  let summary: {
    report: string;
    svg: string[];
    tokens: number;
    windows: number[];
    layers: Array<{ kept_fraction: number; reuse: number[]; histogram: number[]; kept_at_threshold: number[]; recall: number }>;
  };
  let run: Run;

  beforeAll(async () => {
    const file = readModelFile(readFileSync(GGUF), GGUF);
    const dense = await createModel(file, { sparsity: null });
    const stories = splitDocuments(readFileSync(TEXT, "utf8"));
    const statistics = await collectActivations(dense, stories.slice(0, stories.length / 2).join("\n<|endoftext|>\n"), { maxTokens: 3000 });
    dense.dispose();
    writeFileSync(sparsePath, writeSparsityGGUF(file, await fitSparsity(statistics, file, { sparsity: 0.5 })));

    run = await dormant([
      "inspect", "--model", sparsePath, "--text", TEXT, "--report", reportPath, "--svg-dir", svgDirectory,
      "--max-tokens", "800", "--eval-tokens", "400", "--sparsities", "0.3,0.6,0.9", "--json",
    ]);
    summary = JSON.parse(run.stdout);

    server = await startStaticServer({}, { pages: { "/report.html": readFileSync(reportPath) } });
    origin = server.origin;
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it("writes the report and svg files", () => {
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expect(summary.report).toBe(reportPath);
    expect(readdirSync(svgDirectory).sort()).toEqual(Object.keys(EXPECTED_SERIES).map((name) => `${name}.svg`).sort());
    for (const [name, count] of Object.entries(EXPECTED_SERIES)) {
      const svg = readFileSync(join(svgDirectory, `${name}.svg`), "utf8");
      expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'), name).toBe(true);
      const paths = [...svg.matchAll(/<path class="series" [^>]*d="([^"]*)"/g)];
      expect(paths, name).toHaveLength(count);
      for (const match of paths) expect(match[1], name).toMatch(PATH_DATA);
    }
  });

  it("profile numbers hold together", () => {
    expect(summary.tokens).toBe(800);
    expect(summary.layers).toHaveLength(5);
    for (const layer of summary.layers) {
      expect(layer.kept_fraction).toBeGreaterThan(0.4);
      expect(layer.kept_fraction).toBeLessThan(0.6);
      expect(layer.histogram.reduce((sum, count) => sum + count, 0)).toBe(172);
      for (let w = 1; w < layer.reuse.length; w++) expect(layer.reuse[w]).toBeGreaterThanOrEqual(layer.reuse[w - 1]);
      for (let q = 1; q < layer.kept_at_threshold.length; q++) expect(layer.kept_at_threshold[q]).toBeLessThanOrEqual(layer.kept_at_threshold[q - 1]);
      expect(layer.recall).toBeGreaterThan(0.95);
    }
  });

  it("opens in Chromium without network requests", async () => {
    browser = await launchChromium();
    const context = browser.context;
    const requests: string[] = [];
    context.on("request", (request) => requests.push(request.url()));
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    page.on("console", (message) => errors.push(message.text()));
    await page.setViewportSize({ width: 1100, height: 900 });
    await page.goto(`${origin}/report.html`, { waitUntil: "load" });

    const figures = await page.$$eval("figure", (elements) => elements.map((element) => ({
      id: element.id,
      declared: Number(element.getAttribute("data-series")),
      paths: Array.from(element.querySelectorAll("svg path.series"), (path) => path.getAttribute("d") ?? ""),
      width: element.querySelector("svg")!.getBoundingClientRect().width,
    })));
    expect(figures.map((entry) => entry.id)).toEqual(Object.keys(EXPECTED_SERIES));
    for (const entry of figures) {
      expect(entry.paths, entry.id).toHaveLength(EXPECTED_SERIES[entry.id]);
      expect(entry.declared, entry.id).toBe(EXPECTED_SERIES[entry.id]);
      expect(entry.width, entry.id).toBeGreaterThan(300);
      for (const d of entry.paths) expect(d, entry.id).toMatch(PATH_DATA);
    }
    expect(await page.evaluate(() => document.scripts.length)).toBe(0);

    mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: join(OUT, "inspect-report.png"), fullPage: true });
    expect(readFileSync(join(OUT, "inspect-report.png")).subarray(1, 4).toString()).toBe("PNG");

    expect(errors).toEqual([]);
    expect(requests.length).toBeGreaterThan(0);
    for (const url of requests) expect(new URL(url).origin).toBe(origin);
  });

  it("rejects a dense file", async () => {
    const result = await dormant(["inspect", "--model", GGUF, "--text", TEXT, "--report", join(directory, "dense.html")]);
    expect(result.status).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(`inspect: ${GGUF}: dormant.sparsity.version is missing, expected a sparse file written by dormant calibrate\n`);
  });

  it("requires --report", async () => {
    const result = await dormant(["inspect", "--model", sparsePath, "--text", TEXT]);
    expect(result.status).toBe(2);
    expect(result.stderr).toBe("dormant inspect: option --report is missing, expected the path of the .html file to write\n");
  });

  it("rejects a bad sparsity list", async () => {
    const result = await dormant(["inspect", "--model", sparsePath, "--text", TEXT, "--report", reportPath, "--sparsities", "0.3,,0.9"]);
    expect(result.status).toBe(2);
    expect(result.stderr).toBe('dormant inspect: option --sparsities is "0.3,,0.9", expected comma-separated numbers in [0, 0.99]\n');
  });
});
