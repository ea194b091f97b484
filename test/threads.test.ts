// Threads: every slice of the forward pass that workers compute gives the same bits as one thread.
// The shapes are chosen so that every job kind runs split (matrices above the size floor, rows not
// a multiple of 4, grouped-query attention past position 256) and the split is uneven (3 threads).

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { createModel, type LoadOptions, type Model } from "../src/model.js";
import { syntheticModel, type SyntheticShape } from "./helpers/synthetic.js";

const THREAD_URL = new URL("../dist/thread.js", import.meta.url);
const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
const MODELS = fileURLToPath(new URL("../../shared/models", import.meta.url));

const gqa: SyntheticShape = { dim: 272, hidden_dim: 690, n_layers: 2, n_heads: 8, n_kv_heads: 4, activation: "silu", gated: true, seq_len: 320 };
const relu: SyntheticShape = { ...gqa, n_kv_heads: 8, activation: "relu", gated: false };

/** Prompt of 150 ids: two full prefill blocks of 64 and a partial one. */
const prompt = Array.from({ length: 150 }, (_, i) => (i * 37 + 5) % 512);
/** Decode positions: far enough that attention itself runs split. */
const DECODE_STEPS = 300;

const models: Model[] = [];
afterAll(() => {
  for (const model of models) model.dispose();
});

async function load(shape: SyntheticShape, options: LoadOptions): Promise<Model> {
  const model = await createModel(syntheticModel(shape, 7), { threadUrl: THREAD_URL, ...options });
  models.push(model);
  return model;
}

/** Bits of every logit of a teacher-forced prompt and of DECODE_STEPS decode positions after it. */
function run(model: Model): Uint32Array[] {
  const rows = model.logits(prompt).map((row) => new Uint32Array(row.buffer.slice(0)));
  for (let pos = prompt.length; pos < DECODE_STEPS; pos++) {
    rows.push(new Uint32Array(model.step((pos * 13) % 512, pos).slice().buffer));
  }
  return rows;
}

function expectSameBits(actual: Uint32Array[], expected: Uint32Array[]): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    // one comparison per row keeps a failure message short
    const same = actual[i].every((bits, j) => bits === expected[i][j]);
    expect(same, `logits row ${i}`).toBe(true);
  }
}

describe.each([
  ["int8 SwiGLU GQA", gqa, "int8"],
  ["f32 SwiGLU GQA", gqa, "f32"],
  ["int8 ReLU", relu, "int8"],
] as const)("threads, %s", (_name, shape, precision) => {
  it("2 and 3 threads give the logits of 1 bit for bit", async () => {
    const single = run(await load(shape, { precision }));
    for (const threads of [2, 3]) {
      const model = await load(shape, { precision, threads });
      expect(model.stats().threads).toBe(threads);
      expect(model.stats().threadsNote).toBeUndefined();
      expectSameBits(run(model), single);
    }
  }, 120_000);
});

describe("threads with neuron bundles", () => {
  it("the sparse FFN beside split matrices gives the bits of 1 thread", async () => {
    const thresholds = [0.02, 0.03];
    const single = await load(gqa, { bundles: true });
    const threaded = await load(gqa, { bundles: true, threads: 2 });
    for (const model of [single, threaded]) {
      model.setThresholds(thresholds);
      model.setMode("oracle");
    }
    expectSameBits(run(threaded), run(single));
  }, 120_000);

  it("a predictor's candidates give the bits of 1 thread", async () => {
    // a random rank-8 predictor: which neurons it proposes does not matter, only that both agree
    const rank = 8;
    let state = 12345;
    const random = () => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return state / 2 ** 31 - 1;
    };
    const sparsity = {
      rank,
      thresholds: new Float32Array([0.02, 0.03]),
      cutoffs: new Float32Array([0.01, 0.01]),
      predictorDown: [0, 1].map(() => Float32Array.from({ length: rank * gqa.dim }, random)),
      predictorUp: [0, 1].map(() => Float32Array.from({ length: gqa.hidden_dim * rank }, random)),
    };
    const single = await load(gqa, { sparsity });
    const threaded = await load(gqa, { sparsity, threads: 2 });
    expect(threaded.mode).toBe("predicted");
    expectSameBits(run(threaded), run(single));
    const [single0, threaded0] = [single.layerStats()[0], threaded.layerStats()[0]];
    expect(threaded0).toEqual(single0);
    expect(threaded0.candidateFraction).toBeLessThan(1);
    expect(threaded0.keptFraction).toBeGreaterThan(0);
  }, 120_000);
});

