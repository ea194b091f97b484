import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadCatalog, resolveModel, validateCatalog } from "../src/catalog.js";
import type { DownloadProgress } from "../src/download.js";
import { getEnv, joinPath, pathDelimiter, userCacheDirectory } from "../src/io.js";

const modelsDirectory = fileURLToPath(new URL("../../shared/models/", import.meta.url));
const MODEL_SHA256 = "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696";
const TOKENIZER_SHA256 = "037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312";
const GGUF_SHA256 = "5a9d168bd9d9e29302e0d604e9a4c97184057ad87661cd7e7cc4318fdeba6d9c";

const requests: string[] = [];
let server: Server;
let baseUrl: string;
let temporaryDirectory: string;

/** Serves the shared model files with Content-Length. download.test.ts tests Range support. */
async function serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
  const name = new URL(request.url ?? "/", "http://127.0.0.1").pathname.slice(1);
  requests.push(`/${name}`);
  if (!["stories260K.bin", "tok512.bin", "stories260K.gguf"].includes(name)) {
    response.writeHead(404, { "Content-Length": 0 });
    response.end();
    return;
  }
  const body = await readFile(join(modelsDirectory, name));
  response.writeHead(200, { "Content-Length": body.length });
  response.end(body);
}

/** Returns a catalog object like models/catalog.json whose URLs point at the test server. */
function testCatalog(overrides: { modelSha256?: string | null; modelSize?: number | null } = {}): object {
  return {
    version: 1,
    models: {
      stories260K: {
        family: "llama",
        description: "test copy",
        files: [
          {
            role: "model",
            name: "stories260K.bin",
            url: `${baseUrl}/stories260K.bin`,
            sha256: overrides.modelSha256 === undefined ? MODEL_SHA256 : overrides.modelSha256,
            size: overrides.modelSize === undefined ? 1056540 : overrides.modelSize,
          },
          { role: "tokenizer", name: "tok512.bin", url: `${baseUrl}/tok512.bin`, sha256: TOKENIZER_SHA256, size: 6227 },
        ],
        alternatives: [{ name: "stories260K.gguf", sha256: GGUF_SHA256, size: 1185376 }],
      },
    },
  };
}

async function freshDirectory(): Promise<string> {
  return mkdtemp(join(temporaryDirectory, "case-"));
}