describe("threads lifecycle", () => {
  it("stats report 1 thread by default", async () => {
    const model = await load(gqa, {});
    expect(model.stats().threads).toBe(1);
  });

  it("a process that never disposes still exits", () => {
    const script = `
      import { loadModel } from ${JSON.stringify(new URL("../dist/index.js", import.meta.url).href)};
      const model = await loadModel(${JSON.stringify(`${MODELS}/stories260K.gguf`)}, { threads: 2 });
      model.logits(model.tokenize("Once upon a time"));
      console.log(model.stats().threads);
    `;
    const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 30_000 });
    expect(result.signal, "killed by the timeout").toBeNull();
    expect(result.stdout.trim()).toBe("2");
    expect(result.status).toBe(0);
  });

  it("dispose stops the workers and the process exits", () => {
    const script = `
      import { loadModel } from ${JSON.stringify(new URL("../dist/index.js", import.meta.url).href)};
      const model = await loadModel(${JSON.stringify(`${MODELS}/stories260K.gguf`)}, { threads: 2 });
      const text = model.detokenize(model.logits(model.tokenize("Once upon a time")).map((row) => row.indexOf(Math.max(...row))));
      model.dispose();
      console.log(model.stats().threads, text.length > 0);
    `;
    const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 60_000 });
    expect(result.stderr).toBe("");
    expect(result.stdout.trim()).toBe("2 true");
    expect(result.status).toBe(0);
  });
});

describe("threads errors", () => {
  it.each<[unknown, string]>([[0, "0"], [65, "65"], [2.5, "2.5"], ["2", '"2" (a string)'], [null, "null"]])("threads %j is rejected", async (threads, shown) => {
    await expect(createModel(syntheticModel(gqa, 7), { threads: threads as number })).rejects.toThrow(
      `loadModel: option threads is ${shown}, expected an integer in [1, 64]`,
    );
  });

  it("a missing thread script names the URL", async () => {
    const url = new URL("./no-such-thread.js", import.meta.url);
    const loading = createModel(syntheticModel(gqa, 7), { threads: 2, threadUrl: url });
    await expect(loading).rejects.toThrow(`loadModel: ${url.href}: thread workers did not start:`);
    await expect(loading).rejects.toThrow("expected the thread script there (option threadUrl)");
  });

  it("an http threadUrl in Node names the option", async () => {
    const loading = createModel(syntheticModel(gqa, 7), { threads: 2, threadUrl: "http://127.0.0.1:9/thread.js" });
    await expect(loading).rejects.toThrow("loadModel: http://127.0.0.1:9/thread.js: thread workers did not start:");
    await expect(loading).rejects.toThrow("(option threadUrl)");
  });

  it("an unreadable threaded module leaves one thread and a note", async () => {
    const { setKernelModules } = await import("../src/wasm.js");
    const missing = new URL("./no-such-module.wasm", import.meta.url);
    setKernelModules({ "simd128-threads": missing, "relaxed-simd-threads": missing });
    try {
      const model = await load(gqa, { threads: 2 });
      expect(model.stats().threads).toBe(1);
      expect(model.stats().threadsNote).toMatch(/^1 of 2 threads runs: loadModel: .*no-such-module\.wasm: wasm module could not be read/);
    } finally {
      setKernelModules({
        "simd128-threads": new URL("../build/dormant-threads.wasm", import.meta.url),
        "relaxed-simd-threads": new URL("../build/dormant-threads-relaxed.wasm", import.meta.url),
      });
    }
  });

  it("a failed worker gives an error, not a hang", async () => {
    const model = await load(gqa, { threads: 2, threadUrl: new URL("./threads/failing-thread.js", import.meta.url) });
    expect(() => model.step(1, 0)).toThrow("synthetic silu gated: a thread worker failed, so the forward pass stopped; dispose the model and load it again");
    expect(() => model.logits([1, 2, 3, 4, 5])).toThrow("a thread worker failed");
    expect(() => model.dispose()).not.toThrow();
  });

  it("threadUrl of the wrong type is rejected", async () => {
    await expect(createModel(syntheticModel(gqa, 7), { threads: 2, threadUrl: 42 as unknown as string })).rejects.toThrow(
      "loadModel: option threadUrl is number, expected a URL or a URL string",
    );
  });
});

describe("threads on the command line", () => {
  it("generate --threads 2 reports the threads in its summary", () => {
    const result = spawnSync(process.execPath, [CLI, "generate", "Once upon a time", "--threads", "2", "--max-tokens", "8", "--temperature", "0"], {
      encoding: "utf8", timeout: 60_000, env: { ...process.env, DORMANT_MODELS: MODELS },
    });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/threads 2\n$/);
  });

  it("generate --threads 0 names the flag", () => {
    const result = spawnSync(process.execPath, [CLI, "generate", "Once", "--threads", "0"], {
      encoding: "utf8", timeout: 60_000, env: { ...process.env, DORMANT_MODELS: MODELS },
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("loadModel: option --threads is 0, expected an integer in [1, 64]");
  });

  it("bench --threads rejects a count out of range", () => {
    const result = spawnSync(process.execPath, [CLI, "bench", "--threads", "1,99"], { encoding: "utf8", timeout: 60_000 });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('dormant bench: option --threads has "99", expected integers in [1, 64]');
  });
});