/** Runs `body` with environment variables set (undefined deletes), then restores them. */
async function withEnv<T>(values: Record<string, string | undefined>, body: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(values).map((name) => [name, process.env[name]]));
  const apply = (entries: Record<string, string | undefined>): void => {
    for (const [name, value] of Object.entries(entries)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  apply(values);
  try {
    return await body();
  } finally {
    apply(saved);
  }
}

beforeAll(async () => {
  server = createServer((request, response) => void serve(request, response));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  temporaryDirectory = await mkdtemp(join(tmpdir(), "dormant-catalog-"));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(temporaryDirectory, { recursive: true, force: true });
});

beforeEach(() => {
  requests.length = 0;
});

describe("loadCatalog", () => {
  it("default catalog matches files", async () => {
    const catalog = await loadCatalog();
    const entry = catalog.models.get("stories260K");

    expect(catalog.source).toBe("models/catalog.json");
    expect(entry?.family).toBe("llama");
    for (const file of [...entry!.files, ...entry!.alternatives]) {
      const bytes = await readFile(join(modelsDirectory, file.name));
      expect({ name: file.name, sha256: createHash("sha256").update(bytes).digest("hex"), size: bytes.length }).toEqual({
        name: file.name,
        sha256: file.sha256,
        size: file.size,
      });
    }
    expect(entry!.files.map((file) => [file.role, file.url])).toEqual([
      ["model", "https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin"],
      ["tokenizer", "https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/tok512.bin"],
    ]);
  });

  it("reads a catalog file", async () => {
    const path = join(await freshDirectory(), "catalog.json");
    await writeFile(path, JSON.stringify(testCatalog()));

    const catalog = await loadCatalog(path);

    expect(catalog.source).toBe(path);
    expect([...catalog.models.keys()]).toEqual(["stories260K"]);
  });

  it("rejects schema errors", () => {
    const model = (testCatalog() as { models: { stories260K: Record<string, unknown> } }).models.stories260K;
    const files = model.files as Record<string, unknown>[];
    const cases: [unknown, string][] = [
      [[], "loadCatalog: catalog object: catalog is an array, expected an object with version and models"],
      [{ version: 2, models: {} }, "loadCatalog: catalog object: version is 2, expected 1"],
      [{ models: {} }, "loadCatalog: catalog object: version is missing, expected 1"],
      [{ version: 1, models: [] }, "loadCatalog: catalog object: models is an array, expected an object mapping model names to models"],
      [{ version: 1, models: {}, extra: true }, "loadCatalog: catalog object: catalog.extra is true, expected no such key (allowed: version, models)"],
      [
        { version: 1, models: { "a/b": model } },
        `loadCatalog: catalog object: models is "a/b", expected model names of letters, digits, '.', '_' or '-', not ending in .gguf or .bin`,
      ],
      [{ version: 1, models: { m: { ...model, family: "" } } }, `loadCatalog: catalog object: models.m.family is "", expected a non-empty string`],
      [{ version: 1, models: { m: { ...model, files: [] } } }, "loadCatalog: catalog object: models.m.files is an array, expected a non-empty array"],
      [
        { version: 1, models: { m: { ...model, files: [{ ...files[0], sha265: "x" }] } } },
        "loadCatalog: catalog object: models.m.files[0].sha265 is \"x\", expected no such key (allowed: role, name, url, sha256, size)",
      ],
      [
        { version: 1, models: { m: { ...model, files: [{ ...files[0], sha256: "B0A5" }] } } },
        `loadCatalog: catalog object: models.m.files[0].sha256 is "B0A5", expected 64 lowercase hex digits or null`,
      ],
      [
        { version: 1, models: { m: { ...model, files: [{ ...files[0], size: -1 }] } } },
        "loadCatalog: catalog object: models.m.files[0].size is -1, expected a positive integer or null",
      ],
      [
        { version: 1, models: { m: { ...model, files: [{ ...files[0], name: "../evil.bin" }] } } },
        `loadCatalog: catalog object: models.m.files[0].name is "../evil.bin", expected a file name of letters, digits, '.', '_' or '-' without a directory`,
      ],
      [
        { version: 1, models: { m: { ...model, files: [{ ...files[0], url: "ftp://host/x.bin" }] } } },
        `loadCatalog: catalog object: models.m.files[0].url is "ftp://host/x.bin", expected an http or https URL`,
      ],
      [
        { version: 1, models: { m: { ...model, files: [{ ...files[0], role: "weights" }] } } },
        `loadCatalog: catalog object: models.m.files[0].role is "weights", expected "model" or "tokenizer"`,
      ],
      [
        { version: 1, models: { m: { ...model, files: [files[1]] } } },
        `loadCatalog: catalog object: models.m.files is "0 files of role \\"model\\"", expected exactly 1`,
      ],
      [
        { version: 1, models: { m: { ...model, alternatives: [{ name: "m.bin", sha256: null, size: null }] } } },
        `loadCatalog: catalog object: models.m.alternatives[0].name is "m.bin", expected a file name ending in .gguf`,
      ],
    ];
    for (const [value, message] of cases) expect(() => validateCatalog(value)).toThrow(message);
  });

  it("names the catalog file in errors", async () => {
    const directory = await freshDirectory();
    const path = join(directory, "catalog.json");
    await writeFile(path, JSON.stringify({ version: "1", models: {} }));
    await writeFile(join(directory, "broken.json"), "{ version: 1,");

    await expect(loadCatalog(path)).rejects.toThrow(`loadCatalog: ${path}: version is "1", expected 1`);
    await expect(loadCatalog(path)).rejects.toMatchObject({ name: "FormatError", field: "version" });
    await expect(loadCatalog(join(directory, "broken.json"))).rejects.toThrow(new RegExp(`^loadCatalog: ${join(directory, "broken.json")}: invalid JSON \\(.+\\)$`));
    await expect(loadCatalog(join(directory, "none.json"))).rejects.toThrow(`loadCatalog: ${join(directory, "none.json")}: file not found`);
  });
});

describe("resolveModel", () => {
  it("returns an existing path", async () => {
    const path = join(modelsDirectory, "stories260K.gguf");

    expect(await resolveModel(path)).toEqual({ modelPath: path, downloaded: false });
  });

  it("rejects a missing path", async () => {
    await expect(resolveModel("/x/y.gguf")).rejects.toThrow("loadModel: /x/y.gguf: file not found");
    await expect(resolveModel("missing.bin")).rejects.toThrow("loadModel: missing.bin: file not found");
    await expect(resolveModel(modelsDirectory)).rejects.toThrow(`loadModel: ${modelsDirectory}: is a directory, expected a .gguf or .bin file`);
  });

  it("rejects an unknown name", async () => {
    await expect(resolveModel("storiez", { searchDirectories: [] })).rejects.toThrow(
      'loadModel: model "storiez" is not in the catalog (models/catalog.json), expected one of: stories260K, or a path to a .gguf or .bin file',
    );
    await expect(resolveModel("constructor", { searchDirectories: [] })).rejects.toMatchObject({ name: "ModelSourceError", actual: "constructor" });
  });

  it("finds files in DORMANT_MODELS", async () => {
    const empty = await freshDirectory();
    const cache = await freshDirectory();

    const resolved = await withEnv({ DORMANT_MODELS: `${empty}${pathDelimiter}${modelsDirectory}` }, () =>
      resolveModel("stories260K", { catalog: testCatalog(), cacheDirectory: cache }),
    );

    expect(resolved).toEqual({
      modelPath: joinPath(modelsDirectory, "stories260K.bin"),
      tokenizerPath: joinPath(modelsDirectory, "tok512.bin"),
      name: "stories260K",
      downloaded: false,
    });
    expect(requests).toEqual([]);
  });

  it("finds the GGUF alternative", async () => {
    const directory = await freshDirectory();
    await symlink(join(modelsDirectory, "stories260K.gguf"), join(directory, "stories260K.gguf"));
    // A lone model file without its tokenizer does not count as a hit.
    await symlink(join(modelsDirectory, "stories260K.bin"), join(directory, "stories260K.bin"));

    const resolved = await resolveModel("stories260K", { catalog: testCatalog(), searchDirectories: [directory], cacheDirectory: await freshDirectory() });

    expect(resolved).toEqual({ modelPath: joinPath(directory, "stories260K.gguf"), name: "stories260K", downloaded: false });
    expect(requests).toEqual([]);
  });

  it("rejects size mismatch in a search directory", async () => {
    const directory = await freshDirectory();
    const truncated = (await readFile(join(modelsDirectory, "stories260K.bin"))).subarray(0, 1000);
    await writeFile(join(directory, "stories260K.bin"), truncated);
    await symlink(join(modelsDirectory, "tok512.bin"), join(directory, "tok512.bin"));

    await expect(resolveModel("stories260K", { catalog: testCatalog(), searchDirectories: [directory], cacheDirectory: await freshDirectory() })).rejects.toThrow(
      `loadModel: ${joinPath(directory, "stories260K.bin")}: size is 1000 bytes, expected 1056540 bytes (truncated or a different version, so replace or delete the file)`,
    );
    expect(requests).toEqual([]);
  });

  it("downloads once, then uses the cache", async () => {
    const cache = await freshDirectory();
    const events: DownloadProgress[] = [];
    const options = { catalog: testCatalog(), searchDirectories: [], cacheDirectory: cache, onProgress: (event: DownloadProgress) => events.push(event) };

    const first = await resolveModel("stories260K", options);
    const expected = {
      modelPath: joinPath(cache, "stories260K", "stories260K.bin"),
      tokenizerPath: joinPath(cache, "stories260K", "tok512.bin"),
      name: "stories260K",
    };
    expect(first).toEqual({ ...expected, downloaded: true });
    expect(requests).toEqual(["/stories260K.bin", "/tok512.bin"]);
    expect(events.at(-1)).toEqual({ phase: "download", file: "tok512.bin", loaded: 6227, total: 6227 });
    expect(createHash("sha256").update(await readFile(first.modelPath)).digest("hex")).toBe(MODEL_SHA256);

    requests.length = 0;
    const second = await resolveModel("stories260K", options);
    expect(second).toEqual({ ...expected, downloaded: false });
    expect(requests).toEqual([]);
  });

  it("downloads only missing files", async () => {
    const cache = await freshDirectory();
    await mkdir(join(cache, "stories260K"));
    await symlink(join(modelsDirectory, "tok512.bin"), join(cache, "stories260K", "tok512.bin"));

    const resolved = await resolveModel("stories260K", { catalog: testCatalog(), searchDirectories: [], cacheDirectory: cache });

    expect(resolved.downloaded).toBe(true);
    expect(requests).toEqual(["/stories260K.bin"]);
  });

  it("uses DORMANT_CACHE", async () => {
    const cache = await freshDirectory();

    const resolved = await withEnv({ DORMANT_CACHE: cache, DORMANT_MODELS: undefined }, () => resolveModel("stories260K", { catalog: testCatalog() }));

    expect(resolved.modelPath).toBe(joinPath(cache, "stories260K", "stories260K.bin"));
  });

  it("rejects when downloads are disabled", async () => {
    const cache = await freshDirectory();
    const search = await freshDirectory();

    await expect(resolveModel("stories260K", { catalog: testCatalog(), searchDirectories: [search], cacheDirectory: cache, download: false })).rejects.toThrow(
      `loadModel: model "stories260K": files not found in ${search}, ${joinPath(cache, "stories260K")} and downloading is disabled`,
    );
    expect(requests).toEqual([]);
  });

  it("needs a checksum unless allowed", async () => {
    const catalog = testCatalog({ modelSha256: null, modelSize: null });
    const cache = await freshDirectory();

    await expect(resolveModel("stories260K", { catalog, searchDirectories: [], cacheDirectory: cache })).rejects.toThrow(
      `loadModel: ${baseUrl}/stories260K.bin: sha256 is null in the catalog, expected a checksum (downloads without a checksum need the allowUnverified option)`,
    );
    expect(requests).toEqual([]);

    const resolved = await resolveModel("stories260K", { catalog, searchDirectories: [], cacheDirectory: cache, allowUnverified: true });
    expect(resolved.downloaded).toBe(true);
    expect(requests).toEqual(["/stories260K.bin", "/tok512.bin"]);
  });

  it("reports checksum failure", async () => {
    const wrong = "0".repeat(64);
    const cache = await freshDirectory();

    await expect(
      resolveModel("stories260K", { catalog: testCatalog({ modelSha256: wrong }), searchDirectories: [], cacheDirectory: cache, where: "pull" }),
    ).rejects.toThrow(`pull: ${baseUrl}/stories260K.bin: sha256 is ${MODEL_SHA256}, expected ${wrong} (download corrupted or catalog out of date)`);
  });
});

describe("io", () => {
  it("finds the cache directory", async () => {
    expect(await withEnv({ DORMANT_CACHE: "/c/d", XDG_CACHE_HOME: "/x" }, userCacheDirectory)).toBe("/c/d");
    expect(await withEnv({ DORMANT_CACHE: undefined, XDG_CACHE_HOME: "/x/" }, userCacheDirectory)).toBe("/x/dormant");
    expect(await withEnv({ DORMANT_CACHE: undefined, XDG_CACHE_HOME: undefined, HOME: "/home/u" }, userCacheDirectory)).toBe("/home/u/.cache/dormant");
  });

  it("joins paths", () => {
    expect(joinPath("/a/", "/b", "c")).toBe("/a/b/c");
    expect(joinPath("/", "a")).toBe("/a");
    expect(joinPath("", "a", "")).toBe("a");
  });

  it("reads the environment", async () => {
    expect(await withEnv({ DORMANT_TEST_VALUE: "v" }, async () => getEnv("DORMANT_TEST_VALUE"))).toBe("v");
    expect(await withEnv({ DORMANT_TEST_VALUE: "" }, async () => getEnv("DORMANT_TEST_VALUE"))).toBeUndefined();
  });
});
